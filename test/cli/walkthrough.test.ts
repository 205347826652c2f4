// The README's walk through the shop, end to end: weft up, then weft canary and weft top, a denial explained by
// weft policy check, a breaker tripping when a catalog instance fails, a trace received by weft traces, and saves
// of the config file: a bad one refused in weft up's own terminal, a good one applied. (On a copy of the shop,
// since the test edits its config.)

import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { tempDir } from '../helpers/ca.ts';
import { REPO, WEFT, weft } from '../helpers/cli.ts';
import { waitFor } from '../helpers/mesh.ts';
import { exampleCopy, freeBase, portsFree, readySummary, startUp } from '../helpers/up.ts';

const ID = (sa: string) => `spiffe://shop.example/ns/default/sa/${sa}`;

test('the walkthrough: canary and top, policy check, a breaker tripping, a trace, saving the config', async (t) => {
  // The example shop sends spans to 127.0.0.1:4318; the receiver must own that port.
  if (!(await portsFree([4318]))) {
    t.fail('port 4318 (the example mesh\'s tracing endpoint) is taken on this machine');
    return;
  }
  const traces = spawn(WEFT, ['traces', '--listen', '127.0.0.1:4318', '--json'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let traceOut = '';
  traces.stdout!.setEncoding('utf8').on('data', (d: string) => (traceOut += d));
  const state = join(tempDir('weft-walk-'), 'state');
  const file = exampleCopy();
  const up = startUp(['--state', state, '--base-port', String(await freeBase(1))], file);
  t.teardown(async () => {
    up.child.kill('SIGINT');
    traces.kill('SIGINT');
    await up.exited;
  });
  const summary = await readySummary(up, 90_000);
  const ingress = /Open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(summary)![1]!;
  const v1App = Number(/catalog\.ts on :(\d+) \(version=v1\)/.exec(summary)![1]);
  const api = async () => {
    const r = await request(`${ingress}api`);
    return { status: r.statusCode, body: await r.body.text() };
  };
  const traffic = async (n: number) => {
    for (let i = 0; i < n; i++) await api();
  };
  /** Runs `weft top --once` (it measures over the next 2 s) while requests keep flowing. */
  const topDuringTraffic = async () => {
    let stop = false;
    const loop = (async () => {
      while (!stop) await api();
    })();
    const r = await weft(['top', '--once', '--json', '--state', state]);
    stop = true;
    await loop;
    return r;
  };

  // Shift the canary, watch it in top.
  const canary = await weft(['canary', 'catalog', '--subset', 'v2', '--weight', '50', '--state', state]);
  t.is(canary.code, 0, canary.stderr);
  t.regex(canary.stdout, /catalog\.default: v1 50%, v2 50% \(config version \d+, pushed\)/);
  const top = await topDuringTraffic();
  t.is(top.code, 0, top.stderr);
  const rows = JSON.parse(top.stdout).rows as { service: string; subset: string | null; requests: number; successRate: number | null }[];
  const row = (subset: string) => rows.find((r) => r.service === 'catalog.default' && r.subset === subset);
  t.true((row('v1')?.requests ?? 0) > 0 && (row('v2')?.requests ?? 0) > 0, top.stdout);

  // A denial, explained.
  const check = await weft(['policy', 'check', '--from', ID('ingress'), '--to', 'catalog', '--path', '/items', '--state', state]);
  t.is(check.code, 3);
  t.regex(check.stdout, /^DENY \(403\): GET \/items from spiffe:\/\/shop\.example\/ns\/default\/sa\/ingress to catalog\.default/);
  t.regex(check.stdout, /decided by default\/catalog-allow-web/);

  // A breaker trips when catalog v1 fails.
  await request(`http://127.0.0.1:${v1App}/fail?on=1`).then((r) => r.body.dump());
  await waitFor('web\'s sidecar to open v1\'s breaker', async () => {
    await traffic(5);
    return readFileSync(join(state, 'logs', 'web.log'), 'utf8').includes('"msg":"circuit breaker open"') || undefined;
  }, 30_000);
  const after = JSON.parse((await topDuringTraffic()).stdout).rows as typeof rows;
  const v1 = after.find((r) => r.service === 'catalog.default' && r.subset === 'v1');
  t.is(v1?.successRate, 0, JSON.stringify(after));
  await request(`http://127.0.0.1:${v1App}/fail?on=0`).then((r) => r.body.dump());

  // A trace: ingress → web → catalog in one trace, with the identities on the spans.
  const trace = await waitFor('a trace through ingress, web and catalog', () => {
    for (const line of traceOut.split('\n').filter(Boolean)) {
      const tr = JSON.parse(line) as { spans: { resource: Record<string, string>; kind: number; attributes: Record<string, unknown> }[] };
      const services = new Set(tr.spans.map((s) => s.resource['service.name']));
      if (services.has('ingress') && services.has('web') && services.has('catalog')) return tr;
    }
    return undefined;
  }, 30_000);
  t.true(trace.spans.some((s) => s.attributes['weft.source.identity'] === ID('web') && s.attributes['weft.destination.identity'] === ID('catalog')));

  // Saving the config file: a mistake is refused whole, and weft up's terminal says so, where and why.
  const yaml = readFileSync(file, 'utf8');
  writeFileSync(file, yaml.replace('weight: 90', 'weight: 80'));
  await waitFor('weft up to tell of the refused save', () => up.stderr().includes(`weft up: config ${file} changed but is not valid; the last good config stays live:`) || undefined, 15_000);
  t.regex(up.stderr(), /\n {2,}\S*mesh\.yaml:\d+:\d+: Route default\/catalog .*weights sum to 90/);
  const split = async () => (await weft(['route', 'show', 'catalog', '--state', state])).stdout;
  t.regex(await split(), /v1 50%, v2 50%/, 'the canary set before stays live');
  writeFileSync(file, yaml.replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20'));
  await waitFor('weft up to tell of the applied save', () => new RegExp(`weft up: config ${file} changed: applied as version \\d+`).test(up.stderr()) || undefined, 15_000);
  t.regex(await split(), /v1 80%, v2 20%/);
});
