/**
 * Relay hosts, end-host side (issue 17; docs/PROTOCOL.md 8b "Relay hosts"), and the offer a
 * relay host makes to its directories.
 *
 * End host. A VIA notice (inside the tunnel to a configured directory) says: the pair with
 * peer P uses relay host R (key, name) under token T. The host looks R up by name (a
 * verified record whose host key must be R's, else nothing is used), creates an ordinary
 * tunnel to R, and from then on a datagram for the relayed path (relayAddr(RELAY_VIA_INDEX,
 * T)) goes to the endpoint of that tunnel with T in front; a RELAY datagram with T is taken
 * only from that endpoint. R is reachable as it is (the directory picks only relay hosts it
 * sees at an address they signed), so this works behind any NAT: R answers through the
 * mapping of our own tunnel to it, and R learns our endpoint from our authenticated packets.
 *
 *   VIA --> token T -> R; P's relayed path = relay:host/T (NatAgent.setRelay)
 *       --> no tunnel to R: look R up by name (at most every RELAY_OPEN_EVERY_MS), open one
 *           (again from the tick while a path through R is wanted and the tunnel is gone)
 *   send to relay:host/T  --> R's tunnel endpoint, RELAY(T) in front (none yet: unroutable)
 *   RELAY(T) from R's tunnel endpoint --> unwrapped, as from relay:host/T; from elsewhere: dropped
 *
 * Relay host. With `relay: { serve: true }` the host sends an OFFER notice on each
 * established tunnel to a directory, when it comes up and every OFFER_EVERY_MS, and takes
 * PAIR notices from its directories (RelayServer.addPair).
 *
 * Bounds: VIA notices at VIA_PER_SEC (burst VIA_BURST), MAX_RELAYS relay hosts, MAX_TOKENS
 * tokens (oldest dropped). A lying directory can name a relay that is not one: the tunnel to
 * it is an ordinary authenticated one, and relayed datagrams are sealed end to end.
 */
import type { Engine } from "../tunnel/engine.js";
import type { Peer } from "../tunnel/tunnel.js";
import { type Logger, nullLogger } from "../log.js";
import { RELAY_VIA_INDEX, addrEqual, isRelayAddr, relayAddr } from "../wire/addr.js";
import { FrameType } from "../wire/frames.js";
import { decodePair, decodeVia, encodeOffer } from "../wire/relaynotice.js";
import { OFFER_EVERY_MS } from "./relaybroker.js";
import type { ViaPaths } from "./nat.js";
import type { RelayServer } from "./relay.js";

export const VIA_PER_SEC = 10;
export const VIA_BURST = 20;
export const PAIR_PER_SEC = 200;
export const PAIR_BURST = 400;
export const MAX_RELAYS = 16;
export const MAX_TOKENS = 1_024;
export const RELAY_OPEN_EVERY_MS = 1_000;

export function newViaEvents() {
  return {
    /** VIA notices taken (a pair's relay is a relay host) */
    viaNotices: 0,
    /** tunnels to relay hosts started by this host */
    viaTunnels: 0,
    /** OFFER notices sent to directories (relay host) / PAIR notices taken */
    relayOffersSent: 0,
    relayPairsTaken: 0,
  };
}

export function newViaDrops() {
  return {
    /** VIA / PAIR notices that did not decode, came from no directory, or PAIR without relay.serve */
    viaBadNotice: 0,
    /** VIA / PAIR notices over their rate */
    viaRateLimited: 0,
    /** relay host records that did not carry the host key the notice named */
    viaWrongRelay: 0,
  };
}

interface RelayHost {
  name: string;
  key: Buffer;
  lastOpen: number;
  /** last time a path through it was wanted without a tunnel (tick opens one) */
  wanted: number;
}

class Bucket {
  private tokens: number;
  private at = 0;
  constructor(
    private readonly perSec: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.at) / 1000) * this.perSec);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

export class RelayVia implements ViaPaths {
  readonly events = newViaEvents();
  readonly drops = newViaDrops();
  /** token (latin1) -> relay host key (latin1) */
  private readonly tokens = new Map<string, string>();
  private readonly relays = new Map<string, RelayHost>();
  private readonly viaBucket = new Bucket(VIA_PER_SEC, VIA_BURST);
  private readonly pairBucket = new Bucket(PAIR_PER_SEC, PAIR_BURST);
  /** directory tunnel TID -> when we last offered on it */
  private offered = new Map<string, number>();

  constructor(
    private readonly engine: Engine,
    private readonly clock: () => number,
    /** look a relay host up by name: the peer whose verified record has host key `key`, or null */
    private readonly lookup: (name: string, key: Buffer, now: number, cb: (p: Peer | null) => void) => void,
    /** NatAgent.setRelay */
    private readonly setRelay: (peerKey: Buffer, addr: Buffer, now: number) => void,
    /** the relay this host serves (relay.serve), null: none */
    private readonly server: RelayServer | null,
    /** whether a peer is one of our directories */
    private readonly isDirectory: (p: Peer) => boolean,
    private readonly log: Logger = nullLogger,
  ) {}

  /** A VIA notice from directory `dir` (-1: not from a directory). */
  onVia(dir: number, buf: Buffer, off: number, len: number, now: number): void {
    const n = dir >= 0 ? decodeVia(buf, off, len) : null;
    if (!n) {
      this.drops.viaBadNotice++;
      return;
    }
    if (!this.viaBucket.take(now)) {
      this.drops.viaRateLimited++;
      return;
    }
    this.events.viaNotices++;
    const rk = n.relayKey.latin1Slice(0, 32);
    let r = this.relays.get(rk);
    if (!r) {
      if (this.relays.size >= MAX_RELAYS) this.relays.delete(this.relays.keys().next().value!);
      r = { name: n.relayName, key: n.relayKey, lastOpen: -Infinity, wanted: now };
      this.relays.set(rk, r);
    }
    r.name = n.relayName;
    const tk = n.token.latin1Slice(0, 8);
    this.tokens.delete(tk);
    if (this.tokens.size >= MAX_TOKENS) this.tokens.delete(this.tokens.keys().next().value!);
    this.tokens.set(tk, rk);
    this.setRelay(n.peerKey, relayAddr(RELAY_VIA_INDEX, n.token), now);
    r.wanted = now;
    this.open(r, now);
  }

  /** A PAIR notice from directory `dir`: this host relays the pair (relay.serve), else a counted drop. */
  onPair(dir: number, buf: Buffer, off: number, len: number, now: number): void {
    const n = dir >= 0 && this.server ? decodePair(buf, off, len) : null;
    if (!n) {
      this.drops.viaBadNotice++;
      return;
    }
    if (!this.pairBucket.take(now)) {
      this.drops.viaRateLimited++;
      return;
    }
    this.events.relayPairsTaken++;
    this.server!.addPair(n.token, n.a, n.b, now);
  }

  /** The endpoint of the established tunnel to relay host `r`, or null. */
  private endpointOf(r: RelayHost): Buffer | null {
    const t = this.engine.peers.get(r.key.latin1Slice(0, 32))?.sendTunnel();
    return t && t.state === "established" && t.canSend && !isRelayAddr(t.endpoint) ? t.endpoint : null;
  }

  /** Start a tunnel to relay host `r` if there is none (never from inside a send: tick and notices only). */
  private open(r: RelayHost, now: number): void {
    const p = this.engine.peers.get(r.key.latin1Slice(0, 32));
    if (p?.sendTunnel() || now - r.lastOpen < RELAY_OPEN_EVERY_MS) return;
    r.lastOpen = now;
    if (p && p.eph && p.endpoint && p.eph.notAfter > Math.floor(now / 1000)) {
      if (this.engine.openTunnel(p, now)) this.events.viaTunnels++;
      return;
    }
    this.lookup(r.name, r.key, now, (peer) => {
      if (!peer) {
        this.drops.viaWrongRelay++;
        return;
      }
      if (!peer.sendTunnel() && this.engine.openTunnel(peer, this.clock())) {
        this.events.viaTunnels++;
        this.log.log("info", "tunnel to relay host", { relay: peer.name });
      }
    });
  }

  target(token: Buffer): Buffer | null {
    const rk = this.tokens.get(token.latin1Slice(0, 8));
    const r = rk === undefined ? undefined : this.relays.get(rk);
    if (!r) return null;
    const e = this.endpointOf(r);
    if (!e) r.wanted = this.clock();
    return e;
  }

  source(token: Buffer, src: Buffer, srcOff: number): boolean {
    const rk = this.tokens.get(token.latin1Slice(0, 8));
    if (rk === undefined || !this.relays.has(rk)) return false;
    const t = this.engine.peers.get(rk)?.sendTunnel();
    return (
      !!t && t.state === "established" && !isRelayAddr(t.endpoint) && addrEqual(t.endpoint, 0, src, srcOff)
    );
  }

  /** Relay host: offer on every established directory tunnel, when new and every OFFER_EVERY_MS. */
  tick(now: number): void {
    for (const r of this.relays.values())
      if (now - r.wanted < 10_000 && !this.endpointOf(r)) this.open(r, now);
    if (!this.server) return;
    const seen = new Map<string, number>();
    for (const p of this.engine.peers.values()) {
      if (!this.isDirectory(p)) continue;
      const t = p.sendTunnel();
      if (!t || t.state !== "established" || !t.canSend) continue;
      const last = this.offered.get(t.tid);
      if (last === undefined || now - last >= OFFER_EVERY_MS) {
        this.engine.sendFrame(t, FrameType.DirNotice, encodeOffer(), now);
        this.events.relayOffersSent++;
        seen.set(t.tid, now);
      } else seen.set(t.tid, last);
    }
    this.offered = seen;
  }
}
