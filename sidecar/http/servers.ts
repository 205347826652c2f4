// The HTTP servers both listeners hand connections to, hardened the same way, and the request-head checks
// both make before anything else: one place for the limits a request must stay within.

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { http, http2 } from './node-http.ts';
import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { answerClientError } from './client-error.ts';
import { hostHeaders } from './h1-proxy.ts';
import { meshReply } from './mesh-reply.ts';

/** At most this many request headers; more is answered 431. */
export const MAX_HEADERS = 100;

/**
 * An HTTP/1 server fed by emit('connection'). Slowloris bounds: a head within 10 s, a request within 5 min;
 * heads over 16 KiB are 431; parser-refused requests get a 400/431 with the mesh's reason (client-error.ts).
 */
export function hardenedH1Server(onRequest: (req: IncomingMessage, res: ServerResponse) => void, onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): Server {
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 300_000, keepAliveTimeout: 60_000, maxHeaderSize: 16 * 1024, connectionsCheckingInterval: 1000 }, onRequest);
  // node keeps only maxHeadersCount headers; one more than the limit is how "too many" shows.
  server.maxHeadersCount = MAX_HEADERS + 1;
  server.on('upgrade', onUpgrade);
  server.on('clientError', answerClientError);
  // Connections reach this server by emit('connection'), never by listen(); node starts tracking them (and so
  // enforcing headersTimeout/requestTimeout, and closeIdleConnections on drain) only on 'listening'.
  server.emit('listening');
  return server;
}

/** An HTTP/2 server fed by emit('connection'): bounded concurrent streams and header lists. */
export function hardenedH2Server(onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void): Http2Server {
  const server = http2().createServer({ settings: { maxConcurrentStreams: 256, maxHeaderListSize: 64 * 1024 } });
  server.on('stream', onStream);
  server.on('sessionError', () => {});
  return server;
}

/** Refuses (and answers) a head with too many headers or more than one Host; true if it did. */
export function refuseAmbiguousHead(req: IncomingMessage, res: ServerResponse): boolean {
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
