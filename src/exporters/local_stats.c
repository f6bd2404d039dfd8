/*
 * local_stats.c - the embedded store's aggregates (store.h, GET /api/v1/stats
 * and /api/v1/models) over the schema of local_schema.c, from the spans and
 * from the hour rollups (stats_rollup), and the building of those rollups.
 *
 * Where it sits: the query receiver calls pc_local_stats through
 * pc_local_store_ops (local_store.c) on a pooled read connection
 * (local_query.h), concurrently with the writer (WAL); local_rollup.c
 * gathers an hour's rollups (pc_local_stats_gather_hour) in a read
 * transaction and stores them (pc_local_stats_store_hour) in a write one.
 *
 * Reading spans (gather): the traces that can hold a span starting in a
 * range [lo, hi) or a first span of a group there (started_ns < hi: a trace
 * starts with its first span; completed_ns >= lo: it ends at or after its
 * last span's start; so started_ns >= lo - trace_bounds.longest_ns), through
 * traces_started over [lo - longest_ns, hi) or traces_completed from lo,
 * whichever bounds fewer traces (probed), and every span of those traces,
 * trace by trace. Spans are unique in the store (INSERT OR IGNORE on (tid,
 * span_id)), so each counts once. The figures are gathered here in C, per (bucket,
 * group) in a pc_cells (local_cells.h: bounded, keyed by pc_hash):
 * - the span figures, from each span whose start lies in the range, in the
 *   bucket of its start;
 * - traces, from the first span of each (trace, group) (the smallest
 *   start_ns among the trace's spans of that group), counted in its bucket
 *   when it lies in the range: so a trace counts once per group, in the
 *   bucket its group begins in, and ranges add up;
 * - latency: the bin (histo.h) of each ended span's duration; a percentile
 *   is the nearest-rank bin of the bucket's bins.
 * That costs the span rows of the traces read (about 0.85 s per 300,000
 * spans on the benchmark's machine).
 *
 * Rollups: every figure above adds up over disjoint time ranges (counts,
 * sums, bin counts, and traces counted where their group begins), so the
 * figures of one hour, gathered once, stand for that hour in any later
 * read. stats_rollup holds them per (kind, hour, project, group) for the
 * groups none, model, service and span type (project is a key of every
 * row); stats_hours says which hours hold spans and which of those are
 * built (local_schema.c has the invariants). The writes keep the live
 * hours' rows (local_rollup.h: each transaction adds its figures, counted
 * as here); the builder gathers and stores the other hours a write marked
 * (older ones), those of a store from before that, and any whose rows did
 * not take a write's figures. A read whose buckets are whole
 * hours (interval 0 or a multiple of 1 h) and whose group is one of those
 * takes every built hour of its window from stats_rollup and gathers the
 * rest (the partial hours at its ends, the hours written since they were
 * built) from the spans; session and user groups, and other intervals,
 * gather everything. A partial hour that is more than half of a built hour
 * is read as that hour's rollup minus the rest of the hour (gather_part:
 * the benchmark's 1-day window starts a second past an hour, and gathering
 * that hour from its spans was most of the read at 10M spans). All of one
 * read sees one snapshot (a read transaction). The answers are the same
 * either way (costs to rounding), which the tests check
 * (tests/unit/exporters/test_local_stats.c).
 */
#include "local_stats.h"

#include "local_cells.h"
#include "local_query.h"

#include "buf.h"
#include "histo.h"
#include "mem.h"
#include "span.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ gathering -- */

#define HOUR_NS PC_ROLLUP_HOUR_NS

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

/* The rollup kinds (stats_rollup.kind): none (the project is the row's key,
 * so none and project both read kind 0), model, service, span type. */
#define KINDS PC_ROLLUP_KINDS
static const char *const kind_cols[KINDS] = {"''", "s.llm_model", "s.service_name", "s.span_type"};

/*
 * The index that bounds a range's traces best: traces_completed (completed_ns
 * >= lo: the traces ending in or after the range) unless traces_started
 * (lo - longest_ns <= started_ns < hi) holds fewer, as for any range but the
 * newest when traces are short. Each side is counted up to STATS_PROBE index
 * entries; when both pass it, the side whose time span is shorter (hi - the
 * first start or lo - longest_ns, against the last completion - lo) is
 * taken. Before trace_bounds (schema 8) the started side reached back to the
 * store's first trace: an hour in the middle of a 30-day store of 10M spans
 * read about half its million traces either way (1.1 s a rollup build).
 */
#define STATS_PROBE 50000
#define STR_(x) #x
#define STR(x) STR_(x)

/* The one number |sql| answers, its parameters ?1 and ?2 (those it has) bound
 * to |a| and |b|; -1 on failure. The probes: entries of one side, at most
 * STATS_PROBE + 1. */
static int64_t probe(sqlite3 *db, const char *sql, int64_t a, int64_t b)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        int params = sqlite3_bind_parameter_count(st);
        if (params > 0) sqlite3_bind_int64(st, 1, a);
        if (params > 1) sqlite3_bind_int64(st, 2, b);
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

/* What one gather reads and where its figures go. */
typedef struct gather {
    sqlite3 *db;
    int64_t lo, hi;         /* spans starting in [lo, hi) */
    int64_t interval_ns;    /* buckets: 0 = one, at |bucket0| */
    int64_t bucket0;
    const char *project_id; /* NULL = every project */
    /* API: one group, keyed by its value, into acc[0]. Build: the KINDS
     * kinds, keyed "project\0value", into acc[0..KINDS-1]. */
    pc_stats_group group_by;
    bool build;
    pc_cells *acc;
} gather;

static int64_t bucket_of(const gather *g, int64_t ns)
{
    return g->interval_ns > 0 ? ns - ns % g->interval_ns : g->bucket0;
}

/* The first span of each (kind, group) of the trace being read: its smallest start. */
typedef struct firsts {
    pc_keys keys;
    int64_t *start;
    size_t cap;
} firsts;

static void first_seen(firsts *f, int kind, const char *g, size_t n, int64_t start)
{
    bool added;
    size_t i = pc_keys_find(&f->keys, kind, g, n, &added);
    if (i >= f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->start = pc_xrealloc(f->start, f->cap * sizeof(*f->start));
    }
    if (added || start < f->start[i]) f->start[i] = start;
}

/* Counts the trace just read in the bucket of each of its groups' first span
 * that lies in the range, and forgets it. */
static void trace_done(firsts *f, const gather *g)
{
    for (size_t i = 0; i < f->keys.used; i++) {
        int64_t s = f->start[i];
        if (s < g->lo || s >= g->hi) continue;
        pc_cell *c =
            pc_cells_get(&g->acc[f->keys.k[i]], bucket_of(g, s), f->keys.s[i], f->keys.n[i]);
        if (c) c->row.traces++;
    }
    pc_keys_clear(&f->keys);
}

void pc_local_fig_add(pc_cell *c, const pc_local_fig *f)
{
    if (!c) return; /* past the answer's cut */
    c->row.spans++;
    c->row.errors += f->error;
    if (f->input_tokens > 0)
        c->row.input_tokens = pc_tokens_add(c->row.input_tokens, f->input_tokens);
    if (f->output_tokens > 0)
        c->row.output_tokens = pc_tokens_add(c->row.output_tokens, f->output_tokens);
    if (f->priced) {
        c->row.cost_usd += f->cost_usd;
        c->has_cost = true;
        c->priced++;
    }
    c->row.unpriced += f->unpriced;
    if (f->ended) pc_cell_bin(c, pc_histo_bin(f->duration_ns), 1);
}

/* The figures of the row of |st| at column |col| on (select_cols' last six). */
static pc_local_fig row_fig(sqlite3_stmt *st, int col)
{
    pc_local_fig f = {.error = sqlite3_column_int(st, col) != 0,
                      .input_tokens = sqlite3_column_int64(st, col + 1),
                      .output_tokens = sqlite3_column_int64(st, col + 2),
                      .priced = sqlite3_column_type(st, col + 3) != SQLITE_NULL,
                      .cost_usd = sqlite3_column_double(st, col + 3),
                      .unpriced = sqlite3_column_int(st, col + 4) != 0,
                      .ended = sqlite3_column_type(st, col + 5) != SQLITE_NULL,
                      .duration_ns = sqlite3_column_int64(st, col + 5)};
    return f;
}

/* The columns gather_rows reads, "SELECT ..." into |sql|: the trace's tid,
 * the span's start, its group (build: the project and the value of each
 * kind but none), then its figures (row_fig). Spans s, traces t. */
static void select_cols(const gather *g, pc_buf *sql)
{
    pc_buf_puts(sql, "SELECT t.tid, s.start_ns, ");
    if (g->build) {
        pc_buf_puts(sql, "t.project_id");
        for (int k = 1; k < KINDS; k++)
            pc_buf_printf(sql, ", %s", kind_cols[k]);
    } else {
        pc_buf_puts(sql, group_col(g->group_by));
    }
    pc_buf_puts(sql, ", s.status = 'error', s.input_tokens, s.output_tokens, s.cost_usd,"
                     " s.span_type IN ('llm', 'embedding') AND s.llm_model != ''"
                     " AND s.cost_usd IS NULL,"
                     " CASE WHEN s.end_ns > 0 THEN s.end_ns - s.start_ns END");
}

static int gather_rows(const gather *g, sqlite3_stmt *st);

/* Gathers |g| from the spans. The SQLite code of the last step (SQLITE_DONE
 * when complete). */
static int gather_spans(const gather *g)
{
    int64_t longest = probe(g->db, "SELECT longest_ns FROM trace_bounds", 0, 0), since;
    if (longest < 0) return SQLITE_ERROR;
    if (__builtin_sub_overflow(g->lo, longest, &since)) since = INT64_MIN;
    int64_t ending = probe(g->db,
                           "SELECT count(*) FROM (SELECT 1 FROM traces INDEXED BY traces_completed"
                           " WHERE completed_ns >= ?1 LIMIT " STR(STATS_PROBE) " + 1)",
                           g->lo, 0);
    int64_t starting = probe(g->db,
                             "SELECT count(*) FROM (SELECT 1 FROM traces INDEXED BY traces_started"
                             " WHERE started_ns >= ?1 AND started_ns < ?2"
                             " LIMIT " STR(STATS_PROBE) " + 1)",
                             since, g->hi);
    if (ending < 0 || starting < 0) return SQLITE_ERROR;
    bool by_start = starting < ending;
    if (starting > STATS_PROBE && ending > STATS_PROBE) {
        int64_t first = probe(g->db, "SELECT min(started_ns) FROM traces", 0, 0);
        int64_t last = probe(g->db, "SELECT max(completed_ns) FROM traces", 0, 0);
        if (first < since) first = since;
        by_start = g->hi - first < last - g->lo;
    }
    pc_buf sql = PC_BUF_INIT;
    select_cols(g, &sql);
    pc_buf_puts(&sql, " FROM traces t INDEXED BY ");
    /* CROSS JOIN: the traces first, then their spans (spans has no time
     * index), so the rows of one trace come together */
    pc_buf_puts(&sql, by_start ? "traces_started" : "traces_completed");
    pc_buf_puts(&sql, " CROSS JOIN spans s ON s.tid = t.tid"
                      " WHERE t.completed_ns >= ?1 AND t.started_ns < ?2 AND t.started_ns >= ?4");
    if (g->project_id) pc_buf_puts(&sql, " AND t.project_id = ?3");
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(g->db, sql.data, -1, &st, NULL);
    pc_buf_free(&sql);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, g->lo);
    sqlite3_bind_int64(st, 2, g->hi);
    if (g->project_id) sqlite3_bind_text(st, 3, g->project_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, since);
    rc = gather_rows(g, st);
    sqlite3_finalize(st);
    return rc;
}

/* Adds the rows of |st| (select_cols' columns, the rows of one trace
 * together) to |g|'s cells. The SQLite code of the last step (SQLITE_DONE
 * when complete). */
static int gather_rows(const gather *g, sqlite3_stmt *st)
{
    int rc;
    int ngroups = g->build ? KINDS : 1;
    int figures = 2 + (g->build ? KINDS - 1 : 0) + 1; /* column of the first figure */
    firsts f = {0};
    pc_buf key = PC_BUF_INIT;
    int64_t tid = 0;
    bool any = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t t = sqlite3_column_int64(st, 0), start = sqlite3_column_int64(st, 1);
        if (any && t != tid) trace_done(&f, g);
        tid = t;
        any = true;
        bool in = start >= g->lo && start < g->hi;
        pc_local_fig fig = row_fig(st, figures);
        for (int k = 0; k < ngroups; k++) {
            /* build: "project\0value" (kind 0: "project\0"); API: the value */
            pc_buf_reset(&key);
            if (g->build) {
                pc_buf_append(&key, sqlite3_column_text(st, 2),
                              (size_t)sqlite3_column_bytes(st, 2));
                pc_buf_putc(&key, '\0');
            }
            int c = g->build ? (k ? 2 + k : -1) : 2;
            if (c >= 0) {
                const unsigned char *v = sqlite3_column_text(st, c);
                if (v) pc_buf_append(&key, v, (size_t)sqlite3_column_bytes(st, c));
            }
            const char *kd = key.data ? key.data : "";
            first_seen(&f, k, kd, key.len, start);
            if (in)
                pc_local_fig_add(pc_cells_get(&g->acc[k], bucket_of(g, start), kd, key.len),
                                 &fig);
        }
    }
    if (any) trace_done(&f, g);
    pc_keys_free(&f.keys);
    free(f.start);
    pc_buf_free(&key);
    return rc;
}

void pc_local_stats_traces_sql(pc_buf *sql)
{
    gather g = {.build = true};
    select_cols(&g, sql);
    pc_buf_puts(sql, " FROM traces t CROSS JOIN spans s ON s.tid = t.tid");
}

int pc_local_stats_gather_traces(sqlite3_stmt *st, pc_cells acc[PC_ROLLUP_KINDS])
{
    gather g = {.lo = INT64_MIN, .hi = INT64_MAX, .interval_ns = HOUR_NS, .build = true,
                .acc = acc};
    int rc = gather_rows(&g, st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* ------------------------------------------------------------- rollups -- */

bool pc_local_rollup_row_add(pc_cell *c, sqlite3_stmt *st, int col)
{
    c->row.spans += sqlite3_column_int64(st, col);
    c->row.traces += sqlite3_column_int64(st, col + 1);
    c->row.errors += sqlite3_column_int64(st, col + 2);
    c->row.input_tokens = pc_tokens_add(c->row.input_tokens, sqlite3_column_int64(st, col + 3));
    c->row.output_tokens = pc_tokens_add(c->row.output_tokens, sqlite3_column_int64(st, col + 4));
    if (sqlite3_column_type(st, col + 5) != SQLITE_NULL) {
        c->row.cost_usd += sqlite3_column_double(st, col + 5);
        c->has_cost = true;
    }
    c->row.unpriced += sqlite3_column_int64(st, col + 6);
    c->priced += sqlite3_column_int64(st, col + 8);
    return pc_cell_decode_bins(c, sqlite3_column_blob(st, col + 7),
                               (size_t)sqlite3_column_bytes(st, col + 7));
}

void pc_local_rollup_row_bind(sqlite3_stmt *st, int col, pc_cell *c, pc_buf *bins)
{
    pc_buf_reset(bins);
    pc_cell_encode_bins(c, bins);
    sqlite3_bind_int64(st, col, c->row.spans);
    sqlite3_bind_int64(st, col + 1, c->row.traces);
    sqlite3_bind_int64(st, col + 2, c->row.errors);
    sqlite3_bind_int64(st, col + 3, c->row.input_tokens);
    sqlite3_bind_int64(st, col + 4, c->row.output_tokens);
    if (c->has_cost)
        sqlite3_bind_double(st, col + 5, c->row.cost_usd);
    else
        sqlite3_bind_null(st, col + 5);
    sqlite3_bind_int64(st, col + 6, c->row.unpriced);
    sqlite3_bind_blob(st, col + 7, bins->data ? bins->data : "", (int)bins->len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, col + 8, c->priced);
}

/* The stored rollups of kind |kind| for the built hours in [h0, h1) (hour
 * numbers), added to the API cells of |g|. SQLite code (SQLITE_DONE). */
static int read_rollups(const gather *g, int kind, int64_t h0, int64_t h1)
{
    sqlite3_stmt *st = NULL;
    const char *sql =
        "SELECT r.hour, r.project_id, r.grp, " PC_ROLLUP_FIGURES " FROM stats_rollup r"
        " JOIN stats_hours h ON h.hour = r.hour AND h.built = 1"
        " WHERE r.kind = ?1 AND r.hour >= ?2 AND r.hour < ?3 AND (?4 IS NULL OR r.project_id = ?4)";
    int rc = sqlite3_prepare_v2(g->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int(st, 1, kind);
    sqlite3_bind_int64(st, 2, h0);
    sqlite3_bind_int64(st, 3, h1);
    if (g->project_id) sqlite3_bind_text(st, 4, g->project_id, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int col = g->group_by == PC_GROUP_PROJECT ? 1 : 2;
        const char *v =
            g->group_by == PC_GROUP_NONE ? "" : (const char *)sqlite3_column_text(st, col);
        size_t vn = g->group_by == PC_GROUP_NONE ? 0 : (size_t)sqlite3_column_bytes(st, col);
        pc_cell *c = pc_cells_get(g->acc, bucket_of(g, sqlite3_column_int64(st, 0) * HOUR_NS),
                                  v ? v : "", vn);
        if (c && !pc_local_rollup_row_add(c, st, 3)) { /* !c: past the answer's cut */
            rc = SQLITE_CORRUPT;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* The hours in [h0, h1) written since they were built (stats_hours.built
 * 0), ascending, into |*out| (malloc'd). SQLite code (SQLITE_DONE). */
static int dirty_hours(sqlite3 *db, int64_t h0, int64_t h1, int64_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT hour FROM stats_hours WHERE hour >= ?1 AND hour < ?2"
                                " AND built = 0 ORDER BY hour",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, h0);
    sqlite3_bind_int64(st, 2, h1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            *out = pc_xrealloc(*out, cap * sizeof(**out));
        }
        (*out)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Gathers |g|'s [lo, hi) from the spans (the range given), keeping |g|'s own. */
static int gather_range(gather g, int64_t lo, int64_t hi)
{
    if (lo >= hi) return SQLITE_DONE;
    g.lo = lo;
    g.hi = hi;
    return gather_spans(&g);
}

/*
 * Gathers [lo, hi), the part of hour |h| at an end of |g|'s window, into
 * |g|'s cells the cheaper way: from the spans, or, when it is more than
 * half of the hour and the hour is built, as the hour's rollup minus the
 * rest of the hour read from the spans (pc_cells_subtract: every figure
 * adds up over disjoint ranges, so it subtracts; the buckets are whole
 * hours, so the hour's rollup lies in the bucket of [lo, hi)). *|unfit|
 * set when the subtraction did not fit (|g|'s cells are then unusable: a
 * rollup and spans that disagree, or cells cut by the answer's bound).
 * SQLite code (SQLITE_DONE).
 */
static int gather_part(const gather *g, int kind, int64_t h, int64_t lo, int64_t hi, bool *unfit)
{
    if (lo >= hi) return SQLITE_DONE;
    /* whether hour |h| is built (1), not or holding no span (0), -1 on failure */
    int64_t built = hi - lo > HOUR_NS / 2 ? probe(g->db,
                                                  "SELECT count(*) FROM stats_hours"
                                                  " WHERE hour = ?1 AND built = 1",
                                                  h, 0)
                                          : 0;
    if (built < 0) return SQLITE_ERROR;
    if (!built) return gather_range(*g, lo, hi);
    pc_cells rest = {.limit = 0}; /* every cell: none may be cut */
    gather r = *g;
    r.acc = &rest;
    int rc = gather_range(r, h * HOUR_NS, lo);
    if (rc == SQLITE_DONE) rc = gather_range(r, hi, (h + 1) * HOUR_NS);
    if (rc == SQLITE_DONE) rc = read_rollups(g, kind, h, h + 1);
    if (rc == SQLITE_DONE && !pc_cells_subtract(g->acc, &rest)) *unfit = true;
    pc_cells_free(&rest);
    return rc;
}

/*
 * The API read |g| (whole-hour buckets, a rolled-up group): the partial
 * hours at both ends (gather_part, or from the spans when not |subtract|)
 * and the runs of dirty hours from the spans, the built hours from
 * stats_rollup. *|unfit| as gather_part. SQLite code (SQLITE_DONE).
 */
static int gather_with_rollups(const gather *g, int kind, bool subtract, bool *unfit)
{
    int64_t h0 = g->lo / HOUR_NS + (g->lo % HOUR_NS != 0); /* first whole hour */
    int64_t h1 = g->hi / HOUR_NS;                           /* end of the last */
    if (h0 >= h1) return gather_range(*g, g->lo, g->hi);
    int rc = subtract ? gather_part(g, kind, h0 - 1, g->lo, h0 * HOUR_NS, unfit)
                      : gather_range(*g, g->lo, h0 * HOUR_NS);
    if (rc == SQLITE_DONE)
        rc = subtract ? gather_part(g, kind, h1, h1 * HOUR_NS, g->hi, unfit)
                      : gather_range(*g, h1 * HOUR_NS, g->hi);
    if (rc == SQLITE_DONE) rc = read_rollups(g, kind, h0, h1);
    int64_t *dirty = NULL;
    size_t n = 0;
    if (rc == SQLITE_DONE) rc = dirty_hours(g->db, h0, h1, &dirty, &n);
    for (size_t i = 0; i < n && rc == SQLITE_DONE;) {
        size_t j = i + 1;
        while (j < n && dirty[j] == dirty[j - 1] + 1)
            j++;
        rc = gather_range(*g, dirty[i] * HOUR_NS, (dirty[j - 1] + 1) * HOUR_NS);
        i = j;
    }
    free(dirty);
    return rc;
}

/*
 * One API read in one snapshot (a read transaction): built hours from the
 * rollups when |rollups| and the query allows, the rest from the spans.
 */
static int stats_read(void *ctx, const pc_stats_query *qs, bool rollups, pc_stats_cb cb, void *ud)
{
    pc_local_query q;
    int rc = pc_local_query_begin(&q, ctx, "stats");
    if (rc < 0) return rc;
    const pc_cells fresh = {.limit = qs->max_rows > 0 ? (size_t)qs->max_rows : 1};
    pc_cells acc = fresh;
    gather g = {.db = q.db,
                .lo = qs->start_ns,
                .hi = qs->end_ns,
                .interval_ns = qs->interval_ns,
                .bucket0 = qs->start_ns,
                .project_id = qs->project_id,
                .group_by = qs->group_by,
                .acc = &acc};
    int kind = pc_stats_kind(qs->group_by);
    bool unfit = false;
    if (rollups && kind >= 0 && qs->interval_ns % HOUR_NS == 0) {
        rc = gather_with_rollups(&g, kind, true, &unfit);
        if (rc == SQLITE_DONE && unfit) { /* again, the partial hours from the spans */
            pc_cells_free(&acc);
            acc = fresh;
            rc = gather_with_rollups(&g, kind, false, &unfit);
        }
    } else {
        rc = gather_spans(&g);
    }
    if (rc == SQLITE_DONE) pc_cells_emit(&acc, qs->max_rows, cb, ud);
    pc_cells_free(&acc);
    if (rc == SQLITE_CORRUPT) q.what = "stats: a stored rollup's bins do not decode";
    return pc_local_query_close(&q, rc); /* ends the snapshot too */
}

int pc_local_stats(void *ctx, const pc_stats_query *qs, pc_stats_cb cb, void *ud)
{
    return stats_read(ctx, qs, true, cb, ud);
}

int pc_local_stats_spans(void *ctx, const pc_stats_query *qs, pc_stats_cb cb, void *ud)
{
    return stats_read(ctx, qs, false, cb, ud);
}

/* ------------------------------------------------------------ building -- */

/* Splits a build key "project\0value" (|n| bytes) into its parts. */
static void split_key(const char *k, size_t n, const char **value, size_t *vn, size_t *pn)
{
    *pn = strnlen(k, n);
    *value = k + *pn + 1;
    *vn = n - *pn - 1;
}

struct pc_local_hour {
    int64_t hour;
    pc_cells acc[KINDS];
};

int pc_local_stats_gather_hour(sqlite3 *db, int64_t hour, pc_local_hour **out)
{
    pc_local_hour *h = pc_xcalloc(1, sizeof(*h));
    h->hour = hour;
    gather g = {.db = db,
                .lo = hour * HOUR_NS,
                .hi = (hour + 1) * HOUR_NS,
                .interval_ns = HOUR_NS,
                .build = true,
                .acc = h->acc};
    int rc = gather_spans(&g);
    if (rc != SQLITE_DONE) {
        pc_local_stats_hour_free(h);
        *out = NULL;
        return rc;
    }
    *out = h;
    return SQLITE_OK;
}

void pc_local_stats_hour_free(pc_local_hour *h)
{
    if (!h) return;
    for (int k = 0; k < KINDS; k++)
        pc_cells_free(&h->acc[k]);
    free(h);
}

int pc_local_stats_store_hour(sqlite3 *db, pc_local_hour *h, int64_t *spans)
{
    sqlite3_stmt *del = NULL, *ins = NULL;
    int rc = sqlite3_prepare_v2(
        db, "DELETE FROM stats_rollup WHERE kind IN (0, 1, 2, 3) AND hour = ?1", -1, &del, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            db,
            "INSERT INTO stats_rollup (kind, hour, project_id, grp, " PC_ROLLUP_FIGURES ")"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            -1, &ins, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(del, 1, h->hour);
        rc = sqlite3_step(del);
    }
    pc_buf bins = PC_BUF_INIT;
    *spans = 0;
    for (int k = 0; k < KINDS && rc == SQLITE_DONE; k++) {
        pc_cells *acc = &h->acc[k];
        for (size_t i = 0; i < acc->keys.used && rc == SQLITE_DONE; i++) {
            pc_cell *c = &acc->cells[i];
            const char *v;
            size_t vn, pn;
            split_key(acc->keys.s[i], acc->keys.n[i], &v, &vn, &pn);
            if (k == 0) *spans += c->row.spans;
            sqlite3_reset(ins);
            sqlite3_bind_int(ins, 1, k);
            sqlite3_bind_int64(ins, 2, h->hour);
            sqlite3_bind_text(ins, 3, acc->keys.s[i], (int)pn, SQLITE_STATIC);
            sqlite3_bind_text(ins, 4, v, (int)vn, SQLITE_STATIC);
            pc_local_rollup_row_bind(ins, 5, c, &bins);
            rc = sqlite3_step(ins);
        }
    }
    pc_buf_free(&bins);
    sqlite3_finalize(del);
    sqlite3_finalize(ins);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}
