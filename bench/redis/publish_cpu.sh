#!/usr/bin/env bash
# publish_cpu.sh: Redis CPU per published event on the Redis path (issue 17).
#
#   bash bench/redis/publish_cpu.sh [--smoke] [BUILD_DIR]    (BUILD_DIR: build/)
#
# A private redis-server (unix socket in a temp dir, no persistence), NODES
# evsse-bench-node processes on it (2), evsse-loadgen publishing EVENTS (50000)
# events at the highest rate it can (PUBLISHERS connections, PIPELINE
# requests in flight on each) to node 1, where SUBS subscribers (100) read
# them, and one curl subscriber per topic on every other node, so Redis
# fans every event out to every node. Prints the loadgen's JSON line (lost,
# duplicated, reordered must be 0) with, added, Redis's own figures over the
# publish window: "redis_info_cpu_us_per_event" from INFO cpu
# (used_cpu_sys + used_cpu_user) and "events_per_script_call" from INFO
# commandstats (EVALSHA and EVAL calls). Stops everything it started by pid.
# Environment: NODES, EVENTS, SUBS, TOPICS (1), PUBLISHERS (4), PIPELINE (16),
# SIZE (64 bytes).
set -u -o pipefail

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
bench_args publish_cpu.sh 2,18 "$@"
bench_defaults NODES=2 EVENTS=50000 SUBS=100 TOPICS=1 PUBLISHERS=4 \
  PIPELINE=16 SIZE=64
if ((SMOKE)); then
  EVENTS=2000
  SUBS=10
fi
NODE=$BUILD/bench/redis/evsse-bench-node
LOADGEN=$BUILD/bench/evsse-loadgen
bench_need publish_cpu.sh "$NODE" "$LOADGEN"

BENCH_LOG_PREFIX=publish_cpu
bench_init evsse-publish-cpu

SOCK=$WORK/redis.sock
bench_start_redis "$SOCK" || exit 1

PORTS=()
# shellcheck disable=SC2153 # NODES is set by bench_defaults
for n in $(seq 1 "$NODES"); do
  port=$(free_port)
  (
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    exec "$NODE" --port "$port" --bind 127.0.0.1 --history 6000 \
      --max-connections 11000 --redis "unix:$SOCK"
  ) 2>>"$WORK/node$n.log" &
  PIDS+=("$!")
  wait_port "$port" "$!" || {
    log "node $n did not start (see its log)"
    exit 1
  }
  PORTS+=("$port")
done
NODE1_PID=${PIDS[1]}
# One subscriber per topic on every other node: Redis then publishes every
# event to every node.
for port in "${PORTS[@]:1}"; do
  for k in $(seq 0 $((TOPICS - 1))); do
    curl -sN "http://127.0.0.1:$port/events?topic=t$k" >/dev/null 2>&1 &
    PIDS+=("$!")
  done
done

cpu() { # used_cpu_sys + used_cpu_user of the redis-server, in seconds
  redis-cli -s "$SOCK" INFO cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'
}
calls() { # EVALSHA + EVAL calls so far
  redis-cli -s "$SOCK" INFO commandstats | tr -d '\r' |
    awk -F'[:=,]' '/^cmdstat_(evalsha|eval):/ { s += $3 } END { print s + 0 }'
}

sleep 1 # the curl subscribers' first bytes
cpu0=$(cpu)
calls0=$(calls)
line=$("$LOADGEN" --port "${PORTS[0]}" --subscribers "$SUBS" --topics "$TOPICS" \
  --events "$EVENTS" --rate 0 --size "$SIZE" --publishers "$PUBLISHERS" \
  --pipeline "$PIPELINE" --server-pid "$NODE1_PID" --redis-pid "$REDIS_PID" \
  --name "redis_publish_cpu_${NODES}nodes" --timeout-s 300)
rc=$?
cpu1=$(cpu)
calls1=$(calls)
python3 - "$line" "$cpu0" "$cpu1" "$calls0" "$calls1" "$NODES" "$PUBLISHERS" "$PIPELINE" <<'PY'
import json, sys
line, cpu0, cpu1, c0, c1, nodes, pubs, pipe = sys.argv[1:]
j = json.loads(line)
events = j.get("events_acked") or 0
calls = int(c1) - int(c0)
j["nodes"] = int(nodes)
j["publishers"] = int(pubs)
j["pipeline"] = int(pipe)
# INFO cpu spans the whole run (connects and the subscribers' setup too,
# which cost Redis nothing measurable); the loadgen's redis_cpu_* figures
# cover the publish window only.
j["redis_info_cpu_s"] = round(float(cpu1) - float(cpu0), 3)
j["redis_info_cpu_us_per_event"] = (
    round((float(cpu1) - float(cpu0)) / events * 1e6, 2) if events else None)
j["script_calls"] = calls
j["events_per_script_call"] = round(events / calls, 2) if calls else None
print(json.dumps(j, sort_keys=True))
bad = [k for k in ("lost", "duplicated", "reordered", "gaps", "publish_errors")
       if j.get(k)]
if j.get("error") or bad:
    print("publish_cpu: failed: " + (j.get("error") or ", ".join(bad)),
          file=sys.stderr)
    sys.exit(1)
PY
py=$?
((rc == 0 && py == 0))
