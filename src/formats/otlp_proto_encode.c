/*
 * otlp_proto_encode.c - the OTLP protobuf writer: spans as one
 * ExportTraceServiceRequest (pc_otlp_proto_encode, otlp_proto.h), grouped and
 * with the ids and attributes otlp_prela.h specifies.
 *
 * Data flow: the kafka exporter (kafka_record.c) calls it once per message;
 * the view (otlp_prela.c) is built in a scratch arena, then written in two
 * passes (see below) straight into the caller's pc_buf.
 *
 * Memory: everything the writer allocates lives in its scratch arena, which is
 * destroyed before it returns; output goes only to the caller's pc_buf.
 */
#include "formats/otlp_proto.h"

#include "formats/otlp_prela.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
 * with this writer; 2.3M once strings were no longer scanned for a NUL (the
 * model holds none, span.h).
 *
 * Spans read from protobuf are copied as they were read (verbatim below: the
 * gateway's usual case, OTLP in and OTLP out, does not transcode spans).
 * Everything else is written exactly as protobuf-c packed it from the structs
 * this replaced (test_otlp_proto_encode checks it): fields in field-number order; proto3
 * scalars, enums, plain strings and bytes left out when zero or empty; the
 * AnyValue oneof member always written (also "", 0, false); submessages always
 * written, empty ones too (Resource, InstrumentationScope, Status,
 * KeyValue.value); int64 and enums as sign-extended varints; strings
 * whole (they hold no NUL, span.h, so protobuf-c's C strings are the same).
 */

/* Writer state, both passes. */
typedef struct pbw {
    pc_arena *a;
    size_t *tape;      /* body sizes of the submessages, pre-order */
    size_t n, cap, at; /* entries, room, next one the write pass takes */
    pc_otlp_span_ext *prep;      /* span_prep of every span, in writing order */
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
    return (esc ? sizeof(PC_OTLP_PRELA_ESCAPE) - 1 : 0) + k.n;
}

/* ---- size pass: each sz_* returns its message's body size, tape slot first */

static size_t sz_kvs(pbw *w, const pc_kv *kv, size_t n, const pc_kv *extra, size_t n_extra);

static size_t sz_any(pbw *w, const pc_value *v)
{
    size_t slot = tape_push(w), n = 0, m = 0, inner;
    switch (v->type) {
    case PC_V_STR:
        n = ld(v->s.n);
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
        t += ld(sz_kv(w, &kv[i], extra && pc_otlp_prela_escaped(kv[i].key)));
    for (size_t i = 0; i < n_extra; i++)
        t += ld(sz_kv(w, &extra[i], false));
    return t;
}

static size_t sz_event(pbw *w, const pc_event *e)
{
    size_t slot = tape_push(w);
    size_t n = (pc_otlp_unix_ns(e->time_ns) ? 9 : 0) + ld_opt(e->name.n);
    n += sz_kvs(w, e->attrs.kv, e->attrs.n, NULL, 0);
    w->tape[slot] = n;
    return n;
}

static size_t sz_link(pbw *w, const pc_link *l)
{
    size_t slot = tape_push(w);
    size_t n = ld(16) + ld(8) + ld_opt(l->trace_state.n);
    n += sz_kvs(w, l->attrs.kv, l->attrs.n, NULL, 0);
    w->tape[slot] = n;
    return n;
}

/*
 * True when |s| is written as the Span bytes it was read from (pc_span.wire):
 * an OTLP span from protobuf gets nothing from otlp_prela.h (its ids are hex,
 * it has no reserved attributes added and its status is its own) unless one
 * of its attribute keys must be escaped. Re-reading those bytes gives the span
 * that re-encoding would; they also keep what the writer leaves out (the
 * dropped counts, unknown fields).
 */
static bool verbatim(const pc_span *s)
{
    if (!s->wire.n || s->source != PC_SOURCE_OTLP) return false;
    for (size_t i = 0; i < s->attrs.n; i++)
        if (pc_otlp_prela_escaped(s->attrs.kv[i].key)) return false;
    return true;
}

static size_t sz_span(pbw *w, const pc_span *s)
{
    size_t slot = tape_push(w);
    if (verbatim(s)) return w->tape[slot] = s->wire.n;
    pc_otlp_span_ext *o = &w->prep[w->n_prep++];
    pc_otlp_span_ext_fill(s, o);
    size_t n = ld(16) + ld(8) + ld_opt(s->trace_state.n) + (o->pid_n ? ld(8) : 0);
    n += ld_opt(s->name.n);
    if (s->kind) n += 1 + varint_len(enum_wire(s->kind));
    if (pc_otlp_unix_ns(s->start_ns)) n += 9;
    if (pc_otlp_unix_ns(s->end_ns)) n += 9;
    n += sz_kvs(w, s->attrs.kv, s->attrs.n, o->extra, o->n_extra);
    for (size_t i = 0; i < s->n_events; i++)
        n += ld(sz_event(w, &s->events[i]));
    for (size_t i = 0; i < s->n_links; i++)
        n += ld(sz_link(w, &s->links[i]));
    size_t st = tape_push(w); /* Status */
    w->tape[st] = ld_opt(s->status_message.n) +
                  (o->status_code ? 1 + varint_len(enum_wire(o->status_code)) : 0);
    n += ld(w->tape[st]);
    if (s->flags) n += 2 + 4;
    w->tape[slot] = n;
    return n;
}

static size_t sz_scope_spans(pbw *w, const pc_otlp_view_scope *sc)
{
    size_t slot = tape_push(w), scope = tape_push(w);
    const pc_scope *p = sc->scope;
    size_t n = sz_kvs(w, p->attrs.kv, p->attrs.n, NULL, 0); /* may move the tape */
    n += ld_opt(p->name.n) + ld_opt(p->version.n);
    w->tape[scope] = n;
    n = ld(n);
    for (size_t i = 0; i < sc->n; i++)
        n += ld(sz_span(w, sc->spans[i]));
    w->tape[slot] = n;
    return n;
}

static size_t sz_resource_spans(pbw *w, const pc_otlp_view *v, size_t r)
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

/* A plain string field, left out when empty. */
static void put_str_opt(pbw *w, uint8_t tag, pc_str s)
{
    if (s.n) put_bytes(w, tag, s.p, s.n);
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

static void wr_kvs(pbw *w, uint8_t tag, const pc_kv *kv, size_t n, const pc_kv *extra,
                   size_t n_extra);

static void wr_any(pbw *w, uint8_t tag, const pc_value *v)
{
    put_head(w, tag);
    switch (v->type) {
    case PC_V_STR:
        put_bytes(w, T_AV_STRING, v->s.p, v->s.n);
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
        size_t pn = sizeof(PC_OTLP_PRELA_ESCAPE) - 1, kn = kv->key.n;
        *w->p++ = T_KV_KEY;
        put_varint(w, pn + kn);
        memcpy(w->p, PC_OTLP_PRELA_ESCAPE, pn);
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
        wr_kv(w, tag, &kv[i], extra && pc_otlp_prela_escaped(kv[i].key));
    for (size_t i = 0; i < n_extra; i++)
        wr_kv(w, tag, &extra[i], false);
}

static void wr_span(pbw *w, const pc_span *s)
{
    if (verbatim(s)) {
        put_head(w, T_SS_SPANS);
        memcpy(w->p, s->wire.p, s->wire.n);
        w->p += s->wire.n;
        return;
    }
    const pc_otlp_span_ext *o = &w->prep[w->at_prep++];
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
    if (pc_otlp_unix_ns(s->start_ns)) {
        *w->p++ = T_SP_START;
        put_fixed(w, pc_otlp_unix_ns(s->start_ns), 8);
    }
    if (pc_otlp_unix_ns(s->end_ns)) {
        *w->p++ = T_SP_END;
        put_fixed(w, pc_otlp_unix_ns(s->end_ns), 8);
    }
    wr_kvs(w, T_SP_ATTRS, s->attrs.kv, s->attrs.n, o->extra, o->n_extra);
    for (size_t i = 0; i < s->n_events; i++) {
        const pc_event *e = &s->events[i];
        put_head(w, T_SP_EVENTS);
        if (pc_otlp_unix_ns(e->time_ns)) {
            *w->p++ = T_EV_TIME;
            put_fixed(w, pc_otlp_unix_ns(e->time_ns), 8);
        }
        put_str_opt(w, T_EV_NAME, e->name);
        wr_kvs(w, T_EV_ATTRS, e->attrs.kv, e->attrs.n, NULL, 0);
    }
    for (size_t i = 0; i < s->n_links; i++) {
        const pc_link *l = &s->links[i];
        uint8_t tid[16], sid[8];
        pc_otlp_id_bytes(l->trace_id, tid, 16);
        pc_otlp_id_bytes(l->span_id, sid, 8);
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

static void wr_scope_spans(pbw *w, const pc_otlp_view_scope *sc)
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

static void wr_resource_spans(pbw *w, const pc_otlp_view *v, size_t r)
{
    put_head(w, T_RESOURCE_SPANS);
    put_head(w, T_RS_RESOURCE);
    wr_kvs(w, T_RES_ATTRS, v->res[r].attrs.kv, v->res[r].attrs.n, NULL, 0);
    for (size_t k = 0; k < v->n_sc; k++)
        if (v->sc[k].res == r) wr_scope_spans(w, &v->sc[k]);
}

void pc_otlp_proto_encode(pc_buf *out, const pc_span *const *spans, size_t n)
{
    pc_otlp_view v = {.a = pc_arena_create(8192)};
    pc_otlp_view_build(&v, spans, n);
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
