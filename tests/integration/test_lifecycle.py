"""Process lifecycle: flags, config errors that name the key, durable data across a
restart, graceful SIGTERM with requests in flight."""
import os
import subprocess
import threading
import time

import requests

import workload
from conftest import BIN, Collector

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, env=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, **(env or {})))


def test_version_help_validate(tmp_path):
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("prela-collector ")
    r = run("--help")
    assert r.returncode == 0 and "--config" in r.stdout and "receiver prela" in r.stdout
    assert "max_request_body_size" in r.stdout
    r = run("--validate")
    assert r.returncode == 0 and "valid" in r.stdout
    # cloud.yaml takes its connection settings from required variables (the seed's names)
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n  - {name: k, key: 0123456789abcdef0123, project: p, scopes: [ingest, read]}\n")
    # cloud.yaml serves TLS on every listener: a self-signed certificate made here.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt"),
                    "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
    cloud = dict(KAFKA_BOOTSTRAP_SERVERS="example.upstash.io:9092", KAFKA_USERNAME="u",
                 KAFKA_PASSWORD="p", CLICKHOUSE_HOST="example.clickhouse.cloud",
                 CLICKHOUSE_PASSWORD="p", PRELA_KEYS_FILE=str(keys),
                 PRELA_TLS_CERT_FILE=str(tmp_path / "tls.crt"), PRELA_TLS_KEY_FILE=str(tmp_path / "tls.key"))
    for name in sorted(os.listdir(os.path.join(REPO, "configs"))):
        r = run("--validate", "--config", os.path.join(REPO, "configs", name),
                env=cloud if name == "cloud.yaml" else {"PRELA_KEYS_FILE": str(keys)})
        assert r.returncode == 0, (name, r.stderr)
        # Every production role requires API keys; only standalone runs without (on loopback).
        if name != "standalone.yaml":
            assert "API keys required" in r.stdout, (name, r.stdout)
            env = {k: v for k, v in os.environ.items() if k != "PRELA_KEYS_FILE"}
            if name == "cloud.yaml":
                env |= {k: v for k, v in cloud.items() if k != "PRELA_KEYS_FILE"}
            r = subprocess.run([BIN, "--validate", "--config", os.path.join(REPO, "configs", name)],
                               capture_output=True, text=True, timeout=30, env=env)
            assert r.returncode == 1 and "environment variable PRELA_KEYS_FILE is not set" in r.stderr, \
                (name, r.stderr)
    for missing in cloud:
        env = {k: v for k, v in cloud.items() if k != missing}
        r = subprocess.run([BIN, "--validate", "--config", os.path.join(REPO, "configs", "cloud.yaml")],
                           capture_output=True, text=True, timeout=30,
                           env={k: v for k, v in os.environ.items() if k not in cloud} | env)
        assert r.returncode == 1 and f"environment variable {missing} is not set" in r.stderr, r.stderr
    r = run("--bogus")
    assert r.returncode == 2


def test_bad_configs_fail_naming_the_key(tmp_path):
    cases = {
        "receivers:\n  prela:\n    endpiont: 1\n": "receivers.prela.endpiont: unknown key",
        "exporters:\n  local:\n    retention: forever\n": "exporters.local.retention",
        "receivers:\n  otlp:\n    protocols:\n      http:\n        max_request_body_size: huge\n":
            "receivers.otlp.protocols.http.max_request_body_size",
        "receivers:\n  prela:\n    endpoint: ${env:PC_SURELY_UNSET}\n": "PC_SURELY_UNSET",
    }
    for i, (yaml, expect) in enumerate(cases.items()):
        base = ("receivers:\n  prela:\nexporters:\n  local:\nservice:\n  pipelines:\n    traces:\n"
                "      receivers: [prela]\n      exporters: [local]\n")
        text = yaml + base.replace("receivers:\n  prela:\n", "" if "receivers:" in yaml else
                                   "receivers:\n  prela:\n").replace(
            "exporters:\n  local:\n", "" if "exporters:" in yaml else "exporters:\n  local:\n")
        if "otlp" in yaml:
            text = text.replace("receivers: [prela]", "receivers: [otlp]")
        p = tmp_path / f"bad{i}.yaml"
        p.write_text(text)
        r = run("--validate", "--config", str(p))
        assert r.returncode == 1, (text, r.stdout)
        assert expect in r.stderr, (expect, r.stderr)
        r = run("--config", str(p))
        assert r.returncode == 1 and expect in r.stderr


def test_data_survives_restart_and_sigterm_exits_zero(tmp_path):
    c = Collector(tmp_path).start()
    traces = workload.make_traces(2)
    assert requests.post(c.otlp + "/v1/traces", data=workload.to_proto(traces),
                         headers={"Content-Type": "application/x-protobuf"}).status_code == 200
    assert c.stop() == 0
    c2 = Collector(tmp_path, data_dir=c.data_dir).start()
    try:
        for tr in traces:
            workload.check_trace(c2, tr)
    finally:
        assert c2.stop() == 0


def test_sigterm_drains_in_flight_requests(tmp_path):
    """Requests answered 200 before or during shutdown are all readable afterwards."""
    c = Collector(tmp_path).start()
    acked, stop = [], threading.Event()

    def sender():
        s = requests.Session()
        while not stop.is_set():
            tr = workload.make_traces(1)
            try:
                r = s.post(c.otlp + "/v1/traces", data=workload.to_proto(tr),
                           headers={"Content-Type": "application/x-protobuf"}, timeout=10)
            except requests.RequestException:
                return
            if r.status_code == 200:
                acked.append(tr[0])

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    assert c.stop() == 0
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 10
    c2 = Collector(tmp_path, data_dir=c.data_dir).start()
    try:
        for tr in acked:
            assert c2.trace(tr["trace_id"])["span_count"] == 10
    finally:
        assert c2.stop() == 0


def test_port_in_use_fails_startup(tmp_path, collector):
    c = Collector(tmp_path)
    c.ports["ingest_port"] = collector.ports["ingest_port"]
    c.config_path.write_text(c.config_path.read_text().replace(
        c.ingest.rsplit(":", 1)[1], str(collector.ports["ingest_port"]), 1))
    r = subprocess.run([BIN, "--config", str(c.config_path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot listen" in r.stderr
