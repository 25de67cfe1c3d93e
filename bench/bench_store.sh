#!/usr/bin/env bash
# bench_store.sh BUILD - job state changes per second through the store
# (bench/bench_store.c): group commit with many jobs in flight, against one
# transaction per change, both in the same run on the same disk.
#
# The figures are those of the disk under TMPDIR (default /tmp): every
# commit is an fsync (synchronous=FULL), so a tmpfs there would show
# SQLite's CPU cost, not the store's. JOBS, IN_FLIGHT and BASELINE_JOBS
# size the run. Prints figures only; nothing passes or fails on them.
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/bench/bench_store
JOBS=${JOBS:-50000}
IN_FLIGHT=${IN_FLIGHT:-1000}
BASELINE_JOBS=${BASELINE_JOBS:-500}
[ -x "$BIN" ] || { echo "error: '$BIN' missing: build it first (ninja -C $BUILD)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-store.XXXXXX")
trap 'rm -rf "$T"' EXIT
echo "store on $(df --output=fstype "$T" | tail -n1) under ${TMPDIR:-/tmp}; 4 changes a job (put + event + sync each)"
"$BIN" "$T" "$JOBS" "$IN_FLIGHT" "$BASELINE_JOBS"
