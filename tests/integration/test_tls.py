"""TLS on every listener: prela (8001), OTLP/HTTP (4318), OTLP/gRPC (4317), query (8002).

Certificates are made here with `openssl` (one set per module, in a temp dir): a CA, a
server certificate for localhost / 127.0.0.1 signed by it, a client certificate signed
by it, and a "rogue" client certificate signed by another CA. Real clients only: curl,
the Prela SDK's HTTP exporter (requests), the OpenTelemetry Python SDK over gRPC (grpcio)
and over OTLP/HTTP. What is checked:
- TLS: each listener serves its API over TLS with the test CA; plaintext to a TLS port
  gets nothing (and the collector keeps running); data sent by the SDKs reads back over
  https from the query API.
- mTLS (client_ca_file): no client certificate and an untrusted one are refused on every
  listener, and nothing they sent is stored; a certificate from the CA works.
- Bad TLS settings fail startup with a message naming the key.
"""
import json
import os
import subprocess
import time
import uuid

import grpc
import pytest
import requests

import clients
from conftest import BIN, Collector, _accepts

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
EMPTY_GRPC_MSG = b"\x00\x00\x00\x00\x00"  # an empty ExportTraceServiceRequest, framed


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    script = """
set -e
ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=prela-test-ca
openssl req -x509 $ec -keyout other.key -out other.crt -days 2 -subj /CN=other-ca
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
printf 'extendedKeyUsage=clientAuth\\n' > client.ext
openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext
openssl req $ec -keyout client.key -out client.csr -subj /CN=good-client
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -out client.crt -days 2 -extfile client.ext
openssl req $ec -keyout rogue.key -out rogue.csr -subj /CN=rogue-client
openssl x509 -req -in rogue.csr -CA other.crt -CAkey other.key -CAcreateserial -out rogue.crt -days 2 -extfile client.ext
"""
    r = subprocess.run(["bash", "-c", script], cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, "openssl failed:\n" + r.stderr
    return {name: str(d / name) for name in
            ("ca.crt", "server.crt", "server.key", "client.crt", "client.key", "rogue.crt", "rogue.key")}


class TlsCollector(Collector):
    """A collector whose four listeners serve TLS (mTLS with |mutual|)."""

    def __init__(self, tmp_path, certs, mutual=False, **kw):
        tls = f"tls:\n  cert_file: {certs['server.crt']}\n  key_file: {certs['server.key']}\n"
        if mutual:
            tls += f"  client_ca_file: {certs['ca.crt']}\n"
        super().__init__(tmp_path, prela_extra=tls, grpc_extra=tls, otlp_extra=tls, **kw)
        text = self.config_path.read_text()
        query_line = f"endpoint: 127.0.0.1:{self.ports['query_port']}\n    store: local\n"
        assert query_line in text
        self.config_path.write_text(text.replace(query_line, query_line + "    " + tls.replace("\n  ", "\n      ")))
        self.certs, self.mutual = certs, mutual
        for name, port in (("ingest", "ingest_port"), ("otlp", "otlp_port"), ("query", "query_port")):
            setattr(self, name, f"https://127.0.0.1:{self.ports[port]}")
        self.client_cert = (certs["client.crt"], certs["client.key"]) if mutual else None

    def start(self):
        self.spawn()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if (all(_accepts(p) for p in self.ports.values()) and
                        self.get("/api/v1/health").ok and
                        requests.get(self.ingest + "/health", verify=self.certs["ca.crt"],
                                     cert=self.client_cert, timeout=1).ok):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("collector did not become ready:\n" + self.logs())

    def get(self, path, **params):
        headers = {"X-API-Key": self.read_key} if self.read_key else {}
        return requests.get(self.query + path, params=params, timeout=10, verify=self.certs["ca.crt"],
                            cert=self.client_cert, headers=headers)


def _run(certs, tmp_path, mutual):
    c = TlsCollector(tmp_path, certs, mutual=mutual).start()
    try:
        yield c
    finally:
        rc = c.stop()
        assert rc == 0, f"collector exited with status {rc}:\n{c.logs()}"


@pytest.fixture
def tls_collector(certs, tmp_path):
    yield from _run(certs, tmp_path, mutual=False)


@pytest.fixture
def mtls_collector(certs, tmp_path):
    yield from _run(certs, tmp_path, mutual=True)


def curl(*args, timeout=20):
    """Runs curl; returns (exit code, stdout bytes, stderr text)."""
    r = subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def curl_grpc_bytes(c, *args):
    """An empty trace export through curl over HTTP/2 + TLS (the framed message on stdin);
    returns (exit code, headers and trailers lowercased, stderr)."""
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2", "-D", "-", "-o", os.devnull,
                        "-H", "Content-Type: application/grpc", "-H", "TE: trailers",
                        "--data-binary", "@-", f"https://127.0.0.1:{c.ports['grpc_port']}{EXPORT}", *args],
                       input=EMPTY_GRPC_MSG, capture_output=True, timeout=20)
    return r.returncode, r.stdout.decode(errors="replace").lower(), r.stderr.decode(errors="replace")


def prela_trace(trace_id, name):
    """One Prela JSON trace of a single span."""
    return {"trace_id": trace_id, "service_name": "tls-test", "started_at": "2025-01-27T10:00:00Z",
            "spans": [{"span_id": trace_id + "-s", "trace_id": trace_id, "name": name, "span_type": "agent",
                       "started_at": "2025-01-27T10:00:00Z", "ended_at": "2025-01-27T10:00:01Z"}]}


# --- TLS ----------------------------------------------------------------------------------------

def test_curl_on_every_listener(tls_collector, certs):
    c, ca = tls_collector, certs["ca.crt"]
    rc, out, err = curl("--cacert", ca, c.ingest + "/health")
    assert rc == 0 and json.loads(out)["status"] == "healthy", err
    rc, out, err = curl("--cacert", ca, c.query + "/api/v1/health")
    assert rc == 0 and json.loads(out)["status"] == "healthy", err
    rc, out, err = curl("--cacert", ca, "-w", "%{http_code}", "-o", os.devnull, "-H",
                        "Content-Type: application/json", "-d", '{"resourceSpans":[]}', c.otlp + "/v1/traces")
    assert rc == 0 and out == b"200", err
    rc, head, err = curl_grpc_bytes(c, "--cacert", ca)
    assert rc == 0, err
    assert head.startswith("http/2 200") and "grpc-status: 0" in head, head
    # The chain really is the test CA's: without it curl does not trust the server.
    rc, _, err = curl(c.ingest + "/health")
    assert rc == 60, (rc, err)  # CURLE_PEER_FAILED_VERIFICATION
    # localhost is in the certificate as well as 127.0.0.1
    rc, out, err = curl("--cacert", ca, c.ingest.replace("127.0.0.1", "localhost") + "/health")
    assert rc == 0 and json.loads(out)["status"] == "healthy", err


def test_plaintext_to_tls_ports_fails(tls_collector, certs):
    c = tls_collector
    for port in ("ingest_port", "otlp_port", "query_port"):
        rc, out, err = curl(f"http://127.0.0.1:{c.ports[port]}/health")
        assert rc != 0 and b"healthy" not in out, (port, rc, out)
    rc, out, err = curl("--http2-prior-knowledge", "-H", "Content-Type: application/grpc",
                        "--data-binary", "@" + os.devnull, f"http://127.0.0.1:{c.ports['grpc_port']}{EXPORT}")
    assert rc != 0, (rc, out, err)
    with grpc.insecure_channel(c.grpc) as ch:
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary(EXPORT)(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    # and the collector is still there, serving TLS
    assert c.alive()
    rc, out, err = curl("--cacert", certs["ca.crt"], c.ingest + "/health")
    assert rc == 0 and json.loads(out)["status"] == "healthy", err


def test_prela_sdk_over_https(tls_collector, certs, monkeypatch):
    """The Prela SDK's HTTP exporter (requests) with an https endpoint; the trace reads
    back over https from the query API."""
    from prela.core.span import SpanType
    from prela.core.tracer import Tracer
    from prela.exporters.http import HTTPExporter

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certs["ca.crt"])
    exporter = HTTPExporter(endpoint=tls_collector.ingest + "/v1/traces", compress=True, max_retries=0)
    tracer = Tracer(service_name="tls-sdk", exporter=exporter)
    with tracer.span("agent.run", span_type=SpanType.AGENT) as root:
        with tracer.span("llm.call", span_type=SpanType.LLM) as llm:
            llm.set_attribute("llm.model", "gpt-4o")
    t = tls_collector.trace(root.trace_id)
    assert t["trace"]["span_count"] == 2 and t["trace"]["service_name"] == "tls-sdk"
    assert {s["name"] for s in t["spans"]} == {"agent.run", "llm.call"}


def test_otel_python_grpc_tls(tls_collector, certs):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    with open(certs["ca.crt"], "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    spec = clients.make_spec("python-grpc-tls", uuid.uuid4().hex[:8], python_only=True)
    exporter = OTLPSpanExporter(endpoint=tls_collector.grpc, credentials=creds, insecure=False, timeout=10)
    clients.send_python(spec, exporter)
    clients.check_spec(tls_collector, spec, "python", scope_attrs={"scope.flavor": "python"})


def test_otel_python_https(tls_collector, certs, monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # requests prefers these variables over the session's CA file (certificate_file)
    # when a request does not name one itself; a CI machine may set them.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    spec = clients.make_spec("python-https", uuid.uuid4().hex[:8], python_only=True)
    exporter = OTLPSpanExporter(endpoint=tls_collector.otlp + "/v1/traces", certificate_file=certs["ca.crt"],
                                timeout=10)
    clients.send_python(spec, exporter)
    clients.check_spec(tls_collector, spec, "python", scope_attrs={"scope.flavor": "python"})


# --- mTLS ---------------------------------------------------------------------------------------

def test_mtls_http_listeners(mtls_collector, certs):
    c, ca = mtls_collector, certs["ca.crt"]
    good = ["--cert", certs["client.crt"], "--key", certs["client.key"]]
    rogue = ["--cert", certs["rogue.crt"], "--key", certs["rogue.key"]]
    for who, cert in (("none", []), ("rogue", rogue)):
        rid = f"mtls-{who}-{uuid.uuid4().hex[:8]}"
        rc, out, err = curl("--cacert", ca, *cert, "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                            "-d", json.dumps(prela_trace(rid, "refused")), c.ingest + "/v1/traces")
        assert rc == 0 and out.endswith(b"\n403"), (who, rc, out, err)
        assert b"certificate" in out, out
        rc, out, err = curl("--cacert", ca, *cert, "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                            "-d", '{"resourceSpans":[]}', c.otlp + "/v1/traces")
        assert rc == 0 and out.endswith(b"\n403"), (who, rc, out, err)
        rc, out, err = curl("--cacert", ca, *cert, "-w", "\n%{http_code}", c.query + "/api/v1/traces")
        assert rc == 0 and out.endswith(b"\n403"), (who, rc, out, err)
        assert c.get(f"/api/v1/traces/{rid}").status_code == 404  # nothing of it was stored
    rid = f"mtls-good-{uuid.uuid4().hex[:8]}"
    rc, out, err = curl("--cacert", ca, *good, "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                        "-d", json.dumps(prela_trace(rid, "accepted")), c.ingest + "/v1/traces")
    assert rc == 0 and out.endswith(b"\n200"), (rc, out, err)
    rc, out, err = curl("--cacert", ca, *good, c.query + f"/api/v1/traces/{rid}")
    assert rc == 0 and json.loads(out)["spans"][0]["name"] == "accepted", (out, err)
    rc, out, err = curl("--cacert", ca, *good, "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                        "-d", '{"resourceSpans":[]}', c.otlp + "/v1/traces")
    assert rc == 0 and out.endswith(b"\n200"), (rc, out, err)
    # requests (the Prela SDK's HTTP stack) without a client certificate is refused too
    r = requests.get(c.ingest + "/health", verify=ca, timeout=10)
    assert r.status_code == 403


def test_mtls_grpc(mtls_collector, certs):
    c = mtls_collector
    with open(certs["ca.crt"], "rb") as f:
        ca = f.read()

    def pem(name):
        with open(certs[name], "rb") as f:
            return f.read()

    def export(creds):
        with grpc.secure_channel(c.grpc, creds) as ch:
            return ch.unary_unary(EXPORT)(b"", timeout=10)

    for creds in (grpc.ssl_channel_credentials(root_certificates=ca),
                  grpc.ssl_channel_credentials(root_certificates=ca, private_key=pem("rogue.key"),
                                               certificate_chain=pem("rogue.crt"))):
        with pytest.raises(grpc.RpcError) as e:
            export(creds)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
    good = grpc.ssl_channel_credentials(root_certificates=ca, private_key=pem("client.key"),
                                        certificate_chain=pem("client.crt"))
    assert export(good) == b""  # an empty ExportTraceServiceResponse
    # curl: refused without a certificate, answered with one
    rc, head, err = curl_grpc_bytes(c, "--cacert", certs["ca.crt"])
    assert rc != 0 and "grpc-status" not in head, (rc, head, err)
    rc, head, err = curl_grpc_bytes(c, "--cacert", certs["ca.crt"], "--cert", certs["client.crt"],
                                    "--key", certs["client.key"])
    assert rc == 0 and "grpc-status: 0" in head, (rc, head, err)
    # the OpenTelemetry SDK with the good certificate: spans read back
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    spec = clients.make_spec("python-grpc-mtls", uuid.uuid4().hex[:8], python_only=True)
    clients.send_python(spec, OTLPSpanExporter(endpoint=c.grpc, credentials=good, insecure=False, timeout=10))
    clients.check_spec(c, spec, "python", scope_attrs={"scope.flavor": "python"})
    assert "mTLS" in c.logs() or "client certificates required" in c.logs()


# --- bad settings -------------------------------------------------------------------------------

def _start_fails(tmp_path, **extra):
    c = Collector(tmp_path, **extra)
    r = subprocess.run([BIN, "--config", str(c.config_path)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def test_bad_tls_settings_fail_startup(tmp_path, certs):
    missing = str(tmp_path / "nope.crt")
    out = _start_fails(tmp_path, grpc_extra=f"tls:\n  cert_file: {missing}\n  key_file: {certs['server.key']}\n")
    assert "receivers.otlp.protocols.grpc.tls.cert_file" in out and "nope.crt" in out, out
    out = _start_fails(tmp_path, prela_extra=f"tls:\n  cert_file: {certs['server.crt']}\n"
                                             f"  key_file: {certs['client.key']}\n")
    assert "receivers.prela.tls.key_file" in out and "does not match" in out, out
    out = _start_fails(tmp_path, otlp_extra=f"tls:\n  cert_file: {certs['server.crt']}\n")
    assert "receivers.otlp.protocols.http.tls.key_file" in out and "required" in out, out
    out = _start_fails(tmp_path, otlp_extra=f"tls:\n  cert_file: {certs['server.crt']}\n"
                                            f"  key_file: {certs['server.key']}\n"
                                            f"  client_ca_file: {certs['server.key']}\n")
    assert "receivers.otlp.protocols.http.tls.client_ca_file" in out, out


def test_api_keys_over_tls(certs, tmp_path):
    """Keys and TLS together: the key is checked inside the TLS session on every listener."""
    key = "tls-admin-key-000000000000001"
    c = TlsCollector(tmp_path, certs, auth=f"keys:\n  - {{name: k, key: {key}, project: p, scopes: [admin]}}\n",
                     read_key=key).start()
    try:
        ca = certs["ca.crt"]
        body = prela_trace("t-tls-key", "keyed")
        r = requests.post(c.ingest + "/v1/traces", json=body, verify=ca, timeout=10)
        assert r.status_code == 401, r.text
        r = requests.post(c.ingest + "/v1/traces", json=body, verify=ca, timeout=10,
                          headers={"Authorization": "Bearer " + key})
        assert r.status_code == 200, r.text
        with open(ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        with grpc.secure_channel(c.grpc, creds) as ch:
            call = ch.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as e:
                call(EMPTY_GRPC_MSG[5:], timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
            call(EMPTY_GRPC_MSG[5:], metadata=[("x-api-key", key)], timeout=10)
        assert requests.get(c.query + "/api/v1/traces/t-tls-key", verify=ca, timeout=10).status_code == 401
        body = c.get("/api/v1/traces/t-tls-key").json()
        assert body["trace"]["project_id"] == "p" and body["spans"][0]["name"] == "keyed"
    finally:
        assert c.stop() == 0, c.logs()
