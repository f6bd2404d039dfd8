#!/usr/bin/env bash
# Benchmarks prela-collector side by side with its peer, the OpenTelemetry Collector
# (built once from bench/peers/builder.yaml with the OpenTelemetry Collector Builder,
# cached in .tools/otelcol-peer/, rebuilt when the manifest changes), and prints the
# figures; it never passes or fails on them, only when something could not run (a
# collector did not start, loadgen saw errors).
#   scripts/bench-peers.sh [--duration 10s] [--warmup 2s] [--connections 16] [--rounds 3]
#                          [--only ours|peer] [--build-dir build-bench] [--no-build] [--keep]
# One Kafka broker (scripts/kafka.sh) on free loopback ports in a temp dir; the
# reference workload (loadgen: 100 spans/request, --connections connections) for each of
#  a http-kafka  OTLP/HTTP -> Kafka      b grpc-kafka  OTLP/gRPC -> Kafka
#  c http-none   OTLP/HTTP -> nothing    d grpc-none   OTLP/gRPC -> nothing
#  e prela-kafka Prela JSON /v1/batch -> Kafka (ours only)
#  f http-80k    OTLP/HTTP -> Kafka at a fixed 80,000 spans/s (latency: p50/p99)
# Ours: configs/gateway.yaml as shipped (acks=all, zstd, spool on) with the default
# encoding, otlp_proto (ours), and KAFKA_ENCODING=prela_json (ours-json); "nothing" is a generated
# config with the same receivers + normalize into the debug exporter at log level warn.
# Peer: bench/peers/kafka.yaml (otlp_proto, acks all, zstd, no sending queue) and
# bench/peers/nop.yaml. Every round runs each variant once, alternating, each a fresh
# process; loadgen --pid measures spans/s, spans per CPU-second, latency, RSS.
# Both write the same pre-created topic (3 partitions). Prints the raw rounds, then
# medians and ratios ours/peer.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=10s WARMUP=2s CONNECTIONS=16 ROUNDS=3 ONLY=
BUILD_DIR=build-bench BUILD=1 KEEP=0
OCB_VERSION=v0.165.0 FIXED_SPANS_S=80000 PARTITIONS=3
. scripts/lib/bench.sh  # bench_shared_flag
while [ $# -gt 0 ]; do
  bench_shared_flag "$@" && { shift "$BENCH_SHIFT"; continue; }
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-peers: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ONLY" in ''|ours|peer) ;; *) echo "bench-peers: --only: ours or peer" >&2; exit 2 ;; esac
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "bench-peers: --rounds: a positive integer" >&2; exit 2; }

if [ "$BUILD" = 1 ]; then
  echo "== building ($BUILD_DIR, Release)"
  scripts/setup.sh "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
BIN=$ROOT/$BUILD_DIR/prela-collector LOADGEN=$ROOT/$BUILD_DIR/loadgen
for f in "$BIN" "$LOADGEN"; do
  [ -x "$f" ] || { echo "bench-peers: $f missing (build first)" >&2; exit 1; }
done

# --- the peer: built once per manifest ------------------------------------------------
PEER_DIR=$ROOT/.tools/otelcol-peer PEER=$ROOT/.tools/otelcol-peer/dist/otelcol-peer
if [ "$ONLY" != ours ] && ! { [ -x "$PEER" ] && cmp -s bench/peers/builder.yaml "$PEER_DIR/builder.yaml"; }; then
  GO=$(command -v go || echo /usr/local/go/bin/go)
  echo "== building the peer (ocb $OCB_VERSION, bench/peers/builder.yaml) into $PEER_DIR"
  T0=$(date +%s)
  rm -rf "$PEER_DIR"; mkdir -p "$PEER_DIR/bin"
  GOBIN=$PEER_DIR/bin "$GO" install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
  cp bench/peers/builder.yaml "$PEER_DIR/builder.yaml.new"
  (cd "$PEER_DIR" && PATH=$(dirname "$GO"):$PATH bin/builder --config builder.yaml.new \
     >build.log 2>&1) || { cat "$PEER_DIR/build.log" >&2; exit 1; }
  mv "$PEER_DIR/builder.yaml.new" "$PEER_DIR/builder.yaml" # the stamp: only after success
  echo "peer built in $(( $(date +%s) - T0 )) s"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/prela-bench-peers.XXXXXX")
PIDS=()
NAME=bench-peers
export KAFKA_PORT=$(free_port) KAFKA_SASL_PORT=$(free_port) KAFKA_CONTROLLER_PORT=$(free_port)
export KAFKA_NUM_PARTITIONS=$PARTITIONS
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  scripts/kafka.sh stop "$TMP/kafka" >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then echo "bench-peers: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting Kafka (:$KAFKA_PORT) in $TMP"
scripts/kafka.sh start "$TMP/kafka" >"$TMP/kafka.log" 2>&1 || { cat "$TMP/kafka.log"; exit 1; }

P_PRELA=$(free_port) P_GRPC=$(free_port) P_HTTP=$(free_port)
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT KAFKA_TOPIC_SPANS=bench-spans \
  KAFKA_TOPIC_TRACES=bench-traces PRELA_LOG_LEVEL=warn \
  PRELA_INGEST_ENDPOINT=127.0.0.1:$P_PRELA PRELA_OTLP_GRPC_ENDPOINT=127.0.0.1:$P_GRPC \
  PRELA_OTLP_HTTP_ENDPOINT=127.0.0.1:$P_HTTP \
  PEER_GRPC_ENDPOINT=127.0.0.1:$P_GRPC PEER_HTTP_ENDPOINT=127.0.0.1:$P_HTTP
bench_keys "$TMP/keys.yaml" # configs/gateway.yaml requires API keys

# ensure_topics: both collectors write existing topics; created once (the broker's
# admin API through confluent-kafka, as the integration tests do), then checked.
has_topic() { # without asking the broker to auto-create it
  kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -X allow.auto.create.topics=false -L -t "$1" -m 5 2>/dev/null |
    grep -q "\"$1\" with $PARTITIONS partitions"
}
ensure_topics() {
  local t missing=()
  for t in "$KAFKA_TOPIC_SPANS" "$KAFKA_TOPIC_TRACES"; do
    has_topic "$t" || missing+=("$t")
  done
  [ ${#missing[@]} = 0 ] && return 0
  "$ROOT/.venv/bin/python" - "$KAFKA_BOOTSTRAP_SERVERS" "$PARTITIONS" "${missing[@]}" <<'EOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
# 256 MiB per partition, 64 MiB segments: the rounds do not fill the disk.
cfg = {"retention.bytes": str(256 << 20), "segment.bytes": str(64 << 20),
       "max.message.bytes": str(16 << 20)}
fs = admin.create_topics([NewTopic(t, int(sys.argv[2]), 1, config=cfg) for t in sys.argv[3:]],
                         operation_timeout=30)
for t, f in fs.items():
    f.result()
    print(f"created topic {t} ({sys.argv[2]} partitions)")
EOF
  for t in "${missing[@]}"; do
    has_topic "$t" || { echo "bench-peers: topic $t not there after creating it" >&2; exit 1; }
  done
}

# Ours, "nothing": the gateway's receivers and normalize into the debug exporter.
none_config >"$TMP/ours-none.yaml"

start_peer() { # start_peer CONFIG LOG: sets PID once an empty OTLP/HTTP export answers 2xx
  "$PEER" --config "$1" >>"$2" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 300); do
    curl -fsS -o /dev/null -H 'Content-Type: application/json' -d '{}' \
      "http://127.0.0.1:$P_HTTP/v1/traces" 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || { echo "$NAME: peer ($1) exited:" >&2; cat "$2" >&2; exit 1; }
    sleep 0.1
  done
  echo "$NAME: peer ($1) not answering after 30 s" >&2; cat "$2" >&2; exit 1
}

# run WORKLOAD VARIANT ROUND: one fresh collector, one loadgen window, one row of raw.tsv.
FAILED=0
run() {
  local w=$1 v=$2 r=$3 fmt=otlp target=127.0.0.1:$P_HTTP sink=kafka extra=() key=()
  local out=$TMP/$w-$v-$r.txt log=$TMP/$w-$v-$r.log
  case "$w" in grpc-*) fmt=otlp-grpc target=127.0.0.1:$P_GRPC ;;
               prela-*) fmt=prela target=127.0.0.1:$P_PRELA ;; esac
  case "$w" in *-none) sink=none ;; esac
  [ "$w" = http-80k ] && extra=(--rate $((FIXED_SPANS_S / 100)))
  [ "$sink" = kafka ] && ensure_topics
  case "$v" in
    peer) start_peer "$ROOT/bench/peers/$([ $sink = kafka ] && echo kafka || echo nop).yaml" "$log" ;;
    ours|ours-json)
      key=(--api-key "$KEY")
      local enc=otlp_proto cfg=$TMP/ours-none.yaml
      [ "$v" = ours-json ] && enc=prela_json
      [ "$sink" = kafka ] && cfg=$ROOT/configs/gateway.yaml
      rm -rf "$TMP/data"
      PRELA_DATA_DIR=$TMP/data KAFKA_ENCODING=$enc start_collector "$cfg" "$log" \
        "http://127.0.0.1:$P_PRELA/health" ;;
  esac
  local pid=$PID
  sleep 1
  local idle; idle=$(rss_mb "$pid")
  "$LOADGEN" --target "$target" --format "$fmt" --connections "$CONNECTIONS" --duration "$DURATION" \
    --warmup "$WARMUP" --pid "$pid" "${key[@]}" "${extra[@]}" >"$out" 2>&1 ||
    { echo "bench-peers: loadgen failed ($w $v round $r):" >&2; cat "$out" >&2; exit 1; }
  stop_pid "$pid"
  local e; e=$(field "$out" errors)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$v" "$r" "$(field "$out" spans_per_s)" \
    "$(field "$out" spans_per_cpu_s)" "$(field "$out" p50_ms)" "$(field "$out" p99_ms)" "$idle" \
    "$(awk -v k="$(field "$out" hwm_kb)" 'BEGIN { printf "%.1f", k / 1024 }')" "$e" | tee -a "$TMP/raw.tsv"
  if [ "${e:-1}" != 0 ]; then
    FAILED=1
    echo "bench-peers: $w $v round $r: loadgen reported $e errors (refused $(field "$out" refused)):" >&2
    grep -v '^result ' "$out" >&2; tail -5 "$log" >&2
  fi
}

WORKLOADS=(http-kafka grpc-kafka http-none grpc-none prela-kafka http-80k)
variants() { # the variants that run WORKLOAD $1, in alternating order
  local v=()
  [ "$ONLY" = peer ] || v+=(ours)
  [ "$ONLY" = ours ] || [ "$1" = prela-kafka ] || v+=(peer)
  [ "$ONLY" = peer ] || case "$1" in *-none) ;; *) v+=(ours-json) ;; esac
  printf '%s\n' "${v[@]}"
}

echo; echo "== raw rounds ($CONNECTIONS connections, warmup $WARMUP, window $DURATION," \
  "$ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf 'workload\tvariant\tround\tspans/s\tspans/CPU-s\tp50_ms\tp99_ms\tidle_MB\tpeak_MB\terrors\n'
T_START=$(date +%s)
for w in "${WORKLOADS[@]}"; do
  for r in $(seq "$ROUNDS"); do
    for v in $(variants "$w"); do run "$w" "$v" "$r"; done
  done
done

# --- summary: medians per workload and variant, ratios ours/peer -----------------------
median() { # median WORKLOAD VARIANT COLUMN (raw.tsv)
  awk -F'\t' -v w="$1" -v v="$2" -v c="$3" '$1 == w && $2 == v { print $c }' "$TMP/raw.tsv" |
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2];
                                        else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
row() { # row LABEL WORKLOAD COLUMN
  local p o op; p=$(median "$2" peer "$3"); o=$(median "$2" ours "$3"); op=$(median "$2" ours-json "$3")
  printf '%-34s %12s %12s %12s %8s %8s\n' "$1" "$o" "$op" "$p" "$(ratio "$o" "$p")" "$(ratio "$op" "$p")"
}
echo
echo "== medians of $ROUNDS rounds ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
  "$(( $(date +%s) - T_START )) s; peer: OpenTelemetry Collector $("$PEER" --version 2>/dev/null | awk '{print $NF}'))"
printf '%-34s %12s %12s %12s %8s %8s\n' workload ours ours-json peer ours/peer json/peer
for w in http-kafka grpc-kafka http-none grpc-none prela-kafka; do row "$w spans/CPU-s" "$w" 5; done
for w in http-kafka grpc-kafka http-none grpc-none prela-kafka; do row "$w spans/s" "$w" 4; done
row "http-80k p50 ms" http-80k 6
row "http-80k p99 ms" http-80k 7
row "http-80k spans/s" http-80k 4
row "http-80k spans/CPU-s" http-80k 5
for w in http-kafka http-none; do row "$w idle RSS MB" "$w" 8; row "$w peak RSS MB" "$w" 9; done
row "grpc-kafka peak RSS MB" grpc-kafka 9
[ "$FAILED" = 0 ] || { echo "bench-peers: some runs reported errors (above)" >&2; exit 1; }
