/*
 * local.c - the `local` exporter: the embedded store's component and writer.
 *
 * Data flow: normalize → consume() (encodes the rows: local_rows.h) → queue →
 * writer thread → SQLite (WAL) file
 * <directory>/prela.db, read back by the query receiver through store(); the
 * search text of each committed transaction → the index thread (local_index.h)
 * → <directory>/prela-search.db.
 *
 * Group commit: consume() appends its batch to a queue and blocks on a condvar.
 * One writer thread writes what is queued in transactions of at most
 * PC_LOCAL_TXN_MAX spans (local.h) with prepared statements (local_writer.c has
 * the schema and SQL), commits, then wakes every waiter whose batch is wholly
 * committed: PC_OK means every span of it committed. Batches queued since the
 * last transaction go first (take_chunk); a batch larger than a transaction is
 * "started" and written over several. A transaction writing a huge batch
 * commits early when a small batch waits (write_slices): the small one waits
 * for about one chunk of PC_LOCAL_TXN_SPANS spans and one of CUT_EVERY, not
 * for the whole huge batch. A waiter that gives up after `timeout` answers
 * PC_RETRY but its batch is still written (harmless: spans are deduplicated by
 * (project_id, trace_id, span_id)). A failed transaction is rolled back and
 * the batches with spans in it answer PC_RETRY; the rest of them is never
 * written, their chunks already committed stay (a re-send is deduplicated, and
 * trace summaries count only spans really inserted, so it is exact).
 *
 * Sizes, measured with 100k-span batches of random trace ids on 2 shared,
 * heavily loaded cores: random-key indexes make every commit rewrite most of
 * their leaf pages, so smaller transactions cost more CPU per span. Four such
 * batches alone cost the collector 12-14 CPU-s in one transaction each, 13 s
 * in transactions of 32768 spans, 15-17 s of 8192, 21 s of 2000. But a small
 * batch arriving during a commit waits for it, and a 32768-span commit took
 * 0.2-0.6 s (8192: 20-80 ms): a neighbour's p99 beside such a batch was
 * 1.1-2.4 s with 32768, 0.2-0.3 s with 8192 (2.1-2.4 s before chunking).
 * Hence at most PC_LOCAL_TXN_MAX = 8192, and chunks of PC_LOCAL_TXN_SPANS =
 * 1024 and CUT_EVERY = 256 once someone waits (the cost is paid only then).
 * Group commits of 100-span requests are below every threshold (no change).
 * (Those figures are schema 2's, whose random-key span indexes made commits
 * costly; schema 3 appends spans in ingest order, local_schema.c.)
 * local_checkpoint.c checkpoints the WAL on a thread of its own (passive every
 * 4 MB; past 64 MB a restart, which first holds new reads back, at most 100 ms,
 * until the reads in flight end, the writer committing meanwhile), so it
 * stays bounded while queries run. local_builder.c builds the stats rollups
 * beside the writer.
 *
 * Retention: traces first ingested (created_ns, not event time, so old example
 * timestamps stay readable) longer ago than `retention` are deleted with their
 * spans at start and hourly, on the writer thread, a chunk of traces per
 * transaction with queued batches written in between.
 */
#include "local.h"

#include "files.h"
#include "local_builder.h"
#include "local_checkpoint.h"
#include "local_rows.h"
#include "local_store.h"
#include "local_txn.h"
#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define NS_PER_MS 1000000LL
#define CUT_EVERY 256 /* least spans of a huge batch per transaction; looks between */
#define PURGE_EVERY_NS (3600LL * 1000 * NS_PER_MS)
#define LOG_EVERY_NS (10LL * 1000 * NS_PER_MS) /* rate limit of repeated warnings */

/* ------------------------------------------------------------- settings -- */

typedef struct local_cfg {
    char *directory;
    int64_t retention_ms;
    char *synchronous;
    int64_t queue_size;
    int64_t timeout_ms;
    int64_t query_timeout_ms;
    int64_t compression_sample;
    int64_t rollup_quiet_ms;
    int64_t rollup_build_limit_ms;
    int64_t rollup_live_ms;
} local_cfg;

static const pc_option options[] = {
    {"directory", PC_OPT_STRING, "./prela-data", offsetof(local_cfg, directory), 0, 0,
     "data directory, created if missing; the store is <directory>/prela.db"},
    {"retention", PC_OPT_DURATION, "90d", offsetof(local_cfg, retention_ms), 0, 0,
     "delete traces first ingested longer ago than this (checked hourly); 0 keeps forever"},
    {"synchronous", PC_OPT_STRING, "full", offsetof(local_cfg, synchronous), 0, 0,
     "SQLite synchronous mode: full (survives power loss) or normal (survives crashes)"},
    {"queue_size", PC_OPT_INT, "100000", offsetof(local_cfg, queue_size), 1, 100000000,
     "most spans waiting for the writer; past it consume answers retry"},
    {"timeout", PC_OPT_DURATION, "10s", offsetof(local_cfg, timeout_ms), 1, 3600000,
     "how long consume waits for the commit before answering retry"},
    {"query_timeout", PC_OPT_DURATION, "10s", offsetof(local_cfg, query_timeout_ms), 1, 3600000,
     "longest a query API read (list, search, trace) may run; past it the API answers 503"},
    {"compression_sample", PC_OPT_SIZE, "4MiB", offsetof(local_cfg, compression_sample), 0,
     1073741824,
     "JSON values (attributes, events, resource, ...) gathered from the first spans to train the"
     " store's zstd dictionary, after which they are stored compressed; 0 stores them as text"},
    {"rollup_quiet", PC_OPT_DURATION, "10s", offsetof(local_cfg, rollup_quiet_ms), 0, 86400000,
     "stats rollups: an hour's figures are (re)built from its spans, by a thread beside the"
     " writer, once no span was written into it for this long; until then stats read that"
     " hour's spans"},
    {"rollup_build_limit", PC_OPT_DURATION, "2s", offsetof(local_cfg, rollup_build_limit_ms), 1,
     3600000,
     "longest one hour's rollup build may read its spans; a longer one (long traces overlapping"
     " the hour, or a very busy hour) is abandoned and that hour's stats read from its spans,"
     " tried again in 10 min with twice the time (up to 64 times this)"},
    {"rollup_live", PC_OPT_DURATION, "24h", offsetof(local_cfg, rollup_live_ms), 0,
     315360000000LL,
     "stats rollups: the hours starting no longer than this before the wall clock (and later"
     " ones) are kept by the writes themselves, each transaction adding its figures; older"
     " hours (a backfill) are rebuilt once quiet (rollup_quiet); 0 = every hour rebuilt"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

/* Parses the synchronous setting: 1 full, 0 normal, -1 neither. */
static int sync_parse(const char *s)
{
    if (s && strcasecmp(s, "full") == 0) return 1;
    if (s && strcasecmp(s, "normal") == 0) return 0;
    return -1;
}

static int local_validate(const void *cfgp, char *err, size_t errlen)
{
    const local_cfg *c = cfgp;
    if (!c->directory || !*c->directory) {
        snprintf(err, errlen, "directory: must not be empty");
        return -1;
    }
    if (sync_parse(c->synchronous) < 0) {
        snprintf(err, errlen, "synchronous: must be \"full\" or \"normal\", not \"%s\"",
                 c->synchronous ? c->synchronous : "");
        return -1;
    }
    if (c->retention_ms < 0) {
        snprintf(err, errlen, "retention: must not be negative");
        return -1;
    }
    if (c->queue_size < 1) {
        snprintf(err, errlen, "queue_size: must be at least 1");
        return -1;
    }
    if (c->timeout_ms < 1) {
        snprintf(err, errlen, "timeout: must be greater than 0");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- state -- */

enum { JOB_QUEUED = 0, JOB_OK, JOB_FAILED };

typedef struct job {
    struct job *next;
    pc_batch *batch; /* owned until the writer drops it */
    pc_local_rows *rows; /* its spans' rows (local_rows.h), dropped with it */
    size_t off;      /* spans taken into transactions so far (writer) */
    int state;       /* JOB_* */
    bool started;    /* on the started list (writer) */
    bool failed;     /* a transaction with its spans failed (writer) */
    bool abandoned;  /* the waiter timed out; the writer frees the job */
} job;

typedef struct pc_local {
    char *id;
    const local_cfg *cfg;
    char *path;        /* <directory>/prela.db */
    char *search_path; /* <directory>/prela-search.db (local_index.h) */
    int64_t retention_ns; /* 0 = keep forever */
    int64_t timeout_ns;
    size_t queue_size;

    sqlite3 *db; /* writer connection: start(), then the writer thread only */
    pc_local_checkpoint *ckpt; /* checkpoints db's log, from start() on */
    pc_local_index *index; /* the search index writer, from start() on */
    pc_local_builder *builder; /* builds the stats rollups, from start() on */
    pc_local_writer w;
    pc_local_reader *reader;
    pc_local_recent *recent; /* the index's text not yet written, for searches */
    pc_store store;

    pthread_mutex_t mu;     /* everything below */
    pthread_cond_t work_cv; /* writer waits: jobs, stop, purge request */
    pthread_cond_t done_cv; /* waiters: their job or purge request ended; shutdown: encoders */
    bool sync_ready;
    job *head, *tail;    /* queued, none of their spans written yet */
    job *started;        /* partly written, oldest first (writer thread) */
    size_t queued_spans; /* spans of both not yet taken into a transaction */
    bool accepting;
    int encoding; /* consume() calls encoding rows now (they use the writer's zip) */
    bool stopping;
    bool thread_running;
    pthread_t thread;
    bool purge_req;
    int64_t purge_now_ns;
    int64_t purge_result;
    int64_t next_purge_mono; /* writer thread only: next retention run (0 = now) */
    bool purge_more;         /* writer thread only: a run is deleting chunk by chunk */
    int64_t purge_cutoff;    /* writer thread only: that run's cutoff */
    int64_t purge_total;     /* writer thread only: traces that run deleted so far */
    bool failing;            /* writer thread only: the last transaction failed */
    bool build_req;           /* pc_local_build_rollups waits for it */
    int64_t build_result;
    pc_local_rollup_job *store_job; /* the builder's gathered hour, for the writer to store */
    bool store_busy;                /* the writer is storing it */
    int store_result;
    int64_t last_full_log, last_timeout_log, last_budget_log;
} pc_local;


/* |to| - |from| spans of one job's batch, written in one transaction. */
typedef struct slice {
    job *jb;
    size_t from, to; /* to: as planned by take_chunk, then as written */
} slice;

/* True when a batch waits in the queue. Writer thread. */
static bool others_wait(pc_local *L)
{
    pthread_mutex_lock(&L->mu);
    bool wait = L->head != NULL;
    pthread_mutex_unlock(&L->mu);
    return wait;
}

/*
 * Writes the |n| slices |sl| in one transaction, which ends early in a slice
 * of a huge batch (more than PC_LOCAL_TXN_SPANS spans) after a multiple of
 * CUT_EVERY of its spans: when the transaction already holds another batch's
 * last span (its waiter waits for this commit), or holds PC_LOCAL_TXN_SPANS
 * spans while a batch waits in the queue. The spans so far are written at
 * each such point (pc_local_txn_write), so the look sees the batches queued
 * while they were written. The slices' |to| then say what the
 * transaction holds (from == to: nothing; on failure, what it was to hold, so
 * those batches fail). Small batches among themselves keep the group
 * commit; a huge batch gains at least CUT_EVERY spans per transaction it is
 * in. True when it committed.
 */
static bool write_slices(pc_local *L, slice *sl, size_t n)
{
    pc_local_writer *w = &L->w;
    size_t spans = 0;
    for (size_t k = 0; k < n; k++)
        spans += sl[k].to - sl[k].from;
    pc_local_txn *t = pc_local_txn_begin(w, spans);
    int rc = SQLITE_OK;
    size_t written = 0;
    bool cut = false;
    bool ends_one = false; /* the transaction holds the last span of a batch */
    for (size_t k = 0; k < n; k++) {
        const pc_batch *b = sl[k].jb->batch;
        if (cut) sl[k].to = sl[k].from; /* not in this transaction */
        for (size_t i = sl[k].from; i < sl[k].to && rc == SQLITE_OK; i++) {
            size_t in_slice = i - sl[k].from;
            if (b->n > PC_LOCAL_TXN_SPANS && in_slice > 0 && in_slice % CUT_EVERY == 0) {
                /* spans are written when the transaction ends: write those
                 * so far, so that a batch queued meanwhile is seen */
                rc = pc_local_txn_write(t);
                if (rc != SQLITE_OK) break;
                if (ends_one || (written >= PC_LOCAL_TXN_SPANS && others_wait(L))) {
                    sl[k].to = i;
                    cut = true;
                    break;
                }
            }
            rc = pc_local_txn_span(t, &b->spans[i], pc_span_received(b, &b->spans[i]),
                                   sl[k].jb->rows, i);
            written++;
        }
        if (sl[k].to == b->n && sl[k].to > sl[k].from) ends_one = true;
    }
    char why[256];
    rc = pc_local_txn_end(t, why, sizeof(why));

    if (rc != SQLITE_OK) {
        if (!L->failing)
            pc_log(PC_LOG_ERROR, L->id, "cannot commit %zu spans to %s: %s (answering retry)",
                   spans, L->path, why);
        L->failing = true;
        return false;
    }
    if (L->failing) pc_log(PC_LOG_INFO, L->id, "commits succeed again");
    L->failing = false;
    return true;
}

/* Appends slice {jb, from, to} to *sl (capacity *cap, grown as needed) at *n. */
static void push_slice(slice **sl, size_t *cap, size_t *n, job *jb, size_t from, size_t to)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *sl = pc_xrealloc(*sl, *cap * sizeof(**sl));
    }
    (*sl)[(*n)++] = (slice){.jb = jb, .from = from, .to = to};
}

/*
 * Chooses the next transaction's slices (at most PC_LOCAL_TXN_MAX spans) into
 * *sl / *cap and returns how many. Batches queued since the last transaction
 * come first, whole, in order (group commit), while they fit; the first that
 * does not fit is sliced when nothing else is taken yet (it becomes started).
 * Started batches, oldest first, fill the rest. While a batch is started,
 * queued ones take at most half a transaction, so neither side starves.
 * Call with L->mu held; each job appears in at most one slice.
 */
static size_t take_chunk(pc_local *L, slice **sl, size_t *cap)
{
    size_t n = 0, used = 0;
    size_t fresh_cap = L->started ? PC_LOCAL_TXN_MAX / 2 : PC_LOCAL_TXN_MAX;
    job *sliced = NULL;
    while (L->head) {
        job *jb = L->head;
        size_t take = jb->batch->n;
        if (used + take > fresh_cap) {
            if (used > 0) break;
            take = fresh_cap;
        }
        L->head = jb->next;
        if (!L->head) L->tail = NULL;
        jb->next = NULL;
        push_slice(sl, cap, &n, jb, 0, take);
        jb->off = take;
        used += take;
        L->queued_spans -= take;
        if (take < jb->batch->n) {
            sliced = jb;
            jb->started = true;
            break;
        }
    }
    for (job *jb = L->started; jb && used < PC_LOCAL_TXN_MAX; jb = jb->next) {
        size_t take = jb->batch->n - jb->off;
        if (take > PC_LOCAL_TXN_MAX - used) take = PC_LOCAL_TXN_MAX - used;
        push_slice(sl, cap, &n, jb, jb->off, jb->off + take);
        jb->off += take;
        used += take;
        L->queued_spans -= take;
    }
    if (sliced) {
        job **pp = &L->started;
        while (*pp)
            pp = &(*pp)->next;
        *pp = sliced;
    }
    return n;
}

/*
 * Ends the transaction of slices |sl| (committed when |ok|): a failed one ends
 * every job with spans in it (the rest of their spans are never written); a
 * job whose last span committed ends. Ended jobs leave the started list, their
 * batches are dropped and their waiters woken (PC_OK only when every slice
 * committed). Call with L->mu held; drops it while unreferencing batches.
 */
static void end_chunk(pc_local *L, const slice *sl, size_t n, bool ok)
{
    job **tail = &L->started;
    while (*tail)
        tail = &(*tail)->next;
    for (size_t k = 0; k < n; k++) {
        job *jb = sl[k].jb;
        if (!ok && sl[k].to > sl[k].from) {
            L->queued_spans -= jb->batch->n - jb->off;
            jb->off = jb->batch->n;
            jb->failed = true;
            continue;
        }
        if (jb->off > sl[k].to) { /* not all written: the rest is started */
            L->queued_spans += jb->off - sl[k].to;
            jb->off = sl[k].to;
            if (!jb->started) {
                jb->started = true;
                *tail = jb;
                tail = &jb->next;
            }
        }
    }
    for (job **pp = &L->started; *pp;) {
        if ((*pp)->off == (*pp)->batch->n)
            *pp = (*pp)->next;
        else
            pp = &(*pp)->next;
    }
    pthread_mutex_unlock(&L->mu);
    for (size_t k = 0; k < n; k++) {
        job *jb = sl[k].jb;
        if (jb->off == jb->batch->n) {
            pc_batch_unref(jb->batch);
            pc_local_rows_free(jb->rows);
            jb->batch = NULL;
            jb->rows = NULL;
        }
    }
    pthread_mutex_lock(&L->mu);
    for (size_t k = 0; k < n; k++) {
        job *jb = sl[k].jb;
        if (jb->batch) continue; /* more of it to write */
        if (jb->abandoned)
            free(jb);
        else
            jb->state = jb->failed ? JOB_FAILED : JOB_OK;
    }
    pthread_cond_broadcast(&L->done_cv);
}

/* Deletes everything expired as of wall-clock |now_ns| (test hook). Writer thread. */
static int64_t purge_all(pc_local *L, int64_t now_ns)
{
    int64_t total = 0, n;
    do {
        n = pc_local_writer_purge(&L->w, now_ns - L->retention_ns);
        if (n < 0) return -1;
        total += n;
    } while (n == PC_LOCAL_PURGE_CHUNK);
    return total;
}

/* True when retention should run a step now. Writer thread. */
static bool purge_due(const pc_local *L)
{
    return L->retention_ns > 0 && (L->purge_more || pc_time_mono_ns() >= L->next_purge_mono);
}

/*
 * One step of the scheduled retention run: one chunk, so queued batches are
 * written between chunks and a large backlog never stalls consumers.
 */
static void purge_step(pc_local *L)
{
    if (!L->purge_more) {
        L->purge_cutoff = pc_time_now_ns() - L->retention_ns;
        L->purge_total = 0;
    }
    int64_t n = pc_local_writer_purge(&L->w, L->purge_cutoff);
    if (n > 0) L->purge_total += n;
    L->purge_more = n == PC_LOCAL_PURGE_CHUNK;
    if (L->purge_more) return;
    if (L->purge_total > 0)
        pc_log(PC_LOG_INFO, L->id, "retention: deleted %lld expired traces",
               (long long)L->purge_total);
    L->next_purge_mono = pc_time_mono_ns() + PURGE_EVERY_NS;
}

/* The builder's pc_local_builder_store: the writer thread stores |job|
 * between two transactions. Builder thread. */
static int store_built(void *ctx, pc_local_rollup_job *job)
{
    pc_local *L = ctx;
    pthread_mutex_lock(&L->mu);
    L->store_job = job;
    pthread_cond_signal(&L->work_cv);
    while (L->store_job == job && (L->store_busy || !L->stopping))
        pthread_cond_wait(&L->done_cv, &L->mu);
    int rc = L->store_result;
    if (L->store_job == job) { /* the writer stops: not stored */
        L->store_job = NULL;
        pc_local_stats_hour_free(job->figures);
        job->figures = NULL;
        rc = PC_ROLLUP_YIELD;
    }
    pthread_mutex_unlock(&L->mu);
    return rc;
}

/* Builds every unbuilt hour now, quiet or not, but for those past
 * rollup_build_limit (test hook). Writer thread. */
static int64_t build_all(pc_local *L)
{
    int64_t n = 0;
    int rc;
    int64_t hour, limit_ns = L->cfg->rollup_build_limit_ms * NS_PER_MS;
    while ((rc = pc_local_rollup_build(L->db, INT64_MAX - PC_ROLLUP_DEFER_NS, limit_ns, NULL,
                                       NULL, &hour)) >= 1)
        if (rc == 1) n++; /* a slow one is deferred past this bound: never met again here */
    return rc < 0 ? -1 : n;
}

/*
 * The writer: retention first (so the run at start precedes every write of
 * this process), then one transaction of at most PC_LOCAL_TXN_MAX spans
 * (take_chunk), then wake the waiters whose batches ended. Exits once stopping
 * and nothing is queued or started.
 */
static void *writer_main(void *arg)
{
    pc_local *L = arg;
    pc_thread_name("local-writer");
    slice *sl = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (!L->head && !L->started && !L->stopping && !L->purge_req && !purge_due(L) &&
               !L->build_req && !L->store_job) {
            if (L->retention_ns > 0) {
                pc_cond_wait_until(&L->work_cv, &L->mu, L->next_purge_mono);
            } else {
                pthread_cond_wait(&L->work_cv, &L->mu);
            }
        }
        if (L->purge_req) {
            int64_t now = L->purge_now_ns;
            pthread_mutex_unlock(&L->mu);
            int64_t n = purge_all(L, now);
            pthread_mutex_lock(&L->mu);
            L->purge_result = n;
            L->purge_req = false;
            pthread_cond_broadcast(&L->done_cv);
        } else if (purge_due(L)) {
            pthread_mutex_unlock(&L->mu);
            purge_step(L);
            pthread_mutex_lock(&L->mu);
        }
        if (L->build_req) {
            pthread_mutex_unlock(&L->mu);
            int64_t n = build_all(L);
            pthread_mutex_lock(&L->mu);
            L->build_result = n;
            L->build_req = false;
            pthread_cond_broadcast(&L->done_cv);
        }

        if (L->store_job) { /* a short transaction between two of spans */
            L->store_busy = true;
            pthread_mutex_unlock(&L->mu);
            int rc = pc_local_rollup_store(L->db, L->store_job);
            pthread_mutex_lock(&L->mu);
            L->store_result = rc;
            L->store_job = NULL;
            L->store_busy = false;
            pthread_cond_broadcast(&L->done_cv);
        }

        size_t n = take_chunk(L, &sl, &cap);
        if (n > 0) {
            pthread_mutex_unlock(&L->mu);
            bool ok = write_slices(L, sl, n);
            pc_local_builder_wrote(L->builder);
            pthread_mutex_lock(&L->mu);
            end_chunk(L, sl, n, ok);
        }
        if (L->stopping && !L->head && !L->started && !L->purge_req) break;
    }
    pthread_mutex_unlock(&L->mu);
    free(sl);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle -- */

static void local_destroy(void *ctx);
static void local_shutdown(void *ctx);

static void *local_create(const char *id, const void *cfgp, const pc_consumer *next)
{
    (void)next;
    const local_cfg *cfg = cfgp;
    pc_local *L = pc_xcalloc(1, sizeof(*L));
    L->id = pc_xstrdup(id);
    L->cfg = cfg;

    pthread_mutex_init(&L->mu, NULL);
    pc_cond_init_mono(&L->work_cv);
    pc_cond_init_mono(&L->done_cv);
    L->sync_ready = true;

    char err[256];
    if (local_validate(cfg, err, sizeof(err)) < 0) {
        pc_log(PC_LOG_ERROR, id, "%s", err);
        local_destroy(L);
        return NULL;
    }
    /* 0 keeps forever; so does a retention too long to express in ns. */
    L->retention_ns =
        cfg->retention_ms <= INT64_MAX / NS_PER_MS ? cfg->retention_ms * NS_PER_MS : 0;
    L->timeout_ns = cfg->timeout_ms * NS_PER_MS;
    L->queue_size = (size_t)cfg->queue_size;

    size_t dl = strlen(cfg->directory);
    while (dl > 1 && cfg->directory[dl - 1] == '/')
        dl--;
    L->path = pc_xmalloc(dl + sizeof("/prela.db"));
    memcpy(L->path, cfg->directory, dl);
    memcpy(L->path + dl, "/prela.db", sizeof("/prela.db"));
    L->search_path = pc_xmalloc(dl + sizeof("/" PC_LOCAL_INDEX_FILE));
    memcpy(L->search_path, cfg->directory, dl);
    memcpy(L->search_path + dl, "/" PC_LOCAL_INDEX_FILE, sizeof("/" PC_LOCAL_INDEX_FILE));

    L->recent = pc_local_recent_create();
    L->reader = pc_local_reader_create(L->id, L->path, L->search_path, L->recent,
                                       cfg->query_timeout_ms);
    L->store.ops = &pc_local_store_ops;
    L->store.ctx = L->reader;
    return L;
}

static int local_start(void *ctx, pc_host *host)
{
    (void)host;
    pc_local *L = ctx;
    if (L->thread_running || L->stopping) return 0;
    char err[512];
    if (pc_mkdirs(L->cfg->directory, 0750, err, sizeof(err)) < 0) {
        pc_log(PC_LOG_ERROR, L->id, "directory: %s", err);
        return -1;
    }
    L->db = pc_local_db_open_writer(L->id, L->path, sync_parse(L->cfg->synchronous) == 1);
    if (!L->db) return -1;
    pc_local_gate gate = pc_local_reader_gate(L->reader);
    L->ckpt = pc_local_checkpoint_create(L->id, L->path, L->db, PC_LOCAL_CHECKPOINT_PAGES,
                                         PC_LOCAL_RESTART_PAGES, &gate);
    if (!L->ckpt) return -1;
    L->index = pc_local_index_create(L->id, L->search_path, L->path, &gate, L->recent);
    if (!L->index) return -1;
    if (pc_local_writer_init(&L->w, L->id, L->db, (size_t)L->cfg->compression_sample,
                             L->index, L->cfg->rollup_live_ms * 1000000) < 0)
        return -1;
    L->builder = pc_local_builder_create(L->id, L->path, L->reader, L->cfg->rollup_quiet_ms,
                                         L->cfg->rollup_build_limit_ms, store_built, L);
    if (!L->builder) return -1;
    L->next_purge_mono = 0; /* the writer runs retention first thing */
    pthread_mutex_lock(&L->mu);
    int rc = pthread_create(&L->thread, NULL, writer_main, L);
    if (rc == 0) {
        L->thread_running = true;
        L->accepting = true;
    }
    pthread_mutex_unlock(&L->mu);
    if (rc != 0) {
        pc_log(PC_LOG_ERROR, L->id, "cannot start the writer thread: %s", strerror(rc));
        return -1;
    }
    pc_log(PC_LOG_INFO, L->id, "embedded store at %s", L->path);
    return 0;
}

static void local_shutdown(void *ctx)
{
    pc_local *L = ctx;
    if (!L || !L->sync_ready) return;
    pthread_mutex_lock(&L->mu);
    L->accepting = false;
    while (L->encoding > 0) /* a batch accepted just before: queued next, or refused */
        pthread_cond_wait(&L->done_cv, &L->mu);
    bool join = L->thread_running && !L->stopping;
    L->stopping = true;
    pthread_cond_signal(&L->work_cv);
    pthread_cond_broadcast(&L->done_cv); /* a builder's store waiting for the writer */
    pthread_mutex_unlock(&L->mu);
    if (join) {
        pthread_join(L->thread, NULL);
        pthread_mutex_lock(&L->mu);
        L->thread_running = false;
        pthread_mutex_unlock(&L->mu);
    }
}

static void local_destroy(void *ctx)
{
    pc_local *L = ctx;
    if (!L) return;
    local_shutdown(L);
    pc_local_builder_destroy(L->builder);
    pc_local_index_destroy(L->index); /* after the writer: it writes what is queued */
    /* The writer thread has stopped; before the readers: a hold it keeps is
     * released into the read pool (its gate). */
    pc_local_checkpoint_destroy(L->ckpt);
    /* Readers before the writer: the last connection to close checkpoints the
     * WAL and removes it, which a read-only one cannot do. */
    pc_local_reader_destroy(L->reader);
    pc_local_recent_destroy(L->recent); /* after the index and the readers using it */
    pc_local_writer_fini(&L->w);
    sqlite3_close(L->db);
    if (L->sync_ready) {
        pthread_cond_destroy(&L->work_cv);
        pthread_cond_destroy(&L->done_cv);
        pthread_mutex_destroy(&L->mu);
    }
    free(L->path);
    free(L->search_path);
    free(L->id);
    free(L);
}

/* ------------------------------------------------------------ data path -- */

/* Logs |msg| at most every LOG_EVERY_NS per |*last|. Call with L->mu held. */
static void warn_limited(pc_local *L, int64_t *last, const char *msg)
{
    int64_t now = pc_time_mono_ns();
    if (*last && now - *last < LOG_EVERY_NS) return;
    *last = now;
    pc_log(PC_LOG_WARN, L->id, "%s", msg);
}

/* True when |b| is to be answered retry: not accepting, or the queue is
 * full. Call with L->mu held. */
static bool refuse(pc_local *L, const pc_batch *b)
{
    if (!L->accepting) return true;
    if (L->queued_spans > 0 && L->queued_spans + b->n > L->queue_size) {
        warn_limited(L, &L->last_full_log,
                     "queue full (queue_size spans waiting); answering retry");
        return true;
    }
    return false;
}

static pc_result local_consume(void *ctx, pc_batch *b)
{
    pc_local *L = ctx;
    if (!b) return PC_OK;
    if (b->n == 0) {
        pc_batch_unref(b);
        return PC_OK;
    }
    pthread_mutex_lock(&L->mu);
    bool refused = refuse(L, b);
    if (!refused) L->encoding++;
    pthread_mutex_unlock(&L->mu);
    if (refused) {
        pc_batch_unref(b);
        return PC_RETRY;
    }
    /* here, not on the writer thread (local_rows.h); accepting: the writer is
     * set up, and shutdown waits for |encoding| to end before it goes */
    pc_local_rows *rows = pc_local_rows_encode(b, L->w.zip);
    pthread_mutex_lock(&L->mu);
    if (--L->encoding == 0) pthread_cond_broadcast(&L->done_cv);
    if (!rows)
        warn_limited(L, &L->last_budget_log,
                     "the memory budget refuses a batch's encoded rows; answering retry");
    if (!rows || refuse(L, b)) { /* (the queue may have filled meanwhile) */
        pthread_mutex_unlock(&L->mu);
        pc_local_rows_free(rows);
        pc_batch_unref(b);
        return PC_RETRY;
    }
    job *j = pc_xcalloc(1, sizeof(*j));
    j->batch = b;
    j->rows = rows;
    if (L->tail)
        L->tail->next = j;
    else
        L->head = j;
    L->tail = j;
    L->queued_spans += b->n;
    pthread_cond_signal(&L->work_cv);

    int64_t deadline = pc_time_mono_ns() + L->timeout_ns;
    while (j->state == JOB_QUEUED) {
        int rc = pc_cond_wait_until(&L->done_cv, &L->mu, deadline);
        if (rc == ETIMEDOUT && j->state == JOB_QUEUED) {
            j->abandoned = true; /* the writer frees it */
            warn_limited(
                L, &L->last_timeout_log,
                "commit slower than timeout; answering retry (the batch is still written)");
            pthread_mutex_unlock(&L->mu);
            return PC_RETRY;
        }
    }
    pc_result res = j->state == JOB_OK ? PC_OK : PC_RETRY;
    free(j);
    pthread_mutex_unlock(&L->mu);
    return res;
}

static const pc_store *local_store(void *ctx)
{
    pc_local *L = ctx;
    return &L->store;
}

int64_t pc_local_purge(void *ctx, int64_t now_ns)
{
    pc_local *L = ctx;
    pthread_mutex_lock(&L->mu);
    while (L->purge_req)
        pthread_cond_wait(&L->done_cv, &L->mu);
    if (!L->thread_running || L->stopping || L->retention_ns <= 0) {
        pthread_mutex_unlock(&L->mu);
        return -1;
    }
    L->purge_req = true;
    L->purge_now_ns = now_ns;
    pthread_cond_signal(&L->work_cv);
    while (L->purge_req)
        pthread_cond_wait(&L->done_cv, &L->mu);
    int64_t n = L->purge_result;
    pthread_mutex_unlock(&L->mu);
    return n;
}

void pc_local_search_flush(void *ctx)
{
    pc_local *L = ctx;
    if (L->index) pc_local_index_flush(L->index);
}

void pc_local_train_wait(void *ctx)
{
    pc_local *L = ctx;
    pc_local_zip_wait(L->w.zip);
}

int64_t pc_local_build_rollups(void *ctx)
{
    pc_local *L = ctx;
    pthread_mutex_lock(&L->mu);
    while (L->build_req)
        pthread_cond_wait(&L->done_cv, &L->mu);
    if (!L->thread_running || L->stopping) {
        pthread_mutex_unlock(&L->mu);
        return -1;
    }
    L->build_req = true;
    pthread_cond_signal(&L->work_cv);
    while (L->build_req)
        pthread_cond_wait(&L->done_cv, &L->mu);
    int64_t n = L->build_result;
    pthread_mutex_unlock(&L->mu);
    return n;
}

int64_t pc_local_spans_scanned(void *ctx)
{
    pc_local *L = ctx;
    return __atomic_load_n(&L->w.rollup.scanned, __ATOMIC_RELAXED);
}

int64_t pc_local_backlog(void *ctx)
{
    pc_local *L = ctx;
    pthread_mutex_lock(&L->mu);
    int64_t n = (int64_t)L->queued_spans;
    pthread_mutex_unlock(&L->mu);
    return n;
}

const pc_component_ops pc_local_exporter_ops = {
    .type = "local",
    .kind = PC_EXPORTER,
    .options = options,
    .config_size = sizeof(local_cfg),
    .validate = local_validate,
    .create = local_create,
    .start = local_start,
    .shutdown = local_shutdown,
    .destroy = local_destroy,
    .consume = local_consume,
    .store = local_store,
};
