#!/usr/bin/env bash
# bench_dev.sh BUILD - a coordinator and an agent (`drover dev`, one process, the
# embedded SQLite store) against running the same work here, in the same run:
#   1. `drover job run -- true` latency      vs `drover run -- true`
#   2. N trivial jobs through `job submit -f` and `job wait`
#                                             vs `xargs -P<slots> bash -c true`
#   3. a job writing 500 MB to stdout, end to end (to the CLI, and stored)
#                                             vs `drover run` of the same job
# Figures and ratios are printed; nothing passes or fails on a timing. A run
# fails only when something is wrong (a job not succeeded, bytes missing).
set -euo pipefail
BUILD=${1:-build}
DROVER=$(realpath "$BUILD/drover")
SPAWN=$BUILD/bench/bench_spawn
RUNS=${RUNS:-200}
JOBS=${JOBS:-5000}
SLOTS=${SLOTS:-$(nproc)}
MB=${MB:-500}
T=$(mktemp -d "${TMPDIR:-/tmp}/drover-bench-dev.XXXXXX")
DEV=
cleanup() {
  if [ -n "$DEV" ] && kill -0 "$DEV" 2>/dev/null; then
    kill -TERM "$DEV"
    wait "$DEV" || { echo "bench_dev: drover dev exited $?"; exit 1; }
  fi
  rm -rf "$T"
}
trap cleanup EXIT

"$DROVER" dev --listen 127.0.0.1:0 --data "$T/data" --slots "$SLOTS" --log-level warn \
  >"$T/dev.out" 2>"$T/dev.err" &
DEV=$!
for _ in $(seq 300); do
  ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$T/dev.out")
  [ -n "$ADDR" ] && break
  kill -0 "$DEV" || { cat "$T/dev.err"; exit 1; }
  sleep 0.05
done
[ -n "$ADDR" ] || { echo "bench_dev: drover dev did not start"; exit 1; }
export DROVER_ADDR=$ADDR
# The agent registers right after the listener is up: wait until it is ready.
for _ in $(seq 300); do
  "$DROVER" node list --json 2>/dev/null | grep -q '"state": *"ready"' && break
  sleep 0.05
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'; }
field() { echo "$1" | sed -n "s/.*$2=\([0-9]*\).*/\1/p"; }

echo "== 1. one short job: drover job run -- true on drover dev vs drover run -- true ($RUNS runs each)"
"$DROVER" job run -- true # warm the caches and the agent
local_out=$("$SPAWN" "$RUNS" "$DROVER" run -- true)
remote_out=$("$SPAWN" "$RUNS" "$DROVER" job run -- true)
printf '  %-32s %s\n' "drover run -- true" "$local_out" "drover job run -- true" "$remote_out"
lp50=$(field "$local_out" median_us); rp50=$(field "$remote_out" median_us)
lp95=$(field "$local_out" p95_us); rp95=$(field "$remote_out" p95_us)
echo "  p50: +$(( (rp50 - lp50) )) us ($(ratio "$rp50" "$lp50")), p95: +$(( (rp95 - lp95) )) us" \
  "(goal: < 3 ms more at p50)"

echo "== 2. $JOBS trivial jobs: job submit -f + job wait vs xargs -P$SLOTS bash -c true"
for _ in $(seq "$JOBS"); do echo '{"command": "true"}'; done >"$T/jobs.jsonl"
t0=$(date +%s.%N)
seq "$JOBS" | xargs -P"$SLOTS" -n1 bash -c true
t1=$(date +%s.%N)
xargs_rate=$(awk -v n="$JOBS" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
t0=$(date +%s.%N)
"$DROVER" job submit -f "$T/jobs.jsonl" >"$T/ids"
xargs -a "$T/ids" "$DROVER" job wait >/dev/null
t1=$(date +%s.%N)
drover_rate=$(awk -v n="$JOBS" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
[ "$(wc -l <"$T/ids")" -eq "$JOBS" ] || { echo "bench_dev: not every job was submitted"; exit 1; }
echo "  xargs -P$SLOTS: $xargs_rate jobs/s; drover dev: $drover_rate jobs/s:" \
  "$(ratio "$drover_rate" "$xargs_rate") (goal: >= 0.7x)"

echo "== 3. $MB MB of output from one job, end to end"
JOB="head -c ${MB}000000 /dev/zero | tr '\\0' x | fold -w 99"
t0=$(date +%s.%N)
"$DROVER" run -- "$JOB" >"$T/local.out"
t1=$(date +%s.%N)
"$DROVER" job run -- "$JOB" >"$T/remote.out"
t2=$(date +%s.%N)
cmp -s "$T/local.out" "$T/remote.out" || { echo "bench_dev: job run output differs"; exit 1; }
id=$("$DROVER" job list --limit 1 --json | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -n1)
stored=$("$DROVER" job logs "$id" | wc -c)
[ "$stored" -eq "$(stat -c %s "$T/local.out")" ] || { echo "bench_dev: stored log is $stored bytes"; exit 1; }
local_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
remote_s=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }')
echo "  drover run: ${local_s} s; drover job run on drover dev: ${remote_s} s:" \
  "$(ratio "$remote_s" "$local_s") (goal: <= 1.5x); stored: $stored bytes"
