/**
 * State shared between the engine (main thread) and data-path workers (dataPath.workers > 1,
 * docs/ARCHITECTURE.md "Many cores"), with one rule per item:
 *
 *  - Send counters: every thread that seals under an epoch takes counters from ONE shared
 *    cell (an Int32 in a SharedArrayBuffer, Atomics.add), in blocks of COUNTER_BLOCK. A block
 *    is used only within the batch that took it (the rest is skipped), so two threads'
 *    counters stay within a few blocks of each other, far inside the receiver's 2048-packet
 *    replay window, and no counter (nonce) is ever used twice. The cell counts blocks:
 *    2^31 blocks = 2^37 packets, then take() answers -1 and nothing is sent (the rekey,
 *    at most every 120 s, comes long before).
 *  - Receive side of an epoch (recv key + replay window): owned by exactly one thread, the
 *    one its TID steers to (steerIndex, the same rule as the kernel's reuseport program in
 *    platform/linux/multiqueue.c). Nothing about it is shared.
 */

export const COUNTER_BLOCK = 64;
/** a block older than this (in blocks the other threads took since) is not used any more */
export const MAX_LAG_BLOCKS = 4;
/** counter cells per SharedArrayBuffer (one per delegated epoch in use) */
export const COUNTER_CELLS = 16_384;

export class CounterBlock {
  private next = 0;
  private end = 0;
  private blk = 0;
  private seq = -1;
  constructor(
    readonly cells: Int32Array,
    readonly idx: number,
  ) {}

  /**
   * The next counter for a batch numbered seq (-1 when the epoch's counters are used up). A
   * new block is taken for every batch, when the block is used up, and when the other
   * threads moved the cell more than MAX_LAG_BLOCKS past it (a send outside a batch, e.g. a
   * control frame the engine answers, must not use a block so old that the peer's window
   * has moved on).
   */
  take(seq: number): number {
    if (
      seq !== this.seq ||
      this.next === this.end ||
      Atomics.load(this.cells, this.idx) - this.blk > MAX_LAG_BLOCKS
    ) {
      this.seq = seq;
      const b = Atomics.add(this.cells, this.idx, 1);
      if (b < 0 || b >= 0x7fffffff) {
        Atomics.store(this.cells, this.idx, 0x7fffffff);
        this.next = this.end = 0;
        return -1;
      }
      this.blk = b;
      this.next = b * COUNTER_BLOCK;
      this.end = this.next + COUNTER_BLOCK;
    }
    return this.next++;
  }

  /**
   * Use cell idx for an epoch whose next counter is `first`. The cell is only ever raised
   * (compare-and-swap), never lowered: a cell handed to a new epoch may still be used by a
   * thread that has not heard of the switch yet, and its old epoch must not see a counter
   * twice either. The new epoch simply starts at the cell's value.
   */
  static init(cells: Int32Array, idx: number, first: number): CounterBlock {
    const want = Math.ceil(first / COUNTER_BLOCK);
    for (;;) {
      const cur = Atomics.load(cells, idx);
      if (cur >= want || Atomics.compareExchange(cells, idx, cur, want) === cur) break;
    }
    return new CounterBlock(cells, idx);
  }
}

/**
 * Which data-path thread receives the DATA of a TID (0 = the main thread): its last byte mod
 * n. Must equal the kernel-side program (platform/linux/multiqueue.c reuseportSteer).
 */
export function steerIndex(tid: Buffer | Uint8Array, n: number): number {
  return n <= 1 ? 0 : tid[7]! % n;
}
