// A keep-alive HTTP/1.1 connection pool to one origin: the local app (plain TCP) or one peer sidecar (mTLS).
//
// This is the sidecar's hot path, so it is small on purpose (the wire side is ./h1-connection.ts): the request
// head is written in one piece, and the answer is parsed by the llhttp parser node:http itself uses, called
// directly: no ClientRequest/IncomingMessage streams per request, and no second HTTP parser in memory
// (undici's wasm build of llhttp costs about 20 MB per process).
//
// Semantics follow undici's Pool, which this replaces on the sidecar: at most `connections` sockets, requests
// queued beyond that, one request per connection at a time (no pipelining), idle sockets closed after
// `keepAliveMs`. One thing more, as Envoy does: a request sent on a reused keep-alive connection that the other
// side had already closed (no byte of an answer came back) is sent once more on a new connection, when its
// body can be sent again. That race is otherwise a spurious 503 every time an app's idle timeout fires.

import type { Socket } from 'node:net';
import { Connection, ConnectionLostError, CONNECT_TIMEOUT_MS, Exchange, type ConnectionOwner, type H1Handler, type H1Request } from './h1-connection.ts';

export type { H1Handler, H1Request } from './h1-connection.ts';

export interface H1PoolOptions {
  /** at most this many sockets to the origin */
  readonly connections: number;
  /** an idle socket is closed after this long */
  readonly keepAliveMs: number;
  /** opens a socket; it must emit `readyEvent` once usable ('connect', or 'secureConnect' for TLS) */
  readonly connect: () => Socket;
  readonly readyEvent: 'connect' | 'secureConnect';
}

/** How a connection the other side had already closed fails a request sent on it. */
const REPLAYABLE = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

export class PoolClosedError extends Error {
  readonly code = 'WEFT_POOL_CLOSED';
}

export class H1Pool implements ConnectionOwner {
  readonly #o: H1PoolOptions;
  readonly #all = new Set<Connection>();
  readonly #idle: Connection[] = [];
  #queue: Exchange[] = [];
  #closed = false;
  #sweep: NodeJS.Timeout | null = null;
  /** at most this many sockets: options.connections, until resize */
  #limit: number;

  constructor(options: H1PoolOptions) {
    this.#o = options;
    this.#limit = options.connections;
  }

  /**
   * A new connection limit (a TrafficPolicy change), in place: queued requests get the new room at once, and
   * connections over a lower limit close as they come free; nothing in flight is cut.
   */
  resize(connections: number): void {
    this.#limit = connections;
    while (this.#idle.length > 0 && this.#all.size > this.#limit) this.#idle.shift()!.destroy(null);
    for (let room = Math.min(this.#queue.length, this.#limit - this.#all.size); room > 0 && !this.#closed; room--) this.#open();
  }

  /** Closes the idle connections (the identities a peer may present changed: new ones are checked afresh). */
  dropIdle(): void {
    for (const conn of this.#idle.splice(0)) conn.destroy(null);
  }

  dispatch(req: H1Request, handler: H1Handler): void {
    const ex = new Exchange(this, req, handler);
    handler.onConnect?.(ex.abort);
    if (ex.done) return;
    if (this.#closed) {
      queueMicrotask(() => ex.fail(new PoolClosedError('the connection pool is closed')));
      return;
    }
    this.#enqueue(ex);
  }

  #enqueue(ex: Exchange): void {
    const conn = this.#idle.pop();
    if (conn) {
      conn.send(ex);
      return;
    }
    this.#queue.push(ex);
    if (this.#all.size < this.#limit) this.#open();
  }

  #open(): void {
    const socket = this.#o.connect();
    socket.setTimeout(CONNECT_TIMEOUT_MS);
    const conn = new Connection(this, socket);
    this.#all.add(conn);
    socket.once(this.#o.readyEvent, () => {
      conn.ready = true;
      socket.setTimeout(0);
      this.released(conn);
    });
  }

  unqueue(ex: Exchange): void {
    const i = this.#queue.indexOf(ex);
    if (i !== -1) this.#queue.splice(i, 1);
  }

  /** `conn` can take a request: the next queued one, or it waits idle. */
  released(conn: Connection): void {
    if (this.#closed) {
      conn.destroy(null);
      return;
    }
    const next = this.#queue.shift();
    if (next) conn.send(next);
    else if (this.#all.size > this.#limit) conn.destroy(null); // over a lowered limit
    else {
      conn.idleSince = Date.now();
      this.#idle.push(conn);
      this.#sweep ??= setInterval(() => this.#closeIdle(), Math.min(this.#o.keepAliveMs, 1000)).unref();
    }
  }

  /**
   * Closes connections idle for keepAliveMs or more (checked every keepAliveMs, at most every second): one
   * timer per pool instead of a socket timer re-armed for every request.
   */
  #closeIdle(): void {
    const now = Date.now();
    let n = 0;
    // #idle is in the order connections went idle (taken from the end), so the oldest are first.
    while (n < this.#idle.length && now - this.#idle[n]!.idleSince >= this.#o.keepAliveMs) n++;
    for (const conn of this.#idle.slice(0, n)) conn.destroy(new ConnectionLostError('idle', 'UND_ERR_SOCKET'));
  }

  lost(conn: Connection, ex: Exchange | null, err: Error): void {
    this.#all.delete(conn);
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
    if (!conn.ready) {
      // Could not connect: the request that asked for this connection fails with the reason.
      const waiting = this.#queue.shift();
      waiting?.fail(err);
    } else if (ex && !ex.done) {
      if (conn.uses > 1 && ex.replayable && !this.#closed && REPLAYABLE.has((err as { code?: string }).code ?? '')) {
        ex.replays++;
        ex.conn = null;
        this.#enqueue(ex);
      } else ex.fail(err);
    }
    if (this.#queue.length > 0 && this.#all.size < this.#limit && !this.#closed) this.#open();
  }

  /** No new requests; idle connections close now, busy ones after their answer. */
  close(): Promise<void> {
    this.#closed = true;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweep = null;
    for (const conn of this.#idle.splice(0)) conn.destroy(null);
    const queued = this.#queue;
    this.#queue = [];
    for (const ex of queued) ex.fail(new PoolClosedError('the connection pool is closed'));
    return Promise.resolve();
  }
}
