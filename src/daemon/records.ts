/**
 * Configured peers' records on disk (STATE/records/NAME.rec): a restarted daemon installs
 * the record it last learned at once, so its first CREATE needs no record round trip
 * (docs/PERFORMANCE.md "Start-up"; the record request is sent anyway, in parallel).
 *
 * A record is public (the peer's host certificate and its signed ephemeral certificate),
 * so the file holds nothing secret; it is still written 0600 under the state directory.
 * Nothing read from disk is trusted: every check an answered record passes applies again
 * (certificate against the CA and in validity, ephemeral certificate signed by that host
 * and in validity, the configured name, a pinned certificate's key, revocation in
 * engine.learnRecord). A cached ephemeral key the peer no longer holds (it restarted) costs
 * one STALE answer, which carries its current key: one round trip, as the fetch would.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { equal } from "../crypto/sodium.js";
import type { Logger } from "../log.js";
import type { Engine } from "../tunnel/engine.js";
import type { Peer } from "../tunnel/tunnel.js";
import {
  type CaCert,
  type EphemeralCert,
  type HostCert,
  decodeCert,
  decodeEphemeral,
  isValidName,
  verifyCert,
  verifyEphemeral,
} from "../wire/cert.js";
import { errorFields } from "./tasks.js";

/** the state directory's subdirectory for records */
export const RECORDS_SUBDIR = "records";
/** larger files are not read (a record is a few hundred bytes) */
export const MAX_RECORD_FILE_BYTES = 16 * 1024;

export interface RecordCacheCounters {
  /** records installed from disk at start */
  installed: number;
  /** files present but refused (unreadable, malformed, not verifying, another name or key) */
  refused: number;
  /** files written */
  saved: number;
  /** writes that failed */
  saveErrors: number;
}

export class RecordCache {
  readonly counters: RecordCacheCounters = { installed: 0, refused: 0, saved: 0, saveErrors: 0 };
  /** name -> the host and ephemeral certificates last written or installed (by identity) */
  private readonly saved = new Map<string, { host: HostCert; eph: EphemeralCert }>();
  private warned = false;

  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  static forState(stateDir: string, log: Logger): RecordCache {
    return new RecordCache(path.join(stateDir, RECORDS_SUBDIR), log);
  }

  fileOf(name: string): string | null {
    // names are [a-z0-9.-]; the suffix keeps "." and ".." from naming directories
    return isValidName(name) ? path.join(this.dir, `${name}.rec`) : null;
  }

  /**
   * Install the cached records of configured peers that have none yet (after
   * engine.addPeer). `pinned`: a configured peer certificate, whose key the record must carry.
   */
  install(
    engine: Engine,
    peers: { name: string; endpoint: Buffer; cert?: HostCert }[],
    ca: CaCert,
    now: number,
  ): number {
    const nowSec = Math.floor(now / 1000);
    let n = 0;
    for (const pc of peers) {
      const file = this.fileOf(pc.name);
      if (!file) continue;
      let text: string;
      try {
        const st = fs.statSync(file, { throwIfNoEntry: false });
        if (!st) continue;
        if (!st.isFile() || st.size > MAX_RECORD_FILE_BYTES) throw new Error("not a record file");
        text = fs.readFileSync(file, "utf8");
      } catch (e) {
        this.refuse(pc.name, "unreadable", errorFields(e));
        continue;
      }
      const why = this.installOne(engine, pc, text, ca, nowSec, now);
      if (why) this.refuse(pc.name, why);
      else n++;
    }
    this.counters.installed += n;
    return n;
  }

  private installOne(
    engine: Engine,
    pc: { name: string; endpoint: Buffer; cert?: HostCert },
    text: string,
    ca: CaCert,
    nowSec: number,
    now: number,
  ): string | null {
    let raw: { host?: unknown; eph?: unknown };
    try {
      raw = JSON.parse(text) as { host?: unknown; eph?: unknown };
    } catch {
      return "malformed";
    }
    if (typeof raw?.host !== "string" || typeof raw.eph !== "string") return "malformed";
    const cert = decodeCert(Buffer.from(raw.host, "base64"));
    const eph = decodeEphemeral(Buffer.from(raw.eph, "base64"));
    if (!cert || cert.kind !== "host" || !eph) return "malformed";
    const vc = verifyCert(cert, ca, nowSec);
    if (!vc.ok) return `certificate ${vc.reason}`;
    const ve = verifyEphemeral(eph, cert, nowSec);
    if (!ve.ok) return `record ${ve.reason}`; // expired: the normal case after a long stop
    if (cert.name !== pc.name) return `certificate names '${cert.name}'`;
    if (pc.cert && !equal(pc.cert.publicKey, cert.publicKey))
      return "another key than the configured certificate";
    const known = engine.peers.get(cert.publicKey.latin1Slice(0, 32)) ?? engine.unresolved.get(pc.name);
    if (known?.eph) return null; // already has one (nothing to do)
    if (!engine.learnRecord(cert, eph, pc.endpoint, now)) return "revoked";
    const p = engine.peers.get(cert.publicKey.latin1Slice(0, 32));
    if (p?.hostCert && p.eph) this.saved.set(pc.name, { host: p.hostCert, eph: p.eph });
    this.log.log("debug", "cached record installed", { peer: pc.name, keyId: eph.keyId });
    return null;
  }

  private refuse(name: string, why: string, fields: Record<string, unknown> = {}): void {
    this.counters.refused++;
    this.log.log("debug", "cached record not used", { peer: name, why, ...fields });
  }

  /**
   * Write the records of configured peers that changed since the last write (daemon timer
   * and stop). A change is a new certificate object (the engine replaces, never mutates).
   */
  sync(peers: Iterable<Peer>): void {
    for (const p of peers) {
      if (!p.configured || p.anyName || !p.hostCert || !p.eph) continue;
      const s = this.saved.get(p.name);
      if (s && s.host === p.hostCert && s.eph === p.eph) continue;
      this.saved.set(p.name, { host: p.hostCert, eph: p.eph }); // once per change, also when the write fails
      this.save(p.name, p.hostCert.raw, p.eph.raw);
    }
  }

  private save(name: string, host: Buffer, eph: Buffer): void {
    const file = this.fileOf(name);
    if (!file) return;
    const tmp = `${file}.tmp`;
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(
        tmp,
        JSON.stringify({ host: host.toString("base64"), eph: eph.toString("base64") }) + "\n",
        { mode: 0o600 },
      );
      fs.renameSync(tmp, file);
      this.counters.saved++;
    } catch (e) {
      this.counters.saveErrors++;
      if (!this.warned)
        this.log.log("warn", "cannot save a peer record (restarts fetch it again)", {
          file,
          ...errorFields(e),
        });
      this.warned = true;
    }
  }
}
