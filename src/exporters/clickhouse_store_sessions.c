/*
 * clickhouse_store_sessions.c - session lists (store.h list_sessions) over
 * the `clickhouse` exporter's tables.
 *
 * Data flow: query receiver → pc_ch_store_sessions → three reads through
 * pc_ch_store_run (clickhouse_store.c: read-only, bounded, abandoned reads
 * killed), their SQL from clickhouse_agg.c: the page of sessions from the
 * traces rows (window by window), its sessions' trace ids, then their span
 * sums → the caller's rows, in the page's order.
 */
#include "clickhouse_store_sessions.h"

#include "clickhouse_agg.h"
#include "log.h"
#include "mem.h"
#include "timefmt.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

static void session_page_free(session_page *p)
{
    free(p->rows);
    free(p->projects);
    free(p->sessions);
    memset(p, 0, sizeof(*p));
}

/* Level 1 of window |lo| (clickhouse_agg.h) into |p|, whose strings point
 * into |text|. 0 / < 0. */
static int read_session_page(pc_ch_store *S, const pc_session_filter *f, int64_t lo, pc_buf *text,
                             session_page *p)
{
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_sessions(&sql, S->database, f, lo);
    int rc = pc_ch_store_run(S, sql.data, "list sessions", PC_CH_READ_SETTINGS, text);
    pc_buf_free(&sql);
    if (rc < 0) return rc;
    char *cur = text->data, *end = text->data + text->len, *cols[PC_CH_SESSION_COLS];
    int n;
    while ((n = pc_ch_tsv_row(&cur, end, cols, PC_CH_SESSION_COLS)) > 0) {
        if (n != PC_CH_SESSION_COLS) {
            pc_log(PC_LOG_ERROR, S->id, "list sessions: expected %d columns, got %d",
                   PC_CH_SESSION_COLS, n);
            return -1;
        }
        collect_session(cols, NULL, p);
    }
    return 0;
}

/* Whether page |p| of the window at |lo| is the whole table's (the check in
 * clickhouse_agg.c): 1 yes, 0 no (a wider window must be read), < 0 error. */
static int session_window_exact(pc_ch_store *S, const pc_session_filter *f, int64_t lo,
                                const session_page *p)
{
    pc_buf sql = PC_BUF_INIT, out;
    pc_ch_sql_sessions_below(&sql, S->database, f->project_id, lo);
    int rc = pc_ch_store_run(S, sql.data, "list sessions", PC_CH_READ_SETTINGS, &out);
    pc_buf_free(&sql);
    if (rc < 0) return rc;
    char *cur = out.data, *end = out.data + out.len, *cols[2];
    if (pc_ch_tsv_row(&cur, end, cols, 2) != 2) {
        pc_log(PC_LOG_ERROR, S->id, "list sessions: expected 2 columns of the window's check");
        pc_buf_free(&out);
        return -1;
    }
    int64_t below = strtoll(cols[0], NULL, 10), last_below = strtoll(cols[1], NULL, 10);
    pc_buf_free(&out);
    int limit = f->limit > 0 ? f->limit : 1;
    if (below == 0 || (f->start_ns && last_below < f->start_ns)) return 1;
    return p->n >= (size_t)limit && p->rows[p->n - 1].last_seen_ns > last_below;
}

/* Level 2 of sessions [from, from + n) of page |p| (clickhouse_agg.h): their
 * trace ids, then their span sums, added to their rows; the traces named by a
 * subquery when they are too many. */
static int read_session_sums(pc_ch_store *S, session_page *p, size_t from, size_t n)
{
    pc_buf sql = PC_BUF_INIT, ids_text, sums;
    pc_ch_sql_session_traces(&sql, S->database, p->sessions + from, n);
    int rc = pc_ch_store_run(S, sql.data, "list sessions", PC_CH_READ_SETTINGS, &ids_text);
    pc_buf_free(&sql);
    if (rc < 0) return rc;
    pc_ch_named k;
    pc_ch_named_read(&k, &ids_text, 1, 0, -1);
    /* none: no traces row names them now (retention), so no sums */
    if (k.n > 0) {
        do
            pc_ch_sql_session_sums(&sql, S->database, p->projects + from, p->sessions + from, n,
                                   k.fit ? k.ids : NULL, k.n);
        while (!pc_ch_named_sql_fits(&k, &sql));
        rc = pc_ch_store_run(S, sql.data, "list sessions", PC_CH_READ_SETTINGS, &sums);
        pc_buf_free(&sql);
        if (rc == 0)
            rc = pc_ch_store_deliver(S, &sums, "list sessions", PC_CH_SESSION_SUM_COLS,
                                     add_session_sums, NULL, p);
    }
    pc_ch_named_free(&k);
    pc_buf_free(&ids_text);
    return rc;
}

/* Level 2 of page |p|, in chunks of sessions whose statements fit
 * (pc_ch_names_fit: the sums name each session twice, and its project). */
static int read_page_sums(pc_ch_store *S, session_page *p)
{
    int rc = 0;
    for (size_t from = 0, n; rc == 0 && from < p->n; from += n) {
        const char *const *cols[] = {p->sessions + from, p->sessions + from, p->projects + from};
        n = pc_ch_names_fit(cols, 3, p->n - from);
        rc = read_session_sums(S, p, from, n);
    }
    return rc;
}

/*
 * Sessions in three reads (clickhouse_agg.c): the page from the traces rows,
 * then the trace ids of that page's sessions, then their span figures from
 * their deduplicated spans; the rows are handed to |cb| in the page's order.
 * Without a session or user filter the page comes from windows of the traces
 * rows' start times, as lists do: the newest PC_CH_WINDOW_FIRST before now
 * (and every row started later), each next window four times wider, until one's page
 * is exact (clickhouse_agg.c) or it has no lower edge (PC_CH_WINDOW_MAX); a
 * window without sessions moves the anchor to the newest start below it
 * instead (pc_ch_store_newest_below), as lists do.
 * The windows together stop at query_timeout (PC_STORE_TIMEOUT).
 */
int pc_ch_store_sessions(void *ctx, const pc_session_filter *f, pc_session_cb cb, void *ud)
{
    pc_ch_store *S = ctx;
    pc_buf page_text = PC_BUF_INIT;
    session_page p = {0};
    bool windows = !f->session_id && !f->user_id;
    int64_t anchor = pc_time_now_ns(), width = PC_CH_WINDOW_FIRST;
    int64_t deadline = pc_time_mono_ns() + (int64_t)S->query_timeout_s * 1000000000LL;
    int rc;
    for (int reads = 0;; reads++) {
        if (reads > 0 && pc_time_mono_ns() > deadline) {
            pc_log(PC_LOG_WARN, S->id, "list sessions: stopped at the query time limit (%ld s)",
                   S->query_timeout_s);
            rc = PC_STORE_TIMEOUT;
            break;
        }
        int64_t lo = INT64_MIN;
        if (windows && width < PC_CH_WINDOW_MAX && anchor > INT64_MIN + width) lo = anchor - width;
        pc_buf_free(&page_text);
        session_page_free(&p);
        rc = read_session_page(S, f, lo, &page_text, &p);
        if (rc < 0 || lo == INT64_MIN) break;
        rc = session_window_exact(S, f, lo, &p);
        if (rc != 0) break;
        if (p.n == 0) { /* no session at or after lo: on to the newest start below */
            int64_t newest;
            rc = pc_ch_store_newest_below(S, f->project_id, 0, lo, width, &newest);
            if (rc <= 0) break;
            anchor = newest + 1;
            width = PC_CH_WINDOW_FIRST;
            continue;
        }
        width *= 4;
    }
    if (rc > 0) rc = 0;
    if (rc == 0 && p.n) rc = read_page_sums(S, &p);
    for (size_t i = 0; rc == 0 && i < p.n; i++)
        if (cb(ud, &p.rows[i]) != 0) break;
    session_page_free(&p);
    pc_buf_free(&page_text);
    return rc;
}
