// Draining a sidecar that serves gRPC, through real sidecars, grpc-js and two prices apps: on SIGTERM its inbound
// sends each HTTP/2 session a GOAWAY, so the callers' sidecars take new calls to the other endpoint while the
// calls in flight finish, and the draining sidecar exits as soon as they have (not at its drain deadline).

import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { grpcPrices, pricesClient, type App, type PricesClient } from '../helpers/apps.ts';
import { startMesh, waitFor } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

const YAML = meshYaml({ services: { web: '{port: 8080}', prices: '{port: 8082, protocol: grpc}' } });

function get(client: PricesClient, sku: string): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => client.Get({ sku }, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null) => resolve(err)));
}

const asked = (app: App, sku: string) => app.seen.filter((s) => s.url === `/prices.Prices/Get?sku=${sku}`).length;

test('a draining endpoint gets no new calls, finishes those in flight, and its sidecar exits once they are done', async (t) => {
  const a = await grpcPrices();
  const b = await grpcPrices();
  const mesh = await startMesh(YAML);
  let client: PricesClient | null = null;
  t.teardown(async () => (client?.close(), await mesh.stop(), await a.close(), await b.close()));
  // A drain deadline far longer than the test waits: an exit before it is the draining working, not the deadline.
  const drainingSidecar = await mesh.sidecar({ service: 'prices', appPort: a.port, env: { WEFT_DRAIN: '60s' } });
  await mesh.sidecar({ service: 'prices', appPort: b.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['prices'] });
  client = pricesClient(web.ports.upstreams.prices!);
  await waitFor('web calling both endpoints', async () => ((await get(client!, 'warm')) === null && asked(a, 'warm') > 0 && asked(b, 'warm') > 0) || undefined);

  // Calls in flight on A when the drain begins ("slow" is answered after 2 s).
  const slow: Promise<grpc.ServiceError | null>[] = [];
  await waitFor('a slow call in flight at A', () => (slow.push(get(client!, 'slow')), asked(a, 'slow') > 0 || undefined), 15_000, 100);
  const exited = drainingSidecar.kill('SIGTERM');
  await waitFor('A draining', () => drainingSidecar.logs().includes('"msg":"draining"') || undefined);

  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => get(client!, `during-${i}`)));
  t.deepEqual(results.map((e) => e?.code ?? grpc.status.OK), Array(20).fill(grpc.status.OK), 'a call made during the drain failed');
  t.is(a.seen.filter((s) => s.url.includes('sku=during-')).length, 0, 'the draining endpoint was given new calls');
  t.deepEqual((await Promise.all(slow)).map((e) => e?.code ?? grpc.status.OK), slow.map(() => grpc.status.OK), 'a call in flight did not finish');
  const gone = await Promise.race([exited.then(() => 'exited'), new Promise((r) => setTimeout(() => r('still draining 15 s after its calls ended'), 15_000))]);
  t.is(gone, 'exited');
});
