/*
 * query_json.c - the query API's shared pieces (query_json.h): parameters,
 * errors, the project of a request, the list cursor, and the trace and span
 * serializers. JSON columns come from the store as JSON text and are spliced
 * in verbatim, so attributes, events and messages are objects and arrays,
 * never JSON-in-strings.
 */
#include "query_json.h"

#include "arena.h"
#include "auth.h"
#include "json.h"
#include "timefmt.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- serializers -- */

void pc_query_write_key(pc_buf *b, const char *key)
{
    pc_buf_putc(b, ',');
    pc_json_write_cstr(b, key);
    pc_buf_putc(b, ':');
}

/* A string, or null when it is empty. */
void pc_query_write_str_or_null(pc_buf *b, const char *s)
{
    if (s && *s)
        pc_json_write_cstr(b, s);
    else
        pc_buf_puts(b, "null");
}

void pc_query_write_count_or_null(pc_buf *b, int64_t v)
{
    if (v >= 0)
        pc_json_write_int(b, v);
    else
        pc_buf_puts(b, "null");
}

void pc_query_write_cost(pc_buf *b, double usd)
{
    if (isnan(usd)) {
        pc_buf_puts(b, "null");
        return;
    }
    char digits[40];
    snprintf(digits, sizeof(digits), "%.12g", usd);
    pc_json_write_double(b, strtod(digits, NULL)); /* "inf" reads back as itself */
}

/* Stored JSON text verbatim, or |fallback| when the column is empty. */
void pc_query_splice(pc_buf *b, const char *json, const char *fallback)
{
    pc_buf_puts(b, json && *json ? json : fallback);
}

void pc_query_write_trace(pc_buf *b, const pc_trace_row *t)
{
    pc_buf_puts(b, "{\"trace_id\":");
    pc_json_write_cstr(b, t->trace_id);
    pc_query_write_key(b, "project_id");
    pc_json_write_cstr(b, t->project_id);
    pc_query_write_key(b, "service_name");
    pc_json_write_cstr(b, t->service_name);
    pc_query_write_key(b, "started_at");
    pc_json_write_time(b, t->started_ns);
    pc_query_write_key(b, "completed_at");
    pc_json_write_time(b, t->completed_ns);
    pc_query_write_key(b, "duration_ms");
    pc_json_write_double(b, pc_time_diff_ms(t->completed_ns, t->started_ns));
    pc_query_write_key(b, "status");
    pc_json_write_cstr(b, t->status);
    pc_query_write_key(b, "root_span_id");
    pc_json_write_cstr(b, t->root_span_id);
    pc_query_write_key(b, "root_span_name");
    pc_json_write_cstr(b, t->root_span_name);
    pc_query_write_key(b, "span_count");
    pc_json_write_int(b, t->span_count);
    pc_query_write_key(b, "input_tokens");
    pc_json_write_int(b, t->input_tokens);
    pc_query_write_key(b, "output_tokens");
    pc_json_write_int(b, t->output_tokens);
    pc_query_write_key(b, "cost_usd");
    pc_query_write_cost(b, t->cost_usd);
    pc_query_write_key(b, "session_id");
    pc_query_write_str_or_null(b, t->session_id);
    pc_query_write_key(b, "user_id");
    pc_query_write_str_or_null(b, t->user_id);
    pc_buf_puts(b, ",\"attributes\":{}");
    pc_query_write_key(b, "source");
    pc_json_write_cstr(b, t->source);
    pc_query_write_key(b, "created_at");
    pc_json_write_time(b, t->created_ns);
    pc_buf_putc(b, '}');
}

static const char *const kind_names[] = {"unspecified", "internal", "server",
                                         "client",      "producer", "consumer"};

void pc_query_write_span(pc_buf *b, const pc_span_row *s)
{
    pc_buf_puts(b, "{\"span_id\":");
    pc_json_write_cstr(b, s->span_id);
    pc_query_write_key(b, "trace_id");
    pc_json_write_cstr(b, s->trace_id);
    pc_query_write_key(b, "parent_span_id");
    pc_json_write_cstr(b, s->parent_span_id);
    pc_query_write_key(b, "project_id");
    pc_json_write_cstr(b, s->project_id);
    pc_query_write_key(b, "name");
    pc_json_write_cstr(b, s->name);
    pc_query_write_key(b, "kind");
    pc_json_write_cstr(b, s->kind >= 0 && s->kind <= 5 ? kind_names[s->kind] : "unspecified");
    pc_query_write_key(b, "span_type");
    pc_json_write_cstr(b, s->span_type);
    pc_query_write_key(b, "service_name");
    pc_json_write_cstr(b, s->service_name);
    pc_query_write_key(b, "started_at");
    pc_json_write_time(b, s->start_ns);
    pc_query_write_key(b, "ended_at");
    if (s->end_ns > 0)
        pc_json_write_time(b, s->end_ns);
    else
        pc_buf_puts(b, "null");
    pc_query_write_key(b, "start_time_unix_nano");
    pc_json_write_int(b, s->start_ns);
    pc_query_write_key(b, "end_time_unix_nano");
    pc_json_write_int(b, s->end_ns);
    pc_query_write_key(b, "duration_ms");
    pc_json_write_double(b, s->end_ns > 0 ? pc_time_diff_ms(s->end_ns, s->start_ns) : 0.0);
    pc_query_write_key(b, "status");
    pc_json_write_cstr(b, s->status);
    pc_query_write_key(b, "status_message");
    pc_query_write_str_or_null(b, s->status_message);
    pc_query_write_key(b, "llm_provider");
    pc_query_write_str_or_null(b, s->llm_provider);
    pc_query_write_key(b, "llm_model");
    pc_query_write_str_or_null(b, s->llm_model);
    pc_query_write_key(b, "llm_request_model");
    pc_query_write_str_or_null(b, s->llm_request_model);
    pc_query_write_key(b, "input_tokens");
    pc_query_write_count_or_null(b, s->input_tokens);
    pc_query_write_key(b, "output_tokens");
    pc_query_write_count_or_null(b, s->output_tokens);
    pc_query_write_key(b, "cache_read_tokens");
    pc_query_write_count_or_null(b, s->cache_read_tokens);
    pc_query_write_key(b, "cache_write_tokens");
    pc_query_write_count_or_null(b, s->cache_write_tokens);
    pc_query_write_key(b, "reasoning_tokens");
    pc_query_write_count_or_null(b, s->reasoning_tokens);
    pc_query_write_key(b, "cost_usd");
    pc_query_write_cost(b, s->cost_usd);
    pc_query_write_key(b, "cost_input_usd");
    pc_query_write_cost(b, s->cost_input_usd);
    pc_query_write_key(b, "cost_output_usd");
    pc_query_write_cost(b, s->cost_output_usd);
    pc_query_write_key(b, "cost_source");
    pc_query_write_str_or_null(b, s->cost_source);
    pc_query_write_key(b, "session_id");
    pc_query_write_str_or_null(b, s->session_id);
    pc_query_write_key(b, "user_id");
    pc_query_write_str_or_null(b, s->user_id);
    pc_query_write_key(b, "input_messages");
    pc_query_splice(b, s->input_messages, "null");
    pc_query_write_key(b, "output_messages");
    pc_query_splice(b, s->output_messages, "null");
    pc_query_write_key(b, "attributes");
    pc_query_splice(b, s->attributes, "{}");
    pc_query_write_key(b, "events");
    pc_query_splice(b, s->events, "[]");
    if (s->events_cut) { /* attached events past the bound (span_events.h) */
        pc_query_write_key(b, "events_truncated");
        pc_buf_lit(b, "true");
    }
    pc_query_write_key(b, "links");
    pc_query_splice(b, s->links, "[]");
    pc_query_write_key(b, "resource");
    pc_query_splice(b, s->resource, "{}");
    pc_query_write_key(b, "scope");
    pc_query_splice(b, s->scope, "{}");
    pc_query_write_key(b, "trace_state");
    pc_json_write_cstr(b, s->trace_state);
    pc_query_write_key(b, "source");
    pc_json_write_cstr(b, s->source);
    pc_query_write_key(b, "created_at");
    pc_json_write_time(b, s->created_ns);
    pc_buf_putc(b, '}');
}

/*
 * The list cursor: "<started_ns>.<hex trace_id>.<hex project_id>", the key
 * (store.h: pc_trace_key) of a page's last trace. Opaque to clients; hex keeps
 * any id bytes out of the URL's syntax. At most MAX_CURSOR bytes.
 */
#define MAX_CURSOR 1100

static void hex_put(pc_buf *b, const char *s)
{
    static const char digits[] = "0123456789abcdef";
    for (; *s; s++) {
        pc_buf_putc(b, digits[(unsigned char)*s >> 4]);
        pc_buf_putc(b, digits[(unsigned char)*s & 15]);
    }
}

void pc_query_cursor_write(pc_buf *b, const pc_trace_row *row)
{
    pc_buf_reset(b);
    pc_buf_printf(b, "%lld.", (long long)row->started_ns);
    hex_put(b, row->trace_id);
    pc_buf_putc(b, '.');
    hex_put(b, row->project_id);
}

static int hex_val(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes the hex text [p, end) into an arena string; NULL when it is not an
 * even number of lowercase hex digits or decodes to a NUL byte. */
static const char *hex_get(pc_arena *a, const char *p, const char *end)
{
    size_t n = (size_t)(end - p);
    if (n % 2) return NULL;
    char *out = pc_arena_alloc(a, n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_val(p[2 * i]), lo = hex_val(p[2 * i + 1]);
        if (hi < 0 || lo < 0 || (hi | lo) == 0) return NULL;
        out[i] = (char)(hi << 4 | lo);
    }
    out[n / 2] = '\0';
    return out;
}

/* Parses a cursor into |k| (strings in the arena). 0 / -1 when malformed. */
int pc_query_cursor_read(pc_arena *a, const char *s, pc_trace_key *k)
{
    if (strlen(s) > MAX_CURSOR || !isdigit((unsigned char)s[0])) return -1;
    char *end;
    errno = 0;
    long long ns = strtoll(s, &end, 10);
    if (errno || *end != '.') return -1;
    const char *dot = strchr(end + 1, '.');
    if (!dot) return -1;
    k->started_ns = ns;
    k->trace_id = hex_get(a, end + 1, dot);
    k->project_id = hex_get(a, dot + 1, dot + 1 + strlen(dot + 1));
    return k->trace_id && k->project_id && *k->trace_id ? 0 : -1;
}

int pc_query_trace_row_cb(void *ud, const pc_trace_row *row)
{
    pc_query_rows *r = ud;
    if (r->project && strcmp(r->project, row->project_id)) return 0;
    pc_buf *b = &r->resp->body;
    if (r->n++) pc_buf_putc(b, ',');
    pc_query_write_trace(b, row);
    if (r->last) pc_query_cursor_write(r->last, row);
    return pc_http_hold_body(r->req, r->resp) ? 1 : 0;
}

int pc_query_span_row_cb(void *ud, const pc_span_row *row)
{
    pc_query_rows *r = ud;
    if (r->project && strcmp(r->project, row->project_id)) return 0;
    pc_buf *b = &r->resp->body;
    if (r->n++) pc_buf_putc(b, ',');
    pc_query_write_span(b, row);
    return pc_http_hold_body(r->req, r->resp) ? 1 : 0;
}

/* ------------------------------------------------------------ parameters -- */

/* A query parameter, NULL when absent or empty. */
const char *pc_query_param(const pc_http_req *req, const char *name)
{
    const char *v = pc_http_query(req, name);
    return v && *v ? v : NULL;
}

/* Parses |name| as a decimal integer in lo..hi (|def| when absent). 0 / -1. */
int pc_query_int_param(const pc_http_req *req, const char *name, long long lo, long long hi, int def,
                     int *out)
{
    const char *s = pc_http_query(req, name);
    if (!s) {
        *out = def;
        return 0;
    }
    if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1])))) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int pc_query_time_param(const pc_http_req *req, pc_http_resp *resp, const char *name,
                        int64_t *out)
{
    const char *s = pc_query_param(req, name);
    if (!s || pc_time_parse(s, strlen(s), out) >= 0) return 0;
    char msg[160];
    snprintf(msg, sizeof(msg), "%s: not an ISO-8601 timestamp", name);
    pc_query_bad_request(resp, msg);
    return -1;
}

/* An arena copy of |s| in lowercase (ASCII). */
const char *pc_query_lowercase(pc_arena *a, const char *s)
{
    char *c = pc_arena_strndup(a, s, strlen(s));
    for (char *p = c; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return c;
}

void pc_query_bad_request(pc_http_resp *resp, const char *msg)
{
    pc_buf_reset(&resp->body);
    pc_http_error_detail(resp, 400, msg);
}

void pc_query_server_error(pc_http_resp *resp, const char *msg)
{
    pc_buf_reset(&resp->body);
    pc_http_error_detail(resp, 500, msg);
}

/* Answers a failed store read |rc|: 503 with Retry-After when it ran past the
 * store's time limit (store.h: PC_STORE_TIMEOUT), 503 without when it needed
 * more memory than the store allows one read (PC_STORE_TOO_BIG: the same
 * request would fail again), else 500 with |msg|. */
/* 429 + Retry-After: an answer the memory budget refused. */
static void answer_over_budget(pc_http_resp *resp)
{
    pc_buf_reset(&resp->body);
    pc_http_error_detail(resp, 429, "the answer does not fit in the collector's memory budget "
                                    "(service.memory_limit) now: ask for fewer rows (limit), "
                                    "or page a trace's spans with /spans?limit=&offset=");
    resp->retry_after = 1;
}

bool pc_query_over_budget(pc_http_req *req, pc_http_resp *resp)
{
    if (!req->arena || !pc_arena_over(req->arena)) return false;
    answer_over_budget(resp);
    return true;
}

void pc_query_store_error(pc_http_resp *resp, int rc, const char *msg)
{
    if (rc == PC_STORE_OVER_BUDGET) {
        answer_over_budget(resp);
        return;
    }
    if (rc != PC_STORE_TIMEOUT && rc != PC_STORE_TOO_BIG) {
        pc_query_server_error(resp, msg);
        return;
    }
    char m[240];
    if (rc == PC_STORE_TIMEOUT)
        snprintf(m, sizeof(m), "%s: the query ran past the store's time limit (query_timeout); "
                               "narrow it (filters, a shorter search text) or retry later", msg);
    else
        snprintf(m, sizeof(m), "%s: the query needed more memory than the store allows one "
                               "query; narrow it (a shorter time range, filters)", msg);
    pc_buf_reset(&resp->body);
    pc_http_error_detail(resp, 503, m);
    resp->retry_after = rc == PC_STORE_TIMEOUT ? 1 : 0;
}

/*
 * The project a read is confined to, in |*out|: a project key's own (asking
 * for another with project_id is refused: 403); for an admin key or without
 * auth the project_id parameter, or NULL for every project. Returns 0, or -1
 * after answering.
 */
int pc_query_read_project(const pc_http_req *req, pc_http_resp *resp, const char **out)
{
    const char *asked = pc_query_param(req, "project_id");
    *out = pc_auth_project(&req->principal, asked);
    if (asked && *out && strcmp(asked, *out)) {
        char msg[300];
        snprintf(msg, sizeof(msg), "project_id: API key '%s' reads project '%s' only",
                 req->principal.name, *out);
        pc_buf_reset(&resp->body);
        pc_http_error_detail(resp, 403, msg);
        return -1;
    }
    return 0;
}
