/*
 * clickhouse_sql.c - DDL, row encoding and query SQL of the `clickhouse`
 * exporter (see clickhouse_sql.h). Pure functions: text in, text out.
 *
 * Table contract (database `database`, default prela), schema version 3:
 *
 *   Version 2 made the project part of every key: a span is identified by
 *   (project_id, trace_id, span_id) and a trace by (project_id, trace_id), so
 *   the same trace id in two projects is two traces. Version 3 is the layout
 *   for 10^7 spans and more (issue 15). clickhouse_migrate.c climbs 1 -> 2 -> 3.
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
 *           Modern: the JSON columns are zstd-compressed (18.16 has no
 *           column codecs). Merges are eventual, so every read also
 *           deduplicates: ORDER BY project_id, trace_id, span_id, created_ns
 *           LIMIT 1 BY project_id, trace_id, span_id (first write wins) - only
 *           ever over the spans of one trace or of one page of traces.
 *           Issue 13's span columns (session_id, user_id, ...) are ADD COLUMN
 *           away; skip indexes over them too (modern).
 *   traces  the trace index: ONE PARTIAL ROW PER TRACE PER INSERT (the
 *           summary of that insert's spans of the trace: min start as
 *           started_ns, error, root and service, span_types = ",llm,tool,"
 *           the types present), plain MergeTree ORDER BY (project_id,
 *           started_ns, trace_id): time order, so a list reads a time range
 *           of it. A trace's index values are its rows merged (GROUP BY
 *           project_id, trace_id): start = min, error sticky, service from
 *           the earliest row having the root (else the earliest row), span
 *           types = union. The other columns (seed's span_count, tokens, ...)
 *           describe the insert only; nothing reads them.
 *
 * Lists (pc_ch_sql_list_window, driven by clickhouse_store.c): no GROUP BY
 * over the whole traces table. A list reads a window [lo, top] of start
 * times: the newest hour below the range's top (end_time, the cursor's start,
 * else now and the future), then windows 4x wider, until a window fills the
 * page or reaches the range's start (or is 4^8 hours, 7.5 years, wide: then
 * it has no lower edge). One window is one statement of two levels:
 *   candidates  the traces rows with started_ns >= lo - GUARD (1 hour), of
 *               traces having a row in [lo, top] (an IN on the key range;
 *               only when top is set), merged per trace, HAVING merged start
 *               >= lo and the range, cursor and filters (service, status,
 *               span type), newest first, limit + SLACK (8) of them (+
 *               offset). A trace whose start is in [lo, top] has all its rows
 *               at or after lo, so its merged values are exact; a trace
 *               starting before lo - GUARD whose rows in the window make it
 *               look younger (spans of one trace inserted more than an hour
 *               apart in start time) is a false candidate, removed below.
 *   the page    the candidates' summaries computed from their deduplicated
 *               spans (as a trace lookup does), every condition checked again
 *               on these exact values, newest first, limit rows.
 * Why exact: every trace of the window is a candidate with its exact key, so
 * if the page is full, no trace outside the candidates can rank above its
 * last row; a short page only ends the list when the window covers the
 * range. Offsets up to 100 are applied to the checked rows (exact); deeper
 * ones to the candidates, where a false candidate above the page (a trace
 * whose inserts' start times lie more than an hour apart) shifts the page by
 * one per such trace: keyset cursors (exact at any depth) are the way to
 * page deep. span_type no longer scans the spans table (version 2 collected
 * the ids of every matching span): the traces rows carry their types.
 * Search still matches spans (pc_ch_sql_search) and merges all the traces
 * rows of the matching traces (page()).
 *
 * Summaries served (get_trace, lists, search) are computed from the trace's
 * deduplicated spans of ITS project, grouped by (project_id, trace_id):
 * started = min start, completed = max(end, or start when not ended),
 * span_count and token sums (tokens > 0) over distinct spans, error if any
 * span failed, source / created from the first span, root = the first
 * parentless span, service from the root, else from the first span; "first"
 * orders by (created_ns, start_ns, span_id). A re-sent batch therefore never
 * double-counts, a trace split over several inserts is whole, and two
 * projects' traces never mix.
 *
 * Dialects: modern = DateTime64(6), now64(6), TTL started_at + INTERVAL 90
 * DAY, DateTime64 values sent as "seconds.micro" numbers; legacy (18.16) =
 * DateTime, now(), no TTL (18.16 has none: rows are kept until someone drops
 * old partitions, e.g. ALTER TABLE ... DROP PARTITION 202501), DateTime sent
 * as integer Unix seconds. Both are numbers, so no server time zone applies.
 */
#include "clickhouse_sql.h"

#include "json.h"
#include "mem.h"
#include "numfmt.h"
#include "timefmt.h"

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
                  " first_write_rank UInt64)"
                  " ENGINE = ReplacingMergeTree(first_write_rank)"
                  " PARTITION BY toYYYYMM(started_at)"
                  " ORDER BY (trace_id, project_id, span_id)%s"
                  " SETTINGS index_granularity = %d",
                  db, table, t, t, z, z, t, dt_now(d), z, z, z, ttl(d), PC_CH_SPAN_GRANULE);
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
                  " output_tokens Int64, span_types String)"
                  " ENGINE = MergeTree()"
                  " PARTITION BY toYYYYMM(started_at)"
                  " ORDER BY (project_id, started_ns, trace_id)%s",
                  db, table, t, t, t, dt_now(d), ttl(d));
}

void pc_ch_ddl_schema_version(pc_buf *out, const char *db)
{
    pc_buf_printf(out,
                  "CREATE TABLE IF NOT EXISTS `%s`.schema_version (version UInt32,"
                  " applied_at DateTime DEFAULT now(), note String)"
                  " ENGINE = MergeTree() ORDER BY version",
                  db);
}

#define SPAN_INSERT_COLS                                                                           \
    "span_id, trace_id, parent_span_id, name, span_type, service_name, started_at, ended_at,"      \
    " duration_ms, status, attributes, events, created_at, project_id, kind, status_message,"      \
    " source, trace_state, start_ns, end_ns, created_ns, llm_provider, llm_model, input_tokens,"   \
    " output_tokens, links, resource, scope, first_write_rank"

#define TRACE_INSERT_COLS                                                                          \
    "trace_id, service_name, started_at, completed_at, duration_ms, status, root_span_id,"         \
    " span_count, metadata, created_at, project_id, root_span_name, has_root, source,"             \
    " started_ns, completed_ns, created_ns, input_tokens, output_tokens, span_types"

const char *pc_ch_span_columns(void)
{
    return SPAN_INSERT_COLS;
}

const char *pc_ch_trace_columns(void)
{
    return TRACE_INSERT_COLS;
}

void pc_ch_insert_spans(pc_buf *out, const char *db)
{
    pc_buf_printf(out, "INSERT INTO `%s`.spans (" SPAN_INSERT_COLS ") FORMAT JSONEachRow", db);
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
    pc_buf_puts(out, "}\n");
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

/* ------------------------------------------------------------ queries -- */

#define SPAN_COLS                                                                                  \
    "trace_id, span_id, parent_span_id, project_id, name, kind, span_type, service_name,"          \
    " status, status_message, source, trace_state, start_ns, end_ns, created_ns,"                  \
    " llm_provider, llm_model, input_tokens, output_tokens, attributes, events, links,"            \
    " resource, scope"

/* "First" among a trace's distinct spans; see the contract above. */
#define FIRST "(created_ns, start_ns, span_id)"
#define ROOT "parent_span_id = ''"

/* A saturating sum of a token column (span.h: pc_tokens_add): sum() of Int64
 * wraps, so a float sum decides first whether the total is near INT64_MAX
 * (9.2e18, a margin for the float's rounding); below that the integer sum is
 * exact. Both dialects have these functions. */
#define TOKEN_SUM(col)                                                                             \
    "if(sum(toFloat64(if(" col " > 0, " col ", 0))) >= 9.2e18, toInt64(9223372036854775807),"     \
    " sum(if(" col " > 0, " col ", 0)))"

/* The summary of a trace's deduplicated spans, PC_CH_TRACE_COLS columns, for
 * GROUP BY project_id, trace_id. */
#define TRACE_AGG                                                                                  \
    "trace_id, project_id,"                                                                        \
    " if(countIf(" ROOT ") > 0, argMinIf(service_name, " FIRST ", " ROOT "),"                      \
    " argMin(service_name, " FIRST ")),"                                                           \
    " argMinIf(span_id, " FIRST ", " ROOT "), argMinIf(name, " FIRST ", " ROOT "),"                \
    " if(countIf(status = 'error') > 0, 'error', 'success'), argMin(source, " FIRST "),"           \
    " min(start_ns) AS t_started, max(if(end_ns > 0, end_ns, start_ns)), min(created_ns),"         \
    " count(), " TOKEN_SUM("input_tokens") ", " TOKEN_SUM("output_tokens")

/* Appends the deduplicated spans (first write wins, per project) matching |where|. */
static void dedup_spans(pc_buf *out, const char *db, const char *cols, const char *where)
{
    pc_buf_printf(out,
                  "(SELECT %s FROM `%s`.spans WHERE %s"
                  " ORDER BY project_id, trace_id, span_id, created_ns"
                  " LIMIT 1 BY project_id, trace_id, span_id)",
                  cols, db, where);
}

void pc_ch_sql_traces_from_spans(pc_buf *out, const char *db)
{
    pc_buf_printf(out,
                  "SELECT trace_id,"
                  " if(countIf(" ROOT ") > 0, argMinIf(service_name, " FIRST ", " ROOT "),"
                  " argMin(service_name, " FIRST ")),"
                  " min(started_at), max(if(end_ns > 0, ended_at, started_at)),"
                  " (max(if(end_ns > 0, end_ns, start_ns)) - min(start_ns)) / 1000000.0,"
                  " if(countIf(status = 'error') > 0, 'error', 'success'),"
                  " argMinIf(span_id, " FIRST ", " ROOT "), toUInt32(uniqExact(span_id)), '{}',"
                  " min(created_at), project_id, argMinIf(name, " FIRST ", " ROOT "),"
                  " toUInt8(countIf(" ROOT ") > 0), argMin(source, " FIRST "), min(start_ns),"
                  " max(if(end_ns > 0, end_ns, start_ns)), min(created_ns),"
                  " sum(if(input_tokens > 0, input_tokens, 0)),"
                  " sum(if(output_tokens > 0, output_tokens, 0)),"
                  " concat(',', arrayStringConcat(groupUniqArray(span_type), ','), ',')"
                  " FROM `%s`.spans GROUP BY project_id, trace_id",
                  db);
}

/* "trace_id = '<id>'", and " AND project_id = '<p>'" when |project_id| is set. */
static char *where_trace(const char *project_id, const char *trace_id)
{
    pc_buf w = PC_BUF_INIT;
    pc_buf_puts(&w, "trace_id = ");
    pc_ch_quote_cstr(&w, trace_id);
    if (project_id) {
        pc_buf_puts(&w, " AND project_id = ");
        pc_ch_quote_cstr(&w, project_id);
    }
    return pc_buf_steal(&w, NULL);
}

void pc_ch_sql_get_spans(pc_buf *out, const char *db, const char *project_id,
                         const char *trace_id, int limit, int offset)
{
    char *w = where_trace(project_id ? project_id : "", trace_id);
    pc_buf_puts(out, "SELECT " SPAN_COLS " FROM ");
    dedup_spans(out, db, SPAN_COLS, w);
    /* LIMIT offset, count: the form both dialects' servers know */
    pc_buf_printf(out, " ORDER BY start_ns, span_id LIMIT %d, %d FORMAT TabSeparated",
                  offset > 0 ? offset : 0, limit > 0 ? limit : 1);
    free(w);
}

/* Summaries of the traces whose spans match |where|, newest first. */
static void summaries(pc_buf *out, const char *db, const char *where, const char *order)
{
    pc_buf_puts(out, "SELECT " TRACE_AGG " FROM ");
    dedup_spans(out, db,
                "trace_id, span_id, parent_span_id, project_id, name, service_name, status,"
                " source, start_ns, end_ns, created_ns, input_tokens, output_tokens",
                where);
    pc_buf_printf(out, " GROUP BY project_id, trace_id ORDER BY %s FORMAT TabSeparated", order);
}

void pc_ch_sql_get_trace(pc_buf *out, const char *db, const char *project_id,
                         const char *trace_id)
{
    char *w = where_trace(project_id, trace_id);
    summaries(out, db, w, "project_id");
    free(w);
}

#define NEWEST "t_started DESC, trace_id DESC, project_id DESC"

/* Merged partial trace rows: the service of the earliest row with the root. */
#define MERGED_SERVICE                                                                             \
    "if(max(has_root) = 1, argMinIf(service_name, created_ns, has_root = 1),"                      \
    " argMin(service_name, created_ns))"

/*
 * Appends "(project_id, trace_id) IN (<page>)": the keys of the traces of
 * |project_id| (every project when NULL) that are members (|member|: a
 * condition on (project_id, trace_id)), newest first, at most |limit|.
 * Search's page; lists read windows instead (pc_ch_sql_list_window).
 */
static void page(pc_buf *out, const char *db, const char *project_id, const char *member,
                 int limit)
{
    pc_buf_printf(out, "(project_id, trace_id) IN (SELECT project_id, trace_id FROM `%s`.traces"
                       " WHERE ",
                  db);
    if (project_id) {
        pc_buf_puts(out, "project_id = ");
        pc_ch_quote_cstr(out, project_id);
        pc_buf_puts(out, " AND ");
    }
    pc_buf_printf(out,
                  "%s GROUP BY project_id, trace_id"
                  " ORDER BY min(started_ns) DESC, trace_id DESC, project_id DESC LIMIT %d)",
                  member, limit > 0 ? limit : 0);
}

/* The project filter of a spans subquery: "project_id = '<p>' AND " or "". */
static void project_and(pc_buf *out, const char *project_id)
{
    if (!project_id) return;
    pc_buf_puts(out, "project_id = ");
    pc_ch_quote_cstr(out, project_id);
    pc_buf_puts(out, " AND ");
}

/* Appends " AND <cond>" clauses shared by the two levels of a list window:
 * the (project_id, trace_id) order key |start| (an expression), the range,
 * the window's lower edge |lo| (unless INT64_MIN) and the cursor. */
static void range_and(pc_buf *out, const char *start, const pc_trace_filter *f, int64_t lo)
{
    if (lo != INT64_MIN) pc_buf_printf(out, " AND %s >= %lld", start, (long long)lo);
    if (f->start_ns) pc_buf_printf(out, " AND %s >= %lld", start, (long long)f->start_ns);
    if (f->end_ns) pc_buf_printf(out, " AND %s <= %lld", start, (long long)f->end_ns);
    if (f->after) { /* (start, trace, project) < the cursor's, spelled out for 18.16 */
        long long c = (long long)f->after->started_ns;
        pc_buf_printf(out, " AND (%s < %lld OR (%s = %lld AND (trace_id < ", start, c, start, c);
        pc_ch_quote_cstr(out, f->after->trace_id);
        pc_buf_puts(out, " OR (trace_id = ");
        pc_ch_quote_cstr(out, f->after->trace_id);
        pc_buf_puts(out, " AND project_id < ");
        pc_ch_quote_cstr(out, f->after->project_id);
        pc_buf_puts(out, "))))");
    }
}

void pc_ch_sql_list_window(pc_buf *out, const char *db, const pc_trace_filter *f, int64_t lo,
                           int64_t top)
{
    pc_buf cand = PC_BUF_INIT, where = PC_BUF_INIT;
    /* Level 1, the candidates: the traces rows of the window, merged per trace. */
    pc_buf_printf(&cand, "SELECT project_id, trace_id FROM `%s`.traces WHERE 1", db);
    if (f->project_id) {
        pc_buf_puts(&cand, " AND project_id = ");
        pc_ch_quote_cstr(&cand, f->project_id);
    }
    if (lo != INT64_MIN)
        pc_buf_printf(&cand, " AND started_ns >= %lld",
                      (long long)(lo > INT64_MIN + PC_CH_WINDOW_GUARD ? lo - PC_CH_WINDOW_GUARD
                                                                      : INT64_MIN));
    if (top != INT64_MAX) {
        pc_buf_printf(&cand,
                      " AND (project_id, trace_id) IN (SELECT project_id, trace_id FROM `%s`.traces"
                      " WHERE ",
                      db);
        project_and(&cand, f->project_id);
        if (lo != INT64_MIN) pc_buf_printf(&cand, "started_ns >= %lld AND ", (long long)lo);
        pc_buf_printf(&cand, "started_ns <= %lld)", (long long)top);
    }
    pc_buf_puts(&cand, " GROUP BY project_id, trace_id HAVING 1");
    range_and(&cand, "min(started_ns)", f, lo);
    if (f->service_name) {
        pc_buf_puts(&cand, " AND " MERGED_SERVICE " = ");
        pc_ch_quote_cstr(&cand, f->service_name);
    }
    if (f->status) {
        pc_buf_puts(&cand, " AND if(max(status = 'error') = 1, 'error', 'success') = ");
        pc_ch_quote_cstr(&cand, f->status);
    }
    if (f->span_type) {
        pc_buf needle = PC_BUF_INIT;
        pc_buf_printf(&needle, ",%s,", f->span_type);
        pc_buf_puts(&cand, " AND max(position(span_types, ");
        pc_ch_quote(&cand, needle.data, needle.len);
        pc_buf_puts(&cand, ") > 0) = 1");
        pc_buf_free(&needle);
    }
    int limit = f->limit > 0 ? f->limit : 1, offset = f->offset > 0 ? f->offset : 0;
    /* a small offset is applied to the checked rows (exact), a large one to the candidates */
    bool outer_offset = offset <= PC_CH_OUTER_OFFSET;
    pc_buf_printf(&cand,
                  " ORDER BY min(started_ns) DESC, trace_id DESC, project_id DESC LIMIT %d, %d",
                  outer_offset ? 0 : offset,
                  (outer_offset ? offset : 0) + limit + PC_CH_WINDOW_SLACK);

    /* Level 2, the page: exact summaries of the candidates, checked again. */
    pc_buf_printf(&where, "(project_id, trace_id) IN (%s)", cand.data);
    pc_buf_puts(out, "SELECT " TRACE_AGG " FROM ");
    dedup_spans(out, db,
                "trace_id, span_id, parent_span_id, project_id, name, service_name, status,"
                " source, start_ns, end_ns, created_ns, input_tokens, output_tokens, span_type",
                where.data);
    pc_buf_puts(out, " GROUP BY project_id, trace_id HAVING 1");
    range_and(out, "t_started", f, lo);
    if (f->service_name) {
        pc_buf_puts(out, " AND if(countIf(" ROOT ") > 0, argMinIf(service_name, " FIRST ", " ROOT
                         "), argMin(service_name, " FIRST ")) = ");
        pc_ch_quote_cstr(out, f->service_name);
    }
    if (f->status) {
        pc_buf_puts(out, " AND if(countIf(status = 'error') > 0, 'error', 'success') = ");
        pc_ch_quote_cstr(out, f->status);
    }
    if (f->span_type) {
        pc_buf_puts(out, " AND countIf(span_type = ");
        pc_ch_quote_cstr(out, f->span_type);
        pc_buf_puts(out, ") > 0");
    }
    pc_buf_printf(out, " ORDER BY " NEWEST " LIMIT %d, %d FORMAT TabSeparated",
                  outer_offset ? offset : 0, limit);
    pc_buf_free(&cand);
    pc_buf_free(&where);
}

/* Appends "position(lower(substring(<col>, 1, PREFIX)), <needle>) > 0"; see pc_ch_sql_search. */
static void search_col(pc_buf *out, const char *col, const pc_buf *needle)
{
    pc_buf_printf(out, "position(lower(substring(%s, 1, %d)), %s) > 0", col, PC_CH_SEARCH_PREFIX,
                  needle->data);
}

/*
 * Why this shape: a substring search of a pattern of P bytes costs up to P
 * byte comparisons per byte searched (ClickHouse's searchers are not linear
 * in the worst case: "aaa...ab" over "aaaa..." compares ~P bytes at every
 * offset), and the server evaluates the condition over a whole block at once,
 * checking max_execution_time only between blocks. So the cost of one
 * condition call is bounded here: each value is searched in its first
 * PC_CH_SEARCH_PREFIX bytes only, and pc_ch_search_block_rows() caps the
 * rows per block by P. lower() + position() means what
 * positionCaseInsensitive() means (ASCII case folding only) at about a ninth
 * of its worst-case cost on 18.16.
 */
void pc_ch_sql_search(pc_buf *out, const char *db, const char *project_id, const char *text,
                      int limit)
{
    pc_buf member = PC_BUF_INIT, where = PC_BUF_INIT, needle = PC_BUF_INIT;
    size_t n = text ? strlen(text) : 0;
    char *low = pc_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(text[i] >= 'A' && text[i] <= 'Z' ? text[i] - 'A' + 'a' : text[i]);
    low[n] = '\0';
    pc_ch_quote(&needle, low, n);
    free(low);
    pc_buf_printf(&member,
                  "(project_id, trace_id) IN (SELECT project_id, trace_id FROM `%s`.spans WHERE ",
                  db);
    project_and(&member, project_id);
    pc_buf_putc(&member, '(');
    search_col(&member, "name", &needle);
    pc_buf_puts(&member, " OR ");
    search_col(&member, "attributes", &needle);
    pc_buf_puts(&member, "))");
    page(&where, db, project_id, member.data, limit);
    summaries(out, db, where.data, NEWEST);
    pc_buf_free(&needle);
    pc_buf_free(&member);
    pc_buf_free(&where);
}

/* Byte comparisons one block of a search may cost; about 0.7 s on a 2020s core. */
#define SEARCH_BLOCK_BUDGET (1LL << 29)

int pc_ch_search_block_rows(size_t pattern_len)
{
    /* per row: two columns of at most PC_CH_SEARCH_PREFIX bytes, each byte costing
     * about (P + 16) comparisons (the 16: reading, lower(), the scan itself) */
    long long per_row = 2LL * PC_CH_SEARCH_PREFIX * ((long long)pattern_len + 16);
    long long rows = SEARCH_BLOCK_BUDGET / per_row;
    return rows < 1 ? 1 : rows > 8192 ? 8192 : (int)rows;
}

/* ---------------------------------------------------------- responses -- */

/* Unescapes one TabSeparated field in place: \t \n \\ \' \0 ... Returns its end. */
static char *unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r != '\\' || !r[1]) {
            *w++ = *r;
            continue;
        }
        r++;
        switch (*r) {
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'a': *w++ = '\a'; break;
        case 'v': *w++ = '\v'; break;
        case '0': *w++ = '\0'; break;
        default: *w++ = *r; break;
        }
    }
    *w = '\0';
    return w;
}

int pc_ch_tsv_row(char **cur, char *end, char **cols, int max)
{
    char *p = *cur;
    if (p >= end) return 0;
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *line_end = nl ? nl : end;
    *cur = nl ? nl + 1 : end;
    *line_end = '\0';
    int n = 0;
    while (n < max) {
        char *tab = strchr(p, '\t');
        if (tab) *tab = '\0';
        cols[n++] = p;
        if (!tab) break;
        p = tab + 1;
    }
    for (int i = 0; i < n; i++)
        unescape(cols[i]);
    return n;
}

static int64_t num(const char *s)
{
    return strtoll(s, NULL, 10);
}

void pc_ch_read_trace(char **c, pc_trace_row *r)
{
    r->trace_id = c[0];
    r->project_id = c[1];
    r->service_name = c[2];
    r->root_span_id = c[3];
    r->root_span_name = c[4];
    r->status = c[5];
    r->source = c[6];
    r->started_ns = num(c[7]);
    r->completed_ns = num(c[8]);
    r->created_ns = num(c[9]);
    r->span_count = num(c[10]);
    r->input_tokens = num(c[11]);
    r->output_tokens = num(c[12]);
}

void pc_ch_read_span(char **c, pc_span_row *r)
{
    r->trace_id = c[0];
    r->span_id = c[1];
    r->parent_span_id = c[2];
    r->project_id = c[3];
    r->name = c[4];
    r->kind = (int)num(c[5]);
    r->span_type = c[6];
    r->service_name = c[7];
    r->status = c[8];
    r->status_message = c[9];
    r->source = c[10];
    r->trace_state = c[11];
    r->start_ns = num(c[12]);
    r->end_ns = num(c[13]);
    r->created_ns = num(c[14]);
    r->llm_provider = c[15];
    r->llm_model = c[16];
    r->input_tokens = num(c[17]);
    r->output_tokens = num(c[18]);
    r->attributes = c[19];
    r->events = c[20];
    r->links = c[21];
    r->resource = c[22];
    r->scope = c[23];
}
