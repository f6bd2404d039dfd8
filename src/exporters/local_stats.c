/*
 * local_stats.c - the embedded store's aggregates (store.h, GET /api/v1/stats
 * and /api/v1/models) over the schema of local_schema.c.
 *
 * Where it sits: the query receiver calls pc_local_stats through
 * pc_local_store_ops (local_store.c) on a pooled read connection
 * (local_query.h), concurrently with the writer (WAL).
 *
 * What it reads: the traces that can hold a span starting in [start, end) or
 * a first span of a group there (started_ns < end: a trace starts with its
 * first span; completed_ns >= start: it ends at or after its last span's
 * start), through traces_completed or traces_started, whichever bounds fewer
 * traces (probed), and every span of those traces, trace by trace. Spans are
 * unique in the store (INSERT OR IGNORE on (tid, span_id)), so each counts
 * once. The figures are gathered here in C, per (bucket, group) in a hash
 * table (keys a client chooses: pc_hash):
 * - the span figures, from each span whose start lies in the window, in the
 *   bucket of its start;
 * - traces, from the first span of each (trace, group) (the smallest
 *   start_ns among the trace's spans of that group), counted in its bucket
 *   when it lies in the window: so a trace counts once per group, in the
 *   bucket its group begins in, and buckets add up (an hour's traces plus
 *   the next hour's are the two hours' traces);
 * - latency: the bin (histo.h) of each ended span's duration; a percentile
 *   is the nearest-rank bin of the bucket's bins.
 * The cost is the span rows of the traces read (about 0.85 s per 300,000
 * spans on the benchmark's machine); the table holds a bin per ended span.
 */
#include "local_query.h"

#include "buf.h"
#include "hash.h"
#include "histo.h"
#include "mem.h"
#include "span.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ key table -- */

/* A table of (int64, bytes) keys, each numbered in the order added: the
 * callers keep their values in arrays indexed by that number. */
typedef struct keys {
    int64_t *k;
    char **s; /* owned copies, NUL-terminated */
    size_t *n;
    size_t used, cap;   /* keys, and the arrays' room */
    uint32_t *slots;    /* key number + 1; 0 = empty */
    size_t nslots;      /* a power of two, > 2 * used */
} keys;

static uint64_t key_hash(int64_t k, const char *s, size_t n)
{
    return pc_hash_seeded((uint64_t)k, s, n);
}

static size_t key_slot(const keys *t, int64_t k, const char *s, size_t n)
{
    size_t i = (size_t)key_hash(k, s, n) & (t->nslots - 1);
    for (;;) {
        uint32_t j = t->slots[i];
        if (!j) return i;
        j--;
        if (t->k[j] == k && t->n[j] == n && memcmp(t->s[j], s, n) == 0) return i;
        i = (i + 1) & (t->nslots - 1);
    }
}

static void keys_grow(keys *t)
{
    size_t nslots = t->nslots ? 2 * t->nslots : 64;
    free(t->slots);
    t->slots = pc_xcalloc(nslots, sizeof(*t->slots));
    t->nslots = nslots;
    for (size_t j = 0; j < t->used; j++)
        t->slots[key_slot(t, t->k[j], t->s[j], t->n[j])] = (uint32_t)j + 1;
}

/* The number of key (|k|, |s|, |n| bytes), added when new (*|added| set). */
static size_t keys_find(keys *t, int64_t k, const char *s, size_t n, bool *added)
{
    if (2 * (t->used + 1) >= t->nslots) keys_grow(t);
    size_t i = key_slot(t, k, s, n);
    *added = !t->slots[i];
    if (!*added) return t->slots[i] - 1;
    if (t->used == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->k = pc_xrealloc(t->k, t->cap * sizeof(*t->k));
        t->s = pc_xrealloc(t->s, t->cap * sizeof(*t->s));
        t->n = pc_xrealloc(t->n, t->cap * sizeof(*t->n));
    }
    size_t j = t->used++;
    t->k[j] = k;
    t->s[j] = pc_xmalloc(n + 1);
    memcpy(t->s[j], s, n);
    t->s[j][n] = '\0';
    t->n[j] = n;
    t->slots[i] = (uint32_t)j + 1;
    return j;
}

/* Forgets every key, keeping the room. */
static void keys_clear(keys *t)
{
    for (size_t j = 0; j < t->used; j++)
        free(t->s[j]);
    t->used = 0;
    if (t->slots) memset(t->slots, 0, t->nslots * sizeof(*t->slots));
}

static void keys_free(keys *t)
{
    keys_clear(t);
    free(t->k);
    free(t->s);
    free(t->n);
    free(t->slots);
}

/* ------------------------------------------------------------- the cells -- */

/* The figures of one (bucket, group). */
typedef struct cell {
    pc_stats_row row;
    uint64_t *bins; /* (bin << 32 | count) of ended spans; one entry per span or rollup bin */
    size_t n_bins, cap_bins;
    bool has_cost;
} cell;

/* Every (bucket, group) of one read: key (bucket_ns, group) → cells[i]. */
typedef struct stats_acc {
    keys keys;
    cell *cells;
    size_t cap;
} stats_acc;

static cell *acc_cell(stats_acc *a, int64_t bucket, const char *g, size_t n)
{
    bool added;
    size_t i = keys_find(&a->keys, bucket, g, n, &added);
    if (added) {
        if (i >= a->cap) {
            a->cap = a->cap ? 2 * a->cap : 16;
            a->cells = pc_xrealloc(a->cells, a->cap * sizeof(*a->cells));
        }
        a->cells[i] = (cell){.row = {.bucket_ns = bucket}};
    }
    return &a->cells[i];
}

static void cell_bin(cell *c, int bin, uint32_t count)
{
    if (c->n_bins == c->cap_bins) {
        c->cap_bins = c->cap_bins ? 2 * c->cap_bins : 64;
        c->bins = pc_xrealloc(c->bins, c->cap_bins * sizeof(*c->bins));
    }
    c->bins[c->n_bins++] = (uint64_t)bin << 32 | count;
}

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The value of the nearest-rank percentile |pct| (1..100) of |c|'s sorted
 * bins holding |n| durations: the bin at 1-based rank ceil(pct * n / 100);
 * -1 when n is 0. */
static int64_t nearest_rank(const cell *c, int64_t n, int pct)
{
    if (n == 0) return -1;
    int64_t rank = (n * pct + 99) / 100, seen = 0;
    if (rank < 1) rank = 1;
    for (size_t i = 0; i < c->n_bins; i++) {
        seen += (int64_t)(c->bins[i] & 0xffffffffu);
        if (seen >= rank) return pc_histo_value((int)(c->bins[i] >> 32));
    }
    return -1;
}

/* A cell's place in list order: bucket, then group bytewise (SQLite's BINARY). */
typedef struct ordered {
    int64_t bucket;
    const char *group;
    size_t n, i;
} ordered;

static int by_bucket_group(const void *a, const void *b)
{
    const ordered *x = a, *y = b;
    if (x->bucket != y->bucket) return x->bucket < y->bucket ? -1 : 1;
    int c = memcmp(x->group, y->group, x->n < y->n ? x->n : y->n);
    if (c) return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* Completes every cell (percentiles, cost) and hands them to |cb| in list
 * order, at most |max_rows|. */
static void acc_emit(stats_acc *a, int max_rows, pc_stats_cb cb, void *ud)
{
    size_t n = a->keys.used;
    ordered *order = pc_xmalloc((n ? n : 1) * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = (ordered){a->keys.k[i], a->keys.s[i], a->keys.n[i], i};
    qsort(order, n, sizeof(*order), by_bucket_group);
    for (size_t r = 0; r < n && (int)r < max_rows; r++) {
        cell *c = &a->cells[order[r].i];
        int64_t ended = 0;
        for (size_t i = 0; i < c->n_bins; i++)
            ended += (int64_t)(c->bins[i] & 0xffffffffu);
        if (c->n_bins > 1) qsort(c->bins, c->n_bins, sizeof(*c->bins), by_u64);
        c->row.latency_p50_ns = nearest_rank(c, ended, 50);
        c->row.latency_p95_ns = nearest_rank(c, ended, 95);
        c->row.latency_p99_ns = nearest_rank(c, ended, 99);
        if (!c->has_cost) c->row.cost_usd = NAN;
        c->row.group = order[r].group;
        if (cb(ud, &c->row) != 0) break;
    }
    free(order);
}

static void acc_free(stats_acc *a)
{
    for (size_t i = 0; i < a->keys.used; i++)
        free(a->cells[i].bins);
    free(a->cells);
    keys_free(&a->keys);
}

/* ------------------------------------------------------------ the read -- */

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

/* The bucket of |ns| in |q|. */
static int64_t bucket_of(const pc_stats_query *q, int64_t ns)
{
    return q->interval_ns > 0 ? ns - ns % q->interval_ns : q->start_ns;
}

/* The first span of each group of the trace being read: group → smallest start. */
typedef struct firsts {
    keys keys;
    int64_t *start;
    size_t cap;
} firsts;

static void first_seen(firsts *f, const char *g, size_t n, int64_t start)
{
    bool added;
    size_t i = keys_find(&f->keys, 0, g, n, &added);
    if (i >= f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->start = pc_xrealloc(f->start, f->cap * sizeof(*f->start));
    }
    if (added || start < f->start[i]) f->start[i] = start;
}

/* Counts the trace just read in the bucket of each of its groups' first span
 * that lies in the window, and forgets it. */
static void trace_done(firsts *f, stats_acc *a, const pc_stats_query *q)
{
    for (size_t i = 0; i < f->keys.used; i++) {
        int64_t s = f->start[i];
        if (s < q->start_ns || s >= q->end_ns) continue;
        acc_cell(a, bucket_of(q, s), f->keys.s[i], f->keys.n[i])->row.traces++;
    }
    keys_clear(&f->keys);
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
    pc_buf_puts(&sql, "SELECT t.tid, s.start_ns, ");
    pc_buf_puts(&sql, group_col(qs->group_by));
    pc_buf_puts(&sql,
                ", s.status = 'error', s.input_tokens, s.output_tokens, s.cost_usd,"
                " s.span_type IN ('llm', 'embedding') AND s.llm_model != ''"
                " AND s.cost_usd IS NULL,"
                " CASE WHEN s.end_ns > 0 THEN s.end_ns - s.start_ns END"
                " FROM traces t INDEXED BY ");
    /* CROSS JOIN: the traces first, then their spans (spans has no time
     * index), so the rows of one trace come together */
    pc_buf_puts(&sql, starting < ending ? "traces_started" : "traces_completed");
    pc_buf_puts(&sql, " CROSS JOIN spans s ON s.tid = t.tid"
                      " WHERE t.completed_ns >= ?1 AND t.started_ns < ?2");
    if (qs->project_id) pc_buf_puts(&sql, " AND t.project_id = ?3");

    int rc = sqlite3_prepare_v2(q.db, sql.data, -1, &q.st, NULL);
    pc_buf_free(&sql);
    if (rc != SQLITE_OK) return pc_local_query_close(&q, rc);
    sqlite3_bind_int64(q.st, 1, qs->start_ns);
    sqlite3_bind_int64(q.st, 2, qs->end_ns);
    if (qs->project_id) sqlite3_bind_text(q.st, 3, qs->project_id, -1, SQLITE_TRANSIENT);

    stats_acc acc = {0};
    firsts f = {0};
    int64_t tid = 0;
    bool any = false;
    while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
        int64_t t = sqlite3_column_int64(q.st, 0), start = sqlite3_column_int64(q.st, 1);
        const char *g = (const char *)sqlite3_column_text(q.st, 2);
        size_t gn = (size_t)sqlite3_column_bytes(q.st, 2);
        if (!g) g = "";
        if (any && t != tid) trace_done(&f, &acc, qs);
        tid = t;
        any = true;
        first_seen(&f, g, gn, start);
        if (start < qs->start_ns || start >= qs->end_ns) continue;
        cell *c = acc_cell(&acc, bucket_of(qs, start), g, gn);
        c->row.spans++;
        c->row.errors += sqlite3_column_int(q.st, 3);
        int64_t in = sqlite3_column_int64(q.st, 4), out = sqlite3_column_int64(q.st, 5);
        if (in > 0) c->row.input_tokens = pc_tokens_add(c->row.input_tokens, in);
        if (out > 0) c->row.output_tokens = pc_tokens_add(c->row.output_tokens, out);
        if (sqlite3_column_type(q.st, 6) != SQLITE_NULL) {
            c->row.cost_usd += sqlite3_column_double(q.st, 6);
            c->has_cost = true;
        }
        c->row.unpriced += sqlite3_column_int(q.st, 7);
        if (sqlite3_column_type(q.st, 8) != SQLITE_NULL)
            cell_bin(c, pc_histo_bin(sqlite3_column_int64(q.st, 8)), 1);
    }
    if (any) trace_done(&f, &acc, qs);
    if (rc == SQLITE_DONE) acc_emit(&acc, qs->max_rows, cb, ud);
    keys_free(&f.keys);
    free(f.start);
    acc_free(&acc);
    return pc_local_query_close(&q, rc);
}
