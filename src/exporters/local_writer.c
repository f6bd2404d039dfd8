/*
 * local_writer.c - the embedded store's writer connection: opening it (WAL,
 * synchronous, the schema set up or migrated: local_schema.c), its prepared
 * statements (the SQL local_txn.c binds, one transaction at a time), and
 * retention. Writer thread only (local.c), after start().
 *
 * Writer connection: a 64 MiB page cache (the per-trace indexes of a store of
 * 10M spans are 100+ MB; SQLite's default 2 MB misses on nearly every trace),
 * no checkpoints of its own: its owner starts a checkpointer thread on it
 * (local_checkpoint.h); journal_size_limit truncates the log back after the
 * log starts over.
 *
 * Retention deletes the oldest expired traces a chunk at a time, with their
 * spans, their trace_models rows and their search text (local_schema.c has
 * the invariants each keeps).
 */
#include "local_store.h"

#include "local_schema.h"
#include "local_text.h"

#include "log.h"
#include "timefmt.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define PURGE_CHUNK STR(PC_LOCAL_PURGE_CHUNK)

/* ?1 trace_id ?2 project_id: the trace's tid, completed_ns and started_ns, or no row. */
static const char FIND_TRACE[] =
    "SELECT tid, completed_ns, started_ns FROM traces WHERE trace_id = ?1 AND project_id = ?2";

/* ?1: trace_bounds.longest_ns raised (local_schema.c). */
static const char SET_LONGEST[] = "UPDATE trace_bounds SET longest_ns = ?1 WHERE one = 1";

/* A new trace row; the parameters as MERGE_TRACE's, and ?1 trace_id ?2 project_id. */
static const char INS_TRACE[] =
    "INSERT INTO traces (trace_id, project_id, service_name, root_span_id, root_span_name,"
    " has_root, status, source, started_ns, completed_ns, created_ns, span_count, input_tokens,"
    " output_tokens, span_types, session_id, user_id, cost_usd, attr_bloom)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?14, ?12, ?13, ?15, ?17, ?18, ?19,"
    " ?20)";

/* Parameters ?1..?35 in this order; local_txn.c binds them. */
static const char INS_SPAN[] =
    "INSERT OR IGNORE INTO spans (tid, span_id, parent_span_id, name, kind, span_type,"
    " service_name, status, status_message, source, trace_state, start_ns, end_ns, created_ns,"
    " llm_provider, llm_model, input_tokens, output_tokens, attributes, events, links, resource,"
    " scope, llm_request_model, cache_read_tokens, cache_write_tokens, reasoning_tokens,"
    " cost_usd, cost_input_usd, cost_output_usd, cost_source, session_id, user_id,"
    " input_messages, output_messages)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35)";

/* ?1 model ?2 tid: one of the distinct models (llm_model or llm_request_model)
 * of a trace's spans, for the model filter (local_schema.c). */
static const char INS_MODEL[] = "INSERT OR IGNORE INTO trace_models (model, tid) VALUES (?1, ?2)";

/*
 * Merges one trace's summary of the spans a transaction inserted into its
 * row ?16 (tid): ?3 service_name ?4 root_span_id ?5 root_span_name ?6 has_root
 * ?7 status ?9 started_ns ?10 completed_ns ?12 input_tokens ?13 output_tokens
 * ?14 span_count ?15 span_types ?17 session_id ?18 user_id ('' = none among
 * the new spans: the smallest non-empty one wins) ?19 cost_usd (NULL = none:
 * known costs add up) ?20 attr_bloom (local_bloom.h: ORed in; a row without
 * one, NULL, keeps none) (?1 ?2 ?8 ?11, the first write's, are bound but
 * unused). Bare column names are the stored row before the update, so every
 * SET sees the old has_root.
 */
static const char MERGE_TRACE[] =
    "UPDATE traces SET"
    " started_ns = min(started_ns, ?9),"
    " completed_ns = max(completed_ns, ?10),"
    " span_count = span_count + ?14,"
    " status = CASE WHEN ?7 = 'error' THEN 'error' ELSE status END,"
    " input_tokens = CASE WHEN input_tokens > 9223372036854775807 - ?12"
    "  THEN 9223372036854775807 ELSE input_tokens + ?12 END,"
    " output_tokens = CASE WHEN output_tokens > 9223372036854775807 - ?13"
    "  THEN 9223372036854775807 ELSE output_tokens + ?13 END,"
    " root_span_id = CASE WHEN has_root = 0 AND ?6 = 1 THEN ?4 ELSE root_span_id END,"
    " root_span_name = CASE WHEN has_root = 0 AND ?6 = 1 THEN ?5 ELSE root_span_name END,"
    " service_name = CASE WHEN has_root = 0 AND ?6 = 1 THEN ?3 ELSE service_name END,"
    " has_root = max(has_root, ?6),"
    " span_types = span_types | ?15,"
    " session_id = CASE WHEN ?17 != '' AND (session_id = '' OR ?17 < session_id) THEN ?17"
    "  ELSE session_id END,"
    " user_id = CASE WHEN ?18 != '' AND (user_id = '' OR ?18 < user_id) THEN ?18"
    "  ELSE user_id END,"
    " cost_usd = CASE WHEN ?19 IS NULL THEN cost_usd WHEN cost_usd IS NULL THEN ?19"
    "  ELSE cost_usd + ?19 END,"
    " attr_bloom = pc_bloom_or(attr_bloom, ?20)"
    " WHERE tid = ?16";

/* Sets the summary of the new trace ?16 outright (parameters as MERGE_TRACE's). */
static const char SET_TRACE[] =
    "UPDATE traces SET service_name = ?3, root_span_id = ?4, root_span_name = ?5,"
    " has_root = ?6, status = ?7, started_ns = ?9, completed_ns = ?10, input_tokens = ?12,"
    " output_tokens = ?13, span_count = ?14, span_types = ?15, session_id = ?17, user_id = ?18,"
    " cost_usd = ?19 WHERE tid = ?16";

/* The oldest expired traces (one chunk); the same rows for all the statements
 * of one retention transaction. */
#define EXPIRED                                                                                    \
    "SELECT tid FROM traces WHERE created_ns < ?1 ORDER BY created_ns, tid LIMIT " PURGE_CHUNK
#define BLOCK_BITS STR(PC_LOCAL_BLOCK_BITS)
/* The search text of every span now stored in block blk (alias b). */
#define BLOCK_TEXT                                                                                 \
    "(SELECT group_concat(pc_search_text(s.name, pc_unzip(s.attributes), pc_unzip(s.events),"     \
    " pc_unzip(s.input_messages), pc_unzip(s.output_messages)), '') FROM spans s"               \
    " WHERE s.tid >= b.blk << " BLOCK_BITS " AND s.tid < (b.blk + 1) << " BLOCK_BITS ")"
/* Retention keeps span_text's invariant (local_schema.c, local_index.c): the
 * blocks of the expired traces (temp.purge_blocks) lose all their trigrams
 * (a delete document with the text of all their spans), then, once the
 * expired rows are gone, get back those of the traces that stay (an add
 * document). Both go to the index writer in this order after the commit. */
static const char PURGE_BLOCKS_CLEAR[] = "DELETE FROM temp.purge_blocks";
static const char PURGE_BLOCKS[] = "INSERT OR IGNORE INTO temp.purge_blocks (blk)"
                                   " SELECT tid >> " BLOCK_BITS " FROM (" EXPIRED ")";
static const char PURGE_TEXT[] =
    "SELECT b.blk, coalesce(" BLOCK_TEXT ", '') FROM temp.purge_blocks b ORDER BY b.blk";
static const char PURGE_REINDEX[] =
    "SELECT blk, text FROM (SELECT b.blk AS blk, " BLOCK_TEXT " AS text"
    " FROM temp.purge_blocks b) WHERE text IS NOT NULL ORDER BY blk";
/* The (model, tid) pairs of the expired traces, found by their spans' models
 * (trace_models is keyed by model first). Before PURGE_SPANS. */
static const char PURGE_MODELS[] =
    "DELETE FROM trace_models WHERE model IN (SELECT s.llm_model FROM spans s WHERE s.tid IN"
    " (" EXPIRED ") UNION SELECT s.llm_request_model FROM spans s WHERE s.tid IN (" EXPIRED "))"
    " AND tid IN (" EXPIRED ")";
static const char PURGE_SPANS[] = "DELETE FROM spans WHERE tid IN (" EXPIRED ")";
static const char PURGE_TRACES[] = "DELETE FROM traces WHERE tid IN (" EXPIRED ")";

/* ---------------------------------------------------------------- writer -- */

#define WRITER_CACHE_KIB 65536
#define WAL_LIMIT_BYTES 67108864 /* journal_size_limit */

/* Once per process, before SQLite's first use: no memory statistics. With
 * them, every SQLite allocation takes one process-wide mutex, and the
 * writer, the index thread and the readers contend for it (futex waits and
 * wake-ups were 12 % of the writer thread's CPU in a load). Nothing here
 * reads sqlite3_memory_used. */
static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

void pc_local_sqlite_setup(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
}

sqlite3 *pc_local_db_open(const char *id, const char *path, bool sync_full)
{
    pc_local_sqlite_setup();
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, id, "cannot open %s: %s", path,
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, PC_LOCAL_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db, 1);

    /* journal_mode answers with the mode in effect; anything but "wal" is a failure. */
    sqlite3_stmt *st = NULL;
    bool wal = false;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        wal = mode && strcmp(mode, "wal") == 0;
    }
    sqlite3_finalize(st);
    if (!wal) {
        pc_log(PC_LOG_ERROR, id, "cannot switch %s to WAL mode: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }

    char *err = NULL;
    const char *sync = sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
    if (sqlite3_exec(db, sync, NULL, NULL, &err) != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, id, "cannot set synchronous on %s: %s", path,
               err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        sqlite3_close(db);
        return NULL;
    }
    if (sqlite3_exec(db, "PRAGMA cache_size = -" STR(WRITER_CACHE_KIB), NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_size_limit = " STR(WAL_LIMIT_BYTES), NULL, NULL, NULL) !=
            SQLITE_OK ||
        pc_local_text_register(db) != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, id, "cannot configure %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_wal_autocheckpoint(db, 0); /* local_checkpoint.h checkpoints it */
    return db;
}

sqlite3 *pc_local_db_open_writer(const char *id, const char *path, bool sync_full)
{
    sqlite3 *db = pc_local_db_open(id, path, sync_full);
    if (db && pc_local_schema_setup(id, db, path) < 0) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static int exec_quiet(const char *id, sqlite3 *db, const char *sql)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK) return 0;
    pc_log(PC_LOG_ERROR, id, "cannot run %s: %s", sql, sqlite3_errmsg(db));
    return -1;
}

int64_t pc_local_scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int pc_local_step(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int pc_local_prepare(const char *id, sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK) return 0;
    pc_log(PC_LOG_ERROR, id, "cannot prepare statement: %s", sqlite3_errmsg(db));
    return -1;
}

int pc_local_writer_init(pc_local_writer *w, const char *id, sqlite3 *db, size_t zip_sample,
                         pc_local_index *index, int64_t live_ns)
{
    memset(w, 0, sizeof(*w));
    w->db = db;
    w->id = id;
    w->index = index;
    if (pc_local_prepare(id, db, "BEGIN IMMEDIATE", &w->begin) < 0 ||
        pc_local_prepare(id, db, "COMMIT", &w->commit) < 0 ||
        pc_local_prepare(id, db, "ROLLBACK", &w->rollback) < 0 ||
        pc_local_prepare(id, db, FIND_TRACE, &w->find_trace) < 0 ||
        pc_local_prepare(id, db, INS_TRACE, &w->ins_trace) < 0 ||
        pc_local_prepare(id, db, INS_SPAN, &w->ins_span) < 0 ||
        pc_local_prepare(id, db, MERGE_TRACE, &w->merge_trace) < 0 ||
        pc_local_prepare(id, db, SET_TRACE, &w->set_trace) < 0 ||
        pc_local_prepare(id, db, SET_LONGEST, &w->set_longest) < 0 ||
        exec_quiet(id, db, "CREATE TEMP TABLE IF NOT EXISTS purge_blocks"
                           " (blk INTEGER PRIMARY KEY)") < 0 ||
        pc_local_prepare(id, db, PURGE_BLOCKS_CLEAR, &w->purge_blocks_clear) < 0 ||
        pc_local_prepare(id, db, PURGE_BLOCKS, &w->purge_blocks) < 0 ||
        pc_local_prepare(id, db, PURGE_TEXT, &w->purge_text) < 0 ||
        pc_local_prepare(id, db, PURGE_REINDEX, &w->purge_reindex) < 0 ||
        pc_local_prepare(id, db, INS_MODEL, &w->ins_model) < 0 ||
        pc_local_prepare(id, db, PURGE_MODELS, &w->purge_models) < 0 ||
        pc_local_prepare(id, db, PURGE_SPANS, &w->purge_spans) < 0 ||
        pc_local_prepare(id, db, PURGE_TRACES, &w->purge_traces) < 0 ||
        pc_local_events_writer_init(&w->events, id, db) < 0 ||
        pc_local_rollup_init(&w->rollup, id, db, EXPIRED, live_ns) < 0)
        return -1;
    w->longest_ns = pc_local_scalar(db, "SELECT longest_ns FROM trace_bounds");
    if (w->longest_ns < 0) {
        pc_log(PC_LOG_ERROR, id, "cannot read trace_bounds: %s", sqlite3_errmsg(db));
        return -1;
    }
    w->zip = pc_local_zip_create(id, db, zip_sample);
    return w->zip ? 0 : -1;
}

void pc_local_writer_fini(pc_local_writer *w)
{
    sqlite3_finalize(w->begin);
    sqlite3_finalize(w->commit);
    sqlite3_finalize(w->rollback);
    sqlite3_finalize(w->find_trace);
    sqlite3_finalize(w->ins_trace);
    sqlite3_finalize(w->ins_span);
    sqlite3_finalize(w->merge_trace);
    sqlite3_finalize(w->set_trace);
    sqlite3_finalize(w->set_longest);
    sqlite3_finalize(w->purge_blocks_clear);
    sqlite3_finalize(w->purge_blocks);
    sqlite3_finalize(w->purge_text);
    sqlite3_finalize(w->purge_reindex);
    sqlite3_finalize(w->ins_model);
    sqlite3_finalize(w->purge_models);
    sqlite3_finalize(w->purge_spans);
    sqlite3_finalize(w->purge_traces);
    pc_local_zip_destroy(w->zip);
    pc_local_events_writer_fini(&w->events);
    pc_local_rollup_fini(&w->rollup);
    memset(w, 0, sizeof(*w));
}

/* Stages the (block, text) rows of |st| as |op| documents of the index. */
static int stage_docs(pc_local_writer *w, sqlite3_stmt *st, pc_index_op op)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 1);
        size_t n = (size_t)sqlite3_column_bytes(st, 1);
        if (text && n) pc_local_index_add(w->index, sqlite3_column_int64(st, 0), op, text, n);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int64_t pc_local_writer_purge(pc_local_writer *w, int64_t cutoff_ns)
{
    int rc = pc_local_step(w->begin);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(w->purge_blocks, 1, cutoff_ns);
        sqlite3_bind_int64(w->purge_models, 1, cutoff_ns);
        sqlite3_bind_int64(w->purge_spans, 1, cutoff_ns);
        sqlite3_bind_int64(w->purge_traces, 1, cutoff_ns);
        rc = pc_local_step(w->purge_blocks_clear);
        if (rc == SQLITE_OK) rc = pc_local_step(w->purge_blocks);
        if (rc == SQLITE_OK) rc = stage_docs(w, w->purge_text, PC_INDEX_DELETE);
        if (rc == SQLITE_OK) rc = pc_local_step(w->purge_models);
        if (rc == SQLITE_OK) rc = pc_local_rollup_purge(&w->rollup, cutoff_ns, pc_time_now_ns());
        if (rc == SQLITE_OK) rc = pc_local_step(w->purge_spans);
        if (rc == SQLITE_OK) rc = pc_local_step(w->purge_traces);
    }
    int64_t deleted = rc == SQLITE_OK ? sqlite3_changes(w->db) : 0;
    if (rc == SQLITE_OK) { /* attached events written before the cutoff, too */
        int64_t ev = pc_local_events_purge(&w->events, w->db, cutoff_ns, PC_LOCAL_PURGE_CHUNK);
        if (ev < 0) rc = SQLITE_ERROR;
        else if (ev > deleted) deleted = ev; /* a full chunk: call again */
    }
    if (rc == SQLITE_OK) rc = stage_docs(w, w->purge_reindex, PC_INDEX_ADD);
    if (rc == SQLITE_OK) rc = pc_local_step(w->commit);
    if (rc == SQLITE_OK) pc_local_index_commit(w->index, 0);
    else pc_local_index_abort(w->index);
    if (rc != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, w->id, "retention: cannot delete expired traces: %s",
               sqlite3_errmsg(w->db));
        if (!sqlite3_get_autocommit(w->db)) pc_local_step(w->rollback);
        return -1;
    }
    return deleted;
}
