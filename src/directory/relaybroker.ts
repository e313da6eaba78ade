/**
 * Relay hosts, directory side (issue 17; docs/PROTOCOL.md 8b "Relay hosts"). A host with
 * `relay: { serve: true }` that is not a directory sends an OFFER notice inside its own
 * authenticated tunnel to the directory (every OFFER_EVERY_MS); the directory takes it only
 * from hosts named in its `relay.hosts` (the certificate name the tunnel proved: being a relay
 * shows a host who talks to whom, so the operator chooses). When a rendezvous needs a relay
 * and this directory does not serve one itself, the broker picks an offering host:
 *
 *   - offered within OFFER_TTL_MS, with an established tunnel to this directory now;
 *   - reachable as it is: the address the directory sees its tunnel at is one it signed
 *     (no NAT in front of it, so any host can create a tunnel to it);
 *   - neither host of the pair; among those, the one with the fewest pairs here.
 *
 * It keeps the pair's token (random, 8 bytes) while the pair is used, and sends the relay
 * host a PAIR notice (token, both host keys) in the relay's tunnel on every rendezvous, so
 * a relay that forgot the pair (idle, restarted) learns it again. The end hosts get a VIA
 * notice (rendezvous.ts). Nothing unauthenticated reaches this file: offers and pairs
 * travel in tunnels, and the relay learns the end hosts' endpoints from their own tunnels
 * to it (relay.ts).
 */
import type { Engine } from "../tunnel/engine.js";
import type { Peer, Tunnel } from "../tunnel/tunnel.js";
import { isRelayAddr } from "../wire/addr.js";
import { randomBytes } from "../crypto/sodium.js";
import { FrameType } from "../wire/frames.js";
import { encodePair, isOffer } from "../wire/relaynotice.js";

/** relay hosts renew their offer this often, and the directory forgets it after OFFER_TTL_MS */
export const OFFER_EVERY_MS = 20_000;
export const OFFER_TTL_MS = 60_000;
/** a pair's relay and token are kept this long after its last rendezvous */
export const BROKER_PAIR_TTL_MS = 120_000;

export function newBrokerEvents() {
  return {
    /** relay offers taken from relay hosts (directory role) */
    relayOffers: 0,
    /** pairs handed to a relay host (PAIR notices sent) */
    relayHostPairs: 0,
  };
}

export function newBrokerDrops() {
  return {
    /** DIR_NOTICE frames sent to this directory that are no OFFER (or from a host without a certificate) */
    relayBadOffer: 0,
    /** offers from hosts not in relay.hosts */
    relayOfferRefused: 0,
  };
}

export interface PickedRelay {
  token: Buffer;
  peer: Peer;
  name: string;
  key: Buffer;
}

export class RelayBroker {
  readonly events = newBrokerEvents();
  readonly drops = newBrokerDrops();
  private readonly offers = new Map<string, number>();
  private readonly pairs = new Map<string, { relay: string; token: Buffer; at: number }>();
  private lastSweep = 0;
  private lastNow = 0;

  constructor(
    private readonly engine: Engine,
    /** whether the host (key, latin1) signed the address its tunnel is seen at */
    private readonly isPublic: (key: string, t: Tunnel) => boolean,
    /** the relay hosts (certificate names) whose offers are taken (relay.hosts) */
    private readonly allowed: ReadonlySet<string>,
    private readonly maxHosts = 10_000,
  ) {}

  /** A DIR_NOTICE frame in a host's tunnel to this directory: an OFFER, or a counted drop. */
  onOffer(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    const hc = t.peer.hostCert;
    if (!hc || !isOffer(buf, off, len)) {
      this.drops.relayBadOffer++;
      return;
    }
    if (!this.allowed.has(hc.name)) {
      this.drops.relayOfferRefused++;
      return;
    }
    const k = hc.publicKey.latin1Slice(0, 32);
    this.offers.delete(k);
    if (this.offers.size >= this.maxHosts) this.offers.delete(this.offers.keys().next().value!);
    this.offers.set(k, now);
    this.events.relayOffers++;
  }

  private usable(k: string, now: number): Tunnel | null {
    const at = this.offers.get(k);
    if (at === undefined || now - at > OFFER_TTL_MS) return null;
    const t = this.engine.peers.get(k)?.sendTunnel();
    if (!t || t.state !== "established" || !t.canSend || isRelayAddr(t.endpoint)) return null;
    return this.isPublic(k, t) ? t : null;
  }

  /** A relay host for the pair {a, b} (told the pair now), or null: none offered. */
  pick(a: Buffer, b: Buffer, now: number): PickedRelay | null {
    const ka = a.latin1Slice(0, 32);
    const kb = b.latin1Slice(0, 32);
    const pk = ka < kb ? ka + kb : kb + ka;
    let cur = this.pairs.get(pk);
    let t = cur ? this.usable(cur.relay, now) : null;
    if (!t) {
      const load = new Map<string, number>();
      for (const p of this.pairs.values()) load.set(p.relay, (load.get(p.relay) ?? 0) + 1);
      let best: string | null = null;
      for (const k of this.offers.keys()) {
        if (k === ka || k === kb || !this.usable(k, now)) continue;
        if (best === null || (load.get(k) ?? 0) < (load.get(best) ?? 0)) best = k;
      }
      if (best === null) return null;
      t = this.usable(best, now)!;
      if (this.pairs.size >= this.maxHosts) this.pairs.delete(this.pairs.keys().next().value!);
      cur = { relay: best, token: randomBytes(8), at: now };
      this.pairs.set(pk, cur);
    }
    cur!.at = now;
    this.engine.sendFrame(t, FrameType.DirNotice, encodePair({ a, token: cur!.token, b }), now);
    this.events.relayHostPairs++;
    const hc = t.peer.hostCert!;
    return { token: cur!.token, peer: t.peer, name: hc.name, key: hc.publicKey };
  }

  tick(now: number): void {
    this.lastNow = now;
    if (now - this.lastSweep < 10_000) return;
    this.lastSweep = now;
    for (const [k, at] of this.offers) if (now - at > OFFER_TTL_MS) this.offers.delete(k);
    for (const [k, p] of this.pairs) if (now - p.at > BROKER_PAIR_TTL_MS) this.pairs.delete(k);
  }

  /** relay hosts whose offer is current, and pairs handed to relay hosts (status) */
  state(): { offering: number; pairs: number } {
    let offering = 0;
    const now = this.lastNow;
    for (const at of this.offers.values()) if (now - at <= OFFER_TTL_MS) offering++;
    return { offering, pairs: this.pairs.size };
  }
}
