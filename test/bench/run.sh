#!/usr/bin/env bash
# run.sh - `npm run bench`: mintun against the bare veth link and the anchor VPNs
# (Debian wireguard-go, OpenVPN, tinc), same namespaces and method as
# test/bench/anchors.sh (a copy of the project's shared anchors harness), alternating
# implementations for ROUNDS rounds, then a markdown report of the medians with
# ratios to bare and to every anchor (test/bench/report.py). See docs/PERFORMANCE.md.
#
#   sudo npm run bench                 # ROUNDS=3 DURATION=10 (~25-30 min on 2 cores)
#   sudo QUICK=1 npm run bench         # ROUNDS=1 DURATION=3 COLD_REPS=1 (~3 min, a smoke check)
#
# Knobs (environment): ROUNDS (3), DURATION (10 s per iperf3 test), COLD_REPS (3),
# IMPLS (default: bare + every installed anchor + mintun, e.g. IMPLS="bare cmd"),
# BENCH_OUT (results parent, default /var/tmp/mintun-bench), BENCH_SKIP_SETUP=1 (skip
# scripts/setup.sh, i.e. packages + npm ci + build), BENCH_NO_APT=1 (don't install the
# anchors), plus every anchors.sh knob (PINGS, DELAY_MS, TESTS, ...).
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"

say() { echo "[bench] $*" >&2; }
[ "$(id -u)" = 0 ] || { say "needs root (network namespaces, TUN): sudo npm run bench"; exit 1; }

if [ "${QUICK:-0}" = 1 ]; then
  export ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-3} COLD_REPS=${COLD_REPS:-1} WARM_REPS=${WARM_REPS:-3}
fi
export ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10}

# 1. project setup (packages the netns suite needs, node modules, native addon + tsc)
if [ "${BENCH_SKIP_SETUP:-0}" = 1 ]; then
  say "scripts/setup.sh skipped (BENCH_SKIP_SETUP=1)"
else
  bash scripts/setup.sh >&2
fi
[ -f dist/daemon/main.js ] || { say "dist/ missing: run npm run build"; exit 1; }

# 2. the anchors' Debian packages, only when missing
if [ "${BENCH_NO_APT:-0}" != 1 ]; then
  missing=()
  for p in wireguard-go wireguard-tools openvpn tinc iperf3 iputils-ping iproute2 curl python3 util-linux; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null >&2 || say "warning: apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >&2 ||
      say "warning: could not install ${missing[*]}; uninstalled anchors are skipped"
  fi
fi
for t in iperf3 ping curl python3 flock; do command -v $t >/dev/null || { say "missing $t"; exit 1; }; done

# 3. which implementations: bare, installed anchors, mintun (cmd)
if [ -z "${IMPLS:-}" ]; then
  IMPLS="bare"
  command -v wireguard-go >/dev/null && command -v wg >/dev/null && IMPLS="$IMPLS wireguard-go"
  command -v openvpn >/dev/null && IMPLS="$IMPLS openvpn"
  command -v tincd >/dev/null && IMPLS="$IMPLS tinc"
  IMPLS="$IMPLS cmd"
fi

NS_A=${NS_A:-ab-a}; NS_B=${NS_B:-ab-b}; export NS_A NS_B
for ns in "$NS_A" "$NS_B"; do
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns"; then
    say "namespace $ns exists (another run? 'test/bench/anchors.sh cleanup' removes a crashed run's)"; exit 2
  fi
done

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT_PARENT=${BENCH_OUT:-/var/tmp/mintun-bench}
export RESULTS_DIR=${RESULTS_DIR:-$OUT_PARENT/results-$STAMP}
export AB_BASE=$OUT_PARENT/base
# The harness uses AB_WORK as its work directory (removed after each run); exported so
# that AB_READY_CMD (mintun-cmd.sh ready) can find the daemons' API sockets in it.
export AB_WORK=$AB_BASE/work
mkdir -p "$RESULTS_DIR" "$AB_BASE"

# Snapshot of the built daemon (bin/, dist/, the addon; node_modules linked), so that a
# rebuild in the work tree during the run cannot change what is measured.
SNAP=$RESULTS_DIR/snapshot
mkdir -p "$SNAP/platform/linux/build/Release"
cp -r bin dist package.json "$SNAP/"
cp platform/linux/build/Release/mintun_linux.node "$SNAP/platform/linux/build/Release/"
ln -s "$REPO/node_modules" "$SNAP/node_modules"
export MINTUN_BENCH_ROOT=$SNAP

GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git status --porcelain -- src platform 2>/dev/null | grep -q . && echo "+dirty" || true)
export AB_CMD="exec '$HERE/mintun-cmd.sh'"
export AB_READY_CMD="'$HERE/mintun-cmd.sh' ready"
export AB_VERSION="mintun $(node -p 'require("./package.json").version') (git $GIT_REV$GIT_DIRTY, node $(node --version))"

BENCH_PID=""
cleanup() {
  local rc=$?
  if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill "$BENCH_PID" 2>/dev/null || true; sleep 2
  fi
  # a crashed or interrupted run: kill what is left in our namespaces, delete them
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -e "$NS_A" -e "$NS_B"; then
    "$HERE/anchors.sh" cleanup >&2 || true
  fi
  rm -rf "$AB_WORK" "${SNAP:-/nonexistent}"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
  echo "command: ${BENCH_COMMAND:-npm run bench} (ROUNDS=$ROUNDS DURATION=$DURATION COLD_REPS=${COLD_REPS:-3} QUICK=${QUICK:-0})"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "mintun: $AB_VERSION"
  echo "impls: $IMPLS"
  # the runtime's own floor: peak RSS of a node process that runs nothing (report.py)
  echo "node_floor_hwm_kb: $(node -e 'process.stdout.write(require("fs").readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s+(\d+)/)[1])')"
} >"$RESULTS_DIR/meta.txt"
cat "$RESULTS_DIR/meta.txt" >&2

say "anchors.sh rounds $ROUNDS $IMPLS -> $RESULTS_DIR"
"$HERE/anchors.sh" rounds "$ROUNDS" $IMPLS >"$RESULTS_DIR/summary.txt" &
BENCH_PID=$!
wait "$BENCH_PID" || say "warning: anchors.sh exited with $?"
BENCH_PID=""
for f in "$RESULTS_DIR"/*.err; do
  [ -s "$f" ] && grep -v -e '^# ' -e 'Peer netns reference is invalid' "$f" | grep -q . &&
    { say "stderr of $(basename "$f"):"; grep -v -e '^# ' -e 'Peer netns reference' "$f" | tail -5 >&2; }
done

python3 "$HERE/report.py" "$RESULTS_DIR" $IMPLS >"$RESULTS_DIR/report.md"
cat "$RESULTS_DIR/report.md"
say "report: $RESULTS_DIR/report.md (raw per-round files and summary.txt beside it)"
