/**
 * The configuration's types, defaults and limits (the schema the reader enforces).
 */
export type LogLevel = "error" | "warn" | "info" | "debug";
export const LOG_LEVELS: readonly LogLevel[] = ["error", "warn", "info", "debug"];

export interface HostPort {
  host: string;
  port: number;
}

export interface PeerConfig {
  name: string;
  endpoint: HostPort;
  /** Absolute path of the peer's host certificate, when pinned locally. */
  cert?: string;
}

/**
 * The etcd cluster of a directory store. tls: CA bundle to verify the servers
 * (https:// endpoints), and optionally a client certificate and key; username
 * with the password read from passwordFile: etcd's own authentication.
 */
export interface EtcdConfig {
  endpoints: string[];
  prefix: string;
  tls: { ca: string; cert: string | null; key: string | null } | null;
  auth: { username: string; passwordFile: string } | null;
}

/** The directory role (docs/OPERATIONS.md "Running a directory"). */
export interface DirectoryServeConfig {
  serve: boolean;
  /** file: STATE/directory.json (default); etcd: shared by several directories */
  store: "file" | "etcd";
  etcd: EtcdConfig | null;
  maxRecords: number;
  /** per registering host */
  registerPerSec: number;
  lookupPerSec: number;
}

/** The relay (issue 17; docs/OPERATIONS.md "Running a relay"): a directory or relay host that forwards sealed datagrams. */
export interface RelayConfig {
  serve: boolean;
  /** per sending host: sustained bytes per second and burst */
  bytesPerSec: number;
  burstBytes: number;
  /** host pairs with a relay token (least recently used evicted beyond) */
  maxPairs: number;
  /** on a directory that does not relay itself: the relay hosts (certificate names) it may hand pairs to */
  hosts: string[];
}

export interface DirectoryEntry {
  /** IP literal and port of a directory (its identity is learned from its record) */
  endpoint: HostPort;
}

export interface Config {
  /** Absolute path of the file this was loaded from. */
  file: string;
  /** Path to the CA certificate (required). */
  ca: string;
  host: { key: string; cert: string };
  /** "listen: 0.0.0.0:7000" or "[::]:7000"; address is an IP literal. */
  listen: { address: string; port: number };
  /** peerSubnets: route the subnets listed in verified peer certificates into the TUN (default true) */
  tun: { name: string; mtu: number; routes: string[]; peerSubnets: boolean };
  /**
   * replayRecords: creator keys remembered per ephemeral key (its replay record);
   * replayPerHost: one creator host's share of them
   */
  ephemeral: { lifetimeSec: number; minFirstPacket: number; replayRecords: number; replayPerHost: number };
  /**
   * maxPerHost: tunnels one peer host may hold (its share of maxTunnels);
   * unconfirmedTimeoutSec: life of an accepted tunnel its creator never confirmed
   */
  tunnel: {
    rekeySec: number;
    keepaliveSec: number;
    idleTimeoutSec: number;
    maxTunnels: number;
    maxPerHost: number;
    unconfirmedTimeoutSec: number;
  };
  /** how often this host refreshes its registration with its directories (besides on key rotation) */
  registration: { refreshSec: number };
  /** denial-of-service defence (docs/PROTOCOL.md section 5a) */
  dos: {
    perSourcePerSec: number;
    perSourceBurst: number;
    puzzleAbovePerSec: number;
    baseDifficulty: number;
    maxDifficulty: number;
    /** creator side: the hardest puzzle worked on, and puzzles solved per peer per 10 s */
    maxSolveDifficulty: number;
    puzzleSolvesPerPeer: number;
  };
  peers: PeerConfig[];
  /** directories this host registers with and looks hosts up from, in order of preference */
  directories: DirectoryEntry[];
  /** this daemon serves as a directory (null: it does not) */
  directory: DirectoryServeConfig | null;
  /** relay for hosts that cannot reach each other directly (null: none) */
  relay: RelayConfig | null;
  /**
   * NAT traversal (docs/PROTOCOL.md 8b). punchTtl: IP TTL / IPv6 hop limit of the first
   * punches, enough to leave our own NAT and not reach the peer's (0: full TTL)
   */
  nat: { punchTtl: number };
  api: { socket: string };
  /** YAML key "state". */
  stateDir: string;
  log: { level: LogLevel };
  /** Prometheus endpoint (GET /metrics); null = off (the default). */
  metrics: { listen: HostPort | null };
  /** Live web view; null = off (the default). Loopback addresses only. */
  web: { listen: HostPort | null };
  /** Connection policy file (docs/IDENTITY.md); null = every authenticated host may reach everything. */
  policy: string | null;
  /**
   * Trust beyond the CA certificate. revocationList: the CA's signed revocation list
   * (`mintun ca revoke`); read at start and on every reload (a newer list from a
   * directory is kept over an older file); null = none (the default).
   */
  trust: { revocationList: string | null };
  /**
   * Per-user connections (docs/IDENTITY.md): what flows of OS users without an entry in
   * the user store, and flows whose owner is not proven, run as (default deny); asHost:
   * OS users and groups (names or numeric ids, "@group" or "group:NAME" for a group)
   * whose flows run as the host, like root's.
   */
  users: { unmapped: "host" | "deny"; asHost: string[] };
  /**
   * DNS for overlay names (docs/OPERATIONS.md "Names (DNS)"). listen: "overlay" = this
   * host's overlay addresses, port 53; an explicit address; or null = off (the default).
   * domain: normalized with the trailing dot, default "mesh.".
   */
  dns: { listen: "overlay" | HostPort | null; domain: string };
  /** Site-to-site gateway (docs/OPERATIONS.md "Site-to-site gateways"). */
  gateway: { forward: boolean; masquerade: boolean; lanInterface: string | null };
  /**
   * The data path over several threads (docs/ARCHITECTURE.md "Many cores"): workers = the
   * TUN queues and UDP sockets read in parallel, the main thread being the first. 1 (the
   * default) is the single-thread data path.
   */
  dataPath: { workers: number };
}

export const DEFAULTS = {
  listen: { address: "0.0.0.0", port: 7000 },
  tun: { name: "mintun0", mtu: 1400 },
  ephemeral: { lifetimeSec: 300, minFirstPacket: 256, replayRecords: 100_000, replayPerHost: 1024 },
  tunnel: {
    rekeySec: 120,
    keepaliveSec: 25,
    idleTimeoutSec: 180,
    maxTunnels: 10_000,
    maxPerHost: 64,
    unconfirmedTimeoutSec: 10,
  },
  registration: { refreshSec: 10 },
  dos: {
    perSourcePerSec: 100,
    perSourceBurst: 200,
    puzzleAbovePerSec: 1000,
    baseDifficulty: 8,
    maxDifficulty: 20,
    maxSolveDifficulty: 20,
    puzzleSolvesPerPeer: 4,
  },
  api: { socket: "/run/mintun/mintund.sock" },
  stateDir: "/var/lib/mintun",
  log: { level: "info" as LogLevel },
  dns: { domain: "mesh." },
  directory: { maxRecords: 100_000, registerPerSec: 1, lookupPerSec: 200, etcdPrefix: "/mintun/directory/" },
  relay: { bytesPerSec: 1_000_000, burstBytes: 2_000_000, maxPairs: 10_000 },
  nat: { punchTtl: 2 },
  dataPath: { workers: 1 },
} as const;

/** Numeric bounds (inclusive). */
export const LIMITS = {
  mtu: [1280, 9000],
  // the low ends exist for time-compressed tests (test/netns/soak.test.ts); production
  // values are minutes (docs/OPERATIONS.md "Timers")
  lifetimeSec: [10, 86_400],
  minFirstPacket: [64, 1400],
  replayRecords: [16, 10_000_000],
  replayPerHost: [1, 10_000_000],
  rekeySec: [5, 86_400],
  keepaliveSec: [0, 3600],
  idleTimeoutSec: [3, 86_400],
  refreshSec: [1, 3600],
  maxTunnels: [1, 1_000_000],
  maxPerHost: [1, 1_000_000],
  unconfirmedTimeoutSec: [2, 3600],
  perSourcePerSec: [1, 1_000_000],
  perSourceBurst: [1, 1_000_000],
  puzzleAbovePerSec: [0, 10_000_000],
  baseDifficulty: [1, 20],
  maxDifficulty: [1, 20],
  maxSolveDifficulty: [0, 20],
  puzzleSolvesPerPeer: [1, 1000],
  maxRecords: [1, 10_000_000],
  registerPerSec: [1, 1000],
  lookupPerSec: [1, 1_000_000],
  bytesPerSec: [1_000, 10_000_000_000],
  burstBytes: [1_500, 10_000_000_000],
  maxPairs: [1, 10_000_000],
  punchTtl: [0, 255],
  /** data-path threads: multi-queue TUN queues / SO_REUSEPORT sockets (platform/linux/multiqueue.c) */
  workers: [1, 16],
} as const satisfies Record<string, readonly [number, number]>;
