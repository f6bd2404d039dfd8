"""Integration-test harness: runs the real prela-collector binary on loopback.

`collector` (fixture) starts the binary from PRELA_COLLECTOR_BIN (set by ctest) with a
config written into the test's temp dir on free ports, waits until every listener
answers, and on teardown stops it with SIGTERM and requires a clean exit (status 0,
which under the sanitizer build also means no leak or UB report).
"""
import os
import random
import signal
import socket
import subprocess
import time

import pytest
import requests

BIN = os.environ.get("PRELA_COLLECTOR_BIN", "")
# Every collector a test starts would otherwise open /metrics on 127.0.0.1:8888 and
# collide with the others (and with other runs on this machine): the default endpoint
# honours PRELA_METRICS_ENDPOINT, and port 0 lets the kernel pick. Collector() below
# sets a known port instead (in its process's environment).
os.environ.setdefault("PRELA_METRICS_ENDPOINT", "127.0.0.1:0")


_handed_out = set()


def free_port():
    """A port that is free now, below the kernel's ephemeral range (32768+): a port the
    kernel picked would soon be picked again for some other process's connection
    (unit tests run beside these), and the collector's bind would then fail."""
    while True:
        port = random.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


CONFIG = """
{auth}
receivers:
  prela:
    endpoint: 127.0.0.1:{ingest_port}
{prela_extra}
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
{grpc_extra}
      http:
        endpoint: 127.0.0.1:{otlp_port}
{otlp_extra}
  query:
    endpoint: 127.0.0.1:{query_port}
    store: {query_store}
{query_extra}
{receivers_extra}
processors:
  normalize:
exporters:
  local:
    directory: {data_dir}
{local_extra}
{exporters_extra}
service:
  telemetry:
    logs:
      level: info
{service_extra}
  pipelines:
    traces:
      receivers: [prela, otlp]
      processors: [normalize]
      exporters: [local]
{pipelines_extra}
"""


class Collector:
    """One running collector process and the URLs of its receivers."""

    def __init__(self, tmp_path, prela_extra="", otlp_extra="", local_extra="", data_dir=None,
                 grpc_extra="", exporters_extra="", pipelines_extra="", receivers_extra="",
                 query_store="local", auth="", read_key=None, binary=None, service_extra="",
                 query_extra=""):
        self.bin = binary or BIN  # another build (e.g. a previous release's) when given
        if not self.bin or not os.path.exists(self.bin):
            raise RuntimeError("PRELA_COLLECTOR_BIN is not set to the built binary (run under ctest)")
        self.tmp_path = tmp_path
        self.data_dir = data_dir or str(tmp_path / "data")
        self.ports = dict(ingest_port=free_port(), otlp_port=free_port(), query_port=free_port(),
                          grpc_port=free_port(), metrics_port=free_port())
        self.config_path = tmp_path / f"config-{self.ports['ingest_port']}.yaml"
        self.config_path.write_text(CONFIG.format(
            prela_extra=_indent(prela_extra, 4), otlp_extra=_indent(otlp_extra, 8),
            grpc_extra=_indent(grpc_extra, 8), local_extra=_indent(local_extra, 4),
            exporters_extra=_indent(exporters_extra, 2), receivers_extra=_indent(receivers_extra, 2),
            pipelines_extra=_indent(pipelines_extra, 4), data_dir=self.data_dir,
            service_extra=_indent(service_extra, 2),
            query_extra=_indent(query_extra, 4),
            auth=("auth:\n" + _indent(auth, 2)) if auth else "",
            query_store=query_store, **self.ports))
        self.ingest = f"http://127.0.0.1:{self.ports['ingest_port']}"
        self.otlp = f"http://127.0.0.1:{self.ports['otlp_port']}"
        self.grpc = f"127.0.0.1:{self.ports['grpc_port']}"  # OTLP/gRPC, host:port
        self.query = f"http://127.0.0.1:{self.ports['query_port']}"
        self.metrics = f"http://127.0.0.1:{self.ports['metrics_port']}"  # GET /metrics
        self.log_path = tmp_path / f"collector-{self.ports['ingest_port']}.log"
        self.read_key = read_key  # sent as X-API-Key by the query helpers below
        self.proc = None

    def spawn(self):
        """Starts the process (not waiting for it), its output to the log file."""
        self.log = open(self.log_path, "wb")
        # /metrics on the known port through the environment, not the config: a previous
        # release's binary (test_migration) knows no service.telemetry.metrics key
        env = dict(os.environ, PRELA_METRICS_ENDPOINT=f"127.0.0.1:{self.ports['metrics_port']}")
        self.proc = subprocess.Popen([self.bin, "--config", str(self.config_path)], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def start(self):
        self.spawn()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if (requests.get(self.ingest + "/health", timeout=1).ok and
                        requests.get(self.query + "/api/v1/health", timeout=1).ok and
                        requests.post(self.otlp + "/v1/traces", timeout=1).status_code in (415, 401) and
                        _accepts(self.ports["grpc_port"])):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("collector did not become ready:\n" + self.logs())

    def stop(self, timeout=30):
        """SIGTERM, wait, and return the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("collector did not stop within %ss of SIGTERM" % timeout)
        self.log.close()
        return rc

    def alive(self):
        return self.proc.poll() is None

    def logs(self):
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    # Query API helpers -------------------------------------------------------
    def get(self, path, **params):
        headers = {"X-API-Key": self.read_key} if self.read_key else {}
        return requests.get(self.query + path, params=params, headers=headers, timeout=10)

    def trace(self, trace_id):
        r = self.get(f"/api/v1/traces/{trace_id}")
        assert r.status_code == 200, r.text
        return r.json()


def _accepts(port):
    """True when something accepts TCP connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _indent(text, n):
    if not text:
        return ""
    return "\n".join(" " * n + line for line in text.strip("\n").splitlines())


CLICKHOUSE_STORE = """
clickhouse:
  host: 127.0.0.1
  port: {port}
  database: {database}
"""
CLICKHOUSE_PIPELINE = """
traces/clickhouse:
  receivers: [prela, otlp]
  processors: [normalize]
  exporters: [clickhouse]
"""


@pytest.fixture(params=["local", "clickhouse"])
def store(request):
    """The trace store a test's collectors serve the query API from, once per store: a
    module opts in with `pytestmark = pytest.mark.usefixtures("store")` and imports the
    `clickhouse` fixture (services.py). "local" is the embedded store alone; with
    "clickhouse" the receivers' spans also go to a fresh database of the ClickHouse
    server, and the query API reads them from there."""
    if request.param == "local":
        return None
    server = request.getfixturevalue("clickhouse")
    return CLICKHOUSE_STORE.format(port=server.port, database=server.database())


@pytest.fixture
def make_collector(request, tmp_path):
    """Factory: make_collector(**options) starts a collector; all are stopped at teardown.
    In a test run per store (`store` above) the collectors use that store."""
    started = []
    store = request.getfixturevalue("store") if "store" in request.fixturenames else None

    def make(**kw):
        if store:
            kw["exporters_extra"] = store + kw.get("exporters_extra", "")
            kw["pipelines_extra"] = CLICKHOUSE_PIPELINE + kw.get("pipelines_extra", "")
            kw.setdefault("query_store", "clickhouse")
        c = Collector(tmp_path, **kw).start()
        started.append(c)
        return c

    yield make
    failures = []
    for c in started:
        rc = c.stop()
        if rc != 0:
            failures.append(f"collector exited with status {rc}:\n{c.logs()}")
    assert not failures, "\n".join(failures)


@pytest.fixture
def collector(make_collector):
    return make_collector()
