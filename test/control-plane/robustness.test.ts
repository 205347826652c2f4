import test from 'ava';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { WeftError } from '../../errors.ts';
import { MESH_YAML, startControlPlane } from '../helpers/control-plane.ts';

// A small seeded generator so a failure can be replayed.
function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
}

function randomJson(r: () => number, depth = 0): unknown {
  const pick = Math.floor(r() * (depth > 3 ? 5 : 7));
  switch (pick) {
    case 0: return null;
    case 1: return r() < 0.5;
    case 2: return Math.floor(r() * 1e9) * (r() < 0.5 ? -1 : 1);
    case 3: return randomBytes(Math.floor(r() * 40)).toString('latin1');
    case 4: return ['token', 'csr', 'id', 'service', 'namespace', 'address', 'labels', 'version', 'ok', 'serial', 'identity'][Math.floor(r() * 11)];
    case 5: return Array.from({ length: Math.floor(r() * 4) }, () => randomJson(r, depth + 1));
    default: {
      const keys = ['token', 'csr', 'id', 'service', 'namespace', 'address', 'labels', 'version', 'ok', 'serial', 'identity', 'ttlSeconds', '__proto__'];
      return Object.fromEntries(Array.from({ length: Math.floor(r() * 6) }, () => [keys[Math.floor(r() * keys.length)]!, randomJson(r, depth + 1)]));
    }
  }
}

test('the control plane survives random bodies on every endpoint and answers each with a 4xx code', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const op = cp.operator();
  const anon = cp.anonymous();
  t.teardown(() => (op.close(), anon.close()));
  const r = rng(42);
  const paths: [string, string][] = [
    ['POST', '/v1/identity/bootstrap'], ['POST', '/v1/identity/renew'], ['POST', '/v1/sidecars/stream'], ['POST', '/v1/sidecars/ack'],
    ['POST', '/v1/sidecars/heartbeat'], ['POST', '/v1/tokens'], ['POST', '/v1/revocations'], ['PUT', '/v1/config'],
  ];
  let answered = 0;
  for (let i = 0; i < 300; i++) {
    const [method, path] = paths[i % paths.length]!;
    const body = r() < 0.2 ? randomBytes(Math.floor(r() * 300)).toString('latin1') : JSON.stringify(randomJson(r));
    for (const client of [op, anon]) {
      try {
        await client.request(method, path, body);
      } catch (err) {
        t.true(err instanceof WeftError, `${method} ${path}: ${(err as Error).message}`);
        t.true((err as WeftError).status >= 400 && (err as WeftError).status < 500, `${method} ${path} ${body.slice(0, 60)} -> ${(err as WeftError).code} ${(err as Error).message}`);
      }
      answered++;
    }
  }
  t.is(answered, 600);
  // Mangled YAML: every mutation is answered (accepted or refused with issues), never a crash.
  for (let i = 0; i < 60; i++) {
    const chars = [...MESH_YAML];
    for (let k = 0; k < 3; k++) chars[Math.floor(r() * chars.length)] = String.fromCharCode(32 + Math.floor(r() * 95));
    await op.request('PUT', '/v1/config', chars.join(''), { contentType: 'application/yaml' }).catch((err: WeftError) => t.is(err.code, 'WEFT_CONFIG_INVALID', err.message));
  }
  t.deepEqual(await anon.request('GET', '/healthz'), { ok: true });
});

test('garbage bytes over TCP and inside TLS close that connection only', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const { port } = new URL(cp.cp.url);
  for (let i = 0; i < 20; i++) {
    const raw = net.connect(Number(port), '127.0.0.1');
    raw.on('error', () => {}).resume();
    await once(raw, 'connect');
    raw.end(randomBytes(512));
    await once(raw, 'close');
  }
  for (let i = 0; i < 20; i++) {
    const s = tls.connect({ port: Number(port), host: '127.0.0.1', ALPNProtocols: ['h2'], rejectUnauthorized: false });
    s.on('error', () => {}).resume();
    await once(s, 'secureConnect');
    s.write(randomBytes(1024));
    await once(s, 'close');
  }
  const anon = cp.anonymous();
  t.teardown(() => anon.close());
  t.deepEqual(await anon.request('GET', '/healthz'), { ok: true });
});
