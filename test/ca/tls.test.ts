import test from 'ava';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { spiffeIdOfCertificate } from '../../ca/svid.ts';
import type { CertificateAuthority } from '../../ca/authority.ts';
import { CATALOG, makeCa, makeCsr, WEB } from '../helpers/ca.ts';

async function issue(ca: CertificateAuthority, id: string): Promise<{ key: string; cert: string; ca: string }> {
  const keys = generateKeyPair();
  const { pem } = await makeCsr({ keys });
  const svid = ca.sign(pem, id);
  return { key: privateKeyToPem(keys.privateKey), cert: svid.chainPem, ca: svid.bundlePem };
}

test('a node:tls server and client complete a TLS 1.3 mutual handshake, each seeing the other\'s SPIFFE ID', async (t) => {
  const { ca } = await makeCa();
  const server = await issue(ca, CATALOG);
  const client = await issue(ca, WEB);
  let seenByServer = '';
  const srv = tls.createServer({ ...server, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (sock) => {
    seenByServer = spiffeIdOfCertificate(sock.getPeerX509Certificate()!).uri;
    sock.end(sock.getProtocol() ?? '');
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  const sock = tls.connect({
    ...client,
    host: '127.0.0.1',
    port,
    minVersion: 'TLSv1.3',
    // Node's hostname check ignores URI SANs; the mesh checks the SPIFFE ID itself.
    checkServerIdentity: (_host, cert) => (spiffeIdOfCertificate(cert.raw).uri === CATALOG ? undefined : new Error('wrong peer')),
  });
  await once(sock, 'secureConnect');
  t.true(sock.authorized, String(sock.authorizationError));
  t.is(spiffeIdOfCertificate(sock.getPeerX509Certificate()!).uri, CATALOG);
  let body = '';
  sock.setEncoding('utf8').on('data', (d) => (body += d));
  await once(sock, 'end');
  t.is(body, 'TLSv1.3');
  t.is(seenByServer, WEB);
  srv.close();
});

test('a client certificate from a foreign root fails the handshake', async (t) => {
  const mesh = await makeCa();
  const foreign = await makeCa();
  const server = await issue(mesh.ca, CATALOG);
  const intruder = await issue(foreign.ca, WEB);
  let reached = false;
  const srv = tls.createServer({ ...server, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (sock) => {
    reached = true;
    sock.end();
  });
  srv.on('tlsClientError', () => {});
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const sock = tls.connect({ key: intruder.key, cert: intruder.cert, ca: server.ca, host: '127.0.0.1', port: (srv.address() as AddressInfo).port, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
  const [err] = await Promise.race([once(sock, 'error'), once(sock, 'close').then(() => [new Error('closed')])]);
  t.truthy(err);
  t.false(reached);
  srv.close();
});
