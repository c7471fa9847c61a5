#!/usr/bin/env bash
# loops.sh: deliveries per second of evsse on 1 and on 2 event loops.
#
#   bash bench/loops.sh [--smoke] [BUILD_DIR]         (BUILD_DIR: build/)
#
# Runs the `loops_1k` scenario of run_fanout.sh (1 topic x 1,000
# subscribers, 20,000 events of 16 bytes as fast as 64 publish connections
# get them acknowledged) against `evhtp_hello --threads 1` and `--threads 2`,
# alternating, REPEAT rounds (default 3), and prints the medians and the
# ratio 2 loops / 1 loop (target: at least 1.6).
#
# The generator runs with --defer-reads: its subscribers stop reading while
# the events are published and read everything afterwards (every event is
# still checked: no loss, duplicate or reordering). The window ends when the
# server's last byte reached the subscribers' receive queues. On a 2-core
# machine a generator that reads while the server writes needs most of a
# core, and 2 server loops cannot get 2 cores; see bench/README.md.
# READS=live runs the same without --defer-reads, for comparison.
#
# RESULTS=FILE keeps the JSON lines (each with "loops" and "round").
# --smoke: one small round (CI), checks the lines, prints the table.
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
bench_args loops.sh 2,22 "$@"
REPEAT=${REPEAT:-3}
READS=${READS:-defer}
OUT=$(mktemp "${TMPDIR:-/tmp}/evsse-loops.XXXXXX")
trap 'rm -f "$OUT"' EXIT

args=()
[[ $READS == live ]] && args=(--subscribers 1000 --topics 1 --events 20000
  --size 16 --rate 0 --publishers 64 --pipeline 1)
FAILED=0
rounds=$REPEAT
[[ $SMOKE == 1 ]] && rounds=1
for round in $(seq 1 "$rounds"); do
  order=(1 2)
  ((round % 2 == 0)) && order=(2 1)
  for t in "${order[@]}"; do
    if [[ $SMOKE == 1 ]]; then
      line=$(SERVER=evhtp_hello SERVER_ARGS="--threads $t" ONLY=smoke_defer \
        bash "$HERE/run_fanout.sh" --smoke "$BUILD") || FAILED=1
    elif [[ $READS == live ]]; then
      # The same load, reads during the window (LOADGEN_ARGS overrides).
      line=$(SERVER=evhtp_hello SERVER_ARGS="--threads $t" ONLY=max_1k_4pub \
        LOADGEN_ARGS="${args[*]}" bash "$HERE/run_fanout.sh" "$BUILD") ||
        FAILED=1
    else
      line=$(SERVER=evhtp_hello SERVER_ARGS="--threads $t" ONLY=loops_1k \
        bash "$HERE/run_fanout.sh" "$BUILD") || FAILED=1
    fi
    [[ -n $line ]] || {
      echo "loops.sh: no result for --threads $t" >&2
      FAILED=1
      continue
    }
    echo "$line" | sed "s/^{/{\"loops\":$t,\"round\":$round,/" >>"$OUT"
  done
done

python3 - "$OUT" <<'PY' || FAILED=1
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {1: [], 2: []}
for r in runs:
    by[r["loops"]].append(r)
def med(rs, k):
    v = [r[k] for r in rs if k in r]
    return statistics.median(v) if v else float("nan")
print("loops  runs  deliveries/s (median)  server CPU s per 10^6  loadgen CPU s  deferred")
for n in (1, 2):
    rs = by[n]
    print("%-6d %-5d %-22s %-22s %-14s %s" % (
        n, len(rs), "{:,.0f}".format(med(rs, "deliveries_per_s")),
        "%.3f" % med(rs, "server_cpu_s_per_million_deliveries"),
        "%.2f" % med(rs, "loadgen_cpu_publish_s"),
        all(r.get("reads_deferred", False) for r in rs)))
one, two = med(by[1], "deliveries_per_s"), med(by[2], "deliveries_per_s")
if one > 0:
    print("2 loops / 1 loop: %.2fx (target >= 1.6x)" % (two / one))
bad = [r for r in runs if r.get("error") or r.get("lost") or r.get("duplicated")]
sys.exit(1 if bad or not by[1] or not by[2] else 0)
PY
[[ -n ${RESULTS:-} ]] && cat "$OUT" >>"$RESULTS"
exit $FAILED
