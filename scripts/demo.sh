#!/usr/bin/env bash
# make demo: drover's main job on the embedded default. Starts `drover dev` (a
# coordinator and one agent in one process, on a SQLite store in a temporary
# folder), drives a few jobs through the CLI (output live, a failing one, a
# cancelled one, a live log, one that reports progress), shows what the
# coordinator kept of them, then stops drover dev gracefully.
set -euo pipefail
DROVER=$(realpath "${1:-build/drover}")
T=$(mktemp -d "${TMPDIR:-/tmp}/drover-demo.XXXXXX")
DEV=
stop_dev() {
  if [ -n "$DEV" ] && kill -0 "$DEV" 2>/dev/null; then
    kill -TERM "$DEV"
    wait "$DEV" || true
  fi
  DEV=
}
trap stop_dev EXIT

# Headings in bold on a terminal, plain in a log.
if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B= N=; fi
say() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
run() { printf '%s$ %s%s\n' "$B" "$*" "$N"; "$@"; }

"$DROVER" version
say "drover dev: a coordinator and one agent, data in $T/data"
"$DROVER" dev --listen 127.0.0.1:0 --data "$T/data" --slots 2 >"$T/dev.out" 2>"$T/dev.err" &
DEV=$!
for _ in $(seq 200); do
  ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$T/dev.out")
  [ -n "$ADDR" ] && break
  kill -0 "$DEV" 2>/dev/null || { cat "$T/dev.err"; exit 1; }
  sleep 0.05
done
[ -n "$ADDR" ] || { echo "demo: drover dev did not start"; cat "$T/dev.err"; exit 1; }
export DROVER_ADDR=$ADDR
echo "listening on $ADDR (the CLI finds it through DROVER_ADDR)"
for _ in $(seq 200); do
  "$DROVER" node list --json 2>/dev/null | grep -q '"state": *"ready"' && break
  sleep 0.05
done
run "$DROVER" node list

say "a job runs on the node; its output comes back live, byte for byte, with its exit code"
run "$DROVER" job run -- 'echo "hello from $(uname -n)"; echo "and a line on stderr" >&2'

say "a failing job: drover job run exits with the job's own code"
code=0
run "$DROVER" job run --name "a failing step" -- 'echo compiling; exit 3' || code=$?
echo "exit code: $code"

say "a timeout: exit code 124, as timeout(1)"
code=0
run "$DROVER" job run --timeout 500ms --kill-grace 1s -- 'sleep 30' || code=$?
echo "exit code: $code"

say "a long job in the background, its log followed live, then cancelled"
slow=$("$DROVER" job submit --name "a slow counter" -- \
  'for i in $(seq 1 100); do echo "tick $i"; sleep 0.1; done')
echo "submitted: $slow"
"$DROVER" job logs -f "$slow" >"$T/follow.out" 2>&1 &
FOLLOW=$!
until grep -q "tick 5" "$T/follow.out" 2>/dev/null; do sleep 0.05; done
echo "the log so far:"
sed 's/^/  /' "$T/follow.out"
run "$DROVER" job cancel "$slow" --grace 1s
wait "$FOLLOW" || true
code=0
"$DROVER" job wait "$slow" || code=$?
echo "job wait exits $code (128 + SIGTERM): the job was cancelled"

say "a script that reports progress, submitted as a job document"
cat >"$T/build.json" <<'EOF'
{"name": "a python script reporting progress", "kind": "script",
 "interpreter": "/usr/bin/python3", "labels": {"team": "demo"},
 "script": "import os, time\nfd = int(os.environ['DROVER_PROGRESS_FD'])\nfor i in range(1, 5):\n    print('step', i, 'of 4', flush=True)\n    os.write(fd, f'{i * 25} step{i} working on it\\n'.encode())\n    time.sleep(0.2)\n"}
EOF
build=$("$DROVER" job submit -f "$T/build.json")
run "$DROVER" job wait "$build"
run "$DROVER" job status "$build"

say "what the coordinator kept: every job, its events, its log"
run "$DROVER" job list
run "$DROVER" job events "$slow"
run "$DROVER" job logs --timestamps "$build"

say "stopping drover dev (SIGTERM: the agent says goodbye, the store is closed)"
stop_dev
tail -n 3 "$T/dev.err" | sed 's/^/  /'
echo
echo "  everything is in $T (remove it when done)"
