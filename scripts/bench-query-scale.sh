#!/usr/bin/env bash
# The query-scale benchmark of issue 15: loads N spans of LLM-agent traces through the
# real OTLP/HTTP receiver into a store, measures the load and the bytes on disk per span,
# then times the query API's mix with 1 and 8 clients; prints the figures, never passes
# or fails on them (bench/README.md, "Query scale").
#   scripts/bench-query-scale.sh [--spans 200000] [--store sqlite|clickhouse|both]
#                                [--clients "1 8"] [--duration 10s] [--timeout 10s]
#                                [--connections 8] [--seed 1] [--build-dir build-bench]
#                                [--no-build] [--keep] [--mixed]
# Steps: build (Release, build-bench/); then for each store, in a temp dir on free
# loopback ports: start what it needs (ClickHouse 18.16: scripts/clickhouse.sh), a
# collector whose pipeline is otlp → normalize → that store and whose query receiver
# reads it (sqlite: the local exporter of configs/standalone.yaml; clickhouse: the
# clickhouse exporter, as tests/integration/test_clickhouse.py configures it); qs_load
# sends the N spans (--connections at once) and prints spans/s; the store's bytes on
# disk and its span count give bytes per span; qs_query runs each endpoint for
# --duration per client count (--timeout per request); everything is stopped. Both
# stores' p99 end side by side as in the issue. --mixed adds a phase: qs_load (a new
# seed, so new traces; 4 connections) ingests while qs_query runs the mix again with the
# largest client count; it prints the ingest rate and latency under queries (and, for
# SQLite, the write-ahead log's growth). The documented target is
# --spans 10000000 (about 17 GB of SQLite, 3.7 GB of ClickHouse; half an hour or more).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SPANS=200000 STORES=both CLIENTS="1 8" DURATION=10s TIMEOUT=10s CONNECTIONS=8 SEED=1
WARMUP=0 BUILD_DIR=build-bench BUILD=1 KEEP=0 MIXED=0
. scripts/lib/bench.sh # bench_shared_flag, free_port, start_collector, stop_pid
while [ $# -gt 0 ]; do
  bench_shared_flag "$@" && { shift "$BENCH_SHIFT"; continue; }
  if [ $# -lt 2 ] && [ "$1" != -h ] && [ "$1" != --help ] && [ "$1" != --mixed ]; then
    echo "bench-query-scale: $1 needs a value or is unknown (see --help)" >&2; exit 2
  fi
  case "$1" in
    --spans) SPANS=$2; shift 2 ;;
    --store) STORES=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --mixed) MIXED=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) echo "bench-query-scale: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$STORES" in
  sqlite|clickhouse) STORE_LIST=("$STORES") ;;
  both) STORE_LIST=(sqlite clickhouse) ;;
  *) echo "bench-query-scale: --store takes sqlite, clickhouse or both" >&2; exit 2 ;;
esac

if [ "$BUILD" = 1 ]; then
  echo "== building ($BUILD_DIR, Release)"
  scripts/setup.sh "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
BIN=$ROOT/$BUILD_DIR/prela-collector QS_LOAD=$ROOT/$BUILD_DIR/qs_load
QS_QUERY=$ROOT/$BUILD_DIR/qs_query
for f in "$BIN" "$QS_LOAD" "$QS_QUERY"; do
  [ -x "$f" ] || { echo "bench-query-scale: $f missing (build first)" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/prela-bench-qs.XXXXXX")
PIDS=()
NAME=bench-query-scale
CH_STARTED=0
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  [ "$CH_STARTED" = 1 ] && scripts/clickhouse.sh stop "$TMP/clickhouse" >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then echo "bench-query-scale: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
TSV=$TMP/queries.tsv
: >"$TSV"

# collector_config STORE DIR: the config of a collector on DIR's free ports.
collector_config() {
  local exporter
  if [ "$1" = sqlite ]; then
    exporter="  local:
    directory: $2/data
    retention: 90d"
  else
    exporter="  clickhouse:
    host: 127.0.0.1
    port: $CLICKHOUSE_HTTP_PORT
    user: default
    database: prela_qs"
  fi
  cat <<EOF
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$P_HTTP
  query:
    endpoint: 127.0.0.1:$P_QUERY
    store: $([ "$1" = sqlite ] && echo local || echo clickhouse)
processors:
  normalize:
exporters:
$exporter
service:
  telemetry:
    logs:
      level: warn
  pipelines:
    traces:
      receivers: [otlp]
      processors: [normalize]
      exporters: [$([ "$1" = sqlite ] && echo local || echo clickhouse)]
EOF
}

ch() { curl -fsS --data-binary "$1" "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/"; }

# mixed STORE DIR: ingest (qs_load, another seed, 4 connections) beside the query mix at
# the largest client count; prints both and keeps the ingest line for the summary.
mixed() {
  local store=$1 dir=$2 k=${CLIENTS##* } win lpid wal0="" wal1=""
  win=$(awk -v d="$DURATION" 'BEGIN { v = d + 0; if (d ~ /ms$/) v /= 1000; else if (d ~ /m$/) v *= 60
                                      printf "%.0f", v * 9 + 2 }')
  [ "$store" = sqlite ] && wal0=$(stat -c %s "$dir/data/prela.db-wal" 2>/dev/null || echo 0)
  echo "-- mixed: qs_load (seed $((SEED + 1))) for ${win}s beside qs_query with $k clients"
  "$QS_LOAD" --target "127.0.0.1:$P_HTTP" --spans $((SPANS * 100)) --seed $((SEED + 1)) \
    --connections 4 --duration "${win}s" >"$dir/mixed-load.txt" &
  lpid=$!
  PIDS+=("$lpid")
  "$QS_QUERY" --target "127.0.0.1:$P_QUERY" --info "$dir/info.txt" --clients "$k" \
    --duration "$DURATION" --timeout "$TIMEOUT" --label "$store+ingest" --tsv "$TSV" \
    2>>"$dir/query.err" | sed -n '/^|/p'
  wait "$lpid" || true
  [ "$store" = sqlite ] && wal1=$(stat -c %s "$dir/data/prela.db-wal" 2>/dev/null || echo 0)
  local line
  line="ingest beside $k query clients: $(sed -n 's/^loaded //p' "$dir/mixed-load.txt")"
  [ -n "$wal1" ] && line+="; WAL $(awk -v a="$wal0" -v b="$wal1" 'BEGIN { printf "%.1f -> %.1f MB", a / 1e6, b / 1e6 }')"
  echo "$line"
  MIXED_SUMMARY[$store]=$line
}

declare -A SUMMARY MIXED_SUMMARY
run_store() {
  local store=$1 dir=$TMP/$1
  mkdir -p "$dir"
  P_HTTP=$(free_port) P_QUERY=$(free_port)
  if [ "$store" = clickhouse ]; then
    export CLICKHOUSE_HTTP_PORT=$(free_port) CLICKHOUSE_TCP_PORT=$(free_port)
    echo "== starting ClickHouse (:$CLICKHOUSE_HTTP_PORT) in $TMP/clickhouse"
    CH_STARTED=1
    scripts/clickhouse.sh start "$TMP/clickhouse" >"$TMP/ch.log" 2>&1 || { cat "$TMP/ch.log"; exit 1; }
    echo "ClickHouse $(ch 'SELECT version()')"
  fi
  collector_config "$store" "$dir" >"$dir/config.yaml"
  echo "== $store: collector (otlp http :$P_HTTP, query :$P_QUERY) in $dir"
  start_collector "$dir/config.yaml" "$dir/collector.log" "http://127.0.0.1:$P_QUERY/api/v1/health"
  local cpid=$PID cpu0 cpu1
  cpu0=$(cpu_s "$cpid")
  "$QS_LOAD" --target "127.0.0.1:$P_HTTP" --spans "$SPANS" --seed "$SEED" \
    --connections "$CONNECTIONS" --info "$dir/info.txt" | tee "$dir/load.txt"
  cpu1=$(cpu_s "$cpid")
  local stored bytes detail
  if [ "$store" = sqlite ]; then
    stored=$(sqlite3 "$dir/data/prela.db" "SELECT count(*) FROM spans")
    # the database file; the write-ahead log and anything else in the data dir apart
    bytes=$(stat -c %s "$dir/data/prela.db")
    detail=$(cd "$dir/data" && ls -l | awk 'NR > 1 { printf "%s %.1f MB; ", $NF, $5 / 1e6 }')
  else
    stored=$(ch "SELECT count() FROM prela_qs.spans")
    bytes=$(ch "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'prela_qs' AND active")
    detail=$(ch "SELECT table, count(), sum(bytes_on_disk) FROM system.parts WHERE database = 'prela_qs' AND active GROUP BY table FORMAT TSV" |
      awk '{ printf "%s: %d parts %.1f MB; ", $1, $2, $3 / 1e6 }')
  fi
  local line
  line=$(awk -v b="$bytes" -v n="$stored" -v c="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')" \
    -v r="$(field "$dir/load.txt" spans_per_s)" -v w="$(field "$dir/load.txt" wire_bytes_per_span)" \
    'BEGIN { printf "%d spans stored, %.1f MB on disk, %.0f bytes per span (wire %s); load %s spans/s, collector %.1f CPU-s (%.0f spans per collector CPU-s)",
             n, b / 1e6, (n > 0 ? b / n : 0), w, r, c, (c > 0 ? n / c : 0) }')
  echo "$line"
  echo "   ($detail)"
  SUMMARY[$store]="$line; collector RSS $(rss_mb "$cpid") MB after the load"
  "$QS_QUERY" --target "127.0.0.1:$P_QUERY" --info "$dir/info.txt" --clients "$CLIENTS" \
    --duration "$DURATION" --timeout "$TIMEOUT" --label "$store" --tsv "$TSV" 2>"$dir/query.err" |
    tee "$dir/query.txt"
  [ -s "$dir/query.err" ] && { echo "-- query errors (first 5):"; head -5 "$dir/query.err"; }
  if [ "$store" = clickhouse ]; then
    echo "after the queries: $(ch "SELECT count() FROM system.processes WHERE query NOT LIKE '%system.processes%'") queries still running on the server;" \
      "$(ch "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'prela_qs' AND active" |
         awk -v n="$stored" '{ printf "%.0f bytes per span on disk (merges settled further)", $1 / n }')"
  fi
  [ "$MIXED" = 1 ] && mixed "$store" "$dir"
  stop_pid "$cpid"
  if [ "$store" = clickhouse ]; then
    scripts/clickhouse.sh stop "$TMP/clickhouse" >/dev/null 2>&1 || true
    CH_STARTED=0
  fi
  [ "$KEEP" = 1 ] || rm -rf "$dir/data"
}

for s in "${STORE_LIST[@]}"; do run_store "$s"; done

echo
echo "== query scale: $SPANS spans (seed $SEED), $(nproc) cores, $DURATION per endpoint and" \
     "client count, timeout $TIMEOUT"
for s in "${STORE_LIST[@]}"; do
  echo "$s: ${SUMMARY[$s]}"
  [ "$MIXED" = 1 ] && echo "$s: ${MIXED_SUMMARY[$s]}"
done
echo
# p99 per store and client count, side by side: "p99 (failed)" or "all failed"
awk -F'\t' -v stores="${STORE_LIST[*]}" -v clients="$CLIENTS" '
  { key = $1 SUBSEP $2 SUBSEP $3
    v = ($4 > 0) ? sprintf("%.1f", $6) : "all failed"
    if ($4 > 0 && $8 + $9 > 0) v = v " (" $8 + $9 " failed)"
    cell[key] = v
    if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
  END {
    ns = split(stores, S, " "); nc = split(clients, C, " ")
    printf "| endpoint |"
    for (i = 1; i <= ns; i++) {
      printf " %s p99 ms, ", S[i]
      for (j = 1; j <= nc; j++) printf "%s%s", (j > 1 ? " / " : ""), C[j]
      printf " clients |"
    }
    printf "\n|---|"; for (i = 1; i <= ns; i++) printf "---|"; printf "\n"
    for (e = 1; e <= n; e++) {
      printf "| %s |", order[e]
      for (i = 1; i <= ns; i++) {
        printf " "
        for (j = 1; j <= nc; j++) printf "%s%s", (j > 1 ? " / " : ""), cell[S[i] SUBSEP order[e] SUBSEP C[j]]
        printf " |"
      }
      printf "\n"
    } }' "$TSV"
