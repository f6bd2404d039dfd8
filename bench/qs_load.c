/*
 * qs_load.c - the query-scale generator (issue 15): loads N spans of the
 * query-scale workload (qs_workload.h) into a running collector through its
 * OTLP/HTTP receiver, measures the load, and writes the facts the driver
 * (qs_query) needs: trace ids, the time range, services, search words.
 *
 *   qs_load --target HOST:PORT [--spans 200000] [--seed 1] [--connections 4]
 *           [--traces-per-request 10] [--base-ns NS] [--api-key KEY] [--info FILE]
 *           [--duration D] [--order random|arrival]
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
 * so its traces are new ones). --order (qs_workload.h): start times at random
 * over the 30 days (the default: a backfill) or rising with the trace number
 * (arrival: live traffic, where a store's time-ordered indexes append).
 *
 * The info file ("key value" lines, read by qs_query): seed, spans, traces,
 * base_ns, days, service (the most frequent), common (word), rare (one line per
 * word), trace (10,000 ids spread evenly over the load,
 * so lookups do not all hit a few warm pages).
 */
#include "lg_run.h"
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
    const char *target, *api_key, *info, *order;
    uint64_t spans, seed;
    int64_t base_ns;
    int connections, per_request;
    int64_t duration_ns; /* 0 = until every span is sent */
} options;

typedef struct shared {
    const options *o;
    qs_workload w;
    uint64_t requests;
    int64_t deadline; /* CLOCK_MONOTONIC ns; 0 = none */
    atomic_uint_fast64_t next;
} shared;

typedef struct worker {
    shared *sh;
    pthread_t th;
    lg_stats st; /* latency (ns) of every acknowledged request; only lat is used */
    uint64_t ok_spans, wire_bytes, retries, failed;
} worker;

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
        if (r >= sh->requests || (sh->deadline && lg_now_ns(CLOCK_MONOTONIC) >= sh->deadline))
            break;
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
            int64_t t0 = lg_now_ns(CLOCK_MONOTONIC);
            long code = 0;
            CURLcode rc = curl_easy_perform(h);
            if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
            if ((code == 429 || code == 503) && attempt < 200) {
                wk->retries++;
                usleep(50000);
                continue;
            }
            if (code == 200) {
                lg_stats_add_latency(&wk->st, lg_now_ns(CLOCK_MONOTONIC) - t0);
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

static void usage(FILE *f, int status)
{
    fprintf(f, "usage: qs_load --target HOST:PORT [--spans N] [--seed S] [--connections C]\n"
               "               [--traces-per-request T] [--base-ns NS] [--api-key KEY]"
               " [--info FILE]\n               [--duration D] [--order random|arrival]\n");
    exit(status);
}

int main(int argc, char **argv)
{
    options o = {.spans = 200000, .seed = 1, .connections = 4, .per_request = 10};
    const lg_flag flags[] = {
        {"--target", LG_STR, &o.target},
        {"--spans", LG_U64, &o.spans},
        {"--seed", LG_U64, &o.seed},
        {"--connections", LG_INT, &o.connections},
        {"--traces-per-request", LG_INT, &o.per_request},
        {"--base-ns", LG_I64, &o.base_ns},
        {"--api-key", LG_STR, &o.api_key},
        {"--info", LG_STR, &o.info},
        {"--duration", LG_DURATION, &o.duration_ns},
        {"--order", LG_STR, &o.order},
    };
    int pf = lg_parse_flags("qs_load", argc, argv, flags, sizeof(flags) / sizeof(flags[0]));
    if (pf) usage(pf > 0 ? stdout : stderr, pf > 0 ? 0 : 2);
    if (!o.target || o.connections < 1 || o.connections > 1024 || o.per_request < 1 ||
        o.per_request > 10000)
        usage(stderr, 2);
    qs_order order = QS_ORDER_RANDOM;
    if (o.order && qs_order_parse(o.order, &order)) usage(stderr, 2);
    shared sh = {.o = &o};
    if (qs_workload_init(&sh.w, o.seed, o.spans, o.base_ns, order)) return 1;
    sh.requests = (sh.w.traces + (uint64_t)o.per_request - 1) / (uint64_t)o.per_request;
    atomic_init(&sh.next, 0);
    if (o.info && write_info(&o, &sh.w)) return 1;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    worker *wk = calloc((size_t)o.connections, sizeof(*wk));
    if (!wk) abort();
    printf("qs_load: %llu spans (%llu traces, %llu requests of %d traces) to %s, %d connections,"
           " seed %llu, %s order\n",
           (unsigned long long)o.spans, (unsigned long long)sh.w.traces,
           (unsigned long long)sh.requests, o.per_request, o.target, o.connections,
           (unsigned long long)o.seed, o.order ? o.order : "random");
    fflush(stdout);
    int64_t t0 = lg_now_ns(CLOCK_MONOTONIC);
    if (o.duration_ns > 0) sh.deadline = t0 + o.duration_ns;
    for (int i = 0; i < o.connections; i++) {
        wk[i].sh = &sh;
        pthread_create(&wk[i].th, NULL, run, &wk[i]);
    }
    uint64_t ok = 0, wire = 0, retries = 0, failed = 0;
    lg_stats all = {0};
    for (int i = 0; i < o.connections; i++) {
        pthread_join(wk[i].th, NULL);
        ok += wk[i].ok_spans, wire += wk[i].wire_bytes, retries += wk[i].retries;
        failed += wk[i].failed;
        lg_stats_merge(&all, &wk[i].st);
        lg_stats_free(&wk[i].st);
    }
    double secs = (double)(lg_now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    lg_latency l = lg_stats_latency(&all);
    double p50 = l.p50_ms, p99 = l.p99_ms, mx = l.max_ms;
    printf("loaded %llu spans in %.1f s: %.0f spans/s; request p50 %.1f ms, p99 %.1f ms, max"
           " %.1f ms; %.0f wire bytes per span; %llu retried (429/503), %llu failed\n",
           (unsigned long long)ok, secs, ok / secs, p50, p99, mx,
           ok ? (double)wire / (double)ok : 0, (unsigned long long)retries,
           (unsigned long long)failed);
    printf("result spans=%llu seconds=%.2f spans_per_s=%.0f p50_ms=%.2f p99_ms=%.2f"
           " wire_bytes_per_span=%.0f retries=%llu failed=%llu\n",
           (unsigned long long)ok, secs, ok / secs, p50, p99, ok ? (double)wire / (double)ok : 0,
           (unsigned long long)retries, (unsigned long long)failed);
    lg_stats_free(&all);
    free(wk);
    curl_global_cleanup();
    return failed ? 3 : 0;
}
