/*
 * clickhouse_store.c - the query store over ClickHouse (see
 * clickhouse_store.h): each store op builds its SELECTs (clickhouse_query.c),
 * runs them read-only and bounded, and parses the TabSeparated rows.
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
 * trace lookups clickhouse_store_lookup.c, lists clickhouse_store_list.c,
 * sessions clickhouse_store_sessions.c, search clickhouse_store_search.c,
 * stats clickhouse_stats.c (at the search's low priority: they may read a
 * wide time range).
 */
#include "clickhouse_store.h"

#include "clickhouse_query.h"
#include "clickhouse_stats.h"
#include "clickhouse_store_list.h"
#include "clickhouse_store_lookup.h"
#include "clickhouse_store_search.h"
#include "clickhouse_store_sessions.h"
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
 * server refused it past its memory limit for one query or past the answer's
 * size limits |extra| sets, PC_STORE_TIMEOUT when the
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
 * st_watch_client), and its request's arena (NULL: none). */
static __thread int client_fd = -1;
static __thread pc_arena *client_arena;

static void st_watch_client(void *ctx, int fd, pc_arena *arena)
{
    (void)ctx;
    client_fd = fd;
    client_arena = arena;
    pc_ch_store_lookup_request(fd >= 0);
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
    pc_ch_http_charge(client_arena);
    pc_ch_http_post(S->http, h, NULL, settings, sql, strlen(sql), false,
                    secs * 1000 + QUERY_GRACE_MS, &r);
    pc_ch_http_charge(NULL);
    pc_ch_http_watch(NULL, NULL);
    pc_ch_http_release(S->http, h);
    if (may_run(r.curl)) kill_query(S, query_id); /* nobody waits for its answer now */
    if (r.over_budget) {
        pc_log(PC_LOG_INFO, S->id, "%s: its answer passed the memory budget; read stopped", what);
        pc_buf_free(&r.body);
        return PC_STORE_OVER_BUDGET;
    }
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
    if (!pc_ch_reply_ok(&r) && r.curl == CURLE_OK &&
        pc_ch_error_code(&r) == 396 /* TOO_MANY_ROWS_OR_BYTES: the |extra| limits */) {
        pc_log(PC_LOG_INFO, S->id, "%s: its answer passed the size set for the read", what);
        pc_buf_free(&r.body);
        return PC_STORE_TOO_BIG;
    }
    if (!pc_ch_reply_ok(&r)) return pc_ch_http_log_failure(S->http, &r, what);
    *out = r.body;
    return 0;
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

void pc_ch_capped_settings(char *out, int rows, int bytes)
{
    snprintf(out, PC_CH_CAPPED_LEN,
             "%s&max_result_rows=%d&max_result_bytes=%d&result_overflow_mode=throw",
             PC_CH_READ_SETTINGS, rows, bytes);
}

bool pc_ch_capped_within(const pc_buf *answer, int rows, int bytes)
{
    return answer->len <= (size_t)bytes && pc_ch_tsv_rows(answer) <= rows;
}

int pc_ch_store_newest_below(pc_ch_store *S, const char *project_id, int64_t start_ns,
                             int64_t below, int64_t width, int64_t *newest)
{
    for (int64_t span = width;;) {
        span = span < PC_CH_WINDOW_MAX / 16 ? span * 16 : PC_CH_WINDOW_MAX;
        int64_t floor = span < PC_CH_WINDOW_MAX && below > INT64_MIN + span ? below - span
                                                                             : INT64_MIN;
        if (start_ns && floor < start_ns) floor = start_ns;
        pc_buf sql = PC_BUF_INIT, out;
        pc_ch_sql_list_newest(&sql, S->database, project_id, floor, below);
        int rc = pc_ch_store_run(S, sql.data, "find the newest traces", PC_CH_READ_SETTINGS,
                                 &out);
        pc_buf_free(&sql);
        if (rc < 0) return rc;
        char *cur = out.data, *cols[3];
        long long max = 0, count = 0;
        if (pc_ch_tsv_row(&cur, out.data + out.len, cols, 3) == 2) {
            max = strtoll(cols[0], NULL, 10);
            count = strtoll(cols[1], NULL, 10);
        }
        pc_buf_free(&out);
        if (count > 0) {
            *newest = max;
            return 1;
        }
        if (floor == INT64_MIN || (start_ns && floor <= start_ns)) return 0;
        below = floor;
    }
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
    .get_trace = pc_ch_store_get_trace,
    .get_spans = pc_ch_store_get_spans,
    .count_spans = pc_ch_store_count_spans,
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
