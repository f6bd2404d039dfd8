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
 * unchanged. Every function returns 0, or -1 after logging the failure.
 * Implementations must be safe to call from many threads at once and must
 * never put caller-provided text into SQL unescaped.
 */
#ifndef PC_STORE_H
#define PC_STORE_H

#include <stdint.h>

typedef struct pc_trace_filter {
    const char *project_id;   /* NULL = any */
    const char *service_name; /* NULL = any */
    const char *status;       /* NULL = any; lowercase "success" / "error" / "pending" */
    const char *span_type;    /* NULL = any; traces having at least one span of that type */
    int64_t start_ns;         /* 0 = unbounded; traces started at or after */
    int64_t end_ns;           /* 0 = unbounded; traces started at or before */
    int limit;                /* 1..1000 */
    int offset;               /* >= 0 */
} pc_trace_filter;

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
    /* Traces matching |f|, newest start first. */
    int (*list_traces)(void *ctx, const pc_trace_filter *f, pc_trace_cb cb, void *ud);
    /* The trace |trace_id|: |cb| runs once, or not at all when it is unknown. */
    int (*get_trace)(void *ctx, const char *trace_id, pc_trace_cb cb, void *ud);
    /* The spans of |trace_id| by start time (then span id). */
    int (*get_spans)(void *ctx, const char *trace_id, pc_span_cb cb, void *ud);
    /* Traces having a span whose name or attribute text contains |query|
     * (case-insensitive for ASCII), newest first, at most |limit|. */
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
