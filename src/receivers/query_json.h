/*
 * query_json.h - the query API's shared request and answer pieces: parameter
 * parsing, error answers, the project a request reads, the list cursor, and
 * one JSON serializer per stored object (trace, span).
 *
 * Where it sits: query.c (traces, search, health) and query_llm.c (sessions,
 * stats, models) answer HTTP requests with these, so every endpoint parses,
 * fails and writes objects the same way. Everything here writes into buffers
 * the caller owns; strings it returns live in the request arena.
 */
#ifndef PC_QUERY_JSON_H
#define PC_QUERY_JSON_H

#include "buf.h"
#include "http.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- serializers ---- */

/* ,"key": */
void pc_query_write_key(pc_buf *b, const char *key);
/* A string, or null when it is NULL or empty. */
void pc_query_write_str_or_null(pc_buf *b, const char *s);
/* A count, or null when it is negative (unknown). */
void pc_query_write_count_or_null(pc_buf *b, int64_t v);
/* A cost in USD to 12 significant digits, or null when it is NAN (unknown).
 * The stores add a trace's (a session's, a bucket's) costs in different
 * orders, which can move the sum's last bits (0.00024619999999999997 against
 * 0.0002462); 12 digits read the same either way, and a price has 7 at most. */
void pc_query_write_cost(pc_buf *b, double usd);
/* Stored JSON text verbatim, or |fallback| when the column is empty. */
void pc_query_splice(pc_buf *b, const char *json, const char *fallback);
/* The trace and span objects every endpoint answers with. */
void pc_query_write_trace(pc_buf *b, const pc_trace_row *t);
void pc_query_write_span(pc_buf *b, const pc_span_row *s);

/* Row callbacks: append objects to the answer's body, comma-separated,
 * counting them. A row of a project other than |project| (when set) is
 * skipped: the stores already filter, and this keeps a project key's view
 * closed even if one did not. The body is charged to the memory budget as it
 * grows (pc_http_hold_body): a refusal stops the read, and the server answers
 * 429 (spans are unbounded in size: a trace of 10,000 large spans). */
typedef struct pc_query_rows {
    pc_http_req *req;
    pc_http_resp *resp;
    int n;
    const char *project;
    pc_buf *last; /* when set: the cursor of the last trace written (cursor_write) */
} pc_query_rows;

/* Row callbacks over pc_query_rows (ud): append the object, comma first. */
int pc_query_trace_row_cb(void *ud, const pc_trace_row *row);
int pc_query_span_row_cb(void *ud, const pc_span_row *row);

/* ---- the list cursor ---- */

/* Writes the cursor of |row| (its pc_trace_key) into |b| (reset first). */
void pc_query_cursor_write(pc_buf *b, const pc_trace_row *row);
/* Parses a cursor into |k| (strings in the arena). 0 / -1 when malformed. */
int pc_query_cursor_read(pc_arena *a, const char *s, pc_trace_key *k);

/* ---- parameters and errors ---- */

/* A query parameter, NULL when absent or empty. */
const char *pc_query_param(const pc_http_req *req, const char *name);
/* Parses |name| as a decimal integer in lo..hi (|def| when absent). 0 / -1. */
int pc_query_int_param(const pc_http_req *req, const char *name, long long lo, long long hi,
                       int def, int *out);
/* Parses the ISO-8601 timestamp |name| into |*out| (left as is when absent).
 * 0, or -1 after answering 400 naming it. */
int pc_query_time_param(const pc_http_req *req, pc_http_resp *resp, const char *name,
                        int64_t *out);
/* An arena copy of |s| in lowercase (ASCII). */
const char *pc_query_lowercase(pc_arena *a, const char *s);
/* 400 / 500 with {"detail": msg}. */
void pc_query_bad_request(pc_http_resp *resp, const char *msg);
void pc_query_server_error(pc_http_resp *resp, const char *msg);
/* After a read whose rows the memory budget refused (pc_query_rows): answers
 * 429 + Retry-After, naming the budget and how to ask for less, and returns
 * true; false when nothing was refused. */
bool pc_query_over_budget(pc_http_req *req, pc_http_resp *resp);
/* Answers a failed store read |rc|: 503 with Retry-After when it ran past the
 * store's time limit (store.h: PC_STORE_TIMEOUT), 503 past its memory limit
 * for one read (PC_STORE_TOO_BIG), 429 with Retry-After past the memory
 * budget (PC_STORE_OVER_BUDGET), else 500 with |msg|. */
void pc_query_store_error(pc_http_resp *resp, int rc, const char *msg);
/*
 * The project a read is confined to, in |*out|: a project key's own (asking
 * for another with project_id is refused: 403); for an admin key or without
 * auth the project_id parameter, or NULL for every project. Returns 0, or -1
 * after answering. The one place every endpoint decides it.
 */
int pc_query_read_project(const pc_http_req *req, pc_http_resp *resp, const char **out);

#endif
