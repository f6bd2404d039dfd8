/*
 * clickhouse_store.c - the query store over ClickHouse (see
 * clickhouse_store.h): each store op builds one SELECT (clickhouse_query.c),
 * runs it read-only and bounded, and parses the TabSeparated rows.
 *
 * Data flow: query receiver → st_*() → run_sql() → POST with URL settings
 * readonly=1 (the server refuses anything but reading, whatever the SQL
 * says) and max_execution_time = `query_timeout` (the server stops a runaway
 * query; curl waits a little longer for that answer) → rows → callbacks.
 *
 * Abandoned queries: every read carries a query_id of its own
 * ("prela-<nonce>-<n>"); when curl gives up on one (the server did not stop
 * it at max_execution_time, or did not answer), a KILL QUERY for that id is
 * sent at once, so the server stops working on an answer nobody waits for.
 *
 * Lists read the traces table window by window (pc_ch_sql_list_window):
 * the newest hour of the requested range first, then a window four times
 * wider, until the page is full or the window covers the range.
 *
 * Sessions and stats (issue 13): SQL from clickhouse_agg.c; sessions in two
 * reads (the page from the traces rows, then its span sums), stats in one,
 * at the search's low priority (it may read a wide time range).
 *
 * Search: the index first (st_search below, clickhouse_search.h); the scan,
 * for queries the index cannot serve, is the read a client can make
 * expensive (a long pattern over long values): see pc_ch_sql_search for how
 * its SQL bounds a row's cost and search_settings() below for how the server
 * is made to check its time limit after every few rows.
 */
#include "clickhouse_store.h"

#include "clickhouse_agg.h"
#include "clickhouse_events.h"
#include "clickhouse_search.h"
#include "local_contains.h"
#include "local_text.h"
#include "span_events.h"
#include "log.h"
#include "mem.h"
#include "timefmt.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Grace curl gives the server past max_execution_time to answer with its error;
 * past it the query is killed (kill_query). */
#define QUERY_GRACE_MS 1000
/* What a KILL QUERY may take. */
#define KILL_TIMEOUT_MS 2000

/* The URL settings of every read but search: the server's query priority 1,
 * the highest (0 would be "none"); searches run at 2, see search_settings. */
#define READ_SETTINGS "priority=1"

/*
 * Runs the read-only statement |sql| (in the body) with a read handle, under
 * readonly=1, max_execution_time = query_timeout and the URL settings
 * |extra| ("a=1&b=2"). 0 with the answer in |out|, PC_STORE_TIMEOUT when the
 * server or curl gave up at the time limit, or -1 after logging |what|
 * failed.
 * The modern dialect also asks the server to cancel the query when the
 * connection closes (cancel_http_readonly_queries_on_client_close, which
 * 18.16 does not know: an unknown setting fails the query there).
 */
/*
 * Asks the server to stop the query |query_id| (KILL QUERY ... ASYNC: the
 * server marks it cancelled; it stops at its next check). Logs a failure,
 * which changes nothing for the caller.
 */
static void kill_query(pc_ch_store *S, const char *query_id)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "KILL QUERY WHERE query_id = '%s' ASYNC FORMAT TabSeparated",
             query_id); /* the id is ours: [a-z0-9-] */
    CURL *h = pc_ch_http_acquire(S->http);
    pc_ch_reply r = {0};
    pc_ch_http_post(S->http, h, NULL, NULL, sql, strlen(sql), false, KILL_TIMEOUT_MS, &r);
    pc_ch_http_release(S->http, h);
    if (!pc_ch_reply_ok(&r))
        pc_ch_http_log_failure(S->http, &r, "cannot stop an abandoned query");
    else
        pc_buf_free(&r.body);
    __atomic_add_fetch(&S->killed, 1, __ATOMIC_RELAXED);
}

/* True when a transfer that ended with |c| may have left its query running on
 * the server: the request went out and the answer did not come back whole (a
 * connection never made runs nothing, and costs no KILL). */
static bool may_run(CURLcode c)
{
    return c == CURLE_OPERATION_TIMEDOUT || c == CURLE_RECV_ERROR || c == CURLE_GOT_NOTHING ||
           c == CURLE_PARTIAL_FILE || c == CURLE_SEND_ERROR || c == CURLE_ABORTED_BY_CALLBACK ||
           c == CURLE_WRITE_ERROR;
}

static int run_sql(pc_ch_store *S, const char *sql, const char *what, const char *extra,
                   pc_buf *out)
{
    CURL *h = pc_ch_http_acquire(S->http);
    pc_ch_reply r = {0};
    char settings[320], query_id[64];
    long secs = S->query_timeout_s;
    snprintf(query_id, sizeof(query_id), "prela-%016llx-%llu", (unsigned long long)S->nonce,
             (unsigned long long)__atomic_add_fetch(&S->queries, 1, __ATOMIC_RELAXED));
    snprintf(settings, sizeof(settings),
             "query_id=%s&log_queries=1&wait_end_of_query=1&max_execution_time=%ld&readonly=1%s&%s",
             query_id, secs,
             S->dialect == PC_CH_MODERN ? "&cancel_http_readonly_queries_on_client_close=1" : "",
             extra);
    pc_ch_http_post(S->http, h, NULL, settings, sql, strlen(sql), false,
                    secs * 1000 + QUERY_GRACE_MS, &r);
    pc_ch_http_release(S->http, h);
    if (may_run(r.curl)) kill_query(S, query_id); /* nobody waits for its answer now */
    if (!pc_ch_reply_ok(&r) &&
        (r.curl == CURLE_OPERATION_TIMEDOUT ||
         (r.curl == CURLE_OK && pc_ch_error_code(&r) == 159 /* TIMEOUT_EXCEEDED */))) {
        pc_log(PC_LOG_WARN, S->id, "%s: stopped at the query time limit (%ld s)", what, secs);
        pc_buf_free(&r.body);
        return PC_STORE_TIMEOUT;
    }
    if (!pc_ch_reply_ok(&r)) return pc_ch_http_log_failure(S->http, &r, what);
    *out = r.body;
    return 0;
}

/* The number of rows (lines) of a TabSeparated answer. */
static int count_rows(const pc_buf *out)
{
    int n = 0;
    for (size_t i = 0; i < out->len; i++)
        n += out->data[i] == '\n';
    return n;
}

/* Hands each row of the TabSeparated answer |out| (freed here) to |row|. */
static int deliver(pc_ch_store *S, pc_buf *out, const char *what, int ncols,
                   int (*row)(char **cols, void *cb, void *ud), void *cb, void *ud)
{
    int rc = 0;
    char *cur = out->data, *end = out->data + out->len, *cols[PC_CH_SPAN_COLS];
    int n;
    while ((n = pc_ch_tsv_row(&cur, end, cols, ncols)) > 0) {
        if (n != ncols) {
            pc_log(PC_LOG_ERROR, S->id, "%s: expected %d columns, got %d", what, ncols, n);
            rc = -1;
            break;
        }
        if (row(cols, cb, ud) != 0) break;
    }
    pc_buf_free(out);
    return rc;
}

/* Runs |sql| with the URL settings |extra| and frees it; hands each
 * TabSeparated row of |ncols| columns to |row|. */
static int each_row(pc_ch_store *S, pc_buf *sql, const char *what, const char *extra, int ncols,
                    int (*row)(char **cols, void *cb, void *ud), void *cb, void *ud)
{
    pc_buf out;
    int rc = run_sql(S, sql->data, what, extra, &out);
    pc_buf_free(sql);
    if (rc < 0) return rc;
    return deliver(S, &out, what, ncols, row, cb, ud);
}

static int trace_row(char **cols, void *cb, void *ud)
{
    pc_trace_row r;
    pc_ch_read_trace(cols, &r);
    return ((pc_trace_cb)cb)(ud, &r);
}

static int span_row(char **cols, void *cb, void *ud)
{
    pc_span_row r;
    pc_ch_read_span(cols, &r);
    return ((pc_span_cb)cb)(ud, &r);
}

/* The candidates of a list window (pc_ch_sql_list_candidates) into |*n|. */
static int count_candidates(pc_ch_store *S, const pc_trace_filter *f, int64_t lo, int64_t top,
                            int cand_extra, int64_t *n)
{
    pc_buf sql = PC_BUF_INIT, out;
    pc_ch_sql_list_candidates(&sql, S->database, f, lo, top, cand_extra);
    int rc = run_sql(S, sql.data, "list traces", READ_SETTINGS, &out);
    pc_buf_free(&sql);
    if (rc < 0) return rc;
    *n = out.data ? strtoll(out.data, NULL, 10) : 0;
    pc_buf_free(&out);
    return 0;
}

/*
 * A list, window by window: the first window is the newest PC_CH_WINDOW_FIRST
 * of the range (below the range's end, the cursor, or now when neither is
 * given: rows started later are inside every window), each next one four
 * times wider; the answer of the first window that fills the page, or that
 * reaches the range's start (or grew past PC_CH_WINDOW_MAX: no edge), is the
 * list. A window's answer is exact (see the contract), so a full page from a
 * narrow window is the page a whole-range read would give. The windows
 * together stop at query_timeout (PC_STORE_TIMEOUT), as one read does.
 */
static int st_list_traces(void *ctx, const pc_trace_filter *f, pc_trace_cb cb, void *ud)
{
    pc_ch_store *S = ctx;
    int64_t top = INT64_MAX;
    if (f->end_ns) top = f->end_ns;
    if (f->after && f->after->started_ns < top) top = f->after->started_ns;
    int64_t anchor = top != INT64_MAX ? top : pc_time_now_ns();
    int limit = f->limit > 0 ? f->limit : 1;
    /* the windows together get query_timeout too (each one gets it on the server) */
    int64_t deadline = pc_time_mono_ns() + (int64_t)S->query_timeout_s * 1000000000LL;
    int cand_extra = PC_CH_WINDOW_SLACK;
    bool inexact = pc_ch_filter_inexact(f);
    /* A session or a user names few traces, found by equality on the traces
     * rows (pc_ch_sql_list_window's pre-filter) wherever they lie: one read of
     * the whole range instead of windows widening to it (a rare user took all
     * nine). A model may name most traces: it keeps the windows. */
    int64_t width = f->session_id || f->user_id ? PC_CH_WINDOW_MAX : PC_CH_WINDOW_FIRST;
    for (int reads = 0;; reads++) {
        if (reads > 0 && pc_time_mono_ns() > deadline) {
            pc_log(PC_LOG_WARN, S->id, "list traces: stopped at the query time limit (%ld s)",
                   S->query_timeout_s);
            return PC_STORE_TIMEOUT;
        }
        int64_t lo = anchor > INT64_MIN + width ? anchor - width : INT64_MIN;
        bool last = width >= PC_CH_WINDOW_MAX || lo == INT64_MIN;
        if (last) lo = INT64_MIN;
        if (f->start_ns && lo <= f->start_ns) {
            lo = f->start_ns;
            last = true;
        }
        pc_buf sql = PC_BUF_INIT, out;
        pc_ch_sql_list_window(&sql, S->dialect, S->database, f, lo, top, cand_extra);
        int rc = run_sql(S, sql.data, "list traces", READ_SETTINGS, &out);
        pc_buf_free(&sql);
        if (rc < 0) return rc;
        if (count_rows(&out) >= limit)
            return deliver(S, &out, "list traces", PC_CH_TRACE_COLS, trace_row, (void *)cb, ud);
        if (inexact) { /* short: were candidates left out? (see pc_ch_filter_inexact) */
            int offset = f->offset > 0 ? f->offset : 0;
            int64_t cap = (int64_t)offset + limit + cand_extra, n = 0;
            rc = count_candidates(S, f, lo, top, cand_extra, &n);
            if (rc < 0) {
                pc_buf_free(&out);
                return rc;
            }
            if (n >= cap && cand_extra < INT32_MAX / 8) {
                pc_buf_free(&out);
                cand_extra *= 8; /* the same window again, with more candidates */
                continue;
            }
        }
        if (last)
            return deliver(S, &out, "list traces", PC_CH_TRACE_COLS, trace_row, (void *)cb, ud);
        pc_buf_free(&out);
        width *= 4;
    }
}

static int st_get_trace(void *ctx, const char *project_id, const char *trace_id, pc_trace_cb cb,
                        void *ud)
{
    pc_ch_store *S = ctx;
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_get_trace(&sql, S->database, project_id, trace_id);
    return each_row(S, &sql, "get trace", READ_SETTINGS, PC_CH_TRACE_COLS, trace_row, (void *)cb,
                    ud);
}

/*
 * The attached events of one trace (clickhouse_events.h), in the answer's
 * order (span_id, then time): span_id and event of each row point into
 * |out|, which owns them.
 */
typedef struct trace_events {
    pc_buf out;
    char **span, **ev;
    size_t *len;
    size_t n;
    bool cut; /* the server stopped the answer at EVENTS_READ_BYTES */
    pc_span_cb cb; /* the caller's, for each merged row */
    void *ud;
    pc_span_events m;
} trace_events;

static void trace_events_free(trace_events *t)
{
    pc_buf_free(&t->out);
    free(t->span);
    free(t->ev);
    free(t->len);
    pc_span_events_free(&t->m);
}

/* The most bytes of attached events one trace read takes from the server
 * (max_result_bytes, result_overflow_mode=break: the server stops sending at
 * a block boundary past it); an answer that reached it marks every merged
 * span cut. Per span, span_events.c bounds the merge at
 * PC_SPAN_EVENTS_MAX_BYTES. */
#define EVENTS_READ_BYTES (64LL << 20)

/* Reads the events of trace (|project_id|, |trace_id|) into |t|. 0 / < 0. */
static int load_events(pc_ch_store *S, const char *project_id, const char *trace_id,
                       trace_events *t)
{
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_trace_events(&sql, S->database, project_id ? project_id : "", trace_id);
    char extra[160];
    snprintf(extra, sizeof(extra), "%s&max_result_bytes=%lld&result_overflow_mode=break",
             READ_SETTINGS, EVENTS_READ_BYTES);
    int rc = run_sql(S, sql.data, "get span events", extra, &t->out);
    pc_buf_free(&sql);
    if (rc < 0) return rc;
    t->cut = (long long)t->out.len >= EVENTS_READ_BYTES;
    size_t cap = (size_t)count_rows(&t->out);
    t->span = pc_xmalloc((cap + 1) * sizeof(char *));
    t->ev = pc_xmalloc((cap + 1) * sizeof(char *));
    t->len = pc_xmalloc((cap + 1) * sizeof(size_t));
    char *cur = t->out.data, *end = t->out.data + t->out.len, *cols[2];
    while (t->n < cap && pc_ch_tsv_row(&cur, end, cols, 2) == 2) {
        t->span[t->n] = cols[0];
        t->ev[t->n] = cols[1];
        t->len[t->n] = strlen(cols[1]);
        t->n++;
    }
    return 0;
}

/* A span row with the attached events of its span merged (span_events.h). */
static int merged_span_row(char **cols, void *cb, void *ud)
{
    (void)cb;
    trace_events *t = ud;
    pc_span_row r;
    pc_ch_read_span(cols, &r);
    size_t lo = 0, hi = t->n; /* the first row of span r.span_id */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(t->span[mid], r.span_id) < 0) lo = mid + 1;
        else hi = mid;
    }
    size_t k = lo;
    while (k < t->n && strcmp(t->span[k], r.span_id) == 0)
        k++;
    if (k > lo) {
        size_t n = k - lo;
        bool cut = n > PC_SPAN_EVENTS_MAX || t->cut;
        pc_span_events_merge(&t->m, &r, (const char *const *)t->ev + lo, t->len + lo,
                             cut ? PC_SPAN_EVENTS_MAX : n, cut);
    }
    return t->cb(t->ud, &r);
}

static int st_get_spans(void *ctx, const char *project_id, const char *trace_id, int limit,
                        int offset, pc_span_cb cb, void *ud)
{
    pc_ch_store *S = ctx;
    trace_events t = {.out = PC_BUF_INIT, .cb = cb, .ud = ud, .m = PC_SPAN_EVENTS_INIT};
    int rc = load_events(S, project_id, trace_id, &t);
    if (rc < 0) {
        trace_events_free(&t);
        return rc;
    }
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_get_spans(&sql, S->database, project_id, trace_id, limit, offset);
    if (t.n == 0) {
        trace_events_free(&t);
        return each_row(S, &sql, "get spans", READ_SETTINGS, PC_CH_SPAN_COLS, span_row,
                        (void *)cb, ud);
    }
    rc = each_row(S, &sql, "get spans", READ_SETTINGS, PC_CH_SPAN_COLS, merged_span_row, NULL,
                  &t);
    trace_events_free(&t);
    return rc;
}

/*
 * The URL settings of a search for a |pattern_len|-byte text. The server
 * checks max_execution_time between blocks, and evaluates the search
 * condition over a whole block at once, so:
 *   max_block_size = pc_ch_search_block_rows(): a block's worst case stays
 *     well under a second (measured on 18.16: 8,000 rows of 2 KB in one
 *     block ran 7.5 s past a 1 s limit; in blocks of 128 rows it stopped at
 *     1.07 s);
 *   optimize_move_to_prewhere = 0: as a PREWHERE the condition filters
 *     inside the table reader, which returns no block until a row matches,
 *     so a search matching nothing was never checked at all (18.16 ran one
 *     for 71 s under max_execution_time = 1).
 *   priority = 2 (other reads run at 1, the higher one: READ_SETTINGS) and
 *     max_threads = 1: a search, the one read a client can make expensive,
 *     takes one core at most and pauses while any other read runs (the
 *     server's query priorities), so concurrent searches cannot starve span
 *     reads and lists (measured on 18.16, a loaded 2-core machine, four
 *     hostile searches: a 50 ms read's worst case 3.0 s without, 1.1 s with).
 * All of these are known to 18.16 and to current releases.
 */
static void search_settings(char *out, size_t len, size_t pattern_len)
{
    snprintf(out, len, "max_block_size=%d&optimize_move_to_prewhere=0&max_threads=1&priority=2",
             pc_ch_search_block_rows(pattern_len));
}

/* Search through the scan of pc_ch_sql_search: queries the index cannot serve. */
static int scan_search(pc_ch_store *S, const char *project_id, const char *query, int limit,
                       int64_t before_ns, pc_trace_cb cb, void *ud)
{
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_search(&sql, S->database, project_id, query, limit, before_ns);
    char extra[96];
    search_settings(extra, sizeof(extra), query ? strlen(query) : 0);
    return each_row(S, &sql, "search", extra, PC_CH_TRACE_COLS, trace_row, (void *)cb, ud);
}

/* Most candidate blocks a search verifies before it walks the newest traces
 * instead (a common word), and traces verified per read of their spans. */
#define SEARCH_BLOCKS 64
#define VERIFY_TRACES 256
/* A read of candidate spans answers at most 64 MiB (the server fails it
 * beyond: the query API answers 503), whatever the spans hold. */
#define VERIFY_SETTINGS "max_result_bytes=67108864&result_overflow_mode=throw"

/* Candidate traces: (project, trace id) pairs pointing into |text|. */
typedef struct cands {
    const char **projects, **ids;
    bool *hit;
    size_t n, cap;
    uint64_t *blocks;
    size_t nblocks;
    const pc_local_needle *needle;
    const char *run; /* the query's ASCII run for the server's prefilter, run_len 0: none */
    size_t run_len;
} cands;

static void cands_add(cands *c, const char *project, const char *id)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->projects = pc_xrealloc(c->projects, c->cap * sizeof(*c->projects));
        c->ids = pc_xrealloc(c->ids, c->cap * sizeof(*c->ids));
        c->hit = pc_xrealloc(c->hit, c->cap * sizeof(*c->hit));
    }
    c->projects[c->n] = project;
    c->ids[c->n] = id;
    c->hit[c->n++] = false;
}

static int block_row(char **cols, void *cb, void *ud)
{
    (void)cb;
    cands *c = ud;
    c->blocks = pc_xrealloc(c->blocks, (c->nblocks + 1) * sizeof(*c->blocks));
    c->blocks[c->nblocks++] = strtoull(cols[0], NULL, 10);
    return 0;
}

/* A span of a candidate: marks its trace matched when its search text holds the needle. */
typedef struct verify_ctx {
    cands *c;
    size_t from, to; /* the candidates being verified */
    pc_buf text;
} verify_ctx;

static int verify_row(char **cols, void *cb, void *ud)
{
    (void)cb;
    verify_ctx *v = ud;
    size_t i = v->from;
    for (; i < v->to; i++)
        if (strcmp(v->c->ids[i], cols[1]) == 0 && strcmp(v->c->projects[i], cols[0]) == 0) break;
    if (i == v->to || v->c->hit[i]) return 0;
    pc_local_text_in in = {cols[2], strlen(cols[2]), cols[3], strlen(cols[3]),
                           cols[4], strlen(cols[4]), cols[5], strlen(cols[5]),
                           cols[6], strlen(cols[6])};
    pc_buf_reset(&v->text);
    pc_local_search_text(&v->text, &in);
    v->c->hit[i] = pc_local_needle_in(v->c->needle, v->text.data ? v->text.data : "",
                                      v->text.len) == 1;
    return 0;
}

/* Verifies candidates [from, to) against their spans. 0 or a store error. */
static int verify(pc_ch_store *S, cands *c, size_t from, size_t to)
{
    verify_ctx v = {c, from, to, PC_BUF_INIT};
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_verify_spans(&sql, S->database, c->projects + from, c->ids + from, to - from,
                           c->run, c->run_len);
    int rc = each_row(S, &sql, "search", VERIFY_SETTINGS, 7, verify_row, NULL, &v);
    /* then the events attached to their spans (clickhouse_events.h), for the
     * traces no span of which matched */
    size_t k = 0;
    const char **p = pc_xmalloc((to - from) * sizeof(*p)), **t = pc_xmalloc((to - from) * sizeof(*t));
    for (size_t i = from; i < to; i++)
        if (!c->hit[i]) {
            p[k] = c->projects[i];
            t[k++] = c->ids[i];
        }
    if (rc == 0 && k) {
        pc_ch_sql_verify_events(&sql, S->database, p, t, k, c->run, c->run_len);
        rc = each_row(S, &sql, "search", VERIFY_SETTINGS, 7, verify_row, NULL, &v);
    }
    free(p);
    free(t);
    pc_buf_free(&v.text);
    return rc;
}

/* Hands the summaries of the matched candidates [from, to) to |cb|, at most
 * *left of them. */
static int emit_hits(pc_ch_store *S, cands *c, size_t from, size_t to, int *left,
                     pc_trace_cb cb, void *ud)
{
    const char **p = pc_xmalloc((to - from) * sizeof(*p)), **t = pc_xmalloc((to - from) * sizeof(*t));
    size_t n = 0;
    for (size_t i = from; i < to && (int)n < *left; i++)
        if (c->hit[i]) {
            p[n] = c->projects[i];
            t[n++] = c->ids[i];
        }
    int rc = 0;
    if (n) {
        pc_buf sql = PC_BUF_INIT;
        pc_ch_sql_summaries_of(&sql, S->database, p, t, n);
        *left -= (int)n;
        rc = each_row(S, &sql, "search", "", PC_CH_TRACE_COLS, trace_row, (void *)cb, ud);
    }
    free(p);
    free(t);
    return rc;
}

/* One page of the newest traces, kept as candidates (a common word's walk). */
typedef struct walk_page {
    cands *c;
    pc_buf keep; /* the rows' ids, copied: the page's answer is freed */
    size_t *offs;
    pc_trace_key last;
    int rows;
} walk_page;

static int walk_row(void *ud, const pc_trace_row *r)
{
    walk_page *w = ud;
    w->offs = pc_xrealloc(w->offs, (size_t)(w->rows + 1) * 2 * sizeof(*w->offs));
    w->offs[2 * w->rows] = w->keep.len;
    pc_buf_append(&w->keep, r->project_id, strlen(r->project_id) + 1);
    w->offs[2 * w->rows + 1] = w->keep.len;
    pc_buf_append(&w->keep, r->trace_id, strlen(r->trace_id) + 1);
    w->last.started_ns = r->started_ns;
    w->rows++;
    return 0;
}

static int st_list_traces(void *ctx, const pc_trace_filter *f, pc_trace_cb cb, void *ud);
static int mixed_search(pc_ch_store *S, const char *project_id, const char *query, int limit,
                        pc_trace_cb cb, void *ud);
static int index_search(pc_ch_store *S, const char *project_id, const char *query, size_t qn,
                        const uint64_t *keys, int nk, int limit, pc_trace_cb cb, void *ud);

/*
 * Search (store.h): a query of 3+ code points without a line end asks the
 * index (clickhouse_search.h) for the newest blocks holding all of its
 * sampled trigram keys. Up to SEARCH_BLOCKS of them: their traces, newest
 * first, are verified VERIFY_TRACES at a time on their spans' search text
 * (the local store's text and matcher: exact substring, Unicode case
 * folding) until |limit| matched. More blocks (a common word): the newest
 * traces, a page of VERIFY_TRACES at a time, are verified the same way,
 * until |limit| matched or the query time limit. Other queries: the scan.
 */
static int st_search(void *ctx, const char *project_id, const char *query, int limit,
                     pc_trace_cb cb, void *ud)
{
    pc_ch_store *S = ctx;
    size_t qn = query ? strlen(query) : 0;
    uint64_t keys[PC_CH_SEARCH_KEYS];
    int nk = qn ? pc_local_query_keys(query, qn, keys, PC_CH_SEARCH_KEYS) : 0;
    if (nk == 0) return scan_search(S, project_id, query, limit, 0, cb, ud);
    if (S->search_since_ns > 0) return mixed_search(S, project_id, query, limit, cb, ud);
    return index_search(S, project_id, query, qn, keys, nk, limit, cb, ud);
}

/* Keeps copies of trace rows (mixed_search). */
typedef struct kept {
    pc_trace_row *rows;
    size_t n, cap;
} kept;

static char *dup0(const char *s)
{
    return pc_xstrdup(s ? s : "");
}

static int keep_row(void *ud, const pc_trace_row *r)
{
    kept *k = ud;
    for (size_t i = 0; i < k->n; i++) /* found by both: the index and the scan */
        if (strcmp(k->rows[i].trace_id, r->trace_id) == 0 &&
            strcmp(k->rows[i].project_id, r->project_id) == 0)
            return 0;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 32;
        k->rows = pc_xrealloc(k->rows, k->cap * sizeof(*k->rows));
    }
    pc_trace_row *c = &k->rows[k->n++];
    *c = *r;
    c->trace_id = dup0(r->trace_id);
    c->project_id = dup0(r->project_id);
    c->service_name = dup0(r->service_name);
    c->root_span_id = dup0(r->root_span_id);
    c->root_span_name = dup0(r->root_span_name);
    c->status = dup0(r->status);
    c->source = dup0(r->source);
    c->session_id = dup0(r->session_id);
    c->user_id = dup0(r->user_id);
    return 0;
}

/* List order: newest start first, then trace id and project id descending. */
static int newest_first(const void *a, const void *b)
{
    const pc_trace_row *x = a, *y = b;
    if (x->started_ns != y->started_ns) return x->started_ns < y->started_ns ? 1 : -1;
    int c = strcmp(y->trace_id, x->trace_id);
    return c ? c : strcmp(y->project_id, x->project_id);
}

/*
 * A database migrated to schema 5 holds spans written before the index
 * existed (S->search_since_ns): the index's answer and a scan of those older
 * spans, merged in list order. (The scan looks at them as the scan does: the
 * JSON text, ASCII-folded, the first 64 KiB of each value.)
 */
static int mixed_search(pc_ch_store *S, const char *project_id, const char *query, int limit,
                        pc_trace_cb cb, void *ud)
{
    kept k = {0};
    uint64_t keys[PC_CH_SEARCH_KEYS];
    size_t qn = strlen(query);
    int nk = pc_local_query_keys(query, qn, keys, PC_CH_SEARCH_KEYS);
    int rc = index_search(S, project_id, query, qn, keys, nk, limit, keep_row, &k);
    if (rc == 0) rc = scan_search(S, project_id, query, limit, S->search_since_ns, keep_row, &k);
    if (k.n > 1) qsort(k.rows, k.n, sizeof(*k.rows), newest_first);
    for (size_t i = 0; rc == 0 && i < k.n && (int)i < limit; i++)
        if (cb(ud, &k.rows[i]) != 0) break;
    for (size_t i = 0; i < k.n; i++) {
        pc_trace_row *r = &k.rows[i];
        const char *strs[] = {r->trace_id,  r->project_id, r->service_name,
                              r->root_span_id, r->root_span_name, r->status,
                              r->source,    r->session_id, r->user_id};
        for (size_t j = 0; j < sizeof(strs) / sizeof(strs[0]); j++)
            free((char *)strs[j]);
    }
    free(k.rows);
    return rc;
}

/* Whether the search begun at |start| (monotonic ns) ran past query_timeout:
 * each read is bounded on the server, the rounds of verification here. */
static bool past(const pc_ch_store *S, int64_t start)
{
    return pc_time_mono_ns() - start > (int64_t)S->query_timeout_s * 1000000000LL;
}

static int timed_out(const pc_ch_store *S)
{
    pc_log(PC_LOG_WARN, S->id, "search: stopped at the query time limit (%ld s)",
           S->query_timeout_s);
    return PC_STORE_TIMEOUT;
}

/* The search through the index (see st_search). */
static int index_search(pc_ch_store *S, const char *project_id, const char *query, size_t qn,
                        const uint64_t *keys, int nk, int limit, pc_trace_cb cb, void *ud)
{
    int64_t start = pc_time_mono_ns();
    pc_local_needle *needle = pc_local_needle_create(query, qn);
    cands c = {.needle = needle};
    size_t at;
    c.run_len = pc_ch_search_ascii_run(query, qn, &at);
    c.run = query + at;
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_search_blocks(&sql, S->database, keys, nk, SEARCH_BLOCKS + 1);
    int rc = each_row(S, &sql, "search", "", 1, block_row, NULL, &c);
    int left = limit;
    if (rc == 0 && c.nblocks <= SEARCH_BLOCKS) {
        pc_buf out = PC_BUF_INIT;
        if (c.nblocks) {
            pc_ch_sql_block_traces(&sql, S->database, project_id, c.blocks, c.nblocks);
            rc = run_sql(S, sql.data, "search", "", &out);
            pc_buf_free(&sql);
            if (rc == 0) {
                /* the rows stay in |out| while their ids are candidates */
                char *cur = out.data, *end = out.data + out.len, *cols[3];
                while (pc_ch_tsv_row(&cur, end, cols, 3) == 3)
                    cands_add(&c, cols[0], cols[1]);
            }
        }
        for (size_t from = 0; rc == 0 && left > 0 && from < c.n; from += VERIFY_TRACES) {
            if (from > 0 && past(S, start)) {
                rc = timed_out(S);
                break;
            }
            size_t to = from + VERIFY_TRACES < c.n ? from + VERIFY_TRACES : c.n;
            rc = verify(S, &c, from, to);
            if (rc == 0) rc = emit_hits(S, &c, from, to, &left, cb, ud);
        }
        pc_buf_free(&out);
    } else if (rc == 0) {
        pc_trace_key after = {0};
        bool more = true;
        while (rc == 0 && left > 0 && more) {
            if (after.trace_id && past(S, start)) {
                rc = timed_out(S);
                break;
            }
            walk_page w = {&c, PC_BUF_INIT, NULL, {0}, 0};
            pc_trace_filter f = {.project_id = project_id, .limit = VERIFY_TRACES,
                                 .after = after.trace_id ? &after : NULL};
            rc = st_list_traces(S, &f, walk_row, &w);
            c.n = 0;
            for (int i = 0; i < w.rows; i++)
                cands_add(&c, w.keep.data + w.offs[2 * i], w.keep.data + w.offs[2 * i + 1]);
            if (rc == 0 && c.n) rc = verify(S, &c, 0, c.n);
            if (rc == 0) rc = emit_hits(S, &c, 0, c.n, &left, cb, ud);
            more = w.rows == VERIFY_TRACES;
            if (more) { /* the cursor: the page's last trace, copied before |w| goes */
                free((char *)after.trace_id);
                free((char *)after.project_id);
                after.started_ns = w.last.started_ns;
                after.project_id = pc_xstrdup(c.projects[c.n - 1]);
                after.trace_id = pc_xstrdup(c.ids[c.n - 1]);
            }
            pc_buf_free(&w.keep);
            free(w.offs);
        }
        free((char *)after.trace_id);
        free((char *)after.project_id);
    }
    free(c.projects);
    free(c.ids);
    free(c.hit);
    free(c.blocks);
    pc_local_needle_destroy(needle);
    return rc;
}

/* The rows of a session page, kept while its level-2 sums are read. */
typedef struct session_page {
    pc_session_row *rows;
    const char **projects, **sessions;
    size_t n, cap;
} session_page;

static int collect_session(char **cols, void *cb, void *ud)
{
    (void)cb;
    session_page *p = ud;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->rows = pc_xrealloc(p->rows, p->cap * sizeof(*p->rows));
        p->projects = pc_xrealloc(p->projects, p->cap * sizeof(*p->projects));
        p->sessions = pc_xrealloc(p->sessions, p->cap * sizeof(*p->sessions));
    }
    pc_ch_read_session(cols, &p->rows[p->n]);
    p->projects[p->n] = p->rows[p->n].project_id;
    p->sessions[p->n] = p->rows[p->n].session_id;
    p->n++;
    return 0;
}

static int add_session_sums(char **c, void *cb, void *ud)
{
    (void)cb;
    session_page *p = ud;
    for (size_t i = 0; i < p->n; i++) {
        pc_session_row *r = &p->rows[i];
        if (strcmp(r->session_id, c[0]) != 0 || strcmp(r->project_id, c[1]) != 0) continue;
        r->span_count = strtoll(c[2], NULL, 10);
        r->input_tokens = strtoll(c[3], NULL, 10);
        r->output_tokens = strtoll(c[4], NULL, 10);
        r->cost_usd = pc_ch_cost(c[5]);
        break;
    }
    return 0;
}

/*
 * Sessions in two reads (clickhouse_agg.c): the page from the traces rows,
 * then the span figures of that page's sessions from their deduplicated
 * spans; the rows are handed to |cb| in the page's order.
 */
static int st_list_sessions(void *ctx, const pc_session_filter *f, pc_session_cb cb, void *ud)
{
    pc_ch_store *S = ctx;
    pc_buf sql = PC_BUF_INIT, page_text, sums;
    pc_ch_sql_sessions(&sql, S->database, f);
    int rc = run_sql(S, sql.data, "list sessions", READ_SETTINGS, &page_text);
    pc_buf_free(&sql);
    if (rc < 0) return rc;
    session_page p = {0};
    char *cur = page_text.data, *end = page_text.data + page_text.len, *cols[PC_CH_SESSION_COLS];
    int n;
    while (rc == 0 && (n = pc_ch_tsv_row(&cur, end, cols, PC_CH_SESSION_COLS)) > 0) {
        if (n != PC_CH_SESSION_COLS) {
            pc_log(PC_LOG_ERROR, S->id, "list sessions: expected %d columns, got %d",
                   PC_CH_SESSION_COLS, n);
            rc = -1;
        } else {
            collect_session(cols, NULL, &p);
        }
    }
    if (rc == 0 && p.n) {
        pc_ch_sql_session_sums(&sql, S->database, p.projects, p.sessions, p.n);
        rc = run_sql(S, sql.data, "list sessions", READ_SETTINGS, &sums);
        pc_buf_free(&sql);
        if (rc == 0)
            rc = deliver(S, &sums, "list sessions", PC_CH_SESSION_SUM_COLS, add_session_sums,
                         NULL, &p);
    }
    for (size_t i = 0; rc == 0 && i < p.n; i++)
        if (cb(ud, &p.rows[i]) != 0) break;
    free(p.rows);
    free(p.projects);
    free(p.sessions);
    pc_buf_free(&page_text);
    return rc;
}

static int stats_row(char **cols, void *cb, void *ud)
{
    pc_stats_row r;
    pc_ch_read_stats(cols, &r);
    return ((pc_stats_cb)cb)(ud, &r);
}

/* Stats: one read (clickhouse_agg.c), which may cover a wide range: it runs
 * with the search's low priority, so it never starves span reads and lists. */
static int st_stats(void *ctx, const pc_stats_query *q, pc_stats_cb cb, void *ud)
{
    pc_ch_store *S = ctx;
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_stats(&sql, S->database, q);
    return each_row(S, &sql, "stats", "priority=2", PC_CH_STATS_COLS, stats_row, (void *)cb, ud);
}

static int st_health(void *ctx, char *msg, int msglen)
{
    pc_ch_store *S = ctx;
    pc_buf out;
    if (run_sql(S, "SELECT 1", "health", READ_SETTINGS, &out) < 0) {
        snprintf(msg, (size_t)msglen, "clickhouse: not reachable");
        return -1;
    }
    bool good = out.data && strncmp(out.data, "1", 1) == 0;
    pc_buf_free(&out);
    if (!good) snprintf(msg, (size_t)msglen, "clickhouse: unexpected answer to SELECT 1");
    return good ? 0 : -1;
}

static const pc_store_ops store_ops = {
    .list_traces = st_list_traces,
    .get_trace = st_get_trace,
    .get_spans = st_get_spans,
    .search = st_search,
    .list_sessions = st_list_sessions,
    .stats = st_stats,
    .health = st_health,
};

void pc_ch_store_init(pc_ch_store *S, pc_ch_http *http, const char *id, const char *database,
                      int64_t query_timeout_ms)
{
    S->store.ops = &store_ops;
    S->store.ctx = S;
    S->http = http;
    S->id = id;
    S->database = database;
    S->query_timeout_s = (long)((query_timeout_ms + 999) / 1000);
    S->dialect = PC_CH_LEGACY; /* fewest settings until the server is known */
    S->nonce = (uint64_t)pc_time_now_ns() ^ ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)S;
    S->queries = 0;
    S->killed = 0;
}
