/*
 * clickhouse_agg.h - the SQL of the `clickhouse` store's aggregate reads
 * (store.h, issue 13): the session list, and the reader of its TabSeparated
 * rows (the stats: clickhouse_stats.h).
 *
 * Data flow: clickhouse_store_sessions.c builds these
 * statements, run them read-only and bounded (as every read), and hand the
 * parsed rows to the caller. Nothing here does I/O; the unit tests cover the
 * text. How each figure stays exact when a batch is redelivered or a trace
 * is split over inserts is documented in clickhouse_agg.c.
 *
 * Safety: caller text reaches SQL only through pc_ch_quote (clickhouse_sql.h).
 */
#ifndef PC_CLICKHOUSE_AGG_H
#define PC_CLICKHOUSE_AGG_H

#include "clickhouse_sql.h"

/*
 * Sessions, level 1: the page of sessions of |f| from the traces rows, with
 * the figures the rows give exactly (PC_CH_SESSION_COLS columns: session_id,
 * project_id, user_id, trace_count, error_count, first_seen_ns,
 * last_seen_ns), in store.h's order, at most f->limit after f->offset.
 * Without f->session_id and f->user_id, |lo| != INT64_MIN reads only the
 * sessions of the traces having a row started at or after |lo| (a window:
 * see clickhouse_agg.c for when its page is the whole table's).
 */
#define PC_CH_SESSION_COLS 7
void pc_ch_sql_sessions(pc_buf *out, const char *db, const pc_session_filter *f, int64_t lo);

/* The rows started before |lo| (of |project_id|, NULL = any): two columns,
 * their count and greatest completed_ns (M of a window's check). */
void pc_ch_sql_sessions_below(pc_buf *out, const char *db, const char *project_id, int64_t lo);

/*
 * Sessions, level 2, first read: the distinct trace ids of the traces rows
 * naming one of the |n| session ids |sessions| of a page, in any project (a
 * superset when another project has one of those ids: the sums keep the
 * page's (project, session) pairs), one per line, at most PC_CH_NAMED_MAX + 1
 * (clickhouse_query.h).
 */
void pc_ch_sql_session_traces(pc_buf *out, const char *db, const char *const *sessions,
                              size_t n);
/*
 * Sessions, level 2: for the |n| sessions (|projects|[i], |sessions|[i]) of
 * a page, the figures that need the deduplicated spans (PC_CH_SESSION_SUM_COLS
 * columns: session_id, project_id, span_count, input_tokens, output_tokens,
 * cost_usd), one row per session having spans, in no particular order. The
 * spans are those of the |nt| trace ids |trace_ids| (the first read's), or,
 * when |trace_ids| is NULL (too many to name: clickhouse_query.h), of the traces the
 * traces rows name in a subquery (18.16 runs that read several times slower:
 * 130 against 20 ms for a page of 50 sessions at 10M spans).
 */
#define PC_CH_SESSION_SUM_COLS 6
void pc_ch_sql_session_sums(pc_buf *out, const char *db, const char *const *projects,
                            const char *const *sessions, size_t n,
                            const char *const *trace_ids, size_t nt);

/* Fill rows from parsed columns (strings point into the columns). */
void pc_ch_read_session(char **cols, pc_session_row *r);

#endif
