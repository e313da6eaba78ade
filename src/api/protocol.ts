/**
 * Local control API: newline-delimited JSON over a unix stream socket.
 *
 *   request:  {"id": 1, "method": "status", "params": {...}}\n
 *   response: {"id": 1, "result": ...}\n   or   {"id": 1, "error": {"code": "...", "message": "..."}}\n
 *
 * Methods (all read-only): "status" (daemon/status.ts Status), "whois" ({address}) ->
 * WhoisAnswer | null, "resolve" ({name}) -> names/names.ts NameAnswer | null (error
 * ENODIRECTORY when only an unreachable directory could answer).
 * Requests larger than MAX_REQUEST_BYTES close the connection.
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
