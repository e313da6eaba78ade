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
/** The creator refuses to work on puzzles harder than this (~1M hashes, well under a second). */
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

/** Find a solution (the creator's side). Returns null above MAX_DIFFICULTY or after `maxTries`. */
export function solve(
  cookie: Buffer,
  tid: Buffer,
  tI: Buffer,
  difficulty: number,
  maxTries = 1 << 24,
): Buffer | null {
  if (difficulty > MAX_DIFFICULTY) return null;
  // one input buffer, the 8-byte counter at the end, hashed in place
  const input = Buffer.concat([L_WORK, cookie, tid, tI, Buffer.alloc(SOLUTION_BYTES)]);
  const ctrOff = input.length - SOLUTION_BYTES;
  const out = Buffer.alloc(32);
  for (let i = 0; i < maxTries; i++) {
    input.writeUInt32BE(i >>> 0, ctrOff + 4);
    sodium.crypto_generichash(out, input);
    if (leadingZeroBits(out) >= difficulty) return Buffer.from(input.subarray(ctrOff));
  }
  return null;
}
