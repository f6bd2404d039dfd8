"""The kafka exporter's disk spool: "200" means "in Kafka or on this disk".

A gateway with `spool` set gives the brokers `spool.after` to acknowledge a batch; what
they did not take by then is appended to the spool (CRC-framed segments, fsync before the
answer) and the request is answered 200. A drainer replays the spool when the brokers are
back. Here the real broker (scripts/kafka.sh) is stopped under steady load, the gateway is
SIGKILLed while spooling and restarted, and every span that was answered 200 must reach the
topic (counted by span id). A spool that is full answers 503, never 200.
"""
import json
import threading
import time
import uuid

import requests

import workload
from services import clickhouse, kafka  # noqa: F401  (fixtures)
from test_kafka_export import kafka_collector
from test_metrics import scrape, val

PROTO = {"Content-Type": "application/x-protobuf"}


def spool_collector(make_collector, tmp_path, brokers, run, after="1s", timeout="5s",
                    max_size="1GiB", fsync="batch"):
    spool_dir = tmp_path / f"spool-{run}"
    c, topics = kafka_collector(make_collector, None, run, timeout=timeout, brokers=brokers,
                                settings=f"""
encoding: prela_json  # one message per span: span_ids_on reads them
spool:
  directory: {spool_dir}
  max_size: {max_size}
  fsync: {fsync}
  after: {after}
""")
    return c, topics, spool_dir


def kafka_health(c):
    r = requests.get(c.ingest + "/health", timeout=10)
    states = {e["id"]: e for e in r.json()["exporters"]}
    return r.status_code, r.json()["status"], states["kafka"]


class Load:
    """Sends one trace (10 spans) per request over OTLP/HTTP, every |period| s, from a
    thread; records the span ids of every request answered 200, and every other answer."""

    def __init__(self, c, period=0.05):
        self.c, self.period = c, period
        self.acked, self.refused, self.unreachable = set(), [], 0
        self.answers_200 = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_flag.is_set():
            traces = workload.make_traces(1)
            ids = {s["span_id"] for s in traces[0]["spans"]}
            try:
                r = requests.post(self.c.otlp + "/v1/traces", data=workload.to_proto(traces),
                                  headers=PROTO, timeout=30)
            except requests.RequestException:
                self.unreachable += 1  # the gateway is being restarted: no answer at all
            else:
                if r.status_code == 200:
                    self.acked |= ids
                    self.answers_200 += 1
                else:
                    self.refused.append((time.time(), r.status_code, r.text[:200]))
            time.sleep(self.period)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(60)


def span_ids_on(kafka, topic, want, timeout):
    """Reads |topic| from the beginning until every id of |want| was seen or |timeout|
    passed: (ids seen, messages read)."""
    from confluent_kafka import Consumer
    cons = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "t-" + uuid.uuid4().hex,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    cons.subscribe([topic])
    seen, messages = set(), 0
    deadline = time.time() + timeout
    try:
        while not want <= seen and time.time() < deadline:
            m = cons.poll(0.5)
            if m is None or m.error():
                continue
            messages += 1
            seen.add(json.loads(m.value())["span_id"])
    finally:
        cons.close()
    return seen, messages


def test_kafka_down_60s_spooled_sigkilled_and_drained(make_collector, kafka, tmp_path):
    c, topics, spool_dir = spool_collector(make_collector, tmp_path, kafka.bootstrap, "drill")
    with Load(c) as load:
        time.sleep(3)
        before = load.answers_200
        assert before > 10 and not load.refused, load.refused
        assert kafka_health(c)[:2] == (200, "healthy")

        down = time.time()
        kafka.run("stop")
        try:
            time.sleep(15)
            code, status, k = kafka_health(c)
            assert (code, status, k["state"]) == (200, "degraded", "degraded"), k
            assert k["reason"].startswith("spooling to disk"), k
            assert any(spool_dir.glob("*.seg")), list(spool_dir.iterdir())

            c.proc.kill()  # SIGKILL while spooling
            c.proc.wait()
            c.log.close()
            killed = time.time()
            c.start()
            restart = time.time() - killed
            while time.time() - down < 60:
                time.sleep(0.5)
            during = load.answers_200 - before
        finally:
            kafka.run("start")
        back = time.time()
        time.sleep(3)
    assert not load.refused, load.refused[:5]
    assert during > 300, during  # answered 200 from the spool all along (about 20 per second)

    seen, messages = span_ids_on(kafka, topics["spans"], load.acked, 180)
    drained = time.time() - back
    missing = load.acked - seen
    assert not missing, f"{len(missing)} of {len(load.acked)} acknowledged spans not on the topic"
    deadline = time.time() + 60
    while kafka_health(c)[1] != "healthy" and time.time() < deadline:
        time.sleep(0.5)
    code, status, k = kafka_health(c)
    assert (code, status) == (200, "healthy"), k  # healthy again: the spool is empty
    print(f"\nspool drill: {len(load.acked)} spans acknowledged ({during} requests answered 200 "
          f"while Kafka was down 60 s), restart after SIGKILL {restart:.2f} s, every one on the "
          f"topic {drained:.1f} s after Kafka was started ({messages} messages read, "
          f"{messages - len(seen)} duplicates), no request refused")


def test_full_spool_answers_503_and_keeps_what_it_took(make_collector, kafka, tmp_path):
    # Nothing listens on the broker address: every batch goes to a 64 KiB spool.
    import conftest
    dead = f"127.0.0.1:{conftest.free_port()}"
    c, topics, spool_dir = spool_collector(make_collector, tmp_path, dead, "full",
                                           after="200ms", timeout="1s", max_size="64KiB",
                                           fsync="always")
    acked, codes = set(), []
    for _ in range(200):
        traces = workload.make_traces(1)
        r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(traces), headers=PROTO,
                          timeout=30)
        codes.append(r.status_code)
        if r.status_code == 200:
            acked |= {s["span_id"] for s in traces[0]["spans"]}
        else:
            assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.text)
        if codes[-3:] == [503] * 3:
            break
    assert 200 in codes and codes[-1] == 503, codes
    # Records differ by a few bytes, so one smaller than a refused one may still fit
    # (seen: the spool filled to 65,535 of its 65,536 bytes); the bound holds either way.
    assert sum(f.stat().st_size for f in spool_dir.glob("*.seg")) <= 64 * 1024, codes
    deadline = time.time() + 30  # unavailable once no broker was reachable for `timeout`
    while kafka_health(c)[0] != 503 and time.time() < deadline:
        time.sleep(0.2)
    code, status, k = kafka_health(c)
    assert (code, status, k["state"]) == (503, "unhealthy", "unavailable"), k
    assert "spool refuses" in k["reason"] and "full" in k["reason"], k
    m = scrape(c)  # /metrics says the same, through a real Prometheus parser
    spooled = len(acked) // 10
    assert val(m, "prela_spool_appended_records_total", exporter="kafka") == spooled, m
    assert val(m, "prela_spool_records", exporter="kafka") == spooled
    assert val(m, "otelcol_exporter_queue_size", exporter="kafka") == spooled
    assert val(m, "prela_spool_refused_records_total", exporter="kafka") == codes.count(503)
    assert 0 < val(m, "prela_spool_disk_bytes", exporter="kafka") <= 65536

    # The brokers come back (the same spool, now pointed at the real broker): every span
    # answered 200 reaches the topic.
    assert c.stop() == 0
    c.config_path.write_text(c.config_path.read_text().replace(dead, kafka.bootstrap))
    c.start()
    seen, _ = span_ids_on(kafka, topics["spans"], acked, 120)
    assert acked <= seen, f"{len(acked - seen)} of {len(acked)} acknowledged spans lost"
    print(f"\nfull spool: {len(acked)} spans acknowledged before the 64 KiB spool was full, "
          f"then {codes.count(503)} requests answered 503; all {len(acked)} delivered later")


def ch_spool_collector(make_collector, clickhouse, spool_dir, after):
    """A collector whose otlp receiver feeds the clickhouse exporter directly, with a
    spool in |spool_dir| and `spool.after` |after|."""
    from conftest import CLICKHOUSE_STORE
    exporter = CLICKHOUSE_STORE.format(port=clickhouse.port, database=clickhouse.database()) + f"""
  timeout: 3s
  spool:
    directory: {spool_dir}
    after: {after}
"""
    return make_collector(exporters_extra=exporter, query_store="clickhouse", pipelines_extra="""
traces/clickhouse:
  receivers: [otlp]
  processors: [normalize]
  exporters: [clickhouse]
""")


def span_counts(c, want, within):
    """Polls the query API until each trace of |want| (trace id -> spans) has its span
    count, or |within| seconds passed; returns what it last read. Then checks a few
    traces hold each span once."""
    deadline, got = time.time() + within, {}
    while time.time() < deadline:
        got = {}
        for tid in want:
            r = c.get(f"/api/v1/traces/{tid}")
            if r.status_code == 200:
                got[tid] = r.json()["trace"]["span_count"]
        if got == want:
            break
        time.sleep(0.5)
    for tid in list(got)[-3:]:  # stored once: no span twice
        spans = c.get(f"/api/v1/traces/{tid}").json()["spans"]
        assert len({s["span_id"] for s in spans}) == len(spans) == got[tid]
    return got


def ch_spool_drained(c, records):
    """Checks the clickhouse exporter's spool took and delivered |records| batches and holds
    none; returns its insert statements so far."""
    m = scrape(c)
    assert val(m, "prela_spool_appended_records_total", exporter="clickhouse") == records
    assert val(m, "prela_spool_drained_records_total", exporter="clickhouse") == records
    assert val(m, "prela_spool_records", exporter="clickhouse") == 0
    return val(m, "prela_clickhouse_insert_duration_seconds_count", exporter="clickhouse")


def test_clickhouse_fed_directly_spools_while_the_server_is_down(make_collector, clickhouse,
                                                                 tmp_path):
    """The clickhouse exporter fed by receivers (no Kafka in front): with `spool` set,
    requests are answered 200 from the spool while the server is stopped, health says
    degraded, and every span is stored (once) after the server is back."""
    spool_dir = tmp_path / "ch-spool"
    c = ch_spool_collector(make_collector, clickhouse, spool_dir, "1s")
    first = workload.recent(workload.make_traces(2), 60_000_000_000)
    r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(first), headers=PROTO,
                      timeout=30)
    assert r.status_code == 200, r.text
    clickhouse.run("stop")
    spooled = []
    try:
        for _ in range(5):
            traces = workload.recent(workload.make_traces(2), 60_000_000_000)
            t0 = time.time()
            r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(traces),
                              headers=PROTO, timeout=30)
            assert r.status_code == 200, r.text  # from the spool
            assert time.time() - t0 < 5
            spooled += traces
        r = requests.get(c.ingest + "/health", timeout=10)
        states = {e["id"]: e for e in r.json()["exporters"]}
        assert states["clickhouse"]["state"] == "degraded", states
        assert any(spool_dir.glob("*.seg"))
    finally:
        clickhouse.run("start")
    want = {t["trace_id"]: len(t["spans"]) for t in first + spooled}
    got = span_counts(c, want, 90)
    assert got == want, f"{len(got)} of {len(want)} traces complete"
    inserts = ch_spool_drained(c, 5)
    assert inserts >= 2  # the first request's and the drained batches'


def test_clickhouse_spool_first_answers_from_disk_and_sends_the_pile_as_one_insert(
        make_collector, clickhouse, tmp_path):
    """`spool.after: 0` (spool first): every request is answered once its batch is on
    disk, and the drainer sends what piled up as one insert. While the server is stopped,
    100 requests are answered 200; once it is back they arrive in one or two inserts (a
    drainer without a flush reads 32 at a time: at least four), each span once. With the server up, a request's spans are readable soon after."""
    spool_dir = tmp_path / "ch-spool-first"
    c = ch_spool_collector(make_collector, clickhouse, spool_dir, "0s")
    first = workload.recent(workload.make_traces(2), 60_000_000_000)
    r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(first), headers=PROTO,
                      timeout=30)
    assert r.status_code == 200, r.text
    want = {t["trace_id"]: len(t["spans"]) for t in first}
    assert span_counts(c, want, 20) == want  # drained with the server up
    m = scrape(c)
    before = val(m, "prela_clickhouse_insert_duration_seconds_count", exporter="clickhouse")
    assert val(m, "prela_spool_appended_records_total", exporter="clickhouse") == 1
    r = requests.get(c.ingest + "/health", timeout=10)
    states = {e["id"]: e for e in r.json()["exporters"]}
    assert states["clickhouse"]["state"] == "ok", states  # spooling first is not degraded

    clickhouse.run("stop")
    piled = []
    try:
        for _ in range(100):
            traces = workload.recent(workload.make_traces(2), 60_000_000_000)
            r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(traces),
                              headers=PROTO, timeout=30)
            assert r.status_code == 200, r.text  # on disk
            piled += traces
        assert any(spool_dir.glob("*.seg"))
    finally:
        clickhouse.run("start")
    want.update({t["trace_id"]: len(t["spans"]) for t in piled})
    got = span_counts(c, want, 90)
    assert got == want, f"{len(got)} of {len(want)} traces complete"
    inserts = ch_spool_drained(c, 101)
    # the histogram counts statements: an insert is one per table (5 here, as the first
    # request's shows); the 100 piled batches went as one window, maybe split by the
    # attempt that found the server back
    assert before == 5, before
    assert 5 <= inserts - before <= 10, (before, inserts)
    print(f"\nspool first: 100 batches piled up while the server was down, stored in "
          f"{inserts - before:.0f} statements")


def test_spool_first_is_refused_by_the_kafka_exporter(tmp_path):
    """`spool.after: 0` needs an exporter that groups what the drainer begins (clickhouse);
    the kafka exporter refuses it at startup, naming the key."""
    import subprocess
    import conftest
    p = tmp_path / "kafka-first.yaml"
    p.write_text(f"""receivers:
  prela:
exporters:
  kafka:
    brokers: 127.0.0.1:9
    spool:
      directory: {tmp_path / 'k-spool'}
      after: 0s
service:
  pipelines:
    traces:
      receivers: [prela]
      exporters: [kafka]
""")
    r = subprocess.run([conftest.BIN, "--validate", "--config", str(p)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1, r.stdout
    assert "spool.after: 0" in r.stderr, r.stderr
