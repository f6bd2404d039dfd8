#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs them.
#   scripts/fuzz.sh TARGET [SECONDS] [extra libFuzzer flags...]
#   scripts/fuzz.sh fuzz_prela 3600      one target, for as long as asked
#   scripts/fuzz.sh all 15               every target in turn (scripts/test.sh)
# TARGET is a tests/fuzz/fuzz_*.c name (fuzz_json, fuzz_timefmt, fuzz_prela,
# fuzz_otlp_proto, fuzz_otlp_json, fuzz_otlp_signal, fuzz_kafka,
# fuzz_decompress, fuzz_config, fuzz_grpc, fuzz_spool). A run starts from the regression
# corpus tests/fuzz/corpus/TARGET (read only) and keeps what it learns in
# build-fuzz/corpus/TARGET; a finding is written to build-fuzz/ as
# crash-<sha1> (or leak-, timeout-, oom-) and fails the run. Copy it into
# tests/fuzz/corpus/TARGET/ once fixed, so ctest keeps checking it.
# "all" runs every target even after a finding and fails if any had one.
# Installs clang and its libFuzzer runtime when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: scripts/fuzz.sh TARGET|all [SECONDS] [libFuzzer flags...]}"
SECONDS_="${2:-120}"
shift $(( $# >= 2 ? 2 : 1 ))
if [ "$TARGET" = all ]; then
  # tests/fuzz/OPEN lists targets with a finding not fixed yet ("target: why"):
  # "all" names them and leaves them out; run them one by one to work on them.
  TARGETS=()
  for f in tests/fuzz/fuzz_*.c; do
    t=$(basename "$f" .c)
    if grep -q "^$t:" tests/fuzz/OPEN 2>/dev/null; then
      echo "fuzz.sh: SKIPPED, open finding: $(grep "^$t:" tests/fuzz/OPEN)" >&2
    else
      TARGETS+=("$t")
    fi
  done
else
  [ -f "tests/fuzz/$TARGET.c" ] || { echo "fuzz.sh: no tests/fuzz/$TARGET.c" >&2; exit 2; }
  TARGETS=("$TARGET")
fi

missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
scripts/setup.sh --deps-only  # the libraries the targets link
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DPC_FUZZ=ON >/dev/null
cmake --build build-fuzz --target fuzz -j "${CMAKE_BUILD_PARALLEL_LEVEL:-2}"

cd build-fuzz
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
failed=()
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t: ${SECONDS_} s"
  if ! "./$t" -max_total_time="$SECONDS_" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       "corpus/$t" "../tests/fuzz/corpus/$t" "$@" >"$t.log" 2>&1; then
    tail -n 60 "$t.log"
    echo "fuzz.sh: $t found something (build-fuzz/$t.log; the input is build-fuzz/crash-*)" >&2
    failed+=("$t")
  else
    grep -E "^stat::number_of_executed_units|^Done" "$t.log" | tr '\n' ' '; echo
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: findings in ${failed[*]}" >&2
  exit 1
fi
