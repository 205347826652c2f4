// Reading an X.509-SVID: the one SPIFFE ID in a certificate's URI SAN, parsed structurally.
//
// Node's TLS hostname check ignores URI SANs and its subjectAltName string is a lossy rendering, so the
// mesh reads the extension itself from the DER and accepts exactly one URI, compared whole (DESIGN.md, security).
// This runs per handshake, so it walks the DER directly instead of building a full certificate object.

import type { X509Certificate } from 'node:crypto';
import { WeftError } from '../errors.ts';
import { children, readTlv, type Tlv } from './der.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe-id.ts';

const OID_SAN = Buffer.from('551d11', 'hex'); // 2.5.29.17
const URI_TAG = 0x86; // [6] IMPLICIT IA5String

/** Every URI in the certificate's subjectAltName extension(s). Throws WEFT_CERT_NOT_SVID if the DER is malformed. */
export function uriSans(der: Uint8Array): string[] {
  try {
    const cert = readTlv(der, 0);
    const tbs = children(der, cert)[0]!;
    const explicitExtensions = children(der, tbs).find((t) => t.tag === 0xa3);
    if (!explicitExtensions) return [];
    const uris: string[] = [];
    for (const ext of children(der, children(der, explicitExtensions)[0]!)) {
      const parts = children(der, ext);
      const oid = parts[0]!;
      if (oid.tag !== 0x06 || !Buffer.from(der.subarray(oid.contentStart, oid.end)).equals(OID_SAN)) continue;
      const value = parts.at(-1)! as Tlv;
      const names = readTlv(der, value.contentStart, value.end);
      for (const name of children(der, names)) {
        if (name.tag === URI_TAG) uris.push(Buffer.from(der.subarray(name.contentStart, name.end)).toString('latin1'));
      }
    }
    return uris;
  } catch (err) {
    throw new WeftError('WEFT_CERT_NOT_SVID', `certificate cannot be parsed: ${(err as Error).message}`, {}, { cause: err });
  }
}

export function spiffeIdOfCertificate(cert: X509Certificate | Uint8Array): SpiffeId {
  const der = cert instanceof Uint8Array ? cert : cert.raw;
  const uris = uriSans(der);
  if (uris.length !== 1) {
    throw new WeftError('WEFT_CERT_NOT_SVID', `certificate has ${uris.length} URI SANs; an X.509-SVID has exactly one`, { uris });
  }
  try {
    return parseSpiffeId(uris[0]!);
  } catch (err) {
    throw new WeftError('WEFT_CERT_NOT_SVID', `certificate URI SAN: ${(err as Error).message}`, {}, { cause: err });
  }
}
