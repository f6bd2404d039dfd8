#!/usr/bin/env bash
# Installs, starts and stops a ClickHouse server on loopback for the tests and for local
# use: Debian's clickhouse-server package (ClickHouse 18.16 on Debian 12), run as our own
# instance with its own config and data directory, never as the package's system service.
#   scripts/clickhouse.sh install               # the Debian packages only
#   scripts/clickhouse.sh start  [DIR]          # install if needed, start, wait for /ping
#   scripts/clickhouse.sh stop   [DIR]          # SIGTERM, SIGKILL after $CLICKHOUSE_STOP_TIMEOUT s; keeps data
#   scripts/clickhouse.sh status [DIR]          # running / paused / stopped; exit 0 only if running
#   scripts/clickhouse.sh pause|resume [DIR]    # SIGSTOP / SIGCONT the server (a hung server)
#   scripts/clickhouse.sh restart [DIR]         # stop + start, same data
#   scripts/clickhouse.sh wipe   [DIR]          # stop and delete DIR
# DIR defaults to $CLICKHOUSE_DIR or .tools/run/clickhouse; it holds config.xml and
# users.xml (rewritten on every start), data/, log/server.log, log/server.err.log,
# clickhouse.out (stdout/stderr) and clickhouse.pid.
# Ports (127.0.0.1): HTTP $CLICKHOUSE_HTTP_PORT (8123), native TCP $CLICKHOUSE_TCP_PORT (9000);
# HTTPS $CLICKHOUSE_HTTPS_PORT only when it and $CLICKHOUSE_TLS_CERT / $CLICKHOUSE_TLS_KEY
# (PEM server certificate chain and private key) are set; $CLICKHOUSE_TLS_CA (the CA
# that signed it) lets `start` verify it, e.g. curl --cacert CA https://127.0.0.1:8443/ping
# Users: `default` without password, and `prela` with password `prela`, e.g.
#   curl 'http://127.0.0.1:8123/?query=SELECT+version()'
#   curl -u prela:prela --data-binary 'SELECT 1' http://127.0.0.1:8123/
#   clickhouse-client --port 9000 --user prela --password prela
# Server time zone UTC. Stopping and starting again keeps the tables and their data.
# 18.16 is old (2018): no DateTime64, Map, JSONExtract* (visitParamExtract* exist),
# currentUser(); LowCardinality needs allow_experimental_low_cardinality_type=1; JSON
# output quotes 64-bit integers. Auth by -u user:pass, ?user=&password= or the
# X-ClickHouse-User/X-ClickHouse-Key headers; a wrong password is HTTP 401.
# Parts are compressed with zstd, not lz4 (config.xml's <compression>: 18.16 has no
# per-column codecs), which stores the spans' JSON text in less space, in blocks of 4 KB
# (users.xml's min_compress_block_size), which makes reads of scattered traces cheaper
# (README, ClickHouse). $CLICKHOUSE_ZSTD_MIN_PART_SIZE (bytes, default 0: every part)
# leaves the parts smaller than it in lz4 (bench/README, "zstd only for large parts").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

CLICKHOUSE_HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-8123}
CLICKHOUSE_TCP_PORT=${CLICKHOUSE_TCP_PORT:-9000}
CLICKHOUSE_HTTPS_PORT=${CLICKHOUSE_HTTPS_PORT:-}
CLICKHOUSE_TLS_CERT=${CLICKHOUSE_TLS_CERT:-}
CLICKHOUSE_TLS_KEY=${CLICKHOUSE_TLS_KEY:-}
CLICKHOUSE_TLS_CA=${CLICKHOUSE_TLS_CA:-}
CLICKHOUSE_START_TIMEOUT=${CLICKHOUSE_START_TIMEOUT:-60}
CLICKHOUSE_STOP_TIMEOUT=${CLICKHOUSE_STOP_TIMEOUT:-30}
CLICKHOUSE_ZSTD_MIN_PART_SIZE=${CLICKHOUSE_ZSTD_MIN_PART_SIZE:-0}
SERVER=/usr/sbin/clickhouse-server

CMD=${1:-}
DIR=${2:-${CLICKHOUSE_DIR:-$ROOT/.tools/run/clickhouse}}
DIR=$(realpath -m "$DIR")
PIDFILE=$DIR/clickhouse.pid
SVC=clickhouse
STOP_TIMEOUT=$CLICKHOUSE_STOP_TIMEOUT
HELP_LINES=32
# shellcheck source=lib/daemon.sh
. "$ROOT/scripts/lib/daemon.sh"
[[ $CLICKHOUSE_ZSTD_MIN_PART_SIZE =~ ^[0-9]{1,15}$ ]] ||
  die "CLICKHOUSE_ZSTD_MIN_PART_SIZE must be a number of bytes"
URL=http://127.0.0.1:$CLICKHOUSE_HTTP_PORT
HTTPS_URL=""
if [ -n "$CLICKHOUSE_HTTPS_PORT" ]; then
  [ -n "$CLICKHOUSE_TLS_CERT" ] && [ -n "$CLICKHOUSE_TLS_KEY" ] ||
    die "CLICKHOUSE_HTTPS_PORT needs CLICKHOUSE_TLS_CERT and CLICKHOUSE_TLS_KEY (PEM files)"
  HTTPS_URL=https://127.0.0.1:$CLICKHOUSE_HTTPS_PORT
fi

# --- install ------------------------------------------------------------------------
install() {
  local missing=() p
  for p in clickhouse-server clickhouse-client curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_install "${missing[@]}"
  # The package enables a system service on /etc/clickhouse-server (ports 8123/9000).
  # Where it could start (systemd; containers usually forbid it via policy-rc.d), turn
  # it off: the tests run their own instance and need those ports.
  if [[ " ${missing[*]} " == *" clickhouse-server "* ]] && [ -d /run/systemd/system ]; then
    $([ "$(id -u)" -ne 0 ] && echo sudo) systemctl disable --now clickhouse-server >/dev/null 2>&1 || true
  fi
}

# --- process helpers ----------------------------------------------------------------
pid_of() {  # prints the server's pid if the pidfile names a live server of this DIR
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
    grep -qF -- "--config-file=$DIR/config.xml" && echo "$pid"
}
log_tail() {
  echo "--- $DIR/log/server.err.log (tail)" >&2; tail -25 "$DIR/log/server.err.log" 2>/dev/null >&2 || true
  echo "--- $DIR/clickhouse.out (tail)" >&2; tail -10 "$DIR/clickhouse.out" 2>/dev/null >&2 || true
}

# --- configuration ------------------------------------------------------------------
https_config() {  # the HTTPS port and Poco's server TLS context, when configured
  [ -n "$HTTPS_URL" ] || return 0
  # No dhParamsFile (ECDHE needs none); verificationMode none: clients need no certificate.
  cat <<EOF

    <https_port>$CLICKHOUSE_HTTPS_PORT</https_port>
    <openSSL>
        <server>
            <certificateFile>$(realpath "$CLICKHOUSE_TLS_CERT")</certificateFile>
            <privateKeyFile>$(realpath "$CLICKHOUSE_TLS_KEY")</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
EOF
}

write_config() {
  mkdir -p "$DIR/data" "$DIR/log"
  cat >"$DIR/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by scripts/clickhouse.sh on every start; edits are lost. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$DIR/log/server.log</log>
        <errorlog>$DIR/log/server.err.log</errorlog>
        <size>20M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$CLICKHOUSE_HTTP_PORT</http_port>
    <tcp_port>$CLICKHOUSE_TCP_PORT</tcp_port>$(https_config)
    <path>$DIR/data/</path>
    <tmp_path>$DIR/data/tmp/</tmp_path>
    <user_files_path>$DIR/data/user_files/</user_files_path>
    <format_schema_path>$DIR/data/format_schemas/</format_schema_path>
    <users_config>$DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
    <!-- a row per part written, merged or removed (system.part_log): the query-scale
         benchmark prints the server's work per table from it. -->
    <part_log>
        <database>system</database>
        <table>part_log</table>
        <flush_interval_milliseconds>1000</flush_interval_milliseconds>
    </part_log>
    <!-- zstd instead of lz4 for every part written (inserts and merges): 18.16 has no
         per-column codecs, and the spans' JSON text compresses far better with it. -->
    <compression>
        <case>
            <min_part_size>$CLICKHOUSE_ZSTD_MIN_PART_SIZE</min_part_size>
            <min_part_size_ratio>0</min_part_size_ratio>
            <method>zstd</method>
        </case>
    </compression>
</yandex>
EOF
  cat >"$DIR/users.xml" <<'EOF'
<?xml version="1.0"?>
<!-- Written by scripts/clickhouse.sh on every start; edits are lost. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
            <!-- compressed blocks of 4 KB, not 64: a read decompresses the whole block
                 holding each granule it reads. 18.16 writes every part (inserts and
                 merges) with this profile's value; modern servers take the spans
                 table's own setting (README, ClickHouse). -->
            <min_compress_block_size>4096</min_compress_block_size>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <prela>
            <password>prela</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </prela>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

# --- commands -----------------------------------------------------------------------
start() {
  install
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"   # concurrent `start`s of one DIR: the second finds it running
  flock 9
  local pid t0=$SECONDS
  if pid=$(pid_of); then
    if is_paused "$pid"; then kill -CONT "$pid"; echo "clickhouse: resumed paused server (pid $pid)"; fi
    echo "clickhouse: already running (pid $pid, $URL)"
    return 0
  fi
  for p in "$CLICKHOUSE_HTTP_PORT" "$CLICKHOUSE_TCP_PORT" $CLICKHOUSE_HTTPS_PORT; do
    port_busy "$p" && die "port $p on 127.0.0.1 is in use (another server? scripts/clickhouse.sh status DIR)"
  done
  for p in $CLICKHOUSE_TLS_CERT $CLICKHOUSE_TLS_KEY $CLICKHOUSE_TLS_CA; do
    [ -r "$p" ] || die "cannot read $p"
  done
  write_config
  echo "clickhouse: starting in $DIR ($(describe))"
  # setsid: the server outlives this script and its process group (setsid may fork, so
  # the shell it runs writes its own pid, then becomes the server); 9>&-: no inherited lock.
  rm -f "$PIDFILE"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" "$SERVER" \
    "--config-file=$DIR/config.xml" </dev/null >"$DIR/clickhouse.out" 2>&1 9>&- &
  for _ in $(seq 50); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
  pid=$(cat "$PIDFILE" 2>/dev/null) || die "server did not start (see $DIR/clickhouse.out)"
  until [ "$(curl -fsS --max-time 2 "$URL/ping" 2>/dev/null)" = "Ok." ]; do
    kill -0 "$pid" 2>/dev/null || { log_tail; rm -f "$PIDFILE"; die "server exited during start-up"; }
    if [ $((SECONDS - t0)) -ge "$CLICKHOUSE_START_TIMEOUT" ]; then
      log_tail
      die "server (pid $pid) not answering $URL/ping after ${CLICKHOUSE_START_TIMEOUT}s; still running, stop it with: scripts/clickhouse.sh stop $DIR"
    fi
    sleep 0.2
  done
  if [ -n "$HTTPS_URL" ]; then  # the HTTPS port answers too (verified when the CA is known)
    local tls=(-k); [ -n "$CLICKHOUSE_TLS_CA" ] && tls=(--cacert "$CLICKHOUSE_TLS_CA")
    [ "$(curl -fsS --max-time 5 "${tls[@]}" "$HTTPS_URL/ping" 2>&1)" = "Ok." ] ||
      { log_tail; curl -sS --max-time 5 "${tls[@]}" "$HTTPS_URL/ping" >&2 || true
        die "server (pid $pid) not answering $HTTPS_URL/ping; stop it with: scripts/clickhouse.sh stop $DIR"; }
  fi
  local version; version=$(curl -fsS --data-binary 'SELECT version()' "$URL/")
  echo "clickhouse: ClickHouse $version ready in $((SECONDS - t0))s (pid $pid; log $DIR/log/server.log)"
}

describe() { echo "$URL, native :$CLICKHOUSE_TCP_PORT${HTTPS_URL:+, $HTTPS_URL}"; }
installed() { dpkg-query -W -f='${Package} ${Version}' clickhouse-server; }

daemon_main "$CMD"
