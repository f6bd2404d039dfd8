/*
 * test_timefmt.c - lenient ISO-8601 parsing and formatting (src/core/timefmt.c).
 */
#include "check.h"
#include "timefmt.h"

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

int main(void)
{
    RUN(test_forms);
    RUN(test_rejects);
    RUN(test_format);
    return CHECK_DONE();
}
