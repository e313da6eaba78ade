#!/usr/bin/env bash
# setup.sh - idempotent setup of a Debian 12 machine (as root) for building and testing
# mintun: Debian packages the netns suite drives, node modules, native addon + tsc build.
# Works non-interactively (CI=true, no stdin).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

say() { echo "[setup] $*"; }

# systemd: systemd-analyze (unit checks; mintund sends sd_notify itself);
# chromium: the headless browser of the web view test (driven by playwright-core);
# etcd-server: the etcd the shared-directory test starts (test/netns/directory-etcd.test.ts)
PKGS=(iproute2 iputils-ping iperf3 curl tcpdump python3 procps psmisc kmod systemd chromium nftables conntrack etcd-server)

if [ "$(id -u)" != 0 ]; then
  say "warning: not root; package installation and the netns tests need root"
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing: ${missing[*]}"
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
else
  say "debian packages present"
fi

command -v node >/dev/null || { say "error: node (>= 20) not found"; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { say "error: node $(node --version) < 20"; exit 1; }

if [ -f package-lock.json ]; then
  # npm writes node_modules/.package-lock.json after every install
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "npm ci"
    # package-lock.json is the repository's, never rewritten here: a copy is compared after
    lock_copy=$(mktemp)
    cp package-lock.json "$lock_copy"
    # npm 11 writes lock files without the other platforms' optional packages (rollup's
    # native binaries) and then refuses them in `npm ci` ("Missing: @rollup/rollup-... from
    # lock file"); install from the same lock with `npm install --no-save` in that case
    # (without --no-save npm install would rewrite package-lock.json)
    if ! npm ci --no-audit --no-fund </dev/null; then
      say "npm ci refused the lock file; npm install --no-save with it instead"
      npm install --no-save --no-audit --no-fund </dev/null
    fi
    if ! cmp -s package-lock.json "$lock_copy"; then
      say "error: npm changed package-lock.json; restored it (the change is in $lock_copy.npm)"
      cp package-lock.json "$lock_copy.npm"
      cp "$lock_copy" package-lock.json
      exit 1
    fi
    rm -f "$lock_copy"
  else
    say "node_modules up to date"
  fi
else
  say "npm install (no package-lock.json)"
  npm install --no-audit --no-fund </dev/null
fi

if [ "${SETUP_SKIP_BUILD:-0}" = 1 ]; then
  say "build skipped (SETUP_SKIP_BUILD=1)"
else
  say "npm run build (node-gyp platform/linux + tsc -> dist/)"
  npm run build </dev/null
fi
say "done"
