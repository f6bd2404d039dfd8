#!/usr/bin/env python3
"""huge_batch.py - huge batches into the embedded store, beside a well-behaved client.

Where it sits: a benchmark of the local exporter's writer (src/exporters/local.c): how
long a small request waits while the single writer takes a huge batch, and what huge
batches cost. It starts the given prela-collector on loopback (Prela receiver ->
normalize -> local store in a temp dir), posts --batches batches of --spans spans (one
span per trace, random 22-hex-digit trace ids) to /v1/batch one after the other, while a
neighbour posts one span to /v1/spans every 50 ms, and prints:
  - per batch: wall seconds;
  - the collector's CPU seconds over all batches, spans per CPU-second, peak RSS;
  - the neighbour's calls during the batches: count, p50, p99 and max latency in ms.
The first batch goes into a fresh store, so it includes the compression dictionary's
training (local_zip.h).
--one-trace: every span of every batch belongs to one trace instead (a trace growing by
many requests, as a long agent run's does: the writer must not read the trace's stored
spans at each one, local_rollup.h's known traces); it also prints the writer thread's
CPU seconds and the batches' p50 / p99 / max seconds.

Usage: bench/huge_batch.py --bin build-bench/prela-collector [--batches 4] [--spans 100000]
                           [--no-neighbour] [--one-trace]
  e.g. --one-trace --batches 1000 --spans 100: a 100,000-span trace in 1,000 requests.
Needs `requests` (the tests' venv: .venv/bin/python bench/huge_batch.py ...).
"""
import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid, name):
    total = 0.0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                comm, rest = f.read().split("(", 1)[1].rsplit(")", 1)
        except FileNotFoundError:
            continue
        if comm == name:
            fields = rest.split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--no-neighbour", action="store_true", help="the batches alone")
    ap.add_argument("--one-trace", action="store_true", help="every span in one trace")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="huge_batch.")
    ingest, query, metrics = free_port(), free_port(), free_port()
    with open(os.path.join(tmp, "config.yaml"), "w") as f:
        f.write(f"""receivers:
  prela:
    endpoint: 127.0.0.1:{ingest}
  query:
    endpoint: 127.0.0.1:{query}
    store: local
processors:
  normalize:
exporters:
  local:
    directory: {tmp}/data
    timeout: 300s
service:
  telemetry:
    logs:
      level: warn
    metrics:
      endpoint: 127.0.0.1:{metrics}
  pipelines:
    traces:
      receivers: [prela]
      processors: [normalize]
      exporters: [local]
""")
    log = open(os.path.join(tmp, "collector.log"), "w")
    proc = subprocess.Popen([args.bin, "--config", os.path.join(tmp, "config.yaml")],
                            stdout=log, stderr=log)
    base = f"http://127.0.0.1:{ingest}"
    try:
        for _ in range(200):
            try:
                requests.get(f"http://127.0.0.1:{query}/api/v1/health", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.05)
        rng = random.Random(args.seed)
        bodies = []
        one = "".join(rng.choice("0123456789abcdef") for _ in range(22)) if args.one_trace else ""
        for k in range(args.batches):
            ids = [one if args.one_trace else
                   "".join(rng.choice("0123456789abcdef") for _ in range(22))
                   for _ in range(args.spans)]
            bodies.append(json.dumps({"spans": [
                {"trace_id": t, "span_id": f"s{k}-{i}" if args.one_trace else "s",
                 "name": f"batch {k}", "started_at": "2025-01-27T10:00:00Z"}
                for i, t in enumerate(ids)]}))

        latencies, stop = [], threading.Event()

        def neighbour():
            s, k = requests.Session(), 0
            while not stop.is_set():
                k += 1
                t0 = time.monotonic()
                r = s.post(base + "/v1/spans", timeout=60, json={
                    "trace_id": f"nb-{k}", "span_id": "s", "name": "neighbour"})
                latencies.append(time.monotonic() - t0)
                assert r.status_code == 200, r.text
                time.sleep(0.05)

        th = threading.Thread(target=neighbour)
        if not args.no_neighbour:
            th.start()
        cpu0, writer0 = proc_cpu(proc.pid), thread_cpu(proc.pid, "local-writer")
        took, session = [], requests.Session()
        for k, body in enumerate(bodies):
            t0 = time.monotonic()
            r = session.post(base + "/v1/batch", data=body, timeout=600,
                             headers={"content-type": "application/json"})
            assert r.status_code == 200, r.text
            took.append(time.monotonic() - t0)
            if not args.one_trace:
                print(f"batch {k}: {args.spans} spans in {took[-1]:.2f} s")
        cpu = proc_cpu(proc.pid) - cpu0
        if args.one_trace:
            print(f"{args.batches} batches of {args.spans} spans, one trace: {sum(took):.2f} s,"
                  f" a batch p50 {pct(took, 0.5):.4f} / p99 {pct(took, 0.99):.4f} /"
                  f" max {max(took):.4f} s; writer thread"
                  f" {thread_cpu(proc.pid, 'local-writer') - writer0:.2f} CPU-s")
        stop.set()
        if not args.no_neighbour:
            th.join()
        total = args.batches * args.spans
        print(f"collector: {cpu:.2f} CPU-s, {total / cpu:,.0f} spans per CPU-s, "
              f"peak RSS {peak_rss_mb(proc.pid):.1f} MB")
        ms = [x * 1000 for x in latencies]
        if ms:
                print(f"neighbour: {len(ms)} calls, p50 {pct(ms, 0.5):.1f} ms, "
                  f"p99 {pct(ms, 0.99):.1f} ms, max {max(ms):.1f} ms")
    finally:
        if proc.poll() is not None:
            log.close()
            with open(os.path.join(tmp, "collector.log")) as f:
                print("the collector exited:", f.read()[-2000:])
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
