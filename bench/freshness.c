/*
 * freshness.c - measures end-to-end freshness: the time from the collector's
 * answer to an ingest request until the query API shows the whole trace. An
 * instrument, not a test: it prints figures and never passes or fails on them.
 *
 *   freshness --ingest HOST:PORT --query HOST:PORT [--format otlp|prela]
 *             [--traces 200] [--interval 20ms] [--poll 2ms] [--timeout 30s]
 *
 * Data flow measured: POST one trace (the reference workload's 10-span trace,
 * workload.h; OTLP/HTTP protobuf to /v1/traces or Prela JSON to /v1/batch) →
 * whatever pipeline the target runs (standalone store, or gateway → Kafka →
 * storage collector → ClickHouse) → GET /api/v1/traces/{id} on the query
 * receiver, polled every --poll until it answers 200 with span_count 10.
 * Freshness = the time of that answer minus the time the ingest answer
 * arrived (CLOCK_MONOTONIC). Probes run one after another, --interval apart;
 * for freshness under load run loadgen beside it (scripts/bench-pipeline.sh).
 * A probe whose ingest was refused (not 200) is counted and not timed; one
 * not visible within --timeout is counted as lost.
 *
 * The last output line ("result ...", key=value) is for scripts.
 */
#include "workload.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct options {
    const char *ingest, *query;
    int prela;        /* 0 = OTLP/HTTP protobuf, 1 = Prela JSON */
    int traces;       /* probes */
    int64_t interval; /* ns between probes */
    int64_t poll;     /* ns between query polls */
    int64_t timeout;  /* ns a probe may take to become visible */
    const char *api_key; /* sent as X-API-Key on both requests; NULL = none */
} options;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    if (ns <= 0) return;
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    nanosleep(&ts, NULL);
}

/* "20ms", "2s", "1m" or "3" (seconds) → ns; -1 when malformed. */
static int64_t parse_duration(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    double mul = !strcmp(end, "ms") ? 1e6 : !strcmp(end, "m") ? 60e9 : 1e9;
    if (*end && strcmp(end, "ms") && strcmp(end, "m") && strcmp(end, "s")) return -1;
    return (int64_t)(v * mul);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: freshness --ingest HOST:PORT --query HOST:PORT [--format otlp|prela]\n"
               "                 [--traces 200] [--interval 20ms] [--poll 2ms] [--timeout 30s]\n"
               "                 [--api-key KEY]\n");
}

static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){NULL, NULL, 0, 200, 20000000, 2000000, 30000000000LL, NULL};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "freshness: %s needs a value\n", k);
            return -1;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(k, "--ingest"))
            o->ingest = v;
        else if (!strcmp(k, "--query"))
            o->query = v;
        else if (!strcmp(k, "--format"))
            bad = strcmp(v, "otlp") && strcmp(v, "prela"), o->prela = !strcmp(v, "prela");
        else if (!strcmp(k, "--traces"))
            bad = (o->traces = atoi(v)) <= 0;
        else if (!strcmp(k, "--interval"))
            bad = (o->interval = parse_duration(v)) < 0;
        else if (!strcmp(k, "--poll"))
            bad = (o->poll = parse_duration(v)) <= 0;
        else if (!strcmp(k, "--timeout"))
            bad = (o->timeout = parse_duration(v)) <= 0;
        else if (!strcmp(k, "--api-key"))
            bad = !*(o->api_key = v) || strpbrk(v, "\r\n") != NULL;
        else {
            fprintf(stderr, "freshness: unknown option %s\n", k);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "freshness: bad value for %s: \"%s\"\n", k, v);
            return -1;
        }
    }
    if (!o->ingest || !o->query) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* A response body, kept only as far as the probe needs it. */
typedef struct body {
    char text[4096];
    size_t len;
} body;

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t len = size * n, room = sizeof(b->text) - 1 - b->len;
    memcpy(b->text + b->len, p, len < room ? len : room);
    b->len += len < room ? len : room;
    b->text[b->len] = 0;
    return size * n;
}

/* Performs |h| and returns the HTTP status, or 0 on a transport failure. */
static long perform(CURL *h, body *b)
{
    b->len = 0;
    b->text[0] = 0;
    long code = 0;
    if (curl_easy_perform(h) != CURLE_OK) return 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
    if (!n) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o)) return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    lg_workload w;
    uint32_t nonce = (uint32_t)(now_ns() ^ ((int64_t)getpid() << 16));
    if (lg_workload_build(&w, o.prela ? LG_BODY_PRELA : LG_BODY_OTLP, LG_SPANS_PER_TRACE, nonce))
        return 1;
    uint8_t *data = malloc(w.len);
    int64_t *fresh = calloc((size_t)o.traces, sizeof(*fresh));
    if (!data || !fresh) return 1;

    char url[512], qurl[640];
    snprintf(url, sizeof(url), "http://%s%s", o.ingest, o.prela ? "/v1/batch" : "/v1/traces");
    struct curl_slist *hdr = curl_slist_append(
        NULL, o.prela ? "Content-Type: application/json" : "Content-Type: application/x-protobuf");
    struct curl_slist *key_hdr = NULL;
    char key_line[320];
    if (o.api_key) {
        snprintf(key_line, sizeof(key_line), "X-API-Key: %.290s", o.api_key);
        hdr = curl_slist_append(hdr, key_line);
        key_hdr = curl_slist_append(NULL, key_line);
    }
    body resp;
    CURL *post = curl_easy_init(), *get = curl_easy_init();
    if (key_hdr) curl_easy_setopt(get, CURLOPT_HTTPHEADER, key_hdr);
    curl_easy_setopt(post, CURLOPT_URL, url);
    curl_easy_setopt(post, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(post, CURLOPT_POSTFIELDS, (char *)data);
    curl_easy_setopt(post, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)w.len);
    CURL *const handles[] = {post, get};
    for (int i = 0; i < 2; i++) {
        CURL *h = handles[i];
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    }

    printf("freshness: %d probes of one %d-span trace (%s, %zu B) to %s, polling %s every "
           "%.1f ms\n",
           o.traces, LG_SPANS_PER_TRACE, o.prela ? "Prela JSON" : "OTLP/HTTP protobuf", w.len,
           url, o.query, (double)o.poll / 1e6);
    size_t n = 0;
    int refused = 0, lost = 0;
    for (int i = 0; i < o.traces; i++) {
        memcpy(data, w.data, w.len);
        lg_workload_patch(&w, data, (uint64_t)i + 1);
        char id[48];
        lg_workload_first_trace_id(&w, (uint64_t)i + 1, id);
        long code = perform(post, &resp);
        int64_t acked = now_ns();
        if (code != 200) {
            refused++;
            fprintf(stderr, "freshness: probe %d: ingest answered %ld %.200s\n", i, code,
                    resp.text);
            sleep_ns(o.interval);
            continue;
        }
        snprintf(qurl, sizeof(qurl), "http://%s/api/v1/traces/%s", o.query, id);
        curl_easy_setopt(get, CURLOPT_URL, qurl);
        int64_t seen = 0;
        while (!seen && now_ns() - acked < o.timeout) {
            if (perform(get, &resp) == 200 && strstr(resp.text, "\"span_count\":10"))
                seen = now_ns();
            else
                sleep_ns(o.poll);
        }
        if (seen)
            fresh[n++] = seen - acked;
        else {
            lost++;
            fprintf(stderr, "freshness: probe %d: trace %s not visible after %.1f s\n", i, id,
                    (double)o.timeout / 1e9);
        }
        sleep_ns(o.interval);
    }

    qsort(fresh, n, sizeof(*fresh), cmp_i64);
    printf("visible %zu of %d (ingest refused %d, not visible in time %d)\n", n, o.traces, refused,
           lost);
    printf("freshness ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", pct_ms(fresh, n, 50),
           pct_ms(fresh, n, 90), pct_ms(fresh, n, 99), n ? (double)fresh[n - 1] / 1e6 : 0.0);
    printf("result probes=%d visible=%zu refused=%d lost=%d p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f "
           "max_ms=%.1f\n",
           o.traces, n, refused, lost, pct_ms(fresh, n, 50), pct_ms(fresh, n, 90),
           pct_ms(fresh, n, 99), n ? (double)fresh[n - 1] / 1e6 : 0.0);

    curl_easy_cleanup(post);
    curl_easy_cleanup(get);
    curl_slist_free_all(hdr);
    curl_slist_free_all(key_hdr);
    curl_global_cleanup();
    lg_workload_free(&w);
    free(data);
    free(fresh);
    return 0;
}
