# shellcheck shell=bash
# bench/lib.sh: what the bench shell scripts share. Sourced, not run:
#
#   . "$(cd "$(dirname "$0")" && pwd)/../lib.sh"     # from bench/redis/
#   bench_init throughput evsse-throughput            # log prefix, temp dir
#
# bench_init LOG_PREFIX TMP_PREFIX: sets WORK (a fresh temp dir) and PIDS
#   (every process the script starts, appended by the script); on exit every
#   pid in PIDS is sent SIGTERM and waited for, then WORK is removed.
# log MSG...: MSG on stderr, prefixed with LOG_PREFIX.
# free_port: a free TCP port on 127.0.0.1.
# wait_port PORT PID: waits (up to 10 s) until 127.0.0.1:PORT accepts;
#   fails early once PID has exited.
# bench_start_redis SOCK [REDIS_ARGS...]: a private redis-server on the unix
#   socket SOCK (no TCP port, no persistence, its directory and log in WORK),
#   its pid appended to PIDS and set in REDIS_PID; fails (after a log line)
#   if it does not answer PING within 10 s.

bench_init() {
  BENCH_LOG_PREFIX=$1
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$2.XXXXXX")
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
  rm -rf "$WORK"
}

log() { echo "$BENCH_LOG_PREFIX: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # PORT PID
  for _ in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

bench_start_redis() { # SOCK [REDIS_ARGS...]
  local sock=$1
  shift
  redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$WORK" --daemonize no "$@" >>"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 1 200); do
    redis-cli -s "$sock" PING >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -s "$sock" PING >/dev/null || {
    log "redis-server did not start"
    return 1
  }
}
