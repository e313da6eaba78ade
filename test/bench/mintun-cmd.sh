#!/usr/bin/env bash
# mintun-cmd.sh - mintun as an overlay for test/bench/anchors.sh's `cmd` mode.
#
#   AB_CMD='exec test/bench/mintun-cmd.sh'          (run by the harness in each namespace)
#   AB_READY_CMD='test/bench/mintun-cmd.sh ready'   (run by the harness in the root namespace)
#
# Daemon mode (no argument): the harness sets AB_SIDE, AB_LOCAL_UNDERLAY, AB_LOCAL_PORT,
# AB_PEER_HOST, AB_PEER_PORT, AB_LOCAL_OVERLAY, AB_PEER_OVERLAY and AB_WORK (its
# per-run directory for this overlay). The first side to start (b) creates, under a
# lock, one PKI for the run with the project's CLI: a CA, keys and host certificates
# for both sides (mb-a = 10.202.0.1, mb-b = 10.202.0.2). Then it writes this side's
# config and execs mintund, so the harness's pid is the daemon's (CPU accounting).
#
# Ready mode (`ready`): succeeds when both daemons answer `mintun status --json` with
# every peer's record fetched (peers[].record != null): a configured tunnel that has
# carried no overlay packet yet, with the peer's key known. The harness does not pass
# its per-run directory to AB_READY_CMD, so run.sh exports the harness's AB_WORK
# (the harness then uses it as its work directory; this overlay's part is $AB_WORK/cmd).
set -euo pipefail
# MINTUN_BENCH_ROOT: a built tree to run (run.sh points it at a snapshot); default the repo
REPO=${MINTUN_BENCH_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
NODE=${NODE:-node}
MINTUN=("$NODE" "$REPO/bin/mintun")
TUN_NAME=${MINTUN_BENCH_TUN:-mtb0}
LOG_LEVEL=${MINTUN_BENCH_LOG:-warn}

if [ "${1:-}" = ready ]; then
  dir=${AB_WORK:?AB_WORK not set (run.sh exports it)}/cmd
  for s in a b; do
    sock=$dir/$s.sock
    [ -S "$sock" ] || exit 1
    out=$(timeout 5 "${MINTUN[@]}" status --socket "$sock" --json 2>/dev/null) || exit 1
    printf '%s' "$out" | python3 -c '
import json, sys
st = json.load(sys.stdin)
peers = st.get("peers", [])
sys.exit(0 if peers and all(p.get("record") is not None for p in peers) else 1)' || exit 1
  done
  exit 0
fi

LAUNCH_MS=$(date +%s%3N)
: "${AB_SIDE:?}" "${AB_LOCAL_UNDERLAY:?}" "${AB_LOCAL_PORT:?}" "${AB_PEER_HOST:?}" "${AB_PEER_PORT:?}"
: "${AB_LOCAL_OVERLAY:?}" "${AB_PEER_OVERLAY:?}" "${AB_WORK:?}"
mkdir -p "$AB_WORK"
PKI=$AB_WORK/pki
if [ "$AB_SIDE" = a ]; then PEER_SIDE=b; O_A=$AB_LOCAL_OVERLAY; O_B=$AB_PEER_OVERLAY
else PEER_SIDE=a; O_A=$AB_PEER_OVERLAY; O_B=$AB_LOCAL_OVERLAY; fi

# One PKI per harness run, made by whichever side gets the lock first.
(
  flock -w 60 9
  if [ ! -f "$PKI/done" ]; then
    rm -rf "$PKI"; mkdir -p "$PKI"
    "${MINTUN[@]}" ca init --dir "$PKI/ca" --name mintun-bench-ca --days 2 >/dev/null
    for s in a b; do
      if [ $s = a ]; then ip=$O_A; else ip=$O_B; fi
      "${MINTUN[@]}" keygen --out "$PKI/$s.key" >/dev/null
      "${MINTUN[@]}" ca sign-host --ca "$PKI/ca" --name "mb-$s" --key "$PKI/$s.key" \
        --ip4 "$ip" --days 1 --out "$PKI/$s.crt" >/dev/null
    done
    touch "$PKI/done"
  fi
) 9>"$AB_WORK/pki.lock"

CONF=$AB_WORK/$AB_SIDE.yaml
SOCK=$AB_WORK/$AB_SIDE.sock
rm -f "$SOCK"
mkdir -p "$AB_WORK/state-$AB_SIDE"
cat >"$CONF" <<EOF
# written by test/bench/mintun-cmd.sh for the anchors.sh harness
ca: $PKI/ca/ca.crt
host:
  key: $PKI/$AB_SIDE.key
  cert: $PKI/$AB_SIDE.crt
listen: "$AB_LOCAL_UNDERLAY:$AB_LOCAL_PORT"
tun:
  name: $TUN_NAME
  routes:
    - 10.202.0.0/24
peers:
  - name: mb-$PEER_SIDE
    endpoint: "$AB_PEER_HOST:$AB_PEER_PORT"
api:
  socket: $SOCK
state: $AB_WORK/state-$AB_SIDE
log:
  level: $LOG_LEVEL
EOF
# MINTUN_BENCH_WORKERS=N: the data path over N threads (dataPath.workers; docs/PERFORMANCE.md
# "Many cores"); unset: the default single-thread path
if [ -n "${MINTUN_BENCH_WORKERS:-}" ]; then
  printf 'dataPath:\n  workers: %s\n' "$MINTUN_BENCH_WORKERS" >>"$CONF"
fi
# The daemon's start-up trace (src/startup.ts), one JSON line per start, for report.py:
# RESULTS_DIR/startup-trace-direct.jsonl, or -relay.jsonl when the peer is a relay face
# (anchors.sh's RF_A/RF_B, the +delay scenario). MINTUN_STARTUP_LAUNCH_MS: this script's
# start, so the trace shows the wrapper's share too.
if [ -n "${RESULTS_DIR:-}" ] && [ -d "$RESULTS_DIR" ]; then
  case $AB_PEER_HOST in 10.201.0.3 | 10.201.0.4) mode=relay ;; *) mode=direct ;; esac
  export MINTUN_STARTUP_TRACE=$RESULTS_DIR/startup-trace-$mode.jsonl MINTUN_STARTUP_LAUNCH_MS=$LAUNCH_MS
fi
# NODE_EXTRA_CA_CERTS (set on the bench machine's shell, not by the systemd units) makes
# node read and parse that CA bundle before any of our code runs: ~40 ms CPU at every
# start, for TLS the daemon does not do here (only an etcd directory store uses TLS). The
# daemon runs as under systemd, without it; MINTUN_BENCH_KEEP_ENV=1 keeps it.
[ "${MINTUN_BENCH_KEEP_ENV:-0}" = 1 ] || unset NODE_EXTRA_CA_CERTS
# The daemon's launch settings (src/daemon/launch.ts, as the systemd units and the Debian
# package start it), words that are either NAME=VALUE (environment) or node flags.
# Variants (A/B of one build in one run): spec cmd:NAME (anchors.sh passes AB_VARIANT=NAME)
# runs with MINTUN_BENCH_VARIANT_NAME instead, e.g. IMPLS="cmd cmd:plain"
# MINTUN_BENCH_VARIANT_plain="" (no launch settings). MINTUN_BENCH_NODE_OPTS: extra node
# flags for every variant, e.g. --cpu-prof (used by profile.sh).
LAUNCH="MALLOC_ARENA_MAX=1 --max-semi-space-size=1"
if [ -n "${AB_VARIANT:-}" ]; then
  vname=MINTUN_BENCH_VARIANT_${AB_VARIANT//[^A-Za-z0-9_]/_}
  [ -n "${!vname+x}" ] || { echo "mintun-cmd.sh: variant $AB_VARIANT needs $vname" >&2; exit 2; }
  LAUNCH=${!vname}
fi
VARIANT_ENV=() VARIANT_OPTS=()
for w in $LAUNCH; do
  case $w in [A-Za-z_]*=*) VARIANT_ENV+=("$w") ;; *) VARIANT_OPTS+=("$w") ;; esac
done
# shellcheck disable=SC2086
exec env "${VARIANT_ENV[@]}" "$NODE" ${MINTUN_BENCH_NODE_OPTS:-} "${VARIANT_OPTS[@]}" "$REPO/bin/mintund" --config "$CONF"
