/*
 * lg_run.c - the helpers every loadgen transport uses (lg_run.h): request
 * numbers, connecting, and recording outcomes into a worker's lg_stats.
 */
#include "lg_run.h"

#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
    if (lat < 0) return;
    if (s->n_lat == s->cap_lat) {
        s->cap_lat = s->cap_lat ? s->cap_lat * 2 : 4096;
        s->lat = pc_xrealloc(s->lat, s->cap_lat * sizeof(*s->lat));
    }
    s->lat[s->n_lat++] = lat;
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
