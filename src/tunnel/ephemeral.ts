/**
 * Ephemeral host keys (X25519), published in ephemeral certificates signed by
 * the host key. A new key is made every lifetime/2 and each is valid for
 * `lifetime`, so at any moment at most two are live: clients holding a record
 * up to one rotation old still create tunnels 0-RTT. When a key's certificate
 * expires its secret is zeroed and its replay record dropped.
 *
 * The replay record is the set of creator per-tunnel keys (T_I) seen under
 * that ephemeral key: a replayed CREATE carries a T_I already seen. Bounded:
 * when full, further creations under that key are refused (counted) until the
 * next rotation, which the engine then forces early. Each creator host (by
 * its verified host key) has a share of it, `maxReplayPerHost`: a host past
 * its share gets its further creations under that key refused, so one host
 * (a member, or a stolen host key, creating from many source addresses)
 * cannot fill the record and lock the others out until the key expires.
 */
import { dh, dhKeyPair, edPkToX, zero } from "../crypto/sodium.js";
import { signEphemeral, type EphemeralCert } from "../wire/cert.js";
import { PROTOCOL_VERSION } from "./constants.js";

export interface EphKey {
  keyId: number;
  publicKey: Buffer;
  secretKey: Buffer;
  cert: EphemeralCert;
  /** ms */
  notAfter: number;
  createdAt: number;
  seen: Set<string>;
  /** entries of `seen` per creator host key (its share) */
  seenPerHost: Map<string, number>;
  /** ss = DH(e, host key) per creator host, so repeat creators cost no second DH; erased with the key */
  ss: Map<string, Buffer>;
}

export interface EphemeralOptions {
  hostPublicKey: Buffer;
  hostSecretKey: Buffer;
  lifetimeMs: number;
  minFirstPacket: number;
  endpoints: () => { ip: string; port: number }[];
  maxReplayRecords: number;
  maxReplayPerHost: number;
}

export class EphemeralKeys {
  private keys: EphKey[] = [];
  private nextId: number;
  rotations = 0;

  constructor(private readonly opts: EphemeralOptions) {
    this.nextId = (Math.random() * 0x7fffffff) >>> 0;
  }

  get current(): EphKey | undefined {
    return this.keys[this.keys.length - 1];
  }

  get(keyId: number, now: number): EphKey | undefined {
    for (const k of this.keys) if (k.keyId === keyId && k.notAfter > now) return k;
    return undefined;
  }

  /** All live keys (for status output). */
  list(): readonly EphKey[] {
    return this.keys;
  }

  rotate(now: number): EphKey {
    const kp = dhKeyPair();
    const keyId = this.nextId++ >>> 0;
    const nowSec = Math.floor(now / 1000);
    const lifeSec = Math.max(1, Math.round(this.opts.lifetimeMs / 1000));
    const cert = signEphemeral(
      {
        hostKey: this.opts.hostPublicKey,
        keyId,
        publicKey: kp.publicKey,
        notBefore: nowSec - 1,
        notAfter: nowSec + lifeSec,
        endpoints: this.opts.endpoints().slice(0, 8),
        protocolVersion: PROTOCOL_VERSION,
        minFirstPacket: this.opts.minFirstPacket,
      },
      this.opts.hostSecretKey,
    );
    const k: EphKey = {
      keyId,
      publicKey: kp.publicKey,
      secretKey: kp.secretKey,
      cert,
      notAfter: now + lifeSec * 1000,
      createdAt: now,
      seen: new Set(),
      seenPerHost: new Map(),
      ss: new Map(),
    };
    this.keys.push(k);
    this.rotations++;
    return k;
  }

  /** Rotate when due, erase expired keys. Returns true when a new key was made. */
  tick(now: number): boolean {
    let erased = false;
    this.keys = this.keys.filter((k) => {
      if (k.notAfter > now) return true;
      erase(k);
      erased = true;
      return false;
    });
    void erased;
    const cur = this.current;
    if (
      !cur ||
      now - cur.createdAt >= this.opts.lifetimeMs / 2 ||
      cur.seen.size >= this.opts.maxReplayRecords
    ) {
      this.rotate(now);
      return true;
    }
    return false;
  }

  /**
   * Record a creator key under an ephemeral key, for the creator host `hostPk`.
   * "replay": seen before; "full": the record is full; "hostFull": that host's share is.
   */
  remember(k: EphKey, tI: Buffer | string, hostPk: Buffer | string): "ok" | "replay" | "full" | "hostFull" {
    const s = typeof tI === "string" ? tI : tI.latin1Slice(0, tI.length);
    if (k.seen.has(s)) return "replay";
    if (k.seen.size >= this.opts.maxReplayRecords) return "full";
    const h = typeof hostPk === "string" ? hostPk : hostPk.latin1Slice(0, hostPk.length);
    const n = k.seenPerHost.get(h) ?? 0;
    if (n >= this.opts.maxReplayPerHost) return "hostFull";
    k.seenPerHost.set(h, n + 1);
    k.seen.add(s);
    return "ok";
  }

  /**
   * ss for a creator host key (Ed25519), computed once per ephemeral key. Null for a key that
   * does not convert. `id`: hostPk as a latin1 string when the caller has it (one slice per creation).
   */
  ssFor(k: EphKey, hostPk: Buffer, id = hostPk.latin1Slice(0, hostPk.length)): Buffer | null {
    const hit = k.ss.get(id);
    if (hit) return hit;
    const x = edPkToX(hostPk);
    const ss = x ? dh(k.secretKey, x) : null;
    if (!ss) return null;
    if (k.ss.size >= this.opts.maxReplayRecords) {
      const first = k.ss.keys().next().value!;
      zero(k.ss.get(first));
      k.ss.delete(first);
    }
    k.ss.set(id, ss);
    return ss;
  }

  /** `tI` as a Buffer or as its latin1 string (the record's key; a creation makes it once for both calls) */
  isReplay(k: EphKey, tI: Buffer | string): boolean {
    return k.seen.has(typeof tI === "string" ? tI : tI.latin1Slice(0, tI.length));
  }

  close(): void {
    for (const k of this.keys) erase(k);
    this.keys = [];
  }
}

function erase(k: EphKey): void {
  zero(k.secretKey);
  k.seen.clear();
  k.seenPerHost.clear();
  for (const v of k.ss.values()) zero(v);
  k.ss.clear();
}
