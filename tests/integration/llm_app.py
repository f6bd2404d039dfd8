"""An LLM app instrumented by one real library, run as its own process by
test_llm_libraries.py (instrumentors patch the openai module process-wide, so each library
gets a fresh interpreter).

    python llm_app.py LIBRARY OTLP_HTTP_URL OPENAI_BASE_URL SESSION USER [PRELA_URL]

LIBRARY: openai-v2 (OpenTelemetry GenAI instrumentation, default mode: content in log
events), openai-v2-latest (its latest-semconv mode: content on the spans), openinference
(Arize OpenInference), traceloop (OpenLLMetry's opentelemetry-instrumentation-openai),
prela (the Prela SDK's own instrumentation and HTTP exporter, to PRELA_URL: the Prela
receiver), langchain (LangChain's ChatOpenAI / OpenAIEmbeddings and a LangGraph graph,
instrumented by OpenInference's LangChain instrumentation only: its OpenAI one would
record every call twice).
The app makes, in this order: a chat call, a streamed chat call, an embeddings call, a
tool-calling round (a call answered with a tool call, then a call with the tool's
result), and a failing call. Every call runs inside an app span "conversation turn N"
that carries the session and user the way the library's users set them. Spans (and log
records, for openai-v2) go to the collector over OTLP/HTTP; the process flushes and exits 0.
For langchain, the embeddings call is a retriever's (OpenInference does not trace
LangChain embeddings on their own, only the retriever that uses them) and the tool round
is a LangGraph graph: a model node named "agent" and a tools node, looping until the
model answers.
"""
import os
import sys

LIBRARY, OTLP, BASE_URL, SESSION, USER = sys.argv[1:6]
PRELA_URL = sys.argv[6] if len(sys.argv) > 6 else None

if LIBRARY == "openai-v2":
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
elif LIBRARY == "openai-v2-latest":
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
elif LIBRARY == "traceloop":
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true"

from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

resource = Resource.create({"service.name": f"llm-app-{LIBRARY}"})
provider = TracerProvider(resource=resource)
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=OTLP + "/v1/traces")))
trace.set_tracer_provider(provider)
logger_provider = None

if LIBRARY.startswith("openai-v2"):
    from opentelemetry import _logs
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=OTLP + "/v1/logs")))
    _logs.set_logger_provider(logger_provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider, logger_provider=logger_provider)
elif LIBRARY == "openinference":
    from openinference.instrumentation.openai import OpenAIInstrumentor
    OpenAIInstrumentor().instrument(tracer_provider=provider)
elif LIBRARY == "traceloop":
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    OpenAIInstrumentor().instrument(tracer_provider=provider)
elif LIBRARY == "langchain":
    from openinference.instrumentation.langchain import LangChainInstrumentor
    LangChainInstrumentor().instrument(tracer_provider=provider)
elif LIBRARY == "prela":
    import prela
    from prela.exporters.http import HTTPExporter
    prela_tracer = prela.init(service_name=f"llm-app-{LIBRARY}", auto_instrument=True,
                              exporter=HTTPExporter(endpoint=PRELA_URL + "/v1/traces"))
else:
    sys.exit(f"unknown library {LIBRARY}")

import openai  # noqa: E402

client = openai.OpenAI(base_url=BASE_URL, api_key="sk-test", max_retries=0)
tracer = trace.get_tracer("llm-app")
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
QUESTION = "What is the capital of France? Answer with the \"city\" name."


def turn(n):
    """The app span of one turn, with the session and user as this library's users set them."""
    if LIBRARY == "langchain":  # OpenInference's context: on every span it records inside
        from contextlib import ExitStack
        from openinference.instrumentation import using_session, using_user
        stack = ExitStack()
        stack.enter_context(using_session(SESSION))
        stack.enter_context(using_user(USER))
        stack.enter_context(tracer.start_as_current_span(f"conversation turn {n}"))
        return stack
    if LIBRARY == "openinference":
        from openinference.instrumentation import using_attributes
        span_cm = tracer.start_as_current_span(f"conversation turn {n}")
        attrs_cm = using_attributes(session_id=SESSION, user_id=USER)

        class Both:
            def __enter__(self):
                attrs_cm.__enter__()
                return span_cm.__enter__()

            def __exit__(self, *exc):
                span_cm.__exit__(*exc)
                attrs_cm.__exit__(*exc)
        return Both()
    if LIBRARY == "prela":
        return prela_tracer.span(f"conversation turn {n}", attributes={
            "session.id": SESSION, "user.id": USER})
    return tracer.start_as_current_span(f"conversation turn {n}", attributes={
        "gen_ai.conversation.id": SESSION, "user.id": USER})


def langchain_app():
    """The five turns through LangChain and LangGraph (see the top)."""
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.tools import tool
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    def chat_model(model="gpt-4o-mini"):
        return ChatOpenAI(model=model, base_url=BASE_URL, api_key="sk-test", max_retries=0)

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city"""
        return "sunny, 21 C"

    with turn(1):
        chat_model().invoke([SystemMessage("You are terse."), HumanMessage(QUESTION)])
    with turn(2):
        for _ in chat_model().stream([HumanMessage("Stream it: " + QUESTION)], stream_usage=True):
            pass
    # check_embedding_ctx_length=False: else tiktoken downloads its tables from the internet
    store = InMemoryVectorStore(OpenAIEmbeddings(
        model="text-embedding-3-small", base_url=BASE_URL, api_key="sk-test", max_retries=0,
        check_embedding_ctx_length=False))
    store.add_texts(["Paris is in France"])
    with turn(3):
        store.as_retriever(search_kwargs={"k": 1}).invoke("Where is Paris?")
    model = chat_model().bind_tools([get_weather])
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    with turn(4):
        out = graph.compile().invoke({"messages": [HumanMessage("Weather in Paris?")]})
        assert [m.type for m in out["messages"]] == ["human", "ai", "tool", "ai"], out
    with turn(5):
        try:
            chat_model("fail-model").invoke([HumanMessage("This call fails.")])
            sys.exit("the failing call did not fail")
        except openai.InternalServerError:
            pass


if LIBRARY == "langchain":
    langchain_app()
    provider.shutdown()
    sys.exit(0)

with turn(1):
    client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": QUESTION}])
with turn(2):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Stream it: " + QUESTION}])
    for _ in stream:
        pass
with turn(3):
    client.embeddings.create(model="text-embedding-3-small", input=["Paris is in France"])
with turn(4):
    first = client.chat.completions.create(model="gpt-4o-mini", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"}])
    call = first.choices[0].message.tool_calls[0]
    client.chat.completions.create(model="gpt-4o-mini", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": call.id, "type": "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}])
with turn(5):
    try:
        client.chat.completions.create(model="fail-model", messages=[
            {"role": "user", "content": "This call fails."}])
        sys.exit("the failing call did not fail")
    except openai.InternalServerError:
        pass

provider.shutdown()
if logger_provider:
    logger_provider.shutdown()
