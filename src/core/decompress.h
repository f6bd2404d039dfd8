/*
 * decompress.h - request body decompression with a hard output limit.
 *
 * Used by http.c for Content-Encoding and later by gRPC for grpc-encoding.
 * The limit is applied to the inflated size while inflating, so a small bomb
 * never allocates more than |limit| bytes. The output is one growable arena
 * block (pc_arena_try_grow), so an arena with a budget (budget.h) is charged
 * as the inflated stream grows and a bomb is stopped when the budget refuses
 * more; the result costs its own size, not the sum of the sizes it grew by.
 */
#ifndef PC_DECOMPRESS_H
#define PC_DECOMPRESS_H

#include "arena.h"

#include <stddef.h>
#include <stdint.h>

typedef enum pc_encoding {
    PC_ENC_IDENTITY = 0,
    PC_ENC_GZIP,
    PC_ENC_DEFLATE, /* zlib (RFC 1950) or raw deflate (RFC 1951), detected */
    PC_ENC_ZSTD,
    PC_ENC_UNKNOWN,
} pc_encoding;

/* Maps a Content-Encoding / grpc-encoding value (NULL = identity) to an encoding. */
pc_encoding pc_encoding_parse(const char *name);

enum { PC_DECOMP_OK = 0, PC_DECOMP_CORRUPT = -1, PC_DECOMP_TOO_BIG = -2, PC_DECOMP_OVER_BUDGET = -3 };

/*
 * Inflates |n| bytes at |in| into a new arena block (NUL-terminated), at most
 * |limit| bytes. Returns PC_DECOMP_OK with |*out|, |*out_len| set, or
 * PC_DECOMP_CORRUPT (with a reason in |why|), PC_DECOMP_TOO_BIG, or
 * PC_DECOMP_OVER_BUDGET when the arena's memory budget refused more output.
 */
int pc_decompress(pc_arena *a, pc_encoding enc, const void *in, size_t n, int64_t limit,
                  char **out, size_t *out_len, char *why, size_t whylen);

#endif
