/**
 * Rendezvous, directory side (issue 17; docs/PROTOCOL.md 8b). When host A looks up host B
 * and B is behind a NAT (the address the directory observed is none of the addresses B
 * signed), direct sends from A are not known to work: B's NAT lets in only replies. So,
 * before the lookup answer leaves, the directory sends two DIR_NOTICE frames, each inside
 * the receiver's own authenticated tunnel:
 *
 *   to B  PUNCH  A's key, the pair's relay token, A's candidates (observed + signed)
 *   to A  PEER   B's key, the same token, B's candidates
 *
 * B sends PUNCH datagrams to A's candidates (its NAT then lets A's CREATE in) while A sends
 * its 0-RTT CREATE to B; if no REPLY comes, A resends the creation through the relay
 * (relay.ts): this directory when it serves one, else a relay host (relaybroker.ts), which
 * both ends learn from a VIA notice sent before the others. Candidates are only hints: every tunnel made with
 * them authenticates the host end to end, and an endpoint moves only on an authenticated
 * packet.
 *
 * Bounds: notices per looking-up host (a token bucket: `perSec`, `burst`), one pair at most
 * once per PAIR_MIN_INTERVAL_MS, at most NOTICE_MAX_CANDIDATES candidates each. What a
 * notice makes its receiver send is bounded on the receiver (nat.ts).
 */
import type { Engine } from "../tunnel/engine.js";
import type { Tunnel } from "../tunnel/tunnel.js";
import { type Logger, nullLogger } from "../log.js";
import { decodeAddrRecord, isRelayAddr } from "../wire/addr.js";
import { decodeEphemeral } from "../wire/cert.js";
import { FrameType } from "../wire/frames.js";
import { type Candidate, NOTICE_MAX_CANDIDATES, encodeNotice } from "../wire/nat.js";
import { encodeVia } from "../wire/relaynotice.js";
import type { RelayServer } from "./relay.js";
import type { RelayBroker } from "./relaybroker.js";
import type { StoredRecord } from "./store.js";

/** A pair gets at most one rendezvous per this interval (retries of one lookup, both directions). */
export const PAIR_MIN_INTERVAL_MS = 1_000;

export interface RendezvousOptions {
  perSec: number;
  burst: number;
  /** hosts whose signed candidates are remembered (bounded, oldest dropped) */
  maxHosts: number;
}

export const RENDEZVOUS_DEFAULTS: RendezvousOptions = { perSec: 5, burst: 10, maxHosts: 100_000 };

export function newRendezvousEvents() {
  return {
    /** rendezvous made (two notices sent) */
    rdvSent: 0,
    /** lookups of a NATed host whose rendezvous was skipped: same pair just now, or the target has no tunnel here */
    rdvSkipped: 0,
  };
}

export function newRendezvousDrops() {
  return {
    /** rendezvous refused: the looking-up host is over its notice rate */
    rdvRateLimited: 0,
  };
}

export class Rendezvous {
  readonly events = newRendezvousEvents();
  readonly drops = newRendezvousDrops();
  /** signed candidates of each host, from its last registration */
  private readonly signed = new Map<string, Candidate[]>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly pairs = new Map<string, number>();
  private lastSweep = 0;

  constructor(
    private readonly engine: Engine,
    private readonly relay: RelayServer | null,
    private readonly o: RendezvousOptions = RENDEZVOUS_DEFAULTS,
    private readonly log: Logger = nullLogger,
  ) {}

  /** relay hosts (relaybroker.ts): used when this directory does not relay itself */
  broker: RelayBroker | null = null;

  /** Whether host `k` (latin1) signed the address its tunnel `t` is seen at (no NAT in front of it). */
  isPublic(k: string, t: Tunnel): boolean {
    const seen = decodeAddrRecord(t.endpoint, 0);
    return (this.signed.get(k) ?? []).some((c) => c.ip === seen.ip && c.port === seen.port);
  }

  /** A registration verified: remember the addresses the host signed. */
  registered(hostKey: Buffer, endpoints: readonly Candidate[]): void {
    const k = hostKey.latin1Slice(0, 32);
    this.signed.delete(k);
    if (this.signed.size >= this.o.maxHosts) this.signed.delete(this.signed.keys().next().value!);
    this.signed.set(
      k,
      endpoints.slice(0, NOTICE_MAX_CANDIDATES).map((e) => ({ ip: e.ip, port: e.port })),
    );
  }

  /**
   * Host `t.peer` asked for record `r` and is about to get it: send the notices first (the
   * same tunnel keeps order, so A holds the relay token before it holds the record).
   */
  onLookup(t: Tunnel, r: StoredRecord, now: number): void {
    const a = t.peer.hostCert?.publicKey;
    if (!a || !r.observed) return;
    const b = Buffer.from(r.key, "hex");
    if (b.length !== 32 || a.equals(b)) return;
    const eph = decodeEphemeral(r.eph);
    if (!eph) return;
    // B reachable as it is: it signed the very address we see it at (no NAT in front of it)
    if (eph.endpoints.some((e) => e.ip === r.observed!.ip && e.port === r.observed!.port)) return;
    const ka = a.latin1Slice(0, 32);
    const kb = b.latin1Slice(0, 32);
    const pk = ka < kb ? ka + kb : kb + ka;
    const last = this.pairs.get(pk);
    const tb = this.engine.peers.get(kb)?.sendTunnel();
    if (
      (last !== undefined && now - last < PAIR_MIN_INTERVAL_MS) ||
      !tb ||
      !tb.canSend ||
      isRelayAddr(t.endpoint)
    ) {
      this.events.rdvSkipped++;
      return;
    }
    if (!this.take(ka, now)) {
      this.drops.rdvRateLimited++;
      return;
    }
    this.pairs.set(pk, now);
    let token = this.relay ? this.relay.pairFor(a, b, now) : null;
    const via = token === null ? (this.broker?.pick(a, b, now) ?? null) : null;
    if (via) {
      // a relay host: both ends learn it (and create a tunnel to it) before they need it
      const n = { token: via.token, relayKey: via.key, relayName: via.name };
      this.engine.sendFrame(tb, FrameType.DirNotice, encodeVia({ peerKey: a, ...n }), now);
      this.engine.sendFrame(t, FrameType.DirNotice, encodeVia({ peerKey: b, ...n }), now);
      token = null;
    }
    const seen = decodeAddrRecord(t.endpoint, 0);
    const aCands = dedupe([{ ip: seen.ip, port: seen.port }, ...(this.signed.get(ka) ?? [])]);
    const bCands = dedupe([r.observed, ...eph.endpoints.map((e) => ({ ip: e.ip, port: e.port }))]);
    this.engine.sendFrame(
      tb,
      FrameType.DirNotice,
      encodeNotice({ kind: "punch", peerKey: a, token, candidates: aCands }),
      now,
    );
    this.engine.sendFrame(
      t,
      FrameType.DirNotice,
      encodeNotice({ kind: "peer", peerKey: b, token, candidates: bCands }),
      now,
    );
    this.events.rdvSent++;
    this.log.log("debug", "rendezvous", {
      from: t.peer.name,
      to: r.name,
      relay: via ? via.name : token !== null ? "directory" : "none",
    });
  }

  private take(k: string, now: number): boolean {
    let b = this.buckets.get(k);
    if (!b) {
      if (this.buckets.size >= this.o.maxHosts) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.o.burst, at: now };
      this.buckets.set(k, b);
    }
    b.tokens = Math.min(this.o.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.o.perSec);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  tick(now: number): void {
    if (now - this.lastSweep < 10_000) return;
    this.lastSweep = now;
    for (const [k, at] of this.pairs) if (now - at > 60_000) this.pairs.delete(k);
    for (const [k, b] of this.buckets) if (now - b.at > 60_000) this.buckets.delete(k);
  }
}

function dedupe(cs: Candidate[]): Candidate[] {
  const out: Candidate[] = [];
  for (const c of cs) {
    if (c.port === 0 || out.some((x) => x.ip === c.ip && x.port === c.port)) continue;
    out.push(c);
    if (out.length === NOTICE_MAX_CANDIDATES) break;
  }
  return out;
}
