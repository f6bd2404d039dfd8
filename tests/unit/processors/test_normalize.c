/*
 * test_normalize.c - the normalize processor (src/processors/normalize.c):
 * span_type rules, status mapping, service name, LLM field promotion, and the
 * processor passing the batch on through its ops (with the messages it writes).
 */
#include "check.h"
#include "json.h"
#include "processors/normalize.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CHECK_NEAR(a, b)                                                                     \
    do {                                                                                     \
        double na_ = (a), nb_ = (b);                                                         \
        check_count++;                                                                       \
        if (!(fabs(na_ - nb_) <= 1e-9 * fmax(fabs(nb_), 1e-12))) {                           \
            check_failures++;                                                                \
            fprintf(stderr, "%s:%d: %s ~= %s failed: %.17g != %.17g\n", __FILE__, __LINE__,  \
                    #a, #b, na_, nb_);                                                       \
        }                                                                                    \
    } while (0)

static pc_arena *A;

static pc_span span_with_n(const char *attrs, size_t n);

/* Builds a span whose attributes are the JSON object |attrs|. */
static pc_span span_with(const char *attrs)
{
    return span_with_n(attrs, strlen(attrs));
}

static pc_span span_with_n(const char *attrs, size_t n)
{
    pc_span s;
    memset(&s, 0, sizeof(s));
    s.resource = &pc_empty_attrs;
    s.scope = &pc_empty_scope;
    pc_value v;
    pc_json_error e;
    if (pc_json_parse(A, attrs, n, &v, &e) == 0 && v.type == PC_V_MAP) {
        s.attrs.kv = v.map.kv;
        s.attrs.n = v.map.n;
    }
    return s;
}

static pc_span_type type_of(const char *attrs, const char *prela_type, int kind)
{
    pc_span s = span_with(attrs);
    if (prela_type) s.span_type_text = (pc_str){prela_type, strlen(prela_type)};
    s.kind = kind;
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    return s.span_type;
}

static void test_span_types(void)
{
    CHECK_EQ_INT(type_of("{}", "LLM", 0), PC_TYPE_LLM);
    CHECK_EQ_INT(type_of("{\"gen_ai.system\":\"x\"}", "Agent", 0), PC_TYPE_AGENT);
    CHECK_EQ_INT(type_of("{\"prela.span_type\":\"retrieval\"}", NULL, 0), PC_TYPE_RETRIEVAL);
    CHECK_EQ_INT(type_of("{\"openinference.span.kind\":\"LLM\"}", NULL, 0), PC_TYPE_LLM);
    CHECK_EQ_INT(type_of("{\"openinference.span.kind\":\"RETRIEVER\"}", NULL, 0), PC_TYPE_RETRIEVAL);
    CHECK_EQ_INT(type_of("{\"openinference.span.kind\":\"CHAIN\",\"llm.model_name\":\"m\"}", NULL, 0),
                 PC_TYPE_AGENT); /* a root workflow step is the run: an agent */
    CHECK_EQ_INT(type_of("{\"openinference.span.kind\":\"AGENT\"}", NULL, 0), PC_TYPE_AGENT);
    CHECK_EQ_INT(type_of("{\"openinference.span.kind\":\"GUARDRAIL\"}", NULL, 0), PC_TYPE_CUSTOM);
    CHECK_EQ_INT(type_of("{\"traceloop.span.kind\":\"workflow\"}", NULL, 0), PC_TYPE_AGENT);
    CHECK_EQ_INT(type_of("{\"traceloop.span.kind\":\"tool\"}", NULL, 0), PC_TYPE_TOOL);
    CHECK_EQ_INT(type_of("{\"gen_ai.operation.name\":\"embeddings\",\"gen_ai.request.model\":\"e\"}",
                         NULL, 0),
                 PC_TYPE_EMBEDDING);
    CHECK_EQ_INT(type_of("{\"gen_ai.operation.name\":\"execute_tool\"}", NULL, 0), PC_TYPE_TOOL);
    CHECK_EQ_INT(type_of("{\"gen_ai.operation.name\":\"invoke_agent\"}", NULL, 0), PC_TYPE_AGENT);
    CHECK_EQ_INT(type_of("{\"gen_ai.operation.name\":\"chat\"}", NULL, 0), PC_TYPE_LLM);
    CHECK_EQ_INT(type_of("{\"http.method\":\"GET\",\"llm.vendor\":\"openai\"}", NULL, 3), PC_TYPE_LLM);
    CHECK_EQ_INT(type_of("{\"embedding.count\":3}", NULL, 0), PC_TYPE_EMBEDDING);
    CHECK_EQ_INT(type_of("{\"db.system\":\"qdrant\"}", NULL, 0), PC_TYPE_RETRIEVAL);
    CHECK_EQ_INT(type_of("{\"tool.name\":\"search\"}", NULL, 0), PC_TYPE_TOOL);
    CHECK_EQ_INT(type_of("{\"http.method\":\"GET\"}", NULL, 2), PC_TYPE_CUSTOM);
    CHECK_EQ_INT(type_of("{}", "chain", 0), PC_TYPE_CUSTOM); /* not a Prela type: rules decide */
}

/* Workflow steps below the root (LangGraph nodes, Traceloop workflows, GenAI
 * invoke_workflow) are not agents; declared agents are, at any depth. */
static void test_workflow_steps(void)
{
    static const char *const steps[] = {"{\"openinference.span.kind\":\"CHAIN\"}",
                                        "{\"traceloop.span.kind\":\"workflow\"}",
                                        "{\"gen_ai.operation.name\":\"invoke_workflow\"}", NULL};
    for (const char *const *a = steps; *a; a++) {
        pc_span s = span_with(*a);
        pc_normalize_span(&s, PC_STR_LIT("unknown"));
        CHECK_EQ_INT(s.span_type, PC_TYPE_AGENT);
        s = span_with(*a);
        s.parent_id = PC_STR_LIT("00f067aa0ba902b7");
        pc_normalize_span(&s, PC_STR_LIT("unknown"));
        CHECK_EQ_INT(s.span_type, PC_TYPE_CUSTOM);
    }
    static const char *const agents[] = {"{\"openinference.span.kind\":\"AGENT\"}",
                                         "{\"traceloop.span.kind\":\"agent\"}",
                                         "{\"gen_ai.operation.name\":\"invoke_agent\"}", NULL};
    for (const char *const *a = agents; *a; a++) {
        pc_span s = span_with(*a);
        s.parent_id = PC_STR_LIT("00f067aa0ba902b7");
        pc_normalize_span(&s, PC_STR_LIT("unknown"));
        CHECK_EQ_INT(s.span_type, PC_TYPE_AGENT);
    }
}

/* LangGraph through OpenInference's LangChain instrumentation: the graph run is
 * the one agent (also below an app span), its nodes are not, even the node
 * OpenInference calls AGENT because its name contains "agent". */
static pc_span_type langgraph_type(const char *kind, const char *metadata, bool child)
{
    pc_buf b = {0};
    pc_buf_printf(&b, "{\"openinference.span.kind\":\"%s\",\"metadata\":", kind);
    pc_json_write_str(&b, metadata, strlen(metadata));
    pc_buf_putc(&b, '}');
    pc_span s = span_with_n(b.data, b.len);
    if (child) s.parent_id = PC_STR_LIT("00f067aa0ba902b7");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    pc_buf_free(&b); /* after normalize: parsed strings may point into it */
    return s.span_type;
}

static void test_langgraph(void)
{
    static const char run[] = "{\"ls_integration\": \"langgraph\"}";
    static const char node[] = "{\"ls_integration\": \"langgraph\", \"langgraph_step\": 1, "
                               "\"langgraph_node\": \"agent\", \"langgraph_path\": [\"__pregel_pull\", "
                               "\"agent\"]}";
    static const char llm_in_node[] = "{\"ls_integration\": \"langchain_chat_model\", "
                                      "\"langgraph_node\": \"agent\"}";
    CHECK_EQ_INT(langgraph_type("CHAIN", run, true), PC_TYPE_AGENT); /* under an app span */
    CHECK_EQ_INT(langgraph_type("CHAIN", run, false), PC_TYPE_AGENT);
    CHECK_EQ_INT(langgraph_type("AGENT", node, true), PC_TYPE_CUSTOM); /* the "agent" node */
    CHECK_EQ_INT(langgraph_type("CHAIN", node, true), PC_TYPE_CUSTOM);
    CHECK_EQ_INT(langgraph_type("CHAIN", node, false), PC_TYPE_CUSTOM); /* a node, even as root */
    CHECK_EQ_INT(langgraph_type("LLM", llm_in_node, true), PC_TYPE_LLM); /* only chains and agents */
    CHECK_EQ_INT(langgraph_type("TOOL", node, true), PC_TYPE_TOOL);
    /* a graph run named "agent" (LangChain's create_agent) is still the one agent */
    CHECK_EQ_INT(langgraph_type("AGENT", run, true), PC_TYPE_AGENT);
    /* other metadata: the workflow-step rule and declared agents as before */
    static const char other[] = "{\"ls_integration\": \"langchain_chat_model\", \"k\": {\"langgraph_node\": 1}}";
    CHECK_EQ_INT(langgraph_type("CHAIN", other, true), PC_TYPE_CUSTOM);
    CHECK_EQ_INT(langgraph_type("CHAIN", other, false), PC_TYPE_AGENT);
    CHECK_EQ_INT(langgraph_type("AGENT", other, true), PC_TYPE_AGENT);
    CHECK_EQ_INT(langgraph_type("AGENT", "{\"ls_integration\": 7}", true), PC_TYPE_AGENT);
    /* hostile or unreadable metadata is ignored, never fatal */
    char deep[600] = "{\"langgraph_node\": ";
    size_t d = strlen(deep);
    while (d < sizeof deep - 1) deep[d++] = '[';
    deep[d] = '\0';
    const char *const bad[] = {"", "{", "[\"langgraph_node\"]", "\"langgraph_node\"",
                               "{\"langgraph_node\"", "{\"langgraph_node\": 1,}", deep, NULL};
    for (const char *const *m = bad; *m; m++) {
        CHECK_EQ_INT(langgraph_type("AGENT", *m, true), PC_TYPE_AGENT);
        CHECK_EQ_INT(langgraph_type("CHAIN", *m, true), PC_TYPE_CUSTOM);
    }
    /* metadata past MAX_RUN_METADATA (16 KiB) is not read: the plain rules decide */
    size_t n = 20000;
    char *big = malloc(n + 64);
    int off = snprintf(big, 64, "{\"langgraph_node\": \"agent\", \"pad\": \"");
    memset(big + off, 'x', n);
    strcpy(big + off + n, "\"}");
    CHECK_EQ_INT(langgraph_type("AGENT", big, true), PC_TYPE_AGENT);
    big[off + 1000] = '\0';
    strcat(big, "\"}");
    CHECK_EQ_INT(langgraph_type("AGENT", big, true), PC_TYPE_CUSTOM); /* the same, short */
    free(big);
}

static pc_status status_of(const char *text, int code, int64_t end)
{
    pc_span s = span_with("{}");
    if (text) s.status_text = (pc_str){text, strlen(text)};
    s.status_code = code;
    s.end_ns = end;
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    return s.status;
}

static void test_status(void)
{
    CHECK_EQ_INT(status_of("SUCCESS", 0, 0), PC_STATUS_SUCCESS);
    CHECK_EQ_INT(status_of("completed", 0, 0), PC_STATUS_SUCCESS);
    CHECK_EQ_INT(status_of("ERROR", 0, 5), PC_STATUS_ERROR);
    CHECK_EQ_INT(status_of("pending", 0, 5), PC_STATUS_PENDING);
    CHECK_EQ_INT(status_of(NULL, PC_OTLP_STATUS_ERROR, 5), PC_STATUS_ERROR);
    CHECK_EQ_INT(status_of(NULL, PC_OTLP_STATUS_OK, 0), PC_STATUS_SUCCESS);
    CHECK_EQ_INT(status_of(NULL, PC_OTLP_STATUS_UNSET, 5), PC_STATUS_SUCCESS);
    CHECK_EQ_INT(status_of(NULL, PC_OTLP_STATUS_UNSET, 0), PC_STATUS_PENDING);
}

static void test_llm_fields(void)
{
    pc_span s = span_with("{\"gen_ai.system\":\"openai\",\"gen_ai.request.model\":\"gpt-4o\","
                          "\"gen_ai.usage.input_tokens\":120,\"gen_ai.usage.output_tokens\":\"35\"}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.llm_provider, "openai");
    CHECK_EQ_PSTR(s.llm_model, "gpt-4o");
    CHECK_EQ_INT(s.input_tokens, 120);
    CHECK_EQ_INT(s.output_tokens, 35);

    s = span_with("{\"gen_ai.provider.name\":\"anthropic\",\"gen_ai.system\":\"old\","
                  "\"gen_ai.usage.prompt_tokens\":7.0,\"gen_ai.usage.completion_tokens\":8}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.llm_provider, "anthropic");
    CHECK_EQ_INT(s.input_tokens, 7);
    CHECK_EQ_INT(s.output_tokens, 8);

    s = span_with("{\"llm.vendor\":\"anthropic\",\"llm.model\":\"claude\",\"llm.input_tokens\":12,"
                  "\"llm.output_tokens\":30}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.llm_provider, "anthropic");
    CHECK_EQ_PSTR(s.llm_model, "claude");
    CHECK_EQ_INT(s.input_tokens, 12);
    CHECK_EQ_INT(s.output_tokens, 30);

    s = span_with("{\"llm.vendor\":\"openai\",\"llm.prompt_tokens\":5,\"llm.completion_tokens\":6}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(s.input_tokens, 5);
    CHECK_EQ_INT(s.output_tokens, 6);

    s = span_with("{\"llm.provider\":\"openai\",\"llm.model_name\":\"gpt\",\"llm.token_count.prompt\":1,"
                  "\"llm.token_count.completion\":2}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.llm_model, "gpt");
    CHECK_EQ_INT(s.input_tokens, 1);
    CHECK_EQ_INT(s.output_tokens, 2);

    s = span_with("{\"llm.usage.prompt_tokens\":3,\"llm.usage.completion_tokens\":4}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(s.input_tokens, 3);
    CHECK_EQ_INT(s.output_tokens, 4);

    s = span_with("{\"http.method\":\"GET\"}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(s.input_tokens, -1);
    CHECK_EQ_INT(s.llm_model.n, 0);
    CHECK_EQ_INT(s.llm_request_model.n, 0);
    CHECK_EQ_INT(s.cache_read_tokens, -1);
    CHECK_EQ_INT(s.cache_write_tokens, -1);
    CHECK_EQ_INT(s.reasoning_tokens, -1);
    CHECK_EQ_INT(s.session_id.n, 0);
    CHECK_EQ_INT(s.user_id.n, 0);
}

/* The response model wins (prices are per served model); the request model is kept. */
static void test_models(void)
{
    pc_span s = span_with("{\"gen_ai.request.model\":\"gpt-4o-mini\","
                          "\"gen_ai.response.model\":\"gpt-4o-mini-2024-07-18\"}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.llm_model, "gpt-4o-mini-2024-07-18");
    CHECK_EQ_PSTR(s.llm_request_model, "gpt-4o-mini");

    s = span_with("{\"llm.model\":\"claude-sonnet-4-5\","
                  "\"llm.response.model\":\"claude-sonnet-4-5-20250929\"}"); /* Prela SDK */
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.llm_model, "claude-sonnet-4-5-20250929");
    CHECK_EQ_PSTR(s.llm_request_model, "claude-sonnet-4-5");

    s = span_with("{\"openinference.span.kind\":\"EMBEDDING\","
                  "\"embedding.model_name\":\"text-embedding-3-small\"}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(s.span_type, PC_TYPE_EMBEDDING);
    CHECK_EQ_PSTR(s.llm_model, "text-embedding-3-small");
    CHECK_EQ_INT(s.llm_request_model.n, 0);

    s = span_with("{\"gen_ai.request.model\":\"gpt-4.1\"}"); /* no response: request model */
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.llm_model, "gpt-4.1");
    CHECK_EQ_PSTR(s.llm_request_model, "gpt-4.1");
}

/* Lookups go through a summary of the span's keys (normalize.c, keyed): many
 * keys, keys of every length, and near-misses of the keys read change nothing. */
static void test_many_keys(void)
{
    pc_buf j = PC_BUF_INIT;
    char fill[600];
    memset(fill, 'x', sizeof(fill));
    pc_buf_puts(&j, "{");
    for (int i = 0; i < 600; i++) /* every length 1..600, letters that vary */
        pc_buf_printf(&j, "\"%.*s%c\":%d,", i, fill, 'a' + i % 26, i);
    for (int i = 0; i < 600; i++)
        pc_buf_printf(&j, "\"k%dx%c\":1,", i, 'a' + i % 26);
    pc_buf_puts(&j, "\"gen_ai.request.mode\":\"no\",\"gen_ai.usage.input_token\":7,"
                    "\"llm.token_count.prompt\":\"12\",\"session.id\":\"s-1\","
                    "\"user.ids\":\"no\",\"llm.model_name\":\"m-last\"}");
    pc_span s = span_with_n(j.data, j.len);
    CHECK_EQ_INT((int)s.attrs.n, 1206);
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(s.span_type, PC_TYPE_LLM);
    CHECK_EQ_PSTR(s.llm_model, "m-last");
    CHECK_EQ_INT((int)s.input_tokens, 12);
    CHECK_EQ_PSTR(s.session_id, "s-1");
    CHECK_EQ_INT((int)s.user_id.n, 0);
    pc_buf_free(&j);
}

static void test_token_details(void)
{
    pc_span s = span_with("{\"gen_ai.usage.input_tokens\":1000,\"gen_ai.usage.output_tokens\":500,"
                          "\"gen_ai.usage.cache_read.input_tokens\":800,"
                          "\"gen_ai.usage.cache_creation.input_tokens\":\"100\","
                          "\"gen_ai.usage.reasoning.output_tokens\":300.0}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(s.input_tokens, 1000);
    CHECK_EQ_INT(s.cache_read_tokens, 800);
    CHECK_EQ_INT(s.cache_write_tokens, 100);
    CHECK_EQ_INT(s.reasoning_tokens, 300);

    s = span_with("{\"gen_ai.usage.cache_read_input_tokens\":7,"
                  "\"gen_ai.usage.cache_creation_input_tokens\":8,"
                  "\"gen_ai.usage.reasoning_tokens\":9}"); /* Anthropic/OpenLLMetry style */
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(s.cache_read_tokens, 7);
    CHECK_EQ_INT(s.cache_write_tokens, 8);
    CHECK_EQ_INT(s.reasoning_tokens, 9);

    s = span_with("{\"llm.token_count.prompt_details.cache_read\":1,"
                  "\"llm.token_count.prompt_details.cache_write\":2,"
                  "\"llm.token_count.completion_details.reasoning\":3}"); /* OpenInference */
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(s.cache_read_tokens, 1);
    CHECK_EQ_INT(s.cache_write_tokens, 2);
    CHECK_EQ_INT(s.reasoning_tokens, 3);

    s = span_with("{\"gen_ai.usage.details.reasoning_tokens\":-4}"); /* negative: unknown */
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(s.reasoning_tokens, -1);
}

/* Sessions and users from every dialect's key; the span's own wins over its resource's. */
static void test_session_and_user(void)
{
    static const char *const sessions[] = {
        "gen_ai.conversation.id", "session.id", "langfuse.session.id", "langsmith.trace.session_id",
        "traceloop.association.properties.session_id",
        "traceloop.association.properties.conversation_id",
        "traceloop.association.properties.thread_id", NULL};
    char json[200];
    for (const char *const *k = sessions; *k; k++) {
        snprintf(json, sizeof(json), "{\"%s\":\"conv-42\"}", *k);
        pc_span s = span_with(json);
        pc_normalize_span(&s, PC_STR_LIT("unknown"));
        CHECK_EQ_PSTR(s.session_id, "conv-42");
    }
    static const char *const users[] = {"user.id", "enduser.id", "langfuse.user.id",
                                        "langsmith.metadata.user_id",
                                        "traceloop.association.properties.user_id", NULL};
    for (const char *const *k = users; *k; k++) {
        snprintf(json, sizeof(json), "{\"%s\":\"alice\"}", *k);
        pc_span s = span_with(json);
        pc_normalize_span(&s, PC_STR_LIT("unknown"));
        CHECK_EQ_PSTR(s.user_id, "alice");
    }
    /* an app span that only names its conversation is not a model call */
    pc_span app = span_with("{\"gen_ai.conversation.id\":\"c\",\"user.id\":\"u\"}");
    pc_normalize_span(&app, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(app.span_type, PC_TYPE_CUSTOM);
    app = span_with("{\"gen_ai.conversation.id\":\"c\",\"gen_ai.system\":\"openai\"}");
    pc_normalize_span(&app, PC_STR_LIT("unknown"));
    CHECK_EQ_INT(app.span_type, PC_TYPE_LLM);
    /* first key in the list wins; numbers are not ids */
    pc_span s = span_with("{\"session.id\":\"b\",\"gen_ai.conversation.id\":\"a\",\"user.id\":7}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.session_id, "a");
    CHECK_EQ_INT(s.user_id.n, 0);
    /* the resource's when the span has none */
    pc_value rv;
    pc_json_error e;
    const char *r = "{\"session.id\":\"from-resource\",\"user.id\":\"bob\"}";
    CHECK(pc_json_parse(A, r, strlen(r), &rv, &e) == 0);
    pc_attrs res = {rv.map.kv, rv.map.n};
    s = span_with("{\"user.id\":\"carol\"}");
    s.resource = &res;
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.session_id, "from-resource");
    CHECK_EQ_PSTR(s.user_id, "carol");
    /* ids up to PC_SPAN_GROUP_ID_MAX bytes are promoted, longer ones are not */
    char big[600];
    for (int n = PC_SPAN_GROUP_ID_MAX - 1; n <= PC_SPAN_GROUP_ID_MAX + 1; n++) {
        snprintf(big, sizeof(big), "{\"session.id\":\"%0*d\",\"user.id\":\"%0*d\"}", n, 7, n,
                 8);
        s = span_with(big);
        pc_normalize_span(&s, PC_STR_LIT("unknown"));
        CHECK_EQ_INT((int)s.session_id.n, n <= PC_SPAN_GROUP_ID_MAX ? n : 0);
        CHECK_EQ_INT((int)s.user_id.n, n <= PC_SPAN_GROUP_ID_MAX ? n : 0);
        CHECK_EQ_INT((int)s.attrs.n, 2); /* the attributes stay as sent */
    }
}

static void test_service_name(void)
{
    pc_span s = span_with("{\"service.name\":\"from-span\"}");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.service_name, "from-span");
    pc_value rv;
    pc_json_error e;
    const char *r = "{\"service.name\":\"from-resource\"}";
    pc_json_parse(A, r, strlen(r), &rv, &e);
    pc_attrs res = {rv.map.kv, rv.map.n};
    s.resource = &res;
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.service_name, "from-resource");
    s = span_with("{}");
    s.service_hint = PC_STR_LIT("envelope");
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    CHECK_EQ_PSTR(s.service_name, "envelope");
    s = span_with("{}");
    pc_normalize_span(&s, PC_STR_LIT("fallback"));
    CHECK_EQ_PSTR(s.service_name, "fallback");
}

static int64_t date_ns(int y, int m, int d)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    return (int64_t)timegm(&tm) * 1000000000LL;
}

/* Normalizes a span with attributes |attrs| started at |start| (Unix ns). */
static pc_span priced(const char *attrs, int64_t start)
{
    pc_span s = span_with(attrs);
    s.start_ns = start;
    pc_normalize_span(&s, PC_STR_LIT("unknown"));
    return s;
}

static void test_cost_from_table(void)
{
    /* gpt-4o-mini (0.15 / 0.60, cache read 0.075 per million), OpenAI keys:
     * 1000 input incl. 400 cached, 500 output incl. 100 reasoning:
     *   input (600*0.15 + 400*0.075)/1e6 = 120e-6, output 500*0.60/1e6 = 300e-6 */
    pc_span s = priced("{\"gen_ai.operation.name\":\"chat\",\"gen_ai.system\":\"openai\","
                       "\"gen_ai.request.model\":\"gpt-4o-mini\","
                       "\"gen_ai.response.model\":\"gpt-4o-mini-2024-07-18\","
                       "\"gen_ai.usage.input_tokens\":1000,\"gen_ai.usage.output_tokens\":500,"
                       "\"gen_ai.usage.cache_read.input_tokens\":400,"
                       "\"gen_ai.usage.reasoning.output_tokens\":100}",
                       date_ns(2025, 6, 1));
    CHECK_EQ_INT(s.cost_source, PC_COST_TABLE);
    CHECK_NEAR(s.cost_input_usd, 120e-6);
    CHECK_NEAR(s.cost_output_usd, 300e-6);
    CHECK_NEAR(s.cost_usd, 420e-6);
    CHECK_EQ_STR(pc_cost_source_name(s.cost_source), "table");

    /* Anthropic through OpenInference keys: claude-sonnet-4-5 (3 / 15, read 0.30,
     * write 3.75): 10000 input = 2000 + 6000 read + 2000 write, 1000 output:
     *   (2000*3 + 6000*0.3 + 2000*3.75)/1e6 = 0.0153; 1000*15/1e6 = 0.015 */
    s = priced("{\"openinference.span.kind\":\"LLM\",\"llm.provider\":\"anthropic\","
               "\"llm.model_name\":\"claude-sonnet-4-5-20250929\",\"llm.token_count.prompt\":10000,"
               "\"llm.token_count.completion\":1000,"
               "\"llm.token_count.prompt_details.cache_read\":6000,"
               "\"llm.token_count.prompt_details.cache_write\":2000}",
               date_ns(2025, 12, 1));
    CHECK_EQ_INT(s.cost_source, PC_COST_TABLE);
    CHECK_NEAR(s.cost_usd, 0.0303);
    CHECK_NEAR(s.cost_input_usd, 0.0153);

    /* the span's start time picks the price: deepseek-chat, 1,000,000 input
     * incl. 200,000 cache hits, 100,000 output:
     *   2025-03 (0.27 / 1.10, hit 0.07): 800k*0.27 + 200k*0.07 = 0.23; 100k*1.10 = 0.11
     *   2025-10 (0.28 / 0.42, hit 0.028): 0.224 + 0.0056 = 0.2296; 0.042 */
    const char *ds = "{\"gen_ai.operation.name\":\"chat\",\"gen_ai.provider.name\":\"deepseek\","
                     "\"gen_ai.request.model\":\"deepseek-chat\","
                     "\"gen_ai.usage.input_tokens\":1000000,"
                     "\"gen_ai.usage.output_tokens\":100000,"
                     "\"gen_ai.usage.cache_read_input_tokens\":200000}";
    s = priced(ds, date_ns(2025, 3, 1));
    CHECK_NEAR(s.cost_input_usd, 0.23);
    CHECK_NEAR(s.cost_output_usd, 0.11);
    CHECK_NEAR(s.cost_usd, 0.34);
    s = priced(ds, date_ns(2025, 10, 1));
    CHECK_NEAR(s.cost_usd, 0.2296 + 0.042);

    /* embeddings: text-embedding-3-small at 0.02 per million, 5000 tokens = 1e-4 */
    s = priced("{\"gen_ai.operation.name\":\"embeddings\",\"gen_ai.request.model\":"
               "\"text-embedding-3-small\",\"gen_ai.usage.input_tokens\":5000}",
               date_ns(2025, 1, 1));
    CHECK_EQ_INT(s.span_type, PC_TYPE_EMBEDDING);
    CHECK_NEAR(s.cost_usd, 1e-4);
    CHECK_NEAR(s.cost_output_usd, 0);

    /* a priced model without any token count: no cost (not $0) */
    s = priced("{\"gen_ai.operation.name\":\"chat\",\"gen_ai.request.model\":\"gpt-4o\"}", 0);
    CHECK_EQ_INT(s.cost_source, PC_COST_NONE);
    CHECK(isnan(s.cost_usd));
    /* not an LLM or embedding span: never priced, even with usage on it */
    s = priced("{\"gen_ai.operation.name\":\"invoke_agent\",\"gen_ai.request.model\":\"gpt-4o\","
               "\"gen_ai.usage.input_tokens\":1000,\"gen_ai.usage.cost\":1.5}",
               0);
    CHECK_EQ_INT(s.span_type, PC_TYPE_AGENT);
    CHECK_EQ_INT(s.cost_source, PC_COST_NONE);
    CHECK(isnan(s.cost_usd) && isnan(s.cost_input_usd) && isnan(s.cost_output_usd));
}

static void test_cost_sent(void)
{
    const char *base = "{\"gen_ai.operation.name\":\"chat\",\"gen_ai.request.model\":\"gpt-4o\","
                       "\"gen_ai.usage.input_tokens\":1000,\"gen_ai.usage.output_tokens\":100";
    char a[1024];
    /* a total sent wins over the table (gpt-4o would be 0.0035); no split */
    snprintf(a, sizeof(a), "%s,\"gen_ai.usage.cost\":0.5}", base);
    pc_span s = priced(a, 0);
    CHECK_EQ_INT(s.cost_source, PC_COST_SENT);
    CHECK_NEAR(s.cost_usd, 0.5);
    CHECK(isnan(s.cost_input_usd) && isnan(s.cost_output_usd));
    /* OpenInference: total and split; a numeric string counts */
    snprintf(a, sizeof(a),
             "%s,\"llm.cost.total\":\"0.75\",\"llm.cost.prompt\":0.25,\"llm.cost.completion\":0.5}",
             base);
    s = priced(a, 0);
    CHECK_EQ_INT(s.cost_source, PC_COST_SENT);
    CHECK_NEAR(s.cost_usd, 0.75);
    CHECK_NEAR(s.cost_input_usd, 0.25);
    CHECK_NEAR(s.cost_output_usd, 0.5);
    /* a split without a total: total = input + output */
    snprintf(a, sizeof(a), "%s,\"llm.cost.prompt\":1,\"llm.cost.completion\":2}", base);
    s = priced(a, 0);
    CHECK_EQ_INT(s.cost_source, PC_COST_SENT);
    CHECK_NEAR(s.cost_usd, 3);
    /* Langfuse's cost_details object (a JSON string) */
    snprintf(a, sizeof(a),
             "%s,\"langfuse.observation.cost_details\":\"{\\\"input\\\":0.1,\\\"output\\\":0.2,"
             "\\\"total\\\":0.3}\"}",
             base);
    s = priced(a, 0);
    CHECK_EQ_INT(s.cost_source, PC_COST_SENT);
    CHECK_NEAR(s.cost_usd, 0.3);
    CHECK_NEAR(s.cost_output_usd, 0.2);
    /* nonsense sent (negative, text, NaN string, half a split): the table prices it.
     * gpt-4o: 1000*2.5/1e6 + 100*10/1e6 = 0.0025 + 0.001 = 0.0035 */
    static const char *const bad[] = {"\"gen_ai.usage.cost\":-1", "\"gen_ai.usage.cost\":\"cheap\"",
                                      "\"llm.cost.total\":\"nan\"", "\"llm.cost.prompt\":1",
                                      "\"langfuse.observation.cost_details\":\"{not json\"", NULL};
    for (const char *const *b = bad; *b; b++) {
        snprintf(a, sizeof(a), "%s,%s}", base, *b);
        s = priced(a, 0);
        CHECK_EQ_INT(s.cost_source, PC_COST_TABLE);
        CHECK_NEAR(s.cost_usd, 0.0035);
    }
}

typedef struct unpriced_seen {
    int64_t spans;
} unpriced_seen;

static void count_unpriced(const char *provider, const char *model, int64_t spans, void *ud)
{
    if (!strcmp(provider, "acme") && !strcmp(model, "acme-large-9"))
        ((unpriced_seen *)ud)->spans = spans;
}

static void test_cost_unpriced(void)
{
    pc_prices_unpriced_reset();
    for (int i = 0; i < 3; i++) {
        pc_span s = priced("{\"gen_ai.operation.name\":\"chat\",\"gen_ai.system\":\"acme\","
                           "\"gen_ai.request.model\":\"acme-large-9\","
                           "\"gen_ai.usage.input_tokens\":10}",
                           0);
        CHECK_EQ_INT(s.cost_source, PC_COST_NONE);
        CHECK(isnan(s.cost_usd));
    }
    /* a span that sent its own cost is not unpriced */
    priced("{\"gen_ai.operation.name\":\"chat\",\"gen_ai.system\":\"acme\","
           "\"gen_ai.request.model\":\"acme-large-9\",\"gen_ai.usage.cost\":0.1}",
           0);
    unpriced_seen u = {0};
    pc_prices_unpriced_each(count_unpriced, &u);
    CHECK_EQ_INT(u.spans, 3);
    pc_prices_unpriced_reset();
}

/* The processor with a prices: file: its entries price the batch. */
static double sink_cost;
static pc_result cost_sink(void *ctx, pc_batch *b)
{
    (void)ctx;
    sink_cost = b->spans[0].cost_usd;
    pc_batch_unref(b);
    return PC_OK;
}

static void test_processor_prices(void)
{
    char dir[] = "/tmp/test_normalize.XXXXXX", path[256], yaml[1024], err[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/prices.tsv", dir);
    FILE *f = fopen(path, "w");
    fputs("# operator prices\nacme  acme-large-9  2020-01-01  2  4  -  -  -\n", f);
    fclose(f);
    snprintf(yaml, sizeof(yaml),
             "receivers:\n  prela:\nprocessors:\n  normalize:\n    prices: %s\n"
             "exporters:\n  local:\nservice:\n  pipelines:\n    traces:\n"
             "      receivers: [prela]\n      processors: [normalize]\n      exporters: [local]\n",
             path);
    pc_config *c = pc_config_load(yaml, strlen(yaml), "t", err, sizeof(err));
    CHECK(c != NULL);
    if (!c) return;
    pc_consumer next = {cost_sink, NULL, PC_SIG_BIT(PC_SIGNAL_TRACES)};
    const pc_config_component *cc = pc_config_find(c, PC_PROCESSOR, "normalize");
    void *ctx = pc_normalize_processor_ops.create("normalize", cc->cfg, &next);
    CHECK(ctx != NULL);
    /* 1000 input * 2 + 500 output * 4, per million = 0.004 */
    const char *attrs = "{\"gen_ai.operation.name\":\"chat\",\"gen_ai.system\":\"acme\","
                        "\"gen_ai.request.model\":\"acme-large-9\","
                        "\"gen_ai.usage.input_tokens\":1000,"
                        "\"gen_ai.usage.output_tokens\":500}";
    pc_batch *b = pc_batch_create(NULL);
    pc_span *s = pc_batch_add(b);
    *s = span_with(attrs);
    if (ctx) {
        CHECK_EQ_INT(pc_normalize_processor_ops.consume(ctx, b), PC_OK);
        CHECK_NEAR(sink_cost, 0.004);
        /* SIGHUP's reload reaches the processor's file */
        f = fopen(path, "w");
        fputs("acme  acme-large-9  2020-01-01  4  8  -  -  -\n", f);
        fclose(f);
        CHECK_EQ_INT(pc_prices_reload_all(), 0);
        b = pc_batch_create(NULL);
        s = pc_batch_add(b);
        *s = span_with(attrs);
        CHECK_EQ_INT(pc_normalize_processor_ops.consume(ctx, b), PC_OK);
        CHECK_NEAR(sink_cost, 0.008);
        pc_normalize_processor_ops.destroy(ctx);
    } else {
        pc_batch_unref(b);
    }
    /* a bad file fails the processor's creation (startup) */
    f = fopen(path, "w");
    fputs("acme  acme-large-9  2020-01-01  4  8  -  -\n", f);
    fclose(f);
    CHECK(pc_normalize_processor_ops.create("normalize", cc->cfg, &next) == NULL);
    pc_config_free(c);
    unlink(path);
    rmdir(dir);
}

/* A recording sink: remembers what reached it. */
static int sink_calls;
static pc_span_type sink_type;
static pc_result sink(void *ctx, pc_batch *b)
{
    (void)ctx;
    sink_calls++;
    sink_type = b->spans[0].span_type;
    pc_batch_unref(b);
    return PC_OK;
}

static void test_processor_ops(void)
{
    char err[256];
    const char *yaml = "receivers:\n  prela:\nprocessors:\n  normalize:\n    default_service_name: svc\n"
                       "exporters:\n  local:\nservice:\n  pipelines:\n    traces:\n"
                       "      receivers: [prela]\n      processors: [normalize]\n      exporters: [local]\n";
    pc_config *c = pc_config_load(yaml, strlen(yaml), "t", err, sizeof(err));
    CHECK(c != NULL);
    if (!c) return;
    pc_consumer next = {sink, NULL, PC_SIG_BIT(PC_SIGNAL_TRACES)};
    const pc_config_component *cc = pc_config_find(c, PC_PROCESSOR, "normalize");
    void *ctx = pc_normalize_processor_ops.create("normalize", cc->cfg, &next);
    pc_batch *b = pc_batch_create(NULL);
    pc_span *s = pc_batch_add(b);
    s->span_type_text = PC_STR_LIT("tool");
    CHECK_EQ_INT(pc_normalize_processor_ops.consume(ctx, b), PC_OK);
    CHECK_EQ_INT(sink_calls, 1);
    CHECK_EQ_INT(sink_type, PC_TYPE_TOOL);
    pc_normalize_processor_ops.destroy(ctx);
    pc_config_free(c);
}

/* The sink of test_processor_messages: keeps the batch for the test to read. */
static pc_batch *kept;
static pc_result keep_sink(void *ctx, pc_batch *b)
{
    (void)ctx;
    kept = b;
    return PC_OK;
}

/* input_messages / output_messages on normalized spans: the processor fills
 * them in the batch's arena (messages.h has the rules); a span without
 * prompts gets none; pc_normalize_span (no arena) leaves them alone; a second
 * pass over the same batch gives the same text. */
static void test_processor_messages(void)
{
    char err[256];
    const char *yaml = "receivers:\n  prela:\nprocessors:\n  normalize:\n"
                       "exporters:\n  local:\nservice:\n  pipelines:\n    traces:\n"
                       "      receivers: [prela]\n      processors: [normalize]\n      exporters: [local]\n";
    pc_config *c = pc_config_load(yaml, strlen(yaml), "t", err, sizeof(err));
    CHECK(c != NULL);
    if (!c) return;
    pc_consumer next = {keep_sink, NULL, PC_SIG_BIT(PC_SIGNAL_TRACES)};
    const pc_config_component *cc = pc_config_find(c, PC_PROCESSOR, "normalize");
    void *ctx = pc_normalize_processor_ops.create("normalize", cc->cfg, &next);
    pc_batch *b = pc_batch_create(NULL);
    pc_span *llm = pc_batch_add(b);
    static pc_kv kv[] = {
        {PC_STR_LIT("gen_ai.operation.name"), {.type = PC_V_STR, .s = PC_STR_LIT("chat")}},
        {PC_STR_LIT("gen_ai.input.messages"),
         {.type = PC_V_STR,
          .s = PC_STR_LIT("[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":"
                          "\"It's \\\"quoted\\\"; DROP TABLE x; --\"}]}]")}},
        {PC_STR_LIT("gen_ai.completion.0.content"), {.type = PC_V_STR, .s = PC_STR_LIT("ok")}},
        {PC_STR_LIT("gen_ai.completion.0.finish_reason"), {.type = PC_V_STR, .s = PC_STR_LIT("stop")}},
    };
    llm->attrs = (pc_attrs){kv, sizeof(kv) / sizeof(kv[0])};
    pc_span *plain = pc_batch_add(b);
    plain->span_type_text = PC_STR_LIT("tool");
    plain->input_messages = PC_STR_LIT("stale");
    CHECK_EQ_INT(pc_normalize_processor_ops.consume(ctx, pc_batch_ref(b)), PC_OK);
    CHECK(kept == b);
    CHECK_EQ_INT(b->spans[0].span_type, PC_TYPE_LLM);
    CHECK_EQ_PSTR(b->spans[0].input_messages,
                  "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":"
                  "\"It's \\\"quoted\\\"; DROP TABLE x; --\"}]}]");
    CHECK_EQ_PSTR(b->spans[0].output_messages,
                  "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"ok\"}],"
                  "\"finish_reason\":\"stop\"}]");
    CHECK_EQ_INT(b->spans[1].input_messages.n, 0);
    CHECK_EQ_INT(b->spans[1].output_messages.n, 0);
    pc_str first = b->spans[0].input_messages;
    CHECK_EQ_INT(pc_normalize_processor_ops.consume(ctx, pc_batch_ref(b)), PC_OK);
    CHECK(b->spans[0].input_messages.n == first.n &&
          memcmp(b->spans[0].input_messages.p, first.p, first.n) == 0);
    pc_normalize_span(&b->spans[0], PC_STR_LIT("unknown"));
    CHECK(b->spans[0].input_messages.p != NULL);
    pc_batch_unref(b); /* the two references the sink kept, and ours */
    pc_batch_unref(b);
    pc_batch_unref(b);
    pc_normalize_processor_ops.destroy(ctx);
    pc_config_free(c);
}

int main(void)
{
    A = pc_arena_create(4096);
    RUN(test_span_types);
    RUN(test_status);
    RUN(test_llm_fields);
    RUN(test_workflow_steps);
    RUN(test_langgraph);
    RUN(test_models);
    RUN(test_many_keys);
    RUN(test_token_details);
    RUN(test_session_and_user);
    RUN(test_service_name);
    RUN(test_processor_ops);
    RUN(test_cost_from_table);
    RUN(test_cost_sent);
    RUN(test_cost_unpriced);
    RUN(test_processor_prices);
    RUN(test_processor_messages);
    pc_arena_destroy(A);
    return CHECK_DONE();
}
