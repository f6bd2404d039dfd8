/*
 * test_kafka.c - the `kafka` exporter, driven through its ops exactly as the
 * pipeline drives it (options table → validate → create → start → consume →
 * shutdown → destroy) against librdkafka's built-in mock cluster
 * (rdkafka_mock.h): three in-process brokers speaking the real protocol.
 *
 * What comes out is read back with a real librdkafka consumer and decoded:
 * prela_json span and trace messages (keys, counts, fields), otlp_proto
 * (unpacked as ExportTraceServiceRequest with the generated protobuf-c code),
 * otlp_json, metrics/logs bytes unchanged. Also: oversize spans dropped and
 * counted while the rest is acknowledged, requests split to fit, broker-side
 * MSG_SIZE_TOO_LARGE dropped not retried, brokers down / request errors
 * answering PC_RETRY within the timeout and recovering, 8 concurrent consumers,
 * a fatal producer error (in-flight batches failed, the producer recreated,
 * health UNAVAILABLE with the reason meanwhile and OK afterwards), and
 * validation messages naming the key.
 *
 * Each test makes its own mock cluster, so fault injection never leaks.
 */
#include "check.h"
#include "options.h"

#include "config.h"
#include "exporters/kafka.h"
#include "json.h"
#include "log.h"
#include "span.h"
#include "timefmt.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1737972000000000000LL /* 2025-01-27T10:00:00Z */
#define MS 1000000LL
#define PARTS 4

static const pc_component_ops *const ops = &pc_kafka_exporter_ops;

/* ---------------------------------------------------------- mock cluster -- */

typedef struct cluster {
    rd_kafka_t *rk; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps;
} cluster;

static void cluster_open(cluster *c, const char *const *topics)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    CHECK(c->rk != NULL);
    c->mc = rd_kafka_mock_cluster_new(c->rk, 3);
    CHECK(c->mc != NULL);
    c->bootstraps = rd_kafka_mock_cluster_bootstraps(c->mc);
    for (size_t i = 0; topics[i]; i++)
        CHECK_EQ_INT(rd_kafka_mock_topic_create(c->mc, topics[i], PARTS, 3), 0);
}

static void cluster_close(cluster *c)
{
    rd_kafka_mock_cluster_destroy(c->mc);
    rd_kafka_destroy(c->rk);
}

static void cluster_set_brokers(cluster *c, bool up)
{
    for (int id = 1; id <= 3; id++) {
        if (up)
            rd_kafka_mock_broker_set_up(c->mc, id);
        else
            rd_kafka_mock_broker_set_down(c->mc, id);
    }
}

/* One message read back. */
typedef struct msg {
    char topic[32];
    int has_key;
    char key[128];
    char *val; /* NUL-terminated copy */
    size_t n;
} msg;

static void msgs_free(msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].val);
}

/*
 * Reads |topic| from the beginning until |want| messages arrived (then 300 ms
 * more, to see any extra) or 15 s passed (2 s when |want| is 0). Returns how
 * many it read (<= cap).
 */
static size_t read_topic(const cluster *c, const char *topic, size_t want, msg *out, size_t cap)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstraps, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "test-reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    CHECK(rk != NULL);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);

    size_t got = 0;
    bool extra_wait = want == 0; /* expecting nothing: look for 2 s */
    int64_t end = pc_time_mono_ns() + (want ? 15000 : 2000) * MS;
    while (pc_time_mono_ns() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (!m) continue;
        if (!m->err && got < cap) {
            msg *o = &out[got++];
            snprintf(o->topic, sizeof(o->topic), "%s", rd_kafka_topic_name(m->rkt));
            o->has_key = m->key != NULL;
            snprintf(o->key, sizeof(o->key), "%.*s", (int)m->key_len,
                     m->key ? (const char *)m->key : "");
            o->val = malloc(m->len + 1);
            memcpy(o->val, m->payload, m->len);
            o->val[m->len] = '\0';
            o->n = m->len;
        }
        rd_kafka_message_destroy(m);
        if (got >= want && !extra_wait) {
            extra_wait = true;
            end = pc_time_mono_ns() + 300 * MS;
        }
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got;
}

/* ---------------------------------------------------------------- exporter -- */

typedef struct exporter {
    void *cfg;
    void *ctx;
} exporter;

/* Fills a config through the real option table: brokers + |n| key/value pairs,
 * after "encoding: prela_json" (these tests count a message per span; a pair of
 * |kv| may set another encoding). */
static void *make_cfg(const char *brokers, const char *const *kv, size_t n, char *err,
                      size_t errlen)
{
    int rc;
    const char *all[2 + 2 * 16] = {"encoding", "prela_json"};
    CHECK(n <= 16);
    for (size_t i = 0; i < 2 * n && i < 2 * 16; i++)
        all[2 + i] = kv[i];
    void *cfg = pc_test_options(ops, "exporters.kafka", "brokers", brokers, all, n + 1, err,
                                errlen, &rc);
    CHECK_EQ_INT(rc, 0);
    return cfg;
}

static void exporter_open(exporter *x, const cluster *c, const char *const *kv, size_t n)
{
    char err[256] = "";
    x->cfg = make_cfg(c->bootstraps, kv, n, err, sizeof(err));
    CHECK_EQ_INT(ops->validate(x->cfg, err, sizeof(err)), 0);
    x->ctx = ops->create("kafka", x->cfg, NULL);
    CHECK(x->ctx != NULL);
    CHECK_EQ_INT(ops->start(x->ctx, NULL), 0);
}

static void exporter_close(exporter *x)
{
    ops->shutdown(x->ctx);
    ops->shutdown(x->ctx); /* idempotent */
    ops->destroy(x->ctx);
    pc_config_free_options(ops->options, x->cfg);
    free(x->cfg);
}

static pc_kafka_stats stats(const exporter *x)
{
    pc_kafka_stats s;
    pc_kafka_get_stats(x->ctx, &s);
    return s;
}

/* ------------------------------------------------------------------ batches -- */

static pc_str S(pc_batch *b, const char *s)
{
    return (pc_str){pc_arena_strndup(b->arena, s, strlen(s)), strlen(s)};
}

static const pc_attrs *resource_of(pc_batch *b, const char *service)
{
    pc_attrs *r = pc_arena_calloc(b->arena, sizeof(*r));
    r->kv = pc_arena_calloc(b->arena, 2 * sizeof(pc_kv));
    r->kv[0].key = S(b, "service.name");
    r->kv[0].value.type = PC_V_STR;
    r->kv[0].value.s = S(b, service);
    r->kv[1].key = S(b, "host.name");
    r->kv[1].value.type = PC_V_STR;
    r->kv[1].value.s = S(b, "box");
    r->n = 2;
    return r;
}

/* Adds a span with the derived fields set as normalize would; |pad| bytes of
 * attribute text make it as large as a test needs. */
static pc_span *add_span(pc_batch *b, const char *trace, const char *span, const char *parent,
                         const char *name, size_t pad)
{
    pc_span *s = pc_batch_add(b);
    s->trace_id = S(b, trace);
    s->span_id = S(b, span);
    s->parent_id = S(b, parent ? parent : "");
    s->name = S(b, name);
    s->kind = 3;
    s->start_ns = T0 + 1500;
    s->end_ns = T0 + 250 * MS + 1500;
    s->status = PC_STATUS_SUCCESS;
    s->status_code = PC_OTLP_STATUS_OK;
    s->project_id = S(b, "proj-1");
    s->service_name = S(b, "svc");
    s->source = PC_SOURCE_OTLP;
    s->span_type = PC_TYPE_LLM;
    s->llm_model = S(b, "gpt-4o");
    s->input_tokens = 12;
    s->attrs.kv = pc_arena_calloc(b->arena, 3 * sizeof(pc_kv));
    s->attrs.n = 3;
    s->attrs.kv[0].key = S(b, "n");
    s->attrs.kv[0].value.type = PC_V_INT;
    s->attrs.kv[0].value.i = 42;
    s->attrs.kv[1].key = S(b, "ratio");
    s->attrs.kv[1].value.type = PC_V_DOUBLE;
    s->attrs.kv[1].value.d = 0.5;
    s->attrs.kv[2].key = S(b, "text");
    s->attrs.kv[2].value.type = PC_V_STR;
    char *p = pc_arena_alloc(b->arena, pad + 1);
    memset(p, 'x', pad);
    s->attrs.kv[2].value.s = (pc_str){p, pad};
    s->resource = resource_of(b, "svc");
    return s;
}

#define TA "0af7651916cd43dd8448eb211c80319c"
#define TB "test-123"

/* Trace TA: root + 2 children, one in error; trace TB: 2 spans, no root. */
static pc_batch *two_traces(void)
{
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = T0 + 5 * 1000 * MS;
    pc_span *root = add_span(b, TA, "b7ad6b7169203331", NULL, "agent run", 10);
    root->span_type = PC_TYPE_AGENT;
    root->input_tokens = -1;
    root->service_name = S(b, "root-svc");
    add_span(b, TB, "s-1", "parent-x", "tool call", 10)->source = PC_SOURCE_PRELA;
    pc_span *err = add_span(b, TA, "00f067aa0ba902b7", "b7ad6b7169203331", "chat", 10);
    err->status = PC_STATUS_ERROR;
    err->status_code = PC_OTLP_STATUS_ERROR;
    err->status_message = S(b, "boom");
    err->end_ns = T0 + 900 * MS;
    add_span(b, TA, "1111111111111111", "b7ad6b7169203331", "chat 2", 10);
    add_span(b, TB, "s-2", "parent-x", "tool call 2", 10)->source = PC_SOURCE_PRELA;
    for (size_t i = 1; i < b->n; i++) /* one resource, as a decoder shares it */
        b->spans[i].resource = b->spans[0].resource;
    return b;
}

/* ---------------------------------------------------------------- JSON helpers -- */

typedef struct doc {
    pc_arena *a;
    pc_value v;
} doc;

static bool parse(doc *d, const msg *m)
{
    d->a = pc_arena_create(4096);
    pc_json_error e;
    int rc = pc_json_parse(d->a, m->val, m->n, &d->v, &e);
    if (rc) fprintf(stderr, "bad JSON: %s\n%s\n", e.msg, m->val);
    return rc == 0;
}

static pc_str jstr(const pc_value *o, const char *k)
{
    const pc_value *v = pc_json_get(o, k);
    return v && v->type == PC_V_STR ? v->s : PC_STR_LIT("<not a string>");
}

static int64_t jint(const pc_value *o, const char *k)
{
    const pc_value *v = pc_json_get(o, k);
    return v && v->type == PC_V_INT ? v->i : -999;
}

static bool jnull(const pc_value *o, const char *k)
{
    const pc_value *v = pc_json_get(o, k);
    return v && v->type == PC_V_NULL;
}

/* ------------------------------------------------------------------- tests -- */

static const char *const topics[] = {"traces", "spans", "otlp_metrics", "otlp_logs", NULL};

static void test_prela_json(void)
{
    cluster c;
    cluster_open(&c, topics);
    exporter x;
    exporter_open(&x, &c, NULL, 0);
    CHECK_EQ_INT(ops->consume(x.ctx, two_traces()), PC_OK);
    CHECK_EQ_INT(stats(&x).acked, 7);

    msg m[16];
    size_t n = read_topic(&c, "spans", 5, m, 16);
    CHECK_EQ_INT(n, 5);
    int seen_a = 0, seen_b = 0;
    for (size_t i = 0; i < n; i++) {
        doc d;
        if (!parse(&d, &m[i])) continue;
        CHECK(m[i].has_key);
        CHECK_EQ_PSTR(jstr(&d.v, "trace_id"), m[i].key); /* key = trace id */
        seen_a += !strcmp(m[i].key, TA);
        seen_b += !strcmp(m[i].key, TB);
        if (pc_str_eq(jstr(&d.v, "span_id"), "00f067aa0ba902b7")) {
            CHECK_EQ_PSTR(jstr(&d.v, "parent_span_id"), "b7ad6b7169203331");
            CHECK_EQ_PSTR(jstr(&d.v, "name"), "chat");
            CHECK_EQ_PSTR(jstr(&d.v, "kind"), "client");
            CHECK_EQ_PSTR(jstr(&d.v, "span_type"), "llm");
            CHECK_EQ_PSTR(jstr(&d.v, "status"), "error");
            CHECK_EQ_PSTR(jstr(&d.v, "status_message"), "boom");
            CHECK_EQ_PSTR(jstr(&d.v, "started_at"), "2025-01-27T10:00:00.000001Z");
            CHECK_EQ_PSTR(jstr(&d.v, "ended_at"), "2025-01-27T10:00:00.900000Z");
            CHECK_EQ_INT(jint(&d.v, "start_time_unix_nano"), T0 + 1500);
            CHECK_EQ_PSTR(jstr(&d.v, "project_id"), "proj-1");
            CHECK_EQ_PSTR(jstr(&d.v, "source"), "otlp");
            CHECK_EQ_PSTR(jstr(&d.v, "llm_model"), "gpt-4o");
            CHECK(jnull(&d.v, "llm_provider"));
            CHECK_EQ_INT(jint(&d.v, "input_tokens"), 12);
            CHECK(jnull(&d.v, "output_tokens"));
            const pc_value *attrs = pc_json_get(&d.v, "attributes");
            CHECK_EQ_INT(jint(attrs, "n"), 42);
            const pc_value *ratio = pc_json_get(attrs, "ratio");
            CHECK(ratio && ratio->type == PC_V_DOUBLE && ratio->d == 0.5);
            CHECK_EQ_PSTR(jstr(pc_json_get(&d.v, "resource"), "host.name"), "box");
            CHECK(pc_json_get(&d.v, "scope") != NULL);
            CHECK(pc_json_get(&d.v, "events") != NULL);
            const pc_value *dur = pc_json_get(&d.v, "duration_ms");
            CHECK(dur && dur->type == PC_V_DOUBLE && dur->d > 899.99 && dur->d < 900.0);
        }
        if (pc_str_eq(jstr(&d.v, "span_id"), "b7ad6b7169203331"))
            CHECK(jnull(&d.v, "parent_span_id") && jnull(&d.v, "input_tokens"));
        pc_arena_destroy(d.a);
    }
    CHECK_EQ_INT(seen_a, 3);
    CHECK_EQ_INT(seen_b, 2);
    msgs_free(m, n);

    n = read_topic(&c, "traces", 2, m, 16);
    CHECK_EQ_INT(n, 2);
    for (size_t i = 0; i < n; i++) {
        doc d;
        if (!parse(&d, &m[i])) continue;
        CHECK_EQ_PSTR(jstr(&d.v, "trace_id"), m[i].key);
        if (!strcmp(m[i].key, TA)) {
            CHECK_EQ_INT(jint(&d.v, "span_count"), 3);
            CHECK_EQ_PSTR(jstr(&d.v, "status"), "error");
            CHECK_EQ_PSTR(jstr(&d.v, "root_span_id"), "b7ad6b7169203331");
            CHECK_EQ_PSTR(jstr(&d.v, "root_span_name"), "agent run");
            CHECK_EQ_PSTR(jstr(&d.v, "service_name"), "root-svc");
            CHECK_EQ_PSTR(jstr(&d.v, "started_at"), "2025-01-27T10:00:00.000001Z");
            CHECK_EQ_PSTR(jstr(&d.v, "completed_at"), "2025-01-27T10:00:00.900000Z");
            CHECK_EQ_INT(jint(&d.v, "end_time_unix_nano"), T0 + 900 * MS);
            CHECK_EQ_INT(jint(&d.v, "input_tokens"), 24);
        } else {
            CHECK_EQ_STR(m[i].key, TB);
            CHECK_EQ_INT(jint(&d.v, "span_count"), 2);
            CHECK_EQ_PSTR(jstr(&d.v, "status"), "success");
            CHECK(jnull(&d.v, "root_span_id") && jnull(&d.v, "root_span_name"));
            CHECK_EQ_PSTR(jstr(&d.v, "service_name"), "svc");
        }
        pc_arena_destroy(d.a);
    }
    msgs_free(m, n);
    exporter_close(&x);
    cluster_close(&c);
}

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest pb_request;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;

static const char *pb_attr(pb_kv *const *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(kv[i]->key, key) && kv[i]->value &&
            kv[i]->value->value_case ==
                OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
            return kv[i]->value->string_value;
    return NULL;
}

static void test_otlp_proto(void)
{
    cluster c;
    cluster_open(&c, topics);
    exporter x;
    const char *kv[] = {"encoding", "otlp_proto"};
    exporter_open(&x, &c, kv, 1);
    CHECK_EQ_INT(ops->consume(x.ctx, two_traces()), PC_OK);

    msg m[8];
    size_t n = read_topic(&c, "spans", 2, m, 8);
    CHECK_EQ_INT(n, 2);
    for (size_t i = 0; i < n; i++) {
        pb_request *r =
            opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
                NULL, m[i].n, (const uint8_t *)m[i].val);
        CHECK(r != NULL);
        if (!r) continue;
        CHECK_EQ_INT(r->n_resource_spans, 1);
        Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = r->resource_spans[0];
        CHECK_EQ_STR(
            pb_attr(rs->resource->attributes, rs->resource->n_attributes, "prela.project_id"),
            "proj-1");
        CHECK_EQ_INT(rs->n_scope_spans, 1);
        Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = rs->scope_spans[0];
        if (rs->n_scope_spans != 1 || ss->n_spans < 2) {
            CHECK(0);
        } else if (!strcmp(m[i].key, TA)) {
            CHECK_EQ_INT(ss->n_spans, 3);
            Opentelemetry__Proto__Trace__V1__Span *s = ss->spans[1];
            CHECK_EQ_INT(s->trace_id.len, 16);
            CHECK(s->trace_id.len == 16 && s->trace_id.data[0] == 0x0a &&
                  s->trace_id.data[15] == 0x9c);
            CHECK_EQ_INT(s->parent_span_id.len, 8);
            CHECK_EQ_STR(s->name, "chat");
            CHECK_EQ_INT(s->kind, 3);
            CHECK_EQ_INT(s->status->code, 2);
            CHECK_EQ_STR(s->status->message, "boom");
            CHECK_EQ_INT(s->start_time_unix_nano, T0 + 1500);
            CHECK(pb_attr(s->attributes, s->n_attributes, "prela.trace_id") == NULL);
            CHECK_EQ_INT(ss->spans[0]->parent_span_id.len, 0);
        } else {
            CHECK_EQ_STR(m[i].key, TB);
            CHECK_EQ_INT(ss->n_spans, 2);
            Opentelemetry__Proto__Trace__V1__Span *s = ss->spans[0];
            CHECK_EQ_INT(s->trace_id.len, 16);
            CHECK_EQ_INT(s->span_id.len, 8);
            CHECK_EQ_STR(pb_attr(s->attributes, s->n_attributes, "prela.trace_id"), TB);
            CHECK_EQ_STR(pb_attr(s->attributes, s->n_attributes, "prela.span_id"), "s-1");
            CHECK_EQ_STR(pb_attr(s->attributes, s->n_attributes, "prela.parent_span_id"),
                         "parent-x");
            CHECK_EQ_STR(pb_attr(s->attributes, s->n_attributes, "prela.span_type"), "llm");
            CHECK_EQ_INT(s->status->code, 1);
            CHECK(memcmp(s->trace_id.data, ss->spans[1]->trace_id.data, 16) == 0);
        }
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
            r, NULL);
    }
    msgs_free(m, n);
    CHECK_EQ_INT(read_topic(&c, "traces", 0, m, 8), 0); /* nothing on traces */
    exporter_close(&x);
    cluster_close(&c);
}

static void test_otlp_json(void)
{
    cluster c;
    cluster_open(&c, topics);
    exporter x;
    const char *kv[] = {"encoding", "otlp_json", "topics.spans", "otlp_spans"};
    CHECK_EQ_INT(rd_kafka_mock_topic_create(c.mc, "otlp_spans", PARTS, 3), 0);
    exporter_open(&x, &c, kv, 2);
    CHECK_EQ_INT(ops->consume(x.ctx, two_traces()), PC_OK);
    msg m[8];
    size_t n = read_topic(&c, "otlp_spans", 2, m, 8);
    CHECK_EQ_INT(n, 2);
    for (size_t i = 0; i < n; i++) {
        doc d;
        if (!parse(&d, &m[i]) || strcmp(m[i].key, TA)) {
            if (d.a) pc_arena_destroy(d.a);
            continue;
        }
        const pc_value *rs = pc_json_get(&d.v, "resourceSpans");
        CHECK(rs && rs->type == PC_V_ARRAY && rs->arr.n == 1);
        const pc_value *ss = pc_json_get(&rs->arr.v[0], "scopeSpans");
        const pc_value *spans = pc_json_get(&ss->arr.v[0], "spans");
        CHECK(spans && spans->arr.n == 3);
        const pc_value *s = &spans->arr.v[0];
        CHECK_EQ_PSTR(jstr(s, "traceId"), TA);
        CHECK_EQ_PSTR(jstr(s, "spanId"), "b7ad6b7169203331");
        CHECK(pc_json_get(s, "parentSpanId") == NULL);
        CHECK_EQ_PSTR(jstr(s, "startTimeUnixNano"), "1737972000000001500");
        const pc_value *attrs = pc_json_get(s, "attributes");
        CHECK(attrs && attrs->arr.n == 3);
        CHECK_EQ_PSTR(jstr(&attrs->arr.v[0], "key"), "n");
        CHECK_EQ_PSTR(jstr(pc_json_get(&attrs->arr.v[0], "value"), "intValue"), "42");
        CHECK_EQ_INT(jint(pc_json_get(&spans->arr.v[1], "status"), "code"), 2);
        pc_arena_destroy(d.a);
    }
    msgs_free(m, n);
    exporter_close(&x);
    cluster_close(&c);
}

static pc_batch *raw_batch(pc_signal sig, const char *bytes, size_t n)
{
    pc_batch *b = pc_batch_create(NULL);
    b->signal = sig;
    char *p = pc_arena_alloc(b->arena, n);
    memcpy(p, bytes, n);
    b->raw = (pc_str){p, n};
    b->items = 3;
    return b;
}

static void test_metrics_logs_raw(void)
{
    cluster c;
    cluster_open(&c, topics);
    exporter x;
    exporter_open(&x, &c, NULL, 0);
    static const char metrics[] = "\x0a\x05\x00\x01\x02\xff\xfe raw metrics";
    static const char logs[] = "\x0a\x03\x00\x00\x00 raw logs";
    CHECK_EQ_INT(ops->consume(x.ctx, raw_batch(PC_SIGNAL_METRICS, metrics, sizeof(metrics) - 1)),
                 PC_OK);
    CHECK_EQ_INT(ops->consume(x.ctx, raw_batch(PC_SIGNAL_LOGS, logs, sizeof(logs) - 1)), PC_OK);
    msg m[4];
    size_t n = read_topic(&c, "otlp_metrics", 1, m, 4);
    CHECK_EQ_INT(n, 1);
    CHECK(n == 1 && m[0].n == sizeof(metrics) - 1 && !memcmp(m[0].val, metrics, m[0].n));
    CHECK(n == 1 && !m[0].has_key);
    msgs_free(m, n);
    n = read_topic(&c, "otlp_logs", 1, m, 4);
    CHECK(n == 1 && m[0].n == sizeof(logs) - 1 && !memcmp(m[0].val, logs, m[0].n));
    msgs_free(m, n);
    exporter_close(&x);
    cluster_close(&c);
}

static void test_oversize(void)
{
    cluster c;
    cluster_open(&c, topics);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(c.mc, "big_spans", PARTS, 3), 0);

    /* prela_json: the 5000-byte span is rejected (on the batch, for the receiver to
     * tell the sender); the other two and the summary arrive */
    exporter x;
    const char *kv[] = {"max_message_bytes", "4096"};
    exporter_open(&x, &c, kv, 1);
    pc_batch *b = pc_batch_create(NULL);
    add_span(b, TA, "aaaaaaaaaaaaaaaa", NULL, "root", 10);
    add_span(b, TA, "bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa", "huge", 5000);
    add_span(b, TA, "cccccccccccccccc", "aaaaaaaaaaaaaaaa", "small", 10);
    pc_batch_ref(b); /* as a receiver does, to read the rejections */
    CHECK_EQ_INT(ops->consume(x.ctx, b), PC_OK);
    CHECK_EQ_INT(pc_batch_rejected(b), 1);
    CHECK(pc_batch_is_rejected(b, 1));
    CHECK(strstr(pc_batch_reject_reason(b), "max_message_bytes (4096)") != NULL);
    pc_batch_unref(b);
    pc_kafka_stats st = stats(&x);
    CHECK_EQ_INT(st.dropped_messages, 1);
    CHECK_EQ_INT(st.dropped_spans, 1);
    CHECK_EQ_INT(st.acked, 3);
    /* a batch with nothing but an oversize span: rejected, never retried */
    b = pc_batch_create(NULL);
    add_span(b, TA, "dddddddddddddddd", NULL, "huge", 5000);
    pc_batch_ref(b);
    CHECK_EQ_INT(ops->consume(x.ctx, b), PC_OK);
    CHECK_EQ_INT(pc_batch_rejected(b), 1);
    pc_batch_unref(b);
    msg m[64];
    size_t n = read_topic(&c, "traces", 1, m, 64);
    CHECK_EQ_INT(n, 1);
    doc d;
    if (n == 1 && parse(&d, &m[0])) {
        CHECK_EQ_INT(jint(&d.v, "span_count"), 2);
        pc_arena_destroy(d.a);
    }
    msgs_free(m, n);
    exporter_close(&x);

    /* otlp_proto: 20 spans of ~400 bytes split into requests under 4096 bytes;
     * one 5000-byte span alone is dropped */
    const char *kv2[] = {"max_message_bytes", "4096",         "encoding",
                         "otlp_proto",        "topics.spans", "big_spans"};
    exporter_open(&x, &c, kv2, 3);
    b = pc_batch_create(NULL);
    for (int i = 0; i < 20; i++) {
        char sid[17];
        snprintf(sid, sizeof(sid), "%016x", i + 1);
        add_span(b, TA, sid, NULL, "s", 400);
    }
    add_span(b, TA, "eeeeeeeeeeeeeeee", NULL, "huge", 5000);
    CHECK_EQ_INT(ops->consume(x.ctx, b), PC_OK);
    st = stats(&x);
    CHECK_EQ_INT(st.dropped_messages, 1);
    CHECK_EQ_INT(st.dropped_spans, 1);
    CHECK(st.acked >= 2);
    n = read_topic(&c, "big_spans", (size_t)st.acked, m, 64);
    CHECK_EQ_INT(n, st.acked);
    size_t spans = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(m[i].n <= 4096);
        CHECK_EQ_STR(m[i].key, TA);
        pb_request *r =
            opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
                NULL, m[i].n, (const uint8_t *)m[i].val);
        CHECK(r != NULL);
        if (!r) continue;
        for (size_t k = 0; k < r->n_resource_spans; k++)
            for (size_t j = 0; j < r->resource_spans[k]->n_scope_spans; j++)
                spans += r->resource_spans[k]->scope_spans[j]->n_spans;
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
            r, NULL);
    }
    CHECK_EQ_INT(spans, 20);
    msgs_free(m, n);
    exporter_close(&x);
    cluster_close(&c);
}

/* A broker answering MSG_SIZE_TOO_LARGE refuses the message for good: no retry;
 * what it carried is rejected on the batch (the sender is told). */
static void test_broker_size_error(void)
{
    cluster c;
    cluster_open(&c, topics);
    exporter x;
    exporter_open(&x, &c, NULL, 0);
    static const char metrics[] = "metrics";
    /* warm up: the producer id and metadata are in place before the injection */
    CHECK_EQ_INT(ops->consume(x.ctx, raw_batch(PC_SIGNAL_METRICS, metrics, 7)), PC_OK);
    rd_kafka_mock_push_request_errors(c.mc, 0 /* Produce */, 1,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    pc_batch *b = pc_batch_ref(raw_batch(PC_SIGNAL_METRICS, metrics, 7));
    CHECK_EQ_INT(ops->consume(x.ctx, b), PC_OK);
    CHECK_EQ_INT(pc_batch_rejected(b), 3); /* its items: the request is refused whole */
    CHECK(strstr(pc_batch_reject_reason(b), "brokers refused") != NULL);
    pc_batch_unref(b);
    CHECK_EQ_INT(stats(&x).dropped_messages, 1);
    /* spans: what the refused produce request carried is rejected (how many
     * depends on how librdkafka grouped the messages), never answered retry */
    rd_kafka_mock_push_request_errors(c.mc, 0 /* Produce */, 1,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    pc_batch *t = two_traces();
    CHECK_EQ_INT(ops->consume(x.ctx, pc_batch_ref(t)), PC_OK);
    CHECK(pc_batch_rejected(t) >= 1 && pc_batch_rejected(t) <= t->n);
    pc_batch_unref(t);
    t = two_traces(); /* and the next batch is delivered whole */
    CHECK_EQ_INT(ops->consume(x.ctx, pc_batch_ref(t)), PC_OK);
    CHECK_EQ_INT(pc_batch_rejected(t), 0);
    pc_batch_unref(t);
    CHECK_EQ_INT(ops->consume(x.ctx, raw_batch(PC_SIGNAL_METRICS, metrics, 7)), PC_OK);
    exporter_close(&x);
    cluster_close(&c);
}

/* Consumes |b| until PC_OK or |tries| attempts (each bounded by the timeout). */
static pc_result consume_until_ok(exporter *x, int tries)
{
    pc_result r = PC_RETRY;
    for (int i = 0; i < tries && r != PC_OK; i++)
        r = ops->consume(x->ctx, two_traces());
    return r;
}

static void test_unavailable(void)
{
    cluster c;
    cluster_open(&c, topics);
    exporter x;
    const char *kv[] = {"timeout", "500ms"};
    exporter_open(&x, &c, kv, 1);
    CHECK_EQ_INT(consume_until_ok(&x, 20), PC_OK);

    /* every broker down: retry within the timeout, nothing crashes */
    cluster_set_brokers(&c, false);
    int64_t acked = stats(&x).acked;
    for (int i = 0; i < 3; i++) {
        int64_t t = pc_time_mono_ns();
        CHECK_EQ_INT(ops->consume(x.ctx, two_traces()), PC_RETRY);
        int64_t took = (pc_time_mono_ns() - t) / MS;
        CHECK(took <= 1500);
    }
    CHECK_EQ_INT(stats(&x).acked, acked); /* nothing acknowledged while down */
    cluster_set_brokers(&c, true);
    CHECK_EQ_INT(consume_until_ok(&x, 40), PC_OK);

    /* every produce request fails with a retriable error: retry within the timeout */
    rd_kafka_resp_err_t errs[200];
    for (int i = 0; i < 200; i++)
        errs[i] = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
    rd_kafka_mock_push_request_errors_array(c.mc, 0 /* Produce */, 200, errs);
    int64_t t = pc_time_mono_ns();
    CHECK_EQ_INT(ops->consume(x.ctx, two_traces()), PC_RETRY);
    CHECK((pc_time_mono_ns() - t) / MS <= 1500);
    rd_kafka_mock_clear_request_errors(c.mc, 0);
    CHECK_EQ_INT(consume_until_ok(&x, 40), PC_OK);
    CHECK(stats(&x).failed > 0);

    /* shut down with messages in flight to dead brokers: bounded, their
     * waiters are released by the purge (ASan/LSan would see a leak or a
     * use after free) */
    cluster_set_brokers(&c, false);
    CHECK_EQ_INT(ops->consume(x.ctx, two_traces()), PC_RETRY);
    int64_t t0 = pc_time_mono_ns();
    exporter_close(&x);
    CHECK((pc_time_mono_ns() - t0) / MS <= 3000);
    cluster_close(&c);
}

/* --------------------------------------------------------- self-healing -- */

typedef struct bg_consume {
    exporter *x;
    pc_result r;
} bg_consume;

static void *consume_bg(void *arg)
{
    bg_consume *g = arg;
    g->r = ops->consume(g->x->ctx, two_traces());
    return NULL;
}

static pc_health health(const exporter *x)
{
    pc_health h;
    memset(&h, 0x5a, sizeof(h)); /* the op must fill every field */
    ops->health(x->ctx, &h);
    return h;
}

/* Waits up to |ms| for the exporter's recreated counter to reach |n|. */
static bool wait_recreated(const exporter *x, int64_t n, int ms)
{
    int64_t end = pc_time_mono_ns() + ms * MS;
    while (stats(x).recreated < n && pc_time_mono_ns() < end) {
        struct timespec ts = {0, 10 * MS};
        nanosleep(&ts, NULL);
    }
    return stats(x).recreated >= n;
}

static void test_fatal(void)
{
    cluster c;
    cluster_open(&c, topics);
    exporter x;
    const char *kv[] = {"timeout", "5s"};
    exporter_open(&x, &c, kv, 1);
    CHECK_EQ_INT(consume_until_ok(&x, 20), PC_OK);
    pc_health h = health(&x);
    CHECK_EQ_INT(h.state, PC_HEALTH_OK);
    CHECK_EQ_STR(h.reason, "");
    CHECK(h.since_ns > T0);

    /* a batch in flight (brokers down: it cannot be acknowledged) when the
     * fatal error hits: answered retry at once, not at the 5 s timeout */
    cluster_set_brokers(&c, false);
    pc_kafka_stats before = stats(&x);
    bg_consume g = {&x, PC_OK};
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, consume_bg, &g), 0);
    struct timespec ts = {0, 300 * MS}; /* let it produce and wait */
    nanosleep(&ts, NULL);
    int64_t t = pc_time_mono_ns();
    CHECK_EQ_INT(pc_kafka_inject_fatal(x.ctx, "injected by test_fatal"), 0);
    pthread_join(th, NULL);
    CHECK_EQ_INT(g.r, PC_RETRY);
    CHECK((pc_time_mono_ns() - t) / MS < 3000);
    CHECK_EQ_INT(stats(&x).acked, before.acked);
    CHECK(stats(&x).failed > before.failed);

    /* health says what happened, until the new producer reached a broker */
    h = health(&x);
    CHECK_EQ_INT(h.state, PC_HEALTH_UNAVAILABLE);
    CHECK(strstr(h.reason, "injected by test_fatal") != NULL);
    CHECK(h.since_ns > T0);
    CHECK(wait_recreated(&x, 1, 10000));
    h = health(&x);
    CHECK_EQ_INT(h.state, PC_HEALTH_UNAVAILABLE);
    CHECK(strstr(h.reason, "injected by test_fatal") != NULL);
    CHECK_EQ_INT(stats(&x).acked, before.acked);

    /* brokers back: the new producer delivers and health is OK again */
    cluster_set_brokers(&c, true);
    CHECK_EQ_INT(consume_until_ok(&x, 40), PC_OK);
    CHECK(stats(&x).acked >= before.acked + 7); /* 5 spans + 2 summaries */
    h = health(&x);
    CHECK_EQ_INT(h.state, PC_HEALTH_OK);
    CHECK_EQ_STR(h.reason, "");

    /* a second fatal error soon after: requests meanwhile get retry at once,
     * the recreation backs off, then deliveries resume */
    CHECK_EQ_INT(pc_kafka_inject_fatal(x.ctx, "injected again"), 0);
    int64_t until = pc_time_mono_ns() + 5000 * MS;
    while (health(&x).state == PC_HEALTH_OK && pc_time_mono_ns() < until)
        nanosleep(&(struct timespec){0, MS}, NULL);
    CHECK_EQ_INT(health(&x).state, PC_HEALTH_UNAVAILABLE);
    t = pc_time_mono_ns();
    if (stats(&x).recreated < 2) {
        CHECK_EQ_INT(ops->consume(x.ctx, two_traces()), PC_RETRY);
        CHECK((pc_time_mono_ns() - t) / MS < 1000);
    }
    CHECK(wait_recreated(&x, 2, 10000));
    CHECK_EQ_INT(consume_until_ok(&x, 40), PC_OK);
    CHECK_EQ_INT(health(&x).state, PC_HEALTH_OK);

    /* what the brokers acknowledged is on the topics: 3+ rounds of 2 summaries */
    msg m[64];
    size_t n = read_topic(&c, "traces", 6, m, 64);
    CHECK(n >= 6);
    msgs_free(m, n);
    exporter_close(&x);
    cluster_close(&c);
}

#define THREADS 8
#define PER_THREAD 15

static void *consumer_thread(void *arg)
{
    exporter *x = arg;
    long ok = 0;
    for (int i = 0; i < PER_THREAD; i++)
        ok += ops->consume(x->ctx, two_traces()) == PC_OK;
    return (void *)ok;
}

static void test_concurrent(void)
{
    cluster c;
    cluster_open(&c, topics);
    exporter x;
    exporter_open(&x, &c, NULL, 0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, consumer_thread, &x);
    long ok = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        ok += (long)r;
    }
    CHECK_EQ_INT(ok, THREADS * PER_THREAD);
    CHECK_EQ_INT(stats(&x).acked, THREADS * PER_THREAD * 7);
    exporter_close(&x);
    cluster_close(&c);
}

/* Validation fails naming the key; create refuses the same configs. */
static void expect_invalid_b(const char *brokers, const char *const *kv, size_t n, const char *key)
{
    char err[256] = "";
    void *cfg = make_cfg(brokers, kv, n, err, sizeof(err));
    int rc = ops->validate(cfg, err, sizeof(err));
    CHECK_EQ_INT(rc, -1);
    if (strncmp(err, key, strlen(key)) != 0) fprintf(stderr, "message: %s\n", err);
    CHECK(strncmp(err, key, strlen(key)) == 0);
    CHECK(ops->create("kafka", cfg, NULL) == NULL);
    pc_config_free_options(ops->options, cfg);
    free(cfg);
}

static void expect_invalid(const char *const *kv, size_t n, const char *key)
{
    expect_invalid_b("127.0.0.1:9092", kv, n, key);
}

static void test_validate(void)
{
    const char *a[] = {"encoding", "avro"};
    expect_invalid(a, 1, "encoding");
    const char *b[] = {"compression", "brotli"};
    expect_invalid(b, 1, "compression");
    const char *c[] = {"security.protocol", "SASL_SSL"};
    expect_invalid(c, 1, "sasl.username");
    const char *d[] = {"security.protocol", "SASL_SSL", "sasl.username", "u"};
    expect_invalid(d, 2, "sasl.password");
    const char *e[] = {"security.protocol", "SASL_SSL", "sasl.username",  "u",
                       "sasl.password",     "p",        "sasl.mechanism", "GSSAPI"};
    expect_invalid(e, 4, "sasl.mechanism");
    const char *f[] = {"sasl.username", "u"};
    expect_invalid(f, 1, "sasl.username");
    const char *g[] = {"tls.ca_file", "/etc/hostname"};
    expect_invalid(g, 1, "tls.ca_file");
    const char *g2[] = {"topics.spans", ""};
    expect_invalid(g2, 1, "topics.spans");
    const char *h[] = {"security.protocol", "SSL", "tls.cert_file", "/etc/hostname"};
    expect_invalid(h, 2, "tls.key_file");
    const char *i[] = {"security.protocol", "SSL", "tls.ca_file", "/nonexistent/ca.pem"};
    expect_invalid(i, 2, "tls.ca_file");
    const char *j[] = {"security.protocol", "TLS"};
    expect_invalid(j, 1, "security.protocol");
    const char *k[] = {"timeout", "5ms", "linger", "5ms"};
    expect_invalid(k, 2, "linger");
    expect_invalid_b("", NULL, 0, "brokers");

    /* a full SASL_SSL config (Upstash-like) is valid; created, never started */
    char err[256] = "";
    const char *ok[] = {"security.protocol",
                        "SASL_SSL",
                        "sasl.mechanism",
                        "SCRAM-SHA-512",
                        "sasl.username",
                        "u",
                        "sasl.password",
                        "p",
                        "tls.insecure_skip_verify",
                        "true"};
    void *cfg = make_cfg("broker.example:9092", ok, 5, err, sizeof(err));
    CHECK_EQ_INT(ops->validate(cfg, err, sizeof(err)), 0);
    void *ctx = ops->create("kafka", cfg, NULL);
    CHECK(ctx != NULL);
    ops->shutdown(ctx); /* safe without start */
    ops->destroy(ctx);
    pc_config_free_options(ops->options, cfg);
    free(cfg);
}

int main(void)
{
    /* quiet by default: the validation cases log errors on purpose */
    pc_log_set_level(getenv("PC_TEST_VERBOSE") ? PC_LOG_DEBUG : PC_LOG_ERROR);
    RUN(test_validate);
    RUN(test_prela_json);
    RUN(test_otlp_proto);
    RUN(test_otlp_json);
    RUN(test_metrics_logs_raw);
    RUN(test_oversize);
    RUN(test_broker_size_error);
    RUN(test_unavailable);
    RUN(test_concurrent);
    RUN(test_fatal);
    return CHECK_DONE();
}
