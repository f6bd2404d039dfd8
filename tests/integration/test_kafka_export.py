"""The kafka exporter against a real broker: what OTLP clients send arrives on Kafka,
traces as normalized Prela JSON keyed by trace id, metrics and logs as the protobuf
requests the SDK sent, on their own topics."""
import json

import grpc
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExportResult

import workload
from services import kafka  # noqa: F401  (fixture)
from test_otlp_signals import log_records, metrics_data

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def kafka_collector(make_collector, kafka, run=None, timeout="10s", topics=None, brokers=None,
                    settings="", receivers="[otlp]", **kw):
    """A collector whose receivers feed a kafka exporter: traces (from |receivers|),
    metrics and logs (OTLP) to the topics of |run| (or |topics|), on |brokers| (the
    |kafka| fixture's by default), with the exporter lines |settings| added (YAML at
    the exporter's indentation). Returns (collector, topics)."""
    topics = topics or {s: f"{s}-{run}" for s in ("spans", "traces", "metrics", "logs")}
    exporter = f"""
kafka:
  brokers: {brokers or kafka.bootstrap}
  timeout: {timeout}
  topics:
    spans: {topics['spans']}
    traces: {topics['traces']}
    metrics: {topics['metrics']}
    logs: {topics['logs']}
""" + "".join(f"  {line}\n" for line in settings.strip("\n").splitlines())
    pipelines = f"""
traces/kafka:
  receivers: {receivers}
  processors: [normalize]
  exporters: [kafka]
metrics:
  receivers: [otlp]
  exporters: [kafka]
logs:
  receivers: [otlp]
  exporters: [kafka]
"""
    return make_collector(exporters_extra=exporter, pipelines_extra=pipelines, **kw), topics


def test_signals_reach_their_topics(make_collector, kafka):
    c, topics = kafka_collector(make_collector, kafka, "signals", settings="encoding: prela_json")
    traces = workload.make_traces(2)  # 20 spans
    with grpc.insecure_channel(c.grpc) as ch:
        ch.unary_unary(TRACE_EXPORT)(workload.to_proto(traces), timeout=30)
    assert OTLPMetricExporter(endpoint=c.grpc, insecure=True).export(metrics_data()) == \
        MetricExportResult.SUCCESS
    assert OTLPLogExporter(endpoint=c.grpc, insecure=True).export(log_records()) == \
        LogRecordExportResult.SUCCESS

    spans = kafka.consume(topics["spans"], 20)
    by_trace = {}
    for key, value in spans:
        doc = json.loads(value)
        assert key.decode() == doc["trace_id"]  # a trace stays on one partition
        by_trace.setdefault(doc["trace_id"], []).append(doc)
    assert sorted(by_trace) == sorted(t["trace_id"] for t in traces)
    for t in traces:
        assert sorted(s["span_id"] for s in by_trace[t["trace_id"]]) == \
            sorted(s["span_id"] for s in t["spans"])
    summaries = [json.loads(v) for _, v in kafka.consume(topics["traces"], 2)]
    assert sorted(s["trace_id"] for s in summaries) == sorted(by_trace)
    assert all(s["span_count"] == 10 for s in summaries)

    (key, raw), = kafka.consume(topics["metrics"], 1)
    req = metrics_service_pb2.ExportMetricsServiceRequest.FromString(raw)
    points = sum(len(getattr(m, m.WhichOneof("data")).data_points)
                 for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)
    assert points == 4
    assert {m.name for sm in req.resource_metrics[0].scope_metrics for m in sm.metrics} == \
        {"requests", "latency_ms", "inflight"}
    (key, raw), = kafka.consume(topics["logs"], 1)
    req = logs_service_pb2.ExportLogsServiceRequest.FromString(raw)
    bodies = [r.body.string_value for sl in req.resource_logs[0].scope_logs for r in sl.log_records]
    assert bodies == ["first record 1", "second record"]


def test_default_encoding_is_otlp_proto(make_collector, kafka):
    """Without an encoding setting, each trace of a request is one ExportTraceServiceRequest
    (otlp_proto) keyed by its trace id, carrying exactly that trace's spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    c, topics = kafka_collector(make_collector, kafka, "default")
    traces = workload.make_traces(2)
    with grpc.insecure_channel(c.grpc) as ch:
        ch.unary_unary(TRACE_EXPORT)(workload.to_proto(traces), timeout=30)
    msgs = kafka.consume(topics["spans"], 2)
    assert len(msgs) == 2
    got = {}
    for key, value in msgs:
        req = ExportTraceServiceRequest.FromString(value)
        spans = [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert {s.trace_id.hex() for s in spans} == {key.decode()}
        got[key.decode()] = sorted(s.span_id.hex() for s in spans)
    assert got == {t["trace_id"]: sorted(s["span_id"] for s in t["spans"]) for t in traces}


def test_broker_down_answers_retry_then_delivers(make_collector, kafka):
    """With the broker stopped nothing is acknowledged: 503 + Retry-After over HTTP,
    UNAVAILABLE over gRPC. Once it is back, the SDK's retry is delivered."""
    import requests
    c, topics = kafka_collector(make_collector, kafka, "down", timeout="2s",
                                settings="encoding: prela_json")
    traces = workload.make_traces(1)
    body = workload.to_proto(traces)
    kafka.run("stop")
    try:
        r = requests.post(c.otlp + "/v1/traces", data=body, timeout=30,
                          headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
        with grpc.insecure_channel(c.grpc) as ch:
            try:
                ch.unary_unary(TRACE_EXPORT)(body, timeout=30)
                raise AssertionError("acknowledged while the broker was down")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE, e
    finally:
        kafka.run("start")
    for _ in range(30):  # the SDK's retries, until the producer reconnected
        r = requests.post(c.otlp + "/v1/traces", data=body, timeout=30,
                          headers={"Content-Type": "application/x-protobuf"})
        if r.status_code == 200:
            break
        assert r.status_code == 503, r.text
    assert r.status_code == 200, r.text
    ids = {json.loads(v)["span_id"] for _, v in kafka.consume(topics["spans"], 10)}
    assert ids == {s["span_id"] for s in traces[0]["spans"]}
