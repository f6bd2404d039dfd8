/*
 * test_prices.c - the model price table (src/processors/prices.c): the
 * shipped table parses and covers the mainstream vendors, the cost arithmetic
 * against hand-computed figures, the matching rule (effective date,
 * specificity, provider, path prefixes), strict validation with line and
 * column, reloads that fail keeping the old table, hostile patterns and
 * names, and the bounded unpriced-model set.
 */
#include "check.h"
#include "processors/prices.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Relative comparison of doubles (the figures below are exact to ~1e-15). */
#define CHECK_NEAR(a, b)                                                                           \
    do {                                                                                           \
        double na_ = (a), nb_ = (b);                                                               \
        check_count++;                                                                             \
        if (!(fabs(na_ - nb_) <= 1e-9 * fmax(fabs(nb_), 1e-12))) {                                 \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s ~= %s failed: %.17g != %.17g\n", __FILE__, __LINE__, #a,    \
                    #b, na_, nb_);                                                                 \
        }                                                                                          \
    } while (0)

#define DAY_NS (86400LL * 1000000000LL)
/* Unix ns of a UTC date. */
static int64_t date_ns(int y, int m, int d)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    return (int64_t)timegm(&tm) * 1000000000LL;
}

static pc_str S(const char *s)
{
    return (pc_str){s, strlen(s)};
}

static pc_price_table *with(const char *extra, char *err, size_t n)
{
    return pc_price_table_parse(extra, extra ? strlen(extra) : 0, "ops.tsv", err, n);
}

/* Looks |model| up; returns its input price, or -1 when nothing matched. */
static double in_price(pc_price_table *t, const char *provider, const char *model, int64_t at)
{
    pc_price p;
    return pc_price_table_lookup(t, S(provider), S(model), at, &p) ? p.input : -1;
}

static void test_shipped_table(void)
{
    char err[512] = "";
    pc_price_table *t = with(NULL, err, sizeof(err));
    CHECK(t != NULL);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK(pc_price_table_size(t) >= 100);
    int64_t now = date_ns(2026, 11, 1);
    /* one chat model and one embedding model (where sold) of each vendor */
    CHECK_NEAR(in_price(t, "openai", "gpt-4o-mini", now), 0.15);
    CHECK_NEAR(in_price(t, "openai", "gpt-4o-mini-2024-07-18", now), 0.15);
    CHECK_NEAR(in_price(t, "openai", "text-embedding-3-small", now), 0.02);
    CHECK_NEAR(in_price(t, "anthropic", "claude-sonnet-4-5-20250929", now), 3.0);
    CHECK_NEAR(in_price(t, "aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", now),
               3.0);
    CHECK_NEAR(in_price(t, "gcp.gemini", "gemini-2.5-flash", now), 0.30);
    CHECK_NEAR(in_price(t, "gcp.vertex_ai", "gemini-2.0-flash-001@default", now), 0.10);
    CHECK_NEAR(in_price(t, "gcp.vertex_ai", "textembedding-gecko@003", now), 0.10);
    CHECK_NEAR(in_price(t, "mistral_ai", "mistral-large-latest", now), 2.0);
    CHECK_NEAR(in_price(t, "mistral_ai", "mistral-embed", now), 0.10);
    CHECK_NEAR(in_price(t, "groq", "llama-3.3-70b-versatile", now), 0.59);
    CHECK_NEAR(in_price(t, "together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", now), 0.88);
    CHECK_NEAR(in_price(t, "deepseek", "deepseek-chat", now), 0.28);
    CHECK_NEAR(in_price(t, "cohere", "command-r-plus-08-2024", now), 2.5);
    CHECK_NEAR(in_price(t, "cohere", "embed-english-v3.0", now), 0.10);
    /* case-insensitive and anchored: no prefix or suffix match */
    CHECK_NEAR(in_price(t, "", "GPT-4O-MINI", now), 0.15);
    CHECK_EQ_INT(in_price(t, "", "gpt-4o-mini-extra", now), -1);
    CHECK_EQ_INT(in_price(t, "", "my-gpt-4o", now), -1);
    /* path prefixes: tried without them when the full name has no entry */
    CHECK_NEAR(in_price(t, "", "openai/gpt-4o-mini", now), 0.15);
    CHECK_NEAR(in_price(t, "", "models/gemini-2.5-flash", now), 0.30);
    /* reasoning defaults to the output price, cache write to the input price */
    pc_price p;
    CHECK(pc_price_table_lookup(t, S("openai"), S("o3-mini"), now, &p));
    CHECK_NEAR(p.reasoning, p.output);
    CHECK_NEAR(p.cache_write, p.input);
    CHECK_NEAR(p.cache_read, 0.55);
    /* effective dates in the shipped table: deepseek-chat's three prices */
    CHECK_NEAR(in_price(t, "", "deepseek-chat", date_ns(2024, 6, 1)), 0.14);
    CHECK_NEAR(in_price(t, "", "deepseek-chat", date_ns(2025, 3, 1)), 0.27);
    CHECK_NEAR(in_price(t, "", "deepseek-chat", date_ns(2025, 10, 1)), 0.28);
    CHECK_EQ_INT(in_price(t, "", "deepseek-chat", date_ns(2023, 1, 1)), -1); /* before any */
    pc_price_table_unref(t);
}

static void test_cost_arithmetic(void)
{
    pc_cost c;
    /* gpt-4o-mini: input 0.15, output 0.60, cache read 0.075 (per million).
     * 1000 input of which 400 cache reads, 500 output of which 100 reasoning:
     *   input  = (600 * 0.15 + 400 * 0.075) / 1e6 = (90 + 30) / 1e6 = 120e-6
     *   output = (400 * 0.60 + 100 * 0.60) / 1e6 = 300e-6;  total 420e-6 */
    pc_price mini = {0.15, 0.60, 0.075, 0.15, 0.60};
    pc_usage u = {1000, 500, 400, -1, 100};
    CHECK(pc_price_cost(&mini, &u, &c));
    CHECK_NEAR(c.input, 120e-6);
    CHECK_NEAR(c.output, 300e-6);
    CHECK_NEAR(c.total, 420e-6);

    /* Claude Sonnet 4.5: 3 / 15, cache read 0.30, cache write 3.75.
     * 10000 input = 2000 uncached + 6000 cache read + 2000 cache write, 1000 output:
     *   input  = (2000*3 + 6000*0.30 + 2000*3.75) / 1e6 = (6000 + 1800 + 7500) / 1e6 = 0.0153
     *   output = 1000 * 15 / 1e6 = 0.015;  total 0.0303 */
    pc_price sonnet = {3, 15, 0.30, 3.75, 15};
    u = (pc_usage){10000, 1000, 6000, 2000, -1};
    CHECK(pc_price_cost(&sonnet, &u, &c));
    CHECK_NEAR(c.input, 0.0153);
    CHECK_NEAR(c.output, 0.015);
    CHECK_NEAR(c.total, 0.0303);

    /* a reasoning price of its own: 1 / 2, cache 0.5 / 1.5, reasoning 8.
     * input 100 = 70 + 10 read + 20 write: 70*1 + 10*0.5 + 20*1.5 = 105 -> 105e-6
     * output 50 = 20 + 30 reasoning: 20*2 + 30*8 = 280 -> 280e-6;  total 385e-6 */
    pc_price own = {1, 2, 0.5, 1.5, 8};
    u = (pc_usage){100, 50, 10, 20, 30};
    CHECK(pc_price_cost(&own, &u, &c));
    CHECK_NEAR(c.input, 105e-6);
    CHECK_NEAR(c.output, 280e-6);
    CHECK_NEAR(c.total, 385e-6);

    /* details larger than their totals: the plain part floors at 0.
     * input 1000 < 900 read + 300 write: 900*0.5 + 300*1.5 = 900 -> 900e-6
     * output 10 < 40 reasoning: 40*8 = 320 -> 320e-6 */
    u = (pc_usage){1000, 10, 900, 300, 40};
    CHECK(pc_price_cost(&own, &u, &c));
    CHECK_NEAR(c.input, 900e-6);
    CHECK_NEAR(c.output, 320e-6);

    /* unknown counts are 0; with neither input nor output known: no cost */
    u = (pc_usage){-1, 1000, -1, -1, -1}; /* output only: 1000*2/1e6 */
    CHECK(pc_price_cost(&own, &u, &c));
    CHECK_NEAR(c.input, 0);
    CHECK_NEAR(c.output, 2000e-6);
    u = (pc_usage){-1, -1, 50, -1, 5};
    c.total = 42;
    CHECK(!pc_price_cost(&own, &u, &c));
    CHECK_NEAR(c.total, 42); /* untouched */

    /* saturated counts (INT64_MAX) at the highest accepted price stay finite */
    pc_price top = {1e6, 1e6, 1e6, 1e6, 1e6};
    u = (pc_usage){INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
    CHECK(pc_price_cost(&top, &u, &c));
    CHECK(isfinite(c.total) && c.total > 9e18);
    /* a price no table can hold (inf) is refused, not propagated */
    pc_price inf = {INFINITY, 1, 1, 1, 1};
    u = (pc_usage){10, 10, -1, -1, -1};
    CHECK(!pc_price_cost(&inf, &u, &c));
}

static void test_matching_rule(void)
{
    char err[512] = "";
    const char *ops = "# operator prices\n"
                      "*     datemodel        2024-01-01  1  1  -  -  -\n"
                      "*     datemodel        2025-01-01  2  2  -  -  -\n"
                      "*     spec-.*          2020-01-01  1  1  -  -  -\n"
                      "*     spec-model-x     2020-01-01  5  5  -  -  -\n"
                      "*     late-.*          2020-01-01  1  1  -  -  -\n"
                      "*     late-model       2026-01-01  9  9  -  -  -\n"
                      "*     prov-model       2020-01-01  1  1  -  -  -\n"
                      "acme  prov-model       2020-01-01  3  3  -  -  -\n"
                      "acme  acme-only        2020-01-01  4  4  -  -  -\n";
    pc_price_table *t = with(ops, err, sizeof(err));
    CHECK(t != NULL);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    /* effective date: the newest entry not after the span's start */
    CHECK_NEAR(in_price(t, "", "datemodel", date_ns(2024, 6, 1)), 1);
    CHECK_NEAR(in_price(t, "", "datemodel", date_ns(2025, 1, 1)), 2); /* from 00:00 UTC */
    CHECK_NEAR(in_price(t, "", "datemodel", date_ns(2025, 1, 1) - 1), 1);
    CHECK_NEAR(in_price(t, "", "datemodel", 0), 2); /* no start time: newest */
    CHECK_EQ_INT(in_price(t, "", "datemodel", date_ns(2023, 6, 1)), -1);
    /* specificity: more literal characters win, whatever the order in the file */
    CHECK_NEAR(in_price(t, "", "spec-model-x", 0), 5);
    CHECK_NEAR(in_price(t, "", "spec-other", 0), 1);
    /* a specific entry not yet in effect leaves the generic one */
    CHECK_NEAR(in_price(t, "", "late-model", date_ns(2025, 6, 1)), 1);
    CHECK_NEAR(in_price(t, "", "late-model", date_ns(2026, 6, 1)), 9);
    /* provider: qualified beats '*', compared ignoring case; others get '*' */
    CHECK_NEAR(in_price(t, "ACME", "prov-model", 0), 3);
    CHECK_NEAR(in_price(t, "other", "prov-model", 0), 1);
    CHECK_NEAR(in_price(t, "", "prov-model", 0), 1);
    CHECK_NEAR(in_price(t, "acme", "acme-only", 0), 4);
    CHECK_EQ_INT(in_price(t, "", "acme-only", 0), -1);
    /* the cache remembers every matching entry: a second lookup at another
     * date of the same name still applies the date rule */
    CHECK_NEAR(in_price(t, "", "datemodel", date_ns(2024, 2, 1)), 1);
    CHECK_NEAR(in_price(t, "", "datemodel", date_ns(2025, 2, 1)), 2);
    pc_price_table_unref(t);
}

static void test_override(void)
{
    char err[512] = "";
    pc_price_table *base = with(NULL, err, sizeof(err));
    /* same provider, pattern and date as a shipped line: replaces it */
    pc_price_table *t =
        with("*  gpt-4o-mini(-2024-07-18)?  2024-07-18  1.5  6  0.5  -  -  negotiated\n", err,
             sizeof(err));
    CHECK(base && t);
    if (!base || !t) return;
    CHECK_EQ_INT(pc_price_table_size(t), pc_price_table_size(base));
    CHECK_NEAR(in_price(t, "openai", "gpt-4o-mini", 0), 1.5);
    pc_price_table_unref(t);
    /* a new line adds: a dated price change for a shipped model */
    t = with("*  gpt-4o-mini(-2024-07-18)?  2030-01-01  0.10  0.40  -  -  -\n", err, sizeof(err));
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_INT(pc_price_table_size(t), pc_price_table_size(base) + 1);
    CHECK_NEAR(in_price(t, "", "gpt-4o-mini", date_ns(2029, 1, 1)), 0.15);
    CHECK_NEAR(in_price(t, "", "gpt-4o-mini", date_ns(2030, 1, 2)), 0.10);
    pc_price_table_unref(t);
    pc_price_table_unref(base);
}

/* Parses |text| and expects a failure whose message contains every |want|. */
static void expect_error(const char *text, const char *want1, const char *want2)
{
    char err[512] = "";
    pc_price_table *t = with(text, err, sizeof(err));
    CHECK(t == NULL);
    pc_price_table_unref(t);
    if (want1 && !strstr(err, want1)) {
        check_failures++;
        fprintf(stderr, "error \"%s\" lacks \"%s\" (input: %s)\n", err, want1, text);
    }
    if (want2 && !strstr(err, want2)) {
        check_failures++;
        fprintf(stderr, "error \"%s\" lacks \"%s\" (input: %s)\n", err, want2, text);
    }
    check_count++;
}

static void test_validation(void)
{
    /* the line and column of the bad field, and what is wrong */
    expect_error("# ok\n*  gpt-(4  2024-01-01  1  1  -  -  -\n", "ops.tsv line 2 column 4: pattern",
                 "not a valid extended regex");
    expect_error("*  m  2024-01-01  -1  1  -  -  -\n", "line 1 column 19: input", "not a price");
    expect_error("*  m  2024-01-01  1  1  -0.5  -  -\n", "column 25: cache_read", NULL);
    expect_error("*  m  2024-01-01  1  -  -  -  -\n", "output",
                 "not a price"); /* '-' only for details */
    expect_error("*  m  2024-01-01  nan  1  -  -  -\n", "input", NULL);
    expect_error("*  m  2024-01-01  inf  1  -  -  -\n", "input", NULL);
    expect_error("*  m  2024-01-01  1e7  1  -  -  -\n", "input", NULL); /* over 1,000,000 */
    expect_error("*  m  2024-01-01  1  1  -  -  0x10\n", "reasoning", NULL);
    expect_error("*  m  2024-13-01  1  1  -  -  -\n", "line 1 column 7: since", "not a date");
    expect_error("*  m  2023-02-29  1  1  -  -  -\n", "since", NULL); /* not a leap year */
    expect_error("*  m  24-01-01  1  1  -  -  -\n", "since", NULL);
    expect_error("*  m  4535-01-01  1  1  -  -  -\n", "since", NULL); /* past int64 ns (fuzz_prices) */
    expect_error("*  m  2262-01-01  1  1  -  -  -\n", "since", NULL);
    expect_error("*  m  2024-01-01  1  1\n", "cache_read: missing", NULL);
    expect_error("*\n", "pattern: missing", NULL);
    expect_error("*  (a)\\1  2024-01-01  1  1  -  -  -\n", "pattern", "back-references");
    expect_error("*  a{1000}  2024-01-01  1  1  -  -  -\n", "pattern", "repetition count");
    /* nested repetitions, which glibc's regcomp expands exponentially (the
     * fuzzer's "g+++..." took 1 GB): 16 * 16 * 16 nodes, 2^40, 2^12 */
    expect_error("*  ((a{16}){16}){16}  2024-01-01  1  1  -  -  -\n", "pattern", "too large");
    expect_error("*  g++++++++++++++++++++++++++++++++++++++++p  2024-01-01  1  1  -  -  -\n",
                 "pattern", "repetition of a repetition");
    expect_error("*  ((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+  2024-01-01  1  1  -  -  -\n", "pattern",
                 "too large");
    /* a repetition of a repetition: glibc computes its closure exponentially
     * (the fuzzer's timeout, kept in tests/fuzz/corpus/fuzz_prices) */
    expect_error("*  g+++++\"+++????+++++++  2024-01-01  1  1  -  -  -\n", "pattern",
                 "repetition of a repetition");
    expect_error("*  gpt-4o.*?  2024-01-01  1  1  -  -  -\n", "pattern", "repetition of a repetition");
    expect_error("*  a{2}+  2024-01-01  1  1  -  -  -\n", "pattern", "repetition of a repetition");
    expect_error("*  a)|(b  2024-01-01  1  1  -  -  -\n", "pattern", NULL); /* unbalanced */
    expect_error("*  [abc  2024-01-01  1  1  -  -  -\n", "pattern", NULL);
    char longpat[400];
    memset(longpat, 'a', 300);
    snprintf(longpat + 300, 100, "  2024-01-01  1  1  -  -  -\n");
    char line[500];
    snprintf(line, sizeof(line), "*  %s", longpat);
    expect_error(line, "pattern: longer than 256 bytes", NULL);
    /* the operator file needs no source column; an embedded NUL is refused */
    char err[256];
    pc_price_table *t = with("*  m  2024-01-01  1  1  -  -  -\n", err, sizeof(err));
    CHECK(t != NULL);
    pc_price_table_unref(t);
    t = pc_price_table_parse("*  m\0  2024-01-01  1  1  -  -  -\n", 33, "nul", err, sizeof(err));
    CHECK(t == NULL && strstr(err, "NUL"));
}

static char tmpdir[] = "/tmp/test_prices.XXXXXX";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_reload(void)
{
    char path[256], err[512] = "";
    snprintf(path, sizeof(path), "%s/prices.tsv", tmpdir);
    write_file(path, "*  reload-model  2020-01-01  1  1  -  -  -\n");
    pc_prices *p = pc_prices_create(path, err, sizeof(err));
    CHECK(p != NULL);
    if (!p) return;
    pc_price_table *t = pc_prices_acquire(p);
    CHECK_NEAR(in_price(t, "", "reload-model", 0), 1);
    /* a bad file: reload fails, the table in force stays */
    write_file(path,
               "*  reload-model  2020-01-01  1  1  -  -  -\n*  bad(  2020-01-01  2  2  -  -  -\n");
    CHECK_EQ_INT(pc_prices_reload(p), -1);
    CHECK_EQ_INT(pc_prices_reload_all(), 1);
    pc_price_table *t2 = pc_prices_acquire(p);
    CHECK(t2 == t);
    CHECK_NEAR(in_price(t2, "", "reload-model", 0), 1);
    pc_price_table_unref(t2);
    /* a missing file: the same */
    unlink(path);
    CHECK_EQ_INT(pc_prices_reload(p), -1);
    /* a good file: swapped in; the old table lives on while referenced */
    write_file(path, "*  reload-model  2020-01-01  7  7  -  -  -\n");
    CHECK_EQ_INT(pc_prices_reload_all(), 0);
    t2 = pc_prices_acquire(p);
    CHECK(t2 != t);
    CHECK_NEAR(in_price(t2, "", "reload-model", 0), 7);
    CHECK_NEAR(in_price(t, "", "reload-model", 0), 1);
    pc_price_table_unref(t2);
    pc_price_table_unref(t);
    pc_prices_destroy(p);
    /* a bad file at creation: no source, the error names line and column */
    write_file(path, "*  m  2020-01-01  1  1  -  -  -\n*  m  2020-02-30  1  1  -  -  -\n");
    CHECK(pc_prices_create(path, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "line 2 column 7: since") != NULL);
    unlink(path);
    CHECK_EQ_INT(pc_prices_reload_all(), 0); /* nothing registered any more */
}

/* Lookups on several threads while the table is swapped underneath. */
static pc_prices *race_prices;
static volatile int race_stop;
static int race_bad;

static void *race_lookup(void *arg)
{
    (void)arg;
    char name[32];
    for (int i = 0; !race_stop; i++) {
        pc_price_table *t = pc_prices_acquire(race_prices);
        snprintf(name, sizeof(name), "race-%d", i % 50);
        double v = in_price(t, "", name, 0);
        if (v != 1 && v != 2) __atomic_add_fetch(&race_bad, 1, __ATOMIC_RELAXED);
        pc_price_table_unref(t);
    }
    return NULL;
}

static void test_reload_race(void)
{
    char path[256], err[512];
    snprintf(path, sizeof(path), "%s/race.tsv", tmpdir);
    write_file(path, "*  race-[0-9]+  2020-01-01  1  1  -  -  -\n");
    race_prices = pc_prices_create(path, err, sizeof(err));
    CHECK(race_prices != NULL);
    if (!race_prices) return;
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, race_lookup, NULL);
    for (int i = 0; i < 40; i++) {
        write_file(path, i % 2 ? "*  race-[0-9]+  2020-01-01  1  1  -  -  -\n"
                               : "*  race-[0-9]+  2020-01-01  2  2  -  -  -\n");
        pc_prices_reload(race_prices);
    }
    race_stop = 1;
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT(race_bad, 0);
    pc_prices_destroy(race_prices);
    unlink(path);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_hostile(void)
{
    /* nested stars and alternations that backtracking engines take
     * exponential time on, against the longest name priced (256 bytes,
     * matching nearly to the end) */
    char err[512] = "";
    const char *ops = "*  (a*)*(a*)*(a*)*b               2020-01-01  1  1  -  -  -\n"
                      "*  (a|aa|aaa)*(a|aa)*c            2020-01-01  1  1  -  -  -\n"
                      "*  (.*)*(.*)*(.*)*(.*)*x          2020-01-01  1  1  -  -  -\n"
                      "*  ((a|b)*a(a|b){16}){16}y        2020-01-01  1  1  -  -  -\n";
    pc_price_table *t = with(ops, err, sizeof(err));
    CHECK(t != NULL);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    char name[PC_PRICES_MAX_MODEL + 1];
    memset(name, 'a', PC_PRICES_MAX_MODEL);
    name[PC_PRICES_MAX_MODEL] = '\0';
    double t0 = now_s();
    CHECK_EQ_INT(in_price(t, "", name, 0), -1);
    double first = now_s() - t0;
    /* cached: the same name again costs no regex */
    t0 = now_s();
    for (int i = 0; i < 100000; i++)
        in_price(t, "", name, 0);
    double cached = (now_s() - t0) / 100000;
    fprintf(stderr, "hostile patterns: first lookup %.3f ms, cached %.0f ns\n", first * 1e3,
            cached * 1e9);
    CHECK(first < 2.0);    /* seconds: bounded, not exponential */
    CHECK(cached < 20e-6); /* a hash and a compare, even on a loaded machine */
    /* distinct hostile names (cache misses) stay bounded too */
    t0 = now_s();
    for (int i = 0; i < 50; i++) {
        name[i] = 'b';
        in_price(t, "", name, 0);
    }
    CHECK(now_s() - t0 < 10.0);
    /* names past the bound are not priced, and cost nothing */
    char longname[PC_PRICES_MAX_MODEL + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    longname[sizeof(longname) - 2] = 'b'; /* would match the first pattern */
    CHECK_EQ_INT(in_price(t, "", longname, 0), -1);
    CHECK_NEAR(in_price(t, "", "aaab", 0), 1);
    pc_price_table_unref(t);
}

/* Collects the unpriced set. */
typedef struct seen {
    int n;
    int64_t spans;
    int64_t of_x;
} seen;

static void collect(const char *provider, const char *model, int64_t spans, void *ud)
{
    seen *s = ud;
    s->n++;
    s->spans += spans;
    if (!strcmp(provider, "p") && !strcmp(model, "model-x")) s->of_x = spans;
}

static void *unpriced_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        pc_prices_unpriced_add(S("p"), S("model-x"));
    return NULL;
}

static void test_unpriced(void)
{
    pc_prices_unpriced_reset();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, unpriced_thread, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    seen s = {0};
    pc_prices_unpriced_each(collect, &s);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_INT(s.of_x, 4000); /* no lost updates */
    /* 1,500 more distinct names: 999 kept (1,000 pairs in all), the rest counted */
    char name[32];
    for (int i = 0; i < 1500; i++) {
        snprintf(name, sizeof(name), "m-%d", i);
        pc_prices_unpriced_add(S("p"), S(name));
    }
    pc_prices_unpriced_add(S("p"), S("m-1499")); /* not kept: overflow again */
    pc_prices_unpriced_add(S("p"), S("m-0"));    /* kept: its count grows */
    s = (seen){0};
    pc_prices_unpriced_each(collect, &s);
    CHECK_EQ_INT(s.n, PC_PRICES_UNPRICED_MAX);
    CHECK_EQ_INT(s.spans, 4000 + 999 + 1);
    CHECK_EQ_INT(pc_prices_unpriced_overflow(), 501 + 1);
    /* the same name from two providers is two pairs; long names are cut */
    pc_prices_unpriced_reset();
    pc_prices_unpriced_add(S("a"), S("same"));
    pc_prices_unpriced_add(S("b"), S("same"));
    char longname[1000];
    memset(longname, 'z', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    pc_prices_unpriced_add(S(""), S(longname));
    s = (seen){0};
    pc_prices_unpriced_each(collect, &s);
    CHECK_EQ_INT(s.n, 3);
    pc_prices_unpriced_reset();
}

int main(void)
{
    CHECK(mkdtemp(tmpdir) != NULL);
    RUN(test_shipped_table);
    RUN(test_cost_arithmetic);
    RUN(test_matching_rule);
    RUN(test_override);
    RUN(test_validation);
    RUN(test_reload);
    RUN(test_reload_race);
    RUN(test_hostile);
    RUN(test_unpriced);
    rmdir(tmpdir);
    return CHECK_DONE();
}
