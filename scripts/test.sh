#!/usr/bin/env bash
# Sets up and runs every test: unit tests and integration tests (the real binary on
# loopback, driven by curl, the Prela SDK and the OpenTelemetry SDK), first in a
# normal build, then the same suite under AddressSanitizer + UBSan.
# Last, the libFuzzer targets (scripts/fuzz.sh, clang + ASan + UBSan) run PC_FUZZ_SECONDS
# (15) each; any finding fails.
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

scripts/setup.sh build
scripts/setup.sh build-asan -DPC_SANITIZE=ON

# Python clients for the integration tests, in a project-local virtualenv.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import prela" 2>/dev/null ||
   ! cmp -s tests/requirements.txt .venv/requirements.txt; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r tests/requirements.txt
  cp tests/requirements.txt .venv/requirements.txt
fi

scripts/clients.sh  # the JS SDK (npm) and telemetrygen (Go module proxy), project-local

for dir in build build-asan; do
  echo "== tests in $dir"
  cmake -S . -B "$dir" -DPC_PYTHON="$ROOT/.venv/bin/python" >/dev/null
  (cd "$dir" && ctest --output-on-failure -j2)
done
# libFuzzer targets (clang, ASan + UBSan), each for a short fixed time; any finding fails.
echo "== fuzz targets, ${PC_FUZZ_SECONDS:-15} s each"
scripts/fuzz.sh all "${PC_FUZZ_SECONDS:-15}"
echo "== all tests passed"
