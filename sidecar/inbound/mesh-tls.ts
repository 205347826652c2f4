// TLS between sidecars: the ALPN protocols a connection may carry, the identity a verified peer certificate
// gives, and the options of the inbound's TLS server.

import { constants as cryptoConstants } from 'node:crypto';
import type tls from 'node:tls';

export const ALPN = { h2: 'h2', http1: 'http/1.1', tcp: 'weft-tcp' } as const;

export interface PeerIdentity {
  readonly identity: string;
  /** normalized (uppercase hex, no leading zeros), as revocation lists carry it */
  readonly serial: string;
}

export interface TlsMaterial {
  readonly keyPem: string;
  readonly chainPem: string;
  readonly bundlePem: string;
}

export function serverTlsOptions(m: TlsMaterial): tls.SecureContextOptions {
  return {
    key: m.keyPem,
    cert: m.chainPem,
    ca: m.bundlePem,
    minVersion: 'TLSv1.3',
    // No resumption tickets: a resumed session would outlive a revoked or rotated certificate.
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  };
}
