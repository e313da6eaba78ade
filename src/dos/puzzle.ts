/**
 * Stateless client puzzles (docs/PROTOCOL.md "Puzzles"), after MinimaLT and
 * the IPAE cookies: under load the responder answers a CREATE with a PUZZLE
 * instead of doing any Diffie-Hellman. The puzzle is a cookie
 *
 *   cookie = H(secret_w; "mintun/1 puzzle" | source address record | TID | w | difficulty)[0..16)
 *
 * over a 10-second time window w, keyed with a secret that is replaced every
 * window (the previous one is kept one more window). The client finds an
 * 8-byte solution s with
 *
 *   H("mintun/1 work" | cookie | TID | T_I | s) starting with `difficulty` zero bits
 *
 * and resends its CREATE with (w, difficulty, cookie, s) in the clear. The
 * responder recomputes the cookie (no state kept per puzzle), checks the work
 * (one hash), and remembers used cookies for the window so a solution is
 * single-use — all before any X25519.
 */
import sodium from "sodium-native";
import { randomBytes, zero, equal } from "../crypto/sodium.js";
import { ADDR_BYTES } from "../wire/addr.js";

export const PUZZLE_WINDOW_MS = 10_000;
export const COOKIE_BYTES = 16;
export const SOLUTION_BYTES = 8;
/**
 * The creator's cap: it refuses to work on puzzles harder than this (a counted
 * drop, `puzzleTooHard`). It is the highest difficulty a responder with the
 * default load levels ever demands (src/dos/load.ts: 8 bits at 1000 offered
 * creations/s, one more per doubling, DOS_DEFAULTS.maxDifficulty = 20 at
 * ~4 million/s, far above what one responder can even receive). 2^20 hashes
 * take 0.5–2 s of one core here, spent in the solver's worker thread, never on
 * the event loop.
 */
export const MAX_DIFFICULTY = 20;

const L_PUZZLE = Buffer.from("mintun/1 puzzle");
const L_WORK = Buffer.from("mintun/1 work");

export class PuzzleIssuer {
  private secrets: { w: number; key: Buffer }[] = [];
  private used = new Map<number, Set<string>>();
  private readonly scratch = Buffer.alloc(16);

  constructor(private readonly maxUsedPerWindow = 200_000) {}

  static window(now: number): number {
    return Math.floor(now / PUZZLE_WINDOW_MS) >>> 0;
  }

  private secret(w: number, now: number): Buffer | null {
    const cur = PuzzleIssuer.window(now);
    if (w !== cur && w !== cur - 1) return null;
    let s = this.secrets.find((x) => x.w === w);
    if (!s) {
      if (w !== cur) return null; // never mint a secret for a past window
      s = { w, key: randomBytes(32) };
      this.secrets.push(s);
    }
    // forget secrets and used sets older than the previous window
    for (const old of this.secrets.filter((x) => x.w < cur - 1)) zero(old.key);
    this.secrets = this.secrets.filter((x) => x.w >= cur - 1);
    for (const k of this.used.keys()) if (k < cur - 1) this.used.delete(k);
    return s.key;
  }

  cookie(
    src: Buffer,
    srcOff: number,
    tid: Buffer,
    w: number,
    difficulty: number,
    now: number,
  ): Buffer | null {
    const key = this.secret(w, now);
    if (!key) return null;
    this.scratch.writeUInt32BE(w, 0);
    this.scratch[4] = difficulty;
    const out = Buffer.alloc(32);
    sodium.crypto_generichash_batch(
      out,
      [L_PUZZLE, src.subarray(srcOff, srcOff + ADDR_BYTES), tid, this.scratch.subarray(0, 5)],
      key,
    );
    return out.subarray(0, COOKIE_BYTES);
  }

  /**
   * Check a solved CREATE's puzzle fields. Returns "ok" (and marks the cookie
   * used), or why not.
   */
  check(
    src: Buffer,
    srcOff: number,
    tid: Buffer,
    tI: Buffer,
    w: number,
    difficulty: number,
    cookie: Buffer,
    solution: Buffer,
    now: number,
  ): "ok" | "stale" | "bad-cookie" | "bad-work" | "reused" {
    const expect = this.cookie(src, srcOff, tid, w, difficulty, now);
    if (!expect) return "stale";
    if (!equal(expect, cookie)) return "bad-cookie";
    if (!workOk(cookie, tid, tI, solution, difficulty)) return "bad-work";
    let set = this.used.get(w);
    if (!set) this.used.set(w, (set = new Set()));
    const k = cookie.latin1Slice(0, COOKIE_BYTES);
    if (set.has(k) || set.size >= this.maxUsedPerWindow) return "reused";
    set.add(k);
    return "ok";
  }

  close(): void {
    for (const s of this.secrets) zero(s.key);
    this.secrets = [];
    this.used.clear();
  }
}

const workOut = Buffer.alloc(32);

function leadingZeroBits(b: Buffer): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const x = b[i]!;
    if (x === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(x) - 24;
  }
  return n;
}

export function workOk(
  cookie: Buffer,
  tid: Buffer,
  tI: Buffer,
  solution: Buffer,
  difficulty: number,
): boolean {
  sodium.crypto_generichash_batch(workOut, [L_WORK, cookie, tid, tI, solution]);
  return leadingZeroBits(workOut) >= difficulty;
}

/**
 * Expected work of one puzzle is 2^difficulty hashes; a solver gives up after
 * SOLVE_TRIES_FACTOR times that (the chance of no solution by then is e^-8 ≈ 0.03 %).
 */
export const SOLVE_TRIES_FACTOR = 8;

/** The work input: label | cookie | TID | T_I | 8-byte counter (hashed in place, counter last). */
export function workInput(cookie: Buffer, tid: Buffer, tI: Buffer): Buffer {
  return Buffer.concat([L_WORK, cookie, tid, tI, Buffer.alloc(SOLUTION_BYTES)]);
}

/**
 * The search loop, self-contained (no closure: src/dos/solver.ts runs its
 * source in a worker thread). Tries counters 0..maxTries-1 in the last 8
 * bytes of `input`; returns the solving 8 bytes or null.
 */
export function searchWork(
  hash: (out: Uint8Array, input: Uint8Array) => void,
  input: Uint8Array,
  difficulty: number,
  maxTries: number,
): Uint8Array | null {
  const ctrOff = input.length - 8;
  const view = new DataView(input.buffer, input.byteOffset, input.length);
  const out = new Uint8Array(32);
  for (let i = 0; i < maxTries; i++) {
    view.setUint32(ctrOff + 4, i >>> 0);
    hash(out, input);
    let n = 0;
    for (let j = 0; j < out.length; j++) {
      const x = out[j]!;
      if (x === 0) {
        n += 8;
        continue;
      }
      n += Math.clz32(x) - 24;
      break;
    }
    if (n >= difficulty) return input.slice(ctrOff);
  }
  return null;
}

/**
 * Find a solution on the calling thread (tests, tools, src/dos/solver.ts's
 * InlineSolver). Returns null above MAX_DIFFICULTY or after `maxTries`. The
 * daemon never calls this on its event loop: it uses the WorkerSolver.
 */
export function solve(
  cookie: Buffer,
  tid: Buffer,
  tI: Buffer,
  difficulty: number,
  maxTries = SOLVE_TRIES_FACTOR * 2 ** Math.min(difficulty, MAX_DIFFICULTY),
): Buffer | null {
  if (difficulty > MAX_DIFFICULTY) return null;
  const r = searchWork(
    (o, i) => sodium.crypto_generichash(o as Buffer, i as Buffer),
    workInput(cookie, tid, tI),
    difficulty,
    maxTries,
  );
  return r ? Buffer.from(r.buffer, r.byteOffset, r.length) : null;
}
