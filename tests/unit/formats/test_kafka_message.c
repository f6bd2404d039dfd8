/*
 * test_kafka_message.c - the kafka receiver's message decoding (kafka_message.h)
 * against the kafka exporter's encoders (the formats), both directions.
 *
 * Round trip: spans of every kind (Prela and OTLP sources, Prela-style non-hex
 * ids, every attribute type incl. int64 min/max, bytes, kvlists, arrays, NaN
 * and infinities, unicode, events, links, a span not ended) are normalized,
 * encoded with pc_prela_json_encode_span / pc_otlp_proto_encode / pc_otlp_json_encode,
 * decoded, normalized again, and every field of the model is compared with the
 * original: exactly where the format is lossless, and where it is lossy by
 * design (prela_json.h, kafka_message.h) by what the stores would write.
 *
 * Hostile input: every truncation, wrong types, deep nesting, invalid UTF-8,
 * huge numbers, garbage bytes: a clear error, an unchanged batch, no crash.
 */
#include "check.h"

#include "formats/kafka_message.h"
#include "formats/otlp_json.h"
#include "formats/otlp_prela.h"
#include "formats/otlp_proto.h"
#include "formats/prela_json.h"
#include "json.h"
#include "processors/normalize.h"
#include "span.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1737972000000000000LL
#define MS 1000000LL

/* ------------------------------------------------------------- building -- */

static pc_arena *A; /* the original batch's arena */

static pc_str S(const char *s)
{
    return (pc_str){pc_arena_strndup(A, s, strlen(s)), strlen(s)};
}

static pc_value vstr(const char *s)
{
    pc_value v = {.type = PC_V_STR};
    v.s = S(s);
    return v;
}
static pc_value vint(int64_t i)
{
    pc_value v = {.type = PC_V_INT};
    v.i = i;
    return v;
}
static pc_value vdbl(double d)
{
    pc_value v = {.type = PC_V_DOUBLE};
    v.d = d;
    return v;
}
static pc_value vbool(bool b)
{
    pc_value v = {.type = PC_V_BOOL};
    v.b = b;
    return v;
}

/* attrs(n, "k1", v1, "k2", v2, ...) */
static pc_attrs attrs(size_t n, ...)
{
    pc_attrs a = {pc_arena_calloc(A, (n + 1) * sizeof(pc_kv)), n};
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        a.kv[i].key = S(va_arg(ap, const char *));
        a.kv[i].value = va_arg(ap, pc_value);
    }
    va_end(ap);
    return a;
}

static pc_value vmap(pc_attrs a)
{
    pc_value v = {.type = PC_V_MAP};
    v.map.kv = a.kv;
    v.map.n = a.n;
    return v;
}

static pc_value varr(size_t n, const pc_value *items)
{
    pc_value v = {.type = PC_V_ARRAY};
    v.arr.v = pc_arena_alloc(A, (n + 1) * sizeof(pc_value));
    memcpy(v.arr.v, items, n * sizeof(pc_value));
    v.arr.n = n;
    return v;
}

/* Every attribute type, nested. */
static pc_attrs all_types(void)
{
    pc_value bytes = {.type = PC_V_BYTES};
    bytes.s = (pc_str){"\x00\x01\xfe\xff binary", 11};
    pc_value null = {.type = PC_V_NULL};
    pc_value items[] = {vint(1), vstr("a"), vdbl(2.5), vbool(true), null};
    pc_value deep[] = {vmap(attrs(1, "x", varr(2, items)))};
    return attrs(17, "s", vstr("héllo ✓ 日本 \"quoted\" \\ \n"), "empty", vstr(""), "min",
                 vint(INT64_MIN), "max", vint(INT64_MAX), "zero", vint(0), "d", vdbl(3.25), "tiny",
                 vdbl(1e-300), "whole", vdbl(2.0), "nan", vdbl(NAN), "inf", vdbl(INFINITY),
                 "ninf", vdbl(-INFINITY), "t", vbool(true), "f", vbool(false), "bytes", bytes,
                 "arr", varr(5, items), "kv", vmap(attrs(2, "a", vint(-7), "b", varr(1, deep))),
                 "null", null);
}

static pc_event *events(size_t *n)
{
    pc_event *e = pc_arena_calloc(A, 2 * sizeof(*e));
    e[0] = (pc_event){S("exception"), T0 + 7 * MS + 123,
                      attrs(2, "exception.type", vstr("ValueError"), "exception.message",
                            vstr("bad ✗")), 0};
    e[1] = (pc_event){S(""), T0 + 8 * MS, attrs(1, "n", vint(3)), 0};
    *n = 2;
    return e;
}

static pc_batch *originals(void)
{
    pc_batch *b = pc_batch_create(NULL);
    A = b->arena;
    b->received_ns = T0 + 9000 * MS;
    pc_attrs *res = pc_arena_calloc(A, sizeof(*res));
    *res = attrs(3, "service.name", vstr("otel-svc"), "host.name", vstr("box-1"), "pid",
                 vint(4242));
    pc_scope *scope = pc_arena_calloc(A, sizeof(*scope));
    *scope = (pc_scope){S("opentelemetry.instrumentation.openai"), S("0.48b0"),
                        attrs(1, "scope.attr", vbool(true)), 0};

    /* 0: Prela SDK span: UUID ids, SDK status/type text, envelope service */
    pc_span *s = pc_batch_add(b);
    s->trace_id = S("2b7a54a4-9c0b-4a1e-8f3e-1d2c3b4a5f60");
    s->span_id = S("7c9e6679-7425-40de-944b-e07fc1f90ae7");
    s->parent_id = S("a3bb189e-8bf9-3888-9912-ace4e6543002");
    s->name = S("openai.chat ✓");
    s->kind = 1;
    s->start_ns = T0 + 1;
    s->end_ns = T0 + 1234 * MS + 567;
    s->status_text = S("SUCCESS");
    s->span_type_text = S("LLM");
    s->service_hint = S("prela-app");
    s->project_id = S("proj-α");
    s->source = PC_SOURCE_PRELA;
    s->attrs = all_types();
    pc_attrs llm = attrs(4, "llm.vendor", vstr("openai"), "llm.model", vstr("gpt-4o"),
                         "llm.input_tokens", vint(120), "llm.output_tokens", vdbl(30.0));
    pc_kv *kv = pc_arena_alloc(A, (s->attrs.n + llm.n) * sizeof(pc_kv));
    memcpy(kv, s->attrs.kv, s->attrs.n * sizeof(pc_kv));
    memcpy(kv + s->attrs.n, llm.kv, llm.n * sizeof(pc_kv));
    s->attrs = (pc_attrs){kv, s->attrs.n + llm.n};
    s->events = events(&s->n_events);
    s->links = pc_arena_calloc(A, sizeof(pc_link));
    s->links[0] = (pc_link){S("0af7651916cd43dd8448eb211c80319c"), S("b7ad6b7169203331"),
                            S("k=v"), attrs(1, "l", vint(1)), 0};
    s->n_links = 1;
    s->received_ns = T0 + 5000 * MS;

    /* 1: the seed's free-form ids, not ended, status text unknown → pending */
    s = pc_batch_add(b);
    s->trace_id = S("test-123");
    s->span_id = S("span-1");
    s->name = S("tool call");
    s->start_ns = T0 + 10 * MS;
    s->status_text = S("running");
    s->span_type_text = S("tool");
    s->project_id = S("default");
    s->source = PC_SOURCE_PRELA;
    s->attrs = attrs(1, "tool.name", vstr("search"));

    /* 2: OTLP GenAI span in error, with resource, scope, flags, trace state */
    s = pc_batch_add(b);
    s->trace_id = S("0af7651916cd43dd8448eb211c80319c");
    s->span_id = S("00f067aa0ba902b7");
    s->parent_id = S("b7ad6b7169203331");
    s->trace_state = S("congo=t61rcWkgMzE");
    s->name = S("chat gpt-4o");
    s->kind = 3;
    s->start_ns = T0 + 2 * MS;
    s->end_ns = T0 + 902 * MS;
    s->status_code = PC_OTLP_STATUS_ERROR;
    s->status_message = S("rate limited");
    s->flags = 0x301;
    s->project_id = S("proj-1");
    s->source = PC_SOURCE_OTLP;
    s->resource = res;
    s->scope = scope;
    s->attrs = attrs(6, "gen_ai.operation.name", vstr("chat"), "gen_ai.system", vstr("openai"),
                     "gen_ai.request.model", vstr("gpt-4o"), "gen_ai.usage.input_tokens",
                     vint(512), "gen_ai.usage.output_tokens", vstr("256"), "all", vmap(all_types()));
    s->events = events(&s->n_events);
    s->links = pc_arena_calloc(A, 2 * sizeof(pc_link));
    s->links[0] = (pc_link){S("4bf92f3577b34da6a3ce929d0e0e4736"), S("53995c3f42cd8ad8"), S(""),
                            pc_empty_attrs, 0};
    s->links[1] = (pc_link){S("4bf92f3577b34da6a3ce929d0e0e4737"), S("53995c3f42cd8ad9"),
                            S("a=b"), attrs(1, "why", vstr("retry")), 0};
    s->n_links = 2;

    /* 3: OTLP root, status unset and ended → success; same resource and scope */
    s = pc_batch_add(b);
    s->trace_id = S("0af7651916cd43dd8448eb211c80319c");
    s->span_id = S("b7ad6b7169203331");
    s->name = S("agent run");
    s->kind = 2;
    s->start_ns = T0;
    s->end_ns = T0 + 2000 * MS;
    s->project_id = S("proj-1");
    s->source = PC_SOURCE_OTLP;
    s->resource = res;
    s->scope = scope;
    s->attrs = attrs(1, "openinference.span.kind", vstr("AGENT"));

    /* 4: OTLP span not ended, no resource service (service from the attribute) */
    s = pc_batch_add(b);
    s->trace_id = S("4bf92f3577b34da6a3ce929d0e0e4736");
    s->span_id = S("53995c3f42cd8ad8");
    s->name = S("retrieve");
    s->kind = 5;
    s->start_ns = T0 + 3 * MS;
    s->source = PC_SOURCE_OTLP;
    s->attrs = attrs(2, "service.name", vstr("rag"), "db.system", vstr("qdrant"));

    /* 5: hex-looking trace id with a Prela span id (mixed), uppercase hex */
    s = pc_batch_add(b);
    s->trace_id = S("0AF7651916CD43DD8448EB211C80319C");
    s->span_id = S("0000000000000000");
    s->parent_id = S("test-parent");
    s->name = S("");
    s->start_ns = T0 + 4 * MS;
    s->end_ns = T0 + 4 * MS;
    s->status_text = S("failed");
    s->status_message = S("it broke");
    s->span_type_text = S("embedding");
    s->project_id = S("p");
    s->source = PC_SOURCE_PRELA;

    for (size_t i = 0; i < b->n; i++) pc_normalize_span(&b->spans[i], PC_STR_LIT("unknown"));
    return b;
}

/* ------------------------------------------------------------ comparing -- */

static bool str_same(pc_str a, pc_str b)
{
    return a.n == b.n && (!a.n || !memcmp(a.p, b.p, a.n));
}

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        pc_str a_ = (a), b_ = (b);                                                                 \
        CHECK(str_same(a_, b_));                                                                   \
        if (!str_same(a_, b_))                                                                     \
            fprintf(stderr, "   %s: \"%.*s\" != \"%.*s\"\n", #a, (int)a_.n, a_.p ? a_.p : "",       \
                    (int)b_.n, b_.p ? b_.p : "");                                                  \
    } while (0)

/* JSON text of a value / attrs, as the stores write it. */
static char *json_of(const pc_value *v)
{
    pc_buf b = PC_BUF_INIT;
    pc_value_write_json(&b, v);
    return pc_buf_steal(&b, NULL);
}

/*
 * True when |got| equals |want|. |lossy|: the prela_json rules, where bytes
 * arrive as their base64 string and non-finite doubles as strings.
 */
static bool value_eq(const pc_value *want, const pc_value *got, bool lossy)
{
    if (lossy && (want->type == PC_V_BYTES ||
                  (want->type == PC_V_DOUBLE && !isfinite(want->d)))) {
        if (got->type != PC_V_STR) return false;
        char *a = json_of(want), *b = json_of(got);
        bool eq = !strcmp(a, b);
        free(a), free(b);
        return eq;
    }
    if (want->type != got->type) return false;
    switch (want->type) {
    case PC_V_STR:
    case PC_V_BYTES: return str_same(want->s, got->s);
    case PC_V_BOOL: return want->b == got->b;
    case PC_V_INT: return want->i == got->i;
    case PC_V_DOUBLE:
        return (isnan(want->d) && isnan(got->d)) ||
               (want->d == got->d && signbit(want->d) == signbit(got->d));
    case PC_V_ARRAY:
        if (want->arr.n != got->arr.n) return false;
        for (size_t i = 0; i < want->arr.n; i++)
            if (!value_eq(&want->arr.v[i], &got->arr.v[i], lossy)) return false;
        return true;
    case PC_V_MAP:
        if (want->map.n != got->map.n) return false;
        for (size_t i = 0; i < want->map.n; i++)
            if (!str_same(want->map.kv[i].key, got->map.kv[i].key) ||
                !value_eq(&want->map.kv[i].value, &got->map.kv[i].value, lossy))
                return false;
        return true;
    default: return true;
    }
}

static bool attrs_eq(const pc_attrs *want, const pc_attrs *got, bool lossy)
{
    pc_value a = {.type = PC_V_MAP}, b = {.type = PC_V_MAP};
    a.map.kv = want->kv, a.map.n = want->n;
    b.map.kv = got->kv, b.map.n = got->n;
    bool eq = value_eq(&a, &b, lossy);
    if (!eq) {
        char *x = json_of(&a), *y = json_of(&b);
        fprintf(stderr, "   want %s\n   got  %s\n", x, y);
        free(x), free(y);
    }
    return eq;
}

static bool hex_id(pc_str id, size_t n)
{
    if (id.n != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", id.p[i])) return false;
    return true;
}

enum { M_JSON, M_OTLP };

static void compare(const pc_batch *ob, const pc_span *w, const pc_batch *gb, const pc_span *g,
                    int mode, int64_t msg_time)
{
    bool lossy = mode == M_JSON;
    CHECK_STR(w->trace_id, g->trace_id);
    CHECK_STR(w->span_id, g->span_id);
    CHECK_STR(w->parent_id, g->parent_id);
    CHECK_STR(w->trace_state, g->trace_state);
    CHECK_STR(w->name, g->name);
    CHECK_EQ_INT(w->kind, g->kind);
    CHECK_EQ_INT(w->start_ns, g->start_ns);
    CHECK_EQ_INT(w->end_ns, g->end_ns);
    CHECK_EQ_INT(w->status_code, g->status_code);
    CHECK_STR(w->status_message, g->status_message);
    CHECK_STR(w->project_id, g->project_id);
    CHECK_EQ_INT(w->source, g->source);
    CHECK_EQ_INT(w->flags, g->flags);
    CHECK(attrs_eq(&w->attrs, &g->attrs, lossy));
    CHECK_EQ_INT(w->n_events, g->n_events);
    for (size_t i = 0; i < w->n_events && i < g->n_events; i++) {
        CHECK_STR(w->events[i].name, g->events[i].name);
        CHECK_EQ_INT(w->events[i].time_ns, g->events[i].time_ns);
        CHECK(attrs_eq(&w->events[i].attrs, &g->events[i].attrs, lossy));
    }
    CHECK_EQ_INT(w->n_links, g->n_links);
    for (size_t i = 0; i < w->n_links && i < g->n_links; i++) {
        if (mode == M_JSON || (hex_id(w->links[i].trace_id, 32) && hex_id(w->links[i].span_id, 16))) {
            CHECK_STR(w->links[i].trace_id, g->links[i].trace_id);
            CHECK_STR(w->links[i].span_id, g->links[i].span_id);
        }
        CHECK_STR(w->links[i].trace_state, g->links[i].trace_state);
        CHECK(attrs_eq(&w->links[i].attrs, &g->links[i].attrs, lossy));
    }
    if (mode == M_JSON) {
        CHECK(attrs_eq(w->resource, g->resource, lossy));
        CHECK_EQ_INT(g->received_ns, pc_span_received(ob, w));
    } else {
        /* the resource as sent plus what the exporter adds: prela.project_id, service.name */
        size_t extra = 0;
        for (size_t i = 0; i < g->resource->n; i++) {
            const pc_kv *kv = &g->resource->kv[i];
            const pc_value *o = pc_attrs_get(w->resource, pc_str_dup(gb->arena, kv->key));
            if (o) {
                CHECK(value_eq(o, &kv->value, false));
            } else {
                extra++;
                CHECK(pc_str_eq(kv->key, "prela.project_id") || pc_str_eq(kv->key, "service.name"));
            }
        }
        CHECK_EQ_INT(g->resource->n, w->resource->n + extra);
        CHECK_EQ_INT(g->received_ns, msg_time);
    }
    CHECK_STR(w->scope->name, g->scope->name);
    CHECK_STR(w->scope->version, g->scope->version);
    CHECK(attrs_eq(&w->scope->attrs, &g->scope->attrs, lossy));
    /* derived */
    CHECK_EQ_INT(w->span_type, g->span_type);
    CHECK_EQ_INT(w->status, g->status);
    CHECK_STR(w->service_name, g->service_name);
    CHECK_STR(w->llm_provider, g->llm_provider);
    CHECK_STR(w->llm_model, g->llm_model);
    CHECK_EQ_INT(w->input_tokens, g->input_tokens);
    CHECK_EQ_INT(w->output_tokens, g->output_tokens);
}

/* The decoded span whose span id is |w|'s. */
static const pc_span *find(const pc_batch *b, const pc_span *w)
{
    for (size_t i = 0; i < b->n; i++)
        if (str_same(b->spans[i].span_id, w->span_id)) return &b->spans[i];
    return NULL;
}

static void normalize_all(pc_batch *b)
{
    for (size_t i = 0; i < b->n; i++) pc_normalize_span(&b->spans[i], PC_STR_LIT("unknown"));
}

/* ----------------------------------------------------------- round trip -- */

static void test_prela_json_round_trip(void)
{
    pc_batch *ob = originals();
    for (size_t i = 0; i < ob->n; i++) {
        const pc_span *w = &ob->spans[i];
        pc_buf m = PC_BUF_INIT;
        pc_prela_json_encode_span(&m, w, pc_span_received(ob, w));
        pc_batch *gb = pc_batch_create(NULL);
        gb->received_ns = T0 + 99999 * MS; /* the storage collector's clock: must not win */
        pc_kafka_decode_result r;
        CHECK_EQ_INT(pc_kafka_decode(gb, PC_KAFKA_PRELA_JSON, m.data, m.len, 777, &r),
                     PC_KAFKA_SPANS);
        if (r.error[0]) fprintf(stderr, "   %s\n", r.error);
        pc_buf_free(&m); /* the decoded span must not point into the message */
        CHECK_EQ_INT(gb->n, 1);
        CHECK_EQ_INT(r.spans, 1);
        if (gb->n == 1) {
            /* the derived fields are there before normalize, and survive it */
            compare(ob, w, gb, &gb->spans[0], M_JSON, 0);
            normalize_all(gb);
            compare(ob, w, gb, &gb->spans[0], M_JSON, 0);
            /* the stores write the same JSON */
            pc_buf x = PC_BUF_INIT, y = PC_BUF_INIT;
            pc_prela_json_encode_span(&x, w, pc_span_received(ob, w));
            pc_prela_json_encode_span(&y, &gb->spans[0], pc_span_received(gb, &gb->spans[0]));
            CHECK_EQ_STR(x.data, y.data);
            pc_buf_free(&x), pc_buf_free(&y);
        }
        pc_batch_unref(gb);
    }
    /* a trace summary is recognized and skipped */
    const pc_span *all[8];
    for (size_t i = 0; i < ob->n; i++) all[i] = &ob->spans[i];
    pc_buf m = PC_BUF_INIT;
    pc_prela_json_encode_trace(&m, all, 2, ob->received_ns);
    pc_batch *gb = pc_batch_create(NULL);
    pc_kafka_decode_result r;
    CHECK_EQ_INT(pc_kafka_decode(gb, PC_KAFKA_PRELA_JSON, m.data, m.len, 0, &r), PC_KAFKA_SUMMARY);
    CHECK_EQ_INT(gb->n, 0);
    pc_buf_free(&m);
    pc_batch_unref(gb);
    pc_batch_unref(ob);
}

/* |json|: otlp_json, else otlp_proto; |auto_detect|: decoded as PC_KAFKA_AUTO. */
static void otlp_round_trip(bool json, bool auto_detect)
{
    pc_batch *ob = originals();
    const pc_span *all[8];
    for (size_t i = 0; i < ob->n; i++) all[i] = &ob->spans[i];
    pc_buf m = PC_BUF_INIT;
    if (json)
        pc_otlp_json_encode(&m, all, ob->n);
    else
        pc_otlp_proto_encode(&m, all, ob->n);
    pc_batch *gb = pc_batch_create(NULL);
    pc_kafka_decode_result r;
    int64_t ts = T0 + 4242 * MS;
    pc_kafka_encoding enc = json ? PC_KAFKA_OTLP_JSON : PC_KAFKA_OTLP_PROTO;
    CHECK_EQ_INT(pc_kafka_encoding_detect(m.data, m.len), enc);
    CHECK_EQ_INT(pc_kafka_decode(gb, auto_detect ? PC_KAFKA_AUTO : enc, m.data, m.len, ts, &r),
                 PC_KAFKA_SPANS);
    if (r.error[0]) fprintf(stderr, "   %s\n", r.error);
    pc_buf_free(&m);
    CHECK_EQ_INT(gb->n, ob->n);
    CHECK_EQ_INT(r.spans, ob->n);
    CHECK_EQ_INT(r.rejected, 0);
    normalize_all(gb);
    for (size_t i = 0; i < ob->n; i++) {
        const pc_span *g = find(gb, &ob->spans[i]);
        CHECK(g != NULL);
        if (g) compare(ob, &ob->spans[i], gb, g, M_OTLP, ts);
        else fprintf(stderr, "   span %zu not found\n", i);
    }
    pc_batch_unref(gb);
    pc_batch_unref(ob);
}

static void test_otlp_proto_round_trip(void)
{
    otlp_round_trip(false, false);
    otlp_round_trip(false, true);
}

static void test_otlp_json_round_trip(void)
{
    otlp_round_trip(true, false);
    otlp_round_trip(true, true);
}

/* -------------------------------------------------------------- hostile -- */

/* Decodes |len| bytes expecting poison whose message starts with |want| (NULL:
 * any message); the batch keeps its one earlier span. */
static void expect_poison(pc_kafka_encoding enc, const char *msg, size_t len, const char *want)
{
    pc_batch *b = pc_batch_create(NULL);
    pc_batch_add(b)->span_id = PC_STR_LIT("earlier");
    pc_kafka_decode_result r;
    pc_kafka_decoded d = pc_kafka_decode(b, enc, msg, len, 0, &r);
    CHECK_EQ_INT(d, PC_KAFKA_POISON);
    CHECK_EQ_INT(b->n, 1);
    CHECK(r.error[0] != '\0');
    if (want && strncmp(r.error, want, strlen(want))) {
        fprintf(stderr, "   message \"%s\", want \"%s...\"\n", r.error, want);
        CHECK(0);
    }
    pc_batch_unref(b);
}

#define POISON(enc, lit, want) expect_poison(enc, lit, sizeof(lit) - 1, want)

static void test_hostile_prela_json(void)
{
    pc_batch *ob = originals();
    pc_buf m = PC_BUF_INIT;
    pc_prela_json_encode_span(&m, &ob->spans[0], 1);
    for (size_t n = 0; n < m.len; n++) expect_poison(PC_KAFKA_PRELA_JSON, m.data, n, NULL);
    pc_buf_free(&m);
    pc_batch_unref(ob);

    const pc_kafka_encoding J = PC_KAFKA_PRELA_JSON;
    POISON(J, "", "invalid JSON");
    POISON(J, "[]", "expected a JSON object");
    POISON(J, "null", "expected a JSON object");
    POISON(J, "{}", "trace_id: required");
    POISON(J, "{\"trace_id\":\"t\"}", "span_id: required");
    POISON(J, "{\"trace_id\":5,\"span_id\":\"s\"}", "trace_id: expected a string");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"attributes\":[]}",
           "attributes: expected an object");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"events\":{}}", "events: expected a list");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"events\":[{\"time_unix_nano\":\"x\"}]}",
           "events[0].time_unix_nano: expected an integer");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"links\":[7]}", "links[0]: expected an object");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"start_time_unix_nano\":1.5}",
           "start_time_unix_nano: expected an integer");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"start_time_unix_nano\":-5}",
           "start_time_unix_nano: -5 out of range");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"end_time_unix_nano\":99999999999999999999}",
           "end_time_unix_nano: expected an integer");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"end_time_unix_nano\":1e400}", NULL);
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"flags\":4294967296}", "flags:");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"kind\":\"sideways\"}", "kind: unknown value");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"source\":\"kafka\"}", "source: unknown");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"scope\":\"x\"}", "scope: expected an object");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"resource\":1}", "resource: expected");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"name\":\"\xc3\x28\"}", "invalid JSON");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"name\":\"ok\"} trailing", "invalid JSON");
    /* nesting far past PC_JSON_MAX_DEPTH, in attributes */
    pc_buf deep = PC_BUF_INIT;
    pc_buf_puts(&deep, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"attributes\":{\"a\":");
    for (int i = 0; i < 100000; i++) pc_buf_putc(&deep, '[');
    for (int i = 0; i < 100000; i++) pc_buf_putc(&deep, ']');
    pc_buf_puts(&deep, "}}");
    expect_poison(J, deep.data, deep.len, "invalid JSON");
    pc_buf_free(&deep);
    /* minimal valid message: every other field defaults */
    pc_batch *b = pc_batch_create(NULL);
    pc_kafka_decode_result r;
    const char *min = "{\"trace_id\":\"t\",\"span_id\":\"s\",\"parent_span_id\":null}";
    CHECK_EQ_INT(pc_kafka_decode(b, J, min, strlen(min), 5, &r), PC_KAFKA_SPANS);
    CHECK_EQ_INT(b->n, 1);
    CHECK_EQ_INT(b->spans[0].received_ns, 5);
    CHECK_EQ_INT(b->spans[0].parent_id.n, 0);
    CHECK(b->spans[0].resource == &pc_empty_attrs && b->spans[0].scope == &pc_empty_scope);
    pc_batch_unref(b);
}

static void test_hostile_otlp(void)
{
    pc_batch *ob = originals();
    const pc_span *all[8];
    for (size_t i = 0; i < ob->n; i++) all[i] = &ob->spans[i];
    pc_buf pj = PC_BUF_INIT, pp = PC_BUF_INIT;
    pc_otlp_json_encode(&pj, all, ob->n);
    pc_otlp_proto_encode(&pp, all, ob->n);
    for (size_t n = 0; n < pj.len; n++) expect_poison(PC_KAFKA_OTLP_JSON, pj.data, n, NULL);
    /* a protobuf prefix may be a shorter valid message: never more spans, never a crash */
    for (size_t n = 0; n < pp.len; n++) {
        pc_batch *b = pc_batch_create(NULL);
        pc_kafka_decode_result r;
        pc_kafka_decoded d = pc_kafka_decode(b, PC_KAFKA_OTLP_PROTO, pp.data, n, 0, &r);
        CHECK(d == PC_KAFKA_POISON ? b->n == 0 && r.error[0] : b->n > 0 && b->n <= ob->n);
        pc_batch_unref(b);
    }
    /* flipped bytes */
    srand(7);
    for (int k = 0; k < 2000; k++) {
        char *c = malloc(pp.len);
        memcpy(c, pp.data, pp.len);
        for (int j = 0; j < 4; j++) c[rand() % pp.len] = (char)rand();
        pc_batch *b = pc_batch_create(NULL);
        pc_kafka_decode_result r;
        pc_kafka_decode(b, PC_KAFKA_OTLP_PROTO, c, pp.len, 0, &r);
        pc_batch_unref(b);
        free(c);
    }
    pc_buf_free(&pj), pc_buf_free(&pp);
    pc_batch_unref(ob);
    POISON(PC_KAFKA_OTLP_PROTO, "", "no spans");
    POISON(PC_KAFKA_OTLP_PROTO, "\xff\xff\xff", NULL);
    POISON(PC_KAFKA_OTLP_JSON, "{}", "no spans");
    POISON(PC_KAFKA_OTLP_JSON, "{\"resourceSpans\":7}", NULL);
    POISON(PC_KAFKA_OTLP_JSON, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
                               "\"00\",\"spanId\":\"01\"}]}]}]}",
           "no spans");
    /* a prela_json span message on an otlp topic is poison too */
    POISON(PC_KAFKA_OTLP_PROTO, "{\"trace_id\":\"t\",\"span_id\":\"s\"}", NULL);
}

/* ------------------------------------------------------ forged ids -- */

/*
 * An OTLP client's own prela.trace_id / prela.span_id / prela.parent_span_id /
 * prela.span_type attributes (and one already in the escape's form) must not
 * set what the storage side decodes: the ids stay the span's own, the source
 * stays otlp, and every such attribute comes back as the attribute it was.
 */
static void forged(bool json)
{
    pc_batch *ob = pc_batch_create(NULL);
    A = ob->arena;
    pc_span *s = pc_batch_add(ob);
    s->trace_id = S("5b8efff798038103d269b633813fc60c");
    s->span_id = S("eee19b7ec3c1b174");
    s->parent_id = S("eee19b7ec3c1b173");
    s->name = S("forge");
    s->start_ns = T0;
    s->end_ns = T0 + MS;
    s->project_id = S("p");
    s->source = PC_SOURCE_OTLP;
    s->attrs = attrs(6, "prela.trace_id", vstr("forged-trace"), "prela.span_id",
                     vstr("forged-span"), "prela.parent_span_id", vstr("forged-parent"),
                     "prela.span_type", vstr("llm"), "prela.client.prela.trace_id", vstr("x"),
                     "prela.client.", vint(7));
    /* and a Prela span with a non-hex id whose client also sent prela.span_id */
    pc_span *p = pc_batch_add(ob);
    p->trace_id = S("test-trace");
    p->span_id = S("span-1");
    p->start_ns = T0;
    p->project_id = S("p");
    p->source = PC_SOURCE_PRELA;
    p->span_type_text = S("tool");
    p->attrs = attrs(2, "prela.span_id", vstr("span-2"), "prela.span_type", vstr("agent"));
    normalize_all(ob);
    const pc_span *all[2] = {s, p};
    pc_buf m = PC_BUF_INIT;
    if (json) pc_otlp_json_encode(&m, all, 2);
    else pc_otlp_proto_encode(&m, all, 2);
    pc_batch *gb = pc_batch_create(NULL);
    pc_kafka_decode_result r;
    CHECK_EQ_INT(pc_kafka_decode(gb, json ? PC_KAFKA_OTLP_JSON : PC_KAFKA_OTLP_PROTO, m.data,
                                 m.len, 1, &r),
                 PC_KAFKA_SPANS);
    pc_buf_free(&m);
    CHECK_EQ_INT(gb->n, 2);
    if (gb->n == 2) {
        const pc_span *g = &gb->spans[0];
        CHECK_EQ_PSTR(g->trace_id, "5b8efff798038103d269b633813fc60c");
        CHECK_EQ_PSTR(g->span_id, "eee19b7ec3c1b174");
        CHECK_EQ_PSTR(g->parent_id, "eee19b7ec3c1b173");
        CHECK_EQ_INT(g->source, PC_SOURCE_OTLP);
        CHECK_EQ_INT(g->attrs.n, 6);
        CHECK(attrs_eq(&s->attrs, &g->attrs, false));
        const pc_span *h = &gb->spans[1];
        CHECK_EQ_PSTR(h->span_id, "span-1");
        CHECK_EQ_PSTR(h->trace_id, "test-trace");
        CHECK_EQ_INT(h->source, PC_SOURCE_PRELA);
        CHECK_EQ_PSTR(h->span_type_text, "tool");
        CHECK(attrs_eq(&p->attrs, &h->attrs, false));
    }
    pc_batch_unref(gb);
    pc_batch_unref(ob);
    CHECK(pc_otlp_prela_escaped(PC_STR_LIT("prela.trace_id")));
    CHECK(pc_otlp_prela_escaped(PC_STR_LIT("prela.client.anything")));
    CHECK(!pc_otlp_prela_escaped(PC_STR_LIT("prela.project_id")));
    CHECK(!pc_otlp_prela_escaped(PC_STR_LIT("prela.trace")));
}

static void test_client_prela_attributes_proto(void)
{
    forged(false);
}

static void test_client_prela_attributes_json(void)
{
    forged(true);
}

/* ------------------------------------------------------------- times -- */

/* Before 1970 is outside every encoding (timefmt.h): refused, never half-decoded. */
static void test_times_before_1970(void)
{
    const pc_kafka_encoding J = PC_KAFKA_PRELA_JSON;
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"events\":[{\"name\":\"e\",\"timestamp\":"
              "\"1969-12-31T23:59:59Z\"}]}",
           "events[0].timestamp: out of range");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"events\":[{\"time_unix_nano\":-1}]}",
           "events[0].time_unix_nano: -1 out of range");
    POISON(J, "{\"trace_id\":\"t\\u0000x\",\"span_id\":\"s\"}",
           "trace_id: U+0000 in a string is not supported");
    POISON(J, "{\"trace_id\":\"t\",\"span_id\":\"s\",\"resource\":{\"r\":\"\\u0000\"}}",
           "resource.attributes.r: U+0000");
    /* the edges of the range decode, in all three encodings */
    pc_batch *ob = pc_batch_create(NULL);
    A = ob->arena;
    pc_span *s = pc_batch_add(ob);
    s->trace_id = S("t-edge");
    s->span_id = S("s-edge");
    s->start_ns = 0;
    s->end_ns = INT64_MAX;
    s->project_id = S("p");
    s->source = PC_SOURCE_PRELA;
    s->events = pc_arena_calloc(A, sizeof(pc_event));
    s->events[0] = (pc_event){S("e"), INT64_MAX, pc_empty_attrs, 0};
    s->n_events = 1;
    normalize_all(ob);
    const pc_span *all[1] = {s};
    for (int enc = 0; enc < 3; enc++) {
        pc_buf m = PC_BUF_INIT;
        if (enc == 0) pc_prela_json_encode_span(&m, s, 1);
        else if (enc == 1) pc_otlp_proto_encode(&m, all, 1);
        else pc_otlp_json_encode(&m, all, 1);
        pc_batch *gb = pc_batch_create(NULL);
        pc_kafka_decode_result r;
        CHECK_EQ_INT(pc_kafka_decode(gb, (pc_kafka_encoding)enc, m.data, m.len, 1, &r),
                     PC_KAFKA_SPANS);
        if (gb->n == 1) {
            CHECK_EQ_INT(gb->spans[0].start_ns, 0);
            CHECK_EQ_INT(gb->spans[0].end_ns, INT64_MAX);
            CHECK_EQ_INT(gb->spans[0].events[0].time_ns, INT64_MAX);
        }
        pc_buf_free(&m);
        pc_batch_unref(gb);
    }
    pc_batch_unref(ob);
}

/* encoding: auto reads each message in its own encoding (kafka_message.h). */
static void test_auto_detect(void)
{
    pc_batch *ob = originals();
    const pc_span *all[8];
    for (size_t i = 0; i < ob->n; i++) all[i] = &ob->spans[i];
    pc_buf m = PC_BUF_INIT;
    pc_prela_json_encode_span(&m, &ob->spans[0], ob->received_ns);
    CHECK_EQ_INT(pc_kafka_encoding_detect(m.data, m.len), PC_KAFKA_PRELA_JSON);
    pc_batch *gb = pc_batch_create(NULL);
    pc_kafka_decode_result r;
    CHECK_EQ_INT(pc_kafka_decode(gb, PC_KAFKA_AUTO, m.data, m.len, 0, &r), PC_KAFKA_SPANS);
    CHECK_EQ_INT(gb->n, 1);
    CHECK(gb->n == 1 && gb->spans[0].span_id.n == ob->spans[0].span_id.n &&
          memcmp(gb->spans[0].span_id.p, ob->spans[0].span_id.p, ob->spans[0].span_id.n) == 0);
    m.len = 0;
    pc_prela_json_encode_trace(&m, all, 2, ob->received_ns);
    CHECK_EQ_INT(pc_kafka_decode(gb, PC_KAFKA_AUTO, m.data, m.len, 0, &r), PC_KAFKA_SUMMARY);
    pc_buf_free(&m);
    pc_batch_unref(gb);
    pc_batch_unref(ob);
    /* first bytes only: pretty OTLP/JSON, snake_case, not-a-request JSON, binary */
    static const struct {
        const char *msg;
        size_t len;
        pc_kafka_encoding want;
    } cases[] = {
        {"{ \n\t\"resourceSpans\": []}", 24, PC_KAFKA_OTLP_JSON},
        {"{\"resource_spans\":[]}", 21, PC_KAFKA_OTLP_JSON},
        {"{\"resourceSpan\":1}", 18, PC_KAFKA_PRELA_JSON},
        {"{", 1, PC_KAFKA_PRELA_JSON},
        {"", 0, PC_KAFKA_OTLP_PROTO},
        /* a ResourceSpans of 123 bytes: tag 0x0A ('\n'), length 0x7B ('{') */
        {"\x0a\x7b\x0a\x00", 4, PC_KAFKA_OTLP_PROTO},
        {" {\"trace_id\":1}", 15, PC_KAFKA_OTLP_PROTO},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pc_kafka_encoding got = pc_kafka_encoding_detect(cases[i].msg, cases[i].len);
        if (got != cases[i].want) fprintf(stderr, "   case %zu: got %d\n", i, (int)got);
        CHECK_EQ_INT(got, cases[i].want);
    }
    /* undecodable in the detected encoding: poison, as with a fixed encoding */
    POISON(PC_KAFKA_AUTO, "{\"trace_id\":", NULL);
    POISON(PC_KAFKA_AUTO, "\x0a\x7b\x0a", NULL);
}

static void test_encoding_names(void)
{
    CHECK_EQ_INT(pc_kafka_encoding_parse("prela_json"), PC_KAFKA_PRELA_JSON);
    CHECK_EQ_INT(pc_kafka_encoding_parse("OTLP_PROTO"), PC_KAFKA_OTLP_PROTO);
    CHECK_EQ_INT(pc_kafka_encoding_parse("otlp_json"), PC_KAFKA_OTLP_JSON);
    CHECK_EQ_INT(pc_kafka_encoding_parse("auto"), PC_KAFKA_AUTO);
    CHECK_EQ_INT(pc_kafka_encoding_parse("avro"), -1);
    CHECK_EQ_INT(pc_kafka_encoding_parse(NULL), -1);
}

int main(void)
{
    RUN(test_encoding_names);
    RUN(test_prela_json_round_trip);
    RUN(test_otlp_proto_round_trip);
    RUN(test_otlp_json_round_trip);
    RUN(test_auto_detect);
    RUN(test_hostile_prela_json);
    RUN(test_hostile_otlp);
    RUN(test_client_prela_attributes_proto);
    RUN(test_client_prela_attributes_json);
    RUN(test_times_before_1970);
    return CHECK_DONE();
}
