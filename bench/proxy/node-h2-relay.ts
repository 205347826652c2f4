// Node's HTTP/2 floor: the two hops of a sidecar pair carrying gRPC, done by the least node:http2 can do.
//
// `client FRONT TLS_PORT DIR`: h2c in on FRONT; each stream relayed on one HTTP/2 session over mTLS (ALPN h2) to
// TLS_PORT. `server TLS_PORT APP DIR`: HTTP/2 over mTLS in (client certificate required); each stream relayed on
// one h2c session to APP. Headers copied, bodies piped both ways, trailers passed on; no routing, policy,
// telemetry, retries, timeouts or identity checks. DIR holds haproxy's files (bundle.pem, client.pem, server.pem).
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { join } from 'node:path';

const [mode, a, b, dir] = process.argv.slice(2);
const read = (f: string) => readFileSync(join(dir!, f), 'utf8');
const ca = read('bundle.pem');

/** One session upstream, opened again if it closed (the other side may start after this one). */
function relayTo(connect: () => http2.ClientHttp2Session) {
  let session: http2.ClientHttp2Session | null = null;
  return (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.on('error', () => {});
    if (!session || session.closed || session.destroyed) {
      session = connect();
      session.on('error', (err) => console.error(err.message));
    }
    const upstream = session;
    const out: http2.OutgoingHttpHeaders = {};
    for (const k in headers) if (k !== ':scheme' && k !== ':authority') out[k] = headers[k];
    const req = upstream.request(out, { endStream: false });
    stream.pipe(req);
    let trailers: http2.OutgoingHttpHeaders = {};
    stream.on('close', () => !req.closed && req.close(http2.constants.NGHTTP2_CANCEL));
    req.on('response', (h) => {
      if (stream.destroyed) return; // the caller went (h2load resets what is in flight when it stops)
      const head: http2.OutgoingHttpHeaders = {};
      for (const k in h) head[k] = h[k];
      stream.respond(head, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers(trailers));
      req.pipe(stream);
    });
    req.on('trailers', (t) => {
      trailers = {};
      for (const k in t) if (!k.startsWith(':')) trailers[k] = t[k] as string;
    });
    req.on('error', () => !stream.destroyed && stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  };
}

if (mode === 'client') {
  const pem = read('client.pem');
  const connect = () => http2.connect(`https://127.0.0.1:${b}`, { cert: pem, key: pem, ca, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
  http2.createServer({ settings: { maxConcurrentStreams: 256 } }).on('stream', relayTo(connect)).listen(Number(a), '127.0.0.1');
} else {
  const pem = read('server.pem');
  const connect = () => http2.connect(`http://127.0.0.1:${b}`);
  http2.createSecureServer({ cert: pem, key: pem, ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', settings: { maxConcurrentStreams: 256 } }).on('stream', relayTo(connect)).listen(Number(a), '127.0.0.1');
}
