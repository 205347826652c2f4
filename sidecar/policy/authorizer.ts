// Authorization policy, compiled once per config: DENY rules first, then ALLOW policies if a service has any,
// else the mesh default; AUDIT rules only report what they would have done.
//
// Semantics follow Istio's AuthorizationPolicy: a rule matches when one of its `from` sources, one of its `to`
// operations and all of its `when` conditions match; within a source or operation every non-empty field must
// hold. A caller without an identity (PERMISSIVE plaintext) matches no positive principal or namespace, and
// satisfies every `not` list, so "deny all but X" also denies it.

import type { AuthorizationPolicyConfig, DefaultPolicy, PolicyCondition, PolicyOperation, PolicyPathMatch, PolicyRule, PolicySource, PrincipalMatch } from '../../control-plane/config/types.ts';

export interface AuthzRequest {
  /** the caller's SPIFFE ID from its verified certificate, or null */
  readonly principal: string | null;
  readonly method: string;
  /** normalized, without the query */
  readonly path: string;
  readonly port: number;
  readonly header: (name: string) => string | string[] | undefined;
}

export interface Decision {
  readonly allowed: boolean;
  /** "namespace/name" of the deciding policy, or null for the mesh default */
  readonly policy: string | null;
  /** index of the deciding rule within that policy */
  readonly rule: number | null;
  readonly reason: string;
  /** AUDIT rules that matched: what they would have done is logged, not enforced */
  readonly audits: readonly { policy: string; rule: number }[];
}

type Predicate = (r: AuthzRequest) => boolean;

interface CompiledRule {
  readonly policy: string;
  readonly index: number;
  readonly matches: Predicate;
}

export interface Authorizer {
  authorize(r: AuthzRequest): Decision;
}

function principalMatcher(m: PrincipalMatch): (p: string) => boolean {
  switch (m.type) {
    case 'any':
      return () => true;
    case 'exact':
      return (p) => p === m.value;
    case 'prefix':
      return (p) => p.startsWith(m.value);
    case 'suffix':
      return (p) => p.endsWith(m.value);
  }
}

function pathMatcher(m: PolicyPathMatch): (p: string) => boolean {
  if (m.type === 'any') return () => true;
  if (m.type === 'exact') return (p) => p === m.value;
  // "/items/*" (value "/items/") covers "/items/" and everything below it, not "/items" (as in Istio).
  return (p) => p.startsWith(m.value);
}

function namespaceOf(principal: string): string | null {
  return /^spiffe:\/\/[^/]+\/ns\/([^/]+)\//.exec(principal)?.[1] ?? null;
}

/** Every non-empty list is a condition; `positive` lists need a value, `not` lists are met by its absence. */
function anyOf<T>(items: readonly T[], match: (item: T) => boolean): boolean {
  return items.some(match);
}

function sourceMatcher(s: PolicySource): Predicate {
  const principals = s.principals.map(principalMatcher);
  const notPrincipals = s.notPrincipals.map(principalMatcher);
  return (r) => {
    const p = r.principal;
    const ns = p ? namespaceOf(p) : null;
    if (principals.length && (p === null || !anyOf(principals, (m) => m(p)))) return false;
    if (notPrincipals.length && p !== null && anyOf(notPrincipals, (m) => m(p))) return false;
    if (s.namespaces.length && (ns === null || !s.namespaces.includes(ns))) return false;
    if (s.notNamespaces.length && ns !== null && s.notNamespaces.includes(ns)) return false;
    return true;
  };
}

function operationMatcher(o: PolicyOperation): Predicate {
  const paths = o.paths.map(pathMatcher);
  const notPaths = o.notPaths.map(pathMatcher);
  const methods = new Set(o.methods);
  const notMethods = new Set(o.notMethods);
  return (r) => {
    if (methods.size && !methods.has(r.method)) return false;
    if (notMethods.size && notMethods.has(r.method)) return false;
    if (paths.length && !anyOf(paths, (m) => m(r.path))) return false;
    if (notPaths.length && anyOf(notPaths, (m) => m(r.path))) return false;
    if (o.ports.length && !o.ports.includes(r.port)) return false;
    if (o.notPorts.length && o.notPorts.includes(r.port)) return false;
    return true;
  };
}

function conditionMatcher(c: PolicyCondition): Predicate {
  return (r) => {
    const raw = r.header(c.header);
    // Every value of a repeated header counts (DESIGN.md, security): a smuggled second value cannot hide.
    const values = raw === undefined ? [] : (Array.isArray(raw) ? raw : [raw]).flatMap((v) => v.split(',').map((x) => x.trim()));
    if (c.values.length && !values.some((v) => c.values.includes(v))) return false;
    if (c.notValues.length && values.some((v) => c.notValues.includes(v))) return false;
    return true;
  };
}

function ruleMatcher(rule: PolicyRule): Predicate {
  const from = rule.from.map(sourceMatcher);
  const to = rule.to.map(operationMatcher);
  const when = rule.when.map(conditionMatcher);
  return (r) => (from.length === 0 || from.some((m) => m(r))) && (to.length === 0 || to.some((m) => m(r))) && when.every((m) => m(r));
}

const NO_AUDITS: Decision['audits'] = Object.freeze([]);
const DEFAULT_ALLOW: Decision = Object.freeze({ allowed: true, policy: null, rule: null, reason: 'no policy applies; the mesh default allows authenticated callers', audits: NO_AUDITS });

export function compileAuthorizer(policies: readonly AuthorizationPolicyConfig[], defaultPolicy: DefaultPolicy): Authorizer {
  const rules = (action: string): CompiledRule[] =>
    policies.filter((p) => p.action === action).flatMap((p) => p.rules.map((rule, index) => ({ policy: `${p.namespace}/${p.name}`, index, matches: ruleMatcher(rule) })));
  const deny = rules('DENY');
  const allow = rules('ALLOW');
  const audit = rules('AUDIT');
  const hasAllowPolicy = policies.some((p) => p.action === 'ALLOW');
  const allowPolicies = policies.filter((p) => p.action === 'ALLOW').map((p) => `${p.namespace}/${p.name}`);

  return {
    authorize(r) {
      const audits = audit.length === 0 ? NO_AUDITS : audit.filter((a) => a.matches(r)).map((a) => ({ policy: a.policy, rule: a.index }));
      for (const d of deny) {
        if (d.matches(r)) return { allowed: false, policy: d.policy, rule: d.index, reason: `DENY rule ${d.index} of ${d.policy} matched`, audits };
      }
      if (hasAllowPolicy) {
        for (const a of allow) {
          if (a.matches(r)) return { allowed: true, policy: a.policy, rule: a.index, reason: `ALLOW rule ${a.index} of ${a.policy} matched`, audits };
        }
        return { allowed: false, policy: allowPolicies.join(','), rule: null, reason: `no ALLOW rule of ${allowPolicies.join(', ')} matched`, audits };
      }
      if (defaultPolicy === 'deny') return { allowed: false, policy: null, rule: null, reason: 'no policy applies and the mesh default is deny', audits };
      if (r.principal === null) return { allowed: false, policy: null, rule: null, reason: 'no policy applies and the mesh default allows authenticated callers only; this caller has no identity', audits };
      // The common case, the same every time: one object for all such requests.
      return audits === NO_AUDITS ? DEFAULT_ALLOW : { ...DEFAULT_ALLOW, audits };
    },
  };
}
