/*
 * local_events.h - the embedded store's attached events (schema version 5,
 * span_events and span_event_text: local_schema.c): writing a carrier's
 * events, retention of them, and reading a span's for the merge on read
 * (span_events.h).
 *
 * Data flow: local.c's writer → pc_local_txn_span hands a carrier here
 * (inside the writer's open transaction) instead of to the span path;
 * pc_local_writer_purge calls the purge; local_store.c's get_spans calls the
 * read per span row of a trace that has attached events. Search (local_store.c)
 * reads span_event_text and span_events directly with the SQL below.
 */
#ifndef PC_LOCAL_EVENTS_H
#define PC_LOCAL_EVENTS_H

#include "span.h"
#include "span_events.h"
#include "store.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* The writer's statements for attached events, prepared with the others. */
typedef struct pc_local_events_writer {
    sqlite3_stmt *ins_event;   /* INSERT OR IGNORE into span_events */
    sqlite3_stmt *ins_text;    /* its search text into span_event_text */
    sqlite3_stmt *purge_text;  /* trigrams of the expired rows out */
    sqlite3_stmt *purge;       /* the expired rows */
} pc_local_events_writer;

/* 0, or -1 after logging; fini accepts a half-prepared one. */
int pc_local_events_writer_init(pc_local_events_writer *w, const char *id, sqlite3 *db);
void pc_local_events_writer_fini(pc_local_events_writer *w);

/*
 * Writes the events of carrier |s| (ingested at |created_ns|) inside the
 * writer's open transaction: one row each, a duplicate (same project, ids and
 * content) ignored, the search text of a new one indexed. Returns an SQLite
 * code.
 */
int pc_local_events_write(pc_local_events_writer *w, sqlite3 *db, const pc_span *s,
                          int64_t created_ns);

/*
 * Inside the caller's retention transaction: deletes up to |chunk| attached
 * events written before |cutoff_ns|, oldest first, with their search text.
 * Returns how many, or -1 (an SQLite error; the caller rolls back).
 */
int64_t pc_local_events_purge(pc_local_events_writer *w, sqlite3 *db, int64_t cutoff_ns,
                              int chunk);

/* Whether trace (project_id, trace_id) has any attached event: 1, 0, or an
 * SQLite error code < 0 (negated). */
int pc_local_events_any(sqlite3 *db, const char *project_id, const char *trace_id);

/*
 * Reads the attached events of |row|'s span (oldest first, at most
 * PC_SPAN_EVENTS_MAX + 1) and merges them into |row| (pc_span_events_merge):
 * the texts it then points to live in |m|. Returns an SQLite code
 * (SQLITE_OK when it had none).
 */
int pc_local_events_merge(sqlite3 *db, pc_span_row *row, pc_span_events *m);

/* SQL of search: candidates (tids of traces with an attached event whose
 * trigrams match FTS5 query ?1) and the verification of one trace (tid ?1,
 * text ?2): an attached event of a span the trace has (a carrier whose span
 * never came shows nowhere, so search does not find it either). */
#define PC_LOCAL_EVENTS_CANDIDATES                                                                 \
    "SELECT t.tid FROM span_event_text f JOIN span_events e ON e.eid = f.rowid"                    \
    " JOIN traces t ON t.trace_id = e.trace_id AND t.project_id = e.project_id"                    \
    " WHERE f.span_event_text MATCH ?1"
#define PC_LOCAL_EVENTS_VERIFY                                                                     \
    "SELECT 1 FROM traces t JOIN span_events e ON e.project_id = t.project_id"                     \
    " AND e.trace_id = t.trace_id JOIN spans s ON s.tid = t.tid AND s.span_id = e.span_id"         \
    " WHERE t.tid = ?1"                                                                            \
    " AND pc_contains(pc_search_text('', '{}', '[' || e.event || ']'), ?2)"

#endif
