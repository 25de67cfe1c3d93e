# agent_env.sh - sourced by the agent benchmarks: a scratch folder $T, removed
# on exit together with the agent whose pid is in $AGENT (if still running),
# and now() for wall-clock seconds with nanoseconds.
T=$(mktemp -d)
AGENT=
cleanup() {
  [ -n "$AGENT" ] && kill -TERM "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s.%N; }
