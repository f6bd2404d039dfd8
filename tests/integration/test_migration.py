"""Stores written by the previous releases open with this one, intact.

Each previous release (commit PREV: schema version 1; PREV2 .. PREV9: versions 2 .. 9)
is built once per clone into build-prev/ (build-prev-2/) at the repo root (its source from
`git archive`, only the prela-collector target) and reused while present. For each store
(the embedded SQLite data directory, ClickHouse 18.16 in the legacy dialect, chDB in the
modern dialect), the old binary writes traces over Prela JSON and OTLP/HTTP, including a
trace id two projects wrote into (which the old key let them share), and everything it
answers through the query API is recorded. Then the new binary opens the same store: it
migrates once (logged once per version step), answers every trace, span, list and search
exactly as the old one did (the shared trace id now being one trace per project), takes
new spans, and a second start migrates nothing. The schema 2 stores of PREV2 get the same
treatment: the embedded store (old rows searchable by decoded values), and the ClickHouse
database on both engines, with a trace split over inserts and redelivered.
"""
import fcntl
import json
import os
import sqlite3
import subprocess
import time

import pytest
import requests

import conftest
import workload
from chdb_server import chdb  # noqa: F401  (fixture)
from services import clickhouse  # noqa: F401  (fixture)
from clickhouse_helpers import wait_rollups_built

PREV = "5eb82be"  # the release before project-keyed storage (schema version 1)
PREV2 = "bf5f3fa"  # the last release of schema version 2 (both stores)
PREV3 = "183accf"  # the last release of schema version 3 (both stores)
PREV4 = "0c12009"  # the last release of schema version 4 (both stores)
PREV5 = "ed9c2ad"  # the last release of schema version 5 of the embedded store
PREV6 = "a0756ad"  # the last release of ClickHouse schema version 6
PREV7 = "6780cf8"  # the last release of ClickHouse schema version 7
PREV8 = "9a4a4cc"  # the last release of ClickHouse schema version 8
PREV9 = "d196f5a"  # the last release of schema version 9 of the embedded store
CH_SCHEMA = 9  # the current ClickHouse schema version (PC_CH_SCHEMA_VERSION)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOUR = 3600 * 10**9


@pytest.fixture(scope="session")
def prev_bin():
    """The previous release's binary, built once into build-prev/ (a lock serializes
    concurrent sessions)."""
    return build_release(PREV, os.path.join(ROOT, "build-prev"))


@pytest.fixture(scope="session")
def prev2_bin():
    """The last release of schema version 2 (both stores), built once into build-prev-2/."""
    return build_release(PREV2, os.path.join(ROOT, "build-prev-2"))


@pytest.fixture(scope="session")
def prev3_bin():
    """The last release of schema version 3 (both stores), built once into build-prev-3/."""
    return build_release(PREV3, os.path.join(ROOT, "build-prev-3"))


@pytest.fixture(scope="session")
def prev4_bin():
    """The last release of schema version 4 (both stores), built once into build-prev-4/."""
    return build_release(PREV4, os.path.join(ROOT, "build-prev-4"))


@pytest.fixture(scope="session")
def prev5_bin():
    """The last release of schema version 5 (both stores), built once into build-prev-5/."""
    return build_release(PREV5, os.path.join(ROOT, "build-prev-5"))


@pytest.fixture(scope="session")
def prev6_bin():
    """The last release of ClickHouse schema version 6, built once into build-prev-6/."""
    return build_release(PREV6, os.path.join(ROOT, "build-prev-6"))


@pytest.fixture(scope="session")
def prev7_bin():
    """The last release of ClickHouse schema version 7, built once into build-prev-7/."""
    return build_release(PREV7, os.path.join(ROOT, "build-prev-7"))


@pytest.fixture(scope="session")
def prev8_bin():
    """The last release of ClickHouse schema version 8, built once into build-prev-8/."""
    return build_release(PREV8, os.path.join(ROOT, "build-prev-8"))


@pytest.fixture(scope="session")
def prev9_bin():
    """The last release of the embedded store's schema version 9, built once into
    build-prev-9/."""
    return build_release(PREV9, os.path.join(ROOT, "build-prev-9"))


def build_release(commit, PREV_DIR):
    os.makedirs(PREV_DIR, exist_ok=True)
    binary = os.path.join(PREV_DIR, "build", "prela-collector")
    with open(os.path.join(PREV_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(binary):
            src = os.path.join(PREV_DIR, "src")
            subprocess.run(["rm", "-rf", src], check=True)
            os.makedirs(src)
            archive = subprocess.run(["git", "-C", ROOT, "archive", commit], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
            for cmd in (["cmake", "-S", src, "-B", os.path.join(PREV_DIR, "build"), "-G", "Ninja",
                         "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                        ["ninja", "-C", os.path.join(PREV_DIR, "build"), "-j2",
                         "prela-collector"]):
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
                assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}{r.stderr}"
    return binary


@pytest.fixture(params=["local", "clickhouse", "chdb"])
def old_store(request, tmp_path):
    """Collector options for one store kept across collectors (and a handle on it)."""
    data_dir = str(tmp_path / "data")
    if request.param == "local":
        return request.param, dict(data_dir=data_dir), None, None
    srv = request.getfixturevalue(request.param)
    db = srv.database()
    exporter = f"""
clickhouse:
  host: 127.0.0.1
  port: {srv.port}
  database: {db}
"""
    pipelines = """
traces/ch:
  receivers: [prela, otlp]
  processors: [normalize]
  exporters: [clickhouse]
"""
    return request.param, dict(data_dir=data_dir, exporters_extra=exporter,
                               pipelines_extra=pipelines, query_store="clickhouse"), srv, db


def iso(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + \
        ".%06dZ" % (ns % 10**9 // 1000)


def recent(traces):
    return workload.recent(traces, 3 * HOUR)  # the modern dialect's TTL is 90 days


def post_prela(c, doc, project):
    r = requests.post(c.ingest + "/v1/traces", data=json.dumps(doc), timeout=30,
                      headers={"X-Prela-Project-Id": project, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def post_otlp(c, traces, project):
    r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(traces), timeout=30,
                      headers={"Content-Type": "application/x-protobuf",
                               "X-Prela-Project-Id": project})
    assert r.status_code == 200, r.text


def prela_docs(base):
    out = []
    for i, (proj, svc, status, stype) in enumerate((("p1", "svc-a", "success", "llm"),
                                                    ("p1", "svc-b", "error", "tool"),
                                                    ("p2", "svc-c", "success", "retrieval"))):
        start = base + i * 60 * 10**9 + 123456000
        tid = f"old-{i}"
        out.append((proj, {"trace_id": tid, "service_name": svc, "spans": [
            {"span_id": "root", "trace_id": tid, "name": f"{stype} root {i}", "span_type": "agent",
             "started_at": iso(start), "ended_at": iso(start + 10**9), "status": "success",
             "attributes": {"q": f"O'Reilly {tid}", "uni": "Ünïcode\t\\", "n": i}},
            {"span_id": "kid", "trace_id": tid, "parent_span_id": "root", "name": f"{stype} kid",
             "span_type": stype, "started_at": iso(start + 10**8), "ended_at": iso(start + 5 * 10**8),
             "status": status, "attributes": {"llm.model": "gpt-4o", "llm.input_tokens": 7}}]}))
    return out


def shared_docs(base):
    """Trace id "shared-old" written by p1, then by p3 with span ids of its own."""
    start = base + 10 * 60 * 10**9
    doc = {"trace_id": "shared-old", "service_name": "svc-shared", "spans": [
        {"span_id": "r1", "trace_id": "shared-old", "name": "p1 root", "span_type": "agent",
         "started_at": iso(start), "ended_at": iso(start + 10**9), "status": "success"}]}
    doc3 = {"trace_id": "shared-old", "service_name": "svc-p3", "spans": [
        {"span_id": "r3", "trace_id": "shared-old", "name": "p3 root", "span_type": "tool",
         "started_at": iso(start + 2 * 10**9), "ended_at": iso(start + 3 * 10**9),
         "status": "error"}]}
    return [("p1", doc), ("p3", doc3)]


def snapshot(c, trace_ids):
    """Everything the query API answers about |trace_ids|, plus lists and searches."""
    snap = {"list": c.get("/api/v1/traces", limit=1000).json()}
    for p in ("p1", "p2"):
        snap["list " + p] = c.get("/api/v1/traces", project_id=p, limit=1000).json()
    for q in ("O'Reilly", "gpt-4o", "Ünïcode", "kid"):
        snap["search " + q] = c.get("/api/v1/search", query=q).json()
    for tid in trace_ids:
        r = c.get(f"/api/v1/traces/{tid}")
        assert r.status_code == 200, r.text
        snap[tid] = r.json()
        snap[tid + "/spans"] = c.get(f"/api/v1/traces/{tid}/spans").json()
    return snap


def versions(first):
    """The ClickHouse schema_version rows of a database climbed from |first| to CH_SCHEMA,
    sorted as strings: one per step, and the search index's mark (the current version)."""
    return [str(v) for v in range(first, CH_SCHEMA + 1)] + [str(CH_SCHEMA)]


def start(binary, tmp_path, opts):
    return conftest.Collector(tmp_path, binary=binary, **opts).start()


def stop(c):
    assert c.stop() == 0, c.logs()


def old_fields(after, before):
    """|after| limited to the fields |before| has, at the top level and in its rows (trace,
    traces, results, spans): a newer release may add fields to an answer (e.g. the paging of
    /spans, the LLM fields of traces and spans), but every old one must read the same."""
    out = {}
    for k, v in after.items():
        if k not in before:
            continue
        b = before[k]
        if k == "trace" and isinstance(v, dict) and isinstance(b, dict):
            v = {f: x for f, x in v.items() if f in b}
        elif k in ("traces", "results", "spans") and isinstance(v, list) and b and \
                isinstance(b[0], dict):
            v = [{f: x for f, x in row.items() if f in b[0]} for row in v]
        out[k] = v
    return same_costs(out, before)


def same_costs(a, b):
    """|a| with each cost that reads as |b|'s to 12 significant digits replaced by |b|'s:
    releases since stop 40 give costs to 12 digits (query_json.h), older ones every bit."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: b[k] if k.startswith("cost_") and isinstance(v, float)
                and isinstance(b.get(k), float) and v == float(f"{b[k]:.12g}")
                else same_costs(v, b.get(k)) for k, v in a.items()}
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [same_costs(x, y) for x, y in zip(a, b)]
    return a


def without(doc, trace_id):
    """A list/search answer without the rows of |trace_id| (and their count)."""
    out = dict(doc)
    key = "traces" if "traces" in doc else "results"
    out[key] = [t for t in doc[key] if t["trace_id"] != trace_id]
    out["count"] = len(out[key])
    return out


def test_previous_release_store_opens_intact(prev_bin, old_store, tmp_path):
    kind, opts, srv, db = old_store
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    otlp = recent(workload.make_traces(3))

    # The previous release writes and answers.
    old = start(prev_bin, tmp_path, opts)
    try:
        for proj, doc in prela_docs(base) + shared_docs(base):
            post_prela(old, doc, proj)
        post_otlp(old, otlp, "p2")
        ids = [f"old-{i}" for i in range(3)] + [t["trace_id"] for t in otlp]
        before = snapshot(old, ids)
        shared_before = old.get("/api/v1/traces/shared-old").json()
    finally:
        stop(old)
    assert before["list"]["count"] == 7 and shared_before["span_count"] == 2  # mixed, as it was

    # The new release opens it: migrates once, answers the same.
    new = start(conftest.BIN, tmp_path, opts)
    try:
        logs = new.logs()  # the data directory is always there, ClickHouse when configured
        # both stores climb 1 -> 2 -> 3 -> 4 -> 5 -> 6 -> 7 -> 8 -> 9 in one start (the
        # embedded store on to 10): one line per step
        assert logs.count("local: migrated") == 9, logs
        assert logs.count("migrated") == (9 if kind == "local" else 17), logs
        assert "from schema 1 to 2" in logs and "from schema 2 to 3" in logs
        assert "from schema 3 to 4" in logs and "from schema 4 to 5" in logs
        assert "from schema 5 to 6" in logs and "to schema 7" in logs and "to schema 8" in logs
        assert "to schema 9" in logs and "to schema 10" in logs
        if kind != "local":
            assert logs.count("clickhouse: migrated database") == CH_SCHEMA - 1, logs
        after = snapshot(new, ids)
        for key in before:
            if key.startswith(("list", "search")):
                # old_fields: `next` (the cursor) came after the previous release
                assert old_fields(without(after[key], "shared-old"),
                                  before[key]) == without(before[key], "shared-old"), key
            else:  # field by field, created_at included
                assert old_fields(after[key], before[key]) == before[key], key
        # The trace id two projects shared: one trace per project now.
        r = new.get("/api/v1/traces/shared-old")
        assert r.status_code == 409 and "(p1, p3)" in r.json()["detail"], r.text
        p1 = new.get("/api/v1/traces/shared-old", project_id="p1").json()
        p3 = new.get("/api/v1/traces/shared-old", project_id="p3").json()
        assert [s["span_id"] for s in p1["spans"]] == ["r1"] and p1["trace"]["span_count"] == 1
        assert [s["span_id"] for s in p3["spans"]] == ["r3"] and p3["trace"]["span_count"] == 1
        assert p3["trace"]["status"] == "error" and p3["trace"]["root_span_name"] == "p3 root"
        r1 = [s for s in shared_before["spans"] if s["span_id"] == "r1"][0]
        assert {k: v for k, v in p1["spans"][0].items() if k in r1} == r1
        # New spans work, with the project in the key: p9 re-uses an old trace's ids.
        fresh = recent(workload.make_traces(1))
        post_otlp(new, fresh, "p2")
        workload.check_trace(new, fresh[0])
        for proj, doc in prela_docs(base)[:1]:
            doc["spans"][0]["name"] = "p9 root"
            post_prela(new, doc, "p9")
        r = new.get("/api/v1/traces/old-0/spans", project_id="p9").json()
        assert [s["name"] for s in r["spans"]] == ["p9 root", "llm kid"]
        assert old_fields(new.get("/api/v1/traces/old-0/spans", project_id="p1").json(),
                          before["old-0/spans"]) == before["old-0/spans"]
        assert new.get("/api/v1/traces", limit=1000).json()["count"] == 10
    finally:
        stop(new)

    # Once: a second start migrates nothing and finds everything.
    again = start(conftest.BIN, tmp_path, opts)
    try:
        assert "migrated" not in again.logs()
        for tid in ids:  # old-0 is in p9 too by now
            project = before[tid]["trace"]["project_id"]
            got = again.get(f"/api/v1/traces/{tid}", project_id=project).json()
            assert old_fields(got, before[tid]) == before[tid]
        assert again.get("/api/v1/traces", limit=1000).json()["count"] == 10
    finally:
        stop(again)
    if kind == "local":
        con = sqlite3.connect(os.path.join(opts["data_dir"], "prela.db"))
        assert con.execute("PRAGMA user_version").fetchone() == (10,)
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == LOCAL_TABLES
        check_search_index(opts["data_dir"])
        con.close()
    else:
        assert sorted(srv.query(f"SELECT version FROM {db}.schema_version "
                                f"FORMAT TabSeparated").split()) == versions(2)
        tables = srv.query(f"SELECT name FROM system.tables WHERE database = '{db}' "
                           f"FORMAT TabSeparated").split()
        assert sorted(tables) == ["schema_version", "search_blocks", "search_grams",
                                  "span_events", "spans", "spans_v1", "spans_v2", "stats_marks",
                                  "stats_rollup", "trace_rows", "trace_rows_mv", "traces",
                                  "traces_v1", "traces_v2"]
        assert "(trace_id, project_id, span_id)" in srv.query(f"SHOW CREATE TABLE {db}.spans")


# The embedded store's tables in schema version 10 (span_event_text is FTS5: its shadow
# tables; span_dicts: the compression dictionaries, none until enough spans were written;
# stats_hours and stats_rollup: the stats rollups; trace_bounds: the longest trace).
# span_text is in prela-search.db.
LOCAL_TABLES = {"spans", "traces", "trace_models", "span_dicts", "span_events",
                "span_event_text", "span_event_text_config", "span_event_text_data",
                "span_event_text_idx", "stats_hours", "stats_rollup", "trace_bounds"}
# ... and of prela-search.db (local_index.c): span_text with its shadow tables, index_state.
INDEX_TABLES = {"span_text", "span_text_config", "span_text_data", "span_text_idx",
                "index_state"}


def check_search_index(data_dir):
    """prela-search.db holds its tables and has indexed every span of prela.db."""
    con = sqlite3.connect(os.path.join(data_dir, "prela.db"))
    last = con.execute("SELECT max(rowid) FROM spans").fetchone()[0]
    con.close()
    con = sqlite3.connect(os.path.join(data_dir, "prela-search.db"))
    try:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == INDEX_TABLES
        assert con.execute("PRAGMA user_version").fetchone() == (1,)
        assert con.execute("SELECT upto FROM index_state").fetchone() == (last,)
    finally:
        con.close()


def test_schema_2_local_store_migrates_to_3(prev2_bin, tmp_path):
    """The embedded store of the last schema-2 release: every answer kept, old rows
    searchable by decoded values (quotes, backslashes, Unicode case), span types summarized."""
    opts = dict(data_dir=str(tmp_path / "data"))
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    otlp = recent(workload.make_traces(3))
    docs = prela_docs(base) + shared_docs(base)
    docs[0][1]["spans"][1]["attributes"]["said"] = 'she said "été" \\ then left'
    old = start(prev2_bin, tmp_path, opts)
    try:
        for proj, doc in docs:
            post_prela(old, doc, proj)
        post_otlp(old, otlp, "p2")
        ids = [f"old-{i}" for i in range(3)] + [t["trace_id"] for t in otlp]
        before = snapshot(old, ids)
        before_shared = {p: old.get("/api/v1/traces/shared-old", project_id=p).json()
                         for p in ("p1", "p3")}
        before_tool = old.get("/api/v1/traces", span_type="tool", limit=1000).json()
        # the schema-2 search matched escaped JSON: a quote never matched
        assert old.get("/api/v1/search", query='"été"').json()["count"] == 0
    finally:
        stop(old)

    new = start(conftest.BIN, tmp_path, opts)
    try:
        logs = new.logs()
        assert logs.count("migrated") == 8 and "from schema 2 to 3" in logs, logs  # 2 -> .. -> 10
        assert "from schema 4 to 5" in logs, logs
        after = snapshot(new, ids)
        for key in before:
            assert old_fields(after[key], before[key]) == before[key], key
        for p in ("p1", "p3"):
            got = new.get("/api/v1/traces/shared-old", project_id=p).json()
            assert old_fields(got, before_shared[p]) == before_shared[p]
        assert old_fields(new.get("/api/v1/traces", span_type="tool", limit=1000).json(),
                          before_tool) == before_tool
        # search by what a person types, over the migrated rows
        hit = new.get("/api/v1/search", query='SAID "ÉTÉ" \\ THEN').json()
        assert [t["trace_id"] for t in hit["results"]] == ["old-0"], hit
        # new spans merge into a migrated trace
        for proj, doc in prela_docs(base)[:1]:
            doc["spans"] = [dict(doc["spans"][1], span_id="kid2", name="late kid",
                                 span_type="tool")]
            post_prela(new, doc, proj)
        t = new.get("/api/v1/traces/old-0", project_id="p1").json()
        assert t["trace"]["span_count"] == 3
        assert "old-0" in [x["trace_id"] for x in
                           new.get("/api/v1/traces", span_type="tool", limit=1000).json()["traces"]]
    finally:
        stop(new)

    again = start(conftest.BIN, tmp_path, opts)
    try:
        assert "migrated" not in again.logs()
        assert again.get("/api/v1/search", query="late kid").json()["count"] == 1
    finally:
        stop(again)
    con = sqlite3.connect(os.path.join(opts["data_dir"], "prela.db"))
    assert con.execute("PRAGMA user_version").fetchone() == (10,)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == LOCAL_TABLES
    check_search_index(opts["data_dir"])
    con.close()


def test_schema_3_local_store_migrates_to_4(prev3_bin, tmp_path):
    """The embedded store of the last schema-3 release: every answer kept (lists, filters,
    searches, traces, spans), the new span and trace fields readable with their unknown
    values on old rows, old models in the model index, new spans merging into old traces;
    once."""
    opts = dict(data_dir=str(tmp_path / "data"))
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    otlp = recent(workload.make_traces(3))
    docs = prela_docs(base) + shared_docs(base)
    docs[0][1]["spans"][1]["attributes"]["said"] = 'she said "été" \\ then left'
    filters = [{}, {"status": "error"}, {"span_type": "llm"}, {"project_id": "p1", "limit": 2},
               {"service_name": "svc-b"}]

    def lists(c):
        return [c.get("/api/v1/traces", **f).json() for f in filters]

    old = start(prev3_bin, tmp_path, opts)
    try:
        for _ in range(2):  # delivered twice: deduplicated by both releases
            for proj, doc in docs:
                post_prela(old, doc, proj)
        post_otlp(old, otlp, "p2")
        ids = [f"old-{i}" for i in range(3)] + [t["trace_id"] for t in otlp]
        before = snapshot(old, ids)
        lists_before = lists(old)
        quoted_before = old.get("/api/v1/search", query='SAID "ÉTÉ" \\ THEN').json()
    finally:
        stop(old)
    assert [t["trace_id"] for t in quoted_before["results"]] == ["old-0"]

    new = start(conftest.BIN, tmp_path, opts)
    try:
        logs = new.logs()
        assert logs.count("migrated") == 7 and "from schema 3 to 4" in logs, logs  # 3 -> .. -> 10
        assert "from schema 4 to 5" in logs
        after = snapshot(new, ids)
        for key in before:
            assert old_fields(after[key], before[key]) == before[key], key
        for f, a, b in zip(filters, lists(new), lists_before):
            assert old_fields(a, b) == b, f
        assert old_fields(new.get("/api/v1/search", query='SAID "ÉTÉ" \\ THEN').json(),
                          quoted_before) == quoted_before
        # new spans merge into a migrated trace
        for proj, doc in prela_docs(base)[:1]:
            doc["spans"] = [dict(doc["spans"][1], span_id="kid2", name="late kid",
                                 span_type="tool")]
            post_prela(new, doc, proj)
        t = new.get("/api/v1/traces/old-0", project_id="p1").json()
        assert t["trace"]["span_count"] == 3
        assert t["trace"]["input_tokens"] == before["old-0"]["trace"]["input_tokens"] + 7
    finally:
        stop(new)

    again = start(conftest.BIN, tmp_path, opts)
    try:
        assert "migrated" not in again.logs()
        assert again.get("/api/v1/search", query="late kid").json()["count"] == 1
    finally:
        stop(again)
    con = sqlite3.connect(os.path.join(opts["data_dir"], "prela.db"))
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (10,)
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == LOCAL_TABLES
        check_search_index(opts["data_dir"])
        # the new fields, readable; old rows hold "unknown" (-1, NULL, '')
        old_rows = con.execute(
            "SELECT s.llm_request_model, s.cache_read_tokens, s.cache_write_tokens,"
            " s.reasoning_tokens, s.cost_usd, s.cost_input_usd, s.cost_output_usd, s.cost_source,"
            " s.session_id, s.user_id, s.input_messages, s.output_messages"
            " FROM spans s JOIN traces t ON t.tid = s.tid"
            " WHERE t.trace_id IN ('old-1', 'old-2', 'shared-old')").fetchall()
        assert len(old_rows) == 6
        assert set(old_rows) == {("", -1, -1, -1, None, None, None, "", "", "", "", "")}
        traces = con.execute("SELECT trace_id, project_id, session_id, user_id, cost_usd"
                             " FROM traces WHERE trace_id LIKE 'old-%'"
                             " ORDER BY trace_id").fetchall()
        assert traces == [("old-0", "p1", "", "", None), ("old-1", "p1", "", "", None),
                          ("old-2", "p2", "", "", None)]
        # the model index holds the old spans' models, one row per (model, trace)
        models = con.execute("SELECT t.trace_id FROM trace_models m JOIN traces t"
                             " ON t.tid = m.tid WHERE m.model = 'gpt-4o'"
                             " ORDER BY t.trace_id").fetchall()
        assert models == [("old-0",), ("old-1",), ("old-2",)]
    finally:
        con.close()


@pytest.fixture(params=["clickhouse", "chdb"])
def ch_store(request, tmp_path):
    """Collector options for a ClickHouse database kept across collectors."""
    srv = request.getfixturevalue(request.param)
    db = srv.database()
    exporter = f"""
clickhouse:
  host: 127.0.0.1
  port: {srv.port}
  database: {db}
"""
    pipelines = """
traces/ch:
  receivers: [prela, otlp]
  processors: [normalize]
  exporters: [clickhouse]
"""
    return dict(data_dir=str(tmp_path / "data"), exporters_extra=exporter,
                pipelines_extra=pipelines, query_store="clickhouse"), srv, db


def test_schema_2_clickhouse_store_migrates_to_3(prev2_bin, ch_store, tmp_path):
    """A ClickHouse database of schema 2 (partial trace rows keyed by service) opens with
    schema 3: spans copied into the new key, the traces table rebuilt from them (one row per
    trace, with its span types), every answer as before, filters included; once."""
    opts, srv, db = ch_store
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    otlp = recent(workload.make_traces(3))
    # a trace split over two inserts (the root later, with the earlier start), sent twice
    split = [{"trace_id": "split-old", "service_name": "svc-kid", "spans": [
                 {"span_id": "k", "trace_id": "split-old", "parent_span_id": "r", "name": "kid",
                  "span_type": "llm", "started_at": iso(base + 50 * 10**9),
                  "ended_at": iso(base + 51 * 10**9), "status": "error",
                  "attributes": {"llm.model": "gpt-4o", "llm.input_tokens": 9}}]},
             {"trace_id": "split-old", "service_name": "svc-root", "spans": [
                 {"span_id": "r", "trace_id": "split-old", "name": "root", "span_type": "agent",
                  "started_at": iso(base + 40 * 10**9), "ended_at": iso(base + 60 * 10**9),
                  "status": "success"}]}]
    filters = [{}, {"status": "error"}, {"span_type": "llm"}, {"span_type": "tool"},
               {"service_name": "svc-root"}, {"project_id": "p1", "limit": 2},
               {"start_time": iso(base + 30 * 10**9), "end_time": iso(base + 5 * 60 * 10**9)}]

    def lists(c):
        return [c.get("/api/v1/traces", **f).json() for f in filters]

    old = start(prev2_bin, tmp_path, opts)
    try:
        for _ in range(2):
            for proj, doc in prela_docs(base) + shared_docs(base):
                post_prela(old, doc, proj)
            for doc in split:
                post_prela(old, doc, "p1")
        post_otlp(old, otlp, "p2")
        ids = [f"old-{i}" for i in range(3)] + ["split-old"] + [t["trace_id"] for t in otlp]
        before = snapshot(old, ids)
        lists_before = lists(old)
    finally:
        stop(old)
    assert before["split-old"]["trace"]["span_count"] == 2
    assert before["split-old"]["trace"]["service_name"] == "svc-root"
    assert srv.query(f"SELECT max(version) FROM {db}.schema_version").strip() == "2"

    new = start(conftest.BIN, tmp_path, opts)
    try:
        logs = new.logs()
        assert logs.count("clickhouse: migrated database") == CH_SCHEMA - 2, logs
        assert "from schema 2 to 3" in logs and "from schema 1" not in logs
        after = snapshot(new, ids)
        for key in before:
            assert old_fields(after[key], before[key]) == before[key], key
        for f, a, b in zip(filters, lists(new), lists_before):
            assert old_fields(a, b) == b, f
        assert [t["trace_id"] for t in new.get("/api/v1/traces", span_type="llm",
                                                project_id="p1").json()["traces"]] == \
            ["split-old", "old-0"]
        # new spans join a migrated trace: still one trace, summaries whole
        more = {"trace_id": "split-old", "service_name": "svc-kid", "spans": [
            {"span_id": "k2", "trace_id": "split-old", "parent_span_id": "r", "name": "kid 2",
             "span_type": "tool", "started_at": iso(base + 30 * 10**9),
             "ended_at": iso(base + 31 * 10**9), "status": "success"}]}
        post_prela(new, more, "p1")
        t = new.get("/api/v1/traces/split-old", project_id="p1").json()["trace"]
        assert t["span_count"] == 3 and t["status"] == "error"
        assert t["started_at"] == iso(base + 30 * 10**9) and t["service_name"] == "svc-root"
        tool = [x["trace_id"] for x in new.get("/api/v1/traces", span_type="tool",
                                                project_id="p1").json()["traces"]]
        assert tool == ["old-1", "split-old"], tool
    finally:
        stop(new)

    again = start(conftest.BIN, tmp_path, opts)
    try:
        assert "migrated" not in again.logs()
        assert again.get("/api/v1/traces", limit=1000).json()["count"] == \
            before["list"]["count"]
    finally:
        stop(again)
    assert sorted(srv.query(f"SELECT version FROM {db}.schema_version "
                            f"FORMAT TabSeparated").split()) == versions(2)  # + the mark
    tables = srv.query(f"SELECT name FROM system.tables WHERE database = '{db}' "
                       f"FORMAT TabSeparated").split()
    assert sorted(tables) == ["schema_version", "search_blocks", "search_grams", "span_events",
                              "spans", "spans_v2", "stats_marks", "stats_rollup", "trace_rows",
                              "trace_rows_mv", "traces",
                              "traces_v2"]
    assert "(project_id, started_ns, trace_id)" in srv.query(f"SHOW CREATE TABLE {db}.traces")
    # the rebuilt traces table: one row per trace of the spans (before the new span's insert)
    assert srv.query(f"SELECT uniqExact(project_id, trace_id) FROM {db}.traces").strip() == \
        srv.query(f"SELECT uniqExact(project_id, trace_id) FROM {db}.spans").strip()


def test_schema_3_clickhouse_store_migrates_to_4(prev3_bin, ch_store, tmp_path):
    """A ClickHouse database of schema 3 opens with schema 4 by ALTER TABLE ... ADD COLUMN (no
    copy, no table renamed): every answer as before, the new fields unknown on old spans,
    the model filter finding old traces (their models added to the traces rows), new spans
    with a session and a cost joining a migrated trace (split over inserts, redelivered)
    counted once in the trace, the session and the stats; once."""
    opts, srv, db = ch_store
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    otlp = recent(workload.make_traces(2))
    split = [{"trace_id": "split-old", "service_name": "svc-kid", "spans": [
                 {"span_id": "k", "trace_id": "split-old", "parent_span_id": "r", "name": "kid",
                  "span_type": "llm", "started_at": iso(base + 50 * 10**9),
                  "ended_at": iso(base + 51 * 10**9), "status": "error",
                  "attributes": {"llm.model": "claude-3", "llm.input_tokens": 9}}]},
             {"trace_id": "split-old", "service_name": "svc-root", "spans": [
                 {"span_id": "r", "trace_id": "split-old", "name": "root", "span_type": "agent",
                  "started_at": iso(base + 40 * 10**9), "ended_at": iso(base + 60 * 10**9),
                  "status": "success"}]}]
    filters = [{}, {"status": "error"}, {"span_type": "llm"}, {"service_name": "svc-root"},
               {"project_id": "p1", "limit": 2},
               {"start_time": iso(base + 30 * 10**9), "end_time": iso(base + 5 * 60 * 10**9)}]

    def lists(c):
        return [c.get("/api/v1/traces", **f).json() for f in filters]

    old = start(prev3_bin, tmp_path, opts)
    try:
        for _ in range(2):  # every request delivered twice
            for proj, doc in prela_docs(base):
                post_prela(old, doc, proj)
            for doc in split:
                post_prela(old, doc, "p1")
        post_otlp(old, otlp, "p2")
        ids = [f"old-{i}" for i in range(3)] + ["split-old"] + [t["trace_id"] for t in otlp]
        before = snapshot(old, ids)
        lists_before = lists(old)
    finally:
        stop(old)
    assert srv.query(f"SELECT max(version) FROM {db}.schema_version").strip() == "3"
    models = {}  # trace -> the models its spans carry, as the old release served them
    for tid in ids:
        for s in before[tid + "/spans"]["spans"]:
            if s.get("llm_model"):
                models.setdefault(s["llm_model"], set()).add(tid)
    assert models["claude-3"] == {"split-old"} and len(models) >= 2

    new = start(conftest.BIN, tmp_path, opts)
    try:
        logs = new.logs()
        assert logs.count("clickhouse: migrated database") == CH_SCHEMA - 3, logs
        assert "from schema 3 to 4" in logs and "nothing copied" in logs
        after = snapshot(new, ids)
        for key in before:
            assert old_fields(after[key], before[key]) == before[key], key
        for f, a, b in zip(filters, lists(new), lists_before):
            assert old_fields(a, b) == b, f
        # old rows: the new fields read as unknown
        t = new.get("/api/v1/traces/split-old").json()["trace"]
        assert (t["session_id"], t["user_id"], t["cost_usd"]) == (None, None, None)
        kid = [s for s in after["split-old/spans"]["spans"] if s["span_id"] == "k"][0]
        assert kid["cost_usd"] is None and kid["cache_read_tokens"] is None
        assert kid["session_id"] is None and kid["llm_model"] == "claude-3"
        # the model filter finds old traces: their models were added to the traces rows
        for model, traces in models.items():
            got = {x["trace_id"] for x in new.get("/api/v1/traces", model=model,
                                                   limit=1000).json()["traces"]}
            assert got == traces, model
        assert new.get("/api/v1/sessions").json()["sessions"] == []
        # new spans with a session and a cost join the migrated trace, twice
        more = {"trace_id": "split-old", "service_name": "svc-kid", "spans": [
            {"span_id": "k2", "trace_id": "split-old", "parent_span_id": "r", "name": "kid 2",
             "span_type": "llm", "started_at": iso(base + 30 * 10**9),
             "ended_at": iso(base + 31 * 10**9), "status": "success",
             "attributes": {"llm.model": "gpt-4o", "llm.cost.total": 0.5, "session.id": "s'1",
                            "user.id": "u1", "llm.input_tokens": 4}}]}
        for _ in range(2):
            post_prela(new, more, "p1")
        t = new.get("/api/v1/traces/split-old", project_id="p1").json()["trace"]
        assert t["span_count"] == 3 and t["status"] == "error" and t["input_tokens"] == 13
        assert (t["session_id"], t["user_id"], t["cost_usd"]) == ("s'1", "u1", 0.5)
        assert [x["trace_id"] for x in new.get("/api/v1/traces", session_id="s'1").json()[
            "traces"]] == ["split-old"]
        assert [x["trace_id"] for x in new.get("/api/v1/traces", min_cost="0.5").json()[
            "traces"]] == ["split-old"]
        sessions = new.get("/api/v1/sessions").json()["sessions"]
        assert [(s["session_id"], s["trace_count"], s["span_count"], s["cost_usd"])
                for s in sessions] == [("s'1", 1, 3, 0.5)]
        stats = new.get("/api/v1/stats", group_by="model", start_time=iso(base),
                        end_time=iso(base + HOUR)).json()["stats"]
        # the window straddles an hour (buckets of 1 h, epoch-aligned): per model over them
        spans, cost = {}, {}
        for r in stats:
            spans[r["group"]] = spans.get(r["group"], 0) + r["spans"]
            if r["cost_usd"] is not None:
                cost[r["group"]] = cost.get(r["group"], 0) + r["cost_usd"]
        assert spans["claude-3"] == 1 and spans["gpt-4o"] == 4 and cost == {"gpt-4o": 0.5}
        # search: the old spans predate the search index (scanned), the new ones are in it;
        # one answer, newest first
        assert "search index created" in logs
        newer = {"trace_id": "kid-new", "service_name": "svc-kid", "spans": [
            {"span_id": "n", "trace_id": "kid-new", "name": "kid of the index",
             "started_at": iso(base + 70 * 10**9), "ended_at": iso(base + 71 * 10**9)}]}
        post_prela(new, newer, "p1")
        found = [x["trace_id"] for x in new.get("/api/v1/search", query="kid").json()["results"]]
        listed = [x["trace_id"] for x in new.get("/api/v1/traces", limit=1000).json()["traces"]]
        assert {"kid-new", "split-old"} <= set(found), found
        assert found == [t for t in listed if t in found], (found, listed)  # list order
        assert [x["trace_id"] for x in new.get("/api/v1/search", query="KID 2").json()[
            "results"]] == ["split-old"]  # the new span of the old trace, through the index
    finally:
        stop(new)

    again = start(conftest.BIN, tmp_path, opts)
    try:
        assert "migrated" not in again.logs() and "search index created" not in again.logs()
        assert [x["trace_id"] for x in again.get("/api/v1/search", query="kid").json()[
            "results"]] == found
        assert again.get("/api/v1/traces", limit=1000).json()["count"] == \
            before["list"]["count"] + 1  # and kid-new
    finally:
        stop(again)
    assert sorted(srv.query(f"SELECT version FROM {db}.schema_version "
                            f"FORMAT TabSeparated").split()) == versions(3)  # + the mark
    tables = srv.query(f"SELECT name FROM system.tables WHERE database = '{db}' "
                       f"FORMAT TabSeparated").split()
    assert sorted(tables) == ["schema_version", "search_blocks", "search_grams", "span_events",
                              "spans", "stats_marks", "stats_rollup", "trace_rows",
                              "trace_rows_mv", "traces"]  # no copies
    cols = srv.query(f"SELECT table, name FROM system.columns WHERE database = '{db}' "
                     f"FORMAT TabSeparated")
    assert "spans\tinput_messages" in cols and "traces\tmodels" in cols


# --- schema 4 -> 5: events attached from GenAI log records (issue 13) ------------

def post_genai_logs(c, tid, sid, project, text):
    """A gen_ai.user.message log record of span (tid, sid) with |text| as its content."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    req = logs_service_pb2.ExportLogsServiceRequest()
    lr = req.resource_logs.add().scope_logs.add().log_records.add()
    lr.time_unix_nano = time.time_ns()
    lr.trace_id, lr.span_id = bytes.fromhex(tid), bytes.fromhex(sid)
    lr.event_name = "gen_ai.user.message"
    lr.body.kvlist_value.values.add(key="content").value.string_value = text
    r = requests.post(c.otlp + "/v1/logs", data=req.SerializeToString(), timeout=30,
                      headers={"Content-Type": "application/x-protobuf",
                               "X-Prela-Project-Id": project})
    assert r.status_code == 200, r.text


def write_schema_4(prev4_bin, tmp_path, opts, base):
    """The last schema-4 release writes Prela and OTLP traces (each twice) and a GenAI log
    record (which it drops); returns (ids, otlp traces, its answers)."""
    otlp = recent(workload.make_traces(2))
    old = start(prev4_bin, tmp_path, opts)
    try:
        for _ in range(2):
            for proj, doc in prela_docs(base):
                post_prela(old, doc, proj)
        post_otlp(old, otlp, "p2")
        post_genai_logs(old, otlp[0]["trace_id"], otlp[0]["spans"][1]["span_id"], "p2",
                        "dropped by schema four")
        ids = [f"old-{i}" for i in range(3)] + [t["trace_id"] for t in otlp]
        return ids, otlp, snapshot(old, ids)
    finally:
        stop(old)


def check_schema_5(new, ids, otlp, before):
    """Every answer of the schema-4 release kept; GenAI records now attach to a migrated
    span, its messages computed and searchable; the old release's record was dropped."""
    after = snapshot(new, ids)
    for key in before:
        assert old_fields(after[key], before[key]) == before[key], key
    tid, sid = otlp[0]["trace_id"], otlp[0]["spans"][1]["span_id"]
    assert new.get("/api/v1/search", query="schema four").json()["count"] == 0
    post_genai_logs(new, tid, sid, "p2", "Tell me about Pelješac bridge")
    deadline = time.time() + 20
    while True:
        spans = new.get(f"/api/v1/traces/{tid}", project_id="p2").json()["spans"]
        s = [x for x in spans if x["span_id"] == sid][0]
        if s["input_messages"]:
            break
        assert time.time() < deadline, s
        time.sleep(0.2)
    assert "gen_ai.user.message" in [e["name"] for e in s["events"]]
    assert s["input_messages"][0]["parts"][0]["content"] == "Tell me about Pelješac bridge"
    found = new.get("/api/v1/search", query="about PELJEšac").json()["results"]  # ASCII case
    assert [t["trace_id"] for t in found] == [tid]


def test_schema_4_local_store_migrates_to_5(prev4_bin, tmp_path):
    """The embedded store of the last schema-4 release opens with schema 5 (the span_events
    tables added, nothing copied): every answer as before, log records attached to old
    spans; once."""
    opts = dict(data_dir=str(tmp_path / "data"))
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    ids, otlp, before = write_schema_4(prev4_bin, tmp_path, opts, base)
    path = os.path.join(opts["data_dir"], "prela.db")
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone() == (4,)
    con.close()

    new = start(conftest.BIN, tmp_path, opts)
    try:
        logs = new.logs()
        assert logs.count("migrated") == 6 and "from schema 4 to 5" in logs, logs  # 4 -> .. -> 10
        check_schema_5(new, ids, otlp, before)
    finally:
        stop(new)
    again = start(conftest.BIN, tmp_path, opts)
    try:
        assert "migrated" not in again.logs()
        assert again.get("/api/v1/search", query="pelješac").json()["count"] == 1
    finally:
        stop(again)
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (10,)
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == LOCAL_TABLES
        check_search_index(os.path.dirname(path))
        assert con.execute("SELECT count(*) FROM span_events").fetchone() == (1,)
    finally:
        con.close()


def test_schema_4_clickhouse_store_migrates_to_5(prev4_bin, ch_store, tmp_path):
    """A ClickHouse database of schema 4 opens with schema 5 (table span_events created, no
    copy, on both dialects): every answer as before, log records attached to old spans;
    once."""
    opts, srv, db = ch_store
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    ids, otlp, before = write_schema_4(prev4_bin, tmp_path, opts, base)
    assert srv.query(f"SELECT max(version) FROM {db}.schema_version").strip() == "4"

    new = start(conftest.BIN, tmp_path, opts)
    try:
        logs = new.logs()
        assert logs.count("clickhouse: migrated database") == CH_SCHEMA - 4, logs
        assert "from schema 4 to 5" in logs and "nothing copied" in logs
        check_schema_5(new, ids, otlp, before)
    finally:
        stop(new)
    again = start(conftest.BIN, tmp_path, opts)
    try:
        assert "migrated" not in again.logs()
    finally:
        stop(again)
    assert sorted(srv.query(f"SELECT version FROM {db}.schema_version "
                            f"FORMAT TabSeparated").split()) == versions(4)  # + the mark
    tables = srv.query(f"SELECT name FROM system.tables WHERE database = '{db}' "
                       f"FORMAT TabSeparated").split()
    assert sorted(tables) == ["schema_version", "search_blocks", "search_grams", "span_events",
                              "spans", "stats_marks", "stats_rollup", "trace_rows",
                              "trace_rows_mv", "traces"]


def write_old_release(old_bin, tmp_path, opts, base):
    """The release |old_bin| writes three Prela traces and two OTLP ones; returns their ids
    and its snapshot of them."""
    otlp = recent(workload.make_traces(2))
    old = start(old_bin, tmp_path, opts)
    try:
        for proj, doc in prela_docs(base):
            post_prela(old, doc, proj)
        post_otlp(old, otlp, "p2")
        ids = [f"old-{i}" for i in range(3)] + [t["trace_id"] for t in otlp]
        return ids, snapshot(old, ids)
    finally:
        stop(old)


def stats_answers(c, window):
    """The stats of |window| for every group a rollup serves (and user), by hour and by day."""
    return {(g, i): c.get("/api/v1/stats", group_by=g, interval=i, **window).json()["stats"]
            for g in ("none", "model", "service", "span_type", "project", "user")
            for i in ("1h", "1d")}


def same_stats(got, want):
    for key in want:  # costs summed in another order: to 1e-9
        assert [dict(r, cost_usd=None) for r in got[key]] == \
            [dict(r, cost_usd=None) for r in want[key]], key
        assert [r["cost_usd"] or 0 for r in got[key]] == pytest.approx(
            [r["cost_usd"] or 0 for r in want[key]], rel=1e-9), key


def test_schema_5_local_store_migrates_to_9(prev5_bin, tmp_path):
    """The embedded store of the last schema-5 release opens with schema 9 (6: the stats
    rollup tables created, a row for every hour that holds a span, none built, no span
    rewritten; 7: the search index moved to prela-search.db, rebuilt from the spans; 8: the
    longest trace in trace_bounds; 9: trace rows without an attribute filter, found by the
    attribute filter all the same, and new traces with one): every
    answer as before, searches included; stats the same before and after the writer builds
    the old hours into rollups; once."""
    data_dir = str(tmp_path / "data")
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    ids, before = write_old_release(prev5_bin, tmp_path, dict(data_dir=data_dir), base)
    path = os.path.join(data_dir, "prela.db")
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone() == (5,)
    hours = {r[0] for r in con.execute("SELECT DISTINCT start_ns / ? FROM spans", (HOUR,))}
    con.close()
    assert len(hours) >= 2, hours

    window = dict(start_time=iso(base - 2 * HOUR), end_time=iso(time.time_ns() + HOUR))

    def stats(c):
        return stats_answers(c, window)

    def unbuilt(con):
        return con.execute("SELECT count(*) FROM stats_hours WHERE built = 0").fetchone()[0]

    # the migrated hours are quiet: the writer builds them as soon as it is idle
    new = start(conftest.BIN, tmp_path, dict(data_dir=data_dir, local_extra="rollup_quiet: 1h"))
    try:
        logs = new.logs()
        assert logs.count("migrated") == 5 and "from schema 5 to 6" in logs, logs
        assert "to schema 7" in logs and "to schema 8" in logs and "to schema 9" in logs, logs
        assert "to schema 10" in logs, logs
        after = snapshot(new, ids)
        for key in before:
            assert old_fields(after[key], before[key]) == before[key], key
        # 9: the old rows have no filter and are verified span by span
        got = new.get("/api/v1/traces", **{"attr.q": "O'Reilly old-1"}).json()
        assert [t["trace_id"] for t in got["traces"]] == ["old-1"], got
        got = new.get("/api/v1/traces", **{"attr.n": "2"}).json()
        assert [t["trace_id"] for t in got["traces"]] == ["old-2"], got
        con = sqlite3.connect(path)
        deadline = time.time() + 20
        while unbuilt(con):
            assert time.time() < deadline, "the migrated hours were not built"
            time.sleep(0.2)
        assert {r[0] for r in con.execute("SELECT hour FROM stats_hours WHERE built = 1")} == hours
        assert con.execute("SELECT count(*) FROM stats_rollup").fetchone()[0] > 0
        con.close()
        rolled = stats(new)
        assert sum(r["spans"] for r in rolled[("none", "1d")]) == 3 * 2 + 2 * 10
    finally:
        stop(new)

    # every hour written just now (an hour of quiet asked for): the same answers from the spans
    con = sqlite3.connect(path)
    con.execute("UPDATE stats_hours SET built = 0, dirty_ns = ?", (time.time_ns(),))
    con.commit()
    again = start(conftest.BIN, tmp_path, dict(data_dir=data_dir, local_extra="rollup_quiet: 1h"))
    try:
        assert "migrated" not in again.logs()
        same_stats(stats(again), rolled)
        assert unbuilt(con) == len(hours)
    finally:
        stop(again)
        con.close()
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (10,)
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == LOCAL_TABLES
        check_search_index(os.path.dirname(path))
        # 7 -> 8: the longest of the old traces (they last a few seconds each)
        longest = con.execute("SELECT longest_ns FROM trace_bounds").fetchone()[0]
        spans = con.execute("SELECT max(completed_ns - started_ns) FROM traces").fetchone()[0]
        assert 0 < longest == spans < 600 * 10**9, (longest, spans)
        # 8 -> 9: every migrated trace without a filter ("maybe" to every pair)
        assert con.execute("SELECT count(*), count(attr_bloom) FROM traces").fetchone() == (5, 0)
    finally:
        con.close()


# The status filters of trace lists: the error index answers the first three.
STATUS_FILTERS = [{"status": "error"}, {"status": "ERROR"},
                  {"status": "error", "service_name": "svc-b"}, {"status": "success"},
                  {"status": "success", "project_id": "p2"}, {"status": "unset"}]


def status_lists(c):
    return {str(f): c.get("/api/v1/traces", limit=1000, **f).json() for f in STATUS_FILTERS}


def test_schema_9_local_store_migrates_to_10(prev9_bin, tmp_path):
    """The embedded store of the last schema-9 release opens with schema 10: the index of
    every trace's status gives way to a partial index of the failed traces, which holds
    exactly them; every answer, the status filters' included, is as before; new failed
    traces enter the index; once."""
    data_dir = str(tmp_path / "data")
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    opts = dict(data_dir=data_dir)
    ids, before = write_old_release(prev9_bin, tmp_path, opts, base)
    old = start(prev9_bin, tmp_path, opts)
    try:
        before_status = status_lists(old)
    finally:
        stop(old)
    failed = [t["trace_id"] for t in before["list"]["traces"] if t["status"] == "error"]
    assert "old-1" in failed and len(failed) < len(before["list"]["traces"]), before["list"]
    assert [t["trace_id"] for t in before_status[str(STATUS_FILTERS[0])]["traces"]] == failed
    assert before_status[str(STATUS_FILTERS[3])]["count"] == \
        len(before["list"]["traces"]) - len(failed), before_status
    path = os.path.join(data_dir, "prela.db")
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone() == (9,)
    con.close()

    new = start(conftest.BIN, tmp_path, opts)
    try:
        logs = new.logs()
        assert logs.count("migrated") == 1 and "to schema 10" in logs, logs
        assert f"index of the {len(failed)} failed traces" in logs, logs
        after = snapshot(new, ids)
        for key in before:
            assert old_fields(after[key], before[key]) == before[key], key
        after_status = status_lists(new)
        for key in before_status:
            assert old_fields(after_status[key], before_status[key]) == before_status[key], key
        # a failed trace written now is listed first among the errors
        for proj, doc in prela_docs(time.time_ns() - HOUR)[1:2]:
            doc["trace_id"] = "new-err"
            for s in doc["spans"]:
                s["trace_id"] = "new-err"
            post_prela(new, doc, proj)
        got = new.get("/api/v1/traces", status="error").json()
        assert [t["trace_id"] for t in got["traces"]] == ["new-err"] + failed, got
    finally:
        stop(new)

    again = start(conftest.BIN, tmp_path, opts)
    try:
        assert "migrated" not in again.logs()
        got = again.get("/api/v1/traces", status="error", service_name="svc-b").json()
        assert [t["trace_id"] for t in got["traces"]] == ["new-err", "old-1"], got
    finally:
        stop(again)
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (10,)
        indexes = {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'traces'")}
        assert "traces_errors" in indexes and "traces_status" not in indexes, indexes
        in_index = {r[0] for r in con.execute(
            "SELECT trace_id FROM traces INDEXED BY traces_errors WHERE status = 'error'")}
        assert in_index == {"new-err", *failed}, in_index
        plan = " ".join(r[3] for r in con.execute(
            "EXPLAIN QUERY PLAN SELECT tid FROM traces WHERE status = 'error'"
            " ORDER BY started_ns DESC, trace_id DESC, project_id DESC LIMIT 10"))
        assert "traces_errors" in plan, plan
    finally:
        con.close()


def test_schema_5_clickhouse_store_migrates_to_6(prev5_bin, ch_store, tmp_path):
    """A ClickHouse database of the last schema-5 release opens with schema 6 (stats_marks and
    stats_rollup created, every stored hour marked, nothing copied) on both dialects: every
    answer as before; the builder builds every old hour, and the stats are the same read
    from the spans (before) and from the rollups (after); once."""
    opts, srv, db = ch_store
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    ids, before = write_old_release(prev5_bin, tmp_path, opts, base)
    assert srv.query(f"SELECT max(version) FROM {db}.schema_version").strip() == "5"
    hours = sorted(int(h) for h in srv.query(
        f"SELECT DISTINCT intDiv(start_ns, {HOUR}) FROM {db}.spans FORMAT TabSeparated").split())
    assert len(hours) >= 2, hours

    window = dict(start_time=iso(base - 2 * HOUR), end_time=iso(time.time_ns() + HOUR))
    settled = dict(opts, exporters_extra=opts["exporters_extra"] +
                   "  timeout: 2s\n  rollup_settle: 3s\n")
    new = start(conftest.BIN, tmp_path, settled)
    try:
        logs = new.logs()
        assert logs.count("clickhouse: migrated database") == CH_SCHEMA - 5, logs
        assert "from schema 5 to 6" in logs and "every stored hour marked" in logs
        from_spans = stats_answers(new, window)  # marked just now: not settled
        after = snapshot(new, ids)
        for key in before:
            assert old_fields(after[key], before[key]) == before[key], key
        assert sum(r["spans"] for r in from_spans[("none", "1d")]) == 3 * 2 + 2 * 10
        assert wait_rollups_built(srv, db, new) == hours
        same_stats(stats_answers(new, window), from_spans)
    finally:
        stop(new)
    again = start(conftest.BIN, tmp_path, opts)
    try:
        assert "migrated" not in again.logs()
    finally:
        stop(again)
    assert sorted(srv.query(f"SELECT version FROM {db}.schema_version "
                            f"FORMAT TabSeparated").split()) == \
        [str(v) for v in range(5, CH_SCHEMA + 1)]


def add_old_and_new(new, base, before):
    """A span more for old-0 (written by the old release: its rows now one old, one new) and a
    new trace, through |new|: both listed as their lookups give them."""
    start_ns = base + 123456000
    post_prela(new, {"trace_id": "old-0", "service_name": "svc-a", "spans": [{
        "span_id": "late", "trace_id": "old-0", "parent_span_id": "root", "name": "late",
        "span_type": "tool", "started_at": iso(start_ns - 10**9),
        "ended_at": iso(start_ns + 2 * 10**9), "status": "error"}]}, "p1")
    post_prela(new, {"trace_id": "new-0", "service_name": "svc-n", "spans": [{
        "span_id": "r", "trace_id": "new-0", "name": "new root", "span_type": "agent",
        "started_at": iso(base + HOUR), "ended_at": iso(base + HOUR + 10**9),
        "status": "success"}]}, "p1")
    listed = {t["trace_id"]: t for t in new.get("/api/v1/traces", project_id="p1",
                                                 limit=1000).json()["traces"]}
    old0 = before["list p1"]["traces"][[t["trace_id"] for t in before["list p1"][
        "traces"]].index("old-0")]
    assert listed["old-0"]["span_count"] == old0["span_count"] + 1
    assert listed["old-0"]["status"] == "error"
    assert listed["old-0"]["started_at"] == iso(start_ns - 10**9)
    assert listed["old-0"]["service_name"] == old0["service_name"]
    for tid in ("old-0", "new-0"):
        assert listed[tid] == new.get(f"/api/v1/traces/{tid}", project_id="p1").json()["trace"]
    assert listed["new-0"]["span_count"] == 1 and listed["new-0"]["service_name"] == "svc-n"


def migrate_clickhouse(old_bin, ch_store, tmp_path, old, added, check, check_again=None):
    """What every test of a ClickHouse step from schema |old| shares: a database the release
    |old_bin| wrote (write_old_release) opens with the current schema, one "migrated database"
    line a step, the first naming |added|; every answer reads as before; then the step's own
    |check(new, base, before, old_rows)| (old_rows: the traces rows before, as text); a second
    start migrates nothing (then |check_again(again, old_rows)|); one version row a step."""
    opts, srv, db = ch_store
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    ids, before = write_old_release(old_bin, tmp_path, opts, base)
    assert srv.query(f"SELECT max(version) FROM {db}.schema_version").strip() == str(old)
    old_rows = srv.query(f"SELECT count() FROM {db}.traces").strip()
    new = start(conftest.BIN, tmp_path, opts)
    try:
        logs = new.logs()
        assert logs.count("clickhouse: migrated database") == CH_SCHEMA - old, logs
        assert f"from schema {old} to {old + 1}" in logs and added in logs, logs
        after = snapshot(new, ids)
        for key in before:
            assert old_fields(after[key], before[key]) == before[key], key
        check(new, base, before, old_rows)
    finally:
        stop(new)
    again = start(conftest.BIN, tmp_path, opts)
    try:
        assert "migrated" not in again.logs()
        if check_again:
            check_again(again, old_rows)
    finally:
        stop(again)
    assert sorted(srv.query(f"SELECT version FROM {db}.schema_version "
                            f"FORMAT TabSeparated").split()) == \
        [str(v) for v in range(old, CH_SCHEMA + 1)]


def test_schema_6_clickhouse_store_migrates_to_7(prev6_bin, ch_store, tmp_path):
    """A ClickHouse database of the last schema-6 release opens with schema 7 (the traces rows'
    merge keys added in place, nothing copied) on both dialects: every answer as before, the
    old traces' list pages read from their spans (their rows have no merge keys); a span added
    to an old trace and a new trace list right; once."""
    _, srv, db = ch_store

    def check(new, base, before, old_rows):
        assert srv.query(f"SELECT merge_keys, count() FROM {db}.traces GROUP BY merge_keys"
                         f" FORMAT TabSeparated").strip() == f"0\t{old_rows}"
        add_old_and_new(new, base, before)
        assert srv.query(f"SELECT merge_keys, count() FROM {db}.traces GROUP BY merge_keys"
                         f" ORDER BY merge_keys FORMAT TabSeparated").strip() == \
            f"0\t{old_rows}\n1\t2"

    migrate_clickhouse(prev6_bin, ch_store, tmp_path, 6, "6 columns added in place", check)


def test_schema_7_clickhouse_store_migrates_to_8(prev7_bin, ch_store, tmp_path):
    """A ClickHouse database of the last schema-7 release opens with schema 8 (span_hashes
    added to traces in place, trace_rows and its view created, the old traces rows copied
    into it) on both dialects: every answer as before; the copied rows hold no hashes, so
    the old traces' list pages come from their spans; a span added to an old trace (one old
    row, one new) and a new trace list right; their new rows reach trace_rows through the
    view with their hashes; once."""
    _, srv, db = ch_store

    def check(new, base, before, old_rows):
        assert srv.query(f"SELECT count(), max(length(span_hashes)) FROM {db}.trace_rows"
                         f" FORMAT TabSeparated").split() == [old_rows, "0"]
        add_old_and_new(new, base, before)
        # the two new rows, copied by the view with a hash each
        assert srv.query(f"SELECT trace_id, length(span_hashes), merge_keys FROM {db}.trace_rows"
                         f" WHERE length(span_hashes) > 0 ORDER BY trace_id"
                         f" FORMAT TabSeparated").strip() == "new-0\t1\t1\nold-0\t1\t1"

    def check_again(again, old_rows):
        assert srv.query(f"SELECT count() FROM {db}.trace_rows").strip() == str(int(old_rows) + 2)

    migrate_clickhouse(prev7_bin, ch_store, tmp_path, 7, "1 column added in place", check,
                       check_again)


def attr_ids(c, key, value, **params):
    got = c.get("/api/v1/traces", limit=1000, **{"attr." + key: value}, **params).json()
    return [t["trace_id"] for t in got["traces"]]


def test_schema_8_clickhouse_store_migrates_to_9(prev8_bin, ch_store, tmp_path):
    """A ClickHouse database of the last schema-8 release opens with schema 9 (the traces rows'
    attribute filters added in place, nothing copied) on both dialects: every answer as
    before; the old rows hold no filter, so the attribute filter still finds the old traces
    (from their spans); a span added to an old trace is found by its own attribute through
    its new row's filter, and a new trace by its own; once."""
    _, srv, db = ch_store

    def check(new, base, before, old_rows):
        assert srv.query(f"SELECT count(), max(length(attr_bloom)) FROM {db}.traces"
                         f" FORMAT TabSeparated").split() == [old_rows, "0"]
        # old rows: "maybe", checked on the spans
        assert attr_ids(new, "q", "O'Reilly old-1") == ["old-1"]
        assert attr_ids(new, "uni", "Ünïcode\t\\") == ["old-2", "old-1", "old-0"]
        assert attr_ids(new, "q", "O'Reilly old-9") == []
        add_old_and_new(new, base, before)
        post_prela(new, {"trace_id": "old-1", "service_name": "svc-b", "spans": [{
            "span_id": "late", "trace_id": "old-1", "parent_span_id": "root", "name": "late",
            "span_type": "tool", "started_at": iso(base + 2 * HOUR),
            "ended_at": iso(base + 2 * HOUR + 10**9), "status": "success",
            "attributes": {"tool": "late hammer"}}]}, "p1")
        post_prela(new, {"trace_id": "new-1", "service_name": "svc-n", "spans": [{
            "span_id": "r", "trace_id": "new-1", "name": "new root", "span_type": "agent",
            "started_at": iso(base + HOUR), "ended_at": iso(base + HOUR + 10**9),
            "status": "success", "attributes": {"tool": "new saw", "q": "O'Reilly old-1"}}]},
            "p1")
        # the new rows carry a filter each: 16 words
        assert srv.query(f"SELECT trace_id, length(attr_bloom) FROM {db}.traces"
                         f" WHERE length(attr_bloom) > 0 ORDER BY trace_id, created_ns"
                         f" FORMAT TabSeparated").split() == \
            ["new-0", "16", "new-1", "16", "old-0", "16", "old-1", "16"]
        assert attr_ids(new, "tool", "late hammer") == ["old-1"]
        assert attr_ids(new, "tool", "new saw") == ["new-1"]
        assert attr_ids(new, "q", "O'Reilly old-1") == ["new-1", "old-1"]
        assert attr_ids(new, "tool", "hammer") == []

    def check_again(again, old_rows):
        assert attr_ids(again, "tool", "late hammer") == ["old-1"]

    migrate_clickhouse(prev8_bin, ch_store, tmp_path, 8, "1 column added in place", check,
                       check_again)
