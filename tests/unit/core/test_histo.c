/*
 * test_histo.c - the duration bins of histo.h: ordered, contiguous, the value
 * of a bin inside it and within 0.8% of every duration in it.
 */
#include "check.h"
#include "histo.h"

#include <stdlib.h>

static void test_small_durations_are_exact(void)
{
    for (int64_t d = 0; d < 128; d++) {
        CHECK(pc_histo_bin(d) == (int)d);
        CHECK(pc_histo_round(d) == d);
    }
    CHECK(pc_histo_bin(-5) == 0);
    CHECK(pc_histo_round(-5) == 0);
}

static void test_bins_are_ordered_and_cover_every_duration(void)
{
    CHECK(pc_histo_bin(INT64_MAX) == PC_HISTO_BINS - 1);
    CHECK(pc_histo_bin(128) == 128);
    /* every power of two and its neighbours: bins never go down, and step by at most one */
    int last = pc_histo_bin(127);
    for (int e = 7; e < 63; e++) {
        int64_t p = (int64_t)1 << e;
        int a = pc_histo_bin(p - 1), b = pc_histo_bin(p);
        CHECK(a <= b && b - a <= 1);
        CHECK(a >= last);
        last = b;
    }
    /* within one octave, consecutive durations never skip a bin */
    for (int64_t d = 1000; d < 40000; d++)
        CHECK(pc_histo_bin(d + 1) - pc_histo_bin(d) <= 1);
}

static void test_value_lies_in_its_bin_within_one_percent(void)
{
    srand(7);
    for (int i = 0; i < 200000; i++) {
        int top = rand() % 63; /* d in [2^top, 2^(top+1)) */
        int64_t low = (int64_t)rand() << 31 | rand();
        int64_t d = (low & (((int64_t)1 << top) - 1)) | ((int64_t)1 << top);
        int64_t v = pc_histo_round(d);
        CHECK(pc_histo_bin(v) == pc_histo_bin(d));
        double err = (double)(v > d ? v - d : d - v) / (double)d;
        CHECK(err <= 1.0 / 128);
    }
    for (int b = 0; b < PC_HISTO_BINS; b++)
        CHECK(pc_histo_bin(pc_histo_value(b)) == b);
    CHECK(pc_histo_round(1000000) == 1003520); /* 1 ms: bin [999424, 1007616) + 4096 */
}

int main(void)
{
    RUN(test_small_durations_are_exact);
    RUN(test_bins_are_ordered_and_cover_every_duration);
    RUN(test_value_lies_in_its_bin_within_one_percent);
    return CHECK_DONE();
}
