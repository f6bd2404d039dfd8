#!/usr/bin/env bash
# Benchmarks the standalone collector with the reference workload (design.md) and
# prints the figures; it never passes or fails on them (bench/README.md).
#   scripts/bench.sh [--duration 10s] [--warmup 2s] [--connections 16]
#                    [--build-dir build-bench] [--no-build] [--perf] [--keep]
# Steps: build (Release, in build-bench/ unless told otherwise); start
# prela-collector alone in a temp dir (compiled-in standalone config; endpoints on
# free loopback ports and the data dir set through PRELA_* variables); idle RSS;
# loadgen otlp, then loadgen prela, both with --pid; check through the query API
# that the last acknowledged trace of each run is stored whole (span_count 10);
# SIGTERM; count the stored spans in SQLite against what was acknowledged.
# --perf also records the collector with `perf record -g` during each run and
# prints the hottest symbols. --keep leaves the temp dir (logs, DB, perf data).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=10s WARMUP=2s CONNECTIONS=16 BUILD_DIR=build-bench BUILD=1 PERF=0 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --perf) PERF=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

seconds() { # "10s" / "500ms" / "2m" / "3" -> whole seconds, rounded up
  case "$1" in
    *ms) echo $(( (${1%ms} + 999) / 1000 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" | cut -d. -f1 ;;
    *) echo "$1" | cut -d. -f1 ;;
  esac
}

# --- build ---------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  echo "== building ($BUILD_DIR, Release)"
  scripts/setup.sh "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
BIN=$ROOT/$BUILD_DIR/prela-collector
LOADGEN=$ROOT/$BUILD_DIR/loadgen
for f in "$BIN" "$LOADGEN"; do
  [ -x "$f" ] || { echo "bench: $f missing (build first, or drop --no-build)" >&2; exit 1; }
done

# --- start the collector --------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/prela-bench.XXXXXX")
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then echo "bench: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
P_PRELA=$(free_port) P_OTLP=$(free_port) P_QUERY=$(free_port)
QUERY=http://127.0.0.1:$P_QUERY

echo "== starting $BIN in $TMP (prela :$P_PRELA, otlp :$P_OTLP, query :$P_QUERY)"
(cd "$TMP" && exec env PRELA_DATA_DIR="$TMP/data" \
   PRELA_INGEST_ENDPOINT=127.0.0.1:$P_PRELA PRELA_OTLP_HTTP_ENDPOINT=127.0.0.1:$P_OTLP \
   PRELA_QUERY_ENDPOINT=127.0.0.1:$P_QUERY PRELA_LOG_LEVEL=warn \
   "$BIN" >"$TMP/collector.log" 2>&1) &
PID=$!
for _ in $(seq 100); do
  curl -fsS -o /dev/null "$QUERY/api/v1/health" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { echo "bench: collector exited:" >&2; cat "$TMP/collector.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "$QUERY/api/v1/health" || { echo "bench: collector not healthy" >&2; exit 1; }
sleep 1
IDLE_RSS=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
echo "idle RSS after start-up: $((IDLE_RSS)) kB"

# --- the runs -------------------------------------------------------------------
PERF_SECS=$(( $(seconds "$WARMUP") + $(seconds "$DURATION") ))
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then
  echo "bench: perf not installed; running without --perf" >&2
  PERF=0
fi
run() { # format port
  local fmt=$1 port=$2 perf_pid=""
  echo
  echo "== loadgen $fmt"
  local cmd=("$LOADGEN" --target "127.0.0.1:$port" --format "$fmt" --connections "$CONNECTIONS"
             --duration "$DURATION" --warmup "$WARMUP" --pid "$PID")
  echo "\$ ${cmd[*]}"
  if [ "$PERF" = 1 ]; then
    perf record -q -F 499 -g -p "$PID" -o "$TMP/perf-$fmt.data" -- sleep "$PERF_SECS" \
      >/dev/null 2>&1 &
    perf_pid=$!
  fi
  "${cmd[@]}" | tee "$TMP/loadgen-$fmt.txt"
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    echo "-- perf: collector CPU by thread name during the $fmt run"
    echo "   (MHD-connection = HTTP receive, decode, normalize; prela-collector = main and"
    echo "    unnamed threads such as the embedded store's writer)"
    perf report -i "$TMP/perf-$fmt.data" --stdio --no-children --sort comm 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -5 || true
    echo "-- perf: hottest symbols (self time, all threads)"
    perf report -i "$TMP/perf-$fmt.data" --stdio --no-children --sort dso,symbol 2>/dev/null |
      grep -E '^ +[0-9.]+%' | sed 's/ *- *- *$//' | head -25 || true
  fi
}
run otlp "$P_OTLP"
run prela "$P_PRELA"

field() { # file key -> value from the loadgen "result" line
  grep '^result ' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# --- did the data land? ---------------------------------------------------------
echo
echo "== query API"
echo "\$ curl $QUERY/api/v1/traces?limit=1"
curl -fsS "$QUERY/api/v1/traces?limit=1" | head -c 600; echo
CHECKS=""
for fmt in otlp prela; do
  id=$(field "$TMP/loadgen-$fmt.txt" last_trace_id)
  count=$(curl -fsS "$QUERY/api/v1/traces/$id" 2>/dev/null |
          grep -o '"span_count":[0-9]*' | head -1 | cut -d: -f2 || true)
  CHECKS+="  last acknowledged $fmt trace $id: span_count ${count:-missing} (expected 10)"$'\n'
done
printf '%s' "$CHECKS"

# --- stop, then count what the store holds ----------------------------------------
echo
echo "== SIGTERM"
T0=$(date +%s.%N)
kill -TERM "$PID"
for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then
  echo "bench: collector still running 30 s after SIGTERM" >&2
  STOP="did not stop within 30 s"
else
  wait "$PID" && rc=0 || rc=$?
  STOP="exited with status $rc after $(awk -v a="$T0" -v b="$(date +%s.%N)" \
    'BEGIN { printf "%.1f", b - a }') s"
fi
PID=""
echo "collector $STOP"
if [ -s "$TMP/collector.log" ]; then
  echo "-- collector log (warnings and errors):"; tail -20 "$TMP/collector.log"
fi

ACKED=$(( $(field "$TMP/loadgen-otlp.txt" acked_spans) + $(field "$TMP/loadgen-prela.txt" acked_spans) ))
SENT=$(( $(field "$TMP/loadgen-otlp.txt" sent_spans) + $(field "$TMP/loadgen-prela.txt" sent_spans) ))
if command -v sqlite3 >/dev/null; then
  STORED=$(sqlite3 "$TMP/data/prela.db" "SELECT count(*) FROM spans")
  TRACES=$(sqlite3 "$TMP/data/prela.db" "SELECT count(*) FROM traces")
  STORE="spans stored $STORED (acknowledged $ACKED, sent $SENT); traces stored $TRACES"
  DB_BYTES=$(du -sb "$TMP/data" | cut -f1)
  STORE+=$'\n'"  store on disk: $(awk -v b="$DB_BYTES" -v n="$STORED" \
    'BEGIN { printf "%.1f MB, %.0f bytes per span", b / 1e6, (n > 0 ? b / n : 0) }')"
  if [ "$STORED" -lt "$ACKED" ]; then STORE+="  <-- FEWER THAN ACKNOWLEDGED"; fi
else
  STORE="sqlite3 not installed: stored span count not checked (acknowledged $ACKED)"
fi

# --- summary ----------------------------------------------------------------------
echo
echo "== summary ($(nproc) cores; $CONNECTIONS connections; window $DURATION after $WARMUP warmup)"
printf '%-7s %10s %12s %10s %9s %9s %9s %8s %8s %8s\n' format "spans/s" "spans/CPU-s" \
  "CPU-s/Mspan" "p50 ms" "p99 ms" "max ms" errors "RSS MB" "peak MB"
for fmt in otlp prela; do
  f=$TMP/loadgen-$fmt.txt
  sps=$(field "$f" spans_per_cpu_s)
  printf '%-7s %10s %12s %10s %9s %9s %9s %8s %8.1f %8.1f\n' "$fmt" "$(field "$f" spans_per_s)" \
    "$sps" "$(awk -v s="$sps" 'BEGIN { printf "%.2f", (s > 0 ? 1e6 / s : 0) }')" \
    "$(field "$f" p50_ms)" "$(field "$f" p99_ms)" "$(field "$f" max_ms)" "$(field "$f" errors)" \
    "$(awk -v k="$(field "$f" rss_kb)" 'BEGIN { print k / 1024 }')" \
    "$(awk -v k="$(field "$f" hwm_kb)" 'BEGIN { print k / 1024 }')"
done
echo "idle RSS: $(awk -v k="$IDLE_RSS" 'BEGIN { printf "%.1f", k / 1024 }') MB; request bodies: otlp $(field "$TMP/loadgen-otlp.txt" body_bytes) B, prela $(field "$TMP/loadgen-prela.txt" body_bytes) B"
printf '%s' "$CHECKS"
echo "  $STORE"
echo "  collector $STOP"
