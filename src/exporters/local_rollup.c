/*
 * local_rollup.c - the writer's hour bookkeeping for the stats rollups (see
 * local_rollup.h; the tables' contract is local_schema.c's).
 *
 * Why an hour is marked rather than its rollup updated in place: a trace
 * counts in the hour its group begins, which a late earlier span moves;
 * latency bins and costs would need read-modify-write of every touched
 * hour per transaction; and retention takes spans away. Marking costs the
 * writer one upsert per distinct hour per transaction, and rebuilding an
 * hour from its spans (pc_local_rollup_build) is right by construction.
 */
#include "local_rollup.h"

#include "local_stats.h"
#include "local_store.h"
#include "mem.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define HOUR "3600000000000"

static const char TOUCH[] =
    "INSERT INTO stats_hours (hour, built, dirty_ns) VALUES (?1, 0, ?2)"
    " ON CONFLICT (hour) DO UPDATE SET built = 0, dirty_ns = excluded.dirty_ns";

/* ?1 tid: the hour of the trace's first span of each rolled-up group (the
 * first span overall is the first of its model). */
static const char FIRSTS[] =
    "SELECT min(start_ns) / " HOUR " FROM spans WHERE tid = ?1 GROUP BY llm_model"
    " UNION SELECT min(start_ns) / " HOUR " FROM spans WHERE tid = ?1 GROUP BY service_name"
    " UNION SELECT min(start_ns) / " HOUR " FROM spans WHERE tid = ?1 GROUP BY span_type";

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

int pc_local_rollup_init(pc_local_rollup *r, const char *id, sqlite3 *db, const char *expired_sql)
{
    char purge[1024];
    snprintf(purge, sizeof(purge),
             "INSERT INTO stats_hours (hour, built, dirty_ns) SELECT DISTINCT start_ns / " HOUR
             ", 0, ?2 FROM spans WHERE tid IN (%s) AND true"
             " ON CONFLICT (hour) DO UPDATE SET built = 0, dirty_ns = excluded.dirty_ns",
             expired_sql);
    r->db = db;
    return pc_local_prepare(id, db, TOUCH, &r->touch) < 0 ||
                   pc_local_prepare(id, db, FIRSTS, &r->firsts) < 0 ||
                   pc_local_prepare(id, db, purge, &r->purge) < 0
               ? -1
               : 0;
}

void pc_local_rollup_fini(pc_local_rollup *r)
{
    sqlite3_finalize(r->touch);
    sqlite3_finalize(r->firsts);
    sqlite3_finalize(r->purge);
    free(r->hours);
    r->hours = NULL;
    r->n = r->cap = 0;
}

static void add_hour(pc_local_rollup *r, int64_t hour)
{
    if (r->n > 0 && r->hours[r->n - 1] == hour) return; /* a trace's spans, mostly */
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->hours = pc_xrealloc(r->hours, r->cap * sizeof(*r->hours));
    }
    r->hours[r->n++] = hour;
}

void pc_local_rollup_span(pc_local_rollup *r, int64_t start_ns)
{
    add_hour(r, start_ns / 3600000000000LL);
}

int pc_local_rollup_stored(pc_local_rollup *r, int64_t tid)
{
    int rc;
    sqlite3_bind_int64(r->firsts, 1, tid);
    while ((rc = sqlite3_step(r->firsts)) == SQLITE_ROW)
        add_hour(r, sqlite3_column_int64(r->firsts, 0));
    sqlite3_reset(r->firsts);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int pc_local_rollup_flush(pc_local_rollup *r, int64_t now_ns)
{
    if (r->n > 1) qsort(r->hours, r->n, sizeof(*r->hours), by_value);
    int rc = SQLITE_OK;
    for (size_t i = 0; i < r->n && rc == SQLITE_OK; i++) {
        if (i > 0 && r->hours[i] == r->hours[i - 1]) continue;
        sqlite3_bind_int64(r->touch, 1, r->hours[i]);
        sqlite3_bind_int64(r->touch, 2, now_ns);
        rc = sqlite3_step(r->touch);
        sqlite3_reset(r->touch);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    r->n = 0;
    return rc;
}

int pc_local_rollup_purge(pc_local_rollup *r, int64_t cutoff_ns, int64_t now_ns)
{
    sqlite3_bind_int64(r->purge, 1, cutoff_ns);
    sqlite3_bind_int64(r->purge, 2, now_ns);
    int rc = sqlite3_step(r->purge);
    sqlite3_reset(r->purge);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int run(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Runs |sql| with ?1 = |a|, ?2 = |b|, ?3 = |c| (those it names): SQLITE_ROW
 * (the first row's two columns in *|x|, *|y| when given), SQLITE_DONE, or an
 * error. SQLite code. */
static int step3(sqlite3 *db, const char *sql, int64_t a, int64_t b, int64_t c, int64_t *x,
                 int64_t *y)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        int n = sqlite3_bind_parameter_count(st);
        if (n >= 1) sqlite3_bind_int64(st, 1, a);
        if (n >= 2) sqlite3_bind_int64(st, 2, b);
        if (n >= 3) sqlite3_bind_int64(st, 3, c);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && x) *x = sqlite3_column_int64(st, 0);
        if (rc == SQLITE_ROW && y) *y = sqlite3_column_int64(st, 1);
    }
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
    bool yielded;
} gather_limits;

/* SQLite progress handler of a gather: non-zero (interrupt) past the
 * deadline, or when a restart holds reads back (the gather yields). */
static int gather_stop(void *ud)
{
    gather_limits *l = ud;
    if (l->gate && pc_local_reader_held(l->gate)) l->yielded = true;
    return l->yielded || mono_ns() > l->deadline;
}

/* Ends the transaction of |db| if one is open. */
static void end_txn(sqlite3 *db, const char *how)
{
    if (!sqlite3_get_autocommit(db)) run(db, how);
}

int pc_local_rollup_gather(sqlite3 *db, int64_t quiet_ns, int64_t limit_ns, pc_local_reader *gate,
                           pc_local_rollup_job *job)
{
    gather_limits lim = {.deadline = mono_ns() + limit_ns, .gate = gate};
    job->hour = job->mark = 0;
    job->figures = NULL;
    if (gate && !pc_local_reader_enter(gate, lim.deadline)) return PC_ROLLUP_YIELD;
    int rc = run(db, "BEGIN");
    if (rc == SQLITE_OK) rc = step3(db, NEXT, quiet_ns, 0, 0, &job->hour, &job->mark);
    if (rc == SQLITE_ROW) {
        sqlite3_progress_handler(db, 1000, gather_stop, &lim);
        rc = pc_local_stats_gather_hour(db, job->hour, &job->figures);
        sqlite3_progress_handler(db, 0, NULL, NULL);
    }
    end_txn(db, "COMMIT");
    if (gate) pc_local_reader_leave(gate);
    if (rc == SQLITE_DONE) return 0; /* none due */
    if (rc == SQLITE_OK) return 1;
    if (rc == SQLITE_INTERRUPT && lim.yielded) return PC_ROLLUP_YIELD;
    if (rc != SQLITE_INTERRUPT) return -1;
    /* past the limit: not tried again for a while, unless written meanwhile */
    rc = run(db, "BEGIN IMMEDIATE");
    if (rc == SQLITE_OK)
        rc = step3(db, DEFER, job->hour, quiet_ns + PC_ROLLUP_DEFER_NS, job->mark, NULL, NULL);
    if (rc == SQLITE_DONE) rc = run(db, "COMMIT");
    end_txn(db, "ROLLBACK");
    return rc == SQLITE_OK ? PC_ROLLUP_SLOW : -1;
}

int pc_local_rollup_store(sqlite3 *db, pc_local_rollup_job *job)
{
    int64_t spans = 0;
    bool stale = false;
    int rc = run(db, "BEGIN IMMEDIATE");
    if (rc == SQLITE_OK) rc = step3(db, SAME, job->hour, job->mark, 0, NULL, NULL);
    if (rc == SQLITE_ROW) {
        rc = pc_local_stats_store_hour(db, job->figures, &spans);
        if (rc == SQLITE_OK) /* an hour left without spans (retention) has nothing to keep */
            rc = step3(db, spans > 0 ? BUILT : DROP, job->hour, 0, 0, NULL, NULL);
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
                          int64_t *hour)
{
    pc_local_rollup_job job;
    int rc = pc_local_rollup_gather(db, quiet_ns, limit_ns, gate, &job);
    *hour = job.hour;
    return rc == 1 ? pc_local_rollup_store(db, &job) : rc;
}
