"""
test_budget.py - the process memory budget (src/core/budget.c) against decode bombs.

A collector with `service.memory_limit: 64MiB` takes the two worst inputs of issue 10,
four at once and again and again: a gzip OTLP/JSON body `[0,0,0,...]` of 20 MiB
inflated (about 20 KB on the wire), and a gzip OTLP protobuf body whose Resource holds
millions of empty KeyValues (2 bytes each on the wire), over OTLP/HTTP and OTLP/gRPC.
Every bomb is refused (429 + Retry-After, RESOURCE_EXHAUSTED, or 413/400), never
accepted; the process stays alive; its peak RSS (VmHWM) stays under the budget plus a
fixed overhead; and a well-behaved client sending small requests alongside keeps
getting 200s within its normal latency: its p99 without and with the attack is printed
(pytest -s) and held to clients.assert_not_starved's bound.

The fixed overhead (OVERHEAD_MIB) is what the budget does not cover: the idle
process (SQLite, libraries, thread stacks), glibc's per-thread malloc arenas and the
blocks freed but not yet returned to the kernel. The measured figure is printed.
"""
import gzip
import json
import os
import select
import socket
import ssl
import threading
import time

import grpc
import pytest
import requests
from clients import WellBehaved, assert_not_starved
from services import clickhouse  # noqa: F401 (the fixture of the clickhouse store)
from test_tls import certs  # noqa: F401 (the module fixture of TLS certificates)

LIMIT_MIB = 64
OVERHEAD_MIB = 48  # see the module docstring; measured peak ~85 MiB at a 64 MiB budget
# (~75 before the inflater charged its output at its size: bombs now inflate to the end
# within the budget and are refused when decoding, so more of the budget is really used)
# Under AddressSanitizer the heap is ASan's: freed blocks wait in its quarantine (256 MiB
# by default) and every byte has shadow memory, none of which the budget can see. That
# build runs with a small quarantine and a bound raised by ASan's own overhead.
SANITIZED = os.environ.get("PRELA_SANITIZE") == "ON"
ASAN_OVERHEAD_MIB = 64 if SANITIZED else 0
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

SERVICE = f"memory_limit: {LIMIT_MIB}MiB"
GRPC = "max_recv_msg_size: 32MiB\nmax_connection_buffer: 40MiB"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def json_bomb():
    """`[0,0,...]`, just under the 20 MiB body limit once inflated."""
    n = (20 << 20) // 2 - 1024
    return gzip.compress(b"[" + b"0," * (n - 1) + b"0]", 9)


def proto_bomb(n=9_000_000):
    """ExportTraceServiceRequest{resource_spans: [{resource: {attributes: [{} x n]}}]}."""
    resource = b"\x0a\x00" * n  # Resource.attributes (1): an empty KeyValue each
    return gzip.compress(field(1, field(1, resource)), 9)


def kvlist_bomb(n=9_000_000):
    """The costliest protobuf per byte for the span model: a resource attribute "a" whose
    value is a kvlist of n empty entries (2 bytes each on the wire, a 40-byte pc_kv each
    decoded; kvlist entries keep empty keys, unlike attributes)."""
    entries = b"\x0a\x00" * n  # KeyValueList.values (1): an empty KeyValue each
    attr = field(1, b"a") + field(2, field(6, entries))  # KeyValue{key, value{kvlist_value}}
    return gzip.compress(field(1, field(1, field(1, attr))), 9)


def good_body(i):
    span = {"traceId": "%032x" % (i + 1), "spanId": "%016x" % (i + 1), "name": "ok",
            "kind": 1, "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000100000000"}
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []},
                                          "scopeSpans": [{"spans": [span]}]}]})


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/%d/status" % pid)


class GoodExporter:
    """A well-behaved OTLP/JSON exporter, the call of a WellBehaved client: one small
    request per call; a 429 is retried after 50 ms (the budget is shared), so every
    call must end in 200 (its outcome). Counts the retries."""

    def __init__(self, collector):
        self.url = collector.otlp + "/v1/traces"
        self.session = requests.Session()
        self.retries, self.i = 0, 0

    def __call__(self):
        self.i += 1
        for _ in range(50):
            r = self.session.post(self.url, data=good_body(self.i), timeout=30,
                                  headers={"Content-Type": "application/json"})
            if r.status_code != 429:
                break
            self.retries += 1
            time.sleep(0.05)
        return r.status_code


def http_bomb(collector, body, content_type, out, rounds):
    for _ in range(rounds):
        try:
            r = requests.post(collector.otlp + "/v1/traces", data=body, timeout=60,
                              headers={"Content-Type": content_type,
                                       "Content-Encoding": "gzip"})
            out.append((r.status_code, r.headers.get("Retry-After"), r.text[:200]))
        except requests.RequestException as e:  # the process died or hung up
            out.append((None, None, repr(e)))


def grpc_bomb(collector, raw, out, rounds):
    with grpc.insecure_channel(collector.grpc,
                               options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        export = ch.unary_unary(EXPORT)
        for _ in range(rounds):
            try:
                export(raw, timeout=60, compression=grpc.Compression.Gzip)
                out.append(("OK", None))
            except grpc.RpcError as e:
                out.append((e.code().name, e.details()))


def test_bombs_are_refused_and_the_process_stays_bounded(make_collector, monkeypatch):
    if SANITIZED:
        monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                           ":quarantine_size_mb=8:allocator_release_to_os_interval_ms=100")
    c = make_collector(service_extra=SERVICE, grpc_extra=GRPC)
    pid = c.proc.pid
    idle_mib = vm_hwm_kib(pid) / 1024

    exporter = GoodExporter(c)
    good = WellBehaved(exporter)
    alone = good.run(300)  # the baseline
    retries_alone = exporter.retries

    jb, pb = json_bomb(), kvlist_bomb()
    raw_pb = gzip.decompress(pb)  # grpcio compresses it again on the wire
    results = {"json": [], "proto": [], "json2": [], "grpc": []}
    attackers = [
        threading.Thread(target=http_bomb, args=(c, jb, "application/json", results["json"], 6)),
        threading.Thread(target=http_bomb, args=(c, jb, "application/json", results["json2"], 6)),
        threading.Thread(target=http_bomb,
                         args=(c, pb, "application/x-protobuf", results["proto"], 6)),
        threading.Thread(target=grpc_bomb, args=(c, raw_pb, results["grpc"], 6)),
    ]
    with good.alongside() as attacked:
        for t in attackers:
            t.start()
        for t in attackers:
            t.join(timeout=300)
    peak_mib = vm_hwm_kib(pid) / 1024

    print(f"\nbudget {LIMIT_MIB} MiB: idle VmHWM {idle_mib:.1f} MiB, peak VmHWM under attack "
          f"{peak_mib:.1f} MiB (bound {LIMIT_MIB + OVERHEAD_MIB + ASAN_OVERHEAD_MIB} MiB)")
    print(f"good client: {retries_alone} requests retried after 429 alone, "
          f"{exporter.retries - retries_alone} under attack")
    for k, v in results.items():
        print(f"  {k}: {[r[0] for r in v]}")

    assert c.alive(), c.logs()
    assert_not_starved("OTLP/JSON client", alone, attacked,
                       "4 bomb senders (2 JSON, 1 protobuf over HTTP, 1 over gRPC)")
    for k in ("json", "json2", "proto"):
        assert len(results[k]) == 6
        for status, retry_after, text in results[k]:
            assert status in (429, 413, 400), (k, status, text)
            if status == 429:
                assert retry_after and int(retry_after) >= 1, (k, text)
                assert "memory budget" in text, text
    assert len(results["grpc"]) == 6
    for code, details in results["grpc"]:
        assert code in ("RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"), (code, details)
    # at least one bomb of each kind met the budget (not only a size limit)
    assert any(r[0] == 429 for r in results["json"] + results["json2"]), results
    assert any(r[0] == 429 for r in results["proto"]), results
    assert any(r[0] == "RESOURCE_EXHAUSTED" for r in results["grpc"]), results

    assert peak_mib < LIMIT_MIB + OVERHEAD_MIB + ASAN_OVERHEAD_MIB, (peak_mib, c.logs())

    # Everything reserved was given back: a request as big as the budget allows still fits.
    r = requests.post(c.otlp + "/v1/traces", data=good_body(10**6), timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


# What reads hold outside the budget: the embedded store's read connections (at most 8
# at once, local_store.c POOL_MAX), each with its page caches and a row of decompressed
# columns (here 512 KiB), and malloc's cached pages of them (main.c: one arena per core,
# each keeping freed pages up to its 64 MiB trim threshold). Measured peaks 98-117 MiB
# (16 readers of a 12 MiB trace, both stores), and once 131.7 MiB (ClickHouse 18.16, a CI
# run of 2026-12-07); 262-266 MiB before answers were charged. Under ASan each of them
# costs more again (its shadow, its allocator's own caching): measured 161-205 MiB there.
READS_OVERHEAD_MIB = 32 + (64 if SANITIZED else 0)


def read_big(c, out, rounds):
    for _ in range(rounds):
        r = c.get("/api/v1/traces/t-big")
        body = r.json()
        out.append((r.status_code, r.headers.get("Retry-After"),
                    body.get("span_count") if r.status_code == 200 else body.get("detail")))


@pytest.mark.usefixtures("store")
def test_large_reads_at_once_stay_within_the_budget(make_collector, monkeypatch):
    """Answers are charged to the budget too: sixteen clients reading a 12 MiB trace at
    once (each answer built in memory, and on ClickHouse the trace's rows read whole from
    the server first) are held to the 64 MiB budget. A read that does not fit gets 429 +
    Retry-After naming the budget, the others the whole trace, and peak RSS stays under
    the budget plus the fixed overhead and what reads hold outside it (before: every
    answer outside the budget)."""
    if SANITIZED:
        monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                           ":quarantine_size_mb=8:allocator_release_to_os_interval_ms=100")
    c = make_collector(service_extra=SERVICE)
    prompt = "y" * (512 << 10)
    for i in range(24):  # 24 spans of 512 KiB, a request each
        r = requests.post(c.ingest + "/v1/traces", timeout=30, json={
            "trace_id": "t-big", "service_name": "svc-big", "spans": [{
                "span_id": f"s{i:02d}", "trace_id": "t-big", "name": f"call {i}",
                "started_at": f"2025-01-27T10:00:{i:02d}Z", "attributes": {"prompt": prompt}}]})
        assert r.status_code == 200, r.text
    loaded_mib = vm_hwm_kib(c.proc.pid) / 1024
    results = []
    readers = [threading.Thread(target=read_big, args=(c, results, 3)) for _ in range(16)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(timeout=300)
    peak_mib = vm_hwm_kib(c.proc.pid) / 1024
    bound = LIMIT_MIB + OVERHEAD_MIB + READS_OVERHEAD_MIB + ASAN_OVERHEAD_MIB
    codes = [r[0] for r in results]
    print(f"\n16 readers of a 12 MiB trace, budget {LIMIT_MIB} MiB: VmHWM {loaded_mib:.1f} MiB "
          f"loaded, {peak_mib:.1f} MiB after the reads"
          f" (bound {bound}); {codes.count(200)} whole, "
          f"{codes.count(429)} refused")
    assert c.alive(), c.logs()
    assert len(results) == 48
    for status, retry_after, what in results:
        assert status in (200, 429), (status, what)
        if status == 200:
            assert what == 24
        else:
            assert retry_after == "1" and "memory budget" in what, what
    assert 200 in codes
    assert peak_mib < bound, (peak_mib, c.logs())


def small_asan_quarantine(monkeypatch):
    """Under ASan, freed blocks wait in a quarantine (256 MB by default) instead of going
    back: each step of a growing block (inflation grows by a quarter) would count in RSS.
    A small quarantine makes the measured figure about the collector, not the sanitizer."""
    if SANITIZED:
        monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                           ":quarantine_size_mb=8:allocator_release_to_os_interval_ms=100")


# The protobuf bombs with a budget large enough to decode them: accepted, and the memory
# they cost, peak RSS above idle over the inflated bytes, stays under the bound (normal
# build, ASan). The KeyValue bomb (a Resource of 9 million empty KeyValues, 18 MB
# inflated) costs about its body: the wire reader drops empty keys without building them
# (measured 1.08, decoded in place). The kvlist bomb is the worst protobuf for the span
# model: 40 bytes per 2-byte entry (measured 21.1). Figures printed with pytest -s.
PROTO_BOMBS = {"KeyValue": (proto_bomb, "1GiB", 3, 6), "kvlist": (kvlist_bomb, "2GiB", 23, 35)}


@pytest.mark.parametrize("kind", PROTO_BOMBS)
def test_proto_bomb_amplification(make_collector, monkeypatch, kind):
    make_body, limit, bound, asan_bound = PROTO_BOMBS[kind]
    small_asan_quarantine(monkeypatch)
    c = make_collector(service_extra=f"memory_limit: {limit}")
    idle = vm_hwm_kib(c.proc.pid) * 1024
    body = make_body()
    inflated = len(gzip.decompress(body))
    r = requests.post(c.otlp + "/v1/traces", data=body, timeout=120,
                      headers={"Content-Type": "application/x-protobuf",
                               "Content-Encoding": "gzip"})
    peak = vm_hwm_kib(c.proc.pid) * 1024
    amp = (peak - idle) / inflated
    print(f"\nprotobuf {kind} bomb: {inflated} bytes inflated, peak RSS {idle / 2**20:.1f} -> "
          f"{peak / 2**20:.1f} MiB: {amp:.2f}x the inflated body")
    assert r.status_code == 200, r.text
    assert amp < (asan_bound if SANITIZED else bound), amp
    assert c.alive()


def test_bomb_alone_is_429_with_retry_after(make_collector):
    """One JSON bomb on a collector whose budget is smaller than its decode: 429 with
    Retry-After and the OTLP status body, not 200 and not a crash."""
    c = make_collector(service_extra="memory_limit: 16MiB")
    r = requests.post(c.otlp + "/v1/traces", data=json_bomb(), timeout=60,
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 429, r.text
    assert r.headers["Retry-After"] == "1"
    assert "memory budget" in r.json()["message"]
    assert c.alive()


# Decode amplification (issue 10): peak RSS above idle, divided by the inflated body,
# for the `[0,0,...]` bomb with a budget large enough that it is decoded to the end.
# The floor with the span model is 12 (a 24-byte pc_value per 2-byte element); on top
# come the inflated body itself (1) and the compressed body (~0). Measured: 13.1 on
# /v1/traces and on /v1/batch (26.6 before the JSON reader stopped copying from a
# scratch stack and the inflater stopped keeping every doubling of its output).
AMPLIFICATION_MAX = 15 if not SANITIZED else 25  # ASan (measured 21.2): shadow, quarantine


@pytest.mark.parametrize("where", ["otlp /v1/traces", "prela /v1/batch"])
def test_decode_amplification(make_collector, where):
    c = make_collector(service_extra="memory_limit: 2GiB")
    url = (c.otlp + "/v1/traces") if where.startswith("otlp") else (c.ingest + "/v1/batch")
    body = json_bomb()
    inflated = len(gzip.decompress(body))
    # a small request first, so the idle figure includes a request's fixed costs
    r = requests.post(c.otlp + "/v1/traces", data=good_body(1), timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    time.sleep(0.2)
    idle = vm_hwm_kib(c.proc.pid) * 1024
    r = requests.post(url, data=body, timeout=120,
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    peak = vm_hwm_kib(c.proc.pid) * 1024
    ratio = (peak - idle) / inflated
    print(f"\n{where}: {r.status_code}, peak RSS {peak / 2**20:.1f} MiB above idle "
          f"{idle / 2**20:.1f} MiB: {ratio:.1f}x the {inflated / 2**20:.0f} MiB inflated body")
    # decoded to the end: not refused for memory, not cut short by a size limit
    assert r.status_code in (200, 400), (r.status_code, r.text[:300])
    assert c.alive(), c.logs()
    assert ratio < AMPLIFICATION_MAX, ratio


def read_response(sock, timeout):
    """Reads what the server sends until it closes or |timeout| passes: (bytes, closed)."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
        if not pending and not select.select([sock], [], [], 0.2)[0]:
            continue
        try:
            chunk = sock.recv(65536)
        except ssl.SSLWantReadError:
            continue
        except (ConnectionResetError, ssl.SSLError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def send_chunked_until_answered(sock, total):
    """Sends a chunked OTLP/JSON body of up to |total| bytes in 64 KiB chunks, stopping
    when the server answers or closes. Returns (bytes sent, answer, closed)."""
    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"[" + b"0," * (32 * 1024 - 1)
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    sent = 0
    while sent < total:
        if select.select([sock], [], [], 0)[0]:
            break  # the collector answered (or closed) mid-body
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            break
        sent += len(piece)
    answer, closed = read_response(sock, 10)
    sock.close()
    return sent, answer, closed


def assert_refused_mid_body(sent, answer, closed, total):
    print(f"\nanswered after {sent >> 20} MiB of a {total >> 20} MiB chunked body")
    assert answer.startswith(b"HTTP/1.1 429"), answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\nRetry-After: 1\r\n" in head, head
    assert b"memory budget" in body, body
    assert closed, "the connection stayed open after the 429"
    # refused once the 8 MiB budget was reached (plus what the socket buffers held),
    # not after the whole body
    assert sent < total * 3 // 4, sent


def test_chunked_body_over_budget_is_refused_at_once(make_collector):
    """A chunked body (no Content-Length) that grows past the memory budget gets its 429
    as soon as the growth is refused, and the connection closes: the collector does not
    read the rest of the body first. The client sends up to 64 MiB in 64 KiB chunks
    to a collector with an 8 MiB budget and a 128 MiB body limit, and must see the 429
    long before it has sent everything."""
    c = make_collector(service_extra="memory_limit: 8MiB",
                       otlp_extra="max_request_body_size: 128MiB")
    host, port = c.otlp.split("//")[1].split(":")
    total = 64 << 20
    sent, answer, closed = send_chunked_until_answered(
        socket.create_connection((host, int(port)), timeout=10), total)
    assert_refused_mid_body(sent, answer, closed, total)
    assert c.alive(), c.logs()
    r = requests.post(c.otlp + "/v1/traces", data=good_body(7), timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def test_chunked_body_that_also_declares_a_content_length(make_collector):
    """Transfer-Encoding: chunked with a (smaller) Content-Length too: the body outgrows
    the block reserved for the declared length and is read whole, never a crash."""
    c = make_collector(service_extra="memory_limit: 64MiB")
    host, port = c.otlp.split("//")[1].split(":")
    body = good_body(11).encode() + b" " * (200 << 10)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    for i in range(0, len(body), 16384):
        piece = body[i:i + 16384]
        sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    sock.sendall(b"0\r\n\r\n")
    answer, _ = read_response(sock, 10)
    sock.close()
    assert c.alive(), c.logs()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def test_chunked_body_over_budget_is_refused_at_once_over_tls(certs, tmp_path):
    """The same over TLS: the 429 is written into the TLS session, then close_notify.
    The body limit is the default 20 MiB; the budget (8 MiB) is met first."""
    from test_tls import TlsCollector
    c = TlsCollector(tmp_path, certs, service_extra="memory_limit: 8MiB").start()
    try:
        ctx = ssl.create_default_context(cafile=certs["ca.crt"])
        port = int(c.otlp.rsplit(":", 1)[1])
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                               server_hostname="localhost")
        total = 19 << 20
        sent, answer, closed = send_chunked_until_answered(sock, total)
        assert_refused_mid_body(sent, answer, closed, total)
        assert c.alive(), c.logs()
    finally:
        assert c.stop() == 0, c.logs()


@pytest.mark.parametrize("value,msg", [
    ("memory_limit: lots", "service.memory_limit"),
    ("memory_limit: 100KiB", "service.memory_limit"),
    ("memory_limit_percentage: 0", "service.memory_limit_percentage"),
    ("memory_limit_percentage: 150", "service.memory_limit_percentage"),
])
def test_bad_memory_limit_fails_startup(tmp_path, value, msg):
    from conftest import Collector
    c = Collector(tmp_path, service_extra=value)
    with pytest.raises(RuntimeError) as e:
        c.start()
    assert msg in str(e.value)
