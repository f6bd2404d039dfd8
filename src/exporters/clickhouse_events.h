/*
 * clickhouse_events.h - attached events in ClickHouse (schema version 5, issue
 * 13): the span_events table's DDL, its JSONEachRow rows, and the SQL of the
 * reads that merge them into spans (span_events.h has the model; the local
 * store's twin is local_events.h). Pure: text in, text out, like
 * clickhouse_sql.h; caller text reaches SQL only through pc_ch_quote.
 *
 * Table `db`.span_events (one row per event of a carrier, span.h):
 *   project_id, trace_id, span_id String   the span it belongs to
 *   ckey Int64          content key (pc_span_event_key of event)
 *   time_ns Int64       the event's time
 *   created_ns Int64, created_at DateTime[64(6)]  when the collector wrote it
 *   event String        span.h's JSON object of the event (zstd on modern)
 *   ENGINE ReplacingMergeTree ORDER BY (project_id, trace_id, span_id, ckey),
 *   PARTITION BY toYYYYMM(created_at); modern: TTL created_at + 90 days
 *   (legacy: no TTL, as the other tables: drop old partitions).
 * A redelivered event has the same key: merges keep one, and every read
 * deduplicates (LIMIT 1 BY the key) before merges happen. Not tied to a trace
 * row: a record may come before its span, after it, or alone.
 *
 * Reads: pc_ch_sql_trace_events gives the events of one trace, per span at
 * most PC_SPAN_EVENTS_MAX + 1 (the caller merges and reports the cut);
 * pc_ch_sql_events_member is the search's extra condition: traces with an
 * attached event whose text holds the needle.
 */
#ifndef PC_CLICKHOUSE_EVENTS_H
#define PC_CLICKHOUSE_EVENTS_H

#include "buf.h"
#include "clickhouse_rows.h"
#include "clickhouse_sql.h"
#include "span.h"

/* CREATE TABLE IF NOT EXISTS `db`.span_events in dialect |d|. */
void pc_ch_ddl_span_events(pc_buf *out, pc_ch_dialect d, const char *db);

/* "INSERT INTO `db`.span_events (...) FORMAT JSONEachRow". */
void pc_ch_insert_span_events(pc_buf *out, const char *db);

/* Appends to |rows| one JSONEachRow line per event of carrier |s|, written at
 * |created_ns|. |scratch| is a caller buffer. */
void pc_ch_event_rows(pc_ch_rows *rows, pc_ch_dialect d, const pc_span *s, int64_t created_ns,
                      pc_buf *scratch);

/* SELECT span_id, event of trace (|project_id| or "", |trace_id|), ordered by
 * span_id then time, at most PC_SPAN_EVENTS_MAX + 1 per span, TabSeparated. */
void pc_ch_sql_trace_events(pc_buf *out, const char *db, const char *project_id,
                            const char *trace_id);

/* Appends " OR (project_id, trace_id) IN (SELECT ... FROM `db`.span_events
 * WHERE [project_id = ... AND] <event holds |json_needle|> AND <its span is
 * stored>)"; |json_needle| is the quoted, lowercased JSON-escaped needle,
 * |prefix| the bytes searched. A carrier whose span never came is not found. */
void pc_ch_sql_events_member(pc_buf *out, const char *db, const char *project_id,
                             const pc_buf *json_needle, int prefix);

#endif
