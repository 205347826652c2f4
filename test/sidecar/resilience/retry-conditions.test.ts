// Which failed HTTP/1 tries a retry policy's `on` conditions cover, through real sidecars, as Envoy's retry_on:
// `connect-failure` is a connection not made, never a try the endpoint received (a per-try timeout, a reset);
// `reset` is any try that got no answer.

import test from 'ava';
import { controllable, get, MESH } from '../../helpers/catalog.ts';
import { startMesh, waitFor } from '../../helpers/mesh.ts';
import { headerRule, routeYaml } from '../../helpers/mesh-yaml.ts';

test('a per-try timeout is retried under `reset`, not under `connect-failure` alone', async (t) => {
  const a = await controllable('a');
  const b = await controllable('b');
  const retries = (on: string) => `      retries: {attempts: 1, perTryTimeout: 300ms, on: [${on}], budget: {percent: 100, minPerSecond: 100}}\n`;
  const mesh = await startMesh(MESH(`---
${routeYaml('catalog', headerRule('x-rule', 'connect-only', retries('connect-failure')) + headerRule('x-rule', 'reset', retries('reset')) + '    - destinations: [{weight: 100}]\n')}`));
  t.teardown(async () => (await mesh.stop(), await a.close(), await b.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: a.port });
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v2' }, appPort: b.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('both endpoints', async () => ((await get(web, '/warm')).status === 200 && a.state.hits > 0 && b.state.hits > 0) || undefined);

  // Both endpoints answer after 1 s, past the per-try timeout.
  a.state.delayMs = b.state.delayMs = 1000;
  const hits = () => a.state.hits + b.state.hits;

  let before = hits();
  const connectOnly = await get(web, '/slow', { 'x-rule': 'connect-only' });
  t.deepEqual([connectOnly.status, connectOnly.reason], [504, 'timeout']);
  await new Promise((r) => setTimeout(r, 300));
  t.is(hits() - before, 1, 'the endpoint got the request: no connect failure, so no retry');

  before = hits();
  const reset = await get(web, '/slow', { 'x-rule': 'reset' });
  t.deepEqual([reset.status, reset.reason], [504, 'timeout']);
  t.is(hits() - before, 2, 'no answer within the per-try timeout: retried under `reset`');
  t.regex(reset.body, /after 1 retry/);
});
