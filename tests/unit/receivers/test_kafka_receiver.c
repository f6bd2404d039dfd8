/*
 * test_kafka_receiver.c - the `kafka` receiver driven through its ops as the
 * pipeline drives it (options table → validate → create → start → shutdown →
 * destroy) against librdkafka's mock cluster (rdkafka_mock.h).
 *
 * The main scenario: N prela_json span messages, one poison message and one
 * trace summary are produced on two partitions; the recording sink answers
 * PC_RETRY K times, then PC_OK. While it refuses, the group's committed
 * offsets (read with rd_kafka_committed from a separate consumer handle of the
 * same group) must not have moved; after it accepts they must equal the end
 * of every partition, every span must have been delivered, the poison message
 * skipped and counted. Also: PC_DROP commits, validation names the key,
 * shutdown is safe without start and twice, and a shutdown between the group
 * join and the first assignment (SyncGroup answered late) waits for it rather
 * than abort in librdkafka (issue #4312). The sink waits on a condition
 * variable, never on sleeps.
 */
#include "check.h"
#include "options.h"

#include "config.h"
#include "formats/prela_json.h"
#include "receivers/kafka.h"
#include "span.h"
#include "timefmt.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define T0 1737972000000000000LL
#define N 40
#define K 3
#define PARTS 2

static const pc_component_ops *const ops = &pc_kafka_receiver_ops;

/* ---------------------------------------------------------------- sink -- */

typedef struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int retries_left;  /* answer PC_RETRY this many times first */
    pc_result answer;  /* then this */
    int calls;
    int delivered;     /* spans accepted */
    bool seen[N];      /* span "span-<i>" accepted */
    int dup;           /* spans accepted twice */
    int committed_during_retry; /* partitions found committed while refusing */
    rd_kafka_t *probe; /* reads the group's committed offsets */
} sink;

static int committed_count(rd_kafka_t *probe, const char *topic, int64_t *out)
{
    rd_kafka_topic_partition_list_t *p = rd_kafka_topic_partition_list_new(PARTS);
    for (int i = 0; i < PARTS; i++) rd_kafka_topic_partition_list_add(p, topic, i);
    int n = 0;
    if (rd_kafka_committed(probe, p, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        for (int i = 0; i < PARTS; i++) {
            if (out) out[i] = p->elems[i].offset;
            if (p->elems[i].offset >= 0) n++;
        }
    rd_kafka_topic_partition_list_destroy(p);
    return n;
}

static pc_result sink_consume(void *ctx, pc_batch *b)
{
    sink *k = ctx;
    pthread_mutex_lock(&k->mu);
    k->calls++;
    pc_result r = k->answer;
    if (k->retries_left > 0) {
        k->retries_left--;
        r = PC_RETRY;
        k->committed_during_retry += committed_count(k->probe, "spans", NULL);
    }
    if (r == PC_OK)
        for (size_t i = 0; i < b->n; i++) {
            int idx = atoi(b->spans[i].span_id.p + 5); /* "span-<i>" */
            if (idx >= 0 && idx < N) {
                k->dup += k->seen[idx];
                k->seen[idx] = true;
            }
            k->delivered++;
        }
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pc_batch_unref(b);
    return r;
}

/* Waits until |k->delivered| >= |want| or |secs| pass. */
static bool wait_delivered(sink *k, int want, int secs)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += secs;
    pthread_mutex_lock(&k->mu);
    while (k->delivered < want)
        if (pthread_cond_timedwait(&k->cv, &k->mu, &ts)) break;
    bool ok = k->delivered >= want;
    pthread_mutex_unlock(&k->mu);
    return ok;
}

/* ------------------------------------------------------------- cluster -- */

typedef struct cluster {
    rd_kafka_t *rk;   /* owns the mock cluster */
    rd_kafka_t *prod; /* produces the test messages */
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps;
} cluster;

static void cluster_open(cluster *c)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    CHECK(c->rk != NULL);
    c->mc = rd_kafka_mock_cluster_new(c->rk, 3);
    CHECK(c->mc != NULL);
    c->bootstraps = rd_kafka_mock_cluster_bootstraps(c->mc);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(c->mc, "spans", PARTS, 3), 0);
    rd_kafka_conf_t *pconf = rd_kafka_conf_new();
    rd_kafka_conf_set(pconf, "bootstrap.servers", c->bootstraps, err, sizeof(err));
    rd_kafka_conf_set(pconf, "log_level", "0", err, sizeof(err));
    c->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof(err));
    CHECK(c->prod != NULL);
}

static void produce(cluster *c, int partition, const void *v, size_t n)
{
    CHECK_EQ_INT(rd_kafka_producev(c->prod, RD_KAFKA_V_TOPIC("spans"), RD_KAFKA_V_PARTITION(partition),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE((void *)v, n),
                                   RD_KAFKA_V_END),
                 0);
}

/* N span messages over both partitions, a poison one and a summary. */
static void produce_all(cluster *c)
{
    pc_batch *b = pc_batch_create(NULL);
    for (int i = 0; i < N; i++) {
        pc_span *s = pc_batch_add(b);
        char id[32];
        int len = snprintf(id, sizeof(id), "span-%d", i);
        s->span_id = (pc_str){pc_arena_strndup(b->arena, id, (size_t)len), (size_t)len};
        s->trace_id = PC_STR_LIT("trace-1");
        s->name = PC_STR_LIT("op");
        s->start_ns = T0 + i;
        s->end_ns = T0 + 1000 + i;
        s->project_id = PC_STR_LIT("p");
        pc_buf m = PC_BUF_INIT;
        pc_prela_json_encode_span(&m, s, T0);
        produce(c, i % PARTS, m.data, m.len);
        pc_buf_free(&m);
        if (i == N / 2) {
            produce(c, 0, "{\"trace_id\":", 12); /* poison */
            const pc_span *one = s;
            pc_prela_json_encode_trace(&m, &one, 1, T0);
            produce(c, 1, m.data, m.len); /* summary */
            pc_buf_free(&m);
        }
    }
    CHECK_EQ_INT(rd_kafka_flush(c->prod, 10000), 0);
    pc_batch_unref(b);
}

static void cluster_close(cluster *c)
{
    rd_kafka_destroy(c->prod);
    rd_kafka_mock_cluster_destroy(c->mc);
    rd_kafka_destroy(c->rk);
}

static rd_kafka_t *probe_new(const cluster *c, const char *group)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstraps, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    CHECK(rk != NULL);
    return rk;
}

/* ------------------------------------------------------------ receiver -- */

static void *make_cfg(const char *brokers, const char *const *kv, size_t n, char *err, size_t errlen,
                      int expect)
{
    int rc;
    void *cfg =
        pc_test_options(ops, "receivers.kafka", "brokers", brokers, kv, n, err, errlen, &rc);
    CHECK_EQ_INT(rc, expect);
    return cfg;
}

static void free_cfg(void *cfg)
{
    pc_test_options_free(ops, cfg);
}

static void run_scenario(pc_result answer, int retries, const char *group)
{
    cluster c;
    cluster_open(&c);
    produce_all(&c);
    sink k = {.retries_left = retries, .answer = answer};
    pthread_mutex_init(&k.mu, NULL);
    pthread_cond_init(&k.cv, NULL);
    k.probe = probe_new(&c, group);

    char err[256] = "";
    const char *kv[] = {"group_id", group, "retry_backoff", "20ms", "max_retry_backoff", "80ms",
                        "max_batch_wait", "300ms"};
    void *cfg = make_cfg(c.bootstraps, kv, 4, err, sizeof(err), 0);
    CHECK_EQ_INT(ops->validate(cfg, err, sizeof(err)), 0);
    pc_consumer next = {sink_consume, &k, PC_SIG_BIT(PC_SIGNAL_TRACES)};
    void *ctx = ops->create("kafka", cfg, &next);
    CHECK(ctx != NULL);
    CHECK_EQ_INT(ops->start(ctx, NULL), 0);

    if (answer == PC_OK) {
        CHECK(wait_delivered(&k, N, 60));
    } else {
        /* PC_DROP: wait for the calls that cover every span */
        for (int i = 0; i < 600; i++) {
            pc_kafka_receiver_stats s;
            pc_kafka_receiver_get_stats(ctx, &s);
            if (s.dropped_spans >= N) break;
            struct timespec ts = {0, 100 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    /* the commit follows the accepted consume; read until it is visible */
    int64_t off[PARTS] = {0};
    int64_t want[PARTS] = {N / 2 + 1, N / 2 + 1}; /* + poison on 0, + summary on 1 */
    for (int i = 0; i < 100; i++) {
        committed_count(k.probe, "spans", off);
        if (off[0] == want[0] && off[1] == want[1]) break;
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK_EQ_INT(off[0], want[0]);
    CHECK_EQ_INT(off[1], want[1]);

    ops->shutdown(ctx);
    ops->shutdown(ctx); /* idempotent */
    pc_kafka_receiver_stats s;
    pc_kafka_receiver_get_stats(ctx, &s);
    CHECK_EQ_INT(s.messages, N + 2);
    CHECK_EQ_INT(s.spans, N);
    CHECK_EQ_INT(s.poison, 1);
    CHECK_EQ_INT(s.summaries, 1);
    CHECK_EQ_INT(s.retries, retries);
    CHECK_EQ_INT(k.committed_during_retry, 0);
    if (answer == PC_OK) {
        CHECK_EQ_INT(s.delivered_spans, N);
        CHECK_EQ_INT(k.delivered, N);
        CHECK_EQ_INT(k.dup, 0);
        for (int i = 0; i < N; i++) CHECK(k.seen[i]);
        CHECK(k.calls >= retries + 1);
    } else {
        CHECK_EQ_INT(s.dropped_spans, N);
        CHECK_EQ_INT(s.delivered_spans, 0);
    }
    ops->destroy(ctx);
    free_cfg(cfg);
    rd_kafka_consumer_close(k.probe);
    rd_kafka_destroy(k.probe);
    cluster_close(&c);
}

static void test_retry_then_ok(void)
{
    run_scenario(PC_OK, K, "g-retry");
}

static void test_drop_commits(void)
{
    run_scenario(PC_DROP, 0, "g-drop");
}

/*
 * Shutdown between the group join and the first assignment (librdkafka issue
 * #4312: 2.0.2 aborts destroying a cooperative-sticky consumer whose JoinGroup
 * chose the assignor but whose first SyncGroup response has not arrived). The
 * coordinator answers SyncGroup 2 s late; the receiver is shut down once the
 * SyncGroup request has reached it, so inside that window: shutdown must wait
 * for the assignment (at least until the late response), and destroy must not
 * abort.
 */
#define API_SYNC_GROUP 14 /* Kafka protocol ApiKey of SyncGroup */
static void test_shutdown_before_first_assignment(void)
{
    cluster c;
    cluster_open(&c);
    CHECK_EQ_INT(rd_kafka_mock_coordinator_set(c.mc, "group", "g-early", 1), 0);
    CHECK_EQ_INT(rd_kafka_mock_broker_push_request_error_rtts(c.mc, 1, API_SYNC_GROUP, 1,
                                                              RD_KAFKA_RESP_ERR_NO_ERROR, 2000),
                 0);
    sink k = {.answer = PC_OK};
    pthread_mutex_init(&k.mu, NULL);
    pthread_cond_init(&k.cv, NULL);
    char err[256] = "";
    const char *kv[] = {"group_id", "g-early"};
    void *cfg = make_cfg(c.bootstraps, kv, 1, err, sizeof(err), 0);
    pc_consumer next = {sink_consume, &k, PC_SIG_BIT(PC_SIGNAL_TRACES)};
    void *ctx = ops->create("kafka", cfg, &next);
    CHECK(ctx != NULL);
    CHECK_EQ_INT(ops->start(ctx, NULL), 0);
    size_t left = 1;
    for (int i = 0; i < 600 && left; i++) { /* the SyncGroup request took the delay */
        CHECK_EQ_INT(rd_kafka_mock_broker_error_stack_cnt(c.mc, 1, API_SYNC_GROUP, &left), 0);
        struct timespec ts = {0, 50 * 1000000};
        if (left) nanosleep(&ts, NULL);
    }
    CHECK_EQ_INT((long long)left, 0);
    int64_t t0 = pc_time_mono_ns();
    ops->shutdown(ctx);
    int64_t waited_ms = (pc_time_mono_ns() - t0) / 1000000;
    CHECK(waited_ms >= 1000); /* it waited for the late assignment */
    CHECK(waited_ms < 10000); /* not for session_timeout */
    ops->destroy(ctx);        /* librdkafka 2.0.2 aborted here */
    free_cfg(cfg);
    pthread_mutex_destroy(&k.mu);
    pthread_cond_destroy(&k.cv);
    cluster_close(&c);
}

static void expect_invalid(const char *const *kv, size_t n, const char *key)
{
    char err[256] = "";
    void *cfg = make_cfg("127.0.0.1:9092", kv, n, err, sizeof(err), 0);
    CHECK_EQ_INT(ops->validate(cfg, err, sizeof(err)), -1);
    if (strncmp(err, key, strlen(key))) fprintf(stderr, "   message: %s\n", err);
    CHECK(strncmp(err, key, strlen(key)) == 0);
    pc_consumer next = {sink_consume, NULL, 1};
    CHECK(ops->create("kafka", cfg, &next) == NULL);
    free_cfg(cfg);
}

static void test_validate(void)
{
    const char *a[] = {"encoding", "avro"};
    expect_invalid(a, 1, "encoding");
    const char *b[] = {"initial_offset", "middle"};
    expect_invalid(b, 1, "initial_offset");
    const char *c[] = {"group_id", ""};
    expect_invalid(c, 1, "group_id");
    const char *d[] = {"topics", ""};
    expect_invalid(d, 1, "topics");
    const char *e[] = {"security.protocol", "SASL_SSL"};
    expect_invalid(e, 1, "sasl.username");
    const char *f[] = {"tls.ca_file", "/etc/hostname"};
    expect_invalid(f, 1, "tls.ca_file");
    const char *g[] = {"retry_backoff", "10s", "max_retry_backoff", "1s"};
    expect_invalid(g, 2, "max_retry_backoff");
    char err[256] = "";
    const char *h[] = {"max_batch_spans", "0"};
    void *cfg = make_cfg("x:1", h, 1, err, sizeof(err), -1); /* out of the option's range */
    free_cfg(cfg);
    const char *fq[] = {"fetch_max_bytes", "64KiB"};
    cfg = make_cfg("x:1", fq, 1, err, sizeof(err), -1); /* below librdkafka's floor */
    CHECK(strstr(err, "fetch_max_bytes") != NULL);
    free_cfg(cfg);
    const char *qq[] = {"queue_max_bytes", "1"};
    cfg = make_cfg("x:1", qq, 1, err, sizeof(err), -1);
    CHECK(strstr(err, "queue_max_bytes") != NULL);
    free_cfg(cfg);

    /* defaults, a full SASL_SSL config; created, never started, shut down, destroyed */
    const char *ok[] = {"security.protocol", "SASL_SSL", "sasl.mechanism", "SCRAM-SHA-512",
                        "sasl.username", "u", "sasl.password", "p", "encoding", "otlp_proto",
                        "fetch_max_bytes", "2MiB", "queue_max_bytes", "512KiB"};
    cfg = make_cfg("broker.example:9092", ok, 7, err, sizeof(err), 0);
    CHECK_EQ_INT(ops->validate(cfg, err, sizeof(err)), 0);
    pc_consumer next = {sink_consume, NULL, 1};
    CHECK(ops->create("kafka", cfg, NULL) == NULL); /* not in a pipeline */
    void *ctx = ops->create("kafka", cfg, &next);
    CHECK(ctx != NULL);
    ops->shutdown(ctx); /* safe without start */
    ops->destroy(ctx);
    free_cfg(cfg);
}

int main(void)
{
    RUN(test_validate);
    RUN(test_retry_then_ok);
    RUN(test_drop_commits);
    RUN(test_shutdown_before_first_assignment);
    return CHECK_DONE();
}
