/*
 * test_otlp.c - the OTLP decoders and response encoders (otlp.h, otlp_proto.h, otlp_json.h)
 * without HTTP.
 *
 * One request with every field and attribute type is built twice: as protobuf
 * with the generated protobuf-c structs (packed, then decoded) and as OTLP/JSON
 * in two dialects (the spec's camelCase with string ints, and snake_case with
 * numbers, enum names, upper-case and base64 ids). All three must decode to the
 * same batch, checked field by field by check_full(). Then partial success,
 * malformed input of each kind, and the response bodies.
 */
#include "check.h"
#include "otlp_build.h"

#include "formats/otlp_json.h"
#include "formats/otlp_proto.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest Request;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse Response;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans ResourceSpans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans ScopeSpans;
typedef Opentelemetry__Proto__Trace__V1__Span Span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event Event;
typedef Opentelemetry__Proto__Trace__V1__Span__Link Link;
typedef Opentelemetry__Proto__Trace__V1__Status Status;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;

/* ------------------------------------------------------------ proto builders */

static Span *span_new(const char *trace, const char *span_id, const char *parent, const char *name,
                      int kind)
{
    Span *s = ob_alloc(sizeof(*s));
    opentelemetry__proto__trace__v1__span__init(s);
    s->trace_id = id(trace);
    s->span_id = id(span_id);
    s->parent_span_id = id(parent);
    s->name = (char *)name;
    s->kind = kind;
    return s;
}

static ScopeSpans *scope_spans(Scope *scope, size_t n, Span **spans)
{
    ScopeSpans *ss = ob_alloc(sizeof(*ss));
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    ss->scope = scope;
    ss->n_spans = n;
    ss->spans = spans;
    return ss;
}

static ResourceSpans *resource_spans(Resource *r, size_t n, ScopeSpans **ss)
{
    ResourceSpans *rs = ob_alloc(sizeof(*rs));
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    rs->resource = r;
    rs->n_scope_spans = n;
    rs->scope_spans = ss;
    return rs;
}

static Request *request(size_t n, ResourceSpans **rs)
{
    Request *r = ob_alloc(sizeof(*r));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(r);
    r->n_resource_spans = n;
    r->resource_spans = rs;
    return r;
}

/* A request with one resource, one scope and the given spans. */
static Request *simple_request(size_t n, Span **spans)
{
    ScopeSpans **ss = ob_alloc(sizeof(ScopeSpans *));
    ss[0] = scope_spans(NULL, n, spans);
    ResourceSpans **rs = ob_alloc(sizeof(ResourceSpans *));
    rs[0] = resource_spans(NULL, 1, ss);
    return request(1, rs);
}

/* Decodes |len| bytes; returns the batch (caller unrefs) and the decoder's result. */
static pc_batch *decode_pb(const void *buf, size_t len, const char *project, pc_otlp_result *res,
                           int *rc)
{
    pc_batch *b = pc_batch_create(NULL);
    *rc = pc_otlp_proto_decode(b, buf, len, project, "dflt", &pc_span_limits_default, res);
    return b;
}

static pc_batch *decode_js(const char *text, const char *project, pc_otlp_result *res, int *rc)
{
    pc_batch *b = pc_batch_create(NULL);
    size_t n = strlen(text);
    /* The decoder points into the text, which must live in the batch's arena. */
    char *copy = pc_arena_strndup(b->arena, text, n);
    *rc = pc_otlp_json_decode(b, copy, n, project, "dflt", &pc_span_limits_default, res);
    return b;
}

/* ------------------------------------------------------------ the full request */

#define TRACE_A "5b8efff798038103d269b633813fc60c"
#define TRACE_B "0102030405060708090a0b0c0d0e0f10"
#define SPAN_A "eee19b7ec3c1b174"
#define SPAN_B "eee19b7ec3c1b173"
#define SPAN_C "eee19b7ec3c1b172"
#define SPAN_D "1112131415161718"
#define LINK_T "a1a2a3a4a5a6a7a8a9aaabacadaeafb0"
#define LINK_S "b1b2b3b4b5b6b7b8"

static const uint8_t BYTES[] = {0x00, 0x01, 'h', 'i'};

static Request *full_request(void)
{
    /* span A: every field */
    Span *a = span_new(TRACE_A, SPAN_A, "", "root", 2);
    a->trace_state = "k=v";
    a->flags = 0x101;
    a->start_time_unix_nano = 1700000000000000000ull;
    a->end_time_unix_nano = 1700000001500000000ull;
    a->status = ob_alloc(sizeof(Status));
    opentelemetry__proto__trace__v1__status__init(a->status);
    a->status->code = 2;
    a->status->message = "boom";
    a->n_attributes = 9;
    a->attributes =
        ob_ptrs(9, kv("s", v_str("hello")), kv("b", v_bool(1)), kv("i", v_int(-42)),
            kv("d", v_double(2.5)), kv("by", v_bytes(BYTES, sizeof(BYTES))),
            kv("arr", v_array(3, ob_ptrs(3, v_str("x"), v_int(7), v_array(1, ob_ptrs(1, v_bool(1)))))),
            kv("map", v_kvlist(2, ob_ptrs(2, kv("a", v_str("y")),
                                      kv("n", v_kvlist(1, ob_ptrs(1, kv("c", v_bool(0)))))))),
            kv("nul", v_new(0)), kv("big", v_int(9007199254740993LL)));
    a->n_events = 2;
    a->events = ob_alloc(2 * sizeof(Event *));
    for (int i = 0; i < 2; i++) {
        a->events[i] = ob_alloc(sizeof(Event));
        opentelemetry__proto__trace__v1__span__event__init(a->events[i]);
    }
    a->events[0]->time_unix_nano = 1700000000100000000ull;
    a->events[0]->name = "ev1";
    a->events[0]->n_attributes = 1;
    a->events[0]->attributes = ob_ptrs(1, kv("k", v_str("v")));
    a->events[1]->time_unix_nano = 1700000000200000000ull;
    a->events[1]->name = "exception";
    a->n_links = 1;
    a->links = ob_alloc(sizeof(Link *));
    a->links[0] = ob_alloc(sizeof(Link));
    opentelemetry__proto__trace__v1__span__link__init(a->links[0]);
    a->links[0]->trace_id = id(LINK_T);
    a->links[0]->span_id = id(LINK_S);
    a->links[0]->trace_state = "lk=1";
    a->links[0]->n_attributes = 1;
    a->links[0]->attributes = ob_ptrs(1, kv("la", v_int(1)));

    Span *b = span_new(TRACE_A, SPAN_B, SPAN_A, "child", 3);
    b->start_time_unix_nano = 1700000000500000000ull;
    b->end_time_unix_nano = 1700000000600000000ull;
    Span *c = span_new(TRACE_A, SPAN_C, SPAN_A, "c3", 0);
    Span *d = span_new(TRACE_B, SPAN_D, "0000000000000000", "other", 1);

    Resource *r0 = ob_alloc(sizeof(*r0));
    opentelemetry__proto__resource__v1__resource__init(r0);
    r0->n_attributes = 2;
    r0->attributes =
        ob_ptrs(2, kv("service.name", v_str("svc-a")), kv("prela.project_id", v_str("proj-x")));
    Scope *s0 = ob_alloc(sizeof(*s0));
    opentelemetry__proto__common__v1__instrumentation_scope__init(s0);
    s0->name = "lib";
    s0->version = "1.2";
    s0->n_attributes = 1;
    s0->attributes = ob_ptrs(1, kv("scope.attr", v_int(7)));

    Span **ab = ob_alloc(2 * sizeof(Span *));
    ab[0] = a;
    ab[1] = b;
    Span **cc = ob_alloc(sizeof(Span *));
    cc[0] = c;
    Span **dd = ob_alloc(sizeof(Span *));
    dd[0] = d;
    ScopeSpans **ss0 = ob_alloc(2 * sizeof(ScopeSpans *));
    ss0[0] = scope_spans(s0, 2, ab);
    ss0[1] = scope_spans(NULL, 1, cc);
    ScopeSpans **ss1 = ob_alloc(sizeof(ScopeSpans *));
    ss1[0] = scope_spans(NULL, 1, dd);
    ResourceSpans **rs = ob_alloc(2 * sizeof(ResourceSpans *));
    rs[0] = resource_spans(r0, 2, ss0);
    rs[1] = resource_spans(NULL, 1, ss1);
    return request(2, rs);
}

/* The same request in OTLP/JSON as the spec writes it. */
static const char *FULL_JSON_CAMEL =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
    "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc-a\"}},"
    "{\"key\":\"prela.project_id\",\"value\":{\"stringValue\":\"proj-x\"}}]},"
    "\"scopeSpans\":[{\"scope\":{\"name\":\"lib\",\"version\":\"1.2\",\"attributes\":["
    "{\"key\":\"scope.attr\",\"value\":{\"intValue\":\"7\"}}]},\"spans\":["
    "{\"traceId\":\"" TRACE_A "\",\"spanId\":\"" SPAN_A "\",\"parentSpanId\":\"\","
    "\"traceState\":\"k=v\",\"flags\":257,\"name\":\"root\",\"kind\":2,"
    "\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":\"1700000001500000000\","
    "\"attributes\":["
    "{\"key\":\"s\",\"value\":{\"stringValue\":\"hello\"}},"
    "{\"key\":\"b\",\"value\":{\"boolValue\":true}},"
    "{\"key\":\"i\",\"value\":{\"intValue\":\"-42\"}},"
    "{\"key\":\"d\",\"value\":{\"doubleValue\":2.5}},"
    "{\"key\":\"by\",\"value\":{\"bytesValue\":\"AAFoaQ==\"}},"
    "{\"key\":\"arr\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"},"
    "{\"intValue\":\"7\"},{\"arrayValue\":{\"values\":[{\"boolValue\":true}]}}]}}},"
    "{\"key\":\"map\",\"value\":{\"kvlistValue\":{\"values\":["
    "{\"key\":\"a\",\"value\":{\"stringValue\":\"y\"}},"
    "{\"key\":\"n\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"c\",\"value\":"
    "{\"boolValue\":false}}]}}}]}}},"
    "{\"key\":\"nul\",\"value\":{}},"
    "{\"key\":\"big\",\"value\":{\"intValue\":\"9007199254740993\"}}],"
    "\"droppedAttributesCount\":0,"
    "\"events\":[{\"timeUnixNano\":\"1700000000100000000\",\"name\":\"ev1\",\"attributes\":["
    "{\"key\":\"k\",\"value\":{\"stringValue\":\"v\"}}]},"
    "{\"timeUnixNano\":\"1700000000200000000\",\"name\":\"exception\"}],"
    "\"links\":[{\"traceId\":\"" LINK_T "\",\"spanId\":\"" LINK_S "\",\"traceState\":\"lk=1\","
    "\"attributes\":[{\"key\":\"la\",\"value\":{\"intValue\":\"1\"}}]}],"
    "\"status\":{\"code\":2,\"message\":\"boom\"}},"
    "{\"traceId\":\"" TRACE_A "\",\"spanId\":\"" SPAN_B "\",\"parentSpanId\":\"" SPAN_A "\","
    "\"name\":\"child\",\"kind\":3,\"startTimeUnixNano\":\"1700000000500000000\","
    "\"endTimeUnixNano\":\"1700000000600000000\",\"status\":{}}]},"
    "{\"spans\":[{\"traceId\":\"" TRACE_A "\",\"spanId\":\"" SPAN_C "\",\"parentSpanId\":\"" SPAN_A
    "\",\"name\":\"c3\",\"futureField\":{\"x\":[1,2]}}]}],\"schemaUrl\":\"\"},"
    "{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TRACE_B "\",\"spanId\":\"" SPAN_D "\","
    "\"parentSpanId\":\"0000000000000000\",\"name\":\"other\",\"kind\":1}]}]}]}";

/* The same again in what careless clients send: snake_case names, numbers for
 * 64-bit ints, enum names, upper-case hex and base64 ids, strings for numbers. */
static const char *FULL_JSON_SNAKE =
    "{\"resource_spans\":[{\"resource\":{\"attributes\":["
    "{\"key\":\"service.name\",\"value\":{\"string_value\":\"svc-a\"}},"
    "{\"key\":\"prela.project_id\",\"value\":{\"string_value\":\"proj-x\"}}]},"
    "\"scope_spans\":[{\"scope\":{\"name\":\"lib\",\"version\":\"1.2\",\"attributes\":["
    "{\"key\":\"scope.attr\",\"value\":{\"int_value\":7}}]},\"spans\":["
    "{\"trace_id\":\"5B8EFFF798038103D269B633813FC60C\",\"span_id\":\"7uGbfsPBsXQ=\","
    "\"parent_span_id\":null,\"trace_state\":\"k=v\",\"flags\":\"257\",\"name\":\"root\","
    "\"kind\":\"SPAN_KIND_SERVER\",\"start_time_unix_nano\":1700000000000000000,"
    "\"end_time_unix_nano\":1700000001500000000,"
    "\"attributes\":["
    "{\"key\":\"s\",\"value\":{\"string_value\":\"hello\"}},"
    "{\"key\":\"b\",\"value\":{\"bool_value\":true}},"
    "{\"key\":\"i\",\"value\":{\"int_value\":-42}},"
    "{\"key\":\"d\",\"value\":{\"double_value\":\"2.5\"}},"
    "{\"key\":\"by\",\"value\":{\"bytes_value\":\"AAFoaQ\"}},"
    "{\"key\":\"arr\",\"value\":{\"array_value\":{\"values\":[{\"string_value\":\"x\"},"
    "{\"int_value\":7},{\"array_value\":{\"values\":[{\"bool_value\":true}]}}]}}},"
    "{\"key\":\"map\",\"value\":{\"kvlist_value\":{\"values\":["
    "{\"key\":\"a\",\"value\":{\"string_value\":\"y\"}},"
    "{\"key\":\"n\",\"value\":{\"kvlist_value\":{\"values\":[{\"key\":\"c\",\"value\":"
    "{\"bool_value\":false}}]}}}]}}},"
    "{\"key\":\"nul\"},"
    "{\"key\":\"big\",\"value\":{\"int_value\":9007199254740993}}],"
    "\"events\":[{\"time_unix_nano\":1700000000100000000,\"name\":\"ev1\",\"attributes\":["
    "{\"key\":\"k\",\"value\":{\"string_value\":\"v\"}}]},"
    "{\"time_unix_nano\":\"1700000000200000000\",\"name\":\"exception\",\"attributes\":[]}],"
    "\"links\":[{\"trace_id\":\"oaKjpKWmp6ipqqusra6vsA==\",\"span_id\":\"sbKztLW2t7g\","
    "\"trace_state\":\"lk=1\",\"attributes\":[{\"key\":\"la\",\"value\":{\"int_value\":1}}]}],"
    "\"status\":{\"code\":\"STATUS_CODE_ERROR\",\"message\":\"boom\"}},"
    "{\"trace_id\":\"" TRACE_A
    "\",\"span_id\":\"7uGbfsPBsXM\",\"parent_span_id\":\"EEE19B7EC3C1B174\","
    "\"name\":\"child\",\"kind\":\"SPAN_KIND_CLIENT\",\"start_time_unix_nano\":1700000000500000000,"
    "\"end_time_unix_nano\":1.7000000006e18,\"status\":{\"code\":\"STATUS_CODE_UNSET\"}}]},"
    "{\"scope\":null,\"spans\":[{\"trace_id\":\"" TRACE_A "\",\"span_id\":\"" SPAN_C "\","
    "\"parent_span_id\":\"" SPAN_A "\",\"name\":\"c3\",\"kind\":\"SPAN_KIND_UNSPECIFIED\"}]}]},"
    "{\"resource\":null,\"scope_spans\":[{\"spans\":[{\"trace_id\":\"AQIDBAUGBwgJCgsMDQ4PEA\","
    "\"span_id\":\"ERITFBUWFxg=\",\"name\":\"other\",\"kind\":\"SPAN_KIND_INTERNAL\"}]}]}]}";

static const pc_value *attr(const pc_attrs *a, const char *key, pc_value_type type)
{
    const pc_value *v = pc_attrs_get(a, key);
    CHECK(v != NULL);
    if (v) CHECK_EQ_INT(v->type, type);
    return v && v->type == type ? v : NULL;
}

/* Checks every field of the decoded full request, spans A, B, C, D in order. */
static void check_full(const pc_batch *b, const char *project0)
{
    CHECK_EQ_INT(b->n, 4);
    if (b->n != 4) return;
    const pc_span *a = &b->spans[0], *s2 = &b->spans[1], *c = &b->spans[2], *d = &b->spans[3];

    CHECK_EQ_PSTR(a->trace_id, TRACE_A);
    CHECK_EQ_PSTR(a->span_id, SPAN_A);
    CHECK_EQ_PSTR(a->parent_id, "");
    CHECK_EQ_PSTR(a->name, "root");
    CHECK_EQ_PSTR(a->trace_state, "k=v");
    CHECK_EQ_INT(a->kind, 2);
    CHECK_EQ_INT(a->flags, 257);
    CHECK_EQ_INT(a->start_ns, 1700000000000000000LL);
    CHECK_EQ_INT(a->end_ns, 1700000001500000000LL);
    CHECK_EQ_INT(a->status_code, PC_OTLP_STATUS_ERROR);
    CHECK_EQ_PSTR(a->status_message, "boom");
    CHECK_EQ_INT(a->source, PC_SOURCE_OTLP);
    CHECK_EQ_INT(a->input_tokens, -1);
    CHECK_EQ_INT(a->output_tokens, -1);
    CHECK_EQ_PSTR(a->project_id, project0);

    /* attributes, one of each type, in order */
    CHECK_EQ_INT(a->attrs.n, 9);
    if (a->attrs.n == 9) {
        CHECK_EQ_PSTR(a->attrs.kv[0].key, "s");
        CHECK_EQ_PSTR(a->attrs.kv[8].key, "big");
    }
    const pc_value *v;
    if ((v = attr(&a->attrs, "s", PC_V_STR))) CHECK_EQ_PSTR(v->s, "hello");
    if ((v = attr(&a->attrs, "b", PC_V_BOOL))) CHECK(v->b == true);
    if ((v = attr(&a->attrs, "i", PC_V_INT))) CHECK_EQ_INT(v->i, -42);
    if ((v = attr(&a->attrs, "d", PC_V_DOUBLE))) CHECK(v->d == 2.5);
    if ((v = attr(&a->attrs, "by", PC_V_BYTES))) {
        CHECK_EQ_INT(v->s.n, 4);
        if (v->s.n == 4) CHECK(memcmp(v->s.p, BYTES, 4) == 0);
    }
    if ((v = attr(&a->attrs, "arr", PC_V_ARRAY))) {
        CHECK_EQ_INT(v->arr.n, 3);
        if (v->arr.n == 3) {
            CHECK_EQ_INT(v->arr.v[0].type, PC_V_STR);
            CHECK_EQ_PSTR(v->arr.v[0].s, "x");
            CHECK_EQ_INT(v->arr.v[1].type, PC_V_INT);
            CHECK_EQ_INT(v->arr.v[1].i, 7);
            CHECK_EQ_INT(v->arr.v[2].type, PC_V_ARRAY);
            CHECK_EQ_INT(v->arr.v[2].arr.n, 1);
            if (v->arr.v[2].arr.n == 1) {
                CHECK_EQ_INT(v->arr.v[2].arr.v[0].type, PC_V_BOOL);
                CHECK(v->arr.v[2].arr.v[0].b == true);
            }
        }
    }
    if ((v = attr(&a->attrs, "map", PC_V_MAP))) {
        CHECK_EQ_INT(v->map.n, 2);
        if (v->map.n == 2) {
            CHECK_EQ_PSTR(v->map.kv[0].key, "a");
            CHECK_EQ_INT(v->map.kv[0].value.type, PC_V_STR);
            CHECK_EQ_PSTR(v->map.kv[0].value.s, "y");
            CHECK_EQ_PSTR(v->map.kv[1].key, "n");
            const pc_value *n = &v->map.kv[1].value;
            CHECK_EQ_INT(n->type, PC_V_MAP);
            if (n->type == PC_V_MAP && n->map.n == 1) {
                CHECK_EQ_PSTR(n->map.kv[0].key, "c");
                CHECK_EQ_INT(n->map.kv[0].value.type, PC_V_BOOL);
                CHECK(n->map.kv[0].value.b == false);
            } else {
                CHECK(!"nested kvlist n has one entry");
            }
        }
    }
    attr(&a->attrs, "nul", PC_V_NULL);
    if ((v = attr(&a->attrs, "big", PC_V_INT))) CHECK_EQ_INT(v->i, 9007199254740993LL);

    /* events and links */
    CHECK_EQ_INT(a->n_events, 2);
    if (a->n_events == 2) {
        CHECK_EQ_PSTR(a->events[0].name, "ev1");
        CHECK_EQ_INT(a->events[0].time_ns, 1700000000100000000LL);
        CHECK_EQ_INT(a->events[0].attrs.n, 1);
        if ((v = attr(&a->events[0].attrs, "k", PC_V_STR))) CHECK_EQ_PSTR(v->s, "v");
        CHECK_EQ_PSTR(a->events[1].name, "exception");
        CHECK_EQ_INT(a->events[1].time_ns, 1700000000200000000LL);
        CHECK_EQ_INT(a->events[1].attrs.n, 0);
    }
    CHECK_EQ_INT(a->n_links, 1);
    if (a->n_links == 1) {
        CHECK_EQ_PSTR(a->links[0].trace_id, LINK_T);
        CHECK_EQ_PSTR(a->links[0].span_id, LINK_S);
        CHECK_EQ_PSTR(a->links[0].trace_state, "lk=1");
        if ((v = attr(&a->links[0].attrs, "la", PC_V_INT))) CHECK_EQ_INT(v->i, 1);
    }

    /* resource and scope: shared, not copied */
    CHECK_EQ_INT(a->resource->n, 2);
    if ((v = attr(a->resource, "service.name", PC_V_STR))) CHECK_EQ_PSTR(v->s, "svc-a");
    CHECK_EQ_PSTR(a->scope->name, "lib");
    CHECK_EQ_PSTR(a->scope->version, "1.2");
    if ((v = attr(&a->scope->attrs, "scope.attr", PC_V_INT))) CHECK_EQ_INT(v->i, 7);
    CHECK(s2->resource == a->resource);
    CHECK(c->resource == a->resource);
    CHECK(s2->scope == a->scope);
    CHECK(c->scope == &pc_empty_scope);
    CHECK(d->resource != a->resource);
    CHECK_EQ_INT(d->resource->n, 0);
    CHECK(d->scope == &pc_empty_scope);

    /* span B: a child without status */
    CHECK_EQ_PSTR(s2->span_id, SPAN_B);
    CHECK_EQ_PSTR(s2->parent_id, SPAN_A);
    CHECK_EQ_PSTR(s2->name, "child");
    CHECK_EQ_INT(s2->kind, 3);
    CHECK_EQ_INT(s2->start_ns, 1700000000500000000LL);
    CHECK_EQ_INT(s2->end_ns, 1700000000600000000LL);
    CHECK_EQ_INT(s2->status_code, PC_OTLP_STATUS_UNSET);
    CHECK_EQ_PSTR(s2->status_message, "");
    CHECK_EQ_INT(s2->attrs.n, 0);
    CHECK_EQ_INT(s2->n_events, 0);
    CHECK_EQ_INT(s2->n_links, 0);
    CHECK_EQ_PSTR(s2->project_id, project0);

    CHECK_EQ_PSTR(c->span_id, SPAN_C);
    CHECK_EQ_PSTR(c->name, "c3");
    CHECK_EQ_INT(c->kind, 0);
    CHECK_EQ_INT(c->start_ns, 0);

    /* span D: another resource, no project attribute, all-zero parent = root */
    CHECK_EQ_PSTR(d->trace_id, TRACE_B);
    CHECK_EQ_PSTR(d->span_id, SPAN_D);
    CHECK_EQ_PSTR(d->parent_id, "");
    CHECK_EQ_INT(d->kind, 1);
    CHECK_EQ_PSTR(d->name, "other");
}

static void test_proto_full(void)
{
    size_t len;
    uint8_t *buf = pack(full_request(), &len);
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_pb(buf, len, NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(res.accepted, 4);
    CHECK_EQ_INT(res.rejected, 0);
    CHECK_EQ_STR(res.error, "");
    check_full(b, "proj-x");
    if (b->n == 4) CHECK_EQ_PSTR(b->spans[3].project_id, "dflt");
    /* Strings were copied: the batch must not point into |buf|. */
    if (b->n == 4)
        CHECK(!(b->spans[0].name.p >= (char *)buf && b->spans[0].name.p < (char *)buf + len));
    pc_batch_unref(b);

    /* The X-Prela-Project-Id header wins over the resource attribute. */
    b = decode_pb(buf, len, "from-header", &res, &rc);
    CHECK_EQ_INT(rc, 0);
    for (size_t i = 0; i < b->n; i++)
        CHECK_EQ_PSTR(b->spans[i].project_id, "from-header");
    pc_batch_unref(b);

    /* An empty header is no header. */
    b = decode_pb(buf, len, "", &res, &rc);
    if (b->n == 4) CHECK_EQ_PSTR(b->spans[0].project_id, "proj-x");
    pc_batch_unref(b);
}

static void test_json_full(void)
{
    const char *variants[] = {FULL_JSON_CAMEL, FULL_JSON_SNAKE};
    for (int i = 0; i < 2; i++) {
        fprintf(stderr, "   variant %d\n", i);
        pc_otlp_result res;
        int rc;
        pc_batch *b = decode_js(variants[i], NULL, &res, &rc);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_STR(res.error, "");
        CHECK_EQ_INT(res.accepted, 4);
        CHECK_EQ_INT(res.rejected, 0);
        check_full(b, "proj-x");
        if (b->n == 4) CHECK_EQ_PSTR(b->spans[3].project_id, "dflt");
        pc_batch_unref(b);
    }
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_js(FULL_JSON_CAMEL, "hdr", &res, &rc);
    for (size_t i = 0; i < b->n; i++)
        CHECK_EQ_PSTR(b->spans[i].project_id, "hdr");
    pc_batch_unref(b);
}

static void test_empty(void)
{
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_pb("", 0, NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b->n, 0);
    CHECK_EQ_INT(res.rejected, 0);
    pc_batch_unref(b);
    const char *empties[] = {"{}", "{\"resourceSpans\":[]}", "{\"resourceSpans\":null}",
                             "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[]}]}]}"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        b = decode_js(empties[i], NULL, &res, &rc);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(b->n, 0);
        pc_batch_unref(b);
    }
}

/* ------------------------------------------------------------ partial success */

static void test_proto_partial(void)
{
    Span *spans[6];
    spans[0] = span_new("5b8efff798038103d269b633813fc6", SPAN_A, "", "short-trace", 1);
    spans[1] = span_new(TRACE_A, "0000000000000000", "", "zero-span", 1);
    spans[2] = span_new(TRACE_A, SPAN_B, "", "good", 1);
    spans[3] = span_new(TRACE_A, SPAN_C, "0102030405", "short-parent", 1);
    spans[4] = span_new("00000000000000000000000000000000", SPAN_D, "", "zero-trace", 1);
    spans[5] = span_new(TRACE_A, SPAN_D, "", "bad-link", 1);
    spans[5]->n_links = 1;
    spans[5]->links = ob_alloc(sizeof(Link *));
    spans[5]->links[0] = ob_alloc(sizeof(Link));
    opentelemetry__proto__trace__v1__span__link__init(spans[5]->links[0]);
    spans[5]->links[0]->trace_id = id(LINK_T);
    spans[5]->links[0]->span_id = id("b1b2");
    size_t len;
    uint8_t *buf = pack(simple_request(6, spans), &len);
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_pb(buf, len, NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(res.rejected, 5);
    CHECK_EQ_INT(res.accepted, 1);
    CHECK_EQ_INT(b->n, 1);
    if (b->n == 1) CHECK_EQ_PSTR(b->spans[0].name, "good");
    CHECK_EQ_STR(res.error,
                 "resource_spans[0].scope_spans[0].spans[0].trace_id: must be 16 bytes, got 15");
    pc_batch_unref(b);

    /* Every span rejected is still a success with partial_success. */
    Span *bad[2] = {span_new(TRACE_A, "", "", "no-span-id", 1),
                    span_new(TRACE_A, SPAN_A, "", "ok-but-second", 1)};
    bad[1]->span_id = id("0000000000000000");
    buf = pack(simple_request(2, bad), &len);
    b = decode_pb(buf, len, NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b->n, 0);
    CHECK_EQ_INT(res.rejected, 2);
    CHECK_EQ_STR(res.error,
                 "resource_spans[0].scope_spans[0].spans[0].span_id: must be 8 bytes, got 0");
    pc_batch_unref(b);

    /* The link's span id is named when it is the problem. */
    Span *one[1] = {spans[5]};
    buf = pack(simple_request(1, one), &len);
    b = decode_pb(buf, len, NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b->n, 0);
    CHECK_EQ_STR(res.error, "resource_spans[0].scope_spans[0].spans[0].links[0].span_id: must be "
                            "8 bytes, got 2");
    pc_batch_unref(b);
}

static void test_json_partial(void)
{
    const char *text =
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":["
        "{\"traceId\":\"xyz\",\"spanId\":\"" SPAN_A "\",\"name\":\"bad-hex\"},"
        "{\"traceId\":\"" TRACE_A "\",\"spanId\":\"0000000000000000\",\"name\":\"zero\"},"
        "{\"spanId\":\"" SPAN_A "\",\"name\":\"no-trace\"},"
        "{\"traceId\":\"" TRACE_A "\",\"spanId\":\"" SPAN_A "\",\"name\":\"good\"},"
        "{\"traceId\":\"" TRACE_A "\",\"spanId\":\"" SPAN_B "\",\"parentSpanId\":\"abc\"},"
        "{\"traceId\":\"" TRACE_A "\",\"spanId\":\"" SPAN_C "\","
        "\"links\":[{\"traceId\":\"" TRACE_A "\",\"spanId\":\"\"}]},"
        "{\"traceId\":\"AQIDBAUGBwgJCgsMDQ4P\",\"spanId\":\"" SPAN_D "\",\"name\":\"b64-15\"}"
        "]}]}]}";
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_js(text, NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(res.rejected, 6);
    CHECK_EQ_INT(b->n, 1);
    if (b->n == 1) CHECK_EQ_PSTR(b->spans[0].name, "good");
    CHECK_EQ_STR(res.error,
                 "resourceSpans[0].scopeSpans[0].spans[0].traceId: must be 32 hex digits");
    pc_batch_unref(b);

    b = decode_js("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":["
                  "{\"spanId\":\"" SPAN_A "\"}]}]}]}",
                  NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(res.rejected, 1);
    CHECK_EQ_STR(res.error,
                 "resourceSpans[0].scopeSpans[0].spans[0].traceId: must be 16 bytes, got 0");
    pc_batch_unref(b);
}

/* ------------------------------------------------------------ malformed protobuf */

static void check_pb_error(const void *buf, size_t len, const char *want_prefix)
{
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_pb(buf, len, NULL, &res, &rc);
    CHECK_EQ_INT(rc, -1);
    if (strncmp(res.error, want_prefix, strlen(want_prefix)) != 0) {
        CHECK_EQ_STR(res.error, want_prefix);
    }
    pc_batch_unref(b);
}

static void test_proto_malformed(void)
{
    size_t len;
    uint8_t *buf = pack(full_request(), &len);
    /* Cut inside the second resource_spans, which starts after the first. */
    size_t first = opentelemetry__proto__trace__v1__resource_spans__get_packed_size(
        full_request()->resource_spans[0]);
    char want[96];
    snprintf(want, sizeof(want), "invalid protobuf at byte %zu: truncated length-delimited field",
             first + 3); /* tag + 2-byte length of the first */
    check_pb_error(buf, len - 3, want);
    check_pb_error("hello, world", 12, "invalid protobuf at byte ");
    const uint8_t wrong_type[] = {0x08, 0x05}; /* resource_spans as a varint */
    check_pb_error(wrong_type, sizeof(wrong_type),
                   "invalid protobuf at byte 0: wrong wire type for a known field");
    const uint8_t group[] = {0x7b, 0x7c}; /* field 15, start/end group */
    check_pb_error(group, sizeof(group), "invalid protobuf at byte 0: unsupported wire type");
    const uint8_t bad_varint[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    check_pb_error(bad_varint, sizeof(bad_varint), "invalid protobuf at byte 0: truncated");
    const uint8_t field_zero[] = {0x02, 0x00};
    check_pb_error(field_zero, sizeof(field_zero),
                   "invalid protobuf at byte 0: invalid field tag");

    /* Unknown fields are skipped. */
    const uint8_t unknown[] = {0x10, 0x01, 0x1a, 0x02, 'h', 'i', 0x25, 1, 2, 3, 4};
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_pb(unknown, sizeof(unknown), NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b->n, 0);
    pc_batch_unref(b);

    /* 100000 nested arrays: a stack overflow in protobuf-c without the check.
     * protobuf-c's packer recurses too, so the bytes are written by hand. */
    size_t depth = 100000;
    size_t cap = depth * 12 + 64, at = cap;
    uint8_t *deep = malloc(cap);
    deep[--at] = 0x01; /* AnyValue{int_value=1}: 18 01 */
    deep[--at] = 0x18;
    for (size_t i = 0; i < depth; i++) {
        /* ArrayValue{values(1)=inner} then AnyValue{array_value(5)=that} */
        for (int k = 0; k < 2; k++) {
            size_t inner = cap - at;
            uint8_t tmp[10];
            size_t n = 0;
            do {
                tmp[n++] = (inner & 0x7f) | (inner > 0x7f ? 0x80 : 0);
                inner >>= 7;
            } while (inner);
            at -= n;
            memcpy(deep + at, tmp, n);
            deep[--at] = k == 0 ? 0x0a : 0x2a;
        }
    }
    /* Wrap: KeyValue{value(2)} Span{attributes(9)} ScopeSpans{spans(2)}
     * ResourceSpans{scope_spans(2)} Request{resource_spans(1)} */
    const uint8_t tags[] = {0x12, 0x4a, 0x12, 0x12, 0x0a};
    for (size_t t = 0; t < sizeof(tags); t++) {
        size_t inner = cap - at;
        uint8_t tmp[10];
        size_t n = 0;
        do {
            tmp[n++] = (inner & 0x7f) | (inner > 0x7f ? 0x80 : 0);
            inner >>= 7;
        } while (inner);
        at -= n;
        memcpy(deep + at, tmp, n);
        deep[--at] = tags[t];
    }
    check_pb_error(deep + at, cap - at, "invalid protobuf at byte ");
    b = decode_pb(deep + at, cap - at, NULL, &res, &rc);
    CHECK(strstr(res.error, "nested too deeply") != NULL);
    pc_batch_unref(b);
    free(deep);

    /* Moderate nesting (20 levels) is fine. */
    Span *s = span_new(TRACE_A, SPAN_A, "", "nested", 1);
    s->n_attributes = 1;
    AnyValue *v = v_int(5);
    for (int i = 0; i < 20; i++)
        v = v_array(1, ob_ptrs(1, v));
    s->attributes = ob_ptrs(1, kv("deep", v));
    Span *ok[1] = {s};
    buf = pack(simple_request(1, ok), &len);
    b = decode_pb(buf, len, NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b->n, 1);
    pc_batch_unref(b);
}

/* Many tiny messages on the wire cost no more than the body when unused. */
static void test_proto_budget(void)
{
    size_t n = 1000000;
    size_t len = 2 * n + 64, at = len;
    uint8_t *buf = malloc(len);
    /* ArrayValue with n empty AnyValues: n * (0a 00) */
    for (size_t i = 0; i < n; i++) {
        buf[--at] = 0x00;
        buf[--at] = 0x0a;
    }
    const uint8_t tags[] = {0x2a, 0x12, 0x4a, 0x12, 0x12, 0x0a};
    for (size_t t = 0; t < sizeof(tags); t++) {
        size_t inner = len - at;
        uint8_t tmp[10];
        size_t k = 0;
        do {
            tmp[k++] = (inner & 0x7f) | (inner > 0x7f ? 0x80 : 0);
            inner >>= 7;
        } while (inner);
        at -= k;
        memcpy(buf + at, tmp, k);
        buf[--at] = tags[t];
    }
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_pb(buf + at, len - at, NULL, &res, &rc);
    /* The wire reader never builds the array: the span has no ids, so it is
     * rejected first, and the decode costs about the body's copy. */
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(res.rejected, 1);
    CHECK(pc_arena_used(b->arena) < 2u * (len - at) + 65536);
    pc_batch_unref(b);
    free(buf);
}

static void test_proto_utf8(void)
{
    Span *spans[2] = {span_new(TRACE_A, SPAN_A, "", "fine", 1),
                      span_new(TRACE_A, SPAN_B, "", "bad\xff", 1)};
    size_t len;
    uint8_t *buf = pack(simple_request(2, spans), &len);
    check_pb_error(buf, len, "resource_spans[0].scope_spans[0].spans[1].name: invalid UTF-8");

    spans[1]->name = "ok";
    spans[0]->n_attributes = 2;
    spans[0]->attributes =
        ob_ptrs(2, kv("x", v_int(1)), kv("m", v_kvlist(1, ob_ptrs(1, kv("k", v_str("\xc0\x80"))))));
    buf = pack(simple_request(2, spans), &len);
    check_pb_error(buf, len,
                   "resource_spans[0].scope_spans[0].spans[0].attributes[1].value.kvlist_value."
                   "values[0].value.string_value: invalid UTF-8");

    spans[0]->attributes = ob_ptrs(2, kv("x", v_int(1)), kv("bad\xed\xa0\x80", v_int(2)));
    buf = pack(simple_request(2, spans), &len);
    check_pb_error(buf, len,
                   "resource_spans[0].scope_spans[0].spans[0].attributes[1].key: "
                   "invalid UTF-8");

    spans[0]->n_attributes = 0;
    spans[1]->status = ob_alloc(sizeof(Status));
    opentelemetry__proto__trace__v1__status__init(spans[1]->status);
    spans[1]->status->message = "\xe2\x82";
    buf = pack(simple_request(2, spans), &len);
    check_pb_error(buf, len,
                   "resource_spans[0].scope_spans[0].spans[1].status.message: invalid UTF-8");

    /* Bytes values are not text: anything goes. */
    spans[1]->status = NULL;
    spans[0]->n_attributes = 1;
    spans[0]->attributes = ob_ptrs(1, kv("raw", v_bytes("\xff\xfe", 2)));
    Request *r = simple_request(2, spans);
    Resource *res0 = ob_alloc(sizeof(*res0));
    opentelemetry__proto__resource__v1__resource__init(res0);
    res0->n_attributes = 1;
    res0->attributes = ob_ptrs(1, kv("service.name", v_str("caf\xc3\xa9")));
    r->resource_spans[0]->resource = res0;
    buf = pack(r, &len);
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_pb(buf, len, NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b->n, 2);
    pc_batch_unref(b);

    res0->attributes = ob_ptrs(1, kv("service.name", v_str("caf\xe9")));
    buf = pack(r, &len);
    check_pb_error(buf, len,
                   "resource_spans[0].resource.attributes[0].value.string_value: invalid UTF-8");
}

/* ------------------------------------------------------------ malformed JSON */

static void check_js_error(const char *text, const char *want)
{
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_js(text, NULL, &res, &rc);
    CHECK_EQ_INT(rc, -1);
    if (strncmp(res.error, want, strlen(want)) != 0) CHECK_EQ_STR(res.error, want);
    pc_batch_unref(b);
}

#define SPAN_JSON(fields)                                                                          \
    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TRACE_A                     \
    "\",\"spanId\":\"" SPAN_A "\"," fields "}]}]}]}"

static void test_json_malformed(void)
{
    check_js_error("{\"resourceSpans\":[", "invalid JSON: ");
    check_js_error("[]", "expected a JSON object");
    check_js_error("{\"resourceSpans\":{}}", "resourceSpans: expected an array");
    check_js_error("{\"resource_spans\":[5]}", "resource_spans[0]: expected an object");
    check_js_error("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":{}}]}]}",
                   "resourceSpans[0].scopeSpans[0].spans: expected an array");
    check_js_error(SPAN_JSON("\"kind\":true"),
                   "resourceSpans[0].scopeSpans[0].spans[0].kind: expected an enum name or number");
    check_js_error(SPAN_JSON("\"kind\":\"SPAN_KIND_WHATEVER\""),
                   "resourceSpans[0].scopeSpans[0].spans[0].kind: unknown enum name");
    check_js_error(SPAN_JSON("\"name\":5"),
                   "resourceSpans[0].scopeSpans[0].spans[0].name: expected a string");
    check_js_error(SPAN_JSON("\"startTimeUnixNano\":\"12x\""),
                   "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: ");
    check_js_error(
        SPAN_JSON("\"end_time_unix_nano\":-1"),
        "resourceSpans[0].scopeSpans[0].spans[0].end_time_unix_nano: integer out of range");
    check_js_error(
        SPAN_JSON("\"startTimeUnixNano\":\"18446744073709551615\""),
        "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: integer out of range");
    check_js_error(SPAN_JSON("\"flags\":1.5"),
                   "resourceSpans[0].scopeSpans[0].spans[0].flags: expected an integer");
    check_js_error("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":5}]}]}]}",
                   "resourceSpans[0].scopeSpans[0].spans[0].traceId: expected a hex string");
    check_js_error(SPAN_JSON("\"attributes\":[{\"key\":\"a\",\"value\":{\"intValue\":\"abc\"}}]"),
                   "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.intValue: ");
    check_js_error(SPAN_JSON("\"attributes\":[{\"key\":\"a\",\"value\":{\"boolValue\":\"yes\"}}]"),
                   "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.boolValue: "
                   "expected true or false");
    check_js_error(SPAN_JSON("\"attributes\":[{\"key\":\"a\",\"value\":{\"bytesValue\":\"@@\"}}]"),
                   "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.bytesValue: "
                   "invalid base64");
    check_js_error(SPAN_JSON("\"attributes\":[{\"key\":\"a\",\"value\":{\"arrayValue\":{"
                             "\"values\":[1]}}}]"),
                   "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.arrayValue."
                   "values[0]: expected an AnyValue object");
    check_js_error(SPAN_JSON("\"attributes\":[{\"key\":\"a\",\"value\":{\"kvlistValue\":{"
                             "\"values\":[{\"key\":7}]}}}]"),
                   "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.kvlistValue."
                   "values[0].key: expected a string");
    check_js_error(SPAN_JSON("\"attributes\":[\"a\"]"),
                   "resourceSpans[0].scopeSpans[0].spans[0].attributes[0]: expected a KeyValue");
    check_js_error(SPAN_JSON("\"events\":[{\"time_unix_nano\":true}]"),
                   "resourceSpans[0].scopeSpans[0].spans[0].events[0].time_unix_nano: expected an "
                   "integer");
    check_js_error(SPAN_JSON("\"status\":{\"code\":\"STATUS_CODE_BAD\"}"),
                   "resourceSpans[0].scopeSpans[0].spans[0].status.code: unknown enum name");
    check_js_error(SPAN_JSON("\"status\":[]"),
                   "resourceSpans[0].scopeSpans[0].spans[0].status: expected an object");
    check_js_error("{\"resourceSpans\":[{\"resource\":{\"attributes\":{}}}]}",
                   "resourceSpans[0].resource.attributes: expected an array");
    check_js_error("{\"resourceSpans\":[{\"scopeSpans\":[{\"scope\":{\"name\":1}}]}]}",
                   "resourceSpans[0].scopeSpans[0].scope.name: expected a string");
    /* snake_case keys are named as sent */
    check_js_error("{\"resource_spans\":[{\"scope_spans\":[{\"spans\":[{\"trace_id\":\"" TRACE_A
                   "\",\"span_id\":\"" SPAN_A "\",\"trace_state\":{}}]}]}]}",
                   "resource_spans[0].scope_spans[0].spans[0].trace_state: expected a string");
    /* the parser's own errors: invalid UTF-8 in a string */
    check_js_error(SPAN_JSON("\"name\":\"bad\xff\""), "invalid JSON: ");

    /* Accepted oddities: NaN doubles, out-of-range enums clamp, unknown fields. */
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode_js(SPAN_JSON("\"kind\":42,\"status\":{\"code\":9},\"x\":{\"y\":1},"
                                      "\"attributes\":[{\"key\":\"n\",\"value\":{\"doubleValue\":"
                                      "\"NaN\"}},{\"key\":\"i\",\"value\":{\"doubleValue\":3}}]"),
                            NULL, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b->n, 1);
    if (b->n == 1) {
        CHECK_EQ_INT(b->spans[0].kind, 0);
        CHECK_EQ_INT(b->spans[0].status_code, 0);
        const pc_value *v = attr(&b->spans[0].attrs, "n", PC_V_DOUBLE);
        if (v) CHECK(isnan(v->d));
        v = attr(&b->spans[0].attrs, "i", PC_V_DOUBLE);
        if (v) CHECK(v->d == 3.0);
    }
    pc_batch_unref(b);
}

/* ------------------------------------------------------------ responses */

static void test_responses(void)
{
    pc_otlp_result res = {0};
    pc_buf out = PC_BUF_INIT;
    pc_otlp_write_response(&out, true, &res);
    CHECK_EQ_STR(out.data, "{}");
    pc_buf_reset(&out);
    pc_otlp_write_response(&out, false, &res);
    CHECK_EQ_INT(out.len, 0);

    res.rejected = 2;
    snprintf(res.error, sizeof(res.error), "spans[0].trace_id: \"bad\"");
    pc_buf_reset(&out);
    pc_otlp_write_response(&out, true, &res);
    CHECK_EQ_STR(out.data, "{\"partialSuccess\":{\"rejectedSpans\":\"2\",\"errorMessage\":"
                           "\"spans[0].trace_id: \\\"bad\\\"\"}}");
    pc_buf_reset(&out);
    pc_otlp_write_response(&out, false, &res);
    Response *r = opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
        NULL, out.len, (const uint8_t *)out.data);
    CHECK(r != NULL);
    if (r) {
        CHECK(r->partial_success != NULL);
        if (r->partial_success) {
            CHECK_EQ_INT(r->partial_success->rejected_spans, 2);
            CHECK_EQ_STR(r->partial_success->error_message, res.error);
        }
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
            r, NULL);
    }

    pc_buf_reset(&out);
    pc_otlp_write_status(&out, true, 3, "bad \"x\"");
    CHECK_EQ_STR(out.data, "{\"code\":3,\"message\":\"bad \\\"x\\\"\"}");
    pc_buf_reset(&out);
    pc_otlp_write_status(&out, false, 3, "bad");
    const char want[] = {0x08, 0x03, 0x12, 0x03, 'b', 'a', 'd'};
    CHECK_EQ_INT(out.len, sizeof(want));
    CHECK(out.len == sizeof(want) && memcmp(out.data, want, sizeof(want)) == 0);
    /* A message with invalid UTF-8 is cut before it, so the string field stays valid. */
    pc_buf_reset(&out);
    pc_otlp_write_status(&out, false, 14, "ok\xff tail");
    const char want2[] = {0x08, 0x0e, 0x12, 0x02, 'o', 'k'};
    CHECK(out.len == sizeof(want2) && memcmp(out.data, want2, sizeof(want2)) == 0);
    pc_buf_free(&out);

    CHECK_EQ_INT(pc_otlp_grpc_code(400), 3);
    CHECK_EQ_INT(pc_otlp_grpc_code(503), 14);
    CHECK_EQ_INT(pc_otlp_grpc_code(413), 8);
    CHECK_EQ_INT(pc_otlp_grpc_code(429), 8);
    CHECK_EQ_INT(pc_otlp_grpc_code(404), 12);
    CHECK_EQ_INT(pc_otlp_grpc_code(405), 12);
    CHECK_EQ_INT(pc_otlp_grpc_code(415), 12);
    CHECK_EQ_INT(pc_otlp_grpc_code(500), 13);
}

/* ------------------------------------------------------------ caps */

#define CAP_SPAN(sid, attrs)                                                                       \
    "{\"traceId\":\"" TRACE_A "\",\"spanId\":\"" sid "\",\"name\":\"n\",\"attributes\":[" attrs "]}"
#define CAP_KV(k, v) "{\"key\":\"" k "\",\"value\":" v "}"

/* Caps from a receiver's settings: a span over a per-span cap is rejected
 * (partial success) naming the field; more spans than max_spans, or a
 * resource over a cap, fail the request; NULL limits check nothing. */
static void test_caps(void)
{
    const pc_span_limits lim = {.max_spans = 3, .max_attributes = 2, .max_events = 1,
                                .max_links = 1, .max_depth = 2};
    const char *three =
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":["
        CAP_SPAN("0000000000000001", CAP_KV("a", "{\"intValue\":1}") "," CAP_KV("b", "{\"intValue\":1}")
                 "," CAP_KV("c", "{\"intValue\":1}")) ","
        CAP_SPAN("0000000000000002", CAP_KV("deep", "{\"arrayValue\":{\"values\":[{\"arrayValue\":"
                 "{\"values\":[{\"arrayValue\":{\"values\":[{\"intValue\":1}]}}]}}]}}")) ","
        CAP_SPAN("0000000000000003", CAP_KV("ok", "{\"arrayValue\":{\"values\":[{\"arrayValue\":"
                 "{\"values\":[{\"intValue\":1}]}}]}}"))
        "]}]}]}";
    pc_otlp_result res;
    pc_batch *b = pc_batch_create(NULL);
    size_t n = strlen(three);
    char *copy = pc_arena_strndup(b->arena, three, n);
    CHECK_EQ_INT(pc_otlp_json_decode(b, copy, n, NULL, "dflt", &lim, &res), 0);
    CHECK_EQ_INT(b->n, 1);
    CHECK_EQ_INT(res.rejected, 2);
    CHECK(strstr(res.error, "spans[0]") != NULL);
    CHECK(strstr(res.error, "attributes: 3 attributes, more than max_attributes_per_span (2)"));
    pc_batch_unref(b);

    /* the same request without caps (a Kafka message a gateway checked) */
    b = pc_batch_create(NULL);
    copy = pc_arena_strndup(b->arena, three, n);
    CHECK_EQ_INT(pc_otlp_json_decode(b, copy, n, NULL, "dflt", NULL, &res), 0);
    CHECK_EQ_INT(b->n, 3);
    pc_batch_unref(b);

    /* the nested value alone: depth 3 over 2 */
    pc_span_limits only_depth = pc_span_limits_default;
    only_depth.max_depth = 2;
    b = pc_batch_create(NULL);
    copy = pc_arena_strndup(b->arena, three, n);
    CHECK_EQ_INT(pc_otlp_json_decode(b, copy, n, NULL, "dflt", &only_depth, &res), 0);
    CHECK_EQ_INT(res.rejected, 1);
    CHECK(strstr(res.error, "spans[1]: attributes.deep: arrays/maps nested more than "
                            "max_attribute_depth (2) deep") != NULL);
    pc_batch_unref(b);

    /* more spans than max_spans: the whole request */
    pc_span_limits two = pc_span_limits_default;
    two.max_spans = 2;
    b = pc_batch_create(NULL);
    copy = pc_arena_strndup(b->arena, three, n);
    CHECK_EQ_INT(pc_otlp_json_decode(b, copy, n, NULL, "dflt", &two, &res), -1);
    CHECK(strstr(res.error, "more than max_spans_per_request (2) spans") != NULL);
    pc_batch_unref(b);

    /* protobuf: events over the cap reject the span; a resource over the cap fails */
    Span *sp = span_new(TRACE_A, SPAN_A, "", "root", 1);
    sp->n_events = 2;
    sp->events = ob_alloc(2 * sizeof(Event *));
    for (int i = 0; i < 2; i++) {
        sp->events[i] = ob_alloc(sizeof(Event));
        opentelemetry__proto__trace__v1__span__event__init(sp->events[i]);
        sp->events[i]->name = "e";
        sp->events[i]->time_unix_nano = 1700000000000000000ull;
    }
    Span **one = ob_alloc(sizeof(Span *));
    one[0] = sp;
    Request *r = simple_request(1, one);
    size_t len;
    uint8_t *buf = pack(r, &len);
    b = pc_batch_create(NULL);
    CHECK_EQ_INT(pc_otlp_proto_decode(b, buf, len, NULL, "dflt", &lim, &res), 0);
    CHECK_EQ_INT(b->n, 0);
    CHECK_EQ_INT(res.rejected, 1);
    CHECK(strstr(res.error, "events: 2 events, more than max_events_per_span (1)") != NULL);
    pc_batch_unref(b);

    Resource *rsrc = ob_alloc(sizeof(*rsrc));
    opentelemetry__proto__resource__v1__resource__init(rsrc);
    rsrc->n_attributes = 3;
    rsrc->attributes = ob_ptrs(3, kv("a", v_int(1)), kv("b", v_int(2)), kv("c", v_int(3)));
    one = ob_alloc(sizeof(Span *));
    one[0] = span_new(TRACE_A, SPAN_A, "", "root", 1);
    r = simple_request(1, one);
    r->resource_spans[0]->resource = rsrc;
    buf = pack(r, &len);
    b = pc_batch_create(NULL);
    CHECK_EQ_INT(pc_otlp_proto_decode(b, buf, len, NULL, "dflt", &lim, &res), -1);
    CHECK(strstr(res.error, "resource_spans[0].resource: attributes: 3 attributes") != NULL);
    pc_batch_unref(b);
}

/* ------------------------------------------------------------ empty keys */

/* An attribute with an empty key is dropped and counted, in protobuf and in JSON alike;
 * a kvlist entry keeps its empty key; the sender's own count is added to. */
static void test_empty_keys(void)
{
    Span *s = span_new(TRACE_A, SPAN_A, "", "s", 1);
    s->start_time_unix_nano = 1;
    s->end_time_unix_nano = 2;
    s->n_attributes = 3;
    s->attributes = ob_ptrs(3, kv("", v_int(1)), kv("a", v_kvlist(1, ob_ptrs(1, kv("", v_int(2))))),
                        kv("", v_str("x")));
    s->dropped_attributes_count = 4;
    size_t len;
    uint8_t *buf = pack(simple_request(1, &s), &len);
    const char *js =
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TRACE_A
        "\",\"spanId\":\"" SPAN_A "\",\"name\":\"s\",\"kind\":1,\"startTimeUnixNano\":\"1\","
        "\"endTimeUnixNano\":\"2\",\"attributes\":[{\"key\":\"\",\"value\":{\"intValue\":1}},"
        "{\"key\":\"a\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"\",\"value\":"
        "{\"intValue\":2}}]}}},{\"key\":\"\",\"value\":{\"stringValue\":\"x\"}}],"
        "\"droppedAttributesCount\":4}]}]}]}";
    pc_otlp_result res;
    int rc;
    for (int json = 0; json < 2; json++) {
        pc_batch *b = json ? decode_js(js, NULL, &res, &rc) : decode_pb(buf, len, NULL, &res, &rc);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(b->n, 1);
        if (b->n == 1) {
            const pc_span *sp = &b->spans[0];
            CHECK_EQ_INT(sp->attrs.n, 1);
            CHECK_EQ_INT(sp->dropped_attributes_count, 6);
            const pc_value *a = attr(&sp->attrs, "a", PC_V_MAP);
            CHECK(a && a->map.n == 1 && a->map.kv[0].key.n == 0);
        }
        pc_batch_unref(b);
    }
}

int main(void)
{
    OB = pc_arena_create(1 << 16);
    RUN(test_proto_full);
    RUN(test_json_full);
    RUN(test_empty);
    RUN(test_proto_partial);
    RUN(test_json_partial);
    RUN(test_proto_malformed);
    RUN(test_proto_budget);
    RUN(test_proto_utf8);
    RUN(test_json_malformed);
    RUN(test_responses);
    RUN(test_caps);
    RUN(test_empty_keys);
    pc_arena_destroy(OB);
    return CHECK_DONE();
}
