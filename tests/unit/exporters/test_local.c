/*
 * test_local.c - the `local` exporter (embedded SQLite store), driven through its
 * ops exactly as the pipeline drives it: options table → validate → create →
 * start → consume(batch) → store() reads → shutdown → destroy.
 *
 * Batches are built by hand with the derived fields set as normalize would set
 * them. Each test uses its own temporary directory, removed at the end.
 * Covers: every stored field and JSON column, dedup of re-sent spans, the trace
 * summary across batches arriving children-first, list filters and paging,
 * search (LIKE metacharacters and quotes taken literally), retention by ingest
 * time, concurrent consumers, timeout and queue bounds (the writer stalled on
 * a write lock held by a second connection), shutdown semantics and reopening;
 * chunked transactions (a small batch queued behind a huge one returns first;
 * a failed chunk fails exactly the batches with spans in it; re-sent chunks
 * are deduplicated);
 * projects as part of every key (the same trace and span ids in two projects
 * are two traces, never replacing or hiding each other, in every read and in
 * retention), and the schema migration from the first release's file
 * (version 1, built here with that release's DDL) run once, keeping every row.
 */
#include "check.h"
#include "exporters/local_harness.h"

#include "config.h"
#include "exporters/local.h"
#include "exporters/local_query.h"
#include "exporters/local_schema.h"
#include "exporters/local_store.h"
#include "exporters/local_text.h"
#include "span.h"
#include "store.h"
#include "timefmt.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* Row copies, so they outlive the callbacks. */
typedef struct trace_copy {
    char trace_id[64], project_id[64], service_name[64], root_span_id[64], root_span_name[64];
    char status[16], source[16];
    int64_t started_ns, completed_ns, created_ns, span_count, input_tokens, output_tokens;
} trace_copy;

typedef struct traces {
    trace_copy v[128];
    int n;
} traces;

static int collect_trace(void *ud, const pc_trace_row *r)
{
    traces *t = ud;
    if (t->n >= 128) return 1;
    trace_copy *c = &t->v[t->n++];
    snprintf(c->trace_id, sizeof(c->trace_id), "%s", r->trace_id);
    snprintf(c->project_id, sizeof(c->project_id), "%s", r->project_id);
    snprintf(c->service_name, sizeof(c->service_name), "%s", r->service_name);
    snprintf(c->root_span_id, sizeof(c->root_span_id), "%s", r->root_span_id);
    snprintf(c->root_span_name, sizeof(c->root_span_name), "%s", r->root_span_name);
    snprintf(c->status, sizeof(c->status), "%s", r->status);
    snprintf(c->source, sizeof(c->source), "%s", r->source);
    c->started_ns = r->started_ns;
    c->completed_ns = r->completed_ns;
    c->created_ns = r->created_ns;
    c->span_count = r->span_count;
    c->input_tokens = r->input_tokens;
    c->output_tokens = r->output_tokens;
    return 0;
}

typedef struct span_copy {
    char trace_id[64], span_id[64], parent_span_id[64], project_id[64], name[64];
    char span_type[16], service_name[64], status[16], status_message[64], source[16];
    char trace_state[64], llm_provider[32], llm_model[32];
    char attributes[512], events[512], links[512], resource[256], scope[256];
    int kind;
    int64_t start_ns, end_ns, created_ns, input_tokens, output_tokens;
} span_copy;

typedef struct spans {
    span_copy v[32];
    int n;
} spans;

#define CP(f) snprintf(c->f, sizeof(c->f), "%s", r->f)
static int collect_span(void *ud, const pc_span_row *r)
{
    spans *s = ud;
    if (s->n >= 32) return 1;
    span_copy *c = &s->v[s->n++];
    CP(trace_id);
    CP(span_id);
    CP(parent_span_id);
    CP(project_id);
    CP(name);
    CP(span_type);
    CP(service_name);
    CP(status);
    CP(status_message);
    CP(source);
    CP(trace_state);
    CP(llm_provider);
    CP(llm_model);
    CP(attributes);
    CP(events);
    CP(links);
    CP(resource);
    CP(scope);
    c->kind = r->kind;
    c->start_ns = r->start_ns;
    c->end_ns = r->end_ns;
    c->created_ns = r->created_ns;
    c->input_tokens = r->input_tokens;
    c->output_tokens = r->output_tokens;
    return 0;
}
#undef CP

/* The trace |id| of |project| (NULL: of every project having it). */
static traces *get_trace_p(store_h *h, const char *project, const char *id)
{
    static traces t;
    t.n = 0;
    CHECK_EQ_INT(h->st->ops->get_trace(h->st->ctx, project, id, collect_trace, &t), 0);
    return &t;
}

static traces *get_trace(store_h *h, const char *id)
{
    return get_trace_p(h, NULL, id);
}

static spans *get_spans_p(store_h *h, const char *project, const char *id)
{
    static spans s;
    s.n = 0;
    CHECK_EQ_INT(h->st->ops->get_spans(h->st->ctx, project, id, 100000, 0, collect_span, &s), 0);
    return &s;
}

/* The spans of |id| in the default project of add_span. */
static spans *get_spans(store_h *h, const char *id)
{
    return get_spans_p(h, "proj-1", id);
}

static traces *list(store_h *h, pc_trace_filter f)
{
    static traces t;
    t.n = 0;
    if (!f.limit) f.limit = 100;
    CHECK_EQ_INT(h->st->ops->list_traces(h->st->ctx, &f, collect_trace, &t), 0);
    return &t;
}

static traces *search(store_h *h, const char *project, const char *q, int limit)
{
    static traces t;
    t.n = 0;
    CHECK_EQ_INT(h->st->ops->search(h->st->ctx, project, q, limit, collect_trace, &t), 0);
    return &t;
}

/* --------------------------------------------------------------- tests -- */

static void test_options(void)
{
    const char *kv[] = {"synchronous", "fast"};
    void *cfg = make_cfg(kv, 1);
    char err[256] = "";
    CHECK(pc_local_exporter_ops.validate(cfg, err, sizeof(err)) != 0);
    CHECK(strncmp(err, "synchronous:", 12) == 0);
    pc_config_free_options(pc_local_exporter_ops.options, cfg);
    free(cfg);

    const char *kv2[] = {"synchronous", "NORMAL", "retention", "0"};
    cfg = make_cfg(kv2, 2);
    CHECK_EQ_INT(pc_local_exporter_ops.validate(cfg, err, sizeof(err)), 0);
    pc_config_free_options(pc_local_exporter_ops.options, cfg);
    free(cfg);

    CHECK_EQ_STR(pc_local_exporter_ops.type, "local");
    CHECK_EQ_INT(pc_local_exporter_ops.kind, PC_EXPORTER);
}

static void test_fields(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    int64_t recv = pc_time_now_ns();
    pc_batch *b = new_batch(recv);
    pc_span *s = add_span(b, (span_spec){.trace = "test-trace-123",
                                         .span = "span-1",
                                         .name = "anthropic.messages.create",
                                         .service = "my-agent",
                                         .type = PC_TYPE_LLM,
                                         .status = PC_STATUS_ERROR,
                                         .start = T0,
                                         .end = T0 + NS / 2,
                                         .in_tok = 12,
                                         .out_tok = 34});
    s->kind = 3;
    s->source = PC_SOURCE_OTLP;
    s->trace_state = S(b, "k=v");
    s->status_message = S(b, "boom: it's 100%");
    s->llm_provider = S(b, "anthropic");
    s->llm_model = S(b, "claude-3");
    pc_kv *kv = pc_arena_calloc(b->arena, 3 * sizeof(pc_kv));
    kv[0] = kv_str(b, "llm.model", "claude-3");
    kv[1] = (pc_kv){S(b, "n"), {.type = PC_V_INT, .i = 42}};
    kv[2] = (pc_kv){S(b, "ok"), {.type = PC_V_BOOL, .b = true}};
    s->attrs = (pc_attrs){kv, 3};
    pc_event *ev = pc_arena_calloc(b->arena, sizeof(pc_event));
    ev->name = S(b, "llm.request");
    ev->time_ns = T0 + 1000;
    s->events = ev;
    s->n_events = 1;
    pc_link *ln = pc_arena_calloc(b->arena, sizeof(pc_link));
    ln->trace_id = S(b, "t2");
    ln->span_id = S(b, "s2");
    s->links = ln;
    s->n_links = 1;
    pc_kv *rkv = pc_arena_calloc(b->arena, sizeof(pc_kv));
    rkv[0] = kv_str(b, "service.name", "my-agent");
    pc_attrs *res = pc_arena_calloc(b->arena, sizeof(pc_attrs));
    *res = (pc_attrs){rkv, 1};
    s->resource = res;
    pc_scope *sc = pc_arena_calloc(b->arena, sizeof(pc_scope));
    sc->name = S(b, "prela");
    sc->version = S(b, "0.1");
    s->scope = sc;
    /* pc_str are not NUL-terminated: a name followed by junk must be stored by length. */
    char *junk = pc_arena_alloc(b->arena, 16);
    memcpy(junk, "namexxxx", 8);
    s->name = (pc_str){junk, 4};

    CHECK_EQ_INT(consume(&h, b), PC_OK);

    spans *sp = get_spans(&h, "test-trace-123");
    CHECK_EQ_INT(sp->n, 1);
    span_copy *c = &sp->v[0];
    CHECK_EQ_STR(c->trace_id, "test-trace-123");
    CHECK_EQ_STR(c->span_id, "span-1");
    CHECK_EQ_STR(c->parent_span_id, "");
    CHECK_EQ_STR(c->project_id, "proj-1");
    CHECK_EQ_STR(c->name, "name");
    CHECK_EQ_INT(c->kind, 3);
    CHECK_EQ_STR(c->span_type, "llm");
    CHECK_EQ_STR(c->service_name, "my-agent");
    CHECK_EQ_STR(c->status, "error");
    CHECK_EQ_STR(c->status_message, "boom: it's 100%");
    CHECK_EQ_STR(c->source, "otlp");
    CHECK_EQ_STR(c->trace_state, "k=v");
    CHECK_EQ_INT(c->start_ns, T0);
    CHECK_EQ_INT(c->end_ns, T0 + NS / 2);
    CHECK_EQ_INT(c->created_ns, recv);
    CHECK_EQ_STR(c->llm_provider, "anthropic");
    CHECK_EQ_STR(c->llm_model, "claude-3");
    CHECK_EQ_INT(c->input_tokens, 12);
    CHECK_EQ_INT(c->output_tokens, 34);
    CHECK_EQ_STR(c->attributes, "{\"llm.model\":\"claude-3\",\"n\":42,\"ok\":true}");
    CHECK_EQ_STR(c->events,
                 "[{\"name\":\"llm.request\",\"timestamp\":\"2025-01-27T10:00:00.000001Z\","
                 "\"time_unix_nano\":1737972000000001000,\"attributes\":{}}]");
    CHECK_EQ_STR(
        c->links,
        "[{\"trace_id\":\"t2\",\"span_id\":\"s2\",\"trace_state\":\"\",\"attributes\":{}}]");
    CHECK_EQ_STR(c->resource, "{\"service.name\":\"my-agent\"}");
    CHECK_EQ_STR(c->scope, "{\"name\":\"prela\",\"version\":\"0.1\",\"attributes\":{}}");

    traces *t = get_trace(&h, "test-trace-123");
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].trace_id, "test-trace-123");
    CHECK_EQ_STR(t->v[0].project_id, "proj-1");
    CHECK_EQ_STR(t->v[0].service_name, "my-agent");
    CHECK_EQ_STR(t->v[0].root_span_id, "span-1");
    CHECK_EQ_STR(t->v[0].root_span_name, "name");
    CHECK_EQ_STR(t->v[0].status, "error");
    CHECK_EQ_STR(t->v[0].source, "otlp");
    CHECK_EQ_INT(t->v[0].started_ns, T0);
    CHECK_EQ_INT(t->v[0].completed_ns, T0 + NS / 2);
    CHECK_EQ_INT(t->v[0].created_ns, recv);
    CHECK_EQ_INT(t->v[0].span_count, 1);
    CHECK_EQ_INT(t->v[0].input_tokens, 12);
    CHECK_EQ_INT(t->v[0].output_tokens, 34);

    /* Unknown trace: no callback, no error. */
    CHECK_EQ_INT(get_trace(&h, "nope")->n, 0);
    CHECK_EQ_INT(get_spans(&h, "nope")->n, 0);

    char msg[128] = "";
    CHECK_EQ_INT(h.st->ops->health(h.st->ctx, msg, sizeof(msg)), 0);
    /* An empty batch is trivially durable. */
    CHECK_EQ_INT(consume(&h, new_batch(recv)), PC_OK);
    close_store(&h, true);
}

static void test_dedup(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    for (int round = 0; round < 3; round++) {
        pc_batch *b = new_batch(pc_time_now_ns());
        add_span(b, (span_spec){.trace = "t-dup",
                                .span = "root",
                                .name = "first",
                                .start = T0,
                                .end = T0 + NS,
                                .in_tok = 5,
                                .out_tok = 6,
                                .status = round ? PC_STATUS_ERROR : PC_STATUS_SUCCESS});
        /* The same span twice in one batch, too. */
        add_span(b, (span_spec){.trace = "t-dup",
                                .span = "child",
                                .parent = "root",
                                .start = T0 + 1,
                                .end = T0 + 2});
        add_span(b, (span_spec){.trace = "t-dup",
                                .span = "child",
                                .parent = "root",
                                .start = T0 + 1,
                                .end = T0 + 2,
                                .name = "second"});
        CHECK_EQ_INT(consume(&h, b), PC_OK);
    }
    traces *t = get_trace(&h, "t-dup");
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_INT(t->v[0].span_count, 2);
    CHECK_EQ_INT(t->v[0].input_tokens, 5);
    CHECK_EQ_INT(t->v[0].output_tokens, 6);
    CHECK_EQ_STR(t->v[0].status, "success"); /* first write wins: the error re-sends are dropped */
    spans *s = get_spans(&h, "t-dup");
    CHECK_EQ_INT(s->n, 2);
    CHECK_EQ_STR(s->v[1].name, "op"); /* the first "child", not "second" */
    close_store(&h, true);
}

static void test_summary_out_of_order(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    int64_t r1 = pc_time_now_ns();
    pc_batch *b = new_batch(r1);
    add_span(b, (span_spec){.trace = "t-ooo",
                            .span = "c1",
                            .parent = "root",
                            .name = "llm call",
                            .service = "child-svc",
                            .type = PC_TYPE_LLM,
                            .start = T0 + 2 * NS,
                            .end = T0 + 3 * NS,
                            .in_tok = 10,
                            .out_tok = 5,
                            .status = PC_STATUS_ERROR});
    add_span(b, (span_spec){.trace = "t-ooo",
                            .span = "c2",
                            .parent = "c1",
                            .name = "tool",
                            .service = "other-svc",
                            .type = PC_TYPE_TOOL,
                            .start = T0 + 4 * NS,
                            .end = 0 /* not ended */,
                            .in_tok = -1,
                            .out_tok = -1,
                            .status = PC_STATUS_PENDING});
    CHECK_EQ_INT(consume(&h, b), PC_OK);

    traces *t = get_trace(&h, "t-ooo");
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].root_span_id, "");
    CHECK_EQ_STR(t->v[0].service_name, "child-svc"); /* the first span's until a root arrives */
    CHECK_EQ_INT(t->v[0].started_ns, T0 + 2 * NS);
    CHECK_EQ_INT(t->v[0].completed_ns, T0 + 4 * NS); /* unended span counts with its start */
    CHECK_EQ_STR(t->v[0].status, "error");

    b = new_batch(r1 + NS);
    add_span(b, (span_spec){.trace = "t-ooo",
                            .span = "root",
                            .name = "agent run",
                            .service = "root-svc",
                            .type = PC_TYPE_AGENT,
                            .start = T0,
                            .end = T0 + 10 * NS,
                            .in_tok = 20,
                            .out_tok = 7,
                            .status = PC_STATUS_SUCCESS});
    add_span(b, (span_spec){.trace = "t-ooo",
                            .span = "c3",
                            .parent = "root",
                            .name = "llm 2",
                            .service = "child-svc",
                            .type = PC_TYPE_LLM,
                            .start = T0 + NS,
                            .end = T0 + 2 * NS,
                            .in_tok = 0,
                            .out_tok = 3});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    /* A second parentless span later does not replace the root. */
    b = new_batch(r1 + 2 * NS);
    add_span(b, (span_spec){.trace = "t-ooo",
                            .span = "root2",
                            .name = "stray root",
                            .service = "stray-svc",
                            .start = T0 + NS,
                            .end = T0 + NS});
    CHECK_EQ_INT(consume(&h, b), PC_OK);

    t = get_trace(&h, "t-ooo");
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].root_span_id, "root");
    CHECK_EQ_STR(t->v[0].root_span_name, "agent run");
    CHECK_EQ_STR(t->v[0].service_name, "root-svc");
    CHECK_EQ_STR(t->v[0].project_id, "proj-1");
    CHECK_EQ_INT(t->v[0].created_ns, r1); /* first write */
    CHECK_EQ_INT(t->v[0].started_ns, T0);
    CHECK_EQ_INT(t->v[0].completed_ns, T0 + 10 * NS);
    CHECK_EQ_STR(t->v[0].status, "error");
    CHECK_EQ_INT(t->v[0].span_count, 5);
    CHECK_EQ_INT(t->v[0].input_tokens, 30);
    CHECK_EQ_INT(t->v[0].output_tokens, 15);

    /* Children then root inside one batch (one transaction), interleaved with
     * another trace: the root's service wins on the new row as well. */
    b = new_batch(r1 + 3 * NS);
    add_span(b, (span_spec){.trace = "t-same",
                            .span = "k1",
                            .parent = "r",
                            .service = "kid-svc",
                            .start = T0 + 5,
                            .end = T0 + 6,
                            .in_tok = 2,
                            .out_tok = 1});
    add_span(b, (span_spec){.trace = "t-other",
                            .span = "x",
                            .parent = "y",
                            .service = "o-svc",
                            .start = T0,
                            .end = T0 + 1,
                            .project = "proj-o"});
    add_span(b, (span_spec){.trace = "t-same",
                            .span = "r",
                            .name = "the root",
                            .service = "root-svc",
                            .start = T0 + 1,
                            .end = T0 + 9,
                            .status = PC_STATUS_ERROR,
                            .in_tok = 3,
                            .out_tok = -1});
    add_span(b, (span_spec){.trace = "t-same",
                            .span = "k2",
                            .parent = "r",
                            .service = "kid-svc",
                            .start = T0 + 2,
                            .end = 0});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    t = get_trace(&h, "t-same");
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].root_span_id, "r");
    CHECK_EQ_STR(t->v[0].root_span_name, "the root");
    CHECK_EQ_STR(t->v[0].service_name, "root-svc");
    CHECK_EQ_STR(t->v[0].status, "error");
    CHECK_EQ_INT(t->v[0].span_count, 3);
    CHECK_EQ_INT(t->v[0].started_ns, T0 + 1);
    CHECK_EQ_INT(t->v[0].completed_ns, T0 + 9);
    CHECK_EQ_INT(t->v[0].input_tokens, 5);
    CHECK_EQ_INT(t->v[0].output_tokens, 1);
    CHECK_EQ_INT(t->v[0].created_ns, r1 + 3 * NS);
    t = get_trace(&h, "t-other");
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].root_span_id, "");
    CHECK_EQ_STR(t->v[0].service_name, "o-svc");
    CHECK_EQ_STR(t->v[0].project_id, "proj-o");
    CHECK_EQ_STR(t->v[0].status, "success");
    CHECK_EQ_INT(t->v[0].span_count, 1);

    CHECK_EQ_INT(get_spans_p(&h, "proj-o", "t-other")->n, 1);
    spans *s = get_spans(&h, "t-ooo");
    CHECK_EQ_INT(s->n, 5);
    CHECK_EQ_STR(s->v[0].span_id, "root"); /* by start time */
    CHECK_EQ_STR(s->v[1].span_id, "c3");   /* start T0+NS, before root2 by span id */
    CHECK_EQ_STR(s->v[2].span_id, "root2");
    CHECK_EQ_STR(s->v[3].span_id, "c1");
    CHECK_EQ_STR(s->v[4].span_id, "c2");
    CHECK_EQ_INT(s->v[4].end_ns, 0);
    CHECK_EQ_INT(s->v[4].input_tokens, -1);
    CHECK_EQ_STR(s->v[4].status, "pending");
    close_store(&h, true);
}

static void test_filters(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    /* 20 traces, trace i starts at T0 + i s: even ones in proj-a, every third in
     * error, services svc-0..svc-3, and trace i%5==0 has a retrieval span. */
    pc_batch *b = new_batch(pc_time_now_ns());
    for (int i = 0; i < 20; i++) {
        char tid[32], sid[32];
        snprintf(tid, sizeof(tid), "trace-%02d", i);
        snprintf(sid, sizeof(sid), "span-%02d", i);
        char svc[16];
        snprintf(svc, sizeof(svc), "svc-%d", i % 4);
        add_span(b, (span_spec){.trace = tid,
                                .span = sid,
                                .service = svc,
                                .project = i % 2 ? "proj-b" : "proj-a",
                                .type = PC_TYPE_AGENT,
                                .status = i % 3 == 0 ? PC_STATUS_ERROR : PC_STATUS_SUCCESS,
                                .start = T0 + i * NS,
                                .end = T0 + i * NS + 1});
        if (i % 5 == 0) {
            snprintf(sid, sizeof(sid), "ret-%02d", i);
            add_span(b, (span_spec){.trace = tid,
                                    .span = sid,
                                    .parent = "x",
                                    .service = svc,
                                    .type = PC_TYPE_RETRIEVAL,
                                    .start = T0 + i * NS + 1,
                                    .end = T0 + i * NS + 2,
                                    .project = i % 2 ? "proj-b" : "proj-a"});
        }
    }
    CHECK_EQ_INT(consume(&h, b), PC_OK);

    traces *t = list(&h, (pc_trace_filter){0});
    CHECK_EQ_INT(t->n, 20);
    CHECK_EQ_STR(t->v[0].trace_id, "trace-19"); /* newest first */
    CHECK_EQ_STR(t->v[19].trace_id, "trace-00");

    t = list(&h, (pc_trace_filter){.project_id = "proj-a"});
    CHECK_EQ_INT(t->n, 10);
    CHECK_EQ_STR(t->v[0].trace_id, "trace-18");

    t = list(&h, (pc_trace_filter){.status = "error"}); /* 0,3,6,9,12,15,18 */
    CHECK_EQ_INT(t->n, 7);
    CHECK_EQ_STR(t->v[0].trace_id, "trace-18");
    t = list(&h, (pc_trace_filter){.status = "success"}); /* the other 13 */
    CHECK_EQ_INT(t->n, 13);
    CHECK_EQ_STR(t->v[0].trace_id, "trace-19");
    CHECK_EQ_STR(t->v[12].trace_id, "trace-01");
    /* schema 10: the error index holds the failed traces, and only them */
    char db_path[160];
    snprintf(db_path, sizeof(db_path), "%s/data/store/prela.db", h.dir);
    CHECK_EQ_INT(db_int(db_path, "SELECT count(*) FROM traces INDEXED BY traces_errors"
                                 " WHERE status = 'error'"),
                 7);

    t = list(&h, (pc_trace_filter){.service_name = "svc-1"}); /* 1,5,9,13,17 */
    CHECK_EQ_INT(t->n, 5);
    CHECK_EQ_STR(t->v[4].trace_id, "trace-01");

    t = list(&h, (pc_trace_filter){.span_type = "retrieval"}); /* 0,5,10,15 */
    CHECK_EQ_INT(t->n, 4);
    CHECK_EQ_STR(t->v[0].trace_id, "trace-15");
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.span_type = "embedding"})->n, 0);

    t = list(&h, (pc_trace_filter){.start_ns = T0 + 5 * NS, .end_ns = T0 + 9 * NS});
    CHECK_EQ_INT(t->n, 5); /* inclusive both ends */
    CHECK_EQ_STR(t->v[0].trace_id, "trace-09");
    CHECK_EQ_STR(t->v[4].trace_id, "trace-05");

    t = list(&h, (pc_trace_filter){.limit = 3, .offset = 4});
    CHECK_EQ_INT(t->n, 3);
    CHECK_EQ_STR(t->v[0].trace_id, "trace-15");
    CHECK_EQ_STR(t->v[2].trace_id, "trace-13");

    t = list(&h, (pc_trace_filter){.project_id = "proj-a",
                                   .status = "error",
                                   .span_type = "retrieval",
                                   .service_name = "svc-0"});
    CHECK_EQ_INT(t->n, 1); /* 0 only (and 12 has no retrieval span) */
    CHECK_EQ_STR(t->v[0].trace_id, "trace-00");

    /* Hostile filter text is a value, never SQL. */
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.project_id = "x' OR '1'='1"})->n, 0);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.offset = 100})->n, 0);
    close_store(&h, true);
}

static void test_search(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = new_batch(pc_time_now_ns());
    pc_span *s = add_span(
        b,
        (span_spec){
            .trace = "t-s1", .span = "a", .name = "OpenAI.Chat", .start = T0 + 1, .project = "p1"});
    pc_kv *kv = pc_arena_calloc(b->arena, sizeof(pc_kv));
    kv[0] = kv_str(b, "prompt", "it's 100% done_ok");
    s->attrs = (pc_attrs){kv, 1};
    add_span(
        b,
        (span_spec){
            .trace = "t-s2", .span = "b", .name = "100x donex", .start = T0 + 2, .project = "p2"});
    s = add_span(
        b, (span_spec){
               .trace = "t-s3", .span = "c", .name = "retrieve", .start = T0 + 3, .project = "p1"});
    kv = pc_arena_calloc(b->arena, sizeof(pc_kv));
    kv[0] = kv_str(b, "query", "Weather In Paris");
    s->attrs = (pc_attrs){kv, 1};
    /* Two matching spans in one trace: the trace appears once. */
    add_span(b, (span_spec){.trace = "t-s3",
                            .span = "d",
                            .name = "paris lookup",
                            .start = T0 + 4,
                            .project = "p1"});
    CHECK_EQ_INT(consume(&h, b), PC_OK);

    traces *t = search(&h, NULL, "openai.chat", 50); /* name, case-insensitive */
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].trace_id, "t-s1");
    t = search(&h, NULL, "PARIS", 50); /* attribute text and name, one row per trace */
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].trace_id, "t-s3");
    t = search(&h, NULL, "100%", 50); /* % is literal: "100x" does not match */
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].trace_id, "t-s1");
    CHECK_EQ_INT(search(&h, NULL, "done_", 50)->n, 1); /* _ is literal */
    CHECK_EQ_INT(search(&h, NULL, "it's", 50)->n, 1);
    CHECK_EQ_INT(search(&h, NULL, "'; DROP TABLE spans; --", 50)->n, 0);
    t = search(&h, NULL, "o", 50); /* everything, newest first */
    CHECK_EQ_INT(t->n, 3);
    CHECK_EQ_STR(t->v[0].trace_id, "t-s3");
    CHECK_EQ_STR(t->v[2].trace_id, "t-s1");
    CHECK_EQ_INT(search(&h, NULL, "o", 2)->n, 2);
    t = search(&h, "p1", "o", 50);
    CHECK_EQ_INT(t->n, 2);
    CHECK_EQ_INT(search(&h, "p2", "paris", 50)->n, 0);

    /* Decoded values (a quote and a backslash as typed), Unicode case
     * folding, event names and event attribute values; keys are not text. */
    b = new_batch(pc_time_now_ns());
    s = add_span(b, (span_spec){.trace = "t-u1", .span = "a", .name = "Résumé step",
                                .start = T0 + 5, .project = "p1"});
    kv = pc_arena_calloc(b->arena, 2 * sizeof(pc_kv));
    kv[0] = kv_str(b, "path", "say \"hi\" to C:\\Users");
    kv[1] = kv_str(b, "season", "un été à Paris");
    s->attrs = (pc_attrs){kv, 2};
    pc_event *ev = pc_arena_calloc(b->arena, sizeof(pc_event));
    ev->name = (pc_str){"gen_ai.choice", 13};
    pc_kv *ekv = pc_arena_calloc(b->arena, sizeof(pc_kv));
    ekv[0] = kv_str(b, "message", "Привет мир");
    ev->attrs = (pc_attrs){ekv, 1};
    s->events = ev;
    s->n_events = 1;
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(search(&h, NULL, "\"hi\" to C:\\Users", 50)->n, 1);
    CHECK_EQ_STR(search(&h, NULL, "ÉTÉ À", 50)->v[0].trace_id, "t-u1");
    CHECK_EQ_INT(search(&h, NULL, "RÉSUMÉ", 50)->n, 1);
    CHECK_EQ_INT(search(&h, NULL, "gen_ai.choice", 50)->n, 1);
    CHECK_EQ_INT(search(&h, NULL, "ПРИВЕТ", 50)->n, 1);
    CHECK_EQ_INT(search(&h, NULL, "season", 50)->n, 0); /* a key */
    CHECK_EQ_INT(search(&h, NULL, "\\\"hi", 50)->n, 0); /* the JSON escape is not text */
    CHECK_EQ_INT(search(&h, NULL, "ete", 50)->n, 0);     /* accents are not folded away */
    /* malformed UTF-8 and line breaks in a query: answered, not an error */
    CHECK_EQ_INT(search(&h, NULL, "\xE0" "ab\xC3", 50)->n, 0);
    CHECK_EQ_INT(search(&h, NULL, "Résumé\xE0\x80zz", 50)->n, 0);
    CHECK_EQ_INT(search(&h, NULL, "step\nx", 50)->n, 0);
    CHECK_EQ_INT(search(&h, NULL, "mé step", 50)->n, 1);
    close_store(&h, true);
}

/* Bounds on client numbers and reads: token sums saturate at INT64_MAX (in
 * one transaction and across the UPSERT), get_spans pages, and a search past
 * query_timeout stops with PC_STORE_TIMEOUT instead of running on. */
static void test_bounds(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = new_batch(pc_time_now_ns());
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof(id), "s%d", i);
        add_span(b, (span_spec){.trace = "t-big", .span = id, .start = T0 + i, .end = T0 + 10,
                                .type = PC_TYPE_LLM, .in_tok = INT64_MAX - 1, .out_tok = 7});
    }
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    traces *t = get_trace(&h, "t-big");
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_INT(t->v[0].input_tokens, INT64_MAX);
    CHECK_EQ_INT(t->v[0].output_tokens, 35);
    b = new_batch(pc_time_now_ns()); /* a later batch: the UPSERT's sum */
    add_span(b, (span_spec){.trace = "t-big", .span = "s9", .start = T0 + 9, .end = T0 + 10,
                            .type = PC_TYPE_LLM, .in_tok = 5, .out_tok = INT64_MAX});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    t = get_trace(&h, "t-big");
    CHECK_EQ_INT(t->v[0].input_tokens, INT64_MAX);
    CHECK_EQ_INT(t->v[0].output_tokens, INT64_MAX);
    CHECK_EQ_INT(t->v[0].span_count, 6);

    /* pages of get_spans, in start order */
    static spans s;
    s.n = 0;
    CHECK_EQ_INT(h.st->ops->get_spans(h.st->ctx, "proj-1", "t-big", 2, 1, collect_span, &s), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_STR(s.v[0].span_id, "s1");
    CHECK_EQ_STR(s.v[1].span_id, "s2");
    s.n = 0;
    CHECK_EQ_INT(h.st->ops->get_spans(h.st->ctx, "proj-1", "t-big", 10, 5, collect_span, &s), 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.v[0].span_id, "s9");
    close_store(&h, true);

    /* 16 MB of attribute text against a 1 ms limit: the search stops */
    const char *const kv[] = {"query_timeout", "1ms"};
    open_store_kv(&h, NULL, NULL, kv, 1);
    enum { BIG = 2 << 20 };
    for (int i = 0; i < 8; i++) {
        b = new_batch(pc_time_now_ns());
        char id[16];
        snprintf(id, sizeof(id), "t-huge-%d", i);
        pc_span *sp = add_span(b, (span_spec){.trace = id, .span = "a", .start = T0 + i});
        char *text = pc_arena_alloc(b->arena, BIG + 1);
        memset(text, 'a', BIG);
        text[BIG] = '\0';
        pc_kv *a = pc_arena_calloc(b->arena, sizeof(pc_kv));
        a[0] = kv_str(b, "prompt", "");
        a[0].value.s = (pc_str){text, BIG};
        sp->attrs = (pc_attrs){a, 1};
        CHECK_EQ_INT(consume(&h, b), PC_OK);
    }
    char pattern[1001];
    memset(pattern, 'a', 999);
    pattern[999] = 'b';
    pattern[1000] = '\0';
    traces found = {.n = 0};
    /* Two characters: no trigram, so a scan, which the deadline stops. */
    int64_t t0 = pc_time_mono_ns();
    int rc = h.st->ops->search(h.st->ctx, NULL, "ab", 50, collect_trace, &found);
    int64_t took = pc_time_mono_ns() - t0;
    CHECK_EQ_INT(rc, PC_STORE_TIMEOUT);
    CHECK(took < 500 * 1000000LL); /* stopped near the limit, not after the scan */
    /* The 1,000-byte pattern: the trigram index rules it out ("aab" is in no
     * span). Asked of the same store with a limit that even a slow (ASan,
     * loaded) machine keeps: 1 ms is for the scan above only. */
    char dir[sizeof(h.dir)];
    snprintf(dir, sizeof(dir), "%s", h.dir);
    close_store(&h, false);
    const char *const kv2[] = {"query_timeout", "10s"};
    open_store_kv(&h, dir, NULL, kv2, 1);
    CHECK_EQ_INT(h.st->ops->search(h.st->ctx, NULL, pattern, 50, collect_trace, &found), 0);
    CHECK_EQ_INT(found.n, 0);
    close_store(&h, true);
}

static void test_retention(void)
{
    store_h h;
    open_store(&h, NULL, "1d");
    int64_t now = pc_time_now_ns();
    /* Old event times (2025 examples) but ingested now: kept. */
    pc_batch *b = new_batch(now);
    add_span(b, (span_spec){.trace = "t-new", .span = "a", .name = "survivor", .start = T0,
                            .end = T0 + 1});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    /* Ingested two days ago: deleted, with all its spans. */
    b = new_batch(now - 2 * 86400 * NS);
    add_span(b, (span_spec){.trace = "t-old", .span = "a", .name = "oldname one", .start = now,
                            .end = now + 1});
    add_span(b, (span_spec){.trace = "t-old", .span = "b", .name = "oldname two", .start = now,
                            .end = now + 1});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    /* a later span of the same trace: a second search document of it */
    b = new_batch(now - 2 * 86400 * NS);
    add_span(b, (span_spec){.trace = "t-old", .span = "c", .name = "latecomer", .start = now,
                            .end = now + 1});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){0})->n, 2);
    CHECK_EQ_INT(search(&h, NULL, "latecomer", 10)->n, 1);
    CHECK_EQ_INT(search(&h, NULL, "oldname two", 10)->n, 1);
    char db_path[256];
    snprintf(db_path, sizeof(db_path), "%s/data/store/prela.db", h.dir);
    pc_local_search_flush(h.ctx);
    CHECK_EQ_INT(fts_hits(db_path, "\"dna\" OR \"ate\""), 1); /* t-old, once */

    CHECK_EQ_INT(pc_local_purge(h.ctx, now), 1);
    /* its trigrams left the index with it (FTS5 'delete'); t-new, in the same
     * search block, was indexed again and is still found */
    pc_local_search_flush(h.ctx);
    CHECK_EQ_INT(fts_hits(db_path, "\"dna\" OR \"ate\" OR \"ldn\""), 0);
    CHECK_EQ_INT(fts_hits(db_path, "\"viv\""), 1);
    CHECK_EQ_INT(search(&h, NULL, "SURVIVOR", 10)->n, 1);
    CHECK_EQ_INT(search(&h, NULL, "oldname", 10)->n, 0);
    CHECK_EQ_INT(get_trace(&h, "t-old")->n, 0);
    CHECK_EQ_INT(get_spans(&h, "t-old")->n, 0);
    CHECK_EQ_INT(get_trace(&h, "t-new")->n, 1);
    CHECK_EQ_INT(get_spans(&h, "t-new")->n, 1);
    CHECK_EQ_INT(pc_local_purge(h.ctx, now), 0);
    /* A day and a half later the new one expires too. */
    CHECK_EQ_INT(pc_local_purge(h.ctx, now + 3 * 86400 * NS / 2), 1);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){0})->n, 0);
    close_store(&h, true);

    /* A backlog larger than one retention chunk (1000 traces): written now with
     * an ingest time of two days ago, then the store is reopened. The run at
     * start deletes its first chunk before any write of the new process, then
     * goes on chunk by chunk between writes; the hook finishes the rest. */
    open_store(&h, NULL, "1d");
    b = new_batch(now - 2 * 86400 * NS);
    for (int i = 0; i < 2500; i++) {
        char tid[32];
        snprintf(tid, sizeof(tid), "old-%04d", i);
        add_span(b, (span_spec){.trace = tid, .span = "a", .start = now, .end = now + 1});
    }
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.limit = 100000})->n, 128); /* collector cap */
    char dir[64];
    snprintf(dir, sizeof(dir), "%s", h.dir);
    close_store(&h, false);
    open_store(&h, dir, "1d");
    b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "t-fresh", .span = "a", .start = T0, .end = T0 + 1});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    int64_t rest = pc_local_purge(h.ctx, pc_time_now_ns());
    CHECK(rest >= 0 && rest <= 1500);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.limit = 100000})->n, 1);
    CHECK_EQ_INT(get_trace(&h, "t-fresh")->n, 1);
    close_store(&h, true);

    /* retention 0 keeps forever: the hook refuses. */
    open_store(&h, NULL, "0");
    CHECK_EQ_INT(pc_local_purge(h.ctx, pc_time_now_ns()), -1);
    close_store(&h, true);
}

#define THREADS 8
#define BATCHES 40
#define SPANS 10

static void *consumer_main(void *arg)
{
    store_h *h = ((void **)arg)[0];
    int id = (int)(intptr_t)((void **)arg)[1];
    intptr_t failures = 0;
    for (int i = 0; i < BATCHES; i++) {
        pc_batch *b = new_batch(pc_time_now_ns());
        char tid[32];
        snprintf(tid, sizeof(tid), "th%d-%d", id, i);
        for (int k = 0; k < SPANS; k++) {
            char sid[16];
            snprintf(sid, sizeof(sid), "s%d", k);
            add_span(b, (span_spec){.trace = tid,
                                    .span = sid,
                                    .parent = k ? "s0" : NULL,
                                    .start = T0 + k,
                                    .end = T0 + k + 1,
                                    .in_tok = 1,
                                    .out_tok = 2});
        }
        if (consume(h, b) != PC_OK) failures++;
    }
    return (void *)failures;
}

static void test_concurrent(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pthread_t th[THREADS];
    void *args[THREADS][2];
    for (int i = 0; i < THREADS; i++) {
        args[i][0] = &h;
        args[i][1] = (void *)(intptr_t)i;
        pthread_create(&th[i], NULL, consumer_main, args[i]);
    }
    /* Reads run alongside the writes. */
    for (int i = 0; i < 20; i++)
        list(&h, (pc_trace_filter){.limit = 10});
    intptr_t failures = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        failures += (intptr_t)r;
    }
    CHECK_EQ_INT(failures, 0);
    traces *t = list(&h, (pc_trace_filter){.limit = 1000});
    CHECK_EQ_INT(t->n, 128); /* the collector's cap; there are more */
    int64_t total = 0;
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < BATCHES; k++) {
            char tid[32];
            snprintf(tid, sizeof(tid), "th%d-%d", i, k);
            traces *one = get_trace(&h, tid);
            if (one->n == 1) {
                total += one->v[0].span_count;
                if (one->v[0].input_tokens != SPANS || strcmp(one->v[0].root_span_id, "s0"))
                    total = -1000000;
            }
        }
    CHECK_EQ_INT(total, THREADS * BATCHES * SPANS);
    close_store(&h, true);
}

/* A second connection to the store's prela.db (5 s busy timeout), beside the
 * exporter's own: for triggers and locks that tests set up. */
static sqlite3 *side_db(store_h *h)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/data/store/prela.db", h->dir);
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* Holds SQLite's write lock from a second connection so the writer stalls. */
static sqlite3 *lock_db(store_h *h)
{
    sqlite3 *db = side_db(h);
    CHECK_EQ_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static pc_batch *three_spans(const char *trace)
{
    pc_batch *b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = trace, .span = "a", .start = T0, .end = T0 + 1});
    add_span(b,
             (span_spec){.trace = trace, .span = "b", .parent = "a", .start = T0, .end = T0 + 1});
    add_span(b,
             (span_spec){.trace = trace, .span = "c", .parent = "a", .start = T0, .end = T0 + 1});
    return b;
}

static void test_backpressure(void)
{
    store_h h;
    const char *extra[] = {"timeout", "200ms", "queue_size", "5"};
    open_store_kv(&h, NULL, NULL, extra, 2);
    sqlite3 *lock = lock_db(&h);

    /* A: taken by the writer, which then waits for the lock: timeout → retry. */
    CHECK_EQ_INT(consume(&h, three_spans("t-a")), PC_RETRY);
    /* B: queued behind A (3 of 5 spans), times out as well but stays queued. */
    CHECK_EQ_INT(consume(&h, three_spans("t-b")), PC_RETRY);
    /* C: 3 + 3 > queue_size: refused at once. */
    int64_t t = pc_time_now_ns();
    CHECK_EQ_INT(consume(&h, three_spans("t-c")), PC_RETRY);
    CHECK(pc_time_now_ns() - t < 150 * 1000000LL);

    CHECK_EQ_INT(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
    /* D (one span: fits behind B's three) commits after A and B, since one
     * writer commits in order, so they are visible once D is acknowledged. The
     * writer may still sit in SQLite's busy back-off (up to 100 ms) for a short
     * while: a re-sent D (deduplicated) waits for it without any sleep here. */
    int tries = 0;
    pc_result r = PC_RETRY;
    while (r != PC_OK && tries++ < 25) {
        pc_batch *d = new_batch(pc_time_now_ns());
        add_span(d, (span_spec){.trace = "t-d", .span = "a", .start = T0, .end = T0 + 1});
        r = consume(&h, d);
    }
    CHECK_EQ_INT(r, PC_OK);
    CHECK_EQ_INT(get_trace(&h, "t-a")->n, 1);
    CHECK_EQ_INT(get_trace(&h, "t-b")->n, 1);
    CHECK_EQ_INT(get_trace(&h, "t-c")->n, 0);
    CHECK_EQ_INT(get_trace(&h, "t-d")->n, 1);
    CHECK_EQ_INT(get_trace(&h, "t-b")->v[0].span_count, 3);
    close_store(&h, true);
}

/* ---------------------------------------------------- chunked writing -- */

#define BIG_TRACES 7

/*
 * A batch of |n| spans over BIG_TRACES traces "<prefix>-0".. (span i in trace
 * i % BIG_TRACES; the first span of each trace is its root; 1 input token
 * each); span |poison| (when < n) has trace id "poison" instead.
 */
static pc_batch *big_batch(const char *prefix, size_t n, size_t poison)
{
    pc_batch *b = new_batch(pc_time_now_ns());
    for (size_t i = 0; i < n; i++) {
        char tid[32], sid[32], pid[32];
        snprintf(tid, sizeof(tid), "%s-%zu", prefix, i % BIG_TRACES);
        snprintf(sid, sizeof(sid), "s%zu", i);
        snprintf(pid, sizeof(pid), "s%zu", i % BIG_TRACES);
        add_span(b, (span_spec){.trace = i == poison ? "poison" : tid,
                                .span = sid,
                                .parent = i < BIG_TRACES ? NULL : pid,
                                .start = T0 + (int64_t)i,
                                .end = T0 + (int64_t)i + 1,
                                .in_tok = 1});
    }
    return b;
}

/* Spans stored over the traces of big_batch(|prefix|); -1 when a summary is off. */
static int64_t big_stored(store_h *h, const char *prefix)
{
    int64_t total = 0;
    for (int k = 0; k < BIG_TRACES; k++) {
        char tid[32], root[32];
        snprintf(tid, sizeof(tid), "%s-%d", prefix, k);
        snprintf(root, sizeof(root), "s%d", k);
        traces *t = get_trace(h, tid);
        if (t->n == 0) continue;
        if (t->v[0].input_tokens != t->v[0].span_count || strcmp(t->v[0].root_span_id, root))
            return -1;
        total += t->v[0].span_count;
    }
    return total;
}

typedef struct chunk_call {
    store_h *h;
    pc_batch *b;
    pc_result res;
    int order; /* when it returned, among the calls sharing |next| */
    int *next;
    pthread_mutex_t *mu;
} chunk_call;

static void *chunk_consumer(void *arg)
{
    chunk_call *c = arg;
    c->res = consume(c->h, c->b);
    pthread_mutex_lock(c->mu);
    c->order = (*c->next)++;
    pthread_mutex_unlock(c->mu);
    return NULL;
}

/* Waits until the exporter's backlog is |n| spans (the writer took a chunk). */
static void wait_backlog(store_h *h, int64_t n)
{
    for (int i = 0; i < 10000 && pc_local_backlog(h->ctx) != n; i++)
        usleep(1000);
    CHECK_EQ_INT(pc_local_backlog(h->ctx), n);
}

/*
 * A big batch queued first and a small one queued once the writer took the
 * big one's first chunk (the writer stalled on a lock until both are queued),
 * each from its own thread. Returns the two calls' results and return order.
 */
static void big_then_small(store_h *h, pc_batch *big, pc_batch *small, chunk_call *cb,
                           chunk_call *cs)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int next;
    next = 0;
    size_t n_big = big->n;
    sqlite3 *lock = lock_db(h);
    *cb = (chunk_call){.h = h, .b = big, .next = &next, .mu = &mu};
    *cs = (chunk_call){.h = h, .b = small, .next = &next, .mu = &mu};
    pthread_t tb, ts;
    pthread_create(&tb, NULL, chunk_consumer, cb);
    wait_backlog(h, (int64_t)(n_big - PC_LOCAL_TXN_MAX)); /* first chunk taken */
    size_t n_small = small->n;
    pthread_create(&ts, NULL, chunk_consumer, cs);
    wait_backlog(h, (int64_t)(n_big - PC_LOCAL_TXN_MAX + n_small));
    CHECK_EQ_INT(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
    pthread_join(tb, NULL);
    pthread_join(ts, NULL);
}

static void test_chunks(void)
{
    store_h h;
    open_store(&h, NULL, NULL);

    /* Interleaving: the big batch's first transaction commits early (the
     * small one waits), the small one goes next, so it returns first. */
    size_t n = PC_LOCAL_TXN_MAX + 3 * PC_LOCAL_TXN_SPANS;
    chunk_call cb, cs;
    big_then_small(&h, big_batch("big", n, n), three_spans("t-small"), &cb, &cs);
    CHECK_EQ_INT(cb.res, PC_OK);
    CHECK_EQ_INT(cs.res, PC_OK);
    CHECK_EQ_INT(cs.order, 0); /* before the big batch's last chunk committed */
    CHECK_EQ_INT(cb.order, 1);
    CHECK_EQ_INT(big_stored(&h, "big"), (int64_t)n); /* summaries merged over the chunks */
    CHECK_EQ_INT(get_trace(&h, "t-small")->v[0].span_count, 3);
    CHECK_EQ_INT(pc_local_backlog(h.ctx), 0);

    /* A failing transaction fails the batches with spans in it, and only those:
     * a trigger of a second connection rejects the span of trace "poison". */
    char p[256];
    snprintf(p, sizeof(p), "%s/data/store/prela.db", h.dir);
    /* a fresh file gets FTS5's merge settings too (local_schema.c, FTS_MERGE;
     * local_index.c for span_text in prela-search.db) */
    char ip[256];
    snprintf(ip, sizeof(ip), "%s/data/store/prela-search.db", h.dir);
    CHECK_EQ_INT(db_int(ip, "SELECT v FROM span_text_config WHERE k = 'automerge'"), 16);
    CHECK_EQ_INT(db_int(p, "SELECT count(*) FROM sqlite_master WHERE name = 'span_text'"), 0);
    CHECK_EQ_INT(db_int(p, "SELECT v FROM span_event_text_config WHERE k = 'crisismerge'"), 64);
    sqlite3 *db = side_db(&h);
    CHECK_EQ_INT(sqlite3_exec(db,
                              "CREATE TRIGGER poison BEFORE INSERT ON spans"
                              " WHEN (SELECT trace_id FROM traces WHERE tid = NEW.tid) = 'poison'"
                              " BEGIN SELECT RAISE(ABORT, 'poison'); END",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    /* Poison in the big batch's first chunk: it fails (the rest of it is never
     * written); the small batch queued behind it is written. */
    big_then_small(&h, big_batch("p1", PC_LOCAL_TXN_MAX + 100, 5), three_spans("t-small2"), &cb,
                   &cs);
    CHECK_EQ_INT(cb.res, PC_RETRY);
    CHECK_EQ_INT(cs.res, PC_OK);
    CHECK_EQ_INT(big_stored(&h, "p1"), 0);
    CHECK_EQ_INT(get_trace(&h, "t-small2")->n, 1);
    CHECK_EQ_INT(pc_local_backlog(h.ctx), 0);

    /* Poison in the second transaction: the first stays committed, the call
     * answers retry. */
    n = PC_LOCAL_TXN_MAX + 2 * PC_LOCAL_TXN_SPANS;
    CHECK_EQ_INT(consume(&h, big_batch("p2", n, PC_LOCAL_TXN_MAX + 5)), PC_RETRY);
    CHECK_EQ_INT(big_stored(&h, "p2"), PC_LOCAL_TXN_MAX);
    CHECK_EQ_INT(get_trace(&h, "poison")->n, 0);
    /* Re-sent once the store accepts it: the committed chunk's spans are
     * deduplicated, so every count and sum is exact. */
    CHECK_EQ_INT(sqlite3_exec(db, "DROP TRIGGER poison", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    CHECK_EQ_INT(consume(&h, big_batch("p2", n, PC_LOCAL_TXN_MAX + 5)), PC_OK);
    CHECK_EQ_INT(big_stored(&h, "p2"), (int64_t)n - 1);
    CHECK_EQ_INT(get_trace(&h, "poison")->v[0].span_count, 1);
    CHECK_EQ_INT(consume(&h, big_batch("p2", n, PC_LOCAL_TXN_MAX + 5)), PC_OK);
    CHECK_EQ_INT(big_stored(&h, "p2"), (int64_t)n - 1);
    close_store(&h, true);
}

/*
 * A small batch queued while the writer is inside a huge batch's first
 * transaction (a trigger slows every span insert) waits for about
 * PC_LOCAL_TXN_SPANS of its spans, not for the whole transaction: the writer
 * writes the spans as it goes (pc_local_txn_write) and looks for waiting
 * batches between (before, it looked before writing any and never saw one).
 */
static void test_cut_while_writing(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    sqlite3 *db = side_db(&h);
    CHECK_EQ_INT(sqlite3_exec(db,
                              "CREATE TRIGGER slow AFTER INSERT ON spans BEGIN SELECT count(*)"
                              " FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1"
                              " FROM c WHERE x < 1000) SELECT x FROM c); END",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int next = 0;
    size_t n = PC_LOCAL_TXN_MAX + PC_LOCAL_TXN_SPANS;
    chunk_call cb = {.h = &h, .b = big_batch("cut", n, n), .next = &next, .mu = &mu};
    pthread_t tb;
    pthread_create(&tb, NULL, chunk_consumer, &cb);
    wait_backlog(&h, (int64_t)(n - PC_LOCAL_TXN_MAX)); /* in its first transaction */
    CHECK_EQ_INT(consume(&h, three_spans("t-cut")), PC_OK);
    int64_t before = big_stored(&h, "cut"); /* committed before the small one returned */
    CHECK(before >= PC_LOCAL_TXN_SPANS && before <= PC_LOCAL_TXN_SPANS + 512);
    pthread_join(tb, NULL);
    CHECK_EQ_INT(cb.res, PC_OK);
    CHECK_EQ_INT(big_stored(&h, "cut"), (int64_t)n);
    CHECK_EQ_INT(sqlite3_exec(db, "DROP TRIGGER slow", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    close_store(&h, true);
}

static void test_lifecycle(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "t-keep", .span = "a", .start = T0, .end = T0 + 1});
    CHECK_EQ_INT(consume(&h, b), PC_OK);

    /* After shutdown nothing is accepted, and reads still work until destroy. */
    pc_local_exporter_ops.shutdown(h.ctx);
    b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "t-late", .span = "a", .start = T0, .end = T0 + 1});
    CHECK_EQ_INT(consume(&h, b), PC_RETRY);
    CHECK_EQ_INT(get_trace(&h, "t-keep")->n, 1);
    char dir[64];
    snprintf(dir, sizeof(dir), "%s", h.dir);
    close_store(&h, false);
    /* Closed cleanly: the WAL was checkpointed into the database and removed. */
    char wal[128];
    snprintf(wal, sizeof(wal), "%s/data/store/prela.db-wal", dir);
    CHECK(access(wal, F_OK) != 0);

    /* Reopening the same directory finds the data. */
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(get_trace(&h, "t-keep")->n, 1);
    CHECK_EQ_INT(get_trace(&h, "t-late")->n, 0);
    close_store(&h, true);

    /* Created but never started: consume refuses, shutdown/destroy are fine. */
    const char *kv[] = {"directory", "/tmp/pc_local_never_started"};
    void *cfg = make_cfg(kv, 1);
    void *ctx = pc_local_exporter_ops.create("local", cfg, NULL);
    CHECK(ctx != NULL);
    b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "t", .span = "a", .start = T0, .end = T0 + 1});
    CHECK_EQ_INT(pc_local_exporter_ops.consume(ctx, b), PC_RETRY);
    pc_local_exporter_ops.shutdown(ctx);
    pc_local_exporter_ops.destroy(ctx);
    pc_local_exporter_ops.destroy(NULL);
    pc_config_free_options(pc_local_exporter_ops.options, cfg);
    free(cfg);
    CHECK(access("/tmp/pc_local_never_started", F_OK) != 0); /* nothing touched before start */

    /* A directory that cannot be created fails start with a message. */
    const char *kv2[] = {"directory", "/proc/pc_local_cannot/x"};
    cfg = make_cfg(kv2, 1);
    ctx = pc_local_exporter_ops.create("local", cfg, NULL);
    CHECK(ctx != NULL);
    CHECK_EQ_INT(pc_local_exporter_ops.start(ctx, NULL), -1);
    pc_local_exporter_ops.destroy(ctx);
    pc_config_free_options(pc_local_exporter_ops.options, cfg);
    free(cfg);
}

/* Two projects send the same trace id and the same span ids. */
static void test_projects(void)
{
    store_h h;
    open_store(&h, NULL, "1d");
    int64_t now = pc_time_now_ns();
    pc_batch *b = new_batch(now);
    add_span(b, (span_spec){.trace = "t-x", .span = "root", .name = "alpha secret",
                            .service = "svc-a", .project = "pa", .type = PC_TYPE_LLM,
                            .start = T0, .end = T0 + 5 * NS, .in_tok = 7, .out_tok = 1});
    add_span(b, (span_spec){.trace = "t-x", .span = "kid", .parent = "root", .project = "pa",
                            .start = T0 + NS, .end = T0 + 2 * NS});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    /* Project B: the same ids, later, other content, one more span. */
    b = new_batch(now + NS);
    add_span(b, (span_spec){.trace = "t-x", .span = "root", .name = "beta root",
                            .service = "svc-b", .project = "pb", .type = PC_TYPE_TOOL,
                            .status = PC_STATUS_ERROR, .start = T0 + 10 * NS,
                            .end = T0 + 20 * NS});
    add_span(b, (span_spec){.trace = "t-x", .span = "kid", .parent = "root", .project = "pb",
                            .name = "beta kid", .start = T0 + 11 * NS, .end = T0 + 12 * NS});
    add_span(b, (span_spec){.trace = "t-x", .span = "more", .parent = "root", .project = "pb",
                            .start = T0 + 12 * NS, .end = T0 + 13 * NS});
    CHECK_EQ_INT(consume(&h, b), PC_OK);

    /* Two traces; A's spans untouched by B's. */
    traces *t = get_trace_p(&h, NULL, "t-x");
    CHECK_EQ_INT(t->n, 2);
    CHECK_EQ_STR(t->v[0].project_id, "pa"); /* ordered by project */
    CHECK_EQ_STR(t->v[1].project_id, "pb");
    t = get_trace_p(&h, "pa", "t-x");
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_INT(t->v[0].span_count, 2);
    CHECK_EQ_STR(t->v[0].status, "success");
    CHECK_EQ_STR(t->v[0].service_name, "svc-a");
    CHECK_EQ_STR(t->v[0].root_span_name, "alpha secret");
    CHECK_EQ_INT(t->v[0].completed_ns, T0 + 5 * NS);
    CHECK_EQ_INT(t->v[0].input_tokens, 7);
    t = get_trace_p(&h, "pb", "t-x");
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_INT(t->v[0].span_count, 3);
    CHECK_EQ_STR(t->v[0].status, "error");
    CHECK_EQ_STR(t->v[0].root_span_name, "beta root");
    CHECK_EQ_INT(t->v[0].started_ns, T0 + 10 * NS);
    CHECK_EQ_INT(get_trace_p(&h, "pc", "t-x")->n, 0);

    spans *sp = get_spans_p(&h, "pa", "t-x");
    CHECK_EQ_INT(sp->n, 2);
    CHECK_EQ_STR(sp->v[0].name, "alpha secret");
    CHECK_EQ_STR(sp->v[0].project_id, "pa");
    CHECK_EQ_STR(sp->v[1].project_id, "pa");
    sp = get_spans_p(&h, "pb", "t-x");
    CHECK_EQ_INT(sp->n, 3);
    CHECK_EQ_STR(sp->v[0].name, "beta root");
    for (int i = 0; i < 3; i++)
        CHECK_EQ_STR(sp->v[i].project_id, "pb");
    CHECK_EQ_INT(get_spans_p(&h, "pc", "t-x")->n, 0);

    /* A re-sent B span is still deduplicated within B. */
    b = new_batch(now + 2 * NS);
    add_span(b, (span_spec){.trace = "t-x", .span = "more", .parent = "root", .project = "pb",
                            .name = "changed", .start = T0, .end = T0 + 1});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(get_trace_p(&h, "pb", "t-x")->v[0].span_count, 3);

    /* Lists, filters and search stay inside a project. */
    CHECK_EQ_INT(list(&h, (pc_trace_filter){0})->n, 2);
    t = list(&h, (pc_trace_filter){.project_id = "pa"});
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].project_id, "pa");
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.project_id = "pb", .span_type = "llm"})->n, 0);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.project_id = "pa", .span_type = "tool"})->n, 0);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.span_type = "llm"})->n, 1);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.status = "error", .project_id = "pa"})->n, 0);
    t = list(&h, (pc_trace_filter){.span_type = "tool"});
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].project_id, "pb");
    CHECK_EQ_INT(search(&h, "pb", "secret", 10)->n, 0);
    CHECK_EQ_INT(search(&h, "pa", "secret", 10)->n, 1);
    t = search(&h, NULL, "secret", 10);
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].project_id, "pa");
    CHECK_EQ_INT(search(&h, NULL, "beta", 10)->n, 1);

    /* Retention removes one project's trace, not the other's of the same id. */
    b = new_batch(now - 2 * 86400 * NS);
    add_span(b, (span_spec){.trace = "t-x", .span = "root", .project = "pold", .start = T0,
                            .end = T0 + 1});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(get_trace_p(&h, NULL, "t-x")->n, 3);
    CHECK_EQ_INT(pc_local_purge(h.ctx, now), 1);
    CHECK_EQ_INT(get_trace_p(&h, NULL, "t-x")->n, 2);
    CHECK_EQ_INT(get_spans_p(&h, "pold", "t-x")->n, 0);
    CHECK_EQ_INT(get_spans_p(&h, "pa", "t-x")->n, 2);
    CHECK_EQ_INT(get_spans_p(&h, "pb", "t-x")->n, 3);
    close_store(&h, true);
}

/* The first release's schema (version 1), as that release created it. */
static const char V1_SCHEMA[] =
    "CREATE TABLE spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL,"
    " parent_span_id TEXT NOT NULL, project_id TEXT NOT NULL, name TEXT NOT NULL,"
    " kind INTEGER NOT NULL, span_type TEXT NOT NULL, service_name TEXT NOT NULL,"
    " status TEXT NOT NULL, status_message TEXT NOT NULL, source TEXT NOT NULL,"
    " trace_state TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,"
    " created_ns INTEGER NOT NULL, llm_provider TEXT NOT NULL, llm_model TEXT NOT NULL,"
    " input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, attributes TEXT NOT NULL,"
    " events TEXT NOT NULL, links TEXT NOT NULL, resource TEXT NOT NULL, scope TEXT NOT NULL,"
    " UNIQUE (trace_id, span_id));"
    "CREATE INDEX spans_trace_type ON spans (trace_id, span_type);"
    "CREATE TABLE traces (trace_id TEXT NOT NULL PRIMARY KEY, project_id TEXT NOT NULL,"
    " service_name TEXT NOT NULL, root_span_id TEXT NOT NULL, root_span_name TEXT NOT NULL,"
    " has_root INTEGER NOT NULL, status TEXT NOT NULL, source TEXT NOT NULL,"
    " started_ns INTEGER NOT NULL, completed_ns INTEGER NOT NULL, created_ns INTEGER NOT NULL,"
    " span_count INTEGER NOT NULL, input_tokens INTEGER NOT NULL,"
    " output_tokens INTEGER NOT NULL);"
    "CREATE INDEX traces_started ON traces (started_ns);"
    "CREATE INDEX traces_project ON traces (project_id, started_ns);"
    "CREATE INDEX traces_service ON traces (service_name, started_ns);"
    "CREATE INDEX traces_status ON traces (status, started_ns);"
    "CREATE INDEX traces_created ON traces (created_ns, trace_id);"
    /* t1: one project's trace; t2: project pa's trace into which pb wrote a
     * span of its own (version 1 counted it in pa's row). */
    "INSERT INTO spans VALUES ('t1','r','','pa','root one',2,'agent','svc1','success','',"
    " 'prela','ts',100,200,1000,'','',-1,-1,'{\"k\":\"v\"}','[]','[]','{}','{}');"
    "INSERT INTO spans VALUES ('t1','c','r','pa','llm one',3,'llm','svc1','error','boom',"
    " 'prela','',120,150,1000,'openai','gpt',5,6,'{}','[{\"name\":\"e\"}]','[]','{}','{}');"
    "INSERT INTO traces VALUES ('t1','pa','svc1','r','root one',1,'error','prela',100,200,1000,"
    " 2,5,6);"
    "INSERT INTO spans VALUES ('t2','r','','pa','root two',1,'custom','svc2','success','',"
    " 'otlp','',300,400,2000,'','',-1,-1,'{}','[]','[]','{}','{}');"
    "INSERT INTO spans VALUES ('t2','x','','pb','b root',1,'tool','svc-b','error','',"
    " 'otlp','',350,500,3000,'','',4,-1,'{}','[]','[]','{}','{}');"
    "INSERT INTO traces VALUES ('t2','pa','svc2','r','root two',1,'error','otlp',300,500,2000,"
    " 2,4,0);";

static void test_migration(void)
{
    char dir[64] = "/tmp/pc_local_XXXXXX", path[160], sub[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(sub, sizeof(sub), "%s/data", dir);
    CHECK_EQ_INT(mkdir(sub, 0750), 0);
    snprintf(sub, sizeof(sub), "%s/data/store", dir);
    CHECK_EQ_INT(mkdir(sub, 0750), 0);
    snprintf(path, sizeof(path), "%s/prela.db", sub);
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    CHECK_EQ_INT(sqlite3_exec(db, V1_SCHEMA, NULL, NULL, &err), SQLITE_OK);
    sqlite3_close(db);
    CHECK_EQ_INT(db_int(path, "PRAGMA user_version"), 0);

    store_h h;
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(db_int(path, "PRAGMA user_version"), PC_LOCAL_SCHEMA_VERSION); /* 1 -> ... -> 8 in one go */
    /* trace_bounds: t1 100..200, t2 of pa 300..400, t2 of pb 350..500 */
    CHECK_EQ_INT(db_int(path, "SELECT longest_ns FROM trace_bounds"), 150);
    /* FTS5's merge settings (local_schema.c, FTS_MERGE; local_index.c) on both trigram indexes */
    char ipath[300];
    snprintf(ipath, sizeof(ipath), "%.*s/prela-search.db", (int)(strrchr(path, '/') - path), path);
    CHECK_EQ_INT(db_int(ipath, "SELECT v FROM span_text_config WHERE k = 'automerge'"), 16);
    CHECK_EQ_INT(db_int(ipath, "SELECT v FROM span_text_config WHERE k = 'crisismerge'"), 64);
    CHECK_EQ_INT(db_int(path, "SELECT v FROM span_event_text_config WHERE k = 'automerge'"), 16);
    /* the old rows' models are in the model index */
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.model = "gpt"})->n, 1);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v1'"), 0);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v2'"), 0);
    /* the old rows are in the search index, span types in the summaries */
    CHECK_EQ_INT(search(&h, NULL, "llm one", 50)->n, 1);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.span_type = "tool"})->n, 1);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.span_type = "llm"})->n, 1);
    /* t1: every field as version 1 held it. */
    traces *t = get_trace_p(&h, NULL, "t1");
    CHECK_EQ_INT(t->n, 1);
    CHECK_EQ_STR(t->v[0].project_id, "pa");
    CHECK_EQ_STR(t->v[0].root_span_name, "root one");
    CHECK_EQ_STR(t->v[0].status, "error");
    CHECK_EQ_INT(t->v[0].span_count, 2);
    CHECK_EQ_INT(t->v[0].created_ns, 1000);
    CHECK_EQ_INT(t->v[0].input_tokens, 5);
    spans *sp = get_spans_p(&h, "pa", "t1");
    CHECK_EQ_INT(sp->n, 2);
    CHECK_EQ_STR(sp->v[0].attributes, "{\"k\":\"v\"}");
    CHECK_EQ_STR(sp->v[0].trace_state, "ts");
    CHECK_EQ_STR(sp->v[1].status_message, "boom");
    CHECK_EQ_STR(sp->v[1].events, "[{\"name\":\"e\"}]");
    CHECK_EQ_STR(sp->v[1].llm_model, "gpt");
    CHECK_EQ_INT(sp->v[1].kind, 3);
    CHECK_EQ_INT(sp->v[1].output_tokens, 6);
    /* t2 split: pa's summary from pa's span only, pb's trace of its own. */
    t = get_trace_p(&h, NULL, "t2");
    CHECK_EQ_INT(t->n, 2);
    CHECK_EQ_STR(t->v[0].project_id, "pa");
    CHECK_EQ_INT(t->v[0].span_count, 1);
    CHECK_EQ_STR(t->v[0].status, "success");
    CHECK_EQ_INT(t->v[0].completed_ns, 400);
    CHECK_EQ_INT(t->v[0].input_tokens, 0);
    CHECK_EQ_INT(t->v[0].created_ns, 2000);
    CHECK_EQ_STR(t->v[1].project_id, "pb");
    CHECK_EQ_INT(t->v[1].span_count, 1);
    CHECK_EQ_STR(t->v[1].status, "error");
    CHECK_EQ_STR(t->v[1].root_span_id, "x");
    CHECK_EQ_STR(t->v[1].root_span_name, "b root");
    CHECK_EQ_STR(t->v[1].service_name, "svc-b");
    CHECK_EQ_STR(t->v[1].source, "otlp");
    CHECK_EQ_INT(t->v[1].started_ns, 350);
    CHECK_EQ_INT(t->v[1].completed_ns, 500);
    CHECK_EQ_INT(t->v[1].created_ns, 3000);
    CHECK_EQ_INT(t->v[1].input_tokens, 4);
    /* New writes use the new key at once. */
    pc_batch *b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "t1", .span = "r", .project = "pz", .start = T0,
                            .end = T0 + 1});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(get_trace_p(&h, NULL, "t1")->n, 2);
    CHECK_EQ_INT(get_spans_p(&h, "pa", "t1")->n, 2);
    close_store(&h, false);

    /* Once: a second start finds version 4 and changes nothing. */
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM spans"), 5);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM traces"), 4);
    close_store(&h, false);

    /* A file from a newer collector is refused at start, untouched. */
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    char newer[64];
    snprintf(newer, sizeof(newer), "PRAGMA user_version = %d", PC_LOCAL_SCHEMA_VERSION + 1);
    CHECK_EQ_INT(sqlite3_exec(db, newer, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    const char *kv[] = {"directory", sub};
    void *cfg = make_cfg(kv, 1);
    void *ctx = pc_local_exporter_ops.create("local", cfg, NULL);
    CHECK(ctx != NULL);
    CHECK_EQ_INT(pc_local_exporter_ops.start(ctx, NULL), -1);
    pc_local_exporter_ops.destroy(ctx);
    pc_config_free_options(pc_local_exporter_ops.options, cfg);
    free(cfg);
    CHECK_EQ_INT(db_int(path, "PRAGMA user_version"), PC_LOCAL_SCHEMA_VERSION + 1);
    remove_store_dir(dir);
}

/* A version 2 store (the release before the integer trace keys). */
static const char V2_SCHEMA[] =
    "CREATE TABLE spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL,"
    " parent_span_id TEXT NOT NULL, project_id TEXT NOT NULL, name TEXT NOT NULL,"
    " kind INTEGER NOT NULL, span_type TEXT NOT NULL, service_name TEXT NOT NULL,"
    " status TEXT NOT NULL, status_message TEXT NOT NULL, source TEXT NOT NULL,"
    " trace_state TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,"
    " created_ns INTEGER NOT NULL, llm_provider TEXT NOT NULL, llm_model TEXT NOT NULL,"
    " input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, attributes TEXT NOT NULL,"
    " events TEXT NOT NULL, links TEXT NOT NULL, resource TEXT NOT NULL, scope TEXT NOT NULL,"
    " UNIQUE (trace_id, project_id, span_id));"
    "CREATE INDEX spans_trace_type ON spans (trace_id, project_id, span_type);"
    "CREATE TABLE traces (trace_id TEXT NOT NULL, project_id TEXT NOT NULL,"
    " service_name TEXT NOT NULL, root_span_id TEXT NOT NULL, root_span_name TEXT NOT NULL,"
    " has_root INTEGER NOT NULL, status TEXT NOT NULL, source TEXT NOT NULL,"
    " started_ns INTEGER NOT NULL, completed_ns INTEGER NOT NULL, created_ns INTEGER NOT NULL,"
    " span_count INTEGER NOT NULL, input_tokens INTEGER NOT NULL,"
    " output_tokens INTEGER NOT NULL, PRIMARY KEY (trace_id, project_id));"
    "CREATE INDEX traces_started ON traces (started_ns);"
    "CREATE INDEX traces_project ON traces (project_id, started_ns);"
    "CREATE INDEX traces_service ON traces (service_name, started_ns);"
    "CREATE INDEX traces_status ON traces (status, started_ns);"
    "CREATE INDEX traces_created ON traces (created_ns, trace_id, project_id);"
    "INSERT INTO spans VALUES ('v2','r','','pa','root two',2,'agent','svc1','success','',"
    " 'prela','ts',100,200,1000,'','',-1,-1,'{\"q\":\"Caf\\u00e9 \\\"quoted\\\"\"}','[]','[]','{}','{}');"
    "INSERT INTO spans VALUES ('v2','c','r','pa','llm two',3,'llm','svc1','error','boom',"
    " 'prela','',120,150,1000,'openai','gpt',5,6,'{}',"
    " '[{\"name\":\"exception\",\"attributes\":{\"m\":\"Stack Overflow\"}}]','[]','{}','{}');"
    "INSERT INTO traces VALUES ('v2','pa','svc1','r','root two',1,'error','prela',100,200,1000,"
    " 2,5,6);"
    "INSERT INTO spans VALUES ('v2','x','','pb','b root',1,'tool','svc-b','success','',"
    " 'otlp','',350,500,3000,'','',4,-1,'{}','[]','[]','{}','{}');"
    "INSERT INTO traces VALUES ('v2','pb','svc-b','x','b root',1,'success','otlp',350,500,3000,"
    " 1,4,0);"
    "PRAGMA user_version = 2;";

static void test_migration_2_3(void)
{
    char dir[64] = "/tmp/pc_local_XXXXXX", path[160], sub[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(sub, sizeof(sub), "%s/data", dir);
    CHECK_EQ_INT(mkdir(sub, 0750), 0);
    snprintf(sub, sizeof(sub), "%s/data/store", dir);
    CHECK_EQ_INT(mkdir(sub, 0750), 0);
    snprintf(path, sizeof(path), "%s/prela.db", sub);
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, V2_SCHEMA, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    store_h h;
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(db_int(path, "PRAGMA user_version"), PC_LOCAL_SCHEMA_VERSION);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v2'"), 0);
    CHECK_EQ_STR(list(&h, (pc_trace_filter){.model = "gpt"})->v[0].trace_id, "v2");
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM spans"), 3);
    traces *t = get_trace_p(&h, NULL, "v2");
    CHECK_EQ_INT(t->n, 2);
    CHECK_EQ_STR(t->v[0].project_id, "pa");
    CHECK_EQ_STR(t->v[0].status, "error");
    CHECK_EQ_INT(t->v[0].span_count, 2);
    CHECK_EQ_INT(t->v[0].created_ns, 1000);
    CHECK_EQ_INT(t->v[0].output_tokens, 6);
    CHECK_EQ_STR(t->v[1].root_span_name, "b root");
    spans *sp = get_spans_p(&h, "pa", "v2");
    CHECK_EQ_INT(sp->n, 2);
    CHECK_EQ_STR(sp->v[0].trace_state, "ts");
    CHECK_EQ_STR(sp->v[1].status_message, "boom");
    CHECK_EQ_STR(sp->v[1].trace_id, "v2");
    CHECK_EQ_STR(sp->v[1].project_id, "pa");
    /* old rows searchable by decoded values, span types summarized */
    CHECK_EQ_INT(search(&h, NULL, "CAFÉ \"QUOTED\"", 50)->n, 1);
    CHECK_EQ_INT(search(&h, NULL, "stack overflow", 50)->n, 1);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.span_type = "llm"})->n, 1);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.span_type = "tool"})->n, 1);
    CHECK_EQ_STR(list(&h, (pc_trace_filter){.span_type = "tool"})->v[0].project_id, "pb");
    /* and new spans merge into an old trace */
    pc_batch *b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "v2", .span = "n", .parent = "r", .project = "pa",
                            .start = 90, .end = 95, .type = PC_TYPE_TOOL});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    t = get_trace_p(&h, "pa", "v2");
    CHECK_EQ_INT(t->v[0].span_count, 3);
    CHECK_EQ_INT(t->v[0].started_ns, 90);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.span_type = "tool"})->n, 2);
    close_store(&h, false);
    /* a second start migrates nothing */
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM spans"), 4);
    close_store(&h, false);
    remove_store_dir(dir);
}

/*
 * 7 -> 8: trace_bounds filled from the stored traces; then raised by a
 * longer trace, by a stored trace that a later batch extends at either end,
 * never lowered by a shorter one or by duplicates; and a stats read of a
 * window that only the extended trace's late span reaches still sees it
 * (the gather reads traces starting in [lo - longest_ns, hi)).
 */
static void test_migration_7_8(void)
{
    store_h h;
    char dir[64] = "/tmp/pc_local_XXXXXX", path[160];
    CHECK(mkdtemp(dir) != NULL);
    open_store(&h, dir, NULL);
    snprintf(path, sizeof(path), "%s/data/store/prela.db", dir);
    pc_batch *b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "b1", .span = "r", .start = T0, .end = T0 + 5 * NS});
    add_span(b, (span_spec){.trace = "b2", .span = "r", .start = T0, .end = T0 + 2 * NS});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    close_store(&h, false);
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "DROP TABLE trace_bounds; PRAGMA user_version = 7;", NULL, NULL,
                              NULL),
                 SQLITE_OK);
    sqlite3_close(db);

    open_store(&h, dir, NULL);
    CHECK_EQ_INT(db_int(path, "PRAGMA user_version"), PC_LOCAL_SCHEMA_VERSION);
    CHECK_EQ_INT(db_int(path, "SELECT longest_ns FROM trace_bounds"), 5 * NS);
    /* shorter, and a duplicate: unchanged */
    b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "b3", .span = "r", .start = T0, .end = T0 + NS});
    add_span(b, (span_spec){.trace = "b1", .span = "r", .start = T0, .end = T0 + 5 * NS});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(db_int(path, "SELECT longest_ns FROM trace_bounds"), 5 * NS);
    /* b2 extended later (T0 .. T0 + 40 s), then earlier (T0 - 10 s) */
    b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "b2", .span = "late", .parent = "r", .start = T0 + 39 * NS,
                            .end = T0 + 40 * NS, .type = PC_TYPE_LLM})
        ->llm_model = S(b, "late-model");
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(db_int(path, "SELECT longest_ns FROM trace_bounds"), 40 * NS);
    b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "b2", .span = "early", .parent = "r", .start = T0 - 10 * NS,
                            .end = T0 - 9 * NS});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(db_int(path, "SELECT longest_ns FROM trace_bounds"), 50 * NS);
    CHECK_EQ_INT(db_int(path, "SELECT max(completed_ns - started_ns) FROM traces"), 50 * NS);
    /* the late span alone in a window 39 s after its trace began */
    pc_stats_query q = {.group_by = PC_GROUP_MODEL, .start_ns = T0 + 38 * NS,
                        .end_ns = T0 + 41 * NS, .max_rows = 10};
    static stats_rows r;
    r.n = 0;
    CHECK_EQ_INT(h.st->ops->stats(h.st->ctx, &q, collect_stats, &r), 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_STR(r.v[0].group, "late-model");
    CHECK_EQ_INT(r.v[0].r.spans, 1);
    CHECK_EQ_INT(r.v[0].r.traces, 1);
    close_store(&h, false);
    /* a second start migrates nothing */
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(db_int(path, "SELECT longest_ns FROM trace_bounds"), 50 * NS);
    close_store(&h, false);
    remove_store_dir(dir);
}

/* The read connections are bounded (local_store.c POOL_MAX, 8): a read past
 * them waits for one and gives up at its time limit (PC_STORE_TIMEOUT, 503),
 * and gets one as soon as a read ends; a health check does not wait. */
static void test_read_connections_bounded(void)
{
    store_h h;
    const char *kv[] = {"query_timeout", "300ms"};
    open_store_kv(&h, NULL, NULL, kv, 1);
    pc_local_reader *r = h.st->ctx;
    pc_local_query q[9];
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(pc_local_query_open(&q[i], r, "BEGIN", "test"), 0);
    int64_t t0 = pc_time_mono_ns();
    CHECK_EQ_INT(pc_local_query_open(&q[8], r, "BEGIN", "test"), PC_STORE_TIMEOUT);
    int64_t waited = pc_time_mono_ns() - t0;
    CHECK(waited >= 250 * 1000000LL && waited < 3 * NS);
    char msg[128];
    t0 = pc_time_mono_ns(); /* health does not wait behind the reads: they show it works */
    CHECK_EQ_INT(h.st->ops->health(h.st->ctx, msg, (int)sizeof(msg)), 0);
    CHECK(pc_time_mono_ns() - t0 < 100 * 1000000LL);
    CHECK_EQ_INT(pc_local_query_close(&q[0], sqlite3_step(q[0].st)), 0);
    CHECK_EQ_INT(pc_local_query_open(&q[8], r, "BEGIN", "test"), 0);
    for (int i = 1; i < 9; i++)
        CHECK_EQ_INT(pc_local_query_close(&q[i], sqlite3_step(q[i].st)), 0);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.limit = 10})->n, 0); /* connections came back */
    close_store(&h, true);
}

typedef struct gated_read {
    pc_local_reader *r;
    pc_local_query q;
    int rc;
    _Atomic int64_t in_at; /* when it got its connection; 0: not yet */
} gated_read;

static void *read_in(void *arg)
{
    gated_read *g = arg;
    g->rc = pc_local_query_open(&g->q, g->r, "BEGIN", "test");
    g->in_at = pc_time_mono_ns();
    return NULL;
}

/* The read pool as its files' checkpointers' gate (local_checkpoint.h): the
 * reads in flight are its lent connections; a hold makes a new read wait until
 * the hold's end at most (then it goes in, it is not refused), a release lets
 * a waiting read in at once, and holds nest (the last release opens). */
static void test_restart_gate(void)
{
    store_h h;
    const char *kv[] = {"query_timeout", "5s"};
    open_store_kv(&h, NULL, NULL, kv, 1);
    pc_local_reader *r = h.st->ctx;
    pc_local_gate g = pc_local_reader_gate(r);
    pc_local_query q[2];
    CHECK_EQ_INT(g.in_flight(g.ud), 0);
    CHECK_EQ_INT(pc_local_query_open(&q[0], r, "BEGIN", "test"), 0);
    CHECK_EQ_INT(g.in_flight(g.ud), 1);
    int64_t t0 = pc_time_mono_ns();
    CHECK_EQ_INT(g.hold(g.ud, t0 + 300 * 1000000LL), 1);
    CHECK_EQ_INT(pc_local_query_open(&q[1], r, "BEGIN", "test"), 0);
    int64_t waited = pc_time_mono_ns() - t0;
    CHECK(waited >= 250 * 1000000LL && waited < 3 * NS);
    CHECK_EQ_INT(g.in_flight(g.ud), 2);
    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(pc_local_query_close(&q[i], sqlite3_step(q[i].st)), 0);
    CHECK_EQ_INT(g.in_flight(g.ud), 0);
    g.release(g.ud);

    /* two holds of 4 s: one release keeps the read waiting, the second lets it in */
    CHECK_EQ_INT(g.hold(g.ud, pc_time_mono_ns() + 4 * NS), 0);
    CHECK_EQ_INT(g.hold(g.ud, pc_time_mono_ns() + 4 * NS), 0);
    gated_read rd = {.r = r};
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, read_in, &rd), 0);
    usleep(150000);
    g.release(g.ud);
    usleep(150000);
    CHECK_EQ_INT(rd.in_at, 0); /* still held */
    int64_t opened = pc_time_mono_ns();
    g.release(g.ud);
    pthread_join(th, NULL);
    CHECK_EQ_INT(rd.rc, 0);
    CHECK(rd.in_at - opened < NS); /* at once, not at the hold's end */
    CHECK_EQ_INT(pc_local_query_close(&rd.q, sqlite3_step(rd.q.st)), 0);
    CHECK_EQ_INT(list(&h, (pc_trace_filter){.limit = 10})->n, 0); /* reads go in freely */
    close_store(&h, true);
}

int main(void)
{
    RUN(test_options);
    RUN(test_fields);
    RUN(test_dedup);
    RUN(test_summary_out_of_order);
    RUN(test_filters);
    RUN(test_search);
    RUN(test_bounds);
    RUN(test_retention);
    RUN(test_concurrent);
    RUN(test_read_connections_bounded);
    RUN(test_restart_gate);
    RUN(test_backpressure);
    RUN(test_chunks);
    RUN(test_cut_while_writing);
    RUN(test_lifecycle);
    RUN(test_projects);
    RUN(test_migration);
    RUN(test_migration_2_3);
    RUN(test_migration_7_8);
    return CHECK_DONE();
}
