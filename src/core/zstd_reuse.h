/*
 * zstd_reuse.h - keeps librdkafka's zstd compression contexts warm.
 *
 * Where it sits: under the kafka exporter, inside librdkafka. librdkafka
 * (2.0) compresses every produce batch with a context of its own:
 * ZSTD_createCStream, ZSTD_initCStream, ..., ZSTD_freeCStream. At level 3 the
 * context's workspace is 3.6 MiB, above the process's fixed mmap threshold
 * (main.c: 1 MiB, which keeps big request blocks off the per-thread heaps), so
 * each batch mapped a fresh workspace, faulted it in page by page and unmapped
 * it: about a million page faults per 10 s at full load, a quarter of the
 * gateway's CPU.
 *
 * How: this module defines ZSTD_createCStream and ZSTD_freeCStream itself, and
 * the executable exports them (CMakeLists.txt: --export-dynamic-symbol), so the
 * dynamic linker binds librdkafka's calls here. Once pc_zstd_reuse_enable() was
 * called, ZSTD_freeCStream keeps the context it is given in a one-slot cache
 * per thread (after ZSTD_CCtx_reset of session and parameters, so nothing of
 * the previous stream survives), and the next ZSTD_createCStream on that
 * thread returns it; ZSTD_initCStream then reuses the workspace without
 * touching the allocator. A context is freed when its thread exits. Before
 * enable (unit tests, other executables) both calls pass straight to libzstd.
 * Contract kept: a context from ZSTD_createCStream is a fresh, default-state
 * context, and ZSTD_freeCStream(NULL) is 0, as libzstd documents them.
 * Memory: at most one context (3.6 MiB at level 3) per thread that compressed,
 * in practice one per broker connection.
 *
 * Observable: /metrics shows prela_zstd_contexts_created_total and
 * prela_zstd_contexts_reused_total (telemetry.c registers
 * pc_zstd_reuse_collect). Why: if librdkafka's calls stopped binding here (a
 * statically linked librdkafka, a lost export flag), compression would still
 * work and only the CPU would tell; both counters staying 0 while the kafka
 * exporter sends zstd batches says so at once.
 */
#ifndef PC_ZSTD_REUSE_H
#define PC_ZSTD_REUSE_H

#include "metrics.h"

#include <stdint.h>

/* Turns the per-thread cache on for the rest of the process (main.c). */
void pc_zstd_reuse_enable(void);

/* Contexts created by libzstd and contexts handed out again, since start. */
typedef struct pc_zstd_reuse_counts {
    uint64_t created;
    uint64_t reused;
} pc_zstd_reuse_counts;

void pc_zstd_reuse_get(pc_zstd_reuse_counts *out);

/* A metrics collector (metrics.h: pc_metrics_collect_fn; |ctx| is unused):
 * appends the two counters above as prela_zstd_contexts_created_total and
 * prela_zstd_contexts_reused_total. */
void pc_zstd_reuse_collect(void *ctx, pc_metrics_out *out);

#endif
