// The sidecar's HTTP/1 server: node's llhttp (./llhttp.ts) reading the listeners' sockets (./parser-feed.ts),
// with the request and response objects of ./h1-message.ts. It replaces node:http's server on the request path,
// which cost each sidecar ~4 µs of CPU per request in its stream and header machinery (bench/README figures).
//
// One request is answered at a time per connection, in order: pipelined requests wait, parsed, in a short
// queue (the socket pauses when it is full). A response cut short closes its connection. Slowloris bounds, as
// node's: a head within headersTimeout of its first byte, the whole request within requestTimeout, checked once a
// second, as is the stream idle timeout (./stream-idle.ts). One connection's parsing, queue and timeouts are
// ./h1-server-connection.ts.

import type { Socket } from 'node:net';
import type { H1Request, H1Response } from './h1-message.ts';
import { ServerConnection } from './h1-server-connection.ts';

export interface H1ServerOptions {
  readonly maxHeaderSize: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /**
   * How long a response may wait for its caller to read (the socket's buffer full, no drain) before the connection
   * is closed; default 60 s, as nginx's send_timeout. A caller that stops reading otherwise holds its request's
   * connection to the app, and the app pool with enough of them, for ever.
   */
  readonly sendTimeoutMs?: number;
  /** The stream idle timeout (./stream-idle.ts), read once a second: it follows the config. Absent or 0: none. */
  readonly streamIdleTimeoutMs?: () => number;
}

export type RequestHandler = (req: H1Request, res: H1Response) => void;
export type UpgradeHandler = (req: H1Request, socket: Socket, head: Buffer) => void;
/** answers (or not) a request the parser refused, then closes the socket */
export type ClientErrorHandler = (err: Error & { code?: string }, socket: Socket) => void;

export class H1Server {
  /** seconds since the first connection (the timeout checks' clock) */
  tick = 0;
  closing = false;
  readonly options: H1ServerOptions;
  readonly onRequest: RequestHandler;
  readonly onUpgrade: UpgradeHandler;
  readonly onClientError: ClientErrorHandler;
  readonly #conns = new Set<ServerConnection>();
  #sweep: NodeJS.Timeout | null = null;

  constructor(options: H1ServerOptions, onRequest: RequestHandler, onUpgrade: UpgradeHandler, onClientError: ClientErrorHandler) {
    this.options = options;
    this.onRequest = onRequest;
    this.onUpgrade = onUpgrade;
    this.onClientError = onClientError;
  }

  /** Serves HTTP/1 on a connected socket (plain or TLS). */
  serve(socket: Socket): void {
    this.#conns.add(new ServerConnection(this, socket));
    if (!this.#sweep) {
      this.#sweep = setInterval(() => {
        this.tick++;
        const streamIdleMs = this.options.streamIdleTimeoutMs?.() ?? 0;
        for (const c of this.#conns) c.check(this.tick, streamIdleMs);
      }, 1000);
      this.#sweep.unref();
    }
  }

  forget(conn: ServerConnection): void {
    this.#conns.delete(conn);
  }

  /** Closes the connection served on `socket` as a drain does: now if idle, else after the response in progress. */
  closeConnection(socket: Socket): boolean {
    for (const c of this.#conns) {
      if (c.socket !== socket) continue;
      c.closeIfIdle();
      return true;
    }
    return false;
  }

  /** Draining: idle connections close now; busy ones close after the response in progress. */
  closeIdleConnections(): void {
    this.closing = true;
    for (const c of this.#conns) c.closeIfIdle();
  }
}
