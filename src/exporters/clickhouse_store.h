/*
 * clickhouse_store.h - the query store over ClickHouse: the store.h reads
 * (list, get trace, get spans, search, health) of the `clickhouse` exporter's
 * tables, for the query receiver.
 *
 * Data flow: query receiver → store ops → SQL from clickhouse_query.c →
 * clickhouse_http.c (a pooled read handle) → TabSeparated answer → the
 * caller's row callbacks. Reads never write: every statement runs under
 * readonly=1 and max_execution_time = query_timeout, with a query_id of its
 * own; a read curl abandons is KILLed on the server (clickhouse_store.c).
 *
 * Ownership: the exporter (clickhouse.c) embeds a pc_ch_store, fills it with
 * pc_ch_store_init and hands out &store; the HTTP connection and the database
 * name are borrowed and must outlive it. Rows handed to callbacks point into
 * the answer and live until the callback returns.
 */
#ifndef PC_CLICKHOUSE_STORE_H
#define PC_CLICKHOUSE_STORE_H

#include "clickhouse_http.h"
#include "clickhouse_query.h"
#include "store.h"

typedef struct pc_ch_store {
    struct pc_store store; /* ops + ctx (this struct) */
    pc_ch_http *http;      /* borrowed */
    const char *id;        /* component name, for log lines; borrowed */
    const char *database;  /* borrowed */
    long query_timeout_s;  /* max_execution_time, whole seconds */
    pc_ch_dialect dialect; /* set by the exporter once the server's version is known */
    uint64_t nonce;        /* query ids are "prela-<nonce>-<n>": unique per store */
    uint64_t queries;      /* reads sent (atomic) */
    uint64_t killed;       /* reads abandoned and KILLed (atomic) */
    /* Spans first written before this (Unix ns) are not in the search index (a
     * database migrated to schema 5 keeps its older spans unindexed): search
     * scans them too. 0: every span is indexed. Set once, before reads. */
    int64_t search_since_ns;
} pc_ch_store;

/* Fills |S|: reads of |database| through |http|, each bounded by
 * |query_timeout_ms| (rounded up to whole seconds, as the server counts). */
void pc_ch_store_init(pc_ch_store *S, pc_ch_http *http, const char *id, const char *database,
                      int64_t query_timeout_ms);

#endif
