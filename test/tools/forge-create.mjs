// A host whose certificate another CA signed tries to create a tunnel to a real mintund.
// Runs inside a test namespace (ip netns exec NS node forge-create.mjs ARGS...), using the
// real protocol engine (dist/) with a forged identity:
//   node forge-create.mjs TRUSTED_CA.crt EVIL_CA.crt EVIL_CA.key PEER_NAME PEER_IP PEER_PORT SRC_OVERLAY DST_OVERLAY
// It fetches the peer's record (verifying it against the trusted CA, as any client does),
// then sends one inner packet, which travels 0-RTT in a CREATE carrying the forged
// certificate. Prints a JSON summary on stdout; the test checks the peer's counters.
import dgram from "node:dgram";
import { readCert, readSecretKey } from "../../dist/store/keyfile.js";
import { signKeyPair } from "../../dist/crypto/sodium.js";
import { signCert } from "../../dist/wire/cert.js";
import { tryEncodeAddr, decodeAddrRecord } from "../../dist/wire/addr.js";
import { Engine } from "../../dist/tunnel/engine.js";
import { onDatagram } from "../../dist/tunnel/outside.js";

const [trustedCaFile, evilCaFile, evilCaKey, peerName, peerIp, peerPort, src, dst] = process.argv.slice(2);
const trusted = readCert(trustedCaFile);
const evilCa = readCert(evilCaFile);
const evilSk = readSecretKey(evilCaKey);
const kp = signKeyPair();
const now = Math.floor(Date.now() / 1000);
const hostCert = signCert(
  {
    kind: "host",
    name: "forged",
    publicKey: kp.publicKey,
    groups: [],
    notBefore: now - 60,
    notAfter: now + 3600,
    issuer: evilCa.publicKey,
    ip4: src,
    ip6: null,
    subnets: [],
  },
  evilSk,
);
const sock = dgram.createSocket("udp4");
await new Promise((r) => sock.bind(0, r));
const sent = [];
const out = {
  sendUdp(buf, off, len, addr, addrOff) {
    const a = decodeAddrRecord(addr, addrOff);
    const copy = Buffer.from(buf.subarray(off, off + len));
    sent.push(copy[8]);
    sock.send(copy, a.port, a.ip);
  },
  writeTun() {},
  flush() {},
};
const engine = new Engine(
  {
    ca: trusted,
    hostCert,
    hostSecretKey: kp.secretKey,
    ephemeralLifetimeMs: 300_000,
    minFirstPacket: 256,
    rekeyAfterMs: 120_000,
    keepaliveMs: 0,
    idleTimeoutMs: 60_000,
    maxTunnels: 10,
    endpoints: () => [],
  },
  out,
  Date.now(),
);
sock.on("message", (msg, rinfo) =>
  onDatagram(engine, msg, 0, msg.length, tryEncodeAddr(rinfo.address, rinfo.port), 0, Date.now()),
);
engine.addPeer({ name: peerName, endpoint: tryEncodeAddr(peerIp, Number(peerPort)) }, Date.now());
const deadline = Date.now() + 5000;
while (engine.events.recordsLearned === 0 && Date.now() < deadline)
  await new Promise((r) => setTimeout(r, 20));
// one inner IPv4 packet src -> dst
const pkt = Buffer.alloc(48);
pkt[0] = 0x45;
pkt.writeUInt16BE(48, 2);
pkt[8] = 64;
pkt[9] = 17;
src.split(".").forEach((x, i) => (pkt[12 + i] = Number(x)));
dst.split(".").forEach((x, i) => (pkt[16 + i] = Number(x)));
const slab = Buffer.alloc(256);
pkt.copy(slab, 64);
engine.handleTunBatch(
  { buf: slab, slotSize: 256, headroom: 64, lens: Uint32Array.of(48), count: 1 },
  Date.now(),
);
await new Promise((r) => setTimeout(r, 500));
const t = [...engine.peers.values()][0]?.sendTunnel();
console.log(
  JSON.stringify({
    recordLearned: engine.events.recordsLearned,
    createSent: engine.events.createSent,
    tunnelState: t?.state ?? null,
    sentTypes: sent,
  }),
);
sock.close();
engine.close(Date.now());
