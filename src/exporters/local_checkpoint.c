/*
 * local_checkpoint.c - the embedded store's checkpointer thread (see
 * local_checkpoint.h): the writer connection's WAL hook counts frames, this
 * thread checkpoints from a connection of its own.
 *
 * State under mu: |frames| is the log's length at the writer's last commit;
 * |copied| how much of it the thread's last checkpoint copied; |commits|
 * counts the hook's calls and |tried| is its value when the thread last ran,
 * so the thread checkpoints at most once per commit (a failing checkpoint
 * waits for the next commit instead of spinning); |epoch| counts the log's
 * restarts (its length fell, or the writer's RESTART succeeded), so a
 * checkpoint that raced with a restart does not set |copied| from the old
 * log; after a RESTART that readers kept from finishing, the writer tries
 * again once |retry_at| frames are in the log (a step more), not at every
 * commit. |hold_ns| is how long the next hold of the gate's reads may last:
 * PC_LOCAL_RESTART_WAIT_MS, doubled after each hold that reads outlasted, up
 * to the gate's longest read and a wait more, and back to the start once the
 * log starts over; so reads that each last longer than a short hold (a long
 * search beside ingest) delay the restart by a few holds, not forever. The
 * hook reads |restart| and the writer connection without the lock: they do
 * not change after create.
 */
#include "local_checkpoint.h"

#include "local_store.h"
#include "log.h"
#include "mem.h"
#include "timefmt.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct pc_local_checkpoint {
    const char *id;
    sqlite3 *db;     /* this thread's connection */
    sqlite3 *writer; /* borrowed: its hook is ours */
    int step, restart;
    pthread_t thread;
    bool running;

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    bool stopping;
    int frames, copied;
    uint64_t commits, tried, epoch;
    uint64_t caught_up; /* epoch + 1 of the last catch-up checkpoint; 0: none */
    int retry_at;       /* after a busy RESTART: the next try's log length */
    bool working;    /* the thread runs a checkpoint */
    bool restarting; /* the writer runs its RESTART */
    bool failing;    /* the last checkpoint failed (logged once per change) */
    pc_local_gate gate;  /* gate.hold NULL: none */
    int64_t held_since; /* the hold's start (pc_time_mono_ns); 0: not holding */
    int64_t hold_ns;    /* the longest the next hold may last */
    pc_local_checkpoint_stats stats;
};

#define RESTART_WAIT_NS ((int64_t)PC_LOCAL_RESTART_WAIT_MS * 1000000)

/* The log is long enough to start over, and the thread has caught up (or
 * never fell behind): the writer's RESTART would find little to copy. Call
 * with mu held. */
static bool restart_due_locked(const pc_local_checkpoint *c)
{
    return c->frames >= c->restart && c->frames >= c->retry_at && !c->working &&
           (c->caught_up == c->epoch + 1 || c->frames - c->copied <= c->step / 4);
}

/* The thread's PASSIVE checkpoint is due: a step of new frames; once the log
 * is long enough to start over, one last catch-up. Call with mu held. */
static bool due_locked(const pc_local_checkpoint *c)
{
    if (c->restarting || c->working || c->commits == c->tried) return false;
    if (c->frames >= c->restart) return c->caught_up != c->epoch + 1 && c->frames > c->copied;
    return c->frames - c->copied >= c->step;
}

/* Lets the held reads go in again. Call with mu held. */
static void release_locked(pc_local_checkpoint *c)
{
    if (!c->held_since) return;
    c->gate.release(c->gate.ud);
    c->held_since = 0;
}

/* The log began again: the next hold is a short one. Call with mu held. */
static void started_over_locked(pc_local_checkpoint *c)
{
    c->copied = c->retry_at = 0;
    c->epoch++;
    c->stats.started_over++;
    c->hold_ns = RESTART_WAIT_NS;
}

/* A restart is due and there is a gate: holds new reads back (the first time)
 * and says whether the reads in flight have ended. Past the hold's length,
 * lets the reads go in, counts a busy restart, tried again a step later, and
 * doubles the next hold's length (at most the longest read and a wait more,
 * which the reads in flight cannot outlast). Call with mu held. */
static bool gate_clear_locked(pc_local_checkpoint *c)
{
    int64_t now = pc_time_mono_ns();
    int n;
    if (!c->held_since) {
        c->held_since = now;
        c->stats.held++;
        n = c->gate.hold(c->gate.ud, now + c->hold_ns);
    } else {
        n = c->gate.in_flight(c->gate.ud);
    }
    if (n == 0) return true;
    if (now - c->held_since >= c->hold_ns) {
        release_locked(c);
        c->stats.busy++;
        c->retry_at = c->frames + c->step;
        int64_t most = c->gate.longest_read_ns + RESTART_WAIT_NS;
        c->hold_ns = 2 * c->hold_ns < most ? 2 * c->hold_ns : most;
        if (c->hold_ns > c->stats.longest_hold_ns) c->stats.longest_hold_ns = c->hold_ns;
    }
    return false;
}

/* The writer connection's WAL hook (and pc_local_checkpoint_also's), on the
 * committing thread after each commit, |frames| in the log: wakes the
 * thread, or restarts the log from |db|. */
static int hook(void *ud, sqlite3 *db, const char *name, int frames)
{
    pc_local_checkpoint *c = ud;
    pthread_mutex_lock(&c->mu);
    if (frames < c->frames) { /* the log started over */
        release_locked(c);
        started_over_locked(c);
    }
    c->frames = frames;
    c->commits++;
    if (frames > c->stats.max_frames) c->stats.max_frames = frames;
    bool restart = restart_due_locked(c);
    if (restart && c->gate.hold) restart = gate_clear_locked(c);
    c->restarting = restart;
    if (due_locked(c)) pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (!restart) return SQLITE_OK;

    /* Copy the rest, wait for the readers of old frames at most
     * PC_LOCAL_RESTART_WAIT_MS, start over. */
    sqlite3_busy_timeout(db, PC_LOCAL_RESTART_WAIT_MS);
    int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
    sqlite3_busy_timeout(db, PC_LOCAL_BUSY_TIMEOUT_MS);
    pthread_mutex_lock(&c->mu);
    if (rc == SQLITE_OK) {
        if (c->failing) pc_log(PC_LOG_INFO, c->id, "write-ahead log checkpoints succeed again");
        c->failing = false;
        c->stats.restarts++;
        c->frames = 0; /* the next commit begins the log again */
        started_over_locked(c);
    } else {
        c->stats.busy++;
        c->retry_at = frames + c->step; /* not at every commit while a reader stays */
        if (rc != SQLITE_BUSY && !c->failing) { /* BUSY: readers, the normal case */
            c->failing = true;
            pc_log(PC_LOG_WARN, c->id, "write-ahead log restart failed: %s (retried later)",
                   sqlite3_errstr(rc));
        }
    }
    c->restarting = false;
    release_locked(c);
    if (due_locked(c)) pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return SQLITE_OK;
}

static void *checkpoint_main(void *arg)
{
    pc_local_checkpoint *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stopping && !due_locked(c))
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stopping) break;
        uint64_t epoch = c->epoch;
        c->tried = c->commits;
        if (c->frames >= c->restart) c->caught_up = epoch + 1;
        c->working = true;
        pthread_mutex_unlock(&c->mu);

        int log = 0, ckpt = 0;
        int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt);
        pthread_mutex_lock(&c->mu);
        c->working = false;
        if (rc == SQLITE_OK) {
            if (c->failing) pc_log(PC_LOG_INFO, c->id, "write-ahead log checkpoints succeed again");
            c->failing = false;
            c->stats.passive++;
            if (epoch == c->epoch) c->copied = ckpt;
        } else if (rc != SQLITE_BUSY && !c->failing) {
            /* BUSY: the writer's RESTART holds the log; it copies everything */
            c->failing = true;
            pc_log(PC_LOG_WARN, c->id,
                   "write-ahead log checkpoint failed: %s (retried after the next commit)",
                   sqlite3_errmsg(c->db));
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

pc_local_checkpoint *pc_local_checkpoint_create(const char *id, const char *path, sqlite3 *writer,
                                                int step_pages, int restart_pages,
                                                const pc_local_gate *gate)
{
    /* Nothing checkpoints |writer| from its own thread any more, whatever happens below. */
    sqlite3_wal_hook(writer, NULL, NULL);
    pc_local_checkpoint *c = pc_xcalloc(1, sizeof(*c));
    c->id = id;
    c->writer = writer;
    c->step = step_pages > 0 ? step_pages : 1;
    c->restart = restart_pages > c->step ? restart_pages : c->step;
    if (gate) c->gate = *gate;
    c->hold_ns = RESTART_WAIT_NS;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, id, "cannot open %s for checkpoints: %s", path,
               c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        pc_local_checkpoint_destroy(c);
        return NULL;
    }
    /* A connection learns that the file is in WAL mode on its first read;
     * until then its checkpoints do nothing. */
    rc = sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, id, "cannot read %s for checkpoints: %s", path, sqlite3_errmsg(c->db));
        pc_local_checkpoint_destroy(c);
        return NULL;
    }
    rc = pthread_create(&c->thread, NULL, checkpoint_main, c);
    if (rc != 0) {
        pc_log(PC_LOG_ERROR, id, "cannot start the checkpoint thread: %s", strerror(rc));
        pc_local_checkpoint_destroy(c);
        return NULL;
    }
    c->running = true;
    sqlite3_wal_hook(writer, hook, c);
    return c;
}

void pc_local_checkpoint_also(pc_local_checkpoint *c, sqlite3 *db)
{
    sqlite3_wal_hook(db, hook, c);
}

void pc_local_checkpoint_destroy(pc_local_checkpoint *c)
{
    if (!c) return;
    sqlite3_wal_hook(c->writer, NULL, NULL);
    pthread_mutex_lock(&c->mu);
    release_locked(c);
    pthread_mutex_unlock(&c->mu);
    if (c->running) {
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    sqlite3_close(c->db);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void pc_local_checkpoint_get_stats(pc_local_checkpoint *c, pc_local_checkpoint_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}
