#!/usr/bin/env bash
# bench_sandbox.sh BUILD - what the sandbox (issue 8) costs per job, beside a
# plain `drover run --exec -- /bin/true` measured in the same run: the job's
# cgroup (make, join before exec, kill, read figures, remove) on each code
# path, limits, and each isolation option; then cancel-to-dead for a job of
# 1,000 processes. Needs root (cgroups, namespaces); figures only.
set -euo pipefail
BUILD=${1:-build}
DROVER=$(realpath "$BUILD/drover")
SPAWN=$(realpath -m "$BUILD/bench/bench_spawn")
N=${N:-200}
if [ "$(id -u)" != 0 ]; then
  echo "  skipped: the sandbox needs root"
  exit 0
fi
if [ ! -x "$SPAWN" ]; then
  SPAWN=$(mktemp -d)/bench_spawn
  cc -O2 -o "$SPAWN" "$(dirname "$0")/bench_spawn.c"
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# The sandbox's own steps, without a drover process around them.
"$(realpath -m "$BUILD/bench/bench_sandbox")" "${NJ:-300}" 2>/dev/null

M=0
measure() { # label, drover run options... -> prints the figures, M = the median (us)
  local label=$1; shift
  local out
  out=$(cd "$T" && "$SPAWN" "$N" "$DROVER" run "$@" --exec -- /bin/true)
  printf '  %-40s %s\n' "$label" "$out"
  M=$(echo "$out" | sed -n 's/.*median_us=\([0-9]*\).*/\1/p')
}
plus() { echo "+$(($1 - base)) us"; }

echo "end to end: drover run --exec -- /bin/true, $N runs each (median, 90th percentile, mean):"
measure "--cgroups off (process group only)" --cgroups off; base=$M
measure "default: cgroup ($("$DROVER" run --log-level debug --exec -- /bin/true 2>&1 |
  sed -n 's/.*mode=//p'))" ; cg=$M
measure "--cgroups v1 (freezer kill)" --cgroups v1; v1=$M
measure "--cgroups v2 (cgroup.kill)" --cgroups v2; v2=$M
measure "--memory 64M --pids 100 --cpus 1" --memory 64M --pids 100 --cpus 1; lim=$M
measure "--network none" --network none; net=$M
measure "--read-only" --read-only; ro=$M
measure "--pid-namespace" --pid-namespace; pidns=$M
measure "--user nobody" --user nobody; usr=$M
measure "--hostname h" --hostname h; uts=$M
measure "--isolate" --isolate; iso=$M
echo "cost against --cgroups off (the same binary, no cgroup):"
echo "  cgroup per job (default):  $(plus "$cg")   v1: $(plus "$v1")   v2: $(plus "$v2")"
echo "  with three limits:         $(plus "$lim")"
echo "  --network none $(plus "$net"), --read-only $(plus "$ro"), --pid-namespace $(plus "$pidns")," \
  "--user $(plus "$usr"), --hostname $(plus "$uts")"
echo "  --isolate:                 $(plus "$iso")"
echo "  (each run also makes and removes drover run's own base group and starts"
echo "   the drover process; an agent makes its base once)"

# Cancel-to-dead: a job of 1,000 processes (half of them in sessions of their
# own, which a process-group kill misses), cancelled with no grace; the time
# from the signal to drover's exit, which waits until the job's cgroup is
# empty (off: until its process group is reaped).
cat > "$T/tree.py" <<'EOF'
import os, signal, subprocess, sys, time
drover, mode, d = sys.argv[1], sys.argv[2], sys.argv[3]
pids = os.path.join(d, "pids")
ready = os.path.join(d, "ready")
for f in (pids, ready):
    if os.path.exists(f):
        os.unlink(f)
script = ('for i in $(seq 500); do sleep 1000 & done; '
          'for i in $(seq 500); do setsid sleep 1000 & echo $! >> "%s"; done; '
          'echo > "%s"; wait' % (pids, ready))
p = subprocess.Popen([drover, "run", "--cgroups", mode, "--kill-grace", "0", "--", script],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while not os.path.exists(ready):
    time.sleep(0.01)
t0 = time.monotonic()
p.send_signal(signal.SIGTERM)
p.wait()
t1 = time.monotonic()
# What outlived the job (a process group cannot hold the setsid ones): ended here.
left = 0
for pid in map(int, open(pids).read().split()):
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] not in "ZX":
                left += 1
                os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        pass
print("  --cgroups %-4s cancel to drover's exit: %7.1f ms; processes left: %d"
      % (mode, (t1 - t0) * 1000, left))
EOF
echo "cancel-to-dead, a job of 1,000 processes (500 of them setsid), no kill grace:"
for mode in auto v1 off; do
  /usr/bin/python3 "$T/tree.py" "$DROVER" "$mode" "$T"
done
