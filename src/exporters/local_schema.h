/*
 * local_schema.h - the embedded store's schema and migrations (local_schema.c
 * holds the schema contract: tables, keys, indexes, why).
 *
 * Used by local_writer.c on the writer connection, once, at start, before any
 * other statement.
 */
#ifndef PC_LOCAL_SCHEMA_H
#define PC_LOCAL_SCHEMA_H

#include <sqlite3.h>

#define PC_LOCAL_SCHEMA_VERSION 10

/* span_text's rowid is a search block: tid >> PC_LOCAL_BLOCK_BITS, 16 traces
 * in first-write order (local_schema.c says why). */
#define PC_LOCAL_BLOCK_BITS 4

/*
 * Brings |db| (the file |path|) to PC_LOCAL_SCHEMA_VERSION: creates it on a
 * fresh file, migrates an older one in one transaction (logged once as |id|),
 * refuses a newer one. pc_search_text (local_text.h) must be registered on
 * |db| (the migration indexes old rows). 0 / -1 after logging.
 */
int pc_local_schema_setup(const char *id, sqlite3 *db, const char *path);

/* sqlite3_exec of |sql| on |db|, logging "|what| in |path|: <error>" as |id|
 * on failure (the migration steps' way to run their SQL). 0 / -1. */
int pc_local_exec(const char *id, sqlite3 *db, const char *sql, const char *what,
                  const char *path);

#endif
