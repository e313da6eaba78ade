/**
 * Key schedule (docs/PROTOCOL.md "Keys"). Pure functions over byte strings.
 * H(k; x) is keyed BLAKE2b-256; every derivation has its own label.
 *
 *   creator I: host key S_I (X25519 form s_I), per-tunnel pair (t_I, T_I)
 *   responder R: host key S_R, ephemeral pair (e_R, E_R) with id keyId
 *
 *   h0  = H("mintun/1 create"; TID | keyId | T_I | E_R | S_R)
 *   es  = X25519(t_I, E_R)                     ck1 = H(h0; es)
 *   k0  = H(ck1; "i2r 0")                      -- seals CREATE payloads
 *   ss  = X25519(s_I, E_R)                     auth = H(H(ck1; ss); "hello" | T_I)
 *   ee  = X25519(t_I, T_R)   (T_R sent in REPLY)
 *   ck2 = H(ck1; ss | ee)                      -- the tunnel secret
 *   kI2R = H(ck2; "i2r"), kR2I = H(ck2; "r2i") -- epoch 0 of the tunnel
 *
 * Rekey (fresh X25519 on both sides, n = epoch number):
 *   ck' = H(ck; "rekey" | X25519(a', B'))      TID' = H(ck'; "tid")[0..8)
 *   keys from ck' as above.
 * Move (address change, precomputed, no DH):
 *   ck' = H(ck; "move")                         TID' = H(ck'; "tid")[0..8)
 *
 * The 0-RTT payload (k0) depends on E_R, whose secret is erased when the
 * ephemeral certificate expires; everything from the first REPLY on depends on
 * ee, which exists only in the two tunnel endpoints' memory.
 */
import { hash, zero } from "../crypto/sodium.js";
import { AeadSuite } from "../crypto/aead.js";

const L_CREATE = Buffer.from("mintun/1 create");
const L_K0 = Buffer.from("i2r 0");
const L_HELLO = Buffer.from("hello");
const L_I2R = Buffer.from("i2r");
const L_R2I = Buffer.from("r2i");
const L_REKEY = Buffer.from("rekey");
const L_TID = Buffer.from("tid");
const L_MOVE = Buffer.from("move");
const L_SESSION = Buffer.from("session");
const L_RECORD = Buffer.from("mintun/1 record");
const L_AES_GCM = Buffer.from("aes-256-gcm");

/**
 * Key that seals a RECORD_RESPONSE (docs/PROTOCOL.md "Records from the peer
 * itself"): H(X25519(r, Q); "mintun/1 record" | TID | Q | R), with Q the
 * requester's and R the responder's one-time keys.
 */
export function recordKey(shared: Buffer, tid: Buffer, q: Buffer, r: Buffer): Buffer {
  return hash([L_RECORD, tid, q, r], shared);
}

const L_STALE = Buffer.from("mintun/1 stale");

/**
 * Key that seals a STALE (docs/PROTOCOL.md "Stale key"): H(X25519(r, T_I);
 * "mintun/1 stale" | TID | T_I | R), T_I being the CREATE's per-tunnel key.
 */
export function staleKey(shared: Buffer, tid: Buffer, tI: Buffer, r: Buffer): Buffer {
  return hash([L_STALE, tid, tI, r], shared);
}

export function createTranscript(
  tid: Buffer,
  keyId: number,
  tI: Buffer,
  eR: Buffer,
  responderHostPk: Buffer,
): Buffer {
  const kid = Buffer.alloc(4);
  kid.writeUInt32BE(keyId >>> 0);
  return hash([L_CREATE, tid, kid, tI, eR, responderHostPk]);
}

/** ck1 and the key that seals CREATE payloads. */
export function deriveCreate(h0: Buffer, es: Buffer): { ck1: Buffer; k0: Buffer } {
  const ck1 = hash([es], h0);
  const k0 = hash([L_K0], ck1);
  return { ck1, k0 };
}

export function helloAuth(ck1: Buffer, ss: Buffer, tI: Buffer): Buffer {
  const k = hash([ss], ck1);
  const a = hash([L_HELLO, tI], k);
  zero(k);
  return a;
}

export interface EpochKeys {
  ck: Buffer;
  i2r: Buffer;
  r2i: Buffer;
}

/**
 * The tunnel secret and epoch-0 keys. The AEAD suite is bound into it (docs/PROTOCOL.md
 * "AEAD suites"): ck2 = H(ck1; ss | ee) for ChaCha20-Poly1305 (as before suites existed),
 * H(ck1; ss | ee | "aes-256-gcm") for AES-256-GCM, so the two ends agree on the suite or on
 * no key at all, and no key is ever used with two ciphers. Rekeys and moves derive from it.
 */
export function deriveEstablished(
  ck1: Buffer,
  ss: Buffer,
  ee: Buffer,
  suite: AeadSuite = AeadSuite.ChaCha20Poly1305,
): EpochKeys {
  const ck = hash(suite === AeadSuite.ChaCha20Poly1305 ? [ss, ee] : [ss, ee, L_AES_GCM], ck1);
  return { ck, i2r: hash([L_I2R], ck), r2i: hash([L_R2I], ck) };
}

export function deriveRekey(ck: Buffer, dhOut: Buffer): EpochKeys & { tid: Buffer } {
  const ck2 = hash([L_REKEY, dhOut], ck);
  return {
    ck: ck2,
    i2r: hash([L_I2R], ck2),
    r2i: hash([L_R2I], ck2),
    tid: hash([L_TID], ck2, 16).subarray(0, 8),
  };
}

/**
 * The next key epoch for a move (no new Diffie-Hellman): both ends derive it
 * ahead of time from the current chain key, so a host that changed address
 * switches to it and sends at once (0 round trips).
 *
 *   ck' = H(ck; "move")      TID' = H(ck'; "tid")[0..8)      keys from ck' as above
 */
export function deriveMove(ck: Buffer): EpochKeys & { tid: Buffer } {
  const m = deriveMoveTid(ck);
  return { ...moveKeys(m.ck), ck: m.ck, tid: m.tid };
}

/** The move chain key and TID only (what an idle tunnel keeps). */
export function deriveMoveTid(ck: Buffer): { ck: Buffer; tid: Buffer } {
  const ck2 = hash([L_MOVE], ck);
  return { ck: ck2, tid: hash([L_TID], ck2, 16).subarray(0, 8) };
}

/** The move epoch's keys from its chain key. */
export function moveKeys(ckMove: Buffer): { i2r: Buffer; r2i: Buffer } {
  return { i2r: hash([L_I2R], ckMove), r2i: hash([L_R2I], ckMove) };
}

/** The tunnel's session id: H(ck0; "session")[0..8) as hex, equal on both ends (whois). */
export function sessionIdOf(ck: Buffer): string {
  return hash([L_SESSION], ck, 16).toString("hex", 0, 8);
}
