/*
 * local_bloom.h - the embedded store's attribute filter of a trace (schema 9,
 * issue 15): a small Bloom filter of the (key, value) pairs of its spans'
 * attributes, kept on the trace row (traces.attr_bloom), so the trace list's
 * attribute filter (attr.KEY=VALUE) skips most traces that cannot match
 * without reading and decompressing their spans.
 *
 * Where it sits: local_txn.c adds every written span's attributes to its
 * trace's filter (pc_local_bloom_add_attrs) and stores it with the trace row
 * (INSERT; a later transaction ORs its spans' filter in with pc_bloom_or);
 * local_store.c's list asks pc_bloom_may(t.attr_bloom, key, value) before
 * verifying the trace's spans exactly (pc_attr_match, local_text.h).
 *
 * The filter: PC_LOCAL_BLOOM_BYTES bytes (bit i is bit i % 8 of byte i / 8),
 * PC_LOCAL_BLOOM_K bits per pair, taken as 10-bit slices of SipHash-2-4 under
 * a fixed key (a stored format: never the process key of hash.h) of the bytes
 * key '\0' text, where text is the value's text form as pc_attr_match
 * compares it (local_text.h: a string as is; an int, double or bool as the
 * JSON writer writes it, read back). Null, array and map values have no
 * pair. A key or value the JSON writer would change (invalid UTF-8) sets
 * every bit: the filter then says "maybe" to anything.
 * Contract: every pair pc_attr_match can match in a span's stored attributes
 * has its bits set in its trace's filter (no false negatives); a filter that
 * is NULL (rows written before schema 9) or of another size says "maybe".
 * Changing the size, the hash, its key or the text form needs a schema
 * version (the stored filters would lie).
 */
#ifndef PC_LOCAL_BLOOM_H
#define PC_LOCAL_BLOOM_H

#include "span.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#define PC_LOCAL_BLOOM_BYTES 128
#define PC_LOCAL_BLOOM_K 4

/* Adds the pairs of |a| (a span's attributes) to |bloom|. */
void pc_local_bloom_add_attrs(unsigned char bloom[PC_LOCAL_BLOOM_BYTES], const pc_attrs *a);

/* Adds the pair (|key|, |text|) (lengths in bytes) to |bloom|. */
void pc_local_bloom_add(unsigned char bloom[PC_LOCAL_BLOOM_BYTES], const char *key, size_t key_len,
                        const char *text, size_t text_len);

/* False only when the filter |bloom| (|n| bytes; NULL: none) certainly holds
 * no pair (|key|, |text|). */
bool pc_local_bloom_may(const unsigned char *bloom, size_t n, const char *key, size_t key_len,
                        const char *text, size_t text_len);

/*
 * Registers on |db| the SQL functions pc_bloom_or(a, b) (the bytewise OR of
 * two filters; NULL when either is NULL or their sizes differ: "maybe
 * anything" stays so) and pc_bloom_may(filter, key, value) (1 or 0, the
 * function above). Returns an SQLite code.
 */
int pc_local_bloom_register(sqlite3 *db);

#endif
