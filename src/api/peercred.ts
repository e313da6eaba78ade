/**
 * Who is on the other end of a local API connection: SO_PEERCRED through the addon's
 * peerCred (platform/linux/peercred.c). The kernel records the credentials when the
 * client connects, so they cannot be claimed in a request.
 *
 * The API server (server.ts) uses them for one rule: any local user may read (status,
 * whois); methods that change state need root (uid 0) or the daemon's own uid.
 */
import type * as net from "node:net";
import { PlatformError } from "../errors.js";
import { native } from "../net/native.js";

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** The addon function; kept out of NativeAddon (net/native.ts) as only the API uses it. */
type PeerCredFn = (fd: number) => PeerCred;

/** Credentials of the process connected to fd. Throws PlatformError (code = errno name). */
export function peerCredOfFd(fd: number): PeerCred {
  const f = (native() as unknown as { peerCred?: PeerCredFn }).peerCred;
  if (typeof f !== "function")
    throw new PlatformError("ENATIVE", "the native addon has no peerCred (run `npm run build:native`)");
  try {
    return f(fd);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw new PlatformError(typeof code === "string" ? code : "EPEERCRED", (e as Error).message, {
      cause: e,
    });
  }
}

/**
 * Credentials of the peer of an accepted unix socket, or null when they cannot be
 * known (no fd on the handle, addon missing, getsockopt failed). Callers treat null as
 * "not privileged". Node exposes no public API for SO_PEERCRED; the fd of a unix stream
 * socket's handle (`_handle.fd`, a libuv Pipe) is stable for the connection's life.
 */
export function socketPeerCred(s: net.Socket): PeerCred | null {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return null;
  try {
    return peerCredOfFd(fd);
  } catch {
    return null;
  }
}
