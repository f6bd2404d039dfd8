/*
 * budget.h - one memory budget for the whole process.
 *
 * Every byte a client makes the collector hold (the body on the wire, the
 * inflated body, the decoded spans) is reserved here before it exists, and
 * released when it dies. A reservation that would take the total past the
 * limit fails at once (it never blocks): the caller refuses the request with
 * 429 / RESOURCE_EXHAUSTED and the process goes on. So the bytes that clients
 * control are bounded as a whole, not one request at a time, and pc_xmalloc's
 * abort is left for a machine that is really out of memory.
 *
 * Data flow: main creates the budget from service.memory_limit, the pipeline
 * host hands it to receivers (pc_host_budget), receivers give it to the HTTP
 * and gRPC servers, which attach it to each request arena (arena.h): the arena
 * charges every block it allocates and releases them all when it is destroyed,
 * so a batch waiting for an exporter stays charged until its arena dies.
 *
 * Thread-safe: reserve and release are lock-free atomics. A NULL budget is
 * unlimited, so code paths without one (tests, tools) need no special case.
 */
#ifndef PC_BUDGET_H
#define PC_BUDGET_H

#include <stddef.h>
#include <stdint.h>

typedef struct pc_budget pc_budget;

#define PC_BUDGET_DEFAULT_LIMIT ((int64_t)256 << 20)

/* Creates a budget of |limit| bytes (> 0). Never NULL. */
pc_budget *pc_budget_create(int64_t limit);
/* Frees |b|. Accepts NULL. Outstanding reservations are forgotten. */
void pc_budget_destroy(pc_budget *b);

/*
 * Reserves |n| bytes: 0 when the total stays within the limit, -1 (nothing
 * reserved, the refusal counted) when it would cross it. NULL |b| always
 * succeeds. Every successful reservation is paired with pc_budget_release.
 */
int pc_budget_reserve(pc_budget *b, size_t n);
/* Reserves |n| bytes even past the limit (memory that already exists and must
 * be accounted for). Pair with pc_budget_release. */
void pc_budget_force(pc_budget *b, size_t n);
/* Gives back |n| bytes reserved earlier. NULL |b| is a no-op. */
void pc_budget_release(pc_budget *b, size_t n);

/* The limit, the bytes reserved now, the most ever reserved at once, and the
 * number of refused reservations (for tests, logs and metrics). */
int64_t pc_budget_limit(const pc_budget *b);
int64_t pc_budget_used(const pc_budget *b);
int64_t pc_budget_peak(const pc_budget *b);
int64_t pc_budget_refused(const pc_budget *b);

/*
 * The effective limit: |limit| bytes, or, when |percentage| > 0 and the cgroup
 * file |cgroup_max| (normally /sys/fs/cgroup/memory.max) holds a number,
 * |percentage| percent of that number when it is smaller. "max" (no cgroup
 * limit), a missing file or garbage leave |limit| as it is.
 */
int64_t pc_budget_effective_limit(int64_t limit, double percentage, const char *cgroup_max);

#endif
