/*
 * kafka_producer.h - an acknowledged, self-healing librdkafka producer: what
 * the `kafka` exporter sends its records (kafka_record.h) through.
 *
 * Data flow: kafka exporter consume() or the spool's drainer →
 * pc_kafka_producer_send(record) → rd_kafka_producev per message → brokers
 * (acks=all, idempotent) → delivery reports on the poll thread → the send's
 * waiter → send returns.
 *
 * pc_kafka_producer_send answers PC_OK once the brokers acknowledged every
 * message of the record, PC_RETRY as soon as one failed or at the deadline,
 * PC_DROP when every message was refused as too large. After a fatal
 * librdkafka error the poll thread fails what is in flight and recreates the
 * producer. The producer tracks whether a broker is reachable (errors,
 * delivery reports, and a metadata probe once a second while unreachable) and
 * calls |on_up| when the brokers answer again.
 *
 * Thread-safety: send, unreachable, health, stats and inject_fatal from any
 * thread between start and shutdown; create/start/shutdown/destroy from one.
 */
#ifndef PC_KAFKA_PRODUCER_H
#define PC_KAFKA_PRODUCER_H

#include "component.h"
#include "kafka.h"
#include "kafka_conf.h"
#include "kafka_record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_kafka_producer pc_kafka_producer;

/* The producer's settings; strings are borrowed until destroy. */
typedef struct pc_kafka_producer_cfg {
    const pc_kafka_conn_cfg *conn;
    const char *topics[PC_KAFKA_T_COUNT]; /* by PC_KAFKA_T_* */
    const char *compression;              /* none, gzip, snappy, lz4, zstd */
    int64_t timeout_ms;                   /* message.timeout.ms; the shutdown flush */
    int64_t max_message_bytes;
    int64_t linger_ms;
    int64_t max_in_flight; /* max.in.flight.requests.per.connection, 1..5 */
    int64_t max_buffered_bytes;
} pc_kafka_producer_cfg;

/* Builds the librdkafka configuration (no producer yet). |on_up| (may be NULL)
 * is called on the poll thread when the brokers answer after being out of
 * reach or after a recreation. NULL after logging as |id| what was refused. */
pc_kafka_producer *pc_kafka_producer_create(const char *id, const pc_kafka_producer_cfg *cfg,
                                            void (*on_up)(void *ctx), void *ctx);
/* Creates the producer and starts the poll thread. 0, or -1 after logging. */
int pc_kafka_producer_start(pc_kafka_producer *P);
/* Stops the poll thread, waits up to timeout (at most 10 s) for what is in
 * flight and purges the rest. Safe without start and safe twice. */
void pc_kafka_producer_shutdown(pc_kafka_producer *P);
/* Shuts down and frees. Accepts NULL. */
void pc_kafka_producer_destroy(pc_kafka_producer *P);

/* Produces every message of the record |rec| of |n| bytes and waits for their
 * acknowledgements until |deadline| (monotonic ns); see above. A malformed
 * record (only possible from a damaged spool) is PC_DROP. |refused| is NULL,
 * or one byte per message of the record, set to nonzero for each message
 * refused as too large (by librdkafka or a broker: MSG_SIZE_TOO_LARGE), so
 * the caller can tell the sender which spans (pc_kafka_record_reject). */
pc_result pc_kafka_producer_send(pc_kafka_producer *P, const void *rec, size_t n, int64_t deadline,
                                 unsigned char *refused);

/* The two halves of send, so one thread can have several records in flight
 * (the spool's drainer): begin produces the messages (librdkafka copies them:
 * |rec| is the caller's again on return) and never returns NULL; end waits for
 * their acknowledgements until the deadline given to begin, answers as send
 * would, and frees the handle. Every begin is paired with one end, on the same
 * thread. */
typedef struct pc_kafka_send pc_kafka_send;
pc_kafka_send *pc_kafka_producer_begin(pc_kafka_producer *P, const void *rec, size_t n,
                                       int64_t deadline);
pc_result pc_kafka_producer_end(pc_kafka_producer *P, pc_kafka_send *s);

/* True while the producer is being replaced, or no broker has been reachable
 * for at least |grace_ns|. */
bool pc_kafka_producer_unreachable(pc_kafka_producer *P, int64_t grace_ns);
/* UNAVAILABLE from a fatal error until the new producer reached a broker, and
 * while no broker has been reachable for longer than timeout; OK otherwise. */
void pc_kafka_producer_health(pc_kafka_producer *P, pc_health *out);
/* Adds the producer's counters to |out|. */
void pc_kafka_producer_add_stats(pc_kafka_producer *P, pc_kafka_stats *out);
/* Test hook: see pc_kafka_inject_fatal (kafka.h). */
int pc_kafka_producer_inject_fatal(pc_kafka_producer *P, const char *reason);

#endif
