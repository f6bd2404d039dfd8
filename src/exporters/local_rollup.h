/*
 * local_rollup.h - the embedded store's hour bookkeeping for the stats
 * rollups: which hours a write changed, and building them again.
 *
 * Where it sits: inside the writer (local_store.h's pc_local_writer), on the
 * writer thread only. local_txn.c reports each span a transaction inserted
 * and each stored trace it adds spans to, and flushes the hours before the
 * commit; retention marks the hours of the spans it deletes; local.c's
 * writer loop builds one quiet hour at a time when no batch waits
 * (pc_local_stats_build in local_stats.c computes it). The tables and their
 * invariants are local_schema.c's (stats_hours, stats_rollup).
 */
#ifndef PC_LOCAL_ROLLUP_H
#define PC_LOCAL_ROLLUP_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_local_rollup {
    sqlite3 *db;
    sqlite3_stmt *touch;  /* an hour written: built = 0, dirty_ns */
    sqlite3_stmt *firsts; /* the hours of a stored trace's first span of each group */
    sqlite3_stmt *purge;  /* the hours of the expired traces' spans, touched */
    sqlite3_stmt *next;   /* the newest hour to build */
    sqlite3_stmt *built, *drop;
    int64_t *hours; /* hours this transaction wrote (duplicates removed at flush) */
    size_t n, cap;
    int64_t limit_ns;    /* longest one hour's build may take (monotonic) */
    int64_t deadline_ns; /* of the build running */
    int64_t last_hour;   /* the hour the last pc_local_rollup_build looked at */
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

/* pc_local_rollup_build's answers besides 0 (none due) and 1 (built). */
#define PC_ROLLUP_SLOW 2 /* past limit_ns: deferred by PC_ROLLUP_DEFER_NS */
#define PC_ROLLUP_DEFER_NS (600LL * 1000000000LL)

/*
 * Builds the newest hour written no later than |quiet_ns| (wall clock) and not
 * built since, in its own transaction (r->last_hour says which). 1 when it
 * built one, 0 when none is due; PC_ROLLUP_SLOW when the build ran past
 * r->limit_ns (long traces overlapping the hour make it read their spans):
 * rolled back, the hour left to the reads' span path and not tried again for
 * PC_ROLLUP_DEFER_NS unless written again, so one tenant's data cannot hold
 * the writer; -1 on failure (the caller logs; the hour stays unbuilt, so
 * reads stay right).
 */
int pc_local_rollup_build(pc_local_rollup *r, int64_t quiet_ns);

#endif
