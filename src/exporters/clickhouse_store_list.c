/*
 * clickhouse_store_list.c - trace lists (store.h list_traces) over the
 * `clickhouse` exporter's tables.
 *
 * Data flow: query receiver → pc_ch_store_list → window by window: the
 * window's candidates (pc_ch_sql_list_candidates), then its page: the
 * candidates' rows in trace_rows read raw and merged in the collector
 * (pc_ch_sql_list_rows → pc_ch_traces_merge) when those show it exact
 * (rows_page), else computed from their spans (pc_ch_sql_list_window); all
 * reads through pc_ch_store_run (clickhouse_store.c: read-only, bounded,
 * abandoned reads killed) → summaries → the caller's rows. The SQL and the
 * contract of a window: clickhouse_query.h.
 */
#include "clickhouse_store_list.h"

#include "clickhouse_summary.h"
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
 * A list window's page from its candidates' traces rows (pc_ch_sql_list_rows,
 * merged by pc_ch_traces_merge) for the window from |lo|: the first
 * rows_page_names(f) candidates of |k|, when their rows show them exact and
 * passing, into |page|. Rows past PAGE_ROWS_MAX or PAGE_BYTES_MAX (a
 * candidate inserted in thousands of pieces) are not read whole: the spans
 * give that page. Returns 1 when the page was made, 0 when the spans must
 * give it, or <0 (a failed read).
 */
#define PAGE_ROWS_MAX 10000
#define PAGE_BYTES_MAX (16 << 20)

static int rows_page(pc_ch_store *S, const pc_trace_filter *f, int64_t lo, const pc_ch_named *k,
                     pc_ch_traces *page)
{
    size_t want = rows_page_names(f), n = k->n < want ? k->n : want;
    const char *const *named[] = {k->ids};
    if (n == 0 || pc_ch_names_fit(named, 1, n) < n) return 0;
    pc_buf sql = PC_BUF_INIT, rows;
    char settings[PC_CH_CAPPED_LEN];
    pc_ch_capped_settings(settings, PAGE_ROWS_MAX, PAGE_BYTES_MAX);
    pc_ch_sql_list_rows(&sql, S->database, f, k->ids, n, PAGE_ROWS_MAX + 1);
    int rc = pc_ch_store_run(S, sql.data, "list traces", settings, &rows);
    pc_buf_free(&sql);
    if (rc == PC_STORE_TOO_BIG) return 0;
    if (rc < 0) return rc;
    if (!pc_ch_capped_within(&rows, PAGE_ROWS_MAX, PAGE_BYTES_MAX)) {
        pc_buf_free(&rows);
        return 0;
    }
    rc = pc_ch_traces_merge(page, &rows, f, lo, k->projects, k->ids, n,
                            (size_t)pc_ch_list_rows_skip(f));
    if (rc < 0)
        pc_log(PC_LOG_ERROR, S->id, "list traces: a row without the %d columns asked for",
               PC_CH_LIST_ROWS_COLS);
    return rc;
}

/* The page of a list window (clickhouse_query.h) into |page|: the
 * candidates, their count into |*ncand|, then the page when there are any
 * (else |page| is empty): from the candidates' traces rows when those show
 * it exact, else from the spans. */
static int read_list_window(pc_ch_store *S, const pc_trace_filter *f, int64_t lo, int64_t top,
                            int cand_extra, int *ncand, pc_ch_traces *page)
{
    pc_buf sql = PC_BUF_INIT, cand;
    memset(page, 0, sizeof(*page));
    pc_ch_sql_list_candidates(&sql, S->database, f, lo, top, cand_extra);
    int rc = pc_ch_store_run(S, sql.data, "list traces", PC_CH_READ_SETTINGS, &cand);
    pc_buf_free(&sql);
    if (rc < 0) return rc;
    *ncand = pc_ch_tsv_rows(&cand);
    if (*ncand > 0) {
        pc_ch_named k;
        pc_ch_named_read(&k, &cand, 2, 1, 0);
        rc = rows_page(S, f, lo, &k, page);
        if (rc == 0) { /* the page from the spans */
            do
                pc_ch_sql_list_window(&sql, S->dialect, S->database, f, lo, top, cand_extra,
                                      k.fit ? k.projects : NULL, k.fit ? k.ids : NULL, k.n);
            while (!pc_ch_named_sql_fits(&k, &sql));
            pc_buf out;
            rc = pc_ch_store_run(S, sql.data, "list traces", PC_CH_READ_SETTINGS, &out);
            pc_buf_free(&sql);
            if (rc == 0 && pc_ch_traces_read(page, &out) < 0) {
                pc_log(PC_LOG_ERROR, S->id, "list traces: expected %d columns",
                       PC_CH_TRACE_COLS);
                rc = -1;
            }
        } else if (rc == 1) {
            rc = 0;
        }
        pc_ch_named_free(&k);
    }
    pc_buf_free(&cand);
    return rc;
}

/* Hands the rows of |page| (freed) to |cb| until it returns non-zero. */
static int deliver(pc_ch_traces *page, pc_trace_cb cb, void *ud)
{
    for (size_t i = 0; i < page->n; i++)
        if (cb(ud, &page->rows[i]) != 0) break;
    pc_ch_traces_free(page);
    return 0;
}

/*
 * A list, window by window: the first window is the newest PC_CH_WINDOW_FIRST
 * of the range (below the range's end, the cursor, or now when neither is
 * given: rows started later are inside every window), each next one four
 * times wider; the answer of the first window that fills the page, or that
 * reaches the range's start (or grew past PC_CH_WINDOW_MAX: no edge), is the
 * list. A window without candidates moves the anchor instead: the next
 * window is the newest PC_CH_WINDOW_FIRST below the newest start under it
 * (pc_ch_store_newest_below), then four times wider again. A window's answer is exact
 * (see the contract) whatever its lower edge, as its top stays the range's,
 * so a full page from a narrow window is the page a whole-range read would
 * give. The windows together stop at query_timeout (PC_STORE_TIMEOUT), as
 * one read does.
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
        pc_ch_traces page;
        int ncand;
        int rc = read_list_window(S, f, lo, top, cand_extra, &ncand, &page);
        if (rc < 0) return rc;
        if (page.n >= (size_t)limit) return deliver(&page, cb, ud);
        /* short, with an inexact filter: were candidates left out? (see
         * pc_ch_filter_inexact) Then the same window again, with more. */
        int offset = f->offset > 0 ? f->offset : 0;
        if (inexact && ncand >= (int64_t)offset + limit + cand_extra &&
            cand_extra < INT32_MAX / 8) {
            pc_ch_traces_free(&page);
            cand_extra *= 8;
            continue;
        }
        if (last) return deliver(&page, cb, ud);
        pc_ch_traces_free(&page);
        /* no candidate (when they skip no offset: then none starts in the
         * window): on to the newest start below, if any */
        if (ncand == 0 && (offset == 0 || pc_ch_list_rows_skip(f) > 0)) {
            int64_t newest;
            rc = pc_ch_store_newest_below(S, f->project_id, f->start_ns, lo, width, &newest);
            if (rc <= 0) return rc;
            anchor = newest + 1;
            width = PC_CH_WINDOW_FIRST;
            continue;
        }
        width *= 4;
    }
}
