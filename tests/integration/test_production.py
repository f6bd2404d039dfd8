"""The production path as its roles run it: the shipped configs/gateway.yaml and
configs/storage.yaml, configured only through the environment variables they document,
on a real Kafka broker and a real ClickHouse server (services.py):

  SDK → gateway (receivers → Kafka) → storage (Kafka → ClickHouse) → query API

Every test uses its own topics, consumer group and ClickHouse database. What must hold:
every span a gateway answered 200 for is shown by the storage collector's query API
exactly once, whatever stops in between (the storage collector, ClickHouse, Kafka).
"""
import os
import pathlib
import signal
import subprocess
import threading
import time
import uuid

import pytest
import requests

import clients
import conftest
import workload
from services import clickhouse, kafka  # noqa: F401  (fixtures)

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The shipped configs require API keys (PRELA_KEYS_FILE): the SDKs and the gateway's
# clients ingest with INGEST_KEY, the query API is read with READ_KEY, both of project
# "prod", so the project also travels through Kafka to the storage collector.
INGEST_KEY, READ_KEY = "prod-ingest-key-0000000000000001", "prod-read-key-00000000000000002"
KEYS_YAML = f"""keys:
  - {{name: prod-sdk, key: {INGEST_KEY}, project: prod, scopes: [ingest]}}
  - {{name: prod-dashboard, key: {READ_KEY}, project: prod, scopes: [read]}}
"""


class Role(conftest.Collector):
    """One prela-collector running configs/<role>.yaml with |env|; `query`, `ingest`,
    `otlp` are its URLs (those its role serves). Stopping, logs and the query API
    helpers are conftest.Collector's."""

    def __init__(self, tmp_path, role, env):
        self.role, self.env, self.tmp_path = role, env, tmp_path
        self.ingest = "http://" + env["PRELA_INGEST_ENDPOINT"]
        self.otlp = "http://" + env["PRELA_OTLP_HTTP_ENDPOINT"]
        self.query = "http://" + env["PRELA_QUERY_ENDPOINT"]
        self.proc = None
        self.starts = 0
        self.read_key = READ_KEY

    def start(self):
        self.starts += 1
        self.log_path = self.tmp_path / f"{self.role}-{self.starts}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([conftest.BIN, "--config", str(ROOT / "configs" / f"{self.role}.yaml")],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        url = self.ingest + "/health" if self.role == "gateway" else self.query + "/api/v1/health"
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, f"{self.role} exited with {self.proc.returncode}:\n{self.logs()}"
            try:
                if requests.get(url, timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.role} did not become ready:\n{self.logs()}")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def wait_trace(self, trace_id, spans, timeout=90):
        """Waits until |trace_id| shows |spans| spans; returns the query API's answer."""
        deadline, last = time.time() + timeout, None
        while time.time() < deadline:
            r = self.get(f"/api/v1/traces/{trace_id}")
            if r.status_code == 200:
                last = r.json()
                if last["trace"]["span_count"] >= spans:
                    return last
            time.sleep(0.1)
        raise AssertionError(f"trace {trace_id}: {last and last['trace']['span_count']} of {spans} spans "
                             f"after {timeout}s\n{self.logs()}")


@pytest.fixture
def roles(tmp_path, kafka, clickhouse):
    """roles(run, **env) → (gateway, storage): not yet started; both are stopped at
    teardown and must exit 0."""
    made = []
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(KEYS_YAML)

    def make(**extra):
        run = uuid.uuid4().hex[:10]
        extra.setdefault("PRELA_KEYS_FILE", str(keys_file))
        base = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap,
                    KAFKA_TOPIC_SPANS=f"spans-{run}", KAFKA_TOPIC_TRACES=f"traces-{run}",
                    KAFKA_TOPIC_METRICS=f"metrics-{run}", KAFKA_TOPIC_LOGS=f"logs-{run}",
                    KAFKA_GROUP_ID=f"storage-{run}", CLICKHOUSE_HOST="127.0.0.1",
                    CLICKHOUSE_PORT=str(clickhouse.port), CLICKHOUSE_DATABASE=clickhouse.database(),
                    PRELA_LOG_LEVEL="info", **extra)
        out = []
        for role in ("gateway", "storage"):
            env = dict(base, **{k: f"127.0.0.1:{conftest.free_port()}" for k in (
                "PRELA_INGEST_ENDPOINT", "PRELA_OTLP_GRPC_ENDPOINT", "PRELA_OTLP_HTTP_ENDPOINT",
                "PRELA_QUERY_ENDPOINT")}, PRELA_DATA_DIR=str(tmp_path / f"data-{role}-{run}"))
            out.append(Role(tmp_path, role, env))
        made.extend(out)
        return out

    yield make
    failures = []
    for r in made:
        rc = r.stop()
        if rc != 0:
            failures.append(f"{r.role} exited with status {rc}:\n{r.logs()}")
    assert not failures, "\n".join(failures)


def post_traces(gateway, traces):
    return requests.post(gateway.otlp + "/v1/traces", data=workload.to_proto(traces),
                         headers={"Content-Type": "application/x-protobuf", "X-API-Key": INGEST_KEY},
                         timeout=30)


class Sender(threading.Thread):
    """Posts |requests_| OTLP requests of |per| traces each to the gateway, retrying a
    refused one (503) until accepted; `acked` holds the traces answered 200."""

    def __init__(self, gateway, requests_, per=5, pause=0.02):
        super().__init__(daemon=True)
        self.gateway, self.n, self.per, self.pause = gateway, requests_, per, pause
        self.acked, self.refused, self.sent = [], 0, 0

    def run(self):
        for _ in range(self.n):
            traces = workload.make_traces(self.per)
            while True:
                r = post_traces(self.gateway, traces)
                if r.status_code == 200:
                    break
                assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.text)
                self.refused += 1
                time.sleep(0.2)
            self.acked.extend(traces)
            self.sent += 1
            time.sleep(self.pause)


def assert_exactly_once(storage, traces, timeout=120):
    """Every trace of |traces| shows all its spans, each exactly once."""
    for tr in traces:
        want = sorted(s["span_id"] for s in tr["spans"])
        body = storage.wait_trace(tr["trace_id"], len(want), timeout=timeout)
        got = sorted(s["span_id"] for s in body["spans"])
        assert got == want, (tr["trace_id"], len(got), len(want))
        assert body["trace"]["span_count"] == len(want)


def test_sdks_end_to_end(roles):
    """The real Prela SDK (HTTP exporter) and OpenTelemetry Python SDK (OTLP/HTTP protobuf)
    → gateway → Kafka → storage → ClickHouse → query API: every span once, fields intact."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from prela.core.span import SpanType
    from prela.core.tracer import Tracer
    from prela.exporters.http import HTTPExporter

    gateway, storage = roles()
    gateway.start()
    storage.start()

    spec = clients.make_spec("python", "e2e", python_only=True)
    clients.send_python(spec, OTLPSpanExporter(endpoint=gateway.otlp + "/v1/traces",
                                               headers={"authorization": "Bearer " + INGEST_KEY}))

    exporter = HTTPExporter(endpoint=gateway.ingest + "/v1/traces", api_key=INGEST_KEY,
                            compress=True, max_retries=0)
    tracer = Tracer(service_name="sdk-agent-e2e", exporter=exporter)
    with tracer.span("agent.plan", span_type=SpanType.AGENT) as root:
        prela_trace = root.trace_id
        with tracer.span("anthropic.messages.create", span_type=SpanType.LLM) as llm:
            llm.set_attribute("llm.vendor", "anthropic")
            llm.set_attribute("llm.model", "claude-3-5-sonnet")
            llm.set_attribute("llm.input_tokens", 12)
            llm.set_attribute("llm.output_tokens", 30)
            llm.set_attribute("llm.messages", [{"role": "user", "content": "hi"}])
        try:
            with tracer.span("retrieve", span_type=SpanType.RETRIEVAL):
                raise ValueError("index missing")
        except ValueError:
            pass

    storage.wait_trace(spec["trace_id"], len(spec["spans"]))
    clients.check_spec(storage, spec, "python", scope_attrs={"scope.flavor": "python"})

    body = storage.wait_trace(prela_trace, 3)
    t = body["trace"]
    assert t["span_count"] == 3 and t["service_name"] == "sdk-agent-e2e" and t["source"] == "prela"
    assert t["project_id"] == "prod"  # the key's project, carried through Kafka
    assert t["status"] == "error" and t["root_span_name"] == "agent.plan"
    assert t["input_tokens"] == 12 and t["output_tokens"] == 30
    spans = {s["name"]: s for s in body["spans"]}
    assert len(spans) == 3
    llm = spans["anthropic.messages.create"]
    assert llm["span_type"] == "llm" and llm["llm_provider"] == "anthropic"
    assert llm["llm_model"] == "claude-3-5-sonnet" and llm["input_tokens"] == 12
    assert llm["attributes"]["llm.messages"] == [{"role": "user", "content": "hi"}]
    assert llm["parent_span_id"] == spans["agent.plan"]["span_id"]
    assert spans["retrieve"]["status"] == "error"
    assert spans["retrieve"]["attributes"]["error.type"] == "ValueError"

    # The list and search endpoints read the same trace. On ClickHouse one flush inserts the
    # spans first, then the trace index and the search index (clickhouse_flush.c), so for the
    # few milliseconds between those inserts a trace can be found by id but not yet listed.
    def listed_and_found():
        listed = [x["trace_id"] for x in clients.traces_of_service(storage, "sdk-agent-e2e")]
        r = storage.get("/api/v1/search", query="anthropic.messages")
        assert r.status_code == 200, r.text
        return listed, [x["trace_id"] for x in r.json()["results"]]

    deadline = time.time() + 10
    while listed_and_found() != ([prela_trace], [prela_trace]) and time.time() < deadline:
        time.sleep(0.1)
    assert listed_and_found() == ([prela_trace], [prela_trace])


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_otlp_encodings_end_to_end(roles, kafka, encoding):
    """Gateway and storage agreeing on an OTLP encoding carry traces the same way; the
    otlp_proto messages on the topic are valid ExportTraceServiceRequests."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    gateway, storage = roles(KAFKA_ENCODING=encoding)
    gateway.start()
    storage.start()
    traces = workload.make_traces(4)
    assert post_traces(gateway, traces).status_code == 200
    assert_exactly_once(storage, traces)
    for tr in traces:
        workload.check_trace(storage, tr)
    if encoding == "otlp_proto":
        msgs = kafka.consume(gateway.env["KAFKA_TOPIC_SPANS"], 4)
        ids = set()
        for key, value in msgs:
            req = ExportTraceServiceRequest()
            req.ParseFromString(value)
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        assert s.trace_id.hex() == key.decode()
                        ids.add(s.span_id.hex())
        assert ids == {s["span_id"] for tr in traces for s in tr["spans"]}


def test_storage_sigkill_mid_stream(roles):
    """SIGKILL the storage collector while a stream flows and start it again: every span
    arrives, none is shown twice."""
    gateway, storage = roles()
    gateway.start()
    storage.start()
    sender = Sender(gateway, requests_=60, per=5)
    sender.start()
    while sender.sent < 20:
        time.sleep(0.05)
    storage.kill()
    time.sleep(1)
    storage.start()
    sender.join(timeout=300)
    assert not sender.is_alive()
    assert len(sender.acked) == 300
    assert_exactly_once(storage, sender.acked)
    listed = clients.traces_of_service(storage, "agent-service")
    assert len(listed) == len({x["trace_id"] for x in listed}) == 300


def committed(kafka, group, topic):
    """The committed offsets of |group| on |topic|: {partition: offset}."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in md.partitions]
        return {tp.partition: tp.offset for tp in c.committed(parts, timeout=10)}
    finally:
        c.close()


def test_clickhouse_down_under_load(roles, kafka, clickhouse):
    """ClickHouse stops while traces flow: the gateway keeps accepting (Kafka holds them),
    the storage collector commits no offsets while inserts fail, and once ClickHouse is
    back every acknowledged span is there, once."""
    gateway, storage = roles()
    gateway.start()
    storage.start()
    first = workload.make_traces(5)
    assert post_traces(gateway, first).status_code == 200
    assert_exactly_once(storage, first)
    topic, group = gateway.env["KAFKA_TOPIC_SPANS"], gateway.env["KAFKA_GROUP_ID"]
    clickhouse.run("stop")
    try:
        before = committed(kafka, group, topic)
        sender = Sender(gateway, requests_=20, per=5, pause=0.1)
        sender.start()
        sender.join(timeout=120)
        assert len(sender.acked) == 100 and sender.refused == 0  # Kafka is up: no refusals
        time.sleep(3)  # the storage collector has polled them and failed to insert
        assert committed(kafka, group, topic) == before
        assert storage.get("/api/v1/health").status_code == 503
    finally:
        clickhouse.run("start")
    assert_exactly_once(storage, first + sender.acked)
    deadline = time.time() + 30
    while committed(kafka, group, topic) == before and time.time() < deadline:
        time.sleep(0.5)
    assert committed(kafka, group, topic) != before


def test_kafka_down_gateway_spools_then_delivers(roles, kafka):
    """Kafka stops: the shipped gateway keeps answering 200 from its disk spool (on by
    default, under PRELA_DATA_DIR) and says `degraded`; when Kafka returns the spool
    drains, and every span it answered 200 for is stored exactly once."""
    gateway, storage = roles(KAFKA_TIMEOUT="3s")
    gateway.start()
    storage.start()
    acked = workload.make_traces(3)
    assert post_traces(gateway, acked).status_code == 200
    kafka.run("stop")
    try:
        spooled = workload.make_traces(2)
        r = post_traces(gateway, spooled)
        assert r.status_code == 200, r.text
        health = requests.get(gateway.ingest + "/health", timeout=10).json()
        assert health["status"] == "degraded", health
        assert list(pathlib.Path(gateway.env["PRELA_DATA_DIR"], "kafka-spool").glob("*.seg"))
    finally:
        kafka.run("start")
    acked += spooled
    later = workload.make_traces(2)
    deadline = time.time() + 60
    while (r := post_traces(gateway, later)).status_code != 200 and time.time() < deadline:
        time.sleep(0.5)
    assert r.status_code == 200, r.text
    assert_exactly_once(storage, acked + later)
