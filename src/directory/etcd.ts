/**
 * EtcdStore: several directory instances share one etcd cluster (client:
 * the maintained `etcd3` package, gRPC). A registration at any instance is
 * visible to lookups at every other one.
 *
 * Keys (PREFIX defaults to /mintun/directory/), each holding the record as
 * JSON ({host, eph, observed}, certificates base64), all attached to one etcd
 * lease whose TTL is the record's remaining lifetime, so etcd itself expires
 * them with the ephemeral certificate:
 *
 *   PREFIX rec/<host key hex>     the record
 *   PREFIX name/<name>            the same record, by name
 *   PREFIX ip/<overlay address>   the same record, by each certified address
 *   PREFIX net/<cidr>             the same record, by each certified subnet
 *
 * A lookup is one etcd read (by name or address; by subnet a bounded range read
 * of PREFIX net/, longest match). Newer-than checks are left to the hosts,
 * which verify every record and prefer the later ephemeral certificate.
 */
import * as fs from "node:fs";
import { Etcd3, type IOptions } from "etcd3";
import type { EtcdConfig } from "../config/config.js";
import { MintunError } from "../errors.js";
import type { Logger } from "../log.js";
import { cidrContains, parseIp } from "../ip/ip.js";
import {
  type AddressMode,
  type PutResult,
  type RecordStore,
  type StoredRecord,
  recordFromJson,
  recordToJson,
} from "./store.js";

/** At most this many subnet keys are read for one subnet lookup. */
const MAX_SUBNET_KEYS = 4096;
/** An etcd operation that takes longer fails (the host asks another directory after 1 s anyway). */
export const ETCD_TIMEOUT_MS = 2_000;

/** Reject `p` after `ms` (the gRPC call itself is left to finish or fail on its own). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`etcd ${what}: no answer within ${ms} ms`)), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export class EtcdStore implements RecordStore {
  readonly kind = "etcd" as const;
  private count = 0;
  private lastCount = 0;

  private constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly maxRecords: number,
    private readonly log: Logger,
  ) {}

  /** Connect and check the cluster answers (a typed error names the endpoints otherwise). */
  static async open(cfg: EtcdConfig, maxRecords: number, log: Logger): Promise<EtcdStore> {
    const { endpoints, prefix } = cfg;
    const client = new Etcd3({ hosts: endpoints, dialTimeout: 3000, ...etcdSecurity(cfg) });
    const s = new EtcdStore(client, prefix, maxRecords, log);
    try {
      s.count = await within(s.countRecords(), 5_000, "count");
    } catch (e) {
      client.close();
      throw new MintunError("EETCD", `etcd at ${endpoints.join(", ")} does not answer: ${String(e)}`, {
        cause: e,
      });
    }
    log.log("info", "etcd store connected", { endpoints, prefix, records: s.count });
    return s;
  }

  private async countRecords(): Promise<number> {
    return this.client.getAll().prefix(`${this.prefix}rec/`).count();
  }

  put(r: StoredRecord, now: number): Promise<PutResult> {
    return within(this.doPut(r, now), ETCD_TIMEOUT_MS, "put");
  }

  private async doPut(r: StoredRecord, now: number): Promise<PutResult> {
    const ttl = Math.ceil((r.expiresAt - now) / 1000);
    if (ttl <= 0) return "older";
    const recKey = `${this.prefix}rec/${r.key}`;
    const exists = (await this.client.get(recKey).string()) !== null;
    if (!exists && this.count >= this.maxRecords) {
      this.count = await this.countRecords();
      if (this.count >= this.maxRecords) return "full";
    }
    const value = JSON.stringify(recordToJson(r));
    const lease = this.client.lease(ttl, { autoKeepAlive: false });
    try {
      const keys = [recKey, `${this.prefix}name/${r.name}`];
      for (const ip of [r.ip4, r.ip6]) if (ip) keys.push(`${this.prefix}ip/${ip}`);
      for (const s of r.subnets) keys.push(`${this.prefix}net/${s}`);
      for (const k of keys) await lease.put(k).value(value);
    } finally {
      lease.release(); // stops the local lease object only; etcd expires the keys at the TTL
    }
    if (!exists) this.count++;
    return "ok";
  }

  private async read(key: string, now: number): Promise<StoredRecord | null> {
    const v = await this.client.get(key).string();
    if (v === null) return null;
    let j: unknown;
    try {
      j = JSON.parse(v);
    } catch {
      return null;
    }
    const r = recordFromJson(j);
    return r && r.expiresAt > now ? r : null;
  }

  byName(name: string, now: number): Promise<StoredRecord | null> {
    return within(this.read(`${this.prefix}name/${name}`, now), ETCD_TIMEOUT_MS, "get");
  }

  byAddress(ip: string, mode: AddressMode, now: number): Promise<StoredRecord | null> {
    return within(this.lookupAddress(ip, mode, now), ETCD_TIMEOUT_MS, "get");
  }

  private async lookupAddress(ip: string, mode: AddressMode, now: number): Promise<StoredRecord | null> {
    const text = parseIp(ip)?.text;
    if (!text) return null;
    if (mode === "address") return this.read(`${this.prefix}ip/${text}`, now);
    const nets = await this.client.getAll().prefix(`${this.prefix}net/`).limit(MAX_SUBNET_KEYS).keys();
    let best: string | null = null;
    let bestLen = -1;
    for (const k of nets) {
      const l = cidrContains(k.slice(this.prefix.length + 4), text);
      if (l > bestLen) {
        best = k;
        bestLen = l;
      }
    }
    return best ? this.read(best, now) : null;
  }

  tick(now: number): void {
    if (now - this.lastCount < 10_000) return;
    this.lastCount = now;
    this.countRecords().then(
      (n) => (this.count = n),
      (e: unknown) => this.log.log("warn", "etcd count failed", { error: String(e) }),
    );
  }

  size(): number {
    return this.count;
  }

  close(): Promise<void> {
    this.client.close();
    return Promise.resolve();
  }
}

/**
 * TLS and authentication options for the etcd client, read from the files the
 * config names (typed error naming the file when one cannot be read). The
 * password is read once at start; its trailing newline is dropped.
 */
export function etcdSecurity(cfg: EtcdConfig): Pick<IOptions, "credentials" | "auth"> {
  const read = (what: string, file: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (e) {
      throw new MintunError("EETCD", `cannot read etcd ${what} ${file}: ${String(e)}`, { cause: e });
    }
  };
  const out: Pick<IOptions, "credentials" | "auth"> = {};
  if (cfg.tls) {
    out.credentials = {
      rootCertificate: read("CA bundle", cfg.tls.ca),
      ...(cfg.tls.cert && cfg.tls.key
        ? { certChain: read("client certificate", cfg.tls.cert), privateKey: read("client key", cfg.tls.key) }
        : {}),
    };
  }
  if (cfg.auth) {
    const password = read("password file", cfg.auth.passwordFile)
      .toString("utf8")
      .replace(/\r?\n$/, "");
    out.auth = { username: cfg.auth.username, password };
  }
  return out;
}
