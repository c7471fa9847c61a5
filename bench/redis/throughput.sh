#!/usr/bin/env bash
# throughput.sh: how many published events one Redis core carries on the
# Redis path, with history, to several nodes (issue 17).
#
#   bash bench/redis/throughput.sh [--smoke] [BUILD_DIR]    (BUILD_DIR: build/)
#
# A private redis-server (unix socket in a temp dir, no persistence) and
# NODES (2) evsse-bench-node processes on it, each with one curl subscriber
# per topic, so Redis publishes every event to every node. Then the calls a
# node makes when it has BATCH events of one loop turn to publish (EVALSHA of
# pubsub/redis/publish.lua with the same keys and arguments as
# LinkImpl::SendPublish: 5 keys and 3 arguments per event, one XADD and one
# PUBLISH per event) are written as one RESP file and piped into Redis by
# `redis-cli --pipe`, as fast as Redis takes them. The HTTP side of the nodes
# is left out on purpose: on this 2-core machine the HTTP publishers starve
# Redis (publish_cpu.sh measures that path); here nothing but Redis is busy
# while the calls run, so its events/s is what one Redis core sustains.
#
# Prints one JSON line: events, events_per_s (over the pipe's wall time),
# redis_info_cpu_s / redis_info_cpu_us_per_event (INFO cpu, used_cpu_sys +
# used_cpu_user, over the pipe), redis_cpu_share (CPU / wall: 1.0 is one
# core saturated), and INFO commandstats per command (calls, µs per call).
# Then it waits until every curl subscriber has every event of its topic and
# checks it: one id per event, ids strictly increasing, the events' sequence
# numbers complete and in order ("lost", "duplicated", "reordered" must be
# 0). Exits non-zero otherwise. Stops everything it started by pid.
# Environment: NODES (2), EVENTS (300000), BATCH (25), TOPICS (1), SIZE (64
# bytes), HISTORY (6000: the stream's MAXLEN ~), PUBLISH_LUA (the script to
# measure; default pubsub/redis/publish.lua: an older one for an A/B, e.g.
# `git show REV:pubsub/redis/publish.lua > /tmp/old.lua`).
set -u -o pipefail

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
bench_args throughput.sh 2,31 "$@"
bench_defaults NODES=2 EVENTS=300000 BATCH=25 TOPICS=1 SIZE=64 HISTORY=6000
((SMOKE)) && EVENTS=20000
HERE=$(cd "$(dirname "$0")" && pwd)
SCRIPT=${PUBLISH_LUA:-$HERE/../../pubsub/redis/publish.lua}
NODE=$BUILD/bench/redis/evsse-bench-node
bench_need throughput.sh "$NODE" redis-server redis-cli curl python3

BENCH_LOG_PREFIX=throughput
bench_init evsse-throughput

SOCK=$WORK/redis.sock
# No output buffer limit for pub/sub clients: a node that falls behind for
# a moment must not be cut off in the middle of the measurement.
bench_start_redis "$SOCK" --client-output-buffer-limit "pubsub 0 0 0" || exit 1
SHA=$(redis-cli -s "$SOCK" SCRIPT LOAD "$(cat "$SCRIPT")")
RUN_ID=$(redis-cli -s "$SOCK" INFO server | tr -d '\r' |
  awk -F: '/^run_id:/ { print $2 }')

SUBFILES=()
# shellcheck disable=SC2153 # NODES is set by bench_defaults
for n in $(seq 1 "$NODES"); do
  port=$(free_port)
  "$NODE" --port "$port" --bind 127.0.0.1 --history "$HISTORY" \
    --redis "unix:$SOCK" 2>>"$WORK/node$n.log" &
  PIDS+=("$!")
  wait_port "$port" "$!" || {
    log "node $n did not start (see its log)"
    exit 1
  }
  for k in $(seq 0 $((TOPICS - 1))); do
    f=$WORK/sub-n$n-t$k.txt
    curl -sN "http://127.0.0.1:$port/events?topic=t$k" >"$f" 2>/dev/null &
    PIDS+=("$!")
    SUBFILES+=("$f")
  done
done
# Every node has subscribed every topic's channel once PUBSUB NUMSUB says
# so: from then on Redis publishes each event to each node.
for _ in $(seq 1 200); do
  all=1
  for k in $(seq 0 $((TOPICS - 1))); do
    subs=$(redis-cli -s "$SOCK" PUBSUB NUMSUB "evsse:{t$k}:c" | sed -n 2p)
    ((subs >= NODES)) || all=0
  done
  ((all)) && break
  sleep 0.05
done
((all)) || {
  log "the nodes did not subscribe"
  exit 1
}

# The calls, as LinkImpl::SendPublish builds them: per event the keys
# s c e w f of its topic and (type, data, upkeep); upkeep "1" for a topic's
# first event only (a node asks at most once a second per topic).
python3 - "$SHA" "$EVENTS" "$BATCH" "$TOPICS" "$SIZE" "$RUN_ID" "$HISTORY" \
  >"$WORK/calls.resp" <<'PY'
import random, sys
sha, events, batch, topics, size, run_id, history = sys.argv[1:]
events, batch, topics, size = int(events), int(batch), int(topics), int(size)
out = sys.stdout.buffer
def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)
seen = set()
n = 0
while n < events:
    k = min(batch, events - n)
    keys, evs = [], []
    for j in range(k):
        t = "t%d" % ((n + j) % topics)
        keys += [("evsse:{%s}:%s" % (t, kind)).encode() for kind in "scewf"]
        data = ("s=%d k=%s " % (n + j, t)).encode()
        evs += [b"", data + b"x" * max(0, size - len(data)),
                b"0" if t in seen else b"1"]
        seen.add(t)
    args = [b"EVALSHA", sha.encode(), str(len(keys)).encode()] + keys
    args += [history.encode(), b"0", b"%x" % random.getrandbits(40), b"0",
             run_id.encode()] + evs
    out.write(b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args))
    n += k
PY

cpu() { # used_cpu_sys + used_cpu_user of the redis-server, in seconds
  redis-cli -s "$SOCK" INFO cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'
}
redis-cli -s "$SOCK" CONFIG RESETSTAT >/dev/null
cpu0=$(cpu)
t0=$(date +%s.%N)
redis-cli -s "$SOCK" --pipe <"$WORK/calls.resp" >"$WORK/pipe.out" 2>&1
rc=$?
t1=$(date +%s.%N)
cpu1=$(cpu)
redis-cli -s "$SOCK" INFO commandstats | tr -d '\r' >"$WORK/commandstats"
if ((rc != 0)) || ! grep -q "errors: 0," "$WORK/pipe.out"; then
  log "redis-cli --pipe failed: $(tail -3 "$WORK/pipe.out")"
  exit 1
fi

# Delivery: wait (bounded) until every subscriber has its topic's events.
per_topic=$((EVENTS / TOPICS))
for _ in $(seq 1 600); do
  done_all=1
  for k in $(seq 0 $((TOPICS - 1))); do
    want=$per_topic
    ((k < EVENTS % TOPICS)) && want=$((want + 1))
    for n in $(seq 1 "$NODES"); do
      got=$(grep -c '^id:' "$WORK/sub-n$n-t$k.txt")
      ((got >= want)) || done_all=0
    done
  done
  ((done_all)) && break
  sleep 0.1
done

python3 - "$WORK" "$EVENTS" "$BATCH" "$TOPICS" "$NODES" "$SIZE" "$cpu0" \
  "$cpu1" "$t0" "$t1" "$SMOKE" <<'PY'
import glob, json, os, re, sys
work, events, batch, topics, nodes, size, c0, c1, t0, t1, smoke = sys.argv[1:]
events, topics, nodes = int(events), int(topics), int(nodes)
cpu, wall = float(c1) - float(c0), float(t1) - float(t0)
j = {"name": "redis_throughput", "smoke": smoke == "1", "nodes": nodes,
     "topics": topics, "batch": int(batch), "size": int(size),
     "events": events, "wall_s": round(wall, 3),
     "events_per_s": round(events / wall),
     "redis_info_cpu_s": round(cpu, 3),
     "redis_info_cpu_us_per_event": round(cpu / events * 1e6, 2),
     "redis_cpu_share": round(cpu / wall, 2), "commandstats": {}}
for line in open(os.path.join(work, "commandstats")):
    m = re.match(r"cmdstat_(\w+):calls=(\d+),usec=(\d+)", line)
    if m and m.group(1) not in ("info", "config"):
        calls, usec = int(m.group(2)), int(m.group(3))
        j["commandstats"][m.group(1)] = {
            "calls": calls, "us_per_call": round(usec / calls, 2),
            "us_per_event": round(usec / events, 2)}
lost = dup = reordered = 0
for k in range(topics):
    want = list(range(k, events, topics))
    for n in range(1, nodes + 1):
        ids, seqs = [], []
        for line in open(os.path.join(work, "sub-n%d-t%d.txt" % (n, k)),
                         errors="replace"):
            if line.startswith("id:"):
                ids.append(line[3:].strip())
            elif line.startswith("data:"):
                m = re.match(r"data: ?s=(\d+) ", line)
                if m:
                    seqs.append(int(m.group(1)))
        def key(i):  # <epoch>.<ms>-<seq>: the stream id orders them
            ms, _, seq = i.split(".", 1)[-1].partition("-")
            return (int(ms), int(seq or 0))
        keys = [key(i) for i in ids]
        reordered += sum(1 for a, b in zip(keys, keys[1:]) if b <= a)
        got = set(seqs)
        lost += sum(1 for s in want if s not in got)
        dup += len(seqs) - len(got)
        if seqs != sorted(seqs):
            reordered += 1
j.update(lost=lost, duplicated=dup, reordered=reordered)
print(json.dumps(j))
if lost or dup or reordered:
    print("throughput: failed: lost %d, duplicated %d, reordered %d"
          % (lost, dup, reordered), file=sys.stderr)
    sys.exit(1)
PY
