// The HTTP servers both listeners hand connections to, hardened the same way, and the request-head checks
// both make before anything else: one place for the limits a request must stay within.

import { http2 } from './node-http.ts';
import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { answerClientError } from './client-error.ts';
import { hostHeaders } from './h1-proxy.ts';
import { meshReply } from './mesh-reply.ts';
import type { H1Request, H1Response } from './h1-message.ts';
import { H1Server } from './h1-server.ts';

/** At most this many request headers; more is answered 431. */
export const MAX_HEADERS = 100;

/**
 * An HTTP/1 server fed with connected sockets (serve). Slowloris bounds: a head within 10 s, a request within
 * 5 min; heads over 16 KiB are 431; parser-refused requests get a 400/431 with the mesh's reason
 * (client-error.ts); idle keep-alive connections close after 60 s.
 */
export function hardenedH1Server(onRequest: (req: H1Request, res: H1Response) => void, onUpgrade: (req: H1Request, socket: Socket, head: Buffer) => void): H1Server {
  return new H1Server({ headersTimeoutMs: 10_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 60_000, maxHeaderSize: 16 * 1024 }, onRequest, onUpgrade, answerClientError);
}

/** An HTTP/2 server fed by emit('connection'): bounded concurrent streams and header lists. */
export function hardenedH2Server(onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void): Http2Server {
  const server = http2().createServer({ settings: { maxConcurrentStreams: 256, maxHeaderListSize: 64 * 1024 } });
  server.on('stream', onStream);
  server.on('sessionError', () => {});
  return server;
}

/** Refuses (and answers) a head with too many headers or more than one Host; true if it did. */
export function refuseAmbiguousHead(req: H1Request, res: H1Response): boolean {
  if (req.rawHeaders.length / 2 > MAX_HEADERS) {
    meshReply(res, 431, 'bad-request', `more than ${MAX_HEADERS} request headers`);
    return true;
  }
  if (hostHeaders(req.rawHeaders) > 1) {
    // Which Host counts differs between servers: refuse rather than guess (request smuggling).
    meshReply(res, 400, 'bad-request', 'more than one Host header');
    return true;
  }
  return false;
}
