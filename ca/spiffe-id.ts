// SPIFFE IDs: parse, validate and format per the SPIFFE ID specification, and the mesh's workload form.
//
// spiffe://<trust-domain>/<path>; the mesh names workloads spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
// Every rejection names the rule broken, because an operator typing a principal into a policy needs to know which.

import { WeftError } from '../errors.ts';

export const SPIFFE_SCHEME = 'spiffe://';
/** The spec's limits: a URI of at most 2048 bytes, a trust domain of at most 255. */
export const MAX_SPIFFE_ID_LENGTH = 2048;
export const MAX_TRUST_DOMAIN_LENGTH = 255;

const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const PATH_SEGMENT_CHAR = /^[A-Za-z0-9._-]$/;
// Kubernetes names: a namespace is a DNS-1123 label, a service account a DNS-1123 subdomain.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export interface SpiffeId {
  readonly trustDomain: string;
  /** '' for a trust domain's own ID, else '/seg/seg...' */
  readonly path: string;
  readonly uri: string;
}

export interface WorkloadId extends SpiffeId {
  readonly namespace: string;
  readonly serviceAccount: string;
}

function invalid(input: string, reason: string): WeftError {
  const shown = input.length > 120 ? `${input.slice(0, 120)}…` : input;
  return new WeftError('WEFT_SPIFFE_INVALID', `invalid SPIFFE ID ${JSON.stringify(shown)}: ${reason}`, { input: shown, reason });
}

/** Checks a trust domain name on its own; returns the reason it is invalid, or null. */
export function trustDomainProblem(td: string): string | null {
  if (td.length === 0) return 'trust domain is empty';
  if (td.length > MAX_TRUST_DOMAIN_LENGTH) return `trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} bytes`;
  for (const ch of td) {
    if (TRUST_DOMAIN_CHAR.test(ch)) continue;
    if (ch === ':') return 'trust domain must not contain a port';
    if (ch === '@') return 'trust domain must not contain user info';
    if (ch === '%') return 'percent-encoding is not allowed';
    if (/[A-Z]/.test(ch)) return 'trust domain must be lowercase';
    return `trust domain contains the character ${JSON.stringify(ch)}; only a-z, 0-9, '.', '-' and '_' are allowed`;
  }
  return null;
}

export function parseTrustDomain(td: string): string {
  const problem = trustDomainProblem(td);
  if (problem) throw new WeftError('WEFT_SPIFFE_INVALID', `invalid trust domain ${JSON.stringify(td)}: ${problem}`, { input: td, reason: problem });
  return td;
}

function pathProblem(path: string): string | null {
  if (path === '') return null;
  if (path === '/') return 'path must not end with a slash';
  const segments = path.slice(1).split('/');
  for (const [i, seg] of segments.entries()) {
    if (seg === '') return i === segments.length - 1 ? 'path must not end with a slash' : 'path contains an empty segment';
    if (seg === '.' || seg === '..') return `path contains a ${JSON.stringify(seg)} segment`;
    for (const ch of seg) {
      if (PATH_SEGMENT_CHAR.test(ch)) continue;
      if (ch === '%') return 'percent-encoding is not allowed';
      if (ch === '?') return 'a query is not allowed';
      if (ch === '#') return 'a fragment is not allowed';
      return `path contains the character ${JSON.stringify(ch)}; only letters, digits, '.', '-' and '_' are allowed`;
    }
  }
  return null;
}

/** Parses any SPIFFE ID (including a bare trust domain ID). Throws WEFT_SPIFFE_INVALID naming the rule broken. */
export function parseSpiffeId(input: string): SpiffeId {
  if (typeof input !== 'string') throw invalid(String(input), 'not a string');
  if (input === '') throw invalid(input, 'empty');
  if (Buffer.byteLength(input) > MAX_SPIFFE_ID_LENGTH) throw invalid(input, `longer than ${MAX_SPIFFE_ID_LENGTH} bytes`);
  if (!input.startsWith(SPIFFE_SCHEME)) {
    if (input.toLowerCase().startsWith(SPIFFE_SCHEME)) throw invalid(input, "scheme must be lowercase 'spiffe'");
    if (/^[a-z][a-z0-9+.-]*:/i.test(input)) throw invalid(input, "scheme must be 'spiffe://'");
    throw invalid(input, "missing the 'spiffe://' scheme");
  }
  const rest = input.slice(SPIFFE_SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  // A query or fragment straight after the trust domain is reported as such, not as a bad trust-domain character.
  const qf = trustDomain.search(/[?#]/);
  if (qf !== -1) throw invalid(input, trustDomain[qf] === '?' ? 'a query is not allowed' : 'a fragment is not allowed');
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem) throw invalid(input, tdProblem);
  const pProblem = pathProblem(path);
  if (pProblem) throw invalid(input, pProblem);
  return { trustDomain, path, uri: input };
}

export function formatSpiffeId(trustDomain: string, segments: readonly string[]): string {
  const uri = `${SPIFFE_SCHEME}${trustDomain}${segments.map((s) => `/${s}`).join('')}`;
  return parseSpiffeId(uri).uri;
}

/** Parses the mesh's workload form spiffe://<td>/ns/<namespace>/sa/<service-account>. */
export function parseWorkloadId(input: string): WorkloadId {
  const id = parseSpiffeId(input);
  const seg = id.path.split('/').slice(1);
  if (seg.length !== 4 || seg[0] !== 'ns' || seg[2] !== 'sa') {
    throw invalid(input, "a workload ID has the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>");
  }
  const namespace = seg[1]!;
  const serviceAccount = seg[3]!;
  if (namespace.length > 63 || !DNS_LABEL.test(namespace)) {
    throw invalid(input, `namespace ${JSON.stringify(namespace)} must be a DNS label: lowercase letters, digits and '-', at most 63`);
  }
  if (serviceAccount.length > 253 || !serviceAccount.split('.').every((l) => l.length <= 63 && DNS_LABEL.test(l))) {
    throw invalid(input, `service account ${JSON.stringify(serviceAccount)} must be a DNS subdomain: lowercase letters, digits, '-' and '.'`);
  }
  return { ...id, namespace, serviceAccount };
}

export function workloadId(trustDomain: string, namespace: string, serviceAccount: string): WorkloadId {
  return parseWorkloadId(`${SPIFFE_SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`);
}

export function isSpiffeId(input: string): boolean {
  try {
    parseSpiffeId(input);
    return true;
  } catch {
    return false;
  }
}
