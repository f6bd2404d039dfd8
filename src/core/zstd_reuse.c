/*
 * zstd_reuse.c - a one-slot, per-thread cache of zstd compression contexts
 * behind ZSTD_createCStream / ZSTD_freeCStream (see zstd_reuse.h for why and
 * the contract).
 */
#include "zstd_reuse.h"

#include <pthread.h>
#include <stdbool.h>
#include <zstd.h>

static int enabled;                  /* atomic */
static uint64_t n_created, n_reused; /* atomic counters */
static pthread_key_t slot_key;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

/* Thread exit: frees the context the thread kept. */
static void slot_free(void *cctx)
{
    ZSTD_freeCCtx(cctx);
}

static void slot_init(void)
{
    pthread_key_create(&slot_key, slot_free);
}

void pc_zstd_reuse_enable(void)
{
    pthread_once(&slot_once, slot_init);
    __atomic_store_n(&enabled, 1, __ATOMIC_RELEASE);
}

void pc_zstd_reuse_get(pc_zstd_reuse_counts *out)
{
    out->created = __atomic_load_n(&n_created, __ATOMIC_RELAXED);
    out->reused = __atomic_load_n(&n_reused, __ATOMIC_RELAXED);
}

void pc_zstd_reuse_collect(void *ctx, pc_metrics_out *out)
{
    (void)ctx;
    pc_zstd_reuse_counts n;
    pc_zstd_reuse_get(&n);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_zstd_contexts_created",
                       "zstd compression contexts created by libzstd (librdkafka's "
                       "ZSTD_createCStream calls the per-thread cache could not serve).",
                       NULL, (double)n.created);
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_zstd_contexts_reused",
                       "zstd compression contexts handed out again from the per-thread "
                       "cache instead of being created.",
                       NULL, (double)n.reused);
}

ZSTD_CStream *ZSTD_createCStream(void)
{
    if (__atomic_load_n(&enabled, __ATOMIC_ACQUIRE)) {
        ZSTD_CCtx *kept = pthread_getspecific(slot_key);
        if (kept) {
            pthread_setspecific(slot_key, NULL);
            __atomic_add_fetch(&n_reused, 1, __ATOMIC_RELAXED);
            return kept;
        }
    }
    __atomic_add_fetch(&n_created, 1, __ATOMIC_RELAXED);
    return ZSTD_createCCtx(); /* a CStream is a CCtx (zstd >= 1.3.0) */
}

size_t ZSTD_freeCStream(ZSTD_CStream *zcs)
{
    if (!zcs) return 0;
    if (__atomic_load_n(&enabled, __ATOMIC_ACQUIRE) && !pthread_getspecific(slot_key) &&
        !ZSTD_isError(ZSTD_CCtx_reset(zcs, ZSTD_reset_session_and_parameters)) &&
        pthread_setspecific(slot_key, zcs) == 0)
        return 0;
    return ZSTD_freeCCtx(zcs);
}
