"""Hostile input that costs work rather than bytes (issue 10, items 3-5), against the real binary.

- Trace ids computed to collide under the unkeyed FNV-1a the store's trace table used to hash
  with: 100k of them are stored in about the time of 100k ordinary ids, while a well-behaved
  client keeps getting 200s; one trace grown by 1,000 requests is stored in about the time of
  1,000 requests of new traces.
- Caps on spans per request, attributes/events per span and attribute nesting: 400 (Prela
  request), a rejected span in a Prela batch, OTLP partial success; every message names the field.
- Token counts and their sums saturate at INT64_MAX (never wrap, never fail a write).
- Reads are bounded: searches of a 1,000-byte text over 2 MB attributes stop at query_timeout
  with 503, on the server too, and while four clients keep sending them a well-behaved client's
  ingest and reads answer 200 within a stated bound; a trace read stops at max_trace_spans and
  /api/v1/traces/{id}/spans pages through the rest with limit/offset/total.
Tests marked with `store` run on the embedded store and on ClickHouse.
"""
import random
import threading
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from clients import WellBehaved, assert_not_starved
from services import clickhouse  # noqa: F401  (fixture of the clickhouse store)

INT64_MAX = 2**63 - 1
HEX = "0123456789abcdef"

# ------------------------------------------------------------ colliding ids --

FNV32_OFFSET, FNV32_PRIME = 2166136261, 16777619
BITS = 20  # the table has at least 2 * spans slots: 2^18 for 100k spans; 20 bits covers more
MASK = (1 << BITS) - 1


def fnv1a32(s):
    h = FNV32_OFFSET
    for c in s.encode():
        h = ((h ^ c) * FNV32_PRIME) & 0xFFFFFFFF
    return h


def colliding_ids(n, target=0x5A5A5, seed=1):
    """n distinct 22-character hex ids whose FNV-1a-32 agrees with `target` in the low BITS
    bits: the slot of every one of them in a power-of-two table of up to 2^BITS slots, as the
    store's trace table computed it before the keyed hash. The low bits of FNV-1a depend only on
    the low bits of its state, and each byte step is invertible mod 2^BITS, so a table of
    4-character suffixes that lead to the target (built backwards) meets 2-character middles
    computed forwards from random 16-character prefixes (meet in the middle)."""
    rng = random.Random(seed)
    inv = pow(FNV32_PRIME, -1, 1 << BITS)
    back = {}  # state before the suffix -> suffix
    for a in HEX:
        for b in HEX:
            for c in HEX:
                for d in HEX:
                    suffix = a + b + c + d
                    st = target
                    for ch in reversed(suffix):
                        st = ((st * inv) & MASK) ^ ord(ch)
                    back.setdefault(st, suffix)
    ids = []
    while len(ids) < n:
        prefix = "".join(rng.choice(HEX) for _ in range(16))
        st = fnv1a32(prefix) & MASK
        for a in HEX:
            sa = ((st ^ ord(a)) * FNV32_PRIME) & MASK
            for b in HEX:
                sb = ((sa ^ ord(b)) * FNV32_PRIME) & MASK
                suffix = back.get(sb)
                if suffix:
                    ids.append(prefix + a + b + suffix)
    return ids[:n]


def random_ids(n, seed=2):
    rng = random.Random(seed)
    return ["".join(rng.choice(HEX) for _ in range(22)) for _ in range(n)]


def batch_of(ids, name):
    return {"spans": [{"trace_id": t, "span_id": "s", "name": name,
                       "started_at": "2025-01-27T10:00:00Z"} for t in ids]}


def test_colliding_trace_ids_cost_what_ordinary_ids_cost(make_collector):
    n = 100_000
    bad = colliding_ids(n)
    assert len(set(bad)) == n
    assert len({fnv1a32(t) & MASK for t in bad}) == 1  # one slot under the old hash
    good = random_ids(n)
    # queue_size above the batch: at the default (100000, the batch's size) a neighbour that
    # arrives before the writer takes the batch's first chunk is refused for the queue bound,
    # which is not what this test measures.
    c = make_collector(local_extra="timeout: 120s\nqueue_size: 250000")

    def timed_post(ids, name):
        t0 = time.monotonic()
        r = requests.post(c.ingest + "/v1/batch", json=batch_of(ids, name), timeout=300)
        took = time.monotonic() - t0
        assert r.status_code == 200, r.text
        assert r.json()["ingested"] == n
        return took

    # A well-behaved client, one small span per call, measured alone, beside the ordinary
    # batch and beside the colliding one. The writer commits a huge batch in chunks and
    # writes batches queued meanwhile between them (local.c), so the client waits for one
    # chunk, not for the 100k-span batch: both are held to the standard bound.
    session, sent = requests.Session(), [0]

    def neighbour():
        sent[0] += 1
        return session.post(c.ingest + "/v1/spans", timeout=60, json={
            "trace_id": f"nb-{sent[0]}", "span_id": "s", "name": "neighbour"}).status_code

    client = WellBehaved(neighbour, pause=0.05)
    alone = client.run(40)
    with client.alongside() as beside_ordinary:
        ordinary = timed_post(good, "ordinary")
    with client.alongside() as attacked:
        colliding = timed_post(bad, "colliding")
    print(f"\n100k spans: ordinary ids {ordinary:.2f}s, colliding ids {colliding:.2f}s")
    # unkeyed: n^2/2 probes on the single writer (tens of seconds); keyed: the same work
    assert colliding < 2.5 * ordinary + 2.0, (ordinary, colliding)
    assert_not_starved("Prela /v1/spans client", alone, beside_ordinary,
                       f"a 100k-span batch of ordinary ids ({ordinary:.1f} s)")
    assert_not_starved("Prela /v1/spans client", alone, attacked,
                       f"a 100k-span batch of colliding ids ({colliding:.1f} s)")
    assert c.get("/api/v1/traces", limit=1).json()["count"] == 1
    assert c.trace(bad[-1])["trace"]["trace_id"] == bad[-1]


def test_one_trace_in_many_requests_costs_what_many_traces_cost(make_collector):
    """A trace that grows by 1,000 requests of 100 spans (a long agent run, or a client
    sending one trace id forever) is stored in about the time of 1,000 requests of new
    traces: the writer reads a stored trace's spans for its stats groups only until it knows
    them (local_rollup.h), where it read them at every request (quadratic: 17 writer CPU-s
    for this load in a Release build, against 0.5)."""
    requests_n, per = 1000, 100
    c = make_collector()
    session = requests.Session()

    def timed(bodies):
        t0 = time.monotonic()
        for body in bodies:
            r = session.post(c.ingest + "/v1/batch", json=body, timeout=60)
            assert r.status_code == 200, r.text
        return time.monotonic() - t0

    fresh = [batch_of([f"many-{k}-{i // 10}" for i in range(per)], "many")
             for k in range(requests_n)]
    for body in fresh:  # 10 traces of 10 spans a request
        for i, span in enumerate(body["spans"]):
            span["span_id"] = f"s{i}"
    one = [{"spans": [{"trace_id": "one-long-trace", "span_id": f"s{k}-{i}", "name": f"step {k}",
                       "started_at": "2025-01-27T10:00:00Z"} for i in range(per)]}
           for k in range(requests_n)]
    ordinary = timed(fresh)
    grown = timed(one)
    print(f"\n{requests_n} requests of {per} spans: new traces {ordinary:.2f}s,"
          f" one trace {grown:.2f}s")
    assert grown < 2.5 * ordinary + 2.0, (ordinary, grown)
    summary = c.trace("one-long-trace")["trace"]
    assert summary["span_count"] == requests_n * per, summary


# ---------------------------------------------------------------------- caps --

def prela_span(**kw):
    span = {"trace_id": "t-cap", "span_id": "s", "name": "n", "started_at": "2025-01-27T10:00:00Z"}
    span.update(kw)
    return span


def test_prela_caps_name_the_field(make_collector):
    c = make_collector(prela_extra="max_spans_per_request: 10\nmax_attribute_depth: 3\n"
                                   "max_events_per_span: 2")
    r = requests.post(c.ingest + "/v1/batch",
                      json={"spans": [prela_span(span_id=f"s{i}") for i in range(11)]})
    assert r.status_code == 400
    assert r.json()["detail"] == "spans: 11 spans, more than max_spans_per_request (10)"
    r = requests.post(c.ingest + "/v1/traces", json={
        "trace_id": "t-cap", "spans": [prela_span(span_id=f"s{i}") for i in range(11)]})
    assert r.status_code == 400 and "max_spans_per_request (10)" in r.json()["detail"]

    many = {f"k{i}": i for i in range(1025)}  # over the default 1,024
    r = requests.post(c.ingest + "/v1/spans", json=prela_span(attributes=many))
    assert r.status_code == 400
    assert r.json()["detail"] == \
        "attributes: 1025 attributes, more than max_attributes_per_span (1024)"

    batch = {"spans": [
        prela_span(span_id="ok", attributes={"flat": [[1, 2], [3]]}),          # depth 2
        prela_span(span_id="deep", attributes={"deep": [[[[1]]]]}),             # depth 4 > 3
        prela_span(span_id="ev", events=[{"name": f"e{i}"} for i in range(3)]),  # 3 > 2
    ]}
    r = requests.post(c.ingest + "/v1/batch", json=batch)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["ingested"] == 1 and j["rejected"] == 2
    assert j["errors"][0] == ("spans[1].attributes.deep: arrays/maps nested more than "
                              "max_attribute_depth (3) deep")
    assert j["errors"][1] == "spans[2].events: 3 events, more than max_events_per_span (2)"
    assert [s["span_id"] for s in c.trace("t-cap")["spans"]] == ["ok"]
    assert c.alive()


def otlp_kv(key, value):
    return {"key": key, "value": value}


def test_otlp_caps_partial_success(collector):
    tid = "5b8efff798038103d269b633813fc60c"
    spans = [
        {"traceId": tid, "spanId": "0000000000000001", "name": "ok",
         "startTimeUnixNano": "1700000000000000000"},
        {"traceId": tid, "spanId": "0000000000000002", "name": "wide",
         "startTimeUnixNano": "1700000000000000000",
         "attributes": [otlp_kv(f"k{i}", {"intValue": i}) for i in range(1025)]},
    ]
    r = requests.post(collector.otlp + "/v1/traces",
                      json={"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
    assert r.status_code == 200, r.text
    ps = r.json()["partialSuccess"]
    assert ps["rejectedSpans"] == "1"
    assert ps["errorMessage"] == ("resourceSpans[0].scopeSpans[0].spans[1]: attributes: 1025 "
                                  "attributes, more than max_attributes_per_span (1024)")

    # protobuf: an AnyValue nested 33 arrays deep (over the default 32); 40 links (fine)
    v = common_pb2.AnyValue(int_value=1)
    for _ in range(33):
        v = common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[v]))
    req = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        scope_spans=[trace_pb2.ScopeSpans(spans=[
            trace_pb2.Span(trace_id=bytes.fromhex(tid), span_id=bytes.fromhex("0000000000000003"),
                           name="deep", start_time_unix_nano=1700000000000000000,
                           attributes=[common_pb2.KeyValue(key="deep", value=v)]),
            trace_pb2.Span(trace_id=bytes.fromhex(tid), span_id=bytes.fromhex("0000000000000004"),
                           name="linked", start_time_unix_nano=1700000000000000000,
                           links=[trace_pb2.Span.Link(trace_id=bytes.fromhex(tid),
                                                      span_id=bytes.fromhex("0000000000000001"))
                                  for _ in range(40)]),
        ])])])
    r = requests.post(collector.otlp + "/v1/traces", data=req.SerializeToString(),
                      headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    resp = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 1
    assert resp.partial_success.error_message == (
        "resource_spans[0].scope_spans[0].spans[0]: attributes.deep: arrays/maps nested more "
        "than max_attribute_depth (32) deep")
    names = sorted(s["name"] for s in collector.trace(tid)["spans"])
    assert names == ["linked", "ok"]


# ------------------------------------------------------------- on both stores --

@pytest.mark.usefixtures("store")
def test_token_counts_and_sums_saturate(make_collector):
    c = make_collector()
    spans = [
        prela_span(trace_id="t-tok", span_id="a", span_type="llm",
                   attributes={"llm.input_tokens": INT64_MAX, "llm.output_tokens": 3}),
        prela_span(trace_id="t-tok", span_id="b", span_type="llm",
                   attributes={"llm.input_tokens": 5, "llm.output_tokens": 1e30}),
        prela_span(trace_id="t-tok", span_id="c", span_type="llm",
                   attributes={"llm.input_tokens": "99999999999999999999999",
                               "llm.output_tokens": 4}),
    ]
    r = requests.post(c.ingest + "/v1/batch", json={"spans": spans[:2]})
    assert r.status_code == 200 and r.json()["ingested"] == 2, r.text
    r = requests.post(c.ingest + "/v1/batch", json={"spans": spans[2:]})  # a later write
    assert r.status_code == 200 and r.json()["ingested"] == 1, r.text
    t = c.trace("t-tok")
    by_id = {s["span_id"]: s for s in t["spans"]}
    assert by_id["b"]["output_tokens"] == INT64_MAX       # a double past int64
    assert by_id["c"]["input_tokens"] == INT64_MAX        # a numeric string past int64
    assert t["trace"]["input_tokens"] == INT64_MAX
    assert t["trace"]["output_tokens"] == INT64_MAX
    listed = c.get("/api/v1/traces").json()["traces"]
    assert [x["input_tokens"] for x in listed if x["trace_id"] == "t-tok"] == [INT64_MAX]


@pytest.mark.usefixtures("store")
def test_spans_pagination_and_trace_span_cap(make_collector):
    c = make_collector(query_extra="max_trace_spans: 100")
    n = 250
    spans = [prela_span(trace_id="t-many", span_id=f"s{i:04d}",
                        started_at=f"2025-01-27T10:00:{i // 10:02d}.{i % 10}Z") for i in range(n)]
    r = requests.post(c.ingest + "/v1/batch", json={"spans": spans})
    assert r.status_code == 200 and r.json()["ingested"] == n, r.text

    t = c.trace("t-many")
    assert t["trace"]["span_count"] == n
    assert t["span_count"] == 100 and len(t["spans"]) == 100
    assert t["spans_total"] == n and t["spans_truncated"] is True

    seen = []
    for offset in range(0, n, 100):
        r = c.get("/api/v1/traces/t-many/spans", limit=100, offset=offset)
        assert r.status_code == 200, r.text
        j = r.json()
        assert j["total"] == n and j["limit"] == 100 and j["offset"] == offset
        assert j["count"] == len(j["spans"]) == min(100, n - offset)
        seen += [s["span_id"] for s in j["spans"]]
    assert seen == [f"s{i:04d}" for i in range(n)]
    j = c.get("/api/v1/traces/t-many/spans").json()  # no parameters: the first max_trace_spans
    assert j["count"] == 100 and j["total"] == n and j["offset"] == 0
    r = c.get("/api/v1/traces/t-many/spans", limit=101)
    assert r.status_code == 400
    assert r.json()["detail"] == "limit: must be an integer from 1 to 100 (max_trace_spans)"


@pytest.mark.usefixtures("store")
def p50(xs):
    return sorted(xs)[len(xs) // 2]


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def good_client(c, seconds, tag, out):
    """A well-behaved client: for |seconds| (at least one round), rounds of one small ingest,
    one span read of the trace t-good and one list of the newest 5 traces; appends (what,
    status, seconds taken) to |out|, status negated when a 200 has the wrong content.
    Returns the number of rounds (each ingested one trace)."""
    end = time.monotonic() + seconds
    i = 0
    while i == 0 or time.monotonic() < end:
        t0 = time.monotonic()
        r = requests.post(c.ingest + "/v1/spans", timeout=60, json=prela_span(
            trace_id=f"t-ok-{tag}-{i}", span_id="s", attributes={"i": i}))
        out.append(("ingest", r.status_code, time.monotonic() - t0))
        t0 = time.monotonic()
        r = requests.get(c.query + "/api/v1/traces/t-good/spans", timeout=60)
        ok = r.status_code == 200 and r.json()["total"] == 1
        out.append(("read", r.status_code if ok else -r.status_code, time.monotonic() - t0))
        t0 = time.monotonic()
        r = requests.get(c.query + "/api/v1/traces", params={"limit": 5}, timeout=60)
        ok = r.status_code == 200 and r.json()["count"] == 5
        out.append(("list", r.status_code if ok else -r.status_code, time.monotonic() - t0))
        i += 1
        time.sleep(0.05)  # well-behaved: at most 20 rounds a second
    return i


def test_search_over_huge_attributes_is_bounded(request, make_collector, store):
    # The embedded store with a 100 ms statement limit (a search of the 28 MB below took
    # 0.24 s on a quiet machine, a span read or list of the well-behaved client 2-16 ms);
    # ClickHouse with query_timeout 2 s (max_execution_time counts whole seconds; a span
    # read of t-good decompresses the granule holding the huge values too, so 1 s is short
    # for it on a loaded machine). A case-insensitive substring search costs up to value
    # length x pattern length per row on ClickHouse, so a naive search of these values runs
    # for minutes, and the server went on with it after the collector had answered 503 (the
    # span reads of everyone else then timed out too). The property that matters: while four
    # clients keep sending such searches, a well-behaved client's ingest, span reads and
    # lists on the same collector all answer 200 within GOOD_BOUND seconds, no search is
    # left running on the server once the attack ends, and the well-behaved client is served
    # as before right after.
    c = make_collector(local_extra="query_timeout: 100ms",
                       exporters_extra="  query_timeout: 2s" if store else "")
    limit = 3.0 if store is None else 8.0  # the limit plus scheduling on a shared machine
    big = "a" * (2 << 20)
    for i in range(8):  # 16 MB of attribute text, 2 MB per span
        r = requests.post(c.ingest + "/v1/spans", json=prela_span(
            trace_id=f"t-huge-{i}", span_id="s", attributes={"prompt": big}), timeout=60)
        assert r.status_code == 200, r.text
    # ... and 12 MB more in 200 spans of 60 KB: the search's first 64 KiB of each value
    mid = "a" * 60000
    for i in range(10):
        r = requests.post(c.ingest + "/v1/batch", timeout=60, json={"spans": [prela_span(
            trace_id=f"t-mid-{i}", span_id=f"s{k}", attributes={"prompt": mid})
            for k in range(20)]})
        assert r.status_code == 200, r.text
    r = requests.post(c.ingest + "/v1/spans", json=prela_span(trace_id="t-good", span_id="s"))
    assert r.status_code == 200, r.text
    pattern = "a" * 999 + "b"  # never matches; a naive search compares ~1,000 bytes per offset
    # Both stores' trigram indexes rule this pattern out at once ("aab" is in no span: an
    # exact empty answer, no scan); a query under 3 characters has no trigram and is
    # scanned, so that is the attack whose time limit must hold here. The embedded store's
    # index is written by its own thread (local_index.h): until it has indexed the 28 MB
    # just sent, a search reads those spans directly, and may pass the 100 ms limit (503).
    deadline = time.monotonic() + 30
    while True:
        r = requests.get(c.query + "/api/v1/search", params={"query": pattern}, timeout=60)
        if r.status_code != 503 or store or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.json()["count"] == 0, r.text
    r = requests.get(c.query + "/api/v1/search", params={"query": pattern}, timeout=60)
    assert r.status_code == 200 and r.json()["count"] == 0, r.text
    assert r.elapsed.total_seconds() < (0.5 if not store else 2.0), r.elapsed
    pattern = "ab"

    alone, attacked, after = [], [], []
    rounds = good_client(c, 2, "alone", alone)

    answers = []
    stop = threading.Event()

    def attack():
        with requests.Session() as http:  # keep-alive, as a determined client would
            while not stop.is_set():
                t0 = time.monotonic()
                r = http.get(c.query + "/api/v1/search", params={"query": pattern}, timeout=60)
                answers.append((r.status_code, time.monotonic() - t0, r))

    threads = [threading.Thread(target=attack) for _ in range(4)]
    for th in threads:
        th.start()
    try:
        time.sleep(0.5)  # the searches are running
        rounds += good_client(c, 15, "attack", attacked)
    finally:
        stop.set()
        for th in threads:
            th.join()
    running = "0"
    if store:  # did ClickHouse itself stop them? (its scans carry the pattern)
        server = request.getfixturevalue("clickhouse")
        deadline = time.monotonic() + 3
        while True:
            running = server.query("SELECT count() FROM system.processes"
                                   " WHERE query LIKE '%position(lower(substring(%'"
                                   " AND query LIKE '%''ab''%'"
                                   " AND query NOT LIKE '%system.processes%'").strip()
            if running == "0" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    rounds += good_client(c, 10, "after", after)

    def summary(xs):  # p50 / p99 seconds of each kind of request
        return {w: (round(p50([s for k, _, s in xs if k == w]), 3),
                    round(p99([s for k, _, s in xs if k == w]), 3))
                for w in ("ingest", "read", "list")}
    print(f"\nstore={'clickhouse' if store else 'local'} p50/p99 alone={summary(alone)}"
          f" attacked={summary(attacked)} after={summary(after)} searches={len(answers)}"
          f" search p99={round(p99([t for _, t, _ in answers]), 3)}"
          f" 503s={sum(1 for a in answers if a[0] == 503)} left running={running}")
    assert running == "0", "searches still running on the server 3 s after the attack"
    assert len(answers) >= 4
    if not store:  # the limit was reached and held (ClickHouse's scan of a 2-byte pattern
        # looks at the first 64 KiB of each value and may finish within its 2 s)
        assert any(status == 503 for status, _, _ in answers)
    for status, took, r in answers:
        # a search that reaches query_timeout answers 503; one the server finishes sooner, 200
        assert status in (200, 503), r.text
        if status == 503:
            assert "query_timeout" in r.json()["detail"]
            assert r.headers.get("Retry-After") == "1"
        assert took < limit, took
    GOOD_BOUND = 5.0  # seconds, for every single request of the well-behaved client
    for what, xs in (("alone", alone), ("under attack", attacked), ("after", after)):
        bad = [(w, s, round(t, 2)) for w, s, t in xs if s != 200 or t > GOOD_BOUND]
        assert not bad, (what, bad)
    r = c.get("/api/v1/traces", limit=1000)
    assert r.status_code == 200, r.text
    assert r.json()["count"] == min(1000, 8 + 10 + 1 + rounds), (r.json()["count"], rounds)
    assert c.trace("t-good")["trace"]["trace_id"] == "t-good"
    assert c.get("/api/v1/health").status_code == 200
    assert c.alive()
