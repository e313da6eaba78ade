/**
 * Local control API: newline-delimited JSON over a unix stream socket.
 *
 *   request:  {"id": 1, "method": "status", "params": {...}}\n
 *   response: {"id": 1, "result": ...}\n   or   {"id": 1, "error": {"code": "...", "message": "..."}}\n
 *
 * Read-only methods (any local user; the socket is mode 0666): "status" (daemon/status.ts
 * Status), "whois" ({address, port?}) -> WhoisAnswer | null (with `conns`, the connections
 * whose remote end is that address and port: all for root, only those of the caller's own
 * sockets for anybody else, `connsOf` says which), "resolve" ({name}) -> names/names.ts
 * NameAnswer | null (error ENODIRECTORY when only an unreachable directory could answer;
 * ERATELIMIT over 2/s per unprivileged uid). Unprivileged callers have per-uid connection
 * (ELIMIT) and request (ERATELIMIT) limits: server.ts.
 * Root-only methods (uid 0 or the daemon's own uid, by SO_PEERCRED; anybody else gets
 * error EPERM): "reload" -> ReloadStatus. See server.ts. Requests larger than
 * MAX_REQUEST_BYTES close the connection.
 */
export const MAX_REQUEST_BYTES = 64 * 1024;

export interface ApiRequest {
  id: number;
  method: string;
  params?: Record<string, unknown>;
}

export interface ApiResponse {
  id: number;
  result?: unknown;
  error?: { code: string; message: string };
}
