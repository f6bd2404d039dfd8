/*
 * debug.c - the debug exporter (see debug.h).
 *
 * Position: the end of any pipeline (traces, metrics, logs). consume() logs the
 * batch and answers PC_OK at once: nothing is stored, so "durable" is trivially
 * true. Lines go through log.h at info level, so the service's log level and
 * destination apply.
 */
#include "debug.h"
#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct debug_cfg {
    char *verbosity;
} debug_cfg;

static const pc_option options[] = {
    {"verbosity", PC_OPT_STRING, "basic", offsetof(debug_cfg, verbosity), 0, 0,
     "basic: one line per batch; detailed: also one line per span"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

static const char *const item_names[PC_SIGNALS] = {"spans", "data points", "log records"};

typedef struct debug {
    char *id;
    bool detailed;
    int64_t batches[PC_SIGNALS]; /* atomic */
    int64_t items[PC_SIGNALS];   /* atomic */
} debug;

static int validate(const void *cfgp, char *err, size_t errlen)
{
    const debug_cfg *cfg = cfgp;
    if (strcmp(cfg->verbosity, "basic") && strcmp(cfg->verbosity, "detailed")) {
        snprintf(err, errlen, "verbosity: \"%s\" is not one of basic, detailed", cfg->verbosity);
        return -1;
    }
    return 0;
}

static void *create(const char *id, const void *cfgp, const pc_consumer *next)
{
    (void)next;
    const debug_cfg *cfg = cfgp;
    debug *d = pc_xcalloc(1, sizeof(*d));
    d->id = pc_xstrdup(id);
    d->detailed = !strcmp(cfg->verbosity, "detailed");
    return d;
}

static void log_span(const debug *d, const pc_span *s)
{
    pc_log(PC_LOG_INFO, d->id, "  span %.*s/%.*s parent=%.*s name=\"%.*s\" type=%s status=%s "
           "service=%.*s",
           (int)s->trace_id.n, s->trace_id.p, (int)s->span_id.n, s->span_id.p,
           (int)s->parent_id.n, s->parent_id.p, (int)s->name.n, s->name.p,
           pc_span_type_name(s->span_type), pc_status_name(s->status), (int)s->service_name.n,
           s->service_name.p);
}

static pc_result consume(void *ctx, pc_batch *b)
{
    debug *d = ctx;
    pc_signal sig = b->signal;
    int64_t items = sig == PC_SIGNAL_TRACES ? (int64_t)b->n : b->items;
    __atomic_add_fetch(&d->batches[sig], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&d->items[sig], items, __ATOMIC_RELAXED);
    if (sig == PC_SIGNAL_TRACES) {
        pc_log(PC_LOG_INFO, d->id, "traces: %lld %s", (long long)items, item_names[sig]);
        if (d->detailed)
            for (size_t i = 0; i < b->n; i++) log_span(d, &b->spans[i]);
    } else {
        pc_log(PC_LOG_INFO, d->id, "%s: %lld %s, %zu bytes of protobuf", pc_signal_name(sig),
               (long long)items, item_names[sig], b->raw.n);
    }
    pc_batch_unref(b);
    return PC_OK;
}

static void shutdown_(void *ctx)
{
    debug *d = ctx;
    for (int s = 0; s < PC_SIGNALS; s++)
        if (d->batches[s])
            pc_log(PC_LOG_INFO, d->id, "total %s: %lld batches, %lld %s",
                   pc_signal_name((pc_signal)s), (long long)d->batches[s],
                   (long long)d->items[s], item_names[s]);
    memset(d->batches, 0, sizeof(d->batches)); /* shutdown may run twice */
}

static void destroy(void *ctx)
{
    debug *d = ctx;
    if (!d) return;
    free(d->id);
    free(d);
}

const pc_component_ops pc_debug_exporter_ops = {
    .type = "debug",
    .kind = PC_EXPORTER,
    .signals = PC_SIG_BIT(PC_SIGNAL_TRACES) | PC_SIG_BIT(PC_SIGNAL_METRICS) |
               PC_SIG_BIT(PC_SIGNAL_LOGS),
    .options = options,
    .config_size = sizeof(debug_cfg),
    .validate = validate,
    .create = create,
    .shutdown = shutdown_,
    .destroy = destroy,
    .consume = consume,
};
