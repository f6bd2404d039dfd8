/*
 * lg_run.c - the helpers every loadgen transport uses (lg_run.h): request
 * numbers, connecting, and recording outcomes into a worker's lg_stats; and the
 * latency percentiles and flag table that the query-scale tools (qs_load,
 * qs_query) share with it.
 */
#include "lg_run.h"

#include "mem.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int lg_is_retry(const lg_transport *tr, int code)
{
    for (size_t i = 0; i < sizeof(tr->retry) / sizeof(tr->retry[0]) && tr->retry[i] >= 0; i++)
        if (tr->retry[i] == code) return 1;
    return 0;
}

int64_t lg_now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

uint64_t lg_next_request(lg_worker *w, uint8_t *body)
{
    uint64_t req = atomic_fetch_add(&w->run->next_req, 1);
    if (w->run->interval_ns) {
        int64_t due = w->run->t_start + (int64_t)(req - 1) * w->run->interval_ns;
        struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
    lg_workload_patch(w->run->body, body, req);
    return req;
}

int lg_connect(const lg_run *run, int nonblocking)
{
    const struct addrinfo *ai = run->addr;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!nonblocking) {
        struct timeval tv = {30, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        (nonblocking && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

void lg_record(lg_worker *w, int code, int64_t done, int64_t lat, uint64_t req)
{
    lg_stats *s = &w->st;
    int ok = code == w->tr->ok_code;
    if (ok) {
        s->ok_all++;
        if (req > s->last_ok_req) s->last_ok_req = req;
    }
    if (done < w->run->win_start || done > w->run->win_end) return;
    if (ok)
        s->ok++;
    else if (code < 0 || code >= LG_MAX_CODE)
        s->io++;
    else
        s->codes[code]++;
    if (lat >= 0) lg_stats_add_latency(s, lat);
}

void lg_stats_add_latency(lg_stats *s, int64_t ns)
{
    if (s->n_lat == s->cap_lat) {
        s->cap_lat = s->cap_lat ? s->cap_lat * 2 : 4096;
        s->lat = pc_xrealloc(s->lat, s->cap_lat * sizeof(*s->lat));
    }
    s->lat[s->n_lat++] = ns;
}

void lg_stats_merge(lg_stats *to, const lg_stats *from)
{
    if (to->n_lat + from->n_lat > to->cap_lat) {
        to->cap_lat = to->n_lat + from->n_lat;
        to->lat = pc_xrealloc(to->lat, (to->cap_lat ? to->cap_lat : 1) * sizeof(*to->lat));
    }
    if (from->n_lat) memcpy(to->lat + to->n_lat, from->lat, from->n_lat * sizeof(*to->lat));
    to->n_lat += from->n_lat;
    to->ok += from->ok;
    to->io += from->io;
    for (int k = 0; k < LG_MAX_CODE; k++)
        to->codes[k] += from->codes[k];
    to->sent_all += from->sent_all;
    to->ok_all += from->ok_all;
    if (from->last_ok_req > to->last_ok_req) to->last_ok_req = from->last_ok_req;
}

void lg_stats_free(lg_stats *s)
{
    free(s->lat);
    s->lat = NULL;
    s->n_lat = s->cap_lat = 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

lg_latency lg_stats_latency(lg_stats *s)
{
    lg_latency l = {0, 0, 0};
    size_t n = s->n_lat;
    if (!n) return l;
    qsort(s->lat, n, sizeof(*s->lat), cmp_i64);
    l.p50_ms = (double)s->lat[(n + 1) / 2 - 1] / 1e6;
    l.p99_ms = (double)s->lat[(n * 99 + 99) / 100 - 1] / 1e6;
    l.max_ms = (double)s->lat[n - 1] / 1e6;
    return l;
}

int lg_parse_duration(const char *s, int64_t *ns)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || v > 1e6) return -1;
    double mul = 1e9;
    if (!strcmp(end, "ms"))
        mul = 1e6;
    else if (!strcmp(end, "m"))
        mul = 60e9;
    else if (*end && strcmp(end, "s"))
        return -1;
    *ns = (int64_t)(v * mul);
    return 0;
}

/* Stores |v| into |f|'s destination. Returns 0 or -1 (not of its kind). */
static int store_flag(const lg_flag *f, const char *v)
{
    char *end;
    errno = 0;
    switch (f->kind) {
    case LG_STR:
        *(const char **)f->dst = v;
        return 0;
    case LG_U64: {
        if (*v == '-') return -1;
        unsigned long long x = strtoull(v, &end, 10);
        if (end == v || *end || errno) return -1;
        *(uint64_t *)f->dst = (uint64_t)x;
        return 0;
    }
    case LG_I64: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno) return -1;
        *(int64_t *)f->dst = (int64_t)x;
        return 0;
    }
    case LG_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < INT_MIN || x > INT_MAX) return -1;
        *(int *)f->dst = (int)x;
        return 0;
    }
    case LG_DURATION:
        return lg_parse_duration(v, (int64_t *)f->dst);
    }
    return -1;
}

int lg_parse_flags(const char *prog, int argc, char **argv, const lg_flag *flags, size_t n)
{
    for (int i = 1; i < argc; i += 2) { /* flag, value */
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) return 1;
        const lg_flag *f = NULL;
        for (size_t j = 0; j < n && !f; j++)
            if (!strcmp(k, flags[j].name)) f = &flags[j];
        if (!f) {
            fprintf(stderr, "%s: unknown option %s\n", prog, k);
            return -1;
        }
        if (!v) {
            fprintf(stderr, "%s: %s needs a value\n", prog, k);
            return -1;
        }
        if (store_flag(f, v)) {
            fprintf(stderr, "%s: bad value for %s: \"%s\"\n", prog, k, v);
            return -1;
        }
    }
    return 0;
}
