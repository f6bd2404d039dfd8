/*
 * mem.h - the one out-of-memory policy of the collector, and its malloc
 * settings (pc_mem_tune).
 *
 * Every heap allocation outside SQLite, librdkafka and friends goes through these
 * wrappers. They abort the process with a message when the allocator fails, so no
 * call site checks for NULL and none forgets to. Memory that outsiders control
 * (request bodies, span counts) is bounded before it is allocated, so reaching
 * the abort means the machine itself is out of memory.
 */
#ifndef PC_MEM_H
#define PC_MEM_H

#include <stddef.h>

void *pc_xmalloc(size_t n);
void *pc_xcalloc(size_t count, size_t n);
void *pc_xrealloc(void *p, size_t n);
/* Returns a NUL-terminated heap copy of |s|; the caller frees it. */
char *pc_xstrdup(const char *s);
char *pc_xstrndup(const char *s, size_t n);

/*
 * The malloc mmap threshold the collector fixes at startup (mem.c says why):
 * a block this large or larger is mapped on its own and unmapped when freed.
 * Code that wants its blocks to stay on the heap (arena.c's chunks) sizes them
 * below it.
 */
#define PC_MMAP_THRESHOLD ((size_t)1 << 20)

/*
 * Sets the process's malloc thresholds and arenas as the collector runs with
 * them (mem.c says why). Called once at startup, before any thread starts;
 * benchmarks of the collector's own code call it too, so they measure its
 * allocations as it makes them.
 */
void pc_mem_tune(void);

#endif
