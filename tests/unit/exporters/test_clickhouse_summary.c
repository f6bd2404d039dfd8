/*
 * test_clickhouse_summary.c - a trace's raw span rows made into its distinct
 * spans and summary in the collector (clickhouse_summary.c), no server: copies
 * of a span (first write wins), two projects, the root and "first" orders,
 * costs added in "first" order, token sums that saturate, the least
 * non-empty session and user, escaped text, and rows of the wrong width;
 * and a list page's traces rows merged per trace (pc_ch_traces_merge): the
 * merge's rules, exactness (merge keys, a span twice, a candidate without
 * rows), the window's conditions, order and skip. test_clickhouse.py and
 * test_clickhouse_reads.py check the same answers against the embedded store
 * on both dialects.
 */
#include "check.h"

#include "exporters/clickhouse_query.h"
#include "exporters/clickhouse_summary.h"
#include "exporters/clickhouse_tsv.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct span {
    const char *span_id, *parent, *project, *name, *service, *status, *source;
    long long start, end, created, in, out;
    const char *cost, *session, *user;
} span;

/* Appends span |s| of trace "t1" as a TabSeparated row of pc_ch_read_span's
 * columns, and the parts column "p1" when |part|. */
static void row(pc_buf *b, const span *s, bool part)
{
    pc_buf_printf(b,
                  "t1\t%s\t%s\t%s\t%s\t1\tllm\t%s\t%s\t\t%s\t\t%lld\t%lld\t%lld\topenai\tgpt\t%lld"
                  "\t%lld\t{}\t[]\t[]\t{}\t{}\tgpt-req\t0\t0\t0\t%s\t\\N\t\\N\t\t%s\t%s\t\t",
                  s->span_id, s->parent, s->project, s->name, s->service, s->status, s->source,
                  s->start, s->end, s->created, s->in, s->out, s->cost, s->session, s->user);
    pc_buf_puts(b, part ? "\tp1\n" : "\n");
}

static void test_copies_projects_and_summary(void)
{
    const span spans[] = {
        /* project b: a root written twice, the later copy renamed and failed */
        {"r", "", "b", "late", "svc-late", "error", "otlp", 5, 9, 20, 1, 1, "\\N", "", ""},
        {"r", "", "b", "root", "svc-b", "success", "prela", 5, 9, 10, 1, 1, "\\N", "", ""},
        {"c", "r", "b", "child", "svc-c", "success", "prela", 6, 0, 11, 2, 3, "0.5", "s2", ""},
        /* project a: no root; "first" is the least (created, start, span id) */
        {"y", "x", "a", "y", "svc-y", "success", "otlp", 3, 4, 7, 0, 0, "\\N", "", "u9"},
        {"x2", "x", "a", "x2", "svc-x2", "error", "prela", 1, 2, 7, -5, 0, "\\N", "s1", "u1"},
        {"x1", "x", "a", "x1", "svc-x1", "success", "otlp", 2, 12, 7, 0, 0, "\\N", "", ""},
    };
    pc_buf text = PC_BUF_INIT;
    for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++)
        row(&text, &spans[i], false);
    pc_ch_spans s;
    CHECK_EQ_INT(pc_ch_spans_read(&s, &text, PC_CH_SPAN_COLS), 0);
    CHECK(text.data == NULL); /* taken over */
    CHECK_EQ_INT((long long)s.n, 5);
    /* page order: project, start, span id */
    const char *order[] = {"x2", "x1", "y", "r", "c"};
    for (size_t i = 0; i < 5 && i < s.n; i++)
        CHECK_EQ_STR(s.rows[i].span_id, order[i]);
    size_t first, n = pc_ch_spans_of(&s, "b", &first);
    CHECK(first == 3 && n == 2);
    CHECK_EQ_STR(s.rows[3].name, "root"); /* the first write of r */
    CHECK_EQ_INT((long long)pc_ch_spans_of(&s, "c", &first), 0);
    CHECK_EQ_INT((long long)pc_ch_spans_of(&s, "", &first), 0);

    pc_trace_row t;
    pc_ch_spans_summary(s.rows + 3, 2, &t);
    CHECK_EQ_STR(t.project_id, "b");
    CHECK_EQ_STR(t.trace_id, "t1");
    CHECK_EQ_STR(t.service_name, "svc-b");
    CHECK_EQ_STR(t.root_span_id, "r");
    CHECK_EQ_STR(t.root_span_name, "root");
    CHECK_EQ_STR(t.status, "success"); /* the failed copy was not the first write */
    CHECK_EQ_STR(t.source, "prela");
    CHECK(t.started_ns == 5 && t.completed_ns == 9 && t.created_ns == 10);
    CHECK(t.span_count == 2 && t.input_tokens == 3 && t.output_tokens == 4);
    CHECK_EQ_STR(t.session_id, "s2");
    CHECK_EQ_STR(t.user_id, "");
    CHECK(t.cost_usd == 0.5);

    pc_ch_spans_summary(s.rows, 3, &t);
    CHECK_EQ_STR(t.project_id, "a");
    CHECK_EQ_STR(t.service_name, "svc-x2"); /* no root: the first span's (equal created, */
                                            /* the least start) */
    CHECK_EQ_STR(t.root_span_id, "");
    CHECK_EQ_STR(t.root_span_name, "");
    CHECK_EQ_STR(t.status, "error");
    CHECK_EQ_STR(t.source, "prela");
    CHECK(t.started_ns == 1 && t.completed_ns == 12 && t.created_ns == 7);
    CHECK(t.input_tokens == 0 && t.output_tokens == 0); /* negatives are not counted */
    CHECK_EQ_STR(t.session_id, "s1");
    CHECK_EQ_STR(t.user_id, "u1"); /* the least non-empty */
    CHECK(isnan(t.cost_usd));      /* no span has a cost */
    pc_ch_spans_free(&s);
}

/* Costs are added in "first" order, whatever order the rows came in: here
 * 1e16 - 1e16 + 1 = 1, where adding 1 before either gives 0. */
static void test_cost_order_and_tokens(void)
{
    const span spans[] = {
        {"a", "", "p", "a", "s", "success", "otlp", 1, 2, 30, INT64_MAX, 1, "1", "", ""},
        {"b", "a", "p", "b", "s", "success", "otlp", 1, 2, 10, 5, 1, "1e16", "", ""},
        {"c", "a", "p", "c", "s", "success", "otlp", 1, 2, 20, 0, 1, "-1e16", "", ""},
    };
    pc_buf text = PC_BUF_INIT;
    for (size_t i = 0; i < 3; i++)
        row(&text, &spans[i], true);
    pc_ch_spans s;
    CHECK_EQ_INT(pc_ch_spans_read(&s, &text, PC_CH_SPAN_COLS + 1), 0);
    pc_trace_row t;
    pc_ch_spans_summary(s.rows, s.n, &t);
    CHECK(t.cost_usd == 1.0);
    CHECK(t.input_tokens == INT64_MAX && t.output_tokens == 3); /* saturated, not wrapped */
    CHECK_EQ_STR(t.root_span_id, "a");
    CHECK(t.created_ns == 10);
    pc_ch_spans_free(&s);
}

static void test_escapes_and_bad_rows(void)
{
    const span sp = {"s\\t1", "", "p'\\\\", "na\\nme", "svc", "success", "otlp", 1, 0, 1, 0, 0,
                     "\\N", "", ""};
    pc_buf text = PC_BUF_INIT;
    row(&text, &sp, false);
    pc_ch_spans s;
    CHECK_EQ_INT(pc_ch_spans_read(&s, &text, PC_CH_SPAN_COLS), 0);
    CHECK_EQ_INT((long long)s.n, 1);
    CHECK_EQ_STR(s.rows[0].span_id, "s\t1");
    CHECK_EQ_STR(s.rows[0].project_id, "p'\\");
    CHECK_EQ_STR(s.rows[0].name, "na\nme");
    pc_trace_row t;
    pc_ch_spans_summary(s.rows, 1, &t);
    CHECK(t.completed_ns == 1); /* not ended: its start */
    pc_ch_spans_free(&s);

    /* a row with the parts column where none was asked for, and a short one */
    row(&text, &sp, true);
    CHECK_EQ_INT(pc_ch_spans_read(&s, &text, PC_CH_SPAN_COLS), -1);
    CHECK(s.n == 0 && s.rows == NULL);
    pc_buf_puts(&text, "t1\tshort\n");
    CHECK_EQ_INT(pc_ch_spans_read(&s, &text, PC_CH_SPAN_COLS), -1);
    /* no rows at all */
    CHECK_EQ_INT(pc_ch_spans_read(&s, &text, PC_CH_SPAN_COLS), 0);
    CHECK(s.n == 0);
    pc_ch_spans_free(&s);
}

typedef struct part {
    const char *trace, *project, *service, *root, *root_name, *status, *source;
    long long started, completed, created, spans, in, out;
    const char *session, *user, *cost;
    int merge_keys, has_root;
    long long root_created, root_start, first_start;
    const char *first_span, *hashes;
    int type, model;
} part;

/* Appends |p| as a row of pc_ch_sql_list_rows' answer. */
static void part_row(pc_buf *b, const part *p)
{
    pc_buf_printf(b,
                  "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\t%s\t%s\t%s"
                  "\t%d\t%d\t%lld\t%lld\t%lld\t%s\t%s\t%d\t%d\n",
                  p->trace, p->project, p->service, p->root, p->root_name, p->status, p->source,
                  p->started, p->completed, p->created, p->spans, p->in, p->out, p->session,
                  p->user, p->cost, p->merge_keys, p->has_root, p->root_created, p->root_start,
                  p->first_start, p->first_span, p->hashes, p->type, p->model);
}

/* Trace "a" of project "p" in three inserts (two with a root, one without),
 * trace "b" in one, and "a" of another project that is not a candidate. */
static const part parts[] = {
    {"a", "p", "svc-c", "", "", "success", "otlp", 5, 9, 20, 2, 7, 1, "s2", "", "0.5", 1, 0, 0,
     0, 5, "c", "[1,2]", 0, 1},
    {"a", "p", "svc-r2", "r2", "root two", "error", "otlp", 4, 8, 12, 1, INT64_MAX, 1, "s1",
     "u", "\\N", 1, 1, 12, 4, 4, "r2", "[3]", 1, 0},
    {"a", "p", "svc-r1", "r1", "root one", "success", "prela", 3, 6, 12, 1, 1, 1, "", "",
     "0.25", 1, 1, 12, 3, 3, "r1", "[4]", 0, 0},
    {"b", "p", "svc-b", "rb", "b", "success", "otlp", 20, 30, 25, 1, 0, 0, "", "", "\\N", 1, 1,
     25, 20, 20, "rb", "[9]", 0, 0},
    {"a", "q", "svc-q", "rq", "q", "error", "otlp", 50, 60, 1, 1, 0, 0, "", "", "\\N", 0, 1, 1,
     50, 50, "rq", "[3]", 0, 0},
};
#define NPARTS (sizeof(parts) / sizeof(parts[0]))

static const char *const cand_projects[] = {"p", "p"}, *const cand_ids[] = {"b", "a"};

/* pc_ch_traces_merge of |parts| (the first |n| of them, |change| applied to
 * part |at| when set) for the two candidates. */
static int merge(pc_ch_traces *t, const pc_trace_filter *f, int64_t lo, size_t skip, int at,
                 void (*change)(part *))
{
    pc_buf text = PC_BUF_INIT;
    for (size_t i = 0; i < NPARTS; i++) {
        part p = parts[i];
        if (change && (int)i == at) change(&p);
        part_row(&text, &p);
    }
    int rc = pc_ch_traces_merge(t, &text, f, lo, cand_projects, cand_ids, 2, skip);
    CHECK(text.data == NULL); /* taken over */
    return rc;
}

static void no_merge_keys(part *p)
{
    p->merge_keys = 0;
}

static void span_twice(part *p)
{
    p->hashes = "[1,3]"; /* a span of the first row, inserted again */
}

static void bad_hashes(part *p)
{
    p->hashes = "[1,x]";
}

static void other_trace(part *p)
{
    p->trace = "c"; /* b has no rows */
}

static void test_rows_merge(void)
{
    pc_trace_filter all = {.limit = 2};
    pc_ch_traces t;
    CHECK_EQ_INT(merge(&t, &all, INT64_MIN, 0, -1, NULL), 1);
    CHECK_EQ_INT((long long)t.n, 2);
    if (t.n == 2) {
        const pc_trace_row *b = &t.rows[0], *a = &t.rows[1]; /* newest first */
        CHECK_EQ_STR(b->trace_id, "b");
        CHECK_EQ_STR(a->trace_id, "a");
        CHECK_EQ_STR(a->project_id, "p");
        /* the root of the least (root created, root start, root id): r1 */
        CHECK_EQ_STR(a->root_span_id, "r1");
        CHECK_EQ_STR(a->root_span_name, "root one");
        CHECK_EQ_STR(a->service_name, "svc-r1");
        CHECK_EQ_STR(a->status, "error");
        /* "first" is the least (created, first start, first span id): r1's row */
        CHECK_EQ_STR(a->source, "prela");
        CHECK(a->started_ns == 3 && a->completed_ns == 9 && a->created_ns == 12);
        CHECK(a->span_count == 4);
        CHECK(a->input_tokens == INT64_MAX && a->output_tokens == 3);
        CHECK_EQ_STR(a->session_id, "s1");
        CHECK_EQ_STR(a->user_id, "u");
        CHECK(a->cost_usd == 0.75);
        CHECK(isnan(b->cost_usd));
    }
    pc_ch_traces_free(&t);

    /* the window's conditions on the merged values */
    pc_trace_filter f = {.limit = 2, .status = "error"};
    CHECK_EQ_INT(merge(&t, &f, INT64_MIN, 0, -1, NULL), 0); /* b is not an error */
    CHECK(t.n == 0 && t.rows == NULL);
    f = (pc_trace_filter){.limit = 2, .start_ns = 3, .end_ns = 20};
    CHECK_EQ_INT(merge(&t, &f, 3, 1, -1, NULL), 1); /* skip 1: a alone */
    CHECK(t.n == 1 && strcmp(t.rows[0].trace_id, "a") == 0);
    pc_ch_traces_free(&t);
    CHECK_EQ_INT(merge(&t, &f, 4, 0, -1, NULL), 0); /* a starts below the window */
    f.end_ns = 19;
    CHECK_EQ_INT(merge(&t, &f, INT64_MIN, 0, -1, NULL), 0);
    pc_trace_key after = {.started_ns = 20, .trace_id = "b", .project_id = "p"};
    f = (pc_trace_filter){.limit = 2, .after = &after};
    CHECK_EQ_INT(merge(&t, &f, INT64_MIN, 0, -1, NULL), 0); /* b is not after b */
    after.project_id = "q";
    CHECK_EQ_INT(merge(&t, &f, INT64_MIN, 0, -1, NULL), 1);
    pc_ch_traces_free(&t);
    f = (pc_trace_filter){.limit = 2, .service_name = "svc-r1"};
    CHECK_EQ_INT(merge(&t, &f, INT64_MIN, 0, -1, NULL), 0);
    /* a row's flags: a has the span type and the model, b neither */
    f = (pc_trace_filter){.limit = 2, .span_type = "llm"};
    CHECK_EQ_INT(merge(&t, &f, INT64_MIN, 0, -1, NULL), 0);
    f = (pc_trace_filter){.limit = 2, .model = "m"};
    CHECK_EQ_INT(merge(&t, &f, INT64_MIN, 0, -1, NULL), 0);
    f = (pc_trace_filter){.limit = 2, .session_id = "s1"};
    CHECK_EQ_INT(merge(&t, &f, INT64_MIN, 0, -1, NULL), 0);

    /* not exact: a row without its merge keys, a span twice, hashes unread, no rows */
    CHECK_EQ_INT(merge(&t, &all, INT64_MIN, 0, 1, no_merge_keys), 0);
    CHECK_EQ_INT(merge(&t, &all, INT64_MIN, 0, 2, span_twice), 0);
    CHECK_EQ_INT(merge(&t, &all, INT64_MIN, 0, 0, bad_hashes), 0);
    CHECK_EQ_INT(merge(&t, &all, INT64_MIN, 0, 3, other_trace), 0);
    /* the other project's "a" is no candidate: its flags do not matter */
    CHECK_EQ_INT(merge(&t, &all, INT64_MIN, 0, 4, no_merge_keys), 1);
    pc_ch_traces_free(&t);

    /* a row of another width */
    pc_buf text = PC_BUF_INIT;
    pc_buf_puts(&text, "a\tp\n");
    CHECK_EQ_INT(pc_ch_traces_merge(&t, &text, &all, INT64_MIN, cand_projects, cand_ids, 2, 0),
                 -1);
    CHECK(t.n == 0 && t.rows == NULL);
    /* summaries read as they are */
    pc_buf_puts(&text, "a\tp\ts\tr\tn\terror\totlp\t1\t2\t3\t4\t5\t6\t\t\tnan\n");
    CHECK_EQ_INT(pc_ch_traces_read(&t, &text), 0);
    CHECK(t.n == 1 && t.rows[0].span_count == 4 && isnan(t.rows[0].cost_usd));
    pc_ch_traces_free(&t);
    pc_buf_puts(&text, "a\tp\n");
    CHECK_EQ_INT(pc_ch_traces_read(&t, &text), -1);
}

static void test_sql(void)
{
    pc_buf b = PC_BUF_INIT;
    pc_ch_sql_trace_spans(&b, "db", "p'1", "t\\1", "'a', 'b'", 10001);
    CHECK(strstr(b.data, "FROM `db`.spans WHERE trace_id = 't\\\\1' AND project_id = 'p\\'1'"
                         " AND _part IN ('a', 'b') LIMIT 10001 FORMAT TabSeparated") != NULL);
    CHECK(strstr(b.data, "_part AS l_part") != NULL);
    CHECK(strstr(b.data, "LIMIT 1 BY") == NULL && strstr(b.data, "GROUP BY") == NULL);
    pc_buf_reset(&b);
    pc_ch_sql_trace_spans(&b, "db", NULL, "t", NULL, 5);
    CHECK(strstr(b.data, "WHERE trace_id = 't' LIMIT 5 FORMAT") != NULL);
    CHECK(strstr(b.data, "_part") == NULL);
    pc_buf_free(&b);
}

int main(void)
{
    RUN(test_copies_projects_and_summary);
    RUN(test_cost_order_and_tokens);
    RUN(test_escapes_and_bad_rows);
    RUN(test_rows_merge);
    RUN(test_sql);
    return CHECK_DONE();
}
