/**
 * The directory client's types: its options, lookup results, per-directory and
 * per-lookup state, and its status (client.ts holds the behaviour).
 */
import type { Logger } from "../log.js";
import type { Peer } from "../tunnel/tunnel.js";
import type { CaCert } from "../wire/cert.js";
import type { DirEndpoint } from "../wire/directory.js";
import type { RevocationList } from "../wire/revocation.js";
import type { LookupQuery, VerifiedRecord } from "./record.js";

export interface DirectoryClientOptions {
  /** 20-byte endpoint records of the directories, in order of preference */
  directories: Buffer[];
  ca: CaCert;
  /** the clock of the Promise API (`resolve`); the core takes `now` */
  clock: () => number;
  logger?: Logger;
  maxCached?: number;
  maxPendingTargets?: number;
  maxPacketsPerTarget?: number;
  maxInflight?: number;
  /** registration refresh interval (config registration.refreshSec); default REGISTER_REFRESH_MS */
  registerRefreshMs?: number;
  /** how often each directory is asked for a newer revocation list; default DIR_REVOCATION_POLL_MS */
  revocationPollMs?: number;
  /** a newer revocation list from a directory was verified and installed in the engine */
  onRevocation?: (list: RevocationList, now: number) => void;
}

export type LookupFailure = "notFound" | "unavailable" | "badRecord" | "noDirectory" | "busy" | "revoked";
export type LookupResult =
  { ok: true; record: VerifiedRecord; peer: Peer } | { ok: false; reason: LookupFailure };
export type LookupCallback = (r: LookupResult) => void;

export interface DirState {
  label: string;
  endpoint: Buffer;
  peer: Peer;
  /** encoded request bodies waiting for the tunnel (bounded) */
  outbox: Buffer[];
  reg: { id: number; sentAt: number; keyId: number } | null;
  registeredKeyId: number | null;
  registeredAt: number;
  observed: DirEndpoint | null;
  lastAnswerAt: number;
  failures: number;
  /** revocation list fetch in progress (chunks of the signed list) */
  rev: { id: number; sentAt: number; number: number; buf: Buffer | null; got: number } | null;
  lastRevPoll: number;
}

export interface Inflight {
  id: number;
  key: string;
  q: LookupQuery;
  dir: number;
  sentAt: number;
  tried: number;
  waiters: LookupCallback[];
}

/** encoded requests kept per directory while its tunnel is being made */
export const MAX_OUTBOX = 64;

export interface DirectoryClientStatus {
  directories: {
    endpoint: string;
    name: string | null;
    state: "no-record" | "connecting" | "up";
    registered: boolean;
    observed: string | null;
    lastAnswerMsAgo: number | null;
  }[];
  cachedRecords: number;
  negative: number;
  inflight: number;
  pendingTargets: number;
}
