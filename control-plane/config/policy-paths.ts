// Request paths in an AuthorizationPolicy: exact (/items), prefix (/items/*) or any (*), in normalized form.

import type { PolicyPathMatch } from './types.ts';

export type ParsedPolicyPath = { readonly ok: true; readonly match: PolicyPathMatch } | { readonly ok: false; readonly reason: string };

/**
 * Sidecars normalize a request's path once and match policy against that, so a policy path must itself be
 * normalized: one that is not (`/a/../b`, `//a`) could never match and would leave a hole.
 */
export function parsePolicyPath(text: string): ParsedPolicyPath {
  if (text === '*') return { ok: true, match: { type: 'any' } };
  if (!text.startsWith('/')) return { ok: false, reason: "a path must start with '/' (or be * for any path)" };
  const prefix = text.endsWith('/*');
  const body = prefix ? text.slice(0, -1) : text;
  if (body.includes('*')) return { ok: false, reason: 'a * may only end a prefix (/items/*) or stand alone (*)' };
  if (/[?#]/.test(body)) return { ok: false, reason: 'a path must not contain a query (?) or fragment (#); policies match the path alone' };
  if (/\s/.test(body)) return { ok: false, reason: 'a path must not contain whitespace; percent-encode it' };
  const segments = body.slice(1).split('/');
  for (const [i, seg] of segments.entries()) {
    const last = i === segments.length - 1;
    if (seg === '' && !last) return { ok: false, reason: "a path must not contain '//'; requests are matched after normalization" };
    if (seg === '.' || seg === '..') return { ok: false, reason: `a path must not contain a ${JSON.stringify(seg)} segment; requests are matched after normalization` };
  }
  return { ok: true, match: prefix ? { type: 'prefix', value: body } : { type: 'exact', value: body } };
}
