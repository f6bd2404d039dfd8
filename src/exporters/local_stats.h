/*
 * local_stats.h - the embedded store's aggregates (local_stats.c): the
 * store.h stats read, the same read from the spans alone (the reference the
 * tests compare against), and the building of one hour's rollups.
 *
 * Where it sits: pc_local_stats and pc_local_stats_spans run on a pooled
 * read connection (local_store.c's ops); pc_local_stats_build runs on the
 * writer connection, from local_rollup.c.
 */
#ifndef PC_LOCAL_STATS_H
#define PC_LOCAL_STATS_H

#include "store.h"

#include <sqlite3.h>
#include <stdint.h>

/* store.h's stats over a pc_local_reader: built hours from stats_rollup, the
 * rest from the spans. */
int pc_local_stats(void *ctx, const pc_stats_query *q, pc_stats_cb cb, void *ud);

/* The same answer from the spans alone, every hour gathered (tests). */
int pc_local_stats_spans(void *ctx, const pc_stats_query *q, pc_stats_cb cb, void *ud);

/*
 * Replaces the rollups of hour |hour| (hour number: start_ns / 1 h) with the
 * figures of its spans now, inside the caller's write transaction; *|spans|
 * gets the hour's span count. SQLite code (SQLITE_OK).
 */
int pc_local_stats_build(sqlite3 *db, int64_t hour, int64_t *spans);

#endif
