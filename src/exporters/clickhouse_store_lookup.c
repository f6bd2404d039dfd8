/*
 * clickhouse_store_lookup.c - the trace lookups (store.h get_trace, get_spans,
 * count_spans) of the query store over ClickHouse (clickhouse_store_lookup.h).
 *
 * Data flow: the query receiver calls them through the store's ops table
 * (clickhouse_store.c); they find the parts of the spans table holding the
 * trace, read the trace's rows from those with that store's bounded read
 * helpers, and deduplicate, summarize and page them in the collector
 * (clickhouse_summary.h), merging in the span events that arrived as log
 * records (clickhouse_events.h). What one API request found and read is
 * kept for the rest of that request (pc_ch_store_lookup_request).
 */
#include "clickhouse_store_lookup.h"

#include "clickhouse_events.h"
#include "clickhouse_summary.h"
#include "log.h"
#include "mem.h"
#include "span_events.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set while this thread serves an API request (pc_ch_store_lookup_request). */
static __thread bool in_request;

static void forget_parts(void);
static void forget_read(void);

void pc_ch_store_lookup_request(bool starts)
{
    in_request = starts;
    forget_parts(); /* a request's found parts and read trace serve that request only */
    forget_read();
}

static int span_row(char **cols, void *cb, void *ud)
{
    pc_span_row r;
    pc_ch_read_span(cols, &r);
    return ((pc_span_cb)cb)(ud, &r);
}

/*
 * Trace lookups (get trace, get spans) read only the parts of the spans table
 * that hold the trace. A read pays for every column of every part it opens,
 * even for no rows: the spans key puts a trace id inside one granule's range
 * in each part, and on 18.16 a column of a part cost about 14 us to read that
 * way (measured: 36 columns from 18 parts, 11 ms a lookup with every block in
 * the cache; the same columns from the one part holding the trace, 3 ms).
 * So a lookup first finds the trace's parts on two columns (find_parts), then
 * reads its columns from those (`_part IN`, which prunes parts on both
 * dialects). A merge between the first read and the second would have
 * replaced a named part and left its rows out, so the second read must be
 * shown to have seen every named part (read_lookup): by its own rows, each
 * naming the part it came from (a part that gave a row was in the read's
 * snapshot, and a snapshot holds a part whole), else by a check that they
 * are all still active (a part once replaced is never active again), a
 * statement more. When neither shows it (a part replaced meanwhile, or the
 * check failed: a user who may not read system.parts), the lookup is read
 * again from every part.
 */
typedef struct lookup_parts {
    pc_buf list; /* the parts' names, quoted: "'a', 'b'" */
    int n;       /* names in list; 0: the trace has no spans; -1: too many, read every part */
} lookup_parts;

/* The parts this thread's last lookup found, kept within one API request
 * (in_request): its get trace and get spans find them once. The check
 * after each read keeps them right; pc_ch_store_lookup_request forgets them
 * at each request's start and end, and reads outside a request (the tail
 * receiver's) neither keep nor use them. */
static __thread struct {
    const pc_ch_store *store; /* whose spans table */
    char *trace, *project;    /* NULL trace: none kept; NULL project: found for every project */
    lookup_parts p;
} last_found;

static void forget_parts(void)
{
    free(last_found.trace);
    free(last_found.project);
    pc_buf_free(&last_found.p.list);
    last_found.trace = last_found.project = NULL;
}

/* Adds part |name| (|n| bytes) to |p| when it is not there; past
 * PC_CH_TRACE_PARTS_MAX parts, p->n = -1 (every part is read). */
static void add_part(lookup_parts *p, const char *name, size_t n)
{
    if (p->n < 0) return;
    pc_buf q = PC_BUF_INIT;
    pc_ch_quote(&q, name, n); /* quoted, so a name matches only a whole name */
    if (p->list.data && strstr(p->list.data, q.data)) {
        pc_buf_free(&q);
        return;
    }
    if (p->n == PC_CH_TRACE_PARTS_MAX) {
        p->n = -1;
    } else {
        if (p->n++) pc_buf_puts(&p->list, ", ");
        pc_buf_append(&p->list, q.data, q.len);
    }
    pc_buf_free(&q);
}

/* Adds the parts named in "a,b" at [a, end) to |p| (add_part). */
static void add_parts(lookup_parts *p, const char *a, const char *end)
{
    while (a < end) {
        const char *comma = memchr(a, ',', (size_t)(end - a));
        size_t n = (size_t)((comma ? comma : end) - a);
        add_part(p, a, n);
        a += n + 1;
    }
}

/* Keeps |p|, found for trace (|project_id|, |trace_id|), for the rest of the
 * API request (see last_found). */
static void keep_found(const pc_ch_store *S, const char *project_id, const char *trace_id,
                       const lookup_parts *p)
{
    if (!in_request) return;
    forget_parts();
    last_found.store = S;
    last_found.trace = pc_xstrdup(trace_id);
    last_found.project = project_id ? pc_xstrdup(project_id) : NULL;
    pc_buf_append(&last_found.p.list, p->list.data ? p->list.data : "", p->list.len);
    last_found.p.n = p->n;
}

/* Finds the parts of the spans table holding trace (|project_id|, |trace_id|)
 * (the request's last ones when they were found for it: those of every
 * project are a superset of one project's). 0 / < 0. */
static int find_parts(pc_ch_store *S, const char *project_id, const char *trace_id,
                      lookup_parts *p)
{
    if (in_request && last_found.trace && last_found.store == S &&
        strcmp(last_found.trace, trace_id) == 0 &&
        (!last_found.project || (project_id && strcmp(last_found.project, project_id) == 0))) {
        pc_buf_append(&p->list, last_found.p.list.data ? last_found.p.list.data : "",
                      last_found.p.list.len);
        p->n = last_found.p.n;
        return 0;
    }
    pc_buf sql = PC_BUF_INIT, out;
    pc_ch_sql_trace_parts(&sql, S->database, project_id, trace_id);
    int rc = pc_ch_store_run(S, sql.data, "find a trace's parts", PC_CH_READ_SETTINGS, &out);
    pc_buf_free(&sql);
    if (rc < 0) return rc;
    char *cur = out.data, *end = out.data + out.len, *cols[1];
    p->n = 0;
    while (pc_ch_tsv_row(&cur, end, cols, 1) == 1)
        add_part(p, cols[0], strlen(cols[0]));
    pc_buf_free(&out);
    keep_found(S, project_id, trace_id, p);
    return 0;
}

/* Rows of pc_ch_sql_trace_span_counts: each project's span count to the
 * caller, its parts into the union. */
typedef struct span_counts {
    const char *trace_id;
    pc_trace_cb cb;
    void *ud;
    lookup_parts *p;
} span_counts;

static int span_count_row(char **cols, void *cb, void *ud)
{
    (void)cb;
    span_counts *k = ud;
    add_parts(k->p, cols[2], cols[2] + strlen(cols[2]));
    pc_trace_row r = {.trace_id = k->trace_id, .project_id = cols[0],
                      .span_count = strtoll(cols[1], NULL, 10)};
    return k->cb(k->ud, &r);
}

/* One statement on the key columns (pc_ch_sql_trace_span_counts), which also
 * finds the trace's parts for the request's next lookup (its page of spans). */
int pc_ch_store_count_spans(void *ctx, const char *project_id, const char *trace_id,
                            pc_trace_cb cb, void *ud)
{
    pc_ch_store *S = ctx;
    pc_buf sql = PC_BUF_INIT;
    lookup_parts p = {PC_BUF_INIT, 0};
    span_counts k = {trace_id, cb, ud, &p};
    pc_ch_sql_trace_span_counts(&sql, S->database, project_id, trace_id);
    int rc = pc_ch_store_each_row(S, &sql, "count a trace's spans", PC_CH_READ_SETTINGS, 3,
                                  span_count_row, NULL, &k);
    if (rc == 0) keep_found(S, project_id, trace_id, &p);
    pc_buf_free(&p.list);
    return rc;
}

/* What a trace lookup reads, and how its SQL is built for |parts| (NULL:
 * every part). */
typedef struct lookup {
    const char *project_id, *trace_id, *what;
    int limit, offset; /* get spans only */
    void (*sql)(pc_buf *out, const pc_ch_store *S, const struct lookup *l, const char *parts);
    const char *settings; /* the read's URL settings; NULL: PC_CH_READ_SETTINGS */
} lookup;

/* Runs SQL |sql| of |l| (freed here) into |out|. 0 / < 0. */
static int run_sql(pc_ch_store *S, const lookup *l, pc_buf *sql, pc_buf *out)
{
    int rc = pc_ch_store_run(S, sql->data, l->what, l->settings ? l->settings : PC_CH_READ_SETTINGS,
                             out);
    pc_buf_free(sql);
    return rc;
}

/* The number of distinct parts the rows of |out| name in their last column
 * ("a,b", clickhouse_query.h), counted up to PC_CH_TRACE_PARTS_MAX. */
static int parts_seen(const pc_buf *out)
{
    lookup_parts seen = {PC_BUF_INIT, 0};
    const char *cur = out->data, *end = out->data + out->len;
    while (cur && cur < end) {
        const char *nl = memchr(cur, '\n', (size_t)(end - cur));
        const char *line_end = nl ? nl : end;
        const char *tab = memrchr(cur, '\t', (size_t)(line_end - cur));
        if (tab) add_parts(&seen, tab + 1, line_end);
        cur = nl ? nl + 1 : end;
    }
    pc_buf_free(&seen.list);
    return seen.n < 0 ? PC_CH_TRACE_PARTS_MAX : seen.n;
}

/* Reads |l| into |out|: from the trace's parts, shown whole (see above),
 * else (a part replaced meanwhile, the check failed, or the parts not named)
 * from every part. |*found| = false when the trace has no spans (nothing
 * read); |*part_col|: each row of |out| ends with the parts column. 0 / < 0. */
static int read_lookup(pc_ch_store *S, const lookup *l, pc_buf *out, bool *found,
                       bool *part_col)
{
    lookup_parts p = {PC_BUF_INIT, 0};
    int rc = find_parts(S, l->project_id, l->trace_id, &p);
    *found = rc == 0 && p.n != 0;
    bool named = *found && p.n > 0, every = *found && !named;
    *part_col = named;
    pc_buf sql = PC_BUF_INIT, active;
    if (named) {
        l->sql(&sql, S, l, p.list.data);
        rc = run_sql(S, l, &sql, out);
        if (rc == 0 && parts_seen(out) < p.n) {
            pc_ch_sql_parts_active(&sql, S->database, p.list.data);
            int crc = pc_ch_store_run(S, sql.data, "check a trace's parts", PC_CH_READ_SETTINGS,
                                      &active);
            pc_buf_free(&sql);
            long n = crc == 0 && active.data ? strtol(active.data, NULL, 10) : -1;
            if (crc == 0) pc_buf_free(&active);
            if (n != p.n) { /* replaced meanwhile, or the check failed (a user who may
                             * not read system.parts, logged): every part below */
                pc_buf_free(out);
                forget_parts(); /* the next lookup finds them again */
                if (crc == PC_STORE_TIMEOUT) rc = crc;
                else every = true;
            }
        }
    }
    pc_buf_free(&p.list);
    if (!every) return rc;
    *part_col = false;
    l->sql(&sql, S, l, NULL);
    return run_sql(S, l, &sql, out);
}

/*
 * A trace lookup reads the rows of the trace's spans once, raw, and the
 * collector deduplicates, summarizes and pages them (clickhouse_summary.h):
 * one statement of plain rows instead of the server's summary and its
 * deduplicated page of spans, which cost it more to analyse than to read.
 * A get trace keeps the rows for the same request's page of spans
 * (handle_trace's get spans). A trace of more than LOOKUP_ROWS_MAX rows, or
 * whose rows pass LOOKUP_BYTES_MAX, is summarized and paged by the server
 * (which stops the raw read there: read_whole), so a page of one span
 * never makes the collector read more than that.
 */
#define LOOKUP_ROWS_MAX 10000
#define LOOKUP_BYTES_MAX (16 << 20)

/* The trace this thread's request last read whole, kept and forgotten as
 * last_found is; or that it has too many rows to read whole. */
static __thread struct {
    const pc_ch_store *store;
    char *trace, *project; /* NULL trace: none kept; NULL project: every project's */
    pc_ch_spans spans;
    bool too_many;
} last_read;

static void forget_read(void)
{
    free(last_read.trace);
    free(last_read.project);
    pc_ch_spans_free(&last_read.spans);
    last_read.trace = last_read.project = NULL;
    last_read.too_many = false;
}

/* Keeps |s| (taken over; NULL: the trace has too many rows) for the rest of
 * the API request, or frees it. */
static void keep_read(const pc_ch_store *S, const char *project_id, const char *trace_id,
                      pc_ch_spans *s)
{
    forget_read();
    if (!in_request) {
        if (s) pc_ch_spans_free(s);
        return;
    }
    last_read.store = S;
    last_read.trace = pc_xstrdup(trace_id);
    last_read.project = project_id ? pc_xstrdup(project_id) : NULL;
    if (s) last_read.spans = *s;
    last_read.too_many = !s;
}

/* The spans the request read of trace (|project_id|, |trace_id|), NULL when
 * it did not read them whole (|*too_many|: it found too many rows to). */
static const pc_ch_spans *kept_read(const pc_ch_store *S, const char *project_id,
                                    const char *trace_id, bool *too_many)
{
    *too_many = false;
    if (!in_request || !last_read.trace || last_read.store != S ||
        strcmp(last_read.trace, trace_id) != 0 ||
        (last_read.project && strcmp(last_read.project, project_id) != 0))
        return NULL;
    *too_many = last_read.too_many;
    return last_read.too_many ? NULL : &last_read.spans;
}

static void trace_spans_sql(pc_buf *out, const pc_ch_store *S, const lookup *l,
                            const char *parts)
{
    pc_ch_sql_trace_spans(out, S->database, l->project_id, l->trace_id, parts,
                          LOOKUP_ROWS_MAX + 1);
}

static void get_trace_sql(pc_buf *out, const pc_ch_store *S, const lookup *l, const char *parts)
{
    pc_ch_sql_get_trace(out, S->database, l->project_id, l->trace_id, parts);
}

/* What read_whole did. */
enum { READ_NONE, READ_WHOLE, READ_TOO_MANY };

/* Reads the rows of the trace |l| names into |s|: READ_WHOLE (|s| filled),
 * READ_NONE (the trace has no spans), READ_TOO_MANY (more than
 * LOOKUP_ROWS_MAX rows or LOOKUP_BYTES_MAX bytes, or more than the server's
 * memory limit for one read or the memory budget allows now: nothing kept),
 * or < 0. The server stops the read at those limits (result_overflow_mode=
 * throw: code 396); the collector checks them too. */
static int read_whole(pc_ch_store *S, const lookup *l, pc_ch_spans *s)
{
    char settings[PC_CH_CAPPED_LEN];
    pc_ch_capped_settings(settings, LOOKUP_ROWS_MAX, LOOKUP_BYTES_MAX);
    lookup raw = *l;
    raw.sql = trace_spans_sql;
    raw.settings = settings;
    pc_buf out;
    bool found, part_col;
    int rc = read_lookup(S, &raw, &out, &found, &part_col);
    if (rc == PC_STORE_TOO_BIG || rc == PC_STORE_OVER_BUDGET) return READ_TOO_MANY;
    if (rc < 0) return rc;
    if (!found) return READ_NONE;
    if (!pc_ch_capped_within(&out, LOOKUP_ROWS_MAX, LOOKUP_BYTES_MAX)) {
        pc_buf_free(&out);
        return READ_TOO_MANY;
    }
    if (pc_ch_spans_read(s, &out, PC_CH_SPAN_COLS + part_col) < 0) {
        pc_log(PC_LOG_ERROR, S->id, "%s: a row without the %d columns asked for", l->what,
               PC_CH_SPAN_COLS + part_col);
        return -1;
    }
    return READ_WHOLE;
}

int pc_ch_store_get_trace(void *ctx, const char *project_id, const char *trace_id,
                          pc_trace_cb cb, void *ud)
{
    pc_ch_store *S = ctx;
    lookup l = {.project_id = project_id, .trace_id = trace_id, .what = "get trace",
                .sql = get_trace_sql};
    pc_ch_spans s;
    int rc = read_whole(S, &l, &s);
    if (rc == READ_TOO_MANY) { /* the server's summary */
        keep_read(S, project_id, trace_id, NULL);
        pc_buf out;
        bool found, part_col;
        rc = read_lookup(S, &l, &out, &found, &part_col);
        if (rc < 0 || !found) return rc;
        return pc_ch_store_deliver(S, &out, l.what, PC_CH_TRACE_COLS + part_col,
                                   pc_ch_store_trace_row, (void *)cb, ud);
    }
    if (rc != READ_WHOLE) return rc;
    for (size_t i = 0; i < s.n;) { /* one summary per project, in project order */
        size_t first, n = pc_ch_spans_of(&s, s.rows[i].project_id, &first);
        pc_trace_row r;
        pc_ch_spans_summary(s.rows + first, n, &r);
        if (cb(ud, &r) != 0) break;
        i = first + n;
    }
    keep_read(S, project_id, trace_id, &s);
    return 0;
}

/*
 * The attached events of one trace (clickhouse_events.h), in the answer's
 * order (span_id, then time): span_id and event of each row point into
 * |out|, which owns them.
 */
typedef struct trace_events {
    pc_buf out;
    char **span, **ev;
    size_t *len;
    size_t n;
    bool cut; /* the server stopped the answer at EVENTS_READ_BYTES */
    pc_span_cb cb; /* the caller's, for each merged row */
    void *ud;
    pc_span_events m;
} trace_events;

static void trace_events_free(trace_events *t)
{
    pc_buf_free(&t->out);
    free(t->span);
    free(t->ev);
    free(t->len);
    pc_span_events_free(&t->m);
}

/* The most bytes of attached events one trace read takes from the server
 * (max_result_bytes, result_overflow_mode=break: the server stops sending at
 * a block boundary past it); an answer that reached it marks every merged
 * span cut. Per span, span_events.c bounds the merge at
 * PC_SPAN_EVENTS_MAX_BYTES. */
#define EVENTS_READ_BYTES (64LL << 20)

/* Reads the events of trace (|project_id|, |trace_id|) into |t|. 0 / < 0. */
static int load_events(pc_ch_store *S, const char *project_id, const char *trace_id,
                       trace_events *t)
{
    pc_buf sql = PC_BUF_INIT;
    pc_ch_sql_trace_events(&sql, S->database, project_id ? project_id : "", trace_id);
    char extra[160];
    snprintf(extra, sizeof(extra), "%s&max_result_bytes=%lld&result_overflow_mode=break",
             PC_CH_READ_SETTINGS, EVENTS_READ_BYTES);
    int rc = pc_ch_store_run(S, sql.data, "get span events", extra, &t->out);
    pc_buf_free(&sql);
    if (rc < 0) return rc;
    t->cut = (long long)t->out.len >= EVENTS_READ_BYTES;
    size_t cap = (size_t)pc_ch_tsv_rows(&t->out);
    t->span = pc_xmalloc((cap + 1) * sizeof(char *));
    t->ev = pc_xmalloc((cap + 1) * sizeof(char *));
    t->len = pc_xmalloc((cap + 1) * sizeof(size_t));
    char *cur = t->out.data, *end = t->out.data + t->out.len, *cols[2];
    while (t->n < cap && pc_ch_tsv_row(&cur, end, cols, 2) == 2) {
        t->span[t->n] = cols[0];
        t->ev[t->n] = cols[1];
        t->len[t->n] = strlen(cols[1]);
        t->n++;
    }
    return 0;
}

/* Hands span |r| to the caller with the attached events of its span merged
 * (span_events.h). */
static int deliver_span(trace_events *t, pc_span_row *r)
{
    size_t lo = 0, hi = t->n; /* the first row of span r->span_id */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(t->span[mid], r->span_id) < 0) lo = mid + 1;
        else hi = mid;
    }
    size_t k = lo;
    while (k < t->n && strcmp(t->span[k], r->span_id) == 0)
        k++;
    if (k > lo) {
        size_t n = k - lo;
        bool cut = n > PC_SPAN_EVENTS_MAX || t->cut;
        pc_span_events_merge(&t->m, r, (const char *const *)t->ev + lo, t->len + lo,
                             cut ? PC_SPAN_EVENTS_MAX : n, cut);
    }
    return t->cb(t->ud, r);
}

static int merged_span_row(char **cols, void *cb, void *ud)
{
    (void)cb;
    pc_span_row r;
    pc_ch_read_span(cols, &r);
    return deliver_span(ud, &r);
}

/* Hands the page [|offset|, + |limit|) of the spans |s| of |project_id| to
 * |t|'s caller. */
static void deliver_kept(trace_events *t, const pc_ch_spans *s, const char *project_id,
                         int limit, int offset)
{
    size_t first, n = pc_ch_spans_of(s, project_id, &first);
    size_t from = offset > 0 ? (size_t)offset : 0, to = from + (size_t)(limit > 0 ? limit : 1);
    for (size_t i = from; i < n && i < to; i++) {
        pc_span_row r = s->rows[first + i];
        if (deliver_span(t, &r) != 0) break;
    }
}

static void get_spans_sql(pc_buf *out, const pc_ch_store *S, const lookup *l, const char *parts)
{
    pc_ch_sql_get_spans(out, S->database, l->project_id, l->trace_id, parts, l->limit, l->offset);
}

int pc_ch_store_get_spans(void *ctx, const char *project_id, const char *trace_id, int limit,
                          int offset, pc_span_cb cb, void *ud)
{
    pc_ch_store *S = ctx;
    trace_events t = {.out = PC_BUF_INIT, .cb = cb, .ud = ud, .m = PC_SPAN_EVENTS_INIT};
    int rc = load_events(S, project_id, trace_id, &t);
    if (rc < 0) {
        trace_events_free(&t);
        return rc;
    }
    /* spans of one project only */
    const char *project = project_id ? project_id : "";
    bool too_many;
    const pc_ch_spans *kept = kept_read(S, project, trace_id, &too_many);
    if (kept) {
        deliver_kept(&t, kept, project, limit, offset);
        trace_events_free(&t);
        return 0;
    }
    lookup l = {.project_id = project, .trace_id = trace_id, .what = "get spans",
                .limit = limit, .offset = offset, .sql = get_spans_sql};
    pc_ch_spans s;
    rc = too_many ? READ_TOO_MANY : read_whole(S, &l, &s);
    if (rc != READ_TOO_MANY) {
        if (rc == READ_WHOLE) {
            deliver_kept(&t, &s, project, limit, offset);
            pc_ch_spans_free(&s);
        }
        trace_events_free(&t);
        return rc < 0 ? rc : 0;
    }
    pc_buf out; /* the server's page */
    bool found, part_col;
    rc = read_lookup(S, &l, &out, &found, &part_col);
    int ncols = PC_CH_SPAN_COLS + part_col;
    if (rc == 0 && found)
        rc = t.n == 0 ? pc_ch_store_deliver(S, &out, l.what, ncols, span_row, (void *)cb, ud)
                      : pc_ch_store_deliver(S, &out, l.what, ncols, merged_span_row, NULL, &t);
    trace_events_free(&t);
    return rc;
}
