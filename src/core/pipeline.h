/*
 * pipeline.h - builds the component graph from a config and runs its lifecycle.
 *
 *   receiver ──▶ (fan-in per pipeline) processor ▶ processor ▶ fan-out ─┬▶ exporter
 *                                                                        └▶ exporter
 *
 * A receiver in several pipelines sends each batch to all of them; an exporter
 * shared by pipelines is one instance. Start order: exporters, processors,
 * receivers (and components outside pipelines, such as the query receiver,
 * last). Shutdown runs in reverse so in-flight data drains into the exporters
 * before they flush and close.
 */
#ifndef PC_PIPELINE_H
#define PC_PIPELINE_H

#include "auth.h"
#include "budget.h"
#include "config.h"
#include "metrics.h"

typedef struct pc_pipeline pc_pipeline;

/* Builds every component of |cfg|; receivers check requests with |auth| (NULL =
 * none). Both must outlive the pipeline. NULL on failure. */
pc_pipeline *pc_pipeline_create(const pc_config *cfg, pc_auth *auth);
/* Gives receivers the process memory budget |b| (budget.h; borrowed, it must
 * outlive the pipeline; NULL = unlimited). Call before pc_pipeline_start. */
void pc_pipeline_set_budget(pc_pipeline *p, pc_budget *b);
/* Gives components the self-metrics registry |m| (metrics.h; borrowed, it
 * must outlive the pipeline; NULL = metrics go nowhere). Call before
 * pc_pipeline_start. */
void pc_pipeline_set_metrics(pc_pipeline *p, pc_metrics *m);
/* Starts everything; on failure stops what was started and returns -1. */
int pc_pipeline_start(pc_pipeline *p);
/* Shuts everything down in reverse order. Idempotent. */
void pc_pipeline_shutdown(pc_pipeline *p);
/* Frees the graph. Accepts NULL. */
void pc_pipeline_destroy(pc_pipeline *p);

#endif
