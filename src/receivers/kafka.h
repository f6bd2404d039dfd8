/*
 * kafka.h - the `kafka` receiver: spans from Apache Kafka topics written by the
 * `kafka` exporter (formats/kafka_message.h), consumed at least once.
 *
 * Data flow: brokers → librdkafka high-level consumer (group `group_id`,
 * cooperative-sticky) → one consumer thread polls messages, decodes them
 * (formats/kafka_message.h) into a pc_batch until max_batch_spans or max_batch_wait →
 * pc_consume(next) → on PC_OK the offsets of every message in the batch
 * (poison and summaries included) are committed synchronously. On PC_RETRY
 * the batch is kept, the assigned partitions are paused and the same batch is
 * retried with exponential backoff while polling continues (group membership,
 * rebalances); on PC_DROP the spans are counted as dropped and committed.
 * Nothing is committed that the next consumer did not accept, so a crash
 * redelivers; the stores dedup by (trace_id, span_id).
 *
 * Settings: see the options table in kafka.c (brokers, client_id,
 * security.protocol, sasl.*, tls.* as the exporter's; group_id, topics,
 * encoding, max_batch_spans, max_batch_wait, initial_offset, retry_backoff,
 * max_retry_backoff).
 */
#ifndef PC_KAFKA_RECEIVER_H
#define PC_KAFKA_RECEIVER_H

#include "component.h"

#include <stdint.h>

extern const pc_component_ops pc_kafka_receiver_ops;

/* Counters since create; all monotonic. */
typedef struct pc_kafka_receiver_stats {
    int64_t messages;        /* messages read (all kinds) */
    int64_t spans;           /* spans decoded */
    int64_t summaries;       /* trace summaries skipped */
    int64_t poison;          /* undecodable messages skipped (offset committed) */
    int64_t rejected_spans;  /* spans an OTLP message carried with unusable ids */
    int64_t delivered_spans; /* spans the next consumer accepted (PC_OK) */
    int64_t dropped_spans;   /* spans the next consumer refused for good (PC_DROP) */
    int64_t retries;         /* PC_RETRY answers */
    int64_t commits;         /* successful offset commits */
    int64_t commit_failures; /* failed commits (offsets kept for the next one) */
} pc_kafka_receiver_stats;

/* Reads the counters of the kafka receiver |ctx| (test and diagnostics hook). */
void pc_kafka_receiver_get_stats(void *ctx, pc_kafka_receiver_stats *out);

#endif
