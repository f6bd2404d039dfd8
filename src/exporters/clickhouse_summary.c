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

/* Summaries, whatever made them: the rows' strings point into t->text. */
static void traces_take(pc_ch_traces *t, pc_buf *text, size_t cap)
{
    memset(t, 0, sizeof(*t));
    t->text = *text;
    *text = (pc_buf)PC_BUF_INIT;
    t->rows = pc_xmalloc((cap + 1) * sizeof(*t->rows));
}

int pc_ch_traces_read(pc_ch_traces *t, pc_buf *text)
{
    traces_take(t, text, (size_t)pc_ch_tsv_rows(text));
    char *cur = t->text.data, *end = t->text.data + t->text.len, *cols[PC_CH_TRACE_COLS + 1];
    int n;
    while ((n = pc_ch_tsv_row(&cur, end, cols, PC_CH_TRACE_COLS + 1)) > 0) {
        if (n != PC_CH_TRACE_COLS) {
            pc_ch_traces_free(t);
            return -1;
        }
        pc_ch_read_trace(cols, &t->rows[t->n++]);
    }
    return 0;
}

void pc_ch_traces_free(pc_ch_traces *t)
{
    pc_buf_free(&t->text);
    free(t->rows);
    memset(t, 0, sizeof(*t));
}

/* One trace_rows row of a list page's read (PC_CH_LIST_ROWS_COLS). */
typedef struct trace_part {
    pc_trace_row r;      /* the row's own summary; cost_usd its cost_sum */
    int64_t root_created, root_start, first_start;
    const char *first_span_id;
    const char *hashes; /* "[h1,h2,...]" */
    bool merge_keys, has_root, has_type, has_model;
} trace_part;

static int by_trace(const void *pa, const void *pb)
{
    const trace_part *a = pa, *b = pb;
    int c = strcmp(a->r.project_id, b->r.project_id);
    return c ? c : strcmp(a->r.trace_id, b->r.trace_id);
}

/* The merge's "first" row: (created_ns, first start, first span id). */
static int part_first_cmp(const trace_part *a, const trace_part *b)
{
    int c = cmp_i64(a->r.created_ns, b->r.created_ns);
    if (!c) c = cmp_i64(a->first_start, b->first_start);
    return c ? c : strcmp(a->first_span_id, b->first_span_id);
}

static int by_part_first(const void *pa, const void *pb)
{
    return part_first_cmp(pa, pb);
}

/* The merge's root row: its root's (created_ns, start, span id). */
static int part_root_cmp(const trace_part *a, const trace_part *b)
{
    int c = cmp_i64(a->root_created, b->root_created);
    if (!c) c = cmp_i64(a->root_start, b->root_start);
    return c ? c : strcmp(a->r.root_span_id, b->r.root_span_id);
}

static int cmp_u32(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

/* The distinct span hashes of the |n| rows |p| hold; -1 when a list is
 * not "[n,...]". */
static int64_t distinct_hashes(const trace_part *p, size_t n)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        for (const char *s = p[i].hashes; *s; s++)
            cap += *s == ',' || *s == '[';
    uint32_t *h = pc_xmalloc((cap + 1) * sizeof(*h));
    size_t k = 0;
    int64_t distinct = -1;
    for (size_t i = 0; i < n; i++) {
        const char *s = p[i].hashes;
        if (*s++ != '[') goto done;
        while (*s != ']') {
            char *e;
            unsigned long long v = strtoull(s, &e, 10);
            if (e == s || v > UINT32_MAX || k >= cap || (*e != ',' && *e != ']')) goto done;
            h[k++] = (uint32_t)v;
            s = *e == ',' ? e + 1 : e;
        }
        if (s[1]) goto done;
    }
    qsort(h, k, sizeof(*h), cmp_u32);
    distinct = k > 0;
    for (size_t i = 1; i < k; i++)
        distinct += h[i] != h[i - 1];
done:
    free(h);
    return distinct;
}

/* Merges the |n| (>= 1) rows |p| of one trace (reordered: "first" order)
 * into |out|; whether the merge is exact (see pc_ch_traces_merge). */
static bool merge_parts(trace_part *p, size_t n, pc_trace_row *out, bool *has_type,
                        bool *has_model)
{
    qsort(p, n, sizeof(*p), by_part_first);
    const trace_part *root = NULL;
    bool exact = true, error = false;
    int64_t started = INT64_MAX, completed = INT64_MIN, created = INT64_MAX, spans = 0;
    token_sum in = {0, 0}, outt = {0, 0};
    const char *session = "", *user = "";
    double cost = NAN;
    *has_type = *has_model = false;
    for (size_t i = 0; i < n; i++) {
        const trace_part *x = &p[i];
        exact = exact && x->merge_keys;
        if (x->has_root && (!root || part_root_cmp(x, root) < 0)) root = x;
        if (strcmp(x->r.status, "error") == 0) error = true;
        if (x->r.started_ns < started) started = x->r.started_ns;
        if (x->r.completed_ns > completed) completed = x->r.completed_ns;
        if (x->r.created_ns < created) created = x->r.created_ns;
        spans = x->r.span_count > INT64_MAX - spans ? INT64_MAX : spans + x->r.span_count;
        token_add(&in, x->r.input_tokens);
        token_add(&outt, x->r.output_tokens);
        least(&session, x->r.session_id);
        least(&user, x->r.user_id);
        if (!isnan(x->r.cost_usd)) cost = isnan(cost) ? x->r.cost_usd : cost + x->r.cost_usd;
        *has_type = *has_type || x->has_type;
        *has_model = *has_model || x->has_model;
    }
    *out = (pc_trace_row){
        .trace_id = p[0].r.trace_id,
        .project_id = p[0].r.project_id,
        .service_name = root ? root->r.service_name : p[0].r.service_name,
        .root_span_id = root ? root->r.root_span_id : "",
        .root_span_name = root ? root->r.root_span_name : "",
        .status = error ? "error" : "success",
        .source = p[0].r.source,
        .started_ns = started,
        .completed_ns = completed,
        .created_ns = created,
        .span_count = spans,
        .input_tokens = token_total(&in),
        .output_tokens = token_total(&outt),
        .session_id = session,
        .user_id = user,
        .cost_usd = cost,
    };
    return exact && distinct_hashes(p, n) == spans;
}

/* Whether the merged |r| passes the window's conditions (pc_ch_traces_merge). */
static bool page_match(const pc_trace_row *r, bool has_type, bool has_model,
                       const pc_trace_filter *f, int64_t lo)
{
    int64_t s = r->started_ns;
    if ((lo != INT64_MIN && s < lo) || (f->start_ns && s < f->start_ns) ||
        (f->end_ns && s > f->end_ns))
        return false;
    if (f->after) { /* (start, trace, project) below the cursor's */
        const pc_trace_key *c = f->after;
        int k = cmp_i64(s, c->started_ns);
        if (!k) k = strcmp(r->trace_id, c->trace_id);
        if (!k) k = strcmp(r->project_id, c->project_id);
        if (k >= 0) return false;
    }
    return (!f->service_name || strcmp(r->service_name, f->service_name) == 0) &&
           (!f->status || strcmp(r->status, f->status) == 0) &&
           (!f->span_type || has_type) && (!f->model || has_model) &&
           (!f->session_id || strcmp(r->session_id, f->session_id) == 0) &&
           (!f->user_id || strcmp(r->user_id, f->user_id) == 0);
}

int pc_ch_traces_newest_first(const void *pa, const void *pb)
{
    const pc_trace_row *a = pa, *b = pb;
    int c = cmp_i64(b->started_ns, a->started_ns);
    if (!c) c = strcmp(b->trace_id, a->trace_id);
    return c ? c : strcmp(b->project_id, a->project_id);
}

/* The rows of (|project|, |trace|) in |p| (|np| rows sorted by_trace): the
 * index of the first in |*first|, the count returned (0 when none). */
static size_t parts_of(const trace_part *p, size_t np, const char *project, const char *trace,
                       size_t *first)
{
    trace_part key = {.r = {.project_id = project, .trace_id = trace}};
    size_t lo = 0, hi = np;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (by_trace(&p[mid], &key) < 0) lo = mid + 1;
        else hi = mid;
    }
    size_t k = lo;
    while (k < np && by_trace(&p[k], &key) == 0)
        k++;
    *first = lo;
    return k - lo;
}

int pc_ch_traces_merge(pc_ch_traces *t, pc_buf *text, const pc_trace_filter *f, int64_t lo,
                       const char *const *projects, const char *const *trace_ids, size_t n,
                       size_t skip)
{
    size_t cap = (size_t)pc_ch_tsv_rows(text), np = 0;
    traces_take(t, text, n);
    trace_part *p = pc_xmalloc((cap + 1) * sizeof(*p));
    char *cur = t->text.data, *end = t->text.data + t->text.len;
    char *cols[PC_CH_LIST_ROWS_COLS + 1];
    int rc = 1, got;
    while (np < cap && (got = pc_ch_tsv_row(&cur, end, cols, PC_CH_LIST_ROWS_COLS + 1)) > 0) {
        if (got != PC_CH_LIST_ROWS_COLS) {
            rc = -1;
            goto done;
        }
        trace_part *x = &p[np++];
        char **c = cols + PC_CH_TRACE_COLS;
        pc_ch_read_trace(cols, &x->r);
        x->merge_keys = strcmp(c[0], "1") == 0;
        x->has_root = strcmp(c[1], "1") == 0;
        x->root_created = strtoll(c[2], NULL, 10);
        x->root_start = strtoll(c[3], NULL, 10);
        x->first_start = strtoll(c[4], NULL, 10);
        x->first_span_id = c[5];
        x->hashes = c[6];
        x->has_type = strcmp(c[7], "1") == 0;
        x->has_model = strcmp(c[8], "1") == 0;
    }
    qsort(p, np, sizeof(*p), by_trace);
    for (size_t i = 0; i < n && rc == 1; i++) { /* each candidate: its rows, merged */
        size_t first, k = parts_of(p, np, projects[i], trace_ids[i], &first);
        bool has_type, has_model;
        pc_trace_row *r = &t->rows[t->n];
        if (k == 0 || !merge_parts(&p[first], k, r, &has_type, &has_model) ||
            !page_match(r, has_type, has_model, f, lo))
            rc = 0;
        else
            t->n++;
    }
    if (rc == 1) {
        qsort(t->rows, t->n, sizeof(*t->rows), pc_ch_traces_newest_first);
        size_t drop = skip < t->n ? skip : t->n;
        memmove(t->rows, t->rows + drop, (t->n - drop) * sizeof(*t->rows));
        t->n -= drop;
    }
done:
    free(p);
    if (rc != 1) pc_ch_traces_free(t);
    return rc;
}
