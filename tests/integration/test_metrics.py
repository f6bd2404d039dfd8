"""Self-metrics: GET /metrics (service.telemetry.metrics) in the Prometheus text format.

Each test sends a known number of spans through the real binary (Prela JSON, OTLP/HTTP
JSON, OTLP/gRPC protobuf), some accepted, some refused (over the span cap, over a key's
rate limit) and some dropped (invalid spans answered as partial success, metrics with no
metrics pipeline), then scrapes /metrics, parses it with prometheus_client's parser and
checks every counter equals what was sent. Also: the endpoint honours API keys, and a
component id full of quotes, backslashes and newlines comes out escaped and parseable.
"""
import json
import time

import grpc
import pytest
import requests
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from prometheus_client.parser import text_string_to_metric_families

import conftest
import workload
from services import kafka  # noqa: F401  (fixture)

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def scrape(c, headers=None):
    r = requests.get(c.metrics + "/metrics", headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def parse(text):
    """{(sample name, frozenset of label items): value}, through the real parser."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def val(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0)


def prela_batch(c, spans, headers=None):
    return requests.post(c.ingest + "/v1/batch", json={"spans": spans}, headers=headers or {},
                         timeout=10)


def pspans(prefix, n):
    return [dict(trace_id=f"{prefix}-t", span_id=f"{prefix}-{k}", name="op") for k in range(n)]


def grpc_export(c, body):
    with grpc.insecure_channel(c.grpc) as ch:
        call = ch.unary_unary(EXPORT, request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        return call(body, timeout=15)


def metrics_request(points):
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add()
    m.name = "queue.depth"
    for i in range(points):
        dp = m.gauge.data_points.add()
        dp.as_int = i
        dp.time_unix_nano = 1_700_000_000_000_000_000 + i
    return req.SerializeToString()


def test_counters_equal_what_was_sent(make_collector):
    c = make_collector(prela_extra="max_spans_per_request: 10")
    before = scrape(c)
    assert val(before, "otelcol_receiver_accepted_spans_total", receiver="prela",
               transport="http") == 0

    # Prela JSON: 3 x 5 accepted; 1 batch of 4 good + 1 invalid (no span_id) -> 4 accepted,
    # 1 dropped as rejected; 1 batch of 12 > max_spans_per_request -> 400, 12 refused.
    for i in range(3):
        assert prela_batch(c, pspans(f"p{i}", 5)).status_code == 200
    mixed = pspans("mix", 4) + [dict(trace_id="mix-t", name="no id")]
    r = prela_batch(c, mixed)
    assert r.status_code == 200 and r.json()["rejected"] == 1, r.text
    assert prela_batch(c, pspans("big", 12)).status_code == 400
    # An unreadable body: no spans to count, but a 400 by status code.
    r = requests.post(c.ingest + "/v1/batch", data=b"{not json",
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400

    # OTLP/HTTP JSON: 10 spans, 2 invalid -> 8 accepted, 2 dropped (partial success).
    doc = workload.to_json(workload.make_traces(1))
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[3]["traceId"] = "abc"
    spans[4]["spanId"] = "0" * 16
    r = requests.post(c.otlp + "/v1/traces", data=json.dumps(doc),
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 200 and int(r.json()["partialSuccess"]["rejectedSpans"]) == 2

    # OTLP/gRPC: 20 spans accepted.
    grpc_export(c, workload.to_proto(workload.make_traces(2)))

    # OTLP metrics with no metrics pipeline: accepted on the wire, dropped and counted.
    r = requests.post(c.otlp + "/v1/metrics", data=metrics_request(3),
                      headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert r.status_code == 200, r.text

    m = scrape(c)
    acc, ref = "otelcol_receiver_accepted_spans_total", "otelcol_receiver_refused_spans_total"
    assert val(m, acc, receiver="prela", transport="http") == 19
    assert val(m, ref, receiver="prela", transport="http") == 12
    assert val(m, acc, receiver="otlp", transport="http") == 8
    assert val(m, acc, receiver="otlp", transport="grpc") == 20
    assert val(m, ref, receiver="otlp", transport="http") == 0
    dropped = "prela_receiver_dropped_spans_total"
    assert val(m, dropped, receiver="prela", reason="rejected") == 1
    assert val(m, dropped, receiver="otlp", reason="rejected") == 2
    assert val(m, "prela_receiver_dropped_metric_points_total", receiver="otlp",
               reason="no_pipeline") == 3
    # Every accepted span went to the local exporter, and none failed.
    assert val(m, "otelcol_exporter_sent_spans_total", exporter="local") == 19 + 8 + 20
    assert val(m, "otelcol_exporter_send_failed_spans_total", exporter="local") == 0
    # Requests by status code, per listener.
    codes = "prela_http_server_requests_total"
    assert val(m, codes, listener="prela", http_response_status_code="200") >= 4
    assert val(m, codes, listener="prela", http_response_status_code="400") == 2
    assert val(m, codes, listener="otlp", http_response_status_code="200") >= 2
    assert val(m, "prela_grpc_server_requests_total", listener="otlp",
               rpc_grpc_status_code="0") == 1
    # The memory budget and the process.
    assert val(m, "prela_memory_budget_limit_bytes") == 256 * 1024 * 1024
    assert 0 <= val(m, "prela_memory_budget_used_bytes") <= 256 * 1024 * 1024
    assert val(m, "otelcol_process_memory_rss_bytes") > 1024 * 1024
    assert val(m, "otelcol_process_cpu_seconds_total") > 0
    assert val(m, "otelcol_process_uptime_seconds_total") > 0


KEYS = {"ingest": "metrics-ingest-key-0000000001", "read": "metrics-read-key-00000000002",
        "limited": "metrics-limited-key-00000003"}
AUTH = f"""
keys:
  - {{name: ingest, key: {KEYS['ingest']}, project: p, scopes: [ingest]}}
  - {{name: read, key: {KEYS['read']}, project: p, scopes: [read]}}
  - name: limited
    key: {KEYS['limited']}
    project: p
    scopes: [ingest]
    limits: {{spans_per_second: 1, burst: 10}}
"""


def test_auth_on_metrics_and_rate_limited_spans_are_refused(make_collector):
    c = make_collector(auth=AUTH, read_key=KEYS["read"])
    url = c.metrics + "/metrics"
    r = requests.get(url, timeout=10)
    assert r.status_code == 401, r.text
    assert requests.get(url, headers={"X-API-Key": "nope-nope-nope-nope"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"X-API-Key": KEYS["ingest"]}, timeout=10).status_code == 403
    assert requests.get(url, headers={"Authorization": "Bearer " + KEYS["read"]},
                        timeout=10).status_code == 200

    # The limited key: 6 of its burst of 10 pass; the next 10 spans are read and refused
    # (429), since the bucket refills one span per second. (A key already at 0 would be
    # refused at the headers, before any span is read: that counts only as a 429.)
    lim = {"X-API-Key": KEYS["limited"]}
    assert prela_batch(c, pspans("a", 6), lim).status_code == 200
    assert prela_batch(c, pspans("b", 10), lim).status_code == 429
    # A wrong key never reaches the receiver: only the 401 is counted.
    assert prela_batch(c, pspans("c", 3), {"X-API-Key": "wrong-wrong-wrong"}).status_code == 401

    m = scrape(c, {"X-API-Key": KEYS["read"]})
    assert val(m, "otelcol_receiver_accepted_spans_total", receiver="prela", transport="http") == 6
    assert val(m, "otelcol_receiver_refused_spans_total", receiver="prela", transport="http") == 10
    codes = "prela_http_server_requests_total"
    assert val(m, codes, listener="prela", http_response_status_code="429") == 1
    assert val(m, codes, listener="prela", http_response_status_code="401") == 1
    assert val(m, codes, listener="telemetry", http_response_status_code="401") == 2
    assert val(m, codes, listener="telemetry", http_response_status_code="403") == 1


HOSTILE = 'prela/we"ird\\x\n} y'


def test_hostile_component_ids_are_escaped(make_collector):
    yaml_id = json.dumps(HOSTILE)  # a YAML double-quoted scalar
    c = make_collector(receivers_extra=f"{yaml_id}:\n  endpoint: 127.0.0.1:{conftest.free_port()}",
                       pipelines_extra=f"traces/hostile:\n  receivers: [{yaml_id}]\n"
                                       "  exporters: [local]")
    r = requests.get(c.metrics + "/metrics", timeout=10)
    assert r.status_code == 200
    assert 'receiver="prela/we\\"ird\\\\x\\n} y"' in r.text
    m = parse(r.text)
    assert (("otelcol_receiver_accepted_spans_total",
             frozenset({"receiver": HOSTILE, "transport": "http"}.items())) in m)


def metrics_setting(c, line):
    """|c| (not started) with `service.telemetry.metrics: {line}` in its config file
    (the file sets no metrics key; the port comes from the environment)."""
    logs = "    logs:\n      level: info\n"
    text = c.config_path.read_text()
    assert logs in text
    c.config_path.write_text(text.replace(logs, logs + "    metrics:\n      " + line + "\n"))
    return c


def test_level_none_turns_the_endpoint_off(tmp_path):
    c = metrics_setting(conftest.Collector(tmp_path), "level: none")
    c.start()
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(c.metrics + "/metrics", timeout=5)
    finally:
        assert c.stop() == 0


@pytest.mark.parametrize("value,msg", [
    ("level: loud", "service.telemetry.metrics.level"),
    ('endpoint: ""', "service.telemetry.metrics.endpoint"),
    ("endpoint: nohostport", "service.telemetry.metrics.endpoint"),
    ("port: 8888", "service.telemetry.metrics"),
])
def test_bad_metrics_settings_fail_startup(tmp_path, value, msg):
    c = metrics_setting(conftest.Collector(tmp_path), value)
    with pytest.raises(RuntimeError) as e:
        c.start()
    assert msg in str(e.value)


def test_kafka_receiver_counts_and_lag(make_collector, kafka):
    """gateway (prela → kafka) then storage (kafka receiver → local): the storage
    collector's accepted spans on transport kafka equal what the gateway accepted, the
    gateway's kafka exporter counted them as sent, and once caught up every assigned
    partition reports a lag of 0."""
    import uuid

    from test_kafka_receiver import gateway, make_topics, send_workload, storage
    run = uuid.uuid4().hex[:8]
    topics = make_topics(kafka, run)
    gw = gateway(make_collector, kafka, topics, "otlp_proto")
    traces = send_workload(gw, 3)
    n = sum(len(t["spans"]) for t in traces)
    g = scrape(gw)
    assert val(g, "otelcol_receiver_accepted_spans_total", receiver="otlp", transport="http") == n
    assert val(g, "otelcol_exporter_sent_spans_total", exporter="kafka") == n

    st = storage(make_collector, kafka, topics, "otlp_proto", f"metrics-{run}")
    deadline, m = time.time() + 60, {}
    lag = "prela_kafka_consumer_lag"
    while time.time() < deadline:
        m = scrape(st)
        parts = {dict(k[1])["partition"] + "/" + dict(k[1])["topic"]: v
                 for k, v in m.items() if k[0] == lag}
        if (val(m, "otelcol_receiver_accepted_spans_total", receiver="kafka",
                transport="kafka") == n and len(parts) == 6 and not any(parts.values())):
            break
        time.sleep(0.2)
    assert val(m, "otelcol_receiver_accepted_spans_total", receiver="kafka", transport="kafka") == n
    assert val(m, "otelcol_receiver_refused_spans_total", receiver="kafka", transport="kafka") == 0
    assert val(m, "otelcol_exporter_sent_spans_total", exporter="local") == n
    parts = {(dict(k[1])["topic"], dict(k[1])["partition"]): v for k, v in m.items() if k[0] == lag}
    assert set(parts) == {(t, str(p)) for t in topics.values() for p in range(3)}, parts
    assert not any(parts.values()), parts
    assert val(m, "prela_kafka_receiver_messages_total", receiver="kafka") >= 1


def test_zstd_contexts_are_reused(make_collector, kafka):
    """A gateway with the kafka exporter's default compression (zstd) sends a few
    requests to the broker; /metrics then shows contexts handed out again by the
    per-thread cache (src/core/zstd_reuse.h). A count of 0 means librdkafka's
    ZSTD_createCStream / ZSTD_freeCStream no longer bind to the collector's own
    (a statically linked librdkafka, a lost export flag): each batch would map and
    fault in a fresh 3.6 MiB workspace again."""
    import uuid

    from test_kafka_receiver import gateway, make_topics, send_workload
    topics = make_topics(kafka, uuid.uuid4().hex[:8])
    gw = gateway(make_collector, kafka, topics, "otlp_proto")
    n = sum(len(t["spans"]) for _ in range(4) for t in send_workload(gw, 2))
    m = scrape(gw)
    assert val(m, "otelcol_exporter_sent_spans_total", exporter="kafka") == n
    assert val(m, "prela_zstd_contexts_created_total") >= 1
    assert val(m, "prela_zstd_contexts_reused_total") >= 1
