/*
 * test_budget.c - the process memory budget (src/core/budget.c) and the arena
 * charging it (arena.c).
 */
#include "arena.h"
#include "budget.h"
#include "check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void test_reserve_release(void)
{
    pc_budget *b = pc_budget_create(1000);
    CHECK_EQ_INT(pc_budget_limit(b), 1000);
    CHECK_EQ_INT(pc_budget_reserve(b, 600), 0);
    CHECK_EQ_INT(pc_budget_reserve(b, 400), 0); /* exactly the limit fits */
    CHECK_EQ_INT(pc_budget_used(b), 1000);
    CHECK_EQ_INT(pc_budget_reserve(b, 1), -1); /* fails, never blocks */
    CHECK_EQ_INT(pc_budget_used(b), 1000);     /* a refusal reserves nothing */
    CHECK_EQ_INT(pc_budget_refused(b), 1);
    pc_budget_release(b, 600);
    CHECK_EQ_INT(pc_budget_used(b), 400);
    CHECK_EQ_INT(pc_budget_reserve(b, (size_t)1 << 62), -1); /* no overflow */
    CHECK_EQ_INT(pc_budget_reserve(b, 600), 0);
    pc_budget_force(b, 50); /* past the limit on purpose */
    CHECK_EQ_INT(pc_budget_used(b), 1050);
    CHECK_EQ_INT(pc_budget_peak(b), 1050);
    CHECK_EQ_INT(pc_budget_reserve(b, 1), -1);
    pc_budget_release(b, 1050);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    pc_budget_destroy(b);
    /* NULL is unlimited */
    CHECK_EQ_INT(pc_budget_reserve(NULL, (size_t)1 << 40), 0);
    pc_budget_release(NULL, 5);
    pc_budget_destroy(NULL);
}

typedef struct racer {
    pc_budget *b;
    int won;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < 100000; i++)
        if (pc_budget_reserve(r->b, 1) == 0) r->won++;
    return NULL;
}

static void test_threads_never_cross_the_limit(void)
{
    pc_budget *b = pc_budget_create(50000);
    racer r[4] = {{b, 0}, {b, 0}, {b, 0}, {b, 0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, race, &r[i]);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    CHECK_EQ_INT(r[0].won + r[1].won + r[2].won + r[3].won, 50000);
    CHECK_EQ_INT(pc_budget_used(b), 50000);
    CHECK_EQ_INT(pc_budget_peak(b), 50000);
    pc_budget_destroy(b);
}

static void test_effective_limit_from_cgroup(void)
{
    char path[] = "/tmp/pc_budget_cgXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, "1073741824\n", 11) == 11);
    close(fd);
    int64_t mib = (int64_t)1 << 20;
    CHECK_EQ_INT(pc_budget_effective_limit(256 * mib, 10, path), 1073741824 / 10);
    CHECK_EQ_INT(pc_budget_effective_limit(64 * mib, 50, path), 64 * mib); /* the smaller */
    CHECK_EQ_INT(pc_budget_effective_limit(256 * mib, 0, path), 256 * mib); /* unset */
    FILE *f = fopen(path, "w");
    fputs("max\n", f); /* no cgroup limit */
    fclose(f);
    CHECK_EQ_INT(pc_budget_effective_limit(256 * mib, 10, path), 256 * mib);
    unlink(path);
    CHECK_EQ_INT(pc_budget_effective_limit(256 * mib, 10, path), 256 * mib); /* no file */
}

static void test_arena_charges_and_releases(void)
{
    pc_budget *b = pc_budget_create(1 << 20);
    pc_arena *a = pc_arena_create(4096);
    pc_arena_set_budget(a, b);
    CHECK(pc_arena_budget(a) == b);
    CHECK_EQ_INT(pc_budget_used(b), 0); /* nothing before the first chunk */
    pc_arena_alloc(a, 100);
    CHECK(pc_budget_used(b) >= 4096);
    CHECK(pc_arena_try_alloc(a, 2 << 20) == NULL); /* bigger than the budget */
    CHECK(pc_arena_over(a));
    int64_t before = pc_budget_used(b);
    void *p = pc_arena_alloc(a, 2 << 20); /* infallible: charged past the limit */
    CHECK(p != NULL);
    CHECK(pc_budget_used(b) > before + (2 << 20) - 1);
    pc_arena_destroy(a);
    CHECK_EQ_INT(pc_budget_used(b), 0); /* everything back */

    /* prepaid credit: chunks draw on it before reserving more */
    a = pc_arena_create(1024);
    pc_arena_set_budget(a, b);
    CHECK_EQ_INT(pc_arena_prepay(a, 100000), 0);
    CHECK_EQ_INT(pc_budget_used(b), 100000);
    pc_arena_try_alloc(a, 50000);
    CHECK_EQ_INT(pc_budget_used(b), 100000); /* from the credit */
    CHECK_EQ_INT(pc_arena_prepay(a, 2 << 20), -1);
    CHECK_EQ_INT(pc_budget_used(b), 100000);
    CHECK_EQ_INT(pc_arena_reserve(a, 1000), 0);
    pc_arena_unreserve(a, 1000);
    pc_arena_destroy(a);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    pc_budget_destroy(b);
}

int main(void)
{
    RUN(test_reserve_release);
    RUN(test_threads_never_cross_the_limit);
    RUN(test_effective_limit_from_cgroup);
    RUN(test_arena_charges_and_releases);
    return CHECK_DONE();
}
