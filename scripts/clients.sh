#!/usr/bin/env bash
# Installs the non-Python test clients that tests/integration/test_conformance.py drives
# against the real binary, each pinned, each from its own registry, all project-local:
#   - the OpenTelemetry JS SDK and its OTLP exporters (http/json, http/protobuf, gRPC):
#     `npm ci` in tests/clients/js (exact versions in the committed package-lock.json);
#   - telemetrygen, the OpenTelemetry Collector's load generator: `go install` from the Go
#     module proxy into .tools/bin.
#   scripts/clients.sh
# Idempotent and quick when already installed (a stamp beside each install records what
# was installed; nothing is fetched when it matches). Node.js (>= 18.19, Debian 12's 18.20
# is enough) comes from apt when missing; Go, when missing or older than telemetrygen's
# go.mod requires, is bootstrapped into .tools/go from the golang.org/toolchain module on
# the Go module proxy (what `go` itself does for GOTOOLCHAIN). The tests look for the
# clients at these paths and fail, never skip, when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

TELEMETRYGEN_MODULE=github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen
TELEMETRYGEN_VERSION=v0.161.0
GO_MIN=1.26.0          # the `go` line of telemetrygen's go.mod at that version
GO_BOOTSTRAP=1.26.8    # toolchain fetched when the machine's Go is missing or older
NODE_MIN=18.19.0       # engines of the pinned @opentelemetry packages

JS_DIR="$ROOT/tests/clients/js"
TOOLS="$ROOT/.tools"
GOBIN_DIR="$TOOLS/bin"

version_ge() {  # version_ge A B: A >= B (dotted numeric versions)
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

apt_install() {
  local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "clients: installing $* (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- OpenTelemetry JS SDK (npm) ---------------------------------------------------
node_version() { node -p 'process.versions.node' 2>/dev/null || echo 0; }
if ! command -v npm >/dev/null || ! version_ge "$(node_version)" "$NODE_MIN"; then
  apt_install nodejs npm
fi
version_ge "$(node_version)" "$NODE_MIN" ||
  { echo "clients: Node.js >= $NODE_MIN is required, found $(node_version)" >&2; exit 1; }

STAMP="$JS_DIR/node_modules/.prela-installed"
if ! { [ -f "$STAMP" ] && cat "$JS_DIR/package.json" "$JS_DIR/package-lock.json" | cmp -s - "$STAMP"; }; then
  echo "clients: npm ci in tests/clients/js"
  (cd "$JS_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  cat "$JS_DIR/package.json" "$JS_DIR/package-lock.json" >"$STAMP"
fi

# --- telemetrygen (Go module proxy) ----------------------------------------------
GO=go
go_version() { "$1" env GOVERSION 2>/dev/null | sed 's/^go//' || echo 0; }
if ! command -v go >/dev/null || ! version_ge "$(go_version go)" "$GO_MIN"; then
  GO="$TOOLS/go/bin/go"
  if ! [ -x "$GO" ] || ! version_ge "$(go_version "$GO")" "$GO_MIN"; then
    mod="golang.org/toolchain@v0.0.1-go$GO_BOOTSTRAP.linux-$(dpkg --print-architecture)"
    echo "clients: fetching Go $GO_BOOTSTRAP ($mod) from the Go module proxy"
    command -v curl >/dev/null || apt_install curl ca-certificates
    rm -rf "$TOOLS/go" "$TOOLS/go.zip" && mkdir -p "$TOOLS"
    curl -fsSL -o "$TOOLS/go.zip" "https://proxy.golang.org/${mod%@*}/@v/${mod#*@}.zip"
    python3 - "$TOOLS" "$mod" <<'EOF'
import os, sys, zipfile
tools, mod = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(os.path.join(tools, "go.zip")) as z:
    for info in z.infolist():
        rel = info.filename[len(mod) + 1:]          # strip "golang.org/toolchain@v.../"
        if not rel or info.is_dir():
            continue
        dst = os.path.join(tools, "go", rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with z.open(info) as src, open(dst, "wb") as out:
            out.write(src.read())
        if rel.startswith(("bin/", "pkg/tool/")):
            os.chmod(dst, 0o755)
EOF
    rm -f "$TOOLS/go.zip"
  fi
fi

TG_STAMP="$GOBIN_DIR/.telemetrygen-version"
if ! [ -x "$GOBIN_DIR/telemetrygen" ] || [ "$(cat "$TG_STAMP" 2>/dev/null)" != "$TELEMETRYGEN_VERSION" ]; then
  echo "clients: go install $TELEMETRYGEN_MODULE@$TELEMETRYGEN_VERSION"
  mkdir -p "$GOBIN_DIR"
  GOBIN="$GOBIN_DIR" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
    "$GO" install "$TELEMETRYGEN_MODULE@$TELEMETRYGEN_VERSION"
  echo "$TELEMETRYGEN_VERSION" >"$TG_STAMP"
fi

echo "clients: JS SDK    $JS_DIR/node_modules (node $(node_version))"
echo "clients: telemetrygen $TELEMETRYGEN_VERSION $GOBIN_DIR/telemetrygen"
