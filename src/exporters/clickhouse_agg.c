/*
 * clickhouse_agg.c - the SQL of the session list and the stats over the
 * `clickhouse` exporter's tables (see clickhouse_agg.h). Pure functions: text
 * in, text out. The tables are clickhouse_sql.c's, schema 4.
 *
 * Sessions (store.h): a trace's session is the least non-empty session_id of
 * its spans. Each traces row holds the least of its insert's spans, so the
 * least over a trace's rows is exact however its spans were split or
 * redelivered; so are the trace count (distinct keys), the user (least
 * non-empty), errors (a row is "error" when a span of its insert failed),
 * first seen (least row start) and last seen (greatest row completion): a
 * page of sessions is chosen from the rows alone (level 1: one GROUP BY of
 * the rows that carry a session, per trace, then per session). Span counts,
 * tokens and costs would count a redelivered span twice in the rows, so they
 * come from the deduplicated spans of that page's traces only (level 2),
 * grouped per trace first (the trace's session from its spans), then per
 * session. clickhouse_store.c joins the two answers by (project, session).
 *
 * Stats (store.h): the spans whose start lies in [start, end), deduplicated
 * by a GROUP BY on the span key (project, trace, span) over the range (the
 * first write's fields: argMin by created_ns), then grouped per (bucket,
 * group). No LIMIT 1 BY over the range: a GROUP BY aggregates as it reads.
 * The range also bounds started_at, the partition key, so only the months it
 * covers are read (and, modern, the minmax index on start_ns skips the
 * granules outside it). Traces are joined in per (bucket, group): each
 * (trace, group)'s first start over every span of the traces with a span in
 * the range (deduplicated the same way), counted where it lies in the range.
 * Those traces are found by trace_id alone, the sorting key's first column,
 * so a small range reads the granules of its traces only (a same id in
 * another project is read too, and dropped: its first start is not in the
 * range, or it would have a span there); no time bound, as a trace's first
 * span may lie before the range. Percentiles are nearest-rank: the
 * value at 1-based rank ceil(p * n) = intDiv(n * P + 99, 100) (P the percent,
 * integer arithmetic: no float rounding of p * n) of the sorted durations of
 * the ended spans; the API reports its bin (histo.h), as the embedded store
 * does. Unlike the embedded store there are no hour rollups here: every read
 * gathers its window's spans.
 */
#include "clickhouse_agg.h"

#include "clickhouse_query.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEAST(col) "minIf(" col ", " col " != '')"

void pc_ch_sql_sessions(pc_buf *out, const char *db, const pc_session_filter *f)
{
    pc_buf_printf(out,
                  "SELECT t_session, project_id, " LEAST("t_user") ", count(), countIf(t_error),"
                  " min(t_start) AS s_first, max(t_end) AS s_last FROM ("
                  "SELECT project_id, trace_id, " LEAST("session_id") " AS t_session,"
                  " " LEAST("user_id") " AS t_user, max(status = 'error') AS t_error,"
                  " min(started_ns) AS t_start, max(completed_ns) AS t_end"
                  " FROM `%s`.traces WHERE ",
                  db);
    if (f->project_id) {
        pc_buf_puts(out, "project_id = ");
        pc_ch_quote_cstr(out, f->project_id);
        pc_buf_puts(out, " AND ");
    }
    /* the traces having a row with a session (all of their rows are read) */
    pc_buf_printf(out,
                  "(project_id, trace_id) IN (SELECT project_id, trace_id FROM `%s`.traces"
                  " WHERE session_id != ''",
                  db);
    if (f->project_id) {
        pc_buf_puts(out, " AND project_id = ");
        pc_ch_quote_cstr(out, f->project_id);
    }
    if (f->session_id) {
        pc_buf_puts(out, " AND session_id = ");
        pc_ch_quote_cstr(out, f->session_id);
    }
    pc_buf_puts(out, ") GROUP BY project_id, trace_id HAVING t_session != ''");
    if (f->session_id) {
        pc_buf_puts(out, " AND t_session = ");
        pc_ch_quote_cstr(out, f->session_id);
    }
    pc_buf_puts(out, ") GROUP BY project_id, t_session HAVING 1");
    if (f->user_id) {
        pc_buf_puts(out, " AND countIf(t_user = ");
        pc_ch_quote_cstr(out, f->user_id);
        pc_buf_puts(out, ") > 0");
    }
    if (f->start_ns) pc_buf_printf(out, " AND s_last >= %lld", (long long)f->start_ns);
    if (f->end_ns) pc_buf_printf(out, " AND s_first <= %lld", (long long)f->end_ns);
    pc_buf_printf(out,
                  " ORDER BY s_last DESC, t_session DESC, project_id DESC LIMIT %d, %d"
                  " FORMAT TabSeparated",
                  f->offset > 0 ? f->offset : 0, f->limit > 0 ? f->limit : 1);
}

/* Appends "((p, s), ..., ('', ''))": the keys, and one no session has (so the
 * list is never a lone tuple, which IN would read as the tuple's elements). */
static void keys(pc_buf *out, const char *const *projects, const char *const *sessions, size_t n)
{
    pc_buf_putc(out, '(');
    for (size_t i = 0; i < n; i++) {
        pc_buf_putc(out, '(');
        pc_ch_quote_cstr(out, projects[i]);
        pc_buf_puts(out, ", ");
        pc_ch_quote_cstr(out, sessions[i]);
        pc_buf_puts(out, "), ");
    }
    pc_buf_puts(out, "('', ''))");
}

void pc_ch_sql_session_sums(pc_buf *out, const char *db, const char *const *projects,
                            const char *const *sessions, size_t n)
{
    pc_buf k = PC_BUF_INIT;
    keys(&k, projects, sessions, n);
    pc_buf_printf(out,
                  "SELECT t_session, project_id, sum(t_spans),"
                  " if(sum(toFloat64(t_in)) >= 9.2e18, toInt64(9223372036854775807), sum(t_in)),"
                  " if(sum(toFloat64(t_out)) >= 9.2e18, toInt64(9223372036854775807), sum(t_out)),"
                  " if(sum(t_known) > 0, sum(t_cost), nan) FROM ("
                  "SELECT project_id, trace_id, " LEAST("session_id") " AS t_session,"
                  " count() AS t_spans, " PC_CH_TOKEN_SUM("input_tokens") " AS t_in,"
                  " " PC_CH_TOKEN_SUM("output_tokens") " AS t_out, count(cost_usd) AS t_known,"
                  " arraySum(arrayMap(x -> x.4, arraySort(groupArrayIf((created_ns, start_ns,"
                  " span_id, assumeNotNull(cost_usd)), isNotNull(cost_usd))))) AS t_cost FROM ("
                  "SELECT project_id, trace_id, span_id, session_id, input_tokens, output_tokens,"
                  " cost_usd, created_ns, start_ns FROM `%s`.spans WHERE (project_id, trace_id) IN (SELECT project_id,"
                  " trace_id FROM `%s`.traces WHERE (project_id, session_id) IN %s)"
                  " ORDER BY project_id, trace_id, span_id, created_ns"
                  " LIMIT 1 BY project_id, trace_id, span_id)"
                  " GROUP BY project_id, trace_id) WHERE (project_id, t_session) IN %s"
                  " GROUP BY project_id, t_session FORMAT TabSeparated",
                  db, db, k.data, k.data);
    pc_buf_free(&k);
}

/* The column a stats group is of ('' for none). */
static const char *group_col(pc_stats_group g)
{
    switch (g) {
    case PC_GROUP_MODEL: return "llm_model";
    case PC_GROUP_SERVICE: return "service_name";
    case PC_GROUP_SPAN_TYPE: return "span_type";
    case PC_GROUP_PROJECT: return "project_id";
    case PC_GROUP_USER: return "user_id";
    case PC_GROUP_SESSION: return "session_id";
    default: return NULL;
    }
}

/* The nearest-rank |pct| percentile of the sorted durations d (n of them), -1 when none. */
#define PCTL(pct) "if(n = 0, toInt64(-1), d[intDiv(n * " #pct " + 99, 100)])"

/* The bucket of time column |col| in |q| into |out| (64 bytes). */
static void bucket_expr(char *out, const pc_stats_query *q, const char *col)
{
    if (q->interval_ns > 0)
        snprintf(out, 64, "%s - %s %% %lld", col, col, (long long)q->interval_ns);
    else
        snprintf(out, 64, "toInt64(%lld)", (long long)q->start_ns);
}

/*
 * Stats (store.h) in one read: the span figures of the spans starting in the
 * window (each span once: its first write, argMin by created_ns), ANY LEFT
 * JOIN the traces of each (bucket, group): per (trace, group) the smallest
 * start of its spans of that group, counted where it lies in the window, over
 * every span of the traces that have one in the window (a trace's first span
 * of a group may lie before it). The partition key's range bounds the span
 * figures: whole seconds around [start, end), clamped as the rows' DateTime
 * values are (clickhouse_sql.c).
 */
void pc_ch_sql_stats(pc_buf *out, const char *db, const pc_stats_query *q)
{
    const char *g = group_col(q->group_by);
    char bucket[64], first_bucket[64];
    bucket_expr(bucket, q, "s_start");
    bucket_expr(first_bucket, q, "f");
    long long lo_s = q->start_ns > 0 ? q->start_ns / 1000000000LL : 0;
    long long hi_s = q->end_ns / 1000000000LL + 1;
    if (lo_s > 4294967295LL) lo_s = 4294967295LL;
    if (hi_s > 4294967295LL) hi_s = 4294967295LL;
    pc_buf window = PC_BUF_INIT; /* the spans starting in the window */
    pc_buf_printf(&window,
                  " FROM `%s`.spans WHERE start_ns >= %lld AND start_ns < %lld"
                  " AND started_at >= toDateTime(%lld) AND started_at <= toDateTime(%lld)",
                  db, (long long)q->start_ns, (long long)q->end_ns, lo_s, hi_s);
    pc_buf project = PC_BUF_INIT;
    if (q->project_id) {
        pc_buf_puts(&project, " AND project_id = ");
        pc_ch_quote_cstr(&project, q->project_id);
    }
    pc_buf_printf(out,
                  "SELECT bucket, grp, a_spans, a_traces, a_errors, a_in, a_out, a_cost, a_unpriced,"
                  " " PCTL(50) ", " PCTL(95) ", " PCTL(99) " FROM ("
                  "SELECT %s AS bucket, %s AS grp, count() AS a_spans,"
                  " countIf(s_status = 'error') AS a_errors,"
                  " " PC_CH_TOKEN_SUM("s_in") " AS a_in, " PC_CH_TOKEN_SUM("s_out") " AS a_out,"
                  " if(countIf(NOT isNaN(s_cost)) > 0, sumIf(s_cost, NOT isNaN(s_cost)), nan) AS a_cost,"
                  " countIf(s_type IN ('llm', 'embedding') AND s_model != '' AND isNaN(s_cost))"
                  " AS a_unpriced,"
                  " arraySort(groupArrayIf(greatest(s_end - s_start, 0), s_end > 0)) AS d,"
                  " length(d) AS n"
                  " FROM (SELECT project_id, trace_id, span_id,"
                  " argMin(start_ns, created_ns) AS s_start, argMin(end_ns, created_ns) AS s_end,"
                  " argMin(status, created_ns) AS s_status, argMin(span_type, created_ns) AS s_type,"
                  " argMin(llm_model, created_ns) AS s_model,"
                  " argMin(input_tokens, created_ns) AS s_in,"
                  " argMin(output_tokens, created_ns) AS s_out,"
                  " argMin(ifNull(cost_usd, nan), created_ns) AS s_cost",
                  bucket, g ? "s_group" : "''");
    if (g) pc_buf_printf(out, ", argMin(%s, created_ns) AS s_group", g);
    pc_buf_append(out, window.data, window.len);
    pc_buf_append(out, project.data, project.len);
    pc_buf_printf(out,
                  " GROUP BY project_id, trace_id, span_id)"
                  " GROUP BY bucket, grp ORDER BY bucket, grp LIMIT %d) AS sp"
                  " ANY LEFT JOIN (SELECT %s AS bucket, grp, count() AS a_traces FROM ("
                  "SELECT project_id, trace_id, s_group AS grp, min(s_start) AS f FROM ("
                  "SELECT project_id, trace_id, span_id, argMin(start_ns, created_ns) AS s_start,"
                  " %s%s%s AS s_group FROM `%s`.spans WHERE trace_id IN"
                  " (SELECT trace_id",
                  q->max_rows > 0 ? q->max_rows : 1, first_bucket, g ? "argMin(" : "",
                  g ? g : "''", g ? ", created_ns)" : "", db);
    pc_buf_append(out, window.data, window.len);
    pc_buf_append(out, project.data, project.len);
    pc_buf_puts(out, ")");
    pc_buf_append(out, project.data, project.len);
    pc_buf_printf(out,
                  " GROUP BY project_id, trace_id, span_id)"
                  " GROUP BY project_id, trace_id, grp HAVING f >= %lld AND f < %lld)"
                  " GROUP BY bucket, grp) AS tr USING (bucket, grp)"
                  " ORDER BY bucket, grp FORMAT TabSeparated",
                  (long long)q->start_ns, (long long)q->end_ns);
    pc_buf_free(&window);
    pc_buf_free(&project);
}

static int64_t num(const char *s)
{
    return strtoll(s, NULL, 10);
}

void pc_ch_read_session(char **c, pc_session_row *r)
{
    memset(r, 0, sizeof(*r));
    r->session_id = c[0];
    r->project_id = c[1];
    r->user_id = c[2];
    r->trace_count = num(c[3]);
    r->error_count = num(c[4]);
    r->first_seen_ns = num(c[5]);
    r->last_seen_ns = num(c[6]);
    r->cost_usd = NAN;
}

void pc_ch_read_stats(char **c, pc_stats_row *r)
{
    r->bucket_ns = num(c[0]);
    r->group = c[1];
    r->spans = num(c[2]);
    r->traces = num(c[3]);
    r->errors = num(c[4]);
    r->input_tokens = num(c[5]);
    r->output_tokens = num(c[6]);
    r->cost_usd = pc_ch_cost(c[7]);
    r->unpriced = num(c[8]);
    r->latency_p50_ns = num(c[9]);
    r->latency_p95_ns = num(c[10]);
    r->latency_p99_ns = num(c[11]);
}
