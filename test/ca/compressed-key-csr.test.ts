// A CSR whose P-256 key is in compressed form (openssl ec -conv_form compressed): the certificate must still carry
// the key every TLS stack reads (uncompressed) and a subject key identifier computed from that key (RFC 5280 §4.2.1.2).

import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { children, readTlv } from '../../ca/der.ts';
import { makeCa, run, tempDir, WEB, writeTemp } from '../helpers/ca.ts';

/** The subjectPublicKey BIT STRING's bits (no unused-bits byte) of a certificate's SubjectPublicKeyInfo. */
function subjectPublicKeyBits(certDer: Uint8Array): Buffer {
  const cert = readTlv(certDer, 0);
  const fields = children(certDer, children(certDer, cert)[0]!);
  const spki = fields[6]!; // version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo
  const bits = children(certDer, spki)[1]!;
  return Buffer.from(certDer.subarray(bits.contentStart + 1, bits.end));
}

test('a CSR with a compressed P-256 key: the certificate holds the uncompressed key and its SKI matches it', async (t) => {
  const { ca } = await makeCa();
  const dir = tempDir();
  const key = join(dir, 'k.pem');
  t.is((await run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'raw.pem')])).code, 0);
  t.is((await run('openssl', ['ec', '-in', join(dir, 'raw.pem'), '-conv_form', 'compressed', '-out', key])).code, 0);
  const csr = join(dir, 'r.pem');
  const gen = await run('openssl', ['req', '-new', '-key', key, '-subj', '/', '-out', csr]);
  t.is(gen.code, 0, gen.stderr);
  t.regex((await run('openssl', ['req', '-in', csr, '-noout', '-text'])).stdout, /pub:\s+0[23]:/, 'the CSR carries a compressed point');

  const svid = ca.sign(readFileSync(csr, 'utf8'), WEB);
  const leaf = writeTemp(dir, 'leaf.pem', svid.certificatePem);
  const text = (await run('openssl', ['x509', '-in', leaf, '-noout', '-text'])).stdout;
  t.regex(text, /pub:\s+04:/, 'the certificate carries the uncompressed point');
  const bits = subjectPublicKeyBits(svid.certificateDer);
  const want = createHash('sha1').update(bits).digest('hex').toUpperCase().match(/../g)!.join(':');
  const ski = /X509v3 Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(text)?.[1];
  t.is(ski, want);
  // And it is the same key: the certificate verifies as made for the key openssl holds.
  const match = await run('openssl', ['x509', '-in', leaf, '-noout', '-pubkey']);
  const fromKey = await run('openssl', ['pkey', '-in', key, '-pubout']);
  const norm = async (pem: string) => (await run('openssl', ['pkey', '-pubin', '-in', writeTemp(dir, `p${Math.random()}.pem`, pem), '-outform', 'DER', '-ec_conv_form', 'uncompressed'])).stdout;
  t.is(await norm(match.stdout), await norm(fromKey.stdout));
});
