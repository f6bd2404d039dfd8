/*
 * local_stats.c - the embedded store's aggregates (store.h, GET /api/v1/stats
 * and /api/v1/models) over the schema of local_schema.c, from the spans and
 * from the hour rollups (stats_rollup), and the building of those rollups.
 *
 * Where it sits: the query receiver calls pc_local_stats through
 * pc_local_store_ops (local_store.c) on a pooled read connection
 * (local_query.h), concurrently with the writer (WAL); the writer thread
 * calls pc_local_stats_build (local_rollup.c decides when).
 *
 * Reading spans (gather): the traces that can hold a span starting in a
 * range [lo, hi) or a first span of a group there (started_ns < hi: a trace
 * starts with its first span; completed_ns >= lo: it ends at or after its
 * last span's start), through traces_completed or traces_started, whichever
 * bounds fewer traces (probed), and every span of those traces, trace by
 * trace. Spans are unique in the store (INSERT OR IGNORE on (tid, span_id)),
 * so each counts once. The figures are gathered here in C, per (bucket,
 * group) in a hash table (keys a client chooses: pc_hash):
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
 * built (local_schema.c has the invariants). A read whose buckets are whole
 * hours (interval 0 or a multiple of 1 h) and whose group is one of those
 * takes every built hour of its window from stats_rollup and gathers the
 * rest (the partial hours at its ends, the hours written since they were
 * built) from the spans; session and user groups, and other intervals,
 * gather everything. All of one read sees one snapshot (a read
 * transaction). The answers are the same either way, which the tests check
 * (tests/unit/exporters/test_local_stats.c).
 */
#include "local_stats.h"

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
    uint64_t *bins; /* (bin << 32 | count) of ended spans, in arrival order until compacted */
    size_t n_bins, cap_bins;
    bool has_cost;
} cell;

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

/*
 * Every (bucket, group) of one read: key (bucket_ns, group) → cells[i].
 * Bounded: an answer shows its first |limit| cells in list order, so once
 * twice that many are held the ones after the limit-th are dropped, and
 * later keys past it (|cut|, |top|) are never held again; the cells' bins
 * are compacted into one entry per bin. So a read holds at most 2 * limit
 * cells of at most PC_HISTO_BINS entries each, however many spans and
 * groups it meets. limit 0: every cell (an hour's build).
 */
typedef struct stats_acc {
    keys keys;
    cell *cells;
    size_t cap;
    size_t limit;
    bool cut;    /* |top| is set */
    ordered top; /* the last key kept at the last cut (its group in |top_group|) */
    char *top_group;
} stats_acc;

/* Keeps the first a->limit cells in list order, frees the rest. */
static void acc_prune(stats_acc *a)
{
    size_t n = a->keys.used;
    ordered *order = pc_xmalloc(n * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = (ordered){a->keys.k[i], a->keys.s[i], a->keys.n[i], i};
    qsort(order, n, sizeof(*order), by_bucket_group);
    keys kept = {0};
    cell *cells = pc_xmalloc(a->limit * sizeof(*cells));
    for (size_t r = 0; r < n; r++) {
        cell *c = &a->cells[order[r].i];
        if (r >= a->limit) {
            free(c->bins);
            continue;
        }
        bool added;
        size_t j = keys_find(&kept, order[r].bucket, order[r].group, order[r].n, &added);
        cells[j] = *c;
    }
    const ordered *last = &order[a->limit - 1];
    free(a->top_group);
    a->top_group = pc_xmalloc(last->n + 1);
    memcpy(a->top_group, last->group, last->n + 1);
    a->top = (ordered){last->bucket, a->top_group, last->n, 0};
    a->cut = true;
    free(order);
    keys_free(&a->keys);
    free(a->cells);
    a->keys = kept;
    a->cells = cells;
    a->cap = a->limit;
}

/* The cell of (|bucket|, |g|: |n| bytes), added when new; NULL when it lies
 * past the cut (it cannot be in the answer). */
static cell *acc_cell(stats_acc *a, int64_t bucket, const char *g, size_t n)
{
    if (a->cut) {
        ordered k = {bucket, g, n, 0};
        if (by_bucket_group(&k, &a->top) > 0) return NULL;
    }
    bool added;
    size_t i = keys_find(&a->keys, bucket, g, n, &added);
    if (added) {
        if (i >= a->cap) {
            a->cap = a->cap ? 2 * a->cap : 16;
            a->cells = pc_xrealloc(a->cells, a->cap * sizeof(*a->cells));
        }
        a->cells[i] = (cell){.row = {.bucket_ns = bucket}};
        if (a->limit && a->keys.used > 2 * a->limit) {
            acc_prune(a);
            return acc_cell(a, bucket, g, n);
        }
    }
    return &a->cells[i];
}

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts |c|'s bins and sums the entries of each bin (a sum past 32 bits
 * takes more than one entry). */
static void compact_bins(cell *c)
{
    if (c->n_bins > 1) qsort(c->bins, c->n_bins, sizeof(*c->bins), by_u64);
    size_t w = 0;
    for (size_t i = 0; i < c->n_bins; i++) {
        uint64_t bin = c->bins[i] >> 32, count = c->bins[i] & 0xffffffffu;
        if (w > 0 && c->bins[w - 1] >> 32 == bin &&
            (c->bins[w - 1] & 0xffffffffu) + count <= 0xffffffffu)
            c->bins[w - 1] += count;
        else
            c->bins[w++] = c->bins[i];
    }
    c->n_bins = w;
}

#define BINS_COMPACT 4096 /* entries of a cell before its bins are summed per bin */

static void cell_bin(cell *c, int bin, uint32_t count)
{
    if (c->n_bins == c->cap_bins && c->cap_bins >= BINS_COMPACT) compact_bins(c);
    if (c->n_bins == c->cap_bins) {
        c->cap_bins = c->cap_bins ? 2 * c->cap_bins : 64;
        c->bins = pc_xrealloc(c->bins, c->cap_bins * sizeof(*c->bins));
    }
    c->bins[c->n_bins++] = (uint64_t)bin << 32 | count;
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
        compact_bins(c);
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
    free(a->top_group);
    keys_free(&a->keys);
}

/* ------------------------------------------------------------ gathering -- */

#define HOUR_NS 3600000000000LL

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
#define KINDS 4
static const char *const kind_cols[KINDS] = {"''", "s.llm_model", "s.service_name", "s.span_type"};

/* The kind a group reads from stats_rollup, or -1 (gathered from spans only). */
static int kind_of(pc_stats_group g)
{
    switch (g) {
    case PC_GROUP_NONE:
    case PC_GROUP_PROJECT: return 0;
    case PC_GROUP_MODEL: return 1;
    case PC_GROUP_SERVICE: return 2;
    case PC_GROUP_SPAN_TYPE: return 3;
    default: return -1;
    }
}

/*
 * The index that bounds a range's traces best: traces_completed (completed_ns
 * >= lo: the traces ending in or after the range) unless traces_started
 * (started_ns < hi) holds fewer, as for an old range of a store that goes
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
    stats_acc *acc;
} gather;

static int64_t bucket_of(const gather *g, int64_t ns)
{
    return g->interval_ns > 0 ? ns - ns % g->interval_ns : g->bucket0;
}

/* The first span of each (kind, group) of the trace being read: its smallest start. */
typedef struct firsts {
    keys keys;
    int64_t *start;
    size_t cap;
} firsts;

static void first_seen(firsts *f, int kind, const char *g, size_t n, int64_t start)
{
    bool added;
    size_t i = keys_find(&f->keys, kind, g, n, &added);
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
        cell *c = acc_cell(&g->acc[f->keys.k[i]], bucket_of(g, s), f->keys.s[i], f->keys.n[i]);
        if (c) c->row.traces++;
    }
    keys_clear(&f->keys);
}

/* Adds the span figures of the row at column |c| of |st| to |c|ell. */
static void add_span(cell *c, sqlite3_stmt *st, int col)
{
    if (!c) return; /* past the answer's cut */
    c->row.spans++;
    c->row.errors += sqlite3_column_int(st, col);
    int64_t in = sqlite3_column_int64(st, col + 1), out = sqlite3_column_int64(st, col + 2);
    if (in > 0) c->row.input_tokens = pc_tokens_add(c->row.input_tokens, in);
    if (out > 0) c->row.output_tokens = pc_tokens_add(c->row.output_tokens, out);
    if (sqlite3_column_type(st, col + 3) != SQLITE_NULL) {
        c->row.cost_usd += sqlite3_column_double(st, col + 3);
        c->has_cost = true;
    }
    c->row.unpriced += sqlite3_column_int(st, col + 4);
    if (sqlite3_column_type(st, col + 5) != SQLITE_NULL)
        cell_bin(c, pc_histo_bin(sqlite3_column_int64(st, col + 5)), 1);
}

/* Gathers |g| from the spans. The SQLite code of the last step (SQLITE_DONE
 * when complete). */
static int gather_spans(const gather *g)
{
    int64_t ending = probe(g->db,
                           "SELECT count(*) FROM (SELECT 1 FROM traces INDEXED BY traces_completed"
                           " WHERE completed_ns >= ?1 LIMIT " STR(STATS_PROBE) " + 1)",
                           g->lo);
    int64_t starting = probe(g->db,
                             "SELECT count(*) FROM (SELECT 1 FROM traces INDEXED BY traces_started"
                             " WHERE started_ns < ?1 LIMIT " STR(STATS_PROBE) " + 1)",
                             g->hi);
    if (ending < 0 || starting < 0) return SQLITE_ERROR;
    pc_buf sql = PC_BUF_INIT;
    pc_buf_puts(&sql, "SELECT t.tid, s.start_ns, ");
    int ngroups = g->build ? KINDS : 1;
    if (g->build) {
        pc_buf_puts(&sql, "t.project_id");
        for (int k = 1; k < KINDS; k++)
            pc_buf_printf(&sql, ", %s", kind_cols[k]);
    } else {
        pc_buf_puts(&sql, group_col(g->group_by));
    }
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
    if (g->project_id) pc_buf_puts(&sql, " AND t.project_id = ?3");
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(g->db, sql.data, -1, &st, NULL);
    pc_buf_free(&sql);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, g->lo);
    sqlite3_bind_int64(st, 2, g->hi);
    if (g->project_id) sqlite3_bind_text(st, 3, g->project_id, -1, SQLITE_TRANSIENT);

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
        for (int k = 0; k < ngroups; k++) {
            /* build: "project\0value" (kind 0: "project\0"); API: the value */
            pc_buf_reset(&key);
            if (g->build) {
                pc_buf_append(&key, sqlite3_column_text(st, 2), (size_t)sqlite3_column_bytes(st, 2));
                pc_buf_putc(&key, '\0');
            }
            int c = g->build ? (k ? 2 + k : -1) : 2;
            if (c >= 0) {
                const unsigned char *v = sqlite3_column_text(st, c);
                if (v) pc_buf_append(&key, v, (size_t)sqlite3_column_bytes(st, c));
            }
            const char *kd = key.data ? key.data : "";
            first_seen(&f, k, kd, key.len, start);
            if (in) add_span(acc_cell(&g->acc[k], bucket_of(g, start), kd, key.len), st, figures);
        }
    }
    if (any) trace_done(&f, g);
    sqlite3_finalize(st);
    keys_free(&f.keys);
    free(f.start);
    pc_buf_free(&key);
    return rc;
}

/* ------------------------------------------------------------- rollups -- */

/* A rollup's bins: (bin delta, count) pairs as varints, bins ascending. */
static void put_varint(pc_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        pc_buf_putc(b, (char)(v | 0x80));
        v >>= 7;
    }
    pc_buf_putc(b, (char)v);
}

static bool get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return true;
    }
    return false;
}

/* |c|'s bins, summed per bin, into |out|. */
static void encode_bins(cell *c, pc_buf *out)
{
    compact_bins(c);
    uint64_t last = 0, count = 0;
    int64_t bin = -1;
    for (size_t i = 0; i <= c->n_bins; i++) {
        int64_t b = i < c->n_bins ? (int64_t)(c->bins[i] >> 32) : -2;
        if (b != bin && bin >= 0) {
            put_varint(out, (uint64_t)bin - last);
            put_varint(out, count);
            last = (uint64_t)bin;
            count = 0;
        }
        bin = b;
        if (i < c->n_bins) count += c->bins[i] & 0xffffffffu;
    }
}

/* Adds the bins of a stored rollup to |c|; false when the blob is corrupt. */
static bool decode_bins(cell *c, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    uint64_t bin = 0, delta, count;
    while (p < end) {
        if (!get_varint(&p, end, &delta) || !get_varint(&p, end, &count)) return false;
        bin += delta;
        if (bin >= PC_HISTO_BINS || count > 0xffffffffu) return false;
        cell_bin(c, (int)bin, (uint32_t)count);
    }
    return true;
}

/* The stored rollups of kind |kind| for the built hours in [h0, h1) (hour
 * numbers), added to the API cells of |g|. SQLite code (SQLITE_DONE). */
static int read_rollups(const gather *g, int kind, int64_t h0, int64_t h1)
{
    sqlite3_stmt *st = NULL;
    const char *sql =
        "SELECT r.hour, r.project_id, r.grp, r.spans, r.traces, r.errors, r.input_tokens,"
        " r.output_tokens, r.cost, r.unpriced, r.bins FROM stats_rollup r"
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
        const char *v = g->group_by == PC_GROUP_NONE ? "" : (const char *)sqlite3_column_text(st, col);
        size_t vn = g->group_by == PC_GROUP_NONE ? 0 : (size_t)sqlite3_column_bytes(st, col);
        cell *c = acc_cell(g->acc, bucket_of(g, sqlite3_column_int64(st, 0) * HOUR_NS), v ? v : "",
                           vn);
        if (!c) continue; /* past the answer's cut */
        c->row.spans += sqlite3_column_int64(st, 3);
        c->row.traces += sqlite3_column_int64(st, 4);
        c->row.errors += sqlite3_column_int64(st, 5);
        c->row.input_tokens = pc_tokens_add(c->row.input_tokens, sqlite3_column_int64(st, 6));
        c->row.output_tokens = pc_tokens_add(c->row.output_tokens, sqlite3_column_int64(st, 7));
        if (sqlite3_column_type(st, 8) != SQLITE_NULL) {
            c->row.cost_usd += sqlite3_column_double(st, 8);
            c->has_cost = true;
        }
        c->row.unpriced += sqlite3_column_int64(st, 9);
        if (!decode_bins(c, sqlite3_column_blob(st, 10), (size_t)sqlite3_column_bytes(st, 10))) {
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
 * The API read |g| (whole-hour buckets, a rolled-up group): the partial
 * hours at both ends and the runs of dirty hours from the spans, the built
 * hours from stats_rollup. SQLite code (SQLITE_DONE).
 */
static int gather_with_rollups(const gather *g, int kind)
{
    int64_t h0 = g->lo / HOUR_NS + (g->lo % HOUR_NS != 0); /* first whole hour */
    int64_t h1 = g->hi / HOUR_NS;                           /* end of the last */
    if (h0 >= h1) return gather_range(*g, g->lo, g->hi);
    int rc = gather_range(*g, g->lo, h0 * HOUR_NS);
    if (rc == SQLITE_DONE) rc = gather_range(*g, h1 * HOUR_NS, g->hi);
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

int pc_local_stats(void *ctx, const pc_stats_query *qs, pc_stats_cb cb, void *ud)
{
    pc_local_query q;
    if (pc_local_query_open(&q, ctx, "BEGIN", "stats") < 0) return -1;
    int rc = sqlite3_step(q.st); /* one snapshot for every read below */
    if (rc != SQLITE_DONE) return pc_local_query_close(&q, rc);
    stats_acc acc = {.limit = qs->max_rows > 0 ? (size_t)qs->max_rows : 1};
    gather g = {.db = q.db,
                .lo = qs->start_ns,
                .hi = qs->end_ns,
                .interval_ns = qs->interval_ns,
                .bucket0 = qs->start_ns,
                .project_id = qs->project_id,
                .group_by = qs->group_by,
                .acc = &acc};
    int kind = kind_of(qs->group_by);
    if (kind >= 0 && qs->interval_ns % HOUR_NS == 0)
        rc = gather_with_rollups(&g, kind);
    else
        rc = gather_spans(&g);
    if (rc == SQLITE_DONE) acc_emit(&acc, qs->max_rows, cb, ud);
    acc_free(&acc);
    if (rc == SQLITE_CORRUPT) q.what = "stats: a stored rollup's bins do not decode";
    /* a read: ends the snapshot (with the deadline off, so it always can) */
    sqlite3_progress_handler(q.db, 0, NULL, NULL);
    sqlite3_exec(q.db, "ROLLBACK", NULL, NULL, NULL);
    return pc_local_query_close(&q, rc);
}

int pc_local_stats_spans(void *ctx, const pc_stats_query *qs, pc_stats_cb cb, void *ud)
{
    pc_local_query q;
    if (pc_local_query_open(&q, ctx, "SELECT 1", "stats") < 0) return -1;
    stats_acc acc = {.limit = qs->max_rows > 0 ? (size_t)qs->max_rows : 1};
    gather g = {.db = q.db,
                .lo = qs->start_ns,
                .hi = qs->end_ns,
                .interval_ns = qs->interval_ns,
                .bucket0 = qs->start_ns,
                .project_id = qs->project_id,
                .group_by = qs->group_by,
                .acc = &acc};
    int rc = gather_spans(&g);
    if (rc == SQLITE_DONE) acc_emit(&acc, qs->max_rows, cb, ud);
    acc_free(&acc);
    return pc_local_query_close(&q, rc);
}

/* ------------------------------------------------------------ building -- */

/* Splits a build key "project\0value" (|n| bytes) into its parts. */
static void split_key(const char *k, size_t n, const char **value, size_t *vn, size_t *pn)
{
    *pn = strnlen(k, n);
    *value = k + *pn + 1;
    *vn = n - *pn - 1;
}

int pc_local_stats_build(sqlite3 *db, int64_t hour, int64_t *spans)
{
    stats_acc acc[KINDS];
    memset(acc, 0, sizeof(acc));
    gather g = {.db = db,
                .lo = hour * HOUR_NS,
                .hi = (hour + 1) * HOUR_NS,
                .interval_ns = HOUR_NS,
                .build = true,
                .acc = acc};
    int rc = gather_spans(&g);
    sqlite3_stmt *del = NULL, *ins = NULL;
    if (rc == SQLITE_DONE)
        rc = sqlite3_prepare_v2(db, "DELETE FROM stats_rollup WHERE kind IN (0, 1, 2, 3) AND hour = ?1",
                                -1, &del, NULL);
    if (rc == SQLITE_OK || rc == SQLITE_DONE)
        rc = sqlite3_prepare_v2(db,
                                "INSERT INTO stats_rollup (kind, hour, project_id, grp, spans,"
                                " traces, errors, input_tokens, output_tokens, cost, unpriced, bins)"
                                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                                -1, &ins, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(del, 1, hour);
        rc = sqlite3_step(del);
    }
    pc_buf bins = PC_BUF_INIT;
    *spans = 0;
    for (int k = 0; k < KINDS && rc == SQLITE_DONE; k++) {
        for (size_t i = 0; i < acc[k].keys.used && rc == SQLITE_DONE; i++) {
            cell *c = &acc[k].cells[i];
            const char *v;
            size_t vn, pn;
            split_key(acc[k].keys.s[i], acc[k].keys.n[i], &v, &vn, &pn);
            if (k == 0) *spans += c->row.spans;
            pc_buf_reset(&bins);
            encode_bins(c, &bins);
            sqlite3_reset(ins);
            sqlite3_bind_int(ins, 1, k);
            sqlite3_bind_int64(ins, 2, hour);
            sqlite3_bind_text(ins, 3, acc[k].keys.s[i], (int)pn, SQLITE_STATIC);
            sqlite3_bind_text(ins, 4, v, (int)vn, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 5, c->row.spans);
            sqlite3_bind_int64(ins, 6, c->row.traces);
            sqlite3_bind_int64(ins, 7, c->row.errors);
            sqlite3_bind_int64(ins, 8, c->row.input_tokens);
            sqlite3_bind_int64(ins, 9, c->row.output_tokens);
            if (c->has_cost)
                sqlite3_bind_double(ins, 10, c->row.cost_usd);
            else
                sqlite3_bind_null(ins, 10);
            sqlite3_bind_int64(ins, 11, c->row.unpriced);
            sqlite3_bind_blob(ins, 12, bins.data ? bins.data : "", (int)bins.len, SQLITE_STATIC);
            rc = sqlite3_step(ins);
        }
    }
    pc_buf_free(&bins);
    sqlite3_finalize(del);
    sqlite3_finalize(ins);
    for (int k = 0; k < KINDS; k++)
        acc_free(&acc[k]);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}
