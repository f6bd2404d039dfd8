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
#include "clickhouse_tsv.h"
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
    /* Spans first written before this (Unix ns) are not in the search index (a
     * database migrated to schema 5 keeps its older spans unindexed): search
     * scans them too. 0: every span is indexed. Set once, before reads. */
    int64_t search_since_ns;
    /* Stats read the hour rollups built `rollup_settle` or more after their
     * hour's latest write (clickhouse_stats.h); -1: never. Set before reads. */
    long rollup_settle_s;
} pc_ch_store;

/* Fills |S|: reads of |database| through |http|, each bounded by
 * |query_timeout_ms| (rounded up to whole seconds, as the server counts). */
void pc_ch_store_init(pc_ch_store *S, pc_ch_http *http, const char *id, const char *database,
                      int64_t query_timeout_ms);

/*
 * The read helpers of the store's modules (clickhouse_store_list.c,
 * clickhouse_store_sessions.c, clickhouse_store_search.c).
 *
 * pc_ch_store_run: runs the read-only statement |sql| under readonly=1,
 * max_execution_time = query_timeout, its own query_id (killed if abandoned)
 * and the URL settings |extra| ("a=1&b=2"); 0 with the answer in |out|,
 * PC_STORE_TIMEOUT when the server or curl gave up at the time limit,
 * PC_STORE_TOO_BIG past the server's memory limit for one query or past the
 * answer's size limits |extra| sets (max_result_rows / max_result_bytes with
 * result_overflow_mode=throw), or -1 after logging that |what| failed.
 * pc_ch_store_deliver: hands each TabSeparated row of |ncols| columns of the
 * answer |out| (freed) to |row| (a non-zero return stops); -1 after logging a
 * row of another width. pc_ch_store_each_row: pc_ch_store_run of |sql|
 * (freed), then pc_ch_store_deliver. pc_ch_store_trace_row: a |row| for trace
 * summaries, |cb| a pc_trace_cb.
 */
/* The URL settings of every read but search: the server's query priority 1,
 * the highest (0 would be "none"); searches run at 2. */
#define PC_CH_READ_SETTINGS "priority=1"
int pc_ch_store_run(pc_ch_store *S, const char *sql, const char *what, const char *extra,
                    pc_buf *out);
int pc_ch_store_deliver(pc_ch_store *S, pc_buf *out, const char *what, int ncols,
                        int (*row)(char **cols, void *cb, void *ud), void *cb, void *ud);
int pc_ch_store_each_row(pc_ch_store *S, pc_buf *sql, const char *what, const char *extra,
                         int ncols, int (*row)(char **cols, void *cb, void *ud), void *cb,
                         void *ud);
int pc_ch_store_trace_row(char **cols, void *cb, void *ud);

/* After a window of the traces rows' start times [below, ...] in which a
 * windowed read (a trace list, a session list) found nothing: the newest
 * start of a traces row of |project_id| (every project's when NULL) below
 * |below| and at or after |start_ns| (0: no floor), into |*newest|, looked
 * for in ranges 16 times wider each time (from 16 windows of |width|), so
 * that a store whose newest traces are days old costs a few reads of one
 * column (pc_ch_sql_list_newest). 1 when found, 0 when no row lies below,
 * or <0. */
int pc_ch_store_newest_below(pc_ch_store *S, const char *project_id, int64_t start_ns,
                             int64_t below, int64_t width, int64_t *newest);

/* A raw read's bounds (trace lookups, list pages): pc_ch_capped_settings
 * writes into |out| (PC_CH_CAPPED_LEN bytes) the URL settings under which
 * the server stops a read past |rows| rows or |bytes| bytes of answer
 * (result_overflow_mode=throw: code 396, PC_STORE_TOO_BIG); the collector
 * checks the answer against the same with pc_ch_capped_within, as the chDB
 * stand-in applies no URL settings. */
#define PC_CH_CAPPED_LEN 160
void pc_ch_capped_settings(char *out, int rows, int bytes);
bool pc_ch_capped_within(const pc_buf *answer, int rows, int bytes);

/*
 * Traces a read names (clickhouse_query.h: PC_CH_NAMED_MAX), for the next
 * statement to name them. pc_ch_named_read: the first PC_CH_NAMED_MAX + 1
 * rows of the TabSeparated answer |text| of |ncols| (<= 2) columns, the
 * trace id in column |id_col|, the project in |project_col| (-1: none); the
 * strings point into |text|, unescaped in place, and live as long as it.
 * |fit|: at least one and few enough to name. pc_ch_named_sql_fits: whether
 * the statement |sql| built to name |k| may be run; else (too long) it is
 * emptied, |k| marked unfit, and the caller builds it again with a subquery.
 */
typedef struct pc_ch_named {
    const char **projects, **ids;
    size_t n;
    bool fit;
} pc_ch_named;

void pc_ch_named_read(pc_ch_named *k, pc_buf *text, int ncols, int id_col, int project_col);
bool pc_ch_named_sql_fits(pc_ch_named *k, pc_buf *sql);
void pc_ch_named_free(pc_ch_named *k);

#endif
