/*
 * clickhouse_stats.h - the aggregates of the `clickhouse` store (store.h's
 * stats op: GET /api/v1/stats and /api/v1/models), from the spans and from
 * hour rollups, and the SQL of the rollup tables (schema 6).
 *
 * Data flow, read side: the query receiver → clickhouse_store.c's stats op →
 * pc_ch_stats_read: which hours of the window are built (stats_marks against
 * stats_rollup), the figures of the rest from the spans
 * (pc_ch_sql_stats_spans) and of the built hours from stats_rollup
 * (pc_ch_sql_stats_rollups), merged per (bucket, group) in C (local_cells.h,
 * the embedded store's cells: both stores compute percentiles from the same
 * bins). Write side: clickhouse_rollup.c marks the hours each insert writes
 * (stats_marks) and builds the rollups of settled hours
 * (pc_ch_sql_rollup_due, pc_ch_sql_rollup_build).
 *
 * Tables (both dialects; PARTITION BY the month of the hour, as the spans,
 * so an operator drops a month of all of them alike; modern: TTL 90 days):
 *   stats_marks   (hour UInt32, trace_id String, written_at DateTime
 *                 DEFAULT now()) ReplacingMergeTree(written_at) ORDER BY
 *                 (hour, trace_id): before an insert stores its spans, one
 *                 row per hour and trace the insert can change
 *                 (clickhouse_rollup.h says which), stamped by the server's
 *                 clock. The latest written_at of an hour is when it last
 *                 changed, at most the insert's duration before its spans
 *                 became visible. An hour without a row holds no span, and
 *                 a trace has a row for the hour of each of its spans' start
 *                 (in any project: the id alone): the figures of a range
 *                 read those traces' spans.
 *   stats_rollup  (hour UInt32, version UInt64, kind UInt8, project_id, grp,
 *                 spans, traces, errors, input_tokens, output_tokens, cost,
 *                 priced, unpriced, bins Array(UInt16), counts Array(UInt64))
 *                 MergeTree ORDER BY (hour, kind, project_id, grp, version):
 *                 one build of an hour is the rows of one
 *                 version = (server seconds when the build began) << 20 | a
 *                 random 20 bits, the figures of that hour's spans per
 *                 project and group, kinds as the embedded store's: 0 none,
 *                 1 model, 2 service, 3 span type; then, once all of them
 *                 are stored, one row of kind 255 (PC_CH_ROLLUP_DONE) that
 *                 completes the build (an INSERT ... SELECT that fails may
 *                 have stored some of its blocks). A build is read only
 *                 whole (its version, completed) and only while it is
 *                 settled: began at least `rollup_settle` after the hour's
 *                 latest mark (the build then saw every insert marked before
 *                 it began). Older builds stay (never read; a replacing
 *                 engine could let a failed build's rows replace a complete
 *                 one's): an hour holds its groups' rows once per build, and
 *                 an hour is built again only when written after it settled.
 *
 * Safety: caller text reaches SQL only through pc_ch_quote (clickhouse_sql.h).
 */
#ifndef PC_CLICKHOUSE_STATS_H
#define PC_CLICKHOUSE_STATS_H

#include "buf.h"
#include "clickhouse_sql.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define PC_CH_HOUR_NS 3600000000000LL

struct pc_ch_store;

/* The hour number (start_ns / 1 h) of |ns|, clamped to the tables' UInt32
 * hour column: what stats_marks and stats_rollup key a time by. */
uint32_t pc_ch_hour_of(int64_t ns);

/* A range of span starts, [lo, hi). */
typedef struct pc_ch_range {
    int64_t lo, hi;
} pc_ch_range;

/* CREATE TABLE IF NOT EXISTS for stats_marks (|marks|) or stats_rollup. */
void pc_ch_sql_stats_table(pc_buf *out, pc_ch_dialect d, const char *db, bool marks);

/*
 * The figures of |q| from the spans starting in the |n| ranges |r| (sorted,
 * disjoint, inside q's window): PC_CH_STATS_SPAN_COLS columns bucket, group,
 * spans, traces, errors, input_tokens, output_tokens, cost (sum of the known
 * ones), priced (spans with a known cost), unpriced, bins, counts (histo.h
 * bins of the ended spans' durations and their counts, as ClickHouse arrays),
 * one row per (bucket, group) having a span there, ordered by bucket, group
 * and cut at q->max_rows.
 */
#define PC_CH_STATS_SPAN_COLS 12
void pc_ch_sql_stats_spans(pc_buf *out, const char *db, const pc_stats_query *q,
                           const pc_ch_range *r, size_t n, const char *ids);

/* The ids of the traces of |project| (NULL: all) having a span that starts in
 * the |n| ranges |r|, at most |limit|, one per row: what |ids| of
 * pc_ch_sql_stats_spans names, quoted, when not NULL (else the traces
 * stats_marks names in the ranges' hours). */
void pc_ch_sql_stats_traces(pc_buf *out, const char *db, const char *project,
                            const pc_ch_range *r, size_t n, int limit);

/* The hours in [h0, h1) that hold spans (stats_marks), ascending: hour, and
 * the version of its settled build or 0 (PC_CH_STATS_HOUR_COLS columns). */
#define PC_CH_STATS_HOUR_COLS 2
void pc_ch_sql_stats_hours(pc_buf *out, const char *db, int64_t h0, int64_t h1, long settle_s);

/* The rollup rows of kind |kind| of the newest build of each of the |n|
 * |hours|, of |project| (NULL: all): hour, project_id, group and the figures
 * as pc_ch_sql_stats_spans gives them (PC_CH_STATS_ROLLUP_COLS columns). */
#define PC_CH_STATS_ROLLUP_COLS 13
void pc_ch_sql_stats_rollups(pc_buf *out, const char *db, int kind, const char *project,
                             const int64_t *hours, size_t n);

/* Up to |limit| hours due for a build, newest first: marked, settled (their
 * latest mark |settle_s| or more ago) and without a settled build. */
void pc_ch_sql_rollup_due(pc_buf *out, const char *db, long settle_s, int limit);

/* INSERT ... SELECT: the build of |hour| (hour number: start_ns / 1 h) from
 * its spans, as |version|: the server's time (seconds) before it began << 20
 * | 20 random bits. */
void pc_ch_sql_rollup_build(pc_buf *out, const char *db, int64_t hour, uint64_t version);
/* INSERT: the row that completes that build (kind PC_CH_ROLLUP_DONE). */
void pc_ch_sql_rollup_done(pc_buf *out, const char *db, int64_t hour, uint64_t version);
#define PC_CH_ROLLUP_DONE "255"

/* The stats op: whole-hour buckets of a rolled-up group (none, project,
 * model, service, span type) read settled builds, everything else the spans. */
int pc_ch_stats_read(struct pc_ch_store *S, const pc_stats_query *q, pc_stats_cb cb, void *ud);

#endif
