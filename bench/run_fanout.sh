#!/usr/bin/env bash
# run_fanout.sh: the fan-out benchmark of evsse against examples/evhttp_hello
# (or another example server: SERVER, below).
#
#   bash bench/run_fanout.sh [--smoke] [BUILD_DIR]      (BUILD_DIR: build/)
#
# Builds nothing. For each scenario it starts a fresh evhttp_hello on a free
# loopback port (its fd limit raised to the hard limit), runs evsse-loadgen
# with --server-pid, prints the loadgen's JSON line on stdout and stops the
# server by its pid. Progress goes to stderr.
#
# --smoke: a tiny version for CI (a few seconds); exits non-zero unless every
# line parses as JSON and shows no error, loss, duplicate, reordering, gap,
# shed or failed subscriber.
# Without --smoke: the full list (a few minutes); exits non-zero when a run
# fails or prints something that is not JSON. Every run is bounded: the
# loadgen's own --timeout-s, and coreutils `timeout` around it.
#
# SERVER (default evhttp_hello) names the server binary in BUILD_DIR/examples
# (e.g. evhtp_hello), and SERVER_ARGS adds arguments to it (word-split), e.g.
#   SERVER=evhtp_hello SERVER_ARGS='--threads 2' bash bench/run_fanout.sh B
# LOADGEN_ARGS is appended to every evsse-loadgen command (word-split), e.g.
# '--pipeline 1' (libevhtp alone answers only one of several pipelined
# requests per read; evsse's evhtp adapter works around it on its own
# routes, see module/README.md, "Hostile clients and limits").
# ONLY=name1,name2 runs only the scenarios with these names.
set -u -o pipefail

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
bench_args run_fanout.sh 2,26 "$@"

SERVER=${SERVER:-evhttp_hello}
read -r -a SERVER_ARGV <<<"${SERVER_ARGS:-}"
read -r -a LOADGEN_ARGV <<<"${LOADGEN_ARGS:-}"
ONLY=${ONLY:-}
HELLO=$BUILD/examples/$SERVER
LOADGEN=$BUILD/bench/evsse-loadgen
CODEC_CHECK=$BUILD/bench/evsse-bench-codec-check
for bin in "$HELLO" "$LOADGEN"; do
  if [[ ! -x $bin ]]; then
    echo "run_fanout.sh: $bin not found; build $BUILD first" >&2
    exit 2
  fi
done
if ! command -v python3 >/dev/null; then
  echo "run_fanout.sh: python3 is needed to check the JSON lines" >&2
  exit 2
fi

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/evsse-bench.XXXXXX")
SERVER_PID=""
PORT=""
FAILED=0

BENCH_LOG_PREFIX=run_fanout

start_server() {
  PORT=$(free_port)
  # The server inherits the raised limit; exec keeps $! its pid.
  (
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    exec "$HELLO" --port "$PORT" --bind 127.0.0.1 "${SERVER_ARGV[@]}"
  ) 2>>"$LOG_DIR/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.05
  done
  log "$SERVER did not start on port $PORT (see $LOG_DIR/server.log)"
  stop_server
  return 1
}

stop_server() {
  # SIGTERM drains streams over 5 s; with none open it exits at once.
  stop_pid "$SERVER_PID" "$SERVER"
  SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM


# shed_count JSON: subscribers the server shed in a run.
shed_count() {
  python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("subscribers_shed", 0))' "$1" 2>/dev/null || echo 0
}

LAST_LINE=""
# scenario NAME TIMEOUT_S LOADGEN_ARGS...: one run on a fresh server.
scenario() {
  local name=$1 limit=$2
  shift 2
  if [[ -n $ONLY && ",$ONLY," != *",$name,"* ]]; then
    LAST_LINE=""
    return 0
  fi
  start_server || {
    FAILED=1
    return 1
  }
  log "$name: $* ${LOADGEN_ARGS:-}"
  local out rc
  out=$(timeout --kill-after=5 "$((limit + 15))" "$LOADGEN" --host 127.0.0.1 \
    --port "$PORT" --server-pid "$SERVER_PID" --name "$name" \
    --timeout-s "$limit" "$@" "${LOADGEN_ARGV[@]}")
  rc=$?
  stop_server
  LAST_LINE=$out
  if [[ -z $out ]]; then
    out="{\"name\":\"$name\",\"error\":\"evsse-loadgen exited $rc without output\"}"
  fi
  echo "$out"
  bench_check_line "$out" "$SMOKE" || FAILED=1
  if [[ $rc -ne 0 ]]; then
    log "$name: evsse-loadgen exited $rc"
    FAILED=1
  fi
  return 0
}

# ten_thousand NAME TIMEOUT ARGS...: a run with 10,000 subscribers; if the
# server sheds some (HubOptions::max_connections defaults to 10,000), it is
# reported and repeated with 9,900.
ten_thousand() {
  local name=$1 limit=$2
  shift 2
  scenario "$name" "$limit" --subscribers 10000 "$@"
  local shed
  shed=$(shed_count "$LAST_LINE")
  if [[ $shed != 0 ]]; then
    log "$name: the server shed $shed of 10,000 subscribers; again with 9,900"
    scenario "${name}_9900" "$limit" --subscribers 9900 "$@"
  fi
}

if [[ $SMOKE == 1 ]]; then
  if [[ -x $CODEC_CHECK ]]; then
    "$CODEC_CHECK" >&2 || FAILED=1
  fi
  scenario smoke_idle 20 --idle-only --subscribers 20 --idle-wait-s 0.2
  scenario smoke_live 20 --subscribers 20 --topics 2 --events 50
  scenario smoke_rate 20 --subscribers 20 --topics 1 --events 50 --rate 500
  scenario smoke_topics 20 --subscribers 20 --topics 10 --events 50 \
    --publishers 2
  scenario smoke_resume 20 --resume --subscribers 10 --topics 1 --events 50
  scenario smoke_defer 20 --subscribers 20 --topics 1 --events 50 \
    --publishers 2 --pipeline 1 --defer-reads
  # 4 pipelined publish connections against a loop kept busy by 1,000
  # subscribers: on evhtp_hello, this is what showed the pipelining bugs
  # worked around in module/evhtp/evhtp_adapter.cc (8).
  scenario smoke_pipelined 30 --subscribers 1000 --topics 1 --events 2000 \
    --publishers 4 --pipeline 4
else
  ten_thousand idle_10k 60 --idle-only --idle-wait-s 2
  scenario live_1k_200eps 150 --subscribers 1000 --topics 1 --events 2000 \
    --rate 200
  scenario max_1k 200 --subscribers 1000 --topics 1 --events 5000 --rate 0
  ten_thousand fan_10k 150 --topics 1 --events 200 --rate 0
  ten_thousand topics_1000x10 120 --topics 1000 --events 10000 --rate 0
  # Replay: the example keeps HubOptions' default history of 1,000 events
  # per topic, so 5,000 events on one topic outlive it (expect gap events);
  # over 5 topics the same 5,000 events fit.
  scenario replay_5000_1topic 60 --resume --subscribers 100 --topics 1 \
    --events 5000
  scenario replay_5000_5topics 60 --resume --subscribers 100 --topics 5 \
    --events 5000
  # The same maximum rate with 4 publish connections: the Hub then gets
  # several events per loop turn and writes them to each socket at once.
  scenario max_1k_4pub 200 --subscribers 1000 --topics 1 --events 5000 \
    --rate 0 --publishers 4
  # The server's own delivery rate: the generator reads after the window
  # (bench/loops.sh runs it on 1 and 2 loops).
  # 20,000 small events (16 B of data) keep ~1.1 GB in the receive queues.
  scenario loops_1k 120 --subscribers 1000 --topics 1 --events 20000 \
    --size 16 --rate 0 --publishers 64 --pipeline 1 --defer-reads
fi

if [[ $FAILED != 0 ]]; then
  log "FAILED (server log: $LOG_DIR/server.log)"
  exit 1
fi
rm -rf "$LOG_DIR"
log "ok"
exit 0
