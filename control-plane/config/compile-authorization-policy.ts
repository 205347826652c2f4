// Compiles an AuthorizationPolicy document: who (principals, namespaces) may do what (methods, paths, ports), when.

import type { FieldPath } from './issues.ts';
import { parseServiceRef } from './names.ts';
import { parsePolicyPath } from './policy-paths.ts';
import { parsePrincipal } from './principals.ts';
import type { Reporter } from './reporter.ts';
import type { AuthorizationPolicyDocument } from './schema.ts';
import type { AuthorizationPolicyConfig, PolicyCondition, PolicyOperation, PolicyPathMatch, PolicyRule, PolicySource, PrincipalMatch } from './types.ts';

type Rule = NonNullable<AuthorizationPolicyDocument['spec']['rules']>[number];
type Source = NonNullable<Rule['from']>[number];
type Operation = NonNullable<Rule['to']>[number];
type Condition = NonNullable<Rule['when']>[number];

const PRINCIPAL_EXAMPLE = 'write a SPIFFE ID such as spiffe://shop.example/ns/default/sa/web, a prefix ending in * or a suffix starting with *';

/** `trustDomain` is the Mesh's (null when it has none yet): a principal elsewhere can match no workload of this mesh. */
function principals(list: readonly string[] | undefined, trustDomain: string | null, at: FieldPath, report: Reporter): PrincipalMatch[] {
  return (list ?? []).flatMap((text, i) => {
    const parsed = parsePrincipal(text);
    if (!parsed.ok) {
      report.error([...at, i], `principal ${JSON.stringify(text)} is invalid: ${parsed.reason}; ${PRINCIPAL_EXAMPLE}`);
      return [];
    }
    if (trustDomain !== null && parsed.trustDomain !== null && parsed.trustDomain !== trustDomain) {
      report.error([...at, i], `principal ${JSON.stringify(text)} is in trust domain ${parsed.trustDomain}, not the mesh's ${trustDomain}; no workload of this mesh has it`);
    }
    return [parsed.match];
  });
}

function paths(list: readonly string[] | undefined, at: FieldPath, report: Reporter): PolicyPathMatch[] {
  return (list ?? []).flatMap((text, i) => {
    const parsed = parsePolicyPath(text);
    if (parsed.ok) return [parsed.match];
    report.error([...at, i], `path ${JSON.stringify(text)} is invalid: ${parsed.reason}`);
    return [];
  });
}

/** An entry whose lists are all empty would match every request: almost certainly not what was meant. */
function noConditions(entry: object, at: FieldPath, report: Reporter, what: string): void {
  if (Object.values(entry).every((v) => Array.isArray(v) && v.length === 0)) report.error(at, `has only empty lists, so it would match ${what}; list something or remove it`);
}

function compileSource(source: Source, trustDomain: string | null, at: FieldPath, report: Reporter): PolicySource {
  noConditions(source, at, report, 'every caller');
  return {
    principals: principals(source.principals, trustDomain, [...at, 'principals'], report),
    notPrincipals: principals(source.notPrincipals, trustDomain, [...at, 'notPrincipals'], report),
    namespaces: [...(source.namespaces ?? [])],
    notNamespaces: [...(source.notNamespaces ?? [])],
  };
}

function compileOperation(op: Operation, at: FieldPath, report: Reporter): PolicyOperation {
  noConditions(op, at, report, 'every request');
  return {
    methods: [...(op.methods ?? [])],
    notMethods: [...(op.notMethods ?? [])],
    paths: paths(op.paths, [...at, 'paths'], report),
    notPaths: paths(op.notPaths, [...at, 'notPaths'], report),
    ports: [...(op.ports ?? [])],
    notPorts: [...(op.notPorts ?? [])],
  };
}

function compileCondition(c: Condition, at: FieldPath, report: Reporter): PolicyCondition {
  if ((c.values ?? []).length === 0 && (c.notValues ?? []).length === 0) report.error(at, `names header ${c.header} but no values; give values or notValues`, 'value');
  return { header: c.header.toLowerCase(), values: [...(c.values ?? [])], notValues: [...(c.notValues ?? [])] };
}

export function compileAuthorizationPolicy(doc: AuthorizationPolicyDocument, trustDomain: string | null, report: Reporter): AuthorizationPolicyConfig {
  const namespace = doc.metadata.namespace ?? 'default';
  const rules: PolicyRule[] = (doc.spec.rules ?? []).map((rule, i) => {
    const at = ['spec', 'rules', i];
    return {
      from: (rule.from ?? []).map((s, j) => compileSource(s, trustDomain, [...at, 'from', j], report)),
      to: (rule.to ?? []).map((o, j) => compileOperation(o, [...at, 'to', j], report)),
      when: (rule.when ?? []).map((c, j) => compileCondition(c, [...at, 'when', j], report)),
    };
  });
  return { name: doc.metadata.name, namespace, service: parseServiceRef(doc.spec.service, namespace), action: doc.spec.action ?? 'ALLOW', rules };
}
