import test from 'ava';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isWeftError } from '../../errors.ts';
import type { Snapshot } from '../../control-plane/snapshot/types.ts';
import { MESH_YAML, startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { weft } from '../helpers/cli.ts';
import { waitFor } from '../helpers/mesh.ts';
import { bootstrap, StubSidecar, type StubOptions } from '../helpers/stub-sidecar.ts';

async function stub(cp: TestControlPlane, service: string, opts: Partial<StubOptions> = {}): Promise<StubSidecar> {
  const op = cp.operator();
  const { token } = await op.request<{ token: string }>('POST', '/v1/tokens', { service, namespace: 'default' });
  op.close();
  const o = { ...cp.conn, service, ...opts };
  const s = new StubSidecar(o, await bootstrap(cp.conn, token));
  await s.connect();
  return s;
}

/**
 * Waits until `sidecar` holds the latest version and has for 300 ms (longer than the push debounce, so its own
 * registration's push is in): the mesh at rest.
 */
async function settled(cp: TestControlPlane, sidecar: StubSidecar): Promise<Snapshot> {
  const op = cp.operator();
  try {
    let since = null as { version: number; at: number } | null;
    for (let i = 0; i < 100; i++) {
      const status = await op.request<{ version: number; sidecars: { id: string; ack: string; ackedVersion: number }[] }>('GET', '/v1/status');
      const me = status.sidecars.find((s) => s.id === sidecar.id);
      const atLatest = me?.ack === 'SYNCED' && me.ackedVersion === status.version && sidecar.latest?.version === status.version;
      if (!atLatest) since = null;
      else if (since?.version !== status.version) since = { version: status.version, at: Date.now() };
      else if (Date.now() - since.at >= 300) return sidecar.latest!;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`sidecar ${sidecar.id} never settled at the latest version`);
  } finally {
    op.close();
  }
}

const catalogWeights = (s: Snapshot) => s.body.upstreams.find((u) => u.service.name === 'catalog')?.route?.rules[0]?.destinations.map((d) => d.weight);
const catalogEndpoints = (s: Snapshot) => s.body.upstreams.find((u) => u.service.name === 'catalog')!.endpoints.map((e) => e.address);

test('two sidecars receive their snapshot, then a pushed change; status shows them SYNCED', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  const catalog = await stub(cp, 'catalog', { labels: { version: 'v1' }, address: '127.0.0.1:7001' });
  t.teardown(() => (web.close(), catalog.close()));

  const first = await web.waitFor((s) => catalogEndpoints(s).includes('127.0.0.1:7001'));
  t.deepEqual(catalogWeights(first), [90, 10]);
  t.is(first.body.service.identity, 'spiffe://shop.example/ns/default/sa/web');
  t.deepEqual(first.body.upstreams.find((u) => u.service.name === 'catalog')!.expectedIdentities, ['spiffe://shop.example/ns/default/sa/catalog']);
  t.true(first.body.trustBundle.includes('BEGIN CERTIFICATE'));
  await catalog.waitFor(() => true);

  const op = cp.operator();
  t.teardown(() => op.close());
  const applied = await op.request<{ version: number }>('PUT', '/v1/config', MESH_YAML.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50'), { contentType: 'application/yaml' });
  const [w, c] = await Promise.all([web.waitFor((s) => s.version >= applied.version), catalog.waitFor((s) => s.version >= applied.version)]);
  t.deepEqual(catalogWeights(w), [50, 50]);
  t.deepEqual(catalogWeights(c), [50, 50]);

  // ACKs arrive asynchronously; poll status until both are SYNCED.
  let status: { sidecars: { id: string; ack: string; ackedVersion: number; certExpiry: string; identity: string }[] } = { sidecars: [] };
  for (let i = 0; i < 50; i++) {
    status = await op.request('GET', '/v1/status');
    if (status.sidecars.every((s) => s.ack === 'SYNCED' && s.ackedVersion >= applied.version)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.deepEqual(status.sidecars.map((s) => [s.identity, s.ack]).sort(), [
    ['spiffe://shop.example/ns/default/sa/catalog', 'SYNCED'],
    ['spiffe://shop.example/ns/default/sa/web', 'SYNCED'],
  ]);
  t.true(status.sidecars.every((s) => Date.parse(s.certExpiry) > Date.now() + 3500_000));
});

test('an ACK or NACK of an older version that arrives late never moves a sidecar back out of SYNCED', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  const latest = await settled(cp, web);
  const op = cp.operator();
  t.teardown(() => op.close());
  const ackOf = async () => ((await op.request<{ sidecars: { id: string; ack: string; ackedVersion: number }[] }>('GET', '/v1/status')).sidecars.find((s) => s.id === web.id)!);
  for (let i = 0; i < 50 && (await ackOf()).ack !== 'SYNCED'; i++) await new Promise((r) => setTimeout(r, 50));
  t.like(await ackOf(), { ack: 'SYNCED', ackedVersion: latest.version });

  // Sidecars send ACKs on whichever connection is free, so an older one can come second.
  await web.client.request('POST', '/v1/sidecars/ack', { id: web.id, version: latest.version - 1, ok: true });
  await web.client.request('POST', '/v1/sidecars/ack', { id: web.id, version: latest.version - 1, ok: false, error: 'old news' });
  t.like(await ackOf(), { ack: 'SYNCED', ackedVersion: latest.version });
});

test('a NACKed version shows in weft status with its reason', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  let refuse = false;
  const web = await stub(cp, 'web', { verdict: () => (refuse ? 'route catalog: unsupported field' : true) });
  t.teardown(() => web.close());
  await web.waitFor(() => true);
  refuse = true;
  const op = cp.operator();
  t.teardown(() => op.close());
  const applied = await op.request<{ version: number }>('PUT', '/v1/config', MESH_YAML.replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20'), { contentType: 'application/yaml' });
  await web.waitFor((s) => s.version >= applied.version);
  let out = '';
  for (let i = 0; i < 50 && !out.includes('NACK'); i++) {
    out = (await weft(['status', '--state', join(cp.dir, 'state')])).stdout;
    if (!out.includes('NACK')) await new Promise((r) => setTimeout(r, 100));
  }
  t.regex(out, /SIDECAR\s+SERVICE\s+IDENTITY\s+ACKED\s+SENT\s+STATE\s+CERT EXPIRES/);
  t.regex(out, new RegExp(`${web.id}\\s+web\\.default\\s+spiffe://shop\\.example/ns/default/sa/web\\s+\\d+\\s+${applied.version}\\s+NACK`));
  t.regex(out, /NACK of version \d+: route catalog: unsupported field/);
  const json = JSON.parse((await weft(['status', '--state', join(cp.dir, 'state'), '--json'])).stdout);
  t.is(json.sidecars[0].ack, 'NACK');
});

test('an invalid config is refused whole with line:col; sidecars keep the last good one', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  const before = await settled(cp, web);
  const op = cp.operator();
  t.teardown(() => op.close());
  const cases: [string, RegExp][] = [
    [MESH_YAML.replace('  port: 8080', '  port: 8080\n  colour: blue'), /:12:\d+: .*colour/],
    [MESH_YAML.replace('weight: 10', 'weight: 0'), /weights sum to 90; they must sum to 100/],
    [MESH_YAML.replace('{subset: v2, weight: 10}', '{subset: v3, weight: 10}'), /v3/],
  ];
  for (const [yaml, message] of cases) {
    const err = await t.throwsAsync(op.request('PUT', '/v1/config', yaml, { contentType: 'application/yaml', headers: { 'x-weft-file': 'mesh.yaml' } }));
    t.true(isWeftError(err, 'WEFT_CONFIG_INVALID'), err?.message);
    t.regex(err!.message, message);
    t.regex(err!.message, /mesh\.yaml:\d+:\d+/);
  }
  t.is(await op.request('GET', '/v1/config'), MESH_YAML);
  await new Promise((r) => setTimeout(r, 100));
  t.is(web.latest!.version, before.version, 'no push for a rejected config');
});

test('weft apply: a bad file exits 1 listing file:line:col; a good one is pushed', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  await web.waitFor(() => true);
  const state = join(cp.dir, 'state');
  const bad = join(cp.dir, 'bad.yaml');
  writeFileSync(bad, MESH_YAML.replace('weight: 10', 'weight: 0'));
  const none = await weft(['apply', '--state', state]);
  t.is(none.code, 2);
  t.regex(none.stderr, /weft apply: -f\/--file is required/);
  const r = await weft(['apply', '-f', bad, '--state', state]);
  t.is(r.code, 1);
  t.regex(r.stderr, /1 error; nothing was applied; fix it and retry/);
  t.regex(r.stderr, /bad\.yaml:\d+:\d+: .*weights sum to 90/);
  const good = join(cp.dir, 'good.yaml');
  writeFileSync(good, MESH_YAML.replace('weight: 90', 'weight: 75').replace('weight: 10', 'weight: 25'));
  const ok = await weft(['apply', '-f', good, '--state', state]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /applied .*good\.yaml: version \d+/);
  t.is(ok.stderr, '');
  const s = await web.waitFor((x) => catalogWeights(x)?.[0] === 75);
  t.deepEqual(catalogWeights(s), [75, 25]);
  // A warning (a principal no Service has) does not stop an apply; it is printed.
  const warned = join(cp.dir, 'warned.yaml');
  writeFileSync(warned, `${MESH_YAML}---\napiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata: {name: catalog-typo}\nspec:\n  service: catalog\n  rules:\n    - from: [{principals: ["spiffe://shop.example/ns/default/sa/wbe"]}]\n`);
  const w = await weft(['apply', '-f', warned, '--state', state]);
  t.is(w.code, 0, w.stderr);
  t.regex(w.stderr, /^warning: .*warned\.yaml:\d+:\d+: AuthorizationPolicy default\/catalog-typo spec\.rules\[0\]\.from\[0\]\.principals\[0\]: principal "spiffe:\/\/shop\.example\/ns\/default\/sa\/wbe" matches no Service in this config; did you mean spiffe:\/\/shop\.example\/ns\/default\/sa\/web\?/);
  t.regex(w.stdout, /applied .*warned\.yaml: version \d+/);
});

test('endpoints come from registered sidecars and leave on disconnect or missed heartbeats', async (t) => {
  const cp = await startControlPlane({ heartbeatTimeoutMs: 2000 });
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  const beat = setInterval(() => void web.heartbeat().catch(() => {}), 200);
  t.teardown(() => clearInterval(beat));
  const a = await stub(cp, 'catalog', { labels: { version: 'v1' }, address: '127.0.0.1:7001' });
  const b = await stub(cp, 'catalog', { labels: { version: 'v2' }, address: '127.0.0.1:7002' });
  const both = await web.waitFor((s) => catalogEndpoints(s).length === 2);
  t.deepEqual(catalogEndpoints(both).sort(), ['127.0.0.1:7001', '127.0.0.1:7002']);
  t.deepEqual(both.body.upstreams.find((u) => u.service.name === 'catalog')!.endpoints.map((e) => e.labels.version).sort(), ['v1', 'v2']);
  // a disconnects: its endpoint leaves.
  a.close();
  const one = await web.waitFor((s) => catalogEndpoints(s).join() === '127.0.0.1:7002');
  t.truthy(one);
  // b stops heartbeating (its stream stays open): it is removed after the timeout.
  const gone = await web.waitFor((s) => catalogEndpoints(s).length === 0, 10_000);
  t.truthy(gone);
  b.close();
});

test('a sidecar may register only as the service its certificate names', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const op = cp.operator();
  const { token } = await op.request<{ token: string }>('POST', '/v1/tokens', { service: 'web', namespace: 'default' });
  op.close();
  const impostor = new StubSidecar({ ...cp.conn, service: 'catalog' }, await bootstrap(cp.conn, token));
  t.teardown(() => impostor.close());
  const err = await t.throwsAsync(impostor.connect());
  t.true(isWeftError(err, 'WEFT_AUTH_FORBIDDEN'), err?.message);
  t.regex(err!.message, /identity spiffe:\/\/shop\.example\/ns\/default\/sa\/web may not register as service catalog\.default/);
});

test('revoking an identity closes its open stream and refuses its certificate from then on', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  await web.waitFor(() => true);
  const catalog = await stub(cp, 'catalog', { address: '127.0.0.1:7100' });
  t.teardown(() => catalog.close());
  await web.waitFor((s) => catalogEndpoints(s).includes('127.0.0.1:7100'));
  const r = await weft(['revoke', '--identity', 'spiffe://shop.example/ns/default/sa/catalog', '--state', join(cp.dir, 'state'), '--json']);
  t.is(r.code, 0, r.stderr);
  t.true(JSON.parse(r.stdout).revoked.length >= 1);
  // Its stream is closed, so its endpoint leaves; and it cannot come back with the same certificate.
  await web.waitFor((s) => catalogEndpoints(s).length === 0);
  const err = await t.throwsAsync(catalog.connect());
  t.true(isWeftError(err, 'WEFT_CERT_REVOKED'), err?.message);
});

test('a revoked certificate is pushed to sidecars and can no longer renew', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  await web.waitFor(() => true);
  const catalogToken = await (async () => {
    const op = cp.operator();
    try {
      return (await op.request<{ token: string }>('POST', '/v1/tokens', { service: 'catalog', namespace: 'default' })).token;
    } finally {
      op.close();
    }
  })();
  const victim = await bootstrap(cp.conn, catalogToken);
  const r = await weft(['revoke', '--serial', victim.serial, '--state', join(cp.dir, 'state')]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`revoked ${victim.serial} \\(spiffe://shop\\.example/ns/default/sa/catalog\\)`));
  const s = await web.waitFor((x) => x.body.revokedSerials.includes(victim.serial));
  t.truthy(s);
  const victimStub = new StubSidecar({ ...cp.conn, service: 'catalog' }, victim);
  t.teardown(() => victimStub.close());
  const err = await t.throwsAsync(victimStub.connect());
  t.true(isWeftError(err, 'WEFT_CERT_REVOKED'), err?.message);
});

test('weft revoke --serial with a serial the CA never issued is refused, naming it; nothing is revoked', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const r = await weft(['revoke', '--serial', '0badc0ffee', '--state', join(cp.dir, 'state')]);
  t.not(r.code, 0);
  t.regex(r.stderr, /no certificate with serial 0BADC0FFEE in the issuance journal; nothing revoked/i);
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  t.deepEqual((await web.waitFor(() => true)).body.revokedSerials, []);
});

test('the watched config file: a valid edit is pushed, an invalid one is ignored and logged', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  await web.waitFor(() => true);
  writeFileSync(cp.configPath, MESH_YAML.replace('weight: 10', 'weight: 5'));
  await new Promise((r) => setTimeout(r, 400));
  t.deepEqual(catalogWeights(web.latest!), [90, 10]);
  writeFileSync(cp.configPath, MESH_YAML.replace('weight: 90', 'weight: 60').replace('weight: 10', 'weight: 40'));
  const s = await web.waitFor((x) => catalogWeights(x)?.[0] === 60);
  t.deepEqual(catalogWeights(s), [60, 40]);
  t.is(readFileSync(join(cp.dir, 'state', 'config.yaml'), 'utf8'), readFileSync(cp.configPath, 'utf8'));
});

test('the watched config file removed, replaced by a directory, or saved back: told once each, the last good config stays live', async (t) => {
  const events: string[] = [];
  const cp = await startControlPlane({ onConfigFile: (e) => void events.push('note' in e ? e.note : 'error' in e ? 'refused' : `applied ${e.version}`) });
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  await web.waitFor(() => true);
  const told = (what: string) => waitFor(what, () => events.at(-1) === what || undefined, 5000);
  rmSync(cp.configPath);
  await told('was removed; the last good config stays live');
  // A directory where the file was (or a file this process may not read): an error that used to end the process.
  mkdirSync(cp.configPath);
  await told('cannot be read (EISDIR); the last good config stays live');
  rmSync(cp.configPath, { recursive: true });
  writeFileSync(cp.configPath, MESH_YAML);
  await told('is the live config again');
  writeFileSync(cp.configPath, MESH_YAML.replace('weight: 10', 'weight: 5'));
  await told('refused');
  writeFileSync(cp.configPath, MESH_YAML);
  await told('is the live config again');
  t.deepEqual(events, ['was removed; the last good config stays live', 'cannot be read (EISDIR); the last good config stays live', 'is the live config again', 'refused', 'is the live config again']);
  // Still the control plane it was: a valid save applies and reaches the sidecar.
  writeFileSync(cp.configPath, MESH_YAML.replace('weight: 90', 'weight: 70').replace('weight: 10', 'weight: 30'));
  t.deepEqual(catalogWeights(await web.waitFor((x) => catalogWeights(x)?.[0] === 70)), [70, 30]);
});

test('state survives a restart: same CA, spent tokens stay spent, sidecars reconnect and converge', async (t) => {
  const first = await startControlPlane();
  const op = first.operator();
  const { token } = await op.request<{ token: string }>('POST', '/v1/tokens', { service: 'web', namespace: 'default' });
  op.close();
  const svid = await bootstrap(first.conn, token);
  const bundle = first.cp.bundlePem;
  await first.cp.stop();

  const second = await startControlPlane({ dir: first.dir });
  t.teardown(() => second.cp.stop());
  t.is(second.cp.bundlePem, bundle);
  const replay = await t.throwsAsync(bootstrap(second.conn, token));
  t.true(isWeftError(replay, 'WEFT_TOKEN_REPLAYED'), replay?.message);
  // The certificate from before the restart still works for the stream.
  const web = new StubSidecar({ ...second.conn, service: 'web' }, svid);
  t.teardown(() => web.close());
  await web.connect();
  const s = await web.waitFor(() => true);
  t.deepEqual(catalogWeights(s), [90, 10]);
});
