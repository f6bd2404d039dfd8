/*
 * test_timefmt.c - lenient ISO-8601 parsing and formatting (src/core/timefmt.c).
 */
#include "check.h"
#include "timefmt.h"

#include <math.h>
#include <stdint.h>
#include <time.h>

static int64_t parse(const char *s)
{
    int64_t ns = -1;
    if (pc_time_parse(s, strlen(s), &ns)) return -1;
    return ns;
}

static void test_forms(void)
{
    const int64_t base = 1737972000LL * 1000000000LL; /* 2025-01-27T10:00:00Z */
    CHECK_EQ_INT(parse("2025-01-27T10:00:00Z"), base);
    CHECK_EQ_INT(parse("2025-01-27T10:00:00"), base);            /* naive = UTC */
    CHECK_EQ_INT(parse("2025-01-27 10:00:00"), base);
    CHECK_EQ_INT(parse("2025-01-27T10:00:00+00:00Z"), base);     /* the Prela SDK */
    CHECK_EQ_INT(parse("2025-01-27T10:00:00.123456+00:00Z"), base + 123456000);
    CHECK_EQ_INT(parse("2025-01-27T12:00:00+02:00"), base);
    CHECK_EQ_INT(parse("2025-01-27T02:00:00-0800"), base);
    CHECK_EQ_INT(parse("2025-01-27T10:00:00.5Z"), base + 500000000);
    CHECK_EQ_INT(parse("2025-01-27T10:00:00.123456789Z"), base + 123456789);
    CHECK_EQ_INT(parse("2025-01-27T10:00Z"), base);
    CHECK_EQ_INT(parse("2025-01-27"), base - 10 * 3600LL * 1000000000LL);
    CHECK_EQ_INT(parse("1970-01-01T00:00:00Z"), 0);
    CHECK_EQ_INT(parse("2024-02-29T00:00:00Z"), 1709164800LL * 1000000000LL);
}

static void test_rejects(void)
{
    const char *bad[] = {"", "yesterday", "2025-13-01", "2025-02-30T00:00:00Z", "2025-01-27T25:00",
                         "2025-01-27T10:00:00.Z", "2025-01-27T10:00:00+", "2025-01-27X10:00",
                         "2023-02-29", "2025-01-27T10:00:00Zjunk"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) CHECK_EQ_INT(parse(bad[i]), -1);
}

static void test_format(void)
{
    char out[32];
    pc_time_format(1737972000123456789LL, out);
    CHECK_EQ_STR(out, "2025-01-27T10:00:00.123456Z");
    pc_time_format(0, out);
    CHECK_EQ_STR(out, "1970-01-01T00:00:00.000000Z");
}

/* pc_time_format before issue 12 (gmtime_r and snprintf): the reference. */
static void ref_format(int64_t ns, char out[32])
{
    int64_t secs = ns / 1000000000LL, rem = ns % 1000000000LL;
    if (rem < 0) {
        rem += 1000000000LL;
        secs--;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    int year = tm.tm_year + 1900;
    if (year < 0) year = 0;
    if (year > 9999) year = 9999;
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", year, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(rem / 1000));
    memcpy(out, tmp, 28);
}

/*
 * The integer civil-date formatter against gmtime on the edges (1970, leap
 * days of 1972/2000/2024, the non-leap 1900 and 2100, the ends of int64 ns:
 * 1677 and 2262, negatives with a fraction) and on random ns across all of
 * int64 (fixed seed). The year clamp to 0..9999 cannot be reached from int64
 * ns (1677..2262); the ends of the range are the extremes there are.
 */
static void test_format_reference(void)
{
    const int64_t S = 1000000000LL;
    const int64_t edge[] = {0, -1, 1, -S, S - 1, -S + 1, 999, -999, 86400 * S - 1, 86400 * S,
                            -86400 * S, -86400 * S - 1, 68169600LL * S, 68256000LL * S,
                            951782400LL * S, 951868800LL * S, 1709164800LL * S,
                            1709251200LL * S - 1, -2203977600LL * S, 4107542400LL * S,
                            4107456000LL * S, INT64_MAX, INT64_MIN, INT64_MIN + 1, INT64_MAX - 1,
                            -9223372036LL * S, 9223372036LL * S, -62135596800LL / 100 * S};
    size_t n_edge = sizeof(edge) / sizeof(edge[0]);
    uint64_t x = 88172645463325252ull;
    int diff = 0;
    for (size_t r = 0; r < 1000000; r++) {
        int64_t ns;
        if (r < n_edge) {
            ns = edge[r];
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ns = r % 4 ? (int64_t)x : (int64_t)(x >> (r % 64)) * (x & 1 ? -1 : 1);
        }
        char got[32], want[32];
        pc_time_format(ns, got);
        ref_format(ns, want);
        if (strcmp(got, want) != 0 && diff++ < 5)
            fprintf(stderr, "%lld: %s != %s\n", (long long)ns, got, want);
    }
    CHECK_EQ_INT(diff, 0);
    char out[32];
    pc_time_format(951782400LL * S + 1500, out); /* 2000-02-29, 1.5 us */
    CHECK_EQ_STR(out, "2000-02-29T00:00:00.000001Z");
    pc_time_format(INT64_MIN, out);
    CHECK_EQ_STR(out, "1677-09-21T00:12:43.145224Z");
    pc_time_format(-1, out);
    CHECK_EQ_STR(out, "1969-12-31T23:59:59.999999Z");
}

/* The checked conversions: the fuzz findings' values, the edges, no UB. */
static void test_range(void)
{
    int64_t ns = 42;
    CHECK_EQ_INT(pc_time_from_secs(10000000000LL, &ns), -1);
    CHECK_EQ_INT(pc_time_from_secs(-1, &ns), -1);
    CHECK_EQ_INT(pc_time_from_secs(INT64_MAX, &ns), -1);
    CHECK_EQ_INT(pc_time_from_secs(INT64_MIN, &ns), -1);
    CHECK_EQ_INT(ns, 42); /* untouched on failure */
    CHECK_EQ_INT(pc_time_from_secs(9223372036LL, &ns), 0);
    CHECK_EQ_INT(ns, 9223372036000000000LL);
    CHECK_EQ_INT(pc_time_from_secs_f(10000000000.5, &ns), -1);
    CHECK_EQ_INT(pc_time_from_secs_f(NAN, &ns), -1);
    CHECK_EQ_INT(pc_time_from_secs_f(INFINITY, &ns), -1);
    CHECK_EQ_INT(pc_time_from_secs_f(-0.5, &ns), -1);
    CHECK_EQ_INT(pc_time_from_secs_f(9223372036.854775807, &ns), -1); /* rounds to 2^63 */
    CHECK_EQ_INT(pc_time_from_secs_f(1737972000.25, &ns), 0);
    CHECK_EQ_INT(ns, 1737972000250000000LL);
    CHECK_EQ_INT(pc_time_add_ms(0, 10092233701582LL, &ns), -1);
    CHECK_EQ_INT(pc_time_add_ms(INT64_MAX - 5, 1, &ns), -1);
    CHECK_EQ_INT(pc_time_add_ms(INT64_MAX - 1000000, 1, &ns), 0);
    CHECK_EQ_INT(ns, INT64_MAX);
    CHECK_EQ_INT(pc_time_add_ms(5000000, -6, &ns), -1); /* before 1970 */
    int64_t t;
    CHECK_EQ_INT(pc_time_parse("2262-04-11T00:00:00Z", 20, &t), 0);
    CHECK_EQ_INT(pc_time_add_ms_f(t, 999999999999.0, &ns), -1);
    CHECK_EQ_INT(pc_time_add_ms_f(t, NAN, &ns), -1);
    CHECK_EQ_INT(pc_time_add_ms_f(t, 1e300, &ns), -1);
    CHECK_EQ_INT(pc_time_add_ms_f(0, 1.5, &ns), 0);
    CHECK_EQ_INT(ns, 1500000);
    CHECK_EQ_INT(pc_time_diff_ns(INT64_MAX, INT64_MIN), INT64_MAX);
    CHECK_EQ_INT(pc_time_diff_ns(INT64_MIN, INT64_MAX), INT64_MIN);
    CHECK_EQ_INT(pc_time_diff_ns(5, 7), -2);
    CHECK(fabs(pc_time_diff_ms(INT64_MAX, INT64_MIN) - 18446744073709.55) < 0.01);
    CHECK(pc_time_diff_ms(1000000, 3000000) == -2.0);
    CHECK(pc_time_in_range(0) && pc_time_in_range(INT64_MAX) && !pc_time_in_range(-1));
}

/* The parser covers all of int64 ns and refuses what lies beyond. */
static void test_parse_edges(void)
{
    int64_t ns;
    CHECK_EQ_INT(pc_time_parse("2262-04-11T23:47:16.854775807Z", 30, &ns), 0);
    CHECK_EQ_INT(ns, INT64_MAX);
    CHECK_EQ_INT(pc_time_parse("2262-04-11T23:47:16.854775808Z", 30, &ns), -1);
    CHECK_EQ_INT(pc_time_parse("1677-09-21T00:12:44Z", 20, &ns), 0);
    CHECK_EQ_INT(ns, -9223372036000000000LL);
    CHECK_EQ_INT(pc_time_parse("1677-09-21T00:12:43Z", 20, &ns), -1);
    CHECK_EQ_INT(pc_time_parse("1969-12-31T23:59:59Z", 20, &ns), 0);
    CHECK_EQ_INT(ns, -1000000000LL);
    CHECK_EQ_INT(pc_time_parse("9999-12-31T23:59:59Z", 20, &ns), -1);
}

int main(void)
{
    RUN(test_forms);
    RUN(test_rejects);
    RUN(test_format);
    RUN(test_format_reference);
    RUN(test_range);
    RUN(test_parse_edges);
    return CHECK_DONE();
}
