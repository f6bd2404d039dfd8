/*
 * test_config.c - configuration loading (src/core/config.c): defaults, env
 * substitution, and errors that name the key.
 */
#include "check.h"
#include "component.h"
#include "buf.h"
#include "config.h"

#include <stdlib.h>
#include <string.h>

static pc_config *load(const char *yaml, char *err, size_t errlen)
{
    return pc_config_load(yaml, strlen(yaml), "test.yaml", err, errlen);
}

static void test_default(void)
{
    char err[512] = "";
    pc_config *c = pc_config_load_default(err, sizeof(err));
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_EQ_INT(c->n_pipelines, 1);
    CHECK_EQ_INT(c->pipelines[0].receivers.n, 2);
    CHECK_EQ_STR(c->pipelines[0].exporters.v[0], "local");
    CHECK(pc_config_find(c, PC_RECEIVER, "query") != NULL);
    CHECK(pc_config_find(c, PC_EXPORTER, "local") != NULL);
    pc_config_free(c);
}

static const char *base_pipeline = "service:\n  pipelines:\n    traces:\n      receivers: [prela]\n"
                                   "      exporters: [local]\n";

static pc_config *load_with(const char *components, char *err, size_t errlen)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), "%s%s", components, base_pipeline);
    return load(yaml, err, errlen);
}

static void test_errors_name_the_key(void)
{
    char err[512];
    struct {
        const char *yaml;
        const char *expect;
    } cases[] = {
        {"receivers:\n  prela:\n    endpont: x\nexporters:\n  local:\n", "receivers.prela.endpont: unknown key"},
        {"receivers:\n  prela:\nexporters:\n  local:\n    retention: ninety\n",
         "exporters.local.retention: \"ninety\" is not a duration"},
        {"receivers:\n  prela:\n    max_request_body_size: 12\nexporters:\n  local:\n",
         "receivers.prela.max_request_body_size: 12 is out of range"},
        {"receivers:\n  nosuch:\nexporters:\n  local:\n", "receivers.nosuch: unknown receiver type 'nosuch'"},
        {"receivers:\n  prela:\n    endpoint: ${env:PC_TEST_UNSET_VAR}\nexporters:\n  local:\n",
         "receivers.prela.endpoint: environment variable PC_TEST_UNSET_VAR is not set"},
        {"receivers:\n  prela:\nexporters:\n  local:\nextensions:\n", "extensions: unknown key (known keys: receivers"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        pc_config *c = load_with(cases[i].yaml, err, sizeof(err));
        CHECK(c == NULL);
        if (!strstr(err, cases[i].expect))
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, cases[i].expect);
        CHECK(strstr(err, cases[i].expect) != NULL);
        pc_config_free(c);
    }
    CHECK(load("service:\n  pipelines:\n    traces:\n      receivers: [prela]\n"
               "      exporters: [local]\n", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "service.pipelines.traces.receivers: 'prela' is not configured") != NULL);
    CHECK(load("receivers: [\n", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "test.yaml:") != NULL);
}

static void test_env(void)
{
    char err[512] = "";
    setenv("PC_TEST_DIR", "/tmp/pc-test-dir", 1);
    unsetenv("PC_TEST_PORT");
    pc_config *c = load_with("receivers:\n  prela:\n    endpoint: 127.0.0.1:${env:PC_TEST_PORT:-9999}\n"
                             "exporters:\n  local:\n    directory: ${env:PC_TEST_DIR}\n",
                             err, sizeof(err));
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    /* The prela receiver's config struct starts with its endpoint string. */
    CHECK_EQ_STR(*(char **)pc_config_find(c, PC_RECEIVER, "prela")->cfg, "127.0.0.1:9999");
    pc_config_free(c);
}

/* service.telemetry.metrics: the default endpoint (PRELA_METRICS_ENDPOINT when set),
 * level none = off, bad values named. */
static void test_metrics_endpoint(void)
{
    const char *comps = "receivers:\n  prela:\nexporters:\n  local:\n    directory: /tmp/x\n";
    const char *pipe = "  pipelines:\n    traces:\n      receivers: [prela]\n      exporters: [local]\n";
    char yaml[1024], err[512] = "";
    unsetenv("PRELA_METRICS_ENDPOINT");
    pc_config *c = load_with(comps, err, sizeof(err));
    CHECK(c && c->metrics_endpoint && !strcmp(c->metrics_endpoint, "127.0.0.1:8888"));
    pc_config_free(c);
    setenv("PRELA_METRICS_ENDPOINT", "127.0.0.1:0", 1);
    c = load_with(comps, err, sizeof(err));
    CHECK(c && c->metrics_endpoint && !strcmp(c->metrics_endpoint, "127.0.0.1:0"));
    pc_config_free(c);
    unsetenv("PRELA_METRICS_ENDPOINT");
    snprintf(yaml, sizeof(yaml), "%sservice:\n  telemetry:\n    metrics:\n      level: none\n%s",
             comps, pipe);
    c = load(yaml, err, sizeof(err));
    CHECK(c && c->metrics_endpoint == NULL);
    pc_config_free(c);
    snprintf(yaml, sizeof(yaml),
             "%sservice:\n  telemetry:\n    metrics:\n      endpoint: 0.0.0.0:9090\n%s", comps,
             pipe);
    c = load(yaml, err, sizeof(err));
    CHECK(c && c->metrics_endpoint && !strcmp(c->metrics_endpoint, "0.0.0.0:9090"));
    pc_config_free(c);
    const char *bad[] = {"level: loud", "endpoint: nope", "addr: x"};
    const char *key[] = {"service.telemetry.metrics.level", "service.telemetry.metrics.endpoint",
                         "service.telemetry.metrics"};
    for (int i = 0; i < 3; i++) {
        snprintf(yaml, sizeof(yaml), "%sservice:\n  telemetry:\n    metrics:\n      %s\n%s",
                 comps, bad[i], pipe);
        err[0] = '\0';
        c = load(yaml, err, sizeof(err));
        CHECK(c == NULL);
        CHECK(strstr(err, key[i]) != NULL);
        pc_config_free(c);
    }
}

/* Pipelines are named by signal; every component in one must handle that signal. */
static void test_signals(void)
{
    char err[512];
    static const char *const comps = "receivers:\n  prela:\n  otlp:\n    protocols:\n      http:\n"
                                     "exporters:\n  local:\n  debug:\n";
    struct {
        const char *pipelines;
        const char *expect; /* NULL: loads */
    } cases[] = {
        {"    metrics:\n      receivers: [otlp]\n      exporters: [debug]\n"
         "    logs/x:\n      receivers: [otlp]\n      exporters: [debug]\n",
         NULL},
        {"    metrics:\n      receivers: [otlp]\n      exporters: [local]\n",
         "service.pipelines.metrics.exporters: 'local' does not handle metrics"},
        {"    logs:\n      receivers: [prela]\n      exporters: [debug]\n",
         "service.pipelines.logs.receivers: 'prela' does not handle logs"},
        {"    profiles:\n      receivers: [otlp]\n      exporters: [debug]\n",
         "service.pipelines.profiles: unknown signal"},
        {"    tracesx:\n      receivers: [otlp]\n      exporters: [debug]\n",
         "service.pipelines.tracesx: unknown signal"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[2048];
        snprintf(yaml, sizeof(yaml), "%sservice:\n  pipelines:\n    traces:\n      receivers: "
                 "[prela, otlp]\n      exporters: [local]\n%s", comps, cases[i].pipelines);
        err[0] = '\0';
        pc_config *c = load(yaml, err, sizeof(err));
        if (!cases[i].expect) {
            CHECK(c != NULL);
            if (c) {
                CHECK_EQ_INT(c->n_pipelines, 3);
                CHECK_EQ_INT(c->pipelines[1].signal, PC_SIGNAL_METRICS);
                CHECK_EQ_INT(c->pipelines[2].signal, PC_SIGNAL_LOGS);
            }
        } else {
            CHECK(c == NULL);
            if (!strstr(err, cases[i].expect))
                fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, cases[i].expect);
            CHECK(strstr(err, cases[i].expect) != NULL);
        }
        pc_config_free(c);
    }
}

static void test_parsers(void)
{
    int64_t v;
    CHECK_EQ_INT(pc_parse_duration_ms("250ms", &v), 0);
    CHECK_EQ_INT(v, 250);
    CHECK_EQ_INT(pc_parse_duration_ms("90d", &v), 0);
    CHECK_EQ_INT(v, 90LL * 86400000);
    CHECK_EQ_INT(pc_parse_duration_ms("1.5s", &v), 0);
    CHECK_EQ_INT(v, 1500);
    CHECK_EQ_INT(pc_parse_duration_ms("5 parsecs", &v), -1);
    CHECK_EQ_INT(pc_parse_size("20MiB", &v), 0);
    CHECK_EQ_INT(v, 20LL << 20);
    CHECK_EQ_INT(pc_parse_size("10MB", &v), 0);
    CHECK_EQ_INT(v, 10000000);
    CHECK_EQ_INT(pc_parse_size("lots", &v), -1);
    const char *bad[] = {"nan", "NaN", "inf", "-inf", "1e400", "-1", "nanms", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(pc_parse_duration_ms(bad[i], &v), -1);
        CHECK_EQ_INT(pc_parse_size(bad[i], &v), -1);
    }
    CHECK_EQ_INT(pc_parse_size("1 KiB", &v), 0);
    CHECK_EQ_INT(v, 1024);
}

/* The fuzz findings (tests/fuzz/corpus/fuzz_config): a clear error, no overflow. */
static void test_hostile_yaml(void)
{
    char err[512];
    struct {
        const char *yaml;
        const char *expect;
    } cases[] = {
        {"receivers:\n {}:", "receivers: keys must be plain text"},
        {"receivers:\n [a]: {}\n", "receivers: keys must be plain text"},
        {"exporters:\n  debug: {}\nservice:\n  pipelines: {{}: {}}\n",
         "service.pipelines: keys must be plain text"},
        {"receivers:\n  prela:\n    {a: 1}: x\n", "receivers.prela.: keys must be plain text"},
        {"service: {[x]: 1}\n", "service: keys must be plain text"},
        {"{[x]: 1}\n", "(top level): keys must be plain text"},
        {"receivers:\n  otlp: &a {protocols: *a}\n", "nested deeper than 32 levels"},
        {"exporters:\n  local: {directory: /tmp/x, retention: nan}\n",
         "exporters.local.retention: \"nan\" is not a duration"},
        {"exporters:\n  local: {directory: /tmp/x, retention: inf}\n",
         "exporters.local.retention: \"inf\" is not a duration"},
        {"receivers:\n  prela: {max_request_body_size: nan}\n",
         "receivers.prela.max_request_body_size: \"nan\" is not a size"},
        {"receivers:\n  prela: {max_request_body_size: 1e400}\n",
         "receivers.prela.max_request_body_size: \"1e400\" is not a size"},
        {"service:\n telemetry:\n  logs:\n   level:", "service.telemetry.logs.level: \"\" is not"},
        {"service:\n telemetry:\n  logs:\n   level: ''\n",
         "service.telemetry.logs.level: \"\" is not one of"},
        {"service:\n pipelines:\n  traces:\n   receivers: [&l]",
         "service.pipelines.traces.receivers: '' is not configured under receivers"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        pc_config *c = load(cases[i].yaml, err, sizeof(err));
        CHECK(c == NULL);
        if (!strstr(err, cases[i].expect))
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, cases[i].expect);
        CHECK(strstr(err, cases[i].expect) != NULL);
        pc_config_free(c);
    }
    /* an alias bomb: 10 levels of 10 references stops at the node budget */
    pc_buf y = PC_BUF_INIT;
    pc_buf_puts(&y, "receivers:\n  prela:\n    a0: &a0 {x: 1}\n");
    for (int l = 1; l < 10; l++) {
        pc_buf_printf(&y, "    a%d: &a%d {", l, l);
        for (int k = 0; k < 10; k++) pc_buf_printf(&y, "%sk%d: *a%d", k ? ", " : "", k, l - 1);
        pc_buf_puts(&y, "}\n");
    }
    err[0] = '\0';
    pc_config *c = load(y.data, err, sizeof(err));
    CHECK(c == NULL);
    CHECK(strstr(err, "more than 100000 values in one section") != NULL);
    pc_config_free(c);
    pc_buf_free(&y);
    /* an anchored empty list item is the empty string, terminated (the auth parser
     * reads it and names it) */
    c = load_with("auth:\n  keys:\n    - {name: a, key: 0123456789abcdef0, project: p, "
                  "scopes: [&k '', read]}\nreceivers:\n  prela:\nexporters:\n  local:\n",
                  err, sizeof(err));
    CHECK(c == NULL);
    CHECK(strstr(err, "auth.keys[0].scopes: \"\" is not one of ingest, read, admin") != NULL);
    pc_config_free(c);
}

int main(void)
{
    RUN(test_default);
    RUN(test_errors_name_the_key);
    RUN(test_env);
    RUN(test_metrics_endpoint);
    RUN(test_signals);
    RUN(test_parsers);
    RUN(test_hostile_yaml);
    return CHECK_DONE();
}
