#!/usr/bin/env bash
# demo.sh - three hosts on a LAN (network namespaces + a bridge), a mintund in each,
# then real traffic (ping, curl against python3 http.server, iperf3) over the overlay.
#
#   scripts/demo.sh              full demo: setup (packages, npm, build), PKI, 3 daemons, traffic, status
#   scripts/demo.sh --underlay   same traffic over the bare underlay (checks the plumbing)
#
# Root only. Everything happens inside namespaces named mtd<PID>-*; `trap cleanup EXIT`
# kills the processes this script started (by PID) and deletes only its own namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

P=mtd$$
HOSTS=(a b c)
SW=$P-sw
# underlay (LAN) addresses
declare -A U4=([a]=10.201.0.1 [b]=10.201.0.2 [c]=10.201.0.3)
declare -A U6=([a]=fd01::1 [b]=fd01::2 [c]=fd01::3)
# overlay addresses (what mintund puts on its TUN)
declare -A O4=([a]=10.203.0.1 [b]=10.203.0.2 [c]=10.203.0.3)
OVERLAY_PREFIX=24
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mintun-demo.XXXXXX")
PIDS=()
DAEMON_PIDS=()
CREATED_NS=()

say() { echo "[demo] $*"; }
ns() { echo "$P-$1"; }
nsx() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
bg() { # bg HOST LOGNAME CMD... -> LASTPID (ip netns exec execs CMD, so this is CMD's pid)
  local n=$1 lf=$WORK/$2.log; shift 2
  ip netns exec "$(ns "$n")" "$@" >"$lf" 2>&1 </dev/null &
  LASTPID=$!
  PIDS+=("$LASTPID")
}
alive() { [ -e "/proc/$1" ] && ! grep -q '^[^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
kill_pid() {
  local p=$1 i
  alive "$p" || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 50); do alive "$p" || break; sleep 0.05; done
  alive "$p" && kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
wait_port() { # wait_port HOST PORT
  local i
  for i in $(seq 100); do
    [ -n "$(nsx "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ] && return 0
    sleep 0.05
  done
  say "port $2 not listening on $1"; return 1
}

cleanup() {
  local rc=$? p n
  set +e
  for p in "${PIDS[@]}"; do kill_pid "$p"; done
  for n in "${CREATED_NS[@]}"; do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$n" 2>/dev/null
    rm -rf "/etc/netns/$n" # resolv.conf of the names demo
  done
  [ "${KEEP_WORK:-0}" = 1 ] && say "logs kept in $WORK" || rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

topology_up() {
  local h
  say "topology: switch $SW, hosts ${HOSTS[*]} on 10.201.0.0/24 + fd01::/64"
  ip netns add "$SW"; CREATED_NS+=("$SW")
  ip -n "$SW" link set lo up
  ip -n "$SW" link add br0 type bridge stp_state 0 mcast_snooping 0
  ip -n "$SW" link set br0 up
  for h in "${HOSTS[@]}"; do
    ip netns add "$(ns "$h")"; CREATED_NS+=("$(ns "$h")")
    ip -n "$(ns "$h")" link set lo up
    ip -n "$SW" link add "p-$h" type veth peer name eth0 netns "$(ns "$h")"
    ip -n "$SW" link set "p-$h" master br0
    ip -n "$SW" link set "p-$h" up
    nsx "$h" sysctl -q -w net.ipv6.conf.eth0.accept_dad=0
    ip -n "$(ns "$h")" addr add "${U4[$h]}/24" dev eth0
    ip -n "$(ns "$h")" -6 addr add "${U6[$h]}/64" dev eth0 nodad
    ip -n "$(ns "$h")" link set eth0 up
  done
  for h in "${HOSTS[@]}"; do # carrier is applied by the kernel's linkwatch, up to 1 s late
    local i
    for i in $(seq 100); do
      ip -n "$(ns "$h")" -o -6 addr show dev eth0 scope link | grep -v tentative | grep -q fe80:: && break
      sleep 0.05
    done
  done
}

MINTUN="node bin/mintun"
declare -A O6=([a]=fd77::1 [b]=fd77::2 [c]=fd77::3)

make_pki() {
  say "PKI: CA, one key and certificate per host (mintun ca init / keygen / ca sign-host)"
  $MINTUN ca init --dir "$WORK/ca" --name demo-ca >/dev/null
  local h
  for h in "${HOSTS[@]}"; do
    $MINTUN keygen --out "$WORK/$h.key" >/dev/null
    $MINTUN ca sign-host --ca "$WORK/ca" --name "$h" --key "$WORK/$h.key" \
      --ip4 "${O4[$h]}" --ip6 "${O6[$h]}" --out "$WORK/$h.crt" >/dev/null
    say "  host $h: overlay ${O4[$h]} ${O6[$h]}, underlay ${U4[$h]}"
  done
}

start_daemons() {
  make_pki
  local h p
  for h in "${HOSTS[@]}"; do
    {
      echo "ca: $WORK/ca/ca.crt"
      echo "host: { key: $WORK/$h.key, cert: $WORK/$h.crt }"
      echo "listen: 0.0.0.0:7000"
      echo "tun: { name: mintun0, routes: [10.203.0.0/24, 'fd77::/64'] }"
      echo "peers:"
      for p in "${HOSTS[@]}"; do
        [ "$p" = "$h" ] && continue
        echo "  - { name: $p, endpoint: '${U4[$p]}:7000' }"
      done
      echo "api: { socket: $WORK/$h.sock }"
      echo "state: $WORK/state-$h"
      echo "dns: { listen: overlay }" # NAME.mesh. on the overlay address, port 53
    } >"$WORK/$h.yaml"
    bg "$h" "mintund-$h" node bin/mintund --config "$WORK/$h.yaml"
    DAEMON_PIDS+=("$LASTPID")
  done
  # ready: each daemon answers on its API and holds a verified record of both peers
  for h in "${HOSTS[@]}"; do
    local i ok=0
    for i in $(seq 200); do
      if $MINTUN status --socket "$WORK/$h.sock" --json 2>/dev/null |
        python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if all(p["record"] for p in s["peers"]) else 1)' 2>/dev/null; then
        ok=1; break
      fi
      sleep 0.05
    done
    [ $ok = 1 ] || { say "mintund on $h did not become ready; its log:"; cat "$WORK/mintund-$h.log"; exit 1; }
  done
  say "mintund running on a, b, c; records exchanged (no tunnel yet: the first packet creates it)"
}

show_names() {
  # `ip netns exec` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf
  mkdir -p "/etc/netns/$(ns a)"
  echo "nameserver ${O4[a]}" >"/etc/netns/$(ns a)/resolv.conf"
  say "names: a's resolver is its own mintund (dns.listen: overlay)"
  nsx a getent hosts b.mesh | sed 's/^/[demo]   getent hosts b.mesh: /'
  nsx a getent hosts "${O4[c]}" | sed 's/^/[demo]   getent hosts '"${O4[c]}"': /'
  bg b http-names python3 -m http.server 8081 --bind :: --directory "$WORK/www"
  local http_pid=$LASTPID
  wait_port b 8081
  nsx a curl -sS -o /dev/null --max-time 20 -w "[demo]   curl http://b.mesh:8081/blob: HTTP %{http_code} from %{remote_ip}\n" \
    http://b.mesh:8081/blob
  kill_pid "$http_pid"
  say "mintun resolve c (on a):"
  $MINTUN resolve c --socket "$WORK/a.sock" | sed 's/^/    /'
}

show_status() {
  say "ping over IPv6: a -> c"
  nsx a ping -6 -n -q -c 3 -i 0.05 -W 2 "${O6[c]}" | tail -1 | sed "s/^/[demo]   /"
  say "mintun status on a:"
  $MINTUN status --socket "$WORK/a.sock" | sed 's/^/    /'
}

run_traffic() { # run_traffic ADDR_VAR (name of the associative array with the target addresses)
  local -n T=$1
  local x y
  say "ping between all pairs"
  for x in "${HOSTS[@]}"; do
    for y in "${HOSTS[@]}"; do
      [ "$x" = "$y" ] && continue
      nsx "$x" ping -n -q -c 3 -i 0.05 -W 2 "${T[$y]}" | tail -1 | sed "s/^/[demo]   $x -> $y (${T[$y]}): /"
    done
  done
  say "curl a -> b (python3 http.server on b)"
  mkdir -p "$WORK/www"; head -c 1048576 /dev/urandom >"$WORK/www/blob"
  bg b http python3 -m http.server 8080 --bind :: --directory "$WORK/www"
  local http_pid=$LASTPID
  wait_port b 8080
  nsx a curl -g -sS -o /dev/null --max-time 20 \
    -w "[demo]   HTTP %{http_code}, %{size_download} bytes, connect %{time_connect}s, total %{time_total}s\n" \
    "http://${T[b]}:8080/blob"
  kill_pid "$http_pid"
  say "iperf3 a -> c, 3 s"
  bg c iperf3 iperf3 -s -1 -p 5201
  local iperf_pid=$LASTPID
  wait_port c 5201
  nsx a iperf3 -c "${T[c]}" -p 5201 -t 3 --connect-timeout 5000 | grep -E 'sender|receiver' | sed 's/^/[demo]   /'
  kill_pid "$iperf_pid"
}

main() {
  [ "$(id -u)" = 0 ] || { echo "demo.sh: needs root (network namespaces)" >&2; exit 2; }
  [ "${DEMO_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
  topology_up
  if [ "${1:-}" = --underlay ]; then
    say "traffic over the bare underlay (no mintund)"
    run_traffic U4
  else
    start_daemons
    run_traffic O4
    show_names
    show_status
  fi
  say "done"
}

main "$@"
