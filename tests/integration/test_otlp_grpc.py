"""The OTLP/gRPC receiver (TraceService/Export) against good and hostile clients.

Good clients are grpcio (the gRPC C core, as most SDKs use it). Hostile ones are
written by hand with hyper-h2 over a plain socket, so every byte on the wire is ours:
broken gRPC framing, wrong content-type or method, a stream reset or a connection
dropped mid-request, garbage instead of the HTTP/2 preface. After each, the collector
must still be running, answer a good export, and still hold the data it had.
"""
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

import clients
import workload

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
OK, UNIMPLEMENTED, INTERNAL = 0, 12, 13  # grpc-status values checked on the wire


# --- grpcio ---------------------------------------------------------------------------------

def export(collector, body, compression=None, timeout=15):
    """One TraceService/Export call with the serialized request |body|; returns the
    ExportTraceServiceResponse or raises grpc.RpcError."""
    with grpc.insecure_channel(clients.grpc_endpoint(collector)) as ch:
        call = ch.unary_unary(EXPORT, request_serializer=None,
                              response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
        return call(body, timeout=timeout, compression=compression)


def rpc_error(fn, *args, **kw):
    with pytest.raises(grpc.RpcError) as e:
        fn(*args, **kw)
    return e.value


def sent(collector, n=2):
    """Exports |n| fresh traces over gRPC and returns them (for checks later)."""
    traces = workload.make_traces(n)
    resp = export(collector, workload.to_proto(traces))
    assert resp.partial_success.rejected_spans == 0
    return traces


def assert_healthy(collector, earlier):
    """The process runs, a good export is answered OK and stored, |earlier| is intact."""
    assert collector.alive(), collector.logs()
    fresh = sent(collector, 1)
    for tr in earlier + fresh:
        workload.check_trace(collector, tr)


# --- hyper-h2 over a plain socket ------------------------------------------------------------

def grpc_frame(msg, compressed=False, length=None):
    """The 5-byte gRPC message prefix (flag, big-endian length) and |msg|."""
    return struct.pack(">BI", 1 if compressed else 0, len(msg) if length is None else length) + msg


class H2:
    """One client HTTP/2 connection driven by hand. Streams are opened with start(),
    fed with send(), and read with response(), which returns
    (":status", headers and trailers merged into one dict, body bytes)."""

    def __init__(self, endpoint, timeout=10):
        host, port = endpoint.rsplit(":", 1)
        self.authority = endpoint
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                          header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.streams = {}
        self.terminated = None

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, path=EXPORT, content_type="application/grpc", method="POST", extra=(), end=False):
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "http"), (":path", path), (":authority", self.authority)]
        if content_type is not None:
            headers.append(("content-type", content_type))
        headers += [("te", "trailers"), *extra]
        self.conn.send_headers(sid, headers, end_stream=end)
        self.streams[sid] = dict(headers={}, data=b"", done=False, reset=None)
        self.flush()
        return sid

    def send(self, sid, data, end=False):
        """Sends |data| on stream |sid|, waiting for WINDOW_UPDATEs as flow control demands."""
        if end and not data:
            self.conn.end_stream(sid)
        while data:
            window = self.conn.local_flow_control_window(sid)
            if window == 0:
                self.pump()
                continue
            n = min(len(data), window, self.conn.max_outbound_frame_size)
            self.conn.send_data(sid, data[:n], end_stream=end and n == len(data))
            data = data[n:]
            self.flush()
        self.flush()

    def reset(self, sid, code=h2.errors.ErrorCodes.CANCEL):
        self.conn.reset_stream(sid, code)
        self.flush()

    def call(self, frames, path=EXPORT, **kw):
        sid = self.start(path, **kw)
        self.send(sid, frames, end=True)
        return self.response(sid)

    def pump(self):
        """Reads once from the socket and records what arrived for each stream."""
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError(f"the server closed the connection ({self.terminated})")
        for ev in self.conn.receive_data(data):
            s = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                s["headers"].update(dict(ev.headers))
            elif isinstance(ev, h2.events.DataReceived):
                s["data"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                s["done"] = True
            elif isinstance(ev, h2.events.StreamReset):
                s["done"], s["reset"] = True, ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.terminated = ev
        self.flush()

    def response(self, sid):
        st = self.streams[sid]
        while not st["done"]:
            self.pump()
        assert st["reset"] is None or st["headers"], f"stream {sid} reset ({st['reset']}) without an answer"
        return st["headers"].get(":status"), st["headers"], st["data"]

    def close(self):
        self.sock.close()


def grpc_status(headers):
    """(grpc-status as int, grpc-message percent-decoded) of a response."""
    assert "grpc-status" in headers, headers
    return int(headers["grpc-status"]), urllib.parse.unquote(headers.get("grpc-message", ""))


def wait_closed(sock, timeout=5):
    """Reads until the peer closes; returns everything it sent. Fails after |timeout|."""
    sock.settimeout(timeout)
    got, deadline = b"", time.time() + timeout
    while time.time() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk
    raise AssertionError(f"the connection is still open after {timeout}s (got {got[:80]!r})")


# --- good exports ----------------------------------------------------------------------------

def test_export_reads_back(collector):
    """200 spans of every attribute type (kvlist and bytes included) over gRPC."""
    traces = workload.make_traces(20)
    resp = export(collector, workload.to_proto(traces))
    assert resp.partial_success.rejected_spans == 0 and not resp.partial_success.error_message
    for tr in traces:
        workload.check_trace(collector, tr)


def test_answer_on_the_wire(collector):
    """What a hand-made call gets back: 200, application/grpc, one framed response
    message, grpc-status 0 in the trailers; application/grpc+proto is accepted too."""
    c = H2(clients.grpc_endpoint(collector))
    for ctype in ("application/grpc", "application/grpc+proto"):
        traces = workload.make_traces(1)
        status, headers, data = c.call(grpc_frame(workload.to_proto(traces)), content_type=ctype)
        assert status == "200" and headers["content-type"].startswith("application/grpc"), headers
        assert grpc_status(headers) == (OK, "")
        assert data[0] == 0 and struct.unpack(">I", data[1:5])[0] == len(data) - 5
        resp = trace_service_pb2.ExportTraceServiceResponse.FromString(data[5:])
        assert resp.partial_success.rejected_spans == 0
        workload.check_trace(collector, traces[0])
    c.close()


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate], ids=["gzip", "deflate"])
def test_compressed_messages(collector, compression):
    traces = workload.make_traces(5)
    resp = export(collector, workload.to_proto(traces), compression=compression)
    assert resp.partial_success.rejected_spans == 0
    for tr in traces:
        workload.check_trace(collector, tr)


def test_many_concurrent_streams_on_one_connection(collector):
    """64 calls in flight at once on one channel (one HTTP/2 connection): all OK, all stored."""
    batches = [workload.make_traces(1) for _ in range(64)]
    with grpc.insecure_channel(clients.grpc_endpoint(collector)) as ch:
        call = ch.unary_unary(EXPORT, request_serializer=None,
                              response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
        futures = [call.future(workload.to_proto(b), timeout=30) for b in batches]
        for f in futures:
            assert f.result().partial_success.rejected_spans == 0
    for b in batches:
        workload.check_trace(collector, b[0])
    listing = collector.get("/api/v1/traces", limit=1000).json()
    assert listing["count"] == 64


def test_many_concurrent_streams_by_hand(collector):
    """The same with every request's HEADERS sent before any DATA, on a hand-driven
    connection: the server has 32 half-open streams at once, then all complete."""
    c = H2(clients.grpc_endpoint(collector))
    batches = [workload.make_traces(1) for _ in range(32)]
    sids = [c.start() for _ in batches]
    for sid, b in zip(sids, batches):
        c.send(sid, grpc_frame(workload.to_proto(b)), end=True)
    for sid in sids:
        status, headers, _ = c.response(sid)
        assert status == "200" and grpc_status(headers)[0] == OK
    for b in batches:
        workload.check_trace(collector, b[0])
    c.close()


# --- bad calls: gRPC statuses -------------------------------------------------------------------

@pytest.mark.parametrize("case", ["truncated message", "truncated prefix", "no message", "two messages",
                                  "compressed flag without grpc-encoding"])
def test_malformed_framing_is_internal(collector, case):
    earlier = sent(collector)
    msg = workload.to_proto(workload.make_traces(1))
    c = H2(clients.grpc_endpoint(collector))
    if case == "truncated message":        # the prefix says 100 bytes, 40 come, then END_STREAM
        status, headers, _ = c.call(grpc_frame(msg[:40], length=100))
    elif case == "truncated prefix":
        status, headers, _ = c.call(b"\x00\x00\x00")
    elif case == "no message":
        sid = c.start(end=True)
        status, headers, _ = c.response(sid)
    elif case == "two messages":
        status, headers, _ = c.call(grpc_frame(msg) + grpc_frame(msg))
    else:
        status, headers, _ = c.call(grpc_frame(msg, compressed=True))
    assert status == "200", headers
    code, message = grpc_status(headers)
    assert code == INTERNAL and message, (code, message)
    # The same connection still works.
    traces = workload.make_traces(1)
    status, headers, _ = c.call(grpc_frame(workload.to_proto(traces)))
    assert grpc_status(headers)[0] == OK
    c.close()
    assert_healthy(collector, earlier + traces)


@pytest.mark.parametrize("content_type", ["application/json", "application/x-protobuf", "text/plain", None])
def test_wrong_content_type_is_415(collector, content_type):
    earlier = sent(collector)
    c = H2(clients.grpc_endpoint(collector))
    status, headers, _ = c.call(grpc_frame(workload.to_proto(workload.make_traces(1))), content_type=content_type)
    assert status == "415", headers
    c.close()
    assert_healthy(collector, earlier)


def test_get_is_405(collector):
    earlier = sent(collector)
    c = H2(clients.grpc_endpoint(collector))
    sid = c.start(method="GET", end=True)
    status, headers, _ = c.response(sid)
    assert status == "405", headers
    c.close()
    assert_healthy(collector, earlier)


def test_unknown_method_is_unimplemented(collector):
    earlier = sent(collector)
    with grpc.insecure_channel(clients.grpc_endpoint(collector)) as ch:
        err = rpc_error(ch.unary_unary("/foo.Bar/Baz", request_serializer=None, response_deserializer=None),
                        b"\x0a\x00", timeout=10)
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED, err
    assert_healthy(collector, earlier)


def test_unknown_grpc_encoding_is_unimplemented(collector):
    earlier = sent(collector)
    c = H2(clients.grpc_endpoint(collector))
    status, headers, _ = c.call(grpc_frame(b"\x01\x02\x03", compressed=True), extra=[("grpc-encoding", "snappy")])
    assert status == "200" and grpc_status(headers)[0] == UNIMPLEMENTED, headers
    assert "gzip" in headers.get("grpc-accept-encoding", ""), headers
    c.close()
    assert_healthy(collector, earlier)


def test_undecodable_protobuf_is_invalid_argument(collector):
    earlier = sent(collector)
    # Field 1 (resource_spans), length-delimited, claiming 2^35 bytes; then a bare tag.
    for body in (b"\x0a\xff\xff\xff\xff\x7f\x00", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"):
        err = rpc_error(export, collector, body)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert err.details(), "INVALID_ARGUMENT without a message"
    assert_healthy(collector, earlier)


def test_message_over_the_limit_is_resource_exhausted(make_collector):
    """max_recv_msg_size bounds the message on the wire and after decompression."""
    c = make_collector(grpc_extra="max_recv_msg_size: 64KiB")
    earlier = sent(c)
    under = workload.make_traces(1)
    under[0]["spans"][0]["attrs"]["pad"] = os.urandom(24 * 1024).hex()  # ~48 KiB: fits
    assert export(c, workload.to_proto(under)).partial_success.rejected_spans == 0

    big = workload.make_traces(1)
    big[0]["spans"][0]["attrs"]["pad"] = os.urandom(50 * 1024).hex()    # ~100 KiB on the wire
    err = rpc_error(export, c, workload.to_proto(big))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err

    bomb = workload.make_traces(1)
    bomb[0]["spans"][0]["attrs"]["pad"] = "a" * (100 * 1024)            # ~1 KiB gzipped, 100 KiB inflated
    err = rpc_error(export, c, workload.to_proto(bomb), compression=grpc.Compression.Gzip)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err

    for tr in big + bomb:
        assert c.get(f"/api/v1/traces/{tr['trace_id']}").status_code == 404
    assert_healthy(c, earlier + under)


# --- clients that go away, and clients that are not HTTP/2 -----------------------------------

def test_stream_reset_mid_request(collector):
    """HEADERS and half the DATA, then RST_STREAM: nothing of it is stored, and the next
    stream on the same connection works."""
    earlier = sent(collector)
    c = H2(clients.grpc_endpoint(collector))
    partial = workload.make_traces(1)
    frame = grpc_frame(workload.to_proto(partial))
    sid = c.start()
    c.send(sid, frame[:len(frame) // 2])
    c.reset(sid)
    traces = workload.make_traces(1)
    status, headers, _ = c.call(grpc_frame(workload.to_proto(traces)))
    assert status == "200" and grpc_status(headers)[0] == OK
    c.close()
    assert collector.get(f"/api/v1/traces/{partial[0]['trace_id']}").status_code == 404
    assert_healthy(collector, earlier + traces)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_connection_dropped_mid_request(collector, how):
    """HEADERS and half the DATA, then the TCP connection goes away (FIN, or RST via
    SO_LINGER 0), several times in a row."""
    earlier = sent(collector)
    for _ in range(5):
        c = H2(clients.grpc_endpoint(collector))
        frame = grpc_frame(workload.to_proto(workload.make_traces(1)))
        sid = c.start()
        c.send(sid, frame[:len(frame) // 2])
        if how == "reset":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    assert_healthy(collector, earlier)


@pytest.mark.parametrize("garbage", [os.urandom(64), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                     b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 32],
                         ids=["random", "http1", "bad-preface"])
def test_garbage_instead_of_preface(collector, garbage):
    """The server closes such a connection (after a GOAWAY at most) and serves others."""
    earlier = sent(collector)
    host, port = clients.grpc_endpoint(collector).rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(garbage)
    wait_closed(s)
    s.close()
    assert_healthy(collector, earlier)


def test_idle_half_open_connection_does_not_block_others(collector):
    """A client that sends half a preface and stops holds no one else up."""
    host, port = clients.grpc_endpoint(collector).rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"PRI * HTTP/2.0\r\n")
    try:
        assert_healthy(collector, sent(collector))
    finally:
        s.close()


# --- shutdown ----------------------------------------------------------------------------------

def test_shutdown_with_clients_connected(make_collector):
    """SIGTERM with two idle clients connected: a grpcio channel, and a hand-driven
    connection that answers the drain PING and reads the GOAWAY but leaves closing to the
    server. Both get GOAWAY, the collector exits 0 promptly (not after drain_timeout),
    and what it acknowledged is in the store after a restart."""
    c = make_collector()
    earlier = sent(c)
    channel = grpc.insecure_channel(clients.grpc_endpoint(c))
    channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)(
        workload.to_proto(workload.make_traces(1)), timeout=10)
    h = H2(clients.grpc_endpoint(c))
    h.sock.settimeout(0.5)
    closed_by_server = threading.Event()

    def reader():
        while not closed_by_server.is_set():
            try:
                h.pump()
            except TimeoutError:
                continue
            except (AssertionError, OSError):
                closed_by_server.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(0.2)
    c.proc.send_signal(signal.SIGTERM)
    try:
        rc = c.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        closed_by_server.set()
        t.join()
        h.close()
        channel.close()
    assert rc is not None, "still running 10 s after SIGTERM while two idle clients stay connected"
    assert rc == 0, c.logs()
    assert h.terminated is not None, "no GOAWAY before the connection closed"
    again = make_collector(data_dir=c.data_dir)
    for tr in earlier:
        workload.check_trace(again, tr)


# --- delivery semantics over gRPC (the same rules as OTLP/HTTP) -------------------

def _export(channel, body, metadata=()):
    call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
    return call(body, timeout=30, metadata=metadata)


def test_store_unavailable_answers_unavailable_with_retry_info(make_collector):
    """While the store cannot commit, an export is answered UNAVAILABLE with a
    google.rpc.RetryInfo (so SDKs retry), never OK; the retry is stored once."""
    import sqlite3
    from google.rpc import error_details_pb2, status_pb2
    c = make_collector(local_extra="timeout: 300ms")
    lock = sqlite3.connect(c.data_dir + "/prela.db", timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    traces = workload.make_traces(1)
    body = workload.to_proto(traces)
    with grpc.insecure_channel(c.grpc) as ch:
        try:
            _export(ch, body)
            raise AssertionError("export succeeded while the store was locked")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            details = dict(e.trailing_metadata() or ())["grpc-status-details-bin"]
            status = status_pb2.Status.FromString(details)
            assert status.code == grpc.StatusCode.UNAVAILABLE.value[0], status
            info = error_details_pb2.RetryInfo()
            assert status.details[0].Unpack(info), status
            assert info.retry_delay.seconds >= 1, info
        lock.execute("COMMIT")
        lock.close()
        # the SDK's retries: the store's 300 ms deadline can pass on a busy machine even
        # once the lock is gone, and is then answered UNAVAILABLE again, never OK
        deadline = time.time() + 10
        while True:
            try:
                _export(ch, body)
                break
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE and time.time() < deadline, e
                time.sleep(0.2)
    workload.check_trace(c, traces[0])


def test_project_from_metadata(collector):
    traces = workload.make_traces(1)
    with grpc.insecure_channel(collector.grpc) as ch:
        _export(ch, workload.to_proto(traces), metadata=(("x-prela-project-id", "proj-grpc"),))
    t = collector.trace(traces[0]["trace_id"])
    assert t["trace"]["project_id"] == "proj-grpc", t["trace"]
