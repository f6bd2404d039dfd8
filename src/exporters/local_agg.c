/*
 * local_agg.c - the embedded store's session reads (store.h), over the
 * schema of local_schema.c; the stats are local_stats.c's.
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
    if (rc < 0) return rc;
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
    if (rc < 0) return rc;
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
