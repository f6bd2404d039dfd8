/*
 * sync.c - monotonic condition variables, waits until an instant, and a
 * thread's lower priority and its name (see sync.h).
 */
#include "sync.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void pc_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

int pc_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ns)
{
    if (until_ns < 0) until_ns = 0;
    struct timespec ts = {.tv_sec = until_ns / 1000000000LL, .tv_nsec = until_ns % 1000000000LL};
    return pthread_cond_timedwait(cv, mu, &ts);
}

int pc_thread_lower_priority(int by)
{
    if (by <= 0) return 0;
    id_t tid = (id_t)gettid();
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, tid);
    if (cur == -1 && errno) return errno;
    int want = cur + by > 19 ? 19 : cur + by;
    if (want != cur && setpriority(PRIO_PROCESS, tid, want) != 0) return errno;
    return 0;
}

void pc_thread_name(const char *name)
{
    char buf[16];
    size_t n = strlen(name);
    if (n > sizeof(buf) - 1) n = sizeof(buf) - 1;
    memcpy(buf, name, n);
    buf[n] = '\0';
    pthread_setname_np(pthread_self(), buf);
}
