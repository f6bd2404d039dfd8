/*
 * query_llm.h - the query API's LLM views (issue 13): sessions, aggregates and
 * models, over the store.h ops list_sessions, stats and list_traces.
 *
 * Where it sits: query.c routes these paths here with its store; answers use
 * query_json.h's parameters, errors and serializers, so they behave like the
 * trace endpoints (same project rule, same 400/503 answers).
 *
 *   GET /api/v1/sessions          newest first: filters project_id, user_id,
 *                                 start_time, end_time; limit, offset
 *   GET /api/v1/sessions/{id}     the session and its traces in time order
 *                                 (the newest `limit`; `next` pages to older)
 *   GET /api/v1/stats             per time bucket and group (group_by, interval,
 *                                 start_time, end_time): spans, traces, errors,
 *                                 tokens, cost, unpriced spans, latency p50/95/99
 *   GET /api/v1/models            per model: spans, tokens, cost, unpriced spans
 *                                 (and, for keys that see every project, the
 *                                 models this process found no price for)
 */
#ifndef PC_QUERY_LLM_H
#define PC_QUERY_LLM_H

#include "component.h"
#include "http.h"
#include "store.h"

#define PC_QUERY_SESSIONS_PREFIX "/api/v1/sessions/"

void pc_query_sessions(const pc_store *st, pc_http_req *req, pc_http_resp *resp);
/* |id| is the decoded path segment after PC_QUERY_SESSIONS_PREFIX. */
void pc_query_session(const pc_store *st, pc_http_req *req, const char *id, pc_http_resp *resp);
void pc_query_stats(const pc_store *st, pc_http_req *req, pc_http_resp *resp);
void pc_query_models(const pc_store *st, pc_http_req *req, pc_http_resp *resp);

#endif
