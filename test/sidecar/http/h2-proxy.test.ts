// forwardH2 (sidecar/http/h2-proxy.ts) between real node:http2 sessions on loopback: what becomes of a try when
// the mesh, the caller or the upstream is done with the call first, when its per-try timeout starts, and when a try counts as broken.

import test, { type ExecutionContext } from 'ava';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { forwardH2, meshReplyH2, relayH2, type H2Try } from '../../../sidecar/http/h2-proxy.ts';
import { ReplayableBody } from '../../../sidecar/http/replayable-body.ts';

type Outcome = { relayed: boolean } | { error: string };
type Forward = (inbound: http2.ServerHttp2Stream) => Promise<{ relayed: boolean }>;

/**
 * `app` on a free port, a session to it (`up`), and a proxy whose streams go to `onStream` (given `up`); resolves
 * with a client session to the proxy. Everything is closed when the test ends.
 */
async function chain(t: ExecutionContext, app: http2.Http2Server, onStream: (inbound: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, up: http2.ClientHttp2Session) => void): Promise<http2.ClientHttp2Session> {
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const up = http2.connect(`http://127.0.0.1:${(app.address() as AddressInfo).port}`);
  const proxy = http2.createServer();
  proxy.on('stream', (inbound, headers) => onStream(inbound, headers, up));
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const client = http2.connect(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}`);
  t.teardown(() => {
    client.destroy();
    up.destroy();
    proxy.close();
    app.close();
  });
  return client;
}

/** An app that answers `delayMs` after a stream opens (or after its request ends); a proxy that runs `forward`. */
async function setup(t: ExecutionContext, delayMs: number, from: 'open' | 'end', forward: (up: http2.ClientHttp2Session) => Forward) {
  const app = http2.createServer();
  app.on('stream', (s) => {
    const answer = () =>
      setTimeout(() => {
        if (!s.destroyed) {
          s.respond({ ':status': 200 });
          s.end('late');
        }
      }, delayMs);
    s.resume();
    if (from === 'open') answer();
    else s.on('end', answer);
  });
  const outcomes: Outcome[] = [];
  let run: Forward | null = null;
  const client = await chain(t, app, (inbound, _headers, up) => {
    run ??= forward(up);
    run(inbound).then((r) => outcomes.push(r), (e: Error & { code?: string }) => outcomes.push({ error: e.code ?? e.message }));
  });
  return { client, outcomes };
}

const HEADERS = { ':method': 'POST', ':path': '/', ':authority': 'app', ':scheme': 'http' };

test('an answer that comes after the mesh answered (a route timeout) is dropped, not sent twice', async (t) => {
  const { client, outcomes } = await setup(t, 300, 'open', (up) => (inbound) => {
    const deadline = setTimeout(() => meshReplyH2(inbound, 504, 'timeout', 'route timeout', false), 100);
    return forwardH2(inbound, up, HEADERS).finally(() => clearTimeout(deadline));
  });
  const req = client.request({ ':method': 'POST', ':path': '/' });
  req.on('error', () => {});
  const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  req.resume();
  // The caller keeps sending after the 504 (a client stream), so the stream stays open when the app answers.
  for (let i = 0; i < 8; i++) {
    req.write('chunk');
    await sleep(50);
  }
  req.end();
  await sleep(200);
  t.is(Number(headers[':status']), 504);
  t.deepEqual(outcomes, [{ relayed: false }]);
});

test('a caller that resets before any answer ends the try without an error against the upstream', async (t) => {
  const { client, outcomes } = await setup(t, 500, 'open', (up) => (inbound) => forwardH2(inbound, up, HEADERS));
  const req = client.request({ ':method': 'POST', ':path': '/' });
  req.on('error', () => {});
  req.write('x');
  await sleep(100);
  req.close(http2.constants.NGHTTP2_CANCEL);
  await sleep(200);
  t.deepEqual(outcomes, [{ relayed: false }]);
});

test('the per-try timeout runs from the end of the request, not from its start', async (t) => {
  // The caller takes 400 ms to send its request, the app answers 100 ms after its end, the per-try timeout is
  // 250 ms: timed from the start the try would fail; timed from the request's end it is answered.
  const { client, outcomes } = await setup(t, 100, 'end', (up) => (inbound) => forwardH2(inbound, up, HEADERS, { body: new ReplayableBody(inbound, 64 * 1024), answerTimeoutMs: 250 }));
  const req = client.request({ ':method': 'POST', ':path': '/' });
  req.on('error', () => {});
  req.resume();
  for (let i = 0; i < 4; i++) {
    req.write('part');
    await sleep(100);
  }
  req.end();
  await sleep(300);
  t.deepEqual(outcomes, [{ relayed: true }]);
});

test("an answer that ends while the relay of the request is paused on the upstream's backpressure: the caller's stream still closes", async (t) => {
  // An app that answers whole without reading the request, then resets its stream with NO_ERROR (RFC 9113 §8.1).
  // The request (past what the windows hold) stalls in the relay; unless the relay lets go of it once the upstream
  // is gone, node:http2 never emits 'close' for the caller's stream (the handler's observation never ends).
  const app = http2.createServer();
  app.on('stream', (s) => {
    s.on('error', () => {});
    setTimeout(() => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => {
        s.sendTrailers({ 'grpc-status': '0' });
        setImmediate(() => s.close(http2.constants.NGHTTP2_NO_ERROR));
      });
      s.end('answer');
    }, 300);
  });
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  const client = await chain(t, app, (inbound, _headers, up) => {
    inbound.once('close', resolveClosed);
    relayH2(inbound, up, HEADERS, {}, () => {});
  });
  const req = client.request({ ':method': 'POST', ':path': '/', 'content-type': 'application/grpc' });
  req.on('error', () => {});
  let trailers = null as http2.IncomingHttpHeaders | null;
  req.on('trailers', (tr) => (trailers = tr)).resume();
  req.end(Buffer.alloc(256 * 1024));
  await once(req, 'close');
  t.is(trailers?.['grpc-status'], '0');
  t.true(await Promise.race([closed.then(() => true), sleep(2000).then(() => false)]), "the proxy's stream from the caller closed");
});

test('an answer the upstream resets mid-way is a broken try (the endpoint failed); a reset after a whole trailers-only answer is not', async (t) => {
  // /part: part of a gRPC answer, then RST_STREAM (INTERNAL_ERROR); /whole: a trailers-only answer and at once
  // RST_STREAM (CANCEL), the request still open, as some servers end such a stream.
  const app = http2.createServer();
  app.on('stream', (s, headers) => {
    s.on('error', () => {});
    if (headers[':path'] === '/part') {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' });
      s.write('part', () => setTimeout(() => s.close(http2.constants.NGHTTP2_INTERNAL_ERROR), 20));
    } else {
      s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5' }, { endStream: true });
      s.close(http2.constants.NGHTTP2_CANCEL);
    }
  });
  const outcomes = new Map<string, H2Try>();
  const client = await chain(t, app, (inbound, headers, up) => {
    relayH2(inbound, up, { ...HEADERS, ':path': headers[':path'] }, {}, (_err, outcome) => outcomes.set(String(headers[':path']), outcome));
  });
  for (const path of ['/part', '/whole']) {
    const req = client.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc' });
    req.on('error', () => {});
    req.resume().write('request, not ended');
    await new Promise((resolve) => req.on('close', resolve));
  }
  t.deepEqual(outcomes.get('/part'), { relayed: true, broken: true });
  t.deepEqual(outcomes.get('/whole'), { relayed: true });
});
