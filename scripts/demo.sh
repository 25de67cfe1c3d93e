#!/usr/bin/env bash
# make demo: `drover run` once, then a few jobs through the stand-alone
# jobs-directory agent, and what became of them. Needs only bash, coreutils and
# /usr/bin/python3 (for the summary table).
set -euo pipefail
DROVER=$(realpath "${1:-build/drover}")
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/drover-demo.XXXXXX")
J=$T/jobs
AGENT=
trap '[ -n "$AGENT" ] && kill -TERM "$AGENT" 2>/dev/null; wait 2>/dev/null || true' EXIT

# Headings in bold on a terminal, plain in a log.
if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B= N=; fi
say() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }

"$DROVER" version
say "drover run -- echo hello"
"$DROVER" run -- echo hello
say "drover run --timeout 1s -- 'sleep 5'   (exit code 124 on timeout)"
code=0
"$DROVER" run --timeout 1s -- 'sleep 5' || code=$?
echo "exit code: $code"

say "jobs directory $J"
mkdir -p "$J"
# Writers write a temporary name, then rename: the agent only takes *.json.
drop() { cat > "$J/.$1.tmp"; mv "$J/.$1.tmp" "$J/$1"; }
drop hello.json <<'EOF'
{"id": "hello", "name": "a shell job",
 "command": "echo \"hello from $(uname -n)\"; echo 'and a line on stderr' >&2"}
EOF
drop uname.json <<'EOF'
{"id": "uname", "name": "an exec job (no shell)", "kind": "exec", "argv": ["uname", "-sr"]}
EOF
drop build.json <<'EOF'
{"id": "build", "name": "a python script reporting progress", "kind": "script",
 "interpreter": "/usr/bin/python3",
 "script": "import os, time\nfd = int(os.environ['DROVER_PROGRESS_FD'])\nfor i in range(1, 5):\n    print('step', i, 'of 4', flush=True)\n    os.write(fd, f'{i * 25} step{i} working on it\\n'.encode())\n    time.sleep(0.3)\n"}
EOF
drop slow.json <<'EOF'
{"id": "slow", "name": "a job that times out", "command": "sleep 30", "timeout": "1s",
 "kill_grace": "1s"}
EOF
drop broken.json <<'EOF'
{"id": "broken", "command": "true",
 "timeout": "soon"}
EOF
ls "$J"

say "drover agent --jobs-dir $J --slots 2"
"$DROVER" agent --jobs-dir "$J" --slots 2 2>"$T/agent.log" &
AGENT=$!
deadline=$((SECONDS + 60))
for f in hello uname build slow; do
  until [ -e "$J/results/$f.json" ]; do
    [ $SECONDS -lt $deadline ] || { echo "demo: timed out waiting for $f"; cat "$T/agent.log"; exit 1; }
    sleep 0.1
  done
done
until [ -e "$J/failed/broken.json.error.txt" ]; do sleep 0.1; done
kill -TERM "$AGENT"
wait "$AGENT"
AGENT=
sed 's/^/  agent: /' "$T/agent.log" | head -n 20

say "results"
"$PY" - "$J" <<'EOF'
import json, os, sys
d = sys.argv[1]
print(f"  {'id':<8} {'status':<10} {'exit':>4} {'ms':>6}  name")
for f in sorted(os.listdir(os.path.join(d, "results"))):
    r = json.load(open(os.path.join(d, "results", f)))
    exit_code = r["exit_code"] if r["exit_code"] is not None else "-"
    print(f"  {r['id']:<8} {r['status']:<10} {exit_code:>4} {r['duration_ms']:>6}  {r['name']}")
    if r.get("progress"):
        p = r["progress"]
        print(f"  {'':<8} last progress: {p['percent']}% {p['stage']}: {p['message']}")
EOF
say "the malformed file is explained in failed/broken.json.error.txt"
sed 's/^/  /' "$J/failed/broken.json.error.txt"
say "logs/build.log (one line per output line: time, stream, text)"
sed "s/^/  /" "$J/logs/build.log" | tail -n 6
say "logs/hello.log"
sed 's/^/  /' "$J/logs/hello.log"

say "where things are"
for sub in done failed results logs; do
  printf '  %-8s %s\n' "$sub/" "$(ls "$J/$sub" | tr '\n' ' ')"
done
echo
echo "  everything is in $T (remove it when done)"
