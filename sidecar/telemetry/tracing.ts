// Tracing, started only when the Mesh config has `tracing`: a SERVER span for each inbound request and a CLIENT
// span for each outbound one, joined to the caller's trace and passed on to the next hop, sampled parent-based
// (a caller's decision is kept; a new trace is kept with the configured ratio), exported batched over OTLP/HTTP
// with protobuf. The request path only starts and ends spans; export happens on a timer, off that path.

import type { Attributes, Span, Tracer } from '@opentelemetry/api';
import type { TracerProvider } from '@opentelemetry/sdk-trace';
import type { RequestEnd, RequestFacts, RequestStart } from './observer.ts';
import { exportConnection } from './export-agent.ts';
import { loadOtel, type Otel } from './otel.ts';
import { AccountedBatchProcessor, type SpanAccount } from './span-queue.ts';
import { TraceContextCodec } from './trace-context.ts';

export interface TracingSettings {
  /** the collector's OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces */
  readonly endpoint: string;
  /** 0..1: the share of new traces kept */
  readonly sampling: number;
}

export interface TracingOptions {
  /** OpenTelemetry resource attributes for every span: service.name, service.namespace, service.version */
  readonly resource: Readonly<Record<string, string>>;
  readonly account: SpanAccount;
}

/** One request's span, and the headers that carry it to the next hop. */
export interface TraceSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly propagate: Readonly<Record<string, string>>;
  end(facts: RequestFacts, outcome: RequestEnd): void;
}

/**
 * Bounds of the export queue: at most 2048 spans wait in memory, and one batch of at most 512 is in flight; a batch
 * leaves every second. An export still running after 8 s has its connection destroyed (span-queue.ts), before the
 * batch processor's own 10 s would let it start another beside it.
 */
const QUEUE = { maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMillis: 1000, exportTimeoutMillis: 10_000, abortAfterMillis: 8000 };
/**
 * One export, with the exporter's own retries (on a refused connection, a timeout, 429/502/503/504), starts no
 * new attempt after this long, and each attempt times out within it.
 */
const EXPORT_TIMEOUT_MS = 5000;

/** Attributes known when a request arrives. */
export function startAttributes(start: RequestStart, self: string | null): Attributes {
  const a: Attributes = {
    'http.request.method': start.method,
    'url.path': start.path,
    'network.protocol.name': 'http',
    'network.protocol.version': start.protocol === 'http' ? '1.1' : '2',
    'weft.direction': start.direction,
    'weft.destination.service': start.service,
  };
  if (start.protocol === 'grpc') a['rpc.system'] = 'grpc';
  if (start.source) a['weft.source.identity'] = start.source;
  if (start.direction === 'inbound' && self) a['weft.destination.identity'] = self;
  return a;
}

/** Attributes learnt while the request was handled, and its outcome. */
export function endAttributes(facts: RequestFacts, outcome: RequestEnd): Attributes {
  // Set if and only if an answer was sent or received (status 0: none, the caller or the upstream went away).
  const a: Attributes = outcome.status === 0 ? {} : { 'http.response.status_code': outcome.status };
  if (facts.destination) a['weft.destination.identity'] = facts.destination;
  if (facts.subset) a['weft.destination.subset'] = facts.subset;
  if (facts.endpoint) {
    a['weft.destination.endpoint'] = facts.endpoint;
    const m = /^\[?(.*?)\]?:(\d+)$/.exec(facts.endpoint);
    if (m) {
      a['server.address'] = m[1]!;
      a['server.port'] = Number(m[2]);
    }
  }
  if (facts.route !== undefined) a['weft.route'] = facts.route;
  if (facts.retries !== undefined) a['weft.retries'] = facts.retries;
  if (facts.retryBudgetExhausted) a['weft.retry_budget_exhausted'] = true;
  if (facts.breaker) a['weft.breaker.state'] = facts.breaker;
  if (facts.policy) {
    a['weft.policy.decision'] = facts.policy.allowed ? 'allow' : 'deny';
    a['weft.policy.name'] = facts.policy.policy ?? 'mesh-default';
    if (facts.policy.rule !== null) a['weft.policy.rule'] = facts.policy.rule;
  }
  if (outcome.reason) a['weft.reason'] = outcome.reason;
  if (outcome.grpcStatus !== undefined) a['rpc.grpc.status_code'] = outcome.grpcStatus;
  return a;
}

/** gRPC statuses a server span fails on (OpenTelemetry's gRPC conventions): UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. */
const GRPC_SERVER_ERRORS = new Set([2, 4, 12, 13, 14, 15]);

/** A gRPC call fails as a client span on any status but OK, as a server span on the server-side errors above. */
export function isGrpcSpanError(direction: RequestStart['direction'], grpcStatus: number): boolean {
  return direction === 'outbound' ? grpcStatus !== 0 : GRPC_SERVER_ERRORS.has(grpcStatus);
}

/** OpenTelemetry's HTTP conventions: a server span fails on 5xx, a client span on 4xx too; 0 is no response at all. */
export function isSpanError(direction: RequestStart['direction'], status: number): boolean {
  return status === 0 || status >= 500 || (direction === 'outbound' && status >= 400);
}

/**
 * A failed span's `error.type` (a low-cardinality cause): the status code when there was an answer (a gRPC call's
 * grpc-status for a gRPC failure), else the mesh's reason, else `_OTHER`, the conventions' fallback.
 */
export function errorType(outcome: RequestEnd, grpcFailed: boolean): string {
  if (grpcFailed) return String(outcome.grpcStatus);
  if (outcome.status !== 0) return String(outcome.status);
  return outcome.reason ?? '_OTHER';
}

export class Tracing {
  readonly #otel: Otel;
  readonly #provider: TracerProvider;
  readonly #tracer: Tracer;
  readonly #codec: TraceContextCodec;

  /** Loads OpenTelemetry (on first use) and starts a tracer that exports to `settings.endpoint`. */
  static async start(settings: TracingSettings, opts: TracingOptions): Promise<Tracing> {
    return new Tracing(await loadOtel(), settings, opts);
  }

  private constructor(otel: Otel, settings: TracingSettings, opts: TracingOptions) {
    this.#otel = otel;
    // One export at a time (span-queue.ts sees to it), on one connection of ours, so that a late export can be cut
    // off. The exporter's own limit is 2, not 1: it lets go of an export a microtask after reporting it, and the
    // batch processor may start the next in between; at 1 that batch would be refused unsent.
    const connection = exportConnection(otel);
    const exporter = new otel.exporter.OTLPTraceExporter({ url: settings.endpoint, timeoutMillis: EXPORT_TIMEOUT_MS, concurrencyLimit: 2, httpAgentOptions: connection.factory });
    this.#provider = new otel.sdk.TracerProvider({
      resource: otel.resources.resourceFromAttributes(opts.resource),
      sampler: new otel.sdk.ParentBasedSampler({ root: new otel.sdk.TraceIdRatioBasedSampler(settings.sampling) }),
      spanProcessors: [new AccountedBatchProcessor(otel, exporter, QUEUE, opts.account, connection)],
      spanLimits: { attributeValueLengthLimit: 1024, attributeCountLimit: 64 },
    });
    this.#tracer = this.#provider.getTracer('weft-sidecar');
    this.#codec = new TraceContextCodec(otel);
  }

  /** Starts the span for a request, as a child of the caller's context (or a new trace when it sent none). */
  start(start: RequestStart, self: string | null): TraceSpan {
    const { trace, SpanKind, SpanStatusCode } = this.#otel.api;
    const { parent, b3 } = this.#codec.extract(start.header);
    const kind = start.direction === 'inbound' ? SpanKind.SERVER : SpanKind.CLIENT;
    const span: Span = this.#tracer.startSpan(`${start.method} ${start.service}`, { kind, attributes: startAttributes(start, self) }, parent);
    const { traceId, spanId } = span.spanContext();
    return {
      traceId,
      spanId,
      propagate: this.#codec.inject(trace.setSpan(parent, span), b3, trace.getSpanContext(parent)?.spanId),
      end(facts, outcome) {
        span.setAttributes(endAttributes(facts, outcome));
        if (isSpanError(start.direction, outcome.status)) {
          span.setAttribute('error.type', errorType(outcome, false));
          span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.reason ?? (outcome.status === 0 ? 'no answer' : `HTTP ${outcome.status}`) });
        } else if (outcome.grpcStatus !== undefined && isGrpcSpanError(start.direction, outcome.grpcStatus)) {
          span.setAttribute('error.type', errorType(outcome, true));
          span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.reason ?? `gRPC status ${outcome.grpcStatus}` });
        }
        span.end();
      },
    };
  }

  /** Sends what is queued (waiting at most `timeoutMs`) and stops. */
  async close(timeoutMs = 2000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#provider.shutdown().catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
}
