/*
 * local_events.c - attached events in the embedded store (the contract is in
 * local_events.h; the tables in local_schema.c, version 5).
 *
 * Write: one INSERT OR IGNORE per event (the unique key is (project, trace,
 * span, content key), so a redelivered carrier changes nothing), then its
 * search text (local_text.h: the text of a span whose events are [event])
 * into span_event_text under the new row's eid.
 *
 * Read: the span's rows through span_events_key, oldest first, merged by
 * span_events.c; a trace without attached events costs get_spans one index
 * probe (pc_local_events_any), not one per span.
 */
#include "local_events.h"

#include "local_store.h"
#include "local_text.h"
#include "span_events.h"

#include "buf.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

static const char INS_EVENT[] =
    "INSERT OR IGNORE INTO span_events (project_id, trace_id, span_id, ckey, time_ns,"
    " created_ns, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char INS_TEXT[] = "INSERT INTO span_event_text (rowid, text) VALUES (?1, ?2)";
/* ?1 cutoff ?2 chunk: the oldest rows written before the cutoff. */
#define EXPIRED_EVENTS                                                                             \
    "SELECT eid FROM span_events WHERE created_ns < ?1 ORDER BY created_ns, eid LIMIT ?2"
static const char PURGE_TEXT[] =
    "INSERT INTO span_event_text (span_event_text, rowid, text) SELECT 'delete', eid,"
    " pc_search_text('', '{}', '[' || event || ']') FROM span_events"
    " WHERE eid IN (" EXPIRED_EVENTS ")";
static const char PURGE[] = "DELETE FROM span_events WHERE eid IN (" EXPIRED_EVENTS ")";

int pc_local_events_writer_init(pc_local_events_writer *w, const char *id, sqlite3 *db)
{
    memset(w, 0, sizeof(*w));
    return pc_local_prepare(id, db, INS_EVENT, &w->ins_event) < 0 ||
                   pc_local_prepare(id, db, INS_TEXT, &w->ins_text) < 0 ||
                   pc_local_prepare(id, db, PURGE_TEXT, &w->purge_text) < 0 ||
                   pc_local_prepare(id, db, PURGE, &w->purge) < 0
               ? -1
               : 0;
}

void pc_local_events_writer_fini(pc_local_events_writer *w)
{
    sqlite3_finalize(w->ins_event);
    sqlite3_finalize(w->ins_text);
    sqlite3_finalize(w->purge_text);
    sqlite3_finalize(w->purge);
    memset(w, 0, sizeof(*w));
}

static void bind_str(sqlite3_stmt *st, int i, pc_str s)
{
    sqlite3_bind_text(st, i, s.p ? s.p : "", (int)s.n, SQLITE_STATIC);
}

int pc_local_events_write(pc_local_events_writer *w, sqlite3 *db, const pc_span *s,
                          int64_t created_ns)
{
    pc_buf ev = PC_BUF_INIT, text = PC_BUF_INIT, arr = PC_BUF_INIT;
    int rc = SQLITE_OK;
    for (size_t i = 0; i < s->n_events && rc == SQLITE_OK; i++) {
        pc_buf_reset(&ev);
        pc_span_event_json(&ev, &s->events[i]);
        sqlite3_stmt *st = w->ins_event;
        bind_str(st, 1, s->project_id);
        bind_str(st, 2, s->trace_id);
        bind_str(st, 3, s->span_id);
        sqlite3_bind_int64(st, 4, pc_span_event_key(ev.data, ev.len));
        sqlite3_bind_int64(st, 5, s->events[i].time_ns);
        sqlite3_bind_int64(st, 6, created_ns);
        sqlite3_bind_text(st, 7, ev.data, (int)ev.len, SQLITE_STATIC);
        rc = pc_local_step(st);
        if (rc != SQLITE_OK || sqlite3_changes(db) != 1) continue; /* a duplicate */
        int64_t eid = sqlite3_last_insert_rowid(db);
        pc_buf_reset(&arr);
        pc_buf_putc(&arr, '[');
        pc_buf_append(&arr, ev.data, ev.len);
        pc_buf_putc(&arr, ']');
        pc_buf_reset(&text);
        pc_local_text_in in = {"", 0, "{}", 2, arr.data, arr.len, "", 0, "", 0};
        pc_local_search_text(&text, &in);
        if (text.len == 0) continue;
        sqlite3_bind_int64(w->ins_text, 1, eid);
        sqlite3_bind_text(w->ins_text, 2, text.data, (int)text.len, SQLITE_STATIC);
        rc = pc_local_step(w->ins_text);
    }
    pc_buf_free(&ev);
    pc_buf_free(&text);
    pc_buf_free(&arr);
    return rc;
}

int64_t pc_local_events_purge(pc_local_events_writer *w, sqlite3 *db, int64_t cutoff_ns,
                              int chunk)
{
    sqlite3_bind_int64(w->purge_text, 1, cutoff_ns);
    sqlite3_bind_int(w->purge_text, 2, chunk);
    sqlite3_bind_int64(w->purge, 1, cutoff_ns);
    sqlite3_bind_int(w->purge, 2, chunk);
    if (pc_local_step(w->purge_text) != SQLITE_OK || pc_local_step(w->purge) != SQLITE_OK) return -1;
    return sqlite3_changes(db);
}

int pc_local_events_any(sqlite3 *db, const char *project_id, const char *trace_id)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT 1 FROM span_events WHERE project_id = ?1 AND trace_id = ?2"
                                " LIMIT 1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return -rc;
    sqlite3_bind_text(st, 1, project_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, trace_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -rc;
}

int pc_local_events_merge(sqlite3 *db, pc_span_row *row, pc_span_events *m)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT event FROM span_events WHERE project_id = ?1"
                                " AND trace_id = ?2 AND span_id = ?3 ORDER BY time_ns, eid"
                                " LIMIT " STR(PC_SPAN_EVENTS_MAX) " + 1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_text(st, 1, row->project_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, row->trace_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, row->span_id, -1, SQLITE_STATIC);
    size_t n = 0, cap = 0, bytes = 0;
    char **ev = NULL;
    size_t *len = NULL;
    bool cut = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* never hold more than the merge takes (span_events.h): stop at the bytes */
        size_t k = (size_t)sqlite3_column_bytes(st, 0);
        if (bytes + k > PC_SPAN_EVENTS_MAX_BYTES) {
            cut = true;
            rc = SQLITE_DONE;
            break;
        }
        bytes += k;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            ev = pc_xrealloc(ev, cap * sizeof(*ev));
            len = pc_xrealloc(len, cap * sizeof(*len));
        }
        ev[n] = pc_xmalloc(k + 1);
        memcpy(ev[n], sqlite3_column_text(st, 0), k);
        ev[n][k] = '\0';
        len[n++] = k;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
        cut = cut || n > PC_SPAN_EVENTS_MAX;
        pc_span_events_merge(m, row, (const char *const *)ev, len, cut ? PC_SPAN_EVENTS_MAX : n,
                             cut);
    }
    for (size_t i = 0; i < n; i++)
        free(ev[i]);
    free(ev);
    free(len);
    return rc;
}
