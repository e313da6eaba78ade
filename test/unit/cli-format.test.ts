/**
 * Status that reads right: human units in the text output (durations, key ids in hex, the
 * reason a record is missing, TCP flows the kernels closed), raw numbers in --json.
 */
import { describe, expect, it } from "vitest";
import { ago, duration, durationMs, keyIdHex, recordText } from "../../src/cli/format.js";
import { formatStatus } from "../../src/cli/commands/status.js";
import { formatPeers } from "../../src/cli/commands/ops.js";
import { Conn, FlowScratch, noteTcpClose, parseFlow, tcpCloseState } from "../../src/conn/conns.js";
import type { Status } from "../../src/daemon/status.js";

describe("durations and key ids", () => {
  it.each([
    [31535958, "364d 23h"],
    [365 * 86400, "1y"],
    [400 * 86400 + 7200, "1y 35d"],
    [90061, "1d 1h"],
    [86400, "1d"],
    [3600 * 5 + 61, "5h 1m"],
    [303, "5m 3s"],
    [60, "1m"],
    [42, "42s"],
    [0, "0s"],
    [-303, "-5m 3s"],
  ])("duration(%d) = %s", (sec, text) => expect(duration(sec)).toBe(text));

  it("milliseconds, ago, hex key ids", () => {
    expect(durationMs(850)).toBe("850ms");
    expect(durationMs(2500)).toBe("2.5s");
    expect(durationMs(125_000)).toBe("2m 5s");
    expect(ago(-1)).toBe("never");
    expect(ago(3_600_000)).toBe("1h ago");
    expect(keyIdHex(3735928559)).toBe("deadbeef");
    expect(keyIdHex(7)).toBe("00000007");
  });

  it("the record column: key and time left, or why not fetched", () => {
    expect(recordText({ record: { keyId: 0xa1b2c3d4, expiresInSec: 600_000 } })).toBe(
      "key a1b2c3d4, 6d 22h left",
    );
    expect(
      recordText({
        record: { keyId: 1, expiresInSec: -303 },
        recordProblem: { reason: "expired", detail: null, attempts: 0 },
      }),
    ).toBe("key 00000001 expired 5m 3s ago");
    expect(
      recordText({
        record: null,
        recordProblem: { reason: "refused", detail: "certificate expired", attempts: 2 },
      }),
    ).toBe("not fetched: refused (certificate expired)");
    expect(recordText({ record: null })).toBe("not fetched"); // an older daemon gives no reason
  });
});

const STATUS: Status = {
  host: { name: "a", key: "aaaa", ip4: "10.77.0.1", ip6: null, subnets: [] },
  listen: "0.0.0.0:7000",
  tun: "mt0",
  uptimeSec: 31535958,
  ephemeral: [{ keyId: 0xdeadbeef, expiresInSec: 250 }],
  tunnels: [
    {
      peer: "gw",
      role: "initiator",
      state: "established",
      endpoint: "192.0.2.1:7000",
      session: "s1",
      aead: "chacha20-poly1305",
      ageMs: 7_384_000,
      epoch: 2,
      lastRekeyMsAgo: -1,
      lastRxMsAgo: 1500,
      rxPackets: 3,
      rxBytes: 300,
      txPackets: 4,
      txBytes: 400,
      rekeys: 0,
      roams: 0,
      rttMs: 1,
      path: "direct",
    },
  ],
  peers: [
    {
      name: "gw",
      key: "gggg",
      ip4: "10.77.0.9",
      ip6: null,
      subnets: [],
      endpoint: "192.0.2.1:7000",
      configured: true,
      record: { keyId: 0x0badf00d, expiresInSec: 86_400 * 3 },
      recordProblem: null,
      tunnels: 1,
    },
    {
      name: "b",
      key: null,
      ip4: null,
      ip6: null,
      subnets: [],
      endpoint: "192.0.2.2:7000",
      configured: true,
      record: null,
      recordProblem: { reason: "refused", detail: "certificate wrong-issuer", attempts: 1 },
      tunnels: 0,
    },
  ],
  drops: {},
  events: {},
  dos: { puzzling: false, difficulty: 0, maxDifficultyReached: 0, offeredCreatesPerSec: 0, sources: 0 },
  devices: {},
};

describe("mintun status and peers text", () => {
  it("shows human durations, hex key ids and the reason a record is missing", () => {
    const t = formatStatus(STATUS);
    expect(t).toContain("up 364d 23h");
    expect(t).not.toContain("31535958");
    expect(t).toContain("ephemeral keys: deadbeef (4m 10s left)");
    expect(t).toMatch(/^gw\s+initiator\s+established\s+direct\s+192\.0\.2\.1:7000\s+2h 3m\s+1ms\s+2\s/m);
    expect(t).toMatch(/1\.5s ago\s+never\s+s1$/m);
    expect(t).toMatch(/^gw .*key 0badf00d, 3d left$/m);
    expect(t).toMatch(/^b .*not fetched: refused \(certificate wrong-issuer\)$/m);
    const p = formatPeers(STATUS);
    expect(p).toMatch(/^b .*not fetched: refused \(certificate wrong-issuer\)\s+0 B\s+0 B$/m);
  });
});

/** An IPv4 TCP segment 10.0.0.1:4000 -> 10.0.0.2:80 with the given flags (or reversed). */
function tcp(flags: number, reverse = false): Buffer {
  const b = Buffer.alloc(40);
  b[0] = 0x45;
  b.writeUInt16BE(40, 2);
  b[8] = 64;
  b[9] = 6;
  Buffer.from(reverse ? [10, 0, 0, 2, 10, 0, 0, 1] : [10, 0, 0, 1, 10, 0, 0, 2]).copy(b, 12);
  b.writeUInt16BE(reverse ? 80 : 4000, 20);
  b.writeUInt16BE(reverse ? 4000 : 80, 22);
  b[32] = 0x50;
  b[33] = flags;
  return b;
}

describe("TCP flows the kernels closed", () => {
  const SYN = 0x02;
  const ACK = 0x10;
  const FIN = 0x01;
  const RST = 0x04;
  const f = new FlowScratch();
  const see = (c: Conn, flags: number, fromLocal: boolean) => {
    const p = tcp(flags, !fromLocal);
    expect(parseFlow(p, 0, p.length, f)).toBe(true);
    noteTcpClose(c, p, 0, p.length, f, fromLocal);
  };

  it("FIN one way is closing, both ways closed, RST closed, a new SYN opens again", () => {
    const c = new Conn(1, true, 6, 4, 4000, 80, 0, 0);
    see(c, SYN, true);
    see(c, SYN | ACK, false);
    expect(tcpCloseState(c)).toBeNull();
    see(c, FIN | ACK, true);
    expect(tcpCloseState(c)).toBe("closing");
    see(c, FIN | ACK, true); // a retransmitted FIN is still one way
    expect(tcpCloseState(c)).toBe("closing");
    see(c, FIN | ACK, false);
    expect(tcpCloseState(c)).toBe("closed");
    see(c, SYN, true);
    expect(tcpCloseState(c)).toBeNull();
    see(c, RST | ACK, false);
    expect(tcpCloseState(c)).toBe("closed");
  });

  it("a segment cut before its flags changes nothing", () => {
    const c = new Conn(1, true, 6, 4, 4000, 80, 0, 0);
    const p = tcp(RST);
    expect(parseFlow(p, 0, p.length, f)).toBe(true);
    noteTcpClose(c, p, 0, 33, f, true);
    expect(tcpCloseState(c)).toBeNull();
  });
});
