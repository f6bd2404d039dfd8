/*
 * local_migrate_v2.c - the embedded store's first schemas and the steps out of
 * them: version 2 (created by 1 -> 2) and the copies of 1 -> 2 and 2 -> 3 (see
 * local_migrate_v2.h).
 *
 * Where it sits: pc_local_schema_setup (local_schema.c, which holds the
 * current schema and the contract every version step keeps) runs these steps
 * first, in its one migration transaction, on a file of version 1 or 2.
 */
#include "local_migrate_v2.h"

#include "local_schema.h"
#include "local_store.h"

#include "log.h"

#include <stdint.h>

/* Version 2, created by migration 1 -> 2 before 2 -> 3 runs. */
static const char SCHEMA_V2[] =
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

#define SPAN_COLS_V2                                                                               \
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
 * Version 1 -> 2, run inside pc_local_schema_setup's one transaction.
 * Version 1's indexes have the names version 2 uses, and a renamed table
 * keeps its indexes, so they are dropped first. Rows are copied in rowid
 * order so "first write" (the lowest rowid) stays first.
 */
static const char MIGRATE_1_2[] =
    "DROP INDEX IF EXISTS spans_trace_type; DROP INDEX IF EXISTS traces_started;"
    "DROP INDEX IF EXISTS traces_project; DROP INDEX IF EXISTS traces_service;"
    "DROP INDEX IF EXISTS traces_status; DROP INDEX IF EXISTS traces_created;"
    "ALTER TABLE spans RENAME TO spans_v1;"
    "ALTER TABLE traces RENAME TO traces_v1;";
static const char MIGRATE_1_2_COPY[] =
    "INSERT INTO spans (" SPAN_COLS_V2 ") SELECT " SPAN_COLS_V2 " FROM spans_v1 ORDER BY rowid;"
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

int pc_local_migrate_1_2(const char *id, sqlite3 *db, const char *path)
{
    if (pc_local_exec(id, db, MIGRATE_1_2, "schema migration 1 -> 2", path) < 0 ||
        pc_local_exec(id, db, SCHEMA_V2, "schema migration 1 -> 2", path) < 0)
        return -1;
    int64_t spans = pc_local_scalar(db, "SELECT count(*) FROM spans_v1");
    int64_t traces = pc_local_scalar(db, "SELECT count(*) FROM traces_v1");
    if (pc_local_exec(id, db, MIGRATE_1_2_COPY, "schema migration 1 -> 2", path) < 0) return -1;
    int64_t shared = pc_local_scalar(db, "SELECT count(*) FROM temp.shared_ids");
    int64_t spans2 = pc_local_scalar(db, "SELECT count(*) FROM spans");
    int64_t traces2 = pc_local_scalar(db, "SELECT count(*) FROM traces");
    if (pc_local_exec(id, db, "DROP TABLE temp.shared_ids", "schema migration 1 -> 2", path) < 0)
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


/* The bit of a span_type name (1 << pc_span_type), as SQL over column |c|. */
#define TYPE_BIT(c)                                                                                \
    "CASE " c " WHEN 'custom' THEN 1 WHEN 'agent' THEN 2 WHEN 'llm' THEN 4 WHEN 'tool' THEN 8"    \
    " WHEN 'retrieval' THEN 16 WHEN 'embedding' THEN 32 ELSE 0 END"

/*
 * Version 2 -> 3, inside pc_local_schema_setup's transaction. Index names
 * are shared by both versions and a renamed table keeps its indexes, so they
 * go first.
 * Traces get tids in first-ingest order; spans are copied trace by trace in
 * their old rowid order (first write stays first).
 */
static const char MIGRATE_2_3[] =
    "DROP INDEX IF EXISTS spans_trace_type; DROP INDEX IF EXISTS traces_started;"
    "DROP INDEX IF EXISTS traces_project; DROP INDEX IF EXISTS traces_service;"
    "DROP INDEX IF EXISTS traces_status; DROP INDEX IF EXISTS traces_created;"
    "ALTER TABLE spans RENAME TO spans_v2;"
    "ALTER TABLE traces RENAME TO traces_v2;";
static const char MIGRATE_2_3_COPY[] =
    "INSERT INTO traces (trace_id, project_id, service_name, root_span_id, root_span_name,"
    " has_root, status, source, started_ns, completed_ns, created_ns, span_count, input_tokens,"
    " output_tokens, span_types)"
    " SELECT t.trace_id, t.project_id, t.service_name, t.root_span_id, t.root_span_name,"
    "  t.has_root, t.status, t.source, t.started_ns, t.completed_ns, t.created_ns, t.span_count,"
    "  t.input_tokens, t.output_tokens,"
    "  coalesce((SELECT CAST(total(DISTINCT " TYPE_BIT("s.span_type") ") AS INTEGER)"
    "   FROM spans_v2 s WHERE s.trace_id = t.trace_id AND s.project_id = t.project_id), 0)"
    " FROM traces_v2 t ORDER BY t.created_ns, t.trace_id, t.project_id;"
    "INSERT INTO spans (tid, span_id, parent_span_id, name, kind, span_type, service_name,"
    " status, status_message, source, trace_state, start_ns, end_ns, created_ns, llm_provider,"
    " llm_model, input_tokens, output_tokens, attributes, events, links, resource, scope)"
    " SELECT t.tid, s.span_id, s.parent_span_id, s.name, s.kind, s.span_type, s.service_name,"
    "  s.status, s.status_message, s.source, s.trace_state, s.start_ns, s.end_ns, s.created_ns,"
    "  s.llm_provider, s.llm_model, s.input_tokens, s.output_tokens, s.attributes, s.events,"
    "  s.links, s.resource, s.scope"
    " FROM spans_v2 s JOIN traces t ON t.trace_id = s.trace_id AND t.project_id = s.project_id"
    " ORDER BY t.tid, s.rowid;";

int pc_local_migrate_2_3(const char *id, sqlite3 *db, const char *path, const char *schema)
{
    if (pc_local_exec(id, db, MIGRATE_2_3, "schema migration 2 -> 3", path) < 0 ||
        pc_local_exec(id, db, schema, "schema migration 2 -> 3", path) < 0)
        return -1;
    int64_t spans = pc_local_scalar(db, "SELECT count(*) FROM spans_v2");
    int64_t traces = pc_local_scalar(db, "SELECT count(*) FROM traces_v2");
    if (pc_local_exec(id, db, MIGRATE_2_3_COPY, "schema migration 2 -> 3", path) < 0) return -1;
    int64_t spans3 = pc_local_scalar(db, "SELECT count(*) FROM spans");
    int64_t traces3 = pc_local_scalar(db, "SELECT count(*) FROM traces");
    if (spans3 != spans || traces3 != traces) {
        pc_log(PC_LOG_ERROR, id,
               "schema migration 2 -> 3 in %s: copied %lld of %lld spans, %lld of %lld traces;"
               " rolled back",
               path, (long long)spans3, (long long)spans, (long long)traces3, (long long)traces);
        return -1;
    }
    if (pc_local_exec(id, db, "DROP TABLE spans_v2; DROP TABLE traces_v2;",
                      "schema migration 2 -> 3", path) < 0)
        return -1;
    pc_log(PC_LOG_INFO, id,
           "migrated %s from schema 2 to 3 (trace ids as integer keys):"
           " %lld spans and %lld traces kept",
           path, (long long)spans, (long long)traces);
    return 0;
}
