/*
 * clickhouse_stats.c - the `clickhouse` store's aggregates, from the spans
 * and from hour rollups (see clickhouse_stats.h for the tables).
 *
 * Figures from the spans (pc_ch_sql_stats_spans, and the build): the spans
 * of every trace that has a span starting in the ranges, deduplicated by a
 * GROUP BY on the span key (the first write's fields: argMin by created_ns),
 * found by trace_id (the sorting key's first column), so a small range reads
 * the granules of its traces only. Which traces: those stats_marks names in
 * the ranges' hours (a range of its sorting key, instead of a scan of every
 * span's start); each stored span has a mark of its (hour, trace). The
 * figures, as store.h defines them:
 * - span figures: each span starting in the ranges, in the bucket of its
 *   start; latency as histo.h bins of max(end - start, 0) of the ended spans
 *   (end_ns > 0), computed in SQL exactly as pc_histo_bin does (the exponent
 *   from log2, corrected by one shift where the float rounded);
 * - traces: per (trace, group) the smallest start over all the trace's
 *   spans (its first span of the group may lie before the ranges), counted
 *   in its bucket when it lies in the ranges.
 * Both in one pass over the spans (pc_ch_sql_stats_spans: per trace, group
 * and bucket first, then per trace and group, ARRAY JOIN back to buckets).
 *
 * Reads (pc_ch_stats_read): a query whose buckets are whole hours (interval
 * 0 or a multiple of 1 h) and whose group is none, project, model, service
 * or span type takes the window's whole hours that have a settled build from
 * stats_rollup (the newest completed build of each: one completed after the
 * plan was read began later, so it is as settled), and gathers the rest
 * from the spans in one read: the marked hours without a settled build, as
 * ranges (more than MAX_RANGES of them: the whole window from the spans).
 * A partial hour at an end of the window is read the cheaper way: from the
 * spans, or, when it covers more than half of a built hour, as that build
 * minus the rest of the hour read from the spans (pc_cells_subtract; every
 * figure adds up over disjoint ranges, so it also subtracts). Unmarked
 * hours hold no span and are skipped. The rows of the reads are added up
 * per (bucket, group) in a pc_cells (local_cells.h, bounded like the
 * embedded store's reads), whose percentiles come from the bins: the same
 * numbers either way. Should a build and the spans subtracted from it
 * disagree (a count below zero: spans written into the hour after all),
 * the window is read from the spans alone.
 *
 * A build (pc_ch_sql_rollup_build) gathers one hour, so one bucket: per
 * (trace, kind, group) its first start and the figures of its spans in the
 * hour, then per (kind, project, group).
 *
 * Consistency: the reads are up to four statements, not one snapshot; an
 * insert landing between them shows in the spans parts or not at all
 * (rollups are built only from settled hours).
 */
#include "clickhouse_stats.h"

#include "clickhouse_query.h"
#include "clickhouse_store.h"
#include "histo.h"
#include "local_cells.h"
#include "log.h"
#include "mem.h"
#include "span.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ranges one read sends; past it the window is read from the spans whole. */
#define MAX_RANGES 64
/* A build's version: its start (seconds) << 20 | 20 random bits. */
#define VERSION_SHIFT "1048576"

/* ----------------------------------------------------------------- DDL -- */

void pc_ch_sql_stats_table(pc_buf *out, pc_ch_dialect d, const char *db, bool marks)
{
    const char *ttl =
        d == PC_CH_MODERN ? " TTL toDateTime(hour * 3600) + INTERVAL 90 DAY" : "";
    if (marks)
        pc_buf_printf(out,
                      "CREATE TABLE IF NOT EXISTS `%s`.`stats_marks` (hour UInt32,"
                      " trace_id String, written_at DateTime DEFAULT now())"
                      " ENGINE = ReplacingMergeTree(written_at)"
                      " PARTITION BY toYYYYMM(toDateTime(hour * 3600)) ORDER BY (hour, trace_id)%s",
                      db, ttl);
    else
        pc_buf_printf(out,
                      "CREATE TABLE IF NOT EXISTS `%s`.`stats_rollup` (hour UInt32, version UInt64,"
                      " kind UInt8, project_id String, grp String, spans UInt64, traces UInt64,"
                      " errors UInt64, input_tokens Int64, output_tokens Int64, cost Float64,"
                      " priced UInt64, unpriced UInt64, bins Array(UInt16), counts Array(UInt64))"
                      " ENGINE = MergeTree() PARTITION BY toYYYYMM(toDateTime(hour * 3600))"
                      " ORDER BY (hour, kind, project_id, grp, version)%s",
                      db, ttl);
}

/* ------------------------------------------------------ figures (SQL) -- */

/* The column a stats group is of (NULL for none). */
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

/* "(col in r[0] OR col in r[1] ...)". */
static void in_ranges(pc_buf *out, const char *col, const pc_ch_range *r, size_t n)
{
    pc_buf_putc(out, '(');
    for (size_t i = 0; i < n; i++)
        pc_buf_printf(out, "%s(%s >= %lld AND %s < %lld)", i ? " OR " : "", col,
                      (long long)r[i].lo, col, (long long)r[i].hi);
    pc_buf_putc(out, ')');
}

uint32_t pc_ch_hour_of(int64_t ns)
{
    if (ns <= 0) return 0;
    int64_t h = ns / PC_CH_HOUR_NS;
    return h > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)h;
}

/* "(hour in the hours of r[0] OR ...)": the stats_marks rows of the traces that
 * may have a span starting in the ranges. */
static void in_hours(pc_buf *out, const pc_ch_range *r, size_t n)
{
    pc_buf_putc(out, '(');
    for (size_t i = 0; i < n; i++)
        pc_buf_printf(out, "%s(hour >= %lld AND hour <= %lld)", i ? " OR " : "",
                      (long long)pc_ch_hour_of(r[i].lo), (long long)pc_ch_hour_of(r[i].hi - 1));
    pc_buf_putc(out, ')');
}

/* The histo.h bin of duration s_d (Int64 >= 0), as UInt16. */
#define BIN_EXPR                                                                         \
    "if(s_d < 128, toUInt16(s_d),"                                                       \
    " toUInt16((s_e - 6) * 64 + bitShiftRight(s_d, greatest(s_e - 6, 0))))"

/*
 * The deduplicated spans of every trace having a span in the ranges, one
 * group per row: |group| is the group's column (API read: grp; NULL: ''),
 * or, for a build (|build|), every kind: one row per (span, kind) with kind
 * and grp; |extra|, when not NULL, is one more column's "expression AS
 * name". Columns: project_id, trace_id, [kind,] grp, s_start, s_end,
 * s_status, s_type, s_model, s_in, s_out, s_cost, s_d (duration, >= 0),
 * s_e0 and s_e (its exponent, for BIN_EXPR)[, extra]. The traces: |ids|
 * ("('a', 'b')", quoted) when not NULL, else those stats_marks names in the
 * ranges' hours. Named one by one:
 * 18.16 runs the IN subquery of a `SELECT *` over this twice.
 */
static void grouped_spans(pc_buf *out, const char *db, const pc_ch_range *r, size_t n,
                          const pc_buf *project, bool build, const char *group,
                          const char *extra, const char *ids)
{
    pc_buf_puts(out, "(SELECT project_id, trace_id, s_start, s_end, s_status, s_type, s_model,"
                     " s_in, s_out, s_cost, ");
    if (extra) pc_buf_printf(out, "%s, ", extra);
    if (build)
        pc_buf_puts(out, "tupleElement(kg, 1) AS kind, tupleElement(kg, 2) AS grp,");
    else
        pc_buf_puts(out, "s_group AS grp,");
    pc_buf_puts(out, " greatest(s_end - s_start, 0) AS s_d,"
                     " toInt32(floor(log2(toFloat64(greatest(s_d, 1))))) AS s_e0,"
                     " if(bitShiftRight(s_d, s_e0) = 0, s_e0 - 1, s_e0) AS s_e FROM ("
                     "SELECT project_id, trace_id, span_id,"
                     " argMin(start_ns, created_ns) AS s_start,"
                     " argMin(end_ns, created_ns) AS s_end, argMin(status, created_ns) AS s_status,"
                     " argMin(span_type, created_ns) AS s_type,"
                     " argMin(llm_model, created_ns) AS s_model,"
                     " argMin(input_tokens, created_ns) AS s_in,"
                     " argMin(output_tokens, created_ns) AS s_out,"
                     " argMin(ifNull(cost_usd, nan), created_ns) AS s_cost");
    if (build)
        pc_buf_puts(out, ", argMin(service_name, created_ns) AS s_service");
    else if (group)
        pc_buf_printf(out, ", argMin(%s, created_ns) AS s_group", group);
    else
        pc_buf_puts(out, ", '' AS s_group");
    if (ids) {
        pc_buf_printf(out, " FROM `%s`.spans WHERE trace_id IN %s", db, ids);
    } else {
        pc_buf_printf(out,
                      " FROM `%s`.spans WHERE trace_id IN (SELECT trace_id FROM `%s`.stats_marks"
                      " WHERE ",
                      db, db);
        in_hours(out, r, n);
        pc_buf_putc(out, ')');
    }
    pc_buf_append(out, project->data, project->len);
    pc_buf_puts(out, " GROUP BY project_id, trace_id, span_id)");
    if (build)
        pc_buf_puts(out, " ARRAY JOIN [(toUInt8(0), ''), (toUInt8(1), s_model),"
                         " (toUInt8(2), s_service), (toUInt8(3), s_type)] AS kg");
    pc_buf_putc(out, ')');
}

/* The bucket of time column |col| in |q| into |out| (96 bytes). */
static void bucket_expr(char *out, const pc_stats_query *q, const char *col)
{
    if (q->interval_ns > 0)
        snprintf(out, 96, "%s - %s %% %lld", col, col, (long long)q->interval_ns);
    else
        snprintf(out, 96, "toInt64(%lld)", (long long)q->start_ns);
}

static void project_cond(pc_buf *out, const char *project)
{
    if (!project) return;
    pc_buf_puts(out, " AND project_id = ");
    pc_ch_quote_cstr(out, project);
}

void pc_ch_sql_stats_traces(pc_buf *out, const char *db, const char *project,
                            const pc_ch_range *r, size_t n, int limit)
{
    pc_buf_printf(out,
                  "SELECT DISTINCT trace_id FROM `%s`.spans WHERE trace_id IN (SELECT trace_id FROM"
                  " `%s`.stats_marks WHERE ",
                  db, db);
    in_hours(out, r, n);
    pc_buf_puts(out, ") AND ");
    in_ranges(out, "start_ns", r, n);
    project_cond(out, project);
    pc_buf_printf(out, " LIMIT %d FORMAT TabSeparated", limit);
}

void pc_ch_sql_stats_spans(pc_buf *out, const char *db, const pc_stats_query *q,
                           const pc_ch_range *r, size_t n, const char *ids)
{
    pc_buf project = PC_BUF_INIT, g = PC_BUF_INIT, h = PC_BUF_INIT;
    project_cond(&project, q->project_id);
    in_ranges(&h, "s_start", r, n);
    pc_buf_puts(&h, " AS h");
    grouped_spans(&g, db, r, n, &project, false, group_col(q->group_by), h.data, ids);
    char sb[96], fb[96];
    bucket_expr(sb, q, "s_start");
    bucket_expr(fb, q, "f");
    /* Level 1: per (trace, group, bucket of the start) the smallest start m
     * and the figures of the spans in the ranges (h); level 2: per (trace,
     * group) its first start f and those rows as arrays; ARRAY JOIN back to
     * one row per bucket, counting the trace where its f lies (when in the
     * ranges); level 3: per (bucket, group), those having a span. */
    pc_buf_puts(out,
                "SELECT bucket, grp, sum(e_spans), sum(e_first), sum(e_errors),"
                " " PC_CH_TOKEN_SUM("e_in") ", " PC_CH_TOKEN_SUM("e_out") ", sum(e_cost),"
                " sum(e_priced), sum(e_unpriced),"
                " tupleElement(sumMap(e_bins, arrayMap(x -> toUInt64(1), e_bins)), 1),"
                " tupleElement(sumMap(e_bins, arrayMap(x -> toUInt64(1), e_bins)), 2) FROM ("
                "SELECT grp, e_bucket AS bucket, e_spans, e_bucket = fb AND f_in AS e_first,"
                " e_errors, e_in, e_out, e_cost, e_priced, e_unpriced, e_bins FROM (");
    pc_buf_printf(out,
                  "SELECT project_id, trace_id, grp, min(m) AS f, %s AS fb, ", fb);
    in_ranges(out, "f", r, n);
    pc_buf_printf(out,
                  " AS f_in, groupArray(sb) AS a_bucket, groupArray(c_spans) AS a_spans,"
                  " groupArray(c_errors) AS a_errors, groupArray(c_in) AS a_in,"
                  " groupArray(c_out) AS a_out, groupArray(c_cost) AS a_cost,"
                  " groupArray(c_priced) AS a_priced, groupArray(c_unpriced) AS a_unpriced,"
                  " groupArray(c_bins) AS a_bins FROM ("
                  "SELECT project_id, trace_id, grp, %s AS sb, min(s_start) AS m,"
                  " countIf(h) AS c_spans, countIf(h AND s_status = 'error') AS c_errors,"
                  " " PC_CH_TOKEN_SUM("if(h, s_in, 0)") " AS c_in,"
                  " " PC_CH_TOKEN_SUM("if(h, s_out, 0)") " AS c_out,"
                  " sumIf(s_cost, h AND NOT isNaN(s_cost)) AS c_cost,"
                  " countIf(h AND NOT isNaN(s_cost)) AS c_priced,"
                  " countIf(h AND s_type IN ('llm', 'embedding') AND s_model != ''"
                  " AND isNaN(s_cost)) AS c_unpriced,"
                  " groupArrayIf(" BIN_EXPR ", h AND s_end > 0) AS c_bins FROM ",
                  sb);
    pc_buf_append(out, g.data, g.len);
    pc_buf_printf(out,
                  " GROUP BY project_id, trace_id, grp, sb) GROUP BY project_id, trace_id, grp)"
                  " ARRAY JOIN a_bucket AS e_bucket, a_spans AS e_spans, a_errors AS e_errors,"
                  " a_in AS e_in, a_out AS e_out, a_cost AS e_cost, a_priced AS e_priced,"
                  " a_unpriced AS e_unpriced, a_bins AS e_bins)"
                  " GROUP BY bucket, grp HAVING sum(e_spans) > 0 ORDER BY bucket, grp LIMIT %d"
                  " FORMAT TabSeparated",
                  q->max_rows > 0 ? q->max_rows : 1);
    pc_buf_free(&project);
    pc_buf_free(&g);
    pc_buf_free(&h);
}

void pc_ch_sql_rollup_build(pc_buf *out, const char *db, int64_t hour, uint64_t version)
{
    long long lo = hour * PC_CH_HOUR_NS, hi = lo + PC_CH_HOUR_NS;
    pc_ch_range r = {lo, hi};
    pc_buf project = PC_BUF_INIT, g = PC_BUF_INIT;
    char h[80];
    snprintf(h, sizeof(h), "s_start >= %lld AND s_start < %lld AS h", lo, hi);
    grouped_spans(&g, db, &r, 1, &project, true, NULL, h, NULL);
    /* One hour is one bucket: per (trace, kind, group) its first start f and
     * the figures of its spans in the hour (h); then per (kind, project,
     * group) their sums, the traces whose f is in the hour, and only the
     * groups having a span there. */
    pc_buf_printf(out,
                  "INSERT INTO `%s`.stats_rollup (hour, version, kind, project_id, grp, spans,"
                  " traces, errors, input_tokens, output_tokens, cost, priced, unpriced, bins,"
                  " counts) SELECT toUInt32(%lld), toUInt64(%llu), kind, project_id, grp,"
                  " sum(t_spans), countIf(f >= %lld AND f < %lld), sum(t_errors),"
                  " " PC_CH_TOKEN_SUM("t_in") ", " PC_CH_TOKEN_SUM("t_out") ", sum(t_cost),"
                  " sum(t_priced), sum(t_unpriced), tupleElement(sumMap(t_bins, t_counts), 1),"
                  " tupleElement(sumMap(t_bins, t_counts), 2) FROM ("
                  "SELECT project_id, trace_id, kind, grp, min(s_start) AS f,"
                  " countIf(h) AS t_spans, countIf(h AND s_status = 'error') AS t_errors,"
                  " " PC_CH_TOKEN_SUM("if(h, s_in, 0)") " AS t_in,"
                  " " PC_CH_TOKEN_SUM("if(h, s_out, 0)") " AS t_out,"
                  " sumIf(s_cost, h AND NOT isNaN(s_cost)) AS t_cost,"
                  " countIf(h AND NOT isNaN(s_cost)) AS t_priced,"
                  " countIf(h AND s_type IN ('llm', 'embedding') AND s_model != ''"
                  " AND isNaN(s_cost)) AS t_unpriced,"
                  " sumMap(if(h AND s_end > 0, [" BIN_EXPR "], emptyArrayUInt16()),"
                  " if(h AND s_end > 0, [toUInt64(1)], emptyArrayUInt64())) AS t_m,"
                  " tupleElement(t_m, 1) AS t_bins, tupleElement(t_m, 2) AS t_counts FROM ",
                  db, (long long)hour, (unsigned long long)version, lo, hi);
    pc_buf_append(out, g.data, g.len);
    pc_buf_puts(out, " GROUP BY project_id, trace_id, kind, grp)"
                     " GROUP BY kind, project_id, grp HAVING sum(t_spans) > 0");
    pc_buf_free(&project);
    pc_buf_free(&g);
}

void pc_ch_sql_rollup_done(pc_buf *out, const char *db, int64_t hour, uint64_t version)
{
    pc_buf_printf(out,
                  "INSERT INTO `%s`.stats_rollup (hour, version, kind) VALUES (%lld, %llu, "
                  PC_CH_ROLLUP_DONE ")",
                  db, (long long)hour, (unsigned long long)version);
}

/* "(SELECT hour, max(written_at) AS w ...) ANY LEFT JOIN (... max(version) AS v ...)"
 * over the hours in [h0, h1) (h1 <= 0: every hour). */
static void marks_and_builds(pc_buf *out, const char *db, int64_t h0, int64_t h1)
{
    char range[96] = "";
    if (h1 > 0)
        snprintf(range, sizeof(range), " AND hour >= %lld AND hour < %lld", (long long)h0,
                 (long long)h1);
    pc_buf_printf(out,
                  "(SELECT hour, max(written_at) AS w FROM `%s`.stats_marks WHERE 1%s GROUP BY"
                  " hour) AS m ANY LEFT JOIN (SELECT hour, max(version) AS v FROM"
                  " `%s`.stats_rollup WHERE kind = " PC_CH_ROLLUP_DONE "%s GROUP BY hour) AS r"
                  " USING hour",
                  db, range, db, range);
}

/* Whether the hour's newest build is settled: it began |settle| or more after
 * the hour's latest mark (v is 0 when there is none). */
#define SETTLED "intDiv(v, " VERSION_SHIFT ") >= toUInt64(w) + %ld"

void pc_ch_sql_stats_hours(pc_buf *out, const char *db, int64_t h0, int64_t h1, long settle_s)
{
    pc_buf_printf(out, "SELECT hour, if(" SETTLED ", v, toUInt64(0)) FROM ", settle_s);
    marks_and_builds(out, db, h0, h1);
    pc_buf_puts(out, " ORDER BY hour FORMAT TabSeparated");
}

void pc_ch_sql_rollup_due(pc_buf *out, const char *db, long settle_s, int limit)
{
    pc_buf_puts(out, "SELECT hour FROM ");
    marks_and_builds(out, db, 0, 0);
    pc_buf_printf(out,
                  " WHERE toUInt64(w) + %ld <= toUInt64(now()) AND NOT (" SETTLED ")"
                  " ORDER BY hour DESC LIMIT %d FORMAT TabSeparated",
                  settle_s, settle_s, limit);
}

void pc_ch_sql_stats_rollups(pc_buf *out, const char *db, int kind, const char *project,
                             const int64_t *hours, size_t n)
{
    pc_buf_printf(out,
                  "SELECT hour, project_id, grp, spans, traces, errors, input_tokens,"
                  " output_tokens, cost, priced, unpriced, bins, counts FROM `%s`.stats_rollup"
                  " WHERE kind = %d",
                  db, kind);
    project_cond(out, project);
    pc_buf_printf(out, " AND (hour, version) IN (SELECT hour, max(version) FROM `%s`.stats_rollup"
                       " WHERE kind = " PC_CH_ROLLUP_DONE " AND hour IN (",
                  db);
    for (size_t i = 0; i < n; i++)
        pc_buf_printf(out, "%s%lld", i ? ", " : "", (long long)hours[i]);
    pc_buf_puts(out, ") GROUP BY hour) FORMAT TabSeparated");
}

/* ------------------------------------------------------------- reading -- */

/* Sorted, disjoint ranges, the touching ones merged. */
typedef struct ranges {
    pc_ch_range *v;
    size_t n, cap;
} ranges;

static void add_range(ranges *r, int64_t lo, int64_t hi)
{
    if (lo >= hi) return;
    if (r->n && r->v[r->n - 1].hi == lo) {
        r->v[r->n - 1].hi = hi;
        return;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->v = pc_xrealloc(r->v, r->cap * sizeof(*r->v));
    }
    r->v[r->n++] = (pc_ch_range){lo, hi};
}

/* What one read gathers into, and its plan. */
typedef struct reading {
    const pc_stats_query *q;
    pc_cells acc;
    pc_cells neg;   /* the parts of built hours outside the window (pc_cells_subtract) */
    pc_cells *into; /* where span_row adds */
    bool corrupt;   /* a row's figures did not parse */
    ranges spans;   /* read from the spans, into acc */
    ranges minus;   /* read from the spans, into neg */
    int64_t *hours; /* read from their builds, into acc */
    size_t nhours, cap_hours;
} reading;

/* A ClickHouse array of unsigned integers "[1,2,3]" into |v| (up to |max|);
 * the count, or -1 when it does not parse. */
static long parse_array(const char *s, uint64_t *v, size_t max)
{
    if (*s++ != '[') return -1;
    size_t n = 0;
    while (*s && *s != ']') {
        char *end;
        unsigned long long x = strtoull(s, &end, 10);
        if (end == s || n == max) return -1;
        v[n++] = x;
        s = *end == ',' ? end + 1 : end;
    }
    return *s == ']' ? (long)n : -1;
}

/* Adds the figures at |c| (spans, traces, errors, in, out, cost, priced,
 * unpriced, bins, counts) to |cell|; false when they do not parse. */
static bool add_figures(pc_cell *cell, char **c)
{
    cell->row.spans += strtoll(c[0], NULL, 10);
    cell->row.traces += strtoll(c[1], NULL, 10);
    cell->row.errors += strtoll(c[2], NULL, 10);
    cell->row.input_tokens = pc_tokens_add(cell->row.input_tokens, strtoll(c[3], NULL, 10));
    cell->row.output_tokens = pc_tokens_add(cell->row.output_tokens, strtoll(c[4], NULL, 10));
    int64_t priced = strtoll(c[6], NULL, 10);
    if (priced > 0) {
        cell->row.cost_usd += strtod(c[5], NULL);
        cell->priced += priced;
        cell->has_cost = true;
    }
    cell->row.unpriced += strtoll(c[7], NULL, 10);
    static __thread uint64_t bins[PC_HISTO_BINS], counts[PC_HISTO_BINS];
    long nb = parse_array(c[8], bins, PC_HISTO_BINS), nc = parse_array(c[9], counts, PC_HISTO_BINS);
    if (nb < 0 || nb != nc) return false;
    for (long i = 0; i < nb; i++) {
        if (bins[i] >= PC_HISTO_BINS) return false;
        uint64_t left = counts[i];
        while (left > 0) { /* a cell's bin entries count up to 2^32 - 1 each */
            uint32_t k = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
            pc_cell_bin(cell, (int)bins[i], k);
            left -= k;
        }
    }
    return true;
}

static int64_t bucket_of(const pc_stats_query *q, int64_t ns)
{
    return q->interval_ns > 0 ? ns - ns % q->interval_ns : q->start_ns;
}

static int span_row(char **c, void *cb, void *ud)
{
    (void)cb;
    reading *rd = ud;
    pc_cell *cell = pc_cells_get(rd->into, strtoll(c[0], NULL, 10), c[1], strlen(c[1]));
    if (cell && !add_figures(cell, c + 2)) rd->corrupt = true;
    return rd->corrupt;
}

static int rollup_row(char **c, void *cb, void *ud)
{
    (void)cb;
    reading *rd = ud;
    const char *g = rd->q->group_by == PC_GROUP_NONE ? ""
                    : rd->q->group_by == PC_GROUP_PROJECT ? c[1]
                                                          : c[2];
    int64_t bucket = bucket_of(rd->q, strtoll(c[0], NULL, 10) * PC_CH_HOUR_NS);
    pc_cell *cell = pc_cells_get(&rd->acc, bucket, g, strlen(g));
    if (cell && !add_figures(cell, c + 3)) rd->corrupt = true;
    return rd->corrupt;
}

static void add_hour(reading *rd, int64_t h)
{
    if (rd->nhours == rd->cap_hours) {
        rd->cap_hours = rd->cap_hours ? 2 * rd->cap_hours : 64;
        rd->hours = pc_xrealloc(rd->hours, rd->cap_hours * sizeof(*rd->hours));
    }
    rd->hours[rd->nhours++] = h;
}

/*
 * One hour of the plan (hour_row): a whole hour of the window from its build
 * if settled, else from the spans; a partial hour at an end from its build
 * minus the rest of the hour when that rest is the smaller part (a window
 * starting a second past the hour reads one second of spans, not 3,599),
 * else from the spans.
 */
static int hour_row(char **c, void *cb, void *ud)
{
    (void)cb;
    reading *rd = ud;
    int64_t h = strtoll(c[0], NULL, 10), lo = h * PC_CH_HOUR_NS, hi = lo + PC_CH_HOUR_NS;
    bool built = strtoull(c[1], NULL, 10) != 0;
    int64_t in_lo = lo > rd->q->start_ns ? lo : rd->q->start_ns;
    int64_t in_hi = hi < rd->q->end_ns ? hi : rd->q->end_ns;
    if (!built || (in_hi - in_lo <= PC_CH_HOUR_NS / 2 && (in_lo > lo || in_hi < hi))) {
        add_range(&rd->spans, in_lo, in_hi);
        return 0;
    }
    add_hour(rd, h);
    add_range(&rd->minus, lo, in_lo);
    add_range(&rd->minus, in_hi, hi);
    return 0;
}

/* Plans |rd|: the ranges read from the spans (into acc, or into neg) and the
 * hours read from their builds. 0 / < 0. */
static int plan(pc_ch_store *S, reading *rd)
{
    const pc_stats_query *q = rd->q;
    if (pc_stats_kind(q->group_by) < 0 || q->interval_ns % PC_CH_HOUR_NS != 0 ||
        S->rollup_settle_s < 0) {
        add_range(&rd->spans, q->start_ns, q->end_ns);
        return 0;
    }
    /* every hour the window touches; an hour without marks holds no span */
    int64_t h0 = q->start_ns / PC_CH_HOUR_NS;
    int64_t h1 = (q->end_ns - 1) / PC_CH_HOUR_NS + 1;
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_stats_hours(&sql, S->database, h0, h1, S->rollup_settle_s);
    int rc = pc_ch_store_each_row(S, &sql, "stats", "priority=2", PC_CH_STATS_HOUR_COLS,
                                  hour_row, NULL, rd);
    if (rc < 0) return rc;
    if (rd->spans.n > MAX_RANGES || rd->minus.n > MAX_RANGES) { /* too many to name */
        rd->spans.n = rd->minus.n = rd->nhours = 0;
        add_range(&rd->spans, q->start_ns, q->end_ns);
    }
    return 0;
}

/* The traces a read of less than an hour names instead of its hours' marks,
 * at most, in a statement of at most PC_CH_NAMED_SQL_BYTES; past either the
 * marks' subquery is used. */
#define NARROW_MAX 4096

/* Trace ids, quoted, as "(a, b" (the caller closes it). */
typedef struct narrowed {
    pc_buf ids;
    int n;
} narrowed;

static int quote_ids(char **c, void *cb, void *ud)
{
    (void)cb;
    narrowed *t = ud;
    pc_buf_puts(&t->ids, t->n++ ? ", " : "(");
    pc_ch_quote_cstr(&t->ids, c[0]);
    return 0;
}

/*
 * Reads |r| from the spans into |into|. Ranges of less than an hour in all
 * first name their traces (pc_ch_sql_stats_traces: two columns of the
 * granules of their hours' traces), so the figures read every column of
 * those traces only, not of every trace of the hours: a second of an hour
 * costs its own traces. 0 / < 0.
 */
static int read_spans(pc_ch_store *S, reading *rd, const ranges *r, pc_cells *into)
{
    if (!r->n || rd->corrupt) return 0;
    int64_t total = 0;
    for (size_t i = 0; i < r->n; i++)
        total += r->v[i].hi - r->v[i].lo;
    pc_buf sql = PC_BUF_INIT;
    narrowed t = {PC_BUF_INIT, 0};
    if (total < PC_CH_HOUR_NS) {
        pc_ch_sql_stats_traces(&sql, S->database, rd->q->project_id, r->v, r->n, NARROW_MAX + 1);
        int rc = pc_ch_store_each_row(S, &sql, "stats", "priority=2", 1, quote_ids, NULL, &t);
        if (rc < 0 || t.n == 0) { /* failed, or no span starts there */
            pc_buf_free(&t.ids);
            return rc;
        }
        pc_buf_putc(&t.ids, ')');
        if (t.n > NARROW_MAX) pc_buf_free(&t.ids);
    }
    pc_ch_sql_stats_spans(&sql, S->database, rd->q, r->v, r->n, t.ids.len ? t.ids.data : NULL);
    if (t.ids.len && sql.len > PC_CH_NAMED_SQL_BYTES) { /* long ids: the subquery instead */
        pc_buf_reset(&sql);
        pc_ch_sql_stats_spans(&sql, S->database, rd->q, r->v, r->n, NULL);
    }
    pc_buf_free(&t.ids);
    rd->into = into;
    return pc_ch_store_each_row(S, &sql, "stats", "priority=2", PC_CH_STATS_SPAN_COLS, span_row,
                                NULL, rd);
}

/* Gathers the plan of |rd| into rd->acc. 0, 1 when the builds and what is
 * subtracted from them disagree (read the window from the spans), < 0. */
static int gather(pc_ch_store *S, reading *rd)
{
    int rc = read_spans(S, rd, &rd->spans, &rd->acc);
    if (rc == 0 && rd->nhours > 0 && !rd->corrupt) {
        pc_buf sql = PC_BUF_INIT;
        pc_ch_sql_stats_rollups(&sql, S->database, pc_stats_kind(rd->q->group_by),
                                rd->q->project_id, rd->hours, rd->nhours);
        rc = pc_ch_store_each_row(S, &sql, "stats", "priority=2", PC_CH_STATS_ROLLUP_COLS,
                                  rollup_row, NULL, rd);
    }
    if (rc == 0) rc = read_spans(S, rd, &rd->minus, &rd->neg);
    if (rc == 0 && rd->corrupt) {
        pc_log(PC_LOG_ERROR, S->id, "stats: a row's figures do not parse");
        rc = -1;
    }
    if (rc == 0 && rd->minus.n && !pc_cells_subtract(&rd->acc, &rd->neg)) rc = 1;
    return rc;
}

int pc_ch_stats_read(pc_ch_store *S, const pc_stats_query *q, pc_stats_cb cb, void *ud)
{
    size_t limit = q->max_rows > 0 ? (size_t)q->max_rows : 1;
    reading rd = {.q = q, .acc = {.limit = limit}, .neg = {.limit = limit}};
    int rc = plan(S, &rd);
    if (rc == 0) rc = gather(S, &rd);
    if (rc == 1) { /* a build and the spans disagree (written since?): the spans alone */
        pc_log(PC_LOG_INFO, S->id, "stats: an hour's build and its spans differ; read from the"
                                   " spans");
        pc_cells_free(&rd.acc);
        pc_cells_free(&rd.neg);
        rd.acc = (pc_cells){.limit = limit};
        rd.neg = (pc_cells){.limit = limit};
        rd.spans.n = rd.minus.n = rd.nhours = 0;
        add_range(&rd.spans, q->start_ns, q->end_ns);
        rc = gather(S, &rd);
    }
    if (rc == 0) pc_cells_emit(&rd.acc, q->max_rows, cb, ud);
    pc_cells_free(&rd.acc);
    pc_cells_free(&rd.neg);
    free(rd.spans.v);
    free(rd.minus.v);
    free(rd.hours);
    return rc;
}
