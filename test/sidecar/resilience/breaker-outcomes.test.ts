// What an HTTP/1 call's outcome means to the endpoint's breaker and outlier detection, through real sidecars: a
// caller that gives up is not the endpoint failing, and a half-open endpoint with its one trial in flight is not
// offered to other calls while a healthy endpoint is there.

import test from 'ava';
import http from 'node:http';
import { controllable, get, many, MESH } from '../../helpers/catalog.ts';
import { startMesh, waitFor, type SidecarProc } from '../../helpers/mesh.ts';
import { trafficPolicyYaml } from '../../helpers/mesh-yaml.ts';

/** A GET through web's sidecar that the caller abandons after `ms`. */
async function abandon(web: SidecarProc, path: string, ms: number): Promise<void> {
  const req = http.request({ host: '127.0.0.1', port: web.ports.outbound, path, headers: { host: 'catalog' } });
  req.on('error', () => {});
  req.end();
  await new Promise((r) => setTimeout(r, ms));
  req.destroy();
}

for (const [what, policy] of [
  // The error percentage would trip on 3 failures of 4 calls.
  ['open its breaker', '  circuitBreaker: {consecutiveFailures: 50, volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: 30s, maxResetTimeout: 60s}\n'],
  // Ejected after 2 in a row (a lone endpoint is still used, but the ejection is logged).
  ['eject it', '  outlierDetection: {consecutive5xx: 2, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}\n'],
] as const) test(`callers that give up on a slow endpoint do not ${what}`, async (t) => {
  const app = await controllable('v1');
  const mesh = await startMesh(MESH(`---\n${trafficPolicyYaml('catalog', policy)}`));
  t.teardown(async () => (await mesh.stop(), await app.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: app.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('catalog reachable', async () => (await get(web, '/warm')).status === 200 || undefined);

  app.state.delayMs = 1000;
  for (let i = 0; i < 4; i++) await abandon(web, `/given-up/${i}`, 150);
  await new Promise((r) => setTimeout(r, 1200)); // the app's answers to no one
  app.state.delayMs = 0;

  // The endpoint answered nothing wrong: the next caller reaches it.
  const after = await get(web, '/after');
  t.deepEqual([after.status, after.reason], [200, undefined], after.body);
  t.notRegex(web.logs(), /outlier ejected/);
});

test('while a half-open endpoint\'s one trial is in flight, other calls go to the healthy endpoint', async (t) => {
  const flaky = await controllable('flaky');
  const healthy = await controllable('healthy');
  // The healthy endpoint is the slower one, so that latency alone would favour the flaky one (p2c-ewma).
  healthy.state.delayMs = 60;
  const mesh = await startMesh(MESH(`---\n${trafficPolicyYaml('catalog', '  circuitBreaker: {consecutiveFailures: 2, volumeThreshold: 100, errorThresholdPercentage: 50, resetTimeout: 1s, maxResetTimeout: 1s}\n')}`));
  t.teardown(async () => (await mesh.stop(), await flaky.close(), await healthy.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: flaky.port });
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: healthy.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('both endpoints', async () => new Set((await many(10, 2, () => get(web, '/warm'))).map((r) => r.body)).size === 2 || undefined);

  // Fast failures open the flaky endpoint's breaker (and leave it a low latency average).
  flaky.state.failing = true;
  await waitFor('the breaker to open', async () => (await many(6, 1, () => get(web, '/trip'))).slice(-3).every((r) => r.body === 'healthy') || undefined);
  // It recovers, slowly: its trial, once the breaker half-opens, takes 2 s.
  flaky.state.failing = false;
  flaky.state.delayMs = 2000;
  await new Promise((r) => setTimeout(r, 1200));
  const trialHits = flaky.state.hits;
  const trial = get(web, '/trial-or-not');
  await waitFor('the trial at the flaky endpoint', () => flaky.state.hits > trialHits || undefined, 3000).catch(() => undefined);
  const during = await many(10, 2, () => get(web, '/during-trial'));
  t.deepEqual(during.map((r) => `${r.status} ${r.reason ?? r.body}`), Array(10).fill('200 healthy'));
  t.is((await trial).status, 200);
});
