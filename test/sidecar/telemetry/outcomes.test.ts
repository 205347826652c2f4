// How a request's outcome is counted when it is not a plain answer: a caller that gives up before any answer
// is status 0 on both sides (not a 200 on one and the app's fault on the other), and a status an app makes up
// counts as its class, so one app cannot grow a series per number; a TCP connection the policy refuses is a
// denial in the metrics, as a refused request is; a gRPC call carries its grpc-status, and a non-OK one fails.

import test from 'ava';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { grpcPrices, pricesClient, tcpEcho } from '../../helpers/apps.ts';
import { totalsOf } from '../../../cli/top/rates.ts';
import { startMesh, waitFor, type SidecarProc } from '../../helpers/mesh.ts';
import { meshYaml, policyYaml } from '../../helpers/mesh-yaml.ts';
import { sample } from '../../helpers/metrics.ts';

const WEB_ID = 'spiffe://shop.example/ns/default/sa/web';

test('a caller that gives up is status 0 on both sides; made-up statuses count by class', async (t) => {
  const app = http.createServer((req, res) => {
    const u = new URL(req.url!, 'http://app');
    setTimeout(() => res.writeHead(Number(u.searchParams.get('status') ?? 200)).end('ok'), Number(u.searchParams.get('delay') ?? 0));
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}', catalog: '{port: 8081}' } }));
  t.teardown(async () => (await mesh.stop(), app.closeAllConnections(), app.close()));
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: (app.address() as AddressInfo).port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: web.ports.outbound, path, headers: { host: 'catalog' }, agent: false }, (res) => (res.resume(), res.on('end', () => resolve(res.statusCode!))));
      req.on('error', reject);
      req.end();
    });
  await waitFor('catalog reachable', async () => (await get('/warm')) === 200 || undefined);
  const count = async (s: SidecarProc, direction: string, status: string, reason = '') =>
    sample((await s.admin('/metrics')).body, 'weft_requests_total', { direction, source_identity: WEB_ID, destination_service: 'catalog.default', destination_subset: '', status_code: status, grpc_status: '', mesh_reason: reason }) || 0;

  // Given up after 200 ms; the app would have answered after 1.5 s.
  const before = { web200: await count(web, 'outbound', '200'), catalog503: await count(catalog, 'inbound', '503', 'app-unavailable') };
  const req = http.request({ host: '127.0.0.1', port: web.ports.outbound, path: '/slow?delay=1500', headers: { host: 'catalog' }, agent: false });
  req.on('error', () => {});
  req.end();
  await new Promise((r) => setTimeout(r, 200));
  req.destroy();
  await waitFor('the abandoned request counted on both sides', async () => ((await count(web, 'outbound', '0')) === 1 && (await count(catalog, 'inbound', '0')) === 1) || undefined, 5000).catch(() => {});
  t.is(await count(web, 'outbound', '0'), 1, 'web: the caller gave up, no answer');
  t.is(await count(catalog, 'inbound', '0'), 1, 'catalog: the caller gave up, no answer');
  t.is(await count(web, 'outbound', '200'), before.web200, 'not a 200');
  t.is(await count(catalog, 'inbound', '503', 'app-unavailable'), before.catalog503, 'not the app\'s fault');

  // Statuses no registry names count by class; registered ones as themselves.
  for (const status of [299, 599, 777, 418]) await get(`/made-up?status=${status}`);
  t.is(await count(web, 'outbound', '2xx'), 1);
  t.is(await count(web, 'outbound', '5xx'), 1);
  t.is(await count(web, 'outbound', '7xx'), 1);
  t.is(await count(web, 'outbound', '418'), 1);
  t.false((await web.admin('/metrics')).body.includes('status_code="599"'));
});

test('a TCP connection the policy refuses is counted as a denial, by policy and rule', async (t) => {
  const echoApp = await tcpEcho();
  const mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}', echo: '{port: 8083, protocol: tcp}' } }) + `---\n${policyYaml('no-web', 'echo', 'DENY', `    - from: [{principals: ["${WEB_ID}"]}]\n`)}`);
  t.teardown(async () => (await mesh.stop(), await echoApp.close()));
  const echo = await mesh.sidecar({ service: 'echo', appPort: echoApp.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['echo'] });
  const s = net.connect(web.ports.upstreams.echo!, '127.0.0.1');
  s.on('error', () => {});
  s.resume();
  s.write('hello\n');
  await new Promise((r) => s.once('close', r));
  const denials = await waitFor('the denial counted', async () => sample((await echo.admin('/metrics')).body, 'weft_policy_denials_total', { policy: 'default/no-web', rule: '0' }) || undefined, 5000).catch(() => 0);
  t.is(denials, 1);
  t.is(echoApp.seen.length, 0, 'the app got no connection');
});

test('a gRPC call is counted with its grpc-status, and weft top counts a non-OK one as failed', async (t) => {
  const prices = await grpcPrices();
  const mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}', prices: '{port: 8082, protocol: grpc}' } }));
  t.teardown(async () => (await mesh.stop(), await prices.close()));
  await mesh.sidecar({ service: 'prices', appPort: prices.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['prices'] });
  const client = pricesClient(web.ports.upstreams.prices!, { 'grpc.enable_retries': 0 });
  t.teardown(() => client.close());
  const get = (sku: string) => new Promise<number>((resolve) => client.Get({ sku }, (err: grpc.ServiceError | null) => resolve(err?.code ?? 0)));
  t.is(await get('apple'), grpc.status.OK);
  t.is(await get('missing'), grpc.status.NOT_FOUND);
  const text = await waitFor('both calls counted', async () => {
    const body = (await web.admin('/metrics')).body;
    return /grpc_status="5"/.test(body) ? body : undefined;
  }, 5000);
  const labels = (code: string) => ({ direction: 'outbound', source_identity: WEB_ID, destination_service: 'prices.default', destination_subset: '', status_code: '200', grpc_status: code, mesh_reason: '' });
  t.is(sample(text, 'weft_requests_total', labels('0')), 1);
  t.is(sample(text, 'weft_requests_total', labels('5')), 1);
  t.deepEqual(totalsOf(text, 'web').requests.get('prices.default\t'), { total: 2, failed: 1 });
});
