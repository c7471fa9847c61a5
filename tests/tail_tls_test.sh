#!/bin/sh
# evsse-tail over https://, against `openssl s_server -HTTP` on loopback
# serving a canned event stream with the certificates of make_test_certs.sh:
# --cacert receives the event; a wrong-name, an expired and an unknown-CA
# certificate are refused (exit status 1, the reason on standard error,
# no reconnect); --insecure receives the event from a wrong-name server;
# --cert/--key satisfy a server that requires a client certificate.
#
#   tail_tls_test.sh path/to/evsse-tail path/to/make_test_certs.sh
set -u
BIN=$1
CERTS=$2
dir=$(mktemp -d)
server=
tail_pid=
cleanup() {
  [ -n "$tail_pid" ] && kill "$tail_pid" 2>/dev/null
  [ -n "$server" ] && kill "$server" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAIL $1"
  for f in "$dir"/out "$dir"/err; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
  failures=$((failures + 1))
}

bash "$CERTS" "$dir/certs" || { echo "FAIL make_test_certs.sh"; exit 1; }
mkdir "$dir/www"
# s_server -HTTP answers GET /events with this file, a whole HTTP response.
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 100\nid: 7\ndata: hello over tls\n\n' \
  >"$dir/www/events"

# wait_for FILE PATTERN: polls until FILE has PATTERN (at most 10 s).
wait_for() {
  n=0
  while ! grep -q "$2" "$1" 2>/dev/null; do
    n=$((n + 1))
    [ $n -gt 200 ] && return 1
    sleep 0.05
  done
}

# serve NAME [ARGS...]: s_server on 127.0.0.1, a free port, with
# certificate NAME and ARGS; sets $server (pid) and $port. Each server
# writes its own file, so an earlier server's ACCEPT line is never read.
servers=0
serve() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  name=$1
  shift
  servers=$((servers + 1))
  out="$dir/server.$servers.out"
  (cd "$dir/www" && exec openssl s_server -accept 127.0.0.1:0 \
    -cert "$dir/certs/$name.pem" -key "$dir/certs/$name.key" -HTTP "$@") \
    >"$out" 2>&1 &
  server=$!
  wait_for "$out" '^ACCEPT' || { echo "FAIL s_server $name"; exit 1; }
  port=$(sed -n 's/^ACCEPT 127\.0\.0\.1://p' "$out")
  [ -n "$port" ] || { echo "FAIL s_server $name: no port"; exit 1; }
}

# receives NAME ARGS...: evsse-tail ARGS prints the event; then stopped.
receives() {
  name=$1
  shift
  "$BIN" "$@" >"$dir/out" 2>"$dir/err" &
  tail_pid=$!
  if wait_for "$dir/out" '^\[message\] id=7 hello over tls$'; then
    echo "ok   $name"
  else
    fail "$name"
  fi
  kill "$tail_pid" 2>/dev/null
  wait "$tail_pid" 2>/dev/null
  tail_pid=
}

# refused NAME PATTERN ARGS...: evsse-tail ARGS exits 1 at once with
# PATTERN on standard error, without reconnecting and without an event
# (exits 2, a usage error, when $want_rc says so). A client that keeps
# retrying instead is stopped after 20 s (exit status 124: a failure).
refused() {
  name=$1
  pattern=$2
  shift 2
  timeout 20 "$BIN" "$@" >"$dir/out" 2>"$dir/err"
  rc=$?
  if [ $rc -eq "${want_rc:-1}" ] && grep -q "$pattern" "$dir/err" &&
    ! grep -q 'reconnecting' "$dir/err" && [ ! -s "$dir/out" ]; then
    echo "ok   $name"
  else
    echo "exit status $rc"
    fail "$name"
  fi
}

serve server
receives "cacert" --cacert "$dir/certs/ca.pem" "https://localhost:$port/events"
receives "cacert-ip-literal" --cacert "$dir/certs/ca.pem" \
  "https://127.0.0.1:$port/events"
refused "unknown-ca" \
  "TLS handshake with localhost:$port failed: certificate verify failed: unable to get local issuer certificate" \
  "https://localhost:$port/events"

serve wrongname
refused "wrong-name" \
  "certificate verify failed: hostname mismatch: the certificate is for DNS:wrong.example, not localhost" \
  --cacert "$dir/certs/ca.pem" "https://localhost:$port/events"
receives "insecure" --insecure "https://localhost:$port/events"
if grep -q "^evsse-tail: --insecure: the server's certificate is not verified$" \
  "$dir/err"; then
  echo "ok   insecure-warns"
else
  fail "insecure-warns"
fi

serve expired
refused "expired" "certificate verify failed: certificate has expired" \
  --cacert "$dir/certs/ca.pem" "https://localhost:$port/events"

# Mutual TLS: the server requires a certificate from the test CA.
serve server -Verify 1 -CAfile "$dir/certs/ca.pem"
receives "client-certificate" --cacert "$dir/certs/ca.pem" \
  --cert "$dir/certs/client.pem" --key "$dir/certs/client.key" \
  "https://localhost:$port/events"

want_rc=2 refused "cacert-missing" \
  'ca_file ".*/nope.pem": cannot load: No such file or directory' \
  --cacert "$dir/nope.pem" "https://localhost:$port/events"

[ $failures -eq 0 ] && echo "all passed" && exit 0
echo "$failures failed"
exit 1
