import test from 'ava';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { isWeftError } from '../../errors.ts';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { parseCertificates } from '../../ca/pem.ts';
import { activate, checkCanPrepare, dropAllowedAt, finish, type AuthorityRecord } from '../../ca/rotation.ts';
import { CaStore } from '../../ca/store.ts';
import { spiffeIdOfCertificate } from '../../ca/svid.ts';
import { CATALOG, makeCsr, run, tempDir, TD, WEB, writeTemp } from '../helpers/ca.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const rec = (id: string, state: AuthorityRecord['state'], extra: Partial<AuthorityRecord> = {}): AuthorityRecord => ({ id, state, pluggedIn: false, createdAt: new Date(T0).toISOString(), ...extra });

test('rotation decisions are pure functions of the authorities and the clock', (t) => {
  t.notThrows(() => checkCanPrepare([rec('a', 'active')]));
  t.regex(t.throws(() => checkCanPrepare([rec('a', 'active'), rec('b', 'prepared')]))!.message, /b is still prepared; run 'weft ca rotate activate'/);
  t.regex(t.throws(() => checkCanPrepare([rec('b', 'active'), rec('a', 'retired')]))!.message, /run 'weft ca rotate finish'/);

  t.regex(t.throws(() => activate([rec('a', 'active')], T0))!.message, /no prepared authority/);
  const after = activate([rec('a', 'active'), rec('b', 'prepared')], T0 + 1000);
  t.deepEqual(after.map((a) => [a.id, a.state]), [['a', 'retired'], ['b', 'active']]);
  t.is(after[0]!.retiredAt, new Date(T0 + 1000).toISOString());

  // Drop allowed after the last certificate the retired intermediate signed, plus the skew allowance…
  const retired = rec('a', 'retired', { retiredAt: new Date(T0).toISOString() });
  t.is(dropAllowedAt(retired, new Date(T0 + 3600_000)).toISOString(), new Date(T0 + 3660_000).toISOString());
  // …or, with no journal entry, after the longest workload lifetime.
  t.is(dropAllowedAt(retired, null).toISOString(), new Date(T0 + 86_400_000 + 60_000).toISOString());
  const err = t.throws(() => finish([retired, rec('b', 'active')], T0 + 3600_000, () => new Date(T0 + 3600_000)));
  t.true(isWeftError(err, 'WEFT_CA_ROTATION'));
  t.regex(err!.message, /valid until 2026-01-01T01:01:00\.000Z; dropping its root now would break them/);
  const done = finish([retired, rec('b', 'active')], T0 + 3660_000, () => new Date(T0 + 3600_000));
  t.deepEqual(done.map((a) => a.state), ['dropped', 'active']);
});

async function handshake(server: { key: string; cert: string; ca: string }, client: { key: string; cert: string; ca: string }): Promise<[string, string]> {
  let seenByServer = '';
  const srv = tls.createServer({ ...server, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (s) => {
    seenByServer = spiffeIdOfCertificate(s.getPeerX509Certificate()!).uri;
    s.end('ok');
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  try {
    const sock = tls.connect({ ...client, host: '127.0.0.1', port: (srv.address() as AddressInfo).port, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
    await once(sock, 'secureConnect');
    const seenByClient = spiffeIdOfCertificate(sock.getPeerX509Certificate()!).uri;
    await once(sock.resume(), 'end');
    return [seenByClient, seenByServer];
  } finally {
    srv.close();
  }
}

test('a full root rotation: old and new chains both verify in the middle phase, the old root leaves only when safe', async (t) => {
  const dir = join(tempDir(), 'ca');
  let now = Date.now();
  let store = await CaStore.init(dir, { trustDomain: TD, nowMs: now });
  const oldRoot = store.active.root.fingerprint256;
  const keysOld = generateKeyPair();
  const svidOld = store.authority({ clock: () => now }).sign((await makeCsr({ keys: keysOld })).pem, CATALOG);

  // 1. prepare: two roots in the bundle, the old intermediate still signs.
  store = await store.prepareRotation({ nowMs: now });
  t.is(store.bundle.roots.length, 2);
  t.is(parseCertificates(readFileSync(join(dir, 'bundle.pem'), 'utf8'), 'bundle.pem').length, 2);
  t.is(store.active.root.fingerprint256, oldRoot);
  t.true(isWeftError(await t.throwsAsync(store.prepareRotation()), 'WEFT_CA_ROTATION'));

  // 2. activate: the new intermediate signs.
  now += 60_000;
  store = store.activateRotation(now);
  t.not(store.active.root.fingerprint256, oldRoot);
  const keysNew = generateKeyPair();
  const svidNew = store.authority({ clock: () => now }).sign((await makeCsr({ keys: keysNew })).pem, WEB);
  t.not(new X509Certificate(svidNew.certificateDer).issuer, new X509Certificate(svidOld.certificateDer).issuer);

  // Middle phase: both chains verify against the bundle, with our verifier, openssl, and a real handshake.
  const bundle = store.bundle;
  t.is(bundle.verify(parseCertificates(svidOld.chainPem, 'old'), now).spiffeId.uri, CATALOG);
  t.is(bundle.verify(parseCertificates(svidNew.chainPem, 'new'), now).spiffeId.uri, WEB);
  const tmp = tempDir();
  const bundleFile = join(dir, 'bundle.pem');
  for (const [name, svid] of [['old', svidOld], ['new', svidNew]] as const) {
    const v = await run('openssl', ['verify', '-CAfile', bundleFile, '-untrusted', writeTemp(tmp, `${name}-chain.pem`, svid.chainPem), writeTemp(tmp, `${name}.pem`, svid.certificatePem)]);
    t.is(v.code, 0, `${name}: ${v.stderr}`);
  }
  const bundlePem = bundle.toPem();
  const seen = await handshake(
    { key: privateKeyToPem(keysOld.privateKey), cert: svidOld.chainPem, ca: bundlePem },
    { key: privateKeyToPem(keysNew.privateKey), cert: svidNew.chainPem, ca: bundlePem },
  );
  t.deepEqual(seen, [CATALOG, WEB]);

  // 3. finish: refused while the old chain's certificate is still valid, allowed after it expires.
  const early = t.throws(() => store.finishRotation(now));
  t.true(isWeftError(early, 'WEFT_CA_ROTATION'));
  t.regex(early!.message, new RegExp(`valid until ${new Date(svidOld.notAfter.getTime() + 60_000).toISOString()}`));
  t.is(CaStore.open(dir).bundle.roots.length, 2, 'a refused step changes nothing');
  now = svidOld.notAfter.getTime() + 61_000;
  store = store.finishRotation(now);
  t.is(store.bundle.roots.length, 1);
  t.is(parseCertificates(readFileSync(bundleFile, 'utf8'), 'bundle.pem').length, 1);
  t.is(store.bundle.verify(parseCertificates(svidNew.chainPem, 'new'), svidNew.notAfter.getTime() - 1000).spiffeId.uri, WEB);
  t.true(isWeftError(t.throws(() => store.bundle.verify(parseCertificates(svidOld.chainPem, 'old'), svidOld.notAfter.getTime() - 1000)), 'WEFT_CERT_UNTRUSTED'));
  // And the state survives a reload.
  t.deepEqual(CaStore.open(dir).authorities.map((a) => a.record.state), ['dropped', 'active']);
});
