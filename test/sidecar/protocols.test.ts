// Two (and more) sidecars as real processes, real apps behind them, and real clients: curl, grpc-js, ws, TCP.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { grpcPrices, httpEcho, pricesProto, tcpEcho, type App } from '../helpers/apps.ts';
import { run as runTool } from '../helpers/ca.ts';
import { startMesh, waitFor, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';
import { sample } from '../helpers/metrics.ts';

// prices has a route timeout (1 s: room for a first call on a loaded machine), so a slow call (2 s) ends with
// DEADLINE_EXCEEDED from the mesh.
const YAML = meshYaml({
  services: { web: '{port: 8080}', catalog: '{port: 8081}', prices: '{port: 8082, protocol: grpc}', echo: '{port: 8083, protocol: tcp}' },
  extra: 'apiVersion: weft/v1\nkind: Route\nmetadata: {name: prices}\nspec:\n  service: prices\n  rules:\n    - destinations: [{weight: 100}]\n      timeout: 1s\n',
});

const WEB_ID = 'spiffe://shop.example/ns/default/sa/web';

let mesh: TestMesh;
let apps: { web: App; catalog: App; prices: App; echo: App };
let web: SidecarProc;

test.before(async () => {
  apps = { web: await httpEcho('web'), catalog: await httpEcho('catalog'), prices: await grpcPrices(), echo: await tcpEcho() };
  mesh = await startMesh(YAML);
  await Promise.all([
    mesh.sidecar({ service: 'catalog', appPort: apps.catalog.port }),
    mesh.sidecar({ service: 'prices', appPort: apps.prices.port }),
    mesh.sidecar({ service: 'echo', appPort: apps.echo.port }),
  ]);
  web = await mesh.sidecar({ service: 'web', appPort: apps.web.port, upstreams: ['catalog', 'prices', 'echo'] });
});

test.after.always(async () => {
  await mesh?.stop();
  await Promise.all(Object.values(apps ?? {}).map((a) => a.close()));
});

test('curl through the outbound port reaches the other app, which sees the caller\'s identity', async (t) => {
  // HTTP_PROXY style (absolute URI), and Host-header style.
  const viaProxy = await runTool('curl', ['-sS', '--fail-with-body', '-x', `http://127.0.0.1:${web.ports.outbound}`, 'http://catalog/items?sku=1']);
  t.is(viaProxy.code, 0, viaProxy.stderr + viaProxy.stdout);
  const a = JSON.parse(viaProxy.stdout);
  t.like(a, { app: 'catalog', url: '/items?sku=1', host: 'catalog', peer: WEB_ID });
  const viaHost = await runTool('curl', ['-sS', '--fail-with-body', '-H', 'Host: catalog.default', '--data', 'hello', `http://127.0.0.1:${web.ports.outbound}/orders`]);
  t.like(JSON.parse(viaHost.stdout), { app: 'catalog', method: 'POST', url: '/orders', host: 'catalog.default', peer: WEB_ID, body: 'hello' });
  // HTTP/1.0 is accepted, not answered with 426.
  const old = await runTool('curl', ['-sS', '--http1.0', '-x', `http://127.0.0.1:${web.ports.outbound}`, 'http://catalog/old']);
  t.like(JSON.parse(old.stdout), { app: 'catalog', url: '/old' });
  // Through the per-upstream port too.
  const port = await runTool('curl', ['-sS', `http://127.0.0.1:${web.ports.upstreams.catalog}/direct`]);
  t.like(JSON.parse(port.stdout), { app: 'catalog', url: '/direct', peer: WEB_ID });
});

test('an 8 MB body each way through both sidecars, to a caller that reads slowly, arrives intact', async (t) => {
  // The answer outruns the caller, so both relays must stop reading their upstream and resume on 'drain'.
  const sent = randomBytes(6 * 1024 * 1024).toString('base64'); // 8 MB of text
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: web.ports.outbound, method: 'POST', path: '/big', headers: { host: 'catalog', 'content-type': 'text/plain' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.once('data', (c: Buffer) => {
        chunks.push(c);
        res.pause();
        setTimeout(() => res.on('data', (d: Buffer) => chunks.push(d)).resume(), 300);
      });
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(sent);
  });
  t.is(status, 200);
  const echoed = JSON.parse(body) as { url: string; peer: string; body: string };
  t.is(echoed.url, '/big');
  t.is(echoed.peer, WEB_ID);
  t.is(echoed.body.length, sent.length);
  t.true(echoed.body === sent, 'the body came back byte for byte');
});

test('an identity header sent by the calling app is replaced, never passed on', async (t) => {
  const r = await runTool('curl', ['-sS', '-H', 'x-weft-peer-identity: spiffe://shop.example/ns/default/sa/admin', '-H', 'X-Weft-Anything: x', '-x', `http://127.0.0.1:${web.ports.outbound}`, 'http://catalog/spoof']);
  t.is(JSON.parse(r.stdout).peer, WEB_ID);
  const seen = apps.catalog.seen.find((s) => s.url === '/spoof')!;
  t.is(seen.headers['x-weft-peer-identity'], WEB_ID);
  t.is(seen.headers['x-weft-anything'], undefined);
});

test('an unknown service gets a mesh 404 with a reason header', async (t) => {
  const r = await runTool('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${web.ports.outbound}`, 'http://nowhere/']);
  t.regex(r.stdout, /^HTTP\/1\.1 404/);
  t.regex(r.stdout, /x-weft-reason: no-route/i);
  t.regex(r.stdout, /nowhere is not a service in this mesh/);
});

test('gRPC unary, server-streaming and client-streaming calls work through the mesh, and a non-OK status survives', async (t) => {
  const proto = pricesProto();
  const Client = proto.Prices as unknown as grpc.ServiceClientConstructor;
  const client = new Client(`127.0.0.1:${web.ports.upstreams.prices}`, grpc.credentials.createInsecure()) as unknown as { Get: Function; Watch: Function; Collect: Function } & grpc.Client;
  t.teardown(() => client.close());
  const unary = await new Promise<{ sku: string; cents: number; caller: string }>((resolve, reject) => client.Get({ sku: 'apple' }, (err: Error | null, r: never) => (err ? reject(err) : resolve(r))));
  t.deepEqual(unary, { sku: 'apple', cents: 1299, caller: WEB_ID });

  const err = await new Promise<grpc.ServiceError>((resolve) => client.Get({ sku: 'missing' }, (e: grpc.ServiceError) => resolve(e)));
  t.is(err.code, grpc.status.NOT_FOUND);
  t.is(err.details, 'no price for missing');

  const stream = client.Watch({ sku: 'pear', count: 5 }) as grpc.ClientReadableStream<{ cents: number }>;
  const got: number[] = [];
  stream.on('data', (p) => got.push(p.cents));
  await once(stream, 'end');
  t.deepEqual(got, [100, 101, 102, 103, 104]);

  const collected = await new Promise<{ sku: string; cents: number }>((resolve, reject) => {
    const call = client.Collect((e: Error | null, r: never) => (e ? reject(e) : resolve(r))) as grpc.ClientWritableStream<{ sku: string }>;
    for (const sku of ['a', 'b', 'c']) call.write({ sku });
    call.end();
  });
  t.deepEqual(collected, { sku: 'a,b,c', cents: 3, caller: WEB_ID } as never);

  // The route's timeout ends a slow call with the gRPC status a deadline gives.
  const slow = await new Promise<grpc.ServiceError>((resolve) => client.Get({ sku: 'slow' }, (e: grpc.ServiceError) => resolve(e)));
  t.is(slow.code, grpc.status.DEADLINE_EXCEEDED);
  t.regex(slow.details, /within the route's timeout of 1000 ms/);
});

test('gRPC with prior knowledge on the main outbound port: routed by :authority, an unknown one answered', async (t) => {
  const proto = pricesProto();
  const Client = proto.Prices as unknown as grpc.ServiceClientConstructor;
  const call = (authority: string) => {
    const client = new Client(`127.0.0.1:${web.ports.outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority }) as unknown as { Get: Function } & grpc.Client;
    return new Promise<{ err: grpc.ServiceError | null; r?: unknown }>((resolve) => client.Get({ sku: 'apple' }, (err: grpc.ServiceError | null, r: unknown) => (client.close(), resolve({ err, r }))));
  };
  const ok = await call('prices');
  t.is(ok.err, null, ok.err?.message);
  t.deepEqual(ok.r, { sku: 'apple', cents: 1299, caller: WEB_ID });
  const named = await call('prices.default');
  t.is(named.err, null, named.err?.message);
  const unknown = await call('nowhere');
  t.is(unknown.err?.code, grpc.status.UNIMPLEMENTED, unknown.err?.message);
});

test('a WebSocket echoes through the mesh', async (t) => {
  const ws = new WebSocket(`ws://127.0.0.1:${web.ports.upstreams.catalog}/chat`);
  await once(ws, 'open');
  ws.send('hello');
  const [msg] = await once(ws, 'message');
  t.is(msg.toString(), `catalog echo: hello (from ${WEB_ID})`);
  ws.send('again');
  const [msg2] = await once(ws, 'message');
  t.is(msg2.toString(), `catalog echo: again (from ${WEB_ID})`);
  ws.close();
  // The upgrade is counted as a request answered 101 by the caller's sidecar.
  const upgrades = await waitFor('the upgrade in web\'s metrics', async () => sample((await web.admin('/metrics')).body, 'weft_requests_total', { direction: 'outbound', source_identity: WEB_ID, destination_service: 'catalog.default', destination_subset: '', status_code: '101', grpc_status: '', mesh_reason: '' }) || undefined, 5000).catch(() => 0);
  t.is(upgrades, 1);
});

test('a refused upgrade is relayed as a response, not turned into a tunnel', async (t) => {
  // The echo app answers a plain GET with 200 JSON; asking it to upgrade to a protocol it does not speak gets no 101.
  const r = await runTool('curl', ['-sS', '-i', '-H', 'Connection: Upgrade', '-H', 'Upgrade: nonsense', `http://127.0.0.1:${web.ports.upstreams.catalog}/x`]);
  t.notRegex(r.stdout, /^HTTP\/1\.1 101/);
});

test('a TCP service works through the mesh', async (t) => {
  const s = net.connect(web.ports.upstreams.echo!, '127.0.0.1');
  s.setEncoding('utf8');
  await once(s, 'connect');
  s.write('one\ntwo\n');
  let got = '';
  while (!got.includes('echo: two\n')) got += (await once(s, 'data'))[0];
  t.is(got, 'echo: one\necho: two\n');
  s.end();
  await once(s, 'close');
  // The caller's sidecar counts the connection and its bytes too.
  const metrics = await waitFor('the outbound TCP counters', async () => {
    const text = (await web.admin('/metrics')).body;
    return /^weft_tcp_connections_closed_total\{direction="outbound"[^}]*destination_service="echo\.default"[^}]*\} [1-9]/m.test(text) ? text : undefined;
  });
  t.regex(metrics, /^weft_tcp_received_bytes_total\{direction="outbound"[^}]*destination_service="echo\.default"[^}]*\} 8$/m);
});
