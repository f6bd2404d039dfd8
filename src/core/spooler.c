/*
 * spooler.c - an exporter's disk spool and its drainer thread (see spooler.h).
 *
 * Sits between an exporter (kafka, clickhouse) and spool.c: the exporter
 * appends what its destination did not take in time; the drainer thread
 * replays it, oldest first, through the exporter's send function.
 *
 * Spooled payload, version 1 (what this file puts in each spool record): one
 * codec byte, then the exporter's record: 0 = as is, 1 = a zstd frame of it
 * (level 1, used when it saves at least an eighth). Batches are JSON or
 * protobuf text that compresses 4-8x, so the same max_size holds that many
 * more, and an outage costs that much less disk I/O. A codec this build does
 * not know is a record that can never be delivered: logged and dropped.
 *
 * The drainer sleeps on a condition variable: an append or a kick wakes it
 * when idle, and a kick cuts a retry wait short. Two states are logged as
 * episodes (struct episode): refusals (full, disk error) and spooling (the
 * destination did not take batches in time, until the spool is drained). An
 * episode is logged on the change into the state and out of it, never per
 * batch, and its start at most once per EPISODE_LOG_MS, its end only when
 * its start was: a spool kept full by a load the destination cannot follow
 * refuses, takes a batch once a drained record frees room, refuses again,
 * many times a second, and a destination that keeps up only just spools a
 * batch and drains it as often.
 */
#include "spooler.h"

#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
#define IDLE_WAIT_MS 1000 /* an idle drainer looks again this often anyway */
#define WINDOW 32         /* records in flight at once without a flush function */
#define EPISODE_LOG_MS 10000 /* an episode's start is logged at most this often */
enum { CODEC_RAW = 0, CODEC_ZSTD = 1 };

/* A state logged as an episode (see the top). Atomics. */
typedef struct episode {
    int told;       /* this episode's start was logged: its end is logged too */
    int64_t logged; /* monotonic ns of the last start logged; 0 = none */
} episode;

/* The state began: true when its start is to be logged (once per EPISODE_LOG_MS). */
static bool episode_begins(episode *e)
{
    int64_t now = pc_time_mono_ns(), last = __atomic_load_n(&e->logged, __ATOMIC_ACQUIRE);
    if (last && now - last < EPISODE_LOG_MS * 1000000LL) return false;
    if (!__atomic_compare_exchange_n(&e->logged, &last, now, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return false;
    __atomic_store_n(&e->told, 1, __ATOMIC_RELEASE);
    return true;
}

/* The state ended: true when its end is to be logged (its start was). */
static bool episode_ends(episode *e)
{
    return __atomic_exchange_n(&e->told, 0, __ATOMIC_ACQ_REL) != 0;
}

/* The records a round has begun and not yet ended, oldest first. */
typedef struct inflight {
    void *handle[PC_SPOOL_MAX_AHEAD]; /* NULL: not begun (answered retry, or drop) */
    uint64_t id[PC_SPOOL_MAX_AHEAD];
    size_t size[PC_SPOOL_MAX_AHEAD];
    bool drop[PC_SPOOL_MAX_AHEAD]; /* does not unpack: answered PC_DROP */
    int n;
} inflight;

struct pc_spooler {
    char *id;
    pc_spool *sp;
    pc_spooler_begin_fn begin;
    pc_spooler_end_fn end;
    pc_spooler_flush_fn flush; /* NULL: none */
    bool first;                /* spool.after 0: every batch is spooled first */
    void *ctx;
    pc_buf unpacked; /* drainer only: the last decompressed record */
    inflight flight; /* drainer only: what its round has begun */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running;
    bool stop;   /* under mu */
    bool kicked; /* under mu: wake now */
    bool idle;   /* under mu: the drainer found the spool empty and waits */

    /* atomics */
    uint64_t appended, drained, dropped, refused;
    int refusing;          /* the last append was refused */
    int refuse_rc;         /* its result */
    episode refusal;       /* refusing's log */
    int64_t pending_wall;  /* wall ns since records became pending; 0 = none */
    episode spooling;      /* pending_wall's log (not in spool-first mode) */
};

int pc_spooler_validate(const pc_spooler_cfg *c, int64_t timeout_ms, bool first_ok, char *err,
                        size_t errlen)
{
    if (!pc_spooler_enabled(c)) return 0;
    if (c->after_ms == 0 && !first_ok) {
        snprintf(err, errlen, "spool.after: 0 (spool first) is not supported by this exporter");
        return -1;
    }
    if (pc_spool_fsync_parse(c->fsync) < 0) {
        snprintf(err, errlen, "spool.fsync: must be always or batch");
        return -1;
    }
    if (c->after_ms > timeout_ms) {
        snprintf(err, errlen, "spool.after: must not be longer than timeout");
        return -1;
    }
    return 0;
}

bool pc_spooler_enabled(const pc_spooler_cfg *c)
{
    return c->directory && c->directory[0];
}

bool pc_spooler_first(const pc_spooler_cfg *c)
{
    return pc_spooler_enabled(c) && c->after_ms == 0;
}

pc_spooler *pc_spooler_create(const char *id, const pc_spooler_cfg *c, pc_spooler_begin_fn begin,
                              pc_spooler_end_fn end, pc_spooler_flush_fn flush, void *ctx)
{
    pc_spool_config sc = {
        .directory = c->directory,
        .max_size = (uint64_t)c->max_size,
        .fsync = pc_spool_fsync_parse(c->fsync) == PC_SPOOL_FSYNC_ALWAYS ? PC_SPOOL_FSYNC_ALWAYS
                                                                         : PC_SPOOL_FSYNC_BATCH,
    };
    char err[512];
    pc_spool *sp = pc_spool_create(&sc, err, sizeof(err));
    if (!sp) {
        pc_log(PC_LOG_ERROR, id, "%s", err);
        return NULL;
    }
    pc_spooler *s = pc_xcalloc(1, sizeof(*s));
    s->id = pc_xstrdup(id);
    s->sp = sp;
    s->begin = begin;
    s->end = end;
    s->flush = flush;
    s->first = c->after_ms == 0;
    s->ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    pc_cond_init_mono(&s->cv);
    pc_spool_stats st;
    pc_spool_get_stats(sp, &st);
    if (st.records && !s->first) {
        s->pending_wall = pc_time_now_ns();
        s->spooling = (episode){.told = 1, .logged = pc_time_mono_ns()}; /* "spool drained" ends it */
        pc_log(PC_LOG_INFO, id, "spool %s holds %llu batches (%llu bytes) from before; draining",
               c->directory, (unsigned long long)st.records, (unsigned long long)st.bytes);
    }
    return s;
}

/* Waits until kicked, stopped, or |ms| passed; |idle|: because the spool is
 * empty (an append wakes it then). Returns false when stopping. */
static bool wait_ms(pc_spooler *s, int64_t ms, bool idle)
{
    int64_t end = pc_time_mono_ns() + ms * 1000000LL;
    pthread_mutex_lock(&s->mu);
    s->idle = idle;
    while (!s->stop && !s->kicked)
        if (pc_cond_wait_until(&s->cv, &s->mu, end) == ETIMEDOUT) break;
    s->kicked = s->idle = false;
    bool go = !s->stop;
    pthread_mutex_unlock(&s->mu);
    return go;
}

static bool stopping(pc_spooler *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/*
 * The exporter's record in the spooled payload |p| of |n| bytes: *|rec|
 * points into |p| or into s->unpacked (valid until the next call). 0, or -1
 * after logging (an unknown codec, or a frame that does not decompress).
 */
static int unpack(pc_spooler *s, const void *p, size_t n, const void **rec, size_t *rn)
{
    const unsigned char *b = p;
    if (n >= 1 && b[0] == CODEC_RAW) {
        *rec = b + 1;
        *rn = n - 1;
        return 0;
    }
    if (n >= 1 && b[0] == CODEC_ZSTD) {
        unsigned long long want = ZSTD_getFrameContentSize(b + 1, n - 1);
        if (want != ZSTD_CONTENTSIZE_ERROR && want != ZSTD_CONTENTSIZE_UNKNOWN &&
            want <= PC_SPOOL_MAX_RECORD) {
            pc_buf_reset(&s->unpacked);
            pc_buf_reserve(&s->unpacked, (size_t)want + 1);
            size_t got = ZSTD_decompress(s->unpacked.data, (size_t)want + 1, b + 1, n - 1);
            if (!ZSTD_isError(got) && got == want) {
                *rec = s->unpacked.data;
                *rn = got;
                return 0;
            }
        }
        pc_log(PC_LOG_ERROR, s->id, "a spooled batch of %zu bytes does not decompress", n);
        return -1;
    }
    pc_log(PC_LOG_ERROR, s->id, "a spooled batch of %zu bytes has an unknown codec %d", n,
           n ? b[0] : -1);
    return -1;
}

/*
 * Reads up to |most| records (and PC_SPOOLER_WINDOW_BYTES of them with a
 * flush function) after those in |f|, the first of a round from the oldest
 * pending, begins each, then calls the flush function. Returns how many were
 * added; the first read's result goes to *|rc| when |f| was empty; *|down| is
 * set when begin said the destination is down.
 */
static int begin_window(pc_spooler *s, inflight *f, int most, int *rc, bool *down)
{
    int k0 = f->n;
    size_t bytes = 0;
    while (f->n - k0 < most && (!s->flush || bytes < PC_SPOOLER_WINDOW_BYTES)) {
        int k = f->n;
        const void *p;
        size_t n;
        int r = k == 0 ? pc_spool_peek(s->sp, &p, &n, &f->id[k])
                       : pc_spool_peek_next(s->sp, &p, &n, &f->id[k]);
        if (r != 0) {
            if (k == 0) *rc = r;
            break;
        }
        f->size[k] = n;
        f->handle[k] = NULL;
        f->n++;
        const void *rec;
        size_t rn;
        f->drop[k] = unpack(s, p, n, &rec, &rn) < 0;
        if (f->drop[k]) continue;
        bytes += rn;
        f->handle[k] = s->begin(s->ctx, rec, rn);
        if (!f->handle[k]) { /* the destination is down: no use reading on */
            *down = true;
            break;
        }
    }
    if (f->n > k0 && s->flush) s->flush(s->ctx);
    return f->n - k0;
}

/*
 * Ends the oldest |m| records of |f| in order and removes them,
 * acknowledging what was delivered or dropped while *|retry| is false; the
 * first record answered retry (or not acknowledged) sets it, and the rest are
 * only collected, to be offered again.
 */
static void end_records(pc_spooler *s, inflight *f, int m, bool *retry)
{
    for (int i = 0; i < m; i++) {
        pc_result res = f->drop[i]     ? PC_DROP
                        : f->handle[i] ? s->end(s->ctx, f->handle[i])
                                       : PC_RETRY;
        if (*retry) continue; /* collected, not acknowledged: offered again */
        if (res == PC_RETRY) {
            *retry = true;
            continue;
        }
        if (res == PC_DROP) {
            __atomic_add_fetch(&s->dropped, 1, __ATOMIC_RELAXED);
            pc_log(PC_LOG_ERROR, s->id,
                   "dropped a spooled batch of %zu bytes the destination can never take",
                   f->size[i]);
        } else {
            __atomic_add_fetch(&s->drained, 1, __ATOMIC_RELAXED);
        }
        if (pc_spool_ack(s->sp, f->id[i]) != 0) {
            char why[256];
            pc_log(PC_LOG_ERROR, s->id, "spool: cannot acknowledge a record: %s",
                   pc_spool_error(s->sp, why, sizeof(why)));
            *retry = true;
        }
    }
    f->n -= m;
    memmove(f->handle, f->handle + m, (size_t)f->n * sizeof(f->handle[0]));
    memmove(f->id, f->id + m, (size_t)f->n * sizeof(f->id[0]));
    memmove(f->size, f->size + m, (size_t)f->n * sizeof(f->size[0]));
    memmove(f->drop, f->drop + m, (size_t)f->n * sizeof(f->drop[0]));
}

/*
 * One round: begins a window of records (pc_spooler_create says how many)
 * and ends them in order, acknowledging what was delivered or dropped up to
 * the first retry. With a flush function the round goes on while records are
 * pending: the next window is begun (and flushed) while the previous one is
 * still out, so decoding overlaps sending, and each is ended in turn. Returns
 * the spool's result for the first read (0, PC_SPOOL_EMPTY, PC_SPOOL_IO)
 * through |rc|, and whether a record was answered retry.
 */
static bool drain_round(pc_spooler *s, int *rc)
{
    inflight *f = &s->flight;
    int window = s->flush ? PC_SPOOL_MAX_AHEAD / 2 : WINDOW, ignored = 0;
    bool down = false, retry = false;
    f->n = 0;
    *rc = 0;
    int a = begin_window(s, f, window, rc, &down);
    while (a > 0) {
        int b = s->flush && !down && !stopping(s) ? begin_window(s, f, window, &ignored, &down) : 0;
        end_records(s, f, a, &retry);
        if (retry) {
            end_records(s, f, b, &retry);
            break;
        }
        a = b;
    }
    return retry;
}

static void *drain_main(void *arg)
{
    pc_spooler *s = arg;
    pc_thread_name("spool-drain");
    int64_t retry_ms = 0;
    while (!stopping(s)) {
        int rc;
        bool retry = drain_round(s, &rc);
        if (rc == PC_SPOOL_EMPTY) {
            if (__atomic_exchange_n(&s->pending_wall, 0, __ATOMIC_ACQ_REL) &&
                episode_ends(&s->spooling))
                pc_log(PC_LOG_INFO, s->id, "spool drained");
            if (__atomic_exchange_n(&s->refusing, 0, __ATOMIC_ACQ_REL) &&
                episode_ends(&s->refusal))
                pc_log(PC_LOG_INFO, s->id, "the spool is empty and takes batches again");
            retry_ms = 0;
            wait_ms(s, IDLE_WAIT_MS, true);
        } else if (rc != 0) {
            char why[256];
            pc_log(PC_LOG_ERROR, s->id, "spool: cannot read: %s",
                   pc_spool_error(s->sp, why, sizeof(why)));
            wait_ms(s, RETRY_MAX_MS, false);
        } else if (retry) {
            retry_ms = retry_ms ? retry_ms * 2 : RETRY_MIN_MS;
            if (retry_ms > RETRY_MAX_MS) retry_ms = RETRY_MAX_MS;
            wait_ms(s, retry_ms, false);
        } else {
            retry_ms = 0;
        }
    }
    return NULL;
}

int pc_spooler_start(pc_spooler *s)
{
    if (s->running) return 0;
    s->stop = false;
    int rc = pthread_create(&s->thread, NULL, drain_main, s);
    if (rc != 0) {
        pc_log(PC_LOG_ERROR, s->id, "cannot start the spool drainer: %s", strerror(rc));
        return -1;
    }
    s->running = true;
    return 0;
}

void pc_spooler_stop(pc_spooler *s)
{
    if (!s || !s->running) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = false;
}

void pc_spooler_destroy(pc_spooler *s)
{
    if (!s) return;
    pc_spooler_stop(s);
    pc_spool_destroy(s->sp);
    pc_buf_free(&s->unpacked);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->id);
    free(s);
}

/* Wakes the drainer: always (|only_idle| false), or only when it waits on an
 * empty spool. */
static void wake(pc_spooler *s, bool only_idle)
{
    pthread_mutex_lock(&s->mu);
    if (!only_idle || s->idle) {
        s->kicked = true;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

void pc_spooler_kick(pc_spooler *s)
{
    wake(s, false);
}

/* The spooled payload of the record |rec| of |n| bytes (see the top), in |out|. */
static void pack(const void *rec, size_t n, pc_buf *out)
{
    size_t bound = ZSTD_compressBound(n);
    pc_buf_reserve(out, 1 + bound);
    size_t z = ZSTD_compress(out->data + 1, bound, rec, n, 1);
    if (!ZSTD_isError(z) && z < n - n / 8) {
        out->data[0] = CODEC_ZSTD;
        out->len = 1 + z;
        return;
    }
    out->data[0] = CODEC_RAW;
    out->len = 1;
    pc_buf_append(out, rec, n);
}

int pc_spooler_append(pc_spooler *s, const void *rec, size_t n)
{
    pc_buf payload = PC_BUF_INIT;
    pack(rec, n, &payload);
    int rc = pc_spool_append(s->sp, payload.data, payload.len);
    pc_buf_free(&payload);
    if (rc == 0) {
        __atomic_add_fetch(&s->appended, 1, __ATOMIC_RELAXED);
        int64_t zero = 0;
        if (!s->first &&
            __atomic_compare_exchange_n(&s->pending_wall, &zero, pc_time_now_ns(), false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
            episode_begins(&s->spooling))
            pc_log(PC_LOG_WARN, s->id, "spooling batches the destination did not take in time");
        if (__atomic_exchange_n(&s->refusing, 0, __ATOMIC_ACQ_REL) && episode_ends(&s->refusal))
            pc_log(PC_LOG_INFO, s->id, "the spool takes batches again");
        wake(s, true); /* a drainer in a retry wait keeps waiting */
        return 0;
    }
    __atomic_add_fetch(&s->refused, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->refuse_rc, rc, __ATOMIC_RELEASE);
    if (__atomic_exchange_n(&s->refusing, 1, __ATOMIC_ACQ_REL) == 0 &&
        episode_begins(&s->refusal)) {
        char why[256];
        pc_log(PC_LOG_ERROR, s->id, "the spool refuses batches (%s%s%s); answering retry",
               pc_spool_strerror(rc), rc == PC_SPOOL_IO ? ": " : "",
               rc == PC_SPOOL_IO ? pc_spool_error(s->sp, why, sizeof(why)) : "");
    }
    return rc;
}

void pc_spooler_get_stats(pc_spooler *s, pc_spooler_stats *out)
{
    pc_spool_get_stats(s->sp, &out->spool);
    out->appended = __atomic_load_n(&s->appended, __ATOMIC_RELAXED);
    out->drained = __atomic_load_n(&s->drained, __ATOMIC_RELAXED);
    out->dropped = __atomic_load_n(&s->dropped, __ATOMIC_RELAXED);
    out->refused = __atomic_load_n(&s->refused, __ATOMIC_RELAXED);
}

void pc_spooler_health(pc_spooler *s, pc_health *out)
{
    if (out->state != PC_HEALTH_OK) {
        if (__atomic_load_n(&s->refusing, __ATOMIC_ACQUIRE)) {
            int rc = __atomic_load_n(&s->refuse_rc, __ATOMIC_ACQUIRE);
            char why[160];
            out->state = PC_HEALTH_UNAVAILABLE;
            snprintf(out->reason, sizeof(out->reason), "the spool refuses batches too (%s%s%s)",
                     pc_spool_strerror(rc), rc == PC_SPOOL_IO ? ": " : "",
                     rc == PC_SPOOL_IO ? pc_spool_error(s->sp, why, sizeof(why)) : "");
            return;
        }
        char dest[sizeof(out->reason)];
        snprintf(dest, sizeof(dest), "%s", out->reason);
        out->state = PC_HEALTH_DEGRADED;
        snprintf(out->reason, sizeof(out->reason), "spooling to disk: %.200s", dest);
        return;
    }
    int64_t since = __atomic_load_n(&s->pending_wall, __ATOMIC_ACQUIRE);
    if (!since) return;
    pc_spool_stats st;
    pc_spool_get_stats(s->sp, &st);
    out->state = PC_HEALTH_DEGRADED;
    out->since_ns = since;
    snprintf(out->reason, sizeof(out->reason), "draining %llu spooled batches (%llu bytes)",
             (unsigned long long)st.records, (unsigned long long)st.bytes);
}

void pc_spooler_metrics(pc_spooler *s, const char *exporter, pc_metrics_out *out)
{
    const char *const l[] = {"exporter", exporter, NULL};
    pc_spooler_stats st = {0};
    if (s) pc_spooler_get_stats(s, &st);
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "otelcol_exporter_queue_size",
                       "Batches waiting to be sent (in the disk spool).", l,
                       (double)st.spool.records);
    if (!s) return;
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_spool_records",
                       "Batches in the disk spool not yet acknowledged downstream.", l,
                       (double)st.spool.records);
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_spool_bytes",
                       "Payload bytes of those batches.", l, (double)st.spool.bytes);
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_spool_disk_bytes",
                       "Size of the spool's segment files.", l, (double)st.spool.disk_bytes);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_spool_appended_records",
                       "Batches appended to the spool.", l, (double)st.appended);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_spool_drained_records",
                       "Spooled batches delivered by the drainer.", l, (double)st.drained);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_spool_refused_records",
                       "Batches the spool refused (full or a disk error): answered retry.", l,
                       (double)st.refused);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_spool_dropped_records",
                       "Spooled batches the destination can never take.", l,
                       (double)st.dropped);
}
