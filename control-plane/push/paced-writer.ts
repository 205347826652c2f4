// Writing a sidecar's stream in pieces. Node's TLS encrypts a whole write at once into a native buffer that keeps
// its size after the bytes have left: one 150 KB first snapshot (a mesh of 1,000 endpoints) left ~195 KB of
// malloc'd memory behind per connection, for as long as the stream lasts, so the control plane's memory grew
// with sidecars × endpoints. Written 16 KiB at a time, each piece once the one before has reached the socket,
// it keeps ~30 KB (measured with 1,000 mTLS streams: 256 MB of native heap against 93).

/** What the writer needs of a response (HTTP/1.1 or HTTP/2). */
export interface Sink {
  write(chunk: string, done: (err?: Error | null) => void): boolean;
  end(): void;
}

export const PIECE_CHARS = 16 * 1024;

export class PacedWriter {
  readonly #sink: Sink;
  readonly #pieceChars: number;
  readonly #queue: string[] = [];
  #busy = false;
  #broken = false;
  #ending = false;
  /** a write returned false: whoever waits is told when the writer is idle again */
  #owed = false;
  readonly #waiting: (() => void)[] = [];

  constructor(sink: Sink, pieceChars = PIECE_CHARS) {
    this.#sink = sink;
    this.#pieceChars = pieceChars;
  }

  /**
   * Queues `text` after everything written before it. Returns false while earlier text is still on its way:
   * the caller then waits for `onIdle` (the pusher sends the latest snapshot then, not every one in between).
   */
  write(text: string): boolean {
    if (this.#broken || this.#ending) return false;
    if (!this.#busy && text.length <= this.#pieceChars) {
      // The common case (a delta, a keepalive): one plain write, as before.
      this.#busy = true;
      this.#sink.write(text, this.#written);
      return true;
    }
    for (let at = 0; at < text.length; ) {
      let end = Math.min(at + this.#pieceChars, text.length);
      // Never split a surrogate pair: each piece is encoded as UTF-8 on its own.
      if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end--;
      this.#queue.push(text.slice(at, end));
      at = end;
    }
    if (!this.#busy) this.#next();
    this.#owed = true;
    return false;
  }

  /** Ends the response once everything queued has been written. */
  end(): void {
    if (this.#ending) return;
    this.#ending = true;
    if (!this.#busy) this.#sink.end();
  }

  /** Whether nothing is queued or in flight. */
  get idle(): boolean {
    return !this.#busy;
  }

  /** Calls `resume` each time the writer becomes idle after a write returned false. */
  onIdle(resume: () => void): void {
    this.#waiting.push(resume);
  }

  readonly #written = (err?: Error | null): void => {
    this.#busy = false;
    if (err) {
      // The response is gone (its close handler cleans up); nothing more will be written.
      this.#broken = true;
      this.#queue.length = 0;
      return;
    }
    if (this.#queue.length > 0) this.#next();
    else if (this.#ending) this.#sink.end();
    else if (this.#owed) {
      this.#owed = false;
      for (const resume of this.#waiting) resume();
    }
  };

  #next(): void {
    this.#busy = true;
    this.#sink.write(this.#queue.shift()!, this.#written);
  }
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
