/*
 * normalize.c - the normalize processor (see normalize.h).
 *
 * Position: receivers → normalize → exporters. It fills the derived fields of
 * every span (span.h) in place, then passes the batch on. Derived strings
 * point at attribute values already in the batch's arena; the one exception is
 * input_messages / output_messages, JSON written into the batch's arena by
 * messages.c (only for spans that carry prompts or completions).
 *
 * span_type: the first rule that matches wins.
 *   1. Prela span_type field (agent, llm, tool, retrieval, embedding, custom; any case)
 *   2. attribute prela.span_type (same values; survives OTLP round trips)
 *   3. openinference.span.kind: LLM→llm, EMBEDDING→embedding, RETRIEVER|RERANKER→retrieval,
 *      TOOL→tool, AGENT→agent, CHAIN→workflow step (below), anything else→custom
 *   4. traceloop.span.kind (OpenLLMetry): agent→agent, workflow→workflow step, tool→tool,
 *      task→custom
 *   5. gen_ai.operation.name: chat|text_completion|generate_content|completion→llm,
 *      embeddings→embedding, execute_tool→tool, invoke_agent|create_agent→agent,
 *      invoke_workflow→workflow step
 *   6. an attribute key starting gen_ai. or llm.→llm; embedding.→embedding;
 *      retrieval.|retriever.|db.→retrieval; tool.→tool (prefix rules in this order,
 *      as the original backend did), except gen_ai.conversation.* keys: they name
 *      the conversation an app span belongs to, not a model call
 *   7. otherwise custom
 * A workflow step (OpenInference CHAIN, which LangChain and LangGraph put on
 * every runnable and graph node; Traceloop workflow; GenAI invoke_workflow) is
 * an agent only when it is its trace's root (no parent span): the run itself.
 * Below the root it is custom, so one LangGraph run shows one agent, not one
 * per node. Spans that say AGENT / invoke_agent stay agents at any depth,
 * except LangGraph's, read from the run metadata OpenInference's LangChain
 * instrumentation copies into the JSON attribute "metadata" (top-level keys,
 * first MAX_RUN_METADATA bytes), on OpenInference CHAIN and AGENT spans:
 *   - with a "langgraph_node" key: a graph node or a step inside one → custom
 *     (OpenInference calls every run whose name contains "agent" AGENT, and
 *     LangGraph agents name their model node "agent": one per loop turn);
 *   - else with "ls_integration": "langgraph": the graph run itself → agent at
 *     any depth (apps wrap the run in spans of their own).
 * So a LangGraph run is one agent however it is nested; a subgraph run inside
 * a node is a step of the outer run.
 *
 * status: Prela text success|ok|completed|succeeded→success, error|failed|failure→
 * error, anything else→pending. OTLP ERROR→error, OK→success, UNSET→success
 * when the span ended (OTel's "no error reported"), pending when it did not.
 *
 * service_name: resource service.name, else span attribute service.name, else
 * the Prela envelope's service_name, else the processor's default_service_name.
 *
 * LLM fields, first present key wins:
 *   provider: gen_ai.provider.name, gen_ai.system, llm.vendor, llm.provider, llm.system
 *   model:    the response model (what served the call, and what prices are keyed
 *             by): gen_ai.response.model, llm.response.model; else the request
 *             model: gen_ai.request.model, llm.request.model, llm.model,
 *             llm.model_name (OpenInference), embedding.model_name (OpenInference
 *             embeddings), ai.model.id (Vercel AI SDK); on llm spans also a bare
 *             "model" (the seed README's example)
 *   request model: gen_ai.request.model, llm.request.model, llm.model
 *   input:    gen_ai.usage.input_tokens, gen_ai.usage.prompt_tokens, llm.input_tokens,
 *             llm.prompt_tokens, llm.usage.prompt_tokens, llm.token_count.prompt
 *   output:   gen_ai.usage.output_tokens, gen_ai.usage.completion_tokens, llm.output_tokens,
 *             llm.completion_tokens, llm.usage.completion_tokens, llm.token_count.completion
 *   cache read:  gen_ai.usage.cache_read.input_tokens, gen_ai.usage.cache_read_input_tokens,
 *                llm.token_count.prompt_details.cache_read
 *   cache write: gen_ai.usage.cache_creation.input_tokens,
 *                gen_ai.usage.cache_creation_input_tokens,
 *                llm.token_count.prompt_details.cache_write
 *   reasoning:   gen_ai.usage.reasoning.output_tokens, gen_ai.usage.reasoning_tokens,
 *                gen_ai.usage.details.reasoning_tokens,
 *                llm.token_count.completion_details.reasoning
 * Token values may be ints, doubles or numeric strings.
 *
 * Cost (LLM and embedding spans only; fields and NAN convention in span.h):
 *   1. a cost the client sent wins: a total from gen_ai.usage.cost (OpenLIT),
 *      llm.cost.total (OpenInference) or the "total" of the JSON object in
 *      langfuse.observation.cost_details; its split from llm.cost.prompt /
 *      llm.cost.completion or the object's "input" / "output". A split without
 *      a total gives total = input + output. Values: finite numbers >= 0 (ints,
 *      doubles or numeric strings); anything else counts as not sent.
 *   2. else the price table (prices.h) by provider, model and start time,
 *      applied to the token counts; a model with no entry is counted in the
 *      unpriced set (pc_prices_unpriced_each) and its cost stays unknown.
 * Agent and other spans get no cost even when they carry usage: an agent's
 * usage is usually its children's, summed, and would count twice.
 *
 * Session and user, from the span's attributes, else its resource's, first
 * present key wins (string values only: ids are strings in every dialect):
 *   session: gen_ai.conversation.id, session.id, langfuse.session.id,
 *            langsmith.trace.session_id, traceloop.association.properties.session_id,
 *            traceloop.association.properties.conversation_id,
 *            traceloop.association.properties.thread_id
 *   user:    user.id, enduser.id, langfuse.user.id, langsmith.metadata.user_id,
 *            traceloop.association.properties.user_id
 * An id longer than PC_SPAN_GROUP_ID_MAX bytes (256, the Prela ids' bound)
 * is not promoted: the span has no session (or user) and the attribute stays
 * as sent. Stores name ids in their reads; this keeps each one small.
 *
 * Messages: input_messages / output_messages from every dialect's prompt and
 * completion keys, one shape (messages.h has the sources and their precedence),
 * on any span that carries them; only the processor (which has the batch's
 * arena) fills them.
 */
#include "normalize.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "messages.h"
#include "prices.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct normalize_cfg {
    char *default_service_name;
    char *prices;
} normalize_cfg;

static const pc_option options[] = {
    {"default_service_name", PC_OPT_STRING, "unknown", offsetof(normalize_cfg, default_service_name),
     0, 0, "service name of spans that carry none"},
    {"prices", PC_OPT_STRING, NULL, offsetof(normalize_cfg, prices), 0, 0,
     "price file adding to or overriding the shipped model prices (README, Cost); re-read on "
     "SIGHUP"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

typedef struct normalize {
    pc_consumer next;
    pc_str default_service;
    pc_prices *prices;
} normalize;

/*
 * The keys of one attribute set, summarized in 256 bits, one set per key at a
 * hash of its length and two of its bytes. normalize looks up some 60 keys
 * per span, most of them absent: an absent key is then told in a few
 * instructions instead of a pass over every attribute (this halved
 * normalize's cost). Valid while the set's keys do not change: normalize
 * only reads them.
 */
typedef struct keyed {
    const pc_attrs *a; /* may be NULL: no attributes */
    uint64_t bits[4];
} keyed;

static unsigned key_hash(const char *p, size_t n)
{
    if (!n) return 0;
    return (unsigned)(n * 31u + (unsigned char)p[n - 1] * 7u + (unsigned char)p[n / 2]) & 255u;
}

static void keyed_init(keyed *k, const pc_attrs *a)
{
    *k = (keyed){a, {0}};
    for (size_t i = 0; a && i < a->n; i++) {
        unsigned h = key_hash(a->kv[i].key.p, a->kv[i].key.n);
        k->bits[h >> 6] |= 1ull << (h & 63);
    }
}

static const pc_value *keyed_get(const keyed *k, const char *key, size_t n)
{
    unsigned h = key_hash(key, n);
    if (!k->a || !(k->bits[h >> 6] >> (h & 63) & 1)) return NULL;
    return pc_attrs_getn(k->a, key, n);
}

/* Returns the string value of |key| in |k|, or an empty pc_str. */
static pc_str attr_str(const keyed *k, const char *key)
{
    const pc_value *v = keyed_get(k, key, strlen(key));
    return v && v->type == PC_V_STR ? v->s : PC_STR_NULL;
}

static bool str_ieq(pc_str s, const char *c)
{
    return s.n == strlen(c) && strncasecmp(s.p, c, s.n) == 0;
}

typedef struct word_type {
    const char *word;
    pc_span_type type;
} word_type;

/* A workflow step in the tables below: agent at the root, else custom (see above). */
#define WORKFLOW_STEP ((pc_span_type)-1)

static const word_type openinference_kinds[] = {
    {"llm", PC_TYPE_LLM},       {"embedding", PC_TYPE_EMBEDDING}, {"retriever", PC_TYPE_RETRIEVAL},
    {"reranker", PC_TYPE_RETRIEVAL}, {"tool", PC_TYPE_TOOL},      {"agent", PC_TYPE_AGENT},
    {"chain", WORKFLOW_STEP},   {NULL, PC_TYPE_CUSTOM}};
static const word_type traceloop_kinds[] = {
    {"workflow", WORKFLOW_STEP}, {"agent", PC_TYPE_AGENT}, {"tool", PC_TYPE_TOOL},
    {"task", PC_TYPE_CUSTOM},    {NULL, PC_TYPE_CUSTOM}};
static const word_type genai_operations[] = {
    {"chat", PC_TYPE_LLM},          {"text_completion", PC_TYPE_LLM},
    {"generate_content", PC_TYPE_LLM}, {"completion", PC_TYPE_LLM},
    {"embeddings", PC_TYPE_EMBEDDING}, {"execute_tool", PC_TYPE_TOOL},
    {"invoke_agent", PC_TYPE_AGENT}, {"create_agent", PC_TYPE_AGENT},
    {"invoke_workflow", WORKFLOW_STEP}, {NULL, PC_TYPE_CUSTOM}};

/* Looks |v| up in |table|; returns 1 with |*out| set, 0 when |v| is empty.
 * A present value not in the table maps to |fallback| (or no match when < 0). */
static int lookup(pc_str v, const word_type *table, int fallback, pc_span_type *out)
{
    if (!v.n) return 0;
    for (const word_type *w = table; w->word; w++)
        if (str_ieq(v, w->word)) {
            *out = w->type;
            return 1;
        }
    if (fallback < 0) return 0;
    *out = (pc_span_type)fallback;
    return 1;
}

typedef struct prefix_type {
    const char *prefix;
    pc_span_type type;
} prefix_type;

static const prefix_type prefix_rules[] = {
    {"gen_ai.", PC_TYPE_LLM},       {"llm.", PC_TYPE_LLM},         {"embedding.", PC_TYPE_EMBEDDING},
    {"retrieval.", PC_TYPE_RETRIEVAL}, {"retriever.", PC_TYPE_RETRIEVAL}, {"db.", PC_TYPE_RETRIEVAL},
    {"tool.", PC_TYPE_TOOL},        {NULL, PC_TYPE_CUSTOM}};

#define MAX_RUN_METADATA 16384 /* a longer LangChain "metadata" attribute is not read */

/* The LangGraph role of an OpenInference span from its "metadata" attribute
 * (see the top): PC_TYPE_CUSTOM for a node, PC_TYPE_AGENT for the graph run,
 * -1 when the span says neither (no metadata, not JSON, or not LangGraph's). */
static int langgraph_role(const keyed *attrs)
{
    pc_str m = attr_str(attrs, "metadata");
    /* "langgraph_node" and "langgraph" both contain it: other LangChain spans skip the parse */
    if (m.n < 2 || m.n > MAX_RUN_METADATA || m.p[0] != '{' || !memmem(m.p, m.n, "langgraph", 9))
        return -1;
    pc_arena *a = pc_arena_create(4 * m.n);
    pc_value j;
    pc_json_error e;
    int role = -1;
    if (pc_json_parse(a, m.p, m.n, &j, &e) == 0 && j.type == PC_V_MAP) {
        const pc_value *integration = pc_json_get(&j, "ls_integration");
        if (pc_json_get(&j, "langgraph_node")) role = PC_TYPE_CUSTOM;
        else if (integration && integration->type == PC_V_STR &&
                 str_ieq(integration->s, "langgraph"))
            role = PC_TYPE_AGENT;
    }
    pc_arena_destroy(a);
    return role;
}

static pc_span_type infer_type(const pc_span *s, const keyed *attrs)
{
    int t = pc_span_type_parse(s->span_type_text);
    if (t >= 0) return (pc_span_type)t;
    if ((t = pc_span_type_parse(attr_str(attrs, "prela.span_type"))) >= 0) return (pc_span_type)t;
    pc_span_type out;
    if (lookup(attr_str(attrs, "openinference.span.kind"), openinference_kinds, PC_TYPE_CUSTOM,
               &out)) {
        if (out == WORKFLOW_STEP || out == PC_TYPE_AGENT) {
            int role = langgraph_role(attrs);
            if (role >= 0) return (pc_span_type)role;
        }
        if (out == WORKFLOW_STEP) return s->parent_id.n ? PC_TYPE_CUSTOM : PC_TYPE_AGENT;
        return out;
    }
    if (lookup(attr_str(attrs, "traceloop.span.kind"), traceloop_kinds, PC_TYPE_CUSTOM, &out) ||
        lookup(attr_str(attrs, "gen_ai.operation.name"), genai_operations, -1, &out)) {
        if (out == WORKFLOW_STEP) return s->parent_id.n ? PC_TYPE_CUSTOM : PC_TYPE_AGENT;
        return out;
    }
    /* the first rule any key matches: one pass, each key against the rules
     * before the best found so far */
    static const char context[] = "gen_ai.conversation.";
    int best = -1;
    for (size_t i = 0; i < s->attrs.n && best != 0; i++) {
        pc_str k = s->attrs.kv[i].key;
        if (k.n >= sizeof(context) - 1 && memcmp(k.p, context, sizeof(context) - 1) == 0) continue;
        for (int j = 0; prefix_rules[j].prefix && (best < 0 || j < best); j++) {
            size_t pl = strlen(prefix_rules[j].prefix);
            if (k.n > pl && memcmp(k.p, prefix_rules[j].prefix, pl) == 0) {
                best = j;
                break;
            }
        }
    }
    return best >= 0 ? prefix_rules[best].type : PC_TYPE_CUSTOM;
}

static pc_status map_status(const pc_span *s)
{
    if (s->status_text.n) {
        static const char *const ok[] = {"success", "ok", "completed", "succeeded", NULL};
        static const char *const bad[] = {"error", "failed", "failure", NULL};
        for (const char *const *w = ok; *w; w++)
            if (str_ieq(s->status_text, *w)) return PC_STATUS_SUCCESS;
        for (const char *const *w = bad; *w; w++)
            if (str_ieq(s->status_text, *w)) return PC_STATUS_ERROR;
        return PC_STATUS_PENDING;
    }
    if (s->status_code == PC_OTLP_STATUS_ERROR) return PC_STATUS_ERROR;
    if (s->status_code == PC_OTLP_STATUS_OK) return PC_STATUS_SUCCESS;
    return s->end_ns > 0 ? PC_STATUS_SUCCESS : PC_STATUS_PENDING;
}

/* A key with its length, so the hot loops below compute no strlen. */
#define K(lit) {lit, sizeof(lit) - 1}

static pc_str first_str(const keyed *a, const pc_str *keys)
{
    for (; keys->n; keys++) {
        const pc_value *pv = keyed_get(a, keys->p, keys->n);
        pc_str v = pv && pv->type == PC_V_STR ? pv->s : PC_STR_NULL;
        if (v.n) return v;
    }
    return PC_STR_NULL;
}

/* A token count from an int, a double or a numeric string; -1 when absent or bad. */
static int64_t token_value(const pc_value *v)
{
    if (!v) return -1;
    if (v->type == PC_V_INT) return v->i >= 0 ? v->i : -1;
    if (v->type == PC_V_DOUBLE) {
        if (!(v->d >= 0)) return -1; /* negative or NaN */
        return v->d < 9.2e18 ? (int64_t)v->d : INT64_MAX; /* saturates, +inf included */
    }
    if (v->type == PC_V_STR && v->s.n > 0 && v->s.n < 64) { /* strtoll saturates */
        char tmp[64];
        memcpy(tmp, v->s.p, v->s.n);
        tmp[v->s.n] = '\0';
        char *end;
        long long x = strtoll(tmp, &end, 10);
        return *end || x < 0 ? -1 : x;
    }
    return -1;
}

static int64_t first_tokens(const keyed *a, const pc_str *keys)
{
    for (; keys->n; keys++) {
        int64_t t = token_value(keyed_get(a, keys->p, keys->n));
        if (t >= 0) return t;
    }
    return -1;
}

static const pc_str provider_keys[] = {K("gen_ai.provider.name"), K("gen_ai.system"),
                                       K("llm.vendor"), K("llm.provider"), K("llm.system"),
                                       {NULL, 0}};
static const pc_str model_keys[] = {
    K("gen_ai.response.model"),
    K("llm.response.model"),
    K("gen_ai.request.model"),
    K("llm.request.model"),
    K("llm.model"),
    K("llm.model_name"),
    K("embedding.model_name"),
    K("ai.model.id"),
    {NULL, 0}};
static const pc_str request_model_keys[] = {
    K("gen_ai.request.model"),
    K("llm.request.model"),
    K("llm.model"),
    {NULL, 0}};
static const pc_str input_keys[] = {
    K("gen_ai.usage.input_tokens"),
    K("gen_ai.usage.prompt_tokens"),
    K("llm.input_tokens"),
    K("llm.prompt_tokens"),
    K("llm.usage.prompt_tokens"),
    K("llm.token_count.prompt"),
    {NULL, 0}};
static const pc_str output_keys[] = {
    K("gen_ai.usage.output_tokens"),
    K("gen_ai.usage.completion_tokens"),
    K("llm.output_tokens"),
    K("llm.completion_tokens"),
    K("llm.usage.completion_tokens"),
    K("llm.token_count.completion"),
    {NULL, 0}};
static const pc_str cache_read_keys[] = {
    K("gen_ai.usage.cache_read.input_tokens"),
    K("gen_ai.usage.cache_read_input_tokens"),
    K("llm.token_count.prompt_details.cache_read"),
    {NULL, 0}};
static const pc_str cache_write_keys[] = {
    K("gen_ai.usage.cache_creation.input_tokens"),
    K("gen_ai.usage.cache_creation_input_tokens"),
    K("llm.token_count.prompt_details.cache_write"),
    {NULL, 0}};
static const pc_str reasoning_keys[] = {
    K("gen_ai.usage.reasoning.output_tokens"),
    K("gen_ai.usage.reasoning_tokens"),
    K("gen_ai.usage.details.reasoning_tokens"),
    K("llm.token_count.completion_details.reasoning"),
    {NULL, 0}};
static const pc_str session_keys[] = {
    K("gen_ai.conversation.id"),
    K("session.id"),
    K("langfuse.session.id"),
    K("langsmith.trace.session_id"),
    K("traceloop.association.properties.session_id"),
    K("traceloop.association.properties.conversation_id"),
    K("traceloop.association.properties.thread_id"),
    {NULL, 0}};
static const pc_str user_keys[] = {
    K("user.id"),
    K("enduser.id"),
    K("langfuse.user.id"),
    K("langsmith.metadata.user_id"),
    K("traceloop.association.properties.user_id"),
    {NULL, 0}};

/* A cost from an int, a double or a numeric string: finite and >= 0, else NAN. */
static double cost_value(const pc_value *v)
{
    if (!v) return NAN;
    double d = NAN;
    if (v->type == PC_V_INT) d = (double)v->i;
    else if (v->type == PC_V_DOUBLE) d = v->d;
    else if (v->type == PC_V_STR && v->s.n > 0 && v->s.n < 64) {
        char tmp[64], *end;
        memcpy(tmp, v->s.p, v->s.n);
        tmp[v->s.n] = '\0';
        d = strtod(tmp, &end);
        if (*end) d = NAN;
    }
    return isfinite(d) && d >= 0 ? d : NAN;
}

#define MAX_COST_DETAILS 4096 /* a longer langfuse.observation.cost_details is not read */

static bool key_is(pc_str k, const char *c, size_t n)
{
    return k.n == n && memcmp(k.p, c, n) == 0;
}

/*
 * Reads the cost the client sent into |c| (NAN where not sent): the first
 * valid value of each key, keys in the order of the table at the top. One
 * pass over the attributes (this runs on every LLM span).
 */
static void sent_cost(const pc_span *s, pc_cost *c)
{
    /* gen_ai.usage.cost, llm.cost.total, llm.cost.prompt, llm.cost.completion */
    double v[4] = {NAN, NAN, NAN, NAN};
    pc_str lf = PC_STR_NULL;
    for (size_t i = 0; i < s->attrs.n; i++) {
        pc_str k = s->attrs.kv[i].key;
        if (k.n < 14 || (k.p[0] != 'g' && k.p[0] != 'l')) continue;
        int slot = key_is(k, "gen_ai.usage.cost", 17)     ? 0
                   : key_is(k, "llm.cost.total", 14)      ? 1
                   : key_is(k, "llm.cost.prompt", 15)     ? 2
                   : key_is(k, "llm.cost.completion", 19) ? 3
                                                          : -1;
        if (slot >= 0) {
            if (isnan(v[slot])) v[slot] = cost_value(&s->attrs.kv[i].value);
        } else if (!lf.n && key_is(k, "langfuse.observation.cost_details", 33) &&
                   s->attrs.kv[i].value.type == PC_V_STR) {
            lf = s->attrs.kv[i].value.s;
        }
    }
    c->total = !isnan(v[0]) ? v[0] : v[1];
    c->input = v[2];
    c->output = v[3];
    if (lf.n && lf.n <= MAX_COST_DETAILS &&
        (isnan(c->total) || isnan(c->input) || isnan(c->output))) {
        pc_arena *a = pc_arena_create(2 * MAX_COST_DETAILS);
        pc_value j;
        pc_json_error e;
        if (pc_json_parse(a, lf.p, lf.n, &j, &e) == 0 && j.type == PC_V_MAP) {
            if (isnan(c->total)) c->total = cost_value(pc_json_get(&j, "total"));
            if (isnan(c->input)) c->input = cost_value(pc_json_get(&j, "input"));
            if (isnan(c->output)) c->output = cost_value(pc_json_get(&j, "output"));
        }
        pc_arena_destroy(a);
    }
    if (isnan(c->total) && !isnan(c->input) && !isnan(c->output)) c->total = c->input + c->output;
}

/* Sets the cost fields of |s| (LLM and embedding spans; see the top). */
static void set_cost(pc_span *s, pc_price_table *t)
{
    s->cost_usd = s->cost_input_usd = s->cost_output_usd = NAN;
    s->cost_source = PC_COST_NONE;
    if (s->span_type != PC_TYPE_LLM && s->span_type != PC_TYPE_EMBEDDING) return;
    pc_cost c;
    sent_cost(s, &c);
    if (!isnan(c.total) && isfinite(c.total)) {
        s->cost_usd = c.total;
        s->cost_input_usd = c.input;
        s->cost_output_usd = c.output;
        s->cost_source = PC_COST_SENT;
        return;
    }
    if (!s->llm_model.n) return;
    pc_price p;
    if (!pc_price_table_lookup(t, s->llm_provider, s->llm_model, s->start_ns, &p)) {
        pc_prices_unpriced_add(s->llm_provider, s->llm_model);
        return;
    }
    pc_usage u = {s->input_tokens, s->output_tokens, s->cache_read_tokens, s->cache_write_tokens,
                  s->reasoning_tokens};
    if (!pc_price_cost(&p, &u, &c)) return;
    s->cost_usd = c.total;
    s->cost_input_usd = c.input;
    s->cost_output_usd = c.output;
    s->cost_source = PC_COST_TABLE;
}

/*
 * A list of keys in priority order with the union of their hashes (the bits
 * of keyed_init): a span holding none of them is told by one test. The
 * unions are computed once per process.
 */
typedef struct key_list {
    const pc_str *keys;
    uint64_t bits[4];
} key_list;

static key_list provider_list = {provider_keys, {0}}, model_list = {model_keys, {0}},
                request_model_list = {request_model_keys, {0}}, input_list = {input_keys, {0}},
                output_list = {output_keys, {0}}, cache_read_list = {cache_read_keys, {0}},
                cache_write_list = {cache_write_keys, {0}},
                reasoning_list = {reasoning_keys, {0}}, session_list = {session_keys, {0}},
                user_list = {user_keys, {0}};
static pthread_once_t lists_once = PTHREAD_ONCE_INIT;

static void lists_init(void)
{
    key_list *all[] = {&provider_list,    &model_list,      &request_model_list,
                       &input_list,       &output_list,     &cache_read_list,
                       &cache_write_list, &reasoning_list,  &session_list,
                       &user_list};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        for (const pc_str *k = all[i]->keys; k->n; k++) {
            unsigned h = key_hash(k->p, k->n);
            all[i]->bits[h >> 6] |= 1ull << (h & 63);
        }
}

static bool keyed_may_hold(const keyed *k, const key_list *l)
{
    return ((k->bits[0] & l->bits[0]) | (k->bits[1] & l->bits[1]) | (k->bits[2] & l->bits[2]) |
            (k->bits[3] & l->bits[3])) != 0;
}

static pc_str first_of(const keyed *a, const key_list *l)
{
    return keyed_may_hold(a, l) ? first_str(a, l->keys) : PC_STR_NULL;
}

static int64_t tokens_of(const keyed *a, const key_list *l)
{
    return keyed_may_hold(a, l) ? first_tokens(a, l->keys) : -1;
}

/* The first of |keys| in the span's attributes, else in its resource's. */
static pc_str span_or_resource(const keyed *attrs, const keyed *resource, const key_list *l)
{
    pc_str v = first_of(attrs, l);
    return v.n ? v : first_of(resource, l);
}

/* |v| as a session or user id: none past PC_SPAN_GROUP_ID_MAX bytes. */
static pc_str group_id(pc_str v)
{
    return v.n > PC_SPAN_GROUP_ID_MAX ? (pc_str){0} : v;
}

void pc_normalize_span(pc_span *s, pc_str default_service)
{
    pc_price_table *t = pc_price_table_builtin();
    pc_normalize_span_priced(s, default_service, t, NULL);
    pc_price_table_unref(t);
}

void pc_normalize_span_priced(pc_span *s, pc_str default_service, pc_price_table *prices,
                              pc_arena *arena)
{
    pthread_once(&lists_once, lists_init);
    keyed attrs, resource;
    keyed_init(&attrs, &s->attrs);
    keyed_init(&resource, s->resource);
    s->span_type = infer_type(s, &attrs);
    s->status = map_status(s);
    s->service_name = attr_str(&resource, "service.name");
    if (!s->service_name.n) s->service_name = attr_str(&attrs, "service.name");
    if (!s->service_name.n) s->service_name = s->service_hint;
    if (!s->service_name.n) s->service_name = default_service;
    s->llm_provider = first_of(&attrs, &provider_list);
    s->llm_model = first_of(&attrs, &model_list);
    if (!s->llm_model.n && s->span_type == PC_TYPE_LLM) s->llm_model = attr_str(&attrs, "model");
    s->llm_request_model = first_of(&attrs, &request_model_list);
    s->input_tokens = tokens_of(&attrs, &input_list);
    s->output_tokens = tokens_of(&attrs, &output_list);
    s->cache_read_tokens = tokens_of(&attrs, &cache_read_list);
    s->cache_write_tokens = tokens_of(&attrs, &cache_write_list);
    s->reasoning_tokens = tokens_of(&attrs, &reasoning_list);
    s->session_id = group_id(span_or_resource(&attrs, &resource, &session_list));
    s->user_id = group_id(span_or_resource(&attrs, &resource, &user_list));
    set_cost(s, prices);
    if (arena) pc_messages_extract(s, arena);
}

static void *create(const char *id, const void *cfgp, const pc_consumer *next)
{
    const normalize_cfg *cfg = cfgp;
    if (!next) {
        pc_log(PC_LOG_ERROR, id, "processor has no next consumer");
        return NULL;
    }
    char err[512];
    pc_prices *prices = pc_prices_create(cfg->prices, err, sizeof(err));
    if (!prices) {
        pc_log(PC_LOG_ERROR, id, "prices: %s", err);
        return NULL;
    }
    if (cfg->prices && *cfg->prices) {
        pc_price_table *t = pc_prices_acquire(prices);
        pc_log(PC_LOG_INFO, id, "prices: %s loaded, %zu price entries with the shipped ones",
               cfg->prices, pc_price_table_size(t));
        pc_price_table_unref(t);
    }
    normalize *n = pc_xcalloc(1, sizeof(*n));
    n->next = *next;
    n->default_service = (pc_str){cfg->default_service_name, strlen(cfg->default_service_name)};
    n->prices = prices;
    return n;
}

static pc_result consume(void *ctx, pc_batch *b)
{
    normalize *n = ctx;
    pc_price_table *t = pc_prices_acquire(n->prices); /* one table for the whole batch */
    for (size_t i = 0; i < b->n; i++)
        if (!b->spans[i].carrier) /* events for a span, not a span (span.h) */
            pc_normalize_span_priced(&b->spans[i], n->default_service, t, b->arena);
    pc_price_table_unref(t);
    return pc_consume(&n->next, b);
}

static void destroy(void *ctx)
{
    normalize *n = ctx;
    if (n) pc_prices_destroy(n->prices);
    free(n);
}

const pc_component_ops pc_normalize_processor_ops = {
    .type = "normalize",
    .kind = PC_PROCESSOR,
    .options = options,
    .config_size = sizeof(normalize_cfg),
    .create = create,
    .destroy = destroy,
    .consume = consume,
};
