#!/bin/sh
# bare_topic_start.sh: how long a subscriber waits for its response head on a
# Kafka node (evhttp_hello --kafka against librdkafka's mock cluster) when it
# names a topic's partitions (?topic=o@0&...) and when it names the bare
# topic (?topic=o: the node first asks the cluster for the partition count).
# Fresh connections, each on a topic the node does not follow yet (a new
# topic per request, 3 partitions), so every request pays the watermark
# queries (and, bare, the metadata request). Prints the median and p90 in ms.
# Usage: bench/kafka/bare_topic_start.sh BUILD_DIR [REQUESTS]
set -eu
build=${1:?usage: $0 BUILD_DIR [REQUESTS]}
n=${2:-20}
dir=$(mktemp -d)
mkfifo "$dir/in"
"$build/tests/kafka_mock_cluster" 3 < "$dir/in" > "$dir/out" &
mock=$!
exec 3> "$dir/in"
while ! grep -q bootstrap "$dir/out"; do sleep 0.1; done
boot=$(head -1 "$dir/out" | cut -d' ' -f2)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/examples/evhttp_hello" --port "$port" --kafka "$boot" > "$dir/hello.log" 2>&1 &
hello=$!
cleanup() { kill "$hello" 2>/dev/null || true; exec 3>&-; wait "$mock" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
until curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; do sleep 0.1; done
i=0
while [ "$i" -lt "$n" ]; do
  echo "create b$i 3" >&3
  echo "create e$i 3" >&3
  i=$((i + 1))
done
# Each create is answered with one line after the bootstrap line.
while [ "$(wc -l < "$dir/out")" -lt $((2 * n + 1)) ]; do sleep 0.1; done
head_ms() {  # the time to the response head, in ms
  curl -s -o /dev/null --max-time 2 -H 'Accept: text/event-stream' \
    -w '%{time_starttransfer}\n' "$1" | awk '{ printf "%.1f\n", $1 * 1000 }' || true
}
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "median %.1f ms, p90 %.1f ms (%d requests)\n", v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], NR }'; }
i=0
: > "$dir/explicit"; : > "$dir/bare"
while [ "$i" -lt "$n" ]; do
  head_ms "http://127.0.0.1:$port/events?topic=e$i@0&topic=e$i@1&topic=e$i@2" >> "$dir/explicit"
  head_ms "http://127.0.0.1:$port/events?topic=b$i" >> "$dir/bare"
  i=$((i + 1))
done
printf 'explicit partitions: '; stats < "$dir/explicit"
printf 'bare topic:          '; stats < "$dir/bare"
