/*
 * main.c - prela-collector's entry point: arguments, config, run until signalled.
 *
 *   prela-collector                       standalone defaults (configs/standalone.yaml)
 *   prela-collector --config FILE         run the pipelines of FILE
 *   prela-collector --validate [--config FILE]   check the config, print a summary, exit
 *
 * SIGTERM and SIGINT are blocked in every thread and taken by sigwait() here, so
 * shutdown runs on the main thread in pipeline order: receivers stop accepting,
 * in-flight requests finish, exporters flush; then the process exits 0.
 * SIGHUP re-reads auth.keys_file (auth.h) and every normalize processor's
 * prices file (prices.h) without a restart; a file that fails to load leaves
 * what was in force, and the error is logged with its line and column.
 *
 * Self-metrics (metrics.h): one registry for the process; the /metrics
 * listener (telemetry.h) starts once the pipeline runs and stops first.
 */
#include "auth.h"
#include "budget.h"
#include "component.h"
#include "config.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "pipeline.h"
#include "processors/prices.h"
#include "telemetry.h"
#include "zstd_reuse.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: prela-collector [--config FILE] [--validate] [--version] [--help]\n"
               "\n"
               "Collects AI-agent traces (Prela JSON on :8001, OTLP/HTTP on :4318), normalizes\n"
               "them and stores them; serves the query API on :8002. Without --config it runs\n"
               "standalone on an embedded store in ./prela-data.\n"
               "\n"
               "  --config FILE   YAML configuration (OpenTelemetry Collector shape)\n"
               "  --validate      check the configuration and exit (0 = valid)\n"
               "  --version       print the version and exit\n"
               "  --help          this text and every component's settings\n");
}

static void print_component(const pc_component_ops *ops, void *ud)
{
    static const char *const kinds[] = {"receiver", "processor", "exporter"};
    static const char *const types[] = {"string", "int", "bool", "duration", "size", "list", "section"};
    (void)ud;
    printf("\n%s %s\n", kinds[ops->kind], ops->type);
    for (const pc_option *o = ops->options; o && o->key; o++)
        printf("  %-34s %-8s %-14s %s\n", o->key, types[o->type], o->def ? o->def : "-",
               o->doc ? o->doc : "");
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int validate = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config_path = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9)) config_path = argv[i] + 9;
        else if (!strcmp(argv[i], "--validate")) validate = 1;
        else if (!strcmp(argv[i], "--version")) {
            printf("prela-collector %s\n", PC_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            printf("\nComponents and their settings (key, type, default, meaning):\n");
            pc_registry_each(print_component, NULL);
            return 0;
        } else {
            fprintf(stderr, "prela-collector: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    char err[1024] = "";
    pc_config *cfg = config_path ? pc_config_load_file(config_path, err, sizeof(err))
                                 : pc_config_load_default(err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "prela-collector: invalid configuration: %s\n", err);
        return 1;
    }
    pc_auth *auth = pc_auth_create(&cfg->auth, err, sizeof(err));
    if (!auth) {
        fprintf(stderr, "prela-collector: invalid configuration: %s\n", err);
        pc_config_free(cfg);
        return 1;
    }
    if (validate) {
        printf("%s: valid (%zu components, %zu pipelines%s)\n", cfg->source, cfg->n_components,
               cfg->n_pipelines, pc_auth_enabled(auth) ? ", API keys required" : "");
        pc_auth_destroy(auth);
        pc_config_free(cfg);
        return 0;
    }
    pc_log_set_level(cfg->log_level);
    pc_mem_tune(); /* the malloc thresholds and arenas (mem.c says why) */
    /* librdkafka's zstd workspaces (3.6 MiB, above the fixed mmap threshold)
     * would be mapped per produce batch: zstd_reuse.h keeps them instead. */
    pc_zstd_reuse_enable();

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    pc_log(PC_LOG_INFO, NULL, "prela-collector %s starting (config: %s)", PC_VERSION,
           cfg->source);
    int64_t limit = pc_budget_effective_limit(cfg->memory_limit, cfg->memory_limit_percentage,
                                              "/sys/fs/cgroup/memory.max");
    pc_budget *budget = pc_budget_create(limit);
    pc_log(PC_LOG_INFO, NULL, "memory budget for requests: %lld MiB%s", (long long)(limit >> 20),
           limit < cfg->memory_limit ? " (from the cgroup limit)" : "");
    pc_metrics *metrics = pc_metrics_create();
    pc_pipeline *p = pc_pipeline_create(cfg, auth);
    if (p) pc_pipeline_set_budget(p, budget), pc_pipeline_set_metrics(p, metrics);
    pc_telemetry *tel = NULL;
    if (!p || pc_pipeline_start(p) ||
        (cfg->metrics_endpoint &&
         !(tel = pc_telemetry_start(cfg->metrics_endpoint, metrics, auth, budget)))) {
        pc_pipeline_destroy(p);
        pc_metrics_destroy(metrics);
        pc_budget_destroy(budget);
        pc_auth_destroy(auth);
        pc_config_free(cfg);
        pc_log(PC_LOG_ERROR, NULL, "startup failed");
        return 1;
    }
    if (!pc_auth_enabled(auth))
        pc_log(PC_LOG_INFO, NULL,
               "no API keys configured: every request is accepted. To expose the collector "
               "beyond this machine, add an auth: section (README, Security) and bind to "
               "0.0.0.0 (PRELA_*_ENDPOINT)");
    pc_log(PC_LOG_INFO, NULL, "ready");
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
        pc_log(PC_LOG_INFO, NULL, "SIGHUP received: reloading API keys and price files");
        pc_auth_reload(auth);
        pc_prices_reload_all();
    }
    pc_log(PC_LOG_INFO, NULL, "%s received: draining and shutting down",
           sig == SIGTERM ? "SIGTERM" : "SIGINT");
    pc_telemetry_stop(tel);
    pc_pipeline_shutdown(p);
    pc_pipeline_destroy(p);
    pc_metrics_destroy(metrics);
    if (pc_budget_refused(budget))
        pc_log(PC_LOG_INFO, NULL, "memory budget: peak %lld bytes, %lld reservations refused",
               (long long)pc_budget_peak(budget), (long long)pc_budget_refused(budget));
    pc_budget_destroy(budget);
    pc_auth_destroy(auth);
    pc_config_free(cfg);
    pc_log(PC_LOG_INFO, NULL, "stopped");
    return 0;
}
