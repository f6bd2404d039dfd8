"""Bad input: every case gets its stated answer, and the process stays healthy and keeps
everything else it acknowledged."""
import gzip
import json
import socket

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

import workload

PROTO = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def rpc_status(r):
    """Decodes the google.rpc.Status body of an OTLP error (protobuf or JSON)."""
    if r.headers.get("Content-Type", "").startswith("application/x-protobuf"):
        # field 1 code (varint), field 2 message (bytes): decode by hand
        data, i, out = r.content, 0, {}
        while i < len(data):
            tag = data[i]; i += 1
            if tag == 0x08:
                v = shift = 0
                while True:
                    b = data[i]; i += 1
                    v |= (b & 0x7F) << shift; shift += 7
                    if not b & 0x80:
                        break
                out["code"] = v
            elif tag == 0x12:
                n = data[i]; i += 1
                if n & 0x80:
                    n = (n & 0x7F) | (data[i] << 7); i += 1
                out["message"] = data[i:i + n].decode(); i += n
            else:
                raise AssertionError(f"unexpected tag {tag}")
        return out
    return r.json()


@pytest.fixture
def c(make_collector):
    col = make_collector(prela_extra="max_request_body_size: 64KiB",
                         otlp_extra="max_request_body_size: 64KiB")
    # Something acknowledged before the abuse, which must survive it.
    traces = workload.make_traces(1)
    assert requests.post(col.otlp + "/v1/traces", data=workload.to_proto(traces), headers=PROTO).status_code == 200
    col.kept = traces
    yield col
    assert col.alive(), "collector died:\n" + col.logs()
    assert requests.get(col.ingest + "/health").status_code == 200
    workload.check_trace(col, col.kept[0])
    more = workload.make_traces(1)
    assert requests.post(col.otlp + "/v1/traces", data=workload.to_proto(more), headers=PROTO).status_code == 200
    workload.check_trace(col, more[0])


def test_otlp_garbage_and_truncated_protobuf(c):
    good = workload.to_proto(workload.make_traces(1))
    for body in (b"\xff\xff\xff\xff garbage", good[: len(good) // 2], b"\x0a\xff\xff\xff\xff\x0f"):
        r = requests.post(c.otlp + "/v1/traces", data=body, headers=PROTO)
        assert r.status_code == 400, r.text
        st = rpc_status(r)
        assert st["code"] == 3 and st["message"]


def test_otlp_deeply_nested_anyvalue(c):
    """AnyValue arrays nested 6000 deep in under 64 KiB: refused with 400 (an unbounded
    recursive decoder would need ~12000 stack frames here), never a crash."""
    levels, length, headers = 6000, 0, []
    for _ in range(levels):  # built inside-out: each level is two headers around the next
        arr_len = 1 + len(_varint(length)) + length             # ArrayValue.values (1)
        headers.append(b"\x2a" + _varint(arr_len) + b"\x0a" + _varint(length))  # AnyValue.array_value (5)
        length = 1 + len(_varint(arr_len)) + arr_len
    inner = b"".join(reversed(headers))
    kv = b"\x0a\x01k" + b"\x12" + _varint(len(inner)) + inner
    span = (b"\x0a\x10" + b"\x01" * 16 + b"\x12\x08" + b"\x02" * 8 + b"\x4a" + _varint(len(kv)) + kv)
    ss = b"\x12" + _varint(len(span)) + span
    rs = b"\x12" + _varint(len(ss)) + ss
    req = b"\x0a" + _varint(len(rs)) + rs
    assert len(req) < 64 * 1024
    r = requests.post(c.otlp + "/v1/traces", data=req, headers=PROTO)
    assert r.status_code == 400, r.text
    assert "nested" in rpc_status(r)["message"]


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def test_invalid_json(c):
    r = requests.post(c.otlp + "/v1/traces", data="{not json", headers=JSON)
    assert r.status_code == 400 and rpc_status(r)["code"] == 3
    r = requests.post(c.ingest + "/v1/traces", data='{"trace_id": "x", "spans": [', headers=JSON)
    assert r.status_code == 400 and "Invalid JSON" in r.json()["detail"]
    assert "byte" in r.json()["detail"]


def test_missing_ids_name_the_field(c):
    r = requests.post(c.ingest + "/v1/spans", json={"trace_id": "t"})
    assert r.status_code == 400 and "span_id" in r.json()["detail"]
    r = requests.post(c.ingest + "/v1/spans", json={"span_id": "s"})
    assert r.status_code == 400 and "trace_id" in r.json()["detail"]
    r = requests.post(c.ingest + "/v1/traces", json={"spans": []})
    assert r.status_code == 400 and "trace_id" in r.json()["detail"]
    r = requests.post(c.ingest + "/v1/traces", json={"trace_id": "t", "spans": [{"name": "x"}]})
    assert r.status_code == 400 and "spans[0].span_id" in r.json()["detail"]
    r = requests.post(c.ingest + "/v1/batch", json={"spans": "nope"})
    assert r.status_code == 400 and "spans" in r.json()["detail"]
    # OTLP JSON with wrong types names the field path
    r = requests.post(c.otlp + "/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "01" * 16, "spanId": "02" * 8, "name": 5}]}]}]})
    assert r.status_code == 400 and "name" in rpc_status(r)["message"]


def test_unsupported_content_type(c):
    r = requests.post(c.otlp + "/v1/traces", data="x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = requests.post(c.ingest + "/v1/traces", data="x", headers={"Content-Type": "application/xml"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    r = requests.post(c.otlp + "/v1/traces", data=b"x", headers=dict(PROTO, **{"Content-Encoding": "br"}))
    assert r.status_code == 415


def test_body_too_large_before_and_after_decompression(c):
    big = b"\x00" * (65 * 1024)
    r = requests.post(c.otlp + "/v1/traces", data=big, headers=PROTO)
    assert r.status_code == 413
    assert rpc_status(r)["code"] == 8
    bomb = gzip.compress(b" " * (50 * 1024 * 1024))  # 50 MiB of spaces, ~50 KB on the wire
    assert len(bomb) < 64 * 1024
    r = requests.post(c.otlp + "/v1/traces", data=bomb, headers=dict(PROTO, **{"Content-Encoding": "gzip"}))
    assert r.status_code == 413
    r = requests.post(c.ingest + "/v1/batch", data=bomb,
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    # chunked upload without Content-Length, past the limit
    def chunks():
        for _ in range(100):
            yield b"x" * 1024
    r = requests.post(c.ingest + "/v1/batch", data=chunks(), headers=JSON)
    assert r.status_code == 413


def test_corrupt_compressed_body(c):
    r = requests.post(c.ingest + "/v1/batch", data=b"not gzip at all",
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["detail"]


def test_wrong_method_and_unknown_path(c):
    r = requests.get(c.otlp + "/v1/traces")
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    r = requests.put(c.ingest + "/v1/batch", json={})
    assert r.status_code == 405
    assert requests.post(c.otlp + "/v2/traces", data=b"", headers=PROTO).status_code == 404
    assert requests.get(c.ingest + "/nope").status_code == 404


def test_invalid_utf8_never_stored_raw(c):
    body = b'{"span_id": "u1", "trace_id": "t-utf8", "name": "bad \xff\xfe name"}'
    r = requests.post(c.ingest + "/v1/spans", data=body, headers=JSON)
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]
    # protobuf strings with invalid UTF-8
    traces = workload.make_traces(1)
    raw = workload.to_proto(traces).replace(b"agent.run", b"agent\xff\xfeun")
    r = requests.post(c.otlp + "/v1/traces", data=raw, headers=PROTO)
    if r.status_code == 200:  # replaced, never stored raw
        name = c.trace(traces[0]["trace_id"])["trace"]["root_span_name"]
        assert "\ufffd" in name
    else:
        assert r.status_code == 400 and "UTF-8" in rpc_status(r)["message"]


def test_deeply_nested_json(c):
    deep = '{"span_id": "d", "trace_id": "t", "attributes": {"x": ' + "[" * 100000 + "]" * 100000 + "}}"
    r = requests.post(c.ingest + "/v1/spans", data=deep, headers=JSON)
    assert r.status_code in (400, 413) and "nesting" in r.text or r.status_code == 413
    deep_otlp = '{"resourceSpans": ' + "[" * 5000 + "]" * 5000 + "}"
    r = requests.post(c.otlp + "/v1/traces", data=deep_otlp, headers=JSON)
    assert r.status_code == 400


def test_client_disconnects_mid_body(c):
    s = socket.create_connection(("127.0.0.1", c.ports["ingest_port"]))
    s.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 50000\r\n\r\n" + b'{"spans": [' + b" " * 1000)
    s.close()
    assert requests.get(c.ingest + "/health").status_code == 200
