/*
 * test_spool.c - the disk spool (src/core/spool.c) on real files in a temp dir:
 * order across segments and restarts, ack persistence, FULL, torn tails of
 * every length, flipped bytes, concurrent appenders with a drainer, disk
 * errors (RLIMIT_FSIZE), and SIGKILL at random moments in a forked appender.
 */
#include "check.h"
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpl[200];
static char *base;
static int dirs;

/* A fresh directory name under the test's temp dir (not created). */
static const char *newdir(void)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/s%d", base, dirs++);
    return path;
}

static pc_spool *open_spool(const char *dir, uint64_t max, uint64_t segsz, pc_spool_fsync mode)
{
    char err[256] = "";
    pc_spool_config c = {dir, max, mode, segsz};
    pc_spool *sp = pc_spool_create(&c, err, sizeof err);
    if (!sp) fprintf(stderr, "open %s: %s\n", dir, err);
    return sp;
}

/* Record |i|: "rec <i>" padded with a pattern to 10 + i % 97 bytes. */
static size_t make_rec(uint32_t i, char *out)
{
    size_t n = 10 + i % 97;
    int k = snprintf(out, n + 1, "rec %u ", i);
    for (size_t j = (size_t)k; j < n; j++)
        out[j] = (char)('a' + (i + j) % 26);
    return n;
}

/* Peeks and acks up to |max| records, checking they are records first, first+1, ...
 * Returns how many were read. */
static int drain_check(pc_spool *sp, uint32_t first, int max)
{
    char want[128];
    int got = 0;
    while (got < max) {
        const void *p;
        size_t n;
        uint64_t id;
        int rc = pc_spool_peek(sp, &p, &n, &id);
        if (rc == PC_SPOOL_EMPTY) break;
        CHECK_EQ_INT(rc, 0);
        if (rc) break;
        size_t wn = make_rec(first + (uint32_t)got, want);
        CHECK_EQ_INT(n, wn);
        if (n != wn || memcmp(p, want, n) != 0) {
            fprintf(stderr, "record %u differs: %.*s\n", first + got, (int)n, (const char *)p);
            CHECK(0);
            break;
        }
        CHECK_EQ_INT(pc_spool_ack(sp, id), 0);
        got++;
    }
    return got;
}

static int count_segs(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".seg")) n++;
    if (d) closedir(d);
    return n;
}

/* The path of the |k|-th segment file (by number) of |dir|. */
static void seg_file(const char *dir, int k, char *out, size_t len)
{
    char names[64][32];
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 64)
        if (strstr(e->d_name, ".seg")) snprintf(names[n++], 32, "%.31s", e->d_name);
    if (d) closedir(d);
    qsort(names, (size_t)n, 32, (int (*)(const void *, const void *))strcmp);
    snprintf(out, len, "%s/%s", dir, k < n ? names[k] : "missing");
}

static void test_config_errors(void)
{
    char err[256];
    pc_spool_config c = {NULL, 1 << 20, PC_SPOOL_FSYNC_BATCH, 0};
    CHECK(pc_spool_create(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "spool.directory") != NULL);
    c.directory = newdir();
    c.max_size = 100;
    CHECK(pc_spool_create(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "spool.max_size") != NULL);
    c.max_size = 1 << 20;
    c.segment_size = 1 << 20; /* more than max_size/2 */
    CHECK(pc_spool_create(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "spool.segment_size") != NULL);
    c.segment_size = 0;
    c.fsync = (pc_spool_fsync)7;
    CHECK(pc_spool_create(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "spool.fsync") != NULL);
    CHECK_EQ_INT(pc_spool_fsync_parse("always"), PC_SPOOL_FSYNC_ALWAYS);
    CHECK_EQ_INT(pc_spool_fsync_parse("batch"), PC_SPOOL_FSYNC_BATCH);
    CHECK_EQ_INT(pc_spool_fsync_parse("sometimes"), -1);
    c.directory = "/proc/no/such/dir";
    c.fsync = PC_SPOOL_FSYNC_ALWAYS;
    CHECK(pc_spool_create(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "spool.directory") != NULL);
}

static void test_lock(void)
{
    const char *d = newdir();
    char dir[256];
    snprintf(dir, sizeof dir, "%s", d);
    pc_spool *a = open_spool(dir, 1 << 20, 0, PC_SPOOL_FSYNC_BATCH);
    CHECK(a != NULL);
    char err[256] = "";
    pc_spool_config c = {dir, 1 << 20, PC_SPOOL_FSYNC_BATCH, 0};
    CHECK(pc_spool_create(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "in use") != NULL);
    pc_spool_destroy(a);
    pc_spool *b = pc_spool_create(&c, err, sizeof err); /* released */
    CHECK(b != NULL);
    pc_spool_destroy(b);
}

static void test_order_across_segments_and_restarts(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", newdir());
    char rec[128];
    uint32_t appended = 0, read = 0;
    for (int round = 0; round < 6; round++) {
        pc_spool *sp =
            open_spool(dir, 1 << 20, 512, round % 2 ? PC_SPOOL_FSYNC_ALWAYS : PC_SPOOL_FSYNC_BATCH);
        CHECK(sp != NULL);
        if (!sp) return;
        pc_spool_stats st;
        pc_spool_get_stats(sp, &st);
        CHECK_EQ_INT(st.records, appended - read);
        for (int i = 0; i < 150; i++, appended++)
            CHECK_EQ_INT(pc_spool_append(sp, rec, make_rec(appended, rec)), 0);
        pc_spool_get_stats(sp, &st);
        CHECK_EQ_INT(st.records, appended - read);
        CHECK(st.segments > 10);
        read += (uint32_t)drain_check(sp, read, 100 + round * 10);
        pc_spool_destroy(sp);
    }
    pc_spool *sp = open_spool(dir, 1 << 20, 512, PC_SPOOL_FSYNC_BATCH);
    read += (uint32_t)drain_check(sp, read, 1 << 30);
    CHECK_EQ_INT(read, appended);
    pc_spool_stats st;
    pc_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.records, 0);
    CHECK_EQ_INT(st.bytes, 0);
    CHECK(st.segments <= 1); /* acknowledged segments are deleted */
    CHECK(count_segs(dir) <= 1);
    CHECK_EQ_INT(st.corrupt, 0);
    pc_spool_destroy(sp);
}

static void test_ack_persists(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", newdir());
    char rec[128];
    pc_spool *sp = open_spool(dir, 1 << 20, 0, PC_SPOOL_FSYNC_BATCH);
    for (uint32_t i = 0; i < 10; i++)
        CHECK_EQ_INT(pc_spool_append(sp, rec, make_rec(i, rec)), 0);
    CHECK_EQ_INT(drain_check(sp, 0, 4), 4);
    const void *p;
    size_t n;
    uint64_t id, id2;
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), 0); /* record 4, not acknowledged */
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id2), 0);
    CHECK(id == id2);                           /* the same record again */
    CHECK_EQ_INT(pc_spool_ack(sp, id + 1), -1); /* acks are in order */
    pc_spool_destroy(sp);
    sp = open_spool(dir, 1 << 20, 0, PC_SPOOL_FSYNC_BATCH);
    pc_spool_stats st;
    pc_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.records, 6);
    CHECK_EQ_INT(drain_check(sp, 4, 100), 6);
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), PC_SPOOL_EMPTY);
    pc_spool_destroy(sp);
    sp = open_spool(dir, 1 << 20, 0, PC_SPOOL_FSYNC_BATCH);
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), PC_SPOOL_EMPTY);
    CHECK_EQ_INT(pc_spool_append(sp, "x", 1), 0); /* and it goes on after everything was acked */
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), 0);
    CHECK(n == 1 && memcmp(p, "x", 1) == 0);
    CHECK_EQ_INT(pc_spool_append(sp, NULL, 0), 0); /* an empty record is a record */
    CHECK_EQ_INT(pc_spool_ack(sp, id), 0);
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), 0);
    CHECK_EQ_INT(n, 0);
    pc_spool_destroy(sp);
}

static void test_full_then_acks_free_space(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", newdir());
    pc_spool *sp = open_spool(dir, 8192, 2048, PC_SPOOL_FSYNC_ALWAYS);
    char rec[100];
    memset(rec, 'f', sizeof rec);
    int ok = 0, rc;
    while ((rc = pc_spool_append(sp, rec, sizeof rec)) == 0)
        ok++;
    CHECK_EQ_INT(rc, PC_SPOOL_FULL);
    CHECK(ok > 60);
    pc_spool_stats st, st2;
    pc_spool_get_stats(sp, &st);
    CHECK(st.disk_bytes <= 8192);
    CHECK_EQ_INT(st.records, ok);
    CHECK_EQ_INT(pc_spool_append(sp, rec, sizeof rec), PC_SPOOL_FULL);
    pc_spool_get_stats(sp, &st2);
    CHECK_EQ_INT(st2.disk_bytes, st.disk_bytes); /* nothing written */
    CHECK_EQ_INT(pc_spool_append(sp, rec, 9000), PC_SPOOL_TOOBIG);
    /* FULL survives a restart, and acks free whole segments */
    pc_spool_destroy(sp);
    sp = open_spool(dir, 8192, 2048, PC_SPOOL_FSYNC_ALWAYS);
    CHECK_EQ_INT(pc_spool_append(sp, rec, sizeof rec), PC_SPOOL_FULL);
    const void *p;
    size_t n;
    uint64_t id;
    for (int i = 0; i < 25; i++) {
        CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), 0);
        CHECK_EQ_INT(pc_spool_ack(sp, id), 0);
    }
    CHECK_EQ_INT(pc_spool_append(sp, rec, sizeof rec), 0);
    /* drained to the last record: the space comes back (all but the write
     * segment's acknowledged record, freed when that segment rolls) */
    while (pc_spool_peek(sp, &p, &n, &id) == 0)
        pc_spool_ack(sp, id);
    int again = 0;
    while (pc_spool_append(sp, rec, sizeof rec) == 0)
        again++;
    CHECK(again >= ok - 1);
    pc_spool_get_stats(sp, &st);
    CHECK(st.disk_bytes <= 8192);
    CHECK_EQ_INT(st.records, again);
    pc_spool_destroy(sp);

    /* one big record fills the only (write) segment; once it is acknowledged, the
     * segment is rolled away to make room instead of staying FULL forever */
    snprintf(dir, sizeof dir, "%s", newdir());
    sp = open_spool(dir, 4096, 2048, PC_SPOOL_FSYNC_BATCH);
    char *big = calloc(1, 3000);
    CHECK_EQ_INT(pc_spool_append(sp, big, 3000), 0);
    CHECK_EQ_INT(pc_spool_append(sp, big, 1100), PC_SPOOL_FULL);
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), 0);
    CHECK_EQ_INT(n, 3000);
    CHECK_EQ_INT(pc_spool_ack(sp, id), 0);
    CHECK_EQ_INT(pc_spool_append(sp, big, 1100), 0);
    CHECK_EQ_INT(count_segs(dir), 1);
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), 0);
    CHECK_EQ_INT(n, 1100);
    free(big);
    pc_spool_destroy(sp);
}

static void read_file(const char *path, unsigned char **data, size_t *n)
{
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc(*n);
    CHECK_EQ_INT(fread(*data, 1, *n, f), *n);
    fclose(f);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK_EQ_INT(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Reopens |dir| and counts (and checks) the records from 0. */
static int reopen_count(const char *dir, pc_spool_stats *st)
{
    pc_spool *sp = open_spool(dir, 1 << 20, 4096, PC_SPOOL_FSYNC_BATCH);
    if (!sp) return -1;
    pc_spool_get_stats(sp, st);
    int n = drain_check(sp, 0, 1 << 30);
    pc_spool_destroy(sp);
    return n;
}

static void test_torn_tails(void)
{
    char dir[256], seg[512], cur[512];
    snprintf(dir, sizeof dir, "%s", newdir());
    snprintf(cur, sizeof cur, "%s/cursor", dir);
    char rec[128];
    pc_spool *sp = open_spool(dir, 1 << 20, 4096, PC_SPOOL_FSYNC_BATCH);
    for (uint32_t i = 0; i < 5; i++)
        CHECK_EQ_INT(pc_spool_append(sp, rec, make_rec(i, rec)), 0);
    pc_spool_destroy(sp);
    seg_file(dir, 0, seg, sizeof seg);
    unsigned char *orig;
    size_t size;
    read_file(seg, &orig, &size);
    size_t last = 8 + make_rec(4, rec);
    pc_spool_stats st;
    /* every cut inside the last record: it goes, the first four stay */
    for (size_t cut = 1; cut < last; cut++) {
        write_file(seg, orig, size - cut);
        unlink(cur);
        CHECK_EQ_INT(reopen_count(dir, &st), 4);
        CHECK_EQ_INT(st.truncated_bytes, last - cut);
        CHECK_EQ_INT(st.corrupt, 0);
    }
    /* a tail of zeros (a power loss after the size grew) and a bad crc at the end */
    unsigned char *buf = malloc(size + 300);
    memcpy(buf, orig, size);
    memset(buf + size, 0, 300);
    write_file(seg, buf, size + 300);
    unlink(cur);
    CHECK_EQ_INT(reopen_count(dir, &st), 5);
    CHECK_EQ_INT(st.truncated_bytes, 300);
    memcpy(buf, orig, size);
    buf[size - 1] ^= 0x40;
    write_file(seg, buf, size);
    unlink(cur);
    CHECK_EQ_INT(reopen_count(dir, &st), 4);
    CHECK_EQ_INT(st.corrupt, 0);
    /* cut inside the header of a new segment: removed, nothing lost */
    write_file(seg, orig, size);
    unlink(cur);
    char seg2[600];
    snprintf(seg2, sizeof seg2, "%s/%020d.seg", dir, 999);
    write_file(seg2, "PCSP", 4);
    CHECK_EQ_INT(reopen_count(dir, &st), 5);
    CHECK_EQ_INT(count_segs(dir), 0); /* all acknowledged: deleted */
    free(buf);
    free(orig);
}

static void test_flipped_byte_mid_segment(void)
{
    char dir[256], seg0[512], seg1[512];
    snprintf(dir, sizeof dir, "%s", newdir());
    char rec[128];
    /* two segments of 10 records each (records 0..9 are 10..19 bytes + 8) */
    pc_spool *sp = open_spool(dir, 1 << 20, 16 + 10 * 8 + 145, PC_SPOOL_FSYNC_BATCH);
    for (uint32_t i = 0; i < 20; i++) {
        size_t n = make_rec(i % 10, rec);
        CHECK_EQ_INT(pc_spool_append(sp, rec, n), 0);
    }
    pc_spool_destroy(sp);
    CHECK_EQ_INT(count_segs(dir), 2);
    seg_file(dir, 0, seg0, sizeof seg0);
    seg_file(dir, 1, seg1, sizeof seg1);
    unsigned char *d0, *d1;
    size_t n0, n1;
    read_file(seg0, &d0, &n0);
    read_file(seg1, &d1, &n1);
    /* offset of record 5: header + records 0..4 */
    size_t off5 = 16;
    for (uint32_t i = 0; i < 5; i++)
        off5 += 8 + make_rec(i, rec);
    for (int where = 0; where < 3; where++) { /* the length, the crc, the payload */
        size_t at = off5 + (where == 0 ? 1 : where == 1 ? 5 : 12);
        for (int which = 0; which < 2; which++) {
            const char *seg = which ? seg1 : seg0;
            unsigned char *d = which ? d1 : d0;
            size_t n = which ? n1 : n0;
            write_file(seg0, d0, n0);
            write_file(seg1, d1, n1);
            char cur[512];
            snprintf(cur, sizeof cur, "%s/cursor", dir);
            unlink(cur);
            d[at] ^= 0x10;
            write_file(seg, d, n);
            d[at] ^= 0x10;
            sp = open_spool(dir, 1 << 20, 4096, PC_SPOOL_FSYNC_BATCH);
            pc_spool_stats st;
            pc_spool_get_stats(sp, &st);
            /* records 0..4 of the damaged segment stay, the rest of it is skipped (the
             * last segment's damage is corruption too: valid-looking data follows it,
             * unless a flipped length runs past the end, which is cut as a torn tail) */
            CHECK_EQ_INT(drain_check(sp, 0, which ? 10 : 5), which ? 10 : 5);
            CHECK_EQ_INT(drain_check(sp, 0, 10), which ? 5 : 10);
            const void *p;
            size_t pn;
            uint64_t id;
            CHECK_EQ_INT(pc_spool_peek(sp, &p, &pn, &id), PC_SPOOL_EMPTY);
            CHECK_EQ_INT(st.corrupt + (st.truncated_bytes > 0), 1);
            pc_spool_destroy(sp);
        }
    }
    /* damage after open (read time): skipped and counted, never a crash */
    write_file(seg0, d0, n0);
    write_file(seg1, d1, n1);
    char cur[512];
    snprintf(cur, sizeof cur, "%s/cursor", dir);
    unlink(cur);
    sp = open_spool(dir, 1 << 20, 4096, PC_SPOOL_FSYNC_BATCH);
    d0[off5 + 12] ^= 0x10;
    int fd = open(seg0, O_WRONLY);
    CHECK_EQ_INT(pwrite(fd, d0 + off5 + 12, 1, (off_t)(off5 + 12)), 1);
    close(fd);
    CHECK_EQ_INT(drain_check(sp, 0, 5), 5);
    CHECK_EQ_INT(drain_check(sp, 0, 10), 10);
    pc_spool_stats st;
    pc_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.corrupt, 1);
    CHECK_EQ_INT(st.records, 0);
    pc_spool_destroy(sp);
    free(d0);
    free(d1);
}

/* ---- read-ahead ------------------------------------------------------------------------ */

/* Reads ahead |window| records at a time (peek_next), checks each, acks them in
 * order; returns how many were delivered. |first| is the first record expected. */
static int drain_window(pc_spool *sp, uint32_t first, int window)
{
    char want[128];
    int got = 0;
    for (;;) {
        uint64_t ids[PC_SPOOL_MAX_AHEAD];
        int k = 0, rc = 0;
        while (k < window) {
            const void *p;
            size_t n;
            rc = pc_spool_peek_next(sp, &p, &n, &ids[k]);
            if (rc) break;
            size_t wn = make_rec(first + (uint32_t)(got + k), want);
            if (n != wn || memcmp(p, want, n) != 0) {
                fprintf(stderr, "read ahead %u differs: %.*s\n", first + got + k, (int)n,
                        (const char *)p);
                CHECK(0);
                return got;
            }
            k++;
        }
        CHECK(rc == 0 || rc == PC_SPOOL_EMPTY);
        if (k == 0) return got;
        if (k > 1) CHECK_EQ_INT(pc_spool_ack(sp, ids[1]), -1); /* out of order */
        for (int i = 0; i < k; i++)
            CHECK_EQ_INT(pc_spool_ack(sp, ids[i]), 0);
        got += k;
    }
}

static void test_read_ahead(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", newdir());
    char rec[128];
    enum { N = PC_SPOOL_MAX_AHEAD + 300 }; /* more than one read-ahead window */
    pc_spool *sp = open_spool(dir, 4 << 20, 1024, PC_SPOOL_FSYNC_BATCH); /* many segments */
    for (uint32_t i = 0; i < N; i++)
        CHECK_EQ_INT(pc_spool_append(sp, rec, make_rec(i, rec)), 0);
    CHECK(count_segs(dir) > 10);
    /* read ahead 20, then a peek starts over at the oldest */
    const void *p;
    size_t n;
    uint64_t id, first_id = 0;
    for (int i = 0; i < 20; i++) {
        CHECK_EQ_INT(pc_spool_peek_next(sp, &p, &n, &id), 0);
        if (i == 0) first_id = id;
    }
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), 0);
    CHECK(id == first_id);
    CHECK(n == make_rec(0, rec) && memcmp(p, rec, n) == 0);
    CHECK_EQ_INT(pc_spool_ack(sp, id), 0);
    /* the window stops at PC_SPOOL_MAX_AHEAD */
    int k = 0;
    while (pc_spool_peek_next(sp, &p, &n, &id) == 0)
        k++;
    CHECK_EQ_INT(k, PC_SPOOL_MAX_AHEAD);
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), 0); /* start over */
    CHECK(n == make_rec(1, rec) && memcmp(p, rec, n) == 0);
    CHECK_EQ_INT(pc_spool_ack(sp, id), 0);
    /* windows of 16 across segment boundaries; acked segments are deleted */
    CHECK_EQ_INT(drain_window(sp, 2, 16), N - 2);
    pc_spool_stats st;
    pc_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.records, 0);
    CHECK(count_segs(dir) <= 1);
    /* appends after the reader caught up are read ahead too */
    for (uint32_t i = N; i < N + 40; i++)
        CHECK_EQ_INT(pc_spool_append(sp, rec, make_rec(i, rec)), 0);
    CHECK_EQ_INT(drain_window(sp, N, 7), 40);
    pc_spool_destroy(sp);

    /* corruption found while reading ahead, in a later segment: the records read
     * before it are still delivered and acknowledged, the rest of that segment is
     * skipped and counted, and the next segment follows */
    snprintf(dir, sizeof dir, "%s", newdir());
    sp = open_spool(dir, 1 << 20, 16 + 10 * 8 + 145, PC_SPOOL_FSYNC_BATCH);
    for (uint32_t i = 0; i < 30; i++) /* three segments of records 0..9 */
        CHECK_EQ_INT(pc_spool_append(sp, rec, make_rec(i % 10, rec)), 0);
    char seg1[512];
    seg_file(dir, 1, seg1, sizeof seg1);
    size_t off5 = 16;
    for (uint32_t i = 0; i < 5; i++)
        off5 += 8 + make_rec(i, rec);
    int fd = open(seg1, O_RDWR);
    unsigned char b;
    CHECK_EQ_INT(pread(fd, &b, 1, (off_t)(off5 + 12)), 1);
    b ^= 0x10;
    CHECK_EQ_INT(pwrite(fd, &b, 1, (off_t)(off5 + 12)), 1);
    close(fd);
    uint64_t ids[32];
    int got = 0;
    while (got < 32 && pc_spool_peek_next(sp, &p, &n, &ids[got]) == 0) {
        uint32_t want = got < 10 ? (uint32_t)got : got < 15 ? (uint32_t)(got - 10)
                                                            : (uint32_t)(got - 15);
        CHECK(n == make_rec(want, rec) && memcmp(p, rec, n) == 0);
        got++;
    }
    CHECK_EQ_INT(got, 25); /* 10 + 5 (the rest of segment 1 skipped) + 10 */
    pc_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.corrupt, 1);
    CHECK_EQ_INT(st.records, 25);
    for (int i = 0; i < got; i++)
        CHECK_EQ_INT(pc_spool_ack(sp, ids[i]), 0);
    pc_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.records, 0);
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), PC_SPOOL_EMPTY);
    pc_spool_destroy(sp);
}

/* ---- concurrent appenders with a drainer ---------------------------------------------- */

#define CT 4
#define CN 1500

typedef struct app {
    pc_spool *sp;
    int t, fails;
} app;

static void *appender(void *arg)
{
    app *a = arg;
    for (uint32_t i = 0; i < CN; i++) {
        uint32_t r[2] = {(uint32_t)a->t, i};
        if (pc_spool_append(a->sp, r, sizeof r) != 0) a->fails++;
    }
    return NULL;
}

static void test_concurrent_appenders_and_drainer(void)
{
    for (int mode = 0; mode < 2; mode++) {
        char dir[256];
        snprintf(dir, sizeof dir, "%s", newdir());
        pc_spool *sp =
            open_spool(dir, 1 << 22, 4096, mode ? PC_SPOOL_FSYNC_BATCH : PC_SPOOL_FSYNC_ALWAYS);
        pthread_t th[CT];
        app a[CT];
        for (int t = 0; t < CT; t++) {
            a[t] = (app){sp, t, 0};
            pthread_create(&th[t], NULL, appender, &a[t]);
        }
        uint32_t next[CT] = {0};
        int total = 0, bad = 0;
        while (total < CT * CN && !bad) {
            const void *p;
            size_t n;
            uint64_t id;
            int rc = pc_spool_peek(sp, &p, &n, &id);
            if (rc == PC_SPOOL_EMPTY) {
                usleep(100);
                continue;
            }
            uint32_t r[2];
            memcpy(r, p, sizeof r);
            if (rc != 0 || n != 8 || r[0] >= CT || r[1] != next[r[0]])
                bad = 1;
            else
                next[r[0]]++;
            pc_spool_ack(sp, id);
            total++;
        }
        for (int t = 0; t < CT; t++) {
            pthread_join(th[t], NULL);
            CHECK_EQ_INT(a[t].fails, 0);
        }
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(total, CT * CN);
        pc_spool_stats st;
        pc_spool_get_stats(sp, &st);
        CHECK_EQ_INT(st.records, 0);
        CHECK(st.fsyncs >= 1);
        if (mode == 0) CHECK(st.fsyncs >= CT * CN); /* ALWAYS: one per record */
        fprintf(stderr, "   %s: %llu fdatasyncs for %d records\n", mode ? "batch" : "always",
                (unsigned long long)st.fsyncs, CT * CN);
        pc_spool_destroy(sp);
    }
}

/* ---- disk errors ----------------------------------------------------------------------- */

static void test_disk_error_keeps_spool_consistent(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", newdir());
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    pc_spool *sp = open_spool(dir, 1 << 20, 64 << 10, PC_SPOOL_FSYNC_BATCH);
    char rec[128];
    uint32_t i = 0;
    for (; i < 10; i++)
        CHECK_EQ_INT(pc_spool_append(sp, rec, make_rec(i, rec)), 0);
    lim = old;
    lim.rlim_cur = 2000; /* the write segment cannot grow past 2000 bytes */
    CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = 0;
    for (; i < 200 && (rc = pc_spool_append(sp, rec, make_rec(i, rec))) == 0; i++) {
    }
    CHECK_EQ_INT(rc, PC_SPOOL_IO);
    char msg[256];
    CHECK(strstr(pc_spool_error(sp, msg, sizeof msg), "too large") != NULL);
    CHECK_EQ_INT(pc_spool_append(sp, rec, make_rec(i, rec)), PC_SPOOL_IO);
    setrlimit(RLIMIT_FSIZE, &old);
    uint32_t stored = i;
    for (; i < stored + 20; i++)
        CHECK_EQ_INT(pc_spool_append(sp, rec, make_rec(i, rec)), 0);
    pc_spool_destroy(sp);
    /* what failed is not there, everything before and after is, in order */
    sp = open_spool(dir, 1 << 20, 64 << 10, PC_SPOOL_FSYNC_BATCH);
    pc_spool_stats st;
    pc_spool_get_stats(sp, &st);
    CHECK_EQ_INT(st.records, stored + 20);
    CHECK_EQ_INT(st.corrupt, 0);
    CHECK_EQ_INT(drain_check(sp, 0, (int)stored), stored);
    const void *p;
    size_t n;
    uint64_t id;
    make_rec(stored, rec);
    CHECK_EQ_INT(pc_spool_peek(sp, &p, &n, &id), 0);
    CHECK(n == make_rec(stored, rec) && memcmp(p, rec, n) == 0);
    pc_spool_destroy(sp);
}

/* ---- SIGKILL at random moments ---------------------------------------------------------- */

/*
 * A forked child appends numbered records from KT threads and reports each
 * number whose append returned 0 on a pipe; in odd rounds a drainer thread in
 * the child also peeks and acks, reporting each record it peeked (before the
 * ack, so a record it reports is delivered). The parent SIGKILLs the child at a
 * random moment, reopens the spool, drains part of it, and checks: every
 * acknowledged number was delivered (by the child's drainer or after the
 * reopen), per thread in order; a number may come twice, never out of order.
 */
#define KT 3        /* appender threads in the child */
#define KMAX 100000 /* numbers per thread and round */
#define ROUNDS 6
#define DRAINED 0x10000u /* tag of a drainer report */

typedef struct kid {
    pc_spool *sp;
    int t, fd;
    uint32_t round;
} kid;

static void *kid_appender(void *arg)
{
    kid *k = arg;
    char rec[600];
    for (uint32_t i = 0; i < KMAX; i++) {
        uint32_t hdr[3] = {k->round, (uint32_t)k->t, i};
        size_t n = 12 + (i * 37u) % 500;
        memcpy(rec, hdr, 12);
        memset(rec + 12, (int)i, n - 12);
        if (pc_spool_append(k->sp, rec, n) != 0) _exit(3);
        if (write(k->fd, hdr, sizeof hdr) != sizeof hdr) _exit(4);
    }
    return NULL;
}

/* Reads ahead up to 8 records, reports each as delivered, then acks them in order. */
static void *kid_drainer(void *arg)
{
    kid *k = arg;
    for (;;) {
        uint64_t ids[8];
        int got = 0, rc = 0;
        while (got < 8) {
            const void *p;
            size_t n;
            rc = pc_spool_peek_next(k->sp, &p, &n, &ids[got]);
            if (rc) break;
            if (n < 12) _exit(5);
            uint32_t hdr[3];
            memcpy(hdr, p, 12);
            hdr[0] |= DRAINED;
            if (write(k->fd, hdr, sizeof hdr) != sizeof hdr) _exit(4);
            got++;
        }
        if (rc != 0 && rc != PC_SPOOL_EMPTY) _exit(5);
        for (int i = 0; i < got; i++)
            if (pc_spool_ack(k->sp, ids[i]) != 0) _exit(6);
        if (!got) usleep(200);
    }
    return NULL;
}

typedef struct ledger {
    uint32_t acked[ROUNDS][KT]; /* numbers 0..n-1 were acknowledged to the appender */
    uint32_t seen[ROUNDS][KT];  /* numbers 0..n-1 were delivered */
    uint32_t last_round;
    int disorder;
} ledger;

/* One delivered record (by the child's drainer or after a reopen). */
static void delivered(ledger *l, const uint32_t h[3], const unsigned char *p, size_t n)
{
    if (h[0] >= ROUNDS || h[1] >= KT || h[0] < l->last_round) {
        l->disorder++;
        return;
    }
    l->last_round = h[0];
    uint32_t *seen = &l->seen[h[0]][h[1]];
    if (h[2] == *seen)
        (*seen)++;
    else if (h[2] > *seen)
        l->disorder++; /* a gap: a record lost or out of order */
    for (size_t j = 12; p && j < n; j++)
        if (p[j] != (unsigned char)h[2]) {
            l->disorder++;
            break;
        }
}

static void run_child(const char *dir, int mode, uint32_t round, int fd)
{
    pc_spool *sp =
        open_spool(dir, 1 << 26, 32 << 10, mode ? PC_SPOOL_FSYNC_BATCH : PC_SPOOL_FSYNC_ALWAYS);
    if (!sp) _exit(2);
    pthread_t th[KT + 1];
    kid k[KT + 1];
    for (int t = 0; t <= KT; t++) {
        k[t] = (kid){sp, t, fd, round};
        if (t < KT)
            pthread_create(&th[t], NULL, kid_appender, &k[t]);
        else if (round % 2)
            pthread_create(&th[t], NULL, kid_drainer, &k[t]);
    }
    for (int t = 0; t < KT; t++)
        pthread_join(th[t], NULL);
    _exit(0);
}

static void test_sigkill_at_random_moments(void)
{
    for (int mode = 0; mode < 2; mode++) {
        char dir[256];
        snprintf(dir, sizeof dir, "%s", newdir());
        static ledger l;
        memset(&l, 0, sizeof l);
        int kills = 0, child_drained = 0;
        for (uint32_t round = 0; round < ROUNDS; round++) {
            int pfd[2];
            CHECK_EQ_INT(pipe(pfd), 0);
            pid_t pid = fork();
            if (pid == 0) {
                close(pfd[0]);
                run_child(dir, mode, round, pfd[1]);
            }
            close(pfd[1]);
            int ms = 5 + rand() % 250;
            struct timespec t0, now;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            int killed = 0;
            uint32_t hdr[3];
            size_t have = 0;
            for (;;) {
                clock_gettime(CLOCK_MONOTONIC, &now);
                long el = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
                if (!killed && el >= ms) {
                    kill(pid, SIGKILL);
                    killed = 1;
                }
                struct pollfd pf = {pfd[0], POLLIN, 0};
                poll(&pf, 1, killed ? 1000 : 5);
                if (!(pf.revents & (POLLIN | POLLHUP))) continue;
                ssize_t r = read(pfd[0], (char *)hdr + have, sizeof hdr - have);
                if (r <= 0) break; /* every writer is gone */
                have += (size_t)r;
                if (have < sizeof hdr) continue;
                have = 0;
                if (hdr[0] & DRAINED) {
                    hdr[0] &= ~DRAINED;
                    delivered(&l, hdr, NULL, 0);
                    child_drained++;
                } else if (hdr[0] == round && hdr[1] < KT && hdr[2] == l.acked[round][hdr[1]]) {
                    l.acked[round][hdr[1]]++;
                } else {
                    l.disorder++;
                }
            }
            close(pfd[0]);
            int status;
            waitpid(pid, &status, 0);
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
            kills += WIFSIGNALED(status);
            /* reopen, drain part (the rest stays for the next rounds) */
            pc_spool *sp = open_spool(dir, 1 << 26, 32 << 10, PC_SPOOL_FSYNC_BATCH);
            CHECK(sp != NULL);
            if (!sp) return;
            int take = round == ROUNDS - 1 ? 1 << 30 : rand() % 3000;
            for (int i = 0; i < take; i++) {
                const void *p;
                size_t n;
                uint64_t id;
                if (pc_spool_peek(sp, &p, &n, &id) != 0) break;
                uint32_t h[3];
                memcpy(h, p, 12);
                delivered(&l, h, p, n);
                CHECK_EQ_INT(pc_spool_ack(sp, id), 0);
            }
            pc_spool_stats st;
            pc_spool_get_stats(sp, &st);
            CHECK_EQ_INT(st.corrupt, 0);
            pc_spool_destroy(sp);
        }
        uint32_t total = 0;
        int lost = 0;
        for (int r = 0; r < ROUNDS; r++)
            for (int t = 0; t < KT; t++) {
                if (l.seen[r][t] < l.acked[r][t]) lost++;
                total += l.acked[r][t];
            }
        fprintf(stderr, "   %s: %u acknowledged records, %d delivered by the child, %d SIGKILLs\n",
                mode ? "batch" : "always", total, child_drained, kills);
        CHECK_EQ_INT(lost, 0);
        CHECK_EQ_INT(l.disorder, 0);
        CHECK(total > 0);
    }
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(tmpl, sizeof tmpl, "%s/pc-spool-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    base = mkdtemp(tmpl);
    if (!base) return 1;
    unsigned seed =
        getenv("PC_TEST_SEED") ? (unsigned)atoi(getenv("PC_TEST_SEED")) : (unsigned)time(NULL);
    fprintf(stderr, "seed %u (PC_TEST_SEED)\n", seed);
    srand(seed);
    RUN(test_config_errors);
    RUN(test_lock);
    RUN(test_order_across_segments_and_restarts);
    RUN(test_ack_persists);
    RUN(test_full_then_acks_free_space);
    RUN(test_torn_tails);
    RUN(test_flipped_byte_mid_segment);
    RUN(test_read_ahead);
    RUN(test_concurrent_appenders_and_drainer);
    RUN(test_disk_error_keeps_spool_consistent);
    RUN(test_sigkill_at_random_moments);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", base);
    return CHECK_DONE();
}
