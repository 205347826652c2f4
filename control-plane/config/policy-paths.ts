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
  if (body.includes('%')) {
    const escapes = normalEscapes(body);
    if (!escapes.ok) return { ok: false, reason: escapes.reason };
    if (escapes.text !== body) return { ok: false, reason: `requests are matched after their escapes are normalized, so this could never match; write it as ${escapes.text}${prefix ? '*' : ''}` };
  }
  const segments = body.slice(1).split('/');
  for (const [i, seg] of segments.entries()) {
    const last = i === segments.length - 1;
    if (seg === '' && !last) return { ok: false, reason: "a path must not contain '//'; requests are matched after normalization" };
    if (seg === '.' || seg === '..') return { ok: false, reason: `a path must not contain a ${JSON.stringify(seg)} segment; requests are matched after normalization` };
  }
  return { ok: true, match: prefix ? { type: 'prefix', value: body } : { type: 'exact', value: body } };
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * `path` with its percent-escapes as a sidecar normalizes a request's (sidecar/policy/normalize.ts): unreserved
 * characters decoded, other escapes in upper-case hex; or why no request path can contain them.
 */
function normalEscapes(path: string): { ok: true; text: string } | { ok: false; reason: string } {
  let out = '';
  for (let i = 0; i < path.length; i++) {
    if (path[i] !== '%') {
      out += path[i];
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return { ok: false, reason: `malformed percent-encoding at ${JSON.stringify(path.slice(i, i + 3))}` };
    const byte = parseInt(hex, 16);
    if (byte === 0x2f || byte === 0x5c || byte === 0x00) return { ok: false, reason: `requests with %${hex.toUpperCase()} in their path are refused (400), so this could never match` };
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return { ok: true, text: out };
}
