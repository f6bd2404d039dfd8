/*
 * telemetry.h - the self-metrics listener: GET /metrics in the Prometheus text
 * format, on service.telemetry.metrics.endpoint (default 127.0.0.1:8888).
 *
 * Data flow: main creates the registry (metrics.h), hands it to the pipeline
 * (whose components count into it), and starts this listener once the
 * pipeline runs. A scrape renders the registry; this module also registers
 * the process-wide collectors: otelcol_process_* (CPU, RSS, uptime), the
 * memory budget (budget.h) and the zstd context cache (zstd_reuse.h).
 *
 * The listener is an ordinary HTTP server (http.h): the same connection
 * limits, and the route needs an API key with scope read (or admin) when keys
 * are configured; without keys it is open (it listens on loopback by default).
 */
#ifndef PC_TELEMETRY_H
#define PC_TELEMETRY_H

#include "auth.h"
#include "budget.h"
#include "metrics.h"

typedef struct pc_telemetry pc_telemetry;

/*
 * Starts serving |m| on |endpoint| ("host:port"), checking keys with |auth|
 * (NULL = none) and charging request memory to |budget| (NULL = unlimited).
 * |m|, |auth| and |budget| are borrowed and must outlive the listener. Returns
 * NULL after logging why (port in use, bad endpoint).
 */
pc_telemetry *pc_telemetry_start(const char *endpoint, pc_metrics *m, pc_auth *auth,
                                 pc_budget *budget);
/* The port actually bound (useful with port 0). */
int pc_telemetry_port(const pc_telemetry *t);
/* Stops the listener and removes its collectors from the registry. Accepts NULL. */
void pc_telemetry_stop(pc_telemetry *t);

#endif
