#!/usr/bin/env bash
# Network faults between an evsse node and its Redis, in private network
# namespaces (issue 15): a node whose Redis connection is cut without any
# FIN or RST must notice within seconds even when it publishes nothing,
# fail its publishes fast, keep its subscribers, and deliver every event
# published meanwhile once the cut heals (or the gap event when Redis no
# longer holds them), never a silent hole.
#
#   sudo bash tests/netns/redis_cut_test.sh BUILD_DIR SCENARIO
#
# SCENARIO: firewall (an idle link through a connection-tracking firewall
# that forgets idle flows), cut-idle (a cut, nothing published on the
# cut-off node), cut-publishing (the same, publishing on it), retries (a
# partition longer than the kernel's retransmission limit, tcp_retries2=3 in
# the node and redis namespaces), gap (the stream trimmed past the cut), kill (Redis
# closes A's subscriber connection), pause (redis-server SIGSTOPped).
# EVSSE_NETNS_LONG=1: the long versions (60 s cuts, a 30 s pause, a 20 s
# firewall idle timeout with 45 s of silence), see tests/RELIABILITY.md.
# EVSSE_NETNS_A_PROBE_INTERVAL=0: node A without probes (a control run).
#
# Topology, all of it private (198.18.0.0/15, the benchmark range, exists
# only inside these namespaces; nothing is sent anywhere else):
#
#   node ns, 198.18.0.2        router ns                redis ns, 198.18.1.2
#   evsse-alerts A  ─veth─  198.18.0.1 | 198.18.1.1  ─veth─  redis-server
#   evsse-tail              (forwards; faults)               evsse-alerts B
#
# A is the node under test; B publishes during the cut, as another node would.
# Faults are iptables rules in the router namespace: DROP both ways for a cut
# (no RST), or a conntrack firewall with a short idle timeout that answers
# packets of forgotten flows with a RST.
#
# Needs root (ip netns, iptables): otherwise it exits 77 (ctest: skipped),
# or fails under CI=true. It removes every namespace, process and file it
# made on any exit (trap), and kills only the pids it started (each started
# as `ip netns exec NS CMD &`, which execs CMD: $! is CMD's own pid).
set -uo pipefail

SKIP=77
build=${1:?usage: redis_cut_test.sh BUILD_DIR SCENARIO}
scenario=${2:?usage: redis_cut_test.sh BUILD_DIR SCENARIO}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
long=${EVSSE_NETNS_LONG:-0}

skip() {
  echo "SKIP: $*"
  if [[ ${CI:-} == true ]]; then
    echo "FAIL: CI=true: the network-namespace tests must run in CI" >&2
    exit 1
  fi
  exit "$SKIP"
}

((EUID == 0)) || skip "needs root (ip netns, iptables)"
for tool in ip iptables redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done
alerts=${EVSSE_ALERTS_BIN:-$build/examples/evsse-alerts}
tail_bin=${EVSSE_TAIL_BIN:-$build/examples/evsse-tail}
[[ -x $alerts && -x $tail_bin ]] || skip "build evsse-alerts and evsse-tail in $build"

tag=evsse-$$
ns_node=$tag-node
ns_rtr=$tag-rtr
ns_redis=$tag-redis
work=$(mktemp -d "${TMPDIR:-/tmp}/evsse-netns.XXXXXX")
pids=()

# running PID...: whether any of them still runs (a zombie does not).
running() {
  local pid state
  for pid in "$@"; do
    state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)
    [[ -n $state && $state != Z ]] && return 0
  done
  return 1
}

cleanup() {
  local pid _
  # A paused Redis must run again to act on SIGTERM.
  [[ -n ${redis_pid:-} ]] && kill -CONT "$redis_pid" 2>/dev/null
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  # At most 5 s for them to go, then SIGKILL: never leave one behind (a
  # process keeps its namespace alive after `ip netns del`).
  for _ in $(seq 50); do
    running "${pids[@]}" || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  # Deleting a namespace removes its interfaces and its iptables rules.
  for ns in "$ns_node" "$ns_rtr" "$ns_redis"; do
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s [%s] %s\n' "$(date -u +%T.%3N)" "$scenario" "$*"; }
fail() {
  log "FAIL: $*"
  for f in "$work"/*.log; do
    [[ -f $f ]] || continue
    echo "--- $(basename "$f") (last 30 lines, without /metrics requests)"
    grep -v 'path=/metrics' "$f" | tail -n 30
  done
  exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# ---- Topology ---------------------------------------------------------------

log "namespaces $ns_node $ns_rtr $ns_redis, files in $work"
# Root without CAP_SYS_ADMIN (an unprivileged container) cannot: skip then.
ip netns add "$ns_node" || skip "ip netns add failed (no privilege for namespaces?)"
ip netns add "$ns_rtr" || fail "ip netns add"
ip netns add "$ns_redis" || fail "ip netns add"
# The veth pairs are made inside the namespaces: the host's own namespace
# never sees them.
ip -n "$ns_node" link add n0 type veth peer name r0 netns "$ns_rtr" || fail "veth"
ip -n "$ns_redis" link add s0 type veth peer name r1 netns "$ns_rtr" || fail "veth"
for ns in "$ns_node" "$ns_rtr" "$ns_redis"; do ip -n "$ns" link set lo up; done
ip -n "$ns_node" addr add 198.18.0.2/24 dev n0
ip -n "$ns_node" link set n0 up
ip -n "$ns_node" route add default via 198.18.0.1
ip -n "$ns_rtr" addr add 198.18.0.1/24 dev r0
ip -n "$ns_rtr" addr add 198.18.1.1/24 dev r1
ip -n "$ns_rtr" link set r0 up
ip -n "$ns_rtr" link set r1 up
ip -n "$ns_redis" addr add 198.18.1.2/24 dev s0
ip -n "$ns_redis" link set s0 up
ip -n "$ns_redis" route add default via 198.18.1.1
in_ns "$ns_rtr" sysctl -qw net.ipv4.ip_forward=1 || fail "ip_forward"
if [[ $scenario == retries ]]; then
  # About 3 s of retransmissions instead of ~15 min: a partition of a few
  # seconds then outlives every connection that had bytes in flight, on
  # both sides (Redis too drops the node's old connections).
  for ns in "$ns_node" "$ns_redis"; do
    in_ns "$ns" sysctl -qw net.ipv4.tcp_retries2=3 || fail "tcp_retries2"
  done
fi

# ---- Faults (router namespace only) ----------------------------------------

# iptables -w: wait for the xtables lock (other iptables users on this
# machine, e.g. other namespaces' tests, hold it for a moment); a rule that
# was not added or removed fails the test instead of skewing it.
ipt() { in_ns "$ns_rtr" iptables -w 10 "$@"; }
cut() {
  ipt -I FORWARD 1 -j DROP || fail "iptables: cannot add the cut"
}
heal() {
  ipt -D FORWARD -j DROP || fail "iptables: cannot remove the cut"
}
# firewall: forwards only flows it tracks; a flow idle past `idle` seconds
# is forgotten and its next packet answered with a RST, as a cloud NAT does.
# Loose pick-up is off, so a forgotten flow is not silently re-learnt.
firewall() {
  local idle=$1
  if ! { ipt -A FORWARD -p tcp -m conntrack --ctstate ESTABLISHED -j ACCEPT &&
    ipt -A FORWARD -p tcp --syn -m conntrack --ctstate NEW -j ACCEPT &&
    ipt -A FORWARD -p icmp -j ACCEPT &&
    ipt -A FORWARD -p tcp -j REJECT --reject-with tcp-reset; }; then
    fail "iptables: cannot set up the firewall"
  fi
  in_ns "$ns_rtr" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0 ||
    fail "nf_conntrack_tcp_loose"
  in_ns "$ns_rtr" sysctl -qw \
    net.netfilter.nf_conntrack_tcp_timeout_established="$idle" ||
    fail "nf_conntrack_tcp_timeout_established"
}

fw_idle=5 fw_quiet=8
((long)) && fw_idle=20 fw_quiet=45
# The firewall is in place before any connection: flows it never saw open
# would be refused from the first packet.
[[ $scenario == firewall ]] && firewall "$fw_idle"

# ---- Processes --------------------------------------------------------------

mkdir -p "$work/redis"
ip netns exec "$ns_redis" redis-server --port 6379 --bind 198.18.1.2 127.0.0.1 \
  --protected-mode no --save '' --appendonly no --dir "$work/redis" \
  --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=($!)
rcli() { in_ns "$ns_redis" redis-cli -h 127.0.0.1 -p 6379 "$@"; }
for _ in $(seq 50); do
  [[ $(rcli PING 2>/dev/null) == PONG ]] && break
  sleep 0.1
done
[[ $(rcli PING 2>/dev/null) == PONG ]] || fail "redis-server did not start"
[[ $(in_ns "$ns_node" redis-cli -h 198.18.1.2 -p 6379 PING 2>&1) == PONG ]] ||
  fail "no route from the node namespace to Redis"

# Each node runs conf/alerts-redis.conf with its own listen and Redis
# address (the shipped defaults otherwise: probes every 1 s, 3 s timeout).
make_conf() {
  local redis=$1 out=$2
  sed -e "s|^\( *\)address .*;|\1address $redis;|" \
    "$root/conf/alerts-redis.conf" >"$out"
}
make_conf 198.18.1.2:6379 "$work/a.conf"
# EVSSE_NETNS_A_PROBE_INTERVAL=0 turns node A's probes off: the control run
# that shows what the probes fix (expected to fail), tests/RELIABILITY.md.
if [[ -n ${EVSSE_NETNS_A_PROBE_INTERVAL:-} ]]; then
  sed -i "s|^\( *\)address .*;|&\n\1probe_interval $EVSSE_NETNS_A_PROBE_INTERVAL;|" \
    "$work/a.conf"
fi
make_conf 127.0.0.1:6379 "$work/b.conf"
export ALERTS_TOKEN=netns-test-token-0123456789
ip netns exec "$ns_node" "$alerts" --config "$work/a.conf" --listen 127.0.0.1:8080 \
  >"$work/node-a.log" 2>&1 &
pids+=($!)
ip netns exec "$ns_redis" "$alerts" --config "$work/b.conf" --listen 127.0.0.1:8081 \
  >"$work/node-b.log" 2>&1 &
pids+=($!)

metric() {  # metric NS PORT NAME
  in_ns "$1" curl -s -m 2 "http://127.0.0.1:$2/metrics" |
    awk -v n="$3" '$1 == n { print $2 }'
}
up_a() { metric "$ns_node" 8080 evsse_redis_up; }
wait_up() {  # wait_up NS PORT VALUE SECONDS
  local deadline=$(($(date +%s) + $4))
  while (($(date +%s) < deadline)); do
    [[ $(metric "$1" "$2" evsse_redis_up) == "$3" ]] && return 0
    sleep 0.1
  done
  return 1
}
wait_up "$ns_node" 8080 1 15 || fail "node A never reported evsse_redis_up 1"
wait_up "$ns_redis" 8081 1 15 || fail "node B never reported evsse_redis_up 1"

ip netns exec "$ns_node" "$tail_bin" --json "http://127.0.0.1:8080/alerts/stream?topic=ops" \
  >"$work/events.jsonl" 2>"$work/tail.log" &
pids+=($!)
for _ in $(seq 100); do
  grep -q connected "$work/tail.log" 2>/dev/null && break
  sleep 0.1
done
grep -q connected "$work/tail.log" || fail "evsse-tail did not connect"
# The subscriber's topic is synced once A is up again with it watched.
wait_up "$ns_node" 8080 1 15 || fail "node A did not sync the topic"

seq_no=0
# publish NS PORT: one alert titled e<N>; prints "<N> <code> <seconds>".
publish() {
  local ns=$1 port=$2 start code n
  seq_no=$((seq_no + 1))
  n=$seq_no
  start=$(now)
  code=$(in_ns "$ns" curl -s -o /dev/null -w '%{http_code}' -m 20 \
    -H "Authorization: Bearer $ALERTS_TOKEN" -H 'Content-Type: application/json' \
    --data "{\"severity\":\"info\",\"team\":\"ops\",\"title\":\"e$n\",\"body\":\"b\"}" \
    "http://127.0.0.1:$port/alerts")
  echo "$n $code $(elapsed "$start")"
}
# publish_b COUNT: COUNT alerts through node B (which keeps its Redis).
publish_b() {
  local i
  for ((i = 0; i < $1; i++)); do publish "$ns_redis" 8081 >>"$work/published"; done
}
: >"$work/published"

# check_delivery: every alert B published with a 200 reached A's subscriber
# exactly once and in order, or a gap event came where it is missing.
check_delivery() {
  python3 - "$work/published" "$work/events.jsonl" "$1" <<'EOF' || fail "delivery check"
import json, sys
published, events, want_gap = sys.argv[1], sys.argv[2], sys.argv[3] == "gap"
acked = []
for line in open(published):
    n, code, _ = line.split()
    if code == "200":
        acked.append(int(n))
received = []  # alert numbers, and "gap"
for line in open(events):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("type") == "gap":
        received.append("gap")
        continue
    try:
        title = json.loads(e.get("data", ""))["title"]
    except (ValueError, KeyError, TypeError):
        continue
    if title.startswith("e"):
        received.append(int(title[1:]))
numbers = [r for r in received if r != "gap"]
problems = []
if len(numbers) != len(set(numbers)):
    problems.append("duplicates: %s" % sorted(n for n in set(numbers) if numbers.count(n) > 1))
if numbers != sorted(numbers):
    problems.append("out of order")
pos = {n: i for i, n in enumerate(received) if n != "gap"}
silent = []
for k, n in enumerate(acked):
    if n in pos:
        continue
    before = max([pos[m] for m in acked[:k] if m in pos], default=-1)
    after = min([pos[m] for m in acked[k + 1:] if m in pos], default=len(received))
    if "gap" not in received[before + 1:after]:
        silent.append(n)
if silent:
    problems.append("silent hole: %d acknowledged alerts neither received nor "
                    "covered by a gap event: %s" % (len(silent), silent[:20]))
gaps = received.count("gap")
if want_gap and gaps == 0:
    problems.append("expected a gap event")
if not want_gap and gaps:
    problems.append("unexpected gap event")
missing = len([n for n in acked if n not in pos])
print("acknowledged %d, received %d, gap events %d, missing (covered by a gap) %d"
      % (len(acked), len(numbers), gaps, missing))
for p in problems:
    print("PROBLEM:", p)
sys.exit(1 if problems else 0)
EOF
}

# wait_delivered SECONDS: until A's subscriber has the last alert B
# published with a 200 (or the time is up; check_delivery then says what is
# missing).
wait_delivered() {
  local deadline=$(($(date +%s) + $1)) last
  last=$(awk '$2 == 200 { n = $1 } END { print n + 0 }' "$work/published")
  while (($(date +%s) < deadline)); do
    grep -qF "\\\"title\\\":\\\"e$last\\\"" "$work/events.jsonl" && return 0
    sleep 0.2
  done
  return 1
}

# log_time PATTERN: when A last logged a line matching PATTERN (epoch s).
log_time() {
  local ts
  ts=$(grep -- "$1" "$work/node-a.log" | tail -n 1 | sed -n 's/^ts=\([^ ]*\) .*/\1/p')
  [[ -n $ts ]] && date -d "$ts" +%s.%N
}
diff_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# watch_down START SECONDS: the seconds from START (a `now`) until A reports
# evsse_redis_up 0, waiting at most SECONDS.
watch_down() {
  local start=$1 deadline
  shift
  deadline=$(($(date +%s) + $1))
  while (($(date +%s) < deadline)); do
    if [[ $(up_a) == 0 ]]; then
      elapsed "$start"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# cut_scenario SECONDS PUBLISH_ON_A: cut A off for SECONDS while B publishes
# (and A, when asked); then heal and check that everything arrives.
cut_scenario() {
  local secs=$1 on_a=$2 start noticed heal_at healed line code took
  publish_b 5
  wait_delivered 10 || fail "alerts before the cut not delivered"
  log "cut (DROP both ways, no RST) for ${secs}s"
  cut
  start=$(now)
  if ((on_a)); then
    # A publish sent before A noticed can only time out (504, outcome
    # unknown); after that A refuses at once (503). Never a hang, never 200.
    line=$(publish "$ns_node" 8080)
    read -r _ code took <<<"$line"
    log "publish on A right after the cut: HTTP $code in ${took}s"
    [[ $code == 503 || $code == 504 ]] || fail "publish on A during the cut: HTTP $code"
  fi
  noticed=$(watch_down "$start" 20) || fail "A did not notice the cut within 20 s"
  log "A reported evsse_redis_up 0 ${noticed}s after the cut"
  echo "notice $noticed" >>"$work/figures"
  if ((on_a)); then
    line=$(publish "$ns_node" 8080)
    read -r _ code took <<<"$line"
    log "publish on A once it noticed: HTTP $code in ${took}s"
    [[ $code == 503 ]] || fail "publish on A while down: HTTP $code (want 503)"
    awk -v t="$took" 'BEGIN { exit !(t < 1.0) }' || fail "503 took ${took}s"
  fi
  # B keeps publishing through the cut.
  while awk -v s="$start" -v n="$(now)" -v d="$secs" 'BEGIN { exit !(n - s < d) }'; do
    publish_b 1
    if ((on_a)); then
      read -r _ code _ <<<"$(publish "$ns_node" 8080)"
      [[ $code == 503 || $code == 504 ]] || fail "publish on A during the cut: HTTP $code"
    fi
    sleep 0.3
  done
  [[ $(up_a) == 0 ]] || fail "A reported evsse_redis_up 1 during the cut"
  heal
  heal_at=$(now)
  log "healed after $(elapsed "$start")s; $(awk '$2 == 200' "$work/published" | wc -l) alerts acknowledged by B so far"
  wait_up "$ns_node" 8080 1 30 || fail "A did not come back within 30 s of the heal"
  healed=$(elapsed "$heal_at")
  wait_delivered 30 || true
  log "A back (evsse_redis_up 1) ${healed}s after the heal, every missed alert delivered $(elapsed "$heal_at")s after it"
  echo "recover $healed" >>"$work/figures"
  # The subscriber stayed connected: one connection for the whole test.
  [[ $(grep -c connected "$work/tail.log") == 1 ]] ||
    fail "the subscriber was disconnected"
  publish_b 3
  wait_delivered 10 || true
  check_delivery nogap
}

case $scenario in
  firewall)
    idle=$fw_idle quiet=$fw_quiet
    log "firewall: flows idle for ${idle}s are forgotten; ${quiet}s without alerts"
    publish_b 3
    wait_delivered 10 || fail "alerts before the quiet spell not delivered"
    sleep "$quiet"
    missed_before=$(metric "$ns_node" 8080 evsse_redis_probes_missed_total)
    [[ $(up_a) == 1 ]] || fail "A reported evsse_redis_up 0 after the quiet spell"
    publish_b 40
    wait_delivered 15 || true
    rst=$(ipt -L FORWARD -v -n -x | awk '/REJECT/ { print $1 }')
    reconnects=$(metric "$ns_node" 8080 evsse_redis_reconnects_total)
    log "the firewall answered $rst packets of forgotten flows with a RST;" \
      "A reconnected $reconnects times, missed $missed_before probes"
    check_delivery nogap
    # The probes keep both of A's flows busy, so the firewall never forgets
    # them: no RST, no reconnect, no probe missed. (Without probes, TCP
    # keepalive finds the forgotten flow after 15 s and A recovers by a
    # reconnect and a back-fill, as the control run shows.)
    [[ $rst == 0 && $reconnects == 0 && $missed_before == 0 ]] ||
      fail "A's flows were forgotten by the firewall"
    ;;
  cut-idle)
    secs=10
    ((long)) && secs=60
    cut_scenario "$secs" 0
    ;;
  cut-publishing)
    secs=10
    ((long)) && secs=60
    cut_scenario "$secs" 1
    ;;
  retries)
    secs=8
    ((long)) && secs=60
    cut_scenario "$secs" 1
    ;;
  gap)
    # While A is cut off, B publishes and the stream is trimmed past A's
    # last event (as MAXLEN does under load): A cannot back-fill, so its
    # subscriber must get the gap event, then everything after it.
    publish_b 5
    wait_delivered 10 || fail "alerts before the cut not delivered"
    cut
    watch_down "$(now)" 20 >/dev/null || fail "A did not notice the cut within 20 s"
    publish_b 10
    rcli XTRIM 'evsse:{ops}:s' MAXLEN 2 >/dev/null || fail "XTRIM"
    heal
    wait_up "$ns_node" 8080 1 30 || fail "A did not come back within 30 s of the heal"
    # The subscriber is ended (it missed events) and resumes with its
    # Last-Event-ID: the node answers with the gap event.
    for _ in $(seq 150); do
      grep -q '"type":"gap"' "$work/events.jsonl" && break
      sleep 0.1
    done
    publish_b 3
    wait_delivered 15 || true
    check_delivery gap
    ;;
  kill)
    # Redis closes A's subscriber connection (CLIENT KILL: a FIN reaches A
    # at once) while B publishes: A notices on the spot, reconnects and
    # back-fills.
    publish_b 5
    wait_delivered 10 || fail "alerts before the kill not delivered"
    start=$(now)
    rcli CLIENT KILL TYPE pubsub >/dev/null || fail "CLIENT KILL"
    publish_b 10
    wait_up "$ns_node" 8080 1 30 || fail "A did not come back"
    down_at=$(log_time 'link down')
    up_at=$(log_time 'backend link up')
    [[ -n $down_at && -n $up_at ]] || fail "A logged no link down and up"
    log "A logged the link down $(diff_s "$start" "$down_at")s after the kill," \
      "up again (synced) $(diff_s "$start" "$up_at")s after it"
    wait_delivered 15 || true
    check_delivery nogap
    ;;
  pause)
    # Redis hangs (SIGSTOP): its sockets stay open and silent. A, publishing
    # nothing, notices by its probe.
    publish_b 5
    wait_delivered 10 || fail "alerts before the pause not delivered"
    secs=8
    ((long)) && secs=30
    log "redis-server paused (SIGSTOP) for ${secs}s"
    start=$(now)
    kill -STOP "$redis_pid"
    noticed=$(watch_down "$start" 20) || fail "A did not notice the hang within 20 s"
    log "A reported evsse_redis_up 0 ${noticed}s after the pause"
    # A refuses publishes at once while down.
    read -r _ code took <<<"$(publish "$ns_node" 8080)"
    log "publish on A while Redis hangs: HTTP $code in ${took}s"
    [[ $code == 503 ]] || fail "publish on A while down: HTTP $code (want 503)"
    sleep $((secs - 4))
    kill -CONT "$redis_pid"
    heal_at=$(now)
    wait_up "$ns_node" 8080 1 30 || fail "A did not come back within 30 s of the resume"
    log "A back (evsse_redis_up 1) $(elapsed "$heal_at")s after the resume"
    wait_up "$ns_redis" 8081 1 30 || fail "B did not come back"
    publish_b 5
    wait_delivered 15 || true
    check_delivery nogap
    ;;
  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
log "PASS"
