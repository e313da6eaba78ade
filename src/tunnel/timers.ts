/**
 * The engine's one coarse timer (call tick() every TICK_MS) and everything it drives,
 * by named events in tickTunnel/tick: creation timeout, unconfirmed timeout, idle
 * timeout, old-epoch grace, rekey retransmit and schedule, keepalive, the stall probe
 * and recovery of a silent peer, ephemeral-key rotation, record refresh, sweeps; and
 * close(). EngineCore is the top of the layered core (see base.ts).
 */
import { zero } from "../crypto/sodium.js";
import { FrameType, encodeRekey } from "../wire/frames.js";
import {
  AEAD_IDLE_RELEASE_MS,
  CONTROL_RETRANSMIT_MS,
  CREATE_TIMEOUT_MS,
  PROBE_AFTER_MS,
  PROBE_RETRY_MS,
  PROBE_TRIES,
  RECOVERY_TIMEOUT_MS,
  REJECT_AFTER_PACKETS,
  REKEY_AFTER_PACKETS,
  REPLY_KEY_LIFETIME_MS,
  RESPONDER_REKEY_DELAY_MS,
  rejectAfterMs,
} from "./constants.js";
import { type HostCert } from "../wire/cert.js";
import { type RevocationIndex } from "../wire/revocation.js";
import { Peer, Tunnel } from "./tunnel.js";
import { DEFAULT_UNCONFIRMED_TIMEOUT_MS } from "./options.js";
import { Control } from "./control.js";

export class EngineCore extends Control {
  /** Coarse timer: call every TICK_MS. */
  tick(now: number): void {
    this.lastTick = now;
    this.batchSeq++;
    this.load.tick(now);
    if (now - this.lastSweep >= 5000) {
      this.buckets.sweep(now);
      this.lastSweep = now;
    }
    if (this.eph.tick(now)) {
      this.events.ephemeralRotations++;
      this.opts.onEphemeralRotated?.(this.eph.current!.cert);
    }
    // the responder's reply key lives REPLY_KEY_LIFETIME_MS, whether or not another tunnel comes
    if (this.reply && now - this.reply.at >= REPLY_KEY_LIFETIME_MS) {
      zero(this.reply.kp.secretKey);
      this.reply = null;
    }
    const nowSec = now / 1000;
    for (const p of [...this.peers.values(), ...this.unresolved.values()]) {
      if (p.hostCert && this.checkPeerCert(p, p.hostCert, now)) continue;
      const inUse = p.sendTunnel();
      for (const t of p.tunnels.slice()) this.tickTunnel(t, now, t === inUse);
      if (p.recovering !== 0 && now - p.recovering >= RECOVERY_TIMEOUT_MS) p.recovering = 0;
      p.resetBudget = 16;
      if (p.conns !== null && now - p.lastConnSweep >= 5000) {
        p.lastConnSweep = now;
        p.conns.sweep(now);
        this.expireUserConns(p, p.conns, now);
      }
      if (p.configured) {
        const e = p.eph;
        const due = !e || nowSec >= e.notBefore + (e.notAfter - e.notBefore) / 2;
        if (due) this.requestRecord(p, now);
      }
      if (!p.configured && p.tunnels.length === 0 && now - p.lastSeen > this.opts.idleTimeoutMs) {
        this.routes.removeValue(p);
        if (p.hostCert) this.peers.delete(p.hostCert.publicKey.latin1Slice(0, 32));
      }
    }
    this.out.flush();
  }

  protected tickTunnel(t: Tunnel, now: number, inUse: boolean): void {
    switch (t.state) {
      case "creating":
        if (now - t.createdAt > CREATE_TIMEOUT_MS) this.closeTunnel(t, now, "create-timeout");
        return;
      case "replying":
      case "established":
        // never confirmed by its creator: half-open state, short-lived
        const unconfirmedMs = this.opts.unconfirmedTimeoutMs ?? DEFAULT_UNCONFIRMED_TIMEOUT_MS;
        if (t.state === "replying" && now - t.createdAt > unconfirmedMs) {
          this.closeTunnel(t, now, "unconfirmed");
          this.events.unconfirmedExpired++;
          return;
        }
        if (now - t.lastRx > this.opts.idleTimeoutMs) {
          this.events.tunnelsIdleClosed++;
          this.closeTunnel(t, now, "idle");
          return;
        }
        if (t.prev && now >= t.prevUntil) this.retireEpoch(t, t.prev);
        if ((t.crossMove || t.crossEp) && now >= t.crossUntil) this.dropCrossMove(t);
        // hard limit: an epoch nobody replaced in time is refused by both ends (outside.ts)
        // and its tunnel closed; the next packet creates a fresh one
        if (
          now - t.cur!.startedAt >= rejectAfterMs(this.opts.rekeyAfterMs) ||
          t.cur!.sendCounter >= REJECT_AFTER_PACKETS
        ) {
          this.events.tunnelsKeyExpired++;
          this.closeTunnel(t, now, "key-expired");
          return;
        }
        if (t.rekey && now - t.rekey.sentAt >= CONTROL_RETRANSMIT_MS) {
          t.rekey.sentAt = now;
          this.sendControl(t, FrameType.Rekey, encodeRekey(t.rekey.seq, t.rekey.kp.publicKey), now);
        }
        // either end rekeys when its own limit is reached; the responder's comes later so
        // that normally the initiator's REKEY is the only one
        if (
          t.state === "established" &&
          (now - t.lastRekeyAt >=
            this.opts.rekeyAfterMs + (t.role === "responder" ? RESPONDER_REKEY_DELAY_MS : 0) ||
            t.cur!.sendCounter >= REKEY_AFTER_PACKETS)
        )
          this.startRekey(t, now);
        if (this.opts.keepaliveMs > 0 && now - t.lastTx >= this.opts.keepaliveMs) {
          this.events.keepalivesSent++;
          this.sendControl(t, FrameType.Keepalive, null, now);
        }
        // an idle tunnel gives its AEAD contexts back (about 1.7 KB of C heap each, made again
        // at the next packet: one key schedule); keys and counters are untouched
        if (now - t.lastTx >= AEAD_IDLE_RELEASE_MS && now - t.lastRx >= AEAD_IDLE_RELEASE_MS)
          t.cur!.release();
        if (inUse && t.state === "established") this.tickStall(t, now);
        return;
      case "closed":
        return;
    }
  }

  /**
   * Stall probe of the tunnel in use (called from the tick while it is established):
   *
   *   quiet --data sent since the last authenticated packet, none for PROBE_AFTER_MS--> probing (PROBE)
   *   probing --any authenticated packet (lastRx moved)--> quiet
   *   probing --PROBE_RETRY_MS, fewer than PROBE_TRIES sent--> probing (PROBE again)
   *   probing --PROBE_RETRY_MS after the last PROBE--> quiet, and the peer's recovery starts
   *
   * Only the absence of authenticated packets drives it: nothing an attacker sends can
   * start or advance it, and it tears nothing down (see startRecovery).
   */
  protected tickStall(t: Tunnel, now: number): void {
    if (t.lastRx !== t.rxMark) {
      t.rxMark = t.lastRx;
      t.txAtRx = t.txPackets;
    }
    const pr = t.probe;
    if (pr !== null) {
      if (t.lastRx !== pr.rxAt) {
        t.probe = null; // answered (or other traffic arrived): the peer holds the tunnel
        return;
      }
      if (now - pr.sentAt < PROBE_RETRY_MS) return;
      if (pr.sent < PROBE_TRIES) {
        pr.sent++;
        pr.sentAt = now;
        this.events.stallProbes++;
        this.sendControl(t, FrameType.Probe, null, now);
        return;
      }
      t.probe = null;
      this.startRecovery(t.peer, now);
      return;
    }
    if (t.txPackets > t.txAtRx && now - t.lastRx >= PROBE_AFTER_MS) {
      t.probe = { rxAt: t.lastRx, sentAt: now, sent: 1 };
      this.events.stallProbes++;
      this.sendControl(t, FrameType.Probe, null, now);
    }
  }

  /**
   * The peer did not answer PROBE_TRIES probes on the tunnel in use: most likely it
   * restarted and lost the tunnel (static peers and directory peers alike). Recovery:
   *
   *   none --probes unanswered--> fetching: RECORD_REQUEST to the peer (signed host and
   *                               ephemeral certificates; repeated by the next unanswered probes)
   *   fetching --verified record--> creating: a new tunnel 0-RTT (HELLO) under the fresh key,
   *                               beside the silent one, which stays in use meanwhile
   *   creating --REPLY verified--> none: the new tunnel supersedes the silent one
   *   fetching/creating --RECOVERY_TIMEOUT_MS--> none (unanswered probes start it again)
   *   fetching --an authenticated packet on the silent tunnel--> none (it was alive)
   *
   * Nothing is closed until a new tunnel is established (authenticated), so neither a
   * forged packet nor a lost one can make us drop a working tunnel.
   */
  protected startRecovery(p: Peer, now: number): void {
    if (p.recovering === 0 || now - p.recovering >= RECOVERY_TIMEOUT_MS) {
      p.recovering = now;
      this.events.stallRecoveries++;
      this.rlog.log(
        now,
        "info",
        "recover",
        "peer silent: fetching its record to re-create the tunnel",
        () => ({
          peer: p.name,
        }),
      );
    }
    for (const t of p.tunnels) if (t.state === "creating") return; // a new tunnel is on its way
    // ask again at once if the last request is a retry interval old (no backoff while recovering)
    if (p.recordReq) p.recordReq.attempts = 0;
    this.requestRecord(p, now);
  }

  /** A verified record arrived for a recovering peer: create the new tunnel (HELLO, 0-RTT). */
  protected recoverCreate(p: Peer, now: number): void {
    const cur = p.sendTunnel();
    if (
      now - p.recovering >= RECOVERY_TIMEOUT_MS ||
      (cur?.state === "established" && cur.lastRx > p.recovering)
    ) {
      p.recovering = 0; // given up, or the silent tunnel spoke again (it was a path outage)
      return;
    }
    for (const t of p.tunnels) if (t.state === "creating") return;
    if (!p.eph || !p.hostCert || !p.endpoint || p.eph.notAfter <= Math.floor(now / 1000)) return;
    const nt = this.startCreate(p, now);
    if (nt) this.sendCreate(nt, null, now);
  }

  /**
   * Certificate lifecycle of a known peer (every tick, and at once from setRevocation):
   * when its host certificate expired (or the CA's did) or it is revoked, every tunnel
   * with it is closed (CLOSE sent, counted: events.tunnelsCertExpired / tunnelsRevoked)
   * and its connections dropped. A configured peer keeps its name and address: its
   * record is fetched again, and a renewed certificate (same key) brings it back
   * (records.ts renewHost); a peer learned from its own creation is forgotten.
   * Returns true when the peer was dropped from the tables (skip it this tick).
   */
  protected checkPeerCert(p: Peer, cert: HostCert, now: number): boolean {
    const nowSec = now / 1000;
    const revoked = this.revocation !== null && this.revocation.revoked(cert);
    if (!revoked && nowSec >= cert.notBefore && nowSec < cert.notAfter && nowSec < this.opts.ca.notAfter)
      return false;
    const reason = revoked ? "revoked" : "cert-expired";
    if (p.tunnels.length > 0) {
      for (const t of p.tunnels.slice()) {
        if (t.state === "established") this.sendControl(t, FrameType.Close, Buffer.from([0]), now);
        if (revoked) this.events.tunnelsRevoked++;
        else this.events.tunnelsCertExpired++;
        this.closeTunnel(t, now, reason);
      }
      this.log.log(
        "warn",
        revoked ? "peer host revoked: tunnels closed" : "peer certificate expired: tunnels closed",
        {
          peer: p.name,
          notAfter: new Date(cert.notAfter * 1000).toISOString(),
        },
      );
    }
    if (p.conns !== null && p.conns.byKey.size > 0) p.conns.clear();
    p.eph = null; // a record (with a renewed certificate) must be fetched before a new tunnel
    if (!p.configured) {
      this.routes.removeValue(p);
      this.peers.delete(cert.publicKey.latin1Slice(0, 32));
      return true;
    }
    return false;
  }

  /**
   * Install a verified revocation list (the caller checked it is the CA's and newer) and
   * apply it at once: tunnels of revoked hosts closed, connections of revoked users
   * refused (drops.connRevoked). Later creations, records and CONN_OPENs are checked
   * against it (certcache.ts, conn/auth.ts, records.ts).
   */
  setRevocation(idx: RevocationIndex | null, now: number): void {
    this.revocation = idx;
    if (idx) this.events.revocationLists++;
    for (const p of [...this.peers.values(), ...this.unresolved.values()]) {
      if (p.hostCert && this.checkPeerCert(p, p.hostCert, now)) continue;
      if (p.conns !== null) this.expireUserConns(p, p.conns, now);
    }
    this.out.flush();
  }

  /** Send CLOSE on every tunnel (best effort) and erase all secrets. */
  close(now: number): void {
    for (const p of [...this.peers.values(), ...this.unresolved.values()]) {
      for (const t of p.tunnels.slice()) {
        if (t.canSend && t.state === "established")
          this.sendControl(t, FrameType.Close, Buffer.from([0]), now);
        this.closeTunnel(t, now, "shutdown");
      }
      p.conns?.clear();
      if (p.userKeys) for (const k of p.userKeys.values()) zero(k);
      p.userKeys = null;
    }
    this.userKeys.clear();
    this.out.flush();
    this.eph.close();
    this.puzzles.close();
    this.solver.close();
    if (this.reply) zero(this.reply.kp.secretKey);
    this.reply = null;
    zero(this.hostX);
    zero(this.hostSk);
  }
}
