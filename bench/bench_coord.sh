#!/usr/bin/env bash
# bench_coord.sh BUILD - the coordinator with simulated agents (bench/bench_sim):
#   A. memory of `drover server` per connected, heartbeating agent, beside the
#      same number of connections (and bidi streams) to drover-rpc-echo;
#   B. dispatch rate of trivial jobs to agents that end each job at once,
#      beside unary echo round trips and the store's own group-commit rate
#      (bench/bench_store), all in the same run on the same disk.
# docs/benchmarks.md explains each figure. Prints figures and ratios; nothing
# passes or fails on a timing. It fails (exit 1) only when something is wrong:
# a job not succeeded, a store check, a protocol surprise, a server that did
# not exit 0 on SIGTERM.
#
# AGENTS, SLOTS, JOBS, IN_FLIGHT, HEARTBEATS size the runs; SERVER_ARGS adds
# arguments to drover server (e.g. "--log-level warn"); DISPATCH_ARGS adds
# bench_sim options (e.g. "--no-wait --log-batch"). Data dirs go under TMPDIR
# (default /tmp): every commit is an fsync, so a tmpfs there would show
# SQLite's CPU cost, not the disk's.
set -euo pipefail
BUILD=${1:-build}
SIM=$BUILD/bench/bench_sim
STORE=$BUILD/bench/bench_store
AGENTS=${AGENTS:-1000}
SLOTS=${SLOTS:-4}
JOBS=${JOBS:-50000}
IN_FLIGHT=${IN_FLIGHT:-1000}
HEARTBEATS=${HEARTBEATS:-3}
for b in "$SIM" "$STORE" "$BUILD/drover" "$BUILD/drover-rpc-echo"; do
  [ -x "$b" ] || { echo "error: '$b' missing: build it first (make build)" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-coord.XXXXXX")
keep=1
trap '[ $keep = 1 ] && echo "bench_coord: kept $T for inspection" >&2 || rm -rf "$T"' EXIT

server_args=()
for a in ${SERVER_ARGS:-}; do server_args+=(--server-arg="$a"); done
# shellcheck disable=SC2206
dispatch_args=(${DISPATCH_ARGS:-})

# run NAME CMD...: output in $T/NAME.txt, errors in $T/NAME.err; on failure
# shows them with the coordinator's log and stops.
run() {
  local name=$1; shift
  if ! "$@" >"$T/$name.txt" 2>"$T/$name.err"; then
    echo "bench_coord: '$name' failed:" >&2
    cat "$T/$name.txt" "$T/$name.err" >&2
    local log
    log=$(sed -n 's/.*coord_log=\([^ ]*\).*/\1/p' "$T/$name.txt" | tail -n1)
    [ -n "$log" ] && [ -f "$log" ] && { echo "--- tail of $log" >&2; tail -n 20 "$log" >&2; }
    exit 1
  fi
}
# val NAME KEY: the value of KEY=... in $T/NAME.txt
val() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" "$T/$1.txt" | tail -n1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

mkdir -p "$T/memory" "$T/dispatch" "$T/store"
run memory "$SIM" memory --data "$T/memory" --agents "$AGENTS" --heartbeats "$HEARTBEATS" \
  "${server_args[@]}"
run dispatch "$SIM" dispatch --data "$T/dispatch" --agents "$AGENTS" --slots "$SLOTS" \
  --jobs "$JOBS" --in-flight "$IN_FLIGHT" "${server_args[@]}" "${dispatch_args[@]}"
run store "$STORE" "$T/store" "$JOBS" "$IN_FLIGHT" 500

fs=$(df --output=fstype "$T" | tail -n1 | tr -d ' ')
store_rate=$(sed -n 's/^group commit:.*jobs_per_s=\([0-9.]*\).*/\1/p' "$T/store.txt")
store_base=$(sed -n 's/^baseline.*jobs_per_s=\([0-9.]*\).*/\1/p' "$T/store.txt")
rate=$(val dispatch dispatch_jobs_per_s)
echo_rate=$(val dispatch echo_unary_per_s)
per_agent=$(val memory coord_kib_per_agent)
marginal=$(val memory coord_kib_per_agent_marginal)
floor_stream=$(val memory echo_kib_per_conn_stream)
floor_marginal=$(val memory echo_kib_per_conn_stream_marginal)

printf 'coordinator benchmarks: %s CPUs, load average %s / %s at the start of each part, data on %s\n' \
  "$(val memory cpus)" "$(val memory loadavg_1m)" "$(val dispatch loadavg_1m)" "$fs"
echo
echo "A. memory: $AGENTS simulated agents connected (one HTTP/2 connection and Connect stream each), heartbeats each: $(val memory heartbeats_min) (every $(val memory heartbeat_interval_ms) ms)"
printf '  %-56s %9s KiB\n' "drover server VmRSS, idle" "$(val memory coord_idle_rss_kb)"
printf '  %-56s %9s KiB\n' "  after one API call (TokenService.Create)" "$(val memory coord_token_rss_kb)"
printf '  %-56s %9s KiB\n' "  with half the agents" "$(val memory coord_half_rss_kb)"
printf '  %-56s %9s KiB\n' "  with all the agents" "$(val memory coord_agents_rss_kb)"
printf '  %-56s %9s KiB   (goal <= 20)\n' "per agent: (all - idle) / $AGENTS" "$per_agent"
printf '  %-56s %9s KiB\n' "per agent, marginal: (all - half) / the other half" "$marginal"
printf '  %-56s %9s KiB\n' "per agent, allocated memory only (RssAnon, all - idle)" \
  "$(val memory coord_anon_kib_per_agent)"
printf '  %-56s %9s KiB\n' "floor: drover-rpc-echo, per connection + bidi stream" "$floor_stream"
printf '  %-56s %9s KiB\n' "floor: the same, marginal" "$floor_marginal"
printf '  %-56s %9s KiB\n' "floor: drover-rpc-echo, per bare connection, marginal" \
  "$(val memory echo_kib_per_conn_marginal)"
printf '  %-56s %9s / %s\n' "ratio to the floor: per agent / marginal" \
  "$(ratio "$per_agent" "$floor_stream")" "$(ratio "$marginal" "$floor_marginal")"
printf '  %-56s %9s KiB\n' "the simulator's own memory per agent (client side)" "$(val memory sim_kib_per_agent)"
echo
echo "B. dispatch: $JOBS jobs (\"true\", ended at once by the agent), $AGENTS agents x $SLOTS slots, $IN_FLIGHT Submits in flight, wait=$(val dispatch wait) log_batch=$(val dispatch log_batch)"
printf '  %-56s %9s jobs/s   (goal >= 5000)\n' "first Submit to the last job's end" "$rate"
printf '  %-56s %9s s\n' "elapsed" "$(val dispatch dispatch_seconds)"
printf '  %-56s %9s ms / %s ms\n' "job latency p50 / p99 (Submit sent to Wait reply)" \
  "$(val dispatch job_latency_p50_ms)" "$(val dispatch job_latency_p99_ms)"
printf '  %-56s %9s us/job (loop thread %s us)\n' "coordinator CPU" \
  "$(val dispatch coord_cpu_us_per_job)" "$(val dispatch coord_loop_us_per_job)"
printf '  %-56s %9s / %s of the run\n' "loop thread on a CPU / runnable, waiting for one" \
  "$(val dispatch coord_loop_on_cpu)" "$(val dispatch coord_loop_waiting_for_cpu)"
printf '  %-56s %9s jobs/s (derived: 1 s / loop us per job)\n' "loop thread ceiling on a free CPU" \
  "$(awk -v u="$(val dispatch coord_loop_us_per_job)" 'BEGIN { if (u > 0) printf "%.0f", 1e6 / u; else print "-" }')"
printf '  %-56s %9s us/job\n' "simulator CPU (agents and client, same machine)" \
  "$(val dispatch sim_cpu_us_per_job)"
printf '  %-56s %9s unary calls/s   ratio %s\n' "floor: drover-rpc-echo unary, same count, one conn" \
  "$echo_rate" "$(ratio "$rate" "$echo_rate")"
printf '  %-56s %9s jobs/s   ratio %s\n' "floor: store group commit (bench_store, 4 changes/job)" \
  "$store_rate" "$(ratio "$rate" "$store_rate")"
printf '  %-56s %9s jobs/s\n' "store, a transaction per change (bench_store)" "$store_base"
printf '  %-56s %9s of %s succeeded; %s of %s event trails checked are wrong\n' "stored afterwards (List, Events)" \
  "$(val dispatch verify_succeeded)" "$JOBS" "$(val dispatch verify_events_bad)" \
  "$(val dispatch verify_events_checked)"
printf '  %-56s %9s / %s (memory / dispatch)\n' "drover server exit status after SIGTERM" \
  "$(val memory coord_exit)" "$(val dispatch coord_exit)"
keep=0
