// The sidecar gives its garbage back while idle (sidecar/memory.ts): when IdleCompactor collects (never while
// work is in progress), and that a sidecar started as users start it (bin/weft, which exposes gc) collects
// before it reports ready.

import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdleCompactor } from '../../sidecar/memory.ts';
import { startMesh } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

/** A stand-in sidecar: counts, a CPU clock, and how many collections it has had. */
function fake() {
  const f = { activity: 0, inProgress: 0, cpu: 0, collections: 0 };
  return Object.assign(f, { opts: { gc: () => void f.collections++, cpuMs: () => f.cpu } });
}

test('collects only after activity has stopped for idleMs, once per quiet spell, never while activity goes on', async (t) => {
  const f = fake();
  const c = new IdleCompactor(f, { idleMs: 300, checkMs: 50, ...f.opts });
  c.start();
  t.teardown(() => c.stop());
  // Busy for 800 ms (well past idleMs): never collected.
  const busy = setInterval(() => f.activity++, 20);
  await sleep(800);
  clearInterval(busy);
  t.is(f.collections, 0);
  // Quiet: one collection, and no more while it stays quiet.
  await sleep(700);
  t.is(f.collections, 1);
  await sleep(500);
  t.is(f.collections, 1);
  // Some activity, then quiet again: one more.
  f.activity++;
  await sleep(700);
  t.is(f.collections, 2);
});

test('no collection while a request or connection is in progress, or while the process uses CPU, however long', async (t) => {
  const f = fake();
  const c = new IdleCompactor(f, { idleMs: 200, checkMs: 40, ...f.opts });
  c.start();
  t.teardown(() => c.stop());
  f.activity++;
  // A long download or a tunnel: no new request, but one in progress.
  f.inProgress = 1;
  await sleep(600);
  t.is(f.collections, 0);
  // It ended, but traffic on it (or anything else) keeps the process busy: 1% of a CPU.
  f.inProgress = 0;
  const spin = setInterval(() => (f.cpu += 0.4), 40);
  await sleep(600);
  t.is(f.collections, 0);
  clearInterval(spin);
  await sleep(500);
  t.is(f.collections, 1);
});

test('a quiet sidecar with no activity since its last collection is not collected again; without gc nothing happens', async (t) => {
  const f = fake();
  const c = new IdleCompactor(f, { idleMs: 100, checkMs: 30, ...f.opts });
  t.is(typeof c.compact(), 'number');
  t.is(f.collections, 1);
  c.start();
  await sleep(400);
  c.stop();
  t.is(f.collections, 1, 'the start-up collection covers the quiet that follows it');
  const none = new IdleCompactor(fake(), { gc: null });
  t.is(none.compact(), null);
});

test('a sidecar started through bin/weft collects its start-up garbage before it reports ready', async (t) => {
  const mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}' } }));
  t.teardown(() => mesh.stop());
  const web = await mesh.sidecar({ service: 'web', appPort: 9 });
  const ready = JSON.parse(web.logs().split('\n').find((l) => l.includes('"msg":"sidecar ready"'))!) as { compactedMs: unknown };
  t.is(typeof ready.compactedMs, 'number', 'gc is exposed and ran');
});
