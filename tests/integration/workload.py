"""LLM-agent traces for the integration tests, as plain data plus encoders.

`make_traces(n)` returns n traces of 10 spans each (one agent root, four LLM chat
spans with gen_ai.* model/token attributes and prompt/completion text, two tool
spans, one embedding span, two HTTP client spans; one LLM span per trace in error
with an exception event). Each span records what the collector must report back
(`expect`): span_type, status, tokens. Encoders turn them into OTLP protobuf and
OTLP/JSON request bodies exactly as the OTLP specification defines them.
"""
import base64
import os
import random
import time

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

BASE_NS = 1_737_972_000_000_000_000  # 2025-01-27T10:00:00Z
PROMPT = ("You are a planning agent. Break the user's request into steps. " * 9)[:512]
COMPLETION = ("Step 1: search the knowledge base. Step 2: summarise. " * 5)[:256]


def recent(traces, ago_ns):
    """Moves |traces| (from make_traces) to end |ago_ns| before now, every time with them
    (trace, spans, events), for stores that expire old data (ClickHouse's TTL)."""
    delta = time.time_ns() - ago_ns - BASE_NS
    for t in traces:
        t["start"] += delta
        t["end"] += delta
        for s in t["spans"]:
            s["start"] += delta
            s["end"] += delta
            for e in s.get("events", []):
                e["time"] += delta
    return traces


def hexid(nbytes):
    return os.urandom(nbytes).hex()


def make_traces(n, seed=None):
    rnd = random.Random(seed)
    traces = []
    for t in range(n):
        trace_id = hexid(16)
        root = hexid(8)
        start = BASE_NS + t * 10_000_000_000
        spans = [dict(span_id=root, parent="", name="agent.run", kind=1, start=start,
                      end=start + 9_000_000_000, status=0,
                      attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
                             "agent.step_budget": 12, "agent.confidence": 0.75, "agent.autonomous": True,
                             "agent.tools": ["search", "calculator"],
                             "agent.config": {"temperature": 0.2, "retries": 3, "nested": {"deep": "yes"}},
                             "agent.fingerprint": b"\x00\x01\xfe\xff"},
                      expect=dict(span_type="agent", status="success", input=None, output=None))]
        err_llm = rnd.randrange(4)
        for i in range(4):
            inp, out = 100 + 10 * i + t, 20 + i
            s = dict(span_id=hexid(8), parent=root, name="chat gpt-4o-mini", kind=3,
                     start=start + (1 + i) * 1_000_000_000, end=start + (1 + i) * 1_000_000_000 + 800_000_000,
                     status=2 if i == err_llm else 1,
                     attrs={"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": inp,
                            "gen_ai.usage.output_tokens": out, "gen_ai.request.temperature": 0.2,
                            "gen_ai.prompt": PROMPT, "gen_ai.completion": COMPLETION,
                            "gen_ai.request.stop_sequences": ["\n\n", "END"]},
                     expect=dict(span_type="llm", status="error" if i == err_llm else "success",
                                 input=inp, output=out, model="gpt-4o-mini", provider="openai"))
            if i == err_llm:
                s["message"] = "rate limited by provider"
                s["events"] = [dict(name="exception", time=s["start"] + 700_000_000,
                                    attrs={"exception.type": "RateLimitError",
                                           "exception.message": "429 Too Many Requests"})]
            if i == 0:
                s["links"] = [dict(trace_id=trace_id, span_id=root, attrs={"link.kind": "parent-agent"})]
            spans.append(s)
        for i in range(2):
            spans.append(dict(span_id=hexid(8), parent=root, name="execute_tool search", kind=1,
                              start=start + (5 + i) * 1_000_000_000, end=start + (5 + i) * 1_000_000_000 + 200_000_000,
                              status=0, attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
                              expect=dict(span_type="tool", status="success", input=None, output=None)))
        spans.append(dict(span_id=hexid(8), parent=root, name="embeddings text-embedding-3-small", kind=3,
                          start=start + 7_000_000_000, end=start + 7_100_000_000, status=0,
                          attrs={"gen_ai.operation.name": "embeddings", "gen_ai.system": "openai",
                                 "gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": 50},
                          expect=dict(span_type="embedding", status="success", input=50, output=None)))
        for i in range(2):
            spans.append(dict(span_id=hexid(8), parent=root, name="POST", kind=3,
                              start=start + (8 + i) * 500_000_000 + 4_000_000_000,
                              end=start + (8 + i) * 500_000_000 + 4_100_000_000, status=0,
                              attrs={"http.request.method": "POST", "url.full": "https://api.example.com/v1/x",
                                     "http.response.status_code": 200},
                              expect=dict(span_type="custom", status="success", input=None, output=None)))
        traces.append(dict(trace_id=trace_id, root=root, service="agent-service", spans=spans,
                           start=start, end=start + 9_000_000_000))
    return traces


# --- OTLP protobuf --------------------------------------------------------------

def _any(v):
    a = common_pb2.AnyValue()
    if isinstance(v, bool):
        a.bool_value = v
    elif isinstance(v, int):
        a.int_value = v
    elif isinstance(v, float):
        a.double_value = v
    elif isinstance(v, str):
        a.string_value = v
    elif isinstance(v, bytes):
        a.bytes_value = v
    elif isinstance(v, list):
        a.array_value.values.extend(_any(x) for x in v)
    elif isinstance(v, dict):
        a.kvlist_value.values.extend(_kv(k, x) for k, x in v.items())
    return a


def _kv(k, v):
    return common_pb2.KeyValue(key=k, value=_any(v))


def to_proto(traces, service="agent-service"):
    """One ExportTraceServiceRequest holding every span of |traces| (serialized bytes)."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", service), _kv("deployment.environment", "test")])
    ss = rs.scope_spans.add()
    ss.scope.name = "agent-sdk"
    ss.scope.version = "1.2.3"
    for tr in traces:
        for s in tr["spans"]:
            p = ss.spans.add()
            p.trace_id = bytes.fromhex(tr["trace_id"])
            p.span_id = bytes.fromhex(s["span_id"])
            if s["parent"]:
                p.parent_span_id = bytes.fromhex(s["parent"])
            p.name = s["name"]
            p.kind = s["kind"]
            p.start_time_unix_nano = s["start"]
            p.end_time_unix_nano = s["end"]
            p.attributes.extend(_kv(k, v) for k, v in s["attrs"].items())
            p.status.code = s["status"]
            if s.get("message"):
                p.status.message = s["message"]
            for e in s.get("events", []):
                ev = p.events.add(time_unix_nano=e["time"], name=e["name"])
                ev.attributes.extend(_kv(k, v) for k, v in e["attrs"].items())
            for ln in s.get("links", []):
                lk = p.links.add(trace_id=bytes.fromhex(ln["trace_id"]), span_id=bytes.fromhex(ln["span_id"]))
                lk.attributes.extend(_kv(k, v) for k, v in ln["attrs"].items())
    return req.SerializeToString()


# --- OTLP/JSON (hex ids, 64-bit ints as strings, enums as integers) -------------

def _jany(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, bytes):
        return {"bytesValue": base64.b64encode(v).decode()}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_jany(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": _jany(x)} for k, x in v.items()]}}
    raise TypeError(v)


def _jattrs(d):
    return [{"key": k, "value": _jany(v)} for k, v in d.items()]


def to_json(traces, service="agent-service"):
    spans = []
    for tr in traces:
        for s in tr["spans"]:
            j = {"traceId": tr["trace_id"], "spanId": s["span_id"], "name": s["name"], "kind": s["kind"],
                 "startTimeUnixNano": str(s["start"]), "endTimeUnixNano": str(s["end"]),
                 "attributes": _jattrs(s["attrs"]), "status": {"code": s["status"]}}
            if s["parent"]:
                j["parentSpanId"] = s["parent"]
            if s.get("message"):
                j["status"]["message"] = s["message"]
            if s.get("events"):
                j["events"] = [{"timeUnixNano": str(e["time"]), "name": e["name"],
                                "attributes": _jattrs(e["attrs"])} for e in s["events"]]
            if s.get("links"):
                j["links"] = [{"traceId": ln["trace_id"], "spanId": ln["span_id"],
                               "attributes": _jattrs(ln["attrs"])} for ln in s["links"]]
            spans.append(j)
    return {"resourceSpans": [{
        "resource": {"attributes": _jattrs({"service.name": service, "deployment.environment": "test"})},
        "scopeSpans": [{"scope": {"name": "agent-sdk", "version": "1.2.3"}, "spans": spans}]}]}


# --- checks against the query API ------------------------------------------------

def expected_attr_json(v):
    """What the query API must return for an attribute value of |v|."""
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, dict):
        return {k: expected_attr_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [expected_attr_json(x) for x in v]
    return v


def check_trace(collector, tr, service="agent-service"):
    """Asserts that trace |tr| reads back complete and correct through the query API."""
    body = collector.trace(tr["trace_id"])
    t = body["trace"]
    assert body["span_count"] == len(tr["spans"]) == t["span_count"]
    assert t["trace_id"] == tr["trace_id"]
    assert t["root_span_id"] == tr["root"] and t["root_span_name"] == "agent.run"
    assert t["service_name"] == service
    assert t["status"] == "error"  # one LLM span per trace failed
    assert t["started_at"] == iso(tr["start"]) and t["completed_at"] == iso(tr["end"])
    assert abs(t["duration_ms"] - (tr["end"] - tr["start"]) / 1e6) < 1e-6
    assert t["input_tokens"] == sum(s["expect"]["input"] or 0 for s in tr["spans"])
    assert t["output_tokens"] == sum(s["expect"]["output"] or 0 for s in tr["spans"])
    by_id = {s["span_id"]: s for s in body["spans"]}
    assert len(by_id) == len(tr["spans"])
    starts = [s["start_time_unix_nano"] for s in body["spans"]]
    assert starts == sorted(starts), "spans must come by start time"
    for s in tr["spans"]:
        got = by_id[s["span_id"]]
        e = s["expect"]
        assert got["trace_id"] == tr["trace_id"]
        assert got["parent_span_id"] == s["parent"]
        assert got["name"] == s["name"]
        assert got["span_type"] == e["span_type"], (s["name"], got["span_type"])
        assert got["status"] == e["status"]
        assert got["service_name"] == service
        assert got["start_time_unix_nano"] == s["start"] and got["end_time_unix_nano"] == s["end"]
        assert got["started_at"] == iso(s["start"])
        assert abs(got["duration_ms"] - (s["end"] - s["start"]) / 1e6) < 1e-6
        assert got["input_tokens"] == e["input"] and got["output_tokens"] == e["output"]
        if e.get("model"):
            assert got["llm_model"] == e["model"] and got["llm_provider"] == e["provider"]
        assert got["kind"] == ["unspecified", "internal", "server", "client", "producer", "consumer"][s["kind"]]
        for k, v in s["attrs"].items():
            assert got["attributes"][k] == expected_attr_json(v), k
            assert type(got["attributes"][k]) is type(expected_attr_json(v)), k
        assert len(got["attributes"]) == len(s["attrs"])
        assert got["resource"]["service.name"] == service
        assert got["scope"]["name"] == "agent-sdk" and got["scope"]["version"] == "1.2.3"
        if s.get("message"):
            assert got["status_message"] == s["message"]
        assert [ev["name"] for ev in got["events"]] == [ev["name"] for ev in s.get("events", [])]
        for ev_got, ev in zip(got["events"], s.get("events", [])):
            assert ev_got["attributes"] == ev["attrs"]
            assert ev_got["time_unix_nano"] == ev["time"]
        assert [(ln["trace_id"], ln["span_id"]) for ln in got["links"]] == \
            [(ln["trace_id"], ln["span_id"]) for ln in s.get("links", [])]
        assert got["source"] == "otlp"


def iso(ns):
    import datetime
    dt = datetime.datetime.fromtimestamp(ns // 1_000_000_000, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % ((ns % 1_000_000_000) // 1000)
