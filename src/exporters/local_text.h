/*
 * local_text.h - the embedded store's search text: what a span is searched
 * by, the case folding search uses, and the full-text (FTS5 trigram) query
 * built from a user's text.
 *
 * Where it sits: local_txn.c stages every new span's search text for the
 * span_text FTS5 index (local_index.h), made from the decoded span
 * (pc_local_span_text, the same text); local_writer.c's retention removes it again (FTS5
 * 'delete' with the same text), its search turns the user's text into an
 * FTS5 query (candidates) and verifies each candidate with pc_contains over
 * the same text (local_contains.h), so results are exact substring matches.
 *
 * The search text of a span is its name, then every attribute VALUE decoded
 * (strings as sent, not JSON-escaped; numbers and booleans as their JSON
 * text; arrays and maps by their values), then each event's name and
 * attribute values, then (schema 4) every value of its input and output
 * messages decoded (span.h's message shape: roles, texts, tool calls), so a
 * prompt that arrived as JSON text in an attribute is found as a person
 * types it; separated by '\n'. Keys and timestamps are not in it.
 * Contract: the text is a pure function of (name, attributes JSON, events
 * JSON, input_messages, output_messages), computed from the stored columns,
 * so it can be recomputed at any time (verification, retention's FTS5
 * 'delete', migration). Changing it changes what the index holds: that needs
 * a schema version (rebuild the index). Schema 3 rows have no messages, so
 * their text is the same under schema 4 and 3 -> 4 rebuilds nothing.
 */
#ifndef PC_LOCAL_TEXT_H
#define PC_LOCAL_TEXT_H

#include "buf.h"
#include "span.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the search text of a span is made of (borrowed; lengths in bytes). */
typedef struct pc_local_text_in {
    const char *name;
    size_t name_len;
    const char *attrs; /* JSON object, as span.h's encoder writes it */
    size_t attrs_len;
    const char *events; /* JSON array */
    size_t events_len;
    const char *input; /* input_messages: JSON array text, or "" */
    size_t input_len;
    const char *output; /* output_messages */
    size_t output_len;
} pc_local_text_in;

/* Appends the search text of the span |in| to |out|. JSON that does not
 * parse contributes nothing. */
void pc_local_search_text(pc_buf *out, const pc_local_text_in *in);

/*
 * Appends the search text of the decoded span |s| to |out|: the same text as
 * pc_local_search_text over the columns its row stores (its name, its
 * attributes and events as span.h's JSON writers write them, its messages),
 * without writing and parsing that JSON for the common values (the writers'
 * way: about a tenth of the span writer's CPU went to that round trip).
 */
void pc_local_span_text(pc_buf *out, const pc_span *s);

/*
 * The attribute filter of trace lists (store.h, attr_key / attr_value): 1
 * when the JSON object |attrs| (span.h's encoding of a span's attributes) has
 * a top-level member whose key is exactly |key| and whose value's text form is
 * exactly |value| (pc_attr_text, attr_bloom.h: a string as is; an int, double
 * or bool as span.h's JSON writer writes it: 42, 0.5, true), else 0. Null,
 * array and map values never match; JSON that does not parse matches
 * nothing. Every value's text form is in the span's search text, so the
 * trigram index can name candidates.
 */
int pc_local_attr_match(const char *attrs, size_t attrs_len, const char *key, size_t key_len,
                        const char *value, size_t value_len);

/*
 * Registers on |db| pc_search_text(name, attributes, events, input_messages,
 * output_messages) (deterministic: the text above; with the first three
 * arguments only, a span without messages), pc_attr_match(attributes, key, value) (the function
 * above) and the FTS5 tokenizer pc_trigram of span_text (every
 * distinct trigram of folded code points within a line, once per document;
 * local_text.c), pc_unzip (local_zip.h: the compressed JSON columns of
 * schema 5) and pc_bloom_or / pc_bloom_may (local_bloom.h: schema 9). Every connection that reads or writes the store needs them.
 * Returns an SQLite code.
 */
int pc_local_text_register(sqlite3 *db);

/*
 * The case folding of search (the index's tokenizer and the verifying matcher
 * both use it): |c| (a code point) to its lower-case form for ASCII, Latin-1,
 * Latin Extended-A, Greek and Cyrillic capitals; other code points unchanged.
 */
uint32_t pc_local_fold(uint32_t c);

/* Writes |c| (a code point below 0x110000) as UTF-8 to |o| (4 bytes of
 * room); returns its length. */
size_t pc_local_utf8_put(uint32_t c, unsigned char *o);

/* Most trigrams an FTS5 query holds; a longer text is sampled evenly. */
#define PC_LOCAL_FTS_TRIGRAMS 8

/*
 * Writes to |out| (reset first) an FTS5 query matching every text that
 * contains |q| (|n| bytes of UTF-8) ignoring case: the AND of up to
 * PC_LOCAL_FTS_TRIGRAMS of its trigrams (3 code points each), each quoted.
 * A superset of the matches (trigrams may come from different places), so
 * candidates are verified. Returns the number of trigrams; 0 when |q| has
 * fewer than 3 code points or a '\n' (no trigram of the index can serve it;
 * |out| is empty).
 */
int pc_local_fts_query(pc_buf *out, const char *q, size_t n);

/*
 * Trigram keys: the trigrams of pc_trigram (3 consecutive code points of a
 * line, folded by pc_local_fold) as 64-bit numbers, for an index kept
 * outside SQLite (the clickhouse exporter's search blocks): the three code
 * points, 21 bits each, oldest in the high bits, and bit 63 set. A key is a
 * pure function of the trigram: changing it changes what such an index holds.
 */
typedef struct pc_local_keyset {
    uint64_t *ascii; /* a bit per trigram of three ASCII code points (2^21 bits) */
    uint64_t *slot;  /* the others: open addressing, below half full; 0 = empty */
    size_t cap, wide; /* wide: keys in slot */
    uint64_t *key;   /* the distinct keys, in first-seen order */
    size_t n, key_cap;
} pc_local_keyset;
#define PC_LOCAL_KEYSET_INIT {NULL, NULL, 0, 0, NULL, 0, 0}

/* Adds the distinct trigram keys of |text| (|n| bytes of UTF-8; a malformed
 * byte is a code point of its own) to |set|. */
void pc_local_keyset_add_text(pc_local_keyset *set, const char *text, size_t n);
/* Adds the |n| keys at |keys| (keys of this set's kind) to |set|. */
void pc_local_keyset_add_keys(pc_local_keyset *set, const uint64_t *keys, size_t n);
/* Empties |set|, keeping its memory. */
void pc_local_keyset_clear(pc_local_keyset *set);
void pc_local_keyset_free(pc_local_keyset *set);

/*
 * The keys of up to |max| trigrams of the query |q| (|n| bytes), sampled as
 * pc_local_fts_query samples them (first and last included), distinct, into
 * |keys|. Returns how many; 0 when |q| has fewer than 3 code points or a
 * '\n' (no key can serve it).
 */
int pc_local_query_keys(const char *q, size_t n, uint64_t *keys, int max);

#endif
