/*
 * test_query.c - the `query` receiver over a real embedded store.
 *
 * A `local` exporter in a temp directory is filled through consume() with
 * hand-built batches (derived fields set as normalize would), the query receiver
 * serves it on 127.0.0.1:0 (pc_query_serve: no pipeline host needed), and a
 * tiny HTTP/1.1 client asks every endpoint and parses the JSON answers with the
 * project's own reader. Covers response shapes (objects, not JSON-in-strings;
 * nulls), filters with case-insensitive status/span_type, 400s naming the
 * parameter, 404/405, URL-decoded ids, search and health, and projects: the
 * same trace id in two projects is 409 without project_id, each project's own
 * trace and spans with it, and lists and search never cross projects.
 */
#include "check.h"

#include "config.h"
#include "exporters/local.h"
#include "json.h"
#include "receivers/query.h"
#include "receivers/query_json.h"
#include "span.h"
#include "timefmt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NS 1000000000LL
#define T0 1737972000000000000LL /* 2025-01-27T10:00:00Z */

static int port;

/* ------------------------------------------------------------- client -- */

typedef struct answer {
    int status;
    char *body; /* heap */
    pc_arena *arena;
    pc_value json;
    bool json_ok;
} answer;

/* Sends "|method| |path|" and reads the whole answer (Connection: close). */
static answer http(const char *method, const char *path)
{
    answer a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        close(fd);
        return a;
    }
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                     "Content-Length: 0\r\n\r\n",
                     method, path);
    if (write(fd, req, (size_t)n) != n) perror("write");
    pc_buf in = PC_BUF_INIT;
    char tmp[4096];
    ssize_t r;
    while ((r = read(fd, tmp, sizeof(tmp))) > 0)
        pc_buf_append(&in, tmp, (size_t)r);
    close(fd);
    if (!in.data) return a;
    sscanf(in.data, "HTTP/1.1 %d", &a.status);
    char *body = strstr(in.data, "\r\n\r\n");
    a.body = strdup(body ? body + 4 : "");
    pc_buf_free(&in);
    a.arena = pc_arena_create(4096);
    pc_json_error err;
    a.json_ok = pc_json_parse(a.arena, a.body, strlen(a.body), &a.json, &err) == 0;
    if (!a.json_ok) fprintf(stderr, "bad JSON (%s): %s\n", err.msg, a.body);
    return a;
}

static void answer_free(answer *a)
{
    free(a->body);
    pc_arena_destroy(a->arena);
}

/* Walks a dotted path of member names and array indexes: "traces.0.trace_id". */
static const pc_value *at(const pc_value *v, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) {
        if (v->type == PC_V_ARRAY) {
            size_t i = (size_t)atoi(tok);
            v = i < v->arr.n ? &v->arr.v[i] : NULL;
        } else {
            v = pc_json_get(v, tok);
        }
    }
    return v;
}

static const char *str_at(const answer *a, const char *path)
{
    static char out[256];
    const pc_value *v = at(&a->json, path);
    if (!v || v->type != PC_V_STR) return NULL;
    snprintf(out, sizeof(out), "%.*s", (int)v->s.n, v->s.p);
    return out;
}

static long long int_at(const answer *a, const char *path)
{
    const pc_value *v = at(&a->json, path);
    return v && v->type == PC_V_INT ? v->i : -999;
}

static int type_at(const answer *a, const char *path)
{
    const pc_value *v = at(&a->json, path);
    return v ? (int)v->type : -1;
}

/* ------------------------------------------------------------- fixture -- */

static pc_str S(pc_batch *b, const char *s)
{
    return (pc_str){pc_arena_strndup(b->arena, s, strlen(s)), strlen(s)};
}

static pc_span *add(pc_batch *b, const char *trace, const char *span, const char *parent,
                    const char *name, pc_span_type type, pc_status status, int64_t start,
                    int64_t end)
{
    pc_span *s = pc_batch_add(b);
    s->trace_id = S(b, trace);
    s->span_id = S(b, span);
    s->parent_id = S(b, parent);
    s->name = S(b, name);
    s->kind = 3;
    s->start_ns = start;
    s->end_ns = end;
    s->project_id = S(b, "proj-1");
    s->span_type = type;
    s->status = status;
    s->service_name = S(b, "my-agent");
    return s;
}

static void fill(void *local)
{
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = pc_time_now_ns();
    pc_span *s = add(b, "test-trace-123", "root", "", "agent.run", PC_TYPE_AGENT, PC_STATUS_SUCCESS,
                     T0, T0 + 2 * NS);
    s = add(b, "test-trace-123", "llm-1", "root", "anthropic.messages.create", PC_TYPE_LLM,
            PC_STATUS_ERROR, T0 + NS / 10, T0 + NS);
    s->status_message = S(b, "rate limited");
    s->llm_provider = S(b, "anthropic");
    s->llm_model = S(b, "claude-3");
    s->input_tokens = 12;
    s->output_tokens = 34;
    pc_kv *kv = pc_arena_calloc(b->arena, 2 * sizeof(pc_kv));
    kv[0] = (pc_kv){S(b, "llm.vendor"), {.type = PC_V_STR}};
    kv[0].value.s = S(b, "anthropic");
    kv[1] = (pc_kv){S(b, "llm.input_tokens"), {.type = PC_V_INT, .i = 12}};
    s->attrs = (pc_attrs){kv, 2};
    pc_event *ev = pc_arena_calloc(b->arena, sizeof(pc_event));
    ev->name = S(b, "llm.request");
    ev->time_ns = T0 + NS / 10;
    s->events = ev;
    s->n_events = 1;
    add(b, "test-trace-123", "tool-1", "root", "search_web", PC_TYPE_TOOL, PC_STATUS_PENDING,
        T0 + NS / 5, 0);
    add(b, "1b4e28ba-2fa1-41d2-883f-0016d3cca427", "6fa459ea-ee8a-4ca4-894e-db77e160355e", "",
        "uuid trace", PC_TYPE_CUSTOM, PC_STATUS_SUCCESS, T0 + 5 * NS, T0 + 6 * NS);
    add(b, "id with space/slash", "a", "", "odd id", PC_TYPE_CUSTOM, PC_STATUS_SUCCESS, T0 - NS,
        T0);
    CHECK_EQ_INT(pc_local_exporter_ops.consume(local, b), PC_OK);
}

/* --------------------------------------------------------------- tests -- */

static void test_list(void)
{
    answer a = http("GET", "/api/v1/traces");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 3);
    CHECK_EQ_INT(int_at(&a, "limit"), 100);
    CHECK_EQ_INT(int_at(&a, "offset"), 0);
    CHECK_EQ_STR(str_at(&a, "traces.0.trace_id"), "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
    CHECK_EQ_STR(str_at(&a, "traces.1.trace_id"), "test-trace-123");
    CHECK_EQ_STR(str_at(&a, "traces.1.project_id"), "proj-1");
    CHECK_EQ_STR(str_at(&a, "traces.1.service_name"), "my-agent");
    CHECK_EQ_STR(str_at(&a, "traces.1.started_at"), "2025-01-27T10:00:00.000000Z");
    CHECK_EQ_STR(str_at(&a, "traces.1.completed_at"), "2025-01-27T10:00:02.000000Z");
    CHECK_EQ_INT(type_at(&a, "traces.1.duration_ms"), PC_V_DOUBLE);
    CHECK(at(&a.json, "traces.1.duration_ms") && at(&a.json, "traces.1.duration_ms")->d == 2000.0);
    CHECK_EQ_STR(str_at(&a, "traces.1.status"), "error");
    CHECK_EQ_STR(str_at(&a, "traces.1.root_span_id"), "root");
    CHECK_EQ_STR(str_at(&a, "traces.1.root_span_name"), "agent.run");
    CHECK_EQ_INT(int_at(&a, "traces.1.span_count"), 3);
    CHECK_EQ_INT(int_at(&a, "traces.1.input_tokens"), 12);
    CHECK_EQ_INT(int_at(&a, "traces.1.output_tokens"), 34);
    CHECK_EQ_INT(type_at(&a, "traces.1.attributes"), PC_V_MAP);
    CHECK_EQ_STR(str_at(&a, "traces.1.source"), "prela");
    CHECK(str_at(&a, "traces.1.created_at") != NULL);
    answer_free(&a);

    a = http("GET", "/api/v1/traces?status=ERROR&span_type=LLM&project_id=proj-1");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 1);
    CHECK_EQ_STR(str_at(&a, "traces.0.trace_id"), "test-trace-123");
    answer_free(&a);

    a = http("GET", "/api/v1/traces?status=success&limit=1&offset=1");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 1);
    CHECK_EQ_INT(int_at(&a, "limit"), 1);
    CHECK_EQ_INT(int_at(&a, "offset"), 1);
    CHECK_EQ_STR(str_at(&a, "traces.0.trace_id"), "id with space/slash");
    answer_free(&a);

    a = http("GET", "/api/v1/traces?start_time=2025-01-27T10:00:00%2B00:00Z"
                    "&end_time=2025-01-27T10:00:01Z");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 1);
    CHECK_EQ_STR(str_at(&a, "traces.0.trace_id"), "test-trace-123");
    answer_free(&a);

    a = http("GET", "/api/v1/traces?service_name=nobody");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 0);
    CHECK_EQ_INT(type_at(&a, "traces"), PC_V_ARRAY);
    answer_free(&a);
}

static void expect_400(const char *path, const char *prefix)
{
    answer a = http("GET", path);
    CHECK_EQ_INT(a.status, 400);
    const char *d = str_at(&a, "detail");
    CHECK(d && strncmp(d, prefix, strlen(prefix)) == 0);
    if (!d || strncmp(d, prefix, strlen(prefix)) != 0)
        fprintf(stderr, "  %s -> %s\n", path, a.body ? a.body : "(none)");
    answer_free(&a);
}

static void test_bad_params(void)
{
    expect_400("/api/v1/traces?span_type=robot", "span_type:");
    expect_400("/api/v1/traces?limit=0", "limit:");
    expect_400("/api/v1/traces?limit=1001", "limit:");
    expect_400("/api/v1/traces?limit=ten", "limit:");
    expect_400("/api/v1/traces?limit=", "limit:");
    expect_400("/api/v1/traces?offset=-1", "offset:");
    expect_400("/api/v1/traces?start_time=yesterday", "start_time:");
    expect_400("/api/v1/traces?end_time=2025-13-45", "end_time:");
    expect_400("/api/v1/search", "query: required");
    expect_400("/api/v1/search?query=x&limit=501", "limit:");
}

static void test_trace(void)
{
    answer a = http("GET", "/api/v1/traces/test-trace-123");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_STR(str_at(&a, "trace.trace_id"), "test-trace-123");
    CHECK_EQ_INT(int_at(&a, "span_count"), 3);
    CHECK_EQ_STR(str_at(&a, "spans.0.span_id"), "root");
    CHECK_EQ_STR(str_at(&a, "spans.0.parent_span_id"), "");
    CHECK_EQ_STR(str_at(&a, "spans.1.span_id"), "llm-1");
    CHECK_EQ_STR(str_at(&a, "spans.1.parent_span_id"), "root");
    CHECK_EQ_STR(str_at(&a, "spans.1.kind"), "client");
    CHECK_EQ_STR(str_at(&a, "spans.1.span_type"), "llm");
    CHECK_EQ_STR(str_at(&a, "spans.1.status"), "error");
    CHECK_EQ_STR(str_at(&a, "spans.1.status_message"), "rate limited");
    CHECK_EQ_STR(str_at(&a, "spans.1.llm_provider"), "anthropic");
    CHECK_EQ_STR(str_at(&a, "spans.1.llm_model"), "claude-3");
    CHECK_EQ_INT(int_at(&a, "spans.1.input_tokens"), 12);
    CHECK_EQ_INT(int_at(&a, "spans.1.output_tokens"), 34);
    CHECK_EQ_INT(int_at(&a, "spans.1.start_time_unix_nano"), T0 + NS / 10);
    CHECK_EQ_INT(int_at(&a, "spans.1.end_time_unix_nano"), T0 + NS);
    CHECK_EQ_STR(str_at(&a, "spans.1.started_at"), "2025-01-27T10:00:00.100000Z");
    CHECK_EQ_STR(str_at(&a, "spans.1.ended_at"), "2025-01-27T10:00:01.000000Z");
    CHECK(at(&a.json, "spans.1.duration_ms") && at(&a.json, "spans.1.duration_ms")->d == 900.0);
    const pc_value *attrs = at(&a.json, "spans.1.attributes");
    CHECK(attrs && attrs->type == PC_V_MAP);
    const pc_value *vendor = attrs ? pc_json_get(attrs, "llm.vendor") : NULL;
    CHECK(vendor && vendor->type == PC_V_STR && vendor->s.n == 9);
    const pc_value *itok = attrs ? pc_json_get(attrs, "llm.input_tokens") : NULL;
    CHECK(itok && itok->type == PC_V_INT && itok->i == 12);
    CHECK_EQ_INT(type_at(&a, "spans.1.events"), PC_V_ARRAY);
    CHECK_EQ_STR(str_at(&a, "spans.1.events.0.name"), "llm.request");
    CHECK_EQ_INT(type_at(&a, "spans.1.links"), PC_V_ARRAY);
    CHECK_EQ_INT(type_at(&a, "spans.1.resource"), PC_V_MAP);
    CHECK_EQ_INT(type_at(&a, "spans.1.scope"), PC_V_MAP);
    CHECK_EQ_STR(str_at(&a, "spans.1.trace_state"), "");
    CHECK_EQ_STR(str_at(&a, "spans.1.source"), "prela");
    CHECK_EQ_STR(str_at(&a, "spans.1.project_id"), "proj-1");
    CHECK_EQ_STR(str_at(&a, "spans.1.service_name"), "my-agent");
    CHECK(str_at(&a, "spans.1.created_at") != NULL);
    /* The unended tool span: nulls where there is nothing. */
    CHECK_EQ_STR(str_at(&a, "spans.2.span_id"), "tool-1");
    CHECK_EQ_INT(type_at(&a, "spans.2.ended_at"), PC_V_NULL);
    CHECK_EQ_INT(int_at(&a, "spans.2.end_time_unix_nano"), 0);
    CHECK(at(&a.json, "spans.2.duration_ms") && at(&a.json, "spans.2.duration_ms")->d == 0.0);
    CHECK_EQ_INT(type_at(&a, "spans.2.status_message"), PC_V_NULL);
    CHECK_EQ_INT(type_at(&a, "spans.2.llm_provider"), PC_V_NULL);
    CHECK_EQ_INT(type_at(&a, "spans.2.llm_model"), PC_V_NULL);
    CHECK_EQ_INT(type_at(&a, "spans.2.input_tokens"), PC_V_NULL);
    CHECK_EQ_INT(type_at(&a, "spans.2.output_tokens"), PC_V_NULL);
    CHECK_EQ_STR(str_at(&a, "spans.2.status"), "pending");
    answer_free(&a);

    a = http("GET", "/api/v1/traces/test-trace-123/spans");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 3);
    CHECK_EQ_STR(str_at(&a, "spans.0.span_id"), "root");
    answer_free(&a);

    a = http("GET", "/api/v1/traces/1b4e28ba-2fa1-41d2-883f-0016d3cca427");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_STR(str_at(&a, "spans.0.span_id"), "6fa459ea-ee8a-4ca4-894e-db77e160355e");
    answer_free(&a);

    /* Ids are URL-decoded path text. */
    a = http("GET", "/api/v1/traces/id%20with%20space%2Fslash/spans");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 1);
    answer_free(&a);

    a = http("GET", "/api/v1/traces/nope");
    CHECK_EQ_INT(a.status, 404);
    CHECK_EQ_STR(str_at(&a, "detail"), "Trace nope not found");
    answer_free(&a);
    a = http("GET", "/api/v1/traces/nope/spans");
    CHECK_EQ_INT(a.status, 404);
    CHECK_EQ_STR(str_at(&a, "detail"), "Trace nope not found");
    answer_free(&a);
}

static void test_search_health_routes(void)
{
    answer a = http("GET", "/api/v1/search?query=ANTHROPIC");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 1);
    CHECK_EQ_STR(str_at(&a, "results.0.trace_id"), "test-trace-123");
    CHECK_EQ_STR(str_at(&a, "query"), "ANTHROPIC");
    CHECK_EQ_INT(int_at(&a, "limit"), 50);
    answer_free(&a);

    a = http("GET", "/api/v1/search?query=100%25&limit=5&project_id=proj-1");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 0);
    CHECK_EQ_STR(str_at(&a, "query"), "100%");
    answer_free(&a);

    a = http("GET", "/api/v1/health");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_STR(str_at(&a, "status"), "healthy");
    answer_free(&a);

    a = http("POST", "/api/v1/traces");
    CHECK_EQ_INT(a.status, 405);
    answer_free(&a);
    a = http("GET", "/api/v2/nothing");
    CHECK_EQ_INT(a.status, 404);
    answer_free(&a);
}

/* Project 2 sends the ids project 1 used for "shared-1", and a trace of its own. */
static void fill_projects(void *local)
{
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = pc_time_now_ns();
    add(b, "shared-1", "root", "", "secret one", PC_TYPE_AGENT, PC_STATUS_SUCCESS, T0, T0 + NS);
    add(b, "shared-1", "kid", "root", "kid one", PC_TYPE_LLM, PC_STATUS_SUCCESS, T0, T0 + NS);
    pc_span *s = add(b, "shared-1", "root", "", "root two", PC_TYPE_TOOL, PC_STATUS_ERROR,
                     T0 + 2 * NS, T0 + 3 * NS);
    s->project_id = S(b, "proj-2");
    s = add(b, "shared-1", "kid", "root", "kid two", PC_TYPE_TOOL, PC_STATUS_SUCCESS,
            T0 + 2 * NS + 1, T0 + 3 * NS);
    s->project_id = S(b, "proj-2");
    s = add(b, "only-2", "r", "", "own trace", PC_TYPE_TOOL, PC_STATUS_SUCCESS, T0, T0 + NS);
    s->project_id = S(b, "proj-2");
    CHECK_EQ_INT(pc_local_exporter_ops.consume(local, b), PC_OK);
}

static void test_projects(void *local)
{
    fill_projects(local);
    static const char *const paths[] = {"/api/v1/traces/shared-1", "/api/v1/traces/shared-1/spans"};
    for (int i = 0; i < 2; i++) {
        answer a = http("GET", paths[i]);
        CHECK_EQ_INT(a.status, 409);
        CHECK_EQ_STR(str_at(&a, "detail"),
                     "trace id shared-1 exists in 2 projects (proj-1, proj-2); pass project_id");
        answer_free(&a);
    }
    answer a = http("GET", "/api/v1/traces/shared-1?project_id=proj-2");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_STR(str_at(&a, "trace.project_id"), "proj-2");
    CHECK_EQ_STR(str_at(&a, "trace.root_span_name"), "root two");
    CHECK_EQ_INT(int_at(&a, "trace.span_count"), 2);
    CHECK_EQ_INT(int_at(&a, "span_count"), 2);
    CHECK_EQ_STR(str_at(&a, "spans.0.name"), "root two");
    CHECK_EQ_STR(str_at(&a, "spans.0.project_id"), "proj-2");
    CHECK_EQ_STR(str_at(&a, "spans.1.name"), "kid two");
    answer_free(&a);
    a = http("GET", "/api/v1/traces/shared-1/spans?project_id=proj-1");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 2);
    CHECK_EQ_STR(str_at(&a, "spans.0.project_id"), "proj-1");
    CHECK_EQ_STR(str_at(&a, "spans.1.project_id"), "proj-1");
    CHECK(strstr(a.body, "two") == NULL);
    answer_free(&a);
    a = http("GET", "/api/v1/traces/shared-1?project_id=proj-3");
    CHECK_EQ_INT(a.status, 404);
    answer_free(&a);
    /* One project has the id: that one, without naming it. */
    a = http("GET", "/api/v1/traces/only-2");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_STR(str_at(&a, "trace.project_id"), "proj-2");
    CHECK_EQ_INT(int_at(&a, "span_count"), 1);
    answer_free(&a);
    a = http("GET", "/api/v1/traces/only-2?project_id=proj-1");
    CHECK_EQ_INT(a.status, 404);
    answer_free(&a);

    a = http("GET", "/api/v1/traces?project_id=proj-2");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 2);
    CHECK_EQ_STR(str_at(&a, "traces.0.project_id"), "proj-2");
    CHECK_EQ_STR(str_at(&a, "traces.1.project_id"), "proj-2");
    answer_free(&a);
    a = http("GET", "/api/v1/search?query=secret&project_id=proj-2");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 0);
    answer_free(&a);
    a = http("GET", "/api/v1/search?query=secret&project_id=proj-1");
    CHECK_EQ_INT(int_at(&a, "count"), 1);
    CHECK_EQ_STR(str_at(&a, "results.0.project_id"), "proj-1");
    answer_free(&a);
    a = http("GET", "/api/v1/search?query=two");
    CHECK_EQ_INT(int_at(&a, "count"), 1);
    CHECK_EQ_STR(str_at(&a, "results.0.project_id"), "proj-2");
    answer_free(&a);
}

static void *make_cfg(const pc_component_ops *ops, const char *const *kv, size_t n)
{
    void *cfg = calloc(1, ops->config_size);
    pc_config_entry e[4];
    memset(e, 0, sizeof(e));
    for (size_t i = 0; i < n; i++) {
        e[i].key = kv[2 * i];
        e[i].value = kv[2 * i + 1];
    }
    char err[256] = "";
    CHECK_EQ_INT(pc_config_apply_options(ops->options, cfg, e, n, ops->type, err, sizeof(err)), 0);
    CHECK_EQ_INT(ops->validate(cfg, err, sizeof(err)), 0);
    return cfg;
}

/* A second receiver with max_trace_spans 2: a trace read stops at 2 spans and
 * says so; /spans pages with limit and offset and gives the total; limits
 * over the cap are 400 naming the parameter. */
static void test_paging(void *local)
{
    const char *qkv[] = {"endpoint", "127.0.0.1:0", "max_trace_spans", "2"};
    void *qcfg = make_cfg(&pc_query_receiver_ops, qkv, 2);
    void *q = pc_query_receiver_ops.create("query", qcfg, NULL);
    CHECK_EQ_INT(pc_query_serve(q, pc_local_exporter_ops.store(local)), 0);
    int saved = port;
    port = pc_query_port(q);

    answer a = http("GET", "/api/v1/traces/test-trace-123");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "span_count"), 2);
    CHECK_EQ_INT(int_at(&a, "spans_total"), 3);
    CHECK_EQ_INT(type_at(&a, "spans_truncated"), PC_V_BOOL);
    CHECK(at(&a.json, "spans_truncated") && at(&a.json, "spans_truncated")->b);
    CHECK_EQ_INT(int_at(&a, "trace.span_count"), 3);
    answer_free(&a);

    a = http("GET", "/api/v1/traces/test-trace-123/spans");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 2);
    CHECK_EQ_INT(int_at(&a, "total"), 3);
    CHECK_EQ_INT(int_at(&a, "limit"), 2);
    CHECK_EQ_INT(int_at(&a, "offset"), 0);
    CHECK_EQ_STR(str_at(&a, "spans.0.span_id"), "root");
    answer_free(&a);

    a = http("GET", "/api/v1/traces/test-trace-123/spans?limit=1&offset=1");
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(int_at(&a, "count"), 1);
    CHECK_EQ_INT(int_at(&a, "total"), 3);
    CHECK_EQ_STR(str_at(&a, "spans.0.span_id"), "llm-1");
    answer_free(&a);

    a = http("GET", "/api/v1/traces/test-trace-123/spans?offset=2");
    CHECK_EQ_INT(int_at(&a, "count"), 1);
    CHECK_EQ_STR(str_at(&a, "spans.0.span_id"), "tool-1");
    answer_free(&a);

    a = http("GET", "/api/v1/traces/test-trace-123/spans?limit=3");
    CHECK_EQ_INT(a.status, 400);
    CHECK(str_at(&a, "detail") && strncmp(str_at(&a, "detail"), "limit:", 6) == 0);
    answer_free(&a);
    a = http("GET", "/api/v1/traces/test-trace-123/spans?offset=-1");
    CHECK_EQ_INT(a.status, 400);
    CHECK(str_at(&a, "detail") && strncmp(str_at(&a, "detail"), "offset:", 7) == 0);
    answer_free(&a);

    port = saved;
    pc_query_receiver_ops.shutdown(q);
    pc_query_receiver_ops.destroy(q);
    pc_config_free_options(pc_query_receiver_ops.options, qcfg);
    free(qcfg);
}

/* Costs print to 12 significant digits: one sum added in two orders prints once. */
static void test_cost_digits(void)
{
    double parts[] = {0.3, 0.0006, 0.00025, 2.5e-6, 0.00015};
    double up = 0, down = 0;
    for (int i = 0; i < 5; i++) {
        up += parts[i];
        down += parts[4 - i];
    }
    CHECK(up != down); /* 0.30100249999999995 and 0.3010025 */
    pc_buf a = PC_BUF_INIT, b = PC_BUF_INIT;
    pc_query_write_cost(&a, up);
    pc_query_write_cost(&b, down);
    CHECK_EQ_STR(a.data, b.data);
    CHECK_EQ_STR(a.data, "0.3010025");
    static const struct {
        double v;
        const char *want;
    } cases[] = {{0.00024619999999999997, "0.0002462"}, {0.0002462, "0.0002462"},
                 {0.25, "0.25"}, {0, "0.0"}, {1.0 / 3, "0.333333333333"},
                 {1234567.891, "1234567.891"}, {1e-9, "1e-09"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pc_buf_reset(&a);
        pc_query_write_cost(&a, cases[i].v);
        CHECK_EQ_STR(a.data, cases[i].want);
    }
    pc_buf_reset(&a);
    pc_query_write_cost(&a, NAN);
    CHECK_EQ_STR(a.data, "null");
    pc_buf_free(&a);
    pc_buf_free(&b);
}

int main(void)
{
    RUN(test_cost_digits);
    char dir[] = "/tmp/pc_query_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    const char *lkv[] = {"directory", dir, "synchronous", "normal"};
    void *lcfg = make_cfg(&pc_local_exporter_ops, lkv, 2);
    void *local = pc_local_exporter_ops.create("local", lcfg, NULL);
    CHECK_EQ_INT(pc_local_exporter_ops.start(local, NULL), 0);
    fill(local);

    const char *qkv[] = {"endpoint", "127.0.0.1:0"};
    void *qcfg = make_cfg(&pc_query_receiver_ops, qkv, 1);
    void *q = pc_query_receiver_ops.create("query", qcfg, NULL);
    CHECK(q != NULL);
    CHECK_EQ_INT(pc_query_serve(q, pc_local_exporter_ops.store(local)), 0);
    port = pc_query_port(q);
    CHECK(port > 0);

    /* A bad endpoint is rejected by validate, naming the key. */
    const char *bad[] = {"endpoint", "nonsense"};
    void *bcfg = calloc(1, pc_query_receiver_ops.config_size);
    pc_config_entry be = {.key = bad[0], .value = bad[1]};
    char err[256] = "";
    CHECK_EQ_INT(pc_config_apply_options(pc_query_receiver_ops.options, bcfg, &be, 1, "query", err,
                                         sizeof(err)),
                 0);
    CHECK(pc_query_receiver_ops.validate(bcfg, err, sizeof(err)) != 0);
    CHECK(strncmp(err, "endpoint:", 9) == 0);
    pc_config_free_options(pc_query_receiver_ops.options, bcfg);
    free(bcfg);

    if (port > 0) {
        RUN(test_list);
        RUN(test_bad_params);
        RUN(test_trace);
        RUN(test_search_health_routes);
        fprintf(stderr, "-- test_projects\n");
        test_projects(local);
        fprintf(stderr, "-- test_paging\n");
        test_paging(local);
    }

    pc_query_receiver_ops.shutdown(q);
    pc_query_receiver_ops.shutdown(q);
    pc_query_receiver_ops.destroy(q);
    pc_local_exporter_ops.shutdown(local);
    pc_local_exporter_ops.destroy(local);
    pc_config_free_options(pc_query_receiver_ops.options, qcfg);
    pc_config_free_options(pc_local_exporter_ops.options, lcfg);
    free(qcfg);
    free(lcfg);
    char p[128];
    static const char *const files[] = {"prela.db",        "prela.db-wal",
                                        "prela.db-shm",    "prela-search.db",
                                        "prela-search.db-wal", "prela-search.db-shm"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    CHECK_EQ_INT(rmdir(dir), 0); /* nothing left in it */
    return CHECK_DONE();
}
