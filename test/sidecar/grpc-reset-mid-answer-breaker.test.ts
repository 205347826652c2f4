// An endpoint that resets its streams mid-answer (after the head, before the trailers) is failing, as Envoy counts an
// upstream reset for outlier detection: its circuit breaker opens, with or without a retry policy on the route. The
// caller still gets what was relayed and UNAVAILABLE in the trailers. Through real sidecars and a node:http2 app;
// the app's sidecar reports the reset to web's in the trailers (x-weft-reason: upstream-reset).

import test from 'ava';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startMesh, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';
import { meshYaml, routeYaml, trafficPolicyYaml } from '../helpers/mesh-yaml.ts';

let app: http2.Http2Server;
let mesh: TestMesh;
let web: SidecarProc;
const callers: http2.ClientHttp2Session[] = [];

const BREAKER = '  circuitBreaker: {consecutiveFailures: 2, volumeThreshold: 100, errorThresholdPercentage: 100, resetTimeout: 30s, maxResetTimeout: 60s}\n';

test.before(async () => {
  app = http2.createServer();
  app.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    // /svc/Reset: part of an answer, then the stream reset (INTERNAL_ERROR); anything else: a whole answer
    if (headers[':path'] === '/svc/Reset') stream.write('part', () => setTimeout(() => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR), 20));
    else stream.end('answer');
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const port = (app.address() as AddressInfo).port;
  // `plain` has no retry policy (H2OutboundCall's unretried path); `retried` has one (its attempts loop).
  mesh = await startMesh(meshYaml({
    services: { web: '{port: 8080}', plain: '{port: 8082, protocol: grpc}', retried: '{port: 8083, protocol: grpc}' },
    extra: `${routeYaml('retried', '    - destinations: [{weight: 100}]\n      retries: {attempts: 2, on: [reset, connect-failure], budget: {percent: 100, minPerSecond: 100}}\n')}---
${trafficPolicyYaml('plain', BREAKER)}---
${trafficPolicyYaml('retried', BREAKER)}`,
  }));
  await mesh.sidecar({ service: 'plain', appPort: port });
  await mesh.sidecar({ service: 'retried', appPort: port });
  web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['plain', 'retried'] });
});

test.after.always(async () => {
  for (const c of callers) c.destroy();
  await mesh?.stop();
  app?.close();
});

interface Ended {
  readonly head: http2.IncomingHttpHeaders;
  readonly data: string;
  readonly trailers: http2.IncomingHttpHeaders | null;
}

/** A unary-style gRPC call to `service` through web's sidecar; resolves when its stream closes. */
async function call(service: string, path: string): Promise<Ended> {
  const caller = http2.connect(`http://127.0.0.1:${web.ports.upstreams[service]}`);
  callers.push(caller);
  const stream = caller.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: true });
  stream.on('error', () => {});
  let head: http2.IncomingHttpHeaders = {};
  let data = '';
  let trailers: http2.IncomingHttpHeaders | null = null;
  stream.on('response', (h) => (head = h));
  stream.setEncoding('utf8').on('data', (d: string) => (data += d));
  stream.on('trailers', (tr) => (trailers = tr));
  const stuck = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 10_000);
  await once(stream, 'close');
  clearTimeout(stuck);
  return { head, data, trailers };
}

for (const service of ['plain', 'retried']) {
  test.serial(`${service}: two answers reset mid-way open the endpoint's breaker (consecutiveFailures 2)`, async (t) => {
    t.is((await call(service, '/svc/Ok')).trailers?.['grpc-status'], '0', 'the endpoint answers whole at first');
    for (let i = 0; i < 2; i++) {
      const ended = await call(service, '/svc/Reset');
      t.is(ended.data, 'part');
      t.is(ended.trailers?.['grpc-status'], '14');
      t.is(ended.trailers?.['x-weft-reason'], 'upstream-reset');
    }
    const refused = await call(service, '/svc/Ok');
    t.is(refused.head['x-weft-reason'], 'circuit-open', `the breaker let a call through: ${JSON.stringify(refused)}`);
    t.is(refused.head['grpc-status'], '14');
  });
}
