/*
 * decompress.c - bounded inflation of request bodies (see decompress.h).
 *
 * Output grows in one growable arena block (pc_arena_try_grow: realloc, which
 * glibc turns into mremap for large blocks), by a quarter at a time up to
 * |limit|, and is trimmed to its exact size at the end. The moment the
 * inflated stream would pass |limit| we stop with PC_DECOMP_TOO_BIG, so a
 * compression bomb costs at most |limit| bytes.
 *
 * Why not pc_arena_try_realloc: past the arena's chunk size every grow is a
 * new chunk and the old ones live as long as the arena, so doubling cost
 * about 2.6 times the inflated size; this way the block costs its size (plus
 * at most a quarter while it grows) and the budget is charged just that. gzip and deflate use zlib
 * (deflate tries the zlib wrapper, then raw deflate); zstd uses the streaming
 * API so frames without a content size work too.
 */
#include "decompress.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

pc_encoding pc_encoding_parse(const char *name)
{
    if (!name || !*name || strcasecmp(name, "identity") == 0) return PC_ENC_IDENTITY;
    if (strcasecmp(name, "gzip") == 0 || strcasecmp(name, "x-gzip") == 0) return PC_ENC_GZIP;
    if (strcasecmp(name, "deflate") == 0 || strcasecmp(name, "zlib") == 0) return PC_ENC_DEFLATE;
    if (strcasecmp(name, "zstd") == 0) return PC_ENC_ZSTD;
    return PC_ENC_UNKNOWN;
}

typedef struct outbuf {
    pc_arena *a;
    char *p;
    size_t len, cap;
    int64_t limit;
} outbuf;

/* Makes room for at least one more byte: 0, or PC_DECOMP_TOO_BIG when the
 * limit is reached, PC_DECOMP_OVER_BUDGET when the memory budget refuses. */
static int grow(outbuf *o)
{
    if (o->len < o->cap) return 0;
    if ((int64_t)o->cap >= o->limit) return PC_DECOMP_TOO_BIG;
    size_t cap = o->cap ? o->cap + o->cap / 4 : 16384;
    if ((int64_t)cap > o->limit) cap = (size_t)o->limit;
    char *p = pc_arena_try_grow(o->a, o->p, cap + 1);
    if (!p) return PC_DECOMP_OVER_BUDGET;
    o->p = p;
    o->cap = cap;
    return 0;
}

static int inflate_zlib(outbuf *o, const void *in, size_t n, int wbits, char *why, size_t whylen)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, wbits) != Z_OK) {
        snprintf(why, whylen, "zlib init failed");
        return PC_DECOMP_CORRUPT;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    int rc = PC_DECOMP_OK;
    for (;;) {
        if ((rc = grow(o)) != 0) break;
        zs.next_out = (Bytef *)o->p + o->len;
        zs.avail_out = (uInt)(o->cap - o->len);
        int z = inflate(&zs, Z_NO_FLUSH);
        o->len = o->cap - zs.avail_out;
        if (z == Z_STREAM_END) {
            /* gzip allows several members back to back */
            if (zs.avail_in > 0 && wbits == 15 + 16) {
                inflateReset(&zs);
                continue;
            }
            break;
        }
        if (z == Z_BUF_ERROR && zs.avail_in == 0) {
            snprintf(why, whylen, "truncated compressed stream");
            rc = PC_DECOMP_CORRUPT;
            break;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) {
            snprintf(why, whylen, "%s", zs.msg ? zs.msg : "corrupt compressed stream");
            rc = PC_DECOMP_CORRUPT;
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

static int inflate_zstd(outbuf *o, const void *in, size_t n, char *why, size_t whylen)
{
    ZSTD_DStream *ds = ZSTD_createDStream();
    ZSTD_initDStream(ds);
    ZSTD_inBuffer ib = {in, n, 0};
    int rc = PC_DECOMP_OK;
    size_t last = 1;
    while (ib.pos < ib.size || last != 0) {
        if ((rc = grow(o)) != 0) break;
        ZSTD_outBuffer ob = {o->p + o->len, o->cap - o->len, 0};
        size_t before = ib.pos;
        last = ZSTD_decompressStream(ds, &ob, &ib);
        o->len += ob.pos;
        if (ZSTD_isError(last)) {
            snprintf(why, whylen, "zstd: %s", ZSTD_getErrorName(last));
            rc = PC_DECOMP_CORRUPT;
            break;
        }
        if (ib.pos == ib.size && last != 0 && ob.pos == 0 && before == ib.pos) {
            snprintf(why, whylen, "truncated zstd frame");
            rc = PC_DECOMP_CORRUPT;
            break;
        }
    }
    ZSTD_freeDStream(ds);
    return rc;
}

int pc_decompress(pc_arena *a, pc_encoding enc, const void *in, size_t n, int64_t limit,
                  char **out, size_t *out_len, char *why, size_t whylen)
{
    outbuf o = {.a = a, .limit = limit};
    int rc;
    switch (enc) {
    case PC_ENC_GZIP: rc = inflate_zlib(&o, in, n, 15 + 16, why, whylen); break;
    case PC_ENC_DEFLATE:
        rc = inflate_zlib(&o, in, n, 15, why, whylen);
        if (rc == PC_DECOMP_CORRUPT) {
            o.len = 0;
            rc = inflate_zlib(&o, in, n, -15, why, whylen);
        }
        break;
    case PC_ENC_ZSTD: rc = inflate_zstd(&o, in, n, why, whylen); break;
    default: snprintf(why, whylen, "unsupported encoding"); return PC_DECOMP_CORRUPT;
    }
    if (rc != PC_DECOMP_OK) return rc;
    /* trim to the exact size (a shrink, which never fails) */
    if (!(o.p = pc_arena_try_grow(a, o.p, o.len + 1))) return PC_DECOMP_OVER_BUDGET;
    o.p[o.len] = '\0';
    *out = o.p;
    *out_len = o.len;
    return PC_DECOMP_OK;
}
