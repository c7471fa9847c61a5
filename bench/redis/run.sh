#!/usr/bin/env bash
# run.sh: the multi-node (Redis) benchmarks of evsse. See README.md.
#
#   bash bench/redis/run.sh [--smoke] [BUILD_DIR]          (BUILD_DIR: build/)
#
# Builds nothing: it needs BUILD_DIR/bench/redis/{evsse-redis-bench,
# evsse-bench-node} (bench/CMakeLists.txt: add_subdirectory(redis)). Every
# scenario gets a fresh private redis-server (unix socket in a temp dir, no
# persistence) and fresh evsse-bench-node processes on free loopback ports,
# each with its fd limit raised to the hard limit; it prints the driver's
# JSON line on stdout and stops everything it started by pid. Progress goes
# to stderr. Every run is bounded: the driver's --timeout-s, and coreutils
# `timeout` around it.
#
# Every line must show no error, no loss, no duplicate, no reorder and no
# gap, or the script exits non-zero. --smoke: a tiny version (a few
# seconds). Sizes come from the environment: FANOUT_SUBS (5000),
# FANOUT_RATE (5 events/s), FANOUT_EVENTS (100), MAX_EVENTS (200),
# REPLAY_SUBS (100), REPLAY_EVENTS (10000), REPEAT (1 round), ONLY (a
# regex over scenario names, e.g. ONLY=replay).
set -u -o pipefail

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
# Sizes (environment overrides): see README.md for the reasons.
# ONLY: a regex: run only the scenarios whose name matches.
bench_defaults FANOUT_SUBS=5000 FANOUT_RATE=5 FANOUT_EVENTS=100 MAX_EVENTS=200 \
  REPLAY_SUBS=100 REPLAY_EVENTS=10000 REPEAT=1 ONLY=.
bench_args run.sh 2,20 "$@"

BIN=""
for dir in "$BUILD/bench/redis" "$BUILD/bench-redis"; do
  if [[ -x $dir/evsse-redis-bench && -x $dir/evsse-bench-node ]]; then
    BIN=$dir
    break
  fi
done
if [[ -z $BIN ]]; then
  echo "run.sh: evsse-redis-bench and evsse-bench-node not found under $BUILD;" \
    "build it with bench/redis added to bench/CMakeLists.txt" >&2
  exit 2
fi
# The Kafka scenarios (evsse::kafka on librdkafka's mock cluster) run when
# evsse-bench-node was built with --kafka and the mock cluster is built.
MOCK=""
for m in "$BUILD/tests/kafka_mock_cluster" "$BIN/kafka_mock_cluster"; do
  if [[ -x $m ]]; then
    MOCK=$m
    break
  fi
done
for tool in redis-server redis-cli python3 curl; do
  if ! command -v "$tool" >/dev/null; then
    echo "run.sh: $tool is needed" >&2
    exit 2
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/evsse-rbench.XXXXXX")
REDIS_PID=""
MOCK_PID=""
NODE_PIDS=()
FAILED=0

BENCH_LOG_PREFIX=run.sh

stop_all() {
  local pid
  for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid" pid 10; done
  NODE_PIDS=()
  if [[ -n $REDIS_PID ]]; then
    stop_pid "$REDIS_PID" pid 10
    REDIS_PID=""
  fi
  if [[ -n $MOCK_PID ]]; then
    stop_pid "$MOCK_PID" pid 10
    MOCK_PID=""
  fi
}
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

REDIS_SOCK=""
start_redis() {
  local dir=$WORK/redis.$RANDOM
  mkdir -p "$dir"
  REDIS_SOCK=$dir/redis.sock
  redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
    --save "" --appendonly no --dir "$dir" --daemonize no \
    --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 200); do
    if [[ $(redis-cli -s "$REDIS_SOCK" PING 2>/dev/null) == PONG ]]; then
      return 0
    fi
    sleep 0.05
  done
  log "redis-server did not start (see $dir/redis.log)"
  return 1
}

# start_kafka: librdkafka's mock cluster (3 brokers on loopback), kept
# running by a fifo this script holds open; sets KAFKA_BOOT.
KAFKA_BOOT=""
# librdkafka's mock broker holds a fetch with no data for the consumer's
# whole fetch.wait.max.ms (500 ms by default) even when a record arrives
# meanwhile; a real broker answers at once. So the nodes poll it every
# KAFKA_FETCH_WAIT_MS (10): what a real broker's long poll gives for free.
KAFKA_SET=(--kafka-set "fetch.wait.max.ms=${KAFKA_FETCH_WAIT_MS:-10}")
start_kafka() {
  local dir=$WORK/kafka.$RANDOM
  mkdir -p "$dir"
  mkfifo "$dir/in"
  exec {KAFKA_FD}<>"$dir/in"
  "$MOCK" 3 <"$dir/in" >"$dir/out" 2>"$dir/err" &
  MOCK_PID=$!
  for _ in $(seq 1 200); do
    KAFKA_BOOT=$(sed -n 's/^bootstrap //p' "$dir/out" 2>/dev/null)
    [[ -n $KAFKA_BOOT ]] && return 0
    sleep 0.05
  done
  log "kafka_mock_cluster did not start (see $dir/err)"
  return 1
}

# start_node PORT [--redis ADDR] [--history N]: up means POST /publish
# answers 200 (listening, and its Redis link connected).
start_node() {
  local port=$1
  shift
  (
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    exec "$BIN/evsse-bench-node" --port "$port" "$@"
  ) 2>>"$WORK/node-$port.log" &
  NODE_PIDS+=($!)
  for _ in $(seq 1 200); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST --data up \
      "http://127.0.0.1:$port/publish?topic=up" 2>/dev/null) == 200 ]]; then
      return 0
    fi
    sleep 0.05
  done
  log "evsse-bench-node on port $port is not up (see $WORK/node-$port.log)"
  return 1
}


# scenario NAME KIND LIMIT_S HISTORY DRIVER_ARGS...
#   KIND: mem (one node, no Redis), redis1 (one node on Redis, publish and
#   subscribe on it), redis2 (publish on node A, subscribe on node B).
scenario() {
  local name=$1 kind=$2 limit=$3 history=$4
  shift 4
  [[ $name =~ $ONLY ]] || return 0
  local a b pids=() topic=()
  a=$(free_port)
  b=$a
  if [[ $kind == mem ]]; then
    start_node "$a" --history "$history" || {
      FAILED=1
      stop_all
      return 1
    }
    pids=(--pid "a=${NODE_PIDS[0]}")
  elif [[ $kind == kafka* ]]; then
    if [[ -z $MOCK ]] || ! start_kafka ||
      ! start_node "$a" --kafka "$KAFKA_BOOT" "${KAFKA_SET[@]}" \
        --history "$history"; then
      FAILED=1
      stop_all
      return 1
    fi
    pids=(--pid "a=${NODE_PIDS[0]}")
    if [[ $kind == kafka2 ]]; then
      b=$(free_port)
      start_node "$b" --kafka "$KAFKA_BOOT" "${KAFKA_SET[@]}" \
        --history "$history" || {
        FAILED=1
        stop_all
        return 1
      }
      pids+=(--pid "b=${NODE_PIDS[1]}")
    fi
    pids+=(--pid "kafka=$MOCK_PID")
    # One partition: Kafka orders records within a partition only, and a
    # bare topic is all of them (the mock makes four).
    topic=(--topic t0@0)
  else
    if ! start_redis || ! start_node "$a" --redis "unix:$REDIS_SOCK" \
      --history "$history"; then
      FAILED=1
      stop_all
      return 1
    fi
    pids=(--pid "a=${NODE_PIDS[0]}")
    if [[ $kind == redis2 ]]; then
      b=$(free_port)
      start_node "$b" --redis "unix:$REDIS_SOCK" --history "$history" || {
        FAILED=1
        stop_all
        return 1
      }
      pids+=(--pid "b=${NODE_PIDS[1]}")
    fi
    pids+=(--pid "redis=$REDIS_PID" --redis-unix "$REDIS_SOCK")
  fi
  log "$name ($kind), load $(cut -d" " -f1-3 /proc/loadavg): $*"
  local out rc
  out=$(
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    timeout --kill-after=5 "$((limit + 15))" "$BIN/evsse-redis-bench" \
      --name "$name" --pub-port "$a" --sub-port "$b" --timeout-s "$limit" \
      "${pids[@]}" "${topic[@]}" "$@"
  )
  rc=$?
  stop_all
  [[ -n $out ]] || out="{\"name\":\"$name\",\"error\":\"exit $rc, no output\"}"
  echo "$out"
  bench_check_line "$out" 1 lost duplicated reordered misrouted gaps \
    publish_errors closed_by_server || FAILED=1
  [[ $rc == 0 ]] || FAILED=1
}

if [[ $SMOKE == 1 ]]; then
  scenario smoke_fanout_mem mem 30 1000 --mode fanout --subscribers 50 \
    --events 50 --rate 200
  scenario smoke_fanout_redis redis2 30 1000 --mode fanout --subscribers 50 \
    --events 50 --rate 200
  scenario smoke_replay_redis redis2 30 2000 --mode replay --subscribers 10 \
    --events 1000
  scenario smoke_replay_mem mem 30 2000 --mode replay --subscribers 10 \
    --events 1000
  if [[ -n $MOCK ]]; then
    scenario smoke_fanout_kafka kafka2 30 1000 --mode fanout \
      --subscribers 50 --events 50 --rate 200
    scenario smoke_replay_kafka kafka2 30 2000 --mode replay \
      --subscribers 10 --events 1000
  fi
else
  for round in $(seq 1 "$REPEAT"); do
    # (a) Fan-out to 5,000 subscribers. Latency: events paced at a rate the
    # machine sustains (2 cores carry the nodes, Redis and the driver), on
    # one node in memory mode, one node on Redis, and across two nodes.
    for kind in mem redis1 redis2; do
      scenario "fanout_${FANOUT_SUBS}_${FANOUT_RATE}eps_$kind.$round" "$kind" \
        150 1000 --mode fanout --subscribers "$FANOUT_SUBS" \
        --events "$FANOUT_EVENTS" --rate "$FANOUT_RATE" --connect-window 200
    done
    # The same with 100 subscribers, where fan-out is short and the Redis
    # hop shows.
    for kind in mem redis1 redis2; do
      scenario "fanout_100_50eps_$kind.$round" "$kind" 60 1000 \
        --mode fanout --subscribers 100 --events 500 --rate 50
    done
    # Throughput: events as fast as acknowledged.
    for kind in mem redis2; do
      scenario "fanout_${FANOUT_SUBS}_max_$kind.$round" "$kind" 150 1000 \
        --mode fanout --subscribers "$FANOUT_SUBS" --events "$MAX_EVENTS" \
        --rate 0 --pipeline 4 --connect-window 200
    done
    # Kafka against Redis (issue 18), 1,000 subscribers on node B: latency
    # at a paced rate, and deliveries per CPU-second as fast as acknowledged.
    kinds=(redis2)
    [[ -n $MOCK ]] && kinds+=(kafka2)
    for kind in "${kinds[@]}"; do
      scenario "fanout_1000_${FANOUT_RATE}eps_$kind.$round" "$kind" 150 1000 \
        --mode fanout --subscribers 1000 --events "$FANOUT_EVENTS" \
        --rate "$FANOUT_RATE" --connect-window 200
      scenario "fanout_1000_max_$kind.$round" "$kind" 150 1000 \
        --mode fanout --subscribers 1000 --events "$MAX_EVENTS" --rate 0 \
        --pipeline 4 --connect-window 200
    done
    # (b) Replay: 10,000 events to 100 resuming subscribers on a node that
    # never saw them (redis2, kafka2), and the same replay from one node's
    # memory.
    for kind in mem "${kinds[@]}"; do
      scenario "replay_${REPLAY_EVENTS}_x${REPLAY_SUBS}_$kind.$round" "$kind" \
        120 $((REPLAY_EVENTS * 2)) --mode replay --subscribers "$REPLAY_SUBS" \
        --events "$REPLAY_EVENTS" --pipeline 16
    done
  done
fi

if [[ $FAILED != 0 ]]; then
  log "FAILED (logs: $WORK, kept)"
  trap 'stop_all' EXIT
  exit 1
fi
log "ok"
exit 0
