/*
 * kafka.c - the `kafka` receiver (see kafka.h): settings, librdkafka consumer,
 * at-least-once delivery into the pipeline.
 *
 * Data flow: brokers → rd_kafka_consumer_poll on one consumer thread →
 * pc_kafka_decode (formats/kafka_message.h) appends each message's spans to the batch being filled
 * (the batch's arena owns copies; messages are destroyed right after) →
 * pc_consume(next) → commit → next batch.
 *
 * At least once: the thread remembers, per partition, the last offset + 1 of
 * every message it put into (or skipped for) the current batch, and commits
 * exactly those offsets, synchronously, only after next answered PC_OK (or
 * PC_DROP, see deliver()). PC_RETRY keeps the batch: the assigned partitions
 * are paused, the thread keeps polling for the backoff (so heartbeats,
 * rebalances and callbacks are served and the group does not evict us), and
 * the same batch is offered again until it is accepted; then it commits and
 * resumes. A failed commit keeps the offsets and retries with the next one.
 *
 * Rebalances (cooperative-sticky, incremental): on revoke the remembered
 * offsets of the revoked partitions are forgotten, not committed: their new
 * owner re-reads from the last commit, and the spans of the in-flight batch
 * that came from them may be stored twice, which the stores' dedup by
 * (trace_id, span_id) absorbs. Partitions assigned while paused are paused too.
 *
 * Batches: a batch takes the messages that are ready (fetched by librdkafka)
 * and is passed on as soon as none is, or at max_batch_spans, or
 * max_batch_wait after its first message. So a quiet topic adds no latency,
 * and under load the messages that arrive while next is busy (an insert in
 * flight) form the next, larger batch. Why 10000 / 100ms: the exporters
 * behind this receiver (ClickHouse, the embedded store) want large inserts,
 * and 10000 decoded spans stay within a few tens of MB of arena; 100 ms
 * bounds how long a steady stream is gathered before it is passed on.
 *
 * Shutdown: the thread stops polling, offers the batch in hand once more (the
 * bound is next's own deadline, e.g. the exporter's timeout), commits it only
 * when accepted, else abandons it uncommitted (it is redelivered), then the
 * consumer is closed, which leaves the group. A consumer stopped between
 * joining the group and its first assignment first waits for that assignment
 * (see await_first_assignment: librdkafka < 2.2.1 would abort in destroy).
 */
#include "kafka.h"

#include "kafka_conf.h"
#include "formats/kafka_message.h"
#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000LL
#define POLL_MS 100
/* Span room kept ahead of each message, and the most reserved up front for a
 * new batch (see room()). */
#define SPAN_HEADROOM 1024
#define FIRST_RESERVE_MAX 65536

/* ------------------------------------------------------------- settings -- */

typedef struct krecv_cfg {
    pc_kafka_conn_cfg conn; /* brokers, client_id, security.protocol, sasl.*, tls.* */
    char *group_id;
    pc_strlist topics;
    char *encoding;
    int64_t max_batch_spans;
    int64_t max_batch_wait_ms;
    char *initial_offset;
    int64_t retry_backoff_ms;
    int64_t max_retry_backoff_ms;
    int64_t session_timeout_ms;
    int64_t max_message_bytes;
    int64_t fetch_max_bytes;
    int64_t queue_max_bytes;
} krecv_cfg;

#define OPT(k, t, d, f, lo, hi, doc) {k, t, d, offsetof(krecv_cfg, f), lo, hi, doc}
static const pc_option options[] = {
    PC_KAFKA_CONN_OPTIONS(krecv_cfg, conn),
    OPT("group_id", PC_OPT_STRING, "prela-collector-storage", group_id, 0, 0,
        "consumer group; storage collectors sharing it split the partitions"),
    OPT("topics", PC_OPT_STRLIST, "spans", topics, 0, 0,
        "topics to read: the exporter's topics.spans (one name or a list)"),
    OPT("encoding", PC_OPT_STRING, "auto", encoding, 0, 0,
        "what the exporter wrote: auto (each message's own), otlp_proto, prela_json or "
        "otlp_json"),
    OPT("max_batch_spans", PC_OPT_INT, "10000", max_batch_spans, 1, 1000000,
        "spans per batch passed on (a message is never split, so one may exceed it)"),
    OPT("max_batch_wait", PC_OPT_DURATION, "100ms", max_batch_wait_ms, 1, 600000,
        "longest a batch gathers a steady stream after its first message (it is passed on "
        "at once when no message is ready)"),
    OPT("initial_offset", PC_OPT_STRING, "earliest", initial_offset, 0, 0,
        "where a group without committed offsets starts: earliest or latest"),
    OPT("retry_backoff", PC_OPT_DURATION, "100ms", retry_backoff_ms, 1, 600000,
        "first wait before offering a refused (retry) batch again; doubles per attempt"),
    OPT("max_retry_backoff", PC_OPT_DURATION, "5s", max_retry_backoff_ms, 1, 3600000,
        "cap of the doubling retry wait"),
    OPT("session_timeout", PC_OPT_DURATION, "10s", session_timeout_ms, 6000, 300000,
        "how long the group waits for a collector that stopped heartbeating (crashed) before "
        "giving its partitions to the others; 6s..5m (the broker's limits). Also the longest "
        "a stop waits for a first assignment still pending (librdkafka issue #4312)"),
    OPT("max_message_bytes", PC_OPT_SIZE, "16MiB", max_message_bytes, 1024, 1000000000,
        "largest message read (receive.message.max.bytes allows it plus framing); at least the "
        "exporter's max_message_bytes, so a large span is read like a small one"),
    OPT("fetch_max_bytes", PC_OPT_SIZE, "4MiB", fetch_max_bytes, 1048576, 1000000000,
        "most bytes one fetch asks the brokers for (fetch.max.bytes; per partition at most "
        "this too); a larger message is still fetched, alone. At least 1MiB (librdkafka "
        "wants it >= message.max.bytes)"),
    OPT("queue_max_bytes", PC_OPT_SIZE, "8MiB", queue_max_bytes, 1024, 2000000000,
        "most fetched bytes waiting to be read (queued.max.messages.kbytes): with "
        "fetch_max_bytes, what bounds the consumer's memory while draining a backlog"),
    {NULL, 0, NULL, 0, 0, 0, NULL},
};
#undef OPT

static const char *const initial_offsets[] = {"earliest", "latest", NULL};

static int bad(char *err, size_t errlen, const char *key, const char *what)
{
    snprintf(err, errlen, "%s: %s", key, what);
    return -1;
}

static int krecv_validate(const void *cfgp, char *err, size_t errlen)
{
    const krecv_cfg *c = cfgp;
    if (pc_kafka_conn_validate(&c->conn, err, errlen)) return -1;
    if (!c->group_id || !*c->group_id) return bad(err, errlen, "group_id", "must not be empty");
    if (!c->topics.n) return bad(err, errlen, "topics", "must name at least one topic");
    for (size_t i = 0; i < c->topics.n; i++)
        if (!c->topics.v[i] || !*c->topics.v[i])
            return bad(err, errlen, "topics", "a topic name is empty");
    if (pc_kafka_encoding_parse(c->encoding) < 0)
        return bad(err, errlen, "encoding", "must be auto, otlp_proto, prela_json or otlp_json");
    if (pc_kafka_find_name(initial_offsets, c->initial_offset) < 0)
        return bad(err, errlen, "initial_offset", "must be earliest or latest");
    if (c->max_retry_backoff_ms < c->retry_backoff_ms)
        return bad(err, errlen, "max_retry_backoff", "must not be shorter than retry_backoff");
    return 0;
}

/* ---------------------------------------------------------------- state -- */

typedef struct krecv {
    char *id;
    const krecv_cfg *cfg;
    pc_consumer next;
    pc_kafka_encoding encoding;
    rd_kafka_conf_t *conf; /* until start hands it to rd_kafka_new */
    rd_kafka_t *rk;
    pthread_t thread;
    bool thread_running;
    bool closed;
    int stop; /* atomic: the consumer thread winds down */

    /* consumer thread only (the rebalance callback runs on it, inside poll) */
    rd_kafka_topic_partition_list_t *offsets; /* to commit: last offset + 1 per partition */
    bool paused;
    int last_err; /* last consumer error logged, so a failing state logs once */
    bool joined;         /* a group member id was seen (see note_member) */
    bool assigned_once;  /* a first assignment arrived (rebalance callback) */
    bool keep_rk;        /* destroying rk would abort: left to process exit */
    pc_kafka_receiver_stats stats; /* atomic counters */
} krecv;

static void count(int64_t *c, int64_t n)
{
    __atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

static bool stopping(krecv *R)
{
    return __atomic_load_n(&R->stop, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------ callbacks -- */

/* Pauses or resumes |parts|; logs a failure (the next attempt repeats it). */
static void set_paused(krecv *R, rd_kafka_topic_partition_list_t *parts, bool pause)
{
    rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(R->rk, parts)
                                    : rd_kafka_resume_partitions(R->rk, parts);
    if (err)
        pc_log(PC_LOG_WARN, R->id, "cannot %s partitions: %s", pause ? "pause" : "resume",
               rd_kafka_err2str(err));
}

/* Runs on the consumer thread inside rd_kafka_consumer_poll / close. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    krecv *R = opaque;
    bool cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *e = NULL;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        R->assigned_once = true;
        if (cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        if (R->paused) set_paused(R, parts, true);
        pc_log(PC_LOG_INFO, R->id, "assigned %d partitions", parts->cnt);
    } else {
        /* revoked or lost: forget their offsets (see "Rebalances") */
        for (int i = 0; i < parts->cnt; i++)
            rd_kafka_topic_partition_list_del(R->offsets, parts->elems[i].topic,
                                              parts->elems[i].partition);
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            pc_log(PC_LOG_WARN, R->id, "rebalance error: %s", rd_kafka_err2str(err));
        if (cooperative)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
        pc_log(PC_LOG_INFO, R->id, "revoked %d partitions%s", parts->cnt,
               rd_kafka_assignment_lost(rk) ? " (lost)" : "");
    }
    if (e) {
        pc_log(PC_LOG_WARN, R->id, "rebalance: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    krecv *R = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[256];
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        pc_log(PC_LOG_ERROR, R->id, "fatal consumer error, restart needed: %s", buf);
        return;
    }
    if (__atomic_exchange_n(&R->last_err, err, __ATOMIC_ACQ_REL) != err)
        pc_log(PC_LOG_WARN, R->id, "%s: %s%s", rd_kafka_err2name(err), reason,
               pc_kafka_error_hint(err, reason));
}

/* --------------------------------------------------------------- commit -- */

/* Remembers that |m| is handled once the current batch is: offset + 1. */
static void remember(krecv *R, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_topic_partition_t *p =
        rd_kafka_topic_partition_list_find(R->offsets, topic, m->partition);
    if (!p) p = rd_kafka_topic_partition_list_add(R->offsets, topic, m->partition);
    if (m->offset + 1 > p->offset) p->offset = m->offset + 1;
}

/* Commits the remembered offsets synchronously; on failure keeps them. */
static void commit(krecv *R)
{
    if (!R->offsets->cnt) return;
    rd_kafka_resp_err_t err = rd_kafka_commit(R->rk, R->offsets, 0);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < R->offsets->cnt && !err; i++) err = R->offsets->elems[i].err;
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
        count(&R->stats.commits, 1);
        rd_kafka_topic_partition_list_destroy(R->offsets);
        R->offsets = rd_kafka_topic_partition_list_new(8);
        return;
    }
    count(&R->stats.commit_failures, 1);
    pc_log(PC_LOG_WARN, R->id, "offset commit failed (kept for the next commit): %s",
           rd_kafka_err2str(err));
}

/* ------------------------------------------------------------- messages -- */

/*
 * Keeps room for SPAN_HEADROOM more spans in |b|, growing it geometrically.
 * Why: a batch here gathers a thousand messages of ten spans each. When each
 * message grew the span array to just what it needed, every span gathered so
 * far was copied once per message (quadratic: 30% of the storage collector's
 * CPU, and the abandoned copies, all in the batch's arena, were most of its
 * RSS). The protobuf reader now doubles too; this keeps the JSON decoders and
 * the first doublings off that path.
 */
static void room(pc_batch *b)
{
    if (b->cap - b->n >= SPAN_HEADROOM) return;
    size_t want = b->n + SPAN_HEADROOM;
    pc_batch_reserve(b, want > 2 * b->cap ? want : 2 * b->cap);
}

/* Decodes one polled message into |b| (or logs its error). */
static void handle(krecv *R, pc_batch *b, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
        if (__atomic_exchange_n(&R->last_err, m->err, __ATOMIC_ACQ_REL) != (int)m->err)
            pc_log(PC_LOG_WARN, R->id, "consumer: %s", rd_kafka_message_errstr(m));
        return;
    }
    __atomic_store_n(&R->last_err, 0, __ATOMIC_RELEASE);
    count(&R->stats.messages, 1);
    remember(R, m);
    rd_kafka_timestamp_type_t tst;
    int64_t ts = rd_kafka_message_timestamp(m, &tst);
    int64_t ts_ns = 0; /* a producer's timestamp past int64 ns counts as none */
    if (tst != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts > 0 && pc_time_add_ms(0, ts, &ts_ns))
        ts_ns = 0;
    room(b);
    pc_kafka_decode_result r;
    switch (pc_kafka_decode(b, R->encoding, m->payload, m->len, ts_ns, &r)) {
    case PC_KAFKA_SPANS:
        count(&R->stats.spans, (int64_t)r.spans);
        if (r.rejected) {
            count(&R->stats.rejected_spans, r.rejected);
            pc_log(PC_LOG_WARN, R->id, "%s [%d] offset %lld: %lld spans left out: %s",
                   rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
                   (long long)r.rejected, r.error);
        }
        break;
    case PC_KAFKA_SUMMARY: count(&R->stats.summaries, 1); break;
    case PC_KAFKA_POISON:
        count(&R->stats.poison, 1);
        pc_log(PC_LOG_WARN, R->id, "skipping undecodable message %s [%d] offset %lld (%zu bytes): %s",
               rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, m->len,
               r.error);
        break;
    }
}

/*
 * Records whether the consumer has a group member id, i.e. whether a JoinGroup
 * may have chosen the assignor (see await_first_assignment). Sampled on idle
 * polls until the first assignment, after which it is never needed again.
 */
static void note_member(krecv *R)
{
    if (R->joined || R->assigned_once) return;
    char *id = rd_kafka_memberid(R->rk);
    if (id && *id) R->joined = true;
    if (id) rd_kafka_mem_free(R->rk, id);
}

/* Polls messages into |b| until max_batch_spans, max_batch_wait after the
 * first message, no message ready (once there is one), or stop. */
static void fill(krecv *R, pc_batch *b)
{
    int64_t deadline = 0;
    while (!stopping(R) && b->n < (size_t)R->cfg->max_batch_spans) {
        if (deadline && pc_time_mono_ns() >= deadline) break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(R->rk, deadline ? 0 : POLL_MS);
        if (!m) {
            if (deadline) break; /* caught up: pass on what we have */
            note_member(R);
            continue;
        }
        if (!deadline && !m->err) deadline = pc_time_mono_ns() + R->cfg->max_batch_wait_ms * NS_PER_MS;
        handle(R, b, m);
        rd_kafka_message_destroy(m);
    }
}

/* Serves the consumer for |ms| while the partitions are paused. A message that
 * still arrives (fetched before the pause) is not ours to take now: seek its
 * partition back so it is read again after the resume. */
static void wait_serving(krecv *R, int64_t ms)
{
    int64_t until = pc_time_mono_ns() + ms * NS_PER_MS;
    while (!stopping(R)) {
        int64_t left = (until - pc_time_mono_ns()) / NS_PER_MS;
        if (left <= 0) return;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(R->rk, left < POLL_MS ? (int)left : POLL_MS);
        if (!m) continue;
        if (!m->err) {
            rd_kafka_topic_partition_list_t *p = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(p, rd_kafka_topic_name(m->rkt), m->partition)->offset =
                m->offset;
            rd_kafka_error_t *e = rd_kafka_seek_partitions(R->rk, p, 5000);
            if (e) {
                pc_log(PC_LOG_WARN, R->id, "seek back: %s", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
            rd_kafka_topic_partition_list_destroy(p);
        } else {
            handle(R, NULL, m); /* errors only: logs */
        }
        rd_kafka_message_destroy(m);
    }
}

static void pause_all(krecv *R, bool pause)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(R->rk, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
        if (parts->cnt) set_paused(R, parts, pause);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    R->paused = pause;
}

/*
 * Offers |b| (taking it over) to next until it is accepted, then commits.
 * PC_RETRY: pause, back off (doubling up to max_retry_backoff) while serving
 * the consumer, offer again. PC_DROP: next can never store these spans (e.g.
 * rejected as invalid for good), so retrying would stall the partitions
 * forever; they are logged, counted and committed. On stop, one more offer,
 * then the batch is abandoned without a commit (it is redelivered).
 */
static void deliver(krecv *R, pc_batch *b)
{
    int64_t backoff = R->cfg->retry_backoff_ms;
    bool last = stopping(R);
    for (;;) {
        pc_result r = pc_consume(&R->next, pc_batch_ref(b));
        if (r == PC_OK) {
            count(&R->stats.delivered_spans, (int64_t)b->n);
            commit(R);
            break;
        }
        if (r == PC_DROP) {
            count(&R->stats.dropped_spans, (int64_t)b->n);
            pc_log(PC_LOG_ERROR, R->id, "pipeline refused %zu spans for good; dropped, offsets committed",
                   b->n);
            commit(R);
            break;
        }
        count(&R->stats.retries, 1);
        if (last) {
            pc_log(PC_LOG_WARN, R->id,
                   "stopping: %zu spans not accepted; left uncommitted for redelivery", b->n);
            break;
        }
        if (!R->paused) {
            pc_log(PC_LOG_INFO, R->id, "pipeline busy: pausing partitions, retrying %zu spans",
                   b->n);
            pause_all(R, true);
        }
        wait_serving(R, backoff);
        backoff = backoff * 2 < R->cfg->max_retry_backoff_ms ? backoff * 2
                                                             : R->cfg->max_retry_backoff_ms;
        last = stopping(R);
    }
    if (R->paused) {
        pause_all(R, false);
        pc_log(PC_LOG_INFO, R->id, "pipeline accepts again: partitions resumed");
    }
    pc_batch_unref(b);
}

static void *consumer_main(void *arg)
{
    krecv *R = arg;
    pc_thread_name("kafka-consume");
    for (;;) {
        pc_batch *b = pc_batch_create(NULL);
        b->received_ns = pc_time_now_ns();
        /* room for a whole batch at once (see room()); untouched pages cost no RSS */
        size_t first = (size_t)R->cfg->max_batch_spans + SPAN_HEADROOM;
        pc_batch_reserve(b, first < FIRST_RESERVE_MAX ? first : FIRST_RESERVE_MAX);
        fill(R, b);
        if (b->n) {
            deliver(R, b);
        } else {
            pc_batch_unref(b);
            commit(R); /* only poison or summaries: nothing to wait for */
        }
        if (stopping(R)) break;
    }
    return NULL;
}

/* ------------------------------------------------------------ lifecycle -- */

static int set(krecv *R, const char *key, const char *name, const char *value)
{
    return pc_kafka_conf_set(R->conf, R->id, key, name, value);
}

/* Builds the consumer configuration from the settings. 0 / -1 after logging. */
static int build_conf(krecv *R)
{
    const krecv_cfg *c = R->cfg;
    char session_ms[32];
    snprintf(session_ms, sizeof(session_ms), "%lld", (long long)c->session_timeout_ms);
    R->conf = rd_kafka_conf_new();
    if (pc_kafka_conn_apply(R->conf, &c->conn, R->id) || set(R, "group_id", "group.id", c->group_id) ||
        set(R, "kafka", "enable.auto.commit", "false") ||
        set(R, "kafka", "enable.auto.offset.store", "false") ||
        set(R, "kafka", "partition.assignment.strategy", "cooperative-sticky") ||
        set(R, "session_timeout", "session.timeout.ms", session_ms) ||
        set(R, "initial_offset", "auto.offset.reset",
            initial_offsets[pc_kafka_find_name(initial_offsets, c->initial_offset)]))
        return -1;
    /*
     * Memory while draining a backlog (see fetch_max_bytes, queue_max_bytes).
     * librdkafka's defaults prefetch up to 64 MB of queued messages plus 50 MB
     * fetches in flight, which with decompression held a storage collector at
     * 0.6-1.2 GB RSS; a few MB ahead of the batch being filled keep it busy
     * just as well. A message larger than a fetch's limits is still returned
     * whole (the brokers give the first batch of a partition regardless), so
     * the limit on one response is the larger of the two plus framing.
     */
    int64_t fetch = c->fetch_max_bytes;
    int64_t biggest = fetch > c->max_message_bytes ? fetch : c->max_message_bytes;
    int64_t queue_kb = c->queue_max_bytes / 1024 > 0 ? c->queue_max_bytes / 1024 : 1;
    if (pc_kafka_conf_set_int(R->conf, R->id, "fetch_max_bytes", "max.partition.fetch.bytes",
                              fetch) ||
        pc_kafka_conf_set_int(R->conf, R->id, "fetch_max_bytes", "fetch.max.bytes", fetch) ||
        pc_kafka_conf_set_int(R->conf, R->id, "max_message_bytes", "receive.message.max.bytes",
                              biggest + 65536 > 100000000 ? biggest + 65536 : 100000000) ||
        pc_kafka_conf_set_int(R->conf, R->id, "queue_max_bytes", "queued.max.messages.kbytes",
                              queue_kb))
        return -1;
    rd_kafka_conf_set_opaque(R->conf, R);
    rd_kafka_conf_set_rebalance_cb(R->conf, on_rebalance);
    rd_kafka_conf_set_error_cb(R->conf, on_error);
    return 0;
}

static void krecv_destroy(void *ctx);

static void *krecv_create(const char *id, const void *cfgp, const pc_consumer *next)
{
    const krecv_cfg *cfg = cfgp;
    if (!next) {
        pc_log(PC_LOG_ERROR, id, "receiver is not in any pipeline");
        return NULL;
    }
    krecv *R = pc_xcalloc(1, sizeof(*R));
    R->id = pc_xstrdup(id);
    R->cfg = cfg;
    R->next = *next;
    R->offsets = rd_kafka_topic_partition_list_new(8);
    char err[256];
    if (krecv_validate(cfg, err, sizeof(err)) < 0) {
        pc_log(PC_LOG_ERROR, id, "%s", err);
        krecv_destroy(R);
        return NULL;
    }
    R->encoding = (pc_kafka_encoding)pc_kafka_encoding_parse(cfg->encoding);
    if (build_conf(R) < 0) {
        krecv_destroy(R);
        return NULL;
    }
    return R;
}

static int krecv_start(void *ctx, pc_host *host)
{
    (void)host;
    krecv *R = ctx;
    if (R->rk) return 0;
    char err[512];
    R->rk = rd_kafka_new(RD_KAFKA_CONSUMER, R->conf, err, sizeof(err));
    if (!R->rk) {
        pc_log(PC_LOG_ERROR, R->id, "cannot create the consumer: %s", err);
        return -1;
    }
    R->conf = NULL; /* rd_kafka_new took it */
    rd_kafka_poll_set_consumer(R->rk); /* callbacks are served by the consumer thread's polls */
    const krecv_cfg *c = R->cfg;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)c->topics.n);
    for (size_t i = 0; i < c->topics.n; i++)
        rd_kafka_topic_partition_list_add(topics, c->topics.v[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(R->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        pc_log(PC_LOG_ERROR, R->id, "topics: cannot subscribe: %s", rd_kafka_err2str(e));
        return -1;
    }
    int rc = pthread_create(&R->thread, NULL, consumer_main, R);
    if (rc != 0) {
        pc_log(PC_LOG_ERROR, R->id, "cannot start the consumer thread: %s", strerror(rc));
        return -1;
    }
    R->thread_running = true;
    pc_log(PC_LOG_INFO, R->id, "consuming %s%s from %s as group %s (encoding %s)", c->topics.v[0],
           c->topics.n > 1 ? " and more" : "", c->conn.brokers, c->group_id, c->encoding);
    return 0;
}

/*
 * librdkafka before 2.2.1 (Debian 12 ships 2.0.2) aborts in rd_kafka_destroy
 * ("rd_kafka_sticky_assignor_state_destroy: Assertion `assignor_state'") when
 * a cooperative-sticky consumer is destroyed after a JoinGroup response chose
 * the assignor and before a SyncGroup response gave it its first assignment:
 * the assignor's state is created by that first assignment, and the group's
 * destructor hands it, still NULL, to a destroy callback that asserts it
 * (librdkafka issue #4312, fixed by PR #4381). Closing, unsubscribing or a
 * close queue first do not help: none resets the assignor, and a closing
 * consumer discards the SyncGroup response.
 *
 * So, on the shutdown thread after the consumer thread ended and before the
 * close: when the consumer has had a member id (it joined or is joining) but
 * no assignment, it is served (rebalance callbacks run here) for at most
 * session_timeout until the first assignment arrives (a leader that never
 * syncs is expired by the broker within its session timeout, and the next
 * generation assigns). Messages fetched meanwhile are dropped, uncommitted:
 * they are redelivered. Returns false when it is still unassigned then: the
 * caller must not destroy the handle (it is left to the process exit).
 */
static bool await_first_assignment(krecv *R)
{
    note_member(R);
    if (R->assigned_once || !R->joined) return true;
    pc_log(PC_LOG_INFO, R->id,
           "stopping before the group's first assignment: waiting up to %lld ms for it "
           "(librdkafka issue #4312)",
           (long long)R->cfg->session_timeout_ms);
    int64_t until = pc_time_mono_ns() + R->cfg->session_timeout_ms * NS_PER_MS;
    while (!R->assigned_once && pc_time_mono_ns() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(R->rk, POLL_MS);
        if (!m) continue;
        if (m->err) handle(R, NULL, m); /* errors only: logs */
        rd_kafka_message_destroy(m);
    }
    if (R->assigned_once) return true;
    pc_log(PC_LOG_WARN, R->id,
           "no first assignment within session_timeout: the consumer is closed but not "
           "destroyed (librdkafka issue #4312 would abort); the process exit frees it");
    return false;
}

/*
 * Stops the consumer thread (it offers its batch once more, see deliver),
 * waits for a first assignment still pending (await_first_assignment), then
 * closes the consumer, leaving the group. Safe without start and twice.
 */
static void krecv_shutdown(void *ctx)
{
    krecv *R = ctx;
    if (!R) return;
    __atomic_store_n(&R->stop, 1, __ATOMIC_RELEASE);
    if (R->thread_running) {
        pthread_join(R->thread, NULL);
        R->thread_running = false;
    }
    if (R->rk && !R->closed) {
        R->keep_rk = !await_first_assignment(R);
        rd_kafka_resp_err_t e = rd_kafka_consumer_close(R->rk);
        if (e) pc_log(PC_LOG_WARN, R->id, "closing the consumer: %s", rd_kafka_err2str(e));
        R->closed = true;
    }
}

static void krecv_destroy(void *ctx)
{
    krecv *R = ctx;
    if (!R) return;
    krecv_shutdown(R);
    if (R->rk && !R->keep_rk) rd_kafka_destroy(R->rk);
    if (R->conf) rd_kafka_conf_destroy(R->conf);
    if (R->offsets) rd_kafka_topic_partition_list_destroy(R->offsets);
    free(R->id);
    free(R);
}

void pc_kafka_receiver_get_stats(void *ctx, pc_kafka_receiver_stats *out)
{
    krecv *R = ctx;
    int64_t *src = (int64_t *)&R->stats, *dst = (int64_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(int64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/*
 * The metrics op (component.h): the stats counters under the OpenTelemetry
 * Collector's names (accepted = delivered, refused = refused for good; each
 * retry is counted apart), and the lag of each assigned partition: the high
 * watermark minus the consumer's position, both from librdkafka's local state
 * (no broker round trip). Why position and not the committed offset: reading
 * committed offsets asks the broker, which a scrape must not wait for; while
 * the pipeline refuses a batch the partitions are paused, which the retries
 * counter shows.
 */
static void krecv_metrics(void *ctx, pc_metrics_out *out)
{
    krecv *R = ctx;
    pc_kafka_receiver_stats st;
    pc_kafka_receiver_get_stats(R, &st);
    const char *const rl[] = {"receiver", R->id, "transport", "kafka", NULL};
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "otelcol_receiver_accepted_spans",
                       "Number of spans successfully pushed into the pipeline.", rl,
                       (double)st.delivered_spans);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "otelcol_receiver_refused_spans",
                       "Number of spans that could not be pushed into the pipeline.", rl,
                       (double)st.dropped_spans);
    const char *const dl[] = {"receiver", R->id, "reason", "rejected", NULL};
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_receiver_dropped_spans",
                       "Number of spans a receiver read but left out while answering success "
                       "(partial success, no pipeline for the signal), by reason.",
                       dl, (double)st.rejected_spans);
    const char *const l[] = {"receiver", R->id, NULL};
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_kafka_receiver_messages",
                       "Kafka messages read.", l, (double)st.messages);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_kafka_receiver_poison_messages",
                       "Undecodable Kafka messages skipped (offsets committed).", l,
                       (double)st.poison);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_kafka_receiver_retries",
                       "Batches the pipeline asked to retry (partitions paused meanwhile).", l,
                       (double)st.retries);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_kafka_receiver_commit_failures",
                       "Offset commits that failed (kept for the next one).", l,
                       (double)st.commit_failures);
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (!R->rk || rd_kafka_assignment(R->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return;
    rd_kafka_position(R->rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(R->rk, tp->topic, tp->partition, &lo, &hi) ||
            hi < 0)
            continue;
        /* no position yet (nothing fetched): everything from the low watermark is behind */
        int64_t pos = tp->offset >= 0 ? tp->offset : lo >= 0 ? lo : hi;
        char part[16];
        snprintf(part, sizeof(part), "%d", (int)tp->partition);
        const char *const pl[] = {"receiver", R->id, "topic", tp->topic, "partition", part, NULL};
        pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_kafka_consumer_lag",
                           "Messages behind the high watermark, per assigned partition "
                           "(from the consumer's position).",
                           pl, (double)(hi > pos ? hi - pos : 0));
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

const pc_component_ops pc_kafka_receiver_ops = {
    .type = "kafka",
    .kind = PC_RECEIVER,
    .options = options,
    .config_size = sizeof(krecv_cfg),
    .validate = krecv_validate,
    .create = krecv_create,
    .start = krecv_start,
    .shutdown = krecv_shutdown,
    .destroy = krecv_destroy,
    .metrics = krecv_metrics,
};
