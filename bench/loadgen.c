/*
 * loadgen.c - the collector's load generator: drives one workload against a
 * running collector and prints what it measured. It is an instrument, not a
 * test: it never passes or fails on the figures.
 *
 *   loadgen --target HOST:PORT --format otlp|prela [--connections 16]
 *           [--duration 10s] [--warmup 2s] [--spans-per-request 100] [--pid PID]
 *   loadgen --format otlp|prela [--spans-per-request 100] --dump FILE
 *
 * Workload: the reference workload of design.md. Each request carries
 * spans-per-request/10 traces of 10 spans (agent root, four LLM chat spans with
 * gen_ai.* attributes and ~512 + 256 bytes of prompt/completion text, two tool
 * spans, one embedding span, two HTTP client spans; the last LLM span of every
 * trace fails with an exception event). `otlp` POSTs it as OTLP/HTTP protobuf to
 * /v1/traces (one ResourceSpans, one ScopeSpans); `prela` POSTs the same spans as
 * Prela SDK JSON to /v1/batch ({"spans": [...]}, so a request holds the same 100
 * spans as an OTLP one; /v1/traces would take one trace per request).
 *
 * Distinct ids: the store deduplicates by (trace_id, span_id), so a repeated body
 * would cost the collector almost nothing. The body is built once with a marker
 * where every id holds its request number (6 bytes in OTLP ids, 12 hex digits in
 * the UUIDs); each request overwrites those bytes in place with a fresh number
 * from one global counter. Ids also carry a per-run nonce, so runs never collide.
 * Timestamps are fixed at start-up (the same for every request).
 *
 * Measuring: one thread per connection, keep-alive HTTP/1.1 on raw sockets, one
 * request in flight per connection (write it, read headers and Content-Length
 * body). Requests that complete in the window [start+warmup, start+warmup+
 * duration] count for rates, latency and errors. With --pid, the collector's
 * utime+stime (/proc/PID/stat) is read at both window edges and VmRSS/VmHWM at
 * the end. The last output line ("result ...", key=value) is for scripts.
 */
#include "arena.h"
#include "buf.h"
#include "json.h"
#include "mem.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- options -- */

enum { FMT_OTLP, FMT_PRELA };

typedef struct options {
    char host[256];
    char port[16];
    int format;
    int connections;
    int64_t duration_ns;
    int64_t warmup_ns;
    int spans_per_request;
    int pid;          /* 0 = no collector figures */
    const char *dump; /* write one body to this file and exit */
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --target HOST:PORT --format otlp|prela [--connections 16]\n"
               "               [--duration 10s] [--warmup 2s] [--spans-per-request 100]"
               " [--pid PID]\n"
               "       loadgen --format otlp|prela [--spans-per-request 100] --dump FILE\n"
               "Durations take ms, s or m suffixes (plain numbers are seconds).\n"
               "--dump writes one request body to FILE and exits.\n");
}

/* Parses "10s", "500ms", "2m" or "3" (seconds) into |*ns|. Returns 0 or -1. */
static int parse_duration(const char *s, int64_t *ns)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    double mul = 1e9;
    if (!strcmp(end, "ms"))
        mul = 1e6;
    else if (!strcmp(end, "m"))
        mul = 60e9;
    else if (*end && strcmp(end, "s"))
        return -1;
    *ns = (int64_t)(v * mul);
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof(*o));
    o->format = -1;
    o->connections = 16;
    o->duration_ns = 10000000000LL;
    o->warmup_ns = 2000000000LL;
    o->spans_per_request = 100;
    int have_target = 0;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "loadgen: %s needs a value\n", k);
            return -1;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(k, "--target")) {
            const char *colon = strrchr(v, ':');
            size_t hl = colon ? (size_t)(colon - v) : 0;
            bad = !colon || !hl || hl >= sizeof(o->host) || strlen(colon + 1) >= sizeof(o->port) ||
                  !colon[1];
            if (!bad) {
                memcpy(o->host, v, hl);
                o->host[hl] = 0;
                strcpy(o->port, colon + 1);
                have_target = 1;
            }
        } else if (!strcmp(k, "--format")) {
            if (!strcmp(v, "otlp"))
                o->format = FMT_OTLP;
            else if (!strcmp(v, "prela"))
                o->format = FMT_PRELA;
            else
                bad = 1;
        } else if (!strcmp(k, "--connections")) {
            bad = parse_int(v, 1, 1024, &o->connections);
        } else if (!strcmp(k, "--duration")) {
            bad = parse_duration(v, &o->duration_ns) || o->duration_ns <= 0;
        } else if (!strcmp(k, "--warmup")) {
            bad = parse_duration(v, &o->warmup_ns);
        } else if (!strcmp(k, "--spans-per-request")) {
            bad = parse_int(v, 10, 10000, &o->spans_per_request) || o->spans_per_request % 10;
        } else if (!strcmp(k, "--dump")) {
            o->dump = v;
        } else if (!strcmp(k, "--pid")) {
            bad = parse_int(v, 1, 1 << 30, &o->pid);
        } else {
            fprintf(stderr, "loadgen: unknown option %s\n", k);
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "loadgen: bad value for %s: \"%s\"%s\n", k, v,
                    !strcmp(k, "--spans-per-request") ? " (a multiple of 10, 10..10000)" : "");
            return -1;
        }
    }
    if ((!have_target && !o->dump) || o->format < 0) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ----------------------------------------------------------- the workload -- */

/*
 * The workload is first described neutrally (spec_span), then encoded as OTLP
 * protobuf or as Prela JSON, so both formats carry exactly the same spans.
 */

enum { A_STR, A_INT };

typedef struct attr {
    const char *key;
    int type;
    const char *s; /* A_STR */
    int64_t i;     /* A_INT */
} attr;

#define MAX_ATTRS 20
#define SPANS_PER_TRACE 10

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

/* ---------------------------------------------------------- the template -- */

typedef struct body_template {
    uint8_t *data;
    size_t len;
    size_t *patch; /* offsets of the request-number field of every id */
    size_t n_patch;
    int format;
    uint32_t nonce;
} body_template;

/* Builds the body for |o| and locates its patch points. Returns 0 or -1. */
static int template_build(body_template *tp, const options *o, uint32_t nonce)
{
    int n_traces = o->spans_per_request / SPANS_PER_TRACE;
    size_t n = (size_t)o->spans_per_request;
    pc_arena *a = pc_arena_create(1 << 20);
    spec_span *sp = pc_arena_alloc(a, n * sizeof(*sp));
    int64_t base = (now_ns(CLOCK_REALTIME) / 1000000000LL - 60) * 1000000000LL;
    for (int t = 0; t < n_traces; t++)
        for (int s = 0; s < SPANS_PER_TRACE; s++)
            make_span(a, &sp[t * SPANS_PER_TRACE + s], t, s, base + t * 250000000LL);
    tp->format = o->format;
    tp->nonce = nonce;
    tp->data = o->format == FMT_OTLP ? encode_otlp(a, sp, n, nonce, &tp->len)
                                     : encode_prela(sp, n, nonce, &tp->len);
    pc_arena_destroy(a);

    const void *mark = o->format == FMT_OTLP ? (const void *)MARK_BIN : MARK_HEX;
    size_t mlen = o->format == FMT_OTLP ? sizeof(MARK_BIN) : strlen(MARK_HEX);
    size_t want = n + n + (size_t)n_traces * (SPANS_PER_TRACE - 1); /* trace, span, parent ids */
    tp->patch = pc_xmalloc(want * sizeof(size_t));
    tp->n_patch = 0;
    const uint8_t *p = tp->data, *end = tp->data + tp->len;
    while ((p = memmem(p, (size_t)(end - p), mark, mlen))) {
        if (tp->n_patch == want) break;
        tp->patch[tp->n_patch++] = (size_t)(p - tp->data);
        p += mlen;
    }
    if (tp->n_patch != want || p) { /* p: a marker beyond the expected ones */
        fprintf(stderr, "loadgen: template has %zu id markers, expected %zu\n", tp->n_patch, want);
        return -1;
    }
    return 0;
}

/* Writes request number |req| into every id of |body| (a copy of the template). */
static void template_patch(const body_template *tp, uint8_t *body, uint64_t req)
{
    uint8_t v[12];
    size_t vl;
    if (tp->format == FMT_OTLP) {
        for (int i = 0; i < 6; i++)
            v[i] = (uint8_t)(req >> (40 - 8 * i));
        vl = 6;
    } else {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 12; i++)
            v[i] = (uint8_t)hex[(req >> (44 - 4 * i)) & 15];
        vl = 12;
    }
    for (size_t i = 0; i < tp->n_patch; i++)
        memcpy(body + tp->patch[i], v, vl);
}

/* The id of the first trace of request |req|, as the query API shows it. */
static void first_trace_id(const body_template *tp, uint64_t req, char out[48])
{
    if (tp->format == FMT_PRELA) {
        prela_trace_id(out, tp->nonce, 0, req);
        return;
    }
    uint8_t id[16];
    otlp_trace_id(id, tp->nonce, 0, req);
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", id[i]);
}

/* ------------------------------------------------------------ connections -- */

#define MAX_STATUS 600
#define ST_IO 0 /* connect/send/receive failure or a response we cannot parse */

typedef struct shared {
    const options *o;
    const body_template *tp;
    struct addrinfo *addr;
    const char *header; /* the request line and headers, identical for every request */
    size_t header_len;
    int64_t win_start, win_end; /* CLOCK_MONOTONIC */
    _Atomic uint64_t next_req;
} shared;

typedef struct conn {
    pthread_t th;
    shared *sh;
    uint8_t *body;
    int fd;
    /* inside the window */
    int64_t *lat; /* ns, every completed request */
    size_t n_lat, cap_lat;
    uint64_t ok, status[MAX_STATUS];
    /* whole run, for checking the store */
    uint64_t sent_all, ok_all, last_ok_req;
} conn;

static int conn_open(conn *c)
{
    const struct addrinfo *ai = c->sh->addr;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    return 0;
}

static void conn_close(conn *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int send_request(conn *c)
{
    struct iovec iov[2] = {{(void *)c->sh->header, c->sh->header_len}, {c->body, c->sh->tp->len}};
    int idx = 0;
    while (idx < 2) {
        ssize_t w = writev(c->fd, iov + idx, 2 - idx);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        size_t left = (size_t)w;
        while (idx < 2 && left >= iov[idx].iov_len)
            left -= iov[idx++].iov_len;
        if (idx < 2) {
            iov[idx].iov_base = (char *)iov[idx].iov_base + left;
            iov[idx].iov_len -= left;
        }
    }
    return 0;
}

/* Case-insensitive search for header |name| in the header block; returns its value. */
static const char *find_header(const char *hdr, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(hdr, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n"))
        if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    return NULL;
}

/*
 * Reads one response: status line, headers, Content-Length bytes of body (which
 * are discarded). Returns the status, or -1 on I/O errors and responses we do
 * not understand. Sets |*close_after| when the server will close.
 */
static int read_response(conn *c, int *close_after)
{
    char buf[16384];
    size_t have = 0;
    char *eoh = NULL;
    while (!eoh) {
        if (have == sizeof(buf) - 1) return -1;
        ssize_t r = recv(c->fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        have += (size_t)r;
        buf[have] = 0;
        eoh = strstr(buf, "\r\n\r\n");
    }
    eoh[2] = 0; /* keep the last header's CRLF for find_header */
    int status;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status >= MAX_STATUS)
        return -1;
    const char *cl = find_header(buf, "Content-Length");
    const char *te = find_header(buf, "Transfer-Encoding");
    const char *co = find_header(buf, "Connection");
    *close_after = co && !strncasecmp(co, "close", 5);
    if (te || !cl) return -1; /* libmicrohttpd always sends Content-Length here */
    size_t body = strtoull(cl, NULL, 10);
    size_t got = have - (size_t)(eoh + 4 - buf);
    while (got < body) {
        size_t want = body - got < sizeof(buf) ? body - got : sizeof(buf);
        ssize_t r = recv(c->fd, buf, want, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return status;
}

/* Counts one outcome completed at |done|; |lat| < 0: nothing was sent (connect failed). */
static void record(conn *c, int status, int64_t done, int64_t lat)
{
    if (done < c->sh->win_start || done > c->sh->win_end) return;
    if (status == 200)
        c->ok++;
    else
        c->status[status < 0 ? ST_IO : status]++;
    if (lat < 0) return;
    if (c->n_lat == c->cap_lat) {
        c->cap_lat = c->cap_lat ? c->cap_lat * 2 : 4096;
        c->lat = pc_xrealloc(c->lat, c->cap_lat * sizeof(*c->lat));
    }
    c->lat[c->n_lat++] = lat;
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    shared *sh = c->sh;
    int64_t t;
    while ((t = now_ns(CLOCK_MONOTONIC)) < sh->win_end) {
        if (c->fd < 0 && conn_open(c) < 0) {
            record(c, -1, t, -1);
            usleep(100000);
            continue;
        }
        uint64_t req = atomic_fetch_add(&sh->next_req, 1);
        template_patch(sh->tp, c->body, req);
        int64_t t0 = now_ns(CLOCK_MONOTONIC);
        int status = -1, close_after = 1;
        if (send_request(c) == 0) {
            c->sent_all++;
            status = read_response(c, &close_after);
        }
        int64_t t1 = now_ns(CLOCK_MONOTONIC);
        record(c, status, t1, t1 - t0);
        if (status == 200) {
            c->ok_all++;
            if (req > c->last_ok_req) c->last_ok_req = req;
        }
        if (status < 0 || close_after) conn_close(c);
    }
    conn_close(c);
    return NULL;
}

/* ----------------------------------------------------------- /proc probes -- */

/* utime+stime of |pid| in seconds (and utime alone in |*user|), or -1. */
static double proc_cpu_s(int pid, double *user)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    *user = (double)ut / (double)sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Key:   123 kB" line of /proc/PID/status, in kB, or -1. */
static long proc_status_kb(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Busy and total jiffies of the whole machine (/proc/stat). */
static void machine_cpu(unsigned long long *busy, unsigned long long *total)
{
    unsigned long long v[8] = {0};
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++)
            *total += v[i];
        *busy = *total - v[3] - v[4]; /* minus idle and iowait */
    }
    fclose(f);
}

typedef struct snapshot {
    double collector_cpu, collector_user, self_cpu;
    unsigned long long busy, total;
} snapshot;

static void snap(const options *o, snapshot *s)
{
    s->collector_cpu = o->pid ? proc_cpu_s(o->pid, &s->collector_user) : -1;
    s->self_cpu = (double)now_ns(CLOCK_PROCESS_CPUTIME_ID) / 1e9;
    machine_cpu(&s->busy, &s->total);
}

static void sleep_until(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000LL), (long)(t % 1000000000LL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* ------------------------------------------------------------------ report -- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
    if (!n) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o)) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN); /* a peer that closes shows up as a write error instead */

    uint32_t nonce = (uint32_t)(now_ns(CLOCK_REALTIME) / 1000) ^ ((uint32_t)getpid() * 2654435761u);
    body_template tp;
    if (template_build(&tp, &o, nonce)) return 1;
    if (o.dump) {
        template_patch(&tp, tp.data, 1);
        FILE *f = fopen(o.dump, "wb");
        if (!f || fwrite(tp.data, 1, tp.len, f) != tp.len || fclose(f)) {
            fprintf(stderr, "loadgen: cannot write %s: %s\n", o.dump, strerror(errno));
            return 1;
        }
        printf("loadgen: wrote %zu bytes (%d spans) to %s\n", tp.len, o.spans_per_request, o.dump);
        free(tp.data);
        free(tp.patch);
        return 0;
    }

    struct addrinfo hints = {0}, *addr;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(o.host, o.port, &hints, &addr);
    if (rc) {
        fprintf(stderr, "loadgen: %s:%s: %s\n", o.host, o.port, gai_strerror(rc));
        return 1;
    }
    const char *path = o.format == FMT_OTLP ? "/v1/traces" : "/v1/batch";
    pc_buf hdr = PC_BUF_INIT;
    pc_buf_printf(&hdr,
                  "POST %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: prela-loadgen/1\r\n"
                  "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                  path, o.host, o.port,
                  o.format == FMT_OTLP ? "application/x-protobuf" : "application/json", tp.len);

    shared sh = {.o = &o, .tp = &tp, .addr = addr, .header = hdr.data, .header_len = hdr.len};
    atomic_init(&sh.next_req, 1);
    conn probe = {.sh = &sh, .fd = -1};
    if (conn_open(&probe) < 0) {
        fprintf(stderr, "loadgen: cannot connect to %s:%s: %s\n", o.host, o.port, strerror(errno));
        return 1;
    }
    conn_close(&probe);

    printf("loadgen: %s POST http://%s:%s%s, %d connections, %d spans/request (%d traces x 10), "
           "body %zu bytes + %zu header\n",
           o.format == FMT_OTLP ? "otlp (protobuf)" : "prela (JSON /v1/batch)", o.host, o.port,
           path, o.connections, o.spans_per_request, o.spans_per_request / SPANS_PER_TRACE, tp.len,
           hdr.len);
    printf("loadgen: warmup %.1f s, window %.1f s%s\n", (double)o.warmup_ns / 1e9,
           (double)o.duration_ns / 1e9, o.pid ? "" : " (no --pid: no collector figures)");

    int64_t t_start = now_ns(CLOCK_MONOTONIC);
    sh.win_start = t_start + o.warmup_ns;
    sh.win_end = sh.win_start + o.duration_ns;
    conn *cs = pc_xcalloc((size_t)o.connections, sizeof(conn));
    for (int i = 0; i < o.connections; i++) {
        cs[i].sh = &sh;
        cs[i].fd = -1;
        cs[i].body = pc_xmalloc(tp.len);
        memcpy(cs[i].body, tp.data, tp.len);
        if (pthread_create(&cs[i].th, NULL, conn_main, &cs[i])) {
            fprintf(stderr, "loadgen: pthread_create failed\n");
            return 1;
        }
    }
    snapshot s0, s1;
    sleep_until(sh.win_start);
    snap(&o, &s0);
    long rss0 = o.pid ? proc_status_kb(o.pid, "VmRSS") : -1;
    sleep_until(sh.win_end);
    snap(&o, &s1);
    long rss = o.pid ? proc_status_kb(o.pid, "VmRSS") : -1;
    long hwm = o.pid ? proc_status_kb(o.pid, "VmHWM") : -1;
    long threads = o.pid ? proc_status_kb(o.pid, "Threads") : -1;
    for (int i = 0; i < o.connections; i++)
        pthread_join(cs[i].th, NULL);

    /* aggregate */
    size_t n_lat = 0;
    uint64_t ok = 0, status[MAX_STATUS] = {0}, sent_all = 0, ok_all = 0, last_req = 0;
    for (int i = 0; i < o.connections; i++)
        n_lat += cs[i].n_lat;
    int64_t *lat = pc_xmalloc((n_lat ? n_lat : 1) * sizeof(*lat));
    n_lat = 0;
    for (int i = 0; i < o.connections; i++) {
        memcpy(lat + n_lat, cs[i].lat, cs[i].n_lat * sizeof(*lat));
        n_lat += cs[i].n_lat;
        ok += cs[i].ok;
        for (int k = 0; k < MAX_STATUS; k++)
            status[k] += cs[i].status[k];
        sent_all += cs[i].sent_all;
        ok_all += cs[i].ok_all;
        if (cs[i].last_ok_req > last_req) last_req = cs[i].last_ok_req;
    }
    qsort(lat, n_lat, sizeof(*lat), cmp_i64);

    double secs = (double)o.duration_ns / 1e9;
    double rps = (double)ok / secs, sps = rps * o.spans_per_request;
    uint64_t errs = 0;
    for (int k = 0; k < MAX_STATUS; k++)
        errs += status[k];

    printf("\n");
    printf("  requests/s (200)          %.1f\n", rps);
    printf("  spans/s                   %.0f\n", sps);
    printf("  request bytes/s           %.1f MB/s (%zu bytes per request, %.0f per span)\n",
           rps * (double)(tp.len + hdr.len) / 1e6, tp.len + hdr.len,
           (double)tp.len / o.spans_per_request);
    printf("  latency ms                p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (%zu requests)\n",
           pct_ms(lat, n_lat, 0.50), pct_ms(lat, n_lat, 0.90), pct_ms(lat, n_lat, 0.99),
           n_lat ? (double)lat[n_lat - 1] / 1e6 : 0.0, n_lat);
    printf("  errors                    ");
    if (!errs) printf("none");
    if (status[ST_IO])
        printf("connection/protocol failures: %llu  ", (unsigned long long)status[ST_IO]);
    for (int k = 1; k < MAX_STATUS; k++)
        if (status[k]) printf("HTTP %d: %llu  ", k, (unsigned long long)status[k]);
    printf("\n");

    double cpu = -1;
    if (o.pid && s0.collector_cpu >= 0 && s1.collector_cpu >= 0) {
        cpu = s1.collector_cpu - s0.collector_cpu;
        double user = s1.collector_user - s0.collector_user;
        printf("  collector CPU             %.2f s in %.1f s (%.0f%% of one core; user %.2f s, "
               "system %.2f s)\n",
               cpu, secs, 100 * cpu / secs, user, cpu - user);
        printf("  spans per CPU-second      %.0f  (collector; %.2f CPU-s per million spans)\n",
               cpu > 0 ? (double)ok * o.spans_per_request / cpu : 0.0,
               ok ? cpu * 1e6 / ((double)ok * o.spans_per_request) : 0.0);
        printf("  collector RSS             %.1f MB at window start, %.1f MB at end, peak %.1f MB "
               "(VmHWM), %ld threads\n",
               (double)rss0 / 1024, (double)rss / 1024, (double)hwm / 1024, threads);
    } else if (o.pid) {
        printf("  collector                 pid %d not readable in /proc\n", o.pid);
    }
    double self = s1.self_cpu - s0.self_cpu;
    printf("  loadgen CPU               %.2f s (%.0f%% of one core)\n", self, 100 * self / secs);
    if (s1.total > s0.total) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        double busy = (double)(s1.busy - s0.busy) / (double)(s1.total - s0.total);
        double others = busy * (double)cores - ((cpu > 0 ? cpu : 0) + self) / secs;
        printf("  machine CPU busy          %.0f%% of %ld cores (other processes: %.2f cores)\n",
               100 * busy, cores, others > 0 ? others : 0.0);
    }
    char tid[48] = "";
    if (last_req) first_trace_id(&tp, last_req, tid);
    printf("  whole run                 %llu requests sent, %llu acknowledged (%llu spans)\n",
           (unsigned long long)sent_all, (unsigned long long)ok_all,
           (unsigned long long)ok_all * (unsigned long long)o.spans_per_request);
    printf("result format=%s rps=%.1f spans_per_s=%.0f collector_cpu_s=%.3f spans_per_cpu_s=%.0f "
           "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%llu rss_kb=%ld hwm_kb=%ld "
           "loadgen_cpu_s=%.3f body_bytes=%zu sent_spans=%llu acked_spans=%llu "
           "last_trace_id=%s\n",
           o.format == FMT_OTLP ? "otlp" : "prela", rps, sps, cpu,
           cpu > 0 ? (double)ok * o.spans_per_request / cpu : 0.0, pct_ms(lat, n_lat, 0.50),
           pct_ms(lat, n_lat, 0.90), pct_ms(lat, n_lat, 0.99),
           n_lat ? (double)lat[n_lat - 1] / 1e6 : 0.0, (unsigned long long)errs, rss, hwm, self,
           tp.len, (unsigned long long)sent_all * (unsigned long long)o.spans_per_request,
           (unsigned long long)ok_all * (unsigned long long)o.spans_per_request, *tid ? tid : "-");

    for (int i = 0; i < o.connections; i++) {
        free(cs[i].body);
        free(cs[i].lat);
    }
    free(cs);
    free(lat);
    free(tp.data);
    free(tp.patch);
    pc_buf_free(&hdr);
    freeaddrinfo(addr);
    return 0;
}
