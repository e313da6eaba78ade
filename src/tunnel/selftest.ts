/**
 * Start-up self-test: two throwaway engines with throwaway keys create a
 * tunnel to each other in memory, exchange one packet each way and rekey.
 * It proves the crypto library and the protocol agree with themselves before
 * the daemon takes traffic, and it runs every creation code path once, so the
 * first real packet does not pay for V8's first compilation of them
 * (measured: first ping on a fresh tunnel ~6 ms slower without it).
 */
import { signKeyPair, zero } from "../crypto/sodium.js";
import { type CaCert, type HostCert, signCert } from "../wire/cert.js";
import { ADDR_BYTES, tryEncodeAddr } from "../wire/addr.js";
import { Engine, type Output } from "./engine.js";
import { onDatagram } from "./outside.js";

interface Dgram {
  to: Engine;
  from: Buffer;
  data: Buffer;
}

export function selfTest(now: number): { ok: boolean; why?: string } {
  const nowSec = Math.floor(now / 1000);
  const caKp = signKeyPair();
  const ca = signCert(
    {
      kind: "ca",
      name: "selftest",
      publicKey: caKp.publicKey,
      groups: [],
      notBefore: nowSec - 60,
      notAfter: nowSec + 600,
      issuer: caKp.publicKey,
    },
    caKp.secretKey,
  ) as CaCert;
  const queue: Dgram[] = [];
  const delivered: Buffer[] = [];
  const engines: Engine[] = [];
  const addrs = [tryEncodeAddr("192.0.2.1", 1)!, tryEncodeAddr("192.0.2.2", 1)!];
  for (let i = 0; i < 2; i++) {
    const kp = signKeyPair();
    const cert = signCert(
      {
        kind: "host",
        name: `selftest${i}`,
        publicKey: kp.publicKey,
        groups: [],
        notBefore: nowSec - 60,
        notAfter: nowSec + 600,
        issuer: caKp.publicKey,
        ip4: `192.0.2.${10 + i}`,
        ip6: null,
        subnets: [],
      },
      caKp.secretKey,
    ) as HostCert;
    const me = i;
    const out: Output = {
      sendUdp(buf, off, len, addr, addrOff) {
        const to = addr.subarray(addrOff, addrOff + ADDR_BYTES).equals(addrs[0]!) ? 0 : 1;
        queue.push({ to: engines[to]!, from: addrs[me]!, data: Buffer.from(buf.subarray(off, off + len)) });
      },
      writeTun(buf, off, len) {
        delivered.push(Buffer.from(buf.subarray(off, off + len)));
      },
      flush() {},
    };
    engines.push(
      new Engine(
        {
          ca,
          hostCert: cert,
          hostSecretKey: kp.secretKey,
          ephemeralLifetimeMs: 60_000,
          minFirstPacket: 256,
          rekeyAfterMs: 1000,
          keepaliveMs: 0,
          idleTimeoutMs: 60_000,
          maxTunnels: 4,
          endpoints: () => [],
        },
        out,
        now,
      ),
    );
  }
  const run = () => {
    for (let n = 0; queue.length > 0 && n < 100; n++) {
      const d = queue.shift()!;
      onDatagram(d.to, d.data, 0, d.data.length, d.from, 0, now);
    }
  };
  const send = (e: Engine, src: string, dst: string) => {
    const slab = Buffer.alloc(256);
    const p = slab.subarray(64, 64 + 28);
    p[0] = 0x45;
    p.writeUInt16BE(28, 2);
    p[9] = 17;
    src.split(".").forEach((x, i) => (p[12 + i] = Number(x)));
    dst.split(".").forEach((x, i) => (p[16 + i] = Number(x)));
    e.handleTunBatch({ buf: slab, slotSize: 256, headroom: 64, lens: Uint32Array.of(28), count: 1 }, now);
  };
  const [a, b] = engines as [Engine, Engine];
  a.addPeer({ name: "selftest1", endpoint: addrs[1]! }, now);
  run();
  send(a, "192.0.2.10", "192.0.2.11");
  run();
  send(b, "192.0.2.11", "192.0.2.10");
  run();
  now += 2000;
  a.tick(now);
  run();
  send(a, "192.0.2.10", "192.0.2.11");
  run();
  const rekeyed = a.events.rekeys === 1;
  for (const e of engines) e.close(now);
  zero(caKp.secretKey);
  if (delivered.length !== 3) return { ok: false, why: `delivered ${delivered.length} of 3 packets` };
  if (!rekeyed) return { ok: false, why: "rekey did not complete" };
  return { ok: true };
}
