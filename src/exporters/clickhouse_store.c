/*
 * clickhouse_store.c - the query store over ClickHouse (see
 * clickhouse_store.h): each store op builds its SELECTs (clickhouse_query.c),
 * runs them read-only and bounded, and parses the TabSeparated rows. A trace
 * lookup first finds the parts holding the trace (read_lookup), then reads
 * its spans' rows once and summarizes them here (st_get_trace).
 *
 * Data flow: query receiver → st_*() → pc_ch_store_run() → POST with URL settings
 * readonly=1 (the server refuses anything but reading, whatever the SQL
 * says) and max_execution_time = `query_timeout` (the server stops a runaway
 * query; curl waits a little longer for that answer) → rows → callbacks.
 *
 * Abandoned queries: every read carries a query_id of its own
 * ("prela-<nonce>-<n>"); when curl gives up on one (the server did not stop
 * it at max_execution_time, or did not answer), a KILL QUERY for that id is
 * sent at once, so the server stops working on an answer nobody waits for.
 * The same happens when the API client who asked hangs up: the query receiver
 * names its socket (store.h watch_client), and while a read waits, curl's
 * progress callback (pc_ch_http_watch) looks at that socket about once a
 * second; once the client has closed it, the transfer stops and the query is
 * killed, instead of running on until query_timeout.
 *
 * The other ops have modules of their own, which read with this file's
 * helpers (pc_ch_store_run and the others clickhouse_store.h declares):
 * lists clickhouse_store_list.c, sessions clickhouse_store_sessions.c,
 * search clickhouse_store_search.c, stats clickhouse_stats.c (at the
 * search's low priority: they may read a wide time range).
 */
#include "clickhouse_store.h"

#include "clickhouse_events.h"
#include "clickhouse_stats.h"
#include "clickhouse_store_list.h"
#include "clickhouse_store_search.h"
#include "clickhouse_store_sessions.h"
#include "clickhouse_summary.h"
#include "span_events.h"
#include "log.h"
#include "mem.h"
#include "timefmt.h"

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Grace curl gives the server past max_execution_time to answer with its error;
 * past it the query is killed (kill_query). */
#define QUERY_GRACE_MS 1000
/* What a KILL QUERY may take. */
#define KILL_TIMEOUT_MS 2000


/*
 * Runs the read-only statement |sql| (in the body) with a read handle, under
 * readonly=1, max_execution_time = query_timeout and the URL settings
 * |extra| ("a=1&b=2"). 0 with the answer in |out|, PC_STORE_TOO_BIG when the
 * server refused it past its memory limit for one query, PC_STORE_TIMEOUT when the
 * server or curl gave up at the time limit, or -1 after logging |what|
 * failed.
 * The modern dialect also asks the server to cancel the query when the
 * connection closes (cancel_http_readonly_queries_on_client_close, which
 * 18.16 does not know: an unknown setting fails the query there).
 */
/*
 * Asks the server to stop the query |query_id| (KILL QUERY ... ASYNC: the
 * server marks it cancelled; it stops at its next check). Logs a failure,
 * which changes nothing for the caller.
 */
static void kill_query(pc_ch_store *S, const char *query_id)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "KILL QUERY WHERE query_id = '%s' ASYNC FORMAT TabSeparated",
             query_id); /* the id is ours: [a-z0-9-] */
    CURL *h = pc_ch_http_acquire(S->http);
    pc_ch_reply r = {0};
    pc_ch_http_post(S->http, h, NULL, NULL, sql, strlen(sql), false, KILL_TIMEOUT_MS, &r);
    pc_ch_http_release(S->http, h);
    if (!pc_ch_reply_ok(&r))
        pc_ch_http_log_failure(S->http, &r, "cannot stop an abandoned query");
    else
        pc_buf_free(&r.body);
}

/* The socket of the API client the reads of this thread are for (-1: none;
 * st_watch_client). */
static __thread int client_fd = -1;

static void forget_parts(void);
static void forget_read(void);

static void st_watch_client(void *ctx, int fd)
{
    (void)ctx;
    client_fd = fd;
    forget_parts(); /* a request's found parts and read trace serve that request only */
    forget_read();
}

/* True once the peer of socket *|ud| has closed it (or it failed): POLLRDHUP
 * sees the close even behind unread bytes (a TLS close_notify). A client that
 * only half-closes (shutdown of its sending side) counts as gone too. */
static bool client_gone(void *ud)
{
    struct pollfd p = {.fd = *(int *)ud, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* True when a transfer that ended with |c| may have left its query running on
 * the server: the request went out and the answer did not come back whole (a
 * connection never made runs nothing, and costs no KILL). */
static bool may_run(CURLcode c)
{
    return c == CURLE_OPERATION_TIMEDOUT || c == CURLE_RECV_ERROR || c == CURLE_GOT_NOTHING ||
           c == CURLE_PARTIAL_FILE || c == CURLE_SEND_ERROR || c == CURLE_ABORTED_BY_CALLBACK ||
           c == CURLE_WRITE_ERROR;
}

int pc_ch_store_run(pc_ch_store *S, const char *sql, const char *what, const char *extra,
                   pc_buf *out)
{
    CURL *h = pc_ch_http_acquire(S->http);
    pc_ch_reply r = {0};
    char settings[320], query_id[64];
    long secs = S->query_timeout_s;
    snprintf(query_id, sizeof(query_id), "prela-%016llx-%llu", (unsigned long long)S->nonce,
             (unsigned long long)__atomic_add_fetch(&S->queries, 1, __ATOMIC_RELAXED));
    snprintf(settings, sizeof(settings),
             "query_id=%s&log_queries=1&wait_end_of_query=1&max_execution_time=%ld&readonly=1%s&%s",
             query_id, secs,
             S->dialect == PC_CH_MODERN ? "&cancel_http_readonly_queries_on_client_close=1" : "",
             extra);
    int fd = client_fd;
    if (fd >= 0) pc_ch_http_watch(client_gone, &fd);
    pc_ch_http_post(S->http, h, NULL, settings, sql, strlen(sql), false,
                    secs * 1000 + QUERY_GRACE_MS, &r);
    pc_ch_http_watch(NULL, NULL);
    pc_ch_http_release(S->http, h);
    if (may_run(r.curl)) kill_query(S, query_id); /* nobody waits for its answer now */
    if (r.curl == CURLE_ABORTED_BY_CALLBACK) {
        pc_log(PC_LOG_INFO, S->id, "%s: the API client closed its connection; read stopped",
               what);
        pc_buf_free(&r.body);
        return -1;
    }
    if (!pc_ch_reply_ok(&r) &&
        (r.curl == CURLE_OPERATION_TIMEDOUT ||
         (r.curl == CURLE_OK && pc_ch_error_code(&r) == 159 /* TIMEOUT_EXCEEDED */))) {
        pc_log(PC_LOG_WARN, S->id, "%s: stopped at the query time limit (%ld s)", what, secs);
        pc_buf_free(&r.body);
        return PC_STORE_TIMEOUT;
    }
    if (!pc_ch_reply_ok(&r) && r.curl == CURLE_OK &&
        pc_ch_error_code(&r) == 241 /* MEMORY_LIMIT_EXCEEDED */) {
        pc_log(PC_LOG_WARN, S->id, "%s: stopped at the server's memory limit for one query",
               what);
        pc_buf_free(&r.body);
        return PC_STORE_TOO_BIG;
    }
    if (!pc_ch_reply_ok(&r)) return pc_ch_http_log_failure(S->http, &r, what);
    *out = r.body;
    return 0;
}

int pc_ch_store_count_rows(const pc_buf *out)
{
    int n = 0;
    for (size_t i = 0; i < out->len; i++)
        n += out->data[i] == '\n';
    return n;
}

int pc_ch_store_deliver(pc_ch_store *S, pc_buf *out, const char *what, int ncols,
                        int (*row)(char **cols, void *cb, void *ud), void *cb, void *ud)
{
    int rc = 0;
    char *cur = out->data, *end = out->data + out->len, *cols[PC_CH_SPAN_COLS + 1];
    int n;
    while ((n = pc_ch_tsv_row(&cur, end, cols, ncols)) > 0) {
        if (n != ncols) {
            pc_log(PC_LOG_ERROR, S->id, "%s: expected %d columns, got %d", what, ncols, n);
            rc = -1;
            break;
        }
        if (row(cols, cb, ud) != 0) break;
    }
    pc_buf_free(out);
    return rc;
}

/* Runs |sql| with the URL settings |extra| and frees it; hands each
 * TabSeparated row of |ncols| columns to |row|. */
int pc_ch_store_each_row(pc_ch_store *S, pc_buf *sql, const char *what, const char *extra,
                         int ncols, int (*row)(char **cols, void *cb, void *ud), void *cb,
                         void *ud)
{
    pc_buf out;
    int rc = pc_ch_store_run(S, sql->data, what, extra, &out);
    pc_buf_free(sql);
    if (rc < 0) return rc;
    return pc_ch_store_deliver(S, &out, what, ncols, row, cb, ud);
}

int pc_ch_store_trace_row(char **cols, void *cb, void *ud)
{
    pc_trace_row r;
    pc_ch_read_trace(cols, &r);
    return ((pc_trace_cb)cb)(ud, &r);
}

static int span_row(char **cols, void *cb, void *ud)
{
    pc_span_row r;
    pc_ch_read_span(cols, &r);
    return ((pc_span_cb)cb)(ud, &r);
}

void pc_ch_named_read(pc_ch_named *k, pc_buf *text, int ncols, int id_col, int project_col)
{
    memset(k, 0, sizeof(*k));
    k->projects = pc_xmalloc((PC_CH_NAMED_MAX + 1) * sizeof(*k->projects));
    k->ids = pc_xmalloc((PC_CH_NAMED_MAX + 1) * sizeof(*k->ids));
    char *cur = text->data, *end = text->data + text->len, *cols[2]; /* |ncols| <= 2 */
    while (k->n <= PC_CH_NAMED_MAX && pc_ch_tsv_row(&cur, end, cols, ncols) == ncols) {
        k->projects[k->n] = project_col >= 0 ? cols[project_col] : NULL;
        k->ids[k->n++] = cols[id_col];
    }
    k->fit = k->n > 0 && k->n <= PC_CH_NAMED_MAX; /* none read: the subquery finds them */
}

bool pc_ch_named_sql_fits(pc_ch_named *k, pc_buf *sql)
{
    if (!k->fit || sql->len <= PC_CH_NAMED_SQL_BYTES) return true;
    k->fit = false;
    pc_buf_reset(sql);
    return false;
}

void pc_ch_named_free(pc_ch_named *k)
{
    free(k->projects);
    free(k->ids);
    memset(k, 0, sizeof(*k));
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
 * (client_fd set): its get trace and get spans find them once. The check
 * after each read keeps them right; st_watch_client forgets them at each
 * request's start and end, and reads outside a request (the tail
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
    if (client_fd < 0) return;
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
    if (client_fd >= 0 && last_found.trace && last_found.store == S &&
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
static int st_count_spans(void *ctx, const char *project_id, const char *trace_id, pc_trace_cb cb,
                          void *ud)
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
} lookup;

/* Runs SQL |sql| of |l| (freed here) into |out|. 0 / < 0. */
static int run_sql(pc_ch_store *S, const lookup *l, pc_buf *sql, pc_buf *out)
{
    int rc = pc_ch_store_run(S, sql->data, l->what, PC_CH_READ_SETTINGS, out);
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
 * A trace lookup (get trace) reads the rows of the trace's spans once, raw,
 * and summarizes them here (clickhouse_summary.h): one statement of plain
 * rows instead of two (the server's summary, then its page of spans), each
 * of which cost the server more to analyse than to read. The same request's
 * page of spans (handle_trace's get spans) is then served from those rows. A
 * trace of more than LOOKUP_ROWS_MAX rows is summarized and paged by the
 * server, as before.
 */
#define LOOKUP_ROWS_MAX 10000

/* The trace this thread's request last read whole, kept and forgotten as
 * last_found is. */
static __thread struct {
    const pc_ch_store *store;
    char *trace, *project; /* NULL trace: none kept; NULL project: every project's */
    pc_ch_spans spans;
} last_read;

static void forget_read(void)
{
    free(last_read.trace);
    free(last_read.project);
    pc_ch_spans_free(&last_read.spans);
    last_read.trace = last_read.project = NULL;
}

/* Keeps |s| (taken over) for the rest of the API request, or frees it. */
static void keep_read(const pc_ch_store *S, const char *project_id, const char *trace_id,
                      pc_ch_spans *s)
{
    forget_read();
    if (client_fd < 0) {
        pc_ch_spans_free(s);
        return;
    }
    last_read.store = S;
    last_read.trace = pc_xstrdup(trace_id);
    last_read.project = project_id ? pc_xstrdup(project_id) : NULL;
    last_read.spans = *s;
}

/* The spans the request read of trace (|project_id|, |trace_id|), NULL when
 * it did not read them whole. */
static const pc_ch_spans *kept_read(const pc_ch_store *S, const char *project_id,
                                    const char *trace_id)
{
    if (client_fd < 0 || !last_read.trace || last_read.store != S ||
        strcmp(last_read.trace, trace_id) != 0 ||
        (last_read.project && strcmp(last_read.project, project_id) != 0))
        return NULL;
    return &last_read.spans;
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

static int st_get_trace(void *ctx, const char *project_id, const char *trace_id, pc_trace_cb cb,
                        void *ud)
{
    pc_ch_store *S = ctx;
    lookup l = {.project_id = project_id, .trace_id = trace_id, .what = "get trace",
                .sql = trace_spans_sql};
    pc_buf out;
    bool found, part_col;
    int rc = read_lookup(S, &l, &out, &found, &part_col);
    if (rc < 0 || !found) return rc;
    if (pc_ch_store_count_rows(&out) > LOOKUP_ROWS_MAX) { /* the server's summary */
        pc_buf_free(&out);
        l.sql = get_trace_sql;
        rc = read_lookup(S, &l, &out, &found, &part_col);
        if (rc < 0 || !found) return rc;
        return pc_ch_store_deliver(S, &out, l.what, PC_CH_TRACE_COLS + part_col,
                                   pc_ch_store_trace_row, (void *)cb, ud);
    }
    pc_ch_spans s;
    if (pc_ch_spans_read(&s, &out, PC_CH_SPAN_COLS + part_col) < 0) {
        pc_log(PC_LOG_ERROR, S->id, "%s: a row without the %d columns asked for", l.what,
               PC_CH_SPAN_COLS + part_col);
        return -1;
    }
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
    size_t cap = (size_t)pc_ch_store_count_rows(&t->out);
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

/* Hands the page [|offset|, + |limit|) of the kept spans |s| of |project_id|
 * to |t|'s caller. */
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

static int st_get_spans(void *ctx, const char *project_id, const char *trace_id, int limit,
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
    const pc_ch_spans *kept = kept_read(S, project_id ? project_id : "", trace_id);
    if (kept) {
        deliver_kept(&t, kept, project_id ? project_id : "", limit, offset);
        trace_events_free(&t);
        return 0;
    }
    lookup l = {.project_id = project_id ? project_id : "", .trace_id = trace_id,
                .what = "get spans", .limit = limit, .offset = offset, .sql = get_spans_sql};
    pc_buf out;
    bool found, part_col;
    rc = read_lookup(S, &l, &out, &found, &part_col);
    int ncols = PC_CH_SPAN_COLS + part_col;
    if (rc == 0 && found)
        rc = t.n == 0 ? pc_ch_store_deliver(S, &out, l.what, ncols, span_row, (void *)cb, ud)
                      : pc_ch_store_deliver(S, &out, l.what, ncols, merged_span_row, NULL, &t);
    trace_events_free(&t);
    return rc;
}

/* Stats: clickhouse_stats.c. Its reads may cover a wide range: they run with
 * the search's low priority, so they never starve span reads and lists. */
static int st_stats(void *ctx, const pc_stats_query *q, pc_stats_cb cb, void *ud)
{
    return pc_ch_stats_read(ctx, q, cb, ud);
}

static int st_health(void *ctx, char *msg, int msglen)
{
    pc_ch_store *S = ctx;
    pc_buf out;
    if (pc_ch_store_run(S, "SELECT 1", "health", PC_CH_READ_SETTINGS, &out) < 0) {
        snprintf(msg, (size_t)msglen, "clickhouse: not reachable");
        return -1;
    }
    bool good = out.data && strncmp(out.data, "1", 1) == 0;
    pc_buf_free(&out);
    if (!good) snprintf(msg, (size_t)msglen, "clickhouse: unexpected answer to SELECT 1");
    return good ? 0 : -1;
}

static const pc_store_ops store_ops = {
    .list_traces = pc_ch_store_list,
    .get_trace = st_get_trace,
    .get_spans = st_get_spans,
    .count_spans = st_count_spans,
    .search = pc_ch_store_search,
    .list_sessions = pc_ch_store_sessions,
    .stats = st_stats,
    .health = st_health,
    .watch_client = st_watch_client,
};

void pc_ch_store_init(pc_ch_store *S, pc_ch_http *http, const char *id, const char *database,
                      int64_t query_timeout_ms)
{
    S->store.ops = &store_ops;
    S->store.ctx = S;
    S->http = http;
    S->id = id;
    S->database = database;
    S->query_timeout_s = (long)((query_timeout_ms + 999) / 1000);
    S->dialect = PC_CH_LEGACY; /* fewest settings until the server is known */
    S->nonce = (uint64_t)pc_time_now_ns() ^ ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)S;
    S->queries = 0;
    S->rollup_settle_s = -1;
}
