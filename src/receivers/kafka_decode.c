/*
 * kafka_decode.c - decoders of the `kafka` exporter's messages (see
 * kafka_decode.h for what is restored and kafka_encode.h for the formats).
 *
 * prela_json goes through json.h into a pc_value tree in the batch's arena and
 * is read field by field: every field is optional except the two ids, but a
 * field that is present must have its type, else the message is poison with
 * a message naming the field ("events[2].time_unix_nano: expected an
 * integer"). Attribute objects are used in place (no copy): the tree already
 * is the pc_attrs representation.
 */
#include "kafka_decode.h"

#include "exporters/kafka_encode.h"
#include "json.h"
#include "receivers/otlp_decode.h"
#include "timefmt.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const encodings[] = {"prela_json", "otlp_proto", "otlp_json", "auto", NULL};
static const char *const kind_names[] = {"unspecified", "internal", "server",
                                         "client",      "producer", "consumer"};

int pc_kafka_encoding_parse(const char *s)
{
    for (int i = 0; s && encodings[i]; i++)
        if (!strcasecmp(s, encodings[i])) return i;
    return -1;
}

/* --------------------------------------------------------- prela_json -- */

typedef struct dec {
    pc_batch *b;
    pc_kafka_decode_result *res;
} dec;

/* Fails the message: "<where>.<field>: <what>". Returns -1. */
static int fail(dec *d, const char *where, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(dec *d, const char *where, const char *field, const char *fmt, ...)
{
    int n = snprintf(d->res->error, sizeof(d->res->error), "%s%s%s: ", where,
                     *where && *field ? "." : "", field);
    if (n < 0 || (size_t)n >= sizeof(d->res->error)) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->res->error + n, sizeof(d->res->error) - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Present and not null. */
static const pc_value *get(const pc_value *obj, const char *k)
{
    const pc_value *v = pc_json_get(obj, k);
    return v && v->type != PC_V_NULL ? v : NULL;
}

/* A string field; absent or null gives empty. */
static int get_str(dec *d, const pc_value *o, const char *k, const char *w, pc_str *out)
{
    const pc_value *v = get(o, k);
    *out = PC_STR_NULL;
    if (!v) return 0;
    if (v->type != PC_V_STR) return fail(d, w, k, "expected a string");
    *out = v->s;
    return 0;
}

/* An integer field within lo..hi; absent or null leaves |*out|. */
static int get_int(dec *d, const pc_value *o, const char *k, const char *w, int64_t lo, int64_t hi,
                   int64_t *out)
{
    const pc_value *v = get(o, k);
    if (!v) return 0;
    if (v->type != PC_V_INT) return fail(d, w, k, "expected an integer");
    if (v->i < lo || v->i > hi) return fail(d, w, k, "%lld out of range", (long long)v->i);
    *out = v->i;
    return 0;
}

static int get_attrs(dec *d, const pc_value *o, const char *k, const char *w, pc_attrs *out)
{
    const pc_value *v = get(o, k);
    *out = pc_empty_attrs;
    if (!v) return 0;
    if (v->type != PC_V_MAP) return fail(d, w, k, "expected an object");
    *out = (pc_attrs){v->map.kv, v->map.n};
    return 0;
}

/* An array field: sets |*arr| (NULL when absent). */
static int get_array(dec *d, const pc_value *o, const char *k, const pc_value **arr)
{
    *arr = get(o, k);
    if (*arr && (*arr)->type != PC_V_ARRAY) return fail(d, "", k, "expected a list");
    return 0;
}

static int decode_events(dec *d, const pc_value *o, pc_span *s)
{
    const pc_value *a;
    if (get_array(d, o, "events", &a)) return -1;
    if (!a || !a->arr.n) return 0;
    s->events = pc_arena_calloc(d->b->arena, a->arr.n * sizeof(*s->events));
    s->n_events = a->arr.n;
    for (size_t i = 0; i < a->arr.n; i++) {
        const pc_value *e = &a->arr.v[i];
        pc_event *ev = &s->events[i];
        char w[40];
        snprintf(w, sizeof(w), "events[%zu]", i);
        if (e->type != PC_V_MAP) return fail(d, w, "", "expected an object");
        if (get_str(d, e, "name", w, &ev->name) ||
            get_attrs(d, e, "attributes", w, &ev->attrs))
            return -1;
        if (get(e, "time_unix_nano")) {
            if (get_int(d, e, "time_unix_nano", w, 0, INT64_MAX, &ev->time_ns)) return -1;
        } else {
            pc_str ts;
            if (get_str(d, e, "timestamp", w, &ts)) return -1;
            if (ts.n && pc_time_parse(ts.p, ts.n, &ev->time_ns))
                return fail(d, w, "timestamp", "not an ISO-8601 timestamp");
            if (!pc_time_in_range(ev->time_ns))
                return fail(d, w, "timestamp", "out of range (%s)", PC_TIME_RANGE_TEXT);
        }
    }
    return 0;
}

static int decode_links(dec *d, const pc_value *o, pc_span *s)
{
    const pc_value *a;
    if (get_array(d, o, "links", &a)) return -1;
    if (!a || !a->arr.n) return 0;
    s->links = pc_arena_calloc(d->b->arena, a->arr.n * sizeof(*s->links));
    s->n_links = a->arr.n;
    for (size_t i = 0; i < a->arr.n; i++) {
        const pc_value *l = &a->arr.v[i];
        pc_link *lk = &s->links[i];
        char w[40];
        snprintf(w, sizeof(w), "links[%zu]", i);
        if (l->type != PC_V_MAP) return fail(d, w, "", "expected an object");
        if (get_str(d, l, "trace_id", w, &lk->trace_id) ||
            get_str(d, l, "span_id", w, &lk->span_id) ||
            get_str(d, l, "trace_state", w, &lk->trace_state) ||
            get_attrs(d, l, "attributes", w, &lk->attrs))
            return -1;
    }
    return 0;
}

static int decode_scope(dec *d, const pc_value *o, pc_span *s)
{
    const pc_value *v = get(o, "scope");
    if (!v) return 0;
    if (v->type != PC_V_MAP) return fail(d, "", "scope", "expected an object");
    pc_scope sc;
    if (get_str(d, v, "name", "scope", &sc.name) || get_str(d, v, "version", "scope", &sc.version) ||
        get_attrs(d, v, "attributes", "scope", &sc.attrs))
        return -1;
    if (!sc.name.n && !sc.version.n && !sc.attrs.n) return 0; /* keep pc_empty_scope */
    pc_scope *p = pc_arena_alloc(d->b->arena, sizeof(*p));
    *p = sc;
    s->scope = p;
    return 0;
}

/* Decodes an enum field given by name (or, leniently, by number); -1 / index. */
static int get_enum(dec *d, const pc_value *o, const char *k, const char *const *names, int n,
                    int dflt, int *out)
{
    const pc_value *v = get(o, k);
    *out = dflt;
    if (!v) return 0;
    if (v->type == PC_V_INT && v->i >= 0 && v->i < n) {
        *out = (int)v->i;
        return 0;
    }
    if (v->type == PC_V_STR)
        for (int i = 0; i < n; i++)
            if (v->s.n == strlen(names[i]) && !strncasecmp(v->s.p, names[i], v->s.n)) {
                *out = i;
                return 0;
            }
    return fail(d, "", k, "unknown value");
}

static int decode_prela_span(dec *d, const pc_value *o, pc_span *s, int64_t msg_time_ns)
{
    static const char *const sources[] = {"prela", "otlp"};
    static const char *const statuses[] = {"pending", "success", "error"};
    static const char *const types[] = {"custom", "agent", "llm", "tool", "retrieval", "embedding"};
    int64_t code = 0, flags = 0, received = 0, in = -1, out = -1;
    int kind, source, status, type;
    pc_attrs resource;
    if (get_str(d, o, "trace_id", "", &s->trace_id) || get_str(d, o, "span_id", "", &s->span_id))
        return -1;
    if (!s->trace_id.n) return fail(d, "", "trace_id", "required");
    if (!s->span_id.n) return fail(d, "", "span_id", "required");
    if (get_str(d, o, "parent_span_id", "", &s->parent_id) ||
        get_str(d, o, "trace_state", "", &s->trace_state) ||
        get_str(d, o, "name", "", &s->name) ||
        get_enum(d, o, "kind", kind_names, 6, 0, &kind) ||
        get_enum(d, o, "span_type", types, PC_TYPE_COUNT, PC_TYPE_CUSTOM, &type) ||
        get_str(d, o, "service_name", "", &s->service_name) ||
        get_str(d, o, "project_id", "", &s->project_id) ||
        get_enum(d, o, "source", sources, 2, PC_SOURCE_PRELA, &source) ||
        get_int(d, o, "start_time_unix_nano", "", 0, INT64_MAX, &s->start_ns) ||
        get_int(d, o, "end_time_unix_nano", "", 0, INT64_MAX, &s->end_ns) ||
        get_enum(d, o, "status", statuses, 3, PC_STATUS_PENDING, &status) ||
        get_int(d, o, "status_code", "", 0, 2, &code) ||
        get_str(d, o, "status_message", "", &s->status_message) ||
        get_int(d, o, "flags", "", 0, UINT32_MAX, &flags) ||
        get_attrs(d, o, "attributes", "", &s->attrs) || decode_events(d, o, s) ||
        decode_links(d, o, s) || get_attrs(d, o, "resource", "", &resource) ||
        decode_scope(d, o, s) || get_str(d, o, "llm_provider", "", &s->llm_provider) ||
        get_str(d, o, "llm_model", "", &s->llm_model) ||
        get_int(d, o, "input_tokens", "", 0, INT64_MAX, &in) ||
        get_int(d, o, "output_tokens", "", 0, INT64_MAX, &out) ||
        get_int(d, o, "received_time_unix_nano", "", 0, INT64_MAX, &received))
        return -1;
    s->kind = kind;
    s->source = (pc_source)source;
    s->status_code = (int)code;
    s->flags = (uint32_t)flags;
    s->span_type = (pc_span_type)type;
    s->status = (pc_status)status;
    s->input_tokens = in;
    s->output_tokens = out;
    s->received_ns = received ? received : msg_time_ns;
    if (resource.n) {
        pc_attrs *r = pc_arena_alloc(d->b->arena, sizeof(*r));
        *r = resource;
        s->resource = r;
    }
    /* the raw hints normalize reads first, so it derives the same again */
    const char *tn = pc_span_type_name(s->span_type);
    s->span_type_text = (pc_str){tn, strlen(tn)};
    s->service_hint = s->service_name;
    if (s->source == PC_SOURCE_PRELA) {
        const char *sn = pc_status_name(s->status);
        s->status_text = (pc_str){sn, strlen(sn)};
    }
    char nul[96]; /* what a gateway never writes (see pc_span_find_nul) */
    if (pc_span_find_nul(s, nul, sizeof(nul)))
        return fail(d, "", nul, "U+0000 in a string is not supported");
    return 0;
}

static pc_kafka_decoded decode_prela(pc_batch *b, const void *buf, size_t len, int64_t msg_time_ns,
                                     pc_kafka_decode_result *res)
{
    dec d = {b, res};
    const char *text = pc_arena_strndup(b->arena, buf, len);
    pc_value root;
    pc_json_error jerr;
    if (pc_json_parse(b->arena, text, len, &root, &jerr)) {
        snprintf(res->error, sizeof(res->error), "invalid JSON: %s", jerr.msg);
        return PC_KAFKA_POISON;
    }
    if (root.type != PC_V_MAP) {
        snprintf(res->error, sizeof(res->error), "expected a JSON object");
        return PC_KAFKA_POISON;
    }
    if (pc_json_get(&root, "span_count") && !pc_json_get(&root, "span_id")) return PC_KAFKA_SUMMARY;
    pc_span *s = pc_batch_add(b);
    if (decode_prela_span(&d, &root, s, msg_time_ns)) {
        pc_batch_pop(b);
        return PC_KAFKA_POISON;
    }
    res->spans = 1;
    return PC_KAFKA_SPANS;
}

/* ---------------------------------------------------------------- OTLP -- */

/* Removes attribute |i| of |a| (the span's own array), keeping the order. */
static void attr_remove(pc_attrs *a, size_t i)
{
    memmove(&a->kv[i], &a->kv[i + 1], (a->n - i - 1) * sizeof(*a->kv));
    a->n--;
}

/*
 * Undoes the Prela conventions of kafka_encode.h on one decoded span: the
 * reserved attributes set the ids and the type, and a key the encoder escaped
 * (a client's own attribute) loses one PC_KAFKA_ATTR_ESCAPE prefix.
 */
static void restore_prela(pc_span *s)
{
    const size_t pn = sizeof(PC_KAFKA_ATTR_ESCAPE) - 1;
    for (size_t i = 0; i < s->attrs.n;) {
        pc_kv *kv = &s->attrs.kv[i];
        pc_str *id = NULL;
        if (kv->key.n >= pn && !memcmp(kv->key.p, PC_KAFKA_ATTR_ESCAPE, pn)) {
            kv->key.p += pn;
            kv->key.n -= pn;
            i++;
            continue;
        }
        if (kv->value.type == PC_V_STR && kv->key.n > 6 && !memcmp(kv->key.p, "prela.", 6)) {
            if (pc_str_eq(kv->key, "prela.trace_id")) id = &s->trace_id;
            else if (pc_str_eq(kv->key, "prela.span_id")) id = &s->span_id;
            else if (pc_str_eq(kv->key, "prela.parent_span_id")) id = &s->parent_id;
            else if (pc_str_eq(kv->key, "prela.span_type")) {
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
}

static pc_kafka_decoded decode_otlp(pc_batch *b, bool json, const void *buf, size_t len,
                                    int64_t msg_time_ns, pc_kafka_decode_result *res)
{
    size_t before = b->n;
    pc_otlp_result r;
    int rc;
    if (json) {
        const char *text = pc_arena_strndup(b->arena, buf, len);
        rc = pc_otlp_decode_json(b, text, len, NULL, "", NULL, &r);
    } else {
        rc = pc_otlp_decode_proto(b, buf, len, NULL, "", NULL, &r);
    }
    snprintf(res->error, sizeof(res->error), "%s", r.error);
    if (rc < 0 || b->n == before) {
        b->n = before;
        if (rc == 0)
            snprintf(res->error, sizeof(res->error), "no spans%s%.480s", r.error[0] ? ": " : "",
                     r.error);
        return PC_KAFKA_POISON;
    }
    res->rejected = r.rejected;
    for (size_t i = before; i < b->n; i++) {
        pc_span *s = &b->spans[i];
        restore_prela(s);
        s->received_ns = msg_time_ns;
    }
    res->spans = b->n - before;
    return PC_KAFKA_SPANS;
}

/* JSON whitespace. */
static bool json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

pc_kafka_encoding pc_kafka_encoding_detect(const void *buf, size_t len)
{
    const char *p = buf, *end = p + len;
    if (p == end || *p != '{') return PC_KAFKA_OTLP_PROTO;
    for (p++; p < end && json_ws(*p);) p++;
    static const char *const keys[] = {"\"resourceSpans\"", "\"resource_spans\""};
    for (int i = 0; i < 2; i++) {
        size_t k = strlen(keys[i]);
        if ((size_t)(end - p) >= k && memcmp(p, keys[i], k) == 0) return PC_KAFKA_OTLP_JSON;
    }
    return PC_KAFKA_PRELA_JSON;
}

pc_kafka_decoded pc_kafka_decode(pc_batch *b, pc_kafka_encoding encoding, const void *buf,
                                 size_t len, int64_t msg_time_ns, pc_kafka_decode_result *res)
{
    memset(res, 0, sizeof(*res));
    if (!buf) buf = "";
    if (encoding == PC_KAFKA_AUTO) encoding = pc_kafka_encoding_detect(buf, len);
    switch (encoding) {
    case PC_KAFKA_OTLP_PROTO: return decode_otlp(b, false, buf, len, msg_time_ns, res);
    case PC_KAFKA_OTLP_JSON: return decode_otlp(b, true, buf, len, msg_time_ns, res);
    default: return decode_prela(b, buf, len, msg_time_ns, res);
    }
}
