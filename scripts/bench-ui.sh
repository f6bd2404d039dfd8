#!/usr/bin/env bash
# The trace viewer's render benchmark of issue 14: a standalone collector (the embedded
# store) holding 10,000 traces and one trace of 1,000 spans, and headless chromium timing
# the trace list's first render, the 1,000-span waterfall's and a span selection in it,
# N rounds (p50 and max); plus the UI's size, raw and gzipped. Prints figures, never
# passes or fails on them (bench/README.md, "Trace viewer").
#   scripts/bench-ui.sh [--rounds 5] [--traces 10000] [--spans 1000] [--batch 200]
#                       [--build-dir build-bench] [--no-build] [--keep]
# Steps: build (Release, build-bench/) unless --no-build; start the collector with
# configs/standalone.yaml on free loopback ports, its data in a temp dir; run
# bench/ui_render.py (the project's .venv Python: Selenium and requests from
# tests/requirements.txt; Debian's chromium and chromedriver), which loads the traces
# through the OTLP/HTTP receiver and measures; stop the collector; remove the temp dir
# (--keep leaves it: config, log, data).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ROUNDS=5 TRACES=10000 SPANS=1000 BATCH=200
DURATION=0 WARMUP=0 CONNECTIONS=0 BUILD_DIR=build-bench BUILD=1 KEEP=0
. scripts/lib/bench.sh # bench_shared_flag, free_port, start_collector, stop_pid, ...
while [ $# -gt 0 ]; do
  bench_shared_flag "$@" && { shift "$BENCH_SHIFT"; continue; }
  if [ $# -lt 2 ] && [ "$1" != -h ] && [ "$1" != --help ]; then
    echo "bench-ui: $1 needs a value or is unknown (see --help)" >&2; exit 2
  fi
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --traces) TRACES=$2; shift 2 ;;
    --spans) SPANS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) echo "bench-ui: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

NAME=bench-ui
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || { echo "bench-ui: $PY missing (scripts/setup.sh makes it)" >&2; exit 1; }
bench_build prela-collector
BIN=$ROOT/$BUILD_DIR/prela-collector

TMP=$(mktemp -d "${TMPDIR:-/tmp}/prela-bench-ui.XXXXXX")
PIDS=() SERVICES=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then echo "bench-ui: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

QUERY_PORT=$(free_port) OTLP_PORT=$(free_port)
export PRELA_INGEST_ENDPOINT=127.0.0.1:$(free_port)
export PRELA_OTLP_GRPC_ENDPOINT=127.0.0.1:$(free_port)
export PRELA_OTLP_HTTP_ENDPOINT=127.0.0.1:$OTLP_PORT
export PRELA_QUERY_ENDPOINT=127.0.0.1:$QUERY_PORT
export PRELA_DATA_DIR=$TMP/data PRELA_LOG_LEVEL=warn
cp configs/standalone.yaml "$TMP/config.yaml"
echo "== collector ($BUILD_DIR/prela-collector, configs/standalone.yaml, data in $TMP)"
start_collector "$TMP/config.yaml" "$TMP/collector.log" "http://127.0.0.1:$QUERY_PORT/api/v1/health"
COLLECTOR=$PID

"$PY" bench/ui_render.py --otlp "http://127.0.0.1:$OTLP_PORT" \
  --query "http://127.0.0.1:$QUERY_PORT" --rounds "$ROUNDS" --traces "$TRACES" \
  --spans "$SPANS" --batch "$BATCH"
echo "collector: RSS $(rss_mb "$COLLECTOR") MB, CPU $(cpu_s "$COLLECTOR") s," \
  "data $(du -sh "$PRELA_DATA_DIR" | cut -f1)"
stop_pid "$COLLECTOR"
