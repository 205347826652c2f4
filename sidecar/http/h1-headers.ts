// A request's headers as an object, combined the way node's IncomingMessage combines them, so that policy,
// routing and forwarding see what they saw under node:http.

import type { IncomingHttpHeaders } from 'node:http';

// Repeats of these are dropped: the first one counts (node's matchKnownFields).
const FIRST_WINS = new Set([
  'content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization', 'if-modified-since',
  'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag', 'last-modified', 'server', 'age', 'expires',
]);

/** Lower-case names; set-cookie as a list, repeated cookie joined with "; ", other repeats with ", ". */
export function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === '__proto__') continue; // would set the object's prototype, not a header
    const value = raw[i + 1]!;
    const seen = out[name];
    // (a function: Object.prototype's own, for a header named constructor: not seen yet)
    if (seen === undefined || typeof seen === 'function') out[name] = name === 'set-cookie' ? [value] : value;
    else if (name === 'set-cookie') (seen as string[]).push(value);
    else if (FIRST_WINS.has(name)) continue;
    else out[name] = `${seen as string}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return out as IncomingHttpHeaders;
}
