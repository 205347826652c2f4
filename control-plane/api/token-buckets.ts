// One token bucket per key (an address, a certificate serial): how the control plane tells a caller to wait.

export interface TokenBucketRate {
  /** tokens a key may spend at once */
  readonly burst: number;
  /** tokens a key gets back per second, up to `burst` */
  readonly perSecond: number;
}

/** Past this many keys tracked, those with a full bucket again are forgotten. */
const PRUNE_AT = 10_000;

export class TokenBuckets {
  readonly #left = new Map<string, { tokens: number; at: number }>();
  readonly #rate: TokenBucketRate;
  readonly #clock: () => number;

  constructor(rate: TokenBucketRate, clock: () => number = Date.now) {
    if (!(rate.burst >= 1) || !(rate.perSecond > 0)) throw new RangeError(`a token bucket needs burst >= 1 and perSecond > 0 (got ${rate.burst}, ${rate.perSecond})`);
    this.#rate = rate;
    this.#clock = clock;
  }

  /** Whether `key` has a token to spend now. */
  allows(key: string): boolean {
    return this.#refilled(key) >= 1;
  }

  /** Spends one of `key`'s tokens (down to zero: a spend past an empty bucket is not remembered as debt). */
  spend(key: string): void {
    const tokens = this.#refilled(key);
    this.#left.set(key, { tokens: Math.max(0, tokens - 1), at: this.#clock() });
    if (this.#left.size > PRUNE_AT) {
      for (const k of [...this.#left.keys()]) if (this.#refilled(k) >= this.#rate.burst) this.#left.delete(k);
    }
  }

  /** Whole seconds until `key` has a token again (at least 1), for a Retry-After header. */
  retryAfterSeconds(key: string): number {
    return Math.max(1, Math.ceil((1 - this.#refilled(key)) / this.#rate.perSecond));
  }

  #refilled(key: string): number {
    const entry = this.#left.get(key);
    if (!entry) return this.#rate.burst;
    const now = this.#clock();
    entry.tokens = Math.min(this.#rate.burst, entry.tokens + ((now - entry.at) / 1000) * this.#rate.perSecond);
    entry.at = now;
    return entry.tokens;
  }
}
