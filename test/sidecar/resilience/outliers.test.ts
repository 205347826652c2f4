// Outlier detection in EndpointHealth and ResilienceState (sidecar/resilience/), with short times: ejection after
// consecutive failures, its end, a longer second ejection, the maxEjectionPercent cap, and never every endpoint.

import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RuntimeConfig, UpstreamRuntime } from '../../../sidecar/config/runtime.ts';
import { EndpointHealth, UpstreamFailure } from '../../../sidecar/resilience/endpoint-health.ts';
import { ResilienceState } from '../../../sidecar/resilience/state.ts';

const OD = { consecutive5xx: 2, intervalMs: 10_000, baseEjectionTimeMs: 400, maxEjectionPercent: 10 };

/** One try on `h` that fails with a 5xx (or succeeds). */
const attempt = (h: EndpointHealth, fail: boolean) =>
  new Promise<void>((resolve) => h.runCallback((settled) => settled(fail ? new UpstreamFailure(503, 'failing') : null), () => resolve()));

test('ejected after consecutive failures, back after the ejection time; a second ejection lasts twice as long', async (t) => {
  const ejections: number[] = [];
  const h = new EndpointHealth('127.0.0.1:1', null, () => {}, OD, (ms) => ejections.push(ms));
  await attempt(h, true);
  await attempt(h, false); // a success in between: not consecutive
  await attempt(h, true);
  t.false(h.ejected);
  await attempt(h, true);
  t.true(h.ejected);
  await sleep(450);
  t.false(h.ejected);
  await attempt(h, true);
  await attempt(h, true);
  t.true(h.ejected);
  await sleep(450);
  t.true(h.ejected, 'the second ejection is 800 ms'); // (350 ms of slack for a slow timer on a loaded machine)
  await sleep(400);
  t.false(h.ejected);
  t.deepEqual(ejections, [400, 800]);
});

test('at most maxEjectionPercent of the endpoints are kept out (at least one), and never all of them', async (t) => {
  const endpoints = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'].map((address) => ({ address, labels: {} }));
  const upstream = { key: 'catalog.default', endpoints, trafficPolicy: { outlierDetection: OD, circuitBreaker: null, loadBalancer: { type: 'round-robin' }, connectionPool: { maxConnections: 10, maxPendingRequests: 10 } } } as unknown as UpstreamRuntime;
  const state = new ResilienceState();
  const health = endpoints.map((e) => state.endpoint(upstream, e.address));
  for (const h of health.slice(0, 2)) for (let i = 0; i < 2; i++) await attempt(h, true);
  t.true(health[0]!.ejected && health[1]!.ejected);
  // 10% of 3 is 0, but one may always go: the first ejected stays out, the second is back in.
  t.deepEqual(state.available(upstream, endpoints).map((h) => h.address), ['127.0.0.1:2', '127.0.0.1:3']);
  for (let i = 0; i < 2; i++) await attempt(health[2]!, true);
  const lone = { ...upstream, endpoints: [endpoints[0]!] } as unknown as UpstreamRuntime;
  t.deepEqual(state.available(lone, [endpoints[0]!]).map((h) => h.address), ['127.0.0.1:1'], 'a lone endpoint is used ejected or not');
  state.prune({ upstreams: new Map() } as unknown as RuntimeConfig);
});
