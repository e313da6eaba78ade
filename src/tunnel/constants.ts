/**
 * Protocol constants, named with their unit. Derived values carry their formula.
 * Timers and sizes are documented in docs/PROTOCOL.md.
 */

export const PROTOCOL_VERSION = 1;
/**
 * The ephemeral certificate's protocol byte of a host that also offers the AES-256-GCM
 * data suite (docs/PROTOCOL.md "AEAD suites"); 1 = ChaCha20-Poly1305 only.
 */
export const PROTOCOL_VERSION_AES_GCM = 2;
/** A tunnel that neither sent nor received for this long frees its AEAD contexts (crypto/aead.ts). */
export const AEAD_IDLE_RELEASE_MS = 10_000;

// sizes of the wire formats live with their codecs (src/wire/constants.ts)
export { AEAD_TAG_BYTES, FRAME_HEADER_BYTES, HEADER_BYTES, TID_BYTES } from "../wire/constants.js";
/** CREATE adds key id (4) + the creator's per-tunnel X25519 key (32). */
export const CREATE_EXTRA_BYTES = 36;
/** REPLY adds the responder's per-tunnel X25519 key (32). */
export const REPLY_EXTRA_BYTES = 32;

/** Largest UDP payload we emit: 1500 (Ethernet) - 40 (IPv6) - 8 (UDP). */
export const MAX_UDP_PAYLOAD_BYTES = 1452;
/**
 * Largest inner packet on a relayed path: a relayed datagram carries a 16-byte RELAY header
 * (wire/nat.ts) and must stay within MAX_UDP_PAYLOAD_BYTES too (IPv6 behind a 1500-byte
 * MTU): 1452 - 16 (RELAY) - 16 (HEADER) - 7 (CONN_DATA frame header + connection id) - 16 (TAG).
 */
export const RELAYED_MAX_INNER_BYTES = 1397;
/** Default overlay MTU: MAX_UDP_PAYLOAD - HEADER - FRAME_HEADER - TAG = 1417, rounded down. */
export const DEFAULT_TUN_MTU = 1400;

/** Counters are kept below 2^53 so that they stay exact JS numbers; rekey long before. */
export const COUNTER_MAX = 2 ** 53 - 1;
/** Rekey after this many packets in one key epoch (far below COUNTER_MAX). */
export const REKEY_AFTER_PACKETS = 2 ** 40;
export const REJECT_AFTER_PACKETS = 2 ** 48;

export const DEFAULT_REKEY_AFTER_TIME_MS = 120_000;
/**
 * Hard limit of a key epoch with the default schedule: both ends refuse it (send and
 * receive) and close the tunnel once it is this old. With another tunnel.rekeySec the
 * limit is rekeyAfter + REJECT_MARGIN_MS (rejectAfterMs()).
 */
export const REJECT_AFTER_TIME_MS = 180_000;
/** How much longer than its rekey time an epoch may live: REJECT_AFTER_TIME - DEFAULT_REKEY_AFTER_TIME = 60 s. */
export const REJECT_MARGIN_MS = REJECT_AFTER_TIME_MS - DEFAULT_REKEY_AFTER_TIME_MS;
/**
 * The responder starts a rekey of its own this long after the initiator should have:
 * normally the initiator's comes first (no crossing REKEYs); a peer that never rekeys
 * still gets its keys replaced, then refused at the hard limit.
 */
export const RESPONDER_REKEY_DELAY_MS = 15_000;

/** The hard limit of a key epoch for a rekey schedule: rekeyAfter + REJECT_MARGIN_MS. */
export function rejectAfterMs(rekeyAfterMs: number): number {
  return rekeyAfterMs + REJECT_MARGIN_MS;
}
/** Old key epoch still accepted on receive after a switch (reordering, in-flight packets). */
export const OLD_EPOCH_GRACE_MS = 10_000;
/** Control frames (rekey, close) are resent until acknowledged, every this long. */
export const CONTROL_RETRANSMIT_MS = 1_000;
/** Give up a tunnel creation that got no reply after this long; the next packet starts a new one. */
export const CREATE_TIMEOUT_MS = 5_000;
/** Creation packets kept for resend after a stale-key answer. */
export const CREATE_QUEUE_PACKETS = 8;
export const DEFAULT_KEEPALIVE_MS = 25_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 180_000;

/** The responder's per-tunnel (REPLY) key is shared by tunnels accepted within this long, then zeroed. */
export const REPLY_KEY_LIFETIME_MS = 1_000;

/** Replay window, in packets (bitmap). */
export const REPLAY_WINDOW_PACKETS = 2048;

/** A record request is padded to this size so that the answer (host cert + ephemeral cert) fits. */
export const RECORD_REQUEST_BYTES = 800;
/** Ask a peer for its record again after this long without an answer. */
export const RECORD_RETRY_MS = 1_000;
/** Default minimum size of a creation packet (padding), so that no answer is larger. */
export const DEFAULT_MIN_FIRST_PACKET_BYTES = 256;

// ---- stall probe and recovery (docs/PROTOCOL.md section 5, "Stall probe and recovery")
/**
 * The tunnel in use that sent data after its last authenticated packet from the peer, and
 * has heard nothing for this long, sends a PROBE frame (the peer answers at once).
 */
export const PROBE_AFTER_MS = 1_000;
/** An unanswered PROBE is resent after this long. */
export const PROBE_RETRY_MS = 500;
/**
 * PROBEs sent before the peer counts as unresponsive (it most likely restarted and lost the
 * tunnel): then it is recovered. Unresponsive after PROBE_AFTER + PROBE_TRIES x PROBE_RETRY
 * = 2 s of silence (plus up to one TICK).
 */
export const PROBE_TRIES = 2;
/**
 * A recovery (fresh record from the peer, then a new tunnel 0-RTT beside the silent one) that
 * did not produce an established tunnel within this long is given up; unanswered probes start
 * the next one.
 */
export const RECOVERY_TIMEOUT_MS = 5_000;

/** Coarse timer tick of the daemon. */
export const TICK_MS = 250;

// ---- directory (src/directory, docs/PROTOCOL.md section 8)
/** A directory answers within this, or the next one is asked. */
export const DIR_TIMEOUT_MS = 1_000;
/** "Not found" is remembered this long (packets to unknown addresses cost no lookup meanwhile). */
export const DIR_NEGATIVE_TTL_MS = 5_000;
/** Registration is refreshed this often (also finds a restarted directory within one timeout more). */
export const DIR_REGISTER_REFRESH_MS = 10_000;
/** A tunnel that sent but received nothing authenticated this long has its peer looked up again. */
export const DIR_STALL_MS = 3_000;
/** At most one re-lookup per stalled peer this often. */
export const DIR_RELOOKUP_MS = 2_000;
/**
 * Each directory is asked this often for a revocation list newer than the host's: a list
 * installed on a directory reaches every host within this (plus a round trip per 1 KiB).
 */
export const DIR_REVOCATION_POLL_MS = 10_000;
/** Cached records with less than this left are looked up again. */
export const DIR_EXPIRY_SLACK_MS = 5_000;
