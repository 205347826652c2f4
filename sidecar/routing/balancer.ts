// Choosing an endpoint of a subset: round robin over the endpoints whose labels match.

import type { Endpoint } from '../../control-plane/registry.ts';
import type { Subset } from '../../control-plane/config/types.ts';

export function inSubset(endpoint: Endpoint, subset: Subset | null): boolean {
  if (!subset) return true;
  for (const [k, v] of Object.entries(subset.labels)) if (endpoint.labels[k] !== v) return false;
  return true;
}

export class RoundRobin {
  #next = 0;

  pick<T>(items: readonly T[]): T | undefined {
    if (items.length === 0) return undefined;
    const item = items[this.#next % items.length];
    this.#next = (this.#next + 1) % 1_000_000_007;
    return item;
  }
}

interface Weighed {
  readonly ewmaMs: number;
  readonly inFlight: number;
}

/**
 * Power of two choices over a latency EWMA (as Linkerd balances): two random candidates, the one with the
 * lower expected cost (latency × (requests in flight + 1)) wins. Unmeasured endpoints cost nothing, so new
 * ones get traffic at once.
 */
export function pickP2c<T extends Weighed>(items: readonly T[], random: () => number = Math.random): T | undefined {
  if (items.length <= 1) return items[0];
  const a = items[Math.floor(random() * items.length)]!;
  let b = items[Math.floor(random() * (items.length - 1))]!;
  if (b === a) b = items[items.length - 1]!;
  const cost = (x: T) => x.ewmaMs * (x.inFlight + 1);
  return cost(b) < cost(a) ? b : a;
}
