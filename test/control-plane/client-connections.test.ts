// The control-plane client's connections: calls share one kept-alive mTLS connection (a sidecar heartbeats every
// 5 s; a handshake per call cost the control plane one per sidecar per heartbeat), and the server's SPIFFE ID is
// still checked on every connection the client opens.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { isWeftError } from '../../errors.ts';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { MESH_YAML, startControlPlane } from '../helpers/control-plane.ts';
import { freePort, startMesh } from '../helpers/mesh.ts';

/**
 * This machine's IPv4 connections to `port` (their client ends), local port to TCP state, from /proc/net/tcp;
 * but those in `before`: a closed connection of another test to a control plane that had the same port.
 */
function connectionsTo(port: number, before: ReadonlyMap<number, string> = new Map()): Map<number, string> {
  const found = new Map<number, string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const [, local, remote, state] = line.trim().split(/\s+/);
    if (!local || !remote || !state) continue;
    const localPort = parseInt(local.split(':')[1]!, 16);
    if (parseInt(remote.split(':')[1]!, 16) === port && !before.has(localPort)) found.set(localPort, TCP_STATES[state] ?? state);
  }
  return found;
}

function clientPortsTo(port: number): Set<number> {
  return new Set([...connectionsTo(port)].filter(([, s]) => s === 'ESTABLISHED').map(([p]) => p));
}

const TCP_STATES: Record<string, string> = { '01': 'ESTABLISHED', '06': 'TIME_WAIT', '08': 'CLOSE_WAIT', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '09': 'LAST_ACK' };

test('a sidecar process holds two connections to the control plane: its stream and one for its calls', async (t) => {
  const mesh = await startMesh(MESH_YAML);
  t.teardown(() => mesh.stop());
  const cpPort = Number(new URL(mesh.url).port);
  const before = connectionsTo(cpPort);
  await mesh.sidecar({ service: 'web', appPort: await freePort() });
  // Two heartbeats (every 5 s), past node's default keep-alive (5 s, which its client shortens to 4).
  await new Promise((resolve) => setTimeout(resolve, 11_000));
  // Every connection opened in that time is still listed: a closed one stays in TIME_WAIT for 60 s.
  const ever = connectionsTo(cpPort, before);
  const established = [...ever.values()].filter((s) => s === 'ESTABLISHED').length;
  const listing = [...ever].map(([p, s]) => `${p} ${s}`).join(', ');
  t.is(established, 2, listing);
  // Its bootstrap's connection (closed), its stream, and its calls' one (a second if two calls overlapped).
  t.true(ever.size <= 4, `connections the sidecar opened to the control plane in 11 s: ${listing}`);
});

test("an operator's calls reuse one connection, also after a pause longer than a heartbeat's", async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const port = Number(new URL(cp.conn.url).port);
  const op = cp.operator();
  t.teardown(() => op.close());
  const seen = new Set<number>();
  const call = async () => {
    await op.request('GET', '/v1/status');
    for (const p of clientPortsTo(port)) seen.add(p);
  };
  for (let i = 0; i < 5; i++) await call();
  // Longer than a sidecar's heartbeat period (5 s): node's default keep-alive would have closed it by now.
  await new Promise((resolve) => setTimeout(resolve, 6_000));
  await call();
  t.is(seen.size, 1, `local ports used: ${[...seen].join(', ')}`);
});

test('twenty calls at once share two connections', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const port = Number(new URL(cp.conn.url).port);
  const op = cp.operator();
  t.teardown(() => op.close());
  const before = connectionsTo(port);
  await Promise.all(Array.from({ length: 20 }, () => op.request('GET', '/v1/status')));
  const ever = connectionsTo(port, before);
  t.is(ever.size, 2, [...ever].map(([p, s]) => `${p} ${s}`).join(', '));
});

test('a control plane presenting another SPIFFE ID is refused, on the first connection and on reused ones', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const wrong = new ControlPlaneClient({ ...cp.conn, serverIdentity: 'spiffe://shop.example/ns/default/sa/impostor', adminToken: cp.cp.state.readAdminToken() });
  t.teardown(() => wrong.close());
  for (let i = 0; i < 2; i++) {
    const err = await t.throwsAsync(wrong.request('GET', '/v1/status'));
    t.true(isWeftError(err) && err.code === 'WEFT_CP_UNREACHABLE', String(err));
    t.regex(err!.message, /presented spiffe:\/\/shop\.example\/ns\/weft-system\/sa\/control-plane, expected spiffe:\/\/shop\.example\/ns\/default\/sa\/impostor/);
  }
  // The same control plane, with the right ID expected, is fine.
  const right = cp.operator();
  t.teardown(() => right.close());
  await t.notThrowsAsync(right.request('GET', '/v1/status'));
});
