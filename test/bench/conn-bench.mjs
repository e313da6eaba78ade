// New connections per second through one tunnel with per-user authentication
// (issue 5): the receiving engine's cost of a CONN_OPEN, for a user's first
// connection (certificate check + X25519 + MAC) against later ones (cached K_u:
// one keyed hash), and for host-identity connections. In process, one core,
// real crypto; the two engines are joined by a queue (no sockets).
//   node test/bench/conn-bench.mjs [connections=10000 (max 16000)] [users=2000]
import { Engine } from "../../dist/tunnel/engine.js";
import { onDatagram } from "../../dist/tunnel/outside.js";
import { NOW, engineOpts, host, user } from "./common.mjs";

const N = Math.min(16000, Number(process.argv[2] ?? 10000));
const USERS = Number(process.argv[3] ?? 2000);

const users = Array.from({ length: USERS }, (_, i) => user(`u${i}`, 10000 + i));
let current = null; // the identity the next flow runs under
const identity = { identify: () => current };

const queue = [];
class Q {
  constructor(name) {
    this.name = name;
    this.tun = 0;
  }
  sendUdp(buf, off, len) {
    queue.push({
      to: this.name === "a" ? "b" : "a",
      data: Buffer.from(buf.subarray(off, off + len)),
      from: this.addr,
    });
  }
  writeTun() {
    this.tun++;
  }
  flush() {}
}
const ha = host("a", "10.9.0.1");
const hb = host("b", "10.9.0.2");
const oa = new Q("a");
const ob = new Q("b");
const addrA = Buffer.alloc(20);
addrA[0] = 4;
addrA.writeUInt32BE(0xc0000201, 4);
addrA.writeUInt16BE(7000, 2);
const addrB = Buffer.alloc(20);
addrB[0] = 4;
addrB.writeUInt32BE(0xc0000202, 4);
addrB.writeUInt16BE(7000, 2);
oa.addr = addrA;
ob.addr = addrB;
let now = NOW;
const a = new Engine({ ...engineOpts(ha), identity }, oa, now);
const b = new Engine(engineOpts(hb), ob, now);
a.addPeer({ name: "b", endpoint: addrB }, now);
function run() {
  while (queue.length) {
    const d = queue.shift();
    onDatagram(d.to === "a" ? a : b, d.data, 0, d.data.length, d.from, 0, now);
  }
}
run();

let port = 1;
function pkt() {
  const p = Buffer.alloc(28);
  p[0] = 0x45;
  p.writeUInt16BE(28, 2);
  p[8] = 64;
  p[9] = 17;
  p.writeUInt32BE(0x0a090001, 12);
  p.writeUInt32BE(0x0a090002, 16);
  p.writeUInt16BE(port, 20);
  p.writeUInt16BE(80, 22);
  p.writeUInt16BE(8, 24);
  port = port >= 65535 ? 1 : port + 1;
  return p;
}
const slot = Buffer.alloc(64 + 28 + 64);
function send(p) {
  p.copy(slot, 64);
  a.handleTunBatch(
    { buf: slot, slotSize: slot.length, headroom: 64, lens: Uint32Array.of(28), count: 1 },
    now,
  );
}
// warm up the tunnel
current = null;
send(pkt());
run();

/** Time only the receiver: collect the datagrams of `n` new connections, then feed them to b. */
function measure(label, n, who) {
  // fresh tables each phase (a tunnel holds at most MAX_CONNS_PER_TUNNEL connections)
  for (const e of [a, b]) for (const p of e.peers.values()) p.conns?.clear();
  const dgrams = [];
  for (let i = 0; i < n; i++) {
    current = who(i);
    send(pkt());
    while (queue.length) dgrams.push(queue.shift());
  }
  const before = b.events.connsAccepted;
  const t0 = process.hrtime.bigint();
  for (const d of dgrams) onDatagram(b, d.data, 0, d.data.length, d.from, 0, now);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  queue.length = 0;
  const ok = b.events.connsAccepted - before;
  if (ok !== n) throw new Error(`${label}: ${ok} of ${n} accepted`);
  console.log(
    `${label.padEnd(40)} ${String(n).padStart(6)} conns  ${(n / s).toFixed(0).padStart(8)} conns/s  ${((s / n) * 1e6).toFixed(1).padStart(7)} µs each`,
  );
  return n / s;
}
now += 1;
const nFirst = Math.min(USERS, N);
const first = measure("user, first connection (cert + X25519)", nFirst, (i) => users[i]);
const later = measure("user, later connections (cached K_u)", N, (i) => users[i % nFirst]);
const hostc = measure("host identity (no user)", N, () => null);
console.log(`later/first: ${(later / first).toFixed(1)}x; host/later: ${(hostc / later).toFixed(2)}x`);
console.log(
  `b: userAuthFull=${b.events.userAuthFull} userAuthCached=${b.events.userAuthCached} conns=${b.connCount()}`,
);
