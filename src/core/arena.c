/*
 * arena.c - chunked bump allocator (see arena.h).
 *
 * Chunks double in size up to 1 MiB; a request larger than a chunk gets a chunk of
 * its own. The most recent allocation can grow in place, which keeps arrays built
 * by repeated pc_arena_realloc (JSON arrays, attribute lists) cheap.
 *
 * With a budget each chunk (header included) is reserved before its malloc and
 * the sum is released in pc_arena_destroy; a refused chunk sets |over|.
 *
 * Growable blocks (pc_arena_try_grow) are chunks of their own on a second
 * list, |solo|: a block is the data of one chunk, resized with realloc and
 * relinked (the list is short: a request has one or two such blocks).
 */
#include "arena.h"
#include "mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 16
/* Chunks double up to this. Below the fixed mmap threshold (mem.h; with
 * the chunk header and malloc's), so a big batch's chunks come from the heap and
 * their pages are reused, instead of each being mapped, faulted in and unmapped
 * (a storage collector's batches did that 860 times a second: 60% of its CPU in
 * page faults). */
#define MAX_CHUNK (PC_MMAP_THRESHOLD - 4096)

typedef struct chunk {
    struct chunk *prev;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
} chunk;

struct pc_arena {
    chunk *cur;
    chunk *solo; /* growable blocks, one chunk each */
    size_t next_size;
    size_t total;
    void *last; /* latest allocation, which may grow in place */
    pc_budget *budget; /* borrowed; NULL = unlimited */
    size_t charged;    /* bytes reserved in budget (chunks and credit) */
    size_t credit;     /* prepaid bytes no chunk has used yet */
    bool over;         /* the budget refused something */
};

static chunk *chunk_new(size_t size, chunk *prev)
{
    chunk *c = pc_xmalloc(sizeof(chunk) + size);
    c->prev = prev;
    c->size = size;
    c->used = 0;
    return c;
}

pc_arena *pc_arena_create(size_t hint)
{
    pc_arena *a = pc_xcalloc(1, sizeof(*a));
    a->next_size = hint < 1024 ? 1024 : hint;
    return a;
}

void pc_arena_destroy(pc_arena *a)
{
    if (!a) return;
    chunk *c = a->cur;
    while (c) {
        chunk *p = c->prev;
        free(c);
        c = p;
    }
    for (c = a->solo; c;) {
        chunk *p = c->prev;
        free(c);
        c = p;
    }
    pc_budget_release(a->budget, a->charged);
    free(a);
}

void pc_arena_set_budget(pc_arena *a, pc_budget *b)
{
    a->budget = b;
}

pc_budget *pc_arena_budget(const pc_arena *a)
{
    return a->budget;
}

bool pc_arena_over(const pc_arena *a)
{
    return a->over;
}

int pc_arena_prepay(pc_arena *a, size_t n)
{
    if (pc_arena_reserve(a, n)) return -1;
    if (a->budget) {
        a->charged += n;
        a->credit += n;
    }
    return 0;
}

int pc_arena_try_hold(pc_arena *a, size_t n)
{
    if (pc_budget_reserve(a->budget, n)) return -1;
    if (a->budget) a->charged += n;
    return 0;
}

int pc_arena_hold(pc_arena *a, size_t n)
{
    if (pc_arena_try_hold(a, n) == 0) return 0;
    a->over = true;
    return -1;
}

void pc_arena_unhold(pc_arena *a, size_t n)
{
    if (!a->budget) return;
    pc_budget_release(a->budget, n);
    a->charged -= n;
}

int pc_arena_reserve(pc_arena *a, size_t n)
{
    if (pc_budget_reserve(a->budget, n) == 0) return 0;
    a->over = true;
    return -1;
}

void pc_arena_unreserve(pc_arena *a, size_t n)
{
    pc_budget_release(a->budget, n);
}

/* Charges |cost| bytes to the budget, prepaid credit first: 0, or -1 (nothing
 * charged, |over| set) when refused and |may_fail|; without |may_fail| a
 * refusal is charged past the limit (|over| set too). */
static int charge(pc_arena *a, size_t cost, bool may_fail)
{
    if (!a->budget) return 0;
    size_t paid = a->credit < cost ? a->credit : cost;
    cost -= paid;
    if (cost && pc_budget_reserve(a->budget, cost)) {
        a->over = true;
        if (may_fail) return -1;
        pc_budget_force(a->budget, cost);
    }
    a->credit -= paid;
    a->charged += cost;
    return 0;
}

/* Returns |n| (aligned) bytes; with |may_fail|, NULL when the budget refuses
 * a new chunk, else the chunk is charged past the limit. */
static void *alloc(pc_arena *a, size_t n, bool may_fail)
{
    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (!a->cur || a->cur->size - a->cur->used < n) {
        size_t size = a->next_size;
        if (size < n) size = n;
        if (charge(a, sizeof(chunk) + size, may_fail)) return NULL;
        a->cur = chunk_new(size, a->cur);
        if (a->next_size < MAX_CHUNK)
            a->next_size = a->next_size * 2 < MAX_CHUNK ? a->next_size * 2 : MAX_CHUNK;
    }
    void *p = a->cur->data + a->cur->used;
    a->cur->used += n;
    a->total += n;
    a->last = p;
    return p;
}

void *pc_arena_try_grow(pc_arena *a, void *p, size_t n)
{
    if (!n) n = 1;
    chunk **link = &a->solo, *c = NULL;
    if (p) {
        while (*link && (*link)->data != (unsigned char *)p) link = &(*link)->prev;
        c = *link;
        if (!c) abort(); /* not a growable block of this arena: a caller bug */
    }
    size_t old = c ? c->size : 0;
    if (n > old && charge(a, n - old + (c ? 0 : sizeof(chunk)), true)) return NULL;
    chunk *g = pc_xrealloc(c, sizeof(chunk) + n);
    if (!c) g->prev = a->solo;
    *link = g;
    if (n < old && a->budget) {
        pc_budget_release(a->budget, old - n);
        a->charged -= old - n;
    }
    a->total += n > old ? n - old : 0;
    g->size = g->used = n;
    return g->data;
}

void *pc_arena_alloc(pc_arena *a, size_t n)
{
    return alloc(a, n, false);
}

void *pc_arena_try_alloc(pc_arena *a, size_t n)
{
    return alloc(a, n, true);
}

void *pc_arena_calloc(pc_arena *a, size_t n)
{
    void *p = pc_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *pc_arena_strndup(pc_arena *a, const char *s, size_t n)
{
    char *p = pc_arena_alloc(a, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void *re_alloc(pc_arena *a, void *p, size_t old, size_t n, bool may_fail)
{
    if (!p) return alloc(a, n, may_fail);
    if (n <= old) return p;
    size_t old_al = (old + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    size_t new_al = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (p == a->last && (unsigned char *)p + old_al == a->cur->data + a->cur->used &&
        a->cur->size - a->cur->used >= new_al - old_al) {
        a->cur->used += new_al - old_al;
        a->total += new_al - old_al;
        return p;
    }
    void *q = alloc(a, n, may_fail);
    if (q) memcpy(q, p, old);
    return q;
}

void *pc_arena_realloc(pc_arena *a, void *p, size_t old, size_t n)
{
    return re_alloc(a, p, old, n, false);
}

void *pc_arena_try_realloc(pc_arena *a, void *p, size_t old, size_t n)
{
    return re_alloc(a, p, old, n, true);
}

size_t pc_arena_used(const pc_arena *a)
{
    return a->total;
}
