/**
 * The directory's own counters (client and role), kept by the directory and shown in
 * status and metrics beside the engine's: the same `drops` / `events` maps, summed by
 * key (daemon/status.ts). The engine counts nothing on the directory's behalf.
 */
export function newDirDrops() {
  return {
    /** directory answers whose record did not verify or did not answer the question (refused) */
    dirBadRecord: 0,
    /** directory requests over the sending host's rate (directory role) */
    dirRateLimited: 0,
    /** directory requests refused: malformed, unverifiable registration, store full (directory role) */
    dirRefused: 0,
    /** TUN packets whose directory lookup found nothing (no route), or that waited too long */
    noRoute: 0,
    /** packets that waited for a lookup beyond the per-destination queue */
    queueFull: 0,
    /** DIR_RESPONSE frames that did not decode */
    badFrames: 0,
  };
}
export type DirDrops = ReturnType<typeof newDirDrops>;

export function newDirEvents() {
  return {
    /** directory client: lookups sent, answered from cache, records learned, not found, failed */
    dirLookups: 0,
    dirCacheHits: 0,
    dirRecordsLearned: 0,
    dirNotFound: 0,
    dirLookupFailures: 0,
    /** directory client: registrations sent / acknowledged; directories that did not answer */
    dirRegistrations: 0,
    dirRegistered: 0,
    dirTimeouts: 0,
    /** directory client: stalled tunnels whose peer was looked up again (both ends moved) */
    dirRelookups: 0,
    /** directory client: stalled tunnels closed because the peer's key is younger (it restarted) */
    dirStaleTunnels: 0,
    /** directory role: requests answered, registrations stored */
    dirRequestsServed: 0,
    dirRecordsStored: 0,
    /** directory role: revocation list chunks served */
    dirRevocationServed: 0,
    /** directory client: newer revocation lists fetched from a directory and installed */
    dirRevocationFetched: 0,
    /** directory client: revocation lists from a directory refused (not the CA's, malformed, not newer) */
    dirRevocationRefused: 0,
  };
}
export type DirEvents = ReturnType<typeof newDirEvents>;

/** The counters of one directory client or server. */
export interface DirCounters {
  readonly drops: DirDrops;
  readonly events: DirEvents;
}

export function newDirCounters(): DirCounters {
  return { drops: newDirDrops(), events: newDirEvents() };
}

/** Sum counter maps by key (engine + directory client + directory server). */
export function sumCounters(...maps: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of maps) for (const [k, v] of Object.entries(m)) out[k] = (out[k] ?? 0) + v;
  return out;
}
