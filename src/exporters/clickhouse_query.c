/*
 * clickhouse_query.c - the SQL of the `clickhouse` store's reads (see
 * clickhouse_query.h; their answers are read by clickhouse_tsv.c). Pure
 * functions: text in, text out. The tables are clickhouse_sql.c's.
 *
 * Lists (pc_ch_sql_list_window, driven by clickhouse_store_list.c): no GROUP BY
 * over the whole traces table. A list reads a window [lo, top] of start
 * times: the newest hour below the range's top (end_time, the cursor's start,
 * else now and the future), then windows 4x wider, until a window fills the
 * page or reaches the range's start (or is 4^8 hours, 7.5 years, wide: then
 * it has no lower edge). One window is two statements, one per level (the
 * second names the first's traces; a subquery selects them again when they
 * are too many to name: clickhouse_query.h):
 *   candidates  the traces rows with started_ns >= lo - GUARD (1 hour), of
 *               traces having a row in [lo, top] (when top is set: an IN
 *               on the key range, or, when no filter reads a trace's later
 *               rows, started_ns <= top + GUARD, so a window far back reads
 *               its own rows only), merged per trace, HAVING merged start
 *               >= lo and the range, cursor and filters (service, status,
 *               span type), newest first, limit + SLACK (8) of them (+
 *               offset). A trace whose start is in [lo, top] has all its rows
 *               at or after lo, so its merged values are exact; a trace
 *               starting before lo - GUARD whose rows in the window make it
 *               look younger (spans of one trace inserted more than an hour
 *               apart in start time) is a false candidate, removed below.
 *   the page    the candidates' summaries computed from their deduplicated
 *               spans (as a trace lookup does), every condition checked again
 *               on these exact values, newest first, limit rows. Since
 *               schema 8 the page's candidates (the first offset + limit)
 *               are first merged from all their own rows (read raw from
 *               trace_rows, which holds the traces rows by trace, wherever
 *               in time they lie: pc_ch_sql_list_rows; merged in the
 *               collector by pc_ch_traces_merge, clickhouse_summary.h), the
 *               same conditions as the candidates' HAVING checked on the
 *               merged values, and these summaries are the page when every
 *               candidate passes, its rows carrying their merge keys
 *               (schema 7) and holding as many distinct span hashes as
 *               spans (schema 8: a redelivered span, or a row written
 *               before, makes them fewer). Merged rows of a trace holding
 *               no span twice give exactly TRACE_AGG's values, its cost
 *               aside (added row by row, not span by span: equal to the 12
 *               digits served); a candidate that fails (its true start is
 *               below lo) sends the page to the spans. Figures:
 *               bench/README.
 * Why exact: every trace of the window is a candidate with its exact key, so
 * if the page is full, no trace outside the candidates can rank above its
 * last row; a short page only ends the list when the window covers the
 * range. Offsets up to 100 are applied to the checked rows (exact); deeper
 * ones to the candidates, where a false candidate above the page (a trace
 * whose inserts' start times lie more than an hour apart) shifts the page by
 * one per such trace: keyset cursors (exact at any depth) are the way to
 * page deep. span_type no longer scans the spans table (version 2 collected
 * the ids of every matching span): the traces rows carry their types.
 * Issue 13's filters: session_id, user_id and model are exact on the merged
 * rows (least non-empty session / user; union of models), and pre-select
 * the rows by equality first (the modern dialect's skip indexes). min_cost
 * and attr.<key> are not: the rows' cost is an upper bound (a redelivered
 * span counts twice) and the rows hold only a Bloom filter of their spans'
 * attributes (schema 9, pc_ch_attr_bloom_serves: every trace of the window
 * when it does not serve the value), so their candidates are a superset,
 * checked on the spans (the exact cost; the attribute in the attributes'
 * JSON text, pc_ch_sql_attr_match). A page such a superset
 * leaves short is read again with eight times the candidates while the
 * candidates reached their cap (pc_ch_filter_inexact, clickhouse_store_list.c),
 * so no false candidate hides a match; their offsets always apply to the
 * checked rows.
 * Search goes through the search index (clickhouse_search.h,
 * clickhouse_store_search.c); the scan here (pc_ch_sql_search: queries the index
 * cannot serve) still matches spans and merges all the traces rows of the
 * matching traces (page()).
 *
 * Summaries served (get_trace, lists, search) are computed from the trace's
 * deduplicated spans of ITS project, grouped by (project_id, trace_id):
 * started = min start, completed = max(end, or start when not ended),
 * span_count and token sums (tokens > 0) over distinct spans, error if any
 * span failed, source / created from the first span, root = the first
 * parentless span, service from the root, else from the first span; "first"
 * orders by (created_ns, start_ns, span_id); session_id / user_id the least
 * non-empty of the spans', cost_usd the sum of their known costs (nan when
 * none: the reader's NAN). A re-sent batch therefore never
 * double-counts, a trace split over several inserts is whole, and two
 * projects' traces never mix.
 */
#include "clickhouse_query.h"

#include "clickhouse_events.h"

#include "json.h"
#include "mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ queries -- */

#define SPAN_COLS                                                                                  \
    "trace_id, span_id, parent_span_id, project_id, name, kind, span_type, service_name,"          \
    " status, status_message, source, trace_state, start_ns, end_ns, created_ns,"                  \
    " llm_provider, llm_model, input_tokens, output_tokens, attributes, events, links,"            \
    " resource, scope," PC_CH_SPAN_V4_COLS

/* "First" among a trace's distinct spans; see the contract above. */
#define FIRST "(created_ns, start_ns, span_id)"
#define ROOT "parent_span_id = ''"

#define TOKEN_SUM PC_CH_TOKEN_SUM

/* The sum of the known costs of a trace's deduplicated spans, nan when none
 * is known (store.h: NAN); Nullable's NULLs are the unknown ones. Added one
 * by one in "first" order (created, start, span id), as the embedded store
 * adds a trace's spans as they arrive: sum() would add in whatever order the
 * server's threads and parts give, and float addition is not associative
 * (the same trace read twice could differ in its last digit). */
#define COST_SUM                                                                                   \
    "if(count(cost_usd) > 0, arraySum(arrayMap(x -> x.4, arraySort(groupArrayIf((created_ns,"      \
    " start_ns, span_id, assumeNotNull(cost_usd)), isNotNull(cost_usd))))), nan)"

/* The least non-empty value of a string column ('' when none). */
#define LEAST(col) "minIf(" col ", " col " != '')"

/* The summary of a trace's deduplicated spans, PC_CH_TRACE_COLS columns, for
 * GROUP BY project_id, trace_id. */
#define TRACE_AGG                                                                                  \
    "trace_id, project_id,"                                                                        \
    " if(countIf(" ROOT ") > 0, argMinIf(service_name, " FIRST ", " ROOT "),"                      \
    " argMin(service_name, " FIRST ")),"                                                           \
    " argMinIf(span_id, " FIRST ", " ROOT "), argMinIf(name, " FIRST ", " ROOT "),"                \
    " if(countIf(status = 'error') > 0, 'error', 'success'), argMin(source, " FIRST "),"           \
    " min(start_ns) AS t_started, max(if(end_ns > 0, end_ns, start_ns)), min(created_ns),"         \
    " count(), " TOKEN_SUM("input_tokens") ", " TOKEN_SUM("output_tokens") ","                     \
    " " LEAST("session_id") " AS t_session, " LEAST("user_id") " AS t_user,"                       \
    " " COST_SUM " AS t_cost"

/* The columns of the deduplicated spans TRACE_AGG reads. */
#define SUMMARY_COLS                                                                               \
    "trace_id, span_id, parent_span_id, project_id, name, service_name, status,"                   \
    " source, start_ns, end_ns, created_ns, input_tokens, output_tokens, session_id, user_id,"     \
    " cost_usd"

/*
 * Appends the deduplicated spans (first write wins, per project) matching
 * |pre| (a PREWHERE, or NULL) and |where| (or NULL). A PREWHERE is checked
 * on its own columns before the server reads the others, which it then reads
 * only where rows passed.
 */
static void dedup_spans(pc_buf *out, const char *db, const char *cols, const char *pre,
                        const char *where)
{
    pc_buf_printf(out, "(SELECT %s FROM `%s`.spans", cols, db);
    if (pre) pc_buf_printf(out, " PREWHERE %s", pre);
    if (where) pc_buf_printf(out, " WHERE %s", where);
    pc_buf_lit(out, " ORDER BY project_id, trace_id, span_id, created_ns"
                    " LIMIT 1 BY project_id, trace_id, span_id)");
}

void pc_ch_sql_traces_from_spans(pc_buf *out, const char *db)
{
    pc_ch_sql_traces_from_spans_where(out, db, NULL);
}

void pc_ch_sql_traces_from_spans_where(pc_buf *out, const char *db, const char *where)
{
    pc_buf_printf(out,
                  "SELECT trace_id,"
                  " if(countIf(" ROOT ") > 0, argMinIf(service_name, " FIRST ", " ROOT "),"
                  " argMin(service_name, " FIRST ")),"
                  " min(started_at), max(if(end_ns > 0, ended_at, started_at)),"
                  " (max(if(end_ns > 0, end_ns, start_ns)) - min(start_ns)) / 1000000.0,"
                  " if(countIf(status = 'error') > 0, 'error', 'success'),"
                  " argMinIf(span_id, " FIRST ", " ROOT "), toUInt32(uniqExact(span_id)), '{}',"
                  " min(created_at), project_id, argMinIf(name, " FIRST ", " ROOT "),"
                  " toUInt8(countIf(" ROOT ") > 0), argMin(source, " FIRST "), min(start_ns),"
                  " max(if(end_ns > 0, end_ns, start_ns)), min(created_ns),"
                  " sum(if(input_tokens > 0, input_tokens, 0)),"
                  " sum(if(output_tokens > 0, output_tokens, 0)),"
                  " concat(',', arrayStringConcat(groupUniqArray(span_type), ','), ','),"
                  " " LEAST("session_id") ", " LEAST("user_id") ","
                  " if(count(cost_usd) > 0, sum(if(ifNull(cost_usd, 0) > 0, ifNull(cost_usd, 0),"
                  " 0)), NULL),"
                  " arrayFilter(m -> m != '', groupUniqArrayArray([llm_model, llm_request_model]))"
                  " FROM `%s`.spans",
                  db);
    if (where) pc_buf_printf(out, " WHERE %s", where);
    pc_buf_puts(out, " GROUP BY project_id, trace_id");
}

/* "trace_id = '<id>'", " AND project_id = '<p>'" when |project_id| is set, and
 * " AND _part IN (<parts>)" when |parts| is. */
static char *where_trace(const char *project_id, const char *trace_id, const char *parts)
{
    pc_buf w = PC_BUF_INIT;
    pc_buf_puts(&w, "trace_id = ");
    pc_ch_quote_cstr(&w, trace_id);
    if (project_id) {
        pc_buf_puts(&w, " AND project_id = ");
        pc_ch_quote_cstr(&w, project_id);
    }
    if (parts) pc_buf_printf(&w, " AND _part IN (%s)", parts);
    return pc_buf_steal(&w, NULL);
}

void pc_ch_sql_trace_parts(pc_buf *out, const char *db, const char *project_id,
                           const char *trace_id)
{
    char *w = where_trace(project_id, trace_id, NULL);
    pc_buf_printf(out,
                  "SELECT DISTINCT _part FROM `%s`.spans WHERE %s ORDER BY _part LIMIT %d"
                  " FORMAT TabSeparated",
                  db, w, PC_CH_TRACE_PARTS_MAX + 1);
    free(w);
}

void pc_ch_sql_trace_span_counts(pc_buf *out, const char *db, const char *project_id,
                                 const char *trace_id)
{
    char *w = where_trace(project_id, trace_id, NULL);
    pc_buf_printf(out,
                  "SELECT project_id, uniqExact(span_id), arrayStringConcat(groupUniqArray(_part),"
                  " ',') FROM `%s`.spans WHERE %s GROUP BY project_id ORDER BY project_id"
                  " FORMAT TabSeparated",
                  db, w);
    free(w);
}

void pc_ch_sql_parts_active(pc_buf *out, const char *db, const char *parts)
{
    pc_buf_puts(out, "SELECT count() FROM system.parts WHERE database = ");
    pc_ch_quote_cstr(out, db);
    pc_buf_printf(out, " AND table = 'spans' AND active AND name IN (%s) FORMAT TabSeparated",
                  parts);
}

/* A lookup's extra column when it names parts (clickhouse_query.h). */
#define PART_COL ", _part AS l_part"

void pc_ch_sql_get_spans(pc_buf *out, const char *db, const char *project_id,
                         const char *trace_id, const char *parts, int limit, int offset)
{
    char *w = where_trace(project_id ? project_id : "", trace_id, parts);
    pc_buf_puts(out, parts ? "SELECT " SPAN_COLS ", l_part FROM " : "SELECT " SPAN_COLS " FROM ");
    dedup_spans(out, db, parts ? SPAN_COLS PART_COL : SPAN_COLS, NULL, w);
    /* LIMIT offset, count: the form both dialects' servers know */
    pc_buf_printf(out, " ORDER BY start_ns, span_id LIMIT %d, %d FORMAT TabSeparated",
                  offset > 0 ? offset : 0, limit > 0 ? limit : 1);
    free(w);
}

void pc_ch_sql_trace_spans(pc_buf *out, const char *db, const char *project_id,
                           const char *trace_id, const char *parts, int max_rows)
{
    char *w = where_trace(project_id, trace_id, parts);
    pc_buf_printf(out, "SELECT %s FROM `%s`.spans WHERE %s LIMIT %d FORMAT TabSeparated",
                  parts ? SPAN_COLS PART_COL : SPAN_COLS, db, w, max_rows > 0 ? max_rows : 1);
    free(w);
}

/* Summaries of the traces whose spans match |pre| and |where| (dedup_spans)
 * and whose (project_id, trace_id) is in |having| (or NULL: all), in |order|;
 * |parts|: each ends with the parts its spans were read from. */
static void summaries(pc_buf *out, const char *db, const char *pre, const char *where,
                      const char *having, const char *order, bool parts)
{
    pc_buf_puts(out, parts ? "SELECT " TRACE_AGG ", arrayStringConcat(groupUniqArray(l_part), ',')"
                             " FROM "
                           : "SELECT " TRACE_AGG " FROM ");
    dedup_spans(out, db, parts ? SUMMARY_COLS PART_COL : SUMMARY_COLS, pre, where);
    pc_buf_lit(out, " GROUP BY project_id, trace_id");
    if (having) pc_buf_printf(out, " HAVING (project_id, trace_id) IN %s", having);
    pc_buf_printf(out, " ORDER BY %s FORMAT TabSeparated", order);
}

void pc_ch_sql_get_trace(pc_buf *out, const char *db, const char *project_id,
                         const char *trace_id, const char *parts)
{
    char *w = where_trace(project_id, trace_id, parts);
    summaries(out, db, NULL, w, NULL, "project_id", parts != NULL);
    free(w);
}

#define NEWEST "t_started DESC, trace_id DESC, project_id DESC"

size_t pc_ch_names_fit(const char *const *const *cols, size_t ncols, size_t n)
{
    size_t bytes = 0, k = 0;
    for (; k < n; k++) {
        size_t row = 0;
        for (size_t c = 0; c < ncols; c++)
            row += pc_ch_quoted_len(cols[c][k]) + 4;
        if (k > 0 && bytes + row > PC_CH_NAMES_BYTES) break;
        bytes += row;
    }
    return k;
}

void pc_ch_sql_tuples(pc_buf *out, const char *const *const *cols, size_t ncols, size_t n)
{
    pc_buf_putc(out, '(');
    for (size_t i = 0; i < n; i++) {
        pc_buf_puts(out, i ? ", (" : "(");
        for (size_t c = 0; c < ncols; c++) {
            if (c) pc_buf_puts(out, ", ");
            pc_ch_quote_cstr(out, cols[c][i]);
        }
        pc_buf_putc(out, ')');
    }
    pc_buf_putc(out, ')');
}

void pc_ch_sql_trace_tuples(pc_buf *out, const char *const *projects,
                            const char *const *trace_ids, size_t n)
{
    const char *const *cols[] = {trace_ids, projects};
    pc_ch_sql_tuples(out, cols, 2, n);
}

void pc_ch_sql_in(pc_buf *out, const char *column, const char *const *values, size_t n)
{
    if (n == 0) {
        pc_buf_lit(out, "0");
        return;
    }
    pc_buf_printf(out, "%s IN (", column);
    for (size_t i = 0; i < n; i++) {
        if (i) pc_buf_lit(out, ", ");
        pc_ch_quote_cstr(out, values[i]);
    }
    pc_buf_putc(out, ')');
}

/* The spans are read by trace id alone and the pairs kept after the GROUP BY:
 * a (trace_id, project_id) IN list in the read costs 18.16 an analysis of
 * the key for every pair and part (measured at 10M spans, 50 traces: 40-70
 * ms against 20). */
void pc_ch_sql_summaries_of(pc_buf *out, const char *db, const char *const *projects,
                            const char *const *trace_ids, size_t n)
{
    pc_buf pre = PC_BUF_INIT, pairs = PC_BUF_INIT;
    pc_ch_sql_in(&pre, "trace_id", trace_ids, n);
    const char *const *cols[] = {projects, trace_ids};
    pc_ch_sql_tuples(&pairs, cols, 2, n);
    summaries(out, db, pre.data, NULL, pairs.data, NEWEST, false);
    pc_buf_free(&pre);
    pc_buf_free(&pairs);
}

/* Merged partial trace rows (see the contract): a row's root span and first
 * span ordered as TRACE_AGG's FIRST orders spans, by (created, start, span
 * id); rows written before schema 7 (merge_keys 0) by their created_ns. */
#define ROOT_KEY "(if(merge_keys = 1, root_created_ns, created_ns), root_start_ns, root_span_id)"
#define FIRST_KEY "(created_ns, first_start_ns, first_span_id)"
/* The service of the first row's root, else of the first row. */
#define MERGED_SERVICE                                                                             \
    "if(max(has_root) = 1, argMinIf(service_name, " ROOT_KEY ", has_root = 1),"                    \
    " argMin(service_name, " FIRST_KEY "))"

/*
 * Appends "(project_id, trace_id) IN (<page>)": the keys of the traces of
 * |project_id| (every project when NULL) that are members (|member|: a
 * condition on (project_id, trace_id)), newest first, at most |limit|.
 * Search's page; lists read windows instead (pc_ch_sql_list_window).
 */
static void page(pc_buf *out, const char *db, const char *project_id, const char *member,
                 int limit)
{
    pc_buf_printf(out, "(project_id, trace_id) IN (SELECT project_id, trace_id FROM `%s`.traces"
                       " WHERE ",
                  db);
    if (project_id) {
        pc_buf_puts(out, "project_id = ");
        pc_ch_quote_cstr(out, project_id);
        pc_buf_puts(out, " AND ");
    }
    pc_buf_printf(out,
                  "%s GROUP BY project_id, trace_id"
                  " ORDER BY min(started_ns) DESC, trace_id DESC, project_id DESC LIMIT %d)",
                  member, limit > 0 ? limit : 0);
}

void pc_ch_project_and(pc_buf *out, const char *project_id)
{
    if (!project_id) return;
    pc_buf_puts(out, "project_id = ");
    pc_ch_quote_cstr(out, project_id);
    pc_buf_puts(out, " AND ");
}

/* Appends " AND <cond>" clauses shared by the two levels of a list window:
 * the (project_id, trace_id) order key |start| (an expression), the range,
 * the window's lower edge |lo| (unless INT64_MIN) and the cursor. */
static void range_and(pc_buf *out, const char *start, const pc_trace_filter *f, int64_t lo)
{
    if (lo != INT64_MIN) pc_buf_printf(out, " AND %s >= %lld", start, (long long)lo);
    if (f->start_ns) pc_buf_printf(out, " AND %s >= %lld", start, (long long)f->start_ns);
    if (f->end_ns) pc_buf_printf(out, " AND %s <= %lld", start, (long long)f->end_ns);
    if (f->after) { /* (start, trace, project) < the cursor's, spelled out for 18.16 */
        long long c = (long long)f->after->started_ns;
        pc_buf_printf(out, " AND (%s < %lld OR (%s = %lld AND (trace_id < ", start, c, start, c);
        pc_ch_quote_cstr(out, f->after->trace_id);
        pc_buf_puts(out, " OR (trace_id = ");
        pc_ch_quote_cstr(out, f->after->trace_id);
        pc_buf_puts(out, " AND project_id < ");
        pc_ch_quote_cstr(out, f->after->project_id);
        pc_buf_puts(out, "))))");
    }
}

bool pc_ch_filter_inexact(const pc_trace_filter *f)
{
    return f->min_cost > 0 || (f->attr_key && f->attr_value);
}

/* Appends " AND trace_id IN (SELECT trace_id FROM traces WHERE <col> <op>
 * <v> ...)": the traces having a row (at or after |lo|) whose |col| matches,
 * which the modern dialect's skip indexes find without the window's GROUP
 * BY. A trace of the window has all its rows at or after lo. By trace id
 * alone (see candidates()). */
static void prefilter(pc_buf *out, const char *db, const pc_trace_filter *f, int64_t lo,
                      const char *cond_fmt, const char *value)
{
    pc_buf_printf(out, " AND trace_id IN (SELECT trace_id FROM `%s`.traces WHERE ", db);
    pc_ch_project_and(out, f->project_id);
    if (lo != INT64_MIN) pc_buf_printf(out, "started_ns >= %lld AND ", (long long)lo);
    pc_buf v = PC_BUF_INIT;
    pc_ch_quote_cstr(&v, value);
    pc_buf_printf(out, cond_fmt, v.data);
    pc_buf_putc(out, ')');
    pc_buf_free(&v);
}

void pc_ch_sql_attr_match(pc_buf *out, pc_ch_dialect d, const char *key, const char *value)
{
    pc_buf k = PC_BUF_INIT, v = PC_BUF_INIT, json_key = PC_BUF_INIT;
    pc_ch_quote_cstr(&v, value);
    if (d == PC_CH_MODERN) {
        pc_ch_quote_cstr(&k, key);
        pc_buf_printf(out,
                      "(JSONHas(attributes, %s) AND (JSONExtractRaw(attributes, %s) = %s OR"
                      " (JSONType(attributes, %s) = 'String' AND"
                      " JSONExtractString(attributes, %s) = %s)))",
                      k.data, k.data, v.data, k.data, k.data, v.data);
    } else {
        /* 18.16's visitParam* functions take the key as it is written in the
         * JSON text (escaped as span.h's encoder escapes it) */
        pc_json_write_cstr(&json_key, key);
        pc_ch_quote(&k, json_key.data + 1, json_key.len - 2);
        /* a string value: visitParamExtractString unescapes it (visitParamExtractRaw
         * answers '' for a string holding an escape); '' is the string "" only */
        pc_buf_printf(out,
                      "(visitParamHas(attributes, %s) AND (visitParamExtractRaw(attributes, %s) = %s"
                      " OR ",
                      k.data, k.data, v.data);
        if (value && *value)
            pc_buf_printf(out, "visitParamExtractString(attributes, %s) = %s))", k.data, v.data);
        else
            pc_buf_printf(out, "visitParamExtractRaw(attributes, %s) = '\"\"'))", k.data);
    }
    pc_buf_free(&k);
    pc_buf_free(&v);
    pc_buf_free(&json_key);
}

/* True when |s| is a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number(const char *s)
{
    if (*s == '-') s++;
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9') s++;
    else
        return false;
    if (*s == '.') {
        if (!(*++s >= '0' && *s <= '9')) return false;
        while (*s >= '0' && *s <= '9') s++;
    }
    if (*s == 'e' || *s == 'E') {
        if (*++s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return false;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == '\0';
}

bool pc_ch_attr_bloom_serves(const pc_trace_filter *f)
{
    const char *v = f->attr_value;
    return f->attr_key && v && strlen(v) <= PC_ATTR_BLOOM_MAX_TEXT && *v != '"' && *v != '[' &&
           *v != '{' && strcmp(v, "null") != 0 && !json_number(v);
}

void pc_ch_sql_attr_may(pc_buf *out, const char *key, const char *value)
{
    int bits[PC_ATTR_BLOOM_K];
    pc_attr_bloom_bits(key, strlen(key), value, strlen(value), bits);
    uint64_t mask[PC_CH_BLOOM_WORDS] = {0};
    for (int i = 0; i < PC_ATTR_BLOOM_K; i++)
        mask[bits[i] / 64] |= (uint64_t)1 << (bits[i] % 64);
    pc_buf_printf(out, "(length(attr_bloom) != %d", PC_CH_BLOOM_WORDS);
    const char *sep = " OR (";
    for (int w = 0; w < PC_CH_BLOOM_WORDS; w++) {
        if (!mask[w]) continue;
        pc_buf_printf(out, "%sbitAnd(attr_bloom[%d], %llu) = %llu", sep, w + 1,
                      (unsigned long long)mask[w], (unsigned long long)mask[w]);
        sep = " AND ";
    }
    pc_buf_puts(out, "))");
}

/* Whether a trace's rows starting after a window's top can decide if it is a
 * candidate for |f|: the merged filters (service, status, span type,
 * session, user, model, cost, the rows' attribute filters) read every row of
 * the trace; the range, the cursor and the order read only its least start,
 * which later rows never lower. */
static bool later_rows_matter(const pc_trace_filter *f)
{
    return f->service_name || f->status || f->span_type || f->session_id || f->user_id ||
           f->model || f->min_cost > 0 || pc_ch_attr_bloom_serves(f);
}

/* Appends "position(span_types, ',<type>,') > 0": a traces row holds a span
 * of |type| (its types are listed as ",a,b,"). */
static void has_span_type(pc_buf *out, const char *type)
{
    pc_buf needle = PC_BUF_INIT;
    pc_buf_printf(&needle, ",%s,", type);
    pc_buf_puts(out, "position(span_types, ");
    pc_ch_quote(out, needle.data, needle.len);
    pc_buf_puts(out, ") > 0");
    pc_buf_free(&needle);
}

/* Appends " AND <cond>" clauses of a list window's HAVING on a trace's merged
 * rows (GROUP BY project_id, trace_id): its least start in the range (from
 * |lo|, unless INT64_MIN) and after the cursor, every exact filter of |f|
 * (not min_cost), and attr. by the rows' attribute filters when they serve. */
static void merged_and(pc_buf *out, const pc_trace_filter *f, int64_t lo)
{
    range_and(out, "min(started_ns)", f, lo);
    if (f->service_name) {
        pc_buf_puts(out, " AND " MERGED_SERVICE " = ");
        pc_ch_quote_cstr(out, f->service_name);
    }
    if (f->status) {
        pc_buf_puts(out, " AND if(max(status = 'error') = 1, 'error', 'success') = ");
        pc_ch_quote_cstr(out, f->status);
    }
    if (f->span_type) {
        pc_buf_puts(out, " AND max(");
        has_span_type(out, f->span_type);
        pc_buf_puts(out, ") = 1");
    }
    /* exact on the merged rows: the least non-empty session / user of a trace's
     * rows is its spans'; a model of any row is a model of its spans */
    if (f->session_id) {
        pc_buf_puts(out, " AND " LEAST("session_id") " = ");
        pc_ch_quote_cstr(out, f->session_id);
    }
    if (f->user_id) {
        pc_buf_puts(out, " AND " LEAST("user_id") " = ");
        pc_ch_quote_cstr(out, f->user_id);
    }
    if (f->model) {
        pc_buf_puts(out, " AND max(has(models, ");
        pc_ch_quote_cstr(out, f->model);
        pc_buf_puts(out, ")) = 1");
    }
    /* a superset: some row's attribute filter may hold the pair (its spans are
     * checked on the page) */
    if (pc_ch_attr_bloom_serves(f)) {
        pc_buf_puts(out, " AND max(");
        pc_ch_sql_attr_may(out, f->attr_key, f->attr_value);
        pc_buf_puts(out, ") = 1");
    }
}

/* Level 1 of a list window (see the contract): the candidate keys (|keys|:
 * "project_id, trace_id" or "trace_id"), newest first, |cand| beyond the page
 * (or, when |outer| is false, beyond the offset it skips). Its subqueries
 * select traces by id alone: 18.16 matches a set of (project, trace) tuples
 * about twice as slowly (a user's candidates at 10^7 spans: 44-71 -> 24-46
 * ms), and a trace id another project also has only brings that project's
 * trace along, grouped on its own and checked by the same HAVING. 18.16
 * cannot read this SELECT as a subquery of another that picks some of its
 * columns (the columns only its HAVING uses go missing): hence |keys|. */
static void candidates(pc_buf *cand, const char *keys, const char *db, const pc_trace_filter *f,
                       int64_t lo, int64_t top, int cand_extra, bool outer)
{
    pc_buf_printf(cand, "SELECT %s FROM `%s`.traces WHERE 1", keys, db);
    if (f->project_id) {
        pc_buf_puts(cand, " AND project_id = ");
        pc_ch_quote_cstr(cand, f->project_id);
    }
    if (lo != INT64_MIN)
        pc_buf_printf(cand, " AND started_ns >= %lld",
                      (long long)(lo > INT64_MIN + PC_CH_WINDOW_GUARD ? lo - PC_CH_WINDOW_GUARD
                                                                      : INT64_MIN));
    if (top != INT64_MAX && !later_rows_matter(f)) {
        /* an hour above too: a trace's rows up to then are merged whole */
        pc_buf_printf(cand, " AND started_ns <= %lld",
                      (long long)(top < INT64_MAX - PC_CH_WINDOW_GUARD ? top + PC_CH_WINDOW_GUARD
                                                                       : INT64_MAX));
    } else if (top != INT64_MAX) { /* the traces having a row in [lo, top] */
        pc_buf_printf(cand, " AND trace_id IN (SELECT trace_id FROM `%s`.traces WHERE ", db);
        pc_ch_project_and(cand, f->project_id);
        if (lo != INT64_MIN) pc_buf_printf(cand, "started_ns >= %lld AND ", (long long)lo);
        pc_buf_printf(cand, "started_ns <= %lld)", (long long)top);
    }
    if (f->session_id) prefilter(cand, db, f, lo, "session_id = %s", f->session_id);
    if (f->user_id) prefilter(cand, db, f, lo, "user_id = %s", f->user_id);
    if (f->model) prefilter(cand, db, f, lo, "has(models, %s)", f->model);
    pc_buf_puts(cand, " GROUP BY project_id, trace_id HAVING 1");
    merged_and(cand, f, lo);
    /* an upper bound: the rows' costs count a redelivered span twice (never
     * below the exact cost: their negatives count as 0) */
    /* (a hair below min_cost: 18.16 may parse a row's cost an ulp low) */
    if (f->min_cost > 0)
        pc_buf_printf(cand, " AND sum(cost_usd) >= %.17g", f->min_cost * (1 - 1e-9));
    int limit = f->limit > 0 ? f->limit : 1, offset = f->offset > 0 ? f->offset : 0;
    pc_buf_printf(cand,
                  " ORDER BY min(started_ns) DESC, trace_id DESC, project_id DESC LIMIT %d, %d",
                  outer ? 0 : offset, (outer ? offset : 0) + limit + cand_extra);
}

/* True when the offset of |f| is applied to the checked rows (exact). */
static bool outer_offset(const pc_trace_filter *f)
{
    return f->offset <= PC_CH_OUTER_OFFSET || pc_ch_filter_inexact(f);
}

void pc_ch_sql_list_candidates(pc_buf *out, const char *db, const pc_trace_filter *f, int64_t lo,
                               int64_t top, int cand_extra)
{
    candidates(out, "project_id, trace_id", db, f, lo, top, cand_extra, outer_offset(f));
    pc_buf_puts(out, " FORMAT TabSeparated");
}

void pc_ch_sql_list_rows(pc_buf *out, const char *db, const pc_trace_filter *f,
                         const char *const *trace_ids, size_t n, int max_rows)
{
    pc_buf_puts(out, "SELECT trace_id, project_id, service_name, root_span_id, root_span_name,"
                     " status, source, started_ns, completed_ns, created_ns, span_count,"
                     " input_tokens, output_tokens, session_id, user_id, cost_sum, merge_keys,"
                     " has_root, root_created_ns, root_start_ns, first_start_ns, first_span_id,"
                     " span_hashes, ");
    if (f->span_type) has_span_type(out, f->span_type);
    else pc_buf_putc(out, '1');
    pc_buf_puts(out, ", ");
    if (f->model) {
        pc_buf_puts(out, "has(models, ");
        pc_ch_quote_cstr(out, f->model);
        pc_buf_putc(out, ')');
    } else {
        pc_buf_putc(out, '1');
    }
    pc_buf_printf(out, " FROM `%s`.trace_rows PREWHERE ", db);
    pc_ch_sql_in(out, "trace_id", trace_ids, n);
    if (f->project_id) {
        pc_buf_puts(out, " WHERE project_id = ");
        pc_ch_quote_cstr(out, f->project_id);
    }
    pc_buf_printf(out, " LIMIT %d FORMAT TabSeparated", max_rows);
}

void pc_ch_sql_list_newest(pc_buf *out, const char *db, const char *project_id, int64_t floor,
                           int64_t below)
{
    pc_buf_printf(out, "SELECT max(started_ns), count() FROM `%s`.traces WHERE ", db);
    pc_ch_project_and(out, project_id);
    if (floor != INT64_MIN) pc_buf_printf(out, "started_ns >= %lld AND ", (long long)floor);
    pc_buf_printf(out, "started_ns < %lld FORMAT TabSeparated", (long long)below);
}

int pc_ch_list_rows_skip(const pc_trace_filter *f)
{
    return outer_offset(f) && f->offset > 0 ? f->offset : 0;
}

void pc_ch_sql_list_window(pc_buf *out, pc_ch_dialect d, const char *db,
                           const pc_trace_filter *f, int64_t lo, int64_t top, int cand_extra,
                           const char *const *projects, const char *const *trace_ids, size_t n)
{
    pc_buf pre = PC_BUF_INIT, where = PC_BUF_INIT, pairs = PC_BUF_INIT;
    /* a small offset is applied to the checked rows (exact), a large one to the
     * candidates (exact filters only: an inexact one must check every row it skips) */
    bool outer = outer_offset(f);
    int limit = f->limit > 0 ? f->limit : 1, offset = f->offset > 0 ? f->offset : 0;
    bool attr = f->attr_key && f->attr_value;

    /* Level 2, the page: exact summaries of the candidates, checked again.
     * Their spans are read by trace id (see pc_ch_sql_summaries_of), then
     * kept for the project: one project's by a WHERE, every project's by the
     * pairs after the GROUP BY. Selected by a subquery instead (too many to
     * name), every project's keep their pairs in the read: as a subquery in
     * the HAVING, 18.16 would analyse it in the outer query's scope
     * ("Unknown identifier"). */
    if (trace_ids) {
        pc_ch_sql_in(&pre, "trace_id", trace_ids, n);
        if (!f->project_id) {
            const char *const *cols[] = {projects, trace_ids};
            pc_ch_sql_tuples(&pairs, cols, 2, n);
        }
    } else if (f->project_id) {
        pc_buf_lit(&pre, "trace_id IN (");
        candidates(&pre, "trace_id", db, f, lo, top, cand_extra, outer);
        pc_buf_putc(&pre, ')');
    } else {
        pc_buf_lit(&where, "(project_id, trace_id) IN (");
        candidates(&where, "project_id, trace_id", db, f, lo, top, cand_extra, outer);
        pc_buf_putc(&where, ')');
    }
    if (f->project_id) {
        pc_buf_puts(&where, "project_id = ");
        pc_ch_quote_cstr(&where, f->project_id);
    }
    pc_buf_puts(out, "SELECT " TRACE_AGG " FROM ");
    /* the columns the checks read: models and attributes only for their filters */
    pc_buf cols = PC_BUF_INIT;
    pc_buf_puts(&cols, SUMMARY_COLS ", span_type");
    if (f->model) pc_buf_puts(&cols, ", llm_model, llm_request_model");
    if (attr) pc_buf_puts(&cols, ", attributes");
    dedup_spans(out, db, cols.data, pre.len ? pre.data : NULL, where.len ? where.data : NULL);
    pc_buf_free(&cols);
    pc_buf_puts(out, " GROUP BY project_id, trace_id HAVING 1");
    if (pairs.len) pc_buf_printf(out, " AND (project_id, trace_id) IN %s", pairs.data);
    range_and(out, "t_started", f, lo);
    if (f->service_name) {
        pc_buf_puts(out, " AND if(countIf(" ROOT ") > 0, argMinIf(service_name, " FIRST ", " ROOT
                         "), argMin(service_name, " FIRST ")) = ");
        pc_ch_quote_cstr(out, f->service_name);
    }
    if (f->status) {
        pc_buf_puts(out, " AND if(countIf(status = 'error') > 0, 'error', 'success') = ");
        pc_ch_quote_cstr(out, f->status);
    }
    if (f->span_type) {
        pc_buf_puts(out, " AND countIf(span_type = ");
        pc_ch_quote_cstr(out, f->span_type);
        pc_buf_puts(out, ") > 0");
    }
    if (f->session_id) {
        pc_buf_puts(out, " AND t_session = ");
        pc_ch_quote_cstr(out, f->session_id);
    }
    if (f->user_id) {
        pc_buf_puts(out, " AND t_user = ");
        pc_ch_quote_cstr(out, f->user_id);
    }
    if (f->model) {
        pc_buf_puts(out, " AND countIf(llm_model = ");
        pc_ch_quote_cstr(out, f->model);
        pc_buf_puts(out, " OR llm_request_model = ");
        pc_ch_quote_cstr(out, f->model);
        pc_buf_puts(out, ") > 0");
    }
    if (f->min_cost > 0) pc_buf_printf(out, " AND t_cost >= %.17g", f->min_cost);
    if (attr) {
        pc_buf_puts(out, " AND countIf(");
        pc_ch_sql_attr_match(out, d, f->attr_key, f->attr_value);
        pc_buf_puts(out, ") > 0");
    }
    pc_buf_printf(out, " ORDER BY " NEWEST " LIMIT %d, %d FORMAT TabSeparated",
                  outer ? offset : 0, limit);
    pc_buf_free(&pre);
    pc_buf_free(&where);
    pc_buf_free(&pairs);
}

/* Appends "position(lower(substring(<col>, 1, PREFIX)), <needle>) > 0"; see pc_ch_sql_search. */
static void search_col(pc_buf *out, const char *col, const pc_buf *needle)
{
    pc_buf_printf(out, "position(lower(substring(%s, 1, %d)), %s) > 0", col, PC_CH_SEARCH_PREFIX,
                  needle->data);
}

/*
 * Why this shape: a substring search of a pattern of P bytes costs up to P
 * byte comparisons per byte searched (ClickHouse's searchers are not linear
 * in the worst case: "aaa...ab" over "aaaa..." compares ~P bytes at every
 * offset), and the server evaluates the condition over a whole block at once,
 * checking max_execution_time only between blocks. So the cost of one
 * condition call is bounded here: each value is searched in its first
 * PC_CH_SEARCH_PREFIX bytes only, and pc_ch_search_block_rows() caps the
 * rows per block by P. lower() + position() means what
 * positionCaseInsensitive() means (ASCII case folding only) at about a ninth
 * of its worst-case cost on 18.16.
 */
/* |n| bytes of |s| with ASCII letters lowercased, appended to |out|. */
static void put_lower(pc_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pc_buf_putc(out, (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]));
}

void pc_ch_sql_search(pc_buf *out, const char *db, const char *project_id, const char *text,
                      int limit, int64_t before_ns)
{
    pc_buf member = PC_BUF_INIT, where = PC_BUF_INIT, needle = PC_BUF_INIT, json = PC_BUF_INIT;
    pc_buf low = PC_BUF_INIT;
    size_t n = text ? strlen(text) : 0;
    /* the name column holds the text itself; the JSON columns hold it as a JSON
     * string's contents ("a \"b\"" for a "b"), so each gets its own needle */
    put_lower(&low, text ? text : "", n);
    pc_ch_quote(&needle, low.data ? low.data : "", low.len);
    pc_buf_reset(&low);
    pc_json_write_str(&json, text ? text : "", n);
    put_lower(&low, json.data + 1, json.len - 2);
    pc_buf_reset(&json);
    pc_ch_quote(&json, low.data ? low.data : "", low.len);
    pc_buf_printf(&member, "((project_id, trace_id) IN (SELECT project_id, trace_id FROM `%s`.spans ",
                  db);
    /* a fixed-size column first: only the older spans' text is read */
    if (before_ns > 0) pc_buf_printf(&member, "PREWHERE created_ns < %lld ", (long long)before_ns);
    pc_buf_puts(&member, "WHERE ");
    pc_ch_project_and(&member, project_id);
    pc_buf_putc(&member, '(');
    search_col(&member, "name", &needle);
    static const char *const json_cols[] = {"attributes", "events", "input_messages",
                                            "output_messages"};
    for (size_t i = 0; i < sizeof(json_cols) / sizeof(json_cols[0]); i++) {
        pc_buf_puts(&member, " OR ");
        search_col(&member, json_cols[i], &json);
    }
    pc_buf_puts(&member, "))");
    /* ... or a trace with a matching attached event (clickhouse_events.h) */
    pc_ch_sql_events_member(&member, db, project_id, &json, PC_CH_SEARCH_PREFIX);
    pc_buf_putc(&member, ')');
    page(&where, db, project_id, member.data, limit);
    summaries(out, db, NULL, where.data, NULL, NEWEST, false);
    pc_buf_free(&needle);
    pc_buf_free(&json);
    pc_buf_free(&low);
    pc_buf_free(&member);
    pc_buf_free(&where);
}

/* Byte comparisons one block of a search may cost; about 0.7 s on a 2020s core. */
#define SEARCH_BLOCK_BUDGET (1LL << 29)

int pc_ch_search_block_rows(size_t pattern_len)
{
    /* per row: five columns (name, attributes, events, messages in and out) of at
     * most PC_CH_SEARCH_PREFIX bytes, each byte costing about (P + 16) comparisons
     * (the 16: reading, lower(), the scan itself) */
    long long per_row = 5LL * PC_CH_SEARCH_PREFIX * ((long long)pattern_len + 16);
    long long rows = SEARCH_BLOCK_BUDGET / per_row;
    return rows < 1 ? 1 : rows > 8192 ? 8192 : (int)rows;
}
