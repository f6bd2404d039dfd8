/*
 * clickhouse.c - the `clickhouse` exporter (see clickhouse.h): settings,
 * schema on start, group commit, retries; the component's ops table.
 *
 * Data flow: normalize → consume() → rows appended to the pending insert →
 * flusher thread → POST /?query=INSERT ... FORMAT JSONEachRow (the hours'
 * marks of clickhouse_rollup.h, spans, the partial trace rows, events, the
 * search index) → HTTP 200 → the insert's waiters return PC_OK. The stats
 * rollup builder (clickhouse_rollup.h) runs beside it from start to shutdown.
 * Requests go through clickhouse_http.c (one connection's settings, shared
 * with the reads). The flusher thread, its retries and its poison isolation
 * live in clickhouse_flush.c; reads (store.h) in clickhouse_store.c, which
 * this file only embeds and hands out through store().
 *
 * Schema: start() runs clickhouse_migrate.c (create, or migrate an earlier
 * release's database once) before accepting data or serving reads.
 *
 * Group commit: consume() encodes its batch outside the lock, then appends
 * the rows to the pending insert (one `gen`) and waits on it. The single
 * flusher thread sends the pending insert once it holds batch.max_rows rows;
 * else, batch.max_wait after the previous insert began, once the callers that
 * insert answered are back (it holds as many joins as that insert had plus
 * those pending when it ended), and at the latest max_wait after it ended;
 * the next one fills up meanwhile. So an idle exporter inserts at once, under
 * load inserts start at most every max_wait, and the senders that wait for
 * their answer (SDKs, the Kafka consumer) all join one insert.
 * Why wait for them: sent as soon as the previous insert was done, an insert
 * missed the callers just answered; they split into alternating halves (16
 * connections of 100 spans: about 800 spans an insert, not 1,600), and each
 * insert is a part per table and month, a file per column (issue 15).
 * Why 20000 rows / 50 ms: ClickHouse wants few, large inserts (each creates
 * parts that must be merged; at most 20 inserts a second keeps merges far
 * ahead), while an SDK's request is held until its insert is acknowledged,
 * so the added latency must stay small; 20000 rows (a few MB compressed)
 * keeps a part per insert cheap.
 * Spooling first (spool.after 0, spooler.h): consume() only appends to the
 * spool; the drainer alone joins, a window of records at a time, and the
 * insert is due when it flushes (or holds batch.max_rows rows), so inserts
 * grow with the load, not with how many callers wait.
 *
 * Memory: a consume encodes into the blocks of the last stored insert (spare)
 * and hands them to the pending insert without a copy when it is the first
 * to join; the flusher sends a block straight from those rows when they lie
 * back to back, and keeps its compressor and body buffers. So a steady drain
 * reuses the same few buffers instead of mapping, faulting in and unmapping
 * tens of MB per insert (they are above the 1 MiB mmap threshold). Rows are
 * charged to the memory budget (budget.h) until their insert is freed.
 *
 * Ownership: consume owns its batch reference and drops it after encoding;
 * the pending insert owns its encoded rows. The flusher has its own curl
 * handle; reads borrow pooled ones from clickhouse_http.c.
 */
#include "clickhouse.h"

#include "budget.h"
#include "clickhouse_conf.h"
#include "clickhouse_encode.h"
#include "clickhouse_flush.h"
#include "clickhouse_http.h"
#include "clickhouse_migrate.h"
#include "clickhouse_rows.h"
#include "clickhouse_rollup.h"
#include "clickhouse_search.h"
#include "clickhouse_sql.h"
#include "clickhouse_store.h"
#include "deadletter.h"
#include "kafka_conf.h"
#include "kafka_record.h"
#include "log.h"
#include "mem.h"
#include "formats/kafka_message.h"
#include "spooler.h"
#include "clickhouse_events.h"
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
#include <unistd.h>

#define PENDING_FACTOR 8 /* most rows pending: PENDING_FACTOR * batch.max_rows */
#define ROLLUP_PERIOD_MAX_MS 10000 /* the rollup builder looks at least this often */

/* ------------------------------------------------------------ data path -- */

/*
 * Encodes |b| and joins its rows to the pending insert (the group commit),
 * their bytes charged to the memory budget until the insert is freed.
 * Returns the insert with a reference for the caller, or NULL (not accepting,
 * too much pending, or the budget refuses the rows: retry). |start| is when
 * the caller began.
 */
static pc_ch_gen *join_insert(pc_ch_exporter *C, const pc_batch *b, int64_t start)
{
    pc_ch_rows spans = PC_CH_ROWS_INIT, traces = PC_CH_ROWS_INIT, events = PC_CH_ROWS_INIT;
    pc_ch_rows marks = PC_CH_ROWS_INIT;
    size_t n = b->n;
    pthread_mutex_lock(&C->mu);
    spans = C->spare; /* the blocks of a stored insert, if any (see "Memory") */
    C->spare = (pc_ch_rows)PC_CH_ROWS_INIT;
    pthread_mutex_unlock(&C->mu);
    pc_ch_search_acc piece = PC_CH_SEARCH_ACC_INIT;
    pc_ch_encode_batch(b, C->dialect, &spans, &traces, &events, &piece);
    pc_ch_rollup_marks(b, &marks);
    size_t bytes = pc_ch_rows_bytes(&spans) + pc_ch_rows_bytes(&traces) +
                   pc_ch_rows_bytes(&events) + pc_ch_rows_bytes(&marks) +
                   pc_ch_search_bytes(&piece);
    bool charged = pc_budget_reserve(C->budget, bytes) == 0;
    pthread_mutex_lock(&C->mu);
    pc_ch_gen *g = C->pending;
    if (!charged || !C->accepting || (g && g->rows + n > C->max_rows * PENDING_FACTOR)) {
        g = NULL;
    } else {
        if (!g) {
            g = pc_xcalloc(1, sizeof(*g));
            g->first_mono = start;
            g->deadline = start + C->timeout_ns;
            g->refs = 1; /* the flusher's */
            C->pending = g;
        }
        pc_ch_rows_move(&g->spans, &spans);
        pc_ch_rows_move(&g->traces, &traces);
        pc_ch_rows_move(&g->events, &events);
        pc_ch_rows_move(&g->marks, &marks);
        pc_ch_search_move(&g->search, &piece);
        g->rows += n;
        g->charged += bytes;
        g->joins++;
        g->refs++;
        pthread_cond_signal(&C->work_cv);
    }
    pthread_mutex_unlock(&C->mu);
    if (!g && charged) pc_budget_release(C->budget, bytes);
    pc_ch_rows_free(&spans);
    pc_ch_rows_free(&traces);
    pc_ch_rows_free(&events);
    pc_ch_rows_free(&marks);
    pc_ch_search_free(&piece);
    return g;
}

/* Waits for the insert |g| until |deadline| and drops the caller's reference:
 * PC_OK once it was stored, PC_RETRY otherwise. */
static pc_result wait_insert(pc_ch_exporter *C, pc_ch_gen *g, int64_t deadline)
{
    pthread_mutex_lock(&C->mu);
    while (g->state == PC_CH_GEN_PENDING)
        if (pc_cond_wait_until(&C->done_cv, &C->mu, deadline) == ETIMEDOUT) break;
    pc_result res = g->state == PC_CH_GEN_OK ? PC_OK : PC_RETRY;
    pc_ch_gen_unref_locked(C, g);
    pthread_mutex_unlock(&C->mu);
    return res;
}

/* True while inserts have been failing for at least |grace_ns|. */
static bool unreachable(pc_ch_exporter *C, int64_t grace_ns)
{
    int64_t down = __atomic_load_n(&C->down_since, __ATOMIC_ACQUIRE);
    return down && pc_time_mono_ns() - down >= grace_ns;
}

/*
 * Without a spool: the insert's answer within `timeout`. With a spool
 * (spooler.h): the server gets `spool.after` (none while inserts have been
 * failing that long already); a batch it did not store by then is appended to
 * the spool, in the kafka exporter's record format (kafka_record.h, prela_json:
 * every field of the normalized spans, restored by formats/prela_json.h), and the
 * answer is OK once it is durable there.
 */
static pc_result ch_consume(void *ctx, pc_batch *b)
{
    pc_ch_exporter *C = ctx;
    if (!b) return PC_OK;
    if (b->n == 0) {
        pc_batch_unref(b);
        return PC_OK;
    }
    int64_t start = pc_time_mono_ns();
    if (!C->spooler) {
        pc_ch_gen *g = join_insert(C, b, start);
        pc_batch_unref(b);
        return g ? wait_insert(C, g, start + C->timeout_ns) : PC_RETRY;
    }
    pc_result res = PC_RETRY;
    if (!C->first && !unreachable(C, C->after_ns)) {
        pc_ch_gen *g = join_insert(C, b, start);
        if (g) res = wait_insert(C, g, start + C->after_ns);
    }
    if (res == PC_RETRY && __atomic_load_n(&C->spooling, __ATOMIC_ACQUIRE)) {
        pc_buf rec = PC_BUF_INIT;
        pc_kafka_drops drops = {0};
        pc_kafka_record_encode(&rec, b, PC_KAFKA_PRELA_JSON, PC_SPOOL_MAX_RECORD, C->id,
                               &drops);
        if (pc_spooler_append(C->spooler, rec.data, rec.len) == 0) res = PC_OK;
        pc_buf_free(&rec);
    }
    pc_batch_unref(b);
    return res;
}

/* A spooled record on its way back in: the insert it joined. */
typedef struct respool {
    pc_ch_gen *g;           /* NULL: answer |early| */
    pc_result early;
    int64_t deadline;
} respool;

/* The spool's drainer delivers through these (spooler.h): the record's span
 * messages are decoded back into a batch and join the group commit like a
 * request's. The drainer's attempts are what finds the server back while
 * requests go straight to the spool; an insert that succeeds kicks it. */
static void *spool_begin(void *ctx, const void *rec, size_t n)
{
    pc_ch_exporter *C = ctx;
    pc_batch *b = pc_batch_create(NULL);
    size_t pos = 0;
    pc_kafka_msg m;
    int r;
    while ((r = pc_kafka_record_next(rec, n, &pos, &m)) > 0) {
        if (m.topic != PC_KAFKA_T_SPANS) continue; /* summaries: stores recompute them */
        pc_kafka_decode_result dr;
        if (pc_kafka_decode(b, PC_KAFKA_PRELA_JSON, m.value, m.len, 0, &dr) == PC_KAFKA_POISON)
            pc_log(PC_LOG_ERROR, C->id, "a spooled span does not decode (%s); left out",
                   dr.error);
    }
    respool *h = pc_xcalloc(1, sizeof(*h));
    int64_t start = pc_time_mono_ns();
    h->deadline = start + C->timeout_ns;
    if (r < 0) {
        pc_log(PC_LOG_ERROR, C->id, "a spooled record of %zu bytes is malformed", n);
        h->early = PC_DROP;
    } else if (b->n == 0) {
        h->early = PC_OK;
    } else {
        h->g = join_insert(C, b, start);
        h->early = PC_RETRY;
    }
    pc_batch_unref(b);
    return h;
}

/* The drainer has begun a window: the insert it joined goes now. */
static void spool_flush(void *ctx)
{
    pc_ch_exporter *C = ctx;
    pthread_mutex_lock(&C->mu);
    if (C->pending) {
        C->pending->sealed = true;
        pthread_cond_signal(&C->work_cv);
    }
    pthread_mutex_unlock(&C->mu);
}

static pc_result spool_end(void *ctx, void *handle)
{
    respool *h = handle;
    pc_result res = h->g ? wait_insert(ctx, h->g, h->deadline) : h->early;
    free(h);
    return res;
}

/* ------------------------------------------------------------ lifecycle -- */

static void ch_destroy(void *ctx);

static void *ch_create(const char *id, const void *cfgp, const pc_consumer *next)
{
    (void)next;
    const pc_ch_cfg *c = cfgp;
    pc_ch_exporter *C = pc_xcalloc(1, sizeof(*C));
    C->id = pc_xstrdup(id);
    C->cfg = c;
    pthread_mutex_init(&C->mu, NULL);
    pc_cond_init_mono(&C->work_cv);
    pc_cond_init_mono(&C->done_cv);
    pc_cond_init_mono(&C->stop_cv);
    C->sync_ready = true;
    char err[256];
    if (pc_ch_validate(c, err, sizeof(err)) < 0) {
        pc_log(PC_LOG_ERROR, id, "%s", err);
        ch_destroy(C);
        return NULL;
    }
    pc_ch_http_cfg hc = {
        .id = id,
        .host = c->host,
        .port = c->port,
        .tls = pc_ch_use_tls(c),
        .user = c->user,
        .password = c->password,
        .ca_file = c->tls_ca_file,
        .insecure_skip_verify = c->tls_insecure_skip_verify,
    };
    C->http = pc_ch_http_create(&hc);
    C->timeout_ns = c->timeout_ms * PC_CH_NS_PER_MS;
    C->max_wait_ns = c->max_wait_ms * PC_CH_NS_PER_MS;
    C->max_rows = (size_t)c->max_rows;
    C->after_ns = c->spool.after_ms * PC_CH_NS_PER_MS;
    C->first = pc_spooler_first(&c->spool);
    if (pc_spooler_enabled(&c->spool)) {
        C->spooler = pc_spooler_create(id, &c->spool, spool_begin, spool_end, spool_flush, C);
        if (!C->spooler) {
            ch_destroy(C);
            return NULL;
        }
    }
    pc_ch_store_init(&C->reads, C->http, C->id, c->database, c->query_timeout_ms);
    return C;
}

/* pc_ch_exec_fn over setup_sql, for the schema setup. */
static int exec_setup(void *ud, const char *sql, const char *what, long timeout_ms, pc_buf *out)
{
    return pc_ch_http_setup_sql(((pc_ch_exporter *)ud)->http, sql, what, timeout_ms, out);
}

/* Opens the dead letter: the topic dead_letter.topic when dead_letter.brokers
 * is set, else the file <dead_letter.directory>/deadletter-<id>.jsonl (the id
 * with every byte outside [A-Za-z0-9_-] as '_'). 0, or -1 after logging. */
static int open_dead_letter(pc_ch_exporter *C)
{
    if (C->dead) return 0;
    if (C->cfg->dl_kafka.brokers && *C->cfg->dl_kafka.brokers) {
        C->dead = pc_deadletter_create_kafka(&C->cfg->dl_kafka, C->cfg->dl_topic,
                                             C->timeout_ns / PC_CH_NS_PER_MS, C->id);
        return C->dead ? 0 : -1;
    }
    pc_buf name = PC_BUF_INIT;
    pc_buf_puts(&name, "deadletter-");
    for (const char *p = C->id; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        pc_buf_append(&name, ok ? &c : "_", 1);
    }
    char err[512];
    C->dead = pc_deadletter_create(C->cfg->dl_directory, name.data, C->cfg->dl_max_size,
                                   (int)C->cfg->dl_max_files, err, sizeof(err));
    pc_buf_free(&name);
    if (!C->dead) pc_log(PC_LOG_ERROR, C->id, "dead_letter.%s", err);
    return C->dead ? 0 : -1;
}

uint64_t pc_clickhouse_dead_lettered(void *ctx)
{
    return ctx ? pc_deadletter_count(((pc_ch_exporter *)ctx)->dead) : 0;
}

/* Copying a large table may take long; each copy statement gets up to this. */
#define COPY_TIMEOUT_MS (6L * 3600 * 1000)

static int ch_start(void *ctx, pc_host *host)
{
    pc_ch_exporter *C = ctx;
    if (C->thread_running || C->stopping) return 0;
    C->budget = pc_host_budget(host);
    pc_metrics *m = pc_host_metrics(host);
    if (m) {
        static const double bounds[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
        const char *const l[] = {"exporter", C->id, NULL};
        C->insert_seconds = pc_metrics_histogram(m, "prela_clickhouse_insert_duration_seconds",
                                                 "ClickHouse INSERTs that succeeded, by time.",
                                                 l, bounds, sizeof(bounds) / sizeof(bounds[0]));
    }
    const pc_ch_cfg *c = C->cfg;
    long timeout_ms = (long)(C->timeout_ns / PC_CH_NS_PER_MS);
    pc_buf version = PC_BUF_INIT;
    if (pc_ch_http_setup_sql(C->http, "SELECT version()", "cannot reach ClickHouse", timeout_ms,
                             &version) < 0)
        return -1;
    version.len = strcspn(version.data ? version.data : "", "\n");
    if (version.data) version.data[version.len] = '\0';
    C->dialect = pc_ch_is(c->dialect, "modern")   ? PC_CH_MODERN
                 : pc_ch_is(c->dialect, "legacy") ? PC_CH_LEGACY
                                            : pc_ch_dialect_of(version.data);
    C->reads.dialect = C->dialect; /* before any read: reads start after start() */
    C->codec = (pc_ch_codec)pc_ch_auto_codec(c);
    if (pc_ch_is(c->compression, "auto") && C->codec == PC_CH_CODEC_ZSTD)
        C->codec = pc_ch_http_probe_zstd(C->http, timeout_ms);
    int rc = open_dead_letter(C);
    if (rc == 0)
        rc = pc_ch_schema_setup(C->id, C->dialect, c->database, exec_setup, C, timeout_ms,
                                COPY_TIMEOUT_MS, &C->reads.search_since_ns);
    if (rc == 0) {
        pthread_mutex_lock(&C->mu);
        int prc = pthread_create(&C->thread, NULL, pc_ch_flusher_main, C);
        if (prc == 0) C->thread_running = C->accepting = true;
        pthread_mutex_unlock(&C->mu);
        if (prc != 0) {
            pc_log(PC_LOG_ERROR, C->id, "cannot start the flusher thread: %s", strerror(prc));
            rc = -1;
        }
    }
    if (rc == 0 && c->rollup_settle_ms > 0) {
        /* builds in the background; reads use them once settled */
        long settle_s = (long)((c->rollup_settle_ms + 999) / 1000);
        long period_ms = (long)(c->rollup_settle_ms / 2);
        if (period_ms > ROLLUP_PERIOD_MAX_MS) period_ms = ROLLUP_PERIOD_MAX_MS;
        C->rollup = pc_ch_rollup_create(C->http, C->id, c->database, settle_s, period_ms,
                                        (long)c->query_timeout_ms);
        if (!C->rollup) rc = -1;
        C->reads.rollup_settle_s = settle_s;
    }
    if (rc == 0 && C->spooler) {
        __atomic_store_n(&C->spooling, 1, __ATOMIC_RELEASE);
        rc = pc_spooler_start(C->spooler);
    }
    if (rc == 0)
        pc_log(PC_LOG_INFO, C->id,
               "ClickHouse %s at %s as %s (%s dialect, database %s, schema %d, inserts %s)",
               version.data, pc_ch_http_url(C->http), c->user ? c->user : "default",
               C->dialect == PC_CH_LEGACY ? "legacy" : "modern", c->database, PC_CH_SCHEMA_VERSION,
               pc_ch_codec_name(C->codec));
    pc_buf_free(&version);
    return rc;
}

/* Stops accepting, lets the flusher send what is pending, joins it. Idempotent. */
static void ch_shutdown(void *ctx)
{
    pc_ch_exporter *C = ctx;
    if (!C || !C->sync_ready) return;
    __atomic_store_n(&C->spooling, 0, __ATOMIC_RELEASE);
    pc_spooler_stop(C->spooler); /* what is spooled stays for the next start */
    pthread_mutex_lock(&C->mu);
    C->accepting = false;
    bool join = C->thread_running && !C->stopping;
    C->stopping = true;
    pthread_cond_broadcast(&C->work_cv);
    pthread_cond_broadcast(&C->stop_cv);
    pthread_mutex_unlock(&C->mu);
    pc_ch_rollup_destroy(C->rollup);
    C->rollup = NULL;
    if (join) {
        pthread_join(C->thread, NULL);
        pthread_mutex_lock(&C->mu);
        C->thread_running = false;
        pthread_mutex_unlock(&C->mu);
    }
}

static void ch_destroy(void *ctx)
{
    pc_ch_exporter *C = ctx;
    if (!C) return;
    ch_shutdown(C);
    pc_spooler_destroy(C->spooler);
    pc_ch_rows_free(&C->spare);
    pc_ch_http_destroy(C->http);
    pc_deadletter_destroy(C->dead);
    if (C->sync_ready) {
        pthread_cond_destroy(&C->work_cv);
        pthread_cond_destroy(&C->done_cv);
        pthread_cond_destroy(&C->stop_cv);
        pthread_mutex_destroy(&C->mu);
    }
    free(C->id);
    free(C);
}

/* Scrape-time series (metrics.h): rows set aside in the dead letter, and the
 * spool's (pc_spooler_metrics). */
static void ch_metrics(void *ctx, pc_metrics_out *out)
{
    pc_ch_exporter *C = ctx;
    const char *const l[] = {"exporter", C->id, NULL};
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_deadletter_rows",
                       "Rows ClickHouse refuses, set aside in the dead letter.", l,
                       (double)pc_deadletter_count(C->dead));
    pc_spooler_metrics(C->spooler, C->id, out);
}

/* UNAVAILABLE while inserts fail (for longer than spool.after with a spool,
 * which then makes it DEGRADED: spooler.h), OK otherwise. */
static void ch_health(void *ctx, pc_health *out)
{
    pc_ch_exporter *C = ctx;
    out->state = PC_HEALTH_OK;
    out->since_ns = 0;
    out->reason[0] = '\0';
    if (unreachable(C, C->spooler ? C->after_ns : 0)) {
        out->state = PC_HEALTH_UNAVAILABLE;
        out->since_ns = __atomic_load_n(&C->down_wall, __ATOMIC_ACQUIRE);
        snprintf(out->reason, sizeof(out->reason), "inserts into ClickHouse at %.180s fail",
                 pc_ch_http_url(C->http));
    }
    if (C->spooler) pc_spooler_health(C->spooler, out);
}

static const pc_store *ch_store(void *ctx)
{
    pc_ch_exporter *C = ctx;
    return &C->reads.store;
}

const pc_component_ops pc_clickhouse_exporter_ops = {
    .type = "clickhouse",
    .kind = PC_EXPORTER,
    .options = pc_ch_options,
    .config_size = sizeof(pc_ch_cfg),
    .validate = pc_ch_validate,
    .create = ch_create,
    .start = ch_start,
    .shutdown = ch_shutdown,
    .destroy = ch_destroy,
    .consume = ch_consume,
    .store = ch_store,
    .health = ch_health,
    .metrics = ch_metrics,
};
