// Who may talk to whom: STRICT inbound refuses plaintext and foreign certificates, the outbound side refuses a
// peer with the wrong SPIFFE ID; PERMISSIVE accepts plaintext without an identity.

import test from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { CaStore } from '../../ca/store.ts';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { httpEcho } from '../helpers/apps.ts';
import { makeCa, makeCsr, run as runTool } from '../helpers/ca.ts';
import { bootstrap, StubSidecar } from '../helpers/stub-sidecar.ts';
import { startMesh, waitFor } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

const yaml = (mode: 'STRICT' | 'PERMISSIVE') => meshYaml({ mesh: `mtls: {mode: ${mode}}`, services: { web: '{port: 8080}', catalog: '{port: 8081}' } });

test('a STRICT inbound refuses plaintext and a certificate from a foreign root; the app sees neither', async (t) => {
  const catalogApp = await httpEcho('catalog');
  const mesh = await startMesh(yaml('STRICT'));
  t.teardown(async () => (await mesh.stop(), await catalogApp.close()));
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: catalogApp.port });

  const plain = await runTool('curl', ['-sS', '-m', '5', `http://127.0.0.1:${catalog.ports.inbound}/plain`]);
  t.not(plain.code, 0, 'plaintext must not get an answer');

  // A well-formed SVID for the right trust domain, but from a CA the mesh does not trust.
  const foreign = await makeCa();
  const keys = generateKeyPair();
  const svid = foreign.ca.sign((await makeCsr({ keys })).pem, 'spiffe://shop.example/ns/default/sa/web');
  const s = tls.connect({ host: '127.0.0.1', port: catalog.ports.inbound, key: privateKeyToPem(keys.privateKey), cert: svid.chainPem, ca: foreign.bundle.toPem(), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  s.on('error', () => {});
  s.on('secureConnect', () => s.write('GET /foreign HTTP/1.1\r\nHost: catalog\r\n\r\n'));
  let answer = '';
  s.on('data', (d) => (answer += d));
  await once(s, 'close');
  t.notRegex(answer, /HTTP\/1\.1 200/);
  t.is(catalogApp.seen.length, 0, 'the app saw no request');
  // Log lines are written once per event-loop turn: the line can arrive just after the connection closes.
  await waitFor('the refusal in the log', () => /inbound TLS handshake refused/.test(catalog.logs()) || undefined, 5000);
  t.regex(catalog.logs(), /inbound TLS handshake refused/);
});

test('the outbound side refuses a peer whose SPIFFE ID is not the service\'s, before sending it anything', async (t) => {
  const webApp = await httpEcho('web');
  const mesh = await startMesh(yaml('STRICT'));
  t.teardown(async () => (await mesh.stop(), await webApp.close()));
  // An impostor: a TLS server with a valid mesh certificate, but for another identity.
  const store = CaStore.open(join(mesh.state, 'ca'));
  const keys = generateKeyPair();
  const impostorSvid = store.authority().sign((await makeCsr({ keys })).pem, 'spiffe://shop.example/ns/default/sa/impostor');
  let received = '';
  const impostor = tls.createServer({ key: privateKeyToPem(keys.privateKey), cert: impostorSvid.chainPem, ca: store.bundle.toPem(), requestCert: true, ALPNProtocols: ['http/1.1'] }, (sock) => {
    sock.on('data', (d) => (received += d));
  });
  impostor.listen(0, '127.0.0.1');
  await once(impostor, 'listening');
  t.teardown(() => impostor.close());
  // It registers as catalog's endpoint using catalog's own token (an attacker who stole a token, say).
  const conn = { url: mesh.url, ca: store.bundle.toPem(), serverIdentity: 'spiffe://shop.example/ns/weft-system/sa/control-plane' };
  const stub = new StubSidecar({ ...conn, service: 'catalog', address: `127.0.0.1:${(impostor.address() as net.AddressInfo).port}` }, await bootstrap(conn, await mesh.token('catalog')));
  await stub.connect();
  t.teardown(() => stub.close());

  const web = await mesh.sidecar({ service: 'web', appPort: webApp.port });
  const r = await waitFor('the endpoint to reach web', async () => {
    const res = await runTool('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${web.ports.outbound}`, 'http://catalog/secret']);
    return /x-weft-reason: no-healthy-upstream/i.test(res.stdout) ? undefined : res;
  });
  t.regex(r.stdout, /^HTTP\/1\.1 502/);
  t.regex(r.stdout, /x-weft-reason: peer-identity-mismatch/i);
  t.regex(r.stdout, /presented spiffe:\/\/shop\.example\/ns\/default\/sa\/impostor; expected spiffe:\/\/shop\.example\/ns\/default\/sa\/catalog/);
  await new Promise((res) => setTimeout(res, 100));
  t.is(received, '', 'the impostor got no request bytes');
});

test('PERMISSIVE accepts plaintext on the same port (no identity) as well as mTLS; policy still applies', async (t) => {
  const catalogApp = await httpEcho('catalog');
  const webApp = await httpEcho('web');
  // Plaintext callers have no identity: only a rule without \`from\` can allow them.
  const mesh = await startMesh(yaml('PERMISSIVE') + `---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: catalog-access}
spec:
  service: catalog
  action: ALLOW
  rules:
    - to: [{paths: [/plain]}]
    - from: [{principals: ["spiffe://shop.example/ns/default/sa/web"]}]
`);
  t.teardown(async () => (await mesh.stop(), await catalogApp.close(), await webApp.close()));
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: catalogApp.port });
  const web = await mesh.sidecar({ service: 'web', appPort: webApp.port });
  const plain = await runTool('curl', ['-sS', '-H', 'x-weft-peer-identity: spiffe://shop.example/ns/default/sa/admin', `http://127.0.0.1:${catalog.ports.inbound}/plain`]);
  t.like(JSON.parse(plain.stdout), { app: 'catalog', url: '/plain', peer: null });
  const other = await runTool('curl', ['-sS', '-i', `http://127.0.0.1:${catalog.ports.inbound}/other`]);
  t.regex(other.stdout, /^HTTP\/1\.1 403/);
  t.regex(other.stdout, /x-weft-policy: default\/catalog-access/i);
  const viaMesh = await waitFor('catalog reachable', async () => {
    const r = await runTool('curl', ['-sS', '-x', `http://127.0.0.1:${web.ports.outbound}`, 'http://catalog/mtls']);
    return r.stdout.startsWith('{') ? r : undefined;
  });
  t.like(JSON.parse(viaMesh.stdout), { url: '/mtls', peer: 'spiffe://shop.example/ns/default/sa/web' });
});

test('the inbound only offers TLS 1.3', async (t) => {
  const catalogApp = await httpEcho('catalog');
  const mesh = await startMesh(yaml('STRICT'));
  t.teardown(async () => (await mesh.stop(), await catalogApp.close()));
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: catalogApp.port });
  const s12 = tls.connect({ host: '127.0.0.1', port: catalog.ports.inbound, maxVersion: 'TLSv1.2', rejectUnauthorized: false });
  const [err] = await once(s12, 'error');
  t.regex((err as Error).message, /protocol version|alert|version/i);
  const raw = net.connect(catalog.ports.inbound, '127.0.0.1');
  raw.on('error', () => {});
  await once(raw, 'connect');
  raw.destroy();
});
