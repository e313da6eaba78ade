// Cost of the OS identity mapper (which uid owns a flow's socket), the lookup done
// once per new outbound TCP/UDP flow: sock_diag netlink and the /proc/net fallback,
// uncached, against a real TCP connection and a real unconnected UDP socket on
// loopback. Usage: npm run build && node test/bench/identity-bench.mjs [iterations=20000]
import * as dgram from "node:dgram";
import * as net from "node:net";
import { LinuxIdentityLookup } from "../../dist/net/identity.js";

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
c.destroy();
srv.close();
u.close();
