#!/usr/bin/env bash
# Installs, starts and stops a single-node Apache Kafka broker (KRaft, combined
# broker + controller, node.id=1) on loopback, for the tests and for local use.
#   scripts/kafka.sh install                 # jars and kcat only
#   scripts/kafka.sh start  [DIR]            # install if needed, format DIR once, start, wait
#   scripts/kafka.sh stop   [DIR]            # SIGTERM, SIGKILL after $KAFKA_STOP_TIMEOUT s; keeps data
#   scripts/kafka.sh status [DIR]            # running / paused / stopped; exit 0 only if running
#   scripts/kafka.sh pause|resume [DIR]      # SIGSTOP / SIGCONT the broker (a hung broker)
#   scripts/kafka.sh restart [DIR]           # stop + start, same data
#   scripts/kafka.sh wipe   [DIR]            # stop and delete DIR (next start formats afresh)
# DIR defaults to $KAFKA_DIR or .tools/run/kafka; it holds server.properties, data/,
# logs/server.log (broker log), kafka.out (JVM stdout/stderr) and kafka.pid.
# Ports (127.0.0.1): PLAINTEXT $KAFKA_PORT (9092); SASL_PLAINTEXT $KAFKA_SASL_PORT (9093)
# with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN for user $KAFKA_SASL_USER / password
# $KAFKA_SASL_PASSWORD (prela / prela; the SCRAM credentials are written when DIR is
# formatted, so changing them later needs `wipe`); KRaft controller $KAFKA_CONTROLLER_PORT (9094).
#   kcat -b 127.0.0.1:9093 -X security.protocol=SASL_PLAINTEXT \
#        -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=prela -X sasl.password=prela -L
# SASL_SSL $KAFKA_SSL_PORT (no default: off) with the same users, when it and the PEM
# files $KAFKA_SSL_CERT (server certificate chain) and $KAFKA_SSL_KEY (unencrypted
# PKCS#8 key, "BEGIN PRIVATE KEY") are set; $KAFKA_SSL_CA (the CA that signed it) lets
# `start` verify it. No client certificates. Clients add to the line above, e.g.:
#   -X security.protocol=SASL_SSL -X ssl.ca.location=CA.pem (and port $KAFKA_SSL_PORT)
# Topics are auto-created with $KAFKA_NUM_PARTITIONS (3) partitions, replication 1.
# Taking Kafka away under load and bringing it back with the same data: `stop` then
# `start` (start never reformats a formatted DIR; producers see connection refused
# meanwhile); `pause`/`resume` instead freeze the JVM, so connections stay open and
# requests time out. Heap: $KAFKA_HEAP_OPTS (-Xms256m -Xmx512m).
# Install: the jars of Kafka 3.9.2 (scripts/kafka/pom.xml) from Maven Central into
# .tools/kafka/libs via .tools/kafka/m2 (a project-local Maven repository), and kcat from
# apt. Idempotent: a stamp records the pom the jars came from; nothing is fetched when it
# matches. `rm -rf .tools/kafka` forces a fresh install.
#
# Cluster mode, KAFKA_NODES=N (N >= 3 for a quorum that survives one node): N brokers,
# each also a KRaft controller voter (node.id 1..N), PLAINTEXT only (no SASL/SSL), in
# DIR/node<i> with their own pidfiles; topics auto-created with $KAFKA_NUM_PARTITIONS (6)
# partitions, replication factor N (at most 3) and min.insync.replicas=2. Ports: the
# comma lists $KAFKA_PORTS (PLAINTEXT, 19092,19093,...) and $KAFKA_CONTROLLER_PORTS
# (19192,...). Heap per broker: $KAFKA_HEAP_OPTS (-Xms128m -Xmx384m).
#   KAFKA_NODES=3 scripts/kafka.sh start DIR     # every broker; waits until all N are up
#   KAFKA_NODES=3 scripts/kafka.sh stop|status|wipe DIR    # all of them
#   KAFKA_NODES=3 scripts/kafka.sh kill DIR      # SIGKILL every broker (data kept)
#   KAFKA_NODES=3 scripts/kafka.sh start-node|stop-node|kill-node|pause-node|resume-node I DIR
# start-node waits until broker I is back in the cluster's metadata; kill-node is a
# SIGKILL (a crash: the controller fences it after broker.session.timeout.ms, 4 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
POM=$ROOT/scripts/kafka/pom.xml
TOOLS=$ROOT/.tools/kafka
LIBS=$TOOLS/libs

KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_SASL_PORT=${KAFKA_SASL_PORT:-9093}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9094}
KAFKA_SSL_PORT=${KAFKA_SSL_PORT:-}
KAFKA_SSL_CERT=${KAFKA_SSL_CERT:-}
KAFKA_SSL_KEY=${KAFKA_SSL_KEY:-}
KAFKA_SSL_CA=${KAFKA_SSL_CA:-}
KAFKA_SASL_USER=${KAFKA_SASL_USER:-prela}
KAFKA_SASL_PASSWORD=${KAFKA_SASL_PASSWORD:-prela}
KAFKA_NODES=${KAFKA_NODES:-1}
[[ $KAFKA_NODES =~ ^[1-9]$ ]] || { echo "kafka: KAFKA_NODES must be 1..9, not '$KAFKA_NODES'" >&2; exit 2; }
if [ "$KAFKA_NODES" -eq 1 ]; then
  KAFKA_NUM_PARTITIONS=${KAFKA_NUM_PARTITIONS:-3}
  KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
else
  KAFKA_NUM_PARTITIONS=${KAFKA_NUM_PARTITIONS:-6}
  KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms128m -Xmx384m}
fi
# This broker's identity: node 1 alone, or set per node by node_env in cluster mode.
NODE_ID=1
VOTERS=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
REPLICATION=1
MIN_ISR=1
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}

CMD=${1:-}
if [ "$KAFKA_NODES" -gt 1 ] && [[ $CMD == *-node ]]; then NODE_ARG=${2:-}; shift; fi
DIR=${2:-${KAFKA_DIR:-$ROOT/.tools/run/kafka}}
DIR=$(realpath -m "$DIR")
PIDFILE=$DIR/kafka.pid
SVC=kafka
STOP_TIMEOUT=$KAFKA_STOP_TIMEOUT
HELP_LINES=45
# shellcheck source=lib/daemon.sh
. "$ROOT/scripts/lib/daemon.sh"

# --- install ------------------------------------------------------------------------
install() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v kcat >/dev/null || missing+=(kcat)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

  local want; want=$(sha256sum "$POM" | cut -d' ' -f1)
  [ "$(cat "$LIBS/.installed" 2>/dev/null)" = "$want" ] && return 0
  mkdir -p "$TOOLS"
  exec 8>"$TOOLS/.install.lock"   # two test runs installing at once: the second waits
  flock 8
  if [ "$(cat "$LIBS/.installed" 2>/dev/null)" != "$want" ]; then
    echo "kafka: fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
    rm -rf "$LIBS"
    if ! mvn -B -q -Dstyle.color=never -f "$POM" -Dmaven.repo.local="$TOOLS/m2" \
         -Dkafka.libs="$LIBS" dependency:copy-dependencies >"$TOOLS/mvn.log" 2>&1; then
      tail -30 "$TOOLS/mvn.log" >&2
      die "mvn dependency:copy-dependencies failed (log: $TOOLS/mvn.log)"
    fi
    [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka_2.13-$KAFKA_VERSION.jar not in $LIBS"
    echo "$want" >"$LIBS/.installed"
  fi
  exec 8>&-
}

# --- process helpers ----------------------------------------------------------------
pid_of() {  # prints the broker's pid if the pidfile names a live broker of this DIR
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
    grep -qF "kafka.Kafka $DIR/server.properties" && echo "$pid"
}
java_cmd() {  # java_cmd LOG4J_CONFIG: sets JAVA to the JVM command line up to the main class
  local heap; read -r -a heap <<<"$KAFKA_HEAP_OPTS"
  JAVA=(java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
        -Djava.awt.headless=true "-Dlog4j.configuration=file:$1" "-Dkafka.logs.dir=$DIR/logs"
        -cp "$LIBS/*")
}
sasl() {  # kcat options for the SASL listener with mechanism $1 (protocol $2, SASL_PLAINTEXT)
  echo -X "security.protocol=${2:-SASL_PLAINTEXT}" -X "sasl.mechanisms=$1" \
    -X "sasl.username=$KAFKA_SASL_USER" -X "sasl.password=$KAFKA_SASL_PASSWORD"
}
ssl_check() {  # kcat options to verify the SASL_SSL listener: against $KAFKA_SSL_CA if set
  if [ -n "$KAFKA_SSL_CA" ]; then echo -X "ssl.ca.location=$KAFKA_SSL_CA"
  else echo -X enable.ssl.certificate.verification=false; fi
}
log_tail() {
  echo "--- $DIR/logs/server.log (tail)" >&2; tail -25 "$DIR/logs/server.log" 2>/dev/null >&2 || true
  echo "--- $DIR/kafka.out (tail)" >&2; tail -10 "$DIR/kafka.out" 2>/dev/null >&2 || true
}

# --- configuration ------------------------------------------------------------------
pem_property() {  # a PEM file as one properties value: its newlines as \n escapes
  awk 'NF { printf "%s\\n", $0 }' "$1"
}
ssl_config() {  # the SASL_SSL listener's SASL logins and key store (inline PEM), when on
  [ -n "$KAFKA_SSL_PORT" ] || return 0
  cat <<EOF

# SASL_SSL: the same SASL logins over TLS; key store as inline PEM (Kafka 2.7+), from
# $KAFKA_SSL_CERT and $KAFKA_SSL_KEY. No client certificates.
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_ssl.ssl.client.auth=none
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.certificate.chain=$(pem_property "$KAFKA_SSL_CERT")
listener.name.sasl_ssl.ssl.keystore.key=$(pem_property "$KAFKA_SSL_KEY")
EOF
}

write_config() {
  mkdir -p "$DIR/data" "$DIR/logs"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
  local protocols="PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
  if [ "$KAFKA_NODES" -gt 1 ]; then
    listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT"
    protocols="PLAINTEXT:PLAINTEXT"
  fi
  if [ -n "$KAFKA_SSL_PORT" ]; then
    listeners+=",SASL_SSL://127.0.0.1:$KAFKA_SSL_PORT"
    protocols+=",SASL_SSL:SASL_SSL"
  fi
  cat >"$DIR/server.properties" <<EOF
# Written by scripts/kafka.sh on every start; edits are lost.
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$VOTERS
listeners=$listeners,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=$listeners
listener.security.protocol.map=$protocols,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT

# SASL on the SASL_PLAINTEXT listener: SCRAM users live in the metadata log (added by
# kafka-storage format --add-scram), PLAIN users in the JAAS line below.
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";

log.dirs=$DIR/data
auto.create.topics.enable=true
num.partitions=$KAFKA_NUM_PARTITIONS
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_ISR
offsets.topic.replication.factor=$REPLICATION
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_ISR
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0

# Large LLM spans (long prompts) are stored whole: the kafka exporter's max_message_bytes
# (16 MiB by default) must fit every topic's max.message.bytes (this default), and the
# receiver's max_message_bytes must be at least as large. A segment holds the largest batch.
message.max.bytes=16778240
replica.fetch.max.bytes=16778240

# Small and short-lived: a test broker on a 2-core machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.segment.bytes=33554432
log.retention.ms=3600000
log.retention.bytes=134217728
log.retention.check.interval.ms=60000
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
EOF
  ssl_config >>"$DIR/server.properties"
  cluster_config >>"$DIR/server.properties"
  cat >"$DIR/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=INFO
log4j.logger.kafka.log.LogCleaner=WARN
EOF
  cat >"$DIR/tools-log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

new_cluster_id() {  # a KRaft cluster id: 16 random bytes, base64url without padding, not starting with '-'
  local id
  until id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='); [ "${id:0:1}" != - ]; do :; done
  echo "$id"
}

format_once() {  # formats DIR/data with $CLUSTER_ID (cluster mode) or a new id, once
  [ -f "$DIR/data/meta.properties" ] && return 0
  local id=${CLUSTER_ID:-$(new_cluster_id)}
  echo "kafka: formatting $DIR/data (cluster id $id, SCRAM user $KAFKA_SASL_USER)"
  java_cmd "$DIR/tools-log4j.properties"
  "${JAVA[@]}" kafka.tools.StorageTool format \
    -t "$id" -c "$DIR/server.properties" \
    --add-scram "SCRAM-SHA-256=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" \
    >"$DIR/format.log" 2>&1 || { cat "$DIR/format.log" >&2; die "formatting $DIR/data failed"; }
}

ready() {  # every listener answers metadata requests, SASL ones with a SCRAM login
  [ "$KAFKA_NODES" -eq 1 ] || { node_ready; return; }
  kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 2 2>/dev/null | grep -q '1 brokers:' &&
  # shellcheck disable=SC2046
  kcat -b "127.0.0.1:$KAFKA_SASL_PORT" $(sasl SCRAM-SHA-256) -L -m 2 2>/dev/null | grep -q '1 brokers:' &&
  # shellcheck disable=SC2046
  { [ -z "$KAFKA_SSL_PORT" ] ||
    kcat -b "127.0.0.1:$KAFKA_SSL_PORT" $(sasl SCRAM-SHA-256 SASL_SSL) $(ssl_check) -L -m 2 2>/dev/null |
      grep -q '1 brokers:'; }
}

# --- commands -----------------------------------------------------------------------
start() {
  install
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"   # concurrent `start`s of one DIR: the second finds it running
  flock 9
  launch
  [ -n "$RUNNING" ] || wait_ready
}

# Starts the broker of DIR without waiting for it; sets RUNNING=1 instead when it was
# already running (resumed if paused); dies on errors. Sets T0 (when the start began).
launch() {
  local pid
  T0=$SECONDS RUNNING=
  if pid=$(pid_of); then
    if is_paused "$pid"; then kill -CONT "$pid"; echo "$SVC: resumed paused broker (pid $pid)"; fi
    echo "$SVC: already running (pid $pid, 127.0.0.1:$KAFKA_PORT)"
    RUNNING=1
    return 0
  fi
  local ports=("$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT")
  [ "$KAFKA_NODES" -gt 1 ] || ports+=("$KAFKA_SASL_PORT" $KAFKA_SSL_PORT)
  for p in "${ports[@]}"; do
    port_busy "$p" && die "port $p on 127.0.0.1 is in use (another broker? scripts/kafka.sh status DIR)"
  done
  if [ -n "$KAFKA_SSL_PORT" ]; then
    [ -n "$KAFKA_SSL_CERT" ] && [ -n "$KAFKA_SSL_KEY" ] ||
      die "KAFKA_SSL_PORT needs KAFKA_SSL_CERT and KAFKA_SSL_KEY (PEM files)"
    for p in $KAFKA_SSL_CERT $KAFKA_SSL_KEY $KAFKA_SSL_CA; do [ -r "$p" ] || die "cannot read $p"; done
    grep -q -- '-----BEGIN PRIVATE KEY-----' "$KAFKA_SSL_KEY" ||
      die "$KAFKA_SSL_KEY: Kafka needs an unencrypted PKCS#8 key (openssl pkcs8 -topk8 -nocrypt)"
  fi
  write_config
  format_once
  echo "$SVC: starting Kafka $KAFKA_VERSION in $DIR ($(describe))"
  # setsid: the broker outlives this script and its process group (setsid may fork, so
  # the shell it runs writes its own pid, then becomes the JVM); 9>&-: no inherited lock.
  java_cmd "$DIR/log4j.properties"
  rm -f "$PIDFILE"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" "${JAVA[@]}" kafka.Kafka \
    "$DIR/server.properties" </dev/null >"$DIR/kafka.out" 2>&1 9>&- &
  for _ in $(seq 50); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
  [ -s "$PIDFILE" ] || die "broker did not start (see $DIR/kafka.out)"
}

wait_ready() {  # waits until the broker launched in DIR answers (ready); dies if it exits or times out
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || die "broker did not start (see $DIR/kafka.out)"
  until ready; do
    kill -0 "$pid" 2>/dev/null || { log_tail; rm -f "$PIDFILE"; die "broker exited during start-up"; }
    if [ $((SECONDS - T0)) -ge "$KAFKA_START_TIMEOUT" ]; then
      log_tail
      die "broker (pid $pid) not answering on 127.0.0.1:$KAFKA_PORT after ${KAFKA_START_TIMEOUT}s; still running, stop it with: scripts/kafka.sh stop $DIR"
    fi
    sleep 0.5
  done
  echo "$SVC: ready in $((SECONDS - T0))s (pid $pid; log $DIR/logs/server.log)"
}

describe() {
  if [ "$KAFKA_NODES" -gt 1 ]; then echo "node $NODE_ID, 127.0.0.1:$KAFKA_PORT"; return; fi
  echo "127.0.0.1:$KAFKA_PORT, SASL :$KAFKA_SASL_PORT${KAFKA_SSL_PORT:+, SASL_SSL :$KAFKA_SSL_PORT}"
}
installed() { echo "Kafka $KAFKA_VERSION jars in $LIBS; $(kcat -V | head -1)"; }

# --- cluster mode (KAFKA_NODES > 1) -----------------------------------------------------
# Node i lives in CDIR/node<i> with the single-node layout; the functions above act on
# one node after node_env i has pointed DIR, PIDFILE, ports and identity at it.
CDIR=$DIR
IFS=, read -r -a PORTS <<<"${KAFKA_PORTS:-$(seq -s, 19092 $((19091 + KAFKA_NODES)))}"
IFS=, read -r -a CPORTS <<<"${KAFKA_CONTROLLER_PORTS:-$(seq -s, 19192 $((19191 + KAFKA_NODES)))}"

cluster_config() {  # the settings only a cluster needs (nothing for a single node)
  [ "$KAFKA_NODES" -gt 1 ] || return 0
  cat <<'EOF'

# Cluster mode: a crashed broker is fenced (and leaves every ISR) after 4 s without a
# heartbeat, so acks=all producers stall for seconds, not for replica.lag.time.max.ms.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
replica.lag.time.max.ms=10000
unclean.leader.election.enable=false
num.replica.fetchers=1
controlled.shutdown.enable=true
EOF
}

node_env() {  # node_env I: point the single-broker functions at node I of CDIR
  local i=$1
  [[ $i =~ ^[0-9]+$ ]] && [ "$i" -ge 1 ] && [ "$i" -le "$KAFKA_NODES" ] ||
    die "node must be 1..$KAFKA_NODES, not '$i'"
  NODE_ID=$i SVC=kafka-node$i DIR=$CDIR/node$i PIDFILE=$CDIR/node$i/kafka.pid
  KAFKA_PORT=${PORTS[i - 1]} KAFKA_CONTROLLER_PORT=${CPORTS[i - 1]}
  [ -n "$KAFKA_PORT" ] && [ -n "$KAFKA_CONTROLLER_PORT" ] ||
    die "KAFKA_PORTS and KAFKA_CONTROLLER_PORTS need $KAFKA_NODES ports each"
}

node_ready() {  # this node serves metadata that lists itself: registered and unfenced
  kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 2 2>/dev/null | grep -q "broker $NODE_ID at "
}

cluster_setup() {  # every node's voters and replication
  local i v=()
  for ((i = 1; i <= KAFKA_NODES; i++)); do v+=("$i@127.0.0.1:${CPORTS[i - 1]}"); done
  VOTERS=$(IFS=,; echo "${v[*]}")
  REPLICATION=$((KAFKA_NODES < 3 ? KAFKA_NODES : 3)) MIN_ISR=$((KAFKA_NODES < 3 ? 1 : 2))
}

cluster_start() {  # cluster_start I...: launch those nodes together (a quorum needs a majority), then wait
  install
  mkdir -p "$CDIR"
  [ -s "$CDIR/cluster.id" ] || new_cluster_id >"$CDIR/cluster.id"   # every node formats with it
  CLUSTER_ID=$(cat "$CDIR/cluster.id")
  local i t0=$SECONDS
  for i in "$@"; do (node_env "$i"; mkdir -p "$DIR"; launch); done
  for i in "$@"; do (node_env "$i"; T0=$t0; wait_ready); done
  if [ $# -eq "$KAFKA_NODES" ]; then  # the whole cluster: every broker in everyone's metadata
    until kcat -b "$(cluster_bootstrap)" -L -m 2 2>/dev/null | grep -q "$KAFKA_NODES brokers:"; do
      [ $((SECONDS - t0)) -lt "$KAFKA_START_TIMEOUT" ] || die "not all $KAFKA_NODES brokers registered"
      sleep 0.5
    done
    echo "kafka: cluster of $KAFKA_NODES ready in $((SECONDS - t0))s (bootstrap $(cluster_bootstrap))"
  fi
}

cluster_bootstrap() { local p; for p in "${PORTS[@]:0:KAFKA_NODES}"; do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//'; }

cluster_each() {  # cluster_each FUNCTION: run it for every node at once, fail if any failed
  local i rc=0 pids=()
  for ((i = 1; i <= KAFKA_NODES; i++)); do (node_env "$i"; "$1") & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  return $rc
}

node_kill() {
  local pid; pid=$(pid_of) || { echo "$SVC: not running"; return 0; }
  kill -CONT "$pid" 2>/dev/null || true
  kill -KILL "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$PIDFILE"; echo "$SVC: killed (pid $pid)"
}

cluster_main() {  # cluster_main COMMAND (node commands take the node from NODE_ARG)
  cluster_setup
  case "$1" in
    install) install; echo "kafka: $(installed)" ;;
    start) cluster_start $(seq "$KAFKA_NODES") ;;
    stop) cluster_each daemon_stop ;;   # all at once: no broker waits for a lost quorum
    kill) cluster_each node_kill ;;
    restart) cluster_each daemon_stop; cluster_start $(seq "$KAFKA_NODES") ;;
    status)  # in node order; exit 3 unless every broker runs
      local i rc=0
      for ((i = 1; i <= KAFKA_NODES; i++)); do (node_env "$i"; daemon_status) || rc=3; done
      return $rc ;;
    wipe) cluster_each daemon_stop; rm -rf "$CDIR"; echo "kafka: removed $CDIR" ;;
    start-node) node_env "${NODE_ARG:-}"; cluster_start "$NODE_ID" ;;
    stop-node) node_env "${NODE_ARG:-}"; daemon_stop ;;
    kill-node) node_env "${NODE_ARG:-}"; node_kill ;;
    pause-node) node_env "${NODE_ARG:-}"; daemon_signal STOP ;;
    resume-node) node_env "${NODE_ARG:-}"; daemon_signal CONT ;;
    -h|--help|help) daemon_main help ;;
    *) echo "usage: KAFKA_NODES=$KAFKA_NODES $0 install|start|stop|kill|status|restart|wipe [DIR]" >&2
       echo "       KAFKA_NODES=$KAFKA_NODES $0 start-node|stop-node|kill-node|pause-node|resume-node I [DIR]" >&2
       exit 2 ;;
  esac
}

if [ "$KAFKA_NODES" -eq 1 ]; then daemon_main "$CMD"; else cluster_main "$CMD"; fi
