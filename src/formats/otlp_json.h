/*
 * otlp_json.h - OTLP traces in OTLP/JSON (the OTLP spec's JSON mapping of
 * ExportTraceServiceRequest): reader and writer, both in otlp_json.c.
 *
 * Who calls them: the otlp receiver (HTTP bodies with Content-Type
 * application/json), the kafka receiver through kafka_message.h, the kafka
 * exporter (encoding otlp_json), tests and fuzzers.
 */
#ifndef PC_OTLP_JSON_H
#define PC_OTLP_JSON_H

#include "formats/otlp.h"

/*
 * Same for OTLP/JSON (the OTLP spec's JSON mapping) in |len| bytes of |text|,
 * which must live as long as |b| (strings point into it). Accepts lowerCamelCase
 * and proto snake_case field names, ids as hex (any case) or, when a client
 * base64-encoded them by mistake, as base64 of the right length, 64-bit integers
 * as strings or numbers, enums as integers or names. Unknown fields are ignored.
 * Error paths name the fields with the keys the request used.
 */
int pc_otlp_json_decode(pc_batch *b, const char *text, size_t len, const char *project,
                        const char *default_project, const pc_span_limits *limits,
                        pc_otlp_result *res);

/*
 * Appends the same request pc_otlp_proto_encode writes, in OTLP/JSON:
 * lowerCamelCase names, ids as lowercase hex, 64-bit integers and times as
 * decimal strings, enums as integers, bytes as base64, empty fields omitted.
 */
void pc_otlp_json_encode(pc_buf *out, const pc_span *const *spans, size_t n);

#endif
