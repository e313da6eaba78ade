/**
 * Counters: packets dropped by reason (network input is never an exception),
 * and protocol events. Plain objects with fixed keys so that increments on
 * the hot path are monomorphic property writes.
 */
export function newDrops() {
  return {
    /** UDP payload shorter than the header, or unknown packet type */
    malformed: 0,
    /** DATA/REPLY for a TID we do not hold */
    unknownTid: 0,
    /** counter already seen or too old */
    replay: 0,
    /** AEAD failed */
    auth: 0,
    /** inner packets larger than a relayed path carries (answered with ICMP too-big locally) */
    relayTooBig: 0,
    /** frames inside a verified packet did not parse */
    badFrames: 0,
    /** inner source address not allowed for the sending peer */
    innerSrc: 0,
    /** inner destination is not us */
    innerDst: 0,
    /** packet from the TUN that is not IPv4/IPv6 */
    tunMalformed: 0,
    /** packet from the TUN with a source that is not ours */
    tunSrc: 0,
    /** packet from the TUN to an address no peer owns */
    noRoute: 0,
    /** multicast/broadcast from the TUN (IPv6 router solicitations, MLD, mDNS): not carried */
    tunMulticast: 0,
    /** packets queued while waiting for a record or tunnel overflowed */
    queueFull: 0,
    /** CREATE below the minimum size */
    createShort: 0,
    /** CREATE under an unknown or expired ephemeral key (answered with STALE) */
    staleKey: 0,
    /** CREATE whose creator key was already seen under this ephemeral key */
    createReplay: 0,
    /** CREATE whose HELLO (certificate or authenticator) failed */
    createHello: 0,
    /** CREATE refused because a table is full */
    tableFull: 0,
    /** record responses / stale answers that did not verify or match */
    badRecord: 0,
    /** answers not sent because they would be larger than the request */
    noAmplify: 0,
    /** sealed packet for a tunnel that is closing or has no usable key */
    noKey: 0,
    /** CREATE / RECORD_REQUEST over its source's rate (token bucket) */
    rateLimited: 0,
    /** CREATE answered with a puzzle instead of work (responder under load) */
    puzzled: 0,
    /** inner packet without a connection, or for a connection id this host does not hold */
    noConn: 0,
    /** inner packet whose flow is not its connection's (smuggled onto another connection) */
    connFlow: 0,
    /** packet of a connection that policy (or the peer) refused */
    connDenied: 0,
    /** CONN_OPEN with a user certificate that did not verify (other CA, expired, malformed) */
    connBadCert: 0,
    /** CONN_OPEN whose user authenticator did not verify */
    connBadAuth: 0,
    /** connection refused because the table of its peer is full */
    connTableFull: 0,
    /** local flow refused before sending (its OS user may not use the overlay, or its owner is not proven) */
    connLocalDeny: 0,
    /** later IP fragment whose first fragment this host did not send on a connection (refused) */
    fragOrphan: 0,
    /** connection reset because a policy reload no longer allows it */
    connPolicyReset: 0,
    /** open connection whose user certificate expired (refused, or identified afresh if opened here) */
    connCertExpired: 0,
    /** CREATE (HELLO), record or CONN_OPEN whose host or user certificate is revoked (trust.revocationList) */
    revoked: 0,
    /** open connection closed because its user (key or certificate) was revoked */
    connRevoked: 0,
    /** packet under a key epoch past its hard limit (rekey time + 60 s, or 2^48 packets): refused */
    keyExpired: 0,
    /**
     * CREATE_SOLVED with a stale, forged, insufficient or reused solution; or a PUZZLE for no
     * creation of ours, another key id, a second one per attempt, or not from the CREATE's address
     */
    puzzleBad: 0,
    /** PUZZLE harder than this creator works on (dos.maxSolveDifficulty, at most 20) */
    puzzleTooHard: 0,
    /** PUZZLE not worked on: this peer's puzzle budget is spent, or the solver queue is full */
    puzzleBusy: 0,
    /** puzzle the solver gave up on (8 × 2^difficulty tries) or lost with its worker */
    puzzleUnsolved: 0,
    /** STALE not from the address its CREATE went to */
    staleSource: 0,
    /** creation refused: the creator's host holds its share of the tunnel table, none unconfirmed */
    hostShareFull: 0,
    /** creation refused: the creator's host used its share of the ephemeral key's replay record */
    replayShareFull: 0,
    /** inner packets of a creation retry (RETRY frame) that were already delivered: not again */
    retryDuplicate: 0,
    /**
     * DATA under an epoch whose receive side a data-path worker owns (dataPath.workers > 1),
     * reaching this thread anyway (handed back while the epoch moved): dropped, so that no
     * counter is accepted by two replay windows
     */
    otherThread: 0,
    /** send counter space of a shared epoch used up (2^37 packets): not sent, the rekey is due */
    counterExhausted: 0,
  };
}
export type Drops = ReturnType<typeof newDrops>;
export type DropReason = keyof Drops;

export function newEvents() {
  return {
    tunnelsCreated: 0,
    tunnelsAccepted: 0,
    tunnelsClosed: 0,
    /** of those, closed because nothing was received for tunnel.idleTimeoutSec */
    tunnelsIdleClosed: 0,
    createSent: 0,
    zeroRttPackets: 0,
    staleAnswersSent: 0,
    staleRetries: 0,
    recordRequestsSent: 0,
    recordResponsesSent: 0,
    recordsLearned: 0,
    rekeys: 0,
    migrations: 0,
    roams: 0,
    keepalivesSent: 0,
    /** stall probe: PROBEs sent on a tunnel that sent data and heard nothing for PROBE_AFTER_MS */
    stallProbes: 0,
    /** stall probe: PROBEs of the peer answered (with a KEEPALIVE) */
    probesAnswered: 0,
    /** stall probe: recoveries started (PROBE_TRIES unanswered: record fetched, new tunnel 0-RTT) */
    stallRecoveries: 0,
    /** older established tunnels of a peer closed because a newer one with it was established */
    tunnelsSuperseded: 0,
    /** tunnels closed because the peer's host certificate expired (or its CA did) */
    tunnelsCertExpired: 0,
    /** tunnels closed (or refused at creation) because the peer's host is revoked */
    tunnelsRevoked: 0,
    /** tunnels closed because their key epoch reached the hard limit (no rekey in time) */
    tunnelsKeyExpired: 0,
    /** a peer's renewed host certificate replaced the cached one (routes, groups re-judged) */
    peerCertsRenewed: 0,
    /** rekeys this host started as the tunnel's responder (its own limit reached first) */
    responderRekeys: 0,
    /** a packet under the peer's move epoch of the epoch just rekeyed away: the move wins */
    rekeyMoveCrossed: 0,
    /** revocation lists installed (file at start or reload, or a newer one from the directory) */
    revocationLists: 0,
    ephemeralRotations: 0,
    puzzlesSent: 0,
    puzzlesSolved: 0,
    puzzlesAccepted: 0,
    /** PUZZLEs handed to the solver (off the event loop in the daemon) */
    puzzlesQueued: 0,
    /** accepted tunnels never confirmed by their creator: closed after unconfirmedTimeout / replaced by a newer one of the same host */
    unconfirmedExpired: 0,
    unconfirmedReplaced: 0,
    /** probes sent to an endpoint a directory returned for a silent tunnel (the tunnel moves only on an authenticated answer) */
    endpointProbes: 0,
    /** NAT traversal (issue 17): PUNCH datagrams sent (rendezvous) and received (nothing else happens) */
    punchesSent: 0,
    /** of those, sent with a low TTL (nat.punchTtl: they open our NAT, never reach the peer's) */
    punchesLowTtl: 0,
    punchesReceived: 0,
    /** creations resent towards another path (a punched NAT, or the relay) */
    creationRetries: 0,
    /** connections this host opened / accepted / refused by policy or authentication */
    connsOpened: 0,
    connsAccepted: 0,
    connsDenied: 0,
    /** CONN_DENY received: our flow refused by the peer (reject written to the TUN) */
    connsRefused: 0,
    connResets: 0,
    /** connections opened again because a new socket took their tuple (TCP SYN, UDP recheck) */
    connsReidentified: 0,
    /** open connections re-judged by a policy reload (still allowed or reset) */
    connsRejudged: 0,
    /** user authenticators that needed an X25519 (first connection of a user) vs a cached key */
    userAuthFull: 0,
    userAuthCached: 0,
  };
}
export type Events = ReturnType<typeof newEvents>;
