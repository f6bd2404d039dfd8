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
 * API answers 503), PC_STORE_TOO_BIG when it needed more memory than the
 * store allows a read (ClickHouse's max_memory_usage: 503 too),
 * PC_STORE_OVER_BUDGET when the memory budget refused what it held for the
 * client (watch_client: 429), or -1 after logging the failure.
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

#include "arena.h"

#include <stdbool.h>
#include <stdint.h>

/* A read stopped at the store's time limit (see above). */
#define PC_STORE_TIMEOUT (-2)
/* A read stopped at the store's memory limit for one read (see above). */
#define PC_STORE_TOO_BIG (-3)
/* A read stopped at the process's memory budget (watch_client). */
#define PC_STORE_OVER_BUDGET (-4)

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
    const char *session_id;   /* NULL = any; the trace's session_id equals it */
    const char *user_id;      /* NULL = any; the trace's user_id equals it */
    const char *model;        /* NULL = any; traces having a span whose llm_model or
                               * llm_request_model equals it */
    double min_cost;          /* 0 = any; > 0: traces whose cost_usd is known and >= it */
    const char *attr_key;     /* NULL = any; with attr_value: traces having a span whose */
    const char *attr_value;   /* attribute attr_key has the text form attr_value (a string
                               * as is; an int, double or bool as its JSON text: 42, 0.5,
                               * true); keys are matched exactly, top-level only */
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
    /* The smallest (bytewise) non-empty session_id / user_id among its spans,
     * "" when none has one: the same answer whatever order spans arrive in. */
    const char *session_id;
    const char *user_id;
    /* Sum of its spans' known cost_usd (normalize prices only LLM and embedding
     * spans, so agent spans never count their children twice); NAN when no
     * span of it has a cost. */
    double cost_usd;
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
    /* Issue 13 (span.h has the meaning of each): "" / -1 / NAN when unknown. */
    const char *llm_request_model;
    int64_t cache_read_tokens;
    int64_t cache_write_tokens;
    int64_t reasoning_tokens;
    double cost_usd;
    double cost_input_usd;
    double cost_output_usd;
    const char *cost_source;  /* "" (none), "sent" or "table" */
    const char *session_id;
    const char *user_id;
    const char *input_messages;  /* JSON array text (span.h's message shape), "" = none */
    const char *output_messages; /* JSON array text, "" = none */
    const char *attributes;   /* JSON object text */
    const char *events;       /* JSON array text */
    const char *links;        /* JSON array text */
    const char *resource;     /* JSON object text */
    const char *scope;        /* JSON object text */
    /* Events attached from outside the span (span_events.h) were left out past
     * the per-span bound; served as "events_truncated": true. */
    bool events_cut;
} pc_span_row;

/*
 * Sessions (issue 13): a session is (project_id, session_id) over the traces
 * whose session_id (pc_trace_row) is that id. Its figures are over those
 * traces: trace_count; span_count, input/output tokens summed; cost_usd the
 * sum of the known trace costs (NAN when none); error_count the traces with
 * status "error"; first_seen_ns the earliest trace start, last_seen_ns the
 * latest trace completion (completed_ns); user_id the smallest non-empty
 * user_id of its traces ("" when none).
 */
typedef struct pc_session_filter {
    const char *project_id; /* NULL = any */
    const char *session_id; /* NULL = any; else that one session (per project) */
    const char *user_id;    /* NULL = any; sessions having a trace of that user */
    int64_t start_ns;       /* 0 = unbounded; sessions with last_seen_ns >= it */
    int64_t end_ns;         /* 0 = unbounded; sessions with first_seen_ns <= it */
    int limit;              /* 1..1000 */
    int offset;             /* 0..PC_STORE_MAX_OFFSET */
} pc_session_filter;

typedef struct pc_session_row {
    const char *session_id;
    const char *project_id;
    const char *user_id;
    int64_t trace_count;
    int64_t span_count;
    int64_t error_count;
    int64_t input_tokens;
    int64_t output_tokens;
    double cost_usd;
    int64_t first_seen_ns;
    int64_t last_seen_ns;
} pc_session_row;

/*
 * Aggregates (issue 13, GET /api/v1/stats): the spans whose start_ns lies in
 * [start_ns, end_ns), each span counted once however often it was delivered,
 * grouped by time bucket and by one span field. A span's bucket is
 * start_ns - start_ns % interval_ns (aligned on the Unix epoch), or the
 * query's start_ns when interval_ns is 0 (one bucket). Its group is the
 * field's value ("" when the span has none): llm_model, service_name,
 * span_type, project_id, user_id or session_id.
 * Per (bucket, group): spans; traces: the traces whose first span of the
 * group (the smallest start_ns among the trace's spans with that value, over
 * the whole store) lies in the bucket and in [start_ns, end_ns), so a trace
 * counts once per group and buckets add up; errors (spans with status
 * "error"); input/output tokens (sums of the known counts); cost_usd (sum of
 * the known costs, NAN when none is known); unpriced (LLM and embedding spans
 * with a model and no known cost); latency_p50/p95/p99_ns: the nearest-rank
 * percentile of the durations max(end_ns - start_ns, 0) of the ended spans
 * (end_ns > 0), i.e. the value at 1-based rank ceil(p * n) of those durations
 * sorted ascending, or any duration in the same bin of histo.h (the API
 * reports the bin's value); -1 when no span ended.
 * Rows come ordered by bucket_ns, then group (bytewise), at most max_rows;
 * the caller asks for one more than it shows to know it was cut.
 */
typedef enum pc_stats_group {
    PC_GROUP_NONE = 0, /* one group, "" */
    PC_GROUP_MODEL,
    PC_GROUP_SERVICE,
    PC_GROUP_SPAN_TYPE,
    PC_GROUP_PROJECT,
    PC_GROUP_USER,
    PC_GROUP_SESSION,
} pc_stats_group;

typedef struct pc_stats_query {
    const char *project_id; /* NULL = any */
    pc_stats_group group_by;
    int64_t start_ns;       /* > 0 */
    int64_t end_ns;         /* > start_ns */
    int64_t interval_ns;    /* 0 = one bucket; else >= 1 s */
    int max_rows;           /* >= 1 */
} pc_stats_query;

typedef struct pc_stats_row {
    int64_t bucket_ns;
    const char *group;
    int64_t spans;
    int64_t traces;
    int64_t errors;
    int64_t input_tokens;
    int64_t output_tokens;
    double cost_usd;
    int64_t unpriced;
    int64_t latency_p50_ns;
    int64_t latency_p95_ns;
    int64_t latency_p99_ns;
} pc_stats_row;

/* Row callbacks return 0 to go on, non-zero to stop early. */
typedef int (*pc_trace_cb)(void *ud, const pc_trace_row *row);
typedef int (*pc_span_cb)(void *ud, const pc_span_row *row);
typedef int (*pc_session_cb)(void *ud, const pc_session_row *row);
typedef int (*pc_stats_cb)(void *ud, const pc_stats_row *row);

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
    /* Optional (NULL: get_trace serves). As get_trace, but each row holds only
     * project_id and span_count (the other fields empty): for a reader that
     * needs no more of the summary, where the whole of it costs more. */
    int (*count_spans)(void *ctx, const char *project_id, const char *trace_id, pc_trace_cb cb,
                       void *ud);
    /* Traces of |project_id| (NULL = every project) having a span of their own
     * whose search text (local_text.h: name, decoded attribute values, events,
     * messages) contains |query| under local_text.h's case folding, newest
     * first, at most |limit|. (ClickHouse answers a query of under 3 code
     * points or with a line end by a scan of the JSON text, ASCII-folded.) */
    int (*search)(void *ctx, const char *project_id, const char *query, int limit,
                  pc_trace_cb cb, void *ud);
    /* Sessions matching |f|, newest last_seen_ns first, then session id and
     * project id descending. */
    int (*list_sessions)(void *ctx, const pc_session_filter *f, pc_session_cb cb, void *ud);
    /* The aggregates of |q| (see pc_stats_query). */
    int (*stats)(void *ctx, const pc_stats_query *q, pc_stats_cb cb, void *ud);
    /* 0 when the store can serve queries, else -1 with a reason in |msg|. */
    int (*health)(void *ctx, char *msg, int msglen);
    /* Optional (NULL: the store's reads cannot be stopped half way, and hold
     * little memory: a row at a time). From now on, the reads of the calling
     * thread are for the client on socket |fd| (-1: for nobody in particular,
     * as after the request): a read that finds that client's connection
     * closed stops (returning -1) and leaves the store no work on an answer
     * nobody waits for. The memory a read holds for the client (an answer
     * read whole from a server) is charged to |arena| (the request's; NULL:
     * not charged) until the request ends (pc_arena_try_hold): a read the
     * memory budget refuses stops, and the store reads less instead where it
     * can (a trace's spans page by page on the server), else returns
     * PC_STORE_OVER_BUDGET. */
    void (*watch_client)(void *ctx, int fd, pc_arena *arena);
} pc_store_ops;

struct pc_store {
    const pc_store_ops *ops;
    void *ctx;
};

#endif
