/*
 * test_clickhouse_migrate.c - the schema migration's plan (clickhouse_migrate.c)
 * over a scripted table catalogue, no server: which statements run from every
 * state an interrupted migration can leave (1 -> 2 -> 3 by copy and swap,
 * 3 -> 4 by ADD COLUMN, 7 -> 8 a table, its view and a copy, 8 -> 9 a column),
 * that each step's version row comes last, and that a finished migration runs
 * once. The engines run the real thing in
 * tests/integration/test_migration.py.
 */
#include "check.h"

#include "exporters/clickhouse_migrate.h"
#include "exporters/clickhouse_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* trace_rows' columns, in the order the view and the copy name them
 * (clickhouse_sql.c): written out here, so a change to them shows. */
#define TRACE_ROWS_COLS                                                                            \
    "trace_id, project_id, started_at, service_name, status, root_span_id, span_count,"           \
    " root_span_name, has_root, source, started_ns, completed_ns, created_ns, input_tokens,"      \
    " output_tokens, span_types, session_id, user_id, models, first_start_ns, first_span_id,"     \
    " root_created_ns, root_start_ns, cost_sum, merge_keys, span_hashes"

static bool has(const pc_buf *b, const char *s)
{
    bool ok = b->data && strstr(b->data, s) != NULL;
    if (!ok) fprintf(stderr, "missing \"%s\" in: %s\n", s, b->data ? b->data : "(null)");
    return ok;
}

/* ------------------------------------------------------------ migration -- */

/*
 * A scripted catalogue standing in for the statements' effect on table names
 * (the engines run the real thing in test_migration.py): tables present,
 * the stored version, every statement seen, and a statement prefix to fail.
 */
typedef struct catalog {
    char tables[16][32];
    int n;
    int version;
    pc_buf log;
    const char *fail; /* a statement starting with this fails */
    pc_buf cols;      /* "table.column\n" of the schema 4 columns present */
    pc_ch_dialect d;
} catalog;

/* Adds "|t|.|col|" to the catalogue's columns. */
static void col_add(catalog *c, const char *t, const char *col)
{
    pc_buf_printf(&c->cols, "%s.%s\n", t, col);
}

/* Renames (|to| set) or drops the columns of table |t|. */
static void col_move(catalog *c, const char *t, const char *to)
{
    pc_buf keep = PC_BUF_INIT;
    size_t n = strlen(t);
    for (char *line = c->cols.data, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (strncmp(line, t, n) == 0 && line[n] == '.') {
            if (to) pc_buf_printf(&keep, "%s%.*s\n", to, (int)(nl - line - n), line + n);
        } else {
            pc_buf_printf(&keep, "%.*s\n", (int)(nl - line), line);
        }
    }
    pc_buf_free(&c->cols);
    c->cols = keep;
}

static int cat_find(catalog *c, const char *t)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->tables[i], t) == 0) return i;
    return -1;
}

static void cat_add(catalog *c, const char *t)
{
    if (cat_find(c, t) < 0) snprintf(c->tables[c->n++], 32, "%s", t);
}

static void cat_del(catalog *c, const char *t)
{
    int i = cat_find(c, t);
    if (i >= 0) memcpy(c->tables[i], c->tables[--c->n], 32);
}

/* The name after the |k|-th "`db`.`" in |sql|. */
static const char *name_at(const char *sql, int k, char *out)
{
    const char *p = sql;
    for (int i = 0; i <= k; i++) {
        p = strstr(p, "`db`.`");
        if (!p) return "";
        p += 6;
    }
    size_t n = strcspn(p, "`");
    snprintf(out, 32, "%.*s", (int)n, p);
    return out;
}

static int cat_exec(void *ud, const char *sql, const char *what, long timeout_ms, pc_buf *out)
{
    (void)what;
    (void)timeout_ms;
    catalog *c = ud;
    pc_buf_printf(&c->log, "%s\n", sql);
    if (c->fail && strncmp(sql, c->fail, strlen(c->fail)) == 0) return -1;
    char a[32], b[32];
    if (strncmp(sql, "SELECT name FROM system.tables", 30) == 0) {
        for (int i = 0; i < c->n; i++)
            pc_buf_printf(out, "%s\n", c->tables[i]);
    } else if (strncmp(sql, "CREATE TABLE IF NOT EXISTS `db`.schema_version", 46) == 0) {
        cat_add(c, "schema_version");
    } else if (strncmp(sql, "CREATE TABLE IF NOT EXISTS", 26) == 0) {
        if (cat_find(c, name_at(sql, 0, a)) < 0) { /* the current layout has schema 4's columns */
            for (size_t i = 0; strstr(sql, "llm_request_model") && i < PC_CH_SPAN_V4_N; i++)
                col_add(c, a, pc_ch_span_v4[i].name);
            for (size_t i = 0; strstr(sql, "models Array") && i < PC_CH_TRACE_V4_N; i++)
                col_add(c, a, pc_ch_trace_v4[i].name);
            for (size_t i = 0; strstr(sql, "merge_keys UInt8") && i < PC_CH_TRACE_V7_N; i++)
                col_add(c, a, pc_ch_trace_v7[i].name);
            for (size_t i = 0; strstr(sql, "span_hashes Array") && i < PC_CH_TRACE_V8_N; i++)
                col_add(c, a, pc_ch_trace_v8[i].name);
            for (size_t i = 0; strstr(sql, "attr_bloom Array") && i < PC_CH_TRACE_V9_N; i++)
                col_add(c, a, pc_ch_trace_v9[i].name);
        }
        cat_add(c, a);
    } else if (strncmp(sql, "CREATE MATERIALIZED VIEW IF NOT EXISTS", 38) == 0) {
        cat_add(c, name_at(sql, 0, a));
    } else if (strncmp(sql, "DROP TABLE IF EXISTS", 20) == 0) {
        cat_del(c, name_at(sql, 0, a));
        col_move(c, a, NULL);
    } else if (strncmp(sql, "RENAME TABLE", 12) == 0) {
        for (int k = 0; *name_at(sql, k, a); k += 2) {
            cat_del(c, a);
            cat_add(c, name_at(sql, k + 1, b));
            col_move(c, a, b);
        }
    } else if (strncmp(sql, "SELECT name FROM system.columns", 31) == 0) {
        const char *t = strstr(sql, "AND table = '");
        size_t n = t ? strcspn(t + 13, "'") : 0;
        for (char *line = c->cols.data, *nl; t && line && *line; line = nl + 1) {
            nl = strchr(line, '\n');
            if (strncmp(line, t + 13, n) == 0 && line[n] == '.')
                pc_buf_printf(out, "%.*s\n", (int)(nl - line - n - 1), line + n + 1);
        }
    } else if (strncmp(sql, "ALTER TABLE", 11) == 0 && strstr(sql, " ADD COLUMN ")) {
        char col[64];
        snprintf(col, sizeof(col), "%.*s", (int)strcspn(strstr(sql, " ADD COLUMN ") + 12, " "),
                 strstr(sql, " ADD COLUMN ") + 12);
        col_add(c, name_at(sql, 0, a), col);
    } else if (strncmp(sql, "SELECT max(version)", 19) == 0) {
        pc_buf_printf(out, "%d\n", c->version);
    } else if (strncmp(sql, "INSERT INTO `db`.schema_version", 31) == 0) {
        const char *v = strstr(sql, "VALUES (");
        c->version = v ? atoi(v + 8) : -1;
    } else if (strncmp(sql, "SELECT count()", 14) == 0 ||
               strncmp(sql, "SELECT uniqExact", 16) == 0) {
        pc_buf_puts(out, "42\n");
    }
    return 0;
}

static int migrate(catalog *c)
{
    pc_buf_reset(&c->log);
    int64_t since;
    return pc_ch_schema_setup("clickhouse", c->d, "db", cat_exec, c, 1000, 1000, &since);
}

static bool cat_is(catalog *c, const char *const *want, int n)
{
    bool ok = c->n == n;
    for (int i = 0; i < n; i++)
        ok = ok && cat_find(c, want[i]) >= 0;
    if (!ok) {
        fprintf(stderr, "tables:");
        for (int i = 0; i < c->n; i++)
            fprintf(stderr, " %s", c->tables[i]);
        fprintf(stderr, "\n");
    }
    return ok;
}

static const char *const MIGRATED[] = {
    "spans",        "traces",        "spans_v1",    "traces_v1",    "spans_v2",
    "traces_v2",    "schema_version", "span_events", "search_grams", "search_blocks",
    "stats_marks",  "stats_rollup",  "trace_rows",  "trace_rows_mv"};

static void test_migration_plan(void)
{
    /* Fresh database: the current tables and version 8, nothing copied. */
    catalog c = {.log = PC_BUF_INIT};
    CHECK_EQ_INT(migrate(&c), 0);
    const char *fresh[] = {"spans",        "traces",        "schema_version", "span_events",
                           "search_grams", "search_blocks", "stats_marks",    "stats_rollup",
                           "trace_rows",   "trace_rows_mv"};
    CHECK(cat_is(&c, fresh, 10));
    /* the view copies every traces row into trace_rows; created after both */
    const char *rows_table = strstr(c.log.data, "CREATE TABLE IF NOT EXISTS `db`.`trace_rows`");
    const char *rows_view = strstr(c.log.data, "CREATE MATERIALIZED VIEW IF NOT EXISTS"
                                               " `db`.`trace_rows_mv` TO `db`.`trace_rows` AS"
                                               " SELECT " TRACE_ROWS_COLS " FROM `db`.traces\n");
    const char *traces_table = strstr(c.log.data, "CREATE TABLE IF NOT EXISTS `db`.`traces`");
    CHECK(traces_table && rows_table && rows_view && traces_table < rows_view &&
          rows_table < rows_view);
    CHECK(has(&c.log, "ORDER BY (trace_id, project_id) TTL started_at + INTERVAL 90 DAY SETTINGS"
                      " index_granularity = 64, min_compress_block_size = 4096\n"));
    CHECK_EQ_INT(c.version, 9);
    CHECK(has(&c.log, "CREATE TABLE IF NOT EXISTS `db`.`span_events` ("));
    CHECK(!strstr(c.log.data, "INSERT INTO `db`.`"));
    CHECK(has(&c.log, "CREATE TABLE IF NOT EXISTS `db`.`spans` ("));
    CHECK(has(&c.log, "ORDER BY (trace_id, project_id, span_id)"));
    CHECK(has(&c.log, "VALUES (9, 'created')"));
    CHECK(!strstr(c.log.data, "VALUES (9, 'search index")); /* no span predates the index */
    CHECK(!strstr(c.log.data, " ADD ")); /* the only ALTERs: the block sizes (modern) */
    CHECK(has(&c.log, "ALTER TABLE `db`.spans MODIFY SETTING min_compress_block_size = 4096\n"));
    CHECK(has(&c.log,
              "ALTER TABLE `db`.trace_rows MODIFY SETTING min_compress_block_size = 4096\n"));
    /* A second start only reads the version and re-asserts the tables. */
    CHECK_EQ_INT(migrate(&c), 0);
    CHECK(!strstr(c.log.data, "RENAME") && !strstr(c.log.data, "INSERT"));

    /* Version 1 (the first release): to 2 (copy, swap), then to 3; old tables kept. */
    catalog v1 = {.tables = {"spans", "traces"}, .n = 2, .log = PC_BUF_INIT};
    CHECK_EQ_INT(migrate(&v1), 0);
    CHECK(cat_is(&v1, MIGRATED, 14));
    CHECK_EQ_INT(v1.version, 9);
    /* the tables of 3 were built in the current layout: nothing to add at 3 -> 4 */
    CHECK(!strstr(v1.log.data, "ADD COLUMN") && !strstr(v1.log.data, "INSERT INTO `db`.traces"));
    CHECK(has(&v1.log, "VALUES (4, 'migrated from 3"));
    CHECK(has(&v1.log, "VALUES (9, 'search index from here: older spans are scanned')"));
    CHECK(has(&v1.log, "CREATE TABLE IF NOT EXISTS `db`.`spans_v2` ("));
    CHECK(has(&v1.log, "ORDER BY (trace_id, project_id, started_at, span_id)")); /* v2's key */
    CHECK(has(&v1.log, "INSERT INTO `db`.`spans_v2` (span_id, trace_id, parent_span_id,"));
    CHECK(has(&v1.log, "INSERT INTO `db`.`traces_v2` (trace_id, service_name, started_at,"));
    CHECK(has(&v1.log, "SELECT span_id, trace_id, parent_span_id,"));
    CHECK(has(&v1.log, "FROM `db`.`spans`\n"));
    CHECK(has(&v1.log, "RENAME TABLE `db`.`spans` TO `db`.`spans_v1`, `db`.`spans_v2` TO"
                       " `db`.`spans`"));
    CHECK(has(&v1.log, "RENAME TABLE `db`.`traces` TO `db`.`traces_v1`"));
    CHECK(has(&v1.log, "VALUES (2, 'migrated from 1"));
    CHECK(has(&v1.log, "VALUES (3, 'migrated from 2"));
    CHECK(has(&v1.log, "RENAME TABLE `db`.`spans` TO `db`.`spans_v2`, `db`.`spans_v3` TO"
                       " `db`.`spans`"));
    CHECK_EQ_INT(migrate(&v1), 0); /* once */
    CHECK(!strstr(v1.log.data, "RENAME") && !strstr(v1.log.data, "INSERT"));
    CHECK(cat_is(&v1, MIGRATED, 14));

    /* Version 2: spans copied to the new key, traces rebuilt from the new spans. */
    catalog v2 = {.tables = {"spans", "traces", "spans_v1", "traces_v1", "schema_version"},
                  .n = 5, .version = 2, .log = PC_BUF_INIT};
    CHECK_EQ_INT(migrate(&v2), 0);
    CHECK(cat_is(&v2, MIGRATED, 14));
    CHECK_EQ_INT(v2.version, 9);
    /* schema 3's columns are copied; the new table has 4's with their defaults */
    CHECK(has(&v2.log, "INSERT INTO `db`.`spans_v3` (" PC_CH_SPAN_COLUMNS_V3 ") SELECT "
                       PC_CH_SPAN_COLUMNS_V3 " FROM"));
    CHECK(!strstr(v2.log.data, "spans_v1`")); /* the step from 1 is not redone */
    CHECK(has(&v2.log, "INSERT INTO `db`.`spans_v3` (span_id, trace_id,"));
    CHECK(has(&v2.log, "INSERT INTO `db`.`traces_v3` (trace_id, service_name, started_at,"));
    CHECK(has(&v2.log, "concat(',', arrayStringConcat(groupUniqArray(span_type), ','), ','),"));
    CHECK(has(&v2.log, "groupUniqArrayArray([llm_model, llm_request_model]))"
                       " FROM `db`.spans GROUP BY project_id, trace_id\n"));
    const char *spans_swap = strstr(v2.log.data, "RENAME TABLE `db`.`spans`");
    const char *traces_fill = strstr(v2.log.data, "INSERT INTO `db`.`traces_v3`");
    CHECK(spans_swap && traces_fill && spans_swap < traces_fill); /* from the new spans */
    CHECK(has(&v2.log, "RENAME TABLE `db`.`traces` TO `db`.`traces_v2`, `db`.`traces_v3` TO"
                       " `db`.`traces`"));

    /* Interrupted at every statement: each next start finishes the job. */
    static const char *const steps[] = {"INSERT INTO `db`.`spans_v2`", "RENAME TABLE `db`.`spans`",
                                        "INSERT INTO `db`.`traces_v2`",
                                        "RENAME TABLE `db`.`traces`",
                                        "CREATE TABLE IF NOT EXISTS `db`.schema_version",
                                        "INSERT INTO `db`.schema_version",
                                        "INSERT INTO `db`.`spans_v3`",
                                        "INSERT INTO `db`.`traces_v3`",
                                        "SELECT count() FROM (SELECT 1"};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        catalog k = {.tables = {"spans", "traces"}, .n = 2, .log = PC_BUF_INIT, .fail = steps[i]};
        CHECK_EQ_INT(migrate(&k), -1);
        CHECK(k.version < 3);
        k.fail = NULL;
        CHECK_EQ_INT(migrate(&k), 0);
        CHECK(cat_is(&k, MIGRATED, 14));
        CHECK_EQ_INT(k.version, 9);
        pc_buf_free(&k.log);
        pc_buf_free(&k.cols);
    }
    /* A swap cut between its two renames (18.16 renames pair by pair). */
    catalog half = {.tables = {"spans_v1", "spans_v2", "traces"}, .n = 3, .log = PC_BUF_INIT};
    CHECK_EQ_INT(migrate(&half), 0);
    CHECK(has(&half.log, "RENAME TABLE `db`.`spans_v2` TO `db`.`spans`\n"));
    CHECK(!strstr(half.log.data, "INSERT INTO `db`.`spans_v2`"));
    CHECK(cat_is(&half, MIGRATED, 14));
    catalog half3 = {.tables = {"spans_v1", "traces_v1", "spans_v2", "spans_v3", "traces",
                                "schema_version"},
                     .n = 6, .version = 2, .log = PC_BUF_INIT};
    CHECK_EQ_INT(migrate(&half3), 0);
    CHECK(has(&half3.log, "RENAME TABLE `db`.`spans_v3` TO `db`.`spans`\n"));
    CHECK(!strstr(half3.log.data, "INSERT INTO `db`.`spans_v3`"));
    CHECK(cat_is(&half3, MIGRATED, 14));

    /* A newer version is refused, untouched. */
    catalog newer = {.tables = {"spans", "traces", "schema_version"}, .n = 3, .version = 10,
                     .log = PC_BUF_INIT};
    CHECK_EQ_INT(migrate(&newer), -1);
    CHECK(!strstr(newer.log.data, "CREATE TABLE") && !strstr(newer.log.data, "RENAME"));
    pc_buf_free(&c.log);
    pc_buf_free(&v1.log);
    pc_buf_free(&v2.log);
    pc_buf_free(&half.log);
    pc_buf_free(&half3.log);
    pc_buf_free(&newer.log);
    pc_buf_free(&c.cols);
    pc_buf_free(&v1.cols);
    pc_buf_free(&v2.cols);
    pc_buf_free(&half.cols);
    pc_buf_free(&half3.cols);
}

static const char *const V3[] = {"spans", "traces", "spans_v2", "traces_v2", "schema_version"};

/* A schema 3 database (tables of that layout, no schema 4 column). */
static catalog v3_catalog(pc_ch_dialect d)
{
    catalog c = {.n = 5, .version = 3, .log = PC_BUF_INIT, .cols = PC_BUF_INIT, .d = d};
    for (int i = 0; i < 5; i++)
        snprintf(c.tables[i], 32, "%s", V3[i]);
    return c;
}

/* 3 -> 4 adds columns in place: no table built, copied or renamed. */
static void test_migration_plan_3_to_4(void)
{
    catalog c = v3_catalog(PC_CH_LEGACY);
    CHECK_EQ_INT(migrate(&c), 0);
    /* then 4 -> 5 -> 6 -> 7 -> 8: span_events, search and stats tables, merge keys, trace_rows */
    CHECK_EQ_INT(c.version, 9);
    const char *v8[] = {"spans",        "traces",        "spans_v2",    "traces_v2",
                        "schema_version", "span_events", "search_grams", "search_blocks",
                        "stats_marks",  "stats_rollup",  "trace_rows",  "trace_rows_mv"};
    CHECK(cat_is(&c, v8, 12));
    CHECK(has(&c.log, "VALUES (9, 'search index from here")); /* spans predate the index */
    CHECK(!strstr(c.log.data, "RENAME") &&
          !strstr(c.log.data, "CREATE TABLE IF NOT EXISTS `db`.`spans") &&
          !strstr(c.log.data, "CREATE TABLE IF NOT EXISTS `db`.`traces"));
    CHECK(has(&c.log, "VALUES (5, 'migrated from 4"));
    CHECK(has(&c.log, "VALUES (6, 'migrated from 5"));
    CHECK(has(&c.log, "VALUES (7, 'migrated from 6"));
    CHECK(has(&c.log, "SELECT name FROM system.columns WHERE database = 'db' AND table = 'spans'"));
    for (size_t i = 0; i < PC_CH_SPAN_V4_N; i++) {
        char want[192];
        if (pc_ch_span_v4[i].bits) /* 18.16: the cost's bits, and the alias reading them */
            snprintf(want, sizeof(want),
                     "ALTER TABLE `db`.`spans` ADD COLUMN %s_bits Nullable(UInt64)\n"
                     "ALTER TABLE `db`.`spans` ADD COLUMN %s Nullable(Float64) ALIAS"
                     " reinterpretAsFloat64(reinterpretAsString(%s_bits))\n",
                     pc_ch_span_v4[i].name, pc_ch_span_v4[i].name, pc_ch_span_v4[i].name);
        else
            snprintf(want, sizeof(want), "ALTER TABLE `db`.`spans` ADD COLUMN %s %s\n",
                     pc_ch_span_v4[i].name, pc_ch_span_v4[i].type); /* no codec on 18.16 */
        CHECK(has(&c.log, want));
    }
    CHECK(has(&c.log, "ALTER TABLE `db`.`spans` ADD COLUMN cache_read_tokens Int64 DEFAULT -1\n"));
    CHECK(has(&c.log, "ALTER TABLE `db`.`traces` ADD COLUMN models Array(String)\n"));
    CHECK(!strstr(c.log.data, "ADD INDEX")); /* 18.16 has no skip indexes */
    /* old traces get their models: partial rows from their LLM spans */
    CHECK(has(&c.log, "INSERT INTO `db`.traces (" PC_CH_TRACE_COLUMNS_V3 "," PC_CH_TRACE_V4_COLS
                      ") SELECT trace_id,"));
    CHECK(has(&c.log, " FROM `db`.spans WHERE llm_model != '' OR llm_request_model != '' GROUP BY"
                      " project_id, trace_id\n"));
    const char *backfill = strstr(c.log.data, "INSERT INTO `db`.traces (");
    const char *models = strstr(c.log.data, "ADD COLUMN models");
    const char *version = strstr(c.log.data, "INSERT INTO `db`.schema_version");
    CHECK(models && backfill && version && models < backfill && backfill < version);
    CHECK(has(&c.log, "VALUES (4, 'migrated from 3"));
    CHECK_EQ_INT(migrate(&c), 0); /* once */
    CHECK(!strstr(c.log.data, "ALTER") && !strstr(c.log.data, "INSERT"));
    pc_buf_free(&c.log);
    pc_buf_free(&c.cols);

    /* modern: messages compressed, and the skip indexes added (IF NOT EXISTS) */
    catalog m = v3_catalog(PC_CH_MODERN);
    CHECK_EQ_INT(migrate(&m), 0);
    CHECK(has(&m.log, "ALTER TABLE `db`.`spans` ADD COLUMN input_messages String CODEC(ZSTD(1))"));
    CHECK(has(&m.log, "ALTER TABLE `db`.`spans` ADD INDEX IF NOT EXISTS idx_start_ns start_ns TYPE"
                      " minmax GRANULARITY 4"));
    CHECK(has(&m.log, "ALTER TABLE `db`.`traces` ADD INDEX IF NOT EXISTS idx_models models TYPE"
                      " bloom_filter GRANULARITY 4"));
    pc_buf_free(&m.log);
    pc_buf_free(&m.cols);

    /* Interrupted at each statement: the next start finishes, adding each
     * column once over both starts. */
    static const char *const cuts[] = {"ALTER TABLE `db`.`spans` ADD COLUMN cost_usd",
                                       "ALTER TABLE `db`.`traces` ADD COLUMN models",
                                       "ALTER TABLE `db`.`traces` ADD INDEX",
                                       "INSERT INTO `db`.traces", "INSERT INTO `db`.schema_version"};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        catalog k = v3_catalog(PC_CH_MODERN);
        k.fail = cuts[i];
        CHECK_EQ_INT(migrate(&k), -1);
        CHECK_EQ_INT(k.version, 3);
        int first = 0, second = 0;
        for (const char *p = k.log.data; (p = strstr(p, "ADD COLUMN ")); p++)
            first++;
        k.fail = NULL;
        CHECK_EQ_INT(migrate(&k), 0);
        CHECK_EQ_INT(k.version, 9);
        for (const char *p = k.log.data; (p = strstr(p, "ADD COLUMN ")); p++)
            second++;
        /* the statement that failed was tried, not applied: it runs again */
        CHECK_EQ_INT(first + second - (strstr(cuts[i], "ADD COLUMN") ? 1 : 0),
                     PC_CH_SPAN_V4_N + PC_CH_TRACE_V4_N + PC_CH_TRACE_V7_N +
                         PC_CH_TRACE_V8_N + PC_CH_TRACE_V9_N);
        CHECK(has(&k.log, "VALUES (4, 'migrated from 3"));
        pc_buf_free(&k.log);
        pc_buf_free(&k.cols);
    }
}

/* 5 -> 6: the stats tables, every stored hour marked, then the version row;
 * interrupted anywhere, the next start redoes the step whole (marks twice:
 * harmless). */
static void test_migration_plan_5_to_6(void)
{
    const char *v5[] = {"spans",       "traces",       "schema_version",
                        "span_events", "search_grams", "search_blocks"};
    const char *v8[] = {"spans",        "traces",        "schema_version", "span_events",
                        "search_grams", "search_blocks", "stats_marks",    "stats_rollup",
                        "trace_rows",   "trace_rows_mv"};
    static const char *const cuts[] = {NULL, "CREATE TABLE IF NOT EXISTS `db`.`stats_rollup`",
                                       "INSERT INTO `db`.stats_marks",
                                       "INSERT INTO `db`.schema_version"};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        catalog k = {.n = 6, .version = 5, .log = PC_BUF_INIT, .cols = PC_BUF_INIT,
                     .fail = cuts[i]};
        for (int t = 0; t < 6; t++)
            snprintf(k.tables[t], 32, "%s", v5[t]);
        if (cuts[i]) {
            CHECK_EQ_INT(migrate(&k), -1);
            CHECK_EQ_INT(k.version, 5);
            k.fail = NULL;
        }
        CHECK_EQ_INT(migrate(&k), 0);
        CHECK_EQ_INT(k.version, 9); /* then 6 -> 7 -> 8 */
        CHECK(cat_is(&k, v8, 10));
        CHECK(has(&k.log, "INSERT INTO `db`.stats_marks (hour, trace_id) SELECT DISTINCT"
                          " toUInt32(greatest(intDiv(start_ns, 3600000000000), 0)), trace_id"
                          " FROM `db`.spans\n"));
        const char *marks = strstr(k.log.data, "INSERT INTO `db`.stats_marks");
        const char *version = strstr(k.log.data, "VALUES (6, 'migrated from 5");
        CHECK(marks && version && marks < version);
        CHECK(!strstr(k.log.data, "RENAME") && !strstr(k.log.data, "ADD INDEX") &&
              !strstr(k.log.data, "ADD COLUMN session_id"));
        CHECK_EQ_INT(migrate(&k), 0); /* once */
        CHECK(!strstr(k.log.data, "INSERT"));
        pc_buf_free(&k.log);
        pc_buf_free(&k.cols);
    }
}

/*
 * Starts |k| (at version |from|) cut at the statement |cut| (NULL: not cut),
 * which must fail at |from|, then again uncut, which must reach version 9 with
 * the |n| tables |want|. Returns both starts' statements; k->log keeps the
 * second start's.
 */
static pc_buf cut_and_resume(catalog *k, const char *cut, int from, const char *const *want, int n)
{
    pc_buf all = PC_BUF_INIT;
    k->fail = cut;
    if (cut) {
        CHECK_EQ_INT(migrate(k), -1);
        CHECK_EQ_INT(k->version, from);
        pc_buf_append(&all, k->log.data, k->log.len);
        k->fail = NULL;
    }
    CHECK_EQ_INT(migrate(k), 0);
    CHECK_EQ_INT(k->version, 9);
    CHECK(cat_is(k, want, n));
    pc_buf_append(&all, k->log.data, k->log.len);
    return all;
}

/* The tables of schemas 8 and 9; schemas 5 to 7 have the first V6_TABLES. */
static const char *const V8[] = {"spans",        "traces",        "schema_version", "span_events",
                                 "search_grams", "search_blocks", "stats_marks",    "stats_rollup",
                                 "trace_rows",   "trace_rows_mv"};
#define V8_TABLES 10
#define V6_TABLES 8

/* A catalogue at |version| (6 to 8) with its tables and, from 7, its traces
 * columns. */
static catalog step_catalog(int version)
{
    catalog k = {.n = version >= 8 ? V8_TABLES : V6_TABLES, .version = version,
                 .log = PC_BUF_INIT, .cols = PC_BUF_INIT};
    for (int t = 0; t < k.n; t++)
        snprintf(k.tables[t], 32, "%s", V8[t]);
    for (size_t c = 0; version >= 7 && c < PC_CH_TRACE_V7_N; c++)
        col_add(&k, "traces", pc_ch_trace_v7[c].name);
    for (size_t c = 0; version >= 8 && c < PC_CH_TRACE_V8_N; c++)
        col_add(&k, "traces", pc_ch_trace_v8[c].name);
    return k;
}

/* The ADD COLUMN statements of |log| that took effect: the one a start was
 * cut at (|cut|) was tried, not applied. */
static int adds_applied(const pc_buf *log, const char *cut)
{
    int adds = 0;
    for (const char *p = log->data; (p = strstr(p, "ADD COLUMN ")); p++)
        adds++;
    return adds - (cut && strstr(cut, "ADD COLUMN") ? 1 : 0);
}

/* A later start of |k| migrates nothing: it adds no column and copies no row. */
static void check_once(catalog *k)
{
    CHECK_EQ_INT(migrate(k), 0);
    CHECK(!strstr(k->log.data, "ADD COLUMN") && !strstr(k->log.data, "INSERT"));
}

/* 6 -> 7: the traces' merge keys added in place, then the version row;
 * interrupted at any statement, the next start adds what is missing. */
static void test_migration_plan_6_to_7(void)
{
    static const char *const cuts[] = {NULL, "ALTER TABLE `db`.`traces` ADD COLUMN root_start_ns",
                                       "INSERT INTO `db`.schema_version"};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        catalog k = step_catalog(6);
        pc_buf all = cut_and_resume(&k, cuts[i], 6, V8, V8_TABLES);
        pc_buf_free(&k.log);
        k.log = all;
        /* each column added once over both starts; then 7 -> 8 and 8 -> 9 add their own */
        CHECK_EQ_INT(adds_applied(&k.log, cuts[i]),
                     PC_CH_TRACE_V7_N + PC_CH_TRACE_V8_N + PC_CH_TRACE_V9_N);
        CHECK(has(&k.log, "ALTER TABLE `db`.`traces` ADD COLUMN merge_keys UInt8\n"));
        CHECK(has(&k.log, "ALTER TABLE `db`.`traces` ADD COLUMN cost_sum Nullable(Float64)\n"));
        const char *added = strstr(k.log.data, "ADD COLUMN merge_keys");
        const char *version = strstr(k.log.data, "VALUES (7, 'migrated from 6");
        CHECK(added && version && added < version);
        CHECK(!strstr(k.log.data, "RENAME") && !strstr(k.log.data, "`db`.`spans` ADD") &&
              !strstr(k.log.data, "INSERT INTO `db`.traces"));
        check_once(&k);
        pc_buf_free(&k.log);
        pc_buf_free(&k.cols);
    }
}

/* 7 -> 8: the span hashes added to traces in place, trace_rows and its view
 * created, the rows without hashes copied, then the version row; interrupted
 * at any statement, the next start redoes what is missing (a row copied twice
 * holds no hashes: its trace is read from its spans either way). */
static void test_migration_plan_7_to_8(void)
{
    static const char *const cuts[] = {NULL, "ALTER TABLE `db`.`traces` ADD COLUMN span_hashes",
                                       "CREATE TABLE IF NOT EXISTS `db`.`trace_rows`",
                                       "CREATE MATERIALIZED VIEW",
                                       "INSERT INTO `db`.`trace_rows`",
                                       "INSERT INTO `db`.schema_version"};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        catalog k = step_catalog(7);
        pc_buf all = cut_and_resume(&k, cuts[i], 7, V8, V8_TABLES);
        /* this start's statements in order */
        const char *added = strstr(k.log.data, "ALTER TABLE `db`.`traces` ADD COLUMN span_hashes"
                                               " Array(UInt32)\n");
        const char *table = strstr(k.log.data, "CREATE TABLE IF NOT EXISTS `db`.`trace_rows`");
        const char *view = strstr(k.log.data, "CREATE MATERIALIZED VIEW IF NOT EXISTS");
        const char *copy = strstr(k.log.data,
                                  "INSERT INTO `db`.`trace_rows` (" TRACE_ROWS_COLS
                                  ") SELECT " TRACE_ROWS_COLS " FROM `db`.traces WHERE"
                                  " length(span_hashes) = 0\n");
        const char *version = strstr(k.log.data, "VALUES (8, 'migrated from 7");
        bool cut_after_add = cuts[i] && !strstr(cuts[i], "ADD COLUMN");
        CHECK(cut_after_add ? !added : added != NULL);
        CHECK(table && view && copy && version && table < view && view < copy &&
              copy < version && (!added || added < table));
        pc_buf_free(&k.log);
        k.log = all;
        CHECK_EQ_INT(adds_applied(&k.log, cuts[i]),
                     PC_CH_TRACE_V8_N + PC_CH_TRACE_V9_N); /* then 8 -> 9's */
        CHECK(!strstr(k.log.data, "RENAME") && !strstr(k.log.data, "`db`.`spans` ADD"));
        check_once(&k); /* a later start only makes sure of the tables */
        CHECK(has(&k.log, "CREATE MATERIALIZED VIEW IF NOT EXISTS `db`.`trace_rows_mv`"));
        pc_buf_free(&k.log);
        pc_buf_free(&k.cols);
    }
}

/* 8 -> 9: the traces rows' attribute filters added in place, then the
 * version row; interrupted at either, the next start adds what is missing;
 * nothing copied, no table made. */
static void test_migration_plan_8_to_9(void)
{
    static const char *const cuts[] = {NULL, "ALTER TABLE `db`.`traces` ADD COLUMN attr_bloom",
                                       "INSERT INTO `db`.schema_version"};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        catalog k = step_catalog(8);
        pc_buf all = cut_and_resume(&k, cuts[i], 8, V8, V8_TABLES);
        const char *added = strstr(k.log.data, "ALTER TABLE `db`.`traces` ADD COLUMN attr_bloom"
                                               " Array(UInt64)\n");
        const char *version = strstr(k.log.data, "VALUES (9, 'migrated from 8");
        bool cut_after_add = cuts[i] && !strstr(cuts[i], "ADD COLUMN");
        CHECK(cut_after_add ? !added : added != NULL);
        CHECK(version && (!added || added < version));
        pc_buf_free(&k.log);
        k.log = all;
        CHECK_EQ_INT(adds_applied(&k.log, cuts[i]), PC_CH_TRACE_V9_N);
        CHECK(!strstr(k.log.data, "RENAME") && !strstr(k.log.data, "`db`.`spans` ADD") &&
              !strstr(k.log.data, "INSERT INTO `db`.`trace_rows`") &&
              !strstr(k.log.data, "INSERT INTO `db`.traces"));
        check_once(&k);
        pc_buf_free(&k.log);
        pc_buf_free(&k.cols);
    }
}

int main(void)
{
    RUN(test_migration_plan);
    RUN(test_migration_plan_3_to_4);
    RUN(test_migration_plan_5_to_6);
    RUN(test_migration_plan_6_to_7);
    RUN(test_migration_plan_7_to_8);
    RUN(test_migration_plan_8_to_9);
    return CHECK_DONE();
}
