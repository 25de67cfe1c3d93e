#!/usr/bin/env bash
# bench_passthrough.sh BUILD - drover run's stdout passthrough: a pipeline
# writing 100 MB of 99-byte lines (the last one without a newline) into a
# file, run by bash and by `drover run`, alternately, median of RUNS each.
# Also checks that drover's copy is byte-exact and that the result's line
# and byte counts are right. Figures only: nothing passes or fails on time.
set -euo pipefail
BUILD=${1:-build}
DROVER=$(realpath "$BUILD/drover")
RUNS=${RUNS:-3}
BYTES=${BYTES:-100000000}
CMD="head -c $BYTES /dev/zero | tr '\\0' x | fold -w 99"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: > "$T/bash.t"
: > "$T/drover.t"
for _ in $(seq "$RUNS"); do
  t0=$(now)
  bash -c "$CMD" > "$T/base.out"
  t1=$(now)
  "$DROVER" run -- "$CMD" > "$T/drover.out"
  t2=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }' >> "$T/bash.t"
  awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }' >> "$T/drover.t"
done
base=$(median < "$T/bash.t")
drv=$(median < "$T/drover.t")
exact=no
cmp -s "$T/base.out" "$T/drover.out" && exact=yes

# The counts, from --json (its document is the last line, after a newline
# that drover adds only because the output does not end with one).
"$DROVER" run --json -- "$CMD" > "$T/json.out"
doc=$(tail -n 1 "$T/json.out")
got_lines=$(echo "$doc" | sed -n 's/.*"stdout":{"lines":\([0-9]*\),"bytes":\([0-9]*\)}.*/\1/p')
got_bytes=$(echo "$doc" | sed -n 's/.*"stdout":{"lines":\([0-9]*\),"bytes":\([0-9]*\)}.*/\2/p')
want_bytes=$(stat -c %s "$T/base.out")
want_lines=$(($(wc -l < "$T/base.out") + ($(tail -c 1 "$T/base.out" | wc -l) == 0 ? 1 : 0)))

echo "a pipeline writing $want_bytes bytes ($want_lines lines) into a file, median of $RUNS:"
printf '  bash -c CMD > f:          %.3f s\n' "$base"
printf '  drover run -- CMD > f:    %.3f s\n' "$drv"
awk -v a="$drv" -v b="$base" 'BEGIN { printf "  ratio: %.2fx of bash\n", a / b }'
echo "  byte-exact: $exact; result counts: lines $got_lines (want $want_lines)," \
  "bytes $got_bytes (want $want_bytes)"
