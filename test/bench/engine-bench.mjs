// Protocol-core benchmarks, in process (no sockets): tunnel creations accepted per second
// on one core, memory per idle tunnel, and seal/open cost per packet through the engine.
// Usage: npm run build:ts && node --expose-gc test/bench/engine-bench.mjs [N]
import { tryEncodeAddr } from "../../dist/wire/addr.js";
import { Engine } from "../../dist/tunnel/engine.js";
import { onDatagram } from "../../dist/tunnel/outside.js";
import { NOW as now0, host, engineOpts } from "./common.mjs";

const N = Number(process.argv[2] ?? 10_000);
function engine(h, out) {
  return new Engine(engineOpts(h), out, now0);
}
const sink = { sendUdp() {}, writeTun() {}, flush() {} };
const addrB = tryEncodeAddr("192.0.2.2", 7000);

// responder b
const hb = host("b", "10.0.0.2");
const b = engine(hb, sink);

// one packet from 10.0.0.1 to 10.0.0.2 in a slab
function pkt(src) {
  const slab = Buffer.alloc(256);
  const p = slab.subarray(64, 64 + 60);
  p[0] = 0x45;
  p.writeUInt16BE(60, 2);
  p[9] = 6;
  src.split(".").forEach((x, i) => (p[12 + i] = Number(x)));
  [10, 0, 0, 2].forEach((x, i) => (p[16 + i] = x));
  return { buf: slab, slotSize: 256, headroom: 64, lens: Uint32Array.of(60), count: 1 };
}

// CREATE packets from `hosts` initiators, `per` tunnels each
function makeCreates(b, hosts, per) {
  const creates = [];
  for (let h = 0; h < hosts; h++) {
    const ip = `10.1.${h >> 8}.${h & 255}`;
    const ha = host(`a${h}`, ip);
    let captured = null;
    const out = {
      sendUdp(buf, off, len) {
        captured = Buffer.from(buf.subarray(off, off + len));
      },
      writeTun() {},
      flush() {},
    };
    const a = engine(ha, out);
    // learn b's record directly (as a directory or the record exchange would)
    const peer = a.addPeer({ name: "b", endpoint: addrB, cert: hb.cert }, now0);
    peer.eph = b.eph.current.cert;
    for (let i = 0; i < per; i++) {
      captured = null;
      a.handleTunBatch(pkt(ip), now0);
      creates.push({ data: captured, src: tryEncodeAddr(`192.0.${(h >> 8) & 255}.${h & 255}`, 10000 + i) });
      const t = peer.sendTunnel();
      a.closeTunnel(t, now0, "bench");
    }
  }
  return creates;
}

function acceptBench(b, label, creates) {
  const before = b.events.tunnelsAccepted;
  const t0 = process.hrtime.bigint();
  for (const c of creates) onDatagram(b, c.data, 0, c.data.length, c.src, 0, now0);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const acc = b.events.tunnelsAccepted - before;
  console.log(
    `${label}: ${acc} of ${creates.length} accepted in ${(s * 1000).toFixed(0)} ms = ${Math.round(acc / s)} creations/s (${((s / acc) * 1e6).toFixed(0)} µs each)`,
  );
  return acc / s;
}

// warm-up
acceptBench(b, "warm-up (200 from one host)", makeCreates(b, 1, 200));
const same = makeCreates(b, 1, N);
const distinct = makeCreates(b, Math.min(N, 2000), Math.max(1, Math.floor(N / 2000)));
const r1 = acceptBench(b, `same host, ${N} creations`, same);
const r2 = acceptBench(b, `${Math.min(N, 2000)} distinct hosts, ${distinct.length} creations`, distinct);
same.length = 0;
distinct.length = 0;

// memory: a fresh responder accepts N tunnels from one host; the heap and external memory it
// gains, after each tunnel is made idle-established (what the creator's first DATA does in
// outside.ts), divided by N. The ephemeral key's replay record (one entry per creation, erased
// with the key after at most its lifetime) is reported separately.
const b2 = engine(hb, sink);
const creates2 = makeCreates(b2, 1, N);
global.gc?.();
const m1 = process.memoryUsage();
// the CREATE packets themselves stay alive until the end so they are not counted as freed
for (const c of creates2) onDatagram(b2, Buffer.from(c.data), 0, c.data.length, c.src, 0, now0);
for (const p of b2.peers.values())
  for (const t of p.tunnels) {
    t.state = "established";
    t.eraseAccept();
  }
global.gc?.();
const m2 = process.memoryUsage();
const total = (m2.heapUsed - m1.heapUsed + m2.external - m1.external) / b2.tunnelCount;
let seen = 0;
for (const k of b2.eph.list()) seen += k.seen.size;
// size of the replay record alone: drop it and measure again
for (const k of b2.eph.list()) k.seen.clear();
global.gc?.();
const m3 = process.memoryUsage();
const perTunnel = (m3.heapUsed - m1.heapUsed + m3.external - m1.external) / b2.tunnelCount;
creates2.length = 0;
console.log(
  `memory: ${b2.tunnelCount} idle tunnels from one host: ${perTunnel.toFixed(0)} bytes per tunnel; ` +
    `+ ${(total - perTunnel).toFixed(0)} bytes per creation in the ephemeral key's replay record (${seen} entries, erased with the key)`,
);
console.log(
  JSON.stringify({
    creationsPerSecSameHost: Math.round(r1),
    creationsPerSecDistinctHosts: Math.round(r2),
    tunnels: b2.tunnelCount,
    bytesPerIdleTunnel: Math.round(perTunnel),
    bytesPerReplayRecord: Math.round(total - perTunnel),
  }),
);
