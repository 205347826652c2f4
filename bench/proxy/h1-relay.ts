// The sidecar's HTTP/1 machinery alone, for comparison: the same two hops as a sidecar pair, through Weft's own
// HTTP/1 server (sidecar/http/h1-server.ts), relay (h1-proxy.ts) and keep-alive pools (h1-client.ts), with mTLS
// between the two, but no routing, policy, telemetry or identity check. Set beside the sidecars and a raw byte
// relay (./node-relay.ts) by bench/floor.ts, it splits their cost into HTTP handling and the mesh's own work.
//
// `client FRONT TLS_PORT DIR` and `server TLS_PORT APP DIR`, DIR holding haproxy's certificate files.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { answerClientError } from '../../sidecar/http/client-error.ts';
import { H1Pool } from '../../sidecar/http/h1-client.ts';
import { forwardHeaders } from '../../sidecar/http/headers.ts';
import { relayH1 } from '../../sidecar/http/h1-proxy.ts';
import { H1Server } from '../../sidecar/http/h1-server.ts';

const [mode, a, b, dir] = process.argv.slice(2);
const read = (f: string) => readFileSync(join(dir!, f), 'utf8');
const ca = read('bundle.pem');
const options = { maxHeaderSize: 16 * 1024, headersTimeoutMs: 60_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 60_000 };

function serve(pool: H1Pool, host: string): H1Server {
  return new H1Server(
    options,
    (req, res) => {
      const headers = forwardHeaders(req.headers);
      headers.host = host;
      relayH1(pool, req, res, headers, {}, (err, status) => {
        if (err && status === 0) res.writeHead(503, { 'content-length': '0' }).end();
      });
    },
    (_req, socket) => socket.destroy(),
    answerClientError,
  );
}

if (mode === 'client') {
  const pem = read('client.pem');
  const pool = new H1Pool({
    connections: 1024,
    keepAliveMs: 60_000,
    readyEvent: 'secureConnect',
    connect: () => tls.connect({ host: '127.0.0.1', port: Number(b), cert: pem, key: pem, ca, minVersion: 'TLSv1.3', ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined }),
  });
  const h1 = serve(pool, 'server');
  net.createServer({ noDelay: true }, (socket) => h1.serve(socket)).listen(Number(a), '127.0.0.1');
} else {
  const pem = read('server.pem');
  const pool = new H1Pool({ connections: 1024, keepAliveMs: 60_000, readyEvent: 'connect', connect: () => net.connect(Number(b), '127.0.0.1') });
  const h1 = serve(pool, '127.0.0.1');
  tls.createServer({ cert: pem, key: pem, ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', ALPNProtocols: ['http/1.1'] }, (socket) => {
    socket.setNoDelay(true);
    h1.serve(socket);
  }).listen(Number(a), '127.0.0.1');
}
