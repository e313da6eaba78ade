/**
 * Relayed paths at the I/O edge (issue 17). The engine treats a relayed path as one more
 * endpoint (a 20-byte record of family RELAY_FAMILY, wire/addr.ts); this file turns it
 * into RELAY datagrams (wire/nat.ts) and back, so that the protocol core stays as it is:
 *
 *   send:    RelayingOutput.sendUdp(datagram, to relay endpoint record)
 *              -> RELAY header (token) + datagram, to the directory's real endpoint
 *   receive: relayIn(batch) before Engine.handleUdpBatch: a RELAY datagram is either
 *              forwarded (this host is the relay: RelayServer, length set to 0 so the
 *              engine skips it) or unwrapped in place (this host is an end: the header
 *              removed, the source rewritten to the relay endpoint record), so the engine
 *              sees the enclosed tunnel datagram as coming from the relayed path.
 *
 * A relayed datagram costs one copy on send (the header goes in front) and one move on
 * receive; the relayed path is the slow path by nature.
 */
import type { Output } from "../tunnel/engine.js";
import type { UdpBatch } from "../tunnel/io.js";
import { ADDR_BYTES, RELAY_FAMILY, relayAddr } from "../wire/addr.js";
import { RELAY_HEADER_BYTES, RELAY_TYPE, decodeRelayHeader, writeRelayHeader } from "../wire/nat.js";
import { MAX_UDP_PAYLOAD_BYTES } from "../tunnel/constants.js";
import type { NatAgent } from "./nat.js";
import type { RelayServer } from "./relay.js";

export function newRelayPathDrops() {
  return {
    /** relayed sends without a usable relay (no agent, unknown directory, no tunnel to the relay host yet) */
    relayUnroutable: 0,
    /** received RELAY datagrams this host neither relays nor takes: malformed, or no relay here */
    relayNotOurs: 0,
  };
}
export type RelayPathDrops = ReturnType<typeof newRelayPathDrops>;

export class RelayingOutput implements Output {
  /** set when the directory client starts (null: relayed sends are dropped, counted) */
  agent: NatAgent | null = null;
  /** both directions' drops at this edge (status and metrics show them with the directory's) */
  readonly drops = newRelayPathDrops();
  readonly events = {};

  constructor(private readonly inner: Output) {}

  sendUdp(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number, src?: Buffer | null): void {
    if (addr[addrOff] !== RELAY_FAMILY) {
      this.inner.sendUdp(buf, off, len, addr, addrOff, src);
      return;
    }
    const r = this.agent?.relayTarget(addr, addrOff) ?? null;
    if (!r) {
      this.drops.relayUnroutable++;
      return;
    }
    const b = Buffer.allocUnsafe(RELAY_HEADER_BYTES + len);
    writeRelayHeader(b, 0, r.token);
    buf.copy(b, RELAY_HEADER_BYTES, off, off + len);
    this.inner.sendUdp(b, 0, b.length, r.endpoint, 0);
  }

  writeTun(buf: Buffer, off: number, len: number): void {
    this.inner.writeTun(buf, off, len);
  }

  flush(): void {
    this.inner.flush();
  }
}

/**
 * RELAY datagrams of a received batch: forwarded (relay) or unwrapped in place (end host).
 * Every other RELAY-typed datagram is consumed (length 0) and counted exactly once: by the
 * relay (RelayServer.forward), by the agent (NatAgent.relaySource: unknown token or wrong
 * source), else here (`relayNotOurs`: malformed, or neither a relay nor an agent here).
 */
export function relayIn(
  b: UdpBatch,
  server: RelayServer | null,
  agent: NatAgent | null,
  drops: RelayPathDrops,
  now: number,
): void {
  const buf = b.buf;
  for (let i = 0; i < b.count; i++) {
    const off = i * b.slotSize + b.headroom;
    const len = b.lens[i]!;
    if (len < RELAY_HEADER_BYTES || buf[off + 8] !== RELAY_TYPE) continue;
    const srcOff = i * ADDR_BYTES;
    b.lens[i] = 0;
    if (server && server.owns(buf, off, len)) {
      server.forward(buf, off, len, b.addrs, srcOff, now);
      continue;
    }
    const tok = decodeRelayHeader(buf, off, len, MAX_UDP_PAYLOAD_BYTES);
    if (!tok || !agent) {
      drops.relayNotOurs++;
      continue;
    }
    const dir = agent.relaySource(tok, b.addrs, srcOff);
    if (dir < 0) continue;
    relayAddr(dir, tok).copy(b.addrs, srcOff);
    buf.copyWithin(off, off + RELAY_HEADER_BYTES, off + len);
    b.lens[i] = len - RELAY_HEADER_BYTES;
  }
}
