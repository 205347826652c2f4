// What `weft top` shows, computed from two scrapes of the sidecars' /metrics: requests per second, success rate
// and p99 latency per destination service and subset. Counted on the callers' outbound side, so what the mesh
// answered itself (an open breaker, no endpoint) counts against the service as its callers saw it.
//
// Pure functions of the scraped text and the time between scrapes; the I/O is in cli/commands/top.ts.

import { samplesOf } from './exposition.ts';

/** One sidecar's cumulative outbound counts, by "service\tsubset". */
export interface Totals {
  readonly requests: Map<string, { total: number; failed: number }>;
  /** cumulative histogram buckets: upper bound (Infinity for +Inf) → count */
  readonly buckets: Map<string, Map<number, number>>;
}

export interface TopRow {
  /** "name.namespace" */
  readonly service: string;
  /** '' when the route named no subset */
  readonly subset: string;
  readonly requestsPerSecond: number;
  /** requests in the window */
  readonly requests: number;
  /** share of requests answered with a status below 500 (null with no requests in the window) */
  readonly successRate: number | null;
  /** 99th percentile latency in milliseconds, estimated from the histogram buckets (null with no requests) */
  readonly p99Ms: number | null;
}

const key = (service: string, subset: string) => `${service}\t${subset}`;

/** Reads the outbound request counter and latency histogram of one sidecar's exposition (`source` names it in errors). */
export function totalsOf(text: string, source: string): Totals {
  const totals: Totals = { requests: new Map(), buckets: new Map() };
  for (const { name, labels: l, value } of samplesOf(text, source)) {
    if (l.direction !== 'outbound') continue;
    const k = key(l.destination_service ?? '', l.destination_subset ?? '');
    if (name === 'weft_requests_total') {
      const entry = totals.requests.get(k) ?? { total: 0, failed: 0 };
      const code = l.status_code ?? '';
      entry.total += value;
      // 0 is no answer; "5xx" a status of that class no registry names (see sidecar/telemetry/metrics.ts); a gRPC
      // call fails on any status but OK (0), whatever its HTTP status (200 for nearly all of them).
      const grpc = l.grpc_status ?? '';
      if (code === '0' || code.startsWith('5') || (grpc !== '' && grpc !== '0')) entry.failed += value;
      totals.requests.set(k, entry);
    } else if (name === 'weft_request_duration_seconds_bucket') {
      // Summed over the labels top does not show (status code, caller).
      const into = totals.buckets.get(k) ?? new Map<number, number>();
      const bound = l.le === '+Inf' ? Infinity : Number(l.le);
      into.set(bound, (into.get(bound) ?? 0) + value);
      totals.buckets.set(k, into);
    }
  }
  return totals;
}

/** Counter increase between two scrapes; a smaller value means the sidecar restarted, so all of it is new. */
function increase(before: number | undefined, after: number): number {
  return before === undefined || after < before ? after : after - before;
}

/**
 * The q-quantile of a cumulative histogram, as Prometheus' histogram_quantile() estimates it: linear within the
 * bucket the rank falls in; in the +Inf bucket, the highest finite bound. Null when it holds no observation.
 */
export function quantile(q: number, buckets: ReadonlyMap<number, number>): number | null {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [bound, cumulative] of sorted) {
    if (cumulative >= rank) {
      if (bound === Infinity) return lower;
      const inBucket = cumulative - below;
      return inBucket <= 0 ? bound : lower + (bound - lower) * ((rank - below) / inBucket);
    }
    lower = bound;
    below = cumulative;
  }
  return lower;
}

/**
 * Rows for every service and subset any sidecar has called, from each sidecar's totals at two times `seconds`
 * apart (sidecars keyed by ID; one seen only in `after` counts from zero).
 */
export function topRows(before: ReadonlyMap<string, Totals>, after: ReadonlyMap<string, Totals>, seconds: number): TopRow[] {
  const requests = new Map<string, { total: number; failed: number }>();
  const buckets = new Map<string, Map<number, number>>();
  for (const [id, now] of after) {
    const then = before.get(id);
    for (const [k, r] of now.requests) {
      const prev = then?.requests.get(k);
      const sum = requests.get(k) ?? { total: 0, failed: 0 };
      sum.total += increase(prev?.total, r.total);
      sum.failed += increase(prev?.failed, r.failed);
      requests.set(k, sum);
    }
    for (const [k, b] of now.buckets) {
      const prev = then?.buckets.get(k);
      const sum = buckets.get(k) ?? new Map<number, number>();
      for (const [bound, count] of b) sum.set(bound, (sum.get(bound) ?? 0) + increase(prev?.get(bound), count));
      buckets.set(k, sum);
    }
  }
  const rows: TopRow[] = [];
  for (const [k, r] of requests) {
    const [service, subset] = k.split('\t') as [string, string];
    const p99 = r.total > 0 ? quantile(0.99, buckets.get(k) ?? new Map()) : null;
    rows.push({
      service,
      subset,
      requestsPerSecond: seconds > 0 ? r.total / seconds : 0,
      requests: r.total,
      successRate: r.total > 0 ? (r.total - r.failed) / r.total : null,
      p99Ms: p99 === null ? null : p99 * 1000,
    });
  }
  return rows.sort((a, b) => a.service.localeCompare(b.service) || a.subset.localeCompare(b.subset));
}
