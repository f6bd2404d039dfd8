/*
 * test_arena.c - the per-request arena (src/core/arena.c) and batches (span.c).
 */
#include "arena.h"
#include "check.h"
#include "span.h"

#include <stdint.h>

static void test_alignment_and_growth(void)
{
    pc_arena *a = pc_arena_create(16);
    for (int i = 1; i < 5000; i += 7) {
        void *p = pc_arena_alloc(a, (size_t)i);
        CHECK(((uintptr_t)p & 15) == 0);
        memset(p, 0xab, (size_t)i);
    }
    void *big = pc_arena_alloc(a, 5u << 20); /* larger than any chunk */
    memset(big, 1, 5u << 20);
    char *s = pc_arena_strndup(a, "hello world", 5);
    CHECK_EQ_STR(s, "hello");
    pc_arena_destroy(a);
}

static void test_realloc_in_place(void)
{
    pc_arena *a = pc_arena_create(4096);
    char *p = pc_arena_alloc(a, 16);
    memcpy(p, "0123456789abcdef", 16);
    char *q = pc_arena_realloc(a, p, 16, 64);
    CHECK(p == q); /* the latest allocation grows in place */
    pc_arena_alloc(a, 8);
    char *r = pc_arena_realloc(a, q, 64, 128);
    CHECK(r != q);
    CHECK(memcmp(r, "0123456789abcdef", 16) == 0);
    pc_arena_destroy(a);
}

static void test_batch_refs(void)
{
    pc_batch *b = pc_batch_create(NULL);
    for (int i = 0; i < 100; i++) pc_batch_add(b)->kind = i;
    CHECK_EQ_INT(b->n, 100);
    CHECK_EQ_INT(b->spans[99].kind, 99);
    CHECK_EQ_INT(b->spans[5].input_tokens, -1);
    CHECK(b->spans[5].resource == &pc_empty_attrs);
    pc_batch_pop(b);
    CHECK_EQ_INT(b->n, 99);
    pc_batch_ref(b);
    pc_batch_unref(b);
    CHECK_EQ_INT(b->refs, 1);
    pc_batch_unref(b); /* frees; ASan reports a leak or double free if this is wrong */
}

static void test_grow_block(void)
{
    pc_budget *b = pc_budget_create(64 << 20);
    pc_arena *a = pc_arena_create(1024);
    pc_arena_set_budget(a, b);
    char *p = pc_arena_try_grow(a, NULL, 100);
    CHECK(p != NULL);
    memset(p, 'x', 100);
    char *q = pc_arena_try_grow(a, NULL, 10); /* a second block, on the same list */
    memcpy(q, "second", 7);
    int64_t small = pc_budget_used(b);
    p = pc_arena_try_grow(a, p, 8u << 20); /* large: mremap territory */
    CHECK(p != NULL);
    CHECK(p[0] == 'x' && p[99] == 'x');
    memset(p + 100, 'y', (8u << 20) - 100);
    /* charged the difference, not the sum of both sizes */
    CHECK_EQ_INT(pc_budget_used(b), small + (8 << 20) - 100);
    q = pc_arena_try_grow(a, q, 20000);
    CHECK_EQ_STR(q, "second");
    p = pc_arena_try_grow(a, p, 50); /* a shrink gives the memory back */
    CHECK(p[49] == 'x');
    CHECK(pc_budget_used(b) < small + 30000);
    CHECK(!pc_arena_over(a));
    pc_arena_destroy(a);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    pc_budget_destroy(b);
}

static void test_grow_block_over_budget(void)
{
    pc_budget *b = pc_budget_create(1 << 20);
    pc_arena *a = pc_arena_create(1024);
    pc_arena_set_budget(a, b);
    CHECK_EQ_INT(pc_arena_prepay(a, 4096), 0);
    char *p = pc_arena_try_grow(a, NULL, 4000); /* drawn from the prepaid credit */
    CHECK(p != NULL);
    CHECK_EQ_INT(pc_budget_used(b), 4096);
    memcpy(p, "kept", 5);
    CHECK(pc_arena_try_grow(a, p, 2u << 20) == NULL); /* refused: |p| unchanged */
    CHECK(pc_arena_over(a));
    CHECK_EQ_STR(p, "kept");
    CHECK(pc_budget_used(b) <= 8192);
    pc_arena_destroy(a);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    pc_budget_destroy(b);
}

/* pc_arena_hold: memory outside the arena (an answer's body) charged until the
 * arena dies, not drawn on by later chunks; a refusal charges nothing.
 * pc_arena_try_hold / pc_arena_unhold: the same without marking the arena. */
static void test_hold(void)
{
    pc_budget *b = pc_budget_create(1 << 20);
    pc_arena *a = pc_arena_create(1024);
    pc_arena_set_budget(a, b);
    CHECK_EQ_INT(pc_arena_hold(a, 600000), 0);
    CHECK_EQ_INT(pc_budget_used(b), 600000);
    int64_t before = pc_budget_used(b);
    CHECK(pc_arena_alloc(a, 100) != NULL); /* a chunk of its own, not the held bytes */
    CHECK(pc_budget_used(b) > before);
    CHECK(!pc_arena_over(a));
    before = pc_budget_used(b);
    CHECK_EQ_INT(pc_arena_hold(a, 600000), -1); /* past the limit: refused, nothing charged */
    CHECK(pc_arena_over(a));
    CHECK_EQ_INT(pc_budget_used(b), before);
    pc_arena_destroy(a);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    /* try_hold: a refusal leaves the arena usable; unhold gives bytes back early */
    a = pc_arena_create(1024);
    pc_arena_set_budget(a, b);
    CHECK_EQ_INT(pc_arena_try_hold(a, 700000), 0);
    CHECK_EQ_INT(pc_arena_try_hold(a, 700000), -1);
    CHECK(!pc_arena_over(a));
    CHECK_EQ_INT(pc_budget_used(b), 700000);
    pc_arena_unhold(a, 700000);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    CHECK_EQ_INT(pc_arena_try_hold(a, 700000), 0); /* room again */
    pc_arena_destroy(a);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    pc_arena *u = pc_arena_create(1024); /* without a budget: always held */
    CHECK_EQ_INT(pc_arena_hold(u, (size_t)1 << 40), 0);
    CHECK_EQ_INT(pc_arena_try_hold(u, (size_t)1 << 40), 0);
    pc_arena_unhold(u, (size_t)1 << 40);
    CHECK(!pc_arena_over(u));
    pc_arena_destroy(u);
    pc_budget_destroy(b);
}

int main(void)
{
    RUN(test_alignment_and_growth);
    RUN(test_realloc_in_place);
    RUN(test_batch_refs);
    RUN(test_grow_block);
    RUN(test_grow_block_over_budget);
    RUN(test_hold);
    return CHECK_DONE();
}
