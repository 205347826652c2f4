// Principals in an AuthorizationPolicy: a SPIFFE ID, *, or one with a single * at the start or end; checked strictly.
//
// A principal that can never match a mesh identity is a silent hole in a policy (an ALLOW that allows no one, a DENY
// that denies no one), so everything that can be checked before the * is: scheme, trust domain, segments, and for
// /ns/... the workload form spiffe://<td>/ns/<namespace>/sa/<service-account>.

import { WeftError } from '../../errors.ts';
import { parseSpiffeId, parseWorkloadId, SPIFFE_SCHEME, trustDomainProblem } from '../../ca/spiffe-id.ts';
import type { PrincipalMatch } from './types.ts';

export type ParsedPrincipal =
  | { readonly ok: true; readonly match: PrincipalMatch; /** null when the form does not fix it (*, *…) */ readonly trustDomain: string | null }
  | { readonly ok: false; readonly reason: string };

const SEGMENT_CHAR = /^[A-Za-z0-9._-]*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function fail(reason: string): ParsedPrincipal {
  return { ok: false, reason };
}

function segmentProblem(seg: string, complete: boolean): string | null {
  if (!SEGMENT_CHAR.test(seg)) {
    const bad = [...seg].find((c) => !SEGMENT_CHAR.test(c));
    return `the path contains the character ${JSON.stringify(bad)}; only letters, digits, '.', '-' and '_' are allowed`;
  }
  if (complete && seg === '') return 'the path contains an empty segment';
  if (complete && (seg === '.' || seg === '..')) return `the path contains a ${JSON.stringify(seg)} segment`;
  return null;
}

/** spiffe://<td>/<complete>/.../<partial>*: everything before the * must be a valid start of a mesh identity. */
function parsePrefix(prefix: string): ParsedPrincipal {
  if (!prefix.startsWith(SPIFFE_SCHEME)) return fail(`a prefix (… *) must start with spiffe://<trust-domain>/, e.g. spiffe://shop.example/ns/default/sa/*`);
  const rest = prefix.slice(SPIFFE_SCHEME.length);
  const slash = rest.indexOf('/');
  if (slash === -1) return fail(`a prefix must name the whole trust domain and a '/', e.g. spiffe://shop.example/ns/default/*`);
  const trustDomain = rest.slice(0, slash);
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem) return fail(tdProblem);
  const segments = rest.slice(slash + 1).split('/');
  const complete = segments.slice(0, -1);
  for (const [i, seg] of segments.entries()) {
    const problem = segmentProblem(seg, i < complete.length);
    if (problem) return fail(problem);
  }
  if (complete[0] === 'ns') {
    if (complete[1] !== undefined && !DNS_LABEL.test(complete[1])) return fail(`namespace ${JSON.stringify(complete[1])} must be a DNS label: lowercase letters, digits and '-'`);
    if (complete[2] !== undefined && complete[2] !== 'sa') return fail(`a workload ID continues /ns/<namespace>/sa/, not /${complete[2]}/`);
    if (complete.length > 3) return fail('a workload ID ends after /sa/<service-account>; this prefix can match no identity');
  }
  return { ok: true, match: { type: 'prefix', value: prefix }, trustDomain };
}

// A star then a suffix: the end of an identity's path, as in '*' + '/sa/web'.
function parseSuffix(suffix: string): ParsedPrincipal {
  const segments = suffix.split('/');
  for (const [i, seg] of segments.entries()) {
    // The first segment may be the tail of a longer one (*web); the rest are whole segments.
    const problem = segmentProblem(seg, i > 0);
    if (problem) return fail(`${problem}; a suffix (* …) matches the end of an identity's path, e.g. */sa/web`);
  }
  return { ok: true, match: { type: 'suffix', value: suffix }, trustDomain: null };
}

/** Parses one principal as written in a policy. */
export function parsePrincipal(text: string): ParsedPrincipal {
  if (text === '') return fail('it is empty');
  if (text === '*') return { ok: true, match: { type: 'any' }, trustDomain: null };
  const stars = [...text].filter((c) => c === '*').length;
  if (stars > 1) return fail('it has more than one *; use a single * at the start (*/sa/web) or at the end (spiffe://td/ns/default/*)');
  if (text.endsWith('*')) return parsePrefix(text.slice(0, -1));
  if (text.startsWith('*')) return parseSuffix(text.slice(1));
  if (stars === 1) return fail('a * may only be the first or the last character');
  try {
    const id = parseSpiffeId(text);
    if (id.path.startsWith('/ns/')) parseWorkloadId(text);
    return { ok: true, match: { type: 'exact', value: id.uri }, trustDomain: id.trustDomain };
  } catch (err) {
    if (err instanceof WeftError) return fail(String(err.details.reason ?? err.message));
    throw err;
  }
}
