/*
 * test_otlp_proto_encode.c - the OTLP protobuf writer
 * (pc_otlp_proto_encode, otlp_proto_encode.c) against protobuf-c as the oracle, on
 * random spans: every pc_value type (nested arrays and maps, NaN, negative and
 * large ints, empty strings and bytes), events, links, shared and unshared
 * resources and scopes, hex, UUID and Prela-style ids, reserved attribute keys,
 * strings with invalid UTF-8 (never NUL: span.h's model has none, every
 * decoder refuses it).
 *
 * Each case: encode -> protobuf_c_message_unpack with the generated OTLP
 * descriptors -> every field compared with the span model as otlp_prela.h
 * specifies it -> packed again by protobuf-c, which must give the same bytes
 * (so the writer's bytes are protobuf-c's: field order, omitted defaults) ->
 * for cases whose strings are valid UTF-8, decoded by the wire
 * reader (pc_otlp_proto_decode), whose spans must carry the ids, times and
 * attributes back.
 *
 *   formats_test_otlp_proto_encode [SEED [CASES]]   (or PC_TEST_SEED=...)
 */
#include "check.h"

#include "arena.h"
#include "buf.h"
#include "formats/otlp_prela.h"
#include "formats/otlp_proto.h"
#include "formats/prela_json.h"
#include "span.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest pb_request;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans pb_rs;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans pb_ss;
typedef Opentelemetry__Proto__Trace__V1__Span pb_span;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope pb_scope;

/* ------------------------------------------------------------ random model -- */

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static size_t below(size_t n)
{
    return (size_t)(rnd() % n);
}

static pc_arena *A;
static bool clean; /* this case's strings: valid UTF-8, no empty keys */

static pc_str dup(const char *p, size_t n)
{
    return (pc_str){pc_arena_strndup(A, p, n), n};
}

static pc_str rstr(size_t max)
{
    static const char *const pieces[] = {"a", "Z", " ", "é", "日本", "\"", "\\", "\n", "😀", "x"};
    char tmp[256];
    size_t n = 0, want = below(max + 1);
    if (below(60) == 0) { /* long: lengths around the 1-, 2- and 3-byte varint limits */
        static const size_t lens[] = {126, 127, 128, 129, 16382, 16383, 16384, 70000};
        size_t len = lens[below(8)];
        char *p = pc_arena_alloc(A, len + 1);
        for (size_t i = 0; i < len; i++)
            p[i] = (char)('a' + i % 26);
        if (!clean && below(2)) p[below(len)] = (char)0xff;
        return (pc_str){p, len};
    }
    while (n < want && n + 8 < sizeof(tmp)) {
        if (!clean && below(8) == 0) {
            tmp[n++] = (char)0xff; /* invalid UTF-8 */
            continue;
        }
        const char *p = pieces[below(10)];
        memcpy(tmp + n, p, strlen(p));
        n += strlen(p);
    }
    return dup(tmp, n);
}

static pc_str hexid(size_t digits, bool upper)
{
    char tmp[32];
    for (size_t i = 0; i < digits; i++)
        tmp[i] = (upper ? "0123456789ABCDEF" : "0123456789abcdef")[below(16)];
    if (below(20) == 0) memset(tmp, '0', digits); /* all zero: not an OTLP id */
    return dup(tmp, digits);
}

/* A trace (|digits| 32) or span (16) id in one of the forms clients send. */
static pc_str rid(size_t digits)
{
    switch (below(6)) {
    case 0:
    case 1:
    case 2:
        return hexid(digits, false);
    case 3: {
        char u[37];
        pc_str h = hexid(32, below(4) == 0);
        snprintf(u, sizeof(u), "%.8s-%.4s-%.4s-%.4s-%.12s", h.p, h.p + 8, h.p + 12, h.p + 16,
                 h.p + 20);
        return dup(u, 36);
    }
    case 4:
        return hexid(digits, true);
    default: {
        char t[32];
        int n = snprintf(t, sizeof(t), "test-%u", (unsigned)below(100000));
        pc_str s = dup(t, (size_t)n), r = rstr(12);
        return r.n && below(3) == 0 ? r : s;
    }
    }
}

static void rvalue(pc_value *v, int depth);

static pc_str rkey(void)
{
    static const char *const keys[] = {"prela.trace_id",       "prela.span_id",
                                       "prela.parent_span_id", "prela.span_type",
                                       "prela.client.x",       "prela.clientx",
                                       "prela.project_id",     "service.name",
                                       "gen_ai.system",        "k"};
    const char *k0 = keys[below(10)];
    if (below(3) == 0) return dup(k0, strlen(k0));
    pc_str k = rstr(10);
    if (clean && k.n == 0) k = dup("e", 1);
    return k;
}

static pc_attrs rattrs(size_t max, int depth)
{
    pc_attrs a = {NULL, below(max + 1)};
    a.kv = pc_arena_calloc(A, (a.n + 1) * sizeof(*a.kv));
    for (size_t i = 0; i < a.n; i++) {
        a.kv[i].key = rkey();
        rvalue(&a.kv[i].value, depth);
    }
    return a;
}

static void rvalue(pc_value *v, int depth)
{
    static const int64_t ints[] = {0, 1, -1, INT64_MAX, INT64_MIN, 127, 128, -300, 1LL << 40};
    static const double dbls[] = {0.0, -0.0, 1.5, -2.25e300, 1e-300};
    memset(v, 0, sizeof(*v));
    v->type = (pc_value_type)below(depth > 2 ? 6 : 8);
    switch (v->type) {
    case PC_V_STR:
        v->s = rstr(20);
        break;
    case PC_V_BOOL:
        v->b = below(2);
        break;
    case PC_V_INT:
        v->i = below(2) ? ints[below(9)] : (int64_t)rnd();
        break;
    case PC_V_DOUBLE:
        v->d = below(5) == 0 ? NAN : below(2) ? dbls[below(5)] : (double)(int64_t)rnd() / 7;
        if (below(10) == 0) v->d = -INFINITY;
        break;
    case PC_V_BYTES: {
        size_t n = below(5) ? below(20) : 0;
        char *p = pc_arena_alloc(A, n + 1);
        for (size_t i = 0; i < n; i++)
            p[i] = (char)rnd();
        v->s = (pc_str){p, n};
        break;
    }
    case PC_V_ARRAY:
        v->arr.n = below(4);
        v->arr.v = pc_arena_calloc(A, (v->arr.n + 1) * sizeof(pc_value));
        for (size_t i = 0; i < v->arr.n; i++)
            rvalue(&v->arr.v[i], depth + 1);
        break;
    case PC_V_MAP: {
        pc_attrs m = rattrs(3, depth + 1);
        v->map.kv = m.kv;
        v->map.n = m.n;
        break;
    }
    default:
        break; /* null */
    }
}

static int64_t rtime(void)
{
    switch (below(6)) {
    case 0:
        return 0;
    case 1:
        return -(int64_t)below(1000000);
    case 2:
        return INT64_MAX;
    default:
        return 1737972000000000000LL + (int64_t)below(1000000000);
    }
}

static void rspan(pc_span *s, const pc_attrs *res, size_t n_res, const pc_scope *sc, size_t n_sc)
{
    static const char *const projects[] = {"", "p1", "proj-2"};
    static const char *const services[] = {"", "svc", "other"};
    memset(s, 0, sizeof(*s));
    s->trace_id = rid(32);
    s->span_id = rid(16);
    s->parent_id = below(3) ? rid(16) : PC_STR_LIT("");
    s->trace_state = below(2) ? rstr(10) : PC_STR_LIT("");
    s->name = rstr(16);
    s->kind = (int)below(6);
    if (!clean && below(10) == 0) s->kind = below(2) ? -1 : 9;
    s->start_ns = rtime();
    s->end_ns = rtime();
    s->status_code = (int)below(3);
    if (!clean && below(10) == 0) s->status_code = below(2) ? -2 : 7;
    s->status_message = below(2) ? rstr(10) : PC_STR_LIT("");
    const char *project = projects[below(3)], *service = services[below(3)];
    s->project_id = dup(project, strlen(project));
    s->service_name = dup(service, strlen(service));
    s->source = below(2) ? PC_SOURCE_OTLP : PC_SOURCE_PRELA;
    s->span_type = (pc_span_type)below(PC_TYPE_COUNT);
    s->status = (pc_status)below(3);
    s->flags = below(2) ? 0 : below(2) ? 1 : (uint32_t)rnd();
    s->attrs = rattrs(6, 0);
    s->resource = below(5) ? &res[below(n_res)] : NULL;
    s->scope = below(5) ? &sc[below(n_sc)] : NULL;
    s->n_events = below(3);
    s->events = pc_arena_calloc(A, (s->n_events + 1) * sizeof(pc_event));
    for (size_t i = 0; i < s->n_events; i++) {
        s->events[i].name = below(4) ? rstr(10) : PC_STR_LIT("");
        s->events[i].time_ns = rtime();
        s->events[i].attrs = rattrs(3, 1);
    }
    s->n_links = below(3);
    s->links = pc_arena_calloc(A, (s->n_links + 1) * sizeof(pc_link));
    for (size_t i = 0; i < s->n_links; i++) {
        s->links[i].trace_id = rid(32);
        s->links[i].span_id = rid(16);
        s->links[i].trace_state = below(2) ? rstr(8) : PC_STR_LIT("");
        s->links[i].attrs = rattrs(2, 1);
    }
}

/* ------------------------------------------------------------ expectations -- */

static char fail_why[512]; /* the first mismatch of the case */

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (!fail_why[0]) snprintf(fail_why, sizeof(fail_why), __VA_ARGS__);                   \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

static bool str_is(const char *got, pc_str want)
{
    size_t n = want.n;
    return got && strlen(got) == n && (n == 0 || !memcmp(got, want.p, n));
}

static int hexv(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* True when |id| is |n| lowercase-hex bytes, not all zero; sets |out|. */
static bool plain_id(pc_str id, uint8_t *out, size_t n)
{
    if (id.n != 2 * n) return false;
    bool nz = false;
    for (size_t i = 0; i < n; i++) {
        int h = hexv(id.p[2 * i]), l = hexv(id.p[2 * i + 1]);
        if (h < 0 || l < 0) return false;
        out[i] = (uint8_t)(h << 4 | l);
        nz |= out[i] != 0;
    }
    return nz;
}

static bool id_ok(ProtobufCBinaryData got, pc_str id, size_t n, const char *what)
{
    uint8_t want[16];
    EXPECT(got.len == n, "%s: %zu bytes", what, got.len);
    bool nz = false;
    for (size_t i = 0; i < n; i++)
        nz |= got.data[i] != 0;
    EXPECT(nz, "%s: all zero", what);
    if (plain_id(id, want, n)) EXPECT(!memcmp(got.data, want, n), "%s: not the hex", what);
    return true;
}

static bool value_ok(const pb_any *p, const pc_value *v);

static bool kvs_ok(pb_kv **got, size_t n_got, const pc_kv *kv, size_t n, bool escape, size_t *used)
{
    EXPECT(n_got >= n, "%zu key/values, want %zu", n_got, n);
    for (size_t i = 0; i < n; i++) {
        const char *k = got[i]->key;
        if (escape && pc_otlp_prela_escaped(kv[i].key)) {
            size_t pn = strlen(PC_OTLP_PRELA_ESCAPE);
            EXPECT(!strncmp(k, PC_OTLP_PRELA_ESCAPE, pn) && str_is(k + pn, kv[i].key),
                   "key %zu not escaped: %s", i, k);
        } else {
            EXPECT(str_is(k, kv[i].key), "key %zu: %s", i, k);
        }
        if (!value_ok(got[i]->value, &kv[i].value)) return false;
    }
    if (used)
        *used = n;
    else
        EXPECT(n_got == n, "%zu key/values, want %zu", n_got, n);
    return true;
}

static bool value_ok(const pb_any *p, const pc_value *v)
{
    EXPECT(p, "no AnyValue");
    switch (v->type) {
    case PC_V_STR:
        EXPECT(p->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
                   str_is(p->string_value, v->s),
               "string value");
        return true;
    case PC_V_BOOL:
        EXPECT(p->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE &&
                   !p->bool_value == !v->b,
               "bool value");
        return true;
    case PC_V_INT:
        EXPECT(p->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE &&
                   p->int_value == v->i,
               "int value %lld", (long long)v->i);
        return true;
    case PC_V_DOUBLE:
        EXPECT(p->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE &&
                   !memcmp(&p->double_value, &v->d, 8),
               "double value %g", v->d);
        return true;
    case PC_V_BYTES:
        EXPECT(p->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE &&
                   p->bytes_value.len == v->s.n &&
                   (v->s.n == 0 || !memcmp(p->bytes_value.data, v->s.p, v->s.n)),
               "bytes value");
        return true;
    case PC_V_ARRAY:
        EXPECT(p->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE &&
                   p->array_value->n_values == v->arr.n,
               "array value");
        for (size_t i = 0; i < v->arr.n; i++)
            if (!value_ok(p->array_value->values[i], &v->arr.v[i])) return false;
        return true;
    case PC_V_MAP:
        EXPECT(p->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE,
               "map value");
        return kvs_ok(p->kvlist_value->values, p->kvlist_value->n_values, v->map.kv, v->map.n,
                      false, NULL);
    default:
        EXPECT(p->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET,
               "null value");
        return true;
    }
}

/* The extra attribute |key| = |val| at got[*i], if |present|. */
static bool extra_ok(pb_kv **got, size_t n_got, size_t *i, bool present, const char *key,
                     pc_str val)
{
    if (!present) return true;
    EXPECT(*i < n_got && !strcmp(got[*i]->key, key), "missing %s", key);
    EXPECT(value_ok(got[*i]->value, &(pc_value){.type = PC_V_STR, .s = val}), "%s value", key);
    (*i)++;
    return true;
}

static uint64_t unix_ns(int64_t ns)
{
    return ns > 0 ? (uint64_t)ns : 0;
}

/* One span as otlp_prela.h specifies it, with its resource and scope. */
static bool span_ok(const pb_span *p, const pb_kv *const *res, size_t n_res, const pb_scope *sc,
                    const pc_span *s)
{
    uint8_t tmp[16];
    fail_why[0] = 0;
    if (!id_ok(p->trace_id, s->trace_id, 16, "trace_id") ||
        !id_ok(p->span_id, s->span_id, 8, "span_id"))
        return false;
    if (s->parent_id.n) {
        if (!id_ok(p->parent_span_id, s->parent_id, 8, "parent_span_id")) return false;
    } else {
        EXPECT(p->parent_span_id.len == 0, "parent of a root");
    }
    EXPECT(str_is(p->trace_state, s->trace_state), "trace_state");
    EXPECT(str_is(p->name, s->name), "name");
    EXPECT((int)p->kind == s->kind, "kind %d", (int)p->kind);
    EXPECT(p->start_time_unix_nano == unix_ns(s->start_ns), "start");
    EXPECT(p->end_time_unix_nano == unix_ns(s->end_ns), "end");
    EXPECT(p->flags == s->flags, "flags");
    size_t i;
    if (!kvs_ok(p->attributes, p->n_attributes, s->attrs.kv, s->attrs.n, true, &i)) return false;
    bool tid = !plain_id(s->trace_id, tmp, 16), sid = !plain_id(s->span_id, tmp, 8);
    bool pid = s->parent_id.n && !plain_id(s->parent_id, tmp, 8);
    const char *type = pc_span_type_name(s->span_type);
    if (!extra_ok(p->attributes, p->n_attributes, &i, tid, "prela.trace_id", s->trace_id) ||
        !extra_ok(p->attributes, p->n_attributes, &i, sid, "prela.span_id", s->span_id) ||
        !extra_ok(p->attributes, p->n_attributes, &i, pid, "prela.parent_span_id", s->parent_id) ||
        !extra_ok(p->attributes, p->n_attributes, &i, s->source == PC_SOURCE_PRELA,
                  "prela.span_type", (pc_str){type, strlen(type)}))
        return false;
    EXPECT(i == p->n_attributes, "%zu attributes, want %zu", p->n_attributes, i);
    EXPECT(p->n_events == s->n_events, "events");
    for (size_t e = 0; e < s->n_events; e++) {
        EXPECT(p->events[e]->time_unix_nano == unix_ns(s->events[e].time_ns), "event time");
        EXPECT(str_is(p->events[e]->name, s->events[e].name), "event name");
        if (!kvs_ok(p->events[e]->attributes, p->events[e]->n_attributes, s->events[e].attrs.kv,
                    s->events[e].attrs.n, false, NULL))
            return false;
    }
    EXPECT(p->n_links == s->n_links, "links");
    for (size_t l = 0; l < s->n_links; l++) {
        if (!id_ok(p->links[l]->trace_id, s->links[l].trace_id, 16, "link trace_id") ||
            !id_ok(p->links[l]->span_id, s->links[l].span_id, 8, "link span_id"))
            return false;
        EXPECT(str_is(p->links[l]->trace_state, s->links[l].trace_state), "link trace_state");
        if (!kvs_ok(p->links[l]->attributes, p->links[l]->n_attributes, s->links[l].attrs.kv,
                    s->links[l].attrs.n, false, NULL))
            return false;
    }
    int code = s->source == PC_SOURCE_OTLP      ? s->status_code
               : s->status == PC_STATUS_ERROR   ? PC_OTLP_STATUS_ERROR
               : s->status == PC_STATUS_SUCCESS ? PC_OTLP_STATUS_OK
                                                : PC_OTLP_STATUS_UNSET;
    EXPECT(p->status && (int)p->status->code == code, "status code");
    EXPECT(str_is(p->status->message, s->status_message), "status message");
    /* resource: its attributes, prela.project_id replaced, service.name added */
    const pc_attrs *r = s->resource ? s->resource : &pc_empty_attrs;
    size_t k = 0;
    for (size_t a = 0; a < r->n; a++) {
        if (s->project_id.n && pc_str_eq(r->kv[a].key, "prela.project_id")) continue;
        EXPECT(k < n_res && str_is(res[k]->key, r->kv[a].key), "resource key %zu", k);
        if (!value_ok(res[k]->value, &r->kv[a].value)) return false;
        k++;
    }
    if (!extra_ok((pb_kv **)res, n_res, &k, s->project_id.n, "prela.project_id", s->project_id) ||
        !extra_ok((pb_kv **)res, n_res, &k, s->service_name.n && !pc_attrs_get(r, "service.name"),
                  "service.name", s->service_name))
        return false;
    EXPECT(k == n_res, "resource: %zu attributes, want %zu", n_res, k);
    const pc_scope *c = s->scope ? s->scope : &pc_empty_scope;
    EXPECT(sc && str_is(sc->name, c->name) && str_is(sc->version, c->version), "scope");
    return kvs_ok(sc->attributes, sc->n_attributes, c->attrs.kv, c->attrs.n, false, NULL);
}

/* ------------------------------------------------------------ round trip -- */

static bool str_equal_model(pc_str a, pc_str b)
{
    return a.n == b.n && (!a.n || !memcmp(a.p, b.p, a.n));
}

static bool model_value_eq(const pc_value *a, const pc_value *b)
{
    if (a->type != b->type) return false;
    switch (a->type) {
    case PC_V_STR:
    case PC_V_BYTES:
        return a->s.n == b->s.n && (!a->s.n || !memcmp(a->s.p, b->s.p, a->s.n));
    case PC_V_BOOL:
        return !a->b == !b->b;
    case PC_V_INT:
        return a->i == b->i;
    case PC_V_DOUBLE:
        return !memcmp(&a->d, &b->d, 8);
    case PC_V_ARRAY:
        if (a->arr.n != b->arr.n) return false;
        for (size_t i = 0; i < a->arr.n; i++)
            if (!model_value_eq(&a->arr.v[i], &b->arr.v[i])) return false;
        return true;
    case PC_V_MAP:
        if (a->map.n != b->map.n) return false;
        for (size_t i = 0; i < a->map.n; i++)
            if (!str_equal_model(a->map.kv[i].key, b->map.kv[i].key) ||
                !model_value_eq(&a->map.kv[i].value, &b->map.kv[i].value))
                return false;
        return true;
    default:
        return true;
    }
}

/* The decoded span |d| carries |s|'s ids, times and attributes. */
static bool decoded_ok(const pc_span *d, const pc_span *s)
{
    uint8_t tmp[16];
    fail_why[0] = 0;
    const pc_value *v = pc_attrs_get(&d->attrs, "prela.trace_id");
    if (plain_id(s->trace_id, tmp, 16))
        EXPECT(str_equal_model(d->trace_id, s->trace_id) && !v, "decoded trace_id");
    else
        EXPECT(v && model_value_eq(v, &(pc_value){.type = PC_V_STR, .s = s->trace_id}),
               "decoded prela.trace_id");
    v = pc_attrs_get(&d->attrs, "prela.span_id");
    if (plain_id(s->span_id, tmp, 8))
        EXPECT(str_equal_model(d->span_id, s->span_id) && !v, "decoded span_id");
    else
        EXPECT(v && model_value_eq(v, &(pc_value){.type = PC_V_STR, .s = s->span_id}),
               "decoded prela.span_id");
    EXPECT(d->start_ns == (int64_t)unix_ns(s->start_ns), "decoded start");
    EXPECT(d->end_ns == (int64_t)unix_ns(s->end_ns), "decoded end");
    EXPECT(d->kind == s->kind && d->flags == s->flags, "decoded kind/flags");
    EXPECT(str_equal_model(d->name, s->name), "decoded name");
    EXPECT(d->n_events == s->n_events && d->n_links == s->n_links, "decoded events/links");
    EXPECT(d->attrs.n >= s->attrs.n, "decoded attributes");
    size_t pn = strlen(PC_OTLP_PRELA_ESCAPE);
    for (size_t i = 0; i < s->attrs.n; i++) {
        pc_str k = d->attrs.kv[i].key;
        if (pc_otlp_prela_escaped(s->attrs.kv[i].key)) {
            EXPECT(k.n == pn + s->attrs.kv[i].key.n && !memcmp(k.p, PC_OTLP_PRELA_ESCAPE, pn) &&
                       !memcmp(k.p + pn, s->attrs.kv[i].key.p, s->attrs.kv[i].key.n),
                   "decoded escaped key %zu", i);
        } else {
            EXPECT(str_equal_model(k, s->attrs.kv[i].key), "decoded key %zu", i);
        }
        EXPECT(model_value_eq(&d->attrs.kv[i].value, &s->attrs.kv[i].value), "decoded value %zu",
               i);
    }
    if (s->project_id.n) EXPECT(str_equal_model(d->project_id, s->project_id), "decoded project");
    return true;
}

/* ------------------------------------------------------------ the cases -- */

static size_t n_bytes_same, n_decoded;

static void one_case(uint64_t seed, size_t idx)
{
    A = pc_arena_create(1 << 16);
    clean = below(2);
    size_t n_res = 1 + below(3), n_sc = 1 + below(3), n = 1 + below(12);
    pc_attrs *res = pc_arena_calloc(A, n_res * sizeof(*res));
    pc_scope *sc = pc_arena_calloc(A, n_sc * sizeof(*sc));
    for (size_t i = 0; i < n_res; i++)
        res[i] = rattrs(4, 1);
    for (size_t i = 0; i < n_sc; i++) {
        sc[i].name = below(4) ? rstr(8) : PC_STR_LIT("");
        sc[i].version = below(2) ? rstr(5) : PC_STR_LIT("");
        sc[i].attrs = rattrs(2, 1);
    }
    pc_span *spans = pc_arena_calloc(A, n * sizeof(*spans));
    const pc_span **ptrs = pc_arena_calloc(A, n * sizeof(*ptrs));
    for (size_t i = 0; i < n; i++) {
        rspan(&spans[i], res, n_res, sc, n_sc);
        ptrs[i] = &spans[i];
    }
    pc_buf out = PC_BUF_INIT;
    pc_buf_puts(&out, "head"); /* the encoder appends */
    pc_otlp_proto_encode(&out, ptrs, n);
    CHECK(!memcmp(out.data, "head", 4));
    const uint8_t *body = (const uint8_t *)out.data + 4;
    size_t len = out.len - 4;

    pb_request *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len,
                                                                                         body);
    CHECK(req != NULL);
    if (!req) {
        fprintf(stderr, "case %zu (seed %llu): protobuf-c cannot unpack\n", idx,
                (unsigned long long)seed);
        goto done;
    }
    /* every span found once, in batch order within its group */
    bool *used = pc_arena_calloc(A, n);
    const pc_span **order = pc_arena_calloc(A, n * sizeof(*order));
    size_t got = 0, bad = 0;
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        pb_rs *rs = req->resource_spans[r];
        CHECK(rs->resource != NULL && rs->n_scope_spans > 0);
        for (size_t k = 0; k < rs->n_scope_spans; k++) {
            pb_ss *ss = rs->scope_spans[k];
            for (size_t j = 0; j < ss->n_spans; j++, got++) {
                size_t m = 0;
                while (m < n &&
                       (used[m] ||
                        !span_ok(ss->spans[j], (const pb_kv *const *)rs->resource->attributes,
                                 rs->resource->n_attributes, ss->scope, &spans[m])))
                    m++;
                if (m == n) {
                    if (!bad++)
                        fprintf(stderr, "case %zu (seed %llu): span %zu matches none (%s)\n", idx,
                                (unsigned long long)seed, got, fail_why);
                    continue;
                }
                used[m] = true;
                if (got < n) order[got] = &spans[m];
            }
        }
    }
    CHECK_EQ_INT(got, n);
    CHECK_EQ_INT(bad, 0);

    /* protobuf-c packs what it unpacked into the same bytes */
    size_t again =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            req);
    uint8_t *re = malloc(again + 1);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(req, re);
    bool same = again == len && !memcmp(re, body, len);
    CHECK(same);
    if (!same)
        fprintf(stderr, "case %zu (seed %llu): %zu bytes, protobuf-c packs %zu\n", idx,
                (unsigned long long)seed, len, again);
    n_bytes_same += same;
    free(re);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req,
                                                                                            NULL);

    /* the wire reader reads it back */
    if (clean && got == n && !bad) {
        pc_batch *b = pc_batch_create(NULL);
        pc_otlp_result rr;
        int rc = pc_otlp_proto_decode(b, body, len, NULL, "dflt", NULL, &rr);
        CHECK_EQ_INT(rc, 0);
        if (rc) fprintf(stderr, "case %zu: wire reader: %s\n", idx, rr.error);
        CHECK_EQ_INT(b->n, n);
        for (size_t i = 0; rc == 0 && i < b->n && i < n; i++) {
            bool ok = decoded_ok(&b->spans[i], order[i]);
            CHECK(ok);
            if (!ok) {
                fprintf(stderr, "case %zu (seed %llu) span %zu: %s\n", idx,
                        (unsigned long long)seed, i, fail_why);
                if (getenv("PC_TEST_DUMP")) {
                    pc_buf j = PC_BUF_INIT;
                    pc_prela_json_encode_span(&j, order[i], 0);
                    pc_buf_puts(&j, "\n");
                    pc_prela_json_encode_span(&j, &b->spans[i], 0);
                    fprintf(stderr, "%s\n", j.data);
                    pc_buf_free(&j);
                }
            }
        }
        n_decoded += rc == 0;
        pc_batch_unref(b);
    }
done:
    pc_buf_free(&out);
    pc_arena_destroy(A);
}

/* A fixed request, byte for byte: field order, omitted defaults. */
static void test_known_bytes(void)
{
    A = pc_arena_create(4096);
    pc_span s = {0};
    s.trace_id = PC_STR_LIT("0102030405060708090a0b0c0d0e0f10");
    s.span_id = PC_STR_LIT("1112131415161718");
    s.name = PC_STR_LIT("ab");
    s.kind = 2;
    s.start_ns = 1;
    s.source = PC_SOURCE_OTLP;
    s.flags = 1;
    pc_kv kv = {PC_STR_LIT("k"), {.type = PC_V_STR, .s = PC_STR_LIT("")}};
    s.attrs = (pc_attrs){&kv, 1};
    const pc_span *p = &s;
    pc_buf out = PC_BUF_INIT;
    pc_otlp_proto_encode(&out, &p, 1);
    static const uint8_t want[] = {
        0x0a, 0x44, /* resource_spans */
        0x0a, 0x00, /* resource {} */
        0x12, 0x40, /* scope_spans */
        0x0a, 0x00, /* scope {} */
        0x12, 0x3c, /* span */
        0x0a, 0x10, 1,    2,    3,    4,    5,    6,    7,    8,
        9,    10,   11,   12,   13,   14,   15,   16,               /* trace_id */
        0x12, 0x08, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, /* span_id */
        0x2a, 0x02, 'a',  'b',                                      /* name */
        0x30, 0x02,                                                 /* kind */
        0x39, 1,    0,    0,    0,    0,    0,    0,    0,          /* start; end 0 left out */
        0x4a, 0x07, 0x0a, 0x01, 'k',  0x12, 0x02, 0x0a, 0x00,       /* k = "" (oneof: written) */
        0x7a, 0x00,                                                 /* status {} */
        0x85, 0x01, 1,    0,    0,    0,                            /* flags */
    };
    CHECK_EQ_INT(out.len, sizeof(want));
    CHECK(out.len == sizeof(want) && !memcmp(out.data, want, sizeof(want)));
    pc_buf_free(&out);
    pc_arena_destroy(A);
}

/* Appends a length-delimited field (one-byte tag, length below 128). */
static void ld_field(pc_buf *b, uint8_t tag, const void *p, size_t n)
{
    pc_buf_putc(b, (char)tag);
    pc_buf_putc(b, (char)n);
    pc_buf_append(b, p, n);
}

/* A span read from protobuf is written as the bytes it was read from, which
 * keep what the writer leaves out (dropped count, unknown fields); one whose
 * attribute key needs the escape is written anew. */
static void test_verbatim_spans(void)
{
    static const uint8_t tid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static const uint8_t sid[8] = {0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18};
    pc_buf sp[2] = {PC_BUF_INIT, PC_BUF_INIT};
    for (int k = 0; k < 2; k++) {
        ld_field(&sp[k], 0x0a, tid, 16);
        ld_field(&sp[k], 0x12, sid, 8);
        ld_field(&sp[k], 0x2a, "ab", 2);
        const char *key = k ? "prela.trace_id" : "k";
        pc_buf kv = PC_BUF_INIT, any = PC_BUF_INIT;
        ld_field(&any, 0x0a, "v", 1);
        ld_field(&kv, 0x0a, key, strlen(key));
        ld_field(&kv, 0x12, any.data, any.len);
        ld_field(&sp[k], 0x4a, kv.data, kv.len);
        pc_buf_append(&sp[k], "\x50\x03", 2);         /* dropped_attributes_count 3 */
        pc_buf_append(&sp[k], "\x98\x06\x01", 3);     /* unknown field 99 */
        pc_buf_free(&kv);
        pc_buf_free(&any);
    }
    pc_buf ss = PC_BUF_INIT, rs = PC_BUF_INIT, req = PC_BUF_INIT;
    ld_field(&ss, 0x12, sp[0].data, sp[0].len);
    ld_field(&ss, 0x12, sp[1].data, sp[1].len);
    ld_field(&rs, 0x12, ss.data, ss.len);
    ld_field(&req, 0x0a, rs.data, rs.len);

    pc_batch *b = pc_batch_create(NULL);
    pc_otlp_result res;
    CHECK_EQ_INT(pc_otlp_proto_decode(b, req.data, req.len, NULL, "p", NULL, &res), 0);
    CHECK_EQ_INT(b->n, 2);
    CHECK(b->n == 2 && b->spans[0].wire.n == sp[0].len && b->spans[0].dropped_attributes_count == 3);
    const pc_span *all[2] = {&b->spans[0], &b->spans[1]};
    pc_buf out = PC_BUF_INIT;
    pc_otlp_proto_encode(&out, all, 2);
    CHECK(memmem(out.data, out.len, sp[0].data, sp[0].len) != NULL);  /* copied */
    CHECK(memmem(out.data, out.len, sp[1].data, sp[1].len) == NULL);  /* written anew */
    CHECK(memmem(out.data, out.len, "prela.client.prela.trace_id", 27) != NULL);

    pc_batch *back = pc_batch_create(NULL);
    CHECK_EQ_INT(pc_otlp_proto_decode(back, out.data, out.len, NULL, "p", NULL, &res), 0);
    CHECK_EQ_INT(back->n, 2);
    if (back->n == 2) {
        CHECK(back->spans[0].dropped_attributes_count == 3); /* kept by the copy */
        CHECK(pc_str_eq(back->spans[0].name, "ab") && back->spans[0].attrs.n == 1);
        CHECK(pc_str_eq(back->spans[0].trace_id, "0102030405060708090a0b0c0d0e0f10"));
        CHECK(pc_str_eq(back->spans[1].attrs.kv[0].key, "prela.client.prela.trace_id"));
    }
    pc_batch_unref(back);
    pc_batch_unref(b);
    for (int k = 0; k < 2; k++) pc_buf_free(&sp[k]);
    pc_buf_free(&ss);
    pc_buf_free(&rs);
    pc_buf_free(&req);
    pc_buf_free(&out);
}

int main(int argc, char **argv)
{
    const char *env = getenv("PC_TEST_SEED");
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : env ? strtoull(env, NULL, 0) : 12;
    size_t cases = argc > 2 ? strtoull(argv[2], NULL, 0) : 3000;
    printf("test_otlp_proto_encode: seed %llu, %zu cases (reproduce: %s %llu %zu)\n",
           (unsigned long long)seed, cases, argv[0], (unsigned long long)seed, cases);
    RUN(test_known_bytes);
    RUN(test_verbatim_spans);
    for (size_t i = 0; i < cases; i++) {
        rng = seed * 0x9E3779B97F4A7C15ull + i + 1;
        rnd();
        one_case(seed, i);
    }
    CHECK(n_bytes_same == cases);
    CHECK(n_decoded > cases / 4);
    printf("test_otlp_proto_encode: %zu cases byte-identical to protobuf-c, %zu read back by the "
           "wire reader\n",
           n_bytes_same, n_decoded);
    return CHECK_DONE();
}
