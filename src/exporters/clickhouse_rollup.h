/*
 * clickhouse_rollup.h - the write side of the `clickhouse` store's hour
 * rollups (tables and reads: clickhouse_stats.h): the hours an insert marks,
 * and the builder thread.
 *
 * Data flow: clickhouse.c's consume() turns each batch into mark rows
 * (pc_ch_rollup_marks) beside its span rows; the flusher stores an insert's
 * marks BEFORE its spans, so an hour's latest mark precedes, by at most the
 * insert's duration, every span that changed it. The builder (one thread per
 * exporter) wakes every period, asks which hours are due (marked, settled,
 * no settled build) and builds each, newest first, by one INSERT ... SELECT
 * on the server (pc_ch_sql_rollup_build): no rows travel.
 *
 * Which hours an insert marks, each with the span's trace id: for each span,
 * every hour from its start's to its end's (at most PC_CH_MARK_HOURS). Its
 * own hour, since its figures
 * change there; the hours its duration covers, since a span arriving after
 * spans of its trace that start later (a parent exported after its
 * children) may move the trace's first span of a group out of their hour:
 * that hour must be built again. A span is exported once it ended, so any
 * later-starting span of its trace that was already built into an hour
 * (written at least `rollup_settle` before the build) started before this
 * span ended, within the covered hours, as long as spans reach the collector
 * within `rollup_settle` of their end. A trace whose spans arrive further
 * apart than that (a replay of old data split across inserts) may be
 * counted in two hours until one of them is written again.
 *
 * Several collectors may build the same hour at once: each build is a
 * version of its own, read whole (clickhouse_stats.h), so the duplicate
 * costs work, never a wrong answer.
 */
#ifndef PC_CLICKHOUSE_ROLLUP_H
#define PC_CLICKHOUSE_ROLLUP_H

#include "clickhouse_http.h"
#include "clickhouse_rows.h"
#include "span.h"

/* The most hours one span marks (a week). */
#define PC_CH_MARK_HOURS 168

/* The stats_marks rows of the spans of |b| (carriers mark nothing): one per
 * distinct (hour, trace id), appended to |marks|. */
void pc_ch_rollup_marks(const pc_batch *b, pc_ch_rows *marks);

/* INSERT INTO stats_marks (hour) FORMAT JSONEachRow into |out|. */
void pc_ch_insert_marks(pc_buf *out, const char *db);

typedef struct pc_ch_rollup pc_ch_rollup;

/*
 * Starts the builder of database |db| through |http| (borrowed: both outlive
 * it): every |period_ms| it builds the due hours of |settle_s|, each build
 * bounded by |timeout_ms| on the server. An hour whose build failed is not
 * tried again for ten periods (logged). NULL when the thread cannot start.
 */
pc_ch_rollup *pc_ch_rollup_create(pc_ch_http *http, const char *id, const char *db,
                                  long settle_s, long period_ms, long timeout_ms);
/* Stops the builder (a build under way finishes or times out first). NULL-safe. */
void pc_ch_rollup_destroy(pc_ch_rollup *r);

#endif
