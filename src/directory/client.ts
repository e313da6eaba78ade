/**
 * Directory client: registers this host's service record with every configured
 * directory and looks up other hosts' records by overlay address, subnet or
 * name. Without I/O or timers of its own: it is driven by the engine's directory
 * hooks (`miss`, `frame`, `tunnelUp`: tunnel/options.ts DirectoryHooks), by `tick(now)` on the daemon's
 * coarse timer, and by `lookup(query, now, cb)`. Its messages travel as
 * DIR_REQUEST / DIR_RESPONSE frames inside ordinary tunnels to the directories,
 * sent through the engine.
 *
 * Bootstrap: a directory is configured by endpoint only. Its record (host
 * certificate + ephemeral certificate) is fetched from it in one padded round
 * trip (RECORD_REQUEST), then a tunnel is created to it and kept up by
 * keepalives and registration refreshes.
 *
 * Per directory (derived from the engine, printed by `state()`):
 *
 *   no-record --record verified--> connecting --REPLY--> up --timeout--> (tunnel closed) connecting
 *
 * Per lookup (by query key; lookups for the same key coalesce):
 *
 *   (new) --sent to preferred directory--> in flight --answer verified--> done (cached until the
 *      |                                       |                            ephemeral cert expires)
 *      |                                       +--not found--> done (negative, cached NEGATIVE_TTL_MS)
 *      |                                       +--timeout / refused / bad record--> next directory
 *      +--cached--> done (0 extra round trips)     ... all tried twice --> done (unavailable)
 *
 * A tunnel that keeps sending and hears nothing for STALL_MS has its peer
 * looked up again: a new endpoint (both ends moved) is probed, and the tunnel
 * moves there once the peer answers authenticated from it; the same
 * endpoint with a key younger than the tunnel (the peer restarted) closes it, so
 * the next packet creates a fresh tunnel 0-RTT. (A restarted peer is usually
 * recovered earlier by the engine's own stall probe, which needs no directory:
 * Engine.tickStall, docs/PROTOCOL.md section 5.)
 *
 * Every record is verified here (record.ts) before it is used; a record that
 * fails is counted (`drops.dirBadRecord`) and the next directory is asked.
 */
import { newDirDrops, newDirEvents } from "./counters.js";
import { equal, randomBytes } from "../crypto/sodium.js";
import { type Logger, RateLimitedLog, nullLogger } from "../log.js";
import * as C from "../tunnel/constants.js";
import type { DirectoryHooks, Engine } from "../tunnel/engine.js";
import type { Peer, Tunnel } from "../tunnel/tunnel.js";
import { addrEqual, addrToString, isRelayAddr } from "../wire/addr.js";
import { type DirRequest, type DirResponse, decodeDirResponse, encodeDirRequest } from "../wire/directory.js";
import { RevocationIndex, decodeRevocation, verifyRevocation } from "../wire/revocation.js";
import type { HostCert } from "../wire/cert.js";
import { FrameType } from "../wire/frames.js";
import { formatIp4, formatIp6 } from "../ip/ip.js";
import { type LookupQuery, type VerifiedRecord, queryKey, verifyRecord } from "./record.js";

export type { LookupQuery, VerifiedRecord } from "./record.js";
export type {
  DirectoryClientOptions,
  DirectoryClientStatus,
  LookupCallback,
  LookupFailure,
  LookupResult,
} from "./client-types.js";
import {
  MAX_OUTBOX,
  type DirState,
  type DirectoryClientOptions,
  type DirectoryClientStatus,
  type Inflight,
  type LookupCallback,
  type LookupFailure,
  type LookupResult,
} from "./client-types.js";

// the timing constants live with the other protocol constants
export const DIR_TIMEOUT_MS = C.DIR_TIMEOUT_MS;
export const NEGATIVE_TTL_MS = C.DIR_NEGATIVE_TTL_MS;
export const REGISTER_REFRESH_MS = C.DIR_REGISTER_REFRESH_MS;
export const STALL_MS = C.DIR_STALL_MS;
export const RELOOKUP_MS = C.DIR_RELOOKUP_MS;
const EXPIRY_SLACK_MS = C.DIR_EXPIRY_SLACK_MS;

export class DirectoryClient {
  /** this client's counters (status and metrics show them beside the engine's) */
  readonly drops = newDirDrops();
  readonly events = newDirEvents();
  readonly dirs: DirState[];
  private readonly byId = new Map<number, Inflight>();
  private readonly byKey = new Map<string, Inflight>();
  private readonly cache = new Map<string, VerifiedRecord>();
  private readonly negative = new Map<string, number>();
  /** inner packets waiting for an address lookup (copies), by query key */
  private readonly misses = new Map<string, Buffer[]>();
  private readonly relooked = new Map<string, number>();
  private nextId: number;
  private preferred = 0;
  private lastStallCheck = 0;
  private readonly log: Logger;
  private readonly rlog: RateLimitedLog;
  private readonly maxCached: number;
  private readonly maxPendingTargets: number;
  private readonly maxPacketsPerTarget: number;
  private readonly maxInflight: number;
  private readonly registerRefreshMs: number;
  private readonly revocationPollMs: number;

  constructor(
    readonly engine: Engine,
    readonly opts: DirectoryClientOptions,
    now: number,
  ) {
    this.log = opts.logger ?? nullLogger;
    this.rlog = new RateLimitedLog(this.log);
    this.maxCached = opts.maxCached ?? 10_000;
    this.maxPendingTargets = opts.maxPendingTargets ?? 1024;
    this.maxPacketsPerTarget = opts.maxPacketsPerTarget ?? 16;
    this.maxInflight = opts.maxInflight ?? 4096;
    this.registerRefreshMs = opts.registerRefreshMs ?? REGISTER_REFRESH_MS;
    this.revocationPollMs = opts.revocationPollMs ?? C.DIR_REVOCATION_POLL_MS;
    this.nextId = randomBytes(4).readUInt32BE(0);
    this.dirs = opts.directories.map((endpoint, i) => ({
      label: `directory-${i}`,
      endpoint: Buffer.from(endpoint),
      peer: engine.addEndpointPeer(`directory-${i}`, endpoint, now),
      outbox: [],
      reg: null,
      registeredKeyId: null,
      registeredAt: 0,
      observed: null,
      lastAnswerAt: 0,
      failures: 0,
      rev: null,
      lastRevPoll: 0,
    }));
  }

  /**
   * Fill the engine's directory hooks (the record given to the engine at construction):
   * misses and established tunnels come here; DIR_RESPONSE frames are dispatched by role.ts.
   */
  attach(hooks: DirectoryHooks): void {
    hooks.miss = (buf, off, len, now) => {
      this.onMiss(buf, off, len, now);
      return true;
    };
    hooks.tunnelUp = (t, now) => this.onTunnelUp(t, now);
  }

  // ------------------------------------------------------------------ public API

  /**
   * Look up a record; `cb` gets the verified record (and the engine peer it
   * was installed as: routes, ephemeral key, endpoint) or why not. May call
   * `cb` synchronously (cached answers). `fresh` skips the caches.
   */
  lookup(q: LookupQuery, now: number, cb: LookupCallback, fresh = false): void {
    this.answerNow = now;
    if (this.dirs.length === 0) {
      cb({ ok: false, reason: "noDirectory" });
      return;
    }
    const key = queryKey(q);
    if (!fresh) {
      const c = this.cache.get(key);
      if (c && c.expiresAt - EXPIRY_SLACK_MS > now) {
        this.events.dirCacheHits++;
        const peer = this.engine.learnRecord(c.hostCert, c.eph, c.endpoint, now);
        if (peer) cb({ ok: true, record: c, peer });
        else cb({ ok: false, reason: "revoked" });
        return;
      }
      const neg = this.negative.get(key);
      if (neg !== undefined && neg > now) {
        cb({ ok: false, reason: "notFound" });
        return;
      }
    }
    const f = this.byKey.get(key);
    if (f) {
      f.waiters.push(cb);
      return;
    }
    if (this.byId.size >= this.maxInflight) {
      cb({ ok: false, reason: "busy" });
      return;
    }
    const id = this.newId();
    const inf: Inflight = { id, key, q, dir: this.pickDir(), sentAt: now, tried: 1, waiters: [cb] };
    this.byId.set(id, inf);
    this.byKey.set(key, inf);
    this.events.dirLookups++;
    this.send(inf.dir, this.requestOf(inf), now);
  }

  /** Promise form of `lookup` for the daemon's API, DNS and the CLI (uses the injected clock). */
  resolve(q: LookupQuery, fresh = false): Promise<LookupResult> {
    return new Promise((res) => {
      this.lookup(q, this.opts.clock(), res, fresh);
      this.engine.flushOutput();
    });
  }

  /** Register again with every directory now (our ephemeral key rotated, our address changed). */
  register(now: number): void {
    for (let i = 0; i < this.dirs.length; i++) {
      const d = this.dirs[i]!;
      d.registeredKeyId = null;
      d.reg = null;
      this.registerWith(i, now);
    }
    this.engine.flushOutput();
  }

  /** Records cached (verified, unexpired), for DNS and status. */
  cached(): IterableIterator<VerifiedRecord> {
    return this.cache.values();
  }

  /** Index of the configured directory whose peer this is, or -1. */
  directoryIndex(p: Peer): number {
    return this.dirs.findIndex((d) => d.peer === p);
  }

  /** The configured endpoints of the directories, by index (20-byte records). */
  directoryEndpoints(): Buffer[] {
    return this.dirs.map((d) => d.endpoint);
  }

  /** Look a peer up again, fresh (NAT traversal: the directory answers with new notices too). */
  relook(p: Peer, now: number, answered?: (r: VerifiedRecord, now: number) => void): void {
    const hc = p.hostCert;
    if (!hc) return;
    this.lookup(peerQuery(hc), now, (r) => (r.ok ? answered?.(r.record, this.answerNow) : undefined), true);
  }

  isDirectoryPeer(p: Peer): boolean {
    for (const d of this.dirs) if (d.peer === p) return true;
    return false;
  }

  state(now: number): DirectoryClientStatus {
    return {
      directories: this.dirs.map((d) => ({
        endpoint: addrToString(d.endpoint),
        name: d.peer.hostCert ? d.peer.name : null,
        state: !d.peer.hostCert ? "no-record" : d.peer.sendTunnel()?.canSend ? "up" : "connecting",
        registered: d.registeredKeyId !== null,
        observed: d.observed
          ? d.observed.ip.includes(":")
            ? `[${d.observed.ip}]:${d.observed.port}`
            : `${d.observed.ip}:${d.observed.port}`
          : null,
        lastAnswerMsAgo: d.lastAnswerAt ? now - d.lastAnswerAt : null,
      })),
      cachedRecords: this.cache.size,
      negative: this.negative.size,
      inflight: this.byId.size,
      pendingTargets: this.misses.size,
    };
  }

  // ------------------------------------------------------------------ engine hooks

  /** A TUN packet to an address no peer owns: look its owner up, holding the packet meanwhile. */
  onMiss(buf: Buffer, off: number, len: number, now: number): void {
    const drops = this.drops;
    const v = buf[off]! >> 4;
    const ip = v === 4 ? formatIp4(buf, off + 16) : formatIp6(buf, off + 24);
    const q: LookupQuery = { op: "address", ip };
    const key = queryKey(q);
    const neg = this.negative.get(key);
    if (neg !== undefined && neg > now) {
      drops.noRoute++;
      return;
    }
    let pend = this.misses.get(key);
    if (!pend) {
      if (this.misses.size >= this.maxPendingTargets) {
        drops.queueFull++;
        return;
      }
      pend = [];
      this.misses.set(key, pend);
      pend.push(Buffer.from(buf.subarray(off, off + len)));
      this.lookup(q, now, (r) => this.onMissAnswer(key, r, ip), false);
      return;
    }
    if (pend.length >= this.maxPacketsPerTarget) drops.queueFull++;
    else pend.push(Buffer.from(buf.subarray(off, off + len)));
  }

  /**
   * The answer for a held destination. An address query is answered only by
   * the host that owns exactly that address; when there is none, a SUBNET
   * query asks for the gateway whose certified subnet holds it (`ip` set: the
   * first, address, answer).
   */
  private onMissAnswer(key: string, r: LookupResult, ip: string | null): void {
    const pend = this.misses.get(key);
    if (!pend) return;
    if (!r.ok && r.reason === "notFound" && ip !== null) {
      this.lookup({ op: "subnet", ip }, this.opts.clock(), (r2) => this.onMissAnswer(key, r2, null), false);
      return;
    }
    this.misses.delete(key);
    if (!r.ok) {
      this.drops.noRoute += pend.length;
      return;
    }
    const now = this.answerNow;
    for (const pkt of pend) this.engine.sendSlow(r.peer, pkt, 0, pkt.length, now);
  }

  /** `now` of the answer being processed (callbacks run inside onFrame/tick). */
  private answerNow = 0;

  onTunnelUp(t: Tunnel, now: number): void {
    const i = this.dirIndex(t.peer);
    if (i < 0) return;
    const d = this.dirs[i]!;
    this.log.log("info", "directory tunnel up", { directory: addrToString(d.endpoint), name: t.peer.name });
    // a new tunnel may be a restarted directory: register again first, then what waited
    d.registeredKeyId = null;
    d.reg = null;
    this.registerWith(i, now);
    this.flushOutbox(d, t, now);
  }

  /** A DIR_RESPONSE frame from an authenticated tunnel. */
  onResponse(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    const i = this.dirIndex(t.peer);
    const m = i >= 0 ? decodeDirResponse(buf, off, len) : null;
    if (!m) {
      this.drops.badFrames++;
      return;
    }
    this.answerNow = now;
    const d = this.dirs[i]!;
    d.lastAnswerAt = now;
    d.failures = 0;
    if (m.op === "register") {
      if (!d.reg || d.reg.id !== m.id) return; // stale answer
      const keyId = d.reg.keyId;
      d.reg = null;
      if (m.status === "ok") {
        const first = d.registeredKeyId === null;
        d.registeredKeyId = keyId;
        d.registeredAt = now;
        d.observed = m.observed;
        this.events.dirRegistered++;
        if (first)
          this.log.log("info", "registered with directory", {
            directory: t.peer.name,
            observed: m.observed ? `${m.observed.ip}:${m.observed.port}` : null,
          });
      } else {
        this.rlog.log(now, "warn", "dir-register", "directory refused registration", () => ({
          directory: t.peer.name,
          status: m.status,
        }));
      }
      return;
    }
    if (m.op === "revocation") {
      this.onRevocation(d, t, m, now);
      return;
    }
    const f = this.byId.get(m.id);
    if (!f || f.dir !== i || f.q.op !== m.op) return; // stale or unexpected answer
    switch (m.status) {
      case "ok": {
        const c = verifyRecord(
          m.record,
          f.q,
          this.opts.ca,
          this.engine.hostPk,
          Math.floor(now / 1000),
          undefined,
          this.dirs.find((d) => d.observed)?.observed?.ip ?? null,
        );
        if (!c.ok) {
          this.drops.dirBadRecord++;
          this.rlog.log(now, "warn", "dir-bad-record", "directory record refused", () => ({
            directory: t.peer.name,
            query: f.key,
            reason: c.reason,
            detail: c.detail,
          }));
          this.retry(f, now, "badRecord");
          return;
        }
        this.preferred = i;
        this.finish(f, now, c.record);
        return;
      }
      case "notFound":
        this.preferred = i;
        this.finish(f, now, null);
        return;
      case "refused":
      case "rateLimited":
      case "unavailable":
        this.retry(f, now, "unavailable");
        return;
    }
  }

  /** Coarse timer: timeouts, registration, outboxes, stalled tunnels, cache bounds. */
  tick(now: number): void {
    this.answerNow = now;
    for (const f of [...this.byId.values()])
      if (now - f.sentAt >= DIR_TIMEOUT_MS) {
        this.dirTimedOut(f.dir, now);
        this.retry(f, now, "unavailable");
      }
    for (let i = 0; i < this.dirs.length; i++) {
      const d = this.dirs[i]!;
      if (d.reg && now - d.reg.sentAt >= DIR_TIMEOUT_MS) {
        d.reg = null;
        this.dirTimedOut(i, now);
      }
      const t = d.peer.sendTunnel();
      if (t?.canSend) this.flushOutbox(d, t, now);
      else if (d.outbox.length > 0 || d.registeredKeyId === null) this.engine.openTunnel(d.peer, now);
      this.registerWith(i, now);
      if (d.rev && now - d.rev.sentAt >= DIR_TIMEOUT_MS) d.rev = null;
      if (!d.rev && t?.canSend && now - d.lastRevPoll >= this.revocationPollMs) {
        d.lastRevPoll = now;
        this.askRevocation(d, t, 0, now);
      }
    }
    if (now - this.lastStallCheck >= 1000) {
      this.lastStallCheck = now;
      this.checkStalled(now);
      this.sweep(now);
    }
  }

  // ------------------------------------------------------------------ revocation list

  /**
   * Ask a directory for a revocation list newer than ours (chunk at `offset`). Polled every
   * revocationPollMs per directory; a fetch runs chunk after chunk, one request in flight.
   */
  private askRevocation(d: DirState, t: Tunnel, offset: number, now: number): void {
    const have = this.engine.revocation?.number ?? 0;
    const id = this.newId();
    if (offset === 0) d.rev = { id, sentAt: now, number: 0, buf: null, got: 0 };
    else if (d.rev) {
      d.rev.id = id;
      d.rev.sentAt = now;
    }
    this.engine.sendFrame(
      t,
      FrameType.DirRequest,
      encodeDirRequest({ op: "revocation", id, have, offset }),
      now,
    );
  }

  /**
   * A REVOCATION answer. The chunks are assembled; the whole list must decode, be signed by
   * our CA and carry a higher number than the one in force (a directory can withhold a list,
   * never forge, replay an older one, or take an entry back). Then the engine applies it
   * at once (engine.setRevocation) and onRevocation tells the daemon.
   */
  private onRevocation(d: DirState, t: Tunnel, m: DirResponse, now: number): void {
    const r = d.rev;
    if (!r || r.id !== m.id) return; // stale answer
    if (!("chunk" in m)) {
      d.rev = null; // nothing newer (or busy): ask again at the next poll
      return;
    }
    // m is the OK answer of a REVOCATION request from here on
    const have = this.engine.revocation?.number ?? 0;
    if (m.offset === 0) {
      r.number = m.number;
      r.buf = m.number > have ? Buffer.alloc(m.total) : null;
      r.got = 0;
    }
    if (!r.buf || m.number !== r.number || m.total !== r.buf.length || m.offset !== r.got) {
      if (r.buf || m.number <= have) this.events.dirRevocationRefused++;
      d.rev = null;
      return;
    }
    m.chunk.copy(r.buf, m.offset);
    r.got += m.chunk.length;
    if (r.got < r.buf.length) {
      this.askRevocation(d, t, r.got, now);
      return;
    }
    d.rev = null;
    const list = decodeRevocation(r.buf);
    const ok = list !== null && verifyRevocation(list, this.opts.ca).ok && list.number > have;
    if (!list || !ok) {
      this.events.dirRevocationRefused++;
      this.rlog.log(now, "warn", "dir-revocation", "revocation list from directory refused", () => ({
        directory: t.peer.name,
        reason: !list ? "malformed" : list.number <= have ? "not newer" : "not signed by the CA",
      }));
      return;
    }
    this.events.dirRevocationFetched++;
    this.engine.setRevocation(new RevocationIndex(list), now);
    this.log.log("info", "revocation list from directory installed", {
      directory: t.peer.name,
      number: list.number,
      entries: list.entries.length,
    });
    this.opts.onRevocation?.(list, now);
  }

  // ------------------------------------------------------------------ internals

  private newId(): number {
    this.nextId = (this.nextId + 1) >>> 0;
    return this.nextId;
  }

  /** The preferred directory if its tunnel is up, else the first whose tunnel is up, else the preferred. */
  private pickDir(): number {
    const up = (i: number): boolean => this.dirs[i]!.peer.sendTunnel()?.canSend === true;
    if (up(this.preferred)) return this.preferred;
    for (let i = 0; i < this.dirs.length; i++) if (up(i)) return i;
    return this.preferred;
  }

  private dirIndex(p: Peer): number {
    for (let i = 0; i < this.dirs.length; i++) if (this.dirs[i]!.peer === p) return i;
    return -1;
  }

  private requestOf(f: Inflight): Buffer {
    const r: DirRequest =
      f.q.op === "name" ? { op: "name", id: f.id, name: f.q.name } : { op: f.q.op, id: f.id, ip: f.q.ip };
    return encodeDirRequest(r);
  }

  private send(i: number, body: Buffer, now: number): void {
    const d = this.dirs[i]!;
    const t = d.peer.sendTunnel();
    if (t && t.canSend) {
      this.engine.sendFrame(t, FrameType.DirRequest, body, now);
      return;
    }
    if (d.outbox.length < MAX_OUTBOX) d.outbox.push(body);
    this.engine.openTunnel(d.peer, now);
  }

  private flushOutbox(d: DirState, t: Tunnel, now: number): void {
    if (d.outbox.length === 0) return;
    const q = d.outbox;
    d.outbox = [];
    for (const b of q) this.engine.sendFrame(t, FrameType.DirRequest, b, now);
  }

  private registerWith(i: number, now: number): void {
    const d = this.dirs[i]!;
    const k = this.engine.eph.current;
    if (!k || d.reg) return;
    const due = d.registeredKeyId !== k.keyId || now - d.registeredAt >= this.registerRefreshMs;
    if (!due) return;
    const t = d.peer.sendTunnel();
    if (!t || !t.canSend) return; // the tunnel is being made; onTunnelUp registers
    const id = this.newId();
    d.reg = { id, sentAt: now, keyId: k.keyId };
    this.events.dirRegistrations++;
    this.engine.sendFrame(
      t,
      FrameType.DirRequest,
      encodeDirRequest({ op: "register", id, eph: k.cert.raw }),
      now,
    );
  }

  /**
   * A directory did not answer in time: it may have restarted (our tunnel to it
   * is gone on its side) or be down. Close our tunnels to it so the next request
   * creates a fresh one (its record is fetched again when its key changed), and
   * prefer the next directory meanwhile.
   */
  private dirTimedOut(i: number, now: number): void {
    const d = this.dirs[i]!;
    d.failures++;
    d.registeredKeyId = null; // register again once a new tunnel is up
    this.events.dirTimeouts++;
    if (this.preferred === i && this.dirs.length > 1) this.preferred = (i + 1) % this.dirs.length;
    for (const t of d.peer.tunnels.slice()) this.engine.closeTunnel(t, now, "directory-timeout");
    d.peer.eph = null; // fetch its record again: a restarted directory has a new ephemeral key
    this.rlog.log(now, "warn", "dir-timeout", "directory did not answer", () => ({
      directory: addrToString(d.endpoint),
      failures: d.failures,
    }));
  }

  private retry(f: Inflight, now: number, why: LookupFailure): void {
    if (f.tried >= 2 * this.dirs.length) {
      this.fail(f, now, why);
      return;
    }
    f.tried++;
    f.dir = (f.dir + 1) % this.dirs.length;
    f.sentAt = now;
    this.send(f.dir, this.requestOf(f), now);
  }

  private fail(f: Inflight, now: number, why: LookupFailure): void {
    this.byId.delete(f.id);
    this.byKey.delete(f.key);
    if (why !== "notFound") this.events.dirLookupFailures++;
    // a brief negative entry also for unavailable answers: no lookup storm while the directories are down
    this.addNegative(f.key, now + (why === "notFound" ? NEGATIVE_TTL_MS : DIR_TIMEOUT_MS));
    for (const w of f.waiters) w({ ok: false, reason: why });
  }

  private finish(f: Inflight, now: number, rec: VerifiedRecord | null): void {
    if (!rec) {
      this.events.dirNotFound++;
      this.fail(f, now, "notFound");
      return;
    }
    this.byId.delete(f.id);
    this.byKey.delete(f.key);
    this.negative.delete(f.key);
    if (this.cache.size >= this.maxCached) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(f.key, rec);
    this.events.dirRecordsLearned++;
    const peer = this.engine.learnRecord(rec.hostCert, rec.eph, rec.endpoint, now);
    this.log.log("debug", "record from directory", { query: f.key, host: rec.name });
    for (const w of f.waiters) w(peer ? { ok: true, record: rec, peer } : { ok: false, reason: "revoked" });
  }

  private addNegative(key: string, until: number): void {
    if (this.negative.size >= this.maxCached) this.negative.delete(this.negative.keys().next().value!);
    this.negative.set(key, until);
  }

  /**
   * Both ends moved at once: a tunnel that keeps sending but has heard nothing
   * authenticated for STALL_MS asks the directory where its peer is now. The
   * endpoint in a verified record of that same host is still only the
   * directory's observation (unsigned): it is probed, and the tunnel moves only
   * when the peer answers authenticated from there (Engine.probeEndpoint).
   * Not for a tunnel on a relayed path: the relay follows both ends' directory tunnels
   * wherever they move, and the way to a direct path is the NAT agent's (nat.ts: low-TTL
   * punches, then probes). Here, its own direct probes (which count as sends) made a loaded
   * relayed tunnel look stalled, and the probes of each such lookup, every RELOOKUP_MS,
   * renewed the unanswered NAT entries that keep the direct path shut.
   */
  private checkStalled(now: number): void {
    for (const p of this.engine.peers.values()) {
      const hc = p.hostCert;
      if (!hc || this.isDirectoryPeer(p)) continue;
      const t = p.sendTunnel();
      if (!t || t.state !== "established" || isRelayAddr(t.endpoint)) continue;
      if (now - t.lastRx < STALL_MS || t.lastTx <= t.lastRx || now - t.lastTx > STALL_MS) continue;
      const k = hc.publicKey.latin1Slice(0, 32);
      if (now - (this.relooked.get(k) ?? -Infinity) < RELOOKUP_MS) continue;
      if (this.relooked.size >= this.maxCached) this.relooked.delete(this.relooked.keys().next().value!);
      this.relooked.set(k, now);
      this.events.dirRelookups++;
      this.lookup(
        peerQuery(hc),
        now,
        (r) => {
          if (!r.ok || !equal(r.record.hostCert.publicKey, hc.publicKey)) return;
          const cur = p.sendTunnel();
          if (!cur || cur.state !== "established") return;
          if (!addrEqual(cur.endpoint, 0, r.record.endpoint, 0)) {
            // unsigned (observed by the directory): probe, move only on an authenticated answer
            this.engine.probeEndpoint(cur, r.record.endpoint, this.answerNow);
            return;
          }
          // Same place, still silent, and the peer's current key is younger than our tunnel: it
          // most likely restarted and lost the tunnel. Close ours; the next packet creates a new
          // one 0-RTT with the fresh record. (A live peer that only receives costs at most one
          // re-creation per key rotation.)
          if (r.record.eph.notBefore * 1000 > cur.createdAt) {
            this.events.dirStaleTunnels++;
            this.engine.closeTunnel(cur, this.answerNow, "stalled-peer-rekeyed");
          }
        },
        true,
      );
    }
  }

  private sweep(now: number): void {
    for (const [k, r] of this.cache) if (r.expiresAt <= now) this.cache.delete(k);
    for (const [k, until] of this.negative) if (until <= now) this.negative.delete(k);
    for (const [k, at] of this.relooked) if (now - at > 60_000) this.relooked.delete(k);
  }
}

/** The question that finds a known host again: its address, else its name. */
function peerQuery(hc: HostCert): LookupQuery {
  if (hc.ip4 !== null) return { op: "address", ip: hc.ip4 };
  return hc.ip6 !== null ? { op: "address", ip: hc.ip6 } : { op: "name", name: hc.name };
}
