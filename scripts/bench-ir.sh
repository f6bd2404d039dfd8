#!/usr/bin/env bash
# Instructions per span of ingest, this tree against an earlier commit: each
# collector (Release) runs under valgrind's callgrind with bench-peers.sh's
# "nothing" config (scripts/lib/bench.sh none_config: the gateway's receivers
# and API keys, normalize, the debug exporter), gets --requests OTLP/HTTP
# requests of the reference workload (one body, loadgen --dump, 100 spans each)
# one after another, and stops; the same run with no request is subtracted, so
# the figure is the per-span cost of decode + normalize + the pipeline, startup
# left out. Instruction counts are repeatable whatever else the machine runs
# (unlike CPU-seconds on a shared machine). Prints, per side, the instructions
# per span in all and in normalize (pc_normalize_span_priced, or
# pc_normalize_span in commits before pricing), and the ratio; never passes or
# fails on them.
#   scripts/bench-ir.sh [--rev REV] [--requests 100] [--build-dir build-bench]
#                       [--no-build] [--keep]
# --rev (default e1b0b1a, the last commit before issue 13's normalize work) is
# built into a detached worktree under the temp dir (Release).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

REV=e1b0b1a REQUESTS=100 BUILD_DIR=build-bench BUILD=1 KEEP=0 DURATION=10s WARMUP=0
CONNECTIONS=1
. scripts/lib/bench.sh # bench_shared_flag, free_port, bench_build
NAME=bench-ir
while [ $# -gt 0 ]; do
  bench_shared_flag "$@" && { shift "$BENCH_SHIFT"; continue; }
  if [ $# -lt 2 ] && [ "$1" != -h ] && [ "$1" != --help ]; then
    echo "bench-ir: $1 needs a value or is unknown (see --help)" >&2; exit 2
  fi
  case "$1" in
    --rev) REV=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) echo "bench-ir: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || {
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -qq valgrind >/dev/null
}
bench_build prela-collector loadgen
TMP=$(mktemp -d "${TMPDIR:-/tmp}/prela-bench-ir.XXXXXX")
cleanup() {
  git -C "$ROOT" worktree remove --force "$TMP/rev" >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then echo "bench-ir: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

echo "== building $REV (Release) in $TMP/rev"
git worktree add --detach "$TMP/rev" "$REV" >/dev/null 2>&1
cmake -S "$TMP/rev" -B "$TMP/rev/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$TMP/rev/build" --target prela-collector >/dev/null

"$BUILD_DIR/loadgen" --format otlp --spans-per-request 100 --dump "$TMP/body.pb" >/dev/null
P_PRELA=$(free_port) P_GRPC=$(free_port) P_HTTP=$(free_port)
bench_keys "$TMP/keys.yaml" # sets KEY
none_config >"$TMP/config.yaml"

# run BIN TAG K: callgrind's output file of BIN receiving K requests
run() {
  local out=$TMP/cg.$2.$3 vp i
  PRELA_METRICS_ENDPOINT=127.0.0.1:$(free_port) valgrind --tool=callgrind \
    --callgrind-out-file="$out" "$1" --config "$TMP/config.yaml" >"$out.log" 2>&1 &
  vp=$!
  for i in $(seq 600); do
    curl -s -o /dev/null "http://127.0.0.1:$P_HTTP/" && break
    kill -0 "$vp" 2>/dev/null || { cat "$out.log" >&2; exit 1; }
    sleep 0.2
  done
  for ((i = 0; i < $3; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$P_HTTP/v1/traces" \
      -H 'Content-Type: application/x-protobuf' -H "X-API-Key: $KEY" --data-binary @"$TMP/body.pb")
    [ "$code" = 200 ] || { echo "bench-ir: request answered $code" >&2; exit 1; }
  done
  kill -TERM "$vp"
  wait "$vp" || true
  echo "$out"
}
# total FILE / normalize FILE: instructions in all, and inclusive in normalize
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'; }
normalize() {
  callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
    awk '/:pc_normalize_span_priced |:pc_normalize_span / { gsub(",", "", $1); print $1; exit }'
}

SPANS=$((REQUESTS * 100))
declare -A IR NORM
for side in rev tree; do
  bin=$BUILD_DIR/prela-collector
  [ "$side" = rev ] && bin=$TMP/rev/build/prela-collector
  echo "== $side: idle run, then $REQUESTS requests ($SPANS spans) under callgrind"
  idle=$(run "$bin" "$side" 0)
  busy=$(run "$bin" "$side" "$REQUESTS")
  IR[$side]=$(( ($(total "$busy") - $(total "$idle")) / SPANS ))
  NORM[$side]=$(( $(normalize "$busy") / SPANS ))
done
echo
echo "| instructions per span | $REV | this tree | ratio |"
echo "|---|---:|---:|---:|"
awk -v a="${IR[rev]}" -v b="${IR[tree]}" 'BEGIN { printf "| ingest (decode, normalize, pipeline) | %d | %d | %.3f |\n", a, b, b / a }'
awk -v a="${NORM[rev]}" -v b="${NORM[tree]}" 'BEGIN { printf "| of which normalize | %d | %d | %.3f |\n", a, b, b / a }'
