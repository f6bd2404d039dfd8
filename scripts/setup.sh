#!/usr/bin/env bash
# Installs what building prela-collector needs (Debian packages) and builds it.
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]
# Idempotent: packages already present are not reinstalled; apt-get update runs only
# when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake ninja-build pkg-config protobuf-c-compiler libprotobuf-c-dev
          libmicrohttpd-dev libjansson-dev libzstd-dev zlib1g-dev libyaml-dev libsqlite3-dev
          libnghttp2-dev librdkafka-dev libcurl4-openssl-dev libgnutls28-dev curl python3 python3-venv)
PACKAGES+=(openssl)  # the integration tests make their TLS certificates with the openssl command
PACKAGES+=(chromium chromium-driver)  # test_ui.py: the trace viewer in a real, headless browser
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ "${1:-}" = --deps-only ] && exit 0  # scripts/fuzz.sh: packages only, it builds itself
BUILD_DIR="${1:-build}"
shift || true
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$BUILD_DIR"
