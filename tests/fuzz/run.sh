#!/bin/sh
# run.sh BUILD_DIR - runs every built fuzz target for ${FUZZ_SECONDS:-30}s,
# each with its own corpus directory under BUILD_DIR/fuzz-corpus/.
set -eu
build=${1:?usage: tests/fuzz/run.sh BUILD_DIR (configured with -Dfuzz=true)}
secs=${FUZZ_SECONDS:-30}
found=0
status=0
for t in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  found=1
  name=$(basename "$t")
  corpus="$build/fuzz-corpus/$name"
  artifacts="$build/fuzz-artifacts"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzzing $name for ${secs}s (corpus $corpus, crashes in $artifacts)"
  # A crash makes the target exit non-zero: report it and go on to the next.
  if ! "$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts/$name-" \
      "$corpus" >"$artifacts/$name.log" 2>&1; then
    echo "error: $name failed: see '$artifacts/$name.log' and $artifacts/$name-*" >&2
    status=1
  fi
  tail -n 6 "$artifacts/$name.log"
done
if [ "$found" = 0 ]; then
  echo "error: no fuzz targets in '$build/tests/fuzz': configure it with 'CC=clang meson setup $build -Dfuzz=true'" >&2
  exit 1
fi
exit $status
