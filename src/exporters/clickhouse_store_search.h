/*
 * clickhouse_store_search.h - the search op (store.h) of the query store over
 * ClickHouse (clickhouse_store.h): exact substring search through the
 * `clickhouse` exporter's search index, verified as the embedded store
 * verifies (both stores find the same texts).
 *
 * Data flow: the query receiver calls it through the store's ops table
 * (clickhouse_store.c); it reads with that store's bounded read helpers.
 */
#ifndef PC_CLICKHOUSE_STORE_SEARCH_H
#define PC_CLICKHOUSE_STORE_SEARCH_H

#include "clickhouse_store.h"

/* store.h's search, |ctx| a pc_ch_store. */
int pc_ch_store_search(void *ctx, const char *project_id, const char *query, int limit,
                       pc_trace_cb cb, void *ud);

#endif
