"""Slow and stuck clients against the real binary, on the HTTP and the gRPC ports.

Attackers are raw sockets (HTTP) and hyper-h2 (gRPC), so every byte and every
pause is ours. Attack traffic comes from 127.0.0.2 (all of 127/8 is loopback), the
well-behaved client from 127.0.0.1, so per-address limits can tell them apart. The
deadlines are set short in each test's config so each runs in seconds.
"""
import os
import socket
import struct
import threading
import time

import grpc
import h2.events
import h2.exceptions
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

import workload
from clients import WellBehaved, assert_not_starved
from test_otlp_grpc import EXPORT, H2, export, grpc_frame, grpc_status

DEADLINE_EXCEEDED, INTERNAL = 4, 13
ATTACKER = "127.0.0.2"


def connect(port, source=ATTACKER, timeout=5):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_after(sock, timeout):
    """Seconds until the peer closes |sock| (EOF or reset); fails after |timeout|."""
    t0, deadline = time.time(), time.time() + timeout
    sock.settimeout(0.2)
    while time.time() < deadline:
        try:
            if not sock.recv(4096):
                return time.time() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.time() - t0
    raise AssertionError(f"still open after {timeout}s")


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def port_of(url):
    return int(url.rsplit(":", 1)[1])


# --- HTTP ------------------------------------------------------------------------------------

def test_http_trickled_headers_cut_at_deadline(make_collector):
    """A byte of header every 0.2 s keeps the idle timer (10 s) happy forever; the
    request deadline (1 s) cuts it anyway. The same for a trickled body."""
    c = make_collector(otlp_extra="request_timeout: 1s\nidle_timeout: 10s")
    port = port_of(c.otlp)
    for head, trickle in ((b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a"),
                          (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 1000\r\n\r\n{", b" ")):
        s = connect(port)
        s.sendall(head)
        t0, cut = time.time(), None
        while time.time() - t0 < 8:
            try:
                s.sendall(trickle)
                s.settimeout(0.2)
                if not s.recv(4096):
                    cut = time.time() - t0
                    break
            except socket.timeout:
                continue
            except OSError:
                cut = time.time() - t0
                break
        s.close()
        assert cut is not None, "a trickling request was never cut"
        assert 0.7 <= cut <= 5, f"cut after {cut:.2f}s, the deadline is 1s"
    r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(workload.make_traces(1)),
                      headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert r.status_code == 200, r.text


def http_exporter(url, body):
    """One well-behaved OTLP/HTTP exporter from 127.0.0.1 (keep-alive): a WellBehaved
    call, whose outcome is the HTTP status."""
    session = requests.Session()

    def call():
        return session.post(url + "/v1/traces", data=body, timeout=20,
                            headers={"Content-Type": "application/x-protobuf"}).status_code
    return call


def grpc_exporter(endpoint, body):
    """One well-behaved OTLP/gRPC exporter from 127.0.0.1 on one channel: a WellBehaved
    call, whose outcome is the gRPC code's name ("OK" with no span rejected)."""
    channel = grpc.insecure_channel(endpoint)
    export_call = channel.unary_unary(
        EXPORT, response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)

    def call():
        try:
            resp = export_call(body, timeout=20)
        except grpc.RpcError as e:
            return e.code().name
        return "OK" if resp.partial_success.rejected_spans == 0 else "REJECTED"
    return call, channel


def test_http_thousand_tricklers_do_not_lock_out(make_collector):
    """1,000 connections from one address trickling header bytes: the per-address limit
    refuses most at accept, the deadline cuts the rest, and a client from another address
    still gets its 200s in normal time."""
    c = make_collector(otlp_extra="request_timeout: 2s\nmax_connections_per_address: 64")
    port = port_of(c.otlp)
    body = workload.to_proto(workload.make_traces(2))
    good = WellBehaved(http_exporter(c.otlp, body))
    alone = good.run(40)
    stop, opened = threading.Event(), [0]

    def attack():
        socks = []
        while not stop.is_set():
            while len(socks) < 1000 and not stop.is_set():
                try:
                    s = connect(port, timeout=1)
                    s.setblocking(False)
                    s.send(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    socks.append(s)
                    opened[0] += 1
                except OSError:
                    break
            alive = []
            for s in socks:
                try:
                    s.send(b"a")
                    alive.append(s)
                except OSError:
                    s.close()
            socks = alive
            stop.wait(0.5)
        for s in socks:
            s.close()

    t = threading.Thread(target=attack)
    t.start()
    try:
        time.sleep(1.5)
        attacked = good.run(40)
    finally:
        stop.set()
        t.join()
    assert_not_starved("OTLP/HTTP", alone, attacked,
                       f"{opened[0]} trickling connections from one address")
    assert opened[0] >= 1000, opened[0]
    assert c.alive(), c.logs()


def test_http_per_address_limit(make_collector):
    c = make_collector(prela_extra="max_connections_per_address: 4")
    port = port_of(c.ingest)
    held = [connect(port) for _ in range(4)]
    extra = connect(port)
    assert closed_after(extra, 3) < 3  # refused at accept
    r = requests.get(c.ingest + "/health", timeout=5)  # 127.0.0.1: its own quota
    assert r.status_code == 200
    for s in held:
        s.close()


# --- gRPC ------------------------------------------------------------------------------------

class RawH2(H2):
    """H2 bound to the attacker's address, with a non-blocking 'send what the windows allow'."""

    def __init__(self, endpoint, source=ATTACKER):
        host, port = endpoint.rsplit(":", 1)
        self.authority = endpoint
        self.sock = connect(int(port), source=source, timeout=10)
        import h2.config
        import h2.connection
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                          header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.streams = {}
        self.terminated = None

    def push(self, sid, data):
        """Sends as much of |data| as the windows allow now; returns what is left."""
        while data:
            n = min(len(data), self.conn.local_flow_control_window(sid),
                    self.conn.max_outbound_frame_size)
            if n <= 0:
                break
            self.conn.send_data(sid, bytes(data[:n]))
            data = data[n:]
        self.flush()
        return data

    def pump(self):
        """H2.pump, fed frame by frame: once a GOAWAY came, hyper-h2 refuses every later
        frame (RST_STREAM answering DATA still in flight, say), which RFC 9113 allows;
        those are skipped here, so the events before them are kept."""
        data = self.sock.recv(65536) if not getattr(self, "closed", False) else b""
        if not data:
            if self.terminated is None:
                raise AssertionError("the server closed the connection without GOAWAY")
            self.closed = True  # after GOAWAY: the server may close
            time.sleep(0.01)
            return
        self.rbuf = getattr(self, "rbuf", b"") + data
        while len(self.rbuf) >= 9:
            n = 9 + int.from_bytes(self.rbuf[:3], "big")
            if self.rbuf.startswith(b"PRI"):
                n = 24
            if len(self.rbuf) < n:
                break
            frame, self.rbuf = self.rbuf[:n], self.rbuf[n:]
            try:
                events = self.conn.receive_data(frame)
            except h2.exceptions.ProtocolError:
                if self.terminated is None:
                    raise
                continue
            for ev in events:
                st = self.streams.get(getattr(ev, "stream_id", None))
                if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    st["headers"].update(dict(ev.headers))
                elif isinstance(ev, h2.events.DataReceived):
                    st["data"] += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    st["done"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    st["done"], st["reset"] = True, ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.terminated = ev
        if self.terminated is None:
            self.flush()

    def pump_for(self, seconds):
        """Reads whatever arrives for |seconds| (a quiet socket is fine)."""
        end = time.time() + seconds
        while time.time() < end:
            if getattr(self, "closed", False):
                return
            self.sock.settimeout(max(0.01, end - time.time()))
            try:
                self.pump()
            except socket.timeout:
                pass


def test_grpc_stuck_streams_bounded_and_reset_at_deadline(make_collector):
    """100 streams each declaring 4 MiB and sending all but the last byte: flow control
    stops the client at the connection buffer, the collector's VmHWM stays bounded, and
    every stream is answered DEADLINE_EXCEEDED at the deadline, with a GOAWAY. A
    well-behaved OTLP/gRPC exporter on its own connection from 127.0.0.1 gets every
    export answered OK, within its normal latency, for the whole attack."""
    c = make_collector(grpc_extra="request_timeout: 2s")
    export(c, workload.to_proto(workload.make_traces(1)))
    call, channel = grpc_exporter(c.grpc, workload.to_proto(workload.make_traces(1)))
    good = WellBehaved(call, pause=0.02)
    alone = good.run(50)
    hwm0 = vm_hwm_kib(c.proc.pid)
    h = RawH2(c.grpc)
    size = 4 << 20
    payload = memoryview(grpc_frame(b"", length=size) + b"x" * (size - 1))  # all but 1 byte
    with good.alongside() as attacked:
        left = {h.start(): payload for _ in range(100)}
        t0 = time.time()
        sent = 0
        while time.time() - t0 < 1.5 and h.terminated is None:
            for sid in left:
                before = len(left[sid])
                left[sid] = h.push(sid, left[sid])
                sent += before - len(left[sid])
            h.pump_for(0.05)
        while (not all(h.streams[s]["done"] for s in left) and not getattr(h, "closed", False)
               and time.time() - t0 < 10):
            h.pump_for(0.1)
        took = time.time() - t0
    channel.close()
    assert sent < 20 << 20, f"the client could push {sent >> 20} MiB into one connection"
    codes = {grpc_status(h.streams[s]["headers"])[0] for s in left}
    assert codes == {DEADLINE_EXCEEDED}, codes
    assert 1.5 <= took <= 9, took
    assert h.terminated is not None, "no GOAWAY for a connection whose streams stalled"
    grown = vm_hwm_kib(c.proc.pid) - hwm0
    print(f"\nVmHWM grew by {grown >> 10} MiB; the client pushed {sent >> 20} MiB of "
          f"{100 * size >> 20} MiB declared")
    assert grown < 96 << 10, f"VmHWM grew by {grown >> 10} MiB"
    assert_not_starved("OTLP/gRPC", alone, attacked,
                       f"100 stuck streams on one connection ({took:.1f} s)", ok="OK")
    h.close()
    assert c.alive(), c.logs()
    export(c, workload.to_proto(workload.make_traces(1)))


def test_grpc_timeout_honoured(make_collector):
    """grpc-timeout: 300m on a call whose message never ends: DEADLINE_EXCEEDED near
    300 ms (the server's own deadline is 30 s); malformed ones are INTERNAL."""
    c = make_collector()
    h = RawH2(c.grpc, source="127.0.0.1")
    sid = h.start(extra=[("grpc-timeout", "300m")])
    h.send(sid, grpc_frame(b"", length=100) + b"abc")
    t0 = time.time()
    _, headers, _ = h.response(sid)
    took = time.time() - t0
    assert grpc_status(headers)[0] == DEADLINE_EXCEEDED, headers
    assert 0.2 <= took <= 5, took
    for bad in ("abc", "5", "123456789S", "10x"):
        status, headers, _ = h.call(grpc_frame(b""), extra=[("grpc-timeout", bad)])
        code, msg = grpc_status(headers)
        assert code == INTERNAL and "grpc-timeout" in msg, (bad, headers)
    status, headers, _ = h.call(grpc_frame(workload.to_proto(workload.make_traces(1))),
                                extra=[("grpc-timeout", "10S")])
    assert grpc_status(headers)[0] == 0, headers
    h.close()


def test_grpc_stalled_connection_gets_goaway(make_collector):
    c = make_collector(grpc_extra="request_timeout: 1s")
    h = RawH2(c.grpc)
    sid = h.start()
    h.send(sid, grpc_frame(b"", length=50) + b"ab")
    t0 = time.time()
    _, headers, _ = h.response(sid)
    assert grpc_status(headers)[0] == DEADLINE_EXCEEDED
    while h.terminated is None and time.time() - t0 < 8:
        h.pump_for(0.1)
    assert isinstance(h.terminated, h2.events.ConnectionTerminated), "no GOAWAY"
    assert 0.7 <= time.time() - t0 <= 8  # loose: a loaded 2-core machine
    h.close()
    export(c, workload.to_proto(workload.make_traces(1)))


def test_grpc_per_address_limit(make_collector):
    c = make_collector(grpc_extra="max_connections_per_address: 3")
    held = [RawH2(c.grpc) for _ in range(3)]
    extra = connect(port_of("x:" + c.grpc.rsplit(":", 1)[1]))
    extra.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert closed_after(extra, 3) < 3
    resp = export(c, workload.to_proto(workload.make_traces(1)))  # from 127.0.0.1
    assert resp.partial_success.rejected_spans == 0
    for h in held:
        h.close()


def test_limits_are_validated(tmp_path):
    """A connection buffer smaller than the largest message is refused at startup."""
    import subprocess
    from conftest import BIN
    cfg = tmp_path / "c.yaml"
    cfg.write_text("receivers:\n  otlp:\n    protocols:\n      grpc:\n"
                   "        max_recv_msg_size: 8MiB\n        max_connection_buffer: 1MiB\n"
                   "exporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n"
                   "      receivers: [otlp]\n      exporters: [debug]\n")
    r = subprocess.run([BIN, "--validate", "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0 and "protocols.grpc.max_connection_buffer" in r.stdout + r.stderr, r
    cfg.write_text(cfg.read_text().replace("max_connection_buffer: 1MiB",
                                           "request_timeout: 1ms"))
    r = subprocess.run([BIN, "--validate", "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0 and "protocols.grpc.request_timeout" in r.stdout + r.stderr, r


def thread_nices(pid):
    """{tid: nice} of the process's threads (field 19 of /proc/<pid>/task/<tid>/stat)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = int(stat[stat.rindex(")") + 2:].split()[16])
    return out


def new_thread_nice(collector, url, method="get", **kw):
    """Sends one request on a keep-alive connection, and returns the nice values of the
    threads that appeared for it (thread per connection: the connection's one) while
    the connection is still open."""
    before = thread_nices(collector.proc.pid)
    with requests.Session() as s:
        r = getattr(s, method)(url, timeout=10, **kw)
        assert r.status_code == 200, r.text
        after = thread_nices(collector.proc.pid)
    return sorted(n for tid, n in after.items() if tid not in before)


def test_query_threads_yield_to_ingest(make_collector):
    """A query connection's thread runs 10 nice steps below the rest (the default), so
    on a busy machine reads slow down before ingest does; an ingest connection's thread
    keeps the process's priority; `nice: 0` turns it off, and 20 is refused."""
    c = make_collector()
    assert new_thread_nice(c, c.query + "/api/v1/traces") == [10]
    body = workload.to_json(workload.make_traces(1))
    assert new_thread_nice(c, c.otlp + "/v1/traces", method="post", json=body) == [0]
    c0 = make_collector(query_extra="nice: 0")
    assert new_thread_nice(c0, c0.query + "/api/v1/traces") == [0]
    import subprocess
    from conftest import BIN
    cfg = c0.config_path.read_text().replace("nice: 0", "nice: 20")
    bad = c0.tmp_path / "nice20.yaml"
    bad.write_text(cfg)
    r = subprocess.run([BIN, "--validate", "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "nice" in r.stdout + r.stderr, r
