/*
 * clickhouse_events.c - the span_events table of the ClickHouse store (the
 * contract is in clickhouse_events.h).
 *
 * Data flow: clickhouse.c's encode() sends each carrier's events here
 * (pc_ch_event_rows) into a third row set of the pending insert, stored after
 * the spans; clickhouse_migrate.c creates the table (schema 5);
 * clickhouse_store_lookup.c reads a trace's events after its spans and merges
 * them (span_events.h), and search ORs the events member into its condition.
 */
#include "clickhouse_events.h"

#include "exporters/span_events.h"

#include "json.h"
#include "numfmt.h"

#include <stdio.h>
#include <string.h>

void pc_ch_ddl_span_events(pc_buf *out, pc_ch_dialect d, const char *db)
{
    bool legacy = d == PC_CH_LEGACY;
    pc_buf_printf(out,
                  "CREATE TABLE IF NOT EXISTS `%s`.`span_events` ("
                  "project_id String, trace_id String, span_id String, ckey Int64,"
                  " time_ns Int64, created_ns Int64, created_at %s, event String%s)"
                  " ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(created_at)"
                  " ORDER BY (project_id, trace_id, span_id, ckey)%s",
                  db, legacy ? "DateTime" : "DateTime64(6)", legacy ? "" : " CODEC(ZSTD(1))",
                  legacy ? "" : " TTL created_at + INTERVAL 90 DAY");
}

void pc_ch_insert_span_events(pc_buf *out, const char *db)
{
    pc_buf_printf(out,
                  "INSERT INTO `%s`.span_events (project_id, trace_id, span_id, ckey, time_ns,"
                  " created_ns, created_at, event) FORMAT JSONEachRow",
                  db);
}

static void put_i64(pc_buf *b, int64_t v)
{
    char t[PC_NUMFMT_MAX];
    pc_buf_append(b, t, pc_fmt_i64(t, v));
}

/* A DateTime as Unix seconds ("s.uuuuuu" modern, "s" legacy), 1970..2106. */
static void put_time(pc_buf *b, pc_ch_dialect d, int64_t ns)
{
    if (ns < 0) ns = 0;
    int64_t s = ns / 1000000000LL, us = ns % 1000000000LL / 1000;
    if (s > 4294967295LL) s = 4294967295LL, us = 0;
    put_i64(b, s);
    if (d == PC_CH_LEGACY) return;
    pc_buf_printf(b, ".%06lld", (long long)us);
}

static void put_str(pc_buf *b, pc_str s)
{
    pc_json_write_str(b, s.p ? s.p : "", s.p ? s.n : 0);
}

void pc_ch_event_rows(pc_ch_rows *rows, pc_ch_dialect d, const pc_span *s, int64_t created_ns,
                      pc_buf *scratch)
{
    for (size_t i = 0; i < s->n_events; i++) {
        pc_buf_reset(scratch);
        pc_span_event_json(scratch, &s->events[i]);
        pc_buf *o = &rows->text;
        size_t off = o->len;
        pc_buf_lit(o, "{\"project_id\":");
        put_str(o, s->project_id);
        pc_buf_lit(o, ",\"trace_id\":");
        put_str(o, s->trace_id);
        pc_buf_lit(o, ",\"span_id\":");
        put_str(o, s->span_id);
        pc_buf_lit(o, ",\"ckey\":");
        put_i64(o, pc_span_event_key(scratch->data, scratch->len));
        pc_buf_lit(o, ",\"time_ns\":");
        put_i64(o, s->events[i].time_ns);
        pc_buf_lit(o, ",\"created_ns\":");
        put_i64(o, created_ns);
        pc_buf_lit(o, ",\"created_at\":");
        put_time(o, d, created_ns);
        pc_buf_lit(o, ",\"event\":");
        pc_json_write_str(o, scratch->data, scratch->len);
        pc_buf_lit(o, "}\n");
        pc_ch_rows_add(rows, off, pc_ch_month(created_ns), s->project_id, s->trace_id,
                       s->span_id);
    }
}

void pc_ch_sql_trace_events(pc_buf *out, const char *db, const char *project_id,
                            const char *trace_id)
{
    pc_buf_printf(out,
                  "SELECT span_id, event FROM (SELECT span_id, ckey, time_ns, event"
                  " FROM `%s`.span_events WHERE project_id = ",
                  db);
    pc_ch_quote_cstr(out, project_id ? project_id : "");
    pc_buf_puts(out, " AND trace_id = ");
    pc_ch_quote_cstr(out, trace_id ? trace_id : "");
    pc_buf_printf(out,
                  " ORDER BY span_id, ckey LIMIT 1 BY span_id, ckey)"
                  " ORDER BY span_id, time_ns, ckey LIMIT %d BY span_id FORMAT TabSeparated",
                  PC_SPAN_EVENTS_MAX + 1);
}

void pc_ch_sql_events_member(pc_buf *out, const char *db, const char *project_id,
                             const pc_buf *json_needle, int prefix)
{
    pc_buf_printf(out, " OR (project_id, trace_id) IN (SELECT project_id, trace_id FROM `%s`.span_events WHERE ",
                  db);
    if (project_id) {
        pc_buf_puts(out, "project_id = ");
        pc_ch_quote_cstr(out, project_id);
        pc_buf_puts(out, " AND ");
    }
    pc_buf_printf(out, "position(lower(substring(event, 1, %d)), %s) > 0", prefix,
                  json_needle->data);
    /* of a span the trace has: a carrier whose span never came shows nowhere */
    pc_buf_printf(out,
                  " AND (project_id, trace_id, span_id) IN (SELECT project_id, trace_id, span_id"
                  " FROM `%s`.spans WHERE (project_id, trace_id) IN (SELECT project_id, trace_id"
                  " FROM `%s`.span_events WHERE ",
                  db, db);
    if (project_id) {
        pc_buf_puts(out, "project_id = ");
        pc_ch_quote_cstr(out, project_id);
        pc_buf_puts(out, " AND ");
    }
    pc_buf_printf(out, "position(lower(substring(event, 1, %d)), %s) > 0)))", prefix,
                  json_needle->data);
}
