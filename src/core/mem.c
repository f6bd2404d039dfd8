/*
 * mem.c - allocation wrappers that abort on exhaustion, and the malloc
 * settings the collector runs with (see mem.h).
 */
#include "mem.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(size_t n)
{
    fprintf(stderr, "prela-collector: out of memory allocating %zu bytes\n", n);
    abort();
}

void *pc_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *pc_xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p) oom(count * n);
    return p;
}

void *pc_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *pc_xstrndup(const char *s, size_t n)
{
    char *p = pc_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *pc_xstrdup(const char *s)
{
    return pc_xstrndup(s, strlen(s));
}

/* Why fixed malloc thresholds: glibc raises the mmap threshold after each
 * large free (up to 32 MiB), after which big request blocks come from
 * per-thread heaps that keep their pages, and the resident size drifts far
 * past the memory budget (budget.h). Fixed at 1 MiB, a block that large (a
 * big body, not an ordinary request's arena chunk) is mapped on its own and
 * unmapped when freed (PC_MMAP_THRESHOLD; 4 MiB let the bomb test's peak RSS
 * past its bound). The trim threshold is raised so ordinary requests do not
 * give pages back and fault them in again (that cost 50% throughput).
 * Why one malloc arena per core: every HTTP connection has its own thread
 * (http.c), and glibc gives threads up to 8 arenas per core, each keeping
 * its peak (the trim threshold above). Loading 1M spans into ClickHouse
 * over 16 connections, 15 arenas held 35 MB while the memory budget
 * peaked at 12 MB (peak RSS 61 MB); with one per core, memory a thread
 * freed is reused by the next: 45 MB (64 connections: 148 MB before,
 * 104 MB after, the rest being requests and inserts in flight; one
 * arena in all gave the same). The threads mostly wait for exports, so
 * they seldom contend for an arena (spans per CPU-second unchanged). */
void pc_mem_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, (int)PC_MMAP_THRESHOLD);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, cores > 1 ? (int)cores : 1);
}
