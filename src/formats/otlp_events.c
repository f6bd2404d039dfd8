/*
 * otlp_events.c - GenAI log records -> carriers of span events (the contract
 * is in otlp_events.h).
 *
 * Data flow: the OTLP receiver, after otlp_signal.c checked a logs request
 * → pc_otlp_events_carriers unpacks the protobuf once more, into the carrier
 * batch's arena (so the carriers outlive the logs batch), walks resource →
 * scope → record, converts each GenAI record's attributes and body into the
 * span model's typed values, and appends an event to the carrier of the run
 * it belongs to → the traces pipeline.
 *
 * Runs: consecutive records of the same (project, trace, span) share one
 * carrier, up to max_events events; a record of another span, or a full
 * carrier, starts a new one. Instrumentations emit a call's records together,
 * so one chat call costs one carrier, and 10^5 records of one span cost
 * 10^5 / max_events carriers, not 10^5.
 */
#include "formats/otlp_events.h"

#include "formats/otlp.h"
#include "formats/protobuf.h"

#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"

#include <string.h>

typedef Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest pb_logs_req;
typedef Opentelemetry__Proto__Logs__V1__LogRecord pb_record;
typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;

bool pc_otlp_events_genai(pc_str name)
{
    return name.n > 7 && memcmp(name.p, "gen_ai.", 7) == 0;
}

/* ---------------------------------------------------------------- values */

static pc_str cstr(const char *s)
{
    return s ? (pc_str){s, strlen(s)} : PC_STR_LIT("");
}

static void any_in(pc_arena *a, const pb_any *in, pc_value *out, int depth);

/* Key/value pairs into |*kv| (arena); pairs without a key are left out, as
 * the trace decoder does (OTLP forbids them). Returns the number kept. */
static size_t kvs_in(pc_arena *a, pb_kv *const *in, size_t n, pc_kv **kv, int depth)
{
    *kv = n ? pc_arena_alloc(a, n * sizeof(**kv)) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in[i]->key || !in[i]->key[0]) continue;
        (*kv)[k].key = cstr(in[i]->key);
        any_in(a, in[i]->value, &(*kv)[k].value, depth);
        k++;
    }
    return k;
}

/* An AnyValue into the span model's value. |depth|: how deep it sits;
 * pc_pb_unpack bounded the nesting, and the caller checks max_depth after. */
static void any_in(pc_arena *a, const pb_any *in, pc_value *out, int depth)
{
    memset(out, 0, sizeof(*out));
    if (!in) return; /* PC_V_NULL */
    switch (in->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        out->type = PC_V_STR;
        out->s = cstr(in->string_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        out->type = PC_V_BOOL;
        out->b = in->bool_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        out->type = PC_V_INT;
        out->i = in->int_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        out->type = PC_V_DOUBLE;
        out->d = in->double_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        out->type = PC_V_BYTES;
        out->s = (pc_str){(const char *)in->bytes_value.data, in->bytes_value.len};
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE: {
        out->type = PC_V_ARRAY;
        size_t n = in->array_value ? in->array_value->n_values : 0;
        out->arr.v = n ? pc_arena_alloc(a, n * sizeof(pc_value)) : NULL;
        out->arr.n = n;
        for (size_t i = 0; i < n; i++)
            any_in(a, in->array_value->values[i], &out->arr.v[i], depth + 1);
        break;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        out->type = PC_V_MAP;
        if (in->kvlist_value)
            out->map.n = kvs_in(a, in->kvlist_value->values, in->kvlist_value->n_values,
                                &out->map.kv, depth + 1);
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------- records */

/* The record's event name: event_name, else a string attribute event.name. */
static pc_str event_name(const pb_record *r)
{
    if (r->event_name && r->event_name[0]) return cstr(r->event_name);
    for (size_t i = 0; i < r->n_attributes; i++) {
        const pb_kv *kv = r->attributes[i];
        if (kv->key && strcmp(kv->key, "event.name") == 0 && kv->value &&
            kv->value->value_case ==
                OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
            return cstr(kv->value->string_value);
    }
    return PC_STR_NULL;
}

/* True when |id| has |want| bytes, not all zero. */
static bool id_ok(const ProtobufCBinaryData *id, size_t want)
{
    if (id->len != want) return false;
    for (size_t i = 0; i < want; i++)
        if (id->data[i]) return true;
    return false;
}

/* The project of records under |res| (pc_otlp_project's rule). */
static pc_str res_project(const pc_otlp_dec *d, const Opentelemetry__Proto__Resource__V1__Resource *res)
{
    if (d->project.n) return d->project;
    for (size_t i = 0; res && i < res->n_attributes; i++) {
        const pb_kv *kv = res->attributes[i];
        if (kv->key && strcmp(kv->key, "prela.project_id") == 0 && kv->value &&
            kv->value->value_case ==
                OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
            kv->value->string_value && kv->value->string_value[0])
            return cstr(kv->value->string_value);
    }
    return d->default_project;
}

/* Lowercase hex of |n| bytes, in the arena. */
static pc_str hex(pc_arena *a, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *o = pc_arena_alloc(a, 2 * n);
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = digits[p[i] >> 4];
        o[2 * i + 1] = digits[p[i] & 15];
    }
    return (pc_str){o, 2 * n};
}

/* One conversion in progress. */
typedef struct conv {
    pc_batch *out;
    pc_arena *a;
    const pc_span_limits *limits;
    size_t cap;      /* events room of the current carrier */
    size_t max_used; /* arena bytes the carriers may reach */
    int64_t attached, skipped;
    uint8_t last_t[16], last_s[8]; /* the ids and project of the last carrier */
    pc_str last_proj;
    bool have_last;
} conv;

/* The carrier the event of a record of (project, trace, span) goes into: the
 * last one when it is of the same span and has room, else a new one. */
static pc_span *carrier_for(conv *c, pc_str project, const pb_record *r)
{
    pc_batch *b = c->out;
    if (b->n && c->have_last && (int64_t)b->spans[b->n - 1].n_events < c->limits->max_events &&
        !memcmp(c->last_t, r->trace_id.data, 16) && !memcmp(c->last_s, r->span_id.data, 8) &&
        project.n == c->last_proj.n && !memcmp(project.p, c->last_proj.p, project.n)) {
        pc_span *last = &b->spans[b->n - 1];
        if (last->n_events == c->cap) {
            size_t ncap = c->cap * 2;
            last->events = pc_arena_realloc(c->a, last->events, c->cap * sizeof(pc_event),
                                            ncap * sizeof(pc_event));
            c->cap = ncap;
        }
        return last;
    }
    pc_span *s = pc_batch_add(b);
    s->carrier = true;
    s->source = PC_SOURCE_OTLP;
    s->project_id = project;
    s->trace_id = hex(c->a, r->trace_id.data, 16);
    s->span_id = hex(c->a, r->span_id.data, 8);
    s->parent_id = s->trace_state = s->name = s->status_message = PC_STR_LIT("");
    s->status_text = s->span_type_text = s->service_hint = PC_STR_LIT("");
    s->received_ns = b->received_ns;
    c->cap = 4;
    s->events = pc_arena_alloc(c->a, c->cap * sizeof(pc_event));
    memcpy(c->last_t, r->trace_id.data, 16);
    memcpy(c->last_s, r->span_id.data, 8);
    c->last_proj = project;
    c->have_last = true;
    return s;
}

/* Attaches record |r| (of a resource whose project is |project|) when it is
 * a GenAI event with usable ids. */
static void record_in(conv *c, pc_str project, const pb_record *r)
{
    pc_str name = event_name(r);
    if (!pc_otlp_events_genai(name) || !id_ok(&r->trace_id, 16) || !id_ok(&r->span_id, 8)) return;
    if (pc_arena_used(c->a) > c->max_used) {
        c->skipped++;
        return;
    }
    pc_event ev = {.name = name};
    ev.time_ns = (int64_t)(r->time_unix_nano ? r->time_unix_nano : r->observed_time_unix_nano);
    if (ev.time_ns < 0) ev.time_ns = INT64_MAX; /* past year 2262: as far as it goes */
    ev.dropped_attributes_count = r->dropped_attributes_count;
    size_t n = r->n_attributes + (r->body ? 1 : 0);
    pc_kv *kv = n ? pc_arena_alloc(c->a, n * sizeof(*kv)) : NULL;
    size_t k = 0;
    if (r->body) {
        kv[0].key = PC_STR_LIT("body");
        any_in(c->a, r->body, &kv[0].value, 1);
        k = 1;
    }
    pc_kv *rest = NULL;
    size_t m = kvs_in(c->a, r->attributes, r->n_attributes, &rest, 1);
    if (m) memcpy(kv + k, rest, m * sizeof(*kv));
    ev.attrs = (pc_attrs){kv, k + m};
    char msg[160];
    if (pc_attrs_over_limits(&ev.attrs, c->limits, "attributes", msg, sizeof(msg))) {
        c->skipped++;
        return;
    }
    pc_span *s = carrier_for(c, project, r);
    s->events[s->n_events++] = ev;
    c->attached++;
}

int64_t pc_otlp_events_carriers(pc_batch *out, pc_str raw, const char *project,
                                const char *default_project, const pc_span_limits *limits,
                                int64_t *skipped)
{
    pc_otlp_result res;
    pc_otlp_dec d;
    pc_otlp_dec_init(&d, out, project, default_project, &res);
    *skipped = 0;
    const pb_logs_req *req = (const pb_logs_req *)pc_pb_unpack(
        &d, &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
        raw.p, raw.n);
    if (!req) return -1;
    conv c = {.out = out, .a = out->arena, .limits = limits ? limits : &pc_span_limits_default};
    c.max_used = pc_arena_used(out->arena) + PC_OTLP_EVENTS_FACTOR * raw.n + (1u << 20);
    for (size_t i = 0; i < req->n_resource_logs; i++) {
        const Opentelemetry__Proto__Logs__V1__ResourceLogs *rl = req->resource_logs[i];
        pc_str proj = res_project(&d, rl->resource);
        for (size_t j = 0; j < rl->n_scope_logs; j++) {
            const Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = rl->scope_logs[j];
            for (size_t k = 0; k < sl->n_log_records; k++)
                record_in(&c, proj, sl->log_records[k]);
        }
    }
    *skipped = c.skipped;
    if (pc_arena_over(out->arena)) return -1;
    return c.attached;
}
