/**
 * Directory record storage. The directory keeps, per registered host key, the
 * raw host certificate, the raw ephemeral certificate and the underlay address
 * it observed the registration from; records expire with the ephemeral
 * certificate (or the host certificate, if sooner).
 *
 *   MemoryIndex  the tables (by key, name, address, subnet), bounded
 *   FileStore    MemoryIndex persisted to STATE/directory.json atomically
 *                (temp file, fsync, rename, fsync of the directory), at most
 *                once per FLUSH_MS after a change (the default store)
 *   EtcdStore    several directories share one etcd cluster (etcd.ts)
 *
 * The store is not trusted by the hosts (they verify every record); it is
 * trusted by the directory only to hold what it was given.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MintunError } from "../errors.js";
import type { Logger } from "../log.js";
import { nullLogger } from "../log.js";
import { decodeCert, decodeEphemeral, type HostCert } from "../wire/cert.js";
import { cidrContains, parseIp } from "../ip/ip.js";
import type { DirEndpoint } from "../wire/directory.js";

export interface StoredRecord {
  /** host public key, hex */
  key: string;
  name: string;
  ip4: string | null;
  ip6: string | null;
  subnets: string[];
  host: Buffer;
  eph: Buffer;
  observed: DirEndpoint | null;
  /** ms */
  expiresAt: number;
}

export type PutResult = "ok" | "full" | "older";
export type AddressMode = "address" | "subnet";

export interface RecordStore {
  readonly kind: "file" | "etcd" | "memory";
  put(r: StoredRecord, now: number): Promise<PutResult>;
  byName(name: string, now: number): Promise<StoredRecord | null>;
  /**
   * address: the host owning exactly this address (never a gateway: hosts accept only
   * the exact owner for an address query); subnet: the longest certified subnet holding it
   */
  byAddress(ip: string, mode: AddressMode, now: number): Promise<StoredRecord | null>;
  /** drop expired records; persist if needed (called on the coarse tick) */
  tick(now: number): void;
  /** records held locally (etcd: the last count seen) */
  size(): number;
  close(): Promise<void>;
}

/** Build a stored record from raw certificates (null when they do not decode). */
export function makeRecord(host: Buffer, eph: Buffer, observed: DirEndpoint | null): StoredRecord | null {
  const c = decodeCert(host);
  const e = decodeEphemeral(eph);
  if (!c || c.kind !== "host" || !e) return null;
  const hc = c as HostCert;
  return {
    key: hc.publicKey.toString("hex"),
    name: hc.name,
    ip4: hc.ip4,
    ip6: hc.ip6,
    subnets: hc.subnets,
    host: Buffer.from(host),
    eph: Buffer.from(eph),
    observed,
    expiresAt: Math.min(e.notAfter, hc.notAfter) * 1000,
  };
}

/** JSON form (files, etcd values). */
export interface RecordJson {
  host: string;
  eph: string;
  observed: DirEndpoint | null;
}

export function recordToJson(r: StoredRecord): RecordJson {
  return { host: r.host.toString("base64"), eph: r.eph.toString("base64"), observed: r.observed };
}

export function recordFromJson(j: unknown): StoredRecord | null {
  if (!j || typeof j !== "object") return null;
  const o = j as Partial<RecordJson>;
  if (typeof o.host !== "string" || typeof o.eph !== "string") return null;
  let observed: DirEndpoint | null = null;
  if (o.observed) {
    const ob = o.observed as Partial<DirEndpoint>;
    if (typeof ob.ip !== "string" || !parseIp(ob.ip) || typeof ob.port !== "number") return null;
    observed = { ip: ob.ip, port: ob.port };
  }
  return makeRecord(Buffer.from(o.host, "base64"), Buffer.from(o.eph, "base64"), observed);
}

/** The in-memory tables, bounded by maxRecords. Synchronous. */
export class MemoryIndex {
  readonly byKey = new Map<string, StoredRecord>();
  private readonly names = new Map<string, string>();
  private readonly ips = new Map<string, string>();
  /** records with subnets (gateways), scanned for the longest match */
  private readonly gateways = new Set<string>();

  constructor(readonly maxRecords: number) {}

  get size(): number {
    return this.byKey.size;
  }

  put(r: StoredRecord, now: number): PutResult {
    const old = this.byKey.get(r.key);
    if (old && old.expiresAt > r.expiresAt) return "older";
    if (!old && this.byKey.size >= this.maxRecords) {
      this.sweep(now);
      if (this.byKey.size >= this.maxRecords) return "full";
    }
    if (old) this.unindex(old);
    this.byKey.set(r.key, r);
    this.names.set(r.name, r.key);
    if (r.ip4) this.ips.set(r.ip4, r.key);
    if (r.ip6) this.ips.set(r.ip6, r.key);
    if (r.subnets.length > 0) this.gateways.add(r.key);
    return "ok";
  }

  private unindex(r: StoredRecord): void {
    this.byKey.delete(r.key);
    if (this.names.get(r.name) === r.key) this.names.delete(r.name);
    for (const ip of [r.ip4, r.ip6]) if (ip && this.ips.get(ip) === r.key) this.ips.delete(ip);
    this.gateways.delete(r.key);
  }

  private live(key: string | undefined, now: number): StoredRecord | null {
    const r = key === undefined ? undefined : this.byKey.get(key);
    return r && r.expiresAt > now ? r : null;
  }

  byName(name: string, now: number): StoredRecord | null {
    return this.live(this.names.get(name), now);
  }

  byAddress(ip: string, mode: AddressMode, now: number): StoredRecord | null {
    const text = parseIp(ip)?.text;
    if (!text) return null;
    if (mode === "address") return this.live(this.ips.get(text), now);
    let best: StoredRecord | null = null;
    let bestLen = -1;
    for (const k of this.gateways) {
      const r = this.live(k, now);
      if (!r) continue;
      for (const s of r.subnets) {
        const l = cidrContains(s, text);
        if (l > bestLen) {
          best = r;
          bestLen = l;
        }
      }
    }
    return best;
  }

  /** Drop expired records; returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const r of [...this.byKey.values()])
      if (r.expiresAt <= now) {
        this.unindex(r);
        n++;
      }
    return n;
  }
}

/** Memory only (tests, and the base of FileStore). */
export class MemoryStore implements RecordStore {
  readonly kind: "file" | "memory" = "memory";
  readonly index: MemoryIndex;
  constructor(maxRecords: number) {
    this.index = new MemoryIndex(maxRecords);
  }
  put(r: StoredRecord, now: number): Promise<PutResult> {
    return Promise.resolve(this.index.put(r, now));
  }
  byName(name: string, now: number): Promise<StoredRecord | null> {
    return Promise.resolve(this.index.byName(name, now));
  }
  byAddress(ip: string, mode: AddressMode, now: number): Promise<StoredRecord | null> {
    return Promise.resolve(this.index.byAddress(ip, mode, now));
  }
  tick(now: number): void {
    this.index.sweep(now);
  }
  size(): number {
    return this.index.size;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export const STORE_FILE = "directory.json";
/** A change is written at most this long after it was made. */
export const FLUSH_MS = 500;
const FILE_VERSION = 1;

/**
 * The embedded store: MemoryIndex persisted to `dir/directory.json`. Writes are
 * atomic (a reader or a restart after kill -9 sees the old or the new file,
 * never a torn one) and coalesced (one write per FLUSH_MS at most).
 */
export class FileStore extends MemoryStore {
  override readonly kind = "file" as const;
  readonly file: string;
  private dirty = false;
  private lastWrite = 0;
  private writing: Promise<void> | null = null;
  writes = 0;

  constructor(
    readonly dir: string,
    maxRecords: number,
    private readonly log: Logger = nullLogger,
  ) {
    super(maxRecords);
    this.file = path.join(dir, STORE_FILE);
  }

  /** Read the persisted records (expired ones are dropped). A damaged file is a typed error. */
  load(now: number): number {
    let text: string;
    try {
      text = fs.readFileSync(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw new MintunError("ESTATE", `${this.file}: cannot read: ${(e as Error).message}`, { cause: e });
    }
    let j: { version?: unknown; records?: unknown };
    try {
      j = JSON.parse(text) as typeof j;
    } catch (e) {
      throw new MintunError("ESTATE", `${this.file}: not JSON (remove it to start empty)`, { cause: e });
    }
    if (j.version !== FILE_VERSION || !Array.isArray(j.records))
      throw new MintunError("ESTATE", `${this.file}: expected {version: ${FILE_VERSION}, records: [...]}`);
    let n = 0;
    for (const x of j.records) {
      const r = recordFromJson(x);
      if (r && r.expiresAt > now && this.index.put(r, now) === "ok") n++;
    }
    this.log.log("info", "directory records loaded", { file: this.file, records: n });
    return n;
  }

  override put(r: StoredRecord, now: number): Promise<PutResult> {
    const res = this.index.put(r, now);
    if (res === "ok") this.dirty = true;
    return Promise.resolve(res);
  }

  override tick(now: number): void {
    if (this.index.sweep(now) > 0) this.dirty = true;
    if (this.dirty && !this.writing && now - this.lastWrite >= FLUSH_MS) {
      this.dirty = false;
      this.lastWrite = now;
      this.writing = this.write().finally(() => (this.writing = null));
    }
  }

  /** Write the current records atomically. */
  async write(): Promise<void> {
    const records = [...this.index.byKey.values()].map(recordToJson);
    const body = JSON.stringify({ version: FILE_VERSION, records });
    const tmp = `${this.file}.tmp-${process.pid}`;
    try {
      await fs.promises.mkdir(this.dir, { recursive: true, mode: 0o700 });
      const fh = await fs.promises.open(tmp, "w", 0o600);
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.promises.rename(tmp, this.file);
      const dh = await fs.promises.open(this.dir, "r");
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
      this.writes++;
    } catch (e) {
      this.dirty = true; // try again on a later tick
      this.log.log("error", "directory store write failed", { file: this.file, error: String(e) });
    }
  }

  override async close(): Promise<void> {
    if (this.writing) await this.writing;
    if (this.dirty) await this.write();
  }
}
