/*
 * clickhouse_summary.c - a trace's raw span rows made into its distinct spans
 * and its summary, in the collector (see clickhouse_summary.h). A trace
 * lookup on the server needed a second statement for the summary (a GROUP
 * BY over the deduplicated spans) and a deduplication in the spans'
 * statement; both cost the server more to analyse than to read the rows.
 */
#include "clickhouse_summary.h"

#include "clickhouse_tsv.h"
#include "mem.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

/* Copies of one span together, its first write first. */
static int by_copy(const void *pa, const void *pb)
{
    const pc_span_row *a = pa, *b = pb;
    int c = strcmp(a->project_id, b->project_id);
    if (!c) c = strcmp(a->span_id, b->span_id);
    return c ? c : cmp_i64(a->created_ns, b->created_ns);
}

/* The order of the summaries and of a page of spans. */
static int by_page(const void *pa, const void *pb)
{
    const pc_span_row *a = pa, *b = pb;
    int c = strcmp(a->project_id, b->project_id);
    if (!c) c = cmp_i64(a->start_ns, b->start_ns);
    return c ? c : strcmp(a->span_id, b->span_id);
}

/* TRACE_AGG's "first": (created_ns, start_ns, span_id). */
static int first_cmp(const pc_span_row *a, const pc_span_row *b)
{
    int c = cmp_i64(a->created_ns, b->created_ns);
    if (!c) c = cmp_i64(a->start_ns, b->start_ns);
    return c ? c : strcmp(a->span_id, b->span_id);
}

static int by_first(const void *pa, const void *pb)
{
    return first_cmp(*(const pc_span_row *const *)pa, *(const pc_span_row *const *)pb);
}

int pc_ch_spans_read(pc_ch_spans *s, pc_buf *text, int ncols)
{
    memset(s, 0, sizeof(*s));
    s->text = *text;
    *text = (pc_buf)PC_BUF_INIT;
    size_t cap = (size_t)pc_ch_tsv_rows(&s->text);
    s->rows = pc_xmalloc((cap + 1) * sizeof(*s->rows));
    char *cur = s->text.data, *end = s->text.data + s->text.len, *cols[PC_CH_SPAN_COLS + 1];
    int n;
    while (s->n < cap && (n = pc_ch_tsv_row(&cur, end, cols, PC_CH_SPAN_COLS + 1)) > 0) {
        if (n != ncols || ncols < PC_CH_SPAN_COLS) {
            pc_ch_spans_free(s);
            return -1;
        }
        pc_ch_read_span(cols, &s->rows[s->n++]);
    }
    if (s->n < 2) return 0;
    qsort(s->rows, s->n, sizeof(*s->rows), by_copy);
    size_t k = 1;
    for (size_t i = 1; i < s->n; i++) {
        const pc_span_row *last = &s->rows[k - 1], *r = &s->rows[i];
        if (strcmp(r->project_id, last->project_id) || strcmp(r->span_id, last->span_id))
            s->rows[k++] = *r;
    }
    s->n = k;
    qsort(s->rows, s->n, sizeof(*s->rows), by_page);
    return 0;
}

size_t pc_ch_spans_of(const pc_ch_spans *s, const char *project, size_t *first)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->rows[mid].project_id, project) < 0) lo = mid + 1;
        else hi = mid;
    }
    size_t k = lo;
    while (k < s->n && strcmp(s->rows[k].project_id, project) == 0)
        k++;
    *first = lo;
    return k - lo;
}

/* TRACE_AGG's token sum: the positive counts, INT64_MAX once their sum in
 * doubles reaches 9.2e18 (PC_CH_TOKEN_SUM). */
typedef struct token_sum {
    double f;
    int64_t n;
} token_sum;

static void token_add(token_sum *t, int64_t v)
{
    if (v <= 0) return;
    t->f += (double)v;
    t->n = v > INT64_MAX - t->n ? INT64_MAX : t->n + v;
}

static int64_t token_total(const token_sum *t)
{
    return t->f >= 9.2e18 ? INT64_MAX : t->n;
}

/* The least non-empty of |*least| and |s| ("" when both are). */
static void least(const char **least, const char *s)
{
    if (*s && (!**least || strcmp(s, *least) < 0)) *least = s;
}

void pc_ch_spans_summary(const pc_span_row *rows, size_t n, pc_trace_row *out)
{
    const pc_span_row *first = &rows[0], *root = NULL;
    bool error = false;
    int64_t started = INT64_MAX, completed = INT64_MIN, created = INT64_MAX;
    token_sum in = {0, 0}, outt = {0, 0};
    const char *session = "", *user = "";
    size_t costs = 0;
    for (size_t i = 0; i < n; i++) {
        const pc_span_row *r = &rows[i];
        if (first_cmp(r, first) < 0) first = r;
        if (!*r->parent_span_id && (!root || first_cmp(r, root) < 0)) root = r;
        if (strcmp(r->status, "error") == 0) error = true;
        int64_t end = r->end_ns > 0 ? r->end_ns : r->start_ns;
        if (r->start_ns < started) started = r->start_ns;
        if (end > completed) completed = end;
        if (r->created_ns < created) created = r->created_ns;
        token_add(&in, r->input_tokens);
        token_add(&outt, r->output_tokens);
        least(&session, r->session_id);
        least(&user, r->user_id);
        costs += !isnan(r->cost_usd);
    }
    double cost = NAN;
    if (costs) { /* added in "first" order, as TRACE_AGG adds them */
        const pc_span_row **priced = pc_xmalloc(costs * sizeof(*priced));
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (!isnan(rows[i].cost_usd)) priced[k++] = &rows[i];
        qsort(priced, k, sizeof(*priced), by_first);
        cost = 0;
        for (size_t i = 0; i < k; i++)
            cost += priced[i]->cost_usd;
        free(priced);
    }
    *out = (pc_trace_row){
        .trace_id = first->trace_id,
        .project_id = first->project_id,
        .service_name = root ? root->service_name : first->service_name,
        .root_span_id = root ? root->span_id : "",
        .root_span_name = root ? root->name : "",
        .status = error ? "error" : "success",
        .source = first->source,
        .started_ns = started,
        .completed_ns = completed,
        .created_ns = created,
        .span_count = (int64_t)n,
        .input_tokens = token_total(&in),
        .output_tokens = token_total(&outt),
        .session_id = session,
        .user_id = user,
        .cost_usd = cost,
    };
}

void pc_ch_spans_free(pc_ch_spans *s)
{
    pc_buf_free(&s->text);
    free(s->rows);
    memset(s, 0, sizeof(*s));
}
