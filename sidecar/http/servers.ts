// The HTTP servers both listeners hand connections to, hardened the same way, and the request-head checks
// both make before anything else: one place for the limits a request must stay within.

import { http2 } from './node-http.ts';
import type { Http2Server, Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { answerClientError } from './client-error.ts';
import { REASON_HEADER } from './headers.ts';
import { hostHeaders } from './h1-proxy.ts';
import { meshReply } from './mesh-reply.ts';
import type { H1Request, H1Response } from './h1-message.ts';
import { H1Server } from './h1-server.ts';
import { H2StreamIdle } from './stream-idle.ts';

/** At most this many request headers; more is answered 431. */
export const MAX_HEADERS = 100;

/**
 * An HTTP/1 server fed with connected sockets (serve). Slowloris bounds: a head within 10 s, a request within
 * 5 min; heads over 16 KiB are 431; parser-refused requests get a 400/431 with the mesh's reason
 * (client-error.ts); idle keep-alive connections close after 60 s; an exchange with no byte moving for
 * `streamIdleTimeoutMs()` is ended (./stream-idle.ts; an upgraded connection, once handed over, is not).
 */
export function hardenedH1Server(onRequest: (req: H1Request, res: H1Response) => void, onUpgrade: (req: H1Request, socket: Socket, head: Buffer) => void, streamIdleTimeoutMs: () => number = () => 0): H1Server {
  return new H1Server({ headersTimeoutMs: 10_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 60_000, maxHeaderSize: 16 * 1024, streamIdleTimeoutMs }, onRequest, onUpgrade, answerClientError);
}

/** Streams a peer may have open on one HTTP/2 session; a caller's pool opens another session past it (../outbound/h2-pool.ts). */
export const MAX_CONCURRENT_STREAMS = 256;

/** How long an HTTP/2 session with no stream open may stay, as an HTTP/1 keep-alive connection may. */
export const H2_IDLE_MS = 60_000;

/** What a stream handler may return: called once, when its stream has closed. */
export type OnStreamClose = () => void;

/**
 * An HTTP/2 server fed by emit('connection'): bounded concurrent streams and header lists, and sessions with no
 * stream open closed (GOAWAY) after `idleMs` without a frame: else a client that sends the preface and nothing more
 * holds its connection for ever. `onStream` gets each stream, and may return what to do when it closes. A stream
 * open keeps its session; one with no byte moving for `streamIdleTimeoutMs()` (a gRPC watch that stays quiet too)
 * is ended (./stream-idle.ts).
 */
export function hardenedH2Server(onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => OnStreamClose | void, idleMs = H2_IDLE_MS, streamIdleTimeoutMs: () => number = () => 0): Http2Server {
  const server = http2().createServer({ settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, maxHeaderListSize: 64 * 1024 } });
  const quiet = new H2StreamIdle(streamIdleTimeoutMs);
  server.on('sessionError', () => {});
  server.on('session', (session) => {
    let open = 0;
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      open++;
      const watched = quiet.watch(stream, headers);
      let onClose: unknown = undefined;
      // One 'close' listener per stream, for the server and the handler both: each listener costs a closure and a
      // pass through node:http2's 'newListener' hook, on every call. (A handler written as an arrow may return
      // whatever its expression gives: only a function is called.)
      stream.once('close', () => {
        open--;
        quiet.forget(watched);
        if (typeof onClose === 'function') onClose();
      });
      onClose = onStream(stream, headers);
    });
    // node's session timer restarts on every frame, a stream's end included. (A listener, not setTimeout's
    // callback, which is called once: a timeout while a stream was open must not end the watch.)
    session.setTimeout(idleMs);
    session.on('timeout', () => {
      if (open === 0) session.close();
    });
  });
  return server;
}

/**
 * The opaque data of a draining sidecar's GOAWAY: callers then send new calls to other endpoints for a while. Any
 * other GOAWAY (a session closed for being idle) only closes that session.
 */
export const DRAINING_GOAWAY = Buffer.from('weft: draining');

/**
 * Asks an HTTP/2 peer to open no more streams (a sidecar draining) without refusing any it has already sent, as
 * RFC 9113 §6.8 advises: a GOAWAY naming the highest stream ID, then, once a PING has come back (every stream the
 * peer opened before it read the GOAWAY has arrived), the final GOAWAY. Streams in flight finish; then it closes.
 */
export function goAway(session: Http2Session): void {
  if (session.closed || session.destroyed) return;
  session.goaway(0, 2 ** 31 - 1, DRAINING_GOAWAY);
  const close = () => session.close();
  if (!session.ping(close)) close();
}

/** Why a request head is refused: too many headers, or more than one Host; null if it is not. */
function ambiguousHead(req: H1Request): { status: number; message: string } | null {
  if (req.rawHeaders.length / 2 > MAX_HEADERS) return { status: 431, message: `more than ${MAX_HEADERS} request headers` };
  // Which Host counts differs between servers: refuse rather than guess (request smuggling).
  if (hostHeaders(req.rawHeaders) > 1) return { status: 400, message: 'more than one Host header' };
  return null;
}

/** Refuses (and answers) a head with too many headers or more than one Host; true if it did. */
export function refuseAmbiguousHead(req: H1Request, res: H1Response): boolean {
  const refused = ambiguousHead(req);
  if (refused) meshReply(res, refused.status, 'bad-request', refused.message);
  return refused !== null;
}

/**
 * Refuses (answers and closes) an Upgrade request that must not be tunnelled; true if it did. Besides the checks
 * every head gets: `Upgrade: h2c` is never honoured (DESIGN.md: HTTP/2 between sidecars is negotiated by ALPN,
 * and an h2c switch would take the connection out of the HTTP/1 parser that authorizes each request), and an
 * upgrade with a body is refused: its bytes would reach the app ahead of the switch, where an app that does not
 * switch would read them as a request nobody authorized.
 */
export function refuseUpgrade(req: H1Request, socket: Socket): boolean {
  let refused = ambiguousHead(req);
  const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
  if (!refused && upgrade.split(',').some((p) => p.trim() === 'h2c')) refused = { status: 400, message: 'Upgrade: h2c is not honoured; speak HTTP/2 to the sidecar directly' };
  const cl = req.headers['content-length'];
  if (!refused && (req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0'))) refused = { status: 400, message: 'an Upgrade request with a body' };
  if (!refused) return false;
  answerOnSocket(socket, refused.status, 'bad-request', refused.message);
  return true;
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 431: 'Request Header Fields Too Large', 502: 'Bad Gateway', 503: 'Service Unavailable' };

/** A mesh answer written straight to a connection taken out of the HTTP server (an upgrade), which it then ends. */
export function answerOnSocket(socket: Socket, status: number, reason: string, message = '', extra: Record<string, string> = {}): void {
  const body = message ? `weft: ${message}\n` : '';
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Mesh'}\r\n${REASON_HEADER}: ${reason}\r\n`;
  for (const name in extra) head += `${name}: ${extra[name]}\r\n`;
  socket.end(`${head}content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}
