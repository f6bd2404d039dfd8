"""The trace viewer (issue 14, first part): the pages the query receiver serves at `/`.

Asset serving is checked with plain HTTP (status, Content-Type, CSP, nosniff, ETag and
304, HEAD, 404 for unknown names and traversal attempts, no external URL in any asset,
auth unchanged for /api/...). The pages themselves run in a real browser: Debian's
`chromium`, headless, driven by Selenium through Debian's `chromedriver` (nothing is
downloaded). Traces go in through the collector's OTLP/HTTP receiver as OTLP/JSON: an
agent run with an LLM call (messages, tokens, cost) and a tool call, a failed payment,
and a span whose name, attribute and message hold `<img src=x onerror=...>`. The browser
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
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

XSS = "<img src=x onerror=window.__xss=1>"
MS = 10**6
BASE = (time.time_ns() // 10**9 - 600) * 10**9  # ten minutes ago, whole seconds
ASSETS = ["index.html", "app.css", "app.js", "api.js", "dom.js", "traces.js", "trace.js", "icon.svg"]

T_AGENT, T_PAY, T_XSS = "a1" * 16, "b2" * 16, "c3" * 16

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
    return [tr.get_attribute("data-trace")
            for tr in d.find_elements(By.CSS_SELECTOR, "#traces tbody tr[data-trace]")]


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
        # (the SVG's xmlns is a name, not a fetch)
        text = r.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
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
