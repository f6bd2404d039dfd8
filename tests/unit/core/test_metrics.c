/*
 * test_metrics.c - the self-metrics registry and its Prometheus text rendering
 * (src/core/metrics.c).
 */
#include "check.h"
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static char *render(pc_metrics *m)
{
    pc_buf b = PC_BUF_INIT;
    pc_buf_puts(&b, "");
    pc_metrics_render(m, &b);
    size_t len;
    return pc_buf_steal(&b, &len);
}

static void test_counter_rendering(void)
{
    pc_metrics *m = pc_metrics_create();
    const char *const l1[] = {"receiver", "otlp", "transport", "http", NULL};
    const char *const l2[] = {"receiver", "otlp", "transport", "grpc", NULL};
    pc_counter *a = pc_metrics_counter(m, "otelcol_receiver_accepted_spans", "Spans accepted.", l1);
    pc_counter *b = pc_metrics_counter(m, "otelcol_receiver_accepted_spans", "Spans accepted.", l2);
    CHECK(a != b);
    /* the same labels give the same series */
    CHECK(a == pc_metrics_counter(m, "otelcol_receiver_accepted_spans", "x", l1));
    pc_counter_add(a, 5);
    pc_counter_add(a, 2);
    pc_counter_add(b, 1);
    CHECK_EQ_INT(pc_counter_get(a), 7);
    char *t = render(m);
    CHECK_EQ_STR(t, "# HELP otelcol_receiver_accepted_spans_total Spans accepted.\n"
                    "# TYPE otelcol_receiver_accepted_spans_total counter\n"
                    "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"} 7\n"
                    "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 1\n");
    free(t);
    pc_metrics_destroy(m);
}

static void test_escaping(void)
{
    pc_metrics *m = pc_metrics_create();
    const char *const l[] = {"exporter", "ka\"f\\ka\nx}", NULL};
    pc_gauge *g = pc_metrics_gauge(m, "prela_thing", "Help with \\ and\nnewline \"q\".", l);
    pc_gauge_set(g, -3);
    char *t = render(m);
    CHECK_EQ_STR(t, "# HELP prela_thing Help with \\\\ and\\nnewline \"q\".\n"
                    "# TYPE prela_thing gauge\n"
                    "prela_thing{exporter=\"ka\\\"f\\\\ka\\nx}\"} -3\n");
    free(t);
    pc_metrics_destroy(m);
}

static void test_misuse_goes_to_scratch(void)
{
    pc_metrics *m = pc_metrics_create();
    pc_counter *c = pc_metrics_counter(m, "prela_x", "", NULL);
    /* another type under the same name, a bad name, too many labels: scratch */
    pc_gauge *g = pc_metrics_gauge(m, "prela_x", "", NULL);
    pc_counter *bad = pc_metrics_counter(m, "9bad name", "", NULL);
    const char *const many[] = {"a", "1", "b", "2", "c", "3", "d", "4", "e", "5", NULL};
    pc_counter *toomany = pc_metrics_counter(m, "prela_y", "", many);
    CHECK(g != NULL && bad != NULL && toomany != NULL);
    pc_gauge_add(g, 1);
    pc_counter_add(bad, 1);
    pc_counter_add(toomany, 1);
    pc_counter_add(c, 2);
    char *t = render(m);
    CHECK_EQ_STR(t, "# HELP prela_x_total \n# TYPE prela_x_total counter\nprela_x_total 2\n");
    free(t);
    /* NULL registry: usable scratch series, nothing rendered */
    pc_counter_add(pc_metrics_counter(NULL, "prela_z", "", NULL), 1);
    pc_metrics_render(NULL, NULL);
    pc_metrics_destroy(m);
    pc_metrics_destroy(NULL);
}

static void test_histogram(void)
{
    pc_metrics *m = pc_metrics_create();
    const double bounds[] = {0.01, 0.1, 1};
    const char *const l[] = {"exporter", "clickhouse", NULL};
    pc_histogram *h = pc_metrics_histogram(m, "prela_insert_seconds", "Insert latency.", l, bounds, 3);
    pc_histogram_observe(h, 0.005);
    pc_histogram_observe(h, 0.05);
    pc_histogram_observe(h, 0.1); /* le is inclusive */
    pc_histogram_observe(h, 7.5);
    char *t = render(m);
    CHECK_EQ_STR(t, "# HELP prela_insert_seconds Insert latency.\n"
                    "# TYPE prela_insert_seconds histogram\n"
                    "prela_insert_seconds_bucket{exporter=\"clickhouse\",le=\"0.01\"} 1\n"
                    "prela_insert_seconds_bucket{exporter=\"clickhouse\",le=\"0.1\"} 3\n"
                    "prela_insert_seconds_bucket{exporter=\"clickhouse\",le=\"1\"} 3\n"
                    "prela_insert_seconds_bucket{exporter=\"clickhouse\",le=\"+Inf\"} 4\n"
                    "prela_insert_seconds_sum{exporter=\"clickhouse\"} 7.655\n"
                    "prela_insert_seconds_count{exporter=\"clickhouse\"} 4\n");
    free(t);
    pc_metrics_destroy(m);
}

static void collect(void *ctx, pc_metrics_out *out)
{
    int *calls = ctx;
    (*calls)++;
    const char *const p0[] = {"receiver", "kafka", "partition", "0", NULL};
    const char *const p1[] = {"receiver", "kafka", "partition", "1", NULL};
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_kafka_consumer_lag", "Lag.", p0, 3);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_dropped", "Dropped.", NULL, 4);
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_kafka_consumer_lag", "Lag.", p1, 0.5);
    /* contradicts the registered counter: left out */
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_dropped", "x", NULL, 1);
}

static void test_collectors(void)
{
    pc_metrics *m = pc_metrics_create();
    const char *const l[] = {"reason", "span_cap", NULL};
    pc_counter_add(pc_metrics_counter(m, "prela_dropped", "Dropped.", l), 1);
    int calls = 0;
    pc_metrics_add_collector(m, collect, &calls);
    char *t = render(m);
    CHECK_EQ_INT(calls, 1);
    CHECK_EQ_STR(t, "# HELP prela_dropped_total Dropped.\n"
                    "# TYPE prela_dropped_total counter\n"
                    "prela_dropped_total{reason=\"span_cap\"} 1\n"
                    "prela_dropped_total 4\n"
                    "# HELP prela_kafka_consumer_lag Lag.\n"
                    "# TYPE prela_kafka_consumer_lag gauge\n"
                    "prela_kafka_consumer_lag{receiver=\"kafka\",partition=\"0\"} 3\n"
                    "prela_kafka_consumer_lag{receiver=\"kafka\",partition=\"1\"} 0.5\n");
    free(t);
    pc_metrics_remove_collector(m, collect, &calls);
    free(render(m));
    CHECK_EQ_INT(calls, 1);
    pc_metrics_destroy(m);
}

static pc_counter *shared;
static pc_histogram *shared_h;

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        pc_counter_add(shared, 1);
        pc_histogram_observe(shared_h, 1);
    }
    return NULL;
}

static void test_concurrent_increments(void)
{
    pc_metrics *m = pc_metrics_create();
    const double bounds[] = {0.5};
    shared = pc_metrics_counter(m, "prela_c", "", NULL);
    shared_h = pc_metrics_histogram(m, "prela_h", "", NULL, bounds, 1);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, bump, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    CHECK_EQ_INT(pc_counter_get(shared), 400000);
    char *txt = render(m);
    CHECK(strstr(txt, "prela_h_sum 400000\n") != NULL);
    CHECK(strstr(txt, "prela_h_count 400000\n") != NULL);
    free(txt);
    pc_metrics_destroy(m);
}

int main(void)
{
    RUN(test_counter_rendering);
    RUN(test_escaping);
    RUN(test_misuse_goes_to_scratch);
    RUN(test_histogram);
    RUN(test_collectors);
    RUN(test_concurrent_increments);
    return CHECK_DONE();
}
