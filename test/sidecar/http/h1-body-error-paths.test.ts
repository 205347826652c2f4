// A request body on the HTTP/1 server's error paths, over loopback TCP: a body that breaks before anything reads it
// (a handler that waits, as a route's fault delay does), a relay begun after its caller left mid-body, and a body
// that stalls or breaks after a reader relaying it got an early answer. Each ends in one answer at most and a close:
// never a crash, a relay waiting for ever on a pooled connection, or a second answer to the same request.

import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { relayH1 } from '../../../sidecar/http/h1-proxy.ts';
import { call, httpOrigin, poolTo, within } from '../../helpers/h1-origins.ts';
import { atLeast, FAST, h1Server, rawClient } from '../../helpers/h1-server.ts';

const refused = (code: string) => {
  const body = `weft: the mesh refused a malformed request (${code})\n`;
  return `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nx-weft-reason: bad-request\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
};

test('a body that breaks its framing before anything reads it (its handler waits): the 400 and the close, and the process goes on', async (t) => {
  let answered = false;
  // As the outbound call does during a fault delay: nothing has touched the body yet (no 'error' listener on it).
  const origin = await h1Server(t, (_req, res) => void setTimeout(() => ((answered = true), res.end('late')), 300));
  const c = await rawClient(t, origin.port);
  c.send('POST / HTTP/1.1\r\nhost: weft.test\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n');
  t.is(await c.untilClosed(3000), refused('HPE_INVALID_CHUNK_SIZE'));
  await sleep(400);
  t.true(answered, 'the late answer went nowhere, without throwing');
});

test('a relay begun after its caller left mid-body ends at once with an error; the pool connection is not held', async (t) => {
  const seen: string[] = [];
  const origin = await httpOrigin(t, (req, res) => {
    seen.push(req.url!);
    req.resume().on('end', () => res.end('ok'));
  });
  const { pool } = poolTo(t, origin.port, { connections: 1 });
  const ended: string[] = [];
  const front = await h1Server(t, (req, res) => {
    // The relay starts later, as after a fault delay: by then the caller and its body are gone.
    setTimeout(() => relayH1(pool, req, res, { host: 'origin', 'content-length': '10' }, {}, (err) => ended.push(err?.code ?? 'ok')), 200);
  });
  const c = await rawClient(t, front.port);
  c.send('POST /upload HTTP/1.1\r\nhost: weft.test\r\ncontent-length: 10\r\n\r\nabc');
  await sleep(50);
  c.socket.destroy();
  for (let i = 0; i < 30 && ended.length === 0; i++) await sleep(50);
  t.deepEqual(ended, ['UND_ERR_ABORTED'], 'the relay never ended: it waits for the rest of a body that will never come');
  // The pool's only connection is free for the next request (not holding a request whose body never ends).
  const next = await call(pool, { path: '/next' });
  t.deepEqual(next.statuses, [200], next.error?.message);
  t.deepEqual(seen.filter((u) => u === '/next'), ['/next']);
});

test('a body relayed on after an early answer (the upstream answered first), that then stalls or breaks, gets the close, not a second answer', async (t) => {
  const origin = await h1Server(
    t,
    (req, res) => {
      // A relay still sending the body upstream, whose upstream has already answered.
      req.body!.on('error', () => {}).on('data', () => {});
      res.writeHead(413, { 'content-length': '0' }).end();
    },
    { options: { ...FAST, requestTimeoutMs: 1000 } },
  );
  const early = 'HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\ndate: D\r\n\r\n';
  const stalled = await rawClient(t, origin.port);
  stalled.send('POST / HTTP/1.1\r\nhost: weft.test\r\ncontent-length: 100\r\n\r\nabc');
  const broken = await rawClient(t, origin.port);
  broken.send('POST / HTTP/1.1\r\nhost: weft.test\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n');
  t.is(await atLeast(broken, early), early);
  broken.send('zz\r\nnot a chunk\r\n');
  t.is(await broken.untilClosed(), early);
  t.is(await within(4000, stalled.untilClosed(4000), 'the close'), early);
});
