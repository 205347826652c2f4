import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { isWeftError } from '../../errors.ts';
import { CertificateAuthority } from '../../ca/authority.ts';
import { createIntermediate, createRoot } from '../../ca/hierarchy.ts';
import { MAX_WORKLOAD_TTL_S, MIN_WORKLOAD_TTL_S } from '../../ca/lifetime.ts';
import { TrustBundle } from '../../ca/trust-bundle.ts';
import { x509 } from '../../ca/x509.ts';
import { makeCa, makeCsr, run, tempDir, TD, WEB, writeTemp } from '../helpers/ca.ts';

test('issues an X.509-SVID with exactly the authorised identity and the mesh profile', async (t) => {
  const { ca, intermediate } = await makeCa();
  const { pem } = await makeCsr();
  const before = Date.now();
  const svid = ca.sign(pem, WEB);
  const cert = new x509.X509Certificate(svid.certificateDer);

  t.is(svid.spiffeId.uri, WEB);
  const sans = cert.getExtensions(x509.SubjectAlternativeNameExtension);
  t.is(sans.length, 1);
  t.true(sans[0]!.critical);
  t.deepEqual(sans[0]!.names.items.map((n) => [n.type, n.value]), [['url', WEB]]);
  t.is(cert.subject, '');

  const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
  t.false(bc.ca);
  t.true(bc.critical);
  const ku = cert.getExtension(x509.KeyUsagesExtension)!;
  t.is(ku.usages, x509.KeyUsageFlags.digitalSignature);
  t.true(ku.critical);
  t.deepEqual([...cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages].sort(), [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth].sort());
  const issuerSki = new x509.X509Certificate(intermediate.certificate.raw).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
  t.is(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId, issuerSki);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)!;
  t.is(ski.keyId, (await x509.SubjectKeyIdentifierExtension.create(cert.publicKey)).keyId);

  // Positive serial with 128 random bits: at most 17 bytes, and the top bit of the encoding clear.
  const serialBytes = Buffer.from(cert.serialNumber, 'hex');
  t.true(serialBytes.length === 16 || (serialBytes.length === 17 && serialBytes[0] === 0));
  t.is(svid.serial, cert.serialNumber.replace(/^00/, '').toUpperCase());

  // Default lifetime one hour from now, notBefore backdated a little for clock skew.
  t.true(svid.notAfter.getTime() - before >= 3600_000 - 1000 && svid.notAfter.getTime() - before <= 3600_000 + 1000);
  t.true(before - svid.notBefore.getTime() >= 59_000 && before - svid.notBefore.getTime() <= 61_000);
  t.is(svid.clipped, null);
});

test('serials are distinct across many issuances', async (t) => {
  const { ca } = await makeCa();
  const { pem } = await makeCsr();
  const serials = new Set(Array.from({ length: 500 }, () => ca.sign(pem, WEB).serial));
  t.is(serials.size, 500);
});

test('the chain verifies with openssl verify, an independent verifier', async (t) => {
  const { ca } = await makeCa();
  const { pem } = await makeCsr();
  const svid = ca.sign(pem, WEB);
  const dir = tempDir();
  const leaf = writeTemp(dir, 'leaf.pem', svid.certificatePem);
  const chain = writeTemp(dir, 'chain.pem', svid.chainPem);
  const bundle = writeTemp(dir, 'bundle.pem', svid.bundlePem);
  const ok = await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', bundle, '-untrusted', chain, leaf]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /leaf\.pem: OK/);
  const server = await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', bundle, '-untrusted', chain, leaf]);
  t.is(server.code, 0, server.stderr);
  // And openssl sees the URI SAN and the critical flags.
  const text = await run('openssl', ['x509', '-in', leaf, '-noout', '-text']);
  t.regex(text.stdout, /Subject Alternative Name: critical\s+URI:spiffe:\/\/shop\.example\/ns\/default\/sa\/web/);
  t.regex(text.stdout, /Basic Constraints: critical\s+CA:FALSE/);
  // Against a foreign root, openssl refuses.
  const other = await makeCa();
  const foreign = writeTemp(dir, 'foreign.pem', other.bundle.toPem());
  const bad = await run('openssl', ['verify', '-CAfile', foreign, '-untrusted', chain, leaf]);
  t.not(bad.code, 0);
});

test('signs a CSR made by openssl req (DER and PEM)', async (t) => {
  const { ca, bundle } = await makeCa();
  const dir = tempDir();
  const key = join(dir, 'k.pem');
  const csr = join(dir, 'r.pem');
  const gen = await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/O=ignored', '-out', csr]);
  t.is(gen.code, 0, gen.stderr);
  const { readFileSync } = await import('node:fs');
  const svid = ca.sign(readFileSync(csr, 'utf8'), WEB);
  t.is(bundle.verify([new X509Certificate(svid.certificateDer), ca.issuer]).spiffeId.uri, WEB);
  // The subject the CSR asked for (O=ignored) is not copied.
  t.is(new x509.X509Certificate(svid.certificateDer).subject, '');
  const der = await run('openssl', ['req', '-in', csr, '-outform', 'DER', '-out', join(dir, 'r.der')]);
  t.is(der.code, 0);
  t.is(ca.sign(readFileSync(join(dir, 'r.der')), WEB).spiffeId.uri, WEB);
});

test('accepts a CSR that asks for exactly the authorised identity', async (t) => {
  const { ca } = await makeCa();
  const { pem } = await makeCsr({ sans: [{ type: 'url', value: WEB }], cn: WEB });
  t.is(ca.sign(pem, WEB).spiffeId.uri, WEB);
});

// Bad input: each case gets a clear error with a stable code, and no certificate.
const badCsrs: [string, () => Promise<string | Buffer>, string, RegExp][] = [
  ['malformed PEM', async () => '-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all!!\n-----END CERTIFICATE REQUEST-----', 'WEFT_CA_CSR_MALFORMED', /not a readable PKCS#10/],
  ['empty input', async () => '', 'WEFT_CA_CSR_MALFORMED', /not a readable/],
  ['a certificate instead of a CSR', async () => (await makeCa()).root.certificate.toString(), 'WEFT_CA_CSR_MALFORMED', /not a readable/],
  ['truncated DER', async () => (await makeCsr()).der.subarray(0, 40), 'WEFT_CA_CSR_MALFORMED', /not a readable/],
  ['a bad signature', async () => {
    const { der } = await makeCsr();
    der[der.length - 5]! ^= 0x01;
    return der;
  }, 'WEFT_CA_CSR_SIGNATURE', /signature does not verify/],
  ['a public key swapped after signing', async () => {
    const a = await makeCsr();
    const b = await makeCsr();
    const keyA = a.der.indexOf(Buffer.from(new x509.Pkcs10CertificateRequest(a.der).publicKey.rawData));
    const spkiB = Buffer.from(new x509.Pkcs10CertificateRequest(b.der).publicKey.rawData);
    spkiB.copy(a.der, keyA);
    return a.der;
  }, 'WEFT_CA_CSR_SIGNATURE', /signature does not verify/],
  ['another URI SAN', async () => (await makeCsr({ sans: [{ type: 'url', value: `spiffe://${TD}/ns/default/sa/admin` }] })).pem, 'WEFT_CA_CSR_NAME_MISMATCH', /asks for URI SAN "spiffe:\/\/shop\.example\/ns\/default\/sa\/admin" but the caller is authorised only for/],
  ['the right URI plus another', async () => (await makeCsr({ sans: [{ type: 'url', value: WEB }, { type: 'url', value: `spiffe://${TD}/ns/x/sa/y` }] })).pem, 'WEFT_CA_CSR_NAME_MISMATCH', /authorised only for/],
  ['a DNS SAN', async () => (await makeCsr({ sans: [{ type: 'dns', value: 'web.internal' }] })).pem, 'WEFT_CA_CSR_NAME_MISMATCH', /DNS SAN "web\.internal"/],
  ['another CN', async () => (await makeCsr({ cn: 'admin' })).pem, 'WEFT_CA_CSR_NAME_MISMATCH', /CN="admin"/],
];

for (const [name, csr, code, message] of badCsrs) {
  test(`refuses a CSR with ${name}`, async (t) => {
    const issued: unknown[] = [];
    const { intermediate, bundle } = await makeCa();
    const ca = new CertificateAuthority({ trustDomain: TD, issuer: intermediate, bundle, onIssue: (r) => issued.push(r) });
    const input = await csr();
    const err = t.throws(() => ca.sign(input, WEB));
    t.true(isWeftError(err, code as never), `${err?.message}`);
    t.regex(err!.message, message);
    t.is(issued.length, 0);
  });
}

test('refuses a CSR for a key that is not P-256', async (t) => {
  const { ca } = await makeCa();
  const dir = tempDir();
  const gen = await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', join(dir, 'k'), '-subj', '/', '-out', join(dir, 'r.pem')]);
  t.is(gen.code, 0, gen.stderr);
  const { readFileSync } = await import('node:fs');
  const err = t.throws(() => ca.sign(readFileSync(join(dir, 'r.pem'), 'utf8'), WEB));
  t.true(isWeftError(err, 'WEFT_CA_CSR_KEY_UNSUPPORTED'));
  t.regex(err!.message, /secp384r1.*ECDSA P-256 keys only/);
});

test('refuses identities outside the trust domain, bare trust domains and invalid IDs', async (t) => {
  const { ca } = await makeCa();
  const { pem } = await makeCsr();
  t.true(isWeftError(t.throws(() => ca.sign(pem, 'spiffe://evil.example/ns/default/sa/web')), 'WEFT_CA_WRONG_TRUST_DOMAIN'));
  t.true(isWeftError(t.throws(() => ca.sign(pem, `spiffe://${TD}`)), 'WEFT_CA_WRONG_TRUST_DOMAIN'));
  t.true(isWeftError(t.throws(() => ca.sign(pem, `spiffe://${TD}/a/../b`)), 'WEFT_SPIFFE_INVALID'));
});

test('TTL is bounded between 5 minutes and 24 hours', async (t) => {
  const { ca } = await makeCa();
  const { pem } = await makeCsr();
  for (const ttl of [0, -1, MIN_WORKLOAD_TTL_S - 1, MAX_WORKLOAD_TTL_S + 1, 1.5, Number.NaN]) {
    const err = t.throws(() => ca.sign(pem, WEB, { ttlSeconds: ttl }));
    t.true(isWeftError(err, 'WEFT_CA_TTL_OUT_OF_BOUNDS'), String(ttl));
    t.regex(err!.message, /from 300 \(5m\) to 86400 \(24h\)/);
  }
  const min = ca.sign(pem, WEB, { ttlSeconds: MIN_WORKLOAD_TTL_S });
  const max = ca.sign(pem, WEB, { ttlSeconds: MAX_WORKLOAD_TTL_S });
  t.true(max.notAfter.getTime() - min.notAfter.getTime() >= (MAX_WORKLOAD_TTL_S - MIN_WORKLOAD_TTL_S - 2) * 1000);
});

test('a lifetime that would outlive the issuer is clipped and says so, or refused when asked', async (t) => {
  const now = Date.now();
  // An intermediate with 30 minutes left.
  const { ca } = await makeCa({ nowMs: now, intermediateTtlSeconds: 30 * 60 });
  const { pem } = await makeCsr();
  const svid = ca.sign(pem, WEB, { ttlSeconds: 3600 });
  t.truthy(svid.clipped);
  t.regex(svid.clipped!.reason, /clipped to the issuing CA certificate's expiry/);
  t.true(svid.notAfter.getTime() <= ca.issuer.validToDate.getTime());
  t.true(svid.clipped!.requestedNotAfter.getTime() > svid.notAfter.getTime());
  const err = t.throws(() => ca.sign(pem, WEB, { ttlSeconds: 3600, onIssuerExpiry: 'refuse' }));
  t.true(isWeftError(err, 'WEFT_CA_ISSUER_EXPIRES_TOO_SOON'));
  t.regex(err!.message, /would outlive the issuing CA certificate/);
});

test('an expired or not-yet-valid issuer signs nothing', async (t) => {
  const now = Date.now();
  const { pem } = await makeCsr();
  const expired = await makeCa({ nowMs: now, intermediateTtlSeconds: 600, clock: () => now + 3600_000 });
  const e1 = t.throws(() => expired.ca.sign(pem, WEB));
  t.true(isWeftError(e1, 'WEFT_CA_ISSUER_EXPIRED'));
  t.regex(e1!.message, /expired at .*weft ca rotate/);
  const early = await makeCa({ nowMs: now, clock: () => now - 3600_000 });
  const e2 = t.throws(() => early.ca.sign(pem, WEB));
  t.true(isWeftError(e2, 'WEFT_CA_ISSUER_NOT_YET_VALID'));
  // Less than the minimum lifetime left: refused even when clipping.
  const nearly = await makeCa({ nowMs: now, intermediateTtlSeconds: 200 });
  t.true(isWeftError(t.throws(() => nearly.ca.sign(pem, WEB)), 'WEFT_CA_ISSUER_EXPIRES_TOO_SOON'));
});

test('an issuer that does not chain to the bundle is refused at construction', async (t) => {
  const now = Date.now();
  const a = await createRoot({ trustDomain: TD, nowMs: now });
  const b = await createRoot({ trustDomain: TD, nowMs: now });
  const inter = await createIntermediate(a, { trustDomain: TD, nowMs: now });
  const err = t.throws(() => new CertificateAuthority({ trustDomain: TD, issuer: inter, bundle: new TrustBundle(TD, [b.certificate]) }));
  t.true(isWeftError(err, 'WEFT_CA_CHAIN_INVALID'));
});
