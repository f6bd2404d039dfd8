/*
 * otlp.c - what the OTLP decoders share, and the response bodies (otlp.h).
 *
 * The decoders (otlp_proto_decode.c, otlp_json.c) walk a request and keep a path of
 * the fields they are in; this file turns that path into the messages clients
 * see ("resource_spans[0].scope_spans[0].spans[3].trace_id: ..."), converts
 * ids to lowercase hex, picks each span's project id, and encodes the
 * ExportTraceServiceResponse and google.rpc.Status answers of otlp.c.
 *
 * Why hand-encode google.rpc.Status: it is two fields, and generating code for
 * google/rpc/status.proto (with its google.protobuf.Any details) would add a
 * proto tree for nothing.
 */
#include "formats/otlp.h"

#include "json.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- context */

void pc_otlp_dec_init(pc_otlp_dec *d, pc_batch *b, const char *project, const char *default_project,
                      pc_otlp_result *res)
{
    memset(res, 0, sizeof(*res));
    d->b = b;
    d->a = b->arena;
    d->res = res;
    d->depth = 0;
    d->limits = NULL;
    d->spans_seen = 0;
    /* Copies, so the batch never points into a request header or a config
     * that a downstream component might outlive. */
    d->project = PC_STR_LIT("");
    if (project && *project) {
        size_t n = strlen(project);
        d->project = (pc_str){pc_arena_strndup(d->a, project, n), n};
    }
    if (!default_project) default_project = "";
    size_t n = strlen(default_project);
    d->default_project = (pc_str){pc_arena_strndup(d->a, default_project, n), n};
}

/* ---------------------------------------------------------------- errors */

/* Writes "<path>.<leaf>: " into |out| and returns the length written. */
static size_t format_path(const pc_otlp_dec *d, const char *leaf, char *out, size_t cap)
{
    size_t len = 0;
    int kept = d->depth < PC_OTLP_PATH_MAX ? d->depth : PC_OTLP_PATH_MAX;
    for (int i = 0; i < kept && len < cap; i++) {
        int w = snprintf(out + len, cap - len, "%s%.*s", i ? "." : "", (int)d->path[i].n,
                         d->path[i].name);
        len += w > 0 ? (size_t)w : 0;
        if (d->path[i].idx >= 0 && len < cap) {
            w = snprintf(out + len, cap - len, "[%ld]", d->path[i].idx);
            len += w > 0 ? (size_t)w : 0;
        }
    }
    if (d->depth > kept && len < cap) {
        int w = snprintf(out + len, cap - len, "...");
        len += w > 0 ? (size_t)w : 0;
    }
    if (leaf && len < cap) {
        int w = snprintf(out + len, cap - len, "%s%s", len ? "." : "", leaf);
        len += w > 0 ? (size_t)w : 0;
    }
    if (len && len < cap) {
        int w = snprintf(out + len, cap - len, ": ");
        len += w > 0 ? (size_t)w : 0;
    }
    return len < cap ? len : cap - 1;
}

static void format_error(const pc_otlp_dec *d, const char *leaf, const char *fmt, va_list ap)
{
    char *out = d->res->error;
    size_t cap = sizeof(d->res->error);
    size_t len = format_path(d, leaf, out, cap);
    vsnprintf(out + len, cap - len, fmt, ap);
}

int pc_otlp_fail(pc_otlp_dec *d, const char *leaf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    format_error(d, leaf, fmt, ap);
    va_end(ap);
    return -1;
}

void pc_otlp_reject(pc_otlp_dec *d, const char *leaf, const char *fmt, ...)
{
    if (d->res->rejected++ > 0) return; /* keep the first problem only */
    va_list ap;
    va_start(ap, fmt);
    format_error(d, leaf, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- ids */

void pc_otlp_add_dropped(uint32_t *count, uint64_t n)
{
    *count = n > UINT32_MAX - *count ? UINT32_MAX : *count + (uint32_t)n;
}

int pc_otlp_id(pc_otlp_dec *d, pc_str *out, const uint8_t *p, size_t n, size_t want, bool optional,
               const char *leaf)
{
    static const char hex[] = "0123456789abcdef";
    bool zero = true;
    for (size_t i = 0; i < n && zero; i++)
        zero = p[i] == 0;
    if (optional && zero && (n == 0 || n == want)) {
        if (out) *out = PC_STR_LIT("");
        return 0;
    }
    if (n != want) {
        pc_otlp_reject(d, leaf, "must be %zu bytes, got %zu", want, n);
        return -1;
    }
    if (zero) {
        pc_otlp_reject(d, leaf, "must not be all zero");
        return -1;
    }
    if (!out) return 0;
    char *s = pc_arena_alloc(d->a, 2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = hex[p[i] >> 4];
        s[2 * i + 1] = hex[p[i] & 15];
    }
    s[2 * n] = '\0';
    *out = (pc_str){s, 2 * n};
    return 0;
}

/* ---------------------------------------------------------------- spans */

pc_str pc_otlp_project(const pc_otlp_dec *d, const pc_attrs *resource)
{
    if (d->project.n) return d->project;
    const pc_value *v = pc_attrs_get(resource, "prela.project_id");
    if (v && v->type == PC_V_STR && v->s.n) return v->s;
    return d->default_project;
}

pc_span *pc_otlp_add_span(pc_otlp_dec *d, const pc_attrs *resource, const pc_scope *scope,
                          pc_str project)
{
    pc_span *s = pc_batch_add(d->b);
    s->source = PC_SOURCE_OTLP;
    s->resource = resource;
    s->scope = scope;
    s->project_id = project;
    s->trace_id = s->span_id = s->parent_id = PC_STR_LIT("");
    s->trace_state = s->name = s->status_message = PC_STR_LIT("");
    s->status_text = s->span_type_text = s->service_hint = PC_STR_LIT("");
    return s;
}

void pc_otlp_drop_last_span(pc_otlp_dec *d)
{
    pc_batch_pop(d->b);
}

int pc_otlp_count_span(pc_otlp_dec *d)
{
    if (d->limits && (int64_t)++d->spans_seen > d->limits->max_spans)
        return pc_otlp_fail(d, NULL, "more than max_spans_per_request (%lld) spans in the request",
                            (long long)d->limits->max_spans);
    return 0;
}

int pc_otlp_check_span(pc_otlp_dec *d, const pc_span *s)
{
    char msg[256];
    if (!d->limits || !pc_span_over_limits(s, d->limits, msg, sizeof(msg))) return 0;
    pc_otlp_reject(d, NULL, "%s", msg);
    pc_otlp_drop_last_span(d);
    return 1;
}

int pc_otlp_check_attrs(pc_otlp_dec *d, const pc_attrs *a)
{
    char msg[256];
    if (!d->limits || !pc_attrs_over_limits(a, d->limits, "attributes", msg, sizeof(msg))) return 0;
    return pc_otlp_fail(d, NULL, "%s", msg);
}

int pc_otlp_clamp_kind(int64_t kind)
{
    return kind >= 0 && kind <= 5 ? (int)kind : 0;
}

int pc_otlp_clamp_status(int64_t code)
{
    return code >= PC_OTLP_STATUS_UNSET && code <= PC_OTLP_STATUS_ERROR ? (int)code
                                                                        : PC_OTLP_STATUS_UNSET;
}

/* ---------------------------------------------------------------- responses */

/* Returns how many bytes of |msg| (at most |max|) form valid UTF-8, cut before
 * the first invalid sequence, so a protobuf string field stays well-formed. */
static size_t utf8_prefix(const char *msg, size_t max)
{
    const unsigned char *s = (const unsigned char *)msg;
    size_t n = strnlen(msg, max), i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n) break;
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        size_t k = 1;
        for (; k < len && (s[i + k] & 0xc0) == 0x80; k++)
            cp = cp << 6 | (s[i + k] & 0x3f);
        if (k < len) break;
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) break;
        i += len;
    }
    return i;
}

static void put_varint(pc_buf *out, uint64_t v)
{
    unsigned char b[10];
    size_t n = 0;
    do {
        b[n] = v & 0x7f;
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    pc_buf_append(out, b, n);
}

void pc_otlp_write_response(pc_buf *out, bool json, const pc_otlp_result *res)
{
    if (json) {
        if (res->rejected <= 0 && !res->error[0]) {
            pc_buf_puts(out, "{}");
            return;
        }
        pc_buf_printf(out, "{\"partialSuccess\":{\"rejectedSpans\":\"%lld\",\"errorMessage\":",
                      (long long)res->rejected);
        pc_json_write_cstr(out, res->error);
        pc_buf_puts(out, "}}");
        return;
    }
    if (res->rejected <= 0 && !res->error[0]) return; /* empty message: no fields */
    char msg[sizeof(res->error)];
    size_t n = utf8_prefix(res->error, sizeof(msg) - 1);
    memcpy(msg, res->error, n);
    msg[n] = '\0';
    Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    ps.rejected_spans = res->rejected;
    ps.error_message = msg;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse r =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    r.partial_success = &ps;
    size_t size =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__get_packed_size(
            &r);
    pc_buf_reserve(out, size);
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__pack(
        &r, (uint8_t *)out->data + out->len);
    out->len += size;
    out->data[out->len] = '\0';
}

int pc_otlp_grpc_code(int http_status)
{
    switch (http_status) {
    case 400:
        return PC_GRPC_INVALID_ARGUMENT;
    case 401:
        return PC_GRPC_UNAUTHENTICATED;
    case 403:
        return PC_GRPC_PERMISSION_DENIED;
    case 404:
    case 405:
    case 415:
        return PC_GRPC_UNIMPLEMENTED;
    case 413:
    case 429:
        return PC_GRPC_RESOURCE_EXHAUSTED;
    case 500:
        return PC_GRPC_INTERNAL;
    case 502:
    case 503:
    case 504:
        return PC_GRPC_UNAVAILABLE;
    default:
        return PC_GRPC_UNKNOWN;
    }
}

void pc_otlp_write_status(pc_buf *out, bool json, int code, const char *msg)
{
    if (!msg) msg = "";
    if (json) {
        pc_buf_printf(out, "{\"code\":%d,\"message\":", code);
        pc_json_write_cstr(out, msg);
        pc_buf_putc(out, '}');
        return;
    }
    if (code) {
        pc_buf_putc(out, 0x08);                   /* field 1, varint */
        put_varint(out, (uint64_t)(int64_t)code); /* int32: negatives sign-extend */
    }
    size_t n = utf8_prefix(msg, 4096);
    if (n) {
        pc_buf_putc(out, 0x12); /* field 2, length-delimited */
        put_varint(out, n);
        pc_buf_append(out, msg, n);
    }
}

/* ------------------------------------------------------- ids in OTLP/JSON */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool pc_otlp_hex_decode(pc_str s, uint8_t *out, size_t want)
{
    if (s.n != 2 * want) return false;
    for (size_t i = 0; i < want; i++) {
        int hi = hex_digit(s.p[2 * i]), lo = hex_digit(s.p[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static int b64_digit(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62; /* standard and URL-safe alphabets */
    if (c == '/' || c == '_') return 63;
    return -1;
}

long pc_otlp_b64_decode(pc_str s, uint8_t *out, size_t cap)
{
    size_t n = s.n;
    while (n > 0 && s.p[n - 1] == '=' && s.n - n < 2)
        n--;
    if (n % 4 == 1 || (n < s.n && (s.n % 4) != 0)) return -1;
    size_t len = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_digit(s.p[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len == cap) return -1;
            out[len++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)len;
}
