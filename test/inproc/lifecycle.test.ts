/**
 * Forward secrecy and key lifecycle in process (docs/PROTOCOL.md section 5c): a responder
 * whose peer never rekeys, a peer that ignores rekeys (hard limit), a seized-memory check
 * that no key either engine still holds opens an epoch-0 packet after the documented
 * window, the reply key's lifetime, and a rekey and a move that cross.
 */
import { describe, expect, it } from "vitest";
import { aeadOpen } from "../../src/crypto/sodium.js";
import { DATA_AD_BYTES, PacketType } from "../../src/wire/packet.js";
import {
  AEAD_TAG_BYTES,
  OLD_EPOCH_GRACE_MS,
  RESPONDER_REKEY_DELAY_MS,
  TICK_MS,
  rejectAfterMs,
} from "../../src/tunnel/constants.js";
import { moveKeys } from "../../src/tunnel/keys.js";
import type { Engine } from "../../src/tunnel/engine.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";
import { ipv4, makeCa, SimNet, type SimHost } from "./harness.js";

const REKEY_MS = 120_000;
const NEVER_MS = 86_400_000;

/** a (initiator) and b (responder), one established tunnel; rekey schedules per host. */
function pair(aRekeyMs: number, bRekeyMs: number) {
  const net = new SimNet();
  const ca = makeCa();
  const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null, {
    rekeyAfterMs: aRekeyMs,
    idleTimeoutMs: 600_000,
  });
  const b = net.addHost(ca, "b", "198.51.100.2", 7000, "10.77.0.2", null, {
    rekeyAfterMs: bRekeyMs,
    idleTimeoutMs: 600_000,
  });
  a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
  net.run();
  a.send(ipv4("10.77.0.1", "10.77.0.2", "hello"));
  net.run();
  b.send(ipv4("10.77.0.2", "10.77.0.1", "back"));
  net.run();
  a.take();
  b.take();
  const ta = tunnelOf(a);
  const tb = tunnelOf(b);
  expect(ta.state).toBe("established");
  expect(tb.state).toBe("established");
  return { net, a, b, ta, tb };
}

const tunnelOf = (h: SimHost): Tunnel => [...h.engine.peers.values()][0]!.sendTunnel()!;

/** Busy traffic both ways for `ms`: one packet each way per second. */
function busy(net: SimNet, a: SimHost, b: SimHost, ms: number): { sent: number; got: number } {
  let sent = 0;
  let got = 0;
  for (let t = 0; t < ms; t += 1000) {
    a.send(ipv4("10.77.0.1", "10.77.0.2", `a${t}`));
    b.send(ipv4("10.77.0.2", "10.77.0.1", `b${t}`));
    sent += 2;
    net.run();
    net.advance(1000, TICK_MS);
    got += a.take().length + b.take().length;
  }
  return { sent, got };
}

/** Every distinct ArrayBuffer reachable from `root` through object properties (bounded walk). */
function reachableMemory(roots: object[]): ArrayBufferLike[] {
  const seen = new Set<unknown>();
  const out = new Set<ArrayBufferLike>();
  const stack: unknown[] = [...roots];
  let visited = 0;
  while (stack.length > 0 && visited < 500_000) {
    const v = stack.pop();
    if (v === null || typeof v !== "object" || seen.has(v)) continue;
    seen.add(v);
    visited++;
    if (ArrayBuffer.isView(v)) {
      out.add(v.buffer);
      continue;
    }
    if (v instanceof ArrayBuffer) {
      out.add(v);
      continue;
    }
    if (v instanceof Map) {
      for (const [k, x] of v) stack.push(k, x);
      continue;
    }
    if (v instanceof Set) {
      for (const x of v) stack.push(x);
      continue;
    }
    for (const k of Object.getOwnPropertyNames(v)) {
      let x: unknown;
      try {
        x = (v as Record<string, unknown>)[k];
      } catch {
        continue;
      }
      if (typeof x === "object") stack.push(x);
    }
  }
  return [...out];
}

/**
 * Try to open a captured DATA packet with every 32-byte window of every memory region
 * the engines reference, used as an AEAD key and as a chain key (its i2r / r2i keys).
 * Returns how many candidates opened it.
 */
function openWithSeizedMemory(pkt: Buffer, engines: Engine[]): { opened: number; windows: number } {
  const nonce = Buffer.alloc(12);
  pkt.copy(nonce, 4, 8, 16);
  const ad = pkt.subarray(0, DATA_AD_BYTES);
  const ct = pkt.subarray(DATA_AD_BYTES);
  const out = Buffer.alloc(ct.length - AEAD_TAG_BYTES);
  const tryKey = (k: Buffer) => aeadOpen(out, ct, ad, nonce, k);
  let opened = 0;
  let windows = 0;
  for (const ab of reachableMemory(engines)) {
    const mem = Buffer.from(ab as ArrayBuffer);
    for (let i = 0; i + 32 <= mem.length; i++) {
      const w = mem.subarray(i, i + 32);
      if (w.every((x) => x === 0)) continue;
      windows++;
      if (tryKey(w)) opened++;
      const k = moveKeys(w); // H(ck; "i2r"), H(ck; "r2i"): the keys a chain key yields
      if (tryKey(k.i2r) || tryKey(k.r2i)) opened++;
    }
  }
  return { opened, windows };
}

describe("forward secrecy: either end rekeys, hard limits", () => {
  it("a responder whose peer never rekeys starts the rekey itself; traffic keeps flowing", () => {
    const { net, a, b, ta, tb } = pair(NEVER_MS, REKEY_MS);
    const r = busy(net, a, b, REKEY_MS + RESPONDER_REKEY_DELAY_MS + 5_000);
    expect(b.engine.events.responderRekeys).toBeGreaterThanOrEqual(1);
    expect(tb.cur!.number).toBeGreaterThan(0);
    expect(ta.cur!.tid).toBe(tb.cur!.tid);
    expect(r.got).toBe(r.sent);
    expect(b.engine.events.tunnelsKeyExpired).toBe(0);
  });

  it("a peer that ignores rekeys: the responder refuses the epoch at the hard limit and closes", () => {
    const { net, a, b, tb } = pair(NEVER_MS, REKEY_MS);
    // a's engine drops every REKEY (an old or broken peer)
    (a.engine as unknown as { onRekey: () => void }).onRekey = () => undefined;
    const hard = rejectAfterMs(REKEY_MS);
    busy(net, a, b, hard - 2_000);
    expect(tb.state).toBe("established"); // rekeys were asked for (b's own limit) but never answered
    expect(tb.rekey).not.toBeNull();
    expect(b.engine.events.tunnelsKeyExpired).toBe(0);
    busy(net, a, b, 3_000);
    expect(b.engine.events.tunnelsKeyExpired).toBe(1);
    expect(tb.state).toBe("closed");
    expect(tb.cur).toBeNull(); // its keys erased
  });

  it("seized memory: after the documented window no key held opens a captured epoch-0 packet", () => {
    // a's own schedule never rekeys: only b's responder rekey (120 + 15 s) renews the keys
    const { net, a, b, ta } = pair(NEVER_MS, REKEY_MS);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "captured in epoch 0"));
    const pkt = net.queue.find((d) => d.data[8] === PacketType.Data)!.data;
    expect(ta.cur!.number).toBe(0);
    net.run();
    // the control: right now the engines hold epoch 0 and it opens
    const before = openWithSeizedMemory(pkt, [a.engine, b.engine]);
    expect(before.opened).toBeGreaterThan(0);
    // documented window (PROTOCOL.md 5c): responder limit + grace + ticks
    const windowMs = REKEY_MS + RESPONDER_REKEY_DELAY_MS + OLD_EPOCH_GRACE_MS + 2_000;
    busy(net, a, b, windowMs);
    const after = openWithSeizedMemory(pkt, [a.engine, b.engine]);
    expect(after.windows).toBeGreaterThan(1000);
    expect(after.opened).toBe(0);
  }, 60_000);

  it("the responder's reply key is zeroed after REPLY_KEY_LIFETIME_MS without another tunnel", () => {
    const { net, b } = pair(REKEY_MS, REKEY_MS);
    const reply = (b.engine as unknown as { reply: { kp: { secretKey: Buffer } } | null }).reply;
    expect(reply).not.toBeNull();
    const sk = reply!.kp.secretKey;
    net.advance(1_500, TICK_MS);
    expect(sk.every((x) => x === 0)).toBe(true);
    expect((b.engine as unknown as { reply: unknown }).reply).toBeNull();
  });
});

describe("a rekey and a move that cross", () => {
  it("the responder moves after answering the initiator's REKEY: both end on the move epoch", () => {
    const { net, a, b, ta, tb } = pair(REKEY_MS, REKEY_MS);
    a.engine.startRekey(ta, net.now);
    // deliver the REKEY to b only (b answers with REKEY_ACK, which stays queued)
    const rekey = net.queue.shift()!;
    net.queue.push(rekey);
    net.run(1);
    expect(tb.next).not.toBeNull();
    // b moves before a has the ACK: b switches to the move epoch of epoch 0 and sends from there
    net.moveHost(b, "198.51.100.77", 7000);
    expect(b.engine.migrate(net.now)).toBe(1);
    net.run(); // a gets the ACK (rekeys to epoch 1), then b's packet under the move epoch
    a.send(ipv4("10.77.0.1", "10.77.0.2", "after"));
    b.send(ipv4("10.77.0.2", "10.77.0.1", "after too"));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["after"]);
    expect(a.take().map((p) => p.subarray(20).toString())).toEqual(["after too"]);
    expect(ta.cur!.tid).toBe(tb.cur!.tid);
    expect(a.engine.events.rekeyMoveCrossed).toBe(1);
    // and the tunnel stays healthy: a later rekey works
    const r = busy(net, a, b, REKEY_MS + 5_000);
    expect(r.got).toBe(r.sent);
    expect(ta.cur!.tid).toBe(tb.cur!.tid);
  });

  it("the initiator moves while its REKEY is in flight: both end on the move epoch", () => {
    const { net, a, b, ta, tb } = pair(REKEY_MS, REKEY_MS);
    a.engine.startRekey(ta, net.now);
    net.moveHost(a, "203.0.113.9", 40000);
    expect(a.engine.migrate(net.now)).toBe(1);
    net.run();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    b.send(ipv4("10.77.0.2", "10.77.0.1", "y"));
    net.run();
    expect(b.take()).toHaveLength(1);
    expect(a.take()).toHaveLength(1);
    expect(ta.cur!.tid).toBe(tb.cur!.tid);
  });

  it("crossing REKEYs of both ends: the initiator's wins", () => {
    const { net, a, b, ta, tb } = pair(REKEY_MS, REKEY_MS);
    a.engine.startRekey(ta, net.now);
    b.engine.startRekey(tb, net.now);
    net.run();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    b.send(ipv4("10.77.0.2", "10.77.0.1", "y"));
    net.run();
    expect(b.take()).toHaveLength(1);
    expect(a.take()).toHaveLength(1);
    expect(ta.cur!.number).toBe(1);
    expect(ta.cur!.tid).toBe(tb.cur!.tid);
    expect(tb.rekey).toBeNull();
  });
});
