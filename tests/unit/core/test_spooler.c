/*
 * test_spooler.c - an exporter's spool and drainer: records appended while the
 * destination refuses are delivered in order once it takes them, a kick cuts
 * the retry wait short, a record the destination can never take is removed,
 * what is spooled survives a close and is drained by the next spooler, and
 * health says degraded (spooling, draining) or unavailable (the spool refuses);
 * spooling first, what piled up is begun as one window and flushed once; a
 * spool kept full does not log each refusal.
 */
#include "check.h"

#include "log.h"
#include "spooler.h"
#include "timefmt.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The destination: answers |mode| and records what it took. */
typedef struct dest {
    int mode; /* atomic: PC_OK, PC_RETRY or PC_DROP */
    int calls;
    char got[64][16];
    int ngot;
    int drop_next; /* atomic: answer PC_DROP once */
} dest;

/* The destination answers at once: begin returns the answer (as a handle), end
 * hands it back. */
static void *begin_fn(void *ctx, const void *rec, size_t n);
static pc_result end_fn(void *ctx, void *handle)
{
    (void)ctx;
    return (pc_result)((intptr_t)handle - 1);
}

static pc_result send_fn(void *ctx, const void *rec, size_t n)
{
    dest *d = ctx;
    __atomic_add_fetch(&d->calls, 1, __ATOMIC_ACQ_REL);
    if (__atomic_exchange_n(&d->drop_next, 0, __ATOMIC_ACQ_REL)) return PC_DROP;
    int mode = __atomic_load_n(&d->mode, __ATOMIC_ACQUIRE);
    if (mode == PC_OK && d->ngot < 64) {
        snprintf(d->got[d->ngot], sizeof(d->got[0]), "%.*s", (int)n, (const char *)rec);
        __atomic_add_fetch(&d->ngot, 1, __ATOMIC_ACQ_REL);
    }
    return (pc_result)mode;
}

static void *begin_fn(void *ctx, const void *rec, size_t n)
{
    return (void *)(intptr_t)(send_fn(ctx, rec, n) + 1);
}

static bool wait_for(const int *v, int want, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        if (__atomic_load_n(v, __ATOMIC_ACQUIRE) >= want) return true;
        usleep(5000);
    }
    return __atomic_load_n(v, __ATOMIC_ACQUIRE) >= want;
}

/* The spooler's stats once its spool holds no record, or after 2 s. */
static pc_spooler_stats drained(pc_spooler *s)
{
    pc_spooler_stats st;
    for (int i = 0; i < 200; i++) {
        pc_spooler_get_stats(s, &st);
        if (st.spool.records == 0) break;
        usleep(10000);
    }
    return st;
}

static char dir[256];

static pc_spooler_cfg cfg(const char *fsync, int64_t max_size)
{
    return (pc_spooler_cfg){.directory = dir, .max_size = max_size, .fsync = (char *)fsync,
                            .after_ms = 100};
}

static void test_validate(void)
{
    char err[256];
    pc_spooler_cfg c = cfg("sometimes", 1 << 20);
    CHECK_EQ_INT(pc_spooler_validate(&c, 1000, false, err, sizeof(err)), -1);
    CHECK(strstr(err, "spool.fsync") != NULL);
    c = cfg("batch", 1 << 20);
    c.after_ms = 2000;
    CHECK_EQ_INT(pc_spooler_validate(&c, 1000, false, err, sizeof(err)), -1);
    CHECK(strstr(err, "spool.after") != NULL);
    c.directory = (char *)"";
    CHECK(!pc_spooler_enabled(&c));
    CHECK_EQ_INT(pc_spooler_validate(&c, 1000, false, err, sizeof(err)), 0); /* off: not checked */
    c = cfg("batch", 1 << 20);
    c.after_ms = 0; /* spool first: only for an exporter with a flush function */
    CHECK(pc_spooler_first(&c));
    CHECK_EQ_INT(pc_spooler_validate(&c, 1000, false, err, sizeof(err)), -1);
    CHECK(strstr(err, "spool.after: 0") != NULL);
    CHECK_EQ_INT(pc_spooler_validate(&c, 1000, true, err, sizeof(err)), 0);
    c.after_ms = 100;
    CHECK(!pc_spooler_first(&c));
}

/* Spooling first: what piled up while the drainer was away is begun as one
 * window, then flushed once, before any end; records that arrive while that
 * window is out are begun and flushed as the next one before the first ends. */
static pc_spooler *first_s;
static int flushes, begun_at_flush, flushes_at_first_end = -1;
static void flush_fn(void *ctx)
{
    dest *d = ctx;
    if (flushes++ == 0) {
        begun_at_flush = __atomic_load_n(&d->calls, __ATOMIC_ACQUIRE);
        char rec[16];
        for (int i = 200; i < 250; i++) { /* arrive while the first window is out */
            int n = snprintf(rec, sizeof(rec), "rec-%d", i);
            CHECK_EQ_INT(pc_spooler_append(first_s, rec, (size_t)n), 0);
        }
    }
}

static pc_result first_end(void *ctx, void *handle)
{
    if (flushes_at_first_end < 0) flushes_at_first_end = flushes;
    return end_fn(ctx, handle);
}

static void test_first_flushes_a_window(void)
{
    dest d = {.mode = PC_OK};
    pc_spooler_cfg c = cfg("batch", 1 << 20);
    c.after_ms = 0;
    pc_spooler *s = pc_spooler_create("t", &c, begin_fn, first_end, flush_fn, &d);
    CHECK(s != NULL);
    first_s = s;
    char rec[16];
    for (int i = 0; i < 200; i++) { /* more than the 32 of a window without flush */
        int n = snprintf(rec, sizeof(rec), "rec-%d", i);
        CHECK_EQ_INT(pc_spooler_append(s, rec, (size_t)n), 0);
    }
    pc_health h = {.state = PC_HEALTH_OK}; /* pending is normal when spooling first */
    pc_spooler_health(s, &h);
    CHECK_EQ_INT(h.state, PC_HEALTH_OK);
    CHECK_EQ_INT(pc_spooler_start(s), 0);
    CHECK(wait_for(&d.calls, 250, 5000));
    pc_spooler_stats st = drained(s); /* the ack follows the send */
    CHECK_EQ_INT(st.spool.records, 0);
    CHECK_EQ_INT(st.drained, 250);
    CHECK_EQ_INT(begun_at_flush, 200);
    CHECK_EQ_INT(flushes, 2);
    CHECK_EQ_INT(flushes_at_first_end, 2); /* the second window went out before the first ended */
    for (int i = 0; i < 64; i++) {
        snprintf(rec, sizeof(rec), "rec-%d", i);
        CHECK_EQ_STR(d.got[i], rec);
    }
    pc_spooler_destroy(s);
}

static void test_drains_in_order_after_outage(void)
{
    dest d = {.mode = PC_RETRY};
    pc_spooler_cfg c = cfg("batch", 1 << 20);
    pc_spooler *s = pc_spooler_create("t", &c, begin_fn, end_fn, NULL, &d);
    CHECK(s != NULL);
    CHECK_EQ_INT(pc_spooler_start(s), 0);
    char rec[16];
    for (int i = 0; i < 10; i++) {
        int n = snprintf(rec, sizeof(rec), "rec-%d", i);
        CHECK_EQ_INT(pc_spooler_append(s, rec, (size_t)n), 0);
    }
    pc_health h = {.state = PC_HEALTH_UNAVAILABLE};
    snprintf(h.reason, sizeof(h.reason), "brokers down");
    pc_spooler_health(s, &h);
    CHECK_EQ_INT(h.state, PC_HEALTH_DEGRADED);
    CHECK(strstr(h.reason, "spooling to disk: brokers down") != NULL);
    CHECK(wait_for(&d.calls, 2, 2000)); /* it keeps offering the first record */
    CHECK_EQ_INT(d.ngot, 0);
    h = (pc_health){.state = PC_HEALTH_OK};
    pc_spooler_health(s, &h);
    CHECK_EQ_INT(h.state, PC_HEALTH_DEGRADED);
    CHECK(strstr(h.reason, "draining 10 spooled batches") != NULL);

    /* back: after a kick the records arrive at once, in order */
    sleep(1); /* let the retry wait grow past what the check below allows */
    int64_t t0 = pc_time_mono_ns();
    __atomic_store_n(&d.mode, PC_OK, __ATOMIC_RELEASE);
    pc_spooler_kick(s);
    CHECK(wait_for(&d.ngot, 10, 5000));
    CHECK(pc_time_mono_ns() - t0 < 500 * 1000000LL);
    for (int i = 0; i < 10; i++) {
        snprintf(rec, sizeof(rec), "rec-%d", i);
        CHECK_EQ_STR(d.got[i], rec);
    }
    pc_spooler_stats st = drained(s); /* the ack follows the send */
    CHECK_EQ_INT(st.spool.records, 0);
    CHECK_EQ_INT(st.appended, 10);
    CHECK_EQ_INT(st.drained, 10);
    for (int i = 0; i < 100; i++) {
        h = (pc_health){.state = PC_HEALTH_OK};
        pc_spooler_health(s, &h);
        if (h.state == PC_HEALTH_OK) break;
        usleep(20000);
    }
    CHECK_EQ_INT(h.state, PC_HEALTH_OK);
    pc_spooler_destroy(s);
}

static void test_drop_and_restart(void)
{
    dest d = {.mode = PC_RETRY};
    pc_spooler_cfg c = cfg("always", 1 << 20);
    pc_spooler *s = pc_spooler_create("t", &c, begin_fn, end_fn, NULL, &d);
    CHECK_EQ_INT(pc_spooler_append(s, "poison", 6), 0);
    CHECK_EQ_INT(pc_spooler_append(s, "good-1", 6), 0);
    pc_spooler_destroy(s); /* never started: both stay on disk */

    s = pc_spooler_create("t", &c, begin_fn, end_fn, NULL, &d);
    pc_spooler_stats st;
    pc_spooler_get_stats(s, &st);
    CHECK_EQ_INT(st.spool.records, 2);
    __atomic_store_n(&d.drop_next, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&d.mode, PC_OK, __ATOMIC_RELEASE);
    CHECK_EQ_INT(pc_spooler_start(s), 0);
    CHECK(wait_for(&d.ngot, 1, 3000));
    CHECK_EQ_STR(d.got[0], "good-1");
    for (int i = 0; i < 100; i++) {
        pc_spooler_get_stats(s, &st);
        if (st.drained == 1) break;
        usleep(10000);
    }
    CHECK_EQ_INT(st.dropped, 1);
    CHECK_EQ_INT(st.drained, 1);
    pc_spooler_destroy(s);
}

/* Fills |buf| with bytes from check_rnd: incompressible, so the spool stores
 * them as they are and a size limit counts them exactly. */
static void fill_noise(char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)check_rnd();
}

static void test_full_refuses(void)
{
    dest d = {.mode = PC_RETRY};
    pc_spooler_cfg c = cfg("batch", 65536);
    pc_spooler *s = pc_spooler_create("t", &c, begin_fn, end_fn, NULL, &d);
    static char rec[4000];
    fill_noise(rec, sizeof(rec));
    int rc = 0, ok = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        if ((rc = pc_spooler_append(s, rec, sizeof(rec))) == 0) ok++;
    CHECK_EQ_INT(rc, PC_SPOOL_FULL);
    CHECK(ok >= 8 && ok < 17);
    pc_health h = {.state = PC_HEALTH_UNAVAILABLE};
    pc_spooler_health(s, &h);
    CHECK_EQ_INT(h.state, PC_HEALTH_UNAVAILABLE);
    CHECK(strstr(h.reason, "refuses") && strstr(h.reason, "full"));
    pc_spooler_stats st;
    pc_spooler_get_stats(s, &st);
    CHECK_EQ_INT(st.refused, 1);
    /* the destination comes back: the spool drains and health recovers */
    __atomic_store_n(&d.mode, PC_OK, __ATOMIC_RELEASE);
    CHECK_EQ_INT(pc_spooler_start(s), 0);
    pc_spooler_kick(s);
    CHECK(wait_for(&d.ngot, ok, 5000));
    for (int i = 0; i < 200; i++) {
        h = (pc_health){.state = PC_HEALTH_UNAVAILABLE};
        pc_spooler_health(s, &h);
        if (h.state == PC_HEALTH_DEGRADED) break;
        usleep(10000);
    }
    CHECK_EQ_INT(h.state, PC_HEALTH_DEGRADED); /* destination down, spool takes batches again */
    pc_spooler_destroy(s);
}

/* Lines of |path| holding |needle|. */
static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    if (f) fclose(f);
    return n;
}

/* A spool kept full (refuses, drains a little, refuses again) logs its
 * refusal once per EPISODE_LOG_MS, not per episode, and so does a spool that
 * fills and drains again and again: stderr is captured. */
static void test_episodes_are_logged_once_per_interval(void)
{
    dest d = {.mode = PC_RETRY};
    pc_spooler_cfg c = cfg("batch", 65536);
    pc_spooler *s = pc_spooler_create("t", &c, begin_fn, end_fn, NULL, &d);
    static char rec[4000];
    fill_noise(rec, sizeof(rec));
    char path[300];
    snprintf(path, sizeof(path), "%s.stderr", dir);
    int saved = dup(STDERR_FILENO), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(saved >= 0 && fd >= 0);
    dup2(fd, STDERR_FILENO);
    pc_log_set_level(PC_LOG_INFO);
    int ok = 0;
    for (int episode = 0; episode < 3; episode++) {
        int rc = 0;
        __atomic_store_n(&d.mode, PC_RETRY, __ATOMIC_RELEASE); /* fills up */
        for (int i = 0; i < 100 && rc == 0; i++)
            if ((rc = pc_spooler_append(s, rec, sizeof(rec))) == 0) ok++;
        CHECK_EQ_INT(rc, PC_SPOOL_FULL);
        if (episode == 0) CHECK_EQ_INT(pc_spooler_start(s), 0);
        __atomic_store_n(&d.mode, PC_OK, __ATOMIC_RELEASE); /* drains */
        pc_spooler_kick(s);
        CHECK(wait_for(&d.ngot, ok < 64 ? ok : 64, 5000)); /* drained: room again */
        pc_spooler_stats st = drained(s); /* the ack follows the send */
        CHECK_EQ_INT(st.spool.records, 0);
    }
    pc_spooler_destroy(s);
    pc_log_set_level(getenv("PC_TEST_VERBOSE") ? PC_LOG_DEBUG : PC_LOG_ERROR);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    CHECK_EQ_INT(count_lines(path, "the spool refuses batches"), 1);
    CHECK_EQ_INT(count_lines(path, "takes batches again"), 1);
    CHECK_EQ_INT(count_lines(path, "did not take in time"), 1);
    CHECK_EQ_INT(count_lines(path, "spool drained"), 1);
    unlink(path);
}

/* Text compresses: the spool holds it in a fraction of its size, and the
 * destination gets it back byte for byte. */
static char text[10000];
static int text_ok, text_bad;

static void *text_begin(void *ctx, const void *rec, size_t n)
{
    (void)ctx;
    if (n == sizeof(text) && memcmp(rec, text, n) == 0)
        __atomic_add_fetch(&text_ok, 1, __ATOMIC_ACQ_REL);
    else
        __atomic_add_fetch(&text_bad, 1, __ATOMIC_ACQ_REL);
    return (void *)(intptr_t)(PC_OK + 1);
}

static void test_compresses(void)
{
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "{\"span_id\":\"0af7651916cd43dd\",\"name\":\"chat gpt-4o\"} "[i % 52];
    pc_spooler_cfg c = cfg("batch", 1 << 20);
    pc_spooler *s = pc_spooler_create("t", &c, text_begin, end_fn, NULL, NULL);
    for (int i = 0; i < 50; i++)
        CHECK_EQ_INT(pc_spooler_append(s, text, sizeof(text)), 0);
    pc_spooler_stats st;
    pc_spooler_get_stats(s, &st);
    CHECK_EQ_INT(st.spool.records, 50);
    CHECK(st.spool.bytes < 50 * sizeof(text) / 8);
    CHECK_EQ_INT(pc_spooler_start(s), 0);
    CHECK(wait_for(&text_ok, 50, 5000));
    CHECK_EQ_INT(text_bad, 0);
    pc_spooler_destroy(s);
}

int main(void)
{
    pc_log_set_level(getenv("PC_TEST_VERBOSE") ? PC_LOG_DEBUG : PC_LOG_ERROR);
    snprintf(dir, sizeof(dir), "/tmp/pc-test-spooler-%d", (int)getpid());
    RUN(test_validate);
    RUN(test_drains_in_order_after_outage);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
    RUN(test_drop_and_restart);
    CHECK_EQ_INT(system(cmd), 0);
    RUN(test_full_refuses);
    CHECK_EQ_INT(system(cmd), 0);
    RUN(test_compresses);
    CHECK_EQ_INT(system(cmd), 0);
    RUN(test_first_flushes_a_window);
    CHECK_EQ_INT(system(cmd), 0);
    RUN(test_episodes_are_logged_once_per_interval);
    CHECK_EQ_INT(system(cmd), 0);
    return CHECK_DONE();
}
