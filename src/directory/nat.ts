/**
 * NAT traversal, host side (issue 17; docs/PROTOCOL.md 8b): what a host does with the
 * directory's rendezvous notices, and the relayed paths it holds.
 *
 * Notices come only inside the authenticated tunnel to a configured directory. A PUNCH
 * notice makes the host send PUNCH datagrams (16 bytes) to the peer's candidates: now and
 * in PUNCH_ROUNDS - 1 later ticks, at most as many bytes of them as the tunnel packet that
 * carried the notice (NOTICE_PACKET_OVERHEAD; never more than PUNCH_MAX_PER_NOTICE), and
 * notices at NOTICE_PER_SEC (burst NOTICE_BURST) — so a lying directory cannot amplify
 * through a host, and gets only a trickle (at most 128 B per notice, 10 notices/s) sent
 * towards any address it names.
 *
 * Per peer (bounded, MAX_PEERS) the agent keeps the candidates and the relay path (a
 * relay endpoint record, wire/addr.ts relayAddr). Creation to a peer met by rendezvous:
 *
 *   creating --RETRY_AFTER_MS without REPLY--> resend once to the same endpoint (the peer's
 *              punches have opened its NAT by now)
 *   creating --RELAY_AFTER_MS without REPLY, relay known--> resend through the relay
 *   (REPLY from anywhere: established; the endpoint is where the REPLY came from)
 *
 * Established tunnels:
 *   relayed --after UPGRADE_SCHEDULE_MS[i]--> look the peer up again (fresh: the directory sends
 *              new notices with current candidates to both); on the notice, both ends send
 *              low-TTL punches to the other's direct candidates, and PROBE_AFTER_MS later
 *              probe them; an authenticated answer from one moves the tunnel there (the
 *              mobility rule: only authenticated packets move endpoints)
 *
 * Low-TTL punches (`punchTtl`, default 2; 0: off): a NAT that receives a packet from the
 * peer before its own host has sent towards the peer keeps an unanswered entry for it
 * (Linux conntrack: 30 s), and the host's own packets then leave from another public port
 * the peer does not expect: both ends' first packets must leave their NATs within one
 * one-way delay of each other, which a loaded host misses. A punch that dies `punchTtl`
 * routers away opens our NAT and never reaches the peer's, so the order no longer matters
 * as long as the ends' notices are handled within PROBE_AFTER_MS of each other.
 *   direct, relay known, sending but silent FALLBACK_STALL_MS --> probe through the relay
 *              (at most every FALLBACK_EVERY_MS); the answer moves the tunnel to the relay
 *
 * No I/O: sends go through the engine (PUNCH, creations, probes); `tick(now)` runs on the
 * daemon's coarse timer.
 */
import type { Engine } from "../tunnel/engine.js";
import type { Peer } from "../tunnel/tunnel.js";
import type { VerifiedRecord } from "./record.js";
import { type Logger, RateLimitedLog, nullLogger } from "../log.js";
import { RELAY_VIA_INDEX, addrToString, isRelayAddr, relayAddr, tryEncodeAddr } from "../wire/addr.js";
import { PUNCH_BYTES, decodeNotice } from "../wire/nat.js";

export const PUNCH_ROUNDS = 3;
export const PUNCH_MAX_PER_NOTICE = 8;
/**
 * Bytes around a notice in its tunnel packet: header 16 + frame header 3 + AEAD tag 16.
 * A notice makes at most floor((its length + this) / PUNCH_BYTES) punches (and at most
 * PUNCH_MAX_PER_NOTICE): never more bytes than the datagram that carried it.
 */
export const NOTICE_PACKET_OVERHEAD = 35;
export const NOTICE_PER_SEC = 10;
export const NOTICE_BURST = 20;
export const RETRY_AFTER_MS = 300;
export const RELAY_AFTER_MS = 600;
/**
 * Delays before the attempts to leave the relay for a direct path (the last repeats). The
 * gap of 35 s after the second attempt matters: a probe that a NAT did not let in leaves an
 * unanswered conntrack entry on that NAT (Linux keeps one 30 s, and every further probe
 * renews it), and while it stands the peer's punches towards us get another public port.
 * Letting it expire is what makes the attempt after a roam succeed; it takes both sides'
 * first packets to leave their own NATs within one one-way delay of each other, which a
 * loaded host can miss, hence a second quiet attempt before the minute-long ones.
 */
export const UPGRADE_SCHEDULE_MS = [5_000, 5_000, 35_000, 35_000, 60_000] as const;
/** After the low-TTL punches of an upgrade attempt, the authenticated probes (full TTL). */
export const PROBE_AFTER_MS = 2_000;
/** The default IP TTL / IPv6 hop limit of the first punch round: our NAT is the first router. */
export const PUNCH_TTL_DEFAULT = 2;
export const FALLBACK_STALL_MS = 2_500;
export const FALLBACK_EVERY_MS = 2_000;
export const MAX_PEERS = 1_024;
const MAX_PUNCH_JOBS = 64;
const PEER_TTL_MS = 10 * 60_000;

interface PeerNat {
  /** direct candidates, 20-byte records, observed first */
  cands: Buffer[];
  /** the relayed path (relayAddr), or null */
  relay: Buffer | null;
  at: number;
  /** the creating tunnel already retried (its TID), and how far: 1 direct, 2 relay */
  tid: string;
  retried: number;
  lastUpgrade: number;
  /** last direct probe sent (at most one per 2 s from notices) */
  lastProbe: number;
  /** when the direct probes of an upgrade attempt go out (after the low-TTL punches); 0: none due */
  probeAt: number;
  /** attempts to leave the relay since the tunnel went there (UPGRADE_SCHEDULE_MS index) */
  upgrades: number;
  lastFallback: number;
  /** the established tunnel's path at the last tick (null: none yet) */
  relayed: boolean | null;
}

interface PunchJob {
  to: Buffer[];
  left: number;
  rounds: number;
  /** TTL of the next round (0: the default TTL) */
  ttl: number;
}

export interface NatOptions {
  /** IP TTL / IPv6 hop limit of the first punch round (0: full TTL, no low-TTL punches) */
  punchTtl: number;
}

export function newNatEvents() {
  return {
    /** rendezvous notices taken: PUNCH (punch towards a peer) and PEER (a peer's paths) */
    natPunchNotices: 0,
    natPeerNotices: 0,
    /** creations resent through the relay after the direct attempt got no REPLY */
    natRelayFallbacks: 0,
    /** relayed tunnels that moved to a direct path / direct tunnels that moved to the relay */
    natUpgrades: 0,
    natToRelay: 0,
    /** upgrade attempts that probed a peer behind no NAT (its lookup answer; no notice comes) */
    natPublicProbes: 0,
    /** relayed datagrams sent and received by this host */
    natRelayedTx: 0,
    natRelayedRx: 0,
  };
}

export function newNatDrops() {
  return {
    /** notices that did not decode, or came from no directory */
    natBadNotice: 0,
    /** notices over NOTICE_PER_SEC */
    natNoticeRateLimited: 0,
    /** RELAY datagrams with an unknown token or from an address that is not the directory's */
    natRelayUnknown: 0,
  };
}

/** Relayed paths through relay hosts (via.ts), as the agent sees them. */
export interface ViaPaths {
  /** the relay host's tunnel endpoint for `token` now (null: no tunnel to it yet; one is being made) */
  target(token: Buffer): Buffer | null;
  /** whether `src` is the tunnel endpoint of the relay host that `token` came with */
  source(token: Buffer, src: Buffer, srcOff: number): boolean;
}

export class NatAgent {
  readonly events = newNatEvents();
  readonly drops = newNatDrops();
  /** relay hosts (set when the directory client starts) */
  via: ViaPaths | null = null;
  private readonly peers = new Map<string, PeerNat>();
  /** relay token (latin1) -> directory index */
  private readonly tokens = new Map<string, number>();
  private jobs: PunchJob[] = [];
  private bucket = NOTICE_BURST;
  private bucketAt = 0;
  private readonly rlog: RateLimitedLog;

  constructor(
    private readonly engine: Engine,
    /** directory endpoints (20-byte records), by index */
    private readonly dirs: readonly Buffer[],
    /** look a peer up again, fresh (the directory answers with new notices); `answered` gets the record */
    private readonly relook: (
      p: Peer,
      now: number,
      answered: (r: VerifiedRecord, now: number) => void,
    ) => void,
    log: Logger = nullLogger,
    private readonly opts: NatOptions = { punchTtl: PUNCH_TTL_DEFAULT },
  ) {
    this.rlog = new RateLimitedLog(log);
  }

  /** A DIR_NOTICE frame from directory `dir` (-1: not from a directory). */
  onNotice(dir: number, buf: Buffer, off: number, len: number, now: number): void {
    const n = dir >= 0 ? decodeNotice(buf, off, len) : null;
    if (!n) {
      this.drops.natBadNotice++;
      return;
    }
    this.bucket = Math.min(
      NOTICE_BURST,
      this.bucket + (Math.max(0, now - this.bucketAt) / 1000) * NOTICE_PER_SEC,
    );
    this.bucketAt = now;
    if (this.bucket < 1) {
      this.drops.natNoticeRateLimited++;
      return;
    }
    this.bucket--;
    const key = n.peerKey.latin1Slice(0, 32);
    const cands = n.candidates
      .map((c) => tryEncodeAddr(c.ip, c.port))
      .filter((c): c is Buffer => c !== null && c.readUInt16BE(2) !== 0);
    const pn = this.peerNat(key, cands, now);
    pn.cands = cands;
    pn.at = now;
    if (n.token) {
      if (this.tokens.size >= MAX_PEERS) this.tokens.delete(this.tokens.keys().next().value!);
      this.tokens.set(n.token.latin1Slice(0, 8), dir);
      pn.relay = relayAddr(dir, n.token);
    }
    // a relayed tunnel to this peer: an upgrade attempt (the fresh direct candidates)
    const t = this.engine.peers.get(key)?.sendTunnel();
    const upgrade = !!t && t.state === "established" && isRelayAddr(t.endpoint);
    const ttl = this.opts.punchTtl;
    const budget = Math.min(PUNCH_MAX_PER_NOTICE, Math.floor((len + NOTICE_PACKET_OVERHEAD) / PUNCH_BYTES));
    if (n.kind === "punch") {
      this.events.natPunchNotices++;
      if (cands.length > 0 && this.jobs.length < MAX_PUNCH_JOBS) {
        // an upgrade with low-TTL punches needs no full-TTL rounds: the probes follow them
        const rounds = upgrade && ttl > 0 ? 1 : PUNCH_ROUNDS;
        const job = { to: cands, left: budget, rounds, ttl };
        this.punch(job);
        if (job.rounds > 0 && job.left > 0) this.jobs.push(job);
      }
    } else {
      this.events.natPeerNotices++;
      // the looking-up end opens its own NAT too before it probes (same budget)
      if (upgrade && ttl > 0) this.punch({ to: cands.slice(0, 2), left: budget, rounds: 1, ttl });
    }
    // An attempt the peer started (its lookup, not ours: ours set lastUpgrade when it went out)
    // counts as ours: both ends then keep one schedule, instead of two interleaved ones whose
    // failed probes renew the unanswered NAT entries just before the other end's attempt.
    if (upgrade && now - pn.lastUpgrade >= PROBE_AFTER_MS) {
      pn.upgrades++;
      pn.lastUpgrade = now;
    }
    if (upgrade && now - pn.lastProbe >= PROBE_AFTER_MS) {
      pn.lastProbe = now;
      if (ttl > 0) pn.probeAt = now + PROBE_AFTER_MS;
      else this.probeDirect(pn, key, now);
    }
  }

  private peerNat(key: string, cands: Buffer[], now: number): PeerNat {
    let pn = this.peers.get(key);
    if (!pn) {
      if (this.peers.size >= MAX_PEERS) this.peers.delete(this.peers.keys().next().value!);
      pn = {
        cands,
        relay: null,
        at: now,
        tid: "",
        retried: 0,
        lastUpgrade: now,
        upgrades: 0,
        lastProbe: 0,
        probeAt: 0,
        lastFallback: 0,
        relayed: null,
      };
      this.peers.set(key, pn);
    }
    return pn;
  }

  /** A VIA notice (via.ts): the peer (host key) is reachable through relay host path `addr`. */
  setRelay(peerKey: Buffer, addr: Buffer, now: number): void {
    const pn = this.peerNat(peerKey.latin1Slice(0, 32), [], now);
    pn.relay = addr;
    pn.at = now;
  }

  /** Whether datagrams to relayed path `addr` can leave now (a relay host needs a tunnel to it first). */
  private relayReady(addr: Buffer): boolean {
    if (addr[1] !== RELAY_VIA_INDEX) return true;
    return this.via?.target(addr.subarray(4, 12)) != null;
  }

  private punch(job: PunchJob): void {
    job.rounds--;
    for (const c of job.to) {
      if (job.left <= 0) break;
      job.left--;
      this.engine.sendPunch(c, job.ttl);
    }
    job.ttl = 0; // later rounds: full TTL (the peer's NAT has had time to open towards us)
  }

  private probeDirect(pn: PeerNat, key: string, now: number): void {
    pn.probeAt = 0;
    const t = this.engine.peers.get(key)?.sendTunnel();
    if (!t || t.state !== "established" || !isRelayAddr(t.endpoint)) return;
    pn.lastProbe = now;
    for (const c of pn.cands.slice(0, 2)) this.engine.probeEndpoint(t, c, now);
  }

  tick(now: number): void {
    if (this.jobs.length > 0) {
      for (const j of this.jobs) this.punch(j);
      this.jobs = this.jobs.filter((j) => j.rounds > 0 && j.left > 0);
    }
    for (const [key, pn] of this.peers) {
      const p = this.engine.peers.get(key);
      const t = p?.sendTunnel();
      if (!p || !t) {
        if (now - pn.at > PEER_TTL_MS) this.peers.delete(key);
        continue;
      }
      if (t.state === "creating") {
        if (pn.tid !== t.tid) {
          pn.tid = t.tid;
          pn.retried = 0;
        }
        const age = now - t.createdAt;
        if (pn.retried === 0 && age >= RETRY_AFTER_MS && !isRelayAddr(t.endpoint)) {
          pn.retried = 1;
          this.engine.retryCreation(p, null, now);
        }
        if (pn.retried < 2 && pn.relay && age >= RELAY_AFTER_MS && this.relayReady(pn.relay)) {
          pn.retried = 2;
          this.events.natRelayFallbacks++;
          this.rlog.log(now, "info", "nat-relay", "no direct path: creating through the relay", () => ({
            peer: p.name,
            relay: addrToString(pn.relay!),
          }));
          this.engine.retryCreation(p, pn.relay, now);
        }
        continue;
      }
      if (t.state !== "established") continue;
      pn.at = now;
      if (pn.probeAt !== 0 && now >= pn.probeAt) this.probeDirect(pn, key, now);
      const relayed = isRelayAddr(t.endpoint);
      if (pn.relayed !== null && relayed !== pn.relayed) {
        if (relayed) this.events.natToRelay++;
        else this.events.natUpgrades++;
        this.rlog.log(
          now,
          "info",
          "nat-path",
          relayed ? "tunnel moved to the relay" : "tunnel moved to a direct path",
          () => ({
            peer: p.name,
            to: addrToString(t.endpoint),
          }),
        );
      }
      if (relayed && pn.relayed !== true) {
        pn.upgrades = 0;
        pn.lastUpgrade = now;
      }
      pn.relayed = relayed;
      if (relayed) {
        const wait = UPGRADE_SCHEDULE_MS[Math.min(pn.upgrades, UPGRADE_SCHEDULE_MS.length - 1)]!;
        if (now - pn.lastUpgrade >= wait) {
          pn.upgrades++;
          pn.lastUpgrade = now;
          // probes go out when the notice comes back: by then the peer has punched. A peer no
          // longer behind a NAT gets no notice: its answer says so (onRelookAnswer)
          this.relook(p, now, (r, at) => this.onRelookAnswer(key, r, at));
        }
      } else if (
        pn.relay &&
        now - t.lastRx > FALLBACK_STALL_MS &&
        t.lastTx > t.lastRx &&
        now - pn.lastFallback >= FALLBACK_EVERY_MS
      ) {
        pn.lastFallback = now;
        this.engine.probeEndpoint(t, pn.relay, now);
      }
    }
  }

  /**
   * The answer to an upgrade attempt's lookup. A peer seen by the directory at an address it
   * signed is behind no NAT: the directory sends no notice for it (nothing to punch), so
   * nothing else would probe. Its endpoint is probed now, at full TTL: no NAT in front of it
   * can be primed against us, and our own NAT lets its answer in on the mapping the probe
   * made, symmetric or not. Only an authenticated answer from there moves the tunnel.
   */
  private onRelookAnswer(key: string, r: VerifiedRecord, now: number): void {
    const o = r.observed;
    if (o === null || !r.eph.endpoints.some((e) => e.ip === o.ip && e.port === o.port)) return;
    const t = this.engine.peers.get(key)?.sendTunnel();
    if (!t || t.state !== "established" || !isRelayAddr(t.endpoint)) return;
    const pn = this.peers.get(key);
    if (pn) pn.lastProbe = now;
    this.events.natPublicProbes++;
    this.engine.probeEndpoint(t, r.endpoint, now);
  }

  /** Output side: where a datagram to relay endpoint `addr` goes, and with which token. */
  relayTarget(addr: Buffer, off: number): { endpoint: Buffer; token: Buffer } | null {
    const token = addr.subarray(off + 4, off + 12);
    if (addr[off + 1] === RELAY_VIA_INDEX) {
      const endpoint = this.via?.target(token) ?? null;
      if (!endpoint) return null;
      this.events.natRelayedTx++;
      return { endpoint, token };
    }
    const dir = this.dirs[addr[off + 1]!];
    if (!dir) return null;
    this.events.natRelayedTx++;
    return { endpoint: dir, token };
  }

  /**
   * Receive side: a RELAY datagram with `token` from `src`: the directory index whose relay
   * sent it (src is that directory's endpoint and the token is ours; RELAY_VIA_INDEX: src is
   * the tunnel endpoint of the relay host the token came with), else -1 (counted).
   */
  relaySource(token: Buffer, src: Buffer, srcOff: number): number {
    const dir = this.tokens.get(token.latin1Slice(0, 8));
    const d = dir === undefined ? undefined : this.dirs[dir];
    if (dir === undefined && this.via?.source(token, src, srcOff)) {
      this.events.natRelayedRx++;
      return RELAY_VIA_INDEX;
    }
    if (d === undefined || !d.equals(src.subarray(srcOff, srcOff + 20))) {
      this.drops.natRelayUnknown++;
      return -1;
    }
    this.events.natRelayedRx++;
    return dir!;
  }
}
