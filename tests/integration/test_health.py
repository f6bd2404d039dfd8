"""Honest health: GET /health (prela :8001) and GET /api/v1/health (query :8002) list
every exporter's state and reason, and answer 503 while one cannot accept, so an
orchestrator restarts what is stuck. Here a gateway's real Kafka broker
(scripts/kafka.sh) is stopped: both report the kafka exporter unavailable with the
reason once no broker was reachable for longer than its timeout, and OK again after the
broker is back, without any traffic to tell it (the exporter probes the brokers)."""
import time

import requests

import workload
from services import kafka  # noqa: F401  (fixture)
from test_kafka_export import kafka_collector


def health(c):
    """The two health answers: [(status code, body)] for /health and /api/v1/health."""
    return [(r.status_code, r.json()) for r in (
        requests.get(c.ingest + "/health", timeout=10),
        requests.get(c.query + "/api/v1/health", timeout=10))]


def kafka_state(body):
    states = {e["id"]: e for e in body["exporters"]}
    assert states["kafka"]["type"] == "kafka", body
    return states["kafka"]


def wait_health(c, code, timeout):
    deadline = time.time() + timeout
    while True:
        answers = health(c)
        if all(got == code for got, _ in answers) or time.time() > deadline:
            return answers
        time.sleep(0.2)


def test_health_follows_the_broker(make_collector, kafka):
    c, topics = kafka_collector(make_collector, kafka, "health", timeout="2s",
                                settings="encoding: prela_json")  # a message per span
    for code, body in health(c):
        assert code == 200 and body["status"] == "healthy", body
        k = kafka_state(body)
        assert k["state"] == "ok" and k["reason"] == "" and k["since"], body
        # exporters without a health op (the embedded store) are listed as ok
        assert all(e["state"] == "ok" for e in body["exporters"]), body

    kafka.run("stop")
    try:
        answers = wait_health(c, 503, 60)
        for code, body in answers:
            assert code == 503 and body["status"] == "unhealthy", body
            k = kafka_state(body)
            assert k["state"] == "unavailable", body
            assert k["reason"].startswith("no broker reachable for over 2000 ms"), body
            assert k["since"], body
        # and requests meanwhile are answered retry, never 200
        r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(workload.make_traces(1)),
                          headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        assert r.status_code == 503, r.text
    finally:
        kafka.run("start")

    answers = wait_health(c, 200, 90)
    for code, body in answers:
        assert code == 200 and body["status"] == "healthy", body
        assert kafka_state(body)["state"] == "ok", body
    traces = workload.make_traces(1)
    for _ in range(30):
        r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(traces), timeout=30,
                          headers={"Content-Type": "application/x-protobuf"})
        if r.status_code == 200:
            break
    assert r.status_code == 200, r.text
    assert len(kafka.consume(topics["spans"], len(traces[0]["spans"]))) >= len(traces[0]["spans"])
