#!/usr/bin/env bash
# bench_jobsdir.sh BUILD - jobs/s of the jobs-directory agent: 2,000 trivial job
# files dropped at once, timed until the last result is written; against the
# raw rate of spawning the same command (/bin/bash -c true) with the same
# parallelism (xargs -P), measured in the same run.
set -euo pipefail
BUILD=${1:-build}
DROVER=$(realpath "$BUILD/drover")
N=${N:-2000}
SLOTS=${SLOTS:-$(nproc)}
T=$(mktemp -d)
AGENT=
cleanup() {
  [ -n "$AGENT" ] && kill -TERM "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s.%N; }

# Baseline: the same command, same parallelism, no drover.
t0=$(now)
seq "$N" | xargs -P "$SLOTS" -n 1 /bin/bash -c true
t1=$(now)
base=$(awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.0f", n / (b - a) }')

mkdir -p "$T/stage" "$T/jobs"
for i in $(seq -w 1 "$N"); do
  printf '{"id":"b%s","command":"true"}\n' "$i" > "$T/stage/b$i.json"
done
"$DROVER" agent --jobs-dir "$T/jobs" --slots "$SLOTS" --log-level warn 2>"$T/agent.log" &
AGENT=$!
sleep 0.3
t0=$(now)
# (mv may complain about a file the agent claimed while mv still looked at it)
find "$T/stage" -name "*.json" -exec mv -t "$T/jobs" {} + 2>/dev/null || true
deadline=$((SECONDS + 120))
while [ "$(find "$T/jobs/results" -name '*.json' | wc -l)" -lt "$N" ]; do
  [ $SECONDS -lt $deadline ] || { echo "timed out; agent log:"; tail "$T/agent.log"; exit 1; }
  sleep 0.05
done
# The moment the last result appeared, not when the poll noticed it.
t1=$(find "$T/jobs/results" -name '*.json' -printf '%T@\n' | sort -n | tail -n 1)
rate=$(awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.0f", n / (b - a) }')
failed=$(find "$T/jobs/failed" -type f | wc -l)
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$AGENT/status")

echo "$N jobs of '/bin/bash -c true', $SLOTS at once"
echo "  xargs -P $SLOTS (raw spawn):  $base jobs/s"
echo "  drover agent --jobs-dir:   $rate jobs/s (result + log + status + moves per job;" \
  "failed: $failed; agent peak RSS ${rss} kB)"
awk -v a="$rate" -v b="$base" 'BEGIN { printf "  ratio: %.2f of the raw spawn rate\n", a / b }'
