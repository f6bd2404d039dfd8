/*
 * local_index.h - the embedded store's search index writer: the trigram index
 * span_text in its own file <directory>/prela-search.db, written by its own
 * thread and connection beside the span writer.
 *
 * Data flow: local_txn.c and retention (writer thread) stage each block's
 * search text during a transaction of prela.db (pc_local_index_add); after
 * that transaction commits, pc_local_index_commit queues what it staged, with
 * the largest spans rowid it inserted; the index thread writes what is queued
 * in one transaction of prela-search.db (after gathering up to 250 ms or
 * 2 MiB of it, local_index.c; adjacent pieces of one block's text as one
 * document) and advances index_state.upto with it.
 * Readers (local_query.c's pool) attach the file as `search` and take as search
 * candidates span_text's blocks and, for the spans past upto, the blocks
 * whose recent text matches (local_recent.h: the ADD documents, handed over
 * at pc_local_index_commit) and the traces of the spans past that text, so a
 * span is found as soon as its batch is acknowledged (local_schema.c, schema
 * 7, has the contract).
 */
#ifndef PC_LOCAL_INDEX_H
#define PC_LOCAL_INDEX_H

#include "local_checkpoint.h"
#include "local_recent.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_local_index pc_local_index;

/* The name of the index file in the store's directory. */
#define PC_LOCAL_INDEX_FILE "prela-search.db"

/* Most bytes of search text queued for the index thread; past it
 * pc_local_index_commit waits (so the spans past upto, which every search
 * reads directly, stay few). */
#define PC_LOCAL_INDEX_QUEUE_MAX (4u << 20)

/* What a document does to its block's trigrams. */
typedef enum { PC_INDEX_ADD, PC_INDEX_DELETE } pc_index_op;

/*
 * Opens (creating it if needed) the index file |path| beside the store
 * |store_path| (already at the current schema: pc_local_db_open_writer ran),
 * indexes the spans past its upto (after a crash, a lost or new file, or the
 * migration to schema 7: every span; logged when there are many) and starts
 * the index thread. |gate| (NULL: none) holds the file's readers back for a
 * restart of its log (local_checkpoint.h). |recent| (borrowed, NULL: none;
 * it must outlive the index) gets the ADD documents with their spans (from
 * after the catch-up) and what the file committed (local_recent.h), for the
 * searches of the spans past upto. Returns NULL after logging as |id|
 * (borrowed).
 */
pc_local_index *pc_local_index_create(const char *id, const char *path, const char *store_path,
                                      const pc_local_gate *gate, pc_local_recent *recent);

/* Writes what is queued, stops the thread, closes the file. Accepts NULL. */
void pc_local_index_destroy(pc_local_index *ix);

/* Writer thread: stages the document |text| (|n| bytes) of search block
 * |block|, to be queued by the next pc_local_index_commit. */
void pc_local_index_add(pc_local_index *ix, int64_t block, pc_index_op op, const char *text,
                        size_t n);

/* Writer thread, after its transaction committed: queues what it staged;
 * |upto| is the largest spans rowid that transaction inserted (0: none).
 * Waits while PC_LOCAL_INDEX_QUEUE_MAX bytes are queued. */
void pc_local_index_commit(pc_local_index *ix, int64_t upto);

/* Writer thread, after its transaction rolled back: drops what it staged. */
void pc_local_index_abort(pc_local_index *ix);

/* Waits until the index thread has written everything queued (tests). */
void pc_local_index_flush(pc_local_index *ix);

/* The upto the index thread last committed (for tests and logs). */
int64_t pc_local_index_upto(pc_local_index *ix);

#endif
