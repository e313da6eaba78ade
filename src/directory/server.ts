/**
 * The directory role: answers DIR_REQUEST frames that arrive in authenticated
 * tunnels. A registration is stored for the identity the tunnel proved (its
 * host certificate from HELLO), with the ephemeral certificate it carries
 * (signed by that host, unexpired) and the underlay address the tunnel's
 * packets come from (what the directory observed), never an identity or
 * address claimed in the payload. Lookups answer with the stored raw
 * certificates; hosts verify them themselves.
 *
 * No sockets or timers here: requests come from the engine hook, answers leave
 * through `engine.sendFrame`, `tick(now)` runs on the daemon's coarse timer.
 * Store operations may be asynchronous (etcd), so answers are sent when the
 * store answers, with the clock's time then.
 *
 * Per host key, two token buckets bound the work a host can cause: one for
 * registrations, one for lookups (over the rate: RATE_LIMITED, counted).
 */
import { newDirDrops, newDirEvents } from "./counters.js";
import { type Logger, RateLimitedLog, nullLogger } from "../log.js";
import type { Engine } from "../tunnel/engine.js";
import type { Tunnel } from "../tunnel/tunnel.js";
import { decodeAddrRecord } from "../wire/addr.js";
import { decodeEphemeral, verifyCert, verifyEphemeral } from "../wire/cert.js";
import { type DirResponse, decodeDirRequest, encodeDirResponse, revChunkLength } from "../wire/directory.js";
import { FrameType } from "../wire/frames.js";
import { type RecordStore, type StoredRecord, makeRecord } from "./store.js";
import type { Rendezvous } from "./rendezvous.js";

export interface DirectoryServerOptions {
  store: RecordStore;
  clock: () => number;
  logger?: Logger;
  /** registrations per second per host (sustained) and burst */
  registerPerSec?: number;
  registerBurst?: number;
  /** lookups per second per host and burst */
  lookupPerSec?: number;
  lookupBurst?: number;
  /** hosts with a rate-limit bucket (bounded; oldest dropped) */
  maxHosts?: number;
  /** NAT traversal: notices to both hosts when a NATed host is looked up (absent: none) */
  rendezvous?: Rendezvous | null;
}

interface Bucket {
  reg: number;
  look: number;
  at: number;
}

export class DirectoryServer {
  /** the role's counters (status and metrics show them beside the engine's) */
  readonly drops = newDirDrops();
  readonly events = newDirEvents();
  private readonly buckets = new Map<string, Bucket>();
  private readonly log: Logger;
  private readonly rlog: RateLimitedLog;
  private readonly o: Required<Omit<DirectoryServerOptions, "logger" | "rendezvous">>;
  private readonly rdv: Rendezvous | null;
  /** requests waiting for the store (bounded: beyond it, UNAVAILABLE) */
  private busy = 0;
  private lastSweep = 0;
  static readonly MAX_BUSY = 1024;

  constructor(
    readonly engine: Engine,
    opts: DirectoryServerOptions,
  ) {
    this.log = opts.logger ?? nullLogger;
    this.rlog = new RateLimitedLog(this.log);
    this.rdv = opts.rendezvous ?? null;
    this.o = {
      store: opts.store,
      clock: opts.clock,
      registerPerSec: opts.registerPerSec ?? 1,
      registerBurst: opts.registerBurst ?? 10,
      lookupPerSec: opts.lookupPerSec ?? 200,
      lookupBurst: opts.lookupBurst ?? 400,
      maxHosts: opts.maxHosts ?? 100_000,
    };
  }

  get store(): RecordStore {
    return this.o.store;
  }

  /** A DIR_REQUEST frame from an authenticated tunnel. */
  onRequest(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    const m = decodeDirRequest(buf, off, len);
    const hc = t.peer.hostCert;
    const drops = this.drops;
    if (!m || !hc) {
      drops.dirRefused++;
      return;
    }
    const reply = (r: DirResponse): void => {
      this.events.dirRequestsServed++;
      this.engine.sendFrame(t, FrameType.DirResponse, encodeDirResponse(r), this.o.clock());
    };
    if (!this.take(hc.publicKey.toString("hex"), m.op === "register", now)) {
      drops.dirRateLimited++;
      reply({ op: m.op, id: m.id, status: "rateLimited" });
      return;
    }
    if (this.busy >= DirectoryServer.MAX_BUSY) {
      reply({ op: m.op, id: m.id, status: "unavailable" });
      return;
    }
    const nowSec = Math.floor(now / 1000);
    if (m.op === "register") {
      const eph = decodeEphemeral(m.eph);
      const vc = verifyCert(hc, this.engine.opts.ca, nowSec);
      const ve = eph ? verifyEphemeral(eph, hc, nowSec) : null;
      const a = decodeAddrRecord(t.endpoint, 0);
      const observed = { ip: a.ip, port: a.port };
      const rec = eph && vc.ok && ve?.ok ? makeRecord(hc.raw, eph.raw, observed) : null;
      if (!rec) {
        drops.dirRefused++;
        this.rlog.log(now, "warn", "dir-register", "registration refused", () => ({
          host: hc.name,
          cert: vc.ok ? "ok" : vc.reason,
          eph: ve ? (ve.ok ? "ok" : ve.reason) : "malformed",
        }));
        reply({ op: "register", id: m.id, status: "refused" });
        return;
      }
      this.run(
        this.o.store.put(rec, now),
        (res) => {
          if (res === "ok" || res === "older") this.rdv?.registered(hc.publicKey, eph!.endpoints);
          if (res === "ok") {
            this.events.dirRecordsStored++;
            this.log.log("debug", "registered", { host: rec.name, observed: `${a.ip}:${a.port}` });
            reply({ op: "register", id: m.id, status: "ok", observed });
          } else if (res === "older") {
            reply({ op: "register", id: m.id, status: "ok", observed });
          } else {
            drops.dirRefused++;
            this.rlog.log(now, "warn", "dir-full", "directory store full: registration refused", () => ({
              host: rec.name,
            }));
            reply({ op: "register", id: m.id, status: "unavailable" });
          }
        },
        () => reply({ op: "register", id: m.id, status: "unavailable" }),
      );
      return;
    }
    if (m.op === "revocation") {
      // the newest revocation list this directory holds (its own trust.revocationList, or a
      // newer one it fetched), in chunks; hosts verify it against the CA themselves
      const list = this.engine.revocation?.list ?? null;
      if (!list || list.number <= m.have) {
        reply({ op: m.op, id: m.id, status: "notFound" });
        return;
      }
      const n = revChunkLength(list.raw.length, m.offset);
      if (n === 0) {
        drops.dirRefused++;
        reply({ op: m.op, id: m.id, status: "refused" });
        return;
      }
      this.events.dirRevocationServed++;
      reply({
        op: m.op,
        id: m.id,
        status: "ok",
        number: list.number,
        total: list.raw.length,
        offset: m.offset,
        chunk: list.raw.subarray(m.offset, m.offset + n),
      });
      return;
    }
    const op = m.op;
    const q = op === "name" ? this.o.store.byName(m.name, now) : this.o.store.byAddress(m.ip, op, now);
    this.run(
      q,
      (r: StoredRecord | null) => {
        // notices first: the requester holds the relay token before it holds the record
        if (r) this.rdv?.onLookup(t, r, this.o.clock());
        reply(
          r
            ? { op, id: m.id, status: "ok", record: { host: r.host, eph: r.eph, observed: r.observed } }
            : { op, id: m.id, status: "notFound" },
        );
      },
      () => reply({ op: m.op, id: m.id, status: "unavailable" }),
    );
  }

  private run<T>(p: Promise<T>, ok: (v: T) => void, fail: () => void): void {
    this.busy++;
    p.then(
      (v) => {
        this.busy--;
        ok(v);
      },
      (e: unknown) => {
        this.busy--;
        this.rlog.log(this.o.clock(), "error", "dir-store", "directory store failed", () => ({
          store: this.o.store.kind,
          error: String(e),
        }));
        fail();
      },
    );
  }

  private take(key: string, register: boolean, now: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.o.maxHosts) this.buckets.delete(this.buckets.keys().next().value!);
      b = { reg: this.o.registerBurst, look: this.o.lookupBurst, at: now };
      this.buckets.set(key, b);
    } else {
      const dt = Math.max(0, now - b.at) / 1000;
      b.reg = Math.min(this.o.registerBurst, b.reg + dt * this.o.registerPerSec);
      b.look = Math.min(this.o.lookupBurst, b.look + dt * this.o.lookupPerSec);
      b.at = now;
    }
    if (register) {
      if (b.reg < 1) return false;
      b.reg--;
    } else {
      if (b.look < 1) return false;
      b.look--;
    }
    return true;
  }

  tick(now: number): void {
    this.o.store.tick(now);
    this.rdv?.tick(now);
    if (now - this.lastSweep < 10_000) return;
    this.lastSweep = now;
    for (const [k, b] of this.buckets) if (now - b.at > 60_000) this.buckets.delete(k);
  }

  state(): { store: string; records: number; hosts: number } {
    return { store: this.o.store.kind, records: this.o.store.size(), hosts: this.buckets.size };
  }

  close(): Promise<void> {
    return this.o.store.close();
  }
}
