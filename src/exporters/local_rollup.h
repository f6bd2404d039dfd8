/*
 * local_rollup.h - the embedded store's stats rollups kept by its writes:
 * each write's figures added to (or retention's taken from) the rollups of
 * the hours they fall in, in the same transaction, and building an hour
 * from its spans for the hours that are not kept that way.
 *
 * Where it sits: inside the writer (local_store.h's pc_local_writer), on the
 * writer thread only. local_txn.c reports each trace a transaction writes
 * spans to and each span it inserts, and flushes before the commit;
 * retention reports the traces it deletes. Building an hour is the builder
 * thread's (local_builder.h: pc_local_rollup_gather on its own connection,
 * then pc_local_rollup_store on the writer's, between two of its
 * transactions), and the writer's alone for pc_local_build_rollups
 * (pc_local_rollup_build: both steps; local_stats.c gathers and stores the
 * figures). The tables and their invariants are local_schema.c's
 * (stats_hours, stats_rollup).
 *
 * The deltas: every figure adds up over spans (local_stats.c), and a
 * trace counts in the hour of its first span of each group, so a write's
 * figures are the sum of its spans' (each span in its hour and groups) plus
 * the trace moves: +1 where a trace's group begins now (a group new to the
 * trace, or a span earlier than its first one), -1 where it began before.
 * A flush adds them to every live hour (one starting no more than
 * |live_ns|, rollup_live, before the wall clock, or later) whose stats_hours
 * row says built, and creates new live hours built; any other hour it
 * writes (older: a backfill; not built: a store from before this, or an
 * hour whose rollups did not take a delta) is marked written instead
 * (built = 0, dirty_ns) and left to the builder. Retention takes the
 * figures of the traces it deletes from every built hour the same way, and
 * drops an hour left without spans. So an hour taking live traffic stays
 * built however busy it is, and a backfill, whose transactions each touch
 * many hours, costs the writer one mark per hour instead of a
 * read-modify-write of each hour's rows (on the query-scale load in random
 * order, keeping every hour took 80 % more writer CPU; bench/README.md).
 */
#ifndef PC_LOCAL_ROLLUP_H
#define PC_LOCAL_ROLLUP_H

#include "local_cells.h"
#include "local_stats.h"
#include "span.h"

typedef struct pc_local_reader pc_local_reader; /* local_store.h */

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* A kind's group value and hour of the last span counted, and where. */
typedef struct pc_local_rollup_last {
    bool valid;
    const char *v; /* the value's bytes (the span's, alive while its trace is written) */
    size_t n;
    int64_t bucket;
    size_t group, cell;
} pc_local_rollup_last;

/*
 * The groups of traces grown to PC_ROLLUP_KNOWN_SPANS stored spans or more,
 * and where each began, kept so that a trace written in many transactions
 * is not read again at each one: reading a stored trace's groups costs its
 * size, so a trace of 100,000 spans sent in 1,000 requests read 50M rows
 * (40 s of the writer's CPU; bench/README.md). Exact: what the read would
 * find, counting the spans inserted since (the writer is the only one to
 * write spans; a duplicate inserts nothing). Forgotten whole when a
 * transaction fails (its rollback) and at retention (a deleted trace's tid
 * can come back). A tid's entry lives in one set of PC_ROLLUP_KNOWN_WAYS
 * slots, the least recently used replaced; all entries together hold at
 * most PC_ROLLUP_KNOWN_BYTES of groups, the least recently used dropped
 * past it. Not kept, so read each time: a trace whose groups alone take
 * more (above 10,000 distinct models or services of 80 bytes), and big
 * traces past the PC_ROLLUP_KNOWN at a time the sets hold.
 */
#define PC_ROLLUP_KNOWN 256
#define PC_ROLLUP_KNOWN_WAYS 8
#define PC_ROLLUP_KNOWN_SPANS 256
#define PC_ROLLUP_KNOWN_BYTES (1 << 20)
#define PC_ROLLUP_KNOWN_HEAD (1 + 8 + 4)
typedef struct pc_local_known {
    int64_t tid;   /* 0: empty */
    int64_t spans; /* its stored spans */
    uint64_t used; /* the rollup's tick at its last use */
    pc_buf groups; /* per group: kind (1 byte), first start (8), key length n (4): the
                    * PC_ROLLUP_KNOWN_HEAD bytes; then the key (n) */
} pc_local_known;

typedef struct pc_local_rollup {
    sqlite3 *db;
    const char *id;
    int64_t live_ns;
    sqlite3_stmt *stored;  /* ?1 tid: its spans' starts and groups */
    sqlite3_stmt *expired; /* ?1 cutoff: the spans of retention's traces (gather columns) */
    sqlite3_stmt *hour_get, *hour_new, *touch, *hour_left, *hour_drop;
    sqlite3_stmt *row_get, *row_put, *row_del;
    /* the deltas since the last flush, per kind: (hour's first ns,
     * "project\0value") → figures (traces may be negative) */
    pc_cells acc[PC_ROLLUP_KINDS];
    /* the trace being written: its groups (kind, "project\0value") and the
     * first start among its stored spans and among its new ones */
    pc_keys groups;
    int64_t *old_first, *new_first;
    size_t groups_cap;
    /* per kind, the group and cell the last span counted in (spans of a
     * trace mostly repeat them): valid until the trace or the deltas change */
    pc_local_rollup_last last[PC_ROLLUP_KINDS];
    int64_t tid;        /* the trace being written */
    int64_t spans;      /* its stored spans, then with those inserted since */
    pc_local_known known[PC_ROLLUP_KNOWN];
    size_t known_bytes; /* their groups' */
    uint64_t tick;
    int64_t scanned;    /* stored spans read for their groups, ever (test hook's) */
    size_t project_len; /* the project's bytes in |key| */
    pc_buf key;         /* scratch: "project\0value" */
    pc_buf bins;        /* scratch: a row's stored bins */
} pc_local_rollup;

/* Prepares the statements on the writer connection |db|; |expired_sql| is
 * retention's SELECT of the expired tids, taking ?1 = the cutoff; |live_ns|:
 * how far before the wall clock an hour may start and still be kept by the
 * writes (see above). 0 / -1 after logging. */
int pc_local_rollup_init(pc_local_rollup *r, const char *id, sqlite3 *db, const char *expired_sql,
                         int64_t live_ns);
void pc_local_rollup_fini(pc_local_rollup *r);

/* Forgets the deltas (a transaction begins; the last one may have failed). */
void pc_local_rollup_reset(pc_local_rollup *r);

/* Forgets the known traces (a transaction failed). */
void pc_local_rollup_forget(pc_local_rollup *r);

/* Spans are about to be added to the trace |tid| of |project|, |stored|
 * or new in this transaction: before the first is inserted, its stored
 * spans' groups are read (or known, above). SQLite code. */
int pc_local_rollup_trace(pc_local_rollup *r, pc_str project, int64_t tid, bool stored);

/* |s| was inserted into the trace of the last pc_local_rollup_trace. */
void pc_local_rollup_span(pc_local_rollup *r, const pc_span *s);

/* The trace's spans are written: its trace moves become deltas. */
void pc_local_rollup_trace_end(pc_local_rollup *r);

/* Applies the deltas since the last reset to the hours' rollups (see above)
 * at wall-clock |now_ns|, inside the writer's transaction, and forgets them.
 * SQLite code. */
int pc_local_rollup_flush(pc_local_rollup *r, int64_t now_ns);

/* Inside a retention transaction, before the spans are deleted: takes the
 * figures of the traces expired at |cutoff_ns| (init's |expired_sql|) from
 * their hours (at wall-clock |now_ns|). SQLite code. */
int pc_local_rollup_purge(pc_local_rollup *r, int64_t cutoff_ns, int64_t now_ns);

/* pc_local_rollup_build's answers besides 0 (none due), 1 (built) and -1. */
#define PC_ROLLUP_SLOW 2  /* past the limit: deferred by PC_ROLLUP_DEFER_NS */
#define PC_ROLLUP_STALE 3 /* the hour was written while it was gathered: left unbuilt */
#define PC_ROLLUP_YIELD 4 /* a restart held reads back: the gather gave way, try again soon */
#define PC_ROLLUP_DEFER_NS (600LL * 1000000000LL)

/*
 * The hours whose last builds were abandoned (PC_ROLLUP_SLOW), and how many
 * times in a row: each abandonment doubles the next try's limit, up to
 * 2^PC_ROLLUP_GROW_MAX times the configured one, so an hour too big for it
 * (a backfill of more than about 700,000 spans into an old hour, at the 2 s
 * default) is built once it is quiet, a few tries later, instead of never.
 * The builder's, in memory (a restart begins again at the configured limit);
 * at most PC_ROLLUP_SLOW_HOURS hours, the oldest entry forgotten past that.
 * Zero-initialize.
 */
#define PC_ROLLUP_SLOW_HOURS 64
#define PC_ROLLUP_GROW_MAX 6
typedef struct pc_local_slow {
    int64_t hour[PC_ROLLUP_SLOW_HOURS];
    int tries[PC_ROLLUP_SLOW_HOURS];
    size_t n;
} pc_local_slow;

/* An hour being built: gathered by pc_local_rollup_gather, stored (and
 * freed) by pc_local_rollup_store. A gather past its limit leaves no
 * figures, and its store defers the hour instead. */
typedef struct pc_local_rollup_job {
    int64_t hour;           /* start_ns / 1 h */
    int64_t mark;           /* its stats_hours.dirty_ns when gathered */
    pc_local_hour *figures; /* local_stats.h; NULL when deferred */
    int64_t defer_ns;       /* 0, or the wall clock before which a deferred hour is not due */
} pc_local_rollup_job;

/*
 * An hour's build, in two transactions on |db| (any read-write connection to
 * the store, no transaction open), so that the span writer never waits for a
 * gather:
 * 1. pc_local_rollup_gather, a read transaction: the newest hour written no
 *    later than |quiet_ns| (wall clock) and not built since, its mark (the
 *    dirty_ns of the last write that touched it) and its figures from its
 *    spans (local_stats.h), stopped past |limit_ns| (long traces overlapping
 *    the hour make it read their spans), or past the longer limit |slow|
 *    (NULL: none) holds for that hour, which it keeps. With |gate| (the store's read
 *    pool; NULL: none) it is a read in flight like a query's, and it gives way
 *    to a restart that holds reads back (local_checkpoint.h): it stops and
 *    returns PC_ROLLUP_YIELD, so a long gather never keeps the log from
 *    starting over. It never writes. 1 with |job| filled; 0 when none is
 *    due; PC_ROLLUP_SLOW past the limit, with |job| naming the hour and its
 *    deferral (the hour is left to the reads' span path and, once the store
 *    deferred it, not tried again for PC_ROLLUP_DEFER_NS unless written
 *    again, so one tenant's data cannot hold the builder); -1 on failure
 *    (the caller logs sqlite3_errmsg; the hour stays unbuilt, so reads stay
 *    right).
 * 2. pc_local_rollup_store, a short write transaction: the figures stored and
 *    built = 1, only if the hour still has the mark and built = 0. Every
 *    write that can change the hour's figures sets a new mark in its own
 *    transaction (the wall clock in ns at its commit), so an unchanged mark
 *    means the figures are the spans' now. 1 when stored; PC_ROLLUP_STALE when
 *    the hour was written or built since step 1 (left as it is: a written
 *    hour comes due again once quiet); for a job gathered past its limit,
 *    the hour deferred under the same condition and PC_ROLLUP_SLOW; -1 on
 *    failure. Frees the figures.
 * pc_local_rollup_build runs both (*|hour| says which hour it looked at).
 */
int pc_local_rollup_gather(sqlite3 *db, int64_t quiet_ns, int64_t limit_ns, pc_local_reader *gate,
                           pc_local_slow *slow, pc_local_rollup_job *job);
int pc_local_rollup_store(sqlite3 *db, pc_local_rollup_job *job);
int pc_local_rollup_build(sqlite3 *db, int64_t quiet_ns, int64_t limit_ns, pc_local_reader *gate,
                          pc_local_slow *slow, int64_t *hour);

#endif
