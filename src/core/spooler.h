/*
 * spooler.h - an exporter's disk spool: its settings, the spool (spool.h) and
 * the drainer thread that replays it to the destination.
 *
 * Data flow: an exporter's consume() gives its destination at most
 * `spool.after` to acknowledge a batch. When it did not (or the destination is
 * known to be down), the exporter appends the batch, already encoded as one
 * record, with pc_spooler_append and answers PC_OK once that returned 0: "200"
 * means "at the destination or on this disk". The drainer thread reads up to
 * WINDOW records ahead, starts sending each (the exporter's begin function),
 * then collects the answers in order (its end function): a record answered
 * PC_OK is acknowledged in the spool; PC_DROP (it can never be delivered) is
 * logged and removed; at the first PC_RETRY the drainer collects the rest of
 * the window without acknowledging anything more, waits (RETRY_MIN_MS doubling
 * to RETRY_MAX_MS, cut short by pc_spooler_kick) and starts again at the
 * oldest record left. Records are at-least-once: a crash, or a retry after
 * later records of the window went through, sends a record again.
 *
 * Settings, embedded in an exporter's option table with PC_SPOOLER_OPTIONS:
 *   spool.directory  where the segment files live; empty (the default): no spool
 *   spool.max_size   bytes on disk at most (default 1GiB); a batch that does not
 *                    fit is refused (PC_SPOOL_FULL: the exporter answers retry)
 *   spool.fsync      always (an fdatasync per batch) or batch (the default:
 *                    concurrent batches share one fdatasync)
 *   spool.after      how long a batch waits for the destination before it is
 *                    spooled instead (default 2s; at most the exporter's timeout);
 *                    0 = spool first (an exporter with a flush function only,
 *                    see pc_spooler_create): every batch is appended and answered
 *                    once durable, and the drainer alone sends, so what reaches
 *                    the destination at once grows with the load, not with how
 *                    many clients wait (the clickhouse exporter's inserts)
 *
 * Thread-safety: every function may be called from any thread between create
 * and destroy, except that start, stop and destroy are not concurrent with
 * each other. The send function runs on the drainer thread only, one call at a
 * time.
 */
#ifndef PC_SPOOLER_H
#define PC_SPOOLER_H

#include "component.h"
#include "metrics.h"
#include "spool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_spooler_cfg {
    char *directory;
    int64_t max_size;
    char *fsync;
    int64_t after_ms;
} pc_spooler_cfg;

/* The option rows of a pc_spooler_cfg member |m| of the config struct |T|. */
#define PC_SPOOLER_OPTIONS(T, m)                                                                   \
    {"spool.directory", PC_OPT_STRING, "", offsetof(T, m.directory), 0, 0,                         \
     "disk spool directory for batches the destination did not take in time; empty = none"},       \
        {"spool.max_size", PC_OPT_SIZE, "1GiB", offsetof(T, m.max_size), 65536,                    \
         (int64_t)1 << 50, "most bytes the spool may hold on disk; past it batches get retry"},    \
        {"spool.fsync", PC_OPT_STRING, "batch", offsetof(T, m.fsync), 0, 0,                        \
         "always (fdatasync per batch) or batch (concurrent batches share one)"},                  \
    {                                                                                              \
        "spool.after", PC_OPT_DURATION, "2s", offsetof(T, m.after_ms), 0, 3600000,                 \
            "how long a batch waits for the destination before it is spooled"                      \
    }

/* Starts sending one spooled record (|rec| is only valid during the call: copy
 * what must outlive it). Returns a handle for end; NULL means "not sent, answer
 * retry" (the destination is known to be down). */
typedef void *(*pc_spooler_begin_fn)(void *ctx, const void *rec, size_t n);
/* Waits for the record |handle| (non-NULL) was begun for: PC_OK once the
 * destination acknowledged it, PC_RETRY to offer it again later, PC_DROP when
 * it can never be delivered. Releases the handle. */
typedef pc_result (*pc_spooler_end_fn)(void *ctx, void *handle);
/* Called once the records of a window are begun and before the first end: a
 * destination that groups records (an insert) sends what it holds now. */
typedef void (*pc_spooler_flush_fn)(void *ctx);

typedef struct pc_spooler pc_spooler;

/* The most record bytes (unpacked) a window with a flush function begins
 * (bench/README, "spool first": 8 MiB windows made inserts half as big and
 * cost the 18.16 server half again as much CPU per span). */
#define PC_SPOOLER_WINDOW_BYTES ((size_t)16 << 20)

typedef struct pc_spooler_stats {
    pc_spool_stats spool; /* records and bytes pending, disk bytes, ... */
    uint64_t appended;    /* records appended since create */
    uint64_t drained;     /* records delivered by the drainer */
    uint64_t dropped;     /* records the destination can never take (PC_DROP) */
    uint64_t refused;     /* appends refused (full, disk error, too big) */
} pc_spooler_stats;

/*
 * Checks the settings: fsync is a known word, after <= |timeout_ms| (the
 * exporter's own deadline), after = 0 only when |first_ok| (the exporter
 * passes a flush function). Returns 0, or -1 with a message naming the key.
 */
int pc_spooler_validate(const pc_spooler_cfg *c, int64_t timeout_ms, bool first_ok, char *err,
                        size_t errlen);
/* True when the settings ask for a spool that takes every batch first (after = 0). */
bool pc_spooler_first(const pc_spooler_cfg *c);

/* True when the settings ask for a spool (spool.directory set). */
bool pc_spooler_enabled(const pc_spooler_cfg *c);

/*
 * Opens (and recovers) the spool of exporter |id| in c->directory. |begin|,
 * |end|, |flush| (NULL: none) and |ctx| are how the drainer delivers; they
 * must stay valid until destroy. Without a flush function the drainer begins
 * up to 32 records, then ends them. With one, a window is up to
 * PC_SPOOL_MAX_AHEAD / 2 records and PC_SPOOLER_WINDOW_BYTES of them
 * (unpacked), flushed once begun, so one flush sends what piled up while the
 * last one was on its way; and the next window is begun and flushed before
 * the previous one is ended, so the destination's sending overlaps the
 * drainer's reading. Returns NULL after logging why.
 */
pc_spooler *pc_spooler_create(const char *id, const pc_spooler_cfg *c, pc_spooler_begin_fn begin,
                              pc_spooler_end_fn end, pc_spooler_flush_fn flush, void *ctx);
/* Starts the drainer thread. 0, or -1 after logging. */
int pc_spooler_start(pc_spooler *s);
/* Stops the drainer thread (waits for a send in progress). Safe twice. */
void pc_spooler_stop(pc_spooler *s);
/* Stops and closes; what is spooled stays on disk for the next start. Accepts NULL. */
void pc_spooler_destroy(pc_spooler *s);

/* Appends one record (copied). 0 once durable, else a PC_SPOOL_* error
 * (logged once per change of state, counted as refused). */
int pc_spooler_append(pc_spooler *s, const void *rec, size_t n);
/* The destination is back: the drainer retries now instead of after its wait. */
void pc_spooler_kick(pc_spooler *s);
void pc_spooler_get_stats(pc_spooler *s, pc_spooler_stats *out);

/*
 * Adds the spool's part to the exporter's health |out|, which holds the
 * destination's own state on entry. Destination not OK: the spool takes its
 * batches, so DEGRADED ("spooling to disk: <reason>"), or UNAVAILABLE when
 * the spool refuses too (its last append failed and it has not emptied since).
 * Destination OK with records pending: DEGRADED ("draining ..."), except
 * when spooling first (records are always pending then).
 */
void pc_spooler_health(pc_spooler *s, pc_health *out);

/*
 * Appends the spool's series for exporter |exporter| to a scrape (metrics.h):
 * otelcol_exporter_queue_size (0 without a spool: |s| may be NULL), and with
 * one prela_spool_records, _bytes, _disk_bytes and the appended, drained,
 * refused and dropped counters.
 */
void pc_spooler_metrics(pc_spooler *s, const char *exporter, pc_metrics_out *out);

#endif
