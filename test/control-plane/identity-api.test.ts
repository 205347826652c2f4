import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { isWeftError, type WeftError } from '../../errors.ts';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { generateKeyPair } from '../../ca/keys.ts';
import { CaStore } from '../../ca/store.ts';
import { parseCertificates } from '../../ca/pem.ts';
import { spiffeIdOfCertificate } from '../../ca/svid.ts';
import { TrustBundle } from '../../ca/trust-bundle.ts';
import { makeCsr } from '../helpers/ca.ts';
import { startControlPlane } from '../helpers/control-plane.ts';
import { bootstrap, csrFor } from '../helpers/stub-sidecar.ts';
import { join } from 'node:path';

const WEB = 'spiffe://shop.example/ns/default/sa/web';
const CATALOG = 'spiffe://shop.example/ns/default/sa/catalog';



test('a token buys one certificate for exactly its identity; the chain verifies against the bundle', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const svid = await bootstrap(cp.conn, await cp.tokenFor('web'));
  t.is(svid.identity, WEB);
  const chain = parseCertificates(svid.chain, 'chain');
  t.is(new TrustBundle('shop.example', parseCertificates(cp.cp.bundlePem, 'bundle')).verify(chain).spiffeId.uri, WEB);
  // Default workload lifetime: one hour.
  const life = chain[0]!.validToDate.getTime() - Date.now();
  t.true(life > 3590_000 && life <= 3600_000, String(life));
});

test('a replayed token is refused, and no certificate is issued for it', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const token = await cp.tokenFor('web');
  await bootstrap(cp.conn, token);
  const issued = cp.journalLength();
  const err = await t.throwsAsync(bootstrap(cp.conn, token));
  t.true(isWeftError(err, 'WEFT_TOKEN_REPLAYED'), err?.message);
  t.regex(err!.message, /was already used; a token works once/);
  t.is(cp.journalLength(), issued);
});

test('an expired token is refused with when it expired', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const token = await cp.tokenFor('web');
  cp.advance(11 * 60_000);
  const err = await t.throwsAsync(bootstrap(cp.conn, token));
  t.true(isWeftError(err, 'WEFT_TOKEN_EXPIRED'), err?.message);
  t.regex(err!.message, /expired at .*weft token/);
});

test('a forged or tampered token is refused', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const token = await cp.tokenFor('web');
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
  claims.sub = CATALOG;
  const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
  for (const bad of [tampered, 'not-a-jwt', `${h}.${p}.`]) {
    const err = await t.throwsAsync(bootstrap(cp.conn, bad));
    t.true(isWeftError(err, 'WEFT_TOKEN_INVALID'), `${bad.slice(0, 20)}: ${err?.message}`);
  }
});

test('a token for X with a CSR asking for Y is refused, and the token stays good', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const token = await cp.tokenFor('web');
  const client = cp.anonymous();
  t.teardown(() => client.close());
  const { pem } = await makeCsr({ sans: [{ type: 'url', value: CATALOG }] });
  const err = await t.throwsAsync(client.request('POST', '/v1/identity/bootstrap', { token, csr: pem }));
  t.true(isWeftError(err, 'WEFT_CA_CSR_NAME_MISMATCH'), err?.message);
  t.regex(err!.message, /asks for URI SAN "spiffe:\/\/shop\.example\/ns\/default\/sa\/catalog" but the caller is authorised only for spiffe:\/\/shop\.example\/ns\/default\/sa\/web/);
  t.is(cp.journalLength(), 1, 'only the control plane\'s own certificate');
  t.is((await bootstrap(cp.conn, token)).identity, WEB);
});

test('renewal over mTLS renews the same identity only; without a certificate it is refused', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const svid = await bootstrap(cp.conn, await cp.tokenFor('web'));
  const mtls = new ControlPlaneClient({ ...cp.conn, cert: svid.chain, key: svid.key });
  t.teardown(() => mtls.close());
  const renewed = await mtls.request<{ identity: string; serial: string; chain: string }>('POST', '/v1/identity/renew', { csr: await csrFor(generateKeyPair()) });
  t.is(renewed.identity, WEB);
  t.not(renewed.serial, svid.serial);
  t.is(spiffeIdOfCertificate(new X509Certificate(renewed.chain)).uri, WEB);

  const other = await t.throwsAsync(mtls.request('POST', '/v1/identity/renew', { csr: (await makeCsr({ sans: [{ type: 'url', value: CATALOG }] })).pem }));
  t.true(isWeftError(other, 'WEFT_CA_CSR_NAME_MISMATCH'), other?.message);

  const anon = cp.anonymous();
  t.teardown(() => anon.close());
  const none = await t.throwsAsync(anon.request('POST', '/v1/identity/renew', { csr: await csrFor(generateKeyPair()) }));
  t.true(isWeftError(none, 'WEFT_AUTH_REQUIRED'), none?.message);
});

test('the operator API lets nothing in without an operator credential', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const calls: [string, string, unknown][] = [
    ['POST', '/v1/tokens', { service: 'web', namespace: 'default' }],
    ['PUT', '/v1/config', 'kind: Mesh'],
    ['POST', '/v1/revocations', { identity: WEB }],
    ['GET', '/v1/status', undefined],
    ['GET', '/v1/config', undefined],
  ];
  const svid = await bootstrap(cp.conn, await cp.tokenFor('web'));
  const anonymous = cp.anonymous();
  const workload = new ControlPlaneClient({ ...cp.conn, cert: svid.chain, key: svid.key });
  const wrongToken = new ControlPlaneClient({ ...cp.conn, adminToken: 'x'.repeat(43) });
  t.teardown(() => [anonymous, workload, wrongToken].forEach((c) => c.close()));
  for (const [method, path, body] of calls) {
    const a = (await t.throwsAsync(anonymous.request(method, path, body))) as WeftError;
    t.is(a.code, 'WEFT_AUTH_REQUIRED', `${method} ${path} anonymous`);
    const w = (await t.throwsAsync(workload.request(method, path, body))) as WeftError;
    t.is(w.code, 'WEFT_AUTH_FORBIDDEN', `${method} ${path} as a workload`);
    t.regex(w.message, /is not an operator identity/);
    const x = (await t.throwsAsync(wrongToken.request(method, path, body))) as WeftError;
    t.is(x.code, 'WEFT_AUTH_FORBIDDEN', `${method} ${path} with a wrong token`);
  }
  // An operator certificate gets in.
  const store = CaStore.open(join(cp.dir, 'state', 'ca'));
  const keys = generateKeyPair();
  const opSvid = store.authority().sign(await csrFor(keys), 'spiffe://shop.example/ns/weft-system/sa/operator');
  const { privateKeyToPem } = await import('../../ca/keys.ts');
  const op = new ControlPlaneClient({ ...cp.conn, cert: opSvid.chainPem, key: privateKeyToPem(keys.privateKey) });
  t.teardown(() => op.close());
  const status = await op.request<{ sidecars: unknown[] }>('GET', '/v1/status');
  t.deepEqual(status.sidecars, []);
});

test('the admin token is kept 0600 in the state directory', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const { statSync } = await import('node:fs');
  t.is(statSync(join(cp.dir, 'state', 'admin-token')).mode & 0o777, 0o600);
  t.is(statSync(join(cp.dir, 'state', 'token.key')).mode & 0o777, 0o600);
});

test('an address presenting refused tokens is told to wait (429) before its tokens are checked; good ones then wait too', async (t) => {
  // A clock that stands still: on a busy machine the 20 refusals can take long enough for the allowance to refill.
  const cp = await startControlPlane({ frozenClock: true });
  t.teardown(() => cp.cp.stop());
  const good = await cp.tokenFor('web');
  const bad = async () => (await t.throwsAsync(bootstrap(cp.conn, 'not.a.token'))) as WeftError;
  // A burst of 20 refusals is allowed, each checked and refused as what it is.
  for (let i = 0; i < 20; i++) t.true(isWeftError(await bad(), 'WEFT_TOKEN_INVALID'));
  const limited = await bad();
  t.true(isWeftError(limited, 'WEFT_API_RATE_LIMITED'), limited.message);
  t.regex(limited.message, /too many refused bootstrap tokens from \S+; try again in a few seconds/);
  const waiting = await t.throwsAsync(bootstrap(cp.conn, good));
  t.true(isWeftError(waiting, 'WEFT_API_RATE_LIMITED'), 'a good token from that address waits too (the sidecar retries)');
  // The allowance comes back (2 a second): the good token is still unspent and works.
  cp.advance(1000);
  const svid = await bootstrap(cp.conn, good);
  t.truthy(svid);
});
