// A request the mesh answers itself because it names no service (404 no-route) is still a request the sidecar
// handled: counted in weft_requests_total and written to the access log, as Istio counts its NR answers, with a
// destination that is no label value taken from the caller's Host (random hosts must not grow the series).

import test from 'ava';
import http from 'node:http';
import { samplesOf } from '../../../cli/top/exposition.ts';
import { startMesh, waitFor } from '../../helpers/mesh.ts';
import { meshYaml } from '../../helpers/mesh-yaml.ts';

test('requests for no service are counted and logged, without the Host as a label', async (t) => {
  const mesh = await startMesh(meshYaml({ mesh: 'accessLog: true', services: { web: '{port: 8080}', catalog: '{port: 8081}' } }));
  t.teardown(() => mesh.stop());
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  const get = (host: string) =>
    new Promise<{ status: number; reason: unknown }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: web.ports.outbound, path: '/', headers: { host }, agent: false }, (res) => (res.resume(), res.on('end', () => resolve({ status: res.statusCode!, reason: res.headers['x-weft-reason'] }))));
      req.on('error', reject);
      req.end();
    });
  const total = async () => samplesOf((await web.admin('/metrics')).body, 'test').filter((s) => s.name === 'weft_requests_total' && s.labels.direction === 'outbound').reduce((n, s) => n + s.value, 0);
  const before = await total();
  for (let i = 0; i < 5; i++) t.like(await get(`random-${i}.example`), { status: 404, reason: 'no-route' });
  const counted = await waitFor('the answers to be counted', async () => ((await total()) - before >= 5 ? (await total()) - before : undefined), 3000).catch(async () => (await total()) - before);
  t.is(counted, 5, 'each no-route answer is a request in weft_requests_total');
  const text = (await web.admin('/metrics')).body;
  t.false(text.includes('random-'), 'no label value comes from the Host');
  t.is(web.logs().split('\n').filter((l) => l.includes('"msg":"access"') && l.includes('"reason":"no-route"')).length, 5);
});
