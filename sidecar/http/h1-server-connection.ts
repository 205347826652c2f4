// One connection of the sidecar's HTTP/1 server (./h1-server.ts): llhttp fed from the socket, the requests it
// parses answered one at a time in order, pipelined ones queued, and the connection's timeouts (the stream idle
// timeout's ending is ./stream-idle.ts).

import type { Socket } from 'node:net';
import { refusedHead } from './h1-head-checks.ts';
import { headersObject } from './h1-headers.ts';
import { H1Request, H1Response, RequestBody, type ResponseOwner } from './h1-message.ts';
import type { H1Server } from './h1-server.ts';
import { HTTPParser, kOnBody, kOnHeaders, kOnHeadersComplete, kOnMessageBegin, kOnMessageComplete, METHOD_NAMES } from './llhttp.ts';
import { ParserFeed } from './parser-feed.ts';
import { endQuietH1, QuietClock } from './stream-idle.ts';

/** Parsed requests waiting behind the one being answered; more, and the socket stops being read. */
const MAX_QUEUED = 16;
/** A body nobody read (the answer came first) is read and dropped up to this much; past it the connection closes. */
const MAX_DUMP = 1 << 20;
/** See H1ServerOptions.sendTimeoutMs. */
const SEND_TIMEOUT_MS = 60_000;
/** Body chunks smaller than this are joined before they are pushed to the body stream (see #onBody). */
const HOLD_BYTES = 16 * 1024;

export class ServerConnection implements ResponseOwner {
  readonly socket: Socket;
  keepAlive = true;
  readonly #server: H1Server;
  readonly #feed: ParserFeed;
  /** the request whose head is parsed and whose body is still being read */
  #current: H1Request | null = null;
  readonly #queue: H1Request[] = [];
  #active: H1Response | null = null;
  #activeReq: H1Request | null = null;
  #upgrade: H1Request | null = null;
  /** tick at which a head began to arrive, -1 between requests */
  #headTick = -1;
  #requestTick = 0;
  #idleTick: number;
  #rawHeaders: string[] = [];
  #url = '';
  #dumped = 0;
  /** the current request was answered before its body was read: the rest is read and dropped */
  #dumping = false;
  /** the current request was answered before its body was all in (read and dropped, or still relayed): no second answer */
  #answeredEarly = false;
  #queuePaused = false;
  /** nothing more is read: a refused request, an upgrade handed over, or the socket closed */
  #done = false;
  /** tick at which the response's writes were first seen waiting for the caller to read; -1 when they are not */
  #blockedTick = -1;
  /** body chunks of this read not pushed yet (see #onBody) */
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** the stream idle timeout's view of the connection's byte counters */
  readonly #quiet: QuietClock;

  constructor(server: H1Server, socket: Socket) {
    this.#server = server;
    this.socket = socket;
    this.#idleTick = server.tick;
    this.#quiet = new QuietClock(server.tick);
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, {}, server.options.maxHeaderSize, HTTPParser.kLenientNone);
    // The head timer runs from a request's first byte to the end of its head.
    parser[kOnMessageBegin] = () => {
      this.#headTick = this.#server.tick;
    };
    parser[kOnHeaders] = (headers: string[], url: string) => {
      if (this.#current) return; // trailers: not forwarded
      for (let i = 0; i < headers.length; i++) this.#rawHeaders.push(headers[i]!);
      this.#url += url;
    };
    parser[kOnHeadersComplete] = (major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean) =>
      this.#onHead(major, minor, headers, method, url, upgrade, keepAlive);
    parser[kOnBody] = (chunk: Buffer) => this.#onBody(chunk);
    parser[kOnMessageComplete] = () => this.#onComplete();
    this.#feed = new ParserFeed(socket, parser, this.#onExecute);
    socket.on('drain', () => {
      this.#blockedTick = -1;
      this.#active?.emit('drain');
    });
    socket.on('error', () => {});
    socket.on('end', () => {
      if (!this.#active && !this.#upgrade) socket.destroy();
    });
    socket.on('close', () => this.#onClose());
  }

  #onExecute = (r: number | Error, bytes: () => Buffer): void => {
    if (this.#held.length) this.#pushHeld();
    if (this.#done) return;
    if (r instanceof Error) {
      this.#refuse(r as Error & { code?: string });
      return;
    }
    const up = this.#upgrade;
    if (up) {
      this.#done = true;
      const rest = bytes().subarray(r);
      this.#detach();
      this.#server.onUpgrade(up, this.socket, rest);
    }
  };

  #onHead(major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    if (this.#done) return 0;
    let raw = this.#rawHeaders;
    if (headers && headers.length) {
      if (raw.length) for (let i = 0; i < headers.length; i++) raw.push(headers[i]!);
      else raw = headers;
    }
    if (raw === this.#rawHeaders) this.#rawHeaders = []; // it now belongs to the request
    const target = url || this.#url;
    this.#url = '';
    this.#headTick = -1;
    this.#requestTick = this.#server.tick;
    const h = headersObject(raw);
    const refused = refusedHead(major, minor, h, method);
    if (refused) {
      this.#refuse(refused);
      return 0;
    }
    const cl = h['content-length'];
    const hasBody = !upgrade && (h['transfer-encoding'] !== undefined || (cl !== undefined && Number(cl) > 0));
    const name = METHOD_NAMES[method]!;
    const req = new H1Request(name, target, raw, h, minor, this.socket, hasBody ? new RequestBody(this.#resumeBody) : null);
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing: answered, then the connection closes.
    req.keepAlive = keepAlive && (minor !== 0 || h['transfer-encoding'] === undefined);
    if (upgrade) {
      if (this.#active || this.#queue.length) {
        this.#refuse(Object.assign(new Error('an upgrade pipelined behind another request'), { code: 'HPE_PIPELINED_UPGRADE' }));
        return 0;
      }
      this.#upgrade = req;
      return 2; // llhttp stops at the end of the head; the rest of the bytes belong to the new protocol
    }
    this.#current = req;
    if (this.#active === null && this.#queue.length === 0) this.#dispatch(req);
    else {
      this.#queue.push(req);
      if (this.#queue.length >= MAX_QUEUED && !this.#queuePaused) {
        this.#queuePaused = true;
        this.#feed.pause();
      }
    }
    return 0;
  }

  #onBody(chunk: Buffer): void {
    const req = this.#current;
    if (!req || !req.body) return;
    // A body its reader destroyed (the upstream it was going to is gone) is read and dropped too.
    if (!this.#dumping && !req.body.destroyed) {
      if (this.#heldBytes === 0 && chunk.length >= HOLD_BYTES) {
        if (!req.body.push(chunk)) this.#feed.pause();
        return;
      }
      // Small chunks (a chunked body of 1-byte chunks: ~10,000 in one read) are joined before they are pushed:
      // pushed one by one, each was a Buffer held in the stream and three writes to the next hop, ~13 MB per
      // connection when that hop was slow to read.
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      if (this.#heldBytes >= HOLD_BYTES) this.#pushHeld();
      return;
    }
    this.#dumped += chunk.length;
    if (this.#dumped > MAX_DUMP) this.#close();
  }

  /** Pushes the body chunks held back (at the end of each read, at the body's end, or past HOLD_BYTES) as one. */
  #pushHeld(): void {
    const held = this.#held;
    if (held.length === 0) return;
    const body = this.#current?.body;
    const joined = held.length === 1 ? held[0]! : Buffer.concat(held, this.#heldBytes);
    this.#held = [];
    this.#heldBytes = 0;
    if (body && !body.destroyed && !this.#dumping && !body.push(joined)) this.#feed.pause();
  }

  #onComplete(): void {
    const req = this.#current;
    if (!req) return;
    this.#pushHeld();
    this.#current = null;
    req.complete = true;
    req.body?.push(null);
    this.#dumped = 0;
    this.#dumping = false;
    this.#answeredEarly = false;
    if (this.#active === null) this.#next();
  }

  #resumeBody = (): void => {
    if (!this.#queuePaused && !this.#done) this.#feed.resume();
  };

  #dispatch(req: H1Request): void {
    const res = new H1Response(this, req);
    this.#active = res;
    this.#activeReq = req;
    this.#quiet.restart(this.#server.tick);
    this.keepAlive = req.keepAlive && !this.#server.closing;
    const expect = req.headers.expect;
    if (req.httpVersionMinor === 1 && typeof expect === 'string' && expect.toLowerCase() === '100-continue') this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
    try {
      this.#server.onRequest(req, res);
    } catch {
      res.destroy();
    }
  }

  responseDone(res: H1Response): void {
    if (this.#active !== res) return;
    const req = this.#activeReq!;
    this.#active = null;
    this.#activeReq = null;
    if (this.#done || !this.keepAlive) {
      this.#close();
      return;
    }
    if (!req.complete) {
      // Answered before the body was all in. The next request waits for the body to end (#onComplete). If
      // something is reading it (a relay still sending it upstream: the upstream may answer early), it goes
      // on reading it; if nothing is (a denial, a mesh error), the body is read and dropped (#onBody).
      this.#answeredEarly = true;
      if (!req.body?.beingRead) {
        this.#dumping = true;
        this.#resumeBody();
      }
      return;
    }
    this.#next();
  }

  #next(): void {
    if (this.#done || this.#active) return;
    const req = this.#queue.shift();
    if (req) {
      if (this.#queuePaused && this.#queue.length < MAX_QUEUED / 2) {
        this.#queuePaused = false;
        this.#feed.resume();
      }
      this.#dispatch(req);
      return;
    }
    this.#idleTick = this.#server.tick;
    if (this.#server.closing && this.#current === null) this.#close();
  }

  /** The timeouts, once a second; `streamIdleMs` 0: no stream idle timeout. */
  check(tick: number, streamIdleMs: number): void {
    const o = this.#server.options;
    // A request in progress, or a connection closing (its last answer may wait for a caller that reads nothing).
    if (streamIdleMs > 0 && (this.#active || this.#done) && this.#quiet.quietFor(this.socket.bytesRead + this.socket.bytesWritten, tick, streamIdleMs)) {
      endQuietH1(this, this.#active, streamIdleMs);
      return;
    }
    if (this.#done) {
      // Refused behind a request still coming in: its response may not wait for ever either.
      if (this.#active && this.#activeReq?.complete === false && (tick - this.#requestTick) * 1000 > o.requestTimeoutMs) this.#active.destroy();
      return;
    }
    if (this.#headTick >= 0 && (tick - this.#headTick) * 1000 > o.headersTimeoutMs) {
      this.#refuse(Object.assign(new Error('request head timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }));
    } else if (this.#current && (tick - this.#requestTick) * 1000 > o.requestTimeoutMs) {
      if (this.#active) this.#active.destroy();
      else this.#refuse(Object.assign(new Error('request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }));
    } else if (this.#idle() && (tick - this.#idleTick) * 1000 > o.keepAliveTimeoutMs) {
      this.socket.destroy();
    } else if (this.#active && this.socket.writableNeedDrain) {
      // The caller has stopped reading its answer: the first check that sees it starts the clock, a drain stops it.
      if (this.#blockedTick < 0) this.#blockedTick = tick;
      else if ((tick - this.#blockedTick) * 1000 > (o.sendTimeoutMs ?? SEND_TIMEOUT_MS)) this.#active.destroy();
    }
  }

  closeIfIdle(): void {
    if (this.#idle()) this.#close();
    else this.keepAlive = false; // a response not yet begun says connection: close
  }

  #idle(): boolean {
    return !this.#active && !this.#current && this.#headTick < 0 && this.#queue.length === 0 && !this.#upgrade;
  }

  /** The parser refused what came in: answer it (unless a response is under way or given) and close. */
  #refuse(err: Error & { code?: string }): void {
    if (this.#done) return;
    this.#done = true;
    this.#queue.length = 0;
    const active = this.#active;
    const req = this.#current;
    if (active && req?.body && !req.complete && req === this.#activeReq) {
      // The body being relayed broke its framing (a bad chunk, a coding it cannot read): it would never end, and
      // its relay would hold the caller and a pooled connection to the app for ever. The caller gets the 400 if
      // nothing of an answer has gone yet (else the connection closes under it), and the body's end as an error
      // makes the relay abort its upstream exchange, as Envoy resets the upstream stream on a codec error.
      if (active.headersSent) active.destroy();
      else {
        this.#server.onClientError(err, this.socket);
        active.abandon();
      }
      abortBody(req.body, err);
    } else if (active) this.keepAlive = false;
    else {
      // A request answered before its body was all in gets no second answer: just the close.
      if (!this.#answeredEarly) this.#server.onClientError(err, this.socket);
      this.#close();
    }
  }

  /** Ends the connection once what was written has gone. */
  #close(): void {
    this.#done = true;
    const s = this.socket as Socket & { destroySoon?: () => void };
    if (s.destroySoon) s.destroySoon();
    else s.end();
  }

  #detach(): void {
    // Bytes that arrive before the upgrade handler reads (it may connect somewhere first) wait in the socket.
    this.#feed.detach();
    this.#server.forget(this);
    this.#feed.close();
  }

  #onClose(): void {
    const wasDone = this.#done;
    this.#done = true;
    if (!wasDone || !this.#upgrade) {
      this.#server.forget(this);
      this.#feed.close();
    }
    this.#queue.length = 0;
    const body = this.#current?.body;
    if (body && !body.readableEnded) abortBody(body, Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    this.#current = null;
    this.#active?.abandon();
  }
}

/**
 * Ends a body that will never be whole: with `err` for a reader listening for one. Nothing may be reading it yet (a
 * handler that waits, as a route's fault delay does), and an 'error' with no listener would end the process.
 */
function abortBody(body: RequestBody, err: Error): void {
  if (body.listenerCount('error') > 0) body.destroy(err);
  else body.destroy();
}
