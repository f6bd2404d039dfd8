/*
 * test_otlp_signal.c - pc_otlp_signal_decode (otlp_signal.h): OTLP metrics and
 * logs requests checked, counted and passed on as protobuf, without HTTP.
 *
 * A metrics request with every metric kind, exemplars and ids, and a logs
 * request with every body type, are built with the generated protobuf-c
 * structs and packed. Decoded as protobuf, raw must be the input itself; the
 * same requests written as OTLP/JSON (camelCase with hex ids and string ints,
 * snake_case with base64 ids, numbers and enum names) must re-encode to the
 * very bytes protobuf-c packs from the structs. Fixtures from a real client
 * (Python opentelemetry-proto 1.45.2: SerializeToString and MessageToJson of
 * the same requests) must match too. Then malformed input of each kind.
 */
#include "check.h"
#include "otlp_build.h"

#include "formats/otlp_signal.h"

#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest MetricsRequest;
typedef Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest LogsRequest;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics ResourceMetrics;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics ScopeMetrics;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__Gauge Gauge;
typedef Opentelemetry__Proto__Metrics__V1__Sum Sum;
typedef Opentelemetry__Proto__Metrics__V1__Histogram Histogram;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogram ExpHistogram;
typedef Opentelemetry__Proto__Metrics__V1__Summary Summary;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NumberPoint;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HistogramPoint;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint ExpPoint;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint__Buckets Buckets;
typedef Opentelemetry__Proto__Metrics__V1__SummaryDataPoint SummaryPoint;
typedef Opentelemetry__Proto__Metrics__V1__SummaryDataPoint__ValueAtQuantile Quantile;
typedef Opentelemetry__Proto__Metrics__V1__Exemplar Exemplar;
typedef Opentelemetry__Proto__Logs__V1__ResourceLogs ResourceLogs;
typedef Opentelemetry__Proto__Logs__V1__ScopeLogs ScopeLogs;
typedef Opentelemetry__Proto__Logs__V1__LogRecord LogRecord;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;

/* ------------------------------------------------------------ builders */

/* A resource with service.name = |service|. */
static Resource *resource(const char *service)
{
    Resource *r = ob_msg(&opentelemetry__proto__resource__v1__resource__descriptor);
    r->n_attributes = 1;
    r->attributes = ob_ptrs(1, kv("service.name", v_str(service)));
    return r;
}

static Scope *scope(const char *name, const char *version)
{
    Scope *s = ob_msg(&opentelemetry__proto__common__v1__instrumentation_scope__descriptor);
    s->name = (char *)name;
    s->version = (char *)version;
    return s;
}

/* Decodes |len| bytes of |sig|, copied into the batch's arena as the receiver
 * does with a body. Returns the batch (caller unrefs). */
static pc_batch *decode(pc_signal sig, const void *buf, size_t len, bool json, pc_otlp_result *res,
                        int *rc)
{
    pc_batch *b = pc_batch_create(NULL);
    b->signal = sig;
    char *body = pc_arena_alloc(b->arena, len + 1);
    memcpy(body, buf, len);
    *rc = pc_otlp_signal_decode(b, body, len, json, res);
    if (*rc == 0 && !json) CHECK(b->raw.p == body && b->raw.n == len);
    return b;
}

/* Checks that |rc|/|b| is a success with |items| and raw equal to |want|. */
static void check_raw(const pc_batch *b, int rc, const pc_otlp_result *res, int64_t items,
                      const uint8_t *want, size_t want_len)
{
    CHECK_EQ_INT(rc, 0);
    if (rc) fprintf(stderr, "  error: %s\n", res->error);
    CHECK_EQ_INT(b->items, items);
    CHECK_EQ_INT(res->accepted, items);
    CHECK_EQ_INT(res->rejected, 0);
    CHECK_EQ_INT(b->raw.n, want_len);
    CHECK(b->raw.n == want_len && memcmp(b->raw.p, want, want_len) == 0);
}

/* ------------------------------------------------------------ the full metrics request */

#define TRACE_A "5b8efff798038103d269b633813fc60c"
#define SPAN_A "eee19b7ec3c1b174"
#define TRACE_B "0102030405060708090a0b0c0d0e0f10"
#define SPAN_B "1112131415161718"
#define T0 1700000000000000000ull
#define T_START 1699999999000000000ull
#define SCHEMA "https://opentelemetry.io/schemas/1.21.0"

static const uint8_t BYTES[] = {0x00, 0x01, 'h', 'i'};

static NumberPoint *number_point(uint64_t start, uint64_t time)
{
    NumberPoint *p = ob_msg(&opentelemetry__proto__metrics__v1__number_data_point__descriptor);
    p->start_time_unix_nano = start;
    p->time_unix_nano = time;
    return p;
}

static Exemplar *exemplar(uint64_t time, const char *trace, const char *span)
{
    Exemplar *e = ob_msg(&opentelemetry__proto__metrics__v1__exemplar__descriptor);
    e->time_unix_nano = time;
    e->trace_id = id(trace);
    e->span_id = id(span);
    return e;
}

static Metric *metric(const char *name)
{
    Metric *m = ob_msg(&opentelemetry__proto__metrics__v1__metric__descriptor);
    m->name = (char *)name;
    return m;
}

static Metric *gauge_metric(void)
{
    NumberPoint *p0 = number_point(0, T0);
    p0->n_attributes = 1;
    p0->attributes = ob_ptrs(1, kv("host", v_str("a")));
    p0->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
    p0->as_double = 1.5;
    Exemplar *e = exemplar(T0 + 1, TRACE_A, SPAN_A);
    e->n_filtered_attributes = 1;
    e->filtered_attributes = ob_ptrs(1, kv("k", v_str("v")));
    e->value_case = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_INT;
    e->as_int = -7;
    p0->n_exemplars = 1;
    p0->exemplars = ob_ptrs(1, e);
    NumberPoint *p1 = number_point(T_START, T0);
    p1->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
    p1->as_int = -9007199254740993; /* not exact as a double */
    p1->flags = 1;

    Metric *m = metric("g");
    m->description = "a gauge";
    m->unit = "1";
    m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
    m->gauge = ob_msg(&opentelemetry__proto__metrics__v1__gauge__descriptor);
    m->gauge->n_data_points = 2;
    m->gauge->data_points = ob_ptrs(2, p0, p1);
    return m;
}

static Metric *sum_metric(void)
{
    NumberPoint *p = number_point(0, T0);
    p->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
    p->as_int = INT64_MAX;
    Metric *m = metric("s");
    m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
    m->sum = ob_msg(&opentelemetry__proto__metrics__v1__sum__descriptor);
    m->sum->aggregation_temporality =
        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
    m->sum->is_monotonic = 1;
    m->sum->n_data_points = 1;
    m->sum->data_points = ob_ptrs(1, p);
    return m;
}

static Metric *histogram_metric(void)
{
    static uint64_t counts[] = {1, 4, 5};
    static double bounds[] = {1.0, 5.0};
    HistogramPoint *p = ob_msg(&opentelemetry__proto__metrics__v1__histogram_data_point__descriptor);
    p->start_time_unix_nano = T_START;
    p->time_unix_nano = T0;
    p->count = 10;
    p->_sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM;
    p->sum = 12.5;
    p->_min_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___MIN_MIN;
    p->min = 0.0; /* present, though zero */
    p->_max_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___MAX_MAX;
    p->max = 9.75;
    p->n_bucket_counts = 3;
    p->bucket_counts = counts;
    p->n_explicit_bounds = 2;
    p->explicit_bounds = bounds;
    Exemplar *e = exemplar(T0 + 2, TRACE_B, SPAN_B);
    e->value_case = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE;
    e->as_double = 3.25;
    p->n_exemplars = 1;
    p->exemplars = ob_ptrs(1, e);

    Metric *m = metric("h");
    m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
    m->histogram = ob_msg(&opentelemetry__proto__metrics__v1__histogram__descriptor);
    m->histogram->aggregation_temporality =
        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA;
    m->histogram->n_data_points = 1;
    m->histogram->data_points = ob_ptrs(1, p);
    return m;
}

static Buckets *buckets(int32_t offset, size_t n, uint64_t *counts)
{
    Buckets *b = ob_msg(
        &opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__descriptor);
    b->offset = offset;
    b->n_bucket_counts = n;
    b->bucket_counts = counts;
    return b;
}

static Metric *exp_histogram_metric(void)
{
    static uint64_t pos[] = {1, 2}, neg[] = {3};
    ExpPoint *p =
        ob_msg(&opentelemetry__proto__metrics__v1__exponential_histogram_data_point__descriptor);
    p->n_attributes = 1;
    p->attributes = ob_ptrs(1, kv("shard", v_int(3)));
    p->time_unix_nano = T0;
    p->count = 7;
    p->_sum_case = OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT___SUM_SUM;
    p->sum = -2.5;
    p->scale = -3;
    p->zero_count = 1;
    p->positive = buckets(-2, 2, pos);
    p->negative = buckets(3, 1, neg);
    p->_min_case = OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT___MIN_MIN;
    p->min = -1.0;
    p->_max_case = OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT___MAX_MAX;
    p->max = INFINITY;
    p->zero_threshold = 1e-9;

    Metric *m = metric("eh");
    m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    m->exponential_histogram =
        ob_msg(&opentelemetry__proto__metrics__v1__exponential_histogram__descriptor);
    m->exponential_histogram->aggregation_temporality =
        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
    m->exponential_histogram->n_data_points = 1;
    m->exponential_histogram->data_points = ob_ptrs(1, p);
    return m;
}

static Quantile *quantile(double q, double v)
{
    Quantile *x =
        ob_msg(&opentelemetry__proto__metrics__v1__summary_data_point__value_at_quantile__descriptor);
    x->quantile = q;
    x->value = v;
    return x;
}

static Metric *summary_metric(void)
{
    SummaryPoint *p = ob_msg(&opentelemetry__proto__metrics__v1__summary_data_point__descriptor);
    p->start_time_unix_nano = UINT64_MAX; /* passed on, though no span time could hold it */
    p->time_unix_nano = T0;
    p->count = 4;
    p->sum = 10.0;
    p->n_quantile_values = 2;
    p->quantile_values = ob_ptrs(2, quantile(0.5, 2.0), quantile(1.0, 4.0));

    Metric *m = metric("q");
    m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY;
    m->summary = ob_msg(&opentelemetry__proto__metrics__v1__summary__descriptor);
    m->summary->n_data_points = 1;
    m->summary->data_points = ob_ptrs(1, p);
    m->n_metadata = 1;
    m->metadata = ob_ptrs(1, kv("m", v_int(1)));
    return m;
}

/* Six data points: a gauge (2), a sum, a histogram, an exponential histogram, a
 * summary (1 each), and a metric without data. */
static MetricsRequest *full_metrics(void)
{
    ScopeMetrics *sm = ob_msg(&opentelemetry__proto__metrics__v1__scope_metrics__descriptor);
    sm->scope = scope("meter", "1.0");
    sm->n_metrics = 6;
    sm->metrics = ob_ptrs(6, gauge_metric(), sum_metric(), histogram_metric(), exp_histogram_metric(),
                       summary_metric(), metric("empty"));
    ResourceMetrics *rm = ob_msg(&opentelemetry__proto__metrics__v1__resource_metrics__descriptor);
    rm->resource = resource("svc");
    rm->schema_url = SCHEMA;
    rm->n_scope_metrics = 1;
    rm->scope_metrics = ob_ptrs(1, sm);
    MetricsRequest *r = ob_msg(
        &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor);
    r->n_resource_metrics = 1;
    r->resource_metrics = ob_ptrs(1, rm);
    return r;
}

#define ATTR_S(k, v) "{\"key\":\"" k "\",\"value\":{\"stringValue\":\"" v "\"}}"

static const char *METRICS_JSON_CAMEL =
    "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[" ATTR_S(
        "service.name",
        "svc") "]},"
               "\"schemaUrl\":\"" SCHEMA "\",\"scopeMetrics\":[{\"scope\":{\"name\":\"meter\","
               "\"version\":\"1.0\"},\"metrics\":["
               /* gauge */
               "{\"name\":\"g\",\"description\":\"a "
               "gauge\",\"unit\":\"1\",\"gauge\":{\"dataPoints\":["
               "{\"attributes\":[" ATTR_S(
                   "host",
                   "a") "],\"timeUnixNano\":\"1700000000000000000\","
                        "\"asDouble\":1.5,\"exemplars\":[{\"filteredAttributes\":[" ATTR_S(
                            "k",
                            "v") "],"
                                 "\"timeUnixNano\":\"1700000000000000001\",\"asInt\":\"-7\","
                                 "\"traceId\":\"" TRACE_A "\","
                                 "\"spanId\":\"" SPAN_A "\"}]},"
                                 "{\"startTimeUnixNano\":\"1699999999000000000\",\"timeUnixNano\":"
                                 "\"1700000000000000000\","
                                 "\"asInt\":\"-9007199254740993\",\"flags\":1}]}},"
                                 /* sum */
                                 "{\"name\":\"s\",\"sum\":{\"aggregationTemporality\":"
                                 "\"AGGREGATION_TEMPORALITY_CUMULATIVE\","
                                 "\"isMonotonic\":true,\"dataPoints\":[{\"timeUnixNano\":"
                                 "\"1700000000000000000\","
                                 "\"asInt\":\"9223372036854775807\"}]}},"
                                 /* histogram */
                                 "{\"name\":\"h\",\"histogram\":{\"aggregationTemporality\":1,"
                                 "\"dataPoints\":[{"
                                 "\"startTimeUnixNano\":\"1699999999000000000\",\"timeUnixNano\":"
                                 "\"1700000000000000000\","
                                 "\"count\":\"10\",\"sum\":12.5,\"min\":0,\"max\":9.75,"
                                 "\"bucketCounts\":[\"1\",\"4\",\"5\"],"
                                 "\"explicitBounds\":[1,5.0],\"exemplars\":[{\"timeUnixNano\":"
                                 "\"1700000000000000002\","
                                 "\"asDouble\":3.25,\"traceId\":\"" TRACE_B
                                 "\",\"spanId\":\"" SPAN_B "\"}]}]}},"
                                 /* exponential histogram */
                                 "{\"name\":\"eh\",\"exponentialHistogram\":{"
                                 "\"aggregationTemporality\":2,\"dataPoints\":[{"
                                 "\"attributes\":[{\"key\":\"shard\",\"value\":{\"intValue\":\"3\"}"
                                 "}],"
                                 "\"timeUnixNano\":\"1700000000000000000\",\"count\":\"7\",\"sum\":"
                                 "-2.5,\"scale\":-3,"
                                 "\"zeroCount\":\"1\",\"positive\":{\"offset\":-2,\"bucketCounts\":"
                                 "[\"1\",\"2\"]},"
                                 "\"negative\":{\"offset\":3,\"bucketCounts\":[\"3\"]},\"min\":-1,"
                                 "\"max\":\"Infinity\","
                                 "\"zeroThreshold\":1e-9}]}},"
                                 /* summary */
                                 "{\"name\":\"q\",\"summary\":{\"dataPoints\":[{"
                                 "\"startTimeUnixNano\":\"18446744073709551615\","
                                 "\"timeUnixNano\":\"1700000000000000000\",\"count\":\"4\",\"sum\":"
                                 "10,\"quantileValues\":["
                                 "{\"quantile\":0.5,\"value\":2},{\"quantile\":1,\"value\":4}]}]},"
                                 "\"metadata\":[{\"key\":\"m\",\"value\":{\"intValue\":\"1\"}}]},"
                                 "{\"name\":\"empty\"}]}]}]}";

/* snake_case, numbers, enum names, base64 ids (one URL-safe, one unpadded),
 * nulls for absent members and unknown members to skip. */
static const char *METRICS_JSON_SNAKE =
    "{\"resource_metrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{"
    "\"string_value\":\"svc\"}}],\"entity_refs\":null},\"schema_url\":\"" SCHEMA "\","
    "\"unknown\":{\"x\":[1,2]},\"scope_metrics\":[{\"scope\":{\"name\":\"meter\","
    "\"version\":\"1.0\",\"attributes\":null},\"metrics\":["
    "{\"name\":\"g\",\"description\":\"a gauge\",\"unit\":\"1\",\"sum\":null,\"gauge\":{"
    "\"data_points\":[{\"attributes\":[{\"key\":\"host\",\"value\":{\"string_value\":\"a\"}}],"
    "\"time_unix_nano\":1700000000000000000,\"as_double\":1.5,\"exemplars\":[{"
    "\"filtered_attributes\":[{\"key\":\"k\",\"value\":{\"string_value\":\"v\"}}],"
    "\"time_unix_nano\":1700000000000000001,\"as_int\":-7,"
    "\"trace_id\":\"W47_95gDgQPSabYzgT_GDA\",\"span_id\":\"7uGbfsPBsXQ=\"}]},"
    "{\"start_time_unix_nano\":1699999999000000000,\"time_unix_nano\":1700000000000000000,"
    "\"as_int\":-9007199254740993,\"flags\":1}]}},"
    "{\"name\":\"s\",\"sum\":{\"aggregation_temporality\":2,\"is_monotonic\":true,"
    "\"data_points\":[{\"time_unix_nano\":1700000000000000000,"
    "\"as_int\":9223372036854775807}]}},"
    "{\"name\":\"h\",\"histogram\":{\"aggregation_temporality\":\"AGGREGATION_TEMPORALITY_DELTA\","
    "\"data_points\":[{\"start_time_unix_nano\":1699999999000000000,"
    "\"time_unix_nano\":1700000000000000000,\"count\":10,\"sum\":12.5,\"min\":0.0,"
    "\"max\":\"9.75\",\"bucket_counts\":[1,4,5],\"explicit_bounds\":[1.0,5],\"exemplars\":[{"
    "\"time_unix_nano\":1700000000000000002,\"as_double\":3.25,"
    "\"trace_id\":\"AQIDBAUGBwgJCgsMDQ4PEA==\",\"span_id\":\"ERITFBUWFxg=\"}]}]}},"
    "{\"name\":\"eh\",\"exponential_histogram\":{"
    "\"aggregation_temporality\":\"AGGREGATION_TEMPORALITY_CUMULATIVE\",\"data_points\":[{"
    "\"attributes\":[{\"key\":\"shard\",\"value\":{\"int_value\":3}}],"
    "\"time_unix_nano\":1700000000000000000,\"count\":7,\"sum\":-2.5,\"scale\":\"-3\","
    "\"zero_count\":1,\"positive\":{\"offset\":\"-2\",\"bucket_counts\":[1,2]},"
    "\"negative\":{\"offset\":3,\"bucket_counts\":[3]},\"min\":-1.0,\"max\":\"Infinity\","
    "\"zero_threshold\":1e-9,\"flags\":null}]}},"
    "{\"name\":\"q\",\"summary\":{\"data_points\":[{"
    "\"start_time_unix_nano\":\"18446744073709551615\",\"time_unix_nano\":1700000000000000000,"
    "\"count\":4,\"sum\":10.0,\"quantile_values\":[{\"quantile\":0.5,\"value\":2.0},"
    "{\"quantile\":1.0,\"value\":4.0}]}]},"
    "\"metadata\":[{\"key\":\"m\",\"value\":{\"int_value\":1}}]},"
    "{\"name\":\"empty\",\"data\":{}}]}]}]}";

static void test_metrics_proto(void)
{
    size_t len;
    uint8_t *buf = pack(full_metrics(), &len);
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode(PC_SIGNAL_METRICS, buf, len, false, &res, &rc);
    check_raw(b, rc, &res, 6, buf, len);
    CHECK_EQ_STR(res.error, "");
    pc_batch_unref(b);

    /* Two resources, several scopes: points add up. */
    MetricsRequest *r = full_metrics();
    r->n_resource_metrics = 2;
    r->resource_metrics = ob_ptrs(2, r->resource_metrics[0], full_metrics()->resource_metrics[0]);
    ScopeMetrics *sm = r->resource_metrics[1]->scope_metrics[0];
    r->resource_metrics[1]->n_scope_metrics = 2;
    r->resource_metrics[1]->scope_metrics = ob_ptrs(2, sm, sm);
    buf = pack(r, &len);
    b = decode(PC_SIGNAL_METRICS, buf, len, false, &res, &rc);
    check_raw(b, rc, &res, 18, buf, len);
    pc_batch_unref(b);
}

static void test_metrics_json(void)
{
    size_t len;
    uint8_t *want = pack(full_metrics(), &len);
    const char *texts[] = {METRICS_JSON_CAMEL, METRICS_JSON_SNAKE};
    for (size_t i = 0; i < 2; i++) {
        pc_otlp_result res;
        int rc;
        pc_batch *b = decode(PC_SIGNAL_METRICS, texts[i], strlen(texts[i]), true, &res, &rc);
        check_raw(b, rc, &res, 6, want, len);
        pc_batch_unref(b);
    }
}

/* ------------------------------------------------------------ the full logs request */

static LogRecord *record(AnyValue *body)
{
    LogRecord *r = ob_msg(&opentelemetry__proto__logs__v1__log_record__descriptor);
    r->body = body;
    return r;
}

/* Nine records: one with every field, then one per body type (string first),
 * an empty body and none at all. */
static LogsRequest *full_logs(void)
{
    LogRecord *r0 = record(v_str("hello"));
    r0->time_unix_nano = T0;
    r0->observed_time_unix_nano = T0 + 5;
    r0->severity_number = OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO;
    r0->severity_text = "INFO";
    r0->n_attributes = 7;
    r0->attributes =
        ob_ptrs(7, kv("s", v_str("x")), kv("b", v_bool(1)), kv("i", v_int(-42)),
             kv("d", v_double(2.5)), kv("by", v_bytes(BYTES, sizeof(BYTES))),
             kv("arr", v_array(3, ob_ptrs(3, v_str("x"), v_int(7), v_array(1, ob_ptrs(1, v_bool(1)))))),
             kv("kv", v_kvlist(1, ob_ptrs(1, kv("k", v_str("v"))))));
    r0->dropped_attributes_count = 2;
    r0->flags = 1;
    r0->trace_id = id(TRACE_A);
    r0->span_id = id(SPAN_A);
    r0->event_name = "app.start";

    LogRecord *r8 = record(NULL);
    r8->severity_number = OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_FATAL4;
    r8->trace_id = id(TRACE_B);

    ScopeLogs *sl = ob_msg(&opentelemetry__proto__logs__v1__scope_logs__descriptor);
    sl->scope = scope("logger", "");
    sl->n_log_records = 9;
    sl->log_records =
        ob_ptrs(9, r0, record(v_bool(1)), record(v_int(-42)), record(v_double(2.5)),
             record(v_bytes(BYTES, sizeof(BYTES))),
             record(v_array(3, ob_ptrs(3, v_str("x"), v_int(7), v_array(1, ob_ptrs(1, v_bool(1)))))),
             record(v_kvlist(2, ob_ptrs(2, kv("k", v_str("v")),
                                     kv("n", v_kvlist(1, ob_ptrs(1, kv("z", v_double(0.25)))))))),
             record(v_new(0)), r8);
    ResourceLogs *rl = ob_msg(&opentelemetry__proto__logs__v1__resource_logs__descriptor);
    rl->resource = resource("svc");
    rl->n_scope_logs = 1;
    rl->scope_logs = ob_ptrs(1, sl);
    LogsRequest *r =
        ob_msg(&opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor);
    r->n_resource_logs = 1;
    r->resource_logs = ob_ptrs(1, rl);
    return r;
}

#define ARR_BODY(s, i, b)                                                                          \
    "{\"" s "\":[{\"stringValue\":\"x\"},{\"intValue\":" i "},{\"arrayValue\":{\"values\":[{"      \
    "\"boolValue\":" b "}]}}]}"

static const char *LOGS_JSON_CAMEL = "{\"resourceLogs\":[{\"resource\":{\"attributes\":[" ATTR_S(
    "service.name",
    "svc") "]},"
           "\"scopeLogs\":[{\"scope\":{\"name\":\"logger\"},\"logRecords\":["
           "{\"timeUnixNano\":\"1700000000000000000\",\"observedTimeUnixNano\":"
           "\"1700000000000000005\","
           "\"severityNumber\":\"SEVERITY_NUMBER_INFO\",\"severityText\":\"INFO\","
           "\"body\":{\"stringValue\":\"hello\"},\"attributes\":[" ATTR_S(
               "s",
               "x") ","
                    "{\"key\":\"b\",\"value\":{\"boolValue\":true}},{\"key\":\"i\",\"value\":{"
                    "\"intValue\":\"-42\"}},"
                    "{\"key\":\"d\",\"value\":{\"doubleValue\":2.5}},"
                    "{\"key\":\"by\",\"value\":{\"bytesValue\":\"AAFoaQ==\"}},"
                    "{\"key\":\"arr\",\"value\":{\"arrayValue\":" ARR_BODY(
                        "values", "\"7\"",
                        "true") "}},"
                                "{\"key\":\"kv\",\"value\":{\"kvlistValue\":{\"values\":[" ATTR_S(
                                    "k",
                                    "v") "]}}}],"
                                         "\"droppedAttributesCount\":2,\"flags\":1,\"traceId\":"
                                         "\"5B8EFFF798038103D269B633813FC60C\","
                                         "\"spanId\":\"" SPAN_A "\",\"eventName\":\"app.start\"},"
                                         "{\"body\":{\"boolValue\":true}},{\"body\":{\"intValue\":"
                                         "\"-42\"}},"
                                         "{\"body\":{\"doubleValue\":2.5}},{\"body\":{"
                                         "\"bytesValue\":\"AAFoaQ==\"}},"
                                         "{\"body\":{\"arrayValue\":" ARR_BODY(
                                             "values", "\"7\"",
                                             "true") "}},"
                                                     "{\"body\":{\"kvlistValue\":{\"values\":"
                                                     "[" ATTR_S(
                                                         "k",
                                                         "v") ",{\"key\":\"n\",\"value\":{"
                                                              "\"kvlistValue\":{\"values\":[{"
                                                              "\"key\":\"z\",\"value\":{"
                                                              "\"doubleValue\":0.25}}]}}}]}}},"
                                                              "{\"body\":{}},{\"severityNumber\":"
                                                              "24,\"traceId\":\"" TRACE_B
                                                              "\"}]}]}]}";

static const char *LOGS_JSON_SNAKE =
    "{\"resource_logs\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{"
    "\"string_value\":\"svc\"}}]},\"scope_logs\":[{\"scope\":{\"name\":\"logger\","
    "\"version\":null},\"log_records\":["
    "{\"time_unix_nano\":1700000000000000000,\"observed_time_unix_nano\":1700000000000000005,"
    "\"severity_number\":9,\"severity_text\":\"INFO\",\"body\":{\"string_value\":\"hello\"},"
    "\"attributes\":[{\"key\":\"s\",\"value\":{\"string_value\":\"x\"}},"
    "{\"key\":\"b\",\"value\":{\"bool_value\":true}},{\"key\":\"i\",\"value\":{\"int_value\":-42}},"
    "{\"key\":\"d\",\"value\":{\"double_value\":\"2.5\"}},"
    "{\"key\":\"by\",\"value\":{\"bytes_value\":\"AAFoaQ\"}},"
    "{\"key\":\"arr\",\"value\":{\"array_value\":{\"values\":[{\"string_value\":\"x\"},"
    "{\"int_value\":7},{\"array_value\":{\"values\":[{\"bool_value\":true}]}}]}}},"
    "{\"key\":\"kv\",\"value\":{\"kvlist_value\":{\"values\":[{\"key\":\"k\",\"value\":{"
    "\"string_value\":\"v\"}}]}}}],"
    "\"dropped_attributes_count\":\"2\",\"flags\":\"1\",\"trace_id\":\"W47/95gDgQPSabYzgT/GDA==\","
    "\"span_id\":\"7uGbfsPBsXQ\",\"event_name\":\"app.start\"},"
    "{\"body\":{\"bool_value\":true}},{\"body\":{\"int_value\":-42}},"
    "{\"body\":{\"double_value\":2.5}},{\"body\":{\"bytes_value\":\"AAFoaQ==\"}},"
    "{\"body\":{\"array_value\":{\"values\":[{\"string_value\":\"x\"},{\"int_value\":7},"
    "{\"array_value\":{\"values\":[{\"bool_value\":true}]}}]}}},"
    "{\"body\":{\"kvlist_value\":{\"values\":[{\"key\":\"k\",\"value\":{\"string_value\":\"v\"}},"
    "{\"key\":\"n\",\"value\":{\"kvlist_value\":{\"values\":[{\"key\":\"z\",\"value\":{"
    "\"double_value\":0.25}}]}}}]}}},"
    "{\"body\":{\"string_value\":null}},"
    "{\"severity_number\":\"SEVERITY_NUMBER_FATAL4\",\"trace_id\":\"AQIDBAUGBwgJCgsMDQ4PEA==\","
    "\"span_id\":\"\"}]}]}]}";

static void test_logs_proto(void)
{
    size_t len;
    uint8_t *buf = pack(full_logs(), &len);
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode(PC_SIGNAL_LOGS, buf, len, false, &res, &rc);
    check_raw(b, rc, &res, 9, buf, len);
    pc_batch_unref(b);

    /* The body of the raw bytes is what was sent: spot-check by unpacking. */
    LogsRequest *back = (LogsRequest *)protobuf_c_message_unpack(
        &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor, NULL,
        len, buf);
    CHECK(back != NULL);
    if (back) {
        LogRecord *r0 = back->resource_logs[0]->scope_logs[0]->log_records[0];
        CHECK_EQ_STR(r0->event_name, "app.start");
        CHECK_EQ_INT(r0->trace_id.len, 16);
        CHECK_EQ_INT(back->resource_logs[0]->scope_logs[0]->log_records[7]->body->value_case, 0);
        protobuf_c_message_free_unpacked(&back->base, NULL);
    }
}

static void test_logs_json(void)
{
    size_t len;
    uint8_t *want = pack(full_logs(), &len);
    const char *texts[] = {LOGS_JSON_CAMEL, LOGS_JSON_SNAKE};
    for (size_t i = 0; i < 2; i++) {
        pc_otlp_result res;
        int rc;
        pc_batch *b = decode(PC_SIGNAL_LOGS, texts[i], strlen(texts[i]), true, &res, &rc);
        check_raw(b, rc, &res, 9, want, len);
        pc_batch_unref(b);
    }
}

/* ------------------------------------------------------------ a real client's bytes */

/* Python opentelemetry-proto 1.45.2 (protobuf 7.36.2): the request of
 * full_metrics() built with metrics_pb2 and SerializeToString(). */
static const uint8_t PY_METRICS[] = {
    0x0a, 0xf0, 0x04, 0x0a, 0x17, 0x0a, 0x15, 0x0a, 0x0c, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65,
    0x2e, 0x6e, 0x61, 0x6d, 0x65, 0x12, 0x05, 0x0a, 0x03, 0x73, 0x76, 0x63, 0x12, 0xab, 0x04, 0x0a,
    0x0c, 0x0a, 0x05, 0x6d, 0x65, 0x74, 0x65, 0x72, 0x12, 0x03, 0x31, 0x2e, 0x30, 0x12, 0x8b, 0x01,
    0x0a, 0x01, 0x67, 0x12, 0x07, 0x61, 0x20, 0x67, 0x61, 0x75, 0x67, 0x65, 0x1a, 0x01, 0x31, 0x2a,
    0x7a, 0x0a, 0x59, 0x19, 0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x21, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xf8, 0x3f, 0x2a, 0x38, 0x11, 0x01, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17,
    0x22, 0x08, 0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74, 0x2a, 0x10, 0x5b, 0x8e, 0xff, 0xf7,
    0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c, 0x31, 0xf9, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0x3a, 0x08, 0x0a, 0x01, 0x6b, 0x12, 0x03, 0x0a, 0x01, 0x76, 0x3a,
    0x0b, 0x0a, 0x04, 0x68, 0x6f, 0x73, 0x74, 0x12, 0x03, 0x0a, 0x01, 0x61, 0x0a, 0x1d, 0x11, 0x00,
    0x36, 0x8f, 0xfa, 0xfd, 0x9c, 0x97, 0x17, 0x19, 0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17,
    0x31, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xdf, 0xff, 0x40, 0x01, 0x12, 0x1d, 0x0a, 0x01, 0x73,
    0x3a, 0x18, 0x0a, 0x12, 0x19, 0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x31, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x10, 0x02, 0x18, 0x01, 0x12, 0x9d, 0x01, 0x0a, 0x01, 0x68,
    0x4a, 0x97, 0x01, 0x0a, 0x92, 0x01, 0x11, 0x00, 0x36, 0x8f, 0xfa, 0xfd, 0x9c, 0x97, 0x17, 0x19,
    0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x21, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x29, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29, 0x40, 0x32, 0x18, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x3a, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x14, 0x40, 0x42, 0x2e, 0x11, 0x02, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97,
    0x17, 0x19, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x40, 0x22, 0x08, 0x11, 0x12, 0x13, 0x14,
    0x15, 0x16, 0x17, 0x18, 0x2a, 0x10, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
    0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x59, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x61,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x23, 0x40, 0x10, 0x01, 0x12, 0x67, 0x0a, 0x02, 0x65, 0x68,
    0x52, 0x61, 0x0a, 0x5d, 0x0a, 0x0b, 0x0a, 0x05, 0x73, 0x68, 0x61, 0x72, 0x64, 0x12, 0x02, 0x18,
    0x03, 0x19, 0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x21, 0x07, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x29, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xc0, 0x30, 0x05, 0x39, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42, 0x06, 0x08, 0x03, 0x12, 0x02, 0x01, 0x02, 0x4a,
    0x05, 0x08, 0x06, 0x12, 0x01, 0x03, 0x61, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0xbf, 0x69,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x7f, 0x71, 0x95, 0xd6, 0x26, 0xe8, 0x0b, 0x2e, 0x11,
    0x3e, 0x10, 0x02, 0x12, 0x5c, 0x0a, 0x01, 0x71, 0x5a, 0x4e, 0x0a, 0x4c, 0x11, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0x19, 0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x21, 0x04,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x24, 0x40,
    0x32, 0x12, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0x3f, 0x11, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x40, 0x32, 0x12, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, 0x11,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x40, 0x62, 0x07, 0x0a, 0x01, 0x6d, 0x12, 0x02, 0x18,
    0x01, 0x12, 0x07, 0x0a, 0x05, 0x65, 0x6d, 0x70, 0x74, 0x79, 0x1a, 0x27, 0x68, 0x74, 0x74, 0x70,
    0x73, 0x3a, 0x2f, 0x2f, 0x6f, 0x70, 0x65, 0x6e, 0x74, 0x65, 0x6c, 0x65, 0x6d, 0x65, 0x74, 0x72,
    0x79, 0x2e, 0x69, 0x6f, 0x2f, 0x73, 0x63, 0x68, 0x65, 0x6d, 0x61, 0x73, 0x2f, 0x31, 0x2e, 0x32,
    0x31, 0x2e, 0x30,
};

/* The same for full_logs(). */
static const uint8_t PY_LOGS[] = {
    0x0a, 0xf3, 0x02, 0x0a, 0x17, 0x0a, 0x15, 0x0a, 0x0c, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65,
    0x2e, 0x6e, 0x61, 0x6d, 0x65, 0x12, 0x05, 0x0a, 0x03, 0x73, 0x76, 0x63, 0x12, 0xd7, 0x02, 0x0a,
    0x08, 0x0a, 0x06, 0x6c, 0x6f, 0x67, 0x67, 0x65, 0x72, 0x12, 0xc4, 0x01, 0x09, 0x00, 0x00, 0x2a,
    0x36, 0xfe, 0x9c, 0x97, 0x17, 0x10, 0x09, 0x1a, 0x04, 0x49, 0x4e, 0x46, 0x4f, 0x2a, 0x07, 0x0a,
    0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x32, 0x08, 0x0a, 0x01, 0x73, 0x12, 0x03, 0x0a, 0x01, 0x78,
    0x32, 0x07, 0x0a, 0x01, 0x62, 0x12, 0x02, 0x10, 0x01, 0x32, 0x10, 0x0a, 0x01, 0x69, 0x12, 0x0b,
    0x18, 0xd6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x32, 0x0e, 0x0a, 0x01, 0x64,
    0x12, 0x09, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x40, 0x32, 0x0c, 0x0a, 0x02, 0x62,
    0x79, 0x12, 0x06, 0x3a, 0x04, 0x00, 0x01, 0x68, 0x69, 0x32, 0x1a, 0x0a, 0x03, 0x61, 0x72, 0x72,
    0x12, 0x13, 0x2a, 0x11, 0x0a, 0x03, 0x0a, 0x01, 0x78, 0x0a, 0x02, 0x18, 0x07, 0x0a, 0x06, 0x2a,
    0x04, 0x0a, 0x02, 0x10, 0x01, 0x32, 0x12, 0x0a, 0x02, 0x6b, 0x76, 0x12, 0x0c, 0x32, 0x0a, 0x0a,
    0x08, 0x0a, 0x01, 0x6b, 0x12, 0x03, 0x0a, 0x01, 0x76, 0x38, 0x02, 0x45, 0x01, 0x00, 0x00, 0x00,
    0x4a, 0x10, 0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
    0xc6, 0x0c, 0x52, 0x08, 0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74, 0x59, 0x05, 0x00, 0x2a,
    0x36, 0xfe, 0x9c, 0x97, 0x17, 0x62, 0x09, 0x61, 0x70, 0x70, 0x2e, 0x73, 0x74, 0x61, 0x72, 0x74,
    0x12, 0x04, 0x2a, 0x02, 0x10, 0x01, 0x12, 0x0d, 0x2a, 0x0b, 0x18, 0xd6, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0x01, 0x12, 0x0b, 0x2a, 0x09, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x04, 0x40, 0x12, 0x08, 0x2a, 0x06, 0x3a, 0x04, 0x00, 0x01, 0x68, 0x69, 0x12, 0x15, 0x2a, 0x13,
    0x2a, 0x11, 0x0a, 0x03, 0x0a, 0x01, 0x78, 0x0a, 0x02, 0x18, 0x07, 0x0a, 0x06, 0x2a, 0x04, 0x0a,
    0x02, 0x10, 0x01, 0x12, 0x27, 0x2a, 0x25, 0x32, 0x23, 0x0a, 0x08, 0x0a, 0x01, 0x6b, 0x12, 0x03,
    0x0a, 0x01, 0x76, 0x0a, 0x17, 0x0a, 0x01, 0x6e, 0x12, 0x12, 0x32, 0x10, 0x0a, 0x0e, 0x0a, 0x01,
    0x7a, 0x12, 0x09, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x3f, 0x12, 0x02, 0x2a, 0x00,
    0x12, 0x14, 0x10, 0x18, 0x4a, 0x10, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
    0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
};

/* json_format.MessageToJson of that logs request: proto3 JSON, which differs
 * from OTLP/JSON in its base64 ids. */
static const char *PY_LOGS_JSON =
    "{\"resourceLogs\": [{\"resource\": {\"attributes\": [{\"key\": \"service.name\", \"value\": "
    "{\"stringValue\": \"svc\"}}]}, \"scopeLogs\": [{\"scope\": {\"name\": \"logger\"}, \"logRecor"
    "ds\": [{\"timeUnixNano\": \"1700000000000000000\", \"severityNumber\": \"SEVERITY_NUMBER"
    "_INFO\", \"severityText\": \"INFO\", \"body\": {\"stringValue\": \"hello\"}, \"attributes\": "
    "[{\"key\": \"s\", \"value\": {\"stringValue\": \"x\"}}, {\"key\": \"b\", \"value\": "
    "{\"boolValue\""
    ": true}}, {\"key\": \"i\", \"value\": {\"intValue\": \"-42\"}}, {\"key\": \"d\", \"value\": "
    "{\"do"
    "ubleValue\": 2.5}}, {\"key\": \"by\", \"value\": {\"bytesValue\": \"AAFoaQ==\"}}, {\"key\": \""
    "arr\", \"value\": {\"arrayValue\": {\"values\": [{\"stringValue\": \"x\"}, {\"intValue\": "
    "\"7\""
    "}, {\"arrayValue\": {\"values\": [{\"boolValue\": true}]}}]}}}, {\"key\": \"kv\", \"value\":"
    " {\"kvlistValue\": {\"values\": [{\"key\": \"k\", \"value\": {\"stringValue\": \"v\"}}]}}}], "
    "\""
    "droppedAttributesCount\": 2, \"flags\": 1, \"traceId\": \"W47/95gDgQPSabYzgT/GDA==\", \""
    "spanId\": \"7uGbfsPBsXQ=\", \"observedTimeUnixNano\": \"1700000000000000005\", \"eventNa"
    "me\": \"app.start\"}, {\"body\": {\"boolValue\": true}}, {\"body\": {\"intValue\": \"-42\"}},"
    " {\"body\": {\"doubleValue\": 2.5}}, {\"body\": {\"bytesValue\": \"AAFoaQ==\"}}, {\"body\": "
    "{\"arrayValue\": {\"values\": [{\"stringValue\": \"x\"}, {\"intValue\": \"7\"}, {\"arrayValue"
    "\": {\"values\": [{\"boolValue\": true}]}}]}}}, {\"body\": {\"kvlistValue\": {\"values\": ["
    "{\"key\": \"k\", \"value\": {\"stringValue\": \"v\"}}, {\"key\": \"n\", \"value\": "
    "{\"kvlistValue"
    "\": {\"values\": [{\"key\": \"z\", \"value\": {\"doubleValue\": 0.25}}]}}}]}}}, {\"body\": {}"
    "}, {\"severityNumber\": \"SEVERITY_NUMBER_FATAL4\", \"traceId\": \"AQIDBAUGBwgJCgsMDQ4P"
    "EA==\"}]}]}]}";

static void test_real_client(void)
{
    size_t len;
    uint8_t *ours = pack(full_metrics(), &len);
    CHECK(len == sizeof(PY_METRICS) && memcmp(ours, PY_METRICS, len) == 0);
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode(PC_SIGNAL_METRICS, PY_METRICS, sizeof(PY_METRICS), false, &res, &rc);
    check_raw(b, rc, &res, 6, PY_METRICS, sizeof(PY_METRICS));
    pc_batch_unref(b);

    ours = pack(full_logs(), &len);
    CHECK(len == sizeof(PY_LOGS) && memcmp(ours, PY_LOGS, len) == 0);
    b = decode(PC_SIGNAL_LOGS, PY_LOGS, sizeof(PY_LOGS), false, &res, &rc);
    check_raw(b, rc, &res, 9, PY_LOGS, sizeof(PY_LOGS));
    pc_batch_unref(b);

    b = decode(PC_SIGNAL_LOGS, PY_LOGS_JSON, strlen(PY_LOGS_JSON), true, &res, &rc);
    check_raw(b, rc, &res, 9, PY_LOGS, sizeof(PY_LOGS));
    pc_batch_unref(b);
}

/* ------------------------------------------------------------ edge cases that succeed */

static void test_empty(void)
{
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode(PC_SIGNAL_METRICS, "", 0, false, &res, &rc);
    check_raw(b, rc, &res, 0, (const uint8_t *)"", 0);
    pc_batch_unref(b);
    b = decode(PC_SIGNAL_LOGS, "{}", 2, true, &res, &rc);
    check_raw(b, rc, &res, 0, (const uint8_t *)"", 0);
    pc_batch_unref(b);

    /* A null data point is an empty one, and still counts. */
    const char *text = "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"gauge\":{"
                       "\"dataPoints\":[null,{}]}}]}]}]}";
    b = decode(PC_SIGNAL_METRICS, text, strlen(text), true, &res, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b->items, 2);
    pc_batch_unref(b);

    /* Unknown fields on the wire are skipped (and passed on). */
    const uint8_t unknown[] = {0x10, 0x01, 0x1a, 0x02, 'h', 'i', 0x25, 1, 2, 3, 4};
    b = decode(PC_SIGNAL_LOGS, unknown, sizeof(unknown), false, &res, &rc);
    check_raw(b, rc, &res, 0, unknown, sizeof(unknown));
    pc_batch_unref(b);

    /* Moderate nesting (20 kvlists) is fine both ways. */
    AnyValue *v = v_str("leaf");
    for (int i = 0; i < 20; i++)
        v = v_kvlist(1, ob_ptrs(1, kv("k", v)));
    LogsRequest *r = full_logs();
    r->resource_logs[0]->scope_logs[0]->log_records[0]->body = v;
    size_t len;
    uint8_t *buf = pack(r, &len);
    b = decode(PC_SIGNAL_LOGS, buf, len, false, &res, &rc);
    check_raw(b, rc, &res, 9, buf, len);
    pc_batch_unref(b);

    /* Traces are not this decoder's. */
    b = decode(PC_SIGNAL_TRACES, "", 0, false, &res, &rc);
    CHECK_EQ_INT(rc, -1);
    CHECK_EQ_STR(res.error, "not a metrics or logs batch");
    pc_batch_unref(b);
}

/* ------------------------------------------------------------ malformed protobuf */

static void check_error(pc_signal sig, const void *buf, size_t len, bool json, const char *want)
{
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode(sig, buf, len, json, &res, &rc);
    CHECK_EQ_INT(rc, -1);
    if (strncmp(res.error, want, strlen(want)) != 0) CHECK_EQ_STR(res.error, want);
    CHECK_EQ_INT(res.accepted, 0);
    CHECK_EQ_INT(b->items, 0);
    CHECK(b->raw.p == NULL);
    pc_batch_unref(b);
}

static void check_pb_logs(const LogsRequest *r, const char *want)
{
    size_t len;
    uint8_t *buf = pack(r, &len);
    check_error(PC_SIGNAL_LOGS, buf, len, false, want);
}

static void test_proto_malformed(void)
{
    size_t len;
    uint8_t *buf = pack(full_metrics(), &len);
    for (size_t cut = 1; cut < len; cut += 7) /* truncated anywhere: never a crash */
        check_error(PC_SIGNAL_METRICS, buf, len - cut, false, "invalid protobuf at byte ");
    check_error(PC_SIGNAL_METRICS, buf, len - 1, false,
                "invalid protobuf at byte 0: truncated length-delimited field");
    check_error(PC_SIGNAL_LOGS, "hello, world", 12, false, "invalid protobuf at byte ");
    const uint8_t wrong_type[] = {0x08, 0x05}; /* resource_logs as a varint */
    check_error(PC_SIGNAL_LOGS, wrong_type, sizeof(wrong_type), false,
                "invalid protobuf at byte 0: wrong wire type for a known field");

    /* A packed fixed64 list whose length is not a multiple of 8: the wire walk
     * passes it, protobuf-c does not. Histogram point bucket_counts (6). */
    const uint8_t bad_packed[] = {0x0a, 0x0e, 0x12, 0x0c, 0x12, 0x0a, 0x4a, 0x08,
                                  0x0a, 0x06, 0x32, 0x04, 0x01, 0x02, 0x03, 0x04};
    check_error(PC_SIGNAL_METRICS, bad_packed, sizeof(bad_packed), false,
                "invalid protobuf ExportMetricsServiceRequest");

    /* 200 nested kvlists in a log body: protobuf-c would recurse on all of them. */
    AnyValue *v = v_str("leaf");
    for (int i = 0; i < 200; i++)
        v = v_kvlist(1, ob_ptrs(1, kv("k", v)));
    LogsRequest *r = full_logs();
    r->resource_logs[0]->scope_logs[0]->log_records[3]->body = v;
    check_pb_logs(r, "invalid protobuf at byte ");
    buf = pack(r, &len);
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode(PC_SIGNAL_LOGS, buf, len, false, &res, &rc);
    CHECK(strstr(res.error, "nested too deeply") != NULL);
    pc_batch_unref(b);
}

/* Many tiny messages cost far more as structs than on the wire: bounded. */
static void test_budget(void)
{
    size_t n = 1000000;
    size_t len = 2 * n + 64, at = len;
    uint8_t *buf = malloc(len);
    /* ExponentialHistogram{data_points(1)} n times empty */
    for (size_t i = 0; i < n; i++) {
        buf[--at] = 0x00;
        buf[--at] = 0x0a;
    }
    /* Metric{exponential_histogram(10)} ScopeMetrics{metrics(2)}
     * ResourceMetrics{scope_metrics(2)} Request{resource_metrics(1)} */
    const uint8_t tags[] = {0x52, 0x12, 0x12, 0x0a};
    for (size_t t = 0; t < sizeof(tags); t++) {
        size_t inner = len - at;
        uint8_t tmp[10];
        size_t k = 0;
        do {
            tmp[k++] = (inner & 0x7f) | (inner > 0x7f ? 0x80 : 0);
            inner >>= 7;
        } while (inner);
        at -= k;
        memcpy(buf + at, tmp, k);
        buf[--at] = tags[t];
    }
    check_error(PC_SIGNAL_METRICS, buf + at, len - at, false,
                "request has too many small messages to decode");
    free(buf);

    /* The same in JSON: "{}," per point. */
    pc_buf text = {0};
    pc_buf_puts(&text, "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{"
                       "\"exponentialHistogram\":{\"dataPoints\":[{}");
    for (size_t i = 1; i < n; i++)
        pc_buf_puts(&text, ",{}");
    pc_buf_puts(&text, "]}}]}]}]}");
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode(PC_SIGNAL_METRICS, text.data, text.len, true, &res, &rc);
    CHECK_EQ_INT(rc, -1);
    CHECK(strstr(res.error, "request has too many small messages to decode") != NULL);
    CHECK(pc_arena_used(b->arena) < 100u * text.len);
    pc_batch_unref(b);
    pc_buf_free(&text);
}

static void test_proto_strings(void)
{
    LogsRequest *r = full_logs();
    LogRecord **recs = r->resource_logs[0]->scope_logs[0]->log_records;
    recs[1]->body = v_str("bad\xff");
    check_pb_logs(r, "resource_logs[0].scope_logs[0].log_records[1].body.string_value: "
                     "invalid UTF-8");
    recs[1]->body = v_bool(1);

    recs[0]->attributes[6] =
        kv("kv", v_kvlist(2, ob_ptrs(2, kv("k", v_str("v")), kv("k2", v_str("\xc0\x80")))));
    check_pb_logs(r, "resource_logs[0].scope_logs[0].log_records[0].attributes[6].value."
                     "kvlist_value.values[1].value.string_value: invalid UTF-8");
    recs[0]->attributes[6] = kv("bad\xed\xa0\x80", v_int(1));
    check_pb_logs(r, "resource_logs[0].scope_logs[0].log_records[0].attributes[6].key: "
                     "invalid UTF-8");
    recs[0]->attributes[6] = kv("kv", v_int(1));
    r->resource_logs[0]->resource->attributes[0] = kv("service.name", v_str("caf\xe9"));
    check_pb_logs(r, "resource_logs[0].resource.attributes[0].value.string_value: invalid UTF-8");
    r->resource_logs[0]->resource->attributes[0] = kv("service.name", v_str("caf\xc3\xa9"));

    /* Bytes values are not text: anything goes. */
    recs[2]->body = v_bytes("\xff\xfe", 2);
    size_t len;
    uint8_t *buf = pack(r, &len);
    pc_otlp_result res;
    int rc;
    pc_batch *b = decode(PC_SIGNAL_LOGS, buf, len, false, &res, &rc);
    check_raw(b, rc, &res, 9, buf, len);
    pc_batch_unref(b);

    /* Invalid UTF-8 behind a NUL, which protobuf-c would cut the string at:
     * "ok\0\xff" as the string body of record 2, patched into the packed bytes. */
    recs[2]->body = v_str("ok_X");
    buf = pack(r, &len);
    uint8_t *at = memmem(buf, len, "ok_X", 4);
    CHECK(at != NULL);
    if (at) {
        at[2] = 0x00;
        at[3] = 0xff;
        check_error(PC_SIGNAL_LOGS, buf, len, false,
                    "resource_logs[0].scope_logs[0].log_records[2].body.string_value: invalid "
                    "UTF-8");
    }

    /* Ids of the wrong length, in a log record and an exemplar. */
    recs[2]->body = v_int(1);
    recs[4]->trace_id = id(TRACE_A "aa");
    check_pb_logs(r, "resource_logs[0].scope_logs[0].log_records[4].trace_id: must be 16 bytes, "
                     "got 17");
    recs[4]->trace_id = id("");
    recs[4]->span_id = id("0102");
    check_pb_logs(r, "resource_logs[0].scope_logs[0].log_records[4].span_id: must be 8 bytes, "
                     "got 2");

    MetricsRequest *m = full_metrics();
    Metric *h = m->resource_metrics[0]->scope_metrics[0]->metrics[2];
    h->histogram->data_points[0]->exemplars[0]->span_id = id(TRACE_A);
    buf = pack(m, &len);
    check_error(PC_SIGNAL_METRICS, buf, len, false,
                "resource_metrics[0].scope_metrics[0].metrics[2].histogram.data_points[0]."
                "exemplars[0].span_id: must be 8 bytes, got 16");
    h->histogram->data_points[0]->exemplars[0]->span_id = id(SPAN_B);
    h->name = "h\x80";
    buf = pack(m, &len);
    check_error(PC_SIGNAL_METRICS, buf, len, false,
                "resource_metrics[0].scope_metrics[0].metrics[2].name: invalid UTF-8");
}

/* ------------------------------------------------------------ malformed JSON */

static void check_js(pc_signal sig, const char *text, const char *want)
{
    check_error(sig, text, strlen(text), true, want);
}

#define METRIC_JSON(fields)                                                                        \
    "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"a\"},{" fields "}]}]}]}"
#define RECORD_JSON(fields)                                                                        \
    "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{}," fields "]}]}]}"
#define MPATH "resourceMetrics[0].scopeMetrics[0].metrics[1]."
#define LPATH "resourceLogs[0].scopeLogs[0].logRecords[1]"

static void test_json_malformed(void)
{
    pc_signal M = PC_SIGNAL_METRICS, L = PC_SIGNAL_LOGS;
    check_js(M, "{\"resourceMetrics\":[", "invalid JSON: ");
    check_js(M, "[]", "expected a JSON object (ExportMetricsServiceRequest)");
    check_js(L, "{\"resourceLogs\":{}}", "resourceLogs: expected an array");
    check_js(L, "{\"resource_logs\":[5]}", "resource_logs[0]: expected an object");
    check_js(M, METRIC_JSON("\"gauge\":[]"), MPATH "gauge: expected an object");
    check_js(M, METRIC_JSON("\"gauge\":{\"dataPoints\":{}}"),
             MPATH "gauge.dataPoints: expected an array");
    check_js(M, METRIC_JSON("\"sum\":{\"isMonotonic\":\"yes\"}"),
             MPATH "sum.isMonotonic: expected true or false");
    check_js(M, METRIC_JSON("\"sum\":{\"aggregationTemporality\":\"AGGREGATION_TEMPORALITY_X\"}"),
             MPATH "sum.aggregationTemporality: unknown enum name");
    check_js(M, METRIC_JSON("\"sum\":{\"aggregation_temporality\":{}}"),
             MPATH "sum.aggregation_temporality: expected an enum name or number");
    check_js(M, METRIC_JSON("\"gauge\":{\"dataPoints\":[{},{\"asInt\":1.5}]}"),
             MPATH "gauge.dataPoints[1].asInt: expected an integer");
    check_js(M, METRIC_JSON("\"gauge\":{\"dataPoints\":[{\"timeUnixNano\":-1}]}"),
             MPATH "gauge.dataPoints[0].timeUnixNano: integer out of range");
    check_js(
        M, METRIC_JSON("\"gauge\":{\"dataPoints\":[{\"timeUnixNano\":\"18446744073709551616\"}]}"),
        MPATH "gauge.dataPoints[0].timeUnixNano: integer out of range");
    check_js(M, METRIC_JSON("\"gauge\":{\"dataPoints\":[{\"flags\":4294967296}]}"),
             MPATH "gauge.dataPoints[0].flags: integer out of range");
    check_js(M, METRIC_JSON("\"gauge\":{\"dataPoints\":[{\"asDouble\":\"fast\"}]}"),
             MPATH "gauge.dataPoints[0].asDouble: expected a number");
    check_js(M, METRIC_JSON("\"histogram\":{\"dataPoints\":[{\"bucketCounts\":[\"1\",\"x\"]}]}"),
             MPATH "histogram.dataPoints[0].bucketCounts[1]: expected an integer");
    check_js(M, METRIC_JSON("\"histogram\":{\"dataPoints\":[{\"explicitBounds\":[true]}]}"),
             MPATH "histogram.dataPoints[0].explicitBounds[0]: expected a number");
    check_js(M, METRIC_JSON("\"exponentialHistogram\":{\"dataPoints\":[{\"scale\":2147483648}]}"),
             MPATH "exponentialHistogram.dataPoints[0].scale: integer out of range");
    check_js(M, METRIC_JSON("\"exponentialHistogram\":{\"dataPoints\":[{\"positive\":[]}]}"),
             MPATH "exponentialHistogram.dataPoints[0].positive: expected an object");
    check_js(M,
             METRIC_JSON("\"summary\":{\"dataPoints\":[{\"quantileValues\":[{\"value\":\"\"}]}]}"),
             MPATH "summary.dataPoints[0].quantileValues[0].value: expected a number");
    check_js(M, METRIC_JSON("\"name\":7"), MPATH "name: expected a string");
    check_js(M, METRIC_JSON("\"metadata\":[{\"key\":\"a\",\"value\":{\"intValue\":true}}]"),
             MPATH "metadata[0].value.intValue: expected an integer");

    check_js(L, RECORD_JSON("{\"timeUnixNano\":true}"),
             LPATH ".timeUnixNano: expected an integer (number or decimal string)");
    check_js(L, RECORD_JSON("{\"severityNumber\":\"SEVERITY_NUMBER_LOUD\"}"),
             LPATH ".severityNumber: unknown enum name");
    check_js(L, RECORD_JSON("{\"body\":\"text\"}"), LPATH ".body: expected an object");
    check_js(L, RECORD_JSON("{\"body\":{\"bytesValue\":\"@@\"}}"),
             LPATH ".body.bytesValue: invalid base64");
    check_js(L, RECORD_JSON("{\"body\":{\"arrayValue\":{\"values\":[1]}}}"),
             LPATH ".body.arrayValue.values[0]: expected an object");
    check_js(L, RECORD_JSON("{\"body\":{\"kvlistValue\":{\"values\":[{\"key\":7}]}}}"),
             LPATH ".body.kvlistValue.values[0].key: expected a string");
    check_js(L, RECORD_JSON("{\"attributes\":[\"a\"]}"),
             LPATH ".attributes[0]: expected an object");
    check_js(L, RECORD_JSON("{\"traceId\":5}"), LPATH ".traceId: expected a hex string");
    /* a 33-hex-digit id is neither hex of 16 bytes nor base64 of 16 bytes */
    check_js(L, RECORD_JSON("{\"traceId\":\"" TRACE_A "0\"}"),
             LPATH ".traceId: must be 32 hex digits");
    check_js(L, RECORD_JSON("{\"span_id\":\"" SPAN_A "00\"}"),
             LPATH ".span_id: must be 16 hex digits");
    check_js(L, RECORD_JSON("{\"spanId\":\"AQIDBAUGBwgJCgsMDQ4PEA==\"}"),
             LPATH ".spanId: must be 16 hex digits");
    /* the parser's own errors: invalid UTF-8, nesting beyond PC_JSON_MAX_DEPTH */
    check_js(L, RECORD_JSON("{\"severityText\":\"bad\xff\"}"), "invalid JSON: ");
    /* U+0000 cannot be packed by protobuf-c */
    check_js(L, RECORD_JSON("{\"severityText\":\"a\\u0000b\"}"),
             LPATH ".severityText: U+0000 in a string is not supported");

    pc_buf deep = {0};
    pc_buf_puts(&deep, "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"body\":");
    for (int i = 0; i < 200; i++)
        pc_buf_puts(&deep, "{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":");
    pc_buf_puts(&deep, "{\"intValue\":1}");
    for (int i = 0; i < 200; i++)
        pc_buf_puts(&deep, "}]}}");
    pc_buf_puts(&deep, "}]}]}]}");
    check_error(L, deep.data, deep.len, true, "invalid JSON: ");
    pc_buf_free(&deep);
}

int main(void)
{
    OB = pc_arena_create(1 << 16);
    RUN(test_metrics_proto);
    RUN(test_metrics_json);
    RUN(test_logs_proto);
    RUN(test_logs_json);
    RUN(test_real_client);
    RUN(test_empty);
    RUN(test_proto_malformed);
    RUN(test_budget);
    RUN(test_proto_strings);
    RUN(test_json_malformed);
    pc_arena_destroy(OB);
    return CHECK_DONE();
}
