/*
 * test_normalize.c - the normalize processor (src/processors/normalize.c):
 * span_type rules, status mapping, service name, LLM field promotion, and the
 * processor passing the batch on through its ops.
 */
#include "check.h"
#include "json.h"
#include "processors/normalize.h"

static pc_arena *A;

/* Builds a span whose attributes are the JSON object |attrs|. */
static pc_span span_with(const char *attrs)
{
    pc_span s;
    memset(&s, 0, sizeof(s));
    s.resource = &pc_empty_attrs;
    s.scope = &pc_empty_scope;
    pc_value v;
    pc_json_error e;
    if (pc_json_parse(A, attrs, strlen(attrs), &v, &e) == 0 && v.type == PC_V_MAP) {
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

int main(void)
{
    A = pc_arena_create(4096);
    RUN(test_span_types);
    RUN(test_status);
    RUN(test_llm_fields);
    RUN(test_workflow_steps);
    RUN(test_models);
    RUN(test_token_details);
    RUN(test_session_and_user);
    RUN(test_service_name);
    RUN(test_processor_ops);
    pc_arena_destroy(A);
    return CHECK_DONE();
}
