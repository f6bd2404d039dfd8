"""The Prela receiver (:8001) driven by curl (the seed README's exact example) and by
the real Prela SDK from PyPI, read back through every query endpoint."""
import gzip
import json
import subprocess
import zlib

import pytest
import requests

import conftest
import zstandard
from services import clickhouse  # noqa: F401  (fixture of the clickhouse store)

pytestmark = pytest.mark.usefixtures("store")  # every test runs on both stores

SEED_TRACE = """{
    "trace_id": "test-trace-123",
    "service_name": "test-service",
    "started_at": "2025-01-27T10:00:00Z",
    "completed_at": "2025-01-27T10:00:01Z",
    "duration_ms": 1000,
    "status": "SUCCESS",
    "spans": [
      {
        "span_id": "span-1",
        "trace_id": "test-trace-123",
        "name": "test-operation",
        "span_type": "LLM",
        "started_at": "2025-01-27T10:00:00Z",
        "ended_at": "2025-01-27T10:00:01Z",
        "duration_ms": 1000,
        "status": "SUCCESS",
        "attributes": {"model": "gpt-4"},
        "events": []
      }
    ]
  }"""


def curl(*args):
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True,
                         text=True, check=True).stdout
    body, code = out.rsplit("\n", 1)
    return int(code), body


def test_seed_readme_curl_example(collector):
    code, body = curl("-X", "POST", collector.ingest + "/v1/traces",
                      "-H", "Content-Type: application/json", "-d", SEED_TRACE)
    assert code == 200, body
    reply = json.loads(body)
    assert reply["status"] == "accepted" and reply["trace_id"] == "test-trace-123"

    code, body = curl(collector.query + "/api/v1/traces")
    assert code == 200
    listing = json.loads(body)
    assert listing["count"] == 1 and listing["limit"] == 100 and listing["offset"] == 0
    t = listing["traces"][0]
    assert t["trace_id"] == "test-trace-123" and t["service_name"] == "test-service"
    assert t["status"] == "success" and t["span_count"] == 1 and t["root_span_id"] == "span-1"
    assert t["started_at"] == "2025-01-27T10:00:00.000000Z"
    assert t["completed_at"] == "2025-01-27T10:00:01.000000Z" and t["duration_ms"] == 1000.0

    code, body = curl(collector.query + "/api/v1/traces/test-trace-123")
    assert code == 200
    detail = json.loads(body)
    assert detail["span_count"] == 1 and detail["trace"]["trace_id"] == "test-trace-123"
    span = detail["spans"][0]
    assert span["span_id"] == "span-1" and span["span_type"] == "llm" and span["status"] == "success"
    assert span["attributes"] == {"model": "gpt-4"} and span["events"] == []
    assert span["llm_model"] == "gpt-4" and span["source"] == "prela"
    assert span["duration_ms"] == 1000.0 and span["parent_span_id"] == ""

    code, body = curl(collector.query + "/api/v1/traces/test-trace-123/spans")
    assert code == 200 and json.loads(body)["count"] == 1
    code, body = curl(collector.query + "/api/v1/search?query=test-operation")
    assert code == 200 and json.loads(body)["results"][0]["trace_id"] == "test-trace-123"
    code, body = curl(collector.query + "/api/v1/health")
    assert code == 200 and json.loads(body)["status"] == "healthy"
    code, body = curl(collector.ingest + "/health")
    assert code == 200 and json.loads(body)["status"] == "healthy"
    code, body = curl(collector.ingest + "/")
    assert code == 200 and json.loads(body)["status"] == "running"


def test_prela_sdk_http_exporter(collector):
    """The real SDK: nested spans, its '+00:00Z' timestamps, X-API-Key, gzip."""
    from prela.core.span import SpanType
    from prela.core.tracer import Tracer
    from prela.exporters.http import HTTPExporter

    trace_ids = []
    for compress in (False, True):
        exporter = HTTPExporter(endpoint=collector.ingest + "/v1/traces", api_key="prela_sk_test",
                                compress=compress, max_retries=0)
        tracer = Tracer(service_name="sdk-agent", exporter=exporter)
        with tracer.span("agent.plan", span_type=SpanType.AGENT) as root:
            trace_ids.append(root.trace_id)
            with tracer.span("anthropic.messages.create", span_type=SpanType.LLM) as llm:
                llm.set_attribute("llm.vendor", "anthropic")
                llm.set_attribute("llm.model", "claude-3-5-sonnet")
                llm.set_attribute("llm.input_tokens", 12)
                llm.set_attribute("llm.output_tokens", 30)
                llm.set_attribute("llm.temperature", 0.5)
                llm.set_attribute("llm.messages", [{"role": "user", "content": "hi"}])
                llm.add_event("llm.request", attributes={"messages": []})
            with tracer.span("tool.search", span_type=SpanType.TOOL) as tool:
                tool.set_attribute("tool.name", "search")
            try:
                with tracer.span("retrieve", span_type=SpanType.RETRIEVAL):
                    raise ValueError("index missing")
            except ValueError:
                pass
    for trace_id in trace_ids:
        assert len(trace_id) == 36  # UUIDs kept as sent
        body = collector.trace(trace_id)
        t = body["trace"]
        assert t["span_count"] == 4 and t["service_name"] == "sdk-agent"
        assert t["status"] == "error" and t["root_span_name"] == "agent.plan"
        assert t["input_tokens"] == 12 and t["output_tokens"] == 30
        spans = {s["name"]: s for s in body["spans"]}
        llm = spans["anthropic.messages.create"]
        assert llm["span_type"] == "llm" and llm["llm_provider"] == "anthropic"
        assert llm["llm_model"] == "claude-3-5-sonnet"
        assert llm["input_tokens"] == 12 and llm["output_tokens"] == 30
        assert llm["attributes"]["llm.temperature"] == 0.5
        assert llm["attributes"]["llm.messages"] == [{"role": "user", "content": "hi"}]
        assert llm["events"][0]["name"] == "llm.request"
        assert llm["parent_span_id"] == spans["agent.plan"]["span_id"]
        assert spans["retrieve"]["status"] == "error"
        assert spans["retrieve"]["attributes"]["error.type"] == "ValueError"
        assert spans["tool.search"]["span_type"] == "tool"
        assert spans["agent.plan"]["span_type"] == "agent"
        for s in body["spans"]:
            assert s["started_at"].endswith("Z") and s["ended_at"] is not None


def test_spans_and_batch_routes(collector):
    r = requests.post(collector.ingest + "/v1/spans", json={
        "span_id": "s-1", "trace_id": "t-spans", "name": "single", "span_type": "tool",
        "started_at": "2025-01-27T10:00:00.5+02:00", "ended_at": "2025-01-27T10:00:01+02:00",
        "status": "success", "attributes": {"n": 1}})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "span_id": "s-1", "trace_id": "t-spans"}
    s = collector.trace("t-spans")["spans"][0]
    assert s["started_at"] == "2025-01-27T08:00:00.500000Z" and s["duration_ms"] == 500.0

    batch = {"spans": [
        {"span_id": "b-1", "trace_id": "t-batch", "name": "ok", "started_at": "2025-01-27T10:00:00"},
        {"trace_id": "t-batch", "name": "no span id"},
        {"span_id": "b-2", "name": "no trace id"},
        {"span_id": "b-3", "trace_id": "t-batch", "parent_span_id": "b-1", "name": "ok2",
         "started_at": "2025-01-27T10:00:02", "ended_at": "2025-01-27T10:00:03", "status": "error"},
    ]}
    r = requests.post(collector.ingest + "/v1/batch", json=batch)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["ingested"] == 2 and j["total"] == 4 and j["rejected"] == 2
    assert "spans[1].span_id: required" in j["errors"][0]
    assert "spans[2].trace_id: required" in j["errors"][1]
    t = collector.trace("t-batch")
    assert t["span_count"] == 2 and t["trace"]["status"] == "error"
    assert t["trace"]["root_span_id"] == "b-1"


def test_every_route_accepts_compressed_bodies(collector):
    def post(route, payload, encoding):
        raw = json.dumps(payload).encode()
        body = {"gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress,
                "deflate": zlib.compress}[encoding](raw)
        return requests.post(collector.ingest + route, data=body, headers={
            "Content-Type": "application/json", "Content-Encoding": encoding})

    for enc in ("gzip", "zstd", "deflate"):
        tid = f"t-{enc}"
        span = {"span_id": f"{enc}-1", "trace_id": tid, "name": "compressed",
                "started_at": "2025-01-27T10:00:00Z"}
        assert post("/v1/traces", {"trace_id": tid, "spans": [span]}, enc).status_code == 200
        assert post("/v1/spans", dict(span, span_id=f"{enc}-2"), enc).status_code == 200
        assert post("/v1/batch", {"spans": [dict(span, span_id=f"{enc}-3")]}, enc).status_code == 200
        assert collector.trace(tid)["span_count"] == 3


def test_python_json_quirks(collector):
    """json.dumps output: NaN/Infinity tokens, \\u escapes, nested values, naive times."""
    body = ('{"trace_id": "t-quirks", "spans": [{"span_id": "q1", "trace_id": "t-quirks", '
            '"name": "caf\\u00e9 \\ud83d\\ude00", "started_at": "2025-01-27T10:00:00", '
            '"attributes": {"score": NaN, "hi": Infinity, "lo": -Infinity, "deep": {"a": [1, {"b": null}]}}}]}')
    r = requests.post(collector.ingest + "/v1/traces", data=body,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    s = collector.trace("t-quirks")["spans"][0]
    assert s["name"] == "café 😀"
    assert s["attributes"]["score"] == "NaN" and s["attributes"]["hi"] == "Infinity"
    assert s["attributes"]["lo"] == "-Infinity"
    assert s["attributes"]["deep"] == {"a": [1, {"b": None}]}


def test_removed_api_keys_setting_fails_startup_saying_what_to_write(tmp_path):
    """receivers.prela.api_keys moved to the top-level auth: section (every port)."""
    c = conftest.Collector(tmp_path, prela_extra="api_keys: [prela_sk_good]")
    r = subprocess.run([conftest.BIN, "--validate", "--config", str(c.config_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "receivers.prela.api_keys: removed" in r.stderr and "auth:" in r.stderr, r.stderr


def test_prela_sdk_otlp_exporter(collector):
    """The SDK's own OTLP/JSON exporter (default path /v1/traces on 4318)."""
    from prela.core.span import SpanType
    from prela.core.tracer import Tracer
    from prela.exporters.otlp import OTLPExporter

    tracer = Tracer(service_name="sdk-otlp", exporter=OTLPExporter(endpoint=collector.otlp + "/v1/traces"))
    with tracer.span("agent.run", span_type=SpanType.AGENT) as root:
        with tracer.span("openai.chat.completions.create", span_type=SpanType.LLM) as llm:
            llm.set_attribute("llm.vendor", "openai")
            llm.set_attribute("llm.model", "gpt-4o")
            llm.set_attribute("llm.prompt_tokens", 9)
            llm.set_attribute("llm.completion_tokens", 4)
    trace_id = root.trace_id.replace("-", "")[:32]
    body = collector.trace(trace_id)
    assert body["span_count"] == 2 and body["trace"]["service_name"] == "sdk-otlp"
    llm = next(s for s in body["spans"] if s["name"] == "openai.chat.completions.create")
    assert llm["span_type"] == "llm" and llm["source"] == "otlp"
    assert llm["input_tokens"] == 9 and llm["output_tokens"] == 4 and llm["llm_model"] == "gpt-4o"
    assert len(llm["span_id"]) == 16 and int(llm["span_id"], 16) >= 0  # UUID cut to 16 hex chars
