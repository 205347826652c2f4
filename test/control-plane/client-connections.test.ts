// The control-plane client's connections: a sidecar holds one, its full-duplex stream, which carries its ACKs and
// heartbeats too; calls share one kept-alive mTLS connection (a handshake per call cost the control plane one per
// sidecar per heartbeat); and the server's SPIFFE ID is still checked on every connection the client opens.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { isWeftError } from '../../errors.ts';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { MESH_YAML, startControlPlane } from '../helpers/control-plane.ts';
import { weft } from '../helpers/cli.ts';
import { freePort, startMesh, waitFor } from '../helpers/mesh.ts';

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

test('a sidecar process holds one connection to the control plane: its stream, which carries its ACKs and heartbeats too', async (t) => {
  const mesh = await startMesh(MESH_YAML);
  t.teardown(() => mesh.stop());
  const cpPort = Number(new URL(mesh.url).port);
  const before = connectionsTo(cpPort);
  await mesh.sidecar({ service: 'web', appPort: await freePort() });
  const establishedNow = () => [...connectionsTo(cpPort, before)].filter(([, s]) => s === 'ESTABLISHED').map(([p]) => p);
  // Its bootstrap's connection may take a moment to close after it is ready.
  const stream = await waitFor('one established connection', () => (establishedNow().length === 1 ? establishedNow() : undefined), 5_000);
  // Three heartbeats (every 5 s), past node's default keep-alive (5 s, which its client shortens to 4), and past
  // the control plane's 15 s without hearing from a sidecar before it removes it.
  await new Promise((resolve) => setTimeout(resolve, 16_000));
  // Every connection opened in that time is still listed: a closed one stays in TIME_WAIT for 60 s.
  const ever = connectionsTo(cpPort, before);
  const established = [...ever].filter(([, s]) => s === 'ESTABLISHED').map(([p]) => p);
  const listing = [...ever].map(([p, s]) => `${p} ${s}`).join(', ');
  t.deepEqual(established, stream, `the same one connection throughout: ${listing}`);
  t.is(established.length, 1, listing);
  // Its bootstrap's connection (closed) and its stream: nothing else was opened.
  t.true(ever.size <= 2, `connections the sidecar opened to the control plane in 16 s: ${listing}`);
  // Heard from on that one connection only, it is still registered, and SYNCED at a change made now.
  await mesh.apply(MESH_YAML.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50'));
  const report = await waitFor('the sidecar SYNCED at the latest version', async () => {
    const r = JSON.parse((await weft(['status', '--json', '--state', mesh.state])).stdout) as { version: number; sidecars: { ack: string; ackedVersion: number; lastSeen: string }[] };
    return r.sidecars.length === 1 && r.sidecars[0]!.ack === 'SYNCED' && r.sidecars[0]!.ackedVersion === r.version ? r : undefined;
  }, 10_000);
  t.true(Date.now() - Date.parse(report.sidecars[0]!.lastSeen) < 6_000, report.sidecars[0]!.lastSeen);
  t.deepEqual(establishedNow(), stream);
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
