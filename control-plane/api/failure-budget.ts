// How many refused credentials one address may present: a bootstrap token is an ES256 JWT, and checking its
// signature costs the control plane ~145 µs of CPU before it can say no. Only refusals draw on the budget, so a
// node starting a thousand sidecars with good tokens is never slowed; an address presenting bad ones is told to
// wait (429) without its next tokens being checked at all.

import { TokenBuckets } from './token-buckets.ts';

/** Refusals an address may have in a burst, and how fast the allowance comes back. */
const REFUSALS = { burst: 20, perSecond: 2 } as const;

export class FailureBudget {
  readonly #buckets: TokenBuckets;

  constructor(clock: () => number = Date.now) {
    this.#buckets = new TokenBuckets(REFUSALS, clock);
  }

  /** Whether `address` may present a credential now. */
  allows(address: string): boolean {
    return this.#buckets.allows(address);
  }

  /** `address` presented a credential that was refused. */
  refused(address: string): void {
    this.#buckets.spend(address);
  }

  /** Seconds until `address` may try again (at least 1). */
  retryAfterSeconds(address: string): number {
    return this.#buckets.retryAfterSeconds(address);
  }
}
