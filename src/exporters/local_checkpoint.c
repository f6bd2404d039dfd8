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
 * search beside ingest) delay the restart by a few holds, not forever.
 * |drain|: once the held reads have ended, the thread copies the log
 * (DRAIN_COPY), then the writer's next commit restarts it (DRAIN_WRITER),
 * finding little left to copy, or the thread does if the writer idles; then
 * the hold ends. (Beside readers the thread's checkpoints copy little, and
 * the writer's RESTART copied most of the log itself, 87-139 ms a time,
 * stalling every commit behind it. A RESTART from the thread while the
 * writer writes is no better: it stops the writer as long, and the writer's
 * next transaction, reading while it waits, makes it end BUSY.) The hook
 * reads |restart| and the writer connection without the lock: they do not
 * change after create.
 */
#include "local_checkpoint.h"

#include "local_store.h"
#include "log.h"
#include "mem.h"
#include "sync.h"
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
    enum { DRAIN_NONE, DRAIN_COPY, DRAIN_WRITER } drain; /* after the hold's reads ended */
    uint64_t handed_at; /* |commits| when the restart was left to the writer */
    int64_t handed_ns;  /* and when (pc_time_mono_ns) */
    pc_local_checkpoint_stats stats;
};

#define RESTART_WAIT_NS ((int64_t)PC_LOCAL_RESTART_WAIT_MS * 1000000)
/* Longest a drained hold keeps reads waiting for the thread's copy and
 * restart (a log of 64 MB copies in 0.1-0.3 s here); past it the restart
 * counts as busy and the reads go in. */
#define COPY_WAIT_NS (2000LL * 1000000)
#define HOLD_POLL_NS (5LL * 1000000) /* the thread looks at a hold's reads, an idle writer */
#define COPY_ROUNDS 4
/* No commit for this long after the restart was left to the writer: it idles
 * (beside queries it commits every few ms; a RESTART tried between two of its
 * commits only stops it longer, see |drain|) */
#define IDLE_NS (20LL * 1000000)

/* The log is long enough to start over, and the thread has caught up (or
 * never fell behind): the writer's RESTART would find little to copy. Call
 * with mu held. */
static bool restart_due_locked(const pc_local_checkpoint *c)
{
    return c->frames >= c->restart && c->frames >= c->retry_at && !c->working &&
           (c->caught_up == c->epoch + 1 || c->frames - c->copied <= c->step / 4);
}

/* The thread's work is due: after a drained hold, the copy; else a
 * PASSIVE checkpoint of a step of new frames, or once the log is long enough
 * to start over, one last catch-up. Call with mu held. */
static bool due_locked(const pc_local_checkpoint *c)
{
    if (c->working) return false;
    if (c->drain == DRAIN_COPY) return true;
    if (c->restarting || c->commits == c->tried) return false;
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

/* A RESTART checkpoint (begun under |epoch|) returned |rc|: counts it;
 * after a success the log begins again at the next commit (unless a commit
 * already began it); after a failure it is tried again a step later. Ends
 * the hold, if any. Call with mu held. */
static void restart_done_locked(pc_local_checkpoint *c, int rc, uint64_t epoch)
{
    if (rc == SQLITE_OK) {
        if (c->failing) pc_log(PC_LOG_INFO, c->id, "write-ahead log checkpoints succeed again");
        c->failing = false;
        c->stats.restarts++;
        if (epoch == c->epoch) {
            c->frames = 0;
            started_over_locked(c);
        }
    } else {
        c->stats.busy++;
        c->retry_at = c->frames + c->step; /* not at every commit while a reader stays */
        if (rc != SQLITE_BUSY && !c->failing) { /* BUSY: readers, the normal case */
            c->failing = true;
            pc_log(PC_LOG_WARN, c->id, "write-ahead log restart failed: %s (retried later)",
                   sqlite3_errstr(rc));
        }
    }
    c->drain = DRAIN_NONE;
    release_locked(c);
}

/* After a drained hold, on the thread: PASSIVE checkpoints copy the log
 * while the writer goes on (no reader keeps frames now), again while the
 * writer added more than a quarter step meanwhile (COPY_ROUNDS at most);
 * then the writer's next commit restarts the log, finding about that much
 * to copy (DRAIN_WRITER; a RESTART holds the writer while it copies and
 * syncs: 87-139 ms for the ~13,000 frames readers had kept from the thread,
 * 1.5-18 ms after these rounds). Call with mu held. */
static void copy_drained_locked(pc_local_checkpoint *c)
{
    uint64_t epoch = c->epoch;
    c->working = true;
    int rc = SQLITE_OK;
    for (int round = 0; round < COPY_ROUNDS; round++) {
        pthread_mutex_unlock(&c->mu);
        int log = 0, ckpt = 0;
        rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt);
        pthread_mutex_lock(&c->mu);
        if (rc != SQLITE_OK || epoch != c->epoch) break;
        c->copied = ckpt;
        if (c->frames - ckpt <= c->step / 4) break;
    }
    c->working = false;
    if (epoch != c->epoch) { /* the log began again by itself meanwhile */
        c->drain = DRAIN_NONE;
        release_locked(c);
    } else if (rc != SQLITE_OK) {
        restart_done_locked(c, rc, epoch);
    } else {
        c->drain = DRAIN_WRITER;
        c->handed_at = c->commits;
        c->handed_ns = pc_time_mono_ns();
    }
}

/* DRAIN_WRITER and no commit for IDLE_NS: the writer idles, so the thread
 * restarts the log itself (no busy handler: a writer that begins meanwhile
 * makes it BUSY, and then its own commit restarts). Call with mu held. */
static void restart_idle_locked(pc_local_checkpoint *c)
{
    uint64_t epoch = c->epoch;
    c->working = true;
    pthread_mutex_unlock(&c->mu);
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
    pthread_mutex_lock(&c->mu);
    c->working = false;
    if (rc == SQLITE_BUSY && c->drain == DRAIN_WRITER) { /* left to the next commit */
        c->handed_at = c->commits;
        c->handed_ns = pc_time_mono_ns();
    } else if (c->drain == DRAIN_WRITER)
        restart_done_locked(c, rc, epoch);
}

/* A restart is due and there is a gate: holds new reads back (called by the
 * hook), then (called by the thread every HOLD_POLL_NS) hands the restart to
 * the thread once the reads in flight have ended (|drain|). Past the hold's
 * length, lets the reads go in, counts a busy restart, tried again a step
 * later, and doubles the next hold's length (at most the longest read and a
 * wait more, which the reads in flight cannot outlast). Call with mu held. */
static void gate_step_locked(pc_local_checkpoint *c)
{
    int64_t now = pc_time_mono_ns();
    int n;
    if (c->drain != DRAIN_NONE) return;
    if (!c->held_since) {
        c->held_since = now;
        c->stats.held++;
        /* the reads wait until the thread's restart ends the hold, and
         * never past the wait for the reads in flight and a copy */
        n = c->gate.hold(c->gate.ud, now + c->hold_ns + COPY_WAIT_NS);
    } else {
        n = c->gate.in_flight(c->gate.ud);
    }
    if (n == 0) {
        c->drain = DRAIN_COPY;
        pthread_cond_signal(&c->cv);
        return;
    }
    if (now - c->held_since >= c->hold_ns) {
        release_locked(c);
        c->stats.busy++;
        c->retry_at = c->frames + c->step;
        int64_t most = c->gate.longest_read_ns + RESTART_WAIT_NS;
        c->hold_ns = 2 * c->hold_ns < most ? 2 * c->hold_ns : most;
        if (c->hold_ns > c->stats.longest_hold_ns) c->stats.longest_hold_ns = c->hold_ns;
    }
}

/* The writer connection's WAL hook, on the committing thread after each
 * commit, |frames| in the log: wakes the thread, holds the gate's reads for
 * a restart, or (without a gate) restarts the log from |db|. */
static int hook(void *ud, sqlite3 *db, const char *name, int frames)
{
    pc_local_checkpoint *c = ud;
    pthread_mutex_lock(&c->mu);
    if (frames < c->frames) { /* the log started over */
        release_locked(c);
        started_over_locked(c);
        if (c->drain == DRAIN_WRITER) c->drain = DRAIN_NONE;
    }
    c->frames = frames;
    c->commits++;
    if (frames > c->stats.max_frames) c->stats.max_frames = frames;
    bool restart = restart_due_locked(c);
    if (c->gate.hold) { /* the writer restarts only what the thread handed back */
        if (restart && !c->held_since) {
            gate_step_locked(c); /* holds; the thread watches the hold from now on */
            pthread_cond_signal(&c->cv);
        }
        restart = c->drain == DRAIN_WRITER && !c->working;
    }
    c->restarting = restart;
    if (restart && frames - c->copied > c->stats.restart_copied)
        c->stats.restart_copied = frames - c->copied;
    uint64_t epoch = c->epoch;
    if (due_locked(c)) pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (!restart) return SQLITE_OK;

    /* Copy the rest, wait for the readers of old frames at most
     * PC_LOCAL_RESTART_WAIT_MS, start over. */
    sqlite3_busy_timeout(db, PC_LOCAL_RESTART_WAIT_MS);
    int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
    sqlite3_busy_timeout(db, PC_LOCAL_BUSY_TIMEOUT_MS);
    pthread_mutex_lock(&c->mu);
    c->restarting = false;
    restart_done_locked(c, rc, epoch);
    if (due_locked(c)) pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return SQLITE_OK;
}

static void *checkpoint_main(void *arg)
{
    pc_local_checkpoint *c = arg;
    pc_thread_name("local-ckpt");
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stopping && !due_locked(c)) {
            bool watch = c->drain == DRAIN_WRITER || (c->held_since && c->drain == DRAIN_NONE);
            if (!watch) {
                pthread_cond_wait(&c->cv, &c->mu);
                continue;
            }
            /* a hold waits for its reads, or for the writer's restart: look
             * every HOLD_POLL_NS, so reads are neither held for the writer's
             * next commit nor while it idles */
            pc_cond_wait_until(&c->cv, &c->mu, pc_time_mono_ns() + HOLD_POLL_NS);
            if (c->drain == DRAIN_WRITER && !c->restarting) {
                int64_t now = pc_time_mono_ns();
                if (now - c->held_since >= c->hold_ns + COPY_WAIT_NS)
                    restart_done_locked(c, SQLITE_BUSY, c->epoch); /* the reads go in */
                else if (c->commits == c->handed_at && now - c->handed_ns >= IDLE_NS)
                    restart_idle_locked(c);
            } else if (c->held_since && c->drain == DRAIN_NONE) {
                gate_step_locked(c);
            }
        }
        if (c->stopping) break;
        if (c->drain == DRAIN_COPY) {
            copy_drained_locked(c);
            continue;
        }
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
    pc_cond_init_mono(&c->cv);
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
