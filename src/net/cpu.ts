/**
 * What the CPU offers for the data path's AEAD (docs/PROTOCOL.md "AEAD suites"): AES-256-GCM
 * is preferred only where AES and carry-less multiply run in hardware (x86 aes + pclmulqdq,
 * arm64 aes + pmull); elsewhere OpenSSL's constant-time software AES is slower than
 * ChaCha20-Poly1305, which stays the choice.
 */
import { readFileSync } from "node:fs";
import { AeadSuite } from "../crypto/aead.js";

/** True when /proc/cpuinfo lists hardware AES and carry-less multiply. */
export function cpuHasAes(cpuinfo?: string): boolean {
  let text = cpuinfo;
  if (text === undefined)
    try {
      text = readFileSync("/proc/cpuinfo", "latin1");
    } catch {
      return false;
    }
  const m = /^(?:flags|Features)\s*:(.*)$/m.exec(text);
  if (!m) return false;
  const f = new Set(m[1]!.trim().split(/\s+/));
  return f.has("aes") && (f.has("pclmulqdq") || f.has("pmull"));
}

/** The suite this host prefers: AES-256-GCM with hardware AES, else ChaCha20-Poly1305. */
export function preferredAeadSuite(cpuinfo?: string): AeadSuite {
  return cpuHasAes(cpuinfo) ? AeadSuite.Aes256Gcm : AeadSuite.ChaCha20Poly1305;
}
