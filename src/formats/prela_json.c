/*
 * prela_json.c - Prela JSON (prela_json.h): the SDK's span objects read into
 * the span model, and the span messages and trace summaries of the kafka
 * exporter's prela_json encoding written and read back.
 *
 * Readers go through json.h into a pc_value tree in the batch's arena and read
 * it field by field; attribute objects are used in place (the tree already is
 * the pc_attrs representation). Writers write JSON straight into a pc_buf with
 * json.h and span.h's model encoders (no printf).
 *
 * Memory: decoded strings point into the JSON text, which lives in the batch's
 * arena (the request body, or a copy of the message); nothing is freed per span.
 */
#include "formats/prela_json.h"

#include "json.h"
#include "timefmt.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_ID_LEN 256

static const char *const kind_names[] = {"unspecified", "internal", "server",
                                         "client",      "producer", "consumer"};

/* ------------------------------------------------------ SDK span objects -- */

static int sdk_fail(char *err, size_t errlen, const char *where, const char *field,
                     const char *msg)
{
    snprintf(err, errlen, "%s%s%s: %s", where, *where ? "." : "", field, msg);
    return -1;
}

/* Reads an optional string (or integer id) field; null and absence give empty. */
static int sdk_str(const pc_value *obj, const char *field, pc_batch *b, pc_str *out,
                   const char *where, char *err, size_t errlen)
{
    const pc_value *v = pc_json_get(obj, field);
    *out = PC_STR_NULL;
    if (!v || v->type == PC_V_NULL) return 0;
    if (v->type == PC_V_STR) {
        *out = v->s;
        return 0;
    }
    if (v->type == PC_V_INT) {
        char tmp[24];
        int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v->i);
        out->p = pc_arena_strndup(b->arena, tmp, (size_t)n);
        out->n = (size_t)n;
        return 0;
    }
    return sdk_fail(err, errlen, where, field, "expected a string");
}

static int sdk_id(const pc_value *obj, const char *field, pc_batch *b, pc_str *out,
                  const char *where, int required, char *err, size_t errlen)
{
    if (sdk_str(obj, field, b, out, where, err, errlen)) return -1;
    if (required && !out->n) return sdk_fail(err, errlen, where, field, "required");
    if (out->n > MAX_ID_LEN)
        return sdk_fail(err, errlen, where, field, "longer than 256 bytes");
    return 0;
}

/*
 * Reads a timestamp: ISO-8601 text or epoch seconds (an int or a double).
 * Absent/null leaves |*ns|. Every time must lie in the collector's range
 * (timefmt.h: 1970 .. 2262), else "<field>: out of range (...)".
 */
static int sdk_time(const pc_value *obj, const char *field, int64_t *ns, const char *where,
                    char *err, size_t errlen)
{
    const pc_value *v = pc_json_get(obj, field);
    if (!v || v->type == PC_V_NULL) return 0;
    int64_t t;
    if (v->type == PC_V_STR) {
        if (pc_time_parse(v->s.p, v->s.n, &t) == 0) {
            if (!pc_time_in_range(t)) goto out_of_range;
            *ns = t;
            return 0;
        }
        char msg[160];
        snprintf(msg, sizeof(msg), "\"%.*s\" is not an ISO-8601 timestamp",
                 (int)(v->s.n < 60 ? v->s.n : 60), v->s.p);
        for (char *c = msg; *c; c++)
            if ((unsigned char)*c < 0x20) *c = '?';
        return sdk_fail(err, errlen, where, field, msg);
    }
    if (v->type == PC_V_INT || v->type == PC_V_DOUBLE) {
        if (v->type == PC_V_INT ? pc_time_from_secs(v->i, &t) : pc_time_from_secs_f(v->d, &t))
            goto out_of_range;
        *ns = t;
        return 0;
    }
    return sdk_fail(err, errlen, where, field, "expected an ISO-8601 timestamp");
out_of_range:
    return sdk_fail(err, errlen, where, field, "out of range (" PC_TIME_RANGE_TEXT ")");
}

/*
 * The end of |s| from "duration_ms" (an int or a double, after the start),
 * when "ended_at" gave none. Zero, negative and NaN durations are ignored;
 * an end past the range (Infinity included) is "duration_ms: out of range".
 */
static int sdk_duration(const pc_value *obj, pc_span *s, const char *where, char *err,
                        size_t errlen)
{
    const pc_value *d = pc_json_get(obj, "duration_ms");
    if (s->end_ns || !d) return 0;
    int rc = 0;
    if (d->type == PC_V_INT && d->i > 0) rc = pc_time_add_ms(s->start_ns, d->i, &s->end_ns);
    else if (d->type == PC_V_DOUBLE && d->d > 0)
        rc = pc_time_add_ms_f(s->start_ns, d->d, &s->end_ns);
    if (rc)
        return sdk_fail(err, errlen, where, "duration_ms",
                         "out of range (" PC_TIME_RANGE_TEXT ")");
    return 0;
}

static int sdk_attrs(const pc_value *obj, const char *field, pc_attrs *out, const char *where,
                     char *err, size_t errlen)
{
    const pc_value *v = pc_json_get(obj, field);
    *out = pc_empty_attrs;
    if (!v || v->type == PC_V_NULL) return 0;
    if (v->type != PC_V_MAP) return sdk_fail(err, errlen, where, field, "expected an object");
    out->kv = v->map.kv;
    out->n = v->map.n;
    return 0;
}

static int sdk_events(pc_batch *b, const pc_value *obj, pc_span *s, int64_t dflt_ns,
                      const char *where, char *err, size_t errlen)
{
    const pc_value *v = pc_json_get(obj, "events");
    if (!v || v->type == PC_V_NULL) return 0;
    if (v->type != PC_V_ARRAY) return sdk_fail(err, errlen, where, "events", "expected a list");
    s->events = v->arr.n ? pc_arena_alloc(b->arena, v->arr.n * sizeof(pc_event)) : NULL;
    s->n_events = v->arr.n;
    for (size_t i = 0; i < v->arr.n; i++) {
        const pc_value *e = &v->arr.v[i];
        char w[96];
        snprintf(w, sizeof(w), "%s%sevents[%zu]", where, *where ? "." : "", i);
        if (e->type != PC_V_MAP) return sdk_fail(err, errlen, w, "", "expected an object");
        pc_event *ev = &s->events[i];
        ev->time_ns = dflt_ns;
        if (sdk_str(e, "name", b, &ev->name, w, err, errlen) ||
            sdk_time(e, "timestamp", &ev->time_ns, w, err, errlen) ||
            sdk_attrs(e, "attributes", &ev->attrs, w, err, errlen))
            return -1;
    }
    return 0;
}

int pc_prela_json_decode_sdk_span(pc_batch *b, const pc_value *obj, const char *where, pc_str trace_id,
                         pc_str service, pc_str project, char *err, size_t errlen)
{
    if (obj->type != PC_V_MAP) {
        snprintf(err, errlen, "%s: expected a span object", *where ? where : "body");
        return -1;
    }
    pc_span tmp;
    memset(&tmp, 0, sizeof(tmp));
    pc_span *s = &tmp;
    if (sdk_id(obj, "span_id", b, &s->span_id, where, 1, err, errlen)) return -1;
    if (trace_id.n) s->trace_id = trace_id;
    else if (sdk_id(obj, "trace_id", b, &s->trace_id, where, 1, err, errlen)) return -1;
    s->start_ns = b->received_ns;
    if (sdk_id(obj, "parent_span_id", b, &s->parent_id, where, 0, err, errlen) ||
        sdk_str(obj, "name", b, &s->name, where, err, errlen) ||
        sdk_str(obj, "span_type", b, &s->span_type_text, where, err, errlen) ||
        sdk_str(obj, "status", b, &s->status_text, where, err, errlen) ||
        sdk_str(obj, "status_message", b, &s->status_message, where, err, errlen) ||
        sdk_str(obj, "service_name", b, &s->service_hint, where, err, errlen) ||
        sdk_time(obj, "started_at", &s->start_ns, where, err, errlen) ||
        sdk_time(obj, "ended_at", &s->end_ns, where, err, errlen) ||
        sdk_attrs(obj, "attributes", &s->attrs, where, err, errlen) ||
        sdk_events(b, obj, s, s->start_ns, where, err, errlen) ||
        sdk_duration(obj, s, where, err, errlen))
        return -1;
    if (!s->service_hint.n) s->service_hint = service;
    s->project_id = project;
    char nul[96];
    if (pc_span_find_nul(s, nul, sizeof(nul)))
        return sdk_fail(err, errlen, where, nul, "U+0000 in a string is not supported");
    s->source = PC_SOURCE_PRELA;
    pc_span *dst = pc_batch_add(b);
    tmp.resource = dst->resource;
    tmp.scope = dst->scope;
    tmp.input_tokens = tmp.output_tokens = -1;
    tmp.cache_read_tokens = tmp.cache_write_tokens = tmp.reasoning_tokens = -1;
    *dst = tmp;
    return 0;
}

int pc_prela_json_decode_sdk_trace(pc_batch *b, const pc_value *root, pc_str *trace_id,
                                   pc_str *service, char *err, size_t errlen)
{
    return sdk_id(root, "trace_id", b, trace_id, "", 1, err, errlen) ||
                   sdk_str(root, "service_name", b, service, "", err, errlen)
               ? -1
               : 0;
}

/* ------------------------------------------------ span messages: write -- */

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

void pc_prela_json_encode_span(pc_buf *b, const pc_span *s, int64_t received_ns)
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
    if (s->carrier) { /* events for a span, not a span (span.h) */
        KEY(b, "carrier");
        pc_buf_lit(b, "true");
    }
    pc_buf_putc(b, '}');
}

void pc_prela_json_encode_trace(pc_buf *b, const pc_span *const *spans, size_t n, int64_t received_ns)
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

/* ------------------------------------------------- span messages: read -- */

typedef struct dec {
    pc_batch *b;
    char *err;
    size_t errlen;
} dec;

/* Fails the message: "<where>.<field>: <what>". Returns -1. */
static int fail(dec *d, const char *where, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(dec *d, const char *where, const char *field, const char *fmt, ...)
{
    int n = snprintf(d->err, d->errlen, "%s%s%s: ", where,
                     *where && *field ? "." : "", field);
    if (n < 0 || (size_t)n >= d->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
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
    const pc_value *carrier = get(o, "carrier");
    s->carrier = carrier && carrier->type == PC_V_BOOL && carrier->b;
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

int pc_prela_json_decode_message(pc_batch *b, const void *buf, size_t len, int64_t msg_time_ns,
                                 char *err, size_t errlen)
{
    dec d = {b, err, errlen};
    const char *text = pc_arena_strndup(b->arena, buf, len);
    pc_value root;
    pc_json_error jerr;
    err[0] = '\0';
    if (pc_json_parse(b->arena, text, len, &root, &jerr)) {
        snprintf(err, errlen, "invalid JSON: %s", jerr.msg);
        return -1;
    }
    if (root.type != PC_V_MAP) {
        snprintf(err, errlen, "expected a JSON object");
        return -1;
    }
    if (pc_json_get(&root, "span_count") && !pc_json_get(&root, "span_id")) return 1;
    pc_span *s = pc_batch_add(b);
    if (decode_prela_span(&d, &root, s, msg_time_ns)) {
        pc_batch_pop(b);
        return -1;
    }
    return 0;
}
