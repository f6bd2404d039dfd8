/*
 * otlp_decode.h - OTLP trace requests (protobuf and OTLP/JSON) into a pc_batch,
 * and the bodies the OTLP receiver answers with.
 *
 * Data flow: the otlp receiver (otlp.c) takes over the request arena into a
 * batch, calls pc_otlp_decode_proto or pc_otlp_decode_json on the body, passes
 * the batch down the pipeline and answers with pc_otlp_write_response or, on
 * errors, pc_otlp_write_status. The decoders know nothing about HTTP, so tests
 * and a later gRPC transport call them directly.
 *
 * Files: otlp_wire.c (protobuf traces, read straight from the wire),
 * otlp_proto.c (the protobuf wire check, protobuf-c unpacking), otlp_json.c
 * (OTLP/JSON), otlp_signal.c
 * (metrics and logs, which are checked and passed on as protobuf, not decoded
 * into the span model), otlp_decode.c (what they share: error paths, ids,
 * project ids, and the response encoders).
 *
 * Memory: everything decoded lives in the batch's arena; the JSON decoder points
 * into the request text, so that text must live in the same arena (it does when
 * it is the request body). Nothing here mallocs per span or per attribute.
 *
 * Errors have two levels, as OTLP defines them. A request that cannot be read
 * (bad protobuf, bad JSON, a field of the wrong type, invalid UTF-8) fails as a
 * whole: -1 and a message naming the field ("resource_spans[0].scope_spans[0].
 * spans[3].name: invalid UTF-8"), answered 400. A span with unusable ids (wrong
 * length or all zero) is only left out and counted: partial success.
 */
#ifndef PC_OTLP_DECODE_H
#define PC_OTLP_DECODE_H

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
 * Decodes an ExportTraceServiceRequest of |len| bytes at |buf| (protobuf) and
 * appends its valid spans to |b|. Each span gets source PC_SOURCE_OTLP, ids as
 * lowercase hex, resource and scope pointers shared by the spans of one
 * ResourceSpans / ScopeSpans, and a project id: |project| when it is non-empty
 * (the X-Prela-Project-Id header), else the resource attribute
 * "prela.project_id" when it is a non-empty string, else |default_project|.
 * The body is copied once into b's arena and strings point into the copy, so
 * |buf| may be freed afterwards. Strings keep their length; one holding a NUL
 * (or invalid UTF-8) fails the request naming the field. An attribute of a
 * span, event, link, scope or resource with an empty key is dropped and counted
 * in the owner's dropped_attributes_count (not kept for the resource).
 * |limits| (NULL: none, for what a gateway already checked) caps the request:
 * more than max_spans spans fail it, a resource over a cap fails it, a span
 * over a cap is rejected (partial success) with the field named; counts over
 * a cap are refused before the span is built.
 * Returns 0 (see |res| for partial success) or -1 with |res->error| set
 * ("request is over the memory budget" with pc_arena_over(b->arena) when the
 * memory budget refused; callers answer 429); after -1 the batch may hold some
 * spans and should be dropped. Memory: the copy plus the decoded model, arrays
 * sized exactly, nothing per empty-key attribute.
 */
int pc_otlp_decode_proto(pc_batch *b, const void *buf, size_t len, const char *project,
                         const char *default_project, const pc_span_limits *limits,
                         pc_otlp_result *res);

/*
 * Same, for a request body |buf| that lives in b's arena and as long as |b|
 * (otlp.c: the body is read into the request arena the batch takes over):
 * strings point into it, so it is not copied.
 */
int pc_otlp_decode_proto_body(pc_batch *b, const void *buf, size_t len, const char *project,
                              const char *default_project, const pc_span_limits *limits,
                              pc_otlp_result *res);

/*
 * Same for OTLP/JSON (the OTLP spec's JSON mapping) in |len| bytes of |text|,
 * which must live as long as |b| (strings point into it). Accepts lowerCamelCase
 * and proto snake_case field names, ids as hex (any case) or, when a client
 * base64-encoded them by mistake, as base64 of the right length, 64-bit integers
 * as strings or numbers, enums as integers or names. Unknown fields are ignored.
 * Error paths name the fields with the keys the request used.
 */
int pc_otlp_decode_json(pc_batch *b, const char *text, size_t len, const char *project,
                        const char *default_project, const pc_span_limits *limits,
                        pc_otlp_result *res);

/*
 * Checks an ExportMetricsServiceRequest or ExportLogsServiceRequest (|b->signal|
 * is PC_SIGNAL_METRICS or PC_SIGNAL_LOGS) of |len| bytes at |buf|, protobuf or
 * (when |json|) OTLP/JSON, and sets |b->raw| to its protobuf encoding and
 * |b->items| to the number of data points (metrics) or log records (logs) in it.
 * For protobuf, raw is |buf| itself, so |buf| must live as long as |b| (it does
 * when it is the request body in b's arena); for JSON, raw is a re-encoding in
 * b's arena, with the same liberal rules as pc_otlp_decode_json (names in either
 * case, hex or base64 ids, 64-bit integers as strings or numbers, enum names).
 * Returns 0, or -1 with |res->error| naming the field ("resource_metrics[0].
 * scope_metrics[0].metrics[2].gauge: ..."); res->accepted is set to items.
 */
int pc_otlp_decode_signal(pc_batch *b, const void *buf, size_t len, bool json, pc_otlp_result *res);

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
/* Shared by otlp_proto.c, otlp_json.c and otlp_signal.c; not for other modules. */
/* ------------------------------------------------------------------------ */

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

struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;

/*
 * Checks |len| bytes at |buf| as a protobuf message of type |desc|: well-formed
 * as protobuf-c requires (tags, lengths, wire types of known fields, no
 * groups) and nested at most 100 deep. Returns 0, or -1 after pc_otlp_fail
 * ("invalid protobuf at byte 12: ..."). In otlp_proto.c.
 */
int pc_otlp_wire_check(pc_otlp_dec *d, const struct ProtobufCMessageDescriptor *desc,
                       const void *buf, size_t len);

/*
 * Checks |len| bytes at |buf| as a protobuf message of type |desc| (as
 * pc_otlp_wire_check) and unpacks it into d's arena within a budget
 * proportional to |len|. Returns the message, which lives as long as the arena,
 * or NULL after pc_otlp_fail ("invalid protobuf at byte 12: ..."). Strings are
 * not checked for UTF-8. In otlp_proto.c; otlp_signal.c uses it too.
 */
struct ProtobufCMessage *pc_otlp_unpack(pc_otlp_dec *d,
                                        const struct ProtobufCMessageDescriptor *desc,
                                        const void *buf, size_t len);

/* Reads the protobuf varint at p[*i] (n bytes in all) into |out| and advances *i.
 * Returns 0, or -1 when it is truncated or longer than 10 bytes. Inline: the
 * wire pre-scans call it for every field. */
static inline int pc_otlp_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t c = p[(*i)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Reads a field tag at p[*i] into |key| (field number << 3 | wire type) as
 * protobuf-c does: at most 5 bytes, and a one-byte tag must not name field 0
 * (a longer one may: protobuf-c takes it for an unknown field). 0 or -1. */
static inline int pc_otlp_tag(const uint8_t *p, size_t n, size_t *i, uint64_t *key)
{
    if (*i < n && p[*i] < 0x80) { /* the usual case */
        *key = p[(*i)++];
        return *key >= 8 ? 0 : -1;
    }
    size_t at = *i;
    return pc_otlp_varint(p, n, i, key) || *i - at > 5 ? -1 : 0;
}

/* Reads a length prefix at p[*i] as protobuf-c does: at most 5 bytes, and the
 * value is their low 32 bits. 0 or -1. */
static inline int pc_otlp_length(const uint8_t *p, size_t n, size_t *i, uint64_t *len)
{
    if (*i < n && p[*i] < 0x80) {
        *len = p[(*i)++];
        return 0;
    }
    size_t at = *i;
    if (pc_otlp_varint(p, n, i, len) || *i - at > 5) return -1;
    *len = (uint32_t)*len;
    return 0;
}

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
