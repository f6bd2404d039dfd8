/*
 * fuzz_prices.c - fuzz target of the operator price file (pc_price_table_parse,
 * prices.h) on the input bytes as the file, parsed on top of the shipped table.
 *
 * Checks: a refused file has a message naming the file; an accepted one has at
 * least the shipped entries, prices every name the same way twice (the second
 * time from the cache), and each price found is finite and within 0..1e6 per
 * field; names are taken from the input's own lines, so patterns meet names
 * they were written for. ASan sees any overflow or leak on the way.
 */
#include "processors/prices.h"
#include "roundtrip.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_price(const pc_price *p)
{
    const double f[] = {p->input, p->output, p->cache_read, p->cache_write, p->reasoning};
    for (int i = 0; i < 5; i++)
        FUZZ_CHECK(isfinite(f[i]) && f[i] >= 0 && f[i] <= 1e6, "a price out of range: %g", f[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    static size_t shipped;
    if (!shipped) {
        pc_price_table *b = pc_price_table_builtin();
        shipped = pc_price_table_size(b);
        pc_price_table_unref(b);
    }
    pc_price_table *t = pc_price_table_parse((const char *)data, size, "fuzz.tsv", err, sizeof(err));
    if (!t) {
        FUZZ_CHECK(strstr(err, "fuzz.tsv") != NULL, "a refusal without the file name: %s", err);
        return 0;
    }
    FUZZ_CHECK(pc_price_table_size(t) >= shipped, "fewer entries than shipped");
    /* every whitespace-separated word of the input, as a model name */
    const char *p = (const char *)data, *end = p + size;
    for (int words = 0; p < end && words < 64; words++) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n')) p++;
        const char *w = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\n') p++;
        if (p == w) break;
        pc_str name = {w, (size_t)(p - w)};
        pc_price a, b;
        bool x = pc_price_table_lookup(t, PC_STR_LIT("fuzz"), name, 0, &a);
        bool y = pc_price_table_lookup(t, PC_STR_LIT("fuzz"), name, 0, &b);
        FUZZ_CHECK(x == y, "a second lookup disagrees");
        if (x) {
            check_price(&a);
            FUZZ_CHECK(!memcmp(&a, &b, sizeof(a)), "a cached price differs");
        }
    }
    pc_price_table_unref(t);
    return 0;
}
