/*
 * kafka_record.h - a batch as the list of Kafka messages it becomes, in one
 * buffer: what the `kafka` exporter produces and what its disk spool stores.
 *
 * Data flow: normalize → kafka consume() → pc_kafka_record_encode (messages
 * encoded by the formats of kafka_message.h) → produced from the record → on a missed deadline
 * the same record is appended to the spool (spooler.h) → the drainer reads it
 * back with pc_kafka_record_next and produces it again.
 *
 * Record format, version 1 (stored on disk: a change bumps the version and
 * keeps reading version 1; integers little-endian):
 *   version u8 (= 1)
 *   message*   topic u8 (PC_KAFKA_T_*) | spans u32 | key_len u32 | value_len u32 |
 *              key (key_len bytes) | value (value_len bytes)
 * `spans` is how many spans the message carries (for drop accounting).
 */
#ifndef PC_KAFKA_RECORD_H
#define PC_KAFKA_RECORD_H

#include "buf.h"
#include "formats/kafka_message.h"
#include "span.h"

#include <stddef.h>
#include <stdint.h>

#define PC_KAFKA_RECORD_VERSION 1u

/* Topics, as stored in a record. */
enum { PC_KAFKA_T_TRACES = 0, PC_KAFKA_T_SPANS, PC_KAFKA_T_METRICS, PC_KAFKA_T_LOGS, PC_KAFKA_T_COUNT };

/* Bytes librdkafka adds to key + value when it checks message.max.bytes
 * (record v2 framing, generously rounded up). */
#define PC_KAFKA_MSG_OVERHEAD 64

/* One message of a record; the pointers borrow from the record. */
typedef struct pc_kafka_msg {
    int topic;
    uint32_t spans;
    pc_str key; /* n == 0: no key */
    const char *value;
    size_t len;
} pc_kafka_msg;

/* What encoding left out because it was over max_bytes (and rejected). */
typedef struct pc_kafka_drops {
    size_t messages;
    size_t spans;
} pc_kafka_drops;

/*
 * Appends to the empty |rec| the record of batch |b|: traces in |encoding|
 * (prela_json: one message per span, then the summary of the spans kept;
 * otlp_*: one request per trace, halved until each fits), metrics and logs as
 * one message of the raw request. A message whose key + value + framing
 * exceeds |max_bytes| is left out, counted in |drops|, logged as |id|, and
 * its spans are rejected on |b| (pc_batch_reject; a metrics/logs batch is
 * rejected whole) so the receiver tells the client. Returns the number of
 * messages in the record.
 */
size_t pc_kafka_record_encode(pc_buf *rec, pc_batch *b, pc_kafka_encoding encoding, size_t max_bytes,
                              const char *id, pc_kafka_drops *drops);

/*
 * Rejects on |b| (pc_batch_reject, reason |why|) the spans of the messages the
 * brokers refused as too large: |refused| has one byte per message of the
 * record pc_kafka_record_encode made of |b| with the same |encoding| and
 * |max_bytes| (|n| of them), nonzero for a refused one. Encoding is
 * deterministic, so this encodes again (into scratch memory, on this rare
 * path) to learn which spans each message carried; a refused metrics/logs
 * message rejects the whole batch, a refused trace summary (prela_json) the
 * spans it summarises.
 */
void pc_kafka_record_reject(pc_batch *b, pc_kafka_encoding encoding, size_t max_bytes,
                            const unsigned char *refused, size_t n, const char *why);

/*
 * Reads the message at *|pos| (start with 0) of the record |rec| of |n| bytes
 * into |m| and advances *|pos|. Returns 1, 0 at the end, or -1 when the record
 * is malformed (wrong version, a length past the end, an unknown topic).
 */
int pc_kafka_record_next(const void *rec, size_t n, size_t *pos, pc_kafka_msg *m);

#endif
