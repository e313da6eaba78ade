/**
 * Key schedule (src/tunnel/keys.ts) and key erasure (src/tunnel/tunnel.ts,
 * src/tunnel/ephemeral.ts, engine close paths).
 */
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import "../property/seed.js";
import { dh, dhKeyPair, edPkToX, edSkToX, hash, randomBytes, signKeyPair } from "../../src/crypto/sodium.js";
import {
  createTranscript,
  deriveCreate,
  deriveEstablished,
  deriveRekey,
  helloAuth,
} from "../../src/tunnel/keys.js";
import { Epoch, Peer, Tunnel } from "../../src/tunnel/tunnel.js";
import { EphemeralKeys } from "../../src/tunnel/ephemeral.js";
import { ReplayWindow } from "../../src/tunnel/replay.js";
import { ipv4, SimNet, makeCa } from "../inproc/harness.js";

const isZero = (b: Buffer) => b.length > 0 && b.every((x) => x === 0);

/** Run both halves of the creation key schedule as the two hosts would. */
function handshake(opts: { tid?: Buffer; keyId?: number } = {}) {
  const tid = opts.tid ?? randomBytes(8);
  const keyId = opts.keyId ?? 42;
  const hostI = signKeyPair();
  const hostR = signKeyPair();
  const sI = edSkToX(hostI.secretKey);
  const eR = dhKeyPair();
  const tI = dhKeyPair();
  const tR = dhKeyPair();

  // initiator
  const h0i = createTranscript(tid, keyId, tI.publicKey, eR.publicKey, hostR.publicKey);
  const ci = deriveCreate(h0i, dh(tI.secretKey, eR.publicKey)!);
  const ssI = dh(sI, eR.publicKey)!;
  const authI = helloAuth(ci.ck1, ssI, tI.publicKey);

  // responder
  const h0r = createTranscript(tid, keyId, tI.publicKey, eR.publicKey, hostR.publicKey);
  const cr = deriveCreate(h0r, dh(eR.secretKey, tI.publicKey)!);
  const ssR = dh(eR.secretKey, edPkToX(hostI.publicKey)!)!;
  const authR = helloAuth(cr.ck1, ssR, tI.publicKey);
  const kr = deriveEstablished(cr.ck1, ssR, dh(tR.secretKey, tI.publicKey)!);
  const ki = deriveEstablished(ci.ck1, ssI, dh(tI.secretKey, tR.publicKey)!);
  return { tid, keyId, h0i, h0r, ci, cr, authI, authR, ki, kr, tI, eR, hostR };
}

describe("key schedule", () => {
  it("both sides derive the same transcript, k0, auth and epoch-0 keys", () => {
    const h = handshake();
    expect(h.h0i).toEqual(h.h0r);
    expect(h.ci.ck1).toEqual(h.cr.ck1);
    expect(h.ci.k0).toEqual(h.cr.k0);
    expect(h.authI).toEqual(h.authR);
    expect(h.ki).toEqual(h.kr);
    for (const b of [h.h0i, h.ci.ck1, h.ci.k0, h.authI, h.ki.ck, h.ki.i2r, h.ki.r2i]) {
      expect(b.length).toBe(32);
      expect(isZero(b)).toBe(false);
    }
  });

  it("i2r != r2i != ck != k0 (every label gives its own key)", () => {
    const h = handshake();
    const all = [h.ci.ck1, h.ci.k0, h.authI, h.ki.ck, h.ki.i2r, h.ki.r2i].map((b) => b.toString("hex"));
    expect(new Set(all).size).toBe(all.length);
  });

  it("matches an independent computation of the documented formulas (docs/PROTOCOL.md section 4)", () => {
    const tid = Buffer.from("0102030405060708", "hex");
    const tI = Buffer.alloc(32, 1);
    const eR = Buffer.alloc(32, 2);
    const sR = Buffer.alloc(32, 3);
    const es = Buffer.alloc(32, 4);
    const ss = Buffer.alloc(32, 5);
    const ee = Buffer.alloc(32, 6);
    const h0 = createTranscript(tid, 0x01020304, tI, eR, sR);
    expect(h0).toEqual(hash([Buffer.from("mintun/1 create"), tid, Buffer.from([1, 2, 3, 4]), tI, eR, sR]));
    const { ck1, k0 } = deriveCreate(h0, es);
    expect(ck1).toEqual(hash([es], h0));
    expect(k0).toEqual(hash([Buffer.from("i2r 0")], ck1));
    expect(helloAuth(ck1, ss, tI)).toEqual(hash([Buffer.from("hello"), tI], hash([ss], ck1)));
    const k = deriveEstablished(ck1, ss, ee);
    const ck2 = hash([ss, ee], ck1);
    expect(k).toEqual({
      ck: ck2,
      i2r: hash([Buffer.from("i2r")], ck2),
      r2i: hash([Buffer.from("r2i")], ck2),
    });
    const d = Buffer.alloc(32, 7);
    const r = deriveRekey(ck2, d);
    const ck3 = hash([Buffer.from("rekey"), d], ck2);
    expect(r.ck).toEqual(ck3);
    expect(r.i2r).toEqual(hash([Buffer.from("i2r")], ck3));
    expect(r.r2i).toEqual(hash([Buffer.from("r2i")], ck3));
    expect(r.tid).toEqual(hash([Buffer.from("tid")], ck3, 16).subarray(0, 8));
  });

  it("a different TID, keyId, creator key, ephemeral key or responder host key gives a different transcript and k0", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 255 }),
        (tidA, keyId, which, bit) => {
          const parts = [Buffer.from(tidA), Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.alloc(32, 3)];
          const base = createTranscript(parts[0]!, keyId, parts[1]!, parts[2]!, parts[3]!);
          let other: Buffer;
          if (which === 4)
            other = createTranscript(
              parts[0]!,
              (keyId ^ (1 << (bit % 32))) >>> 0,
              parts[1]!,
              parts[2]!,
              parts[3]!,
            );
          else {
            const q = parts.map((p) => Buffer.from(p));
            q[which]![(bit >> 3) % q[which]!.length]! ^= 1 << (bit & 7);
            other = createTranscript(q[0]!, keyId, q[1]!, q[2]!, q[3]!);
          }
          expect(other.equals(base)).toBe(false);
          const es = Buffer.alloc(32, 9);
          expect(deriveCreate(other, es).k0.equals(deriveCreate(base, es).k0)).toBe(false);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("independent handshakes never share keys", () => {
    const a = handshake();
    const b = handshake({ tid: a.tid, keyId: a.keyId });
    expect(a.ki.i2r.equals(b.ki.i2r)).toBe(false);
    expect(a.ki.r2i.equals(b.ki.r2i)).toBe(false);
    expect(a.ci.k0.equals(b.ci.k0)).toBe(false);
  });

  it("changing ss or ee changes every established key", () => {
    const ck1 = randomBytes(32);
    const ss = randomBytes(32);
    const ee = randomBytes(32);
    const base = deriveEstablished(ck1, ss, ee);
    const ss2 = Buffer.from(ss);
    ss2[0]! ^= 1;
    const ee2 = Buffer.from(ee);
    ee2[31]! ^= 0x80;
    for (const k of [deriveEstablished(ck1, ss2, ee), deriveEstablished(ck1, ss, ee2)]) {
      expect(k.ck.equals(base.ck)).toBe(false);
      expect(k.i2r.equals(base.i2r)).toBe(false);
      expect(k.r2i.equals(base.r2i)).toBe(false);
    }
  });

  it("rekey: both sides agree, the new TID is 8 bytes, and it differs per chain key and DH output", () => {
    const h = handshake();
    const a2 = dhKeyPair();
    const b2 = dhKeyPair();
    const ri = deriveRekey(h.ki.ck, dh(a2.secretKey, b2.publicKey)!);
    const rr = deriveRekey(h.kr.ck, dh(b2.secretKey, a2.publicKey)!);
    expect(ri).toEqual(rr);
    expect(ri.tid.length).toBe(8);
    expect(ri.ck.equals(h.ki.ck)).toBe(false);
    expect(ri.i2r.equals(h.ki.i2r)).toBe(false);
    expect(ri.i2r.equals(ri.r2i)).toBe(false);
    expect(ri.tid.equals(h.tid)).toBe(false);

    const tids = new Set<string>();
    const ck = randomBytes(32);
    for (let i = 0; i < 64; i++) {
      const d = Buffer.alloc(32);
      d.writeUInt32BE(i);
      tids.add(deriveRekey(ck, d).tid.toString("hex"));
      tids.add(
        deriveRekey(
          Buffer.concat([ck.subarray(0, 31), Buffer.from([i])]),
          Buffer.alloc(32, 0xff),
        ).tid.toString("hex"),
      );
    }
    expect(tids.size).toBe(128);
    // two successive rekeys from the same chain give different epochs
    const r2 = deriveRekey(ri.ck, dh(a2.secretKey, b2.publicKey)!);
    expect(r2.tid.equals(ri.tid)).toBe(false);
    expect(r2.i2r.equals(ri.i2r)).toBe(false);
  });
});

describe("key erasure", () => {
  function epoch(n: number) {
    return new Epoch(randomBytes(8), randomBytes(32), randomBytes(32), randomBytes(32), 0, n);
  }

  it("Epoch.erase zeroes send key, receive key and chain key", () => {
    const e = epoch(0);
    const held = [e.sendKey, e.recvKey, e.ck];
    e.erase();
    for (const b of held) expect(isZero(b)).toBe(true);
    // the TID is not a secret and stays usable as a table key
    expect(e.tid.length).toBe(8);
  });

  it("Tunnel.eraseAll zeroes creation, acceptance, every epoch and a pending rekey, idempotently", () => {
    const peer = new Peer("p", null, false);
    const t = new Tunnel("initiator", "\x01".repeat(8), peer, Buffer.alloc(20), 0);
    const tI = dhKeyPair();
    t.create = {
      keyId: 1,
      tI,
      ck1: randomBytes(32),
      k0: randomBytes(32),
      ss: randomBytes(32),
      hello: randomBytes(10),
      counter: 0,
      minSize: 256,
      queue: [{ pkt: Buffer.from("queued inner packet"), sent: Buffer.alloc(0) }],
      staleRetried: false,
      keyNotBefore: 0,
      solving: null,
      suite: 1,
    };
    t.accept = { k0: randomBytes(32), replay: new ReplayWindow(), tR: randomBytes(32) };
    t.cur = epoch(2);
    t.prev = epoch(1);
    t.next = epoch(3);
    const rk = dhKeyPair();
    t.rekey = { seq: 1, kp: rk, sentAt: 0, firstSentAt: 0 };
    const c = t.create;
    const secrets = [
      tI.secretKey,
      c.ck1,
      c.k0,
      c.ss,
      t.accept.k0,
      ...[t.cur, t.prev, t.next].flatMap((e) => [e.sendKey, e.recvKey, e.ck]),
      rk.secretKey,
    ];
    for (const s of secrets) expect(isZero(s)).toBe(false);
    t.eraseAll();
    secrets.forEach((s, i) => expect(isZero(s), `secret #${i}`).toBe(true));
    expect(c.queue).toHaveLength(0);
    expect(t.create).toBeNull();
    expect(t.accept).toBeNull();
    expect(t.rekey).toBeNull();
    expect([t.cur, t.prev, t.next]).toEqual([null, null, null]);
    expect(t.state).toBe("closed");
    expect(() => t.eraseAll()).not.toThrow();
  });

  it("eraseCreate / eraseAccept zero only their own secrets", () => {
    const t = new Tunnel("responder", "\x02".repeat(8), new Peer("p", null, false), Buffer.alloc(20), 0);
    t.accept = { k0: randomBytes(32), replay: new ReplayWindow(), tR: randomBytes(32) };
    t.cur = epoch(0);
    const k0 = t.accept.k0;
    t.eraseAccept();
    expect(isZero(k0)).toBe(true);
    expect(isZero(t.cur.sendKey)).toBe(false);
    expect(t.state).toBe("replying");
  });

  it("EphemeralKeys: a key's secret is zeroed once the clock passes its notAfter, not before", () => {
    const host = signKeyPair();
    const lifetimeMs = 300_000;
    const eph = new EphemeralKeys({
      hostPublicKey: host.publicKey,
      hostSecretKey: host.secretKey,
      lifetimeMs,
      minFirstPacket: 256,
      endpoints: () => [{ ip: "192.0.2.1", port: 7000 }],
      maxReplayRecords: 10,
      maxReplayPerHost: 10,
    });
    const t0 = 1_700_000_000_000;
    const k1 = eph.rotate(t0);
    const s1 = k1.secretKey;
    const s1copy = Buffer.from(s1);
    const creator = Buffer.alloc(32, 9);
    expect(eph.remember(k1, Buffer.alloc(32, 1), creator)).toBe("ok");
    expect(eph.remember(k1, Buffer.alloc(32, 1), creator)).toBe("replay");
    // half a lifetime: a second key is made, the first is still live and intact
    expect(eph.tick(t0 + lifetimeMs / 2)).toBe(true);
    const k2 = eph.current!;
    expect(k2.keyId).not.toBe(k1.keyId);
    expect(eph.get(k1.keyId, t0 + lifetimeMs / 2)).toBe(k1);
    expect(s1).toEqual(s1copy);
    eph.tick(k1.notAfter - 1);
    expect(s1).toEqual(s1copy);
    // at notAfter it is gone and zeroed, with its replay record
    eph.tick(k1.notAfter);
    expect(isZero(s1)).toBe(true);
    expect(k1.seen.size).toBe(0);
    expect(k1.seenPerHost.size).toBe(0);
    expect(eph.get(k1.keyId, k1.notAfter)).toBeUndefined();
    expect(eph.list()).not.toContain(k1);
    expect(isZero(k2.secretKey)).toBe(false);
    // close erases the rest
    const live = eph.list().map((k) => k.secretKey);
    eph.close();
    for (const s of live) expect(isZero(s)).toBe(true);
    expect(eph.list()).toHaveLength(0);
  });

  it("EphemeralKeys.remember is bounded and the engine-facing tick rotates early when full", () => {
    const host = signKeyPair();
    const eph = new EphemeralKeys({
      hostPublicKey: host.publicKey,
      hostSecretKey: host.secretKey,
      lifetimeMs: 300_000,
      minFirstPacket: 256,
      endpoints: () => [],
      maxReplayRecords: 2,
      maxReplayPerHost: 2,
    });
    const k = eph.rotate(1_700_000_000_000);
    const creator = Buffer.alloc(32, 9);
    expect(eph.remember(k, Buffer.alloc(32, 1), creator)).toBe("ok");
    expect(eph.remember(k, Buffer.alloc(32, 2), creator)).toBe("ok");
    expect(eph.remember(k, Buffer.alloc(32, 3), creator)).toBe("full");
    expect(eph.isReplay(k, Buffer.alloc(32, 3))).toBe(false);
    expect(eph.tick(1_700_000_000_001)).toBe(true);
    expect(eph.current).not.toBe(k);
  });

  it("EphemeralKeys.remember: each creator host has a share of the record; past it only that host is refused", () => {
    const host = signKeyPair();
    const eph = new EphemeralKeys({
      hostPublicKey: host.publicKey,
      hostSecretKey: host.secretKey,
      lifetimeMs: 300_000,
      minFirstPacket: 256,
      endpoints: () => [],
      maxReplayRecords: 10,
      maxReplayPerHost: 3,
    });
    const k = eph.rotate(1_700_000_000_000);
    const x = Buffer.alloc(32, 0xee);
    const c = Buffer.alloc(32, 0xcc);
    for (let i = 1; i <= 3; i++) expect(eph.remember(k, Buffer.alloc(32, i), x)).toBe("ok");
    expect(eph.remember(k, Buffer.alloc(32, 4), x)).toBe("hostFull");
    // a replay is still a replay, and a refused key is not recorded
    expect(eph.remember(k, Buffer.alloc(32, 1), x)).toBe("replay");
    expect(eph.isReplay(k, Buffer.alloc(32, 4))).toBe(false);
    expect(eph.remember(k, Buffer.alloc(32, 5), c)).toBe("ok");
    expect(k.seen.size).toBe(4);
    // the record is not full: no early rotation
    expect(eph.tick(1_700_000_000_001)).toBe(false);
  });

  it("engine: closing a tunnel zeroes its keys; engine.close zeroes ephemeral and host X25519 secrets", () => {
    const net = new SimNet();
    const ca = makeCa();
    const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    net.run();
    const ta = a.engine.peers.values().next().value!.sendTunnel()!;
    const tb = b.engine.peers.values().next().value!.sendTunnel()!;
    expect(ta.state).toBe("established");
    expect(tb.state).toBe("established");
    const ka = [ta.cur!.sendKey, ta.cur!.recvKey, ta.cur!.ck];
    const kb = [tb.cur!.sendKey, tb.cur!.recvKey, tb.cur!.ck];
    for (const k of [...ka, ...kb]) expect(isZero(k)).toBe(false);
    a.engine.closeTunnel(ta, net.now, "test");
    for (const k of ka) expect(isZero(k)).toBe(true);
    expect(a.engine.tids.size).toBe(0);
    expect(a.engine.tunnelCount).toBe(0);
    const eph = b.engine.eph.list().map((k) => k.secretKey);
    const hostX = b.engine.hostX;
    b.engine.close(net.now);
    for (const k of [...kb, ...eph, hostX]) expect(isZero(k)).toBe(true);
    expect(b.engine.tunnelCount).toBe(0);
  });
});
