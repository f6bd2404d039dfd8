# scripts/lib/bench.sh - what the benchmark scripts (bench.sh, bench-peers.sh,
# bench-pipeline.sh, bench-spool.sh, bench-query-scale.sh) share: the flags they all
# take, free ports, reading loadgen's result line, a process's CPU seconds and RSS,
# starting a collector and waiting for its health route, stopping one, and starting
# the services a benchmark runs against (Kafka, ClickHouse 18.16, chDB) in its temp
# dir on free ports. Sourced, not run (only function definitions: sourcing it twice
# is harmless). Before using the collector and service functions the sourcing script
# sets BIN (the collector), TMP (its temp dir) and NAME (its name in messages), and
# the arrays PIDS (every process it started, killed by its cleanup) and SERVICES
# (what start_kafka / start_clickhouse started; its cleanup calls stop_services).

# bench_shared_flag "$@": when $1 is a flag every benchmark script takes, applies it
# and sets BENCH_SHIFT to the number of arguments it used; otherwise returns 1 and the
# script's own `case` handles $1. The flags and what they set (each script sets the
# defaults first):
#   --duration D     DURATION      loadgen's measured window (10s, 500ms, 2m)
#   --warmup D       WARMUP        loadgen's warm-up before it
#   --connections N  CONNECTIONS   loadgen's concurrent connections
#   --build-dir DIR  BUILD_DIR     where the Release build lives
#   --no-build       BUILD=0       use that build as it is
#   --keep           KEEP=1        leave the temp dir (logs, data) behind
# A flag missing its value ends the script with status 2, like an unknown flag.
# Usage: while [ $# -gt 0 ]; do bench_shared_flag "$@" && { shift "$BENCH_SHIFT"; continue; }
#        case "$1" in ...script's own flags... esac; done
bench_shared_flag() {
  case "$1" in
    --duration | --warmup | --connections | --build-dir)
      if [ $# -lt 2 ]; then
        local me=${0##*/}
        echo "${me%.sh}: $1 needs a value (see --help)" >&2
        exit 2
      fi
      case "$1" in
        --duration) DURATION=$2 ;;
        --warmup) WARMUP=$2 ;;
        --connections) CONNECTIONS=$2 ;;
        --build-dir) BUILD_DIR=$2 ;;
      esac
      BENCH_SHIFT=2 ;;
    --no-build) BUILD=0; BENCH_SHIFT=1 ;;
    --keep) KEEP=1; BENCH_SHIFT=1 ;;
    *) return 1 ;;
  esac
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
field() { grep '^result ' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
cpu_s() { # utime+stime of pid $1 in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' \
    "/proc/$1/stat"
}
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# wait_url URL PID LOG WHAT: waits until URL answers 2xx (30 s) while PID lives; else
# prints WHAT's LOG and exits 1.
wait_url() {
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "$NAME: $4 exited:" >&2; cat "$3" >&2; exit 1; }
    sleep 0.1
  done
  echo "$NAME: $4 not healthy after 30 s" >&2; cat "$3" >&2; exit 1
}

# start_collector CONFIG LOG URL: runs the collector in the background (its /metrics on
# a free port unless PRELA_METRICS_ENDPOINT says otherwise), sets PID, waits until URL
# answers 2xx (30 s).
start_collector() {
  PRELA_METRICS_ENDPOINT=${PRELA_METRICS_ENDPOINT:-127.0.0.1:0} "$BIN" --config "$1" >>"$2" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  wait_url "$3" "$PID" "$2" "$1"
}
stop_pid() { # SIGTERM and wait (30 s, then SIGKILL)
  kill -TERM "$1"
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  echo "$NAME: pid $1 still running 30 s after SIGTERM" >&2
  kill -KILL "$1"
}

# bench_keys FILE: writes a keys file holding one key with scope admin (ingest and
# read, every project) for the shipped role configs, which require keys; exports
# PRELA_KEYS_FILE and sets KEY.
bench_keys() {
  KEY=$(openssl rand -hex 24)
  printf 'keys:\n  - {name: bench, key: %s, project: "*", scopes: [admin]}\n' "$KEY" >"$1"
  export PRELA_KEYS_FILE=$1
}

# none_config: the collector config of the "nothing" runs (bench-peers.sh, bench-ir.sh):
# the gateway's receivers (Prela JSON on $P_PRELA, OTLP gRPC on $P_GRPC and HTTP on
# $P_HTTP), API keys from $PRELA_KEYS_FILE (bench_keys), normalize, the debug exporter
# (nothing stored), log level warn. Printed to stdout.
none_config() {
  cat <<EOF
auth:
  keys_file: \${env:PRELA_KEYS_FILE}
receivers:
  prela: {endpoint: "127.0.0.1:$P_PRELA"}
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:$P_GRPC"}
      http: {endpoint: "127.0.0.1:$P_HTTP"}
processors:
  normalize:
exporters:
  debug: {verbosity: basic}
service:
  telemetry: {logs: {level: warn}}
  pipelines:
    traces: {receivers: [prela, otlp], processors: [normalize], exporters: [debug]}
EOF
}

# --- services: each in DIR (its output in DIR.log), on fresh free loopback ports -----

# start_kafka DIR: a Kafka broker (scripts/kafka.sh); exports KAFKA_PORT, KAFKA_SASL_PORT
# and KAFKA_CONTROLLER_PORT.
start_kafka() {
  export KAFKA_PORT=$(free_port) KAFKA_SASL_PORT=$(free_port) KAFKA_CONTROLLER_PORT=$(free_port)
  SERVICES+=("kafka $1")
  scripts/kafka.sh start "$1" >"$1.log" 2>&1 || { cat "$1.log" >&2; exit 1; }
}

# start_clickhouse DIR: Debian's ClickHouse 18.16 (scripts/clickhouse.sh); exports
# CLICKHOUSE_HTTP_PORT and CLICKHOUSE_TCP_PORT, sets CH_PID.
start_clickhouse() {
  export CLICKHOUSE_HTTP_PORT=$(free_port) CLICKHOUSE_TCP_PORT=$(free_port)
  SERVICES+=("clickhouse $1")
  scripts/clickhouse.sh start "$1" >"$1.log" 2>&1 || { cat "$1.log" >&2; exit 1; }
  CH_PID=$(cat "$1/clickhouse.pid")
}

# start_chdb DIR: chDB (ClickHouse 26, modern dialect) behind the tests' HTTP server,
# tests/integration/chdb_server.py, run by the venv's python (.venv/bin/python, as
# scripts/test.sh makes it); sets CHDB_PORT and CHDB_PID (in PIDS). That server runs
# statements in parallel, on a pool of chDB sessions.
start_chdb() {
  local py=.venv/bin/python
  [ -x "$py" ] || { echo "$NAME: $py missing (scripts/test.sh sets up the venv)" >&2; exit 1; }
  CHDB_PORT=$(free_port)
  mkdir -p "$1"
  "$py" tests/integration/chdb_server.py --port "$CHDB_PORT" --path "$1/db" >"$1.log" 2>&1 &
  CHDB_PID=$!
  PIDS+=("$CHDB_PID")
  wait_url "http://127.0.0.1:$CHDB_PORT/ping" "$CHDB_PID" "$1.log" "chdb_server.py"
}

# stop_services [KIND]: stops what start_kafka / start_clickhouse started (only KIND's
# when given), newest first; their data stays in DIR. chDB is a process: stop_pid.
stop_services() {
  local i kind dir keep=()
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    kind=${SERVICES[i]%% *} dir=${SERVICES[i]#* }
    if [ -n "${1:-}" ] && [ "$kind" != "$1" ]; then keep=("${SERVICES[i]}" "${keep[@]}"); continue; fi
    scripts/"$kind".sh stop "$dir" >/dev/null 2>&1 || true
  done
  SERVICES=("${keep[@]}")
}

# bench_build TOOL...: builds BUILD_DIR (Release) when BUILD is 1, then checks that each
# TOOL (prela-collector, loadgen, ...) is in it; exits 1 naming one that is not.
bench_build() {
  if [ "$BUILD" = 1 ]; then
    echo "== building ($BUILD_DIR, Release)"
    scripts/setup.sh "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  local t
  for t in "$@"; do
    [ -x "$BUILD_DIR/$t" ] || { echo "$NAME: $BUILD_DIR/$t missing (build first)" >&2; exit 1; }
  done
}
