// A Route compiled once per snapshot: ordered rules with their matchers built, so a request does a lookup.

import { anchoredRegExp } from '../../control-plane/config/regex.ts';
import type { HeaderMatch, PathMatch, RequestMatch, RouteConfig, RouteRule, WeightedDestination } from '../../control-plane/config/types.ts';

export interface RequestFacts {
  readonly method: string;
  /** the path without the query */
  readonly path: string;
  readonly header: (name: string) => string | string[] | undefined;
}

type Matcher = (r: RequestFacts) => boolean;

export interface CompiledRule {
  readonly rule: RouteRule;
  readonly matches: Matcher;
  /** cumulative weights for picking a destination with one random number */
  readonly cumulative: readonly number[];
}

export interface RouteTable {
  readonly rules: readonly CompiledRule[];
}

function pathMatcher(m: PathMatch): (path: string) => boolean {
  if (m.type === 'exact') return (p) => p === m.value;
  if (m.type === 'prefix') return (p) => p.startsWith(m.value);
  const re = anchoredRegExp(m.value);
  return (p) => re.test(p);
}

function headerMatcher(m: HeaderMatch): Matcher {
  if (m.type === 'present') return (r) => r.header(m.name) !== undefined;
  const test = m.type === 'exact' ? (v: string) => v === m.value : m.type === 'prefix' ? (v: string) => v.startsWith(m.value) : ((re) => (v: string) => re.test(v))(anchoredRegExp(m.value));
  // Every value of a repeated header counts (DESIGN.md, security): one matching value is a match.
  return (r) => {
    const v = r.header(m.name);
    return v === undefined ? false : Array.isArray(v) ? v.some(test) : test(v);
  };
}

function requestMatcher(m: RequestMatch): Matcher {
  const path = m.path ? pathMatcher(m.path) : null;
  const methods = m.methods.length ? new Set(m.methods) : null;
  const headers = m.headers.map(headerMatcher);
  return (r) => (!path || path(r.path)) && (!methods || methods.has(r.method)) && headers.every((h) => h(r));
}

export function compileRoute(route: RouteConfig): RouteTable {
  return {
    rules: route.rules.map((rule) => {
      const any = rule.match.map(requestMatcher);
      let sum = 0;
      return { rule, matches: any.length === 0 ? () => true : (r) => any.some((m) => m(r)), cumulative: rule.destinations.map((d) => (sum += d.weight)) };
    }),
  };
}

/** The first rule that matches, or null (no rule: the request is not routable by this route). */
export function matchRule(table: RouteTable, r: RequestFacts): CompiledRule | null {
  for (const rule of table.rules) if (rule.matches(r)) return rule;
  return null;
}

/** Picks a destination by weight; `random` in [0, 1). */
export function pickDestination(rule: CompiledRule, random: number): WeightedDestination {
  const total = rule.cumulative.at(-1) ?? 0;
  const x = random * total;
  const i = rule.cumulative.findIndex((c) => x < c);
  return rule.rule.destinations[i === -1 ? rule.rule.destinations.length - 1 : i]!;
}
