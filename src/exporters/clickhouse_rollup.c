/*
 * clickhouse_rollup.c - hour marks of an insert and the rollup builder of the
 * `clickhouse` store (see clickhouse_rollup.h; tables and reads in
 * clickhouse_stats.h).
 */
#include "clickhouse_rollup.h"

#include "clickhouse_stats.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "numfmt.h"
#include "sync.h"
#include "timefmt.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- marks -- */

/* One (hour, trace) an insert marks. */
typedef struct mark {
    uint32_t hour;
    pc_str trace;
} mark;

static int cmp_mark(const void *a, const void *b)
{
    const mark *x = a, *y = b;
    if (x->hour != y->hour) return x->hour < y->hour ? -1 : 1;
    size_t n = x->trace.n < y->trace.n ? x->trace.n : y->trace.n;
    int c = n ? memcmp(x->trace.p, y->trace.p, n) : 0;
    return c ? c : (x->trace.n > y->trace.n) - (x->trace.n < y->trace.n);
}

static bool same(const mark *x, const mark *y)
{
    return x->hour == y->hour && x->trace.n == y->trace.n &&
           (!x->trace.n || memcmp(x->trace.p, y->trace.p, x->trace.n) == 0);
}

void pc_ch_rollup_marks(const pc_batch *b, pc_ch_rows *marks)
{
    mark *m = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < b->n; i++) {
        const pc_span *s = &b->spans[i];
        if (s->carrier) continue;
        uint32_t lo = pc_ch_hour_of(s->start_ns);
        uint32_t hi = pc_ch_hour_of(s->end_ns > s->start_ns ? s->end_ns : s->start_ns);
        if (hi - lo >= PC_CH_MARK_HOURS) hi = lo + PC_CH_MARK_HOURS - 1;
        for (uint64_t x = lo; x <= hi; x++) {
            mark k = {(uint32_t)x, s->trace_id};
            if (n > 0 && same(&m[n - 1], &k)) continue; /* a trace's spans in a row: common */
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                m = pc_xrealloc(m, cap * sizeof(*m));
            }
            m[n++] = k;
        }
    }
    if (n > 1) qsort(m, n, sizeof(*m), cmp_mark);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && same(&m[i], &m[i - 1])) continue;
        size_t off = marks->text.len;
        char num[PC_NUMFMT_MAX];
        pc_buf_puts(&marks->text, "{\"hour\":");
        pc_buf_append(&marks->text, num, pc_fmt_i64(num, m[i].hour));
        pc_buf_puts(&marks->text, ",\"trace_id\":");
        pc_json_write_str(&marks->text, m[i].trace.p ? m[i].trace.p : "", m[i].trace.n);
        pc_buf_puts(&marks->text, "}\n");
        pc_ch_rows_add(marks, off, pc_ch_month((int64_t)m[i].hour * PC_CH_HOUR_NS), PC_STR_NULL,
                       m[i].trace, PC_STR_NULL);
    }
    free(m);
}

void pc_ch_insert_marks(pc_buf *out, const char *db)
{
    pc_buf_printf(out, "INSERT INTO `%s`.stats_marks (hour, trace_id) FORMAT JSONEachRow", db);
}

/* -------------------------------------------------------------- builder -- */

/* Hours a builder asks for at once, and how many failed hours it remembers. */
#define DUE_LIMIT 32
#define FAILED_MAX 64

struct pc_ch_rollup {
    pc_ch_http *http;
    char *db;
    long settle_s, period_ms, timeout_ms;
    uint64_t nonce;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    /* hours whose build failed, and until when (monotonic ns) they wait */
    int64_t failed[FAILED_MAX], failed_until[FAILED_MAX];
    size_t nfailed;
};

/* Runs |sql| (not read-only) bounded by the builder's timeout: 0 with the
 * answer in |out| (may be NULL), or -1 after logging |what|. */
static int run(pc_ch_rollup *R, const char *sql, const char *what, pc_buf *out)
{
    char settings[96];
    snprintf(settings, sizeof(settings), "max_execution_time=%ld&priority=2",
             (R->timeout_ms + 999) / 1000);
    CURL *h = pc_ch_http_acquire(R->http);
    pc_ch_reply r = {0};
    pc_ch_http_post(R->http, h, NULL, settings, sql, strlen(sql), false, R->timeout_ms + 1000,
                    &r);
    pc_ch_http_release(R->http, h);
    if (!pc_ch_reply_ok(&r)) return pc_ch_http_log_failure(R->http, &r, what);
    if (out)
        *out = r.body;
    else
        pc_buf_free(&r.body);
    return 0;
}

static bool waiting(pc_ch_rollup *R, int64_t hour, int64_t now)
{
    for (size_t i = 0; i < R->nfailed; i++)
        if (R->failed[i] == hour && R->failed_until[i] > now) return true;
    return false;
}

static void failed(pc_ch_rollup *R, int64_t hour, int64_t now)
{
    size_t slot = R->nfailed < FAILED_MAX ? R->nfailed++ : 0;
    for (size_t i = 0; i < R->nfailed; i++)
        if (R->failed[i] == hour || R->failed_until[i] <= now) slot = i;
    R->failed[slot] = hour;
    R->failed_until[slot] = now + 10 * R->period_ms * 1000000LL;
}

/* Builds |hour|: its version from the server's clock before it reads, its
 * rows, then the row that completes it (clickhouse_stats.h). 0 / -1. */
static int build(pc_ch_rollup *R, int64_t hour, const char *what)
{
    pc_buf sql = PC_BUF_INIT, out = PC_BUF_INIT;
    int rc = run(R, "SELECT toUInt64(now()) FORMAT TabSeparated", what, &out);
    uint64_t version = 0;
    if (rc == 0) {
        uint64_t secs = out.data ? strtoull(out.data, NULL, 10) : 0;
        version = secs << 20 | (R->nonce++ & 0xfffff);
        if (secs == 0) rc = -1;
    }
    if (rc == 0) {
        pc_ch_sql_rollup_build(&sql, R->db, hour, version);
        rc = run(R, sql.data, what, NULL);
    }
    if (rc == 0) {
        pc_buf_reset(&sql);
        pc_ch_sql_rollup_done(&sql, R->db, hour, version);
        rc = run(R, sql.data, what, NULL);
    }
    pc_buf_free(&sql);
    pc_buf_free(&out);
    return rc;
}

/* One round: the due hours, each built. */
static void build_due(pc_ch_rollup *R)
{
    pc_buf sql = PC_BUF_INIT, out = PC_BUF_INIT;
    pc_ch_sql_rollup_due(&sql, R->db, R->settle_s, DUE_LIMIT);
    int rc = run(R, sql.data, "stats rollups: cannot list the hours to build", &out);
    pc_buf_free(&sql);
    if (rc < 0) return;
    char *p = out.data, *end = out.data + out.len;
    while (p && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        int64_t hour = strtoll(p, NULL, 10);
        p = nl ? nl + 1 : end;
        int64_t now = pc_time_mono_ns();
        if (waiting(R, hour, now)) continue;
        pthread_mutex_lock(&R->mu);
        bool stop = R->stopping;
        pthread_mutex_unlock(&R->mu);
        if (stop) break;
        char what[96];
        snprintf(what, sizeof(what), "stats rollups: cannot build hour %lld", (long long)hour);
        if (build(R, hour, what) < 0) failed(R, hour, now);
    }
    pc_buf_free(&sql);
    pc_buf_free(&out);
}

static void *builder_main(void *arg)
{
    pc_ch_rollup *R = arg;
    pc_thread_name("ch-rollup");
    pthread_mutex_lock(&R->mu);
    while (!R->stopping) {
        int64_t wake = pc_time_mono_ns() + R->period_ms * 1000000LL;
        while (!R->stopping && pc_cond_wait_until(&R->cv, &R->mu, wake) == 0) {
        }
        if (R->stopping) break;
        pthread_mutex_unlock(&R->mu);
        build_due(R);
        pthread_mutex_lock(&R->mu);
    }
    pthread_mutex_unlock(&R->mu);
    return NULL;
}

pc_ch_rollup *pc_ch_rollup_create(pc_ch_http *http, const char *id, const char *db,
                                  long settle_s, long period_ms, long timeout_ms)
{
    pc_ch_rollup *R = pc_xcalloc(1, sizeof(*R));
    R->http = http;
    R->db = pc_xstrdup(db);
    R->settle_s = settle_s;
    R->period_ms = period_ms;
    R->timeout_ms = timeout_ms;
    R->nonce = (uint64_t)pc_time_now_ns() ^ ((uint64_t)getpid() << 7) ^ (uint64_t)(uintptr_t)R;
    pthread_mutex_init(&R->mu, NULL);
    pc_cond_init_mono(&R->cv);
    int rc = pthread_create(&R->thread, NULL, builder_main, R);
    if (rc != 0) {
        pc_log(PC_LOG_ERROR, id, "cannot start the stats rollup builder: %s", strerror(rc));
        pthread_mutex_destroy(&R->mu);
        pthread_cond_destroy(&R->cv);
        free(R->db);
        free(R);
        return NULL;
    }
    return R;
}

void pc_ch_rollup_destroy(pc_ch_rollup *R)
{
    if (!R) return;
    pthread_mutex_lock(&R->mu);
    R->stopping = true;
    pthread_cond_signal(&R->cv);
    pthread_mutex_unlock(&R->mu);
    pthread_join(R->thread, NULL);
    pthread_mutex_destroy(&R->mu);
    pthread_cond_destroy(&R->cv);
    free(R->db);
    free(R);
}
