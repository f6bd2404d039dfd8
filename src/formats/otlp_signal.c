/*
 * otlp_signal.c - OTLP metrics and logs requests: checked, counted and passed on
 * as protobuf, never decoded into a model (see pc_otlp_signal_decode in
 * otlp_signal.h for the contract).
 *
 * Data flow: the OTLP receiver hands over the body of an Export*ServiceRequest
 * with a batch whose signal is PC_SIGNAL_METRICS or PC_SIGNAL_LOGS; on success
 * the batch carries the request as protobuf in b->raw (the body itself, or a
 * re-encoding of JSON in the batch's arena) and its data points or log records
 * in b->items, and exporters forward raw unchanged.
 *
 * Protobuf: pc_pb_unpack (protobuf.c) checks the wire format with bounded
 * nesting and unpacks into the arena within a budget; the item count comes
 * from the unpacked message; then one walk over the wire bytes checks every
 * string for UTF-8 and every trace_id / span_id for its length.
 *
 * JSON: pc_json_parse, then one converter driven by the protobuf-c descriptors
 * (names, types, labels, oneofs, offsets) builds the protobuf-c message in the
 * arena, with the rules of otlp_json.c: names in lowerCamelCase or snake_case,
 * unknown members ignored, null members absent, 64-bit integers as numbers or
 * strings, doubles also as "NaN" / "Infinity" / "-Infinity", enums as numbers or
 * names, trace_id / span_id as hex (or base64 of the right length), other bytes
 * as base64. Errors name the path with the request's keys. protobuf-c packs it.
 *
 * Why the UTF-8 check walks the wire bytes and not the unpacked message:
 * protobuf-c keeps no string lengths, so a string is cut at an embedded NUL and
 * whatever follows would go downstream unchecked; strict readers (Go's
 * protobuf) reject the whole message for one invalid string. For the same
 * reason a JSON string containing U+0000 is refused: protobuf-c cannot encode it.
 */
#include "formats/otlp_signal.h"

#include "formats/protobuf.h"

#include "json.h"

#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest pb_metrics_req;
typedef Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest pb_logs_req;
typedef Opentelemetry__Proto__Metrics__V1__Metric pb_metric;

/* JSON conversion may allocate this many bytes of protobuf-c structures per
 * body byte (plus a fixed slack): "{}," is 3 bytes of JSON and ~100 bytes of
 * data point, so a body of empty objects must not cost gigabytes. */
#define JSON_BUDGET_FACTOR 32
#define JSON_BUDGET_SLACK (1u << 20)

/* Fields per message whose repeated elements get an index in error paths. */
#define SEEN_FIELDS 32

/* ---------------------------------------------------------------- counting */

/* Data points of one metric, whatever its kind; 0 when it has no data. */
static size_t metric_points(const pb_metric *m)
{
    switch (m->data_case) {
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
        return m->gauge ? m->gauge->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
        return m->sum ? m->sum->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
        return m->histogram ? m->histogram->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        return m->exponential_histogram ? m->exponential_histogram->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
        return m->summary ? m->summary->n_data_points : 0;
    default:
        return 0;
    }
}

static int64_t count_metrics(const ProtobufCMessage *msg)
{
    const pb_metrics_req *req = (const pb_metrics_req *)msg;
    int64_t n = 0;
    for (size_t i = 0; i < req->n_resource_metrics; i++) {
        const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm = req->resource_metrics[i];
        for (size_t j = 0; j < rm->n_scope_metrics; j++) {
            const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm = rm->scope_metrics[j];
            for (size_t k = 0; k < sm->n_metrics; k++)
                n += (int64_t)metric_points(sm->metrics[k]);
        }
    }
    return n;
}

static int64_t count_logs(const ProtobufCMessage *msg)
{
    const pb_logs_req *req = (const pb_logs_req *)msg;
    int64_t n = 0;
    for (size_t i = 0; i < req->n_resource_logs; i++) {
        const Opentelemetry__Proto__Logs__V1__ResourceLogs *rl = req->resource_logs[i];
        for (size_t j = 0; j < rl->n_scope_logs; j++)
            n += (int64_t)rl->scope_logs[j]->n_log_records;
    }
    return n;
}

/* What differs between the two signals. */
typedef struct signal_def {
    const ProtobufCMessageDescriptor *request;
    int64_t (*count)(const ProtobufCMessage *req);
} signal_def;

static const signal_def metrics_def = {
    &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor,
    count_metrics,
};

static const signal_def logs_def = {
    &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
    count_logs,
};

/* ---------------------------------------------------------------- ids */

/* The length a bytes field must have when it is an id (16 for trace_id, 8 for
 * span_id; empty is allowed too), or 0 for any other field. */
static size_t id_len(const ProtobufCFieldDescriptor *f)
{
    if (f->type != PROTOBUF_C_TYPE_BYTES) return 0;
    if (strcmp(f->name, "trace_id") == 0) return 16;
    if (strcmp(f->name, "span_id") == 0) return 8;
    return 0;
}

/* ---------------------------------------------------------------- wire walk */

static int wire_check_strings(pc_otlp_dec *d, const uint8_t *p, size_t n,
                              const ProtobufCMessageDescriptor *desc);

/* Checks the |n| bytes at |p| of length-delimited field |f|: UTF-8 for a string,
 * the length of an id, and inside a nested message. */
static int field_check(pc_otlp_dec *d, const ProtobufCFieldDescriptor *f, const uint8_t *p,
                       size_t n)
{
    size_t want = id_len(f);
    if (f->type == PROTOBUF_C_TYPE_STRING && !pc_utf8_valid((const char *)p, n))
        return pc_otlp_fail(d, NULL, "invalid UTF-8");
    if (want && n != 0 && n != want)
        return pc_otlp_fail(d, NULL, "must be %zu bytes, got %zu", want, n);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) return wire_check_strings(d, p, n, f->descriptor);
    return 0;
}

/*
 * Walks one message of type |desc| in |n| bytes at |p| and checks its strings
 * and ids (field_check), naming the path of the first bad one. The bytes must
 * have passed pc_pb_unpack, which bounds the nesting and so this recursion.
 */
static int wire_check_strings(pc_otlp_dec *d, const uint8_t *p, size_t n,
                              const ProtobufCMessageDescriptor *desc)
{
    unsigned seen[SEEN_FIELDS] = {0}; /* elements so far, per repeated field */
    size_t i = 0;
    while (i < n) {
        uint64_t key, len = 0;
        if (pc_pb_varint(p, n, &i, &key)) return pc_otlp_fail(d, NULL, "invalid protobuf");
        switch (key & 7) {
        case 0:
            if (pc_pb_varint(p, n, &i, &len)) return pc_otlp_fail(d, NULL, "invalid protobuf");
            continue; /* the varint was the value */
        case 1:
            len = 8;
            break;
        case 5:
            len = 4;
            break;
        case 2:
            if (pc_pb_varint(p, n, &i, &len)) return pc_otlp_fail(d, NULL, "invalid protobuf");
            break;
        default:
            return pc_otlp_fail(d, NULL, "invalid protobuf");
        }
        if (len > n - i) return pc_otlp_fail(d, NULL, "invalid protobuf");
        const ProtobufCFieldDescriptor *f =
            (key & 7) == 2 ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3))
                           : NULL;
        if (f && (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE ||
                  id_len(f))) {
            size_t k = (size_t)(f - desc->fields);
            long idx = -1;
            if (f->label == PROTOBUF_C_LABEL_REPEATED && k < SEEN_FIELDS) idx = (long)seen[k]++;
            pc_otlp_push(d, f->name, strlen(f->name), idx);
            if (field_check(d, f, p + i, (size_t)len)) return -1;
            pc_otlp_pop(d);
        }
        i += (size_t)len;
    }
    return 0;
}

static int decode_protobuf(pc_otlp_dec *d, const signal_def *sig, const void *buf, size_t len)
{
    ProtobufCMessage *req = pc_pb_unpack(d, sig->request, buf, len);
    if (!req || wire_check_strings(d, buf, len, sig->request)) return -1;
    d->b->items = sig->count(req);
    d->b->raw = (pc_str){buf, len};
    return 0;
}

/* ---------------------------------------------------------------- JSON scalars */

/* One JSON-to-protobuf conversion in progress. */
typedef struct conv {
    pc_otlp_dec *d;
    size_t left; /* bytes of structures still allowed (JSON_BUDGET_FACTOR) */
} conv;

/* Zeroed arena memory charged to the budget; NULL when the budget is spent. */
static void *take(conv *c, size_t n)
{
    if (n > c->left) return NULL;
    c->left -= n;
    return pc_arena_calloc(c->d->a, n ? n : 1);
}

static int over_budget(conv *c)
{
    return pc_otlp_fail(c->d, NULL, "request has too many small messages to decode");
}

/*
 * Reads an integer given as a JSON number or a decimal string as sign and
 * magnitude. Returns NULL, or why it is not an integer.
 */
static const char *int_parts(const pc_value *v, bool *neg, uint64_t *mag)
{
    if (v->type == PC_V_INT) {
        *neg = v->i < 0;
        *mag = *neg ? 0 - (uint64_t)v->i : (uint64_t)v->i;
        return NULL;
    }
    if (v->type == PC_V_DOUBLE) { /* large integers from JavaScript clients */
        if (!isfinite(v->d) || v->d != floor(v->d)) return "expected an integer";
        if (fabs(v->d) >= 18446744073709551616.0) return "integer out of range";
        *neg = v->d < 0;
        *mag = (uint64_t)fabs(v->d);
        return NULL;
    }
    if (v->type != PC_V_STR) return "expected an integer (number or decimal string)";
    pc_str s = v->s;
    size_t i = s.n > 0 && s.p[0] == '-';
    *neg = i == 1;
    *mag = 0;
    if (i == s.n) return "expected an integer";
    for (; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return "expected an integer";
        unsigned digit = (unsigned)(s.p[i] - '0');
        if (*mag > (UINT64_MAX - digit) / 10) return "integer out of range";
        *mag = *mag * 10 + digit;
    }
    return NULL;
}

/* A signed integer in [-max-1, max]. */
static int get_signed(conv *c, const pc_value *v, uint64_t max, int64_t *out)
{
    bool neg;
    uint64_t mag;
    const char *why = int_parts(v, &neg, &mag);
    if (why) return pc_otlp_fail(c->d, NULL, "%s", why);
    if (mag > max + (neg ? 1 : 0)) return pc_otlp_fail(c->d, NULL, "integer out of range");
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

/* An unsigned integer in [0, max]. */
static int get_unsigned(conv *c, const pc_value *v, uint64_t max, uint64_t *out)
{
    bool neg;
    uint64_t mag;
    const char *why = int_parts(v, &neg, &mag);
    if (why) return pc_otlp_fail(c->d, NULL, "%s", why);
    if ((neg && mag) || mag > max) return pc_otlp_fail(c->d, NULL, "integer out of range");
    *out = mag;
    return 0;
}

/* A double as a JSON number, "NaN", "Infinity", "-Infinity" or a decimal string. */
static int get_double(conv *c, const pc_value *v, double *out)
{
    if (v->type == PC_V_DOUBLE || v->type == PC_V_INT) {
        *out = v->type == PC_V_DOUBLE ? v->d : (double)v->i;
        return 0;
    }
    if (v->type != PC_V_STR) return pc_otlp_fail(c->d, NULL, "expected a number");
    if (pc_str_eq(v->s, "NaN"))
        *out = NAN;
    else if (pc_str_eq(v->s, "Infinity"))
        *out = INFINITY;
    else if (pc_str_eq(v->s, "-Infinity"))
        *out = -INFINITY;
    else {
        char *s = pc_str_dup(c->d->a, v->s), *end;
        *out = strtod(s, &end);
        if (!v->s.n || *end || !isfinite(*out))
            return pc_otlp_fail(c->d, NULL, "expected a number");
    }
    return 0;
}

/* True when |s| starts like a decimal integer ("-1", "7") rather than a name. */
static bool starts_decimal(pc_str s)
{
    return s.n > 0 && (s.p[0] == '-' || (s.p[0] >= '0' && s.p[0] <= '9'));
}

/* An enum of |f| as its number (any int32: proto3 enums are open) or its name. */
static int get_enum(conv *c, const ProtobufCFieldDescriptor *f, const pc_value *v, int32_t *out)
{
    if (v->type == PC_V_STR && !starts_decimal(v->s)) {
        const ProtobufCEnumValue *ev = NULL;
        if (!memchr(v->s.p, '\0', v->s.n))
            ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor,
                                                              pc_str_dup(c->d->a, v->s));
        if (!ev) return pc_otlp_fail(c->d, NULL, "unknown enum name");
        *out = ev->value;
        return 0;
    }
    if (v->type != PC_V_STR && v->type != PC_V_INT && v->type != PC_V_DOUBLE)
        return pc_otlp_fail(c->d, NULL, "expected an enum name or number");
    int64_t i;
    if (get_signed(c, v, INT32_MAX, &i)) return -1;
    *out = (int32_t)i;
    return 0;
}

/* A string, copied into the arena NUL-terminated as protobuf-c wants it. */
static int get_string(conv *c, const pc_value *v, char **out)
{
    if (v->type != PC_V_STR) return pc_otlp_fail(c->d, NULL, "expected a string");
    if (memchr(v->s.p, '\0', v->s.n))
        return pc_otlp_fail(c->d, NULL, "U+0000 in a string is not supported");
    *out = pc_str_dup(c->d->a, v->s); /* the parser checked UTF-8 */
    return 0;
}

/* ---------------------------------------------------------------- JSON bytes */

/* A bytes field: an id of |f| as hex, or base64 of the right length; any other
 * bytes field as base64. Empty is empty. */
static int get_bytes(conv *c, const ProtobufCFieldDescriptor *f, const pc_value *v,
                     ProtobufCBinaryData *out)
{
    size_t want = id_len(f);
    if (v->type != PC_V_STR)
        return pc_otlp_fail(c->d, NULL,
                            want ? "expected a hex string" : "expected a base64 string");
    uint8_t *buf = pc_arena_alloc(c->d->a, v->s.n / 4 * 3 + 3 + want);
    long n = 0;
    if (want && pc_otlp_hex_decode(v->s, buf, want))
        n = (long)want;
    else if (v->s.n)
        n = pc_otlp_b64_decode(v->s, buf, v->s.n / 4 * 3 + 3);
    if (want && n != 0 && n != (long)want)
        return pc_otlp_fail(c->d, NULL, "must be %zu hex digits", 2 * want);
    if (n < 0) return pc_otlp_fail(c->d, NULL, "invalid base64");
    *out = (ProtobufCBinaryData){(size_t)n, n ? buf : NULL};
    return 0;
}

/* ---------------------------------------------------------------- JSON messages */

static int message_in(conv *c, const pc_value *o, const ProtobufCMessageDescriptor *desc,
                      ProtobufCMessage **out);

/* Bytes one element of a repeated field of |type| takes in its array. */
static size_t elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4; /* 32-bit integers, enums, float */
    }
}

/* Converts JSON value |v| into the slot |dst| of field |f| (one element of it,
 * when repeated). A null message element becomes an empty message. */
static int value_in(conv *c, const ProtobufCFieldDescriptor *f, void *dst, const pc_value *v)
{
    int64_t i;
    uint64_t u;
    double x;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (get_signed(c, v, INT32_MAX, &i)) return -1;
        *(int32_t *)dst = (int32_t)i;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (get_unsigned(c, v, UINT32_MAX, &u)) return -1;
        *(uint32_t *)dst = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return get_signed(c, v, INT64_MAX, (int64_t *)dst);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return get_unsigned(c, v, UINT64_MAX, (uint64_t *)dst);
    case PROTOBUF_C_TYPE_DOUBLE:
        return get_double(c, v, (double *)dst);
    case PROTOBUF_C_TYPE_FLOAT:
        if (get_double(c, v, &x)) return -1;
        if (isfinite(x) && fabs(x) > FLT_MAX) return pc_otlp_fail(c->d, NULL, "out of range");
        *(float *)dst = (float)x;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (v->type != PC_V_BOOL) return pc_otlp_fail(c->d, NULL, "expected true or false");
        *(protobuf_c_boolean *)dst = v->b;
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return get_enum(c, f, v, (int32_t *)dst);
    case PROTOBUF_C_TYPE_STRING:
        return get_string(c, v, (char **)dst);
    case PROTOBUF_C_TYPE_BYTES:
        return get_bytes(c, f, v, (ProtobufCBinaryData *)dst);
    case PROTOBUF_C_TYPE_MESSAGE:
        return message_in(c, v, f->descriptor, (ProtobufCMessage **)dst);
    }
    return pc_otlp_fail(c->d, NULL, "unsupported field type");
}

/* Member |kv| (not null) for repeated field |f| of |m|: a JSON array. */
static int repeated_in(conv *c, const ProtobufCFieldDescriptor *f, ProtobufCMessage *m,
                       const pc_kv *kv)
{
    if (kv->value.type != PC_V_ARRAY) {
        pc_otlp_push(c->d, kv->key.p, kv->key.n, -1);
        return pc_otlp_fail(c->d, NULL, "expected an array");
    }
    size_t n = kv->value.arr.n, size = elem_size(f->type);
    char *arr = n ? take(c, n * size) : NULL;
    if (n && !arr) return over_budget(c);
    for (size_t j = 0; j < n; j++) {
        pc_otlp_push(c->d, kv->key.p, kv->key.n, (long)j);
        if (value_in(c, f, arr + j * size, &kv->value.arr.v[j])) return -1;
        pc_otlp_pop(c->d);
    }
    *(size_t *)((char *)m + f->quantifier_offset) = n;
    *(void **)((char *)m + f->offset) = arr;
    return 0;
}

/* Member |kv| (not null) for singular field |f| of |m|; marks a oneof member or
 * proto2-style optional field as present. */
static int single_in(conv *c, const ProtobufCFieldDescriptor *f, ProtobufCMessage *m,
                     const pc_kv *kv)
{
    pc_otlp_push(c->d, kv->key.p, kv->key.n, -1);
    if (value_in(c, f, (char *)m + f->offset, &kv->value)) return -1;
    pc_otlp_pop(c->d);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
    return 0;
}

/*
 * The field of |desc| that member name |key| means: the proto name (snake_case)
 * or its lowerCamelCase JSON name ("dataPoints" is data_points). NULL: unknown.
 */
static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessageDescriptor *desc,
                                                   pc_str key)
{
    char name[64];
    size_t n = 0;
    for (size_t i = 0; i < key.n; i++) {
        char ch = key.p[i];
        if (ch == '\0' || n + 2 >= sizeof(name)) return NULL;
        if (ch >= 'A' && ch <= 'Z') {
            name[n++] = '_';
            ch = (char)(ch - 'A' + 'a');
        }
        name[n++] = ch;
    }
    name[n] = '\0';
    return protobuf_c_message_descriptor_get_field_by_name(desc, name);
}

/* Builds a message of type |desc| in the arena from JSON object |o| (null: an
 * empty message). Recursion is bounded by the parser's PC_JSON_MAX_DEPTH. */
static int message_in(conv *c, const pc_value *o, const ProtobufCMessageDescriptor *desc,
                      ProtobufCMessage **out)
{
    if (o->type != PC_V_MAP && o->type != PC_V_NULL)
        return pc_otlp_fail(c->d, NULL, "expected an object");
    ProtobufCMessage *m = take(c, desc->sizeof_message);
    if (!m) return over_budget(c);
    protobuf_c_message_init(desc, m);
    for (size_t i = 0; o->type == PC_V_MAP && i < o->map.n; i++) {
        const pc_kv *kv = &o->map.kv[i];
        const ProtobufCFieldDescriptor *f = field_named(desc, kv->key);
        if (!f || kv->value.type == PC_V_NULL) continue; /* unknown, or absent */
        int r = f->label == PROTOBUF_C_LABEL_REPEATED ? repeated_in(c, f, m, kv)
                                                      : single_in(c, f, m, kv);
        if (r) return -1;
    }
    *out = m;
    return 0;
}

static int decode_json(pc_otlp_dec *d, const signal_def *sig, const char *text, size_t len)
{
    pc_value root;
    pc_json_error err;
    if (pc_json_parse(d->a, text, len, &root, &err))
        return pc_otlp_fail(d, NULL, "invalid JSON: %s", err.msg);
    if (root.type != PC_V_MAP)
        return pc_otlp_fail(d, NULL, "expected a JSON object (%s)", sig->request->short_name);
    conv c = {d, JSON_BUDGET_FACTOR * len + JSON_BUDGET_SLACK};
    ProtobufCMessage *req;
    if (message_in(&c, &root, sig->request, &req)) return -1;
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *out = pc_arena_alloc(d->a, n ? n : 1);
    protobuf_c_message_pack(req, out);
    d->b->items = sig->count(req);
    d->b->raw = (pc_str){(const char *)out, n};
    return 0;
}

/* ---------------------------------------------------------------- entry */

int pc_otlp_signal_decode(pc_batch *b, const void *buf, size_t len, bool json, pc_otlp_result *res)
{
    pc_otlp_dec d;
    pc_otlp_dec_init(&d, b, NULL, NULL, res);
    const signal_def *sig = b->signal == PC_SIGNAL_METRICS ? &metrics_def
                            : b->signal == PC_SIGNAL_LOGS  ? &logs_def
                                                           : NULL;
    if (!sig) return pc_otlp_fail(&d, NULL, "not a metrics or logs batch");
    b->items = 0;
    b->raw = PC_STR_NULL;
    int rc = json ? decode_json(&d, sig, buf, len) : decode_protobuf(&d, sig, buf, len);
    if (rc) {
        b->items = 0;
        b->raw = PC_STR_NULL;
        return -1;
    }
    res->accepted = (size_t)b->items;
    return 0;
}
