// PEM in and out: split a bundle into certificates, with errors that name the file and the block.

import { X509Certificate } from 'node:crypto';
import { WeftError } from '../errors.ts';

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM text, in order. `where` names the source (a path, "the CSR body") in errors. */
export function parseCertificates(pem: string, where: string): X509Certificate[] {
  const blocks = pem.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) {
    throw new WeftError('WEFT_CA_PEM_MALFORMED', `${where}: no PEM CERTIFICATE block found`, { where });
  }
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new WeftError('WEFT_CA_PEM_MALFORMED', `${where}: certificate #${i + 1} is not valid DER/PEM (${(err as Error).message})`, { where, index: i }, { cause: err });
    }
  });
}

export function parseCertificate(pem: string, where: string): X509Certificate {
  const certs = parseCertificates(pem, where);
  if (certs.length !== 1) {
    throw new WeftError('WEFT_CA_PEM_MALFORMED', `${where}: expected one certificate, found ${certs.length}`, { where });
  }
  return certs[0]!;
}

export function toPem(certs: readonly X509Certificate[]): string {
  return certs.map((c) => c.toString().trimEnd() + '\n').join('');
}

export function derToPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** A certificate's subject or issuer on one line ("" for an empty name, as an X.509-SVID's subject is). */
export function oneLineName(name: string | undefined): string {
  return (name ?? '').replace(/\n/g, ', ');
}
