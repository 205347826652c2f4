// An inbound connection takes no new request once the certificate its caller presented has expired: the handshake
// checked its validity, but a keep-alive connection (HTTP/1.1, an HTTP/2 session) would otherwise carry requests on
// for as long as its caller keeps it busy, certificate expired or not. (Requests in progress finish; a TCP stream
// or WebSocket tunnel is closed.)

import test from 'ava';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { CertificateAuthority } from '../../ca/authority.ts';
import { createIntermediate } from '../../ca/hierarchy.ts';
import { generateKeyPair, privateKeyFromPem, privateKeyToPem } from '../../ca/keys.ts';
import { CaStore } from '../../ca/store.ts';
import { httpEcho } from '../helpers/apps.ts';
import { makeCsr, TD, WEB } from '../helpers/ca.ts';
import { startMesh, waitFor } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

/**
 * A certificate for `identity` from the mesh's own root that expires `secondsLeft` from now. The CA's shortest
 * lifetime is 5 minutes, so it is issued as if 5 minutes ago, under an intermediate made as if an hour ago.
 */
async function expiringSvid(state: string, identity: string, secondsLeft: number): Promise<{ key: string; cert: string; ca: string; notAfter: Date }> {
  const store = CaStore.open(join(state, 'ca'));
  const active = store.authorities.find((a) => a.record.state === 'active')!;
  const rootKeys = privateKeyFromPem(readFileSync(join(store.dir, 'authorities', active.record.id, 'root.key'), 'utf8'), 'root.key');
  const now = Date.now();
  const issuer = await createIntermediate({ certificate: active.root, keys: rootKeys }, { trustDomain: TD, nowMs: now - 3_600_000 });
  const ca = new CertificateAuthority({ trustDomain: TD, issuer, bundle: store.bundle, clock: () => now - (300 - secondsLeft) * 1000 });
  const keys = generateKeyPair();
  const svid = ca.sign((await makeCsr({ keys })).pem, identity, { ttlSeconds: 300 });
  return { key: privateKeyToPem(keys.privateKey), cert: svid.chainPem, ca: store.bundle.toPem(), notAfter: svid.notAfter };
}

test('a keep-alive connection from a caller whose certificate expires carries no request after the expiry', async (t) => {
  const catalogApp = await httpEcho('catalog');
  const mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}', catalog: '{port: 8081}' } }));
  t.teardown(async () => (await mesh.stop(), await catalogApp.close()));
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: catalogApp.port });

  const svid = await expiringSvid(mesh.state, WEB, 6);
  const s = tls.connect({ host: '127.0.0.1', port: catalog.ports.inbound, key: svid.key, cert: svid.cert, ca: svid.ca, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined });
  s.on('error', () => {});
  await once(s, 'secureConnect');
  let got = '';
  s.setEncoding('latin1').on('data', (d: string) => (got += d));
  s.write('GET /before HTTP/1.1\r\nHost: catalog\r\n\r\n');
  await waitFor('the first answer', () => got.includes('"url":"/before"') || undefined);
  t.regex(got, /^HTTP\/1\.1 200/);

  // Busy the whole time (an idle connection would be closed by a keep-alive timeout anyway), past the expiry.
  const until = svid.notAfter.getTime() + 1500;
  while (Date.now() < until && !s.destroyed) {
    s.write('GET /keepalive HTTP/1.1\r\nHost: catalog\r\n\r\n');
    await new Promise((r) => setTimeout(r, 500));
  }
  if (!s.destroyed) s.write('GET /after HTTP/1.1\r\nHost: catalog\r\n\r\n');
  await new Promise((r) => setTimeout(r, 500));
  t.false(catalogApp.seen.some((x) => x.url === '/after'), `the app got a request over a connection whose certificate expired at ${svid.notAfter.toISOString()}`);
  t.true(s.destroyed || s.readableEnded, 'the connection was closed');
  s.destroy();
});
