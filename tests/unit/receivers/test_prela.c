/*
 * test_prela.c - decoding Prela span objects (src/receivers/prela.c): what the
 * real SDK sends, the seed README's example, and field errors that name the field.
 */
#include "check.h"
#include "json.h"
#include "formats/prela_json.h"
#include "receivers/prela.h"

#include <stdint.h>

static pc_batch *B;

static int decode(const char *json, pc_str trace_id, char *err)
{
    pc_value v;
    pc_json_error e;
    if (pc_json_parse(B->arena, json, strlen(json), &v, &e)) {
        snprintf(err, 256, "json: %s", e.msg);
        return -2;
    }
    return pc_prela_json_decode_sdk_span(B, &v, "spans[0]", trace_id, PC_STR_LIT("env-svc"),
                                PC_STR_LIT("proj"), err, 256);
}

static void test_sdk_span(void)
{
    char err[256] = "";
    const char *sdk =
        "{\"span_id\": \"6fa459ea-ee8a-4ca4-894e-db77e160355e\", \"trace_id\": "
        "\"1b4e28ba-2fa1-41d2-883f-0016d3cca427\", \"parent_span_id\": null, \"name\": "
        "\"anthropic.messages.create\", \"span_type\": \"llm\", \"started_at\": "
        "\"2025-01-27T10:00:00.100000+00:00Z\", \"ended_at\": \"2025-01-27T10:00:00.900000+00:00Z\", "
        "\"duration_ms\": 800.0, \"status\": \"success\", \"status_message\": null, \"attributes\": "
        "{\"service.name\": \"my-agent\", \"llm.input_tokens\": 12, \"score\": NaN, \"nested\": "
        "{\"a\": [1, 2]}}, \"events\": [{\"name\": \"llm.request\", \"timestamp\": "
        "\"2025-01-27T10:00:00.100050+00:00Z\", \"attributes\": {\"messages\": []}}]}";
    CHECK_EQ_INT(decode(sdk, PC_STR_NULL, err), 0);
    pc_span *s = &B->spans[B->n - 1];
    CHECK_EQ_PSTR(s->span_id, "6fa459ea-ee8a-4ca4-894e-db77e160355e");
    CHECK_EQ_PSTR(s->trace_id, "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
    CHECK_EQ_INT(s->parent_id.n, 0);
    CHECK_EQ_PSTR(s->span_type_text, "llm");
    CHECK_EQ_INT(s->start_ns, 1737972000100000000LL);
    CHECK_EQ_INT(s->end_ns, 1737972000900000000LL);
    CHECK_EQ_INT(s->attrs.n, 4);
    CHECK_EQ_INT(s->n_events, 1);
    CHECK_EQ_INT(s->events[0].time_ns, 1737972000100050000LL);
    CHECK_EQ_PSTR(s->events[0].name, "llm.request");
    CHECK_EQ_PSTR(s->project_id, "proj");
    CHECK_EQ_PSTR(s->service_hint, "env-svc");
    CHECK_EQ_INT(s->source, PC_SOURCE_PRELA);
    CHECK_EQ_INT(s->input_tokens, -1); /* derived fields are normalize's job */
}

static void test_seed_example(void)
{
    char err[256] = "";
    const char *seed = "{\"span_id\": \"span-1\", \"trace_id\": \"test-trace-123\", \"name\": "
                       "\"test-operation\", \"span_type\": \"LLM\", \"started_at\": "
                       "\"2025-01-27T10:00:00Z\", \"ended_at\": \"2025-01-27T10:00:01Z\", "
                       "\"duration_ms\": 1000, \"status\": \"SUCCESS\", \"attributes\": {\"model\": "
                       "\"gpt-4\"}, \"events\": []}";
    CHECK_EQ_INT(decode(seed, PC_STR_LIT("test-trace-123"), err), 0);
    pc_span *s = &B->spans[B->n - 1];
    CHECK_EQ_PSTR(s->span_id, "span-1");
    CHECK_EQ_PSTR(s->status_text, "SUCCESS");
    CHECK_EQ_INT(s->end_ns - s->start_ns, 1000000000LL);
}

static void test_duration_without_end(void)
{
    char err[256] = "";
    CHECK_EQ_INT(decode("{\"span_id\":\"a\",\"trace_id\":\"t\",\"started_at\":\"2025-01-27T10:00:00\","
                        "\"duration_ms\":250.5}",
                        PC_STR_NULL, err),
                 0);
    pc_span *s = &B->spans[B->n - 1];
    CHECK_EQ_INT(s->end_ns - s->start_ns, 250500000LL);
}

static void test_field_errors(void)
{
    struct {
        const char *json;
        const char *expect;
    } cases[] = {
        {"{\"trace_id\":\"t\"}", "spans[0].span_id: required"},
        {"{\"span_id\":\"s\"}", "spans[0].trace_id: required"},
        {"{\"span_id\":\"\",\"trace_id\":\"t\"}", "spans[0].span_id: required"},
        {"{\"span_id\":\"s\",\"trace_id\":\"t\",\"started_at\":\"soon\"}",
         "spans[0].started_at: \"soon\" is not an ISO-8601 timestamp"},
        {"{\"span_id\":\"s\",\"trace_id\":\"t\",\"attributes\":[1]}",
         "spans[0].attributes: expected an object"},
        {"{\"span_id\":\"s\",\"trace_id\":\"t\",\"events\":{}}", "spans[0].events: expected a list"},
        {"{\"span_id\":\"s\",\"trace_id\":\"t\",\"events\":[{\"timestamp\":\"x\"}]}",
         "spans[0].events[0].timestamp"},
        {"{\"span_id\":{\"x\":1},\"trace_id\":\"t\"}", "spans[0].span_id: expected a string"},
        {"[1]", "spans[0]: expected a span object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        size_t before = B->n;
        CHECK_EQ_INT(decode(cases[i].json, PC_STR_NULL, err), -1);
        CHECK_EQ_INT(B->n, before); /* nothing half-added */
        if (!strstr(err, cases[i].expect))
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, cases[i].expect);
        CHECK(strstr(err, cases[i].expect) != NULL);
    }
}

/* The fuzz findings: every out-of-range time is a 400 naming the field, never UB. */
static void test_time_range(void)
{
    struct {
        const char *json;
        const char *expect;
    } cases[] = {
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"started_at\":10000000000}",
         "spans[0].started_at: out of range (1970-01-01T00:00:00Z .. 2262-04-11T23:47:16Z)"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"started_at\":10000000000.5}",
         "spans[0].started_at: out of range"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"started_at\":1e300}",
         "spans[0].started_at: out of range"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"started_at\":-1}",
         "spans[0].started_at: out of range"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"started_at\":\"1969-12-31T23:59:59Z\"}",
         "spans[0].started_at: out of range"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"ended_at\":\"1678-01-01T00:00:00Z\"}",
         "spans[0].ended_at: out of range"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"started_at\":\"1678-01-01T00:00:00Z\","
         "\"ended_at\":\"2262-01-01T00:00:00Z\"}",
         "spans[0].started_at: out of range"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"events\":[{\"name\":\"e\",\"timestamp\":"
         "\"1969-12-31T23:59:59Z\"}]}",
         "spans[0].events[0].timestamp: out of range"},
        {"{\"span_id\":\"a\",\"trace_id\":\"2\",\"duration_ms\":10092233701582}",
         "spans[0].duration_ms: out of range"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"started_at\":\"2262-04-11T00:00:00Z\","
         "\"duration_ms\":999999999999.0}",
         "spans[0].duration_ms: out of range"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"duration_ms\":Infinity}",
         "spans[0].duration_ms: out of range"},
        /* found by fuzz_prela: otlp_proto would cut the id at the NUL */
        {"{\"span_id\":\"a\",\"trace_id\":\"t-1\\u0000?24\"}",
         "spans[0].trace_id: U+0000 in a string is not supported"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"attributes\":{\"k\":[{\"x\":\"\\u0000\"}]}}",
         "spans[0].attributes.k: U+0000 in a string is not supported"},
        {"{\"span_id\":\"a\",\"trace_id\":\"b\",\"events\":[{\"name\":\"e\\u0000\"}]}",
         "spans[0].events[0].name: U+0000 in a string is not supported"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        size_t before = B->n;
        CHECK_EQ_INT(decode(cases[i].json, PC_STR_NULL, err), -1);
        CHECK_EQ_INT(B->n, before);
        if (!strstr(err, cases[i].expect))
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, cases[i].expect);
        CHECK(strstr(err, cases[i].expect) != NULL);
    }
    /* the edges are accepted; an end before the start is kept as sent */
    char err[256] = "";
    CHECK_EQ_INT(decode("{\"span_id\":\"a\",\"trace_id\":\"b\",\"started_at\":0,"
                        "\"ended_at\":\"2262-04-11T23:47:16.854775807Z\"}",
                        PC_STR_NULL, err),
                 0);
    CHECK_EQ_INT(B->spans[B->n - 1].start_ns, 0);
    CHECK_EQ_INT(B->spans[B->n - 1].end_ns, INT64_MAX);
    CHECK_EQ_INT(decode("{\"span_id\":\"a\",\"trace_id\":\"b\",\"started_at\":9223372036,"
                        "\"duration_ms\":0.5}",
                        PC_STR_NULL, err),
                 0);
    CHECK_EQ_INT(B->spans[B->n - 1].end_ns, 9223372036000500000LL);
    CHECK_EQ_INT(decode("{\"span_id\":\"a\",\"trace_id\":\"b\",\"started_at\":"
                        "\"2025-01-27T10:00:01Z\",\"ended_at\":\"2025-01-27T10:00:00Z\","
                        "\"duration_ms\":NaN}",
                        PC_STR_NULL, err),
                 0);
    CHECK_EQ_INT(B->spans[B->n - 1].end_ns - B->spans[B->n - 1].start_ns, -1000000000LL);
}

int main(void)
{
    B = pc_batch_create(NULL);
    B->received_ns = 1;
    RUN(test_sdk_span);
    RUN(test_seed_example);
    RUN(test_duration_without_end);
    RUN(test_field_errors);
    RUN(test_time_range);
    pc_batch_unref(B);
    return CHECK_DONE();
}
