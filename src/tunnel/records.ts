/**
 * Peers and their signed records: configured peers (add, reconcile on reload), the
 * record fetch (RECORD_REQUEST, answered sealed to a one-time key), and the entry points
 * the directory client uses (endpoint-only peers, verified records, endpoint probes).
 */
import { dh, dhKeyPair, edPkToX, equal, randomBytes, zero } from "../crypto/sodium.js";
import {
  type EphemeralCert,
  type HostCert,
  decodeCert,
  decodeEphemeral,
  verifyCert,
  verifyEphemeral,
} from "../wire/cert.js";
import { ADDR_BYTES, addrEqual, addrToString } from "../wire/addr.js";
import { FrameType } from "../wire/frames.js";
import {
  PacketType,
  decodeRecordRequest,
  decodeRecordResponseHeader,
  decodeRecordBody,
  RECORD_AD_BYTES,
  encodeRecordRequest,
  encodeRecordResponse,
  tidKeyOf,
  writeTypeCounter,
} from "../wire/packet.js";
import { AEAD_TAG_BYTES, RECORD_REQUEST_BYTES, RECORD_RETRY_MS } from "./constants.js";
import { recordKey } from "./keys.js";
import { Peer, Tunnel } from "./tunnel.js";
import type { Conn } from "../conn/conns.js";
import { type PeerConfig, PROBE_BODY } from "./options.js";
import { Connections } from "./connections.js";
import { startupMark } from "../startup.js";

export abstract class Records extends Connections {
  /** an inner packet for a peer without a usable tunnel (create.ts) */
  abstract sendSlow(
    peer: Peer,
    buf: Buffer,
    off: number,
    len: number,
    now: number,
    looked?: Conn | null,
  ): void;
  /** a verified record arrived for a peer in stall recovery (timers.ts) */
  protected abstract recoverCreate(p: Peer, now: number): void;

  /** Add a configured peer. With a certificate its routes are known at once; the record is fetched. */
  addPeer(pc: PeerConfig, now: number): Peer {
    const p = new Peer(pc.name, pc.endpoint, true);
    if (pc.cert) {
      const v = verifyCert(pc.cert, this.opts.ca, Math.floor(now / 1000));
      if (v.ok && pc.cert.kind === "host") this.learnHost(p, pc.cert);
    }
    if (!p.hostCert) this.unresolved.set(pc.name, p);
    else this.peers.set(p.hostCert.publicKey.latin1Slice(0, 32), p);
    this.requestRecord(p, now);
    return p;
  }

  /**
   * Reconcile the configured peers with a new list (config reload): peers that
   * stay keep their tunnels (an endpoint change applies to new packets only
   * after the peer authenticates from it, or at once when no tunnel exists);
   * new peers are added and their records fetched; removed peers' tunnels are
   * closed. Peers learned from incoming tunnels are not touched.
   */
  setPeers(list: PeerConfig[], now: number): { added: string[]; removed: string[]; kept: string[] } {
    const want = new Map(list.map((p) => [p.name, p]));
    const res = { added: [] as string[], removed: [] as string[], kept: [] as string[] };
    for (const p of [...this.peers.values(), ...this.unresolved.values()]) {
      if (!p.configured || p.anyName) continue; // directories are not in the peers list
      const w = want.get(p.name);
      if (!w) {
        for (const t of p.tunnels.slice()) {
          if (t.state === "established") this.sendControl(t, FrameType.Close, Buffer.from([0]), now);
          this.closeTunnel(t, now, "removed from config");
        }
        this.routes.removeValue(p);
        if (p.hostCert) this.peers.delete(p.hostCert.publicKey.latin1Slice(0, 32));
        this.unresolved.delete(p.name);
        res.removed.push(p.name);
        continue;
      }
      want.delete(p.name);
      if (w.endpoint && p.tunnels.length === 0) p.endpoint = Buffer.from(w.endpoint);
      res.kept.push(p.name);
    }
    for (const w of want.values()) {
      this.addPeer(w, now);
      res.added.push(w.name);
    }
    this.out.flush();
    return res;
  }

  protected learnHost(p: Peer, cert: HostCert): void {
    if (p.hostCert) this.routes.removeValue(p);
    p.hostCert = cert;
    p.hostX = edPkToX(cert.publicKey);
    p.name = cert.name;
    if (cert.ip4) this.routes.add(`${cert.ip4}/32`, p);
    if (cert.ip6) this.routes.add(`${cert.ip6}/128`, p);
    for (const s of cert.subnets) this.routes.add(s, p);
  }

  /**
   * A verified certificate of a known peer (HELLO, record, directory): when it is newer
   * than the cached one (later notBefore; or the cached one no longer valid) it replaces
   * it: routes follow its addresses and subnets, and open connections are judged again
   * under its groups. An older certificate never replaces a newer one, so a renewal that
   * removed a group cannot be undone by presenting the previous certificate.
   */
  protected renewHost(p: Peer, cert: HostCert, now: number): void {
    const old = p.hostCert;
    if (!old || old.raw.equals(cert.raw)) return;
    const nowSec = Math.floor(now / 1000);
    const oldUsable = nowSec >= old.notBefore && nowSec < old.notAfter && !this.revocation?.revoked(old);
    if (oldUsable && cert.notBefore <= old.notBefore) return;
    this.learnHost(p, cert);
    this.events.peerCertsRenewed++;
    this.log.log("info", "peer certificate renewed", {
      peer: p.name,
      notAfter: new Date(cert.notAfter * 1000).toISOString(),
      groups: cert.groups.join(",") || "-",
    });
    this.rejudge(now);
  }

  /**
   * CERT frame: the peer's renewed host certificate, inside its authenticated tunnel. It
   * must verify (CA, validity, not revoked) and carry the tunnel peer's key; then it
   * replaces the cached one if newer (renewHost). Else counted in drops.badRecord.
   */
  protected onPeerCert(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    const known = t.peer.hostCert;
    const v = this.certs.verifyHost(Buffer.from(buf.subarray(off, off + len)), Math.floor(now / 1000));
    if (!known || !v.ok || !equal(v.cert.publicKey, known.publicKey)) {
      if (!v.ok && v.reason === "revoked") this.drops.revoked++;
      else this.drops.badRecord++;
      return;
    }
    this.renewHost(t.peer, v.cert, now);
  }

  /**
   * This host's own renewed certificate (reload): same key and the same addresses and
   * subnets (those need a restart), verified against the CA. It goes into every later
   * HELLO and record answer, and a CERT frame tells every established tunnel's peer now.
   * Returns why not, or null.
   */
  setHostCert(cert: HostCert, now: number): string | null {
    const old = this.opts.hostCert;
    if (!equal(cert.publicKey, old.publicKey)) return "another key (needs a restart)";
    if (cert.ip4 !== old.ip4 || cert.ip6 !== old.ip6 || cert.subnets.join() !== old.subnets.join())
      return "other addresses or subnets (needs a restart)";
    const v = verifyCert(cert, this.opts.ca, Math.floor(now / 1000));
    if (!v.ok) return `does not verify: ${v.reason}`;
    if (old.raw.equals(cert.raw)) return null;
    this.opts.hostCert = cert;
    for (const p of this.peers.values())
      for (const t of p.tunnels)
        if (t.state === "established") this.sendControl(t, FrameType.Cert, cert.raw, now);
    this.out.flush();
    this.log.log("info", "own certificate renewed", {
      notAfter: new Date(cert.notAfter * 1000).toISOString(),
    });
    return null;
  }

  protected peerForCert(cert: HostCert, src: Buffer, srcOff: number, now: number): Peer {
    const key = cert.publicKey.latin1Slice(0, 32);
    let p = this.peers.get(key);
    if (p) {
      this.renewHost(p, cert, now);
      return p;
    }
    // a configured peer waiting for its record, with this name
    p = this.unresolved.get(cert.name);
    if (p) this.unresolved.delete(cert.name);
    else p = new Peer(cert.name, src.subarray(srcOff, srcOff + ADDR_BYTES), false);
    this.learnHost(p, cert);
    this.peers.set(key, p);
    return p;
  }

  requestRecord(p: Peer, now: number): void {
    if (!p.endpoint) return;
    if (p.recordReq && now - p.recordReq.sentAt < RECORD_RETRY_MS * Math.min(8, 2 ** p.recordReq.attempts))
      return;
    const tid = randomBytes(8);
    // a one-time key: the answer comes sealed to it (no certificate in the clear)
    const q = dhKeyPair();
    const req = encodeRecordRequest(tidKeyOf(tid), q.publicKey, RECORD_REQUEST_BYTES);
    if (p.recordReq) zero(p.recordReq.q.secretKey);
    p.recordReq = { tid: tidKeyOf(tid), sentAt: now, attempts: (p.recordReq?.attempts ?? 0) + 1, q };
    this.events.recordRequestsSent++;
    this.out.sendUdp(req, 0, req.length, p.endpoint, 0);
  }

  protected onRecordRequest(
    buf: Buffer,
    off: number,
    len: number,
    src: Buffer,
    srcOff: number,
    now: number,
  ): void {
    const m = decodeRecordRequest(buf, off, len);
    const k = this.eph.current;
    if (!m || !k) {
      this.drops.malformed++;
      return;
    }
    if (!this.buckets.take(src, srcOff, now)) {
      this.drops.rateLimited++;
      return;
    }
    // sealed to the requester's one-time key with our reply key (one X25519, after the rate limit)
    const r = this.replyKey(now);
    const resp = encodeRecordResponse(m.tid, r.publicKey, this.opts.hostCert.raw, k.cert.raw, len);
    if (!resp) {
      this.drops.noAmplify++;
      return;
    }
    const shared = dh(r.secretKey, m.pub);
    if (!shared) {
      this.drops.auth++;
      return;
    }
    // a random counter, hence nonce: a replayed request within the reply key's second gets
    // the same key, and the certificate may have changed meanwhile
    writeTypeCounter(resp, 0, PacketType.RecordResponse, randomBytes(6).readUIntBE(0, 6));
    const key = recordKey(shared, buf.subarray(off, off + 8), m.pub, r.publicKey);
    zero(shared);
    this.sealInPlace(resp, RECORD_AD_BYTES, key);
    this.events.recordResponsesSent++;
    this.out.sendUdp(resp, 0, resp.length, src, srcOff);
  }

  protected onRecordResponse(buf: Buffer, off: number, len: number, now: number): void {
    const h = decodeRecordResponseHeader(buf, off, len);
    if (!h) {
      this.drops.malformed++;
      return;
    }
    let peer: Peer | null = null;
    for (const p of this.unresolved.values()) if (p.recordReq?.tid === h.tid) peer = p;
    if (!peer) for (const p of this.peers.values()) if (p.recordReq?.tid === h.tid) peer = p;
    if (!peer) {
      this.drops.badRecord++;
      return;
    }
    const q = peer.recordReq!.q;
    const shared = dh(q.secretKey, h.pub);
    if (!shared) {
      this.drops.auth++;
      return;
    }
    const key = recordKey(shared, buf.subarray(off, off + 8), q.publicKey, h.pub);
    zero(shared);
    const opened = this.openInPlace(buf, off, len, RECORD_AD_BYTES, key);
    zero(key);
    if (!opened) {
      this.drops.auth++;
      return;
    }
    const m = decodeRecordBody(buf, off + RECORD_AD_BYTES, len - RECORD_AD_BYTES - AEAD_TAG_BYTES);
    if (!m) {
      this.drops.badRecord++;
      return;
    }
    const nowSec = Math.floor(now / 1000);
    const cert = decodeCert(m.host);
    const eph = decodeEphemeral(m.eph);
    if (!cert || cert.kind !== "host" || !eph) {
      this.drops.badRecord++;
      return;
    }
    const vc = verifyCert(cert, this.opts.ca, nowSec);
    const ve = verifyEphemeral(eph, cert, nowSec);
    const known = peer.hostCert;
    const nameOk = cert.name === peer.name || (peer.anyName && !known && !equal(cert.publicKey, this.hostPk));
    if (!vc.ok || !ve.ok || !nameOk || (known && !equal(known.publicKey, cert.publicKey))) {
      this.drops.badRecord++;
      peer.recordRefused = !vc.ok
        ? `certificate ${vc.reason}`
        : !ve.ok
          ? `record ${ve.reason}`
          : !nameOk
            ? `certificate names '${cert.name}'`
            : "a different host key";
      this.rlog.log(now, "warn", "bad-record", "record refused", () => ({
        peer: peer.name,
        cert: vc.ok ? "ok" : vc.reason,
        eph: ve.ok ? "ok" : ve.reason,
        name: cert.name,
      }));
      return;
    }
    zero(peer.recordReq!.q.secretKey);
    peer.recordReq = null;
    peer.recordFetchedAt = now;
    if (this.revocation?.revoked(cert)) {
      this.drops.revoked++;
      peer.recordRefused = "host revoked";
      return;
    }
    peer.recordRefused = null;
    this.certs.remember(cert, this.opts.ca); // verified above: the peer's HELLO will carry it
    if (!known) {
      this.unresolved.delete(peer.name);
      this.learnHost(peer, cert);
      this.peers.set(cert.publicKey.latin1Slice(0, 32), peer);
    } else this.renewHost(peer, cert, now);
    this.setEph(peer, eph);
    this.events.recordsLearned++;
    startupMark("record");
    this.log.log("debug", "record learned", { peer: peer.name, keyId: eph.keyId });
    this.flushPending(peer, now);
    if (peer.recovering !== 0) this.recoverCreate(peer, now);
  }

  protected setEph(peer: Peer, eph: EphemeralCert): void {
    if (peer.eph && peer.eph.notAfter > eph.notAfter) return; // keep the newer
    peer.eph = eph;
  }

  protected flushPending(peer: Peer, now: number): void {
    if (peer.pending.length === 0) return;
    const q = peer.pending;
    peer.pending = [];
    for (const pkt of q) this.sendSlow(peer, pkt, 0, pkt.length, now);
  }

  /**
   * A peer known only by its endpoint (a directory): its identity is learned
   * from its record (RECORD_REQUEST), whatever name its certificate carries.
   */
  addEndpointPeer(label: string, endpoint: Buffer, now: number): Peer {
    const p = new Peer(label, endpoint, true);
    p.anyName = true;
    this.unresolved.set(label, p);
    this.requestRecord(p, now);
    return p;
  }

  /**
   * Install a service record the caller has verified (directory lookup): the
   * host's routes, its ephemeral key and endpoint; queued packets are sent
   * (0-RTT creation). An existing peer keeps its tunnels and their endpoints.
   */
  learnRecord(cert: HostCert, eph: EphemeralCert, endpoint: Buffer, now: number): Peer | null {
    if (this.revocation?.revoked(cert)) {
      this.drops.revoked++;
      return null;
    }
    const key = cert.publicKey.latin1Slice(0, 32);
    let p = this.peers.get(key);
    if (p) this.renewHost(p, cert, now);
    if (!p) {
      p = this.unresolved.get(cert.name);
      if (p && !p.anyName) this.unresolved.delete(cert.name);
      else p = new Peer(cert.name, endpoint, false);
      this.learnHost(p, cert);
      this.peers.set(key, p);
    } else if (p.tunnels.length === 0 || !p.endpoint) p.endpoint = Buffer.from(endpoint);
    this.setEph(p, eph);
    p.lastSeen = Math.max(p.lastSeen, now);
    this.flushPending(p, now);
    return p;
  }

  /**
   * Someone unauthenticated (a directory's observed address) says the peer of a
   * silent tunnel is elsewhere now. The tunnel does not move: one probe (a
   * KEEPALIVE that asks for an answer, sealed as usual) goes to that endpoint,
   * and the endpoint follows only when an authenticated, current packet comes
   * back from there (onAuthenticated), as for any roam.
   */
  probeEndpoint(t: Tunnel, endpoint: Buffer, now: number): void {
    if (!t.canSend || addrEqual(t.endpoint, 0, endpoint, 0)) return;
    const keep = Buffer.from(t.endpoint);
    endpoint.copy(t.endpoint, 0, 0, ADDR_BYTES);
    this.sendControl(t, FrameType.Keepalive, PROBE_BODY, now);
    keep.copy(t.endpoint);
    this.events.endpointProbes++;
    this.out.flush();
    this.rlog.log(now, "info", "probe", "probing a peer endpoint from the directory", () => ({
      peer: t.peer.name,
      to: addrToString(endpoint),
    }));
  }
}
