// The access log: one JSON line per request (and per raw TCP connection), written through the sidecar's logger
// to stderr, so a request can be found from its trace ID and a mesh-made answer is told apart by its reason.

import type { RequestEnd, RequestFacts, RequestStart } from './observer.ts';

/** Paths longer than this are cut in the log (the whole path still reached the app). */
const MAX_PATH = 512;

/** A type, not an interface, so it is a Record<string, unknown> for the logger. */
export type AccessRecord = {
  readonly msg: 'access';
  readonly direction: RequestStart['direction'];
  readonly protocol: RequestStart['protocol'] | 'tcp';
  readonly method?: string;
  readonly path?: string;
  readonly status?: number;
  /** a gRPC call's grpc-status (0 OK) */
  readonly grpcStatus?: number;
  readonly durationMs: number;
  /** null when tracing is off */
  readonly traceId: string | null;
  readonly spanId?: string | null;
  /** the caller's SPIFFE ID (null for a caller without one) */
  readonly source: string | null;
  /** the SPIFFE ID the destination has, or must present */
  readonly destination: string | null;
  readonly destinationService: string;
  readonly subset?: string | null;
  readonly route?: string;
  readonly endpoint?: string;
  readonly retries?: number;
  readonly retryBudgetExhausted?: boolean;
  /** the endpoint's circuit breaker when the request went to it */
  readonly breaker?: string;
  /** x-weft-reason: set only when the mesh answered itself */
  readonly reason?: string;
  readonly policy?: string;
  readonly bytesReceived?: number;
  readonly bytesSent?: number;
};

export function requestRecord(start: RequestStart, facts: RequestFacts, outcome: RequestEnd, durationMs: number, trace: { traceId: string; spanId: string } | null): AccessRecord {
  return {
    msg: 'access',
    direction: start.direction,
    protocol: start.protocol,
    method: start.method,
    path: start.path.length > MAX_PATH ? `${start.path.slice(0, MAX_PATH)}…` : start.path,
    status: outcome.status,
    grpcStatus: outcome.grpcStatus,
    durationMs: Math.round(durationMs * 1000) / 1000,
    traceId: trace?.traceId ?? null,
    spanId: trace?.spanId ?? null,
    source: start.source,
    destination: facts.destination ?? null,
    destinationService: start.service,
    subset: facts.subset ?? null,
    route: facts.route,
    endpoint: facts.endpoint,
    retries: facts.retries,
    retryBudgetExhausted: facts.retryBudgetExhausted,
    breaker: facts.breaker,
    reason: outcome.reason,
    policy: facts.policy && !facts.policy.allowed ? `${facts.policy.policy ?? 'mesh-default'}${facts.policy.rule === null ? '' : `#${facts.policy.rule}`}` : undefined,
  };
}

export function connectionRecord(direction: RequestStart['direction'], source: string | null, destination: string | null, service: string, durationMs: number, received: number, sent: number): AccessRecord {
  return { msg: 'access', direction, protocol: 'tcp', durationMs: Math.round(durationMs * 1000) / 1000, traceId: null, source, destination, destinationService: service, bytesReceived: received, bytesSent: sent };
}
