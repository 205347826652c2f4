import test from 'ava';
import { Counter, Gauge, Histogram, Registry } from '../prometheus.ts';

test('counters and gauges: HELP and TYPE, label values escaped, an unlabelled series at 0 from the start', (t) => {
  const registry = new Registry();
  const c = new Counter({ name: 'x_total', help: 'Things.\nWith a \\ in the help.', labelNames: ['path', 'code'], registry });
  new Counter({ name: 'y_total', help: 'Nothing yet.', registry });
  const g = new Gauge({ name: 'g', help: 'A gauge.', registry, collect: (gauge) => gauge.set(undefined, 7) });
  c.inc({ path: 'a"b\\c\nd', code: '200' });
  c.labels({ path: 'a"b\\c\nd', code: '200' }).inc(2);
  c.inc({ path: '/', code: '500' }, 0);
  t.is(g.labels(undefined as never).value, 0);
  t.is(
    registry.metrics(),
    [
      '# HELP x_total Things.\\nWith a \\\\ in the help.',
      '# TYPE x_total counter',
      'x_total{path="a\\"b\\\\c\\nd",code="200"} 3',
      'x_total{path="/",code="500"} 0',
      '# HELP y_total Nothing yet.',
      '# TYPE y_total counter',
      'y_total 0',
      '# HELP g A gauge.',
      '# TYPE g gauge',
      'g 7',
      '',
    ].join('\n'),
  );
  t.throws(() => c.labels({ path: '/' } as never), { message: /label code is missing/ });
  t.throws(() => c.inc({ path: '/', code: '200' }, -1), { message: /only goes up/ });
  t.throws(() => new Gauge({ name: 'g', help: 'again', registry }), { message: /registered twice/ });
});

test('histograms: cumulative buckets with le last, +Inf, sum and count; a removed child is gone', (t) => {
  const registry = new Registry();
  const h = new Histogram({ name: 'd_seconds', help: 'Durations.', labelNames: ['svc'], buckets: [1, 0.1, 0.5], registry });
  for (const v of [0.05, 0.1, 0.3, 0.7, 2]) h.labels({ svc: 'a' }).observe(v);
  h.labels({ svc: 'b' }).observe(0.2);
  h.remove({ svc: 'b' });
  t.is(
    registry.metrics(),
    [
      '# HELP d_seconds Durations.',
      '# TYPE d_seconds histogram',
      'd_seconds_bucket{svc="a",le="0.1"} 2',
      'd_seconds_bucket{svc="a",le="0.5"} 3',
      'd_seconds_bucket{svc="a",le="1"} 4',
      'd_seconds_bucket{svc="a",le="+Inf"} 5',
      'd_seconds_sum{svc="a"} 3.15',
      'd_seconds_count{svc="a"} 5',
      '',
    ].join('\n'),
  );
});

test('read at scrape time: a counter copied from elsewhere, a gauge recomputed whole (series gone since are gone)', (t) => {
  const registry = new Registry();
  let cpu = 1.5;
  new Counter({ name: 'cpu_seconds_total', help: 'CPU.', registry, collect: (c) => (c.labels({}).value = cpu) });
  let services = ['a', 'b'];
  new Gauge({
    name: 'up',
    help: 'Up.',
    labelNames: ['svc'],
    registry,
    collect: (g) => {
      g.clear();
      for (const svc of services) g.set({ svc }, 1);
    },
  });
  t.is(registry.metrics(), '# HELP cpu_seconds_total CPU.\n# TYPE cpu_seconds_total counter\ncpu_seconds_total 1.5\n# HELP up Up.\n# TYPE up gauge\nup{svc="a"} 1\nup{svc="b"} 1\n');
  cpu = 2.25;
  services = ['b'];
  t.is(registry.metrics(), '# HELP cpu_seconds_total CPU.\n# TYPE cpu_seconds_total counter\ncpu_seconds_total 2.25\n# HELP up Up.\n# TYPE up gauge\nup{svc="b"} 1\n');
});
