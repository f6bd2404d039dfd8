/*
 * clickhouse_summary.h - trace summaries made in the collector from what the
 * `clickhouse` store reads raw, instead of by a GROUP BY on the server:
 *   - a trace's spans for a lookup: raw rows (every copy of every span, in
 *     no order), made into the trace's distinct spans and summarized;
 *   - a list page's traces rows: every trace_rows row of the page's
 *     candidates, merged per trace, checked and ordered as a page.
 *
 * Data flow: clickhouse_store_lookup.c reads a trace's rows with
 * pc_ch_sql_trace_spans (clickhouse_query.h) → pc_ch_spans_read → the
 * summary of each project's spans (pc_ch_spans_summary) to get_trace's
 * caller, and the same spans, in page order, to get_spans'.
 * clickhouse_store_list.c reads a window's candidates' rows with
 * pc_ch_sql_list_rows → pc_ch_traces_merge → the page (pc_ch_traces), or
 * the page from the spans (pc_ch_sql_list_window → pc_ch_traces_read).
 *
 * The rules are TRACE_AGG's (clickhouse_query.c), so either way of reading a
 * trace gives the same answer: per project, a span copied more than once
 * (a redelivered batch, a retried insert) counts once, its copy with the
 * least created_ns winning (first write wins); "first" orders spans by
 * (created_ns, start_ns, span_id) and costs are added in that order.
 * Pure functions, no I/O.
 */
#ifndef PC_CLICKHOUSE_SUMMARY_H
#define PC_CLICKHOUSE_SUMMARY_H

#include "buf.h"
#include "store.h"

#include <stddef.h>

/* A trace's distinct spans, sorted by (project_id, start_ns, span_id): the
 * order of the projects' summaries, and of each project's page of spans. */
typedef struct pc_ch_spans {
    pc_buf text;       /* the answer the rows point into (owned) */
    pc_span_row *rows; /* owned */
    size_t n;
} pc_ch_spans;

/* Takes over |text| (a TabSeparated answer of rows of |ncols| columns, the
 * first PC_CH_SPAN_COLS of them pc_ch_read_span's) and fills |s| with its
 * distinct spans. 0, or -1 when a row has another number of columns (|s| is
 * then empty). */
int pc_ch_spans_read(pc_ch_spans *s, pc_buf *text, int ncols);

/* The rows of |project| in |s|: the index of the first in |*first|, the count
 * returned (0 when none). */
size_t pc_ch_spans_of(const pc_ch_spans *s, const char *project, size_t *first);

/* The summary of |n| (>= 1) distinct spans of one trace and project, |rows|
 * as pc_ch_spans_read sorts them; the strings of |out| point into them. */
void pc_ch_spans_summary(const pc_span_row *rows, size_t n, pc_trace_row *out);

void pc_ch_spans_free(pc_ch_spans *s);

/* Trace summaries, a list's page, their strings pointing into |text|. */
typedef struct pc_ch_traces {
    pc_buf text;        /* the answer the rows point into (owned) */
    pc_trace_row *rows; /* owned */
    size_t n;
} pc_ch_traces;

/* Takes over |text| (a TabSeparated answer of summaries, PC_CH_TRACE_COLS
 * columns, pc_ch_read_trace's) into |t|. 0, or -1 when a row has another
 * number of columns (|t| is then empty). */
int pc_ch_traces_read(pc_ch_traces *t, pc_buf *text);

/*
 * A list window's page from its candidates' traces rows (pc_ch_sql_list_rows'
 * answer |text|, PC_CH_LIST_ROWS_COLS columns, taken over): each of the |n|
 * candidates (projects[i], trace_ids[i]) merged from all its rows by the
 * rules of the candidates' HAVING (clickhouse_query.c: the service of the
 * first root's row, else of the first row; error if any row failed; least
 * start, greatest end, least created; summed spans and tokens (saturating as
 * TRACE_AGG's); the least non-empty session and user; the rows' costs added
 * in "first" order, NAN when none has one) is exact when every row carries
 * its merge keys and the rows hold as many distinct span hashes as spans.
 * When every candidate is exact and passes the window's conditions on its
 * merged values (start at or after |lo| (INT64_MIN: none), f's range and
 * cursor, service, status, span type and model (a row has them: the
 * answer's flags), session, user), |t| holds their summaries newest first
 * (started_ns, trace_id, project_id, all descending), the first |skip|
 * dropped, and 1 is returned. Else 0 (|t| empty): the spans must give the
 * page. -1 when a row has another number of columns.
 */
int pc_ch_traces_merge(pc_ch_traces *t, pc_buf *text, const pc_trace_filter *f, int64_t lo,
                       const char *const *projects, const char *const *trace_ids, size_t n,
                       size_t skip);

void pc_ch_traces_free(pc_ch_traces *t);

/* qsort's comparator of pc_trace_row in list order: newest start first, then
 * trace id and project id descending (clickhouse_query.c's NEWEST). */
int pc_ch_traces_newest_first(const void *a, const void *b);

#endif
