/**
 * The daemon's ConnIdentity: OS identity mapper + user store -> who a new
 * outbound flow runs as (host, a user, or refused here).
 */
import { describe, expect, it } from "vitest";
import { FlowScratch, parseFlow } from "../../src/conn/conns.js";
import { FakeIdentityLookup } from "../fakes/identity.js";
import type { UserIdentity, UserStore } from "../../src/store/users.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { DaemonIdentity } from "../../src/daemon/identity.js";
import { nullLogger } from "../../src/log.js";
import { signCert, type UserCert } from "../../src/wire/cert.js";
import { ipv4 } from "../inproc/harness.js";

const nowSec = Math.floor(Date.now() / 1000);
function entry(uid: number, name: string, notAfter = nowSec + 3600): UserIdentity {
  const ca = signKeyPair();
  const kp = signKeyPair();
  const cert = signCert(
    {
      kind: "user",
      name,
      publicKey: kp.publicKey,
      groups: [],
      notBefore: nowSec - 60,
      notAfter,
      issuer: ca.publicKey,
    },
    ca.secretKey,
  ) as UserCert;
  return { uid, osUser: name, cert, secretKey: kp.secretKey, file: `/x/${uid}.user` };
}
const store = (list: UserIdentity[]) => ({ list: () => list }) as unknown as UserStore;

function flow(proto: number, sport: number): { f: FlowScratch; buf: Buffer } {
  const p = Buffer.alloc(8);
  p.writeUInt16BE(sport, 0);
  p.writeUInt16BE(80, 2);
  const buf = ipv4("10.1.0.1", "10.1.0.2", p, proto);
  const f = new FlowScratch();
  expect(parseFlow(buf, 0, buf.length, f)).toBe(true);
  return { f, buf };
}

describe("DaemonIdentity", () => {
  const socks = new FakeIdentityLookup();
  socks.addSocket({
    proto: 6,
    family: 4,
    local: "10.1.0.1",
    lport: 1000,
    remote: "10.1.0.2",
    rport: 80,
    uid: 1000,
  });
  socks.addSocket({
    proto: 6,
    family: 4,
    local: "10.1.0.1",
    lport: 1001,
    remote: "10.1.0.2",
    rport: 80,
    uid: 0,
  });
  socks.addSocket({ proto: 17, family: 4, local: "", lport: 1002, uid: 2000 });
  socks.addSocket({
    proto: 6,
    family: 4,
    local: "10.1.0.1",
    lport: 1003,
    remote: "10.1.0.2",
    rport: 80,
    uid: 3000,
  });

  it("maps a store user to its identity, root and unowned flows and ICMP to the host", () => {
    const d = new DaemonIdentity(socks, "host", nullLogger);
    d.setStore(store([entry(1000, "alice"), entry(3000, "old", nowSec - 1)]), "host", nowSec);
    const alice = d.identify(flow(6, 1000).f, flow(6, 1000).buf);
    expect(alice).not.toBeNull();
    expect(alice !== "deny" && alice!.cert.name).toBe("alice");
    expect(alice !== "deny" && alice!.x.length).toBe(32);
    const r = flow(6, 1001);
    expect(d.identify(r.f, r.buf)).toBeNull(); // root
    const u = flow(6, 4444);
    expect(d.identify(u.f, u.buf)).toBeNull(); // no socket
    const icmp = flow(1, 0);
    expect(d.identify(icmp.f, icmp.buf)).toBeNull();
    const unmapped = flow(17, 1002);
    expect(d.identify(unmapped.f, unmapped.buf)).toBeNull(); // uid 2000: no entry, unmapped=host
    const expired = flow(6, 1003);
    expect(d.identify(expired.f, expired.buf)).toBe("deny"); // an expired identity never falls back to host
    expect(d.stats.lookups).toBe(5);
  });

  it("unmapped: deny refuses OS users without an identity; a reload replaces the store and zeroes old keys", () => {
    const d = new DaemonIdentity(socks, "host", nullLogger);
    d.setStore(store([entry(1000, "alice")]), "deny", nowSec);
    const unmapped = flow(17, 1002);
    expect(d.identify(unmapped.f, unmapped.buf)).toBe("deny");
    const a = d.identify(flow(6, 1000).f, flow(6, 1000).buf);
    const x = a !== "deny" && a ? a.x : Buffer.alloc(0);
    d.setStore(store([]), "host", nowSec);
    expect(x.every((b) => b === 0)).toBe(true);
    expect(d.identify(flow(6, 1000).f, flow(6, 1000).buf)).toBeNull();
    expect(d.size).toBe(0);
  });
});
