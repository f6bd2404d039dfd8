/*
 * kafka_encode.c - the `kafka` exporter's message encoders (formats specified
 * in kafka_encode.h).
 *
 * Data flow: kafka.c groups a batch by trace (pc_batch_group_traces, span.h) and calls
 * one encoder per message. The prela_json encoders write JSON straight into
 * the pc_buf with json.h and span.h's model encoders. The OTLP encoders first
 * build a view (resource and scope groups, with the extra attributes the format
 * promises) in a scratch arena, then either fill protobuf-c structs in that
 * arena and pack them, or write OTLP/JSON by hand from the same view.
 *
 * Memory: everything an encoder allocates lives in its scratch arena, which is
 * destroyed before it returns; output goes only to the caller's pc_buf.
 */
#include "kafka_encode.h"

#include "json.h"
#include "mem.h"
#include "timefmt.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest pb_request;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans pb_resource_spans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans pb_scope_spans;
typedef Opentelemetry__Proto__Trace__V1__Span pb_span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event pb_event;
typedef Opentelemetry__Proto__Trace__V1__Span__Link pb_link;
typedef Opentelemetry__Proto__Trace__V1__Status pb_status;
typedef Opentelemetry__Proto__Resource__V1__Resource pb_resource;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope pb_scope;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any;
typedef Opentelemetry__Proto__Common__V1__ArrayValue pb_array;
typedef Opentelemetry__Proto__Common__V1__KeyValueList pb_kvlist;

static bool str_equal(pc_str a, pc_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static uint64_t fnv1a64(pc_str s, uint64_t h)
{
    for (size_t i = 0; i < s.n; i++)
        h = (h ^ (unsigned char)s.p[i]) * 1099511628211ull;
    return h;
}

/* ------------------------------------------------------------ prela_json -- */

static const char *const kind_names[] = {"unspecified", "internal", "server",
                                         "client",      "producer", "consumer"};

/* Writes ,"k": in one append: |k| is a literal of plain ASCII, nothing to escape. */
#define KEY(b, k) pc_buf_lit((b), ",\"" k "\":")

static void str_val(pc_buf *b, pc_str s)
{
    pc_json_write_str(b, s.p ? s.p : "", s.n);
}

static void str_or_null(pc_buf *b, pc_str s)
{
    if (s.n)
        pc_json_write_str(b, s.p, s.n);
    else
        pc_buf_lit(b, "null");
}

static void int_or_null(pc_buf *b, int64_t v)
{
    if (v >= 0)
        pc_json_write_int(b, v);
    else
        pc_buf_lit(b, "null");
}

void pc_kafka_span_json(pc_buf *b, const pc_span *s, int64_t received_ns)
{
    pc_buf_lit(b, "{\"trace_id\":");
    str_val(b, s->trace_id);
    KEY(b, "span_id");
    str_val(b, s->span_id);
    KEY(b, "parent_span_id");
    str_or_null(b, s->parent_id);
    KEY(b, "trace_state");
    str_val(b, s->trace_state);
    KEY(b, "name");
    str_val(b, s->name);
    KEY(b, "kind");
    pc_json_write_cstr(b, s->kind >= 0 && s->kind <= 5 ? kind_names[s->kind] : "unspecified");
    KEY(b, "span_type");
    pc_json_write_cstr(b, pc_span_type_name(s->span_type));
    KEY(b, "service_name");
    str_val(b, s->service_name);
    KEY(b, "project_id");
    str_val(b, s->project_id);
    KEY(b, "source");
    pc_json_write_cstr(b, pc_source_name(s->source));
    KEY(b, "start_time_unix_nano");
    pc_json_write_int(b, s->start_ns);
    KEY(b, "end_time_unix_nano");
    pc_json_write_int(b, s->end_ns > 0 ? s->end_ns : 0);
    KEY(b, "started_at");
    pc_json_write_time(b, s->start_ns);
    KEY(b, "ended_at");
    if (s->end_ns > 0)
        pc_json_write_time(b, s->end_ns);
    else
        pc_buf_lit(b, "null");
    KEY(b, "duration_ms");
    if (s->end_ns > 0)
        pc_json_write_ms(b, s->end_ns, s->start_ns);
    else
        pc_buf_lit(b, "0.0");
    KEY(b, "status");
    pc_json_write_cstr(b, pc_status_name(s->status));
    KEY(b, "status_code");
    pc_json_write_int(b, s->status_code);
    KEY(b, "status_message");
    str_val(b, s->status_message);
    KEY(b, "flags");
    pc_json_write_int(b, s->flags);
    KEY(b, "attributes");
    pc_attrs_write_json(b, &s->attrs);
    KEY(b, "events");
    pc_events_write_json(b, s->events, s->n_events);
    KEY(b, "links");
    pc_links_write_json(b, s->links, s->n_links);
    KEY(b, "resource");
    pc_attrs_write_json(b, s->resource ? s->resource : &pc_empty_attrs);
    KEY(b, "scope");
    pc_scope_write_json(b, s->scope ? s->scope : &pc_empty_scope);
    KEY(b, "llm_provider");
    str_or_null(b, s->llm_provider);
    KEY(b, "llm_model");
    str_or_null(b, s->llm_model);
    KEY(b, "input_tokens");
    int_or_null(b, s->input_tokens);
    KEY(b, "output_tokens");
    int_or_null(b, s->output_tokens);
    KEY(b, "received_time_unix_nano");
    pc_json_write_int(b, received_ns);
    pc_buf_putc(b, '}');
}

void pc_kafka_trace_json(pc_buf *b, const pc_span *const *spans, size_t n, int64_t received_ns)
{
    const pc_span *f = spans[0], *root = NULL;
    int64_t started = INT64_MAX, completed = INT64_MIN, in = 0, out = 0;
    bool error = false, pending = false;
    for (size_t i = 0; i < n; i++) {
        const pc_span *s = spans[i];
        int64_t end = s->end_ns > 0 ? s->end_ns : s->start_ns;
        if (s->start_ns < started) started = s->start_ns;
        if (end > completed) completed = end;
        if (!root && s->parent_id.n == 0) root = s;
        error |= s->status == PC_STATUS_ERROR;
        pending |= s->status == PC_STATUS_PENDING;
        if (s->input_tokens > 0) in += s->input_tokens;
        if (s->output_tokens > 0) out += s->output_tokens;
    }
    pc_buf_lit(b, "{\"trace_id\":");
    str_val(b, f->trace_id);
    KEY(b, "project_id");
    str_val(b, f->project_id);
    KEY(b, "service_name");
    str_val(b, root ? root->service_name : f->service_name);
    KEY(b, "source");
    pc_json_write_cstr(b, pc_source_name(f->source));
    KEY(b, "started_at");
    pc_json_write_time(b, started);
    KEY(b, "start_time_unix_nano");
    pc_json_write_int(b, started);
    KEY(b, "completed_at");
    pc_json_write_time(b, completed);
    KEY(b, "end_time_unix_nano");
    pc_json_write_int(b, completed);
    KEY(b, "duration_ms");
    pc_json_write_ms(b, completed, started);
    KEY(b, "span_count");
    pc_json_write_int(b, (int64_t)n);
    KEY(b, "status");
    pc_json_write_cstr(b, error ? "error" : pending ? "pending" : "success");
    KEY(b, "root_span_id");
    str_or_null(b, root ? root->span_id : PC_STR_NULL);
    KEY(b, "root_span_name");
    if (root)
        str_val(b, root->name);
    else
        pc_buf_lit(b, "null");
    KEY(b, "input_tokens");
    pc_json_write_int(b, in);
    KEY(b, "output_tokens");
    pc_json_write_int(b, out);
    KEY(b, "received_time_unix_nano");
    pc_json_write_int(b, received_ns);
    pc_buf_putc(b, '}');
}

/* ------------------------------------------------------------ OTLP view -- */

/* The spans of one scope within one resource group. */
typedef struct o_scope {
    size_t res; /* index into o_view.res */
    const pc_scope *scope;
    const pc_span **spans;
    size_t n;
} o_scope;

/* A resource group: spans with the same resource, project id and service name. */
typedef struct o_res {
    const pc_span *first;
    pc_attrs attrs; /* the resource attributes to write (see kafka_encode.h) */
} o_res;

typedef struct o_view {
    pc_arena *a;
    o_res *res;
    size_t n_res;
    o_scope *sc;
    size_t n_sc;
} o_view;

/* A span's ids as OTLP bytes and the attributes the format adds to it. */
typedef struct o_span {
    uint8_t tid[16], sid[8], pid[8];
    size_t pid_n; /* 0 for a root */
    pc_kv extra[4];
    size_t n_extra;
    int status_code;
} o_span;

static const pc_scope *scope_of(const pc_span *s)
{
    return s->scope ? s->scope : &pc_empty_scope;
}

static const pc_attrs *resource_of(const pc_span *s)
{
    return s->resource ? s->resource : &pc_empty_attrs;
}

static pc_value str_value(pc_str s)
{
    pc_value v = {.type = PC_V_STR};
    v.s = s;
    return v;
}

/* The resource attributes of |s|'s group: see "Grouping" in kafka_encode.h. */
static pc_attrs resource_attrs(pc_arena *a, const pc_span *s)
{
    const pc_attrs *r = resource_of(s);
    pc_kv *kv = pc_arena_alloc(a, (r->n + 2) * sizeof(*kv));
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (!(s->project_id.n && pc_str_eq(r->kv[i].key, "prela.project_id"))) kv[n++] = r->kv[i];
    if (s->project_id.n)
        kv[n++] = (pc_kv){PC_STR_LIT("prela.project_id"), str_value(s->project_id)};
    if (s->service_name.n && !pc_attrs_get(r, "service.name"))
        kv[n++] = (pc_kv){PC_STR_LIT("service.name"), str_value(s->service_name)};
    return (pc_attrs){kv, n};
}

/* True when |b| belongs in the resource group of |a|: the service name only
 * matters when it is added, i.e. when the resource has no service.name. */
static bool same_resource(const pc_span *a, const pc_span *b)
{
    return resource_of(a) == resource_of(b) && str_equal(a->project_id, b->project_id) &&
           (str_equal(a->service_name, b->service_name) ||
            pc_attrs_get(resource_of(a), "service.name"));
}

/* Builds the resource/scope grouping of |n| spans in |v->a|. */
static void view_build(o_view *v, const pc_span *const *spans, size_t n)
{
    v->res = pc_arena_alloc(v->a, n * sizeof(*v->res));
    v->sc = pc_arena_alloc(v->a, n * sizeof(*v->sc));
    size_t *where = pc_arena_alloc(v->a, n * sizeof(*where)); /* scope index per span */
    v->n_res = v->n_sc = 0;
    for (size_t i = 0; i < n; i++) {
        const pc_span *s = spans[i];
        size_t r = 0, k = 0;
        while (r < v->n_res && !same_resource(v->res[r].first, s))
            r++;
        if (r == v->n_res) v->res[v->n_res++] = (o_res){s, resource_attrs(v->a, s)};
        while (k < v->n_sc && !(v->sc[k].res == r && v->sc[k].scope == scope_of(s)))
            k++;
        if (k == v->n_sc) v->sc[v->n_sc++] = (o_scope){r, scope_of(s), NULL, 0};
        v->sc[k].n++;
        where[i] = k;
    }
    const pc_span **ptrs = pc_arena_alloc(v->a, n * sizeof(*ptrs));
    size_t off = 0;
    for (size_t k = 0; k < v->n_sc; k++) {
        v->sc[k].spans = ptrs + off;
        off += v->sc[k].n;
        v->sc[k].n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        o_scope *sc = &v->sc[where[i]];
        sc->spans[sc->n++] = spans[i];
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes the 2*|want| hex digits of |p| (skipping '-' when |dashes|). 0 / -1. */
static int hex_decode(const char *p, size_t n, uint8_t *out, size_t want, bool dashes, bool lower)
{
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        if (dashes && p[i] == '-') continue;
        int d = hexval(p[i]);
        if (d < 0 || got >= 2 * want || (lower && p[i] >= 'A' && p[i] <= 'F')) return -1;
        out[got / 2] = (uint8_t)(got % 2 ? (out[got / 2] << 4) | d : d);
        got++;
    }
    return got == 2 * want ? 0 : -1;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

static bool is_uuid(pc_str id)
{
    if (id.n != 36) return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? id.p[i] != '-' : hexval(id.p[i]) < 0) return false;
    }
    return true;
}

/*
 * Writes the non-empty |id| as |want| (16 or 8) OTLP id bytes. Returns true when
 * the lowercase hex of the bytes is |id| itself (nothing to preserve).
 */
static bool id_bytes(pc_str id, uint8_t *out, size_t want)
{
    if (id.n == 2 * want && hex_decode(id.p, id.n, out, want, false, true) == 0 &&
        !all_zero(out, want))
        return true;
    if (want == 16 && is_uuid(id) && hex_decode(id.p, id.n, out, want, true, false) == 0 &&
        !all_zero(out, want))
        return false;
    uint64_t h1 = fnv1a64(id, 14695981039346656037ull);
    uint64_t h2 = fnv1a64(id, 0x6c62272e07bb0142ull);
    for (size_t i = 0; i < want; i++)
        out[i] = (uint8_t)((i < 8 ? h1 >> (8 * i) : h2 >> (8 * (i - 8))) & 0xff);
    if (all_zero(out, want)) out[want - 1] = 1;
    return false;
}

static const char *const reserved_attrs[] = {"prela.trace_id", "prela.span_id",
                                              "prela.parent_span_id", "prela.span_type", NULL};

bool pc_kafka_attr_escaped(pc_str key)
{
    size_t pn = sizeof(PC_KAFKA_ATTR_ESCAPE) - 1;
    if (key.n >= pn && !memcmp(key.p, PC_KAFKA_ATTR_ESCAPE, pn)) return true;
    for (const char *const *r = reserved_attrs; *r; r++)
        if (pc_str_eq(key, *r)) return true;
    return false;
}

/* Adds the convention attribute |k| = |val| to |o| (the span's own |k|, if
 * any, is written escaped: see "Reserved attributes" in kafka_encode.h). */
static void add_extra(o_span *o, const char *k, pc_str val)
{
    o->extra[o->n_extra++] = (pc_kv){{k, strlen(k)}, str_value(val)};
}

static void span_prep(const pc_span *s, o_span *o)
{
    memset(o, 0, sizeof(*o));
    if (!id_bytes(s->trace_id, o->tid, 16)) add_extra(o, "prela.trace_id", s->trace_id);
    if (!id_bytes(s->span_id, o->sid, 8)) add_extra(o, "prela.span_id", s->span_id);
    if (s->parent_id.n) {
        o->pid_n = 8;
        if (!id_bytes(s->parent_id, o->pid, 8))
            add_extra(o, "prela.parent_span_id", s->parent_id);
    }
    o->status_code = s->status_code;
    if (s->source == PC_SOURCE_PRELA) {
        const char *t = pc_span_type_name(s->span_type);
        add_extra(o, "prela.span_type", (pc_str){t, strlen(t)});
        o->status_code = s->status == PC_STATUS_ERROR     ? PC_OTLP_STATUS_ERROR
                         : s->status == PC_STATUS_SUCCESS ? PC_OTLP_STATUS_OK
                                                          : PC_OTLP_STATUS_UNSET;
    }
}

static uint64_t unix_ns(int64_t ns)
{
    return ns > 0 ? (uint64_t)ns : 0;
}

/* ------------------------------------------------------------ protobuf -- */

static char *cstr(pc_arena *a, pc_str s)
{
    return pc_arena_strndup(a, s.p ? s.p : "", s.n);
}

static ProtobufCBinaryData bin(pc_arena *a, const void *p, size_t n)
{
    ProtobufCBinaryData d = {n, NULL};
    if (n) {
        d.data = pc_arena_alloc(a, n);
        memcpy(d.data, p, n);
    }
    return d;
}

static pb_kv **kvs_pb(pc_arena *a, const pc_kv *kv, size_t n, const pc_kv *extra, size_t n_extra);

static pb_any *any_pb(pc_arena *a, const pc_value *v)
{
    pb_any *p = pc_arena_alloc(a, sizeof(*p));
    opentelemetry__proto__common__v1__any_value__init(p);
    switch (v->type) {
    case PC_V_STR:
        p->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        p->string_value = cstr(a, v->s);
        break;
    case PC_V_BOOL:
        p->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
        p->bool_value = v->b;
        break;
    case PC_V_INT:
        p->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        p->int_value = v->i;
        break;
    case PC_V_DOUBLE:
        p->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
        p->double_value = v->d;
        break;
    case PC_V_BYTES:
        p->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
        p->bytes_value = (ProtobufCBinaryData){v->s.n, (uint8_t *)v->s.p};
        break;
    case PC_V_ARRAY: {
        pb_array *arr = pc_arena_alloc(a, sizeof(*arr));
        opentelemetry__proto__common__v1__array_value__init(arr);
        arr->n_values = v->arr.n;
        arr->values = pc_arena_alloc(a, (v->arr.n + 1) * sizeof(*arr->values));
        for (size_t i = 0; i < v->arr.n; i++)
            arr->values[i] = any_pb(a, &v->arr.v[i]);
        p->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
        p->array_value = arr;
        break;
    }
    case PC_V_MAP: {
        pb_kvlist *l = pc_arena_alloc(a, sizeof(*l));
        opentelemetry__proto__common__v1__key_value_list__init(l);
        l->n_values = v->map.n;
        l->values = kvs_pb(a, v->map.kv, v->map.n, NULL, 0);
        p->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
        p->kvlist_value = l;
        break;
    }
    default:
        break; /* null: an empty AnyValue */
    }
    return p;
}

/*
 * The |n| key/values, then the |n_extra| ones, as protobuf KeyValues. With
 * |extra| (a span's own attributes) the reserved keys among the |n| are escaped.
 */
static pb_kv **kvs_pb(pc_arena *a, const pc_kv *kv, size_t n, const pc_kv *extra, size_t n_extra)
{
    pb_kv **out = pc_arena_alloc(a, (n + n_extra + 1) * sizeof(*out));
    for (size_t i = 0; i < n + n_extra; i++) {
        const pc_kv *src = i < n ? &kv[i] : &extra[i - n];
        pb_kv *k = pc_arena_alloc(a, sizeof(*k));
        opentelemetry__proto__common__v1__key_value__init(k);
        if (extra && i < n && pc_kafka_attr_escaped(src->key)) {
            size_t pn = sizeof(PC_KAFKA_ATTR_ESCAPE) - 1;
            k->key = pc_arena_alloc(a, pn + src->key.n + 1);
            memcpy(k->key, PC_KAFKA_ATTR_ESCAPE, pn);
            memcpy(k->key + pn, src->key.p, src->key.n);
            k->key[pn + src->key.n] = '\0';
        } else {
            k->key = cstr(a, src->key);
        }
        k->value = any_pb(a, &src->value);
        out[i] = k;
    }
    return out;
}

static pb_span *span_pb(pc_arena *a, const pc_span *s)
{
    o_span o;
    span_prep(s, &o);
    pb_span *p = pc_arena_alloc(a, sizeof(*p));
    opentelemetry__proto__trace__v1__span__init(p);
    p->trace_id = bin(a, o.tid, 16);
    p->span_id = bin(a, o.sid, 8);
    p->parent_span_id = bin(a, o.pid, o.pid_n);
    p->trace_state = cstr(a, s->trace_state);
    p->flags = s->flags;
    p->name = cstr(a, s->name);
    p->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)s->kind;
    p->start_time_unix_nano = unix_ns(s->start_ns);
    p->end_time_unix_nano = unix_ns(s->end_ns);
    p->n_attributes = s->attrs.n + o.n_extra;
    p->attributes = kvs_pb(a, s->attrs.kv, s->attrs.n, o.extra, o.n_extra);
    p->n_events = s->n_events;
    p->events = pc_arena_alloc(a, (s->n_events + 1) * sizeof(*p->events));
    for (size_t i = 0; i < s->n_events; i++) {
        const pc_event *e = &s->events[i];
        pb_event *pe = pc_arena_alloc(a, sizeof(*pe));
        opentelemetry__proto__trace__v1__span__event__init(pe);
        pe->time_unix_nano = unix_ns(e->time_ns);
        pe->name = cstr(a, e->name);
        pe->n_attributes = e->attrs.n;
        pe->attributes = kvs_pb(a, e->attrs.kv, e->attrs.n, NULL, 0);
        p->events[i] = pe;
    }
    p->n_links = s->n_links;
    p->links = pc_arena_alloc(a, (s->n_links + 1) * sizeof(*p->links));
    for (size_t i = 0; i < s->n_links; i++) {
        const pc_link *l = &s->links[i];
        pb_link *pl = pc_arena_alloc(a, sizeof(*pl));
        opentelemetry__proto__trace__v1__span__link__init(pl);
        uint8_t tid[16], sid[8];
        id_bytes(l->trace_id, tid, 16);
        id_bytes(l->span_id, sid, 8);
        pl->trace_id = bin(a, tid, 16);
        pl->span_id = bin(a, sid, 8);
        pl->trace_state = cstr(a, l->trace_state);
        pl->n_attributes = l->attrs.n;
        pl->attributes = kvs_pb(a, l->attrs.kv, l->attrs.n, NULL, 0);
        p->links[i] = pl;
    }
    pb_status *st = pc_arena_alloc(a, sizeof(*st));
    opentelemetry__proto__trace__v1__status__init(st);
    st->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)o.status_code;
    st->message = cstr(a, s->status_message);
    p->status = st;
    return p;
}

static pb_scope_spans *scope_spans_pb(pc_arena *a, const o_scope *sc)
{
    pb_scope_spans *ss = pc_arena_alloc(a, sizeof(*ss));
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    pb_scope *ps = pc_arena_alloc(a, sizeof(*ps));
    opentelemetry__proto__common__v1__instrumentation_scope__init(ps);
    ps->name = cstr(a, sc->scope->name);
    ps->version = cstr(a, sc->scope->version);
    ps->n_attributes = sc->scope->attrs.n;
    ps->attributes = kvs_pb(a, sc->scope->attrs.kv, sc->scope->attrs.n, NULL, 0);
    ss->scope = ps;
    ss->n_spans = sc->n;
    ss->spans = pc_arena_alloc(a, sc->n * sizeof(*ss->spans));
    for (size_t i = 0; i < sc->n; i++)
        ss->spans[i] = span_pb(a, sc->spans[i]);
    return ss;
}

void pc_kafka_otlp_proto(pc_buf *out, const pc_span *const *spans, size_t n)
{
    o_view v = {.a = pc_arena_create(8192)};
    view_build(&v, spans, n);
    pc_arena *a = v.a;
    pb_request req = OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.n_resource_spans = v.n_res;
    req.resource_spans = pc_arena_alloc(a, (v.n_res + 1) * sizeof(*req.resource_spans));
    for (size_t r = 0; r < v.n_res; r++) {
        pb_resource_spans *rs = pc_arena_alloc(a, sizeof(*rs));
        opentelemetry__proto__trace__v1__resource_spans__init(rs);
        pb_resource *res = pc_arena_alloc(a, sizeof(*res));
        opentelemetry__proto__resource__v1__resource__init(res);
        res->n_attributes = v.res[r].attrs.n;
        res->attributes = kvs_pb(a, v.res[r].attrs.kv, v.res[r].attrs.n, NULL, 0);
        rs->resource = res;
        rs->scope_spans = pc_arena_alloc(a, (v.n_sc + 1) * sizeof(*rs->scope_spans));
        for (size_t k = 0; k < v.n_sc; k++)
            if (v.sc[k].res == r)
                rs->scope_spans[rs->n_scope_spans++] = scope_spans_pb(a, &v.sc[k]);
        req.resource_spans[r] = rs;
    }
    size_t size =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            &req);
    pc_buf_reserve(out, size);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(
        &req, (uint8_t *)out->data + out->len);
    out->len += size;
    out->data[out->len] = '\0';
    pc_arena_destroy(a);
}

/* ------------------------------------------------------------ OTLP/JSON -- */

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
        if (extra && i < n && pc_kafka_attr_escaped(k->key)) {
            pc_buf key = PC_BUF_INIT;
            pc_buf_puts(&key, PC_KAFKA_ATTR_ESCAPE);
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
    o_span o;
    span_prep(s, &o);
    pc_buf_puts(b, "{\"name\":");
    str_val(b, s->name);
    jhex(b, "traceId", o.tid, 16);
    jhex(b, "spanId", o.sid, 8);
    if (o.pid_n) jhex(b, "parentSpanId", o.pid, 8);
    jstr(b, "traceState", s->trace_state);
    if (s->flags) pc_buf_printf(b, ",\"flags\":%u", (unsigned)s->flags);
    if (s->kind) pc_buf_printf(b, ",\"kind\":%d", s->kind);
    pc_buf_printf(b, ",\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\"",
                  (unsigned long long)unix_ns(s->start_ns), (unsigned long long)unix_ns(s->end_ns));
    jattrs(b, s->attrs.kv, s->attrs.n, o.extra, o.n_extra);
    if (s->n_events) pc_buf_puts(b, ",\"events\":[");
    for (size_t i = 0; i < s->n_events; i++) {
        const pc_event *e = &s->events[i];
        pc_buf_printf(b, "%s{\"timeUnixNano\":\"%llu\"", i ? "," : "",
                      (unsigned long long)unix_ns(e->time_ns));
        jstr(b, "name", e->name);
        jattrs(b, e->attrs.kv, e->attrs.n, NULL, 0);
        pc_buf_putc(b, '}');
    }
    if (s->n_events) pc_buf_putc(b, ']');
    if (s->n_links) pc_buf_puts(b, ",\"links\":[");
    for (size_t i = 0; i < s->n_links; i++) {
        const pc_link *l = &s->links[i];
        uint8_t tid[16], sid[8];
        id_bytes(l->trace_id, tid, 16);
        id_bytes(l->span_id, sid, 8);
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

static void jscope_spans(pc_buf *b, const o_scope *sc, bool first)
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

void pc_kafka_otlp_json(pc_buf *out, const pc_span *const *spans, size_t n)
{
    o_view v = {.a = pc_arena_create(4096)};
    view_build(&v, spans, n);
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
