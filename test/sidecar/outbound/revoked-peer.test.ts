// The outbound side checks the peer's certificate against the revocation list too, not only its SPIFFE ID: a
// revoked certificate for the right identity (a stolen one, answering at an endpoint's address) gets no request,
// and a pooled connection to it is dropped when the revocation is pushed.

import test from 'ava';
import { once } from 'node:events';
import https from 'node:https';
import type net from 'node:net';
import { httpEcho } from '../../helpers/apps.ts';
import { CATALOG, run as runTool, svidFromCa } from '../../helpers/ca.ts';
import { weft } from '../../helpers/cli.ts';
import { startMesh, waitFor } from '../../helpers/mesh.ts';
import { meshYaml } from '../../helpers/mesh-yaml.ts';
import { bootstrap, StubSidecar } from '../../helpers/stub-sidecar.ts';

const CONTROL_PLANE = 'spiffe://shop.example/ns/weft-system/sa/control-plane';

test('a peer presenting a revoked certificate is refused, and a pooled connection to it is closed when the revocation arrives', async (t) => {
  const webApp = await httpEcho('web');
  const mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}', catalog: '{port: 8081}' } }));
  t.teardown(async () => (await mesh.stop(), await webApp.close()));

  // An impostor holding a stolen catalog certificate, answering at catalog's only endpoint.
  const stolen = await svidFromCa(mesh.state, CATALOG);
  const seen: string[] = [];
  const impostor = https.createServer({ key: stolen.key, cert: stolen.cert, ca: stolen.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (req, res) => {
    seen.push(req.url!);
    res.end('impostor\n');
  });
  impostor.listen(0, '127.0.0.1');
  await once(impostor, 'listening');
  t.teardown(() => (impostor.closeAllConnections(), impostor.close()));
  const conn = { url: mesh.url, ca: stolen.ca, serverIdentity: CONTROL_PLANE };
  const stub = new StubSidecar({ ...conn, service: 'catalog', address: `127.0.0.1:${(impostor.address() as net.AddressInfo).port}` }, await bootstrap(conn, await mesh.token('catalog')));
  await stub.connect();
  t.teardown(() => stub.close());

  const web = await mesh.sidecar({ service: 'web', appPort: webApp.port });
  const call = (path: string) => runTool('curl', ['-sS', '-i', '-m', '5', '-x', `http://127.0.0.1:${web.ports.outbound}`, `http://catalog${path}`]);
  // Not revoked yet: the certificate is a valid catalog one, so this call goes through (and leaves a pooled connection).
  const before = await waitFor('the endpoint to reach web', async () => {
    const r = await call('/before');
    return /x-weft-reason: no-healthy-upstream/i.test(r.stdout) ? undefined : r;
  });
  t.regex(before.stdout, /^HTTP\/1\.1 200/);
  t.deepEqual(seen, ['/before']);

  const r = await weft(['revoke', '--serial', stolen.serial, '--state', mesh.state]);
  t.is(r.code, 0, r.stderr);
  await waitFor('the revocation to reach web', async () => (await web.admin('/config')).body.includes(stolen.serial) || undefined);

  // Over the pooled connection, or a new one: the revoked certificate gets nothing more.
  const after = await call('/after');
  t.notRegex(after.stdout, /^HTTP\/1\.1 200/, after.stdout);
  const fresh = await call('/fresh');
  t.regex(fresh.stdout, /^HTTP\/1\.1 502/, fresh.stdout);
  t.regex(fresh.stdout, /revoked/);
  t.deepEqual(seen, ['/before']);
});
