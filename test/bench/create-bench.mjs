// Tunnel creations accepted per second on one core, sustained (issue 19 item 5): the
// responder is an Engine with the daemon's default config (src/config/schema.ts DEFAULTS:
// per-source buckets, the load meter and its puzzles, the replay record and its per-host
// shares, the table limits), fed by HOSTS creator hosts, each with its own certificate and
// source address. Every creation is the whole exchange a creator goes through under load:
//
//   CREATE (0-RTT)  -> responder: PUZZLE        (the load meter is on above 1000/s)
//   CREATE_SOLVED   -> responder: accepted, REPLY
//   first DATA      -> responder: established (its older tunnel of that host superseded)
//
// Only the responder's work is timed (its CPU time around each packet it is given and its
// coarse timer); the creators (key pairs, X25519, solving the puzzles) run on the same
// thread but outside the clock. The engine's clock advances by the responder's time, so
// the load meter, puzzle windows, buckets and key rotation see the rate the responder
// sustains. Runs until the responder has spent SECONDS (default 30) and prints accepted/s
// per responder second (min, median, max) and overall, and the drop counters.
//
//   npm run build:ts && node test/bench/create-bench.mjs [SECONDS] [HOSTS]
//   CREATE_BENCH_MAX_DIFFICULTY=8 node test/bench/create-bench.mjs 30   (cheaper creators; below)
//   node --cpu-prof --cpu-prof-dir=/tmp/prof test/bench/create-bench.mjs 10   (profile)
import { tryEncodeAddr } from "../../dist/wire/addr.js";
import { Engine } from "../../dist/tunnel/engine.js";
import { onDatagram } from "../../dist/tunnel/outside.js";
import { reloadableOptions } from "../../dist/daemon/bringup.js";
import { DEFAULTS } from "../../dist/config/schema.js";
import { TICK_MS } from "../../dist/tunnel/constants.js";
import { CA, host } from "./common.mjs";

const SECONDS = Number(process.argv[2] ?? 30);
const HOSTS = Number(process.argv[3] ?? 1000);
/**
 * The responder's dos.maxDifficulty (default: the daemon's, 20). It changes only the
 * creators' work (2^d hashes to solve a puzzle), not the responder's: its check is one
 * hash at any difficulty. A lower cap keeps the wall time of a 30-s run short on a busy
 * machine (at 10k/s the load meter asks for 11 bits).
 */
const MAX_DIFFICULTY = Number(process.env.CREATE_BENCH_MAX_DIFFICULTY ?? DEFAULTS.dos.maxDifficulty);
/** creations per step (each from another host): b's datagrams of one step form one batch */
const BATCH = Math.min(HOSTS, 64);
const T0 = Date.now();
let now = T0;

/** The responder's options exactly as the daemon derives them from a config with no overrides. */
function daemonDefaults(h) {
  const c = DEFAULTS;
  return {
    ca: CA,
    hostCert: h.cert,
    hostSecretKey: h.sk,
    ephemeralLifetimeMs: c.ephemeral.lifetimeSec * 1000,
    minFirstPacket: c.ephemeral.minFirstPacket,
    maxReplayRecords: c.ephemeral.replayRecords,
    maxReplayPerHost: c.ephemeral.replayPerHost,
    ...reloadableOptions(c),
    endpoints: () => [],
    dos: { ...c.dos, maxDifficulty: MAX_DIFFICULTY },
  };
}

/** An Output that keeps what an engine sends: [{ pkt, dst }] */
function capture() {
  const sent = [];
  return {
    sent,
    sendUdp(buf, off, len, addr, addrOff) {
      sent.push({
        pkt: Buffer.from(buf.subarray(off, off + len)),
        dst: addr.toString("latin1", addrOff, addrOff + 20),
      });
    },
    writeTun() {},
    flush() {},
  };
}

const hb = host("b", "10.0.0.2");
const outB = capture();
const b = new Engine(daemonDefaults(hb), outB, now);
const addrB = tryEncodeAddr("192.0.2.2", 7000);

/** one packet into the TUN of a creator with address ip, to 10.0.0.2 (a fresh slab: the engine seals in place) */
function tunPkt(ip) {
  const slab = Buffer.alloc(384);
  const p = slab.subarray(64, 64 + 60);
  p[0] = 0x45;
  p.writeUInt16BE(60, 2);
  p[8] = 64;
  p[9] = 17;
  ip.split(".").forEach((x, i) => (p[12 + i] = Number(x)));
  [10, 0, 0, 2].forEach((x, i) => (p[16 + i] = x));
  return { buf: slab, slotSize: 384, headroom: 64, lens: Uint32Array.of(60), count: 1 };
}

// the creators: one engine each, with b's record (as the record exchange or a directory gives it)
const creators = [];
for (let i = 0; i < HOSTS; i++) {
  const ip = `10.1.${i >> 8}.${i & 255}`;
  const h = host(`a${i}`, ip);
  const out = capture();
  const a = new Engine(
    {
      ca: CA,
      hostCert: h.cert,
      hostSecretKey: h.sk,
      ephemeralLifetimeMs: 3_600_000,
      minFirstPacket: 256,
      ...reloadableOptions(DEFAULTS),
      endpoints: () => [],
      // the creator's own limits: it solves every puzzle b asks for
      dos: { ...DEFAULTS.dos, puzzleSolvesPerPeer: 1e9 },
    },
    out,
    now,
  );
  const peer = a.addPeer({ name: "b", endpoint: addrB, cert: hb.cert }, now);
  const src = tryEncodeAddr(`198.18.${i >> 8}.${i & 255}`, 40000);
  creators.push({ a, out, peer, ip, src, srcKey: src.toString("latin1") });
}
const bySrc = new Map(creators.map((c) => [c.srcKey, c]));

// The responder's clock is CPU time (process.cpuUsage, user + system, µs): on a shared machine
// wall time also counts the moments the scheduler gave the core to someone else. The cost of
// reading it (measured here, ~1 µs) is taken off each reading.
const cpu = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const CPU_READ_US = (() => {
  const n = 20000;
  const c0 = cpu();
  for (let i = 0; i < n; i++) cpu();
  return (cpu() - c0) / n;
})();
let spentUs = 0;
/** run f as the responder: its CPU time is the responder's and advances the engine's clock */
function asB(f) {
  const c0 = cpu();
  f();
  const d = Math.max(0, cpu() - c0 - CPU_READ_US);
  spentUs += d;
  now += d / 1000;
}
let lastTick = now;
function tickB() {
  if (now - lastTick < TICK_MS) return;
  lastTick = now;
  asB(() => b.tick(now));
}
/** deliver what b sent to the creators (untimed: the creators' work) */
function fromB() {
  const s = outB.sent.splice(0);
  for (const { pkt, dst } of s) {
    const c = bySrc.get(dst);
    if (c) onDatagram(c.a, pkt, 0, pkt.length, addrB, 0, now);
  }
}

/**
 * BATCH creations by the next BATCH creators, in the steps of the exchange; b gets each
 * step's datagrams together (as from one receive batch) and its CPU time is read once per
 * step, so the clock's own cost stays out of the figure.
 */
let next = 0;
function creations() {
  const cs = [];
  for (let k = 0; k < BATCH; k++) cs.push(creators[next++ % HOSTS]);
  for (const c of cs) {
    c.peer.eph = b.eph.current.cert; // the creator holds b's current record
    c.out.sent.length = 0;
    c.a.handleTunBatch(tunPkt(c.ip), now); // CREATE with the packet 0-RTT
  }
  // CREATE -> PUZZLE (solved by the creator: CREATE_SOLVED) or REPLY; CREATE_SOLVED -> REPLY
  for (let round = 0; round < 3; round++) {
    const q = [];
    for (const c of cs) for (const { pkt } of c.out.sent.splice(0)) q.push([c, pkt]);
    if (q.length === 0) break;
    asB(() => {
      for (const [c, pkt] of q) onDatagram(b, pkt, 0, pkt.length, c.src, 0, now);
    });
    fromB();
    // established creators send their first DATA, which confirms the tunnel to b
    const data = [];
    for (const c of cs) {
      const t = c.peer.sendTunnel();
      if (t && t.state === "established" && !c.confirmed) {
        c.confirmed = true;
        c.out.sent.length = 0;
        c.a.handleTunBatch(tunPkt(c.ip), now);
        for (const { pkt } of c.out.sent.splice(0)) data.push([c, pkt]);
      }
    }
    if (data.length)
      asB(() => {
        for (const [c, pkt] of data) onDatagram(b, pkt, 0, pkt.length, c.src, 0, now);
      });
    outB.sent.length = 0;
  }
  tickB();
  for (const c of cs) {
    c.confirmed = false;
    const t = c.peer.sendTunnel() ?? c.peer.tunnels[0];
    if (t) c.a.closeTunnel(t, now, "bench"); // the next creation is a new tunnel
    c.out.sent.length = 0;
  }
  outB.sent.length = 0;
}

// warm-up (JIT), then reset nothing: the run starts with whatever state warm-up left
for (let i = 0; i < 2000 / BATCH; i++) creations();
const acc0 = b.events.tunnelsAccepted;
const drops0 = { ...b.drops };
const spent0 = spentUs;
const perSec = [];
let secAcc = b.events.tunnelsAccepted;
let secStart = spentUs;
let attempts = 0;
const wall0 = Date.now();
while (spentUs - spent0 < SECONDS * 1e6) {
  creations();
  attempts += BATCH;
  if (spentUs - secStart >= 1e6) {
    perSec.push((b.events.tunnelsAccepted - secAcc) / ((spentUs - secStart) / 1e6));
    secAcc = b.events.tunnelsAccepted;
    secStart = spentUs;
  }
}
const s = (spentUs - spent0) / 1e6;
const acc = b.events.tunnelsAccepted - acc0;
const sorted = [...perSec].sort((x, y) => x - y);
const drops = Object.fromEntries(
  Object.entries(b.drops)
    .map(([k, v]) => [k, v - (drops0[k] ?? 0)])
    .filter(([, v]) => v > 0),
);
const r = (x) => Math.round(x);
console.log(
  `${acc} of ${attempts} creations accepted in ${s.toFixed(1)} s of responder CPU time ` +
    `(${((Date.now() - wall0) / 1000).toFixed(0)} s wall, creators included) = ${r(acc / s)}/s ` +
    `(${((s / acc) * 1e6).toFixed(0)} µs each); per responder second: min ${r(sorted[0] ?? 0)}, ` +
    `median ${r(sorted[sorted.length >> 1] ?? 0)}, max ${r(sorted[sorted.length - 1] ?? 0)}`,
);
console.log(
  `load meter (max difficulty ${MAX_DIFFICULTY}): puzzling=${b.load.puzzling} difficulty=${b.load.difficulty} (max ${b.load.maxReached}); ` +
    `puzzles sent ${b.events.puzzlesSent}, solved CREATEs accepted ${b.events.puzzlesAccepted}; ` +
    `ephemeral rotations ${b.events.ephemeralRotations}; tunnels held ${b.tunnelCount}; drops ${JSON.stringify(drops)}`,
);
console.log(
  JSON.stringify({
    creationsPerSec: r(acc / s),
    minPerSec: r(sorted[0] ?? 0),
    medianPerSec: r(sorted[sorted.length >> 1] ?? 0),
    seconds: Number(s.toFixed(1)),
    hosts: HOSTS,
    accepted: acc,
    attempts,
  }),
);
