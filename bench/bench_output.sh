#!/usr/bin/env bash
# bench_output.sh BUILD - output capture rate: a job writes 1 GB of short lines
# (41 bytes each) through the jobs-directory agent into DIR/logs/<id>.log
# (timestamp + stream added per line), against the same command writing to
# /dev/null, in the same run.
set -euo pipefail
BUILD=${1:-build}
DROVER=$(realpath "$BUILD/drover")
BYTES=${BYTES:-1000000000}
CMD="yes 0123456789012345678901234567890123456789 | head -c $BYTES"
. "$(dirname "$0")/agent_env.sh"

t0=$(now)
bash -c "$CMD" > /dev/null
t1=$(now)
base=$(awk -v a="$t0" -v b="$t1" -v n="$BYTES" 'BEGIN { printf "%.0f", n / (b - a) / 1e6 }')

mkdir -p "$T/jobs"
"$DROVER" agent --jobs-dir "$T/jobs" --slots 1 --log-level warn 2>"$T/agent.log" &
AGENT=$!
sleep 0.3
printf '{"id":"out","command":"%s"}\n' "$CMD" > "$T/job.tmp"
t0=$(now)
mv "$T/job.tmp" "$T/jobs/out.json"
deadline=$((SECONDS + 120))
until [ -e "$T/jobs/results/out.json" ]; do
  [ $SECONDS -lt $deadline ] || { echo "timed out; agent log:"; tail "$T/agent.log"; exit 1; }
  sleep 0.05
done
t1=$(stat -c %.9Y "$T/jobs/results/out.json")
rate=$(awk -v a="$t0" -v b="$t1" -v n="$BYTES" 'BEGIN { printf "%.0f", n / (b - a) / 1e6 }')
logsize=$(stat -c %s "$T/jobs/logs/out.log")
lines=$(sed -n 's/.*"stdout":{"lines":\([0-9]*\).*/\1/p' "$T/jobs/results/out.json")
# VmHWM: the agent's peak RSS since the job started (drover resets its own
# high-water mark at each spawn to tell the job's peak from its own).
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$AGENT/status")

echo "a job writing $BYTES bytes of 41-byte lines ($lines lines captured)"
echo "  to /dev/null:                 $base MB/s"
echo "  through drover into its log:  $rate MB/s of job output" \
  "(log file $((logsize / 1000000)) MB; agent peak RSS during the job ${rss} kB)"
awk -v a="$rate" -v b="$base" 'BEGIN { printf "  ratio: %.2f of /dev/null\n", a / b }'
