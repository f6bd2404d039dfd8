"""Metrics and logs on the OTLP receiver, over gRPC and HTTP, sent by the real
OpenTelemetry Python SDK exporters.

Traces are the product; metrics and logs are accepted so that an SDK pointed at
the collector with one OTEL_EXPORTER_OTLP_ENDPOINT stays quiet. Without a metrics
or logs pipeline they are checked, counted and dropped; with one they are passed
on as protobuf (here to the debug exporter, which logs what it got).
"""
import logging

import grpc
import requests
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import (InMemoryLogRecordExporter, LogRecordExportResult,
                                            SimpleLogRecordProcessor)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource

RESOURCE = Resource.create({"service.name": "signals-test"})
METRICS_SERVICE = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

DEBUG_PIPELINES = """
metrics:
  receivers: [otlp]
  exporters: [debug]
logs:
  receivers: [otlp]
  exporters: [debug]
"""


def metrics_data():
    """Four data points: a counter with two attribute sets, a histogram, an up-down counter."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("signals-test")
    counter = meter.create_counter("requests")
    counter.add(3, {"route": "/a"})
    counter.add(1, {"route": "/b"})
    meter.create_histogram("latency_ms").record(12.5)
    meter.create_up_down_counter("inflight").add(2)
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


def log_records():
    """Two log records made through the logging bridge."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    log = logging.getLogger("signals-test")
    log.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    log.addHandler(handler)
    try:
        log.warning("first record %d", 1)
        log.error("second record", extra={"agent.step": 2})
    finally:
        log.removeHandler(handler)
    records = memory.get_finished_logs()
    provider.shutdown()
    assert len(records) == 2
    return records


def export_all(c):
    """Exports metrics and logs over gRPC, HTTP and HTTP+gzip; every export must succeed."""
    metrics = metrics_data()
    exporters = [GrpcMetrics(endpoint=c.grpc, insecure=True),
                 HttpMetrics(endpoint=c.otlp + "/v1/metrics"),
                 HttpMetrics(endpoint=c.otlp + "/v1/metrics", compression=Compression.Gzip)]
    for e in exporters:
        assert e.export(metrics) == MetricExportResult.SUCCESS, type(e)
        e.shutdown()
    records = log_records()
    for e in [GrpcLogs(endpoint=c.grpc, insecure=True), HttpLogs(endpoint=c.otlp + "/v1/logs"),
              HttpLogs(endpoint=c.otlp + "/v1/logs", compression=Compression.Gzip)]:
        assert e.export(records) == LogRecordExportResult.SUCCESS, type(e)
        e.shutdown()


def stopped_logs(c):
    assert c.stop() == 0
    return c.log_path.read_text(errors="replace")


def test_without_pipelines_they_are_accepted_counted_and_dropped(make_collector):
    c = make_collector()
    export_all(c)
    logs = stopped_logs(c)
    assert "dropped 12 metric data points (no metrics pipeline)" in logs, logs
    assert "dropped 6 log records (no logs pipeline)" in logs, logs


def test_with_pipelines_they_reach_the_exporter(make_collector):
    c = make_collector(exporters_extra="debug:\n  verbosity: basic", pipelines_extra=DEBUG_PIPELINES)
    export_all(c)
    # OTLP/JSON metrics with snake_case names and a string int64 are re-encoded as protobuf.
    body = {"resource_metrics": [{"scope_metrics": [{"metrics": [
        {"name": "tokens", "sum": {"aggregation_temporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                                   "is_monotonic": True,
                                   "data_points": [{"as_int": "42", "time_unix_nano": "1700000000000000000"},
                                                   {"asDouble": 1.5}]}}]}]}]}
    r = requests.post(c.otlp + "/v1/metrics", json=body, timeout=10)
    assert r.status_code == 200 and r.json() == {}, r.text
    logs = stopped_logs(c)
    assert "total metrics: 4 batches, 14 data points" in logs, logs
    assert "total logs: 3 batches, 6 log records" in logs, logs
    assert "dropped" not in logs


def test_bad_metrics_are_refused_with_the_field_named(collector):
    r = requests.post(collector.otlp + "/v1/metrics", json={"resourceMetrics": 5}, timeout=10)
    assert r.status_code == 400 and "resourceMetrics" in r.json()["message"], r.text
    r = requests.post(collector.otlp + "/v1/logs", data=b"\x0a\xff\xff\xff", timeout=10,
                      headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400, r.text
    with grpc.insecure_channel(collector.grpc) as ch:
        call = ch.unary_unary(METRICS_SERVICE, request_serializer=None, response_deserializer=None)
        try:
            call(b"\x0a\xff\xff\xff", timeout=10)
            raise AssertionError("garbage metrics were accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
            assert e.details(), e
    # Still healthy: a good export goes through.
    assert HttpMetrics(endpoint=collector.otlp + "/v1/metrics").export(metrics_data()) == \
        MetricExportResult.SUCCESS
