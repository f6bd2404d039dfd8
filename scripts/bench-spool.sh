#!/usr/bin/env bash
# Benchmarks the gateway's disk spool and prints the figures; it never passes or
# fails on them.
#   scripts/bench-spool.sh [--duration 10s] [--warmup 2s] [--connections 16]
#                          [--format otlp|otlp-grpc|prela] [--outage 30s] [--rate 100]
#                          [--build-dir build-bench] [--no-build] [--keep]
# Steps, each with a fresh gateway (configs/gateway.yaml) on loopback, against a
# Kafka broker (scripts/kafka.sh) in a temp dir:
#  1. Kafka healthy, spool off, then spool on (the shipped default), twice:
#     loadgen's closed loop, spans per CPU-second of the gateway, latency, RSS;
#     the cost of having the spool is the difference;
#  2. outage: Kafka stopped, loadgen at --rate requests/s (100 spans each) for
#     --outage: everything is answered from the spool: spans per CPU-second and
#     latency while spooling, bytes on disk;
#  3. Kafka started again: the time from the broker answering to /health saying
#     healthy (the spool drained), and the drain rate in spans/s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=10s WARMUP=2s CONNECTIONS=16 FORMAT=otlp OUTAGE=30s RATE=100
BUILD_DIR=build-bench BUILD=1 KEEP=0
. scripts/lib/bench.sh  # bench_shared_flag
while [ $# -gt 0 ]; do
  bench_shared_flag "$@" && { shift "$BENCH_SHIFT"; continue; }
  case "$1" in
    --format) FORMAT=$2; shift 2 ;;
    --outage) OUTAGE=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-spool: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$FORMAT" in otlp|otlp-grpc|prela) ;; *) echo "bench-spool: bad --format" >&2; exit 2 ;; esac

if [ "$BUILD" = 1 ]; then
  echo "== building ($BUILD_DIR, Release)"
  scripts/setup.sh "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
BIN=$ROOT/$BUILD_DIR/prela-collector LOADGEN=$ROOT/$BUILD_DIR/loadgen
for f in "$BIN" "$LOADGEN"; do
  [ -x "$f" ] || { echo "bench-spool: $f missing (build first)" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/prela-bench-spool.XXXXXX")
PIDS=()
NAME=bench-spool
export KAFKA_PORT=$(free_port) KAFKA_SASL_PORT=$(free_port) KAFKA_CONTROLLER_PORT=$(free_port)
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  scripts/kafka.sh stop "$TMP/kafka" >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then echo "bench-spool: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting Kafka (:$KAFKA_PORT) in $TMP"
scripts/kafka.sh start "$TMP/kafka" >"$TMP/kafka.log" 2>&1 || { cat "$TMP/kafka.log"; exit 1; }

P_PRELA=$(free_port) P_GRPC=$(free_port) P_HTTP=$(free_port)
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT KAFKA_TOPIC_SPANS=bench-spans \
  KAFKA_TOPIC_TRACES=bench-traces PRELA_LOG_LEVEL=warn PRELA_DATA_DIR=$TMP/data \
  PRELA_INGEST_ENDPOINT=127.0.0.1:$P_PRELA PRELA_OTLP_GRPC_ENDPOINT=127.0.0.1:$P_GRPC \
  PRELA_OTLP_HTTP_ENDPOINT=127.0.0.1:$P_HTTP
case "$FORMAT" in otlp-grpc) TARGET=127.0.0.1:$P_GRPC ;; otlp) TARGET=127.0.0.1:$P_HTTP ;;
                  prela) TARGET=127.0.0.1:$P_PRELA ;; esac
HEALTH=http://127.0.0.1:$P_PRELA/health
bench_keys "$TMP/keys.yaml"
# The same gateway without a spool: configs/gateway.yaml with an empty directory.
sed 's|^\(      directory: \).*kafka-spool$|\1""|' configs/gateway.yaml >"$TMP/gateway-nospool.yaml"
grep -q 'directory: ""' "$TMP/gateway-nospool.yaml" || { echo "bench-spool: cannot turn the spool off" >&2; exit 1; }

run() { # run LABEL CONFIG: a closed-loop loadgen window against a fresh gateway
  start_collector "$2" "$TMP/gw-$1.log" "$HEALTH"
  local gw=$PID
  sleep 1
  "$LOADGEN" --target "$TARGET" --format "$FORMAT" --connections "$CONNECTIONS" \
    --duration "$DURATION" --warmup "$WARMUP" --pid "$gw" --api-key "$KEY" | tee "$TMP/$1.txt"
  stop_pid "$gw"
}

# Twice each, alternating: the first window also warms the broker's JVM up.
echo; echo "== 1. Kafka healthy: spool off, on, off, on ($FORMAT, $CONNECTIONS connections)"
for round in 1 2; do
  run "off$round" "$TMP/gateway-nospool.yaml"
  run "on$round" configs/gateway.yaml
done

echo; echo "== 2. Kafka stopped for $OUTAGE under $RATE requests/s: answered from the spool"
start_collector configs/gateway.yaml "$TMP/gw-outage.log" "$HEALTH"
GW=$PID
scripts/kafka.sh stop "$TMP/kafka" >>"$TMP/kafka.log" 2>&1
"$LOADGEN" --target "$TARGET" --format "$FORMAT" --connections 4 --rate "$RATE" \
  --duration "$OUTAGE" --warmup 0 --pid "$GW" --api-key "$KEY" | tee "$TMP/outage.txt"
SPOOL_MB=$(du -sm "$TMP/data/kafka-spool" | cut -f1)
curl -fsS "$HEALTH" | tee "$TMP/health-outage.json"; echo

echo; echo "== 3. Kafka back: draining"
scripts/kafka.sh start "$TMP/kafka" >>"$TMP/kafka.log" 2>&1
T0=$(date +%s.%N) CPU0=$(cpu_s "$GW")
for _ in $(seq 6000); do
  curl -fsS "$HEALTH" 2>/dev/null | grep -q '"status":"healthy"' && break
  sleep 0.1
done
T1=$(date +%s.%N) CPU1=$(cpu_s "$GW")
stop_pid "$GW"
SPOOLED=$(field "$TMP/outage.txt" acked_spans)
DRAIN_S=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.2f", b - a }')
DRAIN_CPU=$(awk -v a="$CPU0" -v b="$CPU1" 'BEGIN { printf "%.2f", b - a }')
if grep -qiE 'error' "$TMP/gw-outage.log"; then echo "-- gateway log:"; tail -15 "$TMP/gw-outage.log"; fi

summary() { # summary FILE
  echo "$(field "$1" spans_per_s) spans/s, $(field "$1" spans_per_cpu_s) spans per CPU-second," \
       "p50 $(field "$1" p50_ms) / p99 $(field "$1" p99_ms) ms, errors $(field "$1" errors)," \
       "RSS $(awk -v k="$(field "$1" rss_kb)" 'BEGIN { printf "%.1f", k / 1024 }') MB"
}
echo
echo "== summary ($(nproc) cores, $FORMAT; Kafka $(basename "$(ls "$ROOT"/.tools/kafka/libs/kafka_2.13-*.jar)" .jar), acks=all, zstd)"
for round in 1 2; do
  echo "Kafka healthy, spool off ($round): $(summary "$TMP/off$round.txt")"
  echo "Kafka healthy, spool on ($round):  $(summary "$TMP/on$round.txt")"
done
echo "Kafka down, spooling:     $(summary "$TMP/outage.txt"); $SPOOLED spans, $SPOOL_MB MB on disk"
echo "drain after Kafka was back: $DRAIN_S s, $(awk -v n="$SPOOLED" -v s="$DRAIN_S" \
     'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }') spans/s, gateway CPU $DRAIN_CPU s"
