/*
 * local_store.h - the SQLite side of the embedded store: schema, the writer
 * connection, and the read-only connection pool behind store.h.
 *
 * Used only by local.c (the `local` exporter). local.c owns the writer thread and
 * the batches; this module owns SQL: the writer (local_writer.c), the read pool
 * (local_query.c), the reads (local_store.c, local_agg.c, local_stats.c). The
 * schema is documented in local_schema.c.
 *
 * Threads: the writer connection is used by one thread at a time (start(), then
 * the writer thread). The reader pool lends each read-only connection to one
 * thread at a time, so reads run concurrently with each other and with the
 * writer (WAL mode).
 */
#ifndef PC_LOCAL_STORE_H
#define PC_LOCAL_STORE_H

#include "local_checkpoint.h"
#include "local_events.h"
#include "local_index.h"
#include "local_rollup.h"
#include "store.h"

#include "local_zip.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* How long any store connection waits for a lock another one holds. */
#define PC_LOCAL_BUSY_TIMEOUT_MS 5000

/* Configures SQLite once per process before its first use (no memory
 * statistics: they serialize every allocation on one mutex). Every open of a
 * store file calls it first; idempotent and thread-safe. */
void pc_local_sqlite_setup(void);

/*
 * Opens (creating it if needed) the database file |path| for writing, switches
 * it to WAL, sets synchronous to FULL or NORMAL (|sync_full|) and creates the
 * schema, or migrates an older one once (one transaction, logged). Returns the
 * connection, or NULL after logging why as |id| (a schema newer than this
 * binary's included).
 */
sqlite3 *pc_local_db_open_writer(const char *id, const char *path, bool sync_full);

/* The same without the schema: a writable WAL connection as the writer's
 * (synchronous, page cache, journal_size_limit, pc_search_text and pc_unzip
 * registered), for the search index file too (local_index.h). It never
 * checkpoints its log by itself: its owner starts a pc_local_checkpoint on it
 * (local_checkpoint.h) before its first commit. */
sqlite3 *pc_local_db_open(const char *id, const char *path, bool sync_full);

/* The integer the single-row statement |sql| answers on |db|, or -1 when it
 * fails (schema checks, migrations, the index's catch-up). */
int64_t pc_local_scalar(sqlite3 *db, const char *sql);

/*
 * Prepares |sql| on the writer connection |db| into |*st| as a persistent
 * statement (SQLITE_PREPARE_PERSISTENT: kept for the connection's life and
 * finalized by its owner's fini). Returns 0, or -1 after logging SQLite's
 * message as |id| (|*st| is then NULL). Shared by the writer and its parts
 * (local_writer.c, local_events.c, local_rollup.c); defined in local_writer.c.
 */
int pc_local_prepare(const char *id, sqlite3 *db, const char *sql, sqlite3_stmt **st);

/* Steps the statement |st|, which returns no rows, once and resets it:
 * SQLITE_OK when it ran to the end, else its SQLite code. Defined in
 * local_writer.c. */
int pc_local_step(sqlite3_stmt *st);

/*
 * The writer's prepared statements over one connection. pc_local_writer_init
 * prepares them (0 / -1 after logging); pc_local_writer_fini finalizes them and
 * accepts a half-prepared writer.
 */
typedef struct pc_local_writer {
    sqlite3 *db;
    const char *id;
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *find_trace;  /* (trace_id, project_id) -> tid */
    sqlite3_stmt *ins_trace;   /* a new trace row */
    sqlite3_stmt *ins_span;    /* INSERT OR IGNORE into spans */
    sqlite3_stmt *merge_trace; /* an existing trace's summary += the new spans' */
    sqlite3_stmt *set_trace;   /* a new trace's summary, when some of its spans were duplicates */
    sqlite3_stmt *set_longest; /* trace_bounds.longest_ns raised */
    sqlite3_stmt *purge_blocks_clear, *purge_blocks; /* temp.purge_blocks: their blocks */
    sqlite3_stmt *purge_text;    /* those blocks' documents to delete from span_text */
    sqlite3_stmt *purge_reindex; /* ... and those of the traces that stay, to add back */
    sqlite3_stmt *ins_model;   /* a (model, tid) pair into trace_models */
    sqlite3_stmt *purge_models; /* trace_models rows of the oldest expired traces */
    sqlite3_stmt *purge_spans; /* spans of the oldest expired traces */
    sqlite3_stmt *purge_traces; /* the oldest expired traces */
    pc_local_zip *zip;          /* the JSON columns' compression (local_zip.h) */
    pc_local_events_writer events; /* attached events (local_events.h) */
    pc_local_rollup rollup;        /* the hours the stats rollups must rebuild (local_rollup.h) */
    pc_local_index *index;         /* borrowed: the search index writer (local_index.h) */
    int64_t longest_ns;            /* trace_bounds.longest_ns as committed */
} pc_local_writer;

/* |zip_sample|: bytes of JSON values to train the compression dictionary on
 * (0: never; pc_local_zip_create); |index|: where the search text goes;
 * |live_ns|: the hours the writes keep the rollups of (local_rollup.h). */
int pc_local_writer_init(pc_local_writer *w, const char *id, sqlite3 *db, size_t zip_sample,
                         pc_local_index *index, int64_t live_ns);
void pc_local_writer_fini(pc_local_writer *w);

/* Traces deleted per retention transaction, so writes never wait long behind one. */
#define PC_LOCAL_PURGE_CHUNK 1000

/*
 * Deletes up to PC_LOCAL_PURGE_CHUNK of the traces first ingested before
 * |cutoff_ns| (created_ns, ingest time), oldest first, with all their spans, in
 * one transaction. Returns the number of traces deleted (fewer than the chunk:
 * nothing expired is left), or -1 after logging.
 */
int64_t pc_local_writer_purge(pc_local_writer *w, int64_t cutoff_ns);

/* The pool of read-only connections to one database file. */
typedef struct pc_local_reader pc_local_reader;

/* Creates an empty pool for |path|, each connection attaching the search
 * index |search_path| as `search` (local_index.h); connections open on first
 * use. |id| and |recent| (the index's recent text, local_recent.h; NULL:
 * none) are borrowed.
 * Every read statement stops after |query_timeout_ms| (a progress handler with
 * a deadline) and its store function returns PC_STORE_TIMEOUT. */
pc_local_reader *pc_local_reader_create(const char *id, const char *path,
                                        const char *search_path, pc_local_recent *recent,
                                        int64_t query_timeout_ms);
/* The |recent| the pool was created with. */
pc_local_recent *pc_local_reader_recent(const pc_local_reader *r);
/* Closes every idle connection and frees the pool. Accepts NULL. */
void pc_local_reader_destroy(pc_local_reader *r);
/* The pool as its files' checkpointers' gate (local_checkpoint.h): a held
 * restart makes new reads wait, the reads in flight are the lent connections. */
pc_local_gate pc_local_reader_gate(pc_local_reader *r);
/* A read on a connection of the caller's own (the rollup builder's) counts
 * as one in flight: enter waits as a pooled read does (false past |deadline|,
 * pc_time_mono_ns), leave ends it. held says a restart holds reads back now:
 * such a read should end soon. */
bool pc_local_reader_enter(pc_local_reader *r, int64_t deadline);
void pc_local_reader_leave(pc_local_reader *r);
bool pc_local_reader_held(pc_local_reader *r);

/* store.h's interface over a pc_local_reader (the ctx). */
extern const pc_store_ops pc_local_store_ops;

#endif
