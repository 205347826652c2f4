// Forwarding one HTTP/1.x exchange through an undici dispatcher (a keep-alive pool to the app or to a peer).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { responseHeaders } from './headers.ts';

export interface ForwardError extends Error {
  code?: string;
}

/** True when the request carries a body (RFC 9112 §6.3: Transfer-Encoding, or a non-zero Content-Length). */
export function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
}

/**
 * Sends `req` (with `headers` already cleaned for the next hop) through `dispatcher` and streams the answer
 * back. Resolves when the response has been fully relayed; rejects only if no response head arrived, so
 * the caller can answer with a mesh error (or retry).
 */
export function forwardH1(dispatcher: Dispatcher, req: IncomingMessage, res: ServerResponse, headers: Record<string, string | string[]>, opts: { path?: string; onAbortable?: (abort: (err?: Error) => void) => void; body?: IncomingMessage | null } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    let responded = false;
    dispatcher.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: opts.path ?? req.url ?? '/',
        headers,
        body: opts.body === null ? null : hasBody(req) ? (opts.body ?? req) : null,
      },
      {
        onConnect(abort: (err?: Error) => void) {
          opts.onAbortable?.(abort);
        },
        onError(err: ForwardError) {
          if (!responded) reject(err);
          else res.destroy(err);
        },
        onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void) {
          responded = true;
          const h: Record<string, string | string[]> = {};
          for (let i = 0; i < rawHeaders.length; i += 2) {
            const name = rawHeaders[i]!.toString('latin1').toLowerCase();
            const value = rawHeaders[i + 1]!.toString('latin1');
            const prev = h[name];
            h[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
          }
          res.writeHead(statusCode, responseHeaders(h) as Record<string, string | string[]>);
          res.on('drain', resume);
          return true;
        },
        onData(chunk: Buffer) {
          return res.write(chunk);
        },
        onComplete() {
          res.end();
          resolve(res.statusCode);
        },
      } as unknown as Dispatcher.DispatchHandler,
    );
    if (hasBody(req)) req.on('error', () => {});
  });
}

/** How many Host headers a request carried (node keeps only the first in req.headers). */
export function hostHeaders(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.length === 4 && rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}
