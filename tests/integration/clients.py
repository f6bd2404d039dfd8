"""Real OpenTelemetry clients for the conformance tests, and what they must read back.

A *spec* is one trace written down as plain data: trace id, span ids, parents, names,
kinds, nanosecond timestamps, status, attributes of every OTLP type, events, links,
resource and scope. Each client replays it through its SDK's public API:

  send_python(spec, exporter)   the OpenTelemetry Python SDK (this process)
  run_js(kind, endpoint, ...)   the OpenTelemetry JS SDK (tests/clients/js/send.js, node)
  run_telemetrygen(...)         the OpenTelemetry Collector's load generator (Go SDK)

`check_spec(collector, spec)` then asserts the collector reports back exactly that
trace through the query API.

For the hostile-input tests (issue 10), `WellBehaved` is the client that sends small
requests beside an attack: its latencies alone and under attack, and
`assert_not_starved`, the one bound they are held to. The JS SDK and telemetrygen are installed by
scripts/clients.sh at the paths below; a missing client fails the test (never skips).

Which client can carry which attribute type (see make_spec):
  Python SDK  string, bool, int (full int64), double (also integral ones like 2.0),
              homogeneous arrays, and kvlist + bytes on span, event, link and resource
              attributes (opentelemetry-sdk 1.45 accepts AnyValue attributes).
  JS SDK      string, bool, int (|n| <= 2^53), double, homogeneous arrays, arrays with
              null elements (sent as empty AnyValues); kvlist + bytes only as resource
              attributes (its span/event/link setters drop objects and Uint8Arrays).
  telemetrygen  string and int attributes only; it has no compression option.
"""
import base64
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import threading
import time

import workload

ROOT = pathlib.Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "clients" / "js"
TELEMETRYGEN = ROOT / ".tools" / "bin" / "telemetrygen"
BASE_NS = 1_737_972_000_000_000_000  # 2025-01-27T10:00:00Z
KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"]


def _missing(what, path):
    raise AssertionError(f"{what} is not installed (expected at {path}); run scripts/clients.sh")


def grpc_endpoint(collector):
    """The collector's gRPC endpoint, "127.0.0.1:PORT"."""
    ep = getattr(collector, "grpc", None)
    assert ep, "the test harness (conftest.Collector) has no gRPC endpoint: OTLP/gRPC is not configured"
    return ep


# --- the trace every SDK replays ----------------------------------------------------

# Every attribute type both SDKs can put on a span.
COMMON_ATTRS = {
    "conf.string": "héllo wörld ✓ \"quoted\" \\ \n tab\t",
    "conf.empty": "",
    "conf.bool.true": True,
    "conf.bool.false": False,
    "conf.int": -42,
    "conf.int.zero": 0,
    "conf.int.big": 9_007_199_254_740_991,      # 2^53 - 1, exact in JS too
    "conf.double": 0.5,
    "conf.double.neg": -1234.5678,
    "conf.double.tiny": 1.5e-300,
    "conf.strings": ["a", "", "ü"],
    "conf.ints": [1, -2, 3],
    "conf.doubles": [0.25, -1.5],
    "conf.bools": [True, False, True],
}

# Only the Python SDK can send these on a span: int64 extremes, a double whose value is
# integral (must stay a double), kvlist and bytes.
PYTHON_ATTRS = {
    "py.int64.max": 2**63 - 1,
    "py.int64.min": -2**63,
    "py.double.integral": 2.0,
    "py.map": {"model": "gpt-4o", "n": 2, "p": 0.5, "ok": True, "nested": {"list": [1, 2], "deep": {"x": "y"}}},
    "py.bytes": b"\x00\x01\xfe\xff",
    "py.bytes.empty": b"",
}

# JS only: an array with null elements goes out as empty AnyValues, which read back as null.
JS_ATTRS = {"js.sparse": [None, "x", None]}

# Resource attributes beyond service.name; kvlist and bytes here work in both SDKs.
RESOURCE_ATTRS = {
    "deployment.environment": "conformance",
    "host.labels": {"rack": "r1", "slots": 4, "gpu": True, "more": {"zone": "z"}},
    "host.fingerprint": b"\xde\xad\xbe\xef",
}


def make_spec(client, tag, python_only=False, js_only=False):
    """One trace of five spans (agent root, LLM call in error, tool call, producer and
    consumer), with every attribute type |client| can send. |tag| makes the service
    name unique: conf-<client>-<tag>."""
    trace_id = os.urandom(16).hex()
    ids = [os.urandom(8).hex() for _ in range(5)]
    t0 = BASE_NS + int.from_bytes(os.urandom(3), "big") * 1_000_000_000 + 123_456_789
    root_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "conformance", **COMMON_ATTRS}
    event_attrs = {"gen_ai.prompt": "What is 2+2?", "n": 3, "p": 0.75, "ok": True, "tags": ["x", "y"]}
    link_attrs = {"link.kind": "follows", "link.n": 7, "link.p": 0.125, "link.ok": False, "link.list": ["l"]}
    if python_only:
        root_attrs.update(PYTHON_ATTRS)
        event_attrs["py.map"] = {"k": "v", "n": 1}
        event_attrs["py.bytes"] = b"\x10\x20"
        link_attrs["py.map"] = {"k": [True]}
        link_attrs["py.bytes"] = b"\xff"
    if js_only:
        root_attrs.update(JS_ATTRS)
    spans = [
        dict(span_id=ids[0], parent="", name="invoke_agent conformance", kind="server",
             start=t0, end=t0 + 9_000_000_001, attrs=root_attrs, status="ok",
             expect=dict(span_type="agent", status="success")),
        dict(span_id=ids[1], parent=ids[0], name="chat gpt-4o-mini", kind="client",
             start=t0 + 1_000_000_007, end=t0 + 2_500_000_011,
             attrs={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 321,
                    "gen_ai.usage.output_tokens": 54, "gen_ai.request.temperature": 0.3},
             events=[dict(name="gen_ai.user.message", time=t0 + 1_000_000_013, attrs=event_attrs),
                     dict(name="exception", time=t0 + 2_400_000_017,
                          attrs={"exception.type": "RateLimitError", "exception.message": "429"})],
             links=[dict(trace_id=trace_id, span_id=ids[0], attrs=link_attrs),
                    dict(trace_id=os.urandom(16).hex(), span_id=os.urandom(8).hex(), attrs={})],
             status="error", message="rate limited: retry in 2s",
             expect=dict(span_type="llm", status="error", input=321, output=54, model="gpt-4o-mini",
                         provider="openai")),
        dict(span_id=ids[2], parent=ids[0], name="execute_tool search", kind="internal",
             start=t0 + 3_000_000_019, end=t0 + 3_200_000_023,
             attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}, status="unset",
             expect=dict(span_type="tool", status="success")),
        dict(span_id=ids[3], parent=ids[0], name="publish result", kind="producer",
             start=t0 + 4_000_000_029, end=t0 + 4_000_100_031,
             attrs={"messaging.system": "kafka", "messaging.batch.message_count": 1}, status="unset",
             expect=dict(span_type="custom", status="success")),
        dict(span_id=ids[4], parent=ids[3], name="consume result", kind="consumer",
             start=t0 + 5_000_000_037, end=t0 + 8_999_999_999,
             attrs={"messaging.system": "kafka"}, status="ok",
             expect=dict(span_type="custom", status="success")),
    ]
    return dict(trace_id=trace_id, service=f"conf-{client}-{tag}", tag=tag,
                scope=dict(name=f"conformance.{client}", version="1.2.3"),
                resource={"service.name": f"conf-{client}-{tag}", **RESOURCE_ATTRS},
                spans=spans, start=t0, end=t0 + 9_000_000_001)


# --- OpenTelemetry Python SDK ---------------------------------------------------------

def send_python(spec, exporter):
    """Replays |spec| through the Python SDK's tracing API and exports it with |exporter|
    (one batch). Returns the SpanExportResults; asserts every export succeeded."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    class Replay(IdGenerator):
        def __init__(self):
            self.span_ids = [int(s["span_id"], 16) for s in spec["spans"]]

        def generate_span_id(self):
            return self.span_ids.pop(0)

        def generate_trace_id(self):
            return int(spec["trace_id"], 16)

    class Recording(SpanExporter):
        def __init__(self, inner):
            self.inner, self.results, self.exported = inner, [], 0

        def export(self, spans):
            r = self.inner.export(spans)
            self.results.append(r)
            if r == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            return r

        def shutdown(self):
            self.inner.shutdown()

        def force_flush(self, timeout_millis=30000):
            return True

    recording = Recording(exporter)
    provider = TracerProvider(resource=Resource.create({**spec["resource"], "conformance.run": spec["tag"]}),
                              id_generator=Replay())
    provider.add_span_processor(BatchSpanProcessor(recording, schedule_delay_millis=60_000, max_export_batch_size=512))
    tracer = provider.get_tracer(spec["scope"]["name"], spec["scope"]["version"],
                                 attributes={"scope.flavor": "python"})
    kinds = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT,
             "producer": SpanKind.PRODUCER, "consumer": SpanKind.CONSUMER}
    made = {}
    for s in spec["spans"]:
        ctx = otel_trace.set_span_in_context(made[s["parent"]]) if s["parent"] else otel_context.Context()
        links = [Link(SpanContext(int(ln["trace_id"], 16), int(ln["span_id"], 16), is_remote=True,
                                  trace_flags=TraceFlags(TraceFlags.SAMPLED)), ln["attrs"])
                 for ln in s.get("links", [])]
        span = tracer.start_span(s["name"], context=ctx, kind=kinds[s["kind"]], attributes=s["attrs"],
                                 links=links, start_time=s["start"])
        for e in s.get("events", []):
            span.add_event(e["name"], e["attrs"], timestamp=e["time"])
        if s["status"] == "error":
            span.set_status(Status(StatusCode.ERROR, s["message"]))
        elif s["status"] == "ok":
            span.set_status(Status(StatusCode.OK))
        made[s["span_id"]] = span
    for s in reversed(spec["spans"]):
        made[s["span_id"]].end(end_time=s["end"])
    provider.force_flush()
    provider.shutdown()
    assert recording.results and all(r == SpanExportResult.SUCCESS for r in recording.results), recording.results
    assert recording.exported == len(spec["spans"]), (recording.exported, len(spec["spans"]))
    return recording.results


# --- OpenTelemetry JS SDK -------------------------------------------------------------

def _js_value(v):
    if isinstance(v, bytes):
        return {"$bytes": base64.b64encode(v).decode()}
    if isinstance(v, dict):
        return {k: _js_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_js_value(x) for x in v]
    return v


def _hr(ns):
    """Nanoseconds as the JS SDK's HrTime [seconds, nanoseconds] (exact, unlike a JS number)."""
    return [ns // 1_000_000_000, ns % 1_000_000_000]


def to_js_spec(spec):
    """The spec as send.js reads it (timestamps as HrTime, bytes as {"$bytes": b64})."""
    spans = []
    for s in spec["spans"]:
        spans.append(dict(span_id=s["span_id"], parent=s["parent"], name=s["name"], kind=s["kind"],
                          start=_hr(s["start"]), end=_hr(s["end"]), attrs=_js_value(s["attrs"]),
                          status=s["status"], message=s.get("message"),
                          events=[dict(name=e["name"], time=_hr(e["time"]), attrs=_js_value(e["attrs"]))
                                  for e in s.get("events", [])],
                          links=[dict(trace_id=ln["trace_id"], span_id=ln["span_id"], attrs=_js_value(ln["attrs"]))
                                 for ln in s.get("links", [])]))
    return dict(trace_id=spec["trace_id"], scope=spec["scope"], resource=_js_value(spec["resource"]), spans=spans)


def run_js(kind, endpoint, compression, spec, timeout=60):
    """Runs tests/clients/js/send.js: |kind| http-json, http-proto or grpc; |endpoint|
    http://host:port; |compression| none or gzip. Returns its parsed stdout line."""
    node = shutil.which("node")
    if not node:
        _missing("Node.js", "PATH")
    for pkg in ("sdk-trace-base", "exporter-trace-otlp-http", "exporter-trace-otlp-proto",
                "exporter-trace-otlp-grpc"):
        path = JS_DIR / "node_modules" / "@opentelemetry" / pkg
        if not path.is_dir():
            _missing(f"@opentelemetry/{pkg}", path)
    p = subprocess.run([node, str(JS_DIR / "send.js"), kind, endpoint, compression, spec["tag"]],
                       input=json.dumps(to_js_spec(spec)), capture_output=True, text=True, timeout=timeout,
                       cwd=JS_DIR)
    assert p.returncode == 0, f"send.js {kind} {compression} failed ({p.returncode}):\n{p.stderr}\n{p.stdout}"
    return json.loads(p.stdout.strip().splitlines()[-1])


# --- telemetrygen -----------------------------------------------------------------------

def run_telemetrygen(args, timeout=120):
    """Runs `telemetrygen traces ARGS`; returns the CompletedProcess (exit 0 asserted)."""
    if not os.access(TELEMETRYGEN, os.X_OK):
        _missing("telemetrygen", TELEMETRYGEN)
    p = subprocess.run([str(TELEMETRYGEN), "traces", *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"telemetrygen failed ({p.returncode}):\n{p.stderr[-4000:]}"
    return p


def traces_of_service(collector, service):
    """Every trace summary of |service| from the query API, paging 1000 at a time."""
    out, cursor = [], None
    while True:
        r = collector.get("/api/v1/traces", service_name=service, limit=1000, cursor=cursor)
        assert r.status_code == 200, r.text
        page = r.json()["traces"]
        out += page
        if len(page) < 1000:
            return out
        cursor = r.json()["next"]


# --- what the query API must report ----------------------------------------------------

def same_json(got, want):
    """Equal values and equal JSON types all the way down (True is not 1, 2.0 is not 2)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(same_json(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(same_json, got, want))
    return type(got) is type(want) and got == want


def assert_attrs(got, want, where, exact=True):
    """Attributes |got| from the query API equal |want| (as sent), types kept."""
    want = {k: workload.expected_attr_json(v) for k, v in want.items()}
    if exact:
        assert got.keys() == want.keys(), (where, sorted(set(got) ^ set(want)))
    for k, v in want.items():
        assert k in got, (where, k)
        assert same_json(got[k], v), (where, k, got[k], v)


def check_spec(collector, spec, sdk_language, scope_attrs=None):
    """Asserts the trace of |spec| reads back exactly through the query API, sent by an
    SDK whose telemetry.sdk.language is |sdk_language|, with scope attributes
    |scope_attrs| (when the SDK can set them). Returns the query API's answer."""
    body = collector.trace(spec["trace_id"])
    t = body["trace"]
    spans = spec["spans"]
    assert body["span_count"] == t["span_count"] == len(spans)
    assert t["trace_id"] == spec["trace_id"]
    assert t["root_span_id"] == spans[0]["span_id"] and t["root_span_name"] == spans[0]["name"]
    assert t["service_name"] == spec["service"]
    assert t["status"] == "error"
    assert t["started_at"] == workload.iso(spec["start"]) and t["completed_at"] == workload.iso(spec["end"])
    assert t["input_tokens"] == 321 and t["output_tokens"] == 54
    assert t["source"] == "otlp"
    by_id = {s["span_id"]: s for s in body["spans"]}
    assert sorted(by_id) == sorted(s["span_id"] for s in spans)
    for s in spans:
        got, e = by_id[s["span_id"]], s["expect"]
        where = s["name"]
        assert got["trace_id"] == spec["trace_id"] and got["parent_span_id"] == s["parent"], where
        assert got["name"] == s["name"] and got["kind"] == s["kind"], (where, got["kind"])
        assert got["start_time_unix_nano"] == s["start"] and got["end_time_unix_nano"] == s["end"], where
        assert got["started_at"] == workload.iso(s["start"]) and got["ended_at"] == workload.iso(s["end"]), where
        assert abs(got["duration_ms"] - (s["end"] - s["start"]) / 1e6) < 1e-6, where
        assert got["span_type"] == e["span_type"] and got["status"] == e["status"], (where, got["span_type"],
                                                                                      got["status"])
        if s["status"] == "error":
            assert got["status_message"] == s["message"], where
        if e.get("model"):
            assert got["llm_model"] == e["model"] and got["llm_provider"] == e["provider"], where
            assert got["input_tokens"] == e["input"] and got["output_tokens"] == e["output"], where
        assert_attrs(got["attributes"], s["attrs"], where)
        assert [ev["name"] for ev in got["events"]] == [ev["name"] for ev in s.get("events", [])], where
        for ev_got, ev in zip(got["events"], s.get("events", [])):
            assert ev_got["time_unix_nano"] == ev["time"], (where, ev["name"])
            assert ev_got["timestamp"] == workload.iso(ev["time"])
            assert_attrs(ev_got["attributes"], ev["attrs"], (where, ev["name"]))
        assert len(got["links"]) == len(s.get("links", [])), where
        for ln_got, ln in zip(got["links"], s.get("links", [])):
            assert (ln_got["trace_id"], ln_got["span_id"]) == (ln["trace_id"], ln["span_id"]), where
            assert_attrs(ln_got["attributes"], ln["attrs"], (where, "link"))
        assert_attrs(got["resource"], {**spec["resource"], "conformance.run": spec["tag"]}, (where, "resource"),
                     exact=False)
        assert got["resource"].get("telemetry.sdk.language") == sdk_language, got["resource"]
        assert got["scope"]["name"] == spec["scope"]["name"] and got["scope"]["version"] == spec["scope"]["version"]
        if scope_attrs is not None:
            assert_attrs(got["scope"]["attributes"], scope_attrs, (where, "scope"))
        assert got["service_name"] == spec["service"] and got["source"] == "otlp"
    return body


# --- a well-behaved client beside an attack (issue 10) ------------------------------

def p99(xs):
    """The 99th percentile of |xs| (the largest value below 100 samples)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class Sample:
    """What one measurement of a well-behaved client saw: each call's latency (seconds)
    and outcome, in order."""

    def __init__(self):
        self.latencies, self.outcomes = [], []

    @property
    def p99(self):
        assert self.latencies, "the well-behaved client made no call"
        return p99(self.latencies)

    def failures(self, ok):
        return [o for o in self.outcomes if o != ok]


class WellBehaved:
    """A well-behaved client. |call()| makes one small request and returns its outcome
    (an HTTP status, a gRPC code name: what counts as success is the `ok` given to
    assert_not_starved); an exception is recorded as its repr, so a failing call fails
    the test rather than ending a thread. |pause| seconds separate calls."""

    def __init__(self, call, pause=0.0):
        self.call, self.pause = call, pause

    def _one(self, sample):
        t0 = time.perf_counter()
        try:
            outcome = self.call()
        except Exception as e:  # noqa: BLE001 (recorded, and asserted by the caller)
            outcome = repr(e)
        sample.latencies.append(time.perf_counter() - t0)
        sample.outcomes.append(outcome)

    def run(self, n):
        """|n| calls one after another in this thread: the baseline, or a measurement
        while an attack runs in other threads. Returns the Sample."""
        sample = Sample()
        for _ in range(n):
            self._one(sample)
            time.sleep(self.pause)
        return sample

    @contextlib.contextmanager
    def alongside(self):
        """Calls one after another in a background thread from entry until exit (the
        call under way at exit finishes first): wrap the attack in it. Yields the
        Sample, complete once the block has exited."""
        sample, stop = Sample(), threading.Event()

        def loop():
            while not stop.is_set():
                self._one(sample)
                stop.wait(self.pause)

        th = threading.Thread(target=loop, daemon=True)
        th.start()
        try:
            yield sample
        finally:
            stop.set()
            th.join(timeout=120)
            assert not th.is_alive(), "the well-behaved client's call never returned"


# Under attack the well-behaved client's p99 must stay below this many times its p99
# alone, or below the floor (seconds), whichever is larger: the floor keeps a
# millisecond baseline on a loaded 2-core machine from failing on scheduling noise;
# starvation (calls waiting on the attacker's deadlines or on a 37 s write) exceeds both.
STARVED_FACTOR, STARVED_FLOOR = 20, 1.0


def assert_not_starved(what, alone, attacked, attack, ok=200, min_calls=10,
                       factor=STARVED_FACTOR, floor=STARVED_FLOOR):
    """Prints |what|'s p99 alone and beside |attack| (pytest -s), then asserts every call
    of the Samples ended in |ok|, the attacked one made at least |min_calls| calls, and
    its p99 is below max(|floor|, |factor| * the p99 alone)."""
    bound = max(floor, factor * alone.p99)
    print(f"\nwell-behaved {what} p99: {alone.p99 * 1000:.1f} ms alone ({len(alone.latencies)} "
          f"calls), {attacked.p99 * 1000:.1f} ms beside {attack} "
          f"({len(attacked.latencies)} calls; bound {bound * 1000:.0f} ms)")
    for name, sample in (("alone", alone), ("under attack", attacked)):
        assert not sample.failures(ok), (name, sample.failures(ok)[:5])
    assert len(attacked.latencies) >= min_calls, \
        f"only {len(attacked.latencies)} calls beside {attack}"
    assert attacked.p99 < bound, (what, alone.p99, attacked.p99)
