# scripts/lib/bench.sh - what the benchmark scripts (bench-pipeline.sh,
# bench-spool.sh) share: free ports, reading loadgen's result line, a process's
# CPU seconds and RSS, starting a collector and waiting for its health route,
# stopping one. Sourced, not run. The sourcing script sets BIN (the collector),
# TMP (its temp dir) and NAME (its name in messages), and an array PIDS
# (everything it started, killed by its cleanup).

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
field() { grep '^result ' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
cpu_s() { # utime+stime of pid $1 in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' \
    "/proc/$1/stat"
}
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# start_collector CONFIG LOG URL: runs the collector in the background (its /metrics on
# a free port unless PRELA_METRICS_ENDPOINT says otherwise), sets PID, waits until URL
# answers 2xx (30 s).
start_collector() {
  PRELA_METRICS_ENDPOINT=${PRELA_METRICS_ENDPOINT:-127.0.0.1:0} "$BIN" --config "$1" >>"$2" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$3" 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || { echo "$NAME: $1 exited:" >&2; cat "$2" >&2; exit 1; }
    sleep 0.1
  done
  echo "$NAME: $1 not healthy after 30 s" >&2; cat "$2" >&2; exit 1
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
