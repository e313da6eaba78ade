#!/usr/bin/env bash
# startup.sh - time from launching mintund to the first echo reply over a fresh tunnel:
# two namespaces on a veth, b already running, then a is launched and pings b's overlay
# address every 10 ms as soon as its route exists. Prints the route and first-reply times,
# a's CPU time (user + system, /proc, 10 ms ticks) at its first reply, and a's start-up
# trace (src/startup.ts). b keeps running, so from the second run on a starts with b's
# record cached on disk from its previous run (records.ts) unless STARTUP_NO_CACHE=1.
#   sudo test/bench/startup.sh [REPS]      (needs npm run build)
# STARTUP_NODE_OPTS: node flags for a, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p" (profile.sh-style)
# MINTUN_BENCH_ROOT: another built tree whose bin/mintund runs as a and b (before/after)
set -u
cd "$(dirname "$0")/../.."
REPS=${1:-3}
ROOT=${MINTUN_BENCH_ROOT:-.}
W=$(mktemp -d "${TMPDIR:-/tmp}/mintun-startup.XXXXXX")
A=mtsu$$-a; B=mtsu$$-b; PIDS=()
M="node bin/mintun"
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null; rm -rf "$W"
}
trap cleanup EXIT
$M ca init --dir $W/ca --name su-ca >/dev/null
for h in a b; do $M keygen --out $W/$h.key >/dev/null; done
$M ca sign-host --ca $W/ca --name a --key $W/a.key --ip4 10.77.0.1 --out $W/a.crt >/dev/null
$M ca sign-host --ca $W/ca --name b --key $W/b.key --ip4 10.77.0.2 --out $W/b.crt >/dev/null
for h in a b; do
  o=$([ $h = a ] && echo b || echo a); oip=$([ $h = a ] && echo 10.201.0.2 || echo 10.201.0.1)
  printf "ca: %s\nhost: {key: %s, cert: %s}\nlisten: 0.0.0.0:7000\ntun: {name: mt0}\npeers: [{name: %s, endpoint: '%s:7000'}]\napi: {socket: %s}\nstate: %s\nlog: {level: warn}\n" \
    $W/ca/ca.crt $W/$h.key $W/$h.crt $o $oip $W/$h.sock $W/st-$h >$W/$h.yaml
done
ip netns add $A; ip netns add $B
ip -n $A link set lo up; ip -n $B link set lo up
ip -n $A link add v0 type veth peer name v0 netns $B
ip -n $A addr add 10.201.0.1/24 dev v0; ip -n $B addr add 10.201.0.2/24 dev v0
ip -n $A link set v0 up; ip -n $B link set v0 up
ip netns exec $B env -u NODE_EXTRA_CA_CERTS node $ROOT/bin/mintund --config $W/b.yaml >$W/b.log 2>&1 &
PIDS+=($!)
sleep 1.5
for r in $(seq "$REPS"); do
  t0=$(date +%s%N)
  [ "${STARTUP_NO_CACHE:-0}" = 1 ] && rm -rf $W/st-a/records
  # as under systemd: without the shell's NODE_EXTRA_CA_CERTS (see mintun-cmd.sh)
  ip netns exec $A env -u NODE_EXTRA_CA_CERTS MINTUN_STARTUP_TRACE=$W/trace-a.jsonl node ${STARTUP_NODE_OPTS:-} $ROOT/bin/mintund --config $W/a.yaml >$W/a.log 2>&1 &
  pa=$!; PIDS+=($pa)
  for i in $(seq 2000); do ip -n $A route get 10.77.0.2 >/dev/null 2>&1 && break; sleep 0.005; done
  tr=$(date +%s%N)
  ts=$(ip netns exec $A timeout 10 ping -D -n -i 0.01 10.77.0.2 2>/dev/null | sed -n '/bytes from/{s/^\[\([0-9.]*\)\].*/\1/p;q}')
  cpu=$(awk '{print ($14 + $15) * 10}' /proc/$pa/stat 2>/dev/null)
  echo "run $r: route after $(((tr - t0) / 1000000)) ms, first reply after $(awk -v ts="$ts" -v t0="$t0" 'BEGIN{printf "%.0f", ts*1000 - t0/1e6}') ms, a's CPU ${cpu:-?} ms"
  kill $pa; wait $pa 2>/dev/null
  [ -s $W/trace-a.jsonl ] && echo "  trace (ms since process start): $(tail -1 $W/trace-a.jsonl)"
  sleep 0.5
done
