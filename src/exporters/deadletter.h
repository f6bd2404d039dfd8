/*
 * deadletter.h - where rows that can never be stored are set aside: a file
 * of JSON lines under a directory, size-capped and rotated, with a counter.
 *
 * Data flow: the `clickhouse` exporter's flusher (clickhouse_flush.c), after
 * bisecting a refused insert down to the rows ClickHouse refuses alone, puts
 * each such row here with the reason and the server's error code; then the
 * rest of the insert is acknowledged, so one bad row never stalls a group
 * commit or a Kafka partition. One line per row:
 *   {"time":RFC 3339,"reason":..,"code":N,"class":"data","table":"spans",
 *    "project_id":..,"trace_id":..,"span_id":..,"row":{the JSONEachRow row}}
 * The file is <directory>/<name>.jsonl; once it would pass max_size it is
 * renamed <name>.jsonl.1 (the .1 before it becomes .2, ... up to max_files;
 * the oldest is deleted). Each put is written and fsync'ed before it returns,
 * since the exporter acknowledges the insert right after.
 *
 * Or, in the storage role, a Kafka topic (prela.deadletter by default):
 * the same line as the message value, keyed by trace id, produced with
 * acks=all; put returns once the broker acknowledged it.
 *
 * Threads: put and count are safe from any thread.
 */
#ifndef PC_DEADLETTER_H
#define PC_DEADLETTER_H

#include "kafka_conf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pc_deadletter pc_deadletter;

/* One row set aside; every string is NUL-terminated and borrowed. */
typedef struct pc_deadletter_entry {
    const char *reason; /* the server's message, one line */
    int code;           /* the ClickHouse error code, 0 when none */
    const char *table;  /* "spans" / "traces" */
    const char *project_id;
    const char *trace_id;
    const char *span_id; /* "" for a trace row */
    const char *row;     /* the row as JSON text */
    size_t row_len;
} pc_deadletter_entry;

/*
 * A file sink <directory>/<name>.jsonl, capped at |max_size| bytes per file
 * with |max_files| rotated files kept. No I/O here: the first put creates the
 * directory and opens the file (appending to what is there). Returns NULL
 * when |directory| is empty, after writing why into |err| (naming the setting
 * "directory"). Free with pc_deadletter_destroy (NULL-safe).
 */
pc_deadletter *pc_deadletter_create(const char *directory, const char *name, int64_t max_size,
                                    int max_files, char *err, size_t errlen);

/*
 * A sink producing to |topic| on the brokers of |conn| (validated by the
 * caller), acks=all; |id| names the component in log lines. A put waits at
 * most |timeout_ms| for the broker's acknowledgement. Returns NULL after
 * logging why.
 */
pc_deadletter *pc_deadletter_create_kafka(const pc_kafka_conn_cfg *conn, const char *topic,
                                          int64_t timeout_ms, const char *id);

void pc_deadletter_destroy(pc_deadletter *D);

/* Appends |e| durably (written and fsync'ed, or acknowledged by Kafka). 0, or -1 after logging why
 * (with |log_id|); the caller must then keep the row (retry), not drop it. */
int pc_deadletter_put(pc_deadletter *D, const pc_deadletter_entry *e, const char *log_id);

/* Rows set aside since create. */
uint64_t pc_deadletter_count(const pc_deadletter *D);

/* The path of the current file, or the topic; owned by |D|. */
const char *pc_deadletter_path(const pc_deadletter *D);

#endif
