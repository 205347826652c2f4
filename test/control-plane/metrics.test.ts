// The control plane's /metrics (--metrics-listen, WEFT_METRICS_LISTEN) through real processes: a control plane and
// three real sidecars, scraped over HTTP as Prometheus would and checked by promtool. The counters of single
// events (certificate refusals, NACKs, stream lines) are in ./metrics-counts.test.ts.

import test from 'ava';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { tempDir } from '../helpers/ca.ts';
import { weft } from '../helpers/cli.ts';
import { promtool, sample } from '../helpers/metrics.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';
import { startMesh, waitFor, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';

const SERVICES = { web: '{port: 8080}', catalog: '{port: 8081, subsets: [{name: v1, labels: {version: v1}}]}' };
const YAML = meshYaml({ services: SERVICES });
const P = 'weft_control_plane_';

let mesh: TestMesh;
let metricsUrl: string;
let sidecars: SidecarProc[];

async function scrape(url = metricsUrl): Promise<string> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  return res.text();
}

/** TCP ports process `pid` listens on (Linux: its socket descriptors, found in /proc/net/tcp and tcp6). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed while we looked
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // st 0A is LISTEN; the inode is the tenth column
      if (f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

test.before(async () => {
  mesh = await startMesh(YAML, { controlPlaneEnv: { WEFT_METRICS_LISTEN: '127.0.0.1:0' } });
  metricsUrl = await waitFor('the control plane to print where its metrics are', () => /^control plane metrics on (\S+)$/m.exec(mesh.controlPlane.logs())?.[1]);
  sidecars = await Promise.all([
    mesh.sidecar({ service: 'web', appPort: 1 }),
    mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: 1 }),
    mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: 1 }),
  ]);
});

test.after.always(async () => {
  await mesh?.stop();
});

test.serial('with sidecars connected: counted by namespace and service, each bootstrap certificate counted, promtool passes', async (t) => {
  const res = await fetch(metricsUrl);
  t.is(res.status, 200);
  t.is(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await waitFor('all three sidecars synced', async () => {
    const text = await scrape();
    return sample(text, `${P}sidecars_by_state`, { state: 'synced' }) === 3 ? text : undefined;
  });
  t.is(sample(text, `${P}sidecars_connected`, { namespace: 'default', service: 'web' }), 1);
  t.is(sample(text, `${P}sidecars_connected`, { namespace: 'default', service: 'catalog' }), 2);
  t.is(sample(text, `${P}sidecars_by_state`, { state: 'nack' }), 0);
  t.is(sample(text, `${P}certificates_issued_total`, { kind: 'bootstrap' }), 3);
  t.is(sample(text, `${P}certificates_issued_total`, { kind: 'renewal' }), 0);
  // Each sidecar's stream began with a full snapshot, and the ones connected before another got deltas.
  t.is(sample(text, `${P}snapshots_sent_total`, { type: 'full' }), 3);
  t.true(sample(text, `${P}snapshot_acks_total`, { result: 'ack' }) >= 3);
  t.is(sample(text, `${P}config_applies_total`, { result: 'applied' }), 0, 'the config the control plane started with was not applied by anyone');
  t.true(sample(text, 'process_resident_memory_bytes') > 10e6);
  t.true(sample(text, 'process_cpu_seconds_total') > 0);
  t.true(Math.abs(sample(text, 'process_start_time_seconds') - Date.now() / 1000) < 600);
  t.true(sample(text, 'nodejs_heap_size_used_bytes') > 0 && sample(text, 'nodejs_heap_size_used_bytes') <= sample(text, 'nodejs_heap_size_total_bytes'));
  t.true(sample(text, 'nodejs_external_memory_bytes') > 0);
  // Labels are bounded: no identity, token or key of any one sidecar.
  t.notRegex(text, /spiffe:|BEGIN|eyJ/);
  const check = await promtool(text);
  t.is(check.code, 0, `promtool: ${check.output}`);
});

test.serial('a config change raises the version; every sidecar ACKs it, and its convergence time is observed', async (t) => {
  const before = await scrape();
  const version0 = sample(before, `${P}config_version`);
  const acks0 = sample(before, `${P}snapshot_acks_total`, { result: 'ack' });
  const converged0 = sample(before, `${P}push_convergence_seconds_count`);
  // A new Service: pushed to every sidecar (each gets an upstream for it), and counted at 0 sidecars at once.
  await mesh.apply(meshYaml({ services: { ...SERVICES, prices: '{port: 8082}' } }));
  const after = await waitFor('three ACKs of the new version', async () => {
    const text = await scrape();
    const done = sample(text, `${P}config_version`) > version0 && sample(text, `${P}push_convergence_seconds_count`) >= converged0 + 3 && sample(text, `${P}sidecars_by_state`, { state: 'synced' }) === 3;
    return done ? text : undefined;
  });
  t.is(sample(after, `${P}config_applies_total`, { result: 'applied' }), 1);
  t.true(sample(after, `${P}snapshot_acks_total`, { result: 'ack' }) >= acks0 + 3);
  t.is(sample(after, `${P}snapshot_version`), sample(after, `${P}config_version`));
  t.is(sample(after, `${P}sidecars_connected`, { namespace: 'default', service: 'prices' }), 0);
  const count = sample(after, `${P}push_convergence_seconds_count`);
  t.is(sample(after, `${P}push_convergence_seconds_bucket`, { le: '+Inf' }), count);
  const sum = sample(after, `${P}push_convergence_seconds_sum`);
  t.true(sum > 0 && sum / count < 5, `mean convergence ${sum / count} s`);
  // What the control plane says it pushed is what each sidecar says it holds.
  for (const s of sidecars) t.is(sample((await s.admin('/metrics')).body, 'weft_config_version'), sample(after, `${P}snapshot_version`));
});

test.serial('a config refused whole counts as rejected; no version moves', async (t) => {
  const before = await scrape();
  const bad = join(mesh.dir, 'bad.yaml');
  writeFileSync(bad, YAML.replace('port: 8080', 'port: eighty'));
  const r = await weft(['apply', '-f', bad, '--state', mesh.state]);
  t.is(r.code, 1, r.stderr);
  const after = await scrape();
  t.is(sample(after, `${P}config_applies_total`, { result: 'rejected' }), sample(before, `${P}config_applies_total`, { result: 'rejected' }) + 1);
  t.is(sample(after, `${P}config_applies_total`, { result: 'applied' }), sample(before, `${P}config_applies_total`, { result: 'applied' }));
  t.is(sample(after, `${P}config_version`), sample(before, `${P}config_version`));
});

test('the metrics port serves GET /metrics and nothing else: another method is 405, another path 404', async (t) => {
  for (const method of ['POST', 'PUT', 'DELETE', 'HEAD']) {
    const res = await fetch(metricsUrl, { method });
    t.is(res.status, 405, method);
    t.is(res.headers.get('allow'), 'GET');
    t.is(res.headers.get('x-weft-reason'), 'WEFT_API_METHOD_NOT_ALLOWED');
  }
  for (const path of ['/', '/metrics/', '/v1/status', '/debug']) {
    const res = await fetch(new URL(path, metricsUrl));
    t.is(res.status, 404, path);
    t.is(res.headers.get('x-weft-reason'), 'WEFT_API_NOT_FOUND');
    t.is(((await res.json()) as { error: { code: string } }).error.code, 'WEFT_API_NOT_FOUND');
  }
  t.is((await fetch(`${metricsUrl}?name[]=x`)).status, 200, 'a query string is ignored');
});

test('without the flag the control plane listens on its API port alone; with it, on the metrics port too', async (t) => {
  const apiPort = (u: string) => Number(new URL(u).port);
  t.deepEqual(listeningPorts(mesh.controlPlane.child.pid!), [apiPort(mesh.url), apiPort(metricsUrl)].sort((a, b) => a - b));
  t.is(JSON.parse(readFileSync(join(mesh.state, 'control-plane.json'), 'utf8')).metricsUrl, metricsUrl);

  const plain = await startMesh(YAML);
  t.teardown(() => plain.stop());
  t.deepEqual(listeningPorts(plain.controlPlane.child.pid!), [apiPort(plain.url)]);
  t.notRegex(plain.controlPlane.logs(), /metrics on/);
  t.false('metricsUrl' in JSON.parse(readFileSync(join(plain.state, 'control-plane.json'), 'utf8')));
});

test('a taken --metrics-listen port, or no HOST:PORT, is an error naming the flag; the state dir is left as it was', async (t) => {
  const held = net.createServer((s) => s.destroy()).listen(0, '127.0.0.1');
  await once(held, 'listening');
  t.teardown(() => held.close());
  const port = (held.address() as net.AddressInfo).port;
  const state = join(tempDir(), 'state');
  const base = ['control-plane', '--config', 'examples/shop/mesh.yaml', '--state', state, '--listen', '127.0.0.1:0'];
  const taken = await weft([...base, '--metrics-listen', `127.0.0.1:${port}`]);
  t.is(taken.code, 1);
  t.regex(taken.stderr, new RegExp(`^weft: cannot listen on 127\\.0\\.0\\.1:${port} \\(--metrics-listen\\): the address is already in use \\(EADDRINUSE\\); is another control plane, or another exporter, serving metrics there\\? Pass another --metrics-listen HOST:PORT, or port 0 for a free one .* \\[WEFT_LISTEN_FAILED\\]$`, 'm'));
  t.notRegex(taken.stderr, /unexpected error|    at /);
  t.false(existsSync(state), 'a start that failed made nothing');

  const malformed = await weft([...base, '--metrics-listen', '127.0.0.1']);
  t.is(malformed.code, 2);
  t.regex(malformed.stderr, /^weft: --metrics-listen "127\.0\.0\.1" must be HOST:PORT with a port from 0 to 65535/m);
  const fromEnv = await weft(base, { env: { ...process.env, WEFT_METRICS_LISTEN: '127.0.0.1:99999' } });
  t.is(fromEnv.code, 2);
  t.regex(fromEnv.stderr, /^weft: --metrics-listen "127\.0\.0\.1:99999" \(from WEFT_METRICS_LISTEN\) must be HOST:PORT/m);
  const clash = await weft([...base, '--listen', '127.0.0.1:15010', '--metrics-listen', ':15010']);
  t.is(clash.code, 2);
  t.regex(clash.stderr, /^weft: --metrics-listen ":15010" would take the API's port \(--listen 127\.0\.0\.1:15010\); give metrics a port of their own/m);
  const noHost = await weft([...base, '--metrics-listen', 'nosuch.invalid:0']);
  t.is(noHost.code, 1);
  t.regex(noHost.stderr, /^weft: cannot listen on nosuch\.invalid:0 \(--metrics-listen\): no such host \(ENOTFOUND\)/m);
});
