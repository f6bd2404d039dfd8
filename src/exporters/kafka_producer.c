/*
 * kafka_producer.c - the acknowledged, self-healing librdkafka producer
 * (see kafka_producer.h).
 *
 * Data flow: pc_kafka_producer_begin(record) → rd_kafka_producev per message →
 * brokers → delivery reports served by the poll thread → the send's waiter →
 * pc_kafka_producer_end returns (send = begin + end).
 *
 * Durable acknowledgement: each send owns a waiter (outstanding
 * message count, first error, mutex + condvar) that is the opaque of every
 * message it produces. The poll thread's delivery callback counts each report
 * down with atomics and wakes the sender once: when the last report arrived or
 * the first failure did (a request of 110 messages costs one wakeup, not 110);
 * send returns PC_OK once every message was acknowledged, PC_RETRY as soon as
 * one failed or at its deadline.
 * Ownership: the waiter is reference counted, one reference for send and one
 * per message in flight, so a waiter whose send gave up stays valid until its
 * last delivery report arrived; whoever drops the last reference frees it.
 * librdkafka copies keys and values (RD_KAFKA_MSG_F_COPY), so the record is
 * the caller's again when send returns.
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
 * the poll thread then takes the producer lock exclusively (send holds it
 * shared while producing, and answers retry at once while a fatal error is
 * pending), purges every queued and in-flight message (their delivery reports
 * fail their batches: retry, never OK), destroys the producer and creates a new
 * one from the same settings. A recreation within RECENT_MS of the previous one
 * first waits a backoff (BACKOFF_MIN_MS doubling to BACKOFF_MAX_MS), as does a
 * retry after a failed creation. Each occurrence is logged once.
 *
 * Health: UNAVAILABLE from a fatal error until the new
 * producer reached a broker, and while no broker has been reachable for longer
 * than `timeout`; OK otherwise. Reachability is learnt from librdkafka's
 * errors and delivery reports; while unreachable, the poll thread probes the
 * brokers with a metadata request once a second, so health recovers without
 * traffic (a load balancer that took us out of rotation sends none), and calls
 * on_up then (the exporter's spool drains at once).
 */
#include "kafka_producer.h"

#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
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

static const char *const compressions[] = {"none", "gzip", "snappy", "lz4", "zstd", NULL};

/* One send's outstanding messages; see "Durable acknowledgement". The
 * counters are atomics: the delivery callback takes mu only to wake the sender
 * (after the state it waits on changed, so the wakeup cannot be lost). */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;    /* atomic: the sender's + one per message in flight */
    int pending; /* atomic: messages produced and not yet reported */
    int acked;   /* atomic: messages acknowledged */
    int dropped; /* atomic: messages dropped as too large */
    int failed;  /* atomic: a message failed, the send answers retry */
    /* One slot per message of the record, the message's opaque: self[i] == the
     * waiter until message i is refused as too large, then NULL; so a send can
     * tell which messages were refused (pc_kafka_producer_send's |refused|).
     * Written before the report's pending decrement, read after pending is 0. */
    size_t n;
    struct waiter **self;
    /* set by begin, read by end (the sender's thread only) */
    int64_t deadline;     /* monotonic ns */
    pc_result early;      /* PC_OK, or what end answers without waiting */
} waiter;

struct pc_kafka_send {
    waiter w;
};

typedef struct pc_kafka_producer producer;

struct pc_kafka_producer {
    char *id;
    pc_kafka_producer_cfg cfg;
    int64_t timeout_ns;
    void (*on_up)(void *ctx);
    void *up_ctx;
    rd_kafka_conf_t *conf; /* until start hands it to rd_kafka_new */
    rd_kafka_t *rk;
    rd_kafka_topic_t *topics[PC_KAFKA_T_COUNT];

    /* rk and topics: send holds it shared while producing; the poll thread
     * holds it exclusively while it replaces the producer. */
    pthread_rwlock_t rk_lock;
    pthread_t poller;
    bool poller_running;
    int stop;             /* atomic: the poll thread exits */
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
};

static void count(int64_t *c, int64_t n)
{
    __atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

/* Enters the failing state; logs |why| only on the change. */
static void set_failing(producer *P, const char *why)
{
    if (__atomic_exchange_n(&P->failing, 1, __ATOMIC_ACQ_REL) == 0)
        pc_log(PC_LOG_WARN, P->id, "%s (answering retry until deliveries succeed)", why);
}

static void set_healthy(producer *P)
{
    if (__atomic_exchange_n(&P->failing, 0, __ATOMIC_ACQ_REL) == 1)
        pc_log(PC_LOG_INFO, P->id, "brokers acknowledge deliveries again");
}

/* No broker reachable (from now, unless already): recorded for health. */
static void set_down(producer *P, const char *why)
{
    int64_t zero = 0, now = pc_time_mono_ns();
    if (!__atomic_compare_exchange_n(&P->down_since, &zero, now, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&P->hmu);
    snprintf(P->down_reason, sizeof(P->down_reason), "%.200s", why);
    P->down_wall = pc_time_now_ns();
    pthread_mutex_unlock(&P->hmu);
}

/* A broker answered (a delivery or the probe): reachable, and a recreated
 * producer has healed. */
static void set_up(producer *P)
{
    bool was_down = __atomic_exchange_n(&P->down_since, 0, __ATOMIC_ACQ_REL) != 0;
    bool healed = !__atomic_load_n(&P->fatal, __ATOMIC_ACQUIRE) &&
                  __atomic_exchange_n(&P->healing, 0, __ATOMIC_ACQ_REL) == 1;
    if (!was_down && !healed) return;
    pthread_mutex_lock(&P->hmu);
    P->ok_wall = pc_time_now_ns();
    pthread_mutex_unlock(&P->hmu);
    if (P->on_up) P->on_up(P->up_ctx); /* e.g. the spool drains now */
    if (healed) pc_log(PC_LOG_INFO, P->id, "the recreated producer reached the brokers; healthy");
}

static bool connectivity_error(int err)
{
    return err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
           err == RD_KAFKA_RESP_ERR__RESOLVE || err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
           err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
}

static waiter *waiter_new(size_t n)
{
    waiter *w = pc_xcalloc(1, sizeof(*w));
    w->n = n;
    w->self = pc_xcalloc(n ? n : 1, sizeof(*w->self));
    for (size_t i = 0; i < n; i++)
        w->self[i] = w;
    pthread_mutex_init(&w->mu, NULL);
    pc_cond_init_mono(&w->cv);
    w->refs = 1;
    return w;
}

/* Drops one reference; the last one frees |w|. */
static void waiter_unref(waiter *w)
{
    if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->self);
    free(w);
}

static bool waiter_busy(waiter *w)
{
    return __atomic_load_n(&w->pending, __ATOMIC_ACQUIRE) > 0;
}

static bool waiter_failed(waiter *w)
{
    return __atomic_load_n(&w->failed, __ATOMIC_ACQUIRE) != 0;
}

/* Wakes the sender waiting in finish(). Call after changing what it waits on. */
static void waiter_wake(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
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
    producer *P = opaque;
    waiter **slot = m->_private, *w = slot ? *slot : NULL;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        count(&P->stats.acked, 1);
        set_healthy(P);
        set_up(P);
    } else if (size_error(m->err)) {
        count(&P->stats.dropped_messages, 1);
        pc_log(PC_LOG_WARN, P->id, "dropped a %zu-byte message of key \"%.*s\" on %s: %s", m->len,
               (int)(m->key_len < 128 ? m->key_len : 128), m->key ? (const char *)m->key : "",
               rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    } else {
        count(&P->stats.failed, 1);
        char why[256];
        snprintf(why, sizeof(why), "delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                 rd_kafka_err2str(m->err));
        set_failing(P, why);
        if (connectivity_error(m->err)) set_down(P, why);
    }
    if (!w) return;
    bool fail = false;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        __atomic_add_fetch(&w->acked, 1, __ATOMIC_RELAXED);
    } else if (size_error(m->err)) {
        __atomic_add_fetch(&w->dropped, 1, __ATOMIC_RELAXED);
        __atomic_store_n(slot, NULL, __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(&w->failed, 1, __ATOMIC_RELEASE);
        fail = true;
    }
    if (__atomic_sub_fetch(&w->pending, 1, __ATOMIC_ACQ_REL) == 0 || fail) waiter_wake(w);
    waiter_unref(w);
}

/* Client-level errors, served by rd_kafka_poll (the poll thread, or shutdown's
 * flush). A fatal error is only recorded here: see "Self-healing". */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    producer *P = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[200];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
        if (__atomic_exchange_n(&P->fatal, 1, __ATOMIC_ACQ_REL) == 1) return;
        pthread_mutex_lock(&P->hmu);
        snprintf(P->fatal_reason, sizeof(P->fatal_reason), "%s: %s", rd_kafka_err2name(orig), buf);
        P->fatal_wall = pc_time_now_ns();
        pthread_mutex_unlock(&P->hmu);
        __atomic_store_n(&P->healing, 1, __ATOMIC_RELEASE);
        pc_log(PC_LOG_ERROR, P->id,
               "fatal producer error (%s: %s); failing what is in flight and recreating "
               "the producer",
               rd_kafka_err2name(orig), buf);
        return;
    }
    char why[640];
    snprintf(why, sizeof(why), "%s: %s%s", rd_kafka_err2name(err), reason,
             pc_kafka_error_hint(err, reason));
    set_failing(P, why);
    if (connectivity_error(err)) set_down(P, why);
}

static void heal(producer *P);

/* While unreachable or healing, asks a broker for metadata once a second. */
static void probe(producer *P)
{
    if (!__atomic_load_n(&P->down_since, __ATOMIC_ACQUIRE) &&
        !__atomic_load_n(&P->healing, __ATOMIC_ACQUIRE))
        return;
    int64_t now = pc_time_mono_ns();
    if (now - P->last_probe < PROBE_EVERY_MS * NS_PER_MS) return;
    P->last_probe = now;
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(P->rk, 0, NULL, &md, PROBE_EVERY_MS) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        set_up(P);
    }
}

static void *poll_main(void *arg)
{
    producer *P = arg;
    pc_thread_name("kafka-poll");
    while (!__atomic_load_n(&P->stop, __ATOMIC_ACQUIRE)) {
        if (__atomic_load_n(&P->fatal, __ATOMIC_ACQUIRE)) {
            heal(P);
            continue;
        }
        rd_kafka_poll(P->rk, 100);
        probe(P);
    }
    return NULL;
}


/* ------------------------------------------------------------ lifecycle -- */

static int set(producer *P, const char *key, const char *name, const char *value)
{
    return pc_kafka_conf_set(P->conf, P->id, key, name, value);
}

static int set_int(producer *P, const char *key, const char *name, int64_t v)
{
    return pc_kafka_conf_set_int(P->conf, P->id, key, name, v);
}

/* Builds the producer configuration from the settings. 0 / -1 after logging. */
static int build_conf(producer *P)
{
    const pc_kafka_producer_cfg *c = &P->cfg;
    P->conf = rd_kafka_conf_new();
    int64_t batch = c->max_message_bytes < 1000000 ? c->max_message_bytes : 1000000;
    if (pc_kafka_conn_apply(P->conf, c->conn, P->id) || set(P, "kafka", "acks", "all") ||
        set(P, "kafka", "enable.idempotence", "true") ||
        set(P, "kafka", "partitioner", "murmur2_random") || /* as the Java producer */
        set(P, "compression", "compression.codec",
            compressions[pc_kafka_find_name(compressions, c->compression)]) ||
        set_int(P, "max_message_bytes", "message.max.bytes", c->max_message_bytes) ||
        set_int(P, "max_message_bytes", "batch.size", batch) ||
        set_int(P, "linger", "linger.ms", c->linger_ms) ||
        set_int(P, "max_in_flight", "max.in.flight.requests.per.connection", c->max_in_flight) ||
        set_int(P, "timeout", "message.timeout.ms", c->timeout_ms) ||
        set_int(P, "max_buffered_bytes", "queue.buffering.max.kbytes",
                c->max_buffered_bytes / 1024) ||
        set(P, "kafka", "queue.buffering.max.messages", "0")) /* bytes bound it */
        return -1;
    rd_kafka_conf_set_opaque(P->conf, P);
    rd_kafka_conf_set_dr_msg_cb(P->conf, on_delivery);
    rd_kafka_conf_set_error_cb(P->conf, on_error);
    return 0;
}

/* Destroys the producer and its topic handles (none left: rk NULL). */
static void close_producer(producer *P)
{
    for (int t = 0; t < PC_KAFKA_T_COUNT; t++) {
        if (P->topics[t]) rd_kafka_topic_destroy(P->topics[t]);
        P->topics[t] = NULL;
    }
    if (P->rk) rd_kafka_destroy(P->rk);
    P->rk = NULL;
}

/*
 * Creates the producer and its topic handles from P->conf, or from a fresh
 * configuration of the same settings when that was used up. 0, or -1 after
 * logging why (then nothing is left open).
 */
static int open_producer(producer *P)
{
    if (!P->conf && build_conf(P) < 0) return -1;
    char err[512];
    P->rk = rd_kafka_new(RD_KAFKA_PRODUCER, P->conf, err, sizeof(err));
    if (!P->rk) {
        pc_log(PC_LOG_ERROR, P->id, "cannot create the producer: %s", err);
        return -1;
    }
    P->conf = NULL; /* rd_kafka_new took it */
    const char *const *names = P->cfg.topics;
    for (int t = 0; t < PC_KAFKA_T_COUNT; t++) {
        P->topics[t] = rd_kafka_topic_new(P->rk, names[t], NULL);
        if (!P->topics[t]) {
            pc_log(PC_LOG_ERROR, P->id, "topics: cannot use topic \"%s\": %s", names[t],
                   rd_kafka_err2str(rd_kafka_last_error()));
            close_producer(P);
            return -1;
        }
    }
    return 0;
}

/* Sleeps |ms| in short steps; false when shutdown asked the thread to stop. */
static bool nap(producer *P, int64_t ms)
{
    int64_t end = pc_time_mono_ns() + ms * NS_PER_MS;
    while (!__atomic_load_n(&P->stop, __ATOMIC_ACQUIRE)) {
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
 * in flight, and opens a new producer. On failure P->fatal stays set, so the
 * poll loop calls again (backing off).
 */
static void heal(producer *P)
{
    int64_t now = pc_time_mono_ns();
    if (P->last_recreate && now - P->last_recreate < RECENT_MS * NS_PER_MS) {
        P->backoff_ms = P->backoff_ms ? P->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (P->backoff_ms > BACKOFF_MAX_MS) P->backoff_ms = BACKOFF_MAX_MS;
        pc_log(PC_LOG_WARN, P->id, "recreating the producer again in %lld ms",
               (long long)P->backoff_ms);
        if (!nap(P, P->backoff_ms)) return;
    } else {
        P->backoff_ms = 0;
    }
    pthread_rwlock_wrlock(&P->rk_lock);
    if (P->rk) {
        rd_kafka_purge(P->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        int64_t end = pc_time_mono_ns() + PURGE_WAIT_MAX_MS * NS_PER_MS;
        while (rd_kafka_outq_len(P->rk) > 0 && pc_time_mono_ns() < end)
            rd_kafka_poll(P->rk, 50); /* the purged messages' reports fail their batches */
        rd_kafka_poll(P->rk, 0);
        close_producer(P);
    }
    int rc = open_producer(P);
    if (rc == 0) __atomic_store_n(&P->fatal, 0, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&P->rk_lock);
    P->last_recreate = pc_time_mono_ns();
    P->last_probe = 0; /* probe the new producer's brokers at once */
    if (rc == 0) {
        count(&P->stats.recreated, 1);
        pc_log(PC_LOG_WARN, P->id, "recreated the producer after the fatal error");
    }
}

pc_kafka_producer *pc_kafka_producer_create(const char *id, const pc_kafka_producer_cfg *cfg,
                                            void (*on_up)(void *ctx), void *ctx)
{
    producer *P = pc_xcalloc(1, sizeof(*P));
    P->id = pc_xstrdup(id);
    P->cfg = *cfg;
    P->timeout_ns = cfg->timeout_ms * NS_PER_MS;
    P->on_up = on_up;
    P->up_ctx = ctx;
    pthread_rwlock_init(&P->rk_lock, NULL);
    pthread_mutex_init(&P->hmu, NULL);
    if (build_conf(P) < 0) {
        pc_kafka_producer_destroy(P);
        return NULL;
    }
    return P;
}

int pc_kafka_producer_start(pc_kafka_producer *P)
{
    if (P->rk) return 0;
    if (open_producer(P) < 0) return -1;
    P->ok_wall = pc_time_now_ns(); /* before the poll thread exists */
    int rc = pthread_create(&P->poller, NULL, poll_main, P);
    if (rc != 0) {
        pc_log(PC_LOG_ERROR, P->id, "cannot start the poll thread: %s", strerror(rc));
        return -1;
    }
    P->poller_running = true;
    return 0;
}

void pc_kafka_producer_shutdown(pc_kafka_producer *P)
{
    if (!P) return;
    if (P->poller_running) { /* first: it may be replacing the producer */
        __atomic_store_n(&P->stop, 1, __ATOMIC_RELEASE);
        pthread_join(P->poller, NULL);
        P->poller_running = false;
    }
    if (!P->rk) return; /* a recreation failed; nothing is in flight */
    int ms = P->cfg.timeout_ms < SHUTDOWN_FLUSH_MAX_MS ? (int)P->cfg.timeout_ms
                                                       : SHUTDOWN_FLUSH_MAX_MS;
    if (rd_kafka_flush(P->rk, ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        pc_log(PC_LOG_WARN, P->id, "%d messages not acknowledged at shutdown; purged",
               rd_kafka_outq_len(P->rk));
        rd_kafka_purge(P->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(P->rk, 1000);
    }
    rd_kafka_poll(P->rk, 0); /* flush served the reports; any stragglers */
}

void pc_kafka_producer_destroy(pc_kafka_producer *P)
{
    if (!P) return;
    pc_kafka_producer_shutdown(P);
    close_producer(P);
    if (P->conf) rd_kafka_conf_destroy(P->conf);
    pthread_rwlock_destroy(&P->rk_lock);
    pthread_mutex_destroy(&P->hmu);
    free(P->id);
    free(P);
}

/* ------------------------------------------------------------ data path -- */

enum { PRODUCED = 0, DROPPED = 1, FAILED = -1 };

/*
 * Produces message |m|, counted on |w|. Waits for queue room until |deadline|.
 * PRODUCED, DROPPED (librdkafka found it too large) or FAILED. The caller
 * holds rk_lock shared.
 */
static int produce(producer *P, waiter *w, size_t i, const pc_kafka_msg *m, int64_t deadline)
{
    rd_kafka_topic_t *topic = P->topics[m->topic];
    __atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&w->pending, 1, __ATOMIC_RELAXED);
    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_producev(P->rk, RD_KAFKA_V_RKT(topic),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_VALUE((void *)m->value, m->len),
                                RD_KAFKA_V_KEY(m->key.n ? m->key.p : NULL, m->key.n),
                                RD_KAFKA_V_OPAQUE(&w->self[i]), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || pc_time_mono_ns() >= deadline) break;
        struct timespec ts = {0, 1000000}; /* the poll thread drains the queue */
        nanosleep(&ts, NULL);
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return PRODUCED;
    __atomic_sub_fetch(&w->refs, 1, __ATOMIC_RELAXED); /* the caller still holds one */
    __atomic_sub_fetch(&w->pending, 1, __ATOMIC_ACQ_REL);
    if (size_error(err)) {
        __atomic_add_fetch(&w->dropped, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&w->self[i], NULL, __ATOMIC_RELAXED);
    }
    if (size_error(err)) {
        count(&P->stats.dropped_messages, 1);
        count(&P->stats.dropped_spans, m->spans);
        pc_log(PC_LOG_WARN, P->id, "dropped a %zu-byte message for %s: %s", m->len + m->key.n,
               rd_kafka_topic_name(topic), rd_kafka_err2str(err));
        return DROPPED;
    }
    char why[256];
    snprintf(why, sizeof(why), "cannot produce to %s: %s", rd_kafka_topic_name(topic),
             rd_kafka_err2str(err));
    set_failing(P, why);
    return FAILED;
}

/*
 * Waits for the delivery reports of everything produced on |w|, or |deadline|,
 * or the first failure; then drops the caller's reference. |failed| is true
 * when producing already failed. PC_OK when all were acknowledged (or dropped
 * as too large while something else was acknowledged), PC_DROP when every
 * message was dropped as too large, else PC_RETRY. |refused| (NULL, or one
 * byte per message) is set to which messages were refused as too large.
 */
static pc_result finish(producer *P, waiter *w, int64_t deadline, bool failed,
                        unsigned char *refused)
{
    pthread_mutex_lock(&w->mu);
    while (!failed && waiter_busy(w) && !waiter_failed(w))
        if (pc_cond_wait_until(&w->cv, &w->mu, deadline) == ETIMEDOUT) break;
    pthread_mutex_unlock(&w->mu);
    bool busy = waiter_busy(w), bad = waiter_failed(w);
    bool timed_out = !failed && busy && !bad;
    pc_result res = PC_RETRY;
    if (!failed && !busy && !bad)
        res = __atomic_load_n(&w->acked, __ATOMIC_RELAXED) == 0 &&
                      __atomic_load_n(&w->dropped, __ATOMIC_RELAXED) > 0
                  ? PC_DROP
                  : PC_OK;
    for (size_t i = 0; refused && i < w->n; i++)
        refused[i] = __atomic_load_n(&w->self[i], __ATOMIC_RELAXED) == NULL;
    waiter_unref(w);
    if (timed_out) {
        set_failing(P, "brokers did not acknowledge a batch in time");
        set_down(P, "brokers did not acknowledge a batch in time");
    }
    return res;
}

pc_kafka_send *pc_kafka_producer_begin(pc_kafka_producer *P, const void *rec, size_t n,
                                       int64_t deadline)
{
    size_t nmsg = 0, pos = 0;
    pc_kafka_msg m;
    while (pc_kafka_record_next(rec, n, &pos, &m) > 0)
        nmsg++;
    waiter *w = waiter_new(nmsg);
    w->deadline = deadline;
    w->early = PC_RETRY; /* unless producing starts below */
    pthread_rwlock_rdlock(&P->rk_lock);
    if (!__atomic_load_n(&P->fatal, __ATOMIC_ACQUIRE) && P->rk) { /* replaced meanwhile? */
        w->early = PC_OK;
        pos = 0;
        int r;
        for (size_t i = 0; (r = pc_kafka_record_next(rec, n, &pos, &m)) > 0; i++)
            if (produce(P, w, i, &m, deadline) == FAILED) {
                w->early = PC_RETRY;
                break;
            }
        if (r < 0) {
            pc_log(PC_LOG_ERROR, P->id, "a spooled record of %zu bytes is malformed", n);
            w->early = PC_DROP;
        }
    }
    pthread_rwlock_unlock(&P->rk_lock);
    return (pc_kafka_send *)w;
}

static pc_result end(pc_kafka_producer *P, pc_kafka_send *s, unsigned char *refused)
{
    waiter *w = &s->w;
    pc_result early = w->early;
    pc_result res = finish(P, w, w->deadline, early != PC_OK, refused);
    return early == PC_DROP ? PC_DROP : res;
}

pc_result pc_kafka_producer_end(pc_kafka_producer *P, pc_kafka_send *s)
{
    return end(P, s, NULL);
}

pc_result pc_kafka_producer_send(pc_kafka_producer *P, const void *rec, size_t n, int64_t deadline,
                                 unsigned char *refused)
{
    return end(P, pc_kafka_producer_begin(P, rec, n, deadline), refused);
}

bool pc_kafka_producer_unreachable(pc_kafka_producer *P, int64_t grace_ns)
{
    if (__atomic_load_n(&P->fatal, __ATOMIC_ACQUIRE)) return true;
    int64_t down = __atomic_load_n(&P->down_since, __ATOMIC_ACQUIRE);
    return down && pc_time_mono_ns() - down >= grace_ns;
}


void pc_kafka_producer_add_stats(pc_kafka_producer *P, pc_kafka_stats *out)
{
    out->acked += __atomic_load_n(&P->stats.acked, __ATOMIC_RELAXED);
    out->failed += __atomic_load_n(&P->stats.failed, __ATOMIC_RELAXED);
    out->dropped_messages += __atomic_load_n(&P->stats.dropped_messages, __ATOMIC_RELAXED);
    out->dropped_spans += __atomic_load_n(&P->stats.dropped_spans, __ATOMIC_RELAXED);
    out->recreated += __atomic_load_n(&P->stats.recreated, __ATOMIC_RELAXED);
}

int pc_kafka_producer_inject_fatal(pc_kafka_producer *P, const char *reason)
{
    pthread_rwlock_rdlock(&P->rk_lock);
    rd_kafka_resp_err_t err =
        P->rk ? rd_kafka_test_fatal_error(P->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                          reason)
              : RD_KAFKA_RESP_ERR__STATE;
    pthread_rwlock_unlock(&P->rk_lock);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* See "Health" above. */
void pc_kafka_producer_health(pc_kafka_producer *P, pc_health *out)
{
    int64_t down = __atomic_load_n(&P->down_since, __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&P->hmu);
    if (__atomic_load_n(&P->healing, __ATOMIC_ACQUIRE)) {
        out->state = PC_HEALTH_UNAVAILABLE;
        out->since_ns = P->fatal_wall;
        snprintf(out->reason, sizeof(out->reason), "fatal producer error (%.180s); %s",
                 P->fatal_reason,
                 __atomic_load_n(&P->fatal, __ATOMIC_ACQUIRE)
                     ? "recreating the producer"
                     : "recreated the producer, waiting for a broker");
    } else if (down && pc_time_mono_ns() - down > P->timeout_ns) {
        out->state = PC_HEALTH_UNAVAILABLE;
        out->since_ns = P->down_wall;
        snprintf(out->reason, sizeof(out->reason), "no broker reachable for over %lld ms: %.180s",
                 (long long)P->cfg.timeout_ms, P->down_reason);
    } else {
        out->state = PC_HEALTH_OK;
        out->since_ns = P->ok_wall;
        out->reason[0] = '\0';
    }
    pthread_mutex_unlock(&P->hmu);
}
