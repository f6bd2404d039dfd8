/*
 * query_llm.c - sessions, stats and models endpoints of the query API
 * (query_llm.h has the paths and parameters; store.h the meaning of every
 * figure). Each handler validates its parameters (400 naming the parameter),
 * decides the project with pc_query_read_project, asks the store, and writes
 * JSON; nothing here touches SQL.
 */
#include "query_llm.h"

#include "histo.h"
#include "json.h"
#include "processors/prices.h"
#include "query_json.h"
#include "timefmt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATS_BUCKETS 10000 /* (end - start) / interval */
#define MAX_STATS_ROWS 10000    /* rows of one stats answer; more = "truncated" */
#define DAY_NS (86400LL * 1000000000LL)

/* 501 when the store lacks the op (a store added without these views). */
static int supported(const void *op, pc_http_resp *resp)
{
    if (op) return 1;
    pc_buf_reset(&resp->body);
    pc_http_error_detail(resp, 501, "this store does not serve sessions and stats");
    return 0;
}

/* ------------------------------------------------------------- sessions -- */

static void write_session(pc_buf *b, const pc_session_row *s)
{
    pc_buf_puts(b, "{\"session_id\":");
    pc_json_write_cstr(b, s->session_id);
    pc_query_write_key(b, "project_id");
    pc_json_write_cstr(b, s->project_id);
    pc_query_write_key(b, "user_id");
    pc_query_write_str_or_null(b, s->user_id);
    pc_query_write_key(b, "trace_count");
    pc_json_write_int(b, s->trace_count);
    pc_query_write_key(b, "span_count");
    pc_json_write_int(b, s->span_count);
    pc_query_write_key(b, "error_count");
    pc_json_write_int(b, s->error_count);
    pc_query_write_key(b, "input_tokens");
    pc_json_write_int(b, s->input_tokens);
    pc_query_write_key(b, "output_tokens");
    pc_json_write_int(b, s->output_tokens);
    pc_query_write_key(b, "cost_usd");
    pc_query_write_cost(b, s->cost_usd);
    pc_query_write_key(b, "first_seen");
    pc_json_write_time(b, s->first_seen_ns);
    pc_query_write_key(b, "last_seen");
    pc_json_write_time(b, s->last_seen_ns);
    pc_query_write_key(b, "duration_ms");
    pc_json_write_ms(b, s->last_seen_ns, s->first_seen_ns);
    pc_buf_putc(b, '}');
}

typedef struct session_rows {
    pc_buf *b;
    int n;
    const char *project; /* when set: rows of other projects are skipped */
    pc_arena *arena;
    const char *first_project; /* the first row's project (arena copy) */
    pc_buf names;              /* projects named in a 409 */
} session_rows;

static int session_row_cb(void *ud, const pc_session_row *row)
{
    session_rows *r = ud;
    if (r->project && strcmp(r->project, row->project_id)) return 0;
    if (r->n == 0)
        r->first_project = pc_arena_strndup(r->arena, row->project_id, strlen(row->project_id));
    if (r->n < 5) {
        if (r->n) pc_buf_puts(&r->names, ", ");
        pc_buf_puts(&r->names, row->project_id);
    }
    if (r->b) {
        if (r->n) pc_buf_putc(r->b, ',');
        write_session(r->b, row);
    }
    r->n++;
    return 0;
}

void pc_query_sessions(const pc_store *st, pc_http_req *req, pc_http_resp *resp)
{
    if (!supported((const void *)st->ops->list_sessions, resp)) return;
    pc_session_filter f = {0};
    if (pc_query_read_project(req, resp, &f.project_id)) return;
    f.user_id = pc_query_param(req, "user_id");
    if (pc_query_time_param(req, resp, "start_time", &f.start_ns) ||
        pc_query_time_param(req, resp, "end_time", &f.end_ns))
        return;
    if (pc_query_int_param(req, "limit", 1, 1000, 50, &f.limit) < 0) {
        pc_query_bad_request(resp, "limit: must be an integer from 1 to 1000");
        return;
    }
    if (pc_query_int_param(req, "offset", 0, PC_STORE_MAX_OFFSET, 0, &f.offset) < 0) {
        pc_query_bad_request(resp, "offset: must be an integer from 0 to 10000");
        return;
    }
    pc_buf *b = &resp->body;
    session_rows r = {.b = b, .project = f.project_id, .arena = req->arena, .names = PC_BUF_INIT};
    pc_buf_puts(b, "{\"sessions\":[");
    int rc = st->ops->list_sessions(st->ctx, &f, session_row_cb, &r);
    pc_buf_free(&r.names);
    if (rc < 0) {
        pc_query_store_error(resp, rc, "Failed to query sessions");
        return;
    }
    pc_buf_printf(b, "],\"count\":%d,\"limit\":%d,\"offset\":%d}", r.n, f.limit, f.offset);
    resp->status = 200;
}

/* Trace objects written to a side buffer with their offsets, so the answer can
 * list them in the other order. */
typedef struct trace_list {
    pc_buf objs;
    size_t ends[1000];
    int n;
    const char *project;
    pc_buf last; /* the cursor of the last row the store gave */
} trace_list;

static int trace_list_cb(void *ud, const pc_trace_row *row)
{
    trace_list *l = ud;
    if ((l->project && strcmp(l->project, row->project_id)) || l->n == 1000) return 0;
    pc_query_write_trace(&l->objs, row);
    l->ends[l->n++] = l->objs.len;
    pc_query_cursor_write(&l->last, row);
    return 0;
}

void pc_query_session(const pc_store *st, pc_http_req *req, const char *id, pc_http_resp *resp)
{
    if (!supported((const void *)st->ops->list_sessions, resp)) return;
    const char *project;
    if (pc_query_read_project(req, resp, &project)) return;
    if (!*id || strlen(id) > 1000) {
        pc_query_bad_request(resp, "session id: must be 1 to 1000 bytes");
        return;
    }
    int limit;
    if (pc_query_int_param(req, "limit", 1, 1000, 100, &limit) < 0) {
        pc_query_bad_request(resp, "limit: must be an integer from 1 to 1000");
        return;
    }
    pc_trace_key after;
    const char *cursor = pc_query_param(req, "cursor");
    if (cursor && pc_query_cursor_read(req->arena, cursor, &after) < 0) {
        pc_query_bad_request(resp, "cursor: not a cursor this API gave (use the answer's next as is)");
        return;
    }

    /* the session, in one project */
    pc_buf *b = &resp->body;
    pc_session_filter sf = {.project_id = project, .session_id = id, .limit = 2};
    session_rows r = {.b = NULL, .project = project, .arena = req->arena, .names = PC_BUF_INIT};
    int rc = st->ops->list_sessions(st->ctx, &sf, session_row_cb, &r);
    if (rc < 0 || r.n != 1) {
        pc_buf m = PC_BUF_INIT;
        int status = 404;
        if (rc < 0) {
            pc_query_store_error(resp, rc, "Failed to retrieve session");
        } else {
            if (r.n == 0) {
                pc_buf_printf(&m, "Session %s not found", id);
            } else {
                status = 409;
                pc_buf_printf(&m, "session id %s exists in several projects (%s); pass project_id",
                              id, r.names.data);
            }
            pc_buf_reset(b);
            pc_http_error_detail(resp, status, m.data);
        }
        pc_buf_free(&m);
        pc_buf_free(&r.names);
        return;
    }
    pc_buf_free(&r.names);
    project = r.first_project;
    sf.project_id = project;
    sf.limit = 1;
    r = (session_rows){.b = b, .project = project, .arena = req->arena, .names = PC_BUF_INIT};
    pc_buf_puts(b, "{\"session\":");
    rc = st->ops->list_sessions(st->ctx, &sf, session_row_cb, &r);
    pc_buf_free(&r.names);
    if (rc < 0 || r.n != 1) {
        pc_query_store_error(resp, rc < 0 ? rc : -1, "Failed to retrieve session");
        return;
    }

    /* its traces: the newest |limit| (after the cursor), answered oldest first */
    pc_trace_filter f = {.project_id = project, .session_id = id, .limit = limit};
    if (cursor) f.after = &after;
    trace_list *l = pc_arena_alloc(req->arena, sizeof(*l));
    *l = (trace_list){.objs = PC_BUF_INIT, .n = 0, .project = project, .last = PC_BUF_INIT};
    rc = st->ops->list_traces(st->ctx, &f, trace_list_cb, l);
    if (rc < 0) {
        pc_buf_free(&l->objs);
        pc_buf_free(&l->last);
        pc_query_store_error(resp, rc, "Failed to retrieve session");
        return;
    }
    pc_buf_puts(b, ",\"traces\":[");
    for (int i = l->n - 1; i >= 0; i--) {
        size_t from = i ? l->ends[i - 1] : 0;
        pc_buf_append(b, l->objs.data + from, l->ends[i] - from);
        if (i) pc_buf_putc(b, ',');
    }
    pc_buf_printf(b, "],\"count\":%d,\"limit\":%d,\"next\":", l->n, limit);
    if (l->n == limit)
        pc_json_write_str(b, l->last.data, l->last.len);
    else
        pc_buf_puts(b, "null");
    pc_buf_putc(b, '}');
    pc_buf_free(&l->objs);
    pc_buf_free(&l->last);
    resp->status = 200;
}

/* ---------------------------------------------------------------- stats -- */

static const char *const group_names[] = {"none",    "model",   "service", "span_type",
                                          "project", "user",    "session"};

/* "30s", "15m", "1h", "1d" (a positive integer and a unit) into ns; 0 / -1. */
static int parse_interval(const char *s, int64_t *ns)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0 || v > 100000000 || end[0] == '\0' || end[1] != '\0')
        return -1;
    int64_t unit = end[0] == 's' ? 1000000000LL
                   : end[0] == 'm' ? 60LL * 1000000000LL
                   : end[0] == 'h' ? 3600LL * 1000000000LL
                   : end[0] == 'd' ? DAY_NS
                                   : 0;
    if (!unit || v > INT64_MAX / unit) return -1;
    *ns = v * unit;
    return 0;
}

/* A latency percentile as its bin's value (histo.h), in ms; null when none. */
static void write_latency(pc_buf *b, int64_t ns)
{
    if (ns >= 0)
        pc_json_write_double(b, (double)pc_histo_round(ns) / 1e6);
    else
        pc_buf_puts(b, "null");
}

typedef struct stats_rows {
    pc_buf *b;
    int n;
    int shown; /* rows written; one more than MAX_STATS_ROWS = truncated */
    bool with_group;
    bool models; /* the /models shape */
} stats_rows;

static int stats_row_cb(void *ud, const pc_stats_row *s)
{
    stats_rows *r = ud;
    r->n++;
    if (r->models && !*s->group) return 0; /* spans without a model */
    if (r->shown == MAX_STATS_ROWS) return 1;
    pc_buf *b = r->b;
    if (r->shown++) pc_buf_putc(b, ',');
    if (r->models) {
        pc_buf_puts(b, "{\"model\":");
        pc_json_write_cstr(b, s->group);
    } else {
        pc_buf_puts(b, "{\"bucket\":");
        pc_json_write_time(b, s->bucket_ns);
        pc_query_write_key(b, "group");
        if (r->with_group)
            pc_json_write_cstr(b, s->group);
        else
            pc_buf_puts(b, "null");
    }
    pc_query_write_key(b, "spans");
    pc_json_write_int(b, s->spans);
    pc_query_write_key(b, "traces");
    pc_json_write_int(b, s->traces);
    pc_query_write_key(b, "errors");
    pc_json_write_int(b, s->errors);
    pc_query_write_key(b, "input_tokens");
    pc_json_write_int(b, s->input_tokens);
    pc_query_write_key(b, "output_tokens");
    pc_json_write_int(b, s->output_tokens);
    pc_query_write_key(b, "cost_usd");
    pc_query_write_cost(b, s->cost_usd);
    pc_query_write_key(b, "unpriced_spans");
    pc_json_write_int(b, s->unpriced);
    pc_buf_puts(b, ",\"latency_ms\":{\"p50\":");
    write_latency(b, s->latency_p50_ns);
    pc_buf_puts(b, ",\"p95\":");
    write_latency(b, s->latency_p95_ns);
    pc_buf_puts(b, ",\"p99\":");
    write_latency(b, s->latency_p99_ns);
    pc_buf_puts(b, "}}");
    return 0;
}

/* start_time / end_time of a stats-like read into |q|: defaults [end - |span|, now].
 * 0, or -1 after answering. */
static int read_range(pc_http_req *req, pc_http_resp *resp, int64_t span_ns, pc_stats_query *q)
{
    q->end_ns = 0;
    q->start_ns = 0;
    if (pc_query_time_param(req, resp, "start_time", &q->start_ns) ||
        pc_query_time_param(req, resp, "end_time", &q->end_ns))
        return -1;
    if (!q->end_ns) q->end_ns = span_ns ? pc_time_now_ns() : INT64_MAX;
    if (!q->start_ns) q->start_ns = span_ns && q->end_ns > span_ns ? q->end_ns - span_ns : 1;
    if (q->start_ns <= 0 || q->end_ns <= q->start_ns) {
        pc_query_bad_request(resp, "end_time: must be after start_time (and both after 1970)");
        return -1;
    }
    return 0;
}

void pc_query_stats(const pc_store *st, pc_http_req *req, pc_http_resp *resp)
{
    if (!supported((const void *)st->ops->stats, resp)) return;
    pc_stats_query q = {.max_rows = MAX_STATS_ROWS + 1};
    if (pc_query_read_project(req, resp, &q.project_id)) return;
    const char *g = pc_query_param(req, "group_by");
    q.group_by = PC_GROUP_NONE;
    if (g) {
        int found = -1;
        for (int i = 0; i < (int)(sizeof(group_names) / sizeof(group_names[0])); i++)
            if (!strcmp(g, group_names[i])) found = i;
        if (found < 0) {
            pc_query_bad_request(resp, "group_by: must be one of none, model, service, span_type, "
                                       "project, user, session");
            return;
        }
        q.group_by = (pc_stats_group)found;
    }
    const char *iv = pc_query_param(req, "interval");
    if (!iv) iv = "1h";
    if (parse_interval(iv, &q.interval_ns) < 0 || q.interval_ns < 1000000000LL) {
        pc_query_bad_request(resp, "interval: must be a whole number of s, m, h or d "
                                   "(30s, 15m, 1h, 1d), at least 1s");
        return;
    }
    if (read_range(req, resp, DAY_NS, &q)) return;
    /* buckets the range touches, epoch-aligned */
    int64_t first = q.start_ns - q.start_ns % q.interval_ns;
    if ((q.end_ns - 1 - first) / q.interval_ns >= MAX_STATS_BUCKETS) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "interval: the range holds more than %d buckets of %s; widen the interval or "
                 "narrow start_time..end_time",
                 MAX_STATS_BUCKETS, iv);
        pc_query_bad_request(resp, msg);
        return;
    }
    pc_buf *b = &resp->body;
    pc_buf_puts(b, "{\"group_by\":");
    pc_json_write_cstr(b, group_names[q.group_by]);
    pc_query_write_key(b, "interval");
    pc_json_write_cstr(b, iv);
    pc_query_write_key(b, "start_time");
    pc_json_write_time(b, q.start_ns);
    pc_query_write_key(b, "end_time");
    pc_json_write_time(b, q.end_ns);
    pc_buf_puts(b, ",\"stats\":[");
    stats_rows r = {.b = b, .with_group = q.group_by != PC_GROUP_NONE};
    int rc = st->ops->stats(st->ctx, &q, stats_row_cb, &r);
    if (rc < 0) {
        pc_query_store_error(resp, rc, "Failed to compute stats");
        return;
    }
    pc_buf_printf(b, "],\"count\":%d,\"truncated\":%s}", r.shown,
                  r.n > MAX_STATS_ROWS ? "true" : "false");
    resp->status = 200;
}

/* --------------------------------------------------------------- models -- */

typedef struct unpriced_out {
    pc_buf *b;
    int n;
} unpriced_out;

static void unpriced_cb(const char *provider, const char *model, int64_t spans, void *ud)
{
    unpriced_out *u = ud;
    if (u->n++) pc_buf_putc(u->b, ',');
    pc_buf_puts(u->b, "{\"provider\":");
    pc_query_write_str_or_null(u->b, provider);
    pc_query_write_key(u->b, "model");
    pc_json_write_cstr(u->b, model);
    pc_query_write_key(u->b, "spans");
    pc_json_write_int(u->b, spans);
    pc_buf_putc(u->b, '}');
}

void pc_query_models(const pc_store *st, pc_http_req *req, pc_http_resp *resp)
{
    if (!supported((const void *)st->ops->stats, resp)) return;
    pc_stats_query q = {.group_by = PC_GROUP_MODEL, .interval_ns = 0,
                        .max_rows = MAX_STATS_ROWS + 1};
    if (pc_query_read_project(req, resp, &q.project_id)) return;
    if (read_range(req, resp, 0, &q)) return;
    pc_buf *b = &resp->body;
    pc_buf_puts(b, "{\"models\":[");
    stats_rows r = {.b = b, .with_group = true, .models = true};
    int rc = st->ops->stats(st->ctx, &q, stats_row_cb, &r);
    if (rc < 0) {
        pc_query_store_error(resp, rc, "Failed to list models");
        return;
    }
    pc_buf_printf(b, "],\"count\":%d", r.shown);
    /* The process-wide set names models of every project: only for readers of
     * every project (admin keys, or no auth). */
    if (!q.project_id) {
        unpriced_out u = {b, 0};
        pc_buf_puts(b, ",\"unpriced_since_start\":[");
        pc_prices_unpriced_each(unpriced_cb, &u);
        pc_buf_printf(b, "],\"unpriced_overflow_spans\":%lld",
                      (long long)pc_prices_unpriced_overflow());
    }
    pc_buf_putc(b, '}');
    resp->status = 200;
}
