/*
 * metrics.h - the collector's own metrics: a registry of counters, gauges and
 * histograms, rendered in the Prometheus text exposition format (0.0.4).
 *
 * Data flow: main creates one registry and hands it to the pipeline host
 * (pc_host_metrics); components resolve their series once, at start, into
 * pc_counter / pc_gauge / pc_histogram pointers and bump them on the hot path
 * with relaxed atomics (no lock, no lookup, no malloc per increment). Values
 * that already live elsewhere (the memory budget, a spool's size, consumer
 * lag) are not copied on every change: a collector callback appends them at
 * scrape time. telemetry.c serves GET /metrics from pc_metrics_render.
 *
 * Naming: families are registered without the _total suffix; a counter is
 * rendered as NAME_total (HELP/TYPE lines too), as the OpenTelemetry
 * Collector's Prometheus endpoint does, so `otelcol_receiver_accepted_spans`
 * becomes `otelcol_receiver_accepted_spans_total`.
 *
 * Labels: each series has a fixed set of at most PC_METRICS_MAX_LABELS
 * name/value pairs, given as a NULL-terminated array {"name", "value", ...,
 * NULL}. Names are code (must match [a-zA-Z_][a-zA-Z0-9_]*); values may be
 * config input and are escaped (\\, \", \n) when rendered.
 *
 * Ownership and lifetime: a series lives as long as its registry; pointers
 * returned by the registration calls stay valid until pc_metrics_destroy.
 * Registration and rendering take the registry's mutex; increments never do.
 * A NULL registry is accepted everywhere: registration then returns a shared
 * scratch series, so code without metrics (unit tests) needs no NULL checks.
 */
#ifndef PC_METRICS_H
#define PC_METRICS_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

#define PC_METRICS_MAX_LABELS 4
#define PC_METRICS_MAX_BUCKETS 16

typedef enum pc_metric_type {
    PC_METRIC_COUNTER = 0,
    PC_METRIC_GAUGE,
    PC_METRIC_HISTOGRAM
} pc_metric_type;

typedef struct pc_metrics pc_metrics;
typedef struct pc_metrics_out pc_metrics_out;

/* A monotonically increasing count; bump with pc_counter_add. */
typedef struct pc_counter {
    uint64_t v; /* atomic */
} pc_counter;

/* A value that goes up and down; pc_gauge_set / pc_gauge_add. */
typedef struct pc_gauge {
    int64_t v; /* atomic */
} pc_gauge;

typedef struct pc_histogram pc_histogram;

/* Creates an empty registry. Never NULL. */
pc_metrics *pc_metrics_create(void);
/* Frees |m| and every series in it. Accepts NULL. */
void pc_metrics_destroy(pc_metrics *m);

/*
 * Returns the counter |name|{labels}, creating the family (with |help|) and
 * the series on first use; the same name and label values give the same
 * pointer. |labels| is {"name", "value", ..., NULL} or NULL for none. A name
 * already registered with another type, or more than PC_METRICS_MAX_LABELS
 * labels, gives the scratch series (and a logged warning): a programming
 * error that must not take the process down.
 */
pc_counter *pc_metrics_counter(pc_metrics *m, const char *name, const char *help,
                               const char *const *labels);
/* The same for a gauge. */
pc_gauge *pc_metrics_gauge(pc_metrics *m, const char *name, const char *help,
                           const char *const *labels);
/* The same for a histogram with |n| ascending upper bounds |bounds| (at most
 * PC_METRICS_MAX_BUCKETS; +Inf is implied). The first registration of a family
 * fixes its bounds. */
pc_histogram *pc_metrics_histogram(pc_metrics *m, const char *name, const char *help,
                                   const char *const *labels, const double *bounds, size_t n);

static inline void pc_counter_add(pc_counter *c, uint64_t n)
{
    __atomic_fetch_add(&c->v, n, __ATOMIC_RELAXED);
}
static inline uint64_t pc_counter_get(const pc_counter *c)
{
    return __atomic_load_n(&c->v, __ATOMIC_RELAXED);
}
static inline void pc_gauge_set(pc_gauge *g, int64_t v)
{
    __atomic_store_n(&g->v, v, __ATOMIC_RELAXED);
}
static inline void pc_gauge_add(pc_gauge *g, int64_t d)
{
    __atomic_fetch_add(&g->v, d, __ATOMIC_RELAXED);
}
/* Records one observation |v| (lock-free). */
void pc_histogram_observe(pc_histogram *h, double v);

/*
 * Scrape-time values. A collector appends samples with pc_metrics_out_add;
 * it runs on the scraping thread with the registry's mutex held, so it must
 * be quick and must not register series. It may be removed at any time;
 * after pc_metrics_remove_collector returns it is never called again.
 */
typedef void (*pc_metrics_collect_fn)(void *ctx, pc_metrics_out *out);
void pc_metrics_add_collector(pc_metrics *m, pc_metrics_collect_fn fn, void *ctx);
void pc_metrics_remove_collector(pc_metrics *m, pc_metrics_collect_fn fn, void *ctx);

/*
 * Appends one sample |name|{labels} = |value| of |type| (counter or gauge;
 * counters get the _total suffix). Samples of one name are rendered under one
 * HELP/TYPE header, together with a registered family of that name; a sample
 * whose type contradicts the family already seen is left out.
 */
void pc_metrics_out_add(pc_metrics_out *out, pc_metric_type type, const char *name,
                        const char *help, const char *const *labels, double value);

/* Appends every family (registered series, then collectors' samples) to |b| in
 * the text exposition format, version 0.0.4. */
void pc_metrics_render(pc_metrics *m, pc_buf *b);

/*
 * Requests by status code for one listener: the counter |name|{listener=..,
 * |code_label|=..} of each code, registered the first time that code is
 * answered (codes outside 0..599 count as 0). Embed one in a server; init
 * before the first request; add from any thread without a lock.
 */
typedef struct pc_metrics_codes {
    pc_metrics *m;
    const char *name, *help, *code_label; /* static strings */
    char listener[96];
    pc_counter *by[600]; /* atomic pointers */
} pc_metrics_codes;

void pc_metrics_codes_init(pc_metrics_codes *c, pc_metrics *m, const char *name, const char *help,
                           const char *listener, const char *code_label);
void pc_metrics_codes_add(pc_metrics_codes *c, int code);

/* The Content-Type of pc_metrics_render's output. */
#define PC_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
