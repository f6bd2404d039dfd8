"""The fuzz findings (tests/fuzz/corpus/) that a client can send, sent over HTTP to the real
binary: each gets a clear 4xx naming the field, or a 200 whose spans then read back exactly;
the process stays up and keeps serving what it acknowledged before. The HTTP tests run once
per store (embedded SQLite and ClickHouse), so an accepted edge time is proven storable in
both.

The two findings that lost acknowledged spans between a gateway and a storage collector (a
span start and an event time before 1970) run through a real Kafka broker in every encoding:
the gateway refuses them with 400 (see "Why not before 1970" in src/core/timefmt.h), and
what it does accept at the edges of the time range arrives intact in storage. So does an
OTLP span whose client set the attributes the OTLP encodings use for Prela ids: the storage
side keeps the span's own ids and the client's attributes as attributes."""
import pathlib
import re
import time
import uuid

import pytest
import requests

from services import clickhouse, kafka  # noqa: F401  (fixtures)
from test_kafka_receiver import gateway, make_topics, storage, wait_spans

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "fuzz" / "corpus"
JSON = {"Content-Type": "application/json"}
RANGE = "out of range (1970-01-01T00:00:00Z .. 2262-04-11T23:47:16Z)"

# Each Prela finding: the field its 400 must name (the body is the file after its selector
# byte, which says /v1/spans for all of them).
PRELA_FINDINGS = {
    "prela-started_at-epoch-int-overflow": "started_at: " + RANGE,
    "prela-started_at-epoch-double-cast": "started_at: " + RANGE,
    "prela-duration_ms-int-overflow": "duration_ms: " + RANGE,
    "prela-duration_ms-double-add-overflow": "duration_ms: " + RANGE,
    "prela-duration_ms-int-overflow.orig": "started_at: " + RANGE,  # 1819, leniently parsed
    "exporter-duration-subtraction-overflow": "started_at: " + RANGE,
    "prela-pre1970-kafka-roundtrip-poison": "started_at: " + RANGE,
}


def finding(target, name):
    return (CORPUS / target / name).read_bytes()


@pytest.fixture
def c(make_collector, store):  # noqa: ARG001  (store: once per store, see conftest.py)
    col = make_collector()
    kept = span_body("kept-" + uuid.uuid4().hex[:8], "2025-01-27T10:00:00Z", "2025-01-27T10:00:01Z")
    r = requests.post(col.ingest + "/v1/spans", json=kept, timeout=10)
    assert r.status_code == 200, r.text
    col.kept = kept
    yield col
    assert col.alive(), "collector died:\n" + col.logs()
    got = wait_spans(col, col.kept["trace_id"], 1)["spans"][0]
    assert got["span_id"] == col.kept["span_id"] and got["duration_ms"] == 1000


def span_body(trace_id, started, ended=None, **extra):
    body = {"trace_id": trace_id, "span_id": "s-" + trace_id, "name": "op", "started_at": started}
    if ended:
        body["ended_at"] = ended
    body.update(extra)
    return body


@pytest.mark.parametrize("name", sorted(PRELA_FINDINGS))
def test_prela_finding_is_a_400_naming_the_field(c, name):
    body = finding("fuzz_prela", name)
    assert body[0] == 1  # the /v1/spans shape
    r = requests.post(c.ingest + "/v1/spans", data=body[1:], headers=JSON, timeout=10)
    assert r.status_code == 400, r.text
    assert PRELA_FINDINGS[name] in r.json()["detail"], r.text
    # the same span inside a /v1/traces body: the field is named with its position
    r = requests.post(c.ingest + "/v1/traces", headers=JSON, timeout=10,
                      data=b'{"trace_id":"t-' + name.encode() + b'","spans":[{"span_id":"ok","trace_id":"x"},'
                      + body[1:] + b"]}")
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("spans[1]."), r.text
    # and in /v1/batch: that span is rejected by name, the other one is stored
    tid = "b-" + uuid.uuid4().hex[:8]
    r = requests.post(c.ingest + "/v1/batch", headers=JSON, timeout=10,
                      data=b'{"spans":[{"span_id":"ok","trace_id":"' + tid.encode() + b'"},' + body[1:] + b"]}")
    assert r.status_code == 200, r.text
    assert r.json()["rejected"] == 1 and r.json()["errors"][0].startswith("spans[1]."), r.text
    wait_spans(c, tid, 1)


def test_pre1970_event_is_a_400_naming_the_field(c):
    body = finding("fuzz_kafka", "kafka-prela_json-negative-event-time-poison")[1:]
    r = requests.post(c.ingest + "/v1/spans", data=body, headers=JSON, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == "events[0].timestamp: " + RANGE


def test_nul_in_a_string_is_a_400_naming_the_field(c):
    """Found by fuzz_prela: an id holding U+0000 was acknowledged, and the otlp_proto Kafka
    encoding (protobuf-c strings) cut it short, so storage got another trace id."""
    body = finding("fuzz_prela", "prela-nul-in-id-truncated-by-otlp_proto")[1:]
    r = requests.post(c.ingest + "/v1/spans", data=body, headers=JSON, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == "trace_id: U+0000 in a string is not supported"
    otlp = forged_otlp(uuid.uuid4().hex, uuid.uuid4().hex[:16])
    otlp["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = "a\u0000b"
    r = requests.post(c.otlp + "/v1/traces", json=otlp, timeout=10)
    assert r.status_code == 400, r.text
    assert "name: U+0000 in a string is not supported" in r.text, r.text


@pytest.mark.parametrize("name", ["json-error-offset-past-end-min", "json-error-offset-past-end"])
def test_json_error_offset_is_within_the_body(c, name):
    body = finding("fuzz_json", name)
    for route in ("/v1/spans", "/v1/traces", "/v1/batch"):
        r = requests.post(c.ingest + route, data=body, headers=JSON, timeout=10)
        assert r.status_code == 400, r.text
        detail = r.json()["detail"]
        m = re.fullmatch(r"Invalid JSON: .* at byte (\d+)", detail)
        assert m and int(m.group(1)) <= len(body), (detail, len(body))
    r = requests.post(c.otlp + "/v1/traces", data=body, headers=JSON, timeout=10)
    assert r.status_code == 400, r.text


def test_time_range_edges_read_back_exactly(c):
    """The first and the last instant of the range are accepted, stored and served as sent,
    with an event at each; an end before the start is kept as sent (negative duration)."""
    tid = "edge-" + uuid.uuid4().hex[:8]
    body = span_body(tid, "1970-01-01T00:00:00Z", "2262-04-11T23:47:16.854775Z",
                     events=[{"name": "first", "timestamp": 0},
                             {"name": "last", "timestamp": "2262-04-11T23:47:16Z"}])
    r = requests.post(c.ingest + "/v1/spans", json=body, timeout=10)
    assert r.status_code == 200, r.text
    back = requests.post(c.ingest + "/v1/spans", timeout=10,
                         json=span_body(tid, "2025-01-27T10:00:01Z", "2025-01-27T10:00:00Z",
                                        span_id="backwards"))
    assert back.status_code == 200, back.text
    spans = {s["span_id"]: s for s in wait_spans(c, tid, 2)["spans"]}
    s = spans[body["span_id"]]
    assert s["started_at"] == "1970-01-01T00:00:00.000000Z"
    assert s["ended_at"] == "2262-04-11T23:47:16.854775Z"
    assert [(e["name"], e["timestamp"]) for e in s["events"]] == [
        ("first", "1970-01-01T00:00:00.000000Z"), ("last", "2262-04-11T23:47:16.000000Z")]
    assert spans["backwards"]["duration_ms"] == -1000


def test_otlp_client_prela_attributes_are_plain_attributes(c):
    tid, sid = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    r = requests.post(c.otlp + "/v1/traces", json=forged_otlp(tid, sid), timeout=10)
    assert r.status_code == 200, r.text
    check_forged(wait_spans(c, tid, 1), tid, sid)


def forged_otlp(tid, sid):
    now = time.time_ns()
    attrs = {"prela.trace_id": "forged-trace", "prela.span_id": "forged-span",
             "prela.parent_span_id": "forged-parent", "prela.span_type": "llm",
             "prela.client.note": "kept"}
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "forger"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": tid, "spanId": sid, "name": "forge", "kind": 1,
            "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1000000),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
        }]}]}]}


def check_forged(body, tid, sid):
    (s,) = body["spans"]
    assert s["trace_id"] == tid and s["span_id"] == sid and not s.get("parent_span_id")
    assert s["source"] == "otlp"
    for k, v in {"prela.trace_id": "forged-trace", "prela.span_id": "forged-span",
                 "prela.parent_span_id": "forged-parent", "prela.client.note": "kept"}.items():
        assert s["attributes"][k] == v, (k, s["attributes"])


# ------------------------------------------------------------- through Kafka --


@pytest.mark.parametrize("encoding", ["prela_json", "otlp_proto", "otlp_json"])
def test_gateway_acknowledges_only_what_storage_decodes(make_collector, kafka, encoding):
    run = f"fz-{encoding}-{uuid.uuid4().hex[:8]}"
    topics = make_topics(kafka, run)
    gw = gateway(make_collector, kafka, topics, encoding)
    st = storage(make_collector, kafka, topics, encoding, f"g-{run}")

    # the two findings: refused at the gateway, so nothing acknowledged is lost
    pre = finding("fuzz_prela", "prela-pre1970-kafka-roundtrip-poison")[1:]
    r = requests.post(gw.ingest + "/v1/spans", data=pre, headers=JSON, timeout=10)
    assert r.status_code == 400 and r.json()["detail"] == "started_at: " + RANGE, r.text
    ev = finding("fuzz_kafka", "kafka-prela_json-negative-event-time-poison")[1:]
    r = requests.post(gw.ingest + "/v1/spans", data=ev, headers=JSON, timeout=10)
    assert r.status_code == 400 and r.json()["detail"] == "events[0].timestamp: " + RANGE, r.text

    # what the gateway does accept at the edges arrives intact
    tid = "edge-" + run
    body = span_body(tid, "1970-01-01T00:00:00Z", "2262-04-11T23:47:16.854775Z",
                     events=[{"name": "first", "timestamp": "1970-01-01T00:00:00Z"}])
    r = requests.post(gw.ingest + "/v1/spans", json=body, timeout=10)
    assert r.status_code == 200, r.text
    (s,) = wait_spans(st, tid, 1)["spans"]
    assert (s["span_id"], s["started_at"], s["ended_at"]) == (
        body["span_id"], "1970-01-01T00:00:00.000000Z", "2262-04-11T23:47:16.854775Z")
    assert [(e["name"], e["timestamp"]) for e in s["events"]] == [("first", "1970-01-01T00:00:00.000000Z")]

    # a client's prela.* attributes do not choose the ids storage assigns
    ftid, fsid = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    r = requests.post(gw.otlp + "/v1/traces", json=forged_otlp(ftid, fsid), timeout=10)
    assert r.status_code == 200, r.text
    check_forged(wait_spans(st, ftid, 1), ftid, fsid)
    assert st.get("/api/v1/traces/forged-trace").status_code == 404
    assert "skipping undecodable message" not in st.log_path.read_text(), st.logs()
