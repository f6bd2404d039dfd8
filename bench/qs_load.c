/*
 * qs_load.c - the query-scale generator (issue 15): loads N spans of the
 * query-scale workload (qs_workload.h) into a running collector through its
 * OTLP/HTTP receiver, measures the load, and writes the facts the driver
 * (qs_query) needs: trace ids, the time range, services, search words.
 *
 *   qs_load --target HOST:PORT [--spans 200000] [--seed 1] [--connections 4]
 *           [--traces-per-request 10] [--base-ns NS] [--api-key KEY] [--info FILE]
 *           [--duration D]
 *
 * Data flow: qs_workload_request() builds request r (traces r*T .. r*T+T-1) →
 * POST /v1/traces (application/x-protobuf) → the collector's pipeline → its
 * store. Connections take request numbers from one counter, so every trace is
 * sent once whatever the connection count. A 429 or 503 is retried after
 * 50 ms (counted); any other failure is counted and the request is dropped.
 * Output: spans/s over the whole load (a body is built in the sending thread,
 * as an SDK would), request latency p50/p99/max, wire bytes per span, and a
 * last "result key=value ..." line for scripts. An instrument: it never fails
 * on the figures, only when it cannot run (exit 1) or requests failed (exit 3).
 * --duration stops taking new requests after D (10s, 500ms, 2m) even if spans
 * are left: ingest for a fixed time, e.g. beside qs_query (give it another seed,
 * so its traces are new ones).
 *
 * The info file ("key value" lines, read by qs_query): seed, spans, traces,
 * base_ns, days, service (the most frequent), common (word), rare (one line per
 * word), trace (10,000 ids spread evenly over the load,
 * so lookups do not all hit a few warm pages).
 */
#include "qs_workload.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct options {
    const char *target, *api_key, *info;
    uint64_t spans, seed;
    int64_t base_ns;
    int connections, per_request;
    double duration; /* seconds; 0 = until every span is sent */
} options;

typedef struct shared {
    const options *o;
    qs_workload w;
    uint64_t requests;
    double deadline; /* CLOCK_MONOTONIC seconds; 0 = none */
    atomic_uint_fast64_t next;
} shared;

typedef struct worker {
    shared *sh;
    pthread_t th;
    double *lat; /* ms per request, this worker's */
    size_t n_lat, cap_lat;
    uint64_t ok_spans, wire_bytes, retries, failed;
} worker;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p, (void)u;
    return s * n;
}

/* One connection: takes request numbers until none are left. */
static void *run(void *arg)
{
    worker *wk = arg;
    shared *sh = wk->sh;
    char url[256], key[300];
    snprintf(url, sizeof(url), "http://%s/v1/traces", sh->o->target);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    if (sh->o->api_key) {
        snprintf(key, sizeof(key), "X-API-Key: %s", sh->o->api_key);
        hdr = curl_slist_append(hdr, key);
    }
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    for (;;) {
        uint64_t r = atomic_fetch_add(&sh->next, 1);
        if (r >= sh->requests || (sh->deadline && now_s() >= sh->deadline)) break;
        size_t len;
        uint64_t first = r * (uint64_t)sh->o->per_request;
        uint8_t *body = qs_workload_request(&sh->w, first, sh->o->per_request, &len);
        uint64_t spans =
            (sh->w.traces - first < (uint64_t)sh->o->per_request ? sh->w.traces - first
                                                                 : (uint64_t)sh->o->per_request) *
            QS_SPANS_PER_TRACE;
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, (char *)body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        for (int attempt = 0;; attempt++) {
            double t0 = now_s();
            long code = 0;
            CURLcode rc = curl_easy_perform(h);
            if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
            if ((code == 429 || code == 503) && attempt < 200) {
                wk->retries++;
                usleep(50000);
                continue;
            }
            if (code == 200) {
                if (wk->n_lat == wk->cap_lat) {
                    wk->cap_lat = wk->cap_lat ? 2 * wk->cap_lat : 1024;
                    wk->lat = realloc(wk->lat, wk->cap_lat * sizeof(double));
                    if (!wk->lat) abort();
                }
                wk->lat[wk->n_lat++] = (now_s() - t0) * 1e3;
                wk->ok_spans += spans;
                wk->wire_bytes += len;
            } else {
                if (wk->failed++ < 5)
                    fprintf(stderr, "qs_load: request %llu: %s, HTTP %ld\n", (unsigned long long)r,
                            curl_easy_strerror(rc), code);
            }
            break;
        }
        free(body);
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Writes the facts qs_query reads (see the file comment). Returns 0 or -1. */
static int write_info(const options *o, const qs_workload *w)
{
    FILE *f = fopen(o->info, "w");
    if (!f) {
        perror(o->info);
        return -1;
    }
    int count[QS_SERVICES] = {0}, best = 0;
    for (uint64_t g = 0; g < w->traces && g < 100000; g++)
        count[qs_trace_service(w, g)]++;
    for (int i = 1; i < QS_SERVICES; i++)
        if (count[i] > count[best]) best = i;
    fprintf(f, "seed %llu\nspans %llu\ntraces %llu\nbase_ns %lld\ndays %d\n",
            (unsigned long long)w->seed, (unsigned long long)o->spans,
            (unsigned long long)w->traces, (long long)w->base_ns, QS_DAYS);
    fprintf(f, "service %s\ncommon %s\n", qs_service_name(best), qs_common_word());
    for (int k = 0; k < QS_RARE_WORDS; k++)
        fprintf(f, "rare %s\n", qs_rare_word(k));
    uint64_t n = w->traces < 10000 ? w->traces : 10000;
    char id[33];
    for (uint64_t i = 0; i < n; i++) {
        qs_trace_id_hex(w, i * w->traces / n, id);
        fprintf(f, "trace %s\n", id);
    }
    return fclose(f) ? -1 : 0;
}

static double seconds(const char *s) /* "10s", "500ms", "2m", "3" */
{
    char *end;
    double v = strtod(s, &end);
    if (!strcmp(end, "ms")) return v / 1e3;
    if (!strcmp(end, "m")) return v * 60;
    return v;
}

static void usage(void)
{
    fprintf(stderr, "usage: qs_load --target HOST:PORT [--spans N] [--seed S] [--connections C]\n"
                    "               [--traces-per-request T] [--base-ns NS] [--api-key KEY]"
                    " [--info FILE]\n               [--duration D]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    options o = {.spans = 200000, .seed = 1, .connections = 4, .per_request = 10};
    for (int i = 1; i < argc; i += 2) { /* flag, value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--target"))
            o.target = v;
        else if (!strcmp(a, "--spans"))
            o.spans = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--seed"))
            o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--connections"))
            o.connections = atoi(v);
        else if (!strcmp(a, "--traces-per-request"))
            o.per_request = atoi(v);
        else if (!strcmp(a, "--base-ns"))
            o.base_ns = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--api-key"))
            o.api_key = v;
        else if (!strcmp(a, "--info"))
            o.info = v;
        else if (!strcmp(a, "--duration"))
            o.duration = seconds(v);
        else
            usage();
    }
    if (!o.target || o.connections < 1 || o.per_request < 1) usage();
    shared sh = {.o = &o};
    if (qs_workload_init(&sh.w, o.seed, o.spans, o.base_ns)) return 1;
    sh.requests = (sh.w.traces + (uint64_t)o.per_request - 1) / (uint64_t)o.per_request;
    atomic_init(&sh.next, 0);
    if (o.info && write_info(&o, &sh.w)) return 1;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    worker *wk = calloc((size_t)o.connections, sizeof(*wk));
    if (!wk) abort();
    printf("qs_load: %llu spans (%llu traces, %llu requests of %d traces) to %s, %d connections,"
           " seed %llu\n",
           (unsigned long long)o.spans, (unsigned long long)sh.w.traces,
           (unsigned long long)sh.requests, o.per_request, o.target, o.connections,
           (unsigned long long)o.seed);
    fflush(stdout);
    double t0 = now_s();
    if (o.duration > 0) sh.deadline = t0 + o.duration;
    for (int i = 0; i < o.connections; i++) {
        wk[i].sh = &sh;
        pthread_create(&wk[i].th, NULL, run, &wk[i]);
    }
    uint64_t ok = 0, wire = 0, retries = 0, failed = 0;
    size_t n_lat = 0;
    for (int i = 0; i < o.connections; i++) {
        pthread_join(wk[i].th, NULL);
        ok += wk[i].ok_spans, wire += wk[i].wire_bytes, retries += wk[i].retries;
        failed += wk[i].failed, n_lat += wk[i].n_lat;
    }
    double secs = now_s() - t0;
    double *lat = malloc((n_lat ? n_lat : 1) * sizeof(double));
    if (!lat) abort();
    size_t at = 0;
    for (int i = 0; i < o.connections; i++) {
        memcpy(lat + at, wk[i].lat, wk[i].n_lat * sizeof(double));
        at += wk[i].n_lat;
        free(wk[i].lat);
    }
    qsort(lat, n_lat, sizeof(double), cmp_double);
    double p50 = n_lat ? lat[(n_lat + 1) / 2 - 1] : 0; /* nearest rank */
    double p99 = n_lat ? lat[(n_lat * 99 + 99) / 100 - 1] : 0;
    double mx = n_lat ? lat[n_lat - 1] : 0;
    printf("loaded %llu spans in %.1f s: %.0f spans/s; request p50 %.1f ms, p99 %.1f ms, max"
           " %.1f ms; %.0f wire bytes per span; %llu retried (429/503), %llu failed\n",
           (unsigned long long)ok, secs, ok / secs, p50, p99, mx,
           ok ? (double)wire / (double)ok : 0, (unsigned long long)retries,
           (unsigned long long)failed);
    printf("result spans=%llu seconds=%.2f spans_per_s=%.0f p50_ms=%.2f p99_ms=%.2f"
           " wire_bytes_per_span=%.0f retries=%llu failed=%llu\n",
           (unsigned long long)ok, secs, ok / secs, p50, p99, ok ? (double)wire / (double)ok : 0,
           (unsigned long long)retries, (unsigned long long)failed);
    free(lat);
    free(wk);
    curl_global_cleanup();
    return failed ? 3 : 0;
}
