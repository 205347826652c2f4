// Which parsed HTTP/1 request heads the sidecar's server refuses before anyone reads them (./h1-server-connection.ts
// answers them through ./client-error.ts and closes the connection).

import type { IncomingHttpHeaders } from 'node:http';
import { METHOD_NAMES } from './llhttp.ts';

export type HeadRefusal = Error & { code: string };

function refusal(message: string, code: string): HeadRefusal {
  return Object.assign(new Error(message), { code });
}

/** Why a head (its version, headers as node combines them, llhttp's method number) is refused, or null. */
export function refusedHead(major: number, minor: number, headers: IncomingHttpHeaders, method: number): HeadRefusal | null {
  // llhttp reads any digit.digit; "HTTP/2.0" over a plain HTTP/1 connection is no request this server knows.
  if (major !== 1) return refusal(`HTTP/${major}.${minor}`, 'HPE_UNSUPPORTED_VERSION');
  // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
  if (minor === 1 && headers.host === undefined) return refusal('no Host header', 'HPE_MISSING_HOST');
  const te = headers['transfer-encoding'];
  // RFC 9112 §6.1: a coding the server does not know is 501. Passed on as chunked, a gzip coding would be lost
  // and the app would read coded bytes as the body (Envoy also takes chunked alone).
  if (te !== undefined && te.toLowerCase() !== 'chunked') return refusal(`transfer coding ${JSON.stringify(te)}: only chunked is supported`, 'WEFT_UNSUPPORTED_TRANSFER_CODING');
  if (METHOD_NAMES[method] === undefined) return refusal(`method ${method} has no name`, 'HPE_INVALID_METHOD');
  return null;
}
