/** Snapshot of the daemon's state for `mintun status` (JSON-serialisable). */
import type { Engine } from "../tunnel/engine.js";
import type { Tunnel } from "../tunnel/tunnel.js";
import { addrToString } from "../wire/addr.js";
import { fingerprint } from "../wire/cert.js";

export interface TunnelStatus {
  peer: string;
  role: string;
  state: string;
  endpoint: string;
  session: string;
  ageMs: number;
  epoch: number;
  lastRekeyMsAgo: number;
  lastRxMsAgo: number;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  rekeys: number;
  roams: number;
}

export interface PeerStatus {
  name: string;
  key: string | null;
  ip4: string | null;
  ip6: string | null;
  subnets: string[];
  endpoint: string | null;
  configured: boolean;
  record: { keyId: number; expiresInSec: number } | null;
  tunnels: number;
}

export interface Status {
  host: { name: string; key: string; ip4: string | null; ip6: string | null; subnets: string[] };
  listen: string;
  tun: string;
  uptimeSec: number;
  ephemeral: { keyId: number; expiresInSec: number }[];
  tunnels: TunnelStatus[];
  peers: PeerStatus[];
  drops: Record<string, number>;
  events: Record<string, number>;
  devices: Record<string, unknown>;
}

function tunnelStatus(t: Tunnel, now: number): TunnelStatus {
  return {
    peer: t.peer.name,
    role: t.role,
    state: t.state,
    endpoint: addrToString(t.endpoint),
    session: t.sessionId,
    ageMs: now - t.createdAt,
    epoch: t.cur?.number ?? -1,
    lastRekeyMsAgo: t.lastRekeyAt ? now - t.lastRekeyAt : -1,
    lastRxMsAgo: now - t.lastRx,
    rxPackets: t.rxPackets,
    rxBytes: t.rxBytes,
    txPackets: t.txPackets,
    txBytes: t.txBytes,
    rekeys: t.rekeys,
    roams: t.roams,
  };
}

export function buildStatus(
  e: Engine,
  now: number,
  extra: { listen: string; tun: string; startedAt: number; devices: Record<string, unknown> },
): Status {
  const hc = e.opts.hostCert;
  const peers = [...e.peers.values(), ...e.unresolved.values()];
  const nowSec = now / 1000;
  return {
    host: { name: hc.name, key: fingerprint(hc.publicKey), ip4: hc.ip4, ip6: hc.ip6, subnets: hc.subnets },
    listen: extra.listen,
    tun: extra.tun,
    uptimeSec: Math.round((now - extra.startedAt) / 1000),
    ephemeral: e.eph
      .list()
      .map((k) => ({ keyId: k.keyId, expiresInSec: Math.round((k.notAfter - now) / 1000) })),
    tunnels: peers.flatMap((p) => p.tunnels.map((t) => tunnelStatus(t, now))),
    peers: peers.map((p) => ({
      name: p.name,
      key: p.hostCert ? fingerprint(p.hostCert.publicKey) : null,
      ip4: p.hostCert?.ip4 ?? null,
      ip6: p.hostCert?.ip6 ?? null,
      subnets: p.hostCert?.subnets ?? [],
      endpoint: p.endpoint ? addrToString(p.endpoint) : null,
      configured: p.configured,
      record: p.eph ? { keyId: p.eph.keyId, expiresInSec: Math.round(p.eph.notAfter - nowSec) } : null,
      tunnels: p.tunnels.length,
    })),
    drops: { ...e.drops },
    events: { ...e.events },
    devices: extra.devices,
  };
}
