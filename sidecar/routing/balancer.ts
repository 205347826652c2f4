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
