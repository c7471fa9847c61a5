#!/usr/bin/env bash
# compare.sh: evsse against nginx + nchan, side by side, on this machine.
#
#   bash bench/compare.sh [--smoke] [BUILD_DIR]           (BUILD_DIR: build/)
#
# Builds nothing: it needs BUILD_DIR/bench/{evsse-loadgen,evsse-floor} and
# BUILD_DIR/bench/redis/evsse-bench-node (examples/evhttp_hello plus
# --history, --max-connections and --redis). It installs nginx and
# libnginx-mod-nchan when they are missing (apt-get; root or sudo), then:
#   - measures the machine's floor once (evsse-floor);
#   - for each round (REPEAT, 3) and each scenario, runs evsse and nchan one
#     after the other (the first of the pair alternates between rounds), each
#     on a fresh server on a free 127.0.0.1 port: evsse-bench-node, or nginx
#     with nchan run privately (its own prefix, config, pid file and logs in
#     a temp dir, 1 worker, in the foreground as this script's child; never
#     the system service). Redis scenarios get a fresh private redis-server
#     (temp dir, free port, no persistence) for each run;
#   - writes every raw JSON line (tagged with "server" and "round") to
#     RESULTS (default: compare-results-<UTC time>.jsonl in the current
#     directory) and prints the table of medians (bench/compare_table.py).
# Every process it starts is stopped by its pid. Progress goes to stderr.
#
# --smoke: for CI; evsse only (never installs anything, nginx is not
# needed), tiny counts, one round; exits non-zero unless every line is
# well-formed JSON with no error, loss, duplicate, reorder, gap, shed or
# failed subscriber, and the table renders.
#
# TLS scenarios (tls_idle_10k, tls_max_1k, tls_lone_1k; smoke_tls): both
# servers serve HTTPS with the certificate of tests/support/make_test_certs.sh
# (evsse-bench-node --tls-cert/--tls-key; nginx "listen ... ssl" with
# ssl_certificate, ssl_certificate_key, ssl_protocols TLSv1.2 TLSv1.3) and
# evsse-loadgen runs with --tls --cacert (the chain and the name checked).
#   ONLY=tls_max_1k,tls_lone_1k,tls_idle_10k bash bench/compare.sh build
#
# Environment: REPEAT (rounds, 3), ONLY (comma-separated scenario names),
# RESULTS (the JSON lines file), SERVERS ("evsse nchan").
# start_evsse and start_nchan are called as "start_$server".
# shellcheck disable=SC2317
set -u -o pipefail

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
bench_args compare 2,37 "$@"

HERE=$(cd "$(dirname "$0")" && pwd)
LOADGEN=$BUILD/bench/evsse-loadgen
FLOOR=$BUILD/bench/evsse-floor
NODE=$BUILD/bench/redis/evsse-bench-node
for bin in "$LOADGEN" "$FLOOR" "$NODE"; do
  if [[ ! -x $bin ]]; then
    echo "compare: $bin not found; build it first:" >&2
    echo "  cmake --build $BUILD --target evsse-loadgen evsse-floor" \
      "evsse-bench-node" >&2
    exit 2
  fi
done
for tool in python3 redis-server; do
  if ! command -v "$tool" >/dev/null; then
    echo "compare: $tool is needed" >&2
    exit 2
  fi
done

if [[ $SMOKE == 1 ]]; then
  REPEAT=1
  SERVERS=evsse
else
  REPEAT=${REPEAT:-3}
  SERVERS=${SERVERS:-evsse nchan}
fi
ONLY=${ONLY:-}
RESULTS=${RESULTS:-}

BENCH_LOG_PREFIX=compare

# install_nchan: nginx and the nchan module from Debian, only if missing.
install_nchan() {
  local missing=() pkg
  for pkg in nginx libnginx-mod-nchan; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
      grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  # The package's postinst may try to start the system nginx; no init
  # system here, and this script never uses it.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get \
    -o DPkg::Lock::Timeout=300 install -y --no-install-recommends \
    "${missing[@]}" >&2
}

NCHAN_SO=""
if [[ " $SERVERS " == *" nchan "* ]]; then
  install_nchan || {
    log "could not install nginx/libnginx-mod-nchan"
    exit 2
  }
  NCHAN_SO=$(dpkg -L libnginx-mod-nchan | grep '/ngx_nchan_module\.so$' |
    head -n 1)
  if [[ ! -f $NCHAN_SO ]] || ! command -v nginx >/dev/null; then
    log "nginx or ngx_nchan_module.so not found"
    exit 2
  fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/evsse-compare.XXXXXX")
# nginx's worker runs as an unprivileged user when started by root.
chmod 755 "$WORK"
SERVER_PID=""  # the process we started (nginx: the master)
MEASURE_PID="" # the process whose CPU and RSS count (nginx: the worker)
REDIS_PID=""
PORT=""
REDIS_PORT=""
FAILED=0
if [[ -z $RESULTS && $SMOKE == 1 ]]; then
  RESULTS=$WORK/smoke.jsonl
elif [[ -z $RESULTS ]]; then
  RESULTS=$PWD/compare-results-$(date -u +%Y%m%dT%H%M%SZ).jsonl
fi

start_redis() {
  REDIS_PORT=$(free_port)
  mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$WORK/redis" --daemonize no \
    >>"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  wait_port "$REDIS_PORT" "$REDIS_PID" 5 && return 0
  log "redis-server did not start (see $WORK/redis.log)"
  return 1
}

stop_redis() {
  stop_pid "$REDIS_PID" redis-server
  REDIS_PID=""
  rm -rf "$WORK/redis"
}

# make_certs: the test certificates in $WORK/certs (once).
make_certs() {
  [[ -f $WORK/certs/ca.pem ]] && return 0
  bash "$HERE/../tests/support/make_test_certs.sh" "$WORK/certs" >&2
}

# start_evsse [REDIS] [TLS]: evsse-bench-node; the replay keeps 6,000 events.
start_evsse() {
  PORT=$(free_port)
  local extra=()
  [[ -n ${1:-} ]] && extra=(--redis "127.0.0.1:$REDIS_PORT")
  [[ -n ${2:-} ]] && extra+=(--tls-cert "$WORK/certs/server.pem"
    --tls-key "$WORK/certs/server.key")
  (
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    exec "$NODE" --port "$PORT" --bind 127.0.0.1 --history 6000 \
      --max-connections 11000 "${extra[@]}"
  ) 2>>"$WORK/evsse.log" &
  SERVER_PID=$!
  MEASURE_PID=$SERVER_PID
  wait_port "$PORT" "$SERVER_PID" 5 && return 0
  log "evsse-bench-node did not start (see $WORK/evsse.log)"
  return 1
}

# nchan_conf PORT [REDIS_PORT] [TLS]: one worker, no access log, everything
# under $WORK/nginx; a buffer that keeps the replay's 5,000 events, no
# subscriber timeout, keep-alive publish connections that are never recycled.
# TLS: nginx terminates it with the test certificate.
nchan_conf() {
  local dir=$WORK/nginx redis="" ssl="" tls=""
  if [[ -n ${3:-} ]]; then
    ssl=ssl
    tls="ssl_certificate $WORK/certs/server.pem;
    ssl_certificate_key $WORK/certs/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;"
  fi
  if [[ -n ${2:-} ]]; then
    redis="nchan_redis_url \"redis://127.0.0.1:$2\";
    nchan_use_redis on;"
  fi
  cat <<EOF
load_module $NCHAN_SO;
worker_processes 1;
worker_rlimit_nofile 19000;
error_log $dir/error.log warn;
events { worker_connections 18000; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 3600s;
  send_timeout 3600s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  nchan_message_buffer_length 6000;
  nchan_message_timeout 1h;
  nchan_subscriber_timeout 0;
  server {
    listen 127.0.0.1:$1 $ssl backlog=1024;
    $tls
    location = /events {
      nchan_subscriber eventsource;
      nchan_channel_id \$arg_topic;
      nchan_subscriber_first_message newest;
      $redis
    }
    location = /publish {
      nchan_publisher;
      nchan_channel_id \$arg_topic;
      $redis
    }
  }
}
EOF
}

# start_nchan [REDIS] [TLS]: nginx in the foreground (our child), its pid file and
# logs in $WORK/nginx; MEASURE_PID is its single worker.
start_nchan() {
  PORT=$(free_port)
  local dir=$WORK/nginx
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 755 "$dir"
  nchan_conf "$PORT" "${1:+$REDIS_PORT}" "${2:-}" >"$dir/nginx.conf"
  (
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    exec nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
      -g "daemon off; pid $dir/nginx.pid;"
  ) 2>>"$WORK/nginx.stderr" &
  SERVER_PID=$!
  MEASURE_PID=""
  if wait_port "$PORT" "$SERVER_PID" 5; then
    for _ in $(seq 1 50); do
      MEASURE_PID=$(ps --ppid "$SERVER_PID" -o pid= | head -n 1 | tr -d ' ')
      [[ -n $MEASURE_PID ]] && return 0
      sleep 0.1
    done
  fi
  log "nginx did not start (see $dir/error.log, $WORK/nginx.stderr)"
  cat "$dir/error.log" "$WORK/nginx.stderr" >&2 2>/dev/null
  return 1
}

stop_server() {
  stop_pid "$SERVER_PID" "$SERVER_NAME"
  SERVER_PID=""
  MEASURE_PID=""
}

cleanup() {
  stop_server
  stop_redis
  rm -rf "$WORK"
}
SERVER_NAME=server
trap cleanup EXIT
trap 'exit 130' INT TERM

# tag JSON SERVER ROUND: the line with "server" and "round" added (or an
# error line when it is not JSON).
tag() {
  python3 - "$@" <<'EOF'
import json, sys
line, server, rnd = sys.argv[1:4]
try:
    j = json.loads(line)
except ValueError:
    j = {"error": "not JSON: %r" % line[:200]}
j["server"] = server
j["round"] = int(rnd)
print(json.dumps(j, separators=(",", ":")))
EOF
}


# run_one SERVER ROUND NAME TIMEOUT_S [redis] [tls] -- LOADGEN_ARGS...
run_one() {
  local server=$1 round=$2 name=$3 limit=$4 redis="" tls=""
  shift 4
  while [[ $1 != -- ]]; do
    case $1 in
      redis) redis=1 ;;
      tls) tls=1 ;;
    esac
    shift
  done
  shift # --
  SERVER_NAME=$server
  if [[ -n $redis ]]; then
    start_redis || {
      FAILED=1
      return 0
    }
  fi
  if [[ -n $tls ]] && ! make_certs; then
    log "could not make the test certificates"
    FAILED=1
    return 0
  fi
  if ! "start_$server" "$redis" "$tls"; then
    FAILED=1
    stop_server
    stop_redis
    return 0
  fi
  local extra=()
  [[ -n $redis ]] && extra=(--redis-pid "$REDIS_PID" --warmup-s 1)
  [[ -n $tls ]] && extra+=(--tls --cacert "$WORK/certs/ca.pem")
  log "round $round $server $name: $*"
  local out rc
  out=$(timeout --kill-after=5 "$((limit + 15))" "$LOADGEN" --host 127.0.0.1 \
    --port "$PORT" --server-pid "$MEASURE_PID" --name "$name" \
    --target "$server" --timeout-s "$limit" "${extra[@]}" "$@")
  rc=$?
  stop_server
  stop_redis
  [[ -n $out ]] || out="{\"name\":\"$name\",\"error\":\"evsse-loadgen exited $rc without output\"}"
  out=$(tag "$out" "$server" "$round")
  echo "$out" >>"$RESULTS"
  bench_check_line "$out" "$SMOKE" || FAILED=1
  if [[ $rc -ne 0 ]]; then
    log "$server $name: evsse-loadgen exited $rc"
    FAILED=1
  fi
}

# The scenarios: NAME TIMEOUT_S [redis] -- LOADGEN_ARGS. Sizes keep a full
# run (3 rounds, both servers) around 10-15 minutes on this machine.
if [[ $SMOKE == 1 ]]; then
  SCENARIOS=(
    "smoke_idle 20 -- --idle-only --subscribers 20 --idle-wait-s 0.2"
    "smoke_live 20 -- --subscribers 20 --topics 2 --events 50 --rate 500"
    "smoke_max 20 -- --subscribers 20 --topics 1 --events 50"
    "smoke_topics 20 -- --subscribers 20 --topics 10 --events 50"
    "smoke_replay 20 -- --resume --subscribers 10 --topics 1 --events 100"
    "smoke_redis 20 redis -- --subscribers 20 --topics 1 --events 50"
    "smoke_tls 20 tls -- --subscribers 20 --topics 1 --events 50"
  )
else
  SCENARIOS=(
    "idle_10k 90 -- --idle-only --subscribers 10000 --idle-wait-s 2"
    "live_1k_200eps 120 -- --subscribers 1000 --events 600 --rate 200"
    "max_1k 120 -- --subscribers 1000 --events 600 --rate 0"
    "fan_10k_5eps 120 -- --subscribers 10000 --events 50 --rate 5"
    "fan_10k_max 120 -- --subscribers 10000 --events 60 --rate 0"
    "topics_1000x10 120 -- --subscribers 10000 --topics 1000 --events 10000"
    "replay_5000 120 -- --resume --subscribers 100 --topics 1 --events 5000"
    "redis_1k_max 120 redis -- --subscribers 1000 --events 600 --rate 0"
    "redis_1k_200eps 120 redis -- --subscribers 1000 --events 400 --rate 200"
    "redis_publish_max 120 redis -- --subscribers 100 --events 20000 --rate 0 --publishers 16 --pipeline 4"
    "tls_idle_10k 120 tls -- --idle-only --subscribers 10000 --idle-wait-s 2"
    "tls_max_1k 120 tls -- --subscribers 1000 --events 600 --rate 0"
    "tls_lone_1k 120 tls -- --subscribers 1000 --events 200 --rate 25"
  )
fi

log "results: $RESULTS (work dir $WORK)"
START=$(date +%s)
if [[ $SMOKE == 0 ]]; then
  log "floor (evsse-floor)"
  floor=$("$FLOOR" 2>>"$WORK/floor.log")
  [[ -n $floor ]] || floor='{"name":"floor","error":"no output"}'
  tag "$floor" floor 0 >>"$RESULTS"
fi
read -r -a SERVER_LIST <<<"$SERVERS"
for round in $(seq 1 "$REPEAT"); do
  order=("${SERVER_LIST[@]}")
  # Alternate who goes first, so that a drift of the machine's load does
  # not always favour the same server.
  if ((round % 2 == 0 && ${#order[@]} == 2)); then
    order=("${order[1]}" "${order[0]}")
  fi
  for sc in "${SCENARIOS[@]}"; do
    read -r -a words <<<"$sc"
    name=${words[0]}
    if [[ -n $ONLY && ",$ONLY," != *",$name,"* ]]; then continue; fi
    for server in "${order[@]}"; do
      run_one "$server" "$round" "${words[@]}"
    done
  done
done
log "took $(($(date +%s) - START)) s"

python3 "$HERE/compare_table.py" "$RESULTS" || FAILED=1
if [[ $FAILED != 0 ]]; then
  log "FAILED (logs: $WORK; kept)"
  trap - EXIT
  stop_server
  stop_redis
  exit 1
fi
exit 0
