#!/usr/bin/env bash
# curl over HTTPS against evhttp_hello, evhtp_hello (--tls-cert/--tls-key)
# and evsse-alerts (listen ... ssl;), with the certificates of
# tests/support/make_test_certs.sh: a stream verified with --cacert gets
# exactly the events published (over HTTPS too); a client that does not
# trust the test CA, a client limited to TLS 1.1 and a plain-HTTP client get
# no stream.
#
#   tls_curl_test.sh EVHTTP_HELLO EVHTP_HELLO EVSSE_ALERTS [EVSSE_TAIL]
#
# With EVSSE_TAIL, evsse::Client (evsse-tail --cacert --json) reads the same
# events over HTTPS from both hello servers: the library's client against
# its server.
#
# Every curl call is bounded by --max-time; servers are stopped by pid.
set -u
SECONDS=0
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
pids=()
cleanup() {
  local p
  # SIGKILL: a graceful drain (up to 5 s per server) is not under test here.
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}
ok() { echo "ok   $* ($SECONDS s)"; }

bash "$here/../support/make_test_certs.sh" "$dir/certs" || exit 1
ca=$dir/certs/ca.pem

# wait_for FILE PATTERN: up to 10 s for PATTERN to show in FILE.
wait_for() {
  local i
  for ((i = 0; i < 1000; i++)); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.01
  done
  return 1
}

# start_hello NAME BIN: starts BIN over TLS on a free port (a random one,
# another if it is taken); sets $port.
start_hello() {
  local name=$1 bin=$2 try
  for try in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    "$bin" --port "$port" --tls-cert "$dir/certs/server.pem" \
      --tls-key "$dir/certs/server.key" 2>"$dir/$name.log" &
    pids+=($!)
    if wait_for "$dir/$name.log" "listening on https://" ; then return 0; fi
    grep -q "cannot listen" "$dir/$name.log" || break
  done
  fail "$name did not start"; cat "$dir/$name.log"
  return 1
}

# stream_test NAME URL PUBLISH...: opens URL with curl --cacert, runs each
# PUBLISH command, and expects one "data:" line per publish, in order.
# $want holds the expected data lines.
check_stream() {
  local name=$1 url=$2
  shift 2
  curl -sS -N --max-time 10 --cacert "$ca" "$url" >"$dir/$name.out" \
    2>"$dir/$name.err" &
  local curl_pid=$!
  wait_for "$dir/$name.out" "^retry:" || fail "$name: no stream"
  local cmd
  for cmd in "$@"; do eval "$cmd" >/dev/null || fail "$name: $cmd"; done
  local n
  n=$(printf '%s\n' "$want" | wc -l)
  local i
  for ((i = 0; i < 1000; i++)); do
    [[ $(grep -c '^data:' "$dir/$name.out") -ge $n ]] && break
    sleep 0.01
  done
  kill "$curl_pid" 2>/dev/null
  wait "$curl_pid" 2>/dev/null
  # An alert's time stamp ("ts") differs from run to run.
  if [[ $(grep '^data:' "$dir/$name.out" | sed 's/,"ts":"[^"]*"//') == "$want" ]]; then
    ok "$name: events over https, chain verified with --cacert"
  else
    fail "$name: events"
    echo "--- want"; echo "$want"; echo "--- got"; cat "$dir/$name.out" "$dir/$name.err"
  fi
}

# check_refused NAME URL: the clients that must get no stream.
check_refused() {
  local name=$1 url=$2 rc
  curl -sS --max-time 5 "$url" >/dev/null 2>"$dir/err"
  rc=$?
  [[ $rc == 60 ]] && ok "$name: untrusted chain refused by curl (exit 60)" ||
    { fail "$name: no --cacert: exit $rc"; cat "$dir/err"; }
  curl -sS --max-time 5 --cacert "$ca" --tlsv1.0 --tls-max 1.1 "$url" \
    >/dev/null 2>"$dir/err"
  rc=$?
  [[ $rc == 35 ]] && ok "$name: TLS 1.1 refused (exit 35)" ||
    { fail "$name: TLS 1.1: exit $rc"; cat "$dir/err"; }
  local plain=${url/https:/http:}
  if curl -sS --max-time 5 -o "$dir/plain" "$plain" 2>"$dir/err" &&
    grep -q "^data:" "$dir/plain"; then
    fail "$name: plain HTTP got a stream"
  else
    ok "$name: plain HTTP gets no stream"
  fi
}

for pair in "evhttp_hello:$1" "evhtp_hello:$2"; do
  name=${pair%%:*}
  bin=${pair#*:}
  start_hello "$name" "$bin" || continue
  base="https://127.0.0.1:$port"  # the certificate names the IP too
  want=$'data: one\ndata: two words\ndata: three'
  check_stream "$name" "$base/events?topic=news" \
    "curl -sS --max-time 5 --cacert $ca --data one '$base/publish?topic=news'" \
    "curl -sS --max-time 5 --cacert $ca --data 'two words' '$base/publish?topic=news'" \
    "curl -sS --max-time 5 --cacert $ca --data three '$base/publish?topic=news'"
  check_refused "$name" "$base/events?topic=news"
  if [[ -n ${4:-} ]]; then
    "$4" --cacert "$ca" --json "$base/events?topic=tail" >"$dir/$name.tail" \
      2>"$dir/$name.tail.err" &
    tail_pid=$!
    pids+=($tail_pid)
    wait_for "$dir/$name.tail.err" "connected" || fail "$name: evsse-tail did not connect"
    curl -sS --max-time 5 --cacert "$ca" --data 'to the client' \
      "$base/publish?topic=tail" >/dev/null || fail "$name: publish for evsse-tail"
    if wait_for "$dir/$name.tail" '"data":"to the client"'; then
      ok "$name: evsse-tail (evsse::Client) over https"
    else
      fail "$name: evsse-tail"; cat "$dir/$name.tail" "$dir/$name.tail.err"
    fi
    kill "$tail_pid" 2>/dev/null
  fi
done

# evsse-alerts: listen ... ssl; in its configuration file.
token=publish-token-0123456789
cat >"$dir/alerts.conf" <<CONF
server {
    listen 127.0.0.1:0 ssl;
    ssl_certificate certs/server.pem;
    ssl_certificate_key certs/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    publish_token $token;
    endpoint subscribe /alerts/stream { heartbeat 15s; }
}
CONF
"$3" --config "$dir/alerts.conf" >"$dir/alerts.log" 2>&1 &
pids+=($!)
if wait_for "$dir/alerts.log" "msg=listening"; then
  port=$(sed -n 's/.*msg=listening addr=127.0.0.1:\([0-9]*\).*/\1/p' "$dir/alerts.log")
  base="https://127.0.0.1:$port"  # the certificate names the IP too
  alert() {
    printf '{"severity":"critical","title":"%s","body":"b","team":"ops"}' "$1"
  }
  want='data: {"severity":"critical","team":"ops","title":"one","body":"b"}'
  check_stream evsse-alerts "$base/alerts/stream?topic=ops" \
    "curl -sS --max-time 5 --cacert $ca -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' --data '$(alert one)' '$base/alerts'"
  check_refused evsse-alerts "$base/alerts/stream?topic=ops"
else
  fail "evsse-alerts did not start"; cat "$dir/alerts.log"
fi

[[ $failures == 0 ]] && echo "all passed" || echo "$failures failed"
[[ $failures == 0 ]]
