/*
 * store.h - the read side of a trace store, as the query receiver sees it.
 *
 * An exporter that keeps traces (the embedded SQLite store, later ClickHouse)
 * offers this interface through its ops' store(); the query receiver serves the
 * HTTP API from it and never knows which store it talks to, so one integration
 * suite covers every store.
 *
 * Rows are handed to a callback one at a time; their strings live until the
 * callback returns. JSON columns (attributes, events, links, resource, scope)
 * hold JSON text as written by span.h's encoders and are spliced into responses
 * unchanged. Every function returns 0, PC_STORE_TIMEOUT when the read ran
 * past the store's statement time limit (its query_timeout setting: the query
 * API answers 503), or -1 after logging the failure.
 * Implementations must be safe to call from many threads at once and must
 * never put caller-provided text into SQL unescaped.
 *
 * Projects: a project (tenant) is part of every key. A trace is identified by
 * (project_id, trace_id) and a span by (project_id, trace_id, span_id): the same
 * trace id sent to two projects is two traces, and no read ever mixes the spans
 * or summaries of two projects. Reads that take a |project_id| treat NULL as
 * "any project" only where said; the caller (the query receiver) decides which
 * project a request may see.
 */
#ifndef PC_STORE_H
#define PC_STORE_H

#include <stdint.h>

/* A read stopped at the store's time limit (see above). */
#define PC_STORE_TIMEOUT (-2)

/* A trace's place in list order (newest start first, then trace id and
 * project id descending): the keyset cursor of list_traces. */
typedef struct pc_trace_key {
    int64_t started_ns;
    const char *trace_id;
    const char *project_id;
} pc_trace_key;

typedef struct pc_trace_filter {
    const char *project_id;   /* NULL = any */
    const char *service_name; /* NULL = any */
    const char *status;       /* NULL = any; lowercase "success" / "error" / "pending" */
    const char *span_type;    /* NULL = any; traces having at least one span of that type */
    int64_t start_ns;         /* 0 = unbounded; traces started at or after */
    int64_t end_ns;           /* 0 = unbounded; traces started at or before */
    const pc_trace_key *after; /* NULL = from the newest; else only traces after this key
                                * in list order (the key of the previous page's last trace) */
    int limit;                /* 1..1000 */
    int offset;               /* 0..PC_STORE_MAX_OFFSET, applied after |after| */
} pc_trace_filter;

/* The deepest offset a list accepts; deeper pages are reached with a cursor
 * (|after|), whose cost does not grow with the depth. */
#define PC_STORE_MAX_OFFSET 10000

typedef struct pc_trace_row {
    const char *trace_id;
    const char *project_id;
    const char *service_name;
    const char *root_span_id;   /* "" until the root span arrived */
    const char *root_span_name;
    const char *status;         /* "error" if any span failed, else "success" */
    const char *source;         /* "prela" or "otlp" */
    int64_t started_ns;         /* min start of its spans */
    int64_t completed_ns;       /* max end of its spans */
    int64_t created_ns;         /* first ingest */
    int64_t span_count;         /* distinct spans */
    int64_t input_tokens;       /* sums over its LLM spans */
    int64_t output_tokens;
} pc_trace_row;

typedef struct pc_span_row {
    const char *trace_id;
    const char *span_id;
    const char *parent_span_id;
    const char *project_id;
    const char *name;
    int kind;
    const char *span_type;
    const char *service_name;
    const char *status;
    const char *status_message;
    const char *source;
    const char *trace_state;
    int64_t start_ns;
    int64_t end_ns;           /* 0 = not ended */
    int64_t created_ns;
    const char *llm_provider; /* "" when none */
    const char *llm_model;
    int64_t input_tokens;     /* -1 = unknown */
    int64_t output_tokens;
    const char *attributes;   /* JSON object text */
    const char *events;       /* JSON array text */
    const char *links;        /* JSON array text */
    const char *resource;     /* JSON object text */
    const char *scope;        /* JSON object text */
} pc_span_row;

/* Row callbacks return 0 to go on, non-zero to stop early. */
typedef int (*pc_trace_cb)(void *ud, const pc_trace_row *row);
typedef int (*pc_span_cb)(void *ud, const pc_span_row *row);

typedef struct pc_store_ops {
    /* Traces matching |f| (f->project_id NULL = every project), newest start
     * first, then trace id and project id descending. */
    int (*list_traces)(void *ctx, const pc_trace_filter *f, pc_trace_cb cb, void *ud);
    /* The trace |trace_id| of |project_id|, or of every project having that
     * trace id when |project_id| is NULL: |cb| runs once per such project
     * (ordered by project id), so 0..n times. */
    int (*get_trace)(void *ctx, const char *project_id, const char *trace_id, pc_trace_cb cb,
                     void *ud);
    /* The spans of trace |trace_id| of |project_id| (never NULL: spans are read
     * from one project only) by start time, then span id: at most |limit|
     * (>= 1) after skipping |offset| (>= 0). */
    int (*get_spans)(void *ctx, const char *project_id, const char *trace_id, int limit,
                     int offset, pc_span_cb cb, void *ud);
    /* Traces of |project_id| (NULL = every project) having a span of their own
     * whose name or attribute text contains |query| (case-insensitive for
     * ASCII), newest first, at most |limit|. */
    int (*search)(void *ctx, const char *project_id, const char *query, int limit,
                  pc_trace_cb cb, void *ud);
    /* 0 when the store can serve queries, else -1 with a reason in |msg|. */
    int (*health)(void *ctx, char *msg, int msglen);
} pc_store_ops;

struct pc_store {
    const pc_store_ops *ops;
    void *ctx;
};

#endif
