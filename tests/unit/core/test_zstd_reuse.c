/*
 * test_zstd_reuse.c - the per-thread zstd context cache (src/core/zstd_reuse.c):
 * a freed context comes back on the same thread, reset (what it compresses
 * next decompresses to the new input, at the new level), never on another
 * thread, and before pc_zstd_reuse_enable nothing is kept; its collector
 * renders the counters on /metrics.
 */
#include "check.h"
#include "zstd_reuse.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* Compresses |n| bytes of |in| the way librdkafka does (a stream, one flush at
 * the end) with |z| at |level|, then decompresses; true when the round trip
 * gives |in| back. */
static bool round_trip(ZSTD_CStream *z, int level, const char *in, size_t n)
{
    size_t cap = ZSTD_compressBound(n);
    char *out = malloc(cap), *back = malloc(n + 1);
    bool ok = !ZSTD_isError(ZSTD_initCStream(z, level));
    ZSTD_outBuffer ob = {out, cap, 0};
    ZSTD_inBuffer ib = {in, n, 0};
    while (ok && ib.pos < ib.size)
        ok = !ZSTD_isError(ZSTD_compressStream(z, &ob, &ib));
    ok = ok && ZSTD_endStream(z, &ob) == 0;
    size_t got = ok ? ZSTD_decompress(back, n + 1, out, ob.pos) : 0;
    ok = ok && !ZSTD_isError(got) && got == n && memcmp(back, in, n) == 0;
    free(out);
    free(back);
    return ok;
}

static char text[200000];

static void fill(unsigned seed)
{
    for (size_t i = 0; i < sizeof(text); i++) {
        seed = seed * 1103515245u + 12345u;
        text[i] = (char)('a' + (seed >> 16) % (i % 7 == 0 ? 26 : 4));
    }
}

static void test_disabled_keeps_nothing(void)
{
    pc_zstd_reuse_counts a, b;
    pc_zstd_reuse_get(&a);
    ZSTD_CStream *z = ZSTD_createCStream();
    CHECK(z != NULL);
    CHECK(round_trip(z, 3, text, 5000));
    CHECK_EQ_INT(ZSTD_freeCStream(z), 0);
    ZSTD_CStream *z2 = ZSTD_createCStream();
    pc_zstd_reuse_get(&b);
    CHECK_EQ_INT(b.created - a.created, 2);
    CHECK_EQ_INT(b.reused - a.reused, 0);
    ZSTD_freeCStream(z2);
    CHECK_EQ_INT(ZSTD_freeCStream(NULL), 0);
}

static void test_same_thread_reuses_reset_context(void)
{
    pc_zstd_reuse_enable();
    pc_zstd_reuse_counts a, b;
    pc_zstd_reuse_get(&a);
    ZSTD_CStream *z = ZSTD_createCStream();
    fill(1);
    CHECK(round_trip(z, 3, text, sizeof(text)));
    ZSTD_freeCStream(z);
    ZSTD_CStream *again = ZSTD_createCStream();
    CHECK(again == z);
    /* a different input and level: nothing of the first stream survives */
    fill(2);
    CHECK(round_trip(again, 1, text, sizeof(text) / 2));
    /* a stream abandoned half way (an error path) is reset too */
    ZSTD_outBuffer ob = {malloc(1000), 1000, 0};
    ZSTD_inBuffer ib = {text, 50000, 0};
    ZSTD_initCStream(again, 5);
    ZSTD_compressStream(again, &ob, &ib);
    free(ob.dst);
    ZSTD_freeCStream(again);
    ZSTD_CStream *third = ZSTD_createCStream();
    CHECK(third == z);
    fill(3);
    CHECK(round_trip(third, 3, text, 7777));
    /* two at once: the second is new, and freeing both keeps one, frees one */
    ZSTD_CStream *other = ZSTD_createCStream();
    CHECK(other != third);
    CHECK(round_trip(other, 3, text, 1000));
    ZSTD_freeCStream(third);
    ZSTD_freeCStream(other);
    pc_zstd_reuse_get(&b);
    CHECK_EQ_INT(b.created - a.created, 2);
    CHECK_EQ_INT(b.reused - a.reused, 2);
    ZSTD_freeCStream(ZSTD_createCStream()); /* leaves |third| kept for the thread */
}

static void *worker(void *arg)
{
    ZSTD_CStream **seen = arg;
    seen[0] = ZSTD_createCStream(); /* not the main thread's kept context */
    seen[1] = round_trip(seen[0], 3, text, 3000) ? seen[0] : NULL;
    ZSTD_freeCStream(seen[0]); /* kept by this thread, freed at its exit */
    return NULL;
}

static void test_other_thread_gets_its_own(void)
{
    pc_zstd_reuse_enable();
    ZSTD_CStream *mine = ZSTD_createCStream(); /* the kept one */
    ZSTD_freeCStream(mine);
    ZSTD_CStream *seen[2] = {NULL, NULL};
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, worker, seen), 0);
    pthread_join(t, NULL);
    CHECK(seen[0] != NULL && seen[0] != mine);
    CHECK(seen[1] == seen[0]);
    CHECK(ZSTD_createCStream() == mine);
    ZSTD_freeCStream(mine);
}

static void test_collector_renders_the_counts(void)
{
    pc_metrics *m = pc_metrics_create();
    pc_metrics_add_collector(m, pc_zstd_reuse_collect, NULL);
    pc_zstd_reuse_counts n;
    pc_zstd_reuse_get(&n);
    pc_buf b = PC_BUF_INIT;
    pc_buf_puts(&b, "\n");
    pc_metrics_render(m, &b);
    char want[128];
    snprintf(want, sizeof(want), "\nprela_zstd_contexts_created_total %llu\n",
             (unsigned long long)n.created);
    CHECK(strstr(b.data, want) != NULL);
    snprintf(want, sizeof(want), "\nprela_zstd_contexts_reused_total %llu\n",
             (unsigned long long)n.reused);
    CHECK(strstr(b.data, want) != NULL);
    CHECK(strstr(b.data, "# TYPE prela_zstd_contexts_reused_total counter\n") != NULL);
    CHECK(n.created >= 1 && n.reused >= 1); /* the tests above ran first */
    pc_buf_free(&b);
    pc_metrics_destroy(m);
}

int main(void)
{
    fill(7);
    RUN(test_disabled_keeps_nothing);
    RUN(test_same_thread_reuses_reset_context);
    RUN(test_other_thread_gets_its_own);
    RUN(test_collector_renders_the_counts);
    return CHECK_DONE();
}
