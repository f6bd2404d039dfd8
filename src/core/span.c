/*
 * span.c - batches and their grouping by trace, attribute lookup, enum names
 * and the JSON encodings of the span model (see span.h). The encodings here
 * are the only ones: the embedded store writes them and the query API serves
 * them, so they cannot drift apart.
 */
#include "span.h"
#include "hash.h"
#include "json.h"
#include "mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const pc_attrs pc_empty_attrs = {NULL, 0};
const pc_scope pc_empty_scope = {{NULL, 0}, {NULL, 0}, {NULL, 0}, 0};

pc_batch *pc_batch_create(pc_arena *arena)
{
    pc_batch *b = pc_xcalloc(1, sizeof(*b));
    b->arena = arena ? arena : pc_arena_create(16384);
    b->refs = 1;
    return b;
}

pc_span *pc_batch_add(pc_batch *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        b->spans = pc_arena_realloc(b->arena, b->spans, b->cap * sizeof(pc_span),
                                    cap * sizeof(pc_span));
        b->cap = cap;
    }
    pc_span *s = &b->spans[b->n++];
    memset(s, 0, sizeof(*s));
    s->resource = &pc_empty_attrs;
    s->scope = &pc_empty_scope;
    s->input_tokens = s->output_tokens = -1;
    s->cache_read_tokens = s->cache_write_tokens = s->reasoning_tokens = -1;
    s->cost_usd = s->cost_input_usd = s->cost_output_usd = NAN;
    return s;
}

void pc_batch_reserve(pc_batch *b, size_t n)
{
    if (n <= b->cap) return;
    b->spans = pc_arena_realloc(b->arena, b->spans, b->cap * sizeof(pc_span), n * sizeof(pc_span));
    b->cap = n;
}

void pc_batch_pop(pc_batch *b)
{
    if (b->n) b->n--;
}

pc_batch *pc_batch_ref(pc_batch *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

/* What exporters rejected of a batch (span.h, "Rejections"). Allocated on the
 * first rejection (the heap, not the arena: arenas are single-threaded) and
 * published with a compare-and-swap; freed with the batch. */
struct pc_rejects {
    size_t n;              /* spans of the batch when it was allocated */
    size_t count;          /* atomic: flags set */
    int all;               /* atomic: the whole batch */
    char *why;             /* atomic: the first reason (heap) */
    unsigned char flags[]; /* atomic: one per span */
};

static struct pc_rejects *rejects_get(pc_batch *b)
{
    struct pc_rejects *r = __atomic_load_n(&b->rejects, __ATOMIC_ACQUIRE);
    if (r) return r;
    struct pc_rejects *fresh = pc_xcalloc(1, sizeof(*fresh) + b->n);
    fresh->n = b->n;
    if (__atomic_compare_exchange_n(&b->rejects, &r, fresh, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return fresh;
    free(fresh); /* another exporter was first; |r| is its block */
    return r;
}

void pc_batch_reject(pc_batch *b, size_t i, const char *why)
{
    struct pc_rejects *r = rejects_get(b);
    if (i == PC_BATCH_ALL)
        __atomic_store_n(&r->all, 1, __ATOMIC_RELEASE);
    else if (i < r->n && !__atomic_exchange_n(&r->flags[i], 1, __ATOMIC_ACQ_REL))
        __atomic_add_fetch(&r->count, 1, __ATOMIC_RELEASE);
    if (why && !__atomic_load_n(&r->why, __ATOMIC_ACQUIRE)) {
        char *mine = pc_xstrdup(why), *none = NULL;
        if (!__atomic_compare_exchange_n(&r->why, &none, mine, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            free(mine);
    }
}

size_t pc_batch_rejected(const pc_batch *b)
{
    const struct pc_rejects *r = __atomic_load_n(&b->rejects, __ATOMIC_ACQUIRE);
    if (!r) return 0;
    if (__atomic_load_n(&r->all, __ATOMIC_ACQUIRE))
        return b->signal == PC_SIGNAL_TRACES ? b->n : (size_t)(b->items > 0 ? b->items : 1);
    return __atomic_load_n(&r->count, __ATOMIC_ACQUIRE);
}

bool pc_batch_is_rejected(const pc_batch *b, size_t i)
{
    const struct pc_rejects *r = __atomic_load_n(&b->rejects, __ATOMIC_ACQUIRE);
    if (!r) return false;
    if (__atomic_load_n(&r->all, __ATOMIC_ACQUIRE)) return true;
    return i < r->n && __atomic_load_n(&r->flags[i], __ATOMIC_ACQUIRE);
}

const char *pc_batch_reject_reason(const pc_batch *b)
{
    const struct pc_rejects *r = __atomic_load_n(&b->rejects, __ATOMIC_ACQUIRE);
    return r ? __atomic_load_n(&r->why, __ATOMIC_ACQUIRE) : NULL;
}

void pc_batch_unref(pc_batch *b)
{
    if (!b) return;
    if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (b->rejects) {
        free(b->rejects->why);
        free(b->rejects);
    }
    pc_arena_destroy(b->arena);
    free(b);
}

static bool same_str(pc_str a, pc_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* A trace id's slot hash: keyed (hash.h), since clients choose the ids. */
static size_t trace_hash(pc_str s)
{
    return (size_t)pc_hash(s.p, s.n);
}

size_t pc_batch_group_traces(const pc_batch *b, pc_trace_group **out)
{
    size_t n = b->n;
    size_t n_slots = 16;
    while (n_slots < 2 * n)
        n_slots *= 2;
    uint32_t *slots = pc_xcalloc(n_slots, sizeof(*slots)); /* trace index + 1; 0 empty */
    uint32_t *which = pc_xmalloc((n ? n : 1) * sizeof(*which));
    pc_trace_group *t = pc_xmalloc(n * (sizeof(*t) + sizeof(const pc_span *)) + 1);
    const pc_span **ptrs = (const pc_span **)(t + n);

    size_t nt = 0;
    for (size_t i = 0; i < n; i++) {
        const pc_span *s = &b->spans[i];
        size_t h = trace_hash(s->trace_id) & (n_slots - 1);
        while (slots[h] && !same_str(t[slots[h] - 1].trace_id, s->trace_id))
            h = (h + 1) & (n_slots - 1);
        if (!slots[h]) {
            t[nt] = (pc_trace_group){s->trace_id, NULL, 0};
            slots[h] = (uint32_t)++nt;
        }
        which[i] = slots[h] - 1;
        t[which[i]].n++;
    }
    size_t off = 0;
    for (size_t k = 0; k < nt; k++) {
        t[k].spans = ptrs + off;
        off += t[k].n;
        t[k].n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        pc_trace_group *tr = &t[which[i]];
        tr->spans[tr->n++] = &b->spans[i];
    }
    free(slots);
    free(which);
    *out = t;
    return nt;
}

bool pc_str_eq(pc_str s, const char *c)
{
    size_t n = strlen(c);
    return s.n == n && (n == 0 || memcmp(s.p, c, n) == 0);
}

char *pc_str_dup(pc_arena *a, pc_str s)
{
    return pc_arena_strndup(a, s.p ? s.p : "", s.n);
}

const pc_value *pc_attrs_getn(const pc_attrs *a, const char *key, size_t n)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->kv[i].key.n == n && memcmp(a->kv[i].key.p, key, n) == 0) return &a->kv[i].value;
    return NULL;
}

static const char *const type_names[PC_TYPE_COUNT] = {"custom", "agent",     "llm",
                                                      "tool",   "retrieval", "embedding"};

const char *pc_span_type_name(pc_span_type t)
{
    return (unsigned)t < PC_TYPE_COUNT ? type_names[t] : "custom";
}

int pc_span_type_parse(pc_str s)
{
    for (int t = 0; t < PC_TYPE_COUNT; t++)
        if (s.n == strlen(type_names[t]) && strncasecmp(s.p, type_names[t], s.n) == 0) return t;
    return -1;
}

const char *pc_status_name(pc_status s)
{
    switch (s) {
    case PC_STATUS_SUCCESS: return "success";
    case PC_STATUS_ERROR: return "error";
    default: return "pending";
    }
}

const char *pc_source_name(pc_source s)
{
    return s == PC_SOURCE_OTLP ? "otlp" : "prela";
}

const char *pc_cost_source_name(pc_cost_source s)
{
    static const char *const names[] = {"none", "sent", "table"};
    return (unsigned)s < 3 ? names[s] : "none";
}

const char *pc_signal_name(pc_signal s)
{
    static const char *const names[PC_SIGNALS] = {"traces", "metrics", "logs"};
    return (unsigned)s < PC_SIGNALS ? names[s] : "unknown";
}

/* ------------------------------------------------------------ JSON encodings */

void pc_value_write_json(pc_buf *out, const pc_value *v)
{
    switch (v->type) {
    case PC_V_STR: pc_json_write_str(out, v->s.p, v->s.n); break;
    case PC_V_BOOL:
        if (v->b)
            pc_buf_lit(out, "true");
        else
            pc_buf_lit(out, "false");
        break;
    case PC_V_INT: pc_json_write_int(out, v->i); break;
    case PC_V_DOUBLE: pc_json_write_double(out, v->d); break;
    case PC_V_BYTES: pc_json_write_base64(out, (const unsigned char *)v->s.p, v->s.n); break;
    case PC_V_ARRAY:
        pc_buf_putc(out, '[');
        for (size_t i = 0; i < v->arr.n; i++) {
            if (i) pc_buf_putc(out, ',');
            pc_value_write_json(out, &v->arr.v[i]);
        }
        pc_buf_putc(out, ']');
        break;
    case PC_V_MAP: {
        pc_attrs a = {v->map.kv, v->map.n};
        pc_attrs_write_json(out, &a);
        break;
    }
    default: pc_buf_lit(out, "null");
    }
}

void pc_attrs_write_json(pc_buf *out, const pc_attrs *a)
{
    pc_buf_putc(out, '{');
    for (size_t i = 0; i < a->n; i++) {
        if (i) pc_buf_putc(out, ',');
        pc_json_write_str(out, a->kv[i].key.p, a->kv[i].key.n);
        pc_buf_putc(out, ':');
        pc_value_write_json(out, &a->kv[i].value);
    }
    pc_buf_putc(out, '}');
}

void pc_events_write_json(pc_buf *out, const pc_event *ev, size_t n)
{
    pc_buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) pc_buf_putc(out, ',');
        pc_buf_lit(out, "{\"name\":");
        pc_json_write_str(out, ev[i].name.p, ev[i].name.n);
        pc_buf_lit(out, ",\"timestamp\":");
        pc_json_write_time(out, ev[i].time_ns);
        pc_buf_lit(out, ",\"time_unix_nano\":");
        pc_json_write_int(out, ev[i].time_ns);
        pc_buf_lit(out, ",\"attributes\":");
        pc_attrs_write_json(out, &ev[i].attrs);
        pc_buf_putc(out, '}');
    }
    pc_buf_putc(out, ']');
}

void pc_links_write_json(pc_buf *out, const pc_link *l, size_t n)
{
    pc_buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) pc_buf_putc(out, ',');
        pc_buf_lit(out, "{\"trace_id\":");
        pc_json_write_str(out, l[i].trace_id.p, l[i].trace_id.n);
        pc_buf_lit(out, ",\"span_id\":");
        pc_json_write_str(out, l[i].span_id.p, l[i].span_id.n);
        pc_buf_lit(out, ",\"trace_state\":");
        pc_json_write_str(out, l[i].trace_state.p, l[i].trace_state.n);
        pc_buf_lit(out, ",\"attributes\":");
        pc_attrs_write_json(out, &l[i].attrs);
        pc_buf_putc(out, '}');
    }
    pc_buf_putc(out, ']');
}

void pc_scope_write_json(pc_buf *out, const pc_scope *s)
{
    pc_buf_lit(out, "{\"name\":");
    pc_json_write_str(out, s->name.p, s->name.n);
    pc_buf_lit(out, ",\"version\":");
    pc_json_write_str(out, s->version.p, s->version.n);
    pc_buf_lit(out, ",\"attributes\":");
    pc_attrs_write_json(out, &s->attrs);
    pc_buf_putc(out, '}');
}

/* ------------------------------------------------------------ NUL bytes -- */

static bool has_nul(pc_str s)
{
    return s.n && memchr(s.p, '\0', s.n) != NULL;
}

static bool value_has_nul(const pc_value *v);

/* Sets |where| to |prefix|.<key> (or |prefix| alone when the key itself is at fault). */
static bool attrs_nul(const pc_attrs *a, const char *prefix, char *where, size_t n)
{
    for (size_t i = 0; a && i < a->n; i++) {
        const pc_kv *kv = &a->kv[i];
        if (has_nul(kv->key)) {
            snprintf(where, n, "%s", prefix);
            return true;
        }
        if (value_has_nul(&kv->value)) {
            snprintf(where, n, "%s.%.*s", prefix, (int)(kv->key.n < 64 ? kv->key.n : 64),
                     kv->key.p);
            return true;
        }
    }
    return false;
}

static bool value_has_nul(const pc_value *v)
{
    switch (v->type) {
    case PC_V_STR: return has_nul(v->s);
    case PC_V_ARRAY:
        for (size_t i = 0; i < v->arr.n; i++)
            if (value_has_nul(&v->arr.v[i])) return true;
        return false;
    case PC_V_MAP:
        for (size_t i = 0; i < v->map.n; i++)
            if (has_nul(v->map.kv[i].key) || value_has_nul(&v->map.kv[i].value)) return true;
        return false;
    default: return false; /* bytes are bytes: written as base64 */
    }
}

bool pc_span_find_nul(const pc_span *s, char *where, size_t n)
{
    const struct {
        const char *name;
        pc_str v;
    } fields[] = {{"trace_id", s->trace_id},         {"span_id", s->span_id},
                  {"parent_span_id", s->parent_id},  {"name", s->name},
                  {"trace_state", s->trace_state},   {"status", s->status_text},
                  {"status_message", s->status_message}, {"span_type", s->span_type_text},
                  {"service_name", s->service_hint}, {"service_name", s->service_name},
                  {"project_id", s->project_id}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (has_nul(fields[i].v)) {
            snprintf(where, n, "%s", fields[i].name);
            return true;
        }
    if (attrs_nul(&s->attrs, "attributes", where, n)) return true;
    char p[48];
    for (size_t i = 0; i < s->n_events; i++) {
        snprintf(p, sizeof(p), "events[%zu]", i);
        if (has_nul(s->events[i].name)) return snprintf(where, n, "%s.name", p), true;
        snprintf(p, sizeof(p), "events[%zu].attributes", i);
        if (attrs_nul(&s->events[i].attrs, p, where, n)) return true;
    }
    for (size_t i = 0; i < s->n_links; i++) {
        const pc_link *l = &s->links[i];
        snprintf(p, sizeof(p), "links[%zu]", i);
        if (has_nul(l->trace_id) || has_nul(l->span_id) || has_nul(l->trace_state))
            return snprintf(where, n, "%s", p), true;
        snprintf(p, sizeof(p), "links[%zu].attributes", i);
        if (attrs_nul(&l->attrs, p, where, n)) return true;
    }
    if (s->resource && attrs_nul(s->resource, "resource.attributes", where, n)) return true;
    if (s->scope) {
        if (has_nul(s->scope->name) || has_nul(s->scope->version))
            return snprintf(where, n, "scope"), true;
        if (attrs_nul(&s->scope->attrs, "scope.attributes", where, n)) return true;
    }
    return false;
}

/* ------------------------------------------------------------- limits -- */

const pc_span_limits pc_span_limits_default = {100000, 1024, 1024, 1024, 32};

/* How deeply arrays/maps nest inside |v| (a scalar: 0), counted up to |stop|
 * + 1 so a hostile value costs no more than the cap. Recursion is bounded by
 * the decoders' nesting limits. */
static int64_t value_depth(const pc_value *v, int64_t stop)
{
    if (v->type != PC_V_ARRAY && v->type != PC_V_MAP) return 0;
    if (stop < 0) return 1;
    int64_t deepest = 0;
    size_t n = v->type == PC_V_ARRAY ? v->arr.n : v->map.n;
    for (size_t i = 0; i < n && deepest <= stop; i++) {
        const pc_value *c = v->type == PC_V_ARRAY ? &v->arr.v[i] : &v->map.kv[i].value;
        int64_t d = value_depth(c, stop - 1);
        if (d > deepest) deepest = d;
    }
    return deepest + 1;
}

bool pc_attrs_over_limits(const pc_attrs *a, const pc_span_limits *l, const char *path, char *msg,
                          size_t n)
{
    if (!l) l = &pc_span_limits_default;
    if ((int64_t)a->n > l->max_attributes) {
        snprintf(msg, n, "%s: %zu attributes, more than max_attributes_per_span (%lld)", path, a->n,
                 (long long)l->max_attributes);
        return true;
    }
    for (size_t i = 0; i < a->n; i++) {
        int64_t d = value_depth(&a->kv[i].value, l->max_depth);
        if (d > l->max_depth) {
            const pc_str k = a->kv[i].key;
            int kn = k.n > 64 ? 64 : (int)k.n;
            snprintf(msg, n, "%s.%.*s: arrays/maps nested more than max_attribute_depth (%lld) deep",
                     path, kn, k.p ? k.p : "", (long long)l->max_depth);
            return true;
        }
    }
    return false;
}

bool pc_span_over_limits(const pc_span *s, const pc_span_limits *l, char *msg, size_t n)
{
    if (!l) l = &pc_span_limits_default;
    if ((int64_t)s->n_events > l->max_events) {
        snprintf(msg, n, "events: %zu events, more than max_events_per_span (%lld)", s->n_events,
                 (long long)l->max_events);
        return true;
    }
    if ((int64_t)s->n_links > l->max_links) {
        snprintf(msg, n, "links: %zu links, more than max_links_per_span (%lld)", s->n_links,
                 (long long)l->max_links);
        return true;
    }
    if (pc_attrs_over_limits(&s->attrs, l, "attributes", msg, n)) return true;
    char path[48];
    for (size_t i = 0; i < s->n_events; i++) {
        snprintf(path, sizeof(path), "events[%zu].attributes", i);
        if (pc_attrs_over_limits(&s->events[i].attrs, l, path, msg, n)) return true;
    }
    for (size_t i = 0; i < s->n_links; i++) {
        snprintf(path, sizeof(path), "links[%zu].attributes", i);
        if (pc_attrs_over_limits(&s->links[i].attrs, l, path, msg, n)) return true;
    }
    return false;
}
