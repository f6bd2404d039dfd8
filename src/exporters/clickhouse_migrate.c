/*
 * clickhouse_migrate.c - schema creation and migration of the `clickhouse`
 * exporter (see clickhouse_migrate.h).
 *
 * The version lives in the database: table `schema_version`, highest row
 * wins; a database without that table but with a spans table is version 1
 * (the first release). ClickHouse has no transactions, so the migration is a
 * sequence of steps each of which leaves a state the next start recognizes
 * from the table names alone, per table T (spans, traces):
 *
 *   {T}            version 1 data: build T_v2, copy, swap
 *   {T, T_v2}      interrupted copy: drop T_v2, build, copy, swap again
 *   {T_v1, T_v2}   interrupted swap (RENAME of two pairs is not atomic on
 *                  18.16): rename T_v2 to T
 *   {T_v1, T}      swapped: nothing left to do for T
 *   {}             fresh: create T
 *
 * and only when both tables are done is the version row written, so a second
 * start after success does nothing but read the version.
 *
 * Why copy instead of ALTER: the sorting key (ORDER BY) of a MergeTree table
 * cannot be changed to put project_id in front of existing columns, in any
 * version; a new table is the only way.
 *
 * Writers of the old release must be stopped before the new one starts:
 * rows an old collector inserts into T while it is being copied land in the
 * backup T_v1 only (after the swap they land in the new T, whose columns are
 * the same).
 */
#include "clickhouse_migrate.h"

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

/* CREATE TABLE IF NOT EXISTS `db`.`name` of kind |spans| (else traces). */
static int create(mig *m, bool spans, const char *name)
{
    pc_buf sql = PC_BUF_INIT;
    if (spans)
        pc_ch_ddl_spans(&sql, m->d, m->db, name);
    else
        pc_ch_ddl_traces(&sql, m->d, m->db, name);
    return run(m, &sql, spans ? "cannot create the spans table" : "cannot create the traces table",
               m->timeout_ms, NULL);
}

static int64_t count_rows(mig *m, const char *table)
{
    pc_buf sql = PC_BUF_INIT, out = PC_BUF_INIT;
    pc_buf_printf(&sql, "SELECT count() FROM `%s`.`%s` FORMAT TabSeparated", m->db, table);
    if (run(m, &sql, "cannot count rows", m->timeout_ms, &out) < 0) return -1;
    int64_t n = out.data ? strtoll(out.data, NULL, 10) : -1;
    pc_buf_free(&out);
    return n;
}

/*
 * Brings table |t| ("spans" or "traces") to the current key; see the state
 * table above. |*copied| gets the rows copied (0 when none were). 0 / -1.
 */
static int migrate_table(mig *m, const char *t, int64_t *copied)
{
    bool spans = strcmp(t, "spans") == 0;
    char v1[16], v2[16];
    snprintf(v1, sizeof(v1), "%s_v1", t);
    snprintf(v2, sizeof(v2), "%s_v2", t);
    *copied = 0;
    pc_buf sql = PC_BUF_INIT;
    if (has(m, v1) && has(m, t)) return 0; /* swapped */
    if (has(m, v1) && has(m, v2)) {       /* interrupted swap */
        pc_buf_printf(&sql, "RENAME TABLE `%s`.`%s` TO `%s`.`%s`", m->db, v2, m->db, t);
        return run(m, &sql, "migration: cannot rename the new table", m->timeout_ms, NULL);
    }
    if (!has(m, t)) return create(m, spans, t); /* fresh */

    /* Version 1 data in |t|: (re)build the new table beside it, copy, swap. */
    pc_buf_printf(&sql, "DROP TABLE IF EXISTS `%s`.`%s`", m->db, v2);
    if (run(m, &sql, "migration: cannot drop a partial copy", m->timeout_ms, NULL) < 0) return -1;
    if (create(m, spans, v2) < 0) return -1;
    const char *cols = spans ? pc_ch_span_columns() : pc_ch_trace_columns();
    pc_buf_printf(&sql, "INSERT INTO `%s`.`%s` (%s) SELECT %s FROM `%s`.`%s`", m->db, v2, cols,
                  cols, m->db, t);
    if (run(m, &sql, "migration: cannot copy the rows", m->copy_timeout_ms, NULL) < 0) return -1;
    int64_t before = count_rows(m, t), after = count_rows(m, v2);
    if (before < 0 || after < 0) return -1;
    if (after != before) {
        pc_log(PC_LOG_ERROR, m->id,
               "migration of %s.%s: copied %lld of %lld rows; the old table is untouched",
               m->db, t, (long long)after, (long long)before);
        return -1;
    }
    pc_buf_printf(&sql, "RENAME TABLE `%s`.`%s` TO `%s`.`%s`, `%s`.`%s` TO `%s`.`%s`", m->db, t,
                  m->db, v1, m->db, v2, m->db, t);
    if (run(m, &sql, "migration: cannot swap the tables", m->timeout_ms, NULL) < 0) return -1;
    *copied = after;
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

int pc_ch_schema_setup(const char *id, pc_ch_dialect d, const char *db, pc_ch_exec_fn exec,
                       void *ud, long timeout_ms, long copy_timeout_ms)
{
    mig m = {id, d, db, exec, ud, timeout_ms, copy_timeout_ms, NULL};
    pc_buf sql = PC_BUF_INIT;
    pc_ch_ddl_database(&sql, db);
    if (run(&m, &sql, "cannot create the database", timeout_ms, NULL) < 0) return -1;
    if (load_tables(&m) < 0) return -1;
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
        rc = create(&m, true, "spans");
        if (rc == 0) rc = create(&m, false, "traces");
        free(m.tables);
        return rc;
    }
    /* Version 0 (fresh) or 1, possibly half-migrated. */
    bool was_v1 = has(&m, "spans") || has(&m, "spans_v1") || has(&m, "traces") ||
                  has(&m, "traces_v1");
    int64_t n_spans = 0, n_traces = 0;
    if (rc == 0) rc = migrate_table(&m, "spans", &n_spans);
    if (rc == 0) rc = migrate_table(&m, "traces", &n_traces);
    if (rc == 0 && !had_version) {
        pc_ch_ddl_schema_version(&sql, db);
        rc = run(&m, &sql, "cannot create the schema_version table", timeout_ms, NULL);
    }
    if (rc == 0) {
        pc_buf_printf(&sql, "INSERT INTO `%s`.schema_version (version, note) VALUES (%d, ", db,
                      PC_CH_SCHEMA_VERSION);
        pc_ch_quote_cstr(&sql, was_v1 ? "migrated from 1: project_id in every key; previous "
                                        "tables kept as spans_v1, traces_v1"
                                      : "created");
        pc_buf_putc(&sql, ')');
        rc = run(&m, &sql, "cannot record the schema version", timeout_ms, NULL);
    }
    if (rc == 0 && was_v1)
        pc_log(PC_LOG_INFO, id,
               "migrated database %s from schema 1 to %d (project in every key): %lld span rows "
               "and %lld trace rows copied by this start; the previous tables are kept as "
               "%s.spans_v1 and %s.traces_v1 (drop them once satisfied)",
               db, PC_CH_SCHEMA_VERSION, (long long)n_spans, (long long)n_traces, db, db);
    free(m.tables);
    return rc;
}
