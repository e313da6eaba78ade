// How the send path and memory grow with the number of tunnels: one host `a` with N
// established tunnels (to N in-process peers), sealing batches of 64 packets spread
// round-robin over all of them. In process, no syscalls.
// Usage: npm run build:ts && node --expose-gc test/bench/scale-bench.mjs [1,10,100,1000]
import { tryEncodeAddr } from "../../dist/wire/addr.js";
import { Engine } from "../../dist/tunnel/engine.js";
import { onDatagram } from "../../dist/tunnel/outside.js";
import { NOW as now, host, engineOpts } from "./common.mjs";

const COUNTS = (process.argv[2] ?? "1,10,100,1000").split(",").map(Number);
const opts = (h) => engineOpts(h, { maxTunnels: 100_000 });
const ipOf = (i) => `10.1.${(i + 1) >> 8}.${(i + 1) & 255}`;

for (const N of COUNTS) {
  const queue = [];
  const byAddr = new Map();
  const mk = (h, addr) => {
    const e = new Engine(
      opts(h),
      {
        sendUdp(buf, off, len, to, toOff) {
          queue.push({
            to: to.subarray(toOff, toOff + 20).toString("hex"),
            from: addr,
            d: Buffer.from(buf.subarray(off, off + len)),
          });
        },
        writeTun() {},
        flush() {},
      },
      now,
    );
    byAddr.set(addr.toString("hex"), e);
    return e;
  };
  const aAddr = tryEncodeAddr("192.0.2.1", 7000);
  const a = mk(host("a", "10.0.0.1"), aAddr);
  const peers = [];
  for (let i = 0; i < N; i++) {
    const addr = tryEncodeAddr(`198.18.${(i + 1) >> 8}.${(i + 1) & 255}`, 7000);
    const h = host(`b${i}`, ipOf(i));
    const b = mk(h, addr);
    const p = a.addPeer({ name: `b${i}`, endpoint: addr, cert: h.cert }, now);
    p.eph = b.eph.current.cert;
    peers.push(p);
  }
  const run = () => {
    while (queue.length) {
      const q = queue.shift();
      const e = byAddr.get(q.to);
      if (e) onDatagram(e, q.d, 0, q.d.length, q.from, 0, now);
    }
  };
  const SLOT = 2048,
    HEAD = 64,
    BATCH = 64,
    LEN = 1400;
  const slab = Buffer.alloc(SLOT * BATCH);
  const lens = new Uint32Array(BATCH).fill(LEN);
  let rr = 0;
  const fill = () => {
    for (let i = 0; i < BATCH; i++) {
      const o = i * SLOT + HEAD;
      slab[o] = 0x45;
      slab.writeUInt16BE(LEN, o + 2);
      slab[o + 9] = 17;
      slab.writeUInt32BE(0x0a000001, o + 12);
      const j = rr++ % N;
      slab.writeUInt32BE(((10 << 24) | (1 << 16) | (((j + 1) >> 8) << 8) | ((j + 1) & 255)) >>> 0, o + 16);
    }
  };
  // establish every tunnel (creation + reply + confirmation)
  for (let k = 0; k < Math.ceil(N / BATCH) + 1; k++) {
    fill();
    a.handleTunBatch({ buf: slab, slotSize: SLOT, headroom: HEAD, lens, count: BATCH }, now);
    run();
  }
  const established = peers.filter((p) => p.sendTunnel()?.state === "established").length;
  // memory of a's tunnels: measured as heap growth of a fresh set is hard in-process; report
  // process totals per tunnel (both ends live here, so this is an upper bound for one end)
  global.gc?.();
  const mem = process.memoryUsage();
  a.setOutput({ sendUdp() {}, writeTun() {}, flush() {} });
  let sealed = 0;
  const t0 = process.hrtime.bigint();
  while (Number(process.hrtime.bigint() - t0) < 2e9) {
    for (let k = 0; k < 20; k++) {
      fill();
      a.handleTunBatch({ buf: slab, slotSize: SLOT, headroom: HEAD, lens, count: BATCH }, now);
      sealed += BATCH;
    }
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `${String(N).padStart(5)} tunnels (${established} established): seal ${Math.round(sealed / s)} packets/s ` +
      `(${((s / sealed) * 1e6).toFixed(2)} µs/packet incl. batch fill), process heap ${(mem.heapUsed / 1048576).toFixed(0)} MiB + external ${(mem.external / 1048576).toFixed(0)} MiB for ${N + 1} engines`,
  );
  a.close(now);
  for (const e of byAddr.values()) e.close(now);
}
