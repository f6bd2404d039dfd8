/*
 * test_messages_hostile.c - the message normalizer (src/processors/messages.c)
 * on hostile input: bad and huge indices, 10,000 messages (bounded, and not
 * quadratic), invalid and deep JSON, quotes / SQL metacharacters / control
 * characters / odd UTF-8, empty content, huge values and the byte bound.
 */
#include "messages_fixture.h"

#include <time.h>

/* -------------------------------------------------------------- hostile */

static void test_indices(void)
{
    /* numeric order (not 0, 10, 2), sparse, the largest index, bad indices ignored */
    pc_span s = extract("{'attributes': {"
                        " 'gen_ai.prompt.10.content': 'ten', 'gen_ai.prompt.2.content': 'two',"
                        " 'gen_ai.prompt.999999999.content': 'max',"
                        " 'gen_ai.prompt.1000000000.content': 'ten digits',"
                        " 'gen_ai.prompt.-1.content': 'negative', 'gen_ai.prompt.x.content': 'x',"
                        " 'gen_ai.prompt.1e3.content': 'exp', 'gen_ai.prompt..content': 'empty',"
                        " 'gen_ai.prompt.0': 'no field', 'gen_ai.prompt.0.content': 'zero',"
                        " 'gen_ai.prompt.2.content': 'duplicate: the first wins',"
                        " 'gen_ai.prompt.3.tool_calls.x.id': 'bad sub index'}}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':'zero'}]},"
                                 "{'role':'user','parts':[{'type':'text','content':'two'}]},"
                                 "{'role':'user','parts':[{'type':'text','content':'ten'}]},"
                                 "{'role':'user','parts':[{'type':'text','content':'max'}]}]");
}

static void test_many_messages(void)
{
    /* 10,000 flattened messages (20,000 attributes): capped, in order, fast */
    size_t n = 10000;
    pc_span s;
    memset(&s, 0, sizeof(s));
    s.resource = &pc_empty_attrs;
    s.scope = &pc_empty_scope;
    s.attrs.kv = pc_arena_calloc(A, 2 * n * sizeof(pc_kv));
    for (size_t i = 0; i < n; i++) { /* keys in reverse order: the sort must put them right */
        size_t k = n - 1 - i;
        char key[64];
        int kl = snprintf(key, sizeof(key), "gen_ai.prompt.%zu.content", k);
        s.attrs.kv[2 * i].key = (pc_str){pc_arena_strndup(A, key, (size_t)kl), (size_t)kl};
        s.attrs.kv[2 * i].value = (pc_value){.type = PC_V_STR, .s = PC_STR_LIT("hello")};
        kl = snprintf(key, sizeof(key), "gen_ai.prompt.%zu.role", k);
        s.attrs.kv[2 * i + 1].key = (pc_str){pc_arena_strndup(A, key, (size_t)kl), (size_t)kl};
        s.attrs.kv[2 * i + 1].value = (pc_value){.type = PC_V_STR, .s = PC_STR_LIT("user")};
    }
    s.attrs.n = 2 * n;
    clock_t t0 = clock();
    pc_messages_extract(&s, A);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    json_t *j = parsed(s.input_messages);
    CHECK_EQ_INT(json_array_size(j), PC_MESSAGES_MAX);
    CHECK(secs < 2.0); /* quadratic would be 2e8 key comparisons */
    json_decref(j);

    /* 10,000 messages in one JSON attribute, each with 300 parts */
    pc_buf b = PC_BUF_INIT;
    pc_buf_lit(&b, "{'attributes': {'gen_ai.output.messages': [");
    for (size_t i = 0; i < n; i++)
        pc_buf_printf(&b, "%s{'role': 'assistant', 'parts': []}", i ? "," : "");
    pc_buf_lit(&b, "], 'gen_ai.input.messages': [{'role': 'user', 'parts': [");
    for (size_t i = 0; i < 300; i++)
        pc_buf_printf(&b, "%s'p%zu'", i ? "," : "", i);
    pc_buf_lit(&b, "]}]}}");
    s = extract(b.data);
    pc_buf_free(&b);
    j = parsed(s.output_messages);
    CHECK_EQ_INT(json_array_size(j), PC_MESSAGES_MAX);
    json_decref(j);
    j = parsed(s.input_messages);
    CHECK_EQ_INT(json_array_size(json_object_get(json_array_get(j, 0), "parts")),
                 PC_MESSAGE_PARTS_MAX);
    json_decref(j);
}

static void test_invalid_and_deep_json(void)
{
    /* invalid JSON: a text part holding the string as sent */
    pc_span s = extract("{'attributes': {'gen_ai.input.messages': '[{\\'role\\': \\'user\\',',"
                        " 'gen_ai.output.messages': '{not json'}}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':"
                                 "'[{\\'role\\': \\'user\\','}]}]");
    CHECK_MSGS(s.output_messages,
               "[{'role':'assistant','parts':[{'type':'text','content':'{not json'}]}]");

    /* JSON deeper than the parser's limit: text; a deep structured tool
     * argument: copied whole */
    pc_buf b = PC_BUF_INIT;
    for (int i = 0; i < 200; i++)
        pc_buf_putc(&b, '[');
    for (int i = 0; i < 200; i++)
        pc_buf_putc(&b, ']');
    pc_span d;
    memset(&d, 0, sizeof(d));
    pc_kv kv = {PC_STR_LIT("gen_ai.input.messages"),
                {.type = PC_V_STR, .s = {pc_arena_strndup(A, b.data, b.len), b.len}}};
    d.attrs = (pc_attrs){&kv, 1};
    pc_messages_extract(&d, A);
    json_t *j = parsed(d.input_messages);
    json_t *content = json_object_get(
        json_array_get(json_object_get(json_array_get(j, 0), "parts"), 0), "content");
    CHECK(json_is_string(content) && strlen(json_string_value(content)) == 400);
    json_decref(j);
    pc_buf_free(&b);

    pc_buf_lit(&b, "{'attributes': {'gen_ai.input.messages': [{'role': 'assistant', 'parts':"
                   " [{'type': 'tool_call', 'name': 'f', 'arguments': ");
    for (int i = 0; i < 40; i++)
        pc_buf_lit(&b, "{'a': ");
    pc_buf_lit(&b, "1");
    for (int i = 0; i < 40; i++)
        pc_buf_putc(&b, '}');
    pc_buf_lit(&b, "}]}]}}");
    s = extract(b.data);
    pc_buf_free(&b);
    j = parsed(s.input_messages);
    json_t *args = json_object_get(
        json_array_get(json_object_get(json_array_get(j, 0), "parts"), 0), "arguments");
    int depth = 0;
    while (json_is_object(args)) {
        args = json_object_get(args, "a");
        depth++;
    }
    CHECK_EQ_INT(depth, 40);
    CHECK(json_is_integer(args));
    json_decref(j);

    /* the shape wrong but valid JSON: a number, an object without messages */
    s = extract("{'attributes': {'gen_ai.input.messages': '42', 'input.value': '{\\'a\\': 1}'}}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':'42'}]}]");
}

static void test_odd_text(void)
{
    /* quotes, backslashes, SQL metacharacters, control characters: kept exactly */
    const char *evil = "'; DROP TABLE spans; -- \"quoted\" \\ back\\slash %s %n \x01\x1f\t\n";
    pc_span s;
    memset(&s, 0, sizeof(s));
    pc_kv kv[2] = {
        {PC_STR_LIT("gen_ai.prompt.0.content"), {.type = PC_V_STR, .s = {evil, strlen(evil)}}},
        /* odd UTF-8: a stray continuation byte, an overlong '/', a surrogate
         * encoded in UTF-8, U+10FFFF, U+2028, a truncated sequence at the end */
        {PC_STR_LIT("gen_ai.completion.0.content"),
         {.type = PC_V_STR,
          .s = PC_STR_LIT("a\x80"
                          "b\xc0\xaf"
                          "c\xed\xa0\x80"
                          "d\xf4\x8f\xbf\xbf"
                          "e\xe2\x80\xa8"
                          "f\xe2\x82")}},
    };
    s.attrs = (pc_attrs){kv, 2};
    pc_messages_extract(&s, A);
    json_t *j = parsed(s.input_messages);
    json_t *c0 = json_object_get(json_array_get(json_object_get(json_array_get(j, 0), "parts"), 0),
                                 "content");
    CHECK_EQ_STR(json_string_value(c0), evil);
    json_decref(j);
    j = parsed(s.output_messages); /* jansson refuses invalid UTF-8: this parsing is the check */
    const char *c1 = json_string_value(json_object_get(
        json_array_get(json_object_get(json_array_get(j, 0), "parts"), 0), "content"));
    CHECK(c1 && strstr(c1, "d\xf4\x8f\xbf\xbf"
                           "e\xe2\x80\xa8"
                           "f") != NULL);
    CHECK(c1 && strstr(c1, "\xef\xbf\xbd") != NULL); /* U+FFFD replaced the bad bytes */
    json_decref(j);

    /* empty content: no text part, the message stays; an empty JSON string
     * source is no message */
    s = extract("{'attributes': {'gen_ai.prompt.0.role': 'user', 'gen_ai.prompt.0.content': '',"
                " 'gen_ai.output.messages': ''}}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[]}]");
    CHECK_MSGS(s.output_messages, NULL);

    /* non-string roles and contents */
    s = extract("{'attributes': {'gen_ai.input.messages': [{'role': 7, 'content': {'k': [1, 2]}},"
                " 'bare string', 3, null]}}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'user','parts':[{'type':'text','content':'{\\'k\\':[1,2]}'}]},"
               "{'role':'user','parts':[{'type':'text','content':'bare string'}]},"
               "{'role':'user','parts':[{'type':'text','content':'3'}]},"
               "{'role':'user','parts':[]}]");
}

static void test_huge_and_bounded(void)
{
    /* a 1 MB prompt of control characters (6 bytes each escaped): whole,
     * and within 8x the input */
    size_t n = 1 << 20;
    char *big = pc_arena_alloc(A, n);
    memset(big, 0x01, n);
    pc_span s;
    memset(&s, 0, sizeof(s));
    pc_kv kv = {PC_STR_LIT("input.value"), {.type = PC_V_STR, .s = {big, n}}};
    s.attrs = (pc_attrs){&kv, 1};
    pc_messages_extract(&s, A);
    json_t *j = parsed(s.input_messages);
    const char *c = json_string_value(json_object_get(
        json_array_get(json_object_get(json_array_get(j, 0), "parts"), 0), "content"));
    CHECK(c && strlen(c) == n);
    CHECK(s.input_messages.n <= 8 * (n + 16 + kv.key.n) + 4096);
    json_decref(j);

    /* many tiny messages from one short string: the byte bound holds */
    pc_buf b = PC_BUF_INIT;
    pc_buf_lit(&b, "[");
    for (int i = 0; i < 1000; i++)
        pc_buf_printf(&b, "%s{}", i ? "," : "");
    pc_buf_lit(&b, "]");
    kv = (pc_kv){PC_STR_LIT("gen_ai.input.messages"),
                 {.type = PC_V_STR, .s = {pc_arena_strndup(A, b.data, b.len), b.len}}};
    s.attrs = (pc_attrs){&kv, 1};
    pc_messages_extract(&s, A);
    CHECK(s.input_messages.n <= 8 * (b.len + 16 + kv.key.n) + 4096);
    j = parsed(s.input_messages);
    CHECK(json_array_size(j) > 0);
    json_decref(j);
    pc_buf_free(&b);
}

int main(void)
{
    A = pc_arena_create(1 << 16);
    RUN(test_indices);
    RUN(test_many_messages);
    RUN(test_invalid_and_deep_json);
    RUN(test_odd_text);
    RUN(test_huge_and_bounded);
    pc_arena_destroy(A);
    return CHECK_DONE();
}
