// Traffic management through real sidecars: splits, header matches, stickiness, mirroring, circuit breaking,
// retry budgets, timeouts, and a live canary change under load.

import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { shadowHost } from '../../sidecar/outbound/http-call.ts';
import { pickDestination, compileRoute } from '../../sidecar/routing/route-table.ts';
import { rebalance } from '../../cli/commands/route.ts';
import { weft } from '../helpers/cli.ts';
import { startMesh, waitFor, type SidecarProc } from '../helpers/mesh.ts';
import { meshYaml, routeYaml, trafficPolicyYaml } from '../helpers/mesh-yaml.ts';

/** A test app that says who it is and can be told to fail or to be slow. */
async function controllable(name: string) {
  const state = { failing: false, failStatus: 503, delayMs: 0, hits: 0, paths: [] as string[], bodies: [] as string[], hosts: new Set<string>(), cut: 0 };
  const server = http.createServer((req, res) => {
    state.hits++;
    // the caller went away before the answer was sent
    res.on('close', () => void (res.writableFinished || state.cut++));
    state.paths.push(req.url!);
    state.hosts.add(req.headers.host ?? '');
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => body && state.bodies.push(`${req.method} ${req.url} ${body.length <= 64 ? body : `${body.length} bytes`}`));
    const answer = () => {
      if (state.failing) {
        res.writeHead(state.failStatus, { 'content-type': 'text/plain' }).end(`${name} failing`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
    };
    if (state.delayMs) setTimeout(answer, state.delayMs);
    else answer();
  });
  server.keepAliveTimeout = 1000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { name, state, port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

const MESH = (extra: string) => meshYaml({ services: { web: '{port: 8080}', catalog: '{port: 8081, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}' }, extra });

async function get(web: SidecarProc, path: string, headers: Record<string, string> = {}, dispatcher?: Agent) {
  const r = await request(`http://127.0.0.1:${web.ports.outbound}${path}`, { headers: { host: 'catalog', ...headers }, dispatcher });
  return { status: r.statusCode, body: await r.body.text(), reason: r.headers['x-weft-reason'] as string | undefined };
}

async function many<T>(n: number, concurrency: number, one: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await one(i);
    }
  }));
  return out;
}

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
  const v1 = await controllable('v1');
  const v2 = await controllable('v2');
  const mesh = await startMesh(MESH(`---
apiVersion: weft/v1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
    - name: testers
      match: [{headers: {x-canary: {exact: "true"}}}]
      destinations: [{subset: v2}]
    - name: sticky-users
      match: [{path: {prefix: /cart}}]
      stickiness: {header: x-user}
      destinations: [{subset: v1, weight: 50}, {subset: v2, weight: 50}]
    - destinations: [{subset: v1, weight: 90}, {subset: v2, weight: 10}]
`));
  t.teardown(async () => (await mesh.stop(), await v1.close(), await v2.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: v1.port });
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v2' }, appPort: v2.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
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

/** catalog v1 and v2 behind their sidecars, web's sidecar, and a Route sending everything to v1 with `rule`. */
async function mirrorMesh(t: ExecutionContext, rule: string, v2DelayMs: number) {
  const v1 = await controllable('v1');
  const v2 = await controllable('v2');
  v2.state.delayMs = v2DelayMs;
  const mesh = await startMesh(MESH(`---
apiVersion: weft/v1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
    - destinations: [{subset: v1}]
${rule}`));
  t.teardown(async () => (await mesh.stop(), await v1.close(), await v2.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: v1.port });
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v2' }, appPort: v2.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('v1 reachable', async () => (await get(web, '/warm')).body === 'v1' || undefined);
  return { v1, v2, web };
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

test('a failing endpoint trips its breaker: traffic moves to the healthy one, and comes back after recovery', async (t) => {
  const a = await controllable('a');
  const b = await controllable('b');
  // Retries on 503 send a failed try to the other endpoint, so fewer failures than the breaker's threshold
  // reach the caller while it trips.
  const mesh = await startMesh(MESH(`---
apiVersion: weft/v1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
    - destinations: [{weight: 100}]
      retries: {attempts: 2, on: [connect-failure, reset, "503"]}
---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: {name: catalog}
spec:
  service: catalog
  loadBalancer: {type: round-robin}
  circuitBreaker: {consecutiveFailures: 3, volumeThreshold: 5, errorThresholdPercentage: 50, resetTimeout: 1s, maxResetTimeout: 4s}
`));
  t.teardown(async () => (await mesh.stop(), await a.close(), await b.close()));
  await mesh.sidecar({ service: 'catalog', appPort: a.port });
  await mesh.sidecar({ service: 'catalog', appPort: b.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('both endpoints', async () => new Set((await many(10, 2, () => get(web, '/warm'))).map((r) => r.body)).size === 2 || undefined);

  a.state.failing = true;
  const hitsBefore = a.state.hits;
  const during = await many(60, 1, () => get(web, '/items'));
  const failed = during.filter((r) => r.status !== 200);
  t.true(failed.length < 3, `${failed.length} failures reached the caller; the breaker's threshold is 3`);
  // Three failures open the breaker; after its reset time a single trial (half-open) may reach it again.
  t.true(a.state.hits - hitsBefore <= 5, `the failing endpoint got ${a.state.hits - hitsBefore} requests`);
  t.true(during.slice(-20).every((r) => r.body === 'b'), 'traffic moved to the healthy endpoint');

  a.state.failing = false;
  await waitFor('the breaker to close and traffic to return', async () => (await many(10, 1, () => get(web, '/items'))).some((r) => r.body === 'a') || undefined, 15_000, 300);
  t.pass();
});

test('with every endpoint open, callers get 503 circuit-open at once', async (t) => {
  const a = await controllable('a');
  a.state.failing = true;
  const mesh = await startMesh(MESH(`---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: {name: catalog}
spec:
  service: catalog
  circuitBreaker: {consecutiveFailures: 2, volumeThreshold: 100, resetTimeout: 30s, maxResetTimeout: 60s}
`));
  t.teardown(async () => (await mesh.stop(), await a.close()));
  await mesh.sidecar({ service: 'catalog', appPort: a.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('catalog reachable', async () => (await get(web, '/x')).body.includes('a failing') || undefined);
  await get(web, '/x');
  const started = Date.now();
  const r = await get(web, '/x');
  t.is(r.status, 503);
  t.is(r.reason, 'circuit-open');
  t.true(Date.now() - started < 200);
});

test('retries stay within the retry budget, and a slow upstream hits the route timeout with a 504', async (t) => {
  const v1 = await controllable('v1');
  const v2 = await controllable('v2');
  v1.state.failing = true;
  v2.state.delayMs = 2000;
  const mesh = await startMesh(MESH(`---
apiVersion: weft/v1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
    - match: [{path: {prefix: /slow}}]
      destinations: [{subset: v2}]
      timeout: 300ms
    - match: [{path: {prefix: /faulty}}]
      destinations: [{subset: v2}]
      fault: {abort: {status: 418, percent: 100}}
    - destinations: [{subset: v1}]
      retries: {attempts: 3, on: ["503"], budget: {percent: 20, minPerSecond: 1}}
`));
  t.teardown(async () => (await mesh.stop(), await v1.close(), await v2.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: v1.port });
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v2' }, appPort: v2.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('v1 reachable', async () => (await get(web, '/warm')).status === 503 || undefined);
  const hitsBefore = v1.state.hits;
  const N = 200;
  const answers = await many(N, 4, () => get(web, '/items'));
  t.true(answers.every((a) => a.status === 503));
  const extra = v1.state.hits - hitsBefore - N;
  // 20% of the requests in the 10 s window plus 1/s for 10 s, and the warm-up's requests count too.
  t.true(extra > 0, 'some retries happened');
  t.true(extra <= N * 0.2 + 10 + 5, `retries added ${extra} requests for ${N}: the budget caps them`);
  // Refused retries are counted: the operator sees the budget biting.
  const metrics = (await web.admin('/metrics')).body;
  const exhausted = Number(/^weft_retry_budget_exhausted_total\{destination_service="catalog\.default"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
  t.true(exhausted > 0, 'weft_retry_budget_exhausted_total counts the retries the budget refused');

  const faulty = await get(web, '/faulty');
  t.is(faulty.status, 418);
  t.is(faulty.reason, 'fault-injected');
  t.false(v2.state.paths.includes('/faulty'), 'an injected abort never reaches the app');

  const started = Date.now();
  const slow = await get(web, '/slow');
  t.is(slow.status, 504);
  t.is(slow.reason, 'timeout');
  t.true(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
});

test('a retry on a 4xx status the policy names (429) is made on the other endpoint, and the caller gets its answer', async (t) => {
  const busy = await controllable('busy');
  const ok = await controllable('ok');
  busy.state.failing = true;
  busy.state.failStatus = 429;
  const mesh = await startMesh(MESH(`---
${routeYaml('catalog', '    - destinations: [{subset: v1}]\n      retries: {attempts: 1, on: ["429"], budget: {percent: 100, minPerSecond: 100}}\n')}---
${trafficPolicyYaml('catalog', '  loadBalancer: {type: round-robin}\n  circuitBreaker: {consecutiveFailures: 2, volumeThreshold: 5, errorThresholdPercentage: 50, resetTimeout: 30s, maxResetTimeout: 60s}\n')}`));
  t.teardown(async () => (await mesh.stop(), await busy.close(), await ok.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: busy.port });
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: ok.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  // Without an answer, a caller waits: give up after 5 s so a lost answer fails the test rather than hanging it.
  const dispatcher = new Agent({ headersTimeout: 5000 });
  t.teardown(() => dispatcher.close());
  await waitFor('the route and both endpoints', async () => (await get(web, '/warm', {}, dispatcher)).status === 200 && busy.state.hits > 0 && ok.state.hits > 0 ? true : undefined);
  const before = busy.state.hits;
  const answers = await many(40, 4, () => get(web, '/items', {}, dispatcher));
  t.deepEqual(new Set(answers.map((a) => `${a.status} ${a.body}`)), new Set(['200 ok']));
  // Round robin sends every other first try to the endpoint answering 429. A 429 is the app's answer, not the
  // endpoint failing: it does not open the breaker (two in a row would), so that endpoint keeps being tried.
  t.true(busy.state.hits - before >= 15, `the endpoint answering 429 got ${busy.state.hits - before} of 40 first tries`);
});

test('an answer that breaks off after its head ends the call: the caller sees the break, and the pending count is given back', async (t) => {
  // The app answers /broken with a head and part of a body, then drops the connection.
  const app = http.createServer((req, res) => {
    if (req.url !== '/broken') return void res.end('whole');
    res.writeHead(200, { 'content-length': '100' });
    res.write('part of it', () => res.socket?.destroy());
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const mesh = await startMesh(MESH(`---\n${trafficPolicyYaml('catalog', '  connectionPool: {maxPendingRequests: 1}\n')}`));
  t.teardown(async () => (await mesh.stop(), app.closeAllConnections(), app.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: (app.address() as AddressInfo).port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('catalog reachable', async () => (await get(web, '/warm')).body === 'whole' || undefined);
  for (let i = 0; i < 3; i++) {
    // The caller gets the head, then the connection is cut before the promised 100 bytes.
    await t.throwsAsync(get(web, '/broken'));
    // With the one pending slot given back, the next call goes through rather than getting 503 overflow.
    t.deepEqual(await get(web, '/after'), { status: 200, body: 'whole', reason: undefined });
  }
});
