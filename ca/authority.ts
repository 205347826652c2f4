// The signing CA: turns a CSR plus an identity the caller was authorised for into an X.509-SVID.
//
// The CSR is trusted for one thing only, its public key (after its self-signature checks out). The identity
// comes from the caller (a verified token or certificate); a CSR that asks for any other name is refused,
// never "corrected", so a confused or malicious client learns it asked for the wrong thing.

import { createHash, createPublicKey, sign as signDigest, verify as verifyDigest, type KeyObject, X509Certificate } from 'node:crypto';
import { WeftError } from '../errors.ts';
import { bitString, children, DerError, readTlv, seq, slice, time, tlv } from './der.ts';
import type { CaCertificate } from './hierarchy.ts';
import { keyObjectOf } from './keys.ts';
import { workloadValidity, type IssuerExpiryPolicy } from './lifetime.ts';
import { derToPem, oneLineName, toPem } from './pem.ts';
import { fixedWorkloadExtensions, sanExtension, skiExtension } from './profiles.ts';
import { normalizeSerial, randomSerial } from './serial.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe-id.ts';
import type { TrustBundle } from './trust-bundle.ts';
import { x509 } from './x509.ts';

export interface IssuanceRecord {
  readonly serial: string;
  readonly identity: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuer: string;
}

export interface IssuedSvid {
  readonly spiffeId: SpiffeId;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly certificateDer: Buffer;
  /** The workload certificate alone. */
  readonly certificatePem: string;
  /** Leaf then the intermediate(s): what a workload presents in TLS. */
  readonly chainPem: string;
  /** The roots to trust peers by. */
  readonly bundlePem: string;
  /** Non-null when the lifetime was cut to the issuer's own expiry. */
  readonly clipped: null | { readonly requestedNotAfter: Date; readonly reason: string };
}

export interface SignOptions {
  readonly ttlSeconds?: number | undefined;
  readonly onIssuerExpiry?: IssuerExpiryPolicy | undefined;
}

export interface CertificateAuthorityOptions {
  readonly trustDomain: string;
  /** The intermediate that signs, and any certificates between it and a root (not the root itself). */
  readonly issuer: CaCertificate;
  readonly issuerChain?: readonly X509Certificate[];
  readonly bundle: TrustBundle;
  readonly clock?: () => number;
  /** Called with every certificate issued, before it is returned (the store appends it to the journal). */
  readonly onIssue?: (record: IssuanceRecord) => void;
  readonly onIssuerExpiry?: IssuerExpiryPolicy;
}

// ecdsa-with-SHA256 (1.2.840.10045.4.3.2), the only signature algorithm the mesh makes or accepts.
const ECDSA_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex');
const EMPTY_NAME = seq();
const VERSION_3 = tlv(0xa0, Buffer.from([0x02, 0x01, 0x02]));

/**
 * Signs workload certificates. The issuer's fixed parts (its subject, the profile's constant extensions) are
 * encoded once; each CSR then costs one ECDSA verify, one ECDSA sign and a few buffer copies. The generic
 * @peculiar/x509 generator (used for CA certificates) spends 5x longer in webcrypto round trips and asn1js.
 */
export class CertificateAuthority {
  readonly trustDomain: string;
  readonly bundle: TrustBundle;
  readonly issuer: X509Certificate;
  readonly #signingKey: KeyObject;
  readonly #issuerSubject: Uint8Array;
  readonly #fixedExtensions: readonly Uint8Array[];
  readonly #chainPem: string;
  readonly #bundlePem: string;
  readonly #clock: () => number;
  readonly #onIssue: ((record: IssuanceRecord) => void) | undefined;
  readonly #onIssuerExpiry: IssuerExpiryPolicy;

  constructor(opts: CertificateAuthorityOptions) {
    if (!opts.issuer.certificate.ca) throw new WeftError('WEFT_CA_CHAIN_INVALID', `issuer ${opts.issuer.certificate.subject} is not a CA certificate`);
    this.trustDomain = opts.trustDomain;
    this.bundle = opts.bundle;
    this.issuer = opts.issuer.certificate;
    this.#signingKey = keyObjectOf(opts.issuer.keys.privateKey);
    const ski = new x509.X509Certificate(this.issuer.raw).getExtension(x509.SubjectKeyIdentifierExtension);
    if (!ski) throw new WeftError('WEFT_CA_CHAIN_INVALID', `issuer ${this.issuer.subject} has no subject key identifier extension`);
    this.#issuerSubject = subjectOf(this.issuer.raw);
    this.#fixedExtensions = fixedWorkloadExtensions(ski.keyId);
    const chain = [this.issuer, ...(opts.issuerChain ?? [])];
    this.#chainPem = toPem(chain);
    this.#bundlePem = opts.bundle.toPem();
    this.#clock = opts.clock ?? Date.now;
    this.#onIssue = opts.onIssue;
    this.#onIssuerExpiry = opts.onIssuerExpiry ?? 'clip';
    // Fail at start-up, not at the first CSR, if the issuer does not chain to the bundle.
    checkIssuerChains(chain, opts.bundle);
  }

  /** Signs `csrPem` for `identity`, which the caller has already authenticated. */
  sign(csrPem: string | Uint8Array, identity: string, opts: SignOptions = {}): IssuedSvid {
    const spiffeId = parseSpiffeId(identity);
    if (spiffeId.trustDomain !== this.trustDomain) {
      throw new WeftError('WEFT_CA_WRONG_TRUST_DOMAIN', `identity ${identity} is not in this CA's trust domain ${this.trustDomain}`, { identity });
    }
    if (spiffeId.path === '') throw new WeftError('WEFT_CA_WRONG_TRUST_DOMAIN', `identity ${identity} names the trust domain itself, not a workload`, { identity });
    const { csr, spki } = verifiedCsr(csrPem);
    refuseOtherNames(csr, spiffeId.uri);

    const validity = workloadValidity({
      nowMs: this.#clock(),
      ttlSeconds: opts.ttlSeconds,
      issuerNotBefore: this.issuer.validFromDate,
      issuerNotAfter: this.issuer.validToDate,
      onIssuerExpiry: opts.onIssuerExpiry ?? this.#onIssuerExpiry,
    });
    const serialHex = randomSerial();
    const tbs = seq(
      VERSION_3,
      tlv(0x02, Buffer.from(serialHex, 'hex')),
      ECDSA_SHA256,
      this.#issuerSubject,
      seq(time(validity.notBefore), time(validity.notAfter)),
      EMPTY_NAME,
      spki,
      tlv(0xa3, seq(...this.#fixedExtensions, skiExtension(subjectKeyId(spki)), sanExtension(spiffeId.uri))),
    );
    const der = seq(tbs, ECDSA_SHA256, bitString(signDigest('sha256', tbs, this.#signingKey)));
    const certificatePem = derToPem(der);
    const serial = normalizeSerial(serialHex);
    this.#onIssue?.({
      serial,
      identity: spiffeId.uri,
      notBefore: validity.notBefore.toISOString(),
      notAfter: validity.notAfter.toISOString(),
      issuer: this.issuer.fingerprint256,
    });
    return {
      spiffeId,
      serial,
      notBefore: validity.notBefore,
      notAfter: validity.notAfter,
      certificateDer: der,
      certificatePem,
      chainPem: certificatePem + this.#chainPem,
      bundlePem: this.#bundlePem,
      clipped: validity.clipped,
    };
  }
}

/** The raw DER of a certificate's subject Name, byte for byte, so issued certificates chain by exact name match. */
function subjectOf(certDer: Uint8Array): Uint8Array {
  const cert = readTlv(certDer, 0);
  const tbs = children(certDer, cert)[0]!;
  const fields = children(certDer, tbs);
  const offset = fields[0]!.tag === 0xa0 ? 1 : 0; // [0] version is optional
  return slice(certDer, fields[offset + 4]!);
}

/**
 * Parses the CSR and checks its self-signature with node:crypto, synchronously. Returns the parsed request (for
 * its names) and its SubjectPublicKeyInfo DER, the only thing from it that goes into the certificate.
 */
function verifiedCsr(input: string | Uint8Array): { csr: x509.Pkcs10CertificateRequest; spki: Uint8Array } {
  let csr: x509.Pkcs10CertificateRequest;
  let parts: { info: Uint8Array; alg: Uint8Array; sig: Uint8Array };
  try {
    csr = new x509.Pkcs10CertificateRequest(typeof input === 'string' ? input.trim() : input);
    const der = new Uint8Array(csr.rawData);
    const [info, alg, sig] = children(der, readTlv(der, 0));
    if (!info || !alg || !sig || sig.tag !== 0x03) throw new DerError('not a SEQUENCE of info, algorithm and signature');
    parts = { info: slice(der, info), alg: slice(der, alg), sig: der.subarray(sig.contentStart + 1, sig.end) };
  } catch (err) {
    throw new WeftError('WEFT_CA_CSR_MALFORMED', `the CSR is not a readable PKCS#10 request (PEM or DER): ${(err as Error).message}`, {}, { cause: err });
  }
  const spki = new Uint8Array(csr.publicKey.rawData);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (err) {
    throw new WeftError('WEFT_CA_CSR_KEY_UNSUPPORTED', `the CSR's public key cannot be read: ${(err as Error).message}`, {}, { cause: err });
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    throw new WeftError('WEFT_CA_CSR_KEY_UNSUPPORTED', `the CSR's key is ${key.asymmetricKeyType}${curve ? ` ${curve}` : ''}; the mesh issues certificates for ECDSA P-256 keys only`, { keyType: key.asymmetricKeyType, curve });
  }
  let ok = false;
  try {
    ok = Buffer.from(parts.alg).equals(ECDSA_SHA256) && verifyDigest('sha256', parts.info, key, parts.sig);
  } catch {
    ok = false;
  }
  if (!ok) throw new WeftError('WEFT_CA_CSR_SIGNATURE', "the CSR's signature does not verify with its own public key: it was altered, or not signed by the key it carries with ECDSA-SHA256");
  // A compressed point (33 bytes, not 65) is re-encoded uncompressed: the form every TLS stack reads (Go's x509 reads
  // no other), and the one subjectKeyId hashes. A JWK holds the coordinates, and node exports them uncompressed.
  if (spki.length !== UNCOMPRESSED_P256_SPKI_LENGTH) {
    return { csr, spki: new Uint8Array(createPublicKey({ key: key.export({ format: 'jwk' }), format: 'jwk' }).export({ type: 'spki', format: 'der' })) };
  }
  return { csr, spki };
}

/** SubjectPublicKeyInfo DER of a P-256 key with its point uncompressed: 26 bytes of header, 0x04, x and y. */
const UNCOMPRESSED_P256_SPKI_LENGTH = 91;

function refuseOtherNames(csr: x509.Pkcs10CertificateRequest, identity: string): void {
  for (const ext of csr.extensions) {
    if (!(ext instanceof x509.SubjectAlternativeNameExtension)) continue;
    for (const name of ext.names.items) {
      if (name.type === 'url' && name.value === identity) continue;
      throw new WeftError('WEFT_CA_CSR_NAME_MISMATCH', `the CSR asks for ${name.type === 'url' ? 'URI' : name.type.toUpperCase()} SAN ${JSON.stringify(name.value)} but the caller is authorised only for ${identity}; send a CSR without names or with exactly that URI`, { requested: name.value, authorised: identity });
    }
  }
  for (const cn of csr.subjectName.getField('CN')) {
    if (cn !== identity) {
      throw new WeftError('WEFT_CA_CSR_NAME_MISMATCH', `the CSR's subject asks for CN=${JSON.stringify(cn)} but the caller is authorised only for ${identity}`, { requested: cn, authorised: identity });
    }
  }
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits; for a P-256 SPKI, its trailing 65 bytes. */
function subjectKeyId(spki: Uint8Array): Buffer {
  return createHash('sha1').update(spki.subarray(spki.length - 65)).digest();
}

/** Checks that `chain` (signing certificate first) links up, certificate by certificate, to a root in `bundle`. */
export function checkIssuerChains(chain: readonly X509Certificate[], bundle: TrustBundle): void {
  let current = chain[0]!;
  for (const next of chain.slice(1)) {
    if (!current.checkIssued(next) || !current.verify(next.publicKey)) {
      throw new WeftError('WEFT_CA_CHAIN_INVALID', `CA certificate ${oneLineName(current.subject)} is not issued by ${oneLineName(next.subject)}`);
    }
    current = next;
  }
  if (!bundle.roots.some((r) => current.checkIssued(r) && current.verify(r.publicKey))) {
    throw new WeftError('WEFT_CA_CHAIN_INVALID', `CA certificate ${oneLineName(current.subject)} does not chain to any root in the trust bundle; for a plug-in CA, supply the root that signed it`);
  }
}
