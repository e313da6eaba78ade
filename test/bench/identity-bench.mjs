// Cost of the OS identity mapper (which uid owns a flow's socket), the lookup done
// once per new outbound TCP/UDP flow: sock_diag netlink and the /proc/net fallback,
// uncached, against a real TCP connection and a real unconnected UDP socket on
// loopback. Usage: npm run build && node test/bench/identity-bench.mjs [iterations=20000]
//
// Second part (issue 14): the daemon's whole per-new-flow step (DaemonIdentity.identify:
// parse the packet's addresses, look the owner up, map uid -> identity) as configured
// before (2 s cache per 5-tuple; a new flow is a cache miss + insert) and after (no
// cache), and what the UDP owner recheck (one lookup per active UDP connection every
// UDP_RECHECK_MS) costs per second.
import * as dgram from "node:dgram";
import * as net from "node:net";
import { LinuxIdentityLookup } from "../../dist/net/identity.js";
import { FlowScratch, parseFlow, UDP_RECHECK_MS } from "../../dist/conn/conns.js";
import { DaemonIdentity } from "../../dist/daemon/identity.js";
import { nullLogger } from "../../dist/log.js";

const N = Number(process.argv[2] ?? 20000);
const srv = net.createServer(() => {});
await new Promise((r) => srv.listen(0, "127.0.0.1", r));
const c = net.connect(srv.address().port, "127.0.0.1");
await new Promise((r) => c.once("connect", r));
const u = dgram.createSocket("udp4");
await new Promise((r) => u.bind(0, "127.0.0.1", r));

const tcp = {
  proto: 6,
  family: 4,
  local: "127.0.0.1",
  lport: c.localPort,
  remote: "127.0.0.1",
  rport: srv.address().port,
};
const udp = {
  proto: 17,
  family: 4,
  local: "127.0.0.1",
  lport: u.address().port,
  remote: "127.0.0.9",
  rport: 53,
};
const uid = process.getuid();
for (const mode of ["sock_diag", "proc"]) {
  const look = new LinuxIdentityLookup({ mode, ttlMs: 0 });
  for (const [name, flow] of [
    ["tcp", tcp],
    ["udp (unconnected)", udp],
  ]) {
    const n = mode === "proc" ? Math.min(N, 2000) : N;
    const first = look.lookup(flow);
    if (!first || first.uid !== uid)
      throw new Error(`${mode} ${name}: expected uid ${uid}, got ${JSON.stringify(first)}`);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) look.lookup(flow);
    const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
    console.log(
      `${mode.padEnd(10)} ${name.padEnd(18)} ${us.toFixed(2).padStart(8)} µs per lookup (${n} lookups)`,
    );
  }
}

/** An IPv4 packet of `flow` as it leaves the TUN (20-byte header + ports). */
function packet(flow) {
  const b = Buffer.alloc(40);
  b[0] = 0x45;
  b.writeUInt16BE(40, 2);
  b[9] = flow.proto;
  flow.local.split(".").forEach((x, i) => (b[12 + i] = Number(x)));
  flow.remote.split(".").forEach((x, i) => (b[16 + i] = Number(x)));
  b.writeUInt16BE(flow.lport, 20);
  b.writeUInt16BE(flow.rport, 22);
  if (flow.proto === 6) b[33] = 0x02; // SYN
  return b;
}
const perFlow = {};
for (const [label, ttlMs] of [
  ["before (2 s cache, miss)", 2000],
  ["after (no cache)", 0],
]) {
  const look = new LinuxIdentityLookup({ mode: "sock_diag", ttlMs });
  const d = new DaemonIdentity(look, "deny", nullLogger);
  d.setStore(null, "deny", 0, undefined, [], { users: [], groups: [] });
  for (const [name, flow] of [
    ["tcp", tcp],
    ["udp (unconnected)", udp],
  ]) {
    const buf = packet(flow);
    const f = new FlowScratch();
    parseFlow(buf, 0, buf.length, f);
    d.identify(f, buf);
    if (d.lastUid !== uid) throw new Error(`identify ${name}: expected uid ${uid}, got ${d.lastUid}`);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) {
      if (ttlMs > 0) look.clearCache(); // every new flow is a new 5-tuple: a miss
      parseFlow(buf, 0, buf.length, f);
      d.identify(f, buf);
    }
    const us = Number(process.hrtime.bigint() - t0) / 1000 / N;
    perFlow[`${label} ${name}`] = us;
    console.log(
      `identify   ${label.padEnd(26)} ${name.padEnd(18)} ${us.toFixed(2).padStart(8)} µs per new flow`,
    );
  }
}
const recheck = perFlow["after (no cache) udp (unconnected)"];
console.log(
  `udp recheck every ${UDP_RECHECK_MS} ms: ${((recheck * 1000) / UDP_RECHECK_MS).toFixed(0)} µs per second per active UDP connection ` +
    `(${((recheck * 1000) / UDP_RECHECK_MS / 1e4).toFixed(3)} % of one core)`,
);
c.destroy();
srv.close();
u.close();
