// The observer a sidecar runs with: every request and raw TCP connection is counted (Prometheus, on the admin
// port), logged while the Mesh config has `accessLog: true` (one JSON line) and traced while it has `tracing`. Tracing is started,
// changed and stopped as configs arrive, without resetting a counter; OpenTelemetry is loaded only then.

import { monotonicMs } from '../clock.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import { connectionRecord, requestRecord } from './access-log.ts';
import { MeshMetrics, type ConnectionLabels, type RequestSeries, type SidecarState } from './metrics.ts';
import type { BreakerState, ConnectionObservation, Direction, InboundRefusal, Observer, RequestEnd, RequestFacts, RequestObservation, RequestStart } from './observer.ts';
import { withoutUserinfo } from './redact.ts';
import { Tracing, type TraceSpan, type TracingSettings } from './tracing.ts';

export interface MeshObserverOptions {
  readonly service: string;
  readonly namespace: string;
  /** this workload's labels; they name its subset (e.g. version=v2) */
  readonly labels: Readonly<Record<string, string>>;
  /** the applied config, once there is one */
  readonly config: () => RuntimeConfig | null;
  readonly state: () => SidecarState;
  readonly log: (event: Record<string, unknown>) => void;
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const UNKNOWN_SOURCE = 'unknown';
/** How long a replaced tracer stays open for the requests that started on it. */
const RETIRE_AFTER_MS = 10_000;

/**
 * A request's facts with every field there from the start (undefined until set), so that each request's object has
 * one shape: set() then writes fields in place, where an empty object grew through a chain of shapes per request.
 */
class Facts implements RequestFacts {
  destination?: string = undefined;
  subset?: string | null = undefined;
  endpoint?: string = undefined;
  route?: string = undefined;
  retries?: number = undefined;
  retryBudgetExhausted?: boolean = undefined;
  breaker?: RequestFacts['breaker'] = undefined;
  policy?: RequestFacts['policy'] = undefined;
}

/** One request's observation: an object with its methods on the prototype, not closures per request. */
class Observation implements RequestObservation {
  readonly propagate: Readonly<Record<string, string>>;
  readonly facts: RequestFacts = new Facts();
  readonly began = monotonicMs();
  readonly start: RequestStart;
  readonly series: RequestSeries;
  readonly span: TraceSpan | null;
  #ended: ((o: Observation, outcome: RequestEnd) => void) | null;

  constructor(ended: (o: Observation, outcome: RequestEnd) => void, start: RequestStart, series: RequestSeries, span: TraceSpan | null) {
    this.#ended = ended;
    this.start = start;
    this.series = series;
    this.span = span;
    this.propagate = span?.propagate ?? NO_HEADERS;
  }

  set(more: RequestFacts): void {
    Object.assign(this.facts, more);
  }

  end(outcome: RequestEnd): void {
    const ended = this.#ended;
    if (!ended) return;
    this.#ended = null;
    ended(this, outcome);
  }
}

export class MeshObserver implements Observer {
  readonly #o: MeshObserverOptions;
  readonly #metrics: MeshMetrics;
  #tracing: Tracing | null = null;
  /** the Mesh's accessLog: off until a config says otherwise */
  #accessLog = false;
  /** the settings last asked for (JSON), so an unchanged config does not restart tracing */
  #tracingKey = 'null';
  #tracingSettled: Promise<void> = Promise.resolve();
  /** tracers replaced by a config change, waiting for their in-flight spans before they close */
  readonly #retiring = new Set<Tracing>();
  /** this workload's subset under each applied config */
  readonly #subsets = new WeakMap<RuntimeConfig, string>();
  /** requests and connections seen so far, and in progress now (what tells the sidecar it is idle: ../memory.ts) */
  activity = 0;
  inProgress = 0;

  constructor(opts: MeshObserverOptions) {
    this.#o = opts;
    this.#metrics = new MeshMetrics(opts.state);
  }

  /**
   * Follows a newly applied config: tracing as its Mesh says, and no breaker state for endpoints it no longer has.
   * The promise settles once tracing is as the config asks (see configureTracing); it never rejects.
   */
  applyConfig(config: RuntimeConfig): Promise<void> {
    this.#accessLog = config.body.mesh.accessLog === true;
    this.#metrics.pruneBreakers((service, endpoint) => config.upstreams.get(service)?.endpoints.some((e) => e.address === endpoint) ?? false);
    return this.configureTracing(config.body.mesh.tracing);
  }

  /**
   * Applies the Mesh config's tracing settings: starts, replaces or stops the tracer when they changed. The
   * returned promise settles once the change is in force; it never rejects (a tracer that cannot start is
   * logged, and requests go on untraced).
   */
  configureTracing(settings: TracingSettings | null): Promise<void> {
    const key = JSON.stringify(settings && { endpoint: settings.endpoint, sampling: settings.sampling });
    if (key === this.#tracingKey) return this.#tracingSettled;
    this.#tracingKey = key;
    this.#tracingSettled = this.#tracingSettled.then(async () => {
      let next: Tracing | null = null;
      if (settings) {
        try {
          next = await Tracing.start(settings, { resource: this.#resource(), account: this.#account() });
          this.#o.log({ msg: 'tracing on', endpoint: withoutUserinfo(settings.endpoint), sampling: settings.sampling });
        } catch (err) {
          this.#o.log({ msg: 'tracing could not start; requests go on untraced', endpoint: withoutUserinfo(settings.endpoint), error: (err as Error).message });
        }
      }
      const previous = this.#tracing;
      this.#tracing = next;
      if (!previous) return;
      if (!settings) this.#o.log({ msg: 'tracing off' });
      // Requests in flight end their spans on the tracer they started with: it is closed (and flushed) a little
      // later, so their spans still leave.
      this.#retiring.add(previous);
      setTimeout(() => void this.#retire(previous), RETIRE_AFTER_MS).unref();
    });
    return this.#tracingSettled;
  }

  request(start: RequestStart): RequestObservation {
    this.activity++;
    this.inProgress++;
    const series = this.#metrics.requestStarted({ direction: start.direction, source: start.source ?? UNKNOWN_SOURCE, service: start.service });
    const span = this.#tracing?.start(start, this.#o.config()?.self.identity ?? null) ?? null;
    return new Observation(this.#ended, start, series, span);
  }

  readonly #ended = (o: Observation, outcome: RequestEnd): void => {
    this.inProgress--;
    this.#finish(o.start, o.series, o.facts, outcome, o.span, monotonicMs() - o.began);
  };

  #finish(start: RequestStart, series: RequestSeries, facts: RequestFacts, outcome: RequestEnd, span: TraceSpan | null, ms: number): void {
    if (start.direction === 'inbound') {
      // The inbound side is the destination: its identity and subset are this workload's own.
      const config = this.#o.config();
      facts.destination ??= config?.self.identity;
      facts.subset ??= config ? this.#subsetOf(config) || null : null;
    }
    this.#metrics.requestEnded(series, facts.subset ?? '', outcome.status, outcome.reason ?? '', ms / 1000, outcome.grpcStatus);
    if (facts.policy && !facts.policy.allowed) this.#metrics.denied(facts.policy.policy ?? 'mesh-default', facts.policy.rule === null ? '' : String(facts.policy.rule));
    if (facts.retries) this.#metrics.retries(start.service, facts.subset ?? '', facts.retries);
    if (facts.retryBudgetExhausted) this.#metrics.retryBudgetExhausted(start.service);
    span?.end(facts, outcome);
    if (this.#accessLog) this.#o.log(requestRecord(start, facts, outcome, ms, span));
  }

  connection(direction: Direction, service: string, peer: string | null): ConnectionObservation {
    this.activity++;
    this.inProgress++;
    const began = monotonicMs();
    const self = this.#o.config()?.self.identity ?? null;
    // `peer` is the other end: the caller on the inbound side, the destination on the outbound side.
    const source = direction === 'inbound' ? peer : self;
    const destination = direction === 'inbound' ? self : peer;
    const labels: ConnectionLabels = { direction, source: source ?? UNKNOWN_SOURCE, service };
    this.#metrics.connectionOpened(labels);
    let received = 0;
    let sent = 0;
    let ended = false;
    return {
      bytes: (r, s) => {
        received += r;
        sent += s;
        this.#metrics.connectionBytes(labels, r, s);
      },
      end: (denied) => {
        if (ended) return;
        ended = true;
        this.inProgress--;
        this.#metrics.connectionClosed(labels);
        if (denied) this.#metrics.denied(denied.policy ?? 'mesh-default', denied.rule === null ? '' : String(denied.rule));
        if (this.#accessLog) this.#o.log(connectionRecord(direction, source, destination, service, monotonicMs() - began, received, sent));
      },
    };
  }

  breakerState(service: string, endpoint: string, state: BreakerState): void {
    this.#metrics.breakerState(service, endpoint, state);
  }

  inboundRefused(reason: InboundRefusal): void {
    this.#metrics.inboundRefused(reason);
  }

  metrics(): Promise<string> {
    return this.#metrics.text();
  }

  /** Flushes and stops tracing (bounded: a collector that is down does not hold up a shutdown). */
  async close(): Promise<void> {
    this.#tracingKey = 'closed';
    await this.#tracingSettled;
    const current = this.#tracing;
    this.#tracing = null;
    await Promise.all([current?.close(), ...[...this.#retiring].map((t) => this.#retire(t))]);
  }

  async #retire(t: Tracing): Promise<void> {
    if (!this.#retiring.delete(t)) return;
    await t.close();
  }

  #resource(): Record<string, string> {
    const r: Record<string, string> = { 'service.name': this.#o.service, 'service.namespace': this.#o.namespace };
    if (this.#o.labels.version) r['service.version'] = this.#o.labels.version;
    return r;
  }

  #account() {
    const m = this.#metrics;
    const log = this.#o.log;
    return {
      exported: (n: number) => m.spansExported(n),
      dropped: (reason: 'queue_full' | 'export_failed', n: number) => m.spansDropped(reason, n),
      unconfirmed: (n: number) => m.spansUnconfirmed(n),
      health: (error: Error | null) =>
        log(error ? { msg: 'trace export failing; spans are dropped and counted in weft_trace_spans_dropped_total', error: error.message } : { msg: 'trace export working again' }),
    };
  }

  /** The subset of its service this workload is in: the first whose labels it all carries ('' for none). */
  #subsetOf(config: RuntimeConfig): string {
    let name = this.#subsets.get(config);
    if (name === undefined) {
      const subsets = config.body.inbound.service?.subsets ?? [];
      name = subsets.find((s) => Object.entries(s.labels).every(([k, v]) => this.#o.labels[k] === v))?.name ?? '';
      this.#subsets.set(config, name);
    }
    return name;
  }
}
