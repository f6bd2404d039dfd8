/*
 * test_clickhouse_poison.c - the pure parts of the `clickhouse` exporter's
 * poison isolation, no server: the error classifier (clickhouse_http.c) over
 * replies as ClickHouse sends them (code in the body, in the
 * X-ClickHouse-Exception-Code header, or none), the rows of an insert with
 * their partitions and the grouping into blocks of at most N partitions
 * (clickhouse_rows.c), and the dead-letter file (deadletter.c): JSON lines
 * parsed back, fsync'ed, rotated by size, counted. The bisection against a
 * real engine is tests/integration/test_poison.py.
 */
#include "check.h"

#include "arena.h"
#include "exporters/clickhouse_http.h"
#include "exporters/clickhouse_rows.h"
#include "exporters/deadletter.h"
#include "json.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ----------------------------------------------------------- classifier -- */

static pc_ch_error_class classify(CURLcode curl, long status, const char *body, int header)
{
    pc_ch_reply r = {.curl = curl, .status = status, .exception_code = header};
    if (body) pc_buf_puts(&r.body, body);
    pc_ch_error_class c = pc_ch_classify(&r);
    pc_buf_free(&r.body);
    return c;
}

static void test_classify(void)
{
    /* Network and timeouts: transient. */
    CHECK_EQ_INT(classify(CURLE_COULDNT_CONNECT, 0, NULL, 0), PC_CH_ERR_TRANSIENT);
    CHECK_EQ_INT(classify(CURLE_OPERATION_TIMEDOUT, 0, NULL, 0), PC_CH_ERR_TRANSIENT);
    CHECK_EQ_INT(classify(CURLE_OK, 503, "Service Unavailable", 0), PC_CH_ERR_TRANSIENT);
    CHECK_EQ_INT(classify(CURLE_OK, 500, "", 0), PC_CH_ERR_TRANSIENT);
    CHECK_EQ_INT(classify(CURLE_OK, 500,
                          "Code: 202. DB::Exception: Too many simultaneous "
                          "queries. Maximum: 100. (TOO_MANY_SIMULTANEOUS_QUERIES)",
                          0),
                 PC_CH_ERR_TRANSIENT);
    CHECK_EQ_INT(classify(CURLE_OK, 500,
                          "Code: 241. DB::Exception: Memory limit (total) "
                          "exceeded. (MEMORY_LIMIT_EXCEEDED)",
                          0),
                 PC_CH_ERR_TRANSIENT);
    CHECK_EQ_INT(classify(CURLE_OK, 500, "Code: 159. Timeout exceeded", 0), PC_CH_ERR_TRANSIENT);
    /* 252 means two things: merges behind (transient) or one block over too
     * many partitions (the block's data). */
    CHECK_EQ_INT(classify(CURLE_OK, 500,
                          "Code: 252. DB::Exception: Too many parts (300). Merges "
                          "are processing significantly slower than inserts",
                          0),
                 PC_CH_ERR_TRANSIENT);
    CHECK_EQ_INT(classify(CURLE_OK, 500,
                          "Code: 252. DB::Exception: Too many partitions for "
                          "single INSERT block (more than 100). (TOO_MANY_PARTS)",
                          0),
                 PC_CH_ERR_DATA);
    /* Rows the server refuses. */
    CHECK_EQ_INT(classify(CURLE_OK, 500,
                          "Code: 469. DB::Exception: Constraint `c` for table "
                          "prela.spans is violated at row 3. (VIOLATED_CONSTRAINT)",
                          0),
                 PC_CH_ERR_DATA);
    CHECK_EQ_INT(classify(CURLE_OK, 400, "Code: 27. DB::Exception: Cannot parse input", 0),
                 PC_CH_ERR_DATA);
    CHECK_EQ_INT(classify(CURLE_OK, 400, "Code: 117. INCORRECT_DATA", 0), PC_CH_ERR_DATA);
    CHECK_EQ_INT(classify(CURLE_OK, 413, "Request Entity Too Large", 0), PC_CH_ERR_DATA);
    CHECK_EQ_INT(classify(CURLE_OK, 400, "", 0), PC_CH_ERR_DATA);
    /* The setup: fatal. */
    CHECK_EQ_INT(classify(CURLE_OK, 401, "", 0), PC_CH_ERR_FATAL);
    CHECK_EQ_INT(classify(CURLE_OK, 500,
                          "Code: 516. DB::Exception: default: Authentication "
                          "failed",
                          0),
                 PC_CH_ERR_FATAL);
    CHECK_EQ_INT(classify(CURLE_OK, 404,
                          "Code: 60. DB::Exception: Table prela.spans does not "
                          "exist. (UNKNOWN_TABLE)",
                          0),
                 PC_CH_ERR_FATAL);
    CHECK_EQ_INT(classify(CURLE_OK, 500, "Code: 81. Database x does not exist", 0),
                 PC_CH_ERR_FATAL);
    CHECK_EQ_INT(classify(CURLE_OK, 500, "Code: 164. READONLY", 0), PC_CH_ERR_FATAL);
    CHECK_EQ_INT(classify(CURLE_PEER_FAILED_VERIFICATION, 0, NULL, 0), PC_CH_ERR_FATAL);
    /* The header wins over the body, and works without one. */
    CHECK_EQ_INT(classify(CURLE_OK, 500, "something else entirely", 469), PC_CH_ERR_DATA);
    CHECK_EQ_INT(classify(CURLE_OK, 500, "Code: 469. violated", 241), PC_CH_ERR_TRANSIENT);
    CHECK_EQ_INT(classify(CURLE_OK, 500, "", 60), PC_CH_ERR_FATAL);
    pc_ch_reply r = {.curl = CURLE_OK, .status = 500, .exception_code = 252};
    CHECK_EQ_INT(pc_ch_error_code(&r), 252);
    CHECK_EQ_STR(pc_ch_error_class_name(PC_CH_ERR_DATA), "data");
    CHECK_EQ_STR(pc_ch_error_class_name(PC_CH_ERR_FATAL), "fatal");
    CHECK_EQ_STR(pc_ch_error_class_name(PC_CH_ERR_TRANSIENT), "transient");
}

/* ----------------------------------------------------------------- rows -- */

static pc_str S(const char *s)
{
    return (pc_str){s, strlen(s)};
}

/* Adds a row {"m":month,"i":i} in |month| to |r|. */
static void add(pc_ch_rows *r, int32_t month, int i)
{
    size_t off = r->text.len;
    pc_buf_printf(&r->text, "{\"m\":%d,\"i\":%d}\n", (int)month, i);
    char tid[32];
    snprintf(tid, sizeof(tid), "t%d", i);
    pc_ch_rows_add(r, off, month, S("proj"), S(tid), i % 2 ? S("s") : PC_STR_NULL);
}

static int32_t month_plus(int32_t m, int k)
{
    int y = m / 100, mo = m % 100 - 1 + k;
    return (int32_t)((y + mo / 12) * 100 + mo % 12 + 1);
}

static void test_month(void)
{
    CHECK_EQ_INT(pc_ch_month(0), 197001);
    CHECK_EQ_INT(pc_ch_month(1737972000123456789LL), 202501); /* 2025-01-27 */
    CHECK_EQ_INT(pc_ch_month(1738367999999999999LL), 202501); /* 2025-01-31T23:59:59.9 */
    CHECK_EQ_INT(pc_ch_month(1738368000000000000LL), 202502); /* 2025-02-01T00:00:00 */
    CHECK_EQ_INT(pc_ch_month(INT64_MAX), 226204);
    CHECK_EQ_INT(month_plus(202511, 3), 202602);
}

static void test_partition_groups(void)
{
    pc_ch_rows r = PC_CH_ROWS_INIT;
    size_t idx[400], ends[400];
    CHECK_EQ_INT(pc_ch_rows_partition_groups(&r, 40, idx, ends), 0);

    /* 101 months, interleaved, three rows each (303 rows): groups of <= 40
     * partitions, every row once, rows of one month together and in order. */
    for (int rep = 0; rep < 3; rep++)
        for (int k = 0; k < 101; k++)
            add(&r, month_plus(201801, (k * 37) % 101), rep * 101 + k);
    CHECK_EQ_INT(r.n, 303);
    size_t ng = pc_ch_rows_partition_groups(&r, 40, idx, ends);
    CHECK_EQ_INT(ng, 3);
    CHECK_EQ_INT(ends[ng - 1], 303);
    int seen[303] = {0};
    size_t from = 0;
    int32_t last_month = 0;
    for (size_t g = 0; g < ng; g++) {
        int parts = 0;
        for (size_t j = from; j < ends[g]; j++) {
            const pc_ch_row *row = &r.v[idx[j]];
            if (j == from || row->month != r.v[idx[j - 1]].month) parts++;
            CHECK(row->month >= last_month); /* sorted, so no month spans two groups */
            if (j > from && row->month == r.v[idx[j - 1]].month) CHECK(idx[j] > idx[j - 1]);
            last_month = row->month;
            seen[idx[j]]++;
        }
        CHECK(parts <= 40 && parts >= 1);
        from = ends[g];
    }
    for (int i = 0; i < 303; i++)
        CHECK_EQ_INT(seen[i], 1);

    /* One partition per block. */
    CHECK_EQ_INT(pc_ch_rows_partition_groups(&r, 1, idx, ends), 101);
    /* Everything in one block when the limit allows. */
    CHECK_EQ_INT(pc_ch_rows_partition_groups(&r, 99, idx, ends), 2);

    /* The body of a few rows: their lines in the order given. */
    pc_buf body = PC_BUF_INIT;
    size_t pick[2] = {5, 1};
    pc_ch_rows_body(&r, pick, 2, &body);
    char want[128];
    snprintf(want, sizeof(want), "{\"m\":%d,\"i\":5}\n{\"m\":%d,\"i\":1}\n", r.v[5].month,
             r.v[1].month);
    CHECK_EQ_STR(body.data, want);

    /* Ids of a row, and append keeps them. */
    CHECK_EQ_STR(pc_ch_row_project(&r, 7), "proj");
    CHECK_EQ_STR(pc_ch_row_trace(&r, 7), "t7");
    CHECK_EQ_STR(pc_ch_row_span(&r, 7), "s");
    CHECK_EQ_STR(pc_ch_row_span(&r, 8), "");
    pc_ch_rows all = PC_CH_ROWS_INIT;
    pc_ch_rows_append(&all, &r);
    pc_ch_rows_append(&all, &r);
    CHECK_EQ_INT(all.n, 606);
    CHECK_EQ_STR(pc_ch_row_trace(&all, 303 + 7), "t7");
    size_t one = 303 + 5;
    pc_ch_rows_body(&all, &one, 1, &body);
    snprintf(want, sizeof(want), "{\"m\":%d,\"i\":5}\n", r.v[5].month);
    CHECK_EQ_STR(body.data, want);
    pc_buf_free(&body);
    pc_ch_rows_free(&all);
    pc_ch_rows_free(&r);
}

/* ---------------------------------------------------------- dead letter -- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    pc_buf b = PC_BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        pc_buf_append(&b, tmp, n);
    fclose(f);
    pc_buf_append(&b, "", 0);
    return b.data ? pc_buf_steal(&b, NULL) : calloc(1, 1);
}

/* pc_ch_rows_move (swap into an empty insert, copy into a filled one) and
 * pc_ch_rows_text_body (a block sent from the rows' own text) give the same
 * bodies as pc_ch_rows_body. */
static void test_move_and_text_body(void)
{
    pc_ch_rows a = PC_CH_ROWS_INIT, b = PC_CH_ROWS_INIT, dst = PC_CH_ROWS_INIT;
    for (int i = 0; i < 5; i++) add(&a, 202501, i);
    for (int i = 5; i < 8; i++) add(&b, 202502, i);
    pc_ch_rows_move(&dst, &a); /* empty: takes a's blocks */
    CHECK_EQ_INT(dst.n, 5);
    CHECK_EQ_INT(a.n, 0);
    CHECK_EQ_INT(a.text.len, 0);
    pc_ch_rows_move(&dst, &b); /* filled: appends */
    CHECK_EQ_INT(dst.n, 8);
    CHECK_EQ_INT(b.n, 0);
    CHECK_EQ_STR(pc_ch_row_trace(&dst, 7), "t7");
    CHECK_EQ_STR(pc_ch_row_span(&dst, 5), "s");
    size_t all[8] = {0, 1, 2, 3, 4, 5, 6, 7}, gap[2] = {2, 4}, back[2] = {3, 2};
    pc_buf want = PC_BUF_INIT;
    const char *p;
    size_t n;
    CHECK(pc_ch_rows_text_body(&dst, all, 8, &p, &n));
    pc_ch_rows_body(&dst, all, 8, &want);
    CHECK(n == want.len && !memcmp(p, want.data, n));
    CHECK(pc_ch_rows_text_body(&dst, all + 3, 4, &p, &n));
    pc_ch_rows_body(&dst, all + 3, 4, &want);
    CHECK(n == want.len && !memcmp(p, want.data, n));
    CHECK_EQ_STR(want.data, "{\"m\":202501,\"i\":3}\n{\"m\":202501,\"i\":4}\n"
                            "{\"m\":202502,\"i\":5}\n{\"m\":202502,\"i\":6}\n");
    CHECK(!pc_ch_rows_text_body(&dst, gap, 2, &p, &n));  /* not consecutive */
    CHECK(!pc_ch_rows_text_body(&dst, back, 2, &p, &n)); /* not in order */
    pc_ch_rows_reset(&dst);
    CHECK_EQ_INT(dst.n, 0);
    CHECK(dst.text.cap > 0); /* blocks kept for reuse */
    pc_buf_free(&want);
    pc_ch_rows_free(&a);
    pc_ch_rows_free(&b);
    pc_ch_rows_free(&dst);
}

/* A dead-lettered span's trace: its trace rows' merge keys cleared (schema 8:
 * its list pages come from the spans), the other traces' rows untouched. */
static void test_unmerge(void)
{
    pc_ch_rows r = PC_CH_ROWS_INIT;
    const char *lines[] = {"{\"trace_id\":\"a\",\"merge_keys\":1}",
                           "{\"trace_id\":\"b\",\"merge_keys\":1}",
                           "{\"trace_id\":\"a\",\"merge_keys\":1}",
                           "{\"trace_id\":\"a\",\"merge_keys\":1}"};
    const char *projects[] = {"p", "p", "q", "p"};
    for (int i = 0; i < 4; i++) {
        size_t off = r.text.len;
        pc_buf_printf(&r.text, "%s\n", lines[i]);
        pc_ch_rows_add(&r, off, 202501, S(projects[i]), S(i == 1 ? "b" : "a"), PC_STR_NULL);
    }
    CHECK_EQ_INT(pc_ch_rows_unmerge(&r, "p", "a"), 2);
    CHECK_EQ_STR(r.text.data, "{\"trace_id\":\"a\",\"merge_keys\":0}\n"
                              "{\"trace_id\":\"b\",\"merge_keys\":1}\n"
                              "{\"trace_id\":\"a\",\"merge_keys\":1}\n"
                              "{\"trace_id\":\"a\",\"merge_keys\":0}\n");
    CHECK_EQ_INT(pc_ch_rows_unmerge(&r, "p", "a"), 0); /* once */
    CHECK_EQ_INT(pc_ch_rows_unmerge(&r, "p", "c"), 0);
    pc_ch_rows_free(&r);
}

static void test_dead_letter(void)
{
    char dir[] = "/tmp/pc-dl-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/a/b", dir); /* created on the way */
    char err[256];
    pc_deadletter *D = pc_deadletter_create(sub, "deadletter-ch", 4096, 2, err, sizeof(err));
    CHECK(D != NULL);
    CHECK_EQ_INT(pc_deadletter_count(D), 0);
    struct stat st;
    CHECK(stat(sub, &st) != 0); /* nothing on disk before the first row */
    const char *row = "{\"trace_id\":\"t1\",\"name\":\"bad \\\"one\\\"\"}";
    pc_deadletter_entry e = {.reason = "HTTP 500: Code: 469. \"violated\"\n",
                             .code = 469,
                             .table = "spans",
                             .project_id = "p-bad",
                             .trace_id = "t1",
                             .span_id = "s1",
                             .row = row,
                             .row_len = strlen(row)};
    CHECK_EQ_INT(pc_deadletter_put(D, &e, "test"), 0);
    CHECK_EQ_INT(pc_deadletter_count(D), 1);

    char *text = slurp(pc_deadletter_path(D));
    CHECK(text && strchr(text, '\n') == text + strlen(text) - 1); /* one line */
    pc_arena *a = pc_arena_create(4096);
    pc_value v;
    pc_json_error je;
    CHECK_EQ_INT(pc_json_parse(a, text, strlen(text), &v, &je), 0);
    CHECK_EQ_PSTR(pc_json_get(&v, "reason")->s, "HTTP 500: Code: 469. \"violated\"\n");
    CHECK_EQ_INT(pc_json_get(&v, "code")->i, 469);
    CHECK_EQ_PSTR(pc_json_get(&v, "table")->s, "spans");
    CHECK_EQ_PSTR(pc_json_get(&v, "project_id")->s, "p-bad");
    CHECK_EQ_PSTR(pc_json_get(&v, "trace_id")->s, "t1");
    CHECK_EQ_PSTR(pc_json_get(&v, "span_id")->s, "s1");
    CHECK_EQ_PSTR(pc_json_get(pc_json_get(&v, "row"), "name")->s, "bad \"one\"");
    CHECK(pc_json_get(&v, "time") != NULL);
    free(text);
    pc_arena_destroy(a);

    /* Past 4096 bytes the file rotates; two rotated files are kept. */
    for (int i = 0; i < 60; i++)
        CHECK_EQ_INT(pc_deadletter_put(D, &e, "test"), 0);
    CHECK_EQ_INT(pc_deadletter_count(D), 61);
    char p1[256], p2[256], p3[256];
    snprintf(p1, sizeof(p1), "%s.1", pc_deadletter_path(D));
    snprintf(p2, sizeof(p2), "%s.2", pc_deadletter_path(D));
    snprintf(p3, sizeof(p3), "%s.3", pc_deadletter_path(D));
    CHECK(stat(pc_deadletter_path(D), &st) == 0 && st.st_size <= 4096);
    CHECK(stat(p1, &st) == 0 && st.st_size <= 4096 && st.st_size > 2048);
    CHECK(stat(p2, &st) == 0);
    CHECK(stat(p3, &st) != 0);
    pc_deadletter_destroy(D);

    /* Reopening appends to the current file. */
    D = pc_deadletter_create(sub, "deadletter-ch", 4096, 2, err, sizeof(err));
    CHECK(D != NULL);
    off_t before = stat(pc_deadletter_path(D), &st) == 0 ? st.st_size : -1;
    CHECK_EQ_INT(pc_deadletter_put(D, &e, "test"), 0);
    CHECK(stat(pc_deadletter_path(D), &st) == 0 && (st.st_size > before || before > 2048));
    char path[256];
    snprintf(path, sizeof(path), "%s", pc_deadletter_path(D));
    pc_deadletter_destroy(D);
    unlink(path);
    unlink(p1);
    unlink(p2);

    /* A directory that cannot be made: the put fails (the caller keeps the row). */
    D = pc_deadletter_create("/proc/no/such", "x", 4096, 1, err, sizeof(err));
    CHECK(D != NULL);
    CHECK_EQ_INT(pc_deadletter_put(D, &e, "test"), -1);
    CHECK_EQ_INT(pc_deadletter_put(D, &e, "test"), -1);
    CHECK_EQ_INT(pc_deadletter_count(D), 0);
    pc_deadletter_destroy(D);
    CHECK(pc_deadletter_create("", "x", 4096, 1, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "directory") != NULL);
    snprintf(path, sizeof(path), "%s/a", dir);
    rmdir(sub);
    rmdir(path);
    rmdir(dir);
}

int main(void)
{
    RUN(test_classify);
    RUN(test_month);
    RUN(test_partition_groups);
    RUN(test_move_and_text_body);
    RUN(test_unmerge);
    RUN(test_dead_letter);
    return CHECK_DONE();
}
