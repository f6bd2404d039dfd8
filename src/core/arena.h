/*
 * arena.h - per-request memory.
 *
 * Everything decoded from one request (spans, attribute arrays, strings, the JSON
 * DOM, protobuf-c messages) is carved out of one arena and dies with it: there is
 * no free() in per-request code. An arena is a list of chunks; allocation bumps a
 * pointer and opens a new chunk when the current one is full. A batch owns the
 * arena its spans live in (see span.h).
 *
 * Budget: an arena given a pc_budget (budget.h) reserves every chunk there
 * before it mallocs it and releases them all in pc_arena_destroy, so whatever
 * a request or a batch holds is charged for exactly as long as it lives. When
 * the budget refuses a chunk, the fallible calls (pc_arena_try_*) return NULL;
 * the infallible ones allocate anyway (charged past the limit) and mark the
 * arena over budget (pc_arena_over), which decoders check to stop early and
 * receivers turn into 429 / RESOURCE_EXHAUSTED.
 *
 * Not thread-safe: one arena is used by one thread at a time.
 */
#ifndef PC_ARENA_H
#define PC_ARENA_H

#include "budget.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct pc_arena pc_arena;

/* Creates an empty arena whose first chunk holds at least |hint| bytes. */
pc_arena *pc_arena_create(size_t hint);
/* Frees every chunk and the arena itself. Accepts NULL. */
void pc_arena_destroy(pc_arena *a);
/* Returns |n| bytes aligned to 16, valid until the arena is destroyed. Never NULL. */
void *pc_arena_alloc(pc_arena *a, size_t n);
/* Like pc_arena_alloc, zero-filled. */
void *pc_arena_calloc(pc_arena *a, size_t n);
/* Copies |n| bytes of |s| and a terminating NUL into the arena. */
char *pc_arena_strndup(pc_arena *a, const char *s, size_t n);
/* Grows the allocation |p| (of |old| bytes, the arena's latest or not) to |n| bytes. */
void *pc_arena_realloc(pc_arena *a, void *p, size_t old, size_t n);
/* Total bytes handed out so far (for limits and tests). */
size_t pc_arena_used(const pc_arena *a);

/* Charges the chunks allocated from now on, and pc_arena_reserve, to |b|
 * (borrowed: it must outlive the arena). Call before the first allocation. */
void pc_arena_set_budget(pc_arena *a, pc_budget *b);
/* The budget set with pc_arena_set_budget, or NULL. */
pc_budget *pc_arena_budget(const pc_arena *a);
/* Like pc_arena_alloc / pc_arena_realloc, but NULL (and the arena marked over
 * budget) when the budget refuses the memory. */
void *pc_arena_try_alloc(pc_arena *a, size_t n);
void *pc_arena_try_realloc(pc_arena *a, void *p, size_t old, size_t n);
/* Reserves |n| bytes of memory held outside the arena (a scratch block) in the
 * arena's budget: 0, or -1 and the arena marked over budget. Give them back
 * with pc_arena_unreserve. */
int pc_arena_reserve(pc_arena *a, size_t n);
void pc_arena_unreserve(pc_arena *a, size_t n);
/* Charges |n| bytes of memory held outside the arena for as long as the arena
 * lives (an HTTP answer's body, sent after its handler returns): 0, or -1
 * (nothing charged, the arena marked over budget). Released with the arena. */
int pc_arena_hold(pc_arena *a, size_t n);
/* Like pc_arena_hold, but a refusal leaves the arena as it was (not over
 * budget): for memory the caller can do without (a read it can make
 * smaller). pc_arena_unhold gives back |n| held bytes whose memory was freed
 * before the arena dies. */
int pc_arena_try_hold(pc_arena *a, size_t n);
void pc_arena_unhold(pc_arena *a, size_t n);
/* Reserves |n| bytes in the budget ahead of the chunks that will hold them (a
 * declared Content-Length or gRPC message size): the next chunks draw on this
 * credit before reserving more, and it is released with the arena. 0, or -1
 * (nothing reserved, the arena marked over budget). */
int pc_arena_prepay(pc_arena *a, size_t n);
/*
 * Growable blocks: a block of its own (one malloc) that grows with realloc(),
 * for output whose final size is unknown (an inflated body, a chunked body).
 * Past glibc's mmap threshold realloc moves the block with mremap, so a grow
 * neither copies nor keeps the old block alive: the block costs its current
 * size, not the sum of every size it had (which repeated pc_arena_realloc of
 * a large allocation costs). The block belongs to the arena and dies with it.
 *
 * pc_arena_try_grow resizes the block |p| (NULL: a new block) to exactly |n|
 * bytes (n >= 1; smaller than before shrinks it) and returns its possibly
 * moved address; the first min(old size, n) bytes are kept. The budget is
 * charged (or given back) the difference, drawing on prepaid credit first.
 * NULL, with |p| still valid and unchanged and the arena marked over budget,
 * when the budget refuses the growth. |p| must come from pc_arena_try_grow on
 * the same arena; the old address is invalid after a successful call.
 */
void *pc_arena_try_grow(pc_arena *a, void *p, size_t n);
/* True once the budget refused this arena anything. */
bool pc_arena_over(const pc_arena *a);

#endif
