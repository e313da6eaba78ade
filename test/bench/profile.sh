#!/usr/bin/env bash
# profile.sh - CPU profile of a mintun pair under iperf3 load (docs/PERFORMANCE.md "Profile").
#
#   sudo test/bench/profile.sh [SECONDS=10] [IPERF_ARGS...]     e.g. profile.sh 10 -P 4
#
# Creates namespaces mbp-a / mbp-b joined by a veth (underlay 10.203.0.1/.2), starts
# mintund on both sides through mintun-cmd.sh with `node --cpu-prof`, waits until both
# hold the peer's record, runs iperf3 a->b over the overlay, stops the daemons with
# SIGTERM (V8 writes the profile on exit) and prints the top 25 self-time functions of
# each side (profile-summary.mjs). Profiles stay in PROF_DIR (default
# /var/tmp/mintun-bench/profile-DATE). Everything runs inside the two namespaces; they
# and the processes (by pid) are removed on exit.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SECS=${1:-10}; shift || true
NS_A=mbp-a; NS_B=mbp-b
PROF_DIR=${PROF_DIR:-/var/tmp/mintun-bench/profile-$(date -u +%Y%m%d-%H%M%S)}
WORK=$PROF_DIR/work
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
for ns in $NS_A $NS_B; do
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qx $ns && { echo "namespace $ns exists" >&2; exit 2; }
done
mkdir -p "$PROF_DIR/a" "$PROF_DIR/b" "$WORK"

PIDS=()
cleanup() {
  local p i
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$p" 2>/dev/null || true
  done
  ip netns del $NS_A 2>/dev/null || true; ip netns del $NS_B 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add $NS_A; ip netns add $NS_B
ip -n $NS_A link set lo up; ip -n $NS_B link set lo up
ip -n $NS_A link add mbpv-a type veth peer name mbpv-b netns $NS_B
ip -n $NS_A addr add 10.203.0.1/24 dev mbpv-a; ip -n $NS_B addr add 10.203.0.2/24 dev mbpv-b
ip -n $NS_A link set mbpv-a up; ip -n $NS_B link set mbpv-b up

start() {  # side ns local peer overlay peer-overlay
  ip netns exec "$2" env AB_SIDE="$1" AB_LOCAL_UNDERLAY="$3" AB_LOCAL_PORT=7000 AB_PEER_HOST="$4" \
    AB_PEER_PORT=7000 AB_LOCAL_OVERLAY="$5" AB_PEER_OVERLAY="$6" AB_WORK="$WORK/cmd" \
    MINTUN_BENCH_NODE_OPTS="--cpu-prof --cpu-prof-dir=$PROF_DIR/$1" \
    "$HERE/mintun-cmd.sh" >"$PROF_DIR/$1.log" 2>&1 </dev/null &
  PIDS+=($!)
}
start b $NS_B 10.203.0.2 10.203.0.1 10.202.0.2 10.202.0.1
sleep 1
start a $NS_A 10.203.0.1 10.203.0.2 10.202.0.1 10.202.0.2
ok=0
for i in $(seq 300); do
  AB_WORK=$WORK "$HERE/mintun-cmd.sh" ready 2>/dev/null && { ok=1; break; }
  sleep 0.1
done
[ $ok = 1 ] || { echo "mintun pair not ready; logs:" >&2; cat "$PROF_DIR"/*.log >&2; exit 1; }

ip netns exec $NS_B timeout $((SECS + 30)) iperf3 -s -1 >"$PROF_DIR/iperf-server.log" 2>&1 &
PIDS+=($!)
sleep 0.5
ip netns exec $NS_A ping -n -q -c 3 -i 0.2 10.202.0.2 >/dev/null 2>&1 || echo "warning: warm-up ping failed" >&2
timeout $((SECS + 30)) ip netns exec $NS_A iperf3 -c 10.202.0.2 -t "$SECS" "$@" | tee "$PROF_DIR/iperf-client.log" | tail -4

# where packets were lost: UDP counters of both namespaces (iperf3's socket and the
# daemons'), the TUN devices' counters, the daemons' own counters
for s in a b; do
  ns=$([ $s = a ] && echo $NS_A || echo $NS_B)
  { echo "== $s"; ip netns exec "$ns" grep '^Udp:' /proc/net/snmp; ip -n "$ns" -s link show mtb0 2>/dev/null
    timeout 5 "$HERE/../../bin/mintun" status --socket "$WORK/cmd/$s.sock" --json 2>/dev/null; echo; } \
    >"$PROF_DIR/counters-$s.txt" 2>&1 || true
done
# SIGTERM the daemons (pids are node's: mintun-cmd.sh execs it); wait for the profiles
for p in "${PIDS[@]:0:2}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${PIDS[@]:0:2}"; do for i in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done; done
for s in a b; do
  f=$(ls -t "$PROF_DIR/$s"/*.cpuprofile 2>/dev/null | head -1)
  echo
  echo "#### side $s ($([ $s = a ] && echo 'iperf3 client / sender' || echo 'iperf3 server / receiver'))"
  echo
  if [ -n "$f" ]; then node "$HERE/profile-summary.mjs" "$f" 25; else echo "no profile written for $s"; fi
done
echo
echo "profiles: $PROF_DIR/{a,b}/*.cpuprofile" >&2
