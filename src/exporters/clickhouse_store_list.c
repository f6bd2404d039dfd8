/*
 * clickhouse_store_list.c - trace lists (store.h list_traces) over the
 * `clickhouse` exporter's tables.
 *
 * Data flow: query receiver → pc_ch_store_list → window by window: the
 * window's candidates (pc_ch_sql_list_candidates), then its page, merged from
 * the candidates' rows in trace_rows when those show it exact (rows_page),
 * else computed from their spans (pc_ch_sql_list_window); all reads through
 * pc_ch_store_run (clickhouse_store.c: read-only, bounded, abandoned reads
 * killed) → summaries → the caller's rows. The SQL and the contract of a
 * window: clickhouse_query.h.
 */
#include "clickhouse_store_list.h"

#include "log.h"
#include "timefmt.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* How many candidates a rows page names: offset + limit (0: it is not tried). */
static size_t rows_page_names(const pc_trace_filter *f)
{
    if (pc_ch_filter_inexact(f)) return 0;
    size_t want = (size_t)pc_ch_list_rows_skip(f) + (size_t)(f->limit > 0 ? f->limit : 1);
    return want > PC_CH_NAMED_MAX ? 0 : want;
}

/*
 * A list window's page from its candidates' traces rows (clickhouse_query.h:
 * pc_ch_sql_list_rows) for the window from |lo|: when each of the first
 * rows_page_names(f) candidates of |k| comes back with both flags set, their
 * lines after the first pc_ch_list_rows_skip(f), without the flags, into
 * |out| (else |out| is left empty). Returns 1 when the page was made, 0 when
 * the spans must give it, or <0 (a failed read).
 */
static int rows_page(pc_ch_store *S, const pc_trace_filter *f, int64_t lo, const pc_ch_named *k,
                     pc_buf *out)
{
    size_t want = rows_page_names(f), n = k->n < want ? k->n : want, got = 0;
    size_t skip = (size_t)pc_ch_list_rows_skip(f);
    const char *const *named[] = {k->projects, k->ids};
    if (n == 0 || pc_ch_names_fit(named, 2, n) < n) return 0;
    pc_buf sql = PC_BUF_INIT, rows = PC_BUF_INIT;
    pc_ch_sql_list_rows(&sql, S->database, f, lo, k->projects, k->ids, n);
    int rc = pc_ch_store_run(S, sql.data, "list traces", PC_CH_READ_SETTINGS, &rows);
    pc_buf_free(&sql);
    if (rc < 0) goto done;
    /* each named candidate once, whole, its two last columns (the flags:
     * merge keys, no span twice) "1"; the lines are copied as they are, cut
     * before the flags (pc_ch_tsv_row would unescape them in place) */
    pc_buf page = PC_BUF_INIT;
    const char *p = rows.data, *e = rows.data + rows.len;
    bool exact = true;
    while (exact && p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        if (!nl) nl = e;
        const char *t = nl; /* to the tab before the two flags */
        int tabs = 0;
        while (t > p && tabs < 2)
            if (*--t == '\t') tabs++;
        exact = got < n && tabs == 2 && nl - t == 4 && memcmp(t, "\t1\t1", 4) == 0;
        if (exact && got++ >= skip) {
            pc_buf_append(&page, p, (size_t)(t - p));
            pc_buf_putc(&page, '\n');
        }
        p = nl + 1;
    }
    if (exact && got == n) {
        *out = page;
        rc = 1;
    } else {
        pc_buf_free(&page);
    }
done:
    pc_buf_free(&rows);
    return rc;
}

/* The page of a list window (clickhouse_query.h) into |out|: the candidates,
 * their count into |*ncand|, then the page when there are any (else |out| is
 * empty): from the candidates' summaries when they are shown exact, else
 * from the spans. */
static int read_list_window(pc_ch_store *S, const pc_trace_filter *f, int64_t lo, int64_t top,
                            int cand_extra, int *ncand, pc_buf *out)
{
    pc_buf sql = PC_BUF_INIT, cand;
    *out = (pc_buf)PC_BUF_INIT;
    pc_ch_sql_list_candidates(&sql, S->database, f, lo, top, cand_extra);
    int rc = pc_ch_store_run(S, sql.data, "list traces", PC_CH_READ_SETTINGS, &cand);
    pc_buf_free(&sql);
    if (rc < 0) return rc;
    *ncand = pc_ch_tsv_rows(&cand);
    if (*ncand > 0) {
        pc_ch_named k;
        pc_ch_named_read(&k, &cand, 2, 1, 0);
        rc = rows_page(S, f, lo, &k, out);
        if (rc == 0) { /* the page from the spans */
            do
                pc_ch_sql_list_window(&sql, S->dialect, S->database, f, lo, top, cand_extra,
                                      k.fit ? k.projects : NULL, k.fit ? k.ids : NULL, k.n);
            while (!pc_ch_named_sql_fits(&k, &sql));
            rc = pc_ch_store_run(S, sql.data, "list traces", PC_CH_READ_SETTINGS, out);
            pc_buf_free(&sql);
        } else if (rc == 1) {
            rc = 0;
        }
        pc_ch_named_free(&k);
    }
    pc_buf_free(&cand);
    return rc;
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
int pc_ch_store_list(void *ctx, const pc_trace_filter *f, pc_trace_cb cb, void *ud)
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
        pc_buf out;
        int ncand;
        int rc = read_list_window(S, f, lo, top, cand_extra, &ncand, &out);
        if (rc < 0) return rc;
        if (pc_ch_tsv_rows(&out) >= limit)
            return pc_ch_store_deliver(S, &out, "list traces", PC_CH_TRACE_COLS,
                                       pc_ch_store_trace_row, (void *)cb, ud);
        /* short, with an inexact filter: were candidates left out? (see
         * pc_ch_filter_inexact) Then the same window again, with more. */
        int offset = f->offset > 0 ? f->offset : 0;
        if (inexact && ncand >= (int64_t)offset + limit + cand_extra &&
            cand_extra < INT32_MAX / 8) {
            pc_buf_free(&out);
            cand_extra *= 8;
            continue;
        }
        if (last)
            return pc_ch_store_deliver(S, &out, "list traces", PC_CH_TRACE_COLS,
                                       pc_ch_store_trace_row, (void *)cb, ud);
        pc_buf_free(&out);
        width *= 4;
    }
}
