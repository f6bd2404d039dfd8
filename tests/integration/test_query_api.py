"""The query API (:8002): filters, paging, search, errors, on every store (conftest `store`)."""
import re

import pytest
import requests

import workload
from services import clickhouse  # noqa: F401  (fixture of the clickhouse store)

pytestmark = pytest.mark.usefixtures("store")  # every test runs on both stores


def seed(collector):
    """Three services, mixed statuses and span types, distinct start times."""
    docs = [
        ("svc-a", "p1", "t-a1", "2025-01-27T10:00:00Z", "success", "llm"),
        ("svc-a", "p1", "t-a2", "2025-01-27T11:00:00Z", "error", "tool"),
        ("svc-b", "p1", "t-b1", "2025-01-27T12:00:00Z", "success", "retrieval"),
        ("svc-c", "p2", "t-c1", "2025-01-27T13:00:00Z", "success", "agent"),
    ]
    for svc, proj, tid, start, status, stype in docs:
        r = requests.post(collector.ingest + "/v1/traces", headers={"X-Prela-Project-Id": proj}, json={
            "trace_id": tid, "service_name": svc, "spans": [{
                "span_id": tid + "-root", "trace_id": tid, "name": f"{stype} step 100%_done",
                "span_type": stype, "started_at": start, "ended_at": start.replace(":00Z", ":01Z"),
                "status": status, "attributes": {"query": f"O'Reilly {tid}"}}]})
        assert r.status_code == 200, r.text


def ids(resp):
    assert resp.status_code == 200, resp.text
    return [t["trace_id"] for t in resp.json()["traces"]]


def test_filters_and_paging(collector):
    seed(collector)
    get = collector.get
    assert ids(get("/api/v1/traces")) == ["t-c1", "t-b1", "t-a2", "t-a1"]  # newest first
    assert ids(get("/api/v1/traces", service_name="svc-a")) == ["t-a2", "t-a1"]
    assert ids(get("/api/v1/traces", project_id="p2")) == ["t-c1"]
    assert ids(get("/api/v1/traces", status="ERROR")) == ["t-a2"]   # case-insensitive
    assert ids(get("/api/v1/traces", status="success", project_id="p1")) == ["t-b1", "t-a1"]
    assert ids(get("/api/v1/traces", span_type="retrieval")) == ["t-b1"]
    assert ids(get("/api/v1/traces", span_type="LLM")) == ["t-a1"]
    assert ids(get("/api/v1/traces", start_time="2025-01-27T11:00:00Z",
                   end_time="2025-01-27T12:00:00+00:00")) == ["t-b1", "t-a2"]
    r = get("/api/v1/traces", limit=2, offset=1)
    assert ids(r) == ["t-b1", "t-a2"] and r.json()["limit"] == 2 and r.json()["offset"] == 1
    assert r.json()["count"] == 2


def test_cursor_pages_through_every_trace_once(collector):
    """Keyset paging: each page's next continues after its last trace, with the filters
    kept; ties in start time are ordered by trace id (then project), so none is lost."""
    seed(collector)
    for i in range(7):  # seven traces starting at the same instant; t-tie3 in both projects
        for proj in (["p1"] if i < 3 else ["p2"] if i > 3 else ["p1", "p2"]):
            r = requests.post(collector.ingest + "/v1/traces", headers={"X-Prela-Project-Id": proj},
                              json={"trace_id": f"t-tie{i}", "service_name": "svc-t", "spans": [{
                                  "span_id": f"tie{i}", "trace_id": f"t-tie{i}", "name": "tie",
                                  "started_at": "2025-01-27T09:00:00Z",
                                  "ended_at": "2025-01-27T09:00:01Z"}]})
            assert r.status_code == 200, r.text
    everything = [(t["trace_id"], t["project_id"]) for t in
                  collector.get("/api/v1/traces", limit=1000).json()["traces"]]
    assert len(everything) == 12  # 4 seeded + t-tie3 in both projects + 6 more ties
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        body = collector.get("/api/v1/traces", **params).json()
        seen += [(t["trace_id"], t["project_id"]) for t in body["traces"]]
        pages += 1
        cursor = body["next"]
        if body["count"] < 5:
            assert cursor is None
            break
        assert isinstance(cursor, str) and cursor
    assert seen == everything and pages == 3
    # filters apply on every page; a full last page still hands a next, which answers empty
    first = collector.get("/api/v1/traces", service_name="svc-a", limit=1).json()
    assert [t["trace_id"] for t in first["traces"]] == ["t-a2"]
    second = collector.get("/api/v1/traces", service_name="svc-a", limit=1, cursor=first["next"]).json()
    assert [t["trace_id"] for t in second["traces"]] == ["t-a1"]
    third = collector.get("/api/v1/traces", service_name="svc-a", limit=1, cursor=second["next"]).json()
    assert third["traces"] == [] and third["next"] is None
    # a cursor and an offset together: the offset counts after the cursor
    r = collector.get("/api/v1/traces", limit=2, offset=1, cursor=first["next"]).json()
    i = everything.index(("t-a2", "p1"))
    assert [(t["trace_id"], t["project_id"]) for t in r["traces"]] == everything[i + 2:i + 4]


@pytest.mark.parametrize("cursor", ["", "x", "12", "12.", "12.zz.", "12.7.", "12.00.70",
                                    "-5.74.70", "99999999999999999999.74.70", "1." + "61" * 600 + ".70",
                                    "12.74.70.71", "12.74%00.70"])
def test_bad_cursor_is_400(collector, cursor):
    r = collector.get("/api/v1/traces", cursor=cursor)
    if cursor == "":  # an empty parameter is no parameter
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 400, (cursor, r.text)
    assert "cursor" in r.json()["detail"]


def test_parameter_errors(collector):
    for params, name in (({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "x"}, "limit"),
                         ({"offset": -1}, "offset"), ({"offset": 10001}, "offset"),
                         ({"start_time": "yesterday"}, "start_time"),
                         ({"span_type": "banana"}, "span_type")):
        r = collector.get("/api/v1/traces", **params)
        assert r.status_code == 400, (params, r.text)
        assert name in r.json()["detail"]
    r = collector.get("/api/v1/search")
    assert r.status_code == 400 and "query" in r.json()["detail"]


def test_not_found(collector):
    r = collector.get("/api/v1/traces/nope")
    assert r.status_code == 404 and r.json() == {"detail": "Trace nope not found"}
    assert collector.get("/api/v1/traces/nope/spans").status_code == 404
    assert collector.get("/api/v1/nothing").status_code == 404
    r = requests.post(collector.query + "/api/v1/traces")
    assert r.status_code == 405


def test_search_is_literal_and_safe(collector):
    seed(collector)
    def found(q, **kw):
        r = collector.get("/api/v1/search", query=q, **kw)
        assert r.status_code == 200, r.text
        return sorted(t["trace_id"] for t in r.json()["results"])
    assert found("O'Reilly t-b1") == ["t-b1"]            # quote in user input
    assert found("100%_done") == ["t-a1", "t-a2", "t-b1", "t-c1"]  # % and _ are literal
    assert found("100%x") == []
    assert found("RETRIEVAL STEP") == ["t-b1"]          # case-insensitive
    assert found("'; DROP TABLE spans; --") == []
    assert found("step", limit=2, project_id="p1") and len(found("step", limit=2)) == 2
    assert collector.get("/api/v1/traces").json()["count"] == 4  # still there


def test_spans_endpoint_and_ordering(collector):
    traces = workload.make_traces(1)
    r = requests.post(collector.otlp + "/v1/traces", data=workload.to_proto(traces),
                      headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200
    body = collector.get(f"/api/v1/traces/{traces[0]['trace_id']}/spans").json()
    assert body["count"] == 10
    starts = [s["start_time_unix_nano"] for s in body["spans"]]
    assert starts == sorted(starts)


def metric(c, name):
    text = requests.get(c.metrics + "/metrics", timeout=5).text
    return sum(float(m.group(1)) for m in re.finditer(
        rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_a_trace_larger_than_the_memory_budget_is_read_in_pages(make_collector):
    """The answer to a read is built in memory before it is sent, and a trace can be far
    larger than one request (max_trace_spans spans, each as large as its own request):
    the body is charged to the memory budget as it grows. A trace whose answer would
    pass the budget is answered 429 + Retry-After naming the budget and how to read it
    in pages, before it is built whole; its pages, the lists and search are still
    served, and the collector goes on."""
    c = make_collector(service_extra="memory_limit: 12MiB")
    prompt = "x" * (512 << 10)  # 24 spans of 512 KiB: 12 MiB, each in a request of its own
    for i in range(24):
        r = requests.post(c.ingest + "/v1/traces", json={
            "trace_id": "t-big", "service_name": "svc-big", "spans": [{
                "span_id": f"s{i:02d}", "trace_id": "t-big", "name": f"call {i}",
                "started_at": f"2025-01-27T10:00:{i:02d}Z",
                "ended_at": f"2025-01-27T10:00:{i:02d}.5Z", "attributes": {"prompt": prompt}}]},
            timeout=30)
        assert r.status_code == 200, r.text
    refused = metric(c, "prela_memory_budget_refused_total")
    for path in ("/api/v1/traces/t-big", "/api/v1/traces/t-big/spans"):
        r = c.get(path)
        assert r.status_code == 429, (path, r.status_code, r.text[:200])
        assert r.headers["Retry-After"] == "1"
        assert "memory budget" in r.json()["detail"] and "limit" in r.json()["detail"]
    assert metric(c, "prela_memory_budget_refused_total") >= refused + 2
    spans = []
    for offset in range(0, 24, 4):  # the same trace, a page of 2 MiB at a time
        r = c.get("/api/v1/traces/t-big/spans", limit=4, offset=offset)
        assert r.status_code == 200, r.text[:200]
        spans += r.json()["spans"]
    assert [s["span_id"] for s in spans] == [f"s{i:02d}" for i in range(24)]
    assert all(s["attributes"]["prompt"] == prompt for s in spans)
    assert ids(c.get("/api/v1/traces")) == ["t-big"]
    r = c.get("/api/v1/search", query="call 7")
    assert r.status_code == 200 and [t["trace_id"] for t in r.json()["results"]] == ["t-big"]
    assert c.alive()
