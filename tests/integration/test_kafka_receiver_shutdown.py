"""The kafka receiver stopped (SIGTERM) while its consumer is between joining the group and
receiving its first assignment: the storage collector exits 0 and does not abort.

librdkafka before 2.2.1 (Debian 12 ships 2.0.2) asserts in
rd_kafka_sticky_assignor_state_destroy when a cooperative-sticky consumer is destroyed after
a JoinGroup response chose the assignor but before a SyncGroup response gave it its first
assignment (librdkafka issue #4312, fixed by PR #4381). With a single member that window
lasts milliseconds; here another member of the group, written against the Kafka protocol in
this file and talking to the real broker, is the group's leader and holds its SyncGroup
back, so the storage collector sits in that window for as long as the test wants:

- the leader syncs a few seconds after the SIGTERM (a slow leader): the receiver waits for
  its first assignment, then leaves the group;
- the leader never syncs and goes away: the broker expires it after its session timeout,
  the receiver becomes the leader of the next generation and gets its assignment.

A loop of SIGTERMs at staggered points of a storage collector's start covers the windows
no test can hold open."""
import socket
import struct
import threading
import time
import uuid

from services import kafka  # noqa: F401  (fixture)
from test_kafka_receiver import make_topics, storage

FIND_COORDINATOR, JOIN_GROUP, SYNC_GROUP, HEARTBEAT = 10, 11, 14, 12
REBALANCE_IN_PROGRESS, MEMBER_ID_REQUIRED = 27, 79
COORDINATOR_NOT_READY = (14, 15, 16)  # load in progress, not available, not coordinator


def _str(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _bytes(b):
    return struct.pack(">i", len(b)) + b


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0]

    def str(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def bytes(self):
        n = self.take(">i")
        b = self.data[self.pos:self.pos + max(n, 0)]
        self.pos += max(n, 0)
        return b


class GroupMember:
    """A consumer group member speaking the classic group protocol (JoinGroup v5,
    SyncGroup v3, Heartbeat v3) to the broker, which with a single broker is the group
    coordinator. It offers only the cooperative-sticky protocol, so the storage collector
    and it agree on it, and it decides itself when to sync."""

    def __init__(self, bootstrap, group, topics, session_ms):
        host, port = bootstrap.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.group, self.topics, self.session_ms = group, topics, session_ms
        self.member_id, self.generation, self.corr = "", -1, 0
        self.lock = threading.Lock()

    def close(self):
        self.sock.close()

    def _call(self, api, version, body):
        with self.lock:
            self.corr += 1
            req = struct.pack(">hhi", api, version, self.corr) + _str("shutdown-test") + body
            self.sock.sendall(struct.pack(">i", len(req)) + req)
            size = struct.unpack(">i", self._read(4))[0]
            resp = _Reader(self._read(size))
        assert resp.take(">i") == self.corr
        return resp

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "broker closed the connection"
            buf += chunk
        return buf

    def find_coordinator(self):
        """Waits until the broker coordinates the group (the first request on a fresh broker
        creates __consumer_offsets); with a single broker, it is the coordinator."""
        deadline = time.time() + 30
        while True:
            r = self._call(FIND_COORDINATOR, 1, _str(self.group) + struct.pack(">b", 0))
            r.take(">i")
            err = r.take(">h")
            if err == 0:
                return
            assert time.time() < deadline, f"FindCoordinator error {err}"
            time.sleep(0.2)

    def join(self):
        """Joins (or rejoins) the group; returns the member ids of this generation (the
        response comes when every member has joined)."""
        meta = struct.pack(">h", 0) + struct.pack(">i", len(self.topics))
        meta += b"".join(_str(t) for t in self.topics) + struct.pack(">i", -1)
        deadline = time.time() + 30
        while True:
            body = (_str(self.group) + struct.pack(">ii", self.session_ms, 60000) +
                    _str(self.member_id) + _str(None) + _str("consumer") +
                    struct.pack(">i", 1) + _str("cooperative-sticky") + _bytes(meta))
            r = self._call(JOIN_GROUP, 5, body)
            r.take(">i")  # throttle
            err, gen = r.take(">h"), r.take(">i")
            protocol, leader, me = r.str(), r.str(), r.str()
            if err == MEMBER_ID_REQUIRED:
                self.member_id = me
                continue
            if err in COORDINATOR_NOT_READY and time.time() < deadline:
                time.sleep(0.2)  # a fresh broker still loads __consumer_offsets
                continue
            assert err == 0, f"JoinGroup error {err}"
            assert protocol == "cooperative-sticky" and leader == me, (protocol, leader, me)
            self.member_id, self.generation = me, gen
            members = []
            for _ in range(r.take(">i")):
                members.append(r.str())
                r.str()
                r.bytes()
            return members

    def sync(self, assignments):
        """The leader's SyncGroup: |assignments| maps member id to {topic: [partitions]}."""
        body = (_str(self.group) + struct.pack(">i", self.generation) + _str(self.member_id) +
                _str(None) + struct.pack(">i", len(assignments)))
        for member, parts in assignments.items():
            a = struct.pack(">hi", 0, len(parts))
            for topic, ps in parts.items():
                a += _str(topic) + struct.pack(">i", len(ps)) + b"".join(struct.pack(">i", p) for p in ps)
            a += struct.pack(">i", -1)
            body += _str(member) + _bytes(a)
        r = self._call(SYNC_GROUP, 3, body)
        r.take(">i")
        err = r.take(">h")
        assert err == 0, f"SyncGroup error {err}"

    def heartbeat(self):
        """0, or the broker's error (REBALANCE_IN_PROGRESS when another member joins)."""
        r = self._call(HEARTBEAT, 3, _str(self.group) + struct.pack(">i", self.generation) +
                       _str(self.member_id) + _str(None))
        r.take(">i")
        return r.take(">h")


def held_in_join(make_collector, kafka, leader_session_ms):
    """A group led by a GroupMember and a storage collector that joined it: returns
    (leader, collector, topics) once the collector has its JoinGroup response and waits,
    in SyncGroup, for the leader, which has not synced."""
    run = "ksd-" + uuid.uuid4().hex[:8]
    topics = make_topics(kafka, run)
    group = "g-" + run
    leader = GroupMember(kafka.bootstrap, group, list(topics.values()), leader_session_ms)
    leader.find_coordinator()
    assert leader.join() == [leader.member_id]
    leader.sync({leader.member_id: {}})
    st = storage(make_collector, kafka, topics, "prela_json", group)
    deadline = time.time() + 30
    while leader.heartbeat() != REBALANCE_IN_PROGRESS:
        assert time.time() < deadline, "the storage collector never joined the group\n" + st.logs()
        time.sleep(0.1)
    members = leader.join()
    assert len(members) == 2, members
    time.sleep(0.5)  # the collector reads its JoinGroup response and sends its SyncGroup
    assert "assigned" not in st.log_path.read_text(), st.logs()
    return leader, st, topics, members


def assert_clean_exit(st, rc):
    log = st.log_path.read_text(errors="replace")
    assert rc == 0, f"exit status {rc}\n{st.logs()}"
    assert "Assertion" not in log and "stopped" in log, st.logs()


def test_sigterm_before_the_first_assignment_waits_for_a_slow_leader(make_collector, kafka):
    leader, st, topics, members = held_in_join(make_collector, kafka, 30000)
    other = [m for m in members if m != leader.member_id][0]

    def sync_late():
        time.sleep(2)
        leader.sync({leader.member_id: {}, other: {t: [0, 1, 2] for t in topics.values()}})

    t = threading.Thread(target=sync_late)
    t.start()
    started = time.time()
    rc = st.stop()
    t.join()
    leader.close()
    assert_clean_exit(st, rc)
    assert time.time() - started >= 2  # it did wait for the assignment
    assert "assigned 6 partitions" in st.log_path.read_text(), st.logs()


def test_sigterm_before_the_first_assignment_outlives_a_dead_leader(make_collector, kafka):
    leader, st, _, _ = held_in_join(make_collector, kafka, 6000)
    leader.close()  # never syncs; the broker expires it after its 6 s session
    rc = st.stop()
    assert_clean_exit(st, rc)
    log = st.log_path.read_text()
    assert "assigned 6 partitions" in log and "not destroyed" not in log, st.logs()


def test_sigterm_at_any_point_of_a_start(make_collector, kafka):
    """SIGTERM 0..1.5 s after the storage collector is ready, a fresh group each time,
    so it lands before, during and after the group join."""
    topics = make_topics(kafka, "ksd-loop-" + uuid.uuid4().hex[:8])
    failures = []
    for i in range(16):
        st = storage(make_collector, kafka, topics, "prela_json", f"g-loop-{uuid.uuid4().hex[:8]}")
        time.sleep(i * 0.1)
        rc = st.stop()
        log = st.log_path.read_text(errors="replace")
        if rc != 0 or "Assertion" in log:
            failures.append(f"SIGTERM after {i * 0.1:.1f}s: exit {rc}\n{st.logs()}")
    assert not failures, "\n".join(failures)
