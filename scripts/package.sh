#!/usr/bin/env bash
# package.sh - build the Debian package mintun_<version>_<arch>.deb (npm run package).
#
#   bash scripts/package.sh [OUTDIR]     (default dist/deb; prints the .deb's path last)
#
# Layout (docs/OPERATIONS.md "Debian package"):
#   /usr/bin/mintun, /usr/sbin/mintund      sh wrappers: exec /usr/bin/node on the bundles
#   /usr/lib/mintun/cli/mintun.cjs           the CLI bundle, one CommonJS file (scripts/bundle-cli.mjs)
#   /usr/lib/mintun/daemon/mintund.js (+chunks)  the daemon bundle (src/daemon/main.ts)
#   /usr/lib/mintun/mintun_linux.node        the native addon (found by src/net/native.ts)
#   /usr/lib/mintun/node_modules/            production dependencies only (package-lock.json
#                                            entries without dev/devOptional; sodium-native
#                                            with this architecture's prebuild only)
#   /usr/lib/mintun/package.json             name + version (mintun --version) + type module,
#                                            packaging: "deb" (`mintun install` says it has nothing to do)
#   /usr/lib/systemd/system/mintund{,@}.service   the units of systemd/, paths rewritten
#   /etc/mintun/mintund.yaml.example         conffile (config/host.yaml)
#   /usr/share/doc/mintun/                   copyright, README, docs, config examples
# The CLI bundle keeps npm packages external; the daemon bundle takes in those of its start
# path (pino, yaml, dns-packet, sodium-native's JS; scripts/bundle-daemon.mjs). Both load
# node_modules/ for the rest (sodium-native's prebuild, prom-client, etcd3).
# No maintainer scripts: after `dpkg -i`, `systemctl daemon-reload` (docs/OPERATIONS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-$ROOT/dist/deb}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

say() { echo "[package] $*" >&2; }

VERSION=$(node -p 'require("./package.json").version')
ARCH=$(dpkg --print-architecture)
case "$ARCH" in
  amd64) NODEARCH=x64 ;;
  arm64) NODEARCH=arm64 ;;
  *) NODEARCH=$ARCH ;;
esac
ADDON=platform/linux/build/Release/mintun_linux.node
if [ ! -f "$ADDON" ]; then
  say "native addon missing: npm run build:native"
  npm run build:native </dev/null >&2
fi

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/mintun-pkg.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
P=$STAGE/mintun_${VERSION}_${ARCH}
LIB=$P/usr/lib/mintun
DOC=$P/usr/share/doc/mintun
mkdir -p "$P/DEBIAN" "$P/usr/bin" "$P/usr/sbin" "$LIB" "$DOC/examples" "$P/usr/lib/systemd/system" "$P/etc/mintun"

say "bundles (esbuild): cli, daemon"
node --input-type=module - "$LIB" <<'EOF'
import * as path from "node:path";
import { bundleCli } from "./scripts/bundle-cli.mjs";
import { bundleDaemon } from "./scripts/bundle-daemon.mjs";
const lib = process.argv[2];
bundleCli(path.join(lib, "cli"));
await bundleDaemon(path.join(lib, "daemon")); // the same bundle as bin/mintund's
EOF
install -m 0644 "$ADDON" "$LIB/mintun_linux.node"
node -e '
const p = require("./package.json");
const out = { name: p.name, version: p.version, private: true, type: "module", license: p.license, packaging: "deb" };
process.stdout.write(JSON.stringify(out, null, 2) + "\n");' >"$LIB/package.json"

say "production dependencies (package-lock.json, no dev)"
# the paths under node_modules/ of every lock entry that is not dev-only and is installed;
# type declarations (@types/*, undici-types) are dependencies of protobufjs but not run
node -e '
const fs = require("fs");
const lock = require("./package-lock.json");
for (const [k, v] of Object.entries(lock.packages))
  if (k && !v.dev && !v.devOptional && !/(^|\/)node_modules\/(@types\/|undici-types$)/.test(k) && fs.existsSync(k))
    console.log(k);' >"$STAGE/prod.txt"
while IFS= read -r dir; do
  mkdir -p "$LIB/$(dirname "$dir")"
  # the package itself without its nested node_modules (those are lock entries of their own)
  mkdir -p "$LIB/$dir"
  tar -C "$dir" --exclude=./node_modules -cf - . | tar -C "$LIB/$dir" --no-same-owner -xf -
done <"$STAGE/prod.txt"
# sodium-native: only this architecture's prebuild; no C sources, declarations, maps or markdown
find "$LIB/node_modules/sodium-native/prebuilds" -mindepth 1 -maxdepth 1 ! -name "linux-$NODEARCH" -exec rm -rf {} +
rm -rf "$LIB/node_modules/sodium-native/extensions" "$LIB/node_modules/sodium-native/binding.cc" \
  "$LIB/node_modules/sodium-native/CMakeLists.txt"
find "$LIB/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
  -o -name '*.md' -o -name '*.ts' \) ! -iname 'licen[cs]e*' -delete
find "$LIB/node_modules" -type d -empty -delete

say "wrappers, units, /etc/mintun, docs"
wrapper() { # FILE BUNDLE [LINE] [NODE-FLAGS]
  cat >"$P/$1" <<EOF
#!/bin/sh
# ${1##*/} from the Debian package mintun: the bundle in ../lib/mintun (found from this
# file, so the tree also runs unpacked elsewhere), run by the system's Node.js (>= 20);
# readlink and dirname (two more processes) only when reached through a symlink
case \$0 in */*) d=\${0%/*} ;; *) d=. ;; esac
[ -L "\$0" ] && d=\$(dirname "\$(readlink -f "\$0")")
${3:-}exec node ${4:+$4 }"\$d/../lib/mintun/$2" "\$@"
EOF
  chmod 0755 "$P/$1"
}
# node reads NODE_EXTRA_CA_CERTS at every start (50-80 ms); the CLI makes no TLS connection
wrapper usr/bin/mintun cli/mintun.cjs "unset NODE_EXTRA_CA_CERTS # the CLI makes no TLS connection
"
# the daemon's launch settings (src/daemon/launch.ts), also when started without systemd
wrapper usr/sbin/mintund daemon/mintund.js "MALLOC_ARENA_MAX=1; export MALLOC_ARENA_MAX
" --max-semi-space-size=1
for u in systemd/mintund.service systemd/mintund@.service; do
  sed -e 's#/usr/bin/node --max-semi-space-size=1 /opt/mintun/bin/mintund#/usr/sbin/mintund#g' \
    -e 's#/usr/bin/node /opt/mintun/bin/mintun#/usr/bin/mintun#g' \
    -e 's#file:///opt/mintun/docs/#file:///usr/share/doc/mintun/#g' \
    -e 's#^\# Install: `mintun install` (or copy .*#\# Installed by the Debian package mintun (scripts/package.sh); adjust nothing:#' \
    -e 's#^\# /etc/systemd/system/ and adjust ExecStart), put the#\# put the#' \
    "$u" >"$P/usr/lib/systemd/system/${u##*/}"
  if grep -q /opt/mintun "$P/usr/lib/systemd/system/${u##*/}"; then
    say "error: $u still names /opt/mintun after the rewrite"
    exit 1
  fi
done
chmod 0750 "$P/etc/mintun"
install -m 0644 config/host.yaml "$P/etc/mintun/mintund.yaml.example"
echo /etc/mintun/mintund.yaml.example >"$P/DEBIAN/conffiles"
install -m 0644 README.md docs/OPERATIONS.md docs/CLI.md "$DOC/"
install -m 0644 config/*.yaml "$DOC/examples/"

# copyright (machine-readable, DEP-5): mintun's own licence, then each bundled package's
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: mintun"
  echo
  echo "Files: *"
  echo "Copyright: the mintun authors"
  echo "License: $(node -p 'require("./package.json").license')"
  node -e '
const fs = require("fs"), path = require("path");
for (const dir of fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)) {
  const p = require(path.resolve(dir, "package.json"));
  const lic = typeof p.license === "string" ? p.license : (p.license && p.license.type) || "see the package";
  const who = typeof p.author === "string" ? p.author : (p.author && p.author.name) || `the ${p.name} authors`;
  console.log(`\nFiles: usr/lib/mintun/${dir}/*\nCopyright: ${who}\nComment: ${p.name} ${p.version}\nLicense: ${lic}`);
}' "$STAGE/prod.txt"
  echo
  echo "License: MIT"
  sed 's/^$/./; s/^/ /' <<'EOF'
Permission is hereby granted, free of charge, to any person obtaining a copy of this
software and associated documentation files (the "Software"), to deal in the Software
without restriction, including without limitation the rights to use, copy, modify, merge,
publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
DEALINGS IN THE SOFTWARE.
EOF
} >"$DOC/copyright"

SIZE=$(du -sk --exclude=DEBIAN "$P" | cut -f1)
cat >"$P/DEBIAN/control" <<EOF
Package: mintun
Version: $VERSION
Architecture: $ARCH
Maintainer: mintun maintainers <root@localhost>
Installed-Size: $SIZE
Depends: nodejs (>= 20), iproute2
Recommends: systemd
Section: net
Priority: optional
Description: encrypted overlay network after MinimaLT (daemon and CLI)
 A privileged daemon (mintund) owns a TUN interface, gives the host stable
 overlay addresses and carries the IP packets of unmodified applications to
 other hosts inside encrypted, authenticated UDP tunnels, created 0-RTT by
 their first data packet. mintun is the command line for keys, certificates,
 enrolment and status.
EOF

# root-owned files in the archive whoever builds it; modes as set above
find "$P" -type d -exec chmod g-w,o-w {} +
chmod 0750 "$P/etc/mintun"
DEB=$OUT/mintun_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$P" "$DEB" >&2
say "installed size $SIZE KiB ($(wc -l <"$STAGE/prod.txt") npm packages); $(du -k "$DEB" | cut -f1) KiB .deb"
echo "$DEB"
