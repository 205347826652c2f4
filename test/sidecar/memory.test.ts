// The sidecar gives its garbage back while idle (sidecar/memory.ts): when IdleCompactor collects, and that a
// sidecar started as users start it (bin/weft, which exposes gc) collects before it reports ready.

import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdleCompactor } from '../../sidecar/memory.ts';
import { startMesh } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

test('collects only after activity has stopped for idleMs, once per quiet spell, never while activity goes on', async (t) => {
  let activity = 0;
  let collections = 0;
  const c = new IdleCompactor(() => activity, { idleMs: 300, checkMs: 50, gc: () => void collections++ });
  c.start();
  t.teardown(() => c.stop());
  // Busy for 800 ms (well past idleMs): never collected.
  const busy = setInterval(() => activity++, 20);
  await sleep(800);
  clearInterval(busy);
  t.is(collections, 0);
  // Quiet: one collection, and no more while it stays quiet.
  await sleep(700);
  t.is(collections, 1);
  await sleep(500);
  t.is(collections, 1);
  // Some activity, then quiet again: one more.
  activity++;
  await sleep(700);
  t.is(collections, 2);
});

test('a quiet sidecar with no activity since its last collection is not collected again; without gc nothing happens', async (t) => {
  let collections = 0;
  const c = new IdleCompactor(() => 0, { idleMs: 100, checkMs: 30, gc: () => void collections++ });
  t.is(typeof c.compact(), 'number');
  t.is(collections, 1);
  c.start();
  await sleep(400);
  c.stop();
  t.is(collections, 1, 'the start-up collection covers the quiet that follows it');
  const none = new IdleCompactor(() => 0, { gc: null });
  t.is(none.compact(), null);
});

test('a sidecar started through bin/weft collects its start-up garbage before it reports ready', async (t) => {
  const mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}' } }));
  t.teardown(() => mesh.stop());
  const web = await mesh.sidecar({ service: 'web', appPort: 9 });
  const ready = JSON.parse(web.logs().split('\n').find((l) => l.includes('"msg":"sidecar ready"'))!) as { compactedMs: unknown };
  t.is(typeof ready.compactedMs, 'number', 'gc is exposed and ran');
});
