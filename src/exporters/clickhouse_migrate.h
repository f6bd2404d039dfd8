/*
 * clickhouse_migrate.h - the `clickhouse` exporter's schema on start: creates
 * the database and tables of the current schema version, or brings a database
 * written by an earlier release to it, once.
 *
 * Data flow: clickhouse.c's start() calls pc_ch_schema_setup before it
 * accepts any batch or serves any read; every statement goes through the
 * caller's |exec| (HTTP to the server), so this module holds only the plan
 * and the SQL text. The table contract is documented in clickhouse_sql.c.
 */
#ifndef PC_CLICKHOUSE_MIGRATE_H
#define PC_CLICKHOUSE_MIGRATE_H

#include "buf.h"
#include "clickhouse_query.h"

#include <stdint.h>

/* The schema version this binary writes and reads (see clickhouse_sql.c). */
#define PC_CH_SCHEMA_VERSION 9

/*
 * Runs the statement |sql| on the server within |timeout_ms|. The answer
 * (TabSeparated) lands in |out| when it is not NULL (the caller frees it).
 * Returns 0, or -1 after logging "|what|: <why>".
 */
typedef int (*pc_ch_exec_fn)(void *ud, const char *sql, const char *what, long timeout_ms,
                             pc_buf *out);

/*
 * Brings database |db| to PC_CH_SCHEMA_VERSION in dialect |d|:
 *  - a fresh database gets the current tables and its version row;
 *  - an older database climbs one version at a time: for the step k -> k+1
 *    new tables are built beside the old ones (spans_v{k+1}, traces_v{k+1}),
 *    filled (INSERT ... SELECT), then the names swapped (old -> spans_vk /
 *    traces_vk, kept as a backup; new -> spans / traces), then the version
 *    row k+1. Version 1 is the first release (spans/traces, no
 *    schema_version table); 2 -> 3 rebuilds the traces from the spans;
 *    3 -> 4 only adds columns (ALTER TABLE ... ADD COLUMN for each one the
 *    table lacks: existing rows read the defaults, "unknown"), the modern
 *    dialect's skip indexes, and the model lists of existing traces. Each
 *    statement can be interrupted: the next start looks at the version and
 *    at which tables exist and goes on from there (a copy that may be partial
 *    is dropped and redone; a half-done swap finished);
 *  - a database at a newer version than this binary is refused.
 *  - the search index's tables (clickhouse_search.h) are created when
 *    missing; when spans were stored before them, a schema_version row (the
 *    current version, note "search index from here: ...") marks when, and
 *    *search_since_ns is then (while spans written before it remain) the
 *    time from which every span is indexed (the store scans older ones);
 *    else 0.
 * Logs once per step what it migrated, as |id|. |copy_timeout_ms| bounds each copy
 * statement (they can be long). Returns 0, or -1 after logging.
 */
int pc_ch_schema_setup(const char *id, pc_ch_dialect d, const char *db, pc_ch_exec_fn exec,
                       void *ud, long timeout_ms, long copy_timeout_ms, int64_t *search_since_ns);

#endif
