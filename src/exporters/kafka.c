/*
 * kafka.c - the `kafka` exporter (see kafka.h): settings, librdkafka producer,
 * durable acknowledgement.
 *
 * Data flow: normalize → consume() → kafka_encode.c (one message per span and
 * trace summary, or one OTLP request per trace) → rd_kafka_producev → brokers
 * → delivery reports served by the poll thread → the batch's waiter → consume
 * returns.
 *
 * Durable acknowledgement: each consume() call owns a waiter (outstanding
 * message count, first error, mutex + condvar) that is the opaque of every
 * message it produces. The poll thread's delivery callback counts each report
 * down; consume returns PC_OK once every message was acknowledged, PC_RETRY as
 * soon as one failed or at the deadline (`timeout` after consume began).
 * Ownership: the waiter is reference counted, one reference for consume and
 * one per message in flight, so a waiter whose consume gave up stays valid
 * until its last delivery report arrived; whoever drops the last reference
 * frees it. librdkafka copies keys and values (RD_KAFKA_MSG_F_COPY), so the
 * batch is released when consume returns.
 *
 * Why message.timeout.ms = timeout: a message that cannot be delivered within
 * the deadline has been answered with retry already; letting librdkafka keep
 * it longer would only hold memory and produce a duplicate later.
 *
 * Logging: connection trouble and delivery failures are logged once when the
 * exporter enters the failing state and once when deliveries succeed again,
 * never per message. librdkafka's own log lines go to debug level.
 *
 * Self-healing: a fatal librdkafka error (the idempotent producer's, for one)
 * leaves the producer unusable for good. The error callback only records it;
 * the poll thread then takes the producer lock exclusively (consume holds it
 * shared while producing, and answers retry at once while a fatal error is
 * pending), purges every queued and in-flight message (their delivery reports
 * fail their batches: retry, never OK), destroys the producer and creates a new
 * one from the same settings. A recreation within RECENT_MS of the previous one
 * first waits a backoff (BACKOFF_MIN_MS doubling to BACKOFF_MAX_MS), as does a
 * retry after a failed creation. Each occurrence is logged once.
 *
 * Health (the health op): UNAVAILABLE from a fatal error until the new
 * producer reached a broker, and while no broker has been reachable for longer
 * than `timeout`; OK otherwise. Reachability is learnt from librdkafka's
 * errors and delivery reports; while unreachable, the poll thread probes the
 * brokers with a metadata request once a second, so health recovers without
 * traffic (a load balancer that took us out of rotation sends none).
 */
#include "kafka.h"

#include "budget.h"
#include "kafka_conf.h"
#include "kafka_record.h"
#include "log.h"
#include "mem.h"
#include "spooler.h"
#include "timefmt.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_MS 1000000LL
#define SHUTDOWN_FLUSH_MAX_MS 10000
#define RECENT_MS 60000 /* a fatal error this soon after a recreation backs off */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define PROBE_EVERY_MS 1000 /* metadata probe while brokers are unreachable */
#define PURGE_WAIT_MAX_MS 5000

/* ------------------------------------------------------------- settings -- */

typedef struct kafka_cfg {
    pc_kafka_conn_cfg conn; /* brokers, client_id, security.protocol, sasl.*, tls.* */
    char *topic_traces, *topic_spans, *topic_metrics, *topic_logs;
    char *encoding;
    char *compression;
    int64_t timeout_ms;
    int64_t max_message_bytes;
    int64_t linger_ms;
    int64_t max_buffered_bytes;
    pc_spooler_cfg spool;
} kafka_cfg;

#define OPT(k, t, d, f, lo, hi, doc)                                                               \
    {                                                                                              \
        k, t, d, offsetof(kafka_cfg, f), lo, hi, doc                                               \
    }
static const pc_option options[] = {
    PC_KAFKA_CONN_OPTIONS(kafka_cfg, conn),
    OPT("topics.traces", PC_OPT_STRING, "traces", topic_traces, 0, 0,
        "topic of trace summaries (prela_json)"),
    OPT("topics.spans", PC_OPT_STRING, "spans", topic_spans, 0, 0,
        "topic of spans (prela_json) or trace requests (otlp_proto, otlp_json)"),
    OPT("topics.metrics", PC_OPT_STRING, "otlp_metrics", topic_metrics, 0, 0,
        "topic of metrics requests (OTLP protobuf)"),
    OPT("topics.logs", PC_OPT_STRING, "otlp_logs", topic_logs, 0, 0,
        "topic of logs requests (OTLP protobuf)"),
    OPT("encoding", PC_OPT_STRING, "prela_json", encoding, 0, 0,
        "traces encoding: prela_json, otlp_proto or otlp_json"),
    OPT("compression", PC_OPT_STRING, "zstd", compression, 0, 0, "none, gzip, snappy, lz4 or zstd"),
    OPT("timeout", PC_OPT_DURATION, "10s", timeout_ms, 1, 3600000,
        "deadline for the brokers to acknowledge every message of a batch; then retry"),
    OPT("max_message_bytes", PC_OPT_SIZE, "1000000", max_message_bytes, 1024, 1000000000,
        "largest message (key + value + framing); larger ones are split or dropped"),
    OPT("linger", PC_OPT_DURATION, "5ms", linger_ms, 0, 900000,
        "how long the producer waits to fill a batch (linger.ms)"),
    OPT("max_buffered_bytes", PC_OPT_SIZE, "64MiB", max_buffered_bytes, 1024, 2147483647LL * 1024,
        "most bytes waiting in the producer; past it consume waits"),
    PC_SPOOLER_OPTIONS(kafka_cfg, spool),
    {NULL, 0, NULL, 0, 0, 0, NULL},
};
#undef OPT

static const char *const encodings[] = {"prela_json", "otlp_proto", "otlp_json", NULL};
static const char *const compressions[] = {"none", "gzip", "snappy", "lz4", "zstd", NULL};
#define find_name pc_kafka_find_name

static bool empty(const char *s)
{
    return !s || !*s;
}

static int bad(char *err, size_t errlen, const char *key, const char *what)
{
    snprintf(err, errlen, "%s: %s", key, what);
    return -1;
}

static int kafka_validate(const void *cfgp, char *err, size_t errlen)
{
    const kafka_cfg *c = cfgp;
    if (pc_kafka_conn_validate(&c->conn, err, errlen)) return -1;
    const char *const topic_keys[] = {"topics.traces", "topics.spans", "topics.metrics",
                                      "topics.logs"};
    const char *const topic_names[] = {c->topic_traces, c->topic_spans, c->topic_metrics,
                                       c->topic_logs};
    for (int i = 0; i < 4; i++)
        if (empty(topic_names[i])) return bad(err, errlen, topic_keys[i], "must not be empty");
    if (find_name(encodings, c->encoding) < 0)
        return bad(err, errlen, "encoding", "must be prela_json, otlp_proto or otlp_json");
    if (find_name(compressions, c->compression) < 0)
        return bad(err, errlen, "compression", "must be none, gzip, snappy, lz4 or zstd");
    if (c->linger_ms >= c->timeout_ms)
        return bad(err, errlen, "linger", "must be shorter than timeout");
    return pc_spooler_validate(&c->spool, c->timeout_ms, err, errlen);
}

/* ---------------------------------------------------------------- state -- */

#define T_COUNT PC_KAFKA_T_COUNT

/* One consume call's outstanding messages; see "Durable acknowledgement". */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;    /* consume's + one per message in flight */
    int pending; /* messages produced and not yet reported */
    int acked;   /* messages acknowledged */
    int dropped; /* messages dropped as too large */
    bool failed; /* a message failed: the batch answers retry */
} waiter;

typedef struct kafka {
    char *id;
    const kafka_cfg *cfg;
    int encoding;
    int64_t timeout_ns;
    int64_t after_ns; /* spool.after: the deadline of a consume when spooling */
    size_t max_bytes;
    pc_spooler *spooler; /* NULL: no spool */
    pc_budget *budget;   /* charged with each record while it is in consume */
    rd_kafka_conf_t *conf; /* until start hands it to rd_kafka_new */
    rd_kafka_t *rk;
    rd_kafka_topic_t *topics[T_COUNT];

    /* rk and topics: consume holds it shared while producing; the poll thread
     * holds it exclusively while it replaces the producer. */
    pthread_rwlock_t rk_lock;
    pthread_t poller;
    bool poller_running;
    int stop;             /* atomic: the poll thread exits */
    int accepting;        /* atomic: between start and shutdown */
    int failing;          /* atomic: in the failing state (logged once per change) */
    int fatal;            /* atomic: the producer hit a fatal error; not yet replaced */
    int healing;          /* atomic: from a fatal error until the new producer reached a broker */
    int64_t down_since;   /* atomic: monotonic ns since no broker is reachable; 0 = reachable */
    pc_kafka_stats stats; /* atomic counters */

    pthread_mutex_t hmu; /* guards the health record below */
    char fatal_reason[256];
    int64_t fatal_wall; /* wall ns of the fatal error */
    char down_reason[256];
    int64_t down_wall; /* wall ns since unreachable */
    int64_t ok_wall;   /* wall ns since OK */

    /* poll thread only */
    int64_t last_probe;    /* monotonic ns */
    int64_t last_recreate; /* monotonic ns; 0 = never */
    int64_t backoff_ms;
} kafka;

static void count(int64_t *c, int64_t n)
{
    __atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

/* Enters the failing state; logs |why| only on the change. */
static void set_failing(kafka *K, const char *why)
{
    if (__atomic_exchange_n(&K->failing, 1, __ATOMIC_ACQ_REL) == 0)
        pc_log(PC_LOG_WARN, K->id, "%s (answering retry until deliveries succeed)", why);
}

static void set_healthy(kafka *K)
{
    if (__atomic_exchange_n(&K->failing, 0, __ATOMIC_ACQ_REL) == 1)
        pc_log(PC_LOG_INFO, K->id, "brokers acknowledge deliveries again");
}

/* No broker reachable (from now, unless already): recorded for health. */
static void set_down(kafka *K, const char *why)
{
    int64_t zero = 0, now = pc_time_mono_ns();
    if (!__atomic_compare_exchange_n(&K->down_since, &zero, now, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&K->hmu);
    snprintf(K->down_reason, sizeof(K->down_reason), "%.200s", why);
    K->down_wall = pc_time_now_ns();
    pthread_mutex_unlock(&K->hmu);
}

/* A broker answered (a delivery or the probe): reachable, and a recreated
 * producer has healed. */
static void set_up(kafka *K)
{
    bool was_down = __atomic_exchange_n(&K->down_since, 0, __ATOMIC_ACQ_REL) != 0;
    bool healed = !__atomic_load_n(&K->fatal, __ATOMIC_ACQUIRE) &&
                  __atomic_exchange_n(&K->healing, 0, __ATOMIC_ACQ_REL) == 1;
    if (!was_down && !healed) return;
    pthread_mutex_lock(&K->hmu);
    K->ok_wall = pc_time_now_ns();
    pthread_mutex_unlock(&K->hmu);
    if (K->spooler) pc_spooler_kick(K->spooler); /* drain now */
    if (healed) pc_log(PC_LOG_INFO, K->id, "the recreated producer reached the brokers; healthy");
}

static bool connectivity_error(int err)
{
    return err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
           err == RD_KAFKA_RESP_ERR__RESOLVE || err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
           err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
}

static waiter *waiter_new(void)
{
    waiter *w = pc_xcalloc(1, sizeof(*w));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->refs = 1;
    return w;
}

/* Drops one reference; call with w->mu held. The last one frees |w|. */
static void waiter_unref_locked(waiter *w)
{
    bool last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (!last) return;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static bool size_error(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; /* from the broker or librdkafka */
}

/* ------------------------------------------------------------ callbacks -- */

/* Delivery report, on the poll thread: counts the message down on its waiter. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafka *K = opaque;
    waiter *w = m->_private;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        count(&K->stats.acked, 1);
        set_healthy(K);
        set_up(K);
    } else if (size_error(m->err)) {
        count(&K->stats.dropped_messages, 1);
        pc_log(PC_LOG_WARN, K->id, "dropped a %zu-byte message of key \"%.*s\" on %s: %s", m->len,
               (int)(m->key_len < 128 ? m->key_len : 128), m->key ? (const char *)m->key : "",
               rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    } else {
        count(&K->stats.failed, 1);
        char why[256];
        snprintf(why, sizeof(why), "delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                 rd_kafka_err2str(m->err));
        set_failing(K, why);
        if (connectivity_error(m->err)) set_down(K, why);
    }
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->pending--;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        w->acked++;
    else if (size_error(m->err))
        w->dropped++;
    else
        w->failed = true;
    pthread_cond_signal(&w->cv);
    waiter_unref_locked(w);
}

/* Client-level errors, served by rd_kafka_poll (the poll thread, or shutdown's
 * flush). A fatal error is only recorded here: see "Self-healing". */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka *K = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[200];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
        if (__atomic_exchange_n(&K->fatal, 1, __ATOMIC_ACQ_REL) == 1) return;
        pthread_mutex_lock(&K->hmu);
        snprintf(K->fatal_reason, sizeof(K->fatal_reason), "%s: %s", rd_kafka_err2name(orig), buf);
        K->fatal_wall = pc_time_now_ns();
        pthread_mutex_unlock(&K->hmu);
        __atomic_store_n(&K->healing, 1, __ATOMIC_RELEASE);
        pc_log(PC_LOG_ERROR, K->id,
               "fatal producer error (%s: %s); failing what is in flight and recreating "
               "the producer",
               rd_kafka_err2name(orig), buf);
        return;
    }
    char why[640];
    snprintf(why, sizeof(why), "%s: %s%s", rd_kafka_err2name(err), reason,
             pc_kafka_error_hint(err, reason));
    set_failing(K, why);
    if (connectivity_error(err)) set_down(K, why);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    kafka *K = rd_kafka_opaque(rk);
    (void)level;
    pc_log(PC_LOG_DEBUG, K ? K->id : "kafka", "librdkafka %s: %s", fac, buf);
}

static void heal(kafka *K);

/* While unreachable or healing, asks a broker for metadata once a second. */
static void probe(kafka *K)
{
    if (!__atomic_load_n(&K->down_since, __ATOMIC_ACQUIRE) &&
        !__atomic_load_n(&K->healing, __ATOMIC_ACQUIRE))
        return;
    int64_t now = pc_time_mono_ns();
    if (now - K->last_probe < PROBE_EVERY_MS * NS_PER_MS) return;
    K->last_probe = now;
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(K->rk, 0, NULL, &md, PROBE_EVERY_MS) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        set_up(K);
    }
}

static void *poll_main(void *arg)
{
    kafka *K = arg;
    while (!__atomic_load_n(&K->stop, __ATOMIC_ACQUIRE)) {
        if (__atomic_load_n(&K->fatal, __ATOMIC_ACQUIRE)) {
            heal(K);
            continue;
        }
        rd_kafka_poll(K->rk, 100);
        probe(K);
    }
    return NULL;
}

/* ------------------------------------------------------------ lifecycle -- */

static int set(kafka *K, const char *key, const char *name, const char *value)
{
    return pc_kafka_conf_set(K->conf, K->id, key, name, value);
}

static int set_int(kafka *K, const char *key, const char *name, int64_t v)
{
    return pc_kafka_conf_set_int(K->conf, K->id, key, name, v);
}

/* Builds the producer configuration from the settings. 0 / -1 after logging. */
static int build_conf(kafka *K)
{
    const kafka_cfg *c = K->cfg;
    K->conf = rd_kafka_conf_new();
    int64_t batch = c->max_message_bytes < 1000000 ? c->max_message_bytes : 1000000;
    if (pc_kafka_conn_apply(K->conf, &c->conn, K->id) || set(K, "kafka", "acks", "all") ||
        set(K, "kafka", "enable.idempotence", "true") ||
        set(K, "kafka", "partitioner", "murmur2_random") || /* as the Java producer */
        set(K, "compression", "compression.codec",
            compressions[find_name(compressions, c->compression)]) ||
        set_int(K, "max_message_bytes", "message.max.bytes", c->max_message_bytes) ||
        set_int(K, "max_message_bytes", "batch.size", batch) ||
        set_int(K, "linger", "linger.ms", c->linger_ms) ||
        set_int(K, "timeout", "message.timeout.ms", c->timeout_ms) ||
        set_int(K, "max_buffered_bytes", "queue.buffering.max.kbytes",
                c->max_buffered_bytes / 1024) ||
        set(K, "kafka", "queue.buffering.max.messages", "0")) /* bytes bound it */
        return -1;
    rd_kafka_conf_set_opaque(K->conf, K);
    rd_kafka_conf_set_dr_msg_cb(K->conf, on_delivery);
    rd_kafka_conf_set_error_cb(K->conf, on_error);
    rd_kafka_conf_set_log_cb(K->conf, on_log);
    return 0;
}

static void kafka_destroy(void *ctx);
static pc_result send_spooled(void *ctx, const void *rec, size_t n);

static void *kafka_create(const char *id, const void *cfgp, const pc_consumer *next)
{
    (void)next;
    const kafka_cfg *cfg = cfgp;
    kafka *K = pc_xcalloc(1, sizeof(*K));
    K->id = pc_xstrdup(id);
    K->cfg = cfg;
    pthread_rwlock_init(&K->rk_lock, NULL);
    pthread_mutex_init(&K->hmu, NULL);
    char err[256];
    if (kafka_validate(cfg, err, sizeof(err)) < 0) {
        pc_log(PC_LOG_ERROR, id, "%s", err);
        kafka_destroy(K);
        return NULL;
    }
    K->encoding = find_name(encodings, cfg->encoding);
    K->timeout_ns = cfg->timeout_ms * NS_PER_MS;
    K->after_ns = cfg->spool.after_ms * NS_PER_MS;
    K->max_bytes = (size_t)cfg->max_message_bytes;
    if (build_conf(K) < 0) {
        kafka_destroy(K);
        return NULL;
    }
    if (pc_spooler_enabled(&cfg->spool)) {
        K->spooler = pc_spooler_create(id, &cfg->spool, send_spooled, K);
        if (!K->spooler) {
            kafka_destroy(K);
            return NULL;
        }
    }
    return K;
}

/* Destroys the producer and its topic handles (none left: rk NULL). */
static void close_producer(kafka *K)
{
    for (int t = 0; t < T_COUNT; t++) {
        if (K->topics[t]) rd_kafka_topic_destroy(K->topics[t]);
        K->topics[t] = NULL;
    }
    if (K->rk) rd_kafka_destroy(K->rk);
    K->rk = NULL;
}

/*
 * Creates the producer and its topic handles from K->conf, or from a fresh
 * configuration of the same settings when that was used up. 0, or -1 after
 * logging why (then nothing is left open).
 */
static int open_producer(kafka *K)
{
    if (!K->conf && build_conf(K) < 0) return -1;
    char err[512];
    K->rk = rd_kafka_new(RD_KAFKA_PRODUCER, K->conf, err, sizeof(err));
    if (!K->rk) {
        pc_log(PC_LOG_ERROR, K->id, "cannot create the producer: %s", err);
        return -1;
    }
    K->conf = NULL; /* rd_kafka_new took it */
    const kafka_cfg *c = K->cfg;
    const char *names[T_COUNT] = {c->topic_traces, c->topic_spans, c->topic_metrics, c->topic_logs};
    for (int t = 0; t < T_COUNT; t++) {
        K->topics[t] = rd_kafka_topic_new(K->rk, names[t], NULL);
        if (!K->topics[t]) {
            pc_log(PC_LOG_ERROR, K->id, "topics: cannot use topic \"%s\": %s", names[t],
                   rd_kafka_err2str(rd_kafka_last_error()));
            close_producer(K);
            return -1;
        }
    }
    return 0;
}

/* Sleeps |ms| in short steps; false when shutdown asked the thread to stop. */
static bool nap(kafka *K, int64_t ms)
{
    int64_t end = pc_time_mono_ns() + ms * NS_PER_MS;
    while (!__atomic_load_n(&K->stop, __ATOMIC_ACQUIRE)) {
        int64_t left = end - pc_time_mono_ns();
        if (left <= 0) return true;
        struct timespec ts = {0, left < 50 * NS_PER_MS ? left : 50 * NS_PER_MS};
        nanosleep(&ts, NULL);
    }
    return false;
}

/*
 * Replaces a producer that hit a fatal error (poll thread; see "Self-healing"):
 * backs off when the last recreation was recent, fails everything queued or
 * in flight, and opens a new producer. On failure K->fatal stays set, so the
 * poll loop calls again (backing off).
 */
static void heal(kafka *K)
{
    int64_t now = pc_time_mono_ns();
    if (K->last_recreate && now - K->last_recreate < RECENT_MS * NS_PER_MS) {
        K->backoff_ms = K->backoff_ms ? K->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (K->backoff_ms > BACKOFF_MAX_MS) K->backoff_ms = BACKOFF_MAX_MS;
        pc_log(PC_LOG_WARN, K->id, "recreating the producer again in %lld ms",
               (long long)K->backoff_ms);
        if (!nap(K, K->backoff_ms)) return;
    } else {
        K->backoff_ms = 0;
    }
    pthread_rwlock_wrlock(&K->rk_lock);
    if (K->rk) {
        rd_kafka_purge(K->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        int64_t end = pc_time_mono_ns() + PURGE_WAIT_MAX_MS * NS_PER_MS;
        while (rd_kafka_outq_len(K->rk) > 0 && pc_time_mono_ns() < end)
            rd_kafka_poll(K->rk, 50); /* the purged messages' reports fail their batches */
        rd_kafka_poll(K->rk, 0);
        close_producer(K);
    }
    int rc = open_producer(K);
    if (rc == 0) __atomic_store_n(&K->fatal, 0, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&K->rk_lock);
    K->last_recreate = pc_time_mono_ns();
    K->last_probe = 0; /* probe the new producer's brokers at once */
    if (rc == 0) {
        count(&K->stats.recreated, 1);
        pc_log(PC_LOG_WARN, K->id, "recreated the producer after the fatal error");
    }
}

static int kafka_start(void *ctx, pc_host *host)
{
    kafka *K = ctx;
    if (K->rk) return 0;
    K->budget = pc_host_budget(host);
    if (open_producer(K) < 0) return -1;
    const kafka_cfg *c = K->cfg;
    K->ok_wall = pc_time_now_ns(); /* before the poll thread exists */
    int rc = pthread_create(&K->poller, NULL, poll_main, K);
    if (rc != 0) {
        pc_log(PC_LOG_ERROR, K->id, "cannot start the poll thread: %s", strerror(rc));
        return -1;
    }
    K->poller_running = true;
    __atomic_store_n(&K->accepting, 1, __ATOMIC_RELEASE);
    if (K->spooler && pc_spooler_start(K->spooler) < 0) return -1;
    pc_log(PC_LOG_INFO, K->id, "producing to %s (encoding %s, compression %s, acks=all)",
           c->conn.brokers, c->encoding, c->compression);
    return 0;
}

/*
 * Stops accepting, waits up to `timeout` (at most 10 s) for in-flight messages,
 * purges what is left (their delivery reports free the waiters), stops the poll
 * thread. Safe without start and safe twice.
 */
static void kafka_shutdown(void *ctx)
{
    kafka *K = ctx;
    if (!K) return;
    __atomic_store_n(&K->accepting, 0, __ATOMIC_RELEASE);
    pc_spooler_stop(K->spooler); /* what is spooled stays for the next start */
    if (K->poller_running) { /* first: it may be replacing the producer */
        __atomic_store_n(&K->stop, 1, __ATOMIC_RELEASE);
        pthread_join(K->poller, NULL);
        K->poller_running = false;
    }
    if (!K->rk) return; /* a recreation failed; nothing is in flight */
    int ms = K->cfg->timeout_ms < SHUTDOWN_FLUSH_MAX_MS ? (int)K->cfg->timeout_ms
                                                        : SHUTDOWN_FLUSH_MAX_MS;
    if (rd_kafka_flush(K->rk, ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        pc_log(PC_LOG_WARN, K->id, "%d messages not acknowledged at shutdown; purged",
               rd_kafka_outq_len(K->rk));
        rd_kafka_purge(K->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(K->rk, 1000);
    }
    rd_kafka_poll(K->rk, 0); /* flush served the reports; any stragglers */
}

static void kafka_destroy(void *ctx)
{
    kafka *K = ctx;
    if (!K) return;
    kafka_shutdown(K);
    pc_spooler_destroy(K->spooler);
    close_producer(K);
    if (K->conf) rd_kafka_conf_destroy(K->conf);
    pthread_rwlock_destroy(&K->rk_lock);
    pthread_mutex_destroy(&K->hmu);
    free(K->id);
    free(K);
}

/* ------------------------------------------------------------ data path -- */

enum { PRODUCED = 0, DROPPED = 1, FAILED = -1 };

/*
 * Produces message |m|, counted on |w|. Waits for queue room until |deadline|.
 * PRODUCED, DROPPED (librdkafka found it too large) or FAILED. The caller
 * holds rk_lock shared.
 */
static int produce(kafka *K, waiter *w, const pc_kafka_msg *m, int64_t deadline)
{
    rd_kafka_topic_t *topic = K->topics[m->topic];
    pthread_mutex_lock(&w->mu);
    w->refs++;
    w->pending++;
    pthread_mutex_unlock(&w->mu);
    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_producev(
            K->rk, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE((void *)m->value, m->len),
            RD_KAFKA_V_KEY(m->key.n ? m->key.p : NULL, m->key.n), RD_KAFKA_V_OPAQUE(w),
            RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || pc_time_mono_ns() >= deadline) break;
        struct timespec ts = {0, 1000000}; /* the poll thread drains the queue */
        nanosleep(&ts, NULL);
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return PRODUCED;
    pthread_mutex_lock(&w->mu);
    w->refs--; /* the caller still holds one: never the last */
    w->pending--;
    if (size_error(err)) w->dropped++;
    pthread_mutex_unlock(&w->mu);
    if (size_error(err)) {
        count(&K->stats.dropped_messages, 1);
        count(&K->stats.dropped_spans, m->spans);
        pc_log(PC_LOG_WARN, K->id, "dropped a %zu-byte message for %s: %s", m->len + m->key.n,
               rd_kafka_topic_name(topic), rd_kafka_err2str(err));
        return DROPPED;
    }
    char why[256];
    snprintf(why, sizeof(why), "cannot produce to %s: %s", rd_kafka_topic_name(topic),
             rd_kafka_err2str(err));
    set_failing(K, why);
    return FAILED;
}

/*
 * Waits for the delivery reports of everything produced on |w|, or |deadline|,
 * or the first failure; then drops the caller's reference. |failed| is true
 * when producing already failed. PC_OK when all were acknowledged (or dropped
 * as too large while something else was acknowledged), PC_DROP when every
 * message was dropped as too large, else PC_RETRY.
 */
static pc_result finish(kafka *K, waiter *w, int64_t deadline, bool failed)
{
    struct timespec ts = {.tv_sec = deadline / 1000000000LL, .tv_nsec = deadline % 1000000000LL};
    pthread_mutex_lock(&w->mu);
    while (!failed && w->pending > 0 && !w->failed)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
    bool timed_out = !failed && w->pending > 0 && !w->failed;
    pc_result res = PC_RETRY;
    if (!failed && w->pending == 0 && !w->failed)
        res = w->acked == 0 && w->dropped > 0 ? PC_DROP : PC_OK;
    waiter_unref_locked(w);
    if (timed_out) {
        set_failing(K, "brokers did not acknowledge a batch in time");
        set_down(K, "brokers did not acknowledge a batch in time");
    }
    return res;
}

/*
 * Produces every message of the record |rec| (kafka_record.h) and waits for
 * their acknowledgements until |deadline| (see finish). A malformed record
 * (only possible from a damaged spool) is PC_DROP.
 */
static pc_result send_record(kafka *K, const void *rec, size_t n, int64_t deadline)
{
    waiter *w = waiter_new();
    bool failed = true;
    pthread_rwlock_rdlock(&K->rk_lock);
    if (!__atomic_load_n(&K->fatal, __ATOMIC_ACQUIRE) && K->rk) { /* replaced meanwhile? */
        failed = false;
        size_t pos = 0;
        pc_kafka_msg m;
        int r;
        while ((r = pc_kafka_record_next(rec, n, &pos, &m)) > 0)
            if (produce(K, w, &m, deadline) == FAILED) {
                failed = true;
                break;
            }
        if (r < 0) {
            pc_log(PC_LOG_ERROR, K->id, "a spooled record of %zu bytes is malformed", n);
            pthread_rwlock_unlock(&K->rk_lock);
            finish(K, w, deadline, true);
            return PC_DROP;
        }
    }
    pthread_rwlock_unlock(&K->rk_lock);
    return finish(K, w, deadline, failed);
}

/* True while the brokers are known to be out of reach (or the producer is
 * being replaced) for longer than |grace_ns|. */
static bool unreachable(kafka *K, int64_t grace_ns)
{
    if (__atomic_load_n(&K->fatal, __ATOMIC_ACQUIRE)) return true;
    int64_t down = __atomic_load_n(&K->down_since, __ATOMIC_ACQUIRE);
    return down && pc_time_mono_ns() - down >= grace_ns;
}

/* The spool's drainer delivers here (see spooler.h). While the brokers are out
 * of reach it answers retry at once; set_up kicks the drainer when they are back. */
static pc_result send_spooled(void *ctx, const void *rec, size_t n)
{
    kafka *K = ctx;
    if (!__atomic_load_n(&K->accepting, __ATOMIC_ACQUIRE) || unreachable(K, 0)) return PC_RETRY;
    return send_record(K, rec, n, pc_time_mono_ns() + K->timeout_ns);
}

/*
 * Encodes the batch into one record, releases the batch, and produces the
 * record. Without a spool: the answer of send_record within `timeout`. With a
 * spool: the brokers get `spool.after` (none while they have been out of reach
 * that long already); what they did not acknowledge by then is appended to the
 * spool, and the answer is OK once it is durable there.
 */
static pc_result kafka_consume(void *ctx, pc_batch *b)
{
    kafka *K = ctx;
    if (!b) return PC_OK;
    bool traces = b->signal == PC_SIGNAL_TRACES;
    if ((traces && b->n == 0) || (!traces && b->raw.n == 0)) {
        pc_batch_unref(b);
        return PC_OK;
    }
    if (!__atomic_load_n(&K->accepting, __ATOMIC_ACQUIRE) ||
        (!K->spooler && __atomic_load_n(&K->fatal, __ATOMIC_ACQUIRE))) {
        pc_batch_unref(b);
        return PC_RETRY;
    }
    int64_t start = pc_time_mono_ns();
    pc_buf rec = {0};
    pc_kafka_drops drops = {0};
    size_t nmsg = pc_kafka_record_encode(&rec, b, K->encoding, K->max_bytes, K->id, &drops);
    pc_batch_unref(b);
    count(&K->stats.dropped_messages, (int64_t)drops.messages);
    count(&K->stats.dropped_spans, (int64_t)drops.spans);
    if (nmsg == 0) {
        pc_buf_free(&rec);
        return drops.messages ? PC_DROP : PC_OK;
    }
    size_t charged = rec.cap;
    pc_budget_force(K->budget, charged);
    pc_result res;
    if (!K->spooler) {
        res = send_record(K, rec.data, rec.len, start + K->timeout_ns);
    } else {
        res = unreachable(K, K->after_ns) ? PC_RETRY
                                          : send_record(K, rec.data, rec.len, start + K->after_ns);
        if (res == PC_RETRY && pc_spooler_append(K->spooler, rec.data, rec.len) == 0) res = PC_OK;
    }
    pc_budget_release(K->budget, charged);
    pc_buf_free(&rec);
    return res;
}

void pc_kafka_get_stats(void *ctx, pc_kafka_stats *out)
{
    kafka *K = ctx;
    out->acked = __atomic_load_n(&K->stats.acked, __ATOMIC_RELAXED);
    out->failed = __atomic_load_n(&K->stats.failed, __ATOMIC_RELAXED);
    out->dropped_messages = __atomic_load_n(&K->stats.dropped_messages, __ATOMIC_RELAXED);
    out->dropped_spans = __atomic_load_n(&K->stats.dropped_spans, __ATOMIC_RELAXED);
    out->recreated = __atomic_load_n(&K->stats.recreated, __ATOMIC_RELAXED);
}

int pc_kafka_inject_fatal(void *ctx, const char *reason)
{
    kafka *K = ctx;
    pthread_rwlock_rdlock(&K->rk_lock);
    rd_kafka_resp_err_t err =
        K->rk ? rd_kafka_test_fatal_error(K->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                          reason)
              : RD_KAFKA_RESP_ERR__STATE;
    pthread_rwlock_unlock(&K->rk_lock);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* See "Health" above. */
static void kafka_health(void *ctx, pc_health *out)
{
    kafka *K = ctx;
    int64_t down = __atomic_load_n(&K->down_since, __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&K->hmu);
    if (__atomic_load_n(&K->healing, __ATOMIC_ACQUIRE)) {
        out->state = PC_HEALTH_UNAVAILABLE;
        out->since_ns = K->fatal_wall;
        snprintf(out->reason, sizeof(out->reason), "fatal producer error (%.180s); %s",
                 K->fatal_reason,
                 __atomic_load_n(&K->fatal, __ATOMIC_ACQUIRE)
                     ? "recreating the producer"
                     : "recreated the producer, waiting for a broker");
    } else if (down && pc_time_mono_ns() - down > K->timeout_ns) {
        out->state = PC_HEALTH_UNAVAILABLE;
        out->since_ns = K->down_wall;
        snprintf(out->reason, sizeof(out->reason), "no broker reachable for over %lld ms: %.180s",
                 (long long)K->cfg->timeout_ms, K->down_reason);
    } else {
        out->state = PC_HEALTH_OK;
        out->since_ns = K->ok_wall;
        out->reason[0] = '\0';
    }
    pthread_mutex_unlock(&K->hmu);
    if (K->spooler) pc_spooler_health(K->spooler, out);
}

const pc_component_ops pc_kafka_exporter_ops = {
    .type = "kafka",
    .kind = PC_EXPORTER,
    .signals =
        PC_SIG_BIT(PC_SIGNAL_TRACES) | PC_SIG_BIT(PC_SIGNAL_METRICS) | PC_SIG_BIT(PC_SIGNAL_LOGS),
    .options = options,
    .config_size = sizeof(kafka_cfg),
    .validate = kafka_validate,
    .create = kafka_create,
    .start = kafka_start,
    .shutdown = kafka_shutdown,
    .destroy = kafka_destroy,
    .consume = kafka_consume,
    .health = kafka_health,
};
