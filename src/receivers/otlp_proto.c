/*
 * otlp_proto.c - ExportTraceServiceRequest (protobuf) into a pc_batch.
 *
 * Data flow: body bytes -> wire check -> protobuf_c_message_unpack into the
 * batch's arena -> pc_span per valid Span (see otlp_decode.h for the contract).
 *
 * Three steps, each for a reason:
 *   1. wire_check walks the wire format once with the generated descriptors.
 *      protobuf-c recurses once per nested message with no limit, so a few
 *      hundred KB of nested AnyValues would overflow the stack; the walk bounds
 *      nesting (MAX_NESTING) and names the byte offset of malformed input.
 *   2. protobuf-c unpacks with an allocator that carves from the arena (free is
 *      a no-op), so there is no per-attribute malloc. Each block is charged to
 *      the process memory budget as it is taken (pc_arena_try_alloc), so a
 *      request that would decode past it stops there. The allocator enforces a
 *      budget proportional to the body: tiny messages on the wire (an empty
 *      KeyValue is 2 bytes) become ~100 bytes of structs, and a 20 MiB body of
 *      them must not cost gigabytes.
 *   3. Conversion to pc_span checks that every string is UTF-8 (protobuf-c does
 *      not) and turns ids into hex. protobuf-c NUL-terminates strings and keeps
 *      no length, so a string with an embedded NUL is cut there.
 */
#include "otlp_decode.h"

#include "json.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <string.h>

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest pb_request;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans pb_resource_spans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans pb_scope_spans;
typedef Opentelemetry__Proto__Trace__V1__Span pb_span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event pb_event;
typedef Opentelemetry__Proto__Trace__V1__Span__Link pb_link;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any;

/* Nested messages allowed: the request envelope takes 6 levels down to an
 * attribute value, and each level of array/kvlist nesting takes 2 more. The
 * reference protobuf runtimes use 100. */
#define MAX_NESTING 100

/* Bytes of protobuf-c structures allowed per body byte (plus a fixed slack). */
#define UNPACK_BUDGET_FACTOR 32
#define UNPACK_BUDGET_SLACK (1u << 20)

#define PUSH(d, lit, idx) pc_otlp_push((d), (lit), sizeof(lit) - 1, (idx))

/* ---------------------------------------------------------------- wire check */

typedef struct wire {
    const uint8_t *base;
    const char *why; /* static reason on failure */
    size_t at;       /* byte offset of the failure */
} wire;

static int wire_fail(wire *w, const uint8_t *at, const char *why)
{
    w->why = why;
    w->at = (size_t)(at - w->base);
    return -1;
}

/* True when protobuf-c accepts field |f| with wire type |wt|: its own, or
 * length-delimited for a repeated numeric field (packed). */
static bool wire_type_fits(const ProtobufCFieldDescriptor *f, unsigned wt)
{
    unsigned want;
    switch (f->type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        want = 5;
        break;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        want = 1;
        break;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return wt == 2;
    default:
        want = 0;
        break; /* varints: ints, bool, enum */
    }
    return wt == want || (wt == 2 && f->label == PROTOBUF_C_LABEL_REPEATED);
}

/* The field numbered |num| of |desc|, or NULL. protobuf-c lists fields by
 * number, and OTLP numbers them densely, so the index is usually the answer. */
static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessageDescriptor *desc,
                                                unsigned num)
{
    if (num - 1 < desc->n_fields && desc->fields[num - 1].id == num) return &desc->fields[num - 1];
    return protobuf_c_message_descriptor_get_field(desc, num);
}

/* Walks one message of type |desc| in |n| bytes at |p|, |depth| levels deep. */
static int wire_check(wire *w, const uint8_t *p, size_t n, const ProtobufCMessageDescriptor *desc,
                      int depth)
{
    size_t i = 0;
    while (i < n) {
        const uint8_t *field_at = p + i;
        uint64_t key, len;
        if (pc_otlp_varint(p, n, &i, &key)) return wire_fail(w, field_at, "truncated field tag");
        unsigned wt = key & 7;
        if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
            return wire_fail(w, field_at, "invalid field number");
        const ProtobufCFieldDescriptor *f = field_of(desc, (unsigned)(key >> 3));
        if (f && !wire_type_fits(f, wt))
            return wire_fail(w, field_at, "wrong wire type for a known field");
        switch (wt) {
        case 0:
            if (pc_otlp_varint(p, n, &i, &len)) return wire_fail(w, field_at, "truncated varint");
            break;
        case 1:
        case 5: {
            size_t size = wt == 1 ? 8 : 4;
            if (n - i < size) return wire_fail(w, field_at, "truncated fixed-size field");
            i += size;
            break;
        }
        case 2:
            if (pc_otlp_varint(p, n, &i, &len) || len > n - i)
                return wire_fail(w, field_at, "truncated length-delimited field");
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth >= MAX_NESTING)
                    return wire_fail(w, field_at, "messages nested too deeply");
                if (wire_check(w, p + i, (size_t)len, f->descriptor, depth + 1)) return -1;
            }
            i += (size_t)len;
            break;
        default:
            return wire_fail(w, field_at, "unsupported wire type (groups)");
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- allocator */

typedef struct budget {
    pc_arena *a;
    size_t left;
    bool over;
} budget;

static void *budget_alloc(void *data, size_t size)
{
    budget *bu = data;
    if (size > bu->left) {
        bu->over = true;
        return NULL; /* protobuf-c then fails the unpack */
    }
    bu->left -= size;
    return pc_arena_try_alloc(bu->a, size); /* NULL when the memory budget refuses */
}

static void budget_free(void *data, void *p)
{
    (void)data; /* the arena frees everything at once */
    (void)p;
}

ProtobufCMessage *pc_otlp_unpack(pc_otlp_dec *d, const ProtobufCMessageDescriptor *desc,
                                 const void *buf, size_t len)
{
    wire w = {.base = buf};
    if (wire_check(&w, buf, len, desc, 1)) {
        pc_otlp_fail(d, NULL, "invalid protobuf at byte %zu: %s", w.at, w.why);
        return NULL;
    }
    budget bu = {d->a, UNPACK_BUDGET_FACTOR * len + UNPACK_BUDGET_SLACK, false};
    ProtobufCAllocator alloc = {budget_alloc, budget_free, &bu};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &alloc, len, buf);
    if (!m && pc_arena_over(d->a))
        pc_otlp_fail(d, NULL, "request is over the memory budget");
    else if (!m && bu.over)
        pc_otlp_fail(d, NULL, "request has too many small messages to decode");
    else if (!m)
        pc_otlp_fail(d, NULL, "invalid protobuf %s", desc->short_name);
    return m;
}

/* ---------------------------------------------------------------- conversion */

static int str_in(pc_otlp_dec *d, pc_str *out, const char *s, const char *leaf)
{
    if (!s) s = "";
    size_t n = strlen(s);
    if (!pc_utf8_valid(s, n)) return pc_otlp_fail(d, leaf, "invalid UTF-8");
    *out = (pc_str){s, n};
    return 0;
}

/* fixed64 times on the wire; int64 ns inside, which lasts until 2262. */
static int time_in(pc_otlp_dec *d, int64_t *out, uint64_t t, const char *leaf)
{
    if (t > INT64_MAX) return pc_otlp_fail(d, leaf, "out of range");
    *out = (int64_t)t;
    return 0;
}

static int attrs_in(pc_otlp_dec *d, pc_kv **out, size_t *out_n, pb_kv *const *kv, size_t n,
                    const char *field, size_t field_len);

static int value_in(pc_otlp_dec *d, pc_value *out, const pb_any *v)
{
    memset(out, 0, sizeof(*out));
    if (!v) return 0; /* a KeyValue without value: null */
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        out->type = PC_V_STR;
        return str_in(d, &out->s, v->string_value, "string_value");
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        out->type = PC_V_BOOL;
        out->b = v->bool_value;
        return 0;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        out->type = PC_V_INT;
        out->i = v->int_value;
        return 0;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        out->type = PC_V_DOUBLE;
        out->d = v->double_value;
        return 0;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        out->type = PC_V_BYTES;
        out->s = (pc_str){(const char *)v->bytes_value.data, v->bytes_value.len};
        if (!out->s.p) out->s = PC_STR_LIT("");
        return 0;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE: {
        out->type = PC_V_ARRAY;
        size_t n = v->array_value ? v->array_value->n_values : 0;
        out->arr.v = n ? pc_arena_alloc(d->a, n * sizeof(pc_value)) : NULL;
        out->arr.n = n;
        for (size_t i = 0; i < n; i++) {
            PUSH(d, "array_value.values", (long)i);
            if (value_in(d, &out->arr.v[i], v->array_value->values[i])) return -1;
            pc_otlp_pop(d);
        }
        return 0;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        out->type = PC_V_MAP;
        if (!v->kvlist_value) return 0;
        return attrs_in(d, &out->map.kv, &out->map.n, v->kvlist_value->values,
                        v->kvlist_value->n_values, "kvlist_value.values",
                        sizeof("kvlist_value.values") - 1);
    default:
        return 0; /* empty AnyValue: null */
    }
}

/* Converts |n| KeyValues into an arena array; |field| names them in errors. */
static int attrs_in(pc_otlp_dec *d, pc_kv **out, size_t *out_n, pb_kv *const *kv, size_t n,
                    const char *field, size_t field_len)
{
    pc_kv *arr = n ? pc_arena_alloc(d->a, n * sizeof(pc_kv)) : NULL;
    for (size_t i = 0; i < n; i++) {
        pc_otlp_push(d, field, field_len, (long)i);
        if (str_in(d, &arr[i].key, kv[i]->key, "key")) return -1;
        PUSH(d, "value", -1);
        if (value_in(d, &arr[i].value, kv[i]->value)) return -1;
        pc_otlp_pop(d);
        pc_otlp_pop(d);
    }
    *out = arr;
    *out_n = n;
    return 0;
}

static int attr_list_in(pc_otlp_dec *d, pc_attrs *out, pb_kv *const *kv, size_t n)
{
    return attrs_in(d, &out->kv, &out->n, kv, n, "attributes", sizeof("attributes") - 1);
}

/* Returns 0 when the link is usable, 1 when its ids reject the span, -1 on a bad request. */
static int link_in(pc_otlp_dec *d, pc_link *out, const pb_link *l)
{
    if (pc_otlp_id(d, &out->trace_id, l->trace_id.data, l->trace_id.len, 16, false, "trace_id") ||
        pc_otlp_id(d, &out->span_id, l->span_id.data, l->span_id.len, 8, false, "span_id"))
        return 1;
    if (str_in(d, &out->trace_state, l->trace_state, "trace_state")) return -1;
    return attr_list_in(d, &out->attrs, l->attributes, l->n_attributes);
}

/* Adds span |ps| to the batch, or rejects it. 0, or -1 when the request is invalid. */
static int span_in(pc_otlp_dec *d, const pb_span *ps, const pc_attrs *resource,
                   const pc_scope *scope, pc_str project)
{
    pc_str tid, sid, pid;
    if (pc_otlp_id(d, &tid, ps->trace_id.data, ps->trace_id.len, 16, false, "trace_id") ||
        pc_otlp_id(d, &sid, ps->span_id.data, ps->span_id.len, 8, false, "span_id") ||
        pc_otlp_id(d, &pid, ps->parent_span_id.data, ps->parent_span_id.len, 8, true,
                   "parent_span_id"))
        return 0; /* rejected and counted */

    pc_span *s = pc_otlp_add_span(d, resource, scope, project);
    s->trace_id = tid;
    s->span_id = sid;
    s->parent_id = pid;
    if (str_in(d, &s->name, ps->name, "name") ||
        str_in(d, &s->trace_state, ps->trace_state, "trace_state"))
        return -1;
    s->kind = pc_otlp_clamp_kind(ps->kind);
    if (time_in(d, &s->start_ns, ps->start_time_unix_nano, "start_time_unix_nano") ||
        time_in(d, &s->end_ns, ps->end_time_unix_nano, "end_time_unix_nano"))
        return -1;
    s->flags = ps->flags;
    if (ps->status) {
        s->status_code = pc_otlp_clamp_status(ps->status->code);
        PUSH(d, "status", -1);
        if (str_in(d, &s->status_message, ps->status->message, "message")) return -1;
        pc_otlp_pop(d);
    }
    if (attr_list_in(d, &s->attrs, ps->attributes, ps->n_attributes)) return -1;

    s->n_events = ps->n_events;
    s->events = ps->n_events ? pc_arena_calloc(d->a, ps->n_events * sizeof(pc_event)) : NULL;
    for (size_t i = 0; i < ps->n_events; i++) {
        const pb_event *e = ps->events[i];
        PUSH(d, "events", (long)i);
        if (time_in(d, &s->events[i].time_ns, e->time_unix_nano, "time_unix_nano") ||
            str_in(d, &s->events[i].name, e->name, "name") ||
            attr_list_in(d, &s->events[i].attrs, e->attributes, e->n_attributes))
            return -1;
        pc_otlp_pop(d);
    }

    s->n_links = ps->n_links;
    s->links = ps->n_links ? pc_arena_calloc(d->a, ps->n_links * sizeof(pc_link)) : NULL;
    for (size_t i = 0; i < ps->n_links; i++) {
        PUSH(d, "links", (long)i);
        int r = link_in(d, &s->links[i], ps->links[i]);
        if (r < 0) return -1;
        if (r > 0) {
            pc_otlp_drop_last_span(d);
            pc_otlp_pop(d);
            return 0;
        }
        pc_otlp_pop(d);
    }
    pc_otlp_check_span(d, s);
    return 0;
}

/* Converts one InstrumentationScope (NULL: none) into a scope shared by its spans. */
static int scope_in(pc_otlp_dec *d, const pc_scope **out,
                    const Opentelemetry__Proto__Common__V1__InstrumentationScope *ps)
{
    if (!ps) {
        *out = &pc_empty_scope;
        return 0;
    }
    pc_scope *sc = pc_arena_calloc(d->a, sizeof(*sc));
    PUSH(d, "scope", -1);
    if (str_in(d, &sc->name, ps->name, "name") || str_in(d, &sc->version, ps->version, "version") ||
        attr_list_in(d, &sc->attrs, ps->attributes, ps->n_attributes))
        return -1;
    pc_otlp_pop(d);
    *out = sc;
    return 0;
}

static int resource_spans_in(pc_otlp_dec *d, const pb_resource_spans *rs)
{
    const pc_attrs *resource = &pc_empty_attrs;
    if (rs->resource) {
        pc_attrs *ra = pc_arena_calloc(d->a, sizeof(*ra));
        PUSH(d, "resource", -1);
        if (attr_list_in(d, ra, rs->resource->attributes, rs->resource->n_attributes) ||
            pc_otlp_check_attrs(d, ra))
            return -1;
        pc_otlp_pop(d);
        resource = ra;
    }
    pc_str project = pc_otlp_project(d, resource);
    for (size_t j = 0; j < rs->n_scope_spans; j++) {
        const pb_scope_spans *ss = rs->scope_spans[j];
        const pc_scope *scope;
        PUSH(d, "scope_spans", (long)j);
        if (scope_in(d, &scope, ss->scope)) return -1;
        for (size_t k = 0; k < ss->n_spans; k++) {
            PUSH(d, "spans", (long)k);
            if (pc_otlp_count_span(d) || span_in(d, ss->spans[k], resource, scope, project))
                return -1;
            pc_otlp_pop(d);
        }
        pc_otlp_pop(d);
    }
    return 0;
}

int pc_otlp_decode_proto(pc_batch *b, const void *buf, size_t len, const char *project,
                         const char *default_project, const pc_span_limits *limits,
                         pc_otlp_result *res)
{
    pc_otlp_dec d;
    pc_otlp_dec_init(&d, b, project, default_project, res);
    d.limits = limits;
    size_t first = b->n;

    pb_request *req = (pb_request *)pc_otlp_unpack(
        &d, &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
        buf, len);
    if (!req) return -1;

    for (size_t i = 0; i < req->n_resource_spans; i++) {
        PUSH(&d, "resource_spans", (long)i);
        if (resource_spans_in(&d, req->resource_spans[i])) return -1;
        pc_otlp_pop(&d);
    }
    res->accepted = b->n - first;
    return 0;
}
