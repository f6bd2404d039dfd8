/*
 * otlp_json.c - ExportTraceServiceRequest in OTLP/JSON (otlp_json.h): the
 * reader into a pc_batch, then the writer of a list of spans.
 *
 * Reader: body text -> pc_json_parse (a pc_value tree in the batch's arena,
 * strings pointing into the body) -> pc_span per valid span.
 * Writer: the view of otlp_prela.h (built in a scratch arena, destroyed
 * before it returns) -> JSON appended to the caller's pc_buf.
 *
 * The OTLP JSON mapping is proto3 JSON with two twists: ids are hex, not base64,
 * and field names are lowerCamelCase. Clients get both wrong in practice, so
 * every field is matched by either name (traceId / trace_id), 64-bit integers
 * come as strings or numbers, enums as numbers or names, and an id that is not
 * hex of the right length but decodes as base64 to the right length is taken.
 * Unknown fields are ignored, as the spec asks of receivers; a known field with
 * the wrong JSON type fails the request with its path, using the keys the
 * client sent ("resourceSpans[0].scopeSpans[0].spans[1].kind: ...").
 *
 * Recursion (nested arrayValue / kvlistValue) is bounded by the parser's
 * PC_JSON_MAX_DEPTH.
 */
#include "formats/otlp_json.h"

#include "formats/otlp_prela.h"
#include "json.h"
#include "mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- members */

static bool key_is(pc_str k, const char *camel, const char *snake)
{
    return pc_str_eq(k, camel) || pc_str_eq(k, snake);
}

/* Returns the first member of object |o| named |camel| or |snake|, or NULL. */
static const pc_kv *member(const pc_value *o, const char *camel, const char *snake)
{
    for (size_t i = 0; i < o->map.n; i++)
        if (key_is(o->map.kv[i].key, camel, snake)) return &o->map.kv[i];
    return NULL;
}

/* Fails the request at member |kv| with the fixed message |what|. */
static int kv_fail(pc_otlp_dec *d, const pc_kv *kv, const char *what)
{
    pc_otlp_push(d, kv->key.p, kv->key.n, -1);
    return pc_otlp_fail(d, NULL, "%s", what);
}

static bool is_null(const pc_kv *kv)
{
    return !kv || kv->value.type == PC_V_NULL;
}

/* ---------------------------------------------------------------- scalars */

static int get_str(pc_otlp_dec *d, const pc_kv *kv, pc_str *out)
{
    if (is_null(kv)) {
        *out = PC_STR_LIT("");
        return 0;
    }
    if (kv->value.type != PC_V_STR) return kv_fail(d, kv, "expected a string");
    *out = kv->value.s;
    return 0;
}

/* Parses a decimal integer string into [min, max]. 0, or -1 when it is not one. */
static int parse_int(pc_str s, int64_t min, uint64_t max, int64_t *out)
{
    size_t i = 0;
    bool neg = s.n > 0 && s.p[0] == '-';
    if (neg) i++;
    if (i == s.n) return -1;
    uint64_t v = 0;
    for (; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return -1;
        unsigned digit = (unsigned)(s.p[i] - '0');
        if (v > (UINT64_MAX - digit) / 10) return -1;
        v = v * 10 + digit;
    }
    if (neg) {
        if (min >= 0 ? v != 0 : v > (uint64_t)INT64_MAX + 1) return -1;
        *out = v ? (int64_t)(0 - v) : 0;
        return 0;
    }
    if (v > max) return -1;
    *out = (int64_t)v;
    return 0;
}

/* An integer in [min, max] given as a JSON number or a decimal string. */
static int get_int(pc_otlp_dec *d, const pc_kv *kv, int64_t min, uint64_t max, int64_t *out)
{
    const pc_value *v = &kv->value;
    switch (v->type) {
    case PC_V_INT:
        if (v->i < min || (v->i > 0 && (uint64_t)v->i > max)) break;
        *out = v->i;
        return 0;
    case PC_V_DOUBLE:
        /* Large integers from JavaScript clients arrive as doubles. */
        if (v->d != floor(v->d)) return kv_fail(d, kv, "expected an integer");
        if (v->d < (double)min || v->d >= 9223372036854775807.0 || v->d > (double)max) break;
        *out = (int64_t)v->d;
        return 0;
    case PC_V_STR:
        if (parse_int(v->s, min, max, out) == 0) return 0;
        break;
    default:
        return kv_fail(d, kv, "expected an integer (number or decimal string)");
    }
    return kv_fail(d, kv, "integer out of range");
}

/* A Unix-nanosecond time (fixed64); int64 ns inside, which lasts until 2262. */
static int get_time(pc_otlp_dec *d, const pc_kv *kv, int64_t *out)
{
    if (is_null(kv)) {
        *out = 0;
        return 0;
    }
    return get_int(d, kv, 0, INT64_MAX, out);
}

static int get_double(pc_otlp_dec *d, const pc_kv *kv, double *out)
{
    const pc_value *v = &kv->value;
    if (v->type == PC_V_DOUBLE) {
        *out = v->d;
        return 0;
    }
    if (v->type == PC_V_INT) {
        *out = (double)v->i;
        return 0;
    }
    if (v->type == PC_V_STR) { /* proto3 JSON: "NaN", "Infinity", "1.5" */
        if (pc_str_eq(v->s, "NaN"))
            *out = NAN;
        else if (pc_str_eq(v->s, "Infinity"))
            *out = INFINITY;
        else if (pc_str_eq(v->s, "-Infinity"))
            *out = -INFINITY;
        else {
            char *s = pc_str_dup(d->a, v->s), *end;
            *out = strtod(s, &end);
            if (!v->s.n || *end || !isfinite(*out)) return kv_fail(d, kv, "expected a number");
        }
        return 0;
    }
    return kv_fail(d, kv, "expected a number");
}

/* An enum as its number or its name (|names|[i] is value i). */
static int get_enum(pc_otlp_dec *d, const pc_kv *kv, const char *const *names, size_t n,
                    int64_t *out)
{
    if (kv->value.type == PC_V_STR) {
        for (size_t i = 0; i < n; i++) {
            if (pc_str_eq(kv->value.s, names[i])) {
                *out = (int64_t)i;
                return 0;
            }
        }
        if (parse_int(kv->value.s, INT32_MIN, INT32_MAX, out) == 0) return 0;
        return kv_fail(d, kv, "unknown enum name");
    }
    if (kv->value.type != PC_V_INT && kv->value.type != PC_V_DOUBLE)
        return kv_fail(d, kv, "expected an enum name or number");
    return get_int(d, kv, INT32_MIN, INT32_MAX, out);
}

static const char *const kind_names[] = {
    "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",      "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER",
};

static const char *const status_names[] = {
    "STATUS_CODE_UNSET",
    "STATUS_CODE_OK",
    "STATUS_CODE_ERROR",
};

/* ---------------------------------------------------------------- bytes and ids */

/*
 * Reads the id member |kv| (NULL when absent: empty) of |want| bytes into |out|
 * as lowercase hex. Returns 0, 1 when the id rejects the span (counted), or -1
 * when it is not a string (the request fails). |name| labels an absent id.
 */
static int get_id(pc_otlp_dec *d, const pc_kv *kv, size_t want, bool optional, pc_str *out,
                  const char *name)
{
    uint8_t raw[16];
    long n = 0;
    pc_str key = kv ? kv->key : (pc_str){name, strlen(name)};
    if (!is_null(kv)) {
        if (kv->value.type != PC_V_STR) return kv_fail(d, kv, "expected a hex string");
        pc_str s = kv->value.s;
        if (pc_otlp_hex_decode(s, raw, want)) n = (long)want;
        else if (s.n > 0) n = pc_otlp_b64_decode(s, raw, sizeof(raw));
        if (n != (long)want && s.n > 0) {
            pc_otlp_push(d, key.p, key.n, -1);
            pc_otlp_reject(d, NULL, "must be %zu hex digits", 2 * want);
            pc_otlp_pop(d);
            return 1;
        }
    }
    pc_otlp_push(d, key.p, key.n, -1);
    int r = pc_otlp_id(d, out, raw, (size_t)n, want, optional, NULL);
    pc_otlp_pop(d);
    return r ? 1 : 0;
}

/* ---------------------------------------------------------------- containers */

/* The elements of array member |kv| (null or absent: none). */
static int get_array(pc_otlp_dec *d, const pc_kv *kv, const pc_value **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (is_null(kv)) return 0;
    if (kv->value.type != PC_V_ARRAY) return kv_fail(d, kv, "expected an array");
    *items = kv->value.arr.v;
    *n = kv->value.arr.n;
    return 0;
}

/* Object member |kv|: *obj NULL when null or absent. */
static int get_object(pc_otlp_dec *d, const pc_kv *kv, const pc_value **obj)
{
    *obj = NULL;
    if (is_null(kv)) return 0;
    if (kv->value.type != PC_V_MAP) return kv_fail(d, kv, "expected an object");
    *obj = &kv->value;
    return 0;
}

static int kvs_in(pc_otlp_dec *d, pc_kv **out, size_t *out_n, const pc_kv *list,
                  uint32_t *dropped);

/* An AnyValue object ({"stringValue": ...}); null or {} is the empty value. */
static int value_in(pc_otlp_dec *d, pc_value *out, const pc_value *v)
{
    memset(out, 0, sizeof(*out));
    if (!v || v->type == PC_V_NULL) return 0;
    if (v->type != PC_V_MAP) return pc_otlp_fail(d, NULL, "expected an AnyValue object");
    for (size_t i = 0; i < v->map.n; i++) {
        const pc_kv *kv = &v->map.kv[i];
        pc_str k = kv->key;
        if (is_null(kv)) continue;
        if (key_is(k, "stringValue", "string_value")) {
            out->type = PC_V_STR;
            if (get_str(d, kv, &out->s)) return -1;
        } else if (key_is(k, "boolValue", "bool_value")) {
            if (kv->value.type != PC_V_BOOL) return kv_fail(d, kv, "expected true or false");
            out->type = PC_V_BOOL;
            out->b = kv->value.b;
        } else if (key_is(k, "intValue", "int_value")) {
            out->type = PC_V_INT;
            if (get_int(d, kv, INT64_MIN, INT64_MAX, &out->i)) return -1;
        } else if (key_is(k, "doubleValue", "double_value")) {
            out->type = PC_V_DOUBLE;
            if (get_double(d, kv, &out->d)) return -1;
        } else if (key_is(k, "bytesValue", "bytes_value")) {
            if (kv->value.type != PC_V_STR) return kv_fail(d, kv, "expected a base64 string");
            size_t cap = kv->value.s.n / 4 * 3 + 3;
            uint8_t *buf = pc_arena_alloc(d->a, cap);
            long n = pc_otlp_b64_decode(kv->value.s, buf, cap);
            if (n < 0) return kv_fail(d, kv, "invalid base64");
            out->type = PC_V_BYTES;
            out->s = (pc_str){(const char *)buf, (size_t)n};
        } else if (key_is(k, "arrayValue", "array_value")) {
            const pc_value *items;
            size_t n;
            if (kv->value.type != PC_V_MAP) return kv_fail(d, kv, "expected an object");
            pc_otlp_push(d, k.p, k.n, -1);
            const pc_kv *values = member(&kv->value, "values", "values");
            if (get_array(d, values, &items, &n)) return -1;
            out->type = PC_V_ARRAY;
            out->arr.n = n;
            out->arr.v = n ? pc_arena_alloc(d->a, n * sizeof(pc_value)) : NULL;
            for (size_t j = 0; j < n; j++) {
                pc_otlp_push(d, values->key.p, values->key.n, (long)j);
                if (value_in(d, &out->arr.v[j], &items[j])) return -1;
                pc_otlp_pop(d);
            }
            pc_otlp_pop(d);
        } else if (key_is(k, "kvlistValue", "kvlist_value")) {
            if (kv->value.type != PC_V_MAP) return kv_fail(d, kv, "expected an object");
            pc_otlp_push(d, k.p, k.n, -1);
            out->type = PC_V_MAP;
            if (kvs_in(d, &out->map.kv, &out->map.n, member(&kv->value, "values", "values"), NULL))
                return -1;
            pc_otlp_pop(d);
        }
    }
    return 0;
}

/* A list of KeyValue objects (attributes, kvlist values) in member |list|. With
 * |dropped| (attributes, not kvlist entries) a KeyValue with an empty key is checked,
 * left out and counted there, as the protobuf reader does (otlp_proto_decode.c). */
static int kvs_in(pc_otlp_dec *d, pc_kv **out, size_t *out_n, const pc_kv *list,
                  uint32_t *dropped)
{
    const pc_value *items;
    size_t n, kept = 0;
    if (get_array(d, list, &items, &n)) return -1;
    pc_kv *arr = n ? pc_arena_alloc(d->a, n * sizeof(pc_kv)) : NULL;
    for (size_t i = 0; i < n; i++) {
        pc_otlp_push(d, list->key.p, list->key.n, (long)i);
        if (items[i].type != PC_V_MAP) return pc_otlp_fail(d, NULL, "expected a KeyValue object");
        const pc_kv *value = member(&items[i], "value", "value");
        if (get_str(d, member(&items[i], "key", "key"), &arr[kept].key)) return -1;
        if (value) pc_otlp_push(d, value->key.p, value->key.n, -1);
        if (value_in(d, &arr[kept].value, value ? &value->value : NULL)) return -1;
        if (value) pc_otlp_pop(d);
        pc_otlp_pop(d);
        if (dropped && arr[kept].key.n == 0)
            pc_otlp_add_dropped(dropped, 1);
        else
            kept++;
    }
    *out = arr;
    *out_n = kept;
    return 0;
}

/* Adds the sender's droppedAttributesCount |kv| (NULL: none) to |*count|, saturating. */
static int dropped_in(pc_otlp_dec *d, const pc_kv *kv, uint32_t *count)
{
    int64_t v = 0;
    if (is_null(kv)) return 0;
    if (get_int(d, kv, 0, UINT32_MAX, &v)) return -1;
    pc_otlp_add_dropped(count, (uint64_t)v);
    return 0;
}

/* The "attributes" member of object |o| (NULL: none); empty keys and the sender's
 * droppedAttributesCount are counted in |dropped|. */
static int attributes_in(pc_otlp_dec *d, pc_attrs *out, const pc_value *o, uint32_t *dropped)
{
    out->kv = NULL;
    out->n = 0;
    if (!o) return 0;
    if (dropped_in(d, member(o, "droppedAttributesCount", "dropped_attributes_count"), dropped))
        return -1;
    return kvs_in(d, &out->kv, &out->n, member(o, "attributes", "attributes"), dropped);
}

/* ---------------------------------------------------------------- spans */

static int event_in(pc_otlp_dec *d, pc_event *e, const pc_value *o)
{
    if (o->type != PC_V_MAP) return pc_otlp_fail(d, NULL, "expected an object");
    if (get_time(d, member(o, "timeUnixNano", "time_unix_nano"), &e->time_ns) ||
        get_str(d, member(o, "name", "name"), &e->name))
        return -1;
    return attributes_in(d, &e->attrs, o, &e->dropped_attributes_count);
}

/* 0 when the link is usable, 1 when its ids reject the span, -1 on a bad request. */
static int link_in(pc_otlp_dec *d, pc_link *l, const pc_value *o)
{
    if (o->type != PC_V_MAP) return pc_otlp_fail(d, NULL, "expected an object");
    int r = get_id(d, member(o, "traceId", "trace_id"), 16, false, &l->trace_id, "traceId");
    if (r == 0) r = get_id(d, member(o, "spanId", "span_id"), 8, false, &l->span_id, "spanId");
    if (r) return r;
    if (get_str(d, member(o, "traceState", "trace_state"), &l->trace_state)) return -1;
    return attributes_in(d, &l->attrs, o, &l->dropped_attributes_count);
}

static int status_in(pc_otlp_dec *d, pc_span *s, const pc_kv *kv)
{
    const pc_value *o;
    if (get_object(d, kv, &o)) return -1;
    if (!o) return 0;
    pc_otlp_push(d, kv->key.p, kv->key.n, -1);
    const pc_kv *code = member(o, "code", "code");
    int64_t c = 0;
    if (!is_null(code) && get_enum(d, code, status_names, 3, &c)) return -1;
    s->status_code = pc_otlp_clamp_status(c);
    if (get_str(d, member(o, "message", "message"), &s->status_message)) return -1;
    pc_otlp_pop(d);
    return 0;
}

/* Reads the array member |kv| of objects into an arena array via |fn|. */
static int span_list_in(pc_otlp_dec *d, const pc_kv *kv, void **out, size_t *out_n, size_t size,
                        int (*fn)(pc_otlp_dec *, void *, const pc_value *))
{
    const pc_value *items;
    size_t n;
    if (get_array(d, kv, &items, &n)) return -1;
    char *arr = n ? pc_arena_calloc(d->a, n * size) : NULL;
    for (size_t i = 0; i < n; i++) {
        pc_otlp_push(d, kv->key.p, kv->key.n, (long)i);
        int r = fn(d, arr + i * size, &items[i]);
        pc_otlp_pop(d);
        if (r) return r;
    }
    *out = arr;
    *out_n = n;
    return 0;
}

static int event_fn(pc_otlp_dec *d, void *e, const pc_value *o)
{
    return event_in(d, e, o);
}

static int link_fn(pc_otlp_dec *d, void *l, const pc_value *o)
{
    return link_in(d, l, o);
}

/* Adds span object |o| to the batch, or rejects it. 0, or -1 when the request is invalid. */
static int span_in(pc_otlp_dec *d, const pc_value *o, const pc_attrs *resource,
                   const pc_scope *scope, pc_str project)
{
    if (o->type != PC_V_MAP) return pc_otlp_fail(d, NULL, "expected an object");
    pc_str tid, sid, pid;
    int r = get_id(d, member(o, "traceId", "trace_id"), 16, false, &tid, "traceId");
    if (r == 0) r = get_id(d, member(o, "spanId", "span_id"), 8, false, &sid, "spanId");
    if (r == 0)
        r = get_id(d, member(o, "parentSpanId", "parent_span_id"), 8, true, &pid, "parentSpanId");
    if (r) return r < 0 ? -1 : 0;

    pc_span *s = pc_otlp_add_span(d, resource, scope, project);
    s->trace_id = tid;
    s->span_id = sid;
    s->parent_id = pid;
    for (size_t i = 0; i < o->map.n; i++) {
        const pc_kv *kv = &o->map.kv[i];
        pc_str k = kv->key;
        int64_t v;
        r = 0;
        if (key_is(k, "name", "name"))
            r = get_str(d, kv, &s->name);
        else if (key_is(k, "traceState", "trace_state"))
            r = get_str(d, kv, &s->trace_state);
        else if (key_is(k, "startTimeUnixNano", "start_time_unix_nano"))
            r = get_time(d, kv, &s->start_ns);
        else if (key_is(k, "endTimeUnixNano", "end_time_unix_nano"))
            r = get_time(d, kv, &s->end_ns);
        else if (key_is(k, "kind", "kind") && !is_null(kv)) {
            r = get_enum(d, kv, kind_names, 6, &v);
            s->kind = pc_otlp_clamp_kind(v);
        } else if (key_is(k, "flags", "flags") && !is_null(kv)) {
            r = get_int(d, kv, 0, UINT32_MAX, &v);
            s->flags = (uint32_t)v;
        } else if (key_is(k, "status", "status"))
            r = status_in(d, s, kv);
        else if (key_is(k, "attributes", "attributes"))
            r = kvs_in(d, &s->attrs.kv, &s->attrs.n, kv, &s->dropped_attributes_count);
        else if (key_is(k, "droppedAttributesCount", "dropped_attributes_count"))
            r = dropped_in(d, kv, &s->dropped_attributes_count);
        else if (key_is(k, "events", "events"))
            r = span_list_in(d, kv, (void **)&s->events, &s->n_events, sizeof(pc_event), event_fn);
        else if (key_is(k, "links", "links")) {
            r = span_list_in(d, kv, (void **)&s->links, &s->n_links, sizeof(pc_link), link_fn);
            if (r > 0) { /* a link's ids rejected the span */
                pc_otlp_drop_last_span(d);
                return 0;
            }
        }
        if (r) return -1;
    }
    char nul[96]; /* see pc_span_find_nul: the storage side could not get it back */
    if (pc_span_find_nul(s, nul, sizeof(nul)))
        return pc_otlp_fail(d, nul, "U+0000 in a string is not supported");
    pc_otlp_check_span(d, s);
    return 0;
}

/* ---------------------------------------------------------------- envelope */

/* A scope object (NULL: none) into a scope shared by its spans. */
static int scope_in(pc_otlp_dec *d, const pc_scope **out, const pc_kv *kv)
{
    const pc_value *o;
    if (get_object(d, kv, &o)) return -1;
    if (!o) {
        *out = &pc_empty_scope;
        return 0;
    }
    pc_scope *sc = pc_arena_calloc(d->a, sizeof(*sc));
    pc_otlp_push(d, kv->key.p, kv->key.n, -1);
    if (get_str(d, member(o, "name", "name"), &sc->name) ||
        get_str(d, member(o, "version", "version"), &sc->version) ||
        attributes_in(d, &sc->attrs, o, &sc->dropped_attributes_count))
        return -1;
    pc_otlp_pop(d);
    *out = sc;
    return 0;
}

static int resource_spans_in(pc_otlp_dec *d, const pc_value *rs)
{
    if (rs->type != PC_V_MAP) return pc_otlp_fail(d, NULL, "expected an object");
    const pc_attrs *resource = &pc_empty_attrs;
    const pc_kv *res_kv = member(rs, "resource", "resource");
    const pc_value *res_obj;
    if (get_object(d, res_kv, &res_obj)) return -1;
    if (res_obj) {
        pc_attrs *ra = pc_arena_calloc(d->a, sizeof(*ra));
        pc_otlp_push(d, res_kv->key.p, res_kv->key.n, -1);
        uint32_t dropped = 0; /* the model keeps no count for a resource */
        if (attributes_in(d, ra, res_obj, &dropped) || pc_otlp_check_attrs(d, ra)) return -1;
        pc_otlp_pop(d);
        resource = ra;
    }
    pc_str project = pc_otlp_project(d, resource);

    const pc_kv *ss_kv = member(rs, "scopeSpans", "scope_spans");
    const pc_value *scopes;
    size_t n_scopes;
    if (get_array(d, ss_kv, &scopes, &n_scopes)) return -1;
    for (size_t j = 0; j < n_scopes; j++) {
        const pc_value *ss = &scopes[j];
        pc_otlp_push(d, ss_kv->key.p, ss_kv->key.n, (long)j);
        if (ss->type != PC_V_MAP) return pc_otlp_fail(d, NULL, "expected an object");
        const pc_scope *scope;
        if (scope_in(d, &scope, member(ss, "scope", "scope"))) return -1;
        const pc_kv *spans_kv = member(ss, "spans", "spans");
        const pc_value *spans;
        size_t n_spans;
        if (get_array(d, spans_kv, &spans, &n_spans)) return -1;
        for (size_t k = 0; k < n_spans; k++) {
            pc_otlp_push(d, spans_kv->key.p, spans_kv->key.n, (long)k);
            if (pc_otlp_count_span(d) || span_in(d, &spans[k], resource, scope, project)) return -1;
            pc_otlp_pop(d);
        }
        pc_otlp_pop(d);
    }
    return 0;
}

int pc_otlp_json_decode(pc_batch *b, const char *text, size_t len, const char *project,
                        const char *default_project, const pc_span_limits *limits,
                        pc_otlp_result *res)
{
    pc_otlp_dec d;
    pc_otlp_dec_init(&d, b, project, default_project, res);
    d.limits = limits;
    size_t first = b->n;

    pc_value root;
    pc_json_error err;
    if (pc_json_parse(b->arena, text, len, &root, &err))
        return pc_otlp_fail(&d, NULL, "invalid JSON: %s", err.msg);
    if (root.type != PC_V_MAP)
        return pc_otlp_fail(&d, NULL, "expected a JSON object (ExportTraceServiceRequest)");

    const pc_kv *rs_kv = member(&root, "resourceSpans", "resource_spans");
    const pc_value *items;
    size_t n;
    if (get_array(&d, rs_kv, &items, &n)) return -1;
    for (size_t i = 0; i < n; i++) {
        pc_otlp_push(&d, rs_kv->key.p, rs_kv->key.n, (long)i);
        if (resource_spans_in(&d, &items[i])) return -1;
        pc_otlp_pop(&d);
    }
    res->accepted = b->n - first;
    return 0;
}

/* -------------------------------------------------------------- writer -- */

/* The writer: the view of otlp_prela.h written by hand as OTLP/JSON, in the
 * field order of the protobuf writer. */

static void str_val(pc_buf *b, pc_str s)
{
    pc_json_write_str(b, s.p ? s.p : "", s.n);
}

static void jkv_list(pc_buf *b, const pc_kv *kv, size_t n, const pc_kv *extra, size_t n_extra);

static void jany(pc_buf *b, const pc_value *v)
{
    switch (v->type) {
    case PC_V_STR:
        pc_buf_puts(b, "{\"stringValue\":");
        str_val(b, v->s);
        break;
    case PC_V_BOOL:
        pc_buf_puts(b, v->b ? "{\"boolValue\":true" : "{\"boolValue\":false");
        break;
    case PC_V_INT:
        pc_buf_printf(b, "{\"intValue\":\"%lld\"", (long long)v->i);
        break;
    case PC_V_DOUBLE:
        pc_buf_puts(b, "{\"doubleValue\":");
        pc_json_write_double(b, v->d);
        break;
    case PC_V_BYTES:
        pc_buf_puts(b, "{\"bytesValue\":");
        pc_json_write_base64(b, (const unsigned char *)v->s.p, v->s.n);
        break;
    case PC_V_ARRAY:
        pc_buf_puts(b, "{\"arrayValue\":{\"values\":[");
        for (size_t i = 0; i < v->arr.n; i++) {
            if (i) pc_buf_putc(b, ',');
            jany(b, &v->arr.v[i]);
        }
        pc_buf_puts(b, "]}");
        break;
    case PC_V_MAP:
        pc_buf_puts(b, "{\"kvlistValue\":{\"values\":");
        jkv_list(b, v->map.kv, v->map.n, NULL, 0);
        pc_buf_putc(b, '}');
        break;
    default:
        pc_buf_putc(b, '{'); /* null: an empty AnyValue */
    }
    pc_buf_putc(b, '}');
}

/* As kvs_pb: with |extra|, the reserved keys among the |n| are escaped. */
static void jkv_list(pc_buf *b, const pc_kv *kv, size_t n, const pc_kv *extra, size_t n_extra)
{
    pc_buf_putc(b, '[');
    for (size_t i = 0; i < n + n_extra; i++) {
        const pc_kv *k = i < n ? &kv[i] : &extra[i - n];
        pc_buf_puts(b, i ? ",{\"key\":" : "{\"key\":");
        if (extra && i < n && pc_otlp_prela_escaped(k->key)) {
            pc_buf key = PC_BUF_INIT;
            pc_buf_puts(&key, PC_OTLP_PRELA_ESCAPE);
            pc_buf_append(&key, k->key.p, k->key.n);
            pc_json_write_str(b, key.data, key.len);
            pc_buf_free(&key);
        } else {
            str_val(b, k->key);
        }
        pc_buf_puts(b, ",\"value\":");
        jany(b, &k->value);
        pc_buf_putc(b, '}');
    }
    pc_buf_putc(b, ']');
}

/* Writes ,"name":[attributes] unless there are none. */
static void jattrs(pc_buf *b, const pc_kv *kv, size_t n, const pc_kv *extra, size_t n_extra)
{
    if (n + n_extra == 0) return;
    pc_buf_puts(b, ",\"attributes\":");
    jkv_list(b, kv, n, extra, n_extra);
}

static void jhex(pc_buf *b, const char *k, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    pc_buf_printf(b, ",\"%s\":\"", k);
    for (size_t i = 0; i < n; i++) {
        pc_buf_putc(b, hex[p[i] >> 4]);
        pc_buf_putc(b, hex[p[i] & 15]);
    }
    pc_buf_putc(b, '"');
}

/* Writes ,"k":"v" unless |v| is empty. */
static void jstr(pc_buf *b, const char *k, pc_str v)
{
    if (!v.n) return;
    pc_buf_printf(b, ",\"%s\":", k);
    str_val(b, v);
}

static void jspan(pc_buf *b, const pc_span *s)
{
    pc_otlp_span_ext o;
    pc_otlp_span_ext_fill(s, &o);
    pc_buf_puts(b, "{\"name\":");
    str_val(b, s->name);
    jhex(b, "traceId", o.tid, 16);
    jhex(b, "spanId", o.sid, 8);
    if (o.pid_n) jhex(b, "parentSpanId", o.pid, 8);
    jstr(b, "traceState", s->trace_state);
    if (s->flags) pc_buf_printf(b, ",\"flags\":%u", (unsigned)s->flags);
    if (s->kind) pc_buf_printf(b, ",\"kind\":%d", s->kind);
    pc_buf_printf(b, ",\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\"",
                  (unsigned long long)pc_otlp_unix_ns(s->start_ns), (unsigned long long)pc_otlp_unix_ns(s->end_ns));
    jattrs(b, s->attrs.kv, s->attrs.n, o.extra, o.n_extra);
    if (s->n_events) pc_buf_puts(b, ",\"events\":[");
    for (size_t i = 0; i < s->n_events; i++) {
        const pc_event *e = &s->events[i];
        pc_buf_printf(b, "%s{\"timeUnixNano\":\"%llu\"", i ? "," : "",
                      (unsigned long long)pc_otlp_unix_ns(e->time_ns));
        jstr(b, "name", e->name);
        jattrs(b, e->attrs.kv, e->attrs.n, NULL, 0);
        pc_buf_putc(b, '}');
    }
    if (s->n_events) pc_buf_putc(b, ']');
    if (s->n_links) pc_buf_puts(b, ",\"links\":[");
    for (size_t i = 0; i < s->n_links; i++) {
        const pc_link *l = &s->links[i];
        uint8_t tid[16], sid[8];
        pc_otlp_id_bytes(l->trace_id, tid, 16);
        pc_otlp_id_bytes(l->span_id, sid, 8);
        pc_buf_puts(b, i ? ",{\"traceState\":" : "{\"traceState\":");
        str_val(b, l->trace_state);
        jhex(b, "traceId", tid, 16);
        jhex(b, "spanId", sid, 8);
        jattrs(b, l->attrs.kv, l->attrs.n, NULL, 0);
        pc_buf_putc(b, '}');
    }
    if (s->n_links) pc_buf_putc(b, ']');
    pc_buf_puts(b, ",\"status\":{");
    if (s->status_message.n) {
        pc_buf_puts(b, "\"message\":");
        str_val(b, s->status_message);
    }
    if (o.status_code)
        pc_buf_printf(b, "%s\"code\":%d", s->status_message.n ? "," : "", o.status_code);
    pc_buf_puts(b, "}}");
}

static void jscope_spans(pc_buf *b, const pc_otlp_view_scope *sc, bool first)
{
    pc_buf_puts(b, first ? "{\"scope\":{\"name\":" : ",{\"scope\":{\"name\":");
    str_val(b, sc->scope->name);
    jstr(b, "version", sc->scope->version);
    jattrs(b, sc->scope->attrs.kv, sc->scope->attrs.n, NULL, 0);
    pc_buf_puts(b, "},\"spans\":[");
    for (size_t i = 0; i < sc->n; i++) {
        if (i) pc_buf_putc(b, ',');
        jspan(b, sc->spans[i]);
    }
    pc_buf_puts(b, "]}");
}

void pc_otlp_json_encode(pc_buf *out, const pc_span *const *spans, size_t n)
{
    pc_otlp_view v = {.a = pc_arena_create(4096)};
    pc_otlp_view_build(&v, spans, n);
    pc_buf_puts(out, "{\"resourceSpans\":[");
    for (size_t r = 0; r < v.n_res; r++) {
        pc_buf_puts(out, r ? ",{\"resource\":{\"attributes\":" : "{\"resource\":{\"attributes\":");
        jkv_list(out, v.res[r].attrs.kv, v.res[r].attrs.n, NULL, 0);
        pc_buf_puts(out, "},\"scopeSpans\":[");
        bool first = true;
        for (size_t k = 0; k < v.n_sc; k++) {
            if (v.sc[k].res != r) continue;
            jscope_spans(out, &v.sc[k], first);
            first = false;
        }
        pc_buf_puts(out, "]}");
    }
    pc_buf_puts(out, "]}");
    pc_arena_destroy(v.a);
}
