/*
 * pipeline.c - the component graph (see pipeline.h).
 *
 * Nodes are component instances: one per exporter id and per receiver id, one
 * per processor id *per pipeline* (processors may keep per-pipeline state). The
 * edges are pc_consumer values: a processor's consumer calls its ops->consume,
 * a fan-out consumer hands the batch to several consumers, taking one extra
 * reference per additional target and returning the worst result
 * (DROP > RETRY > OK) so a receiver acknowledges only what every exporter took.
 *
 * All arrays are sized before any component is created, so the pc_consumer
 * pointers handed to create() never move.
 *
 * Metrics: every exporter is reached through exporter_consume, which counts
 * what its consume returned (component.h); the counters are resolved at start,
 * before any receiver runs. One collector calls the components' metrics ops;
 * it is removed before anything shuts down.
 *
 * Health (pc_host_health): the listeners' /health routes ask every exporter
 * node's health op on their own threads; the node array is fixed once built,
 * and receivers stop before exporters are shut down or destroyed.
 */
#include "pipeline.h"
#include "auth.h"
#include "component.h"
#include "json.h"
#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct node {
    const pc_config_component *cc;
    void *ctx;
    int started;
    /* exporters: what consume returned, per signal (resolved at start) */
    pc_counter *sent[PC_SIGNALS];
    pc_counter *failed[PC_SIGNALS];
} node;

typedef struct fanout {
    pc_consumer *targets;
    size_t n;
} fanout;

struct pc_host {
    pc_pipeline *p;
    pc_auth *auth;
    pc_budget *budget;
    pc_metrics *metrics;
};

struct pc_pipeline {
    const pc_config *cfg;
    pc_host host;
    node *nodes; /* exporters, then processors, then receivers: the start order */
    size_t n_nodes;
    pc_consumer *consumers; /* processor consumers and fan-out targets */
    size_t n_consumers;
    fanout *fanouts; /* per pipeline: exporters; per receiver: pipeline heads */
    size_t n_fanouts;
    pc_consumer *fanout_consumers; /* the consumer of each fanout */
    int collecting; /* the components' metrics ops are registered */
    int shut;
};

/* Hands |b| to every target that takes its signal (exporters of one pipeline
 * all do; a receiver's pipelines may be of several signals). */
static pc_result fanout_consume(void *ctx, pc_batch *b)
{
    fanout *f = ctx;
    unsigned bit = PC_SIG_BIT(b->signal);
    size_t last = f->n;
    for (size_t i = 0; i < f->n; i++)
        if (f->targets[i].signals & bit) last = i;
    if (last == f->n) { /* receivers check pc_consumer.signals first; be safe anyway */
        pc_batch_unref(b);
        return PC_OK;
    }
    pc_result worst = PC_OK;
    for (size_t i = 0; i <= last; i++) {
        if (!(f->targets[i].signals & bit)) continue;
        if (i < last) pc_batch_ref(b);
        pc_result r = pc_consume(&f->targets[i], b);
        if (r > worst) worst = r;
    }
    return worst;
}

/* An exporter's consume, counted: |ctx| is its node. */
static pc_result exporter_consume(void *ctx, pc_batch *b)
{
    node *n = ctx;
    pc_signal sig = b->signal;
    int64_t items = sig == PC_SIGNAL_TRACES ? (int64_t)b->n : b->items; /* b is gone after */
    pc_result r = n->cc->ops->consume(n->ctx, b);
    pc_counter *k = r == PC_OK ? n->sent[sig] : n->failed[sig];
    if (k && items > 0) pc_counter_add(k, (uint64_t)items);
    return r;
}

/* The consumer of fan-out |f|: its only target, or the fan-out itself. */
static pc_consumer fanout_consumer(fanout *f)
{
    if (f->n == 1) return f->targets[0];
    unsigned signals = 0;
    for (size_t i = 0; i < f->n; i++) signals |= f->targets[i].signals;
    return (pc_consumer){fanout_consume, f, signals};
}

static node *find_node(pc_pipeline *p, pc_kind kind, const char *id)
{
    for (size_t i = 0; i < p->n_nodes; i++)
        if (p->nodes[i].cc->ops->kind == kind && !strcmp(p->nodes[i].cc->id, id))
            return &p->nodes[i];
    return NULL;
}

const pc_store *pc_host_store(pc_host *host, const char *id)
{
    node *n = find_node(host->p, PC_EXPORTER, id);
    if (!n || !n->ctx || !n->cc->ops->store) return NULL;
    return n->cc->ops->store(n->ctx);
}

pc_auth *pc_host_auth(pc_host *host)
{
    return host ? host->auth : NULL;
}

pc_budget *pc_host_budget(pc_host *host)
{
    return host ? host->budget : NULL;
}

const char *pc_health_status(pc_health_state s)
{
    return s == PC_HEALTH_OK ? "healthy" : s == PC_HEALTH_DEGRADED ? "degraded" : "unhealthy";
}

static const char *state_name(pc_health_state s)
{
    return s == PC_HEALTH_OK ? "ok" : s == PC_HEALTH_DEGRADED ? "degraded" : "unavailable";
}

pc_health_state pc_host_health(pc_host *host, pc_buf *out)
{
    pc_health_state worst = PC_HEALTH_OK;
    bool reasons = !pc_auth_enabled(pc_host_auth(host));
    pc_buf_putc(out, '[');
    size_t listed = 0;
    for (size_t i = 0; host && i < host->p->n_nodes; i++) {
        const node *n = &host->p->nodes[i];
        if (n->cc->ops->kind != PC_EXPORTER || !n->ctx) continue;
        pc_health h = {.state = PC_HEALTH_OK};
        if (n->cc->ops->health) n->cc->ops->health(n->ctx, &h);
        h.reason[sizeof(h.reason) - 1] = '\0';
        if (h.state > worst) worst = h.state;
        if (listed++) pc_buf_putc(out, ',');
        pc_buf_puts(out, "{\"id\":");
        pc_json_write_cstr(out, n->cc->id);
        pc_buf_puts(out, ",\"type\":");
        pc_json_write_cstr(out, n->cc->ops->type);
        pc_buf_printf(out, ",\"state\":\"%s\"", state_name(h.state));
        if (reasons) { /* see component.h: not for anonymous callers when keys are in use */
            pc_buf_puts(out, ",\"reason\":");
            pc_json_write_cstr(out, h.reason);
        }
        if (h.since_ns > 0) {
            pc_buf_puts(out, ",\"since\":");
            pc_json_write_time(out, h.since_ns);
        }
        pc_buf_putc(out, '}');
    }
    pc_buf_putc(out, ']');
    return worst;
}

void pc_pipeline_set_budget(pc_pipeline *p, pc_budget *b)
{
    p->host.budget = b;
}

void pc_pipeline_set_metrics(pc_pipeline *p, pc_metrics *m)
{
    p->host.metrics = m;
}

pc_metrics *pc_host_metrics(pc_host *host)
{
    return host ? host->metrics : NULL;
}

/* The item names of each signal as the OpenTelemetry Collector spells them. */
static const char *const item_names[PC_SIGNALS] = {"spans", "metric_points", "log_records"};
static const char *const item_help[PC_SIGNALS] = {"spans", "metric data points", "log records"};

void pc_host_receiver_counters(pc_host *host, const char *id, const char *transport,
                               pc_receiver_counters *out)
{
    const char *const labels[] = {"receiver", id, "transport", transport, NULL};
    char name[96], help[160];
    for (int s = 0; s < PC_SIGNALS; s++) {
        snprintf(name, sizeof(name), "otelcol_receiver_accepted_%s", item_names[s]);
        snprintf(help, sizeof(help), "Number of %s successfully pushed into the pipeline.",
                 item_help[s]);
        out->accepted[s] = pc_metrics_counter(pc_host_metrics(host), name, help, labels);
        snprintf(name, sizeof(name), "otelcol_receiver_refused_%s", item_names[s]);
        snprintf(help, sizeof(help), "Number of %s that could not be pushed into the pipeline.",
                 item_help[s]);
        out->refused[s] = pc_metrics_counter(pc_host_metrics(host), name, help, labels);
    }
}

pc_counter *pc_host_dropped(pc_host *host, const char *id, pc_signal sig, const char *reason)
{
    const char *const labels[] = {"receiver", id, "reason", reason, NULL};
    char name[96], help[200];
    snprintf(name, sizeof(name), "prela_receiver_dropped_%s", item_names[sig]);
    snprintf(help, sizeof(help),
             "Number of %s a receiver read but left out while answering success (partial "
             "success, no pipeline for the signal), by reason.",
             item_help[sig]);
    return pc_metrics_counter(pc_host_metrics(host), name, help, labels);
}

static void resolve_exporter_counters(pc_pipeline *p, node *n)
{
    const char *const labels[] = {"exporter", n->cc->id, NULL};
    char name[96], help[160];
    for (int s = 0; s < PC_SIGNALS; s++) {
        snprintf(name, sizeof(name), "otelcol_exporter_sent_%s", item_names[s]);
        snprintf(help, sizeof(help), "Number of %s successfully sent to destination.",
                 item_help[s]);
        n->sent[s] = pc_metrics_counter(p->host.metrics, name, help, labels);
        snprintf(name, sizeof(name), "otelcol_exporter_send_failed_%s", item_names[s]);
        snprintf(help, sizeof(help), "Number of %s in failed attempts to send to destination.",
                 item_help[s]);
        n->failed[s] = pc_metrics_counter(p->host.metrics, name, help, labels);
    }
}

/* The collector of the components' own samples (their metrics ops). */
static void collect_components(void *ctx, pc_metrics_out *out)
{
    pc_pipeline *p = ctx;
    for (size_t i = 0; i < p->n_nodes; i++) {
        node *n = &p->nodes[i];
        if (n->started && n->cc->ops->metrics) n->cc->ops->metrics(n->ctx, out);
    }
}

static node *add_node(pc_pipeline *p, const pc_config_component *cc)
{
    node *n = &p->nodes[p->n_nodes++];
    n->cc = cc;
    return n;
}

static int in_list(const pc_strlist *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], id)) return 1;
    return 0;
}

pc_pipeline *pc_pipeline_create(const pc_config *cfg, pc_auth *auth)
{
    pc_pipeline *p = pc_xcalloc(1, sizeof(*p));
    p->cfg = cfg;
    p->host.p = p;
    p->host.auth = auth;
    size_t n_proc = 0, n_exp_refs = 0;
    for (size_t i = 0; i < cfg->n_pipelines; i++) {
        n_proc += cfg->pipelines[i].processors.n;
        n_exp_refs += cfg->pipelines[i].exporters.n;
    }
    p->nodes = pc_xcalloc(cfg->n_components + n_proc + 1, sizeof(node));
    p->consumers = pc_xcalloc(n_proc + n_exp_refs + 2 * cfg->n_pipelines * cfg->n_components + 1,
                              sizeof(pc_consumer));
    p->fanouts = pc_xcalloc(cfg->n_pipelines + cfg->n_components + 1, sizeof(fanout));
    p->fanout_consumers = pc_xcalloc(cfg->n_pipelines + cfg->n_components + 1, sizeof(pc_consumer));

    /* Exporters used by some pipeline. */
    for (size_t i = 0; i < cfg->n_components; i++) {
        const pc_config_component *cc = &cfg->components[i];
        if (cc->ops->kind != PC_EXPORTER) continue;
        int used = 0;
        for (size_t k = 0; k < cfg->n_pipelines; k++) used |= in_list(&cfg->pipelines[k].exporters, cc->id);
        if (!used) {
            pc_log(PC_LOG_WARN, cc->id, "configured but not used by any pipeline; not started");
            continue;
        }
        node *n = add_node(p, cc);
        if (!(n->ctx = cc->ops->create(cc->id, cc->cfg, NULL))) goto fail;
    }

    /* Per pipeline: exporter fan-out, then processors from last to first. */
    pc_consumer *heads = pc_xcalloc(cfg->n_pipelines + 1, sizeof(pc_consumer));
    for (size_t k = 0; k < cfg->n_pipelines; k++) {
        const pc_config_pipeline *pl = &cfg->pipelines[k];
        fanout *f = &p->fanouts[p->n_fanouts];
        f->targets = &p->consumers[p->n_consumers];
        unsigned bit = PC_SIG_BIT(pl->signal);
        for (size_t e = 0; e < pl->exporters.n; e++) {
            node *n = find_node(p, PC_EXPORTER, pl->exporters.v[e]);
            p->consumers[p->n_consumers++] = (pc_consumer){exporter_consume, n, bit};
            f->n++;
        }
        pc_consumer *next = &p->fanout_consumers[p->n_fanouts];
        *next = fanout_consumer(f);
        p->n_fanouts++;
        for (size_t j = pl->processors.n; j-- > 0;) {
            const pc_config_component *cc = pc_config_find(cfg, PC_PROCESSOR, pl->processors.v[j]);
            node *n = add_node(p, cc);
            if (!(n->ctx = cc->ops->create(cc->id, cc->cfg, next))) {
                free(heads);
                goto fail;
            }
            pc_consumer *c = &p->consumers[p->n_consumers++];
            *c = (pc_consumer){cc->ops->consume, n->ctx, bit};
            next = c;
        }
        heads[k] = *next;
    }

    /* Receivers: in pipelines first, then the ones outside any (query). */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < cfg->n_components; i++) {
            const pc_config_component *cc = &cfg->components[i];
            if (cc->ops->kind != PC_RECEIVER) continue;
            fanout *f = &p->fanouts[p->n_fanouts];
            f->targets = &p->consumers[p->n_consumers];
            f->n = 0;
            for (size_t k = 0; k < cfg->n_pipelines; k++) {
                if (!in_list(&cfg->pipelines[k].receivers, cc->id)) continue;
                p->consumers[p->n_consumers++] = heads[k];
                f->n++;
            }
            if ((pass == 0) != (f->n > 0)) continue;
            pc_consumer *next = NULL;
            if (f->n) {
                next = &p->fanout_consumers[p->n_fanouts++];
                *next = fanout_consumer(f);
            }
            node *n = add_node(p, cc);
            if (!(n->ctx = cc->ops->create(cc->id, cc->cfg, next))) {
                free(heads);
                goto fail;
            }
        }
    }
    free(heads);
    return p;
fail:
    pc_pipeline_destroy(p);
    return NULL;
}

int pc_pipeline_start(pc_pipeline *p)
{
    for (size_t i = 0; i < p->n_nodes; i++)
        if (p->nodes[i].cc->ops->kind == PC_EXPORTER) resolve_exporter_counters(p, &p->nodes[i]);
    for (size_t i = 0; i < p->n_nodes; i++) {
        node *n = &p->nodes[i];
        if (n->cc->ops->start && n->cc->ops->start(n->ctx, &p->host)) {
            pc_log(PC_LOG_ERROR, n->cc->id, "failed to start");
            pc_pipeline_shutdown(p);
            return -1;
        }
        n->started = 1;
    }
    pc_metrics_add_collector(p->host.metrics, collect_components, p);
    p->collecting = 1;
    return 0;
}

void pc_pipeline_shutdown(pc_pipeline *p)
{
    if (!p || p->shut) return;
    p->shut = 1;
    if (p->collecting) pc_metrics_remove_collector(p->host.metrics, collect_components, p);
    p->collecting = 0;
    for (size_t i = p->n_nodes; i-- > 0;) {
        node *n = &p->nodes[i];
        if (n->ctx && n->cc->ops->shutdown) n->cc->ops->shutdown(n->ctx);
    }
}

void pc_pipeline_destroy(pc_pipeline *p)
{
    if (!p) return;
    pc_pipeline_shutdown(p);
    for (size_t i = p->n_nodes; i-- > 0;)
        if (p->nodes[i].ctx) p->nodes[i].cc->ops->destroy(p->nodes[i].ctx);
    free(p->nodes);
    free(p->consumers);
    free(p->fanouts);
    free(p->fanout_consumers);
    free(p);
}
