// Forwarding one HTTP/1.x exchange through a keep-alive pool (to the app, or to a peer sidecar).

import type { H1Handler, H1Pool } from './h1-client.ts';
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
  /** called once the whole request has been written upstream */
  readonly onRequestSent?: () => void;
  /**
   * Decides, when the response head arrives (its status and raw headers), whether to relay it (true) or drop it
   * (false: its body is discarded and the exchange ends with `relayed` false, so the caller can retry elsewhere).
   */
  readonly accept?: (status: number, rawHeaders: readonly string[]) => boolean;
  /** the answer is the local app's: its x-weft-* headers are dropped, as only the mesh speaks in them */
  readonly fromApp?: boolean;
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
 * How an exchange ended: `err` null once the answer was relayed in full (or dropped by `accept`). An error with
 * `status` 0 means no answer head arrived (so the caller can answer with a mesh error or retry); with a status,
 * the answer broke off after its head: if `relayed`, the caller's response has been destroyed. `reached` is false
 * when the request never went out on a connection (none could be made): the origin did not get any of it.
 */
export type RelayDone = (err: ForwardError | null, status: number, relayed: boolean, reached: boolean) => void;

function ignore(): void {}

/** One exchange's handler: an object with its methods on the prototype, not a closure per callback. */
class H1Relay implements H1Handler {
  readonly #res: H1Response;
  readonly #opts: ForwardOptions;
  readonly #done: RelayDone;
  #relay = true;
  #status = 0;
  /** resumes reading the answer; waited for on 'drain' only while the client is slower than the upstream */
  #resume: (() => void) | null = null;

  constructor(res: H1Response, opts: ForwardOptions, done: RelayDone) {
    this.#res = res;
    this.#opts = opts;
    this.#done = done;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#opts.onAbortable?.(abort);
    // A caller that goes away takes its request with it, as Envoy resets the upstream stream: the app stops
    // working on it and the pool connection is freed. After a complete answer this does nothing. (A hook,
    // not a 'close' listener building an Error: that cost ~4 µs per request and sidecar, +20% CPU.)
    this.#res.onClose = abort;
  }

  onRequestSent(): void {
    this.#opts.onRequestSent?.();
  }

  onError(err: ForwardError, reached: boolean): void {
    if (this.#resume) this.#res.off('drain', this.#resume);
    if (this.#status !== 0 && !this.#relay) {
      this.#done(null, this.#status, false, true);
      return;
    }
    if (this.#status !== 0) this.#res.destroy(err);
    this.#done(err, this.#status, this.#status !== 0, reached);
  }

  onHeaders(statusCode: number, rawHeaders: string[], resumeReading: () => void): void {
    this.#status = statusCode;
    const relay = (this.#relay = this.#opts.accept ? this.#opts.accept(statusCode, rawHeaders) : true);
    if (!relay) return;
    // A small body leaves in its head's write (H1Response), at once. Otherwise head, chunks and end are
    // corked to the end of this turn of the event loop, to leave as few writes (TLS records between
    // sidecars) as they can (./write-batch.ts). Corking the single write too measured slower: 4-5% fewer
    // requests/s in the pair, p50 0.15 ms higher at 2,000 requests/s (two runs of 8 alternating rounds).
    if (!leavesWithHead(rawHeaders)) corkForTurn(this.#res);
    this.#res.relayHead(statusCode, responseHeadersRaw(rawHeaders, this.#opts.fromApp));
    this.#resume = resumeReading;
  }

  onData(chunk: Buffer): boolean {
    if (!this.#relay) return true;
    const ok = this.#res.write(chunk);
    if (!ok) this.#res.once('drain', this.#resume!);
    return ok;
  }

  onComplete(): void {
    if (this.#resume) this.#res.off('drain', this.#resume);
    if (this.#relay) this.#res.end();
    this.#done(null, this.#status, this.#relay, true);
  }
}

/**
 * Sends `req` (with `headers` already cleaned for the next hop) through `pool` and streams the answer back to
 * `res`; `done` is called once, when the exchange is over (see RelayDone). Callbacks rather than a promise:
 * this is every request's path, and a promise chain per request cost ~1 KB of garbage and its microtasks.
 */
export function relayH1(pool: H1Pool, req: H1Request, res: H1Response, headers: Record<string, string | string[]>, opts: ForwardOptions, done: RelayDone): void {
  const body = opts.body === undefined ? req.body : opts.body;
  pool.dispatch({ method: req.method, path: opts.path ?? req.url, headers, body }, new H1Relay(res, opts, done));
  if (body !== null && body === req.body) body.on('error', ignore);
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
