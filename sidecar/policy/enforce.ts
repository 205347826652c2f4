// The inbound's authorization stage: normalize, decide, and for a denial answer 403 naming the policy and rule
// and log one JSON line. The app only ever sees requests that were allowed, with the path policy saw.

import type { RuntimeConfig } from '../config/runtime.ts';
import { normalizePath } from './normalize.ts';
import type { Decision } from './authorizer.ts';

export const POLICY_HEADER = 'x-weft-policy';
const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;
const LOWER_CASE_METHOD = Object.freeze({ ok: false, reason: 'method with lower-case letters (methods are upper-case tokens)' } as const);

export interface Verdict {
  readonly ok: boolean;
  /** the request target to forward (normalized path plus the original query) */
  readonly target: string;
  readonly status: number;
  readonly reason: 'bad-request' | 'denied' | null;
  readonly message: string;
  readonly decision: Decision | null;
  /** extra headers for the mesh's answer */
  readonly headers: Record<string, string>;
}

export interface EnforceInput {
  readonly principal: string | null;
  readonly method: string;
  readonly target: string;
  readonly header: (name: string) => string | string[] | undefined;
}

export function enforce(config: RuntimeConfig, input: EnforceInput, opts: { policyHeader: boolean; log: (e: Record<string, unknown>) => void }): Verdict {
  // Methods are case-sensitive, but apps often upper-case them (Express routes `delete` as DELETE): one with a
  // lower-case letter (HTTP/2 can carry one; HTTP/1.1's parser refuses it) would step around a rule on DELETE.
  const n = hasLowerCase(input.method) ? LOWER_CASE_METHOD : normalizePath(input.target);
  if (!n.ok) {
    opts.log({ msg: 'request refused', reason: n.reason, source: input.principal, method: input.method, target: input.target.slice(0, 200) });
    return { ok: false, target: input.target, status: 400, reason: 'bad-request', message: `the mesh refused this request: ${n.reason}`, decision: null, headers: {} };
  }
  const decision = config.authorizer.authorize({ principal: input.principal, method: input.method, path: n.path, port: config.servicePort, header: input.header });
  for (const a of decision.audits) {
    opts.log({ msg: 'audit: a policy rule matched (not enforced)', policy: a.policy, rule: a.rule, source: input.principal, method: input.method, path: n.path, decision: decision.allowed ? 'allow' : 'deny' });
  }
  if (!decision.allowed) {
    opts.log({ msg: 'request denied', source: input.principal, method: input.method, path: n.path, policy: decision.policy, rule: decision.rule, reason: decision.reason });
    const named = decision.policy ? `${decision.policy}${decision.rule === null ? '' : `#${decision.rule}`}` : 'mesh-default';
    return {
      ok: false,
      target: n.path + n.query,
      status: 403,
      reason: 'denied',
      message: `denied by the mesh's authorization policy (${named}): ${decision.reason}`,
      decision,
      headers: opts.policyHeader ? { [POLICY_HEADER]: named } : {},
    };
  }
  return { ok: true, target: n.query ? n.path + n.query : n.path, status: 200, reason: null, message: '', decision, headers: NO_HEADERS };
}

/** A loop, not a regular expression literal: that would make a RegExp object on every request. */
function hasLowerCase(method: string): boolean {
  for (let i = 0; i < method.length; i++) {
    const c = method.charCodeAt(i);
    if (c >= 97 && c <= 122) return true;
  }
  return false;
}
