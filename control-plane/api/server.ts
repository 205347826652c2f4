// The control plane's HTTPS server: HTTP/2 and HTTP/1.1 on one TLS 1.3 port, client certificates asked for but
// checked by each handler (a bootstrapping sidecar has none yet).

import { constants as cryptoConstants } from 'node:crypto';
import http2 from 'node:http2';

export function controlPlaneServer(own: { key: string; cert: string; ca: string }, handler: Parameters<typeof http2.createSecureServer>[1], idleTimeoutMs: number): http2.Http2SecureServer {
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
  server.setTimeout(idleTimeoutMs);
  server.on('timeout', (idle: { destroy(): void }) => idle.destroy());
  return server;
}
