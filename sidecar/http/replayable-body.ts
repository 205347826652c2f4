// A request stream's body kept as it is sent, so that a retry or a mirror can send it again.

import type * as http2 from 'node:http2';
import type { ServerHttp2Stream } from 'node:http2';

/**
 * A request stream's body, read once and kept (up to `limit` bytes) so that a retry can send it again. Each try
 * attaches its upstream stream: it gets what has been read so far, then the rest as it comes, and the end.
 */
export class ReplayableBody {
  readonly #inbound: ServerHttp2Stream;
  readonly #limit: number;
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #overflowed = false;
  #ended = false;
  #target: http2.ClientHttp2Stream | null = null;
  #onEnd: (() => void)[] = [];
  /** waiting for decided(): told when the body ends, overflows, or the caller goes */
  #deciders: (() => void)[] = [];

  constructor(inbound: ServerHttp2Stream, limit: number) {
    this.#inbound = inbound;
    this.#limit = limit;
    inbound.on('data', (chunk: Buffer) => {
      if (!this.#overflowed) {
        this.#size += chunk.length;
        if (this.#size > this.#limit) {
          this.#overflowed = true;
          this.#chunks.length = 0;
          this.#decide();
        } else this.#chunks.push(chunk);
      }
      const target = this.#target;
      if (target && !target.destroyed && !target.write(chunk)) {
        inbound.pause();
        target.once('drain', () => inbound.resume());
      }
    });
    inbound.on('end', () => {
      this.#ended = true;
      if (this.#target && !this.#target.destroyed) this.#target.end();
      const waiting = this.#onEnd;
      this.#onEnd = [];
      for (const f of waiting) f();
      this.#decide();
    });
    inbound.once('close', () => this.#decide());
  }

  #decide(): void {
    const waiting = this.#deciders;
    this.#deciders = [];
    for (const f of waiting) f();
  }

  /**
   * Resolves once a retry can be decided: the whole request is in (or went past the limit), or the caller has
   * gone. A try can fail while a client-streaming caller is between messages; it is not given up for that.
   */
  decided(): Promise<void> {
    if (this.#ended || this.#overflowed || this.#inbound.destroyed || this.#inbound.closed) return Promise.resolve();
    return new Promise((resolve) => this.#deciders.push(resolve));
  }

  /** Calls `f` once the caller has sent all of the request (now, if it has). */
  whenEnded(f: () => void): void {
    if (this.#ended) f();
    else this.#onEnd.push(f);
  }

  /**
   * Every byte read so far is kept: a try the upstream refused unprocessed can be made again now, even before the
   * caller has sent all of it (attach sends what was read, then the rest as it comes).
   */
  get intact(): boolean {
    return !this.#overflowed;
  }

  /** All of it was read, and kept: a new try can send it whole. */
  get replayable(): boolean {
    return this.#ended && !this.#overflowed;
  }

  /** Sends what was read so far to `upstream`, and what comes later (a try's first call only, or a replay). */
  attach(upstream: http2.ClientHttp2Stream): void {
    this.#target = upstream;
    for (const c of this.#chunks) upstream.write(c);
    if (this.#ended) upstream.end();
  }

  /** Sends all of it to `stream` (a mirror's copy): only once it is replayable. */
  copyTo(stream: http2.ClientHttp2Stream): void {
    for (const c of this.#chunks) stream.write(c);
    stream.end();
  }

  detach(upstream: http2.ClientHttp2Stream): void {
    if (this.#target === upstream) this.#target = null;
    this.#inbound.resume();
  }
}
