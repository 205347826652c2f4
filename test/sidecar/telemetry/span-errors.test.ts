// Failed requests as OpenTelemetry's HTTP conventions have them: a span that ends in error says why in
// `error.type` (the status code as a string when one was answered, else a low-cardinality cause), and a request
// that got no answer at all has no `http.response.status_code` (the attribute is set if and only if one was sent).

import test from 'ava';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { startMesh, type SidecarProc, type TestMesh } from '../../helpers/mesh.ts';
import { meshYaml } from '../../helpers/mesh-yaml.ts';
import { SpanKind, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../../helpers/otlp-receiver.ts';

let receiver: OtlpReceiver;
let mesh: TestMesh;
let app: http.Server;
let web: SidecarProc;

test.before(async () => {
  receiver = await startOtlpReceiver();
  // Answers ?status=N after ?delay=MS.
  app = http.createServer((req, res) => {
    const u = new URL(req.url!, 'http://app');
    setTimeout(() => res.writeHead(Number(u.searchParams.get('status') ?? 200)).end('ok'), Number(u.searchParams.get('delay') ?? 0));
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  mesh = await startMesh(meshYaml({ mesh: `tracing: {endpoint: "${receiver.url}", sampling: 1}`, services: { web: '{port: 8080}', catalog: '{port: 8081}', nobody: '{port: 8082}' } }));
  await mesh.sidecar({ service: 'catalog', appPort: (app.address() as AddressInfo).port });
  web = await mesh.sidecar({ service: 'web', appPort: 1 });
});

test.after.always(async () => {
  await mesh?.stop();
  app?.closeAllConnections();
  app?.close();
  await receiver?.close();
});

/** A call through web's outbound port; `giveUpMs`: the caller closes its connection after that long. */
function call(host: string, path: string, traceId: string, giveUpMs?: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: web.ports.outbound, path, headers: { host, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', () => resolve(0));
    if (giveUpMs !== undefined) setTimeout(() => req.destroy(), giveUpMs);
    req.end();
  });
}

function spansOf(traceId: string, kinds: number[]): Promise<ReceivedSpan[]> {
  return receiver.waitFor(`spans of ${traceId}`, (spans) => {
    const found = kinds.map((k) => spans.find((s) => s.traceId === traceId && s.kind === k));
    return found.every(Boolean) ? (found as ReceivedSpan[]) : undefined;
  });
}

test('an app\'s 500: both spans are errors, with error.type "500"', async (t) => {
  const traceId = randomBytes(16).toString('hex');
  t.is(await call('catalog', '/?status=500', traceId), 500);
  const [client, server] = await spansOf(traceId, [SpanKind.CLIENT, SpanKind.SERVER]);
  for (const span of [client!, server!]) {
    t.is(span.status, 2);
    t.like(span.attributes, { 'http.response.status_code': 500, 'error.type': '500' });
  }
});

test('a 404 is an error on the client span only, with error.type "404"', async (t) => {
  const traceId = randomBytes(16).toString('hex');
  t.is(await call('catalog', '/?status=404', traceId), 404);
  const [client, server] = await spansOf(traceId, [SpanKind.CLIENT, SpanKind.SERVER]);
  t.is(client!.attributes['error.type'], '404');
  t.is(server!.status, 0);
  t.false('error.type' in server!.attributes, 'a 4xx is no server error');
});

test('the mesh\'s own answer (no endpoint for the service) is an error with an error.type', async (t) => {
  const traceId = randomBytes(16).toString('hex');
  t.is(await call('nobody', '/', traceId), 503);
  const [client] = await spansOf(traceId, [SpanKind.CLIENT]);
  t.is(client!.status, 2);
  t.is(typeof client!.attributes['error.type'], 'string');
});

test('a caller that gives up before any answer: no http.response.status_code, and an error.type', async (t) => {
  const traceId = randomBytes(16).toString('hex');
  t.is(await call('catalog', '/?delay=1500', traceId, 200), 0);
  const [client, server] = await spansOf(traceId, [SpanKind.CLIENT, SpanKind.SERVER]);
  for (const span of [client!, server!]) {
    t.is(span.status, 2);
    t.false('http.response.status_code' in span.attributes, `${span.kind === SpanKind.CLIENT ? 'client' : 'server'}: ${span.attributes['http.response.status_code']}`);
    t.is(typeof span.attributes['error.type'], 'string');
  }
});
