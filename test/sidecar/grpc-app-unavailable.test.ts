// gRPC: a peer sidecar whose app is down (nothing listens on its port) answers UNAVAILABLE with `x-weft-reason:
// app-unavailable`; the call reached no app, so the caller's sidecar makes it again on the other endpoint under a
// policy naming `connect-failure` (or the default `on`), though `unavailable` is not named. An app's own
// UNAVAILABLE carrying that header is the app's answer: the header is dropped and the call not retried. Through
// real sidecars, a grpc-js client and server (see resilience/app-unavailable.test.ts for HTTP/1.1).

import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { grpcPrices, pricesClient, pricesProto } from '../helpers/apps.ts';
import { freePort, startMesh, waitFor } from '../helpers/mesh.ts';
import { meshYaml, routeYaml, trafficPolicyYaml } from '../helpers/mesh-yaml.ts';

/** A Prices server whose Get answers UNAVAILABLE with the mesh's reason header, as if it were a sidecar whose app is down. */
async function faker() {
  const server = new grpc.Server();
  let hits = 0;
  server.addService((pricesProto().Prices as unknown as { service: grpc.ServiceDefinition }).service, {
    Get: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      hits++;
      const metadata = new grpc.Metadata();
      metadata.set('x-weft-reason', 'app-unavailable');
      cb({ code: grpc.status.UNAVAILABLE, details: 'faker', metadata });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { port, hits: () => hits, close: () => server.forceShutdown() };
}

const BUDGET = 'budget: {percent: 100, minPerSecond: 100}';
const rule = (name: string, subset: string, retries?: string) =>
  `    - name: ${name}\n      match: [{headers: {x-rule: {exact: ${name}}}}]\n      destinations: [{subset: ${subset}, weight: 100}]\n${retries ? `      retries: ${retries}\n` : ''}`;
const YAML = meshYaml({
  services: { web: '{port: 8080}', prices: '{port: 8082, protocol: grpc, subsets: [{name: down, labels: {down: in}}, {name: fake, labels: {fake: in}}]}' },
  extra: `${routeYaml('prices', [
    rule('down-none', 'down'),
    rule('down-connect', 'down', `{attempts: 1, on: [connect-failure], ${BUDGET}}`),
    rule('down-default', 'down', `{${BUDGET}}`),
    rule('fake', 'fake', `{attempts: 1, on: [connect-failure, reset], ${BUDGET}}`),
    '    - destinations: [{subset: down, weight: 100}]\n',
  ].join(''))}---
${trafficPolicyYaml('prices', '  loadBalancer: {type: round-robin}\n')}`,
});

test('a call to an endpoint whose app is down is made again on the other; an app\'s own UNAVAILABLE with the header is not', async (t) => {
  const live = await grpcPrices();
  const fake = await faker();
  const deadPort = await freePort();
  const mesh = await startMesh(YAML);
  await mesh.sidecar({ service: 'prices', labels: { down: 'in', fake: 'in' }, appPort: live.port });
  await mesh.sidecar({ service: 'prices', labels: { down: 'in' }, appPort: deadPort });
  await mesh.sidecar({ service: 'prices', labels: { fake: 'in' }, appPort: fake.port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['prices'] });
  // grpc-js's own retries off: every retry seen here is the sidecar's.
  const client = pricesClient(web.ports.upstreams.prices!, { 'grpc.enable_retries': 0 });
  t.teardown(async () => (client.close(), await mesh.stop(), await live.close(), fake.close()));
  const call = (rule: string, sku: string) =>
    new Promise<string>((resolve) => {
      const md = new grpc.Metadata();
      md.set('x-rule', rule);
      client.Get({ sku }, md, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null) =>
        resolve(err ? `${grpc.status[err.code]} ${err.metadata?.get('x-weft-reason')[0] ?? '-'} ${err.details}` : 'OK'));
    });
  // (skus beginning "down-" are ones grpcPrices always answers UNAVAILABLE)
  const reached = (prefix: string) => live.seen.filter((s) => s.url.includes(`sku=${prefix}`)).length;

  // Without a retry policy the caller sees the dead endpoint's sidecar answer for its app: so web knows both endpoints.
  await waitFor('both endpoints of subset down', async () => (await call('down-none', 'warm')).startsWith('UNAVAILABLE app-unavailable') || undefined);
  await waitFor('both endpoints of subset fake', async () => (await call('fake', 'warm'), fake.hits() > 0) || undefined);

  for (const rule of ['down-connect', 'down-default']) {
    const answers = [];
    for (let i = 0; i < 10; i++) answers.push(await call(rule, `via-${rule}-${i}`));
    t.deepEqual(answers, Array(10).fill('OK'), `rule ${rule}`);
    t.is(reached(`via-${rule}-`), 10, `rule ${rule}: each call reached the live app once`);
  }

  const before = fake.hits();
  const faked = [];
  for (let i = 0; i < 10; i++) faked.push(await call('fake', `fake-${i}`));
  const fakes = faked.filter((a) => a !== 'OK');
  t.true(fakes.length >= 3, `answers: ${faked}`);
  t.deepEqual(fakes, Array(fakes.length).fill('UNAVAILABLE - faker'), 'the app\'s header dropped, its answer relayed');
  t.is(fake.hits() - before, fakes.length, 'not retried');
  t.is(reached('fake-'), 10 - fakes.length);
});
