/**
 * Names for people: host name -> the host's verified overlay addresses.
 *
 * Answers come, in this order, from
 *   1. this host's own certificate,
 *   2. the engine's peers whose host certificate it has verified (configured peers
 *      and hosts that created tunnels to us),
 *   3. the directory (when configured): a record the directory client verified
 *      against the CA; cached until the record expires, a negative answer for
 *      NEGATIVE_TTL_MS. Concurrent lookups of one name share one request.
 *
 * Nothing here trusts a name it did not get from a CA-signed host certificate.
 * "No directory answered" is an error (DirectoryUnavailable), distinct from
 * "no such host" (null), so DNS can answer SERVFAIL and NXDOMAIN respectively.
 */
import { MintunError } from "../errors.js";
import { fingerprint, isValidName, type HostCert } from "../wire/cert.js";
import { cidrContains } from "../ip/ip.js";

/** A negative directory answer is kept this long before asking again. */
export const NEGATIVE_TTL_MS = 5_000;
/**
 * A directory lookup that has not settled after this long counts as "no directory
 * answered" (the client retries each directory after 1 s; DNS clients wait ~5 s).
 */
export const LOOKUP_TIMEOUT_MS = 4_000;
/** At most this many names are cached (oldest insertion evicted first). */
export const MAX_CACHED_NAMES = 4096;

export type NameSource = "self" | "peer" | "directory";

/** What a name resolves to: only fields of a CA-verified host certificate, plus the record's expiry. */
export interface NameAnswer {
  name: string;
  ip4: string | null;
  ip6: string | null;
  subnets: string[];
  /** fingerprint of the host key */
  key: string;
  /** when this answer stops being valid (ms since the epoch): record or certificate expiry */
  expiresAt: number;
  source: NameSource;
}

/** A verified record as the directory client returns it. */
export interface VerifiedHost {
  cert: HostCert;
  /** ms since the epoch */
  expiresAt: number;
}

/**
 * Look a host up by name in the directory; resolves null when the directory
 * says there is no such host, rejects when no directory answered.
 */
export type DirectoryNameLookup = (name: string) => Promise<VerifiedHost | null>;

/** Look up who owns an overlay address (same contract as DirectoryNameLookup). */
export type DirectoryAddressLookup = (ip: string) => Promise<VerifiedHost | null>;

/** No directory answered (DNS: SERVFAIL). */
export class DirectoryUnavailable extends MintunError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ENODIRECTORY", message, options);
  }
}

export interface PeerView {
  hostCert: HostCert | null;
  /** the peer's current ephemeral certificate, when its record is known */
  eph: { notAfter: number } | null;
}

export interface NameServiceOptions {
  self: HostCert;
  /** the engine's peers (verified certificates only are used) */
  peers: () => Iterable<PeerView>;
  directory?: DirectoryNameLookup;
  /** reverse lookups (PTR) of overlay addresses no local certificate holds */
  directoryAddress?: DirectoryAddressLookup;
  now?: () => number;
}

export interface NameCounters {
  lookups: number;
  self: number;
  peer: number;
  cacheHits: number;
  directoryLookups: number;
  notFound: number;
  directoryFailures: number;
}

type CacheEntry = { answer: NameAnswer | null; until: number };

function answerOf(cert: HostCert, expiresAt: number, source: NameSource): NameAnswer {
  return {
    name: cert.name,
    ip4: cert.ip4,
    ip6: cert.ip6,
    subnets: [...cert.subnets],
    key: fingerprint(cert.publicKey),
    expiresAt,
    source,
  };
}

export class NameService {
  readonly counters: NameCounters = {
    lookups: 0,
    self: 0,
    peer: 0,
    cacheHits: 0,
    directoryLookups: 0,
    notFound: 0,
    directoryFailures: 0,
  };
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<NameAnswer | null>>();
  /** reverse answers from the directory: address -> host name (null: nobody has it) */
  private readonly addrCache = new Map<string, { name: string | null; until: number }>();
  private readonly addrInflight = new Map<string, Promise<string | null>>();
  private readonly now: () => number;

  constructor(private readonly opts: NameServiceOptions) {
    this.now = opts.now ?? Date.now;
  }

  get hasDirectory(): boolean {
    return this.opts.directory !== undefined;
  }

  /** Connect the directory client once it exists (the daemon may create it after us). */
  setDirectory(d: DirectoryNameLookup | undefined): void {
    this.opts.directory = d;
    this.cache.clear();
  }

  /**
   * The host called `name` (a certificate name, lower case), or null if there is
   * none. Rejects with DirectoryUnavailable when only the directory could know
   * and it did not answer.
   */
  async resolve(rawName: string): Promise<NameAnswer | null> {
    this.counters.lookups++;
    const name = rawName.toLowerCase();
    if (!isValidName(name)) {
      this.counters.notFound++;
      return null;
    }
    const now = this.now();
    const self = this.opts.self;
    if (self.name === name) {
      this.counters.self++;
      return answerOf(self, self.notAfter * 1000, "self");
    }
    for (const p of this.opts.peers()) {
      const c = p.hostCert;
      if (!c || c.name !== name || c.notAfter * 1000 <= now) continue;
      this.counters.peer++;
      const until = Math.min(c.notAfter, p.eph ? p.eph.notAfter : c.notAfter) * 1000;
      return answerOf(c, until, "peer");
    }
    const dir = this.opts.directory;
    if (!dir) {
      this.counters.notFound++;
      return null;
    }
    const hit = this.cache.get(name);
    if (hit && hit.until > now) {
      this.counters.cacheHits++;
      if (!hit.answer) this.counters.notFound++;
      return hit.answer;
    }
    if (hit) this.cache.delete(name);
    let p = this.inflight.get(name);
    if (!p) {
      p = this.ask(dir, name);
      this.inflight.set(name, p);
      const clear = (): void => void this.inflight.delete(name);
      p.then(clear, clear);
    }
    const a = await p;
    if (!a) this.counters.notFound++;
    return a;
  }

  /**
   * The name of the host whose certificate holds exactly this overlay address
   * (canonical text): this host, a peer, or a cached directory answer; else null.
   */
  nameOf(ip: string): string | null {
    const owns = (c: { ip4: string | null; ip6: string | null }) => c.ip4 === ip || c.ip6 === ip;
    if (owns(this.opts.self)) return this.opts.self.name;
    const nowSec = this.now() / 1000;
    for (const p of this.opts.peers())
      if (p.hostCert && p.hostCert.notAfter > nowSec && owns(p.hostCert)) return p.hostCert.name;
    for (const e of this.cache.values())
      if (e.answer && e.until > nowSec * 1000 && owns(e.answer)) return e.answer.name;
    return null;
  }

  /**
   * The name of the host owning an overlay address: nameOf, else the directory's
   * verified record of the address's owner (exactly that address, not a gateway of
   * a subnet holding it), cached like names. Null: nobody has it. Rejects with
   * DirectoryUnavailable when only an unreachable directory could know.
   */
  async reverse(ip: string): Promise<string | null> {
    const local = this.nameOf(ip);
    const dir = this.opts.directoryAddress;
    if (local !== null || !dir) return local;
    const now = this.now();
    const hit = this.addrCache.get(ip);
    if (hit && hit.until > now) return hit.name;
    let p = this.addrInflight.get(ip);
    if (!p) {
      p = (async () => {
        const v = await this.ask1(() => dir(ip), ip);
        const t = this.now();
        const name = v && v.expiresAt > t && (v.cert.ip4 === ip || v.cert.ip6 === ip) ? v.cert.name : null;
        if (this.addrCache.size >= MAX_CACHED_NAMES) {
          const oldest = this.addrCache.keys().next();
          if (!oldest.done) this.addrCache.delete(oldest.value);
        }
        this.addrCache.set(ip, { name, until: name ? v!.expiresAt : t + NEGATIVE_TTL_MS });
        return name;
      })();
      this.addrInflight.set(ip, p);
      const clear = (): void => void this.addrInflight.delete(ip);
      p.then(clear, clear);
    }
    return p;
  }

  /** One directory request, bounded by LOOKUP_TIMEOUT_MS; every failure is DirectoryUnavailable. */
  private async ask1(req: () => Promise<VerifiedHost | null>, what: string): Promise<VerifiedHost | null> {
    this.counters.directoryLookups++;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new DirectoryUnavailable(`no directory answered for '${what}' within ${LOOKUP_TIMEOUT_MS} ms`),
          ),
        LOOKUP_TIMEOUT_MS,
      );
      timer.unref();
    });
    try {
      return await Promise.race([req(), timeout]);
    } catch (e) {
      this.counters.directoryFailures++;
      if (e instanceof DirectoryUnavailable) throw e;
      throw new DirectoryUnavailable(`no directory answered for '${what}': ${(e as Error).message}`, {
        cause: e,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  private async ask(dir: DirectoryNameLookup, name: string): Promise<NameAnswer | null> {
    const v = await this.ask1(() => dir(name), name);
    const now = this.now();
    // the client verified the record; a name other than the one asked is not an answer to it
    const answer =
      v && v.cert.name === name && v.expiresAt > now ? answerOf(v.cert, v.expiresAt, "directory") : null;
    if (this.cache.size >= MAX_CACHED_NAMES) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(name, { answer, until: answer ? answer.expiresAt : now + NEGATIVE_TTL_MS });
    return answer;
  }
}

/** The directory client as the name service uses it (src/directory/client.ts `resolve`). */
export interface NameLookupClient {
  resolve(
    q: { op: "name"; name: string } | { op: "address"; ip: string },
  ): Promise<{ ok: true; record: { hostCert: HostCert; expiresAt: number } } | { ok: false; reason: string }>;
}

/**
 * Adapts the directory client: a verified record, null for "no such host", and
 * DirectoryUnavailable for everything else (no directory answered, it was busy,
 * or it served a record that failed verification: not an answer we can use).
 */
export function directoryNames(c: NameLookupClient): DirectoryNameLookup {
  return async (name) => {
    const r = await c.resolve({ op: "name", name });
    if (r.ok) return { cert: r.record.hostCert, expiresAt: r.record.expiresAt };
    if (r.reason === "notFound") return null;
    throw new DirectoryUnavailable(`directory lookup of '${name}' failed: ${r.reason}`);
  };
}

/**
 * Whether `ip` is an overlay address: inside one of the TUN routes that hold this
 * host's own overlay addresses (a gateway's LAN subnet in tun.routes is not the overlay).
 */
export function inOverlay(
  routes: readonly string[],
  self: { ip4: string | null; ip6: string | null },
  ip: string,
): boolean {
  for (const r of routes) {
    const ours =
      (self.ip4 !== null && cidrContains(r, self.ip4) >= 0) ||
      (self.ip6 !== null && cidrContains(r, self.ip6) >= 0);
    if (ours && cidrContains(r, ip) >= 0) return true;
  }
  return false;
}

/** Adapts the directory client's lookup by overlay address (same contract as directoryNames). */
export function directoryAddresses(c: NameLookupClient): DirectoryAddressLookup {
  return async (ip) => {
    const r = await c.resolve({ op: "address", ip });
    if (r.ok) return { cert: r.record.hostCert, expiresAt: r.record.expiresAt };
    if (r.reason === "notFound") return null;
    throw new DirectoryUnavailable(`directory lookup of ${ip} failed: ${r.reason}`);
  };
}
