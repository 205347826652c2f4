// Making CA certificates: a self-signed root and the intermediate under it that signs workload certificates.

import { X509Certificate } from 'node:crypto';
import { generateKeyPair, type KeyPair } from './keys.ts';
import { intermediateExtensions, rootExtensions } from './profiles.ts';
import { randomSerial } from './serial.ts';
import { formatSpiffeId } from './spiffe-id.ts';
import { EC_P256, x509 } from './x509.ts';

export const DEFAULT_ROOT_TTL_S = 10 * 365 * 24 * 3600;
export const DEFAULT_INTERMEDIATE_TTL_S = 365 * 24 * 3600;

export interface CaCertificate {
  readonly certificate: X509Certificate;
  readonly keys: KeyPair;
}

export interface HierarchyOptions {
  readonly trustDomain: string;
  readonly nowMs: number;
  readonly rootTtlSeconds?: number;
  readonly intermediateTtlSeconds?: number;
}

function skiOf(cert: x509.X509Certificate): string {
  const ext = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!ext) throw new Error('CA certificate has no subject key identifier');
  return ext.keyId;
}

export async function createRoot(opts: HierarchyOptions): Promise<CaCertificate> {
  const keys = generateKeyPair();
  // A distinct name per root keeps old and new roots apart in every tool's output during a rotation.
  const tag = randomSerial().slice(-8);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ O: ['Weft'] }, { OU: [opts.trustDomain] }, { CN: [`Weft Root CA ${tag}`] }],
    notBefore: new Date(opts.nowMs - 60_000),
    notAfter: new Date(opts.nowMs + (opts.rootTtlSeconds ?? DEFAULT_ROOT_TTL_S) * 1000),
    signingAlgorithm: EC_P256,
    keys,
    extensions: await rootExtensions(keys, formatSpiffeId(opts.trustDomain, [])),
  });
  return { certificate: new X509Certificate(Buffer.from(cert.rawData)), keys };
}

export async function createIntermediate(root: CaCertificate, opts: HierarchyOptions): Promise<CaCertificate> {
  const keys = generateKeyPair();
  const rootCert = new x509.X509Certificate(root.certificate.raw);
  const notAfter = Math.min(opts.nowMs + (opts.intermediateTtlSeconds ?? DEFAULT_INTERMEDIATE_TTL_S) * 1000, rootCert.notAfter.getTime());
  const tag = randomSerial().slice(-8);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ O: ['Weft'] }, { OU: [opts.trustDomain] }, { CN: [`Weft Intermediate CA ${tag}`] }],
    issuer: rootCert.subjectName,
    notBefore: new Date(opts.nowMs - 60_000),
    notAfter: new Date(notAfter),
    signingAlgorithm: EC_P256,
    publicKey: keys.publicKey,
    signingKey: root.keys.privateKey,
    extensions: await intermediateExtensions(keys.publicKey, skiOf(rootCert), formatSpiffeId(opts.trustDomain, [])),
  });
  return { certificate: new X509Certificate(Buffer.from(cert.rawData)), keys };
}
