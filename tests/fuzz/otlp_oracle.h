/*
 * otlp_oracle.h - protobuf-c as the oracle of the OTLP trace wire reader.
 *
 * pc_otlp_proto_decode (otlp_proto_decode.c) reads an ExportTraceServiceRequest
 * straight from the wire into the span model. This header says what it must
 * produce from the same bytes as protobuf_c_message_unpack sees them:
 * oracle_compare() walks the unpacked request and the decoded batch side by
 * side and names the first field that differs. Used by the unit test
 * tests/unit/formats/test_otlp_proto_decode.c (random requests) and the fuzz target
 * fuzz_otlp_proto.c (any input protobuf-c accepts).
 *
 * The rules it encodes, beyond "same value": spans with unusable ids (their
 * own or a link's) are left out and counted; ids become lowercase hex; an
 * attribute (span, event, link, scope, resource) with an empty key is left out
 * and counted in the owner's dropped_attributes_count (the resource has no
 * such field in the model); kvlist entries keep empty keys; kind and status
 * code are clamped; the project comes from the header, the resource attribute
 * prela.project_id, or the default. Intended differences, which callers
 * exclude before comparing: strings with a NUL (protobuf-c cuts them, the
 * reader refuses them), invalid UTF-8 (protobuf-c does not check), and a
 * singular message field repeated on the wire (oracle_merges(): protobuf-c's
 * merge of proto3 scalars is not the spec's; the reader parses the
 * concatenation, which is the spec's merge).
 *
 * Header-only, static inline functions: each test or target is one file.
 */
#ifndef PC_OTLP_ORACLE_H
#define PC_OTLP_ORACLE_H

#include "formats/otlp_proto.h"
#include "formats/protobuf.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <stdio.h>
#include <string.h>

typedef struct oracle {
    char why[512]; /* the first difference */
} oracle;

#define ORACLE_FAIL(o, ...) (snprintf((o)->why, sizeof((o)->why), __VA_ARGS__), false)

static inline bool oracle_str(oracle *o, const char *what, const char *want, pc_str got)
{
    if (!want) want = "";
    size_t n = strlen(want);
    if (got.n != n || (n && memcmp(got.p, want, n)))
        return ORACLE_FAIL(o, "%s: want \"%s\", got \"%.*s\"", what, want, (int)got.n,
                           got.p ? got.p : "");
    return true;
}

static inline bool oracle_id_ok(ProtobufCBinaryData id, size_t want, bool optional)
{
    bool zero = true;
    for (size_t i = 0; i < id.len && zero; i++)
        zero = id.data[i] == 0;
    if (optional && zero && (id.len == 0 || id.len == want)) return true;
    return id.len == want && !zero;
}

static inline bool oracle_id(oracle *o, const char *what, ProtobufCBinaryData id, pc_str got)
{
    static const char hex[] = "0123456789abcdef";
    char want[64] = "";
    bool zero = true;
    for (size_t i = 0; i < id.len && zero; i++)
        zero = id.data[i] == 0;
    for (size_t i = 0; !zero && i < id.len && i < 31; i++) {
        want[2 * i] = hex[id.data[i] >> 4];
        want[2 * i + 1] = hex[id.data[i] & 15];
        want[2 * i + 2] = '\0';
    }
    return oracle_str(o, what, want, got);
}

static inline bool oracle_kvs(oracle *o, const char *what,
                              Opentelemetry__Proto__Common__V1__KeyValue *const *kv, size_t n,
                              const pc_kv *got, size_t got_n, bool drop_empty, uint64_t *empty);

static inline bool oracle_value(oracle *o, const char *what,
                                const Opentelemetry__Proto__Common__V1__AnyValue *v,
                                const pc_value *got)
{
    int c = v ? (int)v->value_case : 0;
    static const pc_value_type type_of[8] = {PC_V_NULL,   PC_V_STR,   PC_V_BOOL, PC_V_INT,
                                             PC_V_DOUBLE, PC_V_ARRAY, PC_V_MAP,  PC_V_BYTES};
    pc_value_type want = c >= 0 && c < 8 ? type_of[c] : PC_V_NULL;
    if (got->type != want) return ORACLE_FAIL(o, "%s: type %d, want %d", what, got->type, want);
    switch (want) {
    case PC_V_STR:
        return oracle_str(o, what, v->string_value, got->s);
    case PC_V_BOOL:
        return (!!v->bool_value == got->b) || ORACLE_FAIL(o, "%s: bool", what);
    case PC_V_INT:
        return v->int_value == got->i ||
               ORACLE_FAIL(o, "%s: %lld != %lld", what, (long long)v->int_value, (long long)got->i);
    case PC_V_DOUBLE:
        return !memcmp(&v->double_value, &got->d, sizeof(double)) ||
               ORACLE_FAIL(o, "%s: %g != %g", what, v->double_value, got->d);
    case PC_V_BYTES:
        return (got->s.n == v->bytes_value.len &&
                (!got->s.n || !memcmp(got->s.p, v->bytes_value.data, got->s.n))) ||
               ORACLE_FAIL(o, "%s: bytes differ", what);
    case PC_V_ARRAY: {
        size_t n = v->array_value ? v->array_value->n_values : 0;
        if (got->arr.n != n) return ORACLE_FAIL(o, "%s: %zu values, want %zu", what, got->arr.n, n);
        for (size_t i = 0; i < n; i++) {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s[%zu]", what, i);
            if (!oracle_value(o, sub, v->array_value->values[i], &got->arr.v[i])) return false;
        }
        return true;
    }
    case PC_V_MAP: {
        uint64_t empty = 0;
        return oracle_kvs(o, what, v->kvlist_value ? v->kvlist_value->values : NULL,
                          v->kvlist_value ? v->kvlist_value->n_values : 0, got->map.kv, got->map.n,
                          false, &empty);
    }
    default:
        return true;
    }
}

static inline bool oracle_kvs(oracle *o, const char *what,
                              Opentelemetry__Proto__Common__V1__KeyValue *const *kv, size_t n,
                              const pc_kv *got, size_t got_n, bool drop_empty, uint64_t *empty)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *key = kv[i]->key ? kv[i]->key : "";
        if (drop_empty && !*key) {
            ++*empty;
            continue;
        }
        char sub[256];
        snprintf(sub, sizeof(sub), "%.120s.%.60s", what, key);
        if (k >= got_n) return ORACLE_FAIL(o, "%s: missing", sub);
        if (!oracle_str(o, sub, key, got[k].key) ||
            !oracle_value(o, sub, kv[i]->value, &got[k].value))
            return false;
        k++;
    }
    return k == got_n || ORACLE_FAIL(o, "%s: %zu entries, want %zu", what, got_n, k);
}

/* Compares attribute list |kv| (|n|, dropped count |dropped| on the wire) with |got|. */
static inline bool oracle_attrs(oracle *o, const char *what,
                                Opentelemetry__Proto__Common__V1__KeyValue *const *kv, size_t n,
                                uint32_t dropped, const pc_attrs *got, const uint32_t *got_dropped)
{
    uint64_t empty = 0;
    if (!oracle_kvs(o, what, kv, n, got->kv, got->n, true, &empty)) return false;
    uint64_t want = dropped + empty;
    if (want > UINT32_MAX) want = UINT32_MAX;
    if (got_dropped && *got_dropped != want)
        return ORACLE_FAIL(o, "%s: dropped %u, want %llu", what, *got_dropped,
                           (unsigned long long)want);
    return true;
}

static inline bool oracle_span(oracle *o, const Opentelemetry__Proto__Trace__V1__Span *ps,
                               const pc_span *s)
{
    if (!oracle_id(o, "trace_id", ps->trace_id, s->trace_id) ||
        !oracle_id(o, "span_id", ps->span_id, s->span_id) ||
        !oracle_id(o, "parent_span_id", ps->parent_span_id, s->parent_id) ||
        !oracle_str(o, "name", ps->name, s->name) ||
        !oracle_str(o, "trace_state", ps->trace_state, s->trace_state))
        return false;
    if (s->kind != pc_otlp_clamp_kind(ps->kind)) return ORACLE_FAIL(o, "kind %d", s->kind);
    if ((uint64_t)s->start_ns != ps->start_time_unix_nano ||
        (uint64_t)s->end_ns != ps->end_time_unix_nano)
        return ORACLE_FAIL(o, "times");
    if (s->flags != ps->flags) return ORACLE_FAIL(o, "flags %u != %u", s->flags, ps->flags);
    int code = ps->status ? pc_otlp_clamp_status(ps->status->code) : 0;
    if (s->status_code != code) return ORACLE_FAIL(o, "status code %d != %d", s->status_code, code);
    if (!oracle_str(o, "status.message", ps->status ? ps->status->message : "",
                    s->status_message) ||
        !oracle_attrs(o, "attributes", ps->attributes, ps->n_attributes,
                      ps->dropped_attributes_count, &s->attrs, &s->dropped_attributes_count))
        return false;
    if (s->n_events != ps->n_events) return ORACLE_FAIL(o, "%zu events", s->n_events);
    for (size_t i = 0; i < ps->n_events; i++) {
        const Opentelemetry__Proto__Trace__V1__Span__Event *e = ps->events[i];
        const pc_event *ge = &s->events[i];
        if ((uint64_t)ge->time_ns != e->time_unix_nano)
            return ORACLE_FAIL(o, "events[%zu].time", i);
        if (!oracle_str(o, "event.name", e->name, ge->name) ||
            !oracle_attrs(o, "event.attributes", e->attributes, e->n_attributes,
                          e->dropped_attributes_count, &ge->attrs, &ge->dropped_attributes_count))
            return false;
    }
    if (s->n_links != ps->n_links) return ORACLE_FAIL(o, "%zu links", s->n_links);
    for (size_t i = 0; i < ps->n_links; i++) {
        const Opentelemetry__Proto__Trace__V1__Span__Link *l = ps->links[i];
        const pc_link *gl = &s->links[i];
        if (!oracle_id(o, "link.trace_id", l->trace_id, gl->trace_id) ||
            !oracle_id(o, "link.span_id", l->span_id, gl->span_id) ||
            !oracle_str(o, "link.trace_state", l->trace_state, gl->trace_state) ||
            !oracle_attrs(o, "link.attributes", l->attributes, l->n_attributes,
                          l->dropped_attributes_count, &gl->attrs, &gl->dropped_attributes_count))
            return false;
    }
    return true;
}

/* True when the ids of |ps| and its links are usable (else it is rejected). */
static inline bool oracle_span_ok(const Opentelemetry__Proto__Trace__V1__Span *ps)
{
    if (!oracle_id_ok(ps->trace_id, 16, false) || !oracle_id_ok(ps->span_id, 8, false) ||
        !oracle_id_ok(ps->parent_span_id, 8, true))
        return false;
    for (size_t i = 0; i < ps->n_links; i++)
        if (!oracle_id_ok(ps->links[i]->trace_id, 16, false) ||
            !oracle_id_ok(ps->links[i]->span_id, 8, false))
            return false;
    return true;
}

/*
 * Compares request |r| (as protobuf-c unpacked it) with what the reader made
 * of the same bytes: batch |b| and result |res|, decoded without limits with
 * |project| (or NULL) and default project |dflt|. True when they agree; else
 * false with the first difference in o->why.
 */
static inline bool
oracle_compare(oracle *o,
               const Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *r,
               const pc_batch *b, const pc_otlp_result *res, const char *project, const char *dflt)
{
    size_t si = 0;
    int64_t rejected = 0;
    for (size_t i = 0; i < r->n_resource_spans; i++) {
        const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = r->resource_spans[i];
        const pc_attrs *resource = NULL;
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = rs->scope_spans[j];
            const pc_scope *scope = NULL;
            for (size_t k = 0; k < ss->n_spans; k++) {
                snprintf(o->why, sizeof(o->why), "resource_spans[%zu].scope_spans[%zu].spans[%zu]",
                         i, j, k);
                if (!oracle_span_ok(ss->spans[k])) {
                    rejected++;
                    continue;
                }
                if (si >= b->n) return ORACLE_FAIL(o, "span %zu missing", si);
                const pc_span *s = &b->spans[si++];
                char at[96];
                snprintf(at, sizeof(at), "[%zu/%zu/%zu] ", i, j, k);
                if (!oracle_span(o, ss->spans[k], s)) {
                    char why[sizeof(o->why)];
                    snprintf(why, sizeof(why), "%s%.400s", at, o->why);
                    memcpy(o->why, why, sizeof(why));
                    return false;
                }
                if (s->source != PC_SOURCE_OTLP) return ORACLE_FAIL(o, "%ssource", at);
                /* resource and scope: one object per ResourceSpans / ScopeSpans */
                if (!resource) {
                    resource = s->resource;
                    const Opentelemetry__Proto__Resource__V1__Resource *pr = rs->resource;
                    if (!pr && resource != &pc_empty_attrs) return ORACLE_FAIL(o, "%sresource", at);
                    if (pr && !oracle_attrs(o, "resource", pr->attributes, pr->n_attributes, 0,
                                            resource, NULL))
                        return false;
                } else if (s->resource != resource)
                    return ORACLE_FAIL(o, "%sresource not shared", at);
                if (!scope) {
                    scope = s->scope;
                    const Opentelemetry__Proto__Common__V1__InstrumentationScope *ps = ss->scope;
                    if (!ps && scope != &pc_empty_scope) return ORACLE_FAIL(o, "%sscope", at);
                    if (ps && (!oracle_str(o, "scope.name", ps->name, scope->name) ||
                               !oracle_str(o, "scope.version", ps->version, scope->version) ||
                               !oracle_attrs(o, "scope.attributes", ps->attributes,
                                             ps->n_attributes, ps->dropped_attributes_count,
                                             &scope->attrs, &scope->dropped_attributes_count)))
                        return false;
                } else if (s->scope != scope)
                    return ORACLE_FAIL(o, "%sscope not shared", at);
                const char *want = project && *project ? project : NULL;
                if (!want) {
                    want = dflt; /* unless the resource says otherwise */
                    const Opentelemetry__Proto__Resource__V1__Resource *pr = rs->resource;
                    for (size_t a = 0; pr && a < pr->n_attributes; a++) {
                        const Opentelemetry__Proto__Common__V1__KeyValue *kv = pr->attributes[a];
                        if (kv->key && !strcmp(kv->key, "prela.project_id")) {
                            const Opentelemetry__Proto__Common__V1__AnyValue *pv = kv->value;
                            if (pv &&
                                pv->value_case ==
                                    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
                                pv->string_value[0])
                                want = pv->string_value;
                            break;
                        }
                    }
                }
                if (!oracle_str(o, "project_id", want, s->project_id)) return false;
            }
        }
    }
    if (si != b->n) return ORACLE_FAIL(o, "%zu spans, want %zu", b->n, si);
    if ((int64_t)res->accepted != (int64_t)si || res->rejected != rejected)
        return ORACLE_FAIL(o, "accepted %zu rejected %lld, want %zu / %lld", res->accepted,
                           (long long)res->rejected, si, (long long)rejected);
    o->why[0] = '\0';
    return true;
}

/*
 * True when some message in the |n| bytes at |p| (a |desc| message, wire-
 * checked) holds a singular message field more than once: protobuf-c merges
 * those with rules of its own (see the file comment), so the comparison skips
 * such inputs.
 */
static inline bool oracle_merges(const uint8_t *p, size_t n, const ProtobufCMessageDescriptor *desc,
                                 int depth)
{
    unsigned seen[32] = {0};
    size_t i = 0;
    if (depth > 120) return true;
    while (i < n) {
        uint64_t key, v;
        if (pc_pb_varint(p, n, &i, &key)) return true;
        unsigned wt = key & 7, num = (unsigned)(key >> 3);
        if (wt == 0) {
            if (pc_pb_varint(p, n, &i, &v)) return true;
            continue;
        }
        if (wt == 1 || wt == 5) {
            i += wt == 1 ? 8 : 4;
            continue;
        }
        if (wt != 2 || pc_pb_varint(p, n, &i, &v) || v > n - i) return true;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, num);
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (f->label != PROTOBUF_C_LABEL_REPEATED &&
                !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && num < 32 && seen[num]++)
                return true;
            if (oracle_merges(p + i, (size_t)v, f->descriptor, depth + 1)) return true;
        }
        i += (size_t)v;
    }
    return false;
}

#endif
