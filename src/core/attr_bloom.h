/*
 * attr_bloom.h - the attribute filter of a trace (issue 15): a small Bloom
 * filter of the (key, value) pairs of its spans' attributes, kept beside the
 * trace's index row by both stores, so the trace list's attribute filter
 * (attr.KEY=VALUE) skips most traces that cannot match without reading their
 * spans.
 *
 * Where it sits: the stores' writers add every written span's attributes to
 * its trace's filter (pc_attr_bloom_add_attrs); the embedded store keeps one
 * per trace row (local_bloom.h: SQLite schema 9, traces.attr_bloom, rows of
 * later transactions ORed in), ClickHouse one per traces row, that is per
 * trace per insert (clickhouse_sql.h: schema 9, traces.attr_bloom as 16
 * UInt64 words, word w holding bits 64w..64w+63). Their lists ask the filter
 * before verifying a trace's spans exactly (pc_attr_bloom_may in SQLite, the
 * bits of pc_attr_bloom_bits tested by the ClickHouse server).
 *
 * The filter: PC_ATTR_BLOOM_BYTES bytes (bit i is bit i % 8 of byte i / 8),
 * PC_ATTR_BLOOM_K bits per pair, taken as 10-bit slices of SipHash-2-4 under
 * a fixed key (a stored format: never the process key of hash.h) of the bytes
 * key '\0' text, where text is the value's text form (pc_attr_text: a string
 * as is; an int, double or bool as the JSON writer writes it, read back).
 * Null, array and map values have no pair, nor a text longer than
 * PC_ATTR_BLOOM_MAX_TEXT bytes (prompts and completions: hashing them was
 * about half the filter's CPU, and nobody lists traces by a whole prompt).
 * A key or value the JSON writer would change (invalid UTF-8) sets every
 * bit: the filter then says "maybe" to anything.
 * Contract: every pair whose text form a store's exact matcher can match in
 * a span's stored attributes, and whose text is at most
 * PC_ATTR_BLOOM_MAX_TEXT bytes, has its bits set in its trace's filter (no
 * false negatives); the filter says "maybe" to a longer text, and a filter
 * that is missing (rows written before it) or of another size says "maybe"
 * to anything. Changing the size, the hash, its key or the text form needs a
 * schema version of both stores (the stored filters would lie), and so does
 * raising PC_ATTR_BLOOM_MAX_TEXT (stored filters lack the longer pairs it
 * would ask them about); lowering it does not (the embedded store's filters
 * of schema 9 written before the limit hold every pair, a superset).
 */
#ifndef PC_ATTR_BLOOM_H
#define PC_ATTR_BLOOM_H

#include "buf.h"
#include "span.h"

#include <stdbool.h>
#include <stddef.h>

#define PC_ATTR_BLOOM_BYTES 128
#define PC_ATTR_BLOOM_K 4
#define PC_ATTR_BLOOM_MAX_TEXT 256

/* Adds the pairs of |a| (a span's attributes) to |bloom|, but for texts longer
 * than PC_ATTR_BLOOM_MAX_TEXT. */
void pc_attr_bloom_add_attrs(unsigned char bloom[PC_ATTR_BLOOM_BYTES], const pc_attrs *a);

/* Adds the pair (|key|, |text|) (lengths in bytes) to |bloom|. */
void pc_attr_bloom_add(unsigned char bloom[PC_ATTR_BLOOM_BYTES], const char *key, size_t key_len,
                       const char *text, size_t text_len);

/* False only when the filter |bloom| (|n| bytes; NULL: none) certainly holds
 * no pair (|key|, |text|); true for a text longer than PC_ATTR_BLOOM_MAX_TEXT. */
bool pc_attr_bloom_may(const unsigned char *bloom, size_t n, const char *key, size_t key_len,
                       const char *text, size_t text_len);

/* The PC_ATTR_BLOOM_K bit indexes (0..PC_ATTR_BLOOM_BYTES * 8 - 1, possibly
 * repeated) of the pair (|key|, |text|), into |bits|: a filter may hold the
 * pair iff every one of them is set. */
void pc_attr_bloom_bits(const char *key, size_t key_len, const char *text, size_t text_len,
                        int bits[PC_ATTR_BLOOM_K]);

/*
 * Appends the text form of the value |v| as parsed from stored JSON (the form
 * the attribute filter compares) to |out|: a string as is, an int, double or
 * bool as the JSON writer writes it. False (nothing appended) for null, array
 * and map values, which have none. (A bytes value is stored as a base64
 * string and parses back as one.)
 */
bool pc_attr_text(pc_buf *out, const pc_value *v);

#endif
