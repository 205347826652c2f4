// weft top's arithmetic, table-driven: reading an exposition, histogram quantiles as Prometheus estimates them,
// and rates between two scrapes (including a sidecar that restarted in between).

import test from 'ava';
import { samplesOf } from '../../cli/top/exposition.ts';
import { quantile, topRows, totalsOf } from '../../cli/top/rates.ts';

test('exposition: names, labels with escapes and trailing commas, special values, timestamps; comments skipped', (t) => {
  const text = [
    '# HELP x A help line with "quotes"',
    '# TYPE x counter',
    'x 1',
    'x_total{a="1",b="with \\"quote\\", comma, \\\\ and \\n"} 2.5e3',
    'y{le="+Inf",} +Inf 1712345678000',
    'z{ a="q" } NaN',
    'w -Inf',
    '',
  ].join('\n');
  const s = samplesOf(text, 'test');
  t.is(s.length, 5);
  t.deepEqual(s[0], { name: 'x', labels: {}, value: 1 });
  t.deepEqual(s[1], { name: 'x_total', labels: { a: '1', b: 'with "quote", comma, \\ and \n' }, value: 2500 });
  t.deepEqual(s[2], { name: 'y', labels: { le: '+Inf' }, value: Infinity });
  t.deepEqual(s[3]!.labels, { a: 'q' });
  t.true(Number.isNaN(s[3]!.value));
  t.deepEqual(s[4], { name: 'w', labels: {}, value: -Infinity });
});

test('exposition: a malformed line is an error naming the source and line', (t) => {
  for (const bad of ['x{a="1"', 'x{a=1} 2', 'x', 'x{a="1"} two', '{a="1"} 2']) {
    const err = t.throws(() => samplesOf(`ok 1\n${bad}\n`, 'sidecar web'), { message: /^sidecar web: line 2 is not a Prometheus sample/ });
    t.is((err as { code?: string }).code, 'WEFT_CLI_SIDECAR_ADMIN');
  }
});

test('quantile: linear within the bucket, the highest finite bound in +Inf, null when empty', (t) => {
  const h = (pairs: [number, number][]) => new Map(pairs);
  for (const [q, buckets, want] of [
    [0.5, h([[0.1, 0], [0.2, 100], [Infinity, 100]]), 0.15],
    [0.99, h([[0.1, 0], [0.2, 100], [Infinity, 100]]), 0.199],
    [0.99, h([[0.01, 99], [0.05, 100], [Infinity, 100]]), 0.01],
    [0.99, h([[0.01, 0], [0.05, 0], [Infinity, 10]]), 0.05],
    [0.5, h([[0.01, 4], [Infinity, 4]]), 0.005],
    [0.99, h([[0.01, 0], [Infinity, 0]]), null],
  ] as const) {
    const got = quantile(q, buckets);
    if (want === null) t.is(got, null);
    else t.true(Math.abs(got! - want) < 1e-9, `q${q} of ${JSON.stringify([...buckets])}: ${got} ≠ ${want}`);
  }
});

const exposition = (rows: [string, string, string, number][], buckets: Record<string, [number, number][]>) =>
  [
    ...rows.map(([service, subset, code, n]) => `weft_requests_total{direction="outbound",source_identity="spiffe://d/ns/a/sa/web",destination_service="${service}",destination_subset="${subset}",status_code="${code}",mesh_reason=""} ${n}`),
    // The inbound side is not the callers' view: it must be ignored.
    'weft_requests_total{direction="inbound",source_identity="x",destination_service="catalog.default",destination_subset="v1",status_code="500",mesh_reason=""} 1000',
    ...Object.entries(buckets).flatMap(([subset, bs]) =>
      bs.map(([le, n]) => `weft_request_duration_seconds_bucket{le="${le === Infinity ? '+Inf' : le}",direction="outbound",source_identity="w",destination_service="catalog.default",destination_subset="${subset}",status_code="200"} ${n}`),
    ),
  ].join('\n');

test('rates between two scrapes: per service and subset, summed over sidecars, failures are 5xx and no answer', (t) => {
  const before = new Map([
    ['a', totalsOf(exposition([['catalog.default', 'v1', '200', 100], ['catalog.default', 'v1', '503', 10]], { v1: [[0.01, 100], [Infinity, 110]] }), 'a')],
    ['b', totalsOf(exposition([['catalog.default', 'v1', '200', 50]], {}), 'b')],
  ]);
  const after = new Map([
    ['a', totalsOf(exposition([['catalog.default', 'v1', '200', 130], ['catalog.default', 'v1', '503', 20], ['catalog.default', 'v2', '200', 4], ['catalog.default', 'v2', '0', 1]], { v1: [[0.01, 130], [Infinity, 150]] }), 'a')],
    // b restarted (its counter went down): everything it has now is new.
    ['b', totalsOf(exposition([['catalog.default', 'v1', '200', 10], ['prices.default', '', '404', 6]], {}), 'b')],
    // c appeared: counted from zero.
    ['c', totalsOf(exposition([['prices.default', '', '200', 4]], {}), 'c')],
  ]);
  const rows = topRows(before, after, 2);
  t.deepEqual(rows.map((r) => [r.service, r.subset, r.requests, r.requestsPerSecond, r.successRate]), [
    ['catalog.default', 'v1', 30 + 10 + 10, 25, 40 / 50],
    ['catalog.default', 'v2', 5, 2.5, 4 / 5],
    ['prices.default', '', 10, 5, 1],
  ]);
  // v1's new latencies: 30 under 10 ms and 10 above the last finite bound: p99 is that bound.
  t.is(rows[0]!.p99Ms, 10);
  t.is(rows[1]!.p99Ms, null, 'no histogram for v2 in this exposition');
});
