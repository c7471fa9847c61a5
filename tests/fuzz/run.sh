#!/usr/bin/env bash
# Runs every fuzz target for a bound, one after the other.
#
#   bash tests/fuzz/run.sh [--seconds N | --runs N] [--only NAME] [--jobs J]
#                          [build-dir]
#
# Default: --seconds 15, --jobs 1, build dir build-fuzz (configured with clang and
# EVSSE_FUZZ=ON, and built, when needed). Each target starts from its seed
# corpus tests/fuzz/corpus/<name>/ (read only: new inputs go to a scratch
# directory, so the repository's corpus does not grow) and its dictionary
# tests/fuzz/<name>.dict when there is one. A crash, a sanitizer report or a
# failed property stops the run with a non-zero exit; the input is kept as
# <build-dir>/fuzz-artifacts/crash-<name>-*. Prints execs and execs/s per
# target. --jobs J runs J targets at a time (each still for its N seconds:
# give it at most the machine's idle cores, or each gets fewer execs).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

seconds=15
runs=
only=
jobs=1
build=
while (($#)); do
  case $1 in
    --seconds) seconds=$2; runs=; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
  esac
done
build=${build:-$root/build-fuzz}
targets=(wire stream_parser cursor request conf alert)
if [[ -n $only ]]; then targets=("$only"); fi

if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVSSE_FUZZ=ON \
    -DEVSSE_BUILD_TESTS=OFF -DEVSSE_BUILD_EXAMPLES=OFF -DEVSSE_BUILD_BENCH=OFF
fi
cmake --build "$build" -j2 --target "${targets[@]/%/_fuzz}"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/evsse-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"

bound=(-max_total_time="$seconds")
if [[ -n $runs ]]; then bound=(-runs="$runs"); fi

# fuzz_one NAME: runs one target into $scratch/NAME.log and writes its
# result line to $scratch/NAME.line; its exit status is the target's.
fuzz_one() {
  local t=$1 bin args log start rc=0 secs execs final rate
  bin="$build/tests/fuzz/${t}_fuzz"
  args=("${bound[@]}" -print_final_stats=1 -artifact_prefix="$artifacts/crash-$t-")
  if [[ -f $here/$t.dict ]]; then args+=(-dict="$here/$t.dict"); fi
  mkdir -p "$scratch/$t"
  log="$scratch/$t.log"
  start=$EPOCHREALTIME
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    "$bin" "${args[@]}" "$scratch/$t" "$here/corpus/$t" >"$log" 2>&1 || rc=$?
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  execs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$log")
  # The last status line: "#N <what> cov: C ft: F corp: K/B ...".
  final=$(grep -E '^#[0-9]+[[:space:]].*cov: ' "$log" | tail -n 1 |
    sed -E 's/^#[0-9]+[[:space:]]+[A-Z]+[[:space:]]+//; s/ lim: .*//' || true)
  rate=$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN { printf "%d", (s > 0 ? n / s : 0) }')
  printf '%-14s %12s %8s %10s %s\n' "$t" "${execs:-?}" "$secs" "$rate" \
    "${final:-}" >"$scratch/$t.line"
  return "$rc"
}

# Up to $jobs targets at a time; the table and failures in target order.
declare -A pid_of
running=()
for t in "${targets[@]}"; do
  while ((${#running[@]} >= jobs)); do
    wait -n || true
    still=()
    for r in "${running[@]}"; do
      if kill -0 "${pid_of[$r]}" 2>/dev/null; then still+=("$r"); fi
    done
    running=("${still[@]}")
  done
  fuzz_one "$t" &
  pid_of[$t]=$!
  running+=("$t")
done

status=0
printf '%-14s %12s %8s %10s %s\n' target execs secs execs/s final
for t in "${targets[@]}"; do
  rc=0
  wait "${pid_of[$t]}" || rc=$?
  cat "$scratch/$t.line"
  if ((rc != 0)); then
    echo "== $t FAILED (exit $rc); last lines of its log:" >&2
    tail -n 40 "$scratch/$t.log" >&2
    status=1
  fi
done
exit "$status"
