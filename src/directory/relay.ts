/**
 * The relay (issue 17), run by a host with `relay: { serve: true }` (the directory, or any
 * host: a relay host, told its pairs by its directory, relaybroker.ts): it forwards
 * RELAY datagrams (wire/nat.ts) between the two registered hosts of a pair, so that
 * hosts behind NATs that punching cannot open (symmetric NATs) still reach each other.
 *
 * What the relay holds: per pair a random 8-byte token and the two host keys; per host
 * its byte bucket and counters. No keys: the enclosed datagrams are sealed end to end
 * between the two hosts (the relay sees the token, the enclosed tunnel header and
 * ciphertext). Where it sends: only to the current endpoint of a host's authenticated
 * tunnel to this host (the address its packets verifiably came from), and only from
 * the other host of the pair at its own such endpoint; anything else is a counted drop.
 * So the relay cannot be used to send to an address no registered host is at, and a
 * spoofed source gets nothing forwarded. Each sending host has a token bucket in bytes
 * (`bytesPerSec`, `burstBytes`): beyond it, counted drops.
 *
 * Pairs are made by the rendezvous (rendezvous.ts) when one host looks the other up,
 * bounded (`maxPairs`, the least recently used evicted) and forgotten after `idleMs`.
 */
import { type Logger, RateLimitedLog, nullLogger } from "../log.js";
import { randomBytes } from "../crypto/sodium.js";
import type { Engine, Output } from "../tunnel/engine.js";
import { addrEqual } from "../wire/addr.js";
import { RELAY_HEADER_BYTES, decodeRelayHeader } from "../wire/nat.js";
import { MAX_UDP_PAYLOAD_BYTES } from "../tunnel/constants.js";

export interface RelayOptions {
  bytesPerSec: number;
  burstBytes: number;
  maxPairs: number;
  idleMs: number;
}

export const RELAY_DEFAULTS: RelayOptions = {
  bytesPerSec: 1_000_000,
  burstBytes: 2_000_000,
  maxPairs: 10_000,
  idleMs: 120_000,
};

interface Pair {
  token: Buffer;
  a: string; // host key, latin1 (engine.peers key)
  b: string;
  lastUsed: number;
}

interface HostUse {
  name: string;
  tokens: number;
  at: number;
  packets: number;
  bytes: number;
  dropped: number;
}

export function newRelayDrops() {
  return {
    /** RELAY datagrams with a token no pair holds (or malformed) */
    relayUnknown: 0,
    /** RELAY datagrams from an address that is neither host's tunnel endpoint */
    relaySource: 0,
    /** RELAY datagrams over the sending host's byte rate */
    relayRateLimited: 0,
    /** RELAY datagrams for a host that has no tunnel to this relay now */
    relayNoPeer: 0,
  };
}

export function newRelayEvents() {
  return {
    /** datagrams and bytes forwarded (enclosed + relay header) */
    relayPackets: 0,
    relayBytes: 0,
    /** pairs made (tokens handed out) */
    relayPairs: 0,
  };
}

export interface RelayStatus {
  pairs: number;
  bytesPerSec: number;
  burstBytes: number;
  /** per host that sent through the relay, most bytes first (at most 20) */
  hosts: { name: string; packets: number; bytes: number; dropped: number }[];
}

export class RelayServer {
  readonly drops = newRelayDrops();
  readonly events = newRelayEvents();
  private readonly byToken = new Map<string, Pair>();
  private readonly byPair = new Map<string, Pair>();
  private readonly use = new Map<string, HostUse>();
  private readonly rlog: RateLimitedLog;
  private lastSweep = 0;

  constructor(
    private readonly engine: Engine,
    private readonly out: Output,
    readonly opts: RelayOptions,
    log: Logger = nullLogger,
  ) {
    this.rlog = new RateLimitedLog(log);
  }

  /** The token of the pair {a, b} (host keys, 32 bytes), made if new. */
  pairFor(a: Buffer, b: Buffer, now: number, token: Buffer = randomBytes(8)): Buffer {
    const ka = a.latin1Slice(0, 32);
    const kb = b.latin1Slice(0, 32);
    const pk = ka < kb ? ka + kb : kb + ka;
    let p = this.byPair.get(pk);
    if (p) {
      p.lastUsed = now;
      return p.token;
    }
    if (this.byPair.size >= this.opts.maxPairs) {
      let old: Pair | null = null;
      for (const x of this.byPair.values()) if (!old || x.lastUsed < old.lastUsed) old = x;
      if (old) this.forget(old);
    }
    p = { token, a: ka, b: kb, lastUsed: now };
    this.byPair.set(pk, p);
    this.byToken.set(p.token.latin1Slice(0, 8), p);
    this.events.relayPairs++;
    return p.token;
  }

  /**
   * A relay host (not the directory) is told a pair by its directory (PAIR notice, inside
   * the relay host's tunnel to it): forward `token` between hosts `a` and `b`. The pair's
   * earlier token, if any, is replaced. Bounded as pairFor (maxPairs, least recently used).
   */
  addPair(token: Buffer, a: Buffer, b: Buffer, now: number): void {
    const ka = a.latin1Slice(0, 32);
    const kb = b.latin1Slice(0, 32);
    const pk = ka < kb ? ka + kb : kb + ka;
    const tk = token.latin1Slice(0, 8);
    const old = this.byPair.get(pk);
    const other = this.byToken.get(tk);
    if (other && other !== old) this.forget(other);
    if (old) {
      this.byToken.delete(old.token.latin1Slice(0, 8));
      old.token = Buffer.from(token);
      old.lastUsed = now;
      this.byToken.set(tk, old);
      return;
    }
    this.pairFor(a, b, now, Buffer.from(token));
  }

  private forget(p: Pair): void {
    const pk = p.a < p.b ? p.a + p.b : p.b + p.a;
    this.byPair.delete(pk);
    this.byToken.delete(p.token.latin1Slice(0, 8));
  }

  /** Whether the datagram is a RELAY one for a pair of ours (then it is consumed: forwarded or dropped). */
  owns(buf: Buffer, off: number, len: number): boolean {
    const tok = decodeRelayHeader(buf, off, len, MAX_UDP_PAYLOAD_BYTES);
    return tok !== null && this.byToken.has(tok.latin1Slice(0, 8));
  }

  /**
   * A RELAY datagram arrived from `src` (20-byte record at srcOff): forward it unchanged to
   * the other host of its pair. Never throws; every refusal is one counted drop.
   */
  forward(buf: Buffer, off: number, len: number, src: Buffer, srcOff: number, now: number): void {
    const tok = decodeRelayHeader(buf, off, len, MAX_UDP_PAYLOAD_BYTES);
    const p = tok ? this.byToken.get(tok.latin1Slice(0, 8)) : undefined;
    if (!p) {
      this.drops.relayUnknown++;
      return;
    }
    const ta = this.engine.peers.get(p.a)?.sendTunnel();
    const tb = this.engine.peers.get(p.b)?.sendTunnel();
    const ea = ta && ta.state !== "closed" && ta.canSend ? ta.endpoint : null;
    const eb = tb && tb.state !== "closed" && tb.canSend ? tb.endpoint : null;
    let from: string;
    let to: Buffer | null;
    if (ea && addrEqual(ea, 0, src, srcOff)) {
      from = p.a;
      to = eb;
    } else if (eb && addrEqual(eb, 0, src, srcOff)) {
      from = p.b;
      to = ea;
    } else {
      this.drops.relaySource++;
      return;
    }
    const u = this.hostUse(from, now);
    if (!to) {
      u.dropped++;
      this.drops.relayNoPeer++;
      return;
    }
    const dt = Math.max(0, now - u.at) / 1000;
    u.tokens = Math.min(this.opts.burstBytes, u.tokens + dt * this.opts.bytesPerSec);
    u.at = now;
    if (u.tokens < len) {
      u.dropped++;
      this.drops.relayRateLimited++;
      this.rlog.log(now, "warn", "relay-rate", "relay: host over its byte rate", () => ({ host: u.name }));
      return;
    }
    u.tokens -= len;
    u.packets++;
    u.bytes += len;
    p.lastUsed = now;
    this.events.relayPackets++;
    this.events.relayBytes += len;
    this.out.sendUdp(buf, off, len, to, 0);
  }

  private hostUse(key: string, now: number): HostUse {
    let u = this.use.get(key);
    if (!u) {
      if (this.use.size >= 2 * this.opts.maxPairs) this.use.delete(this.use.keys().next().value!);
      const name = this.engine.peers.get(key)?.name ?? "?";
      u = { name, tokens: this.opts.burstBytes, at: now, packets: 0, bytes: 0, dropped: 0 };
      this.use.set(key, u);
    }
    return u;
  }

  tick(now: number): void {
    if (now - this.lastSweep < 10_000) return;
    this.lastSweep = now;
    for (const p of [...this.byPair.values()]) if (now - p.lastUsed > this.opts.idleMs) this.forget(p);
  }

  state(): RelayStatus {
    const hosts = [...this.use.values()]
      .sort((x, y) => y.bytes - x.bytes)
      .slice(0, 20)
      .map((u) => ({ name: u.name, packets: u.packets, bytes: u.bytes, dropped: u.dropped }));
    return {
      pairs: this.byPair.size,
      bytesPerSec: this.opts.bytesPerSec,
      burstBytes: this.opts.burstBytes,
      hosts,
    };
  }
}

/** Relay header bytes on top of each relayed datagram. */
export const RELAY_OVERHEAD_BYTES = RELAY_HEADER_BYTES;
