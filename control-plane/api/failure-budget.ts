// How many refused credentials one address may present: a bootstrap token is an ES256 JWT, and checking its
// signature costs the control plane ~145 µs of CPU before it can say no. Only refusals draw on the budget, so a
// node starting a thousand sidecars with good tokens is never slowed; an address presenting bad ones is told to
// wait (429) without its next tokens being checked at all.

/** Refusals an address may have in a burst, and how fast the allowance comes back. */
const BURST = 20;
const PER_SECOND = 2;
/** Past this many addresses tracked, those with a full allowance again are forgotten. */
const PRUNE_AT = 10_000;

export class FailureBudget {
  readonly #left = new Map<string, { tokens: number; at: number }>();
  readonly #clock: () => number;

  constructor(clock: () => number = Date.now) {
    this.#clock = clock;
  }

  /** Whether `address` may present a credential now. */
  allows(address: string): boolean {
    return this.#refilled(address) >= 1;
  }

  /** `address` presented a credential that was refused. */
  refused(address: string): void {
    const tokens = this.#refilled(address);
    this.#left.set(address, { tokens: Math.max(0, tokens - 1), at: this.#clock() });
    if (this.#left.size > PRUNE_AT) {
      for (const key of [...this.#left.keys()]) if (this.#refilled(key) >= BURST) this.#left.delete(key);
    }
  }

  /** Seconds until `address` may try again (at least 1). */
  retryAfterSeconds(address: string): number {
    return Math.max(1, Math.ceil((1 - this.#refilled(address)) / PER_SECOND));
  }

  #refilled(address: string): number {
    const entry = this.#left.get(address);
    if (!entry) return BURST;
    const now = this.#clock();
    entry.tokens = Math.min(BURST, entry.tokens + ((now - entry.at) / 1000) * PER_SECOND);
    entry.at = now;
    return entry.tokens;
  }
}
