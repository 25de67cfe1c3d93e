#!/usr/bin/env bash
# bench_container.sh BUILD - what a container job through drover costs
# against `docker run --rm` of the same image and command, in the same run
# (goal: not slower). Both go through the same Docker engine: $DOCKER_HOST,
# else /var/run/docker.sock, else a dockerd started here under a temp dir
# (as the e2e tests do; needs root and docker.io). The image is
# local/busybox:1, imported from busybox-static when missing. One harness
# (bench/bench_spawn.c) times both sides.
set -euo pipefail
BUILD=${1:-build}
DROVER=$(realpath "$BUILD/drover")
SPAWN=$BUILD/bench/bench_spawn
N=${N:-20}
IMAGE=local/busybox:1
if [ ! -x "$SPAWN" ]; then
  SPAWN=$(mktemp -d)/bench_spawn
  cc -O2 -o "$SPAWN" "$(dirname "$0")/bench_spawn.c"
fi
DOCKER=$(command -v docker || true)
if [ -z "$DOCKER" ]; then
  echo "skipped: no docker CLI (apt-get install docker.io) for the baseline"
  exit 0
fi

ping() { curl -sf --max-time 2 --unix-socket "$1" http://docker/_ping >/dev/null 2>&1; }
SOCK=""
TMP=""
DPID=""
cleanup() {
  if [ -n "$DPID" ]; then
    kill "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
  fi
  [ -n "$TMP" ] && rm -rf "$TMP"
}
trap cleanup EXIT
if [ -n "${DOCKER_HOST:-}" ] && ping "${DOCKER_HOST#unix://}"; then
  SOCK=${DOCKER_HOST#unix://}
elif ping /var/run/docker.sock; then
  SOCK=/var/run/docker.sock
else
  if [ "$(id -u)" != 0 ] || ! command -v dockerd >/dev/null; then
    echo "skipped: no Docker engine answers, and dockerd cannot be started here (root, docker.io)"
    exit 0
  fi
  TMP=$(mktemp -d /tmp/drover-bench-dockerd-XXXXXX)
  SOCK=$TMP/docker.sock
  dockerd --iptables=false --ip-masq=false --bridge=none --data-root "$TMP/data" \
    --exec-root "$TMP/exec" --pidfile "$TMP/docker.pid" -H "unix://$SOCK" \
    >"$TMP/dockerd.log" 2>&1 &
  DPID=$!
  for _ in $(seq 300); do ping "$SOCK" && break; sleep 0.1; done
  ping "$SOCK" || { echo "skipped: dockerd did not start: $(tail -n 3 "$TMP/dockerd.log")"; exit 0; }
fi
export DOCKER_HOST=unix://$SOCK
if ! "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
  tar -C "$root" -cf "$root.tar" .
  "$DOCKER" import "$root.tar" "$IMAGE" >/dev/null
  rm -rf "$root" "$root.tar"
fi

# The machine is shared and a container's start varies with the engine's
# load: each side runs in ROUNDS rounds of N, alternating, and the figure is
# the median of the rounds' medians, so a slow spell hits both sides alike.
ROUNDS=${ROUNDS:-3}
M=0
measure() { # label, command... -> prints the figures, sets M to the median (us)
  local label=$1; shift
  local out
  out=$("$SPAWN" "$N" "$@")
  printf '    %-52s %s\n' "$label" "$out"
  M=$(echo "$out" | sed -n 's/.*median_us=\([0-9]*\).*/\1/p')
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'; }

echo "engine $DOCKER_HOST; $ROUNDS rounds of $N runs each, wall time per run:"
d_argv=(); r_argv=(); d_sh=(); r_sh=()
for round in $(seq "$ROUNDS"); do
  echo "  round $round (median, 90th percentile, mean):"
  measure "docker run --rm $IMAGE true" "$DOCKER" run --rm "$IMAGE" true; d_argv+=("$M")
  measure "drover run --image $IMAGE --exec -- true" "$DROVER" run --image "$IMAGE" --exec -- true
  r_argv+=("$M")
  measure "drover run --image $IMAGE -- 'echo hi'" "$DROVER" run --image "$IMAGE" -- 'echo hi'
  r_sh+=("$M")
  measure "docker run --rm --entrypoint /bin/sh $IMAGE -c 'echo hi'" \
    "$DOCKER" run --rm --entrypoint /bin/sh "$IMAGE" -c 'echo hi'; d_sh+=("$M")
done
da=$(median "${d_argv[@]}"); ra=$(median "${r_argv[@]}")
ds=$(median "${d_sh[@]}"); rs=$(median "${r_sh[@]}")
echo "argv:  drover ${ra} us vs docker run --rm ${da} us: $(ratio "$ra" "$da")"
echo "shell: drover ${rs} us vs docker run --rm ${ds} us: $(ratio "$rs" "$ds")"
