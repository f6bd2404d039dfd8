/*
 * telemetry.c - the /metrics listener and the process-wide collectors (see
 * telemetry.h).
 *
 * Process metrics use the OpenTelemetry Collector's names as its Prometheus
 * endpoint shows them today (unit suffixes included):
 * otelcol_process_cpu_seconds_total, otelcol_process_memory_rss_bytes,
 * otelcol_process_uptime_seconds_total; plus the start time as
 * prela_process_start_time_seconds. They are read at scrape time
 * (getrusage, /proc/self/statm), so they cost nothing between scrapes.
 * The zstd context cache's counters (zstd_reuse.h) are process-wide too and
 * are registered here with them.
 */
#include "telemetry.h"
#include "http.h"
#include "mem.h"
#include "timefmt.h"
#include "zstd_reuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

struct pc_telemetry {
    pc_metrics *m;
    pc_budget *budget;
    pc_http_server *srv;
    int64_t start_ns;
};

static void collect_process(void *ctx, pc_metrics_out *out)
{
    pc_telemetry *t = ctx;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
        pc_metrics_out_add(out, PC_METRIC_COUNTER, "otelcol_process_cpu_seconds",
                           "Total CPU user and system time in seconds.", NULL, cpu);
    }
    FILE *f = fopen("/proc/self/statm", "r");
    long pages_total = 0, pages_rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages_total, &pages_rss) == 2)
            pc_metrics_out_add(out, PC_METRIC_GAUGE, "otelcol_process_memory_rss_bytes",
                               "Total physical memory (resident set size) in bytes.", NULL,
                               (double)pages_rss * (double)sysconf(_SC_PAGESIZE));
        fclose(f);
    }
    int64_t now = pc_time_now_ns();
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "otelcol_process_uptime_seconds",
                       "Uptime of the process in seconds.", NULL, (double)(now - t->start_ns) / 1e9);
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_process_start_time_seconds",
                       "Start time of the process since the Unix epoch in seconds.", NULL,
                       (double)(t->start_ns / 1000000000));
}

static void collect_budget(void *ctx, pc_metrics_out *out)
{
    pc_telemetry *t = ctx;
    if (!t->budget) return;
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_memory_budget_used_bytes",
                       "Bytes of request memory reserved in the memory budget now.", NULL,
                       (double)pc_budget_used(t->budget));
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_memory_budget_limit_bytes",
                       "The memory budget's limit in bytes (service.memory_limit).", NULL,
                       (double)pc_budget_limit(t->budget));
    pc_metrics_out_add(out, PC_METRIC_GAUGE, "prela_memory_budget_peak_bytes",
                       "The most bytes ever reserved in the memory budget at once.", NULL,
                       (double)pc_budget_peak(t->budget));
    pc_metrics_out_add(out, PC_METRIC_COUNTER, "prela_memory_budget_refused",
                       "Reservations the memory budget refused (answered 429).", NULL,
                       (double)pc_budget_refused(t->budget));
}

static void handle_metrics(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    pc_telemetry *t = ctx;
    (void)req;
    resp->status = 200;
    resp->content_type = PC_METRICS_CONTENT_TYPE;
    pc_metrics_render(t->m, &resp->body);
}

static const pc_http_route routes[] = {
    {"GET", "/metrics", 0, handle_metrics, PC_SCOPE_READ},
};

pc_telemetry *pc_telemetry_start(const char *endpoint, pc_metrics *m, pc_auth *auth,
                                 pc_budget *budget)
{
    pc_telemetry *t = pc_xcalloc(1, sizeof(*t));
    t->m = m;
    t->budget = budget;
    t->start_ns = pc_time_now_ns();
    pc_metrics_add_collector(m, collect_process, t);
    pc_metrics_add_collector(m, collect_budget, t);
    pc_metrics_add_collector(m, pc_zstd_reuse_collect, NULL);
    /* Why these limits: a scraper is one client that polls; a handful of
     * connections is plenty, and a GET has no body. */
    pc_http_config hc = {.name = "telemetry",
                         .endpoint = endpoint,
                         .max_body = 4096,
                         .max_connections = 16,
                         .max_connections_per_address = 8,
                         .auth = auth,
                         .budget = budget,
                         .metrics = m};
    if (!(t->srv = pc_http_start(&hc, routes, sizeof(routes) / sizeof(routes[0]), t))) {
        pc_telemetry_stop(t);
        return NULL;
    }
    return t;
}

int pc_telemetry_port(const pc_telemetry *t)
{
    return pc_http_port(t->srv);
}

void pc_telemetry_stop(pc_telemetry *t)
{
    if (!t) return;
    pc_http_stop(t->srv);
    pc_metrics_remove_collector(t->m, collect_process, t);
    pc_metrics_remove_collector(t->m, collect_budget, t);
    pc_metrics_remove_collector(t->m, pc_zstd_reuse_collect, NULL);
    free(t);
}
