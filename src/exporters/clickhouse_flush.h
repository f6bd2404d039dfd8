/*
 * clickhouse_flush.h - the `clickhouse` exporter's state and its flusher
 * thread: the inserts (generations of the group commit) that consume()
 * fills (clickhouse.c) and the flusher sends (clickhouse_flush.c).
 *
 * Data flow: consume() → the pending pc_ch_gen → pc_ch_flusher_main → the
 * server → the gen's state → its waiters. The lock |mu| guards what the
 * struct says; fields marked "flusher only" belong to the flusher thread.
 */
#ifndef PC_CLICKHOUSE_FLUSH_H
#define PC_CLICKHOUSE_FLUSH_H

#include "budget.h"
#include "clickhouse_conf.h"
#include "clickhouse_http.h"
#include "clickhouse_rollup.h"
#include "clickhouse_rows.h"
#include "clickhouse_search.h"
#include "clickhouse_store.h"
#include "clickhouse_zip.h"
#include "deadletter.h"
#include "metrics.h"
#include "spooler.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_CH_NS_PER_MS 1000000LL

enum { PC_CH_GEN_PENDING = 0, PC_CH_GEN_OK, PC_CH_GEN_RETRY, PC_CH_GEN_DATA };

/* One insert: the rows of every consume that joined it. */
typedef struct pc_ch_gen {
    pc_ch_rows spans, traces;
    pc_ch_rows events; /* attached events of carriers (clickhouse_events.h) */
    pc_ch_rows marks;  /* the hours it changes (clickhouse_rollup.h) */
    pc_ch_search_acc search; /* the search index's pieces (clickhouse_search.h) */
    size_t rows;
    size_t joins;       /* consumes that joined it */
    size_t charged;     /* bytes of its rows reserved in the memory budget */
    int64_t first_mono; /* when its first rows arrived */
    int64_t deadline;   /* first_mono + timeout */
    bool sealed;        /* the spool's drainer flushed it: due now */
    int state;          /* PC_CH_GEN_* */
    int refs;           /* waiters + the flusher; under ch->mu */
} pc_ch_gen;

typedef struct pc_ch_exporter {
    char *id;
    const pc_ch_cfg *cfg;
    pc_ch_http *http;
    pc_ch_dialect dialect;
    int64_t timeout_ns, max_wait_ns;
    size_t max_rows;
    pc_ch_codec codec;   /* set by start (pc_ch_auto_codec, then the server for auto) */
    pc_ch_zip *zip;      /* flusher only: its compressor, kept warm */
    pc_buf body, zbody;  /* flusher only: a block's gathered and compressed body */
    pc_ch_rows *unmerge; /* flusher only: the traces rows of the spans it stores */
    pc_ch_rows standins; /* flusher only: trace_rows stand-ins for refused traces rows */
    pc_ch_store reads;   /* the query store over the same server */
    pc_deadletter *dead; /* from start; the flusher writes it */
    pc_ch_rollup *rollup; /* the stats rollup builder, from start; NULL: none */

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t work_cv, done_cv;
    pthread_cond_t stop_cv; /* only shutdown signals it: the retry backoff waits on it */
    bool sync_ready;
    pc_ch_gen *pending;
    pc_ch_rows spare; /* emptied span rows of a stored insert, for the next encode */
    int64_t last_send_mono; /* when the flusher began the previous insert */
    int64_t last_done_mono; /* when it ended */
    size_t want_joins;      /* joins that make the pending insert due (group commit) */
    bool accepting, stopping, thread_running;
    pthread_t thread;
    bool failing; /* flusher only: logged once per change */

    pc_spooler *spooler; /* NULL: no spool */
    int64_t after_ns;    /* spool.after */
    bool first;          /* spool.after 0: every batch is spooled first (spooler.h) */
    int spooling;        /* atomic: the spool takes batches (between start and shutdown) */
    int64_t down_since;  /* atomic: monotonic ns since inserts fail; 0 = they succeed */
    int64_t down_wall;   /* atomic: wall ns of the same moment */
    pc_histogram *insert_seconds; /* from start; NULL without a metrics registry */
    pc_budget *budget;            /* from start (budget.h): pending inserts' rows; NULL: none */
} pc_ch_exporter;

/* Drops a reference to |g|; the last one frees it, its span rows' blocks
 * becoming C->spare when that is empty (clickhouse.c: "Memory"). Call with
 * C->mu held. */
void pc_ch_gen_unref_locked(pc_ch_exporter *C, pc_ch_gen *g);

/* The flusher thread (pthread_create's start routine, |arg| the exporter):
 * sends each pending insert when due, until shutdown with nothing pending. */
void *pc_ch_flusher_main(void *arg);

#endif
