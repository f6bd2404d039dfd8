"""Oversize spans are never acknowledged and then dropped (issue 11, item 3).

A gateway (prela/otlp receivers → normalize → kafka exporter) and a storage collector
(kafka receiver → normalize → local or ClickHouse store, query API) on a real broker
(scripts/kafka.sh, whose message.max.bytes matches the exporter's default).

- With the default limits, an LLM span with 5 MB of prompt text goes through gateway →
  Kafka → storage → query API and comes back whole, field for field.
- With a small `max_message_bytes`, such a span is reported back to the sender instead:
  OTLP partial_success (HTTP protobuf and JSON, gRPC) with rejected_spans and an
  error_message naming the span id and the limit; the Prela receiver counts it in
  "rejected" with an error naming the span (a single /v1/spans span: 413). The other
  spans of the request are stored. Metrics and logs requests over the limit are refused
  as a permanent error (400 / INVALID_ARGUMENT) naming the limit.
"""
import os
import time
import uuid

import grpc
import pytest
import requests
from confluent_kafka.admin import AdminClient, NewTopic
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

import clients
import workload
from services import clickhouse, kafka  # noqa: F401  (fixtures)
from test_kafka_export import kafka_collector
from test_kafka_receiver import storage as kafka_storage, wait_spans

PROMPT_5MB = ("You are a careful assistant. Summarize the following document. " * 80000)[:5_000_000]
BIG = 200_000  # over the small limit below, under every other one (gRPC takes 4 MiB)
SMALL_LIMIT = 65536


def make_topics(kafka, run, config=None):
    """Fresh topics; |config| (topic configs, e.g. max.message.bytes) for each."""
    topics = {"spans": f"ov-spans-{run}", "traces": f"ov-traces-{run}",
              "metrics": f"ov-metrics-{run}", "logs": f"ov-logs-{run}"}
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    futures = admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1,
                                            config=config or {}) for t in topics.values()])
    for f in futures.values():
        f.result(30)
    return topics


def gateway(make_collector, kafka, topics, encoding="prela_json", max_message_bytes=None, **kw):
    limit = f"max_message_bytes: {max_message_bytes}\n" if max_message_bytes else ""
    return kafka_collector(make_collector, kafka, topics=topics, receivers="[prela, otlp]",
                           settings=f"encoding: {encoding}\n{limit}", **kw)[0]


def storage(make_collector, kafka, topics, tmp_path, encoding="prela_json", ch=None):
    """The storage collector (its own directory: the gateway's local store, beside it in
    the test's temp dir, holds every span)."""
    return kafka_storage(make_collector, kafka, topics, encoding, f"ov-{uuid.uuid4().hex[:8]}",
                         data_dir=str(tmp_path / "storage"), ch=ch)


def big_trace(prompt):
    """One workload trace (10 spans) whose first LLM span carries |prompt|; returns the
    trace and that span."""
    tr = workload.make_traces(1)[0]
    span = next(s for s in tr["spans"] if s["expect"]["span_type"] == "llm")
    span["attrs"] = dict(span["attrs"], **{"gen_ai.prompt": prompt})
    return tr, span


def prela_span(trace_id, span_id, prompt="hi"):
    return {"trace_id": trace_id, "span_id": span_id, "name": "anthropic.messages.create",
            "span_type": "llm", "started_at": "2026-01-27T10:00:00Z",
            "ended_at": "2026-01-27T10:00:01Z", "status": "success",
            "attributes": {"llm.model": "claude-3-5-sonnet", "llm.prompt": prompt}}


def grpc_export(gw, body, method="/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                reply=trace_service_pb2.ExportTraceServiceResponse):
    with grpc.insecure_channel(clients.grpc_endpoint(gw),
                               options=[("grpc.max_send_message_length", 16 << 20)]) as ch:
        call = ch.unary_unary(method, request_serializer=None, response_deserializer=reply.FromString)
        return call(body, timeout=60)


def post_proto(url, body):
    return requests.post(url, data=body, timeout=60,
                         headers={"Content-Type": "application/x-protobuf"})


# --- stored whole ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["local", "clickhouse"])
def test_5mb_prompt_is_stored_whole(make_collector, kafka, request, backend, tmp_path):
    topics = make_topics(kafka, uuid.uuid4().hex[:8])
    gw = gateway(make_collector, kafka, topics)  # the defaults: nothing set
    ch = request.getfixturevalue("clickhouse") if backend == "clickhouse" else None
    st = storage(make_collector, kafka, topics, tmp_path, ch=ch)

    tr, span = big_trace(PROMPT_5MB)
    r = post_proto(gw.otlp + "/v1/traces", workload.to_proto([tr]))
    assert r.status_code == 200, r.text
    resp = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 0, resp

    tid = uuid.uuid4().hex
    r = requests.post(gw.ingest + "/v1/batch", timeout=60,
                      json={"spans": [prela_span(tid, "p-big", PROMPT_5MB), prela_span(tid, "p-small")]})
    assert r.status_code == 200, r.text
    assert r.json()["ingested"] == 2 and r.json()["rejected"] == 0, r.text

    wait_spans(st, tr["trace_id"], len(tr["spans"]))
    workload.check_trace(st, tr)  # field for field, the 5 MB prompt included
    got = {s["span_id"]: s for s in wait_spans(st, tid, 2)["spans"]}
    assert got["p-big"]["attributes"]["llm.prompt"] == PROMPT_5MB
    assert got["p-small"]["attributes"]["llm.prompt"] == "hi"


def test_5mb_prompt_over_otlp_grpc(make_collector, kafka, tmp_path):
    """OTLP/gRPC keeps the OpenTelemetry Collector's 4 MiB message default: a 5 MB span is
    refused there (RESOURCE_EXHAUSTED, never OK and gone); raised, it is stored whole."""
    topics = make_topics(kafka, uuid.uuid4().hex[:8])
    tr, _ = big_trace(PROMPT_5MB)
    gw = gateway(make_collector, kafka, topics)
    with pytest.raises(grpc.RpcError) as e:
        grpc_export(gw, workload.to_proto([tr]))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
    assert gw.stop() == 0

    gw = gateway(make_collector, kafka, topics, grpc_extra="max_recv_msg_size: 8MiB")
    st = storage(make_collector, kafka, topics, tmp_path)
    resp = grpc_export(gw, workload.to_proto([tr]))
    assert resp.partial_success.rejected_spans == 0, resp
    wait_spans(st, tr["trace_id"], len(tr["spans"]))
    workload.check_trace(st, tr)


# --- reported, never 200 and gone -----------------------------------------------------------

def check_rest_stored(st, tr, span):
    """The trace's other spans reach storage; the rejected one does not."""
    body = wait_spans(st, tr["trace_id"], len(tr["spans"]) - 1)
    time.sleep(1)  # would a late copy of the big one still arrive?
    ids = {s["span_id"] for s in st.trace(tr["trace_id"])["spans"]}
    assert ids == {s["span_id"] for s in tr["spans"]} - {span["span_id"]}, body


@pytest.mark.parametrize("encoding", ["prela_json", "otlp_proto"])
def test_oversize_span_is_reported_over_otlp_http(make_collector, kafka, encoding, tmp_path):
    topics = make_topics(kafka, uuid.uuid4().hex[:8])
    gw = gateway(make_collector, kafka, topics, encoding, max_message_bytes=SMALL_LIMIT)
    st = storage(make_collector, kafka, topics, tmp_path, encoding)

    tr, span = big_trace("p" * BIG)
    r = post_proto(gw.otlp + "/v1/traces", workload.to_proto([tr]))
    assert r.status_code == 200, r.text
    ps = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content).partial_success
    assert ps.rejected_spans == 1, ps
    assert span["span_id"] in ps.error_message, ps.error_message
    assert f"max_message_bytes ({SMALL_LIMIT})" in ps.error_message, ps.error_message
    check_rest_stored(st, tr, span)

    tr, span = big_trace("j" * BIG)  # OTLP/JSON answers in JSON
    r = requests.post(gw.otlp + "/v1/traces", json=workload.to_json([tr]), timeout=60)
    assert r.status_code == 200, r.text
    ps = r.json()["partialSuccess"]
    assert ps["rejectedSpans"] == "1" and span["span_id"] in ps["errorMessage"], r.text
    check_rest_stored(st, tr, span)


@pytest.mark.parametrize("encoding", ["prela_json", "otlp_json"])
def test_a_topic_that_refuses_the_size_is_reported(make_collector, kafka, encoding, tmp_path):
    """The user's topic allows less than the exporter's max_message_bytes (16 MiB): the
    broker refuses the message (MSG_SIZE_TOO_LARGE in the delivery report), and the
    sender is told, as when the exporter's own limit refuses it. The broker refuses a
    whole record batch, so the smaller spans produced in the same batch (same trace, same
    partition) are refused with it: every span is stored or reported, none is 200 and gone."""
    topics = make_topics(kafka, uuid.uuid4().hex[:8], {"max.message.bytes": "100000"})
    gw = gateway(make_collector, kafka, topics, encoding)
    st = storage(make_collector, kafka, topics, tmp_path, encoding)

    tr, span = big_trace(os.urandom(150_000).hex())  # zstd cannot shrink it under 100000
    r = post_proto(gw.otlp + "/v1/traces", workload.to_proto([tr]))
    assert r.status_code == 200, r.text
    ps = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content).partial_success
    assert 1 <= ps.rejected_spans <= len(tr["spans"]), ps
    assert "refused a message as too large" in ps.error_message, ps
    assert "max.message.bytes" in ps.error_message, ps
    stored = len(tr["spans"]) - ps.rejected_spans
    if stored:
        wait_spans(st, tr["trace_id"], stored)
    time.sleep(2)  # nothing more arrives: the refused spans are not stored after all
    r = st.get(f"/api/v1/traces/{tr['trace_id']}")
    got = {s["span_id"] for s in r.json()["spans"]} if r.status_code == 200 else set()
    assert len(got) == stored and span["span_id"] not in got, (ps, got)


def test_oversize_span_is_reported_over_otlp_grpc(make_collector, kafka, tmp_path):
    topics = make_topics(kafka, uuid.uuid4().hex[:8])
    gw = gateway(make_collector, kafka, topics, max_message_bytes=SMALL_LIMIT)
    st = storage(make_collector, kafka, topics, tmp_path)

    tr, span = big_trace("g" * BIG)
    ps = grpc_export(gw, workload.to_proto([tr])).partial_success
    assert ps.rejected_spans == 1, ps
    assert span["span_id"] in ps.error_message and "max_message_bytes" in ps.error_message
    check_rest_stored(st, tr, span)

    small, _ = big_trace("fits")  # nothing to report: an empty partial_success
    assert not grpc_export(gw, workload.to_proto([small])).HasField("partial_success")
    wait_spans(st, small["trace_id"], len(small["spans"]))


def test_oversize_span_is_reported_by_the_prela_receiver(make_collector, kafka, tmp_path):
    topics = make_topics(kafka, uuid.uuid4().hex[:8])
    gw = gateway(make_collector, kafka, topics, max_message_bytes=SMALL_LIMIT)
    st = storage(make_collector, kafka, topics, tmp_path)
    tid = uuid.uuid4().hex

    r = requests.post(gw.ingest + "/v1/batch", timeout=60, json={"spans": [
        prela_span(tid, "b-1"), prela_span(tid, "b-big", "x" * BIG), prela_span(tid, "b-2"),
        {"trace_id": tid}]})  # and one the decoder refuses, as before
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["ingested"], body["total"], body["rejected"]) == (2, 4, 2), body
    assert any(e.startswith("span b-big: not stored:") and f"max_message_bytes ({SMALL_LIMIT})" in e
               for e in body["errors"]), body

    r = requests.post(gw.ingest + "/v1/traces", timeout=60, json={
        "trace_id": tid, "service_name": "svc",
        "spans": [prela_span(tid, "t-1"), prela_span(tid, "t-big", "y" * BIG)]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["spans_ingested"] == 1 and body["rejected"] == 1, body
    assert "t-big" in body["errors"][0], body

    r = requests.post(gw.ingest + "/v1/spans", timeout=60, json=prela_span(tid, "s-big", "z" * BIG))
    assert r.status_code == 413, r.text
    assert "s-big" in r.text and "max_message_bytes" in r.text, r.text

    got = wait_spans(st, tid, 3)
    time.sleep(1)
    ids = {s["span_id"] for s in st.trace(tid)["spans"]}
    assert ids == {"b-1", "b-2", "t-1"}, got


def metrics_request(pad):
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add(name="tokens", description=pad)
    m.gauge.data_points.add(time_unix_nano=1_769_508_000_000_000_000, as_int=3)
    return req.SerializeToString()


def logs_request(body):
    req = logs_service_pb2.ExportLogsServiceRequest()
    rec = req.resource_logs.add().scope_logs.add().log_records.add(
        time_unix_nano=1_769_508_000_000_000_000, severity_text="INFO")
    rec.body.string_value = body
    return req.SerializeToString()


def test_oversize_metrics_and_logs_are_a_permanent_error(make_collector, kafka):
    topics = make_topics(kafka, uuid.uuid4().hex[:8])
    gw = gateway(make_collector, kafka, topics, max_message_bytes=SMALL_LIMIT)
    for path, big, small in (("/v1/metrics", metrics_request("m" * BIG), metrics_request("ok")),
                             ("/v1/logs", logs_request("l" * BIG), logs_request("ok"))):
        r = post_proto(gw.otlp + path, big)
        assert r.status_code == 400, (path, r.status_code, r.text)
        assert f"max_message_bytes ({SMALL_LIMIT})".encode() in r.content, r.content
        assert post_proto(gw.otlp + path, small).status_code == 200
        r = requests.post(gw.otlp + path, data=b"{}", timeout=30,
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text  # empty: nothing to refuse
    with pytest.raises(grpc.RpcError) as e:
        grpc_export(gw, metrics_request("g" * BIG),
                    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                    metrics_service_pb2.ExportMetricsServiceResponse)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_message_bytes" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        grpc_export(gw, logs_request("g" * BIG),
                    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                    logs_service_pb2.ExportLogsServiceResponse)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # what fitted is on its topic, as sent; what was refused is not
    assert kafka.consume(topics["metrics"], 1)[0][1] == metrics_request("ok")
    assert kafka.consume(topics["logs"], 1)[0][1] == logs_request("ok")
