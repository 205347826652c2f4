// Answers the mesh gives itself (no route, no upstream, timeouts, denials): a status, a reason header, and a
// body that says it was the mesh that answered and why.

import { REASON_HEADER } from './headers.ts';
import type { H1Response } from './h1-message.ts';

export type MeshReason =
  | 'no-route'
  | 'no-healthy-upstream'
  | 'upstream-connect-failure'
  | 'upstream-reset'
  /** an HTTP/2 stream the upstream refused unprocessed (REFUSED_STREAM), and not sent again */
  | 'upstream-refused'
  | 'peer-identity-mismatch'
  /** the app's connection was never made (refused, timed out): the request reached no app */
  | 'app-unavailable'
  /** the app's connection was lost before its answer: the app may have had the request */
  | 'app-reset'
  | 'not-ready'
  | 'bad-request'
  | 'timeout'
  | 'stream-idle-timeout'
  | 'circuit-open'
  | 'overflow'
  | 'denied'
  | 'fault-injected';

export function meshReply(res: H1Response, status: number, reason: MeshReason, message: string, extra: Record<string, string> = {}): void {
  if (res.closed) return; // the caller has gone: nobody to answer
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `weft: ${message}\n`;
  // The reason goes in with setHeader so telemetry can read it back (getHeader does not see writeHead's headers).
  res.setHeader(REASON_HEADER, reason);
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra });
  res.end(body);
}

/**
 * Whether a peer sidecar's answer (its raw headers) says that the request reached no app (`app-unavailable`), so
 * the caller may count it as a connect failure to that endpoint. Only a sidecar can say so: the inbound side drops
 * every x-weft-* header of its app's answers (../http/headers.ts).
 */
export function appNeverReached(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 13 && name.toLowerCase() === REASON_HEADER) return raw[i + 1] === 'app-unavailable';
  }
  return false;
}
