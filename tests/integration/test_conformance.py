"""Conformance with real OpenTelemetry clients, each over every transport it has.

  OpenTelemetry Python SDK   OTLP/gRPC and OTLP/HTTP protobuf exporters, plain and gzip
  OpenTelemetry JS SDK       OTLP/HTTP JSON, OTLP/HTTP protobuf and OTLP/gRPC, plain and gzip
  telemetrygen (Go SDK)      OTLP/gRPC and OTLP/HTTP, thousands of spans, counted exactly

The SDK tests replay one trace written down in clients.make_spec (every attribute type
the SDK can send, events, links, all span kinds, exact nanosecond timestamps, status
with message) and read it back through the query API with clients.check_spec. The
clients come from their registries (PyPI via tests/requirements.txt; npm and the Go
module proxy via scripts/clients.sh); a missing one fails the test.
"""
import uuid

import pytest
import requests

import clients
from services import clickhouse  # noqa: F401  (fixture of the clickhouse store)

pytestmark = pytest.mark.usefixtures("store")  # every test runs on both stores


def tag():
    return uuid.uuid4().hex[:12]


# --- OpenTelemetry Python SDK ------------------------------------------------------------

@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_python_sdk_grpc_exporter(collector, compression):
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    spec = clients.make_spec(f"py-grpc-{compression}", tag(), python_only=True)
    exporter = OTLPSpanExporter(endpoint=clients.grpc_endpoint(collector), insecure=True, timeout=10,
                                compression=grpc.Compression.Gzip if compression == "gzip"
                                else grpc.Compression.NoCompression)
    clients.send_python(spec, exporter)
    clients.check_spec(collector, spec, "python", scope_attrs={"scope.flavor": "python"})


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_python_sdk_http_protobuf_exporter(collector, compression):
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    sent = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **kw: sent.append(r))
    spec = clients.make_spec(f"py-http-{compression}", tag(), python_only=True)
    exporter = OTLPSpanExporter(endpoint=collector.otlp + "/v1/traces", timeout=10, session=session,
                                compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)
    clients.send_python(spec, exporter)
    assert [r.status_code for r in sent] == [200]
    assert sent[0].request.headers["Content-Type"] == "application/x-protobuf"
    assert sent[0].request.headers.get("Content-Encoding") == ("gzip" if compression == "gzip" else None)
    assert sent[0].headers["Content-Type"] == "application/x-protobuf"
    clients.check_spec(collector, spec, "python", scope_attrs={"scope.flavor": "python"})


# --- OpenTelemetry JS SDK ------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("kind", ["http-json", "http-proto", "grpc"])
def test_js_sdk_exporter(collector, kind, compression):
    spec = clients.make_spec(f"js-{kind}-{compression}", tag(), js_only=True)
    endpoint = "http://" + clients.grpc_endpoint(collector) if kind == "grpc" else collector.otlp
    out = clients.run_js(kind, endpoint, compression, spec)
    assert out["exported"] == len(spec["spans"]) and len(out["results"]) == 1, out
    clients.check_spec(collector, spec, "nodejs")


# --- telemetrygen ----------------------------------------------------------------------------

WORKERS, TRACES, CHILDREN = 4, 500, 1  # 2000 traces, 4000 spans per run


@pytest.mark.parametrize("mode", ["grpc", "http"])
def test_telemetrygen_every_span_arrives_once(collector, mode):
    """telemetrygen (the Go SDK with a batching span processor) sends 4000 spans; every one
    is stored, none twice. Paced per worker: unpaced, the Go SDK's
    BatchSpanProcessor drops spans client-side once its 2048-span queue is full. 250 traces/s
    per worker (2,000 spans/s in all) leaves room for a slow store (ClickHouse under ASan on
    a loaded machine): at 1000 the test saw 80-98% of the traces now and then."""
    run = tag()
    service = f"tg-{mode}-{run}"
    if mode == "grpc":
        args = ["--otlp-endpoint", clients.grpc_endpoint(collector), "--otlp-insecure"]
    else:
        args = ["--otlp-http", "--otlp-endpoint", collector.otlp.removeprefix("http://"), "--otlp-insecure"]
    tg = clients.run_telemetrygen(args + [
        "--workers", str(WORKERS), "--traces", str(TRACES), "--child-spans", str(CHILDREN),
        "--rate", "250", "--service", service, "--telemetry-attributes", f'conformance.run="{run}"'])

    traces = clients.traces_of_service(collector, service)
    ids = [t["trace_id"] for t in traces]
    assert len(set(ids)) == len(ids), "a trace listed twice"
    counts = sorted({t["span_count"] for t in traces})
    # On a shortfall, what the client said about its exports (errors, drops) tells a
    # client-side drop from a collector that lost what it acknowledged.
    said = [l for l in tg.stderr.splitlines() if "grpc_log" not in l and ("rror" in l or "drop" in l)]
    assert len(ids) == WORKERS * TRACES and counts == [1 + CHILDREN], (len(ids), counts, said[-20:])
    assert sum(t["span_count"] for t in traces) == WORKERS * TRACES * (1 + CHILDREN)
    assert all(t["root_span_name"] == "lets-go" and t["status"] == "success" for t in traces)
    for t in traces[:: len(traces) // 5]:  # a sample, span by span
        spans = collector.trace(t["trace_id"])["spans"]
        assert len({s["span_id"] for s in spans}) == len(spans) == 1 + CHILDREN
        root = next(s for s in spans if s["parent_span_id"] == "")
        assert root["span_id"] == t["root_span_id"] and root["kind"] == "client"
        for s in spans:
            assert s["trace_id"] == t["trace_id"] and len(s["span_id"]) == 16
            assert s["attributes"]["conformance.run"] == run
            assert s["attributes"]["network.peer.address"] == "1.2.3.4"
            assert s["resource"]["service.name"] == service and s["scope"]["name"] == "telemetrygen"
            assert s["end_time_unix_nano"] > s["start_time_unix_nano"] >= root["start_time_unix_nano"]
            if s is not root:
                assert s["parent_span_id"] == root["span_id"] and s["kind"] == "server"
                assert s["name"] == "okey-dokey-0"
