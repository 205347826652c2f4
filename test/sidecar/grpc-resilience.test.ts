// Fault injection and the pending limit on gRPC calls, through real sidecars and a real grpc-js client and
// server: an abort arrives as the gRPC status its HTTP status maps to and never reaches the app; a delay holds
// the call, and counts against the route's timeout; a call over maxPendingRequests is refused at once.

import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { grpcMessage } from '../../sidecar/http/grpc-status.ts';
import type { App, PricesClient } from '../helpers/apps.ts';
import type { SidecarProc, TestMesh } from '../helpers/mesh.ts';
import { pricesMesh, type PricesMesh } from '../helpers/prices-mesh.ts';
import { headerRule, meshYaml, routeYaml } from '../helpers/mesh-yaml.ts';

const rule = (name: string, body: string) => headerRule('x-fault', name, body);
const YAML = meshYaml({
  services: { web: '{port: 8080}', prices: '{port: 8082, protocol: grpc}' },
  extra: `${routeYaml('prices', `${rule('unavailable', '      fault: {abort: {status: 503}}\n')}${rule('forbidden', '      fault: {abort: {status: 403}}\n')}${rule('teapot', '      fault: {abort: {status: 418}}\n')}${rule('delay', '      fault: {delay: {fixed: 400ms}}\n')}${rule('late', '      timeout: 150ms\n      fault: {delay: {fixed: 400ms}}\n')}    - destinations: [{weight: 100}]\n`)}---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: {name: prices}
spec:
  service: prices
  connectionPool: {maxPendingRequests: 1}
`,
});

let mesh: TestMesh;
let prices: App;
let web: SidecarProc;
let client: PricesClient;

let shared: PricesMesh;

test.before(async () => {
  shared = await pricesMesh(YAML);
  ({ mesh, prices, web, client } = shared);
});

test.after.always(async () => {
  await shared?.close();
});

/** One Get with x-fault set; its error (or null) and how long it took. */
async function get(fault: string | null, sku: string): Promise<{ err: grpc.ServiceError | null; ms: number }> {
  const md = new grpc.Metadata();
  if (fault) md.set('x-fault', fault);
  const started = Date.now();
  const err = await new Promise<grpc.ServiceError | null>((resolve) => client.Get({ sku }, md, (e: grpc.ServiceError | null) => resolve(e)));
  return { err, ms: Date.now() - started };
}

const reached = (sku: string) => prices.seen.some((s) => s.url.endsWith(`sku=${sku}`));

test.serial('an abort is the gRPC status of its HTTP status (503 UNAVAILABLE, 403 PERMISSION_DENIED, other UNKNOWN), says so, and never reaches the app', async (t) => {
  t.is((await get(null, 'plain')).err, null);
  t.true(reached('plain'));
  for (const [fault, code, status] of [['unavailable', grpc.status.UNAVAILABLE, 503], ['forbidden', grpc.status.PERMISSION_DENIED, 403], ['teapot', grpc.status.UNKNOWN, 418]] as const) {
    const { err } = await get(fault, `aborted-${fault}`);
    t.is(err?.code, code, fault);
    t.is(err?.details, `weft: fault injected by route prices: abort with ${status}`);
    t.is(err?.metadata.get('x-weft-reason')[0], 'fault-injected');
    t.false(reached(`aborted-${fault}`), `${fault} reached the app`);
  }
});

test('grpc-message escapes only what the gRPC spec says (%, and bytes outside printable ASCII), so a message arrives as written', (t) => {
  t.is(grpcMessage('weft: a/b?c=d 100% ok'), 'weft: a/b?c=d 100%25 ok');
  t.is(grpcMessage('prix: 5 €\n'), 'prix: 5 %E2%82%AC%0A');
  t.is(decodeURIComponent(grpcMessage('weft: 5 € 100%')), 'weft: 5 € 100%');
});

test.serial('a delay holds the call and then lets it through; past the route timeout it ends with DEADLINE_EXCEEDED', async (t) => {
  const delayed = await get('delay', 'delayed');
  t.is(delayed.err, null);
  t.true(delayed.ms >= 380, `took ${delayed.ms} ms`);
  t.true(reached('delayed'));

  const late = await get('late', 'late');
  t.is(late.err?.code, grpc.status.DEADLINE_EXCEEDED);
  t.regex(late.err?.details ?? '', /within the route's timeout of 150 ms/);
  t.true(late.ms < 380, `took ${late.ms} ms: the timeout must not wait for the delay`);
  await new Promise((r) => setTimeout(r, 400));
  t.false(reached('late'), 'a call that timed out during its delay must not be sent afterwards');
});

test.serial('over maxPendingRequests a call is refused at once with UNAVAILABLE (overflow); once the pending one ends, calls go through', async (t) => {
  const slow = get(null, 'slow'); // the app answers it after 2 s
  await new Promise((r) => setTimeout(r, 300));
  const refused = await get(null, 'refused');
  t.is(refused.err?.code, grpc.status.UNAVAILABLE);
  t.is(refused.err?.metadata.get('x-weft-reason')[0], 'overflow');
  t.true(refused.ms < 1000, `took ${refused.ms} ms`);
  t.false(reached('refused'));
  t.is((await slow).err, null);
  t.is((await get(null, 'after')).err, null);
});
