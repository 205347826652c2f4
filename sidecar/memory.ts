// Gives garbage back to the operating system while the sidecar is idle. A sidecar sits beside every workload and
// most of them are idle most of the time, so what it holds then is what a mesh costs a node.
//
// Start-up (certificate, TLS contexts, the first snapshot) leaves ~4 MB of heap that V8 keeps committed: its
// young generation stays grown and freed old-space pages stay mapped, since an ordinary collection only
// happens under allocation, and with no traffic there is none. V8's memory-reducing full collection (the one
// it runs before giving up on an allocation) returns them: measured on the benchmark's server sidecar, RSS
// idle went from 64.8 to 61.1 MB. It runs once just before the sidecar reports ready (nothing is served yet),
// and again whenever requests have stopped for `idleMs` (30 s) after some came; never while traffic flows, where
// a pause of a few milliseconds would land on a request.
//
// Needs `gc` exposed (bin/weft starts the sidecar with --expose-gc); without it this does nothing.

import { monotonicMs } from './clock.ts';

export type Gc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

export class IdleCompactor {
  readonly #activity: () => number;
  readonly #gc: Gc | null;
  readonly #idleMs: number;
  readonly #checkMs: number;
  #seen = 0;
  #quietSince = 0;
  #compactedAt = -1;
  #timer: NodeJS.Timeout | null = null;

  /**
   * `activity`: a count that moves whenever the sidecar does work (requests and connections seen).
   * `gc`: V8's, when exposed (the default); the tests pass their own.
   */
  constructor(activity: () => number, opts: { idleMs?: number; checkMs?: number; gc?: Gc | null } = {}) {
    this.#activity = activity;
    this.#gc = opts.gc !== undefined ? opts.gc : typeof globalThis.gc === 'function' ? (globalThis.gc as unknown as Gc) : null;
    this.#idleMs = opts.idleMs ?? 30_000;
    this.#checkMs = opts.checkMs ?? 5_000;
  }

  /** Collects now; returns how long it took in ms, or null if `gc` is not exposed. */
  compact(): number | null {
    if (!this.#gc) return null;
    const started = monotonicMs();
    this.#gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    this.#compactedAt = this.#activity();
    return Math.round((monotonicMs() - started) * 10) / 10;
  }

  /** From now on, compacts after `idleMs` without activity, if there was any since the last time. */
  start(): void {
    if (!this.#gc || this.#timer) return;
    this.#seen = this.#activity();
    this.#quietSince = monotonicMs();
    this.#timer = setInterval(() => this.#check(), this.#checkMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #check(): void {
    const now = this.#activity();
    if (now !== this.#seen) {
      this.#seen = now;
      this.#quietSince = monotonicMs();
      return;
    }
    if (now !== this.#compactedAt && monotonicMs() - this.#quietSince >= this.#idleMs) this.compact();
  }
}
