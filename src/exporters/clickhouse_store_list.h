/*
 * clickhouse_store_list.h - the list op (store.h list_traces) of the query
 * store over ClickHouse (clickhouse_store.h).
 *
 * Data flow: the query receiver calls it through the store's ops table
 * (clickhouse_store.c), search (clickhouse_store_search.c) to walk a scan's
 * traces; it reads with that store's bounded read helpers.
 */
#ifndef PC_CLICKHOUSE_STORE_LIST_H
#define PC_CLICKHOUSE_STORE_LIST_H

#include "clickhouse_store.h"

/* store.h's list_traces, |ctx| a pc_ch_store. */
int pc_ch_store_list(void *ctx, const pc_trace_filter *f, pc_trace_cb cb, void *ud);

#endif
