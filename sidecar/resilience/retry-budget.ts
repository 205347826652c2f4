// A retry budget: retries may add at most `percent` % to the requests of the last window, plus `minPerSecond`
// always, so a failing upstream gets a bounded extra load instead of a retry storm (as Linkerd does).

export class RetryBudget {
  readonly #windowMs: number;
  readonly #clock: () => number;
  #requests: number[] = [];
  #retries: number[] = [];
  percent: number;
  minPerSecond: number;

  constructor(opts: { percent: number; minPerSecond: number; windowMs?: number; clock?: () => number }) {
    this.percent = opts.percent;
    this.minPerSecond = opts.minPerSecond;
    this.#windowMs = opts.windowMs ?? 10_000;
    this.#clock = opts.clock ?? Date.now;
  }

  #trim(now: number): void {
    const since = now - this.#windowMs;
    while (this.#requests.length && this.#requests[0]! < since) this.#requests.shift();
    while (this.#retries.length && this.#retries[0]! < since) this.#retries.shift();
  }

  /** Records an original request (not a retry). */
  request(): void {
    this.#requests.push(this.#clock());
  }

  /** Takes a retry from the budget if there is one left; false means do not retry. */
  tryRetry(): boolean {
    const now = this.#clock();
    this.#trim(now);
    const allowed = (this.#requests.length * this.percent) / 100 + (this.minPerSecond * this.#windowMs) / 1000;
    if (this.#retries.length + 1 > allowed) return false;
    this.#retries.push(now);
    return true;
  }
}
