/*
 * local_migrate_v2.h - the embedded store's steps out of its first schemas:
 * 1 -> 2 (the project in every key) and 2 -> 3 (traces keyed by tid). The
 * later steps and the contract are local_schema.c's.
 *
 * Used by pc_local_schema_setup only, inside its migration transaction; each
 * step logs what it did (as |id|, naming |path|) or why it failed.
 */
#ifndef PC_LOCAL_MIGRATE_V2_H
#define PC_LOCAL_MIGRATE_V2_H

#include <sqlite3.h>

/* Version 1 -> 2: old tables renamed, version 2's created, every row copied
 * (trace ids several projects wrote into become a trace per project), the old
 * tables dropped; the counts checked. 0 / -1 after logging. */
int pc_local_migrate_1_2(const char *id, sqlite3 *db, const char *path);

/* Version 2 -> 3: old tables renamed, |schema| (the current schema's SQL)
 * run, every row copied (tids in first-ingest order, span types summarized),
 * the old tables dropped; the counts checked. 0 / -1 after logging. */
int pc_local_migrate_2_3(const char *id, sqlite3 *db, const char *path, const char *schema);

#endif
