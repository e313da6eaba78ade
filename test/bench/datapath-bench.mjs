// Data-path cost per packet in the protocol core, in process (no syscalls): seal (TUN batch ->
// sealed datagrams) and open (datagram batch -> inner packets), batches of 64 IPv4/UDP packets of
// LEN bytes (default 1400; 92 = the IP packet of iperf3 -u -l 64, the small-packet bench).
// AEAD=aes-256-gcm|chacha20-poly1305 (default chacha20-poly1305) picks the suite both engines
// prefer; NATIVE=1 seals and opens through the addon's OpenSSL contexts (what the daemon
// does), NATIVE=0 through libsodium / node:crypto.
// Usage: npm run build && node test/bench/datapath-bench.mjs [seconds] [LEN]
import { tryEncodeAddr } from "../../dist/wire/addr.js";
import { AeadSuite, useNativeAead } from "../../dist/crypto/aead.js";
import { native } from "../../dist/net/native.js";
import { Engine } from "../../dist/tunnel/engine.js";
import { onDatagram } from "../../dist/tunnel/outside.js";
import { NOW as now, host, engineOpts } from "./common.mjs";

const SECONDS = Number(process.argv[2] ?? 3);
const LEN = Number(process.argv[3] ?? 1400);
const BATCH = 64;
const SUITE = process.env.AEAD === "aes-256-gcm" ? AeadSuite.Aes256Gcm : AeadSuite.ChaCha20Poly1305;
if (process.env.NATIVE !== "0")
  native(); // installs the addon's AEAD
else useNativeAead(null);
console.log(
  `suite ${process.env.AEAD ?? "chacha20-poly1305"}, ${process.env.NATIVE !== "0" ? "addon (OpenSSL EVP)" : "libsodium / node:crypto"}`,
);
const addr = { a: tryEncodeAddr("192.0.2.1", 7000), b: tryEncodeAddr("192.0.2.2", 7000) };
const engines = {};
const queues = { a: [], b: [] };
let capture = null; // when set, sealed datagrams are collected here instead of delivered
let tunWrites = 0;
for (const [n, ip] of [
  ["a", "10.0.0.1"],
  ["b", "10.0.0.2"],
]) {
  const h = host(n, ip);
  const other = n === "a" ? "b" : "a";
  engines[n] = new Engine(
    engineOpts(h, { maxTunnels: 10, aeadSuite: SUITE }),
    {
      sendUdp(buf, off, len) {
        if (capture) capture.push(Buffer.from(buf.subarray(off, off + len)));
        else queues[other].push(Buffer.from(buf.subarray(off, off + len)));
      },
      writeTun() {
        tunWrites++;
      },
      flush() {},
    },
    now,
  );
}
const run = () => {
  for (let i = 0; i < 100 && (queues.a.length || queues.b.length); i++)
    for (const n of ["a", "b"])
      while (queues[n].length) {
        const d = queues[n].shift();
        onDatagram(engines[n], d, 0, d.length, addr[n === "a" ? "b" : "a"], 0, now);
      }
};
engines.a.addPeer({ name: "b", endpoint: addr.b }, now);
run();

// a TUN batch of 64 IPv4 packets 10.0.0.1 -> 10.0.0.2
const SLOT = 2048,
  HEAD = 64;
const slab = Buffer.alloc(SLOT * BATCH);
const lens = new Uint32Array(BATCH).fill(LEN);
const fill = () => {
  for (let i = 0; i < BATCH; i++) {
    const o = i * SLOT + HEAD;
    slab.fill(0, o, o + LEN);
    slab[o] = 0x45;
    slab.writeUInt16BE(LEN, o + 2);
    slab[o + 9] = 17;
    slab.writeUInt32BE(0x0a000001, o + 12);
    slab.writeUInt32BE(0x0a000002, o + 16);
  }
};
fill();
engines.a.handleTunBatch({ buf: slab, slotSize: SLOT, headroom: HEAD, lens, count: 1 }, now);
run();

// seal: how many packets per second the engine seals (header + AEAD in place), sink discards
capture = null;
const sinkA = engines.a;
// CPU time (user + system) beside the wall clock: on a loaded machine the wall clock counts
// other processes' slices too
const cpuOf = (c) => {
  const u = process.cpuUsage(c);
  return (u.user + u.system) / 1e6;
};
let cpu0 = process.cpuUsage();
let t0 = process.hrtime.bigint();
let sealed = 0;
const devnull = { sendUdp() {}, writeTun() {}, flush() {} };
sinkA.setOutput(devnull);
while (Number(process.hrtime.bigint() - t0) < SECONDS * 1e9) {
  for (let k = 0; k < 50; k++) {
    fill();
    sinkA.handleTunBatch({ buf: slab, slotSize: SLOT, headroom: HEAD, lens, count: BATCH }, now);
    sealed += BATCH;
  }
}
let s = Number(process.hrtime.bigint() - t0) / 1e9;
let cpu = cpuOf(cpu0);
const fillCost = (() => {
  const t = process.hrtime.bigint();
  for (let k = 0; k < 2000; k++) fill();
  return Number(process.hrtime.bigint() - t) / 1e9 / (2000 * BATCH);
})();
const fillCpu = (() => {
  const c = process.cpuUsage();
  for (let k = 0; k < 2000; k++) fill();
  return cpuOf(c) / (2000 * BATCH);
})();
console.log(
  `seal: ${Math.round(sealed / s)} packets/s = ${((s / sealed - fillCost) * 1e6).toFixed(2)} µs per ${LEN}-byte packet (test fill excluded); CPU ${((cpu / sealed - fillCpu) * 1e6).toFixed(2)} µs`,
);

// open: capture 64 sealed datagrams once, then feed copies into b
capture = [];
sinkA.setOutput({
  sendUdp(buf, off, len) {
    capture.push(Buffer.from(buf.subarray(off, off + len)));
  },
  writeTun() {},
  flush() {},
});
fill();
sinkA.handleTunBatch({ buf: slab, slotSize: SLOT, headroom: HEAD, lens, count: BATCH }, now);
const sealedPkts = capture;
// b needs fresh counters each round: re-seal per round is costly, so reset b's window instead
const tb = [...engines.b.peers.values()][0].sendTunnel();
const rslab = Buffer.alloc(SLOT * BATCH);
const rlens = new Uint32Array(BATCH);
const raddrs = Buffer.alloc(20 * BATCH);
for (let i = 0; i < BATCH; i++) addr.a.copy(raddrs, i * 20);
let opened = 0;
tunWrites = 0;
cpu0 = process.cpuUsage();
t0 = process.hrtime.bigint();
let copyCost = 0;
let copyCpu = 0;
while (Number(process.hrtime.bigint() - t0) < SECONDS * 1e9) {
  for (let k = 0; k < 50; k++) {
    const c0 = process.hrtime.bigint();
    const u0 = process.cpuUsage();
    for (let i = 0; i < BATCH; i++) {
      sealedPkts[i].copy(rslab, i * SLOT + HEAD);
      rlens[i] = sealedPkts[i].length;
    }
    tb.cur.replay.top = -1; // accept the same counters again (benchmark only)
    tb.cur.replay["words"].fill(0);
    copyCost += Number(process.hrtime.bigint() - c0);
    copyCpu += cpuOf(u0);
    engines.b.handleUdpBatch(
      { buf: rslab, slotSize: SLOT, headroom: HEAD, lens: rlens, count: BATCH, addrs: raddrs },
      now,
    );
    opened += BATCH;
  }
}
s = Number(process.hrtime.bigint() - t0) / 1e9;
cpu = cpuOf(cpu0);
console.log(
  `open: ${Math.round(opened / s)} packets/s = ${(((s - copyCost / 1e9) / opened) * 1e6).toFixed(2)} µs per packet (test copy excluded); CPU ${(((cpu - copyCpu) / opened) * 1e6).toFixed(2)} µs; delivered ${tunWrites}`,
);
const t0b = [...engines.a.peers.values()][0].sendTunnel();
if (t0b.suite !== SUITE) throw new Error(`tunnel suite ${t0b.suite}, wanted ${SUITE}`);
