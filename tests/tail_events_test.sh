#!/bin/sh
# evsse-tail --stdin --json: exact output lines for crafted event streams,
# fed through a pipe in pieces with pauses (the parser sees split lines,
# split CRLF pairs and split UTF-8), and flushing before end of input.
#
#   tail_events_test.sh path/to/evsse-tail
set -u
BIN=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0

# check NAME: compares $dir/got with $dir/want.
check() {
  if cmp -s "$dir/got" "$dir/want"; then
    echo "ok   $1"
  else
    echo "FAIL $1"
    echo "--- want"; cat "$dir/want"
    echo "--- got"; cat "$dir/got"
    failures=$((failures + 1))
  fi
}

# BOM, CRLF, comments, retry, event type, multi-line data, persistent id.
printf '\357\273\277: a comment\r\nretry: 1500\r\nevent: greet\r\ndata: hello\r\ndata: world\r\nid: 7\r\n\r\n:\r\ndata: second\r\n\r\n' |
  "$BIN" --stdin --json >"$dir/got"
printf '%s\n' \
  '{"type":"greet","data":"hello\nworld","id":"7","retry":1500}' \
  '{"type":"message","data":"second","id":"7","retry":1500}' \
  '{"last_event_id":"7","retry":1500}' >"$dir/want"
check "crlf-bom-comments-retry"

# No retry ever: no "retry" key on events, null at the end.
printf 'data: x\n\n' | "$BIN" --stdin --json >"$dir/got"
printf '%s\n' '{"type":"message","data":"x","id":""}' \
  '{"last_event_id":"","retry":null}' >"$dir/want"
check "no-retry"

# JSON escaping: quote, backslash, tab, a control character, UTF-8 kept,
# invalid UTF-8 as U+FFFD; lone CR line ends.
printf 'data: a"b\\c\td\001e\303\251\377/\r\r' | "$BIN" --stdin --json >"$dir/got"
printf '{"type":"message","data":"a\\"b\\\\c\\td\\u0001e\303\251\357\277\275/","id":""}\n{"last_event_id":"","retry":null}\n' >"$dir/want"
check "json-escaping"

# Split writes with pauses: "data: par" | "t\r" | "\ndata: two\n" | "\n..."
# The CR at the end of one read and the LF at the start of the next are one
# line end. The final id has no blank line after it, so it never commits.
{
  printf 'data: par'; sleep 0.2
  printf 't\r'; sleep 0.2
  printf '\ndata: two\n'; sleep 0.2
  printf '\nretry: 12a\nretry: 250\nevent: e\ndata\ndata\n'; sleep 0.2
  printf '\nid: 9\ndata: dropped'
} | "$BIN" --stdin --json >"$dir/got"
printf '%s\n' '{"type":"message","data":"part\ntwo","id":""}' \
  '{"type":"e","data":"\n","id":"","retry":250}' \
  '{"last_event_id":"","retry":250}' >"$dir/want"
check "split-writes"

# An id with NUL is ignored; an empty id resets; event types do not persist.
printf 'id: 1\nevent: t\ndata: a\n\nid: x\000y\ndata: b\n\nid\ndata: c\n\n' |
  "$BIN" --stdin --json >"$dir/got"
printf '%s\n' '{"type":"t","data":"a","id":"1"}' \
  '{"type":"message","data":"b","id":"1"}' \
  '{"type":"message","data":"c","id":""}' \
  '{"last_event_id":"","retry":null}' >"$dir/want"
check "ids"

# Text form.
printf 'event: greet\nid: 3\ndata: one\ndata: two\n\n' | "$BIN" --stdin >"$dir/got"
printf '[greet] id=3 one\n  two\n' >"$dir/want"
check "text-form"

# Each line is written as soon as its event is dispatched, while the input
# is still open.
mkfifo "$dir/in"
"$BIN" --stdin --json <"$dir/in" >"$dir/out" &
pid=$!
exec 3>"$dir/in"
printf 'data: early\n\n' >&3
i=0
while [ $i -lt 100 ] && ! grep -q early "$dir/out"; do
  sleep 0.05
  i=$((i + 1))
done
cp "$dir/out" "$dir/got"
printf '%s\n' '{"type":"message","data":"early","id":""}' >"$dir/want"
check "flushed-before-eof"
exec 3>&-
wait $pid || { echo "FAIL exit status"; failures=$((failures + 1)); }

# --help succeeds; a bad argument fails with status 2.
"$BIN" --help >/dev/null || { echo "FAIL --help"; failures=$((failures + 1)); }
"$BIN" --bogus >/dev/null 2>&1
[ $? -eq 2 ] || { echo "FAIL bad argument"; failures=$((failures + 1)); }

[ $failures -eq 0 ] && echo "all passed"
exit $failures
