/*
 * clickhouse.h - the `clickhouse` exporter: spans and trace summaries into
 * ClickHouse over its HTTP interface (libcurl), and the query store over it.
 *
 * Data flow: (kafka or another receiver) → normalize → clickhouse: consume()
 * encodes the batch as JSONEachRow rows (clickhouse_sql.h) into the pending
 * INSERT; one flusher thread sends it (group commit across concurrent
 * consumers, by rows and time), gzip-compressed, retried with backoff. A
 * consume returns PC_OK only after the INSERT holding its rows was answered
 * 200 (rows the server refuses alone are set aside in the dead letter,
 * deadletter.h, and counted), PC_RETRY past `timeout`. The query receiver reads the same tables
 * through store() (clickhouse_store.c); both talk to the server through clickhouse_http.c.
 *
 * Settings: see the options table in clickhouse.c (host, port, secure, user,
 * password, database, dialect, timeout, batch.max_rows, batch.max_wait,
 * compression, tls.ca_file, tls.insecure_skip_verify, batch.max_partitions,
 * dead_letter.*).
 */
#ifndef PC_CLICKHOUSE_H
#define PC_CLICKHOUSE_H

#include "component.h"

extern const pc_component_ops pc_clickhouse_exporter_ops;

/* Rows the exporter |ctx| (a clickhouse component's state) has set aside in
 * its dead letter since start. Any thread; 0 before start. */
uint64_t pc_clickhouse_dead_lettered(void *ctx);

#endif
