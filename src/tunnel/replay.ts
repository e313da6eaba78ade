/**
 * Sliding replay window (RFC 6479 style bitmap), one per key epoch and direction.
 *
 * `check(n)` says whether counter n may be accepted (not too old, not seen);
 * `accept(n)` records it. Callers check before decrypting (cheap) and accept
 * only after the AEAD verified, so a forged packet cannot move the window.
 */
import { REPLAY_WINDOW_PACKETS } from "./constants.js";
import type { AeadKey } from "../crypto/aead.js";
import { DATA_AD_BYTES, readCounter } from "../wire/packet.js";

const WORD_BITS = 32;

export class ReplayWindow {
  private readonly words: Uint32Array;
  private readonly nWords: number;
  /** Highest accepted counter, -1 before the first. */
  top = -1;

  /** Bytes of bitmap storage a window of this size needs (for `storage`). */
  static bytesFor(windowPackets = REPLAY_WINDOW_PACKETS): number {
    return (Math.ceil(windowPackets / WORD_BITS) + 1) * 4;
  }

  /**
   * @param storage optional zeroed bitmap memory of bytesFor(windowPackets) bytes, so a caller
   *   can place the window inside an allocation it already makes (saves a backing store per epoch)
   */
  constructor(windowPackets = REPLAY_WINDOW_PACKETS, storage?: Uint32Array) {
    // one extra word so that a whole word can be cleared as the window slides
    this.nWords = Math.ceil(windowPackets / WORD_BITS) + 1;
    this.words = storage && storage.length === this.nWords ? storage : new Uint32Array(this.nWords);
  }

  /** The window's state (top and bitmap), to hand it to the thread that owns the epoch next. */
  exportState(): { top: number; words: Uint32Array } {
    return { top: this.top, words: this.words.slice() };
  }

  /** Take over a state from exportState (same window size; otherwise nothing changes). */
  importState(st: { top: number; words: Uint32Array }): boolean {
    if (st.words.length !== this.nWords) return false;
    this.words.set(st.words);
    this.top = st.top;
    return true;
  }

  private get span(): number {
    return (this.nWords - 1) * WORD_BITS;
  }

  check(n: number): boolean {
    if (n < 0) return false; // readCounter's "not representable"
    if (n > this.top) return true;
    if (n + this.span <= this.top) return false;
    const idx = Math.floor(n / WORD_BITS) % this.nWords;
    return (this.words[idx]! & (1 << (n % WORD_BITS))) === 0;
  }

  /** Record n. Returns false when n was a replay (then nothing changes). */
  accept(n: number): boolean {
    if (!this.check(n)) return false;
    if (n > this.top) {
      const cur = Math.floor(this.top / WORD_BITS);
      const next = Math.floor(n / WORD_BITS);
      const diff = Math.min(next - cur, this.nWords);
      for (let i = 1; i <= diff; i++) this.words[(cur + i) % this.nWords] = 0;
      if (this.top < 0) this.words[next % this.nWords] = 0;
      this.top = n;
    }
    const idx = Math.floor(n / WORD_BITS) % this.nWords;
    this.words[idx] = this.words[idx]! | (1 << (n % WORD_BITS));
    return true;
  }
}

/**
 * The DATA receive step both threads run (outside.ts on the main thread, dataplane.ts in a
 * worker): the replay window is checked before the AEAD and updated only after it, so
 * neither a replayed nor a forged datagram moves the window. Opens buf[off + DATA_AD_BYTES ..)
 * in place. False: counted in `drops.replay` or `drops.auth`, nothing else changed.
 */
export function openData(
  replay: ReplayWindow,
  key: AeadKey,
  buf: Buffer,
  off: number,
  len: number,
  drops: { replay: number; auth: number },
): boolean {
  const n = readCounter(buf, off);
  if (!replay.check(n)) {
    drops.replay++;
    return false;
  }
  if (!key.open(buf, off, off + DATA_AD_BYTES, len - DATA_AD_BYTES)) {
    drops.auth++;
    return false;
  }
  replay.accept(n);
  return true;
}
