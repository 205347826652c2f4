// The pending-requests limit (maxPendingRequests) through a real sidecar: a call the mesh has answered gives its
// slot back at once, whatever its caller does next.

import test from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { controllable, get, MESH } from '../../helpers/catalog.ts';
import { startMesh, waitFor } from '../../helpers/mesh.ts';
import { routeYaml, trafficPolicyYaml } from '../../helpers/mesh-yaml.ts';

test('a call timed out while its body was still being read gives its pending slot back with the 504', async (t) => {
  const app = await controllable('v1');
  // A retry policy has the body read into memory first (so it could be sent again).
  const mesh = await startMesh(MESH(`---
${routeYaml('catalog', '    - destinations: [{subset: v1}]\n      timeout: 300ms\n      retries: {attempts: 1, on: [reset]}\n')}---
${trafficPolicyYaml('catalog', '  connectionPool: {maxPendingRequests: 1}\n')}`));
  t.teardown(async () => (await mesh.stop(), await app.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: app.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('catalog reachable', async () => (await get(web, '/warm')).status === 200 || undefined);

  // A caller sends 10 of its 100 bytes, then goes quiet (and stays connected).
  const s = net.connect(web.ports.outbound, '127.0.0.1');
  s.on('error', () => {});
  t.teardown(() => s.destroy());
  await once(s, 'connect');
  let got = '';
  s.setEncoding('latin1').on('data', (d: string) => (got += d));
  s.write('PUT /stalled HTTP/1.1\r\nHost: catalog\r\nContent-Length: 100\r\n\r\n0123456789');
  await waitFor('the 504', () => /^HTTP\/1\.1 504 /.test(got) || undefined, 3000);
  t.regex(got, /x-weft-reason: timeout/i);

  await sleep(100);
  const next = await get(web, '/next');
  t.deepEqual([next.status, next.reason], [200, undefined], next.body);
});
