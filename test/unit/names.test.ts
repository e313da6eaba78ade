/**
 * Names for people (src/names) and site-to-site pieces (src/gateway) without
 * the network: the name service's sources and cache, the DNS answer table, the
 * DNS listener over loopback UDP and TCP, the config keys, the nft script and
 * the peer-subnet route reconciler.
 */
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as dnsPacket from "dns-packet";
import { describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../src/config/config.js";
import { ConfigError } from "../../src/errors.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { signCert, type CaCert, type HostCert } from "../../src/wire/cert.js";
import { cidrContains } from "../../src/ip/ip.js";
import {
  directoryAddresses,
  directoryNames,
  DirectoryUnavailable,
  inOverlay,
  NameService,
  LOOKUP_TIMEOUT_MS,
  NEGATIVE_TTL_MS,
  type VerifiedHost,
} from "../../src/names/names.js";
import {
  answerQuery,
  MAX_TTL_SEC,
  newDnsCounters,
  normalizeDomain,
  reverseAddress,
  type DnsContext,
} from "../../src/names/dns.js";
import { DnsServer, dnsListenAddrs } from "../../src/names/server.js";
import {
  certifiedSubnets,
  masqueradeScript,
  PeerSubnetRoutes,
  routeCmdOf,
} from "../../src/gateway/gateway.js";
import { FakeRouteManager } from "../fakes/route.js";
import { nullLogger } from "../../src/log.js";
import { ApiServer } from "../../src/api/server.js";
import { runCli, type Io } from "../../src/cli/cli.js";
import { COMMANDS } from "../../src/cli/commands/index.js";

const NOW = 1_800_000_000_000;
const ca = signKeyPair();
const caCert = signCert(
  {
    kind: "ca",
    name: "ca",
    publicKey: ca.publicKey,
    groups: [],
    notBefore: NOW / 1000 - 60,
    notAfter: NOW / 1000 + 86400,
    issuer: ca.publicKey,
  },
  ca.secretKey,
) as CaCert;

function host(name: string, ip4: string | null, ip6: string | null, subnets: string[] = []): HostCert {
  return signCert(
    {
      kind: "host",
      name,
      publicKey: signKeyPair().publicKey,
      groups: [],
      notBefore: NOW / 1000 - 60,
      notAfter: NOW / 1000 + 3600,
      issuer: caCert.publicKey,
      ip4,
      ip6,
      subnets,
    },
    ca.secretKey,
  ) as HostCert;
}

const SELF = host("cl", "10.77.0.2", "fd77::2");
const WEB = host("web", "10.77.0.1", "fd77::1");
const GW = host("gw", "10.77.0.9", null, ["192.168.77.0/24"]);

function service(dir?: (n: string) => Promise<VerifiedHost | null>, clock = { t: NOW }) {
  return new NameService({
    self: SELF,
    peers: () => [
      { hostCert: WEB, eph: { notAfter: NOW / 1000 + 300 } },
      { hostCert: null, eph: null },
    ],
    directory: dir,
    now: () => clock.t,
  });
}

describe("NameService", () => {
  it("answers from our certificate and verified peer certificates, case-insensitively", async () => {
    const s = service();
    expect(await s.resolve("cl")).toMatchObject({ name: "cl", ip4: "10.77.0.2", source: "self" });
    const w = await s.resolve("WEB");
    expect(w).toMatchObject({ name: "web", ip4: "10.77.0.1", ip6: "fd77::1", subnets: [], source: "peer" });
    expect(w!.expiresAt).toBe(NOW + 300_000); // the peer's record (ephemeral certificate) expiry
    expect(w!.key).toMatch(/^[0-9a-f]{16}$/);
    expect(await s.resolve("nope")).toBeNull();
    expect(await s.resolve("bad name!")).toBeNull();
    expect(s.counters).toMatchObject({ self: 1, peer: 1, notFound: 2, directoryLookups: 0 });
  });

  it("asks the directory, caches until the record expires, coalesces, caches misses briefly", async () => {
    const clock = { t: NOW };
    const asked: string[] = [];
    const s = service(async (n) => {
      asked.push(n);
      await new Promise((r) => setTimeout(r, 5));
      return n === "gw" ? { cert: GW, expiresAt: clock.t + 10_000 } : null;
    }, clock);
    const [a, b] = await Promise.all([s.resolve("gw"), s.resolve("gw")]);
    expect(a).toMatchObject({ name: "gw", subnets: ["192.168.77.0/24"], source: "directory" });
    expect(b).toEqual(a);
    expect(asked).toEqual(["gw"]);
    clock.t += 9_000;
    await s.resolve("gw");
    expect(asked).toEqual(["gw"]); // cached
    clock.t += 2_000;
    await s.resolve("gw");
    expect(asked).toEqual(["gw", "gw"]); // expired: asked again
    expect(await s.resolve("ghost")).toBeNull();
    expect(await s.resolve("ghost")).toBeNull();
    expect(asked.filter((n) => n === "ghost")).toHaveLength(1);
    clock.t += NEGATIVE_TTL_MS + 1;
    await s.resolve("ghost");
    expect(asked.filter((n) => n === "ghost")).toHaveLength(2);
  });

  it("a directory lookup that never settles is 'no directory answered' after LOOKUP_TIMEOUT_MS", async () => {
    vi.useFakeTimers();
    try {
      const s = service(() => new Promise(() => undefined));
      const p = s.resolve("gw");
      const caught = p.catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(LOOKUP_TIMEOUT_MS + 1);
      expect(await caught).toBeInstanceOf(DirectoryUnavailable);
      expect(s.counters.directoryFailures).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it("refuses a directory answer for another name, and reports an unreachable directory", async () => {
    const s = service(async () => ({ cert: WEB, expiresAt: NOW + 10_000 }));
    expect(await s.resolve("other")).toBeNull();
    const down = service(() => Promise.reject(new Error("timeout")));
    await expect(down.resolve("gw")).rejects.toBeInstanceOf(DirectoryUnavailable);
    expect(down.counters.directoryFailures).toBe(1);
    // peers and self still answer without the directory
    expect(await down.resolve("web")).not.toBeNull();
  });
});

function query(
  name: string,
  type: dnsPacket.RecordType | "ANY",
  opts: { id?: number; edns?: boolean } = {},
): Buffer {
  return dnsPacket.encode({
    type: "query",
    id: opts.id ?? 4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as dnsPacket.RecordType, name }],
    additionals: opts.edns
      ? [
          {
            type: "OPT",
            name: ".",
            udpPayloadSize: 4096,
            extendedRcode: 0,
            ednsVersion: 0,
            flags: 0,
            flag_do: false,
            options: [],
          },
        ]
      : [],
  });
}

function ctx(s: NameService): DnsContext {
  return { domain: "mesh.", resolve: (n) => s.resolve(n), now: () => NOW, counters: newDnsCounters() };
}

async function ask(c: DnsContext, q: Buffer) {
  const r = await answerQuery(q, c);
  expect(r).not.toBeNull();
  return dnsPacket.decode(r!) as dnsPacket.DecodedPacket & { rcode: string };
}

describe("directoryNames (the directory client's answers)", () => {
  it("a verified record, null for notFound, DirectoryUnavailable for anything else", async () => {
    const answers: Record<
      string,
      { ok: true; record: { hostCert: HostCert; expiresAt: number } } | { ok: false; reason: string }
    > = {
      gw: { ok: true, record: { hostCert: GW, expiresAt: NOW + 1000 } },
      ghost: { ok: false, reason: "notFound" },
      forged: { ok: false, reason: "badRecord" },
      down: { ok: false, reason: "unavailable" },
    };
    const lookup = directoryNames({
      resolve: (q) => Promise.resolve(answers[q.op === "name" ? q.name : q.ip]!),
    });
    expect(await lookup("gw")).toEqual({ cert: GW, expiresAt: NOW + 1000 });
    expect(await lookup("ghost")).toBeNull();
    await expect(lookup("forged")).rejects.toBeInstanceOf(DirectoryUnavailable);
    await expect(lookup("down")).rejects.toThrow(/unavailable/);
  });
});

describe("answerQuery", () => {
  it("A and AAAA for NAME.DOMAIN, authoritative, TTL capped, id and question echoed", async () => {
    const c = ctx(service());
    const a = await ask(c, query("Web.Mesh", "A", { id: 7 }));
    expect(a.id).toBe(7);
    expect(a.rcode).toBe("NOERROR");
    expect(a.flag_aa).toBe(true);
    expect(a.flag_rd).toBe(true);
    expect(a.flag_ra).toBe(false);
    expect(a.questions).toEqual([{ name: "Web.Mesh", type: "A", class: "IN" }]);
    expect(a.answers).toMatchObject([{ type: "A", name: "Web.Mesh", data: "10.77.0.1", ttl: MAX_TTL_SEC }]);
    const aaaa = await ask(c, query("web.mesh.", "AAAA"));
    expect(aaaa.answers).toMatchObject([{ type: "AAAA", data: "fd77::1" }]);
    const any = await ask(c, query("web.mesh", "ANY"));
    expect(any.answers!.map((x) => x.type)).toEqual(["A", "AAAA"]);
    const mx = await ask(c, query("web.mesh", "MX"));
    expect(mx.rcode).toBe("NOERROR");
    expect(mx.answers).toEqual([]); // NODATA, with the SOA for negative caching
    expect(mx.authorities!.map((x) => x.type)).toEqual(["SOA"]);
  });

  it("NXDOMAIN, REFUSED outside the domain, SERVFAIL without a directory, NOTIMP, FORMERR", async () => {
    const c = ctx(service());
    const nx = await ask(c, query("nope.mesh", "A"));
    expect(nx.rcode).toBe("NXDOMAIN");
    expect(nx.authorities![0]).toMatchObject({ type: "SOA", name: "mesh" });
    expect((await ask(c, query("example.com", "A"))).rcode).toBe("REFUSED");
    expect((await ask(c, query("notmesh", "A"))).rcode).toBe("REFUSED");
    expect((await ask(c, query("mesh", "SOA"))).answers!.map((x) => x.type)).toEqual(["SOA"]);
    const down = ctx(service(() => Promise.reject(new Error("no answer"))));
    expect((await ask(down, query("gw.mesh", "A"))).rcode).toBe("SERVFAIL");
    const notify = query("web.mesh", "A");
    notify.writeUInt16BE((4 << 11) | 0x100, 2); // opcode NOTIFY
    expect((await ask(c, notify)).rcode).toBe("NOTIMP");
    const two = dnsPacket.encode({
      type: "query",
      id: 1,
      questions: [
        { type: "A", name: "web.mesh" },
        { type: "A", name: "cl.mesh" },
      ],
    });
    expect((await ask(c, two)).rcode).toBe("FORMERR");
    expect(c.counters).toMatchObject({ nxdomain: 1, refused: 2, notimp: 1, formerr: 1, malformed: 0 });
    expect(down.counters.servfail).toBe(1);
  });

  it("echoes EDNS, and drops responses, short and undecodable messages (counted)", async () => {
    const c = ctx(service());
    const e = await ask(c, query("web.mesh", "A", { edns: true }));
    expect(e.additionals!.map((x) => x.type)).toEqual(["OPT"]);
    const resp = query("web.mesh", "A");
    resp.writeUInt16BE(resp.readUInt16BE(2) | 0x8000, 2);
    expect(await answerQuery(resp, c)).toBeNull();
    expect(await answerQuery(Buffer.alloc(5), c)).toBeNull();
    const cut = query("web.mesh", "A").subarray(0, 20);
    expect(await answerQuery(cut, c)).toBeNull();
    expect(c.counters.malformed).toBe(3);
  });

  it("PTR for known overlay addresses; NXDOMAIN for other overlay addresses; REFUSED outside", async () => {
    const s = service();
    const c: DnsContext = {
      ...ctx(s),
      reverse: async (ip) =>
        inOverlay(["10.77.0.0/16", "fd77::/64"], SELF, ip) ? s.reverse(ip) : (s.nameOf(ip) ?? undefined),
    };
    const p4 = await ask(c, query("1.0.77.10.in-addr.arpa", "PTR"));
    expect(p4.rcode).toBe("NOERROR");
    expect(p4.answers).toMatchObject([{ type: "PTR", data: "web.mesh" }]);
    const nib = "1" + ".0".repeat(15) + ".0.0.0.0.0.0.0.0.0.0.0.0.7.7.d.f.ip6.arpa";
    expect((await ask(c, query(nib, "PTR"))).answers).toMatchObject([{ type: "PTR", data: "web.mesh" }]);
    expect((await ask(c, query("2.0.77.10.in-addr.arpa", "PTR"))).answers).toMatchObject([
      { data: "cl.mesh" },
    ]);
    expect((await ask(c, query("9.0.77.10.in-addr.arpa", "PTR"))).rcode).toBe("NXDOMAIN");
    expect((await ask(c, query("1.2.0.192.in-addr.arpa", "PTR"))).rcode).toBe("REFUSED");
    expect((await ask(c, query("77.10.in-addr.arpa", "PTR"))).rcode).toBe("REFUSED"); // partial name
    expect((await ask(ctx(s), query("1.0.77.10.in-addr.arpa", "PTR"))).rcode).toBe("REFUSED"); // no reverse
  });

  it("PTR through the directory: exact owners only, cached, SERVFAIL when it does not answer", async () => {
    const asked: string[] = [];
    const byAddr: Record<string, VerifiedHost | null> = {
      "10.77.0.9": { cert: GW, expiresAt: NOW + 60_000 },
      "192.168.77.5": { cert: GW, expiresAt: NOW + 60_000 }, // GW's subnet: GW is not its owner
    };
    const s = new NameService({
      self: SELF,
      peers: () => [],
      directoryAddress: async (ip) => {
        asked.push(ip);
        if (ip === "10.77.0.66") throw new Error("timeout");
        return byAddr[ip] ?? null;
      },
      now: () => NOW,
    });
    expect(await s.reverse("10.77.0.2")).toBe("cl"); // ourselves, no question asked
    expect(await s.reverse("10.77.0.9")).toBe("gw");
    expect(await s.reverse("10.77.0.9")).toBe("gw");
    expect(await s.reverse("192.168.77.5")).toBeNull();
    expect(await s.reverse("10.77.0.50")).toBeNull();
    expect(asked).toEqual(["10.77.0.9", "192.168.77.5", "10.77.0.50"]);
    await expect(s.reverse("10.77.0.66")).rejects.toBeInstanceOf(DirectoryUnavailable);
    const c: DnsContext = { ...ctx(s), reverse: (ip) => s.reverse(ip) };
    expect((await ask(c, query("9.0.77.10.in-addr.arpa", "PTR"))).answers).toMatchObject([
      { data: "gw.mesh" },
    ]);
    expect((await ask(c, query("66.0.77.10.in-addr.arpa", "PTR"))).rcode).toBe("SERVFAIL");
    const addrs = directoryAddresses({
      resolve: (q) =>
        Promise.resolve(
          q.op === "address" && q.ip === "10.77.0.9"
            ? { ok: true as const, record: { hostCert: GW, expiresAt: NOW } }
            : {
                ok: false as const,
                reason: q.op === "address" && q.ip === "10.77.0.1" ? "notFound" : "busy",
              },
        ),
    });
    expect(await addrs("10.77.0.9")).toEqual({ cert: GW, expiresAt: NOW });
    expect(await addrs("10.77.0.1")).toBeNull();
    await expect(addrs("10.77.0.2")).rejects.toBeInstanceOf(DirectoryUnavailable);
  });

  it("reverse names, prefixes, the overlay range", () => {
    expect(reverseAddress("4.3.2.1.in-addr.arpa.")).toBe("1.2.3.4");
    expect(reverseAddress("256.3.2.1.in-addr.arpa.")).toBeNull();
    expect(reverseAddress("04.3.2.1.in-addr.arpa.")).toBeNull();
    expect(reverseAddress("b.a" + ".0".repeat(30) + ".ip6.arpa.")).toBe("::ab");
    expect(reverseAddress("x" + ".0".repeat(31) + ".ip6.arpa.")).toBeNull();
    expect(cidrContains("10.77.0.0/16", "10.77.200.1") >= 0).toBe(true);
    expect(cidrContains("10.77.0.0/16", "10.78.0.1") < 0).toBe(true);
    expect(cidrContains("192.168.77.128/25", "192.168.77.127") < 0).toBe(true);
    expect(cidrContains("192.168.77.128/25", "192.168.77.200") >= 0).toBe(true);
    expect(cidrContains("fd77::/64", "fd77::1") >= 0).toBe(true);
    expect(cidrContains("fd77::/64", "10.77.0.1") < 0).toBe(true);
    expect(cidrContains("0.0.0.0/0", "8.8.8.8") >= 0).toBe(true);
    // a remote LAN in tun.routes is not the overlay
    expect(inOverlay(["10.77.0.0/16", "192.168.60.0/24"], SELF, "192.168.60.5")).toBe(false);
    expect(inOverlay(["10.77.0.0/16", "192.168.60.0/24"], SELF, "10.77.9.9")).toBe(true);
    expect(service().nameOf("fd77::1")).toBe("web");
    expect(service().nameOf("10.77.0.9")).toBeNull();
  });

  it("normalizes domains", () => {
    expect(normalizeDomain("Mesh")).toBe("mesh.");
    expect(normalizeDomain("corp.example.")).toBe("corp.example.");
    expect(normalizeDomain("")).toBeNull();
    expect(normalizeDomain("a..b")).toBeNull();
    expect(normalizeDomain("-x")).toBeNull();
  });
});

describe("DnsServer (loopback UDP and TCP)", () => {
  it("answers over UDP and TCP (two-byte length framing) and closes idempotently", async () => {
    const c = ctx(service());
    const srv = new DnsServer(c, nullLogger);
    await srv.listen([{ host: "127.0.0.1", port: 0 }]);
    const port = Number(srv.addresses()[0]!.split(":")[1]);
    try {
      const u = dgram.createSocket("udp4");
      const udpAnswer = await new Promise<Buffer>((resolve) => {
        u.once("message", (m) => resolve(m));
        u.send(query("web.mesh", "A"), port, "127.0.0.1");
      });
      u.close();
      expect(dnsPacket.decode(udpAnswer).answers).toMatchObject([{ data: "10.77.0.1" }]);
      // TCP on the same port (the server listens on both)
      const tcpPort = (srv as unknown as { tcp: net.Server[] }).tcp[0]!.address() as net.AddressInfo;
      const s = net.connect(tcpPort.port, "127.0.0.1");
      const q = query("web.mesh", "AAAA");
      const framed = Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q]);
      const tcpAnswer = await new Promise<Buffer>((resolve, reject) => {
        let buf = Buffer.alloc(0);
        s.on("data", (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) resolve(buf.subarray(2));
        });
        s.on("error", reject);
        // split the frame across two writes: framing must not depend on segment boundaries
        s.write(framed.subarray(0, 3));
        setTimeout(() => s.write(framed.subarray(3)), 10);
      });
      s.destroy();
      expect(dnsPacket.decode(tcpAnswer).answers).toMatchObject([{ type: "AAAA", data: "fd77::1" }]);
    } finally {
      srv.close();
      srv.close();
    }
  });

  it("names the address it cannot bind (typed error)", async () => {
    const a = new DnsServer(ctx(service()), nullLogger);
    await a.listen([{ host: "127.0.0.1", port: 0 }]);
    const port = Number(a.addresses()[0]!.split(":")[1]);
    const b = new DnsServer(ctx(service()), nullLogger);
    await expect(b.listen([{ host: "127.0.0.1", port }])).rejects.toThrow(
      /DNS: cannot listen on udp 127\.0\.0\.1/,
    );
    a.close();
  });

  it("listen overlay = the certificate's addresses, port 53", () => {
    expect(dnsListenAddrs("overlay", { ip4: "10.77.0.2", ip6: "fd77::2" })).toEqual([
      { host: "10.77.0.2", port: 53 },
      { host: "fd77::2", port: 53 },
    ]);
    expect(dnsListenAddrs({ host: "127.0.0.1", port: 5353 }, { ip4: "10.77.0.2", ip6: null })).toEqual([
      { host: "127.0.0.1", port: 5353 },
    ]);
  });
});

const MIN = "ca: ca.crt\nhost:\n  key: host.key\n  cert: host.crt\n";
const FILE = "/etc/mintun/m.yaml";
function cfgErr(text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("config: dns, gateway, tun.peerSubnets", () => {
  it("defaults: DNS off, domain mesh., no gateway, peer subnets routed", () => {
    const c = parseConfig(MIN, FILE);
    expect(c.dns).toEqual({ listen: null, domain: "mesh." });
    expect(c.gateway).toEqual({ forward: false, masquerade: false, lanInterface: null });
    expect(c.tun.peerSubnets).toBe(true);
  });

  it("parses every form", () => {
    const c = parseConfig(
      MIN +
        "dns:\n  listen: overlay\n  domain: Corp.Example\n" +
        "gateway:\n  forward: true\n  masquerade: true\n  lanInterface: eth1\ntun:\n  peerSubnets: false\n",
      FILE,
    );
    expect(c.dns).toEqual({ listen: "overlay", domain: "corp.example." });
    expect(c.gateway).toEqual({ forward: true, masquerade: true, lanInterface: "eth1" });
    expect(c.tun.peerSubnets).toBe(false);
    expect(parseConfig(MIN + 'dns:\n  listen: "[fd77::1]:5353"\n', FILE).dns.listen).toEqual({
      host: "fd77::1",
      port: 5353,
    });
    expect(parseConfig(MIN + "dns:\n  listen: off\n", FILE).dns.listen).toBeNull();
  });

  it("errors name the line and key", () => {
    const e1 = cfgErr(MIN + "dns:\n  listen: somewhere\n");
    expect(e1.line).toBe(6);
    expect(e1.key).toBe("dns.listen");
    expect(cfgErr(MIN + "dns:\n  domain: bad_domain\n").key).toBe("dns.domain");
    expect(cfgErr(MIN + "gateway:\n  forward: yes please\n").message).toMatch(/expected true or false/);
    const m = cfgErr(MIN + "gateway:\n  masquerade: true\n");
    expect(m.key).toBe("gateway.masquerade");
    expect(m.message).toMatch(/needs forward: true/);
    expect(cfgErr(MIN + "gateway:\n  forward: true\n  lanInterface: -x\n").key).toBe("gateway.lanInterface");
    expect(cfgErr(MIN + "gateway:\n  forwrd: true\n").message).toMatch(/forward/);
  });
});

describe("gateway pieces", () => {
  it("masquerade script: one table per TUN, replaced atomically, LAN interface optional", () => {
    const s = masqueradeScript("mt0", "lan0");
    expect(s).toContain("table inet mintun_mt0 {}\ndelete table inet mintun_mt0\n");
    expect(s).toContain('iifname "mt0" oifname "lan0" masquerade');
    expect(masqueradeScript("mintun.0", null)).toContain("table inet mintun_mintun_0 {\n");
    expect(masqueradeScript("mt0", null)).toContain('iifname "mt0" oifname != "mt0" masquerade');
  });

  it("peer subnet routes: add once, keep an existing route, remove when the peer goes", async () => {
    const calls: string[] = [];
    const routes = new PeerSubnetRoutes(
      "mt0",
      nullLogger,
      () => new Set(["10.77.0.0/16"]),
      async (op, _dev, cidr) => {
        calls.push(`${op} ${cidr}`);
        if (op === "add" && cidr === "192.168.1.0/24") throw new Error("RTNETLINK answers: File exists");
      },
    );
    await routes.sync(new Set(["192.168.77.0/24", "192.168.1.0/24", "10.77.0.0/16"]));
    expect(calls).toEqual(["add 192.168.77.0/24", "add 192.168.1.0/24"]);
    expect(routes.state()).toEqual({ installed: ["192.168.77.0/24"], shadowed: ["192.168.1.0/24"] });
    await routes.sync(new Set(["192.168.77.0/24", "192.168.1.0/24"]));
    expect(calls).toHaveLength(2); // nothing changed, nothing run
    await routes.sync(new Set());
    expect(calls).toEqual(["add 192.168.77.0/24", "add 192.168.1.0/24", "del 192.168.77.0/24"]);
    expect(routes.state()).toEqual({ installed: [], shadowed: [] });
  });

  it("certified subnets: from verified, unexpired peer certificates only; route commands through a RouteManager", async () => {
    const peers = [
      { hostCert: GW },
      { hostCert: null },
      { hostCert: { ...GW, subnets: ["10.9.0.0/16"], notAfter: NOW / 1000 - 1 } },
    ];
    expect([...certifiedSubnets(peers, NOW)]).toEqual(["192.168.77.0/24"]);
    expect([...certifiedSubnets(peers, NOW, ["192.168.77.0/24"])]).toEqual([]); // our own LAN
    const fake = new FakeRouteManager();
    const cmd = routeCmdOf(fake);
    await cmd("add", "mt0", "192.168.77.0/24");
    await cmd("del", "mt0", "192.168.77.0/24");
    expect(fake.calls).toEqual([
      { op: "addRoute", dev: "mt0", cidr: "192.168.77.0/24" },
      { op: "delRoute", dev: "mt0", cidr: "192.168.77.0/24" },
    ]);
  });
});

describe("mintun resolve (CLI against a real API server with an async handler)", () => {
  it("prints the record, --json, exit 1 for no such host and for a directory error, 2 for a bad name", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-resolve-"));
    const sock = path.join(dir, "api.sock");
    const api = new ApiServer(sock, nullLogger);
    const s = service(async (n) => {
      await new Promise((r) => setTimeout(r, 5)); // an answer that arrives later
      if (n === "down") throw new Error("no directory");
      return n === "gw" ? { cert: GW, expiresAt: NOW + 120_000 } : null;
    });
    api.handle("resolve", (p) => s.resolve(String(p.name)));
    await api.listen();
    const run = async (argv: string[]) => {
      let stdout = "";
      let stderr = "";
      const io: Io = {
        stdout: (t) => void (stdout += t),
        stderr: (t) => void (stderr += t),
        now: () => NOW,
        cwd: dir,
      };
      return { code: await runCli(argv, io, COMMANDS), stdout, stderr };
    };
    try {
      const ok = await run(["resolve", "gw", "--socket", sock]);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toContain("ip4:      10.77.0.9\n");
      expect(ok.stdout).toContain("subnets:  192.168.77.0/24\n");
      expect(ok.stdout).toContain("(in 2m)");
      expect(ok.stdout).toContain("from:     the directory");
      const js = await run(["resolve", "gw", "--json", "--socket", sock]);
      expect(JSON.parse(js.stdout)).toMatchObject({
        name: "gw",
        source: "directory",
        expiresAt: NOW + 120_000,
      });
      const nx = await run(["resolve", "nope", "--socket", sock]);
      expect(nx).toMatchObject({ code: 1, stderr: "mintun: nope: no such host\n" });
      const down = await run(["resolve", "down", "--socket", sock]);
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(/^mintun: no directory answered for 'down'/);
      expect((await run(["resolve", "a b"])).code).toBe(2);
    } finally {
      api.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
