/*
 * clickhouse_query.h - the SQL of the `clickhouse` store's reads (store.h:
 * trace lookups, lists by time windows, search).
 *
 * Data flow: the store (clickhouse_store*.c) sends these statements and reads
 * the answers with clickhouse_tsv.h; the migration rebuilds the traces table
 * with pc_ch_sql_traces_from_spans. Nothing here does I/O. How a list stays
 * exact while reading a window, and how a summary is computed from the spans,
 * is documented in clickhouse_query.c.
 *
 * Safety: caller text reaches SQL only through pc_ch_quote (clickhouse_sql.h).
 */
#ifndef PC_CLICKHOUSE_QUERY_H
#define PC_CLICKHOUSE_QUERY_H

#include "clickhouse_sql.h"

/*
 * Appends "SELECT <every traces column, in pc_ch_trace_columns() order> FROM
 * `db`.spans GROUP BY project_id, trace_id": one traces row per trace of the
 * spans table (the migration to schema 3 builds its traces table with it).
 * span_count and the token sums count a span re-sent before merging twice;
 * reads never use them (summaries come from the spans).
 */
void pc_ch_sql_traces_from_spans(pc_buf *out, const char *db);
/* The same over the spans matching the condition |where| (static SQL text,
 * no user input): partial rows, as an insert of those spans would write. */
void pc_ch_sql_traces_from_spans_where(pc_buf *out, const char *db, const char *where);

/*
 * Store queries (see store.h). Each appends one SELECT ending in FORMAT
 * TabSeparated whose columns are what pc_ch_read_trace / pc_ch_read_span
 * expect. A NULL |project_id| means every project for get_trace and search
 * (rows grouped by project), and "" (no project) for get_spans. |parts|, when
 * not NULL, is a list of quoted names of the spans table's parts ("'a', 'b'",
 * from pc_ch_sql_trace_parts' answer): the read opens only those parts, and
 * each row ends with one more column, the parts its rows were read from
 * ("a,b": get_trace's row, from its spans; get_spans' row, its own), which
 * tell the caller whether the read saw every named part
 * (clickhouse_store_lookup.c).
 */
void pc_ch_sql_get_trace(pc_buf *out, const char *db, const char *project_id,
                         const char *trace_id, const char *parts);
/* The most parts a lookup names (pc_ch_sql_trace_parts asks for one more:
 * a trace in more parts is read from all of them). */
#define PC_CH_TRACE_PARTS_MAX 32
/* The names of the spans table's parts holding rows of the trace (a NULL
 * |project_id|: of any project), one per line, at most PC_CH_TRACE_PARTS_MAX
 * + 1. It reads two columns, where a lookup reads all of them. */
void pc_ch_sql_trace_parts(pc_buf *out, const char *db, const char *project_id,
                           const char *trace_id);
/* The same parts, and the trace's distinct spans, per project (three columns:
 * project_id, span count, the parts as "a,b"), ordered by project id: on the
 * three key columns only. */
void pc_ch_sql_trace_span_counts(pc_buf *out, const char *db, const char *project_id,
                                 const char *trace_id);
/* How many of |parts| (a quoted list, as above) are active parts of the
 * spans table now: one count. */
void pc_ch_sql_parts_active(pc_buf *out, const char *db, const char *parts);
/* "((a0, b0, ...), (a1, b1, ...), ...)": |n| (>= 1) tuples of |ncols| quoted
 * strings, tuple i of cols[0][i], cols[1][i], ... */
void pc_ch_sql_tuples(pc_buf *out, const char *const *const *cols, size_t ncols, size_t n);
/* "(('t1', 'p1'), ...)": the |n| (>= 1) traces (projects[i], trace_ids[i]) as
 * (trace_id, project_id) tuples, the spans key's order, quoted. */
void pc_ch_sql_trace_tuples(pc_buf *out, const char *const *projects,
                            const char *const *trace_ids, size_t n);
/* "<column> IN ('v1', ...)": the |n| values, quoted (none: "0", false);
 * |column| is static SQL text. */
void pc_ch_sql_in(pc_buf *out, const char *column, const char *const *values, size_t n);
/* The summaries of the |n| (>= 1) traces (projects[i], trace_ids[i]) that have
 * spans, newest first (as lists order them). */
void pc_ch_sql_summaries_of(pc_buf *out, const char *db, const char *const *projects,
                            const char *const *trace_ids, size_t n);
/* Every row of the trace's spans (of every project when |project_id| is
 * NULL), copies included, in no order, at most |max_rows|: a lookup's one
 * read of the trace (clickhouse_summary.h), pc_ch_read_span's columns (and
 * the parts column when |parts| is set). */
void pc_ch_sql_trace_spans(pc_buf *out, const char *db, const char *project_id,
                           const char *trace_id, const char *parts, int max_rows);
void pc_ch_sql_get_spans(pc_buf *out, const char *db, const char *project_id,
                         const char *trace_id, const char *parts, int limit, int offset);

/*
 * A trace list reads each window in two statements (see the contract in
 * clickhouse_query.c; clickhouse_store.c drives them):
 *   pc_ch_sql_list_candidates  the window's candidate keys (project_id,
 *                              trace_id), newest first;
 *   pc_ch_sql_list_rows        every row in trace_rows (by trace: wherever
 *                              in time the rows lie) of |n| of them (the
 *                              first pc_ch_list_rows_skip(f) + f->limit),
 *                              named by trace id, of |f|'s project (every
 *                              project's when it has none), in no order, at
 *                              most |max_rows|: PC_CH_LIST_ROWS_COLS columns
 *                              (clickhouse_summary.h merges them); unless
 *                              |f| is inexact (then it is not asked);
 *   pc_ch_sql_list_window      else the page: the traces of |f| among them whose
 *                              start is at or after |lo| (INT64_MIN: no edge),
 *                              at or before |top| (INT64_MAX: none; the
 *                              caller passes the least of f->end_ns and the
 *                              cursor's start), newest first, at most
 *                              f->limit after skipping f->offset.
 * The page names the |n| candidates (projects[i], trace_ids[i]) read first,
 * or, when |trace_ids| is NULL (too many to name, see below), selects them
 * again in a subquery. A window without
 * candidates has an empty page: the caller does not read it. When fewer than
 * f->limit rows come back and the window did not reach the range's start,
 * the caller widens it.
 */
void pc_ch_sql_list_candidates(pc_buf *out, const char *db, const pc_trace_filter *f, int64_t lo,
                               int64_t top, int cand_extra);
void pc_ch_sql_list_rows(pc_buf *out, const char *db, const pc_trace_filter *f,
                         const char *const *trace_ids, size_t n, int max_rows);
int pc_ch_list_rows_skip(const pc_trace_filter *f);
/* After a window without candidates: the newest start of the traces rows of
 * |project_id| (every project's when NULL) below |below| and at or after
 * |floor| (INT64_MIN: no floor), and their count ("0\t0": none), reading
 * the start column only. The caller moves its windows' anchor there, so a
 * store whose newest traces are days old is not read in ever wider windows
 * of old rows. */
void pc_ch_sql_list_newest(pc_buf *out, const char *db, const char *project_id, int64_t floor,
                           int64_t below);
void pc_ch_sql_list_window(pc_buf *out, pc_ch_dialect d, const char *db,
                           const pc_trace_filter *f, int64_t lo, int64_t top, int cand_extra,
                           const char *const *projects, const char *const *trace_ids, size_t n);

/*
 * Reads that name the traces they read (a list's page, a session page's sums)
 * name at most PC_CH_NAMED_MAX of them, in a statement of at most
 * PC_CH_NAMED_SQL_BYTES (18.16's max_query_size is 256 KiB); more are
 * selected by a subquery instead, which 18.16 runs several times slower
 * (bench/README: "reads of many named traces").
 */
#define PC_CH_NAMED_MAX 1024
#define PC_CH_NAMED_SQL_BYTES (192 * 1024)

/*
 * Reads that must name every value they are given (a session page's
 * sessions, a search's candidates, the spans its events point at) take them
 * in chunks whose quoted values (pc_ch_quoted_len, plus 4 bytes each for the
 * separators) fill at most PC_CH_NAMES_BYTES, which leaves the statement
 * under 18.16's 256 KiB with room for its own text: a value past ASCII
 * quotes as four bytes (\xC3), so 1,000 ids of 256 bytes could quote to
 * 1 MB. pc_ch_names_fit returns how many of the |n| rows, from the first,
 * make one chunk: at least one when n > 0. Row i names cols[c][i] for each
 * of the |ncols| columns, listed as often as the statement names them.
 */
#define PC_CH_NAMES_BYTES (160 * 1024)
size_t pc_ch_names_fit(const char *const *const *cols, size_t ncols, size_t n);

/*
 * Inexact candidates: min_cost and attr_key/attr_value cannot be decided
 * from the traces rows exactly (a redelivered span counts twice in the rows'
 * cost; the rows hold no attributes), so their candidates are a superset
 * and a window's page may come back short although more traces match. Then,
 * if the window's candidates reached their cap, some were left out and the window
 * is read again with |cand_extra| (candidates taken beyond offset + limit;
 * PC_CH_WINDOW_SLACK at first) multiplied by 8. With such a filter every
 * offset is applied to the checked rows.
 */
bool pc_ch_filter_inexact(const pc_trace_filter *f);

/* Appends the project filter of a statement's WHERE: "project_id = '<p>' AND "
 * (quoted by pc_ch_quote), or nothing when |project_id| is NULL. */
void pc_ch_project_and(pc_buf *out, const char *project_id);

/*
 * Appends the condition "span attribute |key| has the text form |value|" on
 * the column `attributes` (store.h: a string as is, a number or bool as its
 * JSON text, the key exact): JSONExtract* on the modern dialect (top-level
 * keys only); on 18.16 visitParam*, which find the key's first occurrence in
 * the text, nested or not (a nested object holding the same key before it
 * hides the top-level one: a known difference of the legacy dialect).
 */
void pc_ch_sql_attr_match(pc_buf *out, pc_ch_dialect d, const char *key, const char *value);

/*
 * Whether the traces rows' attribute filters (schema 9: traces.attr_bloom,
 * attr_bloom.h) may pre-select the candidates of |f|'s attr.<key>=<value>:
 * when the value's matches are exactly the pairs the filters hold. Not for a
 * value that could match a raw JSON text the filters do not hash or that a
 * modern server writes its own way (JSONExtractRaw re-serializes): one that
 * starts with '"', '[' or '{', "null", or a JSON number (an int's or
 * double's text), nor a text the filters do not hold (longer than
 * PC_ATTR_BLOOM_MAX_TEXT); those are checked on the spans alone, as before
 * schema 9.
 * With the filters, a key nested in a map value no longer matches on 18.16
 * either (they hold top-level pairs only).
 */
bool pc_ch_attr_bloom_serves(const pc_trace_filter *f);

/* Appends the condition "this traces row's attribute filter may hold the pair
 * (|key|, |value|)": its PC_ATTR_BLOOM_K bits set, or a row without a filter
 * (written before schema 9). */
void pc_ch_sql_attr_may(pc_buf *out, const char *key, const char *value);

/* Rows the traces table is read below a window's edge (a trace whose earliest
 * row is within this of the edge is known to start before it), and extra
 * candidates a window takes beyond the page (room for traces that look inside
 * the window from their later rows alone); see the contract. */
#define PC_CH_WINDOW_GUARD (3600LL * 1000000000LL)
#define PC_CH_WINDOW_SLACK 8
/* Offsets up to this are applied after the exact check (summaries of offset +
 * limit + slack traces), deeper ones to the candidates; see the contract. */
#define PC_CH_OUTER_OFFSET 100
/* The first window's width and its growth factor; windows wider than
 * PC_CH_WINDOW_MAX have no lower edge. */
#define PC_CH_WINDOW_FIRST (3600LL * 1000000000LL)
#define PC_CH_WINDOW_MAX (PC_CH_WINDOW_FIRST << 16)

/*
 * Search (the traces having a span whose name, attributes, events or
 * messages contain |text|, ASCII case-insensitively) looks at the first
 * PC_CH_SEARCH_PREFIX bytes of each span's name and of those JSON columns
 * only: a match further in is not found. The JSON columns are searched for
 * |text| as a JSON string holds it (a '"' as '\"'), so a quote or backslash
 * in |text| matches itself inside values; text that is itself JSON inside a
 * string attribute is matched in the messages normalized from it. Key names
 * match too. This bounds what one row costs the server, however large its
 * values; the run must also use max_block_size = pc_ch_search_block_rows()
 * and optimize_move_to_prewhere = 0 so the server's max_execution_time is
 * checked after every few rows (see clickhouse_store_search.c).
 */
#define PC_CH_SEARCH_PREFIX 65536
/* |before_ns| > 0: only spans first written before then (created_ns). */
void pc_ch_sql_search(pc_buf *out, const char *db, const char *project_id, const char *text,
                      int limit, int64_t before_ns);

/* Rows per block (max_block_size) for a search of a |pattern_len|-byte text:
 * a block's worst case stays under a fixed number of byte comparisons; 1..8192. */
int pc_ch_search_block_rows(size_t pattern_len);

/* A saturating sum of a token column (span.h: pc_tokens_add): sum() of Int64
 * wraps, so a float sum decides first whether the total is near INT64_MAX
 * (9.2e18, a margin for the float's rounding); below that the integer sum is
 * exact. Both dialects have these functions. */
#define PC_CH_TOKEN_SUM(col)                                                                             \
    "if(sum(toFloat64(if(" col " > 0, " col ", 0))) >= 9.2e18, toInt64(9223372036854775807),"     \
    " sum(if(" col " > 0, " col ", 0)))"

#endif
