"""The OTLP/HTTP receiver (:4318): protobuf and JSON requests of LLM-agent traces built
here, the OpenTelemetry Python SDK's HTTP exporter, compression, and OTLP answers."""
import gzip
import json
import time
import zlib

import pytest
import requests
import zstandard
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

import workload
from services import clickhouse  # noqa: F401  (fixture of the clickhouse store)

pytestmark = pytest.mark.usefixtures("store")  # every test runs on both stores

PROTO = {"Content-Type": "application/x-protobuf"}


def post(collector, body, headers):
    return requests.post(collector.otlp + "/v1/traces", data=body, headers=headers, timeout=30)


def test_protobuf_request_reads_back(collector):
    traces = workload.make_traces(30)  # 300 spans
    r = post(collector, workload.to_proto(traces), PROTO)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/x-protobuf"
    resp = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 0
    for tr in traces:
        workload.check_trace(collector, tr)
    listing = collector.get("/api/v1/traces", limit=1000).json()
    assert listing["count"] == 30
    assert [t["trace_id"] for t in listing["traces"]] == [t["trace_id"] for t in reversed(traces)]


def test_json_request_reads_back(collector):
    traces = workload.make_traces(30)
    r = post(collector, json.dumps(workload.to_json(traces)), {"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {} or r.json().get("partialSuccess", {}).get("rejectedSpans") in (None, "0", 0)
    for tr in traces:
        workload.check_trace(collector, tr)


def test_compressed_bodies(collector):
    for enc, fn in (("gzip", gzip.compress), ("deflate", zlib.compress),
                    ("zstd", zstandard.ZstdCompressor().compress)):
        traces = workload.make_traces(2)
        r = post(collector, fn(workload.to_proto(traces)), dict(PROTO, **{"Content-Encoding": enc}))
        assert r.status_code == 200, (enc, r.text)
        traces_j = workload.make_traces(2)
        r = post(collector, fn(json.dumps(workload.to_json(traces_j)).encode()),
                 {"Content-Type": "application/json", "Content-Encoding": enc})
        assert r.status_code == 200, (enc, r.text)
        for tr in traces + traces_j:
            workload.check_trace(collector, tr)


def test_trace_split_across_requests_out_of_order(collector):
    """Children first, root last, in separate requests: the summary is still right."""
    traces = workload.make_traces(3)
    for part in (lambda s: s[5:], lambda s: s[1:5], lambda s: s[:1]):
        chunk = [dict(tr, spans=part(tr["spans"])) for tr in traces]
        assert post(collector, workload.to_proto(chunk), PROTO).status_code == 200
    for tr in traces:
        workload.check_trace(collector, tr)
    # Re-sending everything (an SDK retry) must not duplicate anything.
    assert post(collector, workload.to_proto(traces), PROTO).status_code == 200
    for tr in traces:
        workload.check_trace(collector, tr)


def test_opentelemetry_sdk_http_exporter(collector):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    provider = TracerProvider(resource=Resource.create({"service.name": "otel-py-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.otlp + "/v1/traces")))
    tracer = provider.get_tracer("test.instrumentation", "0.9")
    with tracer.start_as_current_span("invoke_agent planner") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        with tracer.start_as_current_span("chat claude") as llm:
            llm.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                                "gen_ai.request.model": "claude-sonnet", "gen_ai.usage.input_tokens": 321,
                                "gen_ai.usage.output_tokens": 54, "gen_ai.request.temperature": 0.7,
                                "gen_ai.request.stop_sequences": ["a", "b"], "stream": False})
            llm.add_event("gen_ai.user.message", {"content": "hello"})
            llm.set_status(Status(StatusCode.ERROR, "overloaded"))
        trace_id = format(root.get_span_context().trace_id, "032x")
        root_id = format(root.get_span_context().span_id, "016x")
    provider.shutdown()
    body = collector.trace(trace_id)
    assert body["span_count"] == 2
    t = body["trace"]
    assert t["service_name"] == "otel-py-agent" and t["root_span_id"] == root_id
    assert t["status"] == "error" and t["input_tokens"] == 321 and t["output_tokens"] == 54
    llm = next(s for s in body["spans"] if s["name"] == "chat claude")
    assert llm["span_type"] == "llm" and llm["llm_provider"] == "anthropic"
    assert llm["status"] == "error" and llm["status_message"] == "overloaded"
    assert llm["attributes"]["gen_ai.request.stop_sequences"] == ["a", "b"]
    assert llm["attributes"]["stream"] is False
    assert llm["attributes"]["gen_ai.request.temperature"] == 0.7
    assert llm["events"][0]["attributes"] == {"content": "hello"}
    assert llm["scope"]["name"] == "test.instrumentation" and llm["scope"]["version"] == "0.9"
    assert llm["resource"]["service.name"] == "otel-py-agent"
    assert llm["kind"] == "internal"
    root_span = next(s for s in body["spans"] if s["span_id"] == root_id)
    assert root_span["span_type"] == "agent" and root_span["status"] == "success"


def test_partial_success_rejects_bad_spans_keeps_the_rest(collector):
    traces = workload.make_traces(1)
    doc = workload.to_json(traces)
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[3]["traceId"] = "abc"          # wrong length
    spans[4]["spanId"] = "0" * 16        # all zero: invalid
    r = post(collector, json.dumps(doc), {"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    ps = r.json()["partialSuccess"]
    assert int(ps["rejectedSpans"]) == 2 and ps["errorMessage"]
    assert collector.trace(traces[0]["trace_id"])["span_count"] == 8


def test_base64_ids_accepted_in_json(collector):
    import base64
    traces = workload.make_traces(1)
    doc = workload.to_json(traces)
    for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        s["traceId"] = base64.b64encode(bytes.fromhex(s["traceId"])).decode()
        s["spanId"] = base64.b64encode(bytes.fromhex(s["spanId"])).decode()
    r = post(collector, json.dumps(doc), {"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert collector.trace(traces[0]["trace_id"])["span_count"] == 10


def test_store_unavailable_answers_503_with_retry_after(make_collector):
    """While another process holds the store's write lock, nothing can be made durable:
    both receivers answer 503 + Retry-After (never 200), stay healthy, and accept the
    retry once the lock is gone, storing each span exactly once."""
    import sqlite3
    c = make_collector(local_extra="timeout: 300ms")
    lock = sqlite3.connect(c.data_dir + "/prela.db", timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    traces = workload.make_traces(1)
    r = post(c, workload.to_proto(traces), PROTO)
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    r2 = requests.post(c.ingest + "/v1/spans", json={"span_id": "busy-1", "trace_id": "t-busy"})
    assert r2.status_code == 503 and int(r2.headers["Retry-After"]) >= 1
    assert "retry" in r2.json()["detail"]
    assert requests.get(c.ingest + "/health").status_code == 200
    lock.execute("COMMIT")
    lock.close()
    # the SDKs' retries: the store's 300 ms deadline can pass on a busy machine even once
    # the lock is gone, and is then answered 503 again, never 200
    for send in (lambda: post(c, workload.to_proto(traces), PROTO),
                 lambda: requests.post(c.ingest + "/v1/spans", json={"span_id": "busy-1", "trace_id": "t-busy"})):
        deadline = time.time() + 10
        while (r := send()).status_code == 503 and time.time() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200, r.text
    workload.check_trace(c, traces[0])
    assert c.trace("t-busy")["span_count"] == 1
