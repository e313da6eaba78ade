/**
 * The engine's options and the types it shares with its callers (the daemon,
 * the directory client, the tests). No code: see base.ts for the engine itself.
 */
import { type Logger } from "../log.js";
import { type AeadSuite } from "../crypto/aead.js";
import { type CaCert, type EphemeralCert, type HostCert } from "../wire/cert.js";
import { FRAME_HEADER_BYTES } from "./constants.js";
import { MAX_DIFFICULTY } from "../dos/puzzle.js";
import { type PuzzleSolver } from "../dos/solver.js";
import { type ConnIdentity } from "../conn/conns.js";
import { CONN_ID_BYTES } from "../wire/conn.js";
import { type Policy } from "../conn/policy.js";
import type { Tunnel } from "./tunnel.js";
import type { UdpBatch } from "./io.js";

/** Where the engine's actions go. Buffers passed are valid until `flush()` returns. */
export interface Output {
  /** src: the local address to send from (mobility pins it per tunnel), or the kernel's choice */
  sendUdp(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number, src?: Buffer | null): void;
  /**
   * Optional: one datagram with IP TTL / IPv6 hop limit `ttl`, sent now (after what is
   * queued for that endpoint). Without it, low-TTL punches go with the default TTL.
   */
  sendUdpTtl?(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number, ttl: number): void;
  writeTun(buf: Buffer, off: number, len: number): void;
  flush(): void;
}

export interface EngineOptions {
  ca: CaCert;
  hostCert: HostCert;
  hostSecretKey: Buffer;
  ephemeralLifetimeMs: number;
  minFirstPacket: number;
  rekeyAfterMs: number;
  keepaliveMs: number;
  idleTimeoutMs: number;
  maxTunnels: number;
  /** tunnels one peer host may hold (its share of maxTunnels); default DEFAULT_MAX_PER_HOST */
  maxPerHost?: number;
  /**
   * An accepted tunnel whose creator never answered under the new key (it never saw a
   * REPLY, or never meant to) is closed after this long instead of idleTimeoutMs.
   */
  unconfirmedTimeoutMs?: number;
  /** creator keys (T_I) remembered per ephemeral key, all hosts; default 100 000 */
  maxReplayRecords?: number;
  /** one creator host's share of them; default DEFAULT_REPLAY_PER_HOST */
  maxReplayPerHost?: number;
  /**
   * The data suite this host prefers (docs/PROTOCOL.md "AEAD suites"): AES-256-GCM is
   * offered in the ephemeral certificate and chosen when creating a tunnel to a peer that
   * offers it; ChaCha20-Poly1305 (the default) neither offers nor chooses it. Tunnels
   * created by peers are accepted with either suite.
   */
  aeadSuite?: AeadSuite;
  /** underlay endpoints to publish in ephemeral certificates */
  endpoints: () => { ip: string; port: number }[];
  logger?: Logger;
  /** called when a new ephemeral certificate is made (for the directory, status) */
  onEphemeralRotated?: (cert: EphemeralCert) => void;
  onEvent?: (kind: string, fields: Record<string, unknown>) => void;
  /**
   * Which local address the kernel would send from to reach an endpoint (20-byte records);
   * false when unknown. A query of the environment, injected like the clock: with it, a
   * tunnel moves to its next epoch before its first packet from a new address.
   */
  routeSource?: (dst: Buffer, out: Buffer) => boolean;
  /** denial-of-service defence (src/dos/); defaults in DOS_DEFAULTS */
  dos?: Partial<DosOptions>;
  /** who opens each outbound flow (per-user connections); absent: every flow is the host's */
  identity?: ConnIdentity;
  /** connection policy for inbound flows (src/conn/policy.ts); absent or null: allow all */
  policy?: Policy | null;
  /**
   * Where puzzles get solved (src/dos/solver.ts). The daemon passes a WorkerSolver
   * (off the event loop); absent: an InlineSolver (tests, tools: synchronous).
   */
  solver?: PuzzleSolver;
  /** the directory's hooks (DirectoryHooks); absent: no directory */
  directory?: DirectoryHooks;
}

/**
 * The directory's entry points into the engine (src/directory/), passed at construction
 * in EngineOptions.directory. The record belongs to whoever builds the engine (the
 * daemon, a test); the directory fills its slots when it starts. An empty slot, or one
 * that returns false, leaves the packet to the engine: counted as noRoute / badFrames.
 */
export interface DirectoryHooks {
  /** a TUN packet with no route (the hook copies what it keeps); true: taken */
  miss?: (buf: Buffer, off: number, len: number, now: number) => boolean;
  /** a DIR_REQUEST or DIR_RESPONSE frame from an authenticated tunnel; true: taken */
  frame?: (t: Tunnel, type: number, buf: Buffer, off: number, len: number, now: number) => boolean;
  /** a tunnel this host created became established */
  tunnelUp?: (t: Tunnel, now: number) => void;
  /**
   * a received UDP batch, before the engine reads it: relayed datagrams are forwarded or
   * unwrapped in place (src/directory/relaypath.ts); a slot set to length 0 is skipped
   */
  udpBatch?: (b: UdpBatch, now: number) => void;
}

/** The options a reload (SIGHUP) changes on a running engine: Engine.reconfigure. */
export type ReloadableOptions = Pick<
  EngineOptions,
  "rekeyAfterMs" | "keepaliveMs" | "idleTimeoutMs" | "maxTunnels" | "maxPerHost" | "unconfirmedTimeoutMs"
>;

/** One connection as whois reports it (both ends). */
export interface ConnInfo {
  direction: "in" | "out";
  proto: number;
  local: string;
  remote: string;
  peerHost: { name: string; groups: string[]; fingerprint: string };
  peerUser: { name: string; groups: string[]; fingerprint: string } | null;
  localUser: { uid: number; name: string; cert: string } | null;
  /** "out": uid of the local socket that opened it (also when it runs as the host); null: none found */
  ownerUid: number | null;
  session: string;
  /** closing / closed: a TCP flow whose FIN (one way / both ways) or RST passed; kept until idle */
  state: "open" | "closing" | "closed" | "denied";
  denyReason: string | null;
  openedAt: number;
  lastUsed: number;
  rxPackets: number;
  txPackets: number;
}

/** Connections counted by who holds them (the web view's "connections by user"). */
export interface ConnGroup {
  peer: string;
  direction: "in" | "out";
  /** out: the local user it runs as (null: the host identity) */
  localUser: string | null;
  /** in: the peer's user (certificate name; null: the peer's host identity) */
  peerUser: string | null;
  /** the peer user's certificate notAfter, unix seconds (null: none) */
  peerUserNotAfter: number | null;
  open: number;
  /** TCP flows the kernel closed (FIN both ways or RST), kept until idle */
  closed: number;
  denied: number;
}

export interface DosOptions {
  /** CREATE / RECORD_REQUEST per second per source address (IPv6: per /64) */
  perSourcePerSec: number;
  perSourceBurst: number;
  maxSources: number;
  /** offered creations per second above which CREATEs are answered with puzzles */
  puzzleAbovePerSec: number;
  baseDifficulty: number;
  maxDifficulty: number;
  /** puzzles stay on until the load stayed below half the threshold this long */
  calmMs: number;
  /** creator: the hardest PUZZLE it works on (harder ones: `puzzleTooHard`); at most MAX_DIFFICULTY */
  maxSolveDifficulty: number;
  /** creator: puzzles it solves per peer per 10-s puzzle window (more: `puzzleBusy`) */
  puzzleSolvesPerPeer: number;
}

export const DOS_DEFAULTS: DosOptions = {
  perSourcePerSec: 100,
  perSourceBurst: 200,
  maxSources: 65_536,
  puzzleAbovePerSec: 1000,
  baseDifficulty: 8,
  maxDifficulty: 20,
  calmMs: 5_000,
  maxSolveDifficulty: MAX_DIFFICULTY,
  puzzleSolvesPerPeer: 4,
};

/** KEEPALIVE body of an endpoint probe: please answer (probeEndpoint). */
export const PROBE_BODY = Buffer.from([1]);

/** Default share of the tunnel table for one peer host. */
export const DEFAULT_MAX_PER_HOST = 64;
/** One creator host's share of an ephemeral key's replay record (docs/PROTOCOL.md 5e). */
export const DEFAULT_REPLAY_PER_HOST = 1024;
/** Default life of an accepted tunnel its creator never confirmed (2 × CREATE_TIMEOUT_MS). */
export const DEFAULT_UNCONFIRMED_TIMEOUT_MS = 10_000;

export interface PeerConfig {
  name: string;
  endpoint: Buffer | null;
  cert?: HostCert;
}

/** inner packets kept per peer while its record is fetched */
export const MAX_PENDING_PER_PEER = 16;
/** CONN_DATA frame header + connection id before each inner packet */
export const CONN_DATA_HEADER_BYTES = FRAME_HEADER_BYTES + CONN_ID_BYTES;
