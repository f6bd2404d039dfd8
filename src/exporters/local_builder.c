/*
 * local_builder.c - the embedded store's rollup builder thread (see
 * local_builder.h): its connection, its schedule and its warnings.
 *
 * State under mu: |stopping|; |wrote| is set by the writer after each
 * commit and cleared by each build, so a build that had writes beside it
 * throttles the next one.
 */
#include "local_builder.h"

#include "local_rollup.h"
#include "local_store.h"
#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000LL
#define POLL_NS (1000LL * NS_PER_MS)  /* look again for an hour to build */
#define RETRY_NS (10000LL * NS_PER_MS) /* after a failed build */
#define YIELD_NS (200LL * NS_PER_MS)   /* after giving way to a restart */
#define LOG_EVERY_NS (10000LL * NS_PER_MS)
#define ROLLUP_SHARE 10 /* while batches come, builds take at most 1/ROLLUP_SHARE of a core */
#define BUILDER_CACHE_KIB 8192 /* its page cache (the writer's is 64 MiB) */
#define STR_(x) #x
#define STR(x) STR_(x)

struct pc_local_builder {
    const char *id;
    sqlite3 *db;
    pc_local_reader *gate; /* borrowed */
    int64_t quiet_ns, limit_ns;
    pc_local_slow slow; /* the thread's: hours whose builds were abandoned */
    pc_local_builder_store store;
    void *store_ctx;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu; /* the two below */
    pthread_cond_t cv;
    bool stopping, wrote;
    int64_t last_log; /* the thread's */
};

/* One build; returns when to look again (pc_time_mono_ns). */
static int64_t build_one(pc_local_builder *b)
{
    int64_t cpu0 = pc_time_thread_cpu_ns();
    pc_local_rollup_job job;
    int rc = pc_local_rollup_gather(b->db, pc_time_now_ns() - b->quiet_ns, b->limit_ns, b->gate,
                                    &b->slow, &job);
    int64_t hour = job.hour;
    if (rc == 1 || rc == PC_ROLLUP_SLOW) rc = b->store(b->store_ctx, &job);
    int64_t t1 = pc_time_mono_ns(), cpu = pc_time_thread_cpu_ns() - cpu0;
    pthread_mutex_lock(&b->mu);
    bool wrote = b->wrote;
    b->wrote = false;
    pthread_mutex_unlock(&b->mu);
    bool log = t1 - b->last_log >= LOG_EVERY_NS;
    if (rc == PC_ROLLUP_SLOW && log) {
        b->last_log = t1;
        pc_log(PC_LOG_WARN, b->id,
               "stats rollups: the hour starting at %lld (Unix seconds) took over %lld ms to"
               " build (long traces overlap it, or it holds many spans: rollup_build_limit);"
               " its stats are read from its spans, and it is tried again in 10 minutes"
               " with twice the time (up to 64 times the limit)",
               (long long)(hour * 3600), (long long)(b->limit_ns / NS_PER_MS));
    } else if (rc < 0 && log) {
        b->last_log = t1;
        pc_log(PC_LOG_WARN, b->id,
               "stats rollups: cannot build an hour (stats read its spans meanwhile): %s",
               sqlite3_errmsg(b->db));
    }
    if (rc == 0) return t1 + POLL_NS;
    if (rc == PC_ROLLUP_YIELD) return t1 + YIELD_NS;
    if (rc < 0) return t1 + RETRY_NS;
    /* more may be due: now, or after the throttle's wait while writes come
     * (the build's CPU time: its wall time beside ingest is mostly waiting
     * for a core, the disk or a restart's hold) */
    return wrote ? t1 + (ROLLUP_SHARE - 1) * cpu : t1;
}

static void *builder_main(void *arg)
{
    pc_local_builder *b = arg;
    pc_thread_name("local-rollup");
    int err = pc_thread_lower_priority(PC_LOCAL_BUILDER_NICE);
    if (err)
        pc_log(PC_LOG_WARN, b->id, "cannot lower the rollup builder's priority: %s",
               strerror(err));
    int64_t next = pc_time_mono_ns() + POLL_NS;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->stopping && pc_time_mono_ns() < next)
            pc_cond_wait_until(&b->cv, &b->mu, next);
        if (b->stopping) break;
        pthread_mutex_unlock(&b->mu);
        next = build_one(b);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

pc_local_builder *pc_local_builder_create(const char *id, const char *path, pc_local_reader *gate,
                                          int64_t quiet_ms, int64_t limit_ms,
                                          pc_local_builder_store store, void *store_ctx)
{
    pc_local_builder *b = pc_xcalloc(1, sizeof(*b));
    b->id = id;
    b->store = store;
    b->store_ctx = store_ctx;
    b->gate = gate;
    b->quiet_ns = quiet_ms * NS_PER_MS;
    b->limit_ns = limit_ms * NS_PER_MS;
    pthread_mutex_init(&b->mu, NULL);
    pc_cond_init_mono(&b->cv);
    b->db = pc_local_db_open(id, path, false);
    if (!b->db ||
        sqlite3_exec(b->db, "PRAGMA cache_size = -" STR(BUILDER_CACHE_KIB), NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(b->db, "PRAGMA query_only = 1", NULL, NULL, NULL) != SQLITE_OK) {
        if (b->db) pc_log(PC_LOG_ERROR, id, "cannot configure the rollup builder's connection: %s",
                          sqlite3_errmsg(b->db));
        pc_local_builder_destroy(b);
        return NULL;
    }
    int rc = pthread_create(&b->thread, NULL, builder_main, b);
    if (rc != 0) {
        pc_log(PC_LOG_ERROR, id, "cannot start the rollup builder thread: %s", strerror(rc));
        pc_local_builder_destroy(b);
        return NULL;
    }
    b->running = true;
    return b;
}

void pc_local_builder_wrote(pc_local_builder *b)
{
    pthread_mutex_lock(&b->mu);
    b->wrote = true;
    pthread_mutex_unlock(&b->mu);
}

void pc_local_builder_destroy(pc_local_builder *b)
{
    if (!b) return;
    if (b->running) {
        pthread_mutex_lock(&b->mu);
        b->stopping = true;
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    sqlite3_close(b->db);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
