/*
 * clickhouse_agg.c - the SQL of the session list over the `clickhouse`
 * exporter's tables (see clickhouse_agg.h). Pure functions: text
 * in, text out. The tables are clickhouse_sql.c's, schema 4.
 *
 * Sessions (store.h): a trace's session is the least non-empty session_id of
 * its spans. Each traces row holds the least of its insert's spans, so the
 * least over a trace's rows is exact however its spans were split or
 * redelivered; so are the trace count (distinct keys), the user (least
 * non-empty), errors (a row is "error" when a span of its insert failed),
 * first seen (least row start) and last seen (greatest row completion): a
 * page of sessions is chosen from the rows alone (level 1: the rows of the
 * chosen sessions' traces grouped per trace, then per session). Span counts,
 * tokens and costs would count a redelivered span twice in the rows, so they
 * come from the deduplicated spans of that page's traces only (level 2: their
 * trace ids from the rows, then their spans by trace id), grouped per trace
 * first (the trace's session from its spans), then per session.
 * clickhouse_store_sessions.c joins the two answers by (project, session).
 *
 * Which sessions level 1 groups (never every session of the table: at 10^6
 * sessions that GROUP BY took 5.5 s on 18.16): one session (session_id: its
 * traces have a row naming it); a user's (the sessions of the traces having
 * a row with that user: a superset, checked exactly by the HAVING); else
 * those of a window, the sessions of the traces having a row started at or
 * after |lo|. Every session outside a window has all its rows started before
 * lo, so its last seen is at most M, the greatest completion of those rows
 * (pc_ch_sql_sessions_below): a full page whose last row was seen after M is
 * the page a whole-table read would give, and so is any page when no row
 * started before lo or M is before the range's start.
 *
 * The levels select by one column (trace_id IN, session_id IN): 18.16
 * matches a set of (project, id) tuples about 3x slower (measured at 10^7
 * spans: a window's page 285-317 -> 122-168 ms, the page's trace ids 30 ->
 * 10 ms). Without a project filter that is a superset: a trace or session id
 * that another project also has brings that project's trace or session
 * along, grouped per (project, trace) and per (project, session) on its own.
 * Each session answered is still whole (every trace of a session has a row
 * naming it), and a page drawn from more whole sessions than the window's is
 * still exact by the check above; level 2 keeps the page's (project,
 * session) pairs.
 *
 * Stats: clickhouse_stats.c.
 */
#include "clickhouse_agg.h"

#include "clickhouse_query.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEAST(col) "minIf(" col ", " col " != '')"

/* Appends "session_id IN (...)": the sessions of the traces having a row
 * where |cond| holds (each trace's session from all its rows). */
static void sessions_of(pc_buf *out, const char *db, const char *project_id, const char *cond)
{
    pc_buf_printf(out,
                  "session_id IN (SELECT " LEAST("session_id") " AS c_session FROM `%s`.traces"
                  " WHERE ",
                  db);
    pc_ch_project_and(out, project_id);
    pc_buf_printf(out, "trace_id IN (SELECT trace_id FROM `%s`.traces WHERE ", db);
    pc_ch_project_and(out, project_id);
    pc_buf_printf(out, "%s) GROUP BY project_id, trace_id HAVING c_session != '')", cond);
}

void pc_ch_sql_sessions(pc_buf *out, const char *db, const pc_session_filter *f, int64_t lo)
{
    pc_buf_printf(out,
                  "SELECT t_session, project_id, " LEAST("t_user") ", count(), countIf(t_error),"
                  " min(t_start) AS s_first, max(t_end) AS s_last FROM ("
                  "SELECT project_id, trace_id, " LEAST("session_id") " AS t_session,"
                  " " LEAST("user_id") " AS t_user, max(status = 'error') AS t_error,"
                  " min(started_ns) AS t_start, max(completed_ns) AS t_end"
                  " FROM `%s`.traces WHERE ",
                  db);
    pc_ch_project_and(out, f->project_id);
    /* the traces having a row with one of the chosen sessions (all their rows are read) */
    pc_buf_printf(out, "trace_id IN (SELECT trace_id FROM `%s`.traces WHERE ", db);
    pc_ch_project_and(out, f->project_id);
    pc_buf cond = PC_BUF_INIT;
    if (f->session_id) { /* a trace of that session has a row naming it */
        pc_buf_puts(out, "session_id = ");
        pc_ch_quote_cstr(out, f->session_id);
    } else if (f->user_id) { /* the sessions of the user's traces */
        pc_buf_puts(&cond, "user_id = ");
        pc_ch_quote_cstr(&cond, f->user_id);
        sessions_of(out, db, f->project_id, cond.data);
    } else if (lo != INT64_MIN) { /* the sessions of the traces in the window */
        pc_buf_printf(&cond, "started_ns >= %lld", (long long)lo);
        sessions_of(out, db, f->project_id, cond.data);
    } else {
        pc_buf_puts(out, "session_id != ''");
    }
    pc_buf_free(&cond);
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

void pc_ch_sql_sessions_below(pc_buf *out, const char *db, const char *project_id, int64_t lo)
{
    pc_buf_printf(out, "SELECT count(), max(completed_ns) FROM `%s`.traces WHERE ", db);
    pc_ch_project_and(out, project_id);
    pc_buf_printf(out, "started_ns < %lld FORMAT TabSeparated", (long long)lo);
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

void pc_ch_sql_session_traces(pc_buf *out, const char *db, const char *const *sessions, size_t n)
{
    pc_buf_printf(out, "SELECT DISTINCT trace_id FROM `%s`.traces WHERE ", db);
    pc_ch_sql_in(out, "session_id", sessions, n);
    pc_buf_printf(out, " LIMIT %d FORMAT TabSeparated", PC_CH_NAMED_MAX + 1);
}

/* The spans are read by trace id alone (see pc_ch_sql_summaries_of): a trace
 * of another project with one of those ids is grouped on its own and kept
 * only when its own session is one of |sessions|', in which case the traces
 * rows name that session too (a trace's least session is one of its rows'). */
void pc_ch_sql_session_sums(pc_buf *out, const char *db, const char *const *projects,
                            const char *const *sessions, size_t n,
                            const char *const *trace_ids, size_t nt)
{
    pc_buf k = PC_BUF_INIT, ids = PC_BUF_INIT;
    keys(&k, projects, sessions, n);
    if (trace_ids && nt) {
        pc_ch_sql_in(&ids, "trace_id", trace_ids, nt);
    } else {
        pc_buf_printf(&ids, "trace_id IN (SELECT trace_id FROM `%s`.traces WHERE ", db);
        pc_ch_sql_in(&ids, "session_id", sessions, n);
        pc_buf_putc(&ids, ')');
    }
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
                  " cost_usd, created_ns, start_ns FROM `%s`.spans PREWHERE %s"
                  " ORDER BY project_id, trace_id, span_id, created_ns"
                  " LIMIT 1 BY project_id, trace_id, span_id)"
                  " GROUP BY project_id, trace_id) WHERE (project_id, t_session) IN %s"
                  " GROUP BY project_id, t_session FORMAT TabSeparated",
                  db, ids.data, k.data);
    pc_buf_free(&k);
    pc_buf_free(&ids);
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
