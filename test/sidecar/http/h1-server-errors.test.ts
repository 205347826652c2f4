// H1Server (sidecar/http/h1-server.ts) when things go wrong, over loopback TCP: requests the parser refuses, the
// slowloris timeouts, a handler that throws, a client that leaves mid-response, draining, invalid response
// headers; and the hand-over of an Upgrade request's socket.

import test from 'ava';
import { once } from 'node:events';
import net, { type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { H1Request, H1Response } from '../../../sidecar/http/h1-message.ts';
import { within } from '../../helpers/h1-origins.ts';
import { atLeast, FAST, get, h1Server, rawClient } from '../../helpers/h1-server.ts';

const refused = (status: string, code: string) => {
  const body = `weft: the mesh refused a malformed request (${code})\n`;
  return `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\nx-weft-reason: bad-request\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
};

test('requests the parser refuses get a 400 with the mesh\'s reason, and the connection closes; the handler never sees them', async (t) => {
  const seen: string[] = [];
  const origin = await h1Server(t, (req, res) => (seen.push(req.url), res.end('ok')), { options: { maxHeaderSize: 1024 } });
  // request, status, the llhttp error it must be refused with
  const cases: [string, string, string][] = [
    ['GET / HTTP/1.1 extra\r\nhost: weft.test\r\n\r\n', '400 Bad Request', 'HPE_INVALID_VERSION'],
    ['GET /a b HTTP/1.1\r\nhost: weft.test\r\n\r\n', '400 Bad Request', 'HPE_INVALID_CONSTANT'],
    ['BREW / HTTP/1.1\r\nhost: weft.test\r\n\r\n', '400 Bad Request', 'HPE_INVALID_METHOD'],
    ['GET / HTTP/1.1\nhost: weft.test\n\n', '400 Bad Request', 'HPE_INVALID_VERSION'],
    ['GET / HTTP/1.1\r\nhost: weft.test\r\nbad name: x\r\n\r\n', '400 Bad Request', 'HPE_INVALID_HEADER_TOKEN'],
    ['GET / HTTP/1.1\r\nhost: weft.test\r\nx-a: a\r\n folded\r\n\r\n', '400 Bad Request', 'HPE_INVALID_HEADER_TOKEN'],
    // RFC 9112 §6.1 and §6.3: two framings, or two lengths, is how request smuggling starts.
    ['POST / HTTP/1.1\r\nhost: weft.test\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', '400 Bad Request', 'HPE_INVALID_TRANSFER_ENCODING'],
    ['POST / HTTP/1.1\r\nhost: weft.test\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab', '400 Bad Request', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    // llhttp takes any digit.digit as a version; only HTTP/1.x is served.
    ['GET / HTTP/2.0\r\nhost: weft.test\r\n\r\n', '505 HTTP Version Not Supported', 'HPE_UNSUPPORTED_VERSION'],
    ['GET / HTTP/0.9\r\nhost: weft.test\r\n\r\n', '505 HTTP Version Not Supported', 'HPE_UNSUPPORTED_VERSION'],
    // RFC 9112 §3.2: an HTTP/1.1 request without Host.
    ['GET / HTTP/1.1\r\n\r\n', '400 Bad Request', 'HPE_MISSING_HOST'],
    [`GET / HTTP/1.1\r\nhost: weft.test\r\nx-big: ${'a'.repeat(1100)}\r\n\r\n`, '431 Request Header Fields Too Large', 'HPE_HEADER_OVERFLOW'],
  ];
  for (const [request, status, code] of cases) {
    const c = await rawClient(t, origin.port);
    c.send(request);
    t.is(await c.untilClosed(), refused(status, code), JSON.stringify(request));
  }
  // RFC 9112 §6.1: a transfer coding other than chunked is one the mesh does not implement.
  for (const coding of ['gzip, chunked', 'gzip']) {
    const c = await rawClient(t, origin.port);
    c.send(`POST / HTTP/1.1\r\nhost: weft.test\r\ntransfer-encoding: ${coding}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
    const body = `weft: transfer coding "${coding}": only chunked is supported\n`;
    t.is(await c.untilClosed(), `HTTP/1.1 501 Not Implemented\r\ncontent-type: text/plain\r\nx-weft-reason: bad-request\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
  }
  t.deepEqual(seen, []);

  // Just under the limit, and HTTP/1.0 without Host, are fine.
  const c = await rawClient(t, origin.port);
  c.send(get('/fits', `host: weft.test\r\nx-big: ${'a'.repeat(900)}\r\n`) + get('/old', '', '1.0'));
  t.is(await c.untilClosed(), 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: D\r\n\r\nok' + 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: D\r\nconnection: close\r\n\r\nok');
  t.deepEqual(seen, ['/fits', '/old']);
});

test('a head still unfinished after headersTimeoutMs is answered 408, though its bytes keep trickling in', async (t) => {
  const origin = await h1Server(t, (_req, res) => res.end('ok'), { options: FAST });
  const c = await rawClient(t, origin.port);
  c.send('GET / HTTP/1.1\r\nhost: weft.test\r\n');
  const started = Date.now();
  const trickle = setInterval(() => c.socket.write('x-slow: 1\r\n'), 200);
  t.teardown(() => clearInterval(trickle));
  t.is(await c.untilClosed(3000), refused('408 Request Timeout', 'ERR_HTTP_REQUEST_TIMEOUT'));
  const elapsed = Date.now() - started;
  t.true(elapsed > 950 && elapsed < 2600, `${elapsed} ms`);
});

test('a head begun in the same write as a whole request is timed from there: 408 after headersTimeoutMs, not the keep-alive timeout', async (t) => {
  const origin = await h1Server(t, (_req, res) => res.end('ok'), { options: { ...FAST, keepAliveTimeoutMs: 30_000 } });
  const c = await rawClient(t, origin.port);
  const started = Date.now();
  c.send(`${get('/')}GET /next HTTP/1.1\r\nhost: weft.test\r\n`);
  const answer = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: D\r\n\r\nok';
  t.is(await c.untilClosed(3000), answer + refused('408 Request Timeout', 'ERR_HTTP_REQUEST_TIMEOUT'));
  const elapsed = Date.now() - started;
  t.true(elapsed > 950 && elapsed < 2600, `${elapsed} ms`);
});

test('an idle keep-alive connection is closed after keepAliveTimeoutMs; a slow answer is not cut by it', async (t) => {
  const origin = await h1Server(t, (req, res) => void setTimeout(() => res.end('ok'), req.url === '/slow' ? 2200 : 0), { options: FAST });
  const answer = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: D\r\n\r\nok';
  const idle = await rawClient(t, origin.port);
  const slow = await rawClient(t, origin.port);
  slow.send(get('/slow'));
  idle.send(get('/'));
  t.is(await atLeast(idle, answer), answer);
  const answeredAt = Date.now();
  t.is(await idle.untilClosed(3000), answer);
  const idleFor = Date.now() - answeredAt;
  t.true(idleFor > 950 && idleFor < 2600, `${idleFor} ms`);
  t.is(await atLeast(slow, answer, 3000), answer);
  t.false(slow.closed);
});

test('a body still unfinished after requestTimeoutMs: the connection is closed and the response emits close', async (t) => {
  let closed = false;
  const origin = await h1Server(t, (_req, res) => void res.on('close', () => (closed = true)), { options: { ...FAST, requestTimeoutMs: 1000 } });
  const c = await rawClient(t, origin.port);
  c.send('POST / HTTP/1.1\r\nhost: weft.test\r\ncontent-length: 100\r\n\r\n');
  const started = Date.now();
  const trickle = setInterval(() => c.socket.write('x'), 200);
  t.teardown(() => clearInterval(trickle));
  t.is(await c.untilClosed(3000), '');
  const elapsed = Date.now() - started;
  t.true(elapsed > 950 && elapsed < 2600, `${elapsed} ms`);
  t.true(closed);
});

test('a body that breaks its framing while being relayed: the caller gets the 400, the reader an error, and the connection closes', async (t) => {
  let bodyError = '';
  let closed = false;
  // A relay: reads the body on and answers only once it has all of it (which never happens here).
  const origin = await h1Server(t, (req, res) => {
    res.on('close', () => (closed = true));
    req.body!.on('error', (e: Error & { code?: string }) => (bodyError = e.code ?? e.message)).on('data', () => {}).on('end', () => res.end('all in'));
  });
  for (const [request, code] of [
    ['POST / HTTP/1.1\r\nhost: weft.test\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['POST / HTTP/1.1\r\nhost: weft.test\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX', 'HPE_STRICT'],
  ] as const) {
    bodyError = '';
    closed = false;
    const c = await rawClient(t, origin.port);
    c.send(request);
    const answer = await c.untilClosed(3000);
    t.is(answer, refused('400 Bad Request', code), request);
    t.is(bodyError, code);
    t.true(closed);
  }
});

test('a caller that stops reading its answer is cut off after sendTimeoutMs; one that reads slowly gets all of it', async (t) => {
  // More than loopback's socket buffers hold, so the server's writes wait on the caller.
  const big = Buffer.alloc(48 << 20, 'x');
  // Written as a relay writes: 64 KiB at a time, waiting for drain when the socket says so.
  const answer = (res: H1Response) => {
    let sent = 0;
    const pump = () => {
      while (sent < big.length) {
        const ok = res.write(big.subarray(sent, sent + 65_536));
        sent += 65_536;
        if (!ok) return void res.once('drain', pump);
      }
      res.end();
    };
    res.writeHead(200, { 'content-length': String(big.length) });
    pump();
  };
  const origin = await h1Server(t, (_req, res) => answer(res), { options: { ...FAST, sendTimeoutMs: 1500 } });
  const connect = async () => {
    const s = net.connect(origin.port, '127.0.0.1');
    t.teardown(() => s.destroy());
    s.on('error', () => {});
    await once(s, 'connect');
    s.write(get('/big'));
    return s;
  };
  const stalled = await connect();
  stalled.pause();
  const slow = await connect();
  let got = 0;
  let sincePause = 0;
  slow.on('data', (d: Buffer) => {
    got += d.length;
    sincePause += d.length;
    // Reads 4 MB, stops for 300 ms, reads again: never for as long as the send timeout.
    if (sincePause < 4 << 20) return;
    sincePause = 0;
    slow.pause();
    setTimeout(() => slow.resume(), 300);
  });
  await Promise.race([once(slow, 'end'), sleep(60_000)]);
  // The stalled caller, reading at last: what its socket buffers held, then the close (not the whole answer).
  await sleep(4000);
  let stalledGot = 0;
  stalled.on('data', (d: Buffer) => (stalledGot += d.length)).resume();
  await Promise.race([once(stalled, 'close'), sleep(20_000)]);
  t.true(stalledGot < big.length, `the stalled caller got ${stalledGot} of ${big.length} bytes`);
  t.true(stalled.closed, 'and its connection closed');
  t.true(got > big.length, `the slow reader got ${got} bytes`);
});

test('a request answered before its body was read gets no second answer when that body then stalls or breaks: only the close', async (t) => {
  const origin = await h1Server(t, (_req, res) => res.writeHead(403, { 'content-length': '0' }).end(), { options: { ...FAST, requestTimeoutMs: 1000 } });
  const denied = 'HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\ndate: D\r\n\r\n';
  const stalled = await rawClient(t, origin.port);
  stalled.send('POST / HTTP/1.1\r\nhost: weft.test\r\ncontent-length: 100\r\n\r\nabc');
  const broken = await rawClient(t, origin.port);
  broken.send('POST / HTTP/1.1\r\nhost: weft.test\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n');
  t.is(await atLeast(broken, denied), denied);
  broken.send('zz\r\nnot a chunk\r\n');
  t.is(await broken.untilClosed(), denied);
  t.is(await stalled.untilClosed(3000), denied);
});

test('a handler that throws destroys its connection; other connections, open and new, are still served', async (t) => {
  const origin = await h1Server(t, (req, res) => {
    if (req.url === '/throw') throw new Error('app bug');
    res.end('ok');
  });
  const answer = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: D\r\n\r\nok';
  const open = await rawClient(t, origin.port);
  open.send(get('/'));
  t.is(await atLeast(open, answer), answer);
  const thrower = await rawClient(t, origin.port);
  thrower.send(get('/throw') + get('/'));
  t.is(await thrower.untilClosed(), '');
  open.send(get('/'));
  t.is(await atLeast(open, answer + answer), answer + answer);
  const fresh = await rawClient(t, origin.port);
  fresh.send(get('/'));
  t.is(await atLeast(fresh, answer), answer);
});

test('Upgrade: onUpgrade gets the request, the socket and the bytes after the head; later bytes wait for its listener', async (t) => {
  const upgrades: [H1Request, Socket, Buffer][] = [];
  const requests: string[] = [];
  const origin = await h1Server(t, (req, res) => (requests.push(req.url), res.end()), {
    onUpgrade(req, socket, head) {
      upgrades.push([req, socket, head]);
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
      // A handler that first connects somewhere else (forwardUpgrade) starts reading later.
      setTimeout(() => socket.on('data', (d: Buffer) => socket.write(`echo ${d.toString()};`)), 100);
    },
  });
  const c = await rawClient(t, origin.port);
  c.send('GET /chat HTTP/1.1\r\nhost: weft.test\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\nHELLO');
  await sleep(20);
  c.send('MORE');
  const expected = 'HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\necho MORE;';
  t.is(await atLeast(c, expected), expected);
  c.send('AGAIN');
  t.is(await atLeast(c, expected + 'echo AGAIN;'), expected + 'echo AGAIN;');
  t.is(upgrades.length, 1);
  const [req, socket, head] = upgrades[0]!;
  t.is(socket, origin.sockets[0]!);
  t.deepEqual([req.method, req.url, req.headers.upgrade, req.headers.connection, head.toString()], ['GET', '/chat', 'websocket', 'Upgrade', 'HELLO']);
  t.deepEqual(requests, []);
});

test('a client gone mid-response: the response emits close, and writing to it afterwards returns true without throwing', async (t) => {
  let response: H1Response | undefined;
  const origin = await h1Server(t, (_req, res) => {
    response = res;
    res.write('first');
  });
  const c = await rawClient(t, origin.port);
  c.send(get('/'));
  await c.until((s) => s.endsWith('5\r\nfirst\r\n'));
  const closed = once(response!, 'close');
  c.socket.destroy();
  await within(1000, closed, "the response's close");
  t.true(response!.write('more'));
  t.notThrows(() => response!.end('last'));
  t.is(origin.sockets[0]!.destroyed, true);
});

test('closeIdleConnections: idle connections close at once; busy ones after their answer, which says close if its head is not yet written', async (t) => {
  const held: H1Response[] = [];
  const origin = await h1Server(t, (req, res) => (req.url === '/hold' ? held.push(res) : res.end('ok')));
  const answer = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: D\r\n\r\nok';
  const idle = await rawClient(t, origin.port);
  idle.send(get('/'));
  t.is(await atLeast(idle, answer), answer);
  const busy = await rawClient(t, origin.port);
  busy.send(get('/hold'));
  const halfway = await rawClient(t, origin.port);
  halfway.send('GET / HTTP/1.1\r\n');
  await busy.until(() => held.length === 1);
  await sleep(20);

  origin.h1.closeIdleConnections();
  t.is(await idle.untilClosed(200), answer);
  halfway.send('host: weft.test\r\n\r\n');
  t.is(await halfway.untilClosed(), 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: D\r\nconnection: close\r\n\r\nok');
  t.false(busy.closed);
  held[0]!.end('ok');
  // Its head was not yet written when draining began, so it too tells the client the connection is closing.
  t.is(await busy.untilClosed(), 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: D\r\nconnection: close\r\n\r\nok');
});

test('response headers with CR, LF or NUL in a value, or a bad name, throw and leave the head unsent for a proper answer', async (t) => {
  const codes: unknown[] = [];
  const origin = await h1Server(t, (_req, res) => {
    const attempts = [
      () => res.writeHead(200, { 'x-a': 'a\nb' }),
      () => res.writeHead(200, { 'x-a': 'a\x00b' }),
      () => res.writeHead(200, ['x-a', 'ok', 'x-b', 'a\r\nx-injected: 1']),
      () => res.writeHead(200, { 'x-a': ['ok', 'b\rc'] }),
      () => res.writeHead(200, { 'bad name': 'v' }),
      () => res.setHeader('x-c', 'a\r\nx-injected: 1'),
    ];
    for (const attempt of attempts) {
      try {
        attempt();
        codes.push('no error');
      } catch (err) {
        codes.push((err as { code?: string }).code);
      }
    }
    codes.push(res.headersSent);
    res.writeHead(502, { 'content-length': '0' }).end();
  });
  const c = await rawClient(t, origin.port);
  c.send(get('/'));
  const expected = 'HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\ndate: D\r\n\r\n';
  t.is(await atLeast(c, expected), expected);
  await sleep(30);
  t.is(c.text, expected);
  t.deepEqual(codes, ['ERR_INVALID_CHAR', 'ERR_INVALID_CHAR', 'ERR_INVALID_CHAR', 'ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN', 'ERR_INVALID_CHAR', false]);
});
