// Timeouts on a gRPC answer that has begun streaming, through real sidecars and a real grpc-js client and
// server. The per-try timeout runs to the answer's end, as Envoy's does, and so does the route's; once the
// answer's head has reached the client neither can retry or answer afresh, so the stream is cut off: the
// client gets DEADLINE_EXCEEDED in the trailers, after the messages that did arrive, and the app's call is
// cancelled. An answer that ends in time is untouched.

import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import type { App, PricesClient } from '../helpers/apps.ts';
import { grpcTimeoutMs } from '../../sidecar/http/grpc-status.ts';
import { pricesMesh, type PricesMesh } from '../helpers/prices-mesh.ts';
import { headerRule, meshYaml, routeYaml } from '../helpers/mesh-yaml.ts';

const rule = (name: string, body: string) => headerRule('x-timeout', name, body);
const YAML = meshYaml({
  services: { web: '{port: 8080}', prices: '{port: 8082, protocol: grpc}' },
  extra: routeYaml(
    'prices',
    `${rule('per-try', '      retries: {attempts: 2, perTryTimeout: 300ms, on: [unavailable, reset], budget: {percent: 100, minPerSecond: 100}}\n')}${rule('route', '      timeout: 600ms\n')}    - destinations: [{weight: 100}]\n`,
  ),
});

let shared: PricesMesh;
let prices: App;
let client: PricesClient;

test.before(async () => {
  shared = await pricesMesh(YAML, { 'grpc.enable_retries': 0 });
  ({ prices, client } = shared);
});

test.after.always(async () => {
  await shared?.close();
});

interface Watched {
  readonly cents: number[];
  readonly status: grpc.StatusObject;
  readonly ms: number;
}

/** A Watch under the rule `timeout` picks, with a client deadline of 5 s so that a stream stuck for good fails here. */
function watch(timeout: string, sku: string, count: number): Promise<Watched> {
  const md = new grpc.Metadata();
  md.set('x-timeout', timeout);
  const started = Date.now();
  const stream = client.Watch({ sku, count }, md, { deadline: Date.now() + 5000 }) as grpc.ClientReadableStream<{ cents: number }>;
  const cents: number[] = [];
  stream.on('data', (p) => cents.push(p.cents));
  stream.on('error', () => {}); // the status says it all
  return new Promise((resolve) => stream.on('status', (status: grpc.StatusObject) => resolve({ cents, status, ms: Date.now() - started })));
}

const seen = (url: string) => prices.seen.filter((s) => s.url === url).length;

async function cancelledAtApp(sku: string): Promise<boolean> {
  for (let i = 0; i < 40 && seen(`/prices.Prices/Watch?sku=${sku}&cancelled`) === 0; i++) await new Promise((r) => setTimeout(r, 50));
  return seen(`/prices.Prices/Watch?sku=${sku}&cancelled`) === 1;
}

test('a streaming answer still open at the per-try timeout is cut off with DEADLINE_EXCEEDED, after the messages that came, and not retried', async (t) => {
  const w = await watch('per-try', 'stall-try', 2);
  t.deepEqual(w.cents, [100, 101]);
  t.is(w.status.code, grpc.status.DEADLINE_EXCEEDED);
  t.is(w.status.details, 'weft: the answer did not end within the per-try timeout of 300 ms');
  t.is(w.status.metadata.get('x-weft-reason')[0], 'timeout');
  t.true(w.ms >= 280 && w.ms < 2500, `took ${w.ms} ms`);
  t.true(await cancelledAtApp('stall-try'), "the app's call was not cancelled");
  t.is(seen('/prices.Prices/Watch?sku=stall-try'), 1, 'an answer that had begun must not be tried again');
});

test("the route's timeout cuts off a streaming answer the same way", async (t) => {
  const w = await watch('route', 'stall-route', 1);
  t.deepEqual(w.cents, [100]);
  t.is(w.status.code, grpc.status.DEADLINE_EXCEEDED);
  t.is(w.status.details, "weft: no answer from prices.default within the route's timeout of 600 ms");
  t.is(w.status.metadata.get('x-weft-reason')[0], 'timeout');
  t.true(w.ms >= 580 && w.ms < 2500, `took ${w.ms} ms`);
  t.true(await cancelledAtApp('stall-route'), "the app's call was not cancelled");
});

test('a streaming answer that ends in time is relayed whole under either timeout, its trailers the app\'s', async (t) => {
  for (const timeout of ['per-try', 'route']) {
    const w = await watch(timeout, `pear-${timeout}`, 5);
    t.deepEqual(w.cents, [100, 101, 102, 103, 104], timeout);
    t.is(w.status.code, grpc.status.OK, timeout);
  }
  // Past both timeouts, the sidecar still serves: no timer of those calls fired late.
  await new Promise((r) => setTimeout(r, 700));
  const again = await watch('per-try', 'pear-again', 1);
  t.is(again.status.code, grpc.status.OK);
});

test("a caller's grpc-timeout caps the route's (none here): the sidecar answers DEADLINE_EXCEEDED at it", async (t) => {
  // A raw HTTP/2 client that sends grpc-timeout and does not enforce it itself (as grpc-js would, racing the
  // sidecar): what comes back is the sidecar's doing. Get("slow") answers after 2 s.
  const session = http2.connect(`http://127.0.0.1:${shared.web.ports.upstreams.prices}`);
  t.teardown(() => session.close());
  const stream = session.request({ ':method': 'POST', ':path': '/prices.Prices/Get', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
  const message = Buffer.from([0x0a, 0x04, ...Buffer.from('slow')]);
  stream.end(Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]));
  const got: Record<string, unknown> = {};
  stream.on('response', (h) => Object.assign(got, h)).on('trailers', (h) => Object.assign(got, h)).resume();
  await new Promise((resolve) => stream.once('close', resolve));
  t.is(got['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED), JSON.stringify(got));
  t.regex(decodeURIComponent(String(got['grpc-message'])), /within the caller's grpc-timeout of 300 ms/);
});

test('grpc-timeout values: units to whole ms, at least 1, at most what a timer can count; malformed ones ignored', (t) => {
  t.is(grpcTimeoutMs('300m'), 300);
  t.is(grpcTimeoutMs('2S'), 2000);
  t.is(grpcTimeoutMs('1M'), 60_000);
  t.is(grpcTimeoutMs('1500u'), 2);
  t.is(grpcTimeoutMs('5n'), 1);
  t.is(grpcTimeoutMs('99999999H'), 2 ** 31 - 1, 'not a timer that fires after 1 ms');
  for (const bad of [undefined, '', '123456789m', '10', '1.5S', '10s', ['1S']]) t.is(grpcTimeoutMs(bad as never), null, String(bad));
});
