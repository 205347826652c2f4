import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { isWeftError } from '../../errors.ts';
import { spiffeIdOfCertificate, uriSans } from '../../ca/svid.ts';
import { makeCa, makeCsr, run, tempDir, WEB } from '../helpers/ca.ts';

/** A self-signed certificate with the given SAN extension text, made by openssl. */
async function withSans(dir: string, name: string, san: string | null): Promise<X509Certificate> {
  const args = ['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, `${name}.key`), '-subj', '/CN=x', '-days', '1', '-out', join(dir, `${name}.pem`)];
  if (san) args.push('-addext', `subjectAltName=${san}`);
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(r.stderr);
  return new X509Certificate(readFileSync(join(dir, `${name}.pem`)));
}

test('reads the one SPIFFE ID of an issued SVID', async (t) => {
  const { ca } = await makeCa();
  const svid = ca.sign((await makeCsr()).pem, WEB);
  t.is(spiffeIdOfCertificate(svid.certificateDer).uri, WEB);
  t.deepEqual(uriSans(svid.certificateDer), [WEB]);
});

test('a certificate is a mesh identity only with exactly one valid SPIFFE URI SAN', async (t) => {
  const dir = tempDir();
  const cases: [string, string | null, RegExp][] = [
    ['none', null, /0 URI SANs/],
    ['dns-only', 'DNS:web.example', /0 URI SANs/],
    ['two-uris', `URI:${WEB},URI:spiffe://shop.example/ns/default/sa/admin`, /2 URI SANs/],
    ['not-spiffe', 'URI:https://shop.example/web', /missing the 'spiffe:\/\/' scheme|scheme must be/],
    ['bad-spiffe', 'URI:spiffe://shop.example/ns/../sa/web', /"\.\." segment/],
  ];
  for (const [name, san, message] of cases) {
    const cert = await withSans(dir, name, san);
    const err = t.throws(() => spiffeIdOfCertificate(cert), undefined, name);
    t.true(isWeftError(err, 'WEFT_CERT_NOT_SVID'), name);
    t.regex(err!.message, message, name);
  }
  const ok = await withSans(dir, 'ok', `DNS:web.example,URI:${WEB}`);
  t.is(spiffeIdOfCertificate(ok).uri, WEB);
});

test('malformed DER is reported, not guessed at', (t) => {
  const err = t.throws(() => spiffeIdOfCertificate(Buffer.from('3082ffff0102', 'hex')));
  t.true(isWeftError(err, 'WEFT_CERT_NOT_SVID'));
  t.regex(err!.message, /cannot be parsed/);
});
