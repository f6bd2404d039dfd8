"""The collector's outgoing TLS against real TLS servers: Kafka's SASL_SSL listener and
ClickHouse's HTTPS port (services.py), with certificates the tests make with `openssl`
(services.Certs: a test CA, a server certificate for localhost and 127.0.0.1, an unrelated
CA).

What must hold:
- kafka exporter and kafka receiver over SASL_SSL (SCRAM, verified against tls.ca_file):
  spans answered 200 are on the topic, and a storage collector reads them into its store;
- an untrusted broker certificate or a wrong SASL password is never answered 200: 503 +
  Retry-After, and the log names the cause and the setting to check;
- clickhouse exporter over https with user and password: spans land and read back through
  the query API; an untrusted certificate, a certificate for another host name or a wrong
  password fail startup at once (no retry loop), the log naming the cause.
"""
import os
import time
import uuid

import pytest
import requests

import conftest
import workload
from services import ClickHouse, clickhouse, kafka, tls_certs  # noqa: F401  (fixtures)


def post_otlp(c, traces):
    return requests.post(c.otlp + "/v1/traces", data=workload.to_proto(traces), timeout=60,
                         headers={"Content-Type": "application/x-protobuf"})


def wait_for_log(c, *needles, timeout=20):
    """Waits until the collector's log holds every one of |needles|; returns the log."""
    deadline = time.time() + timeout
    while True:
        log = c.log_path.read_text(errors="replace")
        if all(n in log for n in needles) or time.time() > deadline:
            break
        time.sleep(0.1)
    for n in needles:
        assert n in log, f"{n!r} not in the log:\n{log[-4000:]}"
    return log


# --- Kafka: SASL_SSL ------------------------------------------------------------------

def sasl_ssl(kafka, ca, mechanism="SCRAM-SHA-512", password=None, brokers=None):
    """The connection settings of a kafka exporter or receiver on the SASL_SSL listener."""
    return f"""
brokers: {brokers or kafka.ssl_bootstrap}
security.protocol: SASL_SSL
sasl.mechanism: {mechanism}
sasl.username: {kafka.sasl_user}
sasl.password: {password or kafka.sasl_password}
tls.ca_file: {ca}
"""


def gateway(make_collector, kafka, conn, topics, timeout="10s"):
    exporter = "kafka:\n" + conftest._indent(conn + f"""
timeout: {timeout}
topics:
  spans: {topics['spans']}
  traces: {topics['traces']}
""", 2)
    pipelines = """
traces/kafka:
  receivers: [otlp]
  processors: [normalize]
  exporters: [kafka]
"""
    return make_collector(exporters_extra=exporter, pipelines_extra=pipelines)


def storage(make_collector, tmp_path, conn, topics):
    receiver = "kafka:\n" + conftest._indent(conn + f"""
group_id: tls-{uuid.uuid4().hex[:8]}
topics: [{topics['spans']}]
max_batch_wait: 50ms
""", 2)
    pipelines = """
traces/kafka:
  receivers: [kafka]
  processors: [normalize]
  exporters: [local]
"""
    return make_collector(receivers_extra=receiver, pipelines_extra=pipelines,
                          data_dir=str(tmp_path / "storage"))


def topics_for(run):
    return {"spans": f"tls-spans-{run}", "traces": f"tls-traces-{run}"}


def test_kafka_sasl_ssl_round_trip(make_collector, tmp_path, kafka, tls_certs):
    """Gateway (SCRAM-SHA-512 over TLS, bootstrapping by the name localhost) → the SASL_SSL
    listener → storage (SCRAM-SHA-256 over TLS, by the address 127.0.0.1) → embedded store:
    the broker's certificate is verified against the test CA by host name and by IP
    address, and what was answered 200 is on the topic and in the storage's store."""
    topics = topics_for(uuid.uuid4().hex[:8])
    port = kafka.ssl_bootstrap.rsplit(":", 1)[1]
    gw = gateway(make_collector, kafka,
                 sasl_ssl(kafka, tls_certs.ca, brokers=f"localhost:{port}"), topics)
    traces = workload.make_traces(2)
    r = post_otlp(gw, traces)
    assert r.status_code == 200, (r.text, gw.logs())

    # on the topic, read by an independent client over SASL_SSL
    ids = kafka.consume_span_ids(topics["spans"], 20, conf=kafka.ssl_conf())
    assert sorted(ids) == sorted(s["span_id"] for t in traces for s in t["spans"])

    st = storage(make_collector, tmp_path, sasl_ssl(kafka, tls_certs.ca, "SCRAM-SHA-256"), topics)
    for t in traces:
        deadline = time.time() + 60
        while True:
            r = st.get(f"/api/v1/traces/{t['trace_id']}")
            if r.status_code == 200 and len(r.json()["spans"]) == len(t["spans"]):
                break
            assert time.time() < deadline, f"{t['trace_id']} not stored:\n{st.logs()}"
            time.sleep(0.2)
        assert sorted(s["span_id"] for s in r.json()["spans"]) == \
            sorted(s["span_id"] for s in t["spans"])
    for c in (gw, st):
        assert "check tls.ca_file" not in c.logs() and "_AUTHENTICATION" not in c.logs(), c.logs()


def test_kafka_untrusted_certificate(make_collector, tmp_path, kafka, tls_certs):
    """tls.ca_file is a CA that did not sign the broker's certificate: the exporter answers
    503 (never 200) and logs the verification failure; the receiver logs it too."""
    topics = topics_for(uuid.uuid4().hex[:8])
    conn = sasl_ssl(kafka, tls_certs.other_ca)
    gw = gateway(make_collector, kafka, conn, topics, timeout="2s")
    r = post_otlp(gw, workload.make_traces(1))
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
    wait_for_log(gw, "certificate verify failed", "check tls.ca_file")

    st = storage(make_collector, tmp_path, conn, topics)
    wait_for_log(st, "certificate verify failed", "check tls.ca_file")


def test_kafka_wrong_password(make_collector, kafka, tls_certs):
    """The right CA but a wrong SASL password: 503, and the log says authentication
    failed and which settings to check."""
    topics = topics_for(uuid.uuid4().hex[:8])
    gw = gateway(make_collector, kafka, sasl_ssl(kafka, tls_certs.ca, password="not-prela"),
                 topics, timeout="3s")
    r = post_otlp(gw, workload.make_traces(1))
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
    log = wait_for_log(gw, "_AUTHENTICATION", "check sasl.username, sasl.password")
    assert "invalid credentials" in log and "certificate verify failed" not in log, log


# --- ClickHouse: https ----------------------------------------------------------------

def ch_exporter(port, db, ca, host="127.0.0.1", password="prela", extra=""):
    return f"""
clickhouse:
  host: {host}
  port: {port}
  user: prela
  password: {password}
  database: {db}
  timeout: 10s
  tls.ca_file: {ca}
{extra}"""


CH_PIPELINE = """
traces/ch:
  receivers: [otlp]
  processors: [normalize]
  exporters: [clickhouse]
"""


@pytest.mark.parametrize("host,secure", [("127.0.0.1", ""), ("localhost", "  secure: true")])
def test_clickhouse_https_round_trip(make_collector, clickhouse, tls_certs, host, secure):
    """Over https to the name or the address in the certificate, verified against the test
    CA, as user prela with its password: spans land in ClickHouse and read back through the
    query API. (secure: auto turns https on because tls.ca_file is set.)"""
    db = clickhouse.database()
    c = make_collector(exporters_extra=ch_exporter(clickhouse.https_port, db, tls_certs.ca,
                                                   host=host, extra=secure),
                       pipelines_extra=CH_PIPELINE, query_store="clickhouse")
    assert f"at https://{host}:{clickhouse.https_port}/ as prela" in c.logs(), c.logs()
    traces = workload.make_traces(2)
    r = post_otlp(c, traces)
    assert r.status_code == 200, (r.text, c.logs())
    for t in traces:
        workload.check_trace(c, t)
    # in the server, seen over its plain HTTP port by another user
    assert clickhouse.query(f"SELECT count() FROM {db}.spans").strip() == "20"


def failed_start(tmp_path, exporter, limit=8):
    """Starts a collector with |exporter| that must refuse to start within |limit| s (the
    exporter's timeout is 10 s: no retry loop); returns its log."""
    c = conftest.Collector(tmp_path, exporters_extra=exporter, pipelines_extra=CH_PIPELINE,
                           query_store="clickhouse")
    t0 = time.time()
    with pytest.raises(RuntimeError, match="collector exited"):
        c.start()
    assert time.time() - t0 < limit, c.logs()
    assert c.proc.returncode != 0
    c.log.close()
    return c.logs()


def test_clickhouse_untrusted_certificate(tmp_path, clickhouse, tls_certs):
    """A CA that did not sign the server's certificate: startup fails at once, naming the
    certificate problem and tls.ca_file."""
    log = failed_start(tmp_path, ch_exporter(clickhouse.https_port, clickhouse.database(),
                                             tls_certs.other_ca))
    assert "cannot reach ClickHouse: TLS: SSL certificate problem" in log, log
    assert f"check tls.ca_file ({tls_certs.other_ca})" in log, log


def test_clickhouse_wrong_password(tmp_path, clickhouse, tls_certs):
    """TLS is fine but the password is wrong: startup fails at once, saying authentication
    failed, with the server's own words."""
    log = failed_start(tmp_path, ch_exporter(clickhouse.https_port, clickhouse.database(),
                                             tls_certs.ca, password="not-prela"))
    assert "authentication failed (check user and password): HTTP 401" in log, log
    assert "Wrong password for user prela" in log, log


def test_clickhouse_certificate_for_another_host(tmp_path, tls_certs):
    """A server whose certificate the test CA signed for another name: the host name check
    refuses it (a trusted CA is not enough)."""
    cert = tls_certs.server_cert("elsewhere", "DNS:elsewhere.example")
    srv = ClickHouse(tmp_path / "ch-elsewhere", tls_certs, cert=cert)
    srv.run("start")
    try:
        log = failed_start(tmp_path, ch_exporter(srv.https_port, srv.database(), tls_certs.ca))
    finally:
        srv.run("stop")
    assert "cannot reach ClickHouse: TLS:" in log and "127.0.0.1" in log, log
    assert "does not match" in log or "no alternative certificate subject name" in log, log


def test_clickhouse_password_changed_while_running(make_collector, tmp_path, tls_certs):
    """The server starts refusing the password while the collector runs: requests are
    answered 503 (never 200, nothing dropped), the log says authentication failed; once
    the password is accepted again, so are the requests."""
    srv = ClickHouse(tmp_path / "ch-password", tls_certs)
    srv.run("start")
    try:
        db = srv.database()
        c = make_collector(exporters_extra=ch_exporter(srv.https_port, db, tls_certs.ca)
                           .replace("timeout: 10s", "timeout: 3s"),
                           pipelines_extra=CH_PIPELINE, query_store="clickhouse")
        assert post_otlp(c, workload.make_traces(1)).status_code == 200

        users = tmp_path / "ch-password" / "users.xml"  # the server reloads it by itself
        original = users.read_text()
        rewrite(users, original.replace("<password>prela</password>",
                                        "<password>rotated</password>"), 10)
        wait_password(srv, "prela", 401)
        refused = workload.make_traces(1)
        r = post_otlp(c, refused)
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
        wait_for_log(c, "authentication failed (check user and password): HTTP 401")

        rewrite(users, original, 20)
        wait_password(srv, "prela", 200)
        assert post_otlp(c, refused).status_code == 200, c.logs()
        workload.check_trace(c, refused[0])
        assert srv.query(f"SELECT count() FROM {db}.spans").strip() == "20"
    finally:
        srv.run("stop")


def rewrite(path, text, ahead):
    """Writes |path| and dates it |ahead| s from now: the server notices a changed
    modification time, which a rewrite within the same second would not change."""
    path.write_text(text)
    t = time.time() + ahead
    os.utime(path, (t, t))


def wait_password(srv, password, status, timeout=30):
    """Waits until user prela with |password| gets HTTP |status| from |srv|."""
    deadline = time.time() + timeout
    while True:
        r = requests.post(srv.url + "/", data=b"SELECT 1", auth=("prela", password), timeout=10)
        if r.status_code == status:
            return
        assert time.time() < deadline, (r.status_code, r.text)
        time.sleep(0.2)


def test_insecure_skip_verify(make_collector, tmp_path, kafka, clickhouse, tls_certs):
    """tls.insecure_skip_verify (testing only) connects despite an untrusted certificate,
    to Kafka and to ClickHouse alike."""
    topics = topics_for(uuid.uuid4().hex[:8])
    db = clickhouse.database()
    kafka_conn = sasl_ssl(kafka, tls_certs.other_ca) + "tls.insecure_skip_verify: true\n"
    exporters = ch_exporter(clickhouse.https_port, db, tls_certs.other_ca,
                            extra="  tls.insecure_skip_verify: true") + \
        "\nkafka:\n" + conftest._indent(kafka_conn + f"""
topics:
  spans: {topics['spans']}
  traces: {topics['traces']}
""", 2)
    c = make_collector(exporters_extra=exporters, query_store="clickhouse",
                       pipelines_extra=CH_PIPELINE + """
traces/kafka:
  receivers: [otlp]
  processors: [normalize]
  exporters: [kafka]
""")
    traces = workload.make_traces(1)
    assert post_otlp(c, traces).status_code == 200, c.logs()
    workload.check_trace(c, traces[0])
    assert len(kafka.consume_span_ids(topics["spans"], 10, conf=kafka.ssl_conf())) == 10
