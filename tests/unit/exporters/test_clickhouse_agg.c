/*
 * test_clickhouse_agg.c - the SQL text of the `clickhouse` store's issue 13
 * reads, no server: the session list and its span sums (clickhouse_agg.c),
 * the stats and their hour rollups (clickhouse_stats.c, and the hours an
 * insert marks: clickhouse_rollup.c), the new trace list filters and the attribute match
 * (clickhouse_query.c), and their TabSeparated readers. Every user value is
 * hostile here (quotes, backslashes, SQL, control bytes, odd UTF-8, huge
 * numbers) and must reach the SQL only as an escaped literal. The engines
 * run the same statements in tests/integration/test_clickhouse.py and
 * test_llm_views.py.
 */
#include "check.h"

#include "exporters/clickhouse_agg.h"
#include "exporters/clickhouse_query.h"
#include "exporters/clickhouse_rollup.h"
#include "exporters/clickhouse_stats.h"
#include "exporters/clickhouse_tsv.h"
#include "histo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has(const pc_buf *b, const char *s)
{
    bool ok = b->data && strstr(b->data, s) != NULL;
    if (!ok) fprintf(stderr, "missing \"%s\" in: %s\n", s, b->data ? b->data : "(null)");
    return ok;
}

/* The number of times |s| occurs in |b|. */
static int count(const pc_buf *b, const char *s)
{
    int n = 0;
    for (const char *p = b->data; p && (p = strstr(p, s)); p += strlen(s))
        n++;
    return n;
}

/* True when every single quote of |sql| outside a literal is a delimiter:
 * walking the text, quotes pair up and a backslash inside a literal escapes
 * the next byte; no byte outside a literal is a control byte or non-ASCII. */
static bool literals_closed(const pc_buf *b)
{
    bool in = false;
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];
        if (in && c == '\\') {
            i++;
            continue;
        }
        if (c == '\'') in = !in;
        if (c < 0x20 || c >= 0x7f) return false; /* pc_ch_quote writes \xHH */
    }
    return !in;
}

#define EVIL "x' OR 1=1) --\\"
#define EVIL_Q "'x\\' OR 1=1) --\\\\'"
#define ODD "\xc3\xbc\xe2\x80\xae\x01'" /* ü, RIGHT-TO-LEFT OVERRIDE, a control byte, a quote */
#define ODD_Q "'\\xC3\\xBC\\xE2\\x80\\xAE\\x01\\''"

static void test_list_filters(void)
{
    pc_buf b = PC_BUF_INIT;
    pc_trace_filter f = {.project_id = "p", .session_id = EVIL, .user_id = ODD, .model = EVIL,
                         .limit = 5};
    pc_ch_sql_list_window(&b, PC_CH_MODERN, "db", &f, 100, 200, PC_CH_WINDOW_SLACK, NULL, NULL, 0);
    CHECK(literals_closed(&b));
    /* the rows carrying the value, found by the skip indexes, from the window's edge on */
    CHECK(has(&b, "AND trace_id IN (SELECT trace_id FROM `db`.traces WHERE project_id = 'p' AND"
                  " started_ns >= 100 AND session_id = " EVIL_Q ")"));
    CHECK(has(&b, "started_ns >= 100 AND user_id = " ODD_Q ")"));
    CHECK(has(&b, "started_ns >= 100 AND has(models, " EVIL_Q "))"));
    /* exact on the merged rows */
    CHECK(has(&b, "minIf(session_id, session_id != '') = " EVIL_Q));
    CHECK(has(&b, "minIf(user_id, user_id != '') = " ODD_Q));
    CHECK(has(&b, "max(has(models, " EVIL_Q ")) = 1"));
    /* and again on the deduplicated spans */
    CHECK(has(&b, "AND t_session = " EVIL_Q " AND t_user = " ODD_Q));
    CHECK(has(&b, "AND countIf(llm_model = " EVIL_Q " OR llm_request_model = " EVIL_Q ") > 0"));
    CHECK(!strstr(b.data, "attributes")); /* no attribute read without an attr filter */
    CHECK(!pc_ch_filter_inexact(&f));
    pc_buf_reset(&b);

    /* min_cost: an upper bound on the rows, the exact cost on the spans; a
     * deep offset stays on the checked rows (the candidates are a superset) */
    pc_trace_filter g = {.min_cost = 1e308, .limit = 3, .offset = 500};
    CHECK(pc_ch_filter_inexact(&g));
    pc_ch_sql_list_window(&b, PC_CH_LEGACY, "db", &g, INT64_MIN, INT64_MAX, 64, NULL, NULL, 0);
    CHECK(has(&b, "AND sum(cost_usd) >= 9.9999999899999999e+307 ORDER BY min(started_ns) DESC, trace_id DESC,"
                  " project_id DESC LIMIT 0, 567)"));
    CHECK(has(&b, "AND t_cost >= 1e+308 ORDER BY t_started DESC"));
    CHECK(has(&b, "LIMIT 500, 3 FORMAT TabSeparated"));
    /* known costs added in "first" order, one by one: the same digits on every read */
    CHECK(has(&b, "if(count(cost_usd) > 0, arraySum(arrayMap(x -> x.4, arraySort(groupArrayIf("
                  "(created_ns, start_ns, span_id, assumeNotNull(cost_usd)), isNotNull(cost_usd)"
                  ")))), nan) AS t_cost"));
    pc_buf_reset(&b);
    pc_ch_sql_list_candidates(&b, "db", &g, 7, 9, 64);
    CHECK(has(&b, "SELECT project_id, trace_id FROM `db`.traces WHERE 1 AND"));
    CHECK(has(&b, "LIMIT 0, 567 FORMAT TabSeparated"));
    pc_buf_reset(&b);
    g.min_cost = 0.1; /* a hair below on the rows (18.16 may parse a cost an ulp low) */
    pc_ch_sql_list_window(&b, PC_CH_LEGACY, "db", &g, INT64_MIN, INT64_MAX, 8, NULL, NULL, 0);
    CHECK(has(&b, "sum(cost_usd) >= 0.099999999900000011 "));
    pc_buf_free(&b);
}

static void test_attr_match(void)
{
    pc_buf b = PC_BUF_INIT;
    pc_trace_filter f = {.attr_key = "k\"'\\", .attr_value = EVIL, .limit = 2};
    CHECK(pc_ch_filter_inexact(&f));
    pc_ch_sql_list_window(&b, PC_CH_MODERN, "db", &f, INT64_MIN, INT64_MAX, 8, NULL, NULL, 0);
    CHECK(literals_closed(&b));
    /* modern: the key as it is (JSON functions decode the text), top level only */
    CHECK(has(&b, "countIf((JSONHas(attributes, 'k\"\\'\\\\') AND (JSONExtractRaw(attributes,"
                  " 'k\"\\'\\\\') = " EVIL_Q " OR (JSONType(attributes, 'k\"\\'\\\\') = 'String'"
                  " AND JSONExtractString(attributes, 'k\"\\'\\\\') = " EVIL_Q ")))) > 0"));
    CHECK(has(&b, ", attributes FROM `db`.spans")); /* read only for this filter */
    pc_buf_reset(&b);
    /* 18.16: the key as span.h's encoder writes it in the text: \" and \\ */
    pc_ch_sql_attr_match(&b, PC_CH_LEGACY, "k\"'\\", "v");
    CHECK(literals_closed(&b));
    CHECK(has(&b, "visitParamHas(attributes, 'k\\\\\"\\'\\\\\\\\')"));
    CHECK(has(&b, "visitParamExtractRaw(attributes, 'k\\\\\"\\'\\\\\\\\') = 'v'"));
    CHECK(has(&b, "OR visitParamExtractString(attributes, 'k\\\\\"\\'\\\\\\\\') = 'v'))"));
    pc_buf_reset(&b);
    pc_ch_sql_attr_match(&b, PC_CH_LEGACY, "k", ""); /* "" matches the empty string only */
    CHECK(has(&b, "OR visitParamExtractRaw(attributes, 'k') = '\"\"'))"));
    CHECK(!strstr(b.data, "visitParamExtractString"));
    pc_buf_reset(&b);
    pc_ch_sql_attr_match(&b, PC_CH_LEGACY, ODD, ODD); /* UTF-8 and control bytes as \xHH */
    CHECK(literals_closed(&b));
    CHECK(has(&b, "= " ODD_Q));
    pc_buf_free(&b);
}

static void test_sessions(void)
{
    pc_buf b = PC_BUF_INIT;
    pc_session_filter f = {.project_id = EVIL, .session_id = ODD, .user_id = EVIL,
                           .start_ns = 5, .end_ns = INT64_MAX, .limit = 1000, .offset = 10000};
    pc_ch_sql_sessions(&b, "db", &f, 7); /* one session: no window, no user pre-selection */
    CHECK(literals_closed(&b));
    CHECK_EQ_INT(count(&b, "project_id = " EVIL_Q), 2);
    CHECK(has(&b, "WHERE project_id = " EVIL_Q " AND session_id = " ODD_Q ")"));
    CHECK(has(&b, "HAVING t_session != '' AND t_session = " ODD_Q));
    CHECK(has(&b, "HAVING 1 AND countIf(t_user = " EVIL_Q ") > 0 AND s_last >= 5 AND"
                  " s_first <= 9223372036854775807"));
    CHECK(has(&b, "ORDER BY s_last DESC, t_session DESC, project_id DESC LIMIT 10000, 1000"));
    CHECK(!strstr(b.data, "started_ns >=") && !strstr(b.data, "c_session"));
    pc_buf_reset(&b);
    pc_session_filter any = {.limit = 1};
    pc_ch_sql_sessions(&b, "db", &any, INT64_MIN); /* the whole table */
    CHECK(!strstr(b.data, "project_id = ") && !strstr(b.data, "s_last >="));
    CHECK(has(&b, "WHERE session_id != '')") && !strstr(b.data, "started_ns >="));
    pc_buf_reset(&b);
    pc_ch_sql_sessions(&b, "db", &any, -3); /* a window: the sessions of its traces */
    /* by single columns: a tuple IN costs 18.16 about 3x (any project: a
     * superset of sessions, each still whole: clickhouse_agg.c) */
    CHECK(has(&b, "WHERE trace_id IN (SELECT trace_id FROM `db`.traces WHERE session_id IN ("
                  "SELECT minIf(session_id, session_id != '') AS c_session FROM `db`.traces WHERE"
                  " trace_id IN (SELECT trace_id FROM `db`.traces WHERE started_ns >= -3) GROUP"
                  " BY project_id, trace_id HAVING c_session != ''))"));
    CHECK(!strstr(b.data, "(project_id, trace_id) IN") &&
          !strstr(b.data, "(project_id, session_id) IN"));
    pc_buf_reset(&b);
    pc_session_filter user = {.project_id = EVIL, .user_id = ODD, .limit = 1};
    pc_ch_sql_sessions(&b, "db", &user, 9); /* a user's sessions: never a window */
    CHECK(literals_closed(&b));
    CHECK_EQ_INT(count(&b, "project_id = " EVIL_Q), 4);
    CHECK(has(&b, "WHERE project_id = " EVIL_Q " AND user_id = " ODD_Q ") GROUP BY"));
    CHECK(!strstr(b.data, "started_ns >="));
    pc_buf_reset(&b);
    pc_ch_sql_sessions_below(&b, "db", EVIL, 42);
    CHECK(literals_closed(&b));
    CHECK(has(&b, "SELECT count(), max(completed_ns) FROM `db`.traces WHERE project_id = " EVIL_Q
                  " AND started_ns < 42 FORMAT TabSeparated"));
    pc_buf_reset(&b);

    const char *projects[] = {EVIL, "p"}, *sessions[] = {ODD, ""};
    /* their trace ids first, at most one more than the sums name */
    pc_ch_sql_session_traces(&b, "db", sessions, 2);
    CHECK(literals_closed(&b));
    CHECK(has(&b, "SELECT DISTINCT trace_id FROM `db`.traces WHERE session_id IN (" ODD_Q ", '')"
                  " LIMIT 1025 FORMAT TabSeparated"));
    pc_buf_reset(&b);
    /* the sums of the spans of those trace ids, named */
    const char *tids[] = {"t'1", "t2"};
    pc_ch_sql_session_sums(&b, "db", projects, sessions, 2, tids, 2);
    CHECK(literals_closed(&b));
    CHECK(has(&b, "FROM `db`.spans PREWHERE trace_id IN ('t\\'1', 't2') ORDER BY"));
    CHECK_EQ_INT(count(&b, "((" EVIL_Q ", " ODD_Q "), ('p', ''), ('', ''))"), 1);
    pc_buf_reset(&b);
    /* too many: named by a subquery */
    pc_ch_sql_session_sums(&b, "db", projects, sessions, 2, NULL, 0);
    CHECK(literals_closed(&b));
    /* the traces of the page's session ids, then the page's keys (and one no
     * session has) after the grouping */
    CHECK(has(&b, "IN (SELECT trace_id FROM `db`.traces WHERE session_id IN (" ODD_Q ", ''))"));
    CHECK_EQ_INT(count(&b, "((" EVIL_Q ", " ODD_Q "), ('p', ''), ('', ''))"), 1);
    CHECK(has(&b, "LIMIT 1 BY project_id, trace_id, span_id")); /* deduplicated spans */
    /* spans by trace id, the sessions' pairs checked after the grouping */
    CHECK(has(&b, "FROM `db`.spans PREWHERE trace_id IN (SELECT trace_id FROM `db`.traces WHERE"));
    CHECK(has(&b, "GROUP BY project_id, trace_id) WHERE (project_id, t_session) IN (("));
    pc_buf_reset(&b);
    pc_ch_sql_session_sums(&b, "db", projects, sessions, 0, NULL, 0);
    CHECK(has(&b, "IN (('', ''))") && has(&b, "`db`.traces WHERE 0)"));
    pc_buf_free(&b);
}

#define H PC_CH_HOUR_NS

static void test_stats(void)
{
    pc_buf b = PC_BUF_INIT;
    pc_stats_query q = {.project_id = EVIL, .group_by = PC_GROUP_SESSION,
                        .start_ns = 1700000000123456789LL, .end_ns = INT64_MAX,
                        .interval_ns = H, .max_rows = 1001};
    pc_ch_range r[2] = {{q.start_ns, 1700003600000000000LL}, {1700010000000000000LL, INT64_MAX}};
    pc_ch_sql_stats_spans(&b, "db", &q, r, 2, NULL);
    CHECK(literals_closed(&b));
    /* the project bounds the spans read */
    CHECK_EQ_INT(count(&b, "AND project_id = " EVIL_Q), 1);
    CHECK(has(&b, "argMin(session_id, created_ns) AS s_group"));
    CHECK(!strstr(b.data, "LIMIT 1 BY")); /* a GROUP BY deduplicates */
    /* the traces marked in both ranges' hours (up to the hour of each one's last ns) */
    CHECK(has(&b, "WHERE trace_id IN (SELECT trace_id FROM `db`.stats_marks WHERE ((hour >="
                  " 472222 AND hour <= 472223) OR (hour >= 472225 AND hour <= 2562047)))"
                  " AND project_id = "));
    /* one pass: per (trace, group, start's bucket), then per (trace, group) with its
     * first start f, back to buckets, counting the trace in f's bucket when f is in range */
    CHECK(has(&b, "SELECT project_id, trace_id, grp, s_start - s_start % 3600000000000 AS sb,"
                  " min(s_start) AS m, countIf(h) AS c_spans,"));
    CHECK(has(&b, "SELECT project_id, trace_id, grp, min(m) AS f, f - f % 3600000000000 AS fb,"
                  " ((f >= 1700000000123456789 AND f < 1700003600000000000) OR (f >="
                  " 1700010000000000000 AND f < 9223372036854775807)) AS f_in,"));
    CHECK(has(&b, "((s_start >= 1700000000123456789 AND s_start < 1700003600000000000) OR"
                  " (s_start >= 1700010000000000000 AND s_start < 9223372036854775807)) AS h,"));
    CHECK(has(&b, "e_bucket AS bucket, e_spans, e_bucket = fb AND f_in AS e_first,"));
    CHECK(has(&b, " ARRAY JOIN a_bucket AS e_bucket, a_spans AS e_spans,"));
    CHECK(has(&b, " GROUP BY bucket, grp HAVING sum(e_spans) > 0 ORDER BY bucket, grp LIMIT 1001"
                  " FORMAT TabSeparated"));
    CHECK(has(&b, "countIf(h AND s_type IN ('llm', 'embedding') AND s_model != '' AND"
                  " isNaN(s_cost))"));
    CHECK(!strstr(b.data, "UNION") && !strstr(b.data, "SELECT *"));
    pc_buf_reset(&b);
    pc_stats_query one = {.group_by = PC_GROUP_NONE, .start_ns = 10, .end_ns = 20, .max_rows = 1};
    pc_ch_range whole = {10, 20};
    pc_ch_sql_stats_spans(&b, "db", &one, &whole, 1, NULL);
    CHECK(has(&b, "toInt64(10) AS sb,") && has(&b, "toInt64(10) AS fb,") &&
          has(&b, "'' AS s_group"));
    CHECK(!strstr(b.data, "project_id = "));
    const char *cols[] = {"llm_model", "service_name", "span_type", "project_id", "user_id"};
    for (int g = PC_GROUP_MODEL; g <= PC_GROUP_USER; g++) {
        pc_buf_reset(&b);
        one.group_by = (pc_stats_group)g;
        pc_ch_sql_stats_spans(&b, "db", &one, &whole, 1, NULL);
        char want[64];
        snprintf(want, sizeof(want), "argMin(%s, created_ns) AS s_group", cols[g - 1]);
        CHECK(has(&b, want));
    }

    /* a short read names its traces (quoted by the caller), found first */
    pc_buf_reset(&b);
    pc_ch_sql_stats_spans(&b, "db", &one, &whole, 1, "('a', 'b\\'')");
    CHECK(has(&b, "FROM `db`.spans WHERE trace_id IN ('a', 'b\\'') GROUP BY project_id,"));
    CHECK(!strstr(b.data, "stats_marks"));
    pc_buf_reset(&b);
    pc_ch_sql_stats_traces(&b, "db", EVIL, r, 2, 4097);
    CHECK(literals_closed(&b));
    CHECK(has(&b, "SELECT DISTINCT trace_id FROM `db`.spans WHERE trace_id IN (SELECT trace_id FROM"
                  " `db`.stats_marks WHERE ((hour >= 472222 AND hour <= 472223) OR (hour >="
                  " 472225 AND hour <= 2562047))) AND ((start_ns >= 1700000000123456789 AND"));
    CHECK(has(&b, " AND project_id = " EVIL_Q " LIMIT 4097 FORMAT TabSeparated"));

    /* a build: one hour, every kind, the version from the server's clock */
    pc_buf_reset(&b);
    pc_ch_sql_rollup_build(&b, "db", 472222, 0x123456789ULL);
    CHECK(has(&b, "INSERT INTO `db`.stats_rollup (hour, version, kind, project_id, grp,"));
    CHECK(has(&b, "SELECT toUInt32(472222), toUInt64(4886718345),"));
    /* no negative shift, even in a branch not taken (modern servers refuse it) */
    CHECK(has(&b, "bitShiftRight(s_d, greatest(s_e - 6, 0))"));
    CHECK(has(&b, "ARRAY JOIN [(toUInt8(0), ''), (toUInt8(1), s_model), (toUInt8(2), s_service),"
                  " (toUInt8(3), s_type)] AS kg"));
    CHECK(has(&b, "FROM `db`.stats_marks WHERE ((hour >= 472222 AND hour <= 472222)))"));
    CHECK(has(&b, "SELECT project_id, trace_id, kind, grp, min(s_start) AS f, countIf(h) AS"));
    CHECK(has(&b, "countIf(f >= 1699999200000000000 AND f < 1700002800000000000)"));
    CHECK(has(&b, "s_start >= 1699999200000000000 AND s_start < 1700002800000000000 AS h"));
    CHECK(has(&b, " GROUP BY project_id, trace_id, kind, grp) GROUP BY kind, project_id, grp"
                  " HAVING sum(t_spans) > 0") && !strstr(b.data, "LIMIT"));
    CHECK(!strstr(b.data, "SELECT *")); /* 18.16 would run its IN subquery twice */
    CHECK(!strstr(b.data, "UNION")); /* one pass */
    CHECK(!strstr(b.data, "FORMAT"));
    pc_buf_reset(&b);
    pc_ch_sql_rollup_done(&b, "db", 472222, 77);
    CHECK(has(&b, "INSERT INTO `db`.stats_rollup (hour, version, kind) VALUES (472222, 77, 255)"));

    /* which hours are settled, which are due */
    pc_buf_reset(&b);
    pc_ch_sql_stats_hours(&b, "db", 5, 9, 120);
    CHECK(has(&b, "SELECT hour, if(intDiv(v, 1048576) >= toUInt64(w) + 120, v, toUInt64(0))"));
    CHECK_EQ_INT(count(&b, " AND hour >= 5 AND hour < 9 GROUP BY hour"), 2);
    CHECK(has(&b, "FROM `db`.stats_rollup WHERE kind = 255 AND hour >= 5")); /* completed builds */
    pc_buf_reset(&b);
    pc_ch_sql_rollup_due(&b, "db", 120, 32);
    CHECK(has(&b, "WHERE toUInt64(w) + 120 <= toUInt64(now()) AND NOT (intDiv(v, 1048576) >="
                  " toUInt64(w) + 120) ORDER BY hour DESC LIMIT 32"));
    pc_buf_reset(&b);
    int64_t hours[] = {7, 8};
    pc_ch_sql_stats_rollups(&b, "db", 2, EVIL, hours, 2);
    CHECK(literals_closed(&b));
    CHECK(has(&b, "WHERE kind = 2 AND project_id = " EVIL_Q " AND (hour, version) IN (SELECT"
                  " hour, max(version) FROM `db`.stats_rollup WHERE kind = 255 AND hour IN (7, 8)"
                  " GROUP BY hour)"));
    for (int t = 0; t < 2; t++) {
        pc_buf_reset(&b);
        pc_ch_sql_stats_table(&b, t ? PC_CH_MODERN : PC_CH_LEGACY, "db", t == 0);
        CHECK(has(&b, "PARTITION BY toYYYYMM(toDateTime(hour * 3600))"));
        CHECK(t ? has(&b, "TTL")
                : !strstr(b.data, "TTL") && has(&b, "ReplacingMergeTree(written_at)"));
        if (t) CHECK(has(&b, "ENGINE = MergeTree() PARTITION BY toYYYYMM(toDateTime(hour * 3600))"
                             " ORDER BY (hour, kind, project_id, grp, version)"));
    }
    pc_buf_free(&b);
}

/* The (hour, trace) pairs an insert marks: each span's hours, through its
 * end, at most a week of them; carriers none; each pair once. */
static void test_marks(void)
{
    pc_batch *bt = pc_batch_create(NULL);
    struct {
        int64_t start, end;
        bool carrier;
        const char *trace;
    } sp[] = {
        {10 * H + 5, 10 * H + 9, false, "b"},      /* hour 10 */
        {10 * H + 5, 10 * H + 9, false, "a"},      /* hour 10, another trace */
        {10 * H + 1, 0, false, "a"},               /* not ended: its hour only */
        {12 * H - 1, 14 * H, false, "a"},          /* 11, 12, 13, 14 */
        {3 * H, 3 * H + 1, true, "a"},             /* a carrier: nothing */
        {1000 * H, 1000 * H + 400 * H, false, "a"}, /* 1000 .. 1167 */
        {-5, 7, false, "t\"q"},                    /* hour 0 */
        {10 * H + 7, 10 * H + 8, false, "b"},      /* (10, b) again */
    };
    for (size_t i = 0; i < sizeof(sp) / sizeof(sp[0]); i++) {
        pc_span *s = pc_batch_add(bt);
        s->start_ns = sp[i].start;
        s->end_ns = sp[i].end;
        s->carrier = sp[i].carrier;
        s->trace_id = (pc_str){sp[i].trace, strlen(sp[i].trace)};
    }
    pc_ch_rows m = PC_CH_ROWS_INIT;
    pc_ch_rollup_marks(bt, &m);
    CHECK_EQ_INT(m.n, 2 + 5 + PC_CH_MARK_HOURS);
    /* (hour, trace) pairs, sorted, each once; trace ids JSON-escaped */
    CHECK(has(&m.text, "{\"hour\":0,\"trace_id\":\"t\\\"q\"}\n"
                       "{\"hour\":10,\"trace_id\":\"a\"}\n{\"hour\":10,\"trace_id\":\"b\"}\n"
                       "{\"hour\":11,\"trace_id\":\"a\"}\n{\"hour\":12,\"trace_id\":\"a\"}\n"
                       "{\"hour\":13,\"trace_id\":\"a\"}\n{\"hour\":14,\"trace_id\":\"a\"}\n"
                       "{\"hour\":1000,\"trace_id\":\"a\"}\n"));
    CHECK(has(&m.text, "{\"hour\":1167,") && !strstr(m.text.data, "\"hour\":1168,"));
    CHECK(!strstr(m.text.data, "\"hour\":3,"));
    CHECK_EQ_INT(m.v[1].month, pc_ch_month(10 * H));
    CHECK_EQ_STR(pc_ch_row_trace(&m, 1), "a");
    pc_ch_rows_free(&m);
    pc_batch_unref(bt);
}

static void test_readers(void)
{
    char *cur, *cols[16];
    CHECK(isnan(pc_ch_cost("N"))); /* \N, unescaped by the reader */
    CHECK(isnan(pc_ch_cost("-nan")) && isnan(pc_ch_cost("")));
    CHECK(pc_ch_cost("1e-9") == 1e-9);
    char srow[] = "s'1\tp\tu\t2\t1\t5\t9\n";
    cur = srow;
    CHECK_EQ_INT(pc_ch_tsv_row(&cur, srow + strlen(srow), cols, 16), PC_CH_SESSION_COLS);
    pc_session_row s;
    pc_ch_read_session(cols, &s);
    CHECK_EQ_STR(s.session_id, "s'1");
    CHECK(s.trace_count == 2 && s.error_count == 1 && s.first_seen_ns == 5 && s.last_seen_ns == 9);
    CHECK(s.span_count == 0 && isnan(s.cost_usd)); /* until the span sums arrive */
}

int main(void)
{
    RUN(test_list_filters);
    RUN(test_attr_match);
    RUN(test_sessions);
    RUN(test_stats);
    RUN(test_marks);
    RUN(test_readers);
    return CHECK_DONE();
}
