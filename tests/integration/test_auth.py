"""Authentication, projects and rate limits on every port (the top-level `auth:` section).

Keys are checked from the headers before any body byte is read: 401 for a missing or
unknown key, 403 for a key without the route's scope, 429 past a key's rate limit (gRPC:
UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED + RetryInfo). A project key
decides the project of what it writes and sees only that project; an admin key (project
"*") sees every project and may choose one. Clients used: requests (HTTP), grpcio, and
hand-written HTTP/1.1 and HTTP/2 over raw sockets to prove the body is never read.
"""
import hashlib
import json
import os
import signal
import socket
import subprocess
import time

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

import conftest
import workload
from services import clickhouse  # noqa: F401  (fixture of the clickhouse store)
from test_otlp_grpc import EXPORT, H2, grpc_frame, grpc_status

KEYS = {
    "alpha-ingest": "alpha-ingest-key-000000000001",
    "alpha-read": "alpha-read-key-0000000000002",
    "beta-ingest": "beta-ingest-key-000000000003",
    "beta-read": "beta-read-key-00000000000004",
    "ops": "ops-admin-key-00000000000005",
    "limited": "limited-key-0000000000000006",
}
AUTH = f"""
keys:
  - {{name: alpha-ingest, key: {KEYS['alpha-ingest']}, project: alpha, scopes: [ingest]}}
  - {{name: alpha-read, key: {KEYS['alpha-read']}, project: alpha, scopes: [read]}}
  - {{name: beta-ingest, sha256: {hashlib.sha256(KEYS['beta-ingest'].encode()).hexdigest()}, project: beta, scopes: [ingest]}}
  - {{name: beta-read, key: {KEYS['beta-read']}, project: beta, scopes: [read]}}
  - {{name: ops, key: {KEYS['ops']}, project: "*", scopes: [ingest, read, admin]}}
  - name: limited
    key: {KEYS['limited']}
    project: lim
    scopes: [ingest]
    limits: {{spans_per_second: 20, burst: 20}}
"""

UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 16, 7, 8


@pytest.fixture
def authed(make_collector):
    return make_collector(auth=AUTH, read_key=KEYS["ops"])


def span(trace_id, span_id="s-1", **kw):
    return dict(span_id=span_id, trace_id=trace_id, name=kw.pop("name", "op"), **kw)


def http_headers(form, key):
    if key is None:
        return {}
    return {"X-API-Key": key} if form == "x-api-key" else {"Authorization": "Bearer " + key}


def grpc_export(c, body, metadata=(), timeout=15):
    with grpc.insecure_channel(c.grpc) as ch:
        call = ch.unary_unary(EXPORT, request_serializer=None,
                              response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
        return call(body, metadata=list(metadata), timeout=timeout)


def grpc_code(c, body, metadata):
    try:
        grpc_export(c, body, metadata)
        return grpc.StatusCode.OK.value[0]
    except grpc.RpcError as e:
        return e.code().value[0]


# --- every port x every credential form x {none, wrong, wrong scope, right} ----------

@pytest.mark.parametrize("form", ["x-api-key", "bearer"])
def test_http_ports_every_credential_case(authed, form):
    c = authed
    cases = [  # (url, method, body kwargs, right key, wrong-scope key)
        (c.ingest + "/v1/spans", "post", dict(json=span("t-port-1")), "alpha-ingest", "alpha-read"),
        (c.ingest + "/v1/traces", "post", dict(json={"trace_id": "t-port-2", "spans": [span("t-port-2")]}),
         "alpha-ingest", "beta-read"),
        (c.ingest + "/v1/batch", "post", dict(json={"spans": [span("t-port-3")]}), "beta-ingest", "alpha-read"),
        (c.otlp + "/v1/traces", "post", dict(data=workload.to_proto(workload.make_traces(1)),
                                             headers={"Content-Type": "application/x-protobuf"}),
         "alpha-ingest", "alpha-read"),
        (c.otlp + "/v1/metrics", "post", dict(data=b"", headers={"Content-Type": "application/x-protobuf"}),
         "alpha-ingest", "beta-read"),
        (c.query + "/api/v1/traces", "get", {}, "alpha-read", "alpha-ingest"),
        (c.query + "/api/v1/search", "get", dict(params={"query": "op"}), "beta-read", "beta-ingest"),
        (c.query + "/api/v1/traces/t-port-1", "get", {}, "alpha-read", "alpha-ingest"),
    ]
    for url, method, kw, right, wrong_scope in cases:
        def send(key):
            h = dict(kw.get("headers", {}), **http_headers(form, key))
            args = {k: v for k, v in kw.items() if k != "headers"}
            return getattr(requests, method)(url, headers=h, timeout=10, **args)

        r = send(None)
        assert r.status_code == 401, (url, r.text)
        assert r.headers.get("WWW-Authenticate") == "Bearer", url
        assert "missing API key" in r.text, url
        r = send("not-a-key-at-all-000000")
        assert r.status_code == 401 and "invalid API key" in r.text, (url, r.text)
        r = send(KEYS[wrong_scope])
        assert r.status_code == 403, (url, r.text)
        assert f"'{wrong_scope}'" in r.text and "scope" in r.text, r.text
        r = send(KEYS[right])
        assert r.status_code == 200, (url, r.status_code, r.text)
    # Open routes stay open: health checks for load balancers. They list each exporter's
    # state but, with keys in use, no reason (it can name internal hosts).
    for url in (c.ingest + "/health", c.query + "/api/v1/health"):
        r = requests.get(url, timeout=5)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "healthy" and body["exporters"], body
        assert all("state" in e and "reason" not in e for e in body["exporters"]), body


@pytest.mark.parametrize("form", ["x-api-key", "authorization"])
def test_grpc_every_credential_case(authed, form):
    c = authed
    body = workload.to_proto(workload.make_traces(1))

    def md(key):
        if key is None:
            return []
        return [("x-api-key", key)] if form == "x-api-key" else [("authorization", "Bearer " + key)]

    assert grpc_code(c, body, md(None)) == UNAUTHENTICATED
    assert grpc_code(c, body, md("not-a-key-at-all-000000")) == UNAUTHENTICATED
    assert grpc_code(c, body, md(KEYS["alpha-read"])) == PERMISSION_DENIED
    assert grpc_code(c, body, md(KEYS["alpha-ingest"])) == 0
    # Metrics and logs services are ingest too.
    with grpc.insecure_channel(c.grpc) as ch:
        call = ch.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                              request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as e:
            call(b"", metadata=md(None), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        call(b"", metadata=md(KEYS["beta-ingest"]), timeout=10)


# --- refused before the body is read -------------------------------------------------

def _http_head_only(port, path, key, length=20 * 1024 * 1024, timeout=5):
    """Sends only the request head of a POST declaring |length| body bytes; returns what
    the server answered within |timeout| seconds (b"" when it is still waiting)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n" + (f"X-API-Key: {key}\r\n" if key else "") + "\r\n")
    s.sendall(head.encode())
    got = b""
    s.settimeout(timeout)
    try:
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    s.close()
    return got


def test_bad_key_is_refused_before_a_20mib_body_is_read(authed):
    c = authed
    for port, path in [(c.ports["ingest_port"], "/v1/traces"), (c.ports["otlp_port"], "/v1/traces")]:
        t0 = time.time()
        got = _http_head_only(port, path, "wrong-key-0000000000000")
        # Not one body byte was sent, yet the answer is already there.
        assert got.startswith(b"HTTP/1.1 401"), got[:200]
        assert time.time() - t0 < 4
        got = _http_head_only(port, path, None)
        assert got.startswith(b"HTTP/1.1 401"), got[:200]
        got = _http_head_only(port, path, KEYS["alpha-read"])
        assert got.startswith(b"HTTP/1.1 403"), got[:200]
        # With the right key the server waits for the body it was promised.
        got = _http_head_only(port, path, KEYS["alpha-ingest"], timeout=1.5)
        assert got == b"", got[:200]
    # gRPC: HEADERS only, no DATA frame at all.
    h = H2(c.grpc)
    try:
        sid = h.start(extra=[("x-api-key", "wrong-key-0000000000000")])
        status, headers, _ = h.response(sid)
        assert grpc_status(headers)[0] == UNAUTHENTICATED
        sid = h.start(extra=[("x-api-key", KEYS["alpha-read"])])
        _, headers, _ = h.response(sid)
        assert grpc_status(headers)[0] == PERMISSION_DENIED
        # The connection is still usable: a good key and a message go through.
        sid = h.start(extra=[("x-api-key", KEYS["alpha-ingest"])])
        h.send(sid, grpc_frame(workload.to_proto(workload.make_traces(1))), end=True)
        _, headers, _ = h.response(sid)
        assert grpc_status(headers)[0] == 0
    finally:
        h.close()
    assert c.alive()


# --- the key decides the project -----------------------------------------------------

def _read(c, path, key, **params):
    return requests.get(c.query + path, params=params, headers={"X-API-Key": key}, timeout=10)


def test_project_key_overrides_what_the_client_says(authed):
    c = authed
    h = {"X-API-Key": KEYS["alpha-ingest"], "X-Prela-Project-Id": "beta"}
    assert requests.post(c.ingest + "/v1/spans", json=span("t-own-1"), headers=h).status_code == 200
    # OTLP: the header and a prela.project_id resource attribute are both ignored.
    tr = workload.make_traces(1)
    req = trace_service_pb2.ExportTraceServiceRequest.FromString(workload.to_proto(tr))
    kv = req.resource_spans[0].resource.attributes.add()
    kv.key, kv.value.string_value = "prela.project_id", "beta"
    r = requests.post(c.otlp + "/v1/traces", data=req.SerializeToString(),
                      headers=dict(h, **{"Content-Type": "application/x-protobuf"}))
    assert r.status_code == 200, r.text
    grpc_export(c, req.SerializeToString(), [("x-api-key", KEYS["alpha-ingest"]),
                                             ("x-prela-project-id", "beta")])
    for tid in ["t-own-1", tr[0]["trace_id"]]:
        body = _read(c, f"/api/v1/traces/{tid}", KEYS["alpha-read"]).json()
        assert body["trace"]["project_id"] == "alpha", body
        assert _read(c, f"/api/v1/traces/{tid}", KEYS["beta-read"]).status_code == 404
    # An admin key chooses the project with the header.
    h = {"X-API-Key": KEYS["ops"], "X-Prela-Project-Id": "gamma"}
    assert requests.post(c.ingest + "/v1/spans", json=span("t-own-2"), headers=h).status_code == 200
    assert _read(c, "/api/v1/traces/t-own-2", KEYS["ops"]).json()["trace"]["project_id"] == "gamma"
    assert _read(c, "/api/v1/traces/t-own-2", KEYS["alpha-read"]).status_code == 404


def test_reads_see_only_the_keys_project(authed):
    c = authed
    for proj, key in [("alpha", "alpha-ingest"), ("beta", "beta-ingest")]:
        r = requests.post(c.ingest + "/v1/batch", headers={"X-API-Key": KEYS[key]},
                          json={"spans": [span(f"t-{proj}-{i}", name=f"needle-{proj}") for i in range(3)]})
        assert r.status_code == 200 and r.json()["ingested"] == 3, r.text
    for proj, key, other in [("alpha", "alpha-read", "beta"), ("beta", "beta-read", "alpha")]:
        listed = _read(c, "/api/v1/traces", KEYS[key]).json()["traces"]
        assert sorted(t["trace_id"] for t in listed) == [f"t-{proj}-{i}" for i in range(3)]
        assert {t["project_id"] for t in listed} == {proj}
        # Asking for the other project does not widen a project key's view.
        r = _read(c, "/api/v1/traces", KEYS[key], project_id=other)
        assert r.status_code == 403 or r.json()["traces"] == [], r.text
        found = _read(c, "/api/v1/search", KEYS[key], query="needle").json()["results"]
        assert {t["project_id"] for t in found} == {proj} and len(found) == 3
        assert _read(c, "/api/v1/search", KEYS[key], query=f"needle-{other}").json()["results"] == []
        assert _read(c, f"/api/v1/traces/t-{other}-0", KEYS[key]).status_code == 404
        assert _read(c, f"/api/v1/traces/t-{other}-0/spans", KEYS[key]).status_code == 404
        assert _read(c, f"/api/v1/traces/t-{proj}-0/spans", KEYS[key]).status_code == 200
    # The admin key sees both, and filters with project_id.
    all_ = _read(c, "/api/v1/traces", KEYS["ops"]).json()["traces"]
    assert {t["project_id"] for t in all_} == {"alpha", "beta"}
    only = _read(c, "/api/v1/traces", KEYS["ops"], project_id="beta").json()["traces"]
    assert {t["project_id"] for t in only} == {"beta"} and len(only) == 3


# --- rate limits ---------------------------------------------------------------------

def test_rate_limit_per_key(authed):
    c = authed
    h = {"X-API-Key": KEYS["limited"]}
    answers = []
    for i in range(8):
        r = requests.post(c.ingest + "/v1/batch", headers=h,
                          json={"spans": [span(f"t-lim-{i}", f"s-{k}") for k in range(5)]})
        answers.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert "'limited'" in r.json()["detail"] and "20 spans per second" in r.json()["detail"]
    # burst 20 = four requests of 5 spans, then refusals (refill is 20/s, so at most a
    # request or two more slip in while this loop runs).
    assert answers[:4] == [200] * 4, answers
    assert answers.count(429) >= 2, answers
    # gRPC is limited by the same bucket: RESOURCE_EXHAUSTED with RetryInfo.
    big = workload.to_proto(workload.make_traces(3))  # 30 spans > what is left
    with pytest.raises(grpc.RpcError) as e:
        grpc_export(c, big, [("x-api-key", KEYS["limited"])])
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(e.value.trailing_metadata()).get("grpc-status-details-bin")
    assert details, "RetryInfo expected with RESOURCE_EXHAUSTED"
    # Another key is unaffected.
    for i in range(5):
        r = requests.post(c.ingest + "/v1/batch", headers={"X-API-Key": KEYS["alpha-ingest"]},
                          json={"spans": [span(f"t-free-{i}", f"s-{k}") for k in range(5)]})
        assert r.status_code == 200, r.text
    # Refused spans were not stored; the limited key's project holds only what got 200.
    stored = _read(c, "/api/v1/traces", KEYS["ops"], project_id="lim").json()["traces"]
    assert len(stored) == answers.count(200)
    # After the bucket refills, the key works again.
    time.sleep(1.2)
    r = requests.post(c.ingest + "/v1/spans", headers=h, json=span("t-lim-again"))
    assert r.status_code == 200, r.text


def test_daily_quota(make_collector):
    c = make_collector(auth=f"""
keys:
  - {{name: q, key: {KEYS['alpha-ingest']}, project: q, scopes: [ingest], limits: {{spans_per_day: 10}}}}
""")
    h = {"X-API-Key": KEYS["alpha-ingest"]}
    r = requests.post(c.ingest + "/v1/batch", headers=h, json={"spans": [span("t-q", f"s{i}") for i in range(10)]})
    assert r.status_code == 200
    r = requests.post(c.ingest + "/v1/spans", headers=h, json=span("t-q", "s11"))
    assert r.status_code == 429 and "quota of 10 spans" in r.json()["detail"], r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 86400
    # Refused at the headers now, before any body is read.
    assert _http_head_only(c.ports["ingest_port"], "/v1/spans", KEYS["alpha-ingest"]).startswith(b"HTTP/1.1 429")


# --- keys_file and SIGHUP ------------------------------------------------------------

def test_keys_file_reload_on_sighup(make_collector, tmp_path):
    kf = tmp_path / "keys.yaml"
    old, new = "old-key-00000000000000000001", "new-key-00000000000000000002"
    kf.write_text(f"keys:\n  - {{name: old, key: {old}, project: p, scopes: [ingest]}}\n")
    c = make_collector(auth=f"keys_file: {kf}\nkeys:\n  - {{name: ops, key: {KEYS['ops']}, project: '*', scopes: [admin]}}\n")
    post = lambda key, tid: requests.post(c.ingest + "/v1/spans", json=span(tid), headers={"X-API-Key": key})
    assert post(old, "t-r1").status_code == 200
    assert post(new, "t-r2").status_code == 401
    kf.write_text(f"keys:\n  - {{name: new, key: {new}, project: p, scopes: [ingest]}}\n")
    c.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while post(new, "t-r3").status_code != 200:
        assert time.time() < deadline, c.logs()
        time.sleep(0.05)
    assert post(old, "t-r4").status_code == 401
    assert post(KEYS["ops"], "t-r5").status_code == 200  # inline keys stay
    # A broken file keeps the keys in force, and says why in the log.
    kf.write_text("keys:\n  - {name: broken, project: p}\n")
    c.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "reload failed" not in c.logs():
        assert time.time() < deadline, c.logs()
        time.sleep(0.05)
    assert post(new, "t-r6").status_code == 200
    assert c.alive()


# --- configuration ----------------------------------------------------------------------

def _validate(tmp_path, auth):
    cfg = conftest.Collector(tmp_path, auth=auth)
    return subprocess.run([conftest.BIN, "--validate", "--config", str(cfg.config_path)],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("auth,message", [
    ("keys:\n  - {name: a, key: short, project: p, scopes: [ingest]}", "auth.keys[0].key: must be 16"),
    ("keys:\n  - {name: a, key: 0123456789abcdef0, project: '*', scopes: [read]}", "needs scope admin"),
    ("keys:\n  - {name: a, key: 0123456789abcdef0, project: p, scopes: [write]}", "\"write\" is not one of"),
    ("keys:\n  - {name: a, sha256: abc, project: p, scopes: [read]}", "auth.keys[0].sha256: expected 64 hex"),
    ("keys:\n  - {name: a, key: 0123456789abcdef0, project: p}", "auth.keys[0].scopes: required"),
    ("keys:\n  - {name: a, key: 0123456789abcdef0, project: p, scopes: [read], colour: red}",
     "auth.keys[0].colour: unknown key"),
    ("keys:\n  - {name: a, key: 0123456789abcdef0, project: p, scopes: [read]}\n"
     "  - {name: a, key: 0123456789abcdef1, project: p, scopes: [read]}", "is used by keys[0] too"),
    ("keys_file: /nonexistent/keys.yaml", "auth.keys_file: /nonexistent/keys.yaml: cannot open"),
    ("keys: []", "auth: give keys or keys_file"),
])
def test_bad_auth_config_fails_naming_the_key(tmp_path, auth, message):
    r = _validate(tmp_path, auth)
    assert r.returncode == 1 and message in r.stderr, r.stderr


def _run_default_config(tmp_path, **env):
    """Starts the binary with no --config (the built-in standalone defaults) and |env|;
    returns its log once it is ready, after stopping it."""
    log = tmp_path / "default.log"
    with open(log, "wb") as f:
        p = subprocess.Popen([conftest.BIN], stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path,
                             env=dict(os.environ, PRELA_DATA_DIR=str(tmp_path / "data"), **env))
        try:
            deadline = time.time() + 30
            while b"ready" not in log.read_bytes():
                assert p.poll() is None and time.time() < deadline, log.read_text()
                time.sleep(0.05)
        finally:
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=30) == 0, log.read_text()
    return log.read_text()


def test_standalone_defaults_bind_to_loopback_and_say_how_to_expose(tmp_path):
    text = _run_default_config(tmp_path)
    for port in (8001, 4317, 4318, 8002):
        assert f"listening on 127.0.0.1:{port} " in text, text
    assert "no API keys configured" in text and "add an auth: section" in text
    assert "without authentication" not in text


def test_exposed_listener_without_keys_warns(tmp_path):
    port = conftest.free_port()
    text = _run_default_config(tmp_path, PRELA_INGEST_ENDPOINT=f"0.0.0.0:{port}",
                               **{k: f"127.0.0.1:{conftest.free_port()}" for k in (
                                   "PRELA_OTLP_GRPC_ENDPOINT", "PRELA_OTLP_HTTP_ENDPOINT",
                                   "PRELA_QUERY_ENDPOINT")})
    warned = [ln for ln in text.splitlines() if "without authentication" in ln]
    assert len(warned) == 1 and f"0.0.0.0:{port}" in warned[0] and " warn " in warned[0], text


# --- CORS ------------------------------------------------------------------------------------

def test_cors_wildcard_never_with_credentials(make_collector):
    c = make_collector(prela_extra='cors_origins: "*"', auth=AUTH)
    r = requests.post(c.ingest + "/v1/spans", json=span("t-cors"),
                      headers={"Origin": "https://evil.example", "X-API-Key": KEYS["alpha-ingest"]})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers
    pre = requests.options(c.ingest + "/v1/spans", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert pre.status_code == 204
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in pre.headers


def test_cors_json_list_form(make_collector):
    c = make_collector(prela_extra="""cors_origins: '["https://a.example", "https://b.example"]'""")
    for origin in ["https://a.example", "https://b.example"]:
        r = requests.get(c.ingest + "/health", headers={"Origin": origin})
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
    r = requests.get(c.ingest + "/health", headers={"Origin": "https://c.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


# --- two projects, the same ids, on every store ------------------------------------------

@pytest.mark.usefixtures("store")
def test_two_projects_same_trace_and_span_ids(make_collector):
    """alpha and beta send the same trace id and span ids (Prela JSON and OTLP): each is
    answered 200 and reads back only its own spans; search never crosses; admin sees both."""
    c = make_collector(auth=AUTH)
    tr = workload.make_traces(1)
    otlp_body = workload.to_proto(tr)
    tid, sids = tr[0]["trace_id"], sorted(s["span_id"] for s in tr[0]["spans"])
    for proj in ("alpha", "beta"):
        key = KEYS[f"{proj}-ingest"]
        r = requests.post(c.ingest + "/v1/traces", headers={"X-API-Key": key}, json={
            "trace_id": "t-shared", "service_name": f"svc-{proj}",
            "spans": [span("t-shared", "s-1", name=f"root-{proj}"),
                      span("t-shared", "s-2", name=f"child-{proj}", parent_span_id="s-1")]})
        assert r.status_code == 200, r.text
        r = requests.post(c.otlp + "/v1/traces", data=otlp_body,
                          headers={"X-API-Key": key, "Content-Type": "application/x-protobuf"})
        assert r.status_code == 200, r.text
    for proj, other in (("alpha", "beta"), ("beta", "alpha")):
        key = KEYS[f"{proj}-read"]
        body = _read(c, "/api/v1/traces/t-shared", key).json()
        assert body["trace"]["project_id"] == proj and body["span_count"] == 2, body
        assert sorted(s["name"] for s in body["spans"]) == [f"child-{proj}", f"root-{proj}"]
        assert body["trace"]["service_name"] == f"svc-{proj}"
        assert {s["project_id"] for s in body["spans"]} == {proj}
        spans = _read(c, "/api/v1/traces/t-shared/spans", key).json()["spans"]
        assert sorted(s["name"] for s in spans) == [f"child-{proj}", f"root-{proj}"]
        body = _read(c, f"/api/v1/traces/{tid}", key).json()
        assert sorted(s["span_id"] for s in body["spans"]) == sids and body["trace"]["span_count"] == len(sids)
        found = _read(c, "/api/v1/search", key, query="root-").json()["results"]
        assert [(t["trace_id"], t["project_id"]) for t in found] == [("t-shared", proj)]
        assert _read(c, "/api/v1/search", key, query=f"child-{other}").json()["results"] == []
    listed = _read(c, "/api/v1/traces", KEYS["ops"]).json()["traces"]
    assert sorted((t["trace_id"], t["project_id"]) for t in listed) == sorted(
        [("t-shared", "alpha"), ("t-shared", "beta"), (tid, "alpha"), (tid, "beta")])
    for proj in ("alpha", "beta"):
        body = _read(c, "/api/v1/traces/t-shared", KEYS["ops"], project_id=proj).json()
        assert {s["name"] for s in body["spans"]} == {f"root-{proj}", f"child-{proj}"}


def test_hostile_credentials(authed):
    """Odd and oversized credentials are refused cleanly; the process stays up."""
    c = authed
    url = c.ingest + "/v1/spans"
    for headers in ({"Authorization": "Bearer "}, {"Authorization": "Bearer"}, {"X-API-Key": ""},
                    {"Authorization": "Basic " + KEYS["alpha-ingest"]},
                    {"Authorization": "Bearer " + KEYS["alpha-ingest"] + " "},
                    {"X-API-Key": KEYS["alpha-ingest"][:-1]},
                    {"X-API-Key": "x" * 8000},
                    {"X-API-Key": KEYS["alpha-ingest"] + "\t"}):
        r = requests.post(url, json=span("t-hostile"), headers=headers, timeout=10)
        assert r.status_code == 401, (headers.keys(), r.status_code, r.text)
    # A header far larger than any server keeps per request: refused, never 200.
    r = requests.post(url, json=span("t-hostile"), headers={"X-API-Key": "k" * 300000}, timeout=10)
    assert r.status_code in (400, 401, 413, 431), r.status_code
    with pytest.raises(grpc.RpcError) as e:
        grpc_export(c, workload.to_proto(workload.make_traces(1)), [("x-api-key", "k" * 20000)])
    assert e.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL,
                              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
    assert c.alive()
    assert _read(c, "/api/v1/traces/t-hostile", KEYS["ops"]).status_code == 404
    r = requests.post(url, json=span("t-fine"), headers={"X-API-Key": KEYS["alpha-ingest"]}, timeout=10)
    assert r.status_code == 200
