// Gives garbage back to the operating system while the sidecar is idle. A sidecar sits beside every workload and
// most of them are idle most of the time, so what it holds then is what a mesh costs a node.
//
// Start-up (certificate, TLS contexts, the first snapshot) leaves ~4 MB of heap that V8 keeps committed: its
// young generation stays grown and freed old-space pages stay mapped, since an ordinary collection only
// happens under allocation, and with no traffic there is none. V8's memory-reducing full collection (the one
// it runs before giving up on an allocation) returns them: measured on the benchmark's server sidecar, RSS
// idle went from 64.8 to 61.1 MB. It takes ~10 ms on a sidecar's heap (more on a large one), so it runs only
// where nobody waits for it: once just before the sidecar reports ready (nothing is served yet), and again
// after `idleMs` (30 s) of quiet that followed some work. Quiet means no new request or connection, none in
// progress (a long download, a gRPC stream, a tunnel), and the process using under 0.5% of a CPU.
//
// Needs `gc` exposed (bin/weft starts the sidecar with --expose-gc); without it this does nothing.

import { monotonicMs } from './clock.ts';

export type Gc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** What the sidecar is doing: requests and connections seen so far, and how many are in progress now. */
export interface Activity {
  readonly activity: number;
  readonly inProgress: number;
}

/** The share of one CPU under which the process counts as quiet. */
const QUIET_CPU = 0.005;

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export class IdleCompactor {
  readonly #source: Activity;
  readonly #gc: Gc | null;
  readonly #idleMs: number;
  readonly #checkMs: number;
  readonly #cpuMs: () => number;
  #seen = 0;
  #quietSince = 0;
  #lastCpu = 0;
  #compactedAt = -1;
  #timer: NodeJS.Timeout | null = null;

  /** `gc`: V8's, when exposed (the default); `cpuMs`: the process's CPU time so far. The tests pass their own. */
  constructor(source: Activity, opts: { idleMs?: number; checkMs?: number; gc?: Gc | null; cpuMs?: () => number } = {}) {
    this.#source = source;
    this.#gc = opts.gc !== undefined ? opts.gc : typeof globalThis.gc === 'function' ? (globalThis.gc as unknown as Gc) : null;
    this.#idleMs = opts.idleMs ?? 30_000;
    this.#checkMs = opts.checkMs ?? 5_000;
    this.#cpuMs = opts.cpuMs ?? cpuMs;
  }

  /** Collects now; returns how long it took in ms, or null if `gc` is not exposed. */
  compact(): number | null {
    if (!this.#gc) return null;
    const started = monotonicMs();
    this.#gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    this.#compactedAt = this.#source.activity;
    return Math.round((monotonicMs() - started) * 10) / 10;
  }

  /** From now on, compacts after `idleMs` of quiet, if there was work since the last time. */
  start(): void {
    if (!this.#gc || this.#timer) return;
    this.#seen = this.#source.activity;
    this.#quietSince = monotonicMs();
    this.#lastCpu = this.#cpuMs();
    this.#timer = setInterval(() => this.#check(), this.#checkMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #check(): void {
    const now = this.#source.activity;
    const cpu = this.#cpuMs();
    const busy = now !== this.#seen || this.#source.inProgress > 0 || cpu - this.#lastCpu > this.#checkMs * QUIET_CPU;
    this.#lastCpu = cpu;
    if (busy) {
      this.#seen = now;
      this.#quietSince = monotonicMs();
      return;
    }
    if (now !== this.#compactedAt && monotonicMs() - this.#quietSince >= this.#idleMs) this.compact();
  }
}
