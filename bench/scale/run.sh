#!/usr/bin/env bash
# run.sh: 100,000 SSE subscribers across evsse nodes on one Redis, a node
# killed mid-stream (issue 17). See bench/scale/README.md.
#
#   bash bench/scale/run.sh [--smoke] [--cluster] [BUILD_DIR]   (build/)
#
# Starts a private redis-server on a free loopback port (--cluster: a
# private six-node Redis Cluster, three primaries with one replica each,
# and the nodes get --redis-cluster; Redis CPU is summed over the
# primaries), NODES (8)
# evsse-bench-node processes on it, and LOADGENS (6) evsse-loadgen processes
# holding SUBS (100000) subscribers of one topic between them (spread over
# the nodes round-robin, each process binding to its own SOURCES (4)
# source addresses 127.0.0.x before connecting). Once all are connected,
# a publisher process (evsse-loadgen --subscribers 0) publishes EVENTS (20)
# broadcast events at RATE (1) per second to the last node; after KILL_AT
# (8) events the first node is killed (SIGKILL, by pid): its subscribers
# reconnect after the server's jittered `retry:` to another node at random
# with Last-Event-ID. Prints one JSON line (see README.md) and exits non-zero
# when an event was lost, repeated or reordered, or a subscriber did not end
# with every event. Every process is stopped by pid.
#
# Environment: NODES, SUBS, LOADGENS, SOURCES, EVENTS, RATE, KILL_AT (0: no
# kill), SIZE (64), HISTORY (1000), TIMEOUT_S (300: bound of the whole run
# after the connects), SETTLE_S (10), KEEP (1: keep the temp dir and say
# where), REDIS_CLUSTER (HOST:PORT[,HOST:PORT...]: no private Redis; the
# nodes get --redis-cluster with these seeds, see README.md).
# --cluster: start the cluster in the temp dir (redis-server
# --cluster-enabled yes on free ports, redis-cli --cluster create
# --cluster-replicas 1), wait for cluster_state:ok on all six, stop them
# by pid at the end.
# --smoke: 2 nodes x 500 subscribers, 2 load generators, 10 events at 5/s,
# a node killed after 4 (a few seconds).
set -u -o pipefail

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
CLUSTER=0
args=()
for arg in "$@"; do
  if [ "$arg" = --cluster ]; then CLUSTER=1; else args+=("$arg"); fi
done
bench_args run.sh 2,33 "${args[@]}"
if ((SMOKE)); then
  NODES=${NODES:-2} SUBS=${SUBS:-1000} LOADGENS=${LOADGENS:-2}
  EVENTS=${EVENTS:-10} RATE=${RATE:-5} KILL_AT=${KILL_AT:-4}
fi
bench_defaults NODES=8 SUBS=100000 LOADGENS=6 SOURCES=4 EVENTS=20 RATE=1 \
  KILL_AT=8 SIZE=64 HISTORY=1000 TIMEOUT_S=300 SETTLE_S=10 KEEP=0
REDIS_CLUSTER=${REDIS_CLUSTER:-}
if ((CLUSTER)) && [[ -n $REDIS_CLUSTER ]]; then
  echo "run.sh: --cluster starts its own cluster; unset REDIS_CLUSTER" >&2
  exit 2
fi
NODE=$BUILD/bench/redis/evsse-bench-node
LOADGEN=$BUILD/bench/evsse-loadgen
BENCH_LOG_PREFIX=scale
bench_need run.sh "$NODE" "$LOADGEN"
if ((KILL_AT > 0 && NODES < 2)); then
  log "KILL_AT needs NODES >= 2"
  exit 2
fi

# Descriptors: each process stays under the hard limit (20,000 here). A node
# holds its share of the subscribers, and after a kill its share of the
# dead node's; a load generator holds its share.
HARD=$(ulimit -Hn)
per_node=$(((SUBS + NODES - 1) / NODES))
if ((KILL_AT > 0)); then
  per_node=$(((SUBS + NODES - 2) / (NODES - 1) + SUBS / NODES / 10))
fi
per_gen=$(((SUBS + LOADGENS - 1) / LOADGENS))
if ((per_node + 100 > HARD || per_gen + 100 > HARD)); then
  log "needs $per_node descriptors per node and $per_gen per load generator;" \
    "the hard limit is $HARD: raise NODES / LOADGENS"
  exit 2
fi
# Kernel limits this run depends on; nothing is changed. Ports: each load
# generator binds its own SOURCES addresses with IP_BIND_ADDRESS_NO_PORT,
# so every (source, node) pair has the whole ephemeral range.
log "limits: nofile hard $HARD, ip_local_port_range" \
  "$(sysctl -n net.ipv4.ip_local_port_range | tr '\t' -)," \
  "somaxconn $(sysctl -n net.core.somaxconn)," \
  "file-max $(sysctl -n fs.file-max)"

bench_init evsse-scale

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# CPU seconds (utime + stime) of a process, 0 once it is gone.
cpu_s() {
  local tck
  tck=$(getconf CLK_TCK)
  awk -v t="$tck" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / t }' \
    "/proc/$1/stat" 2>/dev/null || echo 0
}
nodes_cpu() { # the nodes' CPU seconds, summed
  local pid sum=0
  for pid in "${NODE_PIDS[@]}"; do
    sum=$(echo "$sum + $(cpu_s "$pid")" | bc)
  done
  echo "$sum"
}
mono_ns() { python3 -c 'import time; print(time.monotonic_ns())'; }

# A free port whose cluster bus port (+10000) is free too, not in $@.
free_cluster_port() {
  python3 - "$@" <<'PY'
import socket, sys
taken = {int(p) for p in sys.argv[1:]}
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    s.close()
    if p in taken or p + 10000 > 65535 or p + 10000 in taken:
        continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000))
    except OSError:
        continue
    finally:
        b.close()
    print(p)
    break
PY
}
# Every server says cluster_state:ok and sees 3 primaries with a replica.
cluster_ok() {
  local p
  for p in "$@"; do
    redis-cli -p "$p" CLUSTER INFO 2>/dev/null | tr -d '\r' |
      grep -qx 'cluster_state:ok' || return 1
    [[ $(redis-cli -p "$p" CLUSTER NODES 2>/dev/null |
      awk '$3 ~ /slave/ && $4 != "-" { n++ } END { print n + 0 }') == 3 ]] ||
      return 1
  done
}
if ((CLUSTER)); then
  CPORTS=()
  for i in 0 1 2 3 4 5; do
    p=$(free_cluster_port "${CPORTS[@]}")
    [[ -n $p ]] || {
      log "no free port for cluster node $i"
      exit 1
    }
    mkdir -p "$WORK/redis$i"
    redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$WORK/redis$i" --daemonize no --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
      --repl-diskless-sync-delay 0 --repl-ping-replica-period 1 \
      >>"$WORK/redis$i.log" 2>&1 &
    PIDS+=("$!")
    CPORTS+=("$p")
  done
  for p in "${CPORTS[@]}"; do
    for _ in $(seq 1 200); do
      redis-cli -p "$p" PING >/dev/null 2>&1 && break
      sleep 0.05
    done
    redis-cli -p "$p" PING >/dev/null || {
      log "cluster node on port $p did not start (see $WORK/redis*.log)"
      exit 1
    }
  done
  CADDRS=()
  for p in "${CPORTS[@]}"; do CADDRS+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${CADDRS[@]}" --cluster-replicas 1 \
    --cluster-yes >"$WORK/cluster-create.log" 2>&1 || {
    log "redis-cli --cluster create failed: $(tail -c 400 "$WORK/cluster-create.log")"
    exit 1
  }
  deadline=$((SECONDS + 60))
  until cluster_ok "${CPORTS[@]}"; do
    if ((SECONDS > deadline)); then
      log "cluster not ok after 60 s"
      exit 1
    fi
    sleep 0.1
  done
  # Redis CPU over the primaries; the nodes get all six as seeds.
  REDIS_SERVERS=()
  for p in "${CPORTS[@]}"; do
    redis-cli -p "$p" ROLE | head -1 | grep -qx master &&
      REDIS_SERVERS+=("127.0.0.1:$p")
  done
  REDIS_CLUSTER=$(
    IFS=,
    echo "${CADDRS[*]}"
  )
  REDIS_ARGS=(--redis-cluster "$REDIS_CLUSTER")
  log "cluster up: primaries ${REDIS_SERVERS[*]}"
elif [[ -n $REDIS_CLUSTER ]]; then
  # A cluster started elsewhere: the nodes get its seeds, Redis CPU is
  # summed over the listed servers (list the primaries).
  REDIS_ARGS=(--redis-cluster "$REDIS_CLUSTER")
  IFS=, read -r -a REDIS_SERVERS <<<"$REDIS_CLUSTER"
else
  REDIS_PORT=$(free_port)
  bench_start_redis "$REDIS_PORT" || exit 1
  REDIS_ARGS=(--redis "127.0.0.1:$REDIS_PORT")
  REDIS_SERVERS=("127.0.0.1:$REDIS_PORT")
fi
redis_cpu() { # used_cpu_sys + used_cpu_user of each of REDIS_SERVERS, comma-separated
  local s out=""
  for s in "${REDIS_SERVERS[@]}"; do
    out+="${out:+,}$(redis-cli -h "${s%:*}" -p "${s##*:}" INFO cpu | tr -d '\r' |
      awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }')"
  done
  echo "$out"
}

PORTS=()
NODE_PIDS=()
for n in $(seq 1 "$NODES"); do
  port=$(free_port)
  (
    ulimit -n "$HARD"
    exec "$NODE" --port "$port" --bind 127.0.0.1 --history "$HISTORY" \
      --max-connections $((HARD - 200)) "${REDIS_ARGS[@]}"
  ) 2>>"$WORK/node$n.log" &
  pid=$!
  PIDS+=("$pid")
  wait_port "$port" "$pid" || {
    log "node $n did not start (see its log)"
    exit 1
  }
  PORTS+=("$port")
  NODE_PIDS+=("$pid")
done
PORT_LIST=$(
  IFS=,
  echo "${PORTS[*]}"
)
RSS0=()
for pid in "${NODE_PIDS[@]}"; do RSS0+=("$(rss_kb "$pid")"); done

# Subscribers: load generator g gets addresses 127.0.0.(10 + g*SOURCES + i).
log "connecting $SUBS subscribers to $NODES nodes from $LOADGENS processes"
t_connect=$(date +%s.%N)
GEN_PIDS=()
for g in $(seq 0 $((LOADGENS - 1))); do
  n=$((SUBS / LOADGENS + (g < SUBS % LOADGENS ? 1 : 0)))
  srcs=""
  for i in $(seq 0 $((SOURCES - 1))); do
    a=$((10 + g * SOURCES + i))
    srcs+="${srcs:+,}127.0.$((a / 250)).$((a % 250 + 2))"
  done
  (
    ulimit -n "$HARD"
    exec "$LOADGEN" --ports "$PORT_LIST" --source-addrs "$srcs" \
      --subscribers "$n" --events "$EVENTS" --size "$SIZE" --subscribe-only \
      --reconnect --event-histograms --ready-file "$WORK/ready$g" \
      --connect-window 200 --settle-s "$SETTLE_S" \
      --timeout-s "$((TIMEOUT_S + 600))" --name "scale_gen$g"
  ) >"$WORK/gen$g.json" 2>"$WORK/gen$g.log" &
  pid=$!
  PIDS+=("$pid")
  GEN_PIDS+=("$pid")
done
deadline=$((SECONDS + 600))
for g in $(seq 0 $((LOADGENS - 1))); do
  while [[ ! -s $WORK/ready$g ]]; do
    if ! kill -0 "${GEN_PIDS[g]}" 2>/dev/null || ((SECONDS > deadline)); then
      log "load generator $g did not connect: $(head -c 600 "$WORK/gen$g.json")"
      exit 1
    fi
    sleep 0.2
  done
done
connect_s=$(echo "$(date +%s.%N) - $t_connect" | bc)
sleep 1 # the last responses' bytes settle in the nodes' RSS
RSS1=()
for pid in "${NODE_PIDS[@]}"; do RSS1+=("$(rss_kb "$pid")"); done
ACTIVE=()
for port in "${PORTS[@]}"; do
  ACTIVE+=("$(curl -s "http://127.0.0.1:$port/stats" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["connections_active"])')")
done
log "connected in ${connect_s}s; per node: ${ACTIVE[*]}"

# Redis's own idle cost (serverCron, the nodes' probes) over 2 s, to read
# its CPU during the publishing net of it.
idle0=$(redis_cpu)
sleep 2
idle1=$(redis_cpu)
# Publish; kill the first node after KILL_AT events.
cpu0=$(redis_cpu)
ncpu0=$(nodes_cpu)
pub_ns=$(mono_ns)
"$LOADGEN" --port "${PORTS[NODES - 1]}" --subscribers 0 --events "$EVENTS" \
  --rate "$RATE" --size "$SIZE" --publishers 1 --pipeline 1 \
  --timeout-s "$TIMEOUT_S" --name scale_publisher >"$WORK/pub.json" \
  2>"$WORK/pub.log" &
PUB_PID=$!
PIDS+=("$PUB_PID")
kill_ns=0
if ((KILL_AT > 0)); then
  # Once the publishing node has accepted KILL_AT events (its /stats), half
  # an interval later: between two events, every subscriber with an id to
  # resume from.
  while :; do
    published=$(curl -s --max-time 2 "http://127.0.0.1:${PORTS[NODES - 1]}/stats" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["events_published"])' \
        2>/dev/null || echo 0)
    ((published >= KILL_AT)) && break
    kill -0 "$PUB_PID" 2>/dev/null || break
    sleep 0.05
  done
  sleep "$(echo "0.5 / $RATE" | bc -l)"
  kill_ns=$(mono_ns)
  # The dead node's CPU up to the kill counts; the others' are read at the end.
  ncpu_killed=$(cpu_s "${NODE_PIDS[0]}")
  kill -9 "${NODE_PIDS[0]}"
  wait "${NODE_PIDS[0]}" 2>/dev/null
  log "killed node 1 (pid ${NODE_PIDS[0]})"
fi
wait "$PUB_PID"
pub_rc=$?
pub_end_ns=$(mono_ns)
cpu1=$(redis_cpu)
ncpu1=$(echo "$(nodes_cpu) + ${ncpu_killed:-0}" | bc)
RSS2=()
for pid in "${NODE_PIDS[@]}"; do RSS2+=("$(rss_kb "$pid")"); done
for pid in "${GEN_PIDS[@]}"; do wait "$pid"; done

python3 - "$WORK" "$LOADGENS" "$NODES" "$SUBS" "$EVENTS" "$RATE" "$KILL_AT" \
  "$kill_ns" "$pub_ns" "$pub_end_ns" "$cpu0" "$cpu1" "$idle0" "$idle1" \
  "$ncpu0" "$ncpu1" \
  "$connect_s" "$pub_rc" \
  "${RSS0[*]}" "${RSS1[*]}" "${RSS2[*]}" "${ACTIVE[*]}" \
  "$SMOKE" "${REDIS_ARGS[0]}" "${#REDIS_SERVERS[@]}" <<'PY'
import json, math, os, sys
(work, gens, nodes, subs, events, rate, kill_at, kill_ns, pub_ns, pub_end_ns,
 cpu0, cpu1, idle0, idle1, ncpu0, ncpu1, connect_s, pub_rc, rss0, rss1, rss2, active,
 smoke, redis_flag, redis_servers) = sys.argv[1:]
gens, nodes, subs, events = int(gens), int(nodes), int(subs), int(events)
kill_ns, kill_at = int(kill_ns), int(kill_at)
rss0, rss1, rss2 = ([int(x) for x in r.split()] for r in (rss0, rss1, rss2))
active = [int(x) for x in active.split()]
reports = []
for g in range(gens):
    text = open(os.path.join(work, "gen%d.json" % g)).read().strip()
    reports.append(json.loads(text.splitlines()[-1]))
pub = {}
try:
    pub = json.loads(open(os.path.join(work, "pub.json")).read().splitlines()[-1])
except Exception:
    pass
ratio = reports[0].get("bucket_ratio", 1.05)

def pct(hist, q):
    """q-quantile of a {bucket: count} histogram, in ms (bucket midpoint)."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank, seen = math.ceil(q * total), 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return round(ratio ** (b + 0.5) / 1000, 1)

def merged(pick, which):
    h = {}
    for r in reports:
        for e in r.get("event_detail", []):
            if not pick(e):
                continue
            for w in which:
                for b, c in e[w]:
                    h[b] = h.get(b, 0) + c
    return h

# Per event across processes: send time, last receive anywhere.
ev = {}
for r in reports:
    for e in r.get("event_detail", []):
        d = ev.setdefault(e["g"], {"sent": 0, "last": 0, "first": 0})
        d["sent"] = d["sent"] or e["sent_ns"]
        d["last"] = max(d["last"], e["last_recv_ns"])
        if e["first_recv_ns"]:
            d["first"] = min(d["first"] or e["first_recv_ns"], e["first_recv_ns"])
before = lambda e: kill_ns == 0 or (e["sent_ns"] and e["sent_ns"] < kill_ns)
to_all = sorted((d["last"] - d["sent"]) / 1e6 for g, d in ev.items()
                if d["sent"] and (kill_ns == 0 or d["sent"] < kill_ns))
def q(v, p):
    return round(v[min(len(v) - 1, max(0, math.ceil(p * len(v)) - 1))], 1) if v else None

j = {"name": "scale", "smoke": smoke == "1", "nodes": nodes,
     "subscribers": subs, "load_generators": gens, "events": events,
     "rate": float(rate),
     "redis": "cluster" if redis_flag == "--redis-cluster" else "single",
     "redis_cpu_servers": int(redis_servers),
     "connect_s": round(float(connect_s), 2),
     "subscribers_per_node": active}
j["subscribers_ready"] = sum(r.get("subscribers_ready", 0) for r in reports)
for k in ("lost", "duplicated", "reordered", "misrouted", "gaps",
          "subscribers_failed", "subscribers_shed", "deliveries_expected",
          "deliveries_received", "subscribers_complete"):
    j[k] = sum(r.get(k, 0) for r in reports)
j["events_acked"] = pub.get("events_acked")
j["publish_errors"] = pub.get("publish_errors")
# Broadcast to all, events published before the kill.
j["time_to_all_ms_p50"] = q(to_all, 0.5)
j["time_to_all_ms_p99"] = q(to_all, 0.99)
j["time_to_all_ms_max"] = q(to_all, 1.0)
h = merged(before, ("stayed", "moved"))
j["delivery_ms_p50"] = pct(h, 0.5)
j["delivery_ms_p99"] = pct(h, 0.99)
# Memory: RSS delta per subscriber, per node, once all were connected.
per = [round((b - a) * 1024 / n) if n else None
       for a, b, n in zip(rss0, rss1, active)]
j["rss_per_subscriber_bytes"] = per
j["rss_connected_kb"] = rss1
j["rss_after_kb"] = rss2
def cpus(text):
    return [float(x) for x in text.split(",")]
each = [b - a for a, b in zip(cpus(cpu0), cpus(cpu1))]
cpu = sum(each)
j["redis_cpu_s"] = round(cpu, 3)
j["redis_cpu_s_per_server"] = [round(c, 3) for c in each]
# The nodes' CPU over the publishing (10 ms ticks), per delivery received.
ncpu = float(ncpu1) - float(ncpu0)
j["nodes_cpu_s"] = round(ncpu, 2)
j["nodes_cpu_us_per_delivery"] = (
    round(ncpu / j["deliveries_received"] * 1e6, 2)
    if j["deliveries_received"] else None)
window = (int(pub_end_ns) - int(pub_ns)) / 1e9
idle = (sum(cpus(idle1)) - sum(cpus(idle0))) / 2
j["publish_window_s"] = round(window, 2)
j["redis_idle_cpu_ms_per_s"] = round(idle * 1e3, 2)
j["redis_cpu_net_ms_per_event"] = (
    round(max(0.0, cpu - idle * window) / events * 1e3, 3) if events else None)
if kill_ns:
    closes = [r["first_close_ns"] for r in reports if r.get("first_close_ns")]
    ends = [r["last_reconnect_ns"] for r in reports if r.get("last_reconnect_ns")]
    storm_end = max(ends) if ends else 0
    j["killed_node_subscribers"] = active[0]
    j["disconnects"] = sum(r.get("disconnects", 0) for r in reports)
    j["reconnects"] = sum(r.get("reconnects", 0) for r in reports)
    j["reconnect_failures"] = sum(r.get("reconnect_failures", 0) for r in reports)
    j["reconnect_ms_p99_max"] = max(r.get("reconnect_ms_p99", 0) for r in reports)
    j["storm_s"] = round((storm_end - kill_ns) / 1e9, 2) if storm_end else None
    j["storm_first_close_after_kill_ms"] = (
        round((min(closes) - kill_ns) / 1e6, 1) if closes else None)
    # The other nodes' deliveries while the storm lasted: events sent in
    # [kill, storm end], to subscribers that never lost their stream.
    during = lambda e: e["sent_ns"] and kill_ns <= e["sent_ns"] <= storm_end
    hs = merged(during, ("stayed",))
    j["storm_events"] = sum(1 for d in ev.values()
                            if d["sent"] and kill_ns <= d["sent"] <= storm_end)
    j["storm_stayed_delivery_ms_p50"] = pct(hs, 0.5)
    j["storm_stayed_delivery_ms_p99"] = pct(hs, 0.99)
    hm = merged(lambda e: e["sent_ns"] and e["sent_ns"] >= kill_ns, ("moved",))
    j["moved_delivery_ms_p99"] = pct(hm, 0.99)
    # Where the subscribers were at the end (the load generators' view).
    after = [0] * nodes
    for r in reports:
        for i, n in enumerate(r.get("subscribers_per_node", [])):
            after[i] += n
    j["subscribers_per_node_after"] = after
errors = [r["error"] for r in reports if r.get("error")]
if pub.get("error"):
    errors.append("publisher: " + pub["error"])
if int(pub_rc) != 0 and not pub.get("error"):
    errors.append("publisher exit %s" % pub_rc)
if errors:
    j["errors"] = errors
print(json.dumps(j))
bad = [k for k in ("lost", "duplicated", "reordered", "misrouted", "gaps",
                   "subscribers_failed", "publish_errors") if j.get(k)]
if j["subscribers_complete"] != subs:
    bad.append("subscribers_complete %d of %d" % (j["subscribers_complete"], subs))
if j["events_acked"] != events:
    bad.append("events_acked %s of %d" % (j["events_acked"], events))
if errors or bad:
    print("scale: failed: " + ", ".join(bad + errors), file=sys.stderr)
    sys.exit(1)
PY
