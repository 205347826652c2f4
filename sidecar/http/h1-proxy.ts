// Forwarding one HTTP/1.x exchange through a keep-alive pool (to the app, or to a peer sidecar).

import type { H1Pool } from './h1-client.ts';
import { responseHeadersRaw } from './headers.ts';
import type { H1Request, H1Response } from './h1-message.ts';
import { corkForTurn, WITH_HEAD } from './write-batch.ts';

export interface ForwardError extends Error {
  code?: string;
}

export interface ForwardOptions {
  readonly path?: string;
  /** a body already read into memory (so a retry can send it again); null for none; default: stream `req` */
  readonly body?: Buffer | null;
  /** called with a function that aborts the exchange (timeouts) */
  readonly onAbortable?: (abort: (err?: Error) => void) => void;
  /**
   * Decides, when the response head arrives, whether to relay it (true) or drop it (false: its body is
   * discarded and the promise resolves with `relayed: false`, so the caller can retry elsewhere).
   */
  readonly accept?: (status: number) => boolean;
}

/** Whether an answer's body is small enough to leave in its head's write (a Content-Length within WITH_HEAD). */
function leavesWithHead(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length === 14 && n.toLowerCase() === 'content-length') return Number(raw[i + 1]) <= WITH_HEAD;
  }
  return false;
}

/**
 * Sends `req` (with `headers` already cleaned for the next hop) through `pool` and streams the answer back.
 * Resolves when the response has been relayed (or dropped by `accept`); rejects only if no response head
 * arrived, so the caller can answer with a mesh error or retry.
 */
export function forwardH1(pool: H1Pool, req: H1Request, res: H1Response, headers: Record<string, string | string[]>, opts: ForwardOptions = {}): Promise<{ status: number; relayed: boolean }> {
  return new Promise((resolve, reject) => {
    let responded = false;
    let relay = true;
    let status = 0;
    /** resumes reading the answer; waited for on 'drain' only while the client is slower than the upstream */
    let resume: (() => void) | null = null;
    const body = opts.body === undefined ? req.body : opts.body;
    pool.dispatch(
      { method: req.method, path: opts.path ?? req.url, headers, body },
      {
        onConnect(abort) {
          opts.onAbortable?.(abort);
          // A caller that goes away takes its request with it, as Envoy resets the upstream stream: the app stops
          // working on it and the pool connection is freed. After a complete answer this does nothing. (A hook,
          // not a 'close' listener building an Error: that cost ~4 µs per request and sidecar, +20% CPU.)
          res.onClose = abort;
        },
        onError(err: ForwardError) {
          if (resume) res.off('drain', resume);
          if (!responded) reject(err);
          else if (relay) res.destroy(err);
          else resolve({ status, relayed: false });
        },
        onHeaders(statusCode, rawHeaders, resumeReading) {
          responded = true;
          status = statusCode;
          relay = opts.accept ? opts.accept(statusCode) : true;
          if (!relay) return;
          // A small body leaves in its head's write (H1Response), at once. Otherwise head, chunks and end are
          // corked to the end of this turn of the event loop, to leave as few writes (TLS records between
          // sidecars) as they can (./write-batch.ts). Corking the single write too measured slower: 4-5% fewer
          // requests/s in the pair, p50 0.15 ms higher at 2,000 requests/s (two runs of 8 alternating rounds).
          if (!leavesWithHead(rawHeaders)) corkForTurn(res);
          res.writeHead(statusCode, responseHeadersRaw(rawHeaders));
          resume = resumeReading;
        },
        onData(chunk) {
          if (!relay) return true;
          const ok = res.write(chunk);
          if (!ok) res.once('drain', resume!);
          return ok;
        },
        onComplete() {
          if (resume) res.off('drain', resume);
          if (relay) res.end();
          resolve({ status, relayed: relay });
        },
      },
    );
    if (body !== null && body === req.body) body.on('error', () => {});
  });
}

/** How many Host headers a request carried (node keeps only the first in req.headers). */
export function hostHeaders(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.length === 4 && rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}

/**
 * Reads a request body into memory if it is at most `limit` bytes (so it can be sent again on a retry).
 * Returns null when there is no body, or 'stream' when it is larger or of unknown length: then `req` must be
 * streamed once and not retried.
 */
export async function bufferSmallBody(req: H1Request, limit: number): Promise<Buffer | null | 'stream'> {
  if (!req.body) return null;
  const length = Number(req.headers['content-length']);
  if (!Number.isFinite(length) || length > limit || req.headers['transfer-encoding'] !== undefined) return 'stream';
  const chunks: Buffer[] = [];
  for await (const c of req.body as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}
