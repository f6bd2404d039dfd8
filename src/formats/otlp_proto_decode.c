/*
 * otlp_proto_decode.c - ExportTraceServiceRequest (protobuf) straight from the
 * wire into a pc_batch: pc_otlp_proto_decode (see otlp_proto.h for the contract).
 *
 * Data flow: body bytes -> one copy into the batch's arena -> wire check
 * (protobuf.c: well-formed, nesting bounded) -> this reader, which fills
 * pc_span, pc_attrs, pc_value, events, links, resource and scope directly from
 * the bytes. No protobuf-c objects: strings point into the copy, and every
 * array is allocated once at its exact size.
 *
 * How: each message is read by a first pass over its own top-level fields
 * (submessages skipped by length) that finds its scalars and counts its
 * repeated fields, then the arrays are allocated and filled in a second pass.
 * Fields are visited in the model's order, not the wire's, so checks and their
 * messages do not depend on field order. The span caps that follow from counts
 * (events, links, attributes) are applied before anything is allocated: such a
 * span is only checked (UTF-8, ids, as if built) and then rejected.
 *
 * Protobuf rules kept: the last occurrence of a scalar wins; a singular
 * message repeated on the wire is merged (its occurrences parsed as one
 * concatenation, which is protobuf's merge); of a oneof (AnyValue), the last
 * member wins and replaces the others, as protobuf-c does; unknown fields are
 * skipped; int32 and enums are the low 32 bits of the varint; a bool is true
 * when any bit is set.
 *
 * Rules of the model: an attribute with an empty key (OTLP requires one) is
 * checked, dropped and counted in its owner's dropped_attributes_count (the
 * resource's count has no field in pc_attrs and is not kept), so a bomb of
 * empty KeyValues costs nothing but its bytes; kvlist entries keep empty keys.
 * A string with a NUL fails the request naming the field (strings keep their
 * length here, but downstream C strings and protobuf-c would cut it; the
 * OTLP/JSON decoder refuses \u0000 the same way). Bytes values keep NULs.
 *
 * Memory: what a request costs is its body (copied into the arena unless it
 * lives there already: pc_otlp_proto_decode_body) plus the model it becomes
 * (pc_arena_try_alloc); a refusal of the memory budget fails the request with
 * "request is over the memory budget" and pc_arena_over set (429).
 */
#include "formats/otlp_proto.h"

#include "formats/protobuf.h"

#include "json.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <stdint.h>
#include <string.h>

#define PUSH(d, lit, idx) pc_otlp_push((d), (lit), sizeof(lit) - 1, (idx))

/* ---------------------------------------------------------------- fields */

/* Bytes of one message. */
typedef struct blk {
    const uint8_t *p;
    size_t n;
} blk;

/* One field of a message, as next_field reads it. */
typedef struct fld {
    unsigned num;     /* field number; 0: absent */
    unsigned wt;      /* wire type */
    uint64_t v;       /* varint or fixed value */
    const uint8_t *p; /* wire type 2: the payload; 0: the varint's bytes */
    size_t n;         /* their length */
} fld;

static uint64_t le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;)
        v = v << 8 | p[k];
    return v;
}

/* Reads the field at m.p[*i] into |f| and advances *i. Returns 1, 0 at the end
 * of the message, or -1 when it is malformed, which cannot happen after the
 * wire check (the reader only runs on checked bytes); loops stop there. */
static inline __attribute__((always_inline)) int next_field(blk m, size_t *i, fld *f)
{
    if (*i >= m.n) return 0;
    uint64_t key, len;
    if (pc_pb_tag(m.p, m.n, i, &key)) return -1;
    f->num = (unsigned)(key >> 3); /* 0 (a long tag) is an unknown field, as in protobuf-c */
    f->wt = key & 7;
    size_t at = *i;
    switch (f->wt) {
    case 2:
        if (pc_pb_length(m.p, m.n, i, &len) || len > m.n - *i) return -1;
        f->p = m.p + *i;
        f->n = (size_t)len;
        *i += (size_t)len;
        return 1;
    case 0:
        if (pc_pb_varint(m.p, m.n, i, &f->v)) return -1;
        f->p = m.p + at;
        f->n = *i - at;
        return 1;
    case 1:
    case 5: {
        size_t size = f->wt == 1 ? 8 : 4;
        if (m.n - at < size) return -1;
        f->v = le(m.p + at, size);
        f->p = m.p + at;
        f->n = size;
        *i += size;
        return 1;
    }
    default:
        return -1;
    }
}

/* Steps through the fields of |m|: `for (FIELDS(m, it)) ...`; a body that
 * sets it.r = -1 marks a field it cannot take (a wrong wire type). */
typedef struct iter {
    size_t i;
    int r;
    fld f;
} iter;
#define FIELDS(m, it)                                                                              \
    iter it = {0, 0, {0}};                                                                         \
    ((it).r = next_field((m), &(it).i, &(it).f)) > 0;

static int malformed(pc_otlp_dec *d)
{
    return pc_otlp_fail(d, NULL, "invalid protobuf");
}

static int over_budget(pc_otlp_dec *d)
{
    return pc_otlp_fail(d, NULL, "request is over the memory budget");
}

/* |n| zeroed elements of |size| bytes in the arena into *out (NULL when n is
 * 0). 0, or -1 when the memory budget refuses them. */
static int alloc_array(pc_otlp_dec *d, void **out, size_t n, size_t size)
{
    *out = NULL;
    if (!n) return 0;
    if (n > SIZE_MAX / size || !(*out = pc_arena_try_alloc(d->a, n * size))) return over_budget(d);
    memset(*out, 0, n * size);
    return 0;
}

/* The field of a singular message type that occurred |count| times in |m|,
 * |first| being the first: absent (p NULL), that one, or, when it occurred
 * several times, the concatenation of their payloads in the arena: protobuf
 * merges repeated occurrences, and parsing concatenated messages is that merge. */
static int merged(pc_otlp_dec *d, blk m, const fld *first, size_t count, blk *out)
{
    *out = (blk){count ? first->p : NULL, count ? first->n : 0};
    if (count < 2) return 0;
    size_t total = 0;
    for (FIELDS(m, it))
        if (it.f.num == first->num) total += it.f.n;
    uint8_t *cat = pc_arena_try_alloc(d->a, total + 1);
    if (!cat) return over_budget(d);
    size_t at = 0;
    for (FIELDS(m, it))
        if (it.f.num == first->num) {
            memcpy(cat + at, it.f.p, it.f.n);
            at += it.f.n;
        }
    *out = (blk){cat, total};
    return 0;
}

/* Checks string field |f| (absent: empty) and points |out| (NULL: check only)
 * at it. Why refuse NUL: see pc_span_find_nul (span.h); the OTLP/JSON decoder
 * refuses \u0000 with the same words. */
static int str_in(pc_otlp_dec *d, pc_str *out, const fld *f, const char *leaf)
{
    if (!f->num) {
        if (out) *out = PC_STR_LIT("");
        return 0;
    }
    const char *s = (const char *)f->p;
    if (memchr(s, 0, f->n)) return pc_otlp_fail(d, leaf, "U+0000 in a string is not supported");
    if (!pc_utf8_valid(s, f->n)) return pc_otlp_fail(d, leaf, "invalid UTF-8");
    if (out) *out = (pc_str){f->n ? s : "", f->n};
    return 0;
}

/* fixed64 times on the wire; int64 ns inside, which lasts until 2262. */
static int time_in(pc_otlp_dec *d, int64_t *out, const fld *f, const char *leaf)
{
    if (f->v > INT64_MAX) return pc_otlp_fail(d, leaf, "out of range");
    *out = (int64_t)f->v;
    return 0;
}

/* The low 32 bits of a varint, as protobuf reads uint32, int32 and enums. */
static uint32_t u32(const fld *f)
{
    return (uint32_t)f->v;
}

/* An id (bytes field |f|) as lowercase hex into |out|, or, when |out| is NULL,
 * only the checks of pc_otlp_id (same rejections), allocating nothing. */
static int id_in(pc_otlp_dec *d, pc_str *out, const fld *f, size_t want, bool optional,
                 const char *leaf)
{
    return pc_otlp_id(d, out, f->p, f->num ? f->n : 0, want, optional, leaf);
}

static int kvs_fill(pc_otlp_dec *d, pc_kv *arr, blk m, unsigned num, const char *field,
                    size_t field_len, uint32_t *dropped);

/* The key (the last field 1; num 0 when absent) and value of KeyValue |m|. */
static int kv_parse(pc_otlp_dec *d, blk m, fld *key, blk *value)
{
    fld vfirst = {0};
    size_t nv = 0;
    key->num = 0;
    for (FIELDS(m, it)) {
        if (it.f.num == 1 && it.f.wt == 2)
            *key = it.f;
        else if (it.f.num == 2 && it.f.wt == 2 && !nv++)
            vfirst = it.f;
        else if (it.f.num == 1 || it.f.num == 2)
            it.r = -1; /* a wrong wire type */
        if (it.r < 0) return malformed(d);
    }
    return merged(d, m, &vfirst, nv, value);
}

/* True when KeyValue |m| has an empty key (after the last occurrence of field 1). */
static bool kv_key_empty(blk m)
{
    size_t n = 0;
    for (FIELDS(m, it))
        if (it.f.num == 1) n = it.f.n;
    return n == 0;
}

/* Counts the KeyValues (field |num|) of |m|: *kept with a key, *empty without. */
static void kvs_count(blk m, unsigned num, bool drop_empty, size_t *kept, size_t *empty)
{
    *kept = *empty = 0;
    for (FIELDS(m, it))
        if (it.f.num == num) {
            if (drop_empty && kv_key_empty((blk){it.f.p, it.f.n}))
                ++*empty;
            else
                ++*kept;
        }
}

static int value_in(pc_otlp_dec *d, pc_value *out, blk m);

static int array_in(pc_otlp_dec *d, pc_value *out, blk m)
{
    size_t n = 0;
    for (FIELDS(m, it))
        if (it.f.num == 1) n++;
    if (out) {
        out->type = PC_V_ARRAY;
        out->arr.n = n;
        if (alloc_array(d, (void **)&out->arr.v, n, sizeof(pc_value))) return -1;
    }
    size_t k = 0;
    for (FIELDS(m, it)) {
        if (it.f.num != 1) continue;
        if (it.f.wt != 2) return malformed(d);
        PUSH(d, "array_value.values", (long)k);
        if (value_in(d, out ? &out->arr.v[k] : NULL, (blk){it.f.p, it.f.n})) return -1;
        pc_otlp_pop(d);
        k++;
    }
    return 0;
}

/* AnyValue |m| (absent or empty: null) into |out| (NULL: check only). Of the
 * oneof, the last member on the wire wins and replaces the others, messages
 * included, as protobuf-c does. */
static int value_in(pc_otlp_dec *d, pc_value *out, blk m)
{
    static const unsigned char wt_of[8] = {9, 2, 0, 0, 1, 2, 2, 2};
    fld last = {0};
    for (FIELDS(m, it)) {
        bool member = it.f.num >= 1 && it.f.num <= 7;
        if (member && it.f.wt != wt_of[it.f.num])
            it.r = -1;
        else if (member)
            last = it.f;
        if (it.r < 0) return malformed(d);
    }
    pc_value tmp;
    if (!out) out = &tmp; /* scalars are harmless to write */
    memset(out, 0, sizeof(*out));
    switch (last.num) {
    case 1:
        out->type = PC_V_STR;
        return str_in(d, &out->s, &last, "string_value");
    case 2:
        out->type = PC_V_BOOL; /* protobuf-c: true when any payload bit is set */
        for (size_t k = 0; k < last.n; k++)
            out->b = out->b || (last.p[k] & 0x7f);
        return 0;
    case 3:
        out->type = PC_V_INT;
        out->i = (int64_t)last.v;
        return 0;
    case 4:
        out->type = PC_V_DOUBLE;
        memcpy(&out->d, &last.v, sizeof(double));
        return 0;
    case 7:
        out->type = PC_V_BYTES;
        out->s = last.n ? (pc_str){(const char *)last.p, last.n} : PC_STR_LIT("");
        return 0;
    case 5:
        return array_in(d, out == &tmp ? NULL : out, (blk){last.p, last.n});
    case 6: {
        blk kl = {last.p, last.n};
        size_t kept, empty;
        kvs_count(kl, 1, false, &kept, &empty);
        out->type = PC_V_MAP;
        out->map.n = kept;
        if (out == &tmp) return kvs_fill(d, NULL, kl, 1, "kvlist_value.values", 19, NULL);
        if (alloc_array(d, (void **)&out->map.kv, kept, sizeof(pc_kv))) return -1;
        return kvs_fill(d, out->map.kv, kl, 1, "kvlist_value.values", 19, NULL);
    }
    default:
        return 0; /* empty AnyValue: null */
    }
}

/*
 * Fills |arr| (sized by kvs_count; NULL: check only) with the KeyValues in
 * field |num| of |m|, named |field| in errors with their wire index. With
 * |dropped|, a KeyValue with an empty key is checked, left out and counted
 * there (OTLP: attribute keys are non-empty); without, it is kept (kvlists).
 */
static int kvs_fill(pc_otlp_dec *d, pc_kv *arr, blk m, unsigned num, const char *field,
                    size_t field_len, uint32_t *dropped)
{
    size_t k = 0, w = 0;
    for (FIELDS(m, it)) {
        if (it.f.num != num) continue;
        if (it.f.wt != 2) return malformed(d);
        fld key = {0};
        blk value;
        pc_otlp_push(d, field, field_len, (long)w++);
        if (kv_parse(d, (blk){it.f.p, it.f.n}, &key, &value)) return -1;
        bool keep = !dropped || (key.num && key.n);
        pc_kv *kv = keep && arr ? &arr[k] : NULL;
        if (str_in(d, kv ? &kv->key : NULL, &key, "key")) return -1;
        PUSH(d, "value", -1);
        if (value_in(d, kv ? &kv->value : NULL, value)) return -1;
        pc_otlp_pop(d);
        pc_otlp_pop(d);
        if (keep)
            k++;
        else
            pc_otlp_add_dropped(dropped, 1);
    }
    return 0;
}

/* Reads attribute list field |num| of |m| into |out| (NULL: check only); the
 * caller sized it with kvs_count (|kept|). */
static int attrs_in(pc_otlp_dec *d, pc_attrs *out, blk m, unsigned num, size_t kept,
                    uint32_t *dropped)
{
    uint32_t scratch = 0;
    if (!out) return kvs_fill(d, NULL, m, num, "attributes", 10, &scratch);
    out->n = kept;
    if (alloc_array(d, (void **)&out->kv, kept, sizeof(pc_kv))) return -1;
    return kvs_fill(d, out->kv, m, num, "attributes", 10, dropped);
}

/* Event |m| into |out| (NULL: check only). */
static int event_in(pc_otlp_dec *d, pc_event *out, blk m)
{
    fld time = {0}, name = {0};
    for (FIELDS(m, it)) {
        if (it.f.num == 1)
            time = it.f;
        else if (it.f.num == 2)
            name = it.f;
        else if (it.f.num == 4 && out)
            out->dropped_attributes_count = u32(&it.f);
    }
    size_t kept, empty;
    kvs_count(m, 3, true, &kept, &empty);
    pc_event tmp;
    pc_event *e = out ? out : &tmp;
    if (time_in(d, &e->time_ns, &time, "time_unix_nano") || str_in(d, &e->name, &name, "name"))
        return -1;
    return attrs_in(d, out ? &out->attrs : NULL, m, 3, kept, &e->dropped_attributes_count);
}

/* Link |m| into |out| (NULL: check only). 0, 1 when its ids reject the span,
 * -1 on a bad request. */
static int link_in(pc_otlp_dec *d, pc_link *out, blk m)
{
    fld tid = {0}, sid = {0}, state = {0};
    uint32_t dropped = 0;
    for (FIELDS(m, it)) {
        if (it.f.num == 1)
            tid = it.f;
        else if (it.f.num == 2)
            sid = it.f;
        else if (it.f.num == 3)
            state = it.f;
        else if (it.f.num == 5)
            dropped = u32(&it.f);
    }
    if (id_in(d, out ? &out->trace_id : NULL, &tid, 16, false, "trace_id") ||
        id_in(d, out ? &out->span_id : NULL, &sid, 8, false, "span_id"))
        return 1;
    if (str_in(d, out ? &out->trace_state : NULL, &state, "trace_state")) return -1;
    size_t kept, empty;
    kvs_count(m, 4, true, &kept, &empty);
    if (out) out->dropped_attributes_count = dropped;
    return attrs_in(d, out ? &out->attrs : NULL, m, 4, kept,
                    out ? &out->dropped_attributes_count : &dropped);
}

/* What one pass over a Span's top-level fields finds. */
typedef struct span_scan {
    fld tid, sid, pid, name, state, kind, start, end, flags, dropped, status;
    size_t n_status, n_events, n_links;
} span_scan;

static void span_scan_of(blk m, span_scan *sc)
{
    memset(sc, 0, sizeof(*sc));
    for (FIELDS(m, it)) {
        switch (it.f.num) {
        case 1:
            sc->tid = it.f;
            break;
        case 2:
            sc->sid = it.f;
            break;
        case 3:
            sc->state = it.f;
            break;
        case 4:
            sc->pid = it.f;
            break;
        case 5:
            sc->name = it.f;
            break;
        case 6:
            sc->kind = it.f;
            break;
        case 7:
            sc->start = it.f;
            break;
        case 8:
            sc->end = it.f;
            break;
        case 10:
            sc->dropped = it.f;
            break;
        case 11:
            sc->n_events++;
            break;
        case 13:
            sc->n_links++;
            break;
        case 15:
            if (!sc->n_status++) sc->status = it.f;
            break;
        case 16:
            sc->flags = it.f;
            break;
        default:
            break;
        }
    }
}

/*
 * Adds Span |m| to the batch, or rejects it. 0, or -1 when the request is
 * invalid. The order of the checks is that of the fields in the span model,
 * whatever their order on the wire, so the same request always gets the same
 * answer. A span whose counts already break a cap (events, links, attributes)
 * is only checked, never allocated, and then rejected.
 */
static int span_in(pc_otlp_dec *d, blk m, const pc_attrs *resource, const pc_scope *scope,
                   pc_str project)
{
    span_scan sc;
    span_scan_of(m, &sc);
    size_t kept, empty;
    kvs_count(m, 9, true, &kept, &empty);
    const pc_span_limits *l = d->limits;
    char over[256] = "";
    if (l && ((int64_t)sc.n_events > l->max_events || (int64_t)sc.n_links > l->max_links ||
              (int64_t)kept > l->max_attributes)) {
        pc_span counts = {.n_events = sc.n_events, .n_links = sc.n_links, .attrs.n = kept};
        pc_span_over_limits(&counts, l, over, sizeof(over)); /* stops at the counts */
    }
    bool dry = over[0] != 0;

    pc_str tid, sid, pid;
    if (id_in(d, dry ? NULL : &tid, &sc.tid, 16, false, "trace_id") ||
        id_in(d, dry ? NULL : &sid, &sc.sid, 8, false, "span_id") ||
        id_in(d, dry ? NULL : &pid, &sc.pid, 8, true, "parent_span_id"))
        return 0; /* rejected and counted */

    pc_span tmp;
    pc_span *s = dry ? memset(&tmp, 0, sizeof(tmp)) : pc_otlp_add_span(d, resource, scope, project);
    if (!dry) {
        s->trace_id = tid;
        s->span_id = sid;
        s->parent_id = pid;
        s->wire = (pc_str){(const char *)m.p, m.n};
    }
    if (str_in(d, &s->name, &sc.name, "name") ||
        str_in(d, &s->trace_state, &sc.state, "trace_state"))
        return -1;
    s->kind = pc_otlp_clamp_kind((int32_t)u32(&sc.kind));
    if (time_in(d, &s->start_ns, &sc.start, "start_time_unix_nano") ||
        time_in(d, &s->end_ns, &sc.end, "end_time_unix_nano"))
        return -1;
    s->flags = (uint32_t)sc.flags.v;
    s->dropped_attributes_count = u32(&sc.dropped);
    if (sc.n_status) {
        blk st;
        fld msg = {0}, code = {0};
        if (merged(d, m, &sc.status, sc.n_status, &st)) return -1;
        for (FIELDS(st, it)) {
            if (it.f.num == 2)
                msg = it.f;
            else if (it.f.num == 3)
                code = it.f;
        }
        s->status_code = pc_otlp_clamp_status((int32_t)u32(&code));
        PUSH(d, "status", -1);
        if (str_in(d, &s->status_message, &msg, "message")) return -1;
        pc_otlp_pop(d);
    }
    if (attrs_in(d, dry ? NULL : &s->attrs, m, 9, kept, &s->dropped_attributes_count)) return -1;

    if (!dry) {
        s->n_events = sc.n_events;
        s->n_links = sc.n_links;
        if (alloc_array(d, (void **)&s->events, sc.n_events, sizeof(pc_event)) ||
            alloc_array(d, (void **)&s->links, sc.n_links, sizeof(pc_link)))
            return -1;
    }
    size_t ne = 0, nl = 0;
    for (FIELDS(m, it)) {
        if (it.f.num != 11) continue;
        PUSH(d, "events", (long)ne);
        if (event_in(d, dry ? NULL : &s->events[ne], (blk){it.f.p, it.f.n})) return -1;
        pc_otlp_pop(d);
        ne++;
    }
    for (FIELDS(m, it)) {
        if (it.f.num != 13) continue;
        PUSH(d, "links", (long)nl);
        int r = link_in(d, dry ? NULL : &s->links[nl], (blk){it.f.p, it.f.n});
        if (r < 0) return -1;
        pc_otlp_pop(d);
        if (r > 0) {
            if (!dry) pc_otlp_drop_last_span(d);
            return 0;
        }
        nl++;
    }
    if (dry)
        pc_otlp_reject(d, NULL, "%s", over);
    else
        pc_otlp_check_span(d, s);
    return 0;
}

/* The scope of ScopeSpans |m| (absent: pc_empty_scope), shared by its spans. */
static int scope_in(pc_otlp_dec *d, const pc_scope **out, blk m)
{
    fld first = {0};
    size_t count = 0;
    for (FIELDS(m, it))
        if (it.f.num == 1 && !count++) first = it.f;
    *out = &pc_empty_scope;
    if (!count) return 0;
    blk sm;
    fld name = {0}, version = {0};
    pc_scope *sc;
    if (merged(d, m, &first, count, &sm) || alloc_array(d, (void **)&sc, 1, sizeof(*sc))) return -1;
    for (FIELDS(sm, it)) {
        if (it.f.num == 1)
            name = it.f;
        else if (it.f.num == 2)
            version = it.f;
        else if (it.f.num == 4)
            sc->dropped_attributes_count = u32(&it.f);
    }
    size_t kept, empty;
    kvs_count(sm, 3, true, &kept, &empty);
    PUSH(d, "scope", -1);
    if (str_in(d, &sc->name, &name, "name") || str_in(d, &sc->version, &version, "version") ||
        attrs_in(d, &sc->attrs, sm, 3, kept, &sc->dropped_attributes_count))
        return -1;
    pc_otlp_pop(d);
    *out = sc;
    return 0;
}

/* The resource of ResourceSpans |m| (absent: pc_empty_attrs). Its attribute
 * count is checked against the cap before anything is allocated. Empty keys
 * are dropped; pc_attrs has no room to count them (nor the sender's
 * dropped_attributes_count). */
static int resource_in(pc_otlp_dec *d, const pc_attrs **out, blk m)
{
    fld first = {0};
    size_t count = 0;
    for (FIELDS(m, it))
        if (it.f.num == 1 && !count++) first = it.f;
    *out = &pc_empty_attrs;
    if (!count) return 0;
    blk rm;
    if (merged(d, m, &first, count, &rm)) return -1;
    size_t kept, empty;
    uint32_t dropped = 0;
    kvs_count(rm, 1, true, &kept, &empty);
    PUSH(d, "resource", -1);
    if (d->limits && (int64_t)kept > d->limits->max_attributes) {
        pc_attrs counted = {NULL, kept}; /* the check stops at the count */
        if (attrs_in(d, NULL, rm, 1, kept, &dropped)) return -1;
        return pc_otlp_check_attrs(d, &counted);
    }
    pc_attrs *ra;
    if (alloc_array(d, (void **)&ra, 1, sizeof(*ra)) || attrs_in(d, ra, rm, 1, kept, &dropped) ||
        pc_otlp_check_attrs(d, ra))
        return -1;
    pc_otlp_pop(d);
    *out = ra;
    return 0;
}

static int resource_spans_in(pc_otlp_dec *d, blk m)
{
    const pc_attrs *resource;
    if (resource_in(d, &resource, m)) return -1;
    pc_str project = pc_otlp_project(d, resource);
    size_t j = 0;
    for (FIELDS(m, it)) {
        if (it.f.num != 2) continue;
        blk ss = {it.f.p, it.f.n};
        const pc_scope *scope;
        PUSH(d, "scope_spans", (long)j++);
        if (scope_in(d, &scope, ss)) return -1;
        size_t k = 0;
        for (FIELDS(ss, sp)) {
            if (sp.f.num != 2) continue;
            PUSH(d, "spans", (long)k++);
            if (pc_otlp_count_span(d) ||
                span_in(d, (blk){sp.f.p, sp.f.n}, resource, scope, project))
                return -1;
            pc_otlp_pop(d);
        }
        pc_otlp_pop(d);
    }
    return 0;
}

/* Span messages in request |m| long enough to hold their ids, to size the batch once. */
static size_t count_spans(blk m)
{
    size_t n = 0;
    for (FIELDS(m, rs))
        if (rs.f.num == 1)
            for (FIELDS(((blk){rs.f.p, rs.f.n}), ss))
                if (ss.f.num == 2)
                    for (FIELDS(((blk){ss.f.p, ss.f.n}), sp))
                        n += sp.f.num == 2 && sp.f.n >= 28; /* room for two ids */
    return n;
}

/* The two entry points: |copy| says whether |buf| must be copied into the
 * arena first (it may not outlive the call) or already lives there. */
static int decode(pc_batch *b, const void *buf, size_t len, bool copy_body, const char *project,
                  const char *default_project, const pc_span_limits *limits, pc_otlp_result *res)
{
    pc_otlp_dec d;
    pc_otlp_dec_init(&d, b, project, default_project, res);
    d.limits = limits;
    size_t first = b->n;

    /* The strings of the batch point into the body, so it must live in the arena. */
    const uint8_t *copy = buf;
    if (copy_body && len) {
        uint8_t *p = pc_arena_try_alloc(d.a, len);
        if (!p) return over_budget(&d);
        memcpy(p, buf, len);
        copy = p;
    }
    blk req = {copy, len};

    if (pc_pb_check(
            &d,
            &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
            copy, len))
        return -1;

    /* Room for the spans at once, but only for those that could be valid: one
     * takes at least 28 bytes (its two ids), so empty span messages (2 bytes
     * each, all rejected) do not reserve a pc_span (~360 bytes) each. */
    size_t want = count_spans(req);
    if (limits && (int64_t)want > limits->max_spans) want = (size_t)limits->max_spans + 1;
    if (b->cap < b->n + want) {
        /* exact for a request's own batch; doubling for one that gathers many
         * messages (the kafka receiver), which would else be copied per message */
        size_t cap = b->n + want;
        if (b->n && cap < 2 * b->cap) cap = 2 * b->cap;
        pc_span *spans = pc_arena_try_realloc(d.a, b->spans, b->cap * sizeof(pc_span),
                                              cap * sizeof(pc_span));
        if (!spans) return over_budget(&d);
        b->spans = spans;
        b->cap = cap;
    }

    size_t i = 0;
    for (FIELDS(req, it)) {
        if (it.f.num != 1) continue;
        PUSH(&d, "resource_spans", (long)i++);
        if (resource_spans_in(&d, (blk){it.f.p, it.f.n})) return -1;
        pc_otlp_pop(&d);
    }
    res->accepted = b->n - first;
    return 0;
}

int pc_otlp_proto_decode(pc_batch *b, const void *buf, size_t len, const char *project,
                         const char *default_project, const pc_span_limits *limits,
                         pc_otlp_result *res)
{
    return decode(b, buf, len, true, project, default_project, limits, res);
}

int pc_otlp_proto_decode_body(pc_batch *b, const void *buf, size_t len, const char *project,
                              const char *default_project, const pc_span_limits *limits,
                              pc_otlp_result *res)
{
    return decode(b, buf, len, false, project, default_project, limits, res);
}
