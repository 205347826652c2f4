// One direction of a relayed HTTP/2 stream: what pipe() does for it, with less. pipe() adds seven listeners to
// the two streams (and an HTTP/2 stream runs a 'newListener' hook for each) and a closure for each; a gRPC call
// through a sidecar has two pipes. Here: 'data' and 'end' on the source, 'drain' on the sink only while the
// sink is full.

import type { Readable, Writable } from 'node:stream';

export class StreamRelay {
  readonly #src: Readable;
  readonly #dst: Writable;
  #on = true;

  constructor(src: Readable, dst: Writable) {
    this.#src = src;
    this.#dst = dst;
    src.on('data', this.#data);
    src.on('end', this.#end);
  }

  readonly #data = (chunk: Buffer): void => {
    const dst = this.#dst;
    if (!this.#on || dst.destroyed || dst.writableEnded) return;
    if (!dst.write(chunk)) {
      this.#src.pause();
      dst.once('drain', this.#drain);
    }
  };

  readonly #drain = (): void => {
    if (this.#on) this.#src.resume();
  };

  readonly #end = (): void => {
    if (this.#on && !this.#dst.destroyed && !this.#dst.writableEnded) this.#dst.end();
  };

  /** Nothing more is relayed (the sink is being answered otherwise); the source is left flowing, so it drains. */
  stop(): void {
    if (!this.#on) return;
    this.#on = false;
    this.#dst.off('drain', this.#drain);
    this.#src.resume();
  }
}
