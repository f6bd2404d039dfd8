/*
 * budget.c - the process-wide memory budget (see budget.h).
 *
 * One atomic counter. Reserve is a compare-and-swap loop, so a refused
 * reservation never shows up in the total, not even for a moment, and two
 * threads racing for the last bytes cannot both win. Release is a plain
 * atomic subtraction.
 *
 * Why refuse rather than wait: a request waiting for memory holds its
 * connection, its thread and the bytes it already has; under a flood that is
 * exactly the state that starves everyone. Refusing with 429 + Retry-After
 * moves the waiting to the client, which holds nothing of ours.
 */
#include "budget.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pc_budget {
    int64_t limit;
    int64_t used; /* atomic */
    int64_t peak; /* atomic, best effort */
    int64_t refused; /* atomic */
};

pc_budget *pc_budget_create(int64_t limit)
{
    pc_budget *b = pc_xcalloc(1, sizeof(*b));
    b->limit = limit > 0 ? limit : PC_BUDGET_DEFAULT_LIMIT;
    return b;
}

void pc_budget_destroy(pc_budget *b)
{
    free(b);
}

static void note_peak(pc_budget *b, int64_t now)
{
    int64_t peak = __atomic_load_n(&b->peak, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&b->peak, &peak, now, 1, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED)) {
    }
}

int pc_budget_reserve(pc_budget *b, size_t n)
{
    if (!b) return 0;
    if (n > (size_t)b->limit) {
        __atomic_fetch_add(&b->refused, 1, __ATOMIC_RELAXED);
        return -1;
    }
    int64_t cur = __atomic_load_n(&b->used, __ATOMIC_RELAXED);
    for (;;) {
        if (cur > b->limit - (int64_t)n) {
            __atomic_fetch_add(&b->refused, 1, __ATOMIC_RELAXED);
            return -1;
        }
        if (__atomic_compare_exchange_n(&b->used, &cur, cur + (int64_t)n, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            break;
    }
    note_peak(b, cur + (int64_t)n);
    return 0;
}

void pc_budget_force(pc_budget *b, size_t n)
{
    if (!b) return;
    note_peak(b, __atomic_add_fetch(&b->used, (int64_t)n, __ATOMIC_ACQ_REL));
}

void pc_budget_release(pc_budget *b, size_t n)
{
    if (!b || !n) return;
    __atomic_fetch_sub(&b->used, (int64_t)n, __ATOMIC_ACQ_REL);
}

int64_t pc_budget_limit(const pc_budget *b)
{
    return b ? b->limit : INT64_MAX;
}

int64_t pc_budget_used(const pc_budget *b)
{
    return b ? __atomic_load_n(&b->used, __ATOMIC_RELAXED) : 0;
}

int64_t pc_budget_peak(const pc_budget *b)
{
    return b ? __atomic_load_n(&b->peak, __ATOMIC_RELAXED) : 0;
}

int64_t pc_budget_refused(const pc_budget *b)
{
    return b ? __atomic_load_n(&b->refused, __ATOMIC_RELAXED) : 0;
}

int64_t pc_budget_effective_limit(int64_t limit, double percentage, const char *cgroup_max)
{
    if (percentage <= 0 || !cgroup_max) return limit;
    FILE *f = fopen(cgroup_max, "r");
    if (!f) return limit;
    char line[64] = "";
    int ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    if (!ok) return limit;
    char *end;
    long long cg = strtoll(line, &end, 10);
    if (end == line || cg <= 0 || (*end && *end != '\n')) return limit; /* "max" or garbage */
    double share = (double)cg * percentage / 100.0;
    if (share < 1) share = 1;
    return share < (double)limit ? (int64_t)share : limit;
}
