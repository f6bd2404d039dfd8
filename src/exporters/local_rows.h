/*
 * local_rows.h - a batch's span rows for the embedded store, encoded before
 * the writer takes them: each span's JSON columns written and compressed, and
 * its search text.
 *
 * Data flow: local.c's consume() → pc_local_rows_encode, in the thread that
 * called consume() (a receiver's connection thread, which then waits for the
 * commit anyway) → the job → the writer thread's transaction (local_txn.c),
 * which binds each span's columns as encoded and stages its search text for
 * the index. Writing the JSON, compressing it (local_zip.h) and the search
 * text were a third of the writer's CPU a span; the one writer thread is the
 * store's bottleneck, and the receiving threads do this beside each other.
 *
 * The columns, in INS_SPAN's order (local_writer.c): attributes, events,
 * links, resource, scope (span.h's JSON writers), input_messages,
 * output_messages (the span's JSON text). Each is TEXT (bind as it is), ZIPPED
 * (bind the frame as a BLOB) or LATER (no dictionary yet when encoded: the
 * writer packs it, which also keeps it as a training sample). A value equal to
 * the same column's previous value in the batch (a resource, a scope) shares
 * its bytes: compressed once.
 */
#ifndef PC_LOCAL_ROWS_H
#define PC_LOCAL_ROWS_H

#include "buf.h"
#include "local_zip.h"
#include "span.h"

#include <stddef.h>

#define PC_LOCAL_COLS 7

typedef enum { PC_COL_TEXT, PC_COL_ZIPPED, PC_COL_LATER } pc_local_col_state;

/* One column of a row: |len| bytes at |off| of its rows' bytes. */
typedef struct pc_local_col {
    size_t off, len;
    pc_local_col_state state;
} pc_local_col;

typedef struct pc_local_row {
    pc_local_col col[PC_LOCAL_COLS];
    size_t text_off, text_len; /* the search text (local_text.h) */
} pc_local_row;

typedef struct pc_local_rows {
    pc_buf bytes;      /* every column's and text's bytes */
    pc_local_row *row; /* one per span of the batch (a carrier's is empty) */
    size_t n;
    pc_budget *budget; /* charged with |charged| bytes while the rows live */
    size_t charged;
} pc_local_rows;

/*
 * Encodes the spans of |b| with |z| (any thread; NULL |z|: no dictionary).
 * The rows are charged to the memory budget of |b|'s arena; NULL when it
 * refuses them (the caller answers retry, as when a request is over it).
 */
pc_local_rows *pc_local_rows_encode(const pc_batch *b, pc_local_zip *z);

/* The bytes at |off| of |rows| (a column's or a search text's). */
static inline const char *pc_local_rows_at(const pc_local_rows *rows, size_t off)
{
    return rows->bytes.data + off;
}

void pc_local_rows_free(pc_local_rows *rows);

#endif
