"""Real servers the integration tests need, started on loopback by the project's scripts.

`kafka` (session fixture): one Apache Kafka broker (KRaft) from scripts/kafka.sh, on free
ports in a temporary directory, stopped when the session ends. A broker that cannot
start fails the tests that need it; nothing is skipped.

`clickhouse` (session fixture): one ClickHouse server (Debian's package, 18.16) from
scripts/clickhouse.sh, on free ports in a temporary directory, stopped at the end.
"""
import os
import subprocess
import uuid

import pytest

import conftest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KAFKA_SH = os.path.join(ROOT, "scripts", "kafka.sh")
CLICKHOUSE_SH = os.path.join(ROOT, "scripts", "clickhouse.sh")


class Kafka:
    """A running broker: `bootstrap` is host:port of its PLAINTEXT listener."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.env = dict(os.environ, KAFKA_PORT=str(conftest.free_port()),
                        KAFKA_SASL_PORT=str(conftest.free_port()),
                        KAFKA_CONTROLLER_PORT=str(conftest.free_port()))
        self.bootstrap = "127.0.0.1:" + self.env["KAFKA_PORT"]

    def run(self, action):
        r = subprocess.run([KAFKA_SH, action, self.dir], env=self.env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, f"scripts/kafka.sh {action} failed:\n{r.stdout}\n{r.stderr}"

    def consume(self, topic, count, timeout=30):
        """Reads |count| messages of |topic| from the beginning: [(key, value)]."""
        from confluent_kafka import Consumer
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "test-" + uuid.uuid4().hex,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        out = []
        try:
            import time
            deadline = time.time() + timeout
            while len(out) < count and time.time() < deadline:
                m = c.poll(0.5)
                if m is None or m.error():
                    continue
                out.append((m.key(), m.value()))
        finally:
            c.close()
        assert len(out) >= count, f"{topic}: {len(out)} of {count} messages after {timeout}s"
        return out


class ClickHouse:
    """A running server: `url` is its HTTP interface; user `default`, no password."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.env = dict(os.environ, CLICKHOUSE_HTTP_PORT=str(conftest.free_port()),
                        CLICKHOUSE_TCP_PORT=str(conftest.free_port()))
        self.port = int(self.env["CLICKHOUSE_HTTP_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"

    def run(self, action):
        r = subprocess.run([CLICKHOUSE_SH, action, self.dir], env=self.env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, f"scripts/clickhouse.sh {action} failed:\n{r.stdout}\n{r.stderr}"

    def query(self, sql):
        """Runs |sql| and returns the response text; a server error fails the test."""
        import requests
        r = requests.post(self.url + "/", data=sql.encode(), timeout=30)
        assert r.status_code == 200, f"clickhouse: {r.status_code} {r.text}\n{sql}"
        return r.text

    def database(self):
        """A fresh database name, so tests sharing the server never see each other's rows."""
        return "prela_t" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory):
    c = ClickHouse(tmp_path_factory.mktemp("clickhouse"))
    c.run("start")
    yield c
    c.run("stop")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    k = Kafka(tmp_path_factory.mktemp("kafka"))
    k.run("start")
    yield k
    k.run("stop")
