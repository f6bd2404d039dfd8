/*
 * local_rollup.h - the embedded store's hour bookkeeping for the stats
 * rollups: which hours a write changed, and building them again.
 *
 * Where it sits: inside the writer (local_store.h's pc_local_writer), on the
 * writer thread only. local_txn.c reports each span a transaction inserted
 * and each stored trace it adds spans to, and flushes the hours before the
 * commit; retention marks the hours of the spans it deletes. Building an
 * hour again (pc_local_rollup_build, on any connection) is the builder
 * thread's (local_builder.h), and the writer's for pc_local_build_rollups
 * (local_stats.c gathers and stores the figures). The tables and their
 * invariants are local_schema.c's (stats_hours, stats_rollup).
 */
#ifndef PC_LOCAL_ROLLUP_H
#define PC_LOCAL_ROLLUP_H

#include "local_stats.h"

typedef struct pc_local_reader pc_local_reader; /* local_store.h */

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_local_rollup {
    sqlite3 *db;
    sqlite3_stmt *touch;  /* an hour written: built = 0, dirty_ns */
    sqlite3_stmt *firsts; /* the hours of a stored trace's first span of each group */
    sqlite3_stmt *purge;  /* the hours of the expired traces' spans, touched */
    int64_t *hours; /* hours this transaction wrote (duplicates removed at flush) */
    size_t n, cap;
} pc_local_rollup;

/* Prepares the statements on the writer connection |db|; |expired_sql| is
 * retention's SELECT of the expired tids, taking ?1 = the cutoff. 0 / -1
 * after logging. */
int pc_local_rollup_init(pc_local_rollup *r, const char *id, sqlite3 *db, const char *expired_sql);
void pc_local_rollup_fini(pc_local_rollup *r);

/* A span starting at |start_ns| was inserted in this transaction. */
void pc_local_rollup_span(pc_local_rollup *r, int64_t start_ns);

/* Before spans are added to the stored trace |tid|: the hours of its first
 * span of each rolled-up group, which a new earlier span would move.
 * SQLite code. */
int pc_local_rollup_stored(pc_local_rollup *r, int64_t tid);

/* Marks the hours reported since the last flush as written at wall-clock
 * |now_ns| (not built); inside the writer's transaction. SQLite code. */
int pc_local_rollup_flush(pc_local_rollup *r, int64_t now_ns);

/* Inside a retention transaction, before the spans are deleted: marks the
 * hours of the spans of the traces expired at |cutoff_ns| (init's
 * |expired_sql|) as written at |now_ns|. SQLite code. */
int pc_local_rollup_purge(pc_local_rollup *r, int64_t cutoff_ns, int64_t now_ns);

/* pc_local_rollup_build's answers besides 0 (none due), 1 (built) and -1. */
#define PC_ROLLUP_SLOW 2  /* past the limit: deferred by PC_ROLLUP_DEFER_NS */
#define PC_ROLLUP_STALE 3 /* the hour was written while it was gathered: left unbuilt */
#define PC_ROLLUP_YIELD 4 /* a restart held reads back: the gather gave way, try again soon */
#define PC_ROLLUP_DEFER_NS (600LL * 1000000000LL)

/* An hour being built: gathered by pc_local_rollup_gather, stored (and
 * freed) by pc_local_rollup_store. */
typedef struct pc_local_rollup_job {
    int64_t hour;          /* start_ns / 1 h */
    int64_t mark;          /* its stats_hours.dirty_ns when gathered */
    pc_local_hour *figures; /* local_stats.h */
} pc_local_rollup_job;

/*
 * An hour's build, in two transactions on |db| (any read-write connection to
 * the store, no transaction open), so that the span writer never waits for a
 * gather:
 * 1. pc_local_rollup_gather, a read transaction: the newest hour written no
 *    later than |quiet_ns| (wall clock) and not built since, its mark (the
 *    dirty_ns of the last write that touched it) and its figures from its
 *    spans (local_stats.h), stopped past |limit_ns| (long traces overlapping
 *    the hour make it read their spans). With |gate| (the store's read
 *    pool; NULL: none) it is a read in flight like a query's, and it gives way
 *    to a restart that holds reads back (local_checkpoint.h): it stops and
 *    returns PC_ROLLUP_YIELD, so a long gather never keeps the log from
 *    starting over. 1 with |job| filled; 0 when none is
 *    due; PC_ROLLUP_SLOW past the limit (the hour left to the reads' span
 *    path and not tried again for PC_ROLLUP_DEFER_NS unless written again,
 *    so one tenant's data cannot hold the builder); -1 on failure (the
 *    caller logs sqlite3_errmsg; the hour stays unbuilt, so reads stay right).
 * 2. pc_local_rollup_store, a short write transaction: the figures stored and
 *    built = 1, only if the hour still has the mark and built = 0. Every
 *    write that can change the hour's figures sets a new mark in its own
 *    transaction (the wall clock in ns at its commit), so an unchanged mark
 *    means the figures are the spans' now. 1 when stored; PC_ROLLUP_STALE when
 *    the hour was written or built since step 1 (left as it is: a written
 *    hour comes due again once quiet); -1 on failure. Frees the figures.
 * pc_local_rollup_build runs both (*|hour| says which hour it looked at).
 */
int pc_local_rollup_gather(sqlite3 *db, int64_t quiet_ns, int64_t limit_ns, pc_local_reader *gate,
                           pc_local_rollup_job *job);
int pc_local_rollup_store(sqlite3 *db, pc_local_rollup_job *job);
int pc_local_rollup_build(sqlite3 *db, int64_t quiet_ns, int64_t limit_ns, pc_local_reader *gate,
                          int64_t *hour);

#endif
