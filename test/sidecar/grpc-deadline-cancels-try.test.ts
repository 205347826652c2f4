// When the route's timeout or the caller's grpc-timeout runs out before any answer, the sidecar answers
// DEADLINE_EXCEEDED and gives up the try that was waiting: its stream to the app is cancelled (as Envoy resets the
// upstream request), not left running for as long as the caller keeps its request open. When the per-try timeout
// ends the last try, the caller is told it was a timeout (504, DEADLINE_EXCEEDED), as over HTTP/1. Through real
// sidecars and a node:http2 app that never answers.

import test from 'ava';
import http2 from 'node:http2';
import { once } from 'node:events';
import { waitFor, type SidecarProc } from '../helpers/mesh.ts';
import { h2AppMesh, type H2AppMesh } from '../helpers/h2-app-mesh.ts';
import { headerRule, routeYaml } from '../helpers/mesh-yaml.ts';
import { inFlight } from '../helpers/metrics.ts';

let app: http2.Http2Server;
let m: H2AppMesh;
let web: SidecarProc;
let caller: http2.ClientHttp2Session;
/** the app's streams by path, with whether each has closed */
const appStreams = new Map<string, { closed: boolean }>();

test.before(async () => {
  app = http2.createServer();
  // Never answers; /read reads its request, /stall does not.
  app.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const seen = { closed: false };
    appStreams.set(String(headers[':path']), seen);
    stream.on('close', () => (seen.closed = true));
    if (headers[':path'] === '/svc/Read') stream.resume();
  });
  const perTry = headerRule('x-rule', 'per-try', '      retries: {attempts: 1, perTryTimeout: 200ms, on: [reset], budget: {percent: 100, minPerSecond: 100}}\n');
  const extra = routeYaml('app', `${perTry}    - destinations: [{weight: 100}]\n`);
  m = await h2AppMesh(app, extra);
  web = m.web;
  caller = m.connect();
});

test.after.always(async () => {
  await m?.stop();
});

/** A call with grpc-timeout 300m; resolves with the grpc-status of the answer's head once it comes. */
function call(path: string, stream: http2.ClientHttp2Stream = caller.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' })): { stream: http2.ClientHttp2Stream; status: Promise<string> } {
  stream.on('error', () => {});
  stream.resume();
  return { stream, status: new Promise((resolve) => stream.once('response', (h) => resolve(String(h['grpc-status'])))) };
}

test.serial("a client-streaming call past its deadline: the caller gets DEADLINE_EXCEEDED and the app's stream is cancelled", async (t) => {
  const { stream, status } = call('/svc/Read');
  t.teardown(() => stream.close(http2.constants.NGHTTP2_CANCEL));
  // The caller keeps sending (it has not ended its request), as a client-streaming caller does.
  const sending = setInterval(() => stream.write('message'), 50);
  t.teardown(() => clearInterval(sending));
  t.is(await status, '4');
  await waitFor("the app's stream cancelled", () => appStreams.get('/svc/Read')?.closed || undefined, 2000);
  t.pass();
});

test.serial('a request held back by backpressure when the deadline answers: the try is given up and the call ends', async (t) => {
  const { stream, status } = call('/svc/Stall');
  // Far more than the HTTP/2 windows hold: the app reads none of it, so the sidecars' relays pause on it.
  stream.end(Buffer.alloc(2 * 1024 * 1024));
  t.is(await status, '4');
  const stuck = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 5000);
  await once(stream, 'close');
  clearTimeout(stuck);
  t.not(stream.rstCode, http2.constants.NGHTTP2_CANCEL, 'the call ended by itself, not when the caller gave up');
  await waitFor("the app's stream cancelled", () => appStreams.get('/svc/Stall')?.closed || undefined, 2000);
  await waitFor('no request in flight at web', async () => (await inFlight(web)) === 0 || undefined, 5000);
  t.pass();
});

test.serial('a per-try timeout that ends the last try is answered as a timeout (DEADLINE_EXCEEDED), not as a connect failure', async (t) => {
  const stream = caller.request({ ':method': 'POST', ':path': '/svc/Read', 'content-type': 'application/grpc', te: 'trailers', 'x-rule': 'per-try' });
  stream.on('error', () => {});
  stream.end('message');
  const [head] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  stream.resume();
  t.is(head['x-weft-reason'], 'timeout', decodeURIComponent(String(head['grpc-message'])));
  t.is(head['grpc-status'], '4');
  t.regex(decodeURIComponent(String(head['grpc-message'])), /per-try timeout of 200 ms/);
});
