// What the outbound side knows about each peer endpoint across config pushes: its circuit breaker (opossum),
// consecutive failures, an EWMA of its latency and its requests in flight, for balancing and ejection.
//
// Outlier detection (a TrafficPolicy's outlierDetection), as Envoy's consecutive_5xx: after that many failures in
// a row (5xx answers, connect failures, resets, timeouts) the endpoint is ejected for baseEjectionTime times the
// number of its ejections (at most 300 s, or the base if longer); every `interval` without an ejection takes one
// off that count. Which endpoints stay out is ResilienceState's call (maxEjectionPercent; never all of them).

import { monotonicMs } from '../clock.ts';
import CircuitBreaker from 'opossum';
import type { CircuitBreakerConfig, OutlierDetectionConfig } from '../../control-plane/config/types.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** A failure the breaker counts: a connection error, a reset, or a 5xx answer. */
export class UpstreamFailure extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * The caller went away before its call was over: it says nothing about the endpoint, so neither the breaker nor
 * outlier detection counts it (as Envoy's outlier detection ignores a downstream reset), nor its latency the EWMA.
 */
export class CallerGone extends Error {
  readonly code = 'WEFT_CALLER_GONE';
}

/** Outcomes that say nothing about the endpoint: refused by its own open breaker (not tried), or abandoned by the caller. */
function inconclusive(err: Error | null): boolean {
  return err instanceof CallerGone || (err as (Error & { code?: string }) | null)?.code === 'EOPENBREAKER';
}

const EWMA_ALPHA = 0.3;

export class EndpointHealth {
  readonly address: string;
  readonly breaker: CircuitBreaker | null;
  readonly #config: CircuitBreakerConfig | null;
  #consecutive = 0;
  ewmaMs = 0;
  inFlight = 0;
  /** this endpoint as the only candidate (ResilienceState.available's common case, with no array per request) */
  readonly alone: readonly EndpointHealth[] = Object.freeze([this]);
  readonly outlier: OutlierDetectionConfig | null;
  #outlierFailures = 0;
  #ejections = 0;
  /** monotonic ms until which outlier detection keeps this endpoint out; 0 when it never was */
  ejectedUntil = 0;
  readonly #onEjected: (ms: number) => void;

  constructor(address: string, config: CircuitBreakerConfig | null, onState: (state: BreakerState) => void, outlier: OutlierDetectionConfig | null = null, onEjected: (ms: number) => void = () => {}) {
    this.address = address;
    this.#config = config;
    this.outlier = outlier;
    this.#onEjected = onEjected;
    if (!config) {
      this.breaker = null;
      return;
    }
    // The action is passed per call (fire(fn)), so one breaker guards every request to this endpoint.
    this.breaker = new CircuitBreaker(async (fn: () => Promise<unknown>) => fn(), {
      errorThresholdPercentage: config.errorThresholdPercentage,
      volumeThreshold: config.volumeThreshold,
      resetTimeout: config.resetTimeoutMs,
      rollingCountTimeout: 10_000,
      rollingCountBuckets: 10,
      timeout: false,
      // Not a failure, and so (to opossum) a success; but an abandoned trial closes nothing: see 'failure' below.
      errorFilter: (err: Error) => err instanceof CallerGone && !this.breaker!.halfOpen,
    });
    this.breaker.on('open', () => onState('open'));
    this.breaker.on('halfOpen', () => onState('half-open'));
    // opossum reads options.resetTimeout each time it opens; its typings do not declare `options`.
    const options = (this.breaker as unknown as { options: { resetTimeout: number } }).options;
    this.breaker.on('close', () => {
      // Recovered: the next trip waits the base reset time again.
      options.resetTimeout = config.resetTimeoutMs;
      onState('closed');
    });
    this.breaker.on('failure', (err: Error) => {
      // A failed trial while half-open reopens the breaker (opossum emits 'failure' first): back off,
      // doubling the wait up to maxResetTimeout. A trial its caller abandoned reopens it for another trial
      // after the same wait.
      if (this.breaker!.halfOpen && !(err instanceof CallerGone)) options.resetTimeout = Math.min(config.maxResetTimeoutMs, options.resetTimeout * 2);
    });
  }

  get state(): BreakerState {
    if (!this.breaker) return 'closed';
    return this.breaker.opened ? 'open' : this.breaker.halfOpen ? 'half-open' : 'closed';
  }

  /**
   * May take traffic: closed, or half-open with its one trial not yet taken (opossum refuses every other call
   * until the trial settles, so offering the endpoint then only earns callers an EOPENBREAKER).
   */
  get available(): boolean {
    if (!this.breaker) return true;
    return this.breaker.halfOpen ? this.breaker.pendingClose : !this.breaker.opened;
  }

  /** Runs one attempt under the breaker. `attempt` throws UpstreamFailure for what counts as a failure. */
  async run<T>(attempt: () => Promise<T>): Promise<T> {
    const started = this.#begin();
    try {
      const result = this.breaker ? ((await this.breaker.fire(attempt)) as T) : await attempt();
      this.#settle(started, null);
      return result;
    } catch (err) {
      this.#settle(started, err as Error);
      throw err;
    }
  }

  /**
   * run() in callback style, for the HTTP/1 path every request takes: `attempt` calls its `settled` once, with
   * an UpstreamFailure for what counts as a failure; then `done` is called with the same outcome. Without a
   * breaker no promise is made.
   */
  runCallback(attempt: (settled: (err: Error | null) => void) => void, done: (err: Error | null) => void): void {
    if (this.breaker) {
      this.run(() => new Promise<void>((resolve, reject) => attempt((err) => (err ? reject(err) : resolve())))).then(() => done(null), done);
      return;
    }
    const started = this.#begin();
    attempt((err) => {
      this.#settle(started, err);
      done(err);
    });
  }

  #begin(): number {
    this.inFlight++;
    return monotonicMs();
  }

  /** Outlier detection has this endpoint out now. */
  get ejected(): boolean {
    return this.ejectedUntil !== 0 && this.ejectedUntil > monotonicMs();
  }

  #outlierSettle(od: OutlierDetectionConfig, err: Error | null, now: number): void {
    if (!err) {
      this.#outlierFailures = 0;
      return;
    }
    if (++this.#outlierFailures < od.consecutive5xx || this.ejectedUntil > now) return;
    this.#outlierFailures = 0;
    if (this.ejectedUntil !== 0) this.#ejections = Math.max(0, this.#ejections - Math.floor((now - this.ejectedUntil) / od.intervalMs));
    this.#ejections++;
    const ms = Math.min(od.baseEjectionTimeMs * this.#ejections, Math.max(300_000, od.baseEjectionTimeMs));
    this.ejectedUntil = now + ms;
    this.#onEjected(ms);
  }

  #settle(started: number, err: Error | null): void {
    this.inFlight--;
    if (inconclusive(err)) return;
    const now = monotonicMs();
    const ms = now - started;
    this.ewmaMs = this.ewmaMs === 0 ? ms : this.ewmaMs * (1 - EWMA_ALPHA) + ms * EWMA_ALPHA;
    if (this.outlier) this.#outlierSettle(this.outlier, err, now);
    if (!err) {
      this.#consecutive = 0;
      return;
    }
    if (err instanceof UpstreamFailure || !this.breaker) {
      this.#consecutive++;
      if (this.#config && this.#consecutive >= this.#config.consecutiveFailures && this.breaker && !this.breaker.opened) this.breaker.open();
    }
  }

  shutdown(): void {
    this.breaker?.shutdown();
  }
}
