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

int main(void)
{
    RUN(test_alignment_and_growth);
    RUN(test_realloc_in_place);
    RUN(test_batch_refs);
    return CHECK_DONE();
}
