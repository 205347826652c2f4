// Compiles a Route document: request matches, the weighted split, stickiness, timeouts, retries, mirroring and faults.

import { durationWithin } from './duration.ts';
import type { FieldPath } from './issues.ts';
import { isHeaderName, parseServiceRef } from './names.ts';
import { regexProblem } from './regex.ts';
import type { Reporter } from './reporter.ts';
import type { RouteDocument } from './schema.ts';
import type { HeaderMatch, RequestMatch, RetryPolicy, RouteConfig, RouteRule, WeightedDestination } from './types.ts';

type Rule = RouteDocument['spec']['rules'][number];
type Match = NonNullable<Rule['match']>[number];

const DEFAULT_RETRY_ON = ['connect-failure', 'reset'] as const;
/** The gRPC statuses a retry may be asked for, by the names Istio's retryOn uses, and their codes. */
export const GRPC_RETRY_STATUSES: Readonly<Record<string, number>> = { cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14 };

function checkRegex(source: string, at: FieldPath, report: Reporter): void {
  const problem = regexProblem(source);
  if (problem) report.error(at, `${JSON.stringify(source)} is not a usable regex: ${problem}`);
}

function compileMatch(match: Match, at: FieldPath, report: Reporter): RequestMatch {
  let path: RequestMatch['path'] = null;
  if (match.path) {
    const type = (['exact', 'prefix', 'regex'] as const).find((t) => match.path![t] !== undefined)!;
    path = { type, value: match.path[type]! };
    if (type === 'regex') checkRegex(path.value, [...at, 'path', 'regex'], report);
  }
  const headers: HeaderMatch[] = [];
  const seen = new Map<string, string>();
  for (const [written, value] of Object.entries(match.headers ?? {})) {
    const where = [...at, 'headers', written];
    if (!isHeaderName(written)) report.error(where, `${JSON.stringify(written)} is not an HTTP header name (letters, digits and !#$%&'*+.^_\`|~-)`, 'key');
    const name = written.toLowerCase();
    const earlier = seen.get(name);
    if (earlier !== undefined) report.error(where, `header ${JSON.stringify(written)} is also matched as ${JSON.stringify(earlier)}; header names are case-insensitive, so give it once`, 'key');
    seen.set(name, written);
    if (value.present !== undefined) headers.push({ name, type: 'present' });
    else {
      const type = (['exact', 'prefix', 'regex'] as const).find((t) => value[t] !== undefined)!;
      headers.push({ name, type, value: value[type]! });
      if (type === 'regex') checkRegex(value.regex!, [...where, 'regex'], report);
    }
  }
  return { path, methods: [...(match.methods ?? [])], headers };
}

function compileDestinations(rule: Rule, at: FieldPath, report: Reporter): WeightedDestination[] {
  const list = rule.destinations;
  const where = [...at, 'destinations'];
  const bySubset = new Map<string | null, number>();
  for (const [i, d] of list.entries()) {
    const subset = d.subset ?? null;
    const earlier = bySubset.get(subset);
    if (earlier !== undefined) report.error([...where, i], `${subset === null ? 'a second destination with no subset' : `subset ${JSON.stringify(subset)} appears twice`} (also destinations[${earlier}]); merge them into one destination`);
    else bySubset.set(subset, i);
  }
  if (list.length === 1) {
    const weight = list[0]!.weight ?? 100;
    if (weight !== 100) report.error([...where, 0, 'weight'], `a lone destination takes all the traffic; its weight must be 100 (or omit it), not ${weight}`);
    return [{ subset: list[0]!.subset ?? null, weight: 100 }];
  }
  const unweighted = list.flatMap((d, i) => (d.weight === undefined ? [i] : []));
  for (const i of unweighted) report.error([...where, i], 'has no weight; when a rule has several destinations, give each a weight (together 100)');
  const sum = list.reduce((s, d) => s + (d.weight ?? 0), 0);
  if (unweighted.length === 0 && sum !== 100) report.error(where, `weights sum to ${sum}; they must sum to 100`, 'key');
  return list.map((d) => ({ subset: d.subset ?? null, weight: d.weight ?? 0 }));
}

function compileRetries(retries: NonNullable<Rule['retries']>, timeoutMs: number | null, at: FieldPath, report: Reporter): RetryPolicy {
  let perTryTimeoutMs: number | null = null;
  if (retries.perTryTimeout !== undefined) {
    const d = durationWithin(retries.perTryTimeout);
    if (!d.ok) report.error([...at, 'perTryTimeout'], d.reason);
    else if (timeoutMs !== null && d.ms > timeoutMs) report.error([...at, 'perTryTimeout'], `${retries.perTryTimeout} is longer than the rule's timeout, so it would never fire; make it shorter than the timeout or remove it`);
    else perTryTimeoutMs = d.ms;
  }
  const on = retries.on ?? DEFAULT_RETRY_ON;
  const seen = new Set<string>();
  for (const [i, item] of on.entries()) {
    if (seen.has(item)) report.error([...at, 'on', i], `${JSON.stringify(item)} is listed twice; give it once`);
    seen.add(item);
  }
  return {
    attempts: retries.attempts ?? 2,
    perTryTimeoutMs,
    on: {
      connectFailure: seen.has('connect-failure'),
      reset: seen.has('reset'),
      statuses: [...seen].filter((s) => /^\d+$/.test(s)).map(Number),
      grpcStatuses: [...seen].filter((s) => s in GRPC_RETRY_STATUSES).map((s) => GRPC_RETRY_STATUSES[s]!),
    },
    budget: { percent: retries.budget?.percent ?? 20, minPerSecond: retries.budget?.minPerSecond ?? 3 },
  };
}

function compileRule(rule: Rule, at: FieldPath, report: Reporter): RouteRule {
  let timeoutMs: number | null = null;
  if (rule.timeout !== undefined) {
    const d = durationWithin(rule.timeout);
    if (d.ok) timeoutMs = d.ms;
    else report.error([...at, 'timeout'], d.reason);
  }
  let fault: RouteRule['fault'] = null;
  if (rule.fault) {
    const { delay, abort } = rule.fault;
    const fixed = delay ? durationWithin(delay.fixed) : null;
    if (fixed && !fixed.ok) report.error([...at, 'fault', 'delay', 'fixed'], fixed.reason);
    fault = {
      delay: delay && fixed?.ok ? { fixedMs: fixed.ms, percent: delay.percent ?? 100 } : null,
      abort: abort ? { status: abort.status, percent: abort.percent ?? 100 } : null,
    };
  }
  const sticky = rule.stickiness;
  return {
    name: rule.name ?? null,
    match: (rule.match ?? []).map((m, j) => compileMatch(m, [...at, 'match', j], report)),
    destinations: compileDestinations(rule, at, report),
    stickiness: sticky ? (sticky.header !== undefined ? { type: 'header', name: sticky.header.toLowerCase() } : { type: 'cookie', name: sticky.cookie! }) : null,
    timeoutMs,
    retries: rule.retries ? compileRetries(rule.retries, timeoutMs, [...at, 'retries'], report) : null,
    mirror: rule.mirror ? { subset: rule.mirror.subset, percent: rule.mirror.percent ?? 100 } : null,
    fault,
  };
}

export function compileRoute(doc: RouteDocument, report: Reporter): RouteConfig {
  const namespace = doc.metadata.namespace ?? 'default';
  const names = new Map<string, number>();
  const rules = doc.spec.rules.map((rule, i) => {
    if (rule.name !== undefined) {
      const earlier = names.get(rule.name);
      if (earlier !== undefined) report.error(['spec', 'rules', i, 'name'], `duplicate rule name ${JSON.stringify(rule.name)} (also spec.rules[${earlier}]); rule names must be unique within a route`);
      else names.set(rule.name, i);
    }
    return compileRule(rule, ['spec', 'rules', i], report);
  });
  return { name: doc.metadata.name, namespace, service: parseServiceRef(doc.spec.service, namespace), rules };
}
