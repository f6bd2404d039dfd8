/*
 * fuzz_timefmt.c - fuzz target of the timestamp parser and the checked time
 * arithmetic (timefmt.h), which every receiver applies to client times.
 *
 * Input: the text given to pc_time_parse. The same bytes, read as integers
 * and a double, also go through the checked conversions. Checks: a parsed
 * time in the collector's range formats and parses back to itself (to the
 * microsecond the format keeps); every checked conversion that succeeds lies in
 * range; diffs saturate. UBSan (float-cast-overflow included) catches
 * undefined arithmetic on the way.
 */
#include "core/timefmt.h"
#include "roundtrip.h"

#include <math.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads 8 bytes at |off| (zero-padded past the end). */
static uint64_t word(const uint8_t *data, size_t size, size_t off)
{
    uint64_t w = 0;
    for (size_t i = 0; i < 8; i++)
        w = w << 8 | (off + i < size ? data[off + i] : 0);
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ns = -1;
    if (pc_time_parse((const char *)data, size, &ns) == 0 && pc_time_in_range(ns)) {
        char out[32], again_text[32];
        pc_time_format(ns, out);
        int64_t again = -1;
        FUZZ_CHECK(pc_time_parse(out, strlen(out), &again) == 0, "'%s' does not parse back", out);
        FUZZ_CHECK(again == ns - ns % 1000, "%lld formats as '%s', which parses as %lld",
                   (long long)ns, out, (long long)again);
        pc_time_format(again, again_text);
        FUZZ_CHECK(strcmp(out, again_text) == 0, "'%s' formats again as '%s'", out, again_text);
    }
    int64_t a = (int64_t)word(data, size, 0), b = (int64_t)word(data, size, 8), r;
    double d;
    uint64_t bits = word(data, size, 16);
    memcpy(&d, &bits, sizeof(d));
    if (pc_time_from_secs(a, &r) == 0) FUZZ_CHECK(pc_time_in_range(r), "from_secs(%lld)", (long long)a);
    if (pc_time_from_secs_f(d, &r) == 0) FUZZ_CHECK(pc_time_in_range(r), "from_secs_f(%g)", d);
    if (pc_time_in_range(a)) {
        if (pc_time_add_ms(a, b, &r) == 0)
            FUZZ_CHECK(pc_time_in_range(r), "add_ms(%lld, %lld)", (long long)a, (long long)b);
        if (pc_time_add_ms_f(a, d, &r) == 0)
            FUZZ_CHECK(pc_time_in_range(r), "add_ms_f(%lld, %g)", (long long)a, d);
    }
    int64_t diff = pc_time_diff_ns(a, b);
    FUZZ_CHECK((a >= b) == (diff >= 0), "diff_ns(%lld, %lld) = %lld", (long long)a, (long long)b,
               (long long)diff);
    double ms = pc_time_diff_ms(a, b);
    FUZZ_CHECK(isfinite(ms) && (a >= b) == (ms >= 0), "diff_ms(%lld, %lld) = %g", (long long)a,
               (long long)b, ms);
    return 0;
}
