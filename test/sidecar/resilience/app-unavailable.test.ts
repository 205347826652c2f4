// A peer sidecar whose app is down (nothing listens on its port) answers 503 `x-weft-reason: app-unavailable`: the
// request provably reached no app, so the caller's sidecar counts it as a connect failure to that endpoint and
// retries it on another (under `connect-failure` or `reset`, as with the default `on`), and its breaker counts the
// failure. Only a peer sidecar can say so: an app's own x-weft-* headers are dropped, so an app that answers 503
// with that header is not retried; an app that resets the connection after reading the request is `app-reset`, not
// retried under `connect-failure`. HTTP/1.1 through real sidecars (see ../grpc-app-unavailable.test.ts for gRPC).

import test from 'ava';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { controllable, get } from '../../helpers/catalog.ts';
import { freePort, startMesh, waitFor, type SidecarProc } from '../../helpers/mesh.ts';
import { meshYaml, routeYaml, trafficPolicyYaml } from '../../helpers/mesh-yaml.ts';
import { sample } from '../../helpers/metrics.ts';

/** An HTTP app that counts its requests and answers each with `answer` (which may also reset the connection). */
async function app(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const state = { hits: 0 };
  const server = http.createServer((req, res) => {
    state.hits++;
    req.resume().on('end', () => answer(req, res));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { state, port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

const BUDGET = 'budget: {percent: 100, minPerSecond: 100}';
/** A rule for requests whose x-rule is `name`, to `subset`, with `retries` (YAML flow) if given. */
const rule = (name: string, subset: string, retries?: string) =>
  `    - name: ${name}\n      match: [{headers: {x-rule: {exact: ${name}}}}]\n      destinations: [{subset: ${subset}, weight: 100}]\n${retries ? `      retries: ${retries}\n` : ''}`;
const SUBSETS = '[{name: down, labels: {down: in}}, {name: fake, labels: {fake: in}}, {name: reset, labels: {reset: in}}]';
// Round robin, so that first tries alternate between a subset's two endpoints.
const ROUND_ROBIN = '  loadBalancer: {type: round-robin}\n';
const YAML = (policy = ROUND_ROBIN) => meshYaml({
  services: { web: '{port: 8080}', catalog: `{port: 8081, subsets: ${SUBSETS}}` },
  extra: `${routeYaml('catalog', [
    rule('down-none', 'down'),
    rule('down-connect', 'down', `{attempts: 1, on: [connect-failure], ${BUDGET}}`),
    rule('down-reset', 'down', `{attempts: 1, on: [reset], ${BUDGET}}`),
    rule('down-default', 'down', `{${BUDGET}}`),
    rule('fake', 'fake', `{attempts: 1, on: [connect-failure, reset], ${BUDGET}}`),
    rule('reset', 'reset', `{attempts: 1, on: [connect-failure], ${BUDGET}}`),
    '    - destinations: [{subset: down, weight: 100}]\n',
  ].join(''))}---
${trafficPolicyYaml('catalog', policy)}`,
});

const retries = async (web: SidecarProc, subset: string) => sample((await web.admin('/metrics')).body, 'weft_retries_total', { destination_service: 'catalog.default', destination_subset: subset }) || 0;

test('an endpoint whose app is down is routed around: retried on the other under connect-failure, reset or the default `on`; its breaker counts it', async (t) => {
  const live = await controllable('live');
  // An app that answers 503 with the mesh's reason header, as if it were a sidecar whose app is down.
  const faker = await app((_req, res) => res.writeHead(503, { 'x-weft-reason': 'app-unavailable', 'content-type': 'text/plain' }).end('faker'));
  // An app that reads the request and then resets the connection, never answering.
  const resetter = await app((req) => req.socket.resetAndDestroy());
  const deadPort = await freePort();
  const mesh = await startMesh(YAML());
  t.teardown(async () => (await mesh.stop(), await live.close(), await faker.close(), await resetter.close()));
  await mesh.sidecar({ service: 'catalog', labels: { down: 'in', fake: 'in', reset: 'in' }, appPort: live.port });
  const dead = await mesh.sidecar({ service: 'catalog', labels: { down: 'in' }, appPort: deadPort });
  await mesh.sidecar({ service: 'catalog', labels: { fake: 'in' }, appPort: faker.port });
  await mesh.sidecar({ service: 'catalog', labels: { reset: 'in' }, appPort: resetter.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });

  // Without a retry policy the caller sees the dead endpoint's sidecar answer for its app: so web knows both endpoints.
  const seen = new Set<string>();
  await waitFor('both endpoints of subset down', async () => {
    const r = await get(web, '/warm', { 'x-rule': 'down-none' });
    seen.add(`${r.status} ${r.reason ?? r.body}`);
    return seen.has('200 live') && seen.has('503 app-unavailable');
  });
  await waitFor('both endpoints of subset fake', async () => (await get(web, '/warm', { 'x-rule': 'fake' }), faker.state.hits > 0 && live.state.hits > 0) || undefined);
  await waitFor('both endpoints of subset reset', async () => (await get(web, '/warm', { 'x-rule': 'reset' }), resetter.state.hits > 0) || undefined);

  for (const name of ['down-connect', 'down-reset', 'down-default']) {
    const [hits, before] = [live.state.hits, await retries(web, 'down')];
    const answers = [];
    for (let i = 0; i < 10; i++) answers.push(await get(web, `/${name}-${i}`, { 'x-rule': name }));
    t.deepEqual(answers.map((a) => `${a.status} ${a.reason ?? a.body}`), Array(10).fill('200 live'), `rule ${name}`);
    t.is(live.state.hits - hits, 10, `rule ${name}: each call reached the live app once`);
    // Round robin: about half the first tries went to the dead endpoint; each was made again once, no more.
    const made = (await retries(web, 'down')) - before;
    t.true(made >= 3 && made <= 10, `rule ${name}: ${made} retries`);
  }

  // The app's own 503 with that header reached an app: relayed as it is (the header dropped), never retried.
  const [fakeHits, liveHits, fakeRetries] = [faker.state.hits, live.state.hits, await retries(web, 'fake')];
  const faked = [];
  for (let i = 0; i < 10; i++) faked.push(await get(web, `/fake-${i}`, { 'x-rule': 'fake' }));
  const fakes = faked.filter((a) => a.status === 503);
  t.true(fakes.length >= 3, `answers: ${JSON.stringify(faked)}`);
  t.deepEqual(fakes.map((a) => `${a.reason} ${a.body}`), Array(fakes.length).fill('undefined faker'));
  t.is(faker.state.hits - fakeHits, fakes.length);
  t.is(live.state.hits - liveHits, 10 - fakes.length);
  t.is((await retries(web, 'fake')) - fakeRetries, 0);

  // An app that reset the connection had the request: `app-reset`, not retried under connect-failure alone.
  const [resetHits, resetRetries] = [resetter.state.hits, await retries(web, 'reset')];
  const reset = [];
  for (let i = 0; i < 10; i++) reset.push(await get(web, `/reset-${i}`, { 'x-rule': 'reset' }));
  const resets = reset.filter((a) => a.status !== 200);
  t.true(resets.length >= 3, `answers: ${JSON.stringify(reset)}`);
  t.deepEqual(resets.map((a) => `${a.status} ${a.reason}`), Array(resets.length).fill('503 app-reset'));
  t.is(resetter.state.hits - resetHits, resets.length);
  t.is((await retries(web, 'reset')) - resetRetries, 0);

  // The dead endpoint is failing as far as its breaker goes: with one, it opens, and calls still succeed.
  await mesh.apply(YAML(`${ROUND_ROBIN}  circuitBreaker: {consecutiveFailures: 2, volumeThreshold: 100, errorThresholdPercentage: 100, resetTimeout: 30s, maxResetTimeout: 60s}\n`));
  const endpoint = `127.0.0.1:${dead.ports.inbound}`;
  const open = async () => sample((await web.admin('/metrics')).body, 'weft_circuit_breaker_state', { destination_service: 'catalog.default', endpoint, state: 'open' }) === 1;
  const after: string[] = [];
  await waitFor('the dead endpoint\'s breaker to open', async () => {
    const r = await get(web, '/breaker', { 'x-rule': 'down-connect' });
    after.push(`${r.status} ${r.reason ?? r.body}`);
    return (await open()) || undefined;
  });
  t.deepEqual(after, Array(after.length).fill('200 live'));
});
