// Retries of gRPC calls under a Route's retry policy, through real sidecars, a real grpc-js client and server:
// a trailers-only UNAVAILABLE the policy names is retried (the client never sees it), with the request body sent
// again, also for a client-streaming call; a status the policy does not name is relayed at once; when the tries
// run out the client gets the app's own last answer; an endpoint that stops answering (SIGSTOP) is given up at
// the per-try timeout and the call made again on the other, as is one whose sidecar is gone (connection refused);
// a retried RESOURCE_EXHAUSTED does not open a breaker.

import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { grpcPrices, pricesClient, type App, type PricesClient } from '../helpers/apps.ts';
import { startMesh } from '../helpers/mesh.ts';
import { pricesMesh, type PricesMesh } from '../helpers/prices-mesh.ts';
import { meshYaml, routeYaml, trafficPolicyYaml } from '../helpers/mesh-yaml.ts';

const YAML = meshYaml({
  services: { web: '{port: 8080}', prices: '{port: 8082, protocol: grpc}' },
  extra: routeYaml('prices', '    - destinations: [{weight: 100}]\n      retries: {attempts: 2, on: [unavailable, connect-failure, reset], budget: {percent: 100, minPerSecond: 100}}\n'),
});

let shared: PricesMesh;
let prices: App;
let client: PricesClient;

test.before(async () => {
  // grpc-js's own retries off: every retry seen here is the sidecar's.
  shared = await pricesMesh(YAML, { 'grpc.enable_retries': 0 });
  ({ prices, client } = shared);
});

test.after.always(async () => {
  await shared?.close();
});

const get = (sku: string) =>
  new Promise<{ err: grpc.ServiceError | null; res: { sku: string; cents: number } | null }>((resolve) => client.Get({ sku }, (err: grpc.ServiceError | null, res: { sku: string; cents: number }) => resolve({ err, res: res ?? null })));
const calls = (sku: string) => prices.seen.filter((s) => s.url.endsWith(`=${sku}`)).length;

test('a trailers-only UNAVAILABLE is retried: the caller gets the second try\'s answer and never sees the first', async (t) => {
  const { err, res } = await get('flaky-get');
  t.is(err, null);
  t.deepEqual(res && { sku: res.sku, cents: res.cents }, { sku: 'flaky-get', cents: 1299 });
  t.is(calls('flaky-get'), 2);
});

test('a status the policy does not name (NOT_FOUND) is relayed after one try', async (t) => {
  const before = calls('missing');
  const { err } = await get('missing');
  t.is(err?.code, grpc.status.NOT_FOUND);
  t.is(err?.details, 'no price for missing');
  t.is(calls('missing') - before, 1);
});

test('when the tries run out (1 + 2 retries) the caller gets the app\'s last UNAVAILABLE as it was', async (t) => {
  const { err } = await get('down-get');
  t.is(err?.code, grpc.status.UNAVAILABLE);
  t.is(err?.details, 'down-get is unavailable this time');
  t.is(calls('down-get'), 3);
});

test('a client-streaming call is retried with its whole request stream sent again', async (t) => {
  const skus = ['flaky-stream', 'b', 'c', 'd'];
  const res = await new Promise<{ err: grpc.ServiceError | null; res: { sku: string; cents: number } | null }>((resolve) => {
    const call = client.Collect((err: grpc.ServiceError | null, r: { sku: string; cents: number }) => resolve({ err, res: r ?? null })) as grpc.ClientWritableStream<{ sku: string }>;
    for (const sku of skus) call.write({ sku });
    call.end();
  });
  t.is(res.err, null);
  t.deepEqual(res.res && { sku: res.res.sku, cents: res.res.cents }, { sku: skus.join(','), cents: 4 });
  t.is(prices.seen.filter((s) => s.url === `/prices.Prices/Collect?skus=${skus.join(',')}`).length, 2, 'both tries got all four messages');
});

test('a stuck endpoint: the per-try timeout gives up on it and the call is made again on the other one', async (t) => {
  const a = await grpcPrices();
  const b = await grpcPrices();
  const stuckMesh = await startMesh(meshYaml({
    services: { web: '{port: 8080}', quotes: '{port: 8083, protocol: grpc}' },
    extra: routeYaml('quotes', '    - destinations: [{weight: 100}]\n      retries: {attempts: 2, perTryTimeout: 300ms, on: [connect-failure, reset], budget: {percent: 100, minPerSecond: 100}}\n'),
  }));
  const stuck = await stuckMesh.sidecar({ service: 'quotes', appPort: a.port });
  await stuckMesh.sidecar({ service: 'quotes', appPort: b.port });
  const web = await stuckMesh.sidecar({ service: 'web', appPort: 1, upstreams: ['quotes'] });
  const quotes = pricesClient(web.ports.upstreams.quotes!, { 'grpc.enable_retries': 0 });
  t.teardown(async () => {
    stuck.child.kill('SIGCONT');
    quotes.close();
    await stuckMesh.stop();
    await a.close();
    await b.close();
  });
  // A deadline, so that a call stuck for good fails here instead of hanging the test.
  const call = (sku: string) => new Promise<grpc.ServiceError | null>((resolve) => quotes.Get({ sku }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null) => resolve(err)));
  // Both endpoints take calls (and web's sidecar holds a session to each), then one stops answering.
  for (let i = 0; i < 8; i++) t.is(await call(`warm-${i}`), null);
  t.true(a.seen.length > 0 && b.seen.length > 0, `a ${a.seen.length}, b ${b.seen.length}`);
  stuck.child.kill('SIGSTOP');
  const errors = [];
  for (let i = 0; i < 6; i++) errors.push(await call(`after-${i}`));
  t.deepEqual(errors, Array(6).fill(null));
  t.is(b.seen.filter((s) => s.url.includes('sku=after-')).length, 6);
});

test('a retried RESOURCE_EXHAUSTED is the app\'s answer, not the endpoint failing: it does not open the breaker', async (t) => {
  const app = await grpcPrices();
  const quotaMesh = await startMesh(meshYaml({
    services: { web: '{port: 8080}', quotes: '{port: 8083, protocol: grpc}' },
    extra: `${routeYaml('quotes', '    - destinations: [{weight: 100}]\n      retries: {attempts: 2, on: [resource-exhausted], budget: {percent: 100, minPerSecond: 100}}\n')}---
${trafficPolicyYaml('quotes', '  circuitBreaker: {consecutiveFailures: 2, volumeThreshold: 100, errorThresholdPercentage: 100, resetTimeout: 30s, maxResetTimeout: 60s}\n')}`,
  }));
  await quotaMesh.sidecar({ service: 'quotes', appPort: app.port });
  const web = await quotaMesh.sidecar({ service: 'web', appPort: 1, upstreams: ['quotes'] });
  const quotes = pricesClient(web.ports.upstreams.quotes!, { 'grpc.enable_retries': 0 });
  t.teardown(async () => (quotes.close(), await quotaMesh.stop(), await app.close()));
  const call = (sku: string) => new Promise<grpc.ServiceError | null>((resolve) => quotes.Get({ sku }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null) => resolve(err)));
  // Each call is tried three times, and the caller gets the app's own last answer. Had the two dropped answers
  // counted as failures, the second would have opened the breaker, and the third try been refused (circuit-open).
  for (let i = 0; i < 3; i++) {
    const err = await call(`exhausted-${i}`);
    t.is(err?.code, grpc.status.RESOURCE_EXHAUSTED);
    t.is(err?.details, `no quota left for exhausted-${i}`);
  }
  t.is(app.seen.filter((s) => s.url.includes('sku=exhausted-')).length, 9);
  t.is(await call('fine'), null);
});

test('an endpoint whose sidecar is gone (connection refused) is retried on the other one', async (t) => {
  const a = await grpcPrices();
  const b = await grpcPrices();
  const goneMesh = await startMesh(meshYaml({
    services: { web: '{port: 8080}', quotes: '{port: 8083, protocol: grpc}' },
    // Round robin, so that first tries alternate between the endpoints (the default, P2C on latency, may keep
    // choosing the one left).
    extra: `${routeYaml('quotes', '    - destinations: [{weight: 100}]\n      retries: {attempts: 2, on: [connect-failure], budget: {percent: 100, minPerSecond: 100}}\n')}---
${trafficPolicyYaml('quotes', '  loadBalancer: {type: round-robin}\n')}`,
  }));
  const gone = await goneMesh.sidecar({ service: 'quotes', appPort: a.port });
  await goneMesh.sidecar({ service: 'quotes', appPort: b.port });
  const web = await goneMesh.sidecar({ service: 'web', appPort: 1, upstreams: ['quotes'] });
  const quotes = pricesClient(web.ports.upstreams.quotes!, { 'grpc.enable_retries': 0 });
  t.teardown(async () => (quotes.close(), await goneMesh.stop(), await a.close(), await b.close()));
  const call = (sku: string) => new Promise<grpc.ServiceError | null>((resolve) => quotes.Get({ sku }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null) => resolve(err)));
  for (let i = 0; i < 8; i++) t.is(await call(`warm-${i}`), null);
  t.true(a.seen.length > 0 && b.seen.length > 0, `a ${a.seen.length}, b ${b.seen.length}`);
  // With the control plane gone first, web's sidecar keeps both endpoints (its last good config); then one
  // endpoint's sidecar dies, and its port refuses connections.
  await goneMesh.killControlPlane();
  await gone.kill('SIGKILL');
  const errors = [];
  for (let i = 0; i < 8; i++) errors.push(await call(`after-${i}`));
  t.deepEqual(errors, Array(8).fill(null));
  t.is(b.seen.filter((s) => s.url.includes('sku=after-')).length, 8);
  // A client-streaming call whose try fails while the caller is still between messages is made again once the
  // caller has sent everything (not given up because the stream was still open).
  const collect = (i: number) =>
    new Promise<grpc.ServiceError | null>((resolve) => {
      const c = quotes.Collect(new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null) => resolve(err)) as grpc.ClientWritableStream<{ sku: string }>;
      c.write({ sku: `streamed-${i}` });
      setTimeout(() => (c.write({ sku: 'second' }), c.end()), 150);
    });
  const streamed = [];
  for (let i = 0; i < 4; i++) streamed.push(await collect(i));
  t.deepEqual(streamed.map((e) => e?.details ?? null), Array(4).fill(null));
  t.is(b.seen.filter((s) => s.url.startsWith('/prices.Prices/Collect?skus=streamed-')).length, 4);
  const retries = Number(/^weft_retries_total\{[^}]*destination_service="quotes\.default"[^}]*\} (\d+)/m.exec((await web.admin('/metrics')).body)?.[1] ?? 0);
  t.true(retries > 0, 'some first tries went to the gone endpoint and were made again');
});
