/*
 * query.c - the `query` receiver: the read API (:8002) over a trace store.
 *
 * Data flow: HTTP GET (http.c) → handler here → store.h ops of the exporter named
 * by `store` (the embedded SQLite store, later ClickHouse) → JSON response. It
 * sends nothing down a pipeline; create gets next == NULL.
 *
 *   GET /api/v1/traces              filters, newest first, limit, cursor (keyset:
 *                                   the answer's "next"), offset (bounded)
 *   GET /api/v1/traces/{id}         the trace and its spans (?project_id=)
 *   GET /api/v1/traces/{id}/spans   its spans (?project_id=)
 *   GET /api/v1/search?query=       traces whose span names / attributes contain it
 *   GET /api/v1/sessions[/{id}], /api/v1/stats, /api/v1/models: query_llm.h
 *   GET /api/v1/tail                new traces as Server-Sent Events (tail.h)
 *   GET /api/v1/health              200 healthy or degraded / 503 unhealthy: the
 *                                   store, and every exporter (pc_host_health)
 *   GET|HEAD /, /ui/<name>          the trace viewer's pages (ui.h), open: no data
 *
 * One serializer per object (query_json.h) is used by every endpoint. Errors
 * are {"detail": "..."}; a bad parameter gets 400 naming it. Query parameters
 * reach the store as values only; the store binds them.
 *
 * Memory: temporary strings live in the request arena; the response body is
 * the pc_buf http.c hands us.
 *
 * Abandoned reads: every handler that reads the store runs under watched(),
 * which names the request's socket to the store (store.h watch_client), so a
 * long read whose client hung up is stopped instead of running on (a
 * ClickHouse read until query_timeout).
 *
 * Projects: a trace is (project_id, trace_id) (store.h). Which project a
 * request reads is decided in ONE place, pc_query_read_project(), for every endpoint:
 * a project key's own project (auth.h; asking for another is a 403), else the
 * `project_id` query parameter (none = every project). A trace
 * read without a project answers the trace when its id exists in exactly
 * one project, 409 naming the projects when in several, 404 when in none;
 * its spans always come from the chosen trace's project only.
 */
#include "query.h"

#include "http.h"
#include "json.h"
#include "query_json.h"
#include "query_llm.h"
#include "tail.h"
#include "ui.h"
#include "log.h"
#include "mem.h"
#include "span.h"
#include "timefmt.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACES_PREFIX "/api/v1/traces/"
#define MAX_SEARCH_QUERY 1000 /* bytes; LIKE patterns are bounded too */
#define MAX_NAMED_PROJECTS 5 /* projects named in a 409 detail */

/* ------------------------------------------------------------- settings -- */

typedef struct query_cfg {
    char *endpoint;
    char *store;
    char *cors_origins;
    pc_tls_config tls;
    pc_http_limits limits;
    int64_t max_trace_spans;
    int64_t tail_max_clients;
    int64_t tail_client_buffer;
    int64_t tail_poll_ms;
    int64_t tail_heartbeat_ms;
    int64_t tail_lookback_ms;
    int64_t tail_scan;
    int64_t nice;
} query_cfg;

static const pc_option options[] = {
    {"endpoint", PC_OPT_STRING, "0.0.0.0:8002", offsetof(query_cfg, endpoint), 0, 0,
     "host:port the query API listens on"},
    {"store", PC_OPT_STRING, "local", offsetof(query_cfg, store), 0, 0,
     "id of the exporter whose store is served (local, clickhouse, ...)"},
    {"cors_origins", PC_OPT_STRING, NULL, offsetof(query_cfg, cors_origins), 0, 0,
     "comma-separated allowed CORS origins, or *; empty = no CORS headers"},
    PC_TLS_OPTIONS("", query_cfg, tls),
    PC_HTTP_LIMIT_OPTIONS("", query_cfg, limits, "256"),
    {"nice", PC_OPT_INT, "10", offsetof(query_cfg, nice), 0, 19,
     "the query threads run this many nice(1) steps below the priority the collector started "
     "with, so on a busy machine reads slow down before ingest does; 0 = the same priority"},
    {"max_trace_spans", PC_OPT_INT, "10000", offsetof(query_cfg, max_trace_spans), 1, 1000000,
     "most spans one trace read returns (GET /traces/{id}, and the largest limit of "
     "/traces/{id}/spans, which pages through the rest)"},
    /* the live tail (tail.h) */
    {"tail_max_clients", PC_OPT_INT, "32", offsetof(query_cfg, tail_max_clients), 0, 10000,
     "live tail streams (GET /api/v1/tail) open at once; beyond it 503; 0 turns the tail off"},
    {"tail_client_buffer", PC_OPT_SIZE, "1MiB", offsetof(query_cfg, tail_client_buffer), 4096,
     (int64_t)64 << 20,
     "bytes of events queued for one tail client; a client that falls further behind is cut "
     "(one poll's new traces must fit: about 1 KB each)"},
    {"tail_poll_interval", PC_OPT_DURATION, "1s", offsetof(query_cfg, tail_poll_ms), 50, 60000,
     "how often the store is asked for new traces while a tail is open (one read per process)"},
    {"tail_heartbeat", PC_OPT_DURATION, "15s", offsetof(query_cfg, tail_heartbeat_ms), 100,
     3600000, "a comment line is sent to a tail after this long without an event"},
    {"tail_lookback", PC_OPT_DURATION, "15m", offsetof(query_cfg, tail_lookback_ms), 1000,
     86400000, "the tail watches the traces that started within this long of now"},
    {"tail_scan", PC_OPT_INT, "2000", offsetof(query_cfg, tail_scan), 1, 100000,
     "most traces (the newest) one tail poll reads from the store"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

static int query_validate(const void *cfgp, char *err, size_t errlen)
{
    const query_cfg *c = cfgp;
    char host[256];
    int port;
    if (!c->endpoint || pc_http_parse_endpoint(c->endpoint, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "endpoint: \"%s\" is not host:port", c->endpoint ? c->endpoint : "");
        return -1;
    }
    if (!c->store || !*c->store) {
        snprintf(err, errlen, "store: must name an exporter");
        return -1;
    }
    if (c->tail_heartbeat_ms >= c->limits.idle_timeout_ms) {
        snprintf(err, errlen, "tail_heartbeat: must be shorter than idle_timeout (or an idle "
                              "tail would be closed)");
        return -1;
    }
    return pc_tls_validate(&c->tls, "", err, errlen);
}

typedef struct pc_query {
    char *id;
    const query_cfg *cfg;
    const pc_store *store;
    pc_auth *auth; /* the host's; NULL in unit tests */
    pc_metrics *metrics; /* the host's; NULL in unit tests */
    pc_host *host; /* for the exporters' health; NULL in unit tests */
    pc_budget *budget; /* the host's; NULL in unit tests */
    pc_http_server *srv;
    pc_tail *tail;
} pc_query;

/* -------------------------------------------------------------- handlers -- */

static void handle_list(pc_query *Q, pc_http_req *req, pc_http_resp *resp)
{
    pc_trace_filter f = {0};
    char msg[160];
    if (pc_query_read_project(req, resp, &f.project_id)) return;
    f.service_name = pc_query_param(req, "service_name");
    const char *status = pc_query_param(req, "status");
    if (status) f.status = pc_query_lowercase(req->arena, status);

    const char *span_type = pc_query_param(req, "span_type");
    if (span_type) {
        int t = pc_span_type_parse((pc_str){span_type, strlen(span_type)});
        if (t < 0) {
            pc_query_bad_request(resp, "span_type: must be one of agent, llm, tool, retrieval, "
                              "embedding, custom");
            return;
        }
        f.span_type = pc_span_type_name((pc_span_type)t);
    }
    if (pc_query_time_param(req, resp, "start_time", &f.start_ns) ||
        pc_query_time_param(req, resp, "end_time", &f.end_ns))
        return;
    f.session_id = pc_query_param(req, "session_id");
    f.user_id = pc_query_param(req, "user_id");
    f.model = pc_query_param(req, "model");
    const char *min_cost = pc_query_param(req, "min_cost");
    if (min_cost) {
        char *end;
        errno = 0;
        f.min_cost = strtod(min_cost, &end);
        if (errno || *end || !(f.min_cost >= 0) || f.min_cost > 1e15) {
            pc_query_bad_request(resp, "min_cost: must be a number of USD >= 0");
            return;
        }
        /* at the 12 digits costs are given to (pc_query_write_cost): a trace
         * shown costing min_cost is kept whatever order its store added in */
        f.min_cost *= 1 - 1e-12;
    }
    /* attr.<key>=<value>: one span attribute, matched as store.h says */
    const char *attr_name;
    int n_attr = pc_http_query_prefixed(req, "attr.", &attr_name, &f.attr_value);
    if (n_attr > 1) {
        pc_query_bad_request(resp, "attr.<key>: at most one attribute filter per request");
        return;
    }
    if (n_attr == 1) {
        f.attr_key = attr_name + 5;
        if (!*f.attr_key || strlen(f.attr_key) > 256 || !f.attr_value ||
            strlen(f.attr_value) > MAX_SEARCH_QUERY) {
            pc_query_bad_request(resp, "attr.<key>: needs a key of 1 to 256 bytes and a value of "
                                       "at most 1000 bytes (attr.gen_ai.system=openai)");
            return;
        }
    }
    if (pc_query_int_param(req, "limit", 1, 1000, 100, &f.limit) < 0) {
        pc_query_bad_request(resp, "limit: must be an integer from 1 to 1000");
        return;
    }
    if (pc_query_int_param(req, "offset", 0, PC_STORE_MAX_OFFSET, 0, &f.offset) < 0) {
        snprintf(msg, sizeof(msg),
                 "offset: must be an integer from 0 to %d (page deeper with cursor= and the "
                 "answer's next)",
                 PC_STORE_MAX_OFFSET);
        pc_query_bad_request(resp, msg);
        return;
    }
    pc_trace_key after;
    const char *cursor = pc_query_param(req, "cursor");
    if (cursor) {
        if (pc_query_cursor_read(req->arena, cursor, &after) < 0) {
            pc_query_bad_request(resp, "cursor: not a cursor this API gave (use the answer's next as is)");
            return;
        }
        f.after = &after;
    }

    pc_buf *b = &resp->body, last = PC_BUF_INIT;
    pc_query_rows r = {req, resp, 0, f.project_id, &last};
    pc_buf_puts(b, "{\"traces\":[");
    int rc = Q->store->ops->list_traces(Q->store->ctx, &f, pc_query_trace_row_cb, &r);
    if (pc_query_over_budget(req, resp) || rc < 0) {
        if (resp->status != 429) pc_query_store_error(resp, rc, "Failed to query traces");
        pc_buf_free(&last);
        return;
    }
    /* next: the cursor of the page after this one; null once a page is not full */
    pc_buf_printf(b, "],\"count\":%d,\"limit\":%d,\"offset\":%d,\"next\":", r.n, f.limit,
                  f.offset);
    if (r.n == f.limit)
        pc_json_write_str(b, last.data, last.len);
    else
        pc_buf_puts(b, "null");
    pc_buf_putc(b, '}');
    pc_buf_free(&last);
    resp->status = 200;
}

/* get_trace's rows for one trace id (one per project): the first one kept, all counted. */
typedef struct found {
    pc_buf *out;         /* receives the first row's object (NULL: not wanted) */
    pc_arena *arena;     /* the request's */
    const char *project; /* the first row's project (arena copy) */
    int n;               /* projects having the trace id */
    int64_t span_count;  /* the first row's */
    pc_buf names;        /* "a, b" of the first MAX_NAMED_PROJECTS */
} found;

static int found_cb(void *ud, const pc_trace_row *row)
{
    found *f = ud;
    if (f->n == 0) {
        if (f->out) pc_query_write_trace(f->out, row);
        f->span_count = row->span_count;
        f->project = pc_arena_strndup(f->arena, row->project_id, strlen(row->project_id));
    }
    if (f->n < MAX_NAMED_PROJECTS) {
        if (f->n) pc_buf_puts(&f->names, ", ");
        pc_buf_puts(&f->names, row->project_id);
    } else if (f->n == MAX_NAMED_PROJECTS) {
        pc_buf_puts(&f->names, ", ...");
    }
    f->n++;
    return 0;
}

/*
 * Looks up trace |id| of |project| (NULL: of whichever project has it) and
 * writes its object to |out| (NULL: only its project and span count are
 * wanted, which the store's count_spans gives when it has one). Returns the
 * trace's project (request memory); NULL when there is none (404), several
 * without a project (409), or the store failed (500; |fail_msg|), with the
 * answer written to |resp|.
 */
static const char *find_trace(pc_query *Q, pc_http_req *req, const char *project, const char *id,
                              pc_buf *out, pc_http_resp *resp, const char *fail_msg,
                              int64_t *span_count)
{
    found f = {.out = out, .arena = req->arena, .names = PC_BUF_INIT};
    const pc_store_ops *ops = Q->store->ops;
    int rc = !out && ops->count_spans ? ops->count_spans(Q->store->ctx, project, id, found_cb, &f)
                                      : ops->get_trace(Q->store->ctx, project, id, found_cb, &f);
    const char *result = NULL;
    pc_buf m = PC_BUF_INIT;
    *span_count = f.span_count;
    if (rc < 0) {
        pc_query_store_error(resp, rc, fail_msg);
    } else if (f.n == 0) {
        pc_buf_printf(&m, "Trace %s not found", id);
        pc_buf_reset(&resp->body);
        pc_http_error_detail(resp, 404, m.data);
    } else if (f.n > 1) {
        pc_buf_printf(&m, "trace id %s exists in %d projects (%s); pass project_id", id, f.n,
                      f.names.data);
        pc_buf_reset(&resp->body);
        pc_http_error_detail(resp, 409, m.data);
    } else {
        result = f.project;
    }
    pc_buf_free(&m);
    pc_buf_free(&f.names);
    return result;
}

static void handle_trace(pc_query *Q, pc_http_req *req, const char *project, const char *id,
                         pc_http_resp *resp)
{
    pc_buf *b = &resp->body;
    pc_buf_puts(b, "{\"trace\":");
    int64_t total;
    project = find_trace(Q, req, project, id, b, resp, "Failed to retrieve trace", &total);
    if (!project) return;
    pc_buf_puts(b, ",\"spans\":[");
    pc_query_rows r = {req, resp, 0, project, NULL};
    int cap = (int)Q->cfg->max_trace_spans;
    int rc = Q->store->ops->get_spans(Q->store->ctx, project, id, cap, 0, pc_query_span_row_cb, &r);
    if (pc_query_over_budget(req, resp)) return;
    if (rc < 0) {
        pc_query_store_error(resp, rc, "Failed to retrieve trace");
        return;
    }
    /* span_count: spans in this answer; spans_total and spans_truncated say
     * whether /spans?offset= has more (at most max_trace_spans per answer). */
    pc_buf_printf(b, "],\"span_count\":%d,\"spans_total\":%lld,\"spans_truncated\":%s}", r.n,
                  (long long)(total > r.n ? total : r.n), total > r.n ? "true" : "false");
    resp->status = 200;
}

static void handle_spans(pc_query *Q, pc_http_req *req, const char *project, const char *id,
                         pc_http_resp *resp)
{
    int cap = (int)Q->cfg->max_trace_spans, limit, offset;
    char msg[120];
    if (pc_query_int_param(req, "limit", 1, cap, cap, &limit) < 0) {
        snprintf(msg, sizeof(msg), "limit: must be an integer from 1 to %d (max_trace_spans)", cap);
        pc_query_bad_request(resp, msg);
        return;
    }
    if (pc_query_int_param(req, "offset", 0, 1000000000, 0, &offset) < 0) {
        pc_query_bad_request(resp, "offset: must be an integer >= 0");
        return;
    }
    int64_t total; /* only the trace's existence, project and span count matter */
    project = find_trace(Q, req, project, id, NULL, resp, "Failed to query spans", &total);
    if (!project) return;
    pc_buf *b = &resp->body;
    pc_buf_puts(b, "{\"spans\":[");
    pc_query_rows r = {req, resp, 0, project, NULL};
    int rc = Q->store->ops->get_spans(Q->store->ctx, project, id, limit, offset, pc_query_span_row_cb, &r);
    if (pc_query_over_budget(req, resp)) return;
    if (rc < 0) {
        pc_query_store_error(resp, rc, "Failed to query spans");
        return;
    }
    /* total: the trace's distinct spans (its summary's span_count) */
    if (total < (int64_t)offset + r.n) total = (int64_t)offset + r.n;
    pc_buf_printf(b, "],\"count\":%d,\"total\":%lld,\"limit\":%d,\"offset\":%d}", r.n,
                  (long long)total, limit, offset);
    resp->status = 200;
}

/* Runs |serve| (a handler that reads the store) with the store watching the
 * request's client: its reads stop if the client hangs up, and charge what
 * they hold to the request's arena (store.h). */
static void watched(void *ctx, pc_http_req *req, pc_http_resp *resp,
                    void (*serve)(void *ctx, pc_http_req *req, pc_http_resp *resp))
{
    const pc_store *st = ((pc_query *)ctx)->store;
    if (st->ops->watch_client) st->ops->watch_client(st->ctx, pc_http_socket(req), req->arena);
    serve(ctx, req, resp);
    if (st->ops->watch_client) st->ops->watch_client(st->ctx, -1, NULL);
}

static void serve_traces(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    handle_list(ctx, req, resp);
}

/* /api/v1/traces/{id} and /api/v1/traces/{id}/spans; req->path is decoded. */
static void serve_trace_prefix(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    const char *rest = req->path + strlen(TRACES_PREFIX);
    size_t n = strlen(rest);
    if (n == 0) {
        handle_list(ctx, req, resp);
        return;
    }
    const char *project;
    if (pc_query_read_project(req, resp, &project)) return;
    static const char spans_suffix[] = "/spans";
    size_t sl = sizeof(spans_suffix) - 1;
    if (n > sl && memcmp(rest + n - sl, spans_suffix, sl) == 0) {
        handle_spans(ctx, req, project, pc_arena_strndup(req->arena, rest, n - sl), resp);
        return;
    }
    handle_trace(ctx, req, project, rest, resp);
}

static void serve_search(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    pc_query *Q = ctx;
    const char *q = pc_query_param(req, "query");
    if (!q) {
        pc_query_bad_request(resp, "query: required");
        return;
    }
    if (strlen(q) > MAX_SEARCH_QUERY) {
        pc_query_bad_request(resp, "query: longer than 1000 bytes");
        return;
    }
    int limit;
    if (pc_query_int_param(req, "limit", 1, 500, 50, &limit) < 0) {
        pc_query_bad_request(resp, "limit: must be an integer from 1 to 500");
        return;
    }
    const char *project;
    if (pc_query_read_project(req, resp, &project)) return;

    pc_buf *b = &resp->body;
    pc_query_rows r = {req, resp, 0, project, NULL};
    pc_buf_puts(b, "{\"results\":[");
    int rc = Q->store->ops->search(Q->store->ctx, project, q, limit, pc_query_trace_row_cb, &r);
    if (pc_query_over_budget(req, resp)) return;
    if (rc < 0) {
        pc_query_store_error(resp, rc, "Failed to search traces");
        return;
    }
    pc_buf_printf(b, "],\"count\":%d,\"query\":", r.n);
    pc_json_write_cstr(b, q);
    pc_buf_printf(b, ",\"limit\":%d}", limit);
    resp->status = 200;
}

/* The store's own check, then every exporter's state (pc_host_health):
 * {"status":..,"exporters":[..]} plus "detail" when the store fails; 503 when
 * the store fails or an exporter cannot accept. */
static void on_health(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    (void)req;
    pc_query *Q = ctx;
    char msg[256] = "";
    pc_buf *b = &resp->body;
    bool store_ok = Q->store->ops->health(Q->store->ctx, msg, sizeof(msg)) == 0;
    pc_buf ex = PC_BUF_INIT;
    pc_health_state s = pc_host_health(Q->host, &ex);
    if (!store_ok) s = PC_HEALTH_UNAVAILABLE;
    pc_buf_printf(b, "{\"status\":\"%s\"", pc_health_status(s));
    if (!store_ok) {
        pc_buf_puts(b, ",\"detail\":");
        pc_json_write_cstr(b, msg[0] ? msg : "store unavailable");
    }
    pc_buf_puts(b, ",\"exporters\":");
    pc_buf_append(b, ex.data, ex.len);
    pc_buf_putc(b, '}');
    pc_buf_free(&ex);
    resp->status = s == PC_HEALTH_UNAVAILABLE ? 503 : 200;
}

static void serve_sessions(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    pc_query_sessions(((pc_query *)ctx)->store, req, resp);
}

/* /api/v1/sessions/{id}; req->path is decoded. */
static void serve_session(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    const char *id = req->path + strlen(PC_QUERY_SESSIONS_PREFIX);
    if (!*id)
        pc_query_sessions(((pc_query *)ctx)->store, req, resp);
    else
        pc_query_session(((pc_query *)ctx)->store, req, id, resp);
}

static void serve_stats(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    pc_query_stats(((pc_query *)ctx)->store, req, resp);
}

static void serve_models(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    pc_query_models(((pc_query *)ctx)->store, req, resp);
}

/* on_NAME: the route handler running serve_NAME under watched(). */
#define WATCHED(name)                                                                              \
    static void on_##name(void *ctx, pc_http_req *req, pc_http_resp *resp)                        \
    {                                                                                              \
        watched(ctx, req, resp, serve_##name);                                                     \
    }
WATCHED(traces)
WATCHED(trace_prefix)
WATCHED(search)
WATCHED(sessions)
WATCHED(session)
WATCHED(stats)
WATCHED(models)

static void on_tail(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    pc_tail_handle(((pc_query *)ctx)->tail, req, resp);
}

static const pc_http_route routes[] = {
    {"GET", "/api/v1/traces", 0, on_traces, PC_SCOPE_READ},
    {"GET", TRACES_PREFIX, 1, on_trace_prefix, PC_SCOPE_READ},
    {"GET", "/api/v1/search", 0, on_search, PC_SCOPE_READ},
    {"GET", "/api/v1/sessions", 0, on_sessions, PC_SCOPE_READ},
    {"GET", PC_QUERY_SESSIONS_PREFIX, 1, on_session, PC_SCOPE_READ},
    {"GET", "/api/v1/stats", 0, on_stats, PC_SCOPE_READ},
    {"GET", "/api/v1/models", 0, on_models, PC_SCOPE_READ},
    {"GET", "/api/v1/tail", 0, on_tail, PC_SCOPE_READ},
    {"GET", "/api/v1/health", 0, on_health, PC_SCOPE_NONE},
    /* the trace viewer: pages only, every API call they make sends a key */
    {"GET", "/", 0, pc_ui_handle, PC_SCOPE_NONE},
    {"HEAD", "/", 0, pc_ui_handle, PC_SCOPE_NONE},
    {"GET", PC_UI_PREFIX, 1, pc_ui_handle, PC_SCOPE_NONE},
    {"HEAD", PC_UI_PREFIX, 1, pc_ui_handle, PC_SCOPE_NONE},
};

/* ------------------------------------------------------------ lifecycle -- */

static void *query_create(const char *id, const void *cfgp, const pc_consumer *next)
{
    (void)next; /* not in a pipeline */
    pc_query *Q = pc_xcalloc(1, sizeof(*Q));
    Q->id = pc_xstrdup(id);
    Q->cfg = cfgp;
    return Q;
}

int pc_query_serve(void *ctx, const pc_store *store)
{
    pc_query *Q = ctx;
    if (Q->srv) return 0;
    Q->store = store;
    const query_cfg *c = Q->cfg;
    pc_http_config hc = {
        .name = Q->id,
        .endpoint = c->endpoint,
        .max_body = 64 * 1024, /* GET only: no bodies to speak of */
        .cors_origins = c->cors_origins,
        .error = NULL,
        .auth = Q->auth,
        .budget = Q->budget, /* answers are charged too: a trace read can be large */
        .hold_body = true,
        .tls = &c->tls,
        .metrics = Q->metrics,
        .nice = (int)c->nice,
    };
    pc_http_set_limits(&hc, &c->limits);
    pc_tail_config tc = {
        .name = Q->id,
        .store = store,
        .max_clients = (int)c->tail_max_clients,
        .client_buffer = c->tail_client_buffer,
        .poll_ms = c->tail_poll_ms,
        .heartbeat_ms = c->tail_heartbeat_ms,
        .lookback_ms = c->tail_lookback_ms,
        .scan = (int)c->tail_scan,
        .budget = Q->budget,
        .metrics = Q->metrics,
    };
    if (!(Q->tail = pc_tail_create(&tc))) return -1;
    Q->srv = pc_http_start(&hc, routes, sizeof(routes) / sizeof(routes[0]), Q);
    if (!Q->srv) {
        pc_tail_destroy(Q->tail);
        Q->tail = NULL;
        return -1;
    }
    pc_log(PC_LOG_INFO, Q->id, "serving the store of exporter \"%s\"", c->store);
    return 0;
}

int pc_query_port(void *ctx)
{
    pc_query *Q = ctx;
    return Q->srv ? pc_http_port(Q->srv) : -1;
}

static int query_start(void *ctx, pc_host *host)
{
    pc_query *Q = ctx;
    const pc_store *store = pc_host_store(host, Q->cfg->store);
    if (!store) {
        pc_log(PC_LOG_ERROR, Q->id,
               "store: \"%s\" is not a configured exporter with a query store "
               "(use the id of a local or clickhouse exporter)",
               Q->cfg->store);
        return -1;
    }
    Q->auth = pc_host_auth(host);
    Q->metrics = pc_host_metrics(host);
    Q->budget = pc_host_budget(host);
    Q->host = host;
    return pc_query_serve(Q, store);
}

static void query_shutdown(void *ctx)
{
    pc_query *Q = ctx;
    if (!Q) return;
    pc_tail_stop(Q->tail); /* ends the streams the server would wait for */
    pc_http_stop(Q->srv);
    Q->srv = NULL;
    pc_tail_destroy(Q->tail);
    Q->tail = NULL;
}

static void query_destroy(void *ctx)
{
    pc_query *Q = ctx;
    if (!Q) return;
    query_shutdown(Q);
    free(Q->id);
    free(Q);
}

const pc_component_ops pc_query_receiver_ops = {
    .type = "query",
    .kind = PC_RECEIVER,
    .options = options,
    .config_size = sizeof(query_cfg),
    .validate = query_validate,
    .create = query_create,
    .start = query_start,
    .shutdown = query_shutdown,
    .destroy = query_destroy,
    .consume = NULL,
    .store = NULL,
};
