"""The operator price file (normalize option `prices:`) with the real binary.

A standalone collector loads a prices file on top of the shipped table, prices LLM spans
sent over OTLP/HTTP, re-reads the file on SIGHUP (logging the new entry count), keeps the
table in force when the new file is bad (logging the line, column and field), and refuses
to start with a bad file. Each span's cost is read back through the query API: the price
in force when it arrived, from the file or (for names no entry matches) none.
"""
import signal
import subprocess
import time

import pytest
import requests

import conftest

NS = 1_700_000_000_000_000_000


def llm_span(trace_id, span_id, model):
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.system": "acme", "gen_ai.request.model": model,
             "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500}
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "pricing"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": span_id, "name": "chat " + model, "kind": 3,
            "startTimeUnixNano": str(NS), "endTimeUnixNano": str(NS + 1_000_000),
            "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
                            else {"stringValue": v}} for k, v in attrs.items()]}]}]}]}


def collector_with_prices(tmp_path, prices_path):
    """A conftest.Collector whose normalize processor reads |prices_path|."""
    c = conftest.Collector(tmp_path)
    text = c.config_path.read_text()
    assert "processors:\n  normalize:\n" in text
    c.config_path.write_text(text.replace("processors:\n  normalize:\n",
                                          f"processors:\n  normalize:\n    prices: {prices_path}\n"))
    return c


def wait_log(c, needle, timeout=10):
    deadline = time.time() + timeout
    while needle not in c.logs():
        assert time.time() < deadline, f"no {needle!r} in the log:\n{c.logs()}"
        time.sleep(0.05)


def post(c, trace_id, span_id, model="acme-large-9"):
    r = requests.post(c.otlp + "/v1/traces", json=llm_span(trace_id, span_id, model), timeout=10)
    assert r.status_code == 200, r.text
    return r


def cost(c, trace_id):
    """The stored cost of the trace's one span (1000 input and 500 output tokens)."""
    r = c.get(f"/api/v1/traces/{trace_id}")
    assert r.status_code == 200, r.text
    (span,) = r.json()["spans"]
    return span["cost_usd"], span["cost_source"]


def test_prices_file_loaded_and_reloaded_on_sighup(tmp_path):
    prices = tmp_path / "prices.tsv"
    prices.write_text("# operator prices\nacme  acme-large-9  2020-01-01  2  4  -  -  -  contract\n")
    c = collector_with_prices(tmp_path, prices).start()
    try:
        wait_log(c, f"prices: {prices} loaded, ")
        tid = "5b8efff798038103d269b633813fc60c"
        post(c, tid, "eee19b7ec3c1b174")
        deadline = time.time() + 10
        while c.get(f"/api/v1/traces/{tid}").status_code != 200:  # stored, priced or not
            assert time.time() < deadline, c.logs()
            time.sleep(0.05)
        assert cost(c, tid) == (pytest.approx((1000 * 2 + 500 * 4) / 1e6), "table")

        # A changed file is swapped in on SIGHUP: one more entry than before.
        loaded = int(c.logs().split(f"prices: {prices} loaded, ")[1].split()[0])
        prices.write_text("acme  acme-large-9  2020-01-01  2  4  -  -  -\n"
                          "acme  acme-large-9  2026-01-01  3  6  -  -  -\n")
        c.proc.send_signal(signal.SIGHUP)
        wait_log(c, f"reloaded {prices}: {loaded + 1} price entries")
        post(c, "5b8efff798038103d269b633813fc60d", "eee19b7ec3c1b175")
        assert cost(c, "5b8efff798038103d269b633813fc60d") == (  # 2020 price: the span is of 2023
            pytest.approx((1000 * 2 + 500 * 4) / 1e6), "table")

        # A bad file keeps the prices in force and says where it is wrong.
        prices.write_text("acme  acme-large-9  2020-01-01  2  4  -  -  -\n"
                          "acme  acme-(large  2020-01-01  2  4  -  -  -\n"
                          "acme  other        2020-13-01  2  4  -  -  -\n")
        c.proc.send_signal(signal.SIGHUP)
        wait_log(c, f"reload failed, the previous prices stay in force: {prices} line 2 column 7: "
                    "pattern: not a valid extended regex")
        prices.write_text("acme  acme-large-9  2020-01-01  -2  4  -  -  -\n")
        c.proc.send_signal(signal.SIGHUP)
        wait_log(c, f"{prices} line 1 column 33: input: '-2' is not a price")
        assert c.alive()
        post(c, "5b8efff798038103d269b633813fc60e", "eee19b7ec3c1b176")
        assert cost(c, "5b8efff798038103d269b633813fc60e")[1] == "table"  # still priced
        # A hostile pattern loads, and a span with a 10 kB model name is answered at once.
        prices.write_text("acme  (a*)*(a*)*(a*)*b  2020-01-01  1  1  -  -  -\n")
        c.proc.send_signal(signal.SIGHUP)
        wait_log(c, f"reloaded {prices}: {loaded} price entries")
        t0 = time.time()
        post(c, "5b8efff798038103d269b633813fc60f", "eee19b7ec3c1b177", model="a" * 10000)
        post(c, "5b8efff798038103d269b633813fc610", "eee19b7ec3c1b178", model="a" * 255)
        assert time.time() - t0 < 5, "pricing a hostile name took too long"
        assert cost(c, "5b8efff798038103d269b633813fc60f") == (None, None)  # 10 kB: not priced
        assert c.alive()
    finally:
        assert c.stop() == 0, c.logs()


def test_bad_prices_file_fails_startup(tmp_path):
    prices = tmp_path / "prices.tsv"
    prices.write_text("acme  acme-large-9  2020-01-01  2  4  -  -\n")
    c = collector_with_prices(tmp_path, prices)
    c.spawn()
    try:
        rc = c.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        c.proc.kill()
        c.proc.wait()
        raise AssertionError("a collector with a bad prices file kept running:\n" + c.logs())
    c.log.close()
    assert rc != 0
    log = c.logs()
    assert f"{prices} line 1 column " in log and "reasoning: missing" in log, log
    prices.unlink()
    c = collector_with_prices(tmp_path, prices)
    c.spawn()
    rc = c.proc.wait(timeout=30)
    c.log.close()
    assert rc != 0 and f"{prices}: No such file or directory" in c.logs(), c.logs()
