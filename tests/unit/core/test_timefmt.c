/*
 * test_timefmt.c - lenient ISO-8601 parsing and formatting (src/core/timefmt.c).
 */
#include "check.h"
#include "timefmt.h"

#include <math.h>
#include <stdint.h>

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
    RUN(test_range);
    RUN(test_parse_edges);
    return CHECK_DONE();
}
