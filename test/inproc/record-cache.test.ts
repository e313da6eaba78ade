/**
 * Peers' records on disk (src/daemon/records.ts): a restarted host installs the record it
 * saved in its last run, so its first packet leaves as a 0-RTT CREATE with no record round
 * trip; a stale cached key costs one STALE answer; nothing read from disk is taken without
 * the checks an answered record passes (tampered, another name, expired, another key).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PacketType } from "../../src/wire/packet.js";
import { RecordCache } from "../../src/daemon/records.js";
import type { Logger } from "../../src/log.js";
import { ipv4, makeCa, makeHostCert, SimNet, type SimHost } from "./harness.js";

const quiet: Logger = {
  enabled: () => false,
  log: () => undefined,
  child: () => quiet,
  setLevel: () => undefined,
  level: () => "error",
};

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-records-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function pair() {
  const net = new SimNet();
  const ca = makeCa();
  const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
  const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
  b.engine.addPeer({ name: "a", endpoint: a.addr }, net.now);
  return { net, ca, a, b };
}

/** a's first run: b's record fetched and saved; then a is restarted with b configured again */
function restartWithCache(net: SimNet, a: SimHost, b: SimHost, cache: RecordCache) {
  a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
  net.run();
  cache.sync(a.engine.peers.values());
  const a2 = net.restartHost(a);
  const peers = [{ name: "b", endpoint: b.addr }];
  for (const p of peers) a2.engine.addPeer(p, net.now);
  return { a2, peers };
}

const types = (net: SimNet) => net.queue.map((d) => d.data[8]);
const ping = (seq: number) => ipv4("10.77.0.1", "10.77.0.2", `seq ${seq}`);

describe("peer records cached on disk", () => {
  it("a restart with a cached record sends its first packet 0-RTT at once (no record round trip)", () => {
    const { net, ca, a, b } = pair();
    const cache = new RecordCache(dir, quiet);
    const { a2, peers } = restartWithCache(net, a, b, cache);
    expect(cache.counters.saved).toBe(1);
    expect(fs.statSync(path.join(dir, "b.rec")).mode & 0o777).toBe(0o600);
    const again = new RecordCache(dir, quiet);
    expect(again.install(a2.engine, peers, ca.cert, net.now)).toBe(1);
    a2.send(ping(1));
    // the record request (sent by addPeer, in parallel) and a CREATE carrying the packet
    expect(types(net)).toEqual([PacketType.RecordRequest, PacketType.Create]);
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["seq 1"]);
  });

  it("without the cache the packet waits for the record (the check above fails without records.ts)", () => {
    const { net, a, b } = pair();
    const cache = new RecordCache(dir, quiet);
    const { a2 } = restartWithCache(net, a, b, cache);
    a2.send(ping(1));
    expect(types(net)).toEqual([PacketType.RecordRequest]);
  });

  it("a cached key the peer no longer holds (it restarted) costs one STALE, then the packet arrives", () => {
    const { net, ca, a, b } = pair();
    const cache = new RecordCache(dir, quiet);
    const { a2, peers } = restartWithCache(net, a, b, cache);
    const b2 = net.restartHost(b); // new ephemeral keys
    new RecordCache(dir, quiet).install(a2.engine, peers, ca.cert, net.now);
    a2.send(ping(2));
    net.queue.splice(0, 1); // lose the parallel record request: the STALE path alone
    net.run();
    expect(net.log.map((d) => d.data[8])).toContain(PacketType.Stale);
    expect(b2.take().map((p) => p.subarray(20).toString())).toEqual(["seq 2"]);
  });

  it("refuses a tampered file, another host's record, a record past its validity and another key", () => {
    const { net, ca, a, b } = pair();
    const cache = new RecordCache(dir, quiet);
    const { a2, peers } = restartWithCache(net, a, b, cache);
    const file = path.join(dir, "b.rec");
    const good = fs.readFileSync(file, "utf8");
    const rec = JSON.parse(good) as { host: string; eph: string };

    // one byte of the ephemeral certificate's signature flipped
    const eph = Buffer.from(rec.eph, "base64");
    eph[eph.length - 1]! ^= 1;
    fs.writeFileSync(file, JSON.stringify({ host: rec.host, eph: eph.toString("base64") }));
    let c = new RecordCache(dir, quiet);
    expect(c.install(a2.engine, peers, ca.cert, net.now)).toBe(0);
    expect(c.counters.refused).toBe(1);
    // not JSON, and a directory where the file should be
    fs.writeFileSync(file, "{not json");
    expect(c.install(a2.engine, peers, ca.cert, net.now)).toBe(0);
    fs.rmSync(file);
    fs.mkdirSync(file);
    expect(c.install(a2.engine, peers, ca.cert, net.now)).toBe(0);
    fs.rmdirSync(file);
    expect(c.counters.refused).toBe(3);

    // b's record saved under the name c: a host configured as c does not take it
    fs.writeFileSync(path.join(dir, "c.rec"), good);
    c = new RecordCache(dir, quiet);
    expect(c.install(a2.engine, [{ name: "c", endpoint: b.addr }], ca.cert, net.now)).toBe(0);
    expect(c.counters.refused).toBe(1);

    // past the ephemeral certificate's validity (the harness's keys live 300 s)
    fs.writeFileSync(file, good);
    c = new RecordCache(dir, quiet);
    expect(c.install(a2.engine, peers, ca.cert, net.now + 3_600_000)).toBe(0);

    // a configured (pinned) certificate with another key
    const other = makeHostCert(ca, "b", "10.77.0.2", null).cert;
    expect(c.install(a2.engine, [{ ...peers[0]!, cert: other }], ca.cert, net.now)).toBe(0);
    expect(c.counters.refused).toBe(2);

    // another CA
    expect(c.install(a2.engine, peers, makeCa("other-ca").cert, net.now)).toBe(0);
    for (const p of [...a2.engine.peers.values(), ...a2.engine.unresolved.values()]) expect(p.eph).toBeNull();

    // and the good file still works
    expect(c.install(a2.engine, peers, ca.cert, net.now)).toBe(1);
  });
});

describe("first packets on a fresh pair", () => {
  it("a peer's verified record primes the certificate cache: its first HELLO costs no signature check", () => {
    const { net, a, b } = pair(); // b has asked for a's record
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    const misses = b.engine.certs.misses;
    a.send(ping(1));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["seq 1"]);
    expect(b.engine.certs.misses).toBe(misses); // fails without CertCache.remember
    expect(b.engine.certs.hits).toBe(1);
  });
});
