/*
 * fuzz_decompress.c - fuzz target of request body decompression
 * (pc_decompress, decompress.h), which HTTP Content-Encoding and gRPC
 * grpc-encoding both go through before any decoder sees a byte.
 *
 * Input: one selector byte (bits 0-1: gzip, deflate, zstd, or an
 * unsupported encoding, which must be refused; bits 2-7
 * pick the output limit, 1 byte .. 1 MiB), then the compressed body. Checks:
 * a result never exceeds the limit and is NUL-terminated; a refusal says why
 * (corrupt) or is TOO_BIG; the arena holds at most about the limit, so a bomb
 * costs its limit and no more. For gzip, zstd and zlib, a body that inflates
 * is re-compressed and must inflate again to the same bytes.
 */
#include "core/decompress.h"
#include "roundtrip.h"

#include <zlib.h>
#include <zstd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const pc_encoding encs[4] = {PC_ENC_GZIP, PC_ENC_DEFLATE, PC_ENC_ZSTD, PC_ENC_UNKNOWN};

/* Compresses |n| bytes of |p| as |enc| (gzip, zlib or zstd) into a malloc'd block. */
static uint8_t *recompress(pc_encoding enc, const char *p, size_t n, size_t *out_n)
{
    if (enc == PC_ENC_ZSTD) {
        size_t cap = ZSTD_compressBound(n);
        uint8_t *out = malloc(cap);
        *out_n = ZSTD_compress(out, cap, p, n, 1);
        FUZZ_CHECK(!ZSTD_isError(*out_n), "zstd: %s", ZSTD_getErrorName(*out_n));
        return out;
    }
    z_stream z = {0};
    FUZZ_CHECK(deflateInit2(&z, 1, Z_DEFLATED, enc == PC_ENC_GZIP ? 31 : 15, 8,
                            Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
    size_t cap = deflateBound(&z, n);
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)p, z.avail_in = (uInt)n, z.next_out = out, z.avail_out = (uInt)cap;
    FUZZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    pc_encoding enc = encs[data[0] & 3];
    int64_t limit = (int64_t)1 << ((data[0] >> 2) % 21); /* 1 B .. 1 MiB */
    pc_arena *a = pc_arena_create(0);
    char *out = NULL, why[120] = "";
    size_t out_len = 0;
    int rc = pc_decompress(a, enc, data + 1, size - 1, limit, &out, &out_len, why, sizeof(why));
    if (rc == PC_DECOMP_OK) {
        FUZZ_CHECK(out && (int64_t)out_len <= limit, "%zu bytes out, limit %lld", out_len,
                   (long long)limit);
        FUZZ_CHECK(out[out_len] == '\0', "not NUL-terminated");
        FUZZ_CHECK(enc != PC_ENC_UNKNOWN, "an unsupported encoding inflated");
        {
            size_t zn;
            uint8_t *z = recompress(enc, out, out_len, &zn);
            pc_arena *a2 = pc_arena_create(0);
            char *again = NULL;
            size_t again_len = 0;
            rc = pc_decompress(a2, enc, z, zn, limit, &again, &again_len, why, sizeof(why));
            FUZZ_CHECK(rc == PC_DECOMP_OK && again_len == out_len &&
                           memcmp(again, out, out_len) == 0,
                       "%zu bytes re-compressed (%zu) inflate to %zu (rc %d: %s)", out_len, zn,
                       again_len, rc, why);
            pc_arena_destroy(a2);
            free(z);
        }
    } else if (rc == PC_DECOMP_CORRUPT) {
        FUZZ_CHECK(why[0], "corrupt without a reason");
    } else {
        FUZZ_CHECK(rc == PC_DECOMP_TOO_BIG, "rc %d", rc);
    }
    /* Output grows by doubling up to the limit; the arena may keep the old blocks. */
    FUZZ_CHECK((int64_t)pc_arena_used(a) <= 2 * limit + 64, "%zu bytes held for a limit of %lld",
               pc_arena_used(a), (long long)limit);
    pc_arena_destroy(a);
    return 0;
}
