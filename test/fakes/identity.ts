/**
 * FakeIdentityLookup: an in-memory socket table with the Linux lookup's matching rules
 * (src/net/identity.ts bestMatch). Moved out of the production file: fakes live with the tests.
 */
import {
  PROTO_TCP,
  PROTO_UDP,
  TCP_LISTEN,
  bestMatch,
  checkFlow,
  ipBytes,
  type FlowKey,
  type Identity,
  type IdentityLookup,
  type SocketEntry,
} from "../../src/net/identity.js";

/**
 * In-memory socket table for tests and the in-process network: register sockets as the
 * kernel would hold them; lookup applies the same rules as the Linux class.
 */
export class FakeIdentityLookup implements IdentityLookup {
  private readonly socks = new Map<number, SocketEntry>();
  private nextInode = 1000;

  /** Register a socket (addresses as strings; "" or omitted remote = listener / unconnected). */
  addSocket(s: {
    proto: number;
    family: 4 | 6;
    local: string;
    lport: number;
    remote?: string;
    rport?: number;
    listen?: boolean;
    uid: number;
    inode?: number;
    v6only?: boolean;
  }): number {
    const inode = s.inode ?? this.nextInode++;
    const any = s.family === 4 ? "0.0.0.0" : "::";
    this.socks.set(inode, {
      proto: s.proto,
      family: s.family,
      local: ipBytes(s.local || any, s.family),
      lport: s.lport,
      remote: ipBytes(s.remote || any, s.family),
      rport: s.rport ?? 0,
      state: s.listen ? TCP_LISTEN : s.proto === PROTO_UDP ? 7 : 1,
      uid: s.uid,
      inode,
      v6only: s.v6only,
    });
    return inode;
  }

  removeSocket(inode: number): void {
    this.socks.delete(inode);
  }

  lookup(flow: FlowKey): Identity | null {
    checkFlow(flow);
    if (flow.proto !== PROTO_TCP && flow.proto !== PROTO_UDP) return null;
    const l = ipBytes(flow.local, flow.family);
    const r = ipBytes(flow.remote, flow.family);
    const s = bestMatch(flow, l, r, this.socks.values());
    return s && s.inode !== 0 ? { uid: s.uid, inode: s.inode, source: "fake" } : null;
  }
}
