/*
 * loadgen.c - the collector's load generator: drives one workload against a
 * running collector and prints what it measured. It is an instrument, not a
 * test: it never passes or fails on the figures.
 *
 *   loadgen --target HOST:PORT --format otlp|otlp-grpc|prela [--connections 16]
 *           [--streams 1] [--duration 10s] [--warmup 2s] [--spans-per-request 100]
 *           [--rate REQ_PER_S] [--pid PID] [--tls-ca CA_FILE] [--api-key KEY]
 *   loadgen --format otlp|otlp-grpc|prela [--spans-per-request 100] --dump FILE
 *
 * The workload is design.md's reference workload (workload.h). A mode (the
 * table below) pairs a body format with a transport: otlp = OTLP/HTTP protobuf
 * POST /v1/traces; otlp-grpc = the same ExportTraceServiceRequest as a unary
 * OTLP/gRPC call to TraceService/Export (lg_grpc.c); prela = Prela SDK JSON
 * POST /v1/batch ({"spans": [...]}, so a request holds the same 100 spans as
 * an OTLP one; /v1/traces would take one trace per request).
 *
 * Measuring: one thread per connection, each with one call in flight (gRPC:
 * --streams calls per connection), sent as soon as the previous one was
 * answered, or with --rate on a fixed schedule (request n at start + n/rate;
 * latency is then still measured from the actual send). Calls that complete in the window
 * [start+warmup, start+warmup+duration] count for rates, latency and errors.
 * With --pid: the collector's VmRSS before the first request (idle), its
 * utime+stime (/proc/PID/stat) at both window edges, VmRSS at both edges and
 * VmHWM at the end. --tls-ca: every connection is TLS (HTTPS; gRPC with ALPN
 * h2), the server verified against CA_FILE and the --target host, so the same
 * workload measures the collector with and without TLS. The last output line
 * ("result ...", key=value) is for
 * scripts (scripts/bench.sh).
 *
 * Files: loadgen.c (options, driver, /proc probes, report), lg_run.h (what the
 * driver shares with transports), lg_http.c and lg_grpc.c (transports),
 * lg_tls.c (TLS under both), workload.c (bodies).
 */
#include "lg_run.h"
#include "workload.h"

#include "mem.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ modes -- */

/*
 * What --format selects. To add one: a body format in workload.h if it is
 * new, a transport (an lg_transport in a file of its own, declared in
 * lg_run.h) if it is new, and a row here.
 */
typedef struct mode {
    const char *name;     /* --format value, and format= in the result line */
    const char *describe; /* for the banner */
    int body;             /* LG_BODY_* */
    const lg_transport *tr;
    const char *path;
    const char *content_type;
} mode;

static const mode modes[] = {
    {"otlp", "OTLP/HTTP protobuf", LG_BODY_OTLP, &lg_http, "/v1/traces", "application/x-protobuf"},
    {"otlp-grpc", "OTLP/gRPC", LG_BODY_OTLP, &lg_grpc,
     "/opentelemetry.proto.collector.trace.v1.TraceService/Export", "application/grpc"},
    {"prela", "Prela JSON /v1/batch", LG_BODY_PRELA, &lg_http, "/v1/batch", "application/json"},
};
#define N_MODES (sizeof(modes) / sizeof(modes[0]))

/* ---------------------------------------------------------------- options -- */

typedef struct options {
    char host[256];
    char port[16];
    const mode *mode;
    int connections;
    int streams; /* calls in flight per connection; > 1 only with gRPC */
    int64_t duration_ns;
    int64_t warmup_ns;
    int spans_per_request;
    double rate; /* requests per second over all connections; 0 = as fast as answered */
    int pid;          /* 0 = no collector figures */
    const char *dump; /* write one body to this file and exit */
    const char *tls_ca; /* TLS, verified against this CA bundle; NULL = plaintext */
    const char *api_key; /* sent with every request; NULL = none */
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --target HOST:PORT --format otlp|otlp-grpc|prela\n"
               "               [--connections 16] [--streams 1] [--duration 10s] [--warmup 2s]\n"
               "               [--spans-per-request 100] [--rate REQ_PER_S] [--pid PID]\n"
               "               [--tls-ca CA_FILE] [--api-key KEY]\n"
               "       loadgen --format otlp|otlp-grpc|prela [--spans-per-request 100]"
               " --dump FILE\n"
               "Durations take ms, s or m suffixes (plain numbers are seconds).\n"
               "--streams: concurrent calls per connection (otlp-grpc only).\n"
               "--tls-ca: connect with TLS (HTTPS, or gRPC with ALPN h2), trusting CA_FILE.\n"
               "--api-key: send KEY as X-API-Key (gRPC: x-api-key metadata) with every call.\n"
               "--dump writes one request body to FILE and exits (otlp-grpc: with its\n"
               "5-byte gRPC prefix).\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof(*o));
    o->connections = 16;
    o->streams = 1;
    o->duration_ns = 10000000000LL;
    o->warmup_ns = 2000000000LL;
    o->spans_per_request = 100;
    int have_target = 0;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "loadgen: %s needs a value\n", k);
            return -1;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(k, "--target")) {
            const char *colon = strrchr(v, ':');
            size_t hl = colon ? (size_t)(colon - v) : 0;
            bad = !colon || !hl || hl >= sizeof(o->host) || strlen(colon + 1) >= sizeof(o->port) ||
                  !colon[1];
            if (!bad) {
                memcpy(o->host, v, hl);
                o->host[hl] = 0;
                strcpy(o->port, colon + 1);
                have_target = 1;
            }
        } else if (!strcmp(k, "--format")) {
            o->mode = NULL;
            for (size_t m = 0; m < N_MODES; m++)
                if (!strcmp(v, modes[m].name)) o->mode = &modes[m];
            bad = !o->mode;
        } else if (!strcmp(k, "--connections")) {
            bad = parse_int(v, 1, 1024, &o->connections);
        } else if (!strcmp(k, "--streams")) {
            bad = parse_int(v, 1, 1000, &o->streams);
        } else if (!strcmp(k, "--duration")) {
            bad = lg_parse_duration(v, &o->duration_ns) || o->duration_ns <= 0;
        } else if (!strcmp(k, "--warmup")) {
            bad = lg_parse_duration(v, &o->warmup_ns);
        } else if (!strcmp(k, "--rate")) {
            char *end;
            o->rate = strtod(v, &end);
            bad = end == v || *end || !(o->rate > 0 && o->rate <= 1e6);
        } else if (!strcmp(k, "--spans-per-request")) {
            bad = parse_int(v, 10, 10000, &o->spans_per_request) || o->spans_per_request % 10;
        } else if (!strcmp(k, "--dump")) {
            o->dump = v;
        } else if (!strcmp(k, "--tls-ca")) {
            o->tls_ca = v;
        } else if (!strcmp(k, "--api-key")) {
            o->api_key = v;
        } else if (!strcmp(k, "--pid")) {
            bad = parse_int(v, 1, 1 << 30, &o->pid);
        } else {
            fprintf(stderr, "loadgen: unknown option %s\n", k);
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "loadgen: bad value for %s: \"%s\"%s\n", k, v,
                    !strcmp(k, "--spans-per-request") ? " (a multiple of 10, 10..10000)" : "");
            return -1;
        }
    }
    if ((!have_target && !o->dump) || !o->mode) {
        usage(stderr);
        return -1;
    }
    if (o->streams > 1 && o->mode->tr != &lg_grpc) {
        fprintf(stderr, "loadgen: --streams needs --format otlp-grpc (HTTP/1.1 has one request "
                        "in flight per connection)\n");
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------------- /proc probes -- */

/* utime+stime of |pid| in seconds (and utime alone in |*user|), or -1. */
static double proc_cpu_s(int pid, double *user)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    *user = (double)ut / (double)sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Key:   123 kB" line of /proc/PID/status, in kB, or -1. */
static long proc_status_kb(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Busy and total jiffies of the whole machine (/proc/stat). */
static void machine_cpu(unsigned long long *busy, unsigned long long *total)
{
    unsigned long long v[8] = {0};
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++)
            *total += v[i];
        *busy = *total - v[3] - v[4]; /* minus idle and iowait */
    }
    fclose(f);
}

typedef struct snapshot {
    double collector_cpu, collector_user, self_cpu;
    unsigned long long busy, total;
} snapshot;

static void snap(const options *o, snapshot *s)
{
    s->collector_cpu = o->pid ? proc_cpu_s(o->pid, &s->collector_user) : -1;
    s->self_cpu = (double)lg_now_ns(CLOCK_PROCESS_CPUTIME_ID) / 1e9;
    machine_cpu(&s->busy, &s->total);
}

static void sleep_until(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000LL), (long)(t % 1000000000LL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* ------------------------------------------------------------------ report -- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
    if (!n) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

/* What the driver read from /proc around the window. */
typedef struct probes {
    snapshot s0, s1;                        /* window start and end */
    long idle_rss, rss0, rss, hwm, threads; /* kB (threads: count); -1 = unknown */
} probes;

/* Prints the human-readable figures and the "result" line. |st| is sorted. */
static void report(const options *o, const lg_workload *body, size_t header_len, const lg_stats *st,
                   const probes *pr)
{
    const lg_transport *tr = o->mode->tr;
    const int64_t *lat = st->lat;
    size_t n_lat = st->n_lat;
    double secs = (double)o->duration_ns / 1e9;
    double rps = (double)st->ok / secs, sps = rps * o->spans_per_request;
    uint64_t errs = st->io, refused = 0;
    for (int k = 0; k < LG_MAX_CODE; k++) {
        errs += st->codes[k];
        if (lg_is_retry(tr, k)) refused += st->codes[k];
    }
    char okname[48];
    tr->code_name(tr->ok_code, okname, sizeof(okname));

    printf("\n");
    printf("  requests/s (%s)%*s%.1f\n", okname, (int)(13 - strlen(okname)), "", rps);
    printf("  spans/s                   %.0f\n", sps);
    printf("  request bytes/s           %.1f MB/s (%zu bytes per request%s, %.0f per span)\n",
           rps * (double)(body->len + header_len) / 1e6, body->len + header_len,
           tr == &lg_grpc ? " without HTTP/2 framing" : "",
           (double)body->len / o->spans_per_request);
    printf("  latency ms                p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (%zu calls)\n",
           pct_ms(lat, n_lat, 0.50), pct_ms(lat, n_lat, 0.90), pct_ms(lat, n_lat, 0.99),
           n_lat ? (double)lat[n_lat - 1] / 1e6 : 0.0, n_lat);
    printf("  errors                    ");
    if (!errs) printf("none");
    if (st->io) printf("connection/protocol failures: %llu  ", (unsigned long long)st->io);
    for (int k = 0; k < LG_MAX_CODE; k++)
        if (st->codes[k]) {
            char name[64];
            tr->code_name(k, name, sizeof(name));
            printf("%s: %llu  ", name, (unsigned long long)st->codes[k]);
        }
    if (refused) printf("(refused, to retry: %llu)", (unsigned long long)refused);
    printf("\n");

    double cpu = -1;
    const snapshot *s0 = &pr->s0, *s1 = &pr->s1;
    if (o->pid && s0->collector_cpu >= 0 && s1->collector_cpu >= 0) {
        cpu = s1->collector_cpu - s0->collector_cpu;
        double user = s1->collector_user - s0->collector_user;
        printf("  collector CPU             %.2f s in %.1f s (%.0f%% of one core; user %.2f s, "
               "system %.2f s)\n",
               cpu, secs, 100 * cpu / secs, user, cpu - user);
        printf("  spans per CPU-second      %.0f  (collector; %.2f CPU-s per million spans)\n",
               cpu > 0 ? sps * secs / cpu : 0.0, st->ok ? cpu * 1e6 / (sps * secs) : 0.0);
        printf("  collector RSS             idle %.1f MB (before loading), %.1f MB at window "
               "start, %.1f MB at end, peak %.1f MB (VmHWM), %ld threads\n",
               (double)pr->idle_rss / 1024, (double)pr->rss0 / 1024, (double)pr->rss / 1024,
               (double)pr->hwm / 1024, pr->threads);
    } else if (o->pid) {
        printf("  collector                 pid %d not readable in /proc\n", o->pid);
    }
    double self = s1->self_cpu - s0->self_cpu;
    printf("  loadgen CPU               %.2f s (%.0f%% of one core)\n", self, 100 * self / secs);
    if (s1->total > s0->total) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        double busy = (double)(s1->busy - s0->busy) / (double)(s1->total - s0->total);
        double others = busy * (double)cores - ((cpu > 0 ? cpu : 0) + self) / secs;
        printf("  machine CPU busy          %.0f%% of %ld cores (other processes: %.2f cores)\n",
               100 * busy, cores, others > 0 ? others : 0.0);
    }
    char tid[48] = "";
    if (st->last_ok_req) lg_workload_first_trace_id(body, st->last_ok_req, tid);
    unsigned long long spr = (unsigned long long)o->spans_per_request;
    printf("  whole run                 %llu requests sent (%llu spans), %llu acknowledged "
           "(%llu spans)\n",
           (unsigned long long)st->sent_all, (unsigned long long)st->sent_all * spr,
           (unsigned long long)st->ok_all, (unsigned long long)st->ok_all * spr);
    printf("result format=%s transport=%s tls=%d connections=%d streams=%d rps=%.1f "
           "spans_per_s=%.0f "
           "collector_cpu_s=%.3f spans_per_cpu_s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
           "max_ms=%.3f errors=%llu refused=%llu idle_rss_kb=%ld rss0_kb=%ld rss_kb=%ld "
           "hwm_kb=%ld loadgen_cpu_s=%.3f body_bytes=%zu sent_spans=%llu acked_spans=%llu "
           "last_trace_id=%s\n",
           o->mode->name, tr->name, o->tls_ca != NULL, o->connections, o->streams, rps, sps, cpu,
           cpu > 0 ? sps * secs / cpu : 0.0, pct_ms(lat, n_lat, 0.50), pct_ms(lat, n_lat, 0.90),
           pct_ms(lat, n_lat, 0.99), n_lat ? (double)lat[n_lat - 1] / 1e6 : 0.0,
           (unsigned long long)errs, (unsigned long long)refused, pr->idle_rss, pr->rss0, pr->rss,
           pr->hwm, self, body->len, (unsigned long long)st->sent_all * spr,
           (unsigned long long)st->ok_all * spr, *tid ? tid : "-");
}

/* ------------------------------------------------------------------- main -- */

/* Writes one body (request number 1) to o->dump, gRPC-framed for gRPC modes. */
static int dump_body(const options *o, const lg_workload *body)
{
    uint8_t *copy = pc_xmalloc(body->len);
    memcpy(copy, body->data, body->len);
    lg_workload_patch(body, copy, 1);
    uint8_t prefix[5] = {0, (uint8_t)(body->len >> 24), (uint8_t)(body->len >> 16),
                         (uint8_t)(body->len >> 8), (uint8_t)body->len};
    int grpc = o->mode->tr == &lg_grpc;
    FILE *f = fopen(o->dump, "wb");
    int bad =
        !f || (grpc && fwrite(prefix, 1, 5, f) != 5) || fwrite(copy, 1, body->len, f) != body->len;
    if (f && fclose(f)) bad = 1;
    free(copy);
    if (bad) {
        fprintf(stderr, "loadgen: cannot write %s: %s\n", o->dump, strerror(errno));
        return -1;
    }
    printf("loadgen: wrote %zu bytes (%d spans%s) to %s\n", body->len + (grpc ? 5 : 0),
           o->spans_per_request, grpc ? ", gRPC-framed" : "", o->dump);
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o)) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN); /* a peer that closes shows up as a write error instead */

    uint32_t nonce =
        (uint32_t)(lg_now_ns(CLOCK_REALTIME) / 1000) ^ ((uint32_t)getpid() * 2654435761u);
    lg_workload body;
    if (lg_workload_build(&body, o.mode->body, o.spans_per_request, nonce)) return 1;
    if (o.dump) {
        int rc = dump_body(&o, &body);
        lg_workload_free(&body);
        return rc ? 1 : 0;
    }

    struct addrinfo hints = {0}, *addr;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(o.host, o.port, &hints, &addr);
    if (rc) {
        fprintf(stderr, "loadgen: %s:%s: %s\n", o.host, o.port, gai_strerror(rc));
        return 1;
    }
    lg_run run = {.host = o.host,
                  .port = o.port,
                  .addr = addr,
                  .path = o.mode->path,
                  .content_type = o.mode->content_type,
                  .body = &body,
                  .streams = o.streams,
                  .api_key = o.api_key};
    atomic_init(&run.next_req, 1);
    if (o.tls_ca && lg_tls_init(&run, o.tls_ca)) return 1;
    int probe = lg_connect(&run, 0);
    if (probe < 0) {
        fprintf(stderr, "loadgen: cannot connect to %s:%s: %s\n", o.host, o.port, strerror(errno));
        return 1;
    }
    close(probe);

    /* The HTTP/1.1 header as lg_http.c writes it, for the byte rate; gRPC's
     * HPACK-compressed headers are a few bytes after the first call. */
    pc_buf head = PC_BUF_INIT;
    lg_http_header(&head, &run);
    size_t header_len = o.mode->tr == &lg_http ? head.len : 5;
    pc_buf_free(&head);
    printf("loadgen: %s (%s%s) to %s:%s%s, %d connections", o.mode->name, o.mode->describe,
           o.tls_ca ? " over TLS" : "", o.host, o.port, run.path, o.connections);
    if (o.mode->tr == &lg_grpc) printf(" x %d streams", o.streams);
    printf(", %d spans/request (%d traces x 10), body %zu bytes + %zu %s\n", o.spans_per_request,
           o.spans_per_request / LG_SPANS_PER_TRACE, body.len, header_len,
           o.mode->tr == &lg_grpc ? "prefix" : "header");
    printf("loadgen: warmup %.1f s, window %.1f s%s\n", (double)o.warmup_ns / 1e9,
           (double)o.duration_ns / 1e9, o.pid ? "" : " (no --pid: no collector figures)");

    probes pr = {.idle_rss = o.pid ? proc_status_kb(o.pid, "VmRSS") : -1};
    int64_t t_start = lg_now_ns(CLOCK_MONOTONIC);
    run.t_start = t_start;
    run.interval_ns = o.rate > 0 ? (int64_t)(1e9 / o.rate) : 0;
    run.win_start = t_start + o.warmup_ns;
    run.win_end = run.win_start + o.duration_ns;
    lg_worker *ws = pc_xcalloc((size_t)o.connections, sizeof(*ws));
    for (int i = 0; i < o.connections; i++) {
        ws[i].index = i;
        ws[i].run = &run;
        ws[i].tr = o.mode->tr;
        if (pthread_create(&ws[i].th, NULL, o.mode->tr->worker, &ws[i])) {
            fprintf(stderr, "loadgen: pthread_create failed\n");
            return 1;
        }
    }
    sleep_until(run.win_start);
    snap(&o, &pr.s0);
    pr.rss0 = o.pid ? proc_status_kb(o.pid, "VmRSS") : -1;
    sleep_until(run.win_end);
    snap(&o, &pr.s1);
    pr.rss = o.pid ? proc_status_kb(o.pid, "VmRSS") : -1;
    pr.hwm = o.pid ? proc_status_kb(o.pid, "VmHWM") : -1;
    pr.threads = o.pid ? proc_status_kb(o.pid, "Threads") : -1;

    lg_stats all = {0};
    for (int i = 0; i < o.connections; i++) {
        pthread_join(ws[i].th, NULL);
        lg_stats_merge(&all, &ws[i].st);
        lg_stats_free(&ws[i].st);
    }
    qsort(all.lat, all.n_lat, sizeof(*all.lat), cmp_i64);
    report(&o, &body, header_len, &all, &pr);

    lg_stats_free(&all);
    free(ws);
    lg_workload_free(&body);
    lg_tls_cleanup(&run);
    freeaddrinfo(addr);
    return 0;
}
