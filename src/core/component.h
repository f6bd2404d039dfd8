/*
 * component.h - the contract between the pipeline core and every component.
 *
 * A component (receiver, processor, exporter) is one .c file exporting one
 * pc_component_ops table; registry.c lists them all. Lifecycle, driven by
 * pipeline.c:
 *
 *   create(id, cfg, next)  build state; no threads, no sockets yet
 *   start(ctx, host)       open sockets, start threads; exporters first, receivers last
 *   consume(ctx, batch)    processors and exporters only; see below
 *   shutdown(ctx)          stop accepting, drain, flush downstream; receivers first.
 *                          Safe without start and safe twice.
 *   destroy(ctx)           free everything; accepts NULL and half-built state
 *
 * Data path: consume takes ownership of one reference to |batch| (span.h) and
 * returns once the batch is handled: PC_OK when it is durable downstream (an
 * exporter returns OK only after its store committed or its broker acknowledged),
 * PC_RETRY when it could not be made durable in time and the sender should try
 * again later (receivers answer 503 / 429 with Retry-After), PC_DROP when it can
 * never be handled (receivers answer 500). A consumer may be called from many
 * threads at once.
 *
 * Health: an exporter may report its state (health op, any thread, any time
 * between create and destroy); the pipeline aggregates them for the /health
 * routes (pc_host_health). An exporter without the op counts as OK.
 *
 * Metrics (metrics.h): the pipeline counts what each exporter's consume
 * returns (otelcol_exporter_sent_* for OK, otelcol_exporter_send_failed_* for
 * RETRY and DROP, labelled exporter=<id>). A receiver resolves its counters at
 * start (pc_host_receiver_counters, pc_host_metrics) and counts each hand-over
 * with pc_receiver_count. A component with values of its own (queue or spool
 * depth, lag) adds them at scrape time through the optional metrics op.
 */
#ifndef PC_COMPONENT_H
#define PC_COMPONENT_H

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "metrics.h"
#include "span.h"

#include <stdint.h>

typedef enum pc_result { PC_OK = 0, PC_RETRY = 1, PC_DROP = 2 } pc_result;

typedef enum pc_kind { PC_RECEIVER = 0, PC_PROCESSOR, PC_EXPORTER } pc_kind;

/*
 * The next step of a pipeline as seen by a receiver or processor. |signals| is
 * the mask (PC_SIG_BIT) of the signals some pipeline behind it takes; a
 * receiver drops (and counts) batches of any other signal instead of passing
 * them on, and answers success for them.
 */
typedef struct pc_consumer {
    pc_result (*consume)(void *ctx, pc_batch *batch);
    void *ctx;
    unsigned signals;
} pc_consumer;

static inline pc_result pc_consume(const pc_consumer *c, pc_batch *batch)
{
    return c->consume(c->ctx, batch);
}

/*
 * An exporter's state as its health op reports it. OK: it accepts and
 * delivers. DEGRADED: it accepts, but not the normal way (for example into a
 * spool). UNAVAILABLE: it cannot accept now; requests get retry, and /health
 * answers 503 so an orchestrator can restart what is stuck.
 */
typedef enum pc_health_state {
    PC_HEALTH_OK = 0,
    PC_HEALTH_DEGRADED = 1,
    PC_HEALTH_UNAVAILABLE = 2
} pc_health_state;

typedef struct pc_health {
    pc_health_state state;
    int64_t since_ns; /* wall clock (pc_time_now_ns) when this state began; 0 = unknown */
    char reason[256]; /* why, when not OK (NUL-terminated; may be empty) */
} pc_health;

typedef struct pc_store pc_store;
typedef struct pc_host pc_host;

struct pc_component_ops {
    const char *type;
    pc_kind kind;
    /* The pipelines it may be in: a PC_SIG_BIT mask; 0 means traces only. */
    unsigned signals;
    const pc_option *options; /* settings table, NULL-key terminated */
    size_t config_size;       /* size of the struct the options fill */
    /* Checks relations between settings; writes a message naming the key. Optional. */
    int (*validate)(const void *cfg, char *err, size_t errlen);
    /*
     * Creates the component |id|. |next| is where a receiver or processor sends
     * batches (NULL for exporters); it stays valid until destroy. Returns NULL
     * after logging why.
     */
    void *(*create)(const char *id, const void *cfg, const pc_consumer *next);
    /* Starts work. Returns 0, or -1 after logging why (startup then fails). */
    int (*start)(void *ctx, pc_host *host);
    void (*shutdown)(void *ctx);
    void (*destroy)(void *ctx);
    /* Processors and exporters: see the data path above. */
    pc_result (*consume)(void *ctx, pc_batch *batch);
    /* Exporters that can serve the query API return their store; others NULL. */
    const pc_store *(*store)(void *ctx);
    /* Exporters: fills |out| with the current state. Optional (absent = OK).
     * Thread-safe, cheap, never blocks on I/O. */
    void (*health)(void *ctx, pc_health *out);
    /* Any component: appends its own scrape-time samples to |out| with
     * pc_metrics_out_add (label them with the component id). Optional. Called
     * on the scraping thread between start and shutdown; quick, never blocks
     * on I/O, registers nothing. */
    void (*metrics)(void *ctx, pc_metrics_out *out);
};

/* Returns the store of the exporter |id|, or NULL when there is none. */
const pc_store *pc_host_store(pc_host *host, const char *id);
/* The process's authenticator (auth.h), for every listener; NULL (= no keys)
 * when |host| is NULL, as in unit tests. */
pc_auth *pc_host_auth(pc_host *host);
/* The process's self-metrics registry (metrics.h); NULL when |host| is NULL or
 * none was set, and registering in NULL gives usable scratch series. */
pc_metrics *pc_host_metrics(pc_host *host);

/* The counters of one receiver |id| on one |transport| ("http", "grpc",
 * "kafka"): otelcol_receiver_accepted_{spans,metric_points,log_records} and
 * the refused_ ones, labelled receiver=<id>, transport=<transport>. */
typedef struct pc_receiver_counters {
    pc_counter *accepted[PC_SIGNALS];
    pc_counter *refused[PC_SIGNALS];
} pc_receiver_counters;
/* Resolves |out| once (at start); the counters live as long as the registry. */
void pc_host_receiver_counters(pc_host *host, const char *id, const char *transport,
                               pc_receiver_counters *out);
/* Counts |items| of |sig| handed to the pipeline with result |r|: accepted
 * when OK, refused otherwise. A zeroed |c| (never resolved) counts nothing. */
static inline void pc_receiver_count(const pc_receiver_counters *c, pc_signal sig, int64_t items,
                                     pc_result r)
{
    pc_counter *k = r == PC_OK ? c->accepted[sig] : c->refused[sig];
    if (k && items > 0) pc_counter_add(k, (uint64_t)items);
}
/* The counter prela_receiver_dropped_{spans,metric_points,log_records}
 * {receiver=<id>, reason=<reason>} of |sig|: items a receiver read but left
 * out while answering success (partial success, no pipeline for the signal). */
pc_counter *pc_host_dropped(pc_host *host, const char *id, pc_signal sig, const char *reason);

/* The process memory budget (budget.h) that request memory is charged to;
 * NULL (= unlimited) when |host| is NULL or none was set. */
struct pc_budget *pc_host_budget(pc_host *host);
/*
 * Appends the health of every exporter of the pipelines to |out| as a JSON
 * array, [{"id":..,"type":..,"state":"ok|degraded|unavailable","reason":..,
 * "since":RFC 3339}] ("since" only when known), and returns the worst state.
 * The health routes need no key, so when API keys are configured "reason" is
 * left out (it may name internal hosts); the exporters log it instead.
 * |host| NULL (unit tests) appends [] and returns OK. Safe from any thread
 * while the pipeline runs.
 */
pc_health_state pc_host_health(pc_host *host, pc_buf *out);
/* The /health "status" word of |s|: "healthy", "degraded" or "unhealthy". */
const char *pc_health_status(pc_health_state s);

/* ---------------------------------------------------------------- registry */

/*
 * The registry: every component type the binary knows. Declared here so the
 * config loader can look types up; defined in src/registry.c, above the
 * components (the one file that names them all).
 */
/* Returns the ops of component |type| of |kind|, or NULL. */
const pc_component_ops *pc_registry_find(pc_kind kind, const char *type);
/* Calls |fn| for every registered component (for --help). */
void pc_registry_each(void (*fn)(const pc_component_ops *ops, void *ud), void *ud);

#endif
