/*
 * test_decompress.c - bounded body decompression (src/core/decompress.c).
 */
#include "check.h"
#include "decompress.h"

#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

static pc_arena *A;

static size_t deflate_with(int wbits, const char *in, size_t n, unsigned char *out, size_t cap)
{
    z_stream zs = {0};
    deflateInit2(&zs, 9, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_FINISH);
    size_t len = zs.total_out;
    deflateEnd(&zs);
    return len;
}

static int inflate_to(pc_encoding enc, const void *in, size_t n, int64_t limit, char **out,
                      size_t *len)
{
    char why[120];
    return pc_decompress(A, enc, in, n, limit, out, len, why, sizeof(why));
}

static void test_roundtrips(void)
{
    const char *text = "{\"spans\": [\"hello, compressed world\"]}";
    size_t n = strlen(text);
    unsigned char buf[256];
    char *out;
    size_t len;
    int wbits[] = {15 + 16, 15, -15}; /* gzip, zlib, raw deflate */
    pc_encoding encs[] = {PC_ENC_GZIP, PC_ENC_DEFLATE, PC_ENC_DEFLATE};
    for (int i = 0; i < 3; i++) {
        size_t clen = deflate_with(wbits[i], text, n, buf, sizeof(buf));
        CHECK_EQ_INT(inflate_to(encs[i], buf, clen, 1 << 20, &out, &len), PC_DECOMP_OK);
        CHECK_EQ_INT(len, n);
        CHECK_EQ_STR(out, text);
    }
    size_t zlen = ZSTD_compress(buf, sizeof(buf), text, n, 3);
    CHECK_EQ_INT(inflate_to(PC_ENC_ZSTD, buf, zlen, 1 << 20, &out, &len), PC_DECOMP_OK);
    CHECK_EQ_STR(out, text);
}

static void test_bombs_stop_at_the_limit(void)
{
    size_t big = 64 << 20;
    char *zeros = calloc(1, big);
    size_t cap = big / 100;
    unsigned char *buf = malloc(cap);
    char *out;
    size_t len;
    size_t clen = deflate_with(15 + 16, zeros, big, buf, cap);
    size_t before = pc_arena_used(A);
    CHECK_EQ_INT(inflate_to(PC_ENC_GZIP, buf, clen, 1 << 20, &out, &len), PC_DECOMP_TOO_BIG);
    CHECK(pc_arena_used(A) - before < (3u << 20)); /* never inflated past the limit */
    size_t zlen = ZSTD_compress(buf, cap, zeros, big, 1);
    CHECK_EQ_INT(inflate_to(PC_ENC_ZSTD, buf, zlen, 1 << 20, &out, &len), PC_DECOMP_TOO_BIG);
    free(zeros);
    free(buf);
}

/* The inflated body is one block charged at its own size: a 20 MiB body costs
 * 20 MiB of budget (not the 2.6x that doubling arena blocks cost), and a budget
 * too small for it stops the inflation with PC_DECOMP_OVER_BUDGET. */
static void test_output_charged_at_its_size(void)
{
    size_t big = 20 << 20;
    char *text = malloc(big);
    for (size_t i = 0; i < big; i += 2) memcpy(text + i, "0,", 2);
    size_t cap = big / 50;
    unsigned char *buf = malloc(cap);
    size_t clen = deflate_with(15 + 16, text, big, buf, cap);
    char why[120], *out;
    size_t len;

    pc_budget *b = pc_budget_create(64 << 20);
    pc_arena *a = pc_arena_create(4096);
    pc_arena_set_budget(a, b);
    CHECK_EQ_INT(pc_decompress(a, PC_ENC_GZIP, buf, clen, 32 << 20, &out, &len, why, sizeof(why)),
                 PC_DECOMP_OK);
    CHECK_EQ_INT(len, big);
    CHECK(memcmp(out, text, big) == 0 && out[len] == '\0');
    CHECK(pc_budget_used(b) <= (int64_t)big + 4096);
    CHECK(pc_budget_peak(b) <= (int64_t)(big + big / 4 + 4096)); /* while it grew */
    pc_arena_destroy(a);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    pc_budget_destroy(b);

    b = pc_budget_create(8 << 20);
    a = pc_arena_create(4096);
    pc_arena_set_budget(a, b);
    CHECK_EQ_INT(pc_decompress(a, PC_ENC_GZIP, buf, clen, 32 << 20, &out, &len, why, sizeof(why)),
                 PC_DECOMP_OVER_BUDGET);
    CHECK(pc_arena_over(a));
    CHECK(pc_budget_peak(b) <= 8 << 20);
    pc_arena_destroy(a);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    pc_budget_destroy(b);
    free(text);
    free(buf);
}

static void test_corrupt(void)
{
    char *out;
    size_t len;
    CHECK_EQ_INT(inflate_to(PC_ENC_GZIP, "not gzip", 8, 1 << 20, &out, &len), PC_DECOMP_CORRUPT);
    CHECK_EQ_INT(inflate_to(PC_ENC_ZSTD, "not zstd", 8, 1 << 20, &out, &len), PC_DECOMP_CORRUPT);
    unsigned char buf[256];
    size_t clen = deflate_with(15 + 16, "truncate me please", 18, buf, sizeof(buf));
    CHECK_EQ_INT(inflate_to(PC_ENC_GZIP, buf, clen / 2, 1 << 20, &out, &len), PC_DECOMP_CORRUPT);
}

static void test_encoding_names(void)
{
    CHECK_EQ_INT(pc_encoding_parse(NULL), PC_ENC_IDENTITY);
    CHECK_EQ_INT(pc_encoding_parse("identity"), PC_ENC_IDENTITY);
    CHECK_EQ_INT(pc_encoding_parse("GZIP"), PC_ENC_GZIP);
    CHECK_EQ_INT(pc_encoding_parse("zstd"), PC_ENC_ZSTD);
    CHECK_EQ_INT(pc_encoding_parse("deflate"), PC_ENC_DEFLATE);
    CHECK_EQ_INT(pc_encoding_parse("br"), PC_ENC_UNKNOWN);
}

int main(void)
{
    A = pc_arena_create(4096);
    RUN(test_roundtrips);
    RUN(test_bombs_stop_at_the_limit);
    RUN(test_output_charged_at_its_size);
    RUN(test_corrupt);
    RUN(test_encoding_names);
    pc_arena_destroy(A);
    return CHECK_DONE();
}
