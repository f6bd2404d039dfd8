/*
 * kafka_encode.c - the `kafka` exporter's message encoders (formats specified
 * in kafka_encode.h).
 *
 * Data flow: kafka.c groups a batch by trace (pc_batch_group_traces, span.h) and calls
 * one encoder per message. The prela_json encoders write JSON straight into
 * the pc_buf with json.h and span.h's model encoders. The OTLP encoders first
 * build a view (resource and scope groups, with the extra attributes the format
 * promises) in a scratch arena, then write either protobuf (sized in a first
 * pass, then written straight into the pc_buf: see "protobuf" below) or
 * OTLP/JSON by hand from the same view.
 *
 * Memory: everything an encoder allocates lives in its scratch arena, which is
 * destroyed before it returns; output goes only to the caller's pc_buf.
 */
#include "kafka_encode.h"

#include "json.h"
#include "mem.h"
#include "timefmt.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

static int lower_nibble(char c)
{
    unsigned d = (unsigned)(unsigned char)c - '0';
    if (d < 10) return (int)d;
    d = (unsigned)(unsigned char)c - 'a';
    return d < 6 ? (int)d + 10 : -1;
}

/* Decodes the 2*|want| lowercase hex digits of |p| (the hot case of ids). 0 / -1. */
static int lower_hex_decode(const char *p, uint8_t *out, size_t want)
{
    for (size_t i = 0; i < want; i++) {
        int h = lower_nibble(p[2 * i]), l = lower_nibble(p[2 * i + 1]);
        if ((h | l) < 0) return -1;
        out[i] = (uint8_t)(h << 4 | l);
    }
    return 0;
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
    if (id.n == 2 * want && lower_hex_decode(id.p, out, want) == 0 &&
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
    /* every reserved key and the escape begin with "prela.": most keys stop here */
    if (key.n < 6 || memcmp(key.p, "prela.", 6)) return false;
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

/*
 * The OTLP protobuf writer: the view written as an ExportTraceServiceRequest
 * straight into the caller's pc_buf. No protobuf-c structs; strings and bytes
 * are copied once, from the span model's pc_str into the output.
 *
 * Why two passes: a length-delimited submessage needs its length before its
 * body. The size pass (sz_*) walks the view and records the body size of every
 * submessage on a size tape, in pre-order (a node takes its slot before its
 * children); it also keeps each span's span_prep. The exact total is then
 * reserved in the pc_buf once, and the write pass (wr_*) walks the same tree in
 * the same order, taking each submessage's size off the tape, with unchecked
 * stores into the reserved block. Nothing is written twice or moved. (Writing
 * a body and then moving it behind its length would move every large span and
 * ScopeSpans once per nesting level whose reserved width was guessed wrong.)
 * encode_bench, otlp_proto: 0.67M spans per CPU-second with protobuf-c, 1.67M
 * with this writer (memchr for the NUL cut is now its largest single cost).
 *
 * The bytes are exactly those protobuf-c packed from the structs this replaced
 * (test_kafka_otlp_writer checks it): fields in field-number order; proto3
 * scalars, enums, plain strings and bytes left out when zero or empty; the
 * AnyValue oneof member always written (also "", 0, false); submessages always
 * written, empty ones too (Resource, InstrumentationScope, Status,
 * KeyValue.value); int64 and enums as sign-extended varints; strings cut at
 * their first NUL (kafka_encode.h), which keeps them decodable by
 * otlp_wire.c, which refuses a NUL.
 */

/* Writer state, both passes. */
typedef struct pbw {
    pc_arena *a;
    size_t *tape;      /* body sizes of the submessages, pre-order */
    size_t n, cap, at; /* entries, room, next one the write pass takes */
    o_span *prep;      /* span_prep of every span, in writing order */
    size_t n_prep, at_prep;
    uint8_t *p; /* write pass: the cursor in the reserved block */
} pbw;

/* Field tags (field number << 3 | wire type) of the OTLP messages written. */
/* clang-format off */
enum {
    T_RESOURCE_SPANS = 1 << 3 | 2,                                   /* request */
    T_RS_RESOURCE = 1 << 3 | 2, T_RS_SCOPE_SPANS = 2 << 3 | 2,        /* ResourceSpans */
    T_RES_ATTRS = 1 << 3 | 2,                                        /* Resource */
    T_SS_SCOPE = 1 << 3 | 2, T_SS_SPANS = 2 << 3 | 2,                /* ScopeSpans */
    T_SC_NAME = 1 << 3 | 2, T_SC_VERSION = 2 << 3 | 2, T_SC_ATTRS = 3 << 3 | 2,
    T_SP_TRACE_ID = 1 << 3 | 2, T_SP_SPAN_ID = 2 << 3 | 2, T_SP_TRACE_STATE = 3 << 3 | 2,
    T_SP_PARENT = 4 << 3 | 2, T_SP_NAME = 5 << 3 | 2, T_SP_KIND = 6 << 3 | 0,
    T_SP_START = 7 << 3 | 1, T_SP_END = 8 << 3 | 1, T_SP_ATTRS = 9 << 3 | 2,
    T_SP_EVENTS = 11 << 3 | 2, T_SP_LINKS = 13 << 3 | 2, T_SP_STATUS = 15 << 3 | 2,
    T_SP_FLAGS = 16 << 3 | 5, /* two bytes as a varint */
    T_EV_TIME = 1 << 3 | 1, T_EV_NAME = 2 << 3 | 2, T_EV_ATTRS = 3 << 3 | 2,
    T_LK_TRACE_ID = 1 << 3 | 2, T_LK_SPAN_ID = 2 << 3 | 2, T_LK_TRACE_STATE = 3 << 3 | 2,
    T_LK_ATTRS = 4 << 3 | 2,
    T_ST_MESSAGE = 2 << 3 | 2, T_ST_CODE = 3 << 3 | 0,
    T_KV_KEY = 1 << 3 | 2, T_KV_VALUE = 2 << 3 | 2,
    T_AV_STRING = 1 << 3 | 2, T_AV_BOOL = 2 << 3 | 0, T_AV_INT = 3 << 3 | 0,
    T_AV_DOUBLE = 4 << 3 | 1, T_AV_ARRAY = 5 << 3 | 2, T_AV_KVLIST = 6 << 3 | 2,
    T_AV_BYTES = 7 << 3 | 2,
    T_LIST_VALUES = 1 << 3 | 2, /* ArrayValue.values, KeyValueList.values */
};
/* clang-format on */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A length-delimited field (one-byte tag) with a body of |n| bytes. */
static size_t ld(size_t n)
{
    return 1 + varint_len(n) + n;
}

/* A plain string field: left out when empty. */
static size_t ld_opt(size_t n)
{
    return n ? ld(n) : 0;
}

/* The bytes of |s| a C string holds: up to its first NUL. */
static size_t cut(pc_str s)
{
    const char *z = s.n ? memchr(s.p, 0, s.n) : NULL;
    return z ? (size_t)(z - s.p) : s.n;
}

/* An enum as protobuf packs an int32: negative values sign-extended to 64 bits. */
static uint64_t enum_wire(int v)
{
    return (uint64_t)(int64_t)(int32_t)v;
}

/* Takes the next tape slot; the caller fills it once the body is sized. The
 * tape may move: callers keep slot numbers, and never hold w->tape across a
 * call that sizes children (no `w->tape[i] = sz_...(w, ...)`). */
static size_t tape_push(pbw *w)
{
    if (w->n == w->cap) {
        size_t *t = pc_arena_alloc(w->a, 2 * w->cap * sizeof(*t));
        memcpy(t, w->tape, w->n * sizeof(*t));
        w->tape = t;
        w->cap *= 2;
    }
    return w->n++;
}

/* The key of a KeyValue, with the escape prefix when |esc|. */
static size_t key_len(pc_str k, bool esc)
{
    return (esc ? sizeof(PC_KAFKA_ATTR_ESCAPE) - 1 : 0) + cut(k);
}

/* ---- size pass: each sz_* returns its message's body size, tape slot first */

static size_t sz_kvs(pbw *w, const pc_kv *kv, size_t n, const pc_kv *extra, size_t n_extra);

static size_t sz_any(pbw *w, const pc_value *v)
{
    size_t slot = tape_push(w), n = 0, m = 0, inner;
    switch (v->type) {
    case PC_V_STR:
        n = ld(cut(v->s));
        break;
    case PC_V_BOOL:
        n = 2;
        break;
    case PC_V_INT:
        n = 1 + varint_len((uint64_t)v->i);
        break;
    case PC_V_DOUBLE:
        n = 9;
        break;
    case PC_V_BYTES:
        n = ld(v->s.n);
        break;
    case PC_V_ARRAY:
        inner = tape_push(w);
        for (size_t i = 0; i < v->arr.n; i++)
            m += ld(sz_any(w, &v->arr.v[i]));
        w->tape[inner] = m;
        n = ld(m);
        break;
    case PC_V_MAP:
        inner = tape_push(w);
        m = sz_kvs(w, v->map.kv, v->map.n, NULL, 0);
        w->tape[inner] = m;
        n = ld(m);
        break;
    default:
        break; /* null: an empty AnyValue */
    }
    w->tape[slot] = n;
    return n;
}

static size_t sz_kv(pbw *w, const pc_kv *kv, bool esc)
{
    size_t slot = tape_push(w);
    size_t n = ld_opt(key_len(kv->key, esc));
    n += ld(sz_any(w, &kv->value));
    w->tape[slot] = n;
    return n;
}

/* The fields of the |n| key/values and then the |n_extra| ones. With |extra|
 * (a span's own attributes) the reserved keys among the |n| are escaped. */
static size_t sz_kvs(pbw *w, const pc_kv *kv, size_t n, const pc_kv *extra, size_t n_extra)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += ld(sz_kv(w, &kv[i], extra && pc_kafka_attr_escaped(kv[i].key)));
    for (size_t i = 0; i < n_extra; i++)
        t += ld(sz_kv(w, &extra[i], false));
    return t;
}

static size_t sz_event(pbw *w, const pc_event *e)
{
    size_t slot = tape_push(w);
    size_t n = (unix_ns(e->time_ns) ? 9 : 0) + ld_opt(cut(e->name));
    n += sz_kvs(w, e->attrs.kv, e->attrs.n, NULL, 0);
    w->tape[slot] = n;
    return n;
}

static size_t sz_link(pbw *w, const pc_link *l)
{
    size_t slot = tape_push(w);
    size_t n = ld(16) + ld(8) + ld_opt(cut(l->trace_state));
    n += sz_kvs(w, l->attrs.kv, l->attrs.n, NULL, 0);
    w->tape[slot] = n;
    return n;
}

static size_t sz_span(pbw *w, const pc_span *s)
{
    size_t slot = tape_push(w);
    o_span *o = &w->prep[w->n_prep++];
    span_prep(s, o);
    size_t n = ld(16) + ld(8) + ld_opt(cut(s->trace_state)) + (o->pid_n ? ld(8) : 0);
    n += ld_opt(cut(s->name));
    if (s->kind) n += 1 + varint_len(enum_wire(s->kind));
    if (unix_ns(s->start_ns)) n += 9;
    if (unix_ns(s->end_ns)) n += 9;
    n += sz_kvs(w, s->attrs.kv, s->attrs.n, o->extra, o->n_extra);
    for (size_t i = 0; i < s->n_events; i++)
        n += ld(sz_event(w, &s->events[i]));
    for (size_t i = 0; i < s->n_links; i++)
        n += ld(sz_link(w, &s->links[i]));
    size_t st = tape_push(w); /* Status */
    w->tape[st] = ld_opt(cut(s->status_message)) +
                  (o->status_code ? 1 + varint_len(enum_wire(o->status_code)) : 0);
    n += ld(w->tape[st]);
    if (s->flags) n += 2 + 4;
    w->tape[slot] = n;
    return n;
}

static size_t sz_scope_spans(pbw *w, const o_scope *sc)
{
    size_t slot = tape_push(w), scope = tape_push(w);
    const pc_scope *p = sc->scope;
    size_t n = sz_kvs(w, p->attrs.kv, p->attrs.n, NULL, 0); /* may move the tape */
    n += ld_opt(cut(p->name)) + ld_opt(cut(p->version));
    w->tape[scope] = n;
    n = ld(n);
    for (size_t i = 0; i < sc->n; i++)
        n += ld(sz_span(w, sc->spans[i]));
    w->tape[slot] = n;
    return n;
}

static size_t sz_resource_spans(pbw *w, const o_view *v, size_t r)
{
    size_t slot = tape_push(w), res = tape_push(w);
    size_t n = sz_kvs(w, v->res[r].attrs.kv, v->res[r].attrs.n, NULL, 0);
    w->tape[res] = n;
    n = ld(n);
    for (size_t k = 0; k < v->n_sc; k++)
        if (v->sc[k].res == r) n += ld(sz_scope_spans(w, &v->sc[k]));
    w->tape[slot] = n;
    return n;
}

/* ---- write pass: the same walk, sizes taken off the tape */

static void put_varint(pbw *w, uint64_t v)
{
    while (v >= 0x80) {
        *w->p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *w->p++ = (uint8_t)v;
}

static void put_bytes(pbw *w, uint8_t tag, const void *p, size_t n)
{
    *w->p++ = tag;
    put_varint(w, n);
    if (n) memcpy(w->p, p, n);
    w->p += n;
}

/* A plain string field, cut at NUL, left out when empty. */
static void put_str_opt(pbw *w, uint8_t tag, pc_str s)
{
    size_t n = cut(s);
    if (n) put_bytes(w, tag, s.p, n);
}

static void put_fixed(pbw *w, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}

/* The tag and length of the submessage whose slot is next on the tape; returns the length. */
static size_t put_head(pbw *w, uint8_t tag)
{
    size_t n = w->tape[w->at++];
    *w->p++ = tag;
    put_varint(w, n);
    return n;
}

/* The body length of the one length-delimited field whose whole size is |field|. */
static size_t ld_inner(size_t field)
{
    size_t n = field - 2;
    while (ld(n) != field)
        n--;
    return n;
}

static void wr_kvs(pbw *w, uint8_t tag, const pc_kv *kv, size_t n, const pc_kv *extra,
                   size_t n_extra);

static void wr_any(pbw *w, uint8_t tag, const pc_value *v)
{
    size_t body = put_head(w, tag);
    switch (v->type) {
    case PC_V_STR: /* the body is the string field: its length is the cut one, no memchr again */
        put_bytes(w, T_AV_STRING, v->s.p, ld_inner(body));
        break;
    case PC_V_BOOL:
        *w->p++ = T_AV_BOOL;
        *w->p++ = v->b ? 1 : 0;
        break;
    case PC_V_INT:
        *w->p++ = T_AV_INT;
        put_varint(w, (uint64_t)v->i);
        break;
    case PC_V_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->d, 8);
        *w->p++ = T_AV_DOUBLE;
        put_fixed(w, bits, 8);
        break;
    }
    case PC_V_BYTES:
        put_bytes(w, T_AV_BYTES, v->s.p, v->s.n);
        break;
    case PC_V_ARRAY:
        put_head(w, T_AV_ARRAY);
        for (size_t i = 0; i < v->arr.n; i++)
            wr_any(w, T_LIST_VALUES, &v->arr.v[i]);
        break;
    case PC_V_MAP:
        put_head(w, T_AV_KVLIST);
        wr_kvs(w, T_LIST_VALUES, v->map.kv, v->map.n, NULL, 0);
        break;
    default:
        break;
    }
}

static void wr_kv(pbw *w, uint8_t tag, const pc_kv *kv, bool esc)
{
    put_head(w, tag);
    if (esc) {
        size_t pn = sizeof(PC_KAFKA_ATTR_ESCAPE) - 1, kn = cut(kv->key);
        *w->p++ = T_KV_KEY;
        put_varint(w, pn + kn);
        memcpy(w->p, PC_KAFKA_ATTR_ESCAPE, pn);
        if (kn) memcpy(w->p + pn, kv->key.p, kn);
        w->p += pn + kn;
    } else {
        put_str_opt(w, T_KV_KEY, kv->key);
    }
    wr_any(w, T_KV_VALUE, &kv->value);
}

/* As sz_kvs, each KeyValue a field |tag|. */
static void wr_kvs(pbw *w, uint8_t tag, const pc_kv *kv, size_t n, const pc_kv *extra,
                   size_t n_extra)
{
    for (size_t i = 0; i < n; i++)
        wr_kv(w, tag, &kv[i], extra && pc_kafka_attr_escaped(kv[i].key));
    for (size_t i = 0; i < n_extra; i++)
        wr_kv(w, tag, &extra[i], false);
}

static void wr_span(pbw *w, const pc_span *s)
{
    const o_span *o = &w->prep[w->at_prep++];
    put_head(w, T_SS_SPANS);
    put_bytes(w, T_SP_TRACE_ID, o->tid, 16);
    put_bytes(w, T_SP_SPAN_ID, o->sid, 8);
    put_str_opt(w, T_SP_TRACE_STATE, s->trace_state);
    if (o->pid_n) put_bytes(w, T_SP_PARENT, o->pid, 8);
    put_str_opt(w, T_SP_NAME, s->name);
    if (s->kind) {
        *w->p++ = T_SP_KIND;
        put_varint(w, enum_wire(s->kind));
    }
    if (unix_ns(s->start_ns)) {
        *w->p++ = T_SP_START;
        put_fixed(w, unix_ns(s->start_ns), 8);
    }
    if (unix_ns(s->end_ns)) {
        *w->p++ = T_SP_END;
        put_fixed(w, unix_ns(s->end_ns), 8);
    }
    wr_kvs(w, T_SP_ATTRS, s->attrs.kv, s->attrs.n, o->extra, o->n_extra);
    for (size_t i = 0; i < s->n_events; i++) {
        const pc_event *e = &s->events[i];
        put_head(w, T_SP_EVENTS);
        if (unix_ns(e->time_ns)) {
            *w->p++ = T_EV_TIME;
            put_fixed(w, unix_ns(e->time_ns), 8);
        }
        put_str_opt(w, T_EV_NAME, e->name);
        wr_kvs(w, T_EV_ATTRS, e->attrs.kv, e->attrs.n, NULL, 0);
    }
    for (size_t i = 0; i < s->n_links; i++) {
        const pc_link *l = &s->links[i];
        uint8_t tid[16], sid[8];
        id_bytes(l->trace_id, tid, 16);
        id_bytes(l->span_id, sid, 8);
        put_head(w, T_SP_LINKS);
        put_bytes(w, T_LK_TRACE_ID, tid, 16);
        put_bytes(w, T_LK_SPAN_ID, sid, 8);
        put_str_opt(w, T_LK_TRACE_STATE, l->trace_state);
        wr_kvs(w, T_LK_ATTRS, l->attrs.kv, l->attrs.n, NULL, 0);
    }
    put_head(w, T_SP_STATUS);
    put_str_opt(w, T_ST_MESSAGE, s->status_message);
    if (o->status_code) {
        *w->p++ = T_ST_CODE;
        put_varint(w, enum_wire(o->status_code));
    }
    if (s->flags) {
        put_varint(w, T_SP_FLAGS);
        put_fixed(w, s->flags, 4);
    }
}

static void wr_scope_spans(pbw *w, const o_scope *sc)
{
    const pc_scope *p = sc->scope;
    put_head(w, T_RS_SCOPE_SPANS);
    put_head(w, T_SS_SCOPE);
    put_str_opt(w, T_SC_NAME, p->name);
    put_str_opt(w, T_SC_VERSION, p->version);
    wr_kvs(w, T_SC_ATTRS, p->attrs.kv, p->attrs.n, NULL, 0);
    for (size_t i = 0; i < sc->n; i++)
        wr_span(w, sc->spans[i]);
}

static void wr_resource_spans(pbw *w, const o_view *v, size_t r)
{
    put_head(w, T_RESOURCE_SPANS);
    put_head(w, T_RS_RESOURCE);
    wr_kvs(w, T_RES_ATTRS, v->res[r].attrs.kv, v->res[r].attrs.n, NULL, 0);
    for (size_t k = 0; k < v->n_sc; k++)
        if (v->sc[k].res == r) wr_scope_spans(w, &v->sc[k]);
}

void pc_kafka_otlp_proto(pc_buf *out, const pc_span *const *spans, size_t n)
{
    o_view v = {.a = pc_arena_create(8192)};
    view_build(&v, spans, n);
    pbw w = {.a = v.a, .cap = 32 * n + 16};
    w.tape = pc_arena_alloc(v.a, w.cap * sizeof(*w.tape));
    w.prep = pc_arena_alloc(v.a, (n + 1) * sizeof(*w.prep));
    size_t total = 0;
    for (size_t r = 0; r < v.n_res; r++)
        total += ld(sz_resource_spans(&w, &v, r));
    pc_buf_reserve(out, total);
    uint8_t *start = (uint8_t *)out->data + out->len;
    w.p = start;
    for (size_t r = 0; r < v.n_res; r++)
        wr_resource_spans(&w, &v, r);
    if ((size_t)(w.p - start) != total || w.at != w.n) abort(); /* the passes disagree: a bug */
    out->len += total;
    out->data[out->len] = '\0';
    pc_arena_destroy(v.a);
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
