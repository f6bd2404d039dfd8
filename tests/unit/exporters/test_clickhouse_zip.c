/*
 * test_clickhouse_zip.c - the `clickhouse` exporter's body compression
 * (clickhouse_zip.c), no server: random bodies (random bytes, repetitive
 * JSON-like rows, empty) through each codec and level, decoded back by zlib's
 * inflate and libzstd's own decoder as oracles; one compressor reused across
 * many bodies (its state is reset per body); the codec names and level
 * rules the option checks use. The server side of the codecs is
 * tests/integration/test_clickhouse.py (gzip, none, and auto's fallback).
 */
#include "check.h"

#include "exporters/clickhouse_zip.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* A body of about |n| bytes: random bytes, or rows that repeat like an insert's. */
static void make_body(pc_buf *b, size_t n, int kind)
{
    pc_buf_reset(b);
    if (kind == 0) {
        for (size_t i = 0; i < n; i++) pc_buf_putc(b, (char)next());
        return;
    }
    while (b->len < n)
        pc_buf_printf(b, "{\"span_id\":\"%08x\",\"name\":\"llm.chat\",\"start_ns\":%u}\n", next(),
                      next() % 1000);
}

/* Decodes |z| (|c|) with the library's own decoder into |out|; 0 when it is a
 * complete, valid stream. */
static int oracle(pc_ch_codec c, const pc_buf *z, pc_buf *out, size_t expect)
{
    pc_buf_reset(out);
    pc_buf_reserve(out, expect + 1);
    if (c == PC_CH_CODEC_ZSTD) {
        size_t r = ZSTD_decompress(out->data, expect + 1, z->data, z->len);
        if (ZSTD_isError(r)) return -1;
        out->len = r;
        return 0;
    }
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 15 + 16) != Z_OK) return -1; /* gzip wrapper only */
    zs.next_in = (Bytef *)z->data;
    zs.avail_in = (uInt)z->len;
    zs.next_out = (Bytef *)out->data;
    zs.avail_out = (uInt)(expect + 1);
    int rc = inflate(&zs, Z_FINISH);
    out->len = zs.total_out;
    inflateEnd(&zs);
    return rc == Z_STREAM_END ? 0 : -1;
}

static void test_round_trip(void)
{
    static const size_t sizes[] = {0, 1, 100, 4096, 65537, 1 << 20, 3 << 20};
    const struct {
        pc_ch_codec c;
        int level;
    } cases[] = {{PC_CH_CODEC_GZIP, 0}, {PC_CH_CODEC_GZIP, 1}, {PC_CH_CODEC_GZIP, 9},
                 {PC_CH_CODEC_ZSTD, 0}, {PC_CH_CODEC_ZSTD, 1}, {PC_CH_CODEC_ZSTD, 19},
                 {PC_CH_CODEC_NONE, 0}};
    pc_buf body = PC_BUF_INIT, z = PC_BUF_INIT, back = PC_BUF_INIT;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        pc_ch_zip *zip = pc_ch_zip_create(cases[k].c, cases[k].level); /* reused below */
        CHECK(pc_ch_zip_codec(zip) == cases[k].c);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            if (cases[k].level == 19 && sizes[i] > 65537) continue; /* slow level, small bodies */
            for (int kind = 0; kind < 2; kind++) {
                make_body(&body, sizes[i], kind);
                CHECK_EQ_INT(pc_ch_zip_body(zip, &z, body.data ? body.data : "", body.len), 0);
                if (cases[k].c == PC_CH_CODEC_NONE) {
                    CHECK(z.len == body.len && (!z.len || !memcmp(z.data, body.data, z.len)));
                    continue;
                }
                CHECK_EQ_INT(oracle(cases[k].c, &z, &back, body.len), 0);
                CHECK(back.len == body.len && (!back.len || !memcmp(back.data, body.data, back.len)));
                if (kind == 1 && body.len >= 4096) CHECK(z.len * 3 < body.len); /* it compresses */
            }
        }
        pc_ch_zip_destroy(zip);
    }
    pc_ch_zip_destroy(NULL);
    pc_buf_free(&body);
    pc_buf_free(&z);
    pc_buf_free(&back);
}

static void test_names_and_levels(void)
{
    CHECK_EQ_INT(pc_ch_codec_parse("gzip"), PC_CH_CODEC_GZIP);
    CHECK_EQ_INT(pc_ch_codec_parse("ZSTD"), PC_CH_CODEC_ZSTD);
    CHECK_EQ_INT(pc_ch_codec_parse("none"), PC_CH_CODEC_NONE);
    CHECK_EQ_INT(pc_ch_codec_parse("auto"), -1); /* the exporter resolves auto itself */
    CHECK_EQ_INT(pc_ch_codec_parse("br"), -1);
    CHECK_EQ_INT(pc_ch_codec_parse(NULL), -1);
    CHECK_EQ_STR(pc_ch_codec_name(PC_CH_CODEC_GZIP), "gzip");
    CHECK_EQ_STR(pc_ch_codec_name(PC_CH_CODEC_ZSTD), "zstd");
    CHECK(pc_ch_codec_level_ok(PC_CH_CODEC_GZIP, 0) && pc_ch_codec_level_ok(PC_CH_CODEC_GZIP, 9));
    CHECK(!pc_ch_codec_level_ok(PC_CH_CODEC_GZIP, 10));
    CHECK(pc_ch_codec_level_ok(PC_CH_CODEC_ZSTD, 19) && !pc_ch_codec_level_ok(PC_CH_CODEC_ZSTD, 20));
    CHECK(pc_ch_codec_level_ok(PC_CH_CODEC_NONE, 0) && !pc_ch_codec_level_ok(PC_CH_CODEC_NONE, 1));
    CHECK_EQ_INT(pc_ch_codec_default_level(PC_CH_CODEC_GZIP), 1);
}

int main(void)
{
    RUN(test_round_trip);
    RUN(test_names_and_levels);
    return CHECK_DONE();
}
