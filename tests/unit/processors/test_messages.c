/*
 * test_messages.c - prompts and completions into one message shape
 * (src/processors/messages.c): one case per dialect with the attributes and
 * events the real libraries send, the precedence rule. Hostile input is
 * test_messages_hostile.c. Every answer is parsed back with jansson and
 * compared with the expected document (messages_fixture.h).
 */
#include "messages_fixture.h"

/* ------------------------------------------------------------ dialects */

/* opentelemetry-instrumentation-openai-v2, OTEL_SEMCONV_STABILITY_OPT_IN=
 * gen_ai_latest_experimental: JSON-string span attributes. */
static void test_semconv_latest(void)
{
    pc_span s = extract(
        "{'attributes': {'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai',"
        " 'gen_ai.request.model': 'gpt-4o-mini', 'gen_ai.response.model': 'gpt-4o-mini-2024-07-18',"
        " 'gen_ai.response.finish_reasons': ['stop'], 'gen_ai.usage.input_tokens': 21,"
        " '$gen_ai.system_instructions': [{'type': 'text', 'content': 'You are terse.'}],"
        " '$gen_ai.input.messages': [{'role': 'user', 'parts': [{'type': 'text',"
        "   'content': 'What is the capital of France?'}]}],"
        " '$gen_ai.output.messages': [{'role': 'assistant', 'parts': [{'type': 'text',"
        "   'content': 'Paris.'}], 'finish_reason': 'stop'}]}}");
    CHECK_MSGS(
        s.input_messages,
        "[{'role':'system','parts':[{'type':'text','content':'You are terse.'}]},"
        "{'role':'user','parts':[{'type':'text','content':'What is the capital of France?'}]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[{'type':'text','content':"
                                  "'Paris.'}],'finish_reason':'stop'}]");

    /* tool calls and responses, the registry's "result" spelling, a blob part
     * copied as sent, structured (not string) values */
    s = extract("{'attributes': {'gen_ai.input.messages': ["
                " {'role': 'assistant', 'parts': [{'type': 'tool_call', 'id': 'call_1',"
                "   'name': 'get_weather', 'arguments': {'city': 'Paris'}}]},"
                " {'role': 'tool', 'parts': [{'type': 'tool_call_response', 'id': 'call_1',"
                "   'result': {'temp_c': 22}}]},"
                " {'role': 'user', 'parts': [{'type': 'blob', 'mime_type': 'image/png',"
                "   'modality': 'image', 'content': 'iVBORw0K'}]}]}}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'assistant','parts':[{'type':'tool_call','id':'call_1','name':"
               "'get_weather','arguments':{'city':'Paris'}}]},"
               "{'role':'tool','parts':[{'type':'tool_call_response','id':'call_1',"
               "'response':{'temp_c':22}}]},"
               "{'role':'user','parts':[{'type':'blob','mime_type':'image/png','modality':"
               "'image','content':'iVBORw0K'}]}]");
    CHECK_MSGS(s.output_messages, NULL);
}

/* The same keys on a gen_ai.client.inference.operation.details event,
 * structured (the conventions' event form). */
static void test_semconv_details_event(void)
{
    pc_span s =
        extract("{'attributes': {'gen_ai.operation.name': 'chat'},"
                " 'events': [{'name': 'gen_ai.client.inference.operation.details', 'attributes': {"
                "  'gen_ai.system_instructions': [{'type': 'text', 'content': 'Be kind.'}],"
                "  'gen_ai.input.messages': [{'role': 'user', 'parts': [{'type': 'text', "
                "'content': 'Hi'}]}],"
                "  'gen_ai.output.messages': [{'role': 'assistant', 'parts': [{'type': 'text',"
                "    'content': 'Hello!'}], 'finish_reason': 'stop'}]}}]}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'system','parts':[{'type':'text','content':'Be kind.'}]},"
               "{'role':'user','parts':[{'type':'text','content':'Hi'}]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[{'type':'text','content':"
                                  "'Hello!'}],'finish_reason':'stop'}]");
}

/* opentelemetry-instrumentation-openai-v2 default mode: log records with
 * content capture on, attached to the span as events whose "body" is the
 * record's body (structured, or a JSON string). */
static void test_genai_events(void)
{
    pc_span s =
        extract("{'attributes': {'gen_ai.operation.name': 'chat', 'gen_ai.system': 'openai'},"
                " 'events': ["
                "  {'name': 'gen_ai.system.message', 'attributes': {'gen_ai.system': 'openai',"
                "    'body': {'content': 'You are a weather bot.'}}},"
                "  {'name': 'gen_ai.user.message', 'attributes': {'gen_ai.system': 'openai',"
                "    '$body': {'content': 'Weather in Paris?'}}},"
                "  {'name': 'gen_ai.assistant.message', 'attributes': {'gen_ai.system': 'openai',"
                "    'body': {'tool_calls': [{'id': 'call_abc', 'type': 'function', 'function':"
                "      {'name': 'get_weather', 'arguments': '{\\'city\\': \\'Paris\\'}'}}]}}},"
                "  {'name': 'gen_ai.tool.message', 'attributes': {'gen_ai.system': 'openai',"
                "    'body': {'content': '22C and sunny', 'id': 'call_abc'}}},"
                "  {'name': 'gen_ai.choice', 'attributes': {'gen_ai.system': 'openai',"
                "    'body': {'index': 0, 'finish_reason': 'stop', 'message': {'role': 'assistant',"
                "      'content': 'It is 22C and sunny in Paris.'}}}}]}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'system','parts':[{'type':'text','content':'You are a weather bot.'}]},"
               "{'role':'user','parts':[{'type':'text','content':'Weather in Paris?'}]},"
               "{'role':'assistant','parts':[{'type':'tool_call','id':'call_abc','name':"
               "'get_weather','arguments':'{\\'city\\': \\'Paris\\'}'}]},"
               "{'role':'tool','parts':[{'type':'tool_call_response','id':'call_abc',"
               "'response':'22C and sunny'}]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[{'type':'text','content':"
                                  "'It is 22C and sunny in Paris.'}],'finish_reason':'stop'}]");

    /* content capture off: the bodies carry no content; the fields are in
     * the event attributes themselves (no body) */
    s = extract("{'events': [{'name': 'gen_ai.user.message', 'attributes': {'gen_ai.system':"
                " 'openai'}}, {'name': 'gen_ai.choice', 'attributes': {'index': 0,"
                " 'finish_reason': 'tool_calls', 'message': {'role': 'assistant'}}}]}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[],'finish_reason':'tool_calls'}]");
}

/* semconv 1.26 span events gen_ai.content.prompt / completion: a JSON
 * string of OpenAI messages, or (what Python's str() of a list gives) not
 * JSON at all: a text part holding it. */
static void test_content_events(void)
{
    pc_span s =
        extract("{'events': [{'name': 'gen_ai.content.prompt', 'attributes': {'$gen_ai.prompt':"
                "  [{'role': 'user', 'content': 'Say hi'}]}},"
                " {'name': 'gen_ai.content.completion', 'attributes': {'gen_ai.completion':"
                "  \"[{`role`: `assistant`, `content`: `Hi`}]\"}}]}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':'Say hi'}]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[{'type':'text','content':"
                                  "\"[{`role`: `assistant`, `content`: `Hi`}]\"}]}]");
}

/* Traceloop / OpenLLMetry (opentelemetry-instrumentation-openai): flattened
 * gen_ai.prompt.N / gen_ai.completion.N, a tool round trip. */
static void test_traceloop(void)
{
    pc_span s = extract(
        "{'attributes': {'llm.request.type': 'chat', 'gen_ai.system': 'openai',"
        " 'gen_ai.request.model': 'gpt-4o-mini', 'llm.is_streaming': false,"
        " 'gen_ai.prompt.0.role': 'system', 'gen_ai.prompt.0.content': 'You are a weather bot.',"
        " 'gen_ai.prompt.1.role': 'user', 'gen_ai.prompt.1.content': 'Weather in Paris?',"
        " 'gen_ai.prompt.2.role': 'assistant',"
        " 'gen_ai.prompt.2.tool_calls.0.id': 'call_abc',"
        " 'gen_ai.prompt.2.tool_calls.0.name': 'get_weather',"
        " 'gen_ai.prompt.2.tool_calls.0.arguments': '{\\'city\\':\\'Paris\\'}',"
        " 'gen_ai.prompt.3.role': 'tool', 'gen_ai.prompt.3.content': '22C',"
        " 'gen_ai.prompt.3.tool_call_id': 'call_abc',"
        " 'gen_ai.completion.0.finish_reason': 'stop', 'gen_ai.completion.0.role': 'assistant',"
        " 'gen_ai.completion.0.content': 'It is 22C.',"
        " 'gen_ai.usage.prompt_tokens': 40}}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'system','parts':[{'type':'text','content':'You are a weather bot.'}]},"
               "{'role':'user','parts':[{'type':'text','content':'Weather in Paris?'}]},"
               "{'role':'assistant','parts':[{'type':'tool_call','id':'call_abc','name':"
               "'get_weather','arguments':'{\\'city\\':\\'Paris\\'}'}]},"
               "{'role':'tool','parts':[{'type':'tool_call_response','id':'call_abc',"
               "'response':'22C'}]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[{'type':'text','content':"
                                  "'It is 22C.'}],'finish_reason':'stop'}]");

    /* a completion with tool calls, keys in no particular order; content as
     * a JSON list of typed parts */
    s = extract("{'attributes': {'gen_ai.completion.0.tool_calls.1.name': 'b',"
                " 'gen_ai.completion.0.tool_calls.0.name': 'a',"
                " 'gen_ai.completion.0.tool_calls.0.id': 'c0',"
                " 'gen_ai.completion.0.tool_calls.1.id': 'c1',"
                " 'gen_ai.completion.0.finish_reason': 'tool_calls',"
                " '$gen_ai.prompt.0.content': [{'type': 'text', 'text': 'look'},"
                "   {'type': 'image_url', 'image_url': {'url': 'https://x/y.png'}}]}}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':'look'},"
                                 "{'type':'uri','modality':'image','uri':'https://x/y.png'}]}]");
    CHECK_MSGS(s.output_messages,
               "[{'role':'assistant','parts':[{'type':'tool_call','id':'c0','name':'a'},"
               "{'type':'tool_call','id':'c1','name':'b'}],'finish_reason':'tool_calls'}]");
}

/* OpenInference (openinference-instrumentation-openai): flattened
 * llm.input_messages / llm.output_messages, with input.value / output.value
 * present too (the messages win). */
static void test_openinference(void)
{
    pc_span s = extract(
        "{'attributes': {'openinference.span.kind': 'LLM', 'llm.model_name': 'gpt-4o-mini',"
        " 'llm.provider': 'openai', 'llm.system': 'openai',"
        " '$input.value': {'messages': [{'role': 'user', 'content': 'ignored'}],"
        "   'model': 'gpt-4o-mini'}, 'input.mime_type': 'application/json',"
        " 'output.value': 'ignored too', 'output.mime_type': 'text/plain',"
        " 'llm.input_messages.0.message.role': 'system',"
        " 'llm.input_messages.0.message.content': 'You are a weather bot.',"
        " 'llm.input_messages.1.message.role': 'user',"
        " 'llm.input_messages.1.message.contents.0.message_content.type': 'text',"
        " 'llm.input_messages.1.message.contents.0.message_content.text': 'What is this?',"
        " 'llm.input_messages.1.message.contents.1.message_content.type': 'image',"
        " 'llm.input_messages.1.message.contents.1.message_content.image.image.url':"
        "   'https://example.com/cat.png',"
        " 'llm.input_messages.2.message.role': 'tool',"
        " 'llm.input_messages.2.message.tool_call_id': 'call_9',"
        " 'llm.input_messages.2.message.content': '{\\'ok\\': true}',"
        " 'llm.output_messages.0.message.role': 'assistant',"
        " 'llm.output_messages.0.message.tool_calls.0.tool_call.id': 'call_xyz',"
        " 'llm.output_messages.0.message.tool_calls.0.tool_call.function.name': 'get_weather',"
        " 'llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments':"
        "   '{\\'city\\': \\'Paris\\'}',"
        " 'llm.token_count.prompt': 50}}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'system','parts':[{'type':'text','content':'You are a weather bot.'}]},"
               "{'role':'user','parts':[{'type':'text','content':'What is this?'},"
               "{'type':'uri','modality':'image','uri':'https://example.com/cat.png'}]},"
               "{'role':'tool','parts':[{'type':'tool_call_response','id':'call_9',"
               "'response':'{\\'ok\\': true}'}]}]");
    CHECK_MSGS(s.output_messages,
               "[{'role':'assistant','parts':[{'type':'tool_call','id':'call_xyz','name':"
               "'get_weather','arguments':'{\\'city\\': \\'Paris\\'}'}]}]");
}

/* OpenInference input.value / output.value alone: a JSON chat request and
 * response become messages; plain text one text message. */
static void test_openinference_values(void)
{
    pc_span s = extract(
        "{'attributes': {'openinference.span.kind': 'LLM',"
        " '$input.value': {'model': 'gpt-4o', 'messages': [{'role': 'system', 'content':"
        "   'Be brief.'}, {'role': 'user', 'content': [{'type': 'text', 'text': 'Hi'}]}]},"
        " 'input.mime_type': 'application/json',"
        " '$output.value': {'id': 'chatcmpl-1', 'object': 'chat.completion', 'choices': [{'index':"
        "   0, 'message': {'role': 'assistant', 'content': 'Hello!'}, 'finish_reason': 'stop'}]},"
        " 'output.mime_type': 'application/json'}}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'system','parts':[{'type':'text','content':'Be brief.'}]},"
               "{'role':'user','parts':[{'type':'text','content':'Hi'}]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[{'type':'text','content':"
                                  "'Hello!'}],'finish_reason':'stop'}]");

    /* a LangChain CHAIN span: plain text in, plain text out */
    s = extract("{'attributes': {'openinference.span.kind': 'CHAIN', 'input.value':"
                " 'What is 2+2?', 'output.value': '4'}}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'user','parts':[{'type':'text','content':'What is 2+2?'}]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[{'type':'text','content':'4'}]}]");

    /* LangChain's serialized messages, nested one list deep; an Anthropic
     * response body */
    s = extract("{'attributes': {'$input.value': {'messages': [[{'lc': 1, 'type': 'constructor',"
                " 'id': ['langchain', 'schema', 'messages', 'HumanMessage'], 'kwargs':"
                " {'content': 'Hi there', 'type': 'human'}}]]},"
                " '$output.value': {'role': 'assistant', 'content': [{'type': 'text', 'text':"
                " 'Hello'}], 'stop_reason': 'end_turn'}}}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'user','parts':[{'type':'text','content':'Hi there'}]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[{'type':'text','content':"
                                  "'Hello'}],'finish_reason':'end_turn'}]");
}

/* Traceloop workflow/task spans: traceloop.entity.input / output. */
static void test_traceloop_entity(void)
{
    pc_span s = extract("{'attributes': {'traceloop.span.kind': 'workflow',"
                        " 'traceloop.entity.name': 'joke_workflow',"
                        " '$traceloop.entity.input': {'args': [], 'kwargs': {'topic': 'cats'}},"
                        " '$traceloop.entity.output': 'Why did the cat...'}}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':"
                                 "'{\\'args\\':[],\\'kwargs\\':{\\'topic\\':\\'cats\\'}}'}]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[{'type':'text','content':"
                                  "'\\'Why did the cat...\\''}]}]");

    s = extract("{'attributes': {'$traceloop.entity.input': {'inputs': {'messages': [{'role':"
                " 'user', 'content': 'Hi'}]}, 'tags': [], 'metadata': {}}}}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':'Hi'}]}]");
}

/* The Prela SDK: OpenAI, Anthropic and LangChain instrumentations. */
static void test_prela(void)
{
    pc_span s = extract(
        "{'attributes': {'llm.vendor': 'openai', 'llm.model': 'gpt-4o-mini',"
        " 'llm.request.model': 'gpt-4o-mini', 'llm.response.model': 'gpt-4o-mini-2024-07-18',"
        " 'llm.response.id': 'chatcmpl-1', 'llm.prompt_tokens': 12,"
        " 'llm.finish_reason': 'tool_calls'},"
        " 'events': [{'name': 'llm.request', 'attributes': {'messages': [{'role': 'system',"
        "   'content': 'You help.'}, {'role': 'user', 'content': 'Weather?'}]}},"
        "  {'name': 'llm.response', 'attributes': {'content': null}},"
        "  {'name': 'llm.tool_calls', 'attributes': {'tool_calls': [{'id': 'call_1', 'type':"
        "   'function', 'function': {'name': 'get_weather', 'arguments': '{}'}}]}}]}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'system','parts':[{'type':'text','content':'You help.'}]},"
               "{'role':'user','parts':[{'type':'text','content':'Weather?'}]}]");
    CHECK_MSGS(s.output_messages,
               "[{'role':'assistant','parts':[{'type':'tool_call','id':'call_1','name':"
               "'get_weather','arguments':'{}'}],'finish_reason':'tool_calls'}]");

    /* Anthropic: system separate, content blocks; the tool_use block is also
     * in llm.tool_use and must appear once */
    s = extract(
        "{'attributes': {'llm.vendor': 'anthropic', 'llm.stop_reason': 'tool_use'},"
        " 'events': [{'name': 'llm.request', 'attributes': {'system': 'Be brief.', 'messages':"
        "   [{'role': 'user', 'content': [{'type': 'text', 'text': 'Weather?'}]},"
        "    {'role': 'user', 'content': [{'type': 'tool_result', 'tool_use_id': 'toolu_0',"
        "     'content': '20C'}]}]}},"
        "  {'name': 'llm.thinking', 'attributes': {'thinking': ['Need the tool.']}},"
        "  {'name': 'llm.response', 'attributes': {'content': [{'type': 'text', 'text':"
        "   'Checking.', 'citations': null}, {'type': 'tool_use', 'id': 'toolu_1', 'name':"
        "   'weather', 'input': {'city': 'Paris'}}]}},"
        "  {'name': 'llm.tool_use', 'attributes': {'tool_calls': [{'id': 'toolu_1', 'name':"
        "   'weather', 'input': {'city': 'Paris'}}]}}]}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'system','parts':[{'type':'text','content':'Be brief.'}]},"
               "{'role':'user','parts':[{'type':'text','content':'Weather?'}]},"
               "{'role':'user','parts':[{'type':'tool_call_response','id':'toolu_0',"
               "'response':'20C'}]}]");
    CHECK_MSGS(s.output_messages,
               "[{'role':'assistant','parts':[{'type':'reasoning','content':'Need the tool.'},"
               "{'type':'text','content':'Checking.'},{'type':'tool_call','id':'toolu_1',"
               "'name':'weather','arguments':{'city':'Paris'}}],'finish_reason':'tool_use'}]");

    /* completions API: prompt in, text out */
    s = extract("{'events': [{'name': 'llm.request', 'attributes': {'prompt': 'Once upon'}},"
                " {'name': 'llm.response', 'attributes': {'text': ' a time'}}]}");
    CHECK_MSGS(s.input_messages,
               "[{'role':'user','parts':[{'type':'text','content':'Once upon'}]}]");
    CHECK_MSGS(s.output_messages,
               "[{'role':'assistant','parts':[{'type':'text','content':' a time'}]}]");

    /* LangChain: llm.prompt.N / llm.response.N; llm.response.model is not an index */
    s = extract("{'attributes': {'llm.vendor': 'langchain', 'llm.prompt_count': 2,"
                " 'llm.prompt.1': 'second', 'llm.prompt.0': 'first', 'llm.response.0': 'answer',"
                " 'llm.response.model': 'gpt-4o'}}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':'first'}]},"
                                 "{'role':'user','parts':[{'type':'text','content':'second'}]}]");
    CHECK_MSGS(s.output_messages,
               "[{'role':'assistant','parts':[{'type':'text','content':'answer'}]}]");
}

/* ------------------------------------------------------------ captured */

/*
 * What the real libraries sent (the versions pinned in the project's .venv)
 * for one chat call against a fake OpenAI server: system + user + an
 * assistant tool call + its tool result in, a tool call out (finish_reason
 * tool_calls). Captured with InMemorySpanExporter / InMemoryLogExporter; the
 * openai-v2 log records are written as the span events they become (their
 * body in the event attribute "body"). Only the local port was rewritten.
 */

/* openai-v2 2.4b0, default mode (log events) */
static const char captured_v2[] =
    "{\"attributes\":{\"gen_ai.operation.name\":\"chat\",\"gen_ai.request.model\":\"gp"
    "t-4o-mini\",\"gen_ai.system\":\"openai\",\"gen_ai.response.model\":\"gpt-4o-mini"
    "-2024-07-18\",\"gen_ai.response.finish_reasons\":[\"tool_calls\"],\"gen_ai.res"
    "ponse.id\":\"chatcmpl-1\",\"gen_ai.usage.input_tokens\":30,\"gen_ai.usage.outp"
    "ut_tokens\":10},\"events\":[{\"name\":\"gen_ai.system.message\",\"attributes\":{\""
    "gen_ai.system\":\"openai\",\"body\":{\"content\":\"You are a weather bot.\"}}},{\""
    "name\":\"gen_ai.user.message\",\"attributes\":{\"gen_ai.system\":\"openai\",\"body"
    "\":{\"content\":\"Weather in Paris?\"}}},{\"name\":\"gen_ai.assistant.message\",\""
    "attributes\":{\"gen_ai.system\":\"openai\",\"body\":{\"tool_calls\":[{\"id\":\"call_"
    "0\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"ci"
    "ty\\\": \\\"Lyon\\\"}\"}}]}}},{\"name\":\"gen_ai.tool.message\",\"attributes\":{\"gen_"
    "ai.system\":\"openai\",\"body\":{\"content\":\"18C\",\"id\":\"call_0\"}}},{\"name\":\"ge"
    "n_ai.choice\",\"attributes\":{\"gen_ai.system\":\"openai\",\"body\":{\"index\":0,\"f"
    "inish_reason\":\"tool_calls\",\"message\":{\"role\":\"assistant\",\"tool_calls\":[{"
    "\"id\":\"call_abc\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"argu"
    "ments\":\"{\\\"city\\\": \\\"Paris\\\"}\"}}]}}}}]}";

/* openai-v2 2.4b0, OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental */
static const char captured_v2latest[] =
    "{\"attributes\":{\"gen_ai.operation.name\":\"chat\",\"gen_ai.request.model\":\"gp"
    "t-4o-mini\",\"gen_ai.provider.name\":\"openai\",\"gen_ai.response.finish_reaso"
    "ns\":[\"tool_calls\"],\"gen_ai.response.model\":\"gpt-4o-mini-2024-07-18\",\"gen"
    "_ai.response.id\":\"chatcmpl-1\",\"gen_ai.usage.input_tokens\":30,\"gen_ai.usa"
    "ge.output_tokens\":10,\"gen_ai.input.messages\":\"[{\\\"role\\\":\\\"system\\\",\\\"pa"
    "rts\\\":[{\\\"content\\\":\\\"You are a weather bot.\\\",\\\"type\\\":\\\"text\\\"}]},{\\\"r"
    "ole\\\":\\\"user\\\",\\\"parts\\\":[{\\\"content\\\":\\\"Weather in "
    "Paris?\\\",\\\"type\\\":\\\""
    "text\\\"}]},{\\\"role\\\":\\\"assistant\\\",\\\"parts\\\":[{\\\"arguments\\\":{\\\"city\\\":"
    "\\\""
    "Lyon\\\"},\\\"name\\\":\\\"get_weather\\\",\\\"id\\\":\\\"call_0\\\",\\\"type\\\":\\\"tool_"
    "call\\"
    "\"}]},{\\\"role\\\":\\\"tool\\\",\\\"parts\\\":[{\\\"response\\\":\\\"18C\\\",\\\"id\\\":"
    "\\\"call_0"
    "\\\",\\\"type\\\":\\\"tool_call_response\\\"}]}]\",\"gen_ai.output.messages\":\"[{\\\"ro"
    "le\\\":\\\"assistant\\\",\\\"parts\\\":[{\\\"arguments\\\":{\\\"city\\\":\\\"Paris\\\"},"
    "\\\"name"
    "\\\":\\\"get_weather\\\",\\\"id\\\":\\\"call_abc\\\",\\\"type\\\":\\\"tool_call\\\"}],"
    "\\\"finish"
    "_reason\\\":\\\"tool_calls\\\"}]\"}}";

/* openinference-instrumentation-openai 0.1.66 */
static const char captured_oi[] =
    "{\"attributes\":{\"llm.system\":\"openai\",\"input.value\":\"{\\\"model\\\": \\\"gpt-4o"
    "-mini\\\", \\\"messages\\\": [{\\\"role\\\": \\\"system\\\", \\\"content\\\": \\\"You are a "
    "weather bot.\\\"}, {\\\"role\\\": \\\"user\\\", \\\"content\\\": \\\"Weather in Paris?\\\""
    "}, {\\\"role\\\": \\\"assistant\\\", \\\"tool_calls\\\": [{\\\"id\\\": \\\"call_0\\\", \\\"typ"
    "e\\\": \\\"function\\\", \\\"function\\\": {\\\"name\\\": \\\"get_weather\\\", \\\"arguments"
    "\\\": \\\"{\\\\\\\"city\\\\\\\": \\\\\\\"Lyon\\\\\\\"}\\\"}}]}, {\\\"role\\\": \\\"tool\\\", "
    "\\\"tool_ca"
    "ll_id\\\": \\\"call_0\\\", \\\"content\\\": \\\"18C\\\"}], \\\"tools\\\": [{\\\"type\\\": "
    "\\\"fu"
    "nction\\\", \\\"function\\\": {\\\"name\\\": \\\"get_weather\\\", \\\"parameters\\\": {\\\"t"
    "ype\\\": \\\"object\\\"}}}]}\",\"input.mime_type\":\"application/json\",\"output.val"
    "ue\":\"{\\\"id\\\":\\\"chatcmpl-1\\\",\\\"choices\\\":[{\\\"finish_reason\\\":\\\"tool_calls"
    "\\\",\\\"index\\\":0,\\\"message\\\":{\\\"content\\\":null,\\\"role\\\":\\\"assistant\\\","
    "\\\"to"
    "ol_calls\\\":[{\\\"id\\\":\\\"call_abc\\\",\\\"function\\\":{\\\"arguments\\\":\\\"{"
    "\\\\\\\"city"
    "\\\\\\\": "
    "\\\\\\\"Paris\\\\\\\"}\\\",\\\"name\\\":\\\"get_weather\\\"},\\\"type\\\":\\\"function\\\"}]"
    "}}],\\\"created\\\":1,\\\"model\\\":\\\"gpt-4o-mini-2024-07-18\\\",\\\"object\\\":\\\"chat"
    ".completion\\\",\\\"usage\\\":{\\\"completion_tokens\\\":10,\\\"prompt_tokens\\\":30,\\"
    "\"total_tokens\\\":40}}\",\"output.mime_type\":\"application/json\",\"llm.tools.0"
    ".tool.json_schema\":\"{\\\"type\\\": \\\"function\\\", \\\"function\\\": {\\\"name\\\": \\\""
    "get_weather\\\", \\\"parameters\\\": {\\\"type\\\": \\\"object\\\"}}}\",\"llm.invocation"
    "_parameters\":\"{\\\"model\\\": \\\"gpt-4o-mini\\\"}\",\"llm.input_messages.0.messag"
    "e.role\":\"system\",\"llm.input_messages.0.message.content\":\"You are a weath"
    "er bot.\",\"llm.input_messages.1.message.role\":\"user\",\"llm.input_messages."
    "1.message.content\":\"Weather in Paris?\",\"llm.input_messages.2.message.rol"
    "e\":\"assistant\",\"llm.input_messages.2.message.tool_calls.0.tool_call.id\":"
    "\"call_0\",\"llm.input_messages.2.message.tool_calls.0.tool_call.function.n"
    "ame\":\"get_weather\",\"llm.input_messages.2.message.tool_calls.0.tool_call."
    "function.arguments\":\"{\\\"city\\\": \\\"Lyon\\\"}\",\"llm.input_messages.3.message"
    ".role\":\"tool\",\"llm.input_messages.3.message.tool_call_id\":\"call_0\",\"llm."
    "input_messages.3.message.content\":\"18C\",\"llm.model_name\":\"gpt-4o-mini-20"
    "24-07-18\",\"llm.token_count.total\":40,\"llm.token_count.prompt\":30,\"llm.to"
    "ken_count.completion\":10,\"llm.output_messages.0.message.role\":\"assistant"
    "\",\"llm.output_messages.0.message.tool_calls.0.tool_call.id\":\"call_abc\",\""
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name\":\"get"
    "_weather\",\"llm.output_messages.0.message.tool_calls.0.tool_call.function"
    ".arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\",\"llm.finish_reason\":\"tool_calls\",\"op"
    "eninference.span.kind\":\"LLM\"}}";

/* opentelemetry-instrumentation-openai 0.62.4 (Traceloop) */
static const char captured_tl[] =
    "{\"attributes\":{\"gen_ai.operation.name\":\"chat\",\"gen_ai.provider.name\":\"op"
    "enai\",\"gen_ai.request.model\":\"gpt-4o-mini\",\"gen_ai.is_streaming\":false,\""
    "gen_ai.openai.api_base\":\"http://127.0.0.1:8080/v1/\",\"gen_ai.input.messag"
    "es\":\"[{\\\"role\\\": \\\"system\\\", \\\"parts\\\": [{\\\"content\\\": \\\"You are a weath"
    "er bot.\\\", \\\"type\\\": \\\"text\\\"}]}, {\\\"role\\\": \\\"user\\\", \\\"parts\\\": "
    "[{\\\"co"
    "ntent\\\": \\\"Weather in Paris?\\\", \\\"type\\\": \\\"text\\\"}]}, {\\\"role\\\": \\\"assi"
    "stant\\\", \\\"parts\\\": [{\\\"type\\\": \\\"tool_call\\\", \\\"name\\\": \\\"get_weather\\\""
    ", \\\"id\\\": \\\"call_0\\\", \\\"arguments\\\": {\\\"city\\\": \\\"Lyon\\\"}}]}, "
    "{\\\"role\\\":"
    " \\\"tool\\\", \\\"parts\\\": [{\\\"type\\\": \\\"tool_call_response\\\", \\\"id\\\": \\\"call"
    "_0\\\", \\\"response\\\": \\\"18C\\\"}]}]\",\"gen_ai.tool.definitions\":\"[{\\\"type\\\": "
    "\\\"function\\\", \\\"name\\\": \\\"get_weather\\\", \\\"parameters\\\": {\\\"type\\\": \\\"ob"
    "ject\\\"}}]\",\"gen_ai.response.model\":\"gpt-4o-mini-2024-07-18\",\"gen_ai.resp"
    "onse.id\":\"chatcmpl-1\",\"gen_ai.response.finish_reasons\":[\"tool_call\"],\"ge"
    "n_ai.usage.total_tokens\":40,\"gen_ai.usage.output_tokens\":10,\"gen_ai.usag"
    "e.input_tokens\":30,\"gen_ai.output.messages\":\"[{\\\"role\\\": \\\"assistant\\\", "
    "\\\"parts\\\": [{\\\"type\\\": \\\"tool_call\\\", \\\"name\\\": \\\"get_weather\\\", "
    "\\\"id\\\":"
    " \\\"call_abc\\\", \\\"arguments\\\": {\\\"city\\\": \\\"Paris\\\"}}], \\\"finish_reason\\\""
    ": \\\"tool_call\\\"}]\"}}";

/* opentelemetry-instrumentation-openai 0.62.4 (Traceloop), use_legacy_attributes=False:
 * log events, the choice's tool_calls beside its message */
static const char captured_tlev[] =
    "{\"attributes\":{\"gen_ai.operation.name\":\"chat\",\"gen_ai.provider.name\":\"op"
    "enai\",\"gen_ai.request.model\":\"gpt-4o-mini\",\"gen_ai.is_streaming\":false,\""
    "gen_ai.openai.api_base\":\"http://127.0.0.1:8080/v1/\",\"gen_ai.response.mod"
    "el\":\"gpt-4o-mini-2024-07-18\",\"gen_ai.response.id\":\"chatcmpl-1\",\"gen_ai.r"
    "esponse.finish_reasons\":[\"tool_call\"],\"gen_ai.usage.total_tokens\":40,\"ge"
    "n_ai.usage.output_tokens\":10,\"gen_ai.usage.input_tokens\":30},\"events\":[{"
    "\"name\":\"gen_ai.system.message\",\"attributes\":{\"gen_ai.provider.name\":\"ope"
    "nai\",\"body\":{\"content\":\"You are a weather bot.\"}}},{\"name\":\"gen_ai.user."
    "message\",\"attributes\":{\"gen_ai.provider.name\":\"openai\",\"body\":{\"content\""
    ":\"Weather in Paris?\"}}},{\"name\":\"gen_ai.assistant.message\",\"attributes\":"
    "{\"gen_ai.provider.name\":\"openai\",\"body\":{\"content\":null,\"tool_calls\":[{\""
    "id\":\"call_0\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"argumen"
    "ts\":\"{\\\"city\\\": \\\"Lyon\\\"}\"}}]}}},{\"name\":\"gen_ai.tool.message\",\"attribut"
    "es\":{\"gen_ai.provider.name\":\"openai\",\"body\":{\"content\":\"18C\"}}},{\"name\":"
    "\"gen_ai.choice\",\"attributes\":{\"gen_ai.provider.name\":\"openai\",\"body\":{\"i"
    "ndex\":0,\"message\":{\"content\":null},\"finish_reason\":\"tool_calls\",\"tool_ca"
    "lls\":[{\"id\":\"call_abc\",\"function\":{\"arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\",\""
    "name\":\"get_weather\"},\"type\":\"function\"}]}}}]}";

/* prela 0.1.0 (system + user only; the Prela HTTP exporter's span dict) */
static const char captured_prela[] =
    "{\"attributes\":{\"service.name\":\"cap\",\"llm.vendor\":\"openai\",\"llm.model\":\"g"
    "pt-4o-mini\",\"llm.request.model\":\"gpt-4o-mini\",\"llm.latency_ms\":11.809383"
    ",\"llm.response.model\":\"gpt-4o-mini-2024-07-18\",\"llm.response.id\":\"chatcm"
    "pl-1\",\"llm.prompt_tokens\":30,\"llm.completion_tokens\":10,\"llm.total_token"
    "s\":40,\"llm.finish_reason\":\"tool_calls\"},\"events\":[{\"name\":\"llm.request\","
    "\"attributes\":{\"messages\":[{\"role\":\"system\",\"content\":\"You are a weather "
    "bot.\"},{\"role\":\"user\",\"content\":\"Weather in Paris?\"}]}},{\"name\":\"llm.res"
    "ponse\",\"attributes\":{\"content\":null}},{\"name\":\"llm.tool_calls\",\"attribut"
    "es\":{\"tool_calls\":[{\"id\":\"call_abc\",\"type\":\"function\",\"function\":{\"name\""
    ":\"get_weather\",\"arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\"}}]}}]}";

static void test_captured(void)
{
    /* the input every library saw, with the tool call's arguments as each sent them */
#define CAPTURED_IN(args)                                                                          \
    "[{'role':'system','parts':[{'type':'text','content':'You are a weather bot.'}]},"             \
    "{'role':'user','parts':[{'type':'text','content':'Weather in Paris?'}]},"                     \
    "{'role':'assistant','parts':[{'type':'tool_call','id':'call_0','name':'get_weather',"         \
    "'arguments':" args "}]},"                                                                     \
    "{'role':'tool','parts':[{'type':'tool_call_response','id':'call_0','response':'18C'}]}]"
#define CAPTURED_OUT(args, finish)                                                                 \
    "[{'role':'assistant','parts':[{'type':'tool_call','id':'call_abc','name':'get_weather',"      \
    "'arguments':" args "}],'finish_reason':'" finish "'}]"
    pc_span s = span_parse(captured_v2, false);
    pc_messages_extract(&s, A);
    CHECK_MSGS(s.input_messages, CAPTURED_IN("'{\\'city\\': \\'Lyon\\'}'"));
    CHECK_MSGS(s.output_messages, CAPTURED_OUT("'{\\'city\\': \\'Paris\\'}'", "tool_calls"));

    s = span_parse(captured_v2latest, false);
    pc_messages_extract(&s, A);
    CHECK_MSGS(s.input_messages, CAPTURED_IN("{'city':'Lyon'}"));
    CHECK_MSGS(s.output_messages, CAPTURED_OUT("{'city':'Paris'}", "tool_calls"));

    s = span_parse(captured_oi, false);
    pc_messages_extract(&s, A);
    CHECK_MSGS(s.input_messages, CAPTURED_IN("'{\\'city\\': \\'Lyon\\'}'"));
    CHECK_MSGS(s.output_messages, CAPTURED_OUT("'{\\'city\\': \\'Paris\\'}'", "tool_calls"));

    s = span_parse(captured_tl, false); /* this version sends the 1.37 attributes */
    pc_messages_extract(&s, A);
    CHECK_MSGS(s.input_messages, CAPTURED_IN("{'city':'Lyon'}"));
    CHECK_MSGS(s.output_messages, CAPTURED_OUT("{'city':'Paris'}", "tool_call"));

    s = span_parse(captured_tlev, false); /* the tool message carries no id */
    pc_messages_extract(&s, A);
    CHECK_MSGS(s.input_messages,
               "[{'role':'system','parts':[{'type':'text','content':'You are a weather bot.'}]},"
               "{'role':'user','parts':[{'type':'text','content':'Weather in Paris?'}]},"
               "{'role':'assistant','parts':[{'type':'tool_call','id':'call_0','name':"
               "'get_weather','arguments':'{\\'city\\': \\'Lyon\\'}'}]},"
               "{'role':'tool','parts':[{'type':'tool_call_response','response':'18C'}]}]");
    CHECK_MSGS(s.output_messages, CAPTURED_OUT("'{\\'city\\': \\'Paris\\'}'", "tool_calls"));

    s = span_parse(captured_prela, false);
    pc_messages_extract(&s, A);
    CHECK_MSGS(s.input_messages,
               "[{'role':'system','parts':[{'type':'text','content':'You are a weather bot.'}]},"
               "{'role':'user','parts':[{'type':'text','content':'Weather in Paris?'}]}]");
    CHECK_MSGS(s.output_messages, CAPTURED_OUT("'{\\'city\\': \\'Paris\\'}'", "tool_calls"));

    /* OpenInference without its flattened messages: input.value / output.value
     * (the request and response bodies) give the same messages */
    s = span_parse(captured_oi, false);
    size_t k = 0;
    for (size_t i = 0; i < s.attrs.n; i++)
        if (!(s.attrs.kv[i].key.n > 13 && memcmp(s.attrs.kv[i].key.p, "llm.", 4) == 0 &&
              (memcmp(s.attrs.kv[i].key.p + 4, "input_m", 7) == 0 ||
               memcmp(s.attrs.kv[i].key.p + 4, "output_m", 8) == 0)))
            s.attrs.kv[k++] = s.attrs.kv[i];
    s.attrs.n = k;
    pc_messages_extract(&s, A);
    CHECK_MSGS(s.input_messages, CAPTURED_IN("'{\\'city\\': \\'Lyon\\'}'"));
    CHECK_MSGS(s.output_messages, CAPTURED_OUT("'{\\'city\\': \\'Paris\\'}'", "tool_calls"));
#undef CAPTURED_IN
#undef CAPTURED_OUT
}

/* ---------------------------------------------------------- precedence */

static void test_precedence(void)
{
    /* newest first: semconv beats the events, Traceloop, OpenInference, values */
    pc_span s = extract(
        "{'attributes': {'$gen_ai.input.messages': [{'role': 'user', 'parts': [{'type': 'text',"
        "   'content': 'semconv'}]}],"
        " 'gen_ai.prompt.0.content': 'traceloop', 'llm.input_messages.0.message.content': 'oi',"
        " 'input.value': 'value', 'traceloop.entity.input': 'entity',"
        " 'gen_ai.completion.0.content': 'traceloop out', 'output.value': 'value out'},"
        " 'events': [{'name': 'gen_ai.user.message', 'attributes': {'content': 'event'}},"
        "  {'name': 'llm.request', 'attributes': {'prompt': 'prela'}}]}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':'semconv'}]}]");
    /* the sides are chosen independently: no semconv output here */
    CHECK_MSGS(s.output_messages,
               "[{'role':'assistant','parts':[{'type':'text','content':'traceloop out'}]}]");

    /* span attributes beat the details event; events beat Traceloop keys */
    s = extract("{'attributes': {'gen_ai.output.messages': [{'role': 'assistant', 'parts': []}]},"
                " 'events': [{'name': 'gen_ai.client.inference.operation.details', 'attributes':"
                "  {'gen_ai.output.messages': [{'role': 'event', 'parts': []}],"
                "   'gen_ai.input.messages': [{'role': 'user', 'parts': []}]}},"
                "  {'name': 'gen_ai.user.message', 'attributes': {'content': 'older'}}]}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[]}]");
    CHECK_MSGS(s.output_messages, "[{'role':'assistant','parts':[]}]");

    /* an empty source yields to the next one */
    s = extract("{'attributes': {'gen_ai.input.messages': '[]', 'gen_ai.prompt.0.content': 'tl'}}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':'tl'}]}]");

    /* OpenInference beats Prela and the values; Prela beats the values */
    s = extract("{'attributes': {'llm.input_messages.0.message.content': 'oi',"
                " 'input.value': 'v', 'output.value': 'vo'},"
                " 'events': [{'name': 'llm.request', 'attributes': {'prompt': 'prela'}},"
                "  {'name': 'llm.response', 'attributes': {'content': 'prela out'}}]}");
    CHECK_MSGS(s.input_messages, "[{'role':'user','parts':[{'type':'text','content':'oi'}]}]");
    CHECK_MSGS(s.output_messages,
               "[{'role':'assistant','parts':[{'type':'text','content':'prela out'}]}]");

    /* nothing to read: both empty, and no arena memory used */
    size_t before = pc_arena_used(A);
    pc_span none = span_of("{'attributes': {'gen_ai.prompt': 'not a source', 'llm.model': 'x',"
                           " 'input': 'x', 'gen_ai.input.messagesX': 'x'},"
                           " 'events': [{'name': 'exception', 'attributes': {}}]}");
    before = pc_arena_used(A);
    none.input_messages = PC_STR_LIT("stale");
    pc_messages_extract(&none, A);
    CHECK_MSGS(none.input_messages, NULL);
    CHECK_MSGS(none.output_messages, NULL);
    CHECK_EQ_INT(pc_arena_used(A), before);
}

int main(void)
{
    A = pc_arena_create(1 << 16);
    RUN(test_semconv_latest);
    RUN(test_semconv_details_event);
    RUN(test_genai_events);
    RUN(test_content_events);
    RUN(test_traceloop);
    RUN(test_openinference);
    RUN(test_openinference_values);
    RUN(test_traceloop_entity);
    RUN(test_prela);
    RUN(test_captured);
    RUN(test_precedence);
    pc_arena_destroy(A);
    return CHECK_DONE();
}
