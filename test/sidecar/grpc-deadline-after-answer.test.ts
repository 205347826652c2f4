// A route timeout that runs out after the app's answer has ended (its trailers are at the sidecar) but before the
// caller has read all of it: the answer is only being passed on, and the caller gets all of it with the app's own
// status, as Envoy's route timeout stops at the upstream's end of stream. Before, the sidecar cut it off with
// DEADLINE_EXCEEDED, dropping the rest of a complete answer. Through real sidecars and a node:http2 app.

import test from 'ava';
import http2 from 'node:http2';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { h2AppMesh, type H2AppMesh } from '../helpers/h2-app-mesh.ts';
import { routeYaml } from '../helpers/mesh-yaml.ts';

/** more than a caller that does not read takes in (its HTTP/2 windows), less than the sidecars hold on to */
const ANSWER = 128 * 1024;

let app: http2.Http2Server;
let m: H2AppMesh;
let caller: http2.ClientHttp2Session;

test.before(async () => {
  app = http2.createServer();
  app.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.resume();
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(Buffer.alloc(ANSWER, 'a'));
  });
  m = await h2AppMesh(app, routeYaml('app', '    - destinations: [{weight: 100}]\n      timeout: 300ms\n'));
  // A small window, so that what the caller does not read stays in the sidecars.
  caller = m.connect({ initialWindowSize: 16 * 1024 });
});

test.after.always(async () => {
  await m?.stop();
});

test('an answer the app ended before the route timeout reaches a caller that reads it late whole, with its own status', async (t) => {
  const stream = caller.request({ ':method': 'POST', ':path': '/svc/Big', 'content-type': 'application/grpc', te: 'trailers' }, { endStream: true });
  stream.on('error', () => {});
  let bytes = 0;
  let trailers = null as http2.IncomingHttpHeaders | null;
  stream.on('trailers', (tr) => (trailers = tr));
  await once(stream, 'response');
  // Reads nothing until well past the route timeout; the app answered at once.
  await sleep(700);
  stream.on('data', (d: Buffer) => (bytes += d.length));
  await once(stream, 'close');
  t.is(trailers?.['grpc-status'], '0', JSON.stringify(trailers));
  t.is(bytes, ANSWER);
});
