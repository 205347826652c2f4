// The trace-context headers the mesh owns on a request it passes on: with tracing on they come from the request's
// observation alone, never from the caller (W3C Trace Context §3.3: a tracestate beside an invalid traceparent is
// discarded; a stale x-b3-* beside a b3 would name another trace).

/** Every header the trace-context codec (./trace-context.ts) reads or writes. */
export const TRACE_CONTEXT_HEADERS: readonly string[] = Object.freeze(['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']);

/**
 * Puts an observation's `propagate` on a request's header copy. A non-empty one (tracing on) is the whole trace
 * context: the caller's trace headers go first, also those it does not set. Tracing off, it is empty, and the copy
 * is left as made, at the cost of an empty for...in. A name is deleted only when present: a delete makes the object
 * a slower dictionary one.
 */
export function putTraceContext(headers: Record<string, unknown>, propagate: Readonly<Record<string, string>>): void {
  let cleared = false;
  for (const name in propagate) {
    if (!cleared) {
      cleared = true;
      for (const managed of TRACE_CONTEXT_HEADERS) if (headers[managed] !== undefined) delete headers[managed];
    }
    headers[name] = propagate[name];
  }
}
