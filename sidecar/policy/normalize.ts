// One path normalization, done once at the inbound: policy matches the normalized path and the app receives
// exactly that path, so the two can never disagree about what was asked for.
//
// Decodes percent-encoded unreserved characters, merges slashes, resolves "." and ".." segments. Refuses
// (400) what has no single meaning across servers: encoded "/" "\" or NUL, raw backslashes and control
// characters, fragments, and dot segments carrying ";" parameters (Tomcat reads "/..;/" as "/../").

export type Normalized = { readonly ok: true; readonly path: string; readonly query: string } | { readonly ok: false; readonly reason: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** The path of a request target, without its query. */
export function pathOf(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

export function normalizePath(target: string): Normalized {
  if (target === '*') return { ok: false, reason: 'asterisk-form request target' };
  if (!target.startsWith('/')) return { ok: false, reason: 'request target must be an absolute path' };
  if (target.includes('#')) return { ok: false, reason: 'fragment in request target' };
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);
  if (/[\x00-\x1f\x7f]/.test(target)) return { ok: false, reason: 'control character in request target' };
  if (rawPath.includes('\\')) return { ok: false, reason: 'backslash in path' };
  // Most paths have nothing to decode, merge or resolve: they are their own normal form.
  if (!rawPath.includes('%') && !rawPath.includes('//') && !rawPath.includes('/.')) return { ok: true, path: rawPath, query };

  // Decode only unreserved characters; keep every other escape as is (uppercase hex, RFC 3986 §6.2.2.1).
  let decoded = '';
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath[i]!;
    if (c !== '%') {
      decoded += c;
      continue;
    }
    const hex = rawPath.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return { ok: false, reason: 'malformed percent-encoding' };
    const byte = parseInt(hex, 16);
    if (byte === 0x2f) return { ok: false, reason: 'encoded slash (%2F) in path' };
    if (byte === 0x5c) return { ok: false, reason: 'encoded backslash (%5C) in path' };
    if (byte === 0x00) return { ok: false, reason: 'encoded NUL (%00) in path' };
    if (byte === 0x25) {
      // "%25xx" must stay encoded, or a second decoder downstream would see "%xx".
      decoded += '%25';
    } else {
      const ch = String.fromCharCode(byte);
      decoded += byte < 0x80 && UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
    }
    i += 2;
  }

  const out: string[] = [];
  const segments = decoded.split('/').slice(1);
  for (const [i, seg] of segments.entries()) {
    const last = i === segments.length - 1;
    if (seg === '' && !last) continue; // merge slashes
    if (seg === '.') {
      if (last) out.push('');
      continue;
    }
    if (seg === '..') {
      out.pop();
      if (last) out.push('');
      continue;
    }
    if (/^\.\.?;/.test(seg)) return { ok: false, reason: 'dot segment with parameters in path' };
    out.push(seg);
  }
  return { ok: true, path: `/${out.join('/')}`, query };
}

/** Host or :authority for matching: lowercase, without the port or a trailing dot. */
export function normalizeHost(host: string): string {
  let h = host.toLowerCase();
  if (!h.startsWith('[')) {
    const colon = h.lastIndexOf(':');
    if (colon !== -1) h = h.slice(0, colon);
  } else {
    h = h.slice(0, h.indexOf(']') + 1);
  }
  return h.endsWith('.') ? h.slice(0, -1) : h;
}
