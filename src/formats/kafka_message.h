/*
 * kafka_message.h - the Kafka messages of traces: which encodings exist, how a
 * reader tells them apart, and one decode call for a message in any of them.
 * The encodings themselves live in their formats: prela_json.h (span messages
 * and trace summaries), otlp_proto.h and otlp_json.h (one request per trace
 * per batch, with the conventions of otlp_prela.h).
 *
 * Data flow: normalize → kafka exporter (kafka_record.c: one encoder per
 * message) → librdkafka → brokers → kafka receiver (kafka.c) polls a message →
 * pc_kafka_decode appends its spans to the batch being filled → normalize →
 * exporters. The receiver decodes with the files the exporter encodes with.
 * Pure: no I/O, no globals, so tests drive it directly.
 *
 * Every traces message has key = the trace id, as bytes of the id string (so
 * a trace stays on one partition). Metrics and logs messages carry the
 * receiver's ExportMetricsServiceRequest / ExportLogsServiceRequest protobuf
 * unchanged and have no key; they need no encoder.
 *
 * prela_json: read with pc_prela_json_decode_message (what it restores is in
 * prela_json.h).
 *
 * otlp_proto / otlp_json: an ExportTraceServiceRequest, decoded with the OTLP
 * readers (otlp_proto.h, otlp_json.h), then the Prela conventions undone
 * (pc_otlp_prela_restore): the
 * attributes prela.trace_id / prela.span_id / prela.parent_span_id replace the
 * hex ids and are removed; prela.span_type marks a Prela span: it becomes
 * span_type_text, source becomes prela, the Status.code becomes status_text
 * (OK success, ERROR error, UNSET pending) and status_code 0, and the attribute
 * is removed. A span attribute key that begins with "prela.client." (the
 * encoder's escape of a client's own attribute with a reserved key) loses that
 * prefix and stays an attribute, so a client cannot forge the conventions.
 * The resource keeps its attributes as sent, including
 * prela.project_id (the spans' project) and the service.name the exporter may
 * have added. received_ns is the message's timestamp (the gateway's produce
 * time), as these formats carry no ingest time. Link ids that were not hex are
 * hashes (the format keeps no original for them).
 *
 * Carriers of span events (span.h) travel as spans in every encoding, marked
 * (prela_json: "carrier": true; otlp_*: the attribute prela.carrier, removed
 * by the restore), and come back with pc_span.carrier set; prela_json trace
 * summaries never count them.
 *
 * Memory: the decoder copies the message into the batch's arena first, so the
 * caller may destroy the message afterwards; every span points into that arena.
 */
#ifndef PC_KAFKA_MESSAGE_H
#define PC_KAFKA_MESSAGE_H

#include "span.h"

#include <stddef.h>
#include <stdint.h>

typedef enum pc_kafka_encoding {
    PC_KAFKA_PRELA_JSON = 0,
    PC_KAFKA_OTLP_PROTO,
    PC_KAFKA_OTLP_JSON,
    PC_KAFKA_AUTO, /* each message's own, by pc_kafka_encoding_detect */
} pc_kafka_encoding;

/* Parses "prela_json", "otlp_proto", "otlp_json", "auto" (any case); -1 for
 * anything else. */
int pc_kafka_encoding_parse(const char *s);

/*
 * Which of the three encodings a message of |len| bytes at |buf| is in, from
 * its first bytes (no parse): a first byte '{' followed (after JSON
 * whitespace) by the key "resourceSpans" or "resource_spans" is otlp_json,
 * which OTLP/JSON writers put first (a request has no other field); any other
 * first '{' is prela_json (its objects begin with "trace_id"); anything else is
 * otlp_proto. A protobuf request cannot begin with '{': 0x7B is the tag of
 * field 15 with wire type 3 (a group), which the wire check refuses anyway.
 * Leading whitespace is not skipped: 0x0A ('\n') is the tag protobuf requests
 * begin with. So a storage collector reads topics its gateways write in any
 * encoding, also while they change encoding.
 */
pc_kafka_encoding pc_kafka_encoding_detect(const void *buf, size_t len);

/* What one message turned out to be. */
typedef enum pc_kafka_decoded {
    PC_KAFKA_SPANS = 0, /* spans appended to the batch */
    PC_KAFKA_SUMMARY,   /* a prela_json trace summary, skipped */
    PC_KAFKA_POISON,    /* undecodable; nothing appended; see error */
} pc_kafka_decoded;

typedef struct pc_kafka_decode_result {
    size_t spans;     /* spans appended */
    int64_t rejected; /* otlp_*: spans left out for unusable ids (partial success) */
    char error[512];  /* POISON: why ("attributes: expected an object"); else the
                       * first rejected span's problem, or empty */
} pc_kafka_decode_result;

/*
 * Decodes the message of |len| bytes at |buf| in |encoding| and appends its
 * spans to |b|. |msg_time_ns| is the message timestamp (0 when unknown), used
 * as received_ns where the format carries none. On POISON the batch is left
 * with exactly the spans it had before (some arena bytes may stay used).
 */
pc_kafka_decoded pc_kafka_decode(pc_batch *b, pc_kafka_encoding encoding, const void *buf,
                                 size_t len, int64_t msg_time_ns, pc_kafka_decode_result *res);

#endif
