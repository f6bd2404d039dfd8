/*
 * kafka.h - the `kafka` exporter: traces, metrics and logs into Apache Kafka
 * (librdkafka), acknowledged durably.
 *
 * Data flow: normalize → kafka: consume() encodes the batch (formats/kafka_message.h
 * specifies every message format), produces each message with acks=all on an
 * idempotent producer, and answers PC_OK only after the brokers acknowledged
 * every message of the batch; past `timeout`, or on a delivery error, it
 * answers PC_RETRY so receivers answer 503 / UNAVAILABLE and clients retry.
 * A message over max_message_bytes is split (otlp encodings) or dropped and
 * counted, never retried. After a fatal producer error it fails what is in
 * flight and recreates the producer; its health op says UNAVAILABLE meanwhile
 * and while no broker is reachable for longer than `timeout`. Read on the
 * other side by the Kafka receiver.
 *
 * Settings: see the options table in kafka.c (brokers, client_id, topics.*,
 * encoding, compression, timeout, max_message_bytes, linger,
 * max_buffered_bytes, security.protocol, sasl.*, tls.*).
 */
#ifndef PC_KAFKA_H
#define PC_KAFKA_H

#include "component.h"

#include <stdint.h>

extern const pc_component_ops pc_kafka_exporter_ops;

/* Counters since create; all monotonic. */
typedef struct pc_kafka_stats {
    int64_t acked;            /* messages the brokers acknowledged */
    int64_t failed;           /* messages whose delivery failed (their batch answered retry) */
    int64_t dropped_messages; /* messages dropped as too large (locally or by a broker) */
    int64_t dropped_spans;    /* spans in the messages dropped locally as too large */
    int64_t recreated;        /* producers recreated after a fatal error */
} pc_kafka_stats;

/* Reads the counters of the kafka exporter |ctx| (test and diagnostics hook). */
void pc_kafka_get_stats(void *ctx, pc_kafka_stats *out);

/*
 * Test hook: raises a fatal error with |reason| on the current producer of the
 * started kafka exporter |ctx| (rd_kafka_test_fatal_error), as the idempotent
 * producer would. 0, or -1 when it could not (no producer, or one pending).
 */
int pc_kafka_inject_fatal(void *ctx, const char *reason);

#endif
