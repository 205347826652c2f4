// HTTP/2 carries the host in `:authority`, HTTP/1.1 in `Host`: a policy condition on the host must see the same
// value whichever the caller speaks, and the value it sees must be the one the app gets. A request carrying both,
// with different values, has no single meaning (RFC 9113 §8.3.1) and is refused. Methods are case-sensitive, but
// apps and frameworks often upper-case them (Express routes `delete` as DELETE): HTTP/1.1's parser refuses a
// lower-case method, and so does the inbound for HTTP/2, where any token would otherwise pass a DENY on DELETE.

import test from 'ava';
import { once } from 'node:events';
import http2 from 'node:http2';
import tls from 'node:tls';
import type net from 'node:net';
import { svidFromCa } from '../../helpers/ca.ts';
import { startMesh } from '../../helpers/mesh.ts';
import { meshYaml, policyYaml } from '../../helpers/mesh-yaml.ts';

const WEB = 'spiffe://shop.example/ns/default/sa/web';
const YAML = meshYaml({
  services: { web: '{port: 8080}', catalog: '{port: 8081, protocol: http2}' },
  extra: policyYaml('catalog-no-admin-host', 'catalog', 'DENY', '    - when: [{header: host, values: [admin.catalog]}]\n    - to: [{methods: [DELETE]}]\n'),
});

/** An h2c app (an http2 service's app speaks HTTP/2 in cleartext): the paths it was asked for, and its :authority. */
async function h2cApp(): Promise<{ port: number; seen: string[]; close(): void }> {
  const seen: string[] = [];
  const server = http2.createServer((req, res) => (seen.push(`${req.url} ${req.headers[':authority']}`), res.end('ok')));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, seen, close: () => server.close() };
}

test('HTTP/2: a DENY on the Host header holds for :authority, a Host that differs from :authority is refused, and so is a lower-case method', async (t) => {
  const catalogApp = await h2cApp();
  const mesh = await startMesh(YAML);
  t.teardown(async () => (await mesh.stop(), catalogApp.close()));
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: catalogApp.port });
  const web = await svidFromCa(mesh.state, WEB);
  const tlsOptions = { key: web.key, cert: web.cert, ca: web.ca, checkServerIdentity: () => undefined };

  // Control: HTTP/1.1 with that Host is denied.
  const s = tls.connect({ host: '127.0.0.1', port: catalog.ports.inbound, ...tlsOptions, ALPNProtocols: ['http/1.1'] });
  s.on('error', () => {});
  await once(s, 'secureConnect');
  s.end('GET /h1 HTTP/1.1\r\nHost: admin.catalog\r\nConnection: close\r\n\r\n');
  let h1 = '';
  s.setEncoding('latin1').on('data', (d: string) => (h1 += d));
  await once(s, 'close');
  t.regex(h1, /^HTTP\/1\.1 403/);

  const session = http2.connect(`https://127.0.0.1:${catalog.ports.inbound}`, tlsOptions);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const get = async (headers: http2.OutgoingHttpHeaders): Promise<number> => {
    const req = session.request({ ':method': 'GET', ':authority': 'catalog', ...headers });
    req.on('error', () => {});
    const [answer] = await once(req, 'response');
    req.resume();
    return Number(answer[':status']);
  };
  t.is(await get({ ':path': '/h2-authority', ':authority': 'admin.catalog' }), 403, 'the same host as :authority');
  t.is(await get({ ':path': '/h2-two-hosts', ':authority': 'admin.catalog', host: 'catalog' }), 400, ':authority and a different Host');
  t.is(await get({ ':method': 'DELETE', ':path': '/h2-delete' }), 403, 'DELETE');
  t.is(await get({ ':method': 'delete', ':path': '/h2-lower-delete' }), 400, 'delete, in lower case');
  t.is(await get({ ':path': '/h2-allowed', ':authority': 'catalog' }), 200, 'control: another host');
  t.deepEqual(catalogApp.seen, ['/h2-allowed catalog']);
});
