// A client's FIN (it shut down its side of the connection) is taken as the client going away, as Envoy and nginx's
// proxy take it (nginx answers 499 unless proxy_ignore_client_abort): the request in progress is cancelled, so the
// app stops working on it (test/sidecar/traffic.test.ts), and nothing more is sent. TCP cannot tell a client that
// half-closes and still reads (`nc -N`; BusyBox's wget once did) from one that left, so such a client gets no
// answer, as through Envoy (envoyproxy/envoy#2066, #17160). Tried the other way (answering half-closed clients):
// a caller that went away then held its request and the app's work until the answer was written.

import test from 'ava';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { H1Response } from '../../../sidecar/http/h1-message.ts';
import { within } from '../../helpers/h1-origins.ts';
import { get, h1Server, rawClient } from '../../helpers/h1-server.ts';

test('a FIN while the answer is pending closes the connection and the response (the client is gone), nothing sent', async (t) => {
  let response: H1Response | undefined;
  const origin = await h1Server(t, (_req, res) => void (response = res));
  const c = await rawClient(t, origin.port);
  c.send(get('/one'));
  for (let i = 0; i < 200 && !response; i++) await sleep(5);
  const closed = once(response!, 'close');
  c.socket.end();
  await within(1000, closed, "the response's close");
  t.is(await c.untilClosed(1000), '');
});

test('a FIN in the middle of a request head closes the connection with nothing sent and no request seen', async (t) => {
  let called = false;
  const origin = await h1Server(t, (_req, res) => ((called = true), res.end('no')));
  const c = await rawClient(t, origin.port);
  c.send('GET /half HTTP/1.1\r\nhost: a\r\n');
  c.socket.end();
  t.is(await c.untilClosed(3000), '');
  await sleep(50);
  t.false(called);
});

test('a FIN before a request body is complete closes the connection; the body being read ends in an error', async (t) => {
  let bodyError = '';
  const origin = await h1Server(t, (req) => {
    req.body!.on('error', (err) => (bodyError = (err as Error & { code?: string }).code ?? err.message));
    req.body!.resume();
  });
  const c = await rawClient(t, origin.port);
  c.send('POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nabc');
  c.socket.end();
  t.is(await c.untilClosed(3000), '');
  await sleep(50);
  t.is(bodyError, 'ECONNRESET');
});
