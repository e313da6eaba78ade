/**
 * Per-user connections inside a tunnel (docs/IDENTITY.md): the send side finds or opens
 * the connection of an outbound flow under its owner's identity (CONN_OPEN), the receive
 * side checks every inner packet against its connection's flow, authenticates users and
 * applies the policy; re-judging after a reload; whois.
 */
import { equal } from "../crypto/sodium.js";
import { type HostCert, type UserCert, fingerprint } from "../wire/cert.js";
import { FrameType, writeFrame } from "../wire/frames.js";
import { REPLY_AD_BYTES } from "../wire/packet.js";
import {
  AEAD_TAG_BYTES,
  CONTROL_RETRANSMIT_MS,
  FRAME_HEADER_BYTES,
  MAX_UDP_PAYLOAD_BYTES,
  RELAYED_MAX_INNER_BYTES,
} from "./constants.js";
import { Peer, Tunnel } from "./tunnel.js";
import {
  CONN_DENIED,
  CONN_OPEN,
  CONN_OPEN_REPEAT,
  Conn,
  ConnTable,
  FlowScratch,
  keyOfWire,
  parseFlow,
  noteTcpClose,
  recheckDue,
  tcpCloseState,
  FRAG_FIRST,
  FRAG_LATER,
  type LocalUser,
} from "../conn/conns.js";
import { connAuth, userKeyOpener } from "../conn/auth.js";
import {
  CONN_AUTH_BYTES,
  CONN_ID_BYTES,
  ConnKind,
  DENY_REASON_NAMES,
  DenyReason,
  connOpenSize,
  encodeConnDeny,
  encodeConnReset,
  readConnOpen,
  writeConnOpen,
} from "../wire/conn.js";
import { evaluate, type Policy } from "../conn/policy.js";
import { synthReject, synthTooBig } from "../ip/reject.js";
import { formatIp4, formatIp6 } from "../ip/ip.js";
import { type ConnGroup, type ConnInfo, CONN_DATA_HEADER_BYTES } from "./options.js";
import { EngineBase } from "./base.js";

export abstract class Connections extends EngineBase {
  /**
   * Established or replying tunnel: find or open the packet's connection and send it (copies).
   * `looked`: the data path already parsed this packet into this.flow and looked its
   * connection up (the result, null: none), so neither happens twice.
   */
  protected sendOnConn(
    t: Tunnel,
    buf: Buffer,
    off: number,
    len: number,
    now: number,
    looked?: Conn | null,
  ): void {
    const f = this.flow;
    if (looked === undefined && !parseFlow(buf, off, len, f)) {
      this.drops.tunMalformed++;
      return;
    }
    const c = this.connForOut(t.peer, buf, off, len, f, now, looked);
    if (c === null) return;
    if (c.proto === 6) noteTcpClose(c, buf, off, len, f, true);
    let open = c.mine && !c.acked && c.txPackets < CONN_OPEN_REPEAT ? this.openBody(t, c) : null;
    const dataLen = CONN_DATA_HEADER_BYTES + len;
    if (
      open &&
      REPLY_AD_BYTES + FRAME_HEADER_BYTES + open.length + dataLen + AEAD_TAG_BYTES > MAX_UDP_PAYLOAD_BYTES
    ) {
      // no room for both: OPEN alone first (same order on the wire)
      this.sendControl(t, FrameType.ConnOpen, open, now);
      open = null;
    }
    const openLen = open ? FRAME_HEADER_BYTES + open.length : 0;
    const b = Buffer.allocUnsafe(64 + openLen + dataLen + AEAD_TAG_BYTES);
    let o = 64;
    if (open) o = writeFrame(b, o, FrameType.ConnOpen, open);
    buf.copy(b, o + CONN_DATA_HEADER_BYTES, off, off + len);
    this.sealConn(t, c, b, o + CONN_DATA_HEADER_BYTES, len, now, 64);
  }

  /**
   * The connection of an outbound packet (flow parsed into f): the existing one,
   * or a new one under the identity of whoever owns the flow. null when the
   * packet must not be sent; then a reject has been written to the TUN.
   */
  protected connForOut(
    peer: Peer,
    buf: Buffer,
    off: number,
    len: number,
    f: FlowScratch,
    now: number,
    looked?: Conn | null,
  ): Conn | null {
    const ct = (peer.conns ??= new ConnTable());
    if (f.frag === FRAG_LATER) {
      // no ports to identify it by: it goes where its first fragment went, or nowhere
      const fc = ct.fragmentConn(buf, f, now);
      if (fc === null || fc.state !== CONN_OPEN) {
        this.drops.fragOrphan++;
        return null;
      }
      return fc;
    }
    let c = looked !== undefined ? looked : ct.lookupOut(buf, f);
    let who: LocalUser | null | "deny" | undefined;
    if (c !== null && recheckDue(c, buf, off, len, f, now)) {
      // a new TCP socket (SYN) or a UDP socket that may have replaced another on this tuple
      who = this.identity ? this.identity.identify(f, buf) : null;
      const sock = this.identity?.lastSocket ?? 0;
      const same = who === "deny" ? c.state !== CONN_OPEN : (who?.uid ?? null) === c.localUid;
      if (sock === c.sock && same) c.checkedAt = now;
      else {
        this.events.connsReidentified++;
        ct.remove(c);
        c = null;
      }
    }
    if (c !== null) {
      if (c.state === CONN_OPEN) {
        if (f.frag === FRAG_FIRST) ct.tieFragment(buf, f, c, now);
        return c;
      }
      this.drops.connDenied++;
      this.rejectLocal(buf, off, len);
      return null;
    }
    if (who === undefined) who = this.identity ? this.identity.identify(f, buf) : null;
    if (who === "deny") {
      this.drops.connLocalDeny++;
      this.rejectLocal(buf, off, len);
      return null;
    }
    c = ct.openMine(buf, f, now);
    if (c === null) {
      this.drops.connTableFull++;
      this.rejectLocal(buf, off, len);
      return null;
    }
    c.sock = this.identity?.lastSocket ?? 0;
    c.ownerUid = this.identity?.lastUid ?? -1;
    c.checkedAt = now;
    if (f.frag === FRAG_FIRST) ct.tieFragment(buf, f, c, now);
    if (who) {
      c.localUid = who.uid;
      c.localName = who.osUser;
      c.localCert = who.cert;
      c.localUser = who;
    }
    c.probe = Buffer.from(buf.subarray(off, off + len));
    this.events.connsOpened++;
    return c;
  }

  /** The OPEN body of a connection for tunnel t (cached per tunnel binding until answered). */
  protected openBody(t: Tunnel, c: Conn): Buffer {
    if (c.openBody !== null && c.openBind === t.connBind) return c.openBody;
    const who = c.localUser;
    const cert = who ? who.cert.raw : null;
    const b = Buffer.alloc(connOpenSize(c.family, cert ? cert.length : null));
    const end = writeConnOpen(
      b,
      0,
      c.cid,
      who ? ConnKind.User : ConnKind.Host,
      c.proto,
      c.family,
      c.lport,
      c.rport,
      c.local,
      0,
      c.remote,
      0,
      cert,
    );
    if (who) {
      const k = this.userKeyFor(t.peer, who);
      if (k && t.connBind)
        connAuth(k, t.connBind, b, 0, end - CONN_AUTH_BYTES).copy(b, end - CONN_AUTH_BYTES);
    }
    c.openBody = b;
    c.openBind = t.connBind;
    return b;
  }

  /** K_u for a local user towards a peer host, computed once per (user key, peer). */
  protected userKeyFor(peer: Peer, who: LocalUser): Buffer | null {
    const m = (peer.userKeys ??= new Map());
    const id = who.cert.publicKey.latin1Slice(0, 32);
    let k = m.get(id);
    if (k === undefined) {
      if (!peer.hostX || !peer.hostCert) return null;
      const nk = userKeyOpener(who.x, who.cert.publicKey, peer.hostX, peer.hostCert.publicKey);
      if (!nk) return null;
      m.set(id, nk);
      k = nk;
    }
    return k;
  }

  /** Tell the local application at once: TCP RST or ICMP unreachable, as if from the destination. */
  protected rejectLocal(buf: Buffer, off: number, len: number): void {
    const r = synthReject(buf, off, len);
    if (r) this.out.writeTun(r, 0, r.length);
  }

  /**
   * An inner packet too large for a relayed path (RELAYED_MAX_INNER_BYTES): dropped,
   * counted, and the local kernel told the path MTU (ICMP "too big"), so TCP shrinks its
   * segments instead of the datagram growing past MAX_UDP_PAYLOAD_BYTES on the relay.
   */
  relayTooBig(buf: Buffer, off: number, len: number): void {
    this.drops.relayTooBig++;
    const r = synthTooBig(buf, off, len, RELAYED_MAX_INNER_BYTES);
    if (r) this.out.writeTun(r, 0, r.length);
  }

  /** CONN_DATA: the packet must carry exactly its connection's flow; then it goes to the TUN. */
  deliverConn(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    if (len < CONN_ID_BYTES + 20) {
      this.drops.badFrames++;
      return;
    }
    const wire = buf.readUInt32BE(off);
    const ct = t.peer.conns;
    const c = ct === null ? undefined : ct.byKey.get(keyOfWire(wire));
    if (c === undefined) {
      this.drops.noConn++;
      this.sendConnReset(t, wire, now);
      return;
    }
    if (c.state !== CONN_OPEN) {
      this.drops.connDenied++;
      if (!c.mine && now - c.lastDenySent >= CONTROL_RETRANSMIT_MS) {
        c.lastDenySent = now;
        this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(c.wireId, c.denyReason), now);
      }
      return;
    }
    const f = this.flowIn;
    const p = off + CONN_ID_BYTES;
    if (!parseFlow(buf, p, len - CONN_ID_BYTES, f) || !ConnTable.matchesIn(c, buf, f)) {
      this.drops.connFlow++;
      return;
    }
    if (!c.acked) {
      c.acked = true;
      c.probe = null;
      c.openBody = null;
      c.openBind = null;
    }
    c.rxPackets++;
    c.lastUsed = now;
    if (c.proto === 6) noteTcpClose(c, buf, p, len - CONN_ID_BYTES, f, false);
    this.out.writeTun(buf, p, len - CONN_ID_BYTES);
  }

  protected sendConnReset(t: Tunnel, wire: number, now: number): void {
    const p = t.peer;
    if (p.resetBudget <= 0) return;
    p.resetBudget--;
    this.sendControl(t, FrameType.ConnReset, encodeConnReset(keyOfWire(wire)), now);
  }

  /**
   * CONN_OPEN from the peer: check the flow belongs to the two hosts, authenticate
   * the user (cached K_u: one keyed hash), decide by policy, remember the answer.
   */
  protected onConnOpen(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    const o = readConnOpen(buf, off, len);
    if (o === null) {
      this.drops.badFrames++;
      return;
    }
    const peer = t.peer;
    const ct = (peer.conns ??= new ConnTable());
    const key = keyOfWire(o.cid);
    const ex = ct.byKey.get(key);
    if (ex !== undefined) {
      // the same OPEN again (repeated with the first packets, or a resent CREATE): nothing new
      if (
        ex.proto === o.proto &&
        ex.rport === o.sport &&
        ex.lport === o.dport &&
        sameBytes(ex.remote, buf, o.srcOff, o.family)
      )
        return;
      // the peer reuses the id (it restarted): its new connection replaces the old one
      ct.remove(ex);
    }
    // the opener's address must be the peer's, the other side ours
    const v4 = o.family === 4;
    if (
      (v4 ? this.routes.lookup4(buf.readUInt32BE(o.srcOff)) : this.routes.lookup6(buf, o.srcOff)) !== peer
    ) {
      this.drops.innerSrc++;
      this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(key, DenyReason.BadFlow), now);
      return;
    }
    if (
      (v4 ? this.ours.lookup4(buf.readUInt32BE(o.dstOff)) : this.ours.lookup6(buf, o.dstOff)) === undefined
    ) {
      this.drops.innerDst++;
      this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(key, DenyReason.BadFlow), now);
      return;
    }
    // a new connection of the peer on a flow we hold under another id: a new socket there
    // (its host identified it afresh); the old connection and its identity go
    const same = ct.findFlow(o.proto, o.family, buf, o.dstOff, o.dport, o.srcOff, o.sport, false);
    if (same !== null) {
      ct.remove(same);
      this.events.connsReidentified++;
    }
    let reason = 0;
    let user: { cert: UserCert; fingerprint: string } | null = null;
    let why = "";
    if (o.kind === ConnKind.User) {
      const v = this.userKeys.lookup(buf.subarray(o.certOff, o.certOff + o.certLen), Math.floor(now / 1000));
      if (!v.ok) {
        reason = DenyReason.BadCert;
        why = v.reason;
        if (v.reason === "revoked") this.drops.revoked++;
        else this.drops.connBadCert++;
      } else if (
        !t.connBind ||
        !equal(
          connAuth(v.k, t.connBind, buf, o.bodyOff, o.authOff),
          buf.subarray(o.authOff, o.authOff + CONN_AUTH_BYTES),
        )
      ) {
        reason = DenyReason.BadAuth;
        why = "authenticator";
        this.drops.connBadAuth++;
      } else {
        user = { cert: v.cert, fingerprint: fingerprint(v.cert.publicKey) };
        if (v.cached) this.events.userAuthCached++;
        else this.events.userAuthFull++;
      }
    }
    const c = ct.openTheirs(o.cid, o.proto, o.family, buf, o.srcOff, o.sport, o.dstOff, o.dport, now);
    if (c === null) {
      this.drops.connTableFull++;
      this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(key, DenyReason.TableFull), now);
      return;
    }
    c.peerUser = user;
    c.sessionId = t.sessionId;
    if (reason === 0 && this.policy !== null) {
      const d = this.judge(this.policy, peer.hostCert!, user?.cert ?? null, o.proto, o.dport);
      if (d.action === "deny") {
        reason = DenyReason.Policy;
        why = d.reason;
      }
    }
    if (reason !== 0) {
      c.state = CONN_DENIED;
      c.deniedAt = now;
      c.denyReason = reason;
      c.lastDenySent = now;
      this.events.connsDenied++;
      this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(c.wireId, reason), now);
      this.rlog.log(now, "info", "conn-denied", "connection refused", () => ({
        peer: peer.name,
        user: user ? user.cert.name : o.kind === ConnKind.User ? "(unverified)" : null,
        flow: describeConn(c),
        reason: DENY_REASON_NAMES[reason],
        why,
      }));
      return;
    }
    this.events.connsAccepted++;
    if (this.log.enabled("debug"))
      this.log.log("debug", "connection accepted", {
        peer: peer.name,
        user: user ? user.cert.name : null,
        flow: describeConn(c),
      });
  }

  /** The policy's answer for a connection of `host` (and `user`) to this host's `dport`. */
  private judge(policy: Policy, host: HostCert, user: UserCert | null, proto: number, dport: number) {
    const me = this.opts.hostCert;
    return evaluate(policy, {
      user: user ? { name: user.name, groups: user.groups } : undefined,
      host: { name: host.name, groups: host.groups },
      dstHost: me.name,
      dstGroups: me.groups,
      proto,
      dport: proto === 6 || proto === 17 ? dport : undefined,
    });
  }

  /**
   * After a reload, judge every open connection again.
   *   theirs (the peer opened it): the current policy, as at its OPEN. No longer allowed:
   *     denied (CONN_DENY to the peer, counted in drops.connPolicyReset); the next packet
   *     either way gets the reject path's answer (TCP RST, ICMP administratively
   *     prohibited) in its own host, as for a refused OPEN.
   *   mine (opened here): `mineStill(c)` (the daemon: its owner still maps to the same
   *     identity under the new user store, users.unmapped and users.asHost). When not,
   *     it is forgotten: its next packet is identified afresh (and refused, or opened
   *     under the new identity and judged by the peer).
   * Still allowed: nothing changes. Counted in events.connsRejudged.
   */
  rejudge(
    now: number,
    mineStill?: (c: Conn) => boolean,
  ): { kept: number; reset: number; reidentified: number } {
    let kept = 0;
    let reset = 0;
    let reidentified = 0;
    for (const peer of this.peers.values()) {
      const ct = peer.conns;
      if (ct === null) continue;
      for (const c of [...ct.byKey.values()]) {
        if (c.state !== CONN_OPEN) continue;
        this.events.connsRejudged++;
        if (c.mine) {
          if (mineStill === undefined || mineStill(c)) kept++;
          else {
            ct.remove(c);
            reidentified++;
          }
          continue;
        }
        const hc = peer.hostCert;
        if (this.policy === null || !hc) {
          kept++;
          continue;
        }
        const d = this.judge(this.policy, hc, c.peerUser?.cert ?? null, c.proto, c.lport);
        if (d.action === "allow") {
          kept++;
          continue;
        }
        this.drops.connPolicyReset++;
        reset++;
        this.resetTheirs(peer, c, DenyReason.Policy, d.reason, now);
      }
    }
    return { kept, reset, reidentified };
  }

  /** An open connection the peer opened is refused from now on: denied, CONN_DENY, logged. */
  protected resetTheirs(peer: Peer, c: Conn, reason: number, why: string, now: number): void {
    c.state = CONN_DENIED;
    c.deniedAt = now;
    c.denyReason = reason;
    c.lastDenySent = now;
    const t = peer.sendTunnel();
    if (t !== null && t.canSend)
      this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(c.wireId, reason), now);
    this.rlog.log(now, "info", "conn-rejudged", "open connection refused", () => ({
      peer: peer.name,
      user: c.peerUser ? c.peerUser.cert.name : null,
      flow: describeConn(c),
      reason: DENY_REASON_NAMES[reason],
      why,
    }));
  }

  /**
   * Connections that outlived their user certificate (from the coarse tick): one the peer
   * opened is refused (bad-certificate, drops.connCertExpired, the next packet gets the
   * reject); one opened here is forgotten, so its next packet is identified afresh (an
   * expired identity is refused locally, never replaced by the host).
   */
  protected expireUserConns(peer: Peer, ct: ConnTable, now: number): void {
    const nowSec = now / 1000;
    const rev = this.revocation;
    for (const c of [...ct.byKey.values()]) {
      if (c.state !== CONN_OPEN) continue;
      const cert = c.mine ? c.localCert : (c.peerUser?.cert ?? null);
      if (cert === null) continue;
      const revoked = rev !== null && rev.revoked(cert);
      if (!revoked && nowSec < cert.notAfter && nowSec >= cert.notBefore) continue;
      if (revoked) this.drops.connRevoked++;
      else this.drops.connCertExpired++;
      if (c.mine) ct.remove(c);
      else
        this.resetTheirs(
          peer,
          c,
          DenyReason.BadCert,
          revoked ? "user revoked" : "user certificate expired",
          now,
        );
    }
  }

  /** CONN_DENY: the peer refused a connection we opened; answer the application at once. */
  protected onConnDeny(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    if (len !== 5) {
      this.drops.badFrames++;
      return;
    }
    const c = t.peer.conns?.byKey.get(keyOfWire(buf.readUInt32BE(off)));
    if (c === undefined || !c.mine || c.state !== CONN_OPEN) return;
    c.state = CONN_DENIED;
    c.deniedAt = now;
    c.denyReason = buf[off + 4]!;
    this.events.connsRefused++;
    if (c.probe) this.rejectLocal(c.probe, 0, c.probe.length);
    c.probe = null;
    c.openBody = null;
    this.rlog.log(now, "info", "conn-refused", "connection refused by peer", () => ({
      peer: t.peer.name,
      user: c.localName,
      flow: describeConn(c),
      reason: DENY_REASON_NAMES[c.denyReason] ?? String(c.denyReason),
    }));
  }

  /** CONN_RESET: the peer holds no such connection; forget it (the next packet opens a new one). */
  protected onConnReset(t: Tunnel, buf: Buffer, off: number, len: number): void {
    if (len !== 4) {
      this.drops.badFrames++;
      return;
    }
    const ct = t.peer.conns;
    const c = ct?.byKey.get(keyOfWire(buf.readUInt32BE(off)));
    if (c === undefined || ct == null) return;
    ct.remove(c);
    this.events.connResets++;
  }

  /**
   * whois: the connections whose remote side is addr (and port, when given), on every
   * peer; `visible` (the API caller's view) may hide some.
   */
  connsFor(addr: string, port: number | null, visible?: (c: Conn) => boolean): ConnInfo[] {
    const out: ConnInfo[] = [];
    for (const p of this.peers.values()) {
      const ct = p.conns;
      if (ct === null || !p.hostCert) continue;
      for (const c of ct.byKey.values()) {
        if (ipString(c.remote, c.family) !== addr) continue;
        if (port !== null && c.rport !== port) continue;
        if (visible !== undefined && !visible(c)) continue;
        out.push(this.connInfo(p, c));
      }
    }
    return out;
  }

  protected connInfo(p: Peer, c: Conn): ConnInfo {
    const hc = p.hostCert!;
    const u = c.peerUser;
    return {
      direction: c.mine ? "out" : "in",
      proto: c.proto,
      local: endpointString(c.local, c.family, c.lport),
      remote: endpointString(c.remote, c.family, c.rport),
      peerHost: { name: hc.name, groups: [...hc.groups], fingerprint: fingerprint(hc.publicKey) },
      peerUser: u ? { name: u.cert.name, groups: [...u.cert.groups], fingerprint: u.fingerprint } : null,
      localUser:
        c.localUid !== null
          ? { uid: c.localUid, name: c.localName ?? String(c.localUid), cert: c.localCert?.name ?? "" }
          : null,
      ownerUid: c.mine && c.ownerUid >= 0 ? c.ownerUid : null,
      session: c.sessionId || (p.sendTunnel()?.sessionId ?? ""),
      state: c.state === CONN_OPEN ? (tcpCloseState(c) ?? "open") : "denied",
      denyReason: c.state === CONN_OPEN ? null : (DENY_REASON_NAMES[c.denyReason] ?? String(c.denyReason)),
      openedAt: c.openedAt,
      lastUsed: c.lastUsed,
      rxPackets: c.rxPackets,
      txPackets: c.txPackets,
    };
  }

  /**
   * Connections grouped by peer, direction, local user and peer user (web view); at most
   * `max` groups, the connections of further groups counted in `omitted`.
   */
  connGroups(max: number): { groups: ConnGroup[]; omitted: number } {
    const by = new Map<string, ConnGroup>();
    let omitted = 0;
    for (const p of this.peers.values()) {
      const ct = p.conns;
      if (ct === null) continue;
      for (const c of ct.byKey.values()) {
        const localUser = c.mine && c.localUid !== null ? (c.localName ?? String(c.localUid)) : null;
        const peerUser = c.peerUser?.cert.name ?? null;
        const key = `${p.name}\u0000${c.mine ? "out" : "in"}\u0000${localUser ?? ""}\u0000${peerUser ?? ""}`;
        let g = by.get(key);
        if (!g) {
          if (by.size >= max) {
            omitted++;
            continue;
          }
          g = {
            peer: p.name,
            direction: c.mine ? "out" : "in",
            localUser,
            peerUser,
            peerUserNotAfter: c.peerUser?.cert.notAfter ?? null,
            open: 0,
            closed: 0,
            denied: 0,
          };
          by.set(key, g);
        }
        if (c.state !== CONN_OPEN) g.denied++;
        else if (tcpCloseState(c) === "closed") g.closed++;
        else g.open++;
      }
    }
    return { groups: [...by.values()], omitted };
  }

  /** Every connection (status). */
  connCount(): number {
    let n = 0;
    for (const p of this.peers.values()) n += p.conns?.size ?? 0;
    return n;
  }
}

function ipString(b: Buffer, family: 4 | 6): string {
  return family === 4 ? formatIp4(b, 0) : formatIp6(b, 0);
}

function endpointString(b: Buffer, family: 4 | 6, port: number): string {
  return family === 4 ? `${ipString(b, 4)}:${port}` : `[${ipString(b, 6)}]:${port}`;
}

function describeConn(c: Conn): string {
  const l = endpointString(c.local, c.family, c.lport);
  const r = endpointString(c.remote, c.family, c.rport);
  return `${c.proto} ${c.mine ? `${l} -> ${r}` : `${r} -> ${l}`}`;
}

function sameBytes(a: Buffer, buf: Buffer, off: number, family: 4 | 6): boolean {
  return a.compare(buf, off, off + (family === 4 ? 4 : 16), 0, family === 4 ? 4 : 16) === 0;
}
