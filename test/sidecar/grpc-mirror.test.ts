// Mirroring of gRPC calls through real sidecars, a real grpc-js client and two grpc-js servers: the caller is
// answered by its subset alone, and the mirror subset gets a copy of each call, its :authority marked "-shadow"
// (as Envoy and Istio mark copies), for unary and client-streaming calls alike.

import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { grpcPrices, pricesClient, type App, type PricesClient } from '../helpers/apps.ts';
import { startMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { meshYaml, routeYaml } from '../helpers/mesh-yaml.ts';

const YAML = meshYaml({
  services: { web: '{port: 8080}', prices: '{port: 8082, protocol: grpc, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}' },
  extra: routeYaml('prices', '    - destinations: [{subset: v1}]\n      mirror: {subset: v2, percent: 100}\n'),
});

let mesh: TestMesh;
let v1: App;
let v2: App;
let client: PricesClient;

test.before(async () => {
  v1 = await grpcPrices();
  v2 = await grpcPrices();
  mesh = await startMesh(YAML);
  await mesh.sidecar({ service: 'prices', labels: { version: 'v1' }, appPort: v1.port });
  await mesh.sidecar({ service: 'prices', labels: { version: 'v2' }, appPort: v2.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['prices'] });
  client = pricesClient(web.ports.upstreams.prices!);
});

test.after.always(async () => {
  client?.close();
  await mesh?.stop();
  await v1?.close();
  await v2?.close();
});

test('a unary call is answered by v1 alone; v2 gets a copy marked -shadow', async (t) => {
  const res = await new Promise<{ sku: string }>((resolve, reject) => client.Get({ sku: 'mirrored' }, (err: Error | null, r: { sku: string }) => (err ? reject(err) : resolve(r))));
  t.is(res.sku, 'mirrored');
  await waitFor('the copy at v2', () => v2.seen.some((s) => s.url.endsWith('sku=mirrored')) || undefined, 10_000);
  t.is(v1.seen.filter((s) => s.url.endsWith('sku=mirrored')).length, 1);
  t.is(v2.seen.filter((s) => s.url.endsWith('sku=mirrored')).length, 1);
  t.regex(v2.seen.find((s) => s.url.endsWith('sku=mirrored'))!.host!, /-shadow(:\d+)?$/);
  t.notRegex(v1.seen.find((s) => s.url.endsWith('sku=mirrored'))!.host!, /-shadow/);
});

test('a client-streaming call is copied with its whole request stream', async (t) => {
  const skus = ['m-a', 'm-b', 'm-c'];
  const res = await new Promise<{ sku: string }>((resolve, reject) => {
    const call = client.Collect((err: Error | null, r: { sku: string }) => (err ? reject(err) : resolve(r))) as grpc.ClientWritableStream<{ sku: string }>;
    for (const sku of skus) call.write({ sku });
    call.end();
  });
  t.is(res.sku, skus.join(','));
  const url = `/prices.Prices/Collect?skus=${skus.join(',')}`;
  await waitFor('the copy at v2', () => v2.seen.some((s) => s.url === url) || undefined, 10_000);
  t.is(v1.seen.filter((s) => s.url === url).length, 1);
});
