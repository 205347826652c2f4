// gRPC's view of the mesh: the status a gRPC client reads for an HTTP status, grpc-message's encoding, and the
// caller's deadline (grpc-timeout).

export const GRPC_DEADLINE_EXCEEDED = 4;
export const GRPC_UNAVAILABLE = 14;

/**
 * grpc-message is percent-encoded (gRPC over HTTP/2): only '%' and bytes outside printable ASCII. Clients
 * decode exactly that; encodeURIComponent's extra escapes (':', '/', '?', …) would reach the caller as "%3A".
 */
export function grpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The gRPC status a client derives from an HTTP status (grpc/doc/http-grpc-status-mapping.md). */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400: return 13; // INTERNAL
    case 401: return 16; // UNAUTHENTICATED
    case 403: return 7; // PERMISSION_DENIED
    case 404: return 12; // UNIMPLEMENTED
    case 429: case 502: case 503: case 504: return 14; // UNAVAILABLE
    default: return 2; // UNKNOWN
  }
}

/**
 * The gRPC status of a mesh answer: gRPC's HTTP-to-gRPC mapping (doc/http-grpc-status-mapping.md), as Envoy's
 * local replies use it (400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, the rest
 * UNAVAILABLE), except a timeout (504), which is DEADLINE_EXCEEDED, as Envoy's router sends for one.
 */
export function meshGrpcStatus(status: number): number {
  switch (status) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 504:
      return GRPC_DEADLINE_EXCEEDED;
    default:
      return 14;
  }
}

const GRPC_TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * A grpc-timeout header (gRPC over HTTP/2: at most 8 digits and a unit) in whole ms, at least 1 and at most what a
 * timer can count (99999999H is ~11,000 years; node fires a longer timer after 1 ms); null if absent or malformed.
 */
export function grpcTimeoutMs(value: string | string[] | undefined): number | null {
  const m = typeof value === 'string' ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  return m ? Math.min(2 ** 31 - 1, Math.max(1, Math.ceil(Number(m[1]) * GRPC_TIMEOUT_UNIT_MS[m[2]!]!))) : null;
}
