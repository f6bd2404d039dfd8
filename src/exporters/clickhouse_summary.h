/*
 * clickhouse_summary.h - a trace's spans as the `clickhouse` store reads them
 * for a lookup: raw rows (every copy of every span, in no order), made into
 * the trace's distinct spans and summarized here, in the collector, instead
 * of by a GROUP BY on the server.
 *
 * Data flow: clickhouse_store_lookup.c reads a trace's rows with
 * pc_ch_sql_trace_spans (clickhouse_query.h) → pc_ch_spans_read → the
 * summary of each project's spans (pc_ch_spans_summary) to get_trace's
 * caller, and the same spans, in page order, to get_spans'.
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

#endif
