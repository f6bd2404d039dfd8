"""The live tail (issue 14): GET /api/v1/tail, new traces as Server-Sent Events.

A tail is read as a client would: a streaming HTTP request (http.client, chunked),
and once with `curl -N`. Traces go in through the OTLP/HTTP receiver while tails are
open. Checked: an event arrives within a bound after the spans are sent (on the
embedded store and on ClickHouse), a trace that gains spans comes again, every
filter, auth (no key 401, a project key sees only its project), the client limit
(503 naming the setting, a slot frees when a client leaves), a reader that stops
reading (cut, its memory bounded, the other tails unaffected), heartbeats, bad
parameters, and shutdown with tails open.
"""
import http.client
import json
import queue
import re
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

import workload
from services import clickhouse, kafka  # noqa: F401  (fixtures)
from test_production import READ_KEY, post_traces, roles  # noqa: F401  (roles: a fixture)

MS = 10**6
ARRIVAL_BOUND_S = 5.0  # poll 1 s + the store's write path; ClickHouse batches too


def _span(trace, sid, name, start_ms=0, dur_ms=100, parent="", error=None, **attrs):
    now = time.time_ns() - 5_000 * MS
    s = {"traceId": trace, "spanId": sid, "name": name, "kind": 1,
         "startTimeUnixNano": str(now + start_ms * MS),
         "endTimeUnixNano": str(now + (start_ms + dur_ms) * MS),
         "attributes": [{"key": k, "value": ({"intValue": str(v)} if isinstance(v, int)
                                             else {"stringValue": v})}
                        for k, v in attrs.items()]}
    if parent:
        s["parentSpanId"] = parent
    if error:
        s["status"] = {"code": 2, "message": error}
    return s


def send(c, service, spans, key=None):
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test_tail"}, "spans": spans}]}]}
    r = requests.post(c.otlp + "/v1/traces", json=body,
                      headers={"X-API-Key": key} if key else {}, timeout=10)
    assert r.status_code == 200, r.text


class Tail:
    """One open GET /api/v1/tail, read on a thread into events and comments."""

    def __init__(self, c, params=None, key=None):
        u = urllib.parse.urlsplit(c.query)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        path = "/api/v1/tail" + ("?" + urllib.parse.urlencode(params) if params else "")
        self.conn.request("GET", path, headers={"X-API-Key": key} if key else {})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = dict(self.resp.getheaders())
        self.events, self.comments = queue.Queue(), queue.Queue()
        self.closed = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = json.loads(self.resp.read() or b"{}")

    def _read(self):
        ev = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\n")
                if line.startswith(":"):
                    self.comments.put(line[1:].strip())
                elif line == "":
                    if "data" in ev:
                        self.events.put((ev.get("event"), ev.get("id"), json.loads(ev["data"])))
                    ev = {}
                else:
                    k, _, v = line.partition(":")
                    ev[k] = v[1:] if v.startswith(" ") else v
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass
        self.closed.set()

    def wait_ready(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.comments.get(timeout=max(0.01, deadline - time.time())) == "ready":
                    return
            except queue.Empty:
                break
        raise AssertionError("the tail did not say ready")

    def next(self, timeout=ARRIVAL_BOUND_S):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout} s")

    def drain(self, wait=0.0):
        time.sleep(wait)
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def trace_row(c, trace_id):
    for t in c.get("/api/v1/traces", limit=1000).json()["traces"]:
        if t["trace_id"] == trace_id:
            return t
    return None


def metric(c, name):
    text = requests.get(c.metrics + "/metrics", timeout=5).text
    return sum(float(m.group(1)) for m in re.finditer(
        rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


# ------------------------------------------------------------------ arrival --

@pytest.mark.usefixtures("store")
def test_new_trace_arrives_and_changes_come_again(make_collector):
    c = make_collector()
    tail = Tail(c)
    assert tail.status == 200
    assert tail.headers["Content-Type"].startswith("text/event-stream")
    assert tail.headers.get("Cache-Control") == "no-cache"
    tail.wait_ready()
    tid = "e1" * 16
    t0 = time.time()
    send(c, "tail-svc", [_span(tid, "1000000000000001", "root", 0, 1000)])
    kind, eid, t = tail.next()
    took = time.time() - t0
    print(f"event after {took:.2f} s")
    assert took < ARRIVAL_BOUND_S
    assert kind == "trace" and eid and t["trace_id"] == tid and t["span_count"] == 1
    assert t["service_name"] == "tail-svc" and t["root_span_name"] == "root"
    # the event is the list's object for the trace
    assert t == trace_row(c, tid)
    # more spans of it: it comes again, with the new summary
    send(c, "tail-svc", [_span(tid, "1000000000000002", "kid", 100, 200,
                               parent="1000000000000001", error="boom")])
    kind, eid2, t = tail.next()
    assert t["trace_id"] == tid and t["span_count"] == 2 and t["status"] == "error"
    assert int(eid2) > int(eid)
    # nothing changes: nothing comes
    assert tail.drain(2.5) == []
    tail.close()


def test_curl_reads_the_tail(collector):
    proc = subprocess.Popen(["curl", "-N", "-s", "--max-time", "8",
                             collector.query + "/api/v1/tail?service_name=curl-svc"],
                            stdout=subprocess.PIPE)
    deadline = time.time() + 10
    buf = b""
    import os
    import select
    os.set_blocking(proc.stdout.fileno(), False)
    sent = False
    tid = "e2" * 16
    while time.time() < deadline and b"event: trace" not in buf:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            buf += proc.stdout.read() or b""
        if b": ready" in buf and not sent:
            send(collector, "curl-svc", [_span(tid, "2000000000000001", "by curl")])
            sent = True
    proc.kill()
    proc.wait()
    assert sent and b"event: trace" in buf, buf
    data = [ln for ln in buf.decode().splitlines() if ln.startswith("data: ")]
    assert json.loads(data[0][6:])["trace_id"] == tid


def test_storage_role_spans_through_kafka(roles):
    """configs/gateway.yaml → Kafka → configs/storage.yaml → ClickHouse: the storage
    collector's tail shows traces it consumed from Kafka (its poller reads ClickHouse)."""
    gateway, storage = roles()
    gateway.start()
    storage.start()
    assert Tail(storage).status == 401
    tail = Tail(storage, key=READ_KEY)
    assert tail.status == 200
    tail.wait_ready()
    traces = workload.recent(workload.make_traces(3), 5 * 10**9)  # within tail_lookback
    t0 = time.time()
    r = post_traces(gateway, traces)
    assert r.status_code == 200, r.text
    want = {t["trace_id"] for t in traces}
    got = {}
    deadline = time.time() + 60
    while set(got) != want and time.time() < deadline:
        for _, _, t in tail.drain(0.1):
            got[t["trace_id"]] = t
    print(f"all three shown {time.time() - t0:.2f} s after the gateway's 200")
    assert set(got) == want
    assert {t["project_id"] for t in got.values()} == {"prod"}
    tail.close()


# ------------------------------------------------------------------ filters --

def test_filters(collector):
    c = collector
    cases = {
        "all": ({}, {"f1", "f2", "f3"}),
        "service": ({"service_name": "svc-b"}, {"f2"}),
        "status": ({"status": "ERROR"}, {"f2"}),
        "span_type": ({"span_type": "tool"}, {"f1"}),
        "model": ({"model": "gpt-4o-mini"}, {"f3"}),
        "session": ({"session_id": "s-1"}, {"f3"}),
        "user": ({"user_id": "u-9"}, {"f1"}),
        "two": ({"service_name": "svc-a", "span_type": "llm"}, {"f3"}),
        "none": ({"user_id": "nobody"}, set()),
    }
    tails = {k: Tail(c, p) for k, (p, _) in cases.items()}
    for t in tails.values():
        assert t.status == 200
        t.wait_ready()
    ids = {"f1": "f1" * 16, "f2": "f2" * 16, "f3": "f3" * 16}
    send(c, "svc-a", [
        _span(ids["f1"], "3000000000000001", "agent", 0, 500, **{"user.id": "u-9"}),
        _span(ids["f1"], "3000000000000002", "tool call", 10, 100, parent="3000000000000001",
              **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "x"}),
        _span(ids["f3"], "3000000000000003", "chat", 0, 300,
              **{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                 "gen_ai.conversation.id": "s-1"}),
    ])
    send(c, "svc-b", [_span(ids["f2"], "3000000000000004", "pay", 0, 100, error="declined")])
    names = {v: k for k, v in ids.items()}
    got_all = set()
    deadline = time.time() + ARRIVAL_BOUND_S + 3
    while got_all != {"f1", "f2", "f3"} and time.time() < deadline:
        got_all |= {names[e[2]["trace_id"]] for e in tails["all"].drain(0.1)}
    assert got_all == {"f1", "f2", "f3"}
    time.sleep(1.5)  # one more poll: the filtered tails had the same chance
    for k, (params, want) in cases.items():
        if k == "all":
            continue
        got = {names[e[2]["trace_id"]] for e in tails[k].drain()}
        assert got == want, (k, params, got)
    for t in tails.values():
        t.close()


def test_bad_parameters(collector):
    for params, word in (({"span_type": "bogus"}, "span_type"), ({"start_time": "2024-01-01"},
                         "start_time"), ({"cursor": "x"}, "cursor"), ({"attr.a": "b"}, "attr")):
        r = requests.get(collector.query + "/api/v1/tail", params=params, timeout=5)
        assert r.status_code == 400 and word in r.json()["detail"], (params, r.text)
    r = requests.post(collector.query + "/api/v1/tail", data=b"x", timeout=5)
    assert r.status_code == 405


# --------------------------------------------------------------------- auth --

KEYS = {
    "alpha-ingest": "alpha-ingest-key-tail-0001",
    "alpha-read": "alpha-read-key-tail-00002",
    "beta-ingest": "beta-ingest-key-tail-0003",
    "ops": "ops-admin-key-tail-000005",
}
AUTH = f"""
keys:
  - {{name: alpha-ingest, key: {KEYS['alpha-ingest']}, project: alpha, scopes: [ingest]}}
  - {{name: alpha-read, key: {KEYS['alpha-read']}, project: alpha, scopes: [read]}}
  - {{name: beta-ingest, key: {KEYS['beta-ingest']}, project: beta, scopes: [ingest]}}
  - {{name: ops, key: {KEYS['ops']}, project: "*", scopes: [ingest, read, admin]}}
"""


def test_auth_project_key_sees_only_its_project(make_collector):
    c = make_collector(auth=AUTH, read_key=KEYS["ops"])
    t = Tail(c)
    assert t.status == 401 and t.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert Tail(c, key="wrong-key-wrong-key-0").status == 401
    assert Tail(c, key=KEYS["alpha-ingest"]).status == 403  # not a read key
    t = Tail(c, {"project_id": "beta"}, key=KEYS["alpha-read"])
    assert t.status == 403  # another project's tail
    alpha = Tail(c, key=KEYS["alpha-read"])
    admin = Tail(c, key=KEYS["ops"])
    admin_beta = Tail(c, {"project_id": "beta"}, key=KEYS["ops"])
    for t in (alpha, admin, admin_beta):
        assert t.status == 200
        t.wait_ready()
    send(c, "svc", [_span("aa" * 16, "4000000000000001", "alpha root")], KEYS["alpha-ingest"])
    send(c, "svc", [_span("bb" * 16, "4000000000000002", "beta root")], KEYS["beta-ingest"])
    seen = set()
    deadline = time.time() + ARRIVAL_BOUND_S + 3
    while len(seen) < 2 and time.time() < deadline:
        seen |= {(e[2]["project_id"], e[2]["trace_id"]) for e in admin.drain(0.1)}
    assert seen == {("alpha", "aa" * 16), ("beta", "bb" * 16)}
    time.sleep(1.5)
    assert [(e[2]["project_id"], e[2]["trace_id"]) for e in alpha.drain()] == \
        [("alpha", "aa" * 16)]
    assert [(e[2]["project_id"], e[2]["trace_id"]) for e in admin_beta.drain()] == \
        [("beta", "bb" * 16)]
    for t in (alpha, admin, admin_beta):
        t.close()


# ------------------------------------------------------------------- bounds --

def test_client_limit_answers_503_naming_the_setting(make_collector):
    c = make_collector(query_extra="tail_max_clients: 2")
    a, b = Tail(c), Tail(c)
    assert a.status == 200 and b.status == 200
    full = Tail(c)
    assert full.status == 503
    assert "tail_max_clients" in full.body["detail"]
    assert int(full.headers["Retry-After"]) > 0
    # the rest of the API is not affected
    assert c.get("/api/v1/traces").status_code == 200
    # a client leaves: its slot frees (the stream notices within a second or two)
    a.close()
    deadline = time.time() + 5
    while time.time() < deadline:
        again = Tail(c)
        if again.status == 200:
            break
        time.sleep(0.2)
    assert again.status == 200
    again.wait_ready()
    b.close()
    again.close()


def test_tail_off(make_collector):
    c = make_collector(query_extra="tail_max_clients: 0")
    t = Tail(c)
    assert t.status == 503 and "tail_max_clients" in t.body["detail"]


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def test_slow_reader_is_dropped_memory_bounded(make_collector):
    c = make_collector(query_extra="tail_client_buffer: 128KiB\ntail_poll_interval: 100ms")
    used0 = metric(c, "prela_memory_budget_used_bytes")  # what the idle process holds
    good = Tail(c)
    assert good.status == 200
    good.wait_ready()
    # a client that asks and then reads nothing, with a small receive window
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", c.ports["query_port"]))
    slow.sendall(b"GET /api/v1/tail HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(1.0)  # it is ready; then it stops reading
    rss0 = _rss_kb(c.proc.pid)
    # 20 requests of 20 traces, each event about 3 KB (60 KB a poll: within the buffer
    # of a client that reads), 1.2 MB in all: far past 128 KiB + the socket buffers
    sent = set()
    for i in range(20):
        spans = []
        for j in range(20):
            tid = f"{i:04x}{j:04x}" + "9" * 24
            sent.add(tid)
            spans.append(_span(tid, "5000000000000001", "n" * 3000, 0, 10))
        send(c, "flood", spans)
        time.sleep(0.3)
    deadline = time.time() + 20
    while time.time() < deadline and metric(c, "prela_query_tail_dropped_total") < 1:
        time.sleep(0.2)
    assert metric(c, "prela_query_tail_dropped_total") == 1
    assert "dropped a live tail client" in c.logs()
    # the slow client's connection was cut: reading what is buffered ends in EOF/reset
    slow.settimeout(5)
    total, closed = 0, False
    try:
        while True:
            chunk = slow.recv(65536)
            if not chunk:
                closed = True
                break
            total += len(chunk)
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    assert closed, f"the slow client's connection is still open after {total} bytes"
    slow.close()
    # the reading tail got every trace; memory stayed bounded
    got = set()
    deadline = time.time() + 15
    while got != sent and time.time() < deadline:
        got |= {e[2]["trace_id"] for e in good.drain(0.2)}
    assert got == sent
    # the queues' bytes were charged to the memory budget and are all given back once
    # the tails end (an open one holds its request's arena)
    assert metric(c, "prela_memory_budget_peak_bytes") < 16 << 20
    good.close()
    deadline = time.time() + 5
    while metric(c, "prela_memory_budget_used_bytes") > used0 and time.time() < deadline:
        time.sleep(0.1)
    assert metric(c, "prela_memory_budget_used_bytes") == used0
    grew = _rss_kb(c.proc.pid) - rss0
    print(f"RSS grew by {grew} KB while 400 events of 3 KB went out")
    if not _sanitized(c.proc.pid):  # ASan keeps freed memory in quarantine
        assert grew < 64 * 1024
    assert c.alive()


def test_heartbeat(make_collector):
    c = make_collector(query_extra="tail_heartbeat: 300ms")
    t = Tail(c)
    t.wait_ready()
    t0 = time.time()
    beats = 0
    while beats < 3 and time.time() - t0 < 5:
        try:
            if t.comments.get(timeout=5) == "heartbeat":
                beats += 1
        except queue.Empty:
            break
    assert beats == 3 and time.time() - t0 < 2.5
    t.close()


def test_heartbeat_must_be_shorter_than_idle_timeout(tmp_path):
    from conftest import Collector
    col = Collector(tmp_path, query_extra="tail_heartbeat: 90s\nidle_timeout: 60s")
    r = subprocess.run([col.bin, "--validate", "--config", str(col.config_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "tail_heartbeat" in (r.stdout + r.stderr)


def test_shutdown_with_open_tails(make_collector):
    c = make_collector()
    tails = [Tail(c) for _ in range(3)]
    for t in tails:
        t.wait_ready()
    t0 = time.time()
    assert c.stop(timeout=10) == 0
    assert time.time() - t0 < 5
    for t in tails:
        assert t.closed.wait(5)
