// One keep-alive HTTP/1.1 connection of an H1Pool (./h1-client.ts): it writes one request at a time, the head
// in one piece (with a small body, in the same write), and parses the answer with node's llhttp (./llhttp.ts).

import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { HTTPParser, kOnBody, kOnHeaders, kOnHeadersComplete, kOnMessageComplete, type NativeParser } from './llhttp.ts';
import { ParserFeed } from './parser-feed.ts';
import { smallLatin1 } from './write-batch.ts';

/** RFC 9110 §9.2.2 */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE', 'QUERY']);

export interface H1Request {
  readonly method: string;
  /** origin-form target */
  readonly path: string;
  /** for the next hop, already cleaned of hop-by-hop headers; must hold `host` */
  readonly headers: Record<string, string | string[]>;
  /** null: no body; a Buffer: sent with the head (and again on a replay); a stream: sent once */
  readonly body: Buffer | Readable | null;
}

export interface H1Handler {
  /** with a function that aborts this exchange (timeouts); called once, when the request is dispatched */
  onConnect?(abort: (err?: Error) => void): void;
  /** the whole request has been written (a per-try timeout runs from here, as Envoy's) */
  onRequestSent?(): void;
  /** the final response head (1xx are skipped); raw name/value pairs. `resume` undoes a false from onData. */
  onHeaders(status: number, rawHeaders: string[], resume: () => void): void;
  /** a piece of the body; return false to stop reading until `resume` */
  onData(chunk: Buffer): boolean;
  /** the whole response has arrived (raw trailer pairs, usually empty) */
  onComplete(trailers: string[]): void;
  /** the exchange failed; never called after onComplete. `reached`: it went out on a connection (it may have arrived) */
  onError(err: Error & { code?: string }, reached: boolean): void;
}

const NO_TRAILERS: string[] = Object.freeze([]) as unknown as string[];

/** undici's default connect timeout */
export const CONNECT_TIMEOUT_MS = 10_000;

/** What a connection and its exchanges need from the pool that owns them. */
export interface ConnectionOwner {
  /** `conn` can take the next request */
  released(conn: Connection): void;
  /** `conn` is gone; `ex` was on it (not yet answered in full), or null */
  lost(conn: Connection, ex: Exchange | null, err: Error): void;
  /** `ex` was aborted while it waited for a connection */
  unqueue(ex: Exchange): void;
}

export class ConnectionLostError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.code = code;
  }
}

export class Exchange {
  conn: Connection | null = null;
  done = false;
  /** bytes of an answer have arrived: from here on a replay is out of the question */
  answered = false;
  replays = 0;
  readonly pool: ConnectionOwner;
  readonly req: H1Request;
  readonly handler: H1Handler;
  constructor(pool: ConnectionOwner, req: H1Request, handler: H1Handler) {
    this.pool = pool;
    this.req = req;
    this.handler = handler;
  }

  /**
   * Whether a request lost on a reused connection before any answer (the keep-alive race) may be sent again: once,
   * with a body that can be sent again, and only for an idempotent method. The app may have acted on what it read
   * before the connection went, and RFC 9112 §9.3.1: a proxy must not retry a non-idempotent request by itself.
   */
  get replayable(): boolean {
    return !this.answered && this.replays === 0 && IDEMPOTENT.has(this.req.method) && (this.req.body === null || Buffer.isBuffer(this.req.body));
  }

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.handler.onError(err, this.conn !== null || this.replays > 0);
  }

  abort = (err?: Error): void => {
    if (this.done) return;
    const e = err ?? new ConnectionLostError('request aborted', 'WEFT_ABORTED');
    if (this.conn) this.conn.destroy(e);
    else {
      this.pool.unqueue(this);
      this.fail(e);
    }
  };
}

export class Connection {
  readonly socket: Socket;
  readonly #pool: ConnectionOwner;
  readonly #parser: NativeParser;
  readonly #feed: ParserFeed;
  exchange: Exchange | null = null;
  ready = false;
  /** requests this connection has carried (a reused connection can lose the keep-alive race) */
  uses = 0;
  #requestSent = false;
  #informational = false;
  #keepAlive = true;
  #headBuffer: string[] = [];
  #trailers: string[] = [];
  #headersDone = false;
  #dead = false;
  /** the answer is complete and the request sent: free for the next one once the current read is parsed */
  #releasePending = false;
  #onDrain: (() => void) | null = null;
  /** while a request body is being streamed: stops reading it and destroys it */
  #abandonBody: (() => void) | null = null;

  constructor(pool: ConnectionOwner, socket: Socket) {
    this.#pool = pool;
    this.socket = socket;
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
    parser[kOnHeaders] = (headers: string[]) => {
      if (this.#headersDone) this.#trailers.push(...headers);
      else this.#headBuffer.push(...headers);
    };
    parser[kOnHeadersComplete] = (_maj: number, _min: number, headers: string[] | undefined, _m: unknown, _u: unknown, status: number, _msg: string, _upgrade: boolean, keepAlive: boolean) =>
      this.#onHead(headers, status, keepAlive);
    parser[kOnBody] = (chunk: Buffer) => {
      const ex = this.exchange;
      if (ex && !ex.done && !ex.handler.onData(chunk)) this.#feed.pause();
    };
    parser[kOnMessageComplete] = () => this.#onComplete();
    this.#parser = parser;
    socket.setNoDelay(true);
    this.#feed = new ParserFeed(socket, parser, (r) => {
      // (#onHead marks it too, for a connection it closes while the parser is still at work)
      if (this.exchange) this.exchange.answered = true;
      if (typeof r !== 'number') this.destroy(new ConnectionLostError(`invalid HTTP response: ${(r as Error & { reason?: string }).reason ?? r.message}`, (r as Error & { code?: string }).code ?? 'HPE_INVALID'));
      // Only now, with the whole segment parsed: bytes after the answer were a response nobody asked for (and
      // closed the connection in #onHead), instead of being read as the answer to the next queued request.
      if (this.#releasePending) {
        this.#releasePending = false;
        this.#release();
      }
    });
    socket.on('end', () => {
      // A body delimited by the end of the connection is complete now; anything else is cut short.
      const r = this.#parser.finish();
      if (r instanceof Error) this.destroy(new ConnectionLostError(`the connection closed in the middle of a response: ${r.message}`, 'UND_ERR_SOCKET'));
      else this.destroy(new ConnectionLostError('the other side closed the connection', 'UND_ERR_SOCKET'));
    });
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy(new ConnectionLostError('the connection closed', 'UND_ERR_SOCKET')));
    // Only the connect timeout uses the socket's timer; idle connections are closed by the pool's sweep.
    socket.on('timeout', () => {
      if (!this.ready) this.destroy(new ConnectionLostError(`no connection within ${CONNECT_TIMEOUT_MS} ms`, 'ETIMEDOUT'));
    });
  }

  send(ex: Exchange): void {
    this.exchange = ex;
    ex.conn = this;
    this.uses++;
    this.#requestSent = false;
    this.#informational = false;
    this.#headersDone = false;
    // New lists only if the last answer used them (most answers arrive in one piece, with no trailers).
    if (this.#headBuffer.length) this.#headBuffer = [];
    if (this.#trailers.length) this.#trailers = [];
    const { method, path, headers, body } = ex.req;
    let head = `${method} ${path} HTTP/1.1\r\n`;
    let hasLength = false;
    for (const name in headers) {
      const value = headers[name]!;
      if (name === 'content-length') hasLength = true;
      if (typeof value === 'string') head += `${name}: ${value}\r\n`;
      else for (const v of value) head += `${name}: ${v}\r\n`;
    }
    const socket = this.socket;
    // One write, sent at once: corking it (./write-batch.ts) only cost allocations and held it back.
    if (body === null) {
      socket.write(`${head}\r\n`, 'latin1');
      this.#sent();
    } else if (Buffer.isBuffer(body)) {
      if (!hasLength) head += `content-length: ${body.length}\r\n`;
      const text = smallLatin1(body, body.length);
      if (text !== null) {
        socket.write(`${head}\r\n${text}`, 'latin1');
        this.#sent();
        return;
      }
      socket.cork();
      socket.write(`${head}\r\n`, 'latin1');
      if (body.length) socket.write(body);
      socket.uncork();
      this.#sent();
    } else if (body.destroyed) {
      // Its caller left (or its framing broke) before this exchange began, as in a fault delay: the rest never comes.
      this.destroy(new ConnectionLostError('the request body was gone before it could be sent', 'UND_ERR_ABORTED'));
    } else this.#stream(body, head, !hasLength);
  }

  #sent(): void {
    this.#requestSent = true;
    this.exchange?.handler.onRequestSent?.();
  }

  #stream(body: Readable, head: string, chunked: boolean): void {
    const socket = this.socket;
    socket.write(chunked ? `${head}transfer-encoding: chunked\r\n\r\n` : `${head}\r\n`, 'latin1');
    const onData = (data: Buffer | string) => {
      const chunk = typeof data === 'string' ? Buffer.from(data) : data;
      if (chunk.length === 0) return;
      let ok: boolean;
      if (chunked) {
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        ok = socket.write('\r\n', 'latin1');
        socket.uncork();
      } else ok = socket.write(chunk);
      if (!ok) body.pause();
    };
    const cleanup = () => {
      this.#abandonBody = null;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('close', onClose);
      if (this.#onDrain) socket.off('drain', this.#onDrain);
      this.#onDrain = null;
    };
    const onEnd = () => {
      cleanup();
      if (chunked) socket.write('0\r\n\r\n', 'latin1');
      this.#sent();
      if (!this.exchange) this.#release(); // the answer came first and the connection waited for the body
    };
    const onClose = () => {
      cleanup();
      if (!body.readableEnded) this.destroy(new ConnectionLostError('the client went away while sending its request body', 'UND_ERR_ABORTED'));
    };
    this.#onDrain = () => body.resume();
    // If this connection dies first, the rest of the body has nowhere to go: it is destroyed, which tells
    // its source to stop (the sidecar's server then reads and drops what the client still sends).
    this.#abandonBody = () => {
      cleanup();
      if (!body.readableEnded) body.destroy();
    };
    socket.on('drain', this.#onDrain);
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('close', onClose);
    body.resume();
  }

  #onHead(headers: string[] | undefined, status: number, keepAlive: boolean): number {
    const ex = this.exchange;
    if (ex) ex.answered = true;
    const raw = headers && headers.length ? (this.#headBuffer.length ? [...this.#headBuffer, ...headers] : headers) : this.#headBuffer;
    if (raw === this.#headBuffer || this.#headBuffer.length) this.#headBuffer = [];
    if (!ex) {
      this.destroy(new ConnectionLostError('a response arrived with no request outstanding', 'UND_ERR_SOCKET'));
      return 1;
    }
    if (status < 200) {
      // 100 Continue, 102, 103: not relayed. 101 only ever answers an Upgrade, which never comes through a pool.
      if (status === 101) {
        this.destroy(new ConnectionLostError('the upstream switched protocols on a plain request', 'UND_ERR_SOCKET'));
        return 1;
      }
      this.#informational = true;
      return 0;
    }
    this.#headersDone = true;
    this.#keepAlive = keepAlive;
    const coding = otherCoding(raw);
    if (coding !== null) {
      // Relayed as chunked, the coding would be lost and the caller would read coded bytes as the body.
      this.destroy(new ConnectionLostError(`the upstream answered with transfer coding ${JSON.stringify(coding)}; only chunked is supported`, 'UND_ERR_SOCKET'));
      return 1;
    }
    if (!ex.done) {
      try {
        ex.handler.onHeaders(status, raw, this.#resume);
      } catch (err) {
        // The caller could not take this head (a handler's bug): the exchange fails, never the process.
        this.destroy(err as Error);
        return 1;
      }
    }
    return ex.req.method === 'HEAD' ? 1 : 0;
  }

  #onComplete(): void {
    if (this.#informational) {
      this.#informational = false;
      return;
    }
    const ex = this.exchange;
    if (!ex) return;
    this.exchange = null;
    ex.conn = null;
    if (!ex.done) {
      ex.done = true;
      ex.handler.onComplete(this.#trailers.length ? this.#trailers : NO_TRAILERS);
    }
    this.#feed.resume();
    if (!this.#keepAlive) this.destroy(null);
    else if (this.#requestSent) this.#releasePending = true;
    // else: wait for the request body to end (see #stream), then release
  }

  #resume = (): void => this.#feed.resume();

  #release(): void {
    if (this.#dead) return;
    this.#pool.released(this);
  }

  /** Date.now() when it last went idle: the pool closes it keepAliveMs later if it is still idle */
  idleSince = 0;

  /** Closes the socket; the exchange on it, if any, fails with `err` (or is replayed on a new connection). */
  destroy(err: Error | null): void {
    if (this.#dead) return;
    this.#dead = true;
    this.socket.destroy();
    this.#abandonBody?.();
    this.#feed.close();
    const ex = this.exchange;
    this.exchange = null;
    this.#pool.lost(this, ex, err ?? new ConnectionLostError('connection closed', 'UND_ERR_SOCKET'));
  }
}

/** A Transfer-Encoding other than chunked in a response's raw headers (the name compared by length first), or null. */
function otherCoding(raw: readonly string[]): string | null {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding' && raw[i + 1]!.trim().toLowerCase() !== 'chunked') return raw[i + 1]!;
  }
  return null;
}
