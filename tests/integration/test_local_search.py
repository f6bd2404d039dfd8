"""Search over the embedded store (schema 3: the FTS5 trigram index, verified matches),
through the real binary: what a person types finds the span (decoded attribute values,
quotes and backslashes, Unicode case, events), short and common queries still answer,
the index follows retention, and (schema 5) spans stored compressed read, search and
filter exactly like the plain ones."""
import os
import random
import sqlite3

import requests

from test_query_api import seed


def test_search_finds_what_a_person_typed(collector):
    """Attribute values as sent (a double quote and a backslash match themselves, not their
    JSON escapes), Unicode case folding, event names and attributes."""
    seed(collector)
    r = requests.post(collector.ingest + "/v1/traces", headers={"X-Prela-Project-Id": "p1"}, json={
        "trace_id": "t-u1", "service_name": "svc-u", "spans": [{
            "span_id": "u1", "trace_id": "t-u1", "name": "Résumé writer",
            "started_at": "2025-01-27T14:00:00Z", "ended_at": "2025-01-27T14:00:01Z",
            "attributes": {"path": 'say "hi" to C:\\Users\\été', "season": "un été à Paris"},
            "events": [{"name": "ticket.closed", "timestamp": "2025-01-27T14:00:00.5Z",
                        "attributes": {"note": "Привет мир"}}]}]})
    assert r.status_code == 200, r.text

    def found(q):
        r = collector.get("/api/v1/search", query=q)
        assert r.status_code == 200, r.text
        return [t["trace_id"] for t in r.json()["results"]]
    assert found('"hi" to C:\\Users') == ["t-u1"]       # quote and backslash as typed
    assert found("ÉTÉ À PARIS") == ["t-u1"]               # Unicode case folding
    assert found("RÉSUMÉ") == ["t-u1"]
    assert found("ticket.closed") == ["t-u1"]             # event name
    assert found("ПРИВЕТ") == ["t-u1"]                    # event attribute value
    assert found("ete a paris") == []                     # accents are letters, not folded


def test_search_short_common_and_rare_queries(collector):
    """Under 3 characters (no trigram: a scan), a word in every trace (more candidates
    than the index path takes), and a rare word: the same exact answers, newest first."""
    spans = []
    for i in range(60):
        spans.append({"span_id": f"s{i}", "trace_id": f"t-{i:02d}", "name": f"step {i}",
                      "started_at": f"2025-01-27T10:{i:02d}:00Z",
                      "ended_at": f"2025-01-27T10:{i:02d}:01Z",
                      "attributes": {"text": "common words here" + (" zebrafish" if i == 17 else "")}})
    for sp in spans:
        r = requests.post(collector.ingest + "/v1/traces", json={
            "trace_id": sp["trace_id"], "service_name": "svc", "spans": [sp]})
        assert r.status_code == 200, r.text

    def found(q, limit=100):
        r = collector.get("/api/v1/search", query=q, limit=limit)
        assert r.status_code == 200, r.text
        return [t["trace_id"] for t in r.json()["results"]]
    assert found("zebrafish") == ["t-17"]
    assert found("ZEBRA") == ["t-17"]
    assert found("words", limit=5) == ["t-59", "t-58", "t-57", "t-56", "t-55"]
    assert found("p 5") == ["t-59", "t-58", "t-57", "t-56", "t-55", "t-54", "t-53", "t-52",
                            "t-51", "t-50", "t-05"]
    assert found("p 4", limit=3) == ["t-49", "t-48", "t-47"]
    assert found("ZZ") == [] and len(found("co", limit=7)) == 7


WORDS = ("the agent asked for a refund because the order of invoice shipping was late and "
         "customer support reviewed policy region growth warehouse stock report tokens").split()


def test_compressed_spans_read_and_search_as_sent(make_collector):
    """A small compression_sample: the dictionary is trained on the first spans and later
    ones are stored as zstd blobs (checked in the file); every span reads back with the
    attributes, events and resource as sent, search finds a word planted in a compressed
    span (and in its event), the attribute filter matches compressed rows."""
    c = make_collector(local_extra="compression_sample: 24KiB")
    rnd = random.Random(7)
    sent = {}
    for batch in range(8):
        traces = []
        for k in range(25):
            i = batch * 25 + k
            prose = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(30, 90)))
            if i == 171:
                prose += " Quokkaplex"
            attrs = {"gen_ai.prompt": prose, "tier": "gold" if i % 4 == 0 else "silver",
                     "n": i, "quote": 'say "hi" \\ été'}
            events = ([{"name": "exception", "timestamp": "2025-01-27T10:00:00.5Z",
                        "attributes": {"exception.message": f"timeout #{i} Zanzibarite"}}]
                      if i == 183 else [])
            sent[f"zt-{i:03d}"] = (attrs, events)
            traces.append({"trace_id": f"zt-{i:03d}", "service_name": "zip-svc", "spans": [{
                "span_id": "s0", "trace_id": f"zt-{i:03d}", "name": f"chat {i}",
                "started_at": f"2025-01-27T10:{i // 60:02d}:{i % 60:02d}Z",
                "ended_at": f"2025-01-27T10:{i // 60:02d}:{i % 60:02d}.5Z",
                "attributes": attrs, "events": events}]})
        for t in traces:
            r = requests.post(c.ingest + "/v1/traces", json=t, timeout=30)
            assert r.status_code == 200, r.text
    assert "compression dictionary" in c.logs()

    db = sqlite3.connect(os.path.join(c.data_dir, "prela.db"))
    try:
        kinds = dict(db.execute("SELECT typeof(attributes), count(*) FROM spans GROUP BY 1"))
        assert db.execute("SELECT count(*) FROM span_dicts").fetchone() == (1,)
    finally:
        db.close()
    assert kinds.get("blob", 0) >= 100 and kinds.get("text", 0) > 0, kinds

    for tid in ("zt-000", "zt-171", "zt-183", "zt-199"):
        r = c.get(f"/api/v1/traces/{tid}")
        assert r.status_code == 200, r.text
        span = r.json()["spans"][0]
        attrs, events = sent[tid]
        for k, v in attrs.items():
            assert span["attributes"][k] == v, (tid, k)
        assert [e["name"] for e in span.get("events", [])] == [e["name"] for e in events]

    def found(q):
        r = c.get("/api/v1/search", query=q)
        assert r.status_code == 200, r.text
        return [t["trace_id"] for t in r.json()["results"]]
    assert found("QUOKKAPLEX") == ["zt-171"]
    assert found("zanzibarite") == ["zt-183"]
    assert found('"hi" \\ ÉTÉ')[:3] == ["zt-199", "zt-198", "zt-197"]
    r = c.get("/api/v1/traces", limit=100, **{"attr.tier": "gold"})
    assert r.status_code == 200, r.text
    assert sorted(t["trace_id"] for t in r.json()["traces"]) == \
        [f"zt-{i:03d}" for i in range(0, 200, 4)]
