#!/usr/bin/env bash
# bench_run.sh BUILD - what `drover run` adds to running one short command.
# One harness (bench/bench_spawn.c: fork, execvp, wait4, N times in a row)
# times both sides, so the harness's own cost is the same on each.
set -euo pipefail
BUILD=${1:-build}
DROVER=$BUILD/drover
SPAWN=$BUILD/bench/bench_spawn
N=${N:-300}
if [ ! -x "$SPAWN" ]; then # a build dir configured before bench_spawn.c existed
  SPAWN=$(mktemp -d)/bench_spawn
  cc -O2 -o "$SPAWN" "$(dirname "$0")/bench_spawn.c"
fi

M=0
measure() { # label, command... -> prints the figures, sets M to the median (us)
  local label=$1; shift
  local out
  out=$("$SPAWN" "$N" "$@")
  printf '  %-34s %s\n' "$label" "$out"
  M=$(echo "$out" | sed -n 's/.*median_us=\([0-9]*\).*/\1/p')
}

echo "runs of $N each, wall time per run (median, 90th percentile, mean):"
measure "/bin/true" /bin/true; raw=$M
measure "/bin/bash -c true" /bin/bash -c true; bash_c=$M
measure "drover version (startup only)" "$DROVER" version; d_start=$M
measure "drover run --exec -- /bin/true" "$DROVER" run --exec -- /bin/true; d_exec=$M
measure "drover run -- true" "$DROVER" run -- true; d_shell=$M

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'; }
echo "drover run --exec -- /bin/true: ${d_exec} us vs /bin/true ${raw} us:" \
  "$(ratio "$d_exec" "$raw"), +$((d_exec - raw)) us"
echo "of the added time, starting the drover process itself: ${d_start} us - ${raw} us = $((d_start - raw)) us"
echo "drover run -- true (bash -c):   ${d_shell} us vs /bin/bash -c true ${bash_c} us:" \
  "$(ratio "$d_shell" "$bash_c"), +$((d_shell - bash_c)) us"
