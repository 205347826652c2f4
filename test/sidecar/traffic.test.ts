// Traffic management through real sidecars: splits, header matches, stickiness, mirroring, a caller going
// away, and a live canary change under load. (Breakers, retries and timeouts: resilience.test.ts.)

import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { shadowHost } from '../../sidecar/outbound/h1-mirror.ts';
import { pickDestination, compileRoute } from '../../sidecar/routing/route-table.ts';
import { rebalance } from '../../cli/commands/route.ts';
import { controllable, get, many, MESH } from '../helpers/catalog.ts';
import { weft } from '../helpers/cli.ts';
import { startMesh, waitFor } from '../helpers/mesh.ts';

test('the split arithmetic: 10,000 draws land 10% ± 2% on the canary; rebalance keeps 100', (t) => {
  const table = compileRoute({ name: 'r', namespace: 'default', service: { name: 'catalog', namespace: 'default' }, rules: [{ name: null, match: [], destinations: [{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }], stickiness: null, timeoutMs: null, retries: null, mirror: null, fault: null }] });
  let v2 = 0;
  for (let i = 0; i < 10_000; i++) if (pickDestination(table.rules[0]!, Math.random()).subset === 'v2') v2++;
  t.true(v2 >= 800 && v2 <= 1200, String(v2));
  t.deepEqual(rebalance([{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }], 'v2', 25), [{ subset: 'v1', weight: 75 }, { subset: 'v2', weight: 25 }]);
  const three = rebalance([{ subset: 'a', weight: 50 }, { subset: 'b', weight: 30 }, { subset: 'c', weight: 20 }], 'c', 33);
  t.is(three.reduce((s, d) => s + d.weight, 0), 100);
});

test('routing through the mesh: a 90/10 split, a header match beating the weights, stickiness, and a live canary change under load', async (t) => {
  const { mesh, web } = await catalogMesh(t, `    - name: testers
      match: [{headers: {x-canary: {exact: "true"}}}]
      destinations: [{subset: v2}]
    - name: sticky-users
      match: [{path: {prefix: /cart}}]
      stickiness: {header: x-user}
      destinations: [{subset: v1, weight: 50}, {subset: v2, weight: 50}]
    - destinations: [{subset: v1, weight: 90}, {subset: v2, weight: 10}]
`);
  await waitFor('both versions reachable', async () => {
    const seen = new Set((await many(40, 8, () => get(web, '/warm'))).map((r) => r.body));
    return (seen.has('v1') && seen.has('v2')) || undefined;
  });

  const agent = new Agent({ connections: 16 });
  t.teardown(() => agent.close());
  const N = 10_000;
  const results = await many(N, 16, () => get(web, '/items', {}, agent));
  t.deepEqual(results.filter((r) => r.status !== 200), []);
  const canary = results.filter((r) => r.body === 'v2').length / N;
  t.true(canary >= 0.08 && canary <= 0.12, `canary share ${canary}`);

  const testers = await many(50, 8, () => get(web, '/items', { 'x-canary': 'true' }));
  t.true(testers.every((r) => r.body === 'v2'), 'x-canary: true always reaches v2');

  for (let u = 0; u < 10; u++) {
    const answers = new Set((await many(8, 4, () => get(web, '/cart', { 'x-user': `user-${u}` }))).map((r) => r.body));
    t.is(answers.size, 1, `user-${u} saw ${[...answers]}`);
  }

  // Shift the default split to 50/50 while requests flow: none fails.
  let stop = false;
  const background = many(100_000, 8, async () => (stop ? { status: 200, body: '' } : get(web, '/items', {}, agent)));
  const r = await weft(['canary', 'catalog', '--subset', 'v2', '--weight', '50', '--state', mesh.state]);
  t.is(r.code, 0, r.stderr);
  // A misspelt service is named, with the closest one there is.
  const typo = await weft(['canary', 'catalogue', '--subset', 'v2', '--weight', '50', '--state', mesh.state]);
  t.is(typo.code, 2);
  t.regex(typo.stderr, /no Service catalogue\.default in the live config; did you mean catalog\?/);
  t.regex(r.stdout, /catalog\.default: v1 50%, v2 50% \(config version \d+, pushed\)/);
  await waitFor('the new split', async () => {
    const sample = await many(200, 8, () => get(web, '/items', {}, agent));
    const share = sample.filter((x) => x.body === 'v2').length / 200;
    return (share > 0.35 && share < 0.65) || undefined;
  });
  stop = true;
  const during = await background;
  t.deepEqual(during.filter((x) => x.status !== 200), []);
  const show = await weft(['route', 'show', 'catalog', '--state', mesh.state]);
  t.regex(show.stdout, /0 \(testers\): header x-canary exact true → v2 100%/);
  t.regex(show.stdout, /2: every request → v1 50%, v2 50%/);
});

/** catalog v1 and v2 (controllable apps) behind their sidecars, and web's sidecar, under a Route for catalog with `rules`. */
async function catalogMesh(t: ExecutionContext, rules: string) {
  const v1 = await controllable('v1');
  const v2 = await controllable('v2');
  const mesh = await startMesh(MESH(`---
apiVersion: weft/v1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
${rules}`));
  t.teardown(async () => (await mesh.stop(), await v1.close(), await v2.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: v1.port });
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v2' }, appPort: v2.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  return { v1, v2, mesh, web };
}

/** catalogMesh with a Route sending everything to v1 with `rule` (a mirror), v2 answering after `v2DelayMs`. */
async function mirrorMesh(t: ExecutionContext, rule: string, v2DelayMs: number) {
  const m = await catalogMesh(t, `    - destinations: [{subset: v1}]\n${rule}`);
  m.v2.state.delayMs = v2DelayMs;
  await waitFor('v1 reachable', async () => (await get(m.web, '/warm')).body === 'v1' || undefined);
  return m;
}

test('mirroring sends copies without slowing the caller, with the body when it is small and of known length', async (t) => {
  const { v1, v2, web } = await mirrorMesh(t, '      mirror: {subset: v2, percent: 100}\n', 1500);
  const started = Date.now();
  const answers = await many(10, 5, () => get(web, '/mirrored'));
  const elapsed = Date.now() - started;
  t.true(answers.every((a) => a.body === 'v1'));
  t.true(elapsed < 1200, `callers waited ${elapsed} ms: the mirror (1.5 s slow) must not delay them`);
  await waitFor('the copies to arrive at v2', () => v2.state.paths.filter((p) => p === '/mirrored').length === 10 || undefined, 10_000);

  // Bodies: a small one (read into memory, with its length) is copied; one over 64 KB, or of unknown length
  // (chunked), is streamed once to v1 and not copied.
  const post = async (path: string, body: string | Readable) => {
    const r = await request(`http://127.0.0.1:${web.ports.outbound}${path}`, { method: 'POST', headers: { host: 'catalog' }, body });
    return { status: r.statusCode, body: await r.body.text() };
  };
  t.deepEqual(await post('/order', 'item=42&qty=3'), { status: 200, body: 'v1' });
  t.deepEqual(await post('/big', 'x'.repeat(100_000)), { status: 200, body: 'v1' });
  t.deepEqual(await post('/chunked', Readable.from(['part-1;', 'part-2'])), { status: 200, body: 'v1' });
  await waitFor('the small body at v2', () => v2.state.bodies.length >= 1 || undefined, 10_000);
  await new Promise((r) => setTimeout(r, 2000)); // v2 answers after 1.5 s: time for any wrong copy to show
  t.deepEqual(v1.state.bodies, ['POST /order item=42&qty=3', 'POST /big 100000 bytes', 'POST /chunked part-1;part-2']);
  t.deepEqual(v2.state.bodies, ['POST /order item=42&qty=3']);
  // As Envoy and Istio mark a copy: the app behind the mirror can tell it from real traffic.
  t.deepEqual([...v1.state.hosts], ['catalog']);
  t.deepEqual([...v2.state.hosts], ['catalog-shadow']);
});

test('a mirrored copy that gets no answer is given up at the rule\'s timeout, so copies cannot pile up', async (t) => {
  const { v1, v2, web } = await mirrorMesh(t, '      timeout: 400ms\n      mirror: {subset: v2, percent: 100}\n', 30_000);
  const answers = await many(3, 3, () => get(web, '/copied'));
  t.true(answers.every((a) => a.body === 'v1'));
  await waitFor('the copies at v2', () => v2.state.paths.filter((p) => p === '/copied').length === 3 || undefined, 5000);
  await waitFor('the copies given up', () => v2.state.cut >= 3 || undefined, 5000);
  t.is(v1.state.cut, 0);
});

test('a caller that goes away mid-request takes its request with it: the app sees the close, through both sidecars', async (t) => {
  const app = await controllable('v1');
  app.state.delayMs = 30_000;
  const mesh = await startMesh(MESH(''));
  t.teardown(async () => (await mesh.stop(), await app.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: app.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  const req = http.request({ host: '127.0.0.1', port: web.ports.outbound, path: '/slow', headers: { host: 'catalog' } });
  req.on('error', () => {});
  req.end();
  await waitFor('the request at the app', () => app.state.paths.includes('/slow') || undefined, 10_000);
  req.destroy();
  await waitFor('the app to see its caller gone', () => app.state.cut > 0 || undefined, 5000);
  t.is(app.state.cut, 1);
});

test('a mirrored request\'s Host gets "-shadow" after the name, before any port', (t) => {
  t.is(shadowHost('catalog'), 'catalog-shadow');
  t.is(shadowHost('catalog.default:8080'), 'catalog.default-shadow:8080');
  t.is(shadowHost('[::1]:8080'), '[::1]-shadow:8080');
  t.is(shadowHost('[::1]'), '[::1]-shadow');
});

test('a path regex that would backtrack exponentially still matches at once: a hostile path cannot stall the sidecar', async (t) => {
  // `(a+)+` against "aaa…a!" takes 2^n steps in a backtracking engine: 60 a's would take centuries.
  const { web } = await catalogMesh(t, '    - match: [{path: {regex: "/static/(a+)+"}}]\n      destinations: [{subset: v2}]\n    - destinations: [{subset: v1}]\n');
  await waitFor('both versions reachable', async () => (await get(web, '/static/aaa')).body === 'v2' || undefined);
  const [hostile, ordinary] = await Promise.all([get(web, `/static/${'a'.repeat(60)}!`), get(web, '/static/aaaa')]);
  t.deepEqual([hostile.status, hostile.body], [200, 'v1'], 'no match: the default rule');
  t.deepEqual([ordinary.status, ordinary.body], [200, 'v2']);
});
