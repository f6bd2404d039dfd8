/*
 * clickhouse_sql.c - DDL, row encoding and literal quoting of the `clickhouse`
 * exporter (see clickhouse_sql.h). Pure functions: text in, text out.
 *
 * Table contract (database `database`, default prela), schema version 9 (the
 * tables' columns as of 4; 5 and 6 add tables, 7 the traces' merge keys, 8
 * their span hashes and trace_rows, 9 their attribute filters):
 *
 *   Version 2 made the project part of every key: a span is identified by
 *   (project_id, trace_id, span_id) and a trace by (project_id, trace_id), so
 *   the same trace id in two projects is two traces. Version 3 is the layout
 *   for 10^7 spans and more (issue 15). Version 4 adds issue 13's columns
 *   (pc_ch_span_v4, pc_ch_trace_v4) at the end of both tables, in place.
 *   clickhouse_migrate.c climbs 1 -> 2 -> 3 -> 4.
 *
 *   schema_version  one row per applied version (version, applied_at, note);
 *           the highest is the database's version.
 *   spans   the seed README's columns and types (span_id ... events,
 *           created_at DEFAULT now64(6)), then every pc_span_row field the
 *           seed lacks: project_id, kind, status_message, source, trace_state,
 *           exact start_ns / end_ns / created_ns (Int64 ns: the DateTime
 *           columns are for humans, partitions and TTL; queries read the ns),
 *           llm_provider, llm_model, input/output_tokens (-1 unknown), links,
 *           resource, scope (JSON text from span.h's encoders), and
 *           first_write_rank = INT64_MAX - created_ns.
 *           ENGINE ReplacingMergeTree(first_write_rank) ORDER BY (trace_id,
 *           project_id, span_id), index_granularity 256: the key is exactly
 *           the span's identity (merges keep the highest rank, i.e. the first
 *           write, as the local store's INSERT OR IGNORE does), a lookup by
 *           trace id (with or without its project) uses the primary key, and
 *           reads one granule of 256 rows, not 8192, from each part that may
 *           hold the trace (version 2 read ~107k rows per lookup at 10^7
 *           spans). Measured on 18.16, 10^6 spans in 7 parts: a lookup read
 *           1,792 rows (7,168 at 1024), the spans of a page of 108 random
 *           traces 163k rows (436k at 1024). Random traces cost a granule per
 *           part each: this is what a page of lists still pays (see below).
 *           A trace lookup names the parts holding the trace (found first on
 *           trace_id and project_id, clickhouse_store_lookup.c), so only
 *           those parts open all of its columns.
 *           Compressed blocks of about 4 KB (PC_CH_BLOCK_BYTES), not
 *           64 KB: a read decompresses the whole block holding each granule
 *           it reads (measured on 18.16 at 10^7 spans, the columns of a page
 *           of 108 random traces with the server's block cache emptied: 155
 *           ms median with 64 KB blocks, 46 ms with 4 KB; 3 % more bytes on
 *           disk). Not part of the schema version: the parts hold the same
 *           rows either way, and any binary reads both. Modern: a table
 *           setting, also set on tables of earlier binaries at start
 *           (clickhouse_migrate.c); 18.16: the server's default profile.
 *           Modern: the JSON columns are zstd-compressed (18.16 has no
 *           column codecs). Merges are eventual, so every read also
 *           deduplicates: ORDER BY project_id, trace_id, span_id, created_ns
 *           LIMIT 1 BY project_id, trace_id, span_id (first write wins) - only
 *           ever over the spans of one trace or of one page of traces.
 *           Version 4 (issue 13): llm_request_model, cache_read/cache_write/
 *           reasoning_tokens (Int64, -1 unknown), cost_usd / cost_input_usd /
 *           cost_output_usd (Nullable(Float64): NULL = unknown, span.h's NAN;
 *           JSONEachRow null), cost_source ('', 'sent', 'table'), session_id,
 *           user_id, input_messages / output_messages (span.h's message JSON
 *           text, '' none; zstd on modern). Modern: a minmax skip index on
 *           start_ns (stats read a time range, which the key does not order).
 *   traces  the trace index: ONE PARTIAL ROW PER TRACE PER INSERT (the
 *           summary of that insert's spans of the trace: min start as
 *           started_ns, error, root and service, span_types = ",llm,tool,"
 *           the types present), plain MergeTree ORDER BY (project_id,
 *           started_ns, trace_id): time order, so a list reads a time range
 *           of it. A trace's index values are its rows merged (GROUP BY
 *           project_id, trace_id): start = min, error sticky, service from
 *           the earliest row having the root (else the earliest row), span
 *           types = union. Version 4 adds, per insert: session_id / user_id
 *           (the least non-empty of its spans, so the least over a trace's
 *           rows is the trace's, exactly), cost_usd (its known costs summed,
 *           negatives as 0, NULL when none: an upper bound of the trace's cost
 *           once merged, since a redelivered span counts twice) and models
 *           (Array(String): the distinct llm_model / llm_request_model values);
 *           modern: bloom filter skip indexes on session_id, user_id, models.
 *           List filters read these (clickhouse_query.c); sessions too
 *           (clickhouse_agg.c). Version 7 adds the keys that merge a
 *           trace's rows into its summary (pc_ch_trace_v7): the first
 *           span's start and id (its created_ns is the row's), the root's
 *           created_ns and start (its id is root_span_id), cost_sum (the
 *           known costs as the spans hold them) and merge_keys = 1 (rows
 *           written before read 0); with them span_count, tokens, status,
 *           source, root and service of the merged rows are the trace's
 *           when no span is in two rows (clickhouse_query.c: the list
 *           page). Version 8 adds span_hashes (pc_ch_span_hash of each
 *           span id of the row: the merged rows hold a span twice when
 *           they hold fewer distinct hashes than spans) and clears
 *           merge_keys on the rows of a trace one of whose spans was
 *           dead-lettered in that insert (clickhouse_flush.c); a traces row
 *           refused alone gets a stand-in in trace_rows, merge_keys 0.
 *           Version 9 adds attr_bloom, the attribute filter of the row's
 *           spans (pc_ch_trace_v9, attr_bloom.h), which the list's
 *           attr.<key> filter asks before it checks candidates' spans.
 *   trace_rows  (version 8) the traces rows again, only the columns a
 *           merged summary and the list filters read, plain MergeTree
 *           ORDER BY (trace_id, project_id), granules of 64 rows, the
 *           traces' partitions (and TTL): a list page reads its named
 *           traces' rows whole, a granule per part, wherever in time they
 *           lie (measured at 10^7 spans on 18.16: 50 traces in 8 ms of
 *           server CPU, against 6 ms for their rows in a time range of
 *           traces plus 10 ms for a check of their spans). Filled by the
 *           materialized view trace_rows_mv from every INSERT into traces.
 *
 * Reads (trace lookups, lists by time windows, search, and how a summary is
 * computed from the spans): clickhouse_query.c.
 *
 * Dialects: modern = DateTime64(6), now64(6), TTL started_at + INTERVAL 90
 * DAY, DateTime64 values sent as "seconds.micro" numbers; legacy (18.16) =
 * DateTime, now(), no TTL (18.16 has none: rows are kept until someone drops
 * old partitions, e.g. ALTER TABLE ... DROP PARTITION 202501), DateTime sent
 * as integer Unix seconds. Both are numbers, so no server time zone applies.
 */
#include "clickhouse_sql.h"

#include "hash.h"
#include "json.h"
#include "mem.h"
#include "numfmt.h"
#include "timefmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- basics -- */

pc_ch_dialect pc_ch_dialect_of(const char *version)
{
    long major = version ? strtol(version, NULL, 10) : 0;
    return major > 0 && major < 20 ? PC_CH_LEGACY : PC_CH_MODERN;
}

bool pc_ch_valid_database(const char *db)
{
    size_t n = db ? strlen(db) : 0;
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = db[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

void pc_ch_quote(pc_buf *out, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    pc_buf_reserve(out, n + 2);
    pc_buf_putc(out, '\'');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\' || c == '\'') {
            pc_buf_putc(out, '\\');
            pc_buf_putc(out, (char)c);
        } else if (c < 0x20 || c >= 0x7f) {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            pc_buf_append(out, esc, 4);
        } else {
            pc_buf_putc(out, (char)c);
        }
    }
    pc_buf_putc(out, '\'');
}

void pc_ch_quote_cstr(pc_buf *out, const char *s)
{
    pc_ch_quote(out, s ? s : "", s ? strlen(s) : 0);
}

size_t pc_ch_quoted_len(const char *s)
{
    size_t n = 2;
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++)
        n += *c == '\\' || *c == '\'' ? 2 : *c < 0x20 || *c >= 0x7f ? 4 : 1;
    return n;
}

/* ---------------------------------------------------------------- DDL -- */

void pc_ch_ddl_database(pc_buf *out, const char *db)
{
    pc_buf_printf(out, "CREATE DATABASE IF NOT EXISTS `%s`", db);
}

/* The DateTime type, its default and the TTL clause of dialect |d|. */
static const char *dt(pc_ch_dialect d)
{
    return d == PC_CH_LEGACY ? "DateTime" : "DateTime64(6)";
}

static const char *dt_now(pc_ch_dialect d)
{
    return d == PC_CH_LEGACY ? "now()" : "now64(6)";
}

static const char *ttl(pc_ch_dialect d)
{
    return d == PC_CH_LEGACY ? "" : " TTL started_at + INTERVAL 90 DAY";
}

/* A column codec for the large JSON text columns: zstd on the modern dialect
 * (18.16 has no per-column codecs; its server-wide default, lz4, applies). */
static const char *zstd(pc_ch_dialect d)
{
    return d == PC_CH_LEGACY ? "" : " CODEC(ZSTD(1))";
}

const pc_ch_column pc_ch_span_v4[PC_CH_SPAN_V4_N] = {
    {"llm_request_model", "String", false, false},
    {"cache_read_tokens", "Int64 DEFAULT -1", false, false},
    {"cache_write_tokens", "Int64 DEFAULT -1", false, false},
    {"reasoning_tokens", "Int64 DEFAULT -1", false, false},
    {"cost_usd", "Nullable(Float64)", false, true},
    {"cost_input_usd", "Nullable(Float64)", false, true},
    {"cost_output_usd", "Nullable(Float64)", false, true},
    {"cost_source", "String", false, false},
    {"session_id", "String", false, false},
    {"user_id", "String", false, false},
    {"input_messages", "String", true, false},
    {"output_messages", "String", true, false},
};

void pc_ch_bits_alias(pc_buf *out, const char *name)
{
    pc_buf_printf(out, "Nullable(Float64) ALIAS reinterpretAsFloat64(reinterpretAsString(%s_bits))",
                  name);
}

/* (the traces' cost is a bound for candidates, never served: a float as sent) */
const pc_ch_column pc_ch_trace_v4[PC_CH_TRACE_V4_N] = {
    {"session_id", "String", false, false},
    {"user_id", "String", false, false},
    {"cost_usd", "Nullable(Float64)", false, false},
    {"models", "Array(String)", false, false},
};

/* Schema 7: the keys that merge a trace's rows into its summary (see the
 * contract); rows written before have merge_keys 0. */
const pc_ch_column pc_ch_trace_v7[PC_CH_TRACE_V7_N] = {
    {"first_start_ns", "Int64", false, false},
    {"first_span_id", "String", false, false},
    {"root_created_ns", "Int64", false, false},
    {"root_start_ns", "Int64", false, false},
    {"cost_sum", "Nullable(Float64)", false, false},
    {"merge_keys", "UInt8", false, false},
};

/* Schema 8: the hashes of a row's span ids (pc_ch_span_hash); rows written
 * before hold none. */
const pc_ch_column pc_ch_trace_v8[PC_CH_TRACE_V8_N] = {
    {"span_hashes", "Array(UInt32)", false, false},
};

/* Schema 9: the attribute filter of a row's spans (attr_bloom.h), as
 * PC_CH_BLOOM_WORDS little-endian words (bit i of the filter is bit i % 64 of
 * word i / 64); rows written before hold none ("maybe"). */
const pc_ch_column pc_ch_trace_v9[PC_CH_TRACE_V9_N] = {
    {"attr_bloom", "Array(UInt64)", false, false},
};

/* The zero key, ClickHouse's sipHash64: the hashes are stored and compared
 * across processes, and the server can compute them (a rebuild of the rows
 * from the spans). Ids a client makes collide only send its trace's pages to
 * the spans. */
uint32_t pc_ch_span_hash(pc_str span_id)
{
    static const pc_hash_key key = {0, 0};
    return (uint32_t)pc_siphash24(&key, span_id.p, span_id.n);
}

/* Why these: stats read the spans of a time range, which the spans' key (by
 * trace) does not order, so a minmax index on start_ns skips the granules
 * outside it; the trace filters session, user and model pre-select trace rows
 * by equality (bloom filters), before the window's GROUP BY. */
const pc_ch_index pc_ch_indexes_v4[PC_CH_INDEXES_V4_N] = {
    {"spans", "idx_start_ns", "start_ns TYPE minmax GRANULARITY 4"},
    {"traces", "idx_session", "session_id TYPE bloom_filter GRANULARITY 4"},
    {"traces", "idx_user", "user_id TYPE bloom_filter GRANULARITY 4"},
    {"traces", "idx_models", "models TYPE bloom_filter GRANULARITY 4"},
};

/* Appends ", INDEX <name> <def>" for each index of |table|. */
static void indexes(pc_buf *out, const char *table)
{
    for (size_t i = 0; i < PC_CH_INDEXES_V4_N; i++)
        if (strcmp(pc_ch_indexes_v4[i].table, table) == 0)
            pc_buf_printf(out, ", INDEX %s %s", pc_ch_indexes_v4[i].name,
                          pc_ch_indexes_v4[i].def);
}

void pc_ch_ddl_spans(pc_buf *out, pc_ch_dialect d, const char *db, const char *table)
{
    const char *t = dt(d), *z = zstd(d);
    pc_buf_printf(out,
                  "CREATE TABLE IF NOT EXISTS `%s`.`%s` ("
                  "span_id String, trace_id String, parent_span_id String, name String,"
                  " span_type String, service_name String, started_at %s, ended_at %s,"
                  " duration_ms Float64, status String, attributes String%s, events String%s,"
                  " created_at %s DEFAULT %s,"
                  " project_id String, kind Int32, status_message String, source String,"
                  " trace_state String, start_ns Int64, end_ns Int64, created_ns Int64,"
                  " llm_provider String, llm_model String, input_tokens Int64,"
                  " output_tokens Int64, links String%s, resource String%s, scope String%s,"
                  " first_write_rank UInt64",
                  db, table, t, t, z, z, t, dt_now(d), z, z, z);
    for (size_t i = 0; i < PC_CH_SPAN_V4_N; i++) {
        const pc_ch_column *c = &pc_ch_span_v4[i];
        if (c->bits && d == PC_CH_LEGACY) {
            pc_buf_printf(out, ", %s_bits Nullable(UInt64), %s ", c->name, c->name);
            pc_ch_bits_alias(out, c->name);
            continue;
        }
        pc_buf_printf(out, ", %s %s%s", c->name, c->type, c->zstd ? z : "");
    }
    if (d == PC_CH_MODERN) indexes(out, "spans");
    pc_buf_printf(out,
                  ") ENGINE = ReplacingMergeTree(first_write_rank)"
                  " PARTITION BY toYYYYMM(started_at)"
                  " ORDER BY (trace_id, project_id, span_id)%s"
                  " SETTINGS index_granularity = %d",
                  ttl(d), PC_CH_SPAN_GRANULE);
    if (d == PC_CH_MODERN)
        pc_buf_printf(out, ", min_compress_block_size = %d", PC_CH_BLOCK_BYTES);
}

void pc_ch_ddl_blocks(pc_buf *out, const char *db, const char *table)
{
    pc_buf_printf(out, "ALTER TABLE `%s`.%s MODIFY SETTING min_compress_block_size = %d", db,
                  table, PC_CH_BLOCK_BYTES);
}

void pc_ch_ddl_traces(pc_buf *out, pc_ch_dialect d, const char *db, const char *table)
{
    const char *t = dt(d);
    pc_buf_printf(out,
                  "CREATE TABLE IF NOT EXISTS `%s`.`%s` ("
                  "trace_id String, service_name String, started_at %s, completed_at %s,"
                  " duration_ms Float64, status String, root_span_id String, span_count UInt32,"
                  " metadata String, created_at %s DEFAULT %s,"
                  " project_id String, root_span_name String, has_root UInt8, source String,"
                  " started_ns Int64, completed_ns Int64, created_ns Int64, input_tokens Int64,"
                  " output_tokens Int64, span_types String",
                  db, table, t, t, t, dt_now(d));
    for (size_t i = 0; i < PC_CH_TRACE_V4_N; i++)
        pc_buf_printf(out, ", %s %s", pc_ch_trace_v4[i].name, pc_ch_trace_v4[i].type);
    for (size_t i = 0; i < PC_CH_TRACE_V7_N; i++)
        pc_buf_printf(out, ", %s %s", pc_ch_trace_v7[i].name, pc_ch_trace_v7[i].type);
    for (size_t i = 0; i < PC_CH_TRACE_V8_N; i++)
        pc_buf_printf(out, ", %s %s", pc_ch_trace_v8[i].name, pc_ch_trace_v8[i].type);
    for (size_t i = 0; i < PC_CH_TRACE_V9_N; i++)
        pc_buf_printf(out, ", %s %s", pc_ch_trace_v9[i].name, pc_ch_trace_v9[i].type);
    if (d == PC_CH_MODERN) indexes(out, "traces");
    pc_buf_printf(out,
                  ") ENGINE = MergeTree()"
                  " PARTITION BY toYYYYMM(started_at)"
                  " ORDER BY (project_id, started_ns, trace_id)%s",
                  ttl(d));
}

/* trace_rows' columns, in order: each one's name and type as in traces (a
 * NULL type: the dialect's DateTime). The table, its view and the copy of
 * the migration to 8 all take them from here. */
static const struct {
    const char *name, *type;
} trace_rows_cols[] = {
    {"trace_id", "String"},         {"project_id", "String"},
    {"started_at", NULL},           {"service_name", "String"},
    {"status", "String"},           {"root_span_id", "String"},
    {"span_count", "UInt32"},       {"root_span_name", "String"},
    {"has_root", "UInt8"},          {"source", "String"},
    {"started_ns", "Int64"},        {"completed_ns", "Int64"},
    {"created_ns", "Int64"},        {"input_tokens", "Int64"},
    {"output_tokens", "Int64"},     {"span_types", "String"},
    {"session_id", "String"},       {"user_id", "String"},
    {"models", "Array(String)"},    {"first_start_ns", "Int64"},
    {"first_span_id", "String"},    {"root_created_ns", "Int64"},
    {"root_start_ns", "Int64"},     {"cost_sum", "Nullable(Float64)"},
    {"merge_keys", "UInt8"},        {"span_hashes", "Array(UInt32)"},
};
#define TRACE_ROWS_N (sizeof(trace_rows_cols) / sizeof(trace_rows_cols[0]))

/* trace_rows' column names, "a, b, ...", appended to |out|. */
static void trace_rows_names(pc_buf *out)
{
    for (size_t i = 0; i < TRACE_ROWS_N; i++)
        pc_buf_printf(out, "%s%s", i ? ", " : "", trace_rows_cols[i].name);
}

void pc_ch_ddl_trace_rows(pc_buf *out, pc_ch_dialect d, const char *db)
{
    pc_buf_printf(out, "CREATE TABLE IF NOT EXISTS `%s`.`trace_rows` (", db);
    for (size_t i = 0; i < TRACE_ROWS_N; i++)
        pc_buf_printf(out, "%s%s %s", i ? ", " : "", trace_rows_cols[i].name,
                      trace_rows_cols[i].type ? trace_rows_cols[i].type : dt(d));
    pc_buf_printf(out,
                  ") ENGINE = MergeTree() PARTITION BY toYYYYMM(started_at)"
                  " ORDER BY (trace_id, project_id)%s SETTINGS index_granularity = %d",
                  ttl(d), PC_CH_TRACE_ROWS_GRANULE);
    if (d == PC_CH_MODERN)
        pc_buf_printf(out, ", min_compress_block_size = %d", PC_CH_BLOCK_BYTES);
}

void pc_ch_ddl_trace_rows_mv(pc_buf *out, const char *db)
{
    pc_buf_printf(out,
                  "CREATE MATERIALIZED VIEW IF NOT EXISTS `%s`.`trace_rows_mv` TO `%s`.`trace_rows`"
                  " AS SELECT ",
                  db, db);
    trace_rows_names(out);
    pc_buf_printf(out, " FROM `%s`.traces", db);
}

void pc_ch_sql_trace_rows_copy(pc_buf *out, const char *db)
{
    pc_buf_printf(out, "INSERT INTO `%s`.`trace_rows` (", db);
    trace_rows_names(out);
    pc_buf_puts(out, ") SELECT ");
    trace_rows_names(out);
    pc_buf_printf(out, " FROM `%s`.traces WHERE length(span_hashes) = 0", db);
}

void pc_ch_ddl_schema_version(pc_buf *out, const char *db)
{
    pc_buf_printf(out,
                  "CREATE TABLE IF NOT EXISTS `%s`.schema_version (version UInt32,"
                  " applied_at DateTime DEFAULT now(), note String)"
                  " ENGINE = MergeTree() ORDER BY version",
                  db);
}

#define SPAN_INSERT_COLS PC_CH_SPAN_COLUMNS_V3 "," PC_CH_SPAN_V4_COLS
#define SPAN_INSERT_COLS_LEGACY                                                                    \
    PC_CH_SPAN_COLUMNS_V3 ", llm_request_model, cache_read_tokens, cache_write_tokens,"            \
                          " reasoning_tokens, cost_usd_bits, cost_input_usd_bits,"                 \
                          " cost_output_usd_bits, cost_source, session_id, user_id,"               \
                          " input_messages, output_messages"
#define TRACE_COLS_V4 PC_CH_TRACE_COLUMNS_V3 "," PC_CH_TRACE_V4_COLS
#define TRACE_INSERT_COLS                                                                          \
    TRACE_COLS_V4 "," PC_CH_TRACE_V7_COLS "," PC_CH_TRACE_V8_COLS "," PC_CH_TRACE_V9_COLS

const char *pc_ch_span_columns(pc_ch_dialect d)
{
    return d == PC_CH_LEGACY ? SPAN_INSERT_COLS_LEGACY : SPAN_INSERT_COLS;
}

const char *pc_ch_trace_columns(void)
{
    return TRACE_COLS_V4;
}

void pc_ch_insert_spans(pc_buf *out, pc_ch_dialect d, const char *db)
{
    pc_buf_printf(out, "INSERT INTO `%s`.spans (%s) FORMAT JSONEachRow", db,
                  pc_ch_span_columns(d));
}

void pc_ch_insert_traces(pc_buf *out, const char *db)
{
    pc_buf_printf(out, "INSERT INTO `%s`.traces (" TRACE_INSERT_COLS ") FORMAT JSONEachRow", db);
}

/* -------------------------------------------------------------- rows -- */

/* The rows are the storage collector's hot path: keys and numbers are written
 * without strlen per byte or printf (numfmt.h). */
static void key(pc_buf *b, const char *k, bool first)
{
    size_t n = strlen(k);
    pc_buf_reserve(b, n + 4);
    char *o = b->data + b->len;
    if (!first) *o++ = ',';
    *o++ = '"';
    memcpy(o, k, n);
    o += n;
    *o++ = '"';
    *o++ = ':';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

static void put_i64(pc_buf *b, int64_t v)
{
    char t[PC_NUMFMT_MAX];
    pc_buf_append(b, t, pc_fmt_i64(t, v));
}

static void kv_str(pc_buf *b, const char *k, pc_str s)
{
    key(b, k, false);
    pc_json_write_str(b, s.p ? s.p : "", s.p ? s.n : 0);
}

static void kv_cstr(pc_buf *b, const char *k, const char *s)
{
    key(b, k, false);
    pc_json_write_cstr(b, s);
}

static void kv_int(pc_buf *b, const char *k, int64_t v)
{
    key(b, k, false);
    put_i64(b, v);
}

/* A JSON column: the encoder's text as a JSON string. */
static void kv_json(pc_buf *b, const char *k, const pc_buf *json)
{
    key(b, k, false);
    pc_json_write_str(b, json->data ? json->data : "", json->len);
}

/*
 * A DateTime value as a number of Unix seconds: "s.uuuuuu" (modern) or "s"
 * (legacy), clamped to 1970..2106 (the range both types share).
 */
static void kv_time(pc_buf *b, const char *k, pc_ch_dialect d, int64_t ns)
{
    if (ns < 0) ns = 0;
    int64_t s = ns / 1000000000LL, us = ns % 1000000000LL / 1000;
    if (s > 4294967295LL) s = 4294967295LL, us = 0;
    key(b, k, false);
    put_i64(b, s);
    if (d == PC_CH_LEGACY) return;
    char t[7] = {'.'};
    for (int i = 6; i >= 1; i--, us /= 10) t[i] = (char)('0' + us % 10);
    pc_buf_append(b, t, 7);
}

static void kv_double(pc_buf *b, const char *k, double v)
{
    key(b, k, false);
    pc_json_write_double(b, v);
}

/* A cost: its number, or null (the column's NULL: unknown) when it is NaN or
 * infinite (span.h: NAN = unknown; an infinite cost is no cost). */
static void kv_cost(pc_buf *b, const char *k, double v)
{
    key(b, k, false);
    if (isfinite(v))
        pc_json_write_double(b, v);
    else
        pc_buf_puts(b, "null");
}

/* A span cost column of dialect |d|: on legacy its bits, as "<k>_bits" (see
 * pc_ch_column), else kv_cost. */
static void kv_span_cost(pc_buf *b, pc_ch_dialect d, const char *k, double v)
{
    if (d != PC_CH_LEGACY) {
        kv_cost(b, k, v);
        return;
    }
    char name[32];
    snprintf(name, sizeof(name), "%s_bits", k);
    key(b, name, false);
    if (!isfinite(v)) {
        pc_buf_puts(b, "null");
        return;
    }
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    char t[PC_NUMFMT_MAX];
    pc_buf_append(b, t, pc_fmt_u64(t, bits));
}

void pc_ch_span_row(pc_buf *out, pc_ch_dialect d, const pc_span *s, int64_t created_ns,
                    pc_buf *scratch)
{
    pc_buf_puts(out, "{\"span_id\":");
    pc_json_write_str(out, s->span_id.p ? s->span_id.p : "", s->span_id.n);
    kv_str(out, "trace_id", s->trace_id);
    kv_str(out, "parent_span_id", s->parent_id);
    kv_str(out, "name", s->name);
    kv_cstr(out, "span_type", pc_span_type_name(s->span_type));
    kv_str(out, "service_name", s->service_name);
    kv_time(out, "started_at", d, s->start_ns);
    kv_time(out, "ended_at", d, s->end_ns);
    kv_double(out, "duration_ms", s->end_ns > 0 ? pc_time_diff_ms(s->end_ns, s->start_ns) : 0.0);
    kv_cstr(out, "status", pc_status_name(s->status));
    pc_buf_reset(scratch);
    pc_attrs_write_json(scratch, &s->attrs);
    kv_json(out, "attributes", scratch);
    pc_buf_reset(scratch);
    pc_events_write_json(scratch, s->events, s->n_events);
    kv_json(out, "events", scratch);
    kv_time(out, "created_at", d, created_ns);
    kv_str(out, "project_id", s->project_id);
    kv_int(out, "kind", s->kind);
    kv_str(out, "status_message", s->status_message);
    kv_cstr(out, "source", pc_source_name(s->source));
    kv_str(out, "trace_state", s->trace_state);
    kv_int(out, "start_ns", s->start_ns);
    kv_int(out, "end_ns", s->end_ns);
    kv_int(out, "created_ns", created_ns);
    kv_str(out, "llm_provider", s->llm_provider);
    kv_str(out, "llm_model", s->llm_model);
    kv_int(out, "input_tokens", s->input_tokens);
    kv_int(out, "output_tokens", s->output_tokens);
    pc_buf_reset(scratch);
    pc_links_write_json(scratch, s->links, s->n_links);
    kv_json(out, "links", scratch);
    pc_buf_reset(scratch);
    pc_attrs_write_json(scratch, s->resource ? s->resource : &pc_empty_attrs);
    kv_json(out, "resource", scratch);
    pc_buf_reset(scratch);
    pc_scope_write_json(scratch, s->scope ? s->scope : &pc_empty_scope);
    kv_json(out, "scope", scratch);
    key(out, "first_write_rank", false);
    char t[PC_NUMFMT_MAX];
    pc_buf_append(out, t, pc_fmt_u64(t, (uint64_t)(INT64_MAX - (created_ns > 0 ? created_ns : 0))));
    kv_str(out, "llm_request_model", s->llm_request_model);
    kv_int(out, "cache_read_tokens", s->cache_read_tokens);
    kv_int(out, "cache_write_tokens", s->cache_write_tokens);
    kv_int(out, "reasoning_tokens", s->reasoning_tokens);
    kv_span_cost(out, d, "cost_usd", s->cost_usd);
    kv_span_cost(out, d, "cost_input_usd", s->cost_input_usd);
    kv_span_cost(out, d, "cost_output_usd", s->cost_output_usd);
    kv_cstr(out, "cost_source", s->cost_source == PC_COST_SENT    ? "sent"
                                : s->cost_source == PC_COST_TABLE ? "table"
                                                                  : "");
    kv_str(out, "session_id", s->session_id);
    kv_str(out, "user_id", s->user_id);
    kv_str(out, "input_messages", s->input_messages);
    kv_str(out, "output_messages", s->output_messages);
    pc_buf_puts(out, "}\n");
}

/* True when (c1, a) orders before (c2, b): created, then start, then span id. */
static bool before(int64_t c1, const pc_span *a, int64_t c2, const pc_span *b)
{
    if (c1 != c2) return c1 < c2;
    if (a->start_ns != b->start_ns) return a->start_ns < b->start_ns;
    size_t n = a->span_id.n < b->span_id.n ? a->span_id.n : b->span_id.n;
    int c = n ? memcmp(a->span_id.p, b->span_id.p, n) : 0;
    return c ? c < 0 : a->span_id.n < b->span_id.n;
}

/* Bytewise order of two strings (a prefix first). */
static int str_cmp(pc_str a, pc_str b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    return c ? c : (a.n > b.n) - (a.n < b.n);
}

/* Keeps in |*least| the least non-empty of itself and |s|. */
static void least(pc_str *least, pc_str s)
{
    if (s.n && (!least->n || str_cmp(s, *least) < 0)) *least = s;
}

/* Adds |m| (non-empty) to the part's distinct models. */
static void add_model(pc_ch_trace_part *p, pc_str m)
{
    if (!m.n) return;
    for (size_t i = 0; i < p->n_models; i++)
        if (str_cmp(p->models[i], m) == 0) return;
    if (p->n_models == p->cap_models) {
        p->cap_models = p->cap_models ? p->cap_models * 2 : 4;
        p->models = pc_xrealloc(p->models, p->cap_models * sizeof(*p->models));
    }
    p->models[p->n_models++] = m;
}

void pc_ch_part_free(pc_ch_trace_part *p)
{
    free(p->models);
    p->models = NULL;
    p->n_models = p->cap_models = 0;
    free(p->hashes);
    p->hashes = NULL;
    p->n_hashes = p->cap_hashes = 0;
}

void pc_ch_part_init(pc_ch_trace_part *p, const pc_span *s, int64_t created_ns)
{
    memset(p, 0, sizeof(*p));
    p->first = s;
    p->first_created = created_ns;
    p->created_ns = created_ns;
    p->started_ns = s->start_ns;
    p->completed_ns = INT64_MIN;
    pc_ch_part_add(p, s, created_ns);
    p->span_count = 1;
}

void pc_ch_part_add(pc_ch_trace_part *p, const pc_span *s, int64_t created_ns)
{
    if (s != p->first) {
        p->span_count++;
        if (before(created_ns, s, p->first_created, p->first)) {
            p->first = s;
            p->first_created = created_ns;
        }
    }
    int64_t end = s->end_ns > 0 ? s->end_ns : s->start_ns;
    if (s->start_ns < p->started_ns) p->started_ns = s->start_ns;
    if (end > p->completed_ns) p->completed_ns = end;
    if (created_ns < p->created_ns) p->created_ns = created_ns;
    if (s->parent_id.n == 0 && (!p->root || before(created_ns, s, p->root_created, p->root))) {
        p->root = s;
        p->root_created = created_ns;
    }
    if (s->status == PC_STATUS_ERROR) p->error = true;
    if ((unsigned)s->span_type < PC_TYPE_COUNT) p->types |= 1u << s->span_type;
    if (s->input_tokens > 0) p->input_tokens = pc_tokens_add(p->input_tokens, s->input_tokens);
    if (s->output_tokens > 0) p->output_tokens = pc_tokens_add(p->output_tokens, s->output_tokens);
    least(&p->session_id, s->session_id);
    least(&p->user_id, s->user_id);
    if (isfinite(s->cost_usd)) {
        p->cost_known = true;
        if (s->cost_usd > 0) p->cost_usd += s->cost_usd;
        p->cost_sum += s->cost_usd;
    }
    add_model(p, s->llm_model);
    add_model(p, s->llm_request_model);
    if (p->n_hashes == p->cap_hashes) {
        p->cap_hashes = p->cap_hashes ? 2 * p->cap_hashes : 8;
        p->hashes = pc_xrealloc(p->hashes, p->cap_hashes * sizeof(*p->hashes));
    }
    p->hashes[p->n_hashes++] = pc_ch_span_hash(s->span_id);
    pc_attr_bloom_add_attrs(p->bloom, &s->attrs);
}

void pc_ch_trace_row(pc_buf *out, pc_ch_dialect d, const pc_ch_trace_part *p)
{
    const pc_span *f = p->first, *r = p->root;
    pc_buf_puts(out, "{\"trace_id\":");
    pc_json_write_str(out, f->trace_id.p ? f->trace_id.p : "", f->trace_id.n);
    kv_str(out, "service_name", r ? r->service_name : f->service_name);
    kv_time(out, "started_at", d, p->started_ns);
    kv_time(out, "completed_at", d, p->completed_ns);
    kv_double(out, "duration_ms", pc_time_diff_ms(p->completed_ns, p->started_ns));
    kv_cstr(out, "status", p->error ? "error" : "success");
    kv_str(out, "root_span_id", r ? r->span_id : PC_STR_NULL);
    kv_int(out, "span_count", p->span_count);
    kv_cstr(out, "metadata", "{}");
    kv_time(out, "created_at", d, p->created_ns);
    kv_str(out, "project_id", f->project_id);
    kv_str(out, "root_span_name", r ? r->name : PC_STR_NULL);
    kv_int(out, "has_root", r ? 1 : 0);
    kv_cstr(out, "source", pc_source_name(f->source));
    kv_int(out, "started_ns", p->started_ns);
    kv_int(out, "completed_ns", p->completed_ns);
    kv_int(out, "created_ns", p->created_ns);
    kv_int(out, "input_tokens", p->input_tokens);
    kv_int(out, "output_tokens", p->output_tokens);
    char set[128];
    kv_str(out, "span_types", (pc_str){set, pc_ch_span_types_text(set, p->types)});
    kv_str(out, "session_id", p->session_id);
    kv_str(out, "user_id", p->user_id);
    kv_cost(out, "cost_usd", p->cost_known ? p->cost_usd : NAN);
    key(out, "models", false);
    pc_buf_putc(out, '[');
    for (size_t i = 0; i < p->n_models; i++) {
        if (i) pc_buf_putc(out, ',');
        pc_json_write_str(out, p->models[i].p, p->models[i].n);
    }
    pc_buf_putc(out, ']');
    kv_int(out, "first_start_ns", f->start_ns);
    kv_str(out, "first_span_id", f->span_id);
    kv_int(out, "root_created_ns", r ? p->root_created : 0);
    kv_int(out, "root_start_ns", r ? r->start_ns : 0);
    kv_cost(out, "cost_sum", p->cost_known ? p->cost_sum : NAN);
    key(out, "span_hashes", false);
    pc_buf_putc(out, '[');
    for (size_t i = 0; i < p->n_hashes; i++) {
        char num[24];
        if (i) pc_buf_putc(out, ',');
        pc_buf_append(out, num, pc_fmt_u64(num, p->hashes[i]));
    }
    pc_buf_putc(out, ']');
    key(out, "attr_bloom", false);
    pc_buf_putc(out, '[');
    for (int w = 0; w < PC_CH_BLOOM_WORDS; w++) {
        uint64_t word = 0;
        for (int b = 7; b >= 0; b--)
            word = word << 8 | p->bloom[w * 8 + b];
        char num[24];
        if (w) pc_buf_putc(out, ',');
        pc_buf_append(out, num, pc_fmt_u64(num, word));
    }
    pc_buf_putc(out, ']');
    kv_int(out, "merge_keys", 1); /* last: pc_ch_rows_unmerge rewrites it */
    pc_buf_puts(out, "}\n");
}

void pc_ch_trace_rows_standin(pc_buf *out, pc_ch_dialect d, const char *project,
                              const char *trace_id, int64_t started_ns)
{
    pc_buf_puts(out, "{\"trace_id\":");
    pc_json_write_cstr(out, trace_id);
    kv_cstr(out, "project_id", project);
    kv_time(out, "started_at", d, started_ns);
    kv_int(out, "started_ns", started_ns);
    kv_int(out, "merge_keys", 0);
    pc_buf_puts(out, "}\n");
}

void pc_ch_insert_standins(pc_buf *out, const char *db)
{
    pc_buf_printf(out,
                  "INSERT INTO `%s`.trace_rows (trace_id, project_id, started_at, started_ns,"
                  " merge_keys) FORMAT JSONEachRow",
                  db);
}

size_t pc_ch_span_types_text(char *out, unsigned types)
{
    size_t n = 0;
    out[n++] = ',';
    for (int t = 0; t < PC_TYPE_COUNT; t++) {
        if (!(types & (1u << t))) continue;
        const char *name = pc_span_type_name((pc_span_type)t);
        size_t k = strlen(name);
        memcpy(out + n, name, k);
        n += k;
        out[n++] = ',';
    }
    out[n] = '\0';
    return n;
}
