/*
 * spool.h - the disk spool: a persistent FIFO of opaque records.
 *
 * Data flow: an exporter (kafka, clickhouse) whose destination does not
 * acknowledge in time appends the encoded batch here and answers 200 once
 * pc_spool_append returned 0 ("200" = in Kafka or on this disk). One drainer
 * thread replays the spool in order (peek and peek_next to read ahead, send,
 * ack in order) when the destination is back. Records are at-least-once: a record whose ack was not yet persisted is
 * delivered again after a crash; a record appended durably is never lost.
 *
 * On-disk format, version 1 (all integers little-endian):
 *   <dir>/lock                  flock'ed by the process that owns the spool
 *   <dir>/cursor                two 32-byte slots, written alternately:
 *                               magic "PCSPCUR1" | seq u64 | segment u64 |
 *                               offset u32 | crc32 u32 (of the 28 bytes before)
 *                               the valid slot with the higher seq is the
 *                               acknowledged position (next record to deliver)
 *   <dir>/<%020llu>.seg         segment files, numbered upwards:
 *     header (16 bytes)         magic "PCSPOOL\0" | version u32 (= 1) |
 *                               crc32 u32 of the 12 bytes before
 *     record*                   length u32 | crc32 u32 | payload (length bytes)
 *                               the crc32 (zlib's) covers the 4 length bytes
 *                               and the payload
 * A later format bumps the version in the segment header; a spool holding a
 * segment newer than this build refuses to open instead of misreading it.
 *
 * Recovery on open: every segment is scanned. A torn tail (a record running
 * past the end of the file, or a bad record followed by nothing but zeros) is
 * truncated away; a bad record with data after it is corruption: it is logged,
 * the rest of that segment is skipped and counted (pc_spool_stats). Appends
 * after an open always go to a new segment.
 *
 * Thread-safety: pc_spool_append from any number of threads; peek/ack from one
 * drainer thread at a time (it may run concurrently with appenders);
 * stats from anywhere.
 */
#ifndef PC_SPOOL_H
#define PC_SPOOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct pc_spool pc_spool;

#define PC_SPOOL_FORMAT_VERSION 1u
#define PC_SPOOL_DEFAULT_SEGMENT_SIZE ((uint64_t)16 << 20)
/* The largest record (payload bytes) and the largest segment size accepted. */
#define PC_SPOOL_MAX_RECORD ((size_t)256 << 20)
#define PC_SPOOL_MAX_SEGMENT_SIZE ((uint64_t)1 << 30)
/* The most records a drainer may have read ahead and not yet acknowledged. */
#define PC_SPOOL_MAX_AHEAD 1024

typedef enum pc_spool_fsync {
    PC_SPOOL_FSYNC_ALWAYS = 0, /* each append runs its own fdatasync before returning
                                  (under the spool's lock: appends are serialized) */
    PC_SPOOL_FSYNC_BATCH,      /* group commit: concurrent appenders share one fdatasync,
                                  each returns only after one that covers its record */
} pc_spool_fsync;

typedef struct pc_spool_config {
    const char *directory; /* created (with parents) when missing; borrowed during create */
    uint64_t max_size;     /* bytes on disk (segment files, headers included); > 0 */
    pc_spool_fsync fsync;
    /* Segment files roll at this size. 0 = the default: 16 MiB, or max_size/4
     * when that is smaller (space comes back one whole segment at a time, so a
     * spool needs several). An explicit value must be at most max_size/2. */
    uint64_t segment_size;
} pc_spool_config;

/* Results of append and peek (0 is success). */
enum {
    PC_SPOOL_EMPTY = 1,   /* peek: nothing pending */
    PC_SPOOL_FULL = -2,   /* append: would exceed max_size; nothing was written (retry later) */
    PC_SPOOL_IO = -3,     /* a disk error; pc_spool_error says which; the spool stays consistent */
    PC_SPOOL_TOOBIG = -4, /* append: the record can never fit (over PC_SPOOL_MAX_RECORD or
                             max_size); a permanent error */
};

typedef struct pc_spool_stats {
    uint64_t records;         /* appended and not yet acknowledged */
    uint64_t bytes;           /* their payload bytes */
    uint64_t disk_bytes;      /* the size of all segment files (what max_size bounds) */
    uint64_t segments;        /* segment files on disk */
    uint64_t corrupt;         /* corruptions found (each skipped the rest of a segment) */
    uint64_t skipped_bytes;   /* bytes skipped because of them */
    uint64_t truncated_bytes; /* torn-tail bytes truncated on open */
    uint64_t fsyncs;          /* fdatasync calls for records (group commit shares them) */
} pc_spool_stats;

/*
 * Opens the spool in cfg->directory, creating it when missing, and recovers it
 * (see above). Returns NULL with a message in |err| when the configuration is
 * invalid (naming the field), the directory is held by another spool (flock,
 * this process included) or a disk error stops recovery.
 */
pc_spool *pc_spool_create(const pc_spool_config *cfg, char *err, size_t errlen);
/* Closes the spool and releases the directory. Accepts NULL. No append, peek
 * or ack may be running. Nothing on disk is removed. */
void pc_spool_destroy(pc_spool *sp);

/*
 * Appends the |n| bytes at |p| (copied; n may be 0) as one record. Returns 0
 * once the record is durable (an fdatasync covering it returned), PC_SPOOL_FULL,
 * PC_SPOOL_TOOBIG, or PC_SPOOL_IO (the record is not counted as stored; it may
 * still be delivered once, which at-least-once allows). Thread-safe.
 */
int pc_spool_append(pc_spool *sp, const void *p, size_t n);

/*
 * The oldest unacknowledged durable record: 0 with *|p|, *|n| and *|id| set,
 * PC_SPOOL_EMPTY when there is none, PC_SPOOL_IO on a read error. *|p| is
 * borrowed from the spool: valid until the next peek, ack or destroy (copy it
 * to keep it longer). Peeking twice without an ack returns the same record:
 * a peek forgets what pc_spool_peek_next read ahead. Drainer thread only.
 */
int pc_spool_peek(pc_spool *sp, const void **p, size_t *n, uint64_t *id);
/*
 * Reads ahead: the record after the last one peek or peek_next returned (the
 * oldest, when nothing was read since the last peek or since everything read
 * was acknowledged), so a drainer can have several records in flight. Same
 * results and borrowing as pc_spool_peek; PC_SPOOL_EMPTY also when
 * PC_SPOOL_MAX_AHEAD records are read and not yet acknowledged. Drainer thread
 * only.
 */
int pc_spool_peek_next(pc_spool *sp, const void **p, size_t *n, uint64_t *id);
/*
 * Acknowledges the oldest record read and not yet acknowledged, which must
 * have |id| (acks are in order: any other id is refused with -1). The position
 * is written to the cursor file at once (without fsync: it survives a crash of
 * the process; after a power loss the record may come again). A segment whose
 * records are all acknowledged is deleted. Returns 0, -1 (wrong id) or
 * PC_SPOOL_IO.
 */
int pc_spool_ack(pc_spool *sp, uint64_t id);

void pc_spool_get_stats(pc_spool *sp, pc_spool_stats *out);
/* Copies the last disk error as a message ("" when none) into |buf|; returns
 * |buf|. Thread-safe. */
const char *pc_spool_error(pc_spool *sp, char *buf, size_t len);
/* Parses the config value of fsync: "always" or "batch"; -1 for anything else. */
int pc_spool_fsync_parse(const char *s);
/* A short name for a result code ("ok", "full", "io", ...). */
const char *pc_spool_strerror(int rc);

#endif
