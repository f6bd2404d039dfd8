"""The trace viewer (issue 14, first part): the pages the query receiver serves at `/`.

Asset serving is checked with plain HTTP (status, Content-Type, CSP, nosniff, ETag and
304, HEAD, 404 for unknown names and traversal attempts, no external URL in any asset,
auth unchanged for /api/...). The pages themselves run in a real browser: Debian's
`chromium`, headless, driven by Selenium through Debian's `chromedriver` (nothing is
downloaded). Traces go in through the collector's OTLP/HTTP receiver as OTLP/JSON: an
agent run with an LLM call (messages, tokens, cost) and a tool call, a failed payment,
and a span whose name, attribute and message hold `<img src=x onerror=...>`; and two agent
runs recorded by real SDKs (the Prela Python SDK through the Prela receiver, the
OpenTelemetry Python SDK with GenAI attributes through the OTLP/HTTP exporter). The browser
then lists, filters, searches and pages them, opens the waterfall, reads the LLM span's
conversation, and shows the HTML payload as text without running it; with auth on, it
asks for a key, and a project key sees only its project.

Screenshots of every page go to the test's temp dir (tmp_path: under pytest's base temp,
PYTEST_DEBUG_TEMPROOT when set), named ui-*.png; each test prints where.
"""
import http.client
import json
import os
import shutil
import time
import urllib.parse

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

XSS = "<img src=x onerror=window.__xss=1>"
MS = 10**6
BASE = (time.time_ns() // 10**9 - 600) * 10**9  # ten minutes ago, whole seconds
ASSETS = ["index.html", "app.css", "app.js", "api.js", "dom.js", "traces.js", "trace.js",
          "sessions.js", "stats.js", "icon.svg"]

T_AGENT, T_PAY, T_XSS, T_FOLLOW = "a1" * 16, "b2" * 16, "c3" * 16, "d4" * 16

INPUT_MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
    {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather",
                                     "arguments": {"city": "Paris"}}]},
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1",
                                "response": "sunny, 21 C"}]},
]
OUTPUT_MESSAGES = [{"role": "assistant", "finish_reason": "stop",
                    "parts": [{"type": "text", "content": "Sunny, 21 C in Paris."}]}]


# --------------------------------------------------------------------- data --

def _val(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": v}


def _span(trace, sid, name, start_ms, dur_ms, parent="", error=None, **attrs):
    s = {"traceId": trace, "spanId": sid, "name": name, "kind": 1,
         "startTimeUnixNano": str(BASE + start_ms * MS),
         "endTimeUnixNano": str(BASE + (start_ms + dur_ms) * MS),
         "attributes": [{"key": k, "value": _val(v)} for k, v in attrs.items()]}
    if parent:
        s["parentSpanId"] = parent
    if error:
        s["status"] = {"code": 2, "message": error}
    return s


def _otlp(service, spans):
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test_ui"}, "spans": spans}]}]}


def agent_spans():
    """T_AGENT: agent run > (chat gpt-4o-mini, execute_tool lookup > fetch weather)."""
    llm = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
           "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
           "gen_ai.usage.output_tokens": 500, "gen_ai.usage.cache_read_input_tokens": 200,
           "gen_ai.usage.reasoning_tokens": 64, "gen_ai.conversation.id": "sess-paris",
           "user.id": "alice", "gen_ai.input.messages": json.dumps(INPUT_MESSAGES),
           "gen_ai.output.messages": json.dumps(OUTPUT_MESSAGES)}
    return [
        _span(T_AGENT, "1000000000000001", "agent run", 0, 4000,
              **{"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "sess-paris",
                 "user.id": "alice"}),
        _span(T_AGENT, "1000000000000002", "chat gpt-4o-mini", 100, 1200,
              parent="1000000000000001", **llm),
        dict(_span(T_AGENT, "1000000000000003", "execute_tool lookup", 1500, 900,
                   parent="1000000000000001", **{"gen_ai.operation.name": "execute_tool",
                                                 "gen_ai.tool.name": "lookup", "retry": 3}),
             events=[{"timeUnixNano": str(BASE + 1600 * MS), "name": "retrying",
                      "attributes": [{"key": "attempt", "value": {"intValue": "2"}}]}],
             links=[{"traceId": T_PAY, "spanId": "2000000000000001",
                     "attributes": [{"key": "why", "value": {"stringValue": "paid for"}}]}]),
        _span(T_AGENT, "1000000000000004", "fetch weather", 1600, 500,
              parent="1000000000000003"),
    ]


def pay_spans():
    """T_PAY: a failed payment, one child."""
    return [
        _span(T_PAY, "2000000000000001", "charge card", 60_000, 800, error="card declined",
              **{"payment.amount": 12.5}),
        _span(T_PAY, "2000000000000002", "call bank", 60_100, 600,
              parent="2000000000000001", error="HTTP 402"),
    ]


def xss_spans():
    """T_XSS: HTML in the span name, an attribute value and a message."""
    msg = [{"role": "user", "parts": [{"type": "text", "content": XSS}]}]
    return [_span(T_XSS, "3000000000000001", XSS, 120_000, 50,
                  **{"note": XSS, XSS: "key too", "gen_ai.operation.name": "chat",
                     "gen_ai.request.model": "gpt-4o-mini",
                     "gen_ai.input.messages": json.dumps(msg)})]


def send(c, service, spans, headers=None):
    r = requests.post(c.otlp + "/v1/traces", json=_otlp(service, spans),
                      headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text


def load(c, headers=None):
    send(c, "agent-svc", agent_spans(), headers)
    send(c, "billing-svc", pay_spans(), headers)
    send(c, "agent-svc", xss_spans(), headers)
    deadline = time.time() + 10
    while time.time() < deadline:
        if c.get("/api/v1/traces").json()["count"] == 3:
            return
        time.sleep(0.05)
    raise AssertionError("the three traces did not become readable")


# ------------------------------------------------------------------ browser --

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Debian chromium through Debian's chromedriver (no Selenium Manager)."""
    chrome = shutil.which("chromium") or "/usr/bin/chromium"
    driver_bin = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    assert os.path.exists(chrome) and os.path.exists(driver_bin), \
        "chromium and chromium-driver are needed (scripts/setup.sh installs them)"
    opts = Options()
    opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1440,1000", "--no-first-run", "--disable-extensions",
              f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=driver_bin), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def open_page(d, c, hash_=""):
    """Loads the viewer at |hash_| in a fresh page (session storage of the origin kept)."""
    d.get(c.query + "/" + hash_)


def wait_ready(d, page, timeout=15):
    try:
        WebDriverWait(d, timeout).until(
            lambda d: d.find_element(By.ID, "main").get_attribute("data-ready") == page)
    except TimeoutException:
        raise AssertionError(f"page {page!r} did not render; main holds: "
                             f"{d.find_element(By.ID, 'main').text[:500]!r}; console: "
                             f"{d.get_log('browser')}")


def go(d, hash_, page):
    d.execute_script("location.hash = arguments[0]", hash_)
    wait_ready(d, page)


def shot(d, tmp_path, name):
    path = tmp_path / f"ui-{name}.png"
    d.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def list_ids(d):
    for _ in range(20):  # a live update may replace a row while it is read
        try:
            return [tr.get_attribute("data-trace")
                    for tr in d.find_elements(By.CSS_SELECTOR, "#traces tbody tr[data-trace]")]
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError("the trace list kept changing while it was read")


def row_names(d):
    return [e.text for e in d.find_elements(By.CSS_SELECTOR, ".wf-row .wf-name")]


def no_csp_violations(d):
    logs = d.get_log("browser")
    bad = [m for m in logs if "Content Security Policy" in m["message"] or m["level"] == "SEVERE"]
    assert not bad, bad


# -------------------------------------------------------------- asset serving --

def test_assets_served_with_types_csp_and_caching(collector):
    types = {"html": "text/html", "css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}
    for name in ASSETS:
        path = "/" if name == "index.html" else "/ui/" + name
        r = requests.get(collector.query + path, timeout=5)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["Content-Type"].startswith(types[name.rsplit(".", 1)[1]]), path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert r.headers["Cache-Control"] == "no-cache"
        etag = r.headers["ETag"]
        assert etag.startswith('"') and len(etag) == 18
        # nothing from outside at run time: no absolute URL in any asset
        # (the SVG namespace, in icon.svg and in the charts' createElementNS, is a name,
        # not a fetch)
        text = r.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        text = text.replace("'http://www.w3.org/2000/svg'", "")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
        # the same bytes as the repository's file
        src = os.path.join(os.path.dirname(__file__), "../../src/receivers/ui", name)
        with open(src, "rb") as f:
            assert r.content == f.read(), name
        # revalidation: 304 with the ETag, alone or in a list; 200 with another
        r2 = requests.get(collector.query + path, headers={"If-None-Match": etag}, timeout=5)
        assert r2.status_code == 304 and r2.content == b""
        r3 = requests.get(collector.query + path, headers={"If-None-Match": f'"x", {etag}'},
                          timeout=5)
        assert r3.status_code == 304
        r4 = requests.get(collector.query + path, headers={"If-None-Match": '"0000"'}, timeout=5)
        assert r4.status_code == 200 and r4.content == r.content
        # HEAD: the headers and length of GET, no body
        hd = requests.head(collector.query + path, timeout=5)
        assert hd.status_code == 200 and hd.content == b""
        assert hd.headers["Content-Length"] == str(len(r.content))
        assert hd.headers["Content-Type"] == r.headers["Content-Type"]
    # the index loads only this origin's assets, as modules (no inline script)
    index = requests.get(collector.query + "/", timeout=5).text
    assert '<script type="module" src="/ui/app.js"></script>' in index
    assert "<script>" not in index and "style=" not in index and "onclick" not in index


def _raw_get(port, path, method="GET"):
    """Sends |path| byte for byte (no client normalization of dot segments)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


@pytest.mark.parametrize("path", [
    "/ui/", "/ui", "/ui/nope.js", "/ui/index.htm", "/index.html", "/ui/../ui/app.js",
    "/ui/..%2f..%2fetc%2fpasswd", "/ui/%2e%2e/%2e%2e/etc/passwd", "/ui/../../../etc/passwd",
    "/ui//app.js", "/ui/app.js/", "/ui/APP.JS", "/ui/.", "/..",
    "/ui/" + "a" * 5000, "/%2fetc%2fpasswd", "/ui/app.js;.html",
])
def test_unknown_paths_and_traversal_are_404(collector, path):
    status, body = _raw_get(collector.ports["query_port"], path)
    assert status in (404, 400, 414), (path, status, body[:200])
    assert b"root:" not in body and b"import" not in body and b"<html" not in body
    assert collector.alive()


def test_nul_in_path_never_changes_the_type(collector):
    """libmicrohttpd decodes %00 and the path ends there (for every route of http.c):
    the answer is then app.js itself, typed by its own name, never as HTML."""
    status, body = _raw_get(collector.ports["query_port"], "/ui/app.js%00.html")
    r = requests.get(collector.query + "/ui/app.js", timeout=5)
    assert status in (200, 404)
    if status == 200:
        assert body == r.content
    conn = http.client.HTTPConnection("127.0.0.1", collector.ports["query_port"], timeout=5)
    conn.request("GET", "/ui/app.js%00.html")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 404 or resp.getheader("Content-Type").startswith("text/javascript")
    conn.close()


def test_methods(collector):
    r = requests.post(collector.query + "/", data=b"x", timeout=5)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]
    r = requests.delete(collector.query + "/ui/app.js", timeout=5)
    assert r.status_code == 405


KEYS = {
    "alpha-ingest": "alpha-ingest-key-ui-00000001",
    "alpha-read": "alpha-read-key-ui-000000002",
    "beta-ingest": "beta-ingest-key-ui-00000003",
    "beta-read": "beta-read-key-ui-0000000004",
    "ops": "ops-admin-key-ui-00000000005",
}
AUTH = f"""
keys:
  - {{name: alpha-ingest, key: {KEYS['alpha-ingest']}, project: alpha, scopes: [ingest]}}
  - {{name: alpha-read, key: {KEYS['alpha-read']}, project: alpha, scopes: [read]}}
  - {{name: beta-ingest, key: {KEYS['beta-ingest']}, project: beta, scopes: [ingest]}}
  - {{name: beta-read, key: {KEYS['beta-read']}, project: beta, scopes: [read]}}
  - {{name: ops, key: {KEYS['ops']}, project: "*", scopes: [ingest, read, admin]}}
"""


@pytest.fixture
def authed(make_collector):
    return make_collector(auth=AUTH, read_key=KEYS["ops"])


def test_auth_rules_pages_open_api_closed(authed):
    q = authed.query
    # the pages hold no data: open without a key, and with any key
    for path in ("/", "/ui/app.js"):
        assert requests.get(q + path, timeout=5).status_code == 200
        assert requests.get(q + path, headers={"X-API-Key": "wrong-key-wrong-key"},
                            timeout=5).status_code == 200
    # the API's rules are unchanged
    for path in ("/api/v1/traces", "/api/v1/search?query=x", "/api/v1/sessions",
                 "/api/v1/stats", "/api/v1/models", "/api/v1/traces/" + T_AGENT):
        r = requests.get(q + path, timeout=5)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), path
        r = requests.get(q + path, headers={"X-API-Key": "wrong-key-wrong-key"}, timeout=5)
        assert r.status_code == 401, path
    r = requests.get(q + "/api/v1/traces", headers={"X-API-Key": KEYS["alpha-ingest"]}, timeout=5)
    assert r.status_code == 403
    r = requests.get(q + "/api/v1/traces", headers={"X-API-Key": KEYS["alpha-read"]}, timeout=5)
    assert r.status_code == 200
    r = requests.get(q + "/api/v1/traces", headers={"Authorization": "Bearer " + KEYS["ops"]},
                     timeout=5)
    assert r.status_code == 200
    assert requests.get(q + "/api/v1/health", timeout=5).status_code == 200


# ------------------------------------------------------------------ browser --

def test_traces_list_filters_search_and_paging(collector, browser, tmp_path):
    load(collector)
    d = browser
    open_page(d, collector)
    wait_ready(d, "traces")
    # newest first: the XSS trace (started last), the payment, the agent run
    assert list_ids(d) == [T_XSS, T_PAY, T_AGENT]
    rows = {tr.get_attribute("data-trace"): tr.find_elements(By.TAG_NAME, "td")
            for tr in d.find_elements(By.CSS_SELECTOR, "#traces tbody tr")}
    agent = [td.text for td in rows[T_AGENT]]
    assert agent[1] == "agent run" and agent[2] == "agent-svc" and agent[3] == "4"
    assert agent[4] == "4.00 s" and agent[5] == "success"
    assert agent[6] == "1,000 \u2192 500"
    api_agent = collector.trace(T_AGENT)["trace"]
    assert api_agent["cost_usd"] and agent[7] == "$" + "%#.3g" % api_agent["cost_usd"]
    pay = [td.text for td in rows[T_PAY]]
    assert pay[1] == "charge card" and pay[2] == "billing-svc" and pay[5] == "error"
    assert [td.text for td in rows[T_XSS]][1] == XSS  # shown as text
    assert d.execute_script("return window.__xss") is None
    assert d.find_elements(By.CSS_SELECTOR, "main img") == []
    shot(d, tmp_path, "traces")

    # filters through the form: status, then service; the hash keeps them
    Select(d.find_element(By.ID, "status")).select_by_value("error")
    d.find_element(By.ID, "apply").click()
    WebDriverWait(d, 10).until(lambda d: "status=error" in d.current_url)
    wait_ready(d, "traces")
    assert list_ids(d) == [T_PAY]
    shot(d, tmp_path, "traces-filtered")
    shared = d.current_url
    Select(d.find_element(By.ID, "status")).select_by_value("")
    svc = d.find_element(By.ID, "service_name")
    svc.clear()
    svc.send_keys("agent-svc", Keys.ENTER)
    WebDriverWait(d, 10).until(lambda d: "service_name=agent-svc" in d.current_url)
    wait_ready(d, "traces")
    assert list_ids(d) == [T_XSS, T_AGENT]
    # a shared URL opens the same view in a new page, its filters in the form
    d.get(shared)
    wait_ready(d, "traces")
    assert list_ids(d) == [T_PAY]
    assert Select(d.find_element(By.ID, "status")).first_selected_option.text == "error"

    # every other list filter, through the hash
    cases = [
        ({"span_type": "tool"}, [T_AGENT]),
        ({"span_type": "llm"}, [T_XSS, T_AGENT]),
        ({"model": "gpt-4o-mini", "service_name": "agent-svc"}, [T_XSS, T_AGENT]),
        ({"session_id": "sess-paris"}, [T_AGENT]),
        ({"user_id": "alice"}, [T_AGENT]),
        ({"user_id": "nobody"}, []),
        ({"project_id": "default"}, [T_XSS, T_PAY, T_AGENT]),
        ({"project_id": "other"}, []),
        ({"start_time": iso(BASE + 30_000 * MS)}, [T_XSS, T_PAY]),
        ({"end_time": iso(BASE + 90_000 * MS)}, [T_PAY, T_AGENT]),
        ({"start_time": iso(BASE + 30_000 * MS), "end_time": iso(BASE + 90_000 * MS)}, [T_PAY]),
    ]
    for params, want in cases:
        go(d, "#/traces?" + urllib.parse.urlencode(params), "traces")
        assert list_ids(d) == want, params
    # the time range round-trips through the datetime-local inputs
    go(d, "#/traces?" + urllib.parse.urlencode({"start_time": iso(BASE + 30_000 * MS)}), "traces")
    before = d.current_url
    d.find_element(By.ID, "apply").click()
    WebDriverWait(d, 10).until(lambda d: d.current_url != before)
    wait_ready(d, "traces")
    after = urllib.parse.parse_qs(d.current_url.split("?", 1)[1])
    assert after["start_time"] == [iso(BASE + 30_000 * MS).replace("Z", ".000Z")]
    assert list_ids(d) == [T_XSS, T_PAY]

    # full-text search: message text, an attribute value, the HTML payload, nothing
    for text, want in (("Paris", [T_AGENT]), ("card declined", []), ("lookup", [T_AGENT]),
                       (XSS, [T_XSS])):
        go(d, "#/traces", "traces")
        box = d.find_element(By.ID, "q")
        box.clear()
        box.send_keys(text, Keys.ENTER)
        WebDriverWait(d, 10).until(lambda d: "q=" in d.current_url)
        wait_ready(d, "traces")
        api = [t["trace_id"] for t in collector.get("/api/v1/search", query=text).json()["results"]]
        assert list_ids(d) == api, text
        if want:
            assert list_ids(d) == want, text
    shot(d, tmp_path, "traces-search")
    # search narrowed by a filter the rows carry
    go(d, "#/traces?" + urllib.parse.urlencode({"q": "gpt-4o-mini"}), "traces")
    assert set(list_ids(d)) == {T_AGENT, T_XSS}
    go(d, "#/traces?" + urllib.parse.urlencode({"q": "gpt-4o-mini", "status": "error"}), "traces")
    assert list_ids(d) == []

    # paging with the API's cursor, two a page
    go(d, "#/traces?limit=2", "traces")
    assert list_ids(d) == [T_XSS, T_PAY]
    d.find_element(By.ID, "older").click()
    WebDriverWait(d, 10).until(lambda d: "cursor=" in d.current_url)
    wait_ready(d, "traces")
    assert list_ids(d) == [T_AGENT]
    assert d.find_elements(By.ID, "older") == []  # next is null after a short page
    d.back()
    wait_ready(d, "traces")
    assert list_ids(d) == [T_XSS, T_PAY]
    assert d.execute_script("return window.__xss") is None
    no_csp_violations(d)


def iso(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + "Z"


def test_trace_waterfall_and_llm_span(collector, browser, tmp_path):
    load(collector)
    d = browser
    open_page(d, collector)
    wait_ready(d, "traces")
    d.find_element(By.CSS_SELECTOR, f'tr[data-trace="{T_AGENT}"] a.trace-link').click()
    wait_ready(d, "trace")
    assert T_AGENT in d.current_url
    # one bar per span, depth first, children by start time
    assert row_names(d) == ["agent run", "chat gpt-4o-mini", "execute_tool lookup", "fetch weather"]
    bars = d.find_elements(By.CSS_SELECTOR, ".wf-row .wf-bar")
    assert len(bars) == 4
    assert [b.get_attribute("class").split()[1] for b in bars] == \
        ["type-agent", "type-llm", "type-tool", "type-custom"]
    levels = [r.get_attribute("aria-level") for r in d.find_elements(By.CSS_SELECTOR, ".wf-row")]
    assert levels == ["1", "2", "2", "3"]
    # bars on the time axis: left edges in start order, widths by duration
    geo = [d.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.width]", b)
           for b in bars]
    assert geo[0][0] < geo[1][0] < geo[2][0] < geo[3][0]
    assert geo[0][1] > geo[2][1] > geo[3][1]
    assert abs(geo[1][1] / geo[0][1] - 1200 / 4000) < 0.03
    shot(d, tmp_path, "trace")

    # collapse the tool's subtree, expand it again (mouse, then keyboard)
    tool = d.find_element(By.CSS_SELECTOR, '.wf-row[data-span="1000000000000003"]')
    tool.find_element(By.CSS_SELECTOR, "button.twisty").click()
    assert row_names(d) == ["agent run", "chat gpt-4o-mini", "execute_tool lookup"]
    assert d.find_element(By.CSS_SELECTOR, '.wf-row[data-span="1000000000000003"]') \
        .get_attribute("aria-expanded") == "false"
    d.find_element(By.CSS_SELECTOR, '.wf-row[data-span="1000000000000003"]').click()
    d.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    assert len(row_names(d)) == 4
    # keyboard: Up selects the previous row (the LLM span)
    d.switch_to.active_element.send_keys(Keys.ARROW_UP)
    sel = d.find_element(By.CSS_SELECTOR, ".wf-row.selected")
    assert sel.get_attribute("data-span") == "1000000000000002"
    assert d.switch_to.active_element.get_attribute("data-span") == "1000000000000002"
    assert "span=1000000000000002" in d.current_url

    # the LLM span: model, tokens, cost, latency, the conversation
    detail = d.find_element(By.ID, "span-detail")
    assert detail.find_element(By.ID, "span-name").text == "chat gpt-4o-mini"
    span = next(s for s in collector.trace(T_AGENT)["spans"] if s["span_id"] == "1000000000000002")
    facts = dict(zip([e.text for e in detail.find_elements(By.CSS_SELECTOR, "dl.llm dt")],
                     [e.text for e in detail.find_elements(By.CSS_SELECTOR, "dl.llm dd")]))
    assert facts["Model"] == "gpt-4o-mini" and facts["Provider"] == "openai"
    assert facts["Input tokens"] == "1,000" and facts["Output tokens"] == "500"
    assert facts["Cached tokens (read)"] == "200" and facts["Reasoning tokens"] == "64"
    assert span["cost_usd"] and facts["Cost"] == "$" + "%#.3g" % span["cost_usd"]
    assert facts["Latency"] == "1.20 s"
    msgs = detail.find_elements(By.CSS_SELECTOR, ".conversation .msg")
    assert [m.find_element(By.CSS_SELECTOR, ".role").get_attribute("textContent") for m in msgs] == \
        ["system", "user", "assistant", "tool", "assistant"]
    assert "Weather in Paris?" in msgs[1].text
    call = msgs[2].find_element(By.CSS_SELECTOR, ".part-tool-call")
    assert "get_weather" in call.text and '{"city":"Paris"}' in call.text
    assert "sunny, 21 C" in msgs[3].find_element(By.CSS_SELECTOR, ".part-tool-result").text
    assert "Sunny, 21 C in Paris." in msgs[4].text and "stop" in msgs[4].text
    # attributes with their types
    attrs = {r.find_element(By.TAG_NAME, "th").text: [td.text for td in r.find_elements(By.TAG_NAME, "td")]
             for r in detail.find_elements(By.CSS_SELECTOR, "table.attributes tbody tr")}
    assert attrs["gen_ai.usage.input_tokens"] == ["int", "1000"]
    assert attrs["gen_ai.system"] == ["string", "openai"]
    res = {r.find_element(By.TAG_NAME, "th").text: [td.text for td in r.find_elements(By.TAG_NAME, "td")]
           for r in detail.find_elements(By.CSS_SELECTOR, "table.resource tbody tr")}
    assert res["service.name"] == ["string", "agent-svc"]
    shot(d, tmp_path, "trace-llm-span")

    # the tool span: its event (offset from the span's start) and its link
    d.find_element(By.CSS_SELECTOR, '.wf-row[data-span="1000000000000003"]').click()
    detail = d.find_element(By.ID, "span-detail")
    ev = detail.find_element(By.CSS_SELECTOR, ".events li")
    assert ev.find_element(By.CSS_SELECTOR, ".ev-name").text == "retrying" and "+100 ms" in ev.text
    assert [td.text for td in ev.find_elements(By.CSS_SELECTOR, "tbody td")] == ["int", "2"]
    link = detail.find_element(By.CSS_SELECTOR, ".links li")
    assert "paid for" in link.text and "2000000000000001" in link.text
    # zoom to a span: its bar fills the track; reset restores the whole trace
    d.find_element(By.CSS_SELECTOR, '.wf-row[data-span="1000000000000004"]').click()
    d.find_element(By.ID, "zoom-span").click()
    bar = d.find_element(By.CSS_SELECTOR, '.wf-row[data-span="1000000000000004"] .wf-bar')
    track = d.find_element(By.CSS_SELECTOR, '.wf-row[data-span="1000000000000004"] .wf-track')
    assert bar.size["width"] > 0.9 * track.size["width"]
    assert d.find_element(By.ID, "zoom-reset").is_enabled()
    shot(d, tmp_path, "trace-zoomed")
    d.find_element(By.ID, "zoom-reset").click()
    bar = d.find_element(By.CSS_SELECTOR, '.wf-row[data-span="1000000000000004"] .wf-bar')
    track = d.find_element(By.CSS_SELECTOR, '.wf-row[data-span="1000000000000004"] .wf-track')
    assert bar.size["width"] < 0.2 * track.size["width"]

    # the failed payment (through the tool span's link): errors marked, status message shown
    d.find_element(By.CSS_SELECTOR, '.wf-row[data-span="1000000000000003"]').click()
    d.find_element(By.CSS_SELECTOR, "#span-detail a.link-trace").click()
    WebDriverWait(d, 10).until(lambda d: T_PAY in d.current_url)
    wait_ready(d, "trace")
    assert d.find_element(By.CSS_SELECTOR, ".wf-row.selected").get_attribute("data-span") == \
        "2000000000000001"
    d.get(collector.query + f"/#/trace/{T_PAY}?project_id=default")
    wait_ready(d, "trace")
    assert row_names(d) == ["charge card", "call bank"]
    assert len(d.find_elements(By.CSS_SELECTOR, ".wf-row.is-error .err-mark")) == 2
    assert len(d.find_elements(By.CSS_SELECTOR, ".wf-bar.error")) == 2
    detail = d.find_element(By.ID, "span-detail")
    assert "card declined" in detail.text
    attrs = {r.find_element(By.TAG_NAME, "th").text: [td.text for td in r.find_elements(By.TAG_NAME, "td")]
             for r in detail.find_elements(By.CSS_SELECTOR, "table.attributes tbody tr")}
    assert attrs["payment.amount"] == ["double", "12.5"]
    shot(d, tmp_path, "trace-error")

    # dark mode
    d.execute_cdp_cmd("Emulation.setEmulatedMedia",
                      {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    go(d, f"#/trace/{T_AGENT}?span=1000000000000002", "trace")
    bg = d.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(20, 23, 27)", bg
    shot(d, tmp_path, "trace-dark")
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    # a narrow (laptop / tablet) window: one column, the detail under the waterfall
    d.set_window_size(900, 1000)
    go(d, f"#/trace/{T_AGENT}?span=1000000000000002", "trace")
    wf = d.find_element(By.CSS_SELECTOR, ".waterfall").rect
    det = d.find_element(By.ID, "span-detail").rect
    assert det["y"] >= wf["y"] + wf["height"] - 1
    shot(d, tmp_path, "trace-narrow")
    d.set_window_size(1440, 1000)
    no_csp_violations(d)


def test_html_is_shown_as_text(collector, browser, tmp_path):
    load(collector)
    d = browser
    open_page(d, collector, f"#/trace/{T_XSS}")
    wait_ready(d, "trace")
    detail = d.find_element(By.ID, "span-detail")
    assert detail.find_element(By.ID, "span-name").text == XSS
    assert d.find_element(By.CSS_SELECTOR, ".wf-row .wf-name").text == XSS
    assert d.find_element(By.TAG_NAME, "h1").text == XSS
    attrs = {r.find_element(By.TAG_NAME, "th").text: r.find_elements(By.TAG_NAME, "td")[1].text
             for r in detail.find_elements(By.CSS_SELECTOR, "table.attributes tbody tr")}
    assert attrs["note"] == XSS and attrs[XSS] == "key too"
    assert XSS in detail.find_element(By.CSS_SELECTOR, ".conversation").text
    assert d.find_elements(By.TAG_NAME, "img") == []
    time.sleep(0.3)  # an onerror would have fired by now
    assert d.execute_script("return window.__xss") is None
    assert d.execute_script("return typeof window.__xss") == "undefined"
    shot(d, tmp_path, "trace-xss")
    no_csp_violations(d)


def test_sign_in_and_project_keys(authed, browser, tmp_path):
    load_projects(authed)
    d = browser
    open_page(d, authed)
    d.execute_script("sessionStorage.clear()")
    open_page(d, authed)
    wait_ready(d, "signin")
    form = d.find_element(By.ID, "signin")
    assert d.find_element(By.CSS_SELECTOR, "label[for=key]").text == "Read key"
    assert d.find_element(By.ID, "key").get_attribute("type") == "password"
    assert d.switch_to.active_element == d.find_element(By.ID, "key")
    shot(d, tmp_path, "signin")

    # a wrong key: asked again, saying it was refused
    d.find_element(By.ID, "key").send_keys("not-a-key-not-a-key", Keys.ENTER)
    WebDriverWait(d, 10).until(lambda d: "refused" in d.find_element(By.ID, "main").text)
    wait_ready(d, "signin")
    # alpha's read key: alpha's traces only, in the list, in search and by id
    d.find_element(By.ID, "key").send_keys(KEYS["alpha-read"], Keys.ENTER)
    wait_ready(d, "traces")
    assert list_ids(d) == ["a1" * 16]
    assert d.execute_script("return sessionStorage.getItem('prela.readKey')") == KEYS["alpha-read"]
    assert KEYS["alpha-read"] not in d.current_url
    shot(d, tmp_path, "traces-alpha")
    go(d, "#/traces?q=root", "traces")
    assert list_ids(d) == ["a1" * 16]
    go(d, "#/trace/" + "a1" * 16, "trace")
    assert row_names(d) == ["alpha root", "alpha kid"]
    # another project's trace: not found for this key; asking for its project: refused
    d.execute_script("location.hash = arguments[0]", "#/trace/" + "b2" * 16)
    WebDriverWait(d, 10).until(lambda d: "Could not load" in d.find_element(By.ID, "main").text)
    assert "not found" in d.find_element(By.ID, "main").text
    assert row_names(d) == []
    d.execute_script("location.hash = '#/traces?project_id=beta'")
    WebDriverWait(d, 10).until(lambda d: "Could not load" in d.find_element(By.ID, "main").text
                               and "not found" not in d.find_element(By.ID, "main").text)
    assert list_ids(d) == []
    # the key survives a reload (session storage), then sign out forgets it
    open_page(d, authed)
    wait_ready(d, "traces")
    assert list_ids(d) == ["a1" * 16]
    d.find_element(By.ID, "signout").click()
    wait_ready(d, "signin")
    assert d.execute_script("return sessionStorage.getItem('prela.readKey')") is None
    d.find_element(By.ID, "key").send_keys(KEYS["beta-read"], Keys.ENTER)
    wait_ready(d, "traces")
    assert list_ids(d) == ["b2" * 16]
    # the admin key sees both and may pick a project
    d.find_element(By.ID, "signout").click()
    wait_ready(d, "signin")
    d.find_element(By.ID, "key").send_keys(KEYS["ops"], Keys.ENTER)
    wait_ready(d, "traces")
    assert sorted(list_ids(d)) == ["a1" * 16, "b2" * 16]
    go(d, "#/traces?project_id=beta", "traces")
    assert list_ids(d) == ["b2" * 16]
    # every API request carried the key as a header, none in its URL
    urls = d.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and not any(k in u for u in urls for k in KEYS.values())
    d.find_element(By.ID, "signout").click()
    wait_ready(d, "signin")
    no_csp_violations_except_401(d)


def no_csp_violations_except_401(d):
    logs = d.get_log("browser")
    bad = [m for m in logs if "Content Security Policy" in m["message"] or
           (m["level"] == "SEVERE" and " 401 " not in m["message"] and " 403 " not in m["message"]
            and " 404 " not in m["message"])]
    assert not bad, bad


def load_projects(c):
    for project, tid in (("alpha", "a1" * 16), ("beta", "b2" * 16)):
        spans = [_span(tid, "1000000000000001", f"{project} root", 0, 1000),
                 _span(tid, "1000000000000002", f"{project} kid", 100, 200,
                       parent="1000000000000001")]
        send(c, f"svc-{project}", spans, {"X-API-Key": KEYS[f"{project}-ingest"]})
    deadline = time.time() + 10
    while time.time() < deadline:
        if c.get("/api/v1/traces").json()["count"] == 2:
            return
        time.sleep(0.05)
    raise AssertionError("the two projects' traces did not become readable")


# ---------------------------------------------------------- sessions, stats --

FOLLOW_UP = {"role": "user", "parts": [{"type": "text", "content": "And tomorrow?"}]}
FOLLOW_OUT = [{"role": "assistant", "finish_reason": "stop",
               "parts": [{"type": "text", "content": "Rain tomorrow."}]}]


def follow_spans():
    """T_FOLLOW: the second turn of session sess-paris, 30 s after the first; its LLM call
    resends the first turn's conversation, then asks one more question."""
    llm = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
           "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 300,
           "gen_ai.usage.output_tokens": 20, "gen_ai.conversation.id": "sess-paris",
           "user.id": "alice",
           "gen_ai.input.messages": json.dumps(INPUT_MESSAGES + OUTPUT_MESSAGES + [FOLLOW_UP]),
           "gen_ai.output.messages": json.dumps(FOLLOW_OUT)}
    return [
        _span(T_FOLLOW, "4000000000000001", "agent follow-up", 30_000, 2000,
              **{"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "sess-paris",
                 "user.id": "alice"}),
        _span(T_FOLLOW, "4000000000000002", "chat gpt-4o", 30_100, 1500,
              parent="4000000000000001", **llm),
    ]


def load_with_session(c):
    load(c)
    send(c, "agent-svc", follow_spans())
    deadline = time.time() + 10
    while time.time() < deadline:
        if c.get("/api/v1/traces").json()["count"] == 4:
            return
        time.sleep(0.05)
    raise AssertionError("the follow-up trace did not become readable")


def test_sessions_list_and_session_conversation(collector, browser, tmp_path):
    load_with_session(collector)
    d = browser
    open_page(d, collector, "#/sessions")
    wait_ready(d, "sessions")
    rows = d.find_elements(By.CSS_SELECTOR, "#sessions tbody tr[data-session]")
    assert [r.get_attribute("data-session") for r in rows] == ["sess-paris"]
    api = collector.get("/api/v1/sessions").json()["sessions"][0]
    cells = [td.text for td in rows[0].find_elements(By.TAG_NAME, "td")]
    assert cells[:6] == ["sess-paris", "alice", "default", "2", str(api["span_count"]), "0"]
    assert cells[6] == "1,300 \u2192 520" == \
        f"{api['input_tokens']:,} \u2192 {api['output_tokens']:,}"
    assert cells[7] == "$" + "%#.3g" % api["cost_usd"]
    shot(d, tmp_path, "sessions")
    # filters: a user with no session, then alice's through the form
    go(d, "#/sessions?user_id=bob", "sessions")
    assert d.find_elements(By.CSS_SELECTOR, "#sessions tbody tr[data-session]") == []
    assert "No sessions match" in d.find_element(By.ID, "sessions").text
    user = d.find_element(By.ID, "user_id")
    user.clear()
    user.send_keys("alice", Keys.ENTER)
    WebDriverWait(d, 10).until(lambda d: "user_id=alice" in d.current_url)
    wait_ready(d, "sessions")
    link = d.find_element(By.CSS_SELECTOR, "#sessions a.session-link")
    link.click()
    wait_ready(d, "session")
    assert "#/session/sess-paris" in d.current_url
    totals = d.find_element(By.ID, "session-totals").text
    assert "Traces\n2" in totals and "1,300 in, 520 out" in totals
    turns = d.find_elements(By.CSS_SELECTOR, "#session-conversation > li.turn")
    assert [t.get_attribute("data-trace") for t in turns] == [T_AGENT, T_FOLLOW]  # in order

    def msgs(turn):
        return [(m.find_element(By.CLASS_NAME, "role").text.lower(),
                 m.find_element(By.CSS_SELECTOR, "pre, .part").text)
                for m in turn.find_elements(By.CSS_SELECTOR, "li.msg")]
    first = msgs(turns[0])
    assert [r for r, _ in first] == ["system", "user", "assistant", "tool", "assistant"]
    assert first[1][1] == "Weather in Paris?" and first[-1][1] == "Sunny, 21 C in Paris."
    # the second turn resent the first: only what is new shows
    assert msgs(turns[1]) == [("user", "And tomorrow?"), ("assistant", "Rain tomorrow.")]
    shot(d, tmp_path, "session")
    # each turn links to its trace's waterfall
    turns[1].find_element(By.CSS_SELECTOR, "a.trace-link").click()
    wait_ready(d, "trace")
    assert row_names(d) == ["agent follow-up", "chat gpt-4o"]
    # the trace page and the traces list link back to the session
    d.find_element(By.ID, "session-link").click()
    wait_ready(d, "session")
    go(d, "#/traces", "traces")
    rows = {tr.get_attribute("data-trace"): tr
            for tr in d.find_elements(By.CSS_SELECTOR, "#traces tbody tr[data-trace]")}
    assert rows[T_PAY].find_elements(By.CSS_SELECTOR, "a.session-link") == []
    rows[T_AGENT].find_element(By.CSS_SELECTOR, "a.session-link").click()
    wait_ready(d, "session")
    assert len(d.find_elements(By.CSS_SELECTOR, "#session-conversation > li.turn")) == 2
    no_csp_violations(d)


def expected_points(api, measure):
    """{(group, bucket): value} that a chart of |measure| must draw from stats answer
    |api|: counts are 0 where a group has no row in a bucket; cost and latency have no
    point where the API says null or has no row."""
    rows = api["stats"]
    buckets = sorted({r["bucket"] for r in rows})
    groups = {r["group"] for r in rows}
    at = {(r["group"], r["bucket"]): r for r in rows}
    value = {
        "spans": lambda r: r["spans"], "errors": lambda r: r["errors"],
        "tokens": lambda r: r["input_tokens"] + r["output_tokens"],
        "cost": lambda r: r["cost_usd"], "p50": lambda r: r["latency_ms"]["p50"],
        "p95": lambda r: r["latency_ms"]["p95"], "p99": lambda r: r["latency_ms"]["p99"],
    }[measure]
    out = {}
    for g in groups:
        for b in buckets:
            r = at.get((g, b))
            v = value(r) if r else (0 if measure in ("spans", "errors", "tokens") else None)
            if v is not None:
                out[(g or "", b)] = v
    return out


def drawn_points(d, measure):
    js = """
      const out = [];
      for (const c of document.querySelectorAll(`#chart-${arguments[0]} circle.pt`))
        out.push([c.parentNode.dataset.group, c.dataset.bucket, c.dataset.value,
                  c.querySelector('title').textContent]);
      return out;"""
    return d.execute_script(js, measure)


def check_charts(d, c):
    query = d.find_element(By.ID, "charts").get_attribute("data-query")
    api = c.get("/api/v1/stats?" + query).json()
    assert api["stats"], api
    for m in ("spans", "errors", "tokens", "cost", "p50", "p95", "p99"):
        drawn = drawn_points(d, m)
        got = {(g, b): float(v) for g, b, v, _ in drawn}
        assert len(got) == len(drawn), (m, drawn)  # one point per (group, bucket)
        assert got == {k: float(v) for k, v in expected_points(api, m).items()}, m
        assert all(t for *_, t in drawn)  # every point has its <title>
        fig = d.find_element(By.ID, f"chart-{m}")
        assert fig.find_elements(By.CSS_SELECTOR, "svg text.axis-label")
    # the table holds every row of the answer
    cells = d.find_elements(By.CSS_SELECTOR, "#stats-table td[data-measure=spans]")
    assert [int(td.get_attribute("data-value")) for td in cells] == \
        [r["spans"] for r in api["stats"]]
    return api


def test_stats_charts_draw_the_api_numbers(collector, browser, tmp_path):
    load_with_session(collector)
    d = browser
    open_page(d, collector, "#/stats?group_by=model&range=24h&interval=1h")
    wait_ready(d, "stats")
    api = check_charts(d, collector)
    assert api["group_by"] == "model" and api["interval"] == "1h"
    legend = [li.text for li in d.find_elements(By.CSS_SELECTOR, ".chart-legend li")]
    assert sorted(legend) == ["(none)", "gpt-4o", "gpt-4o-mini"]
    assert len(d.find_elements(By.CSS_SELECTOR, "#chart-spans g.series")) == 3
    shot(d, tmp_path, "stats-model")
    # the selectors: group by span type, one-minute buckets over the last hour
    Select(d.find_element(By.ID, "group_by")).select_by_value("span_type")
    Select(d.find_element(By.ID, "range")).select_by_value("1h")
    Select(d.find_element(By.ID, "interval")).select_by_value("1m")
    d.find_element(By.ID, "apply").click()
    WebDriverWait(d, 10).until(lambda d: "group_by=span_type" in d.current_url)
    wait_ready(d, "stats")
    api = check_charts(d, collector)
    assert api["group_by"] == "span_type" and api["interval"] == "1m"
    groups = {r["group"] for r in api["stats"]}
    assert {"agent", "llm", "tool"} <= groups
    # the spans at BASE + 0..2 s and + 30 s share a minute or two; the payment's a minute
    # later, the XSS trace's two minutes later: several buckets
    assert len({r["bucket"] for r in api["stats"]}) >= 3
    shot(d, tmp_path, "stats-span-type")
    # no grouping: one line, "all spans"
    go(d, "#/stats?group_by=none&range=24h", "stats")
    api = check_charts(d, collector)
    assert [li.text for li in d.find_elements(By.CSS_SELECTOR, ".chart-legend li")] == \
        ["all spans"]
    assert sum(r["spans"] for r in api["stats"]) == 4 + 2 + 1 + 2
    no_csp_violations(d)


def test_live_traces_appear_without_a_reload(collector, browser, tmp_path):
    load(collector)
    d = browser
    open_page(d, collector, "#/traces")
    wait_ready(d, "traces")
    live = d.find_element(By.ID, "live-toggle")
    assert live.get_attribute("disabled") is None and not live.is_selected()
    live.click()
    WebDriverWait(d, 10).until(lambda d: "live=1" in d.current_url)
    wait_ready(d, "traces")
    WebDriverWait(d, 10).until(
        lambda d: d.find_element(By.ID, "main").get_attribute("data-live") == "ready")
    assert list_ids(d) == [T_XSS, T_PAY, T_AGENT]
    d.execute_script("window.__noReload = 1")  # gone if the page reloads
    # a new trace: at the top, without a reload
    new = "e5" * 16
    t0 = time.time()
    send(collector, "live-svc", [_span(new, "5000000000000001", "live root",
                                       (time.time_ns() - BASE) // MS, 300)])
    WebDriverWait(d, 10).until(lambda d: list_ids(d)[:1] == [new])
    print(f"shown {time.time() - t0:.2f} s after it was sent")
    assert list_ids(d) == [new, T_XSS, T_PAY, T_AGENT]
    assert d.execute_script("return window.__noReload") == 1
    row = d.find_element(By.CSS_SELECTOR, f"#traces tr[data-trace='{new}']")
    assert "live root" in row.text and "live-svc" in row.text
    shot(d, tmp_path, "traces-live")
    # it gains a failed span: its row changes in place
    send(collector, "live-svc", [_span(new, "5000000000000002", "live kid",
                                       (time.time_ns() - BASE) // MS, 100,
                                       parent="5000000000000001", error="x")])
    # the row is replaced in place: one found may be gone when its text is read
    WebDriverWait(d, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: "error" in d.find_element(By.CSS_SELECTOR, f"#traces tr[data-trace='{new}']").text)
    assert list_ids(d) == [new, T_XSS, T_PAY, T_AGENT]
    # a filter applies to live rows too: another service's trace does not come
    go(d, "#/traces?live=1&service_name=agent-svc", "traces")
    WebDriverWait(d, 10).until(
        lambda d: d.find_element(By.ID, "main").get_attribute("data-live") == "ready")
    other, mine = "e6" * 16, "e7" * 16
    send(collector, "other-svc", [_span(other, "6000000000000001", "other",
                                        (time.time_ns() - BASE) // MS, 10)])
    send(collector, "agent-svc", [_span(mine, "7000000000000001", "mine",
                                        (time.time_ns() - BASE) // MS, 10)])
    WebDriverWait(d, 10).until(lambda d: list_ids(d)[:1] == [mine])
    assert other not in list_ids(d)
    assert d.execute_script("return window.__noReload") == 1
    # off: the stream stops with the page (nothing else comes in)
    d.find_element(By.ID, "live-toggle").click()
    WebDriverWait(d, 10).until(lambda d: "live=1" not in d.current_url)
    wait_ready(d, "traces")
    assert d.find_element(By.ID, "main").get_attribute("data-live") is None
    no_csp_violations(d)


def test_sessions_and_stats_show_html_as_text(collector, browser, tmp_path):
    """A session id, user, service and model that hold HTML: shown as text on the
    Sessions, Session and Stats pages (legend, <title>s, table), and nothing runs."""
    tid = "f8" * 16
    send(collector, XSS, [_span(tid, "8000000000000001", "chat", 0, 100, **{
        "gen_ai.operation.name": "chat", "gen_ai.request.model": XSS,
        "gen_ai.conversation.id": XSS, "user.id": XSS,
        "gen_ai.input.messages": json.dumps([{"role": "user",
                                              "parts": [{"type": "text", "content": XSS}]}])})])
    deadline = time.time() + 10
    while time.time() < deadline and collector.get("/api/v1/traces").json()["count"] < 1:
        time.sleep(0.05)
    d = browser
    open_page(d, collector, "#/sessions")
    wait_ready(d, "sessions")
    row = d.find_element(By.CSS_SELECTOR, "#sessions tbody tr[data-session]")
    assert row.get_attribute("data-session") == XSS
    assert row.find_elements(By.TAG_NAME, "td")[1].text == XSS
    row.find_element(By.CSS_SELECTOR, "a.session-link").click()
    wait_ready(d, "session")
    assert d.find_element(By.TAG_NAME, "h1").text == "Session " + XSS
    assert [m.text for m in d.find_elements(By.CSS_SELECTOR, "li.msg pre")] == [XSS]
    go(d, "#/stats?group_by=model&range=24h", "stats")
    assert [li.text for li in d.find_elements(By.CSS_SELECTOR, ".chart-legend li")] == [XSS]
    titles = d.execute_script("return [...document.querySelectorAll("
                              "'#chart-spans circle title')].map(t => t.textContent)")
    assert titles and all(t.startswith(XSS + " \u00b7 ") for t in titles)
    go(d, "#/stats?group_by=service&range=24h", "stats")
    assert [li.text for li in d.find_elements(By.CSS_SELECTOR, ".chart-legend li")] == [XSS]
    time.sleep(0.3)  # an onerror would have fired by now
    assert d.execute_script("return typeof window.__xss") == "undefined"
    assert d.find_elements(By.CSS_SELECTOR, "main img") == []
    shot(d, tmp_path, "stats-xss")
    no_csp_violations(d)


# ------------------------------------------------------------- SDK-written --

SDK_QUESTION = "What is the weather in Lyon?"
SDK_ANSWER = "Cloudy, 14 C in Lyon."


def prela_sdk_run(c):
    """An agent run recorded by the Prela Python SDK (PyPI `prela`), shaped as its OpenAI
    instrumentation writes an LLM call (llm.* attributes, llm.request / llm.response
    events), sent by its HTTP exporter to the Prela receiver. Returns the trace id (the
    SDK's UUID, kept as sent)."""
    from prela.core.span import SpanType
    from prela.core.tracer import Tracer
    from prela.exporters.http import HTTPExporter

    tracer = Tracer(service_name="prela-sdk-agent", exporter=HTTPExporter(
        endpoint=c.ingest + "/v1/traces", max_retries=0))
    with tracer.span("weather.agent", span_type=SpanType.AGENT) as root:
        with tracer.span("openai.chat.completions.create", span_type=SpanType.LLM) as llm:
            llm.set_attribute("llm.vendor", "openai")
            llm.set_attribute("llm.model", "gpt-4o-mini")
            llm.set_attribute("llm.request.model", "gpt-4o-mini")
            llm.add_event("llm.request", attributes={"messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": SDK_QUESTION}]})
            time.sleep(0.02)
            llm.set_attribute("llm.response.model", "gpt-4o-mini")
            llm.set_attribute("llm.prompt_tokens", 1234)
            llm.set_attribute("llm.completion_tokens", 56)
            llm.set_attribute("llm.total_tokens", 1290)
            llm.set_attribute("llm.finish_reason", "stop")
            llm.add_event("llm.response", attributes={"content": SDK_ANSWER})
        with tracer.span("tool.get_weather", span_type=SpanType.TOOL) as tool:
            tool.set_attribute("tool.name", "get_weather")
            tool.set_attribute("tool.input", json.dumps({"city": "Lyon"}))
            time.sleep(0.01)
    return root.trace_id


def otel_sdk_run(c):
    """The same run recorded by the OpenTelemetry Python SDK with the GenAI semantic
    conventions (invoke_agent > chat, execute_tool; messages as JSON strings, usage
    tokens), exported by the OTLP/HTTP (protobuf) exporter. Returns the trace id."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "otel-sdk-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=c.otlp + "/v1/traces", timeout=10)))
    tracer = provider.get_tracer("test_ui.sdk")
    inp = [{"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
           {"role": "user", "parts": [{"type": "text", "content": SDK_QUESTION}]}]
    out = [{"role": "assistant", "finish_reason": "stop",
            "parts": [{"type": "text", "content": SDK_ANSWER}]}]
    try:
        with tracer.start_as_current_span("invoke_agent weather", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather"}) as root:
            with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.input.messages": json.dumps(inp)}) as llm:
                time.sleep(0.02)
                llm.set_attribute("gen_ai.response.model", "gpt-4o-mini")
                llm.set_attribute("gen_ai.usage.input_tokens", 2345)
                llm.set_attribute("gen_ai.usage.output_tokens", 67)
                llm.set_attribute("gen_ai.response.finish_reasons", ["stop"])
                llm.set_attribute("gen_ai.output.messages", json.dumps(out))
            with tracer.start_as_current_span("execute_tool get_weather", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
                    "gen_ai.tool.call.id": "call_lyon"}):
                time.sleep(0.01)
        trace_id = format(root.get_span_context().trace_id, "032x")
    finally:
        provider.shutdown()
    return trace_id


def test_sdk_written_traces_in_the_list_and_waterfall(collector, browser, tmp_path):
    """Traces written by the two Python SDKs through the collector (not hand-made JSON):
    each shows in the list with its service, span count and tokens; its waterfall has
    its three bars in order (root, LLM, tool); its LLM span shows the conversation,
    model, tokens and cost."""
    t_prela = prela_sdk_run(collector)
    t_otel = otel_sdk_run(collector)
    deadline = time.time() + 10
    while True:  # both whole (the store may make a trace readable span by span)
        api = {t["trace_id"]: t for t in collector.get("/api/v1/traces").json()["traces"]}
        if [api.get(t, {}).get("span_count") for t in (t_prela, t_otel)] == [3, 3] \
                or time.time() > deadline:
            break
        time.sleep(0.05)
    assert set(api) == {t_prela, t_otel}, api
    assert [api[t]["span_count"] for t in (t_prela, t_otel)] == [3, 3], api
    d = browser
    open_page(d, collector)
    wait_ready(d, "traces")
    assert list_ids(d) == [t_otel, t_prela]  # newest first: the OTel run started last
    want = {
        t_prela: ("weather.agent", "prela-sdk-agent", "1,234 \u2192 56",
                  ["weather.agent", "openai.chat.completions.create", "tool.get_weather"]),
        t_otel: ("invoke_agent weather", "otel-sdk-agent", "2,345 \u2192 67",
                 ["invoke_agent weather", "chat gpt-4o-mini", "execute_tool get_weather"]),
    }
    for tid, (root, service, tokens, _) in want.items():
        cells = [td.text for td in d.find_elements(
            By.CSS_SELECTOR, f'#traces tr[data-trace="{tid}"] td')]
        assert cells[1:4] == [root, service, "3"], (tid, cells)
        assert cells[5] == "success" and cells[6] == tokens, (tid, cells)
        assert api[tid]["cost_usd"] and cells[7] == "$" + "%#.3g" % api[tid]["cost_usd"]
    shot(d, tmp_path, "traces-sdk")

    for tid, (root, service, tokens, names) in want.items():
        go(d, "#/traces", "traces")
        d.find_element(By.CSS_SELECTOR, f'tr[data-trace="{tid}"] a.trace-link').click()
        wait_ready(d, "trace")
        assert row_names(d) == names, tid
        bars = d.find_elements(By.CSS_SELECTOR, ".wf-row .wf-bar")
        assert [b.get_attribute("class").split()[1] for b in bars] == \
            ["type-agent", "type-llm", "type-tool"], tid
        levels = [r.get_attribute("aria-level") for r in d.find_elements(By.CSS_SELECTOR, ".wf-row")]
        assert levels == ["1", "2", "2"], tid
        # the children start in order on the time axis, inside the root's bar
        geo = [d.execute_script("const r = arguments[0].getBoundingClientRect();"
                                "return [r.left, r.right]", b) for b in bars]
        assert geo[0][0] <= geo[1][0] < geo[2][0] <= geo[0][1] + 1, (tid, geo)
        # the LLM span: model, tokens, cost, its conversation
        body = collector.trace(tid)
        span = next(s for s in body["spans"] if s["name"] == names[1])
        d.find_element(By.CSS_SELECTOR, f'.wf-row[data-span="{span["span_id"]}"]').click()
        detail = d.find_element(By.ID, "span-detail")
        assert detail.find_element(By.ID, "span-name").text == names[1]
        facts = dict(zip([e.text for e in detail.find_elements(By.CSS_SELECTOR, "dl.llm dt")],
                         [e.text for e in detail.find_elements(By.CSS_SELECTOR, "dl.llm dd")]))
        assert facts["Model"] == "gpt-4o-mini" and facts["Provider"] == "openai", facts
        inp, out = tokens.split(" \u2192 ")
        assert facts["Input tokens"] == inp and facts["Output tokens"] == out, facts
        assert span["cost_usd"] and facts["Cost"] == "$" + "%#.3g" % span["cost_usd"]
        msgs = detail.find_elements(By.CSS_SELECTOR, ".conversation .msg")
        assert [m.find_element(By.CSS_SELECTOR, ".role").get_attribute("textContent")
                for m in msgs] == ["system", "user", "assistant"], tid
        assert "You are terse." in msgs[0].text and SDK_QUESTION in msgs[1].text
        assert SDK_ANSWER in msgs[2].text and "stop" in msgs[2].text
        shot(d, tmp_path, f"trace-sdk-{service}")
    no_csp_violations(d)
