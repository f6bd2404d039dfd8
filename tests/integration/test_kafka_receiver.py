"""The kafka receiver against a real broker: a gateway collector (prela/otlp receivers →
normalize → kafka exporter) and a storage collector (kafka receiver → normalize → local
store, query API) on the same broker. What the real Prela SDK and OpenTelemetry SDK send to
the gateway is served by the storage collector's query API exactly once and field for field
as the gateway's own store serves it, in all three encodings; a poison message is skipped;
a storage collector killed mid-stream and restarted loses nothing and duplicates nothing.

Each test uses its own topics and consumer group, so tests sharing the broker never meet."""
import time
import uuid

import pytest
import requests
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

import clients
import workload
from services import kafka  # noqa: F401  (fixture)


def make_topics(kafka, run):
    topics = {"spans": f"kr-spans-{run}", "traces": f"kr-traces-{run}"}
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    futures = admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1)
                                   for t in topics.values()])
    for f in futures.values():
        f.result(30)
    return topics


def gateway(make_collector, kafka, topics, encoding):
    exporter = f"""
kafka:
  brokers: {kafka.bootstrap}
  encoding: {encoding}
  topics:
    spans: {topics['spans']}
    traces: {topics['traces']}
"""
    pipelines = """
traces/kafka:
  receivers: [prela, otlp]
  processors: [normalize]
  exporters: [kafka]
"""
    return make_collector(exporters_extra=exporter, pipelines_extra=pipelines)


def storage(make_collector, kafka, topics, encoding, group, data_dir=None, ch=None):
    """A storage collector: the kafka receiver (consumer group |group|) into its local
    store, or with |ch| (the clickhouse fixture) into a fresh ClickHouse database that
    its query API then serves."""
    receiver = f"""
kafka:
  brokers: {kafka.bootstrap}
  group_id: {group}
  topics: [{topics['spans']}, {topics['traces']}]
  encoding: {encoding}
  max_batch_wait: 50ms
"""
    exporters, store = "", "local"
    if ch:
        exporters = f"""
clickhouse:
  host: 127.0.0.1
  port: {ch.port}
  database: {ch.database()}
"""
        store = "clickhouse"
    pipelines = f"""
traces/kafka:
  receivers: [kafka]
  processors: [normalize]
  exporters: [{store}]
"""
    return make_collector(receivers_extra=receiver, pipelines_extra=pipelines,
                          exporters_extra=exporters, query_store=store, data_dir=data_dir)


def wait_spans(c, trace_id, count, timeout=60):
    """Waits until |c| serves |count| spans of |trace_id|; returns the trace body."""
    deadline = time.time() + timeout
    body = None
    while time.time() < deadline:
        r = c.get(f"/api/v1/traces/{trace_id}")
        if r.status_code == 200:
            body = r.json()
            if len(body["spans"]) >= count:
                return body
        time.sleep(0.1)
    raise AssertionError(f"{trace_id}: {len(body['spans']) if body else 0} of {count} spans "
                         f"after {timeout}s\n{c.logs()}")


def send_prela_sdk(gw, service):
    """One nested trace from the real Prela SDK (UUID ids); returns its trace id."""
    from prela.core.span import SpanType
    from prela.core.tracer import Tracer
    from prela.exporters.http import HTTPExporter
    tracer = Tracer(service_name=service,
                    exporter=HTTPExporter(endpoint=gw.ingest + "/v1/traces", max_retries=0))
    with tracer.span("agent.plan", span_type=SpanType.AGENT) as root:
        with tracer.span("anthropic.messages.create", span_type=SpanType.LLM) as llm:
            llm.set_attribute("llm.vendor", "anthropic")
            llm.set_attribute("llm.model", "claude-3-5-sonnet")
            llm.set_attribute("llm.input_tokens", 12)
            llm.set_attribute("llm.output_tokens", 30)
            llm.set_attribute("llm.temperature", 0.5)
            llm.set_attribute("llm.big", 2 ** 62)
            llm.set_attribute("llm.messages", [{"role": "user", "content": "héllo ✓"}])
            llm.add_event("llm.request", attributes={"n": 1})
        try:
            with tracer.span("retrieve", span_type=SpanType.RETRIEVAL):
                raise ValueError("index missing")
        except ValueError:
            pass
    return root.trace_id


def send_otel_sdk(gw, tag):
    spec = clients.make_spec("python", tag, python_only=True)
    clients.send_python(spec, OTLPSpanExporter(endpoint=gw.otlp + "/v1/traces"))
    return spec["trace_id"], len(spec["spans"])


def send_workload(gw, n):
    traces = workload.make_traces(n)
    r = requests.post(gw.otlp + "/v1/traces", data=workload.to_proto(traces), timeout=30,
                      headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    return traces


def ts(iso):
    from datetime import datetime
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def assert_same(st, gw, trace_id, count, otlp=False):
    """The storage collector serves the trace exactly as the gateway's own store does.
    |otlp|: the OTLP encodings carry no ingest time, so created_at is the Kafka message's
    timestamp (the gateway's produce time, ms): just after the gateway's own."""
    got = wait_spans(st, trace_id, count)
    want = gw.trace(trace_id)
    assert len(got["spans"]) == count, got
    key = lambda s: s["span_id"]  # noqa: E731
    got_spans, want_spans = sorted(got["spans"], key=key), sorted(want["spans"], key=key)
    assert [s["span_id"] for s in got_spans] == [s["span_id"] for s in want_spans]
    for g, w in zip(got_spans, want_spans):
        for field in sorted(set(g) | set(w)):
            if otlp and field == "created_at":
                assert 0 <= ts(g[field]) - ts(w[field]) < 5, (g[field], w[field])
                continue
            if otlp and field == "resource":  # plus what the OTLP encodings add (src/formats/kafka_message.h)
                extra = {k: v for k, v in g[field].items() if k not in w[field]}
                assert {k: g[field][k] for k in w[field]} == w[field]
                assert set(extra) <= {"prela.project_id", "service.name"}, extra
                assert extra.get("prela.project_id", g["project_id"]) == g["project_id"]
                assert extra.get("service.name", g["service_name"]) == g["service_name"]
                continue
            assert g.get(field) == w.get(field), (field, g.get(field), w.get(field))
    for field in ("span_count", "status", "service_name", "root_span_id", "root_span_name",
                  "input_tokens", "output_tokens", "started_at", "completed_at", "project_id"):
        assert got["trace"].get(field) == want["trace"].get(field), field


@pytest.mark.parametrize("encoding", ["prela_json", "otlp_proto", "otlp_json"])
def test_round_trip(make_collector, kafka, encoding):
    run = f"{encoding}-{uuid.uuid4().hex[:8]}"
    topics = make_topics(kafka, run)
    gw = gateway(make_collector, kafka, topics, encoding)
    st = storage(make_collector, kafka, topics, encoding, f"g-{run}")
    prela_trace = send_prela_sdk(gw, f"sdk-{run}")
    otel_trace, otel_count = send_otel_sdk(gw, run)
    traces = send_workload(gw, 3)
    otlp = encoding != "prela_json"
    assert_same(st, gw, prela_trace, 3, otlp)
    assert_same(st, gw, otel_trace, otel_count, otlp)
    for t in traces:
        assert_same(st, gw, t["trace_id"], len(t["spans"]), otlp)
    llm = next(s for s in st.trace(prela_trace)["spans"] if s["span_type"] == "llm")
    assert len(llm["span_id"]) == 36 and llm["llm_model"] == "claude-3-5-sonnet"
    assert llm["attributes"]["llm.big"] == 2 ** 62 and llm["input_tokens"] == 12


def test_poison_message_is_skipped(make_collector, kafka):
    run = "poison-" + uuid.uuid4().hex[:8]
    topics = make_topics(kafka, run)
    gw = gateway(make_collector, kafka, topics, "prela_json")
    st = storage(make_collector, kafka, topics, "prela_json", f"g-{run}")
    p = Producer({"bootstrap.servers": kafka.bootstrap})
    for partition in range(3):  # one on every partition, before the good data
        p.produce(topics["spans"], value=b'{"trace_id": 7, "span_id": ', partition=partition)
        p.produce(topics["spans"], value=b"\xff\xfe not json", partition=partition)
    assert p.flush(30) == 0
    traces = send_workload(gw, 3)
    for t in traces:
        assert_same(st, gw, t["trace_id"], len(t["spans"]))
    deadline = time.time() + 10  # the six poison messages are logged with their offsets
    while st.log_path.read_text().count("skipping undecodable message") < 6 and time.time() < deadline:
        time.sleep(0.05)
    assert st.log_path.read_text().count("skipping undecodable message") == 6, st.logs()


def test_sigkill_mid_stream_loses_nothing(make_collector, kafka, tmp_path):
    run = "kill-" + uuid.uuid4().hex[:8]
    topics = make_topics(kafka, run)
    gw = gateway(make_collector, kafka, topics, "otlp_proto")
    data_dir = str(tmp_path / "storage-data")
    st = storage(make_collector, kafka, topics, "otlp_proto", f"g-{run}", data_dir=data_dir)
    first = send_workload(gw, 5)
    wait_spans(st, first[0]["trace_id"], len(first[0]["spans"]))
    later = []
    for _ in range(4):  # keep the stream going while the storage collector dies
        later += send_workload(gw, 5)
    st.proc.kill()
    st.proc.wait()
    st.log.close()
    st.proc = None  # killed on purpose: teardown must not count it as a failed exit
    later += send_workload(gw, 5)
    st2 = storage(make_collector, kafka, topics, "otlp_proto", f"g-{run}", data_dir=data_dir)
    # the killed member holds its partitions until the session timeout (session_timeout, 10 s)
    wait_spans(st2, later[-1]["trace_id"], len(later[-1]["spans"]), timeout=120)
    for t in first + later:
        assert_same(st2, gw, t["trace_id"], len(t["spans"]), otlp=True)
    # exactly once in the store: the listing of the project counts each span once
    total = sum(len(t["spans"]) for t in first + later)
    got = 0
    for t in first + later:
        got += len(st2.trace(t["trace_id"])["spans"])
    assert got == total
