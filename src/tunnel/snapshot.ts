/**
 * The engine's state as plain data (JSON-serialisable): what `mintun status`, the metrics
 * and the web view show of the engine. Readers take a snapshot instead of walking the
 * engine's tables.
 */
import { addrToString } from "../wire/addr.js";
import { AEAD_SUITE_NAMES } from "../crypto/aead.js";
import { fingerprint } from "../wire/cert.js";
import type { Peer, Tunnel } from "./tunnel.js";
import type { EngineCore } from "./timers.js";

export interface TunnelStatus {
  peer: string;
  role: string;
  state: string;
  endpoint: string;
  session: string;
  /** the data suite: "chacha20-poly1305" or "aes-256-gcm" (docs/PROTOCOL.md "AEAD suites") */
  aead: string;
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
  /** last round-trip sample in ms (Tunnel.rttMs: handshake, then answered rekeys); -1: none */
  rttMs: number;
  /** how packets reach the peer: "direct" (to its endpoint); "relayed" is kept for relays */
  path: TunnelPath;
}

/** The way a tunnel's datagrams take; relays (not built yet) will add "relayed". */
export type TunnelPath = "direct" | "relayed";

export interface PeerStatus {
  name: string;
  key: string | null;
  ip4: string | null;
  ip6: string | null;
  subnets: string[];
  endpoint: string | null;
  configured: boolean;
  record: { keyId: number; expiresInSec: number } | null;
  /**
   * Why `record` is null or expired (null when it is usable): "refused" (the last answer did
   * not verify: `detail` says why, e.g. "certificate wrong-issuer", "record expired"),
   * "unreachable" (`attempts` requests unanswered), "no-endpoint" (nowhere to ask yet:
   * waiting for the directory or the peer's first packet), "expired" (the held record ran
   * out and no newer one came), "pending" (asked once, no answer yet).
   */
  recordProblem?: RecordProblem | null;
  /** the peer's host certificate's notAfter, unix seconds (null: not known yet) */
  certNotAfter?: number | null;
  tunnels: number;
}

export interface RecordProblem {
  reason: "refused" | "unreachable" | "no-endpoint" | "expired" | "pending";
  detail: string | null;
  attempts: number;
}

/** Why a peer has no usable record (see PeerStatus.recordProblem). */
export function recordProblem(p: Peer, nowSec: number): RecordProblem | null {
  const attempts = p.recordReq?.attempts ?? 0;
  if (p.eph && p.eph.notAfter > nowSec) return null;
  if (p.recordRefused) return { reason: "refused", detail: p.recordRefused, attempts };
  if (p.eph) return { reason: "expired", detail: null, attempts };
  if (!p.endpoint) return { reason: "no-endpoint", detail: null, attempts };
  if (attempts > 1) return { reason: "unreachable", detail: null, attempts };
  return { reason: "pending", detail: null, attempts };
}

export interface EngineSnapshot {
  host: {
    name: string;
    key: string;
    ip4: string | null;
    ip6: string | null;
    subnets: string[];
    /** the host certificate's and the CA's notAfter, unix seconds */
    certNotAfter?: number;
    caNotAfter?: number;
  };
  ephemeral: { keyId: number; expiresInSec: number }[];
  tunnels: TunnelStatus[];
  peers: PeerStatus[];
  drops: Record<string, number>;
  events: Record<string, number>;
  dos: {
    puzzling: boolean;
    difficulty: number;
    maxDifficultyReached: number;
    offeredCreatesPerSec: number;
    /** offered creations since start */
    offeredCreates?: number;
    sources: number;
  };
}

export function snapshotOf(e: EngineCore, now: number): EngineSnapshot {
  const hc = e.opts.hostCert;
  const peers = [...e.peers.values(), ...e.unresolved.values()];
  const nowSec = now / 1000;
  return {
    host: {
      name: hc.name,
      key: fingerprint(hc.publicKey),
      ip4: hc.ip4,
      ip6: hc.ip6,
      subnets: hc.subnets,
      certNotAfter: hc.notAfter,
      caNotAfter: e.opts.ca.notAfter,
    },
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
      recordProblem: recordProblem(p, nowSec),
      certNotAfter: p.hostCert?.notAfter ?? null,
      tunnels: p.tunnels.length,
    })),
    drops: { ...e.drops },
    events: { ...e.events },
    dos: {
      puzzling: e.load.puzzling,
      difficulty: e.load.difficulty,
      maxDifficultyReached: e.load.maxReached,
      offeredCreatesPerSec: e.load.rate,
      offeredCreates: e.load.offered,
      sources: e.buckets.size,
    },
  };
}

function tunnelStatus(t: Tunnel, now: number): TunnelStatus {
  return {
    peer: t.peer.name,
    role: t.role,
    state: t.state,
    endpoint: addrToString(t.endpoint),
    session: t.sessionId,
    aead: AEAD_SUITE_NAMES[t.suite],
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
    rttMs: t.rttMs,
    // every tunnel sends to the peer's own endpoint today; a relayed tunnel will say so here
    path: "direct",
  };
}
