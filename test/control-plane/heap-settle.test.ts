// The control plane gives a busy spell's garbage back once it settles (control-plane/heap-settle.ts): when
// HeapSettler collects (the heap grown by growthMb, the process quiet for settleMs), and that a control plane
// started as users start it (bin/weft) has the collection available.

import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeapSettler } from '../../control-plane/heap-settle.ts';
import { MESH_YAML } from '../helpers/control-plane.ts';
import { startMesh } from '../helpers/mesh.ts';

const MB = 1024 * 1024;

/** A stand-in process: its heap size, its CPU clock, and the collections it has had (each shrinks the heap). */
function fake(heapMb: number) {
  const f = { heap: heapMb * MB, cpu: 0, collections: 0, logged: [] as Record<string, unknown>[] };
  const opts = { gc: () => ((f.collections++, (f.heap = 40 * MB))), heapBytes: () => f.heap, cpuMs: () => f.cpu, log: (e: Record<string, unknown>) => f.logged.push(e) };
  return Object.assign(f, { opts });
}

test('collects once the heap has grown and the process has been quiet for settleMs; then not again until it grows again', async (t) => {
  const f = fake(40);
  const s = new HeapSettler({ settleMs: 200, checkMs: 40, growthMb: 64, quietCpu: 0.05, ...f.opts });
  s.start();
  t.teardown(() => s.stop());
  // Quiet but not grown: nothing to give back.
  await sleep(400);
  t.is(f.collections, 0);
  // A storm: the heap grows and the CPU is busy (40 ms of CPU every 40 ms); no collection while it lasts.
  const storm = setInterval(() => ((f.cpu += 40), (f.heap += 20 * MB)), 40);
  await sleep(500);
  clearInterval(storm);
  t.is(f.collections, 0);
  // Settled: one collection, logged with its pause and sizes.
  await sleep(500);
  t.is(f.collections, 1);
  t.like(f.logged[0], { msg: 'settled: garbage collected', heapMb: { after: 40 } });
  // Quiet, and the heap back to its size: no more.
  await sleep(500);
  t.is(f.collections, 1);
});

test('a little CPU all the time (heartbeats) still counts as settled; more than quietCpu does not', async (t) => {
  const f = fake(40);
  const s = new HeapSettler({ settleMs: 200, checkMs: 40, growthMb: 64, quietCpu: 0.05, ...f.opts });
  f.heap = 200 * MB;
  s.start();
  t.teardown(() => s.stop());
  // 4 ms of CPU every 40 ms: 10% of a CPU, over quietCpu.
  let busy = setInterval(() => (f.cpu += 4), 40);
  await sleep(600);
  t.is(f.collections, 0);
  clearInterval(busy);
  // 0.4 ms every 40 ms: 1%.
  busy = setInterval(() => (f.cpu += 0.4), 40);
  t.teardown(() => clearInterval(busy));
  await sleep(1000);
  t.is(f.collections, 1);
});

test('without gc exposed it does nothing; a control plane started by bin/weft has it', async (t) => {
  const none = new HeapSettler({ gc: null, settleMs: 0, checkMs: 10, growthMb: 0 });
  none.start();
  none.stop();
  const mesh = await startMesh(MESH_YAML);
  t.teardown(() => mesh.stop());
  const { readFileSync } = process.getBuiltinModule('node:fs');
  const argv = readFileSync(`/proc/${mesh.controlPlane.child.pid}/cmdline`, 'utf8').split('\0');
  t.true(argv.includes('--expose-gc'), argv.join(' '));
});
