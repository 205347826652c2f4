// ECDSA P-256 key pairs: generate in memory, move between CryptoKey, KeyObject and PKCS#8 PEM.

import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject } from 'node:crypto';
import { WeftError } from '../errors.ts';
import { EC_P256, type CryptoKey } from './x509.ts';

export interface KeyPair {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

/** A fresh P-256 key pair. Extractable so the CA can store its own keys; a sidecar never exports its key. */
export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return fromKeyObjects(privateKey, publicKey);
}

export function fromKeyObjects(privateKey: KeyObject, publicKey: KeyObject = createPublicKey(privateKey)): KeyPair {
  return {
    privateKey: privateKey.toCryptoKey(EC_P256, true, ['sign']) as CryptoKey,
    publicKey: publicKey.toCryptoKey(EC_P256, true, ['verify']) as CryptoKey,
  };
}

export function privateKeyToPem(key: CryptoKey): string {
  return (keyObjectOf(key).export({ type: 'pkcs8', format: 'pem' }) as string);
}

export function keyObjectOf(key: CryptoKey): KeyObject {
  return KeyObject.from(key as Parameters<typeof KeyObject.from>[0]);
}

/** Loads a PKCS#8 (or SEC1 "EC PRIVATE KEY") PEM; `where` names the file in the error. */
export function privateKeyFromPem(pem: string, where: string): KeyPair {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new WeftError('WEFT_CA_PEM_MALFORMED', `${where}: not a readable private key (${(err as Error).message})`, { where }, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new WeftError('WEFT_CA_PEM_MALFORMED', `${where}: the key must be ECDSA P-256, found ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim(), { where });
  }
  return fromKeyObjects(key);
}
