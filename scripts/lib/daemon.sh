# scripts/lib/daemon.sh - what scripts/kafka.sh and scripts/clickhouse.sh share:
# apt installs, and the life of one server process under a pidfile (stop, status,
# pause/resume, the command dispatch). Sourced, not run.
#
# The sourcing script sets SVC (name in messages), DIR, PIDFILE, STOP_TIMEOUT and
# HELP_LINES (its header's last line), and defines:
#   pid_of       prints the pid when the pidfile names a live server of this DIR
#   install      installs what the server needs (idempotent)
#   installed    prints what is installed, for `install`
#   start        starts the server (or resumes it) and waits until it answers
#   describe     prints where a running server listens, for `status`
# then calls: daemon_main "$CMD".

die() { echo "$SVC: $*" >&2; exit 1; }

apt_install() {  # apt_install PACKAGE...
  local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "$SVC: installing $* (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$@" >/dev/null
}

is_paused() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# SIGTERM, SIGKILL after $STOP_TIMEOUT s; the data stays.
daemon_stop() {
  local pid t0=$SECONDS
  if ! pid=$(pid_of); then echo "$SVC: not running ($DIR)"; rm -f "$PIDFILE"; return 0; fi
  kill -TERM "$pid"
  kill -CONT "$pid" 2>/dev/null || true   # a paused server must run to see the SIGTERM
  while kill -0 "$pid" 2>/dev/null; do
    if [ $((SECONDS - t0)) -ge "$STOP_TIMEOUT" ]; then
      echo "$SVC: pid $pid still running ${STOP_TIMEOUT}s after SIGTERM; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDFILE"
  echo "$SVC: stopped in $((SECONDS - t0))s (data kept in $DIR/data)"
}

# Exit status 0 only when running (not paused).
daemon_status() {
  local pid
  if ! pid=$(pid_of); then echo "$SVC: stopped ($DIR)"; return 3; fi
  if is_paused "$pid"; then echo "$SVC: paused (pid $pid, $DIR)"; return 3; fi
  echo "$SVC: running (pid $pid, $(describe), $DIR)"
}

daemon_signal() {  # daemon_signal STOP|CONT
  local pid; pid=$(pid_of) || die "not running ($DIR)"
  kill -"$1" "$pid"
  echo "$SVC: $([ "$1" = STOP ] && echo paused || echo resumed) (pid $pid)"
}

daemon_main() {  # daemon_main COMMAND
  case "$1" in
    install) install; echo "$SVC: $(installed)" ;;
    start) start ;;
    stop) daemon_stop ;;
    restart) daemon_stop; start ;;
    status) daemon_status ;;
    pause) daemon_signal STOP ;;
    resume) daemon_signal CONT ;;
    wipe) daemon_stop; rm -rf "$DIR"; echo "$SVC: removed $DIR" ;;
    -h|--help|help) sed -n "2,${HELP_LINES}p" "$0" | sed 's/^# \{0,1\}//' ;;
    *) echo "usage: $0 install|start|stop|status|pause|resume|restart|wipe [DIR] (see --help)" >&2
       exit 2 ;;
  esac
}
