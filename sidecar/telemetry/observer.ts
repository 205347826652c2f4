// The seam between the request path and telemetry: listeners report what happens, the observer turns it into
// spans, metrics and access logs. The request path never waits on telemetry.

import { REASON_HEADER } from '../http/headers.ts';
import type { MeshReason } from '../http/mesh-reply.ts';

export type Direction = 'inbound' | 'outbound';

export interface RequestStart {
  readonly direction: Direction;
  readonly protocol: 'http' | 'http2' | 'grpc';
  readonly method: string;
  /** the path (normalized on the inbound side), without the query */
  readonly path: string;
  /** request headers as received, for trace context (traceparent, tracestate, b3, x-b3-*) */
  readonly header: (name: string) => string | string[] | undefined;
  /** inbound: the caller's SPIFFE ID (null without mTLS); outbound: this sidecar's */
  readonly source: string | null;
  /** "name.namespace" of the destination service */
  readonly service: string;
}

/** Facts learnt while the request is handled; set as they become known. */
export interface RequestFacts {
  /** the destination's SPIFFE ID (outbound) */
  destination?: string;
  subset?: string | null;
  endpoint?: string;
  /** route rule name or index */
  route?: string;
  /** retries made so far (the last value set is the request's total; counted in weft_retries_total) */
  retries?: number;
  /** a retry was wanted but the service's retry budget had none left (counted in weft_retry_budget_exhausted_total) */
  retryBudgetExhausted?: boolean;
  breaker?: BreakerState;
  /** authorization outcome (inbound) */
  policy?: { allowed: boolean; policy: string | null; rule: number | null };
}

export interface RequestEnd {
  readonly status: number;
  /** set when the mesh answered itself (x-weft-reason) */
  readonly reason?: string;
  /** a gRPC call's status (grpc-status: 0 is OK), as sent to the caller; undefined for other requests */
  readonly grpcStatus?: number;
}

/** The grpc-status a stream sent its caller: in its trailers, or in a trailers-only answer's headers. */
export function sentGrpcStatus(stream: { sentHeaders?: Record<string, unknown>; sentTrailers?: Record<string, unknown> }): number | undefined {
  const value = stream.sentTrailers?.['grpc-status'] ?? stream.sentHeaders?.['grpc-status'];
  return value === undefined ? undefined : Number(value);
}

/** Every reason the mesh answers with (a Record, so that the compiler sees a new MeshReason missing here). */
const MESH_REASONS: Readonly<Record<MeshReason, true>> = {
  'no-route': true, 'no-healthy-upstream': true, 'upstream-connect-failure': true, 'upstream-reset': true, 'upstream-refused': true,
  'peer-identity-mismatch': true, 'app-unavailable': true, 'app-reset': true, 'not-ready': true, 'bad-request': true, 'timeout': true,
  'stream-idle-timeout': true, 'circuit-open': true, 'overflow': true, 'denied': true, 'fault-injected': true,
};

/**
 * The mesh's reason among the headers a stream sent: only one of the mesh's own. A relayed answer carries whatever
 * the app put in it, and an app's x-weft-reason (one per request, say) must not become a label value.
 */
function meshReasonOf(value: unknown): MeshReason | undefined {
  return typeof value === 'string' && Object.hasOwn(MESH_REASONS, value) ? (value as MeshReason) : undefined;
}

/** Ends the observation of an HTTP/2 stream once it has closed: the status, mesh reason and gRPC status it was sent. */
export function endH2Observation(obs: RequestObservation, stream: { sentHeaders?: Record<string, unknown>; sentTrailers?: Record<string, unknown> }, grpc: boolean): void {
  obs.end({
    status: Number(stream.sentHeaders?.[':status'] ?? 0),
    reason: meshReasonOf(stream.sentHeaders?.[REASON_HEADER]) ?? meshReasonOf(stream.sentTrailers?.[REASON_HEADER]),
    grpcStatus: grpc ? sentGrpcStatus(stream) : undefined,
  });
}

export interface RequestObservation {
  /**
   * the trace context for the next hop: empty with tracing off; else it replaces every trace header the caller sent
   * (put on with putTraceContext, ./propagation.ts)
   */
  readonly propagate: Readonly<Record<string, string>>;
  set(facts: RequestFacts): void;
  end(outcome: RequestEnd): void;
}

export interface ConnectionObservation {
  bytes(received: number, sent: number): void;
  /** `denied`: the policy refused the connection (counted in weft_policy_denials_total, as a request's denial is) */
  end(denied?: { readonly policy: string | null; readonly rule: number | null }): void;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

/** why an inbound connection was closed as it arrived, before any byte was read */
export type InboundRefusal = 'per_address_limit';

export interface Observer {
  request(start: RequestStart): RequestObservation;
  /** a raw TCP connection through the sidecar */
  connection(direction: Direction, service: string, peer: string | null): ConnectionObservation;
  /** a circuit breaker changed state (or was created, as 'closed'); `endpoint` is host:port of the peer */
  breakerState(service: string, endpoint: string, state: BreakerState): void;
  /** an inbound connection closed as it arrived (counted in weft_inbound_connections_refused_total) */
  inboundRefused(reason: InboundRefusal): void;
  /** Prometheus text exposition for /metrics */
  metrics(): Promise<string>;
  close(): Promise<void>;
}

const NOOP_REQUEST: RequestObservation = { propagate: {}, set() {}, end() {} };
const NOOP_CONNECTION: ConnectionObservation = { bytes() {}, end() {} };

/** Reports nothing: the default until telemetry is configured. */
export const noopObserver: Observer = {
  request: () => NOOP_REQUEST,
  connection: () => NOOP_CONNECTION,
  breakerState() {},
  inboundRefused() {},
  metrics: async () => '',
  close: async () => {},
};
