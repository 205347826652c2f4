// The control plane's HTTPS server: HTTP/2 and HTTP/1.1 on one TLS 1.3 port, client certificates asked for but
// checked by each handler (a bootstrapping sidecar has none yet).

import { constants as cryptoConstants } from 'node:crypto';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { ConnectionCap } from '../../connection-cap.ts';

export interface ServerLimits {
  /** a connection with nothing going on for this long is closed */
  readonly idleTimeoutMs: number;
  /** open connections from one address; more are closed at once */
  readonly maxConnectionsPerClient: number;
  readonly log: (event: Record<string, unknown>) => void;
}

/** How long an idle HTTP/1.1 connection is kept for the client's next call. */
export const KEEP_ALIVE_MS = 30_000;

export function controlPlaneServer(own: { key: string; cert: string; ca: string }, handler: Parameters<typeof http2.createSecureServer>[1], limits: ServerLimits): http2.Http2SecureServer {
  const server = http2.createSecureServer({
    key: own.key,
    cert: own.cert,
    ca: own.ca,
    // Client certificates are optional at the TLS layer (a bootstrapping sidecar has none yet); every
    // handler that needs one checks it was sent and verified.
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3',
    allowHTTP1: true,
    handshakeTimeout: 10_000,
    // No TLS session resumption: a resumed session skips the certificate's verification, expiry included.
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
    sessionTimeout: 0,
    settings: { maxConcurrentStreams: 64, maxHeaderListSize: 16 * 1024 },
  }, handler);
  server.on('tlsClientError', () => {});
  // A connection that does nothing is closed, so that idle ones (anyone can complete a handshake: a sidecar
  // bootstraps without a certificate) cannot pile up until the process runs out of file descriptors. A
  // sidecar's stream writes a keepalive every few seconds and its heartbeats keep their connection busy.
  server.setTimeout(limits.idleTimeoutMs);
  server.on('timeout', (idle: { destroy(): void }) => idle.destroy());
  // An HTTP/1.1 connection is kept between calls for longer than a sidecar's heartbeat period (5 s). Node's
  // default of 5 s, which its client agent shortens to 4 from the Keep-Alive header, closed it before every
  // heartbeat: each one was a new mTLS handshake with the control plane.
  // (Node's HTTP/1.1 fallback reads it from the HTTP/2 server; its types do not declare it.)
  (server as unknown as { keepAliveTimeout: number }).keepAliveTimeout = Math.min(KEEP_ALIVE_MS, limits.idleTimeoutMs);
  // Node's HTTP/1.1 requestTimeout (300 s) would cut a sidecar's full-duplex stream, whose request body lasts as
  // long as the stream, with a 408. Off; bodies have their own deadline instead (readBody in ./http.ts), and a
  // stream's lines are watched by the sidecar sweep. The head must still arrive within 60 s (headersTimeout).
  Object.assign(server, { requestTimeout: 0, headersTimeout: 60_000 });
  capPerClient(server, limits);
  return server;
}

/**
 * At most maxConnectionsPerClient open connections from one address (../../connection-cap.ts): the idle timeout
 * alone does not stop one client from holding every file descriptor the process may open.
 */
function capPerClient(server: http2.Http2SecureServer, limits: ServerLimits): void {
  const cap = new ConnectionCap({
    limit: limits.maxConnectionsPerClient,
    onOverLimit: (client, limit) => limits.log({ msg: 'refusing connections from a client over its limit', client, limit }),
  });
  server.on('connection', (socket: Socket) => cap.admit(socket));
}
