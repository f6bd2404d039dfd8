"""Projects are part of every storage key: two projects (X-Prela-Project-Id, no auth
configured) send the same trace id and the same span ids, over Prela JSON and OTLP/HTTP;
each is answered 200, each reads back only its own trace and spans (`?project_id=`), lists
and search with a project never cross projects, and a trace read without a project answers
409 naming both. On every store: the embedded SQLite store, ClickHouse 18.16 (legacy
dialect) and chDB (modern dialect, behind chdb_server.py).
"""
import json
import time

import pytest
import requests

import workload
from chdb_server import chdb  # noqa: F401  (fixture)
from clickhouse_helpers import ch_collector
from services import clickhouse  # noqa: F401  (fixture)

HOUR = 3600 * 10**9
PROJECTS = ("alpha", "beta")


@pytest.fixture(params=["local", "clickhouse", "chdb"])
def collector(request, make_collector, tmp_path):
    """A collector whose query API serves the store of this run."""
    if request.param == "local":
        return make_collector()
    srv = request.getfixturevalue(request.param)
    return ch_collector(make_collector, tmp_path, srv, srv.database())


def iso(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + \
        ".%06dZ" % (ns % 10**9 // 1000)


def prela_doc(project, start):
    """The same ids for every project; names, services and attributes name the project."""
    return {"trace_id": "shared-trace-1", "service_name": f"svc-{project}", "spans": [
        {"span_id": "root", "trace_id": "shared-trace-1", "name": f"{project} root",
         "span_type": "agent", "started_at": iso(start), "ended_at": iso(start + 5 * 10**9),
         "status": "success", "attributes": {"owner": f"{project}-only-text"}},
        {"span_id": "kid", "trace_id": "shared-trace-1", "parent_span_id": "root",
         "name": f"{project} kid", "span_type": "llm" if project == "alpha" else "tool",
         "started_at": iso(start + 10**9), "ended_at": iso(start + 2 * 10**9),
         "status": "error" if project == "beta" else "success"}]}


def recent(traces):
    return workload.recent(traces, HOUR)  # the modern dialect's TTL is 90 days


def send_both(c):
    """Every project sends the same ids, alpha first (answered before beta writes)."""
    start = (time.time_ns() - 2 * HOUR) // 1000 * 1000
    otlp = recent(workload.make_traces(1))
    for p in PROJECTS:
        r = requests.post(c.ingest + "/v1/traces", data=json.dumps(prela_doc(p, start)),
                          headers={"X-Prela-Project-Id": p, "Content-Type": "application/json"},
                          timeout=30)
        assert r.status_code == 200, (p, r.text)
        r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(otlp, service=f"otel-{p}"),
                          headers={"X-Prela-Project-Id": p,
                                   "Content-Type": "application/x-protobuf"}, timeout=30)
        assert r.status_code == 200, (p, r.text)
    return start, otlp[0]


def test_same_ids_in_two_projects(collector):
    c = collector
    start, otlp = send_both(c)
    tid = otlp["trace_id"]
    for p in PROJECTS:
        # Prela JSON: this project's trace and spans, field by field.
        r = c.get("/api/v1/traces/shared-trace-1", project_id=p)
        assert r.status_code == 200, r.text
        body = r.json()
        t = body["trace"]
        assert t["project_id"] == p and t["trace_id"] == "shared-trace-1"
        assert t["span_count"] == 2 == body["span_count"]
        assert t["service_name"] == f"svc-{p}" and t["root_span_name"] == f"{p} root"
        assert t["status"] == ("error" if p == "beta" else "success")
        assert t["started_at"] == iso(start) and t["completed_at"] == iso(start + 5 * 10**9)
        assert [s["name"] for s in body["spans"]] == [f"{p} root", f"{p} kid"]
        assert all(s["project_id"] == p for s in body["spans"])
        assert body["spans"][0]["attributes"] == {"owner": f"{p}-only-text"}
        spans = c.get("/api/v1/traces/shared-trace-1/spans", project_id=p).json()
        assert spans["count"] == 2 and spans["spans"] == body["spans"]
        # OTLP/HTTP: the same trace, read per project (every span, correct).
        r = c.get(f"/api/v1/traces/{tid}", project_id=p)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["trace"]["project_id"] == p and body["span_count"] == 10
        assert body["trace"]["service_name"] == f"otel-{p}"
        got = {s["span_id"]: s for s in body["spans"]}
        assert sorted(got) == sorted(s["span_id"] for s in otlp["spans"])
        for s in otlp["spans"]:
            assert got[s["span_id"]]["project_id"] == p
            assert got[s["span_id"]]["service_name"] == f"otel-{p}"
            assert got[s["span_id"]]["name"] == s["name"]
            assert got[s["span_id"]]["start_time_unix_nano"] == s["start"]

    # No project: the id is in two projects.
    for path in ("/api/v1/traces/shared-trace-1", "/api/v1/traces/shared-trace-1/spans",
                 f"/api/v1/traces/{tid}"):
        r = c.get(path)
        assert r.status_code == 409, (path, r.text)
        tid_in = path.split("/")[4]
        assert r.json() == {"detail": f"trace id {tid_in} exists in 2 projects (alpha, beta); "
                                      "pass project_id"}
    assert c.get("/api/v1/traces/shared-trace-1", project_id="gamma").status_code == 404
    assert c.get("/api/v1/traces/nope").status_code == 404


def test_list_and_search_never_cross_projects(collector):
    c = collector
    _, otlp = send_both(c)
    everything = c.get("/api/v1/traces").json()
    assert everything["count"] == 4
    assert sorted((t["project_id"], t["trace_id"]) for t in everything["traces"]) == sorted(
        (p, t) for p in PROJECTS for t in ("shared-trace-1", otlp["trace_id"]))
    for p in PROJECTS:
        body = c.get("/api/v1/traces", project_id=p).json()
        assert body["count"] == 2 and {t["project_id"] for t in body["traces"]} == {p}
        assert {t["trace_id"] for t in body["traces"]} == {"shared-trace-1", otlp["trace_id"]}
        # Filters over spans stay in the project: only beta's kid is a tool span of
        # shared-trace-1, only beta's failed.
        tools = c.get("/api/v1/traces", project_id=p, span_type="tool").json()["traces"]
        shared = [(t["project_id"], t["trace_id"]) for t in tools
                  if t["trace_id"] == "shared-trace-1"]
        assert shared == ([("beta", "shared-trace-1")] if p == "beta" else [])
        errors = c.get("/api/v1/traces", project_id=p, status="error").json()["traces"]
        assert all(t["project_id"] == p for t in errors)
        assert ("shared-trace-1" in [t["trace_id"] for t in errors]) == (p == "beta")
        # Search: a project's own text is found only in that project.
        for q, owner in (("alpha-only-text", "alpha"), ("beta-only-text", "beta")):
            found = c.get("/api/v1/search", query=q, project_id=p).json()["results"]
            assert [(t["project_id"], t["trace_id"]) for t in found] == \
                ([(p, "shared-trace-1")] if owner == p else [])
        found = c.get("/api/v1/search", query="gpt-4o-mini", project_id=p).json()["results"]
        assert [(t["project_id"], t["trace_id"]) for t in found] == [(p, otlp["trace_id"])]
    # Without a project, search finds each text in its owner only.
    found = c.get("/api/v1/search", query="alpha-only-text").json()["results"]
    assert [(t["project_id"], t["trace_id"]) for t in found] == [("alpha", "shared-trace-1")]
    found = c.get("/api/v1/search", query="gpt-4o-mini").json()["results"]
    assert sorted(t["project_id"] for t in found) == ["alpha", "beta"]
    assert all(t["span_count"] == 10 for t in found)


def test_redelivery_stays_in_its_project(collector):
    """A project re-sending the other's ids later never replaces what was answered 200."""
    c = collector
    start, _ = send_both(c)
    doc = prela_doc("beta", start)
    doc["spans"][0]["name"] = "beta again"
    r = requests.post(c.ingest + "/v1/traces", json=doc,
                      headers={"X-Prela-Project-Id": "beta"}, timeout=30)
    assert r.status_code == 200
    a = c.get("/api/v1/traces/shared-trace-1/spans", project_id="alpha").json()
    b = c.get("/api/v1/traces/shared-trace-1/spans", project_id="beta").json()
    assert [s["name"] for s in a["spans"]] == ["alpha root", "alpha kid"]
    assert [s["name"] for s in b["spans"]] == ["beta root", "beta kid"]  # first write wins
    assert c.get("/api/v1/traces/shared-trace-1", project_id="beta").json()["trace"][
        "span_count"] == 2
