// H1Pool (sidecar/http/h1-client.ts) against real loopback origins: connection reuse and limits, the
// keep-alive race and its one replay, connect failures, aborts, idle timeouts and close().

import test from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { PoolClosedError } from '../../../sidecar/http/h1-client.ts';
import { call, header, httpOrigin, listen, poolTo, rawOrigin, within } from '../../helpers/h1-origins.ts';

test('a GET with a content-length answer; a second request reuses the one connection', async (t) => {
  const seen: string[] = [];
  const origin = await httpOrigin(t, (req, res) => {
    seen.push(`${req.method} ${req.url} host=${req.headers.host}`);
    res.setHeader('x-served-by', 'origin');
    res.end(`hello ${req.url}`);
  });
  const { pool } = poolTo(t, origin.port);

  const a = await call(pool, { path: '/one' });
  t.is(a.error, null);
  t.deepEqual(a.statuses, [200]);
  t.is(a.body.toString(), 'hello /one');
  t.deepEqual(header(a.headers, 'x-served-by'), ['origin']);
  t.deepEqual(header(a.headers, 'content-length'), ['10']);
  t.deepEqual(a.trailers, []);

  const b = await call(pool, { path: '/two' });
  t.is(b.error, null);
  t.is(b.body.toString(), 'hello /two');
  t.deepEqual(seen, ['GET /one host=origin.test', 'GET /two host=origin.test']);
  t.is(origin.connections, 1);
});

test('an idle connection the origin closed is not reused: the next GET goes out on a new connection', async (t) => {
  const origin = await rawOrigin(t, (s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    setTimeout(() => s.end(), 20); // the app's idle timeout
  });
  const { pool } = poolTo(t, origin.port);

  t.is((await call(pool)).body.toString(), 'ok');
  await sleep(100);
  const second = await call(pool);
  t.is(second.error, null);
  t.is(second.body.toString(), 'ok');
  t.is(origin.connections, 2);
});

test('keep-alive race: a request lost on a reused connection is replayed once if idempotent with a body that can be sent again; never a POST or a stream', async (t) => {
  // The origin drops every connection on the second request it carries, without a byte of answer: what a
  // client sees when it reuses a connection in the instant the app's idle timeout closes it.
  const seen: string[] = [];
  const perConnection = new Map<net.Socket, number>();
  const origin = await httpOrigin(t, (req, res) => {
    const n = (perConnection.get(req.socket) ?? 0) + 1;
    perConnection.set(req.socket, n);
    seen.push(`${req.method} ${req.url} #${n}`);
    if (n === 2) return void req.socket.destroy();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(`${req.url}:${Buffer.concat(chunks).toString()}`));
  });
  const { pool } = poolTo(t, origin.port);

  t.is((await call(pool, { path: '/a' })).body.toString(), '/a:');
  const get = await call(pool, { path: '/b' });
  t.is(get.error, null);
  t.is(get.body.toString(), '/b:');
  t.deepEqual(seen, ['GET /a #1', 'GET /b #2', 'GET /b #1']);

  const buffered = await call(pool, { method: 'PUT', path: '/buffer', body: Buffer.from('again') });
  t.is(buffered.error, null);
  t.is(buffered.body.toString(), '/buffer:again');
  t.deepEqual(seen.slice(3), ['PUT /buffer #2', 'PUT /buffer #1']);

  // The app read the POST before the connection went, and may have acted on it: not sent again (RFC 9112 §9.3.1).
  const posted = await call(pool, { method: 'POST', path: '/order', body: Buffer.from('once') });
  t.truthy(posted.error);
  t.deepEqual(posted.statuses, []);
  t.is((await call(pool, { path: '/c' })).body.toString(), '/c:'); // the first on a new connection

  const streamed = await call(pool, { method: 'PUT', path: '/stream', body: Readable.from([Buffer.from('once')]) });
  t.truthy(streamed.error);
  t.true(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'].includes(streamed.error!.code!), streamed.error!.code);
  t.deepEqual(streamed.statuses, []);
  await sleep(100); // a replay would have arrived by now
  t.deepEqual(seen.slice(5), ['POST /order #2', 'GET /c #1', 'PUT /stream #2']);
  t.is(origin.connections, 4);
});

test('a request lost on a fresh connection is not replayed', async (t) => {
  let requests = 0;
  const origin = await rawOrigin(t, (s) => {
    requests++;
    s.destroy();
  });
  const { pool } = poolTo(t, origin.port);
  const o = await call(pool);
  t.is(o.error?.code, 'UND_ERR_SOCKET');
  await sleep(50);
  t.is(requests, 1);
  t.is(origin.connections, 1);
});

test('connection: close in an answer: the pool closes that socket and opens a new one for the next request', async (t) => {
  // The origin says close but leaves its side open: closing is the client's job.
  const origin = await rawOrigin(t, (s) => s.write('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok'));
  const { pool } = poolTo(t, origin.port);

  const a = await call(pool);
  t.is(a.body.toString(), 'ok');
  await within(1000, once(origin.sockets[0]!, 'end'), 'FIN from the client');
  const b = await call(pool);
  t.is(b.error, null);
  t.is(b.body.toString(), 'ok');
  t.is(origin.connections, 2);
});

test('a connection that cannot be opened fails the request with ECONNREFUSED', async (t) => {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  const { pool } = poolTo(t, port);
  const o = await call(pool);
  t.is(o.error?.code, 'ECONNREFUSED');
  t.deepEqual(o.statuses, []);
});

test('at most `connections` sockets: five concurrent requests over two connections all succeed', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  const origin = await httpOrigin(t, (req, res) => {
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    setTimeout(() => {
      inFlight--;
      res.end(`answer ${req.url}`);
    }, 40);
  });
  const { pool } = poolTo(t, origin.port, { connections: 2 });
  const results = await Promise.all([1, 2, 3, 4, 5].map((i) => call(pool, { path: `/${i}` })));
  for (const [i, o] of results.entries()) {
    t.is(o.error, null);
    t.is(o.body.toString(), `answer /${i + 1}`);
  }
  t.is(maxInFlight, 2);
  t.is(origin.connections, 2);
});

test('abort from onConnect: a pending exchange fails with the given error, a queued one with WEFT_ABORTED; the pool carries on', async (t) => {
  const seen: string[] = [];
  let slowArrived: () => void = () => {};
  const slow = new Promise<void>((resolve) => (slowArrived = resolve));
  const origin = await httpOrigin(t, (req, res) => {
    seen.push(req.url!);
    if (req.url === '/slow') slowArrived(); // and never answered
    else res.end('fast');
  });
  const { pool } = poolTo(t, origin.port, { connections: 1 });

  let abortSlow: (err?: Error) => void = () => {};
  let abortQueued: (err?: Error) => void = () => {};
  const pending = call(pool, { path: '/slow' }, { onConnect: (abort) => (abortSlow = abort) });
  const queued = call(pool, { path: '/queued' }, { onConnect: (abort) => (abortQueued = abort) });
  await within(1000, slow, 'request at the origin');

  abortQueued();
  const q = await queued;
  t.is(q.error?.code, 'WEFT_ABORTED');
  const deadline = Object.assign(new Error('route timeout'), { code: 'WEFT_TIMEOUT' });
  abortSlow(deadline);
  const p = await pending;
  t.is(p.error, deadline);
  t.deepEqual(p.statuses, []);

  const next = await call(pool, { path: '/fast' });
  t.is(next.error, null);
  t.is(next.body.toString(), 'fast');
  t.deepEqual(seen, ['/slow', '/fast']);
  t.is(origin.connections, 2);
});

test('an idle connection is closed after keepAliveMs', async (t) => {
  const origin = await httpOrigin(t, (_req, res) => res.end('ok'));
  const { pool } = poolTo(t, origin.port, { keepAliveMs: 50 });
  t.is((await call(pool)).body.toString(), 'ok');
  const idleSince = Date.now();
  await within(1000, once(origin.sockets[0]!, 'end'), 'idle close');
  t.true(Date.now() - idleSince >= 40, `closed after ${Date.now() - idleSince} ms`);
});

test('close(): queued requests fail with WEFT_POOL_CLOSED, the busy one completes, later dispatches fail', async (t) => {
  const seen: string[] = [];
  let firstArrived: () => void = () => {};
  const first = new Promise<void>((resolve) => (firstArrived = resolve));
  const origin = await httpOrigin(t, (req, res) => {
    seen.push(req.url!);
    firstArrived();
    setTimeout(() => res.end(`done ${req.url}`), 50);
  });
  const { pool } = poolTo(t, origin.port, { connections: 1 });

  const busy = call(pool, { path: '/busy' });
  const queued = [call(pool, { path: '/q1' }), call(pool, { path: '/q2' })];
  await within(1000, first, 'request at the origin');
  await pool.close();

  for (const q of await Promise.all(queued)) {
    t.is(q.error?.code, 'WEFT_POOL_CLOSED');
    t.true(q.error instanceof PoolClosedError);
  }
  const b = await busy;
  t.is(b.error, null);
  t.is(b.body.toString(), 'done /busy');
  await within(1000, once(origin.sockets[0]!, 'end'), 'the busy connection closing after its answer');

  const late = await call(pool, { path: '/late' });
  t.is(late.error?.code, 'WEFT_POOL_CLOSED');
  t.deepEqual(seen, ['/busy']);
});

test('a request body still streaming when the connection dies is destroyed, so its source stops sending it', async (t) => {
  // The origin answers as soon as the head arrives, then closes: the body has nowhere to go.
  const origin = await rawOrigin(t, (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
  const { pool } = poolTo(t, origin.port);
  const body = new PassThrough();
  const closed = once(body, 'close');
  body.write('first piece');
  const outcome = await call(pool, { method: 'POST', path: '/upload', headers: { host: 'origin.test', 'content-length': '100000' }, body });
  t.is(outcome.body.toString(), 'ok');
  await within(1000, closed, 'the body destroyed');
  t.true(body.destroyed);
  t.false(body.readableEnded);
});

test('resize: queued requests get a raised limit at once; over a lowered one, connections close as they come free', async (t) => {
  let inFlight = 0;
  let peak = 0;
  // First phase: answers are held until four are in flight (so a resize that lets the queue through shows as
  // four at once, however slow the machine), or 3 s; then each is answered after 50 ms.
  let held: (() => void)[] | null = [];
  const origin = await httpOrigin(t, (req, res) => {
    peak = Math.max(peak, ++inFlight);
    const answer = () => (inFlight--, res.end(req.url));
    if (!held) return void setTimeout(answer, 50);
    held.push(answer);
    if (held.length === 4) for (const a of held.splice(0)) a();
  });
  setTimeout(() => held?.splice(0).forEach((a) => a()), 3000).unref();
  const { pool } = poolTo(t, origin.port, { connections: 1 });
  const first = Array.from({ length: 4 }, (_, i) => call(pool, { path: `/a${i}` }));
  await within(5000, (async () => { while (inFlight === 0) await sleep(5); })(), 'the first request at the origin');
  t.is(peak, 1);
  pool.resize(4); // the three queued ones go now, while the first is still in flight: all four at once
  for (const r of await Promise.all(first)) t.is(r.error, null);
  t.is(peak, 4);
  t.is(origin.connections, 4);
  held = null;

  pool.resize(1);
  const open = () => origin.sockets.filter((s) => !s.destroyed && !s.readableEnded).length;
  await within(5000, (async () => { while (open() > 1) await sleep(5); })(), 'connections over the new limit to close');
  t.true(open() <= 1);
  peak = 0;
  for (const r of await Promise.all(Array.from({ length: 3 }, (_, i) => call(pool, { path: `/b${i}` })))) t.is(r.error, null);
  t.is(peak, 1);
});
