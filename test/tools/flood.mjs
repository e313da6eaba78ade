// Bounded flood against a mintund, for the DoS test and benchmark. Runs inside the attacker's
// test namespace only:
//   node flood.mjs TARGET_IP TARGET_PORT RATE_PER_SEC SECONDS SRC_IP[,SRC_IP...] [MAX_SECONDS]
// Mix: 70% CREATE packets with the target's current ephemeral key id, a fresh random
// per-tunnel key and random ciphertext (each would cost the target an X25519 without
// puzzles), 20% random garbage, 10% replays of one earlier CREATE. Sources rotate over the
// given addresses (one UDP socket each). Sends RATE*SECONDS packets at RATE; a flooder that
// falls behind (a loaded machine) keeps sending as fast as it can until MAX_SECONDS (default
// SECONDS, at most 120), so the volume does not depend on the CPU it got. Prints a JSON summary.
import dgram from "node:dgram";
import crypto from "node:crypto";
import { aeadOpen, dh, dhKeyPair, randomBytes } from "../../dist/crypto/sodium.js";
import {
  RECORD_AD_BYTES,
  decodeRecordBody,
  decodeRecordResponseHeader,
  encodeRecordRequest,
} from "../../dist/wire/packet.js";
import { recordKey } from "../../dist/tunnel/keys.js";
import { decodeEphemeral } from "../../dist/wire/cert.js";

const [ip, portS, rateS, secS, srcs, maxS] = process.argv.slice(2);
const port = Number(portS);
const rate = Math.min(Number(rateS), 200_000);
const seconds = Math.min(Number(secS), 120);
const maxSeconds = Math.min(Math.max(Number(maxS ?? secS), seconds), 120);
const sources = srcs.split(",");
const socks = await Promise.all(
  sources.map(
    (a) =>
      new Promise((resolve, reject) => {
        const s = dgram.createSocket("udp4");
        s.once("error", reject);
        s.bind(0, a, () => resolve(s));
        s.on("message", () => {});
      }),
  ),
);

// learn the current ephemeral key id with one RECORD_REQUEST (type 5, padded to 800, with a
// one-time X25519 key); the RECORD_RESPONSE comes sealed to that key (docs/PROTOCOL.md section 4)
const q = dhKeyPair();
const req = encodeRecordRequest(randomBytes(8).latin1Slice(0, 8), q.publicKey, 800);
const keyId = await new Promise((resolve) => {
  const t = setTimeout(() => resolve(0), 2000);
  socks[0].once("message", (m) => {
    clearTimeout(t);
    const h = decodeRecordResponseHeader(m, 0, m.length);
    const shared = h ? dh(q.secretKey, h.pub) : null;
    if (!h || !shared) return resolve(0);
    const key = recordKey(shared, m.subarray(0, 8), q.publicKey, h.pub);
    const nonce = Buffer.concat([Buffer.alloc(4), m.subarray(8, 16)]);
    const ct = m.subarray(RECORD_AD_BYTES);
    const pt = Buffer.alloc(ct.length - 16);
    if (!aeadOpen(pt, ct, m.subarray(0, RECORD_AD_BYTES), nonce, key)) return resolve(0);
    const body = decodeRecordBody(pt, 0, pt.length);
    const eph = body ? decodeEphemeral(body.eph) : null;
    resolve(eph ? eph.keyId : 0);
  });
  socks[0].send(req, port, ip);
});

function create() {
  const b = Buffer.alloc(256);
  crypto.randomFillSync(b);
  b[8] = 1; // CREATE
  b[9] = 0;
  b.writeUInt32BE(keyId, 16);
  return b;
}
const replay = create();
const total = Math.floor(rate * seconds);
let sent = 0;
const counts = { create: 0, garbage: 0, replay: 0 };
const t0 = Date.now();
const tickMs = 5;
await new Promise((resolve) => {
  const timer = setInterval(() => {
    const elapsed = Date.now() - t0;
    if (elapsed >= maxSeconds * 1000 || sent >= total) {
      clearInterval(timer);
      resolve();
      return;
    }
    const due = Math.min(total, Math.floor((elapsed / 1000) * rate)) - sent;
    for (let i = 0; i < due; i++) {
      const r = Math.random();
      let pkt;
      if (r < 0.7) {
        pkt = create();
        counts.create++;
      } else if (r < 0.9) {
        pkt = crypto.randomBytes(16 + Math.floor(Math.random() * 1400));
        counts.garbage++;
      } else {
        pkt = replay;
        counts.replay++;
      }
      socks[sent % socks.length].send(pkt, port, ip);
      sent++;
    }
  }, tickMs);
});
await new Promise((r) => setTimeout(r, 100));
for (const s of socks) s.close();
console.log(JSON.stringify({ keyId, sent, seconds: (Date.now() - t0) / 1000, ...counts }));
