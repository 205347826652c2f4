// Resilience state that outlives config pushes: endpoint health (breakers, EWMA), retry budgets and pending
// counts per upstream. A push re-tunes it; endpoints that left the config are dropped.

import type { RuntimeConfig, UpstreamRuntime } from '../config/runtime.ts';
import { EndpointHealth, type BreakerState } from './endpoint-health.ts';
import { RetryBudget } from './retry-budget.ts';

export class ResilienceState {
  readonly #endpoints = new Map<string, { health: EndpointHealth; config: string }>();
  readonly #budgets = new Map<string, RetryBudget>();
  readonly #pending = new Map<string, number>();
  /** each applied upstream's breaker settings as a string to compare: made once per push, not per request */
  readonly #breakerKeys = new WeakMap<UpstreamRuntime, string>();
  readonly #onBreaker: (service: string, endpoint: string, state: BreakerState) => void;

  constructor(opts: { onBreaker?: (service: string, endpoint: string, state: BreakerState) => void } = {}) {
    this.#onBreaker = opts.onBreaker ?? (() => {});
  }

  endpoint(upstream: UpstreamRuntime, address: string): EndpointHealth {
    const key = `${upstream.key}|${address}`;
    let config = this.#breakerKeys.get(upstream);
    if (config === undefined) this.#breakerKeys.set(upstream, (config = JSON.stringify(upstream.trafficPolicy?.circuitBreaker ?? null)));
    const have = this.#endpoints.get(key);
    if (have && have.config === config) return have.health;
    const breaker = upstream.trafficPolicy?.circuitBreaker ?? null;
    have?.health.shutdown();
    const health = new EndpointHealth(address, breaker, (state) => this.#onBreaker(upstream.key, address, state));
    this.#endpoints.set(key, { health, config });
    return health;
  }

  /** The endpoints whose breaker lets a request through, preferring those not `tried` yet by this request. */
  available(upstream: UpstreamRuntime, endpoints: readonly { readonly address: string }[], tried: ReadonlySet<string> | null = null): EndpointHealth[] {
    if (endpoints.length === 1) {
      // The common case, without the filtering below.
      const health = this.endpoint(upstream, endpoints[0]!.address);
      return health.available ? [health] : [];
    }
    const open = endpoints.map((e) => this.endpoint(upstream, e.address)).filter((h) => h.available);
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
    const live = new Set<string>();
    for (const u of config.upstreams.values()) for (const e of u.endpoints) live.add(`${u.key}|${e.address}`);
    for (const [key, { health }] of this.#endpoints) {
      if (live.has(key)) continue;
      health.shutdown();
      this.#endpoints.delete(key);
    }
  }
}
