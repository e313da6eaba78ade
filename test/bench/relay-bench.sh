#!/usr/bin/env bash
# relay-bench.sh - the relay host's throughput and CPU per GB (issue 17), without the delay
# router: four namespaces joined by veths straight into the relay's namespace.
#
#            A 10.79.1.1 --veth-- [R 10.79.0.1: relay host r1, router] --veth-- B 10.79.2.1
#                                          |
#                                        veth
#                                          |
#                                   D 10.79.3.1 (directory, no relay)
#
# R forwards only to and from D (nftables drops A <-> B), so A and B have no direct path;
# A and B masquerade their own mintun port (random,fully-random: they look NATed to the
# directory, which then hands the pair to the relay host r1 in R). One TCP stream
# (iperf3, DURATION s) crosses A -> r1 -> B inside the overlay; then the same path without
# mintun (A -> R -> B, the kernel forwarding, the A <-> B drop removed): the ratio is
# relay / bare. CPU: utime + stime of r1's mintund (/proc/PID/stat) over the run, divided
# by the bytes r1 forwarded (its relayBytes counter).
#
#   sudo test/bench/relay-bench.sh            (DURATION=5 by default)
#
# Only the namespaces and processes this script creates are touched (by name prefix
# rlyb<PID> and by PID); everything is removed on exit.
set -euo pipefail
export LC_ALL=C
REPO=${MINTUN_BENCH_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
NODE=${NODE:-node}
MINTUN=("$NODE" "$REPO/bin/mintun")
MINTUND=("$NODE" "$REPO/bin/mintund")
DURATION=${DURATION:-5}
TAG=rlyb$$
R=$TAG-r A=$TAG-a B=$TAG-b D=$TAG-d
WORK=$(mktemp -d /tmp/relay-bench.XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "$A" "$B" "$D" "$R"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
nsx() { local n=$1; shift; ip netns exec "$n" "$@"; }
log() { echo "# $*" >&2; }
cpu() { awk '{ split(substr($0, index($0, ") ") + 2), f, " "); print (f[12] + f[13]) / 100 }' "/proc/$1/stat"; }
status() { nsx "$1" "${MINTUN[@]}" status --socket "$WORK/$2.sock" --json; }
jq_py() { python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }

for n in "$R" "$A" "$B" "$D"; do ip netns add "$n"; nsx "$n" ip link set lo up; done
# point-to-point links: R has one address, 10.79.0.1, on each veth (so whatever it sends
# leaves from the address it is reached at); each side has 10.79.<i>.1/32
i=1
for side in "$A" "$B" "$D"; do
  ip link add "${TAG}v$i" type veth peer name eth0 netns "$side"
  ip link set "${TAG}v$i" netns "$R"
  nsx "$R" ip link set "${TAG}v$i" name "r$i"
  nsx "$R" ip addr add 10.79.0.1/32 dev "r$i"
  nsx "$R" ip link set "r$i" up
  nsx "$R" ip route add "10.79.$i.1/32" dev "r$i" src 10.79.0.1
  nsx "$side" ip addr add "10.79.$i.1/32" dev eth0
  nsx "$side" ip link set eth0 up
  nsx "$side" ip route add 10.79.0.1/32 dev eth0
  nsx "$side" ip route add default via 10.79.0.1 dev eth0
  i=$((i + 1))
done
nsx "$R" sysctl -qw net.ipv4.ip_forward=1
nsx "$R" nft -f - <<'NFT'
table inet nodirect {
  chain ab {
    type filter hook forward priority 0;
    iifname "r1" oifname "r2" drop
    iifname "r2" oifname "r1" drop
  }
}
NFT
for n in "$A" "$B"; do
  nsx "$n" nft -f - <<'NFT'
table ip nat {
  chain post {
    type nat hook postrouting priority 100;
    oifname "eth0" udp sport 7000 masquerade random,fully-random
  }
}
NFT
done

log "PKI and daemons"
PKI=$WORK/pki
"${MINTUN[@]}" ca init --dir "$PKI/ca" --name relay-bench-ca --days 2 >/dev/null
declare -A OV=([dir]=10.80.0.100 [r1]=10.80.0.50 [a]=10.80.0.1 [b]=10.80.0.2)
declare -A NS=([dir]=$D [r1]=$R [a]=$A [b]=$B)
for h in dir r1 a b; do
  "${MINTUN[@]}" keygen --out "$PKI/$h.key" >/dev/null
  "${MINTUN[@]}" ca sign-host --ca "$PKI/ca" --name "$h" --key "$PKI/$h.key" --ip4 "${OV[$h]}" --days 1 \
    --out "$PKI/$h.crt" >/dev/null
  extra="directories:
  - endpoint: \"10.79.3.1:7000\"
"
  [ "$h" = dir ] && extra="directory:
  serve: true
  store: file
relay:
  hosts: [r1]
"
  [ "$h" = r1 ] && extra+="relay:
  serve: true
  bytesPerSec: 1000000000
  burstBytes: 1000000000
"
  listen=0.0.0.0:7000
  cat >"$WORK/$h.yaml" <<YAML
ca: $PKI/ca/ca.crt
host:
  key: $PKI/$h.key
  cert: $PKI/$h.crt
listen: "$listen"
tun:
  name: mtr0
api:
  socket: $WORK/$h.sock
state: $WORK/state-$h
log:
  level: warn
$extra
YAML
  mkdir -p "$WORK/state-$h"
  # the daemon's own PID (CPU accounting, clean-up): ip netns exec may fork, sh execs node
  ip netns exec "${NS[$h]}" sh -c 'echo $$ >"$0"; exec "$@"' "$WORK/$h.pid" "${MINTUND[@]}" \
    --config "$WORK/$h.yaml" >"$WORK/$h.log" 2>&1 &
  for _ in $(seq 50); do [ -s "$WORK/$h.pid" ] && break; sleep 0.1; done
  PIDS+=("$(cat "$WORK/$h.pid")")
done
PID_r1=$(cat "$WORK/r1.pid")
for h in r1 a b; do
  for _ in $(seq 100); do
    if status "${NS[$h]}" "$h" 2>/dev/null |
      jq_py 's["directory"]["client"]["directories"][0]["registered"]' 2>/dev/null | grep -q True; then
      break
    fi
    sleep 0.2
  done
done
sleep 1 # r1's offer reaches the directory when its tunnel is up
log "relayed tunnel a -> b"
for _ in $(seq 40); do nsx "$A" ping -c1 -W1 "${OV[b]}" >/dev/null 2>&1 && break; done
EP=$(status "$A" a | jq_py '" ".join(t["endpoint"] for t in s["tunnels"] if t["peer"] == "b" and t["state"] == "established")')
case "$EP" in relay:host/*) ;; *)
  echo "a's tunnel to b is not through the relay host: '$EP'" >&2
  for f in "$WORK"/*.log; do echo "== $f"; tail -n 8 "$f"; done >&2
  for h in a dir; do
    status "${NS[$h]}" "$h" | jq_py '[(t["peer"], t["state"], t["endpoint"]) for t in s["tunnels"]], {k: v for k, v in s["events"].items() if v}' >&2 || true
  done
  exit 1
  ;;
esac

iperf() { # ns server-ns server-addr -> receiver Mbit/s
  ip netns exec "$2" sh -c 'echo $$ >"$0"; exec iperf3 -s -1 -B "$1"' "$WORK/iperf.pid" "$3" >/dev/null 2>&1 &
  local s=$!
  sleep 0.3
  PIDS+=("$(cat "$WORK/iperf.pid")")
  sleep 0.5
  nsx "$1" timeout $((DURATION + 20)) iperf3 -c "$3" -t "$DURATION" -J --connect-timeout 5000 |
    jq_py 's["end"]["sum_received"]["bits_per_second"] / 1e6'
  wait "$s" 2>/dev/null || true
}
RPID=$PID_r1
c0=$(cpu "$RPID")
e0=$(awk -v x="$(cpu "$(cat "$WORK/a.pid")")" -v y="$(cpu "$(cat "$WORK/b.pid")")" 'BEGIN { print x + y }')
b0=$(status "$R" r1 | jq_py 's["events"].get("relayBytes", 0)')
relay=$(iperf "$A" "$B" "${OV[b]}")
c1=$(cpu "$RPID")
e1=$(awk -v x="$(cpu "$(cat "$WORK/a.pid")")" -v y="$(cpu "$(cat "$WORK/b.pid")")" 'BEGIN { print x + y }')
b1=$(status "$R" r1 | jq_py 's["events"].get("relayBytes", 0)')
EP2=$(status "$A" a | jq_py '" ".join(t["endpoint"] for t in s["tunnels"] if t["peer"] == "b" and t["state"] == "established")')
log "bare path (kernel forwarding A -> R -> B)"
nsx "$R" nft delete table inet nodirect
bare=$(iperf "$A" "$B" 10.79.2.1)
python3 - "$relay" "$bare" "$c0" "$c1" "$b0" "$b1" "$DURATION" "$EP2" "$e0" "$e1" <<'PY'
import os, sys
relay, bare, c0, c1, b0, b1, dur = map(float, sys.argv[1:8])
e0, e1 = map(float, sys.argv[9:11])
gb = (b1 - b0) / 1e9
cpu = c1 - c0
print(f"relay_path: {sys.argv[8]}")
print(f"relay_tput_mbps: {relay:.0f}")
print(f"bare_tput_mbps: {bare:.0f}")
print(f"ratio_relay_vs_bare: {relay / bare:.3f}")
print(f"relay_forwarded_mb: {(b1 - b0) / 1e6:.0f}")
print(f"relay_cpu_s: {cpu:.2f} (over {dur:.0f} s)")
print(f"relay_cpu_s_per_gb: {cpu / gb:.1f}" if gb > 0 else "relay_cpu_s_per_gb: na")
print(f"end_hosts_cpu_s: {e1 - e0:.2f} (a + b mintund, the usual bottleneck)")
print(f"loadavg: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
PY
