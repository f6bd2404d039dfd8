/*
 * local.h - the `local` exporter: the embedded trace store (SQLite, WAL mode).
 *
 * Data flow: normalize → local: consume() hands each batch to one writer thread
 * that group-commits what is queued in transactions of at most
 * PC_LOCAL_TXN_MAX spans and answers PC_OK only after every span of the batch
 * committed. The query receiver reads the same file through store().
 *
 * Settings (see the options table in local.c): directory, retention, synchronous,
 * queue_size, timeout, query_timeout, compression_sample, rollup_quiet,
 * rollup_build_limit, rollup_live.
 */
#ifndef PC_LOCAL_H
#define PC_LOCAL_H

#include "component.h"

#include <stdint.h>

extern const pc_component_ops pc_local_exporter_ops;

/*
 * Transaction sizes of the writer, in spans. A transaction holds at most
 * PC_LOCAL_TXN_MAX spans; a larger batch is written in several. A transaction
 * writing a batch of more than PC_LOCAL_TXN_SPANS spans commits early once it
 * has written PC_LOCAL_TXN_SPANS and another batch waits in the queue; the
 * waiting batches are written next, so a small batch queued beside a huge one
 * waits for about one chunk, not for the huge batch. Measured in local.c's
 * header comment.
 */
#define PC_LOCAL_TXN_SPANS 1024
#define PC_LOCAL_TXN_MAX 8192

/*
 * Test hook: spans accepted by consume() and not yet taken into a transaction
 * (what queue_size bounds). |ctx| is a local exporter.
 */
int64_t pc_local_backlog(void *ctx);

/*
 * Test hook: runs retention now on the writer thread, as if the wall clock read
 * |now_ns|, and waits for it. |ctx| is a started local exporter. Returns the
 * number of traces deleted (with their spans), or -1 when the exporter is not
 * running, retention is off (0), or the delete failed.
 */
int64_t pc_local_purge(void *ctx, int64_t now_ns);

/*
 * Test hook: waits until the search index (local_index.h) has written every
 * document committed so far, so a test can read prela-search.db itself.
 * |ctx| is a started local exporter.
 */
void pc_local_search_flush(void *ctx);

/*
 * Test hook: waits until no compression dictionary is being trained
 * (local_zip.h); a dictionary just trained is used from the next
 * transaction on. |ctx| is a started local exporter.
 */
void pc_local_train_wait(void *ctx);

/*
 * Test hook: builds the stats rollups of every hour written since it was last
 * built (local_rollup.h), quiet or not, on the writer thread, and waits.
 * Returns the number of hours built, or -1 when the exporter is not running
 * or a build failed.
 */
int64_t pc_local_build_rollups(void *ctx);

/*
 * Test hook: the stored spans the writer has read to find where a stored
 * trace's groups began, since start (local_rollup.h: a big trace's are
 * known). |ctx| is a created local exporter.
 */
int64_t pc_local_spans_scanned(void *ctx);

#endif
