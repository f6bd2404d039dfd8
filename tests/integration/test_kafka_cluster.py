"""Scale-out drills on a real three-broker Kafka cluster (services.kafka_cluster: KRaft,
replication factor 3, min.insync.replicas=2) with the shipped roles (configs/gateway.yaml,
configs/storage.yaml, as test_production.py runs them) and a real ClickHouse server:

  steady load → gateway (acks=all, idempotent) → 3 brokers → storage collector(s) → query API

1. One broker, a partition leader, is SIGKILLed under load and restarted ~10 s later:
   every span the gateway answered 200 for is shown by the query API exactly once.
2. Two storage collectors in one consumer group; one is SIGKILLed mid-stream: its
   partitions move to the other (the group's assignment says so), nothing is lost and
   nothing is shown twice.

Each drill prints what it measured (recovery / rebalance time, spans/s before, during and
after the failure), for the issue's note. Every test has its own topic, consumer group and
ClickHouse database; a broker a test kills is started again even when the test fails.
"""
import concurrent.futures
import os
import threading
import time
import uuid

import pytest
import requests

import conftest
import workload
from services import clickhouse, kafka_cluster  # noqa: F401  (fixtures)
from test_production import INGEST_KEY, KEYS_YAML, READ_KEY, Role

SERVICE = "cluster-drill"
PARTITIONS = 6


@pytest.fixture
def roles(tmp_path, kafka_cluster, clickhouse):
    """roles(*names, **env) → one Role per name ("gateway", "storage", "storage2"...;
    the role is the name without digits), all on one new topic (RF 3, 6 partitions),
    consumer group and ClickHouse database; not yet started. All are stopped at teardown
    and must exit 0 (a role the test SIGKILLed is not checked)."""
    made = []
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(KEYS_YAML)

    def make(*names, **extra):
        run = uuid.uuid4().hex[:10]
        topic = f"spans-{run}"
        kafka_cluster.create_topic(topic, PARTITIONS, 3)
        base = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_cluster.bootstrap,
                    KAFKA_TOPIC_SPANS=topic, KAFKA_TOPIC_TRACES=f"traces-{run}",
                    KAFKA_TOPIC_METRICS=f"metrics-{run}", KAFKA_TOPIC_LOGS=f"logs-{run}",
                    KAFKA_TOPIC_DEADLETTER=f"deadletter-{run}", KAFKA_GROUP_ID=f"storage-{run}",
                    CLICKHOUSE_HOST="127.0.0.1", CLICKHOUSE_PORT=str(clickhouse.port),
                    CLICKHOUSE_DATABASE=clickhouse.database(), PRELA_KEYS_FILE=str(keys_file),
                    PRELA_LOG_LEVEL="info", **extra)
        out = []
        for name in names:
            env = dict(base, **{k: f"127.0.0.1:{conftest.free_port()}" for k in (
                "PRELA_INGEST_ENDPOINT", "PRELA_OTLP_GRPC_ENDPOINT", "PRELA_OTLP_HTTP_ENDPOINT",
                "PRELA_QUERY_ENDPOINT", "PRELA_METRICS_ENDPOINT")},
                       PRELA_DATA_DIR=str(tmp_path / f"data-{name}-{run}"))
            out.append(Role(tmp_path, name.rstrip("0123456789"), env))
        made.extend(out)
        return out

    yield make
    failures = []
    for r in made:
        if r.proc is not None and r.proc.returncode == -9:
            continue  # SIGKILLed by the test
        rc = r.stop()
        if rc != 0:
            failures.append(f"{r.role} exited with status {rc}:\n{r.logs()}")
    assert not failures, "\n".join(failures)


class Load(threading.Thread):
    """Steady load: OTLP/HTTP requests of |per| traces (5 spans each) to the gateway, one
    after another with |pause| between them, until stop(). A refused request (503 with
    Retry-After) is retried with the same traces until answered 200. `acked` holds
    (time answered, traces) of every request answered 200; `failed` the times of refused
    attempts; `latency` (time sent, seconds) of every attempt."""

    def __init__(self, gateway, per=2, pause=0.02):
        super().__init__(daemon=True)
        self.gateway, self.per, self.pause = gateway, per, pause
        self.acked, self.failed, self.latency = [], [], []
        self.error = None
        self._halt = threading.Event()

    def run(self):
        session = requests.Session()
        headers = {"Content-Type": "application/x-protobuf", "X-API-Key": INGEST_KEY}
        try:
            while not self._halt.is_set():
                traces = workload.make_traces(self.per)
                body = workload.to_proto(traces, service=SERVICE)
                while True:
                    t0 = time.time()
                    r = session.post(self.gateway.otlp + "/v1/traces", data=body, headers=headers,
                                     timeout=60)
                    self.latency.append((t0, time.time() - t0))
                    if r.status_code == 200:
                        self.acked.append((time.time(), traces))
                        break
                    assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.text)
                    self.failed.append(time.time())
                    time.sleep(0.2)
                time.sleep(self.pause)
        except BaseException as e:  # reported by finish()
            self.error = e

    def spans(self):
        return sum(5 * len(traces) for _, traces in self.acked)

    def wait_spans(self, n, timeout=60):
        """Waits until |n| more spans than now were acknowledged."""
        want, deadline = self.spans() + n, time.time() + timeout
        while self.spans() < want:
            assert self.error is None and time.time() < deadline, (self.error, self.spans(), want)
            time.sleep(0.05)

    def finish(self):
        self._halt.set()
        self.join(timeout=120)
        assert not self.is_alive(), "load generator did not stop"
        assert self.error is None, f"load generator failed: {self.error!r}"
        return [tr for _, traces in self.acked for tr in traces]

    def rate(self, t0, t1):
        """Acknowledged spans per second in [t0, t1)."""
        n = sum(5 * len(traces) for t, traces in self.acked if t0 <= t < t1)
        return n / max(t1 - t0, 1e-9)

    def max_latency(self, t0, t1):
        return max((d for t, d in self.latency if t0 <= t < t1), default=0.0)

    def recovery(self, t_fail):
        """Seconds from |t_fail| to the first 200 after the last refused attempt following
        it; 0.0 when nothing was refused."""
        refused = [t for t in self.failed if t >= t_fail]
        if not refused:
            return 0.0
        after = [t for t, _ in self.acked if t > refused[-1]]
        return (after[0] if after else float("inf")) - t_fail


def assert_exactly_once(storage, traces, timeout=120):
    """Every trace of |traces| shows each of its span ids exactly once in |storage|'s query
    API (waiting up to |timeout| s for the stream to arrive), and the service's trace list
    holds each trace once."""
    deadline = time.time() + timeout

    def check(tr):
        want = sorted(s["span_id"] for s in tr["spans"])
        got = None
        while True:
            r = storage.get(f"/api/v1/traces/{tr['trace_id']}")
            if r.status_code == 200:
                body = r.json()
                got = sorted(s["span_id"] for s in body["spans"])
                if len(got) >= len(want):
                    assert got == want, (tr["trace_id"], got, want)  # a duplicate shows here
                    assert body["trace"]["span_count"] == len(want), body["trace"]
                    return
            else:
                assert r.status_code == 404, (r.status_code, r.text)
            assert time.time() < deadline, f"trace {tr['trace_id']}: {got} of {want}\n{storage.logs()}"
            time.sleep(0.2)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(check, traces))
    listed = []
    cursor = None
    while True:
        r = storage.get("/api/v1/traces", service_name=SERVICE, limit=1000, cursor=cursor)
        assert r.status_code == 200, r.text
        page = r.json()["traces"]
        listed += [x["trace_id"] for x in page]
        if len(page) < 1000:
            break
        cursor = r.json()["next"]
    assert len(listed) == len(set(listed)), "a trace is listed twice"
    assert sorted(listed) == sorted(tr["trace_id"] for tr in traces)


def metric(role, name):
    """The sum of every sample of counter or gauge |name| on |role|'s /metrics (parsed by
    prometheus_client; read with the read key)."""
    from prometheus_client.parser import text_string_to_metric_families
    r = requests.get("http://" + role.env["PRELA_METRICS_ENDPOINT"] + "/metrics",
                     headers={"X-API-Key": READ_KEY}, timeout=10)
    assert r.status_code == 200, r.text
    return sum(s.value for fam in text_string_to_metric_families(r.text) for s in fam.samples
               if s.name in (name, name + "_total"))


def group_assignment(cluster, group):
    """The live members of consumer group |group|: a list of sets of partitions."""
    desc = cluster.admin().describe_consumer_groups([group])[group].result(timeout=10)
    return [{tp.partition for tp in m.assignment.topic_partitions} for m in desc.members]


def wait_assignment(cluster, group, want, timeout=60):
    """Waits until the group's assignment is |want| (a sorted list of partition counts,
    covering every partition); returns the seconds it took."""
    t0, deadline, got = time.time(), time.time() + timeout, None
    while time.time() < deadline:
        got = group_assignment(cluster, group)
        if (sorted(map(len, got)) == want and set().union(*got) == set(range(PARTITIONS))):
            return time.time() - t0
        time.sleep(0.2)
    raise AssertionError(f"group {group}: assignment {got}, want partition counts {want}")


def test_broker_killed_under_load(roles, kafka_cluster):
    """SIGKILL the broker leading partition 0 under steady load, start it again ~10 s
    later: the gateway keeps acknowledging (Kafka's other replicas, or its spool), and
    every acknowledged span is shown exactly once."""
    gateway, storage = roles("gateway", "storage")
    gateway.start()
    storage.start()
    topic = gateway.env["KAFKA_TOPIC_SPANS"]
    victim = kafka_cluster.leaders(topic)[0]
    assert victim in (1, 2, 3)

    load = Load(gateway)
    load.start()
    t_start = time.time()
    restarted = False
    try:
        load.wait_spans(500)
        t_kill = time.time()
        kafka_cluster.kill_node(victim)
        time.sleep(10)
        # the partitions it led moved to the other two (unclean election is off)
        leaders = kafka_cluster.leaders(topic)
        assert victim not in leaders.values() and -1 not in leaders.values(), leaders
        t_restart = time.time()
        kafka_cluster.start_node(victim)
        restarted = True
        t_back = time.time()
        load.wait_spans(500)
    finally:
        if not restarted:
            kafka_cluster.start_node(victim)
        acked = load.finish()
    t_end = time.time()
    assert -1 not in kafka_cluster.leaders(topic).values()

    assert_exactly_once(storage, acked)
    t_done = time.time()
    # what the gateway spooled while partitions had no leader has drained into Kafka
    spooled = metric(gateway, "prela_spool_appended_records")
    assert metric(gateway, "prela_spool_records") == 0
    assert metric(gateway, "prela_spool_drained_records") == spooled
    print(f"\nbroker {victim} killed under load: {len(acked)} traces ({load.spans()} spans) acknowledged, "
          f"{len(load.failed)} refused attempts, {spooled:.0f} batches spooled and drained; "
          f"recovery {load.recovery(t_kill):.2f}s; "
          f"max request latency {load.max_latency(t_kill, t_back):.2f}s while down/restarting; "
          f"spans/s before {load.rate(t_start, t_kill):.0f}, broker down {load.rate(t_kill, t_restart):.0f}, "
          f"restarting {load.rate(t_restart, t_back):.0f} (start-node {t_back - t_restart:.1f}s), "
          f"after {load.rate(t_back, t_end):.0f}; all stored exactly once {t_done - t_end:.1f}s after the load")
    assert gateway.alive() and storage.alive()


def test_storage_collector_killed_partitions_move(roles, kafka_cluster):
    """Two storage collectors in one consumer group split the six partitions; SIGKILL one
    mid-stream: the survivor takes all six, the group's committed offsets reach the end of
    every partition, and every acknowledged span is shown exactly once."""
    gateway, storage, storage2 = roles("gateway", "storage1", "storage2")
    gateway.start()
    storage.start()
    storage2.start()
    group, topic = gateway.env["KAFKA_GROUP_ID"], gateway.env["KAFKA_TOPIC_SPANS"]
    wait_assignment(kafka_cluster, group, [3, 3])

    load = Load(gateway)
    load.start()
    t_start = time.time()
    try:
        load.wait_spans(500)
        t_kill = time.time()
        storage.kill()
        rebalance = wait_assignment(kafka_cluster, group, [PARTITIONS], timeout=90)
        t_moved = time.time()
        load.wait_spans(500)
    finally:
        acked = load.finish()
    t_end = time.time()

    assert_exactly_once(storage2, acked)
    t_done = time.time()
    lag = group_lag(kafka_cluster, group, topic)
    deadline = time.time() + 30
    while any(lag.values()) and time.time() < deadline:
        time.sleep(0.5)
        lag = group_lag(kafka_cluster, group, topic)
    assert not any(lag.values()), f"committed offsets behind the end: {lag}"
    print(f"\nstorage collector SIGKILLed: partitions moved to the other in {rebalance:.1f}s "
          f"(session timeout 10s); {len(acked)} traces ({load.spans()} spans) acknowledged; "
          f"spans/s acknowledged before {load.rate(t_start, t_kill):.0f}, "
          f"rebalancing {load.rate(t_kill, t_moved):.0f}, after {load.rate(t_moved, t_end):.0f}; "
          f"all stored exactly once {t_done - t_end:.1f}s after the load")
    assert storage2.alive() and gateway.alive()


def group_lag(cluster, group, topic):
    """{partition: high watermark - committed offset} of |group| on |topic|."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        out = {}
        for tp in c.committed(parts, timeout=10):
            _, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            out[tp.partition] = high - max(tp.offset, 0)
        return out
    finally:
        c.close()
