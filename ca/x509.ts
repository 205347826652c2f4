// The one place @peculiar/x509 is set up: reflect-metadata loaded once, node's webcrypto as the provider.

import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as ReturnType<typeof x509.cryptoProvider.get>);

export { x509 };

/** The mesh's one key type: ECDSA over P-256 with SHA-256 signatures. */
export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export const subtle = webcrypto.subtle;

export type CryptoKey = webcrypto.CryptoKey;
