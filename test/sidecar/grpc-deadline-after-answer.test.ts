// A route timeout that runs out after the app's answer has ended (its trailers are at the sidecar) but before the
// caller has read all of it: the answer is only being passed on, and the caller gets all of it with the app's own
// status, as Envoy's route timeout stops at the upstream's end of stream. Before, the sidecar cut it off with
// DEADLINE_EXCEEDED, dropping the rest of a complete answer. Through real sidecars and a node:http2 app.

import test from 'ava';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startMesh, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';
import { meshYaml, routeYaml } from '../helpers/mesh-yaml.ts';

/** more than a caller that does not read takes in (its HTTP/2 windows), less than the sidecars hold on to */
const ANSWER = 128 * 1024;

let app: http2.Http2Server;
let mesh: TestMesh;
let web: SidecarProc;
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
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  mesh = await startMesh(meshYaml({
    services: { web: '{port: 8080}', app: '{port: 8082, protocol: grpc}' },
    extra: routeYaml('app', '    - destinations: [{weight: 100}]\n      timeout: 300ms\n'),
  }));
  await mesh.sidecar({ service: 'app', appPort: (app.address() as AddressInfo).port });
  web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['app'] });
  // A small window, so that what the caller does not read stays in the sidecars.
  caller = http2.connect(`http://127.0.0.1:${web.ports.upstreams.app}`, { settings: { initialWindowSize: 16 * 1024 } });
});

test.after.always(async () => {
  caller?.destroy();
  await mesh?.stop();
  app?.close();
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
