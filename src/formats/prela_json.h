/*
 * prela_json.h - Prela JSON, in its two dialects:
 *   - the Prela SDK's span objects (prela-wire-format.md), which the prela
 *     receiver reads (/v1/traces, /v1/spans, /v1/batch);
 *   - the kafka exporter's prela_json encoding (span messages and trace
 *     summaries, specified below), which the exporter writes and the kafka
 *     receiver reads back with the same file.
 *
 * Writers only read the spans and append to a pc_buf; they never fail
 * (invalid UTF-8 in strings becomes U+FFFD). Readers append to a pc_batch and
 * name the field in every error.
 *
 * The span message: one UTF-8 JSON object per span, every field of the model
 * (span.h), in this order (topics.spans):
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
 *   carrier                    true for a carrier of span events (span.h), else absent;
 *                              read by pc_prela_json_decode_message only (the Kafka
 *                              and spool reader), never by the Prela receiver
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
 *
 * Reading a span message back restores every field, raw and derived: ids
 * exactly as strings, kind, times in ns, status_code, status_message, flags,
 * typed attributes, events (time_unix_nano), links, resource, scope,
 * project_id, source, received_time_unix_nano (→ received_ns), and the derived
 * span_type, status, service_name, llm_provider, llm_model and tokens. So that
 * normalize (idempotent) derives the same again, the derived values are also
 * written back as the raw hints normalize reads first: span_type →
 * span_type_text, service_name → service_hint, and for Prela spans status →
 * status_text (OTLP spans keep their status_code, from which normalize
 * derives the same status). Lossy by the format, documented: bytes values
 * arrive as their base64 string and non-finite doubles as the strings "NaN" /
 * "Infinity" / "-Infinity" (json.h's writer convention), i.e. as PC_V_STR.
 * Both are stored identically (the stores write attributes with
 * pc_attrs_write_json, which emits exactly those strings), and a genuine
 * string "NaN" could not be told apart, so the reader does not guess. A trace
 * summary (has span_count, no span_id) is recognized and skipped: stores
 * recompute summaries from spans.
 */
#ifndef PC_PRELA_JSON_H
#define PC_PRELA_JSON_H

#include "buf.h"
#include "json.h"
#include "span.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes one Prela SDK span object |obj| into a new span of |b| (source
 * prela). |where| names the object in messages ("spans[3]"). |trace_id|
 * (non-empty: the /v1/traces envelope's) overrides the span's own; |service|
 * is the envelope's service_name hint; |project| the span's project id.
 * Accepted: UUID or free-form ids up to 256 bytes, ISO-8601 timestamps in
 * every form timefmt.h reads or epoch seconds, duration_ms when ended_at is
 * absent, nested attribute values with their types. Returns 0, or -1 with a
 * message naming the field in |err| (then nothing was added).
 */
int pc_prela_json_decode_sdk_span(pc_batch *b, const pc_value *obj, const char *where,
                                  pc_str trace_id, pc_str service, pc_str project, char *err,
                                  size_t errlen);

/*
 * Reads the envelope of a /v1/traces request |root|: its trace_id (required,
 * a string or an integer, at most 256 bytes) and its service_name (optional).
 * Returns 0, or -1 with a message naming the field in |err|.
 */
int pc_prela_json_decode_sdk_trace(pc_batch *b, const pc_value *root, pc_str *trace_id,
                                   pc_str *service, char *err, size_t errlen);

/* Appends the span message of |s|; |received_ns| is pc_span_received's. */
void pc_prela_json_encode_span(pc_buf *out, const pc_span *s, int64_t received_ns);

/* Appends the trace summary of the |n| spans (one trace, n >= 1). */
void pc_prela_json_encode_trace(pc_buf *out, const pc_span *const *spans, size_t n,
                                int64_t received_ns);

/*
 * Reads the message of |len| bytes at |buf| (copied into b's arena first, so
 * the caller may free it): a span message appends one span to |b| and returns
 * 0; a trace summary appends nothing and returns 1; anything else returns -1
 * with the reason in |err| ("events[2].time_unix_nano: expected an integer")
 * and |b| holding exactly the spans it had. |msg_time_ns| is the span's
 * received_ns when the message has no received_time_unix_nano.
 */
int pc_prela_json_decode_message(pc_batch *b, const void *buf, size_t len, int64_t msg_time_ns,
                                 char *err, size_t errlen);

#endif
