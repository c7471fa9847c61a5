#!/usr/bin/env bash
# dead_peer_test.sh: evsse-alerts against subscribers on a broken network, in
# network namespaces this script creates and always removes.
#
#   bash tests/netns/dead_peer_test.sh EVSSE_ALERTS EVSSE_TAIL [--long|--bench]
#
# Topology (addresses from 198.18.0.0/15, which exist only in these
# namespaces; no traffic leaves them):
#   evsse-PID-srv  s0 198.18.0.1/30  -- r0 198.18.0.2/30  evsse-PID-rtr
#   evsse-PID-rtr  r1 198.18.1.1/30  -- c0 198.18.1.2/30  evsse-PID-cli
# The router forwards; `iptables -j DROP` there black-holes the subscriber
# (no FIN, no RST reaches either side).
#
# Cases (default: the short ones, about 30 s in all):
#  1. black hole, heartbeats only (heartbeat 2s, dead_peer_timeout 3s): the
#     server frees the stream within heartbeat + dead_peer_timeout + 4 s
#     (the slack covers retransmission timing and a loaded CI machine; it
#     is about 0.5 s on an idle one).
#  2. black hole while events flow (5 per second, dead_peer_timeout 3s):
#     freed within dead_peer_timeout + 4 s, long before write_stall_timeout
#     (30 s, which starts only once the send buffer is full) could.
#  3. lossy link: evsse-tail through a relay in the router (delay_relay.py:
#     75 ms each way, so 150 ms round trip, and it cuts each connection
#     after 1.5-3.5 s) with real 3 % packet loss in each direction on the
#     client's hop (iptables statistic); every one of N events arrives
#     exactly once and in order, resuming with Last-Event-ID after each cut.
# --long (about 2.5 minutes): case 3 with 600 events, and case 1 at the
# defaults (heartbeat 15s, dead_peer_timeout 45s: bound 66 s), also with one
# event per second (bound 52 s). --bench: only prints the dead-peer
# bound at the defaults and at the tightest setting (dead_peer_timeout 1s,
# heartbeat 1s), three runs each (bench/README.md).
#
# Needs root (ip netns, veth, iptables), python3 and curl. Without root it
# skips (exit 77) unless CI=true, where it fails.
set -uo pipefail

ALERTS=${1:?usage: dead_peer_test.sh EVSSE_ALERTS EVSSE_TAIL [--long|--bench]}
TAIL=${2:?usage: dead_peer_test.sh EVSSE_ALERTS EVSSE_TAIL [--long|--bench]}
MODE=${3:-short}
CASE=("${@:4}")
HERE=$(cd "$(dirname "$0")" && pwd)

skip() {
  if [[ ${CI:-} == true ]]; then
    echo "FAIL (CI=true, so not skipped): $*" >&2
    exit 1
  fi
  echo "SKIP: $*" >&2
  exit 77
}
[[ $(id -u) -eq 0 ]] || skip "needs root for ip netns, veth and iptables"
for tool in ip iptables python3 curl; do
  command -v "$tool" >/dev/null || skip "$tool not found"
done

SRV=evsse-$$-srv RTR=evsse-$$-rtr CLI=evsse-$$-cli
WORK=$(mktemp -d /tmp/evsse-netns.XXXXXX)
PIDS=()
FAILED=0
TOKEN=netns-test-token

cleanup() {
  local pid ns
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  for ns in "$SRV" "$RTR" "$CLI"; do
    # Anything still running in our own namespaces was started by us.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

ip netns add "$SRV" 2>/dev/null || skip "cannot create a network namespace"
ip netns add "$RTR" && ip netns add "$CLI" || exit 1
# veth pairs are created inside the namespaces: no interface ever appears in
# the host's namespace.
ip -n "$RTR" link add r0 type veth peer name s0 netns "$SRV" || exit 1
ip -n "$RTR" link add r1 type veth peer name c0 netns "$CLI" || exit 1
ip -n "$SRV" addr add 198.18.0.1/30 dev s0
ip -n "$RTR" addr add 198.18.0.2/30 dev r0
ip -n "$RTR" addr add 198.18.1.1/30 dev r1
ip -n "$CLI" addr add 198.18.1.2/30 dev c0
for pair in "$SRV s0" "$RTR r0" "$RTR r1" "$CLI c0"; do
  set -- $pair
  ip -n "$1" link set "$2" up
done
for ns in "$SRV" "$RTR" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" route add default via 198.18.0.2
ip -n "$CLI" route add default via 198.18.1.1
in_ns "$RTR" sysctl -qw net.ipv4.ip_forward=1 || exit 1

now_ms() { date +%s%3N; }

# start_server HEARTBEAT DEAD_PEER_TIMEOUT: evsse-alerts in the server
# namespace on 198.18.0.1:8080.
start_server() {
  cat >"$WORK/alerts.conf" <<EOF
log_level warning;
shutdown_timeout 1s;
server {
    listen 198.18.0.1:8080;
    endpoint subscribe /alerts/stream {
        heartbeat $1;
        dead_peer_timeout $2;
        retry 300ms;
        retry_jitter 200ms;
    }
    endpoint metrics /metrics { }
}
EOF
  # Background processes start with `ip netns exec` itself, not through
  # in_ns: $! is then the program's own PID (ip execs it), so stop() reaches
  # it; a function would put a subshell in between.
  ALERTS_TOKEN=$TOKEN ip netns exec "$SRV" "$ALERTS" \
    --config "$WORK/alerts.conf" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    metric evsse_connections_active >/dev/null && return 0
    sleep 0.1
  done
  echo "FAIL: evsse-alerts did not start:" >&2
  cat "$WORK/server.log" >&2
  return 1
}

stop() {
  kill "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# metric NAME prints the value of a metric of the server (from its own
# namespace).
metric() {
  in_ns "$SRV" curl -sf --max-time 2 http://198.18.0.1:8080/metrics |
    awk -v m="$1" '$1 == m { print $2; found = 1 } END { exit !found }'
}

wait_active() {  # wait_active N TIMEOUT_S
  local deadline=$(($(now_ms) + $2 * 1000))
  while (($(now_ms) < deadline)); do
    [[ $(metric evsse_connections_active) == "$1" ]] && return 0
    sleep 0.05
  done
  return 1
}

publish() {  # publish TITLE
  in_ns "$SRV" curl -sf --max-time 5 -o /dev/null \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"severity\":\"info\",\"title\":\"$1\",\"body\":\"-\",\"team\":\"ops\"}" \
    http://198.18.0.1:8080/alerts
}

# -w: the xtables lock is one file for every namespace of the machine, and
# other tests may hold it; without -w iptables fails at once.
ipt() { in_ns "$RTR" iptables -w 10 "$@"; }
diagnose() {
  {
    echo "--- router FORWARD chain"
    ipt -L FORWARD -v -n
    echo "--- server sockets"
    in_ns "$SRV" ss -tnoi
    echo "--- client sockets"
    in_ns "$CLI" ss -tno
    echo "--- server log"
    tail -5 "$WORK/server.log"
    echo "--- curl"
    tail -c 300 "$WORK/curl.out"
  } >&2
}
blackhole() { ipt -I FORWARD 1 -j DROP; }
unblackhole() { ipt -F FORWARD; }

# dead_peer_case NAME HEARTBEAT DEAD_PEER BOUND_MS EVENTS_PER_S: prints the
# time from the black hole to the server freeing the stream.
dead_peer_case() {
  local name=$1 hb=$2 dp=$3 bound=$4 rate=$5
  start_server "$hb" "$dp" || return 1
  ip netns exec "$CLI" curl -sN --max-time 600 \
    'http://198.18.0.1:8080/alerts/stream?topic=ops' >"$WORK/curl.out" 2>&1 &
  local curl_pid=$!
  PIDS+=("$curl_pid")
  if ! wait_active 1 10; then
    echo "FAIL [$name]: the subscriber did not connect" >&2
    diagnose
    stop "$curl_pid"
    stop "$SERVER_PID"
    return 1
  fi
  local pub_pid=""
  if ((rate > 0)); then
    (for ((i = 0; i < 100000; i++)); do
      publish "tick $i"
      sleep "$(awk -v r="$rate" 'BEGIN { print 1 / r }')"
    done) &
    pub_pid=$!
    PIDS+=("$pub_pid")
    sleep 1
  fi
  if ! blackhole; then
    echo "FAIL [$name]: iptables could not insert the DROP rule" >&2
    return 1
  fi
  local t0 t1 limit
  t0=$(now_ms)
  limit=$((bound + 30000))
  while :; do
    t1=$(now_ms)
    [[ $(metric evsse_connections_active) == 0 ]] && break
    if ((t1 - t0 > limit)); then
      t1=""
      break
    fi
    sleep 0.05
  done
  [[ -n $pub_pid ]] && stop "$pub_pid"
  unblackhole
  stop "$curl_pid"
  stop "$SERVER_PID"
  if [[ -z $t1 ]]; then
    echo "FAIL [$name]: the stream was not freed within $((limit / 1000)) s" >&2
    diagnose
    return 1
  fi
  local took=$((t1 - t0))
  echo "dead peer [$name]: heartbeat $hb, dead_peer_timeout $dp: freed after $took ms (bound $bound ms)"
  if ((took > bound)); then
    echo "FAIL [$name]: freed after $took ms, over the bound of $bound ms" >&2
    return 1
  fi
  return 0
}

# loss_case N: N events through the lossy, delaying, cutting relay.
loss_case() {
  local n=$1 seed=$$
  start_server 1s 5s || return 1
  ipt -A INPUT -i r1 -m statistic --mode random --probability 0.03 -j DROP &&
    ipt -A OUTPUT -o r1 -m statistic --mode random --probability 0.03 \
      -j DROP || return 1
  ip netns exec "$RTR" python3 -u "$HERE/delay_relay.py" 198.18.1.1:8080 \
    198.18.0.1:8080 75 1.5 3.5 "$seed" >"$WORK/relay.log" 2>&1 &
  PIDS+=($!)
  local i
  for ((i = 0; i < 50; i++)); do
    grep -q ready "$WORK/relay.log" && break
    sleep 0.1
  done
  ip netns exec "$CLI" "$TAIL" --json --idle-timeout 4000 \
    'http://198.18.1.1:8080/alerts/stream?topic=ops' >"$WORK/tail.out" \
    2>"$WORK/tail.err" &
  local tail_pid=$!
  PIDS+=("$tail_pid")
  if ! wait_active 1 15; then
    echo "FAIL [loss]: evsse-tail did not connect through the relay" >&2
    cat "$WORK/relay.log" "$WORK/tail.err" >&2
    return 1
  fi
  local t0
  t0=$(now_ms)
  for ((i = 1; i <= n; i++)); do
    publish "n=$i" || echo "publish $i failed" >&2
    sleep 0.04
  done
  local deadline=$(($(now_ms) + 30000)) got=0
  while (($(now_ms) < deadline)); do
    got=$(grep -c '"type"' "$WORK/tail.out")
    ((got >= n)) && break
    sleep 0.2
  done
  sleep 1  # a duplicate would come right after the last event
  stop "$tail_pid"
  local cuts drops
  cuts=$(grep -c '^cut' "$WORK/relay.log")
  drops=$(ipt -L -v -x -n | awk '/statistic/ { s += $1 } END { print s + 0 }')
  python3 - "$WORK/tail.out" "$n" <<'EOF'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
titles = []
for line in open(path):
    e = json.loads(line)
    if "type" in e and e["type"] != "gap":
        titles.append(json.loads(e["data"])["title"])
    elif e.get("type") == "gap":
        print("a gap event: events were lost: %s" % e["data"])
want = ["n=%d" % i for i in range(1, n + 1)]
if titles != want:
    dup = len(titles) - len(set(titles))
    missing = sorted(set(want) - set(titles), key=lambda t: int(t[2:]))
    print("got %d events, %d duplicates, missing %s" %
          (len(titles), dup, missing[:10]))
    sys.exit(1)
EOF
  local ok=$?
  echo "loss: $n events through 150 ms RTT + 3 % loss each way, $cuts cuts, $drops packets dropped, $(($(now_ms) - t0)) ms: $( ((ok == 0)) && echo 'each exactly once, in order' || echo FAILED)"
  stop "$SERVER_PID"
  ipt -F INPUT
  ipt -F OUTPUT
  if ((ok != 0)); then
    echo "--- tail stderr" >&2
    tail -20 "$WORK/tail.err" >&2
    return 1
  fi
  return 0
}

case "$MODE" in
  short)
    dead_peer_case "heartbeats only" 2s 3s 9000 0 || FAILED=1
    dead_peer_case "5 events/s" 15s 3s 7000 5 || FAILED=1
    loss_case 120 || FAILED=1
    ;;
  --long)
    dead_peer_case "defaults" 15s 45s 66000 0 || FAILED=1
    dead_peer_case "1 event/s, defaults" 15s 45s 52000 1 || FAILED=1
    loss_case 600 || FAILED=1
    ;;
  --bench)
    for run in 1 2 3; do
      dead_peer_case "defaults, run $run" 15s 45s 66000 0 || FAILED=1
    done
    for run in 1 2 3; do
      dead_peer_case "1 event/s, defaults, run $run" 15s 45s 52000 1 || FAILED=1
    done
    for run in 1 2 3; do
      dead_peer_case "tightest, run $run" 1s 1s 6000 0 || FAILED=1
    done
    ;;
  --case)  # --case HEARTBEAT DEAD_PEER_TIMEOUT BOUND_MS EVENTS_PER_S
    dead_peer_case "custom" "${CASE[@]}" || FAILED=1
    ;;
  *)
    echo "unknown mode $MODE (use --long, --bench or --case)" >&2
    exit 2
    ;;
esac
((FAILED == 0)) && echo "PASS" || echo "FAIL"
exit "$FAILED"
