/*
 * qs_query.c - the query-scale driver (issue 15): runs the query mix against a
 * collector's query API (the query receiver, :8002) over the store qs_load
 * filled, with 1 and then 8 concurrent clients, and prints client-side latency
 * per endpoint: p50, p99, max, requests, errors and timeouts.
 *
 *   qs_query --target HOST:PORT --info FILE [--clients "1 8"] [--duration 10s]
 *            [--timeout 10s] [--api-key KEY] [--label NAME] [--tsv FILE]
 *            [--only PREFIX] [--project ID]
 *
 * Data flow measured: GET on the query API → the query store (SQLite or
 * ClickHouse) → the JSON answer, read whole. The facts it needs (trace ids,
 * the time range, a service, the search words) come from qs_load's info file.
 * For each endpoint in turn and each client count, that many threads, one
 * keep-alive connection each, send requests back to back for --duration; a
 * request is timed from send to the last byte. 200 is a success; any other
 * status is an error; no answer within --timeout is a timeout (the connection
 * is then dropped, as a client would). p50/p99/max are over the successes.
 * Each request draws its trace id, hour or rare word from a per-thread seeded
 * generator, so runs repeat. An instrument: it prints figures, and exits 0
 * unless it cannot run.
 *
 * --only runs the endpoints whose name starts with PREFIX (e.g. "stats").
 * --project adds project_id=ID to every request: one tenant's reads, which the
 * stores may answer another way than reads of every project.
 * --tsv appends one line per (endpoint, clients): label, endpoint, clients,
 * requests, p50_ms, p99_ms, max_ms, errors, timeouts (scripts/bench-query-scale.sh
 * puts both stores side by side from it).
 */
#include "lg_run.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------- the facts -- */

typedef struct info {
    char **traces;
    size_t n_traces;
    char *rare[16];
    int n_rare;
    char service[480], common[480];
    long long base_ns;
    int days;
} info;

static int read_info(const char *path, info *in)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[512], v[480];
    size_t cap = 0;
    memset(in, 0, sizeof(*in));
    in->days = 30;
    while (fgets(line, sizeof(line), f)) {
        char k[32];
        if (sscanf(line, "%31s %479s", k, v) != 2) continue;
        if (!strcmp(k, "trace")) {
            if (in->n_traces == cap) {
                cap = cap ? 2 * cap : 1024;
                in->traces = realloc(in->traces, cap * sizeof(char *));
                if (!in->traces) abort();
            }
            in->traces[in->n_traces++] = strdup(v);
        } else if (!strcmp(k, "rare") && in->n_rare < 16) {
            in->rare[in->n_rare++] = strdup(v);
        } else if (!strcmp(k, "service")) {
            snprintf(in->service, sizeof(in->service), "%s", v);
        } else if (!strcmp(k, "common")) {
            snprintf(in->common, sizeof(in->common), "%s", v);
        } else if (!strcmp(k, "base_ns")) {
            in->base_ns = atoll(v);
        } else if (!strcmp(k, "days")) {
            in->days = atoi(v);
        }
    }
    fclose(f);
    if (!in->n_traces || !in->n_rare || !in->base_ns || !in->service[0] || !in->common[0]) {
        fprintf(stderr, "qs_query: %s lacks trace, rare, base_ns, service or common lines\n", path);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ the mix -- */

enum {
    E_TRACE, E_SPANS, E_LIST, E_SVC_ERR, E_HOUR, E_LLM, E_OFFSET, E_COMMON, E_RARE,
    E_USER, E_MODEL, E_ATTR, E_SESSIONS, E_SESSIONS_USER, E_STATS_DAY, E_STATS_MONTH,
};

static const char *const endpoint_name[] = {
    "trace by id",         "spans of a trace",
    "list, no filter",     "list, service + status=error",
    "list, 1-hour window", "list, span_type=llm",
    "list, offset=10000",  "search, common word",
    "search, rare word",
    "list, user_id",
    "list, model",
    "list, attr.gen_ai.agent.name",
    "sessions, newest",
    "sessions, user_id",
    "stats, 1 day by model (1h)",
    "stats, 30 days by service (1d)",
};
#define N_ENDPOINTS (sizeof(endpoint_name) / sizeof(endpoint_name[0]))

static uint64_t rnd(uint64_t *s) /* splitmix64 */
{
    uint64_t x = (*s += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void iso(char *out, size_t n, long long sec)
{
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Writes the URL of one request to endpoint |e| into |url|. */
static void make_url(char *url, size_t n, const char *base, int e, const info *in, uint64_t *s)
{
    const char *id = in->traces[rnd(s) % in->n_traces];
    switch (e) {
    case E_TRACE:
        snprintf(url, n, "%s/api/v1/traces/%s", base, id);
        break;
    case E_SPANS:
        snprintf(url, n, "%s/api/v1/traces/%s/spans", base, id);
        break;
    case E_LIST:
        snprintf(url, n, "%s/api/v1/traces", base);
        break;
    case E_SVC_ERR:
        snprintf(url, n, "%s/api/v1/traces?service_name=%s&status=error", base, in->service);
        break;
    case E_HOUR: {
        long long newest = in->base_ns / 1000000000LL, hours = (long long)in->days * 24;
        long long from = newest - (long long)(1 + rnd(s) % (uint64_t)hours) * 3600;
        char a[32], b[32];
        iso(a, sizeof(a), from);
        iso(b, sizeof(b), from + 3600);
        snprintf(url, n, "%s/api/v1/traces?start_time=%s&end_time=%s", base, a, b);
        break;
    }
    case E_LLM:
        snprintf(url, n, "%s/api/v1/traces?span_type=llm", base);
        break;
    case E_OFFSET:
        snprintf(url, n, "%s/api/v1/traces?offset=10000", base);
        break;
    case E_COMMON:
        snprintf(url, n, "%s/api/v1/search?query=%s", base, in->common);
        break;
    case E_RARE:
        snprintf(url, n, "%s/api/v1/search?query=%s", base, in->rare[rnd(s) % in->n_rare]);
        break;
    case E_USER: /* the workload's users are user-0 .. user-4999 */
        snprintf(url, n, "%s/api/v1/traces?user_id=user-%llu", base,
                 (unsigned long long)(rnd(s) % 5000));
        break;
    case E_MODEL:
        snprintf(url, n, "%s/api/v1/traces?model=gpt-4o-mini", base);
        break;
    case E_ATTR:
        snprintf(url, n, "%s/api/v1/traces?attr.gen_ai.agent.name=%s", base, in->service);
        break;
    case E_SESSIONS:
        snprintf(url, n, "%s/api/v1/sessions", base);
        break;
    case E_SESSIONS_USER:
        snprintf(url, n, "%s/api/v1/sessions?user_id=user-%llu", base,
                 (unsigned long long)(rnd(s) % 5000));
        break;
    case E_STATS_DAY:
    case E_STATS_MONTH: {
        long long newest = in->base_ns / 1000000000LL + 1;
        long long days = e == E_STATS_DAY ? 1 : in->days;
        char a[32], b[32];
        iso(a, sizeof(a), newest - days * 86400);
        iso(b, sizeof(b), newest);
        snprintf(url, n, "%s/api/v1/stats?group_by=%s&interval=%s&start_time=%s&end_time=%s", base,
                 e == E_STATS_DAY ? "model" : "service", e == E_STATS_DAY ? "1h" : "1d", a, b);
        break;
    }
    }
}

/* ------------------------------------------------------------ a window -- */

typedef struct options {
    const char *target, *info, *api_key, *label, *tsv;
    const char *only; /* run the endpoints whose name starts with it (NULL: all) */
    const char *project; /* project_id of every request (NULL: none) */
    int clients[8], n_clients;
    int64_t duration_ns, timeout_ns;
} options;

typedef struct client {
    const options *o;
    const info *in;
    int endpoint;
    int64_t deadline; /* CLOCK_MONOTONIC ns */
    uint64_t seed;
    pthread_t th;
    lg_stats st; /* latency (ns) of every success; only lat is used */
    long errors, timeouts;
    char last_error[1200];
} client;

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p, (void)u;
    return s * n;
}

static void *client_run(void *arg)
{
    client *c = arg;
    char base[300], url[1024], key[300];
    snprintf(base, sizeof(base), "http://%s", c->o->target);
    struct curl_slist *hdr = NULL;
    if (c->o->api_key) {
        snprintf(key, sizeof(key), "X-API-Key: %s", c->o->api_key);
        hdr = curl_slist_append(NULL, key);
    }
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->o->timeout_ns / 1000000));
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    while (lg_now_ns(CLOCK_MONOTONIC) < c->deadline) {
        make_url(url, sizeof(url), base, c->endpoint, c->in, &c->seed);
        if (c->o->project) {
            size_t len = strlen(url);
            snprintf(url + len, sizeof(url) - len, "%sproject_id=%s", strchr(url, '?') ? "&" : "?",
                     c->o->project);
        }
        curl_easy_setopt(h, CURLOPT_URL, url);
        int64_t t0 = lg_now_ns(CLOCK_MONOTONIC);
        long code = 0;
        CURLcode rc = curl_easy_perform(h);
        int64_t ns = lg_now_ns(CLOCK_MONOTONIC) - t0;
        if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            c->timeouts++;
        } else if (code != 200) {
            c->errors++;
            snprintf(c->last_error, sizeof(c->last_error), "%s: %s, HTTP %ld", url,
                     curl_easy_strerror(rc), code);
        } else {
            lg_stats_add_latency(&c->st, ns);
        }
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    return NULL;
}

typedef struct figures {
    size_t n;
    double p50, p99, max;
    long errors, timeouts;
} figures;

/* Runs endpoint |e| with |k| clients for the window and returns its figures. */
static figures window(const options *o, const info *in, int e, int k)
{
    client *c = calloc((size_t)k, sizeof(*c));
    if (!c) abort();
    int64_t deadline = lg_now_ns(CLOCK_MONOTONIC) + o->duration_ns;
    for (int i = 0; i < k; i++) {
        c[i] = (client){.o = o,
                        .in = in,
                        .endpoint = e,
                        .deadline = deadline,
                        .seed = (uint64_t)(e * 1000 + k * 10 + i)};
        pthread_create(&c[i].th, NULL, client_run, &c[i]);
    }
    figures f = {0};
    lg_stats all = {0};
    for (int i = 0; i < k; i++) {
        pthread_join(c[i].th, NULL);
        f.errors += c[i].errors, f.timeouts += c[i].timeouts;
        if (c[i].errors)
            fprintf(stderr, "qs_query: %s (%ld errors)\n", c[i].last_error, c[i].errors);
        lg_stats_merge(&all, &c[i].st);
        lg_stats_free(&c[i].st);
    }
    f.n = all.n_lat;
    lg_latency l = lg_stats_latency(&all); /* nearest rank: under 100 samples p99 is the max */
    f.p50 = l.p50_ms, f.p99 = l.p99_ms, f.max = l.max_ms;
    lg_stats_free(&all);
    free(c);
    return f;
}

/* ------------------------------------------------------------ main -- */

static bool selected(const options *o, size_t e)
{
    return !o->only || strncmp(endpoint_name[e], o->only, strlen(o->only)) == 0;
}

static void usage(FILE *f, int status)
{
    fprintf(f, "usage: qs_query --target HOST:PORT --info FILE [--clients \"1 8\"]"
               " [--duration 10s]\n                [--timeout 10s] [--api-key KEY]"
               " [--label NAME] [--tsv FILE]\n                [--only PREFIX] [--project ID]\n");
    exit(status);
}

int main(int argc, char **argv)
{
    options o = {.clients = {1, 8},
                 .n_clients = 2,
                 .duration_ns = 10000000000LL,
                 .timeout_ns = 10000000000LL,
                 .label = "store"};
    const char *clients = NULL;
    const lg_flag flags[] = {
        {"--target", LG_STR, &o.target},
        {"--info", LG_STR, &o.info},
        {"--duration", LG_DURATION, &o.duration_ns},
        {"--timeout", LG_DURATION, &o.timeout_ns},
        {"--api-key", LG_STR, &o.api_key},
        {"--label", LG_STR, &o.label},
        {"--tsv", LG_STR, &o.tsv},
        {"--clients", LG_STR, &clients},
        {"--only", LG_STR, &o.only},
        {"--project", LG_STR, &o.project},
    };
    int pf = lg_parse_flags("qs_query", argc, argv, flags, sizeof(flags) / sizeof(flags[0]));
    if (pf) usage(pf > 0 ? stdout : stderr, pf > 0 ? 0 : 2);
    if (clients) { /* "1 8" or "1,8": up to 8 counts of 1..256 */
        o.n_clients = 0;
        for (const char *p = clients; *p;) {
            char *end;
            long k = strtol(p, &end, 10);
            if (end == p || k < 1 || k > 256 || o.n_clients == 8) usage(stderr, 2);
            o.clients[o.n_clients++] = (int)k;
            for (p = end; *p == ' ' || *p == ','; p++) {
            }
        }
    }
    if (!o.target || !o.info || !o.n_clients || o.duration_ns <= 0 || o.timeout_ns < 1000000)
        usage(stderr, 2);
    info in;
    if (read_info(o.info, &in)) return 1;
    FILE *tsv = o.tsv ? fopen(o.tsv, "a") : NULL;
    if (o.tsv && !tsv) {
        perror(o.tsv);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    printf("qs_query: %s at %s, %zu trace ids, %g s per endpoint and client count,"
           " timeout %g s\n",
           o.label, o.target, in.n_traces, (double)o.duration_ns / 1e9, (double)o.timeout_ns / 1e9);
    printf("%-30s %7s %9s %9s %9s %9s %7s %8s\n", "endpoint", "clients", "requests", "p50 ms",
           "p99 ms", "max ms", "errors", "timeouts");
    figures fig[N_ENDPOINTS][8];
    for (size_t e = 0; e < N_ENDPOINTS; e++) {
        if (!selected(&o, e)) continue;
        for (int j = 0; j < o.n_clients; j++) {
            figures f = fig[e][j] = window(&o, &in, (int)e, o.clients[j]);
            printf("%-30s %7d %9zu %9.1f %9.1f %9.1f %7ld %8ld\n", endpoint_name[e], o.clients[j],
                   f.n, f.p50, f.p99, f.max, f.errors, f.timeouts);
            fflush(stdout);
            if (tsv)
                fprintf(tsv, "%s\t%s\t%d\t%zu\t%.2f\t%.2f\t%.2f\t%ld\t%ld\n", o.label,
                        endpoint_name[e], o.clients[j], f.n, f.p50, f.p99, f.max, f.errors,
                        f.timeouts);
        }
    }
    /* the form: p99 per client count, "failed" when nothing succeeded */
    printf("\n| endpoint | %s p99 ms, ", o.label);
    for (int j = 0; j < o.n_clients; j++)
        printf("%s%d", j ? " / " : "", o.clients[j]);
    printf(" clients |\n|---|---|\n");
    for (size_t e = 0; e < N_ENDPOINTS; e++) {
        if (!selected(&o, e)) continue;
        printf("| %s | ", endpoint_name[e]);
        for (int j = 0; j < o.n_clients; j++) {
            const figures *f = &fig[e][j];
            if (j) printf(" / ");
            if (!f->n)
                printf("all failed");
            else
                printf("%.1f", f->p99);
            if (f->n && (f->errors || f->timeouts))
                printf(" (%ld failed)", f->errors + f->timeouts);
        }
        printf(" |\n");
    }
    if (tsv) fclose(tsv);
    curl_global_cleanup();
    for (size_t i = 0; i < in.n_traces; i++)
        free(in.traces[i]);
    free(in.traces);
    for (int i = 0; i < in.n_rare; i++)
        free(in.rare[i]);
    return 0;
}
