"""The clickhouse exporter and its query store, against both real engines: ClickHouse 18.16
(Debian's server, legacy dialect) and chDB 26.9 (modern dialect) behind chdb_server.py, the
dialect auto-detected from SELECT version() in both cases.

Every test uses a fresh database. Data goes through the real binary (Prela JSON and OTLP
receivers → normalize → clickhouse exporter) and is read back through the query API
(`store: clickhouse`). Identical semantics to the embedded store are checked by sending the
same requests to a second collector on the embedded SQLite store and comparing the answers
(created_at aside: it is ingest time). Timestamps are recent: the modern dialect's TTL
deletes rows whose started_at is older than 90 days.

This file: the schema, the same answers as the embedded store, redelivery, injection, the
server failing, compression, reads bounded and killed, and chdb_server.py applying URL
settings as a server does. test_clickhouse_reads.py has the lookups, lists, sessions and
search at the table level; test_clickhouse_llm.py the LLM fields and stats.
"""
import http.server
import re
import socket
import threading
import time
import urllib.parse

import pytest
import requests

from chdb_server import chdb  # noqa: F401  (fixture)
from clickhouse_helpers import engine  # noqa: F401  (fixture)
from clickhouse_helpers import (HOUR, ch_collector, iso, post_otlp, post_prela, recent_traces,
                                same, seed_docs, twins)
from services import Relay, clickhouse, outside_ipv4  # noqa: F401  (fixture)


def test_schema_per_dialect(make_collector, tmp_path, engine):
    srv, dialect = engine
    db = srv.database()
    c = ch_collector(make_collector, tmp_path, srv, db)
    assert f"({dialect} dialect" in c.logs()
    dt = "DateTime64(6)" if dialect == "modern" else "DateTime"
    now = "now64(6)" if dialect == "modern" else "now()"
    rows = srv.query(f"SELECT table, name, type, default_expression FROM system.columns "
                     f"WHERE database = '{db}' FORMAT TabSeparated")
    cols = {(t, n): (ty, d) for t, n, ty, d in (line.split("\t") for line in rows.splitlines())}
    seed_spans = dict(span_id="String", trace_id="String", parent_span_id="String", name="String",
                      span_type="String", service_name="String", started_at=dt, ended_at=dt,
                      duration_ms="Float64", status="String", attributes="String",
                      events="String", created_at=dt)
    seed_traces = dict(trace_id="String", service_name="String", started_at=dt, completed_at=dt,
                       duration_ms="Float64", status="String", root_span_id="String",
                       span_count="UInt32", metadata="String", created_at=dt)
    for table, want in (("spans", seed_spans), ("traces", seed_traces)):
        for name, ty in want.items():
            assert cols[(table, name)][0] == ty, (table, name, cols.get((table, name)))
        assert cols[(table, "created_at")][1] == now
    for extra in ("project_id", "kind", "status_message", "source", "trace_state", "start_ns",
                  "end_ns", "created_ns", "llm_provider", "llm_model", "input_tokens",
                  "output_tokens", "links", "resource", "scope"):
        assert ("spans", extra) in cols, extra
    for extra in ("project_id", "root_span_name", "has_root", "source", "started_ns",
                  "completed_ns", "created_ns", "input_tokens", "output_tokens", "span_types"):
        assert ("traces", extra) in cols, extra
    # schema 4 (issue 13): unknown costs are NULL, unknown token details -1
    v4_spans = dict(llm_request_model="String", cache_read_tokens="Int64",
                    cache_write_tokens="Int64", reasoning_tokens="Int64",
                    cost_usd="Nullable(Float64)", cost_input_usd="Nullable(Float64)",
                    cost_output_usd="Nullable(Float64)", cost_source="String",
                    session_id="String", user_id="String", input_messages="String",
                    output_messages="String")
    v4_traces = dict(session_id="String", user_id="String", cost_usd="Nullable(Float64)",
                     models="Array(String)")
    for table, want in (("spans", v4_spans), ("traces", v4_traces)):
        for name, ty in want.items():
            assert cols[(table, name)][0] == ty, (table, name, cols.get((table, name)))
    assert "-1" in cols[("spans", "cache_read_tokens")][1]  # 18.16: CAST(-1, 'Int64')
    spans_ddl = srv.query(f"SHOW CREATE TABLE {db}.spans")
    assert "ReplacingMergeTree" in spans_ddl and "toYYYYMM(started_at)" in spans_ddl
    assert "ORDER BY (trace_id, project_id, span_id)" in spans_ddl
    assert "index_granularity = 256" in spans_ddl
    # blocks of 4 KB on the tables read by key (clickhouse_sql.h): the modern tables' setting,
    # 18.16's profile (the server of scripts/clickhouse.sh, as README asks of an operator)
    keyed = ("spans", "trace_rows")
    for t in keyed:
        ddl = srv.query(f"SHOW CREATE TABLE {db}.{t}")
        assert ("min_compress_block_size = 4096" in ddl) == (dialect == "modern"), t
    if dialect == "legacy":
        assert srv.query("SELECT value FROM system.settings WHERE name ="
                         " 'min_compress_block_size'").strip() == "4096"
    else:  # tables of an earlier binary (the server's default) get it at start
        for t in keyed:
            srv.query(f"ALTER TABLE {db}.{t} MODIFY SETTING min_compress_block_size = 65536")
            assert "min_compress_block_size = 4096" not in srv.query(f"SHOW CREATE TABLE {db}.{t}")
        (tmp_path / "again").mkdir()
        ch_collector(make_collector, tmp_path / "again", srv, db)
        for t in keyed:
            assert "min_compress_block_size = 4096" in srv.query(f"SHOW CREATE TABLE {db}.{t}"), t
    assert ("CODEC(ZSTD(1))" in spans_ddl) == (dialect == "modern")  # 18.16 has no codecs
    traces_ddl = srv.query(f"SHOW CREATE TABLE {db}.traces")
    assert "ORDER BY (project_id, started_ns, trace_id)" in traces_ddl
    assert srv.query(f"SELECT max(version) FROM {db}.schema_version").strip() == "9"
    assert ("TTL started_at + toIntervalDay(90)" in spans_ddl) == (dialect == "modern")
    # schema 5 (issue 13): events attached from log records, keyed by span and content
    for name, ty in dict(project_id="String", trace_id="String", span_id="String",
                         ckey="Int64", time_ns="Int64", created_ns="Int64", created_at=dt,
                         event="String").items():
        assert cols[("span_events", name)][0] == ty, (name, cols.get(("span_events", name)))
    events_ddl = srv.query(f"SHOW CREATE TABLE {db}.span_events")
    assert "ReplacingMergeTree" in events_ddl and "toYYYYMM(created_at)" in events_ddl
    assert "ORDER BY (project_id, trace_id, span_id, ckey)" in events_ddl
    assert ("TTL created_at + toIntervalDay(90)" in events_ddl) == (dialect == "modern")
    # schema 6: the stats' hour rollups (clickhouse_stats.h)
    marks_ddl = srv.query(f"SHOW CREATE TABLE {db}.stats_marks")
    rollup_ddl = srv.query(f"SHOW CREATE TABLE {db}.stats_rollup")
    assert "ReplacingMergeTree(written_at)" in marks_ddl
    assert "ORDER BY (hour, trace_id)" in marks_ddl
    assert "ORDER BY (hour, kind, project_id, grp, version)" in rollup_ddl
    # schema 7: the keys that merge a trace's rows (clickhouse_sql.c)
    for name, ty in dict(first_start_ns="Int64", first_span_id="String", root_created_ns="Int64",
                         root_start_ns="Int64", cost_sum="Nullable(Float64)",
                         merge_keys="UInt8").items():
        assert cols[("traces", name)][0] == ty, (name, cols.get(("traces", name)))
    # schema 8: the span hashes, and trace_rows (by trace) filled by its view from traces
    assert cols[("traces", "span_hashes")][0] == "Array(UInt32)"
    # schema 9: the traces rows' attribute filters (attr_bloom.h)
    assert cols[("traces", "attr_bloom")][0] == "Array(UInt64)"
    rows_ddl = srv.query(f"SHOW CREATE TABLE {db}.trace_rows")
    assert "ORDER BY (trace_id, project_id)" in rows_ddl and "index_granularity = 64" in rows_ddl
    assert ("TTL started_at + toIntervalDay(90)" in rows_ddl) == (dialect == "modern")
    for name in ("span_hashes", "merge_keys", "cost_sum", "models", "span_types", "started_at"):
        assert cols[("trace_rows", name)][0] == cols[("traces", name)][0], name
    view_ddl = srv.query(f"SHOW CREATE TABLE {db}.trace_rows_mv")
    assert "MATERIALIZED VIEW" in view_ddl and "trace_rows" in view_ddl, view_ddl
    # skip indexes (modern only: 18.16 has none)
    for index in ("idx_start_ns", "idx_session", "idx_user", "idx_models"):
        assert (index in spans_ddl + traces_ddl) == (dialect == "modern"), index
    assert ("`input_messages` String CODEC(ZSTD(1))" in spans_ddl) == (dialect == "modern")


def test_same_answers_as_embedded_store(make_collector, tmp_path, engine):
    srv, _ = engine
    ch, lo = twins(make_collector, tmp_path, srv, srv.database())
    base = (time.time_ns() - 6 * HOUR) // 10**9 * 10**9
    traces = recent_traces(3)
    for c in (ch, lo):
        for proj, doc in seed_docs(base):
            post_prela(c, doc, proj)
        assert post_otlp(c, traces).status_code == 200
    body = same(ch, lo, "/api/v1/traces")
    assert body["count"] == 7
    got = {t["trace_id"]: t for t in body["traces"]}
    for t in traces:  # field by field, not only "equal to the other store"
        row = got[t["trace_id"]]
        assert row["span_count"] == 10 and row["status"] == "error" and row["source"] == "otlp"
        assert row["root_span_id"] == t["spans"][0]["span_id"] and row["root_span_name"] == "agent.run"
        assert row["input_tokens"] == sum(s["expect"]["input"] or 0 for s in t["spans"])
        assert row["started_at"] == iso(t["spans"][0]["start"])
    assert got["t-a2"]["status"] == "error" and got["t-a2"]["project_id"] == "p1"
    for params in ({"service_name": "svc-a"}, {"project_id": "p2"}, {"status": "ERROR"},
                   {"status": "pending"}, {"status": "success", "project_id": "p1"},
                   {"span_type": "llm"}, {"span_type": "retrieval"}, {"limit": 2, "offset": 1},
                   {"limit": 1000, "offset": 6}, {"service_name": "agent-service"},
                   {"start_time": iso(base + HOUR), "end_time": iso(base + 2 * HOUR + 123456000)}):
        same(ch, lo, "/api/v1/traces", **params)
    for tid in list(got) + ["nope"]:
        detail = same(ch, lo, f"/api/v1/traces/{tid}")
        same(ch, lo, f"/api/v1/traces/{tid}/spans")
    assert detail == {"detail": "Trace nope not found"}
    spans = ch.get(f"/api/v1/traces/{traces[0]['trace_id']}/spans").json()["spans"]
    llm = [s for s in spans if s["span_type"] == "llm"]
    assert len(llm) == 4 and all(s["llm_model"] == "gpt-4o-mini" for s in llm)
    assert spans[0]["attributes"]["agent.config"] == {"temperature": 0.2, "retries": 3,
                                                      "nested": {"deep": "yes"}}
    a1 = ch.get("/api/v1/traces/t-a1/spans").json()["spans"][0]
    assert a1["attributes"]["uni"] == "Ünïcode\t\\" and a1["attributes"]["query"] == "O'Reilly t-a1"
    assert a1["start_time_unix_nano"] == base + 123456000
    for q, kw in (("O'Reilly t-b1", {}), ("100%_done", {}), ("100%x", {}), ("RETRIEVAL STEP", {}),
                  ("gpt-4O-MINI", {}), ("step", {"limit": 2, "project_id": "p1"}),
                  ("Ünïcode", {}), ("'; DROP TABLE spans; --", {})):
        same(ch, lo, "/api/v1/search", query=q, **kw)
    # Unicode case folding: both stores fold the same letters (local_text.h), through
    # the ClickHouse search index as through the embedded store's
    assert [t["trace_id"] for t in lo.get("/api/v1/search", query="ünïcode").json()["results"]]
    same(ch, lo, "/api/v1/search", query="ünïcode")
    assert ch.get("/api/v1/health").json()["status"] == "healthy"


def test_split_trace_and_redelivery(make_collector, tmp_path, engine):
    srv, _ = engine
    db = srv.database()
    ch, lo = twins(make_collector, tmp_path, srv, db)
    t0 = (time.time_ns() - HOUR) // 1000 * 1000

    def span(sid, parent, start, end, status="success", **kw):
        d = {"span_id": sid, "trace_id": "split-1", "name": "step " + sid, "span_type": "custom",
             "started_at": iso(start), "ended_at": iso(end), "status": status}
        if parent:
            d["parent_span_id"] = parent
        d.update(kw)
        return d
    requests_ = [
        {"trace_id": "split-1", "service_name": "svc-child", "spans": [
            span("c1", "r", t0 + 2 * 10**9, t0 + 3 * 10**9, "error"),
            span("c2", "r", t0 + 3 * 10**9, t0 + 4 * 10**9, span_type="llm",
                 attributes={"llm.model": "gpt-4o", "llm.input_tokens": 7,
                             "llm.output_tokens": 3})]},
        {"trace_id": "split-1", "service_name": "svc-child", "spans": [
            span("c3", "r", t0 + 1 * 10**9, t0 + 2 * 10**9)]},
        {"trace_id": "split-1", "service_name": "svc-root", "spans": [
            span("r", None, t0 + 5 * 10**9, t0 + 9 * 10**9)]},
    ]
    for _ in range(2):  # the second round is a redelivery
        for doc in requests_:
            for c in (ch, lo):
                post_prela(c, doc)
    t = same(ch, lo, "/api/v1/traces/split-1")["trace"]
    assert t["span_count"] == 4 and t["status"] == "error"
    assert t["root_span_id"] == "r" and t["root_span_name"] == "step r"
    assert t["service_name"] == "svc-root"
    assert t["started_at"] == iso(t0 + 10**9) and t["completed_at"] == iso(t0 + 9 * 10**9)
    assert t["input_tokens"] == 7 and t["output_tokens"] == 3
    spans = same(ch, lo, "/api/v1/traces/split-1/spans")["spans"]
    assert [s["span_id"] for s in spans] == ["c3", "c1", "c2", "r"]
    listed = same(ch, lo, "/api/v1/traces")["traces"]
    assert [x["span_count"] for x in listed] == [4]
    same(ch, lo, "/api/v1/traces", status="error")
    same(ch, lo, "/api/v1/traces", service_name="svc-root")
    same(ch, lo, "/api/v1/traces", service_name="svc-child")
    assert srv.query(f"SELECT count() FROM (SELECT * FROM {db}.spans FINAL)").strip() == "4"


EVIL = ["x'; DROP TABLE spans; --", "a\\'b", "\\", "'", "\x01\x7f\x1b", "ü'\\n", "%_", "\\x27"]


def test_injection_is_harmless(make_collector, tmp_path, engine):
    srv, _ = engine
    db = srv.database()
    ch, lo = twins(make_collector, tmp_path, srv, db)
    t0 = time.time_ns() - HOUR
    for i, evil in enumerate(EVIL):
        tid = f"evil-{i}-{evil}"
        doc = {"trace_id": tid, "service_name": evil, "spans": [{
            "span_id": evil, "trace_id": tid, "name": evil, "span_type": "tool",
            "started_at": iso(t0 + i * 10**9), "status": "success", "attributes": {evil: evil}}]}
        for c in (ch, lo):
            post_prela(c, doc, project=f"p{i}")
    for i, evil in enumerate(EVIL):
        tid = urllib.parse.quote(f"evil-{i}-{evil}", safe="")
        t = same(ch, lo, f"/api/v1/traces/{tid}")
        assert t["trace"]["service_name"] == evil and t["spans"][0]["name"] == evil
        assert t["spans"][0]["attributes"] == {evil: evil}
        for q in (evil, evil.upper()):
            # Both stores search decoded values with Unicode case folding: exactly the spans
            # whose name or value contains q, when q has 3+ code points and no line end
            # (the trigram indexes serve it). A shorter q is a scan; ClickHouse's scan
            # searches the JSON-escaped text, ASCII-folded, so a backslash (in every
            # escape) or a non-ASCII letter in another case may answer more or less there.
            want = sorted(f"evil-{k}-{e}" for k, e in enumerate(EVIL) if q.lower() in e.lower())
            got = lo.get("/api/v1/search", query=q).json()["results"]
            assert sorted(t["trace_id"] for t in got) == want, q
            if len(q) >= 3 or ("\\" not in q and (q.isascii() or q == evil)):
                same(ch, lo, "/api/v1/search", query=q)
        same(ch, lo, "/api/v1/traces", service_name=evil)
        same(ch, lo, "/api/v1/traces", project_id=evil)
        same(ch, lo, "/api/v1/traces", status=evil)
        same(ch, lo, f"/api/v1/traces/{urllib.parse.quote(evil, safe='')}")
    assert ch.get("/api/v1/traces").json()["count"] == len(EVIL)
    assert srv.query(f"SELECT count() FROM {db}.spans").strip() == str(len(EVIL))


def test_server_down_answers_retry_then_recovers(make_collector, tmp_path, clickhouse):
    srv = clickhouse
    db = srv.database()
    c = ch_collector(make_collector, tmp_path, srv, db, timeout="2s")
    first, second = recent_traces(2)
    assert post_otlp(c, [first]).status_code == 200
    srv.run("stop")
    try:
        t = time.monotonic()
        r = post_otlp(c, [second])
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
        assert time.monotonic() - t < 2 + 3
        assert c.get("/api/v1/health").status_code == 503
    finally:
        srv.run("start")
    for _ in range(30):  # the client's retries
        r = post_otlp(c, [second])
        if r.status_code == 200:
            break
        assert r.status_code == 503, r.text
    assert r.status_code == 200, r.text
    body = c.get("/api/v1/traces").json()
    assert sorted(x["trace_id"] for x in body["traces"]) == sorted([first["trace_id"],
                                                                    second["trace_id"]])
    assert all(x["span_count"] == 10 for x in body["traces"])


def test_concurrent_requests_group_commit(make_collector, tmp_path, engine):
    """16 clients at once: every request acknowledged, every span stored once."""
    from concurrent.futures import ThreadPoolExecutor
    srv, _ = engine
    db = srv.database()
    c = ch_collector(make_collector, tmp_path, srv, db)
    batches = [recent_traces(2) for _ in range(16)]
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda t: post_otlp(c, t).status_code, batches))
    assert codes == [200] * 16
    body = c.get("/api/v1/traces", limit=1000).json()
    assert body["count"] == 32 and all(t["span_count"] == 10 for t in body["traces"])
    assert srv.query(f"SELECT count() FROM {db}.spans").strip() == "320"


@pytest.mark.parametrize("compression", ["auto", "auto-outside", "gzip", "none", "zstd"])
def test_insert_compression(make_collector, tmp_path, engine, compression):
    """Every `compression` stores the same rows. auto to a loopback host (these tests'
    127.0.0.1) sends none: compressing costs CPU on both sides and saves nothing there.
    auto to another address (auto-outside: this machine's own non-loopback address, through
    a relay to the server) asks the server: zstd on the modern engine, gzip on 18.16 (which
    refuses zstd bodies: explicit zstd there is refused with ClickHouse's own message, the
    rows kept for retry)."""
    srv, dialect = engine
    db = srv.database()
    if compression == "zstd" and dialect == "legacy":
        c = ch_collector(make_collector, tmp_path, srv, db, timeout="1s",
                         extra="  compression: zstd\n  compression_level: 3")
        r = post_otlp(c, recent_traces(1))
        assert r.status_code == 503, r.text
        assert "Unknown Content-Encoding" in c.logs() and "zstd" in c.logs()
        assert srv.query(f"SELECT count() FROM {db}.spans").strip() == "0"
        return
    relay = Relay(srv.port, outside_ipv4()) if compression == "auto-outside" else None
    where = {"host": relay.lsock.getsockname()[0], "port": relay.port} if relay else {}
    try:
        c = ch_collector(make_collector, tmp_path, srv, db,
                         extra=f"  compression: {compression.split('-')[0]}", **where)
        want = {"auto": "none", "auto-outside": "zstd" if dialect == "modern" else "gzip"}
        assert f"inserts {want.get(compression, compression)})" in c.logs()
        r = post_otlp(c, recent_traces(3))
        assert r.status_code == 200, r.text
        assert srv.query(f"SELECT count() FROM {db}.spans").strip() == "30"
        body = c.get("/api/v1/traces", limit=10).json()
        assert body["count"] == 3 and all(t["span_count"] == 10 for t in body["traces"])
    finally:
        if relay:
            relay.close()


def test_reads_are_readonly_and_bounded(make_collector, tmp_path, clickhouse):
    """Every query API read runs with readonly=1 and max_execution_time = query_timeout
    (system.query_log records each query's settings)."""
    srv = clickhouse
    db = srv.database()
    c = ch_collector(make_collector, tmp_path, srv, db, extra="  query_timeout: 7s")
    traces = recent_traces(1)
    tid = traces[0]["trace_id"]
    assert post_otlp(c, traces).status_code == 200
    assert c.trace(tid)["trace"]["span_count"] == 10
    assert c.get("/api/v1/traces", service_name=tid).json()["count"] == 0
    assert c.get("/api/v1/search", query=tid).json()["count"] == 0
    deadline = time.time() + 10  # a query's log entry may trail its answer
    while True:
        srv.query("SYSTEM FLUSH LOGS")
        rows = srv.query(
            f"SELECT query, Settings.Values[indexOf(Settings.Names, 'readonly')],"
            f" Settings.Values[indexOf(Settings.Names, 'max_execution_time')] FROM system.query_log"
            f" WHERE type = 2 AND query LIKE '%{tid}%' FORMAT TabSeparated").splitlines()
        reads = [r.split("\t") for r in rows if r.startswith("SELECT")]
        if len(reads) >= 4 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert len(reads) >= 4, rows  # trace + spans, list, search
    assert all(r[-2:] == ["1", "7"] for r in reads), reads
    # ... while inserts are not read-only: a span sent after the reads is stored.
    more = recent_traces(1)
    assert post_otlp(c, more).status_code == 200
    assert c.trace(more[0]["trace_id"])["trace"]["span_count"] == 10


class HangingClickHouse(http.server.ThreadingHTTPServer):
    """A stand-in ClickHouse (18.16 by its version) that answers the collector's setup,
    holds every query API read without answering until a KILL QUERY names its query_id (or
    20 s pass), and records the query_id of each read and each KILL."""
    daemon_threads = True

    def __init__(self, refuse_memory=False):
        super().__init__(("127.0.0.1", 0), self.Handler)
        self.reads, self.kills, self.lock = [], [], threading.Lock()
        self.killed = {}
        self.refuse_memory = refuse_memory  # reads fail at once, as past max_memory_usage

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            srv = self.server
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            params = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            sql = (params.get("query", [""])[0] + body.decode("latin-1")).strip()
            answer = b""
            if self.headers.get("Content-Encoding"):
                return self.reply(400, b"Code: 89, e.displayText() = Unknown Content-Encoding",
                                  code=89)
            if sql.startswith("SELECT version()"):
                answer = b"18.16.1\n"
            elif sql.startswith("SELECT name FROM system.tables"):
                answer = (b"spans\ntraces\nschema_version\nspan_events\nsearch_grams\nsearch_blocks\n"
                          b"stats_marks\nstats_rollup\n")
            elif sql.startswith("SELECT max(version)"):
                answer = b"9\n"  # the current schema: nothing to migrate
            elif "FROM `prela_fake`.schema_version" in sql:
                answer = b"0\n"  # no search index mark: every span is indexed
            elif sql == "SELECT 1":
                answer = b"1\n"
            elif sql.startswith("KILL QUERY"):
                qid = re.search(r"query_id = '([^']*)'", sql).group(1)
                with srv.lock:
                    srv.kills.append(qid)
                    srv.killed.setdefault(qid, threading.Event()).set()
            elif sql.startswith("SELECT") and srv.refuse_memory:
                return self.reply(500, b"Code: 241, e.displayText() = DB::Exception: Memory limit"
                                  b" (for query) exceeded: would use 1.91 GiB", code=241)
            elif sql.startswith("SELECT"):  # a read: held until killed
                qid = params["query_id"][0]
                with srv.lock:
                    srv.reads.append(qid)
                    ev = srv.killed.setdefault(qid, threading.Event())
                ev.wait(20)
                return self.reply(500, b"Code: 394, e.displayText() = Query was cancelled",
                                  code=394)
            self.reply(200, answer)

        def reply(self, status, body, code=0):
            try:
                self.send_response(status)
                if code:
                    self.send_header("X-ClickHouse-Exception-Code", str(code))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the collector left


def test_abandoned_reads_are_killed(make_collector, tmp_path):
    """A read the server does not answer within query_timeout (+1 s of grace) is abandoned
    by the collector (503) and stopped on the server: KILL QUERY names its query_id, which
    is the collector's own ("prela-<nonce>-<n>", unique per read)."""
    srv = HangingClickHouse()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        srv.port = srv.server_address[1]
        c = ch_collector(make_collector, tmp_path, srv, "prela_fake",
                         extra="  query_timeout: 1s")
        t = time.monotonic()
        r = c.get("/api/v1/traces", limit=5)
        took = time.monotonic() - t
        assert r.status_code == 503 and "query_timeout" in r.json()["detail"], r.text
        assert took < 6, took
        r = c.get("/api/v1/traces/some-trace")
        assert r.status_code == 503, r.text
        deadline = time.time() + 5
        while len(srv.kills) < 2 and time.time() < deadline:
            time.sleep(0.05)
        with srv.lock:
            reads, kills = list(srv.reads), list(srv.kills)
        assert len(reads) == 2 and len(set(reads)) == 2, reads
        assert all(re.fullmatch(r"prela-[0-9a-f]{16}-[0-9]+", q) for q in reads), reads
        assert kills == reads, (kills, reads)
    finally:
        srv.shutdown()
        srv.server_close()


def test_reads_whose_client_hung_up_are_killed(make_collector, tmp_path):
    """A read whose API client closes its connection is stopped at once, not at
    query_timeout: the store notices the closed socket while it waits (about once a
    second), stops the transfer and sends KILL QUERY for the read's query_id; later reads
    are served as before."""
    srv = HangingClickHouse()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        srv.port = srv.server_address[1]
        c = ch_collector(make_collector, tmp_path, srv, "prela_fake",
                         extra="  query_timeout: 30s")
        u = urllib.parse.urlparse(c.query)
        for path in ("/api/v1/traces?limit=5", "/api/v1/stats?group_by=service&interval=1d"):
            n = len(srv.reads)
            s = socket.create_connection((u.hostname, u.port))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            deadline = time.time() + 5
            while len(srv.reads) == n and time.time() < deadline:  # the read reached the server
                time.sleep(0.02)
            assert len(srv.reads) == n + 1, srv.reads
            t = time.monotonic()
            s.close()  # the client hangs up while the read waits
            deadline = time.time() + 5
            while len(srv.kills) < n + 1 and time.time() < deadline:
                time.sleep(0.02)
            took = time.monotonic() - t
            with srv.lock:
                reads, kills = list(srv.reads), list(srv.kills)
            assert kills == reads, (path, kills, reads)
            assert took < 3, (path, took)  # not query_timeout (30 s)
        assert "the API client closed its connection; read stopped" in c.logs(), c.logs()
    finally:
        srv.shutdown()
        srv.server_close()


def test_reads_past_the_memory_limit_are_503_naming_it(make_collector, tmp_path):
    """A read the server refuses at its memory limit for one query (code 241: a 30-day stats
    read over 10M spans did on the tests' 2 GB server) is a 503 that says so and how to
    narrow it, without Retry-After (the same request would fail again), not a 500."""
    srv = HangingClickHouse(refuse_memory=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        srv.port = srv.server_address[1]
        c = ch_collector(make_collector, tmp_path, srv, "prela_fake")
        for path, params in (("/api/v1/stats", {"group_by": "service", "interval": "1d"}),
                             ("/api/v1/sessions", {}), ("/api/v1/traces", {"limit": 5})):
            r = c.get(path, **params)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert "more memory than the store allows" in r.json()["detail"], r.text
            assert "Retry-After" not in r.headers, r.headers
    finally:
        srv.shutdown()
        srv.server_close()


def test_chdb_server_applies_url_settings(chdb):
    """The modern engine's stand-in treats URL parameters as a server does, so the modern
    dialect's reads run under the limits the collector sets: each setting holds for its own
    statement only, readonly=1 refuses a write (403, code 164), max_execution_time stops a
    long statement (code 159), and KILL QUERY by the query_id given in the URL stops it
    (code 394), leaving nothing in system.processes."""
    url = chdb.url
    long_sql = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3"

    def post(sql, **params):
        return requests.post(url, params=params, data=sql.encode(), timeout=60)

    r = post("SELECT number FROM numbers(1000)", max_result_rows=10, result_overflow_mode="throw")
    assert r.status_code == 500 and r.text.startswith("Code: 396."), r.text
    assert r.headers["X-ClickHouse-Exception-Code"] == "396"
    r = post("SELECT number FROM numbers(1000)")  # the settings went with their statement
    assert r.status_code == 200 and len(r.text.splitlines()) == 1000, r.text[:200]
    r = post("SELECT getSetting('max_block_size'), getSetting('result_overflow_mode')",
             max_block_size=1234, result_overflow_mode="break")
    assert r.text == "1234\tbreak\n", r.text
    r = post("SELECT getSetting('max_block_size') = 1234, getSetting('result_overflow_mode')")
    assert r.text == "0\tthrow\n", r.text  # both back to the engine's defaults
    r = post("SELECT 1", bogus_setting=1)
    assert r.status_code == 500 and r.text.startswith("Code: 115."), r.text

    db = chdb.database()
    assert post(f"CREATE DATABASE {db}", readonly=1).status_code == 403
    r = post(f"CREATE TABLE {db}.t (x UInt8) ENGINE = Memory", readonly="1")
    assert r.status_code == 403 and "Code: 164." in r.text, r.text
    assert post("SELECT 1", readonly=1).text == "1\n"
    assert post(f"SELECT count() FROM system.databases WHERE name = '{db}'").text == "0\n"

    t = time.monotonic()
    r = post(long_sql, max_execution_time=1)
    assert r.status_code == 500 and r.text.startswith("Code: 159."), r.text
    assert time.monotonic() - t < 5

    answers = []
    th = threading.Thread(target=lambda: answers.append(
        post(long_sql, query_id="t-kill-1", max_execution_time=60)))
    t = time.monotonic()
    th.start()
    running = "SELECT count() FROM system.processes WHERE query LIKE '%sipHash64(number)%'" \
              " AND query NOT LIKE '%system.processes%'"
    while post(running).text != "1\n":
        assert time.monotonic() - t < 10, "the statement never started"
        time.sleep(0.05)
    r = post("KILL QUERY WHERE query_id = 't-kill-1' ASYNC FORMAT TabSeparated")
    assert r.status_code == 200 and "t-kill-1" in r.text, r.text
    th.join(10)
    assert answers and answers[0].status_code == 500, answers
    assert answers[0].text.startswith("Code: 394."), answers[0].text
    assert time.monotonic() - t < 10
    assert post(running).text == "0\n"
