/**
 * The metrics follow Prometheus conventions (test/tools/prom-lint.ts: parsed with a
 * Prometheus text parser from npm, then the naming rules), the new gauges carry what they
 * say, and per-peer series end when the peer goes.
 */
import { describe, expect, it } from "vitest";
import {
  createRegistry,
  DEVICE_COUNTERS,
  METRIC_NAMES,
  snake,
  type Observation,
} from "../../src/daemon/metrics.js";
import { PeerTotals } from "../../src/daemon/history.js";
import type { Status, TunnelStatus } from "../../src/daemon/status.js";
import { lintExposition, type Family } from "../tools/prom-lint.js";

const NOW = 1_800_000_000_000;

function tunnel(peer: string, session: string, ageMs: number, lastRekeyMsAgo: number): TunnelStatus {
  return {
    peer,
    role: "initiator",
    state: "established",
    endpoint: "192.0.2.1:7000",
    session,
    aead: "chacha20-poly1305",
    ageMs,
    epoch: 1,
    lastRekeyMsAgo,
    lastRxMsAgo: 5,
    rxPackets: 3,
    rxBytes: 300,
    txPackets: 4,
    txBytes: 400,
    rekeys: 1,
    roams: 0,
    rttMs: 1,
    path: "direct",
  };
}

function status(peers: string[], tunnels: TunnelStatus[]): Status {
  return {
    host: {
      name: "a",
      key: "aaaa",
      ip4: "10.77.0.1",
      ip6: null,
      subnets: [],
      certNotAfter: 1_900_000_000,
      caNotAfter: 2_000_000_000,
    },
    listen: "0.0.0.0:7000",
    tun: "mt0",
    uptimeSec: 5,
    ephemeral: [{ keyId: 1, expiresInSec: 100 }],
    tunnels,
    peers: peers.map((name, i) => ({
      name,
      key: "k",
      ip4: null,
      ip6: null,
      subnets: [],
      endpoint: null,
      configured: true,
      record: null,
      certNotAfter: 1_850_000_000 + i,
      tunnels: 1,
    })),
    drops: { auth: 2, unknownTid: 1, connTableFull: 0 },
    events: { tunnelsCreated: 1, rekeys: 2, roams: 1, zeroRttPackets: 5 },
    dos: {
      puzzling: false,
      difficulty: 0,
      maxDifficultyReached: 0,
      offeredCreatesPerSec: 3,
      offeredCreates: 42,
      sources: 1,
    },
    // every device counter the TUN and UDP devices have, so each is mapped and linted
    devices: {
      tun: Object.fromEntries(Object.keys(DEVICE_COUNTERS).map((k, i) => [k, i + 1])),
      udp: Object.fromEntries(Object.keys(DEVICE_COUNTERS).map((k, i) => [k, 100 + i])),
    },
    directory: {
      client: {
        directories: [
          {
            endpoint: "192.0.2.9:7000",
            name: "dir1",
            state: "up",
            registered: true,
            observed: null,
            lastAnswerMsAgo: 2000,
          },
          {
            endpoint: "192.0.2.10:7000",
            name: null,
            state: "no-record",
            registered: false,
            observed: null,
            lastAnswerMsAgo: null,
          },
        ],
        cachedRecords: 1,
        negative: 0,
        inflight: 0,
        pendingTargets: 0,
      },
      server: null,
    } as unknown as Status["directory"],
  };
}

const ALICE = { uid: 1000, osUser: "alice", name: "alice", notAfter: 1_870_000_000 };

function observation(s: Status, totals: PeerTotals, users: Observation["users"] = [ALICE]): Observation {
  const { perPeer, all } = totals.update(s.tunnels, new Set(s.peers.map((p) => p.name)));
  return {
    now: NOW,
    status: s,
    perPeer,
    all,
    reloads: { ok: 1, failed: 0, lastOk: true },
    startedAt: NOW - 5000,
    version: "0.1.0",
    users,
  };
}

async function scrape(o: Observation): Promise<{ text: string; families: Family[]; problems: string[] }> {
  const text = await createRegistry(() => o, false).metrics();
  return { text, ...lintExposition(text) };
}

const value = (fs: Family[], name: string, labels: Record<string, string> = {}): number | null => {
  const m = fs
    .find((f) => f.name === name)
    ?.metrics.find((x) => JSON.stringify(x.labels ?? {}) === JSON.stringify(labels));
  return m ? Number(m.value) : null;
};

describe("metrics by Prometheus conventions", () => {
  it("parse with a Prometheus parser and follow the naming rules; every listed metric is there", async () => {
    const totals = new PeerTotals();
    const { families, problems } = await scrape(
      observation(status(["gw"], [tunnel("gw", "s1", 60_000, 10_000)]), totals),
    );
    expect(problems).toEqual([]);
    expect(
      families
        .filter((f) => f.name.startsWith("mintun_"))
        .map((f) => f.name)
        .sort(),
    ).toEqual([...METRIC_NAMES].sort());
    // one metric per meaning: bytes, packets and errors of the devices are apart
    expect(value(families, "mintun_device_bytes_total", { device: "tun", direction: "rx" })).toBe(
      Object.keys(DEVICE_COUNTERS).indexOf("rxBytes") + 1,
    );
    expect(value(families, "mintun_device_errors_total", { device: "udp", direction: "tx" })).toBe(
      100 + Object.keys(DEVICE_COUNTERS).indexOf("txErrors"),
    );
    // snake_case label values; rekeys only in their own counter
    expect(value(families, "mintun_drops_total", { reason: "unknown_tid" })).toBe(1);
    expect(value(families, "mintun_events_total", { event: "zero_rtt_packets" })).toBe(5);
    expect(value(families, "mintun_events_total", { event: "rekeys" })).toBeNull();
    expect(value(families, "mintun_rekeys_total")).toBe(2);
    expect(value(families, "mintun_dos_offered_creates_total")).toBe(42);
    expect(value(families, "mintun_directories", { state: "no_record" })).toBe(1);
  });

  it("the linter finds what breaks the rules (so the test above can fail)", () => {
    const text = [
      "# HELP mintun_x_total a",
      "# TYPE mintun_x_total gauge",
      "mintun_x_total 1",
      "# HELP mintun_y a",
      "# TYPE mintun_y counter",
      'mintun_y{stat="rxBytes"} 1',
      "# HELP mintun_lag_ms a",
      "# TYPE mintun_lag_ms gauge",
      "mintun_lag_ms 1",
      "# HELP mintun_creates_per_second a",
      "# TYPE mintun_creates_per_second gauge",
      "mintun_creates_per_second 1",
      "# HELP mintun_cert_expiry a",
      "# TYPE mintun_cert_expiry gauge",
      "mintun_cert_expiry 1",
      "",
    ].join("\n");
    const { problems } = lintExposition(text);
    expect(problems).toEqual([
      "mintun_x_total: a gauge must not end in _total",
      "mintun_y: a counter must end in _total",
      'mintun_y: label value stat="rxBytes" not snake_case',
      "mintun_lag_ms: not in a base unit (seconds, bytes, ratios 0..1)",
      "mintun_creates_per_second: a rate: export a counter, PromQL takes rates",
      "mintun_cert_expiry: a time must be in _seconds",
    ]);
    expect(() => lintExposition('mintun_a{x="1" 2\n')).toThrow(/invalid line/);
    expect(lintExposition("mintun_broken{ 1\n").problems).toEqual([
      "mintun_broken: no HELP",
      "mintun_broken: no TYPE",
      "mintun_broken: value '' is not a number",
    ]);
    expect(snake("unknownTid")).toBe("unknown_tid");
    expect(snake("no-record")).toBe("no_record");
  });

  it("certificate expiry (own, CA, peers), last handshake and rekey per peer, directory health", async () => {
    const { families } = await scrape(
      observation(
        status(
          ["gw", "b"],
          [tunnel("gw", "s1", 60_000, 10_000), tunnel("gw", "s2", 5_000, -1), tunnel("b", "s3", 1_000, -1)],
        ),
        new PeerTotals(),
      ),
    );
    expect(value(families, "mintun_certificate_expiry_timestamp_seconds", { kind: "host" })).toBe(
      1_900_000_000,
    );
    expect(value(families, "mintun_certificate_expiry_timestamp_seconds", { kind: "ca" })).toBe(
      2_000_000_000,
    );
    expect(value(families, "mintun_peer_certificate_expiry_timestamp_seconds", { peer: "b" })).toBe(
      1_850_000_001,
    );
    expect(value(families, "mintun_peer_last_handshake_timestamp_seconds", { peer: "gw" })).toBe(
      NOW / 1000 - 5,
    );
    expect(value(families, "mintun_peer_last_rekey_timestamp_seconds", { peer: "gw" })).toBe(NOW / 1000 - 10);
    expect(value(families, "mintun_peer_last_rekey_timestamp_seconds", { peer: "b" })).toBeNull(); // never rekeyed
    expect(value(families, "mintun_directory_up", { directory: "dir1" })).toBe(1);
    expect(value(families, "mintun_directory_up", { directory: "192.0.2.10:7000" })).toBe(0);
    expect(value(families, "mintun_directory_last_answer_timestamp_seconds", { directory: "dir1" })).toBe(
      NOW / 1000 - 2,
    );
  });

  it("user certificate expiry: one series per local user, gone when the user is removed", async () => {
    const s = status(["gw"], []);
    const bob = { uid: 1001, osUser: "bob", name: "bob.smith", notAfter: 1_860_000_000 };
    const two = await scrape(observation(s, new PeerTotals(), [ALICE, bob]));
    expect(two.problems).toEqual([]);
    expect(
      value(two.families, "mintun_user_certificate_expiry_timestamp_seconds", { user: "alice", uid: "1000" }),
    ).toBe(1_870_000_000);
    expect(
      value(two.families, "mintun_user_certificate_expiry_timestamp_seconds", {
        user: "bob.smith",
        uid: "1001",
      }),
    ).toBe(1_860_000_000);
    const one = await scrape(observation(s, new PeerTotals(), [ALICE]));
    expect(one.text).not.toMatch(/bob/);
    const none = await scrape(observation(s, new PeerTotals(), []));
    expect(none.text).not.toMatch(/mintun_user_certificate_expiry_timestamp_seconds\{/);
  });

  it("per-peer series end when the peer goes; the overall totals do not go down", async () => {
    const totals = new PeerTotals();
    const both = await scrape(
      observation(status(["gw", "b"], [tunnel("gw", "s1", 1, -1), tunnel("b", "s2", 1, -1)]), totals),
    );
    expect(value(both.families, "mintun_peer_rx_bytes_total", { peer: "b" })).toBe(300);
    expect(value(both.families, "mintun_rx_bytes_total")).toBe(600);
    // b's tunnel closed, b still configured: its totals stay
    const closed = await scrape(observation(status(["gw", "b"], [tunnel("gw", "s1", 1, -1)]), totals));
    expect(value(closed.families, "mintun_peer_rx_bytes_total", { peer: "b" })).toBe(300);
    // b removed from the config: its series are gone, the overall total keeps its bytes
    const gone = await scrape(observation(status(["gw"], [tunnel("gw", "s1", 1, -1)]), totals));
    expect(gone.text).not.toMatch(/peer="b"/);
    expect(value(gone.families, "mintun_rx_bytes_total")).toBe(600);
  });
});
