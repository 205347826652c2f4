// The sidecar's Prometheus metrics: one registry per sidecar (../../prometheus.ts), scraped on the
// admin port's /metrics.
//
// Label values come only from config and verified identities (service keys, subset names, endpoint addresses,
// SPIFFE IDs from certificates, policy names, status codes), never from a request's path or headers, so the
// number of series is bounded by the size of the mesh, not by its traffic.

import { Counter, Gauge, Histogram, Registry, type CounterChild, type GaugeChild, type HistogramChild } from '../../prometheus.ts';
import type { BreakerState, Direction, InboundRefusal } from './observer.ts';

/** What the sidecar itself reports: read at scrape time. */
export interface SidecarState {
  readonly ready: boolean;
  readonly configVersion: number | null;
  /** when the workload certificate expires */
  readonly certificateNotAfter: Date | null;
}

/** The children one (direction, caller, service) counts its requests in. */
interface Outcome {
  readonly count: CounterChild;
  readonly duration: HistogramChild;
}

export interface RequestSeries {
  readonly labels: { readonly direction: Direction; readonly source_identity: string; readonly destination_service: string };
  readonly inFlight: GaugeChild;
  readonly outcomes: Map<string, Outcome>;
  /** the outcome counted last, and what it was for: most requests end as the one before */
  last: { readonly subset: string; readonly status: number; readonly reason: string; readonly grpcStatus: number | undefined; readonly outcome: Outcome } | null;
}

export interface ConnectionLabels {
  readonly direction: Direction;
  readonly source: string;
  readonly service: string;
}

/** Request latency buckets, in seconds: sub-millisecond proxying up to slow calls. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half-open'];

/**
 * The status codes a status_code label shows as themselves: the ones registered with IANA (RFC 9110 and
 * kin). Any other an app makes up (299, 599, 777) is its class, "2xx" or "5xx", so that one app cannot grow a
 * series per number it sends.
 */
const REGISTERED = [100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308,
  ...Array.from({ length: 19 }, (_, i) => 400 + i), 421, 422, 423, 424, 425, 426, 428, 429, 431, 451,
  500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511];
const STATUS_TEXT = new Map(REGISTERED.map((s) => [s, String(s)]));

/** The status_code label: a registered status as itself, 0 (no answer) as "0", any other by its class ("5xx"). */
function statusLabel(status: number): string {
  return STATUS_TEXT.get(status) ?? (status < 100 ? String(status) : `${Math.floor(status / 100)}xx`);
}

export class MeshMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'direction' | 'source_identity' | 'destination_service' | 'destination_subset' | 'status_code' | 'grpc_status' | 'mesh_reason'>;
  readonly #duration: Histogram<'direction' | 'source_identity' | 'destination_service' | 'destination_subset' | 'status_code'>;
  readonly #inFlight: Gauge<'direction' | 'source_identity' | 'destination_service'>;
  readonly #tcpOpened: Counter<'direction' | 'source_identity' | 'destination_service'>;
  readonly #tcpClosed: Counter<'direction' | 'source_identity' | 'destination_service'>;
  readonly #tcpReceived: Counter<'direction' | 'source_identity' | 'destination_service'>;
  readonly #tcpSent: Counter<'direction' | 'source_identity' | 'destination_service'>;
  readonly #breaker: Gauge<'destination_service' | 'endpoint' | 'state'>;
  readonly #retries: Counter<'destination_service' | 'destination_subset'>;
  readonly #budgetExhausted: Counter<'destination_service'>;
  readonly #denials: Counter<'policy' | 'rule'>;
  readonly #inboundRefused: Counter<'reason'>;
  readonly #spansExported: Counter;
  readonly #spansDropped: Counter<'reason'>;
  readonly #spansUnconfirmed: Counter;
  /** the endpoints whose breaker state is reported, by "service|endpoint" */
  readonly #breakers = new Map<string, { service: string; endpoint: string }>();

  constructor(state: () => SidecarState) {
    const registry = this.registry;
    const request = ['direction', 'source_identity', 'destination_service', 'destination_subset', 'status_code'] as const;
    const requestCount = [...request, 'grpc_status', 'mesh_reason'] as const;
    const connection = ['direction', 'source_identity', 'destination_service'] as const;
    this.#requests = new Counter({
      name: 'weft_requests_total',
      help: 'HTTP requests and gRPC calls handled, by direction, caller identity, destination service and subset, status code, gRPC status, and the reason when the mesh answered itself.',
      labelNames: requestCount,
      registry,
    });
    this.#duration = new Histogram({ name: 'weft_request_duration_seconds', help: 'Time from the request arriving at the sidecar to the end of its response.', labelNames: request, buckets: LATENCY_BUCKETS, registry });
    this.#inFlight = new Gauge({ name: 'weft_requests_in_flight', help: 'Requests the sidecar is handling now.', labelNames: connection, registry });
    this.#tcpOpened = new Counter({ name: 'weft_tcp_connections_opened_total', help: 'Raw TCP connections proxied, opened.', labelNames: connection, registry });
    this.#tcpClosed = new Counter({ name: 'weft_tcp_connections_closed_total', help: 'Raw TCP connections proxied, closed.', labelNames: connection, registry });
    this.#tcpReceived = new Counter({ name: 'weft_tcp_received_bytes_total', help: 'Bytes received from the side that opened a raw TCP connection.', labelNames: connection, registry });
    this.#tcpSent = new Counter({ name: 'weft_tcp_sent_bytes_total', help: 'Bytes sent back to the side that opened a raw TCP connection.', labelNames: connection, registry });
    this.#breaker = new Gauge({ name: 'weft_circuit_breaker_state', help: 'Circuit breaker state per upstream endpoint: 1 for the current state, 0 for the others.', labelNames: ['destination_service', 'endpoint', 'state'], registry });
    this.#retries = new Counter({ name: 'weft_retries_total', help: 'Retry attempts made for outbound requests.', labelNames: ['destination_service', 'destination_subset'], registry });
    this.#budgetExhausted = new Counter({ name: 'weft_retry_budget_exhausted_total', help: 'Retries not made because the retry budget was used up.', labelNames: ['destination_service'], registry });
    this.#denials = new Counter({ name: 'weft_policy_denials_total', help: 'Inbound requests denied by authorization policy, by deciding policy ("mesh-default" for the default policy) and rule index.', labelNames: ['policy', 'rule'], registry });
    this.#inboundRefused = new Counter({ name: 'weft_inbound_connections_refused_total', help: 'Inbound connections closed as they arrived, before any handshake: per_address_limit, the remote address already held as many open as --max-inbound-connections-per-address allows.', labelNames: ['reason'], registry });
    this.#inboundRefused.inc({ reason: 'per_address_limit' }, 0); // (0 from the start: a rate is 0, not empty)
    this.#spansExported = new Counter({ name: 'weft_trace_spans_exported_total', help: 'Spans accepted by the trace collector.', registry });
    this.#spansDropped = new Counter({ name: 'weft_trace_spans_dropped_total', help: 'Spans lost: the export queue was full (collector slow or down), or the collector refused or never answered an export.', labelNames: ['reason'], registry });
    // Both reasons exist from the start, so `rate(weft_trace_spans_dropped_total[5m])` is 0, not empty.
    for (const reason of ['queue_full', 'export_failed']) this.#spansDropped.inc({ reason }, 0);
    this.#spansUnconfirmed = new Counter({ name: 'weft_trace_spans_unconfirmed_total', help: 'Spans of exports the trace collector received and did not answer in time: it may or may not have kept them.', registry });
    new Gauge({
      name: 'weft_ready',
      help: 'Whether the sidecar is ready (certificate and config in hand, listeners up).',
      registry,
      collect: (g) => g.set(undefined, state().ready ? 1 : 0),
    });
    new Gauge({
      name: 'weft_config_version',
      help: 'Version of the applied config snapshot (-1 before the first).',
      registry,
      collect: (g) => g.set(undefined, state().configVersion ?? -1),
    });
    new Gauge({
      name: 'weft_certificate_expiry_timestamp_seconds',
      help: 'When the workload certificate expires, as a Unix time (0 before the first certificate).',
      registry,
      collect: (g) => {
        const notAfter = state().certificateNotAfter;
        g.set(undefined, notAfter ? Math.floor(notAfter.getTime() / 1000) : 0);
      },
    });
    // Two process gauges (prom-client's default set has gauges ending in _total, which `promtool check
    // metrics` rejects, and event-loop and GC monitors that cost memory).
    new Gauge({
      name: 'process_resident_memory_bytes',
      help: 'Resident memory size of the sidecar process in bytes.',
      registry,
      collect: (g) => g.set(undefined, process.memoryUsage.rss()),
    });
    new Gauge({ name: 'process_start_time_seconds', help: 'When the sidecar process started, as a Unix time.', registry }).set(undefined, Math.round(Date.now() / 1000 - process.uptime()));
  }

  text(): Promise<string> {
    return Promise.resolve(this.registry.metrics());
  }

  // The request series of one (direction, caller, service), found once per request through a map per label,
  // keyed by strings that last (the config's, the peer's identity), whose hashes V8 keeps: a key joined per request
  // was a new string to flatten and hash every time. Within a series, one counter and one histogram child per
  // (subset, status, reason). Label values are bounded, so are these.
  readonly #series = new Map<Direction, Map<string, Map<string, RequestSeries>>>();

  /** The series a request with these labels is counted in; pass it to requestEnded. */
  requestStarted(l: ConnectionLabels): RequestSeries {
    let bySource = this.#series.get(l.direction);
    if (!bySource) this.#series.set(l.direction, (bySource = new Map()));
    let byService = bySource.get(l.source);
    if (!byService) bySource.set(l.source, (byService = new Map()));
    let series = byService.get(l.service);
    if (!series) {
      const labels = { direction: l.direction, source_identity: l.source, destination_service: l.service };
      series = { labels, inFlight: this.#inFlight.labels(labels), outcomes: new Map(), last: null };
      byService.set(l.service, series);
    }
    series.inFlight.inc();
    return series;
  }

  requestEnded(series: RequestSeries, subset: string, status: number, reason: string, seconds: number, grpcStatus?: number): void {
    series.inFlight.dec();
    const last = series.last;
    if (last !== null && last.status === status && last.subset === subset && last.reason === reason && last.grpcStatus === grpcStatus) {
      last.outcome.count.inc();
      last.outcome.duration.observe(seconds);
      return;
    }
    const code = statusLabel(status);
    // gRPC's 17 codes (0 OK); anything else a server sends is 2, UNKNOWN, as gRPC reads it.
    const grpc = grpcStatus === undefined ? '' : Number.isInteger(grpcStatus) && grpcStatus >= 0 && grpcStatus <= 16 ? String(grpcStatus) : '2';
    const key = `${subset}\0${code}\0${reason}\0${grpc}`;
    let outcome = series.outcomes.get(key);
    if (!outcome) {
      const labels = { ...series.labels, destination_subset: subset, status_code: code };
      outcome = { count: this.#requests.labels({ ...labels, grpc_status: grpc, mesh_reason: reason }), duration: this.#duration.labels(labels) };
      series.outcomes.set(key, outcome);
    }
    series.last = { subset, status, reason, grpcStatus, outcome };
    outcome.count.inc();
    outcome.duration.observe(seconds);
  }

  connectionOpened(l: ConnectionLabels): void {
    this.#tcpOpened.inc({ direction: l.direction, source_identity: l.source, destination_service: l.service });
  }

  connectionBytes(l: ConnectionLabels, received: number, sent: number): void {
    const labels = { direction: l.direction, source_identity: l.source, destination_service: l.service };
    if (received > 0) this.#tcpReceived.inc(labels, received);
    if (sent > 0) this.#tcpSent.inc(labels, sent);
  }

  connectionClosed(l: ConnectionLabels): void {
    this.#tcpClosed.inc({ direction: l.direction, source_identity: l.source, destination_service: l.service });
  }

  breakerState(service: string, endpoint: string, state: BreakerState): void {
    this.#breakers.set(`${service}|${endpoint}`, { service, endpoint });
    for (const s of BREAKER_STATES) this.#breaker.set({ destination_service: service, endpoint, state: s }, s === state ? 1 : 0);
  }

  /** Stops reporting the breakers of endpoints that left the config (so the series do not outlive them). */
  pruneBreakers(live: (service: string, endpoint: string) => boolean): void {
    for (const [key, { service, endpoint }] of this.#breakers) {
      if (live(service, endpoint)) continue;
      this.#breakers.delete(key);
      for (const s of BREAKER_STATES) this.#breaker.remove({ destination_service: service, endpoint, state: s });
    }
  }

  retries(service: string, subset: string, n: number): void {
    this.#retries.inc({ destination_service: service, destination_subset: subset }, n);
  }

  retryBudgetExhausted(service: string): void {
    this.#budgetExhausted.inc({ destination_service: service });
  }

  denied(policy: string, rule: string): void {
    this.#denials.inc({ policy, rule });
  }

  inboundRefused(reason: InboundRefusal): void {
    this.#inboundRefused.inc({ reason });
  }

  spansExported(n: number): void {
    this.#spansExported.inc(undefined, n);
  }

  spansDropped(reason: 'queue_full' | 'export_failed', n: number): void {
    this.#spansDropped.inc({ reason }, n);
  }

  spansUnconfirmed(n: number): void {
    this.#spansUnconfirmed.inc(undefined, n);
  }
}
