// The data path over several threads, in process (no syscalls): each thread runs the data
// path of a dataPath.workers thread (src/tunnel/dataplane.ts) in both roles, a sender plane
// (TUN batch of 64 IPv4/UDP packets of LEN bytes -> sealed datagrams) and a receiver plane
// (the datagrams -> checked, opened, inner packets "written"), for one tunnel whose send
// counter cell all threads share (as the workers of one tunnel do). Rounds alternate 1 and 2
// threads (then 3, 4 when asked) so that load from other processes hits both alike; prints
// packets/s per round, the ratio to 1 thread, and the load average.
// Usage: npm run build:ts && nice -n 10 node test/bench/workers-bench.mjs [rounds] [seconds] [LEN] [maxThreads]
import * as fs from "node:fs";
import * as os from "node:os";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";

const BATCH = 64;

/** this thread's CPU time in seconds (utime + stime of /proc/thread-self/stat, 100 ticks/s) */
function threadCpu() {
  const st = fs.readFileSync("/proc/thread-self/stat", "utf8");
  const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function thread({ seconds, len, cells }) {
  const { DataPlane } = await import("../../dist/tunnel/dataplane.js");
  const { ReplayWindow } = await import("../../dist/tunnel/replay.js");
  const { ADDR_BYTES } = await import("../../dist/wire/addr.js");
  const cellArr = new Int32Array(cells);
  const slot = 2048;
  const head = 64;
  // the receiver's slab: the sender's datagrams are copied in (the kernel would)
  const rx = {
    buf: Buffer.alloc(slot * BATCH),
    slotSize: slot,
    headroom: head,
    lens: new Uint32Array(BATCH),
    count: 0,
    addrs: Buffer.alloc(ADDR_BYTES * BATCH),
  };
  let n = 0;
  const sendOut = {
    sendUdp(buf, off, l) {
      buf.copy(rx.buf, n * slot + head, off, off + l);
      rx.lens[n++] = l;
    },
    writeTun() {},
    flush() {},
  };
  let delivered = 0;
  const recvOut = {
    sendUdp() {},
    writeTun() {
      delivered++;
    },
    flush() {},
  };
  const punts = [];
  const sender = new DataPlane(sendOut, (m) => punts.push(m.k), cellArr);
  const receiver = new DataPlane(recvOut, (m) => punts.push(m.k), cellArr);
  const tid = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const ep = new Uint8Array(20);
  ep.set([4, 0, 0x1b, 0x58, 192, 0, 2, 2]);
  // the source record of every datagram: the endpoint
  for (let i = 0; i < BATCH; i++) rx.addrs.set(ep, i * 20);
  const local = new Uint8Array(16);
  local.set([10, 0, 0, 1]);
  const remote = new Uint8Array(16);
  remote.set([10, 0, 0, 2]);
  const now = Date.now();
  const flow = { slot: 1, proto: 17, family: 4, lport: 40000, rport: 5000, ttlMs: 3_600_000 };
  sender.onMessage(
    { k: "send", slot: 1, tid, key: new Uint8Array(32).fill(7), ctrIdx: 0, endpoint: ep, src: null },
    now,
  );
  sender.onMessage({ k: "flow", ...flow, key: 0x1234, local, remote }, now);
  receiver.onMessage(
    { k: "send", slot: 1, tid, key: new Uint8Array(32).fill(5), ctrIdx: 1, endpoint: ep, src: null },
    now,
  );
  receiver.onMessage(
    {
      k: "recv",
      slot: 1,
      tid,
      key: new Uint8Array(32).fill(7),
      top: -1,
      words: new ReplayWindow().exportState().words,
      rejectAt: 1e15,
    },
    now,
  );
  // the receiver's table key of the sender's id 0x1234 (keyOfWire: the opener bit flipped)
  const { keyOfWire } = await import("../../dist/conn/conns.js");
  receiver.onMessage(
    { k: "rxconn", ...flow, key: keyOfWire(0x1234), local: remote, remote: local, lport: 5000, rport: 40000 },
    now,
  );
  // the TUN batch: LEN-byte IPv4/UDP packets 10.0.0.1:40000 -> 10.0.0.2:5000
  const pkt = Buffer.alloc(len);
  pkt[0] = 0x45;
  pkt.writeUInt16BE(len, 2);
  pkt[8] = 64;
  pkt[9] = 17;
  pkt.set([10, 0, 0, 1], 12);
  pkt.set([10, 0, 0, 2], 16);
  pkt.writeUInt16BE(40000, 20);
  pkt.writeUInt16BE(5000, 22);
  pkt.writeUInt16BE(len - 20, 24);
  const tx = {
    buf: Buffer.alloc(slot * BATCH),
    slotSize: slot,
    headroom: head,
    lens: new Uint32Array(BATCH),
    count: BATCH,
  };
  // 300 ms of warm-up (JIT) before the measured seconds
  const warm = performance.now() + 300;
  let end = warm + seconds * 1000;
  let batches = 0;
  let warming = true;
  let cpu0 = 0;
  for (;;) {
    const t = performance.now();
    if (warming && t >= warm) {
      warming = false;
      delivered = 0;
      batches = 0;
      end = t + seconds * 1000;
      cpu0 = threadCpu();
    }
    if (t >= end) break;
    for (let i = 0; i < BATCH; i++) {
      pkt.copy(tx.buf, i * slot + head); // a fresh read (the seal is in place)
      tx.lens[i] = len;
    }
    n = 0;
    sender.onTunBatch(tx, now);
    rx.count = n;
    receiver.onUdpBatch(rx, now);
    batches++;
  }
  const cpu = threadCpu() - cpu0;
  return {
    cpu,
    packets: delivered,
    sealed: batches * BATCH,
    punts: punts.length,
    replay: receiver.counters.replay,
  };
}

if (!isMainThread) {
  parentPort.postMessage(await thread(workerData));
} else {
  const ROUNDS = Number(process.argv[2] ?? 3);
  const SECONDS = Number(process.argv[3] ?? 3);
  const LEN = Number(process.argv[4] ?? 92);
  const MAX = Number(process.argv[5] ?? 2);
  const runThreads = async (k) => {
    const cells = new SharedArrayBuffer(4 * 16);
    const t0 = performance.now();
    const rs = await Promise.all(
      Array.from(
        { length: k },
        () =>
          new Promise((resolve, reject) => {
            const w = new Worker(new URL(import.meta.url), {
              workerData: { seconds: SECONDS, len: LEN, cells },
            });
            w.once("message", resolve);
            w.once("error", reject);
          }),
      ),
    );
    const secs = (performance.now() - t0) / 1000;
    const pkts = rs.reduce((s, r) => s + r.packets, 0);
    const cpu = rs.reduce((s, r) => s + r.cpu, 0);
    return {
      cpu,
      perCpu: pkts / cpu,
      pps: pkts / SECONDS,
      wall: secs,
      per: rs.map((r) => Math.round(r.packets / SECONDS)),
      replay: rs.reduce((s, r) => s + r.replay, 0),
      punts: rs.reduce((s, r) => s + r.punts, 0),
    };
  };
  console.log(
    `workers-bench: ${ROUNDS} rounds x ${SECONDS} s, ${LEN}-byte packets, batches of ${BATCH}, 1..${MAX} threads (cpus ${os.cpus().length})`,
  );
  console.log(
    `load average at start: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
  const by = new Map();
  const byCpu = new Map();
  for (let r = 0; r < ROUNDS; r++)
    for (let k = 1; k <= MAX; k++) {
      const x = await runThreads(k);
      if (!by.has(k)) by.set(k, []);
      by.get(k).push(x.pps);
      if (!byCpu.has(k)) byCpu.set(k, []);
      byCpu.get(k).push(x.perCpu);
      console.log(
        `round ${r + 1} threads ${k}: ${Math.round(x.pps)} pkt/s (per thread ${x.per.join(", ")}), seal+open ${(1e6 / (x.pps / k)).toFixed(2)} µs per packet per thread (wall), CPU ${x.cpu.toFixed(2)} s = ${Math.round(x.perCpu)} pkt per CPU-second, replay drops ${x.replay}, hand-overs ${x.punts}; load ${os.loadavg()[0].toFixed(2)}`,
      );
    }
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const base = med(by.get(1));
  const baseCpu = med(byCpu.get(1));
  for (const [k, a] of by) {
    const c = med(byCpu.get(k));
    console.log(
      `threads ${k}: median ${Math.round(med(a))} pkt/s wall (${(med(a) / base).toFixed(2)}x of 1 thread); ` +
        `${Math.round(c)} pkt per CPU-second (${(c / baseCpu).toFixed(2)}x), ` +
        `i.e. ${((k * c) / baseCpu).toFixed(2)}x of 1 thread when each thread has a core`,
    );
  }
  console.log(
    `load average at end: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
}
