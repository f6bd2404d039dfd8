/*
 * local_builder.h - the embedded store's rollup builder: a thread with its
 * own connection that builds the stats rollups of quiet hours, so the span
 * writer never spends its time on them.
 *
 * Data flow: the writer's transactions mark the hours they touch and do not
 * keep themselves (older than rollup_live, or not built: local_rollup.h) →
 * this thread, once an hour has been quiet for
 * rollup_quiet, gathers its figures from its spans in a read transaction
 * (pc_local_rollup_gather) → the span writer stores them in a short write
 * one (pc_local_rollup_store, through |store| below) → the stats reads
 * (local_stats.c) take built hours from stats_rollup.
 *
 * Why a thread: on the writer's thread a build held every waiting batch for
 * its whole gather. Under sustained ingest an hour holds more spans than a
 * build can read within rollup_build_limit (about 0.85 s per 300,000 spans),
 * so every try ran to the limit and gave up: the writer stopped for 2 s at
 * each try (bench/README, "rollups built beside the writer").
 *
 * Policy: the thread runs at PC_LOCAL_BUILDER_NICE nice(1) steps below the
 * collector (as the query threads by default), so ingest keeps its cores.
 * While the writer commits, the next build waits (ROLLUP_SHARE - 1) times
 * the last one's CPU time, so builds take at most a tenth of a core; once
 * writes stop, builds follow one another. It looks for a due hour every
 * second when none was due. A gather gives way to a restart of the log that
 * holds reads back (local_checkpoint.h) and is tried again 200 ms later.
 * The gathered hour is stored by the span writer, on its connection between
 * two of its transactions (|store| below); so is the deferral of an hour
 * whose gather ran past its limit. The thread's connection never writes
 * (query_only): it takes no write lock and adds nothing to the log.
 *
 * Why CPU time and the writer's store: beside live ingest a build's wall
 * time is mostly waiting. A store on this thread's own connection waited
 * up to 3 s for the write lock, which the writer holds nearly all the time
 * (SQLite's busy handler polls with growing sleeps), against 10-50 ms for
 * the gather; and the wait took 9 times that wall time, so a backfill's 684
 * hours were built at about 10 in 40 s (now about 210; bench/README).
 */
#ifndef PC_LOCAL_BUILDER_H
#define PC_LOCAL_BUILDER_H

#include "local_store.h"

#include <stdint.h>

#define PC_LOCAL_BUILDER_NICE 10 /* the thread's nice(1) steps below the collector */

typedef struct pc_local_builder pc_local_builder;

/* Stores the gathered (or deferred) hour |job| on the span writer's
 * connection, as pc_local_rollup_store does (its answers; the figures freed
 * either way), and waits for it; PC_ROLLUP_YIELD when the writer stops
 * first (nothing stored, nothing to log). */
typedef int (*pc_local_builder_store)(void *ctx, pc_local_rollup_job *job);

/*
 * Opens a read-only connection of its own to the store at |path| (its schema
 * already set up by the writer) and starts the thread, which builds hours
 * written no later than |quiet_ms| ago, each within |limit_ms|; its gathers
 * are reads of the pool |gate| (borrowed: they wait for and give way to a
 * restart of the log, local_rollup.h); it hands each gathered or deferred
 * hour to |store| (with |store_ctx|). NULL after logging as |id| (borrowed).
 * Destroy the builder before |gate|.
 */
pc_local_builder *pc_local_builder_create(const char *id, const char *path, pc_local_reader *gate,
                                          int64_t quiet_ms, int64_t limit_ms,
                                          pc_local_builder_store store, void *store_ctx);

/* The writer committed a transaction (builds yield while writes come). Any thread. */
void pc_local_builder_wrote(pc_local_builder *b);

/* Stops the thread after the build under way, if any, and closes its
 * connection. Accepts NULL. */
void pc_local_builder_destroy(pc_local_builder *b);

#endif
