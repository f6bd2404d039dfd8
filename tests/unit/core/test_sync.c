/*
 * test_sync.c - sync.h: a wait until a monotonic instant ends at it (not
 * before, and not a wall-clock offset later), a signal ends it early, a
 * thread's priority is lowered for that thread alone, capped at 19, and a
 * thread's name is set for it alone, cut to Linux's 15 bytes.
 */
#include "check.h"
#include "sync.h"
#include "timefmt.h"

#include <errno.h>
#include <string.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

static void test_wait_until_an_instant(void)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    pc_cond_init_mono(&cv);
    pthread_mutex_lock(&mu);
    int64_t t0 = pc_time_mono_ns(), until = t0 + 50 * 1000000LL;
    int rc = 0;
    while (rc != ETIMEDOUT)
        rc = pc_cond_wait_until(&cv, &mu, until);
    int64_t t1 = pc_time_mono_ns();
    CHECK(t1 >= until);
    CHECK(t1 - t0 < 2000 * 1000000LL); /* a monotonic instant, not a wall-clock one */
    CHECK_EQ_INT(pc_cond_wait_until(&cv, &mu, t1 - 1000000000LL), ETIMEDOUT); /* past */
    CHECK_EQ_INT(pc_cond_wait_until(&cv, &mu, -1), ETIMEDOUT);
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
}

typedef struct waker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} waker;

static void *wake(void *arg)
{
    waker *w = arg;
    usleep(20000);
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void test_signal_ends_the_wait(void)
{
    waker w = {.mu = PTHREAD_MUTEX_INITIALIZER};
    pc_cond_init_mono(&w.cv);
    pthread_t th;
    int64_t t0 = pc_time_mono_ns();
    pthread_mutex_lock(&w.mu);
    CHECK_EQ_INT(pthread_create(&th, NULL, wake, &w), 0);
    while (!w.done)
        if (pc_cond_wait_until(&w.cv, &w.mu, t0 + 10 * 1000000000LL) == ETIMEDOUT) break;
    pthread_mutex_unlock(&w.mu);
    CHECK_EQ_INT(w.done, 1);
    CHECK(pc_time_mono_ns() - t0 < 5 * 1000000000LL);
    pthread_join(th, NULL);
    pthread_cond_destroy(&w.cv);
}

typedef struct lowered {
    int by, err, before, after;
} lowered;

static void *lower(void *arg)
{
    lowered *l = arg;
    l->before = getpriority(PRIO_PROCESS, (id_t)gettid());
    l->err = pc_thread_lower_priority(l->by);
    l->after = getpriority(PRIO_PROCESS, (id_t)gettid());
    return NULL;
}

static void run_lower(lowered *l)
{
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, lower, l), 0);
    pthread_join(th, NULL);
}

static void test_priority_of_one_thread(void)
{
    int mine = getpriority(PRIO_PROCESS, (id_t)gettid());
    lowered l = {.by = 3};
    run_lower(&l);
    CHECK_EQ_INT(l.err, 0);
    CHECK_EQ_INT(l.after, l.before + 3 > 19 ? 19 : l.before + 3);
    CHECK_EQ_INT(getpriority(PRIO_PROCESS, (id_t)gettid()), mine); /* not the caller's */

    lowered far = {.by = 40};
    run_lower(&far);
    CHECK_EQ_INT(far.err, 0);
    CHECK_EQ_INT(far.after, 19);

    lowered none = {.by = 0};
    run_lower(&none);
    CHECK_EQ_INT(none.err, 0);
    CHECK_EQ_INT(none.after, none.before);
}

static void *named(void *arg)
{
    char *got = arg;
    pc_thread_name("local-writer-with-a-long-name");
    pthread_getname_np(pthread_self(), got, 16);
    return NULL;
}

static void test_name_of_one_thread(void)
{
    char before[16] = "", after[16] = "", got[16] = "";
    pthread_getname_np(pthread_self(), before, sizeof(before));
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, named, got), 0);
    pthread_join(t, NULL);
    CHECK_EQ_STR(got, "local-writer-wi"); /* the first 15 bytes */
    pthread_getname_np(pthread_self(), after, sizeof(after));
    CHECK_EQ_STR(after, before); /* the caller's own name is untouched */
    pc_thread_name("");
    pthread_getname_np(pthread_self(), after, sizeof(after));
    CHECK_EQ_STR(after, "");
    pc_thread_name(before);
}

int main(void)
{
    RUN(test_wait_until_an_instant);
    RUN(test_signal_ends_the_wait);
    RUN(test_priority_of_one_thread);
    RUN(test_name_of_one_thread);
    return CHECK_DONE();
}
