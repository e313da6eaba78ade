/**
 * Directory pieces without a network: config errors (file, line, key,
 * expectation), the record tables (address, longest subnet, name, expiry,
 * bound), the file store (atomic write, reload, damaged file), record
 * verification, and the server's per-host rate limit.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config.js";
import { ConfigError, MintunError } from "../../src/errors.js";
import { nullLogger } from "../../src/log.js";
import {
  FileStore,
  MemoryIndex,
  STORE_FILE,
  makeRecord,
  type StoredRecord,
} from "../../src/directory/store.js";
import { certAnswers, verifyRecord } from "../../src/directory/record.js";
import { cidrContains } from "../../src/ip/ip.js";
import { addrToString } from "../../src/wire/addr.js";
import { MAX_LOCAL_CANDIDATES, localEndpoints } from "../../src/net/localaddrs.js";
import { signEphemeral } from "../../src/wire/cert.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { makeCa, makeHostCert } from "../inproc/harness.js";

const MIN = "ca: ca.crt\nhost: { key: k, cert: c }\n";
const FILE = "/etc/mintun/m.yaml";

function err(text: string): string {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("no error");
}

const ca = makeCa();
const nowSec = Math.floor(Date.now() / 1000);

function rec(
  name: string,
  ip4: string | null,
  subnets: string[] = [],
  life = 300,
  endpoints: { ip: string; port: number }[] = [],
): StoredRecord {
  const h = makeHostCert(ca, name, ip4, null, { subnets });
  const kp = signKeyPair();
  const eph = signEphemeral(
    {
      hostKey: h.cert.publicKey,
      keyId: 1,
      publicKey: kp.publicKey.subarray(0, 32),
      notBefore: nowSec - 1,
      notAfter: nowSec + life,
      endpoints,
      protocolVersion: 1,
      minFirstPacket: 256,
    },
    h.sk,
  );
  return makeRecord(h.cert.raw, eph.raw, { ip: "192.0.2.1", port: 7000 })!;
}

describe("directory config", () => {
  it("parses directories and the directory role", () => {
    const c = parseConfig(
      `${MIN}directories:\n  - endpoint: 192.0.2.10:7000\n  - endpoint: "[2001:db8::10]:7000"\n` +
        `directory:\n  serve: true\n  store: etcd\n  etcd:\n    endpoints: [http://10.0.0.5:2379]\n`,
      FILE,
    );
    expect(c.directories.map((d) => d.endpoint)).toEqual([
      { host: "192.0.2.10", port: 7000 },
      { host: "2001:db8::10", port: 7000 },
    ]);
    expect(c.directory).toEqual({
      serve: true,
      store: "etcd",
      etcd: { endpoints: ["http://10.0.0.5:2379"], prefix: "/mintun/directory/", tls: null, auth: null },
      maxRecords: 100000,
      registerPerSec: 1,
      lookupPerSec: 200,
    });
    expect(parseConfig(`${MIN}directory:\n  serve: false\n`, FILE).directory).toBeNull();
  });

  it("takes etcd TLS and authentication options (paths relative to the config file)", () => {
    const c = parseConfig(
      `${MIN}directory:\n  serve: true\n  store: etcd\n  etcd:\n    endpoints: [https://10.0.0.5:2379]\n` +
        `    tls:\n      ca: etcd-ca.crt\n      cert: /etc/mintun/etcd-client.crt\n      key: etcd-client.key\n` +
        `    username: mintun\n    passwordFile: etcd.password\n`,
      FILE,
    );
    const dir = path.dirname(FILE);
    expect(c.directory!.etcd).toEqual({
      endpoints: ["https://10.0.0.5:2379"],
      prefix: "/mintun/directory/",
      tls: {
        ca: path.join(dir, "etcd-ca.crt"),
        cert: "/etc/mintun/etcd-client.crt",
        key: path.join(dir, "etcd-client.key"),
      },
      auth: { username: "mintun", passwordFile: path.join(dir, "etcd.password") },
    });
    const base = `${MIN}directory:\n  serve: true\n  store: etcd\n  etcd:\n    endpoints: [https://10.0.0.5:2379]\n`;
    expect(err(`${base}    tls:\n      ca: a.crt\n      cert: c.crt\n`)).toMatch(
      /directory\.etcd\.tls\): expected both cert and key/,
    );
    expect(err(`${base}    username: mintun\n`)).toMatch(/expected both username and passwordFile/);
    expect(err(`${base}    tls:\n      cert: c.crt\n`)).toMatch(/directory\.etcd\.tls\.ca/);
  });

  it("reads the etcd TLS files and password (typed error naming a missing file)", async () => {
    const { etcdSecurity } = await import("../../src/directory/etcd.js");
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "etcd-sec-"));
    try {
      fs.writeFileSync(path.join(d, "ca.crt"), "CA");
      fs.writeFileSync(path.join(d, "pw"), "s3cret\n");
      const o = etcdSecurity({
        endpoints: [],
        prefix: "/",
        tls: { ca: path.join(d, "ca.crt"), cert: null, key: null },
        auth: { username: "u", passwordFile: path.join(d, "pw") },
      });
      expect(o.credentials!.rootCertificate.toString()).toBe("CA");
      expect(o.auth).toEqual({ username: "u", password: "s3cret" });
      expect(() =>
        etcdSecurity({
          endpoints: [],
          prefix: "/",
          tls: { ca: path.join(d, "nope"), cert: null, key: null },
          auth: null,
        }),
      ).toThrow(/cannot read etcd CA bundle .*nope/);
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  it("names file, line, key and expectation on errors", () => {
    expect(err(`${MIN}directories:\n  - endpoint: dir.example.com:7000\n`)).toBe(
      `${FILE}:4 (directories[0].endpoint): expected IP:port of a directory (e.g. 192.0.2.10:7000 or "[2001:db8::10]:7000"), got 'dir.example.com:7000'`,
    );
    expect(err(`${MIN}directories:\n  - endpoint: 192.0.2.1:7000\n  - endpoint: 192.0.2.1:7000\n`)).toMatch(
      /:5 \(directories\[1\]\.endpoint\): duplicate directory endpoint '192\.0\.2\.1:7000'/,
    );
    expect(err(`${MIN}directory:\n  serve: true\n  store: redis\n`)).toMatch(
      /:5 \(directory\.store\): expected 'file' or 'etcd', got 'redis'/,
    );
    expect(err(`${MIN}directory:\n  serve: true\n  store: etcd\n`)).toMatch(
      /\(directory\.etcd\.endpoints\): expected directory\.etcd\.endpoints \(at least one URL\) with store: etcd/,
    );
    expect(err(`${MIN}directory:\n  serve: yes please\n`)).toMatch(
      /\(directory\.serve\): expected true or false/,
    );
    expect(err(`${MIN}directory:\n  serve: true\n  maxRecords: 0\n`)).toMatch(
      /\(directory\.maxRecords\): expected an integer in 1\.\.10000000, got 0/,
    );
    expect(err(`${MIN}directory:\n  serve: true\n  etcd:\n    endpoints: [10.0.0.5:2379]\n`)).toMatch(
      /\(directory\.etcd\.endpoints\[0\]\): expected an etcd client URL/,
    );
    expect(err(`${MIN}directory:\n  sevre: true\n`)).toMatch(/unknown key 'sevre'/);
  });
});

describe("directory records", () => {
  it("tables: address = the exact host only; subnet = the longest certified subnet; name; expiry; bound", () => {
    const now = Date.now();
    const t = new MemoryIndex(3);
    const a = rec("a", "10.77.0.1");
    const gw = rec("gw", "10.77.0.9", ["192.168.0.0/16"]);
    const gw2 = rec("gw2", "10.77.0.10", ["192.168.50.0/24"]);
    expect(t.put(a, now)).toBe("ok");
    expect(t.put(gw, now)).toBe("ok");
    expect(t.put(gw2, now)).toBe("ok");
    expect(t.byAddress("10.77.0.1", "address", now)?.name).toBe("a");
    expect(t.byAddress("10.77.0.1", "subnet", now)).toBeNull();
    expect(t.byAddress("192.168.50.7", "address", now)).toBeNull();
    expect(t.byAddress("192.168.50.7", "subnet", now)?.name).toBe("gw2");
    expect(t.byAddress("192.168.7.7", "subnet", now)?.name).toBe("gw");
    expect(t.byAddress("10.1.1.1", "address", now)).toBeNull();
    expect(t.byName("gw", now)?.ip4).toBe("10.77.0.9");
    expect(t.put(rec("d", "10.77.0.4"), now)).toBe("full");
    expect(t.byName("a", now + 301_000)).toBeNull(); // expired with its ephemeral certificate
    expect(t.sweep(now + 301_000)).toBe(3);
    expect(t.put(rec("d", "10.77.0.4"), now + 301_000)).toBe("ok");
  });

  it("file store: atomic write, reload after restart, damaged file is a typed error", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-dir-"));
    try {
      const now = Date.now();
      const s = new FileStore(dir, 100);
      expect(s.load(now)).toBe(0);
      await s.put(rec("a", "10.77.0.1"), now);
      await s.put(rec("b", "10.77.0.2"), now);
      await s.put(rec("old", "10.77.0.3", [], 1), now);
      s.tick(now + 1000);
      await s.close();
      expect(fs.readdirSync(dir)).toEqual([STORE_FILE]); // no temp file left
      const s2 = new FileStore(dir, 100);
      expect(s2.load(now + 3000)).toBe(2); // "old" expired
      expect((await s2.byName("b", now + 3000))?.ip4).toBe("10.77.0.2");
      fs.writeFileSync(path.join(dir, STORE_FILE), "{not json");
      expect(() => new FileStore(dir, 100).load(now)).toThrow(MintunError);
      expect(() => new FileStore(dir, 100).load(now)).toThrow(/directory\.json: not JSON/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("verification: CA, ephemeral signature and expiry, and the question asked", () => {
    const r = rec("b", "10.77.0.2", ["192.168.1.0/24"]);
    const self = signKeyPair().publicKey;
    const w = { host: r.host, eph: r.eph, observed: r.observed };
    expect(verifyRecord(w, { op: "name", name: "b" }, ca.cert, self, nowSec).ok).toBe(true);
    expect(verifyRecord(w, { op: "address", ip: "10.77.0.2" }, ca.cert, self, nowSec).ok).toBe(true);
    // a gateway's record is no answer to an address query for a host behind it (subnet query: yes)
    expect(verifyRecord(w, { op: "address", ip: "192.168.1.9" }, ca.cert, self, nowSec)).toMatchObject({
      ok: false,
      reason: "wrong-answer",
    });
    expect(verifyRecord(w, { op: "subnet", ip: "192.168.1.9" }, ca.cert, self, nowSec).ok).toBe(true);
    expect(verifyRecord(w, { op: "subnet", ip: "10.77.0.2" }, ca.cert, self, nowSec)).toMatchObject({
      ok: false,
      reason: "wrong-answer",
    });
    expect(verifyRecord(w, { op: "name", name: "c" }, ca.cert, self, nowSec)).toMatchObject({
      ok: false,
      reason: "wrong-answer",
    });
    expect(verifyRecord(w, { op: "name", name: "b" }, makeCa("other").cert, self, nowSec)).toMatchObject({
      ok: false,
      reason: "host-cert",
      detail: "wrong-issuer",
    });
    expect(verifyRecord(w, { op: "name", name: "b" }, ca.cert, self, nowSec + 400)).toMatchObject({
      ok: false,
      reason: "eph-cert",
      detail: "expired",
    });
    expect(verifyRecord({ ...w, observed: null }, null, ca.cert, self, nowSec)).toMatchObject({
      ok: false,
      reason: "no-endpoint",
    });
    const hc = makeHostCert(ca, "x", "10.77.0.5", null, { subnets: ["10.0.0.0/8"] }).cert;
    // an address query is answered by the exact host only; a certified subnet answers subnet queries
    expect(certAnswers(hc, { op: "address", ip: "10.77.0.5" })).toBe(true);
    expect(certAnswers(hc, { op: "address", ip: "10.1.2.3" })).toBe(false);
    expect(certAnswers(hc, { op: "subnet", ip: "10.1.2.3" })).toBe(true);
    expect(certAnswers(hc, { op: "subnet", ip: "11.1.2.3" })).toBe(false);
    expect(cidrContains("10.0.0.0/8", "11.0.0.1")).toBe(-1);
    expect(cidrContains("fd00::/8", "fd12::1")).toBe(8);
  });

  it("same NAT: a host the directory saw at our own public address is reached on its signed local address", () => {
    const r = rec("b", "10.77.0.2", [], 300, [
      { ip: "fd02::2", port: 7001 },
      { ip: "192.168.1.2", port: 7001 },
    ]);
    const self = signKeyPair().publicKey;
    const w = { host: r.host, eph: r.eph, observed: r.observed }; // observed 192.0.2.1:7000
    const ep = (selfIp: string | null): string => {
      const v = verifyRecord(w, null, ca.cert, self, nowSec, undefined, selfIp);
      return v.ok ? addrToString(v.record.endpoint) : v.reason;
    };
    expect(ep(null)).toBe("192.0.2.1:7000"); // our own public address unknown: the observed one
    expect(ep("198.51.100.7")).toBe("192.0.2.1:7000"); // another NAT: the observed one
    expect(ep("192.0.2.1")).toBe("192.168.1.2:7001"); // ours: its local IPv4 address (same family)
    const none = rec("c", "10.77.0.3");
    const v = verifyRecord(
      { ...w, host: none.host, eph: none.eph },
      null,
      ca.cert,
      self,
      nowSec,
      undefined,
      "192.0.2.1",
    );
    expect(v.ok && addrToString(v.record.endpoint)).toBe("192.0.2.1:7000"); // nothing published: observed
  });

  it("local candidates: own addresses on a wildcard listen, never loopback, link-local, TUN or overlay", () => {
    const ifs = {
      lo: [{ address: "127.0.0.1", family: "IPv4", internal: true }],
      eth0: [
        { address: "192.168.1.2", family: "IPv4", internal: false },
        { address: "fe80::1", family: "IPv6", internal: false },
        { address: "fd02::2", family: "IPv6", internal: false },
        { address: "169.254.3.3", family: "IPv4", internal: false },
      ],
      mt0: [{ address: "10.77.0.2", family: "IPv4", internal: false }],
      eth1: [
        { address: "10.77.0.2", family: "IPv4", internal: false },
        { address: "203.0.113.5", family: "IPv4", internal: false },
      ],
    } as unknown as NodeJS.Dict<os.NetworkInterfaceInfo[]>;
    const src = { interfaces: () => ifs };
    const skip = { devs: ["mt0"], addrs: ["10.77.0.2"] };
    expect(localEndpoints("0.0.0.0", 7000, skip, src)).toEqual([
      { ip: "192.168.1.2", port: 7000 },
      { ip: "203.0.113.5", port: 7000 },
    ]);
    expect(localEndpoints("::", 7000, skip, src).map((e) => e.ip)).toEqual([
      "192.168.1.2",
      "203.0.113.5",
      "fd02::2",
    ]);
    expect(localEndpoints("192.168.1.2", 7000, skip, src)).toEqual([{ ip: "192.168.1.2", port: 7000 }]);
    expect(localEndpoints("0.0.0.0", 0, skip, src)).toEqual([]);
    const many = {
      eth0: Array.from({ length: 9 }, (_, i) => ({
        address: `10.0.0.${i + 1}`,
        family: "IPv4",
        internal: false,
      })),
    };
    expect(localEndpoints("0.0.0.0", 1, skip, { interfaces: () => many as never })).toHaveLength(
      MAX_LOCAL_CANDIDATES,
    );
  });

  it("an etcd that does not answer at start is a typed error naming the endpoints", async () => {
    const { EtcdStore } = await import("../../src/directory/etcd.js");
    const e = await EtcdStore.open(
      { endpoints: ["http://127.0.0.1:1"], prefix: "/t/", tls: null, auth: null },
      10,
      nullLogger,
    ).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(MintunError);
    expect((e as MintunError).code).toBe("EETCD");
    expect((e as Error).message).toMatch(/etcd at http:\/\/127\.0\.0\.1:1 does not answer/);
  }, 15_000);
});
