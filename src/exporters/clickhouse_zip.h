/*
 * clickhouse_zip.h - the compression of INSERT bodies sent to ClickHouse:
 * which codecs there are, their HTTP Content-Encoding, and a compressor whose
 * state stays warm from one body to the next.
 *
 * Data flow: the flusher (clickhouse_flush.c) builds a block's JSONEachRow body, compresses
 * it here once (whatever the retries), and clickhouse_http.c POSTs it with the
 * codec's Content-Encoding; the server decompresses before parsing.
 *
 * Why a warm compressor: a fresh deflate or zstd context per body allocates
 * (and, past the process's 1 MiB mmap threshold, maps and faults in) its whole
 * workspace each time; the flusher keeps one compressor for its life, reset
 * per body, so a body costs the compression and nothing else.
 *
 * Codecs: gzip (every ClickHouse, 18.16 included), zstd (modern servers; 18.16
 * answers "Unknown Content-Encoding of HTTP request: zstd", code 89, which is
 * why the exporter's `compression: auto` asks the server first), none.
 * Threads: a compressor belongs to one thread at a time.
 */
#ifndef PC_CLICKHOUSE_ZIP_H
#define PC_CLICKHOUSE_ZIP_H

#include "buf.h"

#include <stddef.h>

typedef enum pc_ch_codec {
    PC_CH_CODEC_NONE = 0,
    PC_CH_CODEC_GZIP,
    PC_CH_CODEC_ZSTD,
} pc_ch_codec;

/* "none", "gzip" or "zstd" (case-insensitive) as a codec; -1 for anything else. */
int pc_ch_codec_parse(const char *name);
/* The codec's name, which is also its Content-Encoding ("none": send none). */
const char *pc_ch_codec_name(pc_ch_codec c);
/* The level a codec gets when the setting is 0 (see the `compression_level`
 * option): gzip 1, zstd 1. */
int pc_ch_codec_default_level(pc_ch_codec c);
/* Whether |level| is valid for |c|: 0 (the default) or gzip 1..9, zstd 1..19. */
int pc_ch_codec_level_ok(pc_ch_codec c, int level);

typedef struct pc_ch_zip pc_ch_zip;

/* A compressor for |c| at |level| (0: the codec's default). Never NULL (the
 * allocator aborts on OOM). Free with pc_ch_zip_destroy (NULL-safe). */
pc_ch_zip *pc_ch_zip_create(pc_ch_codec c, int level);
void pc_ch_zip_destroy(pc_ch_zip *z);
pc_ch_codec pc_ch_zip_codec(const pc_ch_zip *z);

/*
 * Replaces the contents of |out| with |n| bytes at |p| in the compressor's
 * codec (a complete gzip member or zstd frame; for none a copy). 0, or -1 when
 * the codec library failed (|out| is then empty): the caller sends the body
 * uncompressed instead.
 */
int pc_ch_zip_body(pc_ch_zip *z, pc_buf *out, const char *p, size_t n);

#endif
