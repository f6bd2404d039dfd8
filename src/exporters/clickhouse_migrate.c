/*
 * clickhouse_migrate.c - schema creation and migration of the `clickhouse`
 * exporter (see clickhouse_migrate.h).
 *
 * The version lives in the database: table `schema_version`, highest row
 * wins; a database without that table but with a spans table is version 1
 * (the first release). Versions are climbed one step at a time (1 -> 2 ->
 * 3 -> ... -> 9), and each step's version row is written once both tables
 * are done, so an interrupted climb resumes at the step it was in.
 *
 * ClickHouse has no transactions, so a copying step (to 2, to 3) is a
 * sequence of statements each of which leaves a state the next start
 * recognizes from the table names alone, per table T (spans, traces):
 *
 *   {T}               version k data: build T_v{k+1}, fill it, swap
 *   {T, T_v{k+1}}     interrupted fill: drop T_v{k+1}, build, fill, swap again
 *   {T_vk, T_v{k+1}}  interrupted swap (RENAME of two pairs is not atomic on
 *                     18.16): rename T_v{k+1} to T
 *   {T_vk, T}         swapped: nothing left to do for T
 *   {}                fresh: create T (first step of a fresh database only)
 *
 * T_vk is kept as a backup of version k (the operator drops it).
 *   1 -> 2  project_id in every key: both tables copied row for row.
 *   2 -> 3  the layout for 10^7+ spans (clickhouse_sql.c): spans copied row
 *           for row into the new key and granule; traces rebuilt from the
 *           (new) spans, one row per trace with its span_types, since
 *           version 2's rows lack them. The new tables are created in the
 *           current layout (schema 4's columns included, with their
 *           defaults), so a climb from 2 finds nothing to add at 3 -> 4.
 *   3 -> 4  issue 13's columns (clickhouse_sql.h: pc_ch_span_v4,
 *           pc_ch_trace_v4) in place, no copy: ALTER TABLE ... ADD COLUMN
 *           for each column the table lacks (system.columns; 18.16 has no
 *           ADD COLUMN IF NOT EXISTS), so existing rows read the defaults
 *           (no session, no cost: NULL, token details -1); on the modern
 *           dialect ADD INDEX IF NOT EXISTS for the skip indexes; then one
 *           extra traces row per existing trace that has an LLM model,
 *           built from its spans (pc_ch_sql_traces_from_spans restricted to
 *           those spans), so the model filter finds old traces. A partial
 *           trace row is what every insert writes, and rows merge by min /
 *           max / union, so a row written twice (a step interrupted after
 *           it and redone) changes no trace's answer. The version row comes
 *           last: an interrupted step is redone whole, each statement
 *           idempotent.
 *   4 -> 5  attached events (issue 13, clickhouse_events.h): the table
 *           span_events created (IF NOT EXISTS), empty; nothing else changes.
 *           A fresh database and every later start create it too.
 *   5 -> 6  hour rollups of the stats (clickhouse_stats.h): stats_marks and
 *           stats_rollup created (IF NOT EXISTS, as at every start), then
 *           one mark per hour and trace of the spans (one scan of the
 *           spans' start and trace id), so the builders build every
 *           stored hour once it settled; until
 *           then stats read those hours from the spans. Marks written twice
 *           (a step redone) change nothing.
 *   6 -> 7  the keys that merge a trace's rows into its summary
 *           (clickhouse_sql.h: pc_ch_trace_v7) added to traces in place, as
 *           at 3 -> 4; existing rows read merge_keys 0, and a list reads the
 *           summaries of traces having such a row from their spans, as
 *           before (clickhouse_query.c). Nothing is copied.
 *   7 -> 8  trace_rows, the traces rows keyed by trace (clickhouse_sql.h),
 *           and the span id hashes on each traces row: span_hashes added to
 *           traces in place (rows written before hold none), trace_rows and
 *           its materialized view trace_rows_mv created (IF NOT EXISTS, as
 *           at every start), then every traces row without hashes copied
 *           into trace_rows (INSERT ... SELECT: the rows of earlier binaries;
 *           rows written from the view's creation on are copied by it). A
 *           row copied twice (a step redone, or an older writer's row copied
 *           by the view and the backfill) holds no hashes, so a list reads
 *           that trace from its spans either way; no answer changes.
 *   8 -> 9  the traces rows' attribute filters (clickhouse_sql.h:
 *           pc_ch_trace_v9, attr_bloom.h) added to traces in place, as at
 *           6 -> 7; existing rows read an empty filter, which a list reads
 *           as "maybe", so their traces' attribute filter is checked on
 *           their spans, as before. Nothing is copied.
 *
 * Why copy instead of ALTER: the sorting key (ORDER BY) of a MergeTree table
 * cannot be changed to put project_id in front of existing columns, in any
 * version, nor its index_granularity; a new table is the only way.
 *
 * Writers of the old release must be stopped before the new one starts:
 * rows an old collector inserts into T while it is being copied land in the
 * backup T_vk only.
 */
#include "clickhouse_migrate.h"

#include "clickhouse_events.h"

#include "clickhouse_search.h"
#include "clickhouse_stats.h"
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mig {
    const char *id;
    pc_ch_dialect d;
    const char *db;
    pc_ch_exec_fn exec;
    void *ud;
    long timeout_ms, copy_timeout_ms;
    char *tables; /* "\n"-separated names of the database's tables, with a leading "\n" */
} mig;

/* Runs |sql| (consumed: freed here). 0 / -1 (logged by exec). */
static int run(mig *m, pc_buf *sql, const char *what, long timeout_ms, pc_buf *out)
{
    int rc = m->exec(m->ud, sql->data, what, timeout_ms, out);
    pc_buf_free(sql);
    return rc;
}

/* Reloads the names of the database's tables. 0 / -1. */
static int load_tables(mig *m)
{
    pc_buf sql = PC_BUF_INIT, out = PC_BUF_INIT;
    pc_buf_puts(&sql, "SELECT name FROM system.tables WHERE database = ");
    pc_ch_quote_cstr(&sql, m->db);
    pc_buf_puts(&sql, " FORMAT TabSeparated");
    if (run(m, &sql, "cannot list the tables", m->timeout_ms, &out) < 0) return -1;
    free(m->tables);
    pc_buf names = PC_BUF_INIT;
    pc_buf_putc(&names, '\n');
    pc_buf_append(&names, out.data ? out.data : "", out.len);
    if (names.data[names.len - 1] != '\n') pc_buf_putc(&names, '\n');
    m->tables = pc_buf_steal(&names, NULL);
    pc_buf_free(&out);
    return 0;
}

static bool has(const mig *m, const char *table)
{
    char needle[80];
    snprintf(needle, sizeof(needle), "\n%s\n", table);
    return strstr(m->tables, needle) != NULL;
}

/* Version 2's tables, for the step from 1 (the contract of that release). */
static void ddl_spans_v2(pc_buf *out, pc_ch_dialect d, const char *db, const char *table)
{
    const char *t = d == PC_CH_LEGACY ? "DateTime" : "DateTime64(6)";
    pc_buf_printf(out,
                  "CREATE TABLE IF NOT EXISTS `%s`.`%s` ("
                  "span_id String, trace_id String, parent_span_id String, name String,"
                  " span_type String, service_name String, started_at %s, ended_at %s,"
                  " duration_ms Float64, status String, attributes String, events String,"
                  " created_at %s DEFAULT %s,"
                  " project_id String, kind Int32, status_message String, source String,"
                  " trace_state String, start_ns Int64, end_ns Int64, created_ns Int64,"
                  " llm_provider String, llm_model String, input_tokens Int64,"
                  " output_tokens Int64, links String, resource String, scope String,"
                  " first_write_rank UInt64)"
                  " ENGINE = ReplacingMergeTree(first_write_rank)"
                  " PARTITION BY toYYYYMM(started_at)"
                  " ORDER BY (trace_id, project_id, started_at, span_id)%s",
                  db, table, t, t, t, d == PC_CH_LEGACY ? "now()" : "now64(6)",
                  d == PC_CH_LEGACY ? "" : " TTL started_at + INTERVAL 90 DAY");
}

static void ddl_traces_v2(pc_buf *out, pc_ch_dialect d, const char *db, const char *table)
{
    const char *t = d == PC_CH_LEGACY ? "DateTime" : "DateTime64(6)";
    pc_buf_printf(out,
                  "CREATE TABLE IF NOT EXISTS `%s`.`%s` ("
                  "trace_id String, service_name String, started_at %s, completed_at %s,"
                  " duration_ms Float64, status String, root_span_id String, span_count UInt32,"
                  " metadata String, created_at %s DEFAULT %s,"
                  " project_id String, root_span_name String, has_root UInt8, source String,"
                  " started_ns Int64, completed_ns Int64, created_ns Int64, input_tokens Int64,"
                  " output_tokens Int64)"
                  " ENGINE = MergeTree()"
                  " PARTITION BY toYYYYMM(started_at)"
                  " ORDER BY (project_id, service_name, started_at, trace_id)%s",
                  db, table, t, t, t, d == PC_CH_LEGACY ? "now()" : "now64(6)",
                  d == PC_CH_LEGACY ? "" : " TTL started_at + INTERVAL 90 DAY");
}

/* Version 2's traces columns (version 3 added span_types). */
#define TRACE_COLS_V2                                                                              \
    "trace_id, service_name, started_at, completed_at, duration_ms, status, root_span_id,"         \
    " span_count, metadata, created_at, project_id, root_span_name, has_root, source,"             \
    " started_ns, completed_ns, created_ns, input_tokens, output_tokens"

static int record(mig *m, int v, const char *note);

/* The columns of table |t|, "\n"-separated with a leading "\n", into |*names|
 * (the caller frees). 0 / -1. */
static int load_columns(mig *m, const char *t, char **names)
{
    pc_buf sql = PC_BUF_INIT, out = PC_BUF_INIT, all = PC_BUF_INIT;
    pc_buf_puts(&sql, "SELECT name FROM system.columns WHERE database = ");
    pc_ch_quote_cstr(&sql, m->db);
    pc_buf_puts(&sql, " AND table = ");
    pc_ch_quote_cstr(&sql, t);
    pc_buf_puts(&sql, " FORMAT TabSeparated");
    if (run(m, &sql, "cannot list the columns", m->timeout_ms, &out) < 0) return -1;
    pc_buf_putc(&all, '\n');
    pc_buf_append(&all, out.data ? out.data : "", out.len);
    if (all.data[all.len - 1] != '\n') pc_buf_putc(&all, '\n');
    pc_buf_free(&out);
    *names = pc_buf_steal(&all, NULL);
    return 0;
}

/* Adds the columns |cols| (|n|; schema 4's, 7's) that table |t| lacks. |*added| counts them. 0 / -1. */
static int add_columns(mig *m, const char *t, const pc_ch_column *cols, size_t n, int *added)
{
    char *have;
    if (load_columns(m, t, &have) < 0) return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* legacy cost columns: the stored bits first, then the alias reading them */
        bool bits = cols[i].bits && m->d == PC_CH_LEGACY;
        for (int part = bits ? 0 : 1; rc == 0 && part < 2; part++) {
            char name[64], needle[80];
            snprintf(name, sizeof(name), "%s%s", cols[i].name, part == 0 ? "_bits" : "");
            snprintf(needle, sizeof(needle), "\n%s\n", name);
            if (strstr(have, needle)) continue;
            pc_buf sql = PC_BUF_INIT;
            pc_buf_printf(&sql, "ALTER TABLE `%s`.`%s` ADD COLUMN %s ", m->db, t, name);
            if (part == 0)
                pc_buf_puts(&sql, "Nullable(UInt64)");
            else if (bits)
                pc_ch_bits_alias(&sql, cols[i].name);
            else
                pc_buf_printf(&sql, "%s%s", cols[i].type,
                              cols[i].zstd && m->d == PC_CH_MODERN ? " CODEC(ZSTD(1))" : "");
            rc = run(m, &sql, "migration: cannot add a column", m->copy_timeout_ms, NULL);
            if (rc == 0) (*added)++;
        }
    }
    free(have);
    return rc;
}

/*
 * The step 3 -> 4 (see above): columns, indexes (modern), the model lists of
 * existing traces unless |backfill| is false (a climb from 2 just built the
 * traces from the spans with them). 0 / -1.
 */
static int step4(mig *m, bool backfill)
{
    int added = 0;
    if (add_columns(m, "spans", pc_ch_span_v4, PC_CH_SPAN_V4_N, &added) < 0) return -1;
    if (add_columns(m, "traces", pc_ch_trace_v4, PC_CH_TRACE_V4_N, &added) < 0) return -1;
    for (size_t i = 0; m->d == PC_CH_MODERN && i < PC_CH_INDEXES_V4_N; i++) {
        pc_buf sql = PC_BUF_INIT;
        pc_buf_printf(&sql, "ALTER TABLE `%s`.`%s` ADD INDEX IF NOT EXISTS %s %s", m->db,
                      pc_ch_indexes_v4[i].table, pc_ch_indexes_v4[i].name,
                      pc_ch_indexes_v4[i].def);
        if (run(m, &sql, "migration: cannot add a skip index", m->copy_timeout_ms, NULL) < 0)
            return -1;
    }
    if (backfill) {
        pc_buf sql = PC_BUF_INIT;
        pc_buf_printf(&sql, "INSERT INTO `%s`.traces (%s) ", m->db, pc_ch_trace_columns());
        pc_ch_sql_traces_from_spans_where(&sql, m->db,
                                          "llm_model != '' OR llm_request_model != ''");
        if (run(m, &sql, "migration: cannot add the traces' models", m->copy_timeout_ms, NULL) <
            0)
            return -1;
    }
    if (record(m, 4, "migrated from 3: issue 13's columns added (sessions, users, costs, token "
                     "details, messages; trace models)") < 0)
        return -1;
    pc_log(PC_LOG_INFO, m->id,
           "migrated database %s from schema 3 to 4 (sessions, costs, messages): %d columns "
           "added in place, nothing copied",
           m->db, added);
    return 0;
}

/* ------------------------------------------------- version 5: span events -- */

/* CREATE TABLE IF NOT EXISTS span_events (clickhouse_events.h). 0 / -1. */
static int create_events(mig *m)
{
    pc_buf sql = PC_BUF_INIT;
    pc_ch_ddl_span_events(&sql, m->d, m->db);
    return run(m, &sql, "cannot create the span_events table", m->timeout_ms, NULL);
}

/* The step 4 -> 5: the span_events table, then the version row. 0 / -1. */
static int step5(mig *m)
{
    if (create_events(m) < 0 ||
        record(m, 5, "migrated from 4: span_events (events attached from log records)") < 0)
        return -1;
    pc_log(PC_LOG_INFO, m->id,
           "migrated database %s from schema 4 to 5 (span events from log records): table "
           "span_events added, nothing copied",
           m->db);
    return 0;
}

/* ---------------------------------------------- version 6: stats rollups -- */

/* CREATE TABLE IF NOT EXISTS stats_marks and stats_rollup (clickhouse_stats.h). 0 / -1. */
static int create_stats(mig *m)
{
    int rc = 0;
    for (int t = 0; rc == 0 && t < 2; t++) {
        pc_buf sql = PC_BUF_INIT;
        pc_ch_sql_stats_table(&sql, m->d, m->db, t == 0);
        rc = run(m, &sql, "cannot create the stats rollup tables", m->timeout_ms, NULL);
    }
    return rc;
}

/* The step 5 -> 6: the rollup tables, a mark on every hour holding spans (so
 * the builders build them once settled), then the version row. 0 / -1. */
static int step6(mig *m)
{
    if (create_stats(m) < 0) return -1;
    pc_buf sql = PC_BUF_INIT; /* run() frees it */
    pc_buf_printf(&sql,
                  "INSERT INTO `%s`.stats_marks (hour, trace_id) SELECT DISTINCT"
                  " toUInt32(greatest(intDiv(start_ns, %lld), 0)), trace_id FROM `%s`.spans",
                  m->db, PC_CH_HOUR_NS, m->db);
    if (run(m, &sql, "migration: cannot mark the stored hours", m->copy_timeout_ms, NULL) < 0 ||
        record(m, 6, "migrated from 5: stats_marks, stats_rollup (hour rollups of the stats)") < 0)
        return -1;
    pc_log(PC_LOG_INFO, m->id,
           "migrated database %s from schema 5 to 6 (hour rollups of the stats): tables "
           "stats_marks and stats_rollup added, every stored hour marked to be built",
           m->db);
    return 0;
}

/* ------------------------------------------ version 7: trace merge keys -- */

/*
 * A step to |v| that adds the traces columns |cols| (|n|) in place, then the
 * version row with |note|, and logs "migrated database D from schema v-1 to
 * v (|what|): K column(s) added in place, nothing copied; |after|". 0 / -1.
 */
static int traces_columns_step(mig *m, int v, const pc_ch_column *cols, size_t n,
                               const char *note, const char *what, const char *after)
{
    int added = 0;
    if (add_columns(m, "traces", cols, n, &added) < 0 || record(m, v, note) < 0) return -1;
    pc_log(PC_LOG_INFO, m->id,
           "migrated database %s from schema %d to %d (%s): %d column%s added in place, "
           "nothing copied; %s",
           m->db, v - 1, v, what, added, added == 1 ? "" : "s", after);
    return 0;
}

/* The step 6 -> 7: the traces' merge keys, then the version row. 0 / -1. */
static int step7(mig *m)
{
    return traces_columns_step(m, 7, pc_ch_trace_v7, PC_CH_TRACE_V7_N,
                               "migrated from 6: the traces rows' merge keys (lists read "
                               "summaries from the traces rows)",
                               "trace summaries from the traces rows",
                               "traces stored before are summarized from their spans");
}

/* ------------------------------------- version 8: traces rows by trace -- */

/* CREATE TABLE IF NOT EXISTS trace_rows, then its view from traces. 0 / -1. */
static int create_trace_rows(mig *m)
{
    pc_buf sql = PC_BUF_INIT;
    pc_ch_ddl_trace_rows(&sql, m->d, m->db);
    if (run(m, &sql, "cannot create the trace_rows table", m->timeout_ms, NULL) < 0) return -1;
    pc_ch_ddl_trace_rows_mv(&sql, m->db);
    return run(m, &sql, "cannot create the trace_rows_mv view", m->timeout_ms, NULL);
}

/* The step 7 -> 8: the traces' span hashes, trace_rows and its view, the
 * rows written before copied into it, then the version row. 0 / -1. */
static int step8(mig *m)
{
    int added = 0;
    if (add_columns(m, "traces", pc_ch_trace_v8, PC_CH_TRACE_V8_N, &added) < 0 ||
        create_trace_rows(m) < 0)
        return -1;
    pc_buf sql = PC_BUF_INIT; /* run() frees it */
    pc_ch_sql_trace_rows_copy(&sql, m->db);
    if (run(m, &sql, "migration: cannot copy the traces rows", m->copy_timeout_ms, NULL) < 0 ||
        record(m, 8, "migrated from 7: trace_rows (the traces rows by trace) and the rows' "
                     "span hashes") < 0)
        return -1;
    pc_log(PC_LOG_INFO, m->id,
           "migrated database %s from schema 7 to 8 (the traces rows by trace): %d column "
           "added in place, table trace_rows and view trace_rows_mv created, the traces rows "
           "copied into it; traces stored before are summarized from their spans",
           m->db, added);
    return 0;
}

/* ------------------------------ version 9: the rows' attribute filters -- */

/* The step 8 -> 9: the traces rows' attribute filters, then the version row. 0 / -1. */
static int step9(mig *m)
{
    return traces_columns_step(m, 9, pc_ch_trace_v9, PC_CH_TRACE_V9_N,
                               "migrated from 8: the traces rows' attribute filters (attr_bloom)",
                               "the traces rows' attribute filters",
                               "the attribute filter checks the spans of traces stored before");
}

/* CREATE TABLE IF NOT EXISTS `db`.`name` of kind |spans| (else traces), in
 * the layout of schema |version| (2 or the current one). */
static int create(mig *m, bool spans, const char *name, int version)
{
    pc_buf sql = PC_BUF_INIT;
    if (version == 2)
        (spans ? ddl_spans_v2 : ddl_traces_v2)(&sql, m->d, m->db, name);
    else if (spans)
        pc_ch_ddl_spans(&sql, m->d, m->db, name);
    else
        pc_ch_ddl_traces(&sql, m->d, m->db, name);
    return run(m, &sql, spans ? "cannot create the spans table" : "cannot create the traces table",
               m->timeout_ms, NULL);
}

/* The row count of a SELECT ... FORMAT TabSeparated answering one number, or -1. */
static int64_t count_of(mig *m, pc_buf *sql)
{
    pc_buf out = PC_BUF_INIT;
    if (run(m, sql, "cannot count rows", m->timeout_ms, &out) < 0) return -1;
    int64_t n = out.data ? strtoll(out.data, NULL, 10) : -1;
    pc_buf_free(&out);
    return n;
}

/* The rows of |table|; for spans, its distinct (project, trace, span) keys: a
 * ReplacingMergeTree may merge a copied block's duplicates (a span delivered
 * twice) as it is written (modern servers: optimize_on_insert), keeping the
 * first write as the merges do. -1 on failure. */
static int64_t count_spans(mig *m, const char *table, bool spans)
{
    pc_buf sql = PC_BUF_INIT;
    pc_buf_printf(&sql, "SELECT %s FROM `%s`.`%s` FORMAT TabSeparated",
                  spans ? "uniqExact(project_id, trace_id, span_id)" : "count()", m->db, table);
    return count_of(m, &sql);
}

/*
 * Fills the new table |nt| of step |to| - 1 -> |to| for table |t| from the
 * database's current tables, and checks what it holds. |*rows| gets the rows
 * written. 0 / -1.
 */
static int fill(mig *m, const char *t, const char *nt, int to, int64_t *rows)
{
    bool spans = strcmp(t, "spans") == 0;
    pc_buf sql = PC_BUF_INIT;
    int64_t want;
    if (spans || to == 2) { /* row for row */
        const char *cols = spans ? PC_CH_SPAN_COLUMNS_V3 : TRACE_COLS_V2;
        pc_buf_printf(&sql, "INSERT INTO `%s`.`%s` (%s) SELECT %s FROM `%s`.`%s`", m->db, nt,
                      cols, cols, m->db, t);
        if (run(m, &sql, "migration: cannot copy the rows", m->copy_timeout_ms, NULL) < 0)
            return -1;
        want = count_spans(m, t, spans);
    } else { /* traces of version 3: one row per trace of the spans table */
        pc_buf_printf(&sql, "INSERT INTO `%s`.`%s` (%s) ", m->db, nt, pc_ch_trace_columns());
        pc_ch_sql_traces_from_spans(&sql, m->db);
        if (run(m, &sql, "migration: cannot rebuild the traces", m->copy_timeout_ms, NULL) < 0)
            return -1;
        pc_buf_printf(&sql,
                      "SELECT count() FROM (SELECT 1 FROM `%s`.spans GROUP BY project_id,"
                      " trace_id) FORMAT TabSeparated",
                      m->db);
        want = count_of(m, &sql);
    }
    int64_t got = count_spans(m, nt, spans);
    if (want < 0 || got < 0) return -1;
    if (got != want) {
        pc_log(PC_LOG_ERROR, m->id,
               "migration of %s.%s to schema %d: %lld rows written, %lld expected; the old "
               "table is untouched",
               m->db, t, to, (long long)got, (long long)want);
        return -1;
    }
    *rows = got;
    return 0;
}

/*
 * Takes table |t| ("spans" or "traces") through the step |to| - 1 -> |to|;
 * see the state table above. |*rows| gets the rows written (0 when none
 * were). 0 / -1.
 */
static int migrate_table(mig *m, const char *t, int to, int64_t *rows)
{
    bool spans = strcmp(t, "spans") == 0;
    char old[16], nt[16];
    snprintf(old, sizeof(old), "%s_v%d", t, to - 1);
    snprintf(nt, sizeof(nt), "%s_v%d", t, to);
    *rows = 0;
    pc_buf sql = PC_BUF_INIT;
    if (has(m, old) && has(m, t)) return 0; /* swapped */
    if (has(m, old) && has(m, nt)) {        /* interrupted swap */
        pc_buf_printf(&sql, "RENAME TABLE `%s`.`%s` TO `%s`.`%s`", m->db, nt, m->db, t);
        return run(m, &sql, "migration: cannot rename the new table", m->timeout_ms, NULL);
    }
    if (!has(m, t)) return create(m, spans, t, to); /* fresh */

    /* Version to - 1 data in |t|: (re)build the new table beside it, fill, swap. */
    pc_buf_printf(&sql, "DROP TABLE IF EXISTS `%s`.`%s`", m->db, nt);
    if (run(m, &sql, "migration: cannot drop a partial copy", m->timeout_ms, NULL) < 0) return -1;
    if (create(m, spans, nt, to) < 0) return -1;
    if (fill(m, t, nt, to, rows) < 0) return -1;
    pc_buf_printf(&sql, "RENAME TABLE `%s`.`%s` TO `%s`.`%s`, `%s`.`%s` TO `%s`.`%s`", m->db, t,
                  m->db, old, m->db, nt, m->db, t);
    if (run(m, &sql, "migration: cannot swap the tables", m->timeout_ms, NULL) < 0) return -1;
    return 0;
}

/* The highest version in schema_version (0 when it has no rows), or -1. */
static int64_t stored_version(mig *m)
{
    pc_buf sql = PC_BUF_INIT, out = PC_BUF_INIT;
    pc_buf_printf(&sql, "SELECT max(version) FROM `%s`.schema_version FORMAT TabSeparated",
                  m->db);
    if (run(m, &sql, "cannot read the schema version", m->timeout_ms, &out) < 0) return -1;
    int64_t v = out.data ? strtoll(out.data, NULL, 10) : 0;
    pc_buf_free(&out);
    return v;
}

/* Records version |v| with |note|. 0 / -1. */
static int record(mig *m, int v, const char *note)
{
    pc_buf sql = PC_BUF_INIT;
    pc_buf_printf(&sql, "INSERT INTO `%s`.schema_version (version, note) VALUES (%d, ", m->db, v);
    pc_ch_quote_cstr(&sql, note);
    pc_buf_putc(&sql, ')');
    return run(m, &sql, "cannot record the schema version", m->timeout_ms, NULL);
}

/* The step |to| - 1 -> |to| of both tables, then its version row. 0 / -1. */
static int step(mig *m, int to, const char *what, const char *note)
{
    int64_t n_spans = 0, n_traces = 0;
    if (migrate_table(m, "spans", to, &n_spans) < 0) return -1;
    if (load_tables(m) < 0) return -1; /* the traces of 3 are built from the new spans */
    if (migrate_table(m, "traces", to, &n_traces) < 0) return -1;
    if (record(m, to, note) < 0) return -1;
    pc_log(PC_LOG_INFO, m->id,
           "migrated database %s from schema %d to %d (%s): %lld span rows and %lld trace rows "
           "written by this start; the previous tables are kept as %s.spans_v%d and "
           "%s.traces_v%d (drop them once satisfied)",
           m->db, to - 1, to, what, (long long)n_spans, (long long)n_traces, m->db, to - 1, m->db,
           to - 1);
    return 0;
}

/* A number read by |sql| (freed), 0 when the answer is empty; -1 on failure. */
static int64_t read_number(mig *m, pc_buf *sql, const char *what)
{
    pc_buf out = PC_BUF_INIT;
    if (run(m, sql, what, m->timeout_ms, &out) < 0) return -1;
    int64_t v = out.data ? strtoll(out.data, NULL, 10) : 0;
    pc_buf_free(&out);
    return v;
}

#define SEARCH_MARK "search index from here: older spans are scanned"

/*
 * The search index's tables, created when missing; the mark of a database
 * that had spans before them, and *since from it (clickhouse_migrate.h).
 */
static int setup_search(mig *m, bool fresh, bool had_spans, int64_t *since)
{
    pc_buf sql = PC_BUF_INIT;
    int rc = 0;
    for (int t = 0; rc == 0 && t < 2; t++) {
        pc_ch_ddl_search(&sql, m->d, m->db, t);
        rc = run(m, &sql, "cannot create the search tables", m->timeout_ms, NULL);
    }
    if (rc == 0 && fresh && had_spans) {
        rc = record(m, PC_CH_SCHEMA_VERSION, SEARCH_MARK);
        if (rc == 0)
            pc_log(PC_LOG_INFO, m->id,
                   "database %s: search index created; spans stored before now are searched by"
                   " a scan until they expire",
                   m->db);
    }
    if (rc < 0) return -1;
    pc_buf_printf(&sql,
                  "SELECT toInt64(toUnixTimestamp(max(applied_at))) FROM `%s`.schema_version"
                  " WHERE note = '" SEARCH_MARK "' FORMAT TabSeparated",
                  m->db);
    int64_t mark = read_number(m, &sql, "cannot read the search index's mark");
    if (mark < 0) return -1;
    *since = 0;
    if (mark > 0) { /* the next second: a span of the mark's second may be older */
        int64_t at = (mark + 1) * 1000000000LL;
        pc_buf_printf(&sql,
                      "SELECT count() FROM (SELECT 1 FROM `%s`.spans WHERE created_ns < %lld"
                      " LIMIT 1) FORMAT TabSeparated",
                      m->db, (long long)at);
        int64_t older = read_number(m, &sql, "cannot look for spans older than the search index");
        if (older < 0) return -1;
        if (older > 0) *since = at;
    }
    return 0;
}

int pc_ch_schema_setup(const char *id, pc_ch_dialect d, const char *db, pc_ch_exec_fn exec,
                       void *ud, long timeout_ms, long copy_timeout_ms, int64_t *search_since_ns)
{
    mig m = {id, d, db, exec, ud, timeout_ms, copy_timeout_ms, NULL};
    pc_buf sql = PC_BUF_INIT;
    *search_since_ns = 0;
    pc_ch_ddl_database(&sql, db);
    if (run(&m, &sql, "cannot create the database", timeout_ms, NULL) < 0) return -1;
    if (load_tables(&m) < 0) return -1;
    bool search_fresh = !has(&m, "search_grams") || !has(&m, "search_blocks");
    bool had_spans = has(&m, "spans") || has(&m, "spans_v1") || has(&m, "spans_v2");
    bool had_version = has(&m, "schema_version");
    int64_t version = had_version ? stored_version(&m) : 0;
    int rc = version < 0 ? -1 : 0;
    if (rc == 0 && version > PC_CH_SCHEMA_VERSION) {
        pc_log(PC_LOG_ERROR, id,
               "database %s has schema version %lld; this collector knows versions up to %d "
               "(written by a newer collector? use that one, or another database)",
               db, (long long)version, PC_CH_SCHEMA_VERSION);
        rc = -1;
    }
    if (rc == 0 && version == PC_CH_SCHEMA_VERSION) {
        /* Current: only make sure the tables exist (IF NOT EXISTS). */
        rc = create(&m, true, "spans", PC_CH_SCHEMA_VERSION);
        if (rc == 0) rc = create(&m, false, "traces", PC_CH_SCHEMA_VERSION);
        if (rc == 0) rc = create_trace_rows(&m);
        if (rc == 0) rc = create_events(&m);
        if (rc == 0) rc = create_stats(&m);
        goto done;
    }
    if (rc == 0 && version < 2) {
        /* Fresh, or version 1 (possibly half-migrated to 2; schema_version may
         * exist without a row when the first version row failed). */
        bool was_v1 = has(&m, "spans") || has(&m, "spans_v1") || has(&m, "traces") ||
                      has(&m, "traces_v1");
        pc_ch_ddl_schema_version(&sql, db);
        if (was_v1) {
            rc = migrate_table(&m, "spans", 2, &(int64_t){0});
            if (rc == 0) rc = load_tables(&m);
            if (rc == 0) rc = migrate_table(&m, "traces", 2, &(int64_t){0});
            if (rc == 0) rc = run(&m, &sql, "cannot create the schema_version table",
                                  timeout_ms, NULL);
            if (rc == 0) rc = record(&m, 2, "migrated from 1: project_id in every key; previous "
                                            "tables kept as spans_v1, traces_v1");
            if (rc == 0)
                pc_log(PC_LOG_INFO, id,
                       "migrated database %s from schema 1 to 2 (project in every key); the "
                       "previous tables are kept as %s.spans_v1 and %s.traces_v1 (drop them "
                       "once satisfied)",
                       db, db, db);
            version = 2;
        } else {
            rc = create(&m, true, "spans", PC_CH_SCHEMA_VERSION);
            if (rc == 0) rc = create(&m, false, "traces", PC_CH_SCHEMA_VERSION);
            if (rc == 0) rc = create_trace_rows(&m);
            if (rc == 0) rc = create_events(&m);
            if (rc == 0) rc = create_stats(&m);
            if (rc == 0) rc = run(&m, &sql, "cannot create the schema_version table",
                                  timeout_ms, NULL);
            if (rc == 0) rc = record(&m, PC_CH_SCHEMA_VERSION, "created");
            goto done;
        }
        pc_buf_free(&sql);
        if (rc == 0) rc = load_tables(&m);
    }
    bool from2 = rc == 0 && version == 2;
    if (from2)
        rc = step(&m, 3, "trace list layout",
                  "migrated from 2: spans keyed (trace_id, project_id, span_id) in granules of "
                  "256 rows, traces keyed (project_id, started_ns, trace_id) with span_types; "
                  "previous tables kept as spans_v2, traces_v2");
    if (rc == 0 && (from2 || version == 3)) rc = step4(&m, !from2);
    if (rc == 0 && (from2 || version == 3 || version == 4)) rc = step5(&m);
    if (rc == 0 && (from2 || (version >= 3 && version <= 5))) rc = step6(&m);
    if (rc == 0 && (from2 || (version >= 3 && version <= 6))) rc = step7(&m);
    if (rc == 0 && (from2 || (version >= 3 && version <= 7))) rc = step8(&m);
    if (rc == 0 && (from2 || (version >= 3 && version <= 8))) rc = step9(&m);
done:
    /* the block size of the tables read by key, on tables of an earlier binary
     * too (clickhouse_sql.h) */
    for (int i = 0; rc == 0 && d == PC_CH_MODERN && i < 2; i++) {
        pc_buf alter = PC_BUF_INIT;
        pc_ch_ddl_blocks(&alter, db, i == 0 ? "spans" : "trace_rows");
        rc = run(&m, &alter, "cannot set a table's block size", timeout_ms, NULL);
    }
    if (rc == 0) rc = setup_search(&m, search_fresh, had_spans, search_since_ns);
    pc_buf_free(&sql);
    free(m.tables);
    return rc;
}
