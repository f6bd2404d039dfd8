/*
 * local_bloom.h - the SQL functions of the embedded store's attribute filter
 * of a trace (schema 9, issue 15; the filter: attr_bloom.h), kept on the
 * trace row (traces.attr_bloom).
 *
 * Where it sits: local_txn.c adds every written span's attributes to its
 * trace's filter (pc_attr_bloom_add_attrs) and stores it with the trace row
 * (INSERT; a later transaction ORs its spans' filter in with pc_bloom_or);
 * local_store.c's list asks pc_bloom_may(t.attr_bloom, key, value) before
 * verifying the trace's spans exactly (pc_attr_match, local_text.h).
 * A filter that is NULL (rows written before schema 9) or of another size
 * says "maybe".
 */
#ifndef PC_LOCAL_BLOOM_H
#define PC_LOCAL_BLOOM_H

#include <sqlite3.h>

/*
 * Registers on |db| the SQL functions pc_bloom_or(a, b) (the bytewise OR of
 * two filters; NULL when either is NULL or their sizes differ: "maybe
 * anything" stays so) and pc_bloom_may(filter, key, value) (1 or 0:
 * pc_attr_bloom_may). Returns an SQLite code.
 */
int pc_local_bloom_register(sqlite3 *db);

#endif
