// The identity API: a sidecar's first certificate (for a bootstrap token) and its renewals (over mTLS).

import { WeftError } from '../../errors.ts';
import { parseSpiffeId } from '../../ca/spiffe-id.ts';
import { SYSTEM_NAMESPACE } from '../config/names.ts';
import type { CertificateAuthority, IssuedSvid } from '../../ca/authority.ts';
import type { BootstrapTokens } from '../identity/tokens.ts';
import { requireCurrent, requireWorkload, type AuthContext } from './authenticate.ts';
import type { FailureBudget } from './failure-budget.ts';
import type { RenewalBudget } from './renewal-budget.ts';
import { field, readJson, sendJson, type Request, type Response } from './http.ts';

export interface IdentityDeps {
  readonly auth: AuthContext;
  readonly tokens: BootstrapTokens;
  /** refused tokens per address (./failure-budget.ts) */
  readonly refusals: FailureBudget;
  /** renewals per certificate and per address (./renewal-budget.ts) */
  readonly renewals: RenewalBudget;
  authority(): CertificateAuthority;
  workloadTtlSeconds(): number;
  readonly observer: CertificateObserver;
}

export type CertificateKind = 'bootstrap' | 'renewal';

/** What the identity API tells metrics (../metrics.ts): each request ends in a certificate or a refusal. */
export interface CertificateObserver {
  certificateIssued(kind: CertificateKind): void;
  certificateRefused(kind: CertificateKind, err: unknown): void;
}

/** Runs one request of `kind`, telling the observer what it came to. */
async function observed(kind: CertificateKind, observer: CertificateObserver, call: () => Promise<void>): Promise<void> {
  try {
    await call();
  } catch (err) {
    observer.certificateRefused(kind, err);
    throw err;
  }
  observer.certificateIssued(kind);
}

function answer(svid: IssuedSvid) {
  return {
    identity: svid.spiffeId.uri,
    serial: svid.serial,
    notBefore: svid.notBefore.toISOString(),
    notAfter: svid.notAfter.toISOString(),
    chain: svid.chainPem,
    bundle: svid.bundlePem,
    clipped: svid.clipped && { requestedNotAfter: svid.clipped.requestedNotAfter.toISOString(), reason: svid.clipped.reason },
  };
}

/** POST /v1/identity/bootstrap {token, csr}: the token names the identity; the CSR only brings a key. */
export function bootstrap(req: Request, res: Response, deps: IdentityDeps): Promise<void> {
  return observed('bootstrap', deps.observer, () => bootstrapCall(req, res, deps));
}

async function bootstrapCall(req: Request, res: Response, deps: IdentityDeps): Promise<void> {
  const address = req.socket?.remoteAddress ?? '';
  if (!deps.refusals.allows(address)) {
    res.setHeader('retry-after', String(deps.refusals.retryAfterSeconds(address)));
    throw new WeftError('WEFT_API_RATE_LIMITED', `too many refused bootstrap tokens from ${address}; try again in a few seconds`);
  }
  const body = await readJson<Record<string, unknown>>(req);
  const token = field(body, 'token');
  const csr = field(body, 'csr', { max: 16 * 1024 });
  let claims: Awaited<ReturnType<BootstrapTokens['verify']>>;
  try {
    claims = await deps.tokens.verify(token);
  } catch (err) {
    deps.refusals.refused(address);
    throw err;
  }
  // Check, sign and spend with no await in between: a replay racing this call cannot also get a certificate,
  // and a bad CSR leaves the token unspent so the sidecar can retry.
  deps.tokens.checkUnused(claims);
  const svid = deps.authority().sign(csr, claims.identity, { ttlSeconds: deps.workloadTtlSeconds() });
  deps.tokens.spend(claims);
  sendJson(res, 200, answer(svid));
}

/** POST /v1/identity/renew {csr}: over mTLS with the current certificate, for that same identity only. */
export function renew(req: Request, res: Response, deps: IdentityDeps): Promise<void> {
  return observed('renewal', deps.observer, () => renewCall(req, res, deps));
}

async function renewCall(req: Request, res: Response, deps: IdentityDeps): Promise<void> {
  const peer = requireWorkload(req, deps.auth);
  // Renewal is for workloads: an operator's certificate (weft ca issue) expires as issued, never renewed into a
  // fresh one on this path.
  if (parseSpiffeId(peer.identity).path.startsWith(`/ns/${SYSTEM_NAMESPACE}/`)) {
    throw new WeftError('WEFT_AUTH_FORBIDDEN', `${peer.identity} is in the ${SYSTEM_NAMESPACE} namespace; its certificates are not renewed here (issue one with weft ca issue)`);
  }
  // Counted before the body is read and the CSR checked: a refused CSR cost the control plane work too.
  const address = req.socket?.remoteAddress ?? '';
  const refusal = deps.renewals.take(peer, address);
  if (refusal) {
    res.setHeader('retry-after', String(refusal.retryAfterSeconds));
    throw new WeftError('WEFT_API_RATE_LIMITED', refusal.message, { serial: peer.serial, identity: peer.identity });
  }
  const body = await readJson<Record<string, unknown>>(req);
  const csr = field(body, 'csr', { max: 16 * 1024 });
  // Checked again with nothing awaited before the signature: a revocation (or the expiry) that came while the body
  // did must not be renewed into a fresh certificate.
  requireCurrent(peer, deps.auth);
  sendJson(res, 200, answer(deps.authority().sign(csr, peer.identity, { ttlSeconds: deps.workloadTtlSeconds() })));
}
