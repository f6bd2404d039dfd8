/*
 * local_schema.c - the embedded store's schema (version 10) and its migrations.
 *
 * Where it sits: local_writer.c opens the writer connection and calls
 * pc_local_schema_setup once, at start, before any write; everything the
 * writer (local_txn.c) and the readers (local_store.c) do relies on the
 * contract below.
 *
 * Schema version 10 (<directory>/prela.db, WAL, PRAGMA user_version 10; the
 * search index span_text in <directory>/prela-search.db since version 7,
 * local_index.c):
 *
 *   traces     one row per (project_id, trace_id) (UNIQUE traces_key): the same
 *              trace id in two projects is two traces. tid (INTEGER PRIMARY
 *              KEY) is given at the trace's first write, so it grows with
 *              ingest time. Summary fields as version 2 kept them (min start,
 *              max end or start, span_count of spans really inserted, status
 *              'error' once any span failed, token sums over spans with
 *              tokens > 0, source/created_ns/service from the first write,
 *              root fields from the first parentless span), plus span_types:
 *              the OR of 1 << pc_span_type of its spans (the span_type filter
 *              reads the trace row, no span index). Version 4 (issue 13):
 *              session_id and user_id, the smallest (bytewise) non-empty one
 *              among its spans ('' when none); cost_usd, the sum of its
 *              spans' known costs (NULL when none). Maintained like the
 *              token sums: from the spans a transaction really inserted, so
 *              a redelivered span changes nothing, and min/sum merge in any
 *              order. Version 9 (issue 15): attr_bloom, the attribute filter
 *              of its spans (local_bloom.h; NULL on rows written before 9,
 *              "maybe" to any pair), ORed with each later transaction's.
 *              Indexes of version 4: traces_session (session_id,
 *              started_ns) and traces_user (user_id, started_ns), partial
 *              (WHERE id != ''): the session/user list filters walk them in
 *              list order, a session's figures are read through
 *              traces_session, and a trace without a session or user costs
 *              the writer nothing there; traces_completed (completed_ns):
 *              stats read the traces that end at or after the window's
 *              start, and the sessions list walks it newest first (a
 *              session's last_seen is its traces' largest completed_ns; see
 *              local_agg.c).
 *   trace_models  (model, tid) WITHOUT ROWID, version 4: the distinct
 *              llm_model and llm_request_model values of each trace's spans
 *              ('' never), INSERT OR IGNORE by the writer per trace and
 *              transaction; the model filter reads it instead of spans (one
 *              row per trace and model, keyed model first, so a model's
 *              traces are one range and new tids append to it). Retention
 *              deletes the rows of the expired traces (found through their
 *              spans' models) before their spans.
 *   spans      one row per (tid, span_id) (UNIQUE spans_key), INSERT OR IGNORE:
 *              first write wins. The row holds no trace id or project: its
 *              trace row does (join on tid). attributes, events, links,
 *              resource, scope hold span.h's JSON text. Version 4 added, as
 *              span.h has them: llm_request_model, cache_read_tokens,
 *              cache_write_tokens, reasoning_tokens (-1 unknown), cost_usd,
 *              cost_input_usd, cost_output_usd (REAL, NULL unknown),
 *              cost_source ('', 'sent', 'table'), session_id, user_id,
 *              input_messages, output_messages ('' none; messages are JSON
 *              array text). No index on any of them: the per-span write
 *              cost is binding them.
 *   span_text  (in prela-search.db from version 7: local_index.c has its file,
 *              thread and upto; what it holds is as below, up to the spans
 *              past upto, which search matches in local_recent.h's text or
 *              reads directly)
 *              FTS5, contentless (content=''), detail=none, columnsize=0,
 *              tokenizer pc_trigram (local_text.h: the distinct case-folded
 *              trigrams of each line). rowid = a search block, tid >>
 *              PC_LOCAL_BLOCK_BITS (16 traces in first-write order): one
 *              document per block and transaction, the search text
 *              (local_text.h) of the spans it inserted there. A rowid written
 *              again adds to the same block: with detail=none FTS5 keeps only
 *              (trigram, rowid) presence, so a block is found by the union of
 *              its documents. Invariant: the index holds for block b exactly
 *              the trigrams of the spans now stored in b. It only names
 *              candidate blocks: search verifies their traces with
 *              pc_contains over their spans' recomputed text. Retention
 *              removes a block's trigrams with FTS5's 'delete' and the
 *              recomputed text of all its spans (trigrams never span a line,
 *              so order does not matter), then indexes again the traces of
 *              the block that stay.
 *   span_dicts version 5 (issue 15, compression): (id INTEGER PRIMARY KEY,
 *              created_ns, samples, dict BLOB): the zstd dictionaries the
 *              writer trained on the store's first spans (local_zip.h), id
 *              being the dictionary's own zstd id. From version 5 on, the
 *              spans columns attributes, events, links, resource, scope,
 *              input_messages and output_messages hold either the JSON as
 *              TEXT (rows of versions 1-4, rows written before a dictionary
 *              exists, short values) or a BLOB: one zstd frame compressed
 *              with the span_dicts row its header names. Every read goes
 *              through pc_unzip(column); the search text and the FTS5 index
 *              are made from the decompressed JSON (never the compressed
 *              bytes), so span_text's invariant is unchanged. A dictionary
 *              row is committed before any row that uses it and never
 *              deleted.
 *   span_events  version 5 (issue 13): events attached to spans from outside
 *              them (OTLP GenAI log records: otlp_events.h, span_events.h),
 *              one row per event, eid INTEGER PRIMARY KEY in write order;
 *              UNIQUE span_events_key (project_id, trace_id, span_id, ckey),
 *              ckey the event's content key (pc_span_event_key of its JSON),
 *              INSERT OR IGNORE: a redelivered record adds nothing. event is
 *              span.h's JSON object of one event; time_ns its time, created_ns
 *              when written. Not tied to a trace row: a record may come
 *              before its span, after it, or alone; reads join on
 *              (project_id, trace_id, span_id) through span_events_key.
 *              span_events_created (created_ns): retention deletes the rows
 *              written before the cutoff, as it deletes traces.
 *   span_event_text  FTS5 like span_text (contentless, detail=none,
 *              pc_trigram), rowid = eid: the search text of the event
 *              (pc_search_text('', '{}', '[' || event || ']')). Search takes
 *              the traces of its matching rows as candidates besides
 *              span_text's blocks; retention deletes a row's trigrams with
 *              the row.
 *   stats_hours  version 6 (issue 13, stats at scale): (hour INTEGER PRIMARY
 *              KEY: start_ns / 1 h, built, dirty_ns). Invariant: every hour
 *              that holds a span has a row (an hour without one holds none);
 *              built = 1 only while stats_rollup holds exactly the figures of
 *              that hour's spans now. Every write that can change an hour's
 *              figures (a span inserted: its hour; a span added to a stored
 *              trace before the stored first span of one of its groups, or in
 *              a group new to it: the hours the trace's count moves between;
 *              retention: the hours of the spans it deletes), in the same
 *              transaction, either adds its figures to (retention: takes them
 *              from) the rows of an hour with built = 1, or of a new hour it
 *              creates with built = 1, and deletes the stats_hours row of an
 *              hour it leaves without spans; or, for an hour with built = 0 or
 *              whose rows do not take the figures, sets built = 0 and dirty_ns
 *              (wall clock at its commit: a new mark) (local_rollup.h). Until
 *              issue 15's write-time rollups every write did the latter; the
 *              rows mean the same either way, so that change needed no new
 *              version. stats_hours_dirty (dirty_ns) WHERE built = 0: the
 *              builder thread (local_builder.h) builds the hours no write
 *              touched for rollup_quiet, newest first; the writer stores an
 *              hour's figures only if its mark did not change since the
 *              builder read them (local_rollup.h).
 *   stats_rollup  version 6: (kind, hour, project_id, grp) WITHOUT ROWID,
 *              the figures of one hour's spans per project and group: kind
 *              0 (no group: grp ''), 1 model, 2 service, 3 span type; spans,
 *              traces (whose first span of the group is in that hour),
 *              errors, input/output tokens, cost (NULL when none known),
 *              unpriced, bins (histo.h bins of the ended spans' durations:
 *              varint pairs of bin delta and count), and (version 9) priced,
 *              the spans with a known cost (a read subtracts figures: the
 *              cost is known while priced > 0). Rows of an hour with
 *              built = 0 are stale and never read; building replaces them.
 *              local_stats.c reads and builds them.
 *   trace_bounds  version 8 (issue 15): one row (one = 1), longest_ns: at
 *              least completed_ns - started_ns of every stored trace (the
 *              writer raises it in the transaction that stores a longer
 *              trace; retention never lowers it). So the traces that can
 *              hold a span of [lo, hi) start in [lo - longest_ns, hi): the
 *              stats gather (local_stats.c) reads that range of
 *              traces_started instead of every trace starting before hi or
 *              ending after lo (at 10M spans over 30 days, an hour in the
 *              middle read half the store, and its rollup took 1.1 s).
 *
 * Why this layout (issue 15: 10 million spans on 2 cores):
 * - Version 2 keyed spans by (trace_id, project_id, span_id) and indexed
 *   (trace_id, project_id, span_type): two indexes of random text keys, one
 *   entry per span, which stop fitting in any cache long before 10M spans, so
 *   every commit rewrote leaf pages all over them. Here the only per-span
 *   b-trees are spans (rowid) and spans_key (tid, span_id), both in ingest
 *   order: a commit appends. The random-key indexes left (traces_key and the
 *   list indexes) have one entry per trace, a tenth of the spans.
 * - traces_created has created_ns alone (tid follows). traces_errors
 *   (version 10) holds the failed traces in list order (started_ns,
 *   trace_id, project_id; partial: WHERE status = 'error'): without an
 *   index of errors, service + status=error read a tenth of a service's rows,
 *   in tid order, not start order (189 ms p99 at 1M spans against 1-9 ms).
 *   Versions 3 to 9 had traces_status (status, started_ns), an entry for
 *   every trace. Every list index keyed by start time takes a random leaf
 *   page per trace when traces arrive out of start order (a backfill), and
 *   each such page is written twice (the log, then its checkpoint): with
 *   10M spans stored, the collector dirtied 9,970 bytes of file pages per
 *   span without traces_status, 11,050-11,550 with it (issue 15's bench
 *   load, random order; the rate rose by about a tenth). A
 *   success filter (nine traces in ten) walks traces_started and reads the
 *   row's status.
 *   traces_started holds the whole list order (started_ns, trace_id,
 *   project_id), so a page deep in the list skips its offset in the index
 *   alone and reads only its own rows.
 * - Search: version 2 scanned every span's JSON (seconds at 1M spans); the
 *   trigram index answers substring queries of 3+ characters; detail=none and
 *   contentless keep it to the rowid lists (no positions, no copy of the
 *   text). Its cost is per distinct trigram of a document (FTS5's pending
 *   hash, then its segments): measured on the benchmark's spans (prose
 *   prompts), one document per span cost about 80 us of CPU per span and 375
 *   bytes, one per trace about 45 us and 170 bytes, so documents are blocks
 *   of 16 traces, whose prose shares most trigrams (see the measured figures
 *   in the report of issue 15); search verifies 16 traces per candidate block.
 * - Rowid tables, not WITHOUT ROWID: span rows carry prompt text (KBs), and
 *   SQLite advises rowid tables for large rows; traces is keyed by tid.
 * - New columns (issue 13: session_id, user_id, models, cost, messages) are
 *   ALTER TABLE ADD COLUMN with a constant default: no table rewrite (3 -> 4).
 * - Version 4 adds per-trace structures only (three trace indexes, two of
 *   them partial, and trace_models), nothing per span: issue 15 wants the
 *   writer faster, and a span index is what made version 2 slow.
 * - Sessions are not a table: local_agg.c says why.
 * - Version 5 compresses the JSON columns (issue 15: 1,525 of the 1,656 bytes
 *   per span at 10M spans were the spans table, most of it attributes,
 *   resource and scope JSON; the benchmark's attributes compress about 3x and
 *   a repeated resource about 8x with a dictionary trained on the store's own
 *   spans, against well under 2x for a frame of its own without one).
 *   Per column, not per row, so a read decompresses only what it selects and
 *   the row layout and every index stay as they were.
 * - FTS5 merge settings (FTS_MERGE here for span_event_text, local_index.c's
 *   SCHEMA for span_text, set at every start; FTS5 keeps them in
 *   span_text_config and span_event_text_config, where any version reads
 *   them: how segments merge, not what the index holds, so no schema
 *   version): automerge 16, crisismerge 64 (FTS5's defaults 4 and 16). Every
 *   commit flushes the transaction's trigrams as a new segment, and FTS5
 *   merges segments level by level, rewriting each entry once per level; 16
 *   segments per level instead of 4 halve the levels (at 1M spans: 3 levels,
 *   33 segments, against 6 and 12). Measured on the 1M-span load of
 *   bench-query-scale (issue 15, 2 runs each, writer thread CPU): commit
 *   16.9 and 17.0 s against 18.4 and 18.4 s, about 1.5 us of the writer's
 *   38-40 us per span; the levels, so the gain, grow with the store. Cost: a
 *   trigram's lookup reads up to 15 segments per level; search p99 stayed
 *   within the noise of the loaded 2 cores.
 *
 * Versions and migration: version 1 is the first release's schema (no
 * user_version, keys without the project); version 2 added the project to
 * every key; version 3 keyed traces by tid and added the search index.
 * pc_local_schema_setup migrates 1 -> 2 -> ... -> 10, 2 -> ... -> 10, ...,
 * or 9 -> 10 once, at start, in ONE transaction (an interrupted
 * migration leaves the old version intact and simply runs again), logging
 * one line per step. Up to 3:
 * old tables renamed, new ones created (with version 4's columns), every row
 * copied (tids in first-ingest order), span_types built (the search index: 7)
 * for the old rows, old tables dropped. 3 -> 4: the new columns added (a
 * version 3 file only), the new tables and indexes created, and the trace
 * fields and trace_models filled from the spans already stored (old rows
 * hold the defaults of the new span columns, so old traces get '' / NULL
 * and their llm_model in trace_models). 4 -> 5 (migrate_4_5): span_dicts
 * (compression; no row is rewritten: TEXT stays valid, and the writer trains
 * a dictionary on the spans it writes next), span_events and span_event_text
 * (attached events, empty) created. 5 -> 6 (migrate_5_6): stats_hours and
 * stats_rollup created, and a row with built = 0 for every hour that holds a
 * span (one scan of spans; the builder builds them afterwards, and until then
 * reads gather those hours from the spans). 6 -> 7: span_text dropped from
 * prela.db; local_index.c then creates prela-search.db and indexes every
 * stored span into it at the same start (its upto is 0), before the writer
 * takes data. 7 -> 8: trace_bounds created, its longest_ns the longest
 * stored trace (one scan of traces). 8 -> 9 (every path from 8 or older,
 * migrate_8_9): traces.attr_bloom added where the table lacks it, no row
 * rewritten (old traces keep NULL: verified span by span); stats_rollup.priced
 * added, every built hour marked unbuilt (the builder builds it again). 9 -> 10
 * (every path ends with it, migrate_9_10): traces_status dropped,
 * traces_errors created (one scan of traces). A file with a
 * newer version than this binary knows is refused.
 */
#include "local_schema.h"
#include "local_index.h"
#include "local_migrate_v2.h"
#include "local_store.h"

#include "log.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/*
 * The columns version 4 added (issue 13), as ALTER TABLE ADD COLUMN takes
 * them: constant defaults, so 3 -> 4 rewrites no row, and a fresh file gets
 * the same columns in the same order. Unknown: '' for text, -1 for token
 * counts, NULL for costs (span.h's NAN).
 */
#define SPAN_COLS_V4                                                                               \
    ", llm_request_model TEXT NOT NULL DEFAULT ''"                                                 \
    ", cache_read_tokens INTEGER NOT NULL DEFAULT -1"                                              \
    ", cache_write_tokens INTEGER NOT NULL DEFAULT -1"                                             \
    ", reasoning_tokens INTEGER NOT NULL DEFAULT -1"                                               \
    ", cost_usd REAL, cost_input_usd REAL, cost_output_usd REAL"                                   \
    ", cost_source TEXT NOT NULL DEFAULT ''"                                                       \
    ", session_id TEXT NOT NULL DEFAULT '', user_id TEXT NOT NULL DEFAULT ''"                      \
    ", input_messages TEXT NOT NULL DEFAULT '', output_messages TEXT NOT NULL DEFAULT ''"
#define TRACE_COLS_V4                                                                              \
    ", session_id TEXT NOT NULL DEFAULT '', user_id TEXT NOT NULL DEFAULT '', cost_usd REAL"
/* Version 9's column (issue 15): the attribute filter, NULL on older rows. */
#define TRACE_COLS_V9 ", attr_bloom BLOB"
/* Version 9's stats_rollup column (issue 13): spans with a known cost, so a
 * partial hour can be read as its rollup minus the rest of the hour. */
#define STATS_COLS_V9 " priced INTEGER NOT NULL DEFAULT 0,"
/* Version 4's new indexes and tables (the contract above says why each). */
#define INDEXES_V4                                                                                 \
    "CREATE INDEX IF NOT EXISTS traces_session ON traces (session_id, started_ns)"                 \
    " WHERE session_id != '';"                                                                     \
    "CREATE INDEX IF NOT EXISTS traces_user ON traces (user_id, started_ns) WHERE user_id != '';"  \
    "CREATE INDEX IF NOT EXISTS traces_completed ON traces (completed_ns);"                        \
    "CREATE TABLE IF NOT EXISTS trace_models (model TEXT NOT NULL, tid INTEGER NOT NULL,"          \
    " PRIMARY KEY (model, tid)) WITHOUT ROWID;"

/* Version 5's compression dictionaries (the contract above; local_zip.h).
 * Issue 15's part of 4 -> 5, kept apart so other 4 -> 5 changes merge beside it. */
#define TABLES_V5_ZIP                                                                              \
    "CREATE TABLE IF NOT EXISTS span_dicts (id INTEGER PRIMARY KEY, created_ns INTEGER NOT NULL," \
    " samples INTEGER NOT NULL, dict BLOB NOT NULL);"

/* Version 10's index of failed traces (the contract above). */
#define INDEX_V10_ERRORS                                                                           \
    "CREATE INDEX IF NOT EXISTS traces_errors ON traces (started_ns, trace_id, project_id)"       \
    " WHERE status = 'error';"

/* The current schema (version 5, with version 9's traces column and version
 * 10's index), created on a fresh file and by 2 -> 3. */
static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS traces ("
    " tid INTEGER PRIMARY KEY,"
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
    " span_types INTEGER NOT NULL"
    TRACE_COLS_V4 TRACE_COLS_V9 ");"
    "CREATE UNIQUE INDEX IF NOT EXISTS traces_key ON traces (trace_id, project_id);"
    "CREATE INDEX IF NOT EXISTS traces_started ON traces (started_ns, trace_id, project_id);"
    "CREATE INDEX IF NOT EXISTS traces_project ON traces (project_id, started_ns);"
    "CREATE INDEX IF NOT EXISTS traces_service ON traces (service_name, started_ns);"
    INDEX_V10_ERRORS
    "CREATE INDEX IF NOT EXISTS traces_created ON traces (created_ns);"
    INDEXES_V4
    "CREATE TABLE IF NOT EXISTS spans ("
    " tid INTEGER NOT NULL,"
    " span_id TEXT NOT NULL,"
    " parent_span_id TEXT NOT NULL,"
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
    " scope TEXT NOT NULL"
    SPAN_COLS_V4 ");"
    "CREATE UNIQUE INDEX IF NOT EXISTS spans_key ON spans (tid, span_id);"
    TABLES_V5_ZIP;

/* Version 6's stats rollups (issue 13; the contract above). Created after
 * SCHEMA on every path to version 6. */
static const char SCHEMA_V6_STATS[] =
    "CREATE TABLE IF NOT EXISTS stats_hours (hour INTEGER PRIMARY KEY,"
    " built INTEGER NOT NULL, dirty_ns INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS stats_hours_dirty ON stats_hours (dirty_ns) WHERE built = 0;"
    "CREATE TABLE IF NOT EXISTS stats_rollup (kind INTEGER NOT NULL, hour INTEGER NOT NULL,"
    " project_id TEXT NOT NULL, grp TEXT NOT NULL, spans INTEGER NOT NULL,"
    " traces INTEGER NOT NULL, errors INTEGER NOT NULL, input_tokens INTEGER NOT NULL,"
    " output_tokens INTEGER NOT NULL, cost REAL, unpriced INTEGER NOT NULL, bins BLOB NOT NULL,"
    STATS_COLS_V9 " PRIMARY KEY (kind, hour, project_id, grp)) WITHOUT ROWID;";

/* FTS5's merge settings of both trigram indexes ("Why this layout" above). */
static const char FTS_MERGE[] =
    "INSERT INTO span_event_text (span_event_text, rank) VALUES ('automerge', 16);"
    "INSERT INTO span_event_text (span_event_text, rank) VALUES ('crisismerge', 64);";

/* ----------------------------------------------- version 5: span events -- */

/* Version 5's attached events (issue 13; the contract above). Created after
 * SCHEMA on every path to version 5; kept apart so other version 5 additions
 * merge beside it. */
static const char SCHEMA_V5_EVENTS[] =
    "CREATE TABLE IF NOT EXISTS span_events ("
    " eid INTEGER PRIMARY KEY,"
    " project_id TEXT NOT NULL,"
    " trace_id TEXT NOT NULL,"
    " span_id TEXT NOT NULL,"
    " ckey INTEGER NOT NULL,"
    " time_ns INTEGER NOT NULL,"
    " created_ns INTEGER NOT NULL,"
    " event TEXT NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS span_events_key"
    " ON span_events (project_id, trace_id, span_id, ckey);"
    "CREATE INDEX IF NOT EXISTS span_events_created ON span_events (created_ns);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS span_event_text USING fts5(text, content='',"
    " detail=none, columnsize=0, tokenize='pc_trigram');";

/* -------------------------------------------------------------- helpers -- */

int pc_local_exec(const char *id, sqlite3 *db, const char *sql, const char *what,
                  const char *path)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
    pc_log(PC_LOG_ERROR, id, "%s in %s: %s", what, path, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return -1;
}

/* ------------------------------------------------------------ version 4 -- */

/* Version 3 -> 4's new columns (constant defaults: no row is rewritten). */
static const char MIGRATE_3_4[] =
    "ALTER TABLE spans ADD COLUMN llm_request_model TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE spans ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE spans ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE spans ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE spans ADD COLUMN cost_usd REAL;"
    "ALTER TABLE spans ADD COLUMN cost_input_usd REAL;"
    "ALTER TABLE spans ADD COLUMN cost_output_usd REAL;"
    "ALTER TABLE spans ADD COLUMN cost_source TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE spans ADD COLUMN session_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE spans ADD COLUMN user_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE spans ADD COLUMN input_messages TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE spans ADD COLUMN output_messages TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE traces ADD COLUMN session_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE traces ADD COLUMN user_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE traces ADD COLUMN cost_usd REAL;";

/*
 * The version 4 fields derived from spans, for the rows already stored: one
 * pass over spans (into temp.v4_spans: the rows that have any of them), then
 * the trace summaries (smallest non-empty session and user, sum of the known
 * costs) and trace_models. Rows written before version 4 have the column
 * defaults, so for them this changes nothing but trace_models (from
 * llm_model); it is written for every field all the same, so the rule lives in
 * one place whatever the old rows hold.
 */
static const char BACKFILL_4[] =
    "CREATE TEMP TABLE v4_spans AS SELECT tid, llm_model, llm_request_model, session_id,"
    " user_id, cost_usd FROM spans WHERE llm_model != '' OR llm_request_model != ''"
    " OR session_id != '' OR user_id != '' OR cost_usd IS NOT NULL;"
    "INSERT OR IGNORE INTO trace_models (model, tid)"
    " SELECT llm_model, tid FROM temp.v4_spans WHERE llm_model != ''"
    " UNION SELECT llm_request_model, tid FROM temp.v4_spans WHERE llm_request_model != ''"
    " ORDER BY 1, 2;"
    "UPDATE traces SET session_id = coalesce(g.sess, ''), user_id = coalesce(g.usr, ''),"
    " cost_usd = g.cost"
    " FROM (SELECT tid, min(nullif(session_id, '')) AS sess, min(nullif(user_id, '')) AS usr,"
    "  sum(cost_usd) AS cost FROM temp.v4_spans GROUP BY tid) g"
    " WHERE traces.tid = g.tid;"
    "DROP TABLE temp.v4_spans;";

/*
 * Version 3 -> 4 inside the caller's transaction: the new columns when
 * |alter| (a version 3 file; a file migrated from 1 or 2 got them with its
 * new tables), the new tables and indexes, the backfill. Logs what it did.
 * 0 / -1.
 */
static int migrate_3_4(const char *id, sqlite3 *db, const char *path, bool alter)
{
    const char *what = "schema migration 3 -> 4";
    if ((alter && pc_local_exec(id, db, MIGRATE_3_4, what, path) < 0) ||
        pc_local_exec(id, db, SCHEMA, what, path) < 0 ||
        pc_local_exec(id, db, BACKFILL_4, what, path) < 0)
        return -1;
    int64_t traces = pc_local_scalar(db, "SELECT count(*) FROM traces");
    int64_t models = pc_local_scalar(db, "SELECT count(*) FROM trace_models");
    pc_log(PC_LOG_INFO, id,
           "migrated %s from schema 3 to 4 (costs, sessions, users, messages; model index):"
           " %lld traces kept, %lld (model, trace) pairs indexed",
           path, (long long)traces, (long long)models);
    return 0;
}

/* ------------------------------------------------------------ 4 -> 5 -- */

/*
 * Version 4 -> 5 inside the caller's transaction: issue 15's compression
 * (span_dicts, TABLES_V5_ZIP; no row rewritten) and issue 13's attached
 * events (SCHEMA_V5_EVENTS, empty); also the last step of creating a fresh
 * file (|log| false). Both are IF NOT EXISTS. 0 / -1.
 */
static int migrate_4_5(const char *id, sqlite3 *db, const char *path, bool log)
{
    if (pc_local_exec(id, db, TABLES_V5_ZIP, "schema migration 4 -> 5", path) < 0 ||
        pc_local_exec(id, db, SCHEMA_V5_EVENTS, "schema migration 4 -> 5", path) < 0)
        return -1;
    if (log)
        pc_log(PC_LOG_INFO, id,
               "migrated %s from schema 4 to 5 (JSON columns compressed with a trained"
               " dictionary from now on, stored spans kept as they are, none rewritten;"
               " span events from log records)",
               path);
    return 0;
}

/* Version 8's trace_bounds (the contract above): created after SCHEMA on
 * every path from a version below 8 (a fresh file too). */
static const char SCHEMA_V8_BOUNDS[] =
    "CREATE TABLE IF NOT EXISTS trace_bounds (one INTEGER PRIMARY KEY CHECK (one = 1),"
    " longest_ns INTEGER NOT NULL);";
/* Its row, from the stored traces: by 7 -> 8 (and on a fresh file) only, as
 * it scans every trace. The difference of two clients' times may overflow:
 * SQLite then answers a REAL, which reads back as the largest integer (no
 * bound). */
static const char FILL_V8_BOUNDS[] =
    "INSERT OR IGNORE INTO trace_bounds (one, longest_ns)"
    " SELECT 1, max(0, coalesce(max(completed_ns - started_ns), 0)) FROM traces;";

/* ------------------------------------------------------------ 8 -> 9 -- */

/* 1 when table |table| has the column |col|, 0 when not, -1 on failure. */
static int has_column(sqlite3 *db, const char *table, const char *col)
{
    sqlite3_stmt *st = NULL;
    int has = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, col, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) has = sqlite3_column_int(st, 0) > 0;
    }
    sqlite3_finalize(st);
    return has;
}

/*
 * Version 8 -> 9 inside the caller's transaction: traces.attr_bloom and
 * stats_rollup.priced added where the tables lack them (a file of version 3
 * to 8 and 6 to 8; SCHEMA and SCHEMA_V6_STATS have them, so a fresh file or
 * one copied by 2 -> 3 does not). No trace row is rewritten: stored traces
 * keep NULL, which the list reads as "maybe" (local_bloom.h), so they are
 * verified span by span as before. The stored rollups lack priced: their
 * hours are marked unbuilt, and the builder builds them again once quiet
 * (until then reads gather those hours from the spans). |log|: a migration,
 * not a fresh file. 0 / -1.
 */
static int migrate_8_9(const char *id, sqlite3 *db, const char *path, bool log)
{
    const char *what = "schema migration 8 -> 9";
    int bloom = has_column(db, "traces", "attr_bloom");
    int priced = has_column(db, "stats_rollup", "priced");
    if (bloom < 0 || priced < 0) {
        pc_log(PC_LOG_ERROR, id, "%s in %s: cannot read the tables' columns: %s", what, path,
               sqlite3_errmsg(db));
        return -1;
    }
    if (bloom == 0 &&
        pc_local_exec(id, db, "ALTER TABLE traces ADD COLUMN attr_bloom BLOB", what, path) < 0)
        return -1;
    if (priced == 0 &&
        (pc_local_exec(id, db,
                       "ALTER TABLE stats_rollup ADD COLUMN priced INTEGER NOT NULL DEFAULT 0",
                       what, path) < 0 ||
         pc_local_exec(id, db, "UPDATE stats_hours SET built = 0 WHERE built = 1", what, path) < 0))
        return -1;
    if (log)
        pc_log(PC_LOG_INFO, id,
               "migrated %s to schema 9 (attribute filters on trace rows: the %lld stored"
               " traces have none and are checked span by span; %lld hours of stats rollups"
               " to build while the writer is idle)",
               path, (long long)pc_local_scalar(db, "SELECT count(*) FROM traces"),
               (long long)pc_local_scalar(db, "SELECT count(*) FROM stats_hours WHERE built = 0"));
    return 0;
}

/* ----------------------------------------------------------- 9 -> 10 -- */

/*
 * Version 9 -> 10 inside the caller's transaction: the index of every trace's
 * status gives way to the partial index of the failed ones (one scan of
 * traces). |log|: a migration, not a fresh file. 0 / -1.
 */
static int migrate_9_10(const char *id, sqlite3 *db, const char *path, bool log)
{
    const char *what = "schema migration 9 -> 10";
    if (pc_local_exec(id, db, "DROP INDEX IF EXISTS traces_status", what, path) < 0 ||
        pc_local_exec(id, db, INDEX_V10_ERRORS, what, path) < 0)
        return -1;
    if (log)
        pc_log(PC_LOG_INFO, id,
               "migrated %s to schema 10 (an index of the %lld failed traces replaces the"
               " index of every trace's status)",
               path,
               (long long)pc_local_scalar(db,
                                          "SELECT count(*) FROM traces WHERE status = 'error'"));
    return 0;
}

/* ------------------------------------------------------------ 5 -> 6 -- */

/* Every hour that holds a span, not built (stats_hours' invariant). */
static const char BACKFILL_6[] =
    "INSERT OR IGNORE INTO stats_hours (hour, built, dirty_ns)"
    " SELECT DISTINCT start_ns / 3600000000000, 0, 0 FROM spans;";

/*
 * Version 5 -> 6 inside the caller's transaction: the stats rollup tables
 * (SCHEMA_V6_STATS) and a row for every hour holding a span (BACKFILL_6, one
 * scan of spans); also the last step of creating a fresh file (|log| false).
 * 0 / -1.
 */
static int migrate_5_6(const char *id, sqlite3 *db, const char *path, bool log)
{
    const char *what = "schema migration 5 -> 6";
    if (pc_local_exec(id, db, SCHEMA_V6_STATS, what, path) < 0 ||
        pc_local_exec(id, db, BACKFILL_6, what, path) < 0)
        return -1;
    if (log)
        pc_log(PC_LOG_INFO, id,
               "migrated %s from schema 5 to 6 (stats rollups: %lld hours of spans to build"
               " while the writer is idle)",
               path, (long long)pc_local_scalar(db, "SELECT count(*) FROM stats_hours"));
    return 0;
}

int pc_local_schema_setup(const char *id, sqlite3 *db, const char *path)
{
    int64_t version = pc_local_scalar(db, "PRAGMA user_version");
    if (version == PC_LOCAL_SCHEMA_VERSION) {
        const char *what = "cannot create the schema";
        return pc_local_exec(id, db, SCHEMA, what, path) < 0 ||
                       pc_local_exec(id, db, SCHEMA_V5_EVENTS, what, path) < 0 ||
                       pc_local_exec(id, db, SCHEMA_V6_STATS, what, path) < 0 ||
                       pc_local_exec(id, db, SCHEMA_V8_BOUNDS, what, path) < 0 ||
                       pc_local_exec(id, db, FTS_MERGE, "cannot set the search index's merging",
                                     path) < 0
                   ? -1
                   : 0;
    }
    if (version > PC_LOCAL_SCHEMA_VERSION || version < 0) {
        pc_log(PC_LOG_ERROR, id,
               "%s has schema version %lld; this collector knows versions up to %d (written by "
               "a newer collector? use that one, or another directory)",
               path, (long long)version, PC_LOCAL_SCHEMA_VERSION);
        return -1;
    }
    /* user_version 0: a fresh file, or version 1 (which did not set it). */
    if (pc_local_exec(id, db, "BEGIN IMMEDIATE", "cannot lock the database", path) < 0) return -1;
    int rc = 0;
    if (version == 0) {
        int64_t v1 = pc_local_scalar(
            db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spans'");
        if (v1 > 0) {
            rc = pc_local_migrate_1_2(id, db, path);
            version = 2;
        }
    }
    if (rc == 0 && version == 2) rc = pc_local_migrate_2_3(id, db, path, SCHEMA);
    if (rc == 0 && version >= 2 && version <= 3) rc = migrate_3_4(id, db, path, version == 3);
    if (rc == 0 && version < 2)
        rc = pc_local_exec(id, db, SCHEMA, "cannot create the schema", path);
    if (rc == 0 && version == 4)
        rc = pc_local_exec(id, db, SCHEMA, "schema migration 4 -> 5", path);
    if (rc == 0 && version <= 4) rc = migrate_4_5(id, db, path, version >= 2);
    if (rc == 0 && version == 5)
        rc = pc_local_exec(id, db, SCHEMA, "schema migration 5 -> 6", path);
    if (rc == 0 && version == 5)
        rc = pc_local_exec(id, db, SCHEMA_V5_EVENTS, "schema migration 5 -> 6", path);
    if (rc == 0 && version <= 5) rc = migrate_5_6(id, db, path, version >= 2);
    /* 6 -> 7: the search index moves to its own file, which local_index.c
     * creates and fills from the spans at this start */
    if (rc == 0 && version >= 2 && version <= 6)
        rc = pc_local_exec(id, db, "DROP TABLE IF EXISTS span_text", "schema migration 6 -> 7",
                           path);
    if (rc == 0 && version >= 2 && version <= 6)
        pc_log(PC_LOG_INFO, id,
               "migrated %s to schema 7 (the search index moves to " PC_LOCAL_INDEX_FILE
               ", rebuilt from the stored spans at this start)",
               path);
    /* 7 -> 8: the longest trace, for the stats reads' time bound */
    if (rc == 0 && version <= 7)
        rc = pc_local_exec(id, db, SCHEMA_V8_BOUNDS, "schema migration 7 -> 8", path);
    if (rc == 0 && version <= 7)
        rc = pc_local_exec(id, db, FILL_V8_BOUNDS, "schema migration 7 -> 8", path);
    if (rc == 0 && version >= 2 && version <= 7)
        pc_log(PC_LOG_INFO, id, "migrated %s to schema 8 (the longest trace: %lld ns)", path,
               (long long)pc_local_scalar(db, "SELECT longest_ns FROM trace_bounds"));
    /* 8 -> 9: traces.attr_bloom and stats_rollup.priced, where tables made
     * before them lack them; 9 -> 10: the index of failed traces */
    if (rc == 0 && version <= 8) rc = migrate_8_9(id, db, path, version >= 2);
    if (rc == 0) rc = migrate_9_10(id, db, path, version >= 2);
    if (rc == 0)
        rc = pc_local_exec(id, db, FTS_MERGE, "cannot set the search index's merging", path);
    if (rc == 0)
        rc = pc_local_exec(id, db, "PRAGMA user_version = " STR(PC_LOCAL_SCHEMA_VERSION),
                           "cannot set the schema version", path);
    if (rc == 0) rc = pc_local_exec(id, db, "COMMIT", "cannot commit the schema", path);
    if (rc < 0 && !sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}
