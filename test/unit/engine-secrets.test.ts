/**
 * Secrets have one owner (issue 12): the engine keeps its own copy of the host
 * secret key, so a caller that zeroes the buffer it passed (as the daemon does
 * right after start-up) cannot break the engine's later ephemeral rotations.
 * Before the fix the first rotation (half the ephemeral lifetime after start)
 * threw "host secret key does not match hostKey" inside the timer.
 */
import { describe, expect, it } from "vitest";
import { zero } from "../../src/crypto/sodium.js";
import { Engine, type Output } from "../../src/tunnel/engine.js";
import { makeCa, makeHostCert } from "../inproc/harness.js";

const nullOut: Output = { sendUdp() {}, writeTun() {}, flush() {} };

describe("engine secret ownership", () => {
  it("rotates ephemeral keys many times after the caller zeroed its key buffer", () => {
    const t0 = Date.now();
    const ca = makeCa();
    const h = makeHostCert(ca, "a", "10.77.0.1", null, { notAfter: Math.floor(t0 / 1000) + 86400 });
    const lifetimeMs = 4000;
    const e = new Engine(
      {
        ca: ca.cert,
        hostCert: h.cert,
        hostSecretKey: h.sk,
        ephemeralLifetimeMs: lifetimeMs,
        minFirstPacket: 0,
        rekeyAfterMs: 120_000,
        keepaliveMs: 10_000,
        idleTimeoutMs: 180_000,
        maxTunnels: 100,
        endpoints: () => [],
      },
      nullOut,
      t0,
    );
    zero(h.sk); // the daemon zeroes its buffer right after construction
    const before = e.events.ephemeralRotations;
    // 20 lifetimes in 250 ms ticks: a rotation every half lifetime
    for (let t = t0; t <= t0 + 20 * lifetimeMs; t += 250) e.tick(t);
    expect(e.events.ephemeralRotations - before).toBeGreaterThanOrEqual(30);
    // the current key verifies: its certificate was signed with the real key
    expect(e.eph.current!.cert.hostKey.equals(h.cert.publicKey)).toBe(true);
    e.close(t0 + 20 * lifetimeMs);
  });

  it("zeroes its own copy on close, not the caller's buffer", () => {
    const ca = makeCa();
    const h = makeHostCert(ca, "a", "10.77.0.1", null);
    const copy = Buffer.from(h.sk);
    const e = new Engine(
      {
        ca: ca.cert,
        hostCert: h.cert,
        hostSecretKey: h.sk,
        ephemeralLifetimeMs: 300_000,
        minFirstPacket: 0,
        rekeyAfterMs: 120_000,
        keepaliveMs: 10_000,
        idleTimeoutMs: 180_000,
        maxTunnels: 100,
        endpoints: () => [],
      },
      nullOut,
      Date.now(),
    );
    expect(e.opts.hostSecretKey).not.toBe(h.sk);
    e.close(Date.now());
    expect(h.sk.equals(copy)).toBe(true);
    expect(e.opts.hostSecretKey.every((b) => b === 0)).toBe(true);
  });
});
