/*
 * local_agg.c - the embedded store's aggregate reads (store.h): sessions and
 * stats, over the schema of local_schema.c (version 4).
 *
 * Where it sits: the query receiver calls them through pc_local_store_ops
 * (local_store.c) on a pooled read connection (local_query.h), concurrently
 * with the writer (WAL).
 *
 * Sessions are not stored: each is read from its trace rows (a trace carries
 * its session, the smallest non-empty session_id of its spans) through the
 * partial index traces_session. A page of the list walks the traces by
 * completed_ns descending (traces_completed) and meets each session first at
 * its last_seen, in list order, so it reads the traces of the sessions it
 * shows or skips, not every trace (walk_sessions). One session by id, or
 * the sessions of one user, are grouped from that session's or user's
 * traces (grouped_sessions). Why not a sessions table kept by the writer: a
 * trace's session can change when a span with a smaller id arrives, first/
 * last seen and the user are minima/maxima that a delta cannot take back,
 * and a cost summed by deltas would round apart from the same sum over
 * traces (ClickHouse's answer); the read side stays exact by construction
 * and costs the writer nothing per trace beyond the trace indexes.
 *
 * Stats read the spans of the traces that can hold a span starting in
 * [start, end): started_ns < end (a trace starts with its first span) and
 * completed_ns >= start (it ends at or after its last span's start), through
 * traces_completed or traces_started, whichever bounds fewer traces (probed),
 * so a recent window reads recent traces only. The cost is the span rows of
 * the window (about 0.85 s per 300,000 spans on the benchmark's machine). Spans are unique in the store (INSERT OR IGNORE on (tid,
 * span_id)), so each counts once. SQL orders them by (bucket, group); the
 * figures of one (bucket, group) are gathered here in C: distinct traces by
 * sorting their tids, nearest-rank percentiles by sorting the durations.
 */
#include "local_query.h"

#include "buf.h"
#include "hash.h"
#include "mem.h"
#include "span.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void bind_cstr(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

/* A REAL column, NULL (unknown) as NAN. */
static double col_double(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* ------------------------------------------------------------- sessions -- */

/* A saturating sum of a non-negative token column (see span.h: total() is a
 * float sum, CAST of a float past INT64_MAX gives INT64_MAX). */
#define TOKEN_SUM(col) "CAST(total(" col ") AS INTEGER)"

/* A session's figures from its traces (store.h), over traces t. */
#define SESSION_COLS                                                                               \
    "t.session_id, t.project_id, coalesce(min(nullif(t.user_id, '')), ''), count(*),"             \
    " " TOKEN_SUM("t.span_count") ", sum(t.status = 'error'), " TOKEN_SUM("t.input_tokens") ","    \
    " " TOKEN_SUM("t.output_tokens") ", sum(t.cost_usd), min(t.started_ns), max(t.completed_ns)"

/* The figures of one session: ?1 session_id ?2 project_id (traces_session). */
static const char SESSION_ONE[] = "SELECT " SESSION_COLS " FROM traces t"
                                  " WHERE t.session_id = ?1 AND t.project_id = ?2"
                                  " AND t.session_id != '' GROUP BY 1, 2";

static void read_session(sqlite3_stmt *st, pc_session_row *row)
{
    *row = (pc_session_row){
        .session_id = col_text(st, 0),
        .project_id = col_text(st, 1),
        .user_id = col_text(st, 2),
        .trace_count = sqlite3_column_int64(st, 3),
        .span_count = sqlite3_column_int64(st, 4),
        .error_count = sqlite3_column_int64(st, 5),
        .input_tokens = sqlite3_column_int64(st, 6),
        .output_tokens = sqlite3_column_int64(st, 7),
        .cost_usd = col_double(st, 8),
        .first_seen_ns = sqlite3_column_int64(st, 9),
        .last_seen_ns = sqlite3_column_int64(st, 10),
    };
}

/*
 * The sessions of one id (|f|->session_id) or of one user (|f|->user_id):
 * grouped from their traces, found through traces_session (one id) or
 * traces_user (the user's traces name their sessions), so the read is
 * bounded by that session's or user's traces.
 */
static int grouped_sessions(void *ctx, const pc_session_filter *f, pc_session_cb cb, void *ud)
{
    pc_buf sql = PC_BUF_INIT;
    pc_buf_puts(&sql, "SELECT " SESSION_COLS " FROM traces t WHERE t.session_id != ''");
    if (f->session_id) pc_buf_puts(&sql, " AND t.session_id = ?2");
    if (f->project_id) pc_buf_puts(&sql, " AND t.project_id = ?1");
    /* sessions having a trace of that user: every trace of such a session counts */
    if (f->user_id)
        pc_buf_puts(&sql, " AND (t.project_id, t.session_id) IN (SELECT u.project_id,"
                          " u.session_id FROM traces u WHERE u.user_id = ?3"
                          " AND u.user_id != '' AND u.session_id != '')");
    pc_buf_puts(&sql, " GROUP BY t.session_id, t.project_id HAVING 1");
    if (f->start_ns) pc_buf_puts(&sql, " AND max(t.completed_ns) >= ?4");
    if (f->end_ns) pc_buf_puts(&sql, " AND min(t.started_ns) <= ?5");
    pc_buf_puts(&sql, " ORDER BY 11 DESC, 1 DESC, 2 DESC LIMIT ?6 OFFSET ?7");
    pc_local_query q;
    int rc = pc_local_query_open(&q, ctx, sql.data, "list sessions");
    pc_buf_free(&sql);
    if (rc < 0) return -1;
    if (f->project_id) bind_cstr(q.st, 1, f->project_id);
    if (f->session_id) bind_cstr(q.st, 2, f->session_id);
    if (f->user_id) bind_cstr(q.st, 3, f->user_id);
    if (f->start_ns) sqlite3_bind_int64(q.st, 4, f->start_ns);
    if (f->end_ns) sqlite3_bind_int64(q.st, 5, f->end_ns);
    sqlite3_bind_int(q.st, 6, f->limit);
    sqlite3_bind_int(q.st, 7, f->offset > 0 ? f->offset : 0);
    while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
        pc_session_row row;
        read_session(q.st, &row);
        if (cb(ud, &row) != 0) break;
    }
    return pc_local_query_close(&q, rc);
}

/* The (session_id, project_id) keys the walk has met: open addressing over
 * NUL-separated copies, keyed by pc_hash (clients choose both ids). */
typedef struct seen_set {
    char **keys; /* "session\0project" copies; NULL = empty slot */
    size_t *lens;
    size_t cap, used;
} seen_set;

static size_t seen_slot(const seen_set *set, const char *k, size_t n)
{
    size_t i = (size_t)pc_hash(k, n) & (set->cap - 1);
    while (set->keys[i] && (set->lens[i] != n || memcmp(set->keys[i], k, n) != 0))
        i = (i + 1) & (set->cap - 1);
    return i;
}

/* Adds key |k| (|n| bytes); false when it was there already. */
static bool seen_add(seen_set *set, const char *k, size_t n)
{
    if (2 * (set->used + 1) > set->cap) {
        seen_set big = {.cap = set->cap ? 2 * set->cap : 256};
        big.keys = pc_xcalloc(big.cap, sizeof(*big.keys));
        big.lens = pc_xcalloc(big.cap, sizeof(*big.lens));
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->keys[i]) continue;
            size_t j = seen_slot(&big, set->keys[i], set->lens[i]);
            big.keys[j] = set->keys[i];
            big.lens[j] = set->lens[i];
        }
        big.used = set->used;
        free(set->keys);
        free(set->lens);
        *set = big;
    }
    size_t i = seen_slot(set, k, n);
    if (set->keys[i]) return false;
    set->keys[i] = pc_xmalloc(n ? n : 1);
    memcpy(set->keys[i], k, n);
    set->lens[i] = n;
    set->used++;
    return true;
}

static void seen_free(seen_set *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->keys[i]);
    free(set->keys);
    free(set->lens);
}

/* A session met at the walk's current completed_ns (a tie group). */
typedef struct tied {
    char *session, *project;
} tied;

/* Byte order of C strings as SQLite's BINARY collation (memcmp, then length). */
static int by_session_desc(const void *a, const void *b)
{
    const tied *x = a, *y = b;
    int c = strcmp(y->session, x->session);
    return c ? c : strcmp(y->project, x->project);
}

/* The walk's state: the page being filled. */
typedef struct walk {
    const pc_session_filter *f;
    sqlite3_stmt *one;
    pc_session_cb cb;
    void *ud;
    int skipped, emitted;
    bool stop;
} walk;

/* Reads session |t| (its figures and the filters that need them) and emits
 * or skips it. SQLite code of the last step. */
static int visit(walk *w, const tied *t)
{
    int rc;
    sqlite3_bind_text(w->one, 1, t->session, -1, SQLITE_STATIC);
    sqlite3_bind_text(w->one, 2, t->project, -1, SQLITE_STATIC);
    rc = sqlite3_step(w->one);
    if (rc == SQLITE_ROW) {
        pc_session_row row;
        read_session(w->one, &row);
        if (w->f->end_ns && row.first_seen_ns > w->f->end_ns) {
            /* starts after the window */
        } else if (w->skipped < w->f->offset) {
            w->skipped++;
        } else {
            w->emitted++;
            if (w->cb(w->ud, &row) != 0 || w->emitted >= w->f->limit) w->stop = true;
        }
        rc = SQLITE_DONE;
    }
    sqlite3_reset(w->one);
    return rc;
}

/* Visits the tie group |v| (|n| sessions with the same last_seen) in list
 * order and frees their copies. SQLite code. */
static int visit_ties(walk *w, tied *v, size_t n)
{
    int rc = SQLITE_DONE;
    if (n > 1) qsort(v, n, sizeof(*v), by_session_desc);
    for (size_t i = 0; i < n; i++) {
        if (!w->stop && (rc == SQLITE_DONE)) rc = visit(w, &v[i]);
        free(v[i].session);
        free(v[i].project);
    }
    return rc;
}

/*
 * Sessions newest first without grouping every trace: walks the traces by
 * completed_ns descending (traces_completed). A session's last_seen is the
 * largest completed_ns of its traces, so the walk meets each session first
 * at its last_seen, in list order: the sessions met at one completed_ns are
 * sorted among themselves (session id, project id descending), then each is
 * read whole through traces_session and filtered. The walk ends once the page
 * is full, so a page costs the traces of its sessions and of those skipped.
 */
static int walk_sessions(void *ctx, const pc_session_filter *f, pc_session_cb cb, void *ud)
{
    pc_buf sql = PC_BUF_INIT;
    pc_buf_puts(&sql, "SELECT t.session_id, t.project_id, t.completed_ns"
                      " FROM traces t INDEXED BY traces_completed WHERE t.session_id != ''");
    if (f->project_id) pc_buf_puts(&sql, " AND t.project_id = ?1");
    if (f->start_ns) pc_buf_puts(&sql, " AND t.completed_ns >= ?4");
    pc_buf_puts(&sql, " ORDER BY t.completed_ns DESC");
    pc_local_query q;
    int rc = pc_local_query_open(&q, ctx, sql.data, "list sessions");
    pc_buf_free(&sql);
    if (rc < 0) return -1;
    if (f->project_id) bind_cstr(q.st, 1, f->project_id);
    if (f->start_ns) sqlite3_bind_int64(q.st, 4, f->start_ns);
    walk w = {.f = f, .cb = cb, .ud = ud};
    rc = sqlite3_prepare_v2(q.db, SESSION_ONE, -1, &w.one, NULL);
    seen_set seen = {0};
    tied *ties = NULL;
    size_t n_ties = 0, cap_ties = 0;
    int64_t at = 0;
    pc_buf key = PC_BUF_INIT;
    while (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) {
        if (w.stop) break;
        rc = sqlite3_step(q.st);
        if (rc != SQLITE_ROW) break;
        const char *session = col_text(q.st, 0), *project = col_text(q.st, 1);
        int64_t completed = sqlite3_column_int64(q.st, 2);
        if (n_ties > 0 && completed != at) {
            int vrc = visit_ties(&w, ties, n_ties);
            n_ties = 0;
            if (vrc != SQLITE_DONE) {
                rc = vrc;
                break;
            }
            if (w.stop) break;
        }
        at = completed;
        pc_buf_reset(&key);
        pc_buf_puts(&key, session);
        pc_buf_putc(&key, '\0');
        pc_buf_puts(&key, project);
        if (!seen_add(&seen, key.data, key.len)) continue;
        if (n_ties == cap_ties) {
            cap_ties = cap_ties ? 2 * cap_ties : 16;
            ties = pc_xrealloc(ties, cap_ties * sizeof(*ties));
        }
        ties[n_ties++] = (tied){pc_xstrdup(session), pc_xstrdup(project)};
    }
    if (rc == SQLITE_DONE && n_ties > 0 && !w.stop) {
        rc = visit_ties(&w, ties, n_ties);
        n_ties = 0;
    }
    for (size_t i = 0; i < n_ties; i++) {
        free(ties[i].session);
        free(ties[i].project);
    }
    free(ties);
    pc_buf_free(&key);
    seen_free(&seen);
    sqlite3_finalize(w.one);
    return pc_local_query_close(&q, w.stop ? SQLITE_DONE : rc);
}

int pc_local_list_sessions(void *ctx, const pc_session_filter *f, pc_session_cb cb, void *ud)
{
    if (f->session_id || f->user_id) return grouped_sessions(ctx, f, cb, ud);
    return walk_sessions(ctx, f, cb, ud);
}

/* ---------------------------------------------------------------- stats -- */

/* The group column of each pc_stats_group (s: the span, t: its trace). */
static const char *group_col(pc_stats_group g)
{
    switch (g) {
    case PC_GROUP_MODEL: return "s.llm_model";
    case PC_GROUP_SERVICE: return "s.service_name";
    case PC_GROUP_SPAN_TYPE: return "s.span_type";
    case PC_GROUP_PROJECT: return "t.project_id";
    case PC_GROUP_USER: return "s.user_id";
    case PC_GROUP_SESSION: return "s.session_id";
    default: return "''";
    }
}

/* One (bucket, group) being gathered. */
typedef struct agg {
    pc_stats_row row;
    pc_buf group;     /* row.group's text */
    int64_t *tids;    /* the tid of each span */
    int64_t *durs;    /* durations of the ended spans */
    size_t n_tids, n_durs, cap_tids, cap_durs;
    bool has_cost;
} agg;

static void push(int64_t **v, size_t *n, size_t *cap, int64_t x)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *v = pc_xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = x;
}

static int by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank percentile |pct| (1..100) of the |n| sorted values |v|:
 * the value at 1-based rank ceil(pct * n / 100); -1 when n is 0. */
static int64_t nearest_rank(const int64_t *v, size_t n, int pct)
{
    if (n == 0) return -1;
    size_t rank = (n * (size_t)pct + 99) / 100;
    return v[rank ? rank - 1 : 0];
}

/* Completes |a|'s row (distinct traces, percentiles, cost) and hands it to |cb|. */
static int emit(agg *a, pc_stats_cb cb, void *ud)
{
    if (a->n_tids > 1) qsort(a->tids, a->n_tids, sizeof(*a->tids), by_value);
    int64_t traces = 0;
    for (size_t i = 0; i < a->n_tids; i++)
        if (i == 0 || a->tids[i] != a->tids[i - 1]) traces++;
    if (a->n_durs > 1) qsort(a->durs, a->n_durs, sizeof(*a->durs), by_value);
    a->row.traces = traces;
    a->row.latency_p50_ns = nearest_rank(a->durs, a->n_durs, 50);
    a->row.latency_p95_ns = nearest_rank(a->durs, a->n_durs, 95);
    a->row.latency_p99_ns = nearest_rank(a->durs, a->n_durs, 99);
    if (!a->has_cost) a->row.cost_usd = NAN;
    a->row.group = a->group.data ? a->group.data : "";
    return cb(ud, &a->row);
}

/*
 * The index that bounds a window's traces best: traces_completed (completed_ns
 * >= start: the traces ending in or after the window) unless traces_started
 * (started_ns < end) holds fewer, as for an old window of a store that goes
 * on long after it. Each side is counted up to STATS_PROBE index entries.
 */
#define STATS_PROBE 50000
#define STR_(x) #x
#define STR(x) STR_(x)

/* Entries of one side, at most STATS_PROBE + 1; -1 on failure. */
static int64_t probe(sqlite3 *db, const char *sql, int64_t bound)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, bound);
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

int pc_local_stats(void *ctx, const pc_stats_query *qs, pc_stats_cb cb, void *ud)
{
    pc_local_query q;
    if (pc_local_query_open(&q, ctx, "SELECT 1", "stats") < 0) return -1;
    sqlite3_finalize(q.st);
    q.st = NULL;
    int64_t ending = probe(q.db,
                           "SELECT count(*) FROM (SELECT 1 FROM traces INDEXED BY traces_completed"
                           " WHERE completed_ns >= ?1 LIMIT " STR(STATS_PROBE) " + 1)",
                           qs->start_ns);
    int64_t starting = probe(q.db,
                             "SELECT count(*) FROM (SELECT 1 FROM traces INDEXED BY traces_started"
                             " WHERE started_ns < ?1 LIMIT " STR(STATS_PROBE) " + 1)",
                             qs->end_ns);
    if (ending < 0 || starting < 0) return pc_local_query_close(&q, SQLITE_ERROR);

    pc_buf sql = PC_BUF_INIT;
    pc_buf_puts(&sql, "SELECT ");
    pc_buf_puts(&sql, qs->interval_ns > 0 ? "s.start_ns - s.start_ns % ?4" : "?1");
    pc_buf_puts(&sql, ", ");
    pc_buf_puts(&sql, group_col(qs->group_by));
    pc_buf_puts(&sql,
                ", s.tid, s.status = 'error', s.input_tokens, s.output_tokens, s.cost_usd,"
                " s.span_type IN ('llm', 'embedding') AND s.llm_model != ''"
                " AND s.cost_usd IS NULL,"
                " CASE WHEN s.end_ns > 0 THEN s.end_ns - s.start_ns END"
                " FROM traces t INDEXED BY ");
    /* CROSS JOIN: the traces first, then their spans (spans has no time index) */
    pc_buf_puts(&sql, starting < ending ? "traces_started" : "traces_completed");
    pc_buf_puts(&sql, " CROSS JOIN spans s ON s.tid = t.tid"
                " WHERE t.completed_ns >= ?1 AND t.started_ns < ?2"
                " AND s.start_ns >= ?1 AND s.start_ns < ?2");
    if (qs->project_id) pc_buf_puts(&sql, " AND t.project_id = ?3");
    pc_buf_puts(&sql, " ORDER BY 1, 2");

    int rc = sqlite3_prepare_v2(q.db, sql.data, -1, &q.st, NULL);
    pc_buf_free(&sql);
    if (rc != SQLITE_OK) return pc_local_query_close(&q, rc);
    sqlite3_bind_int64(q.st, 1, qs->start_ns);
    sqlite3_bind_int64(q.st, 2, qs->end_ns);
    if (qs->project_id) bind_cstr(q.st, 3, qs->project_id);
    if (qs->interval_ns > 0) sqlite3_bind_int64(q.st, 4, qs->interval_ns);

    agg a = {.row = {0}};
    bool open = false, stop = false;
    int rows = 0;
    while (!stop && (rc = sqlite3_step(q.st)) == SQLITE_ROW) {
        int64_t bucket = sqlite3_column_int64(q.st, 0);
        const char *group = col_text(q.st, 1);
        size_t glen = (size_t)sqlite3_column_bytes(q.st, 1);
        if (open && (bucket != a.row.bucket_ns || glen != a.group.len ||
                     (glen && memcmp(group, a.group.data, glen) != 0))) {
            stop = emit(&a, cb, ud) != 0 || ++rows >= qs->max_rows;
            open = false;
            if (stop) break;
        }
        if (!open) {
            a.row = (pc_stats_row){.bucket_ns = bucket};
            pc_buf_reset(&a.group);
            pc_buf_append(&a.group, group, glen);
            pc_buf_putc(&a.group, '\0');
            a.group.len = glen;
            a.n_tids = a.n_durs = 0;
            a.has_cost = false;
            open = true;
        }
        a.row.spans++;
        push(&a.tids, &a.n_tids, &a.cap_tids, sqlite3_column_int64(q.st, 2));
        a.row.errors += sqlite3_column_int(q.st, 3);
        int64_t in = sqlite3_column_int64(q.st, 4), out = sqlite3_column_int64(q.st, 5);
        if (in > 0) a.row.input_tokens = pc_tokens_add(a.row.input_tokens, in);
        if (out > 0) a.row.output_tokens = pc_tokens_add(a.row.output_tokens, out);
        if (sqlite3_column_type(q.st, 6) != SQLITE_NULL) {
            a.row.cost_usd += sqlite3_column_double(q.st, 6);
            a.has_cost = true;
        }
        a.row.unpriced += sqlite3_column_int(q.st, 7);
        if (sqlite3_column_type(q.st, 8) != SQLITE_NULL)
            push(&a.durs, &a.n_durs, &a.cap_durs, sqlite3_column_int64(q.st, 8));
    }
    if (open && (rc == SQLITE_DONE)) emit(&a, cb, ud);
    pc_buf_free(&a.group);
    free(a.tids);
    free(a.durs);
    return pc_local_query_close(&q, stop ? SQLITE_DONE : rc);
}
