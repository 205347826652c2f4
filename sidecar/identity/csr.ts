// A PKCS#10 request for a fresh in-memory key, encoded with the CA's small DER writer.
//
// The sidecar's key never leaves its process. The request names nothing: the control plane decides the identity
// from the token or certificate, so asking for a name would only be refused. (Building it here rather than with
// @peculiar/x509 keeps that library, and ~20 MB, out of every sidecar.)

import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { bitString, seq, tlv } from '../../ca/der.ts';
import { derToPem } from '../../ca/pem.ts';

const ECDSA_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex');

export interface WorkloadKey {
  readonly privateKey: KeyObject;
  /** PKCS#8 PEM, only for handing to node:tls in this process */
  readonly privateKeyPem: string;
}

export function newWorkloadKey(): WorkloadKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

export function csrPem(key: KeyObject): string {
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  // CertificationRequestInfo: version 0, empty subject, the key, no attributes ([0] IMPLICIT SET, empty).
  const info = seq(Buffer.from([0x02, 0x01, 0x00]), seq(), spki, tlv(0xa0));
  return derToPem(seq(info, ECDSA_SHA256, bitString(sign('sha256', info, key))), 'CERTIFICATE REQUEST');
}
