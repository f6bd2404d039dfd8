/*
 * local_cells.h - the stats figures of one read, per (bucket, group), in
 * memory, for both stores: a table of keys a client chooses (pc_hash), the
 * cells (store.h's pc_stats_row plus latency bins), their order and bound,
 * adding and subtracting cells, the bins' stored form, and the rollup kind
 * of a group.
 *
 * Where it sits: local_stats.c gathers spans and hour rollups into a
 * pc_cells and emits it as store.h rows, or writes an hour's cells into
 * stats_rollup (pc_cell_encode_bins) and reads them back
 * (pc_cell_decode_bins); clickhouse_stats.c adds the rows of its reads
 * (spans, builds, and the parts of built hours to subtract) into them;
 * local_rollup.c keeps a writer transaction's deltas in them and adds them
 * to stored rows (pc_cell_add, pc_cell_subtract). Each pc_cells is one
 * read's or one transaction's, one thread's; nothing shared.
 */
#ifndef PC_LOCAL_CELLS_H
#define PC_LOCAL_CELLS_H

#include "buf.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The rollup kind (stats_rollup.kind in both stores) group |g| reads: 0 none
 * (project too: the project is a key of every rollup row), 1 model, 2
 * service, 3 span type; -1 for the others (read from the spans only). */
int pc_stats_kind(pc_stats_group g);

/* A table of (int64, bytes) keys, each numbered in the order added: the
 * callers keep their values in arrays indexed by that number. */
typedef struct pc_keys {
    int64_t *k;
    char **s; /* owned copies, NUL-terminated */
    size_t *n;
    size_t used, cap; /* keys, and the arrays' room */
    uint32_t *slots;  /* key number + 1; 0 = empty */
    size_t nslots;    /* a power of two, > 2 * used */
} pc_keys;

/* The number of key (|k|, |s|: |n| bytes), added when new (*|added| set). */
size_t pc_keys_find(pc_keys *t, int64_t k, const char *s, size_t n, bool *added);
/* Forgets every key, keeping the room. */
void pc_keys_clear(pc_keys *t);
void pc_keys_free(pc_keys *t);

/* The figures of one (bucket, group). */
typedef struct pc_cell {
    pc_stats_row row;  /* row.group is set when emitted */
    uint64_t *bins;    /* (bin << 32 | count) of ended spans: [0, sorted_bins) in bin
                        * order, one entry per bin (more when a count passes 32 bits),
                        * then the entries added since, in arrival order */
    size_t n_bins, cap_bins, sorted_bins;
    bool has_cost;     /* a known cost was added (else the row's cost is NAN) */
    int64_t priced;    /* spans with a known cost (pc_cells_subtract needs it) */
} pc_cell;

/* A cell's place in list order: bucket, then group bytewise (SQLite's BINARY). */
typedef struct pc_cell_key {
    int64_t bucket;
    const char *group;
    size_t n, i;
} pc_cell_key;

/*
 * Every (bucket, group) of one read: key (bucket_ns, group) → cells[i].
 * Bounded: an answer shows its first |limit| cells in list order, so once
 * twice that many are held the ones after the limit-th are dropped, and
 * later keys past it (|cut|, |top|) are never held again; the cells' bins
 * are compacted into one entry per bin. So a read holds at most 2 * limit
 * cells of room for at most 2 * PC_HISTO_BINS entries each (rounded up to
 * a power of two), however many spans and groups it meets. limit 0: every
 * cell (an hour's build). Zero-initialize, set limit, then pc_cells_get;
 * pc_cells_free at the end.
 */
typedef struct pc_cells {
    pc_keys keys;
    pc_cell *cells;
    size_t cap;
    size_t limit;
    bool cut;        /* |top| is set */
    pc_cell_key top; /* the last key kept at the last cut (its group in |top_group|) */
    char *top_group;
} pc_cells;

/* The cell of (|bucket|, |g|: |n| bytes), added when new; NULL when it lies
 * past the cut (it cannot be in the answer). */
pc_cell *pc_cells_get(pc_cells *a, int64_t bucket, const char *g, size_t n);

/* Adds |count| ended spans of duration bin |bin| (histo.h; 0 <= bin <
 * PC_HISTO_BINS, which the callers check on stored or received bins) to |c|. */
void pc_cell_bin(pc_cell *c, int bin, uint32_t count);

/* Completes every cell (percentiles: nearest rank over the bins; cost) and
 * hands them to |cb| in list order, at most |max_rows|, until cb stops. */
void pc_cells_emit(pc_cells *a, int max_rows, pc_stats_cb cb, void *ud);

void pc_cells_free(pc_cells *a);

/*
 * Subtracts |neg|'s cells from |a|'s cells of the same keys: every figure,
 * latency bins and priced spans included (has_cost from priced); a cell left
 * without spans is not emitted. For a range read as a whole hour minus the
 * rest of it (clickhouse_stats.c). False, with |a| unusable, when |neg|
 * does not fit inside |a| (a key |a| lacks, a count going below zero) or
 * when a cell emptied while |a| was cut (a row past the cut may belong in
 * the answer): the caller reads the range another way.
 */
bool pc_cells_subtract(pc_cells *a, pc_cells *neg);

/* One cell's part of pc_cells_subtract: |neg|'s figures taken from |c|'s.
 * False, with |c| unusable, when a count would go below zero or a bin of
 * |neg| is missing from |c|. */
bool pc_cell_subtract(pc_cell *c, pc_cell *neg);

/* Adds |more|'s figures (bins, priced spans and has_cost included) to |c|. */
void pc_cell_add(pc_cell *c, const pc_cell *more);

/* |c|'s bins in stored form (stats_rollup.bins: (bin delta, count) varint
 * pairs, bins ascending) appended to |out|. */
void pc_cell_encode_bins(pc_cell *c, pc_buf *out);

/* Adds stored bins (|n| bytes at |p|) to |c|; false when they do not decode. */
bool pc_cell_decode_bins(pc_cell *c, const unsigned char *p, size_t n);

#endif
