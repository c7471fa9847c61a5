#!/usr/bin/env bash
# curl -N against tests/js/sse_test_server on 127.0.0.1: the exact bytes of a
# stream (retry, multi-line data, event and id lines), its headers over
# HTTP/1.1 and HTTP/1.0, resume with a Last-Event-ID header (and the
# lastEventId query parameter) replaying exactly the missed events, the
# heartbeat comment, and the 204 of /stop-events.
#
#   curl_test.sh path/to/sse_test_server
#
# Every curl call is bounded by --max-time; the servers end themselves after
# 60 s and are stopped by pid on exit.
set -u
BIN=$1
dir=$(mktemp -d)
pids=()    # servers
curl_pid=  # the background curl, while it runs
cleanup() {
  local p
  [[ -n $curl_pid ]] && kill "$curl_pid" 2>/dev/null
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null
  done
  rm -rf "$dir"
}
trap cleanup EXIT
failures=0

fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}

# check NAME: compares $dir/got with $dir/want byte for byte.
check() {
  if cmp -s "$dir/got" "$dir/want"; then
    echo "ok   $1"
  else
    fail "$1"
    echo "--- want"
    od -c "$dir/want" | sed 's/^/    /'
    echo "--- got"
    od -c "$dir/got" | sed 's/^/    /'
  fi
}

# start NAME ARGS...: starts a server, sets $port and $base (and the pid in
# pids). Its stderr goes to $dir/NAME.log.
start() {
  local name=$1 i
  shift
  "$BIN" --port 0 --exit-after-ms 60000 "$@" >"$dir/$name.port" \
    2>"$dir/$name.log" &
  pids+=($!)
  port=
  for ((i = 0; i < 100; i++)); do
    port=$(sed -n 's/^PORT \([0-9][0-9]*\)$/\1/p' "$dir/$name.port")
    [[ -n $port ]] && break
    sleep 0.1
  done
  if [[ -z $port ]]; then
    echo "FAIL $name: the server printed no PORT line"
    cat "$dir/$name.log"
    exit 1
  fi
  base="http://127.0.0.1:$port"
}

# publish TOPIC DATA [TYPE]: POSTs DATA and sets $id from {"id":"..."}.
publish() {
  local url="$base/publish?topic=$1" out
  [[ $# -ge 3 ]] && url+="&event=$3"
  out=$(curl -sS --max-time 5 -X POST --data-binary "$2" "$url")
  id=$(printf '%s' "$out" | sed -n 's/^{"id":"\([^"]*\)"}$/\1/p')
  if [[ -z $id ]]; then
    echo "FAIL publish to $1: answered '$out'"
    exit 1
  fi
}

# counter NAME: one counter from GET /stats.
counter() {
  curl -sS --max-time 5 "$base/stats" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

# wait_for COND_COMMAND...: retries the command for up to 5 s.
wait_for() {
  local i
  for ((i = 0; i < 100; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}
has_streams() { [[ $(counter connections_active) == "$1" ]]; }
size_at_least() { [[ $(file_size "$1") -ge $2 ]]; }
file_size() { wc -c <"$1" | tr -d ' '; }

# --- one server without heartbeats, so the bytes are exact -------------------
start exact --heartbeat-ms 0 --retry-ms 1500

# A live stream: curl connects, then three events are published.
curl -N -sS --max-time 10 -D "$dir/live.head" -o "$dir/live.body" \
  "$base/events?topic=news" 2>"$dir/live.err" &
curl_pid=$!
wait_for has_streams 1 || fail "live: the stream did not open"
publish news $'a\nb\r\nc'
id1=$id
publish news $'hello\rworld\n' greet
id2=$id
publish news 'é ✓ data: x'
id3=$id
{
  printf 'retry: 1500\n\n'
  printf 'data: a\ndata: b\ndata: c\nid: %s\n\n' "$id1"
  printf 'event: greet\ndata: hello\ndata: world\ndata: \nid: %s\n\n' "$id2"
  printf 'data: é ✓ data: x\nid: %s\n\n' "$id3"
} >"$dir/want"
wait_for size_at_least "$dir/live.body" "$(file_size "$dir/want")"
sleep 0.2 # nothing more may come
kill "$curl_pid" 2>/dev/null
wait "$curl_pid" 2>/dev/null
curl_pid=
cp "$dir/live.body" "$dir/got"
check "live stream: exact bytes"

# Headers: status, exact Content-Type, no Content-Length, chunked.
tr -d '\r' <"$dir/live.head" >"$dir/head"
header() { sed -n "s/^$1: //Ip" "$dir/head"; }
if [[ $(head -n 1 "$dir/head") == "HTTP/1.1 200 OK" &&
  $(header Content-Type) == "text/event-stream; charset=utf-8" &&
  $(header Cache-Control) == "no-cache, no-transform" &&
  $(header X-Accel-Buffering) == "no" &&
  $(header Transfer-Encoding) == "chunked" &&
  -z $(header Content-Length) ]]; then
  echo "ok   headers (HTTP/1.1)"
else
  fail "headers (HTTP/1.1)"
  cat "$dir/head"
fi

# Resume with Last-Event-ID: exactly the two events after id1, then nothing
# (curl stops at --max-time 1 with exit 28).
curl -N -sS --max-time 1 -H "Last-Event-ID: $id1" -o "$dir/got" \
  "$base/events?topic=news" 2>/dev/null
rc=$?
{
  printf 'retry: 1500\n\n'
  printf 'event: greet\ndata: hello\ndata: world\ndata: \nid: %s\n\n' "$id2"
  printf 'data: é ✓ data: x\nid: %s\n\n' "$id3"
} >"$dir/want"
check "resume with Last-Event-ID: exactly the missed events"
[[ $rc == 28 ]] || fail "resume: curl exited $rc, not 28 (timeout)"

# The same with the lastEventId query parameter (for clients without headers).
curl -N -sS --max-time 1 -o "$dir/got" \
  "$base/events?topic=news&lastEventId=$id2" 2>/dev/null
{
  printf 'retry: 1500\n\n'
  printf 'data: é ✓ data: x\nid: %s\n\n' "$id3"
} >"$dir/want"
check "resume with ?lastEventId="

# Resume from the newest id: nothing is replayed.
curl -N -sS --max-time 1 -H "Last-Event-ID: $id3" -o "$dir/got" \
  "$base/events?topic=news" 2>/dev/null
printf 'retry: 1500\n\n' >"$dir/want"
check "resume from the newest id: nothing replayed"

# HTTP/1.0: no chunking, no Content-Length, the same bytes.
curl -N -sS --http1.0 --max-time 1 -H "Last-Event-ID: $id2" \
  -D "$dir/h10.head" -o "$dir/got" "$base/events?topic=news" 2>/dev/null
{
  printf 'retry: 1500\n\n'
  printf 'data: é ✓ data: x\nid: %s\n\n' "$id3"
} >"$dir/want"
check "resume over HTTP/1.0: exact bytes"
tr -d '\r' <"$dir/h10.head" >"$dir/head"
if [[ $(head -n 1 "$dir/head") == "HTTP/1.0 200 OK" &&
  $(header Content-Type) == "text/event-stream; charset=utf-8" &&
  -z $(header Transfer-Encoding) && -z $(header Content-Length) ]]; then
  echo "ok   headers (HTTP/1.0)"
else
  fail "headers (HTTP/1.0)"
  cat "$dir/head"
fi

# /stop-events: 204, no body, and it was asked exactly once.
out=$(curl -sS --max-time 5 -o "$dir/got" -w '%{http_code} %{size_download}' \
  "$base/stop-events?topic=news")
if [[ $out == "204 0" && $(counter stop_hits) == 1 &&
  $(counter connections_active) == 0 ]]; then
  echo "ok   /stop-events answers 204"
else
  fail "/stop-events answers 204 (got '$out', stop_hits $(counter stop_hits))"
fi

# --- heartbeats: a ":" comment line after each idle 200 ms -------------------
start beat --heartbeat-ms 200 --retry-ms 1000
curl -N -sS --max-time 1 -o "$dir/got" "$base/events?topic=idle" 2>/dev/null
beats=$(grep -c '^:$' "$dir/got")
if [[ $(head -n 2 "$dir/got" | tr '\n' '|') == "retry: 1000||" &&
  $beats -ge 2 && $beats -le 6 &&
  $(grep -cv -e '^:$' -e '^$' -e '^retry: 1000$' "$dir/got") == 0 ]]; then
  echo "ok   heartbeats ($beats in 1 s)"
else
  fail "heartbeats"
  od -c "$dir/got" | sed 's/^/    /'
fi

# The servers must exit 0 on SIGTERM (sanitizer builds report leaks and
# errors through the exit status).
for p in "${pids[@]}"; do
  kill "$p" 2>/dev/null
  wait "$p"
  rc=$?
  [[ $rc == 0 ]] || fail "sse_test_server (pid $p) exited $rc"
done
pids=()
if ((failures > 0)); then
  echo "$failures check(s) failed"
  for f in "$dir"/*.log; do
    echo "--- $(basename "$f")"
    cat "$f"
  done
  exit 1
fi
echo "all curl checks passed"
