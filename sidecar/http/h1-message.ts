// The request and response objects of the sidecar's HTTP/1 server (./h1-server.ts): the parts of node's
// IncomingMessage and ServerResponse the listeners use, without a stream per request that has no body.

import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { http } from './node-http.ts';
import { httpDate as formatHttpDate } from '../clock.ts';
import { smallLatin1 } from './write-batch.ts';
import { REASON_HEADER } from './headers.ts';

/** What a response needs from the connection it is written on. */
export interface ResponseOwner {
  readonly socket: Socket;
  /** the response is complete (or abandoned): the connection may go on to the next request */
  responseDone(res: H1Response): void;
  /** false once the connection must close after this response */
  keepAlive: boolean;
}

/** A request body as a stream; made only for requests that have one. */
export class RequestBody extends Readable {
  /** Something has started reading this body (as node's req._consuming). */
  get beingRead(): boolean {
    return this.readableDidRead || this.readableFlowing === true || this.listenerCount('data') > 0 || this.listenerCount('readable') > 0;
  }

  readonly #resume: () => void;
  constructor(resume: () => void) {
    super();
    this.#resume = resume;
  }
  override _read(): void {
    this.#resume();
  }
  /** Destroyed by its reader: reading goes on, so what is still coming is dropped (see H1Server). */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#resume();
    cb(err);
  }
}

export class H1Request {
  readonly method: string;
  /** the request target as sent (origin form, or absolute form through a proxy); listeners may rewrite it */
  url: string;
  /** lower-case names; repeated headers combined as node does (./h1-headers.ts) */
  readonly headers: IncomingHttpHeaders;
  /** name/value pairs as received */
  readonly rawHeaders: string[];
  /** 1.0 or 1.1 */
  readonly httpVersionMinor: number;
  readonly socket: Socket;
  /** null when the request has no body (no Content-Length above 0, no Transfer-Encoding) */
  readonly body: RequestBody | null;
  /** the whole request, body included, has been read */
  complete = false;
  /** what the client asked for (Connection, HTTP version); the server may still close */
  keepAlive = true;
  constructor(method: string, url: string, rawHeaders: string[], headers: IncomingHttpHeaders, minor: number, socket: Socket, body: RequestBody | null) {
    this.method = method;
    this.url = url;
    this.rawHeaders = rawHeaders;
    this.headers = headers;
    this.httpVersionMinor = minor;
    this.socket = socket;
    this.body = body;
  }
}

const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

function checkHeader(name: string, value: string): void {
  if (!TOKEN.test(name)) throw Object.assign(new TypeError(`invalid response header name "${name}"`), { code: 'ERR_INVALID_HTTP_TOKEN' });
  if (BAD_VALUE.test(value)) throw Object.assign(new TypeError(`invalid character in response header "${name}"`), { code: 'ERR_INVALID_CHAR' });
}

let dateSecond = 0;
let dateText = '';
/** The Date header value, formatted once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = now - (now % 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = formatHttpDate(now);
  }
  return dateText;
}

type HeaderValue = string | number | readonly string[];

const CONTENT_LENGTH = 1;
const TRANSFER_ENCODING = 2;
const DATE = 4;

/** Whether writeHead's headers name `lower` (a lower-case name), in any case. */
function givenHas(given: Record<string, HeaderValue> | readonly string[] | null, lower: string): boolean {
  if (!given) return false;
  if (Array.isArray(given)) {
    for (let i = 0; i < given.length; i += 2) if (given[i]!.toLowerCase() === lower) return true;
    return false;
  }
  for (const name in given) if (name.toLowerCase() === lower) return true;
  return false;
}

/** Which of the headers that decide framing (or Date) `name` is, as a bit; 0 for any other. */
function framing(name: string): number {
  switch (name.length) {
    case 14: return name.toLowerCase() === 'content-length' ? CONTENT_LENGTH : 0;
    case 17: return name.toLowerCase() === 'transfer-encoding' ? TRANSFER_ENCODING : 0;
    case 4: return name.toLowerCase() === 'date' ? DATE : 0;
    default: return 0;
  }
}

/**
 * One response. Its head is built on the first write (or end), so that head, body and end can leave in one
 * write. Framing: the Content-Length given, else (an HTTP/1.1 client) chunked, else the connection's end.
 */
export class H1Response extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  #owner: ResponseOwner;
  readonly #req: H1Request;
  #set: Record<string, string> | null = null;
  #given: Record<string, HeaderValue> | readonly string[] | null = null;
  #head = false;
  #chunked = false;
  #noBody = false;
  #ended = false;
  #closed = false;

  constructor(owner: ResponseOwner, req: H1Request) {
    super();
    this.#owner = owner;
    this.#req = req;
  }

  setHeader(name: string, value: string): void {
    checkHeader(name, value); // a CR or LF from the caller's data would split the response
    (this.#set ??= {})[name.toLowerCase()] = value;
  }

  /** Only what setHeader put there (as with node, writeHead's headers are not read back). */
  getHeader(name: string): string | undefined {
    return this.#set?.[name.toLowerCase()];
  }

  writeHead(status: number, headers?: Record<string, HeaderValue> | readonly string[]): this {
    if (this.headersSent) throw Object.assign(new Error('response head already sent'), { code: 'ERR_HTTP_HEADERS_SENT' });
    this.statusCode = status;
    if (Array.isArray(headers)) for (let i = 0; i < headers.length; i += 2) checkHeader(headers[i]!, headers[i + 1]!);
    else if (headers) for (const name in headers) for (const v of [headers[name as keyof typeof headers]].flat()) checkHeader(name, String(v));
    this.#given = headers ?? null;
    this.headersSent = true;
    return this;
  }

  /**
   * A head relayed from an upstream answer: `raw` as responseHeadersRaw (./headers.ts) left it, from llhttp in
   * strict mode, which has already refused any name that is not a token and any value with a control character
   * (CR, LF, NUL, DEL and the rest, HTAB aside); so unlike writeHead, nothing is checked again.
   */
  relayHead(status: number, raw: readonly string[]): this {
    if (this.headersSent) throw Object.assign(new Error('response head already sent'), { code: 'ERR_HTTP_HEADERS_SENT' });
    this.statusCode = status;
    this.#given = raw;
    this.headersSent = true;
    return this;
  }

  #writeHead(endLength: number): string {
    if (!this.headersSent) this.writeHead(this.statusCode);
    this.#head = true;
    const req = this.#req;
    const status = this.statusCode;
    let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    let seen = 0;
    // RFC 9110 §8.6, §6.4.1: no Content-Length or Transfer-Encoding in a 204 or 1xx (an app's would go on as is).
    const unframed = status === 204 || status < 200 ? CONTENT_LENGTH | TRANSFER_ENCODING : 0;
    const given = this.#given;
    if (this.#set) {
      for (const name in this.#set) {
        if (givenHas(given, name)) continue; // as with node, writeHead's value wins over setHeader's
        const f = framing(name);
        if ((f & unframed) !== 0) continue;
        head += `${name}: ${this.#set[name]!}\r\n`;
        seen |= f;
      }
    }
    if (Array.isArray(given)) {
      for (let i = 0; i < given.length; i += 2) {
        const f = framing(given[i]!);
        if ((f & unframed) !== 0) continue;
        head += `${given[i]!}: ${given[i + 1]!}\r\n`;
        seen |= f;
      }
    } else if (given) {
      for (const name in given) {
        const f = framing(name);
        if ((f & unframed) !== 0) continue;
        const v = (given as Record<string, HeaderValue>)[name]!;
        if (typeof v === 'object') for (const x of v) head += `${name}: ${x}\r\n`;
        else head += `${name}: ${v}\r\n`;
        seen |= f;
      }
    }
    const length = (seen & CONTENT_LENGTH) !== 0;
    const te = (seen & TRANSFER_ENCODING) !== 0;
    const date = (seen & DATE) !== 0;
    this.#noBody = req.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
    const owner = this.#owner;
    if (te) this.#chunked = true;
    else if (!length && !this.#noBody) {
      if (endLength >= 0) head += `content-length: ${endLength}\r\n`;
      else if (req.httpVersionMinor === 1) {
        head += 'transfer-encoding: chunked\r\n';
        this.#chunked = true;
      } else owner.keepAlive = false; // an HTTP/1.0 client: the body ends with the connection
    }
    if (!date) head += `date: ${httpDate()}\r\n`;
    if (!owner.keepAlive) head += 'connection: close\r\n';
    else if (req.httpVersionMinor === 0) head += 'connection: keep-alive\r\n';
    return `${head}\r\n`;
  }

  write(chunk: Buffer | string): boolean {
    if (this.#ended) throw Object.assign(new Error('write after end'), { code: 'ERR_STREAM_WRITE_AFTER_END' });
    const socket = this.#owner.socket;
    if (this.#closed || socket.destroyed) return true; // the client is gone: what is left is dropped
    const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (!this.#head) {
      const head = this.#writeHead(-1);
      const text = this.#noBody || this.#chunked || length === 0 ? null : smallLatin1(chunk, length);
      if (text !== null) return socket.write(head + text, 'latin1');
      socket.write(head, 'latin1');
    }
    if (this.#noBody) return true;
    if (length === 0) return true;
    if (!this.#chunked) return socket.write(chunk);
    socket.write(`${length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    return socket.write('\r\n', 'latin1');
  }

  end(chunk?: Buffer | string): void {
    if (this.#ended) return;
    const socket = this.#owner.socket;
    if (!this.#closed && !socket.destroyed) {
      if (!this.#head) {
        const length = chunk === undefined ? 0 : typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
        const head = this.#writeHead(length);
        if (chunk !== undefined && length > 0 && !this.#noBody && !this.#chunked) {
          const text = smallLatin1(chunk, length);
          if (text !== null) socket.write(head + text, 'latin1');
          else {
            socket.cork();
            socket.write(head, 'latin1');
            socket.write(chunk);
            socket.uncork();
          }
        } else {
          socket.write(head, 'latin1');
          if (chunk !== undefined && length > 0 && this.#chunked) this.write(chunk);
        }
      } else if (chunk !== undefined) this.write(chunk);
      if (this.#chunked && !this.#noBody) socket.write('0\r\n\r\n', 'latin1');
    }
    this.#ended = true;
    this.#finish();
  }

  /** Called once when the response is over, before 'close' (a relay's abort: a no-op if its exchange is done). */
  onClose: (() => void) | null = null;

  /**
   * Told the status and the mesh's reason (x-weft-reason, if the mesh answered itself) when the response is over:
   * the request's telemetry. A field rather than a 'close' listener, which cost a closure per request.
   */
  observation: { end(outcome: { status: number; reason?: string }): void } | null = null;

  /** The response is over: sent in full, cut short, or its connection closed under it. */
  get closed(): boolean {
    return this.#closed;
  }

  cork(): void {
    this.#owner.socket.cork();
  }

  uncork(): void {
    this.#owner.socket.uncork();
  }

  /** Closes the connection (a response cut short, or never begun). */
  destroy(_err?: Error): void {
    this.#owner.keepAlive = false;
    this.#owner.socket.destroy();
    this.#finish();
  }

  /** The connection closed under this response. */
  abandon(): void {
    this.#finish();
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    // What the caller got, read before the abort hook runs (what it sets on a closed response reached no one):
    // a response closed before its head is status 0, no answer, as a caller that gave up sees it.
    const status = this.headersSent ? this.statusCode : 0;
    const reason = this.headersSent ? this.#set?.[REASON_HEADER] : undefined;
    this.#owner.responseDone(this);
    const onClose = this.onClose;
    if (onClose) {
      this.onClose = null;
      onClose();
    }
    this.observation?.end({ status, reason });
    this.emit('close');
  }
}
