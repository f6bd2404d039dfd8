/*
 * kafka_encode.h - the message formats the `kafka` exporter writes, and their
 * encoders. A Kafka receiver decodes exactly these; this comment is the spec.
 *
 * Data flow: normalize → kafka exporter (kafka.c) → pc_batch_group_traces →
 * one encoder per message below → librdkafka. Encoders only read the batch and
 * append to a pc_buf; they never fail (invalid UTF-8 in strings becomes U+FFFD
 * in JSON, and a string with an embedded NUL is cut there in protobuf).
 *
 * Every traces message has key = the trace id, as bytes of the id string
 * (so a trace stays on one partition). Metrics and logs messages carry the
 * receiver's ExportMetricsServiceRequest / ExportLogsServiceRequest protobuf
 * unchanged and have no key; they need no encoder.
 *
 * == prela_json ==
 *
 * topics.spans: one UTF-8 JSON object per span, every field of the model
 * (span.h), in this order:
 *   trace_id, span_id          string, as received
 *   parent_span_id             string, or null for a root span
 *   trace_state                string ("" when none)
 *   name                       string
 *   kind                       "unspecified" | "internal" | "server" | "client" |
 *                              "producer" | "consumer" (OTLP SpanKind 0..5)
 *   span_type                  "agent" | "llm" | "tool" | "retrieval" | "embedding" | "custom"
 *   service_name, project_id   string
 *   source                     "prela" | "otlp"
 *   start_time_unix_nano       integer ns
 *   end_time_unix_nano         integer ns, 0 when the span has not ended
 *   started_at                 "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC, microseconds)
 *   ended_at                   same form, or null when not ended
 *   duration_ms                number (fraction kept), 0.0 when not ended
 *   status                     "success" | "error" | "pending"
 *   status_code                OTLP Status.code as received (0 unset, 1 ok, 2 error)
 *   status_message             string ("" when none)
 *   flags                      integer (OTLP span flags)
 *   attributes                 object; values keep their types: int → integer,
 *                              double → number with a fraction or exponent
 *                              ("NaN"/"Infinity"/"-Infinity" as strings), bool,
 *                              string, bytes → base64 string, array → array,
 *                              map → object, null (pc_attrs_write_json)
 *   events                     [{"name","timestamp" (ISO-8601 as above),"time_unix_nano",
 *                              "attributes"}]
 *   links                      [{"trace_id","span_id","trace_state","attributes"}]
 *   resource                   object of the resource attributes (typed as above)
 *   scope                      {"name","version","attributes"}
 *   llm_provider, llm_model    string, or null when unknown
 *   input_tokens, output_tokens integer, or null when unknown
 *   received_time_unix_nano    integer ns: when the collector accepted the request
 *
 * topics.traces: one JSON object per trace id per batch, summarizing the spans
 * of that trace this batch delivered (a trace's spans may arrive over many
 * batches: a reader merges summaries with min/max/sum, error sticky):
 *   trace_id, project_id       of the first span of the trace in the batch
 *   service_name               the root span's when the root is in the batch, else the first's
 *   source                     the first span's
 *   started_at, start_time_unix_nano     min start of the spans (ISO-8601 as above / ns)
 *   completed_at, end_time_unix_nano     max end (a span not ended counts its start)
 *   duration_ms                (max end - min start) in ms, number
 *   span_count                 spans summarized (only those actually produced)
 *   status                     "error" if any span errored, else "pending" if any
 *                              span is pending, else "success"
 *   root_span_id, root_span_name  the first span without a parent, or null / null
 *   input_tokens, output_tokens   sums of the known token counts (0 when none)
 *   received_time_unix_nano    as above
 *
 * == otlp_proto (the default) / otlp_json ==
 *
 * topics.spans: one ExportTraceServiceRequest per trace id per batch (split
 * into several requests, each a subset of the trace's spans, when one would
 * exceed max_message_bytes), as the OpenTelemetry Collector's Kafka receiver
 * reads them (encodings otlp_proto and otlp_json). otlp_json follows the
 * OTLP/JSON mapping: lowerCamelCase names, ids as lowercase hex, 64-bit
 * integers and times as decimal strings, enums as integers, bytes as base64,
 * empty fields omitted. Nothing goes to topics.traces.
 *
 * Grouping: spans sharing a resource (same resource pointer and project id,
 * and the same service name when the resource has no service.name) form one
 * ResourceSpans; within it, spans sharing a scope form one ScopeSpans; both
 * in order of first appearance. The resource carries its attributes plus
 * `prela.project_id` (the span's project id, replacing any such attribute)
 * and `service.name` (the span's service name, when the resource has none),
 * so a re-decoded span gets the same project and service.
 *
 * Ids: an id of 32 (trace) / 16 (span) lowercase hex digits, not all zero, is
 * written as its 16 / 8 bytes. Any other id (Prela UUIDs, "test-123") is written
 * as derived bytes (a UUID's 16 bytes for trace ids, else a 128/64-bit FNV-1a
 * hash) and the original string is added as the span attribute
 * `prela.trace_id` / `prela.span_id` / `prela.parent_span_id`, which a Prela
 * decoder restores. Link ids use the same mapping without the attribute.
 * Prela spans also get `prela.span_type` (the normalized type; normalize reads
 * it back) and their status as Status.code (success → OK, error → ERROR,
 * pending → UNSET).
 *
 * Reserved attributes: those four keys are the format's, never a client's. A
 * span attribute of the span's own whose key is one of them or begins with
 * PC_KAFKA_ATTR_ESCAPE ("prela.client.") is written with that prefix added,
 * and the decoder removes one prefix again. So every attribute round-trips
 * exactly, and an OTLP client that sends `prela.trace_id` (or `prela.span_type`)
 * cannot choose the ids (or the source) the storage side assigns.
 */
#ifndef PC_KAFKA_ENCODE_H
#define PC_KAFKA_ENCODE_H

#include "buf.h"
#include "span.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_KAFKA_ATTR_ESCAPE "prela.client."

/* True when a span attribute |key| is written escaped (see "Reserved attributes"). */
bool pc_kafka_attr_escaped(pc_str key);

/* Appends the prela_json span message of |s|; |received_ns| is pc_span_received's. */
void pc_kafka_span_json(pc_buf *out, const pc_span *s, int64_t received_ns);

/* Appends the prela_json trace summary of the |n| spans (one trace, n >= 1). */
void pc_kafka_trace_json(pc_buf *out, const pc_span *const *spans, size_t n, int64_t received_ns);

/* Appends one ExportTraceServiceRequest holding the |n| spans, in protobuf. */
void pc_kafka_otlp_proto(pc_buf *out, const pc_span *const *spans, size_t n);

/* Appends the same request in OTLP/JSON. */
void pc_kafka_otlp_json(pc_buf *out, const pc_span *const *spans, size_t n);

#endif
