#!/usr/bin/env bash
# The query-scale benchmark of issue 15: loads N spans of LLM-agent traces through the
# real OTLP/HTTP receiver into a store, measures the load and the bytes on disk per span
# (per table, index and column, for a projection to 1 billion spans), then times the
# query API's mix with 1 and 8 clients; prints the figures, never passes or fails on
# them (bench/README.md, "Query scale").
#   scripts/bench-query-scale.sh [--spans 200000] [--store all|sqlite|clickhouse|chdb|LIST]
#                                [--clients "1 8"] [--duration 10s] [--timeout 10s]
#                                [--connections 8] [--seed 1] [--build-dir build-bench]
#                                [--no-build] [--keep] [--mixed] [--compression auto]
#                                [--traces-per-request 10] [--order random|arrival]
#                                [--sustain SPANS]
# Stores: sqlite (the embedded store), clickhouse (Debian's ClickHouse 18.16, the legacy
# dialect), chdb (chDB 26, the modern dialect, behind tests/integration/chdb_server.py,
# which runs statements in parallel on a pool of chDB sessions);
# all (the default; `both` is its old name) or a comma list such as sqlite,chdb.
# Steps: build (Release, build-bench/); then for each store, in a temp dir on free
# loopback ports: start what it needs (scripts/lib/bench.sh: start_clickhouse,
# start_chdb), a collector whose pipeline is otlp → normalize → that store and whose
# query receiver reads it (sqlite: the local exporter of configs/standalone.yaml;
# clickhouse, chdb: the clickhouse exporter, as tests/integration/clickhouse_helpers.py
# configures it); qs_load sends the N spans (--connections at once) and prints spans/s;
# the store's bytes on disk and its span count give bytes per span; the projection
# prints, per table (and index, and biggest column), what it holds and its bytes per
# span, to multiply by 1e9 (ClickHouse: system.parts and system.columns; SQLite: the
# dbstat table, or page_count × page_size per file); qs_query runs each endpoint for
# --duration per client count (--timeout per request); everything is stopped. The
# stores' p99 end side by side as in the issue. --mixed adds a phase: qs_load (a new
# seed, so new traces; 4 connections) ingests while qs_query runs the mix again with
# the largest client count; it prints the ingest rate and request p50/p99 under
# queries and, for SQLite, the write-ahead log's size at the start, its peak and at
# the end. The documented target is --spans 10000000 (about 17 GB of SQLite, 3.7 GB of
# ClickHouse; half an hour or more per store).
# --traces-per-request sets qs_load's request size (10 spans a trace; 10 traces is 100
# spans, 50 is 500, about an OpenTelemetry SDK's default batch of 512): with the
# connections it bounds how many spans one ClickHouse insert can group (each client
# waits for its answer), and on 18.16 the server's cost per span falls with bigger inserts
# (fewer parts to write and merge; README, ClickHouse).
# --sustain N adds a phase after the load (before the queries): N more spans (a new seed,
# the same connections and order) into the store that now holds the load, with nothing
# else running: the ingest rate with --spans stored (issue 15 asks it of 10 million), the
# collector's (and server's) CPU per span and the bytes the disk took per span (the
# device's written sectors over the phase, /proc/diskstats: logs and checkpoints too).
# In arrival order its traces start after every stored one (the 30 days after the load's,
# as live traffic keeps coming; --mixed's then start after those); in random order, over
# the load's 30 days (more backfill). The queries then run with --spans + N stored.
# --order sets how the traces' start times follow the load (bench/qs_workload.h):
# random over the 30 days (the default, as the issue's table was measured: a backfill,
# where each trace lands on a random page of every time-ordered index) or arrival
# (rising with the load, as live traffic comes: those indexes append).
# After a ClickHouse load the script waits for the server's merges to settle and prints
# its work per table from system.part_log (scripts/clickhouse.sh turns it on): parts
# written and their rows, merges and the rows they rewrote (rows merged per row inserted
# is the write amplification), and their milliseconds; the server CPU-s of the summary
# line include those merges.
# --compression sets the clickhouse exporter's INSERT body compression (auto, gzip, zstd,
# none; auto is none here, the server being on loopback; gzip is what auto sends to a
# remote 18.16, which refuses zstd bodies).
# --spool-first gives the clickhouse exporter a spool with spool.after 0 (spooler.h):
# requests are answered once their batch is on disk, and the drainer sends what piled up
# as one insert. The load's rate is then the answers'; the script waits for the spool to
# drain (prela_spool_records 0) and prints the rate until then ("stored"), and the
# CPU-seconds run to that point.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SPANS=200000 STORES=all CLIENTS="1 8" DURATION=10s TIMEOUT=10s CONNECTIONS=8 SEED=1 PER_REQUEST=10 ORDER=random
WARMUP=0 BUILD_DIR=build-bench BUILD=1 KEEP=0 MIXED=0 COMPRESSION=auto SPOOL_FIRST=0 SUSTAIN=0
. scripts/lib/bench.sh # bench_shared_flag, free_port, start_collector, start_clickhouse, ...
while [ $# -gt 0 ]; do
  bench_shared_flag "$@" && { shift "$BENCH_SHIFT"; continue; }
  if [ $# -lt 2 ] && [ "$1" != -h ] && [ "$1" != --help ] && [ "$1" != --mixed ] && [ "$1" != --spool-first ]; then
    echo "bench-query-scale: $1 needs a value or is unknown (see --help)" >&2; exit 2
  fi
  case "$1" in
    --spans) SPANS=$2; shift 2 ;;
    --store) STORES=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --compression) COMPRESSION=$2; shift 2 ;;
    --traces-per-request) PER_REQUEST=$2; shift 2 ;;
    --order) ORDER=$2; shift 2 ;;
    --sustain) SUSTAIN=$2; shift 2 ;;
    --mixed) MIXED=1; shift ;;
    --spool-first) SPOOL_FIRST=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) echo "bench-query-scale: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$STORES" in all|both) STORES=sqlite,clickhouse,chdb ;; esac
IFS=, read -r -a STORE_LIST <<<"$STORES"
for s in "${STORE_LIST[@]}"; do
  case "$s" in sqlite|clickhouse|chdb) ;;
    *) echo "bench-query-scale: --store takes all, sqlite, clickhouse, chdb or a comma list" >&2
       exit 2 ;;
  esac
done

NAME=bench-query-scale
bench_build prela-collector qs_load qs_query
BIN=$ROOT/$BUILD_DIR/prela-collector QS_LOAD=$ROOT/$BUILD_DIR/qs_load
QS_QUERY=$ROOT/$BUILD_DIR/qs_query

TMP=$(mktemp -d "${TMPDIR:-/tmp}/prela-bench-qs.XXXXXX")
PIDS=() SERVICES=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  stop_services
  if [ "$KEEP" = 1 ]; then echo "bench-query-scale: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
TSV=$TMP/queries.tsv
: >"$TSV"

# collector_config STORE DIR: the config of a collector on DIR's free ports; clickhouse
# and chdb write through the clickhouse exporter to CH_PORT.
collector_config() {
  local exporter kind=clickhouse
  if [ "$1" = sqlite ]; then
    kind=local
    exporter="  local:
    directory: $2/data
    retention: 90d"
  else
    exporter="  clickhouse:
    host: 127.0.0.1
    port: $CH_PORT
    user: default
    database: prela_qs
    compression: $COMPRESSION
    rollup_settle: $CH_SETTLE"
    [ "$SPOOL_FIRST" = 0 ] || exporter+="
    spool.directory: $2/spool
    spool.after: 0s"
  fi
  cat <<EOF
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$P_HTTP
  query:
    endpoint: 127.0.0.1:$P_QUERY
    store: $kind
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
      exporters: [$kind]
EOF
}

ch() { curl -fsS --data-binary "$1" "http://127.0.0.1:$CH_PORT/"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
# sqlite_files DIR: the SQLite database files in DIR (by their header; not WAL or shm)
sqlite_files() {
  local f
  for f in "$1"/*; do
    [ -f "$f" ] && [ "$(head -c 15 "$f" 2>/dev/null | tr -d '\0')" = "SQLite format 3" ] && echo "$f"
  done
  return 0
}
hwm_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; } # peak RSS
wal_bytes() { # the write-ahead logs in DIR $1, summed
  find "$1" -maxdepth 1 -name '*-wal' -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}

# --- the projection: per table what grows with the data, per span, times 1e9 ---------

# projection_clickhouse SPANS: system.parts per table of prela_qs (active parts) and the
# biggest columns of system.columns; columns the server lacks print as n/a.
# merges_settled: waits (at most 10 minutes) until the ClickHouse server has run no merge
# for 2 s, then prints how long that took and its work per table over the load.
# spool_drained METRICS_PORT LOAD_TXT: waits until the exporter's spool is empty and
# prints the rate from the load's start until then.
spool_drained() {
  local t0 secs n
  t0=$(date +%s.%N)
  for _ in $(seq 36000); do
    n=$(curl -fsS "http://127.0.0.1:$1/metrics" | awk '/^prela_spool_records/ { s += $NF } END { print s + 0 }')
    [ "$n" = 0 ] && break
    sleep 0.1
  done
  secs=$(field "$2" seconds)
  awk -v t0="$t0" -v t1="$(date +%s.%N)" -v s="$secs" -v n="$SPANS" 'BEGIN {
    printf "spool drained %.1f s after the load: stored %.0f spans/s from the load'"'"'s start\n", t1 - t0, n / (s + t1 - t0) }'
}

merges_settled() {
  local t0 quiet=0
  t0=$(date +%s.%N)
  for _ in $(seq 3000); do
    if [ "$(ch "SELECT count() FROM system.merges")" = 0 ]; then
      quiet=$((quiet + 1)); [ "$quiet" -ge 10 ] && break
    else quiet=0; fi
    sleep 0.2
  done
  ch "SYSTEM FLUSH LOGS" >/dev/null 2>&1 || true
  awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "-- server work per table (merges settled %.1f s after the load; system.part_log)\n", t1 - t0 }'
  echo "| table | parts written | rows written | ms writing | merges | rows merged | rows merged per row written | ms merging |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  ch "SELECT table, countIf(event_type = 'NEW_PART'), sumIf(rows, event_type = 'NEW_PART'), sumIf(duration_ms, event_type = 'NEW_PART'),
             countIf(event_type = 'MERGE_PARTS'), sumIf(rows, event_type = 'MERGE_PARTS'), sumIf(duration_ms, event_type = 'MERGE_PARTS')
      FROM system.part_log WHERE database = 'prela_qs' AND table != 'schema_version'
      GROUP BY table ORDER BY sumIf(duration_ms, event_type = 'MERGE_PARTS') + sumIf(duration_ms, event_type = 'NEW_PART') DESC
      FORMAT TSV" 2>/dev/null |
    awk -F'\t' '{ printf "| %s | %d | %d | %d | %d | %d | %.1f | %d |\n", $1, $2, $3, $4, $5, $6, ($3 > 0 ? $6 / $3 : 0), $7 }'
}

projection_clickhouse() {
  local n=$1 have opt=() c
  have=$(ch "SELECT name FROM system.columns WHERE database = 'system' AND table = 'parts' FORMAT TSV")
  for c in marks_bytes primary_key_bytes_in_memory secondary_indices_compressed_bytes; do
    if grep -qx "$c" <<<"$have"; then opt+=("toString(sum($c))"); else opt+=("'n/a'"); fi
  done
  echo "-- projection ($n spans stored; per span = bytes / spans, so a row times 1e9 is its size at 1e9 spans)"
  ch "SELECT table, sum(rows), count(), uniqExact(partition), sum(bytes_on_disk),
             sum(data_compressed_bytes), sum(data_uncompressed_bytes), ${opt[0]}, ${opt[1]}, ${opt[2]}
      FROM system.parts WHERE database = 'prela_qs' AND active GROUP BY table ORDER BY table
      FORMAT TSV" |
    awk -F'\t' -v n="$n" '
      function per(v) { return v == "n/a" ? "n/a" : sprintf("%.4g", v / n) }
      function at(v, unit) { return v == "n/a" ? "n/a" : sprintf("%.1f %s", v / n * 1e9 / (unit == "GB" ? 1e9 : 1e6), unit) }
      BEGIN { print "| table | rows | parts | partitions | on disk B/span | compressed B/span | uncompressed B/span | marks B/span | primary key in memory B/span | skip indexes B/span | at 1e9 spans: on disk, primary key in memory |"
              print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|" }
      { printf "| %s | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s, %s |\n", $1, $2, $3, $4,
               per($5), per($6), per($7), per($8), per($9), per($10), at($5, "GB"), at($9, "MB") }'
  echo "-- biggest columns (system.columns, compressed; of at least 0.1 B/span)"
  ch "SELECT table, name, type, data_compressed_bytes, data_uncompressed_bytes FROM system.columns
      WHERE database = 'prela_qs' AND data_compressed_bytes * 10 >= $n
      ORDER BY table, data_compressed_bytes DESC LIMIT 8 BY table FORMAT TSV" |
    awk -F'\t' -v n="$n" '
      BEGIN { print "| table.column | type | compressed B/span | ratio | at 1e9 spans |"; print "|---|---|---:|---:|---:|" }
      { printf "| %s.%s | %s | %.1f | %.1fx | %.1f GB |\n", $1, $2, $3, $4 / n,
               ($4 > 0 ? $5 / $4 : 0), $4 / n }'
  # Modern servers keep small parts in the compact format (one file for all columns),
  # whose columns system.columns does not size: say how much of each table it covers.
  echo "   the columns' sizes cover $(ch "SELECT c.table, c.b, p.b FROM
      (SELECT table, sum(data_compressed_bytes) AS b FROM system.columns WHERE database = 'prela_qs' GROUP BY table) AS c
      ANY INNER JOIN (SELECT table, sum(data_compressed_bytes) AS b FROM system.parts
                      WHERE database = 'prela_qs' AND active GROUP BY table) AS p USING table
      WHERE p.b * 100 >= $n ORDER BY c.table FORMAT TSV" |
      awk -F'\t' '{ printf "%s%s %.0f %%", (NR > 1 ? ", " : ""), $1, ($3 > 0 ? 100 * $2 / $3 : 0) }')" \
       "of the tables' compressed bytes (less than 100 %: compact parts, sized only as a whole)"
  echo "   grows with spans: rows, bytes, marks and the primary key (one entry per granule of" \
       "8,192 rows, held in memory); about constant: parts per partition (merges bound them)" \
       "and partitions (one a month: they follow the time range, here 30 days, not the count)"
}

# projection_sqlite DIR SPANS: per table and index of every database file in DIR (summed
# over the files), from dbstat when this sqlite3 has it (pages x page size: dbstat's own
# byte sum wraps past 2 GiB in SQLite 3.40), else page_count × page_size per
# file; then the free pages and the WAL.
projection_sqlite() {
  local dir=$1 n=$2 f files=()
  mapfile -t files < <(sqlite_files "$dir")
  echo "-- projection ($n spans stored in ${#files[@]} file(s); per span = bytes / spans, so" \
       "a row times 1e9 is its size at 1e9 spans)"
  if sqlite3 "${files[0]}" "SELECT 1 FROM dbstat LIMIT 1" >/dev/null 2>&1; then # has dbstat
    echo "| table or index | kind | on table | pages | MB | B/span | at 1e9 spans |"
    echo "|---|---|---|---:|---:|---:|---:|"
    for f in "${files[@]}"; do
      sqlite3 -separator $'\t' "$f" \
        "SELECT s.name, coalesce(m.type, 'internal'), coalesce(m.tbl_name, '-'), s.pageno,
                s.pageno * (SELECT page_size FROM pragma_page_size)
         FROM dbstat AS s LEFT JOIN sqlite_master AS m ON m.name = s.name WHERE s.aggregate = 1"
    done | awk -F'\t' -v n="$n" '
      { k = $1; kind[k] = $2; of[k] = $3; pages[k] += $4; bytes[k] += $5 }
      END { for (k in bytes) printf "%d\t| %s | %s | %s | %d | %.1f | %.1f | %.1f GB |\n", bytes[k], k,
                                    kind[k], of[k], pages[k], bytes[k] / 1e6, bytes[k] / n, bytes[k] / n }' |
      sort -t$'\t' -k1,1nr | cut -f2-
  else
    echo "   (this sqlite3 has no dbstat table: whole files only)"
  fi
  for f in "${files[@]}"; do
    sqlite3 -separator $'\t' "$f" \
      "SELECT page_count, freelist_count, page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size" |
      awk -F'\t' -v f="${f##*/}" -v n="$n" '{ printf "   %s: %d pages of %d bytes = %.1f MB, %.1f B/span (%d free pages)\n",
                                           f, $1, $3, $1 * $3 / 1e6, $1 * $3 / n, $2 }'
  done
  echo "   WAL: $(mb "$(wal_bytes "$dir")") (bounded by checkpoints, not by the data)"
}

# rollups_built DB PID: waits (at most 15 minutes) until the writer has built the stats
# rollups of every hour the load wrote (local_schema.c: stats_hours), which it does once an
# hour is quiet for rollup_quiet (10 s) and nothing is queued; prints how long that took
# after the load and the collector CPU it cost, so the query phase reads built hours.
rollups_built() {
  local db=$1 pid=$2 t0 c0 left hours
  t0=$(date +%s.%N) c0=$(cpu_s "$pid")
  hours=$(sqlite3 "$db" "SELECT count(*) FROM stats_hours")
  for _ in $(seq 4500); do
    left=$(sqlite3 -cmd ".timeout 5000" "$db" "SELECT count(*) FROM stats_hours WHERE built = 0")
    [ "$left" = 0 ] && break
    sleep 0.2
  done
  awk -v t0="$t0" -v t1="$(date +%s.%N)" -v c0="$c0" -v c1="$(cpu_s "$pid")" -v h="$hours" -v l="$left" \
    'BEGIN { printf "-- stats rollups: %d of %d hours built %.1f s after the load (rollup_quiet 10 s), collector %.1f CPU-s meanwhile (%.0f ms per hour)\n",
             h - l, h, t1 - t0, c1 - c0, (h > l ? (c1 - c0) * 1000 / (h - l) : 0) }'
}

# ch_rollups_built PID: waits (at most 30 minutes) until every hour the load marked has a
# settled build (clickhouse_stats.h: a completed build that began rollup_settle after the
# hour's last mark), built by the collector's builder on the server; prints how long that
# took after the load and what the collector and the server spent meanwhile.
CH_SETTLE=30s
ch_rollups_built() {
  local pid=$1 spid=$2 t0 c0 s0 left hours
  t0=$(date +%s.%N) c0=$(cpu_s "$pid") s0=$(cpu_s "$spid")
  hours=$(ch "SELECT uniqExact(hour) FROM prela_qs.stats_marks")
  for _ in $(seq 1800); do
    left=$(ch "SELECT count() FROM (SELECT hour, max(written_at) AS w FROM prela_qs.stats_marks
      GROUP BY hour) AS m ANY LEFT JOIN (SELECT hour, max(version) AS v FROM prela_qs.stats_rollup
      WHERE kind = 255 GROUP BY hour) AS r USING hour
      WHERE intDiv(v, 1048576) < toUInt64(w) + ${CH_SETTLE%s}")
    [ "$left" = 0 ] && break
    sleep 1
  done
  awk -v t0="$t0" -v t1="$(date +%s.%N)" -v c0="$c0" -v c1="$(cpu_s "$pid")" -v s0="$s0" \
    -v s1="$(cpu_s "$spid")" -v h="$hours" -v l="$left" -v settle="$CH_SETTLE" \
    'BEGIN { printf "-- stats rollups: %d of %d hours built %.1f s after the load (rollup_settle %s), collector %.1f CPU-s, server %.1f CPU-s meanwhile\n",
             h - l, h, t1 - t0, settle, c1 - c0, s1 - s0 }'
}

# --- sustained: more spans into the loaded store --------------------------------------

# disk_sectors DIR: sectors written so far to the disk that holds DIR (/proc/diskstats)
disk_sectors() {
  local dev
  dev=$(basename "$(df --output=source "$1" | tail -1)")
  awk -v d="$dev" '$3 == d { print $10 }' /proc/diskstats
}

# live_base DIR K: qs_load's --base-ns for a phase after the load: in arrival order the
# load's newest start plus K times its days (so the phase's traces start after every
# stored one: live traffic goes on); in random order 0 (now, as the load's: more backfill)
live_base() {
  if [ "$ORDER" = arrival ]; then
    awk -v k="$2" '$1 == "base_ns" { b = $2 } $1 == "days" { d = $2 }
                   END { printf "%.0f", b + k * d * 86400e9 }' "$1/info.txt"
  else
    echo 0
  fi
}

# sustain STORE DIR PID SERVER_PID: qs_load sends SUSTAIN spans (seed SEED + 2) into the
# loaded store; prints the rate, CPU per span and disk bytes per span, kept for the summary.
sustain() {
  local store=$1 dir=$2 cpid=$3 spid=$4 c0 c1 s0=0 s1=0 d0 d1 m=$2/sustain-load.txt line
  echo "-- sustained: $SUSTAIN more spans (seed $((SEED + 2))) with $SPANS stored"
  local base
  base=$(live_base "$dir" 1)
  c0=$(cpu_s "$cpid"); [ -n "$spid" ] && s0=$(cpu_s "$spid"); d0=$(disk_sectors "$dir")
  "$QS_LOAD" --target "127.0.0.1:$P_HTTP" --spans "$SUSTAIN" --seed $((SEED + 2)) --base-ns "$base" \
    --connections "$CONNECTIONS" --traces-per-request "$PER_REQUEST" --order "$ORDER" >"$m"
  c1=$(cpu_s "$cpid"); [ -n "$spid" ] && s1=$(cpu_s "$spid"); d1=$(disk_sectors "$dir")
  line=$(awk -v r="$(field "$m" spans_per_s)" -v n="$(field "$m" spans)" \
    -v p50="$(field "$m" p50_ms)" -v p99="$(field "$m" p99_ms)" -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
    -v sc="$(awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }')" -v srv="${spid:+1}" \
    -v d="$((d1 - d0))" -v stored="$SPANS" -v f="$(field "$m" failed)" \
    'BEGIN { printf "ingest with %d stored: %s spans/s (%d spans), request p50 %s ms, p99 %s ms, %s failed; collector %.1f us per span",
             stored, r, n, p50, p99, f, (n > 0 ? c * 1e6 / n : 0)
             if (srv) printf ", server %.1f us per span", (n > 0 ? sc * 1e6 / n : 0)
             printf "; disk written %.0f bytes per span", (n > 0 ? d * 512 / n : 0) }')
  echo "$line"
  SUSTAIN_SUMMARY[$store]=$line
}

# --- mixed: ingest beside the query mix ----------------------------------------------

# mixed STORE DIR: qs_load (another seed, 4 connections) beside the query mix at the
# largest client count; prints both and keeps the ingest line for the summary. For
# SQLite the WAL is sampled every 0.2 s: its size at the start, its peak and at the end.
mixed() {
  local store=$1 dir=$2 k=${CLIENTS##* } win lpid spid line
  win=$(awk -v d="$DURATION" 'BEGIN { v = d + 0; if (d ~ /ms$/) v /= 1000; else if (d ~ /m$/) v *= 60
                                      printf "%.0f", v * 9 + 2 }')
  echo "-- mixed: qs_load (seed $((SEED + 1))) for ${win}s beside qs_query with $k clients"
  # after the sustained phase's traces, when it ran (live_base)
  "$QS_LOAD" --target "127.0.0.1:$P_HTTP" --spans $((SPANS * 100)) --seed $((SEED + 1)) \
    --connections 4 --duration "${win}s" --order "$ORDER" \
    --base-ns "$(live_base "$dir" $((SUSTAIN > 0 ? 2 : 1)))" >"$dir/mixed-load.txt" &
  lpid=$!
  PIDS+=("$lpid")
  if [ "$store" = sqlite ]; then
    (while kill -0 "$lpid" 2>/dev/null; do wal_bytes "$dir/data"; sleep 0.2; done) >"$dir/wal.txt" &
    spid=$!
    PIDS+=("$spid")
  fi
  "$QS_QUERY" --target "127.0.0.1:$P_QUERY" --info "$dir/info.txt" --clients "$k" \
    --duration "$DURATION" --timeout "$TIMEOUT" --label "$store+ingest" --tsv "$TSV" \
    2>>"$dir/query.err" | sed -n '/^|/p'
  wait "$lpid" || true
  local m=$dir/mixed-load.txt
  line="ingest beside $k query clients: $(field "$m" spans_per_s) spans/s ($(field "$m" spans) spans"
  line+=" in $(field "$m" seconds) s), request p50 $(field "$m" p50_ms) ms, p99 $(field "$m" p99_ms) ms"
  line+=", $(field "$m" retries) retried, $(field "$m" failed) failed"
  if [ "$store" = sqlite ]; then
    wait "$spid" || true
    wal_bytes "$dir/data" >>"$dir/wal.txt"
    line+="; WAL $(awk 'NR == 1 { a = $1 } { if ($1 > p) p = $1; e = $1 }
                       END { printf "%.1f MB at the start, peak %.1f MB, %.1f MB at the end (%d samples)", a / 1e6, p / 1e6, e / 1e6, NR }' "$dir/wal.txt")"
  fi
  echo "$line"
  MIXED_SUMMARY[$store]=$line
}

# --- one store ------------------------------------------------------------------------

declare -A SUMMARY MIXED_SUMMARY SUSTAIN_SUMMARY TITLE
run_store() {
  local store=$1 dir=$TMP/$1
  mkdir -p "$dir"
  P_HTTP=$(free_port) P_QUERY=$(free_port)
  case "$store" in
    sqlite) TITLE[$store]="SQLite $(sqlite3 --version | cut -d' ' -f1)" ;;
    clickhouse)
      echo "== starting ClickHouse 18.16 in $TMP/clickhouse"
      start_clickhouse "$TMP/clickhouse"
      CH_PORT=$CLICKHOUSE_HTTP_PORT
      TITLE[$store]="ClickHouse $(ch 'SELECT version()') (legacy dialect)" ;;
    chdb)
      echo "== starting chDB behind tests/integration/chdb_server.py in $TMP/chdb"
      start_chdb "$TMP/chdb"
      CH_PORT=$CHDB_PORT
      TITLE[$store]="chDB $(ch 'SELECT version()') (modern dialect, behind chdb_server.py)"
      echo "note: chDB runs in chdb_server.py's Python process, statements in parallel on a" \
           "pool of sessions; its HTTP layer's cost a request is in chdb's latency" ;;
  esac
  echo "${TITLE[$store]}"
  collector_config "$store" "$dir" >"$dir/config.yaml"
  echo "== $store: collector (otlp http :$P_HTTP, query :$P_QUERY) in $dir"
  P_METRICS=$(free_port)
  PRELA_METRICS_ENDPOINT=127.0.0.1:$P_METRICS \
    start_collector "$dir/config.yaml" "$dir/collector.log" "http://127.0.0.1:$P_QUERY/api/v1/health"
  local cpid=$PID cpu0 cpu1 spid= scpu0=0 scpu1=0
  case "$store" in clickhouse) spid=$CH_PID ;; chdb) spid=$CHDB_PID ;; esac
  cpu0=$(cpu_s "$cpid")
  [ -n "$spid" ] && scpu0=$(cpu_s "$spid")
  "$QS_LOAD" --target "127.0.0.1:$P_HTTP" --spans "$SPANS" --seed "$SEED" \
    --connections "$CONNECTIONS" --traces-per-request "$PER_REQUEST" --order "$ORDER" \
    --info "$dir/info.txt" |
    tee "$dir/load.txt"
  [ "$SPOOL_FIRST" = 0 ] || [ "$store" = sqlite ] || spool_drained "$P_METRICS" "$dir/load.txt"
  cpu1=$(cpu_s "$cpid")
  [ "$store" = clickhouse ] && merges_settled
  [ -n "$spid" ] && scpu1=$(cpu_s "$spid")
  local inserts=
  # the server's INSERT statements over the load (each table's rows of an insert are one
  # statement; the schema's own are a few): spans per insert says how well they group
  [ "$store" = clickhouse ] &&
    inserts=$(ch "SELECT value FROM system.events WHERE event = 'InsertQuery'")
  local stored bytes detail f
  if [ "$store" = sqlite ]; then
    stored=$(sqlite3 "$dir/data/prela.db" "SELECT count(*) FROM spans")
    # the database files; the write-ahead log apart
    bytes=0
    while read -r f; do bytes=$((bytes + $(stat -c %s "$f"))); done < <(sqlite_files "$dir/data")
    detail=$(cd "$dir/data" && ls -l | awk 'NR > 1 { printf "%s %.1f MB; ", $NF, $5 / 1e6 }')
  else
    stored=$(ch "SELECT count() FROM prela_qs.spans")
    bytes=$(ch "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'prela_qs' AND active")
    detail=$(ch "SELECT table, count(), sum(bytes_on_disk) FROM system.parts WHERE database = 'prela_qs' AND active GROUP BY table FORMAT TSV" |
      awk '{ printf "%s: %d parts %.1f MB; ", $1, $2, $3 / 1e6 }')
  fi
  local line
  # CPU-seconds of the collector and (ClickHouse, chDB) the server over the load: on a
  # shared machine spans per CPU-second compare where rates do not; load averages beside
  line=$(awk -v b="$bytes" -v n="$stored" -v c="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')" \
    -v sc="$(awk -v a="$scpu0" -v b="$scpu1" 'BEGIN { print b - a }')" -v srv="${spid:+1}" \
    -v hwm="$(hwm_mb "$cpid")" -v la="$(cut -d' ' -f1-3 /proc/loadavg)" \
    -v r="$(field "$dir/load.txt" spans_per_s)" -v w="$(field "$dir/load.txt" wire_bytes_per_span)" \
    'BEGIN { printf "%d spans stored, %.1f MB on disk, %.0f bytes per span (wire %s); load %s spans/s, collector %.1f CPU-s (%.0f spans per collector CPU-s), peak RSS %s MB",
             n, b / 1e6, (n > 0 ? b / n : 0), w, r, c, (c > 0 ? n / c : 0), hwm
             if (srv) printf "; server %.1f CPU-s, together %.1f CPU-s per 1M spans (%.0f spans per CPU-s)",
                             sc, (n > 0 ? (c + sc) * 1e6 / n : 0), (c + sc > 0 ? n / (c + sc) : 0)
             printf "; load average %s", la }')
  # the memory budget's peak (budget.h): what requests and pending inserts held at once
  line+=$(curl -fsS "http://127.0.0.1:$P_METRICS/metrics" 2>/dev/null |
    awk '/^prela_memory_budget_peak_bytes/ { printf "; memory budget peak %.1f MB", $NF / 1e6 }')
  [ -n "$inserts" ] && line+=$(awk -v i="$inserts" -v n="$stored" 'BEGIN {
    printf "; %d INSERT statements (%.0f spans per statement)", i, (i > 0 ? n / i : 0) }')
  echo "$line"
  echo "   ($detail)"
  SUMMARY[$store]="$line; collector RSS $(rss_mb "$cpid") MB after the load"
  if [ "$stored" -gt 0 ]; then
    if [ "$store" = sqlite ]; then projection_sqlite "$dir/data" "$stored"; else projection_clickhouse "$stored"; fi
  fi
  # (its rollups are built with the load's, before the queries)
  [ "$SUSTAIN" -gt 0 ] && sustain "$store" "$dir" "$cpid" "$spid"
  if [ "$store" = sqlite ]; then rollups_built "$dir/data/prela.db" "$cpid"; else ch_rollups_built "$cpid" "$spid"; fi
  "$QS_QUERY" --target "127.0.0.1:$P_QUERY" --info "$dir/info.txt" --clients "$CLIENTS" \
    --duration "$DURATION" --timeout "$TIMEOUT" --label "$store" --tsv "$TSV" 2>"$dir/query.err" |
    tee "$dir/query.txt"
  [ -s "$dir/query.err" ] && { echo "-- query errors (first 5):"; head -5 "$dir/query.err"; }
  if [ "$store" != sqlite ]; then
    echo "after the queries: $(ch "SELECT count() FROM system.processes WHERE query NOT LIKE '%system.processes%'") queries still running on the server"
    echo "after the queries: $(ch "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'prela_qs' AND active" |
         awk -v n="$stored" '{ printf "%.0f bytes per span on disk (merges settled further)", $1 / n }')"
  fi
  [ "$MIXED" = 1 ] && mixed "$store" "$dir"
  stop_pid "$cpid"
  case "$store" in
    clickhouse) stop_services clickhouse ;;
    chdb) stop_pid "$CHDB_PID" ;;
  esac
  [ "$KEEP" = 1 ] || rm -rf "$dir/data" "$TMP/clickhouse/data" "$TMP/chdb/db"
}

for s in "${STORE_LIST[@]}"; do run_store "$s"; done

echo
echo "== query scale: $SPANS spans (seed $SEED), $(nproc) cores, $DURATION per endpoint and" \
     "client count, timeout $TIMEOUT"
for s in "${STORE_LIST[@]}"; do
  echo "$s: ${TITLE[$s]}: ${SUMMARY[$s]}"
  [ "$SUSTAIN" -gt 0 ] && echo "$s: ${SUSTAIN_SUMMARY[$s]}"
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
case " ${STORE_LIST[*]} " in
  *" chdb "*) echo "(chdb: in-process ClickHouse behind chdb_server.py, a Python HTTP server: its cost a request is in chdb's latency)" ;;
esac
