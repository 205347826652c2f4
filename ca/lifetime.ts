// How long a workload certificate lives: pure arithmetic over the requested TTL, the clock and the issuer's validity.

import { WeftError } from '../errors.ts';

export const DEFAULT_WORKLOAD_TTL_S = 60 * 60;
export const MIN_WORKLOAD_TTL_S = 5 * 60;
export const MAX_WORKLOAD_TTL_S = 24 * 60 * 60;
/** notBefore is set this far in the past so a peer whose clock runs a little behind still accepts the certificate. */
export const CLOCK_SKEW_BACKDATE_S = 60;

/** What to do when the requested lifetime would outlive the issuing certificate. */
export type IssuerExpiryPolicy = 'clip' | 'refuse';

export interface ValidityRequest {
  readonly nowMs: number;
  readonly ttlSeconds?: number | undefined;
  readonly issuerNotBefore: Date;
  readonly issuerNotAfter: Date;
  readonly onIssuerExpiry?: IssuerExpiryPolicy | undefined;
}

export interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Set when notAfter was cut short to the issuer's own expiry. */
  readonly clipped: null | { readonly requestedNotAfter: Date; readonly reason: string };
}

export function checkTtl(ttlSeconds: number): void {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < MIN_WORKLOAD_TTL_S || ttlSeconds > MAX_WORKLOAD_TTL_S) {
    throw new WeftError(
      'WEFT_CA_TTL_OUT_OF_BOUNDS',
      `certificate lifetime ${ttlSeconds}s is out of bounds: use a whole number of seconds from ${MIN_WORKLOAD_TTL_S} (5m) to ${MAX_WORKLOAD_TTL_S} (24h)`,
      { ttlSeconds, min: MIN_WORKLOAD_TTL_S, max: MAX_WORKLOAD_TTL_S },
    );
  }
}

export function workloadValidity(req: ValidityRequest): Validity {
  const ttl = req.ttlSeconds ?? DEFAULT_WORKLOAD_TTL_S;
  checkTtl(ttl);
  const now = req.nowMs;
  if (now < req.issuerNotBefore.getTime()) {
    throw new WeftError('WEFT_CA_ISSUER_NOT_YET_VALID', `the issuing CA certificate is not valid until ${req.issuerNotBefore.toISOString()}; check this machine's clock`, { issuerNotBefore: req.issuerNotBefore.toISOString() });
  }
  if (now >= req.issuerNotAfter.getTime()) {
    throw new WeftError('WEFT_CA_ISSUER_EXPIRED', `the issuing CA certificate expired at ${req.issuerNotAfter.toISOString()}; rotate the CA (weft ca rotate)`, { issuerNotAfter: req.issuerNotAfter.toISOString() });
  }
  // Whole seconds: X.509 UTCTime has no fractions, and a rounded-up notBefore would start the certificate late.
  const nowS = Math.floor(now / 1000) * 1000;
  const notBefore = new Date(Math.max(nowS - CLOCK_SKEW_BACKDATE_S * 1000, Math.ceil(req.issuerNotBefore.getTime() / 1000) * 1000));
  const requestedNotAfter = new Date(nowS + ttl * 1000);
  const issuerEnd = Math.floor(req.issuerNotAfter.getTime() / 1000) * 1000;
  if (requestedNotAfter.getTime() <= issuerEnd) return { notBefore, notAfter: requestedNotAfter, clipped: null };

  const left = Math.floor((issuerEnd - nowS) / 1000);
  if (req.onIssuerExpiry === 'refuse') {
    throw new WeftError('WEFT_CA_ISSUER_EXPIRES_TOO_SOON', `a ${ttl}s certificate would outlive the issuing CA certificate, which expires at ${req.issuerNotAfter.toISOString()} (${left}s left); rotate the CA or ask for a shorter lifetime`, { ttlSeconds: ttl, issuerNotAfter: req.issuerNotAfter.toISOString() });
  }
  if (left < MIN_WORKLOAD_TTL_S) {
    throw new WeftError('WEFT_CA_ISSUER_EXPIRES_TOO_SOON', `the issuing CA certificate expires at ${req.issuerNotAfter.toISOString()}, ${left}s from now, less than the minimum lifetime ${MIN_WORKLOAD_TTL_S}s; rotate the CA (weft ca rotate)`, { issuerNotAfter: req.issuerNotAfter.toISOString() });
  }
  return {
    notBefore,
    notAfter: new Date(issuerEnd),
    clipped: { requestedNotAfter, reason: `clipped to the issuing CA certificate's expiry ${req.issuerNotAfter.toISOString()}` },
  };
}
