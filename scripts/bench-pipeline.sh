#!/usr/bin/env bash
# Benchmarks the production path (design.md: gateway → Kafka → storage → ClickHouse
# → query API) and prints the figures; it never passes or fails on them.
#   scripts/bench-pipeline.sh [--duration 10s] [--warmup 2s] [--connections 16]
#                             [--format otlp|otlp-grpc|prela] [--probes 200]
#                             [--build-dir build-bench] [--no-build] [--keep]
# Steps, each with its own fresh processes, on loopback:
#  1. a Kafka broker (scripts/kafka.sh) and a ClickHouse server (scripts/clickhouse.sh)
#     in a temp dir, on free ports;
#  2. gateway: prela-collector --config configs/gateway.yaml (acks=all, zstd) driven
#     by loadgen for the window: spans per CPU-second of the gateway into Kafka,
#     latency, RSS; then SIGTERM;
#  3. storage: prela-collector --config configs/storage.yaml started on the topic
#     the gateway filled; the time and the collector's CPU (utime+stime from /proc)
#     until ClickHouse holds every span the gateway acknowledged: spans per
#     CPU-second of the storage pipeline (ClickHouse's own CPU is shown apart);
#  4. freshness: the gateway again beside the storage collector; bench/freshness
#     times ingest answer → trace visible in the storage collector's query API,
#     first alone, then with loadgen sending half the storage rate of step 3.
# Every acknowledged span must be in ClickHouse at the end; a shortfall is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=10s WARMUP=2s CONNECTIONS=16 FORMAT=otlp PROBES=200
BUILD_DIR=build-bench BUILD=1 KEEP=0
. scripts/lib/bench.sh # bench_shared_flag, free_port, start_collector, start_kafka, ...
while [ $# -gt 0 ]; do
  bench_shared_flag "$@" && { shift "$BENCH_SHIFT"; continue; }
  case "$1" in
    --format) FORMAT=$2; shift 2 ;;
    --probes) PROBES=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-pipeline: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$FORMAT" in otlp|otlp-grpc|prela) ;; *) echo "bench-pipeline: bad --format" >&2; exit 2 ;; esac

NAME=bench-pipeline
bench_build prela-collector loadgen freshness
BIN=$ROOT/$BUILD_DIR/prela-collector LOADGEN=$ROOT/$BUILD_DIR/loadgen
FRESHNESS=$ROOT/$BUILD_DIR/freshness

TMP=$(mktemp -d "${TMPDIR:-/tmp}/prela-bench-pipeline.XXXXXX")
PIDS=() SERVICES=()
hwm_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; } # peak RSS
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  stop_services
  if [ "$KEEP" = 1 ]; then echo "bench-pipeline: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ch() { curl -fsS --data-binary "$1" "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/"; }

echo "== starting Kafka and ClickHouse in $TMP"
start_kafka "$TMP/kafka"           # exports KAFKA_PORT ...
start_clickhouse "$TMP/clickhouse" # exports CLICKHOUSE_HTTP_PORT ..., sets CH_PID
echo "Kafka :$KAFKA_PORT, ClickHouse :$CLICKHOUSE_HTTP_PORT"

P_PRELA=$(free_port) P_GRPC=$(free_port) P_HTTP=$(free_port) P_QUERY=$(free_port)
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT KAFKA_TOPIC_SPANS=bench-spans \
  KAFKA_TOPIC_TRACES=bench-traces CLICKHOUSE_HOST=127.0.0.1 CLICKHOUSE_PORT=$CLICKHOUSE_HTTP_PORT \
  CLICKHOUSE_DATABASE=prela_bench PRELA_LOG_LEVEL=warn PRELA_DATA_DIR=$TMP/data \
  PRELA_INGEST_ENDPOINT=127.0.0.1:$P_PRELA PRELA_OTLP_GRPC_ENDPOINT=127.0.0.1:$P_GRPC \
  PRELA_OTLP_HTTP_ENDPOINT=127.0.0.1:$P_HTTP PRELA_QUERY_ENDPOINT=127.0.0.1:$P_QUERY
case "$FORMAT" in otlp-grpc) TARGET=127.0.0.1:$P_GRPC ;; otlp) TARGET=127.0.0.1:$P_HTTP ;;
                  prela) TARGET=127.0.0.1:$P_PRELA ;; esac
bench_keys "$TMP/keys.yaml" # the role configs require API keys

start() { # start ROLE: runs configs/ROLE.yaml in the background, sets PID
  local url
  case "$1" in gateway) url=http://127.0.0.1:$P_PRELA/health ;;
               storage) url=http://127.0.0.1:$P_QUERY/api/v1/health ;; esac
  start_collector "configs/$1.yaml" "$TMP/$1.log" "$url"
}
stop() { stop_pid "$1"; }

# --- 2. gateway into Kafka -----------------------------------------------------------
echo; echo "== gateway (configs/gateway.yaml) into Kafka, $FORMAT, $CONNECTIONS connections"
start gateway; GW=$PID
sleep 1
echo "gateway idle RSS: $(rss_mb "$GW") MB"
"$LOADGEN" --target "$TARGET" --format "$FORMAT" --connections "$CONNECTIONS" \
  --duration "$DURATION" --warmup "$WARMUP" --pid "$GW" --api-key "$KEY" | tee "$TMP/gateway.txt"
stop "$GW"
ACKED=$(field "$TMP/gateway.txt" acked_spans)

# --- 3. storage: Kafka into ClickHouse ------------------------------------------------
echo; echo "== storage (configs/storage.yaml): $ACKED acknowledged spans from Kafka into ClickHouse"
CH_CPU0=$(cpu_s "$CH_PID")
T0=$(date +%s.%N)
start storage; ST=$PID
stored=0
for _ in $(seq 6000); do
  stored=$(ch "SELECT count() FROM prela_bench.spans" 2>/dev/null || echo 0)
  [ "$stored" -ge "$ACKED" ] && break
  sleep 0.1
done
T1=$(date +%s.%N)
ST_CPU=$(cpu_s "$ST") CH_CPU=$(awk -v a="$CH_CPU0" -v b="$(cpu_s "$CH_PID")" 'BEGIN { print b - a }')
WALL=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.2f", b - a }')
echo "stored $stored of $ACKED acknowledged spans in $WALL s; storage collector CPU $ST_CPU s," \
     "ClickHouse CPU $CH_CPU s; storage RSS $(rss_mb "$ST") MB (peak $(hwm_mb "$ST") MB)"
STORAGE_HWM=$(hwm_mb "$ST")
STORAGE_SPS=$(awk -v n="$stored" -v c="$ST_CPU" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')
STORAGE_WALL=$(awk -v n="$stored" -v w="$WALL" 'BEGIN { printf "%.0f", (w > 0 ? n / w : 0) }')
[ "$stored" -lt "$ACKED" ] && echo "  <-- FEWER THAN ACKNOWLEDGED"

# --- 4. freshness ------------------------------------------------------------------------
echo; echo "== freshness: gateway → Kafka → storage → ClickHouse → query API"
start gateway; GW=$PID
FRESH_ARGS=(--ingest "127.0.0.1:$P_HTTP" --query "127.0.0.1:$P_QUERY" --traces "$PROBES"
            --api-key "$KEY")
"$FRESHNESS" "${FRESH_ARGS[@]}" | tee "$TMP/fresh-idle.txt"
# Loaded: half of what the storage collector drained per second, so it keeps up
# (at or past its capacity the lag, and with it freshness, would only grow).
LOAD_RATE=$(awk -v w="$STORAGE_WALL" 'BEGIN { printf "%.0f", w / 2 / 100 }')
echo "-- again with loadgen loading the gateway at $LOAD_RATE requests/s ($((LOAD_RATE * 100)) spans/s)"
"$LOADGEN" --target "$TARGET" --format "$FORMAT" --connections 4 --rate "$LOAD_RATE" \
  --duration 600s --warmup 0 --api-key "$KEY" >"$TMP/fresh-load-loadgen.txt" 2>&1 &
LG=$!
PIDS+=("$LG")
sleep 1
"$FRESHNESS" "${FRESH_ARGS[@]}" | tee "$TMP/fresh-load.txt"
kill -TERM "$LG" 2>/dev/null || true; wait "$LG" 2>/dev/null || true
stop "$GW"
sleep 2
stop "$ST"
for r in gateway storage; do
  if grep -qiE 'error|warn' "$TMP/$r.log"; then echo "-- $r log:"; tail -15 "$TMP/$r.log"; fi
done

# --- summary ------------------------------------------------------------------------------
g=$TMP/gateway.txt
echo
echo "== summary ($(nproc) cores; Kafka $(basename "$(ls "$ROOT"/.tools/kafka/libs/kafka_2.13-*.jar)" .jar)," \
     "ClickHouse $(ch 'SELECT version()'))"
echo "gateway into Kafka (acks=all, $FORMAT, $CONNECTIONS connections):" \
     "$(field "$g" spans_per_s) spans/s, $(field "$g" spans_per_cpu_s) spans per CPU-second," \
     "p50 $(field "$g" p50_ms) / p99 $(field "$g" p99_ms) ms, errors $(field "$g" errors)," \
     "RSS under load $(awk -v k="$(field "$g" rss_kb)" 'BEGIN { printf "%.1f", k / 1024 }') MB"
echo "storage Kafka into ClickHouse: $STORAGE_SPS spans per CPU-second of the collector" \
     "($STORAGE_WALL spans/s wall, $stored spans; ClickHouse used $CH_CPU CPU-s besides)," \
     "peak RSS $STORAGE_HWM MB"
echo "freshness, idle:     p50 $(field "$TMP/fresh-idle.txt" p50_ms) ms," \
     "p99 $(field "$TMP/fresh-idle.txt" p99_ms) ms, max $(field "$TMP/fresh-idle.txt" max_ms) ms" \
     "($(field "$TMP/fresh-idle.txt" visible)/$PROBES visible)"
echo "freshness, $((LOAD_RATE * 100)) spans/s: p50 $(field "$TMP/fresh-load.txt" p50_ms) ms," \
     "p99 $(field "$TMP/fresh-load.txt" p99_ms) ms, max $(field "$TMP/fresh-load.txt" max_ms) ms" \
     "($(field "$TMP/fresh-load.txt" visible)/$PROBES visible)"
