// One authenticated host against a real mintund's tunnel table (issue 15): a scripted client
// holding a real host key and certificate (signed by the organisation's CA), running the real
// protocol engine (dist/). Runs inside a test namespace only:
//   node table-flood.mjs CA.crt HOST.key HOST.crt PEER_NAME PEER_IP PEER_PORT MODE COUNT SECONDS
// MODE hold:   creates COUNT tunnels (about 50 per second) and confirms none: every REPLY is
//              dropped unread and the local side forgotten at once, so the peer keeps each
//              accepted creation half-open (what a member filling the table would do).
// MODE create: creates up to COUNT tunnels one after the other, each confirmed (the REPLY is
//              read, the engine confirms it), and counts those established within 2 s each.
// Bounded: COUNT ≤ 1000 and SECONDS ≤ 60. Prints a JSON summary on stdout.
import dgram from "node:dgram";
import { readCert, readSecretKey } from "../../dist/store/keyfile.js";
import { tryEncodeAddr, decodeAddrRecord } from "../../dist/wire/addr.js";
import { Engine } from "../../dist/tunnel/engine.js";
import { onDatagram } from "../../dist/tunnel/outside.js";

const [caFile, keyFile, certFile, peerName, peerIp, peerPort, mode, countS, secondsS] = process.argv.slice(2);
const count = Math.min(Number(countS), 1000);
const end = Date.now() + Math.min(Number(secondsS), 60) * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sock = dgram.createSocket("udp4");
await new Promise((r) => sock.bind(0, r));
const out = {
  sendUdp(buf, off, len, addr, addrOff) {
    const a = decodeAddrRecord(addr, addrOff);
    sock.send(Buffer.from(buf.subarray(off, off + len)), a.port, a.ip);
  },
  writeTun() {},
  flush() {},
};
const engine = new Engine(
  {
    ca: readCert(caFile),
    hostCert: readCert(certFile),
    hostSecretKey: readSecretKey(keyFile),
    ephemeralLifetimeMs: 300_000,
    minFirstPacket: 256,
    rekeyAfterMs: 120_000,
    keepaliveMs: 0,
    idleTimeoutMs: 60_000,
    maxTunnels: 10_000,
    endpoints: () => [],
  },
  out,
  Date.now(),
);
let repliesDropped = 0;
sock.on("message", (msg, rinfo) => {
  // type byte 8: 2 = REPLY; in hold mode the creations stay unconfirmed
  if (mode === "hold" && msg.length > 8 && msg[8] === 2) {
    repliesDropped++;
    return;
  }
  onDatagram(engine, msg, 0, msg.length, tryEncodeAddr(rinfo.address, rinfo.port), 0, Date.now());
});
engine.addPeer({ name: peerName, endpoint: tryEncodeAddr(peerIp, Number(peerPort)) }, Date.now());
while (engine.events.recordsLearned === 0 && Date.now() < end) {
  engine.tick(Date.now());
  await sleep(20);
}
const peer = [...engine.peers.values()][0];
let opened = 0;
let established = 0;
while (opened < count && Date.now() < end && engine.events.recordsLearned > 0) {
  const t = engine.openTunnel(peer, Date.now());
  if (!t) {
    await sleep(20);
    continue;
  }
  opened++;
  if (mode === "hold") {
    engine.closeTunnel(t, Date.now(), "hold");
    await sleep(20);
    continue;
  }
  const until = Math.min(Date.now() + 2000, end);
  while (t.state !== "established" && Date.now() < until) await sleep(10);
  if (t.state === "established") established++;
  // forget it here (the peer keeps the confirmed tunnel) so the next one is a new creation
  engine.closeTunnel(t, Date.now(), "next");
}
if (mode === "hold") await sleep(300); // the last REPLYs
console.log(
  JSON.stringify({
    mode,
    recordLearned: engine.events.recordsLearned,
    opened,
    established,
    repliesDropped,
    createSent: engine.events.createSent,
  }),
);
sock.close();
engine.close(Date.now());
