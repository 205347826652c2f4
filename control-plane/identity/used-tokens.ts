// The ledger of redeemed bootstrap tokens: a token ID is recorded (and synced) before its certificate is issued.

import { existsSync, readFileSync } from 'node:fs';
import { appendLine } from '../../ca/append-line.ts';

export class UsedTokens {
  readonly path: string;
  readonly #used = new Map<string, number>();

  constructor(path: string, nowMs: number = Date.now()) {
    this.path = path;
    if (!existsSync(path)) return;
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        const { jti, exp } = JSON.parse(line) as { jti: string; exp: number };
        // Expired tokens are refused by their exp claim anyway; forgetting them keeps the set small.
        if (exp * 1000 > nowMs) this.#used.set(jti, exp);
      } catch {
        // A torn last line from a crash mid-append: that token was not redeemed (its certificate was never sent).
      }
    }
  }

  has(jti: string): boolean {
    return this.#used.has(jti);
  }

  /** Records `jti` durably. Synchronous, so two concurrent redemptions of one token cannot both pass `has`. */
  add(jti: string, exp: number): void {
    appendLine(this.path, JSON.stringify({ jti, exp }), { mode: 0o600, flush: true });
    this.#used.set(jti, exp);
  }
}
