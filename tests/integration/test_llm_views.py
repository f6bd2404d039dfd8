"""Issue 13's views through the query API, on every store: the LLM fields of spans and
traces (request model, cache and reasoning tokens, cost and where it came from, session,
user), the trace filters session_id / user_id / model / min_cost / attr.<key>, sessions
(GET /api/v1/sessions, /api/v1/sessions/{id}), aggregates (GET /api/v1/stats) and models
(GET /api/v1/models).

One workload of OTLP/HTTP spans (GenAI attributes, two projects, a trace split over two
requests, a request delivered twice, an unended span, an unpriced model, a cost the client
sent) goes to a collector on the embedded store and, for each ClickHouse engine (18.16,
legacy dialect; chDB 26, modern), to a collector on that engine. Every answer is checked
against figures this file computes from what it sent (counts, sums, nearest-rank latency
percentiles), and the ClickHouse answers must equal the embedded store's, field for field
(created_at aside: it is ingest time; sums of costs to 12 significant digits, since float
addition depends on the order the terms arrive in).
"""
import math
import time

import pytest
import requests

import workload

from chdb_server import chdb  # noqa: F401  (fixture)
from services import clickhouse  # noqa: F401  (fixture)
from clickhouse_helpers import ch_collector, latency_ms, wait_rollups_built

HOUR = 3600 * 10**9
MS = 10**6
# Recent, hour-aligned: the modern dialect's TTL drops rows older than 90 days.
BASE = (time.time_ns() // HOUR - 48) * HOUR
PRICE_4O_MINI = (0.15, 0.60, 0.075)  # prices.tsv: input, output, cache read per 1M tokens


def iso(ns):
    """The API's time text (microseconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns // 1000 % 10**6:06d}Z"


def span(trace, sid, name, start_ms, dur_ms, parent="", error=False, **attrs):
    """One span of the workload: times in ms after BASE; dur_ms None = not ended."""
    return dict(trace=trace, sid=sid, parent=parent, name=name, start=BASE + start_ms * MS,
                end=None if dur_ms is None else BASE + (start_ms + dur_ms) * MS, error=error,
                attrs=attrs)


def llm(model, inp, out, **more):
    a = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": model,
         "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out}
    a.update(more)
    return a


T1, T2, T3, T4 = ("a1" * 16, "b2" * 16, "c3" * 16, "d4" * 16)
CONV1 = {"gen_ai.conversation.id": "conv-1", "user.id": "alice"}
# (project, service, spans) per request, in send order. T1 is split over two requests; the
# request of T2 is sent twice (a redelivery).
REQUESTS = [
    ("p1", "chat-app", [
        span(T1, "1000000000000001", "invoke_agent helper", 10 * 60_000, 4000,
             **{"gen_ai.operation.name": "invoke_agent"}, **CONV1),
        span(T1, "1000000000000002", "chat gpt-4o-mini", 10 * 60_000 + 100, 1200,
             parent="1000000000000001", **CONV1,
             **llm("gpt-4o-mini", 1000, 500, **{"gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                                               "gen_ai.usage.cache_read_input_tokens": 200})),
    ]),
    ("p1", "chat-app", [
        span(T1, "1000000000000003", "execute_tool lookup", 10 * 60_000 + 1500, 300,
             parent="1000000000000001", **{"gen_ai.operation.name": "execute_tool",
                                           "gen_ai.tool.name": "lookup", "retry": 3}, **CONV1),
    ]),
    ("p1", "chat-app", [
        span(T2, "2000000000000001", "chat gpt-4o", 70 * 60_000, 2500, error=True, **CONV1,
             **llm("gpt-4o", 300, 0, **{"gen_ai.usage.cost": 0.25})),
    ]),
    ("p1", "chat-app", [
        span(T2, "2000000000000001", "chat gpt-4o", 70 * 60_000, 2500, error=True, **CONV1,
             **llm("gpt-4o", 300, 0, **{"gen_ai.usage.cost": 0.25})),
    ]),
    ("p2", "rag-svc", [
        span(T3, "3000000000000001", "pipeline", 130 * 60_000, 900,
             **{"session.id": "conv-2", "user.id": "bob", "note": 'say "hi" \\ <b>'}),
        span(T3, "3000000000000002", "embeddings acme", 130 * 60_000 + 10, 40, parent="3000000000000001",
             **{"session.id": "conv-2", "user.id": "bob", "gen_ai.operation.name": "embeddings",
                "gen_ai.system": "acme", "gen_ai.request.model": "acme-embed-unknown-1",
                "gen_ai.usage.input_tokens": 64}),
        span(T3, "3000000000000003", "chat acme", 130 * 60_000 + 100, None, parent="3000000000000001",
             **{"session.id": "conv-2", "user.id": "bob"},
             **llm("acme-unknown-1", 10, 20, **{"gen_ai.system": "acme"})),
    ]),
    ("p1", "batch", [
        span(T4, "4000000000000001", "nightly", 150 * 60_000, 50),
    ]),
]


def send(c, project, service, spans, key=None):
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": [{
            "traceId": s["trace"], "spanId": s["sid"], "parentSpanId": s["parent"], "name": s["name"],
            "kind": 3 if "gen_ai.usage.input_tokens" in s["attrs"] else 1,
            "startTimeUnixNano": str(s["start"]), "endTimeUnixNano": str(s["end"] or 0),
            "status": {"code": 2, "message": "boom"} if s["error"] else {"code": 1},
            "attributes": [{"key": k, "value": workload._jany(v)} for k, v in s["attrs"].items()],
        } for s in spans]}]}]}
    headers = {"X-Prela-Project-Id": project}
    if key:
        headers["X-API-Key"] = key
    r = requests.post(c.otlp + "/v1/traces", json=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def load(c):
    for project, service, spans in REQUESTS:
        send(c, project, service, spans)
    deadline = time.time() + 20
    while True:  # every span readable (the ClickHouse exporter writes in the background)
        got = [get(c, f"/api/v1/traces/{t}", project_id=p)["trace"]["span_count"]
               if c.get(f"/api/v1/traces/{t}", project_id=p).status_code == 200 else 0
               for t, p in ((T1, "p1"), (T2, "p1"), (T3, "p2"), (T4, "p1"))]
        if got == [3, 1, 3, 1]:
            return
        assert time.time() < deadline, f"spans not all stored: {got}\n{c.logs()}"
        time.sleep(0.2)


def get(c, path, **params):
    r = c.get(path, **params)
    assert r.status_code == 200, f"{path} {params}: {r.status_code} {r.text}"
    return r.json()


def sent_spans():
    """Every distinct span sent, with its project and service (a redelivery counted once)."""
    seen = {}
    for project, service, spans in REQUESTS:
        for s in spans:
            seen[(project, s["trace"], s["sid"])] = dict(s, project=project, service=service)
    return list(seen.values())


def nearest_rank(values, p):
    v = sorted(values)
    return v[math.ceil(p * len(v)) - 1] if v else None


def spans_by_id(c):
    out = {}
    for t, p in ((T1, "p1"), (T2, "p1"), (T3, "p2"), (T4, "p1")):
        for s in get(c, f"/api/v1/traces/{t}", project_id=p)["spans"]:
            out[s["span_id"]] = s
    return out


def expected_cost_t1():
    inp, out, cache = PRICE_4O_MINI
    return ((1000 - 200) * inp + 200 * cache + 500 * out) / 1e6


# ------------------------------------------------------------------ the checks --

def check_spans(c):
    s = spans_by_id(c)
    chat = s["1000000000000002"]
    assert chat["llm_model"] == "gpt-4o-mini-2024-07-18"
    assert chat["llm_request_model"] == "gpt-4o-mini"
    assert (chat["input_tokens"], chat["output_tokens"], chat["cache_read_tokens"]) == (1000, 500, 200)
    assert chat["cache_write_tokens"] is None and chat["reasoning_tokens"] is None
    assert chat["cost_source"] == "table"
    assert chat["cost_usd"] == pytest.approx(expected_cost_t1(), rel=1e-9)
    assert chat["cost_input_usd"] + chat["cost_output_usd"] == pytest.approx(chat["cost_usd"])
    assert (chat["session_id"], chat["user_id"]) == ("conv-1", "alice")
    sent = s["2000000000000001"]
    assert (sent["cost_source"], sent["cost_usd"]) == ("sent", 0.25)
    agent = s["1000000000000001"]
    assert agent["span_type"] == "agent" and agent["cost_usd"] is None and agent["cost_source"] is None
    unpriced = s["3000000000000003"]
    assert unpriced["cost_usd"] is None and unpriced["llm_model"] == "acme-unknown-1"
    assert s["4000000000000001"]["session_id"] is None and s["4000000000000001"]["user_id"] is None


def check_traces(c):
    t1 = get(c, f"/api/v1/traces/{T1}")["trace"]
    assert (t1["session_id"], t1["user_id"]) == ("conv-1", "alice")
    assert t1["cost_usd"] == pytest.approx(expected_cost_t1(), rel=1e-9)  # the agent adds nothing
    assert get(c, f"/api/v1/traces/{T2}")["trace"]["cost_usd"] == 0.25  # once, though sent twice
    assert get(c, f"/api/v1/traces/{T3}")["trace"]["cost_usd"] is None
    assert get(c, f"/api/v1/traces/{T4}")["trace"]["session_id"] is None

    def ids(**f):
        return [t["trace_id"] for t in get(c, "/api/v1/traces", **f)["traces"]]
    assert ids() == [T4, T3, T2, T1]
    assert ids(session_id="conv-1") == [T2, T1]
    assert ids(session_id="conv-2", project_id="p1") == []
    assert ids(user_id="bob") == [T3]
    assert ids(model="gpt-4o") == [T2]
    assert ids(model="gpt-4o-mini") == [T1]                 # the request model
    assert ids(model="gpt-4o-mini-2024-07-18") == [T1]      # the response model
    assert ids(model="gpt-4") == []                          # exact, not a prefix
    assert ids(min_cost="0.2") == [T2]
    assert ids(min_cost="0.0001") == [T2, T1]
    assert ids(**{"attr.retry": "3"}) == [T1]                # an int as its JSON text
    assert ids(**{"attr.gen_ai.tool.name": "lookup"}) == [T1]
    assert ids(**{"attr.gen_ai.tool.name": "look"}) == []    # whole values only
    assert ids(**{"attr.note": 'say "hi" \\ <b>'}) == [T3]  # quotes and backslashes as sent
    assert ids(**{"attr.gen_ai.operation.name": "embeddings"}) == [T3]
    assert ids(**{"attr.gen_ai.operation.name": "chat"}, session_id="conv-1") == [T2, T1]
    assert ids(**{"attr.x'); DROP TABLE spans; --": "1"}) == []
    # filters page like the others: a cursor continues after the last trace
    page = get(c, "/api/v1/traces", session_id="conv-1", limit=1)
    assert [t["trace_id"] for t in page["traces"]] == [T2]
    more = get(c, "/api/v1/traces", session_id="conv-1", limit=1, cursor=page["next"])
    assert [t["trace_id"] for t in more["traces"]] == [T1]


def check_sessions(c):
    sessions = get(c, "/api/v1/sessions")["sessions"]
    assert [s["session_id"] for s in sessions] == ["conv-2", "conv-1"]  # newest last_seen first
    conv1 = sessions[1]
    assert conv1["project_id"] == "p1" and conv1["user_id"] == "alice"
    assert (conv1["trace_count"], conv1["span_count"], conv1["error_count"]) == (2, 4, 1)
    assert (conv1["input_tokens"], conv1["output_tokens"]) == (1300, 500)
    assert conv1["cost_usd"] == pytest.approx(expected_cost_t1() + 0.25, rel=1e-9)
    assert conv1["first_seen"] == iso(BASE + 10 * 60_000 * MS)       # T1's start
    assert conv1["last_seen"] == iso(BASE + (70 * 60_000 + 2500) * MS)  # T2's end
    assert sessions[0]["cost_usd"] is None and sessions[0]["trace_count"] == 1
    assert [s["session_id"] for s in get(c, "/api/v1/sessions", user_id="alice")["sessions"]] == ["conv-1"]
    assert [s["session_id"] for s in get(c, "/api/v1/sessions", project_id="p2")["sessions"]] == ["conv-2"]
    assert [s["session_id"] for s in get(c, "/api/v1/sessions", limit=1, offset=1)["sessions"]] == ["conv-1"]

    one = get(c, "/api/v1/sessions/conv-1")
    assert one["session"] == conv1
    assert [t["trace_id"] for t in one["traces"]] == [T1, T2]  # in time order
    assert one["next"] is None
    page = get(c, "/api/v1/sessions/conv-1", limit=1)
    assert [t["trace_id"] for t in page["traces"]] == [T2] and page["next"]
    older = get(c, "/api/v1/sessions/conv-1", limit=1, cursor=page["next"])
    assert [t["trace_id"] for t in older["traces"]] == [T1]
    assert c.get("/api/v1/sessions/nope").status_code == 404
    assert c.get("/api/v1/sessions/conv-1", project_id="p2").status_code == 404


GROUPS = {"none": lambda s: None, "model": lambda s: s["model"], "service": lambda s: s["service"],
          "span_type": lambda s: s["type"], "project": lambda s: s["project"],
          "user": lambda s: s["user"], "session": lambda s: s["session"]}


def expected_stats(spans, group_by, interval_ns, start, end):
    """What /api/v1/stats must answer for |spans| (store.h): span figures by the bucket of each
    span's start; a trace counted in the bucket of its first span of each group."""
    def bucket_of(ns):
        return ns - ns % interval_ns if interval_ns else start

    def new_row(g):
        return dict(spans=0, traces=0, errors=0, inp=0, out=0, cost=None, unpriced=0, durs=[],
                    group=g)

    rows, firsts = {}, {}
    for s in spans:
        g = GROUPS[group_by](s)
        key = (s["project"], s["trace"], g or "")
        firsts[key] = min(firsts.get(key, s["start"]), s["start"])
        if not start <= s["start"] < end:
            continue
        r = rows.setdefault((bucket_of(s["start"]), g or ""), new_row(g))
        r["spans"] += 1
        r["errors"] += s["error"]
        r["inp"] += max(s["inp"], 0)
        r["out"] += max(s["out"], 0)
        if s["cost"] is not None:
            r["cost"] = (r["cost"] or 0) + s["cost"]
        r["unpriced"] += s["type"] in ("llm", "embedding") and bool(s["model"]) and s["cost"] is None
        if s["end"]:
            r["durs"].append(max(s["end"] - s["start"], 0))
    for (_, _, g), first in firsts.items():
        if start <= first < end:
            rows[(bucket_of(first), g)]["traces"] += 1
    out = []
    for (bucket, _), r in sorted(rows.items()):
        out.append({"bucket": bucket, "group": r["group"] if group_by != "none" else None,
                    "spans": r["spans"], "traces": r["traces"], "errors": r["errors"],
                    "input_tokens": r["inp"], "output_tokens": r["out"], "cost_usd": r["cost"],
                    "unpriced_spans": r["unpriced"],
                    "latency_ms": {p: latency_ms(nearest_rank(r["durs"], q)) if r["durs"] else None
                                   for p, q in (("p50", .5), ("p95", .95), ("p99", .99))}})
    return out


def annotated(c):
    """The sent spans with what the store derived (type, model, tokens, cost) from the API."""
    served = spans_by_id(c)
    out = []
    for s in sent_spans():
        a = served[s["sid"]]
        out.append(dict(s, type=a["span_type"], model=a["llm_model"] or "", inp=a["input_tokens"] or 0,
                        out=a["output_tokens"] or 0, cost=a["cost_usd"], user=a["user_id"] or "",
                        session=a["session_id"] or ""))
    return out


def same_stats(got, want):
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        w = dict(w, bucket=iso(w["bucket"]))
        for k in ("cost_usd",):
            if w[k] is not None:
                assert g[k] == pytest.approx(w[k], rel=1e-9), (g, w)
                w = dict(w, **{k: g[k]})
        assert g == w, (g, w)


def check_stats(c):
    spans = annotated(c)
    start, end = BASE, BASE + 4 * HOUR
    for group_by in GROUPS:
        for interval, ns in (("1h", HOUR), ("15m", HOUR // 4)):
            got = get(c, "/api/v1/stats", group_by=group_by, interval=interval,
                      start_time=iso(start), end_time=iso(end))
            assert got["truncated"] is False
            same_stats(got["stats"], expected_stats(spans, group_by, ns, start, end))
    # windows that cut hours: on ClickHouse, once built, an hour cut after more than its half
    # is read as its build minus the rest of it (T1's root and its first child start before
    # the cut, the tool after it), a smaller part from the spans
    for lo, hi in ((BASE + 10 * 60_000 * MS + 50 * MS, BASE + 3 * HOUR + 60_000 * MS),
                   (BASE + 30 * 60_000 * MS, BASE + 2 * HOUR + 40 * 60_000 * MS)):
        for group_by in ("none", "model", "span_type"):
            got = get(c, "/api/v1/stats", group_by=group_by, interval="1h", start_time=iso(lo),
                      end_time=iso(hi))
            same_stats(got["stats"], expected_stats(spans, group_by, HOUR, lo, hi))
    # a project key's view: one project's spans only
    got = get(c, "/api/v1/stats", group_by="project", interval="1d", project_id="p2",
              start_time=iso(start), end_time=iso(end))
    assert {r["group"] for r in got["stats"]} == {"p2"}
    assert sum(r["spans"] for r in got["stats"]) == 3
    # the range is half-open and exact: T4's one span starts at +150 min
    got = get(c, "/api/v1/stats", interval="1h", start_time=iso(BASE + 150 * 60_000 * MS),
              end_time=iso(BASE + 151 * 60_000 * MS))
    assert [r["spans"] for r in got["stats"]] == [1]


def check_models(c):
    models = {m["model"]: m for m in get(c, "/api/v1/models", start_time=iso(BASE))["models"]}
    assert set(models) == {"gpt-4o-mini-2024-07-18", "gpt-4o", "acme-embed-unknown-1", "acme-unknown-1"}
    assert models["gpt-4o"]["spans"] == 1 and models["gpt-4o"]["cost_usd"] == 0.25
    assert models["acme-unknown-1"]["unpriced_spans"] == 1
    assert models["acme-embed-unknown-1"]["unpriced_spans"] == 1
    assert models["gpt-4o-mini-2024-07-18"]["unpriced_spans"] == 0


def answers(c):
    """Every view's answer, created_at removed (ingest time differs between collectors)."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k != "created_at"}
        if isinstance(v, list):
            return [strip(x) for x in v]
        if isinstance(v, float):  # a sum's last digit depends on the order it was added in
            return float(f"{v:.12g}")
        return v
    paths = [("/api/v1/traces", {}), ("/api/v1/traces", {"session_id": "conv-1"}),
             ("/api/v1/sessions", {}), ("/api/v1/sessions/conv-2", {}),
             ("/api/v1/models", {"start_time": iso(BASE)})]
    paths += [(f"/api/v1/traces/{t}", {"project_id": p}) for t, p in ((T1, "p1"), (T3, "p2"))]
    paths += [("/api/v1/stats", {"group_by": g, "interval": "30m", "start_time": iso(BASE),
                                 "end_time": iso(BASE + 4 * HOUR)}) for g in GROUPS]
    out = {}
    for path, params in paths:
        a = strip(get(c, path, **params))
        a.pop("unpriced_since_start", None)  # process-wide, not the store's
        a.pop("unpriced_overflow_spans", None)
        out[(path, tuple(sorted(params.items())))] = a
    return out


def check_all(c):
    check_spans(c)
    check_traces(c)
    check_sessions(c)
    check_stats(c)
    check_models(c)


def test_llm_views_on_the_embedded_store(make_collector):
    c = make_collector()
    load(c)
    check_all(c)
    # the process-wide list of unpriced models, for a reader of every project
    unpriced = {(m["provider"], m["model"]) for m in get(c, "/api/v1/models")["unpriced_since_start"]}
    assert ("acme", "acme-unknown-1") in unpriced


@pytest.mark.parametrize("engine", ["clickhouse", "chdb"])
def test_llm_views_on_clickhouse_equal_the_embedded_store(make_collector, tmp_path, request, engine):
    """Before the hour rollups settle, stats read the spans; once every hour is built (a short
    rollup_settle here), the whole hours read the rollups: both must give the same answers,
    equal to what this file computes and to the embedded store's."""
    srv = request.getfixturevalue(engine)
    db = srv.database()
    ch = ch_collector(make_collector, tmp_path, srv, db, timeout="2s", extra="  rollup_settle: 3s")
    local = make_collector(data_dir=str(tmp_path / "local"))
    load(ch)
    load(local)
    check_all(ch)
    a, b = answers(ch), answers(local)
    for key in b:
        assert a[key] == b[key], f"{key}:\nclickhouse {a[key]}\nlocal      {b[key]}"
    wait_rollups_built(srv, db, ch)
    check_all(ch)
    a = answers(ch)
    for key in b:
        assert a[key] == b[key], f"rollups, {key}:\nclickhouse {a[key]}\nlocal      {b[key]}"


def test_parameter_errors(make_collector):
    c = make_collector()
    cases = [
        ("/api/v1/traces", {"min_cost": "-1"}, "min_cost"),
        ("/api/v1/traces", {"min_cost": "abc"}, "min_cost"),
        ("/api/v1/traces", {"min_cost": "nan"}, "min_cost"),
        ("/api/v1/traces", {"attr.a": "1", "attr.b": "2"}, "attr."),
        ("/api/v1/traces", {"attr.": "1"}, "attr."),
        ("/api/v1/traces", {"attr." + "k" * 300: "1"}, "attr."),
        ("/api/v1/sessions", {"limit": "0"}, "limit"),
        ("/api/v1/sessions", {"offset": "10001"}, "offset"),
        ("/api/v1/sessions", {"start_time": "yesterday"}, "start_time"),
        ("/api/v1/sessions/conv-1", {"cursor": "zzz"}, "cursor"),
        ("/api/v1/stats", {"group_by": "color"}, "group_by"),
        ("/api/v1/stats", {"interval": "1w"}, "interval"),
        ("/api/v1/stats", {"interval": "0s"}, "interval"),
        ("/api/v1/stats", {"interval": "-1h"}, "interval"),
        ("/api/v1/stats", {"interval": "99999999999999999999h"}, "interval"),
        ("/api/v1/stats", {"interval": "1s", "start_time": "2020-01-01T00:00:00Z",
                           "end_time": "2021-01-01T00:00:00Z"}, "interval"),  # 31M buckets
        ("/api/v1/stats", {"start_time": "2021-01-01T00:00:00Z",
                           "end_time": "2020-01-01T00:00:00Z"}, "end_time"),
        ("/api/v1/models", {"end_time": "soon"}, "end_time"),
    ]
    for path, params, name in cases:
        r = c.get(path, **params)
        assert r.status_code == 400, (path, params, r.status_code, r.text)
        assert r.json()["detail"].startswith(name), (path, params, r.text)
    # an empty store answers empty lists, not errors
    assert get(c, "/api/v1/sessions")["sessions"] == []
    assert get(c, "/api/v1/stats")["stats"] == []
    assert get(c, "/api/v1/models")["models"] == []


AUTH = """
keys:
  - {name: p1-read, key: p1-read-key-000000000000001, project: p1, scopes: [read]}
  - {name: ops, key: ops-admin-key-0000000000002, project: "*", scopes: [ingest, read, admin]}
"""


def test_project_keys_see_their_project_only(make_collector):
    c = make_collector(auth=AUTH, read_key="ops-admin-key-0000000000002")
    for project, service, spans in REQUESTS:
        send(c, project, service, spans, key="ops-admin-key-0000000000002")
    c.read_key = "p1-read-key-000000000000001"
    assert [s["session_id"] for s in get(c, "/api/v1/sessions")["sessions"]] == ["conv-1"]
    assert c.get("/api/v1/sessions", project_id="p2").status_code == 403
    assert c.get("/api/v1/sessions/conv-2").status_code == 404
    stats = get(c, "/api/v1/stats", group_by="project", interval="1d", start_time=iso(BASE),
                end_time=iso(BASE + 4 * HOUR))["stats"]
    assert {r["group"] for r in stats} == {"p1"}
    models = get(c, "/api/v1/models", start_time=iso(BASE))
    assert "unpriced_since_start" not in models  # process-wide: names other projects' models
    assert "acme-unknown-1" not in {m["model"] for m in models["models"]}
    c.read_key = None
    assert c.get("/api/v1/stats").status_code == 401
    assert c.get("/api/v1/sessions").status_code == 401
