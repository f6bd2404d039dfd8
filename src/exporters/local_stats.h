/*
 * local_stats.h - the embedded store's aggregates (local_stats.c): the
 * store.h stats read, the same read from the spans alone (the reference the
 * tests compare against), and the building of one hour's rollups.
 *
 * Where it sits: pc_local_stats and pc_local_stats_spans run on a pooled
 * read connection (local_store.c's ops); an hour's rollups are gathered in
 * a read transaction and stored in a write one, by local_rollup.c.
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

/* One hour's rollup figures, gathered (pc_local_stats_gather_hour). */
typedef struct pc_local_hour pc_local_hour;

/*
 * Gathers the rollup figures of hour |hour| (hour number: start_ns / 1 h)
 * from its spans, in the caller's transaction (a read one will do: the
 * figures are those of its snapshot). *|out| gets them (free with
 * pc_local_stats_hour_free), or NULL. SQLite code (SQLITE_OK).
 */
int pc_local_stats_gather_hour(sqlite3 *db, int64_t hour, pc_local_hour **out);

/* Replaces the rollups of |h|'s hour with its figures, inside the caller's
 * write transaction; *|spans| gets the hour's span count. SQLite code. */
int pc_local_stats_store_hour(sqlite3 *db, pc_local_hour *h, int64_t *spans);

void pc_local_stats_hour_free(pc_local_hour *h);

#endif
