/*
 * test_otlp_proto_decode.c - the OTLP trace wire reader (pc_otlp_proto_decode,
 * otlp_proto_decode.c) against protobuf-c as the oracle, and under hostile input.
 *
 * Random ExportTraceServiceRequests are built with the generated protobuf-c
 * structs (every AnyValue kind, nested arrays and kvlists, events, links,
 * unicode, int64 extremes, NaN, unknown fields, several resources and scopes,
 * bad ids, empty keys), packed, unpacked again by protobuf-c and decoded by
 * the reader; otlp_oracle.h compares every field. Then hand-made wire bytes:
 * truncated varints, lengths past the end, wrong wire types, overlong
 * varints, deep nesting, huge counts, NUL in strings, wire order and merges,
 * and the memory a bomb of empty KeyValues costs.
 */
#include "check.h"
#include "otlp_build.h"

#include "../../fuzz/otlp_oracle.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest Request;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans ResourceSpans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans ScopeSpans;
typedef Opentelemetry__Proto__Trace__V1__Span Span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event Event;
typedef Opentelemetry__Proto__Trace__V1__Span__Link Link;
typedef Opentelemetry__Proto__Trace__V1__Status Status;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;

/* ------------------------------------------------------------ random requests */

static uint64_t seed = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static const char *const STRINGS[] = {
    "",
    "a",
    "service.name",
    "héllo wörld",
    "日本語のテキスト",
    "emoji 🙂🚀",
    "prela.project_id",
    "tab\there \"quoted\" \\ back",
    "gen_ai.request.model",
    "x",
};

static char *rstr(void)
{
    if (pick(8) == 0) { /* a long one */
        size_t n = 100 + pick(400);
        char *s = ob_alloc(n + 1);
        for (size_t i = 0; i < n; i++)
            s[i] = (char)('a' + pick(26));
        return s;
    }
    return (char *)STRINGS[pick(sizeof(STRINGS) / sizeof(*STRINGS))];
}

/* A key: sometimes empty (dropped by the reader). */
static char *rkey(void)
{
    return pick(6) == 0 ? "" : rstr();
}

static ProtobufCBinaryData rbytes(size_t n)
{
    ProtobufCBinaryData b = {n, ob_alloc(n)};
    for (size_t i = 0; i < n; i++)
        b.data[i] = (uint8_t)rnd();
    return b;
}

/* An id of |want| bytes, now and then of the wrong length or all zero. */
static ProtobufCBinaryData rid(size_t want, bool parent)
{
    unsigned k = pick(40);
    if (k == 0) return rbytes(want + 1);
    if (k == 1) return (ProtobufCBinaryData){want, ob_alloc(want)}; /* zero */
    if (parent && k < 10) return (ProtobufCBinaryData){0, NULL};
    ProtobufCBinaryData b = rbytes(want);
    b.data[0] |= 1;
    return b;
}

/* Adds unknown fields (varint 1000, bytes 1001, fixed32 1002) to |m| now and then
 * (protobuf-c keeps a length-delimited one's length prefix in its data). */
static void unknown(ProtobufCMessage *m)
{
    if (pick(5)) return;
    m->n_unknown_fields = 3;
    m->unknown_fields = ob_alloc(3 * sizeof(ProtobufCMessageUnknownField));
    static uint8_t v[] = {0x96, 0x01}, s[] = {3, 'z', 'z', 'z'}, f[] = {1, 2, 3, 4};
    m->unknown_fields[0] = (ProtobufCMessageUnknownField){1000, PROTOBUF_C_WIRE_TYPE_VARINT, 2, v};
    m->unknown_fields[1] =
        (ProtobufCMessageUnknownField){1001, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, 4, s};
    m->unknown_fields[2] = (ProtobufCMessageUnknownField){1002, PROTOBUF_C_WIRE_TYPE_32BIT, 4, f};
}

static KeyValue **rkvs(size_t n, int depth);

static AnyValue *rvalue(int depth)
{
    if (pick(12) == 0) return NULL; /* a KeyValue without value */
    AnyValue *v = ob_alloc(sizeof(*v));
    opentelemetry__proto__common__v1__any_value__init(v);
    unknown(&v->base);
    static const int64_t ints[] = {0, 1, -1, INT64_MAX, INT64_MIN, 1234567890123LL, -42};
    static const double dbls[] = {0.0, -0.0, 1.5, -2.25e-300, 1e308, INFINITY, -INFINITY};
    switch (pick(depth > 3 ? 6 : 8)) {
    case 0:
        break; /* empty AnyValue */
    case 1:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        v->string_value = rstr();
        break;
    case 2:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
        v->bool_value = pick(2);
        break;
    case 3:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        v->int_value = pick(2) ? ints[pick(7)] : (int64_t)rnd();
        break;
    case 4:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
        v->double_value = pick(4) ? dbls[pick(7)] : NAN;
        break;
    case 5:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
        v->bytes_value = rbytes(pick(12)); /* NULs are fine in bytes */
        break;
    case 6: {
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
        ArrayValue *a = ob_alloc(sizeof(*a));
        opentelemetry__proto__common__v1__array_value__init(a);
        a->n_values = pick(5);
        a->values = ob_alloc(a->n_values * sizeof(AnyValue *));
        for (size_t i = 0; i < a->n_values; i++) {
            a->values[i] = rvalue(depth + 1);
            if (!a->values[i]) a->values[i] = rvalue(depth + 1);
            if (!a->values[i]) { /* arrays hold values, never absent ones */
                a->values[i] = ob_alloc(sizeof(AnyValue));
                opentelemetry__proto__common__v1__any_value__init(a->values[i]);
            }
        }
        v->array_value = a;
        break;
    }
    default: {
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
        KeyValueList *l = ob_alloc(sizeof(*l));
        opentelemetry__proto__common__v1__key_value_list__init(l);
        l->n_values = pick(4);
        l->values = rkvs(l->n_values, depth + 1);
        v->kvlist_value = l;
        break;
    }
    }
    return v;
}

static KeyValue **rkvs(size_t n, int depth)
{
    KeyValue **a = ob_alloc(n * sizeof(KeyValue *));
    for (size_t i = 0; i < n; i++) {
        a[i] = ob_alloc(sizeof(KeyValue));
        opentelemetry__proto__common__v1__key_value__init(a[i]);
        unknown(&a[i]->base);
        a[i]->key = rkey();
        a[i]->value = rvalue(depth);
    }
    return a;
}

static Span *rspan(void)
{
    Span *s = ob_alloc(sizeof(*s));
    opentelemetry__proto__trace__v1__span__init(s);
    unknown(&s->base);
    s->trace_id = rid(16, false);
    s->span_id = rid(8, false);
    s->parent_span_id = rid(8, true);
    s->name = rstr();
    s->trace_state = pick(3) ? "" : "rojo=00f067aa0ba902b7";
    s->kind = pick(4) ? (int)pick(8) : -1; /* out of range: clamped */
    s->start_time_unix_nano = rnd() >> 1;
    s->end_time_unix_nano = pick(5) ? rnd() >> 1 : 0;
    s->flags = pick(2) ? (uint32_t)rnd() : 0;
    s->dropped_attributes_count = pick(4) ? 0 : (pick(2) ? UINT32_MAX : pick(9));
    s->n_attributes = pick(7);
    s->attributes = rkvs(s->n_attributes, 0);
    if (pick(2)) {
        s->status = ob_alloc(sizeof(Status));
        opentelemetry__proto__trace__v1__status__init(s->status);
        s->status->code = pick(4) ? (int)pick(3) : 9;
        s->status->message = rstr();
    }
    s->n_events = pick(4);
    s->events = ob_alloc(s->n_events * sizeof(Event *));
    for (size_t i = 0; i < s->n_events; i++) {
        Event *e = s->events[i] = ob_alloc(sizeof(Event));
        opentelemetry__proto__trace__v1__span__event__init(e);
        unknown(&e->base);
        e->time_unix_nano = rnd() >> 1;
        e->name = rstr();
        e->n_attributes = pick(4);
        e->attributes = rkvs(e->n_attributes, 0);
        e->dropped_attributes_count = pick(3);
    }
    s->n_links = pick(3);
    s->links = ob_alloc(s->n_links * sizeof(Link *));
    for (size_t i = 0; i < s->n_links; i++) {
        Link *l = s->links[i] = ob_alloc(sizeof(Link));
        opentelemetry__proto__trace__v1__span__link__init(l);
        unknown(&l->base);
        l->trace_id = rid(16, false);
        l->span_id = rid(8, false);
        l->trace_state = pick(2) ? "" : "k=v";
        l->n_attributes = pick(3);
        l->attributes = rkvs(l->n_attributes, 0);
        l->dropped_attributes_count = pick(3);
        l->flags = (uint32_t)pick(1000);
    }
    return s;
}

static Request *rrequest(void)
{
    Request *r = ob_alloc(sizeof(*r));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(r);
    r->n_resource_spans = pick(4);
    r->resource_spans = ob_alloc(r->n_resource_spans * sizeof(ResourceSpans *));
    for (size_t i = 0; i < r->n_resource_spans; i++) {
        ResourceSpans *rs = r->resource_spans[i] = ob_alloc(sizeof(ResourceSpans));
        opentelemetry__proto__trace__v1__resource_spans__init(rs);
        unknown(&rs->base);
        if (pick(5)) {
            rs->resource = ob_alloc(sizeof(Resource));
            opentelemetry__proto__resource__v1__resource__init(rs->resource);
            unknown(&rs->resource->base);
            rs->resource->n_attributes = pick(6);
            rs->resource->attributes = rkvs(rs->resource->n_attributes, 0);
            if (rs->resource->n_attributes && pick(2)) { /* a project id, sometimes empty */
                rs->resource->attributes[0]->key = "prela.project_id";
                rs->resource->attributes[0]->value = rvalue(3);
            }
        }
        rs->schema_url = pick(2) ? "" : "https://opentelemetry.io/schemas/1.26.0";
        rs->n_scope_spans = pick(4);
        rs->scope_spans = ob_alloc(rs->n_scope_spans * sizeof(ScopeSpans *));
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            ScopeSpans *ss = rs->scope_spans[j] = ob_alloc(sizeof(ScopeSpans));
            opentelemetry__proto__trace__v1__scope_spans__init(ss);
            if (pick(4)) {
                ss->scope = ob_alloc(sizeof(Scope));
                opentelemetry__proto__common__v1__instrumentation_scope__init(ss->scope);
                unknown(&ss->scope->base);
                ss->scope->name = rstr();
                ss->scope->version = pick(2) ? "1.2.3" : "";
                ss->scope->n_attributes = pick(3);
                ss->scope->attributes = rkvs(ss->scope->n_attributes, 0);
                ss->scope->dropped_attributes_count = pick(3);
            }
            ss->n_spans = pick(5);
            ss->spans = ob_alloc(ss->n_spans * sizeof(Span *));
            for (size_t k = 0; k < ss->n_spans; k++)
                ss->spans[k] = rspan();
        }
    }
    return r;
}

/* Decodes |len| bytes at |buf| with the reader (no limits) and compares the
 * result with protobuf-c's unpacking of the same bytes. */
static bool agree(const uint8_t *buf, size_t len, const char *project, oracle *o)
{
    Request *r = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
        NULL, len, buf);
    if (!r) return ORACLE_FAIL(o, "protobuf-c refused the packed request");
    pc_batch *b = pc_batch_create(NULL);
    pc_otlp_result res;
    int rc = pc_otlp_proto_decode(b, buf, len, project, "dflt", NULL, &res);
    bool ok = rc == 0 ? oracle_compare(o, r, b, &res, project, "dflt")
                      : ORACLE_FAIL(o, "the reader refused it: %.400s", res.error);
    pc_batch_unref(b);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r,
                                                                                            NULL);
    return ok;
}

static void test_random_requests(void)
{
    size_t spans = 0, bytes = 0;
    for (int n = 0; n < 400; n++) {
        OB = pc_arena_create(1 << 16);
        size_t len;
        Request *r = rrequest();
        uint8_t *buf = pack(r, &len);
        oracle o;
        bool ok = agree(buf, len, n % 7 == 0 ? "hdr-project" : NULL, &o);
        CHECK(ok);
        if (!ok) fprintf(stderr, "request %d (%zu bytes): %s\n", n, len, o.why);
        for (size_t i = 0; i < r->n_resource_spans; i++)
            for (size_t j = 0; j < r->resource_spans[i]->n_scope_spans; j++)
                spans += r->resource_spans[i]->scope_spans[j]->n_spans;
        bytes += len;
        pc_arena_destroy(OB);
    }
    fprintf(stderr, "   400 requests, %zu spans, %zu bytes compared\n", spans, bytes);
    CHECK(spans > 1000);
}

/* ------------------------------------------------------------ wire bytes */

typedef struct wbuf {
    uint8_t b[4096];
    size_t n;
} wbuf;

static void w_raw(wbuf *w, const void *p, size_t n)
{
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void w_varint(wbuf *w, uint64_t v)
{
    do {
        w->b[w->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void w_tag(wbuf *w, unsigned num, unsigned wt)
{
    w_varint(w, (uint64_t)num << 3 | wt);
}

static void w_bytes(wbuf *w, unsigned num, const void *p, size_t n)
{
    w_tag(w, num, 2);
    w_varint(w, n);
    w_raw(w, p, n);
}

static void w_msg(wbuf *w, unsigned num, const wbuf *m)
{
    w_bytes(w, num, m->b, m->n);
}

static const uint8_t TID[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
                                0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
static const uint8_t SID[8] = {0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74};

/* A request with one span whose extra fields are |extra| (appended after the ids). */
static void wrap_span(wbuf *out, const wbuf *extra)
{
    wbuf span = {.n = 0}, ss = {.n = 0}, rs = {.n = 0};
    w_bytes(&span, 1, TID, 16);
    w_bytes(&span, 2, SID, 8);
    w_raw(&span, extra->b, extra->n);
    w_msg(&ss, 2, &span);
    w_msg(&rs, 2, &ss);
    out->n = 0;
    w_msg(out, 1, &rs);
}

static int decode(const uint8_t *buf, size_t len, const pc_span_limits *l, pc_otlp_result *res,
                  pc_batch **out)
{
    pc_batch *b = pc_batch_create(NULL);
    int rc = pc_otlp_proto_decode(b, buf, len, NULL, "dflt", l, res);
    if (out)
        *out = b;
    else
        pc_batch_unref(b);
    return rc;
}

static void expect_error(const uint8_t *buf, size_t len, const char *want)
{
    pc_otlp_result res;
    int rc = decode(buf, len, &pc_span_limits_default, &res, NULL);
    CHECK_EQ_INT(rc, -1);
    CHECK(strstr(res.error, want) != NULL);
    if (!strstr(res.error, want)) fprintf(stderr, "   got \"%s\", want \"%s\"\n", res.error, want);
}

static void test_malformed(void)
{
    const uint8_t truncated_tag[] = {0x8a};
    expect_error(truncated_tag, 1, "invalid protobuf at byte 0: invalid field tag");
    const uint8_t past_end[] = {0x0a, 0x05, 0x12};
    expect_error(past_end, 3, "truncated length-delimited field");
    const uint8_t wrong_type[] = {0x08, 0x01}; /* resource_spans as a varint */
    expect_error(wrong_type, 2, "wrong wire type for a known field");
    const uint8_t group[] = {0x7b}; /* unknown field 15, start group */
    expect_error(group, 1, "unsupported wire type");
    const uint8_t field0[] = {0x02, 0x00};
    expect_error(field0, 2, "invalid field tag");
    uint8_t overlong[16] = {0x50}; /* unknown field 10, an 11-byte varint */
    memset(overlong + 1, 0x80, 10);
    overlong[11] = 0x01;
    expect_error(overlong, 12, "truncated varint");

    /* A varint of exactly 10 bytes is fine (kind 2^32 + 3: the low 32 bits, 3). */
    wbuf extra = {.n = 0}, req;
    w_tag(&extra, 6, 0);
    const uint8_t ten[] = {0x83, 0x80, 0x80, 0x80, 0x90, 0x80, 0x80, 0x80, 0x80, 0x00};
    w_raw(&extra, ten, sizeof(ten));
    wrap_span(&req, &extra);
    pc_otlp_result res;
    pc_batch *b;
    CHECK_EQ_INT(decode(req.b, req.n, NULL, &res, &b), 0);
    CHECK_EQ_INT(b->n, 1);
    if (b->n) CHECK_EQ_INT(b->spans[0].kind, 3);
    pc_batch_unref(b);

    /* A fixed64 time cut short inside the span. */
    extra.n = 0;
    w_tag(&extra, 7, 1);
    w_raw(&extra, "\x01\x02\x03", 3);
    wrap_span(&req, &extra);
    expect_error(req.b, req.n, "truncated");

    /* Wrong wire type deep inside: string_value as a varint. */
    wbuf any = {.n = 0}, kv = {.n = 0};
    w_tag(&any, 1, 0);
    w_varint(&any, 7);
    w_bytes(&kv, 1, "k", 1);
    w_msg(&kv, 2, &any);
    extra.n = 0;
    w_msg(&extra, 9, &kv);
    wrap_span(&req, &extra);
    expect_error(req.b, req.n, "wrong wire type for a known field");
}

static void test_deep_nesting(void)
{
    /* AnyValue{array_value{values{AnyValue{...}}}} 200 levels deep. */
    static uint8_t buf[8192];
    size_t at = sizeof(buf);
    for (int i = 0; i < 200; i++) {
        size_t inner = sizeof(buf) - at;
        uint8_t tmp[10];
        size_t k = 0;
        do {
            tmp[k++] = (uint8_t)((inner & 0x7f) | (inner > 0x7f ? 0x80 : 0));
            inner >>= 7;
        } while (inner);
        at -= k;
        memcpy(buf + at, tmp, k);
        buf[--at] = i % 2 ? 0x2a : 0x0a; /* array_value (5) outermost, values (1) inside */
    }
    wbuf kv = {.n = 0}, extra = {.n = 0}, req;
    w_bytes(&kv, 1, "deep", 4);
    w_tag(&kv, 2, 2);
    w_varint(&kv, sizeof(buf) - at);
    w_raw(&kv, buf + at, sizeof(buf) - at);
    w_msg(&extra, 9, &kv);
    static wbuf big; /* the request does not fit in wbuf's 4 KB with its envelope */
    (void)big;
    wrap_span(&req, &extra);
    expect_error(req.b, req.n, "messages nested too deeply");
}

static void test_strings(void)
{
    wbuf extra = {.n = 0}, req;
    w_bytes(&extra, 5, "a\0b", 3);
    wrap_span(&req, &extra);
    expect_error(req.b, req.n, "spans[0].name: U+0000 in a string is not supported");

    extra.n = 0;
    w_bytes(&extra, 5, "bad\xff", 4);
    wrap_span(&req, &extra);
    expect_error(req.b, req.n, "spans[0].name: invalid UTF-8");

    /* An empty key with a bad value is still checked, then dropped. */
    wbuf kv = {.n = 0}, any = {.n = 0};
    w_bytes(&any, 1, "\xc0\x80", 2);
    w_msg(&kv, 2, &any);
    extra.n = 0;
    w_msg(&extra, 9, &kv);
    wrap_span(&req, &extra);
    expect_error(req.b, req.n, "spans[0].attributes[0].value.string_value: invalid UTF-8");

    /* Bytes values keep their NULs. */
    any.n = kv.n = extra.n = 0;
    w_bytes(&any, 7, "\0\1\0", 3);
    w_bytes(&kv, 1, "b", 1);
    w_msg(&kv, 2, &any);
    w_msg(&extra, 9, &kv);
    wrap_span(&req, &extra);
    pc_otlp_result res;
    pc_batch *b;
    CHECK_EQ_INT(decode(req.b, req.n, NULL, &res, &b), 0);
    if (b->n == 1 && b->spans[0].attrs.n == 1) {
        CHECK_EQ_INT(b->spans[0].attrs.kv[0].value.type, PC_V_BYTES);
        CHECK_EQ_INT(b->spans[0].attrs.kv[0].value.s.n, 3);
    } else
        CHECK(0);
    pc_batch_unref(b);
}

/* The answer does not depend on the order of fields on the wire. */
static void test_wire_order(void)
{
    wbuf span = {.n = 0}, ss = {.n = 0}, rs = {.n = 0}, req = {.n = 0}, kv = {.n = 0},
         any = {.n = 0};
    w_bytes(&any, 1, "v", 1);
    w_msg(&kv, 2, &any); /* value before key */
    w_bytes(&kv, 1, "k", 1);
    w_msg(&span, 9, &kv);
    w_bytes(&span, 5, "first", 5);
    w_bytes(&span, 2, SID, 8);
    w_bytes(&span, 5, "last", 4); /* the last occurrence wins */
    w_bytes(&span, 1, TID, 16);
    w_msg(&ss, 2, &span);
    w_msg(&rs, 2, &ss);
    wbuf res_attrs = {.n = 0}, rkv = {.n = 0}, rany = {.n = 0};
    w_bytes(&rany, 1, "p1", 2);
    w_bytes(&rkv, 1, "prela.project_id", 16);
    w_msg(&rkv, 2, &rany);
    w_msg(&res_attrs, 1, &rkv);
    w_msg(&rs, 1, &res_attrs); /* resource after its scope_spans */
    w_msg(&req, 1, &rs);
    pc_otlp_result res;
    pc_batch *b;
    CHECK_EQ_INT(decode(req.b, req.n, NULL, &res, &b), 0);
    CHECK_EQ_INT(b->n, 1);
    if (b->n == 1) {
        const pc_span *s = &b->spans[0];
        CHECK_EQ_PSTR(s->name, "last");
        CHECK_EQ_PSTR(s->project_id, "p1");
        CHECK_EQ_INT(s->attrs.n, 1);
        if (s->attrs.n) CHECK_EQ_PSTR(s->attrs.kv[0].key, "k");
    }
    pc_batch_unref(b);

    /* A resource sent twice merges: the attributes of both. */
    wbuf rs2 = {.n = 0}, req2 = {.n = 0};
    w_msg(&rs2, 1, &res_attrs);
    w_msg(&rs2, 2, &ss);
    w_msg(&rs2, 1, &res_attrs);
    w_msg(&req2, 1, &rs2);
    CHECK_EQ_INT(decode(req2.b, req2.n, NULL, &res, &b), 0);
    CHECK_EQ_INT(b->n, 1);
    if (b->n == 1) CHECK_EQ_INT(b->spans[0].resource->n, 2);
    pc_batch_unref(b);
}

/* Caps from counts: a span over one is rejected without building it, yet the
 * whole span is still checked, and the messages are those of the model. */
static void test_caps(void)
{
    pc_span_limits l = pc_span_limits_default;
    l.max_attributes = 2;
    wbuf extra = {.n = 0}, req, kv = {.n = 0};
    w_bytes(&kv, 1, "k", 1);
    for (int i = 0; i < 3; i++)
        w_msg(&extra, 9, &kv);
    wbuf empty_kv = {.n = 0};
    for (int i = 0; i < 5; i++) /* empty keys do not count */
        w_msg(&extra, 9, &empty_kv);
    wrap_span(&req, &extra);
    pc_otlp_result res;
    pc_batch *b;
    CHECK_EQ_INT(decode(req.b, req.n, &l, &res, &b), 0);
    CHECK_EQ_INT(b->n, 0);
    CHECK_EQ_INT(res.rejected, 1);
    CHECK(strstr(res.error, "attributes: 3 attributes, more than max_attributes_per_span (2)"));
    pc_batch_unref(b);

    /* Two with a key and five without: within the cap; five dropped and counted. */
    extra.n = 0;
    w_tag(&extra, 10, 0);
    w_varint(&extra, 4); /* the sender dropped 4 */
    for (int i = 0; i < 2; i++)
        w_msg(&extra, 9, &kv);
    for (int i = 0; i < 5; i++)
        w_msg(&extra, 9, &empty_kv);
    wrap_span(&req, &extra);
    CHECK_EQ_INT(decode(req.b, req.n, &l, &res, &b), 0);
    CHECK_EQ_INT(b->n, 1);
    if (b->n) {
        CHECK_EQ_INT(b->spans[0].attrs.n, 2);
        CHECK_EQ_INT(b->spans[0].dropped_attributes_count, 9);
    }
    pc_batch_unref(b);

    /* Over the cap and invalid UTF-8 later in the span: the request fails. */
    extra.n = 0;
    for (int i = 0; i < 3; i++)
        w_msg(&extra, 9, &kv);
    wbuf ev = {.n = 0};
    w_bytes(&ev, 2, "\xff", 1);
    w_msg(&extra, 11, &ev);
    wrap_span(&req, &extra);
    expect_error(req.b, req.n, "spans[0].events[0].name: invalid UTF-8");

    /* Too many events (a million empty ones) costs nothing to refuse. */
    static uint8_t many[2 * 1000000 + 256];
    wbuf head = {.n = 0};
    size_t n = 0;
    w_bytes(&head, 1, TID, 16);
    w_bytes(&head, 2, SID, 8);
    memcpy(many, head.b, head.n);
    n = head.n;
    for (int i = 0; i < 1000000; i++) {
        many[n++] = 0x5a; /* events (11), length-delimited */
        many[n++] = 0x00;
    }
    /* wrap: ScopeSpans.spans(2) in ResourceSpans.scope_spans(2) in request(1) */
    uint8_t *cur = many;
    size_t cur_n = n;
    uint8_t *env = malloc(cur_n + 64);
    for (int level = 0; level < 3; level++) {
        uint8_t tag = level == 2 ? 0x0a : 0x12;
        wbuf pre = {.n = 0};
        pre.b[pre.n++] = tag;
        w_varint(&pre, cur_n);
        memmove(env + pre.n, cur, cur_n);
        memcpy(env, pre.b, pre.n);
        cur = env;
        cur_n += pre.n;
    }
    b = pc_batch_create(NULL);
    CHECK_EQ_INT(pc_otlp_proto_decode(b, env, cur_n, NULL, "d", &pc_span_limits_default, &res), 0);
    CHECK_EQ_INT(res.rejected, 1);
    CHECK(strstr(res.error, "events: 1000000 events, more than max_events_per_span (1024)"));
    CHECK(pc_arena_used(b->arena) < cur_n + 65536);
    pc_batch_unref(b);
    free(env);
}

/* The bomb of issue 10: a Resource with millions of empty KeyValues costs the
 * body's copy and nothing per KeyValue. */
static void test_empty_key_bomb(void)
{
    size_t n = 3000000, len = 2 * n;
    uint8_t *res_body = malloc(len + 64);
    for (size_t i = 0; i < n; i++) {
        res_body[2 * i] = 0x0a; /* attributes (1), empty KeyValue */
        res_body[2 * i + 1] = 0x00;
    }
    wbuf span = {.n = 0}, ss = {.n = 0};
    w_bytes(&span, 1, TID, 16);
    w_bytes(&span, 2, SID, 8);
    w_msg(&ss, 2, &span);
    /* ResourceSpans: resource (1) = res_body, scope_spans (2) = ss */
    size_t cap = len + 256, at = 0;
    uint8_t *rs = malloc(cap), *req = malloc(cap);
    wbuf pre = {.n = 0};
    w_tag(&pre, 1, 2);
    w_varint(&pre, len);
    memcpy(rs, pre.b, pre.n);
    at = pre.n;
    memcpy(rs + at, res_body, len);
    at += len;
    pre.n = 0;
    w_msg(&pre, 2, &ss);
    memcpy(rs + at, pre.b, pre.n);
    at += pre.n;
    pre.n = 0;
    w_tag(&pre, 1, 2);
    w_varint(&pre, at);
    memcpy(req, pre.b, pre.n);
    memcpy(req + pre.n, rs, at);
    size_t req_n = pre.n + at;

    pc_otlp_result r;
    pc_batch *b = pc_batch_create(NULL);
    CHECK_EQ_INT(pc_otlp_proto_decode(b, req, req_n, NULL, "d", &pc_span_limits_default, &r), 0);
    CHECK_EQ_INT(b->n, 1);
    if (b->n) CHECK_EQ_INT(b->spans[0].resource->n, 0);
    size_t used = pc_arena_used(b->arena);
    fprintf(stderr, "   %zu-byte bomb: %zu arena bytes (%.2fx)\n", req_n, used,
            (double)used / req_n);
    CHECK(used < req_n + 65536);
    pc_batch_unref(b);
    free(res_body);
    free(rs);
    free(req);
}

/* Empty span messages (2 bytes each, all rejected) reserve no span each. */
static void test_empty_spans(void)
{
    size_t n = 500000, len = 2 * n;
    uint8_t *buf = malloc(len + 32);
    size_t at = 16; /* room for the two envelopes in front */
    for (size_t i = 0; i < n; i++) {
        buf[at + 2 * i] = 0x12; /* ScopeSpans.spans (2), empty */
        buf[at + 2 * i + 1] = 0x00;
    }
    for (int level = 0; level < 2;
         level++) { /* ResourceSpans.scope_spans, request.resource_spans */
        wbuf pre = {.n = 0};
        w_tag(&pre, level ? 1 : 2, 2);
        w_varint(&pre, len);
        at -= pre.n;
        memcpy(buf + at, pre.b, pre.n);
        len += pre.n;
    }
    pc_otlp_result res;
    pc_batch *b = pc_batch_create(NULL);
    CHECK_EQ_INT(pc_otlp_proto_decode(b, buf + at, len, NULL, "d", NULL, &res), 0);
    CHECK_EQ_INT(res.rejected, (int64_t)n);
    CHECK_EQ_INT(b->n, 0);
    size_t used = pc_arena_used(b->arena);
    fprintf(stderr, "   %zu bytes of empty spans: %zu arena bytes\n", len, used);
    CHECK(used < len + len / 2);
    pc_batch_unref(b);
    free(buf);
}

/* The memory budget refuses the decode: a clear error, and the arena says so. */
static void test_budget(void)
{
    OB = pc_arena_create(1 << 16);
    Request *r = rrequest();
    while (r->n_resource_spans == 0)
        r = rrequest();
    size_t len;
    uint8_t *buf = pack(r, &len);
    pc_budget *bu = pc_budget_create(1024);
    pc_arena *a = pc_arena_create(256);
    pc_arena_set_budget(a, bu);
    pc_batch *b = pc_batch_create(a);
    pc_otlp_result res;
    int rc = pc_otlp_proto_decode(b, buf, len, NULL, "d", NULL, &res);
    if (len > 2048) {
        CHECK_EQ_INT(rc, -1);
        CHECK_EQ_STR(res.error, "request is over the memory budget");
        CHECK(pc_arena_over(a));
    }
    pc_batch_unref(b);
    pc_budget_destroy(bu);
    pc_arena_destroy(OB);
}

int main(void)
{
    RUN(test_random_requests);
    RUN(test_malformed);
    RUN(test_deep_nesting);
    RUN(test_strings);
    RUN(test_wire_order);
    RUN(test_caps);
    RUN(test_empty_key_bomb);
    RUN(test_empty_spans);
    RUN(test_budget);
    return CHECK_DONE();
}
