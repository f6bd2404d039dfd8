#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs one.
#   scripts/fuzz.sh TARGET [SECONDS] [extra libFuzzer flags...]
#   scripts/fuzz.sh fuzz_prela 120
# TARGET is a tests/fuzz/fuzz_*.c name (fuzz_json, fuzz_prela, fuzz_kafka,
# fuzz_config, fuzz_otlp_proto, fuzz_otlp_json). The run starts from the
# regression corpus tests/fuzz/corpus/TARGET (read only) and keeps what it
# learns in build-fuzz/corpus/TARGET; a crash is written to build-fuzz/ as
# crash-<sha1>. Copy it into tests/fuzz/corpus/TARGET/ once fixed, so ctest
# keeps checking it. Installs clang and its libFuzzer runtime when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: scripts/fuzz.sh TARGET [SECONDS] [libFuzzer flags...]}"
SECONDS_="${2:-120}"
shift $(( $# >= 2 ? 2 : 1 ))
[ -f "tests/fuzz/$TARGET.c" ] || { echo "fuzz.sh: no tests/fuzz/$TARGET.c" >&2; exit 2; }

missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
  scripts/setup.sh build-fuzz -DCMAKE_C_COMPILER=clang -DPC_FUZZ=ON
mkdir -p "build-fuzz/corpus/$TARGET"
cd build-fuzz
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
exec "./$TARGET" -max_total_time="$SECONDS_" -timeout=10 -rss_limit_mb=2048 \
  "corpus/$TARGET" "../tests/fuzz/corpus/$TARGET" "$@"
