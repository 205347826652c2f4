// Counters, gauges and histograms in the Prometheus text exposition format (version 0.0.4), for the sidecar's
// admin port and the control plane: at the root, beside errors.ts, because both import it.
//
// The sidecar used prom-client, which with its dependencies (OpenTelemetry's API for exemplars, the cluster
// and perf_hooks modules) cost about 10 MB of RSS in every sidecar, and hashed a label object on every
// observation. What a sidecar needs is small: fixed label names, children fetched once and kept by the
// caller, and a text rendering at scrape time. `promtool check metrics` checks the output in the tests.

export type LabelValues<L extends string> = Readonly<Record<L, string>>;

interface Metric {
  render(out: string[]): void;
}

export class Registry {
  readonly #metrics: Metric[] = [];
  readonly #names = new Set<string>();

  register(name: string, metric: Metric): void {
    if (this.#names.has(name)) throw new Error(`metric ${name} is registered twice`);
    this.#names.add(name);
    this.#metrics.push(metric);
  }

  /** The whole exposition, one family after another. */
  metrics(): string {
    const out: string[] = [];
    for (const m of this.#metrics) m.render(out);
    return out.join('');
  }
}

export interface MetricOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
  readonly registry: Registry;
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeValue(text: string): string {
  return /[\\"\n]/.test(text) ? text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : text;
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

/** One metric name with its label names and one child per set of label values. */
abstract class Family<L extends string, C> implements Metric {
  readonly name: string;
  readonly #help: string;
  readonly #type: string;
  readonly labelNames: readonly L[];
  /** children by their rendered label pairs ('a="x",b="y"') */
  protected readonly children = new Map<string, C>();

  constructor(type: string, o: MetricOptions<L>) {
    this.name = o.name;
    this.#help = o.help;
    this.#type = type;
    this.labelNames = o.labelNames ?? [];
    o.registry.register(o.name, this);
  }

  protected abstract make(): C;
  protected abstract renderChild(out: string[], labels: string, child: C): void;

  protected key(values: LabelValues<L> | undefined): string {
    if (this.labelNames.length === 0) return '';
    let key = '';
    for (const n of this.labelNames) {
      const v = values?.[n];
      if (v === undefined) throw new Error(`metric ${this.name}: label ${n} is missing`);
      key += `${key ? ',' : ''}${n}="${escapeValue(v)}"`;
    }
    return key;
  }

  /** The child for these label values, made on first use. Keep it: looking it up again costs a string build. */
  labels(values: LabelValues<L>): C {
    const key = this.key(values);
    let child = this.children.get(key);
    if (!child) this.children.set(key, (child = this.make()));
    return child;
  }

  remove(values: LabelValues<L>): void {
    this.children.delete(this.key(values));
  }

  /** Removes every child: for a gauge whose series are recomputed at scrape time, so that gone ones go. */
  clear(): void {
    this.children.clear();
  }

  /** called before rendering, to fill in values read at scrape time */
  protected collect(): void {}

  render(out: string[]): void {
    this.collect();
    out.push(`# HELP ${this.name} ${escapeHelp(this.#help)}\n# TYPE ${this.name} ${this.#type}\n`);
    // A metric without labels always has its one series, at 0 before anything happened.
    if (this.labelNames.length === 0 && this.children.size === 0) this.children.set('', this.make());
    for (const [labels, child] of this.children) this.renderChild(out, labels, child);
  }
}

export class CounterChild {
  value = 0;
  inc(n = 1): void {
    if (n < 0) throw new Error('a counter only goes up');
    this.value += n;
  }
}

export class Counter<L extends string = never> extends Family<L, CounterChild> {
  readonly #collect: ((c: Counter<L>) => void) | undefined;
  /** `collect`: for a count kept elsewhere (the process's CPU time), copied into the children at scrape time */
  constructor(o: MetricOptions<L> & { collect?: (c: Counter<L>) => void }) {
    super('counter', o);
    this.#collect = o.collect;
  }
  protected override collect(): void {
    this.#collect?.(this);
  }
  protected make(): CounterChild {
    return new CounterChild();
  }
  inc(values?: LabelValues<L>, n = 1): void {
    // A number here is a count given where the labels go (inc(5) on an unlabelled counter would add 1).
    if (typeof values === 'number') throw new TypeError(`${this.name}: inc(labels, n); the count is the second argument`);
    this.labels(values as LabelValues<L>).inc(n);
  }
  protected renderChild(out: string[], labels: string, c: CounterChild): void {
    out.push(`${this.name}${labels ? `{${labels}}` : ''} ${formatNumber(c.value)}\n`);
  }
}

export class GaugeChild {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
}

export class Gauge<L extends string = never> extends Family<L, GaugeChild> {
  readonly #collect: ((g: Gauge<L>) => void) | undefined;
  constructor(o: MetricOptions<L> & { collect?: (g: Gauge<L>) => void }) {
    super('gauge', o);
    this.#collect = o.collect;
  }
  protected make(): GaugeChild {
    return new GaugeChild();
  }
  set(values: LabelValues<L> | undefined, v: number): void {
    this.labels(values as LabelValues<L>).set(v);
  }
  protected override collect(): void {
    this.#collect?.(this);
  }
  protected renderChild(out: string[], labels: string, c: GaugeChild): void {
    out.push(`${this.name}${labels ? `{${labels}}` : ''} ${formatNumber(c.value)}\n`);
  }
}

export class HistogramChild {
  readonly #bounds: readonly number[];
  /** per bucket, not cumulative (made cumulative when rendered) */
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Array<number>(bounds.length).fill(0);
  }
  observe(v: number): void {
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    if (i < b.length) this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

export class Histogram<L extends string = never> extends Family<L, HistogramChild> {
  readonly #bounds: readonly number[];
  readonly #le: readonly string[];
  constructor(o: MetricOptions<L> & { buckets: readonly number[] }) {
    super('histogram', o);
    this.#bounds = [...o.buckets].sort((a, b) => a - b);
    this.#le = this.#bounds.map(formatNumber);
  }
  protected make(): HistogramChild {
    return new HistogramChild(this.#bounds);
  }
  protected renderChild(out: string[], labels: string, c: HistogramChild): void {
    const sep = labels ? `${labels},` : '';
    let cumulative = 0;
    for (let i = 0; i < this.#bounds.length; i++) {
      cumulative += c.counts[i]!;
      out.push(`${this.name}_bucket{${sep}le="${this.#le[i]}"} ${cumulative}\n`);
    }
    out.push(`${this.name}_bucket{${sep}le="+Inf"} ${c.count}\n`);
    const braces = labels ? `{${labels}}` : '';
    out.push(`${this.name}_sum${braces} ${formatNumber(c.sum)}\n${this.name}_count${braces} ${c.count}\n`);
  }
}
