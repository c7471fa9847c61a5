#!/usr/bin/env bash
# tls_reconnect.sh: CPU per TLS reconnect of evsse::Client, with the TLS
# session resumed (the client's default) and with full handshakes.
#
#   bash bench/tls_reconnect.sh [BUILD_DIR] [SECONDS]   (build/, 5)
#
# evsse-tail subscribes over https:// to `openssl s_server -HTTP` on
# loopback, which answers every request with one event and `retry: 0` and
# closes, so the client reconnects (with Last-Event-ID) as fast as it can
# for SECONDS. "full" starts s_server with -no_ticket -no_cache, so no
# session can be resumed. Certificates: the test CA of
# tests/support/make_test_certs.sh with its P-256 leaf ("ec") and an
# RSA-2048 leaf made here ("rsa"). Prints, per case, the connections made
# and the CPU time (user + system, from /proc) per connection of the
# server and of the client. Loopback only; every process started here is
# stopped by its pid.
set -euo pipefail

build=${1:-build}
seconds=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
tail_bin=$build/examples/evsse-tail
[ -x "$tail_bin" ] || { echo "no $tail_bin (build the evsse-tail target)" >&2; exit 2; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

bash "$root/tests/support/make_test_certs.sh" "$tmp/certs"
certs=$tmp/certs
openssl req -new -newkey rsa:2048 -nodes -keyout "$certs/rsa.key" \
  -subj /CN=localhost -out "$tmp/rsa.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$tmp/rsa.ext"
openssl x509 -req -in "$tmp/rsa.csr" -CA "$certs/ca.pem" \
  -CAkey "$certs/ca.key" -CAcreateserial -days 30 -extfile "$tmp/rsa.ext" \
  -out "$certs/rsa.pem" 2>/dev/null
cp "$certs/server.pem" "$certs/ec.pem"
cp "$certs/server.key" "$certs/ec.key"

mkdir "$tmp/www"
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 0\nid: 7\ndata: x\n\n' \
  >"$tmp/www/events"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

printf '%-4s %-8s %12s %16s %16s\n' cert session connections \
  server_ms/conn client_ms/conn
for cert in ec rsa; do
  for mode in resumed full; do
    extra=()
    [ "$mode" = full ] && extra=(-no_ticket -no_cache)
    out="$tmp/server.$cert.$mode.out"  # never an earlier server's ACCEPT
    (cd "$tmp/www" && exec openssl s_server -accept 127.0.0.1:0 \
      -cert "$certs/$cert.pem" -key "$certs/$cert.key" -HTTP "${extra[@]}") \
      >"$out" 2>&1 &
    server=$!
    pids+=("$server")
    for _ in $(seq 100); do
      grep -q '^ACCEPT' "$out" && break
      sleep 0.05
    done
    port=$(sed -n 's/^ACCEPT 127\.0\.0\.1://p' "$out")
    [ -n "$port" ] || { echo "s_server did not start" >&2; exit 1; }
    s0=$(cpu_ticks "$server")
    "$tail_bin" --cacert "$certs/ca.pem" "https://localhost:$port/events" \
      >/dev/null 2>"$tmp/tail.err" &
    client=$!
    pids+=("$client")
    sleep "$seconds"  # the measurement window
    c1=$(cpu_ticks "$client")
    s1=$(cpu_ticks "$server")
    kill "$client" "$server"
    wait "$client" "$server" 2>/dev/null || true
    n=$(grep -c 'connected to' "$tmp/tail.err" || true)
    awk -v c="$cert" -v m="$mode" -v n="$n" -v s=$((s1 - s0)) -v k="$c1" \
      -v hz="$hz" 'BEGIN { printf "%-4s %-8s %12d %16.3f %16.3f\n", c, m, n,
        n ? s * 1000 / hz / n : 0, n ? k * 1000 / hz / n : 0 }'
  done
done
