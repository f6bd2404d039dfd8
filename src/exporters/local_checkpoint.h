/*
 * local_checkpoint.h - the embedded store's checkpointer: a thread with its
 * own connection that copies one database file's write-ahead log back into
 * the file, so the thread that writes it never does.
 *
 * Data flow: the writing connection (the span writer's prela.db, the index
 * thread's prela-search.db) commits → its WAL hook (installed here) counts
 * the log's frames and wakes this thread → a PASSIVE checkpoint from this
 * thread's connection copies the new frames into the database file and
 * syncs it, while the writer goes on appending to the log.
 *
 * Why a thread: a checkpoint reads the log, writes its pages at their places
 * in the file and fsyncs the file. Done in the commit's hook (as before), the
 * writer did all of that between two transactions (at 3 million spans
 * stored, its pages spread over the whole file, the checkpoints' fsyncs
 * alone were 12 % of the collector's CPU samples), and the requests waiting
 * for the next commit waited for them too.
 *
 * Policy:
 * - PASSIVE: the thread checkpoints once |step_pages| frames were added
 *   since its last checkpoint copied the log.
 * - Starting the log over: only the writing connection (the file's one
 *   writer) can, and only when every frame is copied and no reader still
 *   reads old ones. It does so by itself at its next transaction when a
 *   checkpoint happened to copy everything. Else, once the log holds
 *   |restart_pages| frames, the hook runs a RESTART checkpoint from the
 *   committing connection: it copies the rest (about one step), waits at
 *   most PC_LOCAL_RESTART_WAIT_MS for readers of old frames, and starts the
 *   log over even while reads run (PASSIVE ones alone never let it: the log
 *   grew to 800 MB). When readers keep it from finishing, the writer tries
 *   again once another step of frames is in the log.
 * - With a gate (the store's read pool, pc_local_gate), a due restart first
 *   holds new reads back, and the writer goes on committing while the reads
 *   in flight end. (Beside 8 query clients, a RESTART waited for readers at
 *   four commits in five, 100 ms each: a fifth of the writer's time;
 *   bench/README, "restarts behind a gate".) The thread watches them. Once
 *   none is left, it copies the log, which no reader holds back now, while
 *   the writer goes on, and leaves the RESTART to the writer's next commit.
 *   That commit then finds only what it wrote meanwhile to copy (2-18 ms,
 *   against 87-139 ms when the RESTART copied what the readers had kept from
 *   the thread). The hold ends with it.
 * - Reads wait at most PC_LOCAL_RESTART_WAIT_MS from the hold for the reads
 *   in flight; then they go in again and the restart counts as busy. Each
 *   hold that reads outlast doubles the next one's length, up to the gate's
 *   longest read and a wait more. So reads that each outlast a short hold
 *   (searches of 0.7 s beside ingest let the log grow to 583 MB) hold the
 *   log back for a few holds, not until they stop; the log starting over
 *   makes the next hold short again.
 *
 * So the log stays near |restart_pages| pages, beyond it only by what the
 * writer commits during a few holds that grow to the longest read; the
 * writer's journal_size_limit truncates the file back after a restart.
 *
 * Durability is the writer's: a commit is durable once it is in the log
 * (synchronous FULL or NORMAL as configured); a checkpoint only moves it.
 */
#ifndef PC_LOCAL_CHECKPOINT_H
#define PC_LOCAL_CHECKPOINT_H

#include <sqlite3.h>
#include <stdint.h>

typedef struct pc_local_checkpoint pc_local_checkpoint;

/* The store's thresholds, in pages of 4 KiB: 4 MiB and 64 MiB (bench/README, "checkpoints
 * on a thread of their own": steps of 8 MiB gave about the same rate, a longer p99). */
#define PC_LOCAL_CHECKPOINT_PAGES 1024
#define PC_LOCAL_RESTART_PAGES 16384
/* Longest a RESTART checkpoint waits for readers (the writer waits with it). */
#define PC_LOCAL_RESTART_WAIT_MS 100

/*
 * Opens a connection of its own to |path|, the file |writer| (a WAL
 * connection, pc_local_db_open) writes, replaces |writer|'s WAL hook with
 * this module's and starts the thread. |gate| (copied; NULL: none) holds the
 * file's readers back for a restart. Returns NULL after logging as |id|
 * (borrowed; |writer| is then left without a hook, so nothing checkpoints
 * it until it closes). |writer| must outlive the checkpointer.
 */
/*
 * The readers' side of a restart (optional): |hold| asks the reads that
 * begin from now on to wait until |until_ns| (pc_time_mono_ns) at most and
 * returns how many are in flight; |in_flight| counts them again; |release|
 * ends this hold. Called under the checkpointer's lock, from the writer's
 * thread or the checkpointer's own: they must not call back into it.
 * |longest_read_ns|: no read stays in flight longer (the reads' time limit);
 * holds grow up to it and a wait more.
 */
typedef struct pc_local_gate {
    int (*hold)(void *ud, int64_t until_ns);
    int (*in_flight)(void *ud);
    void (*release)(void *ud);
    void *ud;
    int64_t longest_read_ns;
} pc_local_gate;

pc_local_checkpoint *pc_local_checkpoint_create(const char *id, const char *path, sqlite3 *writer,
                                                int step_pages, int restart_pages,
                                                const pc_local_gate *gate);

/* Stops the thread (after the checkpoint under way, if any), removes the
 * hook from the writer connection and closes this module's connection. Call
 * when no transaction of the writer runs. Accepts NULL. */
void pc_local_checkpoint_destroy(pc_local_checkpoint *c);

/* What the thread did so far (tests, benchmarks). */
typedef struct pc_local_checkpoint_stats {
    int64_t passive;  /* the thread's PASSIVE checkpoints */
    int64_t restarts; /* the writer's RESTART checkpoints that started the log over */
    int64_t busy;     /* restarts readers (or an error) kept from starting the log over */
    int64_t held;     /* restarts that held the gate's reads back first */
    int64_t started_over; /* times the log began again (those restarts and the writer's own) */
    int max_frames;   /* the most frames the log held at a commit */
    int64_t longest_hold_ns; /* the longest a hold was allowed to last */
    int restart_copied; /* the most frames a committing connection's RESTART found uncopied */
} pc_local_checkpoint_stats;

void pc_local_checkpoint_get_stats(pc_local_checkpoint *c, pc_local_checkpoint_stats *out);

#endif
