// A monotonic clock in milliseconds for the request path.
//
// Not `performance.now()`: the first touch of the global `performance` loads all of node:perf_hooks (resource
// timing, histograms, event-loop delay), about 0.6 MB per sidecar that nothing else needs.

export function monotonicMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}
