/*
 * otlp_prela.c - Prela spans in OTLP (otlp_prela.h is the contract): the
 * resource/scope view both OTLP writers walk, the id mapping, the reserved
 * attributes, and the restore a reader's caller applies.
 *
 * Memory: the view lives in the caller's scratch arena; nothing is freed here.
 */
#include "formats/otlp_prela.h"

#include <stdbool.h>
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


/* ---------------------------------------------------------------- view -- */

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

/* The resource attributes of |s|'s group: see "Grouping" in otlp_prela.h. */
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

void pc_otlp_view_build(pc_otlp_view *v, const pc_span *const *spans, size_t n)
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
        if (r == v->n_res) v->res[v->n_res++] = (pc_otlp_view_res){s, resource_attrs(v->a, s)};
        while (k < v->n_sc && !(v->sc[k].res == r && v->sc[k].scope == scope_of(s)))
            k++;
        if (k == v->n_sc) v->sc[v->n_sc++] = (pc_otlp_view_scope){r, scope_of(s), NULL, 0};
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
        pc_otlp_view_scope *sc = &v->sc[where[i]];
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

bool pc_otlp_id_bytes(pc_str id, uint8_t *out, size_t want)
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
                                              "prela.parent_span_id", "prela.span_type",
                                              "prela.carrier", NULL};

bool pc_otlp_prela_escaped(pc_str key)
{
    size_t pn = sizeof(PC_OTLP_PRELA_ESCAPE) - 1;
    /* every reserved key and the escape begin with "prela.": most keys stop here */
    if (key.n < 6 || memcmp(key.p, "prela.", 6)) return false;
    if (key.n >= pn && !memcmp(key.p, PC_OTLP_PRELA_ESCAPE, pn)) return true;
    for (const char *const *r = reserved_attrs; *r; r++)
        if (pc_str_eq(key, *r)) return true;
    return false;
}

/* Adds the convention attribute |k| = |val| to |o| (the span's own |k|, if
 * any, is written escaped: see "Reserved attributes" in otlp_prela.h). */
static void add_extra(pc_otlp_span_ext *o, const char *k, pc_str val)
{
    o->extra[o->n_extra++] = (pc_kv){{k, strlen(k)}, str_value(val)};
}

void pc_otlp_span_ext_fill(const pc_span *s, pc_otlp_span_ext *o)
{
    memset(o, 0, sizeof(*o));
    if (!pc_otlp_id_bytes(s->trace_id, o->tid, 16)) add_extra(o, "prela.trace_id", s->trace_id);
    if (!pc_otlp_id_bytes(s->span_id, o->sid, 8)) add_extra(o, "prela.span_id", s->span_id);
    if (s->parent_id.n) {
        o->pid_n = 8;
        if (!pc_otlp_id_bytes(s->parent_id, o->pid, 8))
            add_extra(o, "prela.parent_span_id", s->parent_id);
    }
    o->status_code = s->status_code;
    if (s->carrier) add_extra(o, "prela.carrier", PC_STR_LIT("events"));
    if (s->source == PC_SOURCE_PRELA) {
        const char *t = pc_span_type_name(s->span_type);
        add_extra(o, "prela.span_type", (pc_str){t, strlen(t)});
        o->status_code = s->status == PC_STATUS_ERROR     ? PC_OTLP_STATUS_ERROR
                         : s->status == PC_STATUS_SUCCESS ? PC_OTLP_STATUS_OK
                                                          : PC_OTLP_STATUS_UNSET;
    }
}

/* ------------------------------------------------------------- restore -- */

/* Removes attribute |i| of |a| (the span's own array), keeping the order. */
static void attr_remove(pc_attrs *a, size_t i)
{
    memmove(&a->kv[i], &a->kv[i + 1], (a->n - i - 1) * sizeof(*a->kv));
    a->n--;
}

void pc_otlp_prela_restore(pc_span *s)
{
    const size_t pn = sizeof(PC_OTLP_PRELA_ESCAPE) - 1;
    size_t n_before = s->attrs.n;
    bool renamed = false;
    for (size_t i = 0; i < s->attrs.n;) {
        pc_kv *kv = &s->attrs.kv[i];
        pc_str *id = NULL;
        if (kv->key.n >= pn && !memcmp(kv->key.p, PC_OTLP_PRELA_ESCAPE, pn)) {
            kv->key.p += pn;
            kv->key.n -= pn;
            renamed = true;
            i++;
            continue;
        }
        if (kv->value.type == PC_V_STR && kv->key.n > 6 && !memcmp(kv->key.p, "prela.", 6)) {
            if (pc_str_eq(kv->key, "prela.trace_id")) id = &s->trace_id;
            else if (pc_str_eq(kv->key, "prela.span_id")) id = &s->span_id;
            else if (pc_str_eq(kv->key, "prela.parent_span_id")) id = &s->parent_id;
            else if (pc_str_eq(kv->key, "prela.carrier")) {
                s->carrier = true; /* events for a span, not a span (span.h) */
                attr_remove(&s->attrs, i);
                continue;
            } else if (pc_str_eq(kv->key, "prela.span_type")) {
                s->span_type_text = kv->value.s;
                s->source = PC_SOURCE_PRELA;
                const char *st = s->status_code == PC_OTLP_STATUS_OK      ? "success"
                                 : s->status_code == PC_OTLP_STATUS_ERROR ? "error"
                                                                          : "pending";
                s->status_text = (pc_str){st, strlen(st)};
                s->status_code = PC_OTLP_STATUS_UNSET;
                attr_remove(&s->attrs, i);
                continue;
            }
        }
        if (id && kv->value.s.n) {
            *id = kv->value.s;
            attr_remove(&s->attrs, i);
            continue;
        }
        i++;
    }
    /* the span is no longer what its bytes say: an encoder must write it anew */
    if (renamed || s->attrs.n != n_before) s->wire = PC_STR_NULL;
}
