// Certificate profiles: the extensions and names of a root, an intermediate and a workload X.509-SVID.

import { octetString, seq, tlv } from './der.ts';
import { x509, type CryptoKey } from './x509.ts';

const { KeyUsageFlags, ExtendedKeyUsage } = x509;

export async function rootExtensions(keys: { publicKey: CryptoKey }, trustDomainId: string): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, 1, true),
    new x509.KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId }], false),
  ];
}

export async function intermediateExtensions(publicKey: CryptoKey, issuerKeyId: string, trustDomainId: string): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, 0, true),
    new x509.KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    new x509.AuthorityKeyIdentifierExtension(issuerKeyId),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId }], false),
  ];
}

const OID_SKI = Buffer.from('0603551d0e', 'hex');
const OID_SAN = Buffer.from('0603551d11', 'hex');
const CRITICAL = Buffer.from('0101ff', 'hex');

/**
 * The X.509-SVID profile's constant extensions, encoded once per issuer: leaf only; signatures only (ECDHE in
 * TLS 1.3 needs no keyAgreement); usable as TLS server and client; the issuer's key ID.
 */
export function fixedWorkloadExtensions(issuerKeyId: string): Uint8Array[] {
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth], false),
    new x509.AuthorityKeyIdentifierExtension(issuerKeyId),
  ].map((ext) => new Uint8Array(ext.rawData));
}

export function skiExtension(keyId: Uint8Array): Buffer {
  return seq(OID_SKI, octetString(octetString(keyId)));
}

/** The one URI SAN, critical because an X.509-SVID's subject is empty (RFC 5280 §4.2.1.6). */
export function sanExtension(spiffeId: string): Buffer {
  return seq(OID_SAN, CRITICAL, octetString(seq(tlv(0x86, Buffer.from(spiffeId, 'utf8')))));
}
