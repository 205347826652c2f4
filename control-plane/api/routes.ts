// The control plane's API, as one table: every endpoint, and what each needs of the control plane.

import type { CertificateAuthority } from '../../ca/authority.ts';
import type { AuthContext } from './authenticate.ts';
import { FailureBudget } from './failure-budget.ts';
import { bootstrap, renew, type CertificateObserver } from './identity.ts';
import { getConfig, getStatus, postRevocation, postToken, putConfig, type OperatorDeps } from './operator.ts';
import { RenewalBudget } from './renewal-budget.ts';
import { healthz, router } from './router.ts';
import type { SidecarApi } from './sidecars.ts';
import type { BootstrapTokens } from '../identity/tokens.ts';
import type { Request, Response } from './http.ts';

export interface RouteDeps {
  readonly auth: AuthContext;
  readonly log: (e: Record<string, unknown>) => void;
  readonly clock: () => number;
  readonly tokens: BootstrapTokens;
  readonly sidecars: SidecarApi;
  readonly certificates: CertificateObserver;
  /** the CA signing now (it changes with a root rotation) */
  authority(): CertificateAuthority;
  /** the live config's workload certificate lifetime, s */
  workloadTtlSeconds(): number;
  readonly operator: Omit<OperatorDeps, 'auth' | 'log'>;
}

export function apiRoutes(d: RouteDeps): (req: Request, res: Response) => void {
  const operator: OperatorDeps = { auth: d.auth, log: d.log, ...d.operator };
  const identity = {
    auth: d.auth,
    tokens: d.tokens,
    refusals: new FailureBudget(d.clock),
    renewals: new RenewalBudget(d.clock),
    authority: d.authority,
    workloadTtlSeconds: d.workloadTtlSeconds,
    observer: d.certificates,
  };
  return router({
    'GET /healthz': healthz,
    'POST /v1/identity/bootstrap': (req, res) => bootstrap(req, res, identity),
    'POST /v1/identity/renew': (req, res) => renew(req, res, identity),
    'POST /v1/sidecars/stream': (req, res) => d.sidecars.stream(req, res),
    'POST /v1/sidecars/ack': (req, res) => d.sidecars.ack(req, res),
    'POST /v1/sidecars/heartbeat': (req, res) => d.sidecars.heartbeat(req, res),
    'PUT /v1/config': (req, res) => putConfig(req, res, operator),
    'GET /v1/config': (req, res) => getConfig(req, res, operator),
    'POST /v1/tokens': (req, res) => postToken(req, res, operator),
    'POST /v1/revocations': (req, res) => postRevocation(req, res, operator),
    'GET /v1/status': (req, res) => getStatus(req, res, operator),
  }, d.log);
}
