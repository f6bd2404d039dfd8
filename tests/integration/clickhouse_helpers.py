"""Helpers of the ClickHouse tests (test_clickhouse*.py): the `engine` fixture (both real
engines), collectors storing into a fresh database, the documents they send, and the
comparison with the embedded store.
"""
import json
import time

import pytest
import requests

import workload

HOUR = 3600 * 10**9


@pytest.fixture(params=["clickhouse", "chdb"])
def engine(request):
    """(server, expected dialect) for each engine."""
    srv = request.getfixturevalue(request.param)
    return srv, "legacy" if request.param == "clickhouse" else "modern"


def ch_collector(make_collector, tmp_path, srv, db, timeout="10s", extra="", host="127.0.0.1",
                 port=None):
    """A collector storing into |srv|'s database |db| (at host:port, default the server's
    own loopback port), its query API reading it back."""
    exporter = f"""
clickhouse:
  host: {host}
  port: {port or srv.port}
  user: default
  database: {db}
  timeout: {timeout}
{extra}
"""
    pipelines = """
traces/ch:
  receivers: [prela, otlp]
  processors: [normalize]
  exporters: [clickhouse]
"""
    return make_collector(exporters_extra=exporter, pipelines_extra=pipelines,
                          query_store="clickhouse", data_dir=str(tmp_path / f"ch-{db}"))


def twins(make_collector, tmp_path, srv, db):
    """A collector on ClickHouse and one on the embedded store, to compare answers."""
    return (ch_collector(make_collector, tmp_path, srv, db),
            make_collector(data_dir=str(tmp_path / "local")))


def latency_ms(ns):
    """What the stats report for a duration of |ns|: its log-scale bin's midpoint (histo.h:
    exact below 128 ns; above, 64 bins per power of two), in ms."""
    if ns < 128:
        return max(ns, 0) / 1e6
    width = 1 << (ns.bit_length() - 7)
    return ((ns // width) * width + width // 2) / 1e6


def iso(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + \
        ".%06dZ" % (ns % 10**9 // 1000)


def post_prela(c, doc, project="p1"):
    r = requests.post(c.ingest + "/v1/traces", data=json.dumps(doc), timeout=30,  # NaN allowed
                      headers={"X-Prela-Project-Id": project, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    return r


def post_otlp(c, traces):
    r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(traces), timeout=30,
                      headers={"Content-Type": "application/x-protobuf"})
    return r


def recent_traces(n):
    """workload traces moved to an hour ago."""
    return workload.recent(workload.make_traces(n), HOUR)


def strip(doc):
    """|doc| without created_at (ingest time differs between two collectors)."""
    if isinstance(doc, dict):
        return {k: strip(v) for k, v in doc.items() if k != "created_at"}
    if isinstance(doc, list):
        return [strip(v) for v in doc]
    return doc


def same(ch, lo, path, **params):
    a, b = ch.get(path, **params), lo.get(path, **params)
    assert a.status_code == b.status_code, (path, params, a.text, b.text)
    assert strip(a.json()) == strip(b.json()), (path, params)
    return a.json()


def seed_docs(base):
    docs = [("svc-a", "p1", "t-a1", 0, "success", "llm"), ("svc-a", "p1", "t-a2", 1, "error", "tool"),
            ("svc-b", "p1", "t-b1", 2, "success", "retrieval"),
            ("svc-c", "p2", "t-c1", 3, "success", "agent")]
    out = []
    for svc, proj, tid, h, status, stype in docs:
        start = base + h * HOUR + 123456000
        out.append((proj, {"trace_id": tid, "service_name": svc, "spans": [{
            "span_id": tid + "-root", "trace_id": tid, "name": f"{stype} step 100%_done",
            "span_type": stype, "started_at": iso(start), "ended_at": iso(start + 10**9),
            "status": status,
            "attributes": {"query": f"O'Reilly {tid}", "nan": float("nan"), "uni": "Ünïcode\t\\"}}]}))
    return out


def wait_rollups_built(srv, db, c, timeout=60):
    """Waits until every marked hour of |db| has a build that began after its last mark
    (clickhouse_stats.h); returns the hours."""
    deadline = time.time() + timeout
    while True:
        marked = srv.query(f"SELECT hour, toUInt64(max(written_at)) FROM {db}.stats_marks GROUP BY hour"
                           " ORDER BY hour FORMAT TabSeparated").split("\n")
        built = srv.query(f"SELECT hour, intDiv(max(version), 1048576) FROM {db}.stats_rollup"
                          " WHERE kind = 255 GROUP BY hour ORDER BY hour FORMAT TabSeparated"
                          ).split("\n")
        marks = {int(h): int(w) for h, w in (line.split("\t") for line in marked if line)}
        builds = {int(h): int(v) for h, v in (line.split("\t") for line in built if line)}
        if marks and all(builds.get(h, 0) >= marks[h] + 3 for h in marks):
            assert "stats rollups: cannot" not in c.logs(), c.logs()
            return sorted(marks)
        assert time.time() < deadline, f"rollups not built: {marks} {builds}\n{c.logs()}"
        time.sleep(0.5)
