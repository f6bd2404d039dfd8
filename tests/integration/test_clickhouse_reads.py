"""The ClickHouse query store's reads on both engines (see test_clickhouse.py): trace lookups
by parts, list and session windows, candidates widened, and the search index.
"""
import http.server
import threading
import time
import urllib.parse

import requests

from chdb_server import chdb  # noqa: F401  (fixture)
from clickhouse_helpers import engine  # noqa: F401  (fixture)
from clickhouse_helpers import (HOUR, ch_collector, iso, post_otlp, post_prela, recent_traces,
                                same, twins)
from services import clickhouse  # noqa: F401  (fixture)


def test_trace_lookup_uses_primary_key(make_collector, tmp_path, clickhouse):
    """get_trace / get_spans read a few granules, not the table (system.query_log)."""
    srv = clickhouse
    db = srv.database()
    c = ch_collector(make_collector, tmp_path, srv, db)
    traces = recent_traces(2)
    assert post_otlp(c, traces).status_code == 200
    srv.query(f"INSERT INTO {db}.spans (trace_id, span_id, started_at, start_ns) "
              f"SELECT concat('filler-', toString(number % 50000)), toString(number), "
              f"toDateTime(1790000000 + number), 0 FROM numbers(300000)")
    tid = traces[1]["trace_id"]
    assert c.trace(tid)["trace"]["span_count"] == 10
    assert c.get(f"/api/v1/traces/{tid}/spans").json()["count"] == 10
    srv.query("SYSTEM FLUSH LOGS")
    rows = srv.query(f"SELECT read_rows FROM system.query_log WHERE type = 2 AND "
                     f"query LIKE '%{tid}%' AND query LIKE '%`{db}`.spans%'").split()
    assert len(rows) >= 3, rows  # get_trace twice (trace, spans endpoint) + get_spans twice
    assert max(int(r) for r in rows) <= 3 * 8192, rows  # of 300020 rows
    # the attached events of the trace (clickhouse_events.h): by the key's prefix too
    srv.query(f"INSERT INTO {db}.span_events (project_id, trace_id, span_id, ckey, event) "
              f"SELECT 'default', concat('filler-', toString(number % 50000)), "
              f"toString(number), number, '{{}}' FROM numbers(300000)")
    assert c.get(f"/api/v1/traces/{tid}/spans").json()["count"] == 10
    srv.query("SYSTEM FLUSH LOGS")
    rows = srv.query(f"SELECT read_rows FROM system.query_log WHERE type = 2 AND "
                     f"query LIKE '%{tid}%' AND query LIKE '%`{db}`.span_events%'").split()
    assert len(rows) >= 3, rows
    assert max(int(r) for r in rows) <= 3 * 8192, rows  # of 300000 rows


class MergingProxy(http.server.ThreadingHTTPServer):
    """An HTTP proxy in front of the server |srv| that, before it forwards the first read
    naming parts of the spans table (`_part IN`), merges the spans table (OPTIMIZE ...
    FINAL): the parts the collector found a moment before are gone when it reads them."""

    def __init__(self, srv, db, merge=True):
        self.srv, self.db, self.merged, self.reads = srv, db, 0, []
        self.merge, self.sqls = merge, []  # merge=False: only relay, and record every statement
        self.deny_parts = 0  # > 0: refuse reads of system.parts (counted) as a locked-down user
        super().__init__(("127.0.0.1", 0), self.Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: headers and body are two writes; with Nagle the body waits for the
        # client's delayed ACK of the headers (40 ms on Linux) on a kept-alive connection
        disable_nagle_algorithm = True

        def log_message(self, *a):
            pass

        def relay(self, method):
            px = self.server
            n = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(n) if n else b""
            sql = body.decode(errors="replace") + urllib.parse.unquote(self.path)
            if "system.parts" in sql and px.deny_parts:
                px.deny_parts += 1
                msg = b"Code: 497, e.displayText() = DB::Exception: Not enough privileges\n"
                self.send_response(500)
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)
                return
            px.sqls.append(sql)
            if "_part IN" in sql:
                px.reads.append(sql)
                if px.merge and px.merged == 0:
                    px.srv.query(f"OPTIMIZE TABLE {px.db}.spans FINAL")
                    px.merged += 1
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "content-length", "connection")}
            r = requests.request(method, px.srv.url + self.path, data=body, headers=headers,
                                 timeout=60)
            self.send_response(r.status_code)
            for k, v in r.headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                     "content-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

        def do_POST(self):
            self.relay("POST")

        def do_GET(self):
            self.relay("GET")


def test_trace_lookups_read_only_the_traces_parts(make_collector, tmp_path, clickhouse):
    """A lookup finds the parts holding the trace and reads its columns from those only
    (`_part IN`), once: the collector summarizes those rows and serves the trace's spans
    from them. A page of spans counts the trace's spans as it finds them, instead of
    reading its summary, and reads every row of the trace too, however small the page. Its
    rows name the parts they came from: when they show every named part, no check of
    system.parts runs (clickhouse_store.c), even for a page of one span of a trace in two
    parts."""
    srv = clickhouse
    db = srv.database()
    c = ch_collector(make_collector, tmp_path, srv, db)
    traces = recent_traces(2)
    assert post_otlp(c, traces).status_code == 200
    srv.query(f"SYSTEM STOP MERGES {db}.spans")
    for k in range(5):  # five more parts, each with a granule in every trace id's range
        srv.query(f"INSERT INTO {db}.spans (trace_id, project_id, span_id, started_at, start_ns)"
                  f" SELECT lower(hex(MD5(toString(number)))), 'default', toString(number),"
                  f" toDateTime(1790000000), 0 FROM numbers({k * 2000}, 2000)")
    parts = srv.query(f"SELECT count() FROM system.parts WHERE database = '{db}' "
                      f"AND table = 'spans' AND active").strip()
    assert int(parts) >= 6, parts
    tid = traces[1]["trace_id"]
    assert c.trace(tid)["trace"]["span_count"] == 10
    assert c.get(f"/api/v1/traces/{tid}/spans").json()["count"] == 10
    srv.query("SYSTEM FLUSH LOGS")
    rows = srv.query(f"SELECT read_rows, query LIKE '%_part IN%' FROM system.query_log "
                     f"WHERE type = 2 AND query LIKE '%{tid}%' AND query LIKE '%attributes%'")
    reads = [line.split("\t") for line in rows.split("\n") if line]
    assert reads and all(flag == "1" for _, flag in reads), reads  # named parts
    assert max(int(n) for n, _ in reads) <= 256, reads  # one granule of one part, not six

    def statements(like):
        return srv.query(f"SELECT count() FROM system.query_log WHERE type = 2 AND "
                         f"query LIKE '%{tid}%' AND query LIKE '{like}'").strip()
    # one find per request (its get trace and get spans share it); the trace is read once
    # a request, raw, with no summary or page by the server; the page of spans finds the
    # parts as it counts the spans
    assert statements("SELECT DISTINCT _part%") == "1"
    assert statements("SELECT project_id, uniqExact(span_id)%") == "1"
    assert statements("SELECT trace_id, project_id, if(countIf%") == "0"
    assert statements("SELECT trace_id, span_id,% LIMIT 10001 FORMAT%") == "2"
    assert statements("SELECT trace_id, span_id,%LIMIT 1 BY%") == "0"
    checks = (f"SELECT count() FROM system.query_log WHERE type = 2 AND query LIKE"
              f" '%AND active AND name IN%' AND query LIKE '%{db}%'")
    assert srv.query(checks).strip() == "0"  # every named part gave a row
    late = recent_traces(3)[2]  # the same trace again, its spans in a second part
    for s in late["spans"]:
        s["span_id"] = s["span_id"][:-4] + "beef"
        s["parent"] = ""
    late["trace_id"] = tid
    assert post_otlp(c, [late]).status_code == 200
    page = c.get(f"/api/v1/traces/{tid}/spans", limit=1).json()
    whole = c.get(f"/api/v1/traces/{tid}/spans").json()
    assert page["total"] == whole["count"] == 20 and page["count"] == 1
    assert page["spans"] == whole["spans"][:1]
    srv.query("SYSTEM FLUSH LOGS")
    assert srv.query(checks).strip() == "0"  # the page of one read both parts' rows
    srv.query(f"SYSTEM START MERGES {db}.spans")


def test_trace_lookups_of_more_rows_than_one_read(make_collector, tmp_path, engine):
    """A trace lookup reads up to 10,000 rows of the trace's spans and summarizes them in the
    collector (clickhouse_summary.c); past that it asks the server for the summary and the
    page, as before. At the boundary, copies counted: 5,000 spans sent twice (a redelivery)
    are 10,000 rows, one span more makes 10,001. Both answers equal the embedded store's."""
    srv, dialect = engine
    db = srv.database()
    ch, lo = twins(make_collector, tmp_path, srv, db)
    t0 = (time.time_ns() - HOUR) // 1000 * 1000

    def span(k):
        d = {"span_id": f"s{k:05d}", "trace_id": "big-1", "name": f"step {k}",
             "span_type": "llm" if k % 3 else "tool", "started_at": iso(t0 + k * 1000),
             "ended_at": iso(t0 + k * 1000 + 500), "status": "error" if k == 77 else "success",
             "attributes": {"llm.model": "gpt-4o", "llm.input_tokens": k % 7,
                            "llm.output_tokens": 1}}
        if k:
            d["parent_span_id"] = "s00000"
        return d
    doc = {"trace_id": "big-1", "service_name": "svc-big", "spans": [span(k) for k in range(5000)]}
    for _ in range(2):  # the second time a redelivery: 10,000 rows, 5,000 spans
        for c in (ch, lo):
            post_prela(c, doc)
    t = same(ch, lo, "/api/v1/traces/big-1")
    assert t["trace"]["span_count"] == 5000 and t["spans_total"] == 5000
    assert t["trace"]["status"] == "error" and t["trace"]["root_span_id"] == "s00000"
    assert t["trace"]["input_tokens"] == sum(k % 7 for k in range(5000))
    assert [s["span_id"] for s in t["spans"]] == [f"s{k:05d}" for k in range(5000)]
    same(ch, lo, "/api/v1/traces/big-1/spans", limit=7, offset=4990)
    for c in (ch, lo):
        post_prela(c, {"trace_id": "big-1", "service_name": "svc-big", "spans": [span(5000)]})
    t = same(ch, lo, "/api/v1/traces/big-1")
    assert t["trace"]["span_count"] == 5001 and len(t["spans"]) == 5001
    assert t["spans"][-1]["span_id"] == "s05000"
    same(ch, lo, "/api/v1/traces/big-1/spans", limit=3, offset=4999)
    if dialect == "legacy":  # which way each lookup went (chDB keeps no query log)
        srv.query("SYSTEM FLUSH LOGS")

        def statements(like):
            return srv.query(f"SELECT count() FROM system.query_log WHERE type = 2 AND "
                             f"query LIKE '%big-1%' AND query LIKE '{like}'").strip()
        # trace by id and a page, twice: the second time the server stops each raw read at
        # max_result_rows (code 396) and the summary and pages come from it (the trace by
        # id's page of spans knows it has to at once)
        assert statements("SELECT trace_id, span_id,% LIMIT 10001 FORMAT%") == "2"
        stopped = srv.query("SELECT count() FROM system.query_log WHERE type != 1 AND "
                            "exception LIKE '%396%' AND query LIKE '%big-1%'").strip()
        assert stopped == "2", stopped
        assert statements("SELECT trace_id, project_id, if(countIf%") == "1"
        assert statements("SELECT trace_id, span_id,%LIMIT 1 BY%") == "2"


def test_trace_lookups_of_huge_spans(make_collector, tmp_path, engine):
    """A trace whose rows pass 16 MB (24 spans of 1 MB) is summarized and paged by the server:
    both engines stop the raw read at max_result_bytes (code 396; chdb_server.py applies URL
    settings as a server does), and the collector checks the answer's size too. A page of
    one span still answers one span. Both answers equal the embedded store's."""
    srv, dialect = engine
    db = srv.database()
    ch, lo = twins(make_collector, tmp_path, srv, db)
    t0 = (time.time_ns() - HOUR) // 1000 * 1000
    for r in range(3):
        spans = [{"span_id": f"h{r}{k}", "trace_id": "huge-1", "name": f"step {r}{k}",
                  "span_type": "custom", "started_at": iso(t0 + (8 * r + k) * 1000),
                  "ended_at": iso(t0 + (8 * r + k) * 1000 + 500),
                  "attributes": {"blob": f"{r}{k}" * 500_000}} for k in range(8)]
        for c in (ch, lo):
            post_prela(c, {"trace_id": "huge-1", "service_name": "svc-huge", "spans": spans})
    t = same(ch, lo, "/api/v1/traces/huge-1")
    assert t["trace"]["span_count"] == 24 and len(t["spans"]) == 24
    assert t["spans"][5]["attributes"]["blob"] == "05" * 500_000
    page = same(ch, lo, "/api/v1/traces/huge-1/spans", limit=1, offset=9)
    assert [x["span_id"] for x in page["spans"]] == ["h11"] and page["total"] == 24
    if dialect == "legacy":
        srv.query("SYSTEM FLUSH LOGS")
        failed = srv.query(f"SELECT count() FROM system.query_log WHERE type != 1 AND "
                           f"exception LIKE '%396%' AND query LIKE '%huge-1%'").strip()
        assert failed == "2", failed  # each request's raw read, stopped by the server
    assert "its answer passed the size set for the read" in ch.logs()  # on both engines


def test_trace_lookups_read_again_after_a_merge(make_collector, tmp_path, engine):
    """A merge between finding a trace's parts and reading them: the read shows none of
    the named parts, the check that they are still active fails, and the lookup reads every
    part; the answers are whole. So are they when the check cannot run."""
    srv, _ = engine
    db = srv.database()
    proxy = MergingProxy(srv, db)
    try:
        c = ch_collector(make_collector, tmp_path, srv, db, port=proxy.server_address[1])
        lo = make_collector(data_dir=str(tmp_path / "local"))
        traces = recent_traces(3)
        for t in traces:  # three inserts, three parts (at least) to merge
            for x in (c, lo):
                assert post_otlp(x, [t]).status_code == 200
        tid = traces[1]["trace_id"]
        t = same(c, lo, f"/api/v1/traces/{tid}")["trace"]
        assert t["span_count"] == 10
        assert proxy.merged == 1 and proxy.reads, proxy.reads  # merged before the first read
        spans = same(c, lo, f"/api/v1/traces/{tid}/spans", limit=4, offset=3)["spans"]
        assert len(spans) == 4
        assert len(proxy.reads) >= 2  # the later lookups named the merged part
        # a trace in two parts merged between finding them and reading them, and the
        # check of system.parts refused: every part is read, the answers whole
        srv.query(f"SYSTEM STOP MERGES {db}.spans")
        late = recent_traces(4)[3]
        for s in late["spans"]:  # (their costs: the stores add them in other orders)
            s["span_id"] = s["span_id"][:-4] + "beef"
        late["trace_id"] = traces[2]["trace_id"]
        for x in (c, lo):
            assert post_otlp(x, [late]).status_code == 200
        srv.query(f"SYSTEM START MERGES {db}.spans")
        proxy.deny_parts, proxy.merged = 1, 0  # merge again before the next read
        assert same(c, lo, f"/api/v1/traces/{late['trace_id']}/spans", limit=1)["total"] == 20
        cost = same(c, lo, f"/api/v1/traces/{late['trace_id']}")["trace"]["cost_usd"]
        # the costs of two inserts, added in another order by each store: the same to 12 digits
        # and for min_cost
        kept = same(c, lo, "/api/v1/traces", min_cost=repr(cost))["traces"]
        assert late["trace_id"] in [t["trace_id"] for t in kept]
        assert proxy.deny_parts >= 2 and proxy.merged == 1, proxy.deny_parts
    finally:
        proxy.shutdown()


def test_list_windows_are_exact(make_collector, tmp_path, engine):
    """Lists read the traces table window by window (the newest hour below the range's top
    first, then 4x wider: clickhouse_sql.c). Every page must equal the embedded store's:
    traces whose spans came in several inserts with start times on both sides of a window's
    edge (within and beyond the hour read below it), an error that came in a later insert,
    redelivered batches, equal start times paged with cursors, offsets, ranges, filters."""
    srv, _ = engine
    db = srv.database()
    ch, lo = twins(make_collector, tmp_path, srv, db)
    now = time.time_ns() // 10**9 * 10**9
    M = 60 * 10**9

    def span(tid, sid, parent, start, status="success", stype="custom"):
        d = {"span_id": sid, "trace_id": tid, "name": f"{tid} {sid}", "span_type": stype,
             "started_at": iso(start), "ended_at": iso(start + 10**9), "status": status}
        if parent:
            d["parent_span_id"] = parent
        return d

    def doc(tid, svc, *spans):
        return {"trace_id": tid, "service_name": svc, "spans": list(spans)}
    inserts = [
        # children inside the first window [now - 1h, ...), the root 5 min before its edge
        doc("edge-near", "svc-child", span("edge-near", "c1", "r", now - 55 * M)),
        doc("edge-near", "svc-root", span("edge-near", "r", None, now - 65 * M)),
        # the root 3 h before a child seen in the first window: beyond the hour read below
        doc("edge-far", "svc-child", span("edge-far", "c1", "r", now - 10 * M, stype="llm")),
        doc("edge-far", "svc-root", span("edge-far", "r", None, now - 190 * M)),
        # the error arrives in a later insert, with a later start
        doc("late-error", "svc-root", span("late-error", "r", None, now - 20 * M)),
        doc("late-error", "svc-root", span("late-error", "c1", "r", now - 2 * M, "error")),
        # an llm span only in the later insert
        doc("late-llm", "svc-root", span("late-llm", "r", None, now - 30 * M)),
        doc("late-llm", "svc-root", span("late-llm", "c1", "r", now - 25 * M, stype="llm")),
    ]
    # five traces starting at the same instant (cursor ties), and older ones, days apart
    same_start = now - 40 * M
    for k in range(5):
        inserts.append(doc(f"tie-{k}", "svc-tie", span(f"tie-{k}", "r", None, same_start)))
    for d in (1, 2, 5, 9, 20, 40):
        inserts.append(doc(f"old-{d}d", "svc-old",
                           span(f"old-{d}d", "r", None, now - d * 24 * 60 * M,
                                "error" if d % 2 else "success")))
    for _ in range(2):  # the second round is a redelivery
        for d in inserts:
            for c in (ch, lo):
                post_prela(c, d)
    everything = same(ch, lo, "/api/v1/traces", limit=1000)
    assert everything["count"] == 15
    ids = [t["trace_id"] for t in everything["traces"]]
    assert ids.index("edge-far") > ids.index("edge-near") > ids.index("tie-0")  # by true start
    got = {t["trace_id"]: t for t in everything["traces"]}
    assert got["edge-far"]["started_at"] == iso(now - 190 * M)
    assert got["edge-near"]["span_count"] == 2 and got["late-error"]["status"] == "error"
    # each limit, paged with cursors to the end: the same pages as the embedded store
    for limit in (1, 3):
        for params in ({}, {"status": "error"}, {"span_type": "llm"},
                       {"service_name": "svc-root"}, {"service_name": "svc-child"},
                       {"start_time": iso(now - 3 * 24 * 60 * M)},
                       {"end_time": iso(now - 30 * M)},
                       {"start_time": iso(now - 4 * 60 * M), "end_time": iso(now - 20 * M)},
                       # the error starts after the range's end, in a later insert
                       {"end_time": iso(now - 10 * M), "status": "error"}):
            cursor, seen = None, []
            while True:
                q = dict(params, limit=limit) | ({"cursor": cursor} if cursor else {})
                page = same(ch, lo, "/api/v1/traces", **q)
                seen += [t["trace_id"] for t in page["traces"]]
                cursor = page["next"]
                if not cursor:
                    break
            want = [t["trace_id"] for t in same(ch, lo, "/api/v1/traces", limit=1000,
                                                **params)["traces"]]
            assert seen == want and len(set(seen)) == len(seen), (limit, params)
    # the filters that need later inserts find their traces
    assert [t["trace_id"] for t in ch.get("/api/v1/traces", status="error", limit=2).json()[
        "traces"]] == ["late-error", "old-1d"]
    assert {t["trace_id"] for t in ch.get("/api/v1/traces", span_type="llm").json()[
        "traces"]} == {"late-llm", "edge-far"}
    for offset in (0, 1, 4, 5, 12, 14, 15, 30):
        same(ch, lo, "/api/v1/traces", limit=3, offset=offset)
        same(ch, lo, "/api/v1/traces", limit=2, offset=offset, status="error")


def test_list_pages_from_the_traces_rows(make_collector, tmp_path, engine):
    """A list's page is its candidates' summaries merged from all their traces rows
    (trace_rows, by trace: schema 8; read raw, merged in the collector) when the merged rows pass the window's filters and hold
    no span twice (their span hashes). Traces split over inserts (two parentless spans in two
    inserts, the session, user, costs, the models and the error each in another insert) list
    as the embedded store lists them, with no page read from the spans; so does a trace
    whose later rows lie beyond the hour the candidates read above a range's end. A trace
    whose earlier rows lie beyond the hour read below a window (its start is not the
    window's) and one whose spans came again each send the page to the spans, and list the
    same."""
    srv, _ = engine
    db = srv.database()
    proxy = MergingProxy(srv, db, merge=False)
    try:
        c = ch_collector(make_collector, tmp_path, srv, db, port=proxy.server_address[1])
        lo = make_collector(data_dir=str(tmp_path / "local"))
        now = time.time_ns() // 10**9 * 10**9
        M = 60 * 10**9

        def span(tid, sid, parent, start, status="success", **attrs):
            d = {"span_id": sid, "trace_id": tid, "name": f"{tid} {sid}", "status": status,
                 "span_type": "llm" if "llm.model" in attrs else "custom",
                 "started_at": iso(start), "ended_at": iso(start + 10**9), "attributes": attrs}
            if parent:
                d["parent_span_id"] = parent
            return d

        def post(tid, svc, *spans):
            doc = {"trace_id": tid, "service_name": svc, "spans": list(spans)}
            for x in (c, lo):
                post_prela(x, doc)
            return doc
        split = [
            post("split", "svc-a", span("split", "c1", "r1", now - 30 * M, **{
                "llm.model": "gpt-4o", "llm.cost.total": 0.25, "llm.input_tokens": 10,
                "llm.output_tokens": 4, "session.id": "s-b", "user.id": "u-z"})),
            # parentless, written before the other parentless span: the root
            post("split", "svc-b", span("split", "r2", None, now - 31 * M, **{
                "llm.model": "claude-3", "llm.cost.total": -0.125, "user.id": "u-a"})),
            post("split", "svc-c", span("split", "r1", None, now - 35 * M, "error",
                                        **{"session.id": "s-a"})),
        ]
        for k in range(4):
            post(f"plain-{k}", "svc-p", span(f"plain-{k}", "r", None, now - (40 + k) * M),
                 span(f"plain-{k}", "c", "r", now - (39 + k) * M, **{"llm.model": "gpt-4o"}))
        post("tie-a", "svc-t", span("tie-a", "r", None, now - 50 * M))
        post("tie-b", "svc-t", span("tie-b", "r", None, now - 50 * M))
        queries = [{}, {"status": "error"}, {"service_name": "svc-b"}, {"span_type": "llm"},
                   {"session_id": "s-a"}, {"user_id": "u-a"}, {"model": "claude-3"},
                   {"start_time": iso(now - 45 * M), "end_time": iso(now - 32 * M)},
                   {"limit": 2, "offset": 1}, {"limit": 3, "offset": 3}]

        def lists():
            for q in queries:
                same(c, lo, "/api/v1/traces", **q)
            cursor, seen = None, []
            while True:  # cursor pages
                page = same(c, lo, "/api/v1/traces", limit=2,
                            **({"cursor": cursor} if cursor else {}))
                seen += [t["trace_id"] for t in page["traces"]]
                cursor = page["next"]
                if not cursor:
                    return seen

        def reads():
            page = "LIMIT 1 BY project_id, trace_id, span_id) GROUP BY project_id, trace_id HAVING"
            rows = f" FROM `{db}`.trace_rows PREWHERE trace_id IN"
            n = (sum(page in q for q in proxy.sqls), sum(rows in q for q in proxy.sqls))
            assert not any("uniqExact(span_id)" in q for q in proxy.sqls)  # no check
            proxy.sqls.clear()
            return n
        t = same(c, lo, "/api/v1/traces/split")["trace"]
        assert (t["root_span_id"], t["service_name"], t["status"]) == ("r2", "svc-b", "error")
        # each row's span hashes: the server's toUInt32(sipHash64(span_id)) of its spans
        hashes = f"SELECT groupArray(h) FROM (SELECT %s AS h FROM `{db}`.%s WHERE trace_id =" \
            " 'split' ORDER BY h)"
        assert srv.query(hashes % ("arrayJoin(span_hashes)", "trace_rows")) == \
            srv.query(hashes % ("toUInt32(sipHash64(span_id))", "spans"))
        assert srv.query(f"SELECT count(), sum(length(span_hashes)) FROM `{db}`.trace_rows"
                         f" WHERE trace_id = 'split' FORMAT TabSeparated").split() == ["3", "3"]
        # (a negative cost sent is not taken: normalize)
        assert (t["session_id"], t["user_id"], t["cost_usd"]) == ("s-a", "u-a", 0.25)
        proxy.sqls.clear()
        assert lists()[:3] == ["split", "plain-0", "plain-1"]
        assert same(c, lo, "/api/v1/traces", model="gpt-4o")["count"] == 5
        spans_pages, rows_pages = reads()
        assert spans_pages == 0 and rows_pages >= len(queries), (spans_pages, rows_pages)
        # min_cost: the rows' cost bounds the candidates only; the spans give the page
        assert [t["trace_id"] for t in same(c, lo, "/api/v1/traces", min_cost="0.1")[
            "traces"]] == ["split"]
        assert reads()[0] >= 1
        # earlier rows 3 h below the first window: its merged rows start below the window
        post("far", "svc-f", span("far", "c", "r", now - 5 * M, "error"))
        post("far", "svc-f", span("far", "r", None, now - 200 * M))
        seen = lists()
        assert seen.index("far") == len(seen) - 1  # by its true start
        assert reads()[0] >= 1
        # later rows beyond the hour above a range's end: merged whole from trace_rows
        for q in ({"end_time": iso(now - 150 * M)}, {"end_time": iso(now - 150 * M), "limit": 1},
                  {"end_time": iso(now - 150 * M), "status": "error"}):
            t = same(c, lo, "/api/v1/traces", **q)["traces"]
            assert [(x["trace_id"], x["span_count"], x["status"]) for x in t] == \
                [("far", 2, "error")]
            spans_pages, rows_pages = reads()
            assert spans_pages == 0 and rows_pages >= 1, (q, spans_pages, rows_pages)
        # a span stored twice: the rows count it twice, the page comes from the spans
        for x in (c, lo):
            post_prela(x, split[0])
        assert same(c, lo, "/api/v1/traces", limit=1)["traces"][0]["span_count"] == 3
        lists()
        assert reads()[0] >= len(queries)
    finally:
        proxy.shutdown()


def test_session_windows_are_exact(make_collector, tmp_path, engine):
    """The session list reads the sessions of the newest traces rows first, then 4x wider
    windows, and keeps a window's page only when no session outside it can rank above its
    last row (clickhouse_agg.c). Every page must equal the embedded store's and the order
    computed from what was sent: a session whose one trace started three days ago and ended
    ten minutes ago (its row is outside the first windows, its last seen inside them), a trace
    whose recent insert carries no session (its session came in an older insert), a session
    of two traces weeks apart, a trace in the future, another project (and in it a trace id
    and a session id of the first, weeks older), a user; every offset and limit, time
    ranges."""
    srv, _ = engine
    db = srv.database()
    ch, lo = twins(make_collector, tmp_path, srv, db)
    now = time.time_ns() // 10**9 * 10**9
    M = 60 * 10**9

    def span(tid, sid, start, end, attrs):
        return {"span_id": sid, "trace_id": tid, "name": f"{tid} {sid}", "span_type": "agent",
                "started_at": iso(start), "ended_at": iso(end), "status": "success",
                "attributes": attrs}

    sent = []  # (project, trace, session or None, user, start, end) per span

    def post(tid, start, end, session, project="p1", user="u0", sid="r"):
        attrs = {"user.id": user} | ({"session.id": session} if session else {})
        sent.append((project, tid, session, start, end))
        for c in (ch, lo):
            post_prela(c, {"trace_id": tid, "service_name": "svc-s",
                           "spans": [span(tid, sid, start, end, attrs)]}, project)
    minutes = [1, 5, 20, 50, 70, 150, 200, 400, 700, 1000, 1500, 2500, 4000, 6000, 9000,
               12000, 15000, 20000, 25000, 30000, 35000, 40000]
    for k, m in enumerate(minutes):
        post(f"t{k:02d}", now - m * M, now - m * M + 10**9, f"s{k:02d}",
             user="u1" if k % 3 == 0 else "u0")
    post("t05b", now - 38000 * M, now - 38000 * M + 10**9, "s05")  # s05's second trace
    post("t-long", now - 3 * 24 * 60 * M, now - 10 * M, "long")  # row 3 days before its end
    post("t-split", now - 2 * 24 * 60 * M, now - 2 * 24 * 60 * M + 10**9, "split", sid="a")
    post("t-split", now - 7 * M, now - 7 * M + 10**9, None, sid="b")  # no session here
    post("t-future", now + 60 * M, now + 61 * M, "future")
    post("t-p2", now - 3 * M, now - 3 * M + 10**9, "s-p2", project="p2")
    # ids another project also has, long ago there: reads by trace id and by session id
    # alone bring them along (clickhouse_agg.c), each must stay in its own project
    post("t01", now - 30000 * M, now - 30000 * M + 10**9, "s-p2-old", project="p2")
    post("t-p2-s03", now - 33000 * M, now - 33000 * M + 10**9, "s03", project="p2")
    post("t-none", now - 2 * M, now - 2 * M + 10**9, None)  # no session at all

    # the order from what was sent: (last seen desc, session desc, project desc)
    trace_session = {}
    for project, tid, session, _, _ in sent:
        if session:
            key = (project, tid)
            trace_session[key] = min(trace_session.get(key, session), session)
    seen = {}
    for project, tid, _, start, end in sent:
        if (project, tid) in trace_session:
            k = (project, trace_session[(project, tid)])
            first, last = seen.get(k, (start, end))
            seen[k] = (min(first, start), max(last, end))

    def want(start=None, end=None, project=None):
        keys = [k for k, (f, l) in seen.items() if (start is None or l >= start)
                and (end is None or f <= end) and (project is None or k[0] == project)]
        return [k[1] for _, k in sorted(((seen[k][1], k[1], k[0]), k) for k in keys)[::-1]]
    everything = want()
    assert everything[:5] == ["future", "s00", "s-p2", "s01", "split"]
    assert everything.index("long") == 5 and everything[-1] == "s21"
    for params, expect in (({}, everything),
                           ({"start_time": iso(now - 25 * 60 * M)}, want(start=now - 25 * 60 * M)),
                           ({"end_time": iso(now - 10 * 24 * 60 * M)}, want(end=now - 10 * 24 * 60 * M)),
                           ({"start_time": iso(now - 3000 * M), "end_time": iso(now - 30 * M)},
                            want(now - 3000 * M, now - 30 * M)),
                           ({"project_id": "p1"}, want(project="p1"))):
        whole = same(ch, lo, "/api/v1/sessions", limit=1000, **params)["sessions"]
        assert [s["session_id"] for s in whole] == expect, params
        for limit in (1, 3, 7) if not params else (7,):  # (chDB serializes the reads)
            for offset in range(0, len(expect) + 2, limit):
                page = same(ch, lo, "/api/v1/sessions", limit=limit, offset=offset, **params)
                assert [s["session_id"] for s in page["sessions"]] == \
                    expect[offset:offset + limit], (params, limit, offset)
    long = {s["session_id"]: s for s in same(ch, lo, "/api/v1/sessions", limit=1000)["sessions"]}
    assert long["long"]["last_seen"] == iso(now - 10 * M)
    assert long["split"]["last_seen"] == iso(now - 7 * M + 10**9)
    assert long["s05"]["trace_count"] == 2 and long["s05"]["first_seen"] == iso(now - 38000 * M)
    users = same(ch, lo, "/api/v1/sessions", user_id="u1", limit=1000)["sessions"]
    assert [s["session_id"] for s in users] == [f"s{k:02d}" for k in range(0, len(minutes), 3)]
    # trace lists by user and by session, whose ids the other project also has
    for params in ({"user_id": "u0"}, {"session_id": "s-p2-old"}, {"session_id": "s03"},
                   {"session_id": "s03", "project_id": "p2"}):
        same(ch, lo, "/api/v1/traces", limit=1000, **params)
    got = same(ch, lo, "/api/v1/traces", session_id="s03", limit=1000)["traces"]
    assert [(t["project_id"], t["trace_id"]) for t in got] == [("p1", "t03"), ("p2", "t-p2-s03")]


def test_lists_read_a_window_not_the_table(make_collector, tmp_path, clickhouse):
    """A list of recent traces reads the newest rows of the traces index (and the page's
    spans), not every trace: 300,000 traces rows of 20 days ago are not read
    (system.query_log)."""
    srv = clickhouse
    db = srv.database()
    c = ch_collector(make_collector, tmp_path, srv, db)
    traces = recent_traces(3)
    assert post_otlp(c, traces).status_code == 200
    old = (time.time_ns() - 20 * 24 * HOUR) // 10**9
    srv.query(f"INSERT INTO {db}.traces (trace_id, project_id, started_at, started_ns,"
              f" span_types) SELECT concat('filler-', toString(number)), 'default',"
              f" toDateTime({old} + number), ({old} + number) * 1000000000, ',custom,'"
              f" FROM numbers(300000)")
    body = c.get("/api/v1/traces", limit=2).json()
    newest = sorted(traces, key=lambda t: (t["start"], t["trace_id"]), reverse=True)
    assert [t["trace_id"] for t in body["traces"]] == [t["trace_id"] for t in newest[:2]]
    assert c.get("/api/v1/traces", limit=2, span_type="llm").json()["count"] == 2
    srv.query("SYSTEM FLUSH LOGS")
    rows = srv.query(f"SELECT read_rows FROM system.query_log WHERE type = 2 AND "
                     f"query LIKE '%`{db}`.traces WHERE 1%'").split()
    assert len(rows) >= 2, rows
    assert max(int(r) for r in rows) <= 4 * 8192, rows  # of 300003 traces rows
    # an hour among them: its candidates read the rows up to an hour past its end (a
    # trace's rows to then are merged whole), not every later one
    start = old + 100000
    body = c.get("/api/v1/traces", limit=2, start_time=iso(start * 10**9),
                 end_time=iso((start + 3600) * 10**9)).json()
    assert body["count"] == 0 and "error" not in body, body  # the filler has no spans
    srv.query("SYSTEM FLUSH LOGS")
    rows = srv.query(f"SELECT read_rows FROM system.query_log WHERE type = 2 AND "
                     f"query LIKE '%`{db}`.traces WHERE 1%started_ns <= {(start + 3600) * 10**9 + HOUR}"
                     f"%'").split()
    assert len(rows) == 1 and int(rows[0]) <= 4 * 8192, rows


def test_lists_of_an_old_store_move_to_its_newest_traces(make_collector, tmp_path, clickhouse):
    """A window without candidates moves the list's windows to the newest start below it,
    found by reading the start column alone (clickhouse_store_list.c: newest_below), instead
    of widening 4x over old rows: on a store whose newest traces are three days old, above
    300,000 traces rows of ten days ago, the first page takes two windows of a few granules
    each (system.query_log), and so does the first page of sessions; the pages, filters and
    cursors are right; an empty store answers after one window and at most four such reads."""
    srv = clickhouse
    db = srv.database()
    c = ch_collector(make_collector, tmp_path, srv, db)

    def reads(where, least=1):
        """The rows each finished read matching |where| read, once at least |least| are
        logged (5 s at most): the server logs a read's end after it has answered, so a
        flush right after the collector's answer can miss the last one."""
        deadline = time.time() + 5
        while True:
            srv.query("SYSTEM FLUSH LOGS")
            got = [int(r) for r in srv.query(
                f"SELECT read_rows FROM system.query_log WHERE type = 2 AND query LIKE '{where}'"
                f" AND query NOT LIKE '%system.query_log%'").split()]
            if len(got) >= least or time.time() > deadline:
                return got
            time.sleep(0.1)
    window = f"%FROM `{db}`.traces WHERE 1%"
    newest = f"SELECT max(started_ns), count() FROM `{db}`.traces%"
    sessions = f"SELECT t_session, project_id%AS s_last FROM (%`{db}`.traces%"  # a page
    body = c.get("/api/v1/traces", limit=2).json()
    assert body["count"] == 0 and "error" not in body, body
    assert len(reads(window)) == 1 and 1 <= len(reads(newest)) <= 4
    assert c.get("/api/v1/sessions", limit=2).json()["sessions"] == []
    assert len(reads(sessions)) == 1
    now = time.time_ns() // 10**9 * 10**9
    day = 24 * HOUR
    docs = [{"trace_id": f"old-{k}", "service_name": "svc", "spans": [{
        "span_id": "r", "trace_id": f"old-{k}", "name": "root", "span_type": "custom",
        "status": "error" if k == 1 else "success", "attributes": {"session.id": f"s-{k}"},
        "started_at": iso(now - 3 * day - k * 10 * 60 * 10**9),
        "ended_at": iso(now - 3 * day - k * 10 * 60 * 10**9 + 10**9)}]} for k in range(3)]
    for d in docs:
        assert post_prela(c, d).status_code == 200
    old = (time.time_ns() - 10 * day) // 10**9
    srv.query(f"INSERT INTO {db}.traces (trace_id, project_id, started_at, started_ns,"
              f" span_types) SELECT concat('filler-', toString(number)), 'default',"
              f" toDateTime({old} + number), ({old} + number) * 1000000000, ',custom,'"
              f" FROM numbers(300000)")
    srv.query(f"SYSTEM FLUSH LOGS")
    srv.query(f"TRUNCATE TABLE system.query_log")
    page = c.get("/api/v1/traces", limit=2).json()
    assert [t["trace_id"] for t in page["traces"]] == ["old-0", "old-1"], page
    windows = reads(window, 2)
    assert len(windows) == 2 and max(windows) <= 4 * 8192, windows  # of 300,003 rows
    assert reads(newest), "no read of the newest start"
    # sessions move to them too: two windows, the second of three sessions
    got = c.get("/api/v1/sessions", limit=2).json()["sessions"]
    assert [x["session_id"] for x in got] == ["s-0", "s-1"], got
    assert len(reads(sessions, 2)) == 2
    # the last page reads on below them (the filler rows are candidates, without spans)
    rest = c.get("/api/v1/traces", limit=2, cursor=page["next"]).json()
    assert [t["trace_id"] for t in rest["traces"]] == ["old-2"] and not rest["next"], rest
    assert [t["trace_id"] for t in c.get("/api/v1/traces", status="error").json()[
        "traces"]] == ["old-1"]
    # a range that holds only the filler rows: found, listed (they have no spans)
    body = c.get("/api/v1/traces", limit=2, end_time=iso(now - 5 * day)).json()
    assert body["count"] == 0 and "error" not in body, body


def test_reads_that_name_many_traces(make_collector, tmp_path, engine):
    """Reads name the traces they read up to 1,024 of them (clickhouse_query.h), else select
    them through a subquery. A session page's span sums: a session of 1,100 traces and one of
    3 on the same page both sum every span, equal to the embedded store's, and a trace id
    shared with another project's session counts in that session only. A list page: pages of
    up to 1,000 traces at offsets that take more or fewer than 1,024 candidates, of one
    project and of every project (a trace id in two projects), equal to the embedded
    store's."""
    srv, _ = engine
    db = srv.database()
    ch, lo = twins(make_collector, tmp_path, srv, db)
    t0 = time.time_ns() // 10**9 * 10**9 - 30 * 60 * 10**9
    big = [{"trace_id": f"{k + 1:032x}", "spans": [
        dict(span_id=f"{k + 1:012x}{j:04x}", parent="", name="llm", kind=3,
             start=t0 + k * 10**6, end=t0 + k * 10**6 + 1000, status=1,
             attrs={"session.id": "s-big", "gen_ai.operation.name": "chat",
                    "gen_ai.usage.input_tokens": 1}) for j in range(2)]} for k in range(1100)]

    def doc(tid, k, session, tokens):
        return {"trace_id": tid, "service_name": "svc-s", "spans": [{
            "span_id": f"{tid}-{j}", "trace_id": tid, "name": "llm", "span_type": "llm",
            "started_at": iso(t0 + k * 10**6), "ended_at": iso(t0 + k * 10**6 + 1000),
            "status": "success", "attributes": {"session.id": session,
                                                "gen_ai.usage.input_tokens": tokens}}
            for j in range(2)]}
    for c in (ch, lo):
        assert post_otlp(c, big).status_code == 200
        for k in range(3):
            post_prela(c, doc(f"small-{k}", 2000 + k, "s-small", 5), project="default")
        post_prela(c, doc("small-0", 3000, "s-other", 7), project="p2")  # the same id in p2
    got = {(s["project_id"], s["session_id"]): s
           for s in same(ch, lo, "/api/v1/sessions", limit=10)["sessions"]}
    assert sorted(got) == [("default", "s-big"), ("default", "s-small"), ("p2", "s-other")]
    assert got[("default", "s-big")]["trace_count"] == 1100
    assert got[("default", "s-big")]["span_count"] == 2200
    assert got[("default", "s-big")]["input_tokens"] == 2200
    assert got[("default", "s-small")]["span_count"] == 6
    assert got[("default", "s-small")]["input_tokens"] == 30
    assert got[("p2", "s-other")]["span_count"] == 2
    assert got[("p2", "s-other")]["input_tokens"] == 14
    for params in ({"limit": 1000}, {"limit": 1000, "offset": 50}, {"limit": 1000, "offset": 24},
                   {"limit": 5, "offset": 101}, {"limit": 1000, "project_id": "default"},
                   {"limit": 1000, "offset": 90, "project_id": "default"},
                   {"limit": 3, "project_id": "p2"}):
        page = same(ch, lo, "/api/v1/traces", **params)
        want = min(params["limit"], 1104 - params.get("offset", 0))
        if params.get("project_id") == "p2":
            want = 1
        elif params.get("project_id"):
            want = min(params["limit"], 1103 - params.get("offset", 0))
        assert page["count"] == len(page["traces"]) == want, params
    both = [(t["project_id"], t["span_count"]) for t in same(
        ch, lo, "/api/v1/traces", limit=10)["traces"] if t["trace_id"] == "small-0"]
    assert sorted(both) == [("default", 2), ("p2", 2)]


def one_span_doc(tid, k, start, name, attrs):
    """A Prela document of trace |tid| with one llm span s<k> of 1 us from |start|."""
    return {"trace_id": tid, "service_name": "svc-long", "spans": [{
        "span_id": f"s{k}", "trace_id": tid, "name": name, "span_type": "llm",
        "started_at": iso(start), "ended_at": iso(start + 1000), "status": "success",
        "attributes": attrs}]}


def test_reads_too_long_to_name_their_traces(make_collector, tmp_path, engine):
    """A statement that would name its traces past 192 KiB (clickhouse_query.h) selects them
    through a subquery instead (18.16 refuses statements past 256 KiB): 800 traces whose ids
    are 250 bytes long, in one session, listed 500 by one project (125 KB of ids: named), 500
    by every project (ids and pairs, over 250 KB: not) and all 800, and their session's sums
    (200 KB of ids: not), all equal to the embedded store's."""
    srv, _ = engine
    db = srv.database()
    ch, lo = twins(make_collector, tmp_path, srv, db)
    t0 = time.time_ns() // 10**9 * 10**9 - 30 * 60 * 10**9
    for k in range(800):
        d = one_span_doc(f"{k:04d}-" + "x" * 245, k, t0 + k * 10**6, "llm",
                         {"session.id": "s-long", "gen_ai.usage.input_tokens": 3})
        for c in (ch, lo):
            post_prela(c, d)
    for params in ({"limit": 1000}, {"limit": 500, "project_id": "p1"}, {"limit": 500},
                   {"limit": 300, "offset": 20}):
        page = same(ch, lo, "/api/v1/traces", **params)
        assert page["count"] == min(params["limit"], 800 - params.get("offset", 0)), params
    s = same(ch, lo, "/api/v1/sessions", limit=5)["sessions"]
    assert [(x["session_id"], x["trace_count"], x["input_tokens"]) for x in s] == [
        ("s-long", 800, 2400)]



def test_reads_of_long_ids_stay_under_the_statement_limit(make_collector, tmp_path, engine):
    """Statements that name stored ids take them in chunks that fit 18.16's 256 KiB statement
    (clickhouse_query.h: pc_ch_names_fit), counted as quoted: a byte past ASCII quotes as four
    (\\xC3). 300 sessions whose ids are 256 bytes of "é" (300 KiB quoted, named twice in the
    sums), 300 traces whose ids are 250 bytes of it, found by a search (their ids and pairs
    named for the check of the text) and summed by a stats window under an hour (its traces
    named); every answer equal to the embedded store's. A session or user id past 256 bytes is
    not promoted (normalize.h), and its attribute stays as sent."""
    srv, _ = engine
    db = srv.database()
    ch, lo = twins(make_collector, tmp_path, srv, db)
    t0 = time.time_ns() // 10**9 * 10**9 - 50 * 60 * 10**9
    sessions = [f"{k:03d}" + "é" * 126 + "x" for k in range(300)]  # 256 bytes each
    assert all(len(s.encode()) == 256 for s in sessions)
    traces = [{"trace_id": f"{k + 1:032x}", "spans": [
        dict(span_id=f"{k + 1:016x}", parent="", name="llm", kind=3,
             start=t0 + k * 10**6, end=t0 + k * 10**6 + 1000, status=1,
             attrs={"session.id": sessions[k], "user.id": "u-long",
                    "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": k + 1})]}
              for k in range(300)]
    too_long = "s" * 257
    traces.append({"trace_id": f"{999:032x}", "spans": [dict(
        span_id=f"{999:016x}", parent="", name="llm", kind=3, start=t0, end=t0 + 1000,
        status=1, attrs={"session.id": too_long, "user.id": "u" * 300})]})
    for c in (ch, lo):
        assert post_otlp(c, traces).status_code == 200
    t1 = t0 + 10 * 60 * 10**9
    ids = [f"{k:03d}" + "é" * 123 + "y" for k in range(300)]  # 250 bytes each
    for k, tid in enumerate(ids):
        d = one_span_doc(tid, k, t1 + k * 10**6, "llm qzlongidword",
                         {"gen_ai.request.model": "m-long", "gen_ai.usage.input_tokens": 2})
        for c in (ch, lo):
            post_prela(c, d, project="default")
    got = same(ch, lo, "/api/v1/sessions", limit=1000)["sessions"]
    assert sorted(s["session_id"] for s in got) == sorted(sessions)
    assert sum(s["input_tokens"] for s in got) == 300 * 301 // 2
    assert all(s["span_count"] == 1 and s["trace_count"] == 1 for s in got)
    same(ch, lo, "/api/v1/sessions", user_id="u-long", limit=1000)
    lone = same(ch, lo, f"/api/v1/traces/{999:032x}")
    assert lone["trace"]["session_id"] in (None, "") and lone["trace"]["user_id"] in (None, "")
    assert lone["spans"][0]["attributes"]["session.id"] == too_long
    hits = same(ch, lo, "/api/v1/search", query="qzlongidword", limit=500)["results"]
    assert sorted(t["trace_id"] for t in hits) == sorted(ids)
    window = {"start_time": iso(t1), "end_time": iso(t1 + 30 * 60 * 10**9)}
    stats = same(ch, lo, "/api/v1/stats", group_by="model", interval="1h", **window)["stats"]
    assert sum(r["spans"] for r in stats) == 300, stats
