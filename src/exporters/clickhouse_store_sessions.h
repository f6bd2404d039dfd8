/*
 * clickhouse_store_sessions.h - the session list op (store.h list_sessions)
 * of the query store over ClickHouse (clickhouse_store.h).
 *
 * Data flow: the query receiver calls it through the store's ops table
 * (clickhouse_store.c); it reads with that store's bounded read helpers.
 */
#ifndef PC_CLICKHOUSE_STORE_SESSIONS_H
#define PC_CLICKHOUSE_STORE_SESSIONS_H

#include "clickhouse_store.h"

/* store.h's list_sessions, |ctx| a pc_ch_store. */
int pc_ch_store_sessions(void *ctx, const pc_session_filter *f, pc_session_cb cb, void *ud);

#endif
