// The header blocks a relayed HTTP/2 stream sends on: the request's for the next hop, the answer's for the caller.

import type * as http2 from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http2';
import { putTraceContext } from '../telemetry/propagation.ts';

// node:http2's constants, spelled out so that this module does not load node:http2 (see ./node-http.ts).
const HTTP2_HEADER_METHOD = ':method';
const HTTP2_HEADER_PATH = ':path';
const HTTP2_HEADER_AUTHORITY = ':authority';
const HTTP2_HEADER_SCHEME = ':scheme';
const HTTP2_HEADER_STATUS = ':status';
/** connection-specific headers, which HTTP/2 forbids (RFC 9113 §8.2.2), and host (the next hop gets :authority) */
const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

/** Request headers for the next hop: pseudo-headers rebuilt, x-weft-* removed, the observation's trace context put on (../telemetry/propagation.ts). */
// The header copies below walk the object with for...in rather than Object.entries: no array of pairs per call
// (a gRPC call allocates ~28-30 KB in a sidecar, most of it node:http2's; the copies were ~5% of it once).
export function h2RequestHeaders(incoming: IncomingHttpHeaders, propagate?: Readonly<Record<string, string>>): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {
    [HTTP2_HEADER_METHOD]: incoming[HTTP2_HEADER_METHOD],
    [HTTP2_HEADER_PATH]: incoming[HTTP2_HEADER_PATH],
    [HTTP2_HEADER_AUTHORITY]: incoming[HTTP2_HEADER_AUTHORITY],
    [HTTP2_HEADER_SCHEME]: 'http',
  };
  for (const name in incoming) {
    const value = incoming[name];
    if (name.startsWith(':') || name.startsWith('x-weft-') || DROP.has(name) || value === undefined) continue;
    out[name] = value;
  }
  if (propagate) putTraceContext(out, propagate);
  return out;
}

/**
 * An answer's head for the caller: its status, without connection-specific headers; `fromApp` (the local app's
 * answer) without x-weft-* either, so that an app cannot speak for the mesh (a caller's sidecar acts on x-weft-reason).
 */
export function h2ResponseHeaders(incoming: IncomingHttpHeaders, fromApp = false): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { [HTTP2_HEADER_STATUS]: incoming[HTTP2_HEADER_STATUS] };
  for (const name in incoming) {
    const value = incoming[name];
    if (name.startsWith(':') || DROP.has(name) || value === undefined || (fromApp && name.startsWith('x-weft-'))) continue;
    out[name] = value;
  }
  return out;
}

/** An answer's trailers for the caller: without pseudo-headers (node:http2 refuses them in trailers); `fromApp` as above. */
export function h2Trailers(incoming: IncomingHttpHeaders, fromApp = false): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const name in incoming) {
    const value = incoming[name];
    if (!name.startsWith(':') && value !== undefined && value !== null && !(fromApp && name.startsWith('x-weft-'))) out[name] = value as string | string[];
  }
  return out;
}
