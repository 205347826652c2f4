// Header hygiene shared by both directions: hop-by-hop headers stay on their hop, and the mesh's own
// headers are never taken from anyone outside it.

import type { IncomingHttpHeaders } from 'node:http';

/** The header the inbound sidecar sets for the app: the caller's SPIFFE ID, from its verified certificate. */
export const PEER_IDENTITY_HEADER = 'x-weft-peer-identity';
/** Every response the mesh itself makes carries this, so nobody mistakes it for the app's. */
export const REASON_HEADER = 'x-weft-reason';
const INTERNAL_PREFIX = 'x-weft-';

/**
 * A request header by lower-case name, for names that come from config (policy and route header matches): never
 * a member a headers object inherits (`constructor`, `toString`, `__proto__` are valid header names).
 */
export function headerOf(headers: IncomingHttpHeaders, name: string): string | string[] | undefined {
  return Object.hasOwn(headers, name) ? headers[name] : undefined;
}

// RFC 9110 §7.6.1, plus the proxy-era names that must not be forwarded either.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

/**
 * Copies request headers for the next hop: drops hop-by-hop headers (and any named in Connection), every
 * x-weft-* header (so an outsider cannot forge an identity), and HTTP/2 pseudo-headers.
 */
export function forwardHeaders(incoming: IncomingHttpHeaders, keep: readonly string[] = []): Record<string, string | string[]> {
  let named: Set<string> | null = null;
  const conn = incoming.connection;
  if (typeof conn === 'string') {
    named = new Set();
    for (const n of conn.split(',')) named.add(n.trim().toLowerCase());
  }
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* ':' */) continue;
    if ((HOP_BY_HOP.has(name) || named?.has(name)) && (keep.length === 0 || !keep.includes(name))) continue;
    if (name.startsWith(INTERNAL_PREFIX)) continue;
    out[name] = value;
  }
  return out;
}

/** Whether a header name, in any case, is one of the mesh's own (x-weft-*): compared by character, allocating nothing. */
export function isInternal(name: string): boolean {
  if (name.length <= INTERNAL_PREFIX.length) return false;
  for (let i = 0; i < INTERNAL_PREFIX.length; i++) {
    // `| 32` lower-cases a letter and leaves '-' (45, which has the bit set) as it is.
    if ((name.charCodeAt(i) | 32) !== INTERNAL_PREFIX.charCodeAt(i)) return false;
  }
  return true;
}

/** Whether a name of this length could be a hop-by-hop one (other than host): the rest need no lower-casing. */
const HOP_LENGTH = new Uint8Array(32);
for (const name of HOP_BY_HOP) if (name !== 'host') HOP_LENGTH[name.length] = 1;

/**
 * Response headers for the previous hop, from the raw name/value list the parser delivers (names in any
 * case): hop-by-hop ones dropped, everything else as the app sent it. A new flat list for `res.writeHead`,
 * without building an object per response. A name is lower-cased only when its length is one a dropped name has
 * (the common answer has none to drop but Connection). `fromApp`: the answer is the local app's, and its x-weft-*
 * headers are dropped too, so that an app cannot speak for the mesh (a caller's sidecar acts on x-weft-reason).
 */
export function responseHeadersRaw(raw: readonly string[], fromApp = false): string[] {
  let named: Set<string> | null = null;
  let namedLength: Uint8Array | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') {
      named ??= new Set();
      namedLength ??= new Uint8Array(32);
      for (const n of raw[i + 1]!.split(',')) {
        const lower = n.trim().toLowerCase();
        named.add(lower);
        namedLength[Math.min(lower.length, 31)] = 1;
      }
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const slot = name.length < 32 ? name.length : 31;
    if (HOP_LENGTH[slot] === 1 || namedLength?.[slot] === 1) {
      const lower = name.toLowerCase();
      if ((HOP_BY_HOP.has(lower) && lower !== 'host') || named?.has(lower)) continue;
    }
    if (fromApp && isInternal(name)) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}
