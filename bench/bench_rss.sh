#!/usr/bin/env bash
# bench_rss.sh BUILD - the jobs-directory agent's own memory: resident set
# (VmRSS from /proc) idle, then while 8 jobs run.
set -euo pipefail
BUILD=${1:-build}
DROVER=$(realpath "$BUILD/drover")
. "$(dirname "$0")/agent_env.sh"
rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$AGENT/status"; }

mkdir -p "$T/jobs"
"$DROVER" agent --jobs-dir "$T/jobs" --slots 8 --shutdown-timeout 1s \
  --log-level warn 2>"$T/agent.log" &
AGENT=$!
sleep 0.5
idle=$(rss VmRSS)
for i in 1 2 3 4 5 6 7 8; do
  printf '{"id":"s%s","command":"echo started; sleep 30"}\n' "$i" > "$T/s$i.tmp"
  mv "$T/s$i.tmp" "$T/jobs/s$i.json"
done
deadline=$((SECONDS + 30))
until [ "$(grep -l running "$T"/jobs/status/s*.json 2>/dev/null | wc -l)" -ge 8 ]; do
  [ $SECONDS -lt $deadline ] || { echo "timed out; agent log:"; tail "$T/agent.log"; exit 1; }
  sleep 0.05
done
busy=$(rss VmRSS)
kill -TERM "$AGENT"
wait "$AGENT" || true
AGENT=
echo "drover agent --jobs-dir resident memory (VmRSS):"
echo "  idle:            ${idle} kB"
echo "  8 jobs running:  ${busy} kB"
