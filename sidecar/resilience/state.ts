// Resilience state that outlives config pushes: endpoint health (breakers, EWMA), retry budgets and pending
// counts per upstream. A push re-tunes it; endpoints that left the config are dropped.

import type { RuntimeConfig, UpstreamRuntime } from '../config/runtime.ts';
import { EndpointHealth, type BreakerState } from './endpoint-health.ts';
import { RetryBudget } from './retry-budget.ts';

const NONE: readonly EndpointHealth[] = Object.freeze([]);

/**
 * `open` without the endpoints outlier detection ejected: at most maxEjectionPercent of the service's endpoints
 * (at least one, as Envoy), the earliest ejected first; and never all of them (with none left, all are used, as
 * Envoy's panic mode: a lone endpoint is never ejected).
 */
function withoutOutliers(open: EndpointHealth[], total: number, maxEjectionPercent: number): EndpointHealth[] {
  const out = open.filter((h) => h.ejected);
  if (out.length === 0) return open;
  const cap = Math.max(1, Math.floor((total * maxEjectionPercent) / 100));
  const kept = new Set(out.sort((a, b) => a.ejectedUntil - b.ejectedUntil).slice(0, cap));
  const left = open.filter((h) => !kept.has(h));
  return left.length ? left : open;
}

export class ResilienceState {
  /** upstream key → endpoint address → its health: keyed by the config's own strings, with no key built per request */
  readonly #endpoints = new Map<string, Map<string, { health: EndpointHealth; config: string }>>();
  readonly #budgets = new Map<string, RetryBudget>();
  readonly #pending = new Map<string, number>();
  /** each applied upstream's breaker settings as a string to compare: made once per push, not per request */
  readonly #breakerKeys = new WeakMap<UpstreamRuntime, string>();
  readonly #onBreaker: (service: string, endpoint: string, state: BreakerState) => void;
  readonly #onEjected: (service: string, endpoint: string, ms: number) => void;

  constructor(opts: { onBreaker?: (service: string, endpoint: string, state: BreakerState) => void; onEjected?: (service: string, endpoint: string, ms: number) => void } = {}) {
    this.#onBreaker = opts.onBreaker ?? (() => {});
    this.#onEjected = opts.onEjected ?? (() => {});
  }

  endpoint(upstream: UpstreamRuntime, address: string): EndpointHealth {
    let config = this.#breakerKeys.get(upstream);
    if (config === undefined) this.#breakerKeys.set(upstream, (config = JSON.stringify([upstream.trafficPolicy?.circuitBreaker ?? null, upstream.trafficPolicy?.outlierDetection ?? null])));
    let byAddress = this.#endpoints.get(upstream.key);
    if (!byAddress) this.#endpoints.set(upstream.key, (byAddress = new Map()));
    const have = byAddress.get(address);
    if (have && have.config === config) return have.health;
    const breaker = upstream.trafficPolicy?.circuitBreaker ?? null;
    have?.health.shutdown();
    const health = new EndpointHealth(address, breaker, (state) => this.#onBreaker(upstream.key, address, state), upstream.trafficPolicy?.outlierDetection ?? null, (ms) => this.#onEjected(upstream.key, address, ms));
    byAddress.set(address, { health, config });
    return health;
  }

  /** The endpoints whose breaker lets a request through, preferring those not `tried` yet by this request. */
  available(upstream: UpstreamRuntime, endpoints: readonly { readonly address: string }[], tried: ReadonlySet<string> | null = null): readonly EndpointHealth[] {
    if (endpoints.length === 1) {
      // The common case, without the filtering below.
      const health = this.endpoint(upstream, endpoints[0]!.address);
      return health.available ? health.alone : NONE;
    }
    let open = endpoints.map((e) => this.endpoint(upstream, e.address)).filter((h) => h.available);
    const od = upstream.trafficPolicy?.outlierDetection;
    if (od) open = withoutOutliers(open, endpoints.length, od.maxEjectionPercent);
    const fresh = tried ? open.filter((h) => !tried.has(h.address)) : open;
    return fresh.length ? fresh : open;
  }

  budget(upstream: UpstreamRuntime, percent: number, minPerSecond: number): RetryBudget {
    let b = this.#budgets.get(upstream.key);
    if (!b) this.#budgets.set(upstream.key, (b = new RetryBudget({ percent, minPerSecond })));
    b.percent = percent;
    b.minPerSecond = minPerSecond;
    return b;
  }

  /** Counts a request waiting on or using `upstream`; false (and nothing counted) when the limit is reached. */
  enter(upstream: UpstreamRuntime): boolean {
    const limit = upstream.trafficPolicy?.connectionPool.maxPendingRequests ?? Infinity;
    const n = this.#pending.get(upstream.key) ?? 0;
    if (n >= limit) return false;
    this.#pending.set(upstream.key, n + 1);
    return true;
  }

  leave(upstream: UpstreamRuntime): void {
    this.#pending.set(upstream.key, Math.max(0, (this.#pending.get(upstream.key) ?? 1) - 1));
  }

  /** After a push: forget endpoints that are no longer in any upstream. */
  prune(config: RuntimeConfig): void {
    for (const [key, byAddress] of this.#endpoints) {
      const live = new Set(config.upstreams.get(key)?.endpoints.map((e) => e.address));
      for (const [address, { health }] of byAddress) {
        if (live.has(address)) continue;
        health.shutdown();
        byAddress.delete(address);
      }
      if (byAddress.size === 0) this.#endpoints.delete(key);
    }
  }
}
