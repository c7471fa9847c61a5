#!/usr/bin/env bash
# loadgen_tls_check.sh LOADGEN NODE: evsse-loadgen --tls against
# evsse-bench-node --tls-cert/--tls-key (the certificates of
# tests/support/make_test_certs.sh, in a temp dir):
#   - with --cacert ca.pem every event reaches every subscriber over TLS,
#     published over TLS too;
#   - a wrong --tls-name, or no --cacert (the system store does not know the
#     test CA), fails every subscriber's handshake and names the reason;
#   - the plain path still works against a plain node.
# Every process it starts is stopped by its pid. A few seconds.
set -euo pipefail

LOADGEN=${1:?usage: loadgen_tls_check.sh LOADGEN NODE}
NODE=${2:?usage: loadgen_tls_check.sh LOADGEN NODE}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/evsse-loadgen-tls.XXXXXX")
NODE_PID=""
cleanup() {
  if [[ -n $NODE_PID ]]; then
    kill "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "loadgen_tls_check: FAIL: $*" >&2
  exit 1
}

bash "$HERE/../tests/support/make_test_certs.sh" "$WORK/certs"

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

start_node() { # [TLS ARGS...]
  PORT=$(free_port)
  "$NODE" --port "$PORT" --bind 127.0.0.1 "$@" 2>>"$WORK/node.log" &
  NODE_PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    kill -0 "$NODE_PID" 2>/dev/null || fail "the node exited: $(cat "$WORK/node.log")"
    sleep 0.05
  done
  fail "the node did not listen on $PORT"
}

stop_node() {
  kill "$NODE_PID"
  wait "$NODE_PID" 2>/dev/null || true
  NODE_PID=""
}

# expect JSON PYTHON_CONDITION WHAT: the condition holds for the line `j`.
expect() {
  python3 - "$1" "$2" "$3" <<'PY' || exit 1
import json, sys
line, cond, what = sys.argv[1:4]
j = json.loads(line)
if not eval(cond, {"j": j}):
    print("loadgen_tls_check: FAIL: %s: %s" % (what, line), file=sys.stderr)
    sys.exit(1)
print("loadgen_tls_check: ok: %s" % what)
PY
}

start_node --tls-cert "$WORK/certs/server.pem" --tls-key "$WORK/certs/server.key"
out=$("$LOADGEN" --port "$PORT" --tls --cacert "$WORK/certs/ca.pem" \
  --subscribers 50 --topics 2 --events 200 --publishers 2 --timeout-s 30)
expect "$out" 'j["tls"] and "error" not in j and j["subscribers_ready"] == 50 and j["deliveries_expected"] == 5000 and j["deliveries_received"] == 5000 and j["lost"] == 0 and j["duplicated"] == 0 and j["reordered"] == 0' \
  "TLS: 200 events to 50 subscribers, none lost"
out=$("$LOADGEN" --port "$PORT" --tls --cacert "$WORK/certs/ca.pem" \
  --tls-name localhost --idle-only --subscribers 10 --idle-wait-s 0.1)
expect "$out" 'j["subscribers_ready"] == 10 and j["subscribers_failed"] == 0' \
  "TLS: --tls-name localhost matches the certificate's DNS name"
out=$("$LOADGEN" --port "$PORT" --tls --cacert "$WORK/certs/ca.pem" \
  --tls-name wrong.example --idle-only --subscribers 10 --idle-wait-s 0.1)
expect "$out" 'j["subscribers_ready"] == 0 and j["subscribers_failed"] == 10 and "hostname mismatch" in j["first_tls_error"]' \
  "TLS: a wrong name is refused"
out=$("$LOADGEN" --port "$PORT" --tls --idle-only --subscribers 10 \
  --idle-wait-s 0.1)
expect "$out" 'j["subscribers_ready"] == 0 and j["subscribers_failed"] == 10 and "unable to get local issuer" in j["first_tls_error"]' \
  "TLS: an unknown CA is refused"
set +e
out=$("$LOADGEN" --port "$PORT" --tls --cacert "$WORK/certs/ca.pem" \
  --tls-name wrong.example --subscribers 10 --events 10 --timeout-s 10)
rc=$?
set -e
[[ $rc == 3 ]] || fail "a refused publisher handshake exits 3, not $rc"
expect "$out" '"publisher TLS handshake: certificate verification failed: hostname mismatch" in j["error"]' \
  "TLS: the publisher refuses a wrong name too"
stop_node

start_node
out=$("$LOADGEN" --port "$PORT" --subscribers 50 --events 200 --timeout-s 30)
expect "$out" 'not j["tls"] and "error" not in j and j["deliveries_received"] == 10000 and j["lost"] == 0' \
  "plain: 200 events to 50 subscribers, none lost"
stop_node
