#!/usr/bin/env bash
# anchors.sh - measure reference ("anchor") VPN implementations between two
# network namespaces joined by a veth pair, with the same tests for each.
#
#   anchors.sh bare|wireguard-go|openvpn[:CIPHER]|tinc|cmd   one run, key: value lines on stdout
#   anchors.sh rounds N SPEC...    alternate the SPECs N times, then print medians
#   anchors.sh cleanup             kill what a crashed run left and delete its namespaces
#
# Only Debian-packaged programs are driven (wireguard-go, wg, openvpn, tincd,
# iperf3, ping, curl, python3); the small UDP/TCP delay relay below is ours.
# All traffic stays inside the two namespaces this script creates.
#
# mintun copy: taken from the project's shared bench material
# (/work/shared/bench/anchors.sh, see its README.md) and extended minimally for
# `npm run bench` (test/bench/run.sh):
#   - TESTS gains `udp`: iperf3 -u a->b at 64 and 1400 byte payloads, unlimited
#     offered rate (-b 0) for DURATION; receiver packets/s, loss %, daemon CPU;
#   - daemon memory (VmHWM / VmRSS of both daemons) after the throughput tests.
# Every other test and its method is unchanged, so the anchors' numbers stay
# comparable with the shared copy.
set -u
export LC_ALL=C

NS_A=${NS_A:-ab-a}; NS_B=${NS_B:-ab-b}
# wireguard-go's interfaces: their UAPI sockets (/var/run/wireguard/NAME.sock) are shared by
# every namespace, so two runs at once need different names (WG_A / WG_B)
WG_A=${WG_A:-abwg-a}; WG_B=${WG_B:-abwg-b}
U_A=10.201.0.1; U_B=10.201.0.2      # underlay (veth) addresses
RF_B=10.201.0.3                     # relay face that B talks to (stands in for A)
RF_A=10.201.0.4                     # relay face that A talks to (stands in for B)
O_A=10.202.0.1; O_B=10.202.0.2      # overlay addresses
DURATION=${DURATION:-10}            # iperf3 seconds per test
PARALLEL=${PARALLEL:-4}             # streams for the -P test
UDP_PARALLEL=${UDP_PARALLEL:-1}     # flows of the udp test (iperf3 -P; 1 = one flow)
PINGS=${PINGS:-100}; PING_INTERVAL=${PING_INTERVAL:-0.01}
COLD_REPS=${COLD_REPS:-3}           # fresh daemon pairs per cold metric
WARM_REPS=${WARM_REPS:-5}           # warm curl repetitions
DELAY_MS=${DELAY_MS:-25}            # one-way delay added by the relay (0 = skip)
TESTS=${TESTS:-"tput udp ping cold delay"}
OVPN_CIPHER=${OVPN_CIPHER:-AES-256-GCM}
UDP_SIZES=${UDP_SIZES:-"64 1400"}      # iperf3 -u payload bytes (udp test)
UDP_RATE=${UDP_RATE:-0}             # iperf3 -u -b (0 = unlimited)
HTTP_BYTES=${HTTP_BYTES:-10240}
PY=${PY:-/usr/bin/python3}
BASE=${AB_BASE:-${TMPDIR:-/tmp}/anchorbench}
HERE=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

say() { printf '%s: %s\n' "$1" "$2"; }
log() { echo "# $*" >&2; }
has() { case " $TESTS " in *" $1 "*) return 0;; esac; return 1; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }
median() { printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "na"; exit} if(NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ---------------------------------------------------------------- processes
PIDS=(); DPIDS=(); RELAY_PID=""; HTTP_PID=""; IPERF_PID=""
bg_ns() {  # bg_ns NS LOGFILE CMD... ; LASTPID = pid of CMD (ip netns exec execs it)
  local ns=$1 lf=$2; shift 2
  ip netns exec "$ns" "$@" >"$lf" 2>&1 </dev/null &
  LASTPID=$!; PIDS+=("$LASTPID")
}
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] && [ -r "/proc/$1/stat" ]; }
kill_pid() {
  local p=$1 i
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null
  for i in $(seq 100); do alive "$p" || break; sleep 0.05; done
  alive "$p" && kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  return 0
}
cpu_ticks() {  # utime+stime of a process (all threads), clock ticks
  [ -r "/proc/$1/stat" ] && sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12+$13}' || echo 0
}
sys_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8; t=b+$5+$6; print b, t}' /proc/stat; }

cleanup() {
  local p
  for p in "${PIDS[@]}"; do alive "$p" && kill_pid "$p"; done
  if [ "${CREATED_NS:-0}" = 1 ]; then
    ip netns del "$NS_A" 2>/dev/null; ip netns del "$NS_B" 2>/dev/null
  fi
  rm -f /var/run/wireguard/$WG_A.sock /var/run/wireguard/$WG_B.sock 2>/dev/null
  [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "${WORK:-/nonexistent}"
}

# ---------------------------------------------------------------- underlay
underlay_up() {
  local ns
  for ns in "$NS_A" "$NS_B"; do
    if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
      echo "namespace $ns already exists (another run? '$0 cleanup' removes it)" >&2; exit 2
    fi
  done
  ip netns add "$NS_A" && ip netns add "$NS_B" || exit 2
  CREATED_NS=1
  ip -n "$NS_A" link set lo up; ip -n "$NS_B" link set lo up
  ip -n "$NS_A" link add abv-a type veth peer name abv-b netns "$NS_B"
  ip -n "$NS_A" addr add $U_A/24 dev abv-a
  ip -n "$NS_A" addr add $RF_B/24 dev abv-a
  ip -n "$NS_A" addr add $RF_A/24 dev abv-a
  ip -n "$NS_B" addr add $U_B/24 dev abv-b
  ip -n "$NS_A" link set abv-a up; ip -n "$NS_B" link set abv-b up
  sleep 0.2
}

# endpoints each side uses for the other: direct, or through the delay relay
set_endpoints() {  # $1 = direct|relay ; uses PORT_A PORT_B, RPORT_A RPORT_B
  if [ "$1" = relay ]; then
    EP_A_HOST=$RF_A; EP_A_PORT=$RPORT_B   # what A dials to reach B
    EP_B_HOST=$RF_B; EP_B_PORT=$RPORT_A   # what B dials to reach A
  else
    EP_A_HOST=$U_B; EP_A_PORT=$PORT_B
    EP_B_HOST=$U_A; EP_B_PORT=$PORT_A
  fi
}

write_relay() {
  cat >"$WORK/relay.py" <<'EOF'
# Fixed-delay UDP+TCP relay standing in for netem (absent from this kernel).
# argv: DELAY_MS FACE_A_IP FACE_A_PORT A_IP A_PORT FACE_B_IP FACE_B_PORT B_IP B_PORT
# What A sends to FACE_A leaves FACE_B towards B after DELAY_MS, and vice versa.
import asyncio, collections, sys
D = float(sys.argv[1]) / 1000.0
fa_ip, fa_p, a_ip, a_p, fb_ip, fb_p, b_ip, b_p = sys.argv[2:10]
fa_p, a_p, fb_p, b_p = int(fa_p), int(a_p), int(fb_p), int(b_p)

class Delayed:
    def __init__(self, loop, out):
        self.loop, self.out, self.q = loop, out, collections.deque()
    def put(self, item):
        self.q.append(item); self.loop.call_later(D, self.pop)
    def pop(self):
        self.out(self.q.popleft())

class Face(asyncio.DatagramProtocol):
    fwd = None
    def datagram_received(self, data, addr): self.fwd.put(data)
    def error_received(self, exc): pass

async def tcp_pair(reader, writer, dst, src_ip):
    loop = asyncio.get_running_loop()
    await asyncio.sleep(D)
    try:
        r2, w2 = await asyncio.open_connection(dst[0], dst[1], local_addr=(src_ip, 0))
    except OSError:
        writer.close(); return
    async def pump(r, w):
        def out(item):
            try:
                w.close() if item is None else w.write(item)
            except Exception:
                pass
        q = Delayed(loop, out)
        try:
            while True:
                data = await r.read(65536)
                if not data: break
                q.put(data)
        except Exception:
            pass
        q.put(None)
    await asyncio.gather(pump(reader, w2), pump(r2, writer))

async def main():
    loop = asyncio.get_running_loop()
    ta, fa = await loop.create_datagram_endpoint(Face, local_addr=(fa_ip, fa_p))
    tb, fb = await loop.create_datagram_endpoint(Face, local_addr=(fb_ip, fb_p))
    fa.fwd = Delayed(loop, lambda d: tb.sendto(d, (b_ip, b_p)))
    fb.fwd = Delayed(loop, lambda d: ta.sendto(d, (a_ip, a_p)))
    await asyncio.start_server(lambda r, w: tcp_pair(r, w, (b_ip, b_p), fb_ip), fa_ip, fa_p)
    await asyncio.start_server(lambda r, w: tcp_pair(r, w, (a_ip, a_p), fa_ip), fb_ip, fb_p)
    print("relay ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
EOF
}
relay_start() {
  write_relay
  bg_ns "$NS_A" "$WORK/relay.log" "$PY" -u "$WORK/relay.py" "$DELAY_MS" \
    $RF_A $RPORT_B $U_A $PORT_A  $RF_B $RPORT_A $U_B $PORT_B
  RELAY_PID=$LASTPID
  local i; for i in $(seq 100); do grep -q "relay ready" "$WORK/relay.log" && return 0; sleep 0.05; done
  log "relay did not start"; cat "$WORK/relay.log" >&2; return 1
}

# Every pair starts B (the responder) first, waits until B's port is bound, notes
# T_A and then starts A (the initiator): startup times run from A's launch.
wait_listen() { local i; for i in $(seq 400); do nsx "$NS_B" ss -Hlntu 2>/dev/null | grep -q ":$PORT_B " && return 0; sleep 0.01; done; log "B not listening"; return 1; }

# ---------------------------------------------------------------- wireguard-go
wg_prepare() {
  PORT_A=51821; PORT_B=51822; RPORT_A=51921; RPORT_B=51922   # wireguard-go binds the wildcard
  mkdir -p "$WORK/wg"; (umask 077; wg genkey >"$WORK/wg/a.key"; wg genkey >"$WORK/wg/b.key")
  wg pubkey <"$WORK/wg/a.key" >"$WORK/wg/a.pub"; wg pubkey <"$WORK/wg/b.key" >"$WORK/wg/b.pub"
  say version "$(wireguard-go --version 2>&1 | head -1); $(wg --version 2>&1 | cut -d' ' -f1-2)"
  say overlay_mtu 1420
}
wg_start() {
  set_endpoints "$1"
  local i
  bg_ns "$NS_B" "$WORK/wg/b.log" env WG_PROCESS_FOREGROUND=1 LOG_LEVEL=error wireguard-go -f $WG_B
  DPIDS=("$LASTPID")
  for i in $(seq 200); do [ -S /var/run/wireguard/$WG_B.sock ] && break; sleep 0.01; done
  nsx "$NS_B" wg set $WG_B listen-port $PORT_B private-key "$WORK/wg/b.key" \
    peer "$(cat "$WORK/wg/a.pub")" endpoint $EP_B_HOST:$EP_B_PORT allowed-ips $O_A/32
  ip -n "$NS_B" addr add $O_B/24 dev $WG_B; ip -n "$NS_B" link set $WG_B mtu 1420 up
  wait_listen
  T_A=$(now_ms)
  bg_ns "$NS_A" "$WORK/wg/a.log" env WG_PROCESS_FOREGROUND=1 LOG_LEVEL=error wireguard-go -f $WG_A
  DPIDS=("$LASTPID" "${DPIDS[@]}")
  for i in $(seq 200); do [ -S /var/run/wireguard/$WG_A.sock ] && break; sleep 0.01; done
  nsx "$NS_A" wg set $WG_A listen-port $PORT_A private-key "$WORK/wg/a.key" \
    peer "$(cat "$WORK/wg/b.pub")" endpoint $EP_A_HOST:$EP_A_PORT allowed-ips $O_B/32
  ip -n "$NS_A" addr add $O_A/24 dev $WG_A; ip -n "$NS_A" link set $WG_A mtu 1420 up
}
wg_ready() { return 0; }   # configured; no handshake happens before the first packet
wg_gone() { ! ip -n "$NS_A" link show $WG_A >/dev/null 2>&1 && ! ip -n "$NS_B" link show $WG_B >/dev/null 2>&1; }

# ---------------------------------------------------------------- openvpn
ovpn_prepare() {
  PORT_A=1194; PORT_B=1195; RPORT_A=1294; RPORT_B=1295
  mkdir -p "$WORK/ovpn"; local s
  for s in a b; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -subj "/CN=ab-$s" -keyout "$WORK/ovpn/$s.key" -out "$WORK/ovpn/$s.crt" >/dev/null 2>&1
    openssl x509 -in "$WORK/ovpn/$s.crt" -noout -fingerprint -sha256 | cut -d= -f2 >"$WORK/ovpn/$s.fp"
  done
  say version "$(openvpn --version | head -1 | cut -d' ' -f1-2); $(openvpn --version | grep -o 'OpenSSL [0-9.]*' | head -1)"
  say cipher "$OVPN_CIPHER"
  say overlay_mtu "1500 (openvpn default tun-mtu; mssfix default)"
}
ovpn_conf() {  # side
  local s=$1 me peer lu lp rh rp ol or role
  if [ $s = a ]; then me=a; peer=b; lu=$U_A; lp=$PORT_A; rh=$EP_A_HOST; rp=$EP_A_PORT; ol=$O_A; or=$O_B; role="tls-client"
  else me=b; peer=a; lu=$U_B; lp=$PORT_B; rh=$EP_B_HOST; rp=$EP_B_PORT; ol=$O_B; or=$O_A; role="tls-server
dh none"; fi
  cat >"$WORK/ovpn/$s.conf" <<EOF
dev abov-$me
dev-type tun
proto udp
local $lu
lport $lp
remote $rh $rp
ifconfig $ol $or
$role
cert $WORK/ovpn/$me.crt
key $WORK/ovpn/$me.key
peer-fingerprint $(cat "$WORK/ovpn/$peer.fp")
data-ciphers $OVPN_CIPHER
disable-dco
verb 3
EOF
}
ovpn_start() {
  set_endpoints "$1"; DPIDS=()
  ovpn_conf a; ovpn_conf b
  bg_ns "$NS_B" "$WORK/ovpn/b.log" openvpn --config "$WORK/ovpn/b.conf"; DPIDS=("$LASTPID")
  wait_listen
  T_A=$(now_ms)
  bg_ns "$NS_A" "$WORK/ovpn/a.log" openvpn --config "$WORK/ovpn/a.conf"; DPIDS=("$LASTPID" "${DPIDS[@]}")
}
ovpn_ready() {
  local i
  for i in $(seq 600); do
    grep -q "Initialization Sequence Completed" "$WORK/ovpn/a.log" 2>/dev/null &&
      grep -q "Initialization Sequence Completed" "$WORK/ovpn/b.log" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
ovpn_gone() { ! ip -n "$NS_A" link show abov-a >/dev/null 2>&1 && ! ip -n "$NS_B" link show abov-b >/dev/null 2>&1; }

# ---------------------------------------------------------------- tinc 1.0
tinc_prepare() {
  PORT_A=6551; PORT_B=6552; RPORT_A=6551; RPORT_B=6552   # tincd binds one address; peers learn
  local s                                                 # UDP ports from the meta protocol
  for s in a b; do
    mkdir -p "$WORK/tinc/$s/hosts"
    echo "Name = $s" >"$WORK/tinc/$s/tinc.conf"
    : >"$WORK/tinc/$s/hosts/$s"
    tincd -c "$WORK/tinc/$s" -K 2048 </dev/null >/dev/null 2>&1
    grep -A100 BEGIN "$WORK/tinc/$s/hosts/$s" >"$WORK/tinc/$s.pub"
  done
  say version "$(tincd --version | head -1)"
  say cipher "tinc defaults (aes-256-cbc, sha256, MACLength 4), Mode router"
  say overlay_mtu "1500 (tinc default; PMTUDiscovery + ClampMSS defaults)"
}
tinc_side() {  # side mode
  local s=$1 ns me peer lu lp ol pp ph pport
  if [ $s = a ]; then me=a; peer=b; lu=$U_A; lp=$PORT_A; ol=$O_A; ph=$EP_A_HOST; pport=$EP_A_PORT; pp=$O_B
  else me=b; peer=a; lu=$U_B; lp=$PORT_B; ol=$O_B; ph=$EP_B_HOST; pport=$EP_B_PORT; pp=$O_A; fi
  local d=$WORK/tinc/$s
  {
    echo "Name = $me"; echo "Interface = abtc-$me"; echo "AddressFamily = ipv4"
    echo "BindToAddress = $lu"
    [ $s = a ] && echo "ConnectTo = $peer"
  } >"$d/tinc.conf"
  { echo "Port = $lp"; echo "Subnet = $ol/32"; cat "$WORK/tinc/$me.pub"; } >"$d/hosts/$me"
  { echo "Address = $ph $pport"; echo "Subnet = $pp/32"; cat "$WORK/tinc/$peer.pub"; } >"$d/hosts/$peer"
  printf '#!/bin/sh\nip addr add %s/24 dev $INTERFACE\nip link set $INTERFACE up\n' "$ol" >"$d/tinc-up"
  chmod +x "$d/tinc-up"
  rm -f "$d/log"
}
tinc_start() {
  set_endpoints "$1"; DPIDS=()
  tinc_side a; tinc_side b
  bg_ns "$NS_B" "$WORK/tinc/b.out" tincd -c "$WORK/tinc/b" -D -d1 --logfile="$WORK/tinc/b/log" --pidfile="$WORK/tinc/b/pid"
  DPIDS+=("$LASTPID")
  wait_listen
  T_A=$(now_ms)
  bg_ns "$NS_A" "$WORK/tinc/a.out" tincd -c "$WORK/tinc/a" -D -d1 --logfile="$WORK/tinc/a/log" --pidfile="$WORK/tinc/a/pid"
  DPIDS=("$LASTPID" "${DPIDS[@]}")
}
tinc_ready() {
  local i
  for i in $(seq 600); do
    grep -q "Connection with b .*activated" "$WORK/tinc/a/log" 2>/dev/null &&
      grep -q "Connection with a .*activated" "$WORK/tinc/b/log" 2>/dev/null &&
      ip -n "$NS_A" route get $O_B >/dev/null 2>&1 && ip -n "$NS_B" route get $O_A >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}
# tinc 1.0 sends packets larger than its current minimum path MTU over the TCP meta
# connection until PMTU discovery has settled (seconds, at most ~30 probes). Throughput
# is measured only once full-size DF pings from a leave as UDP: a burst of 5 pings at the
# kernel's path MTU must all be answered, raise a's UDP OutDatagrams by >= 5 and its
# meta bytes by < 1000.
tinc_meta_sent() { nsx "$NS_A" ss -Htin "( dport = :$EP_A_PORT or sport = :$PORT_A )" 2>/dev/null | grep -o 'bytes_sent:[0-9]*' | cut -d: -f2 | awk '{s+=$1} END{print s+0}'; }
tinc_udp_out() { nsx "$NS_A" awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $5}' /proc/net/snmp; }
tinc_settle() {
  local t0 i mtu u0 u1 m0 m1; t0=$(now_ms)
  for i in $(seq 80); do
    mtu=$(ip -n "$NS_A" route get $PEER 2>/dev/null | grep -o 'mtu [0-9]*' | head -1 | cut -d' ' -f2)
    [ -n "$mtu" ] || mtu=1500
    u0=$(tinc_udp_out); m0=$(tinc_meta_sent)
    local ok=0
    nsx "$NS_A" ping -n -q -M do -s $((mtu - 28)) -c 5 -i 0.01 -W 1 $PEER >/dev/null 2>&1 && ok=1
    u1=$(tinc_udp_out); m1=$(tinc_meta_sent)
    if [ $ok = 1 ] && [ $((u1 - u0)) -ge 5 ] && [ $((m1 - m0)) -lt 1000 ]; then
      say pmtu_settle_s "$(awk -v d=$(( $(now_ms) - t0 )) 'BEGIN{printf "%.1f", d/1000}')"
      say pmtu_route_mtu "$mtu"
      return 0
    fi
    sleep 0.5
  done
  say pmtu_settle_s "not settled after 40 s"
}
tinc_gone() { ! ip -n "$NS_A" link show abtc-a >/dev/null 2>&1 && ! ip -n "$NS_B" link show abtc-b >/dev/null 2>&1; }

# ---------------------------------------------------------------- cmd (any other daemon)
# AB_CMD is run with bash -c in each namespace (use exec so the pid is the daemon's);
# spec cmd:VARIANT passes AB_VARIANT=VARIANT (mintun-cmd.sh: A/B runs of one build);
# it gets AB_SIDE AB_LOCAL_UNDERLAY AB_LOCAL_PORT AB_PEER_HOST AB_PEER_PORT
# AB_LOCAL_OVERLAY AB_PEER_OVERLAY AB_OVERLAY_PREFIX AB_WORK, and must create the
# overlay interface with AB_LOCAL_OVERLAY/24. Ready = routes exist (+ AB_READY_CMD, if set).
cmd_prepare() {
  PORT_A=${AB_PORT_A:-7001}; PORT_B=${AB_PORT_B:-7002}
  RPORT_A=${AB_RPORT_A:-$((PORT_A + 100))}; RPORT_B=${AB_RPORT_B:-$((PORT_B + 100))}
  [ -n "${AB_CMD:-}" ] || { echo "impl cmd needs AB_CMD" >&2; exit 2; }
  mkdir -p "$WORK/cmd"
  say version "${AB_VERSION:-cmd}"
}
cmd_start() {
  set_endpoints "$1"; DPIDS=()
  local s ns
  for s in b a; do
    [ $s = a ] && { wait_listen; T_A=$(now_ms); }
    if [ $s = a ]; then ns=$NS_A; set -- $U_A $PORT_A $EP_A_HOST $EP_A_PORT $O_A $O_B
    else ns=$NS_B; set -- $U_B $PORT_B $EP_B_HOST $EP_B_PORT $O_B $O_A; fi
    bg_ns "$ns" "$WORK/cmd/$s.log" env AB_SIDE=$s AB_LOCAL_UNDERLAY=$1 AB_LOCAL_PORT=$2 \
      AB_PEER_HOST=$3 AB_PEER_PORT=$4 AB_LOCAL_OVERLAY=$5 AB_PEER_OVERLAY=$6 AB_OVERLAY_PREFIX=24 \
      AB_WORK="$WORK/cmd" AB_VARIANT="$CMD_VARIANT" bash -c "$AB_CMD"
    DPIDS=("$LASTPID" "${DPIDS[@]}")
  done
}
cmd_ready() {
  local i
  for i in $(seq 600); do
    if ip -n "$NS_A" route get $O_B >/dev/null 2>&1 && ip -n "$NS_B" route get $O_A >/dev/null 2>&1; then
      [ -z "${AB_READY_CMD:-}" ] && return 0
      bash -c "$AB_READY_CMD" >/dev/null 2>&1 && return 0
    fi
    sleep 0.05
  done
  return 1
}
cmd_gone() { ! ip -n "$NS_A" route get $O_B >/dev/null 2>&1 && ! ip -n "$NS_B" route get $O_A >/dev/null 2>&1; }

# ---------------------------------------------------------------- pair control
start_pair() { ${P}_start "$1"; }
ready_pair() { ${P}_ready || { log "$IMPL not ready"; return 1; }; }
# Let overlay TCP connections finish closing before a tunnel goes away; otherwise
# the kernel retransmits FINs into the next, supposedly cold, pair and warms it.
settle_tcp() {
  local i
  for i in $(seq 60); do
    { nsx "$NS_A" ss -Htn; nsx "$NS_B" ss -Htn; } 2>/dev/null | grep -v TIME-WAIT | grep -q '10\.202\.0\.' || return 0
    sleep 0.05
  done
  log "overlay TCP sockets still open after 3 s"
}
stop_pair() {
  local p i
  settle_tcp
  for p in "${DPIDS[@]}"; do kill_pid "$p"; done
  DPIDS=()
  for i in $(seq 100); do ${P}_gone && break; sleep 0.05; done
}
wait_route() { local i; for i in $(seq 1000); do ip -n "$NS_A" route get $PEER >/dev/null 2>&1 && return 0; sleep 0.005; done; return 1; }

# ---------------------------------------------------------------- measurements
http_start() {
  mkdir -p "$WORK/www"; head -c "$HTTP_BYTES" /dev/urandom >"$WORK/www/f"
  bg_ns "$NS_B" "$WORK/http.log" "$PY" -m http.server 8080 --bind 0.0.0.0 --directory "$WORK/www"
  HTTP_PID=$LASTPID
  local i; for i in $(seq 100); do nsx "$NS_B" ss -ltn 2>/dev/null | grep -q ':8080 ' && return 0; sleep 0.05; done
}
curl_ms() {  # prints "connect_ms total_ms"
  nsx "$NS_A" curl -s -o /dev/null --max-time 30 -w '%{time_connect} %{time_total}\n' "http://$PEER:8080/f" |
    awk '{printf "%.2f %.2f\n", $1*1000, $2*1000}'
}
first_ping() {  # ms from first echo request to first reply, and the seq that got it
  # no -c/-w: tinc answers "Destination Net Unknown" until it knows the peer, and
  # iputils ping stops on an error when -c or -w is given; awk exits at the first reply.
  timeout 30 ip netns exec "$NS_A" ping -n -i 0.01 $PEER 2>&1 |
    awk -F'[ =]' '/bytes from/{for(i=1;i<=NF;i++){if($i=="icmp_seq")s=$(i+1); if($i=="time")t=$(i+1)} printf "%.3f %d\n", (s-1)*10+t, s; exit}'
}
ping_stats() {  # count interval -> "avg mdev min max loss%"
  nsx "$NS_A" ping -n -q -c "$1" -i "$2" -w 60 $PEER 2>&1 |
    awk '/packet loss/{for(i=1;i<=NF;i++) if($i ~ /%$/) l=$i} /^rtt/{split($4,a,"/"); print a[2], a[4], a[1], a[3], l}'
}

iperf_run() {  # label extra-args...
  local lab=$1; shift
  local j=$WORK/iperf.$lab.json c0 c1 s0 s1 p
  local -a before=()
  for p in "${DPIDS[@]}"; do before+=("$(cpu_ticks "$p")"); done
  local tm0 tu0; [ $P = tinc ] && { tm0=$(tinc_meta_sent); tu0=$(tinc_udp_out); }
  s0=$(sys_ticks)
  timeout $((DURATION + 30)) ip netns exec "$NS_A" iperf3 -c $PEER -t "$DURATION" --connect-timeout 5000 -J "$@" >"$j" 2>&1
  s1=$(sys_ticks)
  if [ $P = tinc ]; then   # where a's tincd sent the data: meta TCP bytes vs UDP datagrams
    say "${lab}_tinc_meta_tcp_bytes" $(( $(tinc_meta_sent) - tm0 ))
    say "${lab}_tinc_udp_out_datagrams" $(( $(tinc_udp_out) - tu0 ))
  fi
  local i=0 tot=0 d
  for p in "${DPIDS[@]}"; do
    d=$(( $(cpu_ticks "$p") - ${before[$i]} )); tot=$((tot + d))
    say "${lab}_cpu_$([ $i = 0 ] && echo a || echo b)_s" "$(awk -v d=$d 'BEGIN{printf "%.2f", d/100}')"
    i=$((i + 1))
  done
  "$PY" - "$j" "$lab" "$tot" "${#DPIDS[@]}" $s0 $s1 <<'EOF'
import json, sys
f, lab, tot, nd = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b0, t0, b1, t1 = map(int, sys.argv[5:9])
try:
    r = json.load(open(f))
    e = r["end"]; rx = e["sum_received"]
    print(f"{lab}_mbps: {rx['bits_per_second']/1e6:.1f}")
    print(f"{lab}_bytes: {rx['bytes']}")
    print(f"{lab}_retrans: {e['sum_sent'].get('retransmits', 'na')}")
    if nd:
        print(f"{lab}_cpu_total_s: {tot/100:.2f}")
        print(f"{lab}_cpu_s_per_gb: {tot/100/(rx['bytes']/1e9):.2f}")
    cu = e.get("cpu_utilization_percent", {})
    print(f"{lab}_iperf_cpu_client_pct: {cu.get('host_total', 0):.1f}")
    print(f"{lab}_iperf_cpu_server_pct: {cu.get('remote_total', 0):.1f}")
except Exception as ex:
    print(f"{lab}_mbps: na")
    print(f"{lab}_error: {str(ex)[:80]} {open(f).read()[:200]!r}")
if t1 > t0:
    print(f"{lab}_system_busy_pct: {100*(b1-b0)/(t1-t0):.1f}")
EOF
}

# mintun addition: UDP a->b, payload LEN bytes, for DURATION s; receiver packets/s.
udp_run() {  # label len
  local lab=$1 len=$2
  local j=$WORK/iperf.$lab.json s0 s1 p
  local -a before=()
  for p in "${DPIDS[@]}"; do before+=("$(cpu_ticks "$p")"); done
  s0=$(sys_ticks)
  local -a par=()
  [ "${UDP_PARALLEL:-1}" -gt 1 ] && par=(-P "$UDP_PARALLEL")   # several flows (dataPath.workers: docs/PERFORMANCE.md "Many cores")
  timeout $((DURATION + 30)) ip netns exec "$NS_A" iperf3 -c $PEER -u -l "$len" -b "$UDP_RATE" -t "$DURATION" --connect-timeout 5000 -J "${par[@]}" >"$j" 2>"$j.err"
  s1=$(sys_ticks)
  local i=0 tot=0 d
  for p in "${DPIDS[@]}"; do
    d=$(( $(cpu_ticks "$p") - ${before[$i]} )); tot=$((tot + d))
    say "${lab}_cpu_$([ $i = 0 ] && echo a || echo b)_s" "$(awk -v d=$d 'BEGIN{printf "%.2f", d/100}')"
    i=$((i + 1))
  done
  "$PY" - "$j" "$lab" "$tot" "${#DPIDS[@]}" "$len" $s0 $s1 <<'EOF'
import json, sys
f, lab, tot, nd, ln = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
b0, t0, b1, t1 = map(int, sys.argv[6:10])
try:
    t = open(f).read()   # iperf3 may print a warning (e.g. fragmentation) before the JSON
    r = json.loads(t[t.index("{"):])
    e = r["end"]; rx = e["sum_received"]; tx = e["sum_sent"]
    got = rx["packets"] - rx["lost_packets"]
    print(f"{lab}_rx_pps: {got / rx['seconds']:.0f}")
    print(f"{lab}_tx_pps: {tx['packets'] / tx['seconds']:.0f}")
    print(f"{lab}_loss_pct: {rx['lost_percent']:.1f}")
    print(f"{lab}_rx_mbps: {got * ln * 8 / rx['seconds'] / 1e6:.1f}")
    if nd and got:
        print(f"{lab}_cpu_total_s: {tot/100:.2f}")
        print(f"{lab}_cpu_us_per_pkt: {tot/100/got*1e6:.2f}")
except Exception as ex:
    print(f"{lab}_rx_pps: na")
    print(f"{lab}_error: {str(ex)[:80]} {open(f).read()[:200]!r}")
if t1 > t0:
    print(f"{lab}_system_busy_pct: {100*(b1-b0)/(t1-t0):.1f}")
EOF
}
# mintun addition: peak and current resident memory of each daemon (after the load)
daemon_rss() {
  local i=0 p s
  for p in "${DPIDS[@]}"; do
    s=$([ $i = 0 ] && echo a || echo b)
    say "rss_${s}_hwm_kb" "$(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null)"
    say "rss_${s}_kb" "$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null)"
    # of which anonymous (heaps, stacks) and file-backed (the program's and libraries' pages)
    say "rss_${s}_anon_kb" "$(awk '/^RssAnon:/{print $2}' "/proc/$p/status" 2>/dev/null)"
    say "rss_${s}_file_kb" "$(awk '/^RssFile:/{print $2}' "/proc/$p/status" 2>/dev/null)"
    i=$((i + 1))
  done
}

tput_and_ping() {
  if has tput || has udp; then
    bg_ns "$NS_B" "$WORK/iperf-server.log" iperf3 -s; IPERF_PID=$LASTPID
    local i; for i in $(seq 100); do nsx "$NS_B" ss -ltn 2>/dev/null | grep -q ':5201 ' && break; sleep 0.05; done
  fi
  if has tput; then
    iperf_run tcp1
    sleep 1
    iperf_run tcpP -P "$PARALLEL"
    say tcpP_streams "$PARALLEL"
  fi
  if has udp; then
    local len
    for len in $UDP_SIZES; do sleep 1; udp_run "udp$len" "$len"; done
  fi
  if has tput || has udp; then
    kill_pid "$IPERF_PID"
    [ ${#DPIDS[@]} -gt 0 ] && daemon_rss
  fi
  if has ping; then
    local r; r=$(ping_stats "$PINGS" "$PING_INTERVAL")
    set -- $r
    say ping_count "$PINGS"; say ping_interval_s "$PING_INTERVAL"
    say ping_avg_ms "${1:-na}"; say ping_mdev_ms "${2:-na}"; say ping_min_ms "${3:-na}"; say ping_max_ms "${4:-na}"; say ping_loss "${5:-na}"
  fi
}

cold_suite() {  # mode prefix
  local mode=$1 pf=$2 r t0 res ts
  local -a su=() fp=() fseq=() wp=() cc=() ccon=() cw=()
  for r in $(seq "$COLD_REPS"); do
    # 1) launch of A (B already up and bound) -> first overlay reply at A
    start_pair "$mode"; t0=$T_A
    if wait_route; then
      ts=$(timeout 30 ip netns exec "$NS_A" ping -D -n -i 0.01 $PEER 2>/dev/null | sed -n '/bytes from/{s/^\[\([0-9.]*\)\].*/\1/p;q}')
      [ -n "$ts" ] && su+=("$(awk -v ts="$ts" -v t0="$t0" 'BEGIN{printf "%.1f", ts*1000-t0}')")
    fi
    stop_pair
    # 2) ready pair that has carried no overlay packet: first ping, then warm pings
    start_pair "$mode"
    if ready_pair; then
      sleep 1
      res=$(first_ping); set -- $res
      fp+=("${1:-na}"); fseq+=("${2:-na}")
      res=$(ping_stats 20 0.05); set -- $res; wp+=("${1:-na}")
    fi
    stop_pair
    # 3) ready pair, first curl (cold), then warm curls
    start_pair "$mode"
    if ready_pair; then
      sleep 1
      res=$(curl_ms); set -- $res; ccon+=("${1:-na}"); cc+=("${2:-na}")
      local -a w=(); local k
      for k in $(seq "$WARM_REPS"); do res=$(curl_ms); set -- $res; w+=("${2:-na}"); done
      cw+=("$(median "${w[@]}")")
    fi
    stop_pair
  done
  say "${pf}startup_to_first_reply_ms" "$(median "${su[@]}")"; say "${pf}startup_to_first_reply_ms_all" "${su[*]:-}"
  say "${pf}cold_first_ping_ms" "$(median "${fp[@]}")"; say "${pf}cold_first_ping_ms_all" "${fp[*]:-}"
  say "${pf}cold_first_ping_seq_all" "${fseq[*]:-}"
  say "${pf}warm_ping_avg_ms" "$(median "${wp[@]}")"
  say "${pf}curl_cold_connect_ms" "$(median "${ccon[@]}")"
  say "${pf}curl_cold_total_ms" "$(median "${cc[@]}")"; say "${pf}curl_cold_total_ms_all" "${cc[*]:-}"
  say "${pf}curl_warm_total_ms" "$(median "${cw[@]}")"
}

run_one() {
  local spec=$1
  IMPL=${spec%%:*}
  case $IMPL in
    bare) P=bare;; wireguard-go|wg) P=wg;; openvpn|ovpn) P=ovpn;; tinc) P=tinc;; cmd) P=cmd;;
    *) echo "unknown implementation '$spec' (bare|wireguard-go|openvpn[:CIPHER]|tinc|cmd[:VARIANT])" >&2; exit 2;;
  esac
  [ "$P" = ovpn ] && [ "$spec" != "${spec#*:}" ] && OVPN_CIPHER=${spec#*:}
  CMD_VARIANT=""; [ "$P" = cmd ] && [ "$spec" != "${spec#*:}" ] && CMD_VARIANT=${spec#*:}
  WORK=${AB_WORK:-$BASE/run.$$}
  mkdir -p "$WORK"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  say impl "$spec"
  say date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  say kernel "$(uname -r)"; say cpus "$(nproc)"
  say iperf3 "$(iperf3 --version | head -1)"
  underlay_up
  if [ $P = bare ]; then
    PEER=$U_B
    say version "veth underlay, no VPN"
    res=$(first_ping); set -- $res; say cold_first_ping_ms "${1:-na} (includes ARP)"
    tput_and_ping
    if has cold; then
      http_start
      local -a cw=(); local k
      res=$(curl_ms); set -- $res; say curl_cold_total_ms "${2:-na}"
      for k in $(seq "$WARM_REPS"); do res=$(curl_ms); set -- $res; cw+=("${2:-na}"); done
      say curl_warm_total_ms "$(median "${cw[@]}")"
    fi
    return 0
  fi
  PEER=$O_B
  ${P}_prepare
  if has tput || has udp || has ping; then
    start_pair direct
    ready_pair || { say error "tunnel not ready"; return 1; }
    nsx "$NS_A" ping -n -q -c 3 -i 0.2 -w 15 $PEER >/dev/null 2>&1 || say warning "warm-up ping failed"
    if [ $P = tinc ] && [ "${TINC_SETTLE:-1}" = 1 ]; then tinc_settle; fi
    tput_and_ping
    stop_pair
  fi
  if has cold || has delay; then http_start; fi
  has cold && cold_suite direct ""
  if has delay && [ "$DELAY_MS" != 0 ]; then
    say delay_method "userspace UDP/TCP relay (python3), ${DELAY_MS} ms each way (kernel has no sch_netem)"
    relay_start && cold_suite relay "delay${DELAY_MS}_"
    kill_pid "$RELAY_PID"
  fi
  return 0
}

rounds() {  # N spec...
  local n=$1; shift
  local out=${RESULTS_DIR:-$BASE/results-$(date +%Y%m%d-%H%M%S)} r s f
  mkdir -p "$out"
  for r in $(seq "$n"); do
    for s in "$@"; do
      f="$out/r$r.$(echo "$s" | tr ':/' '__').txt"
      log "round $r/$n: $s -> $f"
      "$HERE" "$s" >"$f" 2>"$f.err"
    done
  done
  say results_dir "$out"
  for s in "$@"; do
    cat "$out"/r*."$(echo "$s" | tr ':/' '__')".txt | awk -v lab="$s" -F': ' '
      $1 ~ /_all$/ {next}
      $2 ~ /^-?[0-9.]+$/ { if(!($1 in n)) order[++k]=$1; v[$1, ++n[$1]]=$2; next }
      { if(!($1 in t)) { t[$1]=$2; torder[++tk]=$1 } }
      END {
        for(i=1;i<=tk;i++) if(torder[i]!="date") print lab "." torder[i] ": " t[torder[i]]
        for(i=1;i<=k;i++){ key=order[i]; m=n[key]; delete a
          for(j=1;j<=m;j++) a[j]=v[key,j]
          for(x=1;x<=m;x++) for(y=x+1;y<=m;y++) if(a[y]+0<a[x]+0){tmp=a[x];a[x]=a[y];a[y]=tmp}
          med=(m%2)?a[(m+1)/2]:(a[m/2]+a[m/2+1])/2
          vals=""; for(j=1;j<=m;j++) vals=vals (j>1?",":"") v[key,j]
          print lab "." key ": " med "  (n=" m ": " vals ")" } }'
  done
}

case ${1:-} in
  rounds) shift; [ $# -ge 2 ] || { echo "usage: $0 rounds N SPEC..." >&2; exit 2; }; rounds "$@";;
  cleanup)
    for p in $(ip netns pids "$NS_A" 2>/dev/null) $(ip netns pids "$NS_B" 2>/dev/null); do kill "$p" 2>/dev/null; done
    sleep 0.5; ip netns del "$NS_A" 2>/dev/null; ip netns del "$NS_B" 2>/dev/null; echo "cleaned $NS_A $NS_B";;
  bare|wireguard-go|wg|openvpn*|ovpn*|tinc|cmd|cmd:*) run_one "$1";;
  *) sed -n '2,12p' "$0"; exit 2;;
esac
