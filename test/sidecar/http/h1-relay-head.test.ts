// relayH1's answer head (sidecar/http/h1-proxy.ts, responseHeadersRaw in headers.ts, H1Response.relayHead): what
// an origin answers reaches the caller with its hop-by-hop headers and those its Connection header names dropped,
// every other header as sent (name case, order, repeats), and the framing of the caller's own hop.

import test, { type ExecutionContext } from 'ava';
import { relayH1 } from '../../../sidecar/http/h1-proxy.ts';
import { poolTo, rawOrigin } from '../../helpers/h1-origins.ts';
import { get, h1Server, rawClient } from '../../helpers/h1-server.ts';

async function relayed(t: ExecutionContext, answer: string, end: string): Promise<string> {
  const origin = await rawOrigin(t, (socket) => socket.write(answer, 'latin1'));
  const { pool } = poolTo(t, origin.port);
  const front = await h1Server(t, (req, res) => relayH1(pool, req, res, { host: 'origin' }, {}, () => {}));
  const c = await rawClient(t, front.port);
  c.send(get('/'));
  return c.until((s) => s.endsWith(end), 3000);
}

test('hop-by-hop headers and those named in Connection are dropped, in any case; the rest pass as sent', async (t) => {
  const long = 'X-A-Header-Name-Longer-Than-Thirty-Two';
  const text = await relayed(
    t,
    'HTTP/1.1 200 OK\r\n' +
      'Server: origin\r\n' +
      `CONNECTION: keep-alive, X-Private, ${long.toLowerCase()}\r\n` +
      'Keep-Alive: timeout=5\r\n' +
      'x-private: secret\r\n' +
      `${long}: also named\r\n` +
      'Proxy-Authenticate: Basic\r\n' +
      'Proxy-Connection: keep-alive\r\n' +
      'Trailer: x-t\r\n' +
      'Upgrade: h2c\r\n' +
      'HTTP2-Settings: AAA\r\n' +
      'TE: trailers\r\n' +
      'X-Same-Length-As-Keep: a\r\n' +
      'Set-Cookie: a=1\r\n' +
      'Set-Cookie: b=2\r\n' +
      'Host: kept\r\n' +
      'Content-Length: 5\r\n' +
      '\r\nhello',
    '\r\n\r\nhello',
  );
  t.is(
    text,
    'HTTP/1.1 200 OK\r\nServer: origin\r\nX-Same-Length-As-Keep: a\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nHost: kept\r\nContent-Length: 5\r\ndate: D\r\n\r\nhello',
  );
});

test('a chunked answer is relayed with the caller hop\'s own framing; its Transfer-Encoding is not copied', async (t) => {
  const text = await relayed(t, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kept: 1\r\n\r\n5\r\nhello\r\n0\r\n\r\n', '0\r\n\r\n');
  t.true(text.startsWith('HTTP/1.1 200 OK\r\nX-Kept: 1\r\ntransfer-encoding: chunked\r\ndate: D\r\n\r\n'), text);
  t.false(/Transfer-Encoding/.test(text));
});

test('an answer\'s HTTP/1 trailers are not relayed (as Envoy\'s default); its chunked body arrives whole', async (t) => {
  const text = await relayed(t, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\n\r\n', '0\r\n\r\n');
  t.is(text, 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: D\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
});
