/*
 * local_txn.h - one write transaction of the embedded store (local exporter).
 *
 * Data flow: local.c's writer thread → pc_local_txn_begin → pc_local_txn_span
 * per span (INSERT OR IGNORE: a span already stored is a duplicate and does
 * not count) → pc_local_txn_end upserts one summary row per trace from the
 * spans this transaction really inserted (min/max times, sums, the first
 * span's source/service, the first parentless span as root) and commits. The
 * result equals a per-span upsert; a trace whose spans arrive in several
 * transactions is merged by the upsert. pc_local_txn_write writes the spans
 * added so far before the end, so that the writer can cut a transaction
 * after the time is spent (local.c).
 *
 * The spans and their rows must stay valid until pc_local_txn_end (the
 * summaries and the bound columns point at them). Writer thread only.
 */
#ifndef PC_LOCAL_TXN_H
#define PC_LOCAL_TXN_H

#include "local_rows.h"
#include "local_store.h"
#include "span.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pc_local_txn pc_local_txn;

/* Begins a transaction of at most |spans| spans (never NULL). */
pc_local_txn *pc_local_txn_begin(pc_local_writer *w, size_t spans);
/* Adds |s|, ingested at |created_ns|, its encoded row rows->row[at]
 * (local_rows.h), to the transaction (written by pc_local_txn_write or
 * pc_local_txn_end). SQLITE_OK, or the failure of BEGIN. */
int pc_local_txn_span(pc_local_txn *x, const pc_span *s, int64_t created_ns,
                      const pc_local_rows *rows, size_t at);
/* Writes the spans added so far now (they would be at pc_local_txn_end),
 * without committing: the caller can then look whether to commit early. A
 * trace with spans on both sides of it is merged as across transactions.
 * SQLITE_OK, or the first failure (pc_local_txn_end then rolls back). */
int pc_local_txn_write(pc_local_txn *x);
/* Writes what is left and the trace rows and commits, or rolls back after a failure (its
 * message in |err|); frees |x|. SQLITE_OK once committed, else the failure's
 * SQLite code. */
int pc_local_txn_end(pc_local_txn *x, char *err, size_t errlen);

#endif
