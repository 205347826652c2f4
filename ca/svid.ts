// Reading an X.509-SVID: the one SPIFFE ID in a certificate's URI SAN, parsed structurally.
//
// Node's TLS hostname check ignores URI SANs and its subjectAltName string is a lossy rendering, so the
// mesh parses the extension itself and accepts exactly one URI, compared whole (see DESIGN.md, security).

import type { X509Certificate } from 'node:crypto';
import { WeftError } from '../errors.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe-id.ts';
import { x509 } from './x509.ts';

export function spiffeIdOfCertificate(cert: X509Certificate | Uint8Array): SpiffeId {
  const der = cert instanceof Uint8Array ? cert : cert.raw;
  let parsed: x509.X509Certificate;
  try {
    parsed = new x509.X509Certificate(der);
  } catch (err) {
    throw new WeftError('WEFT_CERT_NOT_SVID', `certificate cannot be parsed: ${(err as Error).message}`, {}, { cause: err });
  }
  const sans = parsed.getExtensions(x509.SubjectAlternativeNameExtension);
  const uris = sans.flatMap((ext) => ext.names.items.filter((n) => n.type === 'url').map((n) => n.value));
  if (uris.length !== 1) {
    throw new WeftError('WEFT_CERT_NOT_SVID', `certificate ${parsed.serialNumber} has ${uris.length} URI SANs; an X.509-SVID has exactly one`, { serial: parsed.serialNumber, uris });
  }
  try {
    return parseSpiffeId(uris[0]!);
  } catch (err) {
    throw new WeftError('WEFT_CERT_NOT_SVID', `certificate ${parsed.serialNumber}: ${(err as Error).message}`, { serial: parsed.serialNumber }, { cause: err });
  }
}
