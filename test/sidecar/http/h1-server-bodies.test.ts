// H1Server (sidecar/http/h1-server.ts) and request bodies over loopback TCP: by Content-Length and chunked,
// Expect: 100-continue, and a body left unread by an early answer (read and dropped, or left to its reader).

import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { atLeast, get, h1Server, rawClient } from '../../helpers/h1-server.ts';

test('request bodies: by Content-Length and chunked, each read through req.body across writes; none is null', async (t) => {
  const origin = await h1Server(t, async (req, res) => {
    if (!req.body) return void res.end(`${req.method} ${req.url}: no body`);
    const chunks: Buffer[] = [];
    for await (const chunk of req.body) chunks.push(chunk as Buffer);
    res.end(`${req.method} ${req.url}: ${Buffer.concat(chunks).toString()}, complete ${req.complete}`);
  });
  const c = await rawClient(t, origin.port);
  const answer = (body: string) => `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\ndate: D\r\n\r\n${body}`;
  let expected = '';
  for (const [pieces, body] of [
    [['POST /length HTTP/1.1\r\nhost: weft.test\r\ncontent-length: 11\r\n\r\nhel', 'lo world'], 'POST /length: hello world, complete true'],
    [['PUT /chunked HTTP/1.1\r\nhost: weft.test\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n', '6\r\n world\r\n0\r\n\r\n'], 'PUT /chunked: hello world, complete true'],
    [['POST /empty HTTP/1.1\r\nhost: weft.test\r\ncontent-length: 0\r\n\r\n'], 'POST /empty: no body'],
    [[get('/get')], 'GET /get: no body'],
  ] as const) {
    for (const piece of pieces) {
      c.send(piece);
      await sleep(20);
    }
    expected += answer(body);
    t.is(await atLeast(c, expected), expected);
  }
});

test('Expect: 100-continue is answered with 100 Continue before the body is sent, then the final answer', async (t) => {
  const origin = await h1Server(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.body!.on('data', (c: Buffer) => chunks.push(c));
    req.body!.on('end', () => res.end(`got ${Buffer.concat(chunks).toString()}`));
  });
  const c = await rawClient(t, origin.port);
  c.send('POST / HTTP/1.1\r\nhost: weft.test\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n');
  t.is(await c.until((s) => s.length > 0), 'HTTP/1.1 100 Continue\r\n\r\n');
  c.send('hello');
  const expected = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 9\r\ndate: D\r\n\r\ngot hello';
  t.is(await atLeast(c, expected), expected);
});

/** The rest of a 100 KiB body, in ten 10 KiB pieces 10 ms apart, each filled with `fill(i)` repeated. */
async function sendSlowly(c: { send(data: string | Buffer): void }, fill: (i: number) => string): Promise<void> {
  for (let i = 0; i < 10; i++) {
    c.send(Buffer.alloc(10 * 1024, fill(i)));
    await sleep(10);
  }
}

test('an answer given before a 100 KB body is read arrives at once; the body is read and dropped and the next request is answered', async (t) => {
  const seen: string[] = [];
  const origin = await h1Server(t, (req, res) => {
    seen.push(`${req.method} ${req.url} ${req.body === null ? 'no body' : 'body'}`);
    if (req.method === 'POST') res.writeHead(403, { 'content-type': 'text/plain', 'content-length': '7' }).end('denied\n');
    else res.end('after');
  });
  const c = await rawClient(t, origin.port);
  const denied = 'HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 7\r\ndate: D\r\n\r\ndenied\n';
  c.send(`POST /upload HTTP/1.1\r\nhost: weft.test\r\ncontent-length: ${100 * 1024}\r\n\r\n`);
  t.is(await atLeast(c, denied), denied);
  // The rest, slowly; "GET" inside it must not be taken for a request.
  await sendSlowly(c, (i) => (i % 2 ? 'GET / HTTP/1.1\r\n' : 'x'));
  c.send(get('/after'));
  const expected = denied + 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: D\r\n\r\nafter';
  t.is(await atLeast(c, expected), expected);
  t.deepEqual(seen, ['POST /upload body', 'GET /after no body']);
  t.is(origin.connections, 1);
});

test('an answer given while a reader is still taking the body (a relay whose upstream answered early) leaves the body to that reader, whole', async (t) => {
  const relayed: number[] = [];
  const origin = await h1Server(t, (req, res) => {
    if (req.body) {
      let n = 0;
      req.body.on('data', (d: Buffer) => (n += d.length));
      req.body.on('end', () => relayed.push(n));
    }
    res.end(req.body ? 'early' : 'next');
  });
  const c = await rawClient(t, origin.port);
  const early = 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: D\r\n\r\nearly';
  c.send(`POST /relay HTTP/1.1\r\nhost: weft.test\r\ncontent-length: ${100 * 1024}\r\n\r\n`);
  t.is(await atLeast(c, early), early);
  await sendSlowly(c, () => 'GET / HTTP/1.1\r\n');
  c.send(get('/next'));
  const expected = early + 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\ndate: D\r\n\r\nnext';
  t.is(await atLeast(c, expected), expected);
  // Not dropped because the answer came first: the reader got all of it (a relay must send the whole body on).
  t.deepEqual(relayed, [100 * 1024]);
});

test('a body its reader destroys (its upstream went away) is read and dropped; the next request is answered', async (t) => {
  const origin = await h1Server(t, (req, res) => {
    if (!req.body) return void res.end('next');
    req.body.once('data', () => req.body!.destroy()); // as the pool does when the connection it streams to dies
    res.end('gone');
  });
  const c = await rawClient(t, origin.port);
  const gone = 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\ndate: D\r\n\r\ngone';
  c.send(`POST /relay HTTP/1.1\r\nhost: weft.test\r\ncontent-length: ${100 * 1024}\r\n\r\n`);
  t.is(await atLeast(c, gone), gone);
  await sendSlowly(c, () => 'x');
  c.send(get('/next'));
  const expected = gone + 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\ndate: D\r\n\r\nnext';
  t.is(await atLeast(c, expected), expected);
  t.is(origin.connections, 1);
});

test('a chunked body of tiny chunks reaches its reader joined, not as one Buffer per chunk, and intact', async (t) => {
  let pieces = 0;
  const origin = await h1Server(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.body!.on('data', (c: Buffer) => (pieces++, chunks.push(c)));
    req.body!.on('end', () => res.end(`${Buffer.concat(chunks).length} bytes, ${new Set(Buffer.concat(chunks).toString()).size} letters`));
  });
  const c = await rawClient(t, origin.port);
  // 20,000 one-byte chunks (a 5-byte frame each): ~100 KB on the wire, in a handful of reads.
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  let body = '';
  for (let i = 0; i < 20_000; i++) body += `1\r\n${letters[i % 26]}\r\n`;
  c.send(`POST /tiny HTTP/1.1\r\nhost: weft.test\r\ntransfer-encoding: chunked\r\n\r\n${body}0\r\n\r\n`);
  const expected = 'HTTP/1.1 200 OK\r\ncontent-length: 23\r\ndate: D\r\n\r\n20000 bytes, 26 letters';
  t.is(await atLeast(c, expected, 5000), expected);
  // At most one piece per 16 KiB held or per read (a read is at most 64 KiB of the ~100 KB sent).
  t.true(pieces <= 10, `${pieces} pieces`);
});
