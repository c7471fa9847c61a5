# shellcheck shell=bash
# bench/lib.sh: what the bench shell scripts share. Sourced, not run:
#
#   . "$(cd "$(dirname "$0")" && pwd)/../lib.sh"     # from bench/redis/
#   BENCH_LOG_PREFIX=throughput                       # for log
#   bench_init evsse-throughput                       # temp dir, pids, trap
#
# bench_args NAME HELP_LINES ARGS...: the command line every script takes,
#   [--smoke] [BUILD_DIR]: sets SMOKE (0 or 1) and BUILD (default build);
#   -h/--help prints lines HELP_LINES (a sed range such as 2,18) of the
#   script; any other option is "NAME: unknown option X" on stderr, exit 2.
# bench_defaults VAR=DEFAULT...: each VAR keeps its value from the
#   environment when set and not empty, else becomes DEFAULT.
# bench_need NAME WHAT...: every WHAT is there, else "NAME: WHAT not found"
#   on stderr and exit 2; a WHAT with a slash is a built binary (must be
#   executable: "...; build it first"), any other a command on PATH.
# bench_check_line JSON STRICT [KEY...]: one result line: it must parse and
#   have no "error"; with STRICT 1 also every KEY must be 0 or absent
#   (default: lost duplicated reordered gaps subscribers_shed
#   subscribers_failed subscribers_closed_by_server publish_errors
#   misrouted, and then lost and duplicated must be there). Otherwise the
#   line's [server/]name and what is wrong on stderr, status 1.
# log MSG...: MSG on stderr, prefixed with $BENCH_LOG_PREFIX.
# bench_init TMP_PREFIX: sets WORK (a fresh temp dir) and PIDS (every
#   process the script starts, appended by the script); on exit every pid in
#   PIDS is sent SIGTERM and waited for, then WORK is removed (kept, and
#   logged, when KEEP=1).
# free_port: a free TCP port on 127.0.0.1.
# wait_port PORT PID [SECONDS]: waits (up to SECONDS, 10) until 127.0.0.1:PORT accepts;
#   fails early once PID has exited.
# stop_pid PID [NAME] [SECONDS]: SIGTERM, SIGKILL after SECONDS (8) if it is
#   still there (logged as "NAME PID did not stop"), then reaped. For the
#   script's own children only; an empty PID is a no-op.
# bench_start_redis SOCK|PORT [REDIS_ARGS...]: a private redis-server on the
#   unix socket SOCK (an absolute path; no TCP port) or on 127.0.0.1:PORT, no
#   persistence, its directory and log in WORK,
#   its pid appended to PIDS and set in REDIS_PID; fails (after a log line)
#   if it does not answer PING within 10 s.

# shellcheck disable=SC2034 # SMOKE and BUILD are for the caller
bench_args() {
  local name=$1 help=$2 arg
  shift 2
  SMOKE=0
  BUILD=build
  for arg in "$@"; do
    case "$arg" in
      --smoke) SMOKE=1 ;;
      -h | --help)
        sed -n "${help}p" "$0"
        exit 0
        ;;
      -*)
        echo "$name: unknown option $arg" >&2
        exit 2
        ;;
      *) BUILD=$arg ;;
    esac
  done
}

bench_init() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  if ((${KEEP:-0})); then log "kept $WORK"; else rm -rf "$WORK"; fi
}

bench_defaults() {
  local kv name
  for kv in "$@"; do
    name=${kv%%=*}
    [[ -n ${!name:-} ]] || printf -v "$name" '%s' "${kv#*=}"
  done
}

bench_need() {
  local name=$1 what
  shift
  for what in "$@"; do
    if [[ $what == */* ]]; then
      [[ -x $what ]] && continue
      echo "$name: $what not found; build it first" >&2
    else
      command -v "$what" >/dev/null && continue
      echo "$name: $what not found" >&2
    fi
    exit 2
  done
}

bench_check_line() {
  python3 - "$@" <<'EOF'
import json, sys
try:
    j = json.loads(sys.argv[1])
except ValueError as e:
    print("not JSON: %s: %r" % (e, sys.argv[1][:200]), file=sys.stderr)
    sys.exit(1)
bad = []
if "error" in j:
    bad.append("error=%s" % j["error"])
if sys.argv[2] == "1":
    keys = sys.argv[3:] or ["lost", "duplicated", "reordered", "gaps",
                            "subscribers_shed", "subscribers_failed",
                            "subscribers_closed_by_server", "publish_errors",
                            "misrouted"]
    for k in keys:
        if j.get(k, 0) != 0:
            bad.append("%s=%s" % (k, j[k]))
    if not sys.argv[3:] and ("lost" not in j or "duplicated" not in j):
        bad.append("no lost/duplicated fields")
if bad:
    name = j.get("name", "?")
    if "server" in j:
        name = "%s/%s" % (j["server"], name)
    print("%s: %s" % (name, ", ".join(bad)), file=sys.stderr)
    sys.exit(1)
EOF
}

log() { echo "${BENCH_LOG_PREFIX:-bench}: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # PORT PID [SECONDS]
  for _ in $(seq 1 $((${3:-10} * 20))); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

stop_pid() { # PID [NAME] [SECONDS]
  local pid=$1
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 $((${3:-8} * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "${2:-pid} $pid did not stop; killing it"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
}

bench_start_redis() { # SOCK|PORT [REDIS_ARGS...]
  local listen cli
  if [[ $1 == /* ]]; then
    listen=(--port 0 --unixsocket "$1" --unixsocketperm 700)
    cli=(-s "$1")
  else
    listen=(--port "$1" --bind 127.0.0.1)
    cli=(-p "$1")
  fi
  shift
  redis-server "${listen[@]}" --save "" \
    --appendonly no --dir "$WORK" --daemonize no "$@" >>"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 1 200); do
    redis-cli "${cli[@]}" PING >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli "${cli[@]}" PING >/dev/null || {
    log "redis-server did not start"
    return 1
  }
}
