/*
 * otlp.h - what the OTLP formats share: the decode result and the decoder's
 * state (the path of the field being read, errors that name it, ids, project
 * ids, the span caps), id text helpers, and the bodies the OTLP receiver
 * answers with (ExportTraceServiceResponse, google.rpc.Status).
 *
 * The formats: otlp_proto.h (ExportTraceServiceRequest in protobuf, read
 * straight from the wire and written without protobuf-c), otlp_json.h (the
 * same in OTLP/JSON), otlp_signal.h (metrics and logs, checked and passed on
 * as protobuf), protobuf.h (the wire primitives and the wire check they use),
 * otlp_prela.h (how spans of the Prela model travel in OTLP). The decoders
 * know nothing about HTTP, gRPC or Kafka: the otlp receiver, the kafka
 * receiver (kafka_message.h), tests and fuzzers call them directly.
 *
 * Memory: everything decoded lives in the batch's arena; decoders point into
 * the request bytes, so those must live in the same arena (they do when they
 * are the request body) or are copied there first. Nothing here mallocs per
 * span or per attribute.
 *
 * Errors have two levels, as OTLP defines them. A request that cannot be read
 * (bad protobuf, bad JSON, a field of the wrong type, invalid UTF-8) fails as a
 * whole: -1 and a message naming the field ("resource_spans[0].scope_spans[0].
 * spans[3].name: invalid UTF-8"), answered 400. A span with unusable ids (wrong
 * length or all zero) is only left out and counted: partial success.
 */
#ifndef PC_FORMATS_OTLP_H
#define PC_FORMATS_OTLP_H

#include "buf.h"
#include "grpc.h"
#include "span.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a decode did. */
typedef struct pc_otlp_result {
    size_t accepted;  /* spans added to the batch */
    int64_t rejected; /* spans left out (partial success) */
    /* On -1: why the request is invalid (the 400 message). On 0 with
     * rejected > 0: the first rejected span's problem. Empty otherwise. */
    char error[512];
} pc_otlp_result;

/*
 * Appends the ExportTraceServiceResponse for |res| to |out|: JSON ("{}" or
 * {"partialSuccess":{"rejectedSpans":"2","errorMessage":"..."}}) when |json|,
 * else protobuf (empty when nothing was rejected).
 */
void pc_otlp_write_response(pc_buf *out, bool json, const pc_otlp_result *res);

/* Returns the gRPC code for an HTTP error status (400 -> 3, 503 -> 14, ...). */
int pc_otlp_grpc_code(int http_status);

/*
 * Appends a google.rpc.Status {int32 code = 1; string message = 2;} to |out|:
 * {"code":3,"message":"..."} when |json|, else protobuf. |msg| is a C string;
 * invalid UTF-8 in it is replaced so the body is always well-formed.
 */
void pc_otlp_write_status(pc_buf *out, bool json, int code, const char *msg);

/* ------------------------------------------------------------------------ */
/* Shared by the OTLP format files; not for other modules. */
/* Shared by the OTLP format files; not for other modules. */

#define PC_OTLP_PATH_MAX 48

/* One decode in progress: where the batch is, and where in the request we are. */
typedef struct pc_otlp_dec {
    pc_batch *b;
    pc_arena *a;
    pc_otlp_result *res;
    pc_str project;         /* forced project (header), or empty */
    pc_str default_project; /* arena copy of the configured default */
    const pc_span_limits *limits; /* NULL: no caps */
    size_t spans_seen;            /* span messages met so far, kept or not */
    int depth;              /* path depth; only the first PC_OTLP_PATH_MAX are kept */
    struct {
        const char *name;
        size_t n;
        long idx; /* -1: no index */
    } path[PC_OTLP_PATH_MAX];
} pc_otlp_dec;

void pc_otlp_dec_init(pc_otlp_dec *d, pc_batch *b, const char *project, const char *default_project,
                      pc_otlp_result *res);

/* Enters field |name| (|n| bytes, not NUL-terminated), element |idx| or -1. */
static inline void pc_otlp_push(pc_otlp_dec *d, const char *name, size_t n, long idx)
{
    if (d->depth < PC_OTLP_PATH_MAX) {
        d->path[d->depth].name = name;
        d->path[d->depth].n = n;
        d->path[d->depth].idx = idx;
    }
    d->depth++;
}

static inline void pc_otlp_pop(pc_otlp_dec *d)
{
    d->depth--;
}

/* Fails the request: "<path>.<leaf>: <message>" into res->error. |leaf| may be
 * NULL. Returns -1 so callers can `return pc_otlp_fail(...)`. */
int pc_otlp_fail(pc_otlp_dec *d, const char *leaf, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Counts one rejected span and keeps the first message, formatted as above. */
void pc_otlp_reject(pc_otlp_dec *d, const char *leaf, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds |n| to a dropped_attributes_count, saturating at UINT32_MAX. */
void pc_otlp_add_dropped(uint32_t *count, uint64_t n);

/*
 * Turns an id of |n| raw bytes into lowercase hex in the arena. |want| is 16
 * (trace) or 8 (span). An |optional| id (a parent) may be empty or all zero and
 * then becomes the empty string. Anything else of the wrong length or all zero
 * rejects the current span (pc_otlp_reject naming |leaf|) and returns -1.
 * With |out| NULL the id is only checked (nothing is allocated).
 */
int pc_otlp_id(pc_otlp_dec *d, pc_str *out, const uint8_t *p, size_t n, size_t want, bool optional,
               const char *leaf);

/* The project id of the spans under a resource with attributes |resource|. */
pc_str pc_otlp_project(const pc_otlp_dec *d, const pc_attrs *resource);

/* Adds a span to the batch with the fields every OTLP span shares. */
pc_span *pc_otlp_add_span(pc_otlp_dec *d, const pc_attrs *resource, const pc_scope *scope,
                          pc_str project);
/* Takes back the span just added (it turned out to be rejected). */
void pc_otlp_drop_last_span(pc_otlp_dec *d);

/* Counts one span message of the request: 0, or -1 (request failed) past
 * max_spans_per_request. Call before decoding the span. */
int pc_otlp_count_span(pc_otlp_dec *d);
/* Checks the span just added against the caps: 0 kept, 1 over a cap (then it
 * is dropped and rejected, naming the field). */
int pc_otlp_check_span(pc_otlp_dec *d, const pc_span *s);
/* Checks resource or scope attributes |a| at the current path: 0, or -1
 * (request failed) when over a cap. */
int pc_otlp_check_attrs(pc_otlp_dec *d, const pc_attrs *a);

/* Decodes exactly |want| bytes of hex (any case) from |s| into |out|; false when
 * |s| is not 2 * want hex digits. */
bool pc_otlp_hex_decode(pc_str s, uint8_t *out, size_t want);

/* Decodes base64 (standard or URL-safe alphabet, padding optional) into |out| of
 * |cap| bytes. Returns the decoded length, or -1 when |s| is not base64 or does
 * not fit. */
long pc_otlp_b64_decode(pc_str s, uint8_t *out, size_t cap);

/* Maps out-of-range enum values onto "unspecified" so downstream tables stay in range. */
int pc_otlp_clamp_kind(int64_t kind);
int pc_otlp_clamp_status(int64_t code);

#endif
