/*
 * test_clickhouse_summary.c - a trace's raw span rows made into its distinct
 * spans and summary in the collector (clickhouse_summary.c), no server: copies
 * of a span (first write wins), two projects, the root and "first" orders,
 * costs added in "first" order, token sums that saturate, the least
 * non-empty session and user, escaped text, and rows of the wrong width.
 * test_clickhouse.py checks the same answers against the embedded store on
 * both dialects.
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
    RUN(test_sql);
    return CHECK_DONE();
}
