/*
 * local_query.c - the embedded store's read pool (pc_local_reader,
 * local_store.h) and one read over it (local_query.h): connections lent and
 * given back, each read's deadline, the health check, and the pool as the
 * gate of its files' checkpointers.
 *
 * The pool lends at most POOL_MAX connections; a lent one is a read in
 * flight, and so is a read on a connection of the caller's own that entered
 * (pc_local_reader_enter: the rollup builder's). The pool is the gate of its
 * files' checkpointers (local_checkpoint.h, pc_local_reader_gate): while a
 * restart of a write-ahead log holds it, a new read waits for admission until
 * the hold ends: when the log has started over, or when the reads in flight
 * outlast the hold's wait (PC_LOCAL_RESTART_WAIT_MS, longer after holds that
 * reads outlasted, at most the reads' time limit and that wait more), and
 * never past that wait and the copy's (local_checkpoint.c). So the reads in
 * flight end and the log can start over without the writer waiting for them.
 */
#include "local_query.h"

#include "local_contains.h"
#include "local_text.h"

#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read connections open at once (lent or idle), all kept: a read past them
 * waits for one, within its time limit. Each costs memory the budget does not
 * see (its page caches, a row of decompressed columns), so their number is
 * bounded here and not by the query server's connections (16 readers of a
 * 12 MiB trace: 124 MB peak RSS unbounded, against 96 with 8). Reads gain
 * nothing from more on a few cores. */
#define POOL_MAX 8

/* ---------------------------------------------------------- reader pool -- */

struct pc_local_reader {
    const char *id;
    char *path, *search_path;
    pc_local_recent *recent; /* borrowed (or NULL) */
    int64_t timeout_ns; /* statement time limit */
    pthread_mutex_t mu;
    pthread_cond_t freed; /* a connection came back (mu) */
    sqlite3 *idle[POOL_MAX];
    int n_idle;
    int n_lent;          /* mu: reads in flight */
    int holds;           /* mu: restarts holding new reads back (local_checkpoint.h) */
    int64_t held_until;  /* mu: new reads wait until then (pc_time_mono_ns) while holds */
};

pc_local_reader *pc_local_reader_create(const char *id, const char *path,
                                        const char *search_path, pc_local_recent *recent,
                                        int64_t query_timeout_ms)
{
    pc_local_reader *r = pc_xcalloc(1, sizeof(*r));
    r->id = id;
    r->recent = recent;
    r->timeout_ns = query_timeout_ms * 1000000;
    r->path = pc_xstrdup(path);
    r->search_path = pc_xstrdup(search_path);
    pthread_mutex_init(&r->mu, NULL);
    pc_cond_init_mono(&r->freed);
    return r;
}

pc_local_recent *pc_local_reader_recent(const pc_local_reader *r)
{
    return r->recent;
}

void pc_local_reader_destroy(pc_local_reader *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_idle; i++)
        sqlite3_close(r->idle[i]);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->freed);
    free(r->path);
    free(r->search_path);
    free(r);
}

/* Gives back the place of a lent connection that is gone (mu held). */
static void unlend(pc_local_reader *r)
{
    r->n_lent--;
    pthread_cond_broadcast(&r->freed);
}

/* pc_local_gate over the pool: a read is in flight while its connection is
 * lent. */
static int gate_hold(void *ud, int64_t until_ns)
{
    pc_local_reader *r = ud;
    pthread_mutex_lock(&r->mu);
    r->holds++;
    if (until_ns > r->held_until) r->held_until = until_ns;
    int n = r->n_lent;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static int gate_in_flight(void *ud)
{
    pc_local_reader *r = ud;
    pthread_mutex_lock(&r->mu);
    int n = r->n_lent;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void gate_release(void *ud)
{
    pc_local_reader *r = ud;
    pthread_mutex_lock(&r->mu);
    if (r->holds > 0 && --r->holds == 0) {
        r->held_until = 0;
        pthread_cond_broadcast(&r->freed);
    }
    pthread_mutex_unlock(&r->mu);
}

pc_local_gate pc_local_reader_gate(pc_local_reader *r)
{
    return (pc_local_gate){.hold = gate_hold, .in_flight = gate_in_flight,
                           .release = gate_release, .ud = r, .longest_read_ns = r->timeout_ns};
}

/* A restart holds new reads back now (mu held). */
static bool held_locked(const pc_local_reader *r)
{
    return r->holds > 0 && pc_time_mono_ns() < r->held_until;
}

/* Opens a read-only connection to the store (the search file attached), or
 * NULL after logging. */
static sqlite3 *open_reader(pc_local_reader *r)
{
    sqlite3 *db = NULL;
    pc_local_sqlite_setup();
    int rc = sqlite3_open_v2(r->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, r->id, "cannot open %s for reading: %s", r->path,
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, PC_LOCAL_BUSY_TIMEOUT_MS);
    if (pc_local_text_register(db) != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, r->id, "cannot register pc_search_text: %s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    /* read only as the connection; the statements below name it search. */
    sqlite3_stmt *att = NULL;
    rc = sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS search", -1, &att, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(att, 1, r->search_path, -1, SQLITE_STATIC);
        rc = sqlite3_step(att) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(att);
    if (rc != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, r->id, "cannot attach %s: %s", r->search_path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

/* Waits while POOL_MAX reads are in flight or a restart holds reads back,
 * until |deadline| (pc_time_mono_ns), then counts one more read in flight.
 * false past the deadline. Call with mu held. */
static bool admit_locked(pc_local_reader *r, int64_t deadline)
{
    bool late = false;
    while ((r->n_lent >= POOL_MAX || held_locked(r)) && !late) {
        int64_t t = held_locked(r) && r->held_until < deadline ? r->held_until : deadline;
        late = pc_cond_wait_until(&r->freed, &r->mu, t) == ETIMEDOUT &&
               pc_time_mono_ns() >= deadline && (r->n_lent >= POOL_MAX || held_locked(r));
    }
    if (!late) r->n_lent++;
    return !late;
}

bool pc_local_reader_enter(pc_local_reader *r, int64_t deadline)
{
    pthread_mutex_lock(&r->mu);
    bool in = admit_locked(r, deadline);
    pthread_mutex_unlock(&r->mu);
    return in;
}

void pc_local_reader_leave(pc_local_reader *r)
{
    pthread_mutex_lock(&r->mu);
    unlend(r);
    pthread_mutex_unlock(&r->mu);
}

bool pc_local_reader_held(pc_local_reader *r)
{
    pthread_mutex_lock(&r->mu);
    bool held = held_locked(r);
    pthread_mutex_unlock(&r->mu);
    return held;
}

/* Lends a read-only connection (an idle one or a new one) once admitted
 * (admit_locked). NULL after logging, or with *|late| set past the
 * deadline. */
static sqlite3 *acquire(pc_local_reader *r, int64_t deadline, bool *late)
{
    sqlite3 *db = NULL;
    pthread_mutex_lock(&r->mu);
    *late = !admit_locked(r, deadline);
    if (!*late && r->n_idle > 0) db = r->idle[--r->n_idle];
    pthread_mutex_unlock(&r->mu);
    if (db || *late) return db;
    if (!(db = open_reader(r))) {
        pthread_mutex_lock(&r->mu);
        unlend(r);
        pthread_mutex_unlock(&r->mu);
    }
    return db;
}

/* Gives |db| back; |ok| false closes it (it failed, so do not keep it around). */
static void release(pc_local_reader *r, sqlite3 *db, bool ok)
{
    if (!db) return;
    pthread_mutex_lock(&r->mu);
    if (ok && r->n_idle < POOL_MAX) {
        r->idle[r->n_idle++] = db;
        db = NULL;
    }
    unlend(r);
    pthread_mutex_unlock(&r->mu);
    sqlite3_close(db);
}

/*
 * One query: its connection, statement and deadline.
 *
 * Time limit: SQLite calls the progress handler every PROGRESS_OPS virtual
 * machine instructions; past the deadline it answers non-zero and the step
 * fails with SQLITE_INTERRUPT. One instruction can be long (a function over
 * a 2 MB value), so search does not use LIKE (whose %...% matching costs
 * value length x pattern length per row) but pc_contains (local_contains.h):
 * linear in the value, checking the same deadline as it goes.
 */
#define PROGRESS_OPS 1000

typedef pc_local_query query;

static int past_deadline(void *ud)
{
    query *q = ud;
    if (pc_time_mono_ns() > q->deadline) q->timed_out = true;
    return q->timed_out;
}

int pc_local_query_open(query *q, pc_local_reader *r, const char *sql, const char *what)
{
    q->r = r;
    q->st = NULL;
    q->what = what;
    q->deadline = pc_time_mono_ns() + r->timeout_ns;
    q->timed_out = false;
    bool late;
    q->db = acquire(r, q->deadline, &late);
    if (!q->db && late) {
        pc_log(PC_LOG_WARN, r->id, "%s: no read connection came free within the query time "
                                   "limit (%lld ms)", what, (long long)(r->timeout_ns / 1000000));
        return PC_STORE_TIMEOUT;
    }
    if (!q->db) return -1;
    sqlite3_progress_handler(q->db, PROGRESS_OPS, past_deadline, q);
    pc_local_contains_register(q->db, past_deadline, q);
    if (sqlite3_prepare_v2(q->db, sql, -1, &q->st, NULL) != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, r->id, "%s: %s", what, sqlite3_errmsg(q->db));
        release(r, q->db, false);
        q->db = NULL;
        return -1;
    }
    return 0;
}

int pc_local_query_begin(query *q, pc_local_reader *r, const char *what)
{
    int rc = pc_local_query_open(q, r, "BEGIN", what);
    if (rc < 0) return rc;
    if ((rc = sqlite3_step(q->st)) != SQLITE_DONE) return pc_local_query_close(q, rc);
    sqlite3_finalize(q->st);
    q->st = NULL;
    return 0;
}

/* Ends |q|; |rc| is the last sqlite3_step result. Returns 0, PC_STORE_TIMEOUT
 * past the deadline, or -1 after logging. */
int pc_local_query_close(query *q, int rc)
{
    bool ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
    bool timeout = !ok && q->timed_out;
    if (timeout)
        pc_log(PC_LOG_WARN, q->r->id, "%s: stopped at the query time limit (%lld ms)", q->what,
               (long long)(q->r->timeout_ns / 1000000));
    else if (!ok)
        pc_log(PC_LOG_ERROR, q->r->id, "%s: %s", q->what, sqlite3_errmsg(q->db));
    sqlite3_finalize(q->st);
    sqlite3_progress_handler(q->db, 0, NULL, NULL);
    /* a read: ends the snapshot (with the deadline off, so it always can) */
    if (!sqlite3_get_autocommit(q->db)) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    release(q->r, q->db, ok || timeout);
    return ok ? 0 : timeout ? PC_STORE_TIMEOUT : -1;
}

int pc_local_health(void *ctx, char *msg, int msglen)
{
    pc_local_reader *r = ctx;
    bool late;
    /* every connection lent: reads are being served, so the store answers;
     * a health check never waits behind them */
    sqlite3 *db = acquire(r, pc_time_mono_ns(), &late);
    if (!db && late) return 0;
    if (!db) {
        snprintf(msg, (size_t)msglen, "embedded store: cannot open the database");
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM traces LIMIT 1", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    bool ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    if (!ok) {
        snprintf(msg, (size_t)msglen, "embedded store: %s", sqlite3_errmsg(db));
        pc_log(PC_LOG_WARN, r->id, "health: %s", msg);
    }
    sqlite3_finalize(st);
    release(r, db, ok);
    return ok ? 0 : -1;
}

