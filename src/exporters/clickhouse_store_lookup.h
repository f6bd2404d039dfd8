/*
 * clickhouse_store_lookup.h - the trace lookups (store.h get_trace, get_spans,
 * count_spans) of the query store over ClickHouse (clickhouse_store.h).
 *
 * Data flow: the query receiver calls them through the store's ops table
 * (clickhouse_store.c); they read with that store's bounded read helpers.
 */
#ifndef PC_CLICKHOUSE_STORE_LOOKUP_H
#define PC_CLICKHOUSE_STORE_LOOKUP_H

#include "clickhouse_store.h"

#include <stdbool.h>

/* store.h's get_trace, get_spans and count_spans, |ctx| a pc_ch_store. */
int pc_ch_store_get_trace(void *ctx, const char *project_id, const char *trace_id,
                          pc_trace_cb cb, void *ud);
int pc_ch_store_get_spans(void *ctx, const char *project_id, const char *trace_id, int limit,
                          int offset, pc_span_cb cb, void *ud);
int pc_ch_store_count_spans(void *ctx, const char *project_id, const char *trace_id,
                            pc_trace_cb cb, void *ud);

/* Called by the store's watch_client as this thread starts serving an API
 * request (|starts|) and as it ends: forgets what the last one found and
 * read, and keeps what this one finds and reads until it ends. */
void pc_ch_store_lookup_request(bool starts);

#endif
