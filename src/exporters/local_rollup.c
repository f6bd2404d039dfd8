/*
 * local_rollup.c - the embedded store's stats rollups kept by its writes,
 * and building an hour from its spans (see local_rollup.h; the tables'
 * contract is local_schema.c's).
 */
#include "local_rollup.h"

#include "local_stats.h"
#include "local_store.h"
#include "histo.h"
#include "log.h"
#include "mem.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOUR_NS PC_ROLLUP_HOUR_NS
#define KINDS PC_ROLLUP_KINDS

/* ------------------------------------------------------------- deltas -- */

static const char STORED[] =
    "SELECT start_ns, llm_model, service_name, span_type FROM spans WHERE tid = ?1";
static const char HOUR_GET[] = "SELECT built FROM stats_hours WHERE hour = ?1";
static const char HOUR_NEW[] = "INSERT INTO stats_hours (hour, built, dirty_ns) VALUES (?1, 1, ?2)";
static const char TOUCH[] =
    "INSERT INTO stats_hours (hour, built, dirty_ns) VALUES (?1, 0, ?2)"
    " ON CONFLICT (hour) DO UPDATE SET built = 0, dirty_ns = excluded.dirty_ns";
static const char HOUR_LEFT[] = "SELECT 1 FROM stats_rollup WHERE kind = 0 AND hour = ?1 LIMIT 1";
static const char HOUR_DROP[] = "DELETE FROM stats_hours WHERE hour = ?1";
static const char ROW_GET[] = "SELECT " PC_ROLLUP_FIGURES " FROM stats_rollup"
                              " WHERE kind = ?1 AND hour = ?2 AND project_id = ?3 AND grp = ?4";
static const char ROW_PUT[] =
    "INSERT OR REPLACE INTO stats_rollup (kind, hour, project_id, grp, " PC_ROLLUP_FIGURES ")"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
static const char ROW_DEL[] = "DELETE FROM stats_rollup"
                              " WHERE kind = ?1 AND hour = ?2 AND project_id = ?3 AND grp = ?4";

int pc_local_rollup_init(pc_local_rollup *r, const char *id, sqlite3 *db, const char *expired_sql,
                         int64_t live_ns)
{
    memset(r, 0, sizeof(*r));
    r->db = db;
    r->id = id;
    r->live_ns = live_ns;
    pc_buf expired = PC_BUF_INIT;
    pc_local_stats_traces_sql(&expired);
    pc_buf_printf(&expired, " WHERE t.tid IN (%s)", expired_sql);
    int rc = pc_local_prepare(id, db, STORED, &r->stored) < 0 ||
                     pc_local_prepare(id, db, expired.data, &r->expired) < 0 ||
                     pc_local_prepare(id, db, HOUR_GET, &r->hour_get) < 0 ||
                     pc_local_prepare(id, db, HOUR_NEW, &r->hour_new) < 0 ||
                     pc_local_prepare(id, db, TOUCH, &r->touch) < 0 ||
                     pc_local_prepare(id, db, HOUR_LEFT, &r->hour_left) < 0 ||
                     pc_local_prepare(id, db, HOUR_DROP, &r->hour_drop) < 0 ||
                     pc_local_prepare(id, db, ROW_GET, &r->row_get) < 0 ||
                     pc_local_prepare(id, db, ROW_PUT, &r->row_put) < 0 ||
                     pc_local_prepare(id, db, ROW_DEL, &r->row_del) < 0
                 ? -1
                 : 0;
    pc_buf_free(&expired);
    return rc;
}

void pc_local_rollup_reset(pc_local_rollup *r)
{
    for (int k = 0; k < KINDS; k++) {
        pc_cells_free(&r->acc[k]);
        r->acc[k] = (pc_cells){.limit = 0}; /* every cell */
    }
    pc_keys_clear(&r->groups);
    for (int k = 0; k < KINDS; k++)
        r->last[k].valid = false;
}

void pc_local_rollup_fini(pc_local_rollup *r)
{
    sqlite3_stmt **st[] = {&r->stored,    &r->expired,   &r->hour_get, &r->hour_new,
                           &r->touch,     &r->hour_left, &r->hour_drop, &r->row_get,
                           &r->row_put,   &r->row_del};
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
        sqlite3_finalize(*st[i]);
        *st[i] = NULL;
    }
    pc_local_rollup_reset(r);
    pc_local_rollup_forget(r);
    pc_keys_free(&r->groups);
    free(r->old_first);
    free(r->new_first);
    r->old_first = r->new_first = NULL;
    r->groups_cap = 0;
    pc_buf_free(&r->key);
    pc_buf_free(&r->bins);
}

/* The key "project\0|v|" (|n| bytes) in r->key. */
static void set_key(pc_local_rollup *r, const void *v, size_t n)
{
    r->key.len = r->project_len + 1;
    if (n) pc_buf_append(&r->key, v, n);
}

/* Group (|kind|, r->key) of the trace being written starts at |start|, in
 * its stored spans (|stored|) or its new ones; its number. */
static size_t group_at(pc_local_rollup *r, int kind, int64_t start, bool stored)
{
    bool added;
    size_t i = pc_keys_find(&r->groups, kind, r->key.data, r->key.len, &added);
    if (i >= r->groups_cap) {
        r->groups_cap = r->groups_cap ? 2 * r->groups_cap : 16;
        r->old_first = pc_xrealloc(r->old_first, r->groups_cap * sizeof(*r->old_first));
        r->new_first = pc_xrealloc(r->new_first, r->groups_cap * sizeof(*r->new_first));
    }
    if (added) r->old_first[i] = r->new_first[i] = INT64_MAX;
    int64_t *f = stored ? &r->old_first[i] : &r->new_first[i];
    if (start < *f) *f = start;
    return i;
}

/* The slots of |tid|'s set in r->known. */
static pc_local_known *known_set(pc_local_rollup *r, int64_t tid)
{
    uint64_t h = (uint64_t)tid * 0x9E3779B97F4A7C15ULL;
    size_t sets = PC_ROLLUP_KNOWN / PC_ROLLUP_KNOWN_WAYS;
    return &r->known[(size_t)(h >> 32) % sets * PC_ROLLUP_KNOWN_WAYS];
}

static pc_local_known *known_find(pc_local_rollup *r, int64_t tid)
{
    pc_local_known *set = known_set(r, tid);
    for (int i = 0; i < PC_ROLLUP_KNOWN_WAYS; i++)
        if (set[i].tid == tid) return &set[i];
    return NULL;
}

/* Empties slot |k|. */
static void known_drop(pc_local_rollup *r, pc_local_known *k)
{
    r->known_bytes -= k->groups.len;
    k->tid = 0;
    pc_buf_free(&k->groups);
}

void pc_local_rollup_forget(pc_local_rollup *r)
{
    for (size_t i = 0; i < PC_ROLLUP_KNOWN; i++)
        known_drop(r, &r->known[i]);
}

/* The trace being written has all its groups in r->groups (trace_end):
 * keeps them when it is big enough (above), dropping what it knew. */
static void known_keep(pc_local_rollup *r)
{
    pc_local_known *k = known_find(r, r->tid);
    if (r->spans < PC_ROLLUP_KNOWN_SPANS && !k) return;
    pc_keys *g = &r->groups;
    size_t bytes = 0;
    for (size_t i = 0; i < g->used; i++)
        bytes += PC_ROLLUP_KNOWN_HEAD + g->n[i];
    if (bytes > PC_ROLLUP_KNOWN_BYTES) {
        if (k) known_drop(r, k);
        return;
    }
    if (!k) { /* an empty slot of its set, or the least recently used */
        pc_local_known *set = known_set(r, r->tid);
        k = &set[0];
        for (int i = 0; i < PC_ROLLUP_KNOWN_WAYS && k->tid; i++)
            if (!set[i].tid || set[i].used < k->used) k = &set[i];
    }
    known_drop(r, k);
    while (r->known_bytes + bytes > PC_ROLLUP_KNOWN_BYTES) { /* the least recently used go */
        pc_local_known *lru = NULL;
        for (size_t i = 0; i < PC_ROLLUP_KNOWN; i++)
            if (r->known[i].tid && (!lru || r->known[i].used < lru->used)) lru = &r->known[i];
        known_drop(r, lru);
    }
    *k = (pc_local_known){.tid = r->tid, .spans = r->spans, .used = ++r->tick};
    for (size_t i = 0; i < g->used; i++) {
        int64_t first = r->old_first[i] < r->new_first[i] ? r->old_first[i] : r->new_first[i];
        uint32_t n = (uint32_t)g->n[i];
        char kind = (char)g->k[i];
        pc_buf_putc(&k->groups, kind);
        pc_buf_append(&k->groups, &first, sizeof(first));
        pc_buf_append(&k->groups, &n, sizeof(n));
        pc_buf_append(&k->groups, g->s[i], n);
    }
    r->known_bytes += k->groups.len;
}

/* The groups of a known trace |k| into r->groups, as stored. */
static void known_load(pc_local_rollup *r, pc_local_known *k)
{
    k->used = ++r->tick;
    r->spans = k->spans;
    for (size_t at = 0; at < k->groups.len;) {
        const char *p = k->groups.data + at;
        int64_t first;
        uint32_t n;
        memcpy(&first, p + 1, sizeof(first));
        memcpy(&n, p + 9, sizeof(n));
        pc_buf_reset(&r->key);
        pc_buf_append(&r->key, p + PC_ROLLUP_KNOWN_HEAD, n);
        group_at(r, (unsigned char)p[0], first, true);
        at += PC_ROLLUP_KNOWN_HEAD + n;
    }
}

int pc_local_rollup_trace(pc_local_rollup *r, pc_str project, int64_t tid, bool stored)
{
    pc_keys_clear(&r->groups);
    for (int k = 0; k < KINDS; k++)
        r->last[k].valid = false;
    r->tid = tid;
    r->spans = 0;
    pc_local_known *known = stored ? known_find(r, tid) : NULL;
    if (known) known_load(r, known);
    pc_buf_reset(&r->key);
    if (project.n) pc_buf_append(&r->key, project.p, project.n);
    pc_buf_putc(&r->key, '\0');
    r->project_len = project.n;
    if (!stored || known) return SQLITE_OK;
    int rc;
    sqlite3_bind_int64(r->stored, 1, tid);
    while ((rc = sqlite3_step(r->stored)) == SQLITE_ROW) {
        int64_t start = sqlite3_column_int64(r->stored, 0);
        r->spans++;
        set_key(r, NULL, 0);
        group_at(r, 0, start, true);
        for (int k = 1; k < KINDS; k++) {
            set_key(r, sqlite3_column_text(r->stored, k),
                    (size_t)sqlite3_column_bytes(r->stored, k));
            group_at(r, k, start, true);
        }
    }
    sqlite3_reset(r->stored);
    __atomic_store_n(&r->scanned, r->scanned + r->spans, __ATOMIC_RELAXED);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The first ns of the hour of |ns| (SQL's start_ns / 1 h, times 1 h). */
static int64_t hour_start(int64_t ns)
{
    return ns - ns % HOUR_NS;
}

/* end - start as SQLite computes it into an integer column read (saturated). */
static int64_t span_duration(int64_t start, int64_t end)
{
    int64_t d;
    if (!__builtin_sub_overflow(end, start, &d)) return d;
    return end > start ? INT64_MAX : INT64_MIN;
}

void pc_local_rollup_span(pc_local_rollup *r, const pc_span *s)
{
    bool llm = s->span_type == PC_TYPE_LLM || s->span_type == PC_TYPE_EMBEDDING;
    pc_local_fig f = {.error = s->status == PC_STATUS_ERROR,
                      .input_tokens = s->input_tokens,
                      .output_tokens = s->output_tokens,
                      .priced = !isnan(s->cost_usd),
                      .cost_usd = isnan(s->cost_usd) ? 0 : s->cost_usd,
                      .unpriced = llm && s->llm_model.n > 0 && isnan(s->cost_usd),
                      .ended = s->end_ns > 0,
                      .duration_ns = span_duration(s->start_ns, s->end_ns)};
    const char *type = pc_span_type_name(s->span_type);
    int64_t bucket = hour_start(s->start_ns);
    r->spans++;
    for (int k = 0; k < KINDS; k++) {
        pc_str v = k == 0   ? (pc_str){"", 0}
                   : k == 1 ? s->llm_model
                   : k == 2 ? s->service_name
                            : (pc_str){type, strlen(type)};
        pc_local_rollup_last *l = &r->last[k];
        if (l->valid && l->bucket == bucket && l->n == v.n && (!v.n || !memcmp(l->v, v.p, v.n))) {
            int64_t *first = &r->new_first[l->group];
            if (s->start_ns < *first) *first = s->start_ns;
        } else {
            set_key(r, v.p, v.n);
            size_t group = group_at(r, k, s->start_ns, false);
            pc_cell *c = pc_cells_get(&r->acc[k], bucket, r->key.data, r->key.len);
            *l = (pc_local_rollup_last){.valid = true, .v = v.p, .n = v.n, .bucket = bucket,
                                        .group = group, .cell = (size_t)(c - r->acc[k].cells)};
        }
        pc_local_fig_add(&r->acc[k].cells[l->cell], &f);
    }
}

void pc_local_rollup_trace_end(pc_local_rollup *r)
{
    pc_keys *g = &r->groups;
    for (size_t i = 0; i < g->used; i++) {
        int64_t was = r->old_first[i], now = r->new_first[i];
        if (now >= was) continue; /* the group began no later before */
        pc_cells *acc = &r->acc[g->k[i]];
        int64_t to = hour_start(now);
        if (was != INT64_MAX) {
            int64_t from = hour_start(was);
            if (from == to) continue;
            pc_cells_get(acc, from, g->s[i], g->n[i])->row.traces--;
        }
        pc_cells_get(acc, to, g->s[i], g->n[i])->row.traces++;
    }
    known_keep(r);
    pc_keys_clear(g);
}

/* Runs |st| with ?1 = |a|, ?2 = |b|, ?3 = |c| (those it names): SQLITE_ROW
 * (the first row's two columns in *|x|, *|y| when given), SQLITE_DONE, or an
 * error. Resets |st|. SQLite code. */
static int step_stmt(sqlite3_stmt *st, int64_t a, int64_t b, int64_t c, int64_t *x, int64_t *y)
{
    int n = sqlite3_bind_parameter_count(st);
    if (n >= 1) sqlite3_bind_int64(st, 1, a);
    if (n >= 2) sqlite3_bind_int64(st, 2, b);
    if (n >= 3) sqlite3_bind_int64(st, 3, c);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && x) *x = sqlite3_column_int64(st, 0);
    if (rc == SQLITE_ROW && y) *y = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    return rc;
}

/* Binds (kind, hour, project, group) of cell |i| of r->acc[|k|] to ?1..?4 of |st|. */
static void bind_key(pc_local_rollup *r, sqlite3_stmt *st, int k, size_t i)
{
    const pc_keys *keys = &r->acc[k].keys;
    size_t pn = strnlen(keys->s[i], keys->n[i]);
    sqlite3_bind_int(st, 1, k);
    sqlite3_bind_int64(st, 2, keys->k[i] / HOUR_NS);
    sqlite3_bind_text(st, 3, keys->s[i], (int)pn, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, keys->s[i] + pn + 1, (int)(keys->n[i] - pn - 1), SQLITE_STATIC);
}

/* Adds (|sign| 1) or takes (-1) cell |i| of r->acc[|k|] to or from its
 * stored row. SQLITE_OK; SQLITE_MISMATCH when the row does not take it (a
 * count would go below zero, a bin is missing, the bins do not decode): the
 * hour's rollups are not its spans' any more. */
static int apply_cell(pc_local_rollup *r, int sign, int k, size_t i)
{
    pc_cell *d = &r->acc[k].cells[i], cur = {.row.spans = 0};
    bind_key(r, r->row_get, k, i);
    int rc = sqlite3_step(r->row_get);
    bool fits = rc != SQLITE_ROW || pc_local_rollup_row_add(&cur, r->row_get, 0);
    sqlite3_reset(r->row_get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        free(cur.bins);
        return rc;
    }
    rc = SQLITE_OK;
    if (fits) {
        if (sign > 0) pc_cell_add(&cur, d);
        else fits = pc_cell_subtract(&cur, d);
        fits = fits && cur.row.traces >= 0 && (cur.row.spans > 0 || cur.row.traces == 0);
    }
    if (fits) {
        sqlite3_stmt *st = cur.row.spans > 0 ? r->row_put : r->row_del;
        bind_key(r, st, k, i);
        if (cur.row.spans > 0) pc_local_rollup_row_bind(st, 5, &cur, &r->bins);
        rc = pc_local_step(st);
    }
    free(cur.bins);
    return rc != SQLITE_OK ? rc : fits ? SQLITE_OK : SQLITE_MISMATCH;
}

/* The hours a flush looks at, each once, and what it does to them. */
typedef struct hour_plan {
    int64_t hour;
    enum { H_APPLY, H_MARK } what;
} hour_plan;

static int by_hour(const void *a, const void *b)
{
    int64_t x = ((const hour_plan *)a)->hour, y = ((const hour_plan *)b)->hour;
    return x < y ? -1 : x > y;
}

static hour_plan *plan_of(hour_plan *v, size_t n, int64_t hour)
{
    hour_plan key = {.hour = hour};
    return bsearch(&key, v, n, sizeof(*v), by_hour);
}

/* Adds (|sign| 1) or takes (-1) r->acc from the hours' rollups at |now_ns|
 * and forgets the deltas. SQLite code. */
static int apply(pc_local_rollup *r, int sign, int64_t now_ns)
{
    size_t n = 0, cap = 0;
    hour_plan *v = NULL;
    for (int k = 0; k < KINDS; k++)
        for (size_t i = 0; i < r->acc[k].keys.used; i++) {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                v = pc_xrealloc(v, cap * sizeof(*v));
            }
            v[n++] = (hour_plan){.hour = r->acc[k].keys.k[i] / HOUR_NS};
        }
    if (n > 1) qsort(v, n, sizeof(*v), by_hour);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || v[i].hour != v[u - 1].hour) v[u++] = v[i];
    n = u;
    int rc = SQLITE_OK;
    /* an hour with a row says whether it is built; one without holds no span
     * yet; a write marks the hours older than the live ones */
    int64_t live = r->live_ns > 0 ? (now_ns - r->live_ns) / HOUR_NS : INT64_MAX;
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        int64_t built = 0;
        if (sign > 0 && v[i].hour < live) {
            v[i].what = H_MARK;
            continue;
        }
        rc = step_stmt(r->hour_get, v[i].hour, 0, 0, &built, NULL);
        if (rc == SQLITE_DONE && sign > 0) {
            built = 1;
            rc = step_stmt(r->hour_new, v[i].hour, now_ns, 0, NULL, NULL);
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) break;
        rc = SQLITE_OK;
        v[i].what = built ? H_APPLY : H_MARK;
    }
    for (int k = 0; k < KINDS && rc == SQLITE_OK; k++)
        for (size_t i = 0; i < r->acc[k].keys.used && rc == SQLITE_OK; i++) {
            hour_plan *p = plan_of(v, n, r->acc[k].keys.k[i] / HOUR_NS);
            if (p->what != H_APPLY) continue;
            rc = apply_cell(r, sign, k, i);
            if (rc == SQLITE_MISMATCH) { /* left to the builder */
                pc_log(PC_LOG_WARN, r->id,
                       "stats rollups: hour %lld did not take a write's figures; it is built again "
                       "from its spans",
                       (long long)p->hour);
                p->what = H_MARK;
                rc = SQLITE_OK;
            }
        }
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        if (v[i].what == H_MARK) {
            rc = step_stmt(r->touch, v[i].hour, now_ns, 0, NULL, NULL);
        } else if (sign < 0) { /* an hour left without spans has no row */
            rc = step_stmt(r->hour_left, v[i].hour, 0, 0, NULL, NULL);
            if (rc == SQLITE_DONE) rc = step_stmt(r->hour_drop, v[i].hour, 0, 0, NULL, NULL);
        } else {
            continue;
        }
        rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    free(v);
    pc_local_rollup_reset(r);
    return rc;
}

int pc_local_rollup_flush(pc_local_rollup *r, int64_t now_ns)
{
    return apply(r, 1, now_ns);
}

int pc_local_rollup_purge(pc_local_rollup *r, int64_t cutoff_ns, int64_t now_ns)
{
    pc_local_rollup_reset(r);
    pc_local_rollup_forget(r);
    sqlite3_bind_int64(r->expired, 1, cutoff_ns);
    int rc = pc_local_stats_gather_traces(r->expired, r->acc);
    sqlite3_reset(r->expired);
    return rc == SQLITE_OK ? apply(r, -1, now_ns) : rc;
}

/* -------------------------------------------------------------- builds -- */

/* ?1 quiet bound: the newest hour due, and its mark (the build's change check). */
static const char NEXT[] = "SELECT hour, dirty_ns FROM stats_hours"
                           " WHERE built = 0 AND dirty_ns <= ?1 ORDER BY hour DESC LIMIT 1";
/* ?1 hour ?2 its mark when gathered: still unbuilt and not written since. */
static const char SAME[] =
    "SELECT 1 FROM stats_hours WHERE hour = ?1 AND built = 0 AND dirty_ns = ?2";
static const char BUILT[] = "UPDATE stats_hours SET built = 1 WHERE hour = ?1";
static const char DROP[] = "DELETE FROM stats_hours WHERE hour = ?1";
/* ?1 hour ?2 wall clock: not tried before then (a build past the limit); ?3
 * its mark when gathered (a write since makes it due as any written hour). */
static const char DEFER[] =
    "UPDATE stats_hours SET dirty_ns = ?2 WHERE hour = ?1 AND built = 0 AND dirty_ns = ?3";

static int run(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* step_stmt on |sql|, prepared for this one run. */
static int step_sql(sqlite3 *db, const char *sql, int64_t a, int64_t b, int64_t c, int64_t *x,
                    int64_t *y)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = step_stmt(st, a, b, c, x, y);
    sqlite3_finalize(st);
    return rc;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

typedef struct gather_limits {
    int64_t deadline; /* CLOCK_MONOTONIC ns */
    pc_local_reader *gate;
    bool yielded, late; /* why it interrupted the gather */
} gather_limits;

/* SQLite progress handler of a gather: non-zero (interrupt) past the
 * deadline, or when a restart holds reads back (the gather yields). */
static int gather_stop(void *ud)
{
    gather_limits *l = ud;
    if (l->gate && pc_local_reader_held(l->gate)) l->yielded = true;
    if (!l->yielded && mono_ns() > l->deadline) l->late = true;
    return l->yielded || l->late;
}

/* Ends the transaction of |db| if one is open. */
static void end_txn(sqlite3 *db, const char *how)
{
    if (!sqlite3_get_autocommit(db)) run(db, how);
}

/* The entry of |hour| in |s|, or -1. */
static long slow_find(const pc_local_slow *s, int64_t hour)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (s->hour[i] == hour) return (long)i;
    return -1;
}

/* |hour|'s build was abandoned (again): its next try gets twice the time. */
static void slow_add(pc_local_slow *s, int64_t hour)
{
    if (!s) return;
    long i = slow_find(s, hour);
    if (i < 0) {
        if (s->n == PC_ROLLUP_SLOW_HOURS) { /* the oldest entry goes */
            memmove(s->hour, s->hour + 1, (s->n - 1) * sizeof(*s->hour));
            memmove(s->tries, s->tries + 1, (s->n - 1) * sizeof(*s->tries));
            s->n--;
        }
        i = (long)s->n++;
        s->hour[i] = hour;
        s->tries[i] = 0;
    }
    if (s->tries[i] < PC_ROLLUP_GROW_MAX) s->tries[i]++;
}

/* |hour| was gathered: forgotten. */
static void slow_drop(pc_local_slow *s, int64_t hour)
{
    long i = slow_find(s, hour);
    if (i < 0) return;
    s->n--;
    memmove(s->hour + i, s->hour + i + 1, (s->n - (size_t)i) * sizeof(*s->hour));
    memmove(s->tries + i, s->tries + i + 1, (s->n - (size_t)i) * sizeof(*s->tries));
}

int pc_local_rollup_gather(sqlite3 *db, int64_t quiet_ns, int64_t limit_ns, pc_local_reader *gate,
                           pc_local_slow *slow, pc_local_rollup_job *job)
{
    gather_limits lim = {.deadline = mono_ns() + limit_ns, .gate = gate};
    *job = (pc_local_rollup_job){.hour = 0};
    if (gate && !pc_local_reader_enter(gate, lim.deadline)) return PC_ROLLUP_YIELD;
    int rc = run(db, "BEGIN");
    if (rc == SQLITE_OK) rc = step_sql(db, NEXT, quiet_ns, 0, 0, &job->hour, &job->mark);
    if (rc == SQLITE_ROW) {
        long i = slow_find(slow, job->hour);
        if (i >= 0) lim.deadline = mono_ns() + (limit_ns << slow->tries[i]);
        sqlite3_progress_handler(db, 1000, gather_stop, &lim);
        rc = pc_local_stats_gather_hour(db, job->hour, &job->figures);
        sqlite3_progress_handler(db, 0, NULL, NULL);
    }
    end_txn(db, "COMMIT");
    if (gate) pc_local_reader_leave(gate);
    if (rc == SQLITE_DONE) return 0; /* none due */
    if (rc == SQLITE_OK) slow_drop(slow, job->hour);
    if (rc == SQLITE_OK) return 1;
    /* an interrupted statement answers SQLITE_INTERRUPT, or a plain error
     * from the gather's probes (local_stats.c): the limits say why */
    if (lim.yielded) return PC_ROLLUP_YIELD;
    if (!lim.late) return -1;
    /* past the limit: not tried again for a while (once stored), unless
     * written meanwhile, and then with twice the time */
    slow_add(slow, job->hour);
    job->defer_ns = quiet_ns + PC_ROLLUP_DEFER_NS;
    return PC_ROLLUP_SLOW;
}

int pc_local_rollup_store(sqlite3 *db, pc_local_rollup_job *job)
{
    int64_t spans = 0;
    bool stale = false;
    int rc = run(db, "BEGIN IMMEDIATE");
    if (job->defer_ns > 0) {
        if (rc == SQLITE_OK)
            rc = step_sql(db, DEFER, job->hour, job->defer_ns, job->mark, NULL, NULL);
        if (rc == SQLITE_DONE) rc = run(db, "COMMIT");
        end_txn(db, "ROLLBACK");
        return rc == SQLITE_OK ? PC_ROLLUP_SLOW : -1;
    }
    if (rc == SQLITE_OK) rc = step_sql(db, SAME, job->hour, job->mark, 0, NULL, NULL);
    if (rc == SQLITE_ROW) {
        rc = pc_local_stats_store_hour(db, job->figures, &spans);
        if (rc == SQLITE_OK) /* an hour left without spans (retention) has nothing to keep */
            rc = step_sql(db, spans > 0 ? BUILT : DROP, job->hour, 0, 0, NULL, NULL);
        if (rc == SQLITE_DONE) rc = run(db, "COMMIT");
    } else if (rc == SQLITE_DONE) {
        stale = true; /* written (or built) since: nothing to store */
        rc = SQLITE_OK;
    }
    end_txn(db, "ROLLBACK");
    pc_local_stats_hour_free(job->figures);
    job->figures = NULL;
    return rc != SQLITE_OK ? -1 : stale ? PC_ROLLUP_STALE : 1;
}

int pc_local_rollup_build(sqlite3 *db, int64_t quiet_ns, int64_t limit_ns, pc_local_reader *gate,
                          pc_local_slow *slow, int64_t *hour)
{
    pc_local_rollup_job job;
    int rc = pc_local_rollup_gather(db, quiet_ns, limit_ns, gate, slow, &job);
    *hour = job.hour;
    return rc == 1 || rc == PC_ROLLUP_SLOW ? pc_local_rollup_store(db, &job) : rc;
}
