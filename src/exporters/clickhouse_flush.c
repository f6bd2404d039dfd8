/*
 * clickhouse_flush.c - the `clickhouse` exporter's flusher thread (see
 * clickhouse_flush.h): it sends each insert the group commit fills
 * (clickhouse.c), table by table, and answers its waiters.
 *
 * Data flow: consume() (clickhouse.c) → the pending insert → the flusher →
 * POST /?query=INSERT ... per table (the hours' marks, spans, traces rows,
 * trace_rows stand-ins, events, the search index) → HTTP 200 → the insert's
 * state → its waiters.
 *
 * Failures (pc_ch_classify in clickhouse_http.c): a transient failure
 * (connection, timeout, 5xx without a code naming the data, too many queries,
 * memory limit, ...) is retried with exponential backoff (100 ms doubling to
 * 2 s) until the insert's deadline (`timeout` after its first rows arrived);
 * then its waiters answer PC_RETRY. The backoff waits on its own condition
 * (stop_cv, signalled only by shutdown), so new requests arriving do not cut
 * it short, and the body is compressed once per block, not per try (start
 * picks the codec: pc_ch_auto_codec; auto is none to a loopback host, where it
 * saves no bytes and costs CPU on both sides, else zstd if the server takes it,
 * else gzip). A
 * fatal failure (credentials, certificate, unknown table, ...) is retried the
 * same way, logged as an error: the rows are fine, the setup is not, so they
 * are kept (PC_RETRY), never dropped. At start, a bad certificate or refused
 * credentials fail startup at once, the log line naming the setting to check.
 *
 * Poison isolation: the rows of an insert are grouped by partition (month of
 * started_at) into blocks of at most batch.max_partitions partitions (see
 * clickhouse_rows.c), since ClickHouse refuses a block over 100 partitions.
 * A block the server refuses for its data (a row that does not parse or
 * convert, a violated constraint, ...) is bisected until the rows it refuses
 * alone are isolated; those go to the dead letter (deadletter.h: a JSON-lines
 * file under dead_letter.directory) with the reason and code, and are
 * counted; every other row is stored and the insert's waiters answer PC_OK.
 * So one bad row never stalls the group commit (every tenant's rows in it)
 * nor a Kafka partition behind the storage collector. Bisection shares the
 * insert's deadline: past it the waiters answer PC_RETRY, and the re-sent
 * rows are stored once (deduplicated) but a refused row is dead-lettered
 * again (each dead-letter line is one refusal). The traces index row of a
 * trace whose span was dead-lettered still reflects that span (its start,
 * its error) for list filters, but is written with merge_keys 0
 * (pc_ch_rows_unmerge), so the summaries served are computed from the
 * stored spans and do not. A traces row refused alone gets a stand-in in
 * trace_rows (pc_ch_trace_rows_standin, merge_keys 0, sent after the traces
 * rows), so its trace's pages too come from the spans. A waiter that timed
 * out leaves; the insert (gen) is reference counted and freed by whoever
 * leaves last. Re-sent rows are harmless: spans are deduplicated, trace
 * summaries are computed from distinct spans.
 */
#include "clickhouse_flush.h"

#include "clickhouse_events.h"
#include "clickhouse_sql.h"
#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

void pc_ch_gen_unref_locked(pc_ch_exporter *C, pc_ch_gen *g)
{
    if (--g->refs > 0) return;
    if (!C->spare.text.cap) {
        pc_ch_rows_reset(&g->spans);
        C->spare = g->spans;
        g->spans = (pc_ch_rows)PC_CH_ROWS_INIT;
    }
    pc_ch_rows_free(&g->spans);
    pc_ch_rows_free(&g->traces);
    pc_ch_rows_free(&g->events);
    pc_ch_rows_free(&g->marks);
    pc_ch_search_free(&g->search);
    pc_budget_release(C->budget, g->charged);
    free(g);
}

/*
 * Waits |ms| unless shutdown begins first; true when stopping. New requests
 * do not wake it: they signal work_cv, not stop_cv.
 */
static bool backoff_wait(pc_ch_exporter *C, int64_t ms)
{
    int64_t wake = pc_time_mono_ns() + ms * PC_CH_NS_PER_MS;
    pthread_mutex_lock(&C->mu);
    while (!C->stopping && pc_time_mono_ns() < wake)
        if (pc_cond_wait_until(&C->stop_cv, &C->mu, wake) == ETIMEDOUT) break;
    bool stop = C->stopping;
    pthread_mutex_unlock(&C->mu);
    return stop;
}

/* Why the last block was refused, for the dead letter. */
typedef struct refusal {
    int code;
    char why[800];
} refusal;

/*
 * Sends one INSERT |query| of |n| body bytes (in Content-Encoding |encoding|,
 * NULL: uncompressed), retrying
 * transient and fatal failures with backoff until |deadline|. PC_CH_GEN_OK,
 * PC_CH_GEN_RETRY (deadline or shutdown) or PC_CH_GEN_DATA (the server refuses these
 * rows; |why| says how).
 */
static int send_block(pc_ch_exporter *C, CURL *h, const char *query, const char *body, size_t n,
                      const char *encoding, int64_t deadline, refusal *why)
{
    int backoff = BACKOFF_MIN_MS;
    for (;;) {
        int64_t sent = pc_time_mono_ns();
        int64_t left = (deadline - sent) / PC_CH_NS_PER_MS;
        pc_ch_reply r = {0};
        pc_ch_http_post_encoded(C->http, h, query, NULL, body, n, encoding,
                                (long)(left > 1 ? left : 1), &r);
        if (pc_ch_reply_ok(&r)) {
            pc_buf_free(&r.body);
            if (C->insert_seconds)
                pc_histogram_observe(C->insert_seconds, (double)(pc_time_mono_ns() - sent) / 1e9);
            if (C->failing) pc_log(PC_LOG_INFO, C->id, "inserts succeed again");
            C->failing = false;
            if (__atomic_exchange_n(&C->down_since, 0, __ATOMIC_ACQ_REL) && C->spooler)
                pc_spooler_kick(C->spooler); /* drain now */
            return PC_CH_GEN_OK;
        }
        pc_ch_http_describe(C->http, &r, why->why, sizeof(why->why));
        why->code = pc_ch_error_code(&r);
        pc_ch_error_class cls = pc_ch_classify(&r);
        pc_buf_free(&r.body);
        if (cls == PC_CH_ERR_DATA) return PC_CH_GEN_DATA;
        if (!C->failing)
            pc_log(cls == PC_CH_ERR_FATAL ? PC_LOG_ERROR : PC_LOG_WARN, C->id,
                   "insert failed (%s): %s (rows kept, retrying until timeout)",
                   pc_ch_error_class_name(cls), why->why);
        C->failing = true;
        int64_t zero = 0;
        if (__atomic_compare_exchange_n(&C->down_since, &zero, pc_time_mono_ns(), false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            __atomic_store_n(&C->down_wall, pc_time_now_ns(), __ATOMIC_RELEASE);
        if (pc_time_mono_ns() + (int64_t)backoff * PC_CH_NS_PER_MS >= deadline)
            return PC_CH_GEN_RETRY;
        if (backoff_wait(C, backoff)) return PC_CH_GEN_RETRY;
        backoff = backoff * 2 < BACKOFF_MAX_MS ? backoff * 2 : BACKOFF_MAX_MS;
    }
}

/* Sets row |i| of |rows| aside with the refusal |why|. PC_CH_GEN_OK or PC_CH_GEN_RETRY. */
static int dead_letter(pc_ch_exporter *C, const char *table, const pc_ch_rows *rows, size_t i,
                       const refusal *why)
{
    pc_deadletter_entry e = {
        .reason = why->why,
        .code = why->code,
        .table = table,
        .project_id = pc_ch_row_project(rows, i),
        .trace_id = pc_ch_row_trace(rows, i),
        .span_id = pc_ch_row_span(rows, i),
        .row = rows->text.data + rows->v[i].off,
        .row_len = rows->v[i].len,
    };
    if (pc_deadletter_put(C->dead, &e, C->id) < 0) return PC_CH_GEN_RETRY;
    if (C->unmerge && strcmp(table, "spans") == 0) /* its trace's rows count it */
        pc_ch_rows_unmerge(C->unmerge, e.project_id, e.trace_id);
    if (strcmp(table, "traces") == 0) { /* trace_rows lacks it too: a stand-in there */
        static const char k[] = "\"started_ns\":";
        const char *at = memmem(e.row, e.row_len, k, sizeof(k) - 1);
        int64_t started = at ? strtoll(at + sizeof(k) - 1, NULL, 10) : 0;
        size_t off = C->standins.text.len;
        pc_ch_trace_rows_standin(&C->standins.text, C->dialect, e.project_id, e.trace_id,
                                 started);
        pc_ch_rows_add(&C->standins, off, rows->v[i].month,
                       (pc_str){e.project_id, strlen(e.project_id)},
                       (pc_str){e.trace_id, strlen(e.trace_id)}, PC_STR_NULL);
    }
    pc_log(PC_LOG_WARN, C->id, "%s row of project '%s' trace '%s'%s%s refused, dead-lettered: %s",
           table, e.project_id, e.trace_id, *e.span_id ? " span " : "", e.span_id, why->why);
    return PC_CH_GEN_OK;
}

/*
 * Stores the |k| rows of |rows| listed in |idx|: sends them as one block and,
 * when the server refuses the block's data, bisects it down to the rows it
 * refuses alone, which are dead-lettered. PC_CH_GEN_OK (everything stored or set
 * aside) or PC_CH_GEN_RETRY.
 */
static int store_block(pc_ch_exporter *C, CURL *h, const char *table, const char *query,
                       const pc_ch_rows *rows, const size_t *idx, size_t k, int64_t deadline)
{
    /* The body: the rows' own text when they lie back to back (the common
     * case: one month), else gathered; compressed once, whatever the retries,
     * and sent as it is if the codec fails. The buffers are the flusher's. */
    const char *body;
    size_t n;
    if (!pc_ch_rows_text_body(rows, idx, k, &body, &n)) {
        pc_ch_rows_body(rows, idx, k, &C->body);
        body = C->body.data;
        n = C->body.len;
    }
    const char *enc = NULL;
    if (C->codec != PC_CH_CODEC_NONE && pc_ch_zip_body(C->zip, &C->zbody, body, n) == 0) {
        body = C->zbody.data;
        n = C->zbody.len;
        enc = pc_ch_codec_name(C->codec);
    }
    refusal why = {0};
    int st = send_block(C, h, query, body, n, enc, deadline, &why);
    if (st != PC_CH_GEN_DATA) return st;
    if (k == 1) return dead_letter(C, table, rows, idx[0], &why);
    size_t half = k / 2;
    st = store_block(C, h, table, query, rows, idx, half, deadline);
    if (st == PC_CH_GEN_OK)
        st = store_block(C, h, table, query, rows, idx + half, k - half, deadline);
    return st;
}

/* One insert's sending: the flusher's handle and the insert's deadline. */
typedef struct flight {
    pc_ch_exporter *C;
    CURL *h;
    int64_t deadline;
} flight;

/* Stores every row of |rows| into |table|, in blocks of at most
 * batch.max_partitions partitions: 0, or PC_CH_GEN_RETRY. A pc_ch_store_rows_fn
 * (the search index stores its rows through it too). */
static int store_rows(void *fp, const char *table, const char *query, const pc_ch_rows *rows)
{
    flight *f = fp;
    if (rows->n == 0) return 0;
    size_t *idx = pc_xmalloc(rows->n * sizeof(*idx)), *ends = pc_xmalloc(rows->n * sizeof(*ends));
    size_t ng = pc_ch_rows_partition_groups(rows, (int)f->C->cfg->max_partitions, idx, ends);
    int st = PC_CH_GEN_OK;
    for (size_t gi = 0, from = 0; gi < ng && st == PC_CH_GEN_OK; from = ends[gi++])
        st = store_block(f->C, f->h, table, query, rows, idx + from, ends[gi] - from, f->deadline);
    free(idx);
    free(ends);
    return st == PC_CH_GEN_OK ? 0 : st;
}

/* When the pending insert |g| is due; see "Group commit". Spooling first, the
 * drainer alone joins, and it says when (spool_flush). Call with C->mu held. */
static int64_t due_at(const pc_ch_exporter *C, const pc_ch_gen *g)
{
    if (C->stopping || g->rows >= C->max_rows || g->sealed) return 0;
    if (C->first) return g->deadline;
    int64_t floor = C->last_send_mono + C->max_wait_ns, late = C->last_done_mono + C->max_wait_ns;
    return g->joins >= C->want_joins || late < floor ? floor : late;
}

void *pc_ch_flusher_main(void *arg)
{
    pc_ch_exporter *C = arg;
    pc_thread_name("ch-flusher");
    CURL *h = curl_easy_init();
    C->zip = pc_ch_zip_create(C->codec, (int)C->cfg->compression_level);
    pc_buf q_spans = PC_BUF_INIT, q_traces = PC_BUF_INIT, q_events = PC_BUF_INIT;
    pc_buf q_marks = PC_BUF_INIT, q_standins = PC_BUF_INIT;
    pc_ch_insert_marks(&q_marks, C->cfg->database);
    pc_ch_insert_standins(&q_standins, C->cfg->database);
    pc_ch_insert_spans(&q_spans, C->dialect, C->cfg->database);
    pc_ch_insert_traces(&q_traces, C->cfg->database);
    pc_ch_insert_span_events(&q_events, C->cfg->database);
    pc_ch_search_writer search;
    pc_ch_search_writer_init(&search, C->cfg->database);
    pthread_mutex_lock(&C->mu);
    for (;;) {
        while (!(C->pending && pc_time_mono_ns() >= due_at(C, C->pending)) &&
               !(C->stopping && !C->pending)) {
            if (!C->pending) {
                pthread_cond_wait(&C->work_cv, &C->mu);
            } else {
                pc_cond_wait_until(&C->work_cv, &C->mu, due_at(C, C->pending));
            }
        }
        pc_ch_gen *g = C->pending;
        if (!g) break; /* stopping, nothing left */
        C->pending = NULL;
        C->last_send_mono = pc_time_mono_ns();
        pthread_mutex_unlock(&C->mu);
        /* The hours' marks before anything they mark (clickhouse_rollup.h); then
         * spans: a trace row never points at spans that are not there. */
        flight f = {C, h, g->deadline};
        int st = store_rows(&f, "stats_marks", q_marks.data, &g->marks);
        C->unmerge = &g->traces;
        if (!st) st = store_rows(&f, "spans", q_spans.data, &g->spans);
        C->unmerge = NULL;
        if (!st) st = store_rows(&f, "traces", q_traces.data, &g->traces);
        if (!st) st = store_rows(&f, "trace_rows", q_standins.data, &C->standins);
        pc_ch_rows_reset(&C->standins);
        if (!st) st = store_rows(&f, "span_events", q_events.data, &g->events);
        /* Then the search index of what is stored. */
        if (!st) st = pc_ch_search_store(&search, &g->search, store_rows, &f);
        pthread_mutex_lock(&C->mu);
        C->last_done_mono = pc_time_mono_ns();
        C->want_joins = g->joins + (C->pending ? C->pending->joins : 0);
        g->state = st ? st : PC_CH_GEN_OK;
        pthread_cond_broadcast(&C->done_cv);
        pc_ch_gen_unref_locked(C, g);
    }
    pthread_mutex_unlock(&C->mu);
    curl_easy_cleanup(h);
    pc_ch_zip_destroy(C->zip);
    C->zip = NULL;
    pc_buf_free(&C->body);
    pc_buf_free(&C->zbody);
    pc_buf_free(&q_spans);
    pc_buf_free(&q_traces);
    pc_buf_free(&q_events);
    pc_buf_free(&q_marks);
    pc_buf_free(&q_standins);
    pc_ch_rows_free(&C->standins);
    pc_ch_search_writer_free(&search);
    return NULL;
}
