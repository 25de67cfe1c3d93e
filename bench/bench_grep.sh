#!/usr/bin/env bash
# bench_grep.sh BUILD - the grep tool over a 100 MB tree against GNU grep.
# The tree is made here (seeded, so every run searches the same bytes): 1,600
# text files of ~64 KB in 40 folders, plus a few binary files. Each pattern is
# searched by
#   GNU grep:  grep -rnI -E PATTERN .   (LC_ALL=C, output to /dev/null)
#   tool-exec: drover tool-exec --tool-root TREE grep   (the tool alone)
#   drover run --tool grep                              (the whole tool job)
# and the median of RUNS runs is printed, with the ratio to GNU grep (goal for
# the tool: at most 1.5x). Figures only: nothing passes or fails on a timing;
# the script fails when the tool and GNU grep do not find the same number of
# lines.
set -euo pipefail
BUILD=${1:-build}
DROVER=$(realpath "$BUILD/drover")
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-100}
WORK=$(mktemp -d /tmp/drover-bench-grep.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

/usr/bin/python3 - "$WORK/tree" "$SIZE_MB" <<'EOF'
import os, random, sys
root, size_mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9)))
         for _ in range(5000)]
per_file = 64 * 1024
nfiles = size_mb * 1024 * 1024 // per_file
for i in range(nfiles):
    d = os.path.join(root, f"d{i % 40:02d}", f"s{i % 7}")
    os.makedirs(d, exist_ok=True)
    lines, n = [], 0
    while n < per_file:
        line = " ".join(rnd.choice(words) for _ in range(rnd.randint(4, 14)))
        r = rnd.random()
        if r < 0.0005:
            line += " zqneedle"
        elif r < 0.002:
            line += f" error_{rnd.randint(0, 999):03d} occurred"
        lines.append(line)
        n += len(line) + 1
    with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
for i in range(20):  # binary files: skipped by both (-I)
    with open(os.path.join(root, f"d{i:02d}", f"blob{i}.bin"), "wb") as f:
        f.write(rnd.randbytes(256 * 1024).replace(b"\0", b"\1") + b"\0zqneedle\0")
EOF
echo "tree: $(du -sm "$WORK/tree" | cut -f1) MB in $(find "$WORK/tree" -type f | wc -l) files"
# Read once so every contender starts from the page cache.
cat $(find "$WORK/tree" -type f) >/dev/null

median() { # command... -> median wall ms of RUNS runs
  /usr/bin/python3 - "$RUNS" "$@" <<'EOF'
import subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
t = []
for _ in range(runs):
    s = time.monotonic()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t.append((time.monotonic() - s) * 1000)
t.sort()
print(f"{t[len(t) // 2]:.1f}")
EOF
}

cd "$WORK/tree"
printf '%-28s %10s %10s %10s %9s %9s\n' pattern "grep ms" "tool ms" "run ms" "tool/grep" "run/grep"
for pat in 'zqneedle' 'error_[0-9]{3} occurred' '^[a-z]+ zq' 'qx[a-f]{2}z'; do
  args=$(/usr/bin/python3 -c 'import json,sys; print(json.dumps({"pattern": sys.argv[1], "path": "."}))' "$pat")
  echo "$args" >"$WORK/args.json"
  g=$(LC_ALL=C median grep -rnI -E "$pat" .)
  t=$(median sh -c "exec '$DROVER' tool-exec --tool-root . --tool-max-bytes 1G grep <'$WORK/args.json'")
  r=$(median "$DROVER" run --tool-root . --tool-max-bytes 1G --tool grep --args "@$WORK/args.json")
  # the same matches, counted both ways
  ng=$(LC_ALL=C grep -rnI -E "$pat" . | wc -l || true)
  nt=$("$DROVER" tool-exec --tool-root . --tool-max-bytes 1G grep <"$WORK/args.json" |
    /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["matches"]))')
  printf '%-28s %10s %10s %10s %8sx %8sx  (matches: grep %s, tool %s)\n' "$pat" "$g" "$t" "$r" \
    "$(awk -v a="$t" -v b="$g" 'BEGIN { printf "%.2f", a / b }')" \
    "$(awk -v a="$r" -v b="$g" 'BEGIN { printf "%.2f", a / b }')" "$ng" "$nt"
  if [ "$ng" != "$nt" ]; then
    echo "error: grep found $ng lines, the tool $nt: they must agree" >&2
    exit 1
  fi
done
