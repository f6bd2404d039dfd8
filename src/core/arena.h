/*
 * arena.h - per-request memory.
 *
 * Everything decoded from one request (spans, attribute arrays, strings, the JSON
 * DOM, protobuf-c messages) is carved out of one arena and dies with it: there is
 * no free() in per-request code. An arena is a list of chunks; allocation bumps a
 * pointer and opens a new chunk when the current one is full. A batch owns the
 * arena its spans live in (see span.h).
 *
 * Not thread-safe: one arena is used by one thread at a time.
 */
#ifndef PC_ARENA_H
#define PC_ARENA_H

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

#endif
