/*
 * prela.c - the Prela receiver (see prela.h): what the Prela SDK's HTTP exporter
 * and the original ingest gateway's clients send, answered as that gateway did.
 *
 * Position: HTTP (http.c) → decode into a pc_batch → pipeline → 200 only after
 * the exporters made the batch durable (503 + Retry-After when they could not).
 *
 * Accepted, per prela-wire-format.md: UUID or free-form ids ("test-trace-123"),
 * every ISO-8601 timestamp form including the SDK's "+00:00Z" (timefmt.h) or
 * epoch seconds as a number, null parent ids, nested attribute values kept with
 * their types, NaN/Infinity, gzip/zstd/deflate bodies (http.c). The API key
 * (X-API-Key or Authorization: Bearer) is checked by http.c against the
 * top-level auth: section (auth.h) before the body is read; the key decides the
 * project, X-Prela-Project-Id counts only for admin keys or without auth. /v1/traces and /v1/spans
 * reject the whole request when a span is unusable (400 naming the field); /v1/batch skips such
 * spans, counts them and keeps the rest.
 *
 * Spans an exporter rejected after decode (too large for its destination,
 * span.h "Rejections") are never answered as ingested: /v1/batch and
 * /v1/traces count them in "rejected" with an "errors" entry naming the span
 * id and the limit; /v1/spans, one span, answers 413 with that message.
 *
 * Memory: the batch takes over the request arena, so decoded strings point into
 * the body and nothing is copied or freed per span.
 */
#include "prela.h"

#include "formats/prela_json.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct prela_cfg {
    char *endpoint;
    int64_t max_body;
    char *project_id;
    pc_strlist api_keys;
    char *cors_origins;
    int64_t retry_after_ms;
    pc_tls_config tls;
    pc_http_limits limits;
    pc_span_limits span_limits;
} prela_cfg;

static const pc_option options[] = {
    {"endpoint", PC_OPT_STRING, "0.0.0.0:8001", offsetof(prela_cfg, endpoint), 0, 0,
     "host:port to listen on"},
    {"max_request_body_size", PC_OPT_SIZE, "20MiB", offsetof(prela_cfg, max_body), 1024,
     1073741824, "largest body accepted, before and after decompression"},
    {"project_id", PC_OPT_STRING, "default", offsetof(prela_cfg, project_id), 0, 0,
     "project of spans whose request has no X-Prela-Project-Id header"},
    {"api_keys", PC_OPT_STRLIST, NULL, offsetof(prela_cfg, api_keys), 0, 0,
     "removed: list keys under the top-level auth: section (startup fails if set)"},
    {"cors_origins", PC_OPT_STRING, NULL, offsetof(prela_cfg, cors_origins), 0, 0,
     "comma-separated origins allowed by CORS, or *"},
    {"retry_after", PC_OPT_DURATION, "1s", offsetof(prela_cfg, retry_after_ms), 1, 3600000,
     "Retry-After sent with 503 when the pipeline is busy"},
    PC_TLS_OPTIONS("", prela_cfg, tls),
    PC_HTTP_LIMIT_OPTIONS("", prela_cfg, limits, "1024"),
    PC_SPAN_LIMIT_OPTIONS(prela_cfg, span_limits),
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

typedef struct prela {
    char *id;
    const prela_cfg *cfg;
    pc_consumer next;
    pc_http_server *http;
    pc_host *host; /* from start; for /health */
    pc_receiver_counters counters; /* from start */
    pc_counter *rejected;          /* prela_receiver_dropped_spans{reason="rejected"} */
} prela;

/* ------------------------------------------------------------------ handlers */

/* True (with the message in |err|) when the list |spans| is longer than
 * max_spans_per_request: the request is refused before any span is decoded. */
static bool too_many_spans(const prela *p, const pc_value *spans, char *err, size_t errlen)
{
    if ((int64_t)spans->arr.n <= p->cfg->span_limits.max_spans) return false;
    pc_receiver_count(&p->counters, PC_SIGNAL_TRACES, (int64_t)spans->arr.n, PC_DROP); /* refused */
    snprintf(err, errlen, "spans: %zu spans, more than max_spans_per_request (%lld)", spans->arr.n,
             (long long)p->cfg->span_limits.max_spans);
    return true;
}

/* Checks the span just decoded into |b| (named |where|) against the caps.
 * Returns 0, or -1 with the span taken back and the message in |err|. */
static int over_limits(const prela *p, pc_batch *b, const char *where, char *err, size_t errlen)
{
    char msg[224];
    if (!pc_span_over_limits(&b->spans[b->n - 1], &p->cfg->span_limits, msg, sizeof(msg))) return 0;
    pc_batch_pop(b);
    snprintf(err, errlen, "%s%s%s", where, *where ? "." : "", msg);
    return -1;
}

/*
 * Common start of every POST: auth, content type, JSON parse. Returns the batch
 * (which owns the request arena from now on) and the parsed body in |root|, or
 * NULL after answering.
 */
static pc_batch *begin(prela *p, pc_http_req *req, pc_http_resp *resp, pc_value *root,
                       pc_str *project)
{
    const char *ct = pc_http_header(req, "Content-Type");
    if (ct) {
        size_t l = strcspn(ct, ";");
        while (l && ct[l - 1] == ' ') l--;
        int json = (l == 16 && !strncasecmp(ct, "application/json", 16)) ||
                   (l > 5 && !strncasecmp(ct + l - 5, "+json", 5)) || (l == 3 && !strncmp(ct, "*/*", 3));
        if (!json) {
            char msg[200];
            snprintf(msg, sizeof(msg), "Content-Type '%.80s' is not supported; send application/json",
                     ct);
            pc_http_error_detail(resp, 415, msg);
            return NULL;
        }
    }
    pc_json_error jerr;
    if (pc_json_parse(req->arena, req->body, req->body_len, root, &jerr)) {
        char msg[220];
        snprintf(msg, sizeof(msg), "Invalid JSON: %s", jerr.msg);
        pc_http_error_detail(resp, 400, msg);
        return NULL;
    }
    if (root->type != PC_V_MAP) {
        pc_http_error_detail(resp, 400, "body: expected a JSON object");
        return NULL;
    }
    pc_batch *b = pc_batch_create(req->arena);
    req->arena = NULL;
    b->received_ns = pc_time_now_ns();
    const char *proj = pc_auth_project(&req->principal, pc_http_header(req, "X-Prela-Project-Id"));
    if (!proj) proj = p->cfg->project_id;
    project->n = strlen(proj);
    project->p = pc_arena_strndup(b->arena, proj, project->n);
    return b;
}

/* Charges |b|'s spans to the sender's rate limit and sends |b| down the
 * pipeline. Returns 1 when it is durable, else answers and returns 0. */
static int deliver(prela *p, const pc_http_req *req, pc_batch *b, pc_http_resp *resp)
{
    if (b->n == 0) return 1;
    char msg[200];
    int retry = 0;
    if (pc_auth_admit(&req->principal, b->n, msg, sizeof(msg), &retry) != PC_AUTH_OK) {
        pc_receiver_count(&p->counters, PC_SIGNAL_TRACES, (int64_t)b->n, PC_RETRY);
        pc_http_error_detail(resp, 429, msg);
        resp->retry_after = retry;
        return 0;
    }
    pc_batch_ref(b);
    int64_t n = (int64_t)b->n;
    pc_result r = pc_consume(&p->next, b);
    int64_t refused = r == PC_OK ? (int64_t)pc_batch_rejected(b) : 0; /* by an exporter */
    pc_receiver_count(&p->counters, PC_SIGNAL_TRACES, n - refused, r);
    pc_receiver_count(&p->counters, PC_SIGNAL_TRACES, refused, PC_DROP);
    if (r == PC_OK) return 1;
    if (r == PC_RETRY) {
        pc_http_error_detail(resp, 503, "the collector could not store the data in time; retry later");
        resp->retry_after = (int)((p->cfg->retry_after_ms + 999) / 1000);
    } else {
        pc_http_error_detail(resp, 500, "the collector failed to store the data");
    }
    return 0;
}

/*
 * Appends an "errors" entry ("span <id>: not stored: <why>") to |errors| (a
 * JSON array being built, no brackets) for each span of |b| an exporter
 * rejected, while |*listed| < 10. Returns how many spans were rejected.
 */
static size_t list_rejected(const pc_batch *b, pc_buf *errors, size_t *listed)
{
    size_t k = pc_batch_rejected(b);
    const char *why = pc_batch_reject_reason(b);
    for (size_t i = 0; k && i < b->n && *listed < 10; i++) {
        if (!pc_batch_is_rejected(b, i)) continue;
        const pc_str *id = &b->spans[i].span_id;
        char msg[400];
        snprintf(msg, sizeof(msg), "span %.*s: not stored: %s", (int)(id->n < 128 ? id->n : 128),
                 id->p ? id->p : "", why ? why : "an exporter cannot deliver it");
        pc_buf_putc(errors, errors->len ? ',' : '[');
        pc_json_write_cstr(errors, msg);
        (*listed)++;
    }
    return k;
}

static void handle_traces(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    prela *p = ctx;
    pc_value root;
    pc_str project;
    pc_batch *b = begin(p, req, resp, &root, &project);
    if (!b) return;
    char err[256];
    pc_str trace_id, service;
    if (pc_prela_json_decode_sdk_trace(b, &root, &trace_id, &service, err, sizeof(err))) {
        pc_http_error_detail(resp, 400, err);
        goto out;
    }
    const pc_value *spans = pc_json_get(&root, "spans");
    if (spans && spans->type != PC_V_ARRAY && spans->type != PC_V_NULL) {
        pc_http_error_detail(resp, 400, "spans: expected a list");
        goto out;
    }
    if (spans && spans->type == PC_V_ARRAY && too_many_spans(p, spans, err, sizeof(err))) {
        pc_http_error_detail(resp, 400, err);
        goto out;
    }
    for (size_t i = 0; spans && spans->type == PC_V_ARRAY && i < spans->arr.n; i++) {
        char where[32];
        snprintf(where, sizeof(where), "spans[%zu]", i);
        if (pc_prela_json_decode_sdk_span(b, &spans->arr.v[i], where, trace_id, service, project, err,
                                 sizeof(err)) ||
            over_limits(p, b, where, err, sizeof(err))) {
            pc_http_error_detail(resp, 400, err);
            goto out;
        }
    }
    if (deliver(p, req, b, resp)) {
        pc_buf errors = PC_BUF_INIT;
        size_t listed = 0, rejected = list_rejected(b, &errors, &listed);
        pc_buf_puts(&resp->body, "{\"status\":\"accepted\",\"trace_id\":");
        pc_json_write_str(&resp->body, trace_id.p, trace_id.n);
        pc_buf_printf(&resp->body, ",\"spans_ingested\":%zu", b->n - rejected);
        if (rejected) {
            pc_buf_printf(&resp->body, ",\"rejected\":%zu,\"errors\":", rejected);
            pc_buf_append(&resp->body, errors.data, errors.len);
            pc_buf_putc(&resp->body, ']');
        }
        pc_buf_putc(&resp->body, '}');
        pc_buf_free(&errors);
    }
out:
    pc_batch_unref(b);
}

static void handle_spans(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    prela *p = ctx;
    pc_value root;
    pc_str project;
    pc_batch *b = begin(p, req, resp, &root, &project);
    if (!b) return;
    char err[256];
    if (pc_prela_json_decode_sdk_span(b, &root, "", PC_STR_NULL, PC_STR_NULL, project, err, sizeof(err)) ||
        over_limits(p, b, "", err, sizeof(err))) {
        pc_http_error_detail(resp, 400, err);
    } else if (!deliver(p, req, b, resp)) {
        /* answered */
    } else if (pc_batch_rejected(b)) {
        char msg[400];
        const char *why = pc_batch_reject_reason(b);
        snprintf(msg, sizeof(msg), "span %.*s: not stored: %s",
                 (int)(b->spans[0].span_id.n < 128 ? b->spans[0].span_id.n : 128),
                 b->spans[0].span_id.p ? b->spans[0].span_id.p : "",
                 why ? why : "an exporter cannot deliver it");
        pc_http_error_detail(resp, 413, msg);
    } else {
        pc_buf_puts(&resp->body, "{\"status\":\"accepted\",\"span_id\":");
        pc_json_write_str(&resp->body, b->spans[0].span_id.p, b->spans[0].span_id.n);
        pc_buf_puts(&resp->body, ",\"trace_id\":");
        pc_json_write_str(&resp->body, b->spans[0].trace_id.p, b->spans[0].trace_id.n);
        pc_buf_putc(&resp->body, '}');
    }
    pc_batch_unref(b);
}

static void handle_batch(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    prela *p = ctx;
    pc_value root;
    pc_str project;
    pc_batch *b = begin(p, req, resp, &root, &project);
    if (!b) return;
    const pc_value *spans = pc_json_get(&root, "spans");
    if (!spans || spans->type != PC_V_ARRAY) {
        pc_http_error_detail(resp, 400, "spans: required, and must be a list (Invalid batch format)");
        pc_batch_unref(b);
        return;
    }
    char cap_err[160];
    if (too_many_spans(p, spans, cap_err, sizeof(cap_err))) {
        pc_http_error_detail(resp, 400, cap_err);
        pc_batch_unref(b);
        return;
    }
    pc_buf errors = PC_BUF_INIT;
    size_t rejected = 0;
    for (size_t i = 0; i < spans->arr.n; i++) {
        char where[32], err[256];
        snprintf(where, sizeof(where), "spans[%zu]", i);
        if (pc_prela_json_decode_sdk_span(b, &spans->arr.v[i], where, PC_STR_NULL, PC_STR_NULL, project,
                                 err, sizeof(err)) ||
            over_limits(p, b, where, err, sizeof(err))) {
            if (rejected++ < 10) {
                pc_buf_putc(&errors, errors.len ? ',' : '[');
                pc_json_write_cstr(&errors, err);
            }
        }
    }
    if (deliver(p, req, b, resp)) {
        if (rejected) pc_counter_add(p->rejected, rejected);
        size_t listed = rejected < 10 ? rejected : 10;
        size_t too_big = list_rejected(b, &errors, &listed); /* counted as refused in deliver */
        rejected += too_big;
        pc_buf_printf(&resp->body,
                      "{\"status\":\"accepted\",\"ingested\":%zu,\"total\":%zu,\"rejected\":%zu",
                      b->n - too_big, spans->arr.n, rejected);
        if (rejected) {
            pc_buf_puts(&resp->body, ",\"errors\":");
            pc_buf_append(&resp->body, errors.data, errors.len);
            pc_buf_putc(&resp->body, ']');
        }
        pc_buf_putc(&resp->body, '}');
    }
    pc_buf_free(&errors);
    pc_batch_unref(b);
}

/* GET /health: {"status":"healthy|degraded|unhealthy","exporters":[...]}
 * (pc_host_health); 503 when an exporter cannot accept, so orchestrators
 * restart what is stuck. */
static void handle_health(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    (void)req;
    prela *p = ctx;
    pc_buf ex = PC_BUF_INIT;
    pc_health_state s = pc_host_health(p->host, &ex);
    pc_buf_printf(&resp->body, "{\"status\":\"%s\",\"exporters\":", pc_health_status(s));
    pc_buf_append(&resp->body, ex.data, ex.len);
    pc_buf_putc(&resp->body, '}');
    pc_buf_free(&ex);
    if (s == PC_HEALTH_UNAVAILABLE) resp->status = 503;
}

static void handle_root(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    (void)ctx, (void)req;
    pc_buf_puts(&resp->body, "{\"service\":\"prela-collector\",\"version\":\"" PC_VERSION
                             "\",\"status\":\"running\"}");
}

static const pc_http_route routes[] = {
    {"POST", "/v1/traces", 0, handle_traces, PC_SCOPE_INGEST},
    {"POST", "/v1/spans", 0, handle_spans, PC_SCOPE_INGEST},
    {"POST", "/v1/batch", 0, handle_batch, PC_SCOPE_INGEST},
    {"GET", "/health", 0, handle_health, PC_SCOPE_NONE},
    {"GET", "/", 0, handle_root, PC_SCOPE_NONE},
};

/* ---------------------------------------------------------------- lifecycle */

static int validate(const void *cfg_, char *err, size_t errlen)
{
    const prela_cfg *cfg = cfg_;
    if (cfg->api_keys.n) {
        snprintf(err, errlen,
                 "api_keys: removed; API keys now live in the top-level auth: section, for every "
                 "port, e.g.\n  auth:\n    keys:\n      - {name: sdk, key: <the key>, project: %s, "
                 "scopes: [ingest]}",
                 cfg->project_id && *cfg->project_id ? cfg->project_id : "default");
        return -1;
    }
    return pc_tls_validate(&cfg->tls, "", err, errlen);
}

static void *create(const char *id, const void *cfg, const pc_consumer *next)
{
    if (!next) {
        pc_log(PC_LOG_ERROR, id, "receiver is not in any pipeline");
        return NULL;
    }
    prela *p = pc_xcalloc(1, sizeof(*p));
    p->id = pc_xstrdup(id);
    p->cfg = cfg;
    p->next = *next;
    return p;
}

static int start(void *ctx, pc_host *host)
{
    prela *p = ctx;
    p->host = host;
    pc_host_receiver_counters(host, p->id, "http", &p->counters);
    p->rejected = pc_host_dropped(host, p->id, PC_SIGNAL_TRACES, "rejected");
    pc_http_config hc = {.name = p->id,
                         .endpoint = p->cfg->endpoint,
                         .max_body = p->cfg->max_body,
                         .cors_origins = p->cfg->cors_origins,
                         .auth = pc_host_auth(host),
                         .budget = pc_host_budget(host),
                         .tls = &p->cfg->tls,
                         .metrics = pc_host_metrics(host)};
    pc_http_set_limits(&hc, &p->cfg->limits);
    p->http = pc_http_start(&hc, routes, sizeof(routes) / sizeof(routes[0]), p);
    return p->http ? 0 : -1;
}

static void shutdown_(void *ctx)
{
    prela *p = ctx;
    pc_http_stop(p->http);
    p->http = NULL;
}

static void destroy(void *ctx)
{
    prela *p = ctx;
    if (!p) return;
    shutdown_(p);
    free(p->id);
    free(p);
}

const pc_component_ops pc_prela_receiver_ops = {
    .type = "prela",
    .kind = PC_RECEIVER,
    .options = options,
    .config_size = sizeof(prela_cfg),
    .validate = validate,
    .create = create,
    .start = start,
    .shutdown = shutdown_,
    .destroy = destroy,
};
