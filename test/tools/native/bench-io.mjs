#!/usr/bin/env node
/**
 * Packet-rate benchmark of the platform layer (not a test). Run as root:
 *
 *   npm run build:native && npx tsc -p test/tools/native/tsconfig.json   # or npm run build
 *   node test/tools/native/bench-io.mjs [seconds=3]
 *   node test/tools/native/bench-io.mjs [seconds=3] veth [rounds=3]
 *
 * Default: it creates a network namespace mtc-bench-<pid>, re-runs itself inside it, and
 * deletes it. Inside: (1) TUN read: another process sends UDP through the TUN route, we
 * count packets read; (2) TUN write: writeMany of crafted IPv4/UDP packets to a counting
 * receiver in another process; (3) UDP: sendMany over loopback to a LinuxUdp receiver in
 * another process, with UDP GSO/GRO (the default) and without. Each for 64- and 1400-byte
 * payloads. Prints a table (packets/s).
 *
 * veth: two namespaces mtc-bench-<pid>-a/-b joined by a veth pair; a sender process in a
 * sendMany()s 1400-byte datagrams (runs of 64) to a LinuxUdp receiver process in b, with
 * and without GSO/GRO (the `offload` bind option, = MINTUN_NO_GSO), alternating, `rounds`
 * times; then with the receiving veth's GRO on (`ethtool -K mtcb0 gro on`), and with
 * rx-udp-gro-forwarding on as well (veth only runs GRO on locally sent skbs with it).
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const SELF = fileURLToPath(import.meta.url);
const ROOT = join(dirname(SELF), "..", "..", "..");
const LIB =
  process.env.MINTUN_BENCH_LIB ??
  [join(ROOT, "dist/net"), join(ROOT, ".tmp/native-test/src/net")].find((d) => existsSync(join(d, "tun.js")));
if (!LIB) throw new Error("build first: npx tsc -p test/tools/native/tsconfig.json (or npm run build)");
const { LinuxTun } = await import(pathToFileURL(join(LIB, "tun.js")).href);
const { LinuxUdp, encodeAddr } = await import(pathToFileURL(join(LIB, "udp.js")).href);
const { LinuxRouteManager } = await import(pathToFileURL(join(LIB, "route.js")).href);

const [role, ...args] = process.argv.slice(2);
const BATCH = 64;

/** 64 copies of one packet packed with offsets, as the tunnel would hand them over. */
function packed(pkt) {
  const buf = Buffer.alloc(BATCH * 2048);
  const offs = new Uint32Array(BATCH);
  const lens = new Uint32Array(BATCH).fill(pkt.length);
  for (let i = 0; i < BATCH; i++) {
    offs[i] = i * 2048 + 64;
    pkt.copy(buf, offs[i]);
  }
  return { buf, offs, lens };
}

function csum(b, off, len, acc = 0) {
  for (let i = 0; i + 1 < len; i += 2) acc += b.readUInt16BE(off + i);
  if (len & 1) acc += b[off + len - 1] << 8;
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}

/** IPv4/UDP packet 10.99.0.2:7000 -> 10.99.0.1:dport, checksums set */
function ipv4Udp(dport, size) {
  const p = Buffer.alloc(28 + size, 0x5a);
  p.fill(0, 0, 28);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  Buffer.from([10, 99, 0, 2, 10, 99, 0, 1]).copy(p, 12);
  p.writeUInt16BE(0, 10);
  p.writeUInt16BE(~csum(p, 0, 20) & 0xffff, 10);
  p.writeUInt16BE(7000, 20);
  p.writeUInt16BE(dport, 22);
  p.writeUInt16BE(8 + size, 24);
  p.writeUInt16BE(0, 26);
  const c = ~csum(p, 20, 8 + size, csum(p, 12, 8) + 17 + 8 + size) & 0xffff;
  p.writeUInt16BE(c || 0xffff, 26);
  return p;
}

/** Busy-send for `secs` seconds; returns {sent, secs}. */
function blast(u, pkt, to, secs) {
  const { buf, offs, lens } = packed(pkt);
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(secs * 1e9));
  let sent = 0;
  while (process.hrtime.bigint() < end) sent += u.sendMany(buf, offs, lens, BATCH, to, 0);
  return { sent, secs: Number(process.hrtime.bigint() - t0) / 1e9, stats: u.stats() };
}

function child(argv) {
  const c = spawn(process.execPath, [SELF, ...argv], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  c.stdout.on("data", (d) => (out += d));
  const ready = new Promise((res) => c.stdout.on("data", () => out.includes("ready") && res()));
  const done = new Promise((res, rej) =>
    c.on("exit", (code) =>
      code === 0 ? res(JSON.parse(out.trim().split("\n").pop())) : rej(new Error(`child ${code}`)),
    ),
  );
  return { ready, done, pid: c.pid };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** "1"/"0" -> the bind's offload option (GSO+GRO); anything else: the default */
const offloadOpt = (v) => (v === "1" ? true : v === "0" ? false : undefined);

/** Count packets on a LinuxUdp receiver for `secs` seconds after the first one. */
async function countUdp(address, port, secs, offload) {
  const u = LinuxUdp.bind({ address, port, offload });
  let n = 0;
  let t0 = 0n;
  u.start((b) => {
    if (n === 0) t0 = process.hrtime.bigint();
    n += b.count;
  });
  process.stdout.write("ready\n");
  for (let i = 0; i < 5000 && n === 0; i++) await sleep(1); // give up after ~5 s: report 0
  await sleep(secs * 1000);
  const r = { received: n, secs: Number(process.hrtime.bigint() - t0) / 1e9, stats: u.stats() };
  u.close();
  return r;
}

async function inner(secs) {
  const rm = new LinuxRouteManager();
  const rows = [];
  const rate = (n, s) => Math.round(n / s);

  for (const size of [64, 1400]) {
    // (1) TUN read: a sender process routes UDP through the TUN; we read it
    {
      const tun = LinuxTun.open({ name: "mtb0" });
      await rm.addAddress("mtb0", "10.99.0.1/24");
      await rm.setUp("mtb0");
      let n = 0;
      let t0 = 0n;
      tun.start((b) => {
        if (n === 0) t0 = process.hrtime.bigint();
        n += b.count;
      });
      const s = child(["send", "10.99.0.1", "10.99.0.2", "9", String(size), String(secs + 1)]);
      for (let i = 0; i < 5000 && n === 0; i++) await sleep(1);
      await sleep(secs * 1000);
      const got = n;
      const el = Number(process.hrtime.bigint() - t0) / 1e9;
      const sent = await s.done;
      tun.close();
      rows.push([
        `TUN read (${size} B UDP payload)`,
        rate(got, el),
        `sender offered ${rate(sent.sent, sent.secs)}/s`,
      ]);
    }
    // (2) TUN write: writeMany of crafted IPv4/UDP packets to a receiver process
    {
      const tun = LinuxTun.open({ name: "mtb0" });
      await rm.addAddress("mtb0", "10.99.0.1/24");
      await rm.setUp("mtb0");
      const r = child(["recv", "10.99.0.1", "7777", String(secs)]);
      await r.ready;
      const { buf, offs, lens } = packed(ipv4Udp(7777, size));
      const t0 = process.hrtime.bigint();
      const end = t0 + BigInt(Math.round((secs + 0.5) * 1e9));
      let w = 0;
      while (process.hrtime.bigint() < end) w += tun.writeMany(buf, offs, lens, BATCH);
      const el = Number(process.hrtime.bigint() - t0) / 1e9;
      const recv = await r.done;
      const st = tun.stats();
      tun.close();
      rows.push([
        `TUN writeMany (${size} B UDP payload)`,
        rate(w, el),
        `receiver got ${rate(recv.received, recv.secs)}/s; txDropped ${st.txDropped}, txErrors ${st.txErrors}`,
      ]);
    }
    // (3) UDP loopback: sendMany here, LinuxUdp receiver in another process
    for (const offload of [true, false]) {
      const r = child(["recv", "127.0.0.1", "7778", String(secs), offload ? "1" : "0"]);
      await r.ready;
      const u = LinuxUdp.bind({ address: "127.0.0.1", port: 0, offload });
      const res = blast(u, Buffer.alloc(size, 0x33), encodeAddr("127.0.0.1", 7778), secs + 0.5);
      u.close();
      const recv = await r.done;
      rows.push([
        `UDP sendMany loopback (${size} B), ${offload ? "GSO/GRO" : "no offload"}`,
        rate(res.sent, res.secs),
        `receiver ${rate(recv.received, recv.secs)}/s; txDropped ${res.stats.txDropped}; ` +
          `gso ${res.stats.gsoMessages}/${res.stats.gsoSegments}, gro ${recv.stats.rxGroMessages}/${recv.stats.rxGroSegments}`,
      ]);
    }
  }
  console.log(`\nmintun platform I/O, batch ${BATCH}, ${secs} s per row, Node ${process.version}\n`);
  console.log("| operation | packets/s | notes |\n| --- | ---: | --- |");
  for (const [op, pps, note] of rows) console.log(`| ${op} | ${pps.toLocaleString("en-US")} | ${note} |`);
}

/** Sender and receiver processes in two namespaces over veth, with and without offloads. */
async function vethBench(secs, rounds) {
  const a = `mtc-bench-${process.pid}-a`;
  const b = `mtc-bench-${process.pid}-b`;
  const ip = (...x) => execFileSync("ip", x, { stdio: "pipe" });
  const inNs = (ns, argv) => child(["--netns", ns, ...argv]);
  ip("netns", "add", a);
  ip("netns", "add", b);
  try {
    ip("-n", a, "link", "add", "mtca0", "type", "veth", "peer", "name", "mtcb0", "netns", b);
    ip("-n", a, "addr", "add", "10.204.0.1/24", "dev", "mtca0");
    ip("-n", b, "addr", "add", "10.204.0.2/24", "dev", "mtcb0");
    ip("-n", a, "link", "set", "mtca0", "up");
    ip("-n", b, "link", "set", "mtcb0", "up");
    const ethtool = (ns, ...x) =>
      execFileSync("ip", ["netns", "exec", ns, "ethtool", ...x], { encoding: "utf8" });
    const feat = (ns, dev) =>
      ethtool(ns, "-k", dev)
        .split("\n")
        .filter((l) =>
          /^(generic-receive-offload|tx-udp-segmentation|rx-udp-gro-forwarding|rx-gro-list)/.test(l),
        )
        .map((l) => l.replace(/\s+/g, " ").trim())
        .join("; ");
    const rows = [];
    const one = async (label, txOffload, rxOffload = txOffload) => {
      const r = inNs(b, ["recv", "10.204.0.2", "7779", String(secs), rxOffload ? "1" : "0"]);
      await r.ready;
      const s = inNs(a, [
        "send",
        "10.204.0.1",
        "10.204.0.2",
        "7779",
        "1400",
        String(secs + 0.5),
        txOffload ? "1" : "0",
      ]);
      const [recv, sent] = await Promise.all([r.done, s.done]);
      rows.push([
        label,
        Math.round(recv.received / recv.secs),
        `sender ${Math.round(sent.sent / sent.secs)}/s, txDropped ${sent.stats.txDropped}; ` +
          `gso ${sent.stats.gsoMessages}/${sent.stats.gsoSegments}, gro ${recv.stats.rxGroMessages}/${recv.stats.rxGroSegments}`,
      ]);
    };
    let ethOk = true;
    let featB = "";
    try {
      featB = feat(b, "mtcb0");
    } catch {
      ethOk = false;
    }
    for (let i = 0; i < rounds; i++) {
      await one(`veth 1400 B, GSO/GRO, round ${i + 1}`, true);
      await one(`veth 1400 B, no offload, round ${i + 1}`, false);
    }
    if (ethOk) {
      ethtool(b, "-K", "mtcb0", "gro", "on");
      await one("veth 1400 B, GSO/GRO, receiving veth gro on", true);
      await one("veth 1400 B, no offload at the sockets, receiving veth gro on", false);
      await one("veth 1400 B, plain sender, GRO socket, receiving veth gro on", false, true);
      // veth runs GRO on locally generated skbs only with one of these (veth_skb_is_eligible_for_gro)
      ethtool(b, "-K", "mtcb0", "rx-udp-gro-forwarding", "on");
      await one(
        "veth 1400 B, plain sender, GRO socket, receiving veth gro + rx-udp-gro-forwarding on",
        false,
        true,
      );
      await one(
        "veth 1400 B, no offload at the sockets, receiving veth gro + rx-udp-gro-forwarding on",
        false,
      );
    }
    console.log(`\nUDP over veth, 1400 B, runs of ${BATCH}, ${secs} s per row, Node ${process.version}`);
    if (ethOk) console.log(`receiving veth before: ${featB}\n`);
    console.log("| operation | received packets/s | notes |\n| --- | ---: | --- |");
    for (const [op, pps, note] of rows) console.log(`| ${op} | ${pps.toLocaleString("en-US")} | ${note} |`);
  } finally {
    ip("netns", "del", a);
    ip("netns", "del", b);
  }
}

if (role === "--netns") {
  // re-run this script in a namespace: child(["--netns", ns, role, ...args])
  const [ns, ...rest] = args;
  const c = spawn("ip", ["netns", "exec", ns, process.execPath, SELF, ...rest], { stdio: "inherit" });
  c.on("exit", (code) => process.exit(code ?? 1));
} else if (role === "send") {
  const [local, dst, port, size, secs, offload] = args;
  const u = LinuxUdp.bind({ address: local, port: 0, offload: offloadOpt(offload) });
  process.stdout.write("ready\n");
  const r = blast(u, Buffer.alloc(Number(size), 0x44), encodeAddr(dst, Number(port)), Number(secs));
  u.close();
  console.log(JSON.stringify(r));
} else if (role === "recv") {
  const [address, port, secs, offload] = args;
  console.log(JSON.stringify(await countUdp(address, Number(port), Number(secs), offloadOpt(offload))));
} else if (role === "inner") {
  await inner(Number(args[0]));
} else {
  if (process.getuid?.() !== 0) throw new Error("run as root (creates a network namespace)");
  const secs = Number(role ?? 3);
  if (args[0] === "veth") {
    await vethBench(secs, Number(args[1] ?? 3));
    process.exit(0);
  }
  const ns = `mtc-bench-${process.pid}`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    execFileSync("ip", ["netns", "exec", ns, process.execPath, SELF, "inner", String(secs)], {
      stdio: "inherit",
    });
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
}
