// The trust bundle: the roots a trust domain accepts (several during a root rotation), and chain verification against them.

import type { X509Certificate } from 'node:crypto';
import { WeftError } from '../errors.ts';
import { oneLineName, parseCertificates, toPem } from './pem.ts';
import { spiffeIdOfCertificate } from './svid.ts';
import type { SpiffeId } from './spiffe-id.ts';

const MAX_CHAIN_DEPTH = 4;

export interface VerifiedSvid {
  readonly spiffeId: SpiffeId;
  readonly serial: string;
  readonly notAfter: Date;
  /** SHA-256 fingerprint of the bundle root the chain ends at. */
  readonly rootFingerprint: string;
  /** leaf first, root last */
  readonly path: readonly X509Certificate[];
}

function validityProblem(cert: X509Certificate, nowMs: number): string | null {
  if (nowMs < cert.validFromDate.getTime()) return `not valid before ${cert.validFromDate.toISOString()}`;
  if (nowMs > cert.validToDate.getTime()) return `expired at ${cert.validToDate.toISOString()}`;
  return null;
}

export class TrustBundle {
  readonly trustDomain: string;
  readonly roots: readonly X509Certificate[];

  constructor(trustDomain: string, roots: readonly X509Certificate[]) {
    const seen = new Set<string>();
    this.trustDomain = trustDomain;
    this.roots = roots.filter((r) => !seen.has(r.fingerprint256) && (seen.add(r.fingerprint256), true));
  }

  static fromPem(trustDomain: string, pem: string, where: string): TrustBundle {
    return new TrustBundle(trustDomain, parseCertificates(pem, where));
  }

  withRoot(root: X509Certificate): TrustBundle {
    return new TrustBundle(this.trustDomain, [...this.roots, root]);
  }

  withoutRoot(fingerprint256: string): TrustBundle {
    return new TrustBundle(this.trustDomain, this.roots.filter((r) => r.fingerprint256 !== fingerprint256));
  }

  toPem(): string {
    return toPem(this.roots);
  }

  /**
   * Verifies a presented chain (leaf first, then intermediates, as a TLS peer sends it) up to one of the
   * bundle's roots at time `nowMs`, and returns the leaf's SPIFFE ID, which must be in this trust domain.
   */
  verify(chain: readonly X509Certificate[], nowMs: number = Date.now()): VerifiedSvid {
    const leaf = chain[0];
    if (!leaf) throw new WeftError('WEFT_CERT_UNTRUSTED', 'no certificate presented');
    if (leaf.ca) throw new WeftError('WEFT_CERT_NOT_SVID', `certificate ${leaf.serialNumber} is a CA certificate, not a workload certificate`, { serial: leaf.serialNumber });
    const path: X509Certificate[] = [leaf];
    let current = leaf;
    for (let depth = 0; depth <= MAX_CHAIN_DEPTH; depth++) {
      const problem = validityProblem(current, nowMs);
      if (problem) {
        throw new WeftError('WEFT_CERT_EXPIRED', `certificate ${current.serialNumber} (${oneLineName(current.subject) || 'no subject'}) is ${problem}`, { serial: current.serialNumber });
      }
      const root = this.roots.find((r) => current.checkIssued(r) && current.verify(r.publicKey));
      if (root) {
        const rootProblem = validityProblem(root, nowMs);
        if (rootProblem) throw new WeftError('WEFT_CERT_EXPIRED', `root ${oneLineName(root.subject)} is ${rootProblem}`, { serial: root.serialNumber });
        if (root !== current) path.push(root);
        const spiffeId = spiffeIdOfCertificate(leaf);
        if (spiffeId.trustDomain !== this.trustDomain) {
          throw new WeftError('WEFT_CERT_UNTRUSTED', `certificate identity ${spiffeId.uri} is not in trust domain ${this.trustDomain}`, { spiffeId: spiffeId.uri });
        }
        return { spiffeId, serial: leaf.serialNumber, notAfter: leaf.validToDate, rootFingerprint: root.fingerprint256, path };
      }
      const next = chain.slice(1).find((c) => c.ca && current.checkIssued(c) && current.verify(c.publicKey));
      if (!next) break;
      path.push(next);
      current = next;
    }
    throw new WeftError('WEFT_CERT_UNTRUSTED', `certificate ${leaf.serialNumber} does not chain to any of the ${this.roots.length} root(s) in the trust bundle of ${this.trustDomain}`, { serial: leaf.serialNumber });
  }
}
