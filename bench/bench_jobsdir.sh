#!/usr/bin/env bash
# bench_jobsdir.sh BUILD - jobs/s of the jobs-directory agent: N trivial job
# files dropped at once, timed until the last result is written; against the
# raw rate of spawning the same command (/bin/bash -c true) with the same
# parallelism (xargs -P), measured in the same run.
#
# Both rates swing by tens of percent from one second to the next on a small
# VM, so the two sides alternate for ROUNDS rounds and the medians are
# compared; every round is printed.
#
# TMPDIR chooses the filesystem the jobs directory lives on. Each job creates
# two inodes (its result and its log): on an ext4 without a journal, inode
# allocation steps past every inode deleted in the last minutes, which makes
# the agent's cost depend on the disk's history; TMPDIR=/dev/shm shows the
# agent without that.
set -euo pipefail
BUILD=${1:-build}
DROVER=$(realpath "$BUILD/drover")
N=${N:-2000}
ROUNDS=${ROUNDS:-3}
SLOTS=${SLOTS:-$(nproc)}
. "$(dirname "$0")/agent_env.sh"
rate() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.0f", n / (b - a) }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

raw_round() { # the same command, same parallelism, no drover
  local t0 t1
  t0=$(now)
  seq "$N" | xargs -P "$SLOTS" -n 1 /bin/bash -c true
  t1=$(now)
  rate "$t0" "$t1"
}

agent_round() { # $1: round number; prints jobs/s, sets FAILED and RSS
  local d="$T/r$1" t0 t1 i
  mkdir -p "$d/stage" "$d/jobs"
  for i in $(seq -w 1 "$N"); do
    printf '{"id":"b%s","command":"true"}\n' "$i" > "$d/stage/b$i.json"
  done
  "$DROVER" agent --jobs-dir "$d/jobs" --slots "$SLOTS" --log-level warn 2>"$d/agent.log" &
  AGENT=$!
  sleep 0.3
  t0=$(now)
  # (mv may complain about a file the agent claimed while mv still looked at it)
  find "$d/stage" -name "*.json" -exec mv -t "$d/jobs" {} + 2>/dev/null || true
  local deadline=$((SECONDS + 120))
  while [ "$(find "$d/jobs/results" -name '*.json' | wc -l)" -lt "$N" ]; do
    [ $SECONDS -lt $deadline ] || { echo "timed out; agent log:" >&2; tail "$d/agent.log" >&2; exit 1; }
    sleep 0.05
  done
  # The moment the last result appeared, not when the poll noticed it.
  t1=$(find "$d/jobs/results" -name '*.json' -printf '%T@\n' | sort -n | tail -n 1)
  FAILED=$(find "$d/jobs/failed" -type f | wc -l)
  RSS=$(awk '/VmHWM/ { print $2 }' "/proc/$AGENT/status")
  kill -TERM "$AGENT"
  wait "$AGENT" || true
  AGENT=
  rate "$t0" "$t1" > "$T/rate"
}

echo "$N jobs of '/bin/bash -c true', $SLOTS at once, $ROUNDS rounds (each side alternately)"
raws=() agents=()
for r in $(seq 1 "$ROUNDS"); do
  raws+=("$(raw_round)")
  agent_round "$r"
  agents+=("$(cat "$T/rate")")
  echo "  round $r: xargs -P $SLOTS ${raws[-1]} jobs/s, drover agent ${agents[-1]} jobs/s" \
    "(failed: $FAILED; agent peak RSS ${RSS} kB)"
done
base=$(median "${raws[@]}")
mine=$(median "${agents[@]}")
echo "  xargs -P $SLOTS (raw spawn):  $base jobs/s (median)"
echo "  drover agent --jobs-dir:   $mine jobs/s (median; result + log + status + moves per job)"
awk -v a="$mine" -v b="$base" 'BEGIN { printf "  ratio: %.2f of the raw spawn rate\n", a / b }'
