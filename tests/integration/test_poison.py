"""Poison isolation in the storage path (issue 11, item 2) on a ClickHouse that enforces
the partition limit: chDB (ClickHouse 26.x in-process, behind chdb_server.py) refuses an
INSERT block touching more than 100 monthly partitions (code 252, TOO_MANY_PARTS;
max_partitions_per_insert_block = 100 by default). Debian's 18.16 has no such limit, so
these tests run on chDB only.

Rows ClickHouse refuses: the test adds a CHECK constraint to the spans table (`name NOT
LIKE 'poison%'`), so the engine itself refuses those rows (code 469, VIOLATED_CONSTRAINT)
wherever they sit in a block.

One request carries spans over 101 months (the months from now on: ClickHouse's 90-day TTL
drops past ones at insert) and three spans the constraint refuses, from project
"tenant-bad"; good traffic from project "tenant-good" goes alongside. Direct (OTLP →
clickhouse exporter) and through Kafka (gateway → Kafka → storage collector → ClickHouse):
every good row is stored (counted in the tables), the refused ones are in the dead letter
(a file under the data directory directly, the topic prela.deadletter.<run> in the storage
role) with their reason and code, the requests are answered 200, and the storage
collector's committed offsets reach the end of the topic."""
import json
import os
import threading
import time
import uuid

import requests
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import workload
from chdb_server import chdb  # noqa: F401  (fixture)
from services import Relay, kafka  # noqa: F401  (fixture)

DAY = 86400 * 10**9
MONTHS = 101
POISON = 3


def poison_traces():
    """One trace of MONTHS spans, one per month from now on, plus POISON spans named
    poison-*: {trace_id, spans...} in workload's shape."""
    now = time.time_ns()
    tid, root = workload.hexid(16), workload.hexid(8)
    spans = []
    for k in range(MONTHS):
        start = now + k * 31 * DAY
        spans.append(dict(span_id=root if k == 0 else workload.hexid(8), parent="" if k == 0 else root,
                          name=f"month {k}", kind=1, start=start, end=start + 10**9, status=0,
                          attrs={"month.index": k}))
    for k in range(POISON):
        spans.append(dict(span_id=workload.hexid(8), parent=root, name=f"poison-{k}", kind=1,
                          start=now + k * DAY, end=now + k * DAY + 10**9, status=0, attrs={}))
    return [dict(trace_id=tid, root=root, service="poison-service", spans=spans,
                 start=now, end=now + MONTHS * 31 * DAY)]


def post(url, traces, project):
    return requests.post(url + "/v1/traces", data=workload.to_proto(traces), timeout=60,
                         headers={"Content-Type": "application/x-protobuf",
                                  "X-Prela-Project-Id": project})


def exporter(srv, db, dead_dir, dead_extra=""):
    return f"""
clickhouse:
  host: 127.0.0.1
  port: {srv.port}
  database: {db}
  timeout: 30s
  batch.max_wait: 200ms
  dead_letter:
    directory: {dead_dir}
{dead_extra}
"""


def refuse_poison(srv, db):
    srv.query(f"ALTER TABLE `{db}`.spans ADD CONSTRAINT no_poison CHECK name NOT LIKE 'poison%'")


def count(srv, db, project, table="spans"):
    return int(srv.query(f"SELECT count() FROM `{db}`.{table} FINAL WHERE project_id = '{project}'"
                         if table == "spans" else
                         f"SELECT count() FROM `{db}`.{table} WHERE project_id = '{project}'").strip())


def wait_rows(srv, db, project, n, timeout=60, table="spans"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if count(srv, db, project, table) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"{project}: {count(srv, db, project, table)} {table} rows, want {n}")


def file_dead_letters(dead_dir, timeout=30):
    """The dead-letter file's lines (parsed) once there are POISON of them."""
    deadline = time.time() + timeout
    lines = []
    while time.time() < deadline:
        lines = []
        for name in sorted(os.listdir(dead_dir)) if os.path.isdir(dead_dir) else []:
            if name.startswith("deadletter-"):
                with open(os.path.join(dead_dir, name)) as f:
                    lines += [json.loads(x) for x in f if x.strip()]
        if len(lines) >= POISON:
            return lines
        time.sleep(0.2)
    raise AssertionError(f"dead letter: {lines}")


def topic_dead_letters(kafka, topic, timeout=30):
    """The dead-letter topic's messages (parsed, with their keys) once there are POISON."""
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "dl-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out, deadline = [], time.time() + timeout
    try:
        while len(out) < POISON and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            doc = json.loads(m.value())
            assert m.key().decode() == doc["trace_id"]
            out.append(doc)
        while True:  # nothing more than the poison rows
            m = c.poll(2)
            if m is None:
                break
            if not m.error():
                out.append(json.loads(m.value()))
    finally:
        c.close()
    return out


def check_outcome(srv, db, dead_letters, bad, good, logs):
    """Every good row stored, the poison ones dead-lettered with reasons, nothing else."""
    wait_rows(srv, db, "tenant-good", sum(len(t["spans"]) for t in good))
    wait_rows(srv, db, "tenant-bad", MONTHS)
    assert count(srv, db, "tenant-bad") == MONTHS, logs()
    months = int(srv.query(f"SELECT uniqExact(toYYYYMM(started_at)) FROM `{db}`.spans "
                           "WHERE project_id = 'tenant-bad'").strip())
    assert months >= MONTHS
    stored = set(srv.query(f"SELECT span_id FROM `{db}`.spans WHERE project_id = 'tenant-bad'").split())
    want = {s["span_id"] for s in bad[0]["spans"] if not s["name"].startswith("poison")}
    assert stored == want
    # an insert writes the span rows, then the trace rows: wait for those too
    wait_rows(srv, db, "tenant-good", len(good), table="traces")
    lines = dead_letters()
    assert len(lines) == POISON, lines
    poison = {s["span_id"] for s in bad[0]["spans"] if s["name"].startswith("poison")}
    assert {x["span_id"] for x in lines} == poison
    for x in lines:
        assert x["code"] == 469 and "VIOLATED_CONSTRAINT" in x["reason"] and "no_poison" in x["reason"]
        assert x["project_id"] == "tenant-bad" and x["trace_id"] == bad[0]["trace_id"]
        assert x["table"] == "spans" and x["row"]["name"].startswith("poison-")
        assert x["time"].endswith("Z")
    assert "Too many partitions" not in logs()


def send_mixed(url, bad, good):
    """The poison request and the good ones at once, so they share group commits."""
    codes = {}

    def send(key, traces, project):
        codes[key] = post(url, traces, project).status_code

    threads = [threading.Thread(target=send, args=("bad", bad, "tenant-bad"))]
    threads += [threading.Thread(target=send, args=(f"good{i}", [t], "tenant-good"))
                for i, t in enumerate(good)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


PIPE_DIRECT = """
traces/ch:
  receivers: [otlp]
  processors: [normalize]
  exporters: [clickhouse]
"""


def test_poison_direct(make_collector, tmp_path, chdb):
    """OTLP → clickhouse exporter: the 101-month request and the refused rows, mixed with
    another project's traffic: all answered 200, good rows stored, bad ones dead-lettered."""
    db, dead_dir = chdb.database(), str(tmp_path / "dead")
    c = make_collector(exporters_extra=exporter(chdb, db, dead_dir), pipelines_extra=PIPE_DIRECT,
                       query_store="clickhouse")
    refuse_poison(chdb, db)
    bad, good = poison_traces(), workload.recent(workload.make_traces(6), 3600 * 10**9)
    codes = send_mixed(c.otlp, bad, good)
    assert set(codes.values()) == {200}, (codes, c.logs())
    check_outcome(chdb, db, lambda: file_dead_letters(dead_dir), bad, good, c.logs)
    # The query API serves the good project's traces from ClickHouse.
    body = c.trace(good[0]["trace_id"])
    assert len(body["spans"]) == len(good[0]["spans"])
    # The bad trace's rows counted the refused spans: written with merge_keys 0 (schema 8),
    # so its list page comes from the stored spans, not from the rows.
    tid = bad[0]["trace_id"]
    assert chdb.query(f"SELECT min(merge_keys), max(merge_keys), sum(span_count) FROM"
                      f" `{db}`.trace_rows WHERE trace_id = '{tid}'").split() == \
        ["0", "0", str(MONTHS + POISON)]
    listed = c.get("/api/v1/traces", project_id="tenant-bad").json()["traces"]
    assert [(t["trace_id"], t["span_count"]) for t in listed] == [(tid, MONTHS)]
    # Sending the same again: stored rows deduplicate, the poison is set aside again.
    assert post(c.otlp, bad, "tenant-bad").status_code == 200
    deadline = time.time() + 30
    while len(dead_lines_now(dead_dir)) < 2 * POISON and time.time() < deadline:
        time.sleep(0.2)
    assert len(dead_lines_now(dead_dir)) == 2 * POISON
    assert count(chdb, db, "tenant-bad") == MONTHS


def test_refused_trace_row(make_collector, tmp_path, chdb):
    """A traces row the server refuses alone (dead-lettered) is missing from trace_rows too:
    a stand-in row there with merge_keys 0 (schema 8) sends its trace's list page to the
    spans, so the list shows both stored spans, as the trace lookup does, not only the row
    that was kept."""
    db, dead_dir = chdb.database(), str(tmp_path / "dead")
    c = make_collector(exporters_extra=exporter(chdb, db, dead_dir), pipelines_extra=PIPE_DIRECT,
                       query_store="clickhouse")
    chdb.query(f"ALTER TABLE `{db}`.traces ADD CONSTRAINT no_refused CHECK"
               f" root_span_name NOT LIKE 'refused%'")
    now = time.time_ns()
    tid, root = workload.hexid(16), workload.hexid(8)
    child = dict(span_id=workload.hexid(8), parent=root, name="child", kind=1, start=now,
                 end=now + 10**9, status=0, attrs={})
    top = dict(span_id=root, parent="", name="refused-root", kind=1, start=now - 10**9,
               end=now + 2 * 10**9, status=0, attrs={})
    for spans in ([child], [top]):  # two inserts: the second's traces row is refused
        doc = [dict(trace_id=tid, root=root, service="refusal", spans=spans, start=now,
                    end=now + 10**9)]
        assert post(c.otlp, doc, "tenant-x").status_code == 200
    deadline = time.time() + 30
    while not dead_lines_now(dead_dir) and time.time() < deadline:
        time.sleep(0.2)
    [line] = dead_lines_now(dead_dir)
    assert json.loads(line)["table"] == "traces", line
    assert chdb.query(f"SELECT merge_keys, span_count FROM `{db}`.trace_rows WHERE trace_id ="
                      f" '{tid}' ORDER BY merge_keys FORMAT TabSeparated").split() == \
        ["0", "0", "1", "1"]  # the stand-in, the kept row
    whole = c.get(f"/api/v1/traces/{tid}", project_id="tenant-x").json()["trace"]
    listed = c.get("/api/v1/traces", project_id="tenant-x").json()["traces"]
    assert listed == [whole] and whole["span_count"] == 2, (listed, whole)


def dead_lines_now(dead_dir):
    out = []
    for name in os.listdir(dead_dir):
        with open(os.path.join(dead_dir, name)) as f:
            out += [x for x in f if x.strip()]
    return out


def committed_at_end(kafka, group, topics):
    """True when |group|'s committed offsets equal the high watermark on every partition."""
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        for topic in topics:
            md = c.list_topics(topic, timeout=10).topics[topic]
            parts = [TopicPartition(topic, p) for p in md.partitions]
            for tp in c.committed(parts, timeout=10):
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
                if hi > 0 and tp.offset != hi:
                    return False
        return True
    finally:
        c.close()


def test_poison_through_kafka(make_collector, tmp_path, chdb, kafka):
    """gateway → Kafka → storage collector → ClickHouse: the same outcome, and the storage
    collector's consumer group commits up to the end of every partition (the poison batch
    does not stall it)."""
    run = uuid.uuid4().hex[:8]
    topics = {"spans": f"poison-spans-{run}", "traces": f"poison-traces-{run}"}
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    for f in admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1)
                                  for t in topics.values()]).values():
        f.result(30)
    group, dead_topic = f"poison-storage-{run}", f"prela.deadletter.{run}"
    for f in admin.create_topics([NewTopic(dead_topic, num_partitions=1,
                                           replication_factor=1)]).values():
        f.result(30)
    db, dead_dir = chdb.database(), str(tmp_path / "dead")
    storage = make_collector(
        receivers_extra=f"""
kafka:
  brokers: {kafka.bootstrap}
  group_id: {group}
  topics: [{topics['spans']}, {topics['traces']}]
  max_batch_wait: 50ms
""",
        exporters_extra=exporter(chdb, db, dead_dir, f"""
    brokers: {kafka.bootstrap}
    topic: {dead_topic}
"""),
        pipelines_extra="""
traces/kafka:
  receivers: [kafka]
  processors: [normalize]
  exporters: [clickhouse]
""", query_store="clickhouse", data_dir=str(tmp_path / "storage"))
    refuse_poison(chdb, db)
    gateway = make_collector(exporters_extra=f"""
kafka:
  brokers: {kafka.bootstrap}
  topics:
    spans: {topics['spans']}
    traces: {topics['traces']}
""", pipelines_extra="""
traces/kafka:
  receivers: [otlp]
  processors: [normalize]
  exporters: [kafka]
""", data_dir=str(tmp_path / "gateway"))
    bad, good = poison_traces(), workload.recent(workload.make_traces(6), 3600 * 10**9)
    codes = send_mixed(gateway.otlp, bad, good)
    assert set(codes.values()) == {200}, (codes, gateway.logs())
    check_outcome(chdb, db, lambda: topic_dead_letters(kafka, dead_topic), bad, good,
                  storage.logs)
    assert not os.path.exists(dead_dir) or not os.listdir(dead_dir)  # the topic, not the file
    deadline = time.time() + 60
    while not committed_at_end(kafka, group, [topics["spans"]]) and time.time() < deadline:
        time.sleep(0.5)
    assert committed_at_end(kafka, group, [topics["spans"]]), storage.logs()
    body = storage.trace(good[0]["trace_id"])
    assert len(body["spans"]) == len(good[0]["spans"])


def test_retry_backoff_is_not_cut_short_by_new_requests(make_collector, tmp_path, chdb):
    """ClickHouse unreachable while 40 requests arrive over 3 s: the flusher's retries
    keep their backoff (100 ms doubling to 2 s: a handful of attempts), instead of one
    attempt per arriving request; every request is answered 503 (kept, not dropped), and
    once the server is back they go through."""
    db = chdb.database()
    relay = Relay(chdb.port)
    try:
        c = make_collector(exporters_extra=f"""
clickhouse:
  host: 127.0.0.1
  port: {relay.port}
  database: {db}
  timeout: 4s
  batch.max_wait: 10ms
  dead_letter:
    directory: {tmp_path / 'dead'}
""", pipelines_extra=PIPE_DIRECT, query_store="clickhouse")
        relay.up = False
        traces = workload.recent(workload.make_traces(41), 3600 * 10**9)
        codes = []
        t0 = time.time()

        def send(tr):
            codes.append(post(c.otlp, [tr], "tenant-good").status_code)

        threads = [threading.Thread(target=send, args=(traces[0],))]
        threads[0].start()
        for tr in traces[1:]:
            time.sleep(3 / 40)
            th = threading.Thread(target=send, args=(tr,))
            th.start()
            threads.append(th)
        attempts_3s = relay.refused
        for th in threads:
            th.join()
        assert time.time() - t0 >= 3
        assert codes == [503] * 41, codes
        # 3 s of backoff from 100 ms: attempts at 0, .1, .3, .7, 1.5, 2.5 s.
        assert 2 <= attempts_3s <= 8, (attempts_3s, c.logs())
        relay.up = True
        assert post(c.otlp, traces[:5], "tenant-good").status_code == 200
        wait_rows(chdb, db, "tenant-good", 5 * len(traces[0]["spans"]))
        assert not os.path.exists(tmp_path / "dead")  # nothing was dead-lettered
    finally:
        relay.close()
