// At most N open connections from one remote address: at the root, beside errors.ts, because the control
// plane's API port and the sidecar's inbound port both use it.
//
// A timeout alone does not stop one client from holding every file descriptor a process may open: it
// reconnects faster than its connections time out (2 x 10,000 handshakes took a control plane to its
// 20,000-descriptor limit, and sidecars could no longer reach it). So each TCP connection is counted as it
// arrives, before any TLS handshake (which is where the cost is), and one over the cap is closed at once.

import type { Socket } from 'node:net';

export interface ConnectionCapOptions {
  /** open connections one address may hold; more are closed at once */
  readonly limit: number;
  /**
   * An address went over the limit. Called once, and again only after it has been back under: a flood of
   * refusals is not a flood of log lines.
   */
  readonly onOverLimit: (address: string, limit: number) => void;
  /** every connection refused (for a counter) */
  readonly onRefused?: (address: string) => void;
}

export class ConnectionCap {
  readonly #o: ConnectionCapOptions;
  /** open connections by remote address; an address with none has no entry */
  readonly #open = new Map<string, number>();
  /** addresses over the limit that onOverLimit was called for */
  readonly #told = new Set<string>();

  constructor(opts: ConnectionCapOptions) {
    if (!(Number.isSafeInteger(opts.limit) && opts.limit >= 1)) throw new RangeError(`a connection cap must be a whole number of at least 1, not ${opts.limit}`);
    this.#o = opts;
  }

  /**
   * Counts a connection just accepted, until it closes. Over the limit, it is destroyed and not counted: the
   * caller must then leave it alone (false). One Map lookup per connection; nothing per request.
   */
  admit(socket: Socket): boolean {
    const address = socket.remoteAddress ?? '';
    const n = (this.#open.get(address) ?? 0) + 1;
    if (n > this.#o.limit) {
      if (!this.#told.has(address)) {
        this.#told.add(address);
        this.#o.onOverLimit(address, this.#o.limit);
      }
      this.#o.onRefused?.(address);
      socket.destroy();
      return false;
    }
    this.#open.set(address, n);
    socket.once('close', () => this.#closed(address));
    return true;
  }

  #closed(address: string): void {
    const left = this.#open.get(address)! - 1;
    if (left === 0) this.#open.delete(address);
    else this.#open.set(address, left);
    if (left < this.#o.limit && this.#told.size !== 0) this.#told.delete(address);
  }
}
