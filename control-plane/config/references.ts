// Checks across documents: one Mesh, unique names, references to Services and their subsets, and protocol fit.

import type { Kind } from './schema.ts';
import type { ConfigIssue, FieldPath } from './issues.ts';
import { fileIssue, type Reporter } from './reporter.ts';
import { suggest } from './suggest.ts';
import type { AuthorizationPolicyConfig, MeshConfig, RouteConfig, ServiceConfig, ServiceRef, TrafficPolicyConfig } from './types.ts';

/** A document whose kind is known, valid or not: enough to count Meshes and find duplicates and Services. */
export interface DocumentHeader {
  readonly kind: Kind;
  readonly name: string | null;
  /** '' for the Mesh */
  readonly namespace: string;
  readonly report: Reporter;
}

/** A document and what it compiled to. */
export interface Compiled<T> {
  readonly item: T;
  readonly report: Reporter;
  /** false: it broke its schema, so `item` may hold anything; its report already drops echoes of that */
  readonly valid: boolean;
}

export interface ReferenceInput {
  readonly file: string;
  readonly headers: readonly DocumentHeader[];
  /** null unless there is exactly one Mesh and it compiled cleanly */
  readonly mesh: MeshConfig['mesh'] | null;
  readonly services: readonly Compiled<ServiceConfig>[];
  readonly routes: readonly Compiled<RouteConfig>[];
  readonly authorizationPolicies: readonly Compiled<AuthorizationPolicyConfig>[];
  readonly trafficPolicies: readonly Compiled<TrafficPolicyConfig>[];
}

const key = (ref: ServiceRef) => `${ref.name}.${ref.namespace}`;

/**
 * Runs `check` on each document. One that broke its schema is checked too (its report drops echoes of its own
 * problems), but as its compiled form may hold anything, a check that trips over it is abandoned, not fatal.
 */
function forEach<C extends Compiled<unknown>>(list: readonly C[], check: (c: C) => void): void {
  for (const c of list) {
    if (c.valid) {
      check(c);
      continue;
    }
    try {
      check(c);
    } catch {
      // Its schema problems, already reported, explain it.
    }
  }
}

function checkMeshCount(input: ReferenceInput, fileIssues: ConfigIssue[]): void {
  const meshes = input.headers.filter((h) => h.kind === 'Mesh');
  if (meshes.length === 0) fileIssues.push(fileIssue(input.file, 'the config has no Mesh document; add one (kind: Mesh) with spec.trustDomain, e.g. shop.example'));
  const first = meshes[0];
  for (const extra of meshes.slice(1)) {
    extra.report.error(['kind'], `a second Mesh (the first is at line ${first!.report.where(['kind']).line}); a config has exactly one Mesh, so merge them`);
  }
}

function checkDuplicates(input: ReferenceInput): void {
  const first = new Map<string, DocumentHeader>();
  for (const h of input.headers) {
    if (h.kind === 'Mesh' || h.name === null) continue;
    const id = `${h.kind}/${h.namespace}/${h.name}`;
    const earlier = first.get(id);
    if (!earlier) first.set(id, h);
    else h.report.error(['metadata', 'name'], `duplicate ${h.kind} ${h.namespace}/${h.name} (the first is at line ${earlier.report.where(['metadata', 'name']).line}); rename one or merge them`);
  }
}

/** Reports a reference to a Service that no document declares; returns the compiled Service when there is one. */
function resolve(ref: ServiceRef, report: Reporter, input: ReferenceInput, declared: ReadonlySet<string>): ServiceConfig | null {
  if (!declared.has(key(ref))) {
    const here = input.headers.filter((h) => h.kind === 'Service' && h.namespace === ref.namespace && h.name !== null).map((h) => h.name!);
    const near = suggest(ref.name, here);
    const known = here.length ? `; Services there: ${here.join(', ')}` : `; there are no Services in namespace ${ref.namespace}`;
    report.error(['spec', 'service'], `no Service ${ref.name} in namespace ${ref.namespace}${near ? ` (did you mean ${near}?)` : ''}${known}`);
    return null;
  }
  // Subsets and protocol are only trusted from a Service that is valid on its own.
  return input.services.find((s) => s.valid && key(s.item) === key(ref))?.item ?? null;
}

function checkSubset(subset: string, service: ServiceConfig, report: Reporter, at: FieldPath): void {
  if (service.subsets.some((s) => s.name === subset)) return;
  const known = service.subsets.map((s) => s.name);
  const near = suggest(subset, known);
  const where = `Service ${service.namespace}/${service.name}`;
  report.error(at, known.length === 0 ? `subset ${JSON.stringify(subset)} is not defined: ${where} has no subsets; add spec.subsets to it` : `subset ${JSON.stringify(subset)} is not defined by ${where}${near ? ` (did you mean ${near}?)` : ''}; it has ${known.join(', ')}`);
}

function checkRoutes(input: ReferenceInput, declared: ReadonlySet<string>): void {
  const routeFor = new Map<string, Compiled<RouteConfig>>();
  forEach(input.routes, (r) => {
    const { item: route, report } = r;
    const service = resolve(route.service, report, input, declared);
    const earlier = routeFor.get(key(route.service));
    if (earlier) report.error(['spec', 'service'], `Service ${route.service.namespace}/${route.service.name} already has Route ${earlier.item.namespace}/${earlier.item.name} (line ${earlier.report.where(['spec', 'service']).line}); a service has one Route, so merge their rules`);
    else routeFor.set(key(route.service), r);
    if (!service) return;
    for (const [i, rule] of route.rules.entries()) {
      const at = ['spec', 'rules', i];
      for (const [j, d] of rule.destinations.entries()) if (d.subset !== null) checkSubset(d.subset, service, report, [...at, 'destinations', j, 'subset']);
      if (rule.mirror) checkSubset(rule.mirror.subset, service, report, [...at, 'mirror', 'subset']);
      if (rule.retries && rule.retries.on.grpcStatuses.length > 0 && service.protocol !== 'grpc' && service.protocol !== 'tcp') {
        report.error([...at, 'retries', 'on'], `names gRPC statuses, but Service ${service.namespace}/${service.name} speaks ${service.protocol}; retry on HTTP statuses such as "503" instead`);
      }
      if (service.protocol !== 'tcp') continue;
      // A tcp service carries opaque bytes: nothing HTTP-level can be matched or applied.
      const httpOnly: [string, boolean][] = [['match', rule.match.length > 0], ['stickiness', rule.stickiness !== null], ['timeout', rule.timeoutMs !== null], ['retries', rule.retries !== null], ['mirror', rule.mirror !== null], ['fault', rule.fault !== null]];
      for (const [field, present] of httpOnly) {
        if (present) report.error([...at, field], `is HTTP-only, but Service ${service.namespace}/${service.name} speaks tcp; remove it (a tcp route only splits connections by weight)`, 'key');
      }
    }
  });
}

function checkAuthorizationPolicies(input: ReferenceInput, declared: ReadonlySet<string>): void {
  forEach(input.authorizationPolicies, ({ item: policy, report }) => {
    const service = resolve(policy.service, report, input, declared);
    if (service?.protocol !== 'tcp') return;
    // A tcp service carries opaque bytes: a rule on methods, paths or headers could never be enforced.
    for (const [i, rule] of policy.rules.entries()) {
      for (const [j, op] of rule.to.entries()) {
        for (const field of ['methods', 'notMethods', 'paths', 'notPaths'] as const) {
          if (op[field].length > 0) report.error(['spec', 'rules', i, 'to', j, field], `is HTTP-only, but Service ${service.namespace}/${service.name} speaks tcp; match on ports or on the caller instead`, 'key');
        }
      }
      if (rule.when.length > 0) report.error(['spec', 'rules', i, 'when'], `is HTTP-only (it matches headers), but Service ${service.namespace}/${service.name} speaks tcp; remove it`, 'key');
    }
  });
}

function checkTrafficPolicies(input: ReferenceInput, declared: ReadonlySet<string>): void {
  const policyFor = new Map<string, Compiled<TrafficPolicyConfig>>();
  forEach(input.trafficPolicies, (p) => {
    resolve(p.item.service, p.report, input, declared);
    const earlier = policyFor.get(key(p.item.service));
    if (earlier) p.report.error(['spec', 'service'], `Service ${p.item.service.namespace}/${p.item.service.name} already has TrafficPolicy ${earlier.item.namespace}/${earlier.item.name} (line ${earlier.report.where(['spec', 'service']).line}); a service has one TrafficPolicy, so merge them`);
    else policyFor.set(key(p.item.service), p);
  });
}

/** Runs every cross-document check; problems inside a document go to its reporter, the rest are returned. */
export function checkReferences(input: ReferenceInput): ConfigIssue[] {
  const fileIssues: ConfigIssue[] = [];
  checkMeshCount(input, fileIssues);
  checkDuplicates(input);
  const declared = new Set(input.headers.filter((h) => h.kind === 'Service' && h.name !== null).map((h) => `${h.name}.${h.namespace}`));
  checkRoutes(input, declared);
  checkAuthorizationPolicies(input, declared);
  checkTrafficPolicies(input, declared);
  return fileIssues;
}
