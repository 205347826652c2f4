// The stream idle timeout (sidecar/http/stream-idle.ts) on the listeners' HTTP/1 and HTTP/2 servers over loopback,
// at 1 s: when it fires (a pure function of the sweeps' clock), and what the caller and the handler see when it
// does. Requests that keep bytes moving are checked next to a quiet one that is cut, so no check passes for want
// of a timeout.

import test from 'ava';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import type { H1Request, H1Response } from '../../../sidecar/http/h1-message.ts';
import { hardenedH2Server } from '../../../sidecar/http/servers.ts';
import { QuietClock } from '../../../sidecar/http/stream-idle.ts';
import { get, h1Server, rawClient, type RawClient } from '../../helpers/h1-server.ts';

const IDLE = { streamIdleTimeoutMs: () => 1000 };
const GET_QUIET = get('/quiet');

test('QuietClock: a stream is idle once a whole timeout has passed after the last sweep before bytes last moved', (t) => {
  // [bytes read at each sweep, from sweep 1], timeout, sweeps at which it is quiet for the timeout
  const cases: [string, number[], number, number[]][] = [
    ['nothing moves after sweep 0: idle from sweep 2 for 1 s (activity may have come just before sweep 1)', [5, 5, 5, 5], 1000, [2, 3, 4]],
    ['bytes move up to sweep 3: idle from sweep 4', [5, 6, 7, 7, 7], 1000, [4, 5]],
    ['1500 ms is never cut short: sweep 3', [5, 5, 5, 5], 1500, [3, 4]],
    ['bytes moving every sweep: never', [1, 2, 3, 4, 5, 6], 1000, []],
    ['0 is off', [5, 5, 5, 5], 0, []],
  ];
  for (const [what, reads, ms, expected] of cases) {
    const clock = new QuietClock(0);
    const quiet = reads.flatMap((bytes, i) => (clock.quietFor(bytes, i + 1, ms) ? [i + 1] : []));
    t.deepEqual(quiet, expected, what);
  }
  // A request dispatched after sweep 7 on a connection quiet since long before: its time starts there.
  const clock = new QuietClock(0);
  t.false(clock.quietFor(9, 1, 1000));
  clock.restart(7);
  t.deepEqual([8, 9, 10].map((tick) => clock.quietFor(9, tick, 1000)), [false, true, true]);
});

/** An H1 server at 1 s whose handler answers /quiet never, and records each response's close (a relay's abort hook). */
async function quietH1(t: import('ava').ExecutionContext, onRequest: (req: H1Request, res: H1Response) => void = () => {}) {
  const closed: string[] = [];
  const origin = await h1Server(t, (req, res) => {
    res.on('close', () => closed.push(req.url));
    onRequest(req, res);
  }, { options: IDLE });
  return { port: origin.port, closed };
}

const answered408 = (c: RawClient) => c.text.startsWith('HTTP/1.1 408 Request Timeout\r\n');

test('HTTP/1: a request never answered gets a 408 with the reason after the timeout, and the connection closes', async (t) => {
  const server = await quietH1(t);
  const c = await rawClient(t, server.port);
  const started = Date.now();
  c.send(GET_QUIET);
  const text = await c.untilClosed(5000);
  const ms = Date.now() - started;
  t.true(answered408(c), text);
  t.regex(text, /\r\nx-weft-reason: stream-idle-timeout\r\n/);
  t.regex(text, /\r\nconnection: close\r\n/);
  t.regex(text, /weft: no byte of this request or its answer moved for 1000 ms \(the mesh's streamIdleTimeout\)\n$/);
  t.true(ms >= 1000 && ms < 3500, `took ${ms} ms`);
  t.deepEqual(server.closed, ['/quiet'], 'the response was not closed, so a relay would not abort its upstream exchange');
});

test('HTTP/1: pipelined requests behind a hung one, from a caller that has left: 408 and the connection closed', async (t) => {
  // The queue fills and the socket stops being read, so the caller's FIN goes unseen: without the timeout the
  // connection would sit in CLOSE-WAIT until the app answered.
  const server = await quietH1(t);
  const c = await rawClient(t, server.port);
  c.send(get('/quiet').repeat(40));
  c.socket.end();
  const text = await c.untilClosed(5000);
  t.true(answered408(c), text);
  t.is(text.match(/HTTP\/1\.1 /g)!.length, 1, 'only the hung request is answered; those behind it go with the connection');
  t.deepEqual(server.closed, ['/quiet']);
});

test('HTTP/1: an answer that stalls after its head is cut off: the connection closes, no 408 after it', async (t) => {
  const server = await quietH1(t, (req, res) => {
    if (req.url !== '/quiet') return;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first part');
  });
  const c = await rawClient(t, server.port);
  c.send(GET_QUIET);
  const text = await c.untilClosed(5000);
  t.regex(text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*first part\r\n$/);
  t.notRegex(text, /408/);
});

test('HTTP/1: a body trickling in for longer than the timeout is not cut, while a quiet request next to it is', async (t) => {
  const server = await quietH1(t, (req, res) => {
    if (req.url === '/upload') req.body!.on('data', () => {}).on('end', () => res.end('got it'));
  });
  const quiet = await rawClient(t, server.port);
  quiet.send(GET_QUIET);
  const upload = await rawClient(t, server.port);
  upload.send('POST /upload HTTP/1.1\r\nhost: weft.test\r\ntransfer-encoding: chunked\r\n\r\n');
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 300));
    upload.send('1\r\na\r\n');
  }
  t.true(quiet.closed && answered408(quiet), 'the quiet request next to it was not cut: is the timeout on?');
  t.is(upload.text, '', 'the upload was cut or answered while its body was still moving');
  upload.send('0\r\n\r\n');
  const text = await upload.until((s) => s.endsWith('got it'));
  t.regex(text, /^HTTP\/1\.1 200 OK\r\n/);
  t.false(upload.closed);
});

/** A hardened HTTP/2 server at 1 s; `onStream` answers or not. */
async function h2(t: import('ava').ExecutionContext, onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void) {
  const server = hardenedH2Server(onStream, 60_000, IDLE.streamIdleTimeoutMs);
  const tcp = net.createServer((socket) => server.emit('connection', socket));
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const session = http2.connect(`http://127.0.0.1:${(tcp.address() as net.AddressInfo).port}`);
  session.on('error', () => {});
  t.teardown(() => (session.destroy(), tcp.close()));
  return session;
}

interface H2Outcome { headers: http2.IncomingHttpHeaders; body: string; trailers: http2.IncomingHttpHeaders; rstCode: number | undefined; ms: number }

function exchange(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, send: (req: http2.ClientHttp2Stream) => void): Promise<H2Outcome> {
  const started = Date.now();
  const req = session.request({ ':method': 'POST', ':path': '/', ...headers });
  req.on('error', () => {});
  send(req);
  const out: H2Outcome = { headers: {}, body: '', trailers: {}, rstCode: undefined, ms: 0 };
  req.on('response', (h) => (out.headers = h)).on('trailers', (h) => (out.trailers = h));
  req.setEncoding('utf8').on('data', (d: string) => (out.body += d));
  return new Promise((resolve) => req.once('close', () => resolve({ ...out, rstCode: req.rstCode, ms: Date.now() - started })));
}

test('HTTP/2: a stream never answered gets the mesh\'s 408, a gRPC one UNAVAILABLE; a caller still sending is ended too', async (t) => {
  const cancelled: string[] = [];
  const session = await h2(t, (stream, headers) => stream.once('close', () => cancelled.push(String(headers['x-name']))));
  const [plain, grpc] = await Promise.all([
    exchange(session, { 'x-name': 'plain' }, (req) => req.write('still sending')),
    exchange(session, { 'x-name': 'grpc', 'content-type': 'application/grpc' }, (req) => req.end()),
  ]);
  t.is(plain.headers[':status'], 408 as never);
  t.is(plain.headers['x-weft-reason'], 'stream-idle-timeout');
  t.is(plain.body, "weft: no byte of this request or its answer moved for 1000 ms (the mesh's streamIdleTimeout)\n");
  t.true(plain.ms >= 1000 && plain.ms < 3500, `took ${plain.ms} ms`);
  t.is(grpc.headers[':status'], 200 as never);
  t.is(grpc.headers['grpc-status'], '14', 'UNAVAILABLE');
  t.is(grpc.headers['x-weft-reason'], 'stream-idle-timeout');
  t.deepEqual(cancelled.sort(), ['grpc', 'plain']);
});

test('HTTP/2: an answer gone quiet mid-stream is reset; a stream moving bytes next to it is not cut', async (t) => {
  // (Relayed by forwardH2, a gRPC answer ends with UNAVAILABLE in its trailers instead: test/sidecar/stream-idle.test.ts.)
  let quietReset: number | undefined;
  const session = await h2(t, (stream, headers) => {
    if (headers['x-name'] === 'moving') {
      stream.on('data', () => {}).on('end', () => stream.destroyed || stream.respond({ ':status': 200 }, { endStream: true }));
      return;
    }
    stream.once('close', () => (quietReset = stream.rstCode));
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(Buffer.from([0, 0, 0, 0, 0]));
  });
  const moving = exchange(session, { 'x-name': 'moving' }, (req) => {
    let n = 0;
    const timer = setInterval(() => (++n < 9 ? req.write('x') : (clearInterval(timer), req.end())), 300);
  });
  const quiet = await exchange(session, { 'x-name': 'quiet', 'content-type': 'application/grpc' }, (req) => req.end());
  t.is(quiet.headers[':status'], 200 as never);
  t.is(quiet.body.length, 5);
  t.deepEqual(quiet.trailers, {});
  t.is(quietReset, http2.constants.NGHTTP2_CANCEL);
  const done = await moving;
  t.is(done.headers[':status'], 200 as never, `a request sending a byte every 300 ms for 2.7 s was cut: ${JSON.stringify(done)}`);
  t.true(done.ms >= 2400, `took ${done.ms} ms`);
});
