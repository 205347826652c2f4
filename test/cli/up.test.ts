// weft up, end to end: the example shop as real processes on loopback (control plane, five sidecars, four apps),
// driven with curl and weft status, stopped with SIGINT; then a second run on the same state.

import test from 'ava';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { loadMeshConfigFile } from '../../control-plane/config/index.ts';
import { planMesh } from '../../cli/up/plan.ts';
import { run as runTool, tempDir, writeTemp } from '../helpers/ca.ts';
import { REPO, weft } from '../helpers/cli.ts';
import { waitFor } from '../helpers/mesh.ts';
import { sample } from '../helpers/metrics.ts';
import { EXAMPLE, freeBase, startUp, type Up } from '../helpers/up.ts';

const ID = (sa: string) => `spiffe://shop.example/ns/default/sa/${sa}`;

/** Every live process below `root`, from /proc (the sidecars, and the apps they started). */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length) for (const c of children.get(queue.shift()!) ?? []) found.push(c), queue.push(c);
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers signal 0; it is no process any more.
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** For teardown after a failed test: SIGINT, then SIGKILL whatever is left of its process tree. */
async function stopQuietly(u: Up | undefined): Promise<void> {
  if (!u || u.child.exitCode !== null || u.child.signalCode !== null) return;
  const tree = descendants(u.child.pid!);
  u.child.kill('SIGINT');
  await Promise.race([u.exited, new Promise((r) => setTimeout(r, 15_000))]);
  for (const pid of [u.child.pid!, ...tree]) if (alive(pid)) process.kill(pid, 'SIGKILL');
}

interface Recorded {
  pid: number;
  controlPlane: { pid: number };
  ingress: { url: string };
  sidecars: { name: string; pid: number; admin: string; ports: { app: number } }[];
  movedPorts: { slot: string; wanted: number; got: number }[];
  notes: string[];
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { headers });
  return { status: res.status, body: await res.text() };
}

/** The summary a `weft up --json` prints once the mesh is up. */
function jsonSummary(u: Up): Promise<Recorded> {
  return waitFor('the JSON summary', () => {
    if (u.child.exitCode !== null) throw new Error(`weft up exited ${u.child.exitCode}: ${u.stderr()}`);
    try {
      return JSON.parse(u.stdout()) as Recorded;
    } catch {
      return undefined;
    }
  }, 30_000, 50);
}

let state: string;
let base: number;
let up: Up;
let ingress: string;

test.before(async () => {
  state = join(tempDir('weft-up-'), 'state');
  base = await freeBase(0);
  up = startUp(['--state', state, '--base-port', String(base)]);
  ingress = await waitFor('weft up to print its summary', () => {
    if (up.child.exitCode !== null) throw new Error(`weft up exited ${up.child.exitCode}: ${up.stderr()}`);
    return up.stdout().includes('Ctrl-C stops everything') ? /Open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(up.stdout())?.[1] : undefined;
  }, 30_000, 50);
});

test.after.always(async () => {
  // Only if a test failed before the SIGINT test: leave nothing running.
  await stopQuietly(up);
  if (state) rmSync(dirname(state), { recursive: true, force: true });
});

test('planning: the example runs five workloads on ports derived from the base', async (t) => {
  const loaded = await loadMeshConfigFile(join(REPO, EXAMPLE));
  if (!loaded.ok) return t.fail('the example does not load');
  const plan = planMesh(loaded.config, { file: EXAMPLE, basePort: 15000, appFor: (s) => (s.name === 'ingress' ? null : `apps/${s.name}.ts`) });
  t.deepEqual(plan.workloads.map((w) => [w.name, w.labels, w.app, plan.ports.get(w.slots.admin), plan.ports.get(w.slots.app)]), [
    ['web', {}, 'apps/web.ts', 15100, 15103],
    ['catalog-v1', { version: 'v1' }, 'apps/catalog.ts', 15110, 15113],
    ['catalog-v2', { version: 'v2' }, 'apps/catalog.ts', 15120, 15123],
    ['prices', {}, 'apps/prices.ts', 15130, 15133],
    ['ingress', {}, null, 15140, 15143],
  ]);
  t.is(plan.ports.get(plan.controlPlaneSlot), 15010);
  t.is(plan.ports.get(plan.controlPlaneMetricsSlot), 15014);
  t.is(plan.ports.get(plan.ingress.slot), 15080);
  t.deepEqual(plan.workloads.find((w) => w.name === 'catalog-v2')!.appEnv, { VERSION: 'v2' });
  // The ingress's only upstream is web, on the ingress port.
  t.deepEqual(plan.workloads.at(-1)!.upstreams, [{ service: 'web', slot: 'ingress' }]);
  t.deepEqual(plan.workloads[1]!.upstreams.map((u) => [u.service, plan.ports.get(u.slot)]), [['web', 15114], ['prices', 15115]]);
  // No two slots share a port.
  t.is(new Set(plan.ports.values()).size, plan.ports.size);
  const noIngress = { ...loaded.config, services: loaded.config.services.filter((s) => s.name !== 'ingress') };
  t.throws(() => planMesh(noIngress, { file: EXAMPLE, basePort: 15000, appFor: () => null }), { message: /no Service "ingress"/ });
  t.throws(() => planMesh(loaded.config, { file: EXAMPLE, basePort: 65500, appFor: (s) => `apps/${s.name}.ts` }), { message: /--base-port 65500/ });
});

test('a bad config or a missing file argument stops weft up before anything starts', async (t) => {
  const bad = writeTemp(tempDir(), 'mesh.yaml', readFileSync(join(REPO, EXAMPLE), 'utf8').replace('weight: 90', 'weight: 80'));
  const r = await weft(['up', bad, '--state', join(tempDir(), 'state')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /mesh\.yaml:\d+:\d+: Route default\/catalog .*weights sum to 90/);
  const none = await weft(['up']);
  t.is(none.code, 2);
  t.regex(none.stderr, /give one mesh config file/);
});

test.serial('the summary names the ingress URL from the base port, every sidecar admin URL, state, logs and commands', async (t) => {
  const out = up.stdout();
  t.is(ingress, `http://127.0.0.1:${base + 80}/`);
  t.notRegex(out, /was taken/);
  for (const [name, i] of [['web', 0], ['catalog-v1', 1], ['catalog-v2', 2], ['prices', 3], ['ingress', 4]] as const) {
    const admin = `http://127.0.0.1:${base + 100 + 10 * i}`;
    t.regex(out, new RegExp(`\\n  ${name} +spiffe://shop\\.example/ns/default/sa/${name.split('-')[0]} +${admin}`), name);
    t.is((await get(`${admin}/ready`)).status, 200, name);
  }
  t.true(out.includes(`state          ${state}`));
  t.true(out.includes(`logs           ${state}/logs/`));
  t.true(out.includes(`curl ${ingress}`));
  t.true(out.includes(`npm run weft -- status --state ${state}`));
  t.true(out.includes('npm run weft -- validate -f examples/shop/mesh.yaml'));
  t.true(out.includes(`npm run weft -- apply -f examples/shop/mesh.yaml --state ${state}`));
  // Children's logs go to files, not to weft up's own output.
  t.notRegex(up.stdout() + up.stderr(), /"component":"sidecar"/);
  for (const name of ['control-plane', 'web', 'catalog-v1', 'catalog-v2', 'prices', 'ingress']) {
    t.regex(readFileSync(join(state, 'logs', `${name}.log`), 'utf8'), name === 'control-plane' ? /control plane listening/ : /sidecar ready/, name);
  }
});

test.serial('curl through the ingress gets the shop page: catalog items with prices', async (t) => {
  const r = await runTool('curl', ['-sS', '--fail-with-body', ingress]);
  t.is(r.code, 0, r.stderr + r.stdout);
  t.regex(r.stdout, /<h1>Weft shop<\/h1>/);
  t.regex(r.stdout, /Served by catalog <strong>v[12]<\/strong>/);
  t.regex(r.stdout, /<td>Green tea<\/td><td>4\.50 EUR<\/td>/);
  t.regex(r.stdout, /<td>Coffee beans<\/td><td>5\.20 EUR<\/td>/);
  t.regex(r.stdout, new RegExp(`web was called by <code>${ID('ingress')}</code>`));
});

test.serial('/api shows who called whom: ingress → web → catalog → prices, each by its SPIFFE ID', async (t) => {
  const r = await runTool('curl', ['-sS', '--fail-with-body', `${ingress}api`]);
  t.is(r.code, 0, r.stderr + r.stdout);
  const shop = JSON.parse(r.stdout);
  t.is(shop.web.calledBy, ID('ingress'));
  t.is(shop.catalog.calledBy, ID('web'));
  t.is(shop.prices.calledBy, ID('catalog'));
  t.deepEqual(shop.items.slice(0, 3).map((i: { sku: string; cents: number }) => [i.sku, i.cents]), [['tea', 450], ['coffee', 520], ['cocoa', 390]]);
});

test.serial('over 100 requests both catalog versions answer (the 90/10 split); x-canary: true always reaches v2 and its new item', async (t) => {
  const seen = { v1: 0, v2: 0 } as Record<string, number>;
  for (let i = 0; i < 100; i++) {
    const r = await get(`${ingress}api`);
    t.is(r.status, 200, r.body);
    seen[JSON.parse(r.body).catalog.version] = (seen[JSON.parse(r.body).catalog.version] ?? 0) + 1;
  }
  t.true(seen.v1! > 0 && seen.v2! > 0, JSON.stringify(seen));
  t.true(seen.v1! > seen.v2!, `90/10 should favour v1: ${JSON.stringify(seen)}`);
  t.deepEqual(Object.keys(seen).sort(), ['v1', 'v2']);
  for (let i = 0; i < 5; i++) {
    const shop = JSON.parse((await get(`${ingress}api`, { 'x-canary': 'true' })).body);
    t.is(shop.catalog.version, 'v2');
    t.like(shop.items.at(-1), { sku: 'matcha', badge: 'new!', cents: 780 });
  }
});

test.serial('weft status lists all five sidecars SYNCED', async (t) => {
  const report = await waitFor('every sidecar SYNCED', async () => {
    const r = await weft(['status', '--state', state, '--json']);
    if (r.code !== 0) throw new Error(r.stderr);
    const s = JSON.parse(r.stdout) as { sidecars: { service: string; ack: string; identity: string }[] };
    return s.sidecars.length === 5 && s.sidecars.every((x) => x.ack === 'SYNCED') ? s : undefined;
  }, 10_000, 200);
  t.deepEqual(report.sidecars.map((x) => x.service).sort(), ['catalog.default', 'catalog.default', 'ingress.default', 'prices.default', 'web.default']);
  const text = await weft(['status', '--state', state]);
  t.is((text.stdout.match(/ SYNCED /g) ?? []).length, 5, text.stdout);
});

test.serial("the control plane's metrics, named in the summary and up.json, count the five sidecars by service", async (t) => {
  const shown = /its metrics\s+(http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(up.stdout())?.[1];
  t.is(shown, `http://127.0.0.1:${base + 14}/metrics`, up.stdout());
  const recorded = JSON.parse(readFileSync(join(state, 'up.json'), 'utf8')) as Recorded & { controlPlane: { metricsUrl?: string } };
  t.is(recorded.controlPlane.metricsUrl, shown);
  const text = (await get(shown!)).body;
  const connected = (service: string) => sample(text, 'weft_control_plane_sidecars_connected', { namespace: 'default', service });
  t.deepEqual(['web', 'catalog', 'prices', 'ingress'].map(connected), [1, 2, 1, 1], text);
});

test.serial('catalog fails on demand (GET /fail on its own port) and the shop page says so', async (t) => {
  const recorded = JSON.parse(readFileSync(join(state, 'up.json'), 'utf8')) as Recorded;
  const v1 = recorded.sidecars.find((s) => s.name === 'catalog-v1')!.ports.app;
  const v2 = recorded.sidecars.find((s) => s.name === 'catalog-v2')!.ports.app;
  t.like(JSON.parse((await get(`http://127.0.0.1:${v1}/fail?on=1`)).body), { version: 'v1', failRate: 1 });
  t.is((await get(`http://127.0.0.1:${v1}/items`)).status, 503);
  t.is((await get(`http://127.0.0.1:${v2}/items`)).status, 200);
  // Through the mesh most requests now reach a failing v1; web shows an error page instead of the shop.
  let failed = 0;
  for (let i = 0; i < 20; i++) {
    const r = await get(ingress);
    if (r.status === 502) {
      failed++;
      t.regex(r.body, /The catalog is unavailable: 5\d\d/);
    }
  }
  t.true(failed > 0, 'no request failed while catalog v1 was failing');
  t.like(JSON.parse((await get(`http://127.0.0.1:${v1}/fail?on=0`)).body), { failRate: 0 });
  t.is((await get(`http://127.0.0.1:${v1}/items`)).status, 200);
});

test.serial('a second weft up on a state dir in use is refused, naming the running one', async (t) => {
  const r = await weft(['up', EXAMPLE, '--state', state, '--base-port', String(base)]);
  t.is(r.code, 2);
  t.true(r.stderr.includes(`weft up (pid ${up.child.pid}) is already running with the state dir ${state}`), r.stderr);
});

test.serial('SIGINT stops the sidecars, then the control plane, exits 0 and leaves no process behind', async (t) => {
  const recorded = JSON.parse(readFileSync(join(state, 'up.json'), 'utf8')) as Recorded;
  t.is(recorded.pid, up.child.pid!);
  const tree = descendants(up.child.pid!);
  // The control plane, five sidecars and four apps.
  t.is(tree.length, 10, JSON.stringify(tree));
  for (const pid of [recorded.controlPlane.pid, ...recorded.sidecars.map((s) => s.pid)]) t.true(tree.includes(pid), `recorded pid ${pid} is not a child`);

  up.child.kill('SIGINT');
  t.is(await up.exited, 0, up.stderr());
  const err = up.stderr();
  t.regex(err, /stopping 5 sidecar\(s\)[^]*stopping the control plane[^]*stopped/);
  t.deepEqual(tree.filter(alive), []);
  t.false(existsSync(join(state, 'up.json')));
  // The sidecars drained and then stopped their apps, each logging it.
  t.regex(readFileSync(join(state, 'logs', 'web.log'), 'utf8'), /app exited; draining/);
});

test.serial('a second up on the same state reuses the CA, moves off a taken port, and stops everything when a child dies', async (t) => {
  const bundle = readFileSync(join(state, 'ca', 'bundle.pem'), 'utf8');
  const caJson = readFileSync(join(state, 'ca', 'ca.json'), 'utf8');
  // Someone else holds the ingress port.
  const squatter = net.createServer().listen(base + 80, '127.0.0.1');
  await once(squatter, 'listening');
  t.teardown(() => squatter.close());

  // A split changed live last time (as weft canary would leave it): the file wins, and weft up says so.
  const applied = join(state, 'config.yaml');
  writeFileSync(applied, readFileSync(applied, 'utf8').replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50'));

  const again = startUp(['--state', state, '--base-port', String(base), '--json']);
  t.teardown(() => stopQuietly(again));
  const summary = await jsonSummary(again);
  t.is(readFileSync(join(state, 'ca', 'bundle.pem'), 'utf8'), bundle);
  t.is(readFileSync(join(state, 'ca', 'ca.json'), 'utf8'), caJson);
  t.true(summary.notes.some((n) => n.startsWith('the config applied last time (weft apply or weft canary;') && n.includes(`differs from ${EXAMPLE}: weft up starts from ${EXAMPLE}`)), JSON.stringify(summary.notes));
  const moved = summary.movedPorts.find((m) => m.slot === 'ingress')!;
  t.like(moved, { wanted: base + 80 });
  t.is(summary.ingress.url, `http://127.0.0.1:${moved.got}/`);
  t.is((await get(`${summary.ingress.url}api`)).status, 200);

  const tree = descendants(again.child.pid!);
  t.is(tree.length, 10);
  const prices = summary.sidecars.find((s) => s.name === 'prices')!;
  process.kill(prices.pid, 'SIGKILL');
  t.is(await again.exited, 1);
  // The end of its log: JSON lines of the prices sidecar (its access log, after requests went through).
  t.regex(again.stderr(), /prices exited unexpectedly \(killed by SIGKILL\); the end of \S+prices\.log:\n {4}\{.*"service":"prices"/);
  t.regex(again.stderr(), /stopping 4 sidecar\(s\)[^]*stopping the control plane/);
  await waitFor('every child to be gone', () => tree.filter(alive).length === 0 || undefined, 3_000);
  t.deepEqual(tree.filter(alive), []);
});

test.serial('after a weft up is killed outright, the next one names the processes it left and how to stop them', async (t) => {
  const third = startUp(['--state', state, '--base-port', String(base), '--json']);
  t.teardown(() => stopQuietly(third));
  const summary = await jsonSummary(third);
  const tree = descendants(third.child.pid!);
  t.teardown(() => tree.forEach((pid) => alive(pid) && process.kill(pid, 'SIGKILL')));
  third.child.kill('SIGKILL');
  await third.exited;
  t.is(tree.filter(alive).length, 10, 'the children outlive a SIGKILLed weft up');

  const r = await weft(['up', EXAMPLE, '--state', state, '--base-port', String(base)]);
  t.is(r.code, 2);
  const m = /a weft up that was killed left 6 process\(es\) running with the state dir \S+; stop them first: kill -- ((?:-\d+ ?)+)/.exec(r.stderr);
  if (!m) return t.fail(r.stderr);
  const groups = m[1]!.trim().split(' ').map((g) => Number(g.slice(1)));
  t.deepEqual(groups.sort(), [summary.controlPlane.pid, ...summary.sidecars.map((s) => s.pid)].sort());
  for (const g of groups) process.kill(-g, 'SIGTERM');
  await waitFor('the leftovers to stop', () => tree.filter(alive).length === 0 || undefined, 15_000);
  t.deepEqual(tree.filter(alive), []);
});

test.serial('a second Ctrl-C while stopping kills everything at once, says so, and leaves no up.json', async (t) => {
  const fourth = startUp(['--state', state, '--base-port', String(base), '--json']);
  t.teardown(() => stopQuietly(fourth));
  await jsonSummary(fourth);
  t.true(existsSync(join(state, 'up.json')));
  const tree = descendants(fourth.child.pid!);
  fourth.child.kill('SIGINT');
  await waitFor('the first Ctrl-C to be taken', () => fourth.stderr().includes('Ctrl-C again to kill everything at once') || undefined, 5_000, 20);
  fourth.child.kill('SIGINT');
  t.is(await fourth.exited, 1);
  t.regex(fourth.stderr(), /weft up: killed the control plane, the sidecars and the apps at once \(SIGKILL\); the state \(and its CA\) stays in /);
  t.false(existsSync(join(state, 'up.json')));
  await waitFor('every child to be gone', () => tree.filter(alive).length === 0 || undefined, 3_000);
  t.deepEqual(tree.filter(alive), []);
});
