/*
 * fuzz_spool.c - fuzz target of the disk spool's recovery and reading
 * (spool.h) and of the kafka exporter's spooled records (kafka_record.h): what
 * a gateway reads back from its disk after a crash, a torn write or damage.
 *
 * Input: one selector byte, then the bytes of a segment file. Selector bit 0:
 * a valid segment header is put before the bytes (to get past the header
 * check); bit 1: the drainer reads ahead (peek_next windows of 1 + bits 2..4)
 * instead of peek/ack one at a time. The file is recovered by
 * pc_spool_create, every record is read and acknowledged, each payload is
 * walked with pc_kafka_record_next, and an append after recovery must come
 * back. Checks: nothing pending after the drain; the appended record is read
 * back whole; sanitizers see no overread.
 */
#include "roundtrip.h"

#include "exporters/kafka_record.h"
#include "log.h"
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];

static void write_all(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n)) abort();
    close(fd);
}

/* Empties the spool directory (segments, cursor; the lock file stays). */
static void clear(void)
{
    DIR *d = opendir(dir);
    if (!d) abort();
    struct dirent *e;
    char path[600];
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".seg") || !strcmp(e->d_name, "cursor")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
}

/* At exit: the spool directory and everything in it, so runs leave nothing in /tmp. */
static void remove_dir(void)
{
    clear();
    char path[600];
    snprintf(path, sizeof path, "%s/lock", dir);
    unlink(path);
    rmdir(dir);
}

static void walk_record(const void *p, size_t n)
{
    size_t pos = 0;
    pc_kafka_msg m;
    int r;
    while ((r = pc_kafka_record_next(p, n, &pos, &m)) > 0)
        FUZZ_CHECK(m.value + m.len <= (const char *)p + n, "message past the record");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!dir[0]) {
        pc_log_set_level(PC_LOG_ERROR); /* recovery's warnings would flood the output */
        snprintf(dir, sizeof dir, "/tmp/pc-fuzz-spool-%d", (int)getpid());
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) abort();
        atexit(remove_dir);
    }
    clear();
    unsigned sel = data[0];
    uint8_t *file = malloc(size + 16);
    size_t n = 0;
    if (sel & 1) {
        memcpy(file, "PCSPOOL\0", 8);
        uint32_t v = PC_SPOOL_FORMAT_VERSION;
        memcpy(file + 8, &v, 4);
        uint32_t c = (uint32_t)crc32(0L, file, 12);
        memcpy(file + 12, &c, 4);
        n = 16;
    }
    memcpy(file + n, data + 1, size - 1);
    n += size - 1;
    char path[400];
    snprintf(path, sizeof path, "%.256s/%020llu.seg", dir, 1ULL);
    write_all(path, file, n);
    free(file);

    char err[256];
    pc_spool_config cfg = {dir, 1 << 20, PC_SPOOL_FSYNC_BATCH, 0};
    pc_spool *sp = pc_spool_create(&cfg, err, sizeof err);
    if (!sp) {
        FUZZ_CHECK(err[0], "refused without a reason");
        return 0;
    }
    int window = 1 + (int)((sel >> 2) & 7);
    for (int rounds = 0; rounds < 100000; rounds++) {
        const void *p;
        size_t len;
        uint64_t ids[8];
        int k = 0, rc = 0;
        while (k < ((sel & 2) ? window : 1)) {
            rc = k == 0 ? pc_spool_peek(sp, &p, &len, &ids[k])
                        : pc_spool_peek_next(sp, &p, &len, &ids[k]);
            if (rc) break;
            walk_record(p, len);
            k++;
        }
        for (int i = 0; i < k; i++)
            FUZZ_CHECK(pc_spool_ack(sp, ids[i]) == 0, "ack %d of %d refused", i, k);
        if (!k) {
            FUZZ_CHECK(rc == PC_SPOOL_EMPTY || rc == PC_SPOOL_IO, "peek: %d", rc);
            break;
        }
    }
    pc_spool_stats st;
    pc_spool_get_stats(sp, &st);
    FUZZ_CHECK(st.records == 0, "%llu records pending after the drain",
               (unsigned long long)st.records);
    static const char rec[] = "\x01\x01\x00\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00kyval";
    int arc = pc_spool_append(sp, rec, sizeof rec - 1);
    char why[256];
    FUZZ_CHECK(arc == 0, "append after recovery: %s (%s)", pc_spool_strerror(arc),
               pc_spool_error(sp, why, sizeof why));
    const void *p;
    size_t len;
    uint64_t id;
    FUZZ_CHECK(pc_spool_peek(sp, &p, &len, &id) == 0 && len == sizeof rec - 1 &&
                   memcmp(p, rec, len) == 0,
               "the appended record does not come back");
    walk_record(p, len);
    pc_spool_destroy(sp);
    return 0;
}
