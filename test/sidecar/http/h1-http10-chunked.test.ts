// An HTTP/1.0 request with Transfer-Encoding (RFC 9112 §6.1): its framing is treated as faulty, so whatever follows it
// on the connection is never read as another request. It is answered, then the connection closes, keep-alive or not.

import test from 'ava';
import { h1Server, rawClient } from '../../helpers/h1-server.ts';

test('an HTTP/1.0 request with Transfer-Encoding is answered, saying close, and nothing after it is taken as a request', async (t) => {
  const seen: string[] = [];
  const origin = await h1Server(t, (req, res) => {
    seen.push(req.url);
    if (!req.body) return void res.end('none');
    let n = 0;
    req.body.on('data', (d: Buffer) => (n += d.length)).on('end', () => res.end(`${n} bytes`));
  });
  const c = await rawClient(t, origin.port);
  c.send('POST /one HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  const text = await c.untilClosed(3000);
  t.is(text, 'HTTP/1.1 200 OK\r\ncontent-length: 7\r\ndate: D\r\nconnection: close\r\n\r\n3 bytes');
  t.deepEqual(seen, ['/one']);
});
