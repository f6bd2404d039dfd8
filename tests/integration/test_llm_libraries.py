"""Real LLM instrumentation libraries from PyPI, through the collector, read back through the
query API, on every store (conftest `store`).

Each library instruments the real `openai` client (for langchain: LangChain's ChatOpenAI
and a LangGraph graph) in its own process (llm_app.py), which calls a fake
OpenAI-compatible server (fake_openai.py: fixed answers and usage) and exports
to the collector (OTLP/HTTP; the Prela SDK its own JSON to the Prela receiver): a chat call, a streamed chat call, an embeddings call, a
tool-calling round and a failing call, each inside an app span that carries the session
and user. What must come out: span types, provider, the response model and the request
model, tokens (cached and reasoning where the library reports them), the cost from the
price table, session and user on the trace, status, the prompt and completion as
input_messages / output_messages (text, tool call, tool result), and search by a word and
by a quoted phrase of the prompt (the openai-v2 default mode sends it as log records, which
the collector attaches to their spans as events).

Library versions are pinned in tests/requirements.txt. Upstream problems worked around:
- opentelemetry-instrumentation-openai-v2 2.4b0 declares opentelemetry-util-genai>=0.4b0,
  but imports a module util-genai 1.2b0+ no longer has, and util-genai 1.0b0/1.1b0 force
  the latest-semconv mode (no log events, and the old "true" content switch is refused):
  util-genai is pinned to 0.4b0, where the default mode and the opt-in mode both work.
- openai 3.x no longer depends on httpx, which openai-v2 imports: httpx is pinned.
- openai-v2 and the Prela SDK report neither cached nor reasoning tokens (the fake server
  sends both); OpenInference and OpenLLMetry do. The Prela SDK (0.1.0) records neither the
  usage nor the response model of a streamed call, so that span has no cost.
- LangChain (langchain-openai 1.7.4, langgraph 1.2.24) through
  openinference-instrumentation-langchain 0.1.80, its only instrumentor (with the OpenAI
  one as well every call would be two LLM spans): one LLM span per model call.
  LangChain embeddings run no callbacks, so an embeddings call makes no span; the app
  embeds through a retriever, which makes a RETRIEVER span without model or tokens. A
  streamed ChatOpenAI span names the request model (`llm.model_name`), not the response
  model the stream reported; its tokens come through, so its cost is from the request
  model's price. OpenInference marks every run whose name contains "agent" AGENT
  (LangGraph's model node, once per loop turn) and the graph run CHAIN below the app span:
  normalize reads LangGraph's run metadata so the run is the one agent (README, span
  types). OpenAIEmbeddings' default context-length check calls tiktoken, which downloads
  its tables from the internet: the app turns it off. The LangChain spans carry one model
  key (`llm.model_name`), so llm_request_model stays null.
"""
import os
import subprocess
import sys
import time

import pytest

import fake_openai
from services import clickhouse  # noqa: F401  (fixture of the clickhouse store)

pytestmark = pytest.mark.usefixtures("store")  # every test runs on both stores

HERE = os.path.dirname(os.path.abspath(__file__))
QUESTION = 'What is the capital of France? Answer with the "city" name.'
GPT_4O_MINI = (0.15, 0.60, 0.075)  # prices.tsv: input, output, cache read, USD per 1M tokens
EMBED_3_SMALL = 0.02

# What each library reports beyond the basics: (cache_read, reasoning) token details, and
# whether the prompt shows on the span (searchable): openai-v2's default mode sends it as
# log records, which the collector attaches to their spans as events.
# stream_usage: whether it reports the usage and response model of a streamed call.
LIBRARIES = {
    "openai-v2": dict(details=False, prompt_on_span=True, request_model=True, stream_usage=True),
    "openai-v2-latest": dict(details=False, prompt_on_span=True, request_model=True,
                             stream_usage=True),
    "openinference": dict(details=True, prompt_on_span=True, request_model=False,
                          stream_usage=True),
    "traceloop": dict(details=True, prompt_on_span=True, request_model=True, stream_usage=True),
    "prela": dict(details=False, prompt_on_span=True, request_model=True, stream_usage=False),
    # optional keys: stream_model (the streamed span names the response model; default True),
    # embedding (the embeddings call is an embedding span, not only a retriever; default True),
    # graph (turn 4 is a LangGraph run: one agent, its nodes custom; default False)
    "langchain": dict(details=True, prompt_on_span=True, request_model=False, stream_usage=True,
                      stream_model=False, embedding=False, graph=True),
}


@pytest.fixture(scope="module")
def openai_server():
    srv = fake_openai.FakeOpenAI()
    yield srv
    srv.close()


def run_app(library, collector, server, session, user):
    r = subprocess.run([sys.executable, os.path.join(HERE, "llm_app.py"), library, collector.otlp,
                        server.base_url, session, user, collector.ingest],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{library} app failed:\n{r.stdout}\n{r.stderr}"


def traces_of(c, service, n):
    """The |n| traces of |service|, oldest first, once all are stored."""
    deadline = time.time() + 20
    while True:
        r = c.get("/api/v1/traces", service_name=service, limit=100)
        assert r.status_code == 200, r.text
        got = r.json()["traces"]
        if len(got) >= n:
            return list(reversed(got))
        assert time.time() < deadline, f"{len(got)} of {n} traces of {service}:\n{c.logs()}"
        time.sleep(0.2)


def spans_of(c, trace):
    r = c.get(f"/api/v1/traces/{trace['trace_id']}")
    assert r.status_code == 200, r.text
    return sorted(r.json()["spans"], key=lambda s: s["start_time_unix_nano"])


def llm_spans(spans):
    return [s for s in spans if s["span_type"] in ("llm", "embedding")]


def texts(messages):
    """(role, part type, text / tool name / tool response) of every part of |messages|."""
    out = []
    for m in messages or []:
        for p in m["parts"]:
            what = {"text": "content", "tool_call": "name", "tool_call_response": "response"}
            out.append((m["role"], p["type"], p.get(what.get(p["type"], "content"))))
    return out


def chat_cost(details):
    inp, out, cache = GPT_4O_MINI
    u = fake_openai.CHAT_USAGE
    cached = u["prompt_tokens_details"]["cached_tokens"] if details else 0
    return ((u["prompt_tokens"] - cached) * inp + cached * cache + u["completion_tokens"] * out) / 1e6


@pytest.mark.parametrize("library", list(LIBRARIES))
def test_library_spans_through_the_query_api(collector, openai_server, library):
    want = LIBRARIES[library]
    session, user = f"sess-{library}", f"user-{library}"
    sent = len(openai_server.requests)
    run_app(library, collector, openai_server, session, user)
    turns = traces_of(collector, f"llm-app-{library}", 5)
    assert len(turns) == 5
    for t in turns:
        assert (t["session_id"], t["user_id"]) == (session, user), t
    spans = [spans_of(collector, t) for t in turns]
    usage = fake_openai.CHAT_USAGE

    # 1. chat
    (chat,) = llm_spans(spans[0])
    assert chat["span_type"] == "llm" and chat["status"] == "success"
    assert chat["llm_provider"] == "openai"
    assert chat["llm_model"] == fake_openai.RESPONSE_MODEL
    assert chat["llm_request_model"] == ("gpt-4o-mini" if want["request_model"] else None)
    assert (chat["input_tokens"], chat["output_tokens"]) == (usage["prompt_tokens"],
                                                             usage["completion_tokens"])
    if want["details"]:
        assert chat["cache_read_tokens"] == usage["prompt_tokens_details"]["cached_tokens"]
        assert chat["reasoning_tokens"] == usage["completion_tokens_details"]["reasoning_tokens"]
    else:
        assert chat["cache_read_tokens"] is None and chat["reasoning_tokens"] is None
    assert chat["cost_source"] == "table"
    assert chat["cost_usd"] == pytest.approx(chat_cost(want["details"]), rel=1e-9)
    assert turns[0]["cost_usd"] == pytest.approx(chat["cost_usd"], rel=1e-9)  # the app span adds 0
    assert turns[0]["input_tokens"] == usage["prompt_tokens"]

    # the conversation, in the one message shape, where the library puts it on the span
    if want["prompt_on_span"]:
        assert texts(chat["input_messages"]) == [("system", "text", "You are terse."),
                                                 ("user", "text", QUESTION)]
        assert texts(chat["output_messages"]) == [("assistant", "text", fake_openai.ANSWER)]
        first, second = llm_spans(spans[3])
        assert ("assistant", "tool_call", "get_weather") in texts(first["output_messages"])
        assert ("tool", "tool_call_response", "sunny, 21 C") in texts(second["input_messages"])
    else:
        assert chat["input_messages"] is None  # in log records (not attached yet)

    # 2. streamed chat: same usage (include_usage), same model
    (stream,) = llm_spans(spans[1])
    if want["stream_usage"]:
        assert stream["llm_model"] == (fake_openai.RESPONSE_MODEL
                                       if want.get("stream_model", True) else "gpt-4o-mini")
        assert stream["output_tokens"] == usage["completion_tokens"]
        assert stream["cost_usd"] == pytest.approx(chat_cost(want["details"]), rel=1e-9)
    else:  # the request model, and no tokens: no cost
        assert stream["llm_model"] == "gpt-4o-mini" and stream["cost_usd"] is None

    # 3. embeddings
    if want.get("embedding", True):
        (emb,) = llm_spans(spans[2])
        assert emb["span_type"] == "embedding" and emb["llm_model"] == "text-embedding-3-small"
        assert emb["input_tokens"] == fake_openai.EMBED_TOKENS
        assert emb["cost_usd"] == pytest.approx(fake_openai.EMBED_TOKENS * EMBED_3_SMALL / 1e6,
                                                rel=1e-9)
    else:  # only the retriever that embedded the query: no model, no tokens, no cost
        assert llm_spans(spans[2]) == [] and turns[2]["cost_usd"] is None
        (retriever,) = [s for s in spans[2] if s["span_type"] == "retrieval"]
        assert retriever["status"] == "success" and retriever["llm_model"] is None
        assert [b["model"] for path, b in openai_server.requests[sent:]
                if path.endswith("/embeddings")] == ["text-embedding-3-small"] * 2  # text, query

    # 4. tool round: two LLM calls in one trace
    first, second = llm_spans(spans[3])
    assert (first["llm_model"], second["llm_model"]) == (fake_openai.RESPONSE_MODEL,) * 2
    assert turns[3]["cost_usd"] == pytest.approx(2 * chat_cost(want["details"]), rel=1e-9)
    tools = [s for s in spans[3] if s["span_type"] == "tool"]
    agents = [[s for s in t if s["span_type"] == "agent"] for t in spans]
    if want.get("graph"):
        # one agent: the graph run (below the app span); the nodes are custom, even the
        # model node OpenInference marks AGENT for its name "agent"
        (run,) = agents[3]
        assert run["name"] == "LangGraph" and run["parent_span_id"] == spans[3][0]["span_id"]
        nodes = [s for s in spans[3] if s["parent_span_id"] == run["span_id"]]
        assert sorted(s["name"] for s in nodes) == ["agent", "agent", "tools"]
        assert {s["span_type"] for s in nodes} == {"custom"}
        assert run["cost_usd"] is None  # its children's usage is not counted twice
        assert [s["name"] for s in tools] == ["get_weather"] and tools[0]["status"] == "success"
        assert sum(map(len, agents)) == 1
    else:
        assert sum(map(len, agents)) == 0, agents

    # 5. the failing call
    (fail,) = llm_spans(spans[4])
    assert fail["status"] == "error" and turns[4]["status"] == "error"
    assert fail["cost_usd"] is None  # no usage, no cost

    # sessions: the five traces, in order, with their totals
    s = collector.get(f"/api/v1/sessions/{session}").json()
    assert [t["trace_id"] for t in s["traces"]] == [t["trace_id"] for t in turns]
    assert s["session"]["trace_count"] == 5 and s["session"]["error_count"] == 1
    assert s["session"]["cost_usd"] == pytest.approx(sum(t["cost_usd"] or 0 for t in turns), rel=1e-9)

    # search: a word and a quoted phrase of the prompt, where the prompt is on the span
    if want["prompt_on_span"]:
        for q in ("capital", 'with the "city" name'):
            r = collector.get("/api/v1/search", query=q)
            assert r.status_code == 200, r.text
            found = {t["trace_id"] for t in r.json()["results"]}
            assert turns[0]["trace_id"] in found, (q, r.json())
