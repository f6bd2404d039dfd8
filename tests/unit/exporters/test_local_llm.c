/*
 * test_local_llm.c - the embedded store's schema 4 (issue 13), driven through
 * the `local` exporter's ops (local_harness.h): every new span field stored
 * and read back (unknowns as "", -1, NAN; odd UTF-8 and quotes kept byte for
 * byte); trace summaries of session, user and cost right when a trace's
 * spans arrive in several batches, out of order, and when batches are
 * delivered twice; the list filters session_id, user_id, model, min_cost and
 * attr_key/attr_value (trigram candidates and the scan past too many
 * candidates, exact key and text form, hostile keys and values) with cursor
 * and offset paging; list_sessions and stats against figures computed by
 * hand (nearest-rank percentiles, an unended span, buckets, groups in byte
 * order, max_rows); retention keeping trace_models consistent; and the
 * migration of a version 3 file (built here with version 3's DDL).
 */
#include "attr_bloom.h"
#include "check.h"
#include "histo.h"
#include "exporters/local_harness.h"
#include "exporters/local_schema.h"
#include "exporters/local_text.h"

#include <math.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* ------------------------------------------------------------- helpers -- */

typedef struct tcopy {
    char trace_id[64], project_id[64], session_id[64], user_id[64];
    int64_t span_count, started_ns;
    double cost_usd;
} tcopy;

typedef struct tlist {
    tcopy v[64];
    int n;
} tlist;

static int collect_t(void *ud, const pc_trace_row *r)
{
    tlist *t = ud;
    if (t->n >= 64) return 1;
    tcopy *c = &t->v[t->n++];
    snprintf(c->trace_id, sizeof(c->trace_id), "%s", r->trace_id);
    snprintf(c->project_id, sizeof(c->project_id), "%s", r->project_id);
    snprintf(c->session_id, sizeof(c->session_id), "%s", r->session_id);
    snprintf(c->user_id, sizeof(c->user_id), "%s", r->user_id);
    c->span_count = r->span_count;
    c->started_ns = r->started_ns;
    c->cost_usd = r->cost_usd;
    return 0;
}

static tlist *lst(store_h *h, pc_trace_filter f)
{
    static tlist t;
    t.n = 0;
    if (!f.limit) f.limit = 100;
    CHECK_EQ_INT(h->st->ops->list_traces(h->st->ctx, &f, collect_t, &t), 0);
    return &t;
}

static tcopy trace1(store_h *h, const char *project, const char *id)
{
    tlist t = {.n = 0};
    CHECK_EQ_INT(h->st->ops->get_trace(h->st->ctx, project, id, collect_t, &t), 0);
    CHECK_EQ_INT(t.n, 1);
    return t.v[0];
}

/* The trace ids of a list, joined by ',' (one string to compare). */
static const char *ids(const tlist *t)
{
    static char out[1024];
    out[0] = '\0';
    for (int i = 0; i < t->n; i++) {
        if (i) strncat(out, ",", sizeof(out) - strlen(out) - 1);
        strncat(out, t->v[i].trace_id, sizeof(out) - strlen(out) - 1);
    }
    return out;
}

/* The traces search answers for |q|. */
static tlist *found(store_h *h, const char *q)
{
    static tlist t;
    t.n = 0;
    CHECK_EQ_INT(h->st->ops->search(h->st->ctx, NULL, q, 50, collect_t, &t), 0);
    return &t;
}

/* Doubles the tests compare are sums of binary fractions: exact. */
#define CHECK_EQ_DBL(a, b) CHECK((a) == (b))
#define CHECK_NAN(a) CHECK(isnan(a))

/* An LLM span of |trace| with the issue 13 fields that matter for summaries. */
static pc_span *llm_span(pc_batch *b, const char *project, const char *trace, const char *span,
                         const char *session, const char *user, const char *model, double cost,
                         int64_t start)
{
    pc_span *s = add_span(b, (span_spec){.trace = trace,
                                         .span = span,
                                         .project = project,
                                         .type = PC_TYPE_LLM,
                                         .status = PC_STATUS_SUCCESS,
                                         .start = start,
                                         .end = start + NS,
                                         .in_tok = 10,
                                         .out_tok = 1});
    s->session_id = S(b, session);
    s->user_id = S(b, user);
    s->llm_model = S(b, model);
    s->cost_usd = cost;
    s->cost_source = isnan(cost) ? PC_COST_NONE : PC_COST_TABLE;
    return s;
}

/* ---------------------------------------------------------- the fields -- */

typedef struct scopy {
    char request_model[64], cost_source[16], session_id[64], user_id[64];
    char input_messages[256], output_messages[256];
    int64_t cache_read, cache_write, reasoning;
    double cost, cost_in, cost_out;
    int n;
} scopy;

static int collect_s(void *ud, const pc_span_row *r)
{
    scopy *c = ud;
    c->n++;
    snprintf(c->request_model, sizeof(c->request_model), "%s", r->llm_request_model);
    snprintf(c->cost_source, sizeof(c->cost_source), "%s", r->cost_source);
    snprintf(c->session_id, sizeof(c->session_id), "%s", r->session_id);
    snprintf(c->user_id, sizeof(c->user_id), "%s", r->user_id);
    snprintf(c->input_messages, sizeof(c->input_messages), "%s", r->input_messages);
    snprintf(c->output_messages, sizeof(c->output_messages), "%s", r->output_messages);
    c->cache_read = r->cache_read_tokens;
    c->cache_write = r->cache_write_tokens;
    c->reasoning = r->reasoning_tokens;
    c->cost = r->cost_usd;
    c->cost_in = r->cost_input_usd;
    c->cost_out = r->cost_output_usd;
    return 0;
}

static scopy span1(store_h *h, const char *project, const char *trace)
{
    scopy c = {.n = 0};
    CHECK_EQ_INT(h->st->ops->get_spans(h->st->ctx, project, trace, 10, 0, collect_s, &c), 0);
    CHECK_EQ_INT(c.n, 1);
    return c;
}

/* Odd but valid UTF-8 without NUL: an emoji, a combining accent, U+FFFF,
 * U+2028 (a JSON line separator), quotes and a backslash. */
#define ODD "\xF0\x9F\x99\x82 e\xCC\x81 \xEF\xBF\xBF \xE2\x80\xA8 '\" \\"

static void test_span_fields(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = new_batch(pc_time_now_ns());
    pc_span *s = llm_span(b, "p", "t-full", "s1", "sess' OR '1'='1", "user \"x\" " ODD,
                          "gpt-4o-2024-08-06", 0.75, T0);
    s->llm_request_model = S(b, "gpt-4o");
    s->cache_read_tokens = 3;
    s->cache_write_tokens = 0;
    s->reasoning_tokens = INT64_MAX;
    s->cost_input_usd = 0.5;
    s->cost_output_usd = 0.25;
    s->cost_source = PC_COST_SENT;
    s->input_messages =
        S(b, "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"" ODD "\"}]}]");
    s->output_messages = S(b, "[{\"role\":\"assistant\",\"parts\":[],\"finish_reason\":\"stop\"}]");
    /* every unknown: the span.h defaults of pc_batch_add */
    add_span(b, (span_spec){.trace = "t-bare", .span = "s1", .project = "p", .start = T0});
    CHECK_EQ_INT(consume(&h, b), PC_OK);

    scopy c = span1(&h, "p", "t-full");
    CHECK_EQ_STR(c.request_model, "gpt-4o");
    CHECK_EQ_INT(c.cache_read, 3);
    CHECK_EQ_INT(c.cache_write, 0);
    CHECK_EQ_INT(c.reasoning, INT64_MAX);
    CHECK_EQ_DBL(c.cost, 0.75);
    CHECK_EQ_DBL(c.cost_in, 0.5);
    CHECK_EQ_DBL(c.cost_out, 0.25);
    CHECK_EQ_STR(c.cost_source, "sent");
    CHECK_EQ_STR(c.session_id, "sess' OR '1'='1");
    CHECK_EQ_STR(c.user_id, "user \"x\" " ODD);
    CHECK_EQ_STR(c.input_messages,
                 "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"" ODD "\"}]}]");
    CHECK_EQ_STR(c.output_messages,
                 "[{\"role\":\"assistant\",\"parts\":[],\"finish_reason\":\"stop\"}]");
    tcopy t = trace1(&h, "p", "t-full");
    CHECK_EQ_STR(t.session_id, "sess' OR '1'='1");
    CHECK_EQ_STR(t.user_id, "user \"x\" " ODD);
    CHECK_EQ_DBL(t.cost_usd, 0.75);

    c = span1(&h, "p", "t-bare");
    CHECK_EQ_STR(c.request_model, "");
    CHECK_EQ_INT(c.cache_read, -1);
    CHECK_EQ_INT(c.cache_write, -1);
    CHECK_EQ_INT(c.reasoning, -1);
    CHECK_NAN(c.cost);
    CHECK_NAN(c.cost_in);
    CHECK_NAN(c.cost_out);
    CHECK_EQ_STR(c.cost_source, "");
    CHECK_EQ_STR(c.session_id, "");
    CHECK_EQ_STR(c.input_messages, "");
    CHECK_EQ_STR(c.output_messages, "");
    t = trace1(&h, "p", "t-bare");
    CHECK_EQ_STR(t.session_id, "");
    CHECK_EQ_STR(t.user_id, "");
    CHECK_NAN(t.cost_usd);

    /* Messages are searched decoded: a quoted phrase of a prompt that came as
     * JSON text (its quotes escaped there) is found as typed. */
    b = new_batch(pc_time_now_ns());
    s = llm_span(b, "p", "t-msg", "s1", "", "", "m", NAN, T0);
    s->input_messages = S(b, "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\","
                             "\"content\":\"Answer with the \\\"city\\\" name, \u00c9T\u00c9\"}]}]");
    s->output_messages = S(b, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\","
                              "\"content\":\"Paris-Orly\"}]}]");
    pc_kv kv[] = {kv_str(b, "gen_ai.input.messages", "with the \\\"town\\\" name")};
    pc_kv *a = pc_arena_calloc(b->arena, sizeof(kv));
    memcpy(a, kv, sizeof(kv));
    s->attrs = (pc_attrs){a, 1};
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_STR(ids(found(&h, "with the \"city\" name")), "t-msg");
    CHECK_EQ_STR(ids(found(&h, "\u00e9t\u00e9")), "t-msg"); /* ÉTÉ, folded */
    CHECK_EQ_STR(ids(found(&h, "paris-orly")), "t-msg");
    CHECK_EQ_STR(ids(found(&h, "with the \"town\" name")), ""); /* JSON text: escaped */
    close_store(&h, true);
}

/* ----------------------------------------------------- trace summaries -- */

static void test_summary_split_and_redelivered(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    int64_t now = pc_time_now_ns();
    /* batch 1: a span with session "s-b", user "" and a cost */
    pc_batch *b1 = new_batch(now);
    llm_span(b1, "p", "t", "a", "s-b", "", "m1", 0.5, T0 + 2 * NS);
    pc_batch_ref(b1); /* delivered again below */
    CHECK_EQ_INT(consume(&h, b1), PC_OK);
    tcopy t = trace1(&h, "p", "t");
    CHECK_EQ_STR(t.session_id, "s-b");
    CHECK_EQ_STR(t.user_id, "");
    CHECK_EQ_DBL(t.cost_usd, 0.5);

    /* batch 2: no session, user "u-z", no cost: the session stays, the user arrives */
    pc_batch *b2 = new_batch(now + 1);
    llm_span(b2, "p", "t", "b", "", "u-z", "m2", NAN, T0 + NS);
    CHECK_EQ_INT(consume(&h, b2), PC_OK);
    t = trace1(&h, "p", "t");
    CHECK_EQ_STR(t.session_id, "s-b");
    CHECK_EQ_STR(t.user_id, "u-z");
    CHECK_EQ_DBL(t.cost_usd, 0.5);

    /* batch 3: a smaller session and user, a second cost, twice in the batch */
    pc_batch *b3 = new_batch(now + 2);
    llm_span(b3, "p", "t", "c", "s-a", "u-a", "m1", 0.25, T0);
    llm_span(b3, "p", "t", "c", "s-0", "u-0", "m9", 8.0, T0); /* duplicate: first wins */
    pc_batch_ref(b3);
    CHECK_EQ_INT(consume(&h, b3), PC_OK);
    t = trace1(&h, "p", "t");
    CHECK_EQ_STR(t.session_id, "s-a");
    CHECK_EQ_STR(t.user_id, "u-a");
    CHECK_EQ_DBL(t.cost_usd, 0.75);
    CHECK_EQ_INT(t.span_count, 3);

    /* redelivery of batches 1 and 3: nothing changes */
    CHECK_EQ_INT(consume(&h, b1), PC_OK);
    CHECK_EQ_INT(consume(&h, b3), PC_OK);
    t = trace1(&h, "p", "t");
    CHECK_EQ_STR(t.session_id, "s-a");
    CHECK_EQ_STR(t.user_id, "u-a");
    CHECK_EQ_DBL(t.cost_usd, 0.75);
    CHECK_EQ_INT(t.span_count, 3);
    /* the duplicate's model was never stored */
    CHECK_EQ_INT(lst(&h, (pc_trace_filter){.model = "m9"})->n, 0);
    CHECK_EQ_INT(lst(&h, (pc_trace_filter){.model = "m2"})->n, 1);

    /* Bytewise order: "S" (0x53) < "a" < "\xC3\xA9" (é); a new trace whose
     * first batch holds duplicates (the fresh row corrected by SET_TRACE). */
    pc_batch *b4 = new_batch(now + 3);
    llm_span(b4, "p", "t2", "x", "\xC3\xA9t\xC3\xA9", "", "", 0.125, T0);
    llm_span(b4, "p", "t2", "y", "a", "", "", NAN, T0);
    llm_span(b4, "p", "t2", "x", "S", "", "", 1.0, T0); /* duplicate of x */
    CHECK_EQ_INT(consume(&h, b4), PC_OK);
    t = trace1(&h, "p", "t2");
    CHECK_EQ_STR(t.session_id, "a");
    CHECK_EQ_DBL(t.cost_usd, 0.125);
    CHECK_EQ_INT(t.span_count, 2);
    pc_batch *b5 = new_batch(now + 4);
    llm_span(b5, "p", "t2", "z", "S", "", "", NAN, T0);
    CHECK_EQ_INT(consume(&h, b5), PC_OK);
    CHECK_EQ_STR(trace1(&h, "p", "t2").session_id, "S");
    close_store(&h, true);
}

/* ------------------------------------------------------------- filters -- */

static pc_kv kv_int(pc_batch *b, const char *k, int64_t i)
{
    return (pc_kv){S(b, k), {.type = PC_V_INT, .i = i}};
}

static void set_attrs(pc_batch *b, pc_span *s, pc_kv *kv, size_t n)
{
    pc_kv *a = pc_arena_calloc(b->arena, n * sizeof(pc_kv));
    memcpy(a, kv, n * sizeof(pc_kv));
    s->attrs = (pc_attrs){a, n};
}

static void test_filters(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = new_batch(pc_time_now_ns());
    pc_span *s = llm_span(b, "p", "f1", "a", "sess-1", "alice", "gpt-4o", 0.5, T0 + 1 * NS);
    s->llm_request_model = S(b, "gpt-4o-req");
    pc_kv nested_v[1];
    nested_v[0] = kv_str(b, "tier", "gold");
    pc_kv kv1[] = {kv_str(b, "tier", "gold"),
                   kv_int(b, "n", 42),
                   {S(b, "ok"), {.type = PC_V_BOOL, .b = true}},
                   {S(b, "r"), {.type = PC_V_DOUBLE, .d = 0.5}},
                   kv_str(b, "k'q\"\\", "O'Reilly \"x\" " ODD),
                   {S(b, "none"), {.type = PC_V_NULL}}};
    set_attrs(b, s, kv1, 6);
    /* a second span of f1 without the attributes: one span matching is enough */
    llm_span(b, "p", "f1", "b", "", "", "", NAN, T0 + 1 * NS + 1);
    s = llm_span(b, "p", "f2", "a", "sess-1", "bob", "claude", 0.05, T0 + 2 * NS);
    pc_kv kv2[] = {kv_str(b, "tier", "golden"), kv_int(b, "n", 420)};
    set_attrs(b, s, kv2, 2);
    s = llm_span(b, "p", "f3", "a", "", "", "", NAN, T0 + 3 * NS);
    pc_kv kv3[] = {kv_str(b, "tier", "gold-ish"),
                   {S(b, "nested"), {.type = PC_V_MAP, .map = {nested_v, 1}}},
                   kv_str(b, "Tier", "gold")};
    set_attrs(b, s, kv3, 3);
    s = llm_span(b, "q", "f4", "a", "sess-1", "", "gpt-4o", NAN, T0 + 4 * NS);
    pc_kv kv4[] = {kv_str(b, "tier", "gold")};
    set_attrs(b, s, kv4, 1);
    CHECK_EQ_INT(consume(&h, b), PC_OK);

    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.session_id = "sess-1"})), "f4,f2,f1");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.session_id = "sess-1", .project_id = "p"})),
                 "f2,f1");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.session_id = ""})), "f3"); /* no session */
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.user_id = "alice"})), "f1");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.user_id = "alice' OR '1'='1"})), "");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.model = "gpt-4o"})), "f4,f1");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.model = "gpt-4o-req"})), "f1");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.model = "claude", .user_id = "bob"})), "f2");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.model = "gpt"})), ""); /* exact, not prefix */
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.min_cost = 0.1})), "f1");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.min_cost = 0.05})), "f2,f1");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.min_cost = 1e300})), "");

    /* attributes: exact key, exact text form, top level only */
#define ATTR(k, v) ids(lst(&h, (pc_trace_filter){.attr_key = (k), .attr_value = (v)}))
    CHECK_EQ_STR(ATTR("tier", "gold"), "f4,f1"); /* indexed: 3+ characters */
    CHECK_EQ_STR(ATTR("tier", "GOLD"), "");      /* exact, not case-folded */
    CHECK_EQ_STR(ATTR("tier", "gol"), "");       /* whole value, not a substring */
    CHECK_EQ_STR(ATTR("Tier", "gold"), "f3");
    CHECK_EQ_STR(ATTR("nested", "gold"), "");
    CHECK_EQ_STR(ATTR("n", "42"), "f1"); /* 2 characters: the scan */
    CHECK_EQ_STR(ATTR("n", "4"), "");
    CHECK_EQ_STR(ATTR("n", "420"), "f2");
    CHECK_EQ_STR(ATTR("ok", "true"), "f1");
    CHECK_EQ_STR(ATTR("ok", "1"), "");
    CHECK_EQ_STR(ATTR("r", "0.5"), "f1");
    CHECK_EQ_STR(ATTR("none", "null"), "");
    CHECK_EQ_STR(ATTR("k'q\"\\", "O'Reilly \"x\" " ODD), "f1");
    CHECK_EQ_STR(ATTR("tier' OR '1'='1", "gold"), "");
    CHECK_EQ_STR(ATTR("tier", "gold\" OR \"1\"=\"1"), "");
    /* combined, and paged with the cursor and the offset */
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.attr_key = "tier",
                                               .attr_value = "gold",
                                               .project_id = "p",
                                               .session_id = "sess-1",
                                               .model = "gpt-4o"})),
                 "f1");
    tlist *page = lst(&h, (pc_trace_filter){.attr_key = "tier", .attr_value = "gold", .limit = 1});
    CHECK_EQ_STR(ids(page), "f4");
    pc_trace_key after = {page->v[0].started_ns, "f4", "q"};
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.attr_key = "tier",
                                               .attr_value = "gold",
                                               .after = &after,
                                               .limit = 1})),
                 "f1");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.attr_key = "tier",
                                               .attr_value = "gold",
                                               .offset = 1,
                                               .limit = 5})),
                 "f1");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.session_id = "sess-1", .offset = 1})), "f2,f1");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.session_id = "sess-1", .after = &after})),
                 "f2,f1");
    close_store(&h, true);
}

/* A value common to more traces than the index's candidate cap: the list
 * walks traces newest first and verifies each (still exact). */
static void test_attr_common_value(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = new_batch(pc_time_now_ns());
    for (int i = 0; i < 5000; i++) {
        char tid[32];
        snprintf(tid, sizeof(tid), "c-%04d", i);
        pc_span *s = add_span(b, (span_spec){.trace = tid, .span = "a", .start = T0 + i * NS});
        pc_kv kv[] = {kv_str(b, "env", i % 2 ? "production" : "production-eu")};
        set_attrs(b, s, kv, 1);
    }
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    tlist *t = lst(&h, (pc_trace_filter){.attr_key = "env", .attr_value = "production",
                                         .limit = 3});
    CHECK_EQ_STR(ids(t), "c-4999,c-4997,c-4995");
    t = lst(&h, (pc_trace_filter){.attr_key = "env", .attr_value = "production-eu", .limit = 2,
                                  .offset = 1});
    CHECK_EQ_STR(ids(t), "c-4996,c-4994");

    /* schema 9: every trace row has its attribute filter (attr_bloom.h), and
     * the list believes it: an emptied filter hides a matching trace, a NULL
     * one (a row from before 9) does not */
    char path[160];
    snprintf(path, sizeof(path), "%s/data/store/prela.db", h.dir);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM traces WHERE length(attr_bloom) = "
                              STR(PC_ATTR_BLOOM_BYTES)), 5000);
    db_exec(path, "UPDATE traces SET attr_bloom = zeroblob(" STR(PC_ATTR_BLOOM_BYTES) ")"
                  " WHERE trace_id = 'c-4999'");
    db_exec(path, "UPDATE traces SET attr_bloom = NULL WHERE trace_id = 'c-4997'");
    t = lst(&h, (pc_trace_filter){.attr_key = "env", .attr_value = "production", .limit = 3});
    CHECK_EQ_STR(ids(t), "c-4997,c-4995,c-4993");
    /* a later span's pairs are ORed in; the old ones stay; NULL stays NULL */
    b = new_batch(pc_time_now_ns());
    pc_span *s =
        add_span(b, (span_spec){.trace = "c-4995", .span = "b", .start = T0 + 4995 * NS + 1});
    pc_kv kv[] = {kv_str(b, "region", "eu-west-1")};
    set_attrs(b, s, kv, 1);
    s = add_span(b, (span_spec){.trace = "c-4997", .span = "b", .start = T0 + 4997 * NS + 1});
    pc_kv kv2[] = {kv_str(b, "region", "eu-west-1")};
    set_attrs(b, s, kv2, 1);
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    t = lst(&h, (pc_trace_filter){.attr_key = "region", .attr_value = "eu-west-1", .limit = 3});
    CHECK_EQ_STR(ids(t), "c-4997,c-4995");
    t = lst(&h, (pc_trace_filter){.attr_key = "env", .attr_value = "production", .limit = 2});
    CHECK_EQ_STR(ids(t), "c-4997,c-4995");
    CHECK_EQ_INT(db_int(path, "SELECT attr_bloom IS NULL FROM traces WHERE trace_id = 'c-4997'"),
                 1);
    close_store(&h, true);
}

/* ------------------------------------------------------------ sessions -- */

typedef struct sesscopy {
    char session_id[64], project_id[64], user_id[64];
    int64_t traces, spans, errors, in, out, first, last;
    double cost;
} sesscopy;

typedef struct slist {
    sesscopy v[16];
    int n;
} slist;

static int collect_sess(void *ud, const pc_session_row *r)
{
    slist *l = ud;
    if (l->n >= 16) return 1;
    sesscopy *c = &l->v[l->n++];
    snprintf(c->session_id, sizeof(c->session_id), "%s", r->session_id);
    snprintf(c->project_id, sizeof(c->project_id), "%s", r->project_id);
    snprintf(c->user_id, sizeof(c->user_id), "%s", r->user_id);
    c->traces = r->trace_count;
    c->spans = r->span_count;
    c->errors = r->error_count;
    c->in = r->input_tokens;
    c->out = r->output_tokens;
    c->first = r->first_seen_ns;
    c->last = r->last_seen_ns;
    c->cost = r->cost_usd;
    return 0;
}

static slist *sessions(store_h *h, pc_session_filter f)
{
    static slist l;
    l.n = 0;
    if (!f.limit) f.limit = 100;
    CHECK_EQ_INT(h->st->ops->list_sessions(h->st->ctx, &f, collect_sess, &l), 0);
    return &l;
}

/* "session/project" of each row, joined by ','. */
static const char *keys(const slist *l)
{
    static char out[512];
    out[0] = '\0';
    for (int i = 0; i < l->n; i++) {
        char k[160];
        snprintf(k, sizeof(k), "%s%s/%s", i ? "," : "", l->v[i].session_id, l->v[i].project_id);
        strncat(out, k, sizeof(out) - strlen(out) - 1);
    }
    return out;
}

/* One-span trace of a session (the span's start and end are the trace's). */
static void sess_trace(pc_batch *b, const char *project, const char *trace, const char *session,
                       const char *user, int64_t start, int64_t end, bool error, int64_t in,
                       int64_t out, double cost)
{
    pc_span *s = llm_span(b, project, trace, "r", session, user, "m", cost, start);
    s->end_ns = end;
    s->status = error ? PC_STATUS_ERROR : PC_STATUS_SUCCESS;
    s->input_tokens = in;
    s->output_tokens = out;
}

static void test_sessions(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = new_batch(pc_time_now_ns());
    sess_trace(b, "ps", "s1", "chat-1", "u-b", T0, T0 + 5 * NS, true, 10, 2, 0.125);
    sess_trace(b, "ps", "s2", "chat-1", "u-a", T0 + 100 * NS, T0 + 110 * NS, false, 5, 1, NAN);
    sess_trace(b, "ps", "s3", "chat-2", "u-b", T0 + 50 * NS, T0 + 200 * NS, false, 1, 1, 0.25);
    sess_trace(b, "ps", "s4", "", "u-a", T0, T0 + 500 * NS, false, 1, 1, 1.0);
    sess_trace(b, "pt", "s5", "chat-1", "", T0 + 10 * NS, T0 + 20 * NS, false, -1, -1, NAN);
    /* a second span of s1, so span_count differs from trace_count */
    llm_span(b, "ps", "s1", "k", "", "", "m", 0.125, T0 + NS);
    CHECK_EQ_INT(consume(&h, b), PC_OK);

    slist *l = sessions(&h, (pc_session_filter){0});
    CHECK_EQ_STR(keys(l), "chat-2/ps,chat-1/ps,chat-1/pt"); /* last seen, newest first */
    sesscopy *c = &l->v[1];
    CHECK_EQ_INT(c->traces, 2);
    CHECK_EQ_INT(c->spans, 3);
    CHECK_EQ_INT(c->errors, 1);
    CHECK_EQ_INT(c->in, 25); /* 10 + 10 (the second span) + 5 */
    CHECK_EQ_INT(c->out, 4);
    CHECK_EQ_DBL(c->cost, 0.25);
    CHECK_EQ_INT(c->first, T0);
    CHECK_EQ_INT(c->last, T0 + 110 * NS);
    CHECK_EQ_STR(c->user_id, "u-a"); /* the smallest of u-b, u-a */
    c = &l->v[0];
    CHECK_EQ_INT(c->traces, 1);
    CHECK_EQ_DBL(c->cost, 0.25);
    CHECK_EQ_STR(c->user_id, "u-b");
    c = &l->v[2];
    CHECK_NAN(c->cost);
    CHECK_EQ_STR(c->user_id, "");
    CHECK_EQ_INT(c->in, 0);

    /* sessions having a trace of the user: all their traces still count */
    l = sessions(&h, (pc_session_filter){.user_id = "u-b"});
    CHECK_EQ_STR(keys(l), "chat-2/ps,chat-1/ps");
    CHECK_EQ_INT(l->v[1].traces, 2);
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.user_id = "u-a"})), "chat-1/ps");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.session_id = "chat-1"})),
                 "chat-1/ps,chat-1/pt");
    CHECK_EQ_STR(
        keys(sessions(&h, (pc_session_filter){.session_id = "chat-1", .project_id = "pt"})),
        "chat-1/pt");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.start_ns = T0 + 150 * NS})),
                 "chat-2/ps");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.end_ns = T0 + 5 * NS})), "chat-1/ps");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.limit = 1, .offset = 1})), "chat-1/ps");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.session_id = "x' OR '1'='1"})), "");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.user_id = "x' OR '1'='1"})), "");
    close_store(&h, true);
}

/* Sessions ending at the same instant come in session id, then project id
 * order, descending, through every page; a session's later traces do not
 * list it twice. */
static void test_sessions_ties(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = new_batch(pc_time_now_ns());
    sess_trace(b, "ps", "a1", "tie-a", "", T0, T0 + 9 * NS, false, 1, 1, NAN);
    sess_trace(b, "ps", "b1", "tie-b", "", T0, T0 + 9 * NS, false, 1, 1, NAN);
    sess_trace(b, "pt", "b2", "tie-b", "", T0, T0 + 9 * NS, false, 1, 1, NAN);
    for (int i = 0; i < 5; i++) { /* older traces of the same sessions */
        char tid[16];
        snprintf(tid, sizeof(tid), "old-%d", i);
        sess_trace(b, i % 2 ? "ps" : "pt", tid, "tie-b", "u-old", T0 - (i + 1) * NS,
                   T0 + i * NS, false, 1, 1, NAN);
    }
    sess_trace(b, "ps", "n1", "newest", "", T0 + 20 * NS, T0 + 30 * NS, false, 1, 1, NAN);
    sess_trace(b, "ps", "z1", "oldest", "", T0 - 100 * NS, T0 - 90 * NS, false, 1, 1, NAN);
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){0})),
                 "newest/ps,tie-b/pt,tie-b/ps,tie-a/ps,oldest/ps");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.limit = 2, .offset = 2})),
                 "tie-b/ps,tie-a/ps");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.limit = 1, .offset = 4})), "oldest/ps");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.offset = 5})), "");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.user_id = "u-old"})),
                 "tie-b/pt,tie-b/ps");
    slist *l = sessions(&h, (pc_session_filter){.project_id = "pt"});
    CHECK_EQ_STR(keys(l), "tie-b/pt");
    CHECK_EQ_INT(l->v[0].traces, 4); /* b2, old-0, old-2, old-4 */
    CHECK_EQ_INT(l->v[0].first, T0 - 5 * NS);
    CHECK_EQ_STR(l->v[0].user_id, "u-old");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){.start_ns = T0 + 9 * NS,
                                                       .end_ns = T0 - 3 * NS})),
                 "tie-b/pt,tie-b/ps");
    close_store(&h, true);
}

/* --------------------------------------------------------------- stats -- */

static stats_rows *stats(store_h *h, pc_stats_query q)
{
    static stats_rows l;
    l.n = 0;
    if (!q.max_rows) q.max_rows = 100;
    CHECK_EQ_INT(h->st->ops->stats(h->st->ctx, &q, collect_stats, &l), 0);
    return &l;
}

/* A span for stats: |dur| 0 = not ended. */
static pc_span *st_span(pc_batch *b, const char *project, const char *trace, const char *span,
                        pc_span_type type, const char *model, int64_t start, int64_t dur,
                        int64_t in, int64_t out, double cost, bool error)
{
    pc_span *s = add_span(b, (span_spec){.trace = trace,
                                         .span = span,
                                         .project = project,
                                         .type = type,
                                         .status = error ? PC_STATUS_ERROR : PC_STATUS_SUCCESS,
                                         .start = start,
                                         .end = dur ? start + dur : 0,
                                         .in_tok = in,
                                         .out_tok = out});
    s->llm_model = S(b, model);
    s->cost_usd = cost;
    return s;
}

#define H (3600 * NS)

static pc_batch *stats_batch(void)
{
    pc_batch *b = new_batch(pc_time_now_ns());
    st_span(b, "p", "A", "a1", PC_TYPE_LLM, "gpt-4o", T0 + 10 * NS, NS, 100, 10, 0.5, false);
    st_span(b, "p", "A", "a2", PC_TYPE_LLM, "gpt-4o", T0 + 20 * NS, 3 * NS, 50, 5, NAN, true);
    st_span(b, "p", "A", "a3", PC_TYPE_TOOL, "", T0 + 30 * NS, 0, -1, -1, NAN, false);
    st_span(b, "p", "B", "b1", PC_TYPE_LLM, "gpt-4o", T0 + H + 5 * NS, 2 * NS, 10, 1, 0.25,
            false);
    st_span(b, "p", "B", "b2", PC_TYPE_EMBEDDING, "emb-1", T0 + 40 * NS, 4 * NS, 7, -1, 0.125,
            false);
    st_span(b, "p", "B", "b3", PC_TYPE_LLM, "gpt-4o", T0 - 10 * NS, NS, 1000, 1000, 9.0, false);
    st_span(b, "p", "B", "b4", PC_TYPE_LLM, "gpt-4o", T0 + 2 * H, NS, 1000, 1000, 9.0, false);
    st_span(b, "o", "O", "o1", PC_TYPE_LLM, "Zeta", T0 + 50 * NS, 5 * NS, 1, 1, NAN, false);
    return b;
}

static void test_stats(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = stats_batch();
    pc_batch_ref(b);
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(consume(&h, b), PC_OK); /* delivered twice: counted once */

    stats_rows *l = stats(&h, (pc_stats_query){.project_id = "p",
                                               .group_by = PC_GROUP_MODEL,
                                               .start_ns = T0,
                                               .end_ns = T0 + 2 * H,
                                               .interval_ns = H});
    CHECK_EQ_INT(l->n, 4);
    stats_row *c = &l->v[0]; /* the tool span: no model, not ended */
    CHECK_EQ_INT(c->r.bucket_ns, T0);
    CHECK_EQ_STR(c->group, "");
    CHECK_EQ_INT(c->r.spans, 1);
    CHECK_EQ_INT(c->r.traces, 1);
    CHECK_EQ_INT(c->r.input_tokens, 0);
    CHECK_NAN(c->r.cost_usd);
    CHECK_EQ_INT(c->r.unpriced, 0);
    CHECK_EQ_INT(c->r.latency_p50_ns, -1);
    CHECK_EQ_INT(c->r.latency_p99_ns, -1);
    c = &l->v[1];
    CHECK_EQ_STR(c->group, "emb-1");
    CHECK_EQ_INT(c->r.input_tokens, 7);
    CHECK_EQ_INT(c->r.output_tokens, 0);
    CHECK_EQ_DBL(c->r.cost_usd, 0.125);
    CHECK_EQ_INT(c->r.latency_p50_ns, pc_histo_round(4 * NS));
    c = &l->v[2];
    CHECK_EQ_INT(c->r.bucket_ns, T0);
    CHECK_EQ_STR(c->group, "gpt-4o");
    CHECK_EQ_INT(c->r.spans, 2);
    CHECK_EQ_INT(c->r.traces, 1);
    CHECK_EQ_INT(c->r.errors, 1);
    CHECK_EQ_INT(c->r.input_tokens, 150);
    CHECK_EQ_INT(c->r.output_tokens, 15);
    CHECK_EQ_DBL(c->r.cost_usd, 0.5);
    CHECK_EQ_INT(c->r.unpriced, 1);
    CHECK_EQ_INT(c->r.latency_p50_ns, pc_histo_round(NS));     /* rank ceil(0.5 * 2) = 1 */
    CHECK_EQ_INT(c->r.latency_p95_ns, pc_histo_round(3 * NS)); /* rank ceil(1.9) = 2 */
    CHECK_EQ_INT(c->r.latency_p99_ns, pc_histo_round(3 * NS));
    c = &l->v[3];
    CHECK_EQ_INT(c->r.bucket_ns, T0 + H);
    CHECK_EQ_STR(c->group, "gpt-4o");
    CHECK_EQ_INT(c->r.spans, 1);
    CHECK_EQ_INT(c->r.traces, 0); /* B's first gpt-4o span, b3, is before the window */
    CHECK_EQ_DBL(c->r.cost_usd, 0.25);
    CHECK_EQ_INT(c->r.latency_p95_ns, pc_histo_round(2 * NS));

    /* one bucket (at the query's start), one group, every project */
    l = stats(&h, (pc_stats_query){.start_ns = T0, .end_ns = T0 + 2 * H});
    CHECK_EQ_INT(l->n, 1);
    c = &l->v[0];
    CHECK_EQ_INT(c->r.bucket_ns, T0);
    CHECK_EQ_STR(c->group, "");
    CHECK_EQ_INT(c->r.spans, 6);
    CHECK_EQ_INT(c->r.traces, 2); /* B began before the window (b3) */
    CHECK_EQ_INT(c->r.errors, 1);
    CHECK_EQ_INT(c->r.input_tokens, 168);
    CHECK_EQ_INT(c->r.output_tokens, 17);
    CHECK_EQ_DBL(c->r.cost_usd, 0.875);
    CHECK_EQ_INT(c->r.unpriced, 2);
    CHECK_EQ_INT(c->r.latency_p50_ns, pc_histo_round(3 * NS)); /* durations 1 2 3 4 5 s: rank 3 */
    CHECK_EQ_INT(c->r.latency_p95_ns, pc_histo_round(5 * NS));

    /* groups in byte order ("Zeta" before "emb-1"), cut at max_rows */
    l = stats(&h, (pc_stats_query){.group_by = PC_GROUP_MODEL, .start_ns = T0,
                                   .end_ns = T0 + H, .max_rows = 2});
    CHECK_EQ_INT(l->n, 2);
    CHECK_EQ_STR(l->v[0].group, "");
    CHECK_EQ_STR(l->v[1].group, "Zeta");
    l = stats(&h, (pc_stats_query){.group_by = PC_GROUP_PROJECT, .start_ns = T0,
                                   .end_ns = T0 + 2 * H});
    CHECK_EQ_INT(l->n, 2);
    CHECK_EQ_STR(l->v[0].group, "o");
    CHECK_EQ_STR(l->v[1].group, "p");
    CHECK_EQ_INT(l->v[1].r.spans, 5);
    l = stats(&h, (pc_stats_query){.group_by = PC_GROUP_SPAN_TYPE, .start_ns = T0,
                                   .end_ns = T0 + 2 * H, .project_id = "p"});
    CHECK_EQ_INT(l->n, 3);
    CHECK_EQ_STR(l->v[0].group, "embedding");
    CHECK_EQ_STR(l->v[1].group, "llm");
    CHECK_EQ_STR(l->v[2].group, "tool");
    CHECK_EQ_INT(l->v[1].r.spans, 3);
    CHECK_EQ_INT(stats(&h, (pc_stats_query){.project_id = "x' OR '1'='1", .start_ns = T0,
                                            .end_ns = T0 + 2 * H})->n, 0);
    close_store(&h, true);

    /* Nearest rank, not interpolation: 20 durations 1..20 ms (in shuffled
     * order) give p50 10 ms (rank 10), p95 19 ms (rank 19), p99 20 ms (rank 20). */
    open_store(&h, NULL, NULL);
    b = new_batch(pc_time_now_ns());
    for (int i = 0; i < 20; i++) {
        char sid[16];
        snprintf(sid, sizeof(sid), "s%02d", i);
        int ms = (i * 7) % 20 + 1;
        st_span(b, "p", "P", sid, PC_TYPE_LLM, "m", T0 + i * NS, ms * 1000000LL, 1, 1, 0.5,
                false);
    }
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    l = stats(&h, (pc_stats_query){.group_by = PC_GROUP_USER, .start_ns = T0,
                                   .end_ns = T0 + H, .interval_ns = 60 * NS});
    CHECK_EQ_INT(l->n, 1);
    CHECK_EQ_INT(l->v[0].r.spans, 20);
    CHECK_EQ_INT(l->v[0].r.latency_p50_ns, pc_histo_round(10000000));
    CHECK_EQ_INT(l->v[0].r.latency_p95_ns, pc_histo_round(19000000));
    CHECK_EQ_INT(l->v[0].r.latency_p99_ns, pc_histo_round(20000000));
    CHECK_EQ_DBL(l->v[0].r.cost_usd, 10.0);
    close_store(&h, true);
}

/* ----------------------------------------------------------- retention -- */

static void test_retention(void)
{
    store_h h;
    open_store(&h, NULL, "1d");
    int64_t now = pc_time_now_ns();
    pc_batch *b = new_batch(now - 2 * 86400 * NS);
    pc_span *s = llm_span(b, "p", "old", "a", "sess-old", "u", "gpt-4o", 0.5, T0);
    s->llm_request_model = S(b, "req-old");
    s->input_messages = S(b, "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\","
                             "\"content\":\"xylophone\"}]}]");
    llm_span(b, "p", "old", "b", "", "", "other-old", NAN, T0);
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    b = new_batch(now);
    s = llm_span(b, "p", "new", "a", "sess-new", "u", "gpt-4o", 0.5, T0);
    s->output_messages = S(b, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\","
                              "\"content\":\"marimba\"}]}]");
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    char path[256];
    snprintf(path, sizeof(path), "%s/data/store/prela.db", h.dir);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM trace_models"), 4);
    CHECK_EQ_STR(ids(found(&h, "xylophone")), "old");
    pc_local_search_flush(h.ctx);
    CHECK_EQ_INT(fts_hits(path, "\"xyl\" OR \"yop\""), 1);
    CHECK_EQ_INT(pc_local_purge(h.ctx, now), 1);
    /* the trigrams of its messages left the index with it (the 'delete'
     * recomputed the same text), the new trace's stayed */
    pc_local_search_flush(h.ctx);
    CHECK_EQ_INT(fts_hits(path, "\"xyl\" OR \"yop\""), 0);
    CHECK_EQ_INT(fts_hits(path, "\"mar\" OR \"rim\""), 1);
    CHECK_EQ_STR(ids(found(&h, "MARIMBA")), "new");
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM trace_models"), 1);
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.model = "gpt-4o"})), "new");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.model = "req-old"})), "");
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){0})), "sess-new/p");
    close_store(&h, true);
}

/* ----------------------------------------------------------- migration -- */

/* A version 3 store: version 3's DDL (the release before issue 13) and rows
 * as its writer left them (the search index written through the tokenizer). */
static const char V3_SCHEMA[] =
    "CREATE TABLE traces (tid INTEGER PRIMARY KEY, trace_id TEXT NOT NULL,"
    " project_id TEXT NOT NULL, service_name TEXT NOT NULL, root_span_id TEXT NOT NULL,"
    " root_span_name TEXT NOT NULL, has_root INTEGER NOT NULL, status TEXT NOT NULL,"
    " source TEXT NOT NULL, started_ns INTEGER NOT NULL, completed_ns INTEGER NOT NULL,"
    " created_ns INTEGER NOT NULL, span_count INTEGER NOT NULL, input_tokens INTEGER NOT NULL,"
    " output_tokens INTEGER NOT NULL, span_types INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX traces_key ON traces (trace_id, project_id);"
    "CREATE INDEX traces_started ON traces (started_ns, trace_id, project_id);"
    "CREATE INDEX traces_project ON traces (project_id, started_ns);"
    "CREATE INDEX traces_service ON traces (service_name, started_ns);"
    "CREATE INDEX traces_status ON traces (status, started_ns);"
    "CREATE INDEX traces_created ON traces (created_ns);"
    "CREATE TABLE spans (tid INTEGER NOT NULL, span_id TEXT NOT NULL,"
    " parent_span_id TEXT NOT NULL, name TEXT NOT NULL, kind INTEGER NOT NULL,"
    " span_type TEXT NOT NULL, service_name TEXT NOT NULL, status TEXT NOT NULL,"
    " status_message TEXT NOT NULL, source TEXT NOT NULL, trace_state TEXT NOT NULL,"
    " start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, created_ns INTEGER NOT NULL,"
    " llm_provider TEXT NOT NULL, llm_model TEXT NOT NULL, input_tokens INTEGER NOT NULL,"
    " output_tokens INTEGER NOT NULL, attributes TEXT NOT NULL, events TEXT NOT NULL,"
    " links TEXT NOT NULL, resource TEXT NOT NULL, scope TEXT NOT NULL);"
    "CREATE UNIQUE INDEX spans_key ON spans (tid, span_id);"
    "CREATE VIRTUAL TABLE span_text USING fts5(text, content='', detail=none,"
    " columnsize=0, tokenize='pc_trigram');"
    "INSERT INTO traces VALUES (1,'v3','pa','svc','r','root three',1,'error','prela',100,200,"
    " 1000,2,5,6,6);"
    "INSERT INTO spans VALUES (1,'r','','root three',2,'agent','svc','success','','prela','',"
    " 100,200,1000,'','',-1,-1,'{\"tier\":\"gold\"}','[]','[]','{}','{}');"
    "INSERT INTO spans VALUES (1,'c','r','llm three',3,'llm','svc','error','boom','prela','',"
    " 120,150,1000,'openai','gpt-3',5,6,'{}','[]','[]','{}','{}');"
    "INSERT INTO span_text (rowid, text) SELECT 0, group_concat(pc_search_text(name,"
    " attributes, events), '') FROM spans;"
    "PRAGMA user_version = 3;";

static void test_migration_3_4(void)
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
    CHECK_EQ_INT(pc_local_text_register(db), SQLITE_OK);
    char *err = NULL;
    CHECK_EQ_INT(sqlite3_exec(db, V3_SCHEMA, NULL, NULL, &err), SQLITE_OK);
    if (err) fprintf(stderr, "%s\n", err);
    sqlite3_free(err);
    sqlite3_close(db);

    store_h h;
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(db_int(path, "PRAGMA user_version"), PC_LOCAL_SCHEMA_VERSION);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM spans"), 2);
    /* old rows: every old field, the new ones unknown */
    tcopy t = trace1(&h, "pa", "v3");
    CHECK_EQ_INT(t.span_count, 2);
    CHECK_EQ_STR(t.session_id, "");
    CHECK_NAN(t.cost_usd);
    scopy c = {.n = 0};
    CHECK_EQ_INT(h.st->ops->get_spans(h.st->ctx, "pa", "v3", 10, 1, collect_s, &c), 0);
    CHECK_EQ_INT(c.n, 1);
    CHECK_EQ_INT(c.cache_read, -1);
    CHECK_EQ_INT(c.reasoning, -1);
    CHECK_NAN(c.cost);
    CHECK_EQ_STR(c.cost_source, "");
    CHECK_EQ_STR(c.input_messages, "");
    /* the model index covers old rows; the attribute filter and search work */
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.model = "gpt-3"})), "v3");
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.attr_key = "tier", .attr_value = "gold"})),
                 "v3");
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM traces WHERE attr_bloom IS NULL"), 1);
    tlist found = {.n = 0};
    CHECK_EQ_INT(h.st->ops->search(h.st->ctx, NULL, "LLM THREE", 10, collect_t, &found), 0);
    CHECK_EQ_INT(found.n, 1);
    /* new spans merge into the old trace with the new fields */
    pc_batch *b = new_batch(pc_time_now_ns());
    llm_span(b, "pa", "v3", "n", "sess-3", "u-3", "gpt-4o", 0.5, 90);
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    t = trace1(&h, "pa", "v3");
    CHECK_EQ_INT(t.span_count, 3);
    CHECK_EQ_STR(t.session_id, "sess-3");
    CHECK_EQ_DBL(t.cost_usd, 0.5);
    CHECK_EQ_STR(keys(sessions(&h, (pc_session_filter){0})), "sess-3/pa");
    close_store(&h, false);
    /* a second start migrates nothing */
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM spans"), 3);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM trace_models"), 2);
    close_store(&h, false);
    remove_store_dir(dir);
}

/* 8 -> 9: a version 8 traces table (no attr_bloom) gets the column; its rows
 * keep NULL and are still found by the attribute filter; new rows get one. */
static void test_migration_8_9(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    char dir[64], path[160];
    snprintf(dir, sizeof(dir), "%s", h.dir);
    snprintf(path, sizeof(path), "%s/data/store/prela.db", dir);
    pc_batch *b = new_batch(pc_time_now_ns());
    pc_span *s = add_span(b, (span_spec){.trace = "old", .span = "a", .start = T0});
    pc_kv kv[] = {kv_str(b, "tier", "gold")};
    set_attrs(b, s, kv, 1);
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK(pc_local_build_rollups(h.ctx) >= 0);
    close_store(&h, false);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM stats_hours WHERE built = 1"), 1);
    db_exec(path, "ALTER TABLE traces DROP COLUMN attr_bloom;"
                  " ALTER TABLE stats_rollup DROP COLUMN priced; PRAGMA user_version = 8");

    /* the rollups lack priced: built again (here when the test says) */
    const char *quiet[] = {"rollup_quiet", "1d"};
    open_store_kv(&h, dir, NULL, quiet, 1);
    CHECK_EQ_INT(db_int(path, "PRAGMA user_version"), PC_LOCAL_SCHEMA_VERSION);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM traces WHERE attr_bloom IS NULL"), 1);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM stats_hours WHERE built = 1"), 0);
    CHECK(pc_local_build_rollups(h.ctx) >= 0);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM stats_hours WHERE built = 1"), 1);
    CHECK_EQ_INT(db_int(path, "SELECT sum(spans) FROM stats_rollup WHERE kind = 0"), 1);
    b = new_batch(pc_time_now_ns());
    s = add_span(b, (span_spec){.trace = "new", .span = "a", .start = T0 + NS});
    pc_kv kv2[] = {kv_str(b, "tier", "gold")};
    set_attrs(b, s, kv2, 1);
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_STR(ids(lst(&h, (pc_trace_filter){.attr_key = "tier", .attr_value = "gold"})),
                 "new,old");
    CHECK_EQ_INT(db_int(path, "SELECT length(attr_bloom) FROM traces WHERE trace_id = 'new'"),
                 PC_ATTR_BLOOM_BYTES);
    close_store(&h, false);
    /* a second start changes nothing */
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM traces WHERE attr_bloom IS NULL"), 1);
    close_store(&h, true);
}

int main(void)
{
    RUN(test_span_fields);
    RUN(test_summary_split_and_redelivered);
    RUN(test_filters);
    RUN(test_attr_common_value);
    RUN(test_sessions);
    RUN(test_sessions_ties);
    RUN(test_stats);
    RUN(test_retention);
    RUN(test_migration_3_4);
    RUN(test_migration_8_9);
    return CHECK_DONE();
}
