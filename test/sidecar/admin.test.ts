// The admin port's own defences: it answers only to an address (or localhost) as Host, so that a web page
// cannot read it through a DNS name pointed at 127.0.0.1; and a tracing endpoint's user and password are never
// shown by /config nor written to the log.

import test from 'ava';
import http from 'node:http';
import { startMesh } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

/** GET `path` on the admin port with this Host header. */
function get(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the admin port answers an IP address or localhost as Host, not a name; /config and logs hide a tracing password', async (t) => {
  const mesh = await startMesh(meshYaml({ mesh: 'tracing: {endpoint: "http://weft:s3cret@127.0.0.1:1/v1/traces", sampling: 1}', services: { web: '{port: 8080}' } }));
  t.teardown(() => mesh.stop());
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  const port = web.ports.admin;
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, '127.0.0.1']) t.is((await get(port, '/ready', host)).status, 200, host);
  const rebound = await get(port, '/config', `evil.example:${port}`);
  t.is(rebound.status, 421);
  t.is(rebound.body, `admin port: Host "evil.example:${port}" is not an IP address or localhost\n`);

  const config = await get(port, '/config', `127.0.0.1:${port}`);
  t.is(JSON.parse(config.body).snapshot.mesh.tracing.endpoint, 'http://127.0.0.1:1/v1/traces');
  t.false(config.body.includes('s3cret'));
  t.regex(web.logs(), /"msg":"tracing on","endpoint":"http:\/\/127\.0\.0\.1:1\/v1\/traces"/);
  t.false(web.logs().includes('s3cret'));
});
