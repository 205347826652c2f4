// Forwarding one HTTP/2 stream (a gRPC call, unary or streaming) to another HTTP/2 session, trailers included.

import type * as http2 from 'node:http2';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { REASON_HEADER } from './headers.ts';
import type { ReplayableBody } from './replayable-body.ts';
import { StreamRelay } from './stream-relay.ts';
import { cancelStream } from './h2-cancel.ts';
import { h2ResponseHeaders, h2Trailers } from './h2-headers.ts';
import { GRPC_DEADLINE_EXCEEDED, GRPC_UNAVAILABLE, grpcMessage, meshGrpcStatus } from './grpc-status.ts';

// node:http2's constants, spelled out so that this module does not load node:http2 (see ./node-http.ts).
const HTTP2_HEADER_STATUS = ':status';
const NGHTTP2_NO_ERROR = 0;
const NGHTTP2_INTERNAL_ERROR = 2;
const NGHTTP2_REFUSED_STREAM = 7;
const NGHTTP2_CANCEL = 8;
const NGHTTP2_FLAG_END_STREAM = 1;

function ignore(): void {}

export { h2RequestHeaders } from './h2-headers.ts';

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
  /** the answer is the local app's: its x-weft-* headers and trailers are dropped, as only the mesh speaks in them */
  readonly fromApp?: boolean;
}

/**
 * The upstream refused the stream: RST_STREAM with REFUSED_STREAM, or a GOAWAY whose last stream id is below it
 * (nghttp2 closes such a stream with REFUSED_STREAM too). Either way it was never processed (RFC 9113 §8.7), so
 * it may be sent again, whatever its method.
 */
export class RefusedStreamError extends Error {
  readonly code = 'WEFT_H2_REFUSED_STREAM';
}

/** Closes a caller's stream as refused (REFUSED_STREAM): the next hop never processed it, so the caller may send it again. */
export function refuseStream(stream: ServerHttp2Stream): void {
  if (!stream.destroyed) stream.close(NGHTTP2_REFUSED_STREAM);
}

/** Where forwardH2 opens the upstream stream: an HTTP/2 session, or a pool of them (../outbound/h2-pool.ts). */
export interface H2Target {
  request(headers: http2.OutgoingHttpHeaders, options?: http2.ClientSessionRequestOptions): http2.ClientHttp2Stream;
}

/**
 * How a try ended: whether its answer was relayed; whether the per-try timeout cut that answer off; whether the
 * upstream broke it off (reset its stream, or lost its connection, before the answer ended; or, a sidecar, reported
 * that its app did): the caller got what had come and an error, and the endpoint failed, as Envoy counts a reset.
 */
export interface H2Try {
  readonly relayed: boolean;
  readonly timedOut?: boolean;
  readonly broken?: boolean;
}

/**
 * The streams forwardH2 is trying, each with how the mesh takes it over (a route timeout): a try still waiting for
 * its answer is given up (its upstream stream cancelled), an answer being relayed is cut off, unless the upstream
 * has ended it already (it is only being passed on).
 */
const tries = new WeakMap<ServerHttp2Stream, (grpcStatus: number, reason: string, message: string) => void>();

/**
 * Relays `inbound` (a stream a client opened on us) to `session`. Data flows both ways as it comes, so
 * streaming calls stream; response trailers (grpc-status, grpc-message) are passed on; a reset on either side
 * resets the other. Rejects if the upstream fails before answering, so the caller can answer for the mesh.
 * Resolves with whether the answer was relayed: false if `accept` dropped it, or if the caller went away (or was
 * answered by the mesh, a route timeout) first; neither is the upstream's failure.
 */
export function forwardH2(inbound: ServerHttp2Stream, session: H2Target, headers: http2.OutgoingHttpHeaders, opts: ForwardH2Options = {}): Promise<H2Try> {
  return new Promise((resolve, reject) => relayH2(inbound, session, headers, opts, (err, outcome) => (err ? reject(err) : resolve(outcome))));
}

const NOT_RELAYED: H2Try = Object.freeze({ relayed: false });
const RELAYED: H2Try = Object.freeze({ relayed: true });
const TIMED_OUT: H2Try = Object.freeze({ relayed: true, timedOut: true });
const BROKEN: H2Try = Object.freeze({ relayed: true, broken: true });

/**
 * forwardH2 with a callback, called once: for every call's path, where a promise (and the async functions awaiting
 * it) would cost its allocations and microtasks on each call.
 */
export function relayH2(inbound: ServerHttp2Stream, session: H2Target, headers: http2.OutgoingHttpHeaders, opts: ForwardH2Options, done: (err: Error | null, outcome: H2Try) => void): void {
  let over = false;
  const finish = (err: Error | null, outcome: H2Try) => {
    if (over) return;
    over = true;
    done(err, outcome);
  };
  /** waiting for the answer's head; relaying it; or done (failed, dropped, or relayed to its end) */
  let state: 'waiting' | 'relaying' | 'done' = 'waiting';
  let upstream: http2.ClientHttp2Stream;
  try {
    upstream = session.request(headers, { endStream: false });
  } catch (err) {
    finish(err as Error, NOT_RELAYED);
    return;
  }
  const body = opts.body;
  /** the request, relayed to the upstream as it comes (without `body`) */
  let request: StreamRelay | null = null;
  if (body) body.attach(upstream);
  else request = new StreamRelay(inbound, upstream);
  const onInboundClose = () => {
    if (state === 'waiting') {
      // The caller gave up (a reset, a deadline) before any answer: not something to hold against the upstream.
      letGo();
      finish(null, NOT_RELAYED);
    }
    cancelStream(upstream, inbound.rstCode || NGHTTP2_CANCEL);
  };
  inbound.on('close', onInboundClose);
  // A caller's reset with NO_ERROR (node:http2's default for close()) while its request is held back by backpressure
  // leaves the stream closed with unread data, and node:http2 emits 'close' only once that data is read: 'aborted'
  // is the only word of it. The upstream's stream is then closed, which lets the request drain (see 'close' below).
  inbound.on('aborted', onInboundClose);
  if (inbound.listenerCount('error') === 0) inbound.on('error', ignore);
  /** this try is over without an answer for the client: the next try (or the mesh's answer) takes the stream */
  const letGo = () => {
    state = 'done';
    if (timer) clearTimeout(timer);
    tries.delete(inbound);
    body?.detach(upstream);
    request?.stop();
    inbound.off('close', onInboundClose);
    inbound.off('aborted', onInboundClose);
  };
  const fail = (err: Error) => {
    if (state !== 'waiting') return;
    letGo();
    finish(err, NOT_RELAYED);
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
      cancelStream(upstream);
    }, ms);
  };
  /** Whether the answer being relayed is gRPC's: it is cut off with a status in its trailers, not a reset. */
  let grpcAnswer = false;
  /** Ends a streaming answer early: the upstream's stream cancelled, the client's ended for the mesh. */
  const cutOff = (grpcStatus: number, reason: string, message: string, timedOut = false) => {
    if (state !== 'relaying' || complete) return;
    state = 'done';
    if (timer) clearTimeout(timer);
    tries.delete(inbound);
    inbound.off('close', onInboundClose);
    inbound.off('aborted', onInboundClose);
    body?.detach(upstream);
    request?.stop();
    answer?.stop();
    cancelStream(upstream);
    upstreamGone = true;
    if (inbound.destroyed || inbound.closed) {
      // nothing to tell the client
    } else if (grpcAnswer) {
      trailers = { 'grpc-status': String(grpcStatus), 'grpc-message': grpcMessage(`weft: ${message}`), [REASON_HEADER]: reason };
      inbound.end();
    } else inbound.close(NGHTTP2_CANCEL);
    finish(null, timedOut ? TIMED_OUT : RELAYED);
  };
  // The mesh answered the caller (a route timeout): the try goes no further, as Envoy resets the upstream request.
  tries.set(inbound, (grpcStatus, reason, message) => {
    if (state !== 'waiting') return cutOff(grpcStatus, reason, message);
    letGo();
    cancelStream(upstream);
    finish(null, NOT_RELAYED);
  });
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
      cancelStream(upstream);
      finish(null, NOT_RELAYED);
      return;
    }
    state = 'relaying';
    if (inbound.destroyed || inbound.closed || inbound.headersSent) {
      // The mesh answered meanwhile (a route timeout), or the caller went: this answer has nowhere to go. letGo
      // also lets the request drain (a relay paused on this upstream would hold the caller's stream open).
      letGo();
      cancelStream(upstream);
      finish(null, NOT_RELAYED);
      return;
    }
    if (endStream) {
      // A trailers-only answer (how gRPC reports most errors): one header block that also ends the stream.
      if (timer) clearTimeout(timer);
      inbound.respond(h2ResponseHeaders(h, opts.fromApp), { endStream: true });
      complete = answered = true;
      endRequest();
      return;
    }
    // Only the try whose answer is relayed sends the client trailers: this one's, when they come.
    grpcAnswer = String(h['content-type'] ?? '').startsWith('application/grpc');
    inbound.once('wantTrailers', () => {
      inbound.sendTrailers(trailers ?? {});
      answered = true;
      if (upstreamGone) endCall();
      else endRequest();
    });
    inbound.respond(h2ResponseHeaders(h, opts.fromApp), { waitForTrailers: true });
    answer = new StreamRelay(upstream, inbound);
  });
  /** the answer's body, relayed to the client */
  let answer: StreamRelay | null = null;
  let trailers: http2.OutgoingHttpHeaders | null = null;
  /**
   * The upstream has ended its answer (a head that ends the stream, or trailers): it is only being passed on. No
   * timeout cuts it off any more (Envoy's stop at the upstream's end of stream), and a reset after it takes nothing away.
   */
  let complete = false;
  /** the caller has its whole answer (the head that ended it, or the trailers) */
  let answered = false;
  /** the upstream's stream is over: once the caller has its answer, a request still open is ended too */
  let upstreamGone = false;
  /**
   * The upstream may end its stream once it has answered, before all of the request came (a reset with NO_ERROR,
   * RFC 9113 §8.1); so is the caller, else its call never ends. node:http2 submits trailers from a setImmediate
   * (sendTrailers): the reset is queued after them.
   */
  const endCall = () => {
    // Most callers have sent their whole request by now (a unary call always): nothing to end, no immediate.
    if (inbound.readableEnded || inbound.destroyed) return;
    setImmediate(() => {
      if (!inbound.destroyed && !inbound.closed && !inbound.state.remoteClose) inbound.close(NGHTTP2_NO_ERROR);
    });
  };
  /**
   * The caller has its whole answer, so the call is over even if its request is not (gRPC's status ends the RPC). As
   * Envoy does, the upstream's stream is reset, and what the caller still sends is read and dropped ('close' below),
   * not left waiting on an upstream that may never read it. CANCEL: node:http2 holds a NO_ERROR reset back until the
   * request's buffered data has been written, which such an upstream never lets happen.
   */
  const endRequest = () => {
    if (!upstream.writableFinished) cancelStream(upstream);
  };
  upstream.on('trailers', (t) => {
    if (state !== 'relaying') return;
    trailers = h2Trailers(t, opts.fromApp);
    complete = true;
    if (timer) clearTimeout(timer);
  });
  upstream.on('error', (err) => fail(upstream.rstCode === NGHTTP2_REFUSED_STREAM ? new RefusedStreamError('the upstream refused the stream without processing it (REFUSED_STREAM)', { cause: err }) : err));
  upstream.on('close', () => {
    if (state === 'waiting') {
      // Closed with no answer and no error (an RST_STREAM with NO_ERROR, or the session went away).
      fail(Object.assign(new Error(`the upstream closed the stream without answering (code ${upstream.rstCode})`), { code: 'ERR_HTTP2_STREAM_ERROR' }));
      return;
    }
    if (state !== 'relaying') return;
    state = 'done';
    if (timer) clearTimeout(timer);
    tries.delete(inbound);
    // Nothing more of the request can go upstream: what the caller still sends is read and dropped. A relay left
    // paused on the upstream's backpressure would never read it, and node:http2 would never close the caller's stream.
    body?.detach(upstream);
    request?.stop();
    const code = upstream.rstCode ?? NGHTTP2_NO_ERROR;
    // A gRPC answer is whole only once it has ended (trailers, or a trailers-only head), whatever reset follows; any
    // other once its end has been relayed (`answered`: the reset is then endRequest's own CANCEL of a request the
    // app no longer wanted), or unless the upstream reset it with an error.
    const whole = complete || (!grpcAnswer && (answered || code === NGHTTP2_NO_ERROR));
    upstreamGone = true;
    if (inbound.destroyed || inbound.closed) {
      // the caller went first (its reset was passed upstream): nothing to tell it
    } else if (whole) {
      if (answered) endCall();
      // The next hop's sidecar ended the answer for an app that reset its stream mid-answer (see below).
      if (trailers?.[REASON_HEADER] === 'upstream-reset') return finish(null, BROKEN);
    } else if (grpcAnswer && !inbound.sentTrailers) {
      // The upstream failed mid-answer (its connection died, or it reset the stream). The caller did not cancel,
      // so it is not told CANCEL (gRPC's CANCELLED): the answer ends with UNAVAILABLE, as gRPC reports a lost peer.
      answer?.stop();
      trailers = { 'grpc-status': String(GRPC_UNAVAILABLE), 'grpc-message': grpcMessage(`weft: the upstream reset the stream before its answer ended (code ${code})`), [REASON_HEADER]: 'upstream-reset' };
      if (!inbound.writableEnded) inbound.end();
      return finish(null, BROKEN);
    } else {
      inbound.close(NGHTTP2_INTERNAL_ERROR);
      return finish(null, BROKEN);
    }
    finish(null, RELAYED);
  });
}

/**
 * A mesh answer on an HTTP/2 stream; for gRPC callers the status is also given as a gRPC status. A try still
 * waiting for its answer on the stream is given up; on a stream whose answer is already being relayed (a route
 * timeout during a streaming answer), the answer is cut off: a gRPC one ends with the status in its trailers, any
 * other is reset.
 */
export function meshReplyH2(stream: ServerHttp2Stream, status: number, reason: string, message: string, grpc: boolean, extra: Record<string, string> = {}): void {
  const takeOver = tries.get(stream);
  // closed but not destroyed: reset by the caller, its unread data not drained yet; respond() would throw.
  if (stream.destroyed || stream.closed || stream.headersSent) {
    if (takeOver) takeOver(meshGrpcStatus(status), reason, message);
    else stream.close(NGHTTP2_CANCEL);
    return;
  }
  if (grpc) {
    // gRPC clients read trailers-only responses.
    stream.respond({ [HTTP2_HEADER_STATUS]: 200, 'content-type': 'application/grpc', 'grpc-status': String(meshGrpcStatus(status)), 'grpc-message': grpcMessage(`weft: ${message}`), [REASON_HEADER]: reason, ...extra }, { endStream: true });
  } else {
    stream.respond({ [HTTP2_HEADER_STATUS]: status, 'content-type': 'text/plain; charset=utf-8', [REASON_HEADER]: reason, ...extra });
    stream.end(`weft: ${message}\n`);
  }
  // A try still waiting for its answer is given up.
  takeOver?.(meshGrpcStatus(status), reason, message);
}
