// Gives the garbage of a busy spell back to the operating system once the control plane has settled.
//
// Sidecars connecting (a node starting, a control plane restarting: 1,000 of them in a few seconds) allocate
// hundreds of MB that is garbage a moment later: handshakes, certificate requests, registrations, first
// snapshots. V8 collects it only under further allocation, and with 1,000 sidecars at rest there is too little
// for that, so it stayed: bench:push's control plane sat at ~600 MB, of which ~40 MB was live JS. One
// memory-reducing full collection (the kind V8 runs before giving up on an allocation) took it to ~280 MB, in
// ~120 ms; a second one changed nothing. (The native memory freed with it is mostly closed connections' TLS
// state, which their JS objects hold until they are collected.)
//
// A control plane is never idle the way a sidecar is (heartbeats and ACKs arrive all the time), so the test is
// instead: V8's heap has grown by `growthMb` since the last collection, and the process has used under
// `quietCpu` of a CPU for `settleMs` (a rollout or a reconnect storm has passed). The pause is what such a
// collection costs (~120 ms on that heap): a heartbeat or an ACK waits for it, nothing fails.
//
// Needs `gc` exposed (bin/weft starts the control plane with --expose-gc); without it this does nothing.

const v8 = process.getBuiltinModule('node:v8');

export type Gc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

export interface SettleOptions {
  readonly settleMs?: number;
  readonly checkMs?: number;
  readonly growthMb?: number;
  readonly quietCpu?: number;
  /** V8's, when exposed (the default); the tests pass their own */
  readonly gc?: Gc | null;
  /** the V8 heap's size now, bytes */
  readonly heapBytes?: () => number;
  /** the process's CPU time so far, ms */
  readonly cpuMs?: () => number;
  readonly log?: (e: Record<string, unknown>) => void;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export class HeapSettler {
  readonly #gc: Gc | null;
  readonly #o: Required<Omit<SettleOptions, 'gc' | 'log'>> & Pick<SettleOptions, 'log'>;
  #baseline: number;
  #quietMs = 0;
  #lastCpu = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(opts: SettleOptions = {}) {
    this.#gc = opts.gc !== undefined ? opts.gc : typeof globalThis.gc === 'function' ? (globalThis.gc as unknown as Gc) : null;
    this.#o = {
      settleMs: opts.settleMs ?? 30_000,
      checkMs: opts.checkMs ?? 5_000,
      growthMb: opts.growthMb ?? 64,
      quietCpu: opts.quietCpu ?? 0.05,
      heapBytes: opts.heapBytes ?? (() => v8.getHeapStatistics().total_heap_size),
      cpuMs: opts.cpuMs ?? cpuMs,
      log: opts.log,
    };
    this.#baseline = this.#o.heapBytes();
  }

  start(): void {
    if (!this.#gc || this.#timer) return;
    this.#lastCpu = this.#o.cpuMs();
    this.#timer = setInterval(() => this.#check(), this.#o.checkMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #check(): void {
    const cpu = this.#o.cpuMs();
    const quiet = cpu - this.#lastCpu <= this.#o.checkMs * this.#o.quietCpu;
    this.#lastCpu = cpu;
    this.#quietMs = quiet ? this.#quietMs + this.#o.checkMs : 0;
    const heap = this.#o.heapBytes();
    if (this.#quietMs < this.#o.settleMs || heap - this.#baseline < this.#o.growthMb * 1024 * 1024) return;
    const rssBefore = process.memoryUsage.rss();
    const started = process.hrtime.bigint();
    this.#gc!({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    this.#baseline = this.#o.heapBytes();
    // Its own CPU is not a sign of work: the next check starts from after it.
    this.#lastCpu = this.#o.cpuMs();
    this.#o.log?.({ msg: 'settled: garbage collected', pauseMs: Math.round(ms), heapMb: { before: mb(heap), after: mb(this.#baseline) }, rssMbBefore: mb(rssBefore) });
  }
}

const mb = (bytes: number) => Math.round(bytes / 1048576);
