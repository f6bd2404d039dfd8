/*
 * otlp.c - the OTLP receiver (see otlp.h): OTLP/HTTP trace export on :4318.
 *
 * Position: HTTP (http.c: sockets, decompression, size limits) → this handler
 * → otlp_decode.h (protobuf or OTLP/JSON into a pc_batch) → the pipeline → an
 * ExportTraceServiceResponse once the exporters made the batch durable.
 *
 * Answers, as the OTLP/HTTP spec defines them: 200 with a response in the
 * request's encoding (and partial_success when spans were rejected, even all
 * of them); 400 for an unreadable request; 415 for a content type other than
 * application/x-protobuf or application/json; 503 + Retry-After when the
 * pipeline could not make the data durable in time (clients retry); 500 when
 * it never can. Every error body is a google.rpc.Status in the request's
 * encoding (JSON when the content type is unknown), also for the 404, 405 and
 * 413 answers of http.c, through the error hook.
 *
 * Memory: the batch takes over the request arena, so the body, the protobuf-c
 * structures and every decoded span die together when the last reference goes.
 */
#include "otlp.h"
#include "otlp_decode.h"

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
    bool http;
    char *http_endpoint;
    int64_t http_max_body;
    char *http_cors_origins;
    /* protocols.grpc.* goes here when the gRPC transport lands. */
    char *project_id;
    int64_t retry_after_ms;
} otlp_cfg;

static const pc_option options[] = {
    {"protocols.http", PC_OPT_SECTION, NULL, offsetof(otlp_cfg, http), 0, 0,
     "serve OTLP/HTTP (POST /v1/traces)"},
    {"protocols.http.endpoint", PC_OPT_STRING, "0.0.0.0:4318", offsetof(otlp_cfg, http_endpoint), 0,
     0, "host:port to listen on"},
    {"protocols.http.max_request_body_size", PC_OPT_SIZE, "20MiB",
     offsetof(otlp_cfg, http_max_body), 1024, 1073741824,
     "largest body accepted, before and after decompression"},
    {"protocols.http.cors_origins", PC_OPT_STRING, NULL, offsetof(otlp_cfg, http_cors_origins), 0,
     0, "comma-separated origins allowed by CORS, or *"},
    {"project_id", PC_OPT_STRING, "default", offsetof(otlp_cfg, project_id), 0, 0,
     "project of spans with neither X-Prela-Project-Id nor a prela.project_id resource attribute"},
    {"retry_after", PC_OPT_DURATION, "1s", offsetof(otlp_cfg, retry_after_ms), 1, 3600000,
     "Retry-After sent with 503 when the pipeline could not store the data in time"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

typedef struct otlp {
    char *id;
    const otlp_cfg *cfg;
    pc_consumer next;
    pc_http_server *http;
} otlp;

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

/* ----------------------------------------------------------------- handler */

static void handle_traces(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    otlp *o = ctx;
    const char *ct = pc_http_header(req, "Content-Type");
    body_format fmt = content_format(ct);
    if (fmt == FMT_UNKNOWN) {
        unsupported_type(req, resp, ct);
        return;
    }
    bool json = fmt == FMT_JSON;

    pc_batch *b = pc_batch_create(req->arena); /* owns the body from here on */
    req->arena = NULL;
    b->received_ns = pc_time_now_ns();
    const char *project = pc_http_header(req, "X-Prela-Project-Id");
    pc_otlp_result res;
    int rc =
        json ? pc_otlp_decode_json(b, req->body, req->body_len, project, o->cfg->project_id, &res)
             : pc_otlp_decode_proto(b, req->body, req->body_len, project, o->cfg->project_id, &res);
    if (rc) {
        write_error(o, req, resp, 400, res.error);
        pc_batch_unref(b);
        return;
    }

    pc_result r = PC_OK;
    if (b->n) {
        pc_batch_ref(b); /* the body stays ours until we answered */
        r = pc_consume(&o->next, b);
    }
    if (r == PC_OK) {
        resp->status = 200;
        resp->content_type = json ? CT_JSON : CT_PROTO;
        pc_otlp_write_response(&resp->body, json, &res);
    } else if (r == PC_RETRY) {
        write_error(o, req, resp, 503,
                    "the collector could not store the data in time; retry later");
        resp->retry_after = (int)((o->cfg->retry_after_ms + 999) / 1000);
    } else {
        write_error(o, req, resp, 500, "the collector failed to store the data");
    }
    pc_batch_unref(b);
}

static const pc_http_route routes[] = {
    {"POST", "/v1/traces", 0, handle_traces},
};

/* ---------------------------------------------------------------- lifecycle */

static int validate(const void *cfg_, char *err, size_t errlen)
{
    const otlp_cfg *cfg = cfg_;
    char host[256];
    int port;
    if (!cfg->http) {
        snprintf(err, errlen, "protocols: no protocol enabled; add protocols: http: {}");
        return -1;
    }
    if (pc_http_parse_endpoint(cfg->http_endpoint, host, sizeof(host), &port)) {
        snprintf(err, errlen, "protocols.http.endpoint: '%s' is not host:port",
                 cfg->http_endpoint ? cfg->http_endpoint : "");
        return -1;
    }
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
    (void)host;
    otlp *o = ctx;
    pc_http_config hc = {
        .name = o->id,
        .endpoint = o->cfg->http_endpoint,
        .max_body = o->cfg->http_max_body,
        .cors_origins = o->cfg->http_cors_origins,
        .error = write_error,
    };
    o->http = pc_http_start(&hc, routes, sizeof(routes) / sizeof(routes[0]), o);
    return o->http ? 0 : -1; /* http.c logged where it listens, or why it cannot */
}

static void shutdown_(void *ctx)
{
    otlp *o = ctx;
    pc_http_stop(o->http);
    o->http = NULL;
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
    .options = options,
    .config_size = sizeof(otlp_cfg),
    .validate = validate,
    .create = create,
    .start = start,
    .shutdown = shutdown_,
    .destroy = destroy,
};
