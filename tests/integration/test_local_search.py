"""Search over the embedded store (schema 3: the FTS5 trigram index, verified matches),
through the real binary: what a person types finds the span (decoded attribute values,
quotes and backslashes, Unicode case, events), short and common queries still answer,
and the index follows retention."""
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
