/*
 * clickhouse_zip.c - INSERT body compression for the `clickhouse` exporter
 * (see clickhouse_zip.h): gzip through zlib, zstd through libzstd, each with
 * one context kept for the compressor's life and reset per body.
 *
 * Why gzip level 1 and zstd level 1 by default (measured with
 * scripts/bench-pipeline.sh, storage collector, see bench/README.md): the
 * JSONEachRow rows repeat their keys and most values, so the fast levels
 * already shrink them several times over, while gzip's old default level (3)
 * spent a third of the storage collector's CPU in deflate.
 */
#include "clickhouse_zip.h"

#include "mem.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

struct pc_ch_zip {
    pc_ch_codec codec;
    int level;
    z_stream zs;    /* gzip: initialised once, deflateReset per body */
    int zs_ready;
    ZSTD_CCtx *zc;  /* zstd: parameters kept across ZSTD_compress2 calls */
};

static const char *const names[] = {"none", "gzip", "zstd"};

int pc_ch_codec_parse(const char *name)
{
    for (int i = 0; name && i < 3; i++)
        if (strcasecmp(name, names[i]) == 0) return i;
    return -1;
}

const char *pc_ch_codec_name(pc_ch_codec c)
{
    return (unsigned)c < 3 ? names[c] : "none";
}

int pc_ch_codec_default_level(pc_ch_codec c)
{
    return c == PC_CH_CODEC_NONE ? 0 : 1;
}

int pc_ch_codec_level_ok(pc_ch_codec c, int level)
{
    if (level == 0) return 1;
    if (c == PC_CH_CODEC_GZIP) return level >= 1 && level <= 9;
    if (c == PC_CH_CODEC_ZSTD) return level >= 1 && level <= 19;
    return 0;
}

pc_ch_zip *pc_ch_zip_create(pc_ch_codec c, int level)
{
    pc_ch_zip *z = pc_xcalloc(1, sizeof(*z));
    z->codec = c;
    z->level = level ? level : pc_ch_codec_default_level(c);
    if (c == PC_CH_CODEC_GZIP) {
        /* windowBits 15 + 16: a gzip wrapper, as Content-Encoding: gzip means */
        if (deflateInit2(&z->zs, z->level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            abort(); /* only out of memory or bad constants: the OOM policy */
        z->zs_ready = 1;
    } else if (c == PC_CH_CODEC_ZSTD) {
        z->zc = ZSTD_createCCtx();
        if (!z->zc) abort();
        ZSTD_CCtx_setParameter(z->zc, ZSTD_c_compressionLevel, z->level);
        ZSTD_CCtx_setParameter(z->zc, ZSTD_c_checksumFlag, 1);
    }
    return z;
}

void pc_ch_zip_destroy(pc_ch_zip *z)
{
    if (!z) return;
    if (z->zs_ready) deflateEnd(&z->zs);
    ZSTD_freeCCtx(z->zc);
    free(z);
}

pc_ch_codec pc_ch_zip_codec(const pc_ch_zip *z)
{
    return z->codec;
}

/* deflate counts in 32 bits (avail_in, avail_out): a body is fed in slices. */
static int gzip_body(pc_ch_zip *z, pc_buf *out, const char *p, size_t n)
{
    deflateReset(&z->zs);
    size_t bound = deflateBound(&z->zs, (uLong)n);
    pc_buf_reserve(out, bound);
    size_t done = 0;
    int rc = Z_OK;
    while (rc == Z_OK) {
        size_t in_left = n - done, out_left = bound - out->len;
        uInt in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        uInt room = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
        if (!room) break;
        z->zs.next_in = (Bytef *)p + done;
        z->zs.avail_in = in;
        z->zs.next_out = (Bytef *)out->data + out->len;
        z->zs.avail_out = room;
        rc = deflate(&z->zs, in == in_left ? Z_FINISH : Z_NO_FLUSH);
        done += in - z->zs.avail_in;
        out->len += room - z->zs.avail_out;
    }
    if (rc != Z_STREAM_END) {
        pc_buf_reset(out);
        return -1;
    }
    out->data[out->len] = '\0';
    return 0;
}

static int zstd_body(pc_ch_zip *z, pc_buf *out, const char *p, size_t n)
{
    size_t bound = ZSTD_compressBound(n);
    pc_buf_reserve(out, bound);
    size_t r = ZSTD_compress2(z->zc, out->data, bound, p, n);
    if (ZSTD_isError(r)) {
        ZSTD_CCtx_reset(z->zc, ZSTD_reset_session_only);
        pc_buf_reset(out);
        return -1;
    }
    out->len = r;
    out->data[out->len] = '\0';
    return 0;
}

int pc_ch_zip_body(pc_ch_zip *z, pc_buf *out, const char *p, size_t n)
{
    pc_buf_reset(out);
    switch (z->codec) {
    case PC_CH_CODEC_GZIP: return gzip_body(z, out, p, n);
    case PC_CH_CODEC_ZSTD: return zstd_body(z, out, p, n);
    case PC_CH_CODEC_NONE: break;
    }
    pc_buf_append(out, p, n);
    return 0;
}
