// Many long-lived gRPC streams to one endpoint, through real sidecars, grpc-js and the prices app: past the 256
// streams a peer's inbound allows on one HTTP/2 session, the caller's sidecar opens another session to it rather
// than leave further calls queued for ever; with TrafficPolicy maxConnections 1 there is no other session, and a
// further call is refused at once (UNAVAILABLE, overflow) until a stream ends.

import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { pricesClient, type PricesClient } from '../helpers/apps.ts';
import { waitFor } from '../helpers/mesh.ts';
import { meshYaml, trafficPolicyYaml } from '../helpers/mesh-yaml.ts';
import { pricesMesh, type PricesMesh } from '../helpers/prices-mesh.ts';

const SERVICES = { web: '{port: 8080}', prices: '{port: 8082, protocol: grpc}' };
/** a peer's inbound takes this many streams per session (sidecar/http/servers.ts) */
const PER_SESSION = 256;

/** A client on a connection of its own: web's outbound port also takes at most 256 streams per session. */
const ownClient = (shared: PricesMesh): PricesClient => pricesClient(shared.web.ports.upstreams.prices!, { 'grpc.use_local_subchannel_pool': 1 });

/** Opens `count` Watch calls that never end ("stall-…"), spread over clients of 200 calls each; resolves once the app has them all. */
async function holdStreams(t: { teardown(f: () => void): void }, shared: PricesMesh, count: number, prefix: string): Promise<grpc.ClientReadableStream<unknown>[]> {
  const calls: grpc.ClientReadableStream<unknown>[] = [];
  const clients: PricesClient[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 200 === 0) clients.push(ownClient(shared));
    const call = clients.at(-1)!.Watch({ sku: `stall-${prefix}-${i}`, count: 1 }) as grpc.ClientReadableStream<unknown>;
    call.on('error', () => {});
    call.on('data', () => {});
    calls.push(call);
  }
  t.teardown(() => {
    for (const c of calls) c.cancel();
    for (const c of clients) c.close();
  });
  const opened = () => shared.prices.seen.filter((s) => s.url.startsWith(`/prices.Prices/Watch?sku=stall-${prefix}-`) && !s.url.endsWith('&cancelled')).length;
  await waitFor(`${count} streams open at the app`, () => opened() >= count || undefined, 30_000);
  return calls;
}

function get(client: PricesClient, sku: string): Promise<{ code: grpc.status; reason?: string }> {
  return new Promise((resolve) =>
    client.Get({ sku }, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null) =>
      resolve(err ? { code: err.code, reason: err.metadata.get('x-weft-reason')[0] as string | undefined } : { code: grpc.status.OK }),
    ),
  );
}

test('past the streams one session to an endpoint takes, another session is opened and new calls are answered', async (t) => {
  const shared = await pricesMesh(meshYaml({ services: SERVICES }));
  t.teardown(() => shared.close());
  await holdStreams(t, shared, PER_SESSION + 4, 'many');
  const fresh = ownClient(shared);
  t.teardown(() => fresh.close());
  t.deepEqual(await get(fresh, 'apple'), { code: grpc.status.OK });
});

test('with maxConnections 1, a call past the peer\'s stream limit is refused at once as overflow, and answered once a stream ends', async (t) => {
  const shared = await pricesMesh(meshYaml({ services: SERVICES, extra: trafficPolicyYaml('prices', '  connectionPool: {maxConnections: 1}\n') }));
  t.teardown(() => shared.close());
  const calls = await holdStreams(t, shared, PER_SESSION, 'one');
  const fresh = ownClient(shared);
  t.teardown(() => fresh.close());
  t.deepEqual(await get(fresh, 'pear'), { code: grpc.status.UNAVAILABLE, reason: 'overflow' });
  calls[0]!.cancel();
  const answered = await waitFor('a call answered once a stream ended', async () => {
    const r = await get(fresh, 'pear');
    return r.code === grpc.status.OK ? r : undefined;
  });
  t.is(answered.code, grpc.status.OK);
});
