/*
 * otlp.c - the OTLP receiver (see otlp.h): traces, metrics and logs over
 * OTLP/gRPC (:4317) and OTLP/HTTP (:4318).
 *
 * Position: a transport (grpc.c or http.c: sockets, decompression, size limits)
 * → one handler per transport → export() → src/formats/ (traces into a
 * pc_batch of spans; metrics and logs checked and carried as protobuf) → the
 * pipeline → an Export*ServiceResponse once the exporters made the batch durable.
 *
 * One outcome, two spellings (export() decides, the transports only translate):
 *   accepted (maybe partially)   HTTP 200 + response body  gRPC OK + response
 *   unreadable request           400 + Status              INVALID_ARGUMENT
 *     (also metrics/logs an exporter rejected as too large: a permanent error)
 *   not durable in time          503 + Retry-After         UNAVAILABLE + RetryInfo
 *   never storable               500                       INTERNAL
 * HTTP also answers 415 for a content type other than application/x-protobuf
 * or application/json, and every HTTP error body is a google.rpc.Status in the
 * request's encoding (JSON when the content type is unknown), also for the
 * 404, 405 and 413 answers of http.c, through the error hook. gRPC framing
 * errors, unknown methods and size limits are grpc.c's (see grpc.h).
 *
 * A signal no pipeline of this receiver takes (e.g. metrics in the standalone
 * config) is still checked, then dropped and counted; the sender gets success,
 * so SDKs that export every signal to one endpoint stay quiet. The counts are
 * logged when the first one is dropped and at shutdown.
 *
 * Spans an exporter rejected (too large for its destination, span.h
 * "Rejections") are reported as partial success, never acknowledged silently.
 *
 * Logs: the GenAI records of a logs request (otlp_events.h) also go down the
 * traces pipeline, as carriers of span events in a batch of their own, when
 * a traces pipeline takes this receiver; the answer waits for that batch and
 * the logs batch both (the carriers first). Carriers an exporter rejects
 * make the request a permanent error (400), as logs an exporter rejects do.
 *
 * Memory: the batch takes over the request arena, so the body, the decoded
 * spans (whose strings point into the body) die together when the last
 * reference goes.
 */
#include "otlp.h"
#include "formats/otlp_events.h"
#include "formats/otlp_json.h"
#include "formats/otlp_proto.h"
#include "formats/otlp_signal.h"

#include "grpc.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CT_PROTO "application/x-protobuf"
#define CT_JSON "application/json"

typedef struct otlp_cfg {
    bool grpc;
    char *grpc_endpoint;
    int64_t grpc_max_msg;
    int64_t grpc_max_streams;
    pc_tls_config grpc_tls;
    bool http;
    char *http_endpoint;
    int64_t http_max_body;
    char *http_cors_origins;
    pc_tls_config http_tls;
    pc_http_limits http_limits;
    pc_grpc_limits grpc_limits;
    char *project_id;
    int64_t retry_after_ms;
    pc_span_limits limits;
} otlp_cfg;

static const pc_option options[] = {
    {"protocols.grpc", PC_OPT_SECTION, NULL, offsetof(otlp_cfg, grpc), 0, 0,
     "serve OTLP/gRPC (TraceService, MetricsService, LogsService Export)"},
    {"protocols.grpc.endpoint", PC_OPT_STRING, "0.0.0.0:4317", offsetof(otlp_cfg, grpc_endpoint), 0,
     0, "host:port to listen on (HTTP/2; TLS with tls.cert_file)"},
    {"protocols.grpc.max_recv_msg_size", PC_OPT_SIZE, "4MiB", offsetof(otlp_cfg, grpc_max_msg),
     1024, 1073741824, "largest request message, before and after decompression"},
    {"protocols.grpc.max_concurrent_streams", PC_OPT_INT, "100",
     offsetof(otlp_cfg, grpc_max_streams), 1, 100000, "concurrent calls per connection"},
    PC_TLS_OPTIONS("protocols.grpc.", otlp_cfg, grpc_tls),
    PC_GRPC_LIMIT_OPTIONS("protocols.grpc.", otlp_cfg, grpc_limits),
    {"protocols.http", PC_OPT_SECTION, NULL, offsetof(otlp_cfg, http), 0, 0,
     "serve OTLP/HTTP (POST /v1/traces, /v1/metrics, /v1/logs)"},
    {"protocols.http.endpoint", PC_OPT_STRING, "0.0.0.0:4318", offsetof(otlp_cfg, http_endpoint), 0,
     0, "host:port to listen on"},
    {"protocols.http.max_request_body_size", PC_OPT_SIZE, "20MiB",
     offsetof(otlp_cfg, http_max_body), 1024, 1073741824,
     "largest body accepted, before and after decompression"},
    {"protocols.http.cors_origins", PC_OPT_STRING, NULL, offsetof(otlp_cfg, http_cors_origins), 0,
     0, "comma-separated origins allowed by CORS, or *"},
    PC_TLS_OPTIONS("protocols.http.", otlp_cfg, http_tls),
    PC_HTTP_LIMIT_OPTIONS("protocols.http.", otlp_cfg, http_limits, "1024"),
    {"project_id", PC_OPT_STRING, "default", offsetof(otlp_cfg, project_id), 0, 0,
     "project of spans with neither X-Prela-Project-Id nor a prela.project_id resource attribute"},
    {"retry_after", PC_OPT_DURATION, "1s", offsetof(otlp_cfg, retry_after_ms), 1, 3600000,
     "delay clients are told to wait (Retry-After, RetryInfo) when the pipeline could not store "
     "the data in time"},
    PC_SPAN_LIMIT_OPTIONS(otlp_cfg, limits),
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

typedef struct otlp {
    char *id;
    const otlp_cfg *cfg;
    pc_consumer next;
    pc_grpc_server *grpc;
    pc_http_server *http;
    int64_t dropped[PC_SIGNALS]; /* atomic: items of signals no pipeline takes */
    /* self-metrics, resolved at start (component.h) */
    pc_receiver_counters counters[2]; /* [TR_HTTP], [TR_GRPC] */
    pc_counter *no_pipeline[PC_SIGNALS]; /* prela_receiver_dropped_*{reason="no_pipeline"} */
    pc_counter *rejected; /* prela_receiver_dropped_spans{reason="rejected"}: partial success */
} otlp;

enum { TR_HTTP = 0, TR_GRPC = 1 };

/* ------------------------------------------------------------------- export */

/* What export() made of one request. */
typedef enum outcome {
    OUT_OK = 0, /* accepted; res tells about partial success */
    OUT_BAD,    /* unreadable; res.error says why */
    OUT_RETRY,  /* not durable in time */
    OUT_LIMITED, /* the key's rate limit or quota: 429 / RESOURCE_EXHAUSTED */
    OUT_FAIL,   /* never storable */
} outcome;

static const char *const item_names[PC_SIGNALS] = {"spans", "metric data points", "log records"};

/* Counts |items| of |sig| that no pipeline takes; logs the first time. */
static void count_dropped(otlp *o, pc_signal sig, int64_t items)
{
    if (o->no_pipeline[sig] && items > 0) pc_counter_add(o->no_pipeline[sig], (uint64_t)items);
    if (__atomic_fetch_add(&o->dropped[sig], items, __ATOMIC_RELAXED) == 0 && items)
        pc_log(PC_LOG_INFO, o->id,
               "received %s but no %s pipeline includes this receiver: they are accepted and "
               "dropped (counted; totals at shutdown)",
               pc_signal_name(sig), pc_signal_name(sig));
}

/*
 * Adds what the exporters rejected of |b| (span.h, "Rejections") to |res|:
 * spans become partial success (rejected_spans, and an error_message with the
 * reason and the first span ids, after any problem the decoder found);
 * a metrics or logs request, carried whole, is refused as a permanent error
 * (400 / INVALID_ARGUMENT) naming the limit. Returns the outcome.
 */
static outcome report_rejected(const pc_batch *b, pc_otlp_result *res)
{
    const char *why = pc_batch_reject_reason(b);
    if (!why) why = "an exporter cannot deliver it";
    size_t k = pc_batch_rejected(b);
    if (b->signal != PC_SIGNAL_TRACES) {
        snprintf(res->error, sizeof(res->error), "%s request not stored: %s",
                 pc_signal_name(b->signal), why);
        return OUT_BAD;
    }
    pc_buf msg = PC_BUF_INIT;
    pc_buf_printf(&msg, "%zu span%s not stored: %s; span ids:", k, k == 1 ? "" : "s", why);
    size_t shown = 0;
    for (size_t i = 0; i < b->n && shown < 8; i++)
        if (pc_batch_is_rejected(b, i)) {
            const pc_str *id = &b->spans[i].span_id;
            pc_buf_printf(&msg, "%s %.*s", shown++ ? "," : "", (int)(id->n < 64 ? id->n : 64),
                          id->p ? id->p : "");
        }
    if (k > shown) pc_buf_printf(&msg, " and %zu more", k - shown);
    size_t used = res->rejected > 0 ? strlen(res->error) : 0;
    if (used + 2 < sizeof(res->error))
        snprintf(res->error + used, sizeof(res->error) - used, "%s%s", used ? "; " : "", msg.data);
    pc_buf_free(&msg);
    res->rejected += (int64_t)k;
    return OUT_OK;
}

/*
 * The GenAI log records of the logs batch |logs| (otlp_events.h) as carriers
 * down the traces pipeline, in a batch of their own (its arena charged to the
 * same budget as the request's). Returns PC_OK when there were none or they
 * are durable, else the pipeline's result; *over when the memory budget
 * refused the conversion (then nothing was sent); |rejected| (512 bytes)
 * gets the reason when an exporter can never deliver them (then PC_DROP).
 */
static pc_result export_carriers(otlp *o, const pc_batch *logs, const char *project, bool *over,
                                 char *rejected)
{
    *over = false;
    pc_arena *a = pc_arena_create(logs->raw.n + 4096);
    pc_arena_set_budget(a, pc_arena_budget(logs->arena));
    pc_batch *cb = pc_batch_create(a);
    cb->signal = PC_SIGNAL_TRACES;
    cb->received_ns = logs->received_ns;
    int64_t skipped = 0;
    int64_t n = pc_otlp_events_carriers(cb, logs->raw, project, o->cfg->project_id,
                                        &o->cfg->limits, &skipped);
    if (skipped > 0)
        pc_log(PC_LOG_DEBUG, o->id, "%lld GenAI log records over the limits not attached",
               (long long)skipped);
    if (n < 0 && pc_arena_over(a)) *over = true;
    pc_result r = PC_OK;
    if (n > 0 && cb->n > 0) {
        pc_batch_ref(cb); /* what exporters reject stays readable */
        r = pc_consume(&o->next, cb);
        const char *why = r == PC_OK ? pc_batch_reject_reason(cb) : NULL;
        if (why) {
            snprintf(rejected, 512, "GenAI log records not attached to their spans: %s", why);
            r = PC_DROP;
        }
    }
    pc_batch_unref(cb);
    return r;
}

/*
 * Decodes one Export request of |sig| (|len| bytes at |body|, JSON or protobuf,
 * living in |*arena|) and passes it down the pipeline. Takes over *arena (sets
 * it to NULL). |requested| is the X-Prela-Project-Id header/metadata or NULL;
 * it counts only for admin keys and without auth (pc_auth_project), as does a
 * prela.project_id resource attribute. Spans are charged to |who|'s rate limit
 * (|res->error| and |*retry_s| say why on OUT_LIMITED). |tr| (TR_HTTP,
 * TR_GRPC) picks the counters.
 */
static outcome export(otlp *o, int tr, pc_signal sig, pc_arena **arena, const void *body,
                      size_t len, bool json, const pc_principal *who, const char *requested,
                      pc_otlp_result *res, int *retry_s)
{
    const char *project = pc_auth_project(who, requested);
    pc_batch *b = pc_batch_create(*arena); /* owns the body from here on */
    *arena = NULL;
    b->signal = sig;
    b->received_ns = pc_time_now_ns();
    int rc;
    if (sig != PC_SIGNAL_TRACES) rc = pc_otlp_signal_decode(b, body, len, json, res);
    else if (json)
        rc = pc_otlp_json_decode(b, body, len, project, o->cfg->project_id, &o->cfg->limits, res);
    else
        rc = pc_otlp_proto_decode_body(b, body, len, project, o->cfg->project_id, &o->cfg->limits,
                                       res); /* the body lives in b's arena */
    if (pc_arena_over(b->arena)) {
        /* The memory budget refused part of the decode: not the client's fault,
         * and worth retrying once other requests have gone. */
        snprintf(res->error, sizeof(res->error),
                 "the collector is over its memory budget; retry later");
        *retry_s = 1;
        pc_batch_unref(b);
        return OUT_LIMITED;
    }
    if (rc) {
        pc_batch_unref(b);
        return OUT_BAD;
    }
    int64_t items = sig == PC_SIGNAL_TRACES ? (int64_t)b->n : b->items;
    if (sig == PC_SIGNAL_TRACES && res->rejected > 0 && o->rejected)
        pc_counter_add(o->rejected, (uint64_t)res->rejected);
    if (sig == PC_SIGNAL_TRACES &&
        pc_auth_admit(who, b->n, res->error, sizeof(res->error), retry_s) != PC_AUTH_OK) {
        pc_receiver_count(&o->counters[tr], sig, items, PC_RETRY);
        pc_batch_unref(b);
        return OUT_LIMITED;
    }
    pc_result r = PC_OK;
    if (sig == PC_SIGNAL_LOGS && items && (o->next.signals & PC_SIG_BIT(PC_SIGNAL_TRACES))) {
        /* GenAI records become span events too; the answer waits for both. */
        bool over = false;
        char rejected[512] = "";
        r = export_carriers(o, b, project, &over, rejected);
        if (over) {
            snprintf(res->error, sizeof(res->error),
                     "the collector is over its memory budget; retry later");
            *retry_s = 1;
            pc_batch_unref(b);
            return OUT_LIMITED;
        }
        if (r != PC_OK) {
            pc_receiver_count(&o->counters[tr], sig, items, r);
            pc_batch_unref(b);
            if (rejected[0]) { /* never deliverable: a permanent error, as for logs */
                snprintf(res->error, sizeof(res->error), "%s", rejected);
                return OUT_BAD;
            }
            return r == PC_RETRY ? OUT_RETRY : OUT_FAIL;
        }
    }
    if (!(o->next.signals & PC_SIG_BIT(sig))) {
        count_dropped(o, sig, items);
    } else if (items) {
        pc_batch_ref(b); /* the body, and what exporters reject, stay ours until we answered */
        r = pc_consume(&o->next, b);
        int64_t refused = r == PC_OK ? (int64_t)pc_batch_rejected(b) : 0; /* by an exporter */
        if (refused > items) refused = items;
        pc_receiver_count(&o->counters[tr], sig, items - refused, r);
        pc_receiver_count(&o->counters[tr], sig, refused, PC_DROP);
    }
    outcome out = r == PC_OK ? OUT_OK : r == PC_RETRY ? OUT_RETRY : OUT_FAIL;
    if (out == OUT_OK && pc_batch_rejected(b)) out = report_rejected(b, res);
    pc_batch_unref(b);
    return out;
}

#define MSG_RETRY "the collector could not store the data in time; retry later"
#define MSG_FAIL "the collector failed to store the data"

/* ----------------------------------------------------------------- helpers */

typedef enum body_format { FMT_UNKNOWN = 0, FMT_PROTO, FMT_JSON } body_format;

/* Maps a Content-Type (parameters and case ignored) to the body format. */
static body_format content_format(const char *ct)
{
    if (!ct) return FMT_UNKNOWN;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == strlen(CT_PROTO) && !strncasecmp(ct, CT_PROTO, n)) return FMT_PROTO;
    if (n == strlen(CT_JSON) && !strncasecmp(ct, CT_JSON, n)) return FMT_JSON;
    return FMT_UNKNOWN;
}

/* The error hook of the HTTP server: a google.rpc.Status body, protobuf when the
 * request was protobuf, JSON otherwise. */
static void write_error(void *ctx, const pc_http_req *req, pc_http_resp *resp, int status,
                        const char *msg)
{
    (void)ctx;
    bool proto = req && content_format(pc_http_header(req, "Content-Type")) == FMT_PROTO;
    resp->status = status;
    resp->content_type = proto ? CT_PROTO : CT_JSON;
    pc_buf_reset(&resp->body);
    pc_otlp_write_status(&resp->body, !proto, pc_otlp_grpc_code(status), msg);
}

static void unsupported_type(const pc_http_req *req, pc_http_resp *resp, const char *ct)
{
    char shown[64], msg[200];
    size_t n = 0;
    /* Echo the header, but only as printable ASCII. */
    for (; ct && ct[n] && n < sizeof(shown) - 1; n++)
        shown[n] = ct[n] >= 0x20 && ct[n] < 0x7f ? ct[n] : '?';
    shown[n] = '\0';
    if (ct)
        snprintf(msg, sizeof(msg), "unsupported Content-Type '%s'; use " CT_PROTO " or " CT_JSON,
                 shown);
    else
        snprintf(msg, sizeof(msg), "missing Content-Type; use " CT_PROTO " or " CT_JSON);
    write_error(NULL, req, resp, 415, msg);
}

/* -------------------------------------------------------------- OTLP/HTTP */

static void handle_http(otlp *o, pc_signal sig, pc_http_req *req, pc_http_resp *resp)
{
    const char *ct = pc_http_header(req, "Content-Type");
    body_format fmt = content_format(ct);
    if (fmt == FMT_UNKNOWN) {
        unsupported_type(req, resp, ct);
        return;
    }
    bool json = fmt == FMT_JSON;
    pc_otlp_result res;
    int retry_s = 0;
    /* export() takes the arena, and with it the body; the answer needs only res. */
    switch (export(o, TR_HTTP, sig, &req->arena, req->body, req->body_len, json, &req->principal,
                   pc_http_header(req, "X-Prela-Project-Id"), &res, &retry_s)) {
    case OUT_OK:
        resp->status = 200;
        resp->content_type = json ? CT_JSON : CT_PROTO;
        pc_otlp_write_response(&resp->body, json, &res);
        break;
    case OUT_BAD:
        write_error(o, req, resp, 400, res.error);
        break;
    case OUT_LIMITED:
        write_error(o, req, resp, 429, res.error);
        resp->retry_after = retry_s;
        break;
    case OUT_RETRY:
        write_error(o, req, resp, 503, MSG_RETRY);
        resp->retry_after = (int)((o->cfg->retry_after_ms + 999) / 1000);
        break;
    case OUT_FAIL:
        write_error(o, req, resp, 500, MSG_FAIL);
        break;
    }
}

static void http_traces(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    handle_http(ctx, PC_SIGNAL_TRACES, req, resp);
}

static void http_metrics(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    handle_http(ctx, PC_SIGNAL_METRICS, req, resp);
}

static void http_logs(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    handle_http(ctx, PC_SIGNAL_LOGS, req, resp);
}

static const pc_http_route http_routes[] = {
    {"POST", "/v1/traces", 0, http_traces, PC_SCOPE_INGEST},
    {"POST", "/v1/metrics", 0, http_metrics, PC_SCOPE_INGEST},
    {"POST", "/v1/logs", 0, http_logs, PC_SCOPE_INGEST},
};

/* -------------------------------------------------------------- OTLP/gRPC */

static void handle_grpc(otlp *o, pc_signal sig, pc_grpc_call *call, pc_grpc_reply *reply)
{
    pc_otlp_result res;
    int retry_s = 0;
    switch (export(o, TR_GRPC, sig, &call->arena, call->msg, call->msg_len, false, &call->principal,
                   pc_grpc_metadata(call, "x-prela-project-id"), &res, &retry_s)) {
    case OUT_OK:
        reply->code = PC_GRPC_OK;
        pc_otlp_write_response(&reply->body, false, &res);
        break;
    case OUT_BAD:
        reply->code = PC_GRPC_INVALID_ARGUMENT;
        pc_buf_append(&reply->message, res.error, strlen(res.error));
        break;
    case OUT_LIMITED:
        reply->code = PC_GRPC_RESOURCE_EXHAUSTED;
        pc_buf_append(&reply->message, res.error, strlen(res.error));
        reply->retry_after_ms = retry_s * 1000;
        break;
    case OUT_RETRY:
        reply->code = PC_GRPC_UNAVAILABLE;
        pc_buf_append(&reply->message, MSG_RETRY, strlen(MSG_RETRY));
        reply->retry_after_ms = (int)o->cfg->retry_after_ms;
        break;
    case OUT_FAIL:
        reply->code = PC_GRPC_INTERNAL;
        pc_buf_append(&reply->message, MSG_FAIL, strlen(MSG_FAIL));
        break;
    }
}

static void grpc_traces(void *ctx, pc_grpc_call *call, pc_grpc_reply *reply)
{
    handle_grpc(ctx, PC_SIGNAL_TRACES, call, reply);
}

static void grpc_metrics(void *ctx, pc_grpc_call *call, pc_grpc_reply *reply)
{
    handle_grpc(ctx, PC_SIGNAL_METRICS, call, reply);
}

static void grpc_logs(void *ctx, pc_grpc_call *call, pc_grpc_reply *reply)
{
    handle_grpc(ctx, PC_SIGNAL_LOGS, call, reply);
}

static const pc_grpc_method grpc_methods[] = {
    {"/opentelemetry.proto.collector.trace.v1.TraceService/Export", grpc_traces, PC_SCOPE_INGEST},
    {"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", grpc_metrics,
     PC_SCOPE_INGEST},
    {"/opentelemetry.proto.collector.logs.v1.LogsService/Export", grpc_logs, PC_SCOPE_INGEST},
};

/* ---------------------------------------------------------------- lifecycle */

static int check_endpoint(const char *key, const char *endpoint, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (!pc_http_parse_endpoint(endpoint, host, sizeof(host), &port)) return 0;
    snprintf(err, errlen, "%s: '%s' is not host:port", key, endpoint ? endpoint : "");
    return -1;
}

static int validate(const void *cfg_, char *err, size_t errlen)
{
    const otlp_cfg *cfg = cfg_;
    if (!cfg->grpc && !cfg->http) {
        snprintf(err, errlen, "protocols: no protocol enabled; add grpc: {} and/or http: {}");
        return -1;
    }
    if (cfg->grpc &&
        (check_endpoint("protocols.grpc.endpoint", cfg->grpc_endpoint, err, errlen) ||
         pc_tls_validate(&cfg->grpc_tls, "protocols.grpc.", err, errlen)))
        return -1;
    if (cfg->grpc && cfg->grpc_limits.max_conn_buffer < cfg->grpc_max_msg + 5) {
        snprintf(err, errlen,
                 "protocols.grpc.max_connection_buffer: %lld bytes is less than max_recv_msg_size "
                 "(%lld) + 5, so a largest message could never arrive",
                 (long long)cfg->grpc_limits.max_conn_buffer, (long long)cfg->grpc_max_msg);
        return -1;
    }
    if (cfg->http &&
        (check_endpoint("protocols.http.endpoint", cfg->http_endpoint, err, errlen) ||
         pc_tls_validate(&cfg->http_tls, "protocols.http.", err, errlen)))
        return -1;
    if (!cfg->project_id || !*cfg->project_id) {
        snprintf(err, errlen, "project_id: must not be empty");
        return -1;
    }
    return 0;
}

static void *create(const char *id, const void *cfg, const pc_consumer *next)
{
    if (!next) {
        pc_log(PC_LOG_ERROR, id, "receiver %s is not in any pipeline", id);
        return NULL;
    }
    otlp *o = pc_xcalloc(1, sizeof(*o));
    o->id = pc_xstrdup(id);
    o->cfg = cfg;
    o->next = *next;
    return o;
}

static int start(void *ctx, pc_host *host)
{
    otlp *o = ctx;
    pc_host_receiver_counters(host, o->id, "http", &o->counters[TR_HTTP]);
    pc_host_receiver_counters(host, o->id, "grpc", &o->counters[TR_GRPC]);
    for (int s = 0; s < PC_SIGNALS; s++)
        o->no_pipeline[s] = pc_host_dropped(host, o->id, (pc_signal)s, "no_pipeline");
    o->rejected = pc_host_dropped(host, o->id, PC_SIGNAL_TRACES, "rejected");
    if (o->cfg->grpc) {
        pc_grpc_config gc = {
            .name = o->id,
            .endpoint = o->cfg->grpc_endpoint,
            .max_msg = o->cfg->grpc_max_msg,
            .max_concurrent_streams = (int)o->cfg->grpc_max_streams,
            .max_inflight = 1024,
            .drain_timeout_ms = 30000,
            .retry_after_ms = (int)o->cfg->retry_after_ms,
            .auth = pc_host_auth(host),
            .budget = pc_host_budget(host),
            .tls = &o->cfg->grpc_tls,
            .metrics = pc_host_metrics(host),
        };
        pc_grpc_set_limits(&gc, &o->cfg->grpc_limits);
        o->grpc = pc_grpc_start(&gc, grpc_methods, sizeof(grpc_methods) / sizeof(grpc_methods[0]), o);
        if (!o->grpc) return -1; /* grpc.c logged why */
    }
    if (o->cfg->http) {
        pc_http_config hc = {
            .name = o->id,
            .endpoint = o->cfg->http_endpoint,
            .max_body = o->cfg->http_max_body,
            .cors_origins = o->cfg->http_cors_origins,
            .error = write_error,
            .auth = pc_host_auth(host),
            .budget = pc_host_budget(host),
            .tls = &o->cfg->http_tls,
            .metrics = pc_host_metrics(host),
        };
        pc_http_set_limits(&hc, &o->cfg->http_limits);
        o->http = pc_http_start(&hc, http_routes, sizeof(http_routes) / sizeof(http_routes[0]), o);
        if (!o->http) return -1; /* http.c logged why */
    }
    return 0;
}

static void shutdown_(void *ctx)
{
    otlp *o = ctx;
    if (!o->grpc && !o->http) return;
    pc_grpc_stop(o->grpc);
    o->grpc = NULL;
    pc_http_stop(o->http);
    o->http = NULL;
    for (int s = 0; s < PC_SIGNALS; s++)
        if (o->dropped[s])
            pc_log(PC_LOG_INFO, o->id, "dropped %lld %s (no %s pipeline)",
                   (long long)o->dropped[s], item_names[s], pc_signal_name((pc_signal)s));
}

static void destroy(void *ctx)
{
    otlp *o = ctx;
    if (!o) return;
    shutdown_(o);
    free(o->id);
    free(o);
}

const pc_component_ops pc_otlp_receiver_ops = {
    .type = "otlp",
    .kind = PC_RECEIVER,
    .signals = PC_SIG_BIT(PC_SIGNAL_TRACES) | PC_SIG_BIT(PC_SIGNAL_METRICS) |
               PC_SIG_BIT(PC_SIGNAL_LOGS),
    .options = options,
    .config_size = sizeof(otlp_cfg),
    .validate = validate,
    .create = create,
    .start = start,
    .shutdown = shutdown_,
    .destroy = destroy,
};
