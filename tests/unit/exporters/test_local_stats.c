/*
 * test_local_stats.c - the embedded store's stats from hour rollups equal the
 * same stats gathered from the spans alone (src/exporters/local_stats.c,
 * local_rollup.c): before any hour is built, after every hour is, after
 * writes that dirty some (late spans that move a trace's first span of a
 * group into an earlier hour, new traces, a redelivered batch), after
 * retention, for every group, interval, window and project filter; and the
 * rollups are what the read uses once built (a tampered rollup shows, a
 * dirty hour's rows are never read); an hour written while it is gathered
 * is not stored, and the builder thread builds beside the writer
 * (local_builder.c).
 */
#include "check.h"
#include "exporters/local_harness.h"
#include "exporters/local_cells.h"
#include "exporters/local_rollup.h"
#include "exporters/local_stats.h"
#include "exporters/local.h"
#include "exporters/local_store.h"
#include "histo.h"
#include "timefmt.h"

#include <math.h>
#include <pthread.h>
#include <unistd.h>

#define H (3600 * NS)

static bool same_row(const stats_row *a, const stats_row *b)
{
    const pc_stats_row *x = &a->r, *y = &b->r;
    bool cost = (isnan(x->cost_usd) && isnan(y->cost_usd)) ||
                fabs(x->cost_usd - y->cost_usd) <= 1e-9 * fabs(y->cost_usd) + 1e-12;
    return x->bucket_ns == y->bucket_ns && strcmp(a->group, b->group) == 0 &&
           x->spans == y->spans && x->traces == y->traces && x->errors == y->errors &&
           x->input_tokens == y->input_tokens && x->output_tokens == y->output_tokens && cost &&
           x->unpriced == y->unpriced && x->latency_p50_ns == y->latency_p50_ns &&
           x->latency_p95_ns == y->latency_p95_ns && x->latency_p99_ns == y->latency_p99_ns;
}

static int compared, rows_seen;

/* stats() and the spans-only read agree on |q|. */
static void same_answer(store_h *h, pc_stats_query q)
{
    static stats_rows a, b;
    a.n = b.n = 0;
    q.max_rows = STATS_ROWS_MAX;
    CHECK_EQ_INT(h->st->ops->stats(h->st->ctx, &q, collect_stats, &a), 0);
    CHECK_EQ_INT(pc_local_stats_spans(h->st->ctx, &q, collect_stats, &b), 0);
    compared++;
    rows_seen += a.n;
    if (a.n != b.n) {
        fprintf(stderr, "group %d interval %lld [%lld, %lld) project %s: %d rows, want %d\n",
                q.group_by, (long long)q.interval_ns, (long long)(q.start_ns - T0),
                (long long)(q.end_ns - T0), q.project_id ? q.project_id : "*", a.n, b.n);
        CHECK(a.n == b.n);
        return;
    }
    for (int i = 0; i < a.n; i++) {
        if (same_row(&a.v[i], &b.v[i])) continue;
        fprintf(stderr,
                "group %d interval %lld project %s row %d (%s): spans %lld/%lld traces %lld/%lld"
                " p50 %lld/%lld cost %g/%g\n",
                q.group_by, (long long)q.interval_ns, q.project_id ? q.project_id : "*", i,
                a.v[i].group, (long long)a.v[i].r.spans, (long long)b.v[i].r.spans,
                (long long)a.v[i].r.traces, (long long)b.v[i].r.traces,
                (long long)a.v[i].r.latency_p50_ns, (long long)b.v[i].r.latency_p50_ns,
                a.v[i].r.cost_usd, b.v[i].r.cost_usd);
        CHECK(same_row(&a.v[i], &b.v[i]));
        return;
    }
}

/* Every group, several intervals (whole hours and not), windows (aligned,
 * ragged, inside, around everything) and both project filters. */
static void same_answers(store_h *h)
{
    static const int64_t intervals[] = {0, H, 2 * H, 24 * H, 15 * 60 * NS};
    static const int64_t windows[][2] = {{-3 * H, 30 * H},
                                         {17 * 60 * NS, 7 * H + 3 * 60 * NS},
                                         {2 * H, 5 * H},
                                         {H + 1, H + 2}};
    static const char *const projects[] = {NULL, "p1"};
    for (int g = PC_GROUP_NONE; g <= PC_GROUP_SESSION; g++)
        for (size_t i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++)
            for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++)
                for (int p = 0; p < 2; p++)
                    same_answer(h, (pc_stats_query){.group_by = (pc_stats_group)g,
                                                    .interval_ns = intervals[i],
                                                    .start_ns = T0 + windows[w][0],
                                                    .end_ns = T0 + windows[w][1],
                                                    .project_id = projects[p]});
}

/* A small deterministic generator (xorshift64). */
static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int pick(int n)
{
    return (int)(next() % (uint64_t)n);
}

static const char *const models[] = {"", "gpt-4o", "claude-3-5-sonnet", "emb-1"};
static const char *const services[] = {"api", "worker", "rag"};
static const char *const projects_all[] = {"p1", "p2", "p3"};

/* One random span of trace |t| starting at |start|. */
static void rand_span(pc_batch *b, int t, int k, int64_t start)
{
    char trace[32], span[32];
    snprintf(trace, sizeof(trace), "t%03d", t);
    snprintf(span, sizeof(span), "s%03d-%02d", t, k);
    int m = pick(4);
    pc_span_type type = m == 0 ? (pick(2) ? PC_TYPE_TOOL : PC_TYPE_AGENT)
                        : m == 3 ? PC_TYPE_EMBEDDING
                                 : PC_TYPE_LLM;
    int64_t dur = pick(5) == 0 ? 0 : (int64_t)(next() % (90 * NS)) + 1;
    pc_span *s = add_span(b, (span_spec){.trace = trace,
                                         .span = span,
                                         .project = projects_all[t % 3],
                                         .service = services[pick(3)],
                                         .type = type,
                                         .status = pick(8) == 0 ? PC_STATUS_ERROR
                                                                : PC_STATUS_SUCCESS,
                                         .start = start,
                                         .end = dur ? start + dur : 0,
                                         .in_tok = m ? pick(500) : -1,
                                         .out_tok = m ? pick(200) : -1});
    s->llm_model = S(b, models[m]);
    s->cost_usd = m && pick(3) ? (double)pick(1000) / 997.0 : NAN;
    s->user_id = S(b, pick(2) ? "amy" : "");
    s->session_id = S(b, pick(3) ? "conv-1" : "conv-2");
}

/* Traces |from|..|to|-1, each of |spans| spans over an hour or two around
 * T0 + (t % 9) h, ingested at |received|. */
static pc_batch *rand_batch(int from, int to, int spans, int64_t received)
{
    pc_batch *b = new_batch(received);
    for (int t = from; t < to; t++) {
        int64_t base = T0 + (t % 9) * H + (int64_t)(next() % (uint64_t)H);
        for (int k = 0; k < spans; k++)
            rand_span(b, t, k, base + (int64_t)(next() % (uint64_t)(2 * H)) - H / 2);
    }
    return b;
}

static int64_t db_count(store_h *h, const char *sql)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/data/store/prela.db", h->dir);
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

/* db_exec (local_harness.h) on |h|'s store file. */
static void store_exec(store_h *h, const char *sql)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/data/store/prela.db", h->dir);
    db_exec(path, sql);
}

/* Every hour unbuilt, as in a store from before the writes kept the rollups
 * (or after a write an hour's rollups did not take): the builder's work. */
static void unbuild(store_h *h)
{
    store_exec(h, "UPDATE stats_hours SET built = 0");
}

/* Every rollup row, in key order, as text (costs to 6 decimals); malloc'd. */
static char *rollup_dump(store_h *h)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/data/store/prela.db", h->dir);
    sqlite3 *db;
    sqlite3_stmt *st;
    char *out = NULL;
    const char *sql =
        "SELECT group_concat(kind || ',' || hour || ',' || project_id || ',' || grp || ',' ||"
        " spans || ',' || traces || ',' || errors || ',' || input_tokens || ',' ||"
        " output_tokens || ',' || coalesce(printf('%.6f', cost), 'null') || ',' || unpriced ||"
        " ',' || hex(bins) || ',' || priced, char(10)) FROM"
        " (SELECT * FROM stats_rollup ORDER BY kind, hour, project_id, grp)";
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            out = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out ? out : strdup("");
}

/* The rollups the writes kept are exactly what building every hour from its
 * spans stores: every hour built, none due, and the same rows after every
 * hour is built again. */
static void same_as_built(store_h *h)
{
    CHECK_EQ_INT(db_count(h, "SELECT count(*) FROM stats_hours WHERE built = 0"), 0);
    CHECK_EQ_INT(pc_local_build_rollups(h->ctx), 0);
    char *kept = rollup_dump(h);
    unbuild(h);
    CHECK(pc_local_build_rollups(h->ctx) > 0);
    char *built = rollup_dump(h);
    CHECK(strlen(kept) > 100);
    if (strcmp(kept, built) != 0) {
        size_t i = 0;
        while (kept[i] && kept[i] == built[i])
            i++;
        size_t from = i > 80 ? i - 80 : 0;
        fprintf(stderr, "kept rollups differ from built ones at byte %zu:\n  kept  %.160s\n"
                "  built %.160s\n", i, kept + from, built + from);
        CHECK(strcmp(kept, built) == 0);
    }
    free(kept);
    free(built);
}

/* Hours in stats_hours holding no span, and hours holding spans without a row. */
static int64_t hours_wrong(store_h *h)
{
    return db_count(h, "SELECT (SELECT count(*) FROM stats_hours h WHERE NOT EXISTS"
                       " (SELECT 1 FROM spans WHERE start_ns / 3600000000000 = h.hour)) +"
                       " (SELECT count(*) FROM (SELECT DISTINCT start_ns / 3600000000000 AS hr"
                       " FROM spans) WHERE hr NOT IN (SELECT hour FROM stats_hours))");
}

static void test_rollups_equal_spans(void)
{
    store_h h;
    /* built only when the test says; T0's hours kept by the writes */
    const char *kv[] = {"rollup_quiet", "1d", "rollup_live", "3650d"};
    open_store_kv(&h, NULL, "30d", kv, 2);
    int64_t now = pc_time_now_ns();
    /* old traces (ingested 40 days ago: retention takes them), two of them
     * alone in their hour, and new ones */
    pc_batch *old = rand_batch(0, 12, 6, now - 40 * 24 * H);
    for (int k = 0; k < 4; k++)
        rand_span(old, 100 + k % 2, k, T0 - 10 * H + k * NS);
    CHECK_EQ_INT(consume(&h, old), PC_OK);
    pc_batch *b = rand_batch(12, 60, 8, now);
    pc_batch_ref(b);
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(consume(&h, b), PC_OK); /* redelivered: counted once */

    /* the writes kept every hour's rollups */
    CHECK(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 1") > 5);
    CHECK(db_count(&h, "SELECT count(*) FROM stats_rollup WHERE kind = 1") > 5);
    CHECK_EQ_INT(hours_wrong(&h), 0);
    same_answers(&h);
    same_as_built(&h);

    /* late spans of stored traces, starting an hour before them (their first
     * span of some groups moves to an earlier hour), and new traces */
    pc_batch *late = new_batch(now);
    for (int t = 12; t < 40; t += 3)
        for (int k = 0; k < 3; k++)
            rand_span(late, t, 90 + k, T0 + (t % 9) * H - H - (int64_t)(next() % (uint64_t)H));
    CHECK_EQ_INT(consume(&h, late), PC_OK);
    CHECK_EQ_INT(consume(&h, rand_batch(63, 64, 4, now)), PC_OK);
    same_answers(&h);
    same_as_built(&h);

    /* retention: the old traces' figures leave their hours; the hour only
     * they held goes */
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE hour ="
                              " (SELECT min(hour) FROM stats_hours)"), 1);
    int64_t first = db_count(&h, "SELECT min(hour) FROM stats_hours");
    CHECK_EQ_INT(pc_local_purge(h.ctx, now), 14);
    CHECK(db_count(&h, "SELECT min(hour) FROM stats_hours") > first);
    CHECK_EQ_INT(hours_wrong(&h), 0);
    same_answers(&h);
    same_as_built(&h);

    /* hours left unbuilt (an older store): writes into them mark them, the
     * reads gather them from the spans, and building them makes them right */
    store_exec(&h, "UPDATE stats_hours SET built = 0 WHERE hour % 2 = 0");
    int64_t unbuilt = db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 0");
    CHECK(unbuilt > 2);
    CHECK_EQ_INT(consume(&h, rand_batch(70, 90, 5, now)), PC_OK);
    CHECK(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 0") >= unbuilt);
    same_answers(&h);
    CHECK(pc_local_build_rollups(h.ctx) >= unbuilt);
    same_answers(&h);
    same_as_built(&h);

    /* the read takes built hours from stats_rollup: tampered, it shows ... */
    stats_rows a = {.n = 0};
    pc_stats_query all = {.start_ns = T0 - 3 * H, .end_ns = T0 + 30 * H, .max_rows = 10};
    CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &all, collect_stats, &a), 0);
    int64_t spans = a.v[0].r.spans;
    store_exec(&h, "UPDATE stats_rollup SET spans = spans + 1000 WHERE kind = 0 AND hour = "
                "(SELECT min(hour) FROM stats_hours)");
    a.n = 0;
    CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &all, collect_stats, &a), 0);
    CHECK_EQ_INT(a.v[0].r.spans, spans + 1000);
    /* ... and a dirty hour's stale rows are never read */
    store_exec(&h,
            "UPDATE stats_hours SET built = 0 WHERE hour = (SELECT min(hour) FROM stats_hours)");
    a.n = 0;
    CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &all, collect_stats, &a), 0);
    CHECK_EQ_INT(a.v[0].r.spans, spans);
    same_answers(&h);
    fprintf(stderr, "%d queries compared, %d rows\n", compared, rows_seen);
    CHECK(rows_seen > 5000);
    close_store(&h, true);
}

/* Rollups kept by many small writes: 40 transactions, each with new traces,
 * spans added to stored traces (earlier and later than their first span,
 * in groups new to the trace or not), and redelivered spans, over 3
 * projects; after every 8, the kept rollups are the built ones. */
static void test_rollups_kept_by_writes(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "1d", "rollup_live", "3650d"};
    open_store_kv(&h, NULL, NULL, kv, 2);
    int64_t now = pc_time_now_ns();
    int traces = 0;
    for (int round = 0; round < 40; round++) {
        pc_batch *b = rand_batch(traces, traces + 3, 3, now);
        traces += 3;
        for (int i = 0; i < 6; i++) { /* new spans of stored traces */
            int t = pick(traces);
            int64_t base = T0 + (t % 9) * H;
            rand_span(b, t, 20 + round, base + (int64_t)(next() % (uint64_t)(6 * H)) - 3 * H);
        }
        rand_span(b, pick(traces), pick(3), T0); /* a span id stored before: ignored */
        CHECK_EQ_INT(consume(&h, b), PC_OK);
        if (round % 8 == 7) {
            same_as_built(&h);
            CHECK_EQ_INT(hours_wrong(&h), 0);
        }
    }
    same_answers(&h);
    close_store(&h, true);
}

/* Three traces grown by 10 spans a transaction (random groups and hours,
 * a redelivered span): the writer reads a stored trace's spans only until
 * it has PC_ROLLUP_KNOWN_SPANS, then knows its groups (local_rollup.h); after
 * retention it reads each once more. A trace of 300 models is known too;
 * one whose groups take more than PC_ROLLUP_KNOWN_BYTES is read each time.
 * The kept rollups stay the built ones throughout. */
static void test_big_traces_known(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "1d", "rollup_live", "3650d"};
    open_store_kv(&h, NULL, "30d", kv, 2);
    int64_t now = pc_time_now_ns();
    int64_t known_at = -1, expect = 0;
    int round = 0;
    for (; round < PC_ROLLUP_KNOWN_SPANS / 10 + 10; round++) {
        pc_batch *b = new_batch(now);
        for (int t = 200; t < 203; t++) {
            for (int k = 0; k < 10; k++)
                rand_span(b, t, round * 10 + k,
                          T0 + (t % 9) * H + (int64_t)(next() % (uint64_t)(6 * H)) - 3 * H);
            if (round) rand_span(b, t, pick(round * 10), T0); /* stored: ignored */
        }
        rand_span(b, 300 + round, 0, T0 + (round % 9) * H); /* a new trace: nothing to read */
        CHECK_EQ_INT(consume(&h, b), PC_OK);
        expect += 3 * 10 * round; /* what the three traces held before */
        if (round * 10 < PC_ROLLUP_KNOWN_SPANS) CHECK_EQ_INT(pc_local_spans_scanned(h.ctx), expect);
        else if (known_at < 0) known_at = pc_local_spans_scanned(h.ctx);
        if (round % 10 == 9) same_as_built(&h);
    }
    CHECK(known_at > 0);
    CHECK_EQ_INT(pc_local_spans_scanned(h.ctx), known_at);
    same_as_built(&h);
    /* retention forgets them: each is read once again */
    CHECK_EQ_INT(pc_local_purge(h.ctx, now), 0);
    int64_t held = 10 * round; /* each trace's spans */
    for (int again = 0; again < 2; again++, round++) {
        pc_batch *b = new_batch(now);
        for (int t = 200; t < 203; t++)
            rand_span(b, t, round * 10, T0 + (t % 9) * H - 2 * H);
        CHECK_EQ_INT(consume(&h, b), PC_OK);
        CHECK_EQ_INT(pc_local_spans_scanned(h.ctx), known_at + 3 * held);
    }
    same_as_built(&h);
    /* a trace of 300 models is known; one of 13,000 models of 80 bytes takes
     * more than PC_ROLLUP_KNOWN_BYTES: read each time */
    const int wide[] = {300, 13000};
    for (int w = 0; w < 2; w++) {
        int64_t before = 0; /* after the first batch (a huge one is written in parts) */
        for (int n = 0; n < 3; n++) {
            pc_batch *b = new_batch(now);
            for (int i = 0; i < (n ? 1 : wide[w]); i++) {
                char trace[16], span[16], model[96];
                snprintf(trace, sizeof(trace), "wide%d", w);
                snprintf(span, sizeof(span), "w%d-%d", n, i);
                snprintf(model, sizeof(model), "%080d", n * 100000 + i);
                pc_span *s = add_span(b, (span_spec){.trace = trace, .span = span,
                                                     .type = PC_TYPE_LLM, .start = T0 + i * NS,
                                                     .end = T0 + (i + 1) * NS});
                s->llm_model = S(b, model);
            }
            CHECK_EQ_INT(consume(&h, b), PC_OK);
            if (n == 0) before = pc_local_spans_scanned(h.ctx);
            int64_t read = w == 0 || n == 0 ? 0 : n == 1 ? wide[1] : 2 * wide[1] + 1;
            CHECK_EQ_INT(pc_local_spans_scanned(h.ctx), before + read);
        }
    }
    same_as_built(&h);
    same_answers(&h);
    close_store(&h, true);
}

/* With the default rollup_live (24 h), the writes keep the hours near the
 * wall clock and mark older ones (a backfill) for the builder; a stored
 * trace whose first span moves from a live hour into an old one marks the
 * old hour and takes the trace from the live one. */
static void test_live_hours(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "1d"};
    open_store_kv(&h, NULL, NULL, kv, 1);
    int64_t now = pc_time_now_ns(), hour = now / H;
    pc_batch *b = new_batch(now);
    for (int i = 0; i < 6; i++) {
        char span[16];
        snprintf(span, sizeof(span), "n%d", i);
        add_span(b, (span_spec){.trace = "live", .span = span, .type = PC_TYPE_LLM,
                                .start = hour * H + i * NS, .end = hour * H + (i + 2) * NS,
                                .in_tok = 5, .out_tok = 1});
        snprintf(span, sizeof(span), "o%d", i);
        add_span(b, (span_spec){.trace = "backfill", .span = span, .type = PC_TYPE_TOOL,
                                .start = T0 + i * NS, .end = T0 + (i + 1) * NS});
    }
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT built FROM stats_hours WHERE hour = %lld",
             (long long)hour);
    CHECK_EQ_INT(db_count(&h, sql), 1);
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 0"), 1);
    snprintf(sql, sizeof(sql),
             "SELECT spans * 1000 + traces FROM stats_rollup WHERE kind = 0 AND hour = %lld",
             (long long)hour);
    CHECK_EQ_INT(db_count(&h, sql), 6001);
    same_answers(&h);
    /* the live trace gets a span in the old hour: its count leaves the live hour */
    b = new_batch(now);
    add_span(b, (span_spec){.trace = "live", .span = "early", .type = PC_TYPE_LLM,
                            .start = T0 + 5 * H, .end = T0 + 5 * H + NS});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(db_count(&h, sql), 6000);
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 0"), 2);
    same_answers(&h);
    CHECK_EQ_INT(pc_local_build_rollups(h.ctx), 2);
    same_as_built(&h);
    close_store(&h, true);
}

/* 20 traces of 2,000 spans each spread over 50 hours: every hour's build
 * reads all 40,000 spans (the traces overlap it). */
static pc_batch *long_traces(void)
{
    pc_batch *b = new_batch(pc_time_now_ns());
    for (int t = 0; t < 20; t++)
        for (int i = 0; i < 2000; i++) {
            char trace[16], span[16];
            snprintf(trace, sizeof(trace), "long%d", t);
            snprintf(span, sizeof(span), "s%d", i);
            add_span(b, (span_spec){.trace = trace, .span = span, .type = PC_TYPE_TOOL,
                                    .start = T0 + (int64_t)(i % 50) * H + t,
                                    .end = T0 + (int64_t)(i % 50) * H + t + NS});
        }
    return b;
}

/* An hour's build gathers in a read transaction and stores in a write one
 * only if no write touched the hour meanwhile (local_rollup.h): a span
 * written into the hour between the two steps leaves it unbuilt
 * (PC_ROLLUP_STALE); a span written into another hour does not; what is
 * stored then holds the late span. */
static void test_build_skips_an_hour_written_meanwhile(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "1d"}; /* the builder thread leaves them to the test */
    open_store_kv(&h, NULL, NULL, kv, 1);
    int64_t now = pc_time_now_ns();
    CHECK_EQ_INT(consume(&h, rand_batch(0, 10, 4, now)), PC_OK);
    unbuild(&h);
    char path[256], sql[160];
    snprintf(path, sizeof(path), "%s/data/store/prela.db", h.dir);
    sqlite3 *db = pc_local_db_open("test", path, false);
    CHECK(db != NULL);
    int64_t quiet = INT64_MAX - PC_ROLLUP_DEFER_NS, limit = 60 * NS;

    pc_local_rollup_job job;
    CHECK_EQ_INT(pc_local_rollup_gather(db, quiet, limit, NULL, NULL, &job), 1);
    CHECK_EQ_INT(job.hour, db_count(&h, "SELECT max(hour) FROM stats_hours"));
    pc_batch *b = new_batch(now);
    add_span(b, (span_spec){.trace = "late", .span = "l1", .type = PC_TYPE_LLM,
                            .start = job.hour * H + 5, .end = job.hour * H + 5 + NS,
                            .in_tok = 7, .out_tok = 3});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(pc_local_rollup_store(db, &job), PC_ROLLUP_STALE);
    snprintf(sql, sizeof(sql), "SELECT built FROM stats_hours WHERE hour = %lld",
             (long long)job.hour);
    CHECK_EQ_INT(db_count(&h, sql), 0);

    /* gathered again (the newest hour still), a write into an older hour between */
    CHECK_EQ_INT(pc_local_rollup_gather(db, quiet, limit, NULL, NULL, &job), 1);
    b = new_batch(now);
    add_span(b, (span_spec){.trace = "older", .span = "o1", .type = PC_TYPE_TOOL,
                            .start = job.hour * H - 3 * H, .end = job.hour * H - 3 * H + NS});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(pc_local_rollup_store(db, &job), 1);
    CHECK_EQ_INT(db_count(&h, sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT input_tokens FROM stats_rollup WHERE kind = 0 AND hour = %lld",
             (long long)job.hour);
    CHECK(db_count(&h, sql) >= 7); /* the late span is in it */
    CHECK(pc_local_build_rollups(h.ctx) > 0);
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 0"), 0);
    same_answers(&h);
    sqlite3_close(db);
    close_store(&h, true);
}

typedef struct late_hold {
    pc_local_gate g;
    int64_t after_ns;
} late_hold;

static void *hold_later(void *arg)
{
    late_hold *l = arg;
    usleep((useconds_t)(l->after_ns / 1000));
    l->g.hold(l->g.ud, pc_time_mono_ns() + 2 * NS);
    return NULL;
}

/* A gather with the read pool as its gate gives way to a restart that holds
 * reads back: it stops (PC_ROLLUP_YIELD), the hour is neither built nor
 * deferred, and once the hold is released the build goes through. */
static void test_gather_yields_to_a_restart(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "1d"};
    open_store_kv(&h, NULL, NULL, kv, 1);
    CHECK_EQ_INT(consume(&h, long_traces()), PC_OK);
    unbuild(&h);
    char path[256];
    snprintf(path, sizeof(path), "%s/data/store/prela.db", h.dir);
    sqlite3 *db = pc_local_db_open("test", path, false);
    CHECK(db != NULL);
    pc_local_reader *r = h.st->ctx;
    late_hold l = {.g = pc_local_reader_gate(r), .after_ns = 5 * 1000000LL};
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, hold_later, &l), 0);
    pc_local_rollup_job job;
    int64_t quiet = INT64_MAX - PC_ROLLUP_DEFER_NS;
    CHECK_EQ_INT(pc_local_rollup_gather(db, quiet, 60 * NS, r, NULL, &job), PC_ROLLUP_YIELD);
    pthread_join(th, NULL);
    CHECK(job.figures == NULL);
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 1"), 0);
    /* not deferred (a slow build's hour gets dirty_ns = quiet + PC_ROLLUP_DEFER_NS) */
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE dirty_ns > 4e18"), 0);
    l.g.release(l.g.ud);
    int64_t hour;
    CHECK_EQ_INT(pc_local_rollup_build(db, quiet, 60 * NS, r, NULL, &hour), 1);
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 1"), 1);
    sqlite3_close(db);
    close_store(&h, true);
}

/* The builder thread builds quiet hours by itself (rollup_quiet 0s) while
 * the writer keeps writing into the hours it builds: once writes stop, every
 * hour is built, and every built hour holds its spans' figures (a build that
 * stored figures gathered before a write would show in same_answers). */
static void test_builder_beside_writes(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "0s"};
    open_store_kv(&h, NULL, NULL, kv, 1);
    int64_t now = pc_time_now_ns();
    for (int round = 0; round < 60; round++) {
        CHECK_EQ_INT(consume(&h, rand_batch(round * 3, round * 3 + 3, 6, now)), PC_OK);
        if (round % 10 == 0) unbuild(&h); /* work for the builder among the writes */
        usleep(50000);
    }
    int64_t t0 = pc_time_mono_ns();
    while (db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 0") > 0 &&
           pc_time_mono_ns() - t0 < 60 * NS)
        usleep(50000);
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 0"), 0);
    CHECK(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 1") >= 9);
    same_answers(&h);
    close_store(&h, true);
}

/* A corrupt rollup is an error, not a wrong answer or a crash. */
static void test_corrupt_rollup_fails_the_read(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "1d", "rollup_live", "3650d"};
    open_store_kv(&h, NULL, NULL, kv, 2);
    int64_t now = pc_time_now_ns();
    CHECK_EQ_INT(consume(&h, rand_batch(0, 5, 4, now)), PC_OK);
    int64_t hour = db_count(&h, "SELECT min(hour) FROM stats_rollup WHERE project_id = 'p1'");
    store_exec(&h, "UPDATE stats_rollup SET bins = x'ffffffffffffffffffffff' WHERE kind = 0"
                   " AND hour = (SELECT min(hour) FROM stats_rollup WHERE project_id = 'p1')");
    stats_rows a = {.n = 0};
    pc_stats_query all = {.start_ns = T0 - 3 * H, .end_ns = T0 + 30 * H, .max_rows = 10};
    CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &all, collect_stats, &a), -1);
    CHECK_EQ_INT(a.n, 0);
    /* a write into that hour finds rollups it cannot add to: the hour is
     * left to the builder, and then right again */
    pc_batch *b = new_batch(now);
    add_span(b, (span_spec){.trace = "into-corrupt", .span = "c1", .project = "p1",
                            .type = PC_TYPE_TOOL,
                            .start = hour * H + 5, .end = hour * H + 5 + NS});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 0"), 1);
    CHECK_EQ_INT(pc_local_build_rollups(h.ctx), 1);
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 0"), 0);
    a.n = 0;
    CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &all, collect_stats, &a), 0);
    same_answers(&h);
    close_store(&h, true);
}

/* A read holds a bounded number of groups: with 300 services and max_rows 5,
 * the answer is the first 5 rows of the whole answer, on both paths. */
static void test_cut_keeps_the_first_rows(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "1d"};
    open_store_kv(&h, NULL, NULL, kv, 1);
    pc_batch *b = new_batch(pc_time_now_ns());
    for (int i = 0; i < 900; i++) {
        char trace[16], span[16], svc[16];
        snprintf(trace, sizeof(trace), "c%d", i % 40);
        snprintf(span, sizeof(span), "s%d", i);
        snprintf(svc, sizeof(svc), "svc-%03d", (i * 7) % 300);
        add_span(b, (span_spec){.trace = trace, .span = span, .service = svc,
                                .type = PC_TYPE_TOOL, .start = T0 + (i % 5) * H + i * NS,
                                .end = T0 + (i % 5) * H + i * NS + (i + 1) * 1000000LL});
    }
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    unbuild(&h); /* first from the spans, then from the rollups */
    for (int built = 0; built < 2; built++) {
        pc_stats_query q = {.group_by = PC_GROUP_SERVICE, .interval_ns = H,
                            .start_ns = T0, .end_ns = T0 + 5 * H, .max_rows = STATS_ROWS_MAX};
        stats_rows all = {.n = 0}, few = {.n = 0}, few_spans = {.n = 0};
        CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &q, collect_stats, &all), 0);
        CHECK_EQ_INT(all.n, 5 * 60); /* each hour holds 60 of the services */
        q.max_rows = 5;
        CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &q, collect_stats, &few), 0);
        CHECK_EQ_INT(pc_local_stats_spans(h.st->ctx, &q, collect_stats, &few_spans), 0);
        CHECK_EQ_INT(few.n, 5);
        CHECK_EQ_INT(few_spans.n, 5);
        for (int i = 0; i < 5 && i < few.n && i < few_spans.n; i++) {
            CHECK(same_row(&few.v[i], &all.v[i]));
            CHECK(same_row(&few_spans.v[i], &all.v[i]));
        }
        CHECK(pc_local_build_rollups(h.ctx) >= 0);
    }
    /* A window from 10 minutes into the first hour: that hour is read as its
     * rollup minus its first 10 minutes (two thirds of its spans, so some of
     * its cells empty); with the answer cut to 5 rows an emptied cell cannot
     * be told apart from a cut one, and the read falls back to the spans.
     * The same answer as the spans alone either way. */
    for (int max = 5; max <= STATS_ROWS_MAX; max += STATS_ROWS_MAX - 5) {
        pc_stats_query q = {.group_by = PC_GROUP_SERVICE, .interval_ns = H,
                            .start_ns = T0 + 10 * 60 * NS, .end_ns = T0 + 5 * H, .max_rows = max};
        stats_rows got = {.n = 0}, want = {.n = 0};
        CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &q, collect_stats, &got), 0);
        CHECK_EQ_INT(pc_local_stats_spans(h.st->ctx, &q, collect_stats, &want), 0);
        CHECK(max == 5 || want.n > 5);
        CHECK_EQ_INT(got.n, max == 5 ? 5 : want.n);
        for (int i = 0; i < got.n && i < want.n; i++)
            CHECK(same_row(&got.v[i], &want.v[i]));
    }
    close_store(&h, true);
}

/* Ten thousand durations in one cell (its bins compacted on the way): the
 * percentiles are the nearest-rank durations' bins. */
static void test_many_spans_one_cell(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "1d"};
    open_store_kv(&h, NULL, NULL, kv, 1);
    pc_batch *b = new_batch(pc_time_now_ns());
    for (int i = 0; i < 10000; i++) {
        char span[16];
        snprintf(span, sizeof(span), "s%d", i);
        int64_t d = (int64_t)((i * 7919) % 10000 + 1) * 1000; /* 1 us .. 10 ms, shuffled */
        add_span(b, (span_spec){.trace = "big", .span = span, .type = PC_TYPE_TOOL,
                                .start = T0 + i, .end = T0 + i + d});
    }
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    unbuild(&h); /* first from the spans, then from the rollup */
    for (int built = 0; built < 2; built++) {
        stats_rows a = {.n = 0};
        pc_stats_query q = {.start_ns = T0, .end_ns = T0 + H, .max_rows = 10};
        CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &q, collect_stats, &a), 0);
        CHECK_EQ_INT(a.n, 1);
        CHECK_EQ_INT(a.v[0].r.spans, 10000);
        CHECK_EQ_INT(a.v[0].r.traces, 1);
        CHECK_EQ_INT(a.v[0].r.latency_p50_ns, pc_histo_round(5000 * 1000));
        CHECK_EQ_INT(a.v[0].r.latency_p95_ns, pc_histo_round(9500 * 1000));
        CHECK_EQ_INT(a.v[0].r.latency_p99_ns, pc_histo_round(9900 * 1000));
        CHECK_EQ_INT(pc_local_build_rollups(h.ctx), built ? 0 : 1);
    }
    close_store(&h, true);
}

/* Long traces overlapping many hours make each hour's build read all their
 * spans: a build past rollup_build_limit is abandoned (the hour deferred, its
 * stats read from the spans, still right), and the writer goes on. */
/* Fills |c| with |spans| spans of durations 100, 200, ... ns, all priced at 1. */
static void fill_cell(pc_cells *a, int64_t bucket, const char *g, int spans)
{
    pc_cell *c = pc_cells_get(a, bucket, g, strlen(g));
    for (int i = 1; i <= spans; i++) {
        c->row.spans++;
        c->row.traces += i == 1;
        c->row.input_tokens += 10;
        c->row.cost_usd += 1;
        c->priced++;
        c->has_cost = true;
        pc_cell_bin(c, pc_histo_bin(100 * i), 1);
    }
}

/* pc_cells_subtract (a built hour minus the part of it outside a window, as
 * ClickHouse reads it): every figure and the latency bins; a cell left empty
 * is not emitted; what does not fit inside is refused. */
static void test_cells_subtract(void)
{
    pc_cells a = {.limit = 10}, neg = {.limit = 10};
    fill_cell(&a, 0, "m", 10);
    fill_cell(&a, 0, "n", 2);
    fill_cell(&neg, 0, "m", 4); /* durations 100..400: the four shortest */
    fill_cell(&neg, 0, "n", 2);
    CHECK(pc_cells_subtract(&a, &neg));
    static stats_rows got;
    got.n = 0;
    pc_cells_emit(&a, 10, collect_stats, &got);
    CHECK_EQ_INT(got.n, 1); /* "n" emptied */
    const pc_stats_row *r = &got.v[0].r;
    CHECK_EQ_STR(got.v[0].group, "m");
    CHECK(r->spans == 6 && r->traces == 0 && r->input_tokens == 60 && r->cost_usd == 6);
    /* durations 500..1000 left: nearest ranks 3 (p50) and 6 (p95, p99) */
    CHECK_EQ_INT(r->latency_p50_ns, pc_histo_round(700));
    CHECK_EQ_INT(r->latency_p99_ns, pc_histo_round(1000));
    pc_cells_free(&a);
    pc_cells_free(&neg);

    /* refused: a key |a| lacks; more spans than |a| has; a bin |a| lacks */
    for (int k = 0; k < 3; k++) {
        pc_cells x = {.limit = 10}, y = {.limit = 10};
        fill_cell(&x, 0, "m", 3);
        if (k == 0) fill_cell(&y, 0, "zz", 1);
        if (k == 1) fill_cell(&y, 0, "m", 4);
        if (k == 2) {
            pc_cell *c = pc_cells_get(&y, 0, "m", 1);
            c->row.spans = 1;
            pc_cell_bin(c, pc_histo_bin(5000), 1);
        }
        CHECK(!pc_cells_subtract(&x, &y));
        pc_cells_free(&x);
        pc_cells_free(&y);
    }
}

static void test_slow_build_is_deferred(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "1d", "rollup_build_limit", "1ms"};
    open_store_kv(&h, NULL, NULL, kv, 2);
    CHECK_EQ_INT(consume(&h, long_traces()), PC_OK);
    unbuild(&h);
    int64_t t0 = pc_time_now_ns();
    CHECK(pc_local_build_rollups(h.ctx) < 50); /* some or all abandoned */
    CHECK(pc_time_now_ns() - t0 < 50 * 200 * 1000000LL); /* about 1 ms each, not unbounded */
    CHECK(db_count(&h, "SELECT count(*) FROM stats_hours WHERE built = 0") > 0);
    stats_rows a = {.n = 0}, want = {.n = 0};
    pc_stats_query q = {.interval_ns = 24 * H, .start_ns = T0, .end_ns = T0 + 50 * H,
                        .max_rows = 10};
    CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &q, collect_stats, &a), 0);
    CHECK_EQ_INT(pc_local_stats_spans(h.st->ctx, &q, collect_stats, &want), 0);
    CHECK_EQ_INT(a.n, 3);
    CHECK_EQ_INT(a.v[0].r.spans + a.v[1].r.spans + a.v[2].r.spans, 40000);
    for (int i = 0; i < a.n && i < want.n; i++)
        CHECK(same_row(&a.v[i], &want.v[i]));
    /* writes go on */
    CHECK_EQ_INT(consume(&h, rand_batch(0, 3, 4, pc_time_now_ns())), PC_OK);
    close_store(&h, true);
}

/* An hour whose build was abandoned gets twice the time at each next try
 * (local_rollup.h's pc_local_slow): with a limit a tenth or less of what a
 * build of long_traces' hours takes, the first try is abandoned, and the
 * hour is built within PC_ROLLUP_GROW_MAX more tries; without the table,
 * never. */
static void test_slow_build_grows(void)
{
    store_h h;
    const char *kv[] = {"rollup_quiet", "1d"};
    open_store_kv(&h, NULL, NULL, kv, 1);
    CHECK_EQ_INT(consume(&h, long_traces()), PC_OK);
    unbuild(&h);
    char path[256];
    snprintf(path, sizeof(path), "%s/data/store/prela.db", h.dir);
    sqlite3 *db = pc_local_db_open("test", path, false);
    CHECK(db != NULL);
    int64_t quiet = INT64_MAX - PC_ROLLUP_DEFER_NS, hour = 0, first = -1;
    /* how long one build takes here */
    int64_t t0 = pc_time_mono_ns();
    pc_local_rollup_job job;
    CHECK_EQ_INT(pc_local_rollup_gather(db, quiet, 60 * NS, NULL, NULL, &job), 1);
    int64_t took = pc_time_mono_ns() - t0, limit = took / 10 + 1;
    pc_local_stats_hour_free(job.figures);
    pc_local_slow slow = {.n = 0};
    int tries = 0, rc;
    for (;;) {
        store_exec(&h, "UPDATE stats_hours SET dirty_ns = 0 WHERE built = 0"); /* due again */
        rc = pc_local_rollup_build(db, quiet, limit, NULL, &slow, &hour);
        if (first < 0) first = hour;
        CHECK_EQ_INT(hour, first); /* the newest hour, until built */
        tries++;
        if (rc != PC_ROLLUP_SLOW || tries > PC_ROLLUP_GROW_MAX + 1) break;
        CHECK_EQ_INT(slow.n, 1);
        CHECK_EQ_INT(slow.tries[0], tries);
    }
    fprintf(stderr, "a build took %lld ms; limit %lld ms; built at try %d\n",
            (long long)(took / 1000000), (long long)(limit / 1000000), tries);
    CHECK(tries >= 2);
    CHECK_EQ_INT(rc, 1);
    CHECK_EQ_INT(slow.n, 0); /* built: forgotten */
    /* without the table, the same limit never builds the next hour */
    store_exec(&h, "UPDATE stats_hours SET dirty_ns = 0 WHERE built = 0");
    CHECK_EQ_INT(pc_local_rollup_build(db, quiet, limit, NULL, NULL, &hour), PC_ROLLUP_SLOW);
    store_exec(&h, "UPDATE stats_hours SET dirty_ns = 0 WHERE built = 0");
    CHECK_EQ_INT(pc_local_rollup_build(db, quiet, limit, NULL, NULL, &hour), PC_ROLLUP_SLOW);
    /* a gather past its limit writes nothing (the builder's connection is
     * read-only); the store, on the writer's, defers the hour */
    store_exec(&h, "UPDATE stats_hours SET dirty_ns = 0 WHERE built = 0");
    sqlite3 *ro = pc_local_db_open("test", path, false);
    CHECK(ro != NULL);
    CHECK_EQ_INT(sqlite3_exec(ro, "PRAGMA query_only = 1", NULL, NULL, NULL), SQLITE_OK);
    CHECK_EQ_INT(pc_local_rollup_gather(ro, quiet, limit, NULL, NULL, &job), PC_ROLLUP_SLOW);
    CHECK(job.figures == NULL);
    CHECK(job.defer_ns == quiet + PC_ROLLUP_DEFER_NS);
    CHECK_EQ_INT(db_count(&h, "SELECT count(*) FROM stats_hours WHERE dirty_ns > 0 AND built = 0"),
                 0);
    CHECK_EQ_INT(pc_local_rollup_store(db, &job), PC_ROLLUP_SLOW);
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM stats_hours WHERE hour = %lld AND dirty_ns = %lld",
             (long long)job.hour, (long long)job.defer_ns);
    CHECK_EQ_INT(db_count(&h, sql), 1);
    sqlite3_close(ro);
    sqlite3_close(db);
    close_store(&h, true);
}

int main(void)
{
    RUN(test_rollups_equal_spans);
    RUN(test_rollups_kept_by_writes);
    RUN(test_live_hours);
    RUN(test_big_traces_known);
    RUN(test_cut_keeps_the_first_rows);
    RUN(test_many_spans_one_cell);
    RUN(test_slow_build_is_deferred);
    RUN(test_slow_build_grows);
    RUN(test_build_skips_an_hour_written_meanwhile);
    RUN(test_gather_yields_to_a_restart);
    RUN(test_builder_beside_writes);
    RUN(test_corrupt_rollup_fails_the_read);
    RUN(test_cells_subtract);
    return CHECK_DONE();
}
