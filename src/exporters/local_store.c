/*
 * local_store.c - SQL of the embedded store: schema and its migrations,
 * writer statements, retention, and the read side (store.h) over a pool of
 * read-only connections.
 *
 * Schema version 2 (one file <directory>/prela.db, WAL mode, PRAGMA
 * user_version = 2). The project is part of every key:
 *
 *   spans   one row per (project_id, trace_id, span_id), UNIQUE; written with
 *           INSERT OR IGNORE, so a re-sent span is dropped and the first write
 *           wins, and a span of another project never replaces or hides it.
 *           Every pc_span_row field is a column; attributes, events, links,
 *           resource and scope hold JSON text from span.h's encoders.
 *           created_ns = when the receiver accepted the request (ingest time).
 *   traces  one row per (project_id, trace_id): the same trace id in two
 *           projects is two traces. Maintained incrementally by an UPSERT in
 *           the same transaction (one per trace and transaction, local.c folds
 *           the spans first), from the spans that were really inserted:
 *           started_ns = min start, completed_ns = max(end, or start when not
 *           ended), span_count += inserted, status 'error' once any span failed,
 *           tokens summed over spans with tokens > 0; source and created_ns
 *           from the first write; root_span_id / root_span_name /
 *           service_name from the first span without a parent (has_root), and
 *           service_name from the first span until a root arrives. Order of
 *           arrival therefore does not matter (children before the root,
 *           several requests).
 *
 * Keys list trace_id first, (trace_id, project_id[, span_id]): the set is the
 * key; the order lets a lookup by trace id alone (get_trace without a project)
 * use the same index as a lookup by both.
 *
 * Indexes: traces by started_ns (newest first), by (project_id | service_name |
 * status, started_ns) for the filters, by (created_ns, trace_id, project_id)
 * for retention (chunks in one stable order); spans by their key and by
 * (trace_id, project_id, span_type) ("spans of a trace", and the span_type
 * filter's EXISTS without touching the rows).
 *
 * Versions and migration: version 1 is the first release's schema (no
 * user_version, keys without the project). pc_local_db_open_writer migrates
 * 1 -> 2 once, at start, in ONE transaction (so an interrupted migration
 * leaves version 1 intact and simply runs again): the old tables are renamed,
 * the new ones created, every row copied; a trace id that several projects
 * had written into (the old key let them share one trace row) becomes one
 * trace per project, its summaries recomputed from each project's own spans.
 * A file with a newer version than this binary knows is refused.
 *
 * Retention removes whole traces: a trace expires with its first ingest
 * (traces.created_ns), together with every span it has, so no trace is ever
 * left half-deleted.
 *
 * Why no WITHOUT ROWID: span rows carry prompt text (KBs); SQLite advises rowid
 * tables when rows are large.
 *
 * Reads: every piece of caller text is bound as a parameter; dynamic SQL is
 * assembled only from the fixed fragments below.
 */
#include "local_store.h"

#include "local_contains.h"

#include "buf.h"
#include "log.h"
#include "mem.h"

#include "timefmt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_TIMEOUT_MS 5000
#define POOL_MAX 8 /* idle read connections kept open */
#define STR_(x) #x
#define STR(x) STR_(x)
#define PURGE_CHUNK STR(PC_LOCAL_PURGE_CHUNK)

/* The current schema, created on a fresh file and by the migration. */
static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS spans ("
    " trace_id TEXT NOT NULL,"
    " span_id TEXT NOT NULL,"
    " parent_span_id TEXT NOT NULL,"
    " project_id TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " kind INTEGER NOT NULL,"
    " span_type TEXT NOT NULL,"
    " service_name TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " status_message TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " trace_state TEXT NOT NULL,"
    " start_ns INTEGER NOT NULL,"
    " end_ns INTEGER NOT NULL,"
    " created_ns INTEGER NOT NULL,"
    " llm_provider TEXT NOT NULL,"
    " llm_model TEXT NOT NULL,"
    " input_tokens INTEGER NOT NULL,"
    " output_tokens INTEGER NOT NULL,"
    " attributes TEXT NOT NULL,"
    " events TEXT NOT NULL,"
    " links TEXT NOT NULL,"
    " resource TEXT NOT NULL,"
    " scope TEXT NOT NULL,"
    " UNIQUE (trace_id, project_id, span_id));"
    "CREATE INDEX IF NOT EXISTS spans_trace_type ON spans (trace_id, project_id, span_type);"
    "CREATE TABLE IF NOT EXISTS traces ("
    " trace_id TEXT NOT NULL,"
    " project_id TEXT NOT NULL,"
    " service_name TEXT NOT NULL,"
    " root_span_id TEXT NOT NULL,"
    " root_span_name TEXT NOT NULL,"
    " has_root INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " started_ns INTEGER NOT NULL,"
    " completed_ns INTEGER NOT NULL,"
    " created_ns INTEGER NOT NULL,"
    " span_count INTEGER NOT NULL,"
    " input_tokens INTEGER NOT NULL,"
    " output_tokens INTEGER NOT NULL,"
    " PRIMARY KEY (trace_id, project_id));"
    "CREATE INDEX IF NOT EXISTS traces_started ON traces (started_ns);"
    "CREATE INDEX IF NOT EXISTS traces_project ON traces (project_id, started_ns);"
    "CREATE INDEX IF NOT EXISTS traces_service ON traces (service_name, started_ns);"
    "CREATE INDEX IF NOT EXISTS traces_status ON traces (status, started_ns);"
    "CREATE INDEX IF NOT EXISTS traces_created ON traces (created_ns, trace_id, project_id);";

#define SCHEMA_VERSION 2

#define SPAN_COLS                                                                                  \
    "trace_id, span_id, parent_span_id, project_id, name, kind, span_type, service_name,"          \
    " status, status_message, source, trace_state, start_ns, end_ns, created_ns,"                  \
    " llm_provider, llm_model, input_tokens, output_tokens, attributes, events, links,"            \
    " resource, scope"

#define TRACE_ROW_COLS                                                                             \
    "trace_id, project_id, service_name, root_span_id, root_span_name, has_root, status,"          \
    " source, started_ns, completed_ns, created_ns, span_count, input_tokens, output_tokens"

/* A saturating sum of a token column (span.h: pc_tokens_add). SQLite's sum()
 * fails the statement on integer overflow; total() is a float sum, exact
 * while the total is below 2^53, and CAST of a float past INT64_MAX gives
 * INT64_MAX. */
#define TOKEN_SUM(col)                                                                             \
    "CAST(total(CASE WHEN " col " > 0 THEN " col " ELSE 0 END) AS INTEGER)"

/* A trace's numbers from its own spans (alias s), as the UPSERT keeps them. */
#define SPAN_AGG                                                                                   \
    "min(s.start_ns), max(CASE WHEN s.end_ns > 0 THEN s.end_ns ELSE s.start_ns END), count(*),"   \
    " CASE WHEN max(s.status = 'error') THEN 'error' ELSE 'success' END,"                          \
    " " TOKEN_SUM("s.input_tokens") ", " TOKEN_SUM("s.output_tokens")

/*
 * Version 1 -> 2, run inside one transaction by migrate(). Version 1's indexes
 * have the names version 2 uses, and a renamed table keeps its indexes, so
 * they are dropped first. Rows are copied in rowid order so "first write"
 * (the lowest rowid) stays first.
 */
static const char MIGRATE_1_2[] =
    "DROP INDEX IF EXISTS spans_trace_type; DROP INDEX IF EXISTS traces_started;"
    "DROP INDEX IF EXISTS traces_project; DROP INDEX IF EXISTS traces_service;"
    "DROP INDEX IF EXISTS traces_status; DROP INDEX IF EXISTS traces_created;"
    "ALTER TABLE spans RENAME TO spans_v1;"
    "ALTER TABLE traces RENAME TO traces_v1;";
static const char MIGRATE_1_2_COPY[] =
    "INSERT INTO spans (" SPAN_COLS ") SELECT " SPAN_COLS " FROM spans_v1 ORDER BY rowid;"
    "INSERT INTO traces (" TRACE_ROW_COLS ") SELECT " TRACE_ROW_COLS " FROM traces_v1;"
    /* Summaries of trace ids that several projects wrote into: from each
     * project's own spans (version 1 counted them all in one row). */
    "CREATE TEMP TABLE shared_ids AS SELECT trace_id FROM spans GROUP BY trace_id"
    " HAVING count(DISTINCT project_id) > 1;"
    "UPDATE traces SET (started_ns, completed_ns, span_count, status, input_tokens,"
    " output_tokens) = (SELECT " SPAN_AGG " FROM spans s"
    "  WHERE s.trace_id = traces.trace_id AND s.project_id = traces.project_id)"
    " WHERE trace_id IN (SELECT trace_id FROM shared_ids) AND EXISTS (SELECT 1 FROM spans s"
    "  WHERE s.trace_id = traces.trace_id AND s.project_id = traces.project_id);"
    /* ... and a trace of its own for each project that had no trace row. */
    "INSERT INTO traces (trace_id, project_id, service_name, root_span_id, root_span_name,"
    " has_root, source, created_ns, started_ns, completed_ns, span_count, status,"
    " input_tokens, output_tokens)"
    " SELECT g.trace_id, g.project_id, coalesce(r.service_name, f.service_name),"
    "  coalesce(r.span_id, ''), coalesce(r.name, ''), r.rowid IS NOT NULL, f.source,"
    "  f.created_ns, g.started, g.completed, g.n, g.status, g.itok, g.otok"
    " FROM (SELECT s.trace_id, s.project_id, min(s.rowid) AS first_row,"
    "   min(CASE WHEN s.parent_span_id = '' THEN s.rowid END) AS root_row,"
    "   min(s.start_ns) AS started,"
    "   max(CASE WHEN s.end_ns > 0 THEN s.end_ns ELSE s.start_ns END) AS completed,"
    "   count(*) AS n, CASE WHEN max(s.status = 'error') THEN 'error' ELSE 'success' END"
    "   AS status, " TOKEN_SUM("s.input_tokens") " AS itok,"
    "   " TOKEN_SUM("s.output_tokens") " AS otok"
    "  FROM spans s WHERE NOT EXISTS (SELECT 1 FROM traces t"
    "   WHERE t.trace_id = s.trace_id AND t.project_id = s.project_id)"
    "  GROUP BY s.trace_id, s.project_id) g"
    " JOIN spans f ON f.rowid = g.first_row LEFT JOIN spans r ON r.rowid = g.root_row;"
    "DROP TABLE spans_v1; DROP TABLE traces_v1;";

/* Parameters ?1..?24 in this order; local.c binds them. */
static const char INS_SPAN[] =
    "INSERT OR IGNORE INTO spans (trace_id, span_id, parent_span_id, project_id, name, kind,"
    " span_type, service_name, status, status_message, source, trace_state, start_ns, end_ns,"
    " created_ns, llm_provider, llm_model, input_tokens, output_tokens, attributes, events,"
    " links, resource, scope)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19, ?20, ?21, ?22, ?23, ?24)";

/*
 * One trace's summary of the spans a transaction inserted: ?1 trace_id
 * ?2 project_id ?3 service_name ?4 root_span_id ?5 root_span_name ?6 has_root
 * ?7 status ?8 source ?9 started_ns ?10 completed_ns ?11 created_ns
 * ?12 input_tokens ?13 output_tokens ?14 span_count. In DO UPDATE, bare column
 * names are the stored row before the update, so every SET sees the old has_root.
 */
static const char UPSERT_TRACE[] =
    "INSERT INTO traces (trace_id, project_id, service_name, root_span_id, root_span_name,"
    " has_root, status, source, started_ns, completed_ns, created_ns, span_count, input_tokens,"
    " output_tokens)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?14, ?12, ?13)"
    " ON CONFLICT (trace_id, project_id) DO UPDATE SET"
    " started_ns = min(started_ns, excluded.started_ns),"
    " completed_ns = max(completed_ns, excluded.completed_ns),"
    " span_count = span_count + excluded.span_count,"
    " status = CASE WHEN excluded.status = 'error' THEN 'error' ELSE status END,"
    " input_tokens = CASE WHEN input_tokens > 9223372036854775807 - excluded.input_tokens"
    "  THEN 9223372036854775807 ELSE input_tokens + excluded.input_tokens END,"
    " output_tokens = CASE WHEN output_tokens > 9223372036854775807 - excluded.output_tokens"
    "  THEN 9223372036854775807 ELSE output_tokens + excluded.output_tokens END,"
    " root_span_id = CASE WHEN has_root = 0 AND excluded.has_root = 1"
    "   THEN excluded.root_span_id ELSE root_span_id END,"
    " root_span_name = CASE WHEN has_root = 0 AND excluded.has_root = 1"
    "   THEN excluded.root_span_name ELSE root_span_name END,"
    " service_name = CASE WHEN has_root = 0 AND excluded.has_root = 1"
    "   THEN excluded.service_name ELSE service_name END,"
    " has_root = max(has_root, excluded.has_root)";

/* Both select the same traces (same order, same limit) inside one transaction. */
static const char PURGE_SPANS[] =
    "DELETE FROM spans WHERE (trace_id, project_id) IN (SELECT trace_id, project_id FROM traces"
    " WHERE created_ns < ?1 ORDER BY created_ns, trace_id, project_id LIMIT " PURGE_CHUNK ")";
static const char PURGE_TRACES[] =
    "DELETE FROM traces WHERE (trace_id, project_id) IN (SELECT trace_id, project_id FROM traces"
    " WHERE created_ns < ?1 ORDER BY created_ns, trace_id, project_id LIMIT " PURGE_CHUNK ")";

/* Newest first; ties in a stable order (both stores agree on it). */
#define NEWEST "t.started_ns DESC, t.trace_id DESC, t.project_id DESC"

#define TRACE_COLS                                                                                 \
    "t.trace_id, t.project_id, t.service_name, t.root_span_id, t.root_span_name, t.status,"        \
    " t.source, t.started_ns, t.completed_ns, t.created_ns, t.span_count, t.input_tokens,"         \
    " t.output_tokens"

/* ---------------------------------------------------------------- schema -- */

/* The integer the single-row statement |sql| answers, or -1 when it fails. */
static int64_t scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* sqlite3_exec, logging "|what| in |path|: <error>" on failure. 0 / -1. */
static int exec_logged(const char *id, sqlite3 *db, const char *sql, const char *what,
                       const char *path)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
    pc_log(PC_LOG_ERROR, id, "%s in %s: %s", what, path, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return -1;
}

/*
 * Version 1 -> 2 inside the caller's transaction; see "Versions and
 * migration". Logs once what it did. 0 / -1 after logging.
 */
static int migrate_1_2(const char *id, sqlite3 *db, const char *path)
{
    if (exec_logged(id, db, MIGRATE_1_2, "schema migration 1 -> 2", path) < 0 ||
        exec_logged(id, db, SCHEMA, "schema migration 1 -> 2", path) < 0)
        return -1;
    int64_t spans = scalar(db, "SELECT count(*) FROM spans_v1");
    int64_t traces = scalar(db, "SELECT count(*) FROM traces_v1");
    if (exec_logged(id, db, MIGRATE_1_2_COPY, "schema migration 1 -> 2", path) < 0) return -1;
    int64_t shared = scalar(db, "SELECT count(*) FROM temp.shared_ids");
    int64_t spans2 = scalar(db, "SELECT count(*) FROM spans");
    int64_t traces2 = scalar(db, "SELECT count(*) FROM traces");
    if (exec_logged(id, db, "DROP TABLE temp.shared_ids", "schema migration 1 -> 2", path) < 0)
        return -1;
    if (spans2 != spans || traces2 < traces) {
        pc_log(PC_LOG_ERROR, id,
               "schema migration 1 -> 2 in %s: copied %lld of %lld spans, %lld of %lld traces;"
               " rolled back",
               path, (long long)spans2, (long long)spans, (long long)traces2, (long long)traces);
        return -1;
    }
    pc_log(PC_LOG_INFO, id,
           "migrated %s from schema 1 to 2 (project in every key): %lld spans and %lld traces"
           " kept; %lld trace ids written by several projects became %lld traces of their own",
           path, (long long)spans, (long long)traces, (long long)shared,
           (long long)(traces2 - traces));
    return 0;
}

/*
 * Brings the schema of |db| to SCHEMA_VERSION: creates it on a fresh file,
 * migrates an older one (one transaction), refuses a newer one. 0 / -1 after
 * logging.
 */
static int schema_setup(const char *id, sqlite3 *db, const char *path)
{
    int64_t version = scalar(db, "PRAGMA user_version");
    if (version == SCHEMA_VERSION)
        return exec_logged(id, db, SCHEMA, "cannot create the schema", path);
    if (version > SCHEMA_VERSION || version < 0) {
        pc_log(PC_LOG_ERROR, id,
               "%s has schema version %lld; this collector knows versions up to %d (written by "
               "a newer collector? use that one, or another directory)",
               path, (long long)version, SCHEMA_VERSION);
        return -1;
    }
    /* user_version 0: a fresh file, or version 1 (which did not set it). */
    if (exec_logged(id, db, "BEGIN IMMEDIATE", "cannot lock the database", path) < 0) return -1;
    int64_t v1 =
        scalar(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spans'");
    int rc = v1 > 0 ? migrate_1_2(id, db, path)
                    : exec_logged(id, db, SCHEMA, "cannot create the schema", path);
    if (rc == 0)
        rc = exec_logged(id, db, "PRAGMA user_version = " STR(SCHEMA_VERSION),
                         "cannot set the schema version", path);
    if (rc == 0) rc = exec_logged(id, db, "COMMIT", "cannot commit the schema", path);
    if (rc < 0 && !sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---------------------------------------------------------------- writer -- */

sqlite3 *pc_local_db_open_writer(const char *id, const char *path, bool sync_full)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, id, "cannot open %s: %s", path,
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
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
    /* Checkpoint every 16384 pages (64 MB of WAL at 4 KB pages) instead of
     * SQLite's 1000: local.c commits in chunks, and with random-key indexes
     * each chunk dirties thousands of pages, so the default checkpointed (and
     * fsynced) after nearly every commit, copying the same index pages again. */
    sqlite3_wal_autocheckpoint(db, 16384);
    if (schema_setup(id, db, path) < 0) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static int prepare(const char *id, sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK) return 0;
    pc_log(PC_LOG_ERROR, id, "cannot prepare statement: %s", sqlite3_errmsg(db));
    return -1;
}

int pc_local_writer_init(pc_local_writer *w, const char *id, sqlite3 *db)
{
    memset(w, 0, sizeof(*w));
    w->db = db;
    w->id = id;
    if (prepare(id, db, "BEGIN IMMEDIATE", &w->begin) < 0 ||
        prepare(id, db, "COMMIT", &w->commit) < 0 ||
        prepare(id, db, "ROLLBACK", &w->rollback) < 0 ||
        prepare(id, db, INS_SPAN, &w->ins_span) < 0 ||
        prepare(id, db, UPSERT_TRACE, &w->upsert_trace) < 0 ||
        prepare(id, db, PURGE_SPANS, &w->purge_spans) < 0 ||
        prepare(id, db, PURGE_TRACES, &w->purge_traces) < 0)
        return -1;
    return 0;
}

void pc_local_writer_fini(pc_local_writer *w)
{
    sqlite3_finalize(w->begin);
    sqlite3_finalize(w->commit);
    sqlite3_finalize(w->rollback);
    sqlite3_finalize(w->ins_span);
    sqlite3_finalize(w->upsert_trace);
    sqlite3_finalize(w->purge_spans);
    sqlite3_finalize(w->purge_traces);
    memset(w, 0, sizeof(*w));
}

/* Runs a statement without result rows. Returns the SQLite result code. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int64_t pc_local_writer_purge(pc_local_writer *w, int64_t cutoff_ns)
{
    int rc = run(w->begin);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(w->purge_spans, 1, cutoff_ns);
        sqlite3_bind_int64(w->purge_traces, 1, cutoff_ns);
        rc = run(w->purge_spans);
        if (rc == SQLITE_OK) rc = run(w->purge_traces);
    }
    int64_t deleted = rc == SQLITE_OK ? sqlite3_changes(w->db) : 0;
    if (rc == SQLITE_OK) rc = run(w->commit);
    if (rc != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, w->id, "retention: cannot delete expired traces: %s",
               sqlite3_errmsg(w->db));
        if (!sqlite3_get_autocommit(w->db)) run(w->rollback);
        return -1;
    }
    return deleted;
}

/* ---------------------------------------------------------- reader pool -- */

struct pc_local_reader {
    const char *id;
    char *path;
    int64_t timeout_ns; /* statement time limit */
    pthread_mutex_t mu;
    sqlite3 *idle[POOL_MAX];
    int n_idle;
};

pc_local_reader *pc_local_reader_create(const char *id, const char *path,
                                        int64_t query_timeout_ms)
{
    pc_local_reader *r = pc_xcalloc(1, sizeof(*r));
    r->id = id;
    r->timeout_ns = query_timeout_ms * 1000000;
    r->path = pc_xstrdup(path);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void pc_local_reader_destroy(pc_local_reader *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_idle; i++)
        sqlite3_close(r->idle[i]);
    pthread_mutex_destroy(&r->mu);
    free(r->path);
    free(r);
}

/* Lends a read-only connection (an idle one or a new one), or NULL after logging. */
static sqlite3 *acquire(pc_local_reader *r)
{
    sqlite3 *db = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->n_idle > 0) db = r->idle[--r->n_idle];
    pthread_mutex_unlock(&r->mu);
    if (db) return db;

    int rc = sqlite3_open_v2(r->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, r->id, "cannot open %s for reading: %s", r->path,
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    return db;
}

/* Gives |db| back; |ok| false closes it (it failed, so do not keep it around). */
static void release(pc_local_reader *r, sqlite3 *db, bool ok)
{
    if (!db) return;
    if (ok) {
        pthread_mutex_lock(&r->mu);
        if (r->n_idle < POOL_MAX) {
            r->idle[r->n_idle++] = db;
            db = NULL;
        }
        pthread_mutex_unlock(&r->mu);
    }
    sqlite3_close(db);
}

/* ----------------------------------------------------------------- reads -- */

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static void read_trace(sqlite3_stmt *st, pc_trace_row *r)
{
    r->trace_id = col_text(st, 0);
    r->project_id = col_text(st, 1);
    r->service_name = col_text(st, 2);
    r->root_span_id = col_text(st, 3);
    r->root_span_name = col_text(st, 4);
    r->status = col_text(st, 5);
    r->source = col_text(st, 6);
    r->started_ns = sqlite3_column_int64(st, 7);
    r->completed_ns = sqlite3_column_int64(st, 8);
    r->created_ns = sqlite3_column_int64(st, 9);
    r->span_count = sqlite3_column_int64(st, 10);
    r->input_tokens = sqlite3_column_int64(st, 11);
    r->output_tokens = sqlite3_column_int64(st, 12);
}

static void read_span(sqlite3_stmt *st, pc_span_row *r)
{
    r->trace_id = col_text(st, 0);
    r->span_id = col_text(st, 1);
    r->parent_span_id = col_text(st, 2);
    r->project_id = col_text(st, 3);
    r->name = col_text(st, 4);
    r->kind = sqlite3_column_int(st, 5);
    r->span_type = col_text(st, 6);
    r->service_name = col_text(st, 7);
    r->status = col_text(st, 8);
    r->status_message = col_text(st, 9);
    r->source = col_text(st, 10);
    r->trace_state = col_text(st, 11);
    r->start_ns = sqlite3_column_int64(st, 12);
    r->end_ns = sqlite3_column_int64(st, 13);
    r->created_ns = sqlite3_column_int64(st, 14);
    r->llm_provider = col_text(st, 15);
    r->llm_model = col_text(st, 16);
    r->input_tokens = sqlite3_column_int64(st, 17);
    r->output_tokens = sqlite3_column_int64(st, 18);
    r->attributes = col_text(st, 19);
    r->events = col_text(st, 20);
    r->links = col_text(st, 21);
    r->resource = col_text(st, 22);
    r->scope = col_text(st, 23);
}

/*
 * One query: its connection, statement and deadline.
 *
 * Time limit: SQLite calls the progress handler every PROGRESS_OPS virtual
 * machine instructions; past the deadline it answers non-zero and the step
 * fails with SQLITE_INTERRUPT. One instruction can be long (a function over
 * a 2 MB value), so search does not use LIKE (whose %...% matching costs
 * value length x pattern length per row) but pc_contains (local_contains.h):
 * linear in the value, checking the same deadline as it goes.
 */
#define PROGRESS_OPS 1000

typedef struct query {
    pc_local_reader *r;
    sqlite3 *db;
    sqlite3_stmt *st;
    const char *what; /* for the log line */
    int64_t deadline; /* pc_time_mono_ns */
    bool timed_out;
} query;

static int past_deadline(void *ud)
{
    query *q = ud;
    if (pc_time_mono_ns() > q->deadline) q->timed_out = true;
    return q->timed_out;
}

static int query_open(query *q, pc_local_reader *r, const char *sql, const char *what)
{
    q->r = r;
    q->st = NULL;
    q->what = what;
    q->deadline = pc_time_mono_ns() + r->timeout_ns;
    q->timed_out = false;
    q->db = acquire(r);
    if (!q->db) return -1;
    sqlite3_progress_handler(q->db, PROGRESS_OPS, past_deadline, q);
    pc_local_contains_register(q->db, past_deadline, q);
    if (sqlite3_prepare_v2(q->db, sql, -1, &q->st, NULL) != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, r->id, "%s: %s", what, sqlite3_errmsg(q->db));
        release(r, q->db, false);
        q->db = NULL;
        return -1;
    }
    return 0;
}

/* Ends |q|; |rc| is the last sqlite3_step result. Returns 0, PC_STORE_TIMEOUT
 * past the deadline, or -1 after logging. */
static int query_close(query *q, int rc)
{
    bool ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
    bool timeout = !ok && q->timed_out;
    if (timeout)
        pc_log(PC_LOG_WARN, q->r->id, "%s: stopped at the query time limit (%lld ms)", q->what,
               (long long)(q->r->timeout_ns / 1000000));
    else if (!ok)
        pc_log(PC_LOG_ERROR, q->r->id, "%s: %s", q->what, sqlite3_errmsg(q->db));
    sqlite3_finalize(q->st);
    sqlite3_progress_handler(q->db, 0, NULL, NULL);
    release(q->r, q->db, ok || timeout);
    return ok ? 0 : timeout ? PC_STORE_TIMEOUT : -1;
}

static void bind_cstr(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

/* Steps |q| and hands every row to |cb| as a trace, until done or cb asks to stop. */
static int each_trace(query *q, pc_trace_cb cb, void *ud)
{
    int rc;
    while ((rc = sqlite3_step(q->st)) == SQLITE_ROW) {
        pc_trace_row row;
        read_trace(q->st, &row);
        if (cb(ud, &row) != 0) break;
    }
    return query_close(q, rc);
}

static int list_traces(void *ctx, const pc_trace_filter *f, pc_trace_cb cb, void *ud)
{
    pc_buf sql = PC_BUF_INIT;
    pc_buf_puts(&sql, "SELECT " TRACE_COLS " FROM traces t WHERE 1");
    if (f->project_id) pc_buf_puts(&sql, " AND t.project_id = ?1");
    if (f->service_name) pc_buf_puts(&sql, " AND t.service_name = ?2");
    if (f->status) pc_buf_puts(&sql, " AND t.status = ?3");
    if (f->start_ns) pc_buf_puts(&sql, " AND t.started_ns >= ?4");
    if (f->end_ns) pc_buf_puts(&sql, " AND t.started_ns <= ?5");
    if (f->span_type)
        pc_buf_puts(&sql, " AND EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id"
                          " AND s.project_id = t.project_id AND s.span_type = ?6)");
    if (f->after)
        pc_buf_puts(&sql, " AND (t.started_ns, t.trace_id, t.project_id) < (?9, ?10, ?11)");
    pc_buf_puts(&sql, " ORDER BY " NEWEST " LIMIT ?7 OFFSET ?8");

    query q;
    int rc = query_open(&q, ctx, sql.data, "list traces");
    pc_buf_free(&sql);
    if (rc < 0) return -1;
    if (f->project_id) bind_cstr(q.st, 1, f->project_id);
    if (f->service_name) bind_cstr(q.st, 2, f->service_name);
    if (f->status) bind_cstr(q.st, 3, f->status);
    if (f->start_ns) sqlite3_bind_int64(q.st, 4, f->start_ns);
    if (f->end_ns) sqlite3_bind_int64(q.st, 5, f->end_ns);
    if (f->span_type) bind_cstr(q.st, 6, f->span_type);
    sqlite3_bind_int(q.st, 7, f->limit);
    sqlite3_bind_int(q.st, 8, f->offset > 0 ? f->offset : 0);
    if (f->after) {
        sqlite3_bind_int64(q.st, 9, f->after->started_ns);
        bind_cstr(q.st, 10, f->after->trace_id);
        bind_cstr(q.st, 11, f->after->project_id);
    }
    return each_trace(&q, cb, ud);
}

static int get_trace(void *ctx, const char *project_id, const char *trace_id, pc_trace_cb cb,
                     void *ud)
{
    query q;
    const char *sql = project_id ? "SELECT " TRACE_COLS " FROM traces t"
                                   " WHERE t.trace_id = ?1 AND t.project_id = ?2"
                                 : "SELECT " TRACE_COLS " FROM traces t WHERE t.trace_id = ?1"
                                   " ORDER BY t.project_id";
    if (query_open(&q, ctx, sql, "get trace") < 0) return -1;
    bind_cstr(q.st, 1, trace_id);
    if (project_id) bind_cstr(q.st, 2, project_id);
    return each_trace(&q, cb, ud);
}

static int get_spans(void *ctx, const char *project_id, const char *trace_id, int limit,
                     int offset, pc_span_cb cb, void *ud)
{
    query q;
    if (query_open(&q, ctx,
                   "SELECT " SPAN_COLS " FROM spans WHERE trace_id = ?1 AND project_id = ?2"
                   " ORDER BY start_ns, span_id LIMIT ?3 OFFSET ?4",
                   "get spans") < 0)
        return -1;
    bind_cstr(q.st, 1, trace_id);
    bind_cstr(q.st, 2, project_id ? project_id : "");
    sqlite3_bind_int(q.st, 3, limit);
    sqlite3_bind_int(q.st, 4, offset > 0 ? offset : 0);
    int rc;
    while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
        pc_span_row row;
        read_span(q.st, &row);
        if (cb(ud, &row) != 0) break;
    }
    return query_close(&q, rc);
}

static int search(void *ctx, const char *project_id, const char *text, int limit, pc_trace_cb cb,
                  void *ud)
{
    query q;
#define MATCHES                                                                                    \
    " EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id"                                 \
    "  AND s.project_id = t.project_id"                                                            \
    "  AND (pc_contains(s.name, ?1) OR pc_contains(s.attributes, ?1)))"
    const char *sql = project_id ? "SELECT " TRACE_COLS " FROM traces t WHERE t.project_id = ?3"
                                   " AND" MATCHES " ORDER BY " NEWEST " LIMIT ?2"
                                 : "SELECT " TRACE_COLS " FROM traces t WHERE" MATCHES
                                   " ORDER BY " NEWEST " LIMIT ?2";
#undef MATCHES
    if (query_open(&q, ctx, sql, "search") < 0) return -1;
    bind_cstr(q.st, 1, text);
    sqlite3_bind_int(q.st, 2, limit);
    if (project_id) bind_cstr(q.st, 3, project_id);
    return each_trace(&q, cb, ud);
}

static int health(void *ctx, char *msg, int msglen)
{
    pc_local_reader *r = ctx;
    sqlite3 *db = acquire(r);
    if (!db) {
        snprintf(msg, (size_t)msglen, "embedded store: cannot open the database");
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM traces LIMIT 1", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    bool ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    if (!ok) {
        snprintf(msg, (size_t)msglen, "embedded store: %s", sqlite3_errmsg(db));
        pc_log(PC_LOG_WARN, r->id, "health: %s", msg);
    }
    sqlite3_finalize(st);
    release(r, db, ok);
    return ok ? 0 : -1;
}

const pc_store_ops pc_local_store_ops = {
    .list_traces = list_traces,
    .get_trace = get_trace,
    .get_spans = get_spans,
    .search = search,
    .health = health,
};
