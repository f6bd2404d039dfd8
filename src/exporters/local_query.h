/*
 * local_query.h - one read of the embedded store: a pooled read-only
 * connection, its statement and its deadline (local_query.c), shared by the
 * reads of local_store.c (traces, spans, search), local_agg.c (sessions) and
 * local_stats.c (stats).
 *
 * Every read opens a pc_local_query, steps its statement, and closes it; the
 * close maps the outcome onto store.h's results (0, PC_STORE_TIMEOUT, -1
 * after logging) and gives the connection back to the pool.
 */
#ifndef PC_LOCAL_QUERY_H
#define PC_LOCAL_QUERY_H

#include "local_store.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct pc_local_query {
    pc_local_reader *r;
    sqlite3 *db;
    sqlite3_stmt *st;
    const char *what; /* for the log line */
    int64_t deadline; /* pc_time_mono_ns */
    bool timed_out;
} pc_local_query;

/*
 * Borrows a connection of |r| (waiting for one while the pool's are all lent),
 * arms the deadline (the pool's query timeout: past it every step fails with
 * SQLITE_INTERRUPT) and prepares |sql| into q->st. |what| (static) names the
 * read in log lines. 0, PC_STORE_TIMEOUT when no connection came free before
 * the deadline, or -1 after logging (nothing to close then).
 */
int pc_local_query_open(pc_local_query *q, pc_local_reader *r, const char *sql,
                        const char *what);

/*
 * Like pc_local_query_open, but in a read transaction ("BEGIN"), so that the
 * statements the caller then prepares into q->st (NULL here) see one state of
 * the store. 0, or what pc_local_query_open or pc_local_query_close returned
 * (nothing to close then).
 */
int pc_local_query_begin(pc_local_query *q, pc_local_reader *r, const char *what);
/* Ends |q| (finalizes q->st, ends the read transaction a "BEGIN" opened,
 * gives the connection back); |rc| is the last sqlite3_step result. Returns
 * 0, PC_STORE_TIMEOUT past the deadline, or -1 after logging. */
int pc_local_query_close(pc_local_query *q, int rc);

/* store.h's health over a pc_local_reader: one statement on a pooled
 * connection; never waits for one (all lent: reads are served, so 0). */
int pc_local_health(void *ctx, char *msg, int msglen);

/* store.h's list_sessions over a pc_local_reader (local_agg.c); stats are
 * local_stats.h's. */
int pc_local_list_sessions(void *ctx, const pc_session_filter *f, pc_session_cb cb, void *ud);

#endif
