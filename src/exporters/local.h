/*
 * local.h - the `local` exporter: the embedded trace store (SQLite, WAL mode).
 *
 * Data flow: normalize → local: consume() hands each batch to one writer thread
 * that group-commits everything queued in one transaction and answers PC_OK only
 * after the commit. The query receiver reads the same file through store().
 *
 * Settings (see the options table in local.c): directory, retention, synchronous,
 * queue_size, timeout.
 */
#ifndef PC_LOCAL_H
#define PC_LOCAL_H

#include "component.h"

#include <stdint.h>

extern const pc_component_ops pc_local_exporter_ops;

/*
 * Test hook: runs retention now on the writer thread, as if the wall clock read
 * |now_ns|, and waits for it. |ctx| is a started local exporter. Returns the
 * number of traces deleted (with their spans), or -1 when the exporter is not
 * running, retention is off (0), or the delete failed.
 */
int64_t pc_local_purge(void *ctx, int64_t now_ns);

#endif
