// H1Server (sidecar/http/h1-server.ts) and its response object (h1-message.ts) over loopback TCP: how answers are
// framed for HTTP/1.1 and 1.0, HEAD, 204 and 304, keep-alive and pipelining, a socket peeked at before it is
// served, and how repeated headers combine. Request bodies: h1-server-bodies.test.ts.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { answerClientError } from '../../../sidecar/http/client-error.ts';
import type { H1Request } from '../../../sidecar/http/h1-message.ts';
import { H1Server } from '../../../sidecar/http/h1-server.ts';
import { headerOf } from '../../../sidecar/http/headers.ts';
import { run } from '../../helpers/ca.ts';
import { listen } from '../../helpers/h1-origins.ts';
import { atLeast, get, h1Server, rawClient, SLOW } from '../../helpers/h1-server.ts';

test('one keep-alive connection: the given Content-Length, the one end(body) implies, chunked when the length is unknown; Date added', async (t) => {
  const seen: H1Request[] = [];
  const origin = await h1Server(t, (req, res) => {
    seen.push(req);
    if (req.url === '/given') {
      res.writeHead(200, { 'content-length': '5', 'x-app': 'yes' });
      res.write('hel');
      res.end('lo');
    } else if (req.url === '/end') res.end('hello');
    else {
      res.write('abc');
      setTimeout(() => res.end('defg'), 20);
    }
  });
  const c = await rawClient(t, origin.port);
  let expected = '';
  for (const [path, answer] of [
    ['/given', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-app: yes\r\ndate: D\r\n\r\nhello'],
    ['/end', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: D\r\n\r\nhello'],
    ['/streamed', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: D\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n'],
  ] as const) {
    c.send(get(path));
    expected += answer;
    t.is(await atLeast(c, expected), expected);
  }
  for (const date of c.dates) t.true(/^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/.test(date) && Math.abs(Date.parse(date) - Date.now()) < 5000, date);
  t.is(c.dates.length, 3);
  t.deepEqual(
    seen.map((r) => [r.method, r.url, r.httpVersionMinor, r.headers, r.rawHeaders, r.body]),
    ['/given', '/end', '/streamed'].map((path) => ['GET', path, 1, { host: 'weft.test' }, ['host', 'weft.test'], null]),
  );
  await sleep(50);
  t.false(c.closed);
  t.is(origin.connections, 1);
});

test('bodies written with their head arrive byte-exact: every byte value, non-ASCII text, and bodies past the 4 KiB join bound', async (t) => {
  const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const big = randomBytes(5000);
  const text = 'héllo wörld ✓';
  const origin = await h1Server(t, (req, res) => {
    if (req.url === '/write') {
      res.setHeader('content-length', String(every.length));
      res.write(every);
      res.end();
    } else if (req.url === '/end') res.end(every);
    else if (req.url === '/text') res.end(text);
    else if (req.url === '/text-write') {
      res.setHeader('content-length', String(Buffer.byteLength(text)));
      res.write(text);
      res.end();
    } else res.end(big);
  });
  for (const [path, body] of [['/write', every], ['/end', every], ['/text', Buffer.from(text)], ['/text-write', Buffer.from(text)], ['/big', big]] as const) {
    const r = await fetch(`http://127.0.0.1:${origin.port}${path}`);
    t.is(r.headers.get('content-length'), String(body.length), path);
    t.deepEqual(Buffer.from(await r.arrayBuffer()), body, path);
  }
});

test('a Date the handler gives is not doubled, whether set with setHeader or in writeHead', async (t) => {
  const date = 'Tue, 01 Jan 2030 00:00:00 GMT';
  const readBack: unknown[] = [];
  const origin = await h1Server(t, (req, res) => {
    if (req.url === '/set') res.setHeader('Date', date);
    else res.writeHead(200, ['Date', date]);
    readBack.push(res.getHeader('date'));
    res.end('ok');
  });
  const c = await rawClient(t, origin.port);
  c.send(get('/set') + get('/array'));
  const expected = 'HTTP/1.1 200 OK\r\ndate: D\r\ncontent-length: 2\r\n\r\nok' + 'HTTP/1.1 200 OK\r\nDate: D\r\ncontent-length: 2\r\n\r\nok';
  t.is(await atLeast(c, expected), expected);
  t.deepEqual(c.dates, [date, date]);
  t.deepEqual(readBack, [date, undefined]); // as with node, getHeader sees setHeader's headers, not writeHead's
});

test('a header given both by setHeader and by writeHead is sent once, with writeHead\'s value (as node does)', async (t) => {
  const origin = await h1Server(t, (req, res) => {
    res.setHeader('Content-Type', 'text/plain');
    res.setHeader('x-kept', 'from setHeader');
    if (req.url === '/object') res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
    else res.writeHead(200, ['CONTENT-TYPE', 'application/json', 'content-length', '2']);
    res.end('{}');
  });
  const c = await rawClient(t, origin.port);
  c.send(get('/object') + get('/array'));
  const expected =
    'HTTP/1.1 200 OK\r\nx-kept: from setHeader\r\ncontent-type: application/json\r\ncontent-length: 2\r\ndate: D\r\n\r\n{}' +
    'HTTP/1.1 200 OK\r\nx-kept: from setHeader\r\nCONTENT-TYPE: application/json\r\ncontent-length: 2\r\ndate: D\r\n\r\n{}';
  t.is(await atLeast(c, expected), expected);
});

test('curl reads a chunked body of many writes intact, and as HTTP/1.0 the same body delimited by the close', async (t) => {
  const pieces = Array.from({ length: 200 }, (_, i) => `piece ${i} ${'x'.repeat(i)}\n`);
  const origin = await h1Server(t, (_req, res) => {
    let i = 0;
    const next = () => {
      for (const end = i + 50; i < end; i++) res.write(pieces[i]!);
      if (i < pieces.length) setImmediate(next);
      else res.end();
    };
    res.writeHead(200, { 'content-type': 'text/plain' });
    next();
  });
  const http11 = await run('curl', ['-sS', '-i', `http://127.0.0.1:${origin.port}/`]);
  t.is(http11.code, 0, http11.stderr);
  const [head11] = http11.stdout.split('\r\n\r\n', 1) as [string];
  t.regex(head11, /^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain\r\ntransfer-encoding: chunked\r\ndate: .+ GMT$/);
  t.is(http11.stdout.slice(head11.length + 4), pieces.join(''));

  const http10 = await run('curl', ['-sS', '-i', '--http1.0', `http://127.0.0.1:${origin.port}/`]);
  t.is(http10.code, 0, http10.stderr);
  const [head10] = http10.stdout.split('\r\n\r\n', 1) as [string];
  t.regex(head10, /^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain\r\ndate: .+ GMT\r\nconnection: close$/);
  t.is(http10.stdout.slice(head10.length + 4), pieces.join(''));
});

test('HTTP/1.0: closed after the body unless keep-alive was asked for and the length is known; never chunked', async (t) => {
  const origin = await h1Server(t, (req, res) => {
    if (req.url === '/end') return void res.end('hello');
    res.write('abc');
    setTimeout(() => res.end('defg'), 20);
  });
  const plain = await rawClient(t, origin.port);
  plain.send(get('/end', '', '1.0'));
  t.is(await plain.untilClosed(), 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: D\r\nconnection: close\r\n\r\nhello');

  const streamed = await rawClient(t, origin.port);
  streamed.send(get('/streamed', '', '1.0'));
  t.is(await streamed.untilClosed(), 'HTTP/1.1 200 OK\r\ndate: D\r\nconnection: close\r\n\r\nabcdefg');

  const kept = await rawClient(t, origin.port);
  kept.send(get('/end', 'Connection: keep-alive\r\n', '1.0'));
  const first = 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: D\r\nconnection: keep-alive\r\n\r\nhello';
  t.is(await atLeast(kept, first), first);
  await sleep(100);
  t.false(kept.closed);
  // Its length unknown, the second answer can only end with the connection: so it says close.
  kept.send(get('/streamed', 'Connection: keep-alive\r\n', '1.0'));
  t.is(await kept.untilClosed(), first + 'HTTP/1.1 200 OK\r\ndate: D\r\nconnection: close\r\n\r\nabcdefg');

  const closing = await rawClient(t, origin.port);
  closing.send(get('/end', 'host: weft.test\r\nconnection: close\r\n'));
  t.is(await closing.untilClosed(), 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: D\r\nconnection: close\r\n\r\nhello');
});

test('HEAD, 204 and 304 carry no body even when the handler writes one, a 204 no framing headers; the next answer is intact', async (t) => {
  const origin = await h1Server(t, (req, res) => {
    if (req.url === '/length') res.writeHead(200, { 'content-length': '5' }).end('hello');
    else if (req.url === '/written') (res.write('hello'), res.end('!'));
    else if (req.url === '/204') res.writeHead(204, { 'x-a': '1' }).end('dropped');
    // An app's framing headers on a 204 (RFC 9110 §8.6: a server must not send them) are not passed on.
    else if (req.url === '/204-framed') res.writeHead(204, ['Content-Length', '5', 'x-b', '2', 'Transfer-Encoding', 'chunked']).end();
    else if (req.url === '/304') res.writeHead(304, { etag: '"v1"', 'content-length': '7' }).end('dropped');
    else res.end('after');
  });
  const c = await rawClient(t, origin.port);
  let expected = '';
  for (const [request, answer] of [
    ['HEAD /length HTTP/1.1\r\nhost: weft.test\r\n\r\n', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: D\r\n\r\n'],
    ['HEAD /written HTTP/1.1\r\nhost: weft.test\r\n\r\n', 'HTTP/1.1 200 OK\r\ndate: D\r\n\r\n'],
    [get('/204'), 'HTTP/1.1 204 No Content\r\nx-a: 1\r\ndate: D\r\n\r\n'],
    [get('/204-framed'), 'HTTP/1.1 204 No Content\r\nx-b: 2\r\ndate: D\r\n\r\n'],
    [get('/304'), 'HTTP/1.1 304 Not Modified\r\netag: "v1"\r\ncontent-length: 7\r\ndate: D\r\n\r\n'],
    [get('/after'), 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: D\r\n\r\nafter'],
  ] as const) {
    c.send(request);
    expected += answer;
    t.is(await atLeast(c, expected), expected, request);
  }
  await sleep(50);
  t.is(c.text, expected); // nothing more came
  t.false(c.closed);
});

test('pipelining: three requests in one write are answered in order, one handler at a time, though the first answers last', async (t) => {
  const log: string[] = [];
  const origin = await h1Server(t, (req, res) => {
    log.push(`called ${req.url}`);
    const answer = () => (log.push(`answered ${req.url}`), res.end(`answer to ${req.url}`));
    if (req.url === '/slow') setTimeout(answer, 100);
    else answer();
  });
  const c = await rawClient(t, origin.port);
  c.send(get('/slow') + get('/fast') + get('/third'));
  const expected = ['/slow', '/fast', '/third'].map((p) => `HTTP/1.1 200 OK\r\ncontent-length: ${10 + p.length}\r\ndate: D\r\n\r\nanswer to ${p}`).join('');
  t.is(await atLeast(c, expected), expected);
  t.deepEqual(log, ['called /slow', 'answered /slow', 'called /fast', 'answered /fast', 'called /third', 'answered /third']);
});

test('a socket whose first bytes a listener peeked at and unshifted is parsed in order: those bytes, then its handle\'s', async (t) => {
  const seen: string[] = [];
  const h1 = new H1Server(SLOW, (req, res) => (seen.push(req.url), res.end(req.url)), (_r, s) => s.destroy(), answerClientError);
  const served: net.Socket[] = [];
  // As the PERMISSIVE inbound and the outbound main port do: read the first bytes, put them back, then serve.
  const origin = await listen(t, net.createServer({ noDelay: true }, (socket) => {
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      h1.serve(socket);
      served.push(socket);
      socket.resume();
    });
  }));
  const c = await rawClient(t, origin.port);
  c.send('GET /first HT');
  await sleep(30);
  c.send(`TP/1.1\r\nhost: a\r\n\r\n${get('/second')}GET /thi`);
  await sleep(30);
  c.send('rd HTTP/1.1\r\nhost: a\r\n\r\n');
  const expected = ['/first', '/second', '/third'].map((p) => `HTTP/1.1 200 OK\r\ncontent-length: ${p.length}\r\ndate: D\r\n\r\n${p}`).join('');
  t.is(await atLeast(c, expected), expected);
  t.deepEqual(seen, ['/first', '/second', '/third']);
  // The later bytes went from the socket's native handle straight to the parser (node:http's fast path).
  t.true((served[0] as unknown as { _handle: { _consumed?: boolean } })._handle._consumed);
});

test('repeated headers combine as node does; __proto__, constructor and toString headers are plain headers', async (t) => {
  let req: H1Request | undefined;
  const origin = await h1Server(t, (r, res) => ((req = r), res.end()));
  const c = await rawClient(t, origin.port);
  const fields = [
    ['Host', 'first.test'], ['Set-Cookie', 'a=1'], ['Cookie', 'x=1'], ['X-Multi', 'one'], ['Content-Type', 'text/plain'],
    ['host', 'second.test'], ['set-cookie', 'b=2'], ['cookie', 'y=2'], ['x-multi', 'two'], ['content-type', 'application/json'],
    ['__proto__', 'polluted'], ['Authorization', 'Bearer 1'], ['authorization', 'Bearer 2'], ['Accept', 'text/html'], ['accept', '*/*'],
    // Names of Object.prototype's members: once read as already seen (the function's text joined in front).
    ['Constructor', 'x'], ['toString', 'y'],
  ];
  c.send(`GET / HTTP/1.1\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`);
  await c.until((s) => s.endsWith('\r\n\r\n'));
  t.deepEqual(req!.rawHeaders, fields.flat());
  t.deepEqual({ ...req!.headers }, {
    host: 'first.test',
    'set-cookie': ['a=1', 'b=2'],
    cookie: 'x=1; y=2',
    'x-multi': 'one, two',
    'content-type': 'text/plain',
    authorization: 'Bearer 1',
    accept: 'text/html, */*',
    constructor: 'x',
    tostring: 'y',
  });
  t.is(Object.getPrototypeOf(req!.headers), Object.prototype);
  // What policy and route matches read by a name from config: only the request's own headers.
  t.is(headerOf(req!.headers, 'constructor'), 'x');
  t.is(headerOf(req!.headers, 'valueof'), undefined);
  t.is(headerOf(req!.headers, 'hasOwnProperty'), undefined);
  t.is(headerOf(req!.headers, '__proto__'), undefined);
  t.false(Object.hasOwn(req!.headers, '__proto__'));
  t.is((req!.headers as Record<string, unknown>).polluted, undefined);
});

test('every method llhttp takes reaches the handler by its own name (QUERY, whose id is past the list, too)', async (t) => {
  const names = ['DELETE', 'GET', 'HEAD', 'POST', 'PUT', 'OPTIONS', 'TRACE', 'PATCH', 'PURGE', 'PROPFIND', 'M-SEARCH', 'SOURCE', 'QUERY'];
  const seen: string[] = [];
  const origin = await h1Server(t, (req, res) => {
    seen.push(req.method);
    res.end();
  });
  const c = await rawClient(t, origin.port);
  for (const name of names) c.send(`${name} /m HTTP/1.1\r\nhost: weft.test\r\ncontent-length: 0\r\n\r\n`);
  await c.until((text) => (text.match(/HTTP\/1\.1 200/g) ?? []).length === names.length);
  t.deepEqual(seen, names);
});
