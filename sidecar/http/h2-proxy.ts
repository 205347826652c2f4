// Forwarding one HTTP/2 stream (a gRPC call, unary or streaming) to another HTTP/2 session, trailers included.

import type * as http2 from 'node:http2';
import type { ClientHttp2Session, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { REASON_HEADER } from './headers.ts';

// node:http2's constants, spelled out so that this module does not load node:http2 (see ./node-http.ts).
const HTTP2_HEADER_METHOD = ':method';
const HTTP2_HEADER_PATH = ':path';
const HTTP2_HEADER_AUTHORITY = ':authority';
const HTTP2_HEADER_SCHEME = ':scheme';
const HTTP2_HEADER_STATUS = ':status';
const NGHTTP2_NO_ERROR = 0;
const NGHTTP2_CANCEL = 8;
const NGHTTP2_FLAG_END_STREAM = 1;
const GRPC_DEADLINE_EXCEEDED = 4;
const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

/** Request headers for the next hop: pseudo-headers rebuilt, x-weft-* removed, `extra` added. */
export function h2RequestHeaders(incoming: IncomingHttpHeaders, extra: Record<string, string> = {}): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {
    [HTTP2_HEADER_METHOD]: incoming[HTTP2_HEADER_METHOD],
    [HTTP2_HEADER_PATH]: incoming[HTTP2_HEADER_PATH],
    [HTTP2_HEADER_AUTHORITY]: incoming[HTTP2_HEADER_AUTHORITY],
    [HTTP2_HEADER_SCHEME]: 'http',
  };
  for (const [name, value] of Object.entries(incoming)) {
    if (name.startsWith(':') || name.startsWith('x-weft-') || DROP.has(name) || value === undefined) continue;
    out[name] = value;
  }
  return { ...out, ...extra };
}

function responseHeaders(incoming: IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { [HTTP2_HEADER_STATUS]: incoming[HTTP2_HEADER_STATUS] };
  for (const [name, value] of Object.entries(incoming)) {
    if (name.startsWith(':') || DROP.has(name) || value === undefined) continue;
    out[name] = value;
  }
  return out;
}

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

export interface ForwardH2Options {
  /** the request body, when a retry may send it again; without it the client's stream is piped */
  readonly body?: ReplayableBody;
  /** false drops an answer instead of relaying it (a retry follows): given its head and whether it ends there */
  readonly accept?: (headers: IncomingHttpHeaders, endStream: boolean) => boolean;
  /**
   * The per-try timeout, from the request's end to the answer's end (as Envoy's). Before the answer's head it
   * fails the try (a retry may follow); after, the answer is cut off: a gRPC answer ends with DEADLINE_EXCEEDED
   * in its trailers, any other is reset.
   */
  readonly answerTimeoutMs?: number | null;
}

/** How a try ended: whether its answer was relayed, and whether the per-try timeout cut that answer off. */
export interface H2Try {
  readonly relayed: boolean;
  readonly timedOut?: boolean;
}

/** The streams whose answer forwardH2 is relaying, each with how to cut it off for the mesh (a route timeout). */
const relaying = new WeakMap<ServerHttp2Stream, (grpcStatus: number, reason: string, message: string) => void>();

/**
 * Relays `inbound` (a stream a client opened on us) to `session`. Data flows both ways as it comes, so
 * streaming calls stream; response trailers (grpc-status, grpc-message) are passed on; a reset on either side
 * resets the other. Rejects if the upstream fails before answering, so the caller can answer for the mesh.
 * Resolves with whether the answer was relayed: false if `accept` dropped it, or if the caller went away (or was
 * answered by the mesh, a route timeout) first; neither is the upstream's failure.
 */
export function forwardH2(inbound: ServerHttp2Stream, session: ClientHttp2Session, headers: http2.OutgoingHttpHeaders, opts: ForwardH2Options = {}): Promise<H2Try> {
  return new Promise((resolve, reject) => {
    /** waiting for the answer's head; relaying it; or done (failed, dropped, or relayed to its end) */
    let state: 'waiting' | 'relaying' | 'done' = 'waiting';
    let upstream: http2.ClientHttp2Stream;
    try {
      upstream = session.request(headers, { endStream: false });
    } catch (err) {
      reject(err);
      return;
    }
    const body = opts.body;
    if (body) body.attach(upstream);
    else inbound.pipe(upstream);
    const onInboundClose = () => {
      if (state === 'waiting') {
        // The caller gave up (a reset, a deadline) before any answer: not something to hold against the upstream.
        letGo();
        resolve({ relayed: false });
      }
      if (!upstream.closed) upstream.close(inbound.rstCode || NGHTTP2_CANCEL);
    };
    inbound.on('close', onInboundClose);
    if (inbound.listenerCount('error') === 0) inbound.on('error', () => {});
    /** this try is over without an answer for the client: the next try (or the mesh's answer) takes the stream */
    const letGo = () => {
      state = 'done';
      if (timer) clearTimeout(timer);
      body?.detach(upstream);
      inbound.off('close', onInboundClose);
    };
    const fail = (err: Error) => {
      if (state !== 'waiting') return;
      letGo();
      reject(err);
    };
    let timer: NodeJS.Timeout | null = null;
    const startTimer = (ms: number) => {
      if (state === 'done') return;
      timer = setTimeout(() => {
        timer = null;
        if (state === 'relaying') {
          cutOff(GRPC_DEADLINE_EXCEEDED, 'timeout', `the answer did not end within the per-try timeout of ${ms} ms`, true);
          return;
        }
        fail(Object.assign(new Error(`no answer within the per-try timeout of ${ms} ms`), { code: 'WEFT_PER_TRY_TIMEOUT' }));
        upstream.close(NGHTTP2_CANCEL);
      }, ms);
    };
    /** Whether the answer being relayed is gRPC's: it is cut off with a status in its trailers, not a reset. */
    let grpcAnswer = false;
    /** Ends a streaming answer early: the upstream's stream cancelled, the client's ended for the mesh. */
    const cutOff = (grpcStatus: number, reason: string, message: string, timedOut = false) => {
      if (state !== 'relaying') return;
      state = 'done';
      if (timer) clearTimeout(timer);
      relaying.delete(inbound);
      inbound.off('close', onInboundClose);
      body?.detach(upstream);
      upstream.unpipe(inbound);
      upstream.close(NGHTTP2_CANCEL);
      if (inbound.destroyed) {
        // nothing to tell the client
      } else if (grpcAnswer) {
        trailers = { 'grpc-status': String(grpcStatus), 'grpc-message': grpcMessage(`weft: ${message}`), [REASON_HEADER]: reason };
        inbound.end();
      } else inbound.close(NGHTTP2_CANCEL);
      resolve({ relayed: true, timedOut });
    };
    const perTry = opts.answerTimeoutMs;
    if (perTry) {
      if (body) body.whenEnded(() => startTimer(perTry));
      else startTimer(perTry);
    }
    upstream.on('response', (h, flags) => {
      if (state !== 'waiting') return;
      const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
      if (opts.accept && !opts.accept(h, endStream)) {
        letGo();
        upstream.close(NGHTTP2_CANCEL);
        resolve({ relayed: false });
        return;
      }
      state = 'relaying';
      if (inbound.destroyed || inbound.headersSent) {
        // The mesh answered meanwhile (a route timeout): this answer has nowhere to go.
        state = 'done';
        if (timer) clearTimeout(timer);
        upstream.close(NGHTTP2_CANCEL);
        resolve({ relayed: false });
        return;
      }
      if (endStream) {
        // A trailers-only answer (how gRPC reports most errors): one header block that also ends the stream.
        if (timer) clearTimeout(timer);
        inbound.respond(responseHeaders(h), { endStream: true });
        return;
      }
      // Only the try whose answer is relayed sends the client trailers: this one's, when they come.
      grpcAnswer = String(h['content-type'] ?? '').startsWith('application/grpc');
      inbound.once('wantTrailers', () => inbound.sendTrailers(trailers ?? {}));
      inbound.respond(responseHeaders(h), { waitForTrailers: true });
      relaying.set(inbound, cutOff);
      upstream.pipe(inbound);
    });
    let trailers: http2.OutgoingHttpHeaders | null = null;
    upstream.on('trailers', (t) => {
      if (state !== 'relaying') return;
      const out: http2.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(t)) if (!name.startsWith(':') && value !== undefined && value !== null) out[name] = value as string | string[];
      trailers = out;
    });
    upstream.on('error', (err) => fail(err));
    upstream.on('close', () => {
      if (state === 'waiting') {
        // Closed with no answer and no error (an RST_STREAM with NO_ERROR, or the session went away).
        fail(Object.assign(new Error(`the upstream closed the stream without answering (code ${upstream.rstCode})`), { code: 'ERR_HTTP2_STREAM_ERROR' }));
        return;
      }
      if (state !== 'relaying') return;
      state = 'done';
      if (timer) clearTimeout(timer);
      relaying.delete(inbound);
      if (upstream.rstCode && upstream.rstCode !== NGHTTP2_NO_ERROR && !inbound.destroyed) inbound.close(upstream.rstCode);
      resolve({ relayed: true });
    });
  });
}

/**
 * grpc-message is percent-encoded (gRPC over HTTP/2): only '%' and bytes outside printable ASCII. Clients
 * decode exactly that; encodeURIComponent's extra escapes (':', '/', '?', …) would reach the caller as "%3A".
 */
export function grpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The gRPC status a client derives from an HTTP status (grpc/doc/http-grpc-status-mapping.md). */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400: return 13; // INTERNAL
    case 401: return 16; // UNAUTHENTICATED
    case 403: return 7; // PERMISSION_DENIED
    case 404: return 12; // UNIMPLEMENTED
    case 429: case 502: case 503: case 504: return 14; // UNAVAILABLE
    default: return 2; // UNKNOWN
  }
}

/** The gRPC status of a mesh answer: PERMISSION_DENIED (7), DEADLINE_EXCEEDED (4), else UNAVAILABLE (14). */
/**
 * The gRPC status of a mesh answer: gRPC's HTTP-to-gRPC mapping (doc/http-grpc-status-mapping.md), as Envoy's
 * local replies use it (400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, the rest
 * UNAVAILABLE), except a timeout (504), which is DEADLINE_EXCEEDED, as Envoy's router sends for one.
 */
function meshGrpcStatus(status: number): number {
  switch (status) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 504:
      return GRPC_DEADLINE_EXCEEDED;
    default:
      return 14;
  }
}

/**
 * A mesh answer on an HTTP/2 stream; for gRPC callers the status is also given as a gRPC status. On a stream
 * whose answer is already being relayed (a route timeout during a streaming answer), the answer is cut off:
 * a gRPC one ends with the status in its trailers, any other is reset.
 */
export function meshReplyH2(stream: ServerHttp2Stream, status: number, reason: string, message: string, grpc: boolean, extra: Record<string, string> = {}): void {
  if (stream.destroyed || stream.headersSent) {
    const cutOff = relaying.get(stream);
    if (cutOff) cutOff(meshGrpcStatus(status), reason, message);
    else stream.close(NGHTTP2_CANCEL);
    return;
  }
  if (grpc) {
    // gRPC clients read trailers-only responses.
    stream.respond({ [HTTP2_HEADER_STATUS]: 200, 'content-type': 'application/grpc', 'grpc-status': String(meshGrpcStatus(status)), 'grpc-message': grpcMessage(`weft: ${message}`), [REASON_HEADER]: reason, ...extra }, { endStream: true });
    return;
  }
  const body = `weft: ${message}\n`;
  stream.respond({ [HTTP2_HEADER_STATUS]: status, 'content-type': 'text/plain; charset=utf-8', [REASON_HEADER]: reason, ...extra });
  stream.end(body);
}
