"""Real servers the integration tests need, started on loopback by the project's scripts.

`kafka` (session fixture): one Apache Kafka broker (KRaft) from scripts/kafka.sh, on free
ports in a temporary directory, stopped when the session ends. A broker that cannot
start fails the tests that need it; nothing is skipped. Besides PLAINTEXT
(`bootstrap`) it has a SASL_SSL listener (`ssl_bootstrap`, user prela / prela) with a
certificate of `tls_certs`.

`kafka_cluster` (session fixture): three Kafka brokers in one KRaft cluster from
scripts/kafka.sh (KAFKA_NODES=3; replication factor 3, min.insync.replicas=2), each
killable and restartable on its own, for the failover drills.

`clickhouse` (session fixture): one ClickHouse server (Debian's package, 18.16) from
scripts/clickhouse.sh, on free ports in a temporary directory, stopped at the end. Besides
HTTP (`url`) it serves HTTPS (`https_port`) with a certificate of `tls_certs`.

`tls_certs` (session fixture): test certificates made with the `openssl` command in a
temporary directory: a CA, a server certificate it signed for localhost and 127.0.0.1,
and a second, unrelated CA for the tests that must fail verification.

`Relay`: a TCP relay in front of one of them, which can play dead (test_poison.py) or
listen on another address of this host (`outside_ipv4`: a client that must not see a
loopback address, test_clickhouse.py).
"""
import fcntl
import os
import socket
import struct
import subprocess
import threading
import uuid

import pytest

import conftest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KAFKA_SH = os.path.join(ROOT, "scripts", "kafka.sh")
CLICKHOUSE_SH = os.path.join(ROOT, "scripts", "clickhouse.sh")


class Certs:
    """PEM files in |directory|: `ca` / `ca_key` (the test CA), `cert` / `key` (a server
    certificate the CA signed, subjectAltName DNS:localhost and IP:127.0.0.1; the key is
    unencrypted PKCS#8, as Kafka's PEM key store wants it) and `other_ca` (a CA that
    signed nothing here). server_cert() makes more server certificates."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.ca, self.ca_key = self._path("ca.pem"), self._path("ca.key")
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                      "-keyout", self.ca_key, "-out", self.ca, "-subj", "/CN=Prela Test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.cert, self.key = self.server_cert("server", "DNS:localhost,IP:127.0.0.1")
        self.other_ca = self._path("other-ca.pem")
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                      "-keyout", self._path("other-ca.key"), "-out", self.other_ca,
                      "-subj", "/CN=Unrelated Test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE")

    def server_cert(self, name, alt_names):
        """A server certificate signed by the test CA for |alt_names| (openssl's
        subjectAltName syntax); returns (certificate path, key path)."""
        cert, key, csr = (self._path(f"{name}.{x}") for x in ("pem", "key", "csr"))
        ext = self._path(f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={alt_names}\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n")
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                      "-subj", f"/CN={name}")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                      "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert)
        return cert, key

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"openssl {' '.join(args)} failed:\n{r.stderr}"


class Kafka:
    """A running broker: `bootstrap` is host:port of its PLAINTEXT listener,
    `ssl_bootstrap` of its SASL_SSL listener (certificate by |certs|, SCRAM-SHA-256/512 and
    PLAIN logins for `sasl_user` / `sasl_password`)."""

    def __init__(self, directory, certs=None):
        self.dir = str(directory)
        self.env = dict(os.environ, KAFKA_PORT=str(conftest.free_port()),
                        KAFKA_SASL_PORT=str(conftest.free_port()),
                        KAFKA_CONTROLLER_PORT=str(conftest.free_port()))
        self.bootstrap = "127.0.0.1:" + self.env["KAFKA_PORT"]
        self.sasl_user = self.sasl_password = "prela"  # scripts/kafka.sh's default
        self.ssl_bootstrap = None
        if certs:
            self.env.update(KAFKA_SSL_PORT=str(conftest.free_port()), KAFKA_SSL_CERT=certs.cert,
                            KAFKA_SSL_KEY=certs.key, KAFKA_SSL_CA=certs.ca)
            self.ssl_bootstrap = "127.0.0.1:" + self.env["KAFKA_SSL_PORT"]

    def run(self, action):
        r = subprocess.run([KAFKA_SH, action, self.dir], env=self.env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, f"scripts/kafka.sh {action} failed:\n{r.stdout}\n{r.stderr}"

    def _read(self, topic, timeout, conf, enough):
        """Reads |topic| from the beginning, appending (key, value) to a list until
        enough(list) or |timeout|; returns the list."""
        import time
        from confluent_kafka import Consumer
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "test-" + uuid.uuid4().hex,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      **(conf or {})})
        c.subscribe([topic])
        out = []
        try:
            deadline = time.time() + timeout
            while not enough(out) and time.time() < deadline:
                m = c.poll(0.5)
                if m is None or m.error():
                    continue
                out.append((m.key(), m.value()))
        finally:
            c.close()
        return out

    def consume(self, topic, count, timeout=30, conf=None):
        """Reads |count| messages of |topic| from the beginning: [(key, value)]. |conf|
        (librdkafka properties) replaces the PLAINTEXT connection, e.g. ssl_conf()."""
        out = self._read(topic, timeout, conf, lambda got: len(got) >= count)
        assert len(out) >= count, f"{topic}: {len(out)} of {count} messages after {timeout}s"
        return out

    def consume_span_ids(self, topic, count, timeout=30, conf=None):
        """Like consume, until |count| spans arrived in messages of prela_json or
        otlp_proto (src/formats/otlp_prela.h): the span ids, one per span read."""
        import json
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import \
            ExportTraceServiceRequest

        def ids_of(value):
            if value[:1] == b"{":
                return [json.loads(value)["span_id"]]
            req = ExportTraceServiceRequest.FromString(value)
            return [s.span_id.hex() for rs in req.resource_spans for ss in rs.scope_spans
                    for s in ss.spans]

        got, seen = [], 0  # the ids of msgs[:seen]: each message is decoded once

        def enough(msgs):
            nonlocal seen
            for _, v in msgs[seen:]:
                got.extend(ids_of(v))
            seen = len(msgs)
            return len(got) >= count

        enough(self._read(topic, timeout, conf, enough))  # _read checks last; a no-op
        assert len(got) >= count, f"{topic}: {len(got)} of {count} spans after {timeout}s"
        return got

    def ssl_conf(self, mechanism="SCRAM-SHA-512"):
        """librdkafka properties of a client of the SASL_SSL listener that verifies the
        broker against the test CA."""
        return {"bootstrap.servers": self.ssl_bootstrap, "security.protocol": "SASL_SSL",
                "sasl.mechanisms": mechanism, "sasl.username": self.sasl_user,
                "sasl.password": self.sasl_password, "ssl.ca.location": self.env["KAFKA_SSL_CA"]}


class ClickHouse:
    """A running server: `url` is its HTTP interface; user `default`, no password, and
    user `prela` with password `prela` (scripts/clickhouse.sh). With |certs| it also
    serves HTTPS on `https_port` with certs.cert, or with |cert| = (certificate, key)."""

    def __init__(self, directory, certs=None, cert=None):
        self.dir = str(directory)
        self.env = dict(os.environ, CLICKHOUSE_HTTP_PORT=str(conftest.free_port()),
                        CLICKHOUSE_TCP_PORT=str(conftest.free_port()))
        self.port = int(self.env["CLICKHOUSE_HTTP_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.https_port = None
        if certs:
            cert_file, key_file = cert or (certs.cert, certs.key)
            self.https_port = conftest.free_port()
            self.env.update(CLICKHOUSE_HTTPS_PORT=str(self.https_port),
                            CLICKHOUSE_TLS_CERT=cert_file, CLICKHOUSE_TLS_KEY=key_file)
            if not cert:  # the script's check at start verifies only the usual certificate
                self.env["CLICKHOUSE_TLS_CA"] = certs.ca

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


_certs = None


def session_certs(tmp_path_factory):
    """The session's Certs, made on first use. (A plain function, not a fixture the
    others request: a test module imports only the fixtures it names.)"""
    global _certs
    if _certs is None:
        _certs = Certs(tmp_path_factory.mktemp("certs"))
    return _certs


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    return session_certs(tmp_path_factory)


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory):
    c = ClickHouse(tmp_path_factory.mktemp("clickhouse"), session_certs(tmp_path_factory))
    c.run("start")
    yield c
    c.run("stop")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    k = Kafka(tmp_path_factory.mktemp("kafka"), session_certs(tmp_path_factory))
    k.run("start")
    yield k
    k.run("stop")


class KafkaCluster:
    """Three brokers in one KRaft cluster (scripts/kafka.sh with KAFKA_NODES=3; each
    broker is also a controller voter), PLAINTEXT on free ports: topics auto-created with
    6 partitions, replication factor 3, min.insync.replicas=2. `bootstrap` lists every
    broker; node I (1..3) has node.id I and listens on `ports[I - 1]`."""

    NODES = 3

    def __init__(self, directory):
        self.dir = str(directory)
        self.ports = [conftest.free_port() for _ in range(self.NODES)]
        self.env = dict(os.environ, KAFKA_NODES=str(self.NODES),
                        KAFKA_PORTS=",".join(map(str, self.ports)),
                        KAFKA_CONTROLLER_PORTS=",".join(str(conftest.free_port())
                                                        for _ in range(self.NODES)))
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        self._admin = None

    def admin(self):
        """A confluent_kafka AdminClient of the cluster (one per session)."""
        if self._admin is None:
            from confluent_kafka.admin import AdminClient
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self._admin

    def run(self, action, node=None):
        """scripts/kafka.sh |action| for the whole cluster, or |action|-node for |node|."""
        args = [KAFKA_SH, action, self.dir] if node is None else [KAFKA_SH, action, str(node), self.dir]
        r = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"scripts/kafka.sh {' '.join(args[1:])} failed:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def kill_node(self, node):
        self.run("kill-node", node)

    def start_node(self, node):
        self.run("start-node", node)

    def leaders(self, topic):
        """{partition: leader node id} of |topic| from the cluster's metadata (-1: none)."""
        md = self.admin().list_topics(topic, timeout=10)
        return {p.id: p.leader for p in md.topics[topic].partitions.values()}

    def create_topic(self, topic, partitions=6, replication=3):
        """Creates |topic| (min.insync.replicas=2 from the brokers' defaults) and waits
        until every partition has a leader."""
        from confluent_kafka.admin import NewTopic
        admin = self.admin()
        fs = admin.create_topics([NewTopic(topic, partitions, replication)], operation_timeout=30)
        fs[topic].result(timeout=60)
        import time
        deadline = time.time() + 30
        while time.time() < deadline:
            md = admin.list_topics(topic, timeout=10).topics[topic]
            if len(md.partitions) == partitions and all(p.leader >= 0 and len(p.isrs) == replication
                                                        for p in md.partitions.values()):
                return
            time.sleep(0.2)
        raise AssertionError(f"{topic}: partitions without a leader or full ISR after 30s")


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory):
    k = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster"))
    k.run("start")
    yield k
    k._admin = None  # its client would log every failed reconnect while the brokers stop
    k.run("stop")


class Relay:
    """A TCP relay in front of a server on 127.0.0.1:`port`, listening on `host` (a
    free port: `self.port`): while `up`, each connection is piped to the server; while
    down, each is accepted and closed at once (the server looks gone: the client gets an
    empty reply) and counted in `refused`."""

    def __init__(self, port, host="127.0.0.1"):
        self.socket_mod = socket
        self.target = port
        self.up = True
        self.refused = 0
        self.lsock = socket.create_server((host, 0))
        self.port = self.lsock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.up:
                self.refused += 1
                c.close()
                continue
            try:
                s = self.socket_mod.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data or not self.up:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(self.socket_mod.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.lsock.close()


def outside_ipv4():
    """An IPv4 address of this machine outside 127.0.0.0/8, from its interfaces
    (SIOCGIFADDR). A machine with none fails the test that asks: nothing is skipped."""
    for _, name in socket.if_nameindex():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            r = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
        except OSError:
            continue  # no IPv4 address on this interface
        finally:
            s.close()
        addr = socket.inet_ntoa(r[20:24])
        if not addr.startswith("127."):
            return addr
    raise AssertionError("this machine has no IPv4 address outside 127.0.0.0/8")
