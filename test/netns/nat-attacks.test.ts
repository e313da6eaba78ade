/**
 * Attacks on NAT traversal (issue 17; docs/PROTOCOL.md 8b, "What a forged, replayed or
 * lying one can do"), played from another namespace against real daemons behind real
 * nftables NATs. Two hosts behind symmetric NATs talk through the directory's relay; the
 * attacker `natfix-x` sits on the public side. It learns what an on-path observer at the
 * directory's link learns (a tcpdump capture there): both hosts' public endpoints, the
 * pair's relay token, the relayed datagrams and the TIDs in their clear headers. Then it
 * sends, with tools/nat-forge.py (raw UDP, its own address or a spoofed one):
 *
 *   - PUNCH datagrams to a host, spoofed from the directory (the one source its NAT lets in),
 *     and PUNCH-looking ones with bytes that break the form;
 *   - RELAY datagrams to a host with the observed token, spoofed from the directory: garbage
 *     under the tunnel's TID, an unknown token, and the observed token from its own address;
 *   - replayed relayed datagrams, to the host directly (spoofed from the directory) and
 *     through the relay (spoofed from the other host's public endpoint);
 *   - RELAY datagrams to the relay from its own address with the observed token;
 *   - DIR_NOTICE-looking bytes outside the tunnel, naming the attacker as a candidate: the
 *     bare notice, and the notice in a DATA packet under the directory tunnel's TID.
 *
 * Each: a counted drop (or, for a well-formed PUNCH, a counted receipt) in `mintun status
 * --json`; no state changes (the tunnel stays on the relay with the same token, curl keeps
 * working); the attacker gets no answer (nothing reaches its address, its own sockets hear
 * nothing) and the victims send nothing in answer (no PUNCH or RELAY datagram to the
 * directory from the victim in the attack window beyond its own traffic).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Status } from "../../src/daemon/status.js";
import { execCmd, curlTimed, startCapture, waitFor, type Capture } from "./lib.js";
import { MINTUN } from "./mintun.js";
import { World } from "./natworld.js";
import { readUdp, type UdpRecord } from "./pcap.js";

const FORGE = fileURLToPath(new URL("../tools/nat-forge.py", import.meta.url));
const root = process.getuid?.() === 0;
const X = "natfixx";
/** forged datagrams per attack */
const N = 40;

const PUNCH = 9;
const RELAY = 10;
const DATA = 3;

interface Send {
  src?: string;
  dst: string;
  hex: string[];
  copies?: number;
}

describe.skipIf(!root)("NAT traversal under attack from another namespace (netns, nftables)", () => {
  const w = new World();
  let dirCap: Capture | null = null;
  let xCap: Capture | null = null;
  let seq = 0;

  beforeAll(
    () =>
      w.up({
        sites: [
          { name: "a", nat: "sym", hosts: ["a1"] },
          { name: "b", nat: "sym", hosts: ["b1"] },
        ],
        delayMs: 5,
        dirExtra: "relay:\n  serve: true\n",
        // quiet hosts: what they send in an attack window is an answer or their own
        // upgrade attempts (counted apart), not keepalives or registrations
        hostExtra: "tunnel:\n  keepaliveSec: 0\nregistration:\n  refreshSec: 300\n",
        bare: [X],
      }),
    120_000,
  );
  afterAll(async () => {
    await dirCap?.stop().catch(() => undefined);
    await xCap?.stop().catch(() => undefined);
    await w.down();
  });

  /** Run nat-forge.py in the attacker's namespace. */
  async function forge(sends: Send[], listenS = 1): Promise<{ sent: number; answers: number }> {
    const spec = path.join(w.pki.dir, `forge-${seq++}.json`);
    fs.writeFileSync(spec, JSON.stringify({ listenS, sends }));
    const r = await w.net.host(X).ns.execOk("python3", [FORGE, spec], { timeoutMs: 30_000 });
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as { sent: number; answers: number };
  }

  /** `mintun status --json` of h, as the operator reads it. */
  async function statusJson(h: string): Promise<Status> {
    const r = await execCmd("node", [MINTUN, "status", "--json", "--socket", w.d[h]!.socket]);
    return JSON.parse(r.stdout) as Status;
  }

  const delta = (a: Status, b: Status, kind: "drops" | "events", k: string): number =>
    (b[kind][k] ?? 0) - (a[kind][k] ?? 0);

  it("forged PUNCH, RELAY, replayed and notice-looking datagrams: counted, no state change, no answer", async () => {
    const aPub = w.net.router("a").addr4;
    const bPub = w.net.router("b").addr4;
    const dirIp = w.net.host("dir").addr4;
    const xIp = w.net.host(X).addr4;
    // the on-path observer's capture at the directory, and the attacker's own link
    const dirPcap = path.join(w.pki.dir, "dir.pcap");
    dirCap = await startCapture(w.net.host("dir").ns, "eth0", dirPcap, "udp port 7000");
    xCap = await startCapture(
      w.net.host(X).ns,
      "eth0",
      path.join(w.pki.dir, "x.pcap"),
      `udp and dst host ${xIp}`,
    );
    // the victims' relayed tunnel, with traffic the observer sees
    const c0 = await curlTimed(w.net.host("a1").ns, "http://b1.mesh:8080/f", { maxTimeS: 10 });
    expect(c0.code, c0.stderr).toBe(200);
    const relayA = await w.endpointSoon("a1", "b1");
    const relayB = await w.endpointSoon("b1", "a1");
    expect(relayA.startsWith("relay:")).toBe(true);
    // after the upgrade attempts at 5 s and 10 s (the next is 35 s later): a quiet host
    // (the creation's notice, then two attempts: whichever end started them, both get a notice)
    await waitFor(
      async () => {
        const e = (await w.status("a1")).events;
        return (e.natPeerNotices ?? 0) + (e.natPunchNotices ?? 0) >= 3;
      },
      {
        timeoutMs: 20_000,
        intervalMs: 500,
        what: "a1's upgrade attempts",
      },
    );
    await new Promise((r) => setTimeout(r, 2000));

    // --- what the observer learned
    const recs = readUdp(dirPcap);
    const fromNat = (pub: string) => recs.filter((r) => r.src === pub && r.dport === 7000);
    const aEp = fromNat(aPub).find((r) => r.payload[8] === RELAY);
    const bEp = fromNat(bPub).find((r) => r.payload[8] === RELAY);
    expect(aEp, "a relayed datagram from a1 in the capture").toBeDefined();
    expect(bEp, "a relayed datagram from b1 in the capture").toBeDefined();
    const A = `${aPub}:${aEp!.sport}`;
    const B = `${bPub}:${bEp!.sport}`;
    const token = aEp!.payload.subarray(0, 8);
    // relayed DATA (the enclosed type byte at 16 + 8), not the creation's CREATE / REPLY
    const relayedToB = recs.filter(
      (r) =>
        r.src === dirIp &&
        r.dst === bPub &&
        r.dport === bEp!.sport &&
        r.payload[8] === RELAY &&
        r.payload[24] === DATA,
    );
    const relayedFromA = recs.filter(
      (r) => r.src === aPub && r.sport === aEp!.sport && r.payload[8] === RELAY && r.payload[24] === DATA,
    );
    const relayedToA = recs.filter(
      (r) => r.src === dirIp && r.dst === aPub && r.dport === aEp!.sport && r.payload[8] === RELAY,
    );
    expect(relayedToB.length).toBeGreaterThan(5);
    const innerTid = relayedToA[0]!.payload.subarray(16, 24); // the relayed tunnel's TID
    const dirTid = recs
      .find((r) => r.src === dirIp && r.dst === aPub && r.payload[8] === DATA && r.payload.length > 16)!
      .payload.subarray(0, 8); // a1's tunnel to the directory
    const hex = (...parts: Buffer[]) => Buffer.concat(parts).toString("hex");
    const rand = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256)));
    const tail = (type: number) => Buffer.from([type, 0, 0, 0, 0, 0, 0, 0]);
    /** a DATA header's type and counter, the counter far above any window (not "too old") */
    const dataHigh = Buffer.from([DATA, 0, 0, 0, 0, 0x7f, 0xff, 0xff]);
    const zero7 = Buffer.alloc(7);
    // the notice body an attacker would like a1 to act on: punch x (kind 1, b1's key unknown: any)
    // (its key's 7th byte lands on the outer type byte: 0xee, no packet type)
    const noticeKey = rand(32);
    noticeKey[6] = 0xee;
    const noticeBody = Buffer.concat([
      Buffer.from([1, 1]),
      noticeKey,
      token,
      Buffer.from([1, 4, ...xIp.split(".").map(Number), 0x9c, 0x40]), // 1 candidate: x:40000
    ]);
    console.log(
      `attacker learned: a1 at ${A}, b1 at ${B}, token ${token.toString("hex")}, TIDs relayed ${innerTid.toString("hex")} dir ${dirTid.toString("hex")}`,
    );

    const attacks: {
      name: string;
      victim: string;
      sends: Send[];
      /** counters that must grow by exactly n */
      exact?: [kind: "drops" | "events", key: string, n: number][];
      /** the sum of the victim's drops must grow by at least this */
      anyDrops?: number;
    }[] = [
      {
        name: "PUNCH to a1, spoofed from the directory",
        victim: "a1",
        sends: [
          { src: `${dirIp}:7000`, dst: A, hex: [hex(rand(8), Buffer.from([PUNCH]), zero7)], copies: N },
        ],
        exact: [["events", "punchesReceived", N]],
      },
      {
        name: "PUNCH-looking datagrams (17 bytes; nonzero reserved byte) to a1",
        victim: "a1",
        sends: [
          {
            src: `${dirIp}:7000`,
            dst: A,
            hex: [
              hex(rand(8), Buffer.from([PUNCH]), zero7, Buffer.from([0])),
              hex(rand(8), tail(PUNCH).fill(1, 7)),
            ],
            copies: N / 2,
          },
        ],
        exact: [
          ["drops", "malformed", N],
          ["events", "punchesReceived", 0],
        ],
      },
      {
        name: "RELAY with the observed token to a1, spoofed from the directory: garbage under the relayed TID",
        victim: "a1",
        sends: [
          {
            src: `${dirIp}:7000`,
            dst: A,
            hex: [hex(token, tail(RELAY), innerTid, dataHigh, rand(120))],
            copies: N,
          },
        ],
        exact: [
          ["drops", "auth", N],
          ["events", "natRelayedRx", N],
        ],
      },
      {
        name: "RELAY with an unknown token to a1, spoofed from the directory",
        victim: "a1",
        sends: [
          {
            src: `${dirIp}:7000`,
            dst: A,
            hex: [hex(rand(8), tail(RELAY), innerTid, dataHigh, rand(120))],
            copies: N,
          },
        ],
        exact: [["drops", "natRelayUnknown", N]],
      },
      {
        name: "RELAY with the observed token to a1's public endpoint from the attacker's own address",
        victim: "a1",
        sends: [{ dst: A, hex: [hex(token, tail(RELAY), innerTid, dataHigh, rand(120))], copies: N }],
        // NAT a has no mapping for the attacker: nothing reaches a1
        exact: [["events", "natRelayedRx", 0]],
      },
      {
        name: "replayed relayed datagrams to b1, spoofed from the directory",
        victim: "b1",
        sends: [
          { src: `${dirIp}:7000`, dst: B, hex: relayedToB.slice(0, N).map((r) => r.payload.toString("hex")) },
        ],
        exact: [["drops", "replay", Math.min(N, relayedToB.length)]],
      },
      {
        name: "replayed relayed datagrams through the relay, spoofed from a1's public endpoint",
        victim: "b1",
        sends: [
          {
            src: A,
            dst: `${dirIp}:7000`,
            hex: relayedFromA.slice(0, N).map((r) => r.payload.toString("hex")),
          },
        ],
        exact: [["drops", "replay", Math.min(N, relayedFromA.length)]],
      },
      {
        name: "RELAY with the observed token to the relay from the attacker's own address",
        victim: "dir",
        sends: [
          {
            dst: `${dirIp}:7000`,
            hex: [hex(token, tail(RELAY), innerTid, dataHigh, rand(120))],
            copies: N,
          },
        ],
        exact: [
          ["drops", "relaySource", N],
          ["events", "relayPackets", 0],
        ],
      },
      {
        name: "PUNCH to the directory from the attacker's own address",
        victim: "dir",
        sends: [{ dst: `${dirIp}:7000`, hex: [hex(rand(8), Buffer.from([PUNCH]), zero7)], copies: N }],
        exact: [["events", "punchesReceived", N]],
      },
      {
        name: "a DIR_NOTICE body outside any tunnel to a1, spoofed from the directory",
        victim: "a1",
        sends: [{ src: `${dirIp}:7000`, dst: A, hex: [hex(noticeBody)], copies: N }],
        // (a1's own notices from the directory go on: its upgrade attempts)
        exact: [["drops", "malformed", N]],
      },
      {
        name: "a DIR_NOTICE frame in clear in a DATA packet under a1's directory-tunnel TID, spoofed from the directory",
        victim: "a1",
        sends: [
          {
            src: `${dirIp}:7000`,
            dst: A,
            hex: [hex(dirTid, dataHigh, Buffer.from([22, 0, noticeBody.length]), noticeBody, rand(16))],
            copies: N,
          },
        ],
        exact: [["drops", "auth", N]],
      },
    ];

    const lines: string[] = [];
    for (const at of attacks) {
      const before = await statusJson(at.victim);
      const t0 = Date.now() / 1000;
      const r = await forge(at.sends);
      await new Promise((res) => setTimeout(res, 500));
      const after = await statusJson(at.victim);
      const t1 = Date.now() / 1000;
      const grew = Object.keys(after.drops)
        .map((k) => [k, delta(before, after, "drops", k)] as const)
        .filter(([, v]) => v !== 0);
      lines.push(
        `${at.name}: sent ${r.sent}, answers ${r.answers}, ${at.victim} drops ${JSON.stringify(Object.fromEntries(grew))}`,
      );
      expect(r.answers, `${at.name}: the attacker's sockets heard nothing`).toBe(0);
      for (const [kind, k, n] of at.exact ?? [])
        expect(delta(before, after, kind, k), `${at.name}: ${kind}.${k}`).toBe(n);
      if (at.anyDrops)
        expect(
          grew.reduce((s, [, v]) => s + v, 0),
          `${at.name}: counted drops`,
        ).toBeGreaterThanOrEqual(at.anyDrops);
      // the victims did not answer: no PUNCH or RELAY datagram from either host to the
      // directory in the attack window (their upgrade attempts are over; no traffic runs)
      if (at.victim !== "dir") {
        const answered = readUdp(dirPcap).filter(
          (x: UdpRecord) =>
            x.ts >= t0 &&
            x.ts <= t1 &&
            (x.src === aPub || x.src === bPub) &&
            x.dport === 7000 &&
            [PUNCH, RELAY].includes(x.payload[8]!),
        );
        // the one expected exception: the relay forwards what the spoofed pair host "sent"
        if (!at.name.includes("through the relay"))
          expect(answered.length, `${at.name}: datagrams in answer`).toBe(0);
      }
    }
    console.log(`NAT attacks:\n  ${lines.join("\n  ")}`);

    // no state changed: the same relayed path both ways, the directory tunnels where they were
    expect(await w.tunnelEndpoint("a1", "b1")).toBe(relayA);
    expect(await w.tunnelEndpoint("b1", "a1")).toBe(relayB);
    const dirView = (await w.status("a1")).directory?.client?.directories[0];
    expect(dirView?.registered).toBe(true);
    const c1 = await curlTimed(w.net.host("a1").ns, "http://b1.mesh:8080/f", { maxTimeS: 10 });
    expect(c1.code, c1.stderr).toBe(200);
    const c2 = await curlTimed(w.net.host("b1").ns, "http://a1.mesh:8080/f", { maxTimeS: 10 });
    expect(c2.code, c2.stderr).toBe(200);
    // nothing at all reached the attacker's address (a1 never punched the candidate it named)
    await xCap.stop();
    expect(readUdp(path.join(w.pki.dir, "x.pcap"))).toEqual([]);
  }, 120_000);
});
