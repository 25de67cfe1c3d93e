#!/usr/bin/env bash
# gRPC benchmark on loopback h2c: drover-rpc-echo client->server against the grpcio
# (Python) client->server baseline: unary latency, bidi streaming throughput for
# 100 B and 64 KiB messages, and memory per idle connection on our server.
# Usage: bash bench/bench_rpc.sh BUILD_DIR (a release build with drover-rpc-echo).
# Prints figures only; nothing passes or fails on a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
ECHO="$BUILD/drover-rpc-echo"
PY=/usr/bin/python3
GRPCIO="bench/rpc_grpcio.py"
SECS=${BENCH_RPC_SECONDS:-3}
CONNS=${BENCH_RPC_CONNS:-1000}
[ -x "$ECHO" ] || { echo "error: '$ECHO' missing: build it first (ninja -C $BUILD)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/bench-rpc.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
export DROVER_RPC_STUBS="$TMP/stubs"
$PY -c "import sys; sys.path.insert(0, 'tests/e2e/rpc'); import grpc_echo; grpc_echo.generate_stubs('$TMP/stubs')"
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# start_server NAME CMD...: runs the server, waits for "listening ADDR", sets ADDR_NAME and PID_NAME.
start_server() {
  local name=$1; shift
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 100); do
    if grep -q '^listening ' "$TMP/$name.out"; then break; fi
    sleep 0.1
  done
  local addr
  addr=$(sed -n 's/^listening //p' "$TMP/$name.out" | head -n1)
  [ -n "$addr" ] || { echo "error: $name server did not start:" >&2; cat "$TMP/$name.err" >&2; exit 1; }
  printf -v "ADDR_$name" '%s' "$addr"
  printf -v "PID_$name" '%s' "$pid"
}

ADDR_ours="" ADDR_grpcio="" PID_ours="" PID_grpcio="" ADDR_pinned="" PID_pinned=""
start_server ours "$ECHO" serve --listen 127.0.0.1:0 --max-message-size 16777216
# The same server and client on one CPU: on a VM whose idle vCPUs halt at once
# (no halt-polling), each cross-CPU wakeup costs tens of microseconds, twice per
# round trip; pinning both sides to one CPU shows what the library itself costs.
start_server pinned taskset -c 0 "$ECHO" serve --listen 127.0.0.1:0
start_server grpcio $PY "$GRPCIO" serve --listen 127.0.0.1:0 --max-message-size 16777216

# JSON results per side, one line per run, in $TMP/<side>.json
run() {
  local side=$1; shift
  local out
  if [ "$side" = ours ]; then
    out=$("$ECHO" bench --target "$ADDR_ours" --seconds "$SECS" "$@")
  else
    out=$($PY "$GRPCIO" bench --target "$ADDR_grpcio" --seconds "$SECS" "$@")
  fi
  echo "$out" | tail -n1 >>"$TMP/$side.json"
}
for side in ours grpcio; do
  run "$side" --mode unary --size 100
  run "$side" --mode stream --size 100
  run "$side" --mode stream --size 65536
done
taskset -c 0 "$ECHO" bench --target "$ADDR_pinned" --seconds "$SECS" --mode unary --size 100 |
  tail -n1 >"$TMP/pinned.json"

$PY "$GRPCIO" idle --target "$ADDR_ours" --pid "$PID_ours" --conns "$CONNS" >"$TMP/idle-ours.json"
$PY "$GRPCIO" idle --target "$ADDR_grpcio" --pid "$PID_grpcio" --conns "$CONNS" >"$TMP/idle-grpcio.json"

$PY - "$TMP" "$SECS" <<'EOF'
import json, sys
tmp, secs = sys.argv[1], sys.argv[2]
def load(side):
    return [json.loads(l) for l in open(f"{tmp}/{side}.json") if l.strip()]
ours, grpcio = load("ours"), load("grpcio")
rows = [
    ("unary 100 B p50 (us)", 0, "p50_us", "lower"),
    ("unary 100 B p99 (us)", 0, "p99_us", "lower"),
    ("unary 100 B mean (us)", 0, "mean_us", "lower"),
    ("bidi 100 B (msgs/s)", 1, "msgs_per_s", "higher"),
    ("bidi 100 B (MB/s)", 1, "mb_per_s", "higher"),
    ("bidi 64 KiB (msgs/s)", 2, "msgs_per_s", "higher"),
    ("bidi 64 KiB (MB/s)", 2, "mb_per_s", "higher"),
]
print(f"rpc on loopback h2c, one connection, {secs} s per run")
print(f"{'metric':<24}{'ours':>14}{'grpcio':>14}{'ours/grpcio':>13}")
for name, i, key, better in rows:
    a, b = ours[i].get(key), grpcio[i].get(key)
    ratio = f"{a / b:.2f}" if a is not None and b else "-"
    print(f"{name:<24}{a if a is not None else '-':>14}{b if b is not None else '-':>14}{ratio:>13}  ({better} is better)")
# The machine's floor in the same run: a raw TCP ping-pong of the same size,
# measured by drover-rpc-echo bench just before its gRPC round trips.
pinned = json.load(open(f"{tmp}/pinned.json"))
print(f"unary 100 B, raw TCP ping-pong floor (same run): p50 {ours[0].get('tcp_p50_us')} us, "
      f"p99 {ours[0].get('tcp_p99_us')} us; gRPC adds {ours[0]['p50_us'] - ours[0].get('tcp_p50_us', 0):.0f} us at p50")
print(f"unary 100 B, client and server pinned to one CPU: p50 {pinned['p50_us']} us, "
      f"p99 {pinned['p99_us']} us (raw TCP {pinned.get('tcp_p50_us')} us; gRPC adds "
      f"{pinned['p50_us'] - pinned.get('tcp_p50_us', 0):.0f} us)")
for side in ("ours", "grpcio"):
    d = json.load(open(f"{tmp}/idle-{side}.json"))
    print(f"idle h2c connections on {side} server: {d['conns']} opened ({d['answered']} answered, "
          f"{d['open']} still open), VmRSS {d['rss_before_kb'] / 1024:.1f} -> "
          f"{d['rss_after_kb'] / 1024:.1f} MiB = {d['per_conn_bytes'] / 1024:.1f} KiB per connection")
EOF
