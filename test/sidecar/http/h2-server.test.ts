// The listeners' HTTP/2 server (sidecar/http/servers.ts hardenedH2Server) over loopback: a session with no stream
// open is closed after the idle time (a client that sends the preface and nothing more held its connection for
// ever); a stream open, however quiet, keeps its session, which closes once idle after it ends.

import test from 'ava';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import type { ServerHttp2Stream } from 'node:http2';
import { hardenedH2Server } from '../../../sidecar/http/servers.ts';

async function serve(t: import('ava').ExecutionContext, onStream: (s: ServerHttp2Stream) => void) {
  const h2 = hardenedH2Server((stream) => onStream(stream), 400);
  const server = net.createServer((socket) => h2.emit('connection', socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

const closed = (session: http2.ClientHttp2Session, ms: number) =>
  Promise.race([once(session, 'close').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

test('a session with no stream is closed after the idle time', async (t) => {
  const url = await serve(t, (s) => s.respond({ ':status': 200 }, { endStream: true }));
  const session = http2.connect(url);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  t.true(await closed(session, 10_000));
});

test('a quiet stream keeps its session past the idle time; once it ends, the idle session is closed', async (t) => {
  let finish: () => void = () => {};
  const url = await serve(t, (s) => {
    s.respond({ ':status': 200 });
    s.write('first');
    finish = () => s.end('last');
  });
  const session = http2.connect(url);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const req = session.request({ ':path': '/watch' });
  let body = '';
  req.setEncoding('utf8').on('data', (d: string) => (body += d));
  await once(req, 'response');
  // Several idle times with the stream open and nothing on it.
  t.false(await closed(session, 1500), 'the session stayed while its stream was open');
  finish();
  await once(req, 'end');
  t.is(body, 'firstlast');
  t.true(await closed(session, 10_000), 'and was closed once idle after it');
});
