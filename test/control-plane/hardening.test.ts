// The control plane against callers that hold something they should not be able to use: a certificate past its
// expiry on a connection opened before it, another sidecar's id, an identity in the mesh's own namespace; and
// connections that do nothing.

import test from 'ava';
import tls from 'node:tls';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { isWeftError } from '../../errors.ts';
import { svidFromCa } from '../helpers/ca.ts';
import { MESH_YAML, startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { bootstrap, csrFor, StubSidecar } from '../helpers/stub-sidecar.ts';
import { generateKeyPair } from '../../ca/keys.ts';
import { join } from 'node:path';

async function stub(cp: TestControlPlane, service: string): Promise<StubSidecar> {
  const op = cp.operator();
  const { token } = await op.request<{ token: string }>('POST', '/v1/tokens', { service, namespace: 'default' });
  op.close();
  const s = new StubSidecar({ ...cp.conn, service }, await bootstrap(cp.conn, token));
  await s.connect();
  return s;
}

test('a certificate that expired is refused on a connection opened while it was valid, and its stream is ended', async (t) => {
  const cp = await startControlPlane({ heartbeatTimeoutMs: 600 });
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  await web.waitFor(() => true);
  await web.heartbeat();
  // Past the certificate's hour, on the very connection that carried calls while it was valid.
  cp.advance(2 * 3600_000);
  const err = await t.throwsAsync(web.heartbeat());
  t.true(isWeftError(err, 'WEFT_CERT_EXPIRED'), err?.message);
  t.regex(err!.message, /client certificate \S+ for spiffe:\/\/shop\.example\/ns\/default\/sa\/web expired at /);
  const renewal = await t.throwsAsync(web.client.request('POST', '/v1/identity/renew', { csr: await csrFor(generateKeyPair()) }));
  t.true(isWeftError(renewal, 'WEFT_CERT_EXPIRED'), renewal?.message);
  // The sweep ends its stream and takes its endpoint out of the mesh.
  const op = cp.operator();
  t.teardown(() => op.close());
  for (let i = 0; i < 50; i++) {
    if ((await op.request<{ sidecars: unknown[] }>('GET', '/v1/status')).sidecars.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.deepEqual((await op.request<{ sidecars: unknown[] }>('GET', '/v1/status')).sidecars, []);
});

test("a sidecar cannot register under another service's sidecar id, nor a second one on its certificate", async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const catalog = await stub(cp, 'catalog');
  const web = await stub(cp, 'web');
  t.teardown(() => (catalog.close(), web.close()));
  const err = await t.throwsAsync(web.client.stream('/v1/sidecars/stream', { id: catalog.id, service: 'web', namespace: 'default', labels: {}, address: '127.0.0.1:7200' }, () => {}));
  t.true(isWeftError(err, 'WEFT_AUTH_FORBIDDEN'), err?.message);
  t.is(err!.message, `sidecar id ${catalog.id} is registered by spiffe://shop.example/ns/default/sa/catalog; a sidecar may only replace its own registration`);
  await catalog.heartbeat(); // still its own
  // Nor a second sidecar on its own certificate: one certificate, one registration.
  const twice = await t.throwsAsync(web.client.stream('/v1/sidecars/stream', { id: 'made-up-1', service: 'web', namespace: 'default', labels: {}, address: '127.0.0.1:7201' }, () => {}));
  t.true(isWeftError(twice, 'WEFT_AUTH_FORBIDDEN'), twice?.message);
  t.regex(twice!.message, new RegExp(`already registered sidecar ${web.id}; a certificate registers one sidecar`));
  const op = cp.operator();
  t.teardown(() => op.close());
  const status = await op.request<{ sidecars: { id: string; identity: string }[] }>('GET', '/v1/status');
  t.is(status.sidecars.find((s) => s.id === catalog.id)?.identity, 'spiffe://shop.example/ns/default/sa/catalog');
});

test('no bootstrap token, Service or renewal for the weft-system namespace (the control plane\'s and operators\' identities)', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const op = cp.operator();
  t.teardown(() => op.close());
  for (const service of ['operator', 'control-plane', 'anything']) {
    const err = await t.throwsAsync(op.request('POST', '/v1/tokens', { service, namespace: 'weft-system' }));
    t.true(isWeftError(err, 'WEFT_AUTH_FORBIDDEN'), err?.message);
    t.regex(err!.message, /^no bootstrap token for the weft-system namespace/);
  }
  const config = await t.throwsAsync(op.request('PUT', '/v1/config', `${MESH_YAML}---\napiVersion: weft/v1\nkind: Service\nmetadata: {name: operator, namespace: weft-system}\nspec: {port: 9000}\n`, { contentType: 'application/yaml' }));
  t.true(isWeftError(config, 'WEFT_CONFIG_INVALID'), config?.message);
  t.regex(config!.message, /Service weft-system\/operator metadata\.namespace: weft-system is the mesh's own namespace/);
  // An operator certificate (as weft ca issue makes) works for the operator API, but is not renewed.
  const operator = await svidFromCa(join(cp.dir, 'state'), 'spiffe://shop.example/ns/weft-system/sa/operator');
  const asOperator = new ControlPlaneClient({ ...cp.conn, cert: operator.cert, key: operator.key });
  t.teardown(() => asOperator.close());
  await asOperator.request('GET', '/v1/status');
  const renewal = await t.throwsAsync(asOperator.request('POST', '/v1/identity/renew', { csr: await csrFor(generateKeyPair()) }));
  t.true(isWeftError(renewal, 'WEFT_AUTH_FORBIDDEN'), renewal?.message);
});

test("a connection that does nothing is closed after the idle timeout; a sidecar's stream is not", async (t) => {
  const cp = await startControlPlane({ idleTimeoutMs: 1000, keepaliveMs: 300 });
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  const url = new URL(cp.conn.url);
  const closedAfter = async (alpn: string) => {
    const s = tls.connect({ host: url.hostname, port: Number(url.port), ca: cp.conn.ca, ALPNProtocols: [alpn], checkServerIdentity: () => undefined });
    s.on('error', () => {});
    s.resume(); // read what comes (an h2 server's SETTINGS), so that the end is seen
    const started = Date.now();
    await new Promise<void>((resolve) => s.once('secureConnect', () => resolve()));
    const closed = await new Promise<boolean>((resolve) => (s.once('close', () => resolve(true)), setTimeout(() => resolve(false), 5000)));
    s.destroy();
    return closed ? Date.now() - started : null;
  };
  for (const alpn of ['h2', 'http/1.1']) {
    const ms = await closedAfter(alpn);
    t.true(ms !== null && ms >= 900, `${alpn}: ${ms === null ? 'still open after 5 s' : `closed after ${ms} ms`}`);
  }
  // The stream (a keepalive every 300 ms) outlived several idle timeouts.
  await web.heartbeat();
  const op = cp.operator();
  t.teardown(() => op.close());
  t.is((await op.request<{ sidecars: { id: string }[] }>('GET', '/v1/status')).sidecars.filter((s) => s.id === web.id).length, 1);
});

test('one client may hold maxConnectionsPerClient connections; more are closed before any handshake, and it is told once', async (t) => {
  const logs: Record<string, unknown>[] = [];
  const cp = await startControlPlane({ maxConnectionsPerClient: 3, log: (e) => void logs.push(e) });
  t.teardown(() => cp.cp.stop());
  const url = new URL(cp.conn.url);
  const open = () => {
    const s = tls.connect({ host: url.hostname, port: Number(url.port), ca: cp.conn.ca, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
    s.on('error', () => {});
    s.resume();
    t.teardown(() => s.destroy());
    // true: handshake done; false: closed without one
    return { s, shook: new Promise<boolean>((resolve) => (s.once('secureConnect', () => resolve(true)), s.once('close', () => resolve(false)))) };
  };
  const held = [open(), open(), open()];
  t.deepEqual(await Promise.all(held.map((c) => c.shook)), [true, true, true]);
  t.deepEqual(await Promise.all([open().shook, open().shook]), [false, false]);
  t.is(logs.filter((e) => e.msg === 'refusing connections from a client over its limit').length, 1);
  // One closes: there is room for one more.
  held[0]!.s.destroy();
  await new Promise((resolve) => held[0]!.s.once('close', resolve));
  // (the server sees the close a moment later: a few tries)
  let room = false;
  for (let i = 0; i < 50 && !room; i++) room = await open().shook || (await new Promise((r) => setTimeout(r, 100)), false);
  t.true(room);
});
