#!/usr/bin/env bash
# Benchmarks the standalone collector with the reference workload (design.md) and
# prints the figures; it never passes or fails on them (bench/README.md).
#   scripts/bench.sh [--duration 10s] [--warmup 2s] [--connections 16] [--streams 1]
#                    [--formats otlp-grpc,otlp,prela] [--build-dir build-bench]
#                    [--no-build] [--perf] [--keep] [--tls] [--auth]
# Steps: build (Release, in build-bench/ unless told otherwise). Then for each
# format (OTLP/gRPC, OTLP/HTTP, Prela JSON) a fresh collector: prela-collector
# alone in its own temp dir (compiled-in standalone config; endpoints on free
# loopback ports and the data dir set through PRELA_* variables); its idle RSS;
# one loadgen run with --pid (--streams: gRPC calls in flight per connection);
# a check through the query API that the last acknowledged trace is stored
# whole (span_count 10); SIGTERM; the stored spans counted in SQLite against
# what was acknowledged. One collector per format, so idle RSS, RSS under load
# and peak RSS (VmHWM) belong to that format alone. A summary table ends.
# --perf also records the collector with `perf record -g` during each run and
# prints the hottest symbols. --keep leaves the temp dir (logs, DBs, perf data).
# --tls serves every listener over TLS (certificates made with openssl in the temp
# dir; configs/standalone.yaml with tls: on each endpoint) and runs loadgen with
# --tls-ca, so the figures compare with a run without --tls.
# --auth adds an auth: section with one API key, sent by loadgen (--api-key) and
# curl, so the cost of checking keys compares with a run without --auth.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=10s WARMUP=2s CONNECTIONS=16 STREAMS=1 FORMATS=otlp-grpc,otlp,prela
BUILD_DIR=build-bench BUILD=1 PERF=0 KEEP=0 TLS=0 AUTH=0
. scripts/lib/bench.sh  # bench_shared_flag
while [ $# -gt 0 ]; do
  bench_shared_flag "$@" && { shift "$BENCH_SHIFT"; continue; }
  case "$1" in
    --streams) STREAMS=$2; shift 2 ;;
    --formats) FORMATS=$2; shift 2 ;;
    --perf) PERF=1; shift ;;
    --tls) TLS=1; shift ;;
    --auth) AUTH=1; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
IFS=, read -r -a FMTS <<<"$FORMATS"
for fmt in "${FMTS[@]}"; do
  case "$fmt" in
    otlp-grpc|otlp|prela) ;;
    *) echo "bench: unknown format $fmt (otlp-grpc, otlp, prela)" >&2; exit 2 ;;
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
PERF_SECS=$(( $(seconds "$WARMUP") + $(seconds "$DURATION") ))
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then
  echo "bench: perf not installed; running without --perf" >&2
  PERF=0
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/prela-bench.XXXXXX")
PID=""
stop_collector() { # SIGTERM, then SIGKILL after 5 s; quiet
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  PID=""
}
cleanup() {
  stop_collector
  if [ "$KEEP" = 1 ]; then echo "bench: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- TLS: a CA, a server certificate for 127.0.0.1, the standalone config with tls ---
CONFIG_ARGS=() LOADGEN_TLS=() CURL_TLS=() SCHEME=http
if [ "$TLS" = 1 ]; then
  (cd "$TMP" &&
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
     -out ca.crt -days 2 -subj /CN=bench-ca &&
   openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key \
     -out server.csr -subj /CN=127.0.0.1 &&
   printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext &&
   openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
     -days 2 -extfile server.ext) >"$TMP/openssl.log" 2>&1 ||
    { echo "bench: openssl failed:" >&2; cat "$TMP/openssl.log" >&2; exit 1; }
  awk -v tls="tls: {cert_file: $TMP/server.crt, key_file: $TMP/server.key}" '
    { print } /endpoint: \$\{env:PRELA_/ { match($0, /^ */); printf "%*s%s\n", RLENGTH, "", tls }' \
    configs/standalone.yaml >"$TMP/standalone-tls.yaml"
  CONFIG_ARGS=(--config "$TMP/standalone-tls.yaml") LOADGEN_TLS=(--tls-ca "$TMP/ca.crt")
  CURL_TLS=(--cacert "$TMP/ca.crt") SCHEME=https
fi
# --- auth: one key (admin: ingest and read) in an auth: section ------------------------
LOADGEN_AUTH=()
if [ "$AUTH" = 1 ]; then
  KEY=$(openssl rand -hex 24)
  base=configs/standalone.yaml
  [ "$TLS" = 1 ] && base=$TMP/standalone-tls.yaml
  { printf 'auth:\n  keys:\n    - {name: bench, key: %s, project: bench, scopes: [admin]}\n' "$KEY"
    cat "$base"; } >"$TMP/standalone-auth.yaml"
  CONFIG_ARGS=(--config "$TMP/standalone-auth.yaml") LOADGEN_AUTH=(--api-key "$KEY")
  CURL_TLS+=(-H "X-API-Key: $KEY")
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
field() { # file key -> value from the loadgen "result" line
  grep '^result ' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# --- one format: fresh collector, idle RSS, loadgen, checks, stop, count ----------
# Leaves $TMP/$fmt/loadgen.txt and $TMP/$fmt/summary (key=value lines).
run_format() {
  local fmt=$1 dir=$TMP/$1 perf_pid=""
  local p_prela p_http p_grpc p_query query port
  p_prela=$(free_port) p_http=$(free_port) p_grpc=$(free_port) p_query=$(free_port)
  query=$SCHEME://127.0.0.1:$p_query
  case "$fmt" in otlp-grpc) port=$p_grpc ;; otlp) port=$p_http ;; prela) port=$p_prela ;; esac
  mkdir -p "$dir"
  echo
  echo "== $fmt: starting $BIN in $dir (prela :$p_prela, otlp grpc :$p_grpc, otlp http" \
       ":$p_http, query :$p_query)"
  (cd "$dir" && exec env PRELA_DATA_DIR="$dir/data" PRELA_INGEST_ENDPOINT=127.0.0.1:$p_prela \
     PRELA_OTLP_GRPC_ENDPOINT=127.0.0.1:$p_grpc PRELA_OTLP_HTTP_ENDPOINT=127.0.0.1:$p_http \
     PRELA_QUERY_ENDPOINT=127.0.0.1:$p_query PRELA_LOG_LEVEL=warn \
     "$BIN" "${CONFIG_ARGS[@]}" >"$dir/collector.log" 2>&1) &
  PID=$!
  for _ in $(seq 100); do
    curl -fsS "${CURL_TLS[@]}" -o /dev/null "$query/api/v1/health" 2>/dev/null && break
    if ! kill -0 "$PID" 2>/dev/null; then
      echo "bench: collector exited:" >&2; cat "$dir/collector.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  curl -fsS "${CURL_TLS[@]}" -o /dev/null "$query/api/v1/health" || { echo "bench: collector not healthy" >&2; exit 1; }
  sleep 1
  local idle_rss
  idle_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
  echo "idle RSS after start-up: $idle_rss kB"

  local cmd=("$LOADGEN" --target "127.0.0.1:$port" --format "$fmt" --connections "$CONNECTIONS"
             --duration "$DURATION" --warmup "$WARMUP" --pid "$PID" "${LOADGEN_TLS[@]}" "${LOADGEN_AUTH[@]}")
  [ "$fmt" = otlp-grpc ] && cmd+=(--streams "$STREAMS")
  echo "\$ ${cmd[*]}"
  if [ "$PERF" = 1 ]; then
    perf record -q -F 499 -g -p "$PID" -o "$dir/perf.data" -- sleep "$PERF_SECS" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  "${cmd[@]}" | tee "$dir/loadgen.txt"
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    echo "-- perf: collector CPU by thread name during the $fmt run"
    echo "   (MHD-connection = HTTP receive, decode, normalize; prela-collector = main and"
    echo "    unnamed threads such as the embedded store's writer and the gRPC threads)"
    perf report -i "$dir/perf.data" --stdio --no-children --sort comm 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -6 || true
    echo "-- perf: hottest symbols (self time, all threads)"
    perf report -i "$dir/perf.data" --stdio --no-children --sort dso,symbol 2>/dev/null |
      grep -E '^ +[0-9.]+%' | sed 's/ *- *- *$//' | head -25 || true
  fi

  # did the data land?
  local id count check
  id=$(field "$dir/loadgen.txt" last_trace_id)
  count=$(curl -fsS "${CURL_TLS[@]}" "$query/api/v1/traces/$id" 2>/dev/null |
          grep -o '"span_count":[0-9]*' | head -1 | cut -d: -f2 || true)
  check="last acknowledged $fmt trace $id: span_count ${count:-missing} (expected 10)"
  echo "$check"

  # stop, then count what the store holds
  local t0 stop rc
  t0=$(date +%s.%N)
  kill -TERM "$PID"
  for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$PID" 2>/dev/null; then
    echo "bench: collector still running 30 s after SIGTERM" >&2
    stop="did not stop within 30 s"
    stop_collector
  else
    wait "$PID" && rc=0 || rc=$?
    stop="exited with status $rc after $(awk -v a="$t0" -v b="$(date +%s.%N)" \
      'BEGIN { printf "%.1f", b - a }') s"
  fi
  PID=""
  echo "collector $stop"
  if [ -s "$dir/collector.log" ]; then
    echo "-- collector log (warnings and errors):"; tail -20 "$dir/collector.log"
  fi
  local acked sent store stored traces bytes
  acked=$(field "$dir/loadgen.txt" acked_spans) sent=$(field "$dir/loadgen.txt" sent_spans)
  if command -v sqlite3 >/dev/null && [ -f "$dir/data/prela.db" ]; then
    stored=$(sqlite3 "$dir/data/prela.db" "SELECT count(*) FROM spans")
    traces=$(sqlite3 "$dir/data/prela.db" "SELECT count(*) FROM traces")
    bytes=$(du -sb "$dir/data" | cut -f1)
    store="spans stored $stored (acknowledged $acked, sent $sent); traces stored $traces; $(
      awk -v b="$bytes" -v n="$stored" \
        'BEGIN { printf "%.1f MB on disk, %.0f bytes per span", b / 1e6, (n > 0 ? b / n : 0) }')"
    [ "$stored" -lt "$acked" ] && store+="  <-- FEWER THAN ACKNOWLEDGED"
  else
    store="stored spans not counted (no sqlite3 or no store; acknowledged $acked, sent $sent)"
  fi
  echo "$store"
  [ "$KEEP" = 1 ] || rm -rf "$dir/data"
  printf 'idle_rss_kb=%s\ncheck=%s\nstore=%s\nstop=%s\n' "$idle_rss" "$check" "$store" "$stop" \
    >"$dir/summary"
}

for fmt in "${FMTS[@]}"; do run_format "$fmt"; done

# --- summary ----------------------------------------------------------------------
sum() { sed -n "s/^$2=//p" "$TMP/$1/summary"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo
echo "== summary ($(nproc) cores; $CONNECTIONS connections, gRPC $STREAMS stream(s) each;" \
  "$([ "$TLS" = 1 ] && echo "TLS on every listener;" || echo "plaintext;")" \
  "$([ "$AUTH" = 1 ] && echo "API key checked on every request;" || echo "no API keys;")" \
  "window $DURATION after $WARMUP warmup; a fresh collector per format)"
printf '%-10s %9s %11s %11s %8s %8s %8s %7s %8s %8s %8s\n' format "spans/s" "spans/CPU-s" \
  "CPU-s/Mspan" "p50 ms" "p99 ms" "max ms" errors "idle MB" "load MB" "peak MB"
for fmt in "${FMTS[@]}"; do
  f=$TMP/$fmt/loadgen.txt
  sps=$(field "$f" spans_per_cpu_s)
  printf '%-10s %9s %11s %11s %8s %8s %8s %7s %8s %8s %8s\n' "$fmt" "$(field "$f" spans_per_s)" \
    "$sps" "$(awk -v s="$sps" 'BEGIN { printf "%.2f", (s > 0 ? 1e6 / s : 0) }')" \
    "$(field "$f" p50_ms)" "$(field "$f" p99_ms)" "$(field "$f" max_ms)" "$(field "$f" errors)" \
    "$(mb "$(sum "$fmt" idle_rss_kb)")" "$(mb "$(field "$f" rss_kb)")" \
    "$(mb "$(field "$f" hwm_kb)")"
done
echo "(idle: after start-up; load: at the end of the window; peak: VmHWM of that collector)"
for fmt in "${FMTS[@]}"; do
  echo "$fmt: body $(field "$TMP/$fmt/loadgen.txt" body_bytes) B; $(sum "$fmt" store)"
  echo "  $(sum "$fmt" check); collector $(sum "$fmt" stop)"
done
