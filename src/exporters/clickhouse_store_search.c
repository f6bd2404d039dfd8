/*
 * clickhouse_store_search.c - search (store.h) over the `clickhouse`
 * exporter's tables: the index first (clickhouse_search.h), a bounded scan
 * for the queries the index cannot serve.
 *
 * Data flow: query receiver → pc_ch_store_search → reads through
 * pc_ch_store_run (clickhouse_store.c: read-only, bounded, abandoned reads
 * killed) → candidates verified here with the local store's search text and
 * matcher (local_text.h, local_contains.h) → summaries → the caller's rows.
 *
 * A rare word costs three reads: the candidates (index blocks and their
 * traces in one), their verification (their spans and attached events in
 * one read per VERIFY_TRACES candidates, or per VERIFY_ALL when no more),
 * and the summaries of the matched ones. The
 * scan is the read a client can make expensive (a long pattern over long
 * values): see pc_ch_sql_search for how its SQL bounds a row's cost and
 * search_settings() below for how the server is made to check its time
 * limit after every few rows.
 */
#include "clickhouse_store_search.h"

#include "clickhouse_search.h"
#include "clickhouse_store_list.h"
#include "clickhouse_summary.h"
#include "local_contains.h"
#include "local_text.h"
#include "log.h"
#include "mem.h"
#include "timefmt.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
 *   priority = 2 (other reads run at 1, the higher one: PC_CH_READ_SETTINGS) and
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
    return pc_ch_store_each_row(S, &sql, "search", extra, PC_CH_TRACE_COLS, pc_ch_store_trace_row, (void *)cb, ud);
}

/* Most candidate blocks a search verifies before it walks the newest traces
 * instead (a common word), and traces verified per read of their spans. */
#define SEARCH_BLOCKS 64
#define VERIFY_TRACES 256
/* Candidates of a rare word verified in one read when there are no more
 * than this many (all of them have to be read anyway unless the limit is
 * met early, which a rare word seldom does). */
#define VERIFY_ALL 1024
/* A read of candidate spans answers at most 64 MiB (the server fails it
 * beyond: the query API answers 503), whatever the spans hold. */
#define VERIFY_SETTINGS "max_result_bytes=67108864&result_overflow_mode=throw"

/* Candidate traces: (project, trace id) pairs pointing into |text|. */
typedef struct cands {
    const char **projects, **ids;
    bool *hit;
    size_t n, cap;
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

/*
 * Takes the answer of pc_ch_sql_search_candidates (|out|, which keeps the
 * strings) as candidates, those of |project_id| only unless it is NULL.
 * Returns the number of distinct blocks the answer came from, every
 * project's (at most SEARCH_BLOCKS + 1, the read's limit), and in *above
 * INT64_MIN when that is all of them; else the candidates are complete only
 * for traces started after *above, and only those are taken. Why: a block's
 * id is at most 255 below its traces' latest start (clickhouse_search.h), so
 * a block not read (an id below the oldest read, b) holds no trace started
 * after (b - 1) | 255 <= b | 255 = *above.
 */
static size_t take_candidates(cands *c, pc_buf *out, const char *project_id, int64_t *above)
{
    uint64_t blocks[SEARCH_BLOCKS + 1], oldest = UINT64_MAX;
    size_t nb = 0, cap = 0;
    int64_t *starts = NULL; /* of the candidates taken, newest first */
    char *cur = out->data, *end = out->data + out->len, *cols[4];
    while (pc_ch_tsv_row(&cur, end, cols, 4) == 4) {
        for (char *p = cols[3]; *p;) { /* "[b1,b2]" */
            if (*p < '0' || *p > '9') {
                p++;
                continue;
            }
            uint64_t b = strtoull(p, &p, 10);
            size_t k = 0;
            while (k < nb && blocks[k] != b)
                k++;
            if (k == nb && nb < SEARCH_BLOCKS + 1) blocks[nb++] = b;
            if (b < oldest) oldest = b;
        }
        if (project_id && strcmp(cols[0], project_id) != 0) continue;
        cands_add(c, cols[0], cols[1]);
        if (c->n > cap) {
            cap = c->cap;
            starts = pc_xrealloc(starts, cap * sizeof(*starts));
        }
        starts[c->n - 1] = strtoll(cols[2], NULL, 10);
    }
    *above = nb > SEARCH_BLOCKS ? (int64_t)((oldest | 255) & INT64_MAX) : INT64_MIN;
    size_t keep = 0;
    while (keep < c->n && starts[keep] > *above)
        keep++;
    c->n = keep;
    free(starts);
    return nb;
}

/* One verification round: the candidates [from, to), and the attached events
 * that matched a candidate no span of which did (their span must be stored). */
typedef struct verify_ctx {
    cands *c;
    size_t from, to;
    pc_buf text;
    size_t *ev_cand; /* per matching event: its candidate, and its span id in ev_ids */
    pc_buf ev_ids;
    size_t *ev_off;
    size_t nev;
} verify_ctx;

/* A row of pc_ch_sql_verify: marks its candidate matched when the row's search
 * text holds the needle (an event's: once its span is known to be stored). */
static int verify_row(char **cols, void *cb, void *ud)
{
    (void)cb;
    verify_ctx *v = ud;
    size_t i = v->from;
    for (; i < v->to; i++)
        if (strcmp(v->c->ids[i], cols[1]) == 0 && strcmp(v->c->projects[i], cols[0]) == 0) break;
    if (i == v->to || v->c->hit[i]) return 0;
    pc_local_text_in in = {cols[3], strlen(cols[3]), cols[4], strlen(cols[4]),
                           cols[5], strlen(cols[5]), cols[6], strlen(cols[6]),
                           cols[7], strlen(cols[7])};
    pc_buf_reset(&v->text);
    pc_local_search_text(&v->text, &in);
    if (pc_local_needle_in(v->c->needle, v->text.data ? v->text.data : "", v->text.len) != 1)
        return 0;
    if (cols[2][0] == '\0') { /* a span's row */
        v->c->hit[i] = true;
        return 0;
    }
    v->ev_cand = pc_xrealloc(v->ev_cand, (v->nev + 1) * sizeof(*v->ev_cand));
    v->ev_off = pc_xrealloc(v->ev_off, (v->nev + 1) * sizeof(*v->ev_off));
    v->ev_cand[v->nev] = i;
    v->ev_off[v->nev++] = v->ev_ids.len;
    pc_buf_append(&v->ev_ids, cols[2], strlen(cols[2]) + 1);
    return 0;
}

/* A stored span of a candidate whose event matched (pc_ch_sql_spans_exist). */
static int exist_row(char **cols, void *cb, void *ud)
{
    (void)cb;
    verify_ctx *v = ud;
    for (size_t i = v->from; i < v->to; i++)
        if (strcmp(v->c->ids[i], cols[1]) == 0 && strcmp(v->c->projects[i], cols[0]) == 0)
            v->c->hit[i] = true;
    return 0;
}

/*
 * Verifies candidates [from, to) in one read of their spans and attached
 * events (pc_ch_sql_verify; the caller keeps the statement under 18.16's
 * limit, pc_ch_names_fit); only when an event matched a candidate no span of
 * which did, a second read asks whether that event's span is stored (a
 * carrier whose span never came shows nowhere), in chunks too. 0 or a store
 * error.
 */
static int verify_chunk(pc_ch_store *S, cands *c, size_t from, size_t to)
{
    verify_ctx v = {.c = c, .from = from, .to = to, .text = PC_BUF_INIT, .ev_ids = PC_BUF_INIT};
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_verify(&sql, S->database, c->projects + from, c->ids + from, to - from, c->run,
                     c->run_len);
    int rc = pc_ch_store_each_row(S, &sql, "search", VERIFY_SETTINGS, 8, verify_row, NULL, &v);
    size_t k = 0;
    const char **p = pc_xmalloc((v.nev + 1) * sizeof(*p)), **t = pc_xmalloc((v.nev + 1) * sizeof(*t)),
               **s = pc_xmalloc((v.nev + 1) * sizeof(*s));
    for (size_t e = 0; e < v.nev; e++)
        if (!c->hit[v.ev_cand[e]]) {
            p[k] = c->projects[v.ev_cand[e]];
            t[k] = c->ids[v.ev_cand[e]];
            s[k++] = v.ev_ids.data + v.ev_off[e];
        }
    for (size_t i = 0, n; rc == 0 && i < k; i += n) {
        const char *const *cols[] = {t + i, p + i, s + i};
        n = pc_ch_names_fit(cols, 3, k - i);
        pc_ch_sql_spans_exist(&sql, S->database, p + i, t + i, s + i, n);
        rc = pc_ch_store_each_row(S, &sql, "search", PC_CH_READ_SETTINGS, 2, exist_row, NULL, &v);
    }
    free(p);
    free(t);
    free(s);
    free(v.ev_cand);
    free(v.ev_off);
    pc_buf_free(&v.ev_ids);
    pc_buf_free(&v.text);
    return rc;
}

/* Verifies candidates [from, to) (verify_chunk), as many at a time as one
 * statement names: each candidate's id twice (in a list and in a pair) and its
 * project. */
static int verify(pc_ch_store *S, cands *c, size_t from, size_t to)
{
    int rc = 0;
    for (size_t n; rc == 0 && from < to; from += n) {
        const char *const *cols[] = {c->ids + from, c->ids + from, c->projects + from};
        n = pc_ch_names_fit(cols, 3, to - from);
        rc = verify_chunk(S, c, from, from + n);
    }
    return rc;
}

/* The summaries handed on: those of traces started after |above|, at most
 * *left of them (counted down). */
typedef struct emit_ctx {
    pc_trace_cb cb;
    void *ud;
    int64_t above;
    int *left;
} emit_ctx;

static int emit_row(void *ud, const pc_trace_row *r)
{
    emit_ctx *e = ud;
    if (r->started_ns <= e->above) return 0; /* the walk's (see take_candidates) */
    if (*e->left <= 0) return 1;
    (*e->left)--;
    if (e->cb(e->ud, r) != 0) *e->left = 0; /* the caller wants no more */
    return 0;
}

/* Hands the summaries of the matched candidates [from, to) to |e|: *left of
 * them at a time (fewer when their names would not fit one statement,
 * pc_ch_names_fit), again while some were the walk's and hits are left. */
static int emit_hits(pc_ch_store *S, cands *c, size_t from, size_t to, emit_ctx *e)
{
    const char **p = pc_xmalloc((to - from) * sizeof(*p)), **t = pc_xmalloc((to - from) * sizeof(*t));
    size_t nh = 0;
    for (size_t i = from; i < to; i++)
        if (c->hit[i]) {
            p[nh] = c->projects[i];
            t[nh++] = c->ids[i];
        }
    int rc = 0;
    for (size_t i = 0, n; rc == 0 && *e->left > 0 && i < nh; i += n) {
        n = nh - i < (size_t)*e->left ? nh - i : (size_t)*e->left;
        const char *const *cols[] = {t + i, t + i, p + i};
        n = pc_ch_names_fit(cols, 3, n);
        pc_buf sql = PC_BUF_INIT;
        pc_ch_sql_summaries_of(&sql, S->database, p + i, t + i, n);
        rc = pc_ch_store_each_row(S, &sql, "search", "", PC_CH_TRACE_COLS, pc_ch_store_trace_row,
                                  (void *)emit_row, e);
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
int pc_ch_store_search(void *ctx, const char *project_id, const char *query, int limit,
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
    if (k.n > 1) qsort(k.rows, k.n, sizeof(*k.rows), pc_ch_traces_newest_first);
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
    pc_buf sql = PC_BUF_INIT, out = PC_BUF_INIT;
    pc_ch_sql_search_candidates(&sql, S->database, keys, nk, SEARCH_BLOCKS + 1);
    int rc = pc_ch_store_run(S, sql.data, "search", "", &out);
    pc_buf_free(&sql);
    int left = limit;
    int64_t above = INT64_MIN;
    /* the rows stay in |out| while their ids are candidates */
    bool more = rc == 0 && take_candidates(&c, &out, project_id, &above) > SEARCH_BLOCKS;
    emit_ctx e = {cb, ud, above, &left};
    size_t step = !more && c.n <= VERIFY_ALL ? c.n : VERIFY_TRACES;
    for (size_t from = 0; rc == 0 && left > 0 && from < c.n; from += step) {
        if (from > 0 && past(S, start)) {
            rc = timed_out(S);
            break;
        }
        size_t to = from + step < c.n ? from + step : c.n;
        rc = verify(S, &c, from, to);
        if (rc == 0) rc = emit_hits(S, &c, from, to, &e);
    }
    /* a common word (more blocks than read): the traces started up to |above|
     * come from the walk of the newest traces, a page at a time */
    pc_trace_key after = {above + 1, pc_xstrdup(""), pc_xstrdup("")};
    e.above = INT64_MIN;
    while (rc == 0 && left > 0 && more) {
        if (past(S, start)) {
            rc = timed_out(S);
            break;
        }
        walk_page w = {&c, PC_BUF_INIT, NULL, {0}, 0};
        pc_trace_filter f = {.project_id = project_id, .limit = VERIFY_TRACES, .after = &after};
        rc = pc_ch_store_list(S, &f, walk_row, &w);
        c.n = 0;
        for (int i = 0; i < w.rows; i++)
            cands_add(&c, w.keep.data + w.offs[2 * i], w.keep.data + w.offs[2 * i + 1]);
        if (rc == 0 && c.n) rc = verify(S, &c, 0, c.n);
        if (rc == 0) rc = emit_hits(S, &c, 0, c.n, &e);
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
    free(c.projects);
    free(c.ids);
    free(c.hit);
    pc_buf_free(&out);
    pc_local_needle_destroy(needle);
    return rc;
}

