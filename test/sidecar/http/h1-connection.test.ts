// H1Pool's wire side (sidecar/http/h1-connection.ts) against real loopback origins: how answers are framed and
// parsed (chunked, close-delimited, HEAD, 1xx, 204/304, trailers, invalid answers, oversized heads), how
// request bodies are sent, and backpressure.

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { call, header, httpOrigin, pathOf, poolTo, rawOrigin, type Outcome } from '../../helpers/h1-origins.ts';

test('a chunked answer arrives whole, with its trailers; trailers do not leak into the next answer', async (t) => {
  const origin = await httpOrigin(t, (req, res) => {
    if (req.url === '/plain') return void res.end('plain');
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    res.write('abc');
    setTimeout(() => {
      res.write('def');
      res.addTrailers({ 'x-checksum': 'sum-abcdef' });
      res.end();
    }, 10);
  });
  const { pool } = poolTo(t, origin.port);

  const chunked = await call(pool, { path: '/chunked' });
  t.is(chunked.error, null);
  t.deepEqual(header(chunked.headers, 'transfer-encoding'), ['chunked']);
  t.is(chunked.body.toString(), 'abcdef');
  t.deepEqual(chunked.trailers, ['x-checksum', 'sum-abcdef']);

  const plain = await call(pool, { path: '/plain' });
  t.is(plain.body.toString(), 'plain');
  t.deepEqual(plain.trailers, []);
  t.is(origin.connections, 1);
});

test('an answer delimited by the end of the connection arrives whole; the next request opens a new connection', async (t) => {
  const origin = await rawOrigin(t, (s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nfirst part, ');
    setTimeout(() => s.end('second part'), 20);
  });
  const { pool } = poolTo(t, origin.port);

  const a = await call(pool);
  t.is(a.error, null);
  t.deepEqual(a.statuses, [200]);
  t.is(a.body.toString(), 'first part, second part');
  t.deepEqual(a.trailers, []);

  const b = await call(pool);
  t.is(b.body.toString(), 'first part, second part');
  t.is(origin.connections, 2);
});

test('a HEAD answer with content-length: 5 has no body; the connection carries the next request', async (t) => {
  const origin = await rawOrigin(t, (s, head) => {
    if (head.startsWith('HEAD ')) s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n');
    else s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello');
  });
  const { pool } = poolTo(t, origin.port);

  const h = await call(pool, { method: 'HEAD' });
  t.is(h.error, null);
  t.deepEqual(h.statuses, [200]);
  t.deepEqual(header(h.headers, 'content-length'), ['5']);
  t.is(h.body.length, 0);

  const g = await call(pool);
  t.is(g.error, null);
  t.is(g.body.toString(), 'hello');
  t.is(origin.connections, 1);
});

test('100 Continue and 103 Early Hints are skipped: onHeaders sees only the final answer', async (t) => {
  const informational = ['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n'];
  const final = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-final: yes\r\n\r\nok';
  const origin = await rawOrigin(t, (s, _head, n) => {
    if (n === 1) return void s.write(informational.join('') + final); // all in one segment
    // one piece at a time, so the parser meets each head in its own read
    const pieces = [...informational, final];
    const next = () => {
      s.write(pieces.shift()!);
      if (pieces.length) setTimeout(next, 10);
    };
    next();
  });
  const { pool } = poolTo(t, origin.port);

  for (const round of ['one write', 'separate writes']) {
    const o = await call(pool);
    t.is(o.error, null, round);
    t.deepEqual(o.statuses, [200], round);
    t.deepEqual(o.headers, ['content-length', '2', 'x-final', 'yes'], round);
    t.is(o.body.toString(), 'ok', round);
  }
  t.is(origin.connections, 1);
});

test('204 and 304 complete without a body, even with a content-length on the 304', async (t) => {
  const answers: Record<string, string> = {
    '/204': 'HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n',
    '/304': 'HTTP/1.1 304 Not Modified\r\netag: "v1"\r\ncontent-length: 10\r\n\r\n',
    '/after': 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nafter',
  };
  const origin = await rawOrigin(t, (s, head) => s.write(answers[pathOf(head)]!));
  const { pool } = poolTo(t, origin.port);

  const noContent = await call(pool, { path: '/204' });
  t.is(noContent.error, null);
  t.deepEqual(noContent.statuses, [204]);
  t.is(noContent.body.length, 0);

  const notModified = await call(pool, { path: '/304' });
  t.is(notModified.error, null);
  t.deepEqual(notModified.statuses, [304]);
  t.deepEqual(header(notModified.headers, 'etag'), ['"v1"']);
  t.is(notModified.body.length, 0);

  // Had either read a body, this answer would be cut or misread.
  const after = await call(pool, { path: '/after' });
  t.is(after.body.toString(), 'after');
  t.is(origin.connections, 1);
});

test('request bodies: a Buffer with its length, a stream chunked, a stream with a content-length sent raw', async (t) => {
  const origin = await httpOrigin(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () =>
      res.end(JSON.stringify({ length: req.headers['content-length'] ?? null, te: req.headers['transfer-encoding'] ?? null, body: Buffer.concat(chunks).toString('base64') })),
    );
  });
  const { pool } = poolTo(t, origin.port);
  const post = async (headers: Record<string, string>, body: Buffer | Readable) => {
    const o = await call(pool, { method: 'POST', path: '/upload', headers: { host: 'origin.test', ...headers }, body });
    t.is(o.error, null);
    t.deepEqual(o.statuses, [200]);
    const seen = JSON.parse(o.body.toString()) as { length: string | null; te: string | null; body: string };
    return { ...seen, body: Buffer.from(seen.body, 'base64') };
  };

  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  t.deepEqual(await post({}, bytes), { length: '256', te: null, body: bytes });
  // A content-length the caller already set is not sent twice (node's server would refuse a duplicate).
  t.deepEqual(await post({ 'content-length': '3' }, Buffer.from('abc')), { length: '3', te: null, body: Buffer.from('abc') });
  // The empty chunk in the middle must not be framed: a zero-size chunk would end the body early.
  const streamed = await post({}, Readable.from([Buffer.from('hello, '), Buffer.alloc(0), Buffer.from('stream')]));
  t.deepEqual(streamed, { length: null, te: 'chunked', body: Buffer.from('hello, stream') });
  const raw = await post({ 'content-length': '11' }, Readable.from([Buffer.from('hello'), Buffer.from(' world')]));
  t.deepEqual(raw, { length: '11', te: null, body: Buffer.from('hello world') });
  t.is(origin.connections, 1);
});

// H1Request.body is typed `Readable`, and Readable.from(['...']) yields strings: a chunk's size must be its
// length in bytes, not in UTF-16 code units (relayH1 itself only passes request bodies, which yield Buffers).
test('a stream body of non-ASCII strings is framed by byte length, not character count', async (t) => {
  const origin = await httpOrigin(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(Buffer.concat(chunks)));
  });
  const { pool } = poolTo(t, origin.port);
  const o = await call(pool, { method: 'POST', headers: { host: 'origin.test' }, body: Readable.from(['héllo, ', 'wörld']) });
  t.is(o.error, null);
  t.deepEqual(o.statuses, [200]);
  t.is(o.body.toString(), 'héllo, wörld');
});

test('Buffer bodies arrive byte-exact, whether small enough to share the head\'s write (every byte value) or not (5 KB)', async (t) => {
  const origin = await httpOrigin(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(`${req.headers['content-length']} ${createHash('sha256').update(Buffer.concat(chunks)).digest('hex')}`));
  });
  const { pool } = poolTo(t, origin.port);
  const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  for (const body of [every, randomBytes(5000), Buffer.alloc(0)]) {
    const o = await call(pool, { method: 'POST', headers: { host: 'origin.test' }, body });
    t.is(o.error, null);
    t.is(o.body.toString(), `${body.length} ${createHash('sha256').update(body).digest('hex')}`);
  }
});

// As in Envoy and undici (GHSA-35p6-xmwp-9g52): a connection goes to the next request only once the segment
// that completed the answer is parsed to its end. Otherwise an origin that sends one answer too many (buggy,
// or hostile) answers a request it never saw, and on the inbound pool, which all callers share, another
// caller gets it.
test('bytes after an answer, in the same segment, close the connection: they are never taken as the answer to the next queued request', async (t) => {
  const origin = await rawOrigin(t, (s, head) => {
    if (pathOf(head) === '/a') s.write('HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\naHTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled');
    else s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nb!');
  });
  const { pool } = poolTo(t, origin.port, { connections: 1 });
  const [a, b] = await Promise.all([call(pool, { path: '/a' }), call(pool, { path: '/b' })]);
  t.is(a.body.toString(), 'a');
  t.is(b.error, null);
  t.is(b.body.toString(), 'b!'); // its own answer, on a new connection once the surplus has closed the first
});

test('invalid answers fail the exchange once with an llhttp error, and the pool carries on', async (t) => {
  const answers: Record<string, string> = {
    '/duplicate-length': 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!',
    '/bare-lf': 'HTTP/1.1 200 OK\ncontent-length: 2\n\nok',
    '/garbage': 'SSH-2.0-OpenSSH_9.6\r\n\r\n',
    // RFC 9112 §6.1: both at once is how request smuggling starts; llhttp's strict mode refuses it.
    '/length-and-chunked': 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    '/bad-chunk': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
    // A coding other than chunked (RFC 9112 §6.1): relayed as chunked, it would reach the caller undone.
    '/gzip-chunked': 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    '/gzip': 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nabc',
    '/good': 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ngood',
  };
  const origin = await rawOrigin(t, (s, head) => s.write(answers[pathOf(head)]!));
  const { pool } = poolTo(t, origin.port);

  // path: the llhttp error it must fail with
  const expected: Record<string, string> = {
    '/duplicate-length': 'HPE_UNEXPECTED_CONTENT_LENGTH',
    '/bare-lf': 'HPE_CR_EXPECTED',
    '/garbage': 'HPE_INVALID_CONSTANT',
    '/length-and-chunked': 'HPE_INVALID_TRANSFER_ENCODING',
    '/bad-chunk': 'HPE_INVALID_CHUNK_SIZE',
    '/gzip-chunked': 'UND_ERR_SOCKET',
    '/gzip': 'UND_ERR_SOCKET',
  };
  const results: [string, Outcome][] = [];
  for (const path of Object.keys(expected)) results.push([path, await call(pool, { path })]);
  await sleep(50); // room for a late second onError/onComplete
  for (const [path, o] of results) {
    t.is(o.error?.code, expected[path], path);
    t.is(o.settles, 1, path);
    t.is(o.trailers, null, path);
    // A broken head never reaches onHeaders; a broken body comes after exactly one.
    t.deepEqual(o.statuses, path === '/bad-chunk' ? [200] : [], path);
  }

  const good = await call(pool, { path: '/good' });
  t.is(good.error, null);
  t.is(good.body.toString(), 'good');
  t.is(origin.connections, 8); // no connection is reused after a parse error
});

test('backpressure: onData returning false pauses the socket until resume; a 5 MB body arrives intact', async (t) => {
  const payload = randomBytes(5 * 1024 * 1024);
  const origin = await httpOrigin(t, (_req, res) => res.end(payload));
  const { pool, sockets } = poolTo(t, origin.port);

  let resume: () => void = () => {};
  let paused = false;
  let chunks = 0;
  let dataWhilePaused = 0;
  let notPaused = 0;
  const o = await call(
    pool,
    {},
    {
      timeoutMs: 1800,
      onHeaders: (_status, _raw, r) => (resume = r),
      onData() {
        if (paused) dataWhilePaused++;
        paused = true;
        // The first pause is long enough for more data to have arrived, had the socket kept reading.
        setTimeout(() => {
          if (!sockets[0]!.isPaused()) notPaused++;
          paused = false;
          resume();
        }, chunks++ === 0 ? 50 : 0);
        return false;
      },
    },
  );
  t.is(o.error, null);
  t.true(chunks > 1, `${chunks} chunks`);
  t.is(dataWhilePaused, 0);
  t.is(notPaused, 0);
  t.is(o.body.length, payload.length);
  t.is(createHash('sha256').update(o.body).digest('hex'), createHash('sha256').update(payload).digest('hex'));
});

test('an answer head larger than node\'s 16 KiB limit fails with HPE_HEADER_OVERFLOW', async (t) => {
  const origin = await rawOrigin(t, (s) => s.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(20_000)}\r\ncontent-length: 2\r\n\r\nok`));
  const { pool } = poolTo(t, origin.port);
  const o = await call(pool);
  t.is(o.error?.code, 'HPE_HEADER_OVERFLOW');
  t.deepEqual(o.statuses, []);
});

test('a head of more than 32 fields, sent in pieces, arrives whole and in order', async (t) => {
  // Past 32 fields node's parser hands headers over in batches (kOnHeaders) before the head completes.
  const fields = Array.from({ length: 40 }, (_, i) => [`x-field-${i}`, `value ${i}`]);
  const head = `HTTP/1.1 200 OK\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join('')}content-length: 2\r\n\r\nok`;
  const origin = await rawOrigin(t, (s) => {
    const cut = [0, 300, 700, head.length];
    let i = 0;
    const next = () => {
      s.write(head.slice(cut[i], cut[i + 1]));
      if (++i < cut.length - 1) setTimeout(next, 5);
    };
    next();
  });
  const { pool } = poolTo(t, origin.port);
  const o = await call(pool);
  t.is(o.error, null);
  t.deepEqual(o.headers, [...fields.flat(), 'content-length', '2']);
  t.is(o.body.toString(), 'ok');
});
