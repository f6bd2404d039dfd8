/*
 * local_zip.h - compression of the embedded store's JSON columns (schema 5,
 * issue 15): zstd with a dictionary trained on the store's own first spans.
 *
 * Where it sits: local_rows.c packs each span's JSON columns (attributes,
 * events, links, resource, scope, input_messages, output_messages) in the
 * thread that hands the batch to the exporter (pc_local_zip_encode);
 * local_txn.c packs on the writer thread those encoded before the dictionary
 * existed (pc_local_zip_pack, which gathers the samples); every SQL that
 * reads them (local_store.c's reads and search, local_writer.c's retention)
 * wraps the column in pc_unzip(), an SQL function pc_local_zip_register adds
 * to each connection. The search text (local_text.h) is never computed from
 * the compressed bytes.
 *
 * Stored form (local_schema.c, schema 5): such a column holds either TEXT,
 * the JSON itself (every row written before the dictionary existed, every row
 * of schemas 1-4, and values too short to gain), or a BLOB, one zstd frame
 * (content size in the header, no checksum) compressed with the dictionary
 * whose zstd dictionary id the frame header names; that dictionary is the
 * row of span_dicts with that id. pc_unzip(TEXT) is the text, pc_unzip(BLOB)
 * the decompressed text, pc_unzip(NULL) NULL.
 *
 * Dictionary: the writer gathers the first |sample_bytes| of values (one
 * sample per value, its first 16 KiB; at least 64 samples) and trains a
 * dictionary of at most PC_LOCAL_ZIP_DICT_MAX bytes from them (zstd's ZDICT,
 * on a thread of its own), commits it to span_dicts in a transaction of its
 * own, and only then compresses with it: a row naming a dictionary is never
 * visible before the dictionary. A store reopened loads its newest dictionary (largest
 * created_ns) and never trains again. When training fails (too few or too
 * uniform samples), it gathers as many samples again and retries.
 */
#ifndef PC_LOCAL_ZIP_H
#define PC_LOCAL_ZIP_H

#include "buf.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_LOCAL_ZIP_DICT_MAX 65536 /* bytes of a trained dictionary, at most */
/* zstd level: 1 stored 4% more bytes and saved no measurable CPU at 1M spans */
#define PC_LOCAL_ZIP_LEVEL 3
#define PC_LOCAL_ZIP_MIN 24 /* shorter values stay TEXT (a frame costs ~10 B) */

/* Registers pc_unzip(x) on |db| (its dictionaries are read from span_dicts
 * on first use, cached per connection and freed with it). SQLite code. */
int pc_local_zip_register(sqlite3 *db);

/* The writer's side: the trained dictionary or the samples towards it. */
typedef struct pc_local_zip pc_local_zip;

/*
 * Creates the writer's state on the writer connection |db| (schema 5 set up),
 * with the store's newest dictionary when it has one. |sample_bytes| 0 never
 * trains (values are stored as TEXT). Returns NULL after logging as |id|.
 */
pc_local_zip *pc_local_zip_create(const char *id, sqlite3 *db, size_t sample_bytes);
void pc_local_zip_destroy(pc_local_zip *z);

/*
 * Outside any transaction (the writer calls it before each one and after
 * each commit): once enough samples are gathered, starts training the
 * dictionary on a thread of its own (zstd's ZDICT takes about half a second
 * for the default 4 MiB of samples, which the writer's waiters would wait
 * for); once that thread has finished, commits the dictionary to span_dicts
 * (one transaction) and compresses with it from then on. Values packed
 * meanwhile stay TEXT. Failures are logged and leave the values
 * uncompressed. Returns 1 when a dictionary was stored, else 0.
 */
int pc_local_zip_train(pc_local_zip *z);

/* Waits until no training runs (its dictionary is stored by the next
 * pc_local_zip_train). Any thread; test hook. */
void pc_local_zip_wait(pc_local_zip *z);

/*
 * Packs the |n| bytes of JSON |p| for binding: true when |out| (reset first)
 * holds the compressed frame to bind as a BLOB, false when the text is to be
 * bound as it is (no dictionary yet, too short, or no gain). Before the
 * dictionary exists, the value is kept as a training sample.
 */
bool pc_local_zip_pack(pc_local_zip *z, const char *p, size_t n, pc_buf *out);

/*
 * Packing from any thread (local_rows.h's encoders, beside the writer): a
 * compression context borrowed with the dictionary in use, for one batch. A
 * dictionary once in use is never replaced, so a frame made with it always
 * names the one stored. A few idle contexts are kept for the next borrowers.
 */
typedef struct pc_local_zip_ctx pc_local_zip_ctx;

/* A context, or NULL when there is no dictionary yet (or no memory for one). */
pc_local_zip_ctx *pc_local_zip_borrow(pc_local_zip *z);
/* Gives |c| back to |z| (NULL: nothing). */
void pc_local_zip_give_back(pc_local_zip *z, pc_local_zip_ctx *c);

/*
 * Packs the |n| bytes of JSON |p| with |c|, appending the frame to |out|.
 * Returns 1 when it did, 0 when the text is to be bound as it is (too short,
 * or no gain), -1 when |c| is NULL (no dictionary: nothing appended; the
 * writer's pc_local_zip_pack is to take the value, as a sample).
 */
int pc_local_zip_encode(pc_local_zip_ctx *c, const char *p, size_t n, pc_buf *out);

/* The id of the dictionary in use, 0 when none (tests and logs). */
uint32_t pc_local_zip_dict_id(const pc_local_zip *z);

#endif
