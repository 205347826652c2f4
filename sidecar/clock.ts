// A monotonic clock in milliseconds for the request path, and wall-clock text without ICU.
//
// Not `performance.now()`: the first touch of the global `performance` loads all of node:perf_hooks (resource
// timing, histograms, event-loop delay), about 0.6 MB per sidecar that nothing else needs.

export function monotonicMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}

// Wall-clock text for logs and the HTTP Date header, made from the UTC fields. Date#toISOString and
// #toUTCString first set up V8's local time zone through ICU, which maps ~0.5 MB of ICU data into every
// sidecar at its first log line; the UTC getters do not.

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** The same text as `new Date(ms).toISOString()`, for years 0-9999. */
export function isoTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}Z`;
}

/** RFC 9110 IMF-fixdate, the same text as `new Date(ms).toUTCString()`, for years 0-9999. */
export function httpDate(ms: number): string {
  const d = new Date(ms);
  return `${DAYS[d.getUTCDay()]}, ${pad(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${pad(d.getUTCFullYear(), 4)} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} GMT`;
}
