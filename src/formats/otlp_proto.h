/*
 * otlp_proto.h - OTLP traces in protobuf (ExportTraceServiceRequest): the
 * reader that fills the span model straight from the request bytes, and the
 * writer that writes a list of spans as one request.
 *
 * Who calls them: the otlp receiver (HTTP and gRPC bodies), the kafka receiver
 * through kafka_message.h (topics written in otlp_proto), the kafka exporter
 * (one request per trace per batch, otlp_prela.h says how Prela spans are
 * carried), tests and fuzzers. The reader is in otlp_proto_decode.c, the
 * writer in otlp_proto_encode.c (each is about 700 lines; one file would be
 * twice the size the house keeps).
 *
 * The pair round-trips: what pc_otlp_proto_encode writes, pc_otlp_proto_decode
 * reads back into the same spans once pc_otlp_prela_restore has undone the
 * Prela conventions (test_otlp_proto_encode, test_kafka_message).
 */
#ifndef PC_OTLP_PROTO_H
#define PC_OTLP_PROTO_H

#include "formats/otlp.h"

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
int pc_otlp_proto_decode(pc_batch *b, const void *buf, size_t len, const char *project,
                         const char *default_project, const pc_span_limits *limits,
                         pc_otlp_result *res);

/*
 * Same, for a request body |buf| that lives in b's arena and as long as |b|
 * (otlp.c: the body is read into the request arena the batch takes over):
 * strings point into it, so it is not copied.
 */
int pc_otlp_proto_decode_body(pc_batch *b, const void *buf, size_t len, const char *project,
                              const char *default_project, const pc_span_limits *limits,
                              pc_otlp_result *res);

/*
 * Appends one ExportTraceServiceRequest holding the |n| spans to |out|, as
 * otlp_prela.h specifies (grouping into ResourceSpans and ScopeSpans, ids,
 * reserved attributes). A span read from OTLP protobuf (pc_span.wire) is
 * copied as it was read, unless one of its attribute keys must be escaped;
 * every other span is written as protobuf-c would pack it (span strings hold
 * no NUL: span.h). Either way the reader gives back the same span.
 */
void pc_otlp_proto_encode(pc_buf *out, const pc_span *const *spans, size_t n);

#endif
