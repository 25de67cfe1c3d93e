#!/usr/bin/env bash
# Runs every benchmark against the release build in $1; figures are printed,
# nothing passes or fails on a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
for b in bench/bench_*.sh; do
  [ -e "$b" ] || continue
  echo "== $b"
  bash "$b" "$BUILD"
done
