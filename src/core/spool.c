/*
 * spool.c - the disk spool: a CRC-framed segment log with a cursor file.
 *
 * Sits under the kafka and clickhouse exporters (format and contracts in
 * spool.h). One mutex guards the metadata: the list of segments (oldest
 * first; the newest is the write segment while wfd is open), the write
 * position and the read cursor. File data is written under the mutex and
 * read without it (the drainer owns its fd and buffer).
 *
 * Why group commit looks like this: in BATCH mode an appender writes its
 * record under the mutex, then either becomes the one "syncer" (drops the
 * mutex, fdatasyncs, takes it back and completes every waiter whose record
 * was written before the sync started) or sleeps until a syncer completes
 * it. A roll (new segment) first waits for the syncer, then syncs the old
 * segment itself, so an fd is never closed under a running fdatasync and a
 * new segment exists only once the previous one is durable: after a power
 * loss only the newest segment can have a torn tail.
 *
 * Why the drainer only sees durable records: the reader stops at
 * durable_end in the write segment, so nothing is sent downstream that a
 * crash could take back before the appender's answer.
 */
#include "spool.h"

#include "files.h"
#include "log.h"
#include "mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#define HDR 16u   /* segment header */
#define FRAME 8u  /* record framing: length + crc */
#define CSLOT 32u /* one cursor slot */
static const char SEG_MAGIC[8] = {'P', 'C', 'S', 'P', 'O', 'O', 'L', 0};
static const char CUR_MAGIC[8] = {'P', 'C', 'S', 'P', 'C', 'U', 'R', '1'};

typedef struct seg {
    uint64_t num;
    uint64_t end;     /* end of the valid records */
    uint64_t size;    /* bytes of the file on disk */
    uint64_t records; /* pending (unacknowledged) records in it */
    uint64_t bytes;   /* their payload bytes */
    uint64_t skip_from; /* a corrupt record found here by the reader; 0 = none */
} seg;

/* A record the drainer has read and not yet acknowledged (oldest first). */
typedef struct ahead {
    uint64_t num, off, next;
    size_t len;
} ahead;

typedef struct waiter {
    uint64_t seq;
    int done, rc;
    struct waiter *next;
} waiter;

struct pc_spool {
    char *dir;
    uint64_t max_size, seg_size;
    pc_spool_fsync mode;
    int dir_fd, lock_fd, cursor_fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    seg *segs; /* oldest first */
    size_t nsegs, cap;
    uint64_t next_num;
    /* writer: the write segment is segs[nsegs-1] while wfd >= 0 */
    int wfd, wbroken, syncing;
    uint64_t durable_end, wseq, synced_seq;
    waiter *waiters;
    /* reader: the cursor is (rseg, roff); rseg == segs[0].num when nsegs > 0 */
    uint64_t rseg, roff, cursor_seq;
    int rfd;
    uint64_t rfd_num;
    unsigned char *rbuf;
    size_t rcap;
    /* read-ahead: the next record to read is (la_num, la_off); the records read
     * and not yet acknowledged are ahd[ahd_head ..+ ahd_n) (a ring) */
    uint64_t la_num, la_off;
    ahead ahd[PC_SPOOL_MAX_AHEAD];
    size_t ahd_head, ahd_n;
    pc_spool_stats st;
    char errmsg[256];
};

/* ---- little helpers ------------------------------------------------------------------ */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}
static uint32_t crc(const void *a, size_t an, const void *b, size_t bn)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, a, (uInt)an);
    while (bn) { /* zlib takes uInt lengths */
        uInt k = bn > (1u << 30) ? (1u << 30) : (uInt)bn;
        c = crc32(c, b, k);
        b = (const unsigned char *)b + k;
        bn -= k;
    }
    return (uint32_t)c;
}

/* Records a disk error (mu held or single-threaded) and logs it once. */
static void fail(pc_spool *sp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(pc_spool *sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sp->errmsg, sizeof sp->errmsg, fmt, ap);
    va_end(ap);
    pc_log(PC_LOG_ERROR, "spool", "%s: %s", sp->dir, sp->errmsg);
}

static void seg_path(const pc_spool *sp, uint64_t num, char *out, size_t len)
{
    snprintf(out, len, "%s/%020llu.seg", sp->dir, (unsigned long long)num);
}

static int full_pwrite(int fd, const struct iovec *iov, int cnt, uint64_t off)
{
    struct iovec v[2];
    memcpy(v, iov, sizeof(struct iovec) * (size_t)cnt);
    int i = 0;
    while (i < cnt) {
        ssize_t w = pwritev(fd, v + i, cnt - i, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        off += (uint64_t)w;
        while (i < cnt && (size_t)w >= v[i].iov_len)
            w -= (ssize_t)v[i++].iov_len;
        if (i < cnt) {
            v[i].iov_base = (char *)v[i].iov_base + w;
            v[i].iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Reads exactly |n| bytes at |off|: 0, 1 at end of file, -1 on error. */
static int full_pread(int fd, void *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) return 1;
        p = (char *)p + r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static void grow_rbuf(pc_spool *sp, size_t n)
{
    if (n <= sp->rcap) return;
    sp->rcap = n < 4096 ? 4096 : n;
    free(sp->rbuf);
    sp->rbuf = pc_xmalloc(sp->rcap);
}

/* ---- the cursor file ------------------------------------------------------------------ */

static int write_cursor(pc_spool *sp)
{
    unsigned char b[CSLOT];
    uint64_t seq = ++sp->cursor_seq;
    memcpy(b, CUR_MAGIC, 8);
    put64(b + 8, seq);
    put64(b + 16, sp->rseg);
    put32(b + 24, (uint32_t)sp->roff);
    put32(b + 28, crc(b, 28, NULL, 0));
    struct iovec v = {b, CSLOT};
    if (full_pwrite(sp->cursor_fd, &v, 1, (seq & 1) * CSLOT) != 0) {
        fail(sp, "writing the cursor file: %s", strerror(errno));
        return PC_SPOOL_IO;
    }
    return 0;
}

/* Reads the newest valid slot: 1 with *segn and *off set, 0 when none is valid. */
static int read_cursor(pc_spool *sp, uint64_t *segn, uint64_t *off)
{
    unsigned char b[2 * CSLOT];
    memset(b, 0, sizeof b);
    ssize_t r = pread(sp->cursor_fd, b, sizeof b, 0);
    int found = 0;
    for (int i = 0; r > 0 && i < 2; i++) {
        const unsigned char *s = b + i * CSLOT;
        if (memcmp(s, CUR_MAGIC, 8) != 0 || get32(s + 28) != crc(s, 28, NULL, 0)) continue;
        uint64_t seq = get64(s + 8);
        if (found && seq <= sp->cursor_seq) continue;
        found = 1;
        sp->cursor_seq = seq;
        *segn = get64(s + 16);
        *off = get32(s + 24);
    }
    return found;
}

/* ---- segments -------------------------------------------------------------------------- */

static int is_write_seg(const pc_spool *sp, size_t i)
{
    return sp->wfd >= 0 && i == sp->nsegs - 1;
}

/* Deletes the segments the cursor has passed and moves the cursor to the next
 * one. mu held. */
static void advance(pc_spool *sp)
{
    for (;;) {
        if (sp->nsegs && sp->segs[0].skip_from && sp->roff >= sp->segs[0].skip_from)
            sp->roff = sp->segs[0].end; /* the rest was corrupt: skipped */
        if (!sp->nsegs || is_write_seg(sp, 0) || sp->roff < sp->segs[0].end) break;
        seg s = sp->segs[0];
        memmove(sp->segs, sp->segs + 1, (sp->nsegs - 1) * sizeof(seg));
        sp->nsegs--;
        sp->rseg = sp->nsegs ? sp->segs[0].num : sp->next_num;
        sp->roff = HDR;
        /* the cursor first: a crash in between leaves an acknowledged file, not a gap */
        write_cursor(sp);
        char path[4096];
        seg_path(sp, s.num, path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT)
            pc_log(PC_LOG_WARN, "spool", "%s: cannot delete: %s", path, strerror(errno));
        sp->st.disk_bytes -= s.size;
        sp->st.records -= s.records;
        sp->st.bytes -= s.bytes;
        if (sp->rfd >= 0 && sp->rfd_num == s.num) {
            close(sp->rfd);
            sp->rfd = -1;
        }
    }
}

static seg *push_seg(pc_spool *sp, uint64_t num)
{
    if (sp->nsegs == sp->cap) {
        sp->cap = sp->cap ? 2 * sp->cap : 16;
        sp->segs = pc_xrealloc(sp->segs, sp->cap * sizeof(seg));
    }
    seg *s = &sp->segs[sp->nsegs++];
    memset(s, 0, sizeof *s);
    s->num = num;
    return s;
}

/* Completes the BATCH waiters whose records are at or below |seq|. mu held. */
static void complete(pc_spool *sp, uint64_t seq, int rc)
{
    for (waiter **w = &sp->waiters; *w;) {
        if ((*w)->seq <= seq) {
            (*w)->done = 1;
            (*w)->rc = rc;
            *w = (*w)->next;
        } else {
            w = &(*w)->next;
        }
    }
    if (seq > sp->synced_seq) sp->synced_seq = seq;
    pthread_cond_broadcast(&sp->cv);
}

/* Seals the write segment (after an fdatasync covering its records) and
 * starts a new one whose header is durable. mu held. */
static int roll(pc_spool *sp)
{
    while (sp->syncing)
        pthread_cond_wait(&sp->cv, &sp->mu);
    if (sp->wfd >= 0) {
        seg *w = &sp->segs[sp->nsegs - 1];
        if (sp->synced_seq < sp->wseq) {
            int r = fdatasync(sp->wfd);
            sp->st.fsyncs++;
            if (r != 0)
                fail(sp, "fdatasync segment %llu: %s", (unsigned long long)w->num, strerror(errno));
            complete(sp, sp->wseq, r == 0 ? 0 : PC_SPOOL_IO);
        }
        close(sp->wfd);
        sp->wfd = -1;
        sp->wbroken = 0;
        advance(sp); /* the old segment may be all acknowledged already */
    }
    char path[4096];
    uint64_t num = sp->next_num;
    seg_path(sp, num, path, sizeof path);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        fail(sp, "creating %s: %s", path, strerror(errno));
        return PC_SPOOL_IO;
    }
    unsigned char h[HDR];
    memcpy(h, SEG_MAGIC, 8);
    put32(h + 8, PC_SPOOL_FORMAT_VERSION);
    put32(h + 12, crc(h, 12, NULL, 0));
    struct iovec v = {h, HDR};
    if (full_pwrite(fd, &v, 1, 0) != 0 || fdatasync(fd) != 0 || fsync(sp->dir_fd) != 0) {
        fail(sp, "starting %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return PC_SPOOL_IO;
    }
    sp->next_num++;
    if (sp->nsegs == 0) {
        sp->rseg = num;
        sp->roff = HDR;
    }
    seg *s = push_seg(sp, num);
    s->end = s->size = HDR;
    sp->st.disk_bytes += HDR;
    sp->wfd = fd;
    sp->durable_end = HDR;
    return 0;
}

/* ---- recovery -------------------------------------------------------------------------- */

static int all_zero(int fd, uint64_t off, uint64_t end)
{
    unsigned char b[4096];
    while (off < end) {
        size_t n = end - off > sizeof b ? sizeof b : (size_t)(end - off);
        if (full_pread(fd, b, n, off) != 0) return 0;
        for (size_t i = 0; i < n; i++)
            if (b[i]) return 0;
        off += n;
    }
    return 1;
}

/*
 * Scans segment |num| (|last|: the newest file, the only one that can be torn)
 * and appends it to the list. Records from *|cur_off| on count as pending
 * when |num| is the cursor's segment; *|cur_off| becomes the greatest record
 * boundary at or below it. Returns 0 or -1 with |err| set (a newer format or
 * an unreadable file).
 */
static int scan_seg(pc_spool *sp, uint64_t num, int last, int is_cur, uint64_t *cur_off, char *err,
                    size_t errlen)
{
    char path[4096];
    seg_path(sp, num, path, sizeof path);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat stt;
    if (fd < 0 || fstat(fd, &stt) != 0) {
        snprintf(err, errlen, "spool: opening %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    uint64_t size = (uint64_t)stt.st_size;
    unsigned char h[HDR];
    if (size < HDR) { /* a crash while the segment was being created: it held nothing */
        close(fd);
        unlink(path);
        pc_log(PC_LOG_WARN, "spool", "%s: removed a segment torn at creation", path);
        return 0;
    }
    if (last && all_zero(fd, 0, HDR)) { /* created, header not yet durable: a power loss */
        close(fd);
        unlink(path);
        pc_log(PC_LOG_WARN, "spool", "%s: removed a segment torn at creation", path);
        return 0;
    }
    seg *s = push_seg(sp, num);
    s->end = HDR;
    s->size = size;
    if (full_pread(fd, h, HDR, 0) != 0 || memcmp(h, SEG_MAGIC, 8) != 0 ||
        get32(h + 12) != crc(h, 12, NULL, 0) || get32(h + 8) == 0) {
        pc_log(PC_LOG_ERROR, "spool", "%s: bad segment header; %llu bytes skipped", path,
               (unsigned long long)size);
        sp->st.corrupt++;
        sp->st.skipped_bytes += size - HDR;
        sp->st.disk_bytes += size; /* until it is deleted like any consumed segment */
        close(fd);
        return 0;
    }
    if (get32(h + 8) > PC_SPOOL_FORMAT_VERSION) {
        snprintf(err, errlen, "spool: %s has format version %u, newer than this build's (%u)", path,
                 get32(h + 8), PC_SPOOL_FORMAT_VERSION);
        close(fd);
        return -1;
    }
    uint64_t off = HDR, boundary = HDR;
    unsigned char f[FRAME];
    while (off < size) {
        const char *why = NULL;
        uint32_t len = 0;
        if (size - off < FRAME)
            why = "partial frame";
        else if (full_pread(fd, f, FRAME, off) != 0)
            why = "unreadable frame";
        else if ((len = get32(f)) > PC_SPOOL_MAX_RECORD || FRAME + (uint64_t)len > size - off)
            why = "record past the end";
        else {
            grow_rbuf(sp, len);
            if (full_pread(fd, sp->rbuf, len, off + FRAME) != 0)
                why = "unreadable record";
            else if (crc(f, 4, sp->rbuf, len) != get32(f + 4))
                why = "bad crc";
        }
        if (why) {
            int torn = last && (strcmp(why, "bad crc") != 0 || off + FRAME + len == size ||
                                all_zero(fd, off, size));
            if (torn) {
                if (ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0) {
                    snprintf(err, errlen, "spool: truncating %s: %s", path, strerror(errno));
                    close(fd);
                    return -1;
                }
                pc_log(PC_LOG_WARN, "spool", "%s: torn tail (%s) of %llu bytes truncated at %llu",
                       path, why, (unsigned long long)(size - off), (unsigned long long)off);
                sp->st.truncated_bytes += size - off;
                s->size = off;
            } else {
                pc_log(PC_LOG_ERROR, "spool", "%s: corrupt record (%s) at %llu; %llu bytes skipped",
                       path, why, (unsigned long long)off, (unsigned long long)(size - off));
                sp->st.corrupt++;
                sp->st.skipped_bytes += size - off;
            }
            break;
        }
        if (is_cur && off <= *cur_off) boundary = off;
        if (!is_cur || off >= *cur_off) {
            s->records++;
            s->bytes += len;
        }
        off += FRAME + len;
        s->end = off;
    }
    if (is_cur) *cur_off = *cur_off >= s->end ? s->end : boundary;
    sp->st.records += s->records;
    sp->st.bytes += s->bytes;
    sp->st.disk_bytes += s->size;
    close(fd);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int recover(pc_spool *sp, char *err, size_t errlen)
{
    DIR *d = opendir(sp->dir);
    if (!d) {
        snprintf(err, errlen, "spool: directory %s: %s", sp->dir, strerror(errno));
        return -1;
    }
    uint64_t *nums = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 24 || strcmp(e->d_name + 20, ".seg") != 0 || strspn(e->d_name, "0123456789") != 20)
            continue;
        if (n == cap) nums = pc_xrealloc(nums, (cap = cap ? 2 * cap : 16) * sizeof *nums);
        nums[n++] = strtoull(e->d_name, NULL, 10);
    }
    closedir(d);
    if (n) qsort(nums, n, sizeof *nums, cmp_u64);

    uint64_t cseg = 0, coff = HDR;
    int have_cur = read_cursor(sp, &cseg, &coff);
    if (!have_cur) cseg = n ? nums[0] : 0;
    if (coff < HDR) coff = HDR;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (nums[i] < cseg) { /* acknowledged; a crash came before its deletion */
            char path[4096];
            seg_path(sp, nums[i], path, sizeof path);
            unlink(path);
            continue;
        }
        rc = scan_seg(sp, nums[i], i == n - 1, nums[i] == cseg, &coff, err, errlen);
    }
    free(nums);
    if (rc != 0) return -1;
    sp->next_num = sp->nsegs ? sp->segs[sp->nsegs - 1].num + 1 : 0;
    if (cseg > sp->next_num) sp->next_num = cseg;
    if (sp->nsegs && sp->segs[0].num == cseg) {
        sp->rseg = cseg;
        sp->roff = coff;
    } else {
        sp->rseg = sp->nsegs ? sp->segs[0].num : sp->next_num;
        sp->roff = HDR;
    }
    sp->st.segments = sp->nsegs;
    advance(sp);
    return write_cursor(sp) == 0 ? 0 : (snprintf(err, errlen, "spool: %s", sp->errmsg), -1);
}

/* ---- create / destroy ------------------------------------------------------------------ */

pc_spool *pc_spool_create(const pc_spool_config *cfg, char *err, size_t errlen)
{
    if (!cfg->directory || !*cfg->directory) {
        snprintf(err, errlen, "spool.directory: required");
        return NULL;
    }
    if (cfg->max_size < 4096) {
        snprintf(err, errlen, "spool.max_size: must be at least 4096 bytes");
        return NULL;
    }
    if (cfg->fsync != PC_SPOOL_FSYNC_ALWAYS && cfg->fsync != PC_SPOOL_FSYNC_BATCH) {
        snprintf(err, errlen, "spool.fsync: must be always or batch");
        return NULL;
    }
    uint64_t segsz = cfg->segment_size;
    if (segsz == 0) {
        segsz = PC_SPOOL_DEFAULT_SEGMENT_SIZE;
        if (segsz > cfg->max_size / 4) segsz = cfg->max_size / 4;
    } else if (segsz > cfg->max_size / 2 || segsz > PC_SPOOL_MAX_SEGMENT_SIZE || segsz < 64) {
        snprintf(err, errlen,
                 "spool.segment_size: must be 64 bytes to 1 GiB and at most max_size/2");
        return NULL;
    }
    pc_spool *sp = pc_xcalloc(1, sizeof *sp);
    sp->dir = pc_xstrdup(cfg->directory);
    sp->max_size = cfg->max_size;
    sp->seg_size = segsz;
    sp->mode = cfg->fsync;
    sp->dir_fd = sp->lock_fd = sp->cursor_fd = sp->wfd = sp->rfd = -1;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_cond_init(&sp->cv, NULL);
    char path[4096];
    char why[512];
    if (pc_mkdirs(sp->dir, 0750, why, sizeof why) < 0) {
        snprintf(err, errlen, "spool.directory: %s", why);
        goto fail;
    }
    sp->dir_fd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(path, sizeof path, "%s/lock", sp->dir);
    if (sp->dir_fd >= 0) sp->lock_fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (sp->lock_fd < 0) {
        snprintf(err, errlen, "spool.directory: cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "spool.directory: %s is in use by another spool (%s)", sp->dir,
                 strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof path, "%s/cursor", sp->dir);
    sp->cursor_fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (sp->cursor_fd < 0) {
        snprintf(err, errlen, "spool.directory: cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (recover(sp, err, errlen) != 0) goto fail;
    return sp;
fail:
    pc_spool_destroy(sp);
    return NULL;
}

void pc_spool_destroy(pc_spool *sp)
{
    if (!sp) return;
    if (sp->wfd >= 0) close(sp->wfd);
    if (sp->rfd >= 0) close(sp->rfd);
    if (sp->cursor_fd >= 0) close(sp->cursor_fd);
    if (sp->lock_fd >= 0) close(sp->lock_fd); /* releases the flock */
    if (sp->dir_fd >= 0) close(sp->dir_fd);
    pthread_mutex_destroy(&sp->mu);
    pthread_cond_destroy(&sp->cv);
    free(sp->segs);
    free(sp->rbuf);
    free(sp->dir);
    free(sp);
}

/* ---- append ---------------------------------------------------------------------------- */

/* Writes one record at the end of the write segment. mu held. */
static int write_record(pc_spool *sp, const void *p, size_t n)
{
    uint64_t framed = FRAME + (uint64_t)n;
    seg *w;
    int need_roll;
    for (;;) { /* a roll waits for the syncer: decide once it is done, not before */
        w = sp->wfd >= 0 ? &sp->segs[sp->nsegs - 1] : NULL;
        need_roll = !w || sp->wbroken || (w->end > HDR && w->end + framed > sp->seg_size);
        if (!sp->syncing || !need_roll) break;
        pthread_cond_wait(&sp->cv, &sp->mu);
    }
    if (sp->st.disk_bytes + framed + (need_roll ? HDR : 0) > sp->max_size) {
        /* a write segment that is all acknowledged can go: roll it away */
        if (w && !sp->syncing && sp->nsegs == 1 && sp->roff >= w->end && w->end > HDR &&
            sp->st.disk_bytes - w->size + HDR + framed <= sp->max_size)
            need_roll = 1;
        else
            return PC_SPOOL_FULL;
    }
    if (need_roll) {
        int rc = roll(sp);
        if (rc != 0) return rc;
        w = &sp->segs[sp->nsegs - 1];
        if (sp->st.disk_bytes + framed > sp->max_size) return PC_SPOOL_FULL;
    }
    unsigned char f[FRAME];
    put32(f, (uint32_t)n);
    put32(f + 4, crc(f, 4, p, n));
    struct iovec v[2] = {{f, FRAME}, {(void *)p, n}};
    if (full_pwrite(sp->wfd, v, n ? 2 : 1, w->end) != 0) {
        fail(sp, "writing segment %llu: %s", (unsigned long long)w->num, strerror(errno));
        if (ftruncate(sp->wfd, (off_t)w->end) != 0) { /* garbage stays past w->end */
            sp->wbroken = 1;
            sp->st.disk_bytes += w->end + framed - w->size;
            w->size = w->end + framed;
        }
        return PC_SPOOL_IO;
    }
    w->end += framed;
    sp->st.disk_bytes += w->end - w->size;
    w->size = w->end;
    w->records++;
    w->bytes += n;
    sp->st.records++;
    sp->st.bytes += n;
    sp->wseq++;
    return 0;
}

int pc_spool_append(pc_spool *sp, const void *p, size_t n)
{
    if (n > PC_SPOOL_MAX_RECORD || HDR + FRAME + (uint64_t)n > sp->max_size) return PC_SPOOL_TOOBIG;
    pthread_mutex_lock(&sp->mu);
    int rc = write_record(sp, p, n);
    if (rc != 0) goto out;
    uint64_t end = sp->segs[sp->nsegs - 1].end;
    if (sp->mode == PC_SPOOL_FSYNC_ALWAYS) {
        sp->st.fsyncs++;
        if (fdatasync(sp->wfd) != 0) {
            fail(sp, "fdatasync: %s", strerror(errno));
            sp->wbroken = 1; /* the next append starts a new segment */
            rc = PC_SPOOL_IO;
        } else {
            sp->durable_end = end;
            sp->synced_seq = sp->wseq;
        }
        goto out;
    }
    waiter me = {sp->wseq, 0, 0, sp->waiters};
    sp->waiters = &me;
    while (!me.done) {
        if (sp->syncing) {
            pthread_cond_wait(&sp->cv, &sp->mu);
            continue;
        }
        /* become the syncer for everything written so far */
        sp->syncing = 1;
        uint64_t target = sp->wseq, tend = sp->segs[sp->nsegs - 1].end;
        int fd = sp->wfd;
        pthread_mutex_unlock(&sp->mu);
        int r = fdatasync(fd);
        int e = errno;
        pthread_mutex_lock(&sp->mu);
        sp->syncing = 0;
        sp->st.fsyncs++;
        if (r == 0) {
            if (tend > sp->durable_end) sp->durable_end = tend;
        } else {
            fail(sp, "fdatasync: %s", strerror(e));
            sp->wbroken = 1;
        }
        complete(sp, target, r == 0 ? 0 : PC_SPOOL_IO);
    }
    rc = me.rc;
out:
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

/* ---- drain ----------------------------------------------------------------------------- */

/* Index in segs of segment |num|, or -1. mu held. */
static long seg_index(const pc_spool *sp, uint64_t num)
{
    for (size_t i = 0; i < sp->nsegs; i++)
        if (sp->segs[i].num == num) return (long)i;
    return -1;
}

/*
 * The reader found a corrupt record at |off| of segs[i]: the rest of that
 * segment is skipped (counted); the records before it that were read ahead
 * stay pending. The ack cursor jumps over the rest once it gets there
 * (advance, skip_from). mu held.
 */
static void skip_rest(pc_spool *sp, size_t i, uint64_t off, const char *why)
{
    seg *s = &sp->segs[i];
    pc_log(PC_LOG_ERROR, "spool", "%s: segment %llu: corrupt record (%s) at %llu; rest skipped",
           sp->dir, (unsigned long long)s->num, why, (unsigned long long)off);
    uint64_t k = 0, kb = 0;
    for (size_t j = 0; j < sp->ahd_n; j++) {
        const ahead *a = &sp->ahd[(sp->ahd_head + j) % PC_SPOOL_MAX_AHEAD];
        if (a->num == s->num) k++, kb += a->len;
    }
    sp->st.corrupt++;
    sp->st.skipped_bytes += s->end - off;
    sp->st.records -= s->records - k;
    sp->st.bytes -= s->bytes - kb;
    s->records = k;
    s->bytes = kb;
    if (is_write_seg(sp, i)) sp->wbroken = 1; /* the next append starts a new segment */
    s->skip_from = off;
    sp->la_off = s->end;
    advance(sp);
    write_cursor(sp);
}

/* Reads the record at the read-ahead position into rbuf and queues it as read
 * ahead. 0, PC_SPOOL_EMPTY or PC_SPOOL_IO. */
static int read_ahead(pc_spool *sp, const void **p, size_t *n, uint64_t *id)
{
    if (sp->ahd_n == PC_SPOOL_MAX_AHEAD) return PC_SPOOL_EMPTY;
    for (;;) {
        pthread_mutex_lock(&sp->mu);
        advance(sp);
        long i = seg_index(sp, sp->la_num);
        if (i < 0) { /* before the first segment (or none yet): start there */
            if (!sp->nsegs || sp->ahd_n) {
                pthread_mutex_unlock(&sp->mu);
                return PC_SPOOL_EMPTY;
            }
            sp->la_num = sp->segs[0].num;
            sp->la_off = sp->roff;
            i = 0;
        }
        uint64_t end = is_write_seg(sp, (size_t)i) ? sp->durable_end : sp->segs[i].end;
        if (sp->la_off >= end && !is_write_seg(sp, (size_t)i) && (size_t)i + 1 < sp->nsegs) {
            sp->la_num = sp->segs[i + 1].num; /* on to the next segment */
            sp->la_off = HDR;
            pthread_mutex_unlock(&sp->mu);
            continue;
        }
        uint64_t num = sp->la_num, off = sp->la_off;
        pthread_mutex_unlock(&sp->mu);
        if (off >= end) return PC_SPOOL_EMPTY;
        if (sp->rfd < 0 || sp->rfd_num != num) {
            char path[4096];
            seg_path(sp, num, path, sizeof path);
            if (sp->rfd >= 0) close(sp->rfd);
            sp->rfd = open(path, O_RDONLY | O_CLOEXEC);
            if (sp->rfd < 0) {
                pthread_mutex_lock(&sp->mu);
                fail(sp, "opening %s: %s", path, strerror(errno));
                pthread_mutex_unlock(&sp->mu);
                return PC_SPOOL_IO;
            }
            sp->rfd_num = num;
        }
        unsigned char f[FRAME];
        const char *why = NULL;
        uint32_t len = 0;
        int r = end - off < FRAME ? 1 : full_pread(sp->rfd, f, FRAME, off);
        if (r < 0) goto ioerr;
        if (r > 0 || (len = get32(f)) > end - off - FRAME)
            why = "record past the end";
        else {
            grow_rbuf(sp, len);
            r = full_pread(sp->rfd, sp->rbuf, len, off + FRAME);
            if (r < 0) goto ioerr;
            if (r > 0 || crc(f, 4, sp->rbuf, len) != get32(f + 4)) why = "bad crc";
        }
        pthread_mutex_lock(&sp->mu);
        if (!why) {
            *p = sp->rbuf;
            *n = len;
            *id = num << 32 | off;
            ahead *a = &sp->ahd[(sp->ahd_head + sp->ahd_n++) % PC_SPOOL_MAX_AHEAD];
            *a = (ahead){.num = num, .off = off, .next = off + FRAME + len, .len = len};
            sp->la_off = a->next;
            pthread_mutex_unlock(&sp->mu);
            return 0;
        }
        /* corrupted since it was written */
        i = seg_index(sp, num);
        if (i >= 0) skip_rest(sp, (size_t)i, off, why);
        pthread_mutex_unlock(&sp->mu);
    }
ioerr:
    pthread_mutex_lock(&sp->mu);
    fail(sp, "reading segment: %s", strerror(errno));
    pthread_mutex_unlock(&sp->mu);
    return PC_SPOOL_IO;
}

int pc_spool_peek(pc_spool *sp, const void **p, size_t *n, uint64_t *id)
{
    pthread_mutex_lock(&sp->mu);
    sp->ahd_n = 0; /* start over at the oldest unacknowledged record */
    sp->la_num = sp->nsegs ? sp->segs[0].num : sp->next_num;
    sp->la_off = sp->roff;
    pthread_mutex_unlock(&sp->mu);
    return read_ahead(sp, p, n, id);
}

int pc_spool_peek_next(pc_spool *sp, const void **p, size_t *n, uint64_t *id)
{
    if (!sp->ahd_n) return pc_spool_peek(sp, p, n, id);
    return read_ahead(sp, p, n, id);
}

int pc_spool_ack(pc_spool *sp, uint64_t id)
{
    pthread_mutex_lock(&sp->mu);
    ahead *a = &sp->ahd[sp->ahd_head];
    if (!sp->ahd_n || id != (a->num << 32 | a->off) || !sp->nsegs || sp->segs[0].num != a->num) {
        pthread_mutex_unlock(&sp->mu);
        return -1;
    }
    sp->ahd_head = (sp->ahd_head + 1) % PC_SPOOL_MAX_AHEAD;
    sp->ahd_n--;
    sp->roff = a->next;
    seg *s = &sp->segs[0];
    s->records--;
    s->bytes -= a->len;
    sp->st.records--;
    sp->st.bytes -= a->len;
    int rc = write_cursor(sp);
    advance(sp);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

/* ---- introspection --------------------------------------------------------------------- */

void pc_spool_get_stats(pc_spool *sp, pc_spool_stats *out)
{
    pthread_mutex_lock(&sp->mu);
    *out = sp->st;
    out->segments = sp->nsegs;
    pthread_mutex_unlock(&sp->mu);
}

const char *pc_spool_error(pc_spool *sp, char *buf, size_t len)
{
    pthread_mutex_lock(&sp->mu);
    snprintf(buf, len, "%s", sp->errmsg);
    pthread_mutex_unlock(&sp->mu);
    return buf;
}

int pc_spool_fsync_parse(const char *s)
{
    if (strcmp(s, "always") == 0) return PC_SPOOL_FSYNC_ALWAYS;
    if (strcmp(s, "batch") == 0) return PC_SPOOL_FSYNC_BATCH;
    return -1;
}

const char *pc_spool_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case PC_SPOOL_EMPTY:
        return "empty";
    case PC_SPOOL_FULL:
        return "full";
    case PC_SPOOL_IO:
        return "io";
    case PC_SPOOL_TOOBIG:
        return "too big";
    default:
        return "invalid";
    }
}
