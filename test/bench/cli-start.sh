#!/usr/bin/env bash
# cli-start.sh - wall time of `mintun status` against a running daemon (docs/PERFORMANCE.md,
# "CLI start"). Starts one mintund in a fresh namespace (no peers' traffic), then runs
# hyperfine on the CLI calls given (default: this tree's bin/mintun), and cleans up.
#   sudo test/bench/cli-start.sh [RUNS] [BIN...]      (needs npm run build and hyperfine)
set -u
cd "$(dirname "$0")/../.."
RUNS=${1:-30}; shift || true
BINS=("$@"); [ ${#BINS[@]} -eq 0 ] && BINS=("$PWD/bin/mintun")
W=$(mktemp -d "${TMPDIR:-/tmp}/mintun-clistart.XXXXXX")
NS=mtcs$$; PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null; sleep 0.3; [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  ip netns del $NS 2>/dev/null; rm -rf "$W"
}
trap cleanup EXIT
M="node bin/mintun"
$M ca init --dir $W/ca --name cs-ca >/dev/null
$M keygen --out $W/a.key >/dev/null
$M ca sign-host --ca $W/ca --name a --key $W/a.key --ip4 10.78.0.1 --out $W/a.crt >/dev/null
printf "ca: %s\nhost: {key: %s, cert: %s}\nlisten: 127.0.0.1:7000\ntun: {name: mt0}\npeers: [{name: b, endpoint: '127.0.0.2:7000'}]\napi: {socket: %s}\nstate: %s\nlog: {level: warn}\n" \
  $W/ca/ca.crt $W/a.key $W/a.crt $W/a.sock $W/st >$W/a.yaml
ip netns add $NS; ip -n $NS link set lo up
ip netns exec $NS node bin/mintund --config $W/a.yaml 2>$W/a.log & PID=$!
for _ in $(seq 100); do [ -S $W/a.sock ] && break; sleep 0.1; done
[ -S $W/a.sock ] || { echo "mintund did not start:"; cat $W/a.log; exit 1; }
cmds=("node -e 0")  # the floor: node itself
# run as a user does: the program itself (bin/mintun's sh line execs node on the bundle);
# a BIN ending in .js/.mjs/.cjs (an older tree's entry) is run with node
for b in "${BINS[@]}"; do
  case $b in *.js | *.mjs | *.cjs) cmds+=("node $b status --socket $W/a.sock") ;; *) cmds+=("$b status --socket $W/a.sock") ;; esac
done
# NODE_EXTRA_CA_CERTS makes node read a CA bundle at start (about 50 ms here): left out
env -u NODE_EXTRA_CA_CERTS hyperfine -N --warmup 3 --runs "$RUNS" "${cmds[@]}"
