/*
 * workload.c - builds the reference workload's request bodies (workload.h):
 * spans described neutrally (spec_span), then encoded as OTLP protobuf or as
 * Prela SDK JSON; finds the id markers that each request overwrites.
 *
 * Reading order: the span shapes and their attributes, the ids, the two
 * encoders, the workload API (build, patch, first trace id), then the helpers
 * of the single-thread benchmarks (reference request and batch, CPU clock).
 */
#include "workload.h"

#include "arena.h"
#include "buf.h"
#include "json.h"
#include "mem.h"
#include "processors/normalize.h"
#include "formats/otlp_proto.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ----------------------------------------------------------- the workload -- */

enum { A_STR, A_INT };

typedef struct attr {
    const char *key;
    int type;
    const char *s; /* A_STR */
    int64_t i;     /* A_INT */
} attr;

#define MAX_ATTRS 20
#define SPANS_PER_TRACE LG_SPANS_PER_TRACE

typedef struct spec_span {
    int tidx, sidx, parent; /* parent: index in the trace, -1 for the root */
    const char *name;
    const char *span_type; /* Prela span_type */
    int kind;              /* OTLP SpanKind */
    int64_t start_ns, end_ns;
    const char *status_msg; /* non-NULL: the span failed */
    const char *exc_type, *exc_msg;
    attr a[MAX_ATTRS];
    int n;
} spec_span;

enum { R_AGENT, R_LLM, R_TOOL, R_EMBED, R_HTTP };

/* One trace: parent, role and timing (ms from the trace start) of each span. */
static const struct {
    int parent, role, start_ms, end_ms;
} shape[SPANS_PER_TRACE] = {
    {-1, R_AGENT, 0, 8000},  {0, R_LLM, 10, 1210},     {0, R_LLM, 2030, 3230},
    {0, R_LLM, 4260, 5460},  {0, R_LLM, 5470, 7970},   {0, R_TOOL, 1220, 2020},
    {0, R_TOOL, 3240, 4040}, {0, R_EMBED, 4050, 4250}, {5, R_HTTP, 1230, 2000},
    {6, R_HTTP, 3250, 4020},
};
#define ERROR_SIDX 4 /* the LLM span that fails in every trace */

static const struct {
    const char *system, *model;
} models[] = {
    {"openai", "gpt-4o"},
    {"anthropic", "claude-3-5-sonnet-20241022"},
    {"openai", "gpt-4o-mini"},
    {"aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0"},
};

static const attr resource_attrs[] = {
    {"service.name", A_STR, "research-agent", 0},
    {"service.version", A_STR, "1.4.2", 0},
    {"service.instance.id", A_STR, "7c9e6679-7425-40de-944b-e07fc1f90ae7", 0},
    {"deployment.environment.name", A_STR, "bench", 0},
    {"telemetry.sdk.name", A_STR, "opentelemetry", 0},
    {"telemetry.sdk.language", A_STR, "python", 0},
    {"telemetry.sdk.version", A_STR, "1.27.0", 0},
    {"host.name", A_STR, "bench-host-01", 0},
    {"process.pid", A_INT, NULL, 41873},
};
#define N_RESOURCE_ATTRS (sizeof(resource_attrs) / sizeof(resource_attrs[0]))

/* Deterministic filler prose of exactly |n| bytes, different for each |seed|. */
static char *text(pc_arena *a, size_t n, uint32_t seed)
{
    static const char *const words[] = {
        "the",     "agent",     "should", "review",  "quarterly", "revenue",   "report",
        "and",     "summarize", "key",    "risks",   "for",       "customer",  "retention",
        "across",  "regions",   "using",  "tools",   "search",    "documents", "compare",
        "with",    "previous",  "year",   "figures", "then",      "draft",     "a",
        "concise", "answer",    "citing", "sources",
    };
    char *out = pc_arena_alloc(a, n + 1);
    size_t len = 0;
    uint32_t x = seed * 2654435761u + 12345u;
    while (len < n) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % (sizeof(words) / sizeof(words[0]))];
        for (const char *c = w; *c && len < n; c++)
            out[len++] = *c;
        if (len < n) out[len++] = ' ';
    }
    out[n] = 0;
    return out;
}

static char *fmt(pc_arena *a, const char *f, ...) __attribute__((format(printf, 2, 3)));
static char *fmt(pc_arena *a, const char *f, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(tmp, sizeof(tmp), f, ap);
    va_end(ap);
    return pc_arena_strndup(a, tmp, (size_t)n);
}

static void add(spec_span *s, const char *key, int type, const char *str, int64_t i)
{
    if (s->n >= MAX_ATTRS) abort();
    s->a[s->n++] = (attr){key, type, str, i};
}
#define ADD_S(s, k, v) add(s, k, A_STR, v, 0)
#define ADD_I(s, k, v) add(s, k, A_INT, NULL, v)

/* Fills span |sidx| of trace |t| (all strings in |a|); |base_ns| is the trace start. */
static void make_span(pc_arena *a, spec_span *s, int t, int sidx, int64_t base_ns)
{
    memset(s, 0, sizeof(*s));
    s->tidx = t;
    s->sidx = sidx;
    s->parent = shape[sidx].parent;
    s->start_ns = base_ns + shape[sidx].start_ms * 1000000LL + sidx * 1371;
    s->end_ns = base_ns + shape[sidx].end_ms * 1000000LL + sidx * 2713;
    uint32_t seed = (uint32_t)(t * 16 + sidx);
    int m = (t + sidx) % (int)(sizeof(models) / sizeof(models[0]));
    switch (shape[sidx].role) {
    case R_AGENT:
        s->name = "invoke_agent research-assistant";
        s->span_type = "agent";
        s->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL;
        ADD_S(s, "gen_ai.operation.name", "invoke_agent");
        ADD_S(s, "gen_ai.agent.name", "research-assistant");
        ADD_S(s, "gen_ai.conversation.id", fmt(a, "conv_%08x", seed * 2246822519u));
        break;
    case R_LLM: {
        int err = sidx == ERROR_SIDX;
        s->name = fmt(a, "chat %s", models[m].model);
        s->span_type = "llm";
        s->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
        ADD_S(s, "gen_ai.operation.name", "chat");
        ADD_S(s, "gen_ai.system", models[m].system);
        ADD_S(s, "gen_ai.request.model", models[m].model);
        ADD_I(s, "gen_ai.usage.input_tokens", 180 + (t * 37 + sidx * 13) % 400);
        ADD_I(s, "gen_ai.usage.output_tokens", err ? 0 : 40 + (t * 29 + sidx * 7) % 200);
        ADD_S(s, "gen_ai.prompt", text(a, 512, seed));
        ADD_S(s, "gen_ai.completion", text(a, 256, seed + 7919));
        if (err) {
            s->status_msg = "Error code: 429 - rate limit exceeded";
            s->exc_type = "openai.RateLimitError";
            s->exc_msg = fmt(a,
                             "Error code: 429 - Rate limit reached for %s on tokens per min "
                             "(TPM): Limit 30000.",
                             models[m].model);
        }
        break;
    }
    case R_TOOL: {
        const char *tool = sidx == 5 ? "web_search" : "fetch_page";
        s->name = fmt(a, "execute_tool %s", tool);
        s->span_type = "tool";
        s->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL;
        ADD_S(s, "gen_ai.operation.name", "execute_tool");
        ADD_S(s, "gen_ai.tool.name", tool);
        ADD_S(s, "gen_ai.tool.type", "function");
        ADD_S(s, "gen_ai.tool.call.id", fmt(a, "call_%08x%04x", seed * 3266489917u, t & 0xffff));
        break;
    }
    case R_EMBED:
        s->name = "embeddings text-embedding-3-small";
        s->span_type = "embedding";
        s->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
        ADD_S(s, "gen_ai.operation.name", "embeddings");
        ADD_S(s, "gen_ai.system", "openai");
        ADD_S(s, "gen_ai.provider.name", "openai");
        ADD_S(s, "gen_ai.request.model", "text-embedding-3-small");
        ADD_I(s, "gen_ai.usage.input_tokens", 64 + t % 50);
        ADD_S(s, "server.address", "api.openai.com");
        break;
    case R_HTTP:
        s->name = "GET";
        s->span_type = "custom";
        s->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
        ADD_S(s, "http.request.method", "GET");
        ADD_S(s, "url.full",
              fmt(a, "https://docs.example.com/q%d/report?page=%d", 1 + t % 4, 1 + sidx));
        ADD_I(s, "http.response.status_code", 200);
        ADD_S(s, "server.address", "docs.example.com");
        ADD_I(s, "server.port", 443);
        break;
    }
}

/* ------------------------------------------------------------ identifiers -- */

/*
 * Every id holds the request number: bytes 10..15 of an OTLP trace id and 2..7
 * of a span id; the last 12 hex digits of a Prela UUID. Templates carry MARK_*
 * there; patch offsets are found by searching for the marker.
 */
static const unsigned char MARK_BIN[6] = {0xF1, 0xE2, 0xD3, 0xC4, 0xB5, 0xA6};
#define MARK_HEX "zzzzzzzzzzzz"

static void otlp_trace_id(uint8_t out[16], uint32_t nonce, int t, uint64_t req)
{
    out[0] = (uint8_t)(nonce >> 24), out[1] = (uint8_t)(nonce >> 16);
    out[2] = (uint8_t)(nonce >> 8), out[3] = (uint8_t)nonce;
    out[4] = (uint8_t)(t >> 8), out[5] = (uint8_t)t;
    out[6] = 0x9e, out[7] = 0x37, out[8] = 0x79, out[9] = 0xb9;
    for (int i = 0; i < 6; i++)
        out[10 + i] = req ? (uint8_t)(req >> (40 - 8 * i)) : MARK_BIN[i];
}

static void otlp_span_id(uint8_t out[8], int t, int sidx)
{
    out[0] = (uint8_t)(sidx + 1), out[1] = (uint8_t)t;
    memcpy(out + 2, MARK_BIN, 6);
}

/* The Prela trace UUID; |req| 0 gives the template form with the marker. */
static void prela_trace_id(char out[48], uint32_t nonce, int t, uint64_t req)
{
    if (req)
        snprintf(out, 48, "%08x-%04x-4779-a97f-%012llx", nonce, t & 0xffff,
                 (unsigned long long)(req & 0xffffffffffffULL));
    else
        snprintf(out, 48, "%08x-%04x-4779-a97f-" MARK_HEX, nonce, t & 0xffff);
}

static void prela_span_id(char out[48], uint32_t nonce, int t, int sidx)
{
    snprintf(out, 48, "%04x%04x-%04x-4bb7-b2c1-" MARK_HEX, nonce & 0xffff, (unsigned)t & 0xffff,
             (unsigned)sidx & 0xffff);
}

/* --------------------------------------------------------- OTLP encoding -- */

typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;

static AnyValue *any_new(pc_arena *a)
{
    AnyValue *v = pc_arena_alloc(a, sizeof(*v));
    AnyValue init = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    *v = init;
    return v;
}

static KeyValue **kvs_new(pc_arena *a, const attr *x, size_t n)
{
    KeyValue **out = pc_arena_alloc(a, (n ? n : 1) * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        KeyValue *kv = pc_arena_alloc(a, sizeof(*kv));
        KeyValue init = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
        *kv = init;
        kv->key = (char *)x[i].key;
        AnyValue *v = kv->value = any_new(a);
        switch (x[i].type) {
        case A_STR:
            v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
            v->string_value = (char *)x[i].s;
            break;
        case A_INT:
            v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
            v->int_value = x[i].i;
            break;
        }
        out[i] = kv;
    }
    return out;
}

static ProtobufCBinaryData bin(pc_arena *a, const uint8_t *p, size_t n)
{
    uint8_t *c = pc_arena_alloc(a, n);
    memcpy(c, p, n);
    return (ProtobufCBinaryData){n, c};
}

/* Packs |n| spans as one ExportTraceServiceRequest; the caller frees the result. */
static uint8_t *encode_otlp(pc_arena *a, const spec_span *sp, size_t n, uint32_t nonce, size_t *len)
{
    typedef Opentelemetry__Proto__Trace__V1__Span Span;
    Span **spans = pc_arena_alloc(a, n * sizeof(*spans));
    for (size_t i = 0; i < n; i++) {
        const spec_span *s = &sp[i];
        Span *o = pc_arena_alloc(a, sizeof(*o));
        Span init = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
        *o = init;
        uint8_t tid[16], sid[8];
        otlp_trace_id(tid, nonce, s->tidx, 0);
        o->trace_id = bin(a, tid, 16);
        otlp_span_id(sid, s->tidx, s->sidx);
        o->span_id = bin(a, sid, 8);
        if (s->parent >= 0) {
            otlp_span_id(sid, s->tidx, s->parent);
            o->parent_span_id = bin(a, sid, 8);
        }
        o->flags = 0x301; /* sampled, parent-is-remote known */
        o->name = (char *)s->name;
        o->kind = s->kind;
        o->start_time_unix_nano = (uint64_t)s->start_ns;
        o->end_time_unix_nano = (uint64_t)s->end_ns;
        o->n_attributes = (size_t)s->n;
        o->attributes = kvs_new(a, s->a, (size_t)s->n);
        Opentelemetry__Proto__Trace__V1__Status *st = pc_arena_alloc(a, sizeof(*st));
        Opentelemetry__Proto__Trace__V1__Status sinit =
            OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
        *st = sinit;
        if (s->status_msg) {
            st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
            st->message = (char *)s->status_msg;
        }
        o->status = st;
        if (s->exc_type) {
            typedef Opentelemetry__Proto__Trace__V1__Span__Event Event;
            Event *e = pc_arena_alloc(a, sizeof(*e));
            Event einit = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
            *e = einit;
            e->name = "exception";
            e->time_unix_nano = (uint64_t)s->end_ns - 1000;
            attr ex[] = {{"exception.type", A_STR, s->exc_type, 0},
                         {"exception.message", A_STR, s->exc_msg, 0}};
            e->n_attributes = 2;
            e->attributes = kvs_new(a, ex, 2);
            o->n_events = 1;
            o->events = pc_arena_alloc(a, sizeof(Event *));
            o->events[0] = e;
        }
        spans[i] = o;
    }
    Opentelemetry__Proto__Common__V1__InstrumentationScope scope =
        OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    scope.name = "opentelemetry.instrumentation.openai_v2";
    scope.version = "2.1b0";
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
        OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp = &ss;
    ss.scope = &scope;
    ss.n_spans = n;
    ss.spans = spans;
    Opentelemetry__Proto__Resource__V1__Resource res =
        OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    res.n_attributes = N_RESOURCE_ATTRS;
    res.attributes = kvs_new(a, resource_attrs, N_RESOURCE_ATTRS);
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs =
        OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp = &rs;
    rs.resource = &res;
    rs.n_scope_spans = 1;
    rs.scope_spans = &ssp;
    rs.schema_url = "https://opentelemetry.io/schemas/1.27.0";
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.n_resource_spans = 1;
    req.resource_spans = &rsp;
    *len =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            &req);
    uint8_t *out = pc_xmalloc(*len);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, out);
    return out;
}

/* --------------------------------------------------------- Prela encoding -- */

/* The Prela SDK's timestamp form: isoformat() + "Z" of an aware UTC datetime. */
static void write_sdk_time(pc_buf *b, int64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&sec, &tm);
    pc_buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00Z\"", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  (int)(ns % 1000000000LL / 1000));
}

/* Writes |x| as the members of a JSON object, Python json.dumps style. */
static void write_attrs(pc_buf *b, const attr *x, size_t n, int first)
{
    for (size_t i = 0; i < n; i++) {
        if (!first || i) pc_buf_puts(b, ", ");
        pc_json_write_cstr(b, x[i].key);
        pc_buf_puts(b, ": ");
        switch (x[i].type) {
        case A_STR:
            pc_json_write_cstr(b, x[i].s);
            break;
        case A_INT:
            pc_json_write_int(b, x[i].i);
            break;
        }
    }
}

/* Writes {"spans": [...]} as the Prela SDK would serialize those spans. */
static uint8_t *encode_prela(const spec_span *sp, size_t n, uint32_t nonce, size_t *len)
{
    pc_buf b = PC_BUF_INIT;
    char id[48];
    pc_buf_puts(&b, "{\"spans\": [");
    for (size_t i = 0; i < n; i++) {
        const spec_span *s = &sp[i];
        pc_buf_puts(&b, i ? ", {\"span_id\": " : "{\"span_id\": ");
        prela_span_id(id, nonce, s->tidx, s->sidx);
        pc_json_write_cstr(&b, id);
        pc_buf_puts(&b, ", \"trace_id\": ");
        prela_trace_id(id, nonce, s->tidx, 0);
        pc_json_write_cstr(&b, id);
        pc_buf_puts(&b, ", \"parent_span_id\": ");
        if (s->parent >= 0) {
            prela_span_id(id, nonce, s->tidx, s->parent);
            pc_json_write_cstr(&b, id);
        } else {
            pc_buf_puts(&b, "null");
        }
        pc_buf_puts(&b, ", \"name\": ");
        pc_json_write_cstr(&b, s->name);
        pc_buf_puts(&b, ", \"span_type\": ");
        pc_json_write_cstr(&b, s->span_type);
        pc_buf_puts(&b, ", \"started_at\": ");
        write_sdk_time(&b, s->start_ns);
        pc_buf_puts(&b, ", \"ended_at\": ");
        write_sdk_time(&b, s->end_ns);
        pc_buf_puts(&b, ", \"duration_ms\": ");
        pc_json_write_double(&b, (double)(s->end_ns - s->start_ns) / 1e6);
        pc_buf_puts(&b, s->status_msg ? ", \"status\": \"error\", \"status_message\": "
                                      : ", \"status\": \"success\", \"status_message\": null");
        if (s->status_msg) pc_json_write_cstr(&b, s->status_msg);
        pc_buf_puts(&b, ", \"attributes\": {");
        write_attrs(&b, resource_attrs, 1, 1); /* the SDK puts service.name on every span */
        write_attrs(&b, s->a, (size_t)s->n, 0);
        pc_buf_puts(&b, "}, \"events\": [");
        if (s->exc_type) {
            pc_buf_puts(&b, "{\"name\": \"exception\", \"timestamp\": ");
            write_sdk_time(&b, s->end_ns - 1000);
            pc_buf_puts(&b, ", \"attributes\": {");
            attr ex[] = {{"exception.type", A_STR, s->exc_type, 0},
                         {"exception.message", A_STR, s->exc_msg, 0}};
            write_attrs(&b, ex, 2, 1);
            pc_buf_puts(&b, "}}");
        }
        pc_buf_puts(&b, "]}");
    }
    pc_buf_puts(&b, "]}");
    return (uint8_t *)pc_buf_steal(&b, len);
}

/* ------------------------------------------------------------ the API -- */

int lg_workload_build(lg_workload *w, int format, int spans, uint32_t nonce)
{
    memset(w, 0, sizeof(*w));
    if (spans <= 0 || spans % SPANS_PER_TRACE) {
        fprintf(stderr, "loadgen: %d spans per request is not a multiple of %d\n", spans,
                SPANS_PER_TRACE);
        return -1;
    }
    int n_traces = spans / SPANS_PER_TRACE;
    size_t n = (size_t)spans;
    pc_arena *a = pc_arena_create(1 << 20);
    spec_span *sp = pc_arena_alloc(a, n * sizeof(*sp));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t base = ((int64_t)now.tv_sec - 60) * 1000000000LL;
    for (int t = 0; t < n_traces; t++)
        for (int s = 0; s < SPANS_PER_TRACE; s++)
            make_span(a, &sp[t * SPANS_PER_TRACE + s], t, s, base + t * 250000000LL);
    w->format = format;
    w->spans = spans;
    w->nonce = nonce;
    w->data = format == LG_BODY_OTLP ? encode_otlp(a, sp, n, nonce, &w->len)
                                     : encode_prela(sp, n, nonce, &w->len);
    pc_arena_destroy(a);

    const void *mark = format == LG_BODY_OTLP ? (const void *)MARK_BIN : MARK_HEX;
    size_t mlen = format == LG_BODY_OTLP ? sizeof(MARK_BIN) : strlen(MARK_HEX);
    size_t want = n + n + (size_t)n_traces * (SPANS_PER_TRACE - 1); /* trace, span, parent ids */
    w->patch = pc_xmalloc(want * sizeof(size_t));
    const uint8_t *p = w->data, *end = w->data + w->len;
    while ((p = memmem(p, (size_t)(end - p), mark, mlen))) {
        if (w->n_patch == want) break;
        w->patch[w->n_patch++] = (size_t)(p - w->data);
        p += mlen;
    }
    if (w->n_patch != want || p) { /* p: a marker beyond the expected ones */
        fprintf(stderr, "loadgen: body has %zu id markers, expected %zu\n", w->n_patch, want);
        lg_workload_free(w);
        return -1;
    }
    return 0;
}

void lg_workload_patch(const lg_workload *w, uint8_t *body, uint64_t req)
{
    uint8_t v[12];
    size_t vl;
    if (w->format == LG_BODY_OTLP) {
        for (int i = 0; i < 6; i++)
            v[i] = (uint8_t)(req >> (40 - 8 * i));
        vl = 6;
    } else {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 12; i++)
            v[i] = (uint8_t)hex[(req >> (44 - 4 * i)) & 15];
        vl = 12;
    }
    for (size_t i = 0; i < w->n_patch; i++)
        memcpy(body + w->patch[i], v, vl);
}

void lg_workload_first_trace_id(const lg_workload *w, uint64_t req, char out[48])
{
    if (w->format == LG_BODY_PRELA) {
        prela_trace_id(out, w->nonce, 0, req);
        return;
    }
    uint8_t id[16];
    otlp_trace_id(id, w->nonce, 0, req);
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", id[i]);
}

void lg_workload_free(lg_workload *w)
{
    free(w->data);
    free(w->patch);
    memset(w, 0, sizeof(*w));
}

/* ------------------------------------------- single-thread benchmark helpers -- */

uint8_t *lg_reference_request(lg_workload *w, uint32_t nonce)
{
    if (lg_workload_build(w, LG_BODY_OTLP, 100, nonce)) return NULL;
    uint8_t *body = pc_xmalloc(w->len);
    memcpy(body, w->data, w->len);
    lg_workload_patch(w, body, 1);
    return body;
}

pc_batch *lg_reference_batch(uint32_t nonce)
{
    lg_workload w;
    uint8_t *body = lg_reference_request(&w, nonce);
    if (!body) return NULL;
    pc_batch *b = lg_decode_batch(body, w.len, "the reference request");
    free(body);
    lg_workload_free(&w);
    return b;
}

pc_batch *lg_decode_batch(const uint8_t *body, size_t len, const char *what)
{
    pc_batch *b = pc_batch_create(NULL);
    pc_otlp_result res;
    if (pc_otlp_proto_decode(b, body, len, NULL, "default", &pc_span_limits_default, &res)) {
        fprintf(stderr, "workload: decoding %s failed: %s\n", what, res.error);
        pc_batch_unref(b);
        return NULL;
    }
    for (size_t i = 0; i < b->n; i++)
        pc_normalize_span(&b->spans[i], PC_STR_LIT("unknown"));
    return b;
}

double lg_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
