/*
 * local_recent.h - the embedded store's recent search text: the documents
 * the span writer handed to the search index (local_index.h), kept in memory
 * until the index has written them (and one index transaction longer), so
 * that a search finds the spans past the index's upto by matching their text
 * here instead of reading and verifying every trace those spans belong to.
 *
 * Data flow: the writer thread stages each block's ADD document
 * (pc_local_recent_add, from pc_local_index_add) during a transaction of
 * prela.db; after that transaction commits, pc_local_recent_commit makes
 * them one piece covering the spans rowids (previous piece's end, upto].
 * The index thread says which upto its file committed
 * (pc_local_recent_indexed): the pieces at or below the upto before that
 * one are dropped. Searches (local_store.c) call pc_local_recent_match with
 * the upto of the index snapshot they read.
 *
 * The contract a search relies on: pieces are contiguous and in commit
 * order, and a piece is here only after the spans it covers committed. So
 * if the pieces reach back to a snapshot's upto, every span past that upto
 * and at or below the last piece's end has its text in a piece, and the
 * spans past that end are read directly. A document may name a block that
 * no longer holds its text (a candidate is verified anyway).
 */
#ifndef PC_LOCAL_RECENT_H
#define PC_LOCAL_RECENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct pc_local_recent pc_local_recent;

/* Most bytes of text kept: past it the oldest pieces go even if the index has
 * not written them (a failed index, a stalled thread); searches then read
 * those spans directly, as without pieces. */
#define PC_LOCAL_RECENT_MAX (16u << 20)

pc_local_recent *pc_local_recent_create(void);
/* Frees every piece (a search holding one keeps it until it is done: call
 * this only once no search can run). Accepts NULL. */
void pc_local_recent_destroy(pc_local_recent *r);

/* Drops every piece; the next piece covers the spans past |upto| (the index
 * holds every span at or below it: after its catch-up at start). */
void pc_local_recent_reset(pc_local_recent *r, int64_t upto);

/* Writer thread: stages the text |text| (|n| bytes) of search block |block|
 * for the next commit. */
void pc_local_recent_add(pc_local_recent *r, int64_t block, const char *text, size_t n);
/* Writer thread, after its transaction of prela.db committed: the staged
 * documents become the piece of the spans up to |upto| (the largest rowid
 * the transaction inserted; 0: none, and nothing is kept). An upto below the
 * last piece's end (rowids reused once every span was deleted) drops every
 * piece. */
void pc_local_recent_commit(pc_local_recent *r, int64_t upto);
/* Writer thread, after its transaction rolled back: drops what it staged. */
void pc_local_recent_abort(pc_local_recent *r);

/* Index thread: its file committed |upto|. Drops the pieces at or below the
 * upto it committed before this one. */
void pc_local_recent_indexed(pc_local_recent *r, int64_t upto);

/*
 * A search whose index snapshot has upto |upto|: writes to |blocks| the
 * distinct blocks of the pieces past |upto| whose text contains the |n|
 * bytes at |q| (pc_local_needle_in's matching), at most |cap| + 1, and their
 * number to *|nblocks|. Returns the rowid past which the caller must read
 * spans directly: the last piece's end, or |upto| (and no blocks) when the
 * pieces do not reach back to |upto|. Accepts NULL |r| (returns |upto|).
 */
int64_t pc_local_recent_match(pc_local_recent *r, int64_t upto, const char *q, size_t n,
                              int cap, int64_t *blocks, int *nblocks);

#endif
