/*
 * test_batch_reject.c - the rejection channel of a batch (span.h,
 * "Rejections"): exporters mark spans from many threads at once, the receiver
 * reads the count, the marks and the first reason after consume.
 */
#include "check.h"
#include "span.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SPANS 64
#define THREADS 8

static pc_batch *batch(void)
{
    pc_batch *b = pc_batch_create(NULL);
    for (int i = 0; i < SPANS; i++)
        pc_batch_add(b);
    return b;
}

static void test_none(void)
{
    pc_batch *b = batch();
    CHECK_EQ_INT(pc_batch_rejected(b), 0);
    CHECK(!pc_batch_is_rejected(b, 0));
    CHECK(pc_batch_reject_reason(b) == NULL);
    pc_batch_unref(b);
}

static pc_batch *shared;

/* Each thread rejects every even span (so every mark races) with its own reason. */
static void *rejector(void *arg)
{
    char why[32];
    snprintf(why, sizeof(why), "exporter e%d", (int)(intptr_t)arg);
    for (size_t i = 0; i < SPANS; i += 2)
        pc_batch_reject(shared, i, why);
    pc_batch_reject(shared, SPANS + 5, why); /* past the spans: ignored */
    return NULL;
}

static void test_concurrent(void)
{
    shared = batch();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, rejector, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(pc_batch_rejected(shared), SPANS / 2); /* each span counted once */
    for (size_t i = 0; i < SPANS; i++)
        CHECK(pc_batch_is_rejected(shared, i) == (i % 2 == 0));
    const char *why = pc_batch_reject_reason(shared);
    CHECK(why && !strncmp(why, "exporter e", 10)); /* one of them, whole */
    pc_batch_unref(shared);
}

static void test_whole(void)
{
    pc_batch *b = pc_batch_create(NULL);
    b->signal = PC_SIGNAL_LOGS;
    b->items = 12;
    pc_batch_reject(b, PC_BATCH_ALL, "too big");
    CHECK_EQ_INT(pc_batch_rejected(b), 12);
    CHECK(pc_batch_is_rejected(b, 3));
    CHECK(!strcmp(pc_batch_reject_reason(b), "too big"));
    pc_batch_unref(b);
    b = batch(); /* traces rejected whole: every span */
    pc_batch_reject(b, PC_BATCH_ALL, NULL);
    CHECK_EQ_INT(pc_batch_rejected(b), SPANS);
    CHECK(pc_batch_reject_reason(b) == NULL);
    pc_batch_unref(b);
}

int main(void)
{
    RUN(test_none);
    RUN(test_concurrent);
    RUN(test_whole);
    return CHECK_DONE();
}
