// One remote address may hold only so many open connections to a sidecar's inbound port
// (--max-inbound-connections-per-address): anyone who can reach the port can connect and start a handshake, and
// would otherwise open connections faster than the 10 s handshake and idle timeouts close them, until the sidecar
// has no file descriptor left for anyone. Raw TCP connections from 127.0.0.1 that never send a byte, against real
// sidecar processes: one over the cap is closed at once (before TLS, and before PERMISSIVE's first-byte
// detection), counted on /metrics and logged once; once some close, connections and requests get through again.

import test from 'ava';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { httpEcho, type App } from '../helpers/apps.ts';
import { run as runTool } from '../helpers/ca.ts';
import { weft } from '../helpers/cli.ts';
import { startMesh, waitFor, type SidecarProc } from '../helpers/mesh.ts';
import { meshYaml, policyYaml } from '../helpers/mesh-yaml.ts';
import { sample } from '../helpers/metrics.ts';

const LOGGED = 'refusing inbound connections from an address over its limit';
const REFUSED = 'weft_inbound_connections_refused_total';

interface Raw {
  readonly socket: net.Socket;
  /** the sidecar ended or closed it (or it was destroyed here) */
  readonly closed: () => boolean;
  /** whether it was closed within `ms` of now */
  closedWithin(ms: number): Promise<boolean>;
}

/** A TCP connection to `port` on 127.0.0.1 that sends nothing, once connected. */
async function raw(port: number): Promise<Raw> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let closed = false;
  const ended = new Promise<void>((resolve) => {
    const end = () => ((closed = true), resolve());
    socket.once('end', end);
    socket.once('close', end);
  });
  await new Promise<void>((resolve, reject) => (socket.once('connect', resolve), socket.once('close', () => reject(new Error('closed before connecting')))));
  return { socket, closed: () => closed, closedWithin: (ms) => Promise.race([ended.then(() => true), delay(ms).then(() => false)]) };
}

/** The sidecar's log lines with this message. */
function logged(p: SidecarProc, msg: string): Record<string, unknown>[] {
  return p.logs().split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
}

let app: App;

test.before(async () => {
  app = await httpEcho('catalog');
});

test.after.always(async () => {
  await app?.close();
});

test('STRICT: five held connections, a sixth closed at once, counted and logged once; room again once some close, for raw connections and a peer sidecar', async (t) => {
  const mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}', catalog: '{port: 8081}' } }));
  t.teardown(() => mesh.stop());
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: app.port, env: { WEFT_MAX_INBOUND_CONNECTIONS_PER_ADDRESS: '5' } });
  const web = await mesh.sidecar({ service: 'web', appPort: 1 });
  const port = catalog.ports.inbound;
  const opened: Raw[] = [];
  t.teardown(() => opened.forEach((c) => c.socket.destroy()));
  const open = async () => {
    const c = await raw(port);
    opened.push(c);
    return c;
  };

  const held: Raw[] = [];
  for (let i = 0; i < 5; i++) held.push(await open());
  // (the sidecar accepts them a moment after the client sees them connected)
  await delay(200);
  const over = [await open(), await open(), await open()];
  for (const c of over) t.true(await c.closedWithin(1000), 'a connection over the cap is closed at once');
  t.deepEqual(held.map((c) => c.closed()), [false, false, false, false, false], 'the five under the cap stay open');

  const refused = await waitFor('the refusals on /metrics', async () => {
    const n = sample((await catalog.admin('/metrics')).body, REFUSED, { reason: 'per_address_limit' });
    return n === 3 ? n : undefined;
  }, 5000);
  t.is(refused, 3);
  const lines = await waitFor('the log line', () => (logged(catalog, LOGGED).length > 0 ? logged(catalog, LOGGED) : undefined), 5000);
  await delay(200);
  t.is(logged(catalog, LOGGED).length, 1, 'told once, not once per refused connection');
  t.like(lines[0], { address: '127.0.0.1', limit: 5 });

  // Three close: there is room again (the sidecar sees the closes a moment later).
  for (const c of held.splice(0, 3)) c.socket.destroy();
  await delay(300);
  const again = [await open(), await open()];
  for (const c of again) t.false(await c.closedWithin(1000), 'a connection under the cap again is kept');
  for (const c of again) c.socket.destroy();
  await delay(300);
  // A peer sidecar on the same address gets through with a real request (two raw ones still held).
  const res = await runTool('curl', ['-sS', '-m', '10', '-x', `http://127.0.0.1:${web.ports.outbound}`, 'http://catalog/after']);
  t.is(res.code, 0, res.stderr);
  t.like(JSON.parse(res.stdout), { app: 'catalog', url: '/after', peer: 'spiffe://shop.example/ns/default/sa/web' });
  t.is(sample((await catalog.admin('/metrics')).body, REFUSED, { reason: 'per_address_limit' }), 3);
});

test('PERMISSIVE: connections that never send their first byte count too; a plaintext request gets through once one closes', async (t) => {
  // (a caller with no identity is let in by a policy of its own: the default denies it)
  const open = policyYaml('catalog-plain', 'catalog', 'ALLOW', '    - to: [{paths: ["/plain"]}]\n');
  const own = await startMesh(meshYaml({ mesh: 'mtls: {mode: PERMISSIVE}', services: { catalog: '{port: 8081}' }, extra: open }));
  t.teardown(() => own.stop());
  const catalog = await own.sidecar({ service: 'catalog', appPort: app.port, env: { WEFT_MAX_INBOUND_CONNECTIONS_PER_ADDRESS: '2' } });
  const held = [await raw(catalog.ports.inbound), await raw(catalog.ports.inbound)];
  t.teardown(() => held.forEach((c) => c.socket.destroy()));
  await delay(200);
  const over = await raw(catalog.ports.inbound);
  t.true(await over.closedWithin(1000));
  t.deepEqual(held.map((c) => c.closed()), [false, false]);
  held[0]!.socket.destroy();
  await delay(300);
  const res = await runTool('curl', ['-sS', '-m', '10', `http://127.0.0.1:${catalog.ports.inbound}/plain`]);
  t.is(res.code, 0, res.stderr);
  t.like(JSON.parse(res.stdout), { app: 'catalog', url: '/plain', peer: null });
});

test('a bad --max-inbound-connections-per-address is refused, naming the flag and the value', async (t) => {
  const base = ['sidecar', '--control-plane', 'https://127.0.0.1:1', '--trust-bundle', '/nonexistent', '--token', 't', '--service', 'catalog', '--app-port', '1'];
  for (const value of ['0', '1.5', 'many', '1e3']) {
    const r = await weft([...base, '--max-inbound-connections-per-address', value]);
    t.is(r.code, 2, value);
    t.is(r.stderr.trim(), `weft: --max-inbound-connections-per-address ${JSON.stringify(value)} must be a whole number of at least 1 [WEFT_CLI_USAGE]`);
  }
  const env = await weft(base, { env: { ...process.env, WEFT_MAX_INBOUND_CONNECTIONS_PER_ADDRESS: '-1' } });
  t.is(env.code, 2);
  t.is(env.stderr.trim(), 'weft: --max-inbound-connections-per-address "-1" (from WEFT_MAX_INBOUND_CONNECTIONS_PER_ADDRESS) must be a whole number of at least 1 [WEFT_CLI_USAGE]');
});
