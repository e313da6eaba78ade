// Shared set-up of the in-process benchmarks: a throwaway CA, host identities and engine
// options with long timers (nothing expires during a run). Uses the built dist/.
import { edSkToX, signKeyPair } from "../../dist/crypto/sodium.js";
import { signCert } from "../../dist/wire/cert.js";

export const NOW = Date.now();
const nowSec = Math.floor(NOW / 1000);
const caKp = signKeyPair();
export const CA = signCert(
  {
    kind: "ca",
    name: "bench",
    publicKey: caKp.publicKey,
    groups: [],
    notBefore: nowSec - 60,
    notAfter: nowSec + 86400,
    issuer: caKp.publicKey,
  },
  caKp.secretKey,
);

/** A host identity signed by the bench CA: { cert, sk }. */
export function host(name, ip4) {
  const kp = signKeyPair();
  const cert = signCert(
    {
      kind: "host",
      name,
      publicKey: kp.publicKey,
      groups: [],
      notBefore: nowSec - 60,
      notAfter: nowSec + 86400,
      issuer: caKp.publicKey,
      ip4,
      ip6: null,
      subnets: [],
    },
    caKp.secretKey,
  );
  return { cert, sk: kp.secretKey };
}

/** A user identity signed by the bench CA, in the engine's LocalUser form: { uid, osUser, cert, x }. */
export function user(name, uid) {
  const kp = signKeyPair();
  const cert = signCert(
    {
      kind: "user",
      name,
      publicKey: kp.publicKey,
      groups: ["bench"],
      notBefore: nowSec - 60,
      notAfter: nowSec + 86400,
      issuer: caKp.publicKey,
    },
    caKp.secretKey,
  );
  return { uid, osUser: name, cert, x: edSkToX(kp.secretKey) };
}

/** EngineOptions for a bench host. */
export function engineOpts(h, extra = {}) {
  return {
    ca: CA,
    hostCert: h.cert,
    hostSecretKey: h.sk,
    ephemeralLifetimeMs: 3_600_000,
    minFirstPacket: 256,
    rekeyAfterMs: 3_600_000,
    keepaliveMs: 0,
    idleTimeoutMs: 3_600_000,
    maxTunnels: 1_000_000,
    maxReplayRecords: 10_000_000,
    // the per-host shares (a DoS bound, issue 7) would cap the one-host runs at 64 tunnels
    maxPerHost: 1_000_000,
    maxReplayPerHost: 10_000_000,
    endpoints: () => [],
    // the benchmarks measure the protocol's own cost: no per-source limit, no puzzles
    dos: { perSourcePerSec: 1e9, perSourceBurst: 1e9, puzzleAbovePerSec: 1e9 },
    ...extra,
  };
}
