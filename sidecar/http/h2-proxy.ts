// Forwarding one HTTP/2 stream (a gRPC call, unary or streaming) to another HTTP/2 session, trailers included.

import type * as http2 from 'node:http2';
import type { ClientHttp2Session, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { REASON_HEADER } from './headers.ts';

// node:http2's constants, spelled out so that this module does not load node:http2 (see ./node-http.ts).
const HTTP2_HEADER_METHOD = ':method';
const HTTP2_HEADER_PATH = ':path';
const HTTP2_HEADER_AUTHORITY = ':authority';
const HTTP2_HEADER_SCHEME = ':scheme';
const HTTP2_HEADER_STATUS = ':status';
const NGHTTP2_NO_ERROR = 0;
const NGHTTP2_CANCEL = 8;
const NGHTTP2_FLAG_END_STREAM = 1;
const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

/** Request headers for the next hop: pseudo-headers rebuilt, x-weft-* removed, `extra` added. */
export function h2RequestHeaders(incoming: IncomingHttpHeaders, extra: Record<string, string> = {}): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {
    [HTTP2_HEADER_METHOD]: incoming[HTTP2_HEADER_METHOD],
    [HTTP2_HEADER_PATH]: incoming[HTTP2_HEADER_PATH],
    [HTTP2_HEADER_AUTHORITY]: incoming[HTTP2_HEADER_AUTHORITY],
    [HTTP2_HEADER_SCHEME]: 'http',
  };
  for (const [name, value] of Object.entries(incoming)) {
    if (name.startsWith(':') || name.startsWith('x-weft-') || DROP.has(name) || value === undefined) continue;
    out[name] = value;
  }
  return { ...out, ...extra };
}

function responseHeaders(incoming: IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { [HTTP2_HEADER_STATUS]: incoming[HTTP2_HEADER_STATUS] };
  for (const [name, value] of Object.entries(incoming)) {
    if (name.startsWith(':') || DROP.has(name) || value === undefined) continue;
    out[name] = value;
  }
  return out;
}

/**
 * Relays `inbound` (a stream a client opened on us) to `session`. Data flows both ways as it comes, so
 * streaming calls stream; response trailers (grpc-status, grpc-message) are passed on; a reset on either side
 * resets the other. Rejects if the upstream fails before answering, so the caller can answer for the mesh.
 */
export function forwardH2(inbound: ServerHttp2Stream, session: ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<void> {
  return new Promise((resolve, reject) => {
    let answered = false;
    let upstream: http2.ClientHttp2Stream;
    try {
      upstream = session.request(headers, { endStream: false });
    } catch (err) {
      reject(err);
      return;
    }
    inbound.pipe(upstream);
    upstream.on('response', (h, flags) => {
      answered = true;
      if (inbound.destroyed) return;
      if (flags & NGHTTP2_FLAG_END_STREAM) {
        // A trailers-only answer (how gRPC reports most errors): one header block that also ends the stream.
        inbound.respond(responseHeaders(h), { endStream: true });
        return;
      }
      inbound.respond(responseHeaders(h), { waitForTrailers: true });
      upstream.pipe(inbound);
    });
    let trailers: http2.OutgoingHttpHeaders | null = null;
    upstream.on('trailers', (t) => {
      const out: http2.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(t)) if (!name.startsWith(':') && value !== undefined && value !== null) out[name] = value as string | string[];
      trailers = out;
    });
    inbound.on('wantTrailers', () => inbound.sendTrailers(trailers ?? {}));
    upstream.on('close', () => {
      if (!answered) return;
      if (upstream.rstCode && upstream.rstCode !== NGHTTP2_NO_ERROR && !inbound.destroyed) inbound.close(upstream.rstCode);
      resolve();
    });
    upstream.on('error', (err) => {
      if (!answered) reject(err);
    });
    inbound.on('close', () => {
      if (!upstream.closed) upstream.close(inbound.rstCode || NGHTTP2_CANCEL);
    });
    inbound.on('error', () => {});
  });
}

/** A mesh answer on an HTTP/2 stream; for gRPC callers the status is also given as a gRPC status. */
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

export function meshReplyH2(stream: ServerHttp2Stream, status: number, reason: string, message: string, grpc: boolean, extra: Record<string, string> = {}): void {
  if (stream.destroyed || stream.headersSent) {
    stream.close(NGHTTP2_CANCEL);
    return;
  }
  if (grpc) {
    // gRPC clients read trailers-only responses: UNAVAILABLE (14) or PERMISSION_DENIED (7) or DEADLINE_EXCEEDED (4).
    const code = status === 403 ? 7 : status === 504 ? 4 : 14;
    stream.respond({ [HTTP2_HEADER_STATUS]: 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': grpcMessage(`weft: ${message}`), [REASON_HEADER]: reason, ...extra }, { endStream: true });
    return;
  }
  const body = `weft: ${message}\n`;
  stream.respond({ [HTTP2_HEADER_STATUS]: status, 'content-type': 'text/plain; charset=utf-8', [REASON_HEADER]: reason, ...extra });
  stream.end(body);
}
