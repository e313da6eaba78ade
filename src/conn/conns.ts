/**
 * Connections of one tunnel: the flow table that binds every inner packet to
 * the connection (and so the identity) it was opened under.
 *
 * A connection is a flow (protocol, both addresses, both ports) plus who
 * opened it: "mine" (this host, for a local user or the host itself) or
 * "theirs" (the peer). Each end stores the flow from its own side: `local`
 * is the address on this host, `remote` the peer's. The send path finds a
 * packet's connection by hashing its (proto, src, sport, dst, dport); the
 * receive path checks that a packet on a connection id carries exactly that
 * connection's flow, reversed.
 *
 * Table key: the opener's id for "mine", id | 2^31 for "theirs" (see
 * src/wire/conn.ts: this is also the wire id this host sends).
 *
 * States: open -> (idle timeout | CONN_RESET | tunnel closed) -> gone;
 * open (mine, not yet answered) -> denied (CONN_DENY) -> gone after DENIED_MS.
 * "theirs" connections that policy refused are kept as denied for DENIED_MS so
 * their later packets are dropped (and counted) without a new decision.
 */
import type { UserCert } from "../wire/cert.js";
import { CONN_ID_MAX, CONN_PEER_OPENED } from "../wire/conn.js";
import { walkV6, type V6Upper } from "../ip/ip.js";

export const CONN_OPEN = 0;
export const CONN_DENIED = 1;

/** Opener side forgets an idle connection after this long (a later packet opens it again). */
export const CONN_IDLE_MINE_MS = 300_000;
/** The peer-opened side keeps it longer, so the opener normally forgets first. */
export const CONN_IDLE_THEIRS_MS = 360_000;
/** A denied connection is remembered this long: its packets are refused without a new decision. */
export const CONN_DENIED_MS = 10_000;
/** Connections per tunnel (both directions). */
export const MAX_CONNS_PER_TUNNEL = 16_384;
/** The opener repeats OPEN with the first packets until the peer answers on the connection. */
export const CONN_OPEN_REPEAT = 8;

/** Parsed flow of one inner packet (scratch object, reused). */
export class FlowScratch {
  /** the upper-layer protocol (after IPv6 extension headers) */
  proto = 0;
  family: 4 | 6 = 4;
  srcOff = 0;
  dstOff = 0;
  sport = 0;
  dport = 0;
  /** offset of the transport header (meaningful when frag !== FRAG_LATER) */
  l4Off = 0;
  /** FRAG_NONE, FRAG_FIRST (offset 0, more fragments follow) or FRAG_LATER (no transport header) */
  frag = 0;
  /** fragment identification: IPv4 16-bit id, IPv6 32-bit id of the fragment header */
  fragId = 0;
}

export const FRAG_NONE = 0;
export const FRAG_FIRST = 1;
export const FRAG_LATER = 2;

const ICMP = 1;
const ICMP6 = 58;
const TCP = 6;
const UDP = 17;
/** scratch of the IPv6 extension header walk (single-threaded) */
const v6w: V6Upper = { proto: 0, l4: 0, frag: 0, fragId: 0 };

/**
 * Parse the flow of the IPv4/IPv6 packet at buf[off, off+len) into f. False for
 * packets too short to hold their headers, and IPv6 packets whose extension
 * header chain (hop-by-hop, routing, destination options, fragment, AH) runs past
 * the packet or is longer than V6_MAX_EXT_HEADERS: the caller drops them.
 * f.proto is the upper-layer protocol after the extension headers. Fragments:
 * the first (offset 0, more follow) keeps its ports and gets FRAG_FIRST; later
 * ones have no transport header, get ports 0 and FRAG_LATER; an IPv6 atomic
 * fragment (offset 0, no more) is a whole packet (FRAG_NONE). Unknown protocols
 * get ports 0; ICMP echo uses the identifier as both ports.
 */
export function parseFlow(buf: Buffer, off: number, len: number, f: FlowScratch): boolean {
  const v = buf[off]! >> 4;
  const end = off + len;
  let l4: number;
  let proto: number;
  f.frag = FRAG_NONE;
  f.fragId = 0;
  if (v === 4) {
    if (len < 20) return false;
    const ihl = (buf[off]! & 15) * 4;
    if (ihl < 20 || ihl > len) return false;
    proto = buf[off + 9]!;
    const fo = buf.readUInt16BE(off + 6);
    if ((fo & 0x3fff) !== 0) {
      // MF or an offset: a fragment
      f.frag = (fo & 0x1fff) !== 0 ? FRAG_LATER : FRAG_FIRST;
      f.fragId = buf.readUInt16BE(off + 4);
    }
    f.family = 4;
    f.srcOff = off + 12;
    f.dstOff = off + 16;
    l4 = off + ihl;
  } else if (v === 6) {
    if (len < 40) return false;
    proto = buf[off + 6]!;
    f.family = 6;
    f.srcOff = off + 8;
    f.dstOff = off + 24;
    if (!walkV6(buf, off, end, v6w)) return false;
    proto = v6w.proto;
    l4 = v6w.l4;
    f.frag = v6w.frag;
    f.fragId = v6w.fragId;
  } else return false;
  f.proto = proto;
  f.sport = 0;
  f.dport = 0;
  f.l4Off = l4;
  const rest = end - l4;
  if (f.frag !== FRAG_LATER) {
    if ((proto === TCP || proto === UDP || proto === 132 || proto === 136) && rest >= 4) {
      f.sport = buf.readUInt16BE(l4);
      f.dport = buf.readUInt16BE(l4 + 2);
    } else if (
      rest >= 8 &&
      ((proto === ICMP && (buf[l4] === 8 || buf[l4] === 0)) ||
        (proto === ICMP6 && (buf[l4] === 128 || buf[l4] === 129)))
    ) {
      f.sport = f.dport = buf.readUInt16BE(l4 + 4);
    }
  }
  return true;
}

/** TCP SYN without ACK: a new socket's first segment (f from parseFlow). */
export function isTcpSyn(buf: Buffer, off: number, len: number, f: FlowScratch): boolean {
  return (
    f.proto === TCP &&
    f.frag !== FRAG_LATER &&
    f.l4Off + 14 <= off + len &&
    (buf[f.l4Off + 13]! & 0x12) === 0x02
  );
}

/** Conn.tcpClose bits: the local side sent FIN, the remote side sent FIN, either sent RST. */
export const TCP_FIN_LOCAL = 1;
export const TCP_FIN_REMOTE = 2;
export const TCP_RST = 4;

/**
 * Notes the FIN and RST flags of a TCP packet of c's flow (f from parseFlow), so status can
 * show flows the kernels closed as closed while the entry waits for its idle timeout. A SYN
 * without ACK starts over (a new socket on the same tuple). One byte read per TCP packet.
 */
export function noteTcpClose(
  c: Conn,
  buf: Buffer,
  off: number,
  len: number,
  f: FlowScratch,
  fromLocal: boolean,
): void {
  if (f.proto !== TCP || f.frag === FRAG_LATER || f.l4Off + 14 > off + len) return;
  const flags = buf[f.l4Off + 13]!;
  if ((flags & 0x12) === 0x02) c.tcpClose = 0;
  else if ((flags & 0x05) !== 0)
    c.tcpClose |=
      ((flags & 0x04) !== 0 ? TCP_RST : 0) |
      ((flags & 0x01) !== 0 ? (fromLocal ? TCP_FIN_LOCAL : TCP_FIN_REMOTE) : 0);
}

/** "closed" (RST, or FIN both ways), "closing" (FIN one way) or null (open as far as TCP shows). */
export function tcpCloseState(c: Conn): "closed" | "closing" | null {
  if ((c.tcpClose & TCP_RST) !== 0 || (c.tcpClose & 3) === 3) return "closed";
  return c.tcpClose !== 0 ? "closing" : null;
}

/**
 * A UDP connection opened here is looked up again (is it still the same socket?) when
 * its last check is this old: a socket that replaced another on the same tuple is
 * identified within this time. One lookup (~3-5 µs) per UDP connection per period.
 */
export const UDP_RECHECK_MS = 100;
/** A fragment is tied to the connection of its first fragment for this long. */
export const FRAG_TIE_MS = 5_000;
/** Fragment ids remembered per table (opener side); the oldest go first. */
export const FRAG_TIE_MAX = 1_024;
/** Fragment ids remembered per connection (receiver side). */
const FRAG_IDS_PER_CONN = 4;

/**
 * Must this outbound packet on connection c (opened here) be identified again?
 * TCP: a SYN (a new socket starts with one). UDP: the last check is UDP_RECHECK_MS old.
 */
export function recheckDue(
  c: Conn,
  buf: Buffer,
  off: number,
  len: number,
  f: FlowScratch,
  now: number,
): boolean {
  if (!c.mine) return false;
  if (c.proto === TCP) return isTcpSyn(buf, off, len, f);
  if (c.proto === UDP) return now - c.checkedAt >= UDP_RECHECK_MS;
  return false;
}

function mix(h: number, x: number): number {
  h = Math.imul(h ^ x, 0x85ebca6b);
  return (h ^ (h >>> 13)) | 0;
}

/** Hash of (proto, a, aport, b, bport) with a = the local side. */
export function flowHash(
  buf: Buffer,
  proto: number,
  family: 4 | 6,
  aOff: number,
  aport: number,
  bOff: number,
  bport: number,
): number {
  let h = mix(0x9e3779b1, proto | (aport << 8));
  h = mix(h, bport);
  h = mix(h, buf.readInt32BE(aOff));
  h = mix(h, buf.readInt32BE(bOff));
  if (family === 6) {
    h = mix(h, buf.readInt32BE(aOff + 12));
    h = mix(h, buf.readInt32BE(bOff + 12));
    h = mix(h, buf.readInt32BE(aOff + 4) ^ buf.readInt32BE(aOff + 8));
    h = mix(h, buf.readInt32BE(bOff + 4) ^ buf.readInt32BE(bOff + 8));
  }
  return h;
}

/** The identity a connection runs under, as the receiving side learned it. */
export interface PeerUser {
  cert: UserCert;
  fingerprint: string;
}

export class Conn {
  state = CONN_OPEN;
  /** mine: the peer answered on it (no more OPEN repeats) */
  acked = false;
  next: Conn | null = null;
  lastUsed: number;
  rxPackets = 0;
  txPackets = 0;
  deniedAt = 0;
  denyReason = 0;
  /** TCP: FIN/RST seen (TCP_FIN_LOCAL | TCP_FIN_REMOTE | TCP_RST; noteTcpClose) */
  tcpClose = 0;
  lastDenySent = 0;
  /** mine: copy of the first packet, kept until answered (to build a reject if denied) */
  probe: Buffer | null = null;
  /** mine: the local OS user (null = host identity) */
  localUid: number | null = null;
  localName: string | null = null;
  /** mine: the user certificate sent in OPEN (null = host identity) */
  localCert: UserCert | null = null;
  /** mine: the local user it runs as (null = host identity) */
  localUser: LocalUser | null = null;
  /** mine: OPEN body for the tunnel binding openBind (repeated until answered) */
  openBody: Buffer | null = null;
  openBind: Buffer | null = null;
  /** theirs: the peer's user (null = its host identity) */
  peerUser: PeerUser | null = null;
  /** session id of the tunnel the connection was opened on */
  sessionId = "";
  /** mine: the socket it belongs to (inode from the identity lookup; 0 = none, host/kernel) */
  sock = 0;
  /** mine: uid of that socket's owner (-1: none found), whatever identity it runs as */
  ownerUid = -1;
  /** mine: when its owner was last looked up (ms) */
  checkedAt = 0;
  /** theirs: ids of the last first-fragments received on it (later fragments must name one) */
  fragIds: number[] | null = null;
  readonly local = Buffer.alloc(16);
  readonly remote = Buffer.alloc(16);
  /** the addresses as 32-bit words (compared on every packet; l1..l3, r1..r3 are 0 for IPv4) */
  l0 = 0;
  l1 = 0;
  l2 = 0;
  l3 = 0;
  r0 = 0;
  r1 = 0;
  r2 = 0;
  r3 = 0;

  constructor(
    readonly key: number,
    readonly mine: boolean,
    readonly proto: number,
    readonly family: 4 | 6,
    readonly lport: number,
    readonly rport: number,
    readonly hash: number,
    readonly openedAt: number,
  ) {
    this.lastUsed = openedAt;
  }

  /** Fill the address words from local/remote (after they were written). */
  setWords(): void {
    const l = this.local;
    const r = this.remote;
    this.l0 = l.readInt32BE(0);
    this.r0 = r.readInt32BE(0);
    if (this.family === 6) {
      this.l1 = l.readInt32BE(4);
      this.l2 = l.readInt32BE(8);
      this.l3 = l.readInt32BE(12);
      this.r1 = r.readInt32BE(4);
      this.r2 = r.readInt32BE(8);
      this.r3 = r.readInt32BE(12);
    }
  }

  /** Receiver side: a first fragment arrived on this connection. */
  noteFrag(id: number): void {
    const a = (this.fragIds ??= []);
    if (a.includes(id)) return;
    if (a.length >= FRAG_IDS_PER_CONN) a.shift();
    a.push(id);
  }

  /** The id this host sends for the connection (its table key). */
  get wireId(): number {
    return this.key;
  }
  get cid(): number {
    return this.key & CONN_ID_MAX;
  }
}

/** Key in the table for a connection id received on the wire. */
export function keyOfWire(wire: number): number {
  return (wire ^ CONN_PEER_OPENED) >>> 0;
}

export class ConnTable {
  readonly byKey = new Map<number, Conn>();
  private readonly byHash = new Map<number, Conn>();
  /** opener side: fragment (addresses, proto, id) -> the connection of its first fragment */
  private readonly frags = new Map<number, { c: Conn; id: number; at: number }>();
  private nextCid = 1;
  private last: Conn | null = null;

  get size(): number {
    return this.byKey.size;
  }

  /** The connection whose flow this outbound packet (src = local) belongs to; f from parseFlow. */
  lookupOut(buf: Buffer, f: FlowScratch): Conn | null {
    // a bulk transfer sends many packets of one flow in a row: try the last hit first
    const last = this.last;
    if (last !== null && matchesOut(last, buf, f)) return last;
    let c = this.byHash.get(flowHash(buf, f.proto, f.family, f.srcOff, f.sport, f.dstOff, f.dport)) ?? null;
    while (c !== null) {
      if (matchesOut(c, buf, f)) {
        this.last = c;
        return c;
      }
      c = c.next;
    }
    return null;
  }

  /**
   * Does this inbound packet (src = remote) carry c's flow? f from parseFlow. A later
   * fragment (no ports) must carry c's protocol and addresses and the id of a first
   * fragment that arrived on c; a first fragment's id is remembered.
   */
  static matchesIn(c: Conn, buf: Buffer, f: FlowScratch): boolean {
    if (f.frag === FRAG_LATER)
      return (
        c.fragIds !== null && c.fragIds.includes(f.fragId) && sameAddresses(c, buf, f, f.dstOff, f.srcOff)
      );
    if (!matchFlow(c, buf, f, f.dstOff, f.dport, f.srcOff, f.sport)) return false;
    if (f.frag === FRAG_FIRST) c.noteFrag(f.fragId);
    return true;
  }

  /** The connection (either direction) whose flow, from this host's side, is (proto, local, remote). */
  findFlow(
    proto: number,
    family: 4 | 6,
    buf: Buffer,
    lOff: number,
    lport: number,
    rOff: number,
    rport: number,
    mine: boolean,
  ): Conn | null {
    const f = { proto, family } as FlowScratch;
    let c = this.byHash.get(flowHash(buf, proto, family, lOff, lport, rOff, rport)) ?? null;
    while (c !== null) {
      if (c.mine === mine && matchFlow(c, buf, f, lOff, lport, rOff, rport)) return c;
      c = c.next;
    }
    return null;
  }

  /**
   * Fragments of one datagram share addresses and id (IPv4: also the protocol; IPv6: a
   * later fragment's next header may be an extension header of the fragmentable part,
   * so the protocol is not compared).
   */
  private static fragKey(buf: Buffer, f: FlowScratch): number {
    let h = mix(0x27d4eb2f, f.fragId);
    h = mix(h, f.family);
    h = mix(h, buf.readInt32BE(f.srcOff));
    h = mix(h, buf.readInt32BE(f.dstOff));
    if (f.family === 6) {
      h = mix(h, buf.readInt32BE(f.srcOff + 12));
      h = mix(h, buf.readInt32BE(f.dstOff + 12));
    }
    return h;
  }

  /** Opener side: a first fragment left on connection c; its later fragments follow it there. */
  tieFragment(buf: Buffer, f: FlowScratch, c: Conn, now: number): void {
    const k = ConnTable.fragKey(buf, f);
    this.frags.delete(k);
    if (this.frags.size >= FRAG_TIE_MAX) this.frags.delete(this.frags.keys().next().value!);
    this.frags.set(k, { c, id: f.fragId, at: now });
  }

  /** Opener side: the connection of this later fragment's first fragment, or null (refuse it). */
  fragmentConn(buf: Buffer, f: FlowScratch, now: number): Conn | null {
    const e = this.frags.get(ConnTable.fragKey(buf, f));
    if (e === undefined) return null;
    const c = e.c;
    if (
      now - e.at >= FRAG_TIE_MS ||
      e.id !== f.fragId ||
      this.byKey.get(c.key) !== c ||
      !sameAddresses(c, buf, f, f.srcOff, f.dstOff) ||
      (f.family === 4 && f.proto !== c.proto)
    )
      return null;
    return c;
  }

  /** A new connection opened here for the outbound flow f; null when the table is full. */
  openMine(buf: Buffer, f: FlowScratch, now: number): Conn | null {
    if (this.byKey.size >= MAX_CONNS_PER_TUNNEL) return null;
    let cid = this.nextCid;
    while (this.byKey.has(cid)) cid = cid >= CONN_ID_MAX ? 1 : cid + 1;
    this.nextCid = cid >= CONN_ID_MAX ? 1 : cid + 1;
    const a = f.family === 4 ? 4 : 16;
    const hash = flowHash(buf, f.proto, f.family, f.srcOff, f.sport, f.dstOff, f.dport);
    const c = new Conn(cid, true, f.proto, f.family, f.sport, f.dport, hash, now);
    buf.copy(c.local, 0, f.srcOff, f.srcOff + a);
    buf.copy(c.remote, 0, f.dstOff, f.dstOff + a);
    c.setWords();
    this.insert(c);
    return c;
  }

  /**
   * A connection the peer opened (wire id `wire`), flow from its point of view:
   * its address/port is the remote side here. null when the table is full.
   */
  openTheirs(
    wire: number,
    proto: number,
    family: 4 | 6,
    buf: Buffer,
    peerOff: number,
    peerPort: number,
    ourOff: number,
    ourPort: number,
    now: number,
  ): Conn | null {
    if (this.byKey.size >= MAX_CONNS_PER_TUNNEL) return null;
    const key = keyOfWire(wire);
    const c = new Conn(
      key,
      false,
      proto,
      family,
      ourPort,
      peerPort,
      flowHash(buf, proto, family, ourOff, ourPort, peerOff, peerPort),
      now,
    );
    const a = family === 4 ? 4 : 16;
    buf.copy(c.local, 0, ourOff, ourOff + a);
    buf.copy(c.remote, 0, peerOff, peerOff + a);
    c.setWords();
    this.insert(c);
    return c;
  }

  private insert(c: Conn): void {
    this.byKey.set(c.key, c);
    c.next = this.byHash.get(c.hash) ?? null;
    this.byHash.set(c.hash, c);
  }

  remove(c: Conn): void {
    if (this.byKey.get(c.key) !== c) return;
    if (this.last === c) this.last = null;
    this.byKey.delete(c.key);
    let h = this.byHash.get(c.hash) ?? null;
    if (h === c) {
      if (c.next) this.byHash.set(c.hash, c.next);
      else this.byHash.delete(c.hash);
    } else {
      while (h !== null && h.next !== c) h = h.next;
      if (h) h.next = c.next;
    }
    c.next = null;
    c.probe = null;
  }

  /** Forget idle and expired-denied connections; returns how many went. */
  sweep(now: number): number {
    let n = 0;
    for (const [k, e] of this.frags) if (now - e.at >= FRAG_TIE_MS) this.frags.delete(k);
    for (const c of this.byKey.values()) {
      const idle = now - c.lastUsed;
      if (
        (c.state === CONN_DENIED && now - c.deniedAt >= CONN_DENIED_MS) ||
        idle >= (c.mine ? CONN_IDLE_MINE_MS : CONN_IDLE_THEIRS_MS)
      ) {
        this.remove(c);
        n++;
      }
    }
    return n;
  }

  clear(): void {
    this.last = null;
    this.frags.clear();
    for (const c of this.byKey.values()) c.probe = null;
    this.byKey.clear();
    this.byHash.clear();
  }
}

/** Does this outbound packet (src = local) carry c's flow? */
export function matchesOut(c: Conn, buf: Buffer, f: FlowScratch): boolean {
  return matchFlow(c, buf, f, f.srcOff, f.sport, f.dstOff, f.dport);
}

/** c's family and addresses, its local address at buf[lOff] and its remote one at buf[rOff]? */
function sameAddresses(c: Conn, buf: Buffer, f: FlowScratch, lOff: number, rOff: number): boolean {
  if (c.family !== f.family || c.l0 !== buf.readInt32BE(lOff) || c.r0 !== buf.readInt32BE(rOff)) return false;
  return (
    f.family === 4 ||
    (c.l1 === buf.readInt32BE(lOff + 4) &&
      c.l2 === buf.readInt32BE(lOff + 8) &&
      c.l3 === buf.readInt32BE(lOff + 12) &&
      c.r1 === buf.readInt32BE(rOff + 4) &&
      c.r2 === buf.readInt32BE(rOff + 8) &&
      c.r3 === buf.readInt32BE(rOff + 12))
  );
}

/** c's flow, with its local side at buf[lOff] (port lport) and its remote side at buf[rOff]? */
function matchFlow(
  c: Conn,
  buf: Buffer,
  f: FlowScratch,
  lOff: number,
  lport: number,
  rOff: number,
  rport: number,
): boolean {
  if (c.proto !== f.proto || c.lport !== lport || c.rport !== rport || c.family !== f.family) return false;
  if (c.l0 !== buf.readInt32BE(lOff) || c.r0 !== buf.readInt32BE(rOff)) return false;
  return (
    f.family === 4 ||
    (c.l1 === buf.readInt32BE(lOff + 4) &&
      c.l2 === buf.readInt32BE(lOff + 8) &&
      c.l3 === buf.readInt32BE(lOff + 12) &&
      c.r1 === buf.readInt32BE(rOff + 4) &&
      c.r2 === buf.readInt32BE(rOff + 8) &&
      c.r3 === buf.readInt32BE(rOff + 12))
  );
}

/** A local user whose flows are authenticated as itself (from the user store). */
export interface LocalUser {
  uid: number;
  osUser: string;
  cert: UserCert;
  /** X25519 form of the user's Ed25519 secret key (zeroed when the store is reloaded) */
  x: Buffer;
}

/**
 * Who opened an outbound flow (the daemon joins the OS identity mapper and the
 * user store; tests inject a fake). Called for a flow's first packet, again for a
 * TCP SYN on a connection (a new socket?) and for UDP every UDP_RECHECK_MS.
 *   null     the host identity (kernel, root, ICMP, ...)
 *   "deny"   refuse here (an OS user without an identity, when configured so)
 */
export interface ConnIdentity {
  identify(f: FlowScratch, buf: Buffer): LocalUser | null | "deny";
  /** the socket (inode) the last identify() found; 0: none (host, kernel, no owner). Optional for fakes. */
  readonly lastSocket?: number;
  /** the uid owning that socket; -1: none */
  readonly lastUid?: number;
}
