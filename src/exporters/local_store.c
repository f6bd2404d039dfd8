/*
 * local_store.c - the read side of the embedded store (store.h) over a pool
 * of read-only connections (local_query.c): traces, spans, lists, search. The writer
 * connection, its statements and retention are in local_writer.c; the schema
 * (version 5) and its contract in local_schema.c (JSON columns read through
 * pc_unzip: local_zip.h); the search text and its
 * trigram queries in local_text.c; the aggregate reads (sessions, stats) in
 * local_agg.c.
 *
 * Search (store.h search): a query of 3+ code points asks the FTS5 trigram
 * index for candidate blocks of traces (local_schema.c; local_text.h: an AND
 * of trigrams), and the recent text the index has not written yet
 * (local_recent.h), once (candidate_blocks). Up to SEARCH_CANDIDATES of them:
 * their traces, newest first, are verified one by one (pc_span_match,
 * local_contains.h: pc_contains over the recomputed search text of the
 * trace's spans, skipped for a span whose stored bytes rule it out) until
 * |limit| matched. More candidates (a common word), or a query the index
 * cannot serve (under 3 code points, a NUL byte): traces newest first, each
 * verified the same way, until |limit| matched or the query time limit. Both
 * give exactly the traces having a span whose search text contains the query.
 *
 * List filters of version 4: session_id / user_id through the partial
 * indexes traces_session / traces_user, model through trace_models, min_cost
 * on the trace row, attr_key / attr_value verified exactly on each candidate
 * trace's spans (pc_attr_match, local_text.h), the candidates being the
 * trigram index's blocks for the value (3+ code points and at most
 * ATTR_CANDIDATES blocks), else every trace in list order under the query
 * time limit; either way a trace whose attribute filter (schema 9,
 * local_bloom.h) rules the pair out is skipped unread. Cursor and offset
 * work the same with every filter.
 *
 * Reads: every piece of caller text is bound as a parameter; dynamic SQL is
 * assembled only from the fixed fragments below.

 */
#include "local_store.h"

#include "local_contains.h"
#include "local_events.h"
#include "span_events.h"
#include "local_query.h"
#include "local_recent.h"
#include "local_stats.h"
#include "local_schema.h"
#include "local_text.h"

#include "buf.h"
#include "log.h"
#include "mem.h"
#include "span.h"
#include "timefmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define BLOCK_BITS STR(PC_LOCAL_BLOCK_BITS)

/* Newest first; ties in a stable order (both stores agree on it). */
#define NEWEST "t.started_ns DESC, t.trace_id DESC, t.project_id DESC"

#define SPAN_COLS                                                                                  \
    "t.trace_id, s.span_id, s.parent_span_id, t.project_id, s.name, s.kind, s.span_type,"         \
    " s.service_name, s.status, s.status_message, s.source, s.trace_state, s.start_ns, s.end_ns,"  \
    " s.created_ns, s.llm_provider, s.llm_model, s.input_tokens, s.output_tokens,"                \
    " pc_unzip(s.attributes), pc_unzip(s.events), pc_unzip(s.links), pc_unzip(s.resource),"      \
    " pc_unzip(s.scope), s.llm_request_model, s.cache_read_tokens,"                               \
    " s.cache_write_tokens, s.reasoning_tokens, s.cost_usd, s.cost_input_usd, s.cost_output_usd," \
    " s.cost_source, s.session_id, s.user_id, pc_unzip(s.input_messages),"                        \
    " pc_unzip(s.output_messages)"

#define TRACE_COLS                                                                                 \
    "t.trace_id, t.project_id, t.service_name, t.root_span_id, t.root_span_name, t.status,"        \
    " t.source, t.started_ns, t.completed_ns, t.created_ns, t.span_count, t.input_tokens,"         \
    " t.output_tokens, t.session_id, t.user_id, t.cost_usd"
#define TRACE_NCOLS 16 /* columns of TRACE_COLS */

/* ----------------------------------------------------------------- reads -- */

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

/* A REAL column, NULL (unknown) as NAN. */
static double col_double(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
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
    r->session_id = col_text(st, 13);
    r->user_id = col_text(st, 14);
    r->cost_usd = col_double(st, 15);
}

static void read_span(sqlite3_stmt *st, pc_span_row *r)
{
    r->events_cut = false;
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
    r->llm_request_model = col_text(st, 24);
    r->cache_read_tokens = sqlite3_column_int64(st, 25);
    r->cache_write_tokens = sqlite3_column_int64(st, 26);
    r->reasoning_tokens = sqlite3_column_int64(st, 27);
    r->cost_usd = col_double(st, 28);
    r->cost_input_usd = col_double(st, 29);
    r->cost_output_usd = col_double(st, 30);
    r->cost_source = col_text(st, 31);
    r->session_id = col_text(st, 32);
    r->user_id = col_text(st, 33);
    r->input_messages = col_text(st, 34);
    r->output_messages = col_text(st, 35);
}

typedef pc_local_query query;

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
    return pc_local_query_close(q, rc);
}

/* The span_types bit of the type named |name| exactly, or 0 (no trace has it). */
static int64_t type_bit(const char *name)
{
    for (int t = 0; t < PC_TYPE_COUNT; t++)
        if (strcmp(name, pc_span_type_name((pc_span_type)t)) == 0) return (int64_t)1 << t;
    return 0;
}

/* The traces of the spans past ?19, the rowid past which candidate_blocks
 * found no text to match (local_recent.h): candidates of every indexed query
 * beside the blocks it named. */
#define TAIL_TIDS "SELECT s.tid FROM spans s WHERE s.rowid > ?19"

/*
 * The candidates of the text |text| (|tn| bytes; |fts| its FTS5 query),
 * read once: the blocks span_text names, at most |cap| + 1, and those of the
 * recent text (local_recent.h) past the index's upto that contain |text|,
 * at most |cap| + 1 more, written to |ids| (reset first) as a JSON array of
 * block numbers for json_each (BLOCK_TIDS, CANDIDATES); *|tail| gets the
 * rowid past which spans are candidates unread (TAIL_TIDS: the index's upto
 * when the recent text does not reach back to it). Returns the number of
 * blocks plus that of span_event_text's matching rows (at most |cap| + 1),
 * or -1 on failure. The statements after it take the blocks from |ids|
 * instead of asking the index again (a second pass cost as much as the
 * first: 1.4-4.5 ms for a word of the 10M-span benchmark).
 *
 * Why the recent text: the spans past upto are a few thousand while ingest
 * runs (local_index.c's gather), and verifying each of their traces from its
 * stored spans was most of a rare word's search time beside ingest.
 * Snapshots: upto and the blocks come from one state of the index (one read
 * transaction); a span of prela.db's snapshot past upto is either in the
 * recent text read after it (committed before its piece was added) or past
 * *|tail|.
 */
static int64_t candidate_blocks(query *q, const char *fts, const char *text, size_t tn, int cap,
                                pc_buf *ids, int64_t *tail)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    int rc;
    pc_buf_reset(ids);
    pc_buf_putc(ids, '[');
    int64_t upto = pc_local_scalar(q->db, "SELECT upto FROM search.index_state");
    if (upto < 0) return -1;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT rowid FROM search.span_text WHERE span_text MATCH ?1"
                           " LIMIT ?2 + 1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, fts, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, cap);
        n = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (n++) pc_buf_putc(ids, ',');
            pc_buf_printf(ids, "%lld", (long long)sqlite3_column_int64(st, 0));
        }
        if (rc != SQLITE_DONE) n = -1;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (n < 0) return -1;
    int64_t *recent = pc_xmalloc(((size_t)cap + 1) * sizeof(*recent));
    int m = 0;
    *tail = pc_local_recent_match(pc_local_reader_recent(q->r), upto, text, tn, cap, recent, &m);
    for (int i = 0; i < m; i++)
        pc_buf_printf(ids, "%s%lld", n + i ? "," : "", (long long)recent[i]);
    free(recent);
    n += m;
    pc_buf_putc(ids, ']');
    pc_buf_putc(ids, '\0');
    int64_t events = -1;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT count(*) FROM (SELECT 1 FROM span_event_text"
                           " WHERE span_event_text MATCH ?1 LIMIT ?2 + 1)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, fts, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, cap);
        if (sqlite3_step(st) == SQLITE_ROW) events = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return events < 0 ? -1 : n + events;
}

/* Most candidate blocks (of 16 traces) the attribute filter takes from the
 * trigram index; past it (a common value) the list walks traces newest first
 * and verifies each, which finds a page of a common value soon. */
#define ATTR_CANDIDATES 256

/* The tids of the blocks (16 traces each) listed in ?16 and of the spans past
 * ?19 (candidate_blocks). */
#define BLOCK_TIDS                                                                                 \
    "SELECT t.tid FROM json_each(?16) b JOIN traces t ON t.tid >= b.value << " BLOCK_BITS          \
    " AND t.tid < (b.value + 1) << " BLOCK_BITS " UNION " TAIL_TIDS

/*
 * Most traces of one model the model filter reads from trace_models and then
 * sorts; a model in more traces (a common one) is checked trace by trace in
 * list order instead (one primary-key probe each), which fills a page soon.
 */
#define MODEL_FEW 5000

/* Whether model ?1 is in at most MODEL_FEW traces; -1 on failure. */
static int model_is_few(pc_local_query *q, const char *model)
{
    sqlite3_stmt *st = NULL;
    int few = -1;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT count(*) FROM (SELECT 1 FROM trace_models WHERE model = ?1"
                           " LIMIT " STR(MODEL_FEW) " + 1)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) few = sqlite3_column_int64(st, 0) <= MODEL_FEW;
    }
    sqlite3_finalize(st);
    return few;
}

/*
 * The filters of |f| as SQL over traces t (parameters ?1..?18 as list_traces
 * binds them). |attr_fts|: the attribute filter's candidates come from the
 * trigram index; |model_few|: the model filter's traces are read from
 * trace_models first (see MODEL_FEW). Session and user: "!= ''" lets SQLite
 * use the partial indexes traces_session / traces_user (they hold only
 * non-empty ids).
 */
static void filter_sql(pc_buf *sql, const pc_trace_filter *f, bool attr_fts, bool model_few)
{
    if (f->project_id) pc_buf_puts(sql, " AND t.project_id = ?1");
    if (f->service_name) pc_buf_puts(sql, " AND t.service_name = ?2");
    /* 'error' as a literal, so SQLite may walk the partial traces_errors */
    if (f->status)
        pc_buf_puts(sql, strcmp(f->status, "error") == 0 ? " AND t.status = 'error'"
                                                         : " AND t.status = ?3");
    if (f->start_ns) pc_buf_puts(sql, " AND t.started_ns >= ?4");
    if (f->end_ns) pc_buf_puts(sql, " AND t.started_ns <= ?5");
    if (f->span_type) pc_buf_puts(sql, " AND (t.span_types & ?6) != 0");
    if (f->session_id)
        pc_buf_puts(sql, *f->session_id ? " AND t.session_id = ?12 AND t.session_id != ''"
                                        : " AND t.session_id = ?12");
    if (f->user_id)
        pc_buf_puts(sql, *f->user_id ? " AND t.user_id = ?13 AND t.user_id != ''"
                                     : " AND t.user_id = ?13");
    if (f->model)
        pc_buf_puts(sql, model_few ? " AND t.tid IN (SELECT m.tid FROM trace_models m"
                                     " WHERE m.model = ?14)"
                                   : " AND EXISTS (SELECT 1 FROM trace_models m"
                                     " WHERE m.model = ?14 AND m.tid = t.tid)");
    if (f->min_cost > 0) pc_buf_puts(sql, " AND t.cost_usd >= ?15");
    if (f->attr_key && f->attr_value) {
        if (attr_fts) pc_buf_puts(sql, " AND t.tid IN (" BLOCK_TIDS ")");
        /* the trace's attribute filter (local_bloom.h) before its spans */
        pc_buf_puts(sql, " AND pc_bloom_may(t.attr_bloom, ?17, ?18)");
        pc_buf_puts(sql, " AND EXISTS (SELECT 1 FROM spans s WHERE s.tid = t.tid"
                         " AND pc_attr_match(pc_unzip(s.attributes), ?17, ?18))");
    }
    if (f->after)
        pc_buf_puts(sql, " AND (t.started_ns, t.trace_id, t.project_id) < (?9, ?10, ?11)");
}

static int list_traces(void *ctx, const pc_trace_filter *f, pc_trace_cb cb, void *ud)
{
    query q;
    /* The statement is prepared once the attribute filter's candidates are
     * counted, on the same connection, in the same snapshot (candidate_blocks:
     * the blocks and upto come from one state of the index) and under the same
     * deadline. */
    int orc = pc_local_query_begin(&q, ctx, "list traces");
    if (orc < 0) return orc;
    pc_buf blocks = PC_BUF_INIT; /* the attribute filter's candidate blocks */
    int64_t tail = 0;            /* and the rowid past which spans are candidates */
    bool attr_fts = false;
    if (f->attr_key && f->attr_value) {
        pc_buf fts = PC_BUF_INIT;
        size_t vn = strlen(f->attr_value);
        attr_fts = pc_local_fts_query(&fts, f->attr_value, vn) > 0;
        pc_buf_putc(&fts, '\0');
        int64_t n = attr_fts ? candidate_blocks(&q, fts.data, f->attr_value, vn, ATTR_CANDIDATES,
                                                &blocks, &tail)
                             : 0;
        pc_buf_free(&fts);
        if (n < 0) {
            pc_buf_free(&blocks);
            return pc_local_query_close(&q, SQLITE_ERROR);
        }
        attr_fts = attr_fts && n <= ATTR_CANDIDATES;
    }
    bool model_few = false;
    if (f->model) {
        int few = model_is_few(&q, f->model);
        if (few < 0) {
            pc_buf_free(&blocks);
            return pc_local_query_close(&q, SQLITE_ERROR);
        }
        model_few = few == 1;
    }
    /* With an offset, the skipped rows are walked in an index only (the inner
     * SELECT of tids: traces_started covers the list order), and only the page's
     * rows are read: offset=10000 read 10,100 rows before. */
    pc_buf sql = PC_BUF_INIT;
    if (f->offset > 0)
        pc_buf_puts(&sql, "SELECT " TRACE_COLS " FROM traces t WHERE t.tid IN"
                          " (SELECT t.tid FROM traces t WHERE 1");
    else
        pc_buf_puts(&sql, "SELECT " TRACE_COLS " FROM traces t WHERE 1");
    filter_sql(&sql, f, attr_fts, model_few);
    pc_buf_puts(&sql, " ORDER BY " NEWEST " LIMIT ?7 OFFSET ?8");
    if (f->offset > 0) pc_buf_puts(&sql, ") ORDER BY " NEWEST);
    int rc = sqlite3_prepare_v2(q.db, sql.data, -1, &q.st, NULL);
    pc_buf_free(&sql);
    if (rc != SQLITE_OK) {
        pc_buf_free(&blocks);
        return pc_local_query_close(&q, rc);
    }
    if (f->project_id) bind_cstr(q.st, 1, f->project_id);
    if (f->service_name) bind_cstr(q.st, 2, f->service_name);
    if (f->status) bind_cstr(q.st, 3, f->status);
    if (f->start_ns) sqlite3_bind_int64(q.st, 4, f->start_ns);
    if (f->end_ns) sqlite3_bind_int64(q.st, 5, f->end_ns);
    if (f->span_type) sqlite3_bind_int64(q.st, 6, type_bit(f->span_type));
    sqlite3_bind_int(q.st, 7, f->limit);
    sqlite3_bind_int(q.st, 8, f->offset > 0 ? f->offset : 0);
    if (f->after) {
        sqlite3_bind_int64(q.st, 9, f->after->started_ns);
        bind_cstr(q.st, 10, f->after->trace_id);
        bind_cstr(q.st, 11, f->after->project_id);
    }
    if (f->session_id) bind_cstr(q.st, 12, f->session_id);
    if (f->user_id) bind_cstr(q.st, 13, f->user_id);
    if (f->model) bind_cstr(q.st, 14, f->model);
    if (f->min_cost > 0) sqlite3_bind_double(q.st, 15, f->min_cost);
    if (attr_fts) {
        sqlite3_bind_text(q.st, 16, blocks.data, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q.st, 19, tail);
    }
    if (f->attr_key && f->attr_value) {
        bind_cstr(q.st, 17, f->attr_key);
        bind_cstr(q.st, 18, f->attr_value);
    }
    pc_buf_free(&blocks);
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
    int orc = pc_local_query_open(&q, ctx, sql, "get trace");
    if (orc < 0) return orc;
    bind_cstr(q.st, 1, trace_id);
    if (project_id) bind_cstr(q.st, 2, project_id);
    return each_trace(&q, cb, ud);
}

/*
 * A trace's page of spans is sorted by its keys alone (SPAN_PAGE: rowids),
 * then read row by row (SPAN_ROW): a sort of whole rows holds every
 * decompressed span of the page in SQLite's sorter at once, outside the
 * memory budget (16 readers of a 12 MiB trace took 65 MB more RSS). One read
 * transaction, so both statements see one state of the store.
 */
static const char SPAN_PAGE[] = "SELECT s.rowid FROM traces t JOIN spans s ON s.tid = t.tid"
                                " WHERE t.trace_id = ?1 AND t.project_id = ?2"
                                " ORDER BY s.start_ns, s.span_id LIMIT ?3 OFFSET ?4";
static const char SPAN_ROW[] = "SELECT " SPAN_COLS " FROM spans s JOIN traces t ON t.tid = s.tid"
                               " WHERE s.rowid = ?1";

static int get_spans(void *ctx, const char *project_id, const char *trace_id, int limit,
                     int offset, pc_span_cb cb, void *ud)
{
    query q;
    int rc = pc_local_query_begin(&q, ctx, "get spans");
    if (rc < 0) return rc;
    if ((rc = sqlite3_prepare_v2(q.db, SPAN_PAGE, -1, &q.st, NULL)) != SQLITE_OK)
        return pc_local_query_close(&q, rc);
    bind_cstr(q.st, 1, trace_id);
    bind_cstr(q.st, 2, project_id ? project_id : "");
    sqlite3_bind_int(q.st, 3, limit);
    sqlite3_bind_int(q.st, 4, offset > 0 ? offset : 0);
    int64_t *rowids = NULL;
    size_t n = 0, cap = 0;
    while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            rowids = pc_xrealloc(rowids, cap * sizeof(*rowids));
        }
        rowids[n++] = sqlite3_column_int64(q.st, 0);
    }
    sqlite3_finalize(q.st);
    q.st = NULL;
    if (rc == SQLITE_DONE) {
        rc = sqlite3_prepare_v2(q.db, SPAN_ROW, -1, &q.st, NULL);
        if (rc == SQLITE_OK) rc = SQLITE_DONE;
    }
    /* Attached events (local_events.h): one probe per trace, a merge per span
     * only when the trace has some. */
    int any = rc == SQLITE_DONE && n ? pc_local_events_any(q.db, project_id ? project_id : "",
                                                           trace_id)
                                     : 0;
    if (any < 0) rc = -any;
    pc_span_events m = PC_SPAN_EVENTS_INIT;
    bool stop = false;
    for (size_t i = 0; i < n && rc == SQLITE_DONE && !stop; i++) {
        sqlite3_bind_int64(q.st, 1, rowids[i]);
        rc = sqlite3_step(q.st); /* SQLITE_DONE: the span went meanwhile (retention) */
        if (rc == SQLITE_ROW) {
            pc_span_row row;
            read_span(q.st, &row);
            if (any && (rc = pc_local_events_merge(q.db, &row, &m)) != SQLITE_OK) break;
            stop = cb(ud, &row) != 0;
            rc = SQLITE_DONE;
        }
        sqlite3_reset(q.st);
    }
    pc_span_events_free(&m);
    free(rowids);
    return pc_local_query_close(&q, rc);
}

/* Most FTS5 candidate blocks (of 16 traces) a search collects before it
 * scans instead. */
#define SEARCH_CANDIDATES 2000

/* Whether trace ?1 (tid) has a span whose search text contains ?2
 * (pc_span_match: pc_contains over pc_search_text, skipping the text of a
 * span whose stored bytes rule it out). */
static const char VERIFY[] =
    "SELECT 1 FROM spans s WHERE s.tid = ?1"
    " AND pc_span_match(?2, s.name, pc_unzip(s.attributes), pc_unzip(s.events),"
    " pc_unzip(s.input_messages), pc_unzip(s.output_messages)) UNION ALL "
    PC_LOCAL_EVENTS_VERIFY " LIMIT 1";

static int search(void *ctx, const char *project_id, const char *text, int limit, pc_trace_cb cb,
                  void *ud)
{
    pc_buf fts = PC_BUF_INIT;
    size_t tn = strlen(text);
    bool indexed = pc_local_fts_query(&fts, text, tn) > 0;
    pc_buf_putc(&fts, '\0');

    /* The candidate traces (or every trace) newest first: ?16 the blocks
     * (candidate_blocks), ?1 the FTS5 query (the traces with a matching
     * attached event, local_events.h), ?3 the project. */
    static const char CANDIDATES[] = "SELECT " TRACE_COLS ", t.tid FROM traces t WHERE t.tid IN ("
                                     BLOCK_TIDS " UNION " PC_LOCAL_EVENTS_CANDIDATES ")";
    static const char CANDIDATES_P[] =
        "SELECT " TRACE_COLS ", t.tid FROM traces t WHERE t.project_id = ?3 AND t.tid IN ("
        BLOCK_TIDS " UNION " PC_LOCAL_EVENTS_CANDIDATES ")";
    static const char ALL[] = "SELECT " TRACE_COLS ", t.tid FROM traces t WHERE ?1 IS NOT NULL";
    static const char ALL_P[] =
        "SELECT " TRACE_COLS ", t.tid FROM traces t WHERE ?1 IS NOT NULL AND t.project_id = ?3";

    query q;
    /* The statement is prepared after the candidates are counted, on the same
     * connection, in the same snapshot (candidate_blocks: the blocks and upto
     * must come from one state of the index) and under the same deadline. */
    int orc = pc_local_query_begin(&q, ctx, "search");
    if (orc < 0) {
        pc_buf_free(&fts);
        return orc;
    }
    pc_buf blocks = PC_BUF_INIT;
    int64_t tail = 0;
    if (indexed) {
        int64_t n = candidate_blocks(&q, fts.data, text, tn, SEARCH_CANDIDATES, &blocks, &tail);
        if (n < 0) {
            pc_buf_free(&fts);
            pc_buf_free(&blocks);
            return pc_local_query_close(&q, SQLITE_ERROR);
        }
        indexed = n <= SEARCH_CANDIDATES;
    }
    pc_buf sql = PC_BUF_INIT;
    pc_buf_puts(&sql, indexed ? (project_id ? CANDIDATES_P : CANDIDATES)
                              : (project_id ? ALL_P : ALL));
    pc_buf_puts(&sql, " ORDER BY " NEWEST);
    sqlite3_stmt *verify = NULL;
    int rc = sqlite3_prepare_v2(q.db, sql.data, -1, &q.st, NULL);
    pc_buf_free(&sql);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(q.db, VERIFY, -1, &verify, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(verify);
        pc_buf_free(&fts);
        pc_buf_free(&blocks);
        return pc_local_query_close(&q, rc);
    }
    sqlite3_bind_text(q.st, 1, fts.data, -1, SQLITE_STATIC);
    if (project_id) bind_cstr(q.st, 3, project_id);
    if (indexed) {
        sqlite3_bind_text(q.st, 16, blocks.data, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q.st, 19, tail);
    }
    sqlite3_bind_text(verify, 2, text, (int)tn, SQLITE_STATIC);
    int found = 0;
    while (found < limit && (rc = sqlite3_step(q.st)) == SQLITE_ROW) {
        sqlite3_bind_int64(verify, 1, sqlite3_column_int64(q.st, TRACE_NCOLS));
        int vrc = sqlite3_step(verify);
        sqlite3_reset(verify);
        if (vrc == SQLITE_DONE) continue;
        if (vrc != SQLITE_ROW) {
            rc = vrc;
            break;
        }
        pc_trace_row row;
        read_trace(q.st, &row);
        found++;
        if (cb(ud, &row) != 0) break;
    }
    sqlite3_finalize(verify);
    rc = pc_local_query_close(&q, rc);
    pc_buf_free(&fts);
    pc_buf_free(&blocks);
    return rc;
}

const pc_store_ops pc_local_store_ops = {
    .list_traces = list_traces,
    .get_trace = get_trace,
    .get_spans = get_spans,
    .search = search,
    .list_sessions = pc_local_list_sessions,
    .stats = pc_local_stats,
    .health = pc_local_health,
};
