// Resilience through real sidecars: circuit breakers (and what counts against them), retries within their
// budget, a 4xx the retry policy names, the route timeout, and the pending limit given back by an answer that
// breaks off; the HTTP/1 per-try timeout, from the end of the request; a new maxConnections on the next push.

import test from 'ava';
import http from 'node:http';
import { once } from 'node:events';
import net from 'node:net';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { controllable, get, many, MESH } from '../helpers/catalog.ts';
import { startMesh, waitFor } from '../helpers/mesh.ts';
import { routeYaml, trafficPolicyYaml } from '../helpers/mesh-yaml.ts';

test('a failing endpoint trips its breaker: traffic moves to the healthy one, and comes back after recovery', async (t) => {
  const a = await controllable('a');
  const b = await controllable('b');
  // Retries on 503 send a failed try to the other endpoint, so fewer failures than the breaker's threshold
  // reach the caller while it trips.
  const mesh = await startMesh(MESH(`---
${routeYaml('catalog', '    - destinations: [{weight: 100}]\n      retries: {attempts: 2, on: [connect-failure, reset, "503"]}\n')}---
${trafficPolicyYaml('catalog', '  loadBalancer: {type: round-robin}\n  circuitBreaker: {consecutiveFailures: 3, volumeThreshold: 5, errorThresholdPercentage: 50, resetTimeout: 1s, maxResetTimeout: 4s}\n')}`));
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
  const mesh = await startMesh(MESH(`---\n${trafficPolicyYaml('catalog', '  circuitBreaker: {consecutiveFailures: 2, volumeThreshold: 100, resetTimeout: 30s, maxResetTimeout: 60s}\n')}`));
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
${routeYaml('catalog', `    - match: [{path: {prefix: /slow}}]
      destinations: [{subset: v2}]
      timeout: 300ms
    - match: [{path: {prefix: /faulty}}]
      destinations: [{subset: v2}]
      fault: {abort: {status: 418, percent: 100}}
    - destinations: [{subset: v1}]
      retries: {attempts: 3, on: ["503"], budget: {percent: 20, minPerSecond: 1}}
`)}`));
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

test('the HTTP/1 per-try timeout runs from the end of the request: a slow upload goes through, a slow answer gets 504 timeout', async (t) => {
  const v1 = await controllable('v1');
  const mesh = await startMesh(MESH(`---
${routeYaml('catalog', `    - destinations: [{subset: v1}]
      timeout: 10s
      retries: {attempts: 1, perTryTimeout: 400ms, on: ["503"], budget: {percent: 100, minPerSecond: 10}}
`)}`));
  t.teardown(async () => (await mesh.stop(), await v1.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: v1.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('v1 reachable', async () => (await get(web, '/warm')).status === 200 || undefined);

  // 200 KB (past what a retry keeps, so it is streamed) in ten pieces over 1.2 s: three times the per-try timeout.
  async function* slowly() {
    for (let i = 0; i < 10; i++) {
      yield Buffer.alloc(20_000, 97);
      await new Promise((r) => setTimeout(r, 120));
    }
  }
  const upload = await request(`http://127.0.0.1:${web.ports.outbound}/upload`, { method: 'PUT', headers: { host: 'catalog' }, body: Readable.from(slowly()) });
  t.is(upload.statusCode, 200, await upload.body.text());
  t.true(v1.state.bodies.includes('PUT /upload 200000 bytes'), JSON.stringify(v1.state.bodies));

  v1.state.delayMs = 2000;
  const started = Date.now();
  const slow = await get(web, '/slow');
  t.is(slow.status, 504);
  t.is(slow.reason, 'timeout');
  t.regex(slow.body, /catalog\.default at 127\.0\.0\.1:\d+: no answer within the per-try timeout of 400 ms/);
  t.true(Date.now() - started < 1500, `took ${Date.now() - started} ms`);

  // A caller that leaves while its body is read for a possible retry is no fault of the sidecar's to log as one.
  const leaver = net.connect(web.ports.outbound, '127.0.0.1');
  leaver.on('error', () => {});
  await once(leaver, 'connect');
  leaver.write('PUT /left HTTP/1.1\r\nhost: catalog\r\ncontent-length: 1000\r\n\r\npartial');
  await new Promise((r) => setTimeout(r, 200));
  leaver.destroy();
  await new Promise((r) => setTimeout(r, 300));
  t.notRegex(web.logs(), /failed unexpectedly/);
});

test("a TrafficPolicy's new maxConnections holds from the next push, for endpoints already in use", async (t) => {
  let inFlight = 0;
  let peak = 0;
  const app = http.createServer((req, res) => {
    peak = Math.max(peak, ++inFlight);
    setTimeout(() => (inFlight--, res.end('ok')), 150);
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const policy = (n: number) => MESH(`---\n${trafficPolicyYaml('catalog', `  connectionPool: {maxConnections: ${n}}\n`)}`);
  const mesh = await startMesh(policy(1));
  t.teardown(async () => (await mesh.stop(), app.closeAllConnections(), app.close()));
  await mesh.sidecar({ service: 'catalog', appPort: (app.address() as AddressInfo).port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('catalog reachable', async () => (await get(web, '/warm')).status === 200 || undefined);
  const burst = async () => {
    peak = 0;
    const answers = await many(8, 8, () => get(web, '/burst'));
    t.true(answers.every((a) => a.status === 200));
    return peak;
  };
  t.is(await burst(), 1, 'one connection from web to catalog');
  await mesh.apply(policy(8));
  await waitFor('the new policy in web', async () => JSON.parse((await web.admin('/config')).body).snapshot.upstreams.find((u: { service: { name: string } }) => u.service.name === 'catalog')?.trafficPolicy?.connectionPool.maxConnections === 8 || undefined);
  t.true((await burst()) > 1, 'still one connection after maxConnections went to 8');
});

test('outlier detection ejects an endpoint after consecutive 5xx: traffic goes to the other until the ejection ends', async (t) => {
  const v1 = await controllable('v1');
  const v2 = await controllable('v2');
  v1.state.failing = true;
  const mesh = await startMesh(MESH(`---\n${trafficPolicyYaml('catalog', '  loadBalancer: {type: round-robin}\n  outlierDetection: {consecutive5xx: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}\n')}`));
  t.teardown(async () => (await mesh.stop(), await v1.close(), await v2.close()));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: v1.port });
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v2' }, appPort: v2.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('both endpoints in web\'s config', async () => JSON.parse((await web.admin('/config')).body).snapshot.upstreams.find((u: { service: { name: string } }) => u.service.name === 'catalog')?.endpoints.length === 2 || undefined);
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) statuses.push((await get(web, `/items/${i}`)).status);
  // Round robin alternates; v1's second 503 in a row ejects it, and every later call goes to v2.
  t.is(statuses.filter((s) => s === 503).length, 2, statuses.join(' '));
  t.deepEqual(statuses.slice(-14), Array(14).fill(200));
  t.regex(web.logs(), /"msg":"outlier ejected","upstream":"catalog\.default","endpoint":"127\.0\.0\.1:\d+","forMs":30000/);
});
