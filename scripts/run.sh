#!/usr/bin/env bash
# Sets up, builds and runs the collector standalone (embedded store in ./prela-data).
#   scripts/run.sh [prela-collector arguments...]
# Ports: 8001 Prela JSON, 4318 OTLP/HTTP, 8002 query API. Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
exec build/prela-collector "$@"
