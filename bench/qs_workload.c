/*
 * qs_workload.c - builds the query-scale workload's OTLP request bodies
 * (qs_workload.h): a seeded hash per trace decides its service, time, models,
 * error and text; the spans are packed with protobuf-c.
 *
 * Reading order: the hash and the vocabulary, the prose generator, the trace
 * (its spans and attributes), the OTLP packing, the API.
 *
 * Why a synthesized vocabulary: the issue asks for prompt text that compresses
 * like real prose. A small word list (loadgen's 32 words) compresses about 10x
 * and would flatter ClickHouse's bytes per span; 8,000 word types with a Zipf
 * law (the few hundred most frequent ones real English words) give text whose
 * entropy per byte is close to English's, and it stays deterministic.
 */
#include "qs_workload.h"

#include "workload.h"

#include "arena.h"
#include "mem.h"
#include "span.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------ hash and words -- */

static uint64_t mix(uint64_t x) /* splitmix64's finalizer */
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next(rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix(r->s);
}

static uint64_t below(rng *r, uint64_t n) /* uniform in [0, n) */
{
    return next(r) % n;
}

static const char *const english[] = {
    "the",         "of",        "and",      "to",        "a",         "in",        "is",
    "that",        "for",       "it",       "as",        "with",      "was",       "on",
    "be",          "by",        "this",     "are",       "or",        "from",      "at",
    "which",       "an",        "have",     "not",       "but",       "we",        "they",
    "you",         "their",     "can",      "all",       "has",       "will",      "more",
    "one",         "if",        "would",    "there",     "customer",  "about",     "been",
    "data",        "so",        "also",     "other",     "when",      "what",      "its",
    "into",        "some",      "than",     "only",      "these",     "use",       "time",
    "may",         "new",       "should",   "report",    "each",      "could",     "any",
    "our",         "how",       "them",     "first",     "then",      "most",      "such",
    "model",       "results",   "between",  "after",     "two",       "used",      "over",
    "because",     "system",    "order",    "please",    "need",      "account",   "revenue",
    "quarter",     "summary",   "question", "answer",    "document",  "search",    "based",
    "information", "policy",    "support",  "request",   "issue",     "service",   "product",
    "number",      "review",    "team",     "user",      "value",     "risk",      "change",
    "include",     "following", "analysis", "section",   "source",    "provide",   "case",
    "where",       "while",     "well",     "make",      "table",     "year",      "within",
    "without",     "under",     "those",    "through",   "before",    "during",    "current",
    "previous",    "total",     "high",     "low",       "less",      "same",      "given",
    "further",     "example",   "result",   "process",   "code",      "error",     "function",
    "test",        "file",      "query",    "price",     "plan",      "contract",  "invoice",
    "payment",     "refund",    "shipping", "delivery",  "region",    "market",    "growth",
    "cost",        "budget",    "forecast", "metric",    "trend",     "sales",     "email",
    "ticket",      "agent",     "tool",     "step",      "context",   "tokens",    "prompt",
    "task",        "goal",      "draft",    "check",     "compare",   "explain",   "describe",
    "list",        "find",      "show",     "return",    "update",    "create",    "delete",
    "read",        "write",     "call",     "send",      "receive",   "open",      "close",
    "help",        "thanks",    "sure",     "here",      "below",     "above",     "note",
    "however",     "therefore", "likely",   "clearly",   "recent",    "important", "relevant",
    "specific",    "general",   "possible", "available", "different", "similar",   "several",
    "many",        "few",       "every",    "both",      "either",    "local",     "global",
    "public",      "private",   "internal", "external",  "legal",     "financial", "technical",
    "medical",     "annual",    "monthly",  "weekly",    "daily",     "early",     "late",
    "next",        "last",      "long",     "short",     "large",     "small",     "main",
    "key",         "major",     "minor",    "full",      "part",
};
#define N_ENGLISH (sizeof(english) / sizeof(english[0]))
#define N_WORDS 8000

static const char *const onset[] = {"b",  "c",  "d",  "f",  "g",  "h",  "l",  "m",  "n",
                                    "p",  "r",  "s",  "t",  "v",  "w",  "br", "cl", "dr",
                                    "gr", "pl", "st", "tr", "ch", "sh", "th", "sp", ""};
static const char *const vowel[] = {"a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "y"};
static const char *const coda[] = {"",  "",  "",  "",  "",   "n",  "r",
                                   "l", "s", "t", "m", "nd", "st", "ng"};
#define COUNT(x) (sizeof(x) / sizeof((x)[0]))

static char *words[N_WORDS];
static uint32_t word_len[N_WORDS];
static double cdf[N_WORDS]; /* cumulative Zipf weights */
static pthread_once_t words_once = PTHREAD_ONCE_INIT;

/* Builds the vocabulary and its Zipf-Mandelbrot CDF (p(r) ~ 1 / (r + 2.7)^1.05). */
static void words_init(void)
{
    for (size_t r = 0; r < N_WORDS; r++) {
        if (r < N_ENGLISH) {
            words[r] = (char *)english[r];
        } else {
            rng g = {mix(r * 7919 + 17)};
            char tmp[64] = "";
            uint64_t u = below(&g, 20); /* 1-3 syllables: words of about 6 letters */
            int syl = u < 7 ? 1 : u < 16 ? 2 : 3;
            for (int i = 0; i < syl; i++) {
                strcat(tmp, onset[below(&g, COUNT(onset))]);
                strcat(tmp, vowel[below(&g, COUNT(vowel))]);
                strcat(tmp, coda[below(&g, COUNT(coda))]);
            }
            words[r] = pc_xstrdup(tmp);
        }
        word_len[r] = (uint32_t)strlen(words[r]);
    }
    double acc = 0;
    for (size_t r = 0; r < N_WORDS; r++) {
        double x = (double)r + 2.7, w = 1.0;
        /* x^1.05 without libm: x * x^0.05 with x^0.05 ~ 1 + 0.05 ln x by a short series */
        double l = 0, y = (x - 1) / (x + 1), y2 = y * y, t = y;
        for (int k = 1; k < 40; k += 2, t *= y2)
            l += t / k;
        l *= 2; /* ln x */
        w = 1.0 / (x * (1 + 0.05 * l + 0.00125 * l * l));
        acc += w;
        cdf[r] = acc;
    }
}

static uint32_t zipf_word(rng *r)
{
    double u = (double)(next(r) >> 11) / 9007199254740992.0 * cdf[N_WORDS - 1];
    uint32_t lo = 0, hi = N_WORDS - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ------------------------------------------------------------- prose -- */

/* Appends sentences to |out| (room for |cap| bytes) until it holds about |want| bytes;
 * returns the new length. */
static size_t prose(rng *r, char *out, size_t len, size_t cap, size_t want)
{
    while (len < want && len + 200 < cap) {
        int n = 5 + (int)below(r, 18);
        for (int i = 0; i < n; i++) {
            if (len + 40 >= cap) break;
            uint32_t w = zipf_word(r);
            memcpy(out + len, words[w], word_len[w]);
            if (i == 0 && out[len] >= 'a' && out[len] <= 'z') out[len] -= 32;
            len += word_len[w];
            if (below(r, 40) == 0)
                len += (size_t)sprintf(out + len, " %u", (unsigned)below(r, 5000));
            if (i + 1 < n && below(r, 9) == 0) out[len++] = ',';
            out[len++] = i + 1 < n ? ' ' : '.';
        }
        out[len++] = below(r, 6) ? ' ' : '\n';
    }
    out[len] = 0;
    return len;
}

/* ------------------------------------------------------------- traces -- */

static const char *const services[QS_SERVICES] = {
    "support-agent", "research-agent", "code-assistant", "sales-copilot", "doc-qa", "triage-bot",
};
static const int service_weight[QS_SERVICES] = {30, 25, 18, 12, 10, 5}; /* percent */

static const struct {
    const char *system, *model;
} models[] = {
    {"openai", "gpt-4o"},
    {"openai", "gpt-4o-mini"},
    {"anthropic", "claude-3-5-sonnet-20241022"},
    {"anthropic", "claude-3-5-haiku-20241022"},
    {"gcp.vertex_ai", "gemini-1.5-pro"},
    {"aws.bedrock", "meta.llama3-1-70b-instruct-v1:0"},
};

static const char *const rare[QS_RARE_WORDS] = {
    "qxzvormelith", "qxzandrapine", "qxzholubrant", "qxzmerivolde",
    "qxzpantheric", "qxzulvaskorn", "qxzbrenthamy", "qxzostrelune",
};

enum { R_AGENT, R_LLM, R_TOOL, R_RETR, R_EMBED };
static const int role[QS_SPANS_PER_TRACE] = {R_AGENT, R_LLM,  R_TOOL, R_RETR,  R_LLM,
                                             R_TOOL,  R_RETR, R_LLM,  R_EMBED, R_LLM};

static uint64_t trace_hash(const qs_workload *w, uint64_t g)
{
    return mix(w->seed * 0x2545f4914f6cdd1dULL ^ mix(g));
}

int qs_trace_service(const qs_workload *w, uint64_t g)
{
    int p = (int)(trace_hash(w, g) % 100);
    for (int i = 0; i < QS_SERVICES; i++)
        if ((p -= service_weight[i]) < 0) return i;
    return QS_SERVICES - 1;
}

int qs_trace_failed(const qs_workload *w, uint64_t g)
{
    return (trace_hash(w, g) >> 8) % 10 == 0;
}

int64_t qs_trace_start_ns(const qs_workload *w, uint64_t g)
{
    uint64_t span = (uint64_t)QS_DAYS * 86400ULL * 1000000000ULL;
    if (w->order == QS_ORDER_RANDOM) return w->base_ns - (int64_t)((trace_hash(w, g) >> 12) % span);
    /* g's share of the span (128-bit: the product overflows 64 bits), less up
     * to a second, so neighbours interleave a little as live traffic does */
    uint64_t share = (uint64_t)((unsigned __int128)(w->traces - 1 - g) * span / w->traces);
    return w->base_ns - (int64_t)share - (int64_t)((trace_hash(w, g) >> 12) % 1000000000ULL);
}

void qs_trace_id_hex(const qs_workload *w, uint64_t g, char out[33])
{
    uint64_t a = mix(trace_hash(w, g) ^ 0x1111), b = mix(a ^ g);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

void qs_rare_traces(const qs_workload *w, int k, uint64_t out[QS_RARE_COPIES])
{
    for (int j = 0; j < QS_RARE_COPIES; j++) {
        uint64_t slot = (uint64_t)(k * QS_RARE_COPIES + j) * 2 + 1;
        out[j] = slot * w->traces / (2 * QS_RARE_WORDS * QS_RARE_COPIES);
    }
}

/* The rare word planted in trace |g|, or NULL. */
static const char *rare_in(const qs_workload *w, uint64_t g)
{
    for (int k = 0; k < QS_RARE_WORDS; k++) {
        uint64_t t[QS_RARE_COPIES];
        qs_rare_traces(w, k, t);
        for (int j = 0; j < QS_RARE_COPIES; j++)
            if (t[j] == g) return rare[k];
    }
    return NULL;
}

const char *qs_rare_word(int k)
{
    return rare[k];
}
const char *qs_common_word(void)
{
    return "customer";
}
const char *qs_service_name(int i)
{
    return services[i];
}

/* ---------------------------------------------------------- OTLP packing -- */

typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Trace__V1__Span Span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event Event;

typedef struct kvs { /* attributes being collected for one span or resource */
    KeyValue **kv;
    size_t n, cap;
} kvs;

static void put(pc_arena *a, kvs *k, const char *key, const char *s, int64_t i)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 16;
        k->kv = pc_arena_realloc(a, k->kv, k->cap * sizeof(*k->kv), cap * sizeof(*k->kv));
        k->cap = cap;
    }
    KeyValue *kv = pc_arena_alloc(a, sizeof(*kv));
    AnyValue *v = pc_arena_alloc(a, sizeof(*v));
    KeyValue kinit = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
    AnyValue vinit = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    *kv = kinit, *v = vinit;
    kv->key = (char *)key;
    kv->value = v;
    if (s) {
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        v->string_value = (char *)s;
    } else {
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        v->int_value = i;
    }
    k->kv[k->n++] = kv;
}
#define PUT_S(k, key, s) put(a, k, key, s, 0)
#define PUT_I(k, key, i) put(a, k, key, NULL, i)

static char *afmt(pc_arena *a, const char *f, unsigned long long x)
    __attribute__((format(printf, 2, 0)));
static char *afmt(pc_arena *a, const char *f, unsigned long long x)
{
    char tmp[128];
    int n = snprintf(tmp, sizeof(tmp), f, x);
    return pc_arena_strndup(a, tmp, (size_t)n);
}

/* Prose of about |want| bytes in |a|, optionally led by |lead|. */
static char *atext(pc_arena *a, rng *r, const char *lead, size_t want, const char *plant)
{
    size_t cap = want + 400;
    char *out = pc_arena_alloc(a, cap);
    size_t len = 0;
    if (lead) len = (size_t)snprintf(out, cap, "%s", lead);
    len = prose(r, out, len, cap, want);
    if (plant) snprintf(out + len, cap - len, " Reference %s applies.", plant);
    return out;
}

/* One trace: fills |rs| with its resource and 10 spans, all memory in |a|. */
static void make_trace(pc_arena *a, const qs_workload *w, uint64_t g,
                       Opentelemetry__Proto__Trace__V1__ResourceSpans *rs)
{
    rng r = {trace_hash(w, g)};
    int svc = qs_trace_service(w, g);
    int failed = qs_trace_failed(w, g);
    int fail_at = 1 + 3 * (int)below(&r, 3); /* one of the LLM spans 1, 4, 7 */
    const char *plant = rare_in(w, g);
    int64_t t = qs_trace_start_ns(w, g);
    char tid_hex[33];
    qs_trace_id_hex(w, g, tid_hex);
    uint8_t *tid = pc_arena_alloc(a, 16);
    for (int i = 0; i < 16; i++)
        sscanf(tid_hex + 2 * i, "%2hhx", &tid[i]);
    uint8_t *sid = pc_arena_alloc(a, 8 * QS_SPANS_PER_TRACE);
    for (int s = 0; s < QS_SPANS_PER_TRACE; s++) {
        uint64_t x = mix(trace_hash(w, g) + (uint64_t)s + 1);
        memcpy(sid + 8 * s, &x, 8);
    }

    /* the system prompt: fixed per service, as an agent's would be */
    rng sys_r = {mix(0x5eed0000ULL + (uint64_t)svc)};
    char *system = atext(a, &sys_r, "System: ", 240, NULL);
    char *conv = afmt(a, "conv_%016llx", (unsigned long long)next(&r));
    char *user = afmt(a, "user-%llu", (unsigned long long)below(&r, 5000));

    Span **spans = pc_arena_alloc(a, QS_SPANS_PER_TRACE * sizeof(*spans));
    int64_t root_end = t;
    int64_t cur = t + 2000000 + (int64_t)below(&r, 20000000);
    for (int s = 0; s < QS_SPANS_PER_TRACE; s++) {
        Span *o = pc_arena_alloc(a, sizeof(*o));
        Span init = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
        *o = init;
        o->trace_id = (ProtobufCBinaryData){16, tid};
        o->span_id = (ProtobufCBinaryData){8, sid + 8 * s};
        if (s) o->parent_span_id = (ProtobufCBinaryData){8, sid};
        o->flags = 0x301;
        kvs k = {0};
        int64_t dur_ms = 0;
        int err = failed && s == fail_at;
        int m = (int)below(&r, COUNT(models));
        switch (role[s]) {
        case R_AGENT: {
            char tmp[64];
            int n = snprintf(tmp, sizeof(tmp), "invoke_agent %s", services[svc]);
            o->name = pc_arena_strndup(a, tmp, (size_t)n);
        }
            o->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL;
            PUT_S(&k, "gen_ai.operation.name", "invoke_agent");
            PUT_S(&k, "gen_ai.agent.name", services[svc]);
            PUT_S(&k, "gen_ai.conversation.id", conv);
            PUT_S(&k, "session.id", conv);
            PUT_S(&k, "user.id", user);
            break;
        case R_LLM: {
            size_t pin = 200 + below(&r, 800), pout = 80 + below(&r, 420);
            char tmp[96];
            int n = snprintf(tmp, sizeof(tmp), "chat %s", models[m].model);
            o->name = pc_arena_strndup(a, tmp, (size_t)n);
            o->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
            PUT_S(&k, "gen_ai.operation.name", "chat");
            PUT_S(&k, "gen_ai.system", models[m].system);
            PUT_S(&k, "gen_ai.request.model", models[m].model);
            PUT_S(&k, "gen_ai.response.model", models[m].model);
            PUT_I(&k, "gen_ai.usage.input_tokens", (int64_t)(pin / 4 + below(&r, 2000)));
            PUT_I(&k, "gen_ai.usage.output_tokens", err ? 0 : (int64_t)(pout / 4));
            PUT_I(&k, "gen_ai.request.max_tokens", 1024);
            PUT_S(&k, "gen_ai.prompt", atext(a, &r, system, pin, s == 1 ? plant : NULL));
            if (!err) PUT_S(&k, "gen_ai.completion", atext(a, &r, NULL, pout, NULL));
            PUT_S(&k, "gen_ai.response.finish_reasons", err ? "error" : "stop");
            dur_ms = 300 + (int64_t)below(&r, 6000);
            break;
        }
        case R_TOOL: {
            static const char *const tools[] = {"web_search",   "sql_query",     "send_email",
                                                "lookup_order", "create_ticket", "run_python"};
            const char *tool = tools[below(&r, COUNT(tools))];
            char tmp[64];
            int n = snprintf(tmp, sizeof(tmp), "execute_tool %s", tool);
            o->name = pc_arena_strndup(a, tmp, (size_t)n);
            o->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL;
            PUT_S(&k, "gen_ai.operation.name", "execute_tool");
            PUT_S(&k, "gen_ai.tool.name", tool);
            PUT_S(&k, "gen_ai.tool.call.id", afmt(a, "call_%012llx", next(&r) >> 16));
            PUT_S(&k, "tool.arguments", atext(a, &r, NULL, 40 + below(&r, 120), NULL));
            dur_ms = 20 + (int64_t)below(&r, 2000);
            break;
        }
        case R_RETR:
            o->name = "retrieve knowledge-base";
            o->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
            PUT_S(&k, "openinference.span.kind", "RETRIEVER");
            PUT_S(&k, "retrieval.query", atext(a, &r, NULL, 30 + below(&r, 100), NULL));
            PUT_I(&k, "retrieval.documents.count", (int64_t)(1 + below(&r, 10)));
            PUT_S(&k, "db.system", below(&r, 2) ? "pgvector" : "qdrant");
            dur_ms = 10 + (int64_t)below(&r, 400);
            break;
        case R_EMBED:
            o->name = "embeddings text-embedding-3-small";
            o->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
            PUT_S(&k, "gen_ai.operation.name", "embeddings");
            PUT_S(&k, "gen_ai.system", "openai");
            PUT_S(&k, "gen_ai.request.model", "text-embedding-3-small");
            PUT_I(&k, "gen_ai.usage.input_tokens", (int64_t)(8 + below(&r, 400)));
            dur_ms = 20 + (int64_t)below(&r, 200);
            break;
        }
        o->attributes = k.kv;
        o->n_attributes = k.n;
        if (s) {
            o->start_time_unix_nano = (uint64_t)cur;
            cur += dur_ms * 1000000 + (int64_t)below(&r, 5000000);
            o->end_time_unix_nano = (uint64_t)cur;
            root_end = cur;
        }
        Opentelemetry__Proto__Trace__V1__Status *st = pc_arena_alloc(a, sizeof(*st));
        Opentelemetry__Proto__Trace__V1__Status sinit =
            OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
        *st = sinit;
        o->status = st;
        if (err) {
            static const char *const why[][2] = {
                {"openai.RateLimitError", "Error code: 429 - Rate limit reached on tokens per min"},
                {"openai.APITimeoutError", "Request timed out after 60 seconds"},
                {"anthropic.InternalServerError", "Error code: 500 - Overloaded"},
            };
            int e = (int)below(&r, COUNT(why));
            st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
            st->message = (char *)why[e][1];
            Event *ev = pc_arena_alloc(a, sizeof(*ev));
            Event einit = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
            *ev = einit;
            ev->name = "exception";
            ev->time_unix_nano = o->end_time_unix_nano - 1000;
            kvs ek = {0};
            PUT_S(&ek, "exception.type", why[e][0]);
            PUT_S(&ek, "exception.message", why[e][1]);
            ev->attributes = ek.kv;
            ev->n_attributes = ek.n;
            o->events = pc_arena_alloc(a, sizeof(Event *));
            o->events[0] = ev;
            o->n_events = 1;
        }
        spans[s] = o;
    }
    spans[0]->start_time_unix_nano = (uint64_t)t;
    spans[0]->end_time_unix_nano = (uint64_t)root_end + 1000000;

    kvs rk = {0};
    PUT_S(&rk, "service.name", services[svc]);
    PUT_S(&rk, "service.version", svc % 2 ? "2.3.1" : "1.8.0");
    PUT_S(&rk, "deployment.environment.name", "production");
    PUT_S(&rk, "telemetry.sdk.name", "opentelemetry");
    PUT_S(&rk, "telemetry.sdk.language", "python");
    PUT_S(&rk, "telemetry.sdk.version", "1.27.0");
    PUT_S(&rk, "host.name", afmt(a, "worker-%02llu", (unsigned long long)(g % 16)));
    Opentelemetry__Proto__Resource__V1__Resource *res = pc_arena_alloc(a, sizeof(*res));
    Opentelemetry__Proto__Resource__V1__Resource resinit =
        OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    *res = resinit;
    res->attributes = rk.kv;
    res->n_attributes = rk.n;
    Opentelemetry__Proto__Common__V1__InstrumentationScope *scope =
        pc_arena_alloc(a, sizeof(*scope));
    Opentelemetry__Proto__Common__V1__InstrumentationScope scinit =
        OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    *scope = scinit;
    scope->name = "opentelemetry.instrumentation.openai_v2";
    scope->version = "2.1b0";
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = pc_arena_alloc(a, sizeof(*ss));
    Opentelemetry__Proto__Trace__V1__ScopeSpans ssinit =
        OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    *ss = ssinit;
    ss->scope = scope;
    ss->spans = spans;
    ss->n_spans = QS_SPANS_PER_TRACE;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rsinit =
        OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    *rs = rsinit;
    rs->resource = res;
    rs->scope_spans = pc_arena_alloc(a, sizeof(*rs->scope_spans));
    rs->scope_spans[0] = ss;
    rs->n_scope_spans = 1;
    rs->schema_url = "https://opentelemetry.io/schemas/1.27.0";
}

/* ------------------------------------------------------------------ API -- */

int qs_order_parse(const char *name, qs_order *out)
{
    if (!strcmp(name, "random"))
        *out = QS_ORDER_RANDOM;
    else if (!strcmp(name, "arrival"))
        *out = QS_ORDER_ARRIVAL;
    else
        return -1;
    return 0;
}

int qs_workload_init(qs_workload *w, uint64_t seed, uint64_t spans, int64_t base_ns,
                     qs_order order)
{
    if (!spans || spans % QS_SPANS_PER_TRACE) {
        fprintf(stderr, "qs_workload: %llu spans is not a positive multiple of %d\n",
                (unsigned long long)spans, QS_SPANS_PER_TRACE);
        return -1;
    }
    pthread_once(&words_once, words_init);
    if (!base_ns) {
        time_t now = time(NULL);
        base_ns = (int64_t)(now - now % 3600) * 1000000000LL;
    }
    *w = (qs_workload){seed, spans / QS_SPANS_PER_TRACE, base_ns, order};
    return 0;
}

uint8_t *qs_workload_request(const qs_workload *w, uint64_t first, int n, size_t *len)
{
    if (first >= w->traces)
        n = 0;
    else if ((uint64_t)n > w->traces - first)
        n = (int)(w->traces - first);
    pc_arena *a = pc_arena_create(256 << 10);
    typedef Opentelemetry__Proto__Trace__V1__ResourceSpans RS;
    RS *rs = pc_arena_alloc(a, (size_t)(n ? n : 1) * sizeof(RS));
    RS **rsp = pc_arena_alloc(a, (size_t)(n ? n : 1) * sizeof(RS *));
    for (int i = 0; i < n; i++) {
        make_trace(a, w, first + (uint64_t)i, &rs[i]);
        rsp[i] = &rs[i];
    }
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.n_resource_spans = (size_t)n;
    req.resource_spans = rsp;
    *len =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            &req);
    uint8_t *out = pc_xmalloc(*len ? *len : 1);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, out);
    pc_arena_destroy(a);
    return out;
}

pc_batch *qs_workload_batch(const qs_workload *w, uint64_t first, int n)
{
    size_t len;
    uint8_t *body = qs_workload_request(w, first, n, &len);
    if (!body) return NULL;
    pc_batch *b = lg_decode_batch(body, len, "a query-scale request");
    free(body);
    return b;
}
