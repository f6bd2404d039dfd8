"""Pipeline graph: one receiver feeding two exporters (fan-out), a second pipeline
sharing the receiver, and a query receiver serving a named exporter's store."""
import requests

import conftest
import workload


def test_fan_out_to_two_stores(tmp_path):
    ports = dict(i=conftest.free_port(), o=conftest.free_port(), q=conftest.free_port(),
                 q2=conftest.free_port())
    c = conftest.Collector(tmp_path)
    cfg = tmp_path / "fanout.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {c.grpc}
      http:
        endpoint: 127.0.0.1:{ports['o']}
  prela:
    endpoint: 127.0.0.1:{ports['i']}
  query:
    endpoint: 127.0.0.1:{ports['q']}
    store: local
  query/mirror:
    endpoint: 127.0.0.1:{ports['q2']}
    store: local/mirror
processors:
  normalize:
exporters:
  local:
    directory: {tmp_path}/a
  local/mirror:
    directory: {tmp_path}/b
service:
  pipelines:
    traces:
      receivers: [otlp, prela]
      processors: [normalize]
      exporters: [local, local/mirror]
    traces/raw:
      receivers: [prela]
      exporters: [local/mirror]
""")
    c.config_path = cfg
    c.ingest, c.otlp = f"http://127.0.0.1:{ports['i']}", f"http://127.0.0.1:{ports['o']}"
    c.query = f"http://127.0.0.1:{ports['q']}"
    c.start()
    try:
        traces = workload.make_traces(2)
        r = requests.post(c.otlp + "/v1/traces", data=workload.to_proto(traces),
                          headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 200
        r = requests.post(c.ingest + "/v1/spans", json={"span_id": "s", "trace_id": "t-both"})
        assert r.status_code == 200
        for tr in traces:
            workload.check_trace(c, tr)
        mirror = conftest.Collector(tmp_path)
        mirror.query = f"http://127.0.0.1:{ports['q2']}"
        for tr in traces:
            workload.check_trace(mirror, tr)
        # The prela receiver feeds both pipelines; the mirror store dedups the second copy.
        assert c.trace("t-both")["span_count"] == 1
        assert mirror.trace("t-both")["span_count"] == 1
    finally:
        assert c.stop() == 0
