/**
 * The directory in the in-process network: registration and lookup inside
 * tunnels, a first packet to a never-seen host carried after one lookup, and a
 * directory that serves forged or replayed records (wrong key, other CA,
 * expired, another host's name) being refused and counted.
 */
import { describe, expect, it } from "vitest";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { DirectoryClient, type LookupResult } from "../../src/directory/client.js";
import { DirectoryServer } from "../../src/directory/server.js";
import { MemoryStore } from "../../src/directory/store.js";
import { EPH_OFFSET_HOST_KEY, signCert, signEphemeral, type HostCert } from "../../src/wire/cert.js";
import { RevocationIndex, signRevocation } from "../../src/wire/revocation.js";
import {
  type DirResponse,
  type WireRecord,
  decodeDirRequest,
  encodeDirResponse,
} from "../../src/wire/directory.js";
import { FrameType } from "../../src/wire/frames.js";
import { type Ca, SimHost, SimNet, ipv4, makeCa, makeHostCert } from "./harness.js";
import { addrToString, tryEncodeAddr } from "../../src/wire/addr.js";

const flushAsync = () => new Promise<void>((r) => setImmediate(r));

interface World {
  net: SimNet;
  ca: Ca;
  dir: SimHost;
  server: DirectoryServer;
  clients: Map<SimHost, DirectoryClient>;
}

function world(): World {
  const net = new SimNet();
  const ca = makeCa();
  const dir = net.addHost(ca, "dir", "192.0.2.10", 7000, "10.77.0.100", null);
  const server = new DirectoryServer(dir.engine, { store: new MemoryStore(100), clock: () => net.now });
  dir.dirHooks.frame = (t, type, buf, off, len, now) => {
    if (type !== FrameType.DirRequest) return false;
    server.onRequest(t, buf, off, len, now);
    return true;
  };
  return { net, ca, dir, server, clients: new Map() };
}

function addClientHost(w: World, name: string, ip: string, ip4: string, dirs: SimHost[]): SimHost {
  const h = w.net.addHost(w.ca, name, ip, 7000, ip4, null);
  const c = new DirectoryClient(
    h.engine,
    { directories: dirs.map((d) => d.addr), ca: w.ca.cert, clock: () => w.net.now },
    w.net.now,
  );
  c.attach(h.dirHooks);
  h.dirHooks.frame = (t, type, buf, off, len, now) => {
    if (type !== FrameType.DirResponse) return false;
    c.onResponse(t, buf, off, len, now);
    return true;
  };
  w.clients.set(h, c);
  return h;
}

/** Advance the clock in ticks, delivering datagrams and letting async store answers through. */
async function step(w: World, ms: number, tick = 50): Promise<void> {
  const end = w.net.now + ms;
  while (w.net.now < end) {
    w.net.now = Math.min(end, w.net.now + tick);
    for (const h of w.net.hosts.values()) h.engine.tick(w.net.now);
    for (const c of w.clients.values()) c.tick(w.net.now);
    for (let i = 0; i < 5; i++) {
      w.net.run();
      await flushAsync();
    }
  }
}

describe("directory in-process", () => {
  it("hosts register, and a first packet to a never-seen host goes after one lookup", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    const b = addClientHost(w, "b", "192.0.2.2", "10.77.0.2", [w.dir]);
    await step(w, 1000);
    expect(w.server.store.size()).toBe(2);
    const ca = w.clients.get(a)!;
    expect(ca.state(w.net.now).directories[0]).toMatchObject({
      state: "up",
      registered: true,
      observed: "192.0.2.1:7000",
    });
    // a has never heard of b: the packet waits for the lookup, then creates the tunnel 0-RTT
    a.send(ipv4("10.77.0.1", "10.77.0.2", "hello b"));
    for (let i = 0; i < 5; i++) {
      w.net.run();
      await flushAsync();
    }
    const got = b.take();
    expect(got.some((p) => p.subarray(20).toString() === "hello b")).toBe(true);
    expect(w.clients.get(a)!.events.dirLookups).toBe(1);
    expect(a.engine.events.zeroRttPackets).toBeGreaterThanOrEqual(1);
    // lookups by name and by address, verified
    const pr = ca.resolve({ op: "name", name: "b" });
    for (let i = 0; i < 3; i++) {
      w.net.run();
      await flushAsync();
    }
    const r = await pr;
    expect(r.ok && r.record.ip4).toBe("10.77.0.2");
    // unknown address: not found, then cached negatively
    a.send(ipv4("10.77.0.1", "10.77.0.99", "nobody"));
    for (let i = 0; i < 3; i++) {
      w.net.run();
      await flushAsync();
    }
    // no host owns it (address query), no gateway's subnet holds it (subnet query)
    expect(w.clients.get(a)!.events.dirNotFound).toBe(2);
    const lookups = w.clients.get(a)!.events.dirLookups;
    a.send(ipv4("10.77.0.1", "10.77.0.99", "nobody"));
    expect(w.clients.get(a)!.events.dirLookups).toBe(lookups); // the second packet cost no lookup
  });

  it("a config reload (setPeers) keeps the directory and its tunnel", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    await step(w, 1000);
    const r = a.engine.setPeers([], w.net.now);
    expect(r.removed).toEqual([]);
    expect(w.clients.get(a)!.state(w.net.now).directories[0]).toMatchObject({
      state: "up",
      registered: true,
    });
  });

  it("a later contact after the tunnel and peer are gone uses the cached record: no lookup", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    const b = addClientHost(w, "b", "192.0.2.2", "10.77.0.2", [w.dir]);
    await step(w, 1000);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "one"));
    for (let i = 0; i < 5; i++) {
      w.net.run();
      await flushAsync();
    }
    expect(b.take().length).toBe(1);
    // the tunnel closes and the idle peer is forgotten (as the engine's tick does after idleTimeout)
    const pb = [...a.engine.peers.values()].find((p) => p.name === "b")!;
    for (const t of pb.tunnels.slice()) a.engine.closeTunnel(t, w.net.now, "test");
    a.engine.routes.removeValue(pb);
    a.engine.peers.delete(pb.hostCert!.publicKey.latin1Slice(0, 32));
    const lookups = w.clients.get(a)!.events.dirLookups;
    a.send(ipv4("10.77.0.1", "10.77.0.2", "two"));
    expect(w.clients.get(a)!.events.dirLookups).toBe(lookups); // answered from the cache
    expect(w.clients.get(a)!.events.dirCacheHits).toBe(1);
    w.net.run();
    expect(b.take().some((p) => p.subarray(20).toString() === "two")).toBe(true); // 0-RTT, first packet
  });

  it("lookups for the same target coalesce and the queue per target is bounded", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    const b = addClientHost(w, "b", "192.0.2.2", "10.77.0.2", [w.dir]);
    await step(w, 1000);
    for (let i = 0; i < 20; i++) a.send(ipv4("10.77.0.1", "10.77.0.2", `p${i}`));
    expect(w.clients.get(a)!.events.dirLookups).toBe(1);
    expect(w.clients.get(a)!.drops.queueFull).toBe(4); // 16 held per target
    for (let i = 0; i < 5; i++) {
      w.net.run();
      await flushAsync();
    }
    expect(b.take().length).toBe(16);
  });

  it("refuses and counts forged or replayed records", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    const b = addClientHost(w, "b", "192.0.2.2", "10.77.0.2", [w.dir]);
    const c = addClientHost(w, "c", "192.0.2.3", "10.77.0.3", [w.dir]);
    await step(w, 1000);
    const nowSec = Math.floor(w.net.now / 1000);
    const bCert = b.cert;
    const bEph = b.engine.eph.current!.cert;
    // forgeries
    const other = makeCa("other-ca");
    const otherB = makeHostCert(other, "b", "10.77.0.2", null); // same name and address, other CA
    const otherEph = signEphemeral(
      { ...fieldsOf(bEph), hostKey: otherB.cert.publicKey, keyId: 1 },
      otherB.sk,
    );
    // names b's host key but is signed by another key
    const wrongKey = signKeyPair();
    const wrongKeyEph = signEphemeral(
      { ...fieldsOf(bEph), hostKey: wrongKey.publicKey, keyId: 2 },
      wrongKey.secretKey,
    );
    bCert.publicKey.copy(wrongKeyEph.raw, EPH_OFFSET_HOST_KEY);
    const expired = signEphemeralOf(w, b, { notBefore: nowSec - 1000, notAfter: nowSec - 10 });
    const cRec: WireRecord = {
      host: c.cert.raw,
      eph: c.engine.eph.current!.cert.raw,
      observed: { ip: "192.0.2.3", port: 7000 },
    };
    const forged: [string, WireRecord][] = [
      ["other CA", { host: otherB.cert.raw, eph: otherEph.raw, observed: { ip: "192.0.2.66", port: 7000 } }],
      ["wrong key", { host: bCert.raw, eph: wrongKeyEph.raw, observed: { ip: "192.0.2.66", port: 7000 } }],
      [
        "expired (replayed)",
        { host: bCert.raw, eph: expired.raw, observed: { ip: "192.0.2.66", port: 7000 } },
      ],
      ["another host's name", cRec],
    ];
    // the directory now lies: every lookup is answered with the next forgery
    let next = 0;
    w.dir.dirHooks.frame = (t, type, buf, off, len, now) => {
      if (type !== FrameType.DirRequest) return false;
      const m = decodeDirRequest(buf, off, len);
      if (!m || m.op === "register" || m.op === "revocation") return true;
      const r: DirResponse = { op: m.op, id: m.id, status: "ok", record: forged[next++ % forged.length]![1] };
      w.dir.engine.sendFrame(t, FrameType.DirResponse, encodeDirResponse(r), now);
      return true;
    };
    const ca = w.clients.get(a)!;
    const results: LookupResult[] = [];
    for (let i = 0; i < forged.length; i += 2) {
      // each lookup is tried twice on the one directory: two forgeries per lookup
      const p = ca.resolve(i % 4 === 0 ? { op: "name", name: "b" } : { op: "address", ip: "10.77.0.2" });
      for (let k = 0; k < 5; k++) {
        w.net.run();
        await flushAsync();
      }
      results.push(await p);
    }
    console.log(
      `forged records: ${forged.map((f) => f[0]).join(", ")} -> dirBadRecord=${w.clients.get(a)!.drops.dirBadRecord}`,
    );
    expect(results.every((r) => !r.ok && r.reason === "badRecord")).toBe(true);
    expect(w.clients.get(a)!.drops.dirBadRecord).toBe(forged.length);
    // nothing was learned: no route to b, no peer at the forged endpoint
    expect(a.engine.routes.lookup4(0x0a4d0002)).toBeUndefined();
    expect([...a.engine.peers.values()].some((p) => p.name === "b")).toBe(false);
  });

  it("a name query answered with the right host is accepted (control for the forgery test)", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    addClientHost(w, "b", "192.0.2.2", "10.77.0.2", [w.dir]);
    await step(w, 1000);
    const p = w.clients.get(a)!.resolve({ op: "name", name: "b" });
    for (let k = 0; k < 5; k++) {
      w.net.run();
      await flushAsync();
    }
    const r = await p;
    expect(r.ok).toBe(true);
    expect(w.clients.get(a)!.drops.dirBadRecord).toBe(0);
  });

  it("falls back to the next directory when the first does not answer", async () => {
    const w = world();
    const dead = w.net.addHost(w.ca, "dead", "192.0.2.11", 7000, "10.77.0.101", null);
    w.net.hosts.delete("192.0.2.11:7000"); // never answers
    void dead;
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [dead, w.dir]);
    const b = addClientHost(w, "b", "192.0.2.2", "10.77.0.2", [w.dir]);
    await step(w, 1500);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "via second"));
    await step(w, 2500);
    expect(b.take().some((p) => p.subarray(20).toString() === "via second")).toBe(true);
    expect(
      w.clients
        .get(a)!
        .state(w.net.now)
        .directories.map((d) => d.state),
    ).toEqual(["no-record", "up"]);
  });

  it("a packet to a subnet behind a gateway finds the gateway whose certificate lists it", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    const gwCert = makeHostCert(w.ca, "gw", "10.77.0.9", null, { subnets: ["192.168.50.0/24"] });
    const gw = new SimHost(w.net, "gw", tryEncodeAddr("192.0.2.9", 7000)!, gwCert.cert, gwCert.sk, w.ca.cert);
    w.net.hosts.set("192.0.2.9:7000", gw);
    const c = new DirectoryClient(
      gw.engine,
      { directories: [w.dir.addr], ca: w.ca.cert, clock: () => w.net.now },
      w.net.now,
    );
    c.attach(gw.dirHooks);
    gw.dirHooks.frame = (t, type, buf, off, len, now) => {
      if (type !== FrameType.DirResponse) return false;
      c.onResponse(t, buf, off, len, now);
      return true;
    };
    w.clients.set(gw, c);
    await step(w, 1000);
    a.send(ipv4("10.77.0.1", "192.168.50.7", "to the lan"));
    for (let i = 0; i < 5; i++) {
      w.net.run();
      await flushAsync();
    }
    expect(gw.take().some((p) => p.subarray(20).toString() === "to the lan")).toBe(true);
    // an address no certificate covers is not found
    const r = w.clients.get(a)!.resolve({ op: "subnet", ip: "192.168.51.1" });
    for (let i = 0; i < 3; i++) {
      w.net.run();
      await flushAsync();
    }
    expect(await r).toEqual({ ok: false, reason: "notFound" });
  });

  it("registrations over a host's rate are answered RATE_LIMITED and counted", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    await step(w, 1000);
    const c = w.clients.get(a)!;
    for (let i = 0; i < 30; i++) c.register(w.net.now); // 30 at once; the bucket holds 10
    for (let i = 0; i < 5; i++) {
      w.net.run();
      await flushAsync();
    }
    console.log(`registration flood: dirRateLimited ${w.server.drops.dirRateLimited} of 30`);
    expect(w.server.drops.dirRateLimited).toBeGreaterThanOrEqual(15);
    expect(w.server.events.dirRecordsStored).toBeLessThanOrEqual(12);
  });
});
function fieldsOf(e: import("../../src/wire/cert.js").EphemeralCert) {
  return {
    hostKey: e.hostKey,
    keyId: e.keyId,
    publicKey: e.publicKey,
    notBefore: e.notBefore,
    notAfter: e.notAfter,
    endpoints: e.endpoints,
    protocolVersion: e.protocolVersion,
    minFirstPacket: e.minFirstPacket,
  };
}

/** An ephemeral certificate of host h with other validity times (signed by h: a genuine but stale one). */
function signEphemeralOf(w: World, h: SimHost, t: { notBefore: number; notAfter: number }) {
  const sk = (h.engine as unknown as { opts: { hostSecretKey: Buffer } }).opts.hostSecretKey;
  void w;
  return signEphemeral({ ...fieldsOf(h.engine.eph.current!.cert), ...t }, sk);
}

describe("directory answers are hints, not authority", () => {
  it("a silent tunnel moves to an endpoint the directory returned only after an authenticated answer from there", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    const b = addClientHost(w, "b", "192.0.2.2", "10.77.0.2", [w.dir]);
    await step(w, 1000);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "hello b"));
    await step(w, 200);
    expect(b.take().some((p) => p.subarray(20).toString() === "hello b")).toBe(true);
    const tb = [...a.engine.peers.values()].find((p) => p.name === "b")!.sendTunnel()!;
    expect(tb.state).toBe("established");
    // the directory (lying, or fooled) now places b at an address where b is not
    const placeB = (ip: string) => {
      (w.server.store as MemoryStore).index.byName("b", w.net.now)!.observed = { ip, port: 7000 };
    };
    // b falls silent towards a; a keeps sending past the stall time and asks the directory
    w.net.filter = (d) => !(d.from.equals(b.addr) && d.to.equals(a.addr));
    for (let i = 0; i < 10; i++) {
      placeB("192.0.2.66");
      a.send(ipv4("10.77.0.1", "10.77.0.2", `more ${i}`));
      await step(w, 500);
    }
    expect(w.clients.get(a)!.events.dirRelookups).toBeGreaterThanOrEqual(1);
    expect(a.engine.events.endpointProbes).toBeGreaterThanOrEqual(1);
    expect(addrToString(tb.endpoint)).toBe("192.0.2.2:7000");
    // b really is somewhere else and the directory knows: b answers the probe from there, a follows
    w.net.filter = () => true;
    w.net.moveHost(b, "192.0.2.22", 7000);
    for (let i = 0; i < 10 && addrToString(tb.endpoint) !== "192.0.2.22:7000"; i++) {
      placeB("192.0.2.22");
      a.send(ipv4("10.77.0.1", "10.77.0.2", `again ${i}`));
      await step(w, 500);
    }
    expect(addrToString(tb.endpoint)).toBe("192.0.2.22:7000");
    expect(tb.state).toBe("established");
  });

  it("a host's renewed certificate (reload) is registered again: the directory serves the new one", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    await step(w, 1000);
    const old = a.engine.opts.hostCert;
    expect((await w.server.store.byName("a", w.net.now))?.host.equals(old.raw)).toBe(true);
    const nowSec = Math.floor(w.net.now / 1000);
    const renewed = signCert(
      { ...old, groups: ["renewed"], notBefore: nowSec - 10, notAfter: nowSec + 86400 },
      w.ca.sk,
    ) as HostCert;
    expect(a.engine.setHostCert(renewed, w.net.now)).toBeNull();
    w.clients.get(a)!.register(w.net.now); // what the daemon's reload does
    await step(w, 500);
    expect((await w.server.store.byName("a", w.net.now))?.host.equals(renewed.raw)).toBe(true);
    expect(w.dir.engine.events.peerCertsRenewed).toBe(1); // the directory's tunnel peer too (CERT frame)
  });

  it("revocation lists through the directory: a newer one is installed, a forged or older one refused", async () => {
    const w = world();
    const a = addClientHost(w, "a", "192.0.2.1", "10.77.0.1", [w.dir]);
    const b = addClientHost(w, "b", "192.0.2.2", "10.77.0.2", [w.dir]);
    await step(w, 1000);
    const nowSec = Math.floor(w.net.now / 1000);
    const list = (number: number, sk: Buffer, issuer: Buffer, n = 0) =>
      signRevocation(
        {
          number,
          issued: nowSec,
          nextUpdate: nowSec + 3600,
          issuer,
          entries: [
            { kind: "host" as const, value: b.engine.opts.hostCert.publicKey },
            // padding entries: a list of several 1-KiB chunks
            ...Array.from({ length: n }, (_, i) => ({
              kind: "user" as const,
              value: Buffer.alloc(32, i + 1),
            })),
          ],
        },
        sk,
      );
    w.dir.engine.setRevocation(new RevocationIndex(list(5, w.ca.sk, w.ca.cert.publicKey, 100)), w.net.now);
    await step(w, 10_500, 250);
    const ca = w.clients.get(a)!;
    expect(ca.events.dirRevocationFetched).toBe(1);
    expect(a.engine.revocation?.number).toBe(5);
    expect(a.engine.revocation?.list.raw.length).toBeGreaterThan(3 * 1024); // several chunks
    // the directory now lies: a list of another CA with a higher number, then an older one of ours
    const other = signKeyPair();
    const lies = [list(9, other.secretKey, other.publicKey), list(4, w.ca.sk, w.ca.cert.publicKey)];
    let n = 0;
    w.dir.dirHooks.frame = (t, type, buf, off, len, now) => {
      if (type !== FrameType.DirRequest) return false;
      const m = decodeDirRequest(buf, off, len);
      if (m?.op !== "revocation") return false;
      const l = lies[n++ % 2]!;
      const chunk = l.raw.subarray(m.offset, m.offset + Math.min(1024, l.raw.length - m.offset));
      const r: DirResponse = {
        op: "revocation",
        id: m.id,
        status: "ok",
        number: l.number,
        total: l.raw.length,
        offset: m.offset,
        chunk,
      };
      w.dir.engine.sendFrame(t, FrameType.DirResponse, encodeDirResponse(r), now);
      return true;
    };
    await step(w, 21_000, 250);
    expect(ca.events.dirRevocationRefused).toBeGreaterThanOrEqual(2);
    expect(a.engine.revocation?.number).toBe(5);
    expect(ca.events.dirRevocationFetched).toBe(1);
  });
});
