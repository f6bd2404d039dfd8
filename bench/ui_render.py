"""ui_render.py - the trace viewer's render benchmark (issue 14): how long the browser
takes to show the trace list over 10,000 traces, a 1,000-span trace's waterfall, and a
span selected in it; and how big the UI is. Prints figures; never passes or fails on them.

Position: run by scripts/bench-ui.sh, which builds and starts a standalone collector
(configs/standalone.yaml, the embedded store) on free ports in a temp dir and passes its
OTLP/HTTP and query URLs here. This program loads the traces through the OTLP/HTTP
receiver, then drives Debian's headless `chromium` through Debian's `chromedriver` with
Selenium (as tests/integration/test_ui.py does; nothing is downloaded).

What is measured (bench/README.md, "Trace viewer"), each over --rounds fresh page loads
with the browser cache off (every round fetches every asset, as a first visit does):
  list      navigation start (performance.timeOrigin) to the moment the Traces page marks
            itself rendered (#main gets data-ready="traces", set by app.js right after the
            rows are in the DOM), and to the end of the next frame after that (two
            requestAnimationFrame callbacks: style, layout and paint of the rows done).
            A MutationObserver installed before any page script (CDP
            Page.addScriptToEvaluateOnNewDocument) records performance.now() there.
  waterfall the same for #/trace/{id} of the 1,000-span trace (data-ready="trace": all
            1,000 .wf-row bars in the DOM), and its next frame.
  select    in that loaded waterfall, a click on a row (a different one each round, deep in
            the tree): the click handler's own time (the row marked, the detail panel
            rebuilt) and the time to the end of the next frame.
  size      every asset fetched from the server: raw bytes, and gzip -9 per file (the
            server sends them uncompressed; this is what a compressing proxy would send).
"""
import argparse
import gzip
import json
import os
import random
import shutil
import statistics
import sys
import time

import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

MS = 10**6
UI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "receivers", "ui")

# Installed before the page's own scripts: records when #main's data-ready becomes a page
# name, and the end of the frame after it.
OBSERVER = """
window.__bench = {};
new MutationObserver((records) => {
  for (const r of records) {
    const page = r.target.dataset && r.target.dataset.ready;
    if (r.target.id !== 'main' || !page || window.__bench[page]) continue;
    const dom = performance.now();
    const rows = document.querySelectorAll('#traces tbody tr[data-trace], .wf-row').length;
    const nav = performance.getEntriesByType('navigation')[0];
    const api = performance.getEntriesByType('resource')
      .filter((e) => e.name.includes('/api/v1/')).pop();
    window.__bench[page] = { dom, rows, dcl: nav.domContentLoadedEventEnd,
                             api: api ? api.responseEnd : null,
                             apiTook: api ? api.responseEnd - api.startTime : null };
    requestAnimationFrame(() => requestAnimationFrame(() => {
      window.__bench[page].frame = performance.now();
    }));
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-ready'] });
"""

SELECT = """
const [spanId, done] = arguments;
const row = document.querySelector(`.wf-row[data-span="${spanId}"]`);
const t0 = performance.now();
row.click();
const handler = performance.now() - t0;
requestAnimationFrame(() => requestAnimationFrame(() => {
  const sel = document.querySelector('.wf-row.selected');
  done({ handler, frame: performance.now() - t0,
         selected: sel && sel.dataset.span,
         detail: document.getElementById('span-name').textContent });
}));
"""


# ------------------------------------------------------------------- data --

def _val(v):
    if isinstance(v, int):
        return {"intValue": str(v)}
    return {"stringValue": v}


def _span(trace, sid, name, start_ns, dur_ms, parent="", **attrs):
    s = {"traceId": trace, "spanId": sid, "name": name, "kind": 1,
         "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + dur_ms * MS),
         "attributes": [{"key": k, "value": _val(v)} for k, v in attrs.items()]}
    if parent:
        s["parentSpanId"] = parent
    return s


def _llm_attrs(rng, i):
    msgs = [{"role": "user", "parts": [{"type": "text", "content": f"question {i}"}]}]
    out = [{"role": "assistant", "finish_reason": "stop",
            "parts": [{"type": "text", "content": f"answer {i}"}]}]
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": rng.choice(["gpt-4o-mini", "gpt-4o"]),
            "gen_ai.usage.input_tokens": rng.randint(50, 4000),
            "gen_ai.usage.output_tokens": rng.randint(5, 800),
            "gen_ai.input.messages": json.dumps(msgs), "gen_ai.output.messages": json.dumps(out)}


def small_trace(rng, i, start_ns):
    """An agent run: agent > (chat, execute_tool). Trace ids 0000...i."""
    tid = "%032x" % (i + 1)
    base = (i + 1) << 8
    root, llm, tool = ("%016x" % (base + k) for k in (1, 2, 3))
    svc = "bench-svc-%d" % (i % 7)
    return svc, [
        _span(tid, root, "agent run", start_ns, 900, **{"gen_ai.operation.name": "invoke_agent"}),
        _span(tid, llm, "chat", start_ns + 20 * MS, 500, parent=root, **_llm_attrs(rng, i)),
        _span(tid, tool, "execute_tool search", start_ns + 540 * MS, 300, parent=root,
              **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
    ]


BIG_TRACE = "b1" * 16


def big_trace(rng, n, start_ns):
    """One trace of |n| spans: a root, 111 steps (alternating agent and tool), each with
    up to 8 children (LLM calls and tools) in sequence: a tree 3 deep, every row on the
    time axis at its own place. Returns (spans, the span ids in waterfall order)."""
    spans, order = [], []
    sid = iter("%016x" % (0xb000000000000000 + k) for k in range(1, n + 1))
    root = next(sid)
    spans.append(_span(BIG_TRACE, root, "agent session", start_ns, 120_000,
                       **{"gen_ai.operation.name": "invoke_agent"}))
    order.append(root)
    left, t, step = n - 1, start_ns, 0
    while left > 0:
        step_id = next(sid)
        kids = min(8, left - 1)
        spans.append(_span(BIG_TRACE, step_id, f"step {step}", t, 1000 * (kids + 1), parent=root,
                           **({"gen_ai.operation.name": "invoke_agent"} if step % 2 == 0 else
                              {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "x"})))
        order.append(step_id)
        left -= 1
        for k in range(kids):
            kid = next(sid)
            if k % 2 == 0:
                spans.append(_span(BIG_TRACE, kid, f"chat {step}.{k}", t + k * 1000 * MS, 800,
                                   parent=step_id, **_llm_attrs(rng, step * 10 + k)))
            else:
                spans.append(_span(BIG_TRACE, kid, f"tool {step}.{k}", t + k * 1000 * MS, 600,
                                   parent=step_id, **{"gen_ai.operation.name": "execute_tool",
                                                      "gen_ai.tool.name": "lookup"}))
            order.append(kid)
            left -= 1
        t += 1000 * (kids + 1) * MS
        step += 1
    spans[0]["endTimeUnixNano"] = str(t)  # the root covers every step
    assert len(spans) == n
    return spans, order


def post(session, otlp, by_service):
    body = {"resourceSpans": [
        {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
         "scopeSpans": [{"scope": {"name": "bench-ui"}, "spans": spans}]}
        for svc, spans in by_service.items()]}
    r = session.post(otlp + "/v1/traces", data=json.dumps(body),
                     headers={"Content-Type": "application/json"}, timeout=60)
    if r.status_code != 200:
        sys.exit(f"bench-ui: OTLP/HTTP answered {r.status_code}: {r.text[:300]}")


def load(args, query):
    rng = random.Random(args.seed)
    s = requests.Session()
    now = time.time_ns()
    # the small traces over the last 6 hours, oldest first; the big one an hour ago
    t0 = time.time()
    last_ids = []
    for b in range(0, args.traces, args.batch):
        by_service = {}
        for i in range(b, min(b + args.batch, args.traces)):
            start = now - 6 * 3600 * 10**9 + i * (6 * 3600 * 10**9 // args.traces)
            svc, spans = small_trace(rng, i, start)
            by_service.setdefault(svc, []).extend(spans)
        post(s, args.otlp, by_service)
        last_ids.append("%032x" % min(b + args.batch, args.traces))
    spans, order = big_trace(rng, args.spans, now - 3600 * 10**9)
    for k in range(0, len(spans), 500):
        post(s, args.otlp, {"bench-big": spans[k:k + 500]})
    sent = time.time() - t0
    # readable: the last trace of every batch, and the big trace with all its spans
    deadline = time.time() + 120
    for tid in last_ids + [BIG_TRACE]:
        while True:
            r = s.get(query + "/api/v1/traces/" + tid, timeout=30)
            if r.status_code == 200 and (tid != BIG_TRACE or r.json()["span_count"] == args.spans):
                break
            if time.time() > deadline:
                sys.exit(f"bench-ui: trace {tid} not readable after 120 s ({r.status_code})")
            time.sleep(0.1)
    total = args.traces * 3 + args.spans
    print(f"loaded {args.traces:,} traces of 3 spans + 1 trace of {args.spans:,} spans "
          f"({total:,} spans) through OTLP/HTTP in batches of {args.batch} traces: "
          f"sent in {sent:.1f} s, readable after {time.time() - t0:.1f} s")
    return order


# ---------------------------------------------------------------- browser --

def browser():
    chrome = shutil.which("chromium") or "/usr/bin/chromium"
    driver_bin = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(chrome) and os.path.exists(driver_bin)):
        sys.exit("bench-ui: chromium and chromium-driver are needed (scripts/setup.sh)")
    opts = Options()
    opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1440,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(executable_path=driver_bin), options=opts)
    d.set_page_load_timeout(60)
    d.set_script_timeout(60)
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER})
    return d


def timed_load(d, url, page, want_rows):
    """A fresh navigation to |url|; returns (ms to data-ready=page, ms to the next frame,
    ms to DOMContentLoaded (the modules have run), ms to the API answer's last byte, the
    API request's own ms)."""
    d.get("about:blank")
    d.get(url)
    WebDriverWait(d, 60).until(
        lambda d: d.execute_script("const b = window.__bench && window.__bench[arguments[0]];"
                                   "return b && b.frame !== undefined", page))
    b = d.execute_script("return window.__bench[arguments[0]]", page)
    if b["rows"] != want_rows:
        sys.exit(f"bench-ui: {page} rendered {b['rows']} rows, expected {want_rows}")
    return b["dom"], b["frame"], b["dcl"], b["api"], b["apiTook"]


def stats(xs):
    return statistics.median(xs), max(xs)


def ui_size(query):
    names = sorted(os.listdir(UI_DIR))
    raw = gz = 0
    for name in names:
        path = "/" if name == "index.html" else "/ui/" + name
        r = requests.get(query + path, headers={"Accept-Encoding": "identity"}, timeout=10)
        r.raise_for_status()
        raw += len(r.content)
        gz += len(gzip.compress(r.content, 9))
    return len(names), raw, gz


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--otlp", required=True, help="OTLP/HTTP base URL (http://127.0.0.1:PORT)")
    ap.add_argument("--query", required=True, help="query receiver base URL")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--traces", type=int, default=10_000)
    ap.add_argument("--spans", type=int, default=1_000, help="spans of the big trace")
    ap.add_argument("--batch", type=int, default=200, help="traces per OTLP request")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    order = load(args, args.query)
    count = requests.get(args.query + "/api/v1/traces", params={"limit": 1}, timeout=30).json()
    d = browser()
    try:
        version = d.capabilities.get("browserVersion", "?")
        page_rows = None
        lists, wfs, sel_h, sel_f = [], [], [], []
        for rnd in range(args.rounds):
            if page_rows is None:  # rows the first page shows (its default limit)
                d.get(args.query + "/#/traces")
                WebDriverWait(d, 60).until(lambda d: d.execute_script(
                    "return window.__bench && window.__bench.traces"))
                page_rows = d.execute_script("return window.__bench.traces.rows")
            lists.append(timed_load(d, args.query + "/#/traces", "traces", page_rows))
            wfs.append(timed_load(d, args.query + "/#/trace/" + BIG_TRACE, "trace", args.spans))
            # a row deep in the tree, a different one each round
            target = order[len(order) * (rnd + 1) // (args.rounds + 2)]
            r = d.execute_async_script(SELECT, target)
            if r["selected"] != target:
                sys.exit(f"bench-ui: selecting {target} selected {r['selected']}")
            sel_h.append(r["handler"])
            sel_f.append(r["frame"])
    finally:
        d.quit()
    files, raw, gz = ui_size(args.query)

    print(f"chromium {version}, headless, 1440x1000, cache off; {args.rounds} rounds; "
          f"list page: {page_rows} rows of the newest "
          f"({'more' if count.get('next') else 'no more'} pages behind it)")
    print()
    print(f"{'measure (ms from navigation start, or from the click)':58} {'p50':>8} {'max':>8}")
    big = f"{args.spans:,}-span waterfall"
    rows = [
        ("trace list: DOMContentLoaded (modules run)", [x[2] for x in lists]),
        ("trace list: /api/v1/traces answered", [x[3] for x in lists]),
        ("  its API request, start to last byte", [x[4] for x in lists]),
        ("trace list: rows in the DOM (data-ready=traces)", [x[0] for x in lists]),
        ("trace list: next frame painted", [x[1] for x in lists]),
        (f"{big}: DOMContentLoaded", [x[2] for x in wfs]),
        (f"{big}: /api/v1/traces/{{id}} answered", [x[3] for x in wfs]),
        ("  its API request, start to last byte", [x[4] for x in wfs]),
        (f"{big}: bars in the DOM (data-ready=trace)", [x[0] for x in wfs]),
        (f"{big}: next frame painted", [x[1] for x in wfs]),
        ("select a span: click handler", sel_h),
        ("select a span: next frame painted", sel_f),
    ]
    for label, xs in rows:
        p50, mx = stats(xs)
        print(f"{label:58} {p50:8.1f} {mx:8.1f}")
    print()
    print(f"UI size: {files} files, {raw:,} bytes raw ({raw / 1024:.1f} KiB), "
          f"{gz:,} bytes gzip -9 file by file ({gz / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
