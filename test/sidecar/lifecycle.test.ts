// A sidecar's life: readiness before serving, certificate rotation and control-plane loss under load without
// a failed request, the app started after readiness with its exit status and signals, and draining.

import test from 'ava';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { httpEcho } from '../helpers/apps.ts';
import { freePort, startMesh, waitFor, type SidecarProc } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

const YAML = meshYaml({ services: { web: '{port: 8080}', catalog: '{port: 8081}' } });

/** Sends requests through `web`'s outbound port for `ms`, from `workers` concurrent loops; counts outcomes. */
async function load(web: SidecarProc, ms: number, workers = 4, during?: () => Promise<void>): Promise<{ ok: number; failed: string[] }> {
  const agent = new Agent({ keepAliveTimeout: 1000, connections: workers });
  const end = Date.now() + ms;
  let ok = 0;
  const failed: string[] = [];
  const loop = async (w: number) => {
    for (let i = 0; Date.now() < end; i++) {
      try {
        // Half the workers reuse connections, half open a new one each time.
        const res = await request(`http://127.0.0.1:${web.ports.outbound}/load/${w}/${i}`, { headers: { host: 'catalog' }, dispatcher: w % 2 ? agent : new Agent({ pipelining: 0 }) });
        const body = await res.body.text();
        if (res.statusCode === 200) ok++;
        else failed.push(`${res.statusCode} ${body.slice(0, 200)}`);
      } catch (err) {
        failed.push((err as Error).message);
      }
    }
  };
  await Promise.all([...Array.from({ length: workers }, (_, w) => loop(w)), during?.()]);
  await agent.close();
  return { ok, failed };
}

test('certificates rotating every second under continuous load fail no request', async (t) => {
  const catalogApp = await httpEcho('catalog');
  const webApp = await httpEcho('web');
  const mesh = await startMesh(YAML);
  t.teardown(async () => (await mesh.stop(), await catalogApp.close(), await webApp.close()));
  const env = { WEFT_RENEW_EVERY: '1s' };
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: catalogApp.port, env });
  const web = await mesh.sidecar({ service: 'web', appPort: webApp.port, env });
  await waitFor('catalog reachable', async () => ((await request(`http://127.0.0.1:${web.ports.outbound}/`, { headers: { host: 'catalog' } })).statusCode === 200) || undefined);
  const serialBefore = JSON.parse((await catalog.admin('/certs')).body).serial;
  const result = await load(web, 6000);
  t.deepEqual(result.failed, []);
  t.true(result.ok > 100, `only ${result.ok} requests`);
  const renewals = (s: SidecarProc) => s.logs().split('\n').filter((l) => l.includes('"certificate renewed"')).length;
  t.true(renewals(catalog) >= 3 && renewals(web) >= 3, `renewals: catalog ${renewals(catalog)}, web ${renewals(web)}`);
  t.not(JSON.parse((await catalog.admin('/certs')).body).serial, serialBefore);
});

test('killing the control plane does not interrupt traffic; the sidecars stay ready on their last config', async (t) => {
  const catalogApp = await httpEcho('catalog');
  const webApp = await httpEcho('web');
  const mesh = await startMesh(YAML);
  t.teardown(async () => (await mesh.stop(), await catalogApp.close(), await webApp.close()));
  await mesh.sidecar({ service: 'catalog', appPort: catalogApp.port });
  const web = await mesh.sidecar({ service: 'web', appPort: webApp.port });
  await waitFor('catalog reachable', async () => ((await request(`http://127.0.0.1:${web.ports.outbound}/`, { headers: { host: 'catalog' } })).statusCode === 200) || undefined);
  const result = await load(web, 4000, 4, async () => {
    await new Promise((r) => setTimeout(r, 1000));
    await mesh.killControlPlane();
  });
  t.deepEqual(result.failed, []);
  t.true(result.ok > 50);
  t.is((await web.admin('/ready')).status, 200);
  await waitFor('the reconnect attempt to be logged', () => web.logs().includes('control plane stream closed') || undefined);
});

test('before a certificate and a config the inbound port does not serve and /ready says why', async (t) => {
  const mesh = await startMesh(YAML);
  t.teardown(() => mesh.stop());
  // A port that is held (so that no other test's process can take it) and answers nothing: every connection is
  // dropped at once, as an absent control plane's would be.
  const dead = net.createServer((s) => s.destroy());
  dead.listen(0, '127.0.0.1');
  await once(dead, 'listening');
  t.teardown(() => dead.close());
  const deadPort = (dead.address() as net.AddressInfo).port;
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: 1, noWait: true, env: {} });
  // Point a second sidecar at a control plane that is not there.
  const { run } = await import('../helpers/mesh.ts');
  // Its ports are picked free here and bound by the sidecar later: another test's process can take one in
  // between (EADDRINUSE), and then the sidecar is started again on others.
  let admin = 0;
  let inbound = 0;
  let ready: { status: number; body: string } | null = null;
  for (let attempt = 0; attempt < 3 && !ready; attempt++) {
    [admin, inbound] = [await freePort(), await freePort()];
    const lonely = run(['sidecar', '--control-plane', `https://127.0.0.1:${deadPort}`, '--trust-bundle', mesh.bundleFile, '--token', await mesh.token('web'), '--service', 'web', '--app-port', '1', '--inbound-port', String(inbound), '--outbound-port', String(await freePort()), '--admin-port', String(admin)]);
    t.teardown(() => lonely.kill('SIGKILL'));
    ready = await waitFor('the admin port', async () => {
      if (lonely.child.exitCode !== null) {
        if (lonely.logs().includes('EADDRINUSE')) return null; // try other ports
        throw new Error(`the sidecar exited ${lonely.child.exitCode}: ${lonely.logs().slice(-1500)}`);
      }
      const res = await fetch(`http://127.0.0.1:${admin}/ready`);
      return { status: res.status, body: await res.text() };
    }, 30_000);
  }
  if (!ready) return t.fail('the sidecar could not bind its ports in three tries');
  t.is(ready.status, 503);
  t.regex(ready.body, /not ready: waiting for a certificate/);
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect(inbound, '127.0.0.1');
    s.on('connect', () => (s.destroy(), resolve(false)));
    s.on('error', () => resolve(true));
  });
  t.true(refused, 'the inbound port must not accept connections yet');
  await catalog.kill();
});

test('with -- app, the app starts only once the sidecar is ready, and the sidecar exits with the app\'s status', async (t) => {
  const catalogApp = await httpEcho('catalog');
  const mesh = await startMesh(YAML);
  t.teardown(async () => (await mesh.stop(), await catalogApp.close()));
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: catalogApp.port });
  const out = join(mesh.dir, 'job.json');
  const env = join(mesh.dir, 'job.env');
  // A job: its very first action is a call through the mesh (curl honours http_proxy), then it exits 7.
  const job = await mesh.sidecar({ service: 'web', appPort: 1, noWait: true, command: ['sh', '-c', `curl -sS --retry 0 http://catalog/job > ${out}; echo "\${MALLOC_ARENA_MAX-unset} \${WEFT_SET_MALLOC_ARENA_MAX-unset}" > ${env}; exit 7`] });
  const code = await new Promise<number | null>((resolve) => job.child.once('exit', (c) => resolve(c)));
  t.is(code, 7, job.logs());
  t.like(JSON.parse(readFileSync(out, 'utf8')), { app: 'catalog', url: '/job', peer: 'spiffe://shop.example/ns/default/sa/web' });
  // bin/weft limits a sidecar's malloc arenas (unless the caller chose); the app gets the caller's environment.
  const caller = process.env.MALLOC_ARENA_MAX;
  t.is(readFileSync(`/proc/${catalog.child.pid}/environ`, 'utf8').split('\0').includes(`MALLOC_ARENA_MAX=${caller ?? 2}`), true);
  t.is(readFileSync(env, 'utf8').trim(), `${caller ?? 'unset'} unset`);
});

test('signals reach the app; the sidecar drains in-flight requests before exiting', async (t) => {
  let release!: () => void;
  const slowStarted = new Promise<void>((resolve) => (release = resolve));
  const slow = http.createServer((req, res) => {
    release();
    setTimeout(() => res.end('slow but done'), 700);
  });
  slow.listen(0, '127.0.0.1');
  await new Promise((r) => slow.once('listening', r));
  const webApp = await httpEcho('web');
  const mesh = await startMesh(YAML);
  t.teardown(async () => (await mesh.stop(), slow.close(), await webApp.close()));
  const marker = join(mesh.dir, 'term');
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: (slow.address() as net.AddressInfo).port, command: ['sh', '-c', `trap 'echo got-term > ${marker}; sleep 0.3; exit 3' TERM; while true; do sleep 0.05; done`] });
  const web = await mesh.sidecar({ service: 'web', appPort: webApp.port });
  const inFlight = request(`http://127.0.0.1:${web.ports.outbound}/slow`, { headers: { host: 'catalog' } }).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
  await slowStarted;
  const code = await catalog.kill('SIGTERM');
  t.is(readFileSync(marker, 'utf8').trim(), 'got-term');
  t.is(code, 3);
  t.deepEqual(await inFlight, { status: 200, body: 'slow but done' });
});
